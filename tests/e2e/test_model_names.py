"""Responses name the catalog model the client asked for (the canonical id
when it used an alias), never the backend's own name (`upstream_model`):
JSON responses, streamed chunks, Responses API objects and their events,
stored responses fetched by id, deferred completions. The backend still
receives its own name."""

import json

import httpx
from harness import HI, last_request, sdk

CANONICAL = "llama-3.1-8b-instruct"
UPSTREAM = "meta-llama/Llama-3.1-8B-Instruct"  # the demo catalog's upstream_model
ALIAS = "gpt-4o-mini"


def sent_model(backends) -> str:
    return json.loads(last_request(backends["backend-a"])["body_utf8"])["model"]


def test_chat_answers_with_the_catalog_id_for_the_id_and_the_alias(client, backends):
    for asked in (CANONICAL, ALIAS):
        completion = client.chat.completions.create(model=asked, messages=HI)
        assert completion.model == CANONICAL, asked
        assert sent_model(backends) == UPSTREAM


def test_every_streamed_chunk_names_the_catalog_id(client, backends):
    chunks = list(client.chat.completions.create(model=ALIAS, messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    assert len(chunks) >= 3
    assert {c.model for c in chunks} == {CANONICAL}
    assert chunks[-1].usage is not None  # the usage chunk too
    assert sent_model(backends) == UPSTREAM


def test_legacy_completions_name_the_catalog_id(client, backends):
    assert client.completions.create(model=ALIAS, prompt="Say hi").model == CANONICAL
    assert sent_model(backends) == UPSTREAM


def test_responses_objects_events_and_stored_responses_name_the_catalog_id(client, backends):
    created = client.responses.create(model=ALIAS, input="Say hi")
    assert created.model == CANONICAL
    assert sent_model(backends) == UPSTREAM
    assert client.responses.retrieve(created.id).model == CANONICAL
    events = list(client.responses.create(model=CANONICAL, input="Say hi", stream=True))
    with_response = [e for e in events if getattr(e, "response", None) is not None]
    assert with_response, [e.type for e in events]
    assert {e.response.model for e in with_response} == {CANONICAL}
    raw = httpx.get(f"{client.base_url}responses/{created.id}", headers={"Authorization": "Bearer sk-demo"})
    assert UPSTREAM.encode() not in raw.content and raw.json()["model"] == CANONICAL


def test_deferred_completions_name_the_catalog_id(gateway, backends):
    auth = {"Authorization": "Bearer sk-demo"}
    r = httpx.post(f"{gateway.base_url}/chat/completions", headers=auth,
                   json={"model": ALIAS, "messages": HI, "deferred": True})
    assert r.status_code == 200, r.text
    request_id = r.json()["request_id"]
    url = f"{gateway.base_url}/chat/deferred-completion/{request_id}"
    assert httpx.get(url, headers=auth).status_code == 202
    done = httpx.get(url, headers=auth)
    assert done.status_code == 200
    assert done.json()["model"] == CANONICAL
    assert UPSTREAM.encode() not in done.content


def test_a_model_the_backend_knows_by_its_catalog_id_passes_unchanged(client, backends):
    completion = client.chat.completions.create(model="qwen2.5-coder-7b-instruct", messages=HI)
    assert completion.model == "qwen2.5-coder-7b-instruct"
    assert json.loads(last_request(backends["backend-a"])["body_utf8"])["model"] == "qwen2.5-coder-7b-instruct"
