"""Rate limits on one Envoy: the demo configuration's local_ratelimit filters."""

import pytest

import ratelimit_cases as cases


def test_200s_carry_openai_headers_with_remaining_decreasing(gateway):
    cases.check_200_headers(gateway, "sk-demo", requests_limit=600, tokens_limit=200000)


def test_a_key_over_its_request_limit_gets_429_and_others_do_not(gateway):
    cases.check_request_limit_429(gateway, "sk-demo-limited", limit=3, other_key="sk-demo")


def test_sdk_retries_after_the_time_the_gateway_gives(gateway):
    cases.check_sdk_waits_what_retry_after_says(gateway, "sk-test-slow")


def test_tokens_per_minute(gateway):
    cases.check_token_limit(gateway, "sk-test-tokens", tokens_limit=2000)


@pytest.mark.parametrize("max_tokens", cases.HUGE_MAX_TOKENS)
def test_a_cost_beyond_envoys_hits_addend_ceiling_is_refused(gateway, max_tokens):
    cases.check_huge_request_is_refused(gateway, "sk-test-tokens", max_tokens)

