"""End to end: real Envoy + the built .wasm + mock backends, driven by the
real openai==1.109.1 SDK (raw HTTP only where the SDK cannot express a case)."""

import base64
import json
import os
import subprocess
import sys

import httpx
import openai
import pytest

from harness import HI, ROOT, TEST_KEYS, demo_bootstrap, header, last_request, nothing_reached, plugin_config, sdk

DEMO_MODELS = plugin_config(demo_bootstrap())["models"]


# --- the happy path -------------------------------------------------------------

def test_chat_completion_returns_the_backend_answer(client, backends):
    resp = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
    assert resp.choices[0].message.content == "Hello from backend-a."
    assert resp.object == "chat.completion"
    assert resp.usage.total_tokens > 0
    assert resp._request_id  # x-request-id on every response
    assert len(backends["backend-a"].requests()) == 1
    assert backends["backend-b"].requests() == []


@pytest.mark.parametrize("model", [m for m in DEMO_MODELS if m["category"] in ("text", "code", "reasoning", "multimodal")], ids=lambda m: m["id"])
def test_each_chat_model_lands_on_its_backend(client, backends, model):
    # A model with several backends goes to the first while it serves.
    backend = model["backend"] if "backend" in model else model["backends"][0]["name"]
    resp = client.chat.completions.create(model=model["id"], messages=HI)
    assert resp.choices[0].message.content == f"Hello from {backend}."
    seen = last_request(backends[backend])
    assert header(seen, "x-gateway-model") == [model["id"]]
    assert json.loads(seen["body_utf8"])["model"] == model.get("upstream_model", model["id"])


def test_models_list_is_the_catalog_with_categories(client):
    models = client.models.list().data
    by_id = {m.id: m for m in models}
    for m in DEMO_MODELS:
        assert by_id[m["id"]].category == m["category"]
        assert by_id[m["id"]].object == "model"
        assert by_id[m["id"]].owned_by == m["owned_by"]
    assert client.models.retrieve("gpt-4o-mini").id == "llama-3.1-8b-instruct"


def test_models_list_only_shows_what_a_key_may_use(gateway):
    key = next(iter(TEST_KEYS))
    restricted = sdk(gateway, key)
    assert [m.id for m in restricted.models.list().data] == ["bge-m3"]
    with pytest.raises(openai.NotFoundError) as err:
        restricted.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
    assert err.value.code == "model_not_found"
    assert restricted.embeddings.create(model="bge-m3", input="x").data


def test_embeddings_round_trip_base64(client, backends):
    resp = client.embeddings.create(model="bge-m3", input=["a", "b"])  # the SDK asks for base64
    assert len(resp.data) == 2 and len(resp.data[0].embedding) == 8
    seen = last_request(backends["backend-b"])
    assert json.loads(seen["body_utf8"])["encoding_format"] == "base64"


def test_media_endpoints_route_by_model(client, backends):
    img = client.images.generate(model="flux.1-schnell", prompt="a cat", response_format="b64_json")
    assert base64.b64decode(img.data[0].b64_json).startswith(b"\x89PNG")
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="hi")
    assert speech.content.startswith(b"ID3")
    assert json.loads(last_request(backends["backend-b"])["body_utf8"])["model"] == "kokoro-82m"


def test_transcription_reads_the_model_from_the_form_and_rewrites_the_alias(client, backends):
    resp = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF....WAVEfmt ", "audio/wav"))
    assert resp.text == "Transcribed by backend-b."
    seen = last_request(backends["backend-b"])
    body = base64.b64decode(seen["body_base64"])
    assert b'name="model"\r\n\r\nwhisper-large-v3\r\n' in body
    assert b"whisper-1" not in body
    assert header(seen, "content-length") == [str(len(body))]


