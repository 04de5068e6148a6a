"""Stored responses, deferred completions and video jobs: ids that route
themselves, valid for the key that created them, on any replica."""

import httpx
import openai
import pytest

from harness import nothing_reached, sdk, start_gateway

INPUT = "Say hello"


@pytest.fixture(scope="module")
def replica(gateway):
    """A second Envoy with the same configuration, in front of the same backends."""
    second = start_gateway(shared_backends=gateway.backends)
    yield second
    second.stop()


def test_a_stored_response_is_retrieved_and_deleted_by_its_id(gateway, backends):
    client = sdk(gateway)
    created = client.responses.create(model="deepseek-r1-distill-qwen-7b", input=INPUT)
    assert created.output_text == "Hello from backend-b."
    assert created.id.startswith("resp_") and "." in created.id  # the gateway's id, not the backend's
    assert created.usage.model_extra["cache_read_input_tokens"] == 0
    got = client.responses.retrieve(created.id)
    assert got.id == created.id and got.output_text == created.output_text
    # The backend saw its own id on the path.
    paths = [r["path"] for r in backends["backend-b"].requests() if r["method"] == "GET"]
    assert paths and paths[-1].startswith("/v1/responses/resp_backend-b_")
    deleted = client.responses.delete(created.id)
    assert deleted is None  # the SDK returns None for a 200 delete
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_another_key_cannot_read_or_delete_it(gateway):
    created = sdk(gateway).responses.create(model="deepseek-r1-distill-qwen-7b", input=INPUT)
    other = sdk(gateway, "sk-demo-limited")
    for call in (lambda: other.responses.retrieve(created.id), lambda: other.responses.delete(created.id)):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert "No response found" in err.value.message
    assert sdk(gateway).responses.retrieve(created.id).id == created.id


@pytest.mark.parametrize("forged", [
    "resp_backend-b_1",                       # the backend's own id, never issued by the gateway
    "resp_YmFja2VuZC1h.cmVzcF8x.AAAAAAAAAAAAAAAA",  # a well-formed id with a made-up tag
])
def test_ids_the_gateway_did_not_issue_are_404(gateway, backends, forged):
    gateway.clear_backends()
    with pytest.raises(openai.NotFoundError):
        sdk(gateway).responses.retrieve(forged)
    assert nothing_reached(backends)


def test_previous_response_id_continues_on_the_same_backend(gateway, backends):
    client = sdk(gateway)
    first = client.responses.create(model="deepseek-r1-distill-qwen-7b", input=INPUT)
    second = client.responses.create(model="deepseek-r1-distill-qwen-7b", input="more", previous_response_id=first.id)
    assert second.previous_response_id == first.id  # given back in the gateway's form
    sent = [r for r in backends["backend-b"].requests() if r["method"] == "POST"][-1]
    assert '"previous_response_id":"resp_backend-b_' in sent["body_utf8"].replace(" ", "")


def test_a_streamed_response_gets_a_routed_id(gateway):
    client = sdk(gateway)
    events = list(client.responses.create(model="deepseek-r1-distill-qwen-7b", input=INPUT, stream=True))
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1
    (rid,) = ids
    assert "." in rid
    assert client.responses.retrieve(rid).output_text == "Hello from backend-b."


def test_replicas_serve_each_others_ids(gateway, replica):
    created = sdk(gateway).responses.create(model="deepseek-r1-distill-qwen-7b", input=INPUT)
    assert sdk(replica).responses.retrieve(created.id).id == created.id
    created_there = sdk(replica).responses.create(model="qwen2.5-coder-7b-instruct", input=INPUT)
    assert sdk(gateway).responses.retrieve(created_there.id).output_text == "Hello from backend-a."
    sdk(replica).responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk(gateway).responses.retrieve(created.id)


def test_deferred_completions_202_then_200(gateway, replica):
    auth = {"Authorization": "Bearer sk-demo"}
    r = httpx.post(f"{gateway.base_url}/chat/completions", headers=auth,
                   json={"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": "hi"}], "deferred": True})
    assert r.status_code == 200
    request_id = r.json()["request_id"]
    assert "." in request_id and not request_id.startswith("defer_backend")
    pending = httpx.get(f"{replica.base_url}/chat/deferred-completion/{request_id}", headers=auth)
    assert pending.status_code == 202
    done = httpx.get(f"{gateway.base_url}/chat/deferred-completion/{request_id}", headers=auth)
    assert done.status_code == 200
    assert done.json()["choices"][0]["message"]["content"] == "Hello from backend-a."
    other = httpx.get(f"{gateway.base_url}/chat/deferred-completion/{request_id}",
                      headers={"Authorization": "Bearer sk-demo-limited"})
    assert other.status_code == 404


def test_video_jobs_are_polled_by_their_id(gateway):
    auth = {"Authorization": "Bearer sk-demo"}
    job = httpx.post(f"{gateway.base_url}/videos/generations", headers=auth,
                     json={"model": "wan2.1-t2v-1.3b", "prompt": "waves"}).json()
    assert job["id"].startswith("video_") and "." in job["id"]
    first = httpx.get(f"{gateway.base_url}/videos/{job['id']}", headers=auth).json()
    assert first["id"] == job["id"] and first["status"] == "in_progress"
    second = httpx.get(f"{gateway.base_url}/videos/{job['id']}", headers=auth).json()
    assert second["id"] == job["id"]
    assert second["status"] == "completed"
    assert second["url"].endswith(".mp4")
