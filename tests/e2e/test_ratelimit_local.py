"""Rate limits on one Envoy: the demo configuration's local_ratelimit filters."""

import ratelimit_cases as cases


def test_200s_carry_openai_headers_with_remaining_decreasing(gateway):
    cases.check_200_headers(gateway, "sk-demo", requests_limit=600, tokens_limit=200000)


def test_a_key_over_its_request_limit_gets_429_and_others_do_not(gateway):
    cases.check_request_limit_429(gateway, "sk-demo-limited", limit=3, other_key="sk-demo")


def test_sdk_retries_after_the_time_the_gateway_gives(gateway):
    cases.check_sdk_waits_what_retry_after_says(gateway, "sk-test-slow")


def test_tokens_per_minute(gateway):
    cases.check_token_limit(gateway, "sk-test-tokens", tokens_limit=2000)
