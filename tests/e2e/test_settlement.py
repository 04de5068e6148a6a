"""Token limits charged with the tokens responses report
(`token_limits.settlement`), through the fleet configuration: Envoy's
ratelimit filter and the rate-limit service (the double), one Envoy and a
fleet of two sharing the service. Each request is charged before it is
forwarded and, when settling, again once its response is complete."""

import itertools

import httpx
import openai
import pytest
from harness import (HI, global_bootstrap, no_unresolved_costs, plugin_config, sdk, set_plugin_config, start_gateway,
                     start_ratelimit_service, wait_until)


@pytest.fixture(scope="module")
def rls():
    service = start_ratelimit_service()
    yield service
    service.stop()


def gateway_in(rls, mode: str, shared_backends=None):
    bootstrap = global_bootstrap()
    config = plugin_config(bootstrap)
    config["token_limits"]["settlement"] = mode
    set_plugin_config(bootstrap, config)
    return start_gateway(bootstrap, extra_ports={"ratelimit": rls.grpc_port}, shared_backends=shared_backends)


@pytest.fixture(scope="module")
def settling_fleet(rls):
    first = gateway_in(rls, "settle")
    second = gateway_in(rls, "settle", shared_backends=first.backends)
    yield first, second
    second.stop()
    first.stop()


@pytest.fixture(scope="module")
def topping_up(rls):
    """The shipped fleet configuration: reserve_then_settle."""
    assert plugin_config(global_bootstrap())["token_limits"]["settlement"] == "reserve_then_settle"
    gw = start_gateway(global_bootstrap(), extra_ports={"ratelimit": rls.grpc_port})
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def fresh_windows(rls):
    rls.mode("ok")
    rls.reset()
    rls.clear_requests()
    yield
    rls.reset()


def charges(rls, key_id: str) -> list[int]:
    """Each tokens charge the service received for `key_id`, in order."""
    out = []
    for request in rls.requests():
        for d in request["descriptors"]:
            if d["entries"] == [["limit", "tokens"], ["key_id", key_id]]:
                out.append(d["hits_addend"])
    return out


def settled(rls, key_id: str, requests: int) -> list[int]:
    """The charges once every request's completion charge has arrived (just
    after the client has its answer)."""
    wait_until(lambda: len(charges(rls, key_id)) >= 2 * requests, 5, "the completion charges")
    return charges(rls, key_id)


def test_settle_refuses_once_real_usage_passes_the_window_not_an_estimate(settling_fleet, rls):
    # 100 tokens per minute; each answer reports 30 completion tokens plus
    # its prompt. No max_tokens: the estimate (over 1024) alone would be
    # refused in reserve mode. Calls alternate between the two Envoys.
    used, answered = 0, 0
    for gw in itertools.cycle(settling_fleet):
        client = sdk(gw, "sk-test-settle", default_headers={"x-mock-completion-tokens": "30"})
        if used > 100:
            with pytest.raises(openai.RateLimitError) as error:
                client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
            assert error.value.body["type"] == "tokens"
            break
        answer = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
        used += answer.usage.total_tokens
        answered += 1
        made = settled(rls, "test-settle", answered)
        # 1 before the request, the rest of the reported usage after.
        assert made[-2:] == [1, answer.usage.total_tokens - 1]
    assert answered == 2 and used > 100


def test_reserve_refuses_the_same_first_call_on_its_estimate(rls):
    gw = gateway_in(rls, "reserve")
    try:
        with pytest.raises(openai.RateLimitError) as error:
            sdk(gw, "sk-test-settle").chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
        assert error.value.body["type"] == "tokens"
        # Charged its estimate up front, and nothing is published for after:
        # in reserve mode the completion charge is never made.
        (estimate,) = charges(rls, "test-settle")
        assert estimate > 1024
    finally:
        gw.stop()


def test_reserve_then_settle_tops_up_a_long_answer_and_only_that(topping_up, rls):
    client = sdk(topping_up, "sk-demo", default_headers={"x-mock-completion-tokens": "500"})
    answer = client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, max_tokens=10)
    estimate, top_up = settled(rls, "demo", 1)
    assert estimate < answer.usage.total_tokens
    assert estimate + top_up == answer.usage.total_tokens
    # A short answer: the estimate stands, nothing more.
    rls.clear_requests()
    answer = sdk(topping_up, "sk-demo").chat.completions.create(model="llama-3.1-8b-instruct", messages=HI,
                                                                max_tokens=100)
    estimate, top_up = settled(rls, "demo", 1)
    assert answer.usage.total_tokens <= estimate and top_up == 0
    # Every completion charge resolved: Envoy warned of no missing cost.
    assert no_unresolved_costs(topping_up)


def test_streams_are_charged_their_usage_whether_or_not_the_client_asked_for_it(topping_up, rls):
    totals = []
    for options in ({}, {"stream_options": {"include_usage": True}}):
        rls.clear_requests()
        client = sdk(topping_up, "sk-demo", default_headers={"x-mock-completion-tokens": "700"})
        chunks = list(client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, max_tokens=10,
                                                     stream=True, **options))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from backend-a."
        estimate, top_up = settled(rls, "demo", 1)
        totals.append(estimate + top_up)
        if options:
            assert estimate + top_up == chunks[-1].usage.total_tokens
    # The same request, the same 700 completion tokens: the same charge (the
    # gateway asks the backend for usage on every stream).
    assert totals[0] == totals[1] > 700


@pytest.mark.parametrize("usage", ["missing", "negative", "fractional", "absurd"])
def test_answers_without_believable_usage_are_charged_their_estimate(settling_fleet, rls, usage):
    first, _ = settling_fleet
    r = httpx.post(f"{first.base_url}/chat/completions",
                   headers={"Authorization": "Bearer sk-test-settle", "x-mock-usage": usage},
                   json={"model": "llama-3.1-8b-instruct", "messages": HI, "max_tokens": 20})
    assert r.status_code == 200, r.text
    up_front, after = settled(rls, "test-settle", 1)
    assert up_front == 1, (r.text, rls.requests())
    # The estimate: the prompt's least tokens plus max_tokens, never 0, never
    # the absurd count.
    assert 20 < up_front + after < 100, (r.text, rls.requests(), first.access_log()[-1500:])
    # Said in Envoy's log (once per backend and worker, not per answer).
    wait_until(lambda: "backend `backend-a` answered without believable usage" in first.log(), 5, "the warning")
