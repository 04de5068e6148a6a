"""Rate limits shared by a fleet: envoy/global-ratelimit.yaml, Envoy's ratelimit
filter calling a rate-limit service (a test double of envoyproxy/ratelimit,
loaded with envoy/ratelimit-config.yaml)."""

import copy

import openai
import pytest

import ratelimit_cases as cases
from harness import (connection_manager, global_bootstrap, nothing_reached, start_gateway, start_ratelimit_service,
                     wait_until)


@pytest.fixture(scope="module")
def rls():
    service = start_ratelimit_service()
    yield service
    service.stop()


def fleet_gateway(rls, deny_on_failure=False):
    bootstrap = global_bootstrap()
    if deny_on_failure:
        bootstrap = copy.deepcopy(bootstrap)
        for f in connection_manager(bootstrap)["http_filters"]:
            if f["name"] == "envoy.filters.http.ratelimit":
                f["typed_config"]["failure_mode_deny"] = True
    return start_gateway(bootstrap, extra_ports={"ratelimit": rls.grpc_port})


@pytest.fixture(scope="module")
def fleet(rls):
    gw = fleet_gateway(rls)
    # Envoy opens its gRPC connection to the service on the first request; on
    # a loaded machine that can take longer than the limiters' 0.25 s timeout,
    # and the request is then served unlimited (failure_mode_deny: false),
    # without rate-limit headers. The tests measure the steady state.
    cases.chat(cases.sdk(gw, "sk-demo"))
    rls.reset()
    rls.clear_requests()
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def healthy(rls):
    rls.mode("ok")
    yield
    rls.mode("ok")


def test_200s_carry_openai_headers_with_remaining_decreasing(fleet):
    cases.check_200_headers(fleet, "sk-demo", requests_limit=600, tokens_limit=200000)


def test_a_key_over_its_request_limit_gets_429_and_others_do_not(fleet):
    cases.check_request_limit_429(fleet, "sk-demo-limited", limit=3, other_key="sk-demo")


def test_sdk_retries_after_the_time_the_gateway_gives(fleet):
    cases.check_sdk_waits_what_retry_after_says(fleet, "sk-test-slow", align_to_second=True)


def test_tokens_per_minute(fleet):
    cases.check_token_limit(fleet, "sk-test-tokens", tokens_limit=2000, refusals_still_count=True)


def test_the_service_sees_key_model_and_token_cost(fleet, rls):
    rls.clear_requests()
    client = cases.sdk(fleet, "sk-demo")
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "abcdabcd"}], max_tokens=100)
    wait_for_settlement(rls)
    sent = rls.requests()
    entries = lambda r: [tuple(map(tuple, d["entries"])) for d in r["descriptors"]]
    requests_stage = next(r for r in sent if entries(r)[0][0] == ("limit", "requests"))
    tokens_calls = [r for r in sent if entries(r)[0][0] == ("limit", "tokens")]
    assert (("limit", "requests"), ("key_id", "demo")) in entries(requests_stage)
    assert (("limit", "requests"), ("model", "llama-3.1-8b-instruct")) in entries(requests_stage)  # the alias resolved
    assert [entries(r) for r in tokens_calls] == [[(("limit", "tokens"), ("key_id", "demo"))]] * 2
    # The shipped fleet reserves then settles: before the request, the
    # estimate, 3 + (4 + 2 text tokens) + 100 completion tokens; once the
    # response is complete, what its usage exceeded that by (nothing here).
    # The requests stage counts the request once.
    assert [r["descriptors"][0]["hits_addend"] for r in tokens_calls] == [109, 0]
    assert requests_stage["hits_addend"] in (0, 1)
    assert all(r["domain"] == "openai-gateway" for r in sent)


def wait_for_settlement(rls, calls: int = 1):
    """The stream-done calls reach the service just after the client has its
    answer: wait for them."""
    def settled():
        return sum(1 for r in rls.requests() if r["descriptors"][0]["entries"][0] == ["limit", "tokens"]) >= 2 * calls
    wait_until(settled, 5, "the settlement call")



@pytest.mark.parametrize("max_tokens", cases.HUGE_MAX_TOKENS)
def test_a_cost_beyond_envoys_hits_addend_ceiling_is_refused(fleet, rls, max_tokens):
    # A fresh window: were the request let through unlimited or charged 1,
    # it would pass.
    rls.reset()
    rls.clear_requests()
    try:
        cases.check_huge_request_is_refused(fleet, "sk-test-tokens", max_tokens)
        wait_for_settlement(rls)
        charged = [r["descriptors"][0]["hits_addend"] for r in rls.requests()
                   if r["descriptors"][0]["entries"][0] == ["limit", "tokens"]]
        # Refused up front at the cap; nothing more once it was answered.
        assert charged == [1_000_000_000, 0]
    finally:
        rls.reset()  # the refusal spent the key's window: give later tests a fresh one

def test_service_down_fails_open_by_default(fleet, rls):
    rls.mode("unavailable")
    resp = cases.chat(cases.sdk(fleet, "sk-demo"))
    assert resp.parse().choices
    assert "x-ratelimit-remaining-requests" not in resp.headers


def test_service_down_with_failure_mode_deny_is_a_503_envelope(rls):
    gw = fleet_gateway(rls, deny_on_failure=True)
    try:
        rls.mode("unavailable")
        gw.clear_backends()
        with pytest.raises(openai.InternalServerError) as err:
            cases.chat(cases.sdk(gw, "sk-demo"))
        assert err.value.status_code == 503
        assert err.value.body["type"] == "server_error"
        assert "rate-limit service is unavailable" in err.value.message
        assert nothing_reached(gw.backends)
        rls.mode("ok")
        assert cases.chat(cases.sdk(gw, "sk-demo")).parse().choices
    finally:
        gw.stop()
