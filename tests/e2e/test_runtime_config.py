"""Changing the configuration while Envoy serves: the gateway filter's
configuration comes from a watched file through Envoy's extension config
discovery (envoy/ecds.yaml's shape, Envoy at --concurrency 2), and is
replaced by rename (scripts/ecds.py) under steady load from wrk and the SDK.

Asserted from the responses: a new key works within seconds of the write and
a revoked one gets 401 from then on, on every worker; a new model is listed
and routed; the load sees no failure and no request routed by the old
configuration once the new one is in; streams that started before the change
complete; an issued id still resolves. Invalid configurations are refused by
the filter, Envoy keeps the previous one (its update_rejected stat says so)
and the log says what was wrong. Probes and request limits change as keys
and models do. The Istio manifest's extension config serves traffic through
the same discovery."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request

import httpx
import openai
import pytest
import yaml

from harness import HI, ROOT, WASM, connection_manager, ecds, sdk, sha256_hex, start_gateway, wait_until

LLAMA = "llama-3.1-8b-instruct"
NEW_KEY = "sk-rotated-in-0123456789"
REVOKED_KEY = "sk-revoked-0123456789"
NEW_MODEL = "fresh-model-v2"


def without_limiters(bootstrap: dict) -> dict:
    """The demo's limiters would refuse the steady load: this test is about
    the configuration, not the limits."""
    hcm = connection_manager(bootstrap)
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.local_ratelimit"]
    return bootstrap


@pytest.fixture(scope="module")
def ecds_gateway():
    gw = start_gateway(without_limiters(yaml.safe_load((ROOT / "envoy/demo.yaml").read_text())),
                       ecds_name=ecds.FILTER_NAME)
    yield gw
    gw.stop()


def current(gw) -> dict:
    return ecds.plugin_config(ecds.read(gw.ecds_path))


def apply(gw, config) -> str:
    """Writes `config` (a dict, or raw JSON text) by rename; its version."""
    response = ecds.with_plugin_config(ecds.read(gw.ecds_path), config)
    ecds.write_atomically(gw.ecds_path, response)
    return response["version_info"]


def wait_applied(gw, version: str) -> None:
    wait_until(lambda: gw.ecds_stats().get("version_text") == version, 10, f"version {version} serving")


def apply_good(gw, config: dict) -> None:
    """Applies a valid configuration, waits for it, and remembers it: after a
    refused one, the file holds the refused one."""
    wait_applied(gw, apply(gw, config))
    gw.good = config


def local_wasm(typed_config: dict) -> dict:
    """A Wasm filter configuration loading this checkout's build."""
    out = copy.deepcopy(typed_config)
    out["config"]["vm_config"]["code"]["local"]["filename"] = str(WASM)
    return out


