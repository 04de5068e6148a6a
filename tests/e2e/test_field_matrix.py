"""The request-field matrix end to end: the SDK's BadRequestError carries the
offending field as .param, nothing reaches a backend on a refusal, and every
rewrite the gateway makes arrives at the backend byte-exact with a correct
content-length."""

import base64
import json

import httpx
import openai
import pytest

from harness import HI, header, last_request, nothing_reached

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
IMAGE = [{"type": "text", "text": "What is this?"},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]


@pytest.mark.parametrize("kwargs, param", [
    (dict(model="llama-3.1-8b-instruct", messages=HI, n=2), "n"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, logprobs=True), "logprobs"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, top_logprobs=2), "top_logprobs"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, temperature=3), "temperature"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, top_p=1.5), "top_p"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, max_tokens=0), "max_tokens"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, stop=["a", "b", "c", "d", "e"]), "stop"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, tools=[{"type": "function", "function": {"name": "get weather!"}}]), "tools[0].function.name"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, tools=[TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}), "tool_choice.function.name"),
    (dict(model="deepseek-r1-distill-qwen-7b", messages=HI, tools=[TOOL]), "tools"),
    (dict(model="llama-3.1-8b-instruct", messages=[{"role": "wizard", "content": "hi"}]), "messages[0].role"),
    (dict(model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}]), "messages[1].tool_call_id"),
    (dict(model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": IMAGE}]), "messages[0].content[1]"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, response_format={"type": "json_schema", "json_schema": {"name": "bad name"}}), "response_format.json_schema.name"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, stream_options={"include_usage": True}), "stream_options"),
    (dict(model="llama-3.1-8b-instruct", messages=HI, metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_chat_refusals_carry_the_param(client, backends, kwargs, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**kwargs)
    assert err.value.param == param, err.value.message
    assert err.value.code is None
    assert nothing_reached(backends)


def test_legacy_and_embedding_refusals(client, backends):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="qwen2.5-coder-7b-instruct", prompt="def f(", logprobs=2)
    assert err.value.param == "logprobs"
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="bge-m3", input=["ok", ""])
    assert err.value.param == "input[1]"
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="flux.1-schnell", prompt="a cat", response_format="url")
    assert err.value.param == "response_format" and "b64_json" in err.value.message
    assert nothing_reached(backends)


def test_valid_rich_requests_pass(client, backends):
    resp = client.chat.completions.create(
        model="llama-3.1-8b-instruct", messages=HI, tools=[TOOL], tool_choice="auto", temperature=0.2,
        top_p=0.9, max_tokens=64, stop=["\n\n"], seed=7, user="u-1", metadata={"team": "search"},
        response_format={"type": "json_object"})
    assert resp.choices[0].finish_reason == "tool_calls"
    vision = client.chat.completions.create(model="qwen2-vl-7b-instruct", messages=[{"role": "user", "content": IMAGE}])
    assert vision.choices[0].message.content == "Hello from backend-b."
    legacy = client.completions.create(model="qwen2.5-coder-7b-instruct", prompt=["def f(", "class A"], max_tokens=8)
    assert legacy.choices[0].text == "Hello from backend-a."


def test_json_schema_falls_back_to_json_object_and_says_so(client, backends):
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    raw = client.chat.completions.with_raw_response.create(model="qwen2.5-coder-7b-instruct", messages=HI, response_format=schema)
    assert raw.headers["x-gateway-response-format"] == "json_object"
    assert raw.parse().choices[0].message.content == "Hello from backend-a."
    seen = last_request(backends["backend-a"])
    body = base64.b64decode(seen["body_base64"])
    assert json.loads(body)["response_format"] == {"type": "json_object"}
    assert header(seen, "content-length") == [str(len(body))]
    # A model labelled json_schema gets the schema as sent, and no header.
    raw = client.chat.completions.with_raw_response.create(model="llama-3.1-8b-instruct", messages=HI, response_format=schema)
    assert "x-gateway-response-format" not in raw.headers
    assert json.loads(last_request(backends["backend-a"])["body_utf8"])["response_format"] == schema


def test_json_schema_rewrite_is_spliced_byte_exact(gateway, backends):
    body = (b'{"model":"qwen2.5-coder-7b-instruct","response_format" : {"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object"}}},'
            b'"messages":[{"role":"user","content":"hi"}],"x":"\\u00e9"}')
    r = httpx.post(f"{gateway.base_url}/chat/completions", content=body,
                   headers={"Authorization": "Bearer sk-demo", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    seen = last_request(backends["backend-a"])
    expected = (b'{"model":"qwen2.5-coder-7b-instruct","response_format" : {"type":"json_object"},'
                b'"messages":[{"role":"user","content":"hi"}],"x":"\\u00e9"}')
    assert base64.b64decode(seen["body_base64"]) == expected
    assert header(seen, "content-length") == [str(len(expected))]


def test_embeddings_without_encoding_format_reach_the_backend_as_float(gateway, backends):
    body = b'{"input": ["a", "b"], "model": "bge-m3"}'
    r = httpx.post(f"{gateway.base_url}/embeddings", content=body,
                   headers={"Authorization": "Bearer sk-demo", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["data"][0]["embedding"], list)
    seen = last_request(backends["backend-b"])
    expected = b'{"encoding_format":"float","input": ["a", "b"], "model": "bge-m3"}'
    assert base64.b64decode(seen["body_base64"]) == expected
    assert header(seen, "content-length") == [str(len(expected))]
    # Explicit null is refused; the SDK's default base64 passes as sent.
    r = httpx.post(f"{gateway.base_url}/embeddings", json={"input": "a", "model": "bge-m3", "encoding_format": None},
                   headers={"Authorization": "Bearer sk-demo"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "encoding_format"


def test_images_without_response_format_are_asked_as_b64_json(client, backends):
    img = client.images.generate(model="flux.1-schnell", prompt="a cat")
    assert img.data[0].b64_json
    assert json.loads(last_request(backends["backend-b"])["body_utf8"])["response_format"] == "b64_json"


def test_unknown_fields_reach_the_backend_untouched(client, backends):
    client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI,
                                   extra_body={"top_k": 40, "guided_choice": ["a", "b"], "vendor": {"x": [1, None]}})
    sent = json.loads(last_request(backends["backend-a"])["body_utf8"])
    assert sent["top_k"] == 40 and sent["guided_choice"] == ["a", "b"] and sent["vendor"] == {"x": [1, None]}


@pytest.mark.parametrize("body, needle", [
    (b'{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","role":"system","content":"x"}]}', "'role' more than once"),
    (b'{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","content":"x"}],"temperature":NaN}', "could not parse"),
    (b'{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","content":"x"}],"seed":1e400}', "could not parse"),
    (b'{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","content":"x"}],"x":' + b"[" * 200 + b"]" * 200 + b"}", "could not parse"),
])
def test_smuggling_and_number_tricks_are_refused(gateway, backends, body, needle):
    r = httpx.post(f"{gateway.base_url}/chat/completions", content=body,
                   headers={"Authorization": "Bearer sk-demo", "content-type": "application/json"})
    assert r.status_code == 400
    assert needle in r.json()["error"]["message"]
    assert nothing_reached(backends)


def test_transcription_needs_a_file(gateway, backends):
    r = httpx.post(f"{gateway.base_url}/audio/transcriptions", data={"model": "whisper-1"},
                   files={"language": (None, "en")}, headers={"Authorization": "Bearer sk-demo"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "file"
    assert nothing_reached(backends)
