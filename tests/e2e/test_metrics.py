"""Latency and usage histograms, scraped from real Envoy's /stats/prometheus
after real SDK traffic: a stream paced by the mock backend lands in the
buckets its pace says; a whole answer records a duration but no time to
first token; labels stay within the configuration under a flood of unknown
models; `metrics.per_key: false` drops the key label; and every metric the
shipped Grafana dashboard queries is one the gateway exports."""

import json
import re

import openai
import pytest
import yaml

from harness import (HI, ROOT, demo_bootstrap, plugin_config, scrape, sdk, series, set_plugin_config, start_gateway,
                     value, wait_until)

DASHBOARD = ROOT / "examples/grafana/openai-gateway.json"
# Envoy merges its workers' histograms at each stats flush
# (`stats_flush_interval`, 5 s by default): a scrape shows a sample that late.
MERGED = 12
LLAMA = "llama-3.1-8b-instruct"
LLAMA_LABEL = "llama-3_1-8b-instruct"


def buckets(text: str, name: str, **labels) -> dict[float, float]:
    """A histogram's cumulative bucket counts by upper bound."""
    out: dict[float, float] = {}
    for n, found, v in series(text):
        if n == f"{name}_bucket" and all(found.get(k) == want for k, want in labels.items()):
            le = float(found["le"])
            out[le] = out.get(le, 0) + v
    return out


def in_bucket(counts: dict[float, float], low: float, high: float) -> float:
    """Samples in (low, high]: the cumulative counts' difference."""
    return counts.get(high, 0) - counts.get(low, 0)


def test_a_paced_stream_lands_in_the_buckets_its_pace_says(gateway):
    """Headers after 600 ms, then one event every 300 ms: time to first
    token in (500, 750] ms, time per output token in (250, 500] ms, the whole
    stream in (1000, 2500] ms; input and output tokens recorded."""
    labels = {"key_id": "test-latency", "model": LLAMA_LABEL, "backend": "backend-a"}
    client = sdk(gateway, "sk-test-latency", default_headers={
        "x-mock-delay-ms": "600", "x-mock-stream-delay-ms": "300"})
    chunks = list(client.chat.completions.create(
        model=LLAMA, messages=HI, stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage and usage.completion_tokens >= 2
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == usage.completion_tokens, "the mock sends one token an event"

    def recorded():
        return value(scrape(gateway), "openai_gateway_request_duration_milliseconds_count", **labels) == 1
    wait_until(recorded, MERGED, "the stream's duration in the scrape")
    text = scrape(gateway)
    ttft = buckets(text, "openai_gateway_time_to_first_token_milliseconds", **labels)
    assert in_bucket(ttft, 500, 750) == 1, ttft
    assert ttft[float("inf")] == 1
    tpot = buckets(text, "openai_gateway_time_per_output_token_microseconds", **labels)
    assert in_bucket(tpot, 250_000, 500_000) == 1, tpot
    duration = buckets(text, "openai_gateway_request_duration_milliseconds", **labels)
    assert in_bucket(duration, 1000, 2500) == 1, duration
    # Envoy keeps two significant digits a sample: sums are close, not exact
    # (the counters are exact).
    for kind, tokens in (("input", usage.prompt_tokens), ("output", usage.completion_tokens)):
        assert value(text, "openai_gateway_token_usage_count", token_type=kind, **labels) == 1
        recorded_sum = value(text, "openai_gateway_token_usage_sum", token_type=kind, **labels)
        assert abs(recorded_sum - tokens) <= max(0.5, 0.05 * tokens), (kind, recorded_sum, tokens)
    # The counters agree with the histograms.
    assert value(text, "openai_gateway_completion_tokens_total", key_id="test-latency",
                 model=LLAMA_LABEL) == usage.completion_tokens


def test_a_whole_answer_records_a_duration_and_no_time_to_first_token(gateway):
    labels = {"key_id": "test-latency", "model": "qwen2_5-coder-7b-instruct"}
    client = sdk(gateway, "sk-test-latency", default_headers={"x-mock-delay-ms": "120"})
    before = scrape(gateway)
    resp = client.chat.completions.create(model="qwen2.5-coder-7b-instruct", messages=HI)
    assert resp.usage.prompt_tokens > 0

    def recorded():
        text = scrape(gateway)
        return (value(text, "openai_gateway_request_duration_milliseconds_count", **labels)
                == value(before, "openai_gateway_request_duration_milliseconds_count", **labels) + 1)
    wait_until(recorded, MERGED, "the answer's duration in the scrape")
    text = scrape(gateway)
    duration = buckets(text, "openai_gateway_request_duration_milliseconds", **labels)
    old = buckets(before, "openai_gateway_request_duration_milliseconds", **labels)
    # 120 ms at the backend: above 100 ms, and (with room for a loaded machine) at most 500.
    assert in_bucket(duration, 100, 500) - in_bucket(old, 100, 500) == 1, duration
    for name in ("time_to_first_token_milliseconds", "time_per_output_token_microseconds"):
        assert (value(text, f"openai_gateway_{name}_count", **labels)
                == value(before, f"openai_gateway_{name}_count", **labels)), name


def configured(gateway_config: dict) -> tuple[set[str], set[str], set[str]]:
    """The label values the configuration allows: key ids, models, backends."""
    def label(v: str) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "_", v)
    keys = {label(k["id"]) for k in gateway_config["api_keys"]} | {"none"}
    models = {label(m["id"]) for m in gateway_config["models"]} | {"none"}
    backends = {label(b) for m in gateway_config["models"]
                for b in ([m["backend"]] if "backend" in m else [x["name"] for x in m["backends"]])}
    return keys, models, backends


def test_labels_stay_within_the_configuration_under_a_flood_of_unknown_models(gateway):
    client = sdk(gateway, "sk-test-latency")
    for i in range(200):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=f"flood-{i}-model", messages=HI)
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "sk-not-a-key-at-all").chat.completions.create(model="flood-x", messages=HI)
    client.chat.completions.create(model=LLAMA, messages=HI)
    wait_until(lambda: value(scrape(gateway), "openai_gateway_requests_total", key_id="test-latency",
                             error_code="model_not_found") >= 200, 5, "the flood counted")
    keys, models, backends = configured(plugin_config(yaml.safe_load(gateway.config_path.read_text())))
    seen = 0
    for name, labels, _ in series(scrape(gateway)):
        if not name.startswith("openai_gateway_"):
            continue
        seen += 1
        assert labels.get("key_id", "none") in keys, (name, labels)
        assert labels.get("model", "none") in models, (name, labels)
        assert labels.get("backend", next(iter(backends))) in backends, (name, labels)
        assert not any("flood" in v for v in labels.values()), (name, labels)
    assert seen > 50


