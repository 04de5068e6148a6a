"""Live models: each backend is probed from every Envoy worker; a backend
that stops answering leaves service within two probe intervals, its models
leave `GET /v1/models`, a model with another backend fails over to it, and
a model with none gets a 503 envelope (the SDK's InternalServerError). Bad
probe answers (slow, garbage, wrong status, huge, a models list without the
model) count as failures. Real Envoy at --concurrency 2, the real SDK."""

import json
import re
import time
import urllib.request

import httpx
import openai
import pytest
from harness import demo_bootstrap, plugin_config, sdk, set_plugin_config, start_gateway, wait_until

INTERVAL_MS = 500
TIMEOUT_MS = 300
# A backend found down: two failed probes, each up to 10 % late, each
# failing within its timeout; plus the test's own polling.
WITHIN_S = (2 * INTERVAL_MS * 1.1 + 2 * TIMEOUT_MS) / 1000 + 0.5
# What backend-b lists on /v1/models: the upstream names of its models.
B_NAMES = ["meta-llama/Llama-3.1-8B-Instruct", "deepseek-r1-distill-qwen-7b", "qwen2-vl-7b-instruct",
           "bge-m3", "flux.1-schnell", "whisper-large-v3", "kokoro-82m", "wan2.1-t2v-1.3b"]


@pytest.fixture(scope="module")
def live():
    bootstrap = demo_bootstrap()
    config = plugin_config(bootstrap)
    fast = {"interval_ms": INTERVAL_MS, "timeout_ms": TIMEOUT_MS}
    by_name = {b["name"]: b for b in config["backends"]}
    by_name["backend-a"]["probe"] = {"path": "/health", **fast}
    by_name["backend-b"]["probe"] = {"path": "/v1/models", **fast}
    set_plugin_config(bootstrap, config)
    gw = start_gateway(bootstrap, backend_args={"backend-b": ("--models", ",".join(B_NAMES))})
    yield gw
    gw.stop()


def listed(gw) -> set[str]:
    # A new connection each time, so both workers answer in turn.
    r = httpx.get(f"{gw.base_url}/models", headers={"Authorization": "Bearer sk-demo", "connection": "close"})
    assert r.status_code == 200, r.text
    return {m["id"] for m in r.json()["data"]}


def wait_listing(gw, *, present=(), absent=(), within=WITHIN_S) -> float:
    """Waits until the listing has `present` and lacks `absent` on several
    answers in a row (both workers); returns how long that took."""
    started = time.monotonic()
    streak = 0

    def settled() -> bool:
        nonlocal streak
        ids = listed(gw)
        ok = set(present) <= ids and not set(absent) & ids
        streak = streak + 1 if ok else 0
        return streak >= 6

    wait_until(settled, within + 2.0, f"listing with {present} and without {absent}")
    return time.monotonic() - started


def gauges(gw) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.admin_port}/stats?filter=openai_gateway_(backend|model)") as r:
        text = r.read().decode()
    return {m[1]: int(m[2]) for m in re.finditer(r"^wasmcustom\.(\S+): (\d+)$", text, re.M)}


def log_lines(gw, needle: str) -> int:
    return sum(1 for line in gw.log().splitlines() if needle in line)


def test_every_model_is_listed_while_every_backend_answers_and_probes_are_not_requests(live):
    catalog = {m["id"] for m in plugin_config(demo_bootstrap())["models"]}
    wait_listing(live, present=catalog)
    time.sleep(2 * INTERVAL_MS / 1000)  # several probes have been answered
    assert all(not b.requests() for b in live.backends.values()), "probes are not recorded as requests"
    g = gauges(live)
    assert g["openai_gateway_backend_live.backend.backend-a"] == 1
    assert g["openai_gateway_model_serving_backends.model.llama-3_1-8b-instruct"] == 2
    assert g["openai_gateway_model_serving_backends.model.bge-m3"] == 1