def test_videos_and_responses_route_by_model(gateway, backends):
    # openai 1.109.1 has no videos resource: raw HTTP.
    r = httpx.post(f"{gateway.base_url}/videos/generations", headers={"Authorization": "Bearer sk-demo"},
                   json={"model": "wan2.1-t2v-1.3b", "prompt": "waves"})
    assert r.status_code == 200 and r.json()["status"] == "queued"
    client = sdk(gateway)
    resp = client.responses.create(model="deepseek-r1-distill-qwen-7b", input="hi")
    assert resp.output_text == "Hello from backend-b."


def test_streaming_chat_passes_through(client):
    stream = client.chat.completions.create(model="qwen2.5-coder-7b-instruct", messages=HI, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip() == "Hello from backend-a."


# --- what backends see ----------------------------------------------------------

def test_alias_rewrite_keeps_the_body_byte_for_byte(gateway, backends):
    body = b'{"messages": [{"role": "user", "content": "hi \\u00e9"}], "model": "gpt-4o-mini", "temperature": 0.5, "x_custom": [1, 2]}'
    r = httpx.post(f"{gateway.base_url}/chat/completions", content=body,
                   headers={"Authorization": "Bearer sk-demo", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    seen = last_request(backends["backend-a"])
    expected = body.replace(b'"gpt-4o-mini"', b'"meta-llama/Llama-3.1-8B-Instruct"')
    assert base64.b64decode(seen["body_base64"]) == expected
    assert header(seen, "content-length") == [str(len(expected))]


def test_unchanged_bodies_are_forwarded_as_sent(gateway, backends):
    body = b'{ "model" : "qwen2.5-coder-7b-instruct",\n "messages": [{"role":"user","content":"hi"}], "unknown_field": {"deep": [null]} }'
    r = httpx.post(f"{gateway.base_url}/chat/completions", content=body,
                   headers={"Authorization": "Bearer sk-demo", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert base64.b64decode(last_request(backends["backend-a"])["body_base64"]) == body


def test_client_key_and_spoofed_internal_headers_never_reach_a_backend(client, backends):
    spoof = {"x-gateway-key-id": "admin", "x-gateway-backend": "backend-b", "x-gateway-model": "bge-m3"}
    resp = client.chat.completions.create(model="qwen2.5-coder-7b-instruct", messages=HI, extra_headers=spoof)
    assert resp.choices[0].message.content == "Hello from backend-a."  # not backend-b
    seen = last_request(backends["backend-a"])
    assert header(seen, "x-gateway-key-id") == ["demo"]
    assert header(seen, "x-gateway-backend") == ["backend-a"]
    assert header(seen, "x-gateway-model") == ["qwen2.5-coder-7b-instruct"]
    assert header(seen, "authorization") == []
    assert "sk-demo" not in json.dumps(seen)
    assert backends["backend-b"].requests() == []


def test_backend_credential_replaces_the_client_key(client, backends):
    client.chat.completions.create(model="deepseek-r1-distill-qwen-7b", messages=HI)
    seen = last_request(backends["backend-b"])
    assert header(seen, "authorization") == ["Bearer demo-backend-b-token"]
    assert "sk-demo" not in json.dumps(seen)


def test_cors_grants_from_backends_are_stripped(gateway, backends):
    r = httpx.post(f"{gateway.base_url}/chat/completions", headers={"Authorization": "Bearer sk-demo", "Origin": "https://app.example"},
                   json={"model": "llama-3.1-8b-instruct", "messages": HI})
    assert r.status_code == 200
    assert r.headers.get("x-mock-backend") == "backend-a"  # the backend did answer...
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]  # ...its CORS grant did not pass


# --- errors, as the SDK's typed exceptions ---------------------------------------

def test_wrong_key_is_401_invalid_api_key_without_echoing_it(gateway, backends):
    bad = sdk(gateway, "sk-not-a-real-key-abcdefghijk")
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert "sk-not-a-real-key" not in err.value.message
    assert err.value.request_id
    assert nothing_reached(backends)


@pytest.mark.parametrize("headers, needle", [
    ({}, "didn't provide an API key"),
    ({"Authorization": "Basic c2stZGVtbzo="}, "Only bearer"),
    ({"Authorization": "Bearer"}, "no API key after"),
])
def test_missing_or_non_bearer_auth_is_401_with_instructions(gateway, backends, headers, needle):
    r = httpx.post(f"{gateway.base_url}/chat/completions", headers=headers, json={"model": "llama-3.1-8b-instruct", "messages": HI})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert needle in error["message"] and "Authorization: Bearer" in error["message"]
    assert error["code"] is None and error["type"] == "invalid_request_error"
    assert nothing_reached(backends)


def test_cors_preflight_is_refused_with_403(client, backends):
    from openai._models import FinalRequestOptions
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.request(httpx.Response, FinalRequestOptions.construct(
            method="options", url="/chat/completions",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization"}))
    assert err.value.status_code == 403
    assert "server-to-server" in err.value.message
    assert not [h for h in err.value.response.headers if h.lower().startswith("access-control-")]
    assert nothing_reached(backends)


def test_unknown_model_is_404_model_not_found(client, backends):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-5", messages=HI)
    assert err.value.code == "model_not_found"
    assert err.value.param == "model"
    assert "`gpt-5`" in err.value.message
    assert nothing_reached(backends)


@pytest.mark.parametrize("call, param, needle", [
    (lambda c: c.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, n=2), "n", "single choice"),
    (lambda c: c.chat.completions.create(model="llama-3.1-8b-instruct", messages=[]), "messages", "at least one message"),
    (lambda c: c.chat.completions.create(model="bge-m3", messages=HI), "model", "embeddings model"),
    (lambda c: c.embeddings.create(model="llama-3.1-8b-instruct", input="x"), "model", "text model"),
    (lambda c: c.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, extra_body={"model": "bge-m3"}), "model", "embeddings"),
], ids=["n=2", "empty-messages", "embeddings-model-for-chat", "chat-model-for-embeddings", "extra-body-model"])
def test_bad_requests_are_400_with_param(client, backends, call, param, needle):
    with pytest.raises(openai.BadRequestError) as err:
        call(client)
    assert err.value.status_code == 400
    assert err.value.param == param
    assert err.value.code is None
    assert needle in err.value.message
    assert nothing_reached(backends)


@pytest.mark.parametrize("body, needle", [
    (b'{"model": "llama-3.1-8b-instruct", "messages": [', "could not parse the JSON body"),
    (b"", "body is empty"),
    (b"[]", "must be a JSON object"),
    (b'{"messages": []}', "model parameter"),
    (b'{"model": "qwen2.5-coder-7b-instruct", "model": "bge-m3", "messages": []}', "more than once"),
])
def test_malformed_bodies_are_400_envelopes(gateway, backends, body, needle):
    r = httpx.post(f"{gateway.base_url}/chat/completions", content=body,
                   headers={"Authorization": "Bearer sk-demo", "content-type": "application/json"})
    assert r.status_code == 400
    assert needle in r.json()["error"]["message"]
    assert nothing_reached(backends)


def test_wrong_method_is_405_with_allow(client, backends):
    with pytest.raises(openai.APIStatusError) as err:
        client.get("/chat/completions", cast_to=httpx.Response)
    assert err.value.status_code == 405
    assert err.value.response.headers["allow"] == "POST"
    assert err.value.body["message"].startswith("Method GET is not allowed")
    assert nothing_reached(backends)


@pytest.mark.parametrize("call, needle", [
    (lambda c: c.batches.create(completion_window="24h", endpoint="/v1/chat/completions", input_file_id="file-1"), "Fan out"),
    (lambda c: c.files.list(), "inline"),
    (lambda c: c.audio.translations.create(model="whisper-1", file=("a.wav", b"RIFF")), "transcriptions"),
    (lambda c: c.fine_tuning.jobs.list(), "fine-tuning product"),
    (lambda c: c.beta.assistants.list(), "not planned"),
    (lambda c: c.beta.threads.create(), "not planned"),
    (lambda c: c.images.edit(image=("a.png", b"\x89PNG"), prompt="x"), "image-editing model"),
    (lambda c: c.images.create_variation(image=("a.png", b"\x89PNG")), "image-editing model"),
    (lambda c: c.moderations.create(input="x"), "This gateway serves"),
], ids=["batches", "files", "translations", "fine-tuning", "assistants", "threads", "image-edits", "image-variations", "unknown"])
def test_unsupported_endpoints_say_what_to_do(client, backends, call, needle):
    with pytest.raises(openai.NotFoundError) as err:
        call(client)
    assert needle in err.value.message
    assert err.value.code is None
    assert nothing_reached(backends)


# --- Envoy's own local replies, as envelopes -------------------------------------

def test_an_id_the_gateway_did_not_issue_is_a_404_envelope(client, backends):
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve("resp_unknown")
    assert "No response found with id 'resp_unknown'" in err.value.message
    assert err.value.response.headers["content-type"] == "application/json"
    assert nothing_reached(backends)


def test_catalog_backend_without_route_is_a_500_not_retried(client):
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="unrouted-model", messages=HI)
    assert err.value.status_code == 500
    assert err.value.response.headers["x-should-retry"] == "false"
    assert "`backend-unrouted` has no route" in err.value.message


def test_dead_backend_is_a_503_envelope(client):
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="offline-model", messages=HI)
    assert err.value.status_code == 503
    assert err.value.body["type"] == "server_error"
    assert "backend is unavailable" in err.value.message


def test_body_over_the_limit_is_a_413_envelope(gateway, backends):
    # content-length announces it: refused from the headers (see test_hostile for chunked bodies).
    body = b'{"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": "' + b"x" * (27 * 1024 * 1024) + b'"}]}'
    r = httpx.post(f"{gateway.base_url}/chat/completions", content=body, timeout=30,
                   headers={"Authorization": "Bearer sk-demo", "content-type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/json"
    assert "larger than this gateway accepts" in r.json()["error"]["message"]
    assert nothing_reached(backends)


def test_gateway_keeps_serving_after_errors(client):
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, n=3)
    assert client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI).choices


def test_chunked_request_with_alias_rewrite_reaches_the_backend_whole(gateway, backends):
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"y" * 200_000 + b'"}]}'

    def chunks():
        for i in range(0, len(body), 7_001):
            yield body[i:i + 7_001]

    r = httpx.post(f"{gateway.base_url}/chat/completions", content=chunks(), timeout=30,
                   headers={"Authorization": "Bearer sk-demo", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    seen = last_request(backends["backend-a"])
    expected = body.replace(b'"gpt-4o-mini"', b'"meta-llama/Llama-3.1-8B-Instruct"')
    assert base64.b64decode(seen["body_base64"]) == expected


def test_non_utf8_header_values_do_not_break_the_filter(gateway, backends):
    # obs-text bytes in a header value: the filter must neither panic (which
    # would kill the VM) nor let the request skip its checks.
    r = httpx.post(f"{gateway.base_url}/chat/completions", json={"model": "llama-3.1-8b-instruct", "messages": HI},
                   headers={"Authorization": "Bearer sk-demo", "x-client-note": b"caf\xe9"})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{gateway.base_url}/chat/completions", json={"model": "llama-3.1-8b-instruct", "messages": HI},
                   headers={"Authorization": b"Bearer sk-d\xe9mo"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert len(backends["backend-a"].requests()) == 1


def test_quickstart_example_runs_against_the_gateway(gateway):
    env = {**os.environ, "OPENAI_BASE_URL": gateway.base_url, "OPENAI_API_KEY": "sk-demo"}
    out = subprocess.run([sys.executable, str(ROOT / "examples/quickstart.py")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "chat: Hello from backend-a." in out.stdout
    assert "stream: Hello from backend-a." in out.stdout
    assert "embeddings: 2 vectors of 8" in out.stdout
    assert "error: 400 param: n" in out.stdout
