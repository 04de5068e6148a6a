"""Starts real processes for end-to-end tests: mock model backends and Envoy
with the built filter, on free loopback ports, stopped by PID afterwards.

The Envoy configuration is the demo's own (envoy/demo.yaml), moved to free
ports, with test-only additions (see `test_overlay`). Also the helpers several
test files share: the SDK client (`sdk`), what a backend received
(`last_request`, `header`, `nothing_reached`), and Envoy's config validation
(`envoy_validate`)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import sys

import yaml
from openai import OpenAI

import secrets_audit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import ecds  # noqa: E402  (scripts/ecds.py: the ECDS file's shape and writes)
WASM = ROOT / "target/wasm32-wasip1/release/openai_gateway.wasm"
MOCK = ROOT / "target/tools/mock-backend"
DEMO_CONFIG = ROOT / "envoy/demo.yaml"
GLOBAL_CONFIG = ROOT / "envoy/global-ratelimit.yaml"
RLS_CONFIG = ROOT / "envoy/ratelimit-config.yaml"
RLS = ROOT / "target/tools/ratelimit-double"

ENVOY_LOG_LEVEL = os.environ.get("ENVOY_LOG_LEVEL", "info")
# The filter (Envoy's `wasm` component) logs at debug level in every run, so the
# secrets audit reads what an operator's debug logs would hold. Not Envoy's own
# `http`/`conn_manager`/`router` debug logs: those print every request header,
# Authorization included (Envoy's behaviour, see SECURITY.md).
WASM_LOG_LEVEL = os.environ.get("ENVOY_WASM_LOG_LEVEL", "debug")


def envoy_binary() -> str:
    out = subprocess.run([str(ROOT / "scripts/envoy-bin")], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def envoy_validate(path: Path) -> subprocess.CompletedProcess:
    """`envoy --mode validate` of the bootstrap at `path` (which also loads the
    .wasm and runs its on_configure), from the repository root."""
    return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} ({last})")


def http_get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@dataclass
class Backend:
    name: str
    port: int
    proc: subprocess.Popen
    args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_label(self) -> str:
        return f"{self.name}-{self.port}"

    def requests(self) -> list[dict]:
        """What this backend received, oldest first."""
        return http_get_json(f"{self.url}/__mock/requests")["requests"]

    def clear(self) -> None:
        secrets_audit.keep(self)
        req = urllib.request.Request(f"{self.url}/__mock/requests", method="DELETE")
        urllib.request.urlopen(req, timeout=5).close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            secrets_audit.keep(self, stopping=True)
        stop(self.proc)

    def restart(self) -> None:
        """Starts a stopped backend again, on the same port."""
        assert self.proc.poll() is not None, f"{self.name} is running"
        self.proc = _spawn_backend(self.name, self.port, self.args)
        _wait_backend(self)
        secrets_audit.track(self)

    def control(self, what: str, body: dict) -> None:
        """PUT /__mock/<what> (`probe` mode, `models` listed)."""
        req = urllib.request.Request(f"{self.url}/__mock/{what}", method="PUT", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()


# --- what the tests send, and what the backends received ---------------------------

HI = [{"role": "user", "content": "Say hello"}]


def sdk(gateway, key: str = "sk-demo", **options) -> OpenAI:
    """The real OpenAI SDK pointed at `gateway`, without retries unless
    `options` (OpenAI's keyword arguments) say otherwise: each call is then
    exactly one attempt."""
    return OpenAI(base_url=gateway.base_url, api_key=key, **{"max_retries": 0, **options})


def last_request(backend: Backend) -> dict:
    reqs = backend.requests()
    assert reqs, f"{backend.name} received nothing"
    return reqs[-1]


def header(record: dict, name: str) -> list[str]:
    """Every value of header `name` in a backend's record of a request."""
    return [v for n, v in record["headers"] if n == name]


def nothing_reached(backends: dict[str, Backend]) -> bool:
    return all(not b.requests() for b in backends.values())


def _spawn_backend(name: str, port: int, args: tuple[str, ...]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(MOCK), "--name", name, "--listen", f"127.0.0.1:{port}", "--threads", "1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_backend(backend: Backend) -> None:
    wait_until(lambda: http_get_json(f"{backend.url}/__mock/health")["backend"] == backend.name, 10,
               f"backend {backend.name}")


def start_backend(name: str, args: tuple[str, ...] = ()) -> Backend:
    """A mock backend; `args` are more of its command-line flags (`--models`)."""
    port = free_port()
    backend = Backend(name, port, _spawn_backend(name, port, args), args)
    _wait_backend(backend)
    secrets_audit.track(backend)
    return backend


def plugin_config(bootstrap: dict) -> dict:
    """The gateway filter's JSON configuration inside an Envoy bootstrap."""
    wasm = _wasm_filter(bootstrap)
    return json.loads(wasm["typed_config"]["config"]["configuration"]["value"])


def set_plugin_config(bootstrap: dict, config: dict) -> None:
    _wasm_filter(bootstrap)["typed_config"]["config"]["configuration"]["value"] = json.dumps(config)


connection_manager = ecds.connection_manager


def _wasm_filter(bootstrap: dict) -> dict:
    return next(f for f in connection_manager(bootstrap)["http_filters"] if f["name"] == "envoy.filters.http.wasm")


@dataclass
class Gateway:
    port: int
    admin_port: int
    backends: dict[str, Backend]
    proc: subprocess.Popen
    log_path: Path
    config_path: Path
    tmp: tempfile.TemporaryDirectory = field(repr=False)
    owns_backends: bool = True
    # The watched extension config file, when the filter comes from ECDS.
    ecds_path: Path | None = None
    ecds_name: str = ecds.FILTER_NAME

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def clear_backends(self) -> None:
        for b in self.backends.values():
            b.clear()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_log(self) -> str:
        path = self.log_path.parent / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def ecds_stats(self) -> dict[str, str]:
        """Envoy's extension config discovery stats of the gateway filter, by
        their last name part (update_success, update_rejected, version_text…)."""
        prefix = f"extension_config_discovery.http_filter.{self.ecds_name}."
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats?filter=extension_config_discovery",
                                    timeout=5) as r:
            text = r.read().decode()
        return {line.split(": ", 1)[0][len(prefix):]: line.split(": ", 1)[1].strip().strip('"')
                for line in text.splitlines() if line.startswith(prefix) and ": " in line}

    def stop(self) -> None:
        stop(self.proc)
        if self.owns_backends:
            for b in self.backends.values():
                b.stop()
        self.tmp.cleanup()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def demo_bootstrap() -> dict:
    return yaml.safe_load(DEMO_CONFIG.read_text())


def global_bootstrap() -> dict:
    return yaml.safe_load(GLOBAL_CONFIG.read_text())


@dataclass
class RateLimitService:
    """The test double of Envoy's rate-limit service (tools/ratelimit-double)."""
    grpc_port: int
    http_port: int
    proc: subprocess.Popen

    @property
    def audit_label(self) -> str:
        return f"ratelimit-{self.grpc_port}"

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def configure(self, config: dict) -> None:
        self._call("PUT", "/config", config)

    def mode(self, mode: str, **extra) -> None:
        self._call("PUT", "/mode", {"mode": mode, **extra})

    def requests(self) -> list[dict]:
        return self._call("GET", "/requests")["requests"]

    def reset(self) -> None:
        """Forgets every counter: each limit starts a fresh window."""
        self._call("POST", "/reset")

    def clear_requests(self) -> None:
        secrets_audit.keep(self)
        self._call("DELETE", "/requests")

    def stop(self) -> None:
        if self.proc.poll() is None:
            secrets_audit.keep(self, stopping=True)
        stop(self.proc)


def ratelimit_config_with_test_keys() -> dict:
    """envoy/ratelimit-config.yaml plus limits for the test keys."""
    config = yaml.safe_load(RLS_CONFIG.read_text())
    for top in config["descriptors"]:
        if top["value"] == "requests":
            top["descriptors"].append({"key": "key_id", "value": "test-slow",
                                       "rate_limit": {"unit": "second", "requests_per_unit": 1, "name": "requests"}})
        if top["value"] == "tokens":
            top["descriptors"].append({"key": "key_id", "value": "test-tokens",
                                       "rate_limit": {"unit": "minute", "requests_per_unit": 2000, "name": "tokens"}})
            top["descriptors"].append({"key": "key_id", "value": "test-settle",
                                       "rate_limit": {"unit": "minute", "requests_per_unit": 100, "name": "tokens"}})
    return config


def start_ratelimit_service() -> RateLimitService:
    grpc_port, http_port = free_port(), free_port()
    proc = subprocess.Popen([str(RLS), "--grpc", f"127.0.0.1:{grpc_port}", "--http", f"127.0.0.1:{http_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    service = RateLimitService(grpc_port, http_port, proc)
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=1).status == 200,
               10, "rate-limit service")
    service.configure(ratelimit_config_with_test_keys())
    secrets_audit.track(service)
    return service


def localize(bootstrap: dict, listen_port: int, admin_port: int, backend_ports: dict[str, int]) -> dict:
    """The bootstrap on the given ports, loading the built .wasm by absolute path."""
    b = copy.deepcopy(bootstrap)
    b["admin"]["address"]["socket_address"]["port_value"] = admin_port
    b["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = listen_port
    for cluster in b["static_resources"]["clusters"]:
        name = cluster["name"]
        addr = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        addr["port_value"] = backend_ports[name]
    for f in connection_manager(b)["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(WASM)
    return b


def log_access_to(bootstrap: dict, path: Path) -> None:
    """The bootstrap's stdout access log, written to `path` instead (same format)."""
    for log in connection_manager(bootstrap).get("access_log", []):
        config = log["typed_config"]
        log["name"] = "envoy.access_loggers.file"
        log["typed_config"] = {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                               "path": str(path), "log_format": config["log_format"]}


# The demo's keys (envoy/demo.yaml holds only their hashes).
DEMO_KEYS = ("sk-demo", "sk-demo-limited", "sk-demo-budget")
# Test-only additions to the demo configuration.
TEST_KEYS = {
    # Restricted to the embeddings model.
    "sk-test-embeddings-only-0123456789": {"id": "embeddings-only", "models": ["bge-m3"]},
    # One request per 2 seconds (retry timing).
    "sk-test-slow": {"id": "test-slow"},
    # 2000 tokens per minute (token limits).
    "sk-test-tokens": {"id": "test-tokens"},
    # Used only by the usage-accounting test, so its counters start at zero.
    "sk-test-metrics": {"id": "test-metrics"},
    # 100 tokens per minute in the rate-limit service (settlement).
    "sk-test-settle": {"id": "test-settle"},
    # Used only by the histogram tests, so its histograms start empty.
    "sk-test-latency": {"id": "test-latency"},
}
# Extra local buckets for the test keys: (limiter stat_prefix, key id, bucket).
TEST_BUCKETS = [
    ("gateway_requests", "test-slow", {"max_tokens": 1, "tokens_per_fill": 1, "fill_interval": "2s"}),
    ("gateway_tokens", "test-tokens", {"max_tokens": 2000, "tokens_per_fill": 2000, "fill_interval": "60s"}),
]


def client_keys() -> set[str]:
    """Every client API key the suite sends: the demo's, the test overlay's, and
    every `sk-…` literal in the tests (the wrong keys too). The secrets audit
    looks for each of them."""
    keys = set(DEMO_KEYS) | set(TEST_KEYS)
    for source in Path(__file__).parent.glob("*.py"):
        keys.update(re.findall(r"[\"'](sk-[A-Za-z0-9_-]{4,})", source.read_text()))
    return keys


def server_secrets(bootstrap: dict) -> list[str]:
    """The gateway's own secrets in its plugin configuration: the credentials it
    sends to backends and the secret that signs its ids."""
    config = plugin_config(bootstrap)
    return [b.get("authorization") for b in config.get("backends", [])] + [config.get("id_secret")]


DEAD_BACKEND = "backend-dead"      # routed, but nothing listens there
UNROUTED_BACKEND = "backend-unrouted"  # no Envoy route names it


def test_overlay(bootstrap: dict, dead_port: int) -> dict:
    b = copy.deepcopy(bootstrap)
    config = plugin_config(b)
    for key, entry in TEST_KEYS.items():
        config["api_keys"].append({"sha256": sha256_hex(key), **entry})
    config["models"] += [
        {"id": "offline-model", "category": "text", "backend": DEAD_BACKEND},
        {"id": "unrouted-model", "category": "text", "backend": UNROUTED_BACKEND},
    ]
    set_plugin_config(b, config)
    for f in connection_manager(b)["http_filters"]:
        if f["name"] != "envoy.filters.http.local_ratelimit":
            continue  # the fleet's limits live in the rate-limit service
        prefix = f["typed_config"].get("stat_prefix")
        for limiter, key_id, bucket in TEST_BUCKETS:
            if prefix == limiter:
                kind = "requests" if limiter == "gateway_requests" else "tokens"
                f["typed_config"]["descriptors"].insert(0, {
                    "entries": [{"key": "limit", "value": kind}, {"key": "key_id", "value": key_id}],
                    "token_bucket": bucket})
    routes = connection_manager(b)["route_config"]["virtual_hosts"][0]["routes"]
    routes.append({
        "match": {"prefix": "/v1/", "headers": [{"name": "x-gateway-backend", "string_match": {"exact": DEAD_BACKEND}}]},
        "route": {"cluster": DEAD_BACKEND, "timeout": "5s"},
    })
    b["static_resources"]["clusters"].append({
        "name": DEAD_BACKEND,
        "type": "STATIC",
        "connect_timeout": "0.5s",
        "load_assignment": {"cluster_name": DEAD_BACKEND, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": dead_port}}}}]}]},
    })
    return b


def start_gateway(bootstrap: dict | None = None, backend_names=("backend-a", "backend-b"),
                  extra_ports: dict[str, int] | None = None, shared_backends: dict | None = None,
                  component_log_level: str | None = None, audited: bool = True,
                  backend_args: dict[str, tuple[str, ...]] | None = None,
                  ecds_name: str | None = None, extension: dict | None = None,
                  twin_clusters: dict[str, str] | None = None) -> Gateway:
    """Envoy with `bootstrap` (default: the demo's) plus the test overlay.
    `extra_ports` maps further cluster names (e.g. `ratelimit`) to ports;
    `shared_backends` puts this Envoy in front of another gateway's backends
    (a second replica; stopping it leaves them running).
    `component_log_level` is Envoy's `--component-log-level` (default: the
    filter at WASM_LOG_LEVEL). The logs of an `audited` gateway stay until the
    end of the session, for the secrets audit (conftest.py). `backend_args`
    maps backend names to more mock-backend flags. With `ecds_name`, the
    gateway filter is read from a watched file (scripts/ecds.py `to_ecds`, as
    envoy/ecds.yaml), under that resource name; `extension` replaces the
    file's Wasm filter configuration (for example one from an Istio manifest).
    `twin_clusters` maps further cluster names to the backend whose port they
    share."""
    owned = shared_backends is None
    backend_args = backend_args or {}
    backends = ({name: start_backend(name, backend_args.get(name, ())) for name in backend_names}
                if owned else dict(shared_backends))
    proc = None
    try:
        ports = {name: b.port for name, b in backends.items()}
        ports[DEAD_BACKEND] = free_port()  # nothing listens there
        ports.update(extra_ports or {})
        ports.update({cluster: ports[backend] for cluster, backend in (twin_clusters or {}).items()})
        listen_port, admin_port = free_port(), free_port()
        source = test_overlay(bootstrap if bootstrap is not None else demo_bootstrap(), ports[DEAD_BACKEND])
        config = localize(source, listen_port, admin_port, ports)
        tmp = tempfile.TemporaryDirectory(prefix="gateway-e2e-")
        log_dir = secrets_audit.new_log_dir("gateway") if audited else Path(tmp.name)
        if audited:
            secrets_audit.add_server_secrets(server_secrets(config))
        log_access_to(config, log_dir / "access.log")
        ecds_path = None
        if ecds_name:
            ecds_dir = Path(tmp.name) / "ecds"
            ecds_dir.mkdir()
            ecds_path = ecds_dir / "openai_gateway.yaml"
            config, response = ecds.to_ecds(config, str(ecds_path), str(ecds_dir), ecds_name)
            if extension is not None:
                response = ecds.discovery_response(extension, "initial", ecds_name)
            ecds.write_atomically(ecds_path, response)
        config_path = Path(tmp.name) / "envoy.yaml"
        config_path.write_text(yaml.safe_dump(config))
        log_path = log_dir / "envoy.log"
        proc = subprocess.Popen(
            [envoy_binary(), "-c", str(config_path), "--concurrency", "2", "--disable-hot-restart",
             # Access logs reach their file within 100 ms (the default is 10 s).
             "--file-flush-interval-msec", "100",
             "--log-level", ENVOY_LOG_LEVEL, "--log-path", str(log_path),
             "--component-log-level", component_log_level or f"wasm:{WASM_LOG_LEVEL}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        gateway = Gateway(listen_port, admin_port, backends, proc, log_path, config_path, tmp, owns_backends=owned,
                          ecds_path=ecds_path, ecds_name=ecds_name or ecds.FILTER_NAME)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"Envoy exited with {proc.returncode}:\n{gateway.log()[-3000:]}")
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as r:
                return r.status == 200

        wait_until(ready, 20, "Envoy /ready")
        return gateway
    except BaseException:
        if proc is not None:
            stop(proc)
        if owned:
            for b in backends.values():
                b.stop()
        raise


def scrape(gateway) -> str:
    """Envoy's Prometheus text: what a Prometheus scraping the gateway reads."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.admin_port}/stats/prometheus", timeout=5) as r:
        return r.read().decode()


def series(text: str) -> list[tuple[str, dict, float]]:
    """Every sample line: (name, labels, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)', line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def value(text: str, name: str, **labels) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(v for n, found, v in series(text)
               if n == name and all(found.get(k) == want for k, want in labels.items()))


def no_unresolved_costs(gw) -> bool:
    """Envoy wrote no `Invalid hits_addend` warning (a rate limit whose cost
    did not resolve) up to now: a marker request's log line shows that the
    log has been written that far."""
    marker = f"/v1/log-marker-{time.monotonic_ns()}"
    try:
        urllib.request.urlopen(urllib.request.Request(f"{gw.origin}{marker}", method="POST"), timeout=5)
    except urllib.error.HTTPError:
        pass  # 401: the marker only has to reach the log
    wait_until(lambda: marker in gw.log(), 10, "the marker in Envoy's log")
    return "Invalid hits_addend" not in gw.log()
