"""Rate-limit behaviour shared by both deployments (one Envoy with
local_ratelimit, a fleet with the rate-limit service): each test module binds
these to its own gateway fixture."""

import re
import time

import httpx
import openai
import pytest

import harness
from harness import HI, nothing_reached

DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(s|ms)$")


def sdk(gateway, key, retries=0, statuses=None):
    """harness.sdk with `retries`; `statuses` collects (time, status, headers)
    of every response, retries included."""
    hooks = {}
    if statuses is not None:
        hooks = {"response": [lambda r: statuses.append((time.monotonic(), r.status_code, dict(r.headers)))]}
    return harness.sdk(gateway, key, max_retries=retries, http_client=httpx.Client(event_hooks=hooks))


def chat(client, **extra):
    return client.chat.completions.with_raw_response.create(model="llama-3.1-8b-instruct", messages=HI, **extra)


def check_200_headers(gateway, key, requests_limit, tokens_limit):
    client = sdk(gateway, key)
    # Envoy's local buckets refill continuously (600 requests and 200k tokens
    # a minute: 10 requests and ~3.3k tokens a second), so each request must
    # cost clearly more than what refills between two of them: 4000 tokens
    # each, and the request count may only stay level, never rise.
    seen = [chat(client, max_tokens=4000).headers for _ in range(3)]
    assert all("x-ratelimit-remaining-requests" in h for h in seen), [dict(h) for h in seen]
    remaining = [int(h["x-ratelimit-remaining-requests"]) for h in seen]
    assert remaining[0] >= remaining[1] >= remaining[2] and remaining[2] < requests_limit, remaining
    tokens = [int(h["x-ratelimit-remaining-tokens"]) for h in seen]
    assert tokens[0] > tokens[1] > tokens[2], tokens
    for h in seen:
        assert h["x-ratelimit-limit-requests"] == str(requests_limit)
        assert h["x-ratelimit-limit-tokens"] == str(tokens_limit)
        assert DURATION.match(h["x-ratelimit-reset-requests"]), h["x-ratelimit-reset-requests"]
        assert DURATION.match(h["x-ratelimit-reset-tokens"]), h["x-ratelimit-reset-tokens"]
        # Envoy's draft headers and the gateway's markers stay inside.
        for internal in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                         "x-gateway-ratelimited-by", "x-envoy-ratelimited"):
            assert internal not in h, internal


def check_request_limit_429(gateway, key, limit, other_key):
    client = sdk(gateway, key)
    for _ in range(limit):
        chat(client)
    gateway.clear_backends()
    with pytest.raises(openai.RateLimitError) as err:
        chat(client)
    e = err.value
    assert e.status_code == 429
    assert e.code == "rate_limit_exceeded"
    assert e.body["type"] == "requests"
    assert e.response.headers["content-type"] == "application/json"
    retry_after = int(e.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert int(e.response.headers["retry-after-ms"]) == retry_after * 1000
    assert e.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert e.response.headers["x-ratelimit-limit-requests"] == str(limit)
    assert "x-should-retry" not in e.response.headers
    assert "Rate limit reached for requests" in e.message
    assert nothing_reached(gateway.backends)
    # Limits are per key: another key is unaffected.
    assert chat(sdk(gateway, other_key)).parse().choices


def check_sdk_waits_what_retry_after_says(gateway, key, align_to_second=False):
    statuses = []
    client = sdk(gateway, key, retries=2, statuses=statuses)
    if align_to_second:
        # A per-second fixed window: start early in a second, so both calls share it.
        while time.time() % 1 > 0.2:
            time.sleep(0.02)
    chat(client)  # takes the only token
    started = time.monotonic()
    assert chat(client).parse().choices  # refused, waited, retried
    waited = time.monotonic() - started
    codes = [s for _, s, _ in statuses]
    assert codes[0] == 200 and 429 in codes and codes[-1] == 200, codes
    first_429 = next(i for i, (_, s, _) in enumerate(statuses) if s == 429)
    t_429, _, h = statuses[first_429]
    t_next = statuses[first_429 + 1][0]
    told = int(h["retry-after-ms"]) / 1000
    # The SDK waited (at least) what the gateway said, and the wait was real.
    assert t_next - t_429 >= told * 0.9, (t_next - t_429, told)
    assert waited >= told * 0.9


def check_token_limit(gateway, key, tokens_limit, refusals_still_count=False):
    """`refusals_still_count`: the limiter adds a refused request's cost to its
    window anyway (envoyproxy/ratelimit increments, then compares), so after a
    refusal the key's budget for that window is spent."""
    client = sdk(gateway, key)
    small = chat(client, max_tokens=10)
    assert small.parse().choices
    # Bigger than the whole budget: refused at once, not retried, backend untouched.
    statuses = []
    retrying = sdk(gateway, key, retries=2, statuses=statuses)
    gateway.clear_backends()
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as err:
        chat(retrying, max_tokens=tokens_limit * 2)
    assert time.monotonic() - started < 1.0
    assert [s for _, s, _ in statuses] == [429]
    e = err.value
    assert e.body["type"] == "tokens" and e.code == "rate_limit_exceeded"
    assert e.response.headers["x-should-retry"] == "false"
    assert "Waiting will not help" in e.message
    assert nothing_reached(gateway.backends)
    if refusals_still_count:
        with pytest.raises(openai.RateLimitError) as err:
            chat(client, max_tokens=5)
        assert err.value.body["type"] == "tokens"
        return
    # Within the budget but above what remains: a tokens 429 worth waiting for.
    chat(client, max_tokens=tokens_limit // 2)
    with pytest.raises(openai.RateLimitError) as err:
        chat(client, max_tokens=tokens_limit // 2 + 100)
    assert err.value.body["type"] == "tokens"
    assert "x-should-retry" not in err.value.response.headers
    assert int(err.value.response.headers["retry-after"]) >= 1
    # Small requests still pass.
    assert chat(client, max_tokens=5).parse().choices


# Envoy ignores a hits_addend above 10^9 (local_ratelimit then skips the
# descriptor: no limit at all) and its hits_addend filter state refuses one
# above u32::MAX (the request then counts as 1). The gateway charges at most
# 10^9 so a client's huge max_tokens is refused, not let through.
HUGE_MAX_TOKENS = (999_999_993, 2**32 + 5)


def check_huge_request_is_refused(gateway, key, max_tokens):
    gateway.clear_backends()
    with pytest.raises(openai.RateLimitError) as err:
        chat(sdk(gateway, key), max_tokens=max_tokens)
    e = err.value
    assert e.body["type"] == "tokens", e.body
    assert e.response.headers["x-should-retry"] == "false"
    assert "needs about 1000000000 tokens" in e.message, e.message
    assert nothing_reached(gateway.backends)

