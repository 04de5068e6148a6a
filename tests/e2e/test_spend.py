"""Spend budgets: models with prices, keys with a budget in money per window
(integer micro-units, 1000000 = 1.00). Over budget is OpenAI's exhausted
quota: 429 `insufficient_quota`, which openai-python raises as
RateLimitError. One Envoy (local_ratelimit: charged the estimate up front)
and a fleet of two sharing the rate-limit service (settled with the usage
responses report)."""

import itertools
import urllib.request

import openai
import pytest
from harness import (HI, demo_bootstrap, global_bootstrap, no_unresolved_costs, plugin_config, sdk,
                     set_plugin_config, start_gateway, start_ratelimit_service, wait_until)

BUDGET = 1000  # demo-budget: 0.001 a day, in the shipped configurations


def micros(price, prompt_tokens, completion_tokens) -> int:
    """What the usage costs in micro-units, rounded up (no cached tokens)."""
    per_million = prompt_tokens * round(price["input"] * 1e6) + completion_tokens * round(price["output"] * 1e6)
    return -(-per_million // 1_000_000)


def price_of(bootstrap, model_id):
    return next(m["price"] for m in plugin_config(bootstrap)["models"] if m["id"] == model_id)


@pytest.fixture(scope="module")
def one_envoy():
    gw = start_gateway()  # the demo's: the spend bucket is this Envoy's alone
    yield gw
    gw.stop()


def test_one_envoy_refuses_the_call_that_would_pass_the_budget(one_envoy):
    client = sdk(one_envoy, "sk-demo-budget")
    price = price_of(demo_bootstrap(), "llama-3.1-8b-instruct")
    remaining = []
    for _ in range(2):
        answer = client.chat.completions.with_raw_response.create(model="llama-3.1-8b-instruct", messages=HI)
        assert answer.headers["x-ratelimit-limit-spend"] == str(BUDGET)
        remaining.append(int(answer.headers["x-ratelimit-remaining-spend"]))
    # Each call is charged the spend of its estimate (about 1,030 tokens at
    # the output price): two fit in the budget, the third does not.
    per_call = BUDGET - remaining[0]
    assert remaining == [BUDGET - per_call, BUDGET - 2 * per_call]
    assert per_call >= 1000 * price["output"]
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
    e = error.value
    assert e.code == "insufficient_quota" and e.body["type"] == "insufficient_quota"
    assert "quota" in e.message and "0.001" in e.message, e.message
    # A local bucket refills gradually: Envoy reports no reset, the message
    # says the budget refills over its window, and what is left.
    assert "refills gradually" in e.message, e.message
    assert e.response.headers["x-ratelimit-remaining-spend"] == str(remaining[1])
    # A model without a price costs nothing, and other keys have no budget.
    assert client.embeddings.create(model="bge-m3", input="x").data
    assert sdk(one_envoy, "sk-demo").chat.completions.create(model="llama-3.1-8b-instruct", messages=HI).choices
    # Unpriced requests make no spend descriptor: Envoy has no cost to
    # evaluate, and nothing to warn about.
    assert no_unresolved_costs(one_envoy)


@pytest.fixture(scope="module")
def rls():
    service = start_ratelimit_service()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def settling_fleet(rls):
    bootstrap = global_bootstrap()
    config = plugin_config(bootstrap)
    config["token_limits"]["settlement"] = "settle"
    set_plugin_config(bootstrap, config)
    first = start_gateway(bootstrap, extra_ports={"ratelimit": rls.grpc_port})
    second = start_gateway(bootstrap, extra_ports={"ratelimit": rls.grpc_port}, shared_backends=first.backends)
    yield first, second
    second.stop()
    first.stop()


def spend_charges(rls):
    return [d["hits_addend"] for r in rls.requests() for d in r["descriptors"]
            if d["entries"] == [["limit", "spend"], ["key_id", "demo-budget"]]]


def test_a_fleet_settles_spend_with_real_usage_and_refuses_once_it_is_spent(settling_fleet, rls):
    rls.reset()
    rls.clear_requests()
    price = price_of(global_bootstrap(), "llama-3.1-8b-instruct")
    fleet = itertools.cycle(settling_fleet)
    # Small answers cost a few micro-units each: well within the budget.
    small = sdk(next(fleet), "sk-demo-budget").chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
    wait_until(lambda: len(spend_charges(rls)) >= 2, 5, "the completion charge")
    up_front, after = spend_charges(rls)
    # 1 micro-unit up front, then the rest of what the usage cost.
    assert up_front == 1
    assert up_front + after == micros(price, small.usage.prompt_tokens, small.usage.completion_tokens)
    # An answer of 10,000 completion tokens costs 4,000 micro-units at 0.40
    # per million: admitted (budget left), then settled: the budget is spent.
    big = sdk(next(fleet), "sk-demo-budget", default_headers={"x-mock-completion-tokens": "10000"})
    assert big.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI).choices
    wait_until(lambda: len(spend_charges(rls)) >= 4, 5, "the completion charge")
    assert spend_charges(rls)[3] >= 4000 - 1
    with pytest.raises(openai.RateLimitError) as error:
        sdk(next(fleet), "sk-demo-budget").chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
    assert error.value.code == "insufficient_quota"
    assert error.value.response.headers["x-should-retry"] == "false"
    # An unpriced model still serves the key, and nothing is left unresolved.
    assert sdk(next(fleet), "sk-demo-budget").embeddings.create(model="bge-m3", input="x").data
    assert all(no_unresolved_costs(gw) for gw in settling_fleet)


def test_spend_is_counted_per_key_and_model_and_in_the_access_log(one_envoy):
    client = sdk(one_envoy, "sk-demo")  # no budget, but the model has a price
    answer = client.chat.completions.create(model="qwen2.5-coder-7b-instruct", messages=HI)
    price = price_of(demo_bootstrap(), "qwen2.5-coder-7b-instruct")
    expected = micros(price, answer.usage.prompt_tokens, answer.usage.completion_tokens)
    stat = "openai_gateway_spend_micros_total.key_id.demo.model.qwen2_5-coder-7b-instruct"

    def counted():
        with urllib.request.urlopen(f"http://127.0.0.1:{one_envoy.admin_port}/stats?filter={stat}") as r:
            text = r.read().decode()
        return f"{stat}: {expected}" in text
    wait_until(counted, 5, "the spend counter")
    wait_until(lambda: f"spend_micros={expected}" in one_envoy.access_log(), 5, "the access log")