def test_a_stopped_backend_leaves_the_list_its_models_fail_over_and_it_comes_back(live):
    client = sdk(live)
    a = live.backends["backend-a"]
    log_before = log_lines(live, "backend `backend-a`: out of service")
    stopped_at = time.monotonic()
    a.stop()
    took = wait_listing(live, present={"llama-3.1-8b-instruct"}, absent={"qwen2.5-coder-7b-instruct"})
    assert took <= WITHIN_S, f"{took:.2f} s to leave the list"
    # Both workers have flipped once the bound has passed since the stop.
    time.sleep(max(0.0, stopped_at + WITHIN_S - time.monotonic()))

    # Failover: every request for llama (alias and id) answered by backend-b.
    live.backends["backend-b"].clear()
    for name in ["gpt-4o-mini", "llama-3.1-8b-instruct"] * 10:
        answer = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "Hello from backend-b."
        assert answer.model == "llama-3.1-8b-instruct"
    assert len(live.backends["backend-b"].requests()) == 20

    # No backend left for qwen: a 503 envelope the SDK raises (and would
    # retry after retry-after), listed no more, nothing forwarded.
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="qwen2.5-coder-7b-instruct", messages=[{"role": "user", "content": "hi"}])
    assert error.value.status_code == 503
    assert "`qwen2.5-coder-7b-instruct` is temporarily unavailable" in error.value.message
    assert error.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("qwen2.5-coder-7b-instruct")
    assert len(live.backends["backend-b"].requests()) == 20

    g = gauges(live)
    assert g["openai_gateway_backend_live.backend.backend-a"] == 0
    assert g["openai_gateway_model_serving_backends.model.llama-3_1-8b-instruct"] == 1
    assert g["openai_gateway_model_serving_backends.model.qwen2_5-coder-7b-instruct"] == 0
    # Logged once for the whole Envoy (both workers saw it), not once per probe.
    time.sleep(3 * INTERVAL_MS / 1000)
    assert log_lines(live, "backend `backend-a`: out of service") - log_before == 1

    # Back: listed again, and llama goes to backend-a again.
    restarted_at = time.monotonic()
    a.restart()
    took = wait_listing(live, present={"qwen2.5-coder-7b-instruct"})
    assert took <= WITHIN_S
    time.sleep(max(0.0, restarted_at + WITHIN_S - time.monotonic()))
    live.clear_backends()
    assert client.chat.completions.create(model="qwen2.5-coder-7b-instruct",
                                          messages=[{"role": "user", "content": "hi"}]).choices[0].message.content \
        == "Hello from backend-a."
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]) \
        .choices[0].message.content == "Hello from backend-a."
    assert gauges(live)["openai_gateway_backend_live.backend.backend-a"] == 1
    assert log_lines(live, "backend `backend-a`: back in service") == 1


B_ONLY = {"deepseek-r1-distill-qwen-7b", "bge-m3", "kokoro-82m"}


@pytest.mark.parametrize("mode", ["hang", "slow", "garbage", "error", "huge"])
def test_bad_probe_answers_take_the_backend_out_until_it_answers_well(live, mode):
    b = live.backends["backend-b"]
    b.control("probe", {"mode": mode})
    try:
        wait_listing(live, absent=B_ONLY, within=WITHIN_S + 1)
        with pytest.raises(openai.InternalServerError):
            sdk(live).embeddings.create(model="bge-m3", input="x")
        assert "llama-3.1-8b-instruct" in listed(live)  # still served by backend-a
    finally:
        b.control("probe", {"mode": "ok"})
    wait_listing(live, present=B_ONLY, within=WITHIN_S + 3)  # a hung or slow probe times out first
    assert live.proc.poll() is None, "Envoy still runs"


def test_a_model_its_backend_stops_listing_is_not_served_there(live):
    b = live.backends["backend-b"]
    before = log_lines(live, "does not list `bge-m3`")
    b.control("models", {"models": [n for n in B_NAMES if n != "bge-m3"]})
    try:
        wait_listing(live, absent={"bge-m3"}, present={"deepseek-r1-distill-qwen-7b"})
        with pytest.raises(openai.InternalServerError) as error:
            sdk(live).embeddings.create(model="bge-m3", input="x")
        assert error.value.status_code == 503
        assert not [r for r in b.requests() if r["path"] == "/v1/embeddings"]
        # Logged once, not once per worker or per probe.
        time.sleep(3 * INTERVAL_MS / 1000)
        assert log_lines(live, "does not list `bge-m3`") - before == 1
    finally:
        b.control("models", {"models": B_NAMES})
    wait_listing(live, present={"bge-m3"})
    assert sdk(live).embeddings.create(model="bge-m3", input="x").data
