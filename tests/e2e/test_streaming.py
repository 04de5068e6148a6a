"""Streams pass through as they arrive; the gateway always asks for usage and
shows clients exactly what OpenAI would: the usage chunk only when asked for,
cache fields in every usage, no system_fingerprint."""

import json
import time

import httpx

from harness import HI, last_request


def sse_events(gateway, body, key="sk-demo"):
    """The data payloads of a raw SSE response, with their arrival times."""
    events = []
    with httpx.stream("POST", f"{gateway.base_url}/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append((time.monotonic(), line[len("data: "):]))
    return events


def test_a_stream_without_include_usage_gets_no_usage_chunk_but_the_backend_reports_it(client, backends):
    stream = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from backend-a."
    assert all(c.choices for c in chunks), "no usage-only chunk"
    assert all(c.usage is None for c in chunks)
    sent = json.loads(last_request(backends["backend-a"])["body_utf8"])
    assert sent["stream_options"] == {"include_usage": True}


def test_a_stream_with_include_usage_gets_usage_with_cache_fields(gateway, backends):
    events = sse_events(gateway, {"model": "llama-3.1-8b-instruct", "messages": HI, "stream": True,
                                  "stream_options": {"include_usage": True}})
    assert events[-1][1] == "[DONE]"
    usage_chunk = json.loads(events[-2][1])
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["cache_read_input_tokens"] == 0 and usage["cache_creation_input_tokens"] == 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert all("system_fingerprint" not in data for _, data in events)


def test_the_sdk_reads_the_usage_chunk(client):
    stream = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, stream=True,
                                            stream_options={"include_usage": True})
    last = list(stream)[-1]
    assert last.choices == [] and last.usage.total_tokens > 0
    assert last.usage.model_extra["cache_read_input_tokens"] == 0
    assert last.system_fingerprint is None


def test_legacy_completion_streams_hide_the_usage_chunk_too(client, backends):
    chunks = list(client.completions.create(model="qwen2.5-coder-7b-instruct", prompt="def f(", stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert json.loads(last_request(backends["backend-a"])["body_utf8"])["stream_options"] == {"include_usage": True}


def test_json_responses_get_cache_fields_and_lose_system_fingerprint(gateway, backends):
    r = httpx.post(f"{gateway.base_url}/chat/completions", json={"model": "llama-3.1-8b-instruct", "messages": HI},
                   headers={"Authorization": "Bearer sk-demo"})
    assert r.status_code == 200
    body = r.json()
    assert "system_fingerprint" not in body
    assert body["usage"]["cache_read_input_tokens"] == 0 and body["usage"]["cache_creation_input_tokens"] == 0
    assert body["choices"][0]["message"]["content"] == "Hello from backend-a."
    r = httpx.post(f"{gateway.base_url}/embeddings", json={"model": "bge-m3", "input": "x"},
                   headers={"Authorization": "Bearer sk-demo"})
    assert r.json()["usage"]["cache_creation_input_tokens"] == 0


def test_chunks_arrive_with_their_original_spacing(gateway, backends):
    # The mock waits 150 ms between chunks; a buffering gateway would deliver them together.
    events = []
    with httpx.stream("POST", f"{gateway.base_url}/chat/completions", timeout=30,
                      json={"model": "llama-3.1-8b-instruct", "messages": HI, "stream": True},
                      headers={"Authorization": "Bearer sk-demo", "x-mock-stream-delay-ms": "150"}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(time.monotonic())
    gaps = [b - a for a, b in zip(events, events[1:])]
    assert len(gaps) >= 3
    assert sum(1 for g in gaps if g >= 0.1) >= len(gaps) - 1, gaps
