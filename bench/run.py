#!/usr/bin/env python3
"""make bench: the gateway filter against plain Envoy (the ceiling) and a no-op
Wasm filter (the floor of the approach), same Envoy, same routes, same
upstream, --concurrency 1, measured scenario by scenario in one run.

Writes bench/results.json and bench/results.md. BENCH_SECONDS sets each
measurement's length (default 5)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/e2e"))
from harness import (WASM, _hcm, demo_bootstrap, envoy_binary, free_port, localize,  # noqa: E402
                     start_backend, stop, wait_until)

import yaml  # noqa: E402

NOOP_WASM = ROOT / "target/wasm32-wasip1/release/noop_filter.wasm"
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
TICKS = os.sysconf("SC_CLK_TCK")


def chat_body(size: int) -> str:
    base = {"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": ""}], "max_tokens": 16}
    filler = size - len(json.dumps(base))
    base["messages"][0]["content"] = "lorem ipsum " * (max(filler, 0) // 12)
    return json.dumps(base)


SCENARIOS = [
    # name, path, body, key, connections
    ("chat 1 KB", "/v1/chat/completions", chat_body(1024), "sk-demo", 32),
    ("chat 64 KB", "/v1/chat/completions", chat_body(65536), "sk-demo", 32),
    ("rejected (bad key)", "/v1/chat/completions", chat_body(1024), "sk-wrong", 32),
    ("embeddings + rewrite", "/v1/embeddings", json.dumps({"model": "bge-m3", "input": ["a sentence to embed"] * 8}), "sk-demo", 32),
    ("chat 1 KB, 1 connection", "/v1/chat/completions", chat_body(1024), "sk-demo", 1),
]


def variants() -> dict[str, dict]:
    demo = demo_bootstrap()
    hcm = _hcm(demo)
    router = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.router")
    gateway_filter = copy.deepcopy(hcm["http_filters"][0])
    out = {}
    plain = copy.deepcopy(demo)
    _hcm(plain)["http_filters"] = [router]
    out["plain"] = plain
    noop = copy.deepcopy(demo)
    wasm = copy.deepcopy(gateway_filter)
    wasm["typed_config"]["config"].update(name="noop", root_id="noop")
    wasm["typed_config"]["config"]["vm_config"]["vm_id"] = "noop"
    wasm["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(NOOP_WASM)
    del wasm["typed_config"]["config"]["configuration"]
    _hcm(noop)["http_filters"] = [wasm, router]
    out["noop wasm"] = noop
    gateway = copy.deepcopy(demo)
    for f in _hcm(gateway)["http_filters"]:
        if f["name"] == "envoy.filters.http.local_ratelimit":
            # The demo's limiters, with buckets the benchmark cannot empty.
            for d in f["typed_config"]["descriptors"]:
                d["token_bucket"] = {"max_tokens": 10**9, "tokens_per_fill": 10**9, "fill_interval": "1s"}
    out["gateway"] = gateway
    if os.environ.get("BENCH_FILTER_ONLY"):
        alone = copy.deepcopy(demo)
        _hcm(alone)["http_filters"] = [copy.deepcopy(gateway_filter), router]
        out["gateway"] = alone
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_envoy(bootstrap: dict, backend_port: int, tmp: Path, name: str):
    listen, admin = free_port(), free_port()
    config = localize(bootstrap, listen, admin, {"backend-a": backend_port, "backend-b": backend_port})
    if name == "noop wasm":
        _hcm(config)["http_filters"][0]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(NOOP_WASM)
    _hcm(config).pop("access_log", None)  # measure the filter, not logging
    path = tmp / f"{name.replace(' ', '_')}.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([envoy_binary(), "-c", str(path), "--concurrency", "1", "--disable-hot-restart",
                             "--log-level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1).status == 200, 20, name)
    return proc, listen


def wrk(port: int, path: str, body: str, key: str, connections: int, tmp: Path, seconds: int = SECONDS) -> dict:
    script = tmp / "request.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{body}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        # Plain Envoy has no filter to choose the backend: the client names it.
        'wrk.headers["x-gateway-backend"] = "backend-a"\n')
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=seconds + 30).stdout
    def latency(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1_000_000}[m.group(2)]
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "requests": requests,
            "p50_us": latency(50), "p99_us": latency(99), "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


def main() -> int:
    for needed in (WASM, NOOP_WASM):
        if not needed.is_file():
            raise SystemExit(f"missing {needed}: run `make bench` (it builds everything)")
    backend = start_backend("backend-a")
    procs = []
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            envoys = {}
            for name, bootstrap in variants().items():
                proc, port = start_envoy(bootstrap, backend.port, tmp, name)
                procs.append(proc)
                envoys[name] = (proc, port)
            for scenario, path, body, key, connections in SCENARIOS:
                row = {"scenario": scenario, "body_bytes": len(body), "connections": connections}
                for name, (proc, port) in envoys.items():
                    wrk(port, path, body, key, connections, tmp, seconds=1)  # warm up
                    before = cpu_seconds(proc.pid)
                    measured = wrk(port, path, body, key, connections, tmp)
                    used = cpu_seconds(proc.pid) - before
                    measured["envoy_cpu_us_per_request"] = round(used * 1e6 / max(measured["requests"], 1), 1)
                    row[name] = measured
                row["gateway/plain"] = round(row["gateway"]["rps"] / row["plain"]["rps"], 2)
                row["noop/plain"] = round(row["noop wasm"]["rps"] / row["plain"]["rps"], 2)
                results.append(row)
                print(f"{scenario}: gateway/plain {row['gateway/plain']}, noop/plain {row['noop/plain']}", flush=True)
    finally:
        for proc in procs:
            stop(proc)
        stop(backend.proc)
    meta = {"seconds": SECONDS, "envoy_concurrency": 1, "wasm_bytes": WASM.stat().st_size,
            "noop_wasm_bytes": NOOP_WASM.stat().st_size, "cpus": os.cpu_count()}
    (ROOT / "bench/results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    lines = ["| scenario | plain req/s | no-op req/s | gateway req/s | no-op/plain | gateway/plain | p50 plain / gateway (µs) | p99 plain / gateway (µs) | Envoy CPU µs/req plain / no-op / gateway |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        p, n, g = r["plain"], r["noop wasm"], r["gateway"]
        lines.append(f"| {r['scenario']} | {p['rps']:.0f} | {n['rps']:.0f} | {g['rps']:.0f} | {r['noop/plain']} | {r['gateway/plain']} "
                     f"| {p['p50_us']:.0f} / {g['p50_us']:.0f} | {p['p99_us']:.0f} / {g['p99_us']:.0f} "
                     f"| {p['envoy_cpu_us_per_request']} / {n['envoy_cpu_us_per_request']} / {g['envoy_cpu_us_per_request']} |")
    table = "\n".join(lines) + f"\n\n.wasm: {meta['wasm_bytes']} bytes (no-op: {meta['noop_wasm_bytes']}); {SECONDS} s per measurement, wrk 1 thread, Envoy --concurrency 1, {meta['cpus']} CPUs.\n"
    (ROOT / "bench/results.md").write_text(table)
    print("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