def status(gw, key: str, path: str = "/v1/models") -> int:
    """One request on its own connection (so both workers see some)."""
    req = urllib.request.Request(f"{gw.origin}{path}", headers={"Authorization": f"Bearer {key}",
                                                                  "Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def statuses(gw, key: str, n: int = 40) -> dict[int, int]:
    out: dict[int, int] = {}
    for _ in range(n):
        code = status(gw, key)
        out[code] = out.get(code, 0) + 1
    return out


def worker_connections(gw) -> dict[str, int]:
    """Connections each Envoy worker has accepted on the gateway's listener."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.admin_port}/stats?filter=worker_", timeout=5) as r:
        text = r.read().decode()
    found = re.findall(rf"listener\.127\.0\.0\.1_{gw.port}\.(worker_\d+)\.downstream_cx_total: (\d+)", text)
    return {worker: int(n) for worker, n in found}


def on_every_worker(gw, key: str, want: int) -> None:
    """40 requests, each on its own connection, all answered `want`, and
    every worker accepted some of them."""
    before = worker_connections(gw)
    assert statuses(gw, key) == {want: 40}
    after = worker_connections(gw)
    assert len(after) == 2 and all(after[w] > before.get(w, 0) for w in after), (before, after)


def with_key(config: dict, key: str, key_id: str) -> dict:
    config = dict(config)
    config["api_keys"] = config["api_keys"] + [{"id": key_id, "sha256": sha256_hex(key)}]
    return config


class Load:
    """Steady load while the configuration changes: wrk (many connections,
    chats with a key every configuration keeps) and SDK threads that record
    when each request started, how it ended and which backend answered."""

    def __init__(self, gw, seconds: float):
        self.gw = gw
        self.results: list[tuple[float, str, str]] = []  # (started, outcome, backend)
        self.streams: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        script = gw.config_path.parent / "load.lua"
        body = '{"model": "%s", "messages": [{"role": "user", "content": "Say hello"}]}' % LLAMA
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = '{body}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.headers["Authorization"] = "Bearer sk-demo"\n')
        self.wrk = subprocess.Popen(["wrk", "-t1", "-c2", f"-d{int(seconds)}s", "-s", str(script),
                                     f"{gw.origin}/v1/chat/completions"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.threads = [threading.Thread(target=self.chats, daemon=True) for _ in range(2)]
        self.threads.append(threading.Thread(target=self.stream_loop, daemon=True))
        for t in self.threads:
            t.start()

    def record(self, started: float, outcome: str, backend: str = "") -> None:
        with self.lock:
            self.results.append((started, outcome, backend))

    def chats(self) -> None:
        client = sdk(self.gw)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                resp = client.chat.completions.create(model=LLAMA, messages=HI)
                backend = resp.choices[0].message.content.removeprefix("Hello from ").rstrip(".")
                self.record(started, "200", backend)
            except openai.APIStatusError as e:
                self.record(started, str(e.status_code))
            except Exception as e:  # a cut or refused connection
                self.record(started, type(e).__name__)

    def stream_loop(self) -> None:
        """Paced streams (about a second each), back to back."""
        client = sdk(self.gw, default_headers={"x-mock-stream-delay-ms": "200"})
        while not self.stop.is_set():
            started = time.monotonic()
            result = complete_stream(client)
            with self.lock:
                self.streams.append((started, result))

    def finish(self) -> str:
        out, _ = self.wrk.communicate(timeout=120)
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        return out


def complete_stream(client) -> str:
    """'complete' when a stream ended with its finish reason and usage."""
    try:
        chunks = list(client.chat.completions.create(
            model=LLAMA, messages=HI, stream=True, stream_options={"include_usage": True}))
    except Exception as e:
        return type(e).__name__
    finished = any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    return "complete" if finished and chunks[-1].usage else f"incomplete after {len(chunks)} chunks"


def wrk_counts(out: str) -> tuple[int, int, str]:
    """wrk's total requests, its non-2xx count and its socket errors line."""
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return total, int(non_2xx.group(1)) if non_2xx else 0, errors.group(0) if errors else ""


def test_keys_models_and_routes_change_under_load_without_a_failed_request(ecds_gateway):
    gw = ecds_gateway
    base = current(gw)
    # v1: the key that will be revoked exists, llama is served by backend-a.
    v1 = with_key(base, REVOKED_KEY, "revoked-soon")
    v1["models"] = [dict(m, backends=[{"name": "backend-a"}]) if m["id"] == LLAMA else m for m in v1["models"]]
    for m in v1["models"]:
        if m["id"] == LLAMA:
            m.pop("backend", None)
    apply_good(gw, v1)
    assert statuses(gw, REVOKED_KEY, 10) == {200: 10}
    assert statuses(gw, NEW_KEY, 4) == {401: 4}
    # An id issued under v1 (a stored response), and a long stream begun under v1.
    stored = sdk(gw).responses.create(model="deepseek-r1-distill-qwen-7b", input="keep me")
    long_stream: dict = {}
    slow = sdk(gw, default_headers={"x-mock-stream-delay-ms": "600"})
    opener = threading.Thread(target=lambda: long_stream.update(result=complete_stream(slow)))

    load = Load(gw, seconds=14)
    time.sleep(2)
    opener.start()
    time.sleep(0.5)

    # v2: a new key, the old one revoked, a new model, llama moved to backend-b.
    v2 = with_key(v1, NEW_KEY, "rotated-in")
    v2["api_keys"] = [k for k in v2["api_keys"] if k["id"] != "revoked-soon"]
    v2["models"] = [dict(m, backends=[{"name": "backend-b"}]) if m["id"] == LLAMA else m for m in v2["models"]]
    v2["models"].append({"id": NEW_MODEL, "category": "text", "backend": "backend-b"})
    written = time.monotonic()
    apply(gw, v2)
    gw.good = v2
    wait_until(lambda: status(gw, NEW_KEY) == 200, 10, "the new key to work")
    works_after = time.monotonic() - written
    switched = time.monotonic()
    assert works_after < 5, works_after
    # Every worker switched.
    on_every_worker(gw, NEW_KEY, 200)
    on_every_worker(gw, REVOKED_KEY, 401)
    listed = [m.id for m in sdk(gw, NEW_KEY).models.list()]
    assert NEW_MODEL in listed
    fresh = sdk(gw, NEW_KEY).chat.completions.create(model=NEW_MODEL, messages=HI)
    assert fresh.choices[0].message.content == "Hello from backend-b."
    assert fresh.model == NEW_MODEL
    # The id issued before the change resolves after it (id_secret unchanged).
    assert sdk(gw).responses.retrieve(stored.id).id == stored.id

    wrk_out = load.finish()
    opener.join(timeout=30)
    total, non_2xx, socket_errors = wrk_counts(wrk_out)
    assert total > 100, wrk_out
    assert non_2xx == 0 and not socket_errors, wrk_out
    outcomes: dict[str, int] = {}
    for _, outcome, _ in load.results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert set(outcomes) == {"200"}, outcomes
    # Nothing routed by the old configuration once the new one served, nor
    # by the new one before it was written.
    before = [b for started, _, b in load.results if started < written]
    after = [b for started, _, b in load.results if started > switched + 0.2]
    assert before and after, (len(before), len(after))
    assert set(before) == {"backend-a"}, set(before)
    assert set(after) == {"backend-b"}, set(after)
    assert load.streams and {r for _, r in load.streams} == {"complete"}, load.streams
    assert any(started < written for started, _ in load.streams)
    assert long_stream.get("result") == "complete", long_stream
    print(f"new key served {works_after * 1000:.0f} ms after the write; wrk {total} requests, "
          f"SDK {len(load.results)} chats and {len(load.streams)} streams, all 200")


def test_probes_and_request_limits_change_too(ecds_gateway):
    """A probe that now fails takes its backend's models out of the list, and
    back when it is restored; a lower `limits.max_request_bytes` refuses a
    body the previous configuration took."""
    gw = ecds_gateway
    if not hasattr(gw, "good"):  # run alone
        apply_good(gw, current(gw))
    good = gw.good
    client = sdk(gw)
    coder = "qwen2.5-coder-7b-instruct"  # served by backend-a only
    assert coder in [m.id for m in client.models.list()]
    failing = copy.deepcopy(good)
    for b in failing["backends"]:
        if b["name"] == "backend-a":
            b["probe"] = {"path": "/no-such-health-path", "interval_ms": 200, "timeout_ms": 100}
    apply_good(gw, failing)
    client.chat.completions.create(model=LLAMA, messages=HI)  # a served request starts the probes
    wait_until(lambda: coder not in [m.id for m in client.models.list()], 10, "backend-a out of the list")
    wait_until(lambda: "backend `backend-a`: out of service" in gw.log(), 5, "the change logged")
    apply_good(gw, good)
    client.chat.completions.create(model=LLAMA, messages=HI)
    wait_until(lambda: coder in [m.id for m in client.models.list()], 10, "backend-a back in the list")

    big = "word " * 2000  # a 10 KB body
    assert client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": big}]).choices
    apply_good(gw, dict(good, limits={"max_request_bytes": 4096}))
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": big}])
    assert refused.value.status_code == 413
    assert client.chat.completions.create(model=LLAMA, messages=HI).choices
    apply_good(gw, good)


# (what is written, the log's words, the stat that counts it)
BAD = [
    ("broken JSON", '{"api_keys": [', "not valid configuration JSON", "update_rejected"),
    ("an unknown field", lambda c: dict(c, api_key=[]), "unknown field `api_key`", "update_rejected"),
    ("a key without its hash", lambda c: dict(c, api_keys=c["api_keys"] + [{"id": "no-hash"}]),
     "missing field `sha256`", "update_rejected"),
    ("an undeclared backend", lambda c: dict(c, models=c["models"] + [
        {"id": "nowhere-model", "category": "text", "backends": [{"name": "nowhere"}]}]),
     "nowhere", "update_rejected"),
]


@pytest.mark.parametrize("what,change,words,stat", BAD, ids=[b[0] for b in BAD])
def test_an_invalid_configuration_is_refused_and_the_previous_one_serves(ecds_gateway, what, change, words, stat):
    gw = ecds_gateway
    if status(gw, NEW_KEY) != 200:  # run alone
        apply_good(gw, with_key(current(gw), NEW_KEY, "rotated-in"))
    good = gw.good
    serving = gw.ecds_stats()["version_text"]
    before = gw.ecds_stats()
    log_before = len(gw.log())
    apply(gw, change if isinstance(change, str) else change(good))
    wait_until(lambda: int(gw.ecds_stats()[stat]) == int(before[stat]) + 1, 10, f"Envoy's {stat}")
    after = gw.ecds_stats()
    assert after["version_text"] == serving
    assert after["update_success"] == before["update_success"]
    # The previous configuration serves, on every worker.
    on_every_worker(gw, NEW_KEY, 200)
    assert status(gw, "sk-not-configured-anywhere") == 401
    # One line of the filter's says what was wrong.
    lines = [line for line in gw.log()[log_before:].splitlines()
             if "invalid plugin configuration" in line and words in line]
    assert lines, gw.log()[log_before:][-2000:]


def test_a_broken_file_is_an_update_failure_and_changes_nothing(ecds_gateway):
    gw = ecds_gateway
    before = gw.ecds_stats()
    ecds.write_atomically(gw.ecds_path, "version_info: broken\nresources: [\n")
    wait_until(lambda: int(gw.ecds_stats()["update_failure"]) == int(before["update_failure"]) + 1, 10,
               "Envoy's update_failure")
    assert gw.ecds_stats()["version_text"] == before["version_text"]
    assert status(gw, "sk-demo") == 200


def test_without_a_valid_first_configuration_every_request_gets_an_envelope():
    """Fail closed from the start: Envoy serves no request through a gateway
    it could not configure, and says so in OpenAI's shape."""
    bootstrap = yaml.safe_load((ROOT / "envoy/demo.yaml").read_text())
    wasm = next(f for f in connection_manager(bootstrap)["http_filters"] if f["name"] == "envoy.filters.http.wasm")
    broken = local_wasm(wasm["typed_config"])
    broken["config"]["configuration"] = {
        "@type": "type.googleapis.com/google.protobuf.StringValue", "value": '{"api_keys": "nope"}'}
    gw = start_gateway(bootstrap, ecds_name=ecds.FILTER_NAME, extension=broken, audited=False)
    try:
        resp = httpx.post(f"{gw.base_url}/chat/completions", json={"model": LLAMA, "messages": HI},
                          headers={"Authorization": "Bearer sk-demo"})
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["type"] == "server_error"
        assert "no valid configuration" in resp.json()["error"]["message"]
        assert all(not b.requests() for b in gw.backends.values())
        # A valid configuration then brings it up, without a restart.
        good = ecds.discovery_response(local_wasm(wasm["typed_config"]), "good")
        ecds.write_atomically(gw.ecds_path, good)
        wait_until(lambda: status(gw, "sk-demo") == 200, 15, "the gateway configured")
    finally:
        gw.stop()


ISTIO = ROOT / "examples/istio/envoyfilter-ecds.yaml"


def test_the_istio_extension_config_serves_through_discovery():
    """The EXTENSION_CONFIG of examples/istio/envoyfilter-ecds.yaml, loaded
    as it is (but the .wasm path) through a file, behind an HTTP filter with
    `config_discovery` like the manifest's."""
    manifest = list(yaml.safe_load_all(ISTIO.read_text()))
    patches = [p for doc in manifest for p in doc["spec"]["configPatches"]]
    extension = next(p for p in patches if p["applyTo"] == "EXTENSION_CONFIG")["patch"]["value"]
    asking = next(p for p in patches if p["applyTo"] == "HTTP_FILTER"
                  and "config_discovery" in p["patch"]["value"])["patch"]["value"]
    assert asking["name"] == extension["name"]
    assert asking["config_discovery"]["type_urls"] == [ecds.WASM_TYPE]
    typed_config = local_wasm(extension["typed_config"])
    config = typed_config["config"]
    assert config["allow_on_headers_stop_iteration"] is True
    # The manifest's probes call Istio's outbound clusters: here, twins of the
    # mock backends' clusters.
    probed = {b["probe"]["cluster"]: b["name"] for b in
              json.loads(config["configuration"]["value"]).get("backends", []) if "probe" in b}
    assert probed
    bootstrap = without_limiters(yaml.safe_load((ROOT / "envoy/demo.yaml").read_text()))
    clusters = bootstrap["static_resources"]["clusters"]
    for cluster, backend in probed.items():
        twin = copy.deepcopy(next(c for c in clusters if c["name"] == backend))
        twin["name"] = twin["load_assignment"]["cluster_name"] = cluster
        clusters.append(twin)
    gw = start_gateway(bootstrap, ecds_name=extension["name"], extension=typed_config,
                       twin_clusters=probed, audited=False)
    try:
        client = sdk(gw)
        resp = client.chat.completions.create(model=LLAMA, messages=HI)
        assert resp.choices[0].message.content.startswith("Hello from backend-")
        assert status(gw, "sk-wrong-key-istio") == 401
        assert gw.ecds_stats()["update_success"] == "1"
        # Its probes reach the backends through the manifest's cluster names:
        # after three probe intervals (2 s; two failures take a backend out)
        # every backend is still in service and every model listed.
        time.sleep(6)
        assert "out of service" not in gw.log() and "cannot call cluster" not in gw.log(), gw.log()[-3000:]
        assert LLAMA in [m.id for m in client.models.list()]
    finally:
        gw.stop()
