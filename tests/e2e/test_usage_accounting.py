"""Usage accounting: the gateway's Prometheus counters and access log agree
with what the backends reported, streamed or not; a stream a backend cuts
short surfaces as an APIError; every response carries x-request-id."""

import base64
import re
import time

import httpx
import openai
import pytest

from harness import HI, scrape, sdk, value, wait_until

# Each Envoy worker hands its counts to Envoy's stats once a second
# (exchange::Counters); a scrape sees an exchange at most that late.
FLUSH_SECONDS = 1.0


def mock_usage(body: bytes, words: int = 3) -> tuple[int, int]:
    """The mock's usage rule: prompt = received body bytes / 4, completion = words."""
    return max(1, len(body) // 4), words


def test_counters_equal_the_usage_the_backends_reported(gateway, backends):
    client = sdk(gateway, "sk-test-metrics")
    expected_prompt = expected_completion = 0
    for _ in range(3):
        resp = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
        expected_prompt += resp.usage.prompt_tokens
        expected_completion += resp.usage.completion_tokens
    # A stream whose client did not ask for usage is counted all the same.
    backends["backend-a"].clear()
    assert list(client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, stream=True))
    received = base64.b64decode(backends["backend-a"].requests()[-1]["body_base64"])
    prompt, completion = mock_usage(received)
    expected_prompt += prompt
    expected_completion += completion
    # A refusal is counted with its code, and no tokens.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, n=2)

    labels = {"key_id": "test-metrics", "model": "llama-3_1-8b-instruct"}
    # on_log runs after the response has been sent; the tick follows.
    wait_until(lambda: value(scrape(gateway), "openai_gateway_requests_total", key_id="test-metrics") == 5,
               5 * FLUSH_SECONDS, "the counters' flush")
    text = scrape(gateway)
    assert value(text, "openai_gateway_prompt_tokens_total", **labels) == expected_prompt
    assert value(text, "openai_gateway_completion_tokens_total", **labels) == expected_completion
    assert value(text, "openai_gateway_cached_tokens_total", **labels) == 0
    assert value(text, "openai_gateway_requests_total", status_class="2xx", error_code="none", **labels) == 4
    assert value(text, "openai_gateway_requests_total", key_id="test-metrics", status_class="4xx") == 1
    assert "# TYPE openai_gateway_requests_total counter" in text
    # Every increment was accepted (Envoy refuses an increment of 0).
    assert "cannot count" not in gateway.log() and "cannot define" not in gateway.log()


def test_refused_keys_are_counted_by_error_code(gateway):
    def refused() -> int:
        return value(scrape(gateway), "openai_gateway_requests_total", error_code="invalid_api_key",
                       key_id="none", status_class="4xx")

    time.sleep(1.5 * FLUSH_SECONDS)  # earlier tests' counts have been flushed
    before = refused()
    bad = sdk(gateway, "sk-wrong-key-for-metrics")
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    wait_until(lambda: refused() >= before + 1, 5 * FLUSH_SECONDS, "the refusal to be counted")
    time.sleep(1.5 * FLUSH_SECONDS)  # and counted once
    assert refused() == before + 1


def test_access_log_prints_key_model_backend_status_and_tokens(gateway):
    client = sdk(gateway)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    usage = raw.parse().usage
    request_id = raw.headers["x-request-id"]
    deadline = time.monotonic() + 5
    line = ""
    while time.monotonic() < deadline and not line:
        line = next((l for l in gateway.access_log().splitlines() if request_id in l), "")
        time.sleep(0.1)
    assert line, gateway.access_log()[-2000:]
    assert '"POST /v1/chat/completions" 200' in line
    assert "key=demo model=llama-3.1-8b-instruct backend=backend-a" in line
    assert f"prompt_tokens={usage.prompt_tokens} completion_tokens={usage.completion_tokens} cached_tokens=0" in line


def test_a_stream_cut_short_by_the_backend_raises_an_api_error(client):
    stream = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, stream=True,
                                            extra_headers={"x-mock-stream-cut-after": "2"})
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2
    assert "ended the stream before it was complete" in str(err.value)


@pytest.mark.parametrize("path, headers, status", [
    ("/v1/models", {"Authorization": "Bearer sk-demo"}, 200),
    ("/v1/models", {}, 401),
    ("/v1/nowhere", {"Authorization": "Bearer sk-demo"}, 404),
    ("/v1/responses/resp_1", {"Authorization": "Bearer sk-demo"}, 404),  # an id the gateway never issued
])
def test_every_response_carries_x_request_id(gateway, path, headers, status):
    r = httpx.get(gateway.origin + path, headers=headers)
    assert r.status_code == status
    assert re.fullmatch(r"[0-9a-f-]{36}", r.headers["x-request-id"])


def test_a_backend_reset_mid_stream_is_never_a_silent_truncation(client):
    # A reset (not a clean early end) makes Envoy abort the client's
    # connection; no filter can add an event after that. The client must
    # still learn the stream failed: the iteration raises, it does not end.
    stream = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, stream=True,
                                            extra_headers={"x-mock-stream-reset-after": "2",
                                                           "x-mock-stream-delay-ms": "50"})
    received = []
    with pytest.raises((openai.APIError, httpx.TransportError)):
        for chunk in stream:
            received.append(chunk)
    assert 1 <= len(received) < 5