def test_without_the_per_key_label_no_metric_names_a_key():
    bootstrap = demo_bootstrap()
    config = plugin_config(bootstrap)
    config["metrics"] = {"per_key": False}
    set_plugin_config(bootstrap, config)
    gw = start_gateway(bootstrap)
    try:
        client = sdk(gw)
        list(client.chat.completions.create(model=LLAMA, messages=HI, stream=True))
        client.embeddings.create(model="bge-m3", input="hi")
        wait_until(lambda: value(scrape(gw), "openai_gateway_request_duration_milliseconds_count",
                                 model=LLAMA_LABEL) == 1, MERGED, "the stream in the scrape")
        ours = [(n, labels) for n, labels, _ in series(scrape(gw)) if n.startswith("openai_gateway_")]
        assert any(n == "openai_gateway_requests_total" for n, _ in ours)
        assert any(n == "openai_gateway_token_usage_count" for n, _ in ours)
        assert all("key_id" not in labels for _, labels in ours), [x for x in ours if "key_id" in x[1]][:3]
        # Without the label, the other labels still come out right.
        assert value(scrape(gw), "openai_gateway_requests_total", model="bge-m3", status_class="2xx") == 1
    finally:
        gw.stop()


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            if isinstance(node.get("query"), str) and "openai_gateway" in node["query"]:
                exprs.append(node["query"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(dash)
    return exprs


def test_every_metric_the_dashboard_queries_is_exported(gateway):
    """After traffic of the kinds the dashboard shows (answers, a stream, a
    refusal, a priced model; a limiter's 429 is a requests_total series like
    the refusal's), each series the dashboard's queries name is in the
    scrape, with the labels they group by."""
    client = sdk(gateway, "sk-test-latency")
    list(client.chat.completions.create(model=LLAMA, messages=HI, stream=True))
    client.chat.completions.create(model=LLAMA, messages=HI)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=LLAMA, messages=HI, n=2)
    wait_until(lambda: value(scrape(gateway), "openai_gateway_spend_micros_total") > 0, 5, "spend counted")
    exported: dict[str, set[str]] = {}
    for name, labels, _ in series(scrape(gateway)):
        exported.setdefault(name, set()).update(labels)

    queries = dashboard_queries()
    assert len(queries) >= 10, queries
    checked = set()
    for expr in queries:
        names = set(re.findall(r"\bopenai_gateway_\w+", expr))
        assert names, f"a query that reads none of the gateway's metrics: {expr}"
        for name in names:
            assert name in exported, f"{name} (in `{expr}`) is not exported"
            checked.add(name)
        # Every label the query filters or groups by is on what it reads.
        used = set(re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr))
        used = {l.strip() for group in used for l in group.split(",") if l.strip()}
        used |= set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)\s*\"", expr))
        for label in used - {"le"}:
            assert any(label in exported[n] for n in names), f"label {label} of `{expr}`"
    # The dashboard covers what the issue of a platform team asks for.
    for wanted in ("openai_gateway_requests_total", "openai_gateway_request_duration_milliseconds_bucket",
                   "openai_gateway_time_to_first_token_milliseconds_bucket",
                   "openai_gateway_time_per_output_token_microseconds_bucket",
                   "openai_gateway_completion_tokens_total", "openai_gateway_backend_live",
                   "openai_gateway_spend_micros_total"):
        assert wanted in checked, wanted


def test_the_dashboard_is_importable_json():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["panels"]
    assert dash["uid"]
    # A datasource input, so Grafana asks which Prometheus on import.
    assert any(i.get("pluginId") == "prometheus" for i in dash.get("__inputs", []))
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
