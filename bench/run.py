#!/usr/bin/env python3
"""make bench: the gateway filter against plain Envoy (the ceiling) and two
floors: a no-op Wasm filter (what hosting any Wasm filter costs) and the bare
routing filter (bench/routing-filter: the least a model router must do, read
`model` from the body and set the route header). Same Envoy binary, same
routes, same upstream, `--concurrency 1`, in one run.

Method (stable on small, noisy machines): every Envoy is pinned to the same
core (CPU 0); each comparison loads plain Envoy and the other Envoy AT THE SAME
MOMENT with two wrk processes pinned to the other core. The kernel splits
CPU 0 between the two Envoys, host noise hits both alike, and the ratio of
their requests/s (and of their CPU-seconds per request, from /proc/PID/stat)
is what we report; absolute figures stand beside it.

Every measurement counts each side's responses by status (a wrk Lua script)
and its socket errors. A side that answers anything but what the scenario
expects (2xx where the request is forwarded; the gateway's intended 4xx in the
rejection scenarios, which plain Envoy and both floors forward), or has a
socket error, ends the run with a non-zero exit and says which: such a figure
is not throughput. The counts are in the results.

Per-worker memory (scenario `workers`): plain Envoy and the gateway Envoy are
started again with `--concurrency` 1, 2, 4 and 8 (still on CPU 0), loaded with
enough connections that every worker accepts some (checked in Envoy's
per-worker listener stats; every response 2xx), and their RSS under load is
sampled; reported with the RSS each extra worker adds.

A/B mode (`--ab A.wasm [B.wasm]`, make bench-ab A=old.wasm [B=new.wasm]): two
builds of the gateway instead, in two Envoys with the same gateway
configuration, co-scheduled against each other in the same way on the wrk
scenarios (or those BENCH_ONLY names): requests/s of each, B/A, CPU µs per
request and the status counts of each side. B defaults to the build of this
checkout; both load this checkout's configuration (a build that refuses it
stops the run, with Envoy's log). Written to bench/ab-results.{json,md}.

Options (environment):
  BENCH_SECONDS        length of each measurement (default 10)
  BENCH_ONLY           comma-separated scenario ids to run (default: all):
                       chat-1k, chat-64k, chat-1m, bad-key, bad-field,
                       embeddings, unloaded, stream, workers, soak
  BENCH_SOAK_REQUESTS  requests for the footprint soak (default 1000000; 0 skips)
  BENCH_FILTER_ONLY=1  the gateway (both sides in A/B mode) without its
                       rate-limit filters
  --peers              scenario 1 only, plus LiteLLM proxy (make bench-peers),
                       written to bench/peers-results.{json,md}
  --ab A [B]           the A/B mode above

Writes bench/results.json and bench/results.md (see BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import copy
import hashlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/e2e"))
from harness import (WASM, connection_manager, demo_bootstrap, envoy_binary, free_port, localize,  # noqa: E402
                     start_backend, stop, wait_until)

import yaml  # noqa: E402

NOOP_WASM = ROOT / "target/wasm32-wasip1/release/noop_filter.wasm"
# The routing filter after wasm-opt, like the gateway (make bench-floors).
ROUTING_WASM = ROOT / "target/wasm32-wasip1/release/routing_floor.wasm"
# The floors' Envoys load these instead of the gateway's .wasm.
FLOOR_WASM = {"noop": NOOP_WASM, "routing": ROUTING_WASM}
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
SOAK_REQUESTS = int(os.environ.get("BENCH_SOAK_REQUESTS", "1000000"))
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
ENVOY_CPU, LOAD_CPU = "0", "1"
MODEL = "llama-3.1-8b-instruct"


def chat_body(size: int, **extra) -> str:
    base = {"model": MODEL, "messages": [{"role": "user", "content": ""}], "max_tokens": 16, **extra}
    filler = size - len(json.dumps(base))
    base["messages"][0]["content"] = "lorem ipsum " * (max(filler, 0) // 12)
    return json.dumps(base)


EMBEDDINGS = json.dumps({"model": "bge-m3", "input": ["a sentence to embed"] * 8})

class Scenario(NamedTuple):
    """One wrk load, measured co-scheduled. `rejected_with`: the status the
    gateway answers instead of forwarding (plain Envoy and both floors forward
    every request); None when the gateway forwards too."""
    id: str
    title: str
    path: str
    body: str
    key: str
    connections: int
    rejected_with: int | None = None


SCENARIOS = [
    Scenario("chat-1k", "chat 1 KB", "/v1/chat/completions", chat_body(1024), "sk-demo", 32),
    Scenario("chat-64k", "chat 64 KB", "/v1/chat/completions", chat_body(65536), "sk-demo", 32),
    Scenario("chat-1m", "chat 1 MB", "/v1/chat/completions", chat_body(1 << 20), "sk-demo", 8),
    Scenario("bad-key", "rejected: bad key", "/v1/chat/completions", chat_body(1024), "sk-wrong", 32, rejected_with=401),
    Scenario("bad-field", "rejected: bad field (n=2)", "/v1/chat/completions", chat_body(1024, n=2), "sk-demo", 32,
             rejected_with=400),
    Scenario("embeddings", "embeddings + encoding_format rewrite", "/v1/embeddings", EMBEDDINGS, "sk-demo", 32),
    Scenario("unloaded", "chat 1 KB, 1 connection (unloaded latency)", "/v1/chat/completions", chat_body(1024),
             "sk-demo", 1),
]
STREAM_ID = "stream"
SOAK_ID = "soak"
WORKERS_ID = "workers"
WORKER_COUNTS = (1, 2, 4, 8)
# The Envoys each scenario co-schedules against plain Envoy, in this order.
OTHERS = ("noop", "routing", "gateway")
# The Envoys that run the gateway filter (the others forward every request).
GATEWAY_SIDES = ("gateway", "a", "b")


def variants() -> dict[str, dict]:
    demo = demo_bootstrap()
    hcm = connection_manager(demo)
    router = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.router")
    gateway_filter = copy.deepcopy(hcm["http_filters"][0])
    out = {}
    plain = copy.deepcopy(demo)
    connection_manager(plain)["http_filters"] = [router]
    out["plain"] = plain
    # The floors: the gateway's filter entry (so also
    # allow_on_headers_stop_iteration, which the routing filter needs to hold
    # the headers) with their own .wasm and no configuration, and the router.
    for floor in FLOOR_WASM:
        bootstrap = copy.deepcopy(demo)
        wasm = copy.deepcopy(gateway_filter)
        wasm["typed_config"]["config"].update(name=floor, root_id=floor)
        wasm["typed_config"]["config"]["vm_config"]["vm_id"] = floor
        del wasm["typed_config"]["config"]["configuration"]
        connection_manager(bootstrap)["http_filters"] = [wasm, router]
        out[floor] = bootstrap
    gateway = copy.deepcopy(demo)
    for f in connection_manager(gateway)["http_filters"]:
        if f["name"] == "envoy.filters.http.local_ratelimit":
            # The demo's limiters, with buckets the benchmark cannot empty.
            for d in f["typed_config"]["descriptors"]:
                d["token_bucket"] = {"max_tokens": 10**9, "tokens_per_fill": 10**9, "fill_interval": "1s"}
    if os.environ.get("BENCH_FILTER_ONLY"):
        connection_manager(gateway)["http_filters"] = [copy.deepcopy(gateway_filter), router]
    out["gateway"] = gateway
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def start_envoy(bootstrap: dict, backend_port: int, tmp: Path, name: str, wasm: Path | None = None,
                concurrency: int = 1):
    """Envoy `name` on CPU 0 with `concurrency` workers; `wasm`: the .wasm its
    Wasm filter loads instead of this checkout's build."""
    listen, admin = free_port(), free_port()
    config = localize(bootstrap, listen, admin, {"backend-a": backend_port, "backend-b": backend_port})
    if wasm is not None:
        for f in connection_manager(config)["http_filters"]:
            if f["name"] == "envoy.filters.http.wasm":
                f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(wasm)
    connection_manager(config).pop("access_log", None)  # measure the filter, not logging
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp / f"{name}.log"
    proc = subprocess.Popen(["taskset", "-c", ENVOY_CPU, envoy_binary(), "-c", str(path), "--concurrency", str(concurrency),
                             "--disable-hot-restart", "--log-level", "warn", "--log-path", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready() -> bool:
        if proc.poll() is not None:  # SystemExit: wait_until does not catch it
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
            raise SystemExit(f"Envoy {name!r} exited with {proc.returncode} at start ({wasm or WASM}):\n{tail}")
        return urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1).status == 200

    try:
        wait_until(ready, 30, f"Envoy {name!r}")
    except BaseException:
        stop(proc)
        raise
    return proc, listen, admin


# Counts every response by status; done() prints one "status CODE COUNT" line
# per code after wrk's summary.
COUNT_STATUSES = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("status %d %d\\n", status, count))
    end
  end
end
"""


def wrk_script(tmp: Path, name: str, body: str, key: str) -> Path:
    script = tmp / f"{name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{body}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        # Plain Envoy has no filter to choose the backend: the client names it.
        'wrk.headers["x-gateway-backend"] = "backend-a"\n'
        + COUNT_STATUSES)
    return script


def start_wrk(port: int, path: str, script: Path, connections: int, seconds: int) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                             "-s", str(script), f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE, text=True)


def parse_wrk(out: str) -> dict:
    def latency(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return round(float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1_000_000}[m.group(2)]) if m else None
    requests = re.search(r"(\d+) requests in", out)
    if not requests:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    statuses: dict[int, int] = {}
    for code, count in re.findall(r"^status (\d+) (\d+)$", out, re.M):
        statuses[int(code)] = statuses.get(int(code), 0) + int(count)
    if sum(statuses.values()) != int(requests.group(1)):
        raise RuntimeError(f"the status counts {statuses} do not add up to wrk's request count:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "requests": int(requests.group(1)),
            "p50_us": latency(50), "p99_us": latency(99),
            "statuses": dict(sorted(statuses.items())),
            "2xx": sum(n for code, n in statuses.items() if 200 <= code < 300),
            "non_2xx": sum(n for code, n in statuses.items() if not 200 <= code < 300),
            "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups())))
            if errors else {"connect": 0, "read": 0, "write": 0, "timeout": 0}}


def expected_status(scenario: Scenario, side: str) -> int | None:
    """The status every response of `side` must have; None: any 2xx."""
    return scenario.rejected_with if side in GATEWAY_SIDES else None


def check_responses(what: str, measured: dict, expected: int | None) -> None:
    """Ends the run unless every response is the expected one and no socket
    error occurred: a figure made of other answers is not throughput."""
    statuses, errors = measured["statuses"], measured["socket_errors"]
    if expected is None:
        wrong = {code: n for code, n in statuses.items() if not 200 <= code < 300}
        wanted = "2xx"
    else:
        wrong = {code: n for code, n in statuses.items() if code != expected}
        wanted = str(expected)
    if measured["requests"] == 0 or wrong or any(errors.values()):
        raise SystemExit(f"FAILED {what}: expected every response to be {wanted}, got {measured['requests']} responses "
                         f"{statuses or '(none)'}, socket errors {errors}; not reported as throughput")


def responses_text(measured: dict) -> str:
    """The status counts of one side, e.g. `31022 × 200`."""
    return ", ".join(f"{n} × {code}" for code, n in measured["statuses"].items()) or "none"


def co_scheduled(sides: dict[str, tuple], path: str, scripts: dict[str, Path], connections: int, seconds: int) -> dict:
    """Loads every Envoy in `sides` at the same moment; wrk results plus each
    Envoy's CPU µs per request over the same window."""
    before = {name: cpu_seconds(proc.pid) for name, (proc, _) in sides.items()}
    started = time.monotonic()
    runs = {name: start_wrk(port, path, scripts[name], connections, seconds) for name, (_, port) in sides.items()}
    outs = {name: run.communicate(timeout=seconds + 60)[0] for name, run in runs.items()}
    wall = time.monotonic() - started
    result = {}
    for name, (proc, _) in sides.items():
        measured = parse_wrk(outs[name])
        used = cpu_seconds(proc.pid) - before[name]
        measured["envoy_cpu_us_per_request"] = round(used * 1e6 / max(measured["requests"], 1), 1)
        measured["envoy_cpu_share"] = round(used / wall, 2)
        result[name] = measured
    return result


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def measure_pair(pair: dict, scenario: Scenario, scripts: dict[str, Path]) -> dict:
    """Warm-up, then the measurement, of two Envoys co-scheduled; ends the run
    if either side's responses are not what `scenario` expects."""
    for seconds in (2, SECONDS):  # the warm-up is checked too: it fails sooner
        measured = co_scheduled(pair, scenario.path, scripts, scenario.connections, seconds)
        for side, m in measured.items():
            check_responses(f"{scenario.id}, {side} ({seconds} s)", m, expected_status(scenario, side))
    return measured


def run_scenario(envoys: dict, scenario: Scenario, tmp: Path) -> dict:
    title = scenario.title
    scripts = {name: wrk_script(tmp, name, scenario.body, scenario.key) for name in envoys}
    row = {"id": scenario.id, "scenario": title, "body_bytes": len(scenario.body.encode()),
           "connections": scenario.connections, "gateway_status": scenario.rejected_with or "2xx", "pairs": {}}
    for other in OTHERS:
        measured = measure_pair({"plain": envoys["plain"], other: envoys[other]}, scenario, scripts)
        p, o = measured["plain"], measured[other]
        row["pairs"][other] = {
            "plain": p, other: o,
            "ratio_rps": ratio(o["rps"], p["rps"]),
            "ratio_cpu_per_request": ratio(p["envoy_cpu_us_per_request"], o["envoy_cpu_us_per_request"]),
            "added_cpu_us_per_request": round(o["envoy_cpu_us_per_request"] - p["envoy_cpu_us_per_request"], 1),
        }
    g = row["pairs"]["gateway"]
    print(f"{title}: gateway/plain {g['ratio_rps']} (cpu {g['ratio_cpu_per_request']}, +{g['added_cpu_us_per_request']} µs), "
          f"routing floor/plain {row['pairs']['routing']['ratio_rps']}, no-op/plain {row['pairs']['noop']['ratio_rps']}; "
          f"responses gateway {responses_text(g['gateway'])}, routing floor "
          f"{responses_text(row['pairs']['routing']['routing'])}, plain {responses_text(g['plain'])}", flush=True)
    return row


def run_ab_scenario(envoys: dict, scenario: Scenario, tmp: Path) -> dict:
    """Build A against build B, co-scheduled."""
    scripts = {name: wrk_script(tmp, name, scenario.body, scenario.key) for name in envoys}
    measured = measure_pair(envoys, scenario, scripts)
    a, b = measured["a"], measured["b"]
    row = {"id": scenario.id, "scenario": scenario.title, "body_bytes": len(scenario.body.encode()),
           "connections": scenario.connections, "expected_status": scenario.rejected_with or "2xx", "a": a, "b": b,
           "rps_b_over_a": ratio(b["rps"], a["rps"]),
           "cpu_per_request_b_over_a": ratio(b["envoy_cpu_us_per_request"], a["envoy_cpu_us_per_request"])}
    print(f"{scenario.title}: B/A {row['rps_b_over_a']} (A {a['rps']:.0f} req/s, B {b['rps']:.0f} req/s; CPU µs/req "
          f"A {a['envoy_cpu_us_per_request']}, B {b['envoy_cpu_us_per_request']}); responses A {responses_text(a)}, "
          f"B {responses_text(b)}", flush=True)
    return row


def stream_once(port: int, body: bytes, gateway: bool) -> tuple[float, float]:
    """Seconds to the first body byte and to the end of one streamed chat."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json", "authorization": "Bearer sk-demo",
               "x-gateway-backend": "backend-a", "x-mock-stream-delay-ms": "2"}
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
    resp = conn.getresponse()
    first = resp.read1(65536)
    ttfb = time.perf_counter() - start
    data = first
    while chunk := resp.read1(65536):
        data += chunk
    total = time.perf_counter() - start
    conn.close()
    if resp.status != 200 or b"[DONE]" not in data:
        raise RuntimeError(f"stream through {'gateway' if gateway else 'plain'} failed: {resp.status} {data[:200]!r}")
    return ttfb, total


def run_stream(envoys: dict, rounds: int = 300) -> dict:
    """Time to first byte and total time of a streamed chat (the mock sends an
    event every 2 ms), plain and gateway alternately so noise hits both."""
    body = chat_body(1024, stream=True).encode()
    samples = {"plain": ([], []), "gateway": ([], [])}
    for i in range(rounds + 20):
        for name in ("plain", "gateway"):
            ttfb, total = stream_once(envoys[name][1], body, name == "gateway")
            if i >= 20:  # warm-up
                samples[name][0].append(ttfb * 1e6)
                samples[name][1].append(total * 1e6)

    def pct(values, q):
        return round(statistics.quantiles(values, n=100)[q - 1])
    out = {"id": STREAM_ID, "scenario": "streamed chat: time to first byte / total", "rounds": rounds}
    for name, (ttfb, total) in samples.items():
        out[name] = {"ttfb_p50_us": pct(ttfb, 50), "ttfb_p99_us": pct(ttfb, 99),
                     "total_p50_us": pct(total, 50), "total_p99_us": pct(total, 99)}
    out["ttfb_p50_added_us"] = out["gateway"]["ttfb_p50_us"] - out["plain"]["ttfb_p50_us"]
    print(f"stream: TTFB p50 plain {out['plain']['ttfb_p50_us']} µs, gateway {out['gateway']['ttfb_p50_us']} µs", flush=True)
    return out


def soak(envoys: dict, tmp: Path, target: int) -> dict:
    """RSS of the gateway Envoy before, during and after `target` requests."""
    proc, port = envoys["gateway"]
    script = wrk_script(tmp, "soak", chat_body(1024), "sk-demo")
    samples = [{"requests": 0, "rss_mb": round(rss_mb(proc.pid), 1)}]
    done, non_2xx = 0, 0
    while done < target:
        out = parse_wrk(start_wrk(port, "/v1/chat/completions", script, 32, 20).communicate(timeout=120)[0])
        check_responses(f"soak after {done} requests", out, None)
        done += out["requests"]
        non_2xx += out["non_2xx"]
        samples.append({"requests": done, "rss_mb": round(rss_mb(proc.pid), 1)})
        print(f"soak: {done} requests, RSS {samples[-1]['rss_mb']} MB", flush=True)
    after_first = samples[1]["rss_mb"]
    return {"requests": done, "non_2xx": non_2xx, "samples": samples,
            "rss_before_mb": samples[0]["rss_mb"], "rss_after_mb": samples[-1]["rss_mb"],
            "rss_growth_after_first_slice_mb": round(samples[-1]["rss_mb"] - after_first, 1)}


def worker_connections(admin: int) -> dict[int, int]:
    """Connections each Envoy worker has accepted so far (its listener's
    per-worker stats), by worker index."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=worker_", timeout=5) as resp:
        text = resp.read().decode()
    return {int(worker): int(count) for worker, count in
            re.findall(r"^listener\.(?!admin\.)[^\s:]+\.worker_(\d+)\.downstream_cx_total: (\d+)$", text, re.M)}


def load_workers(bootstrap: dict, side: str, workers: int, backend_port: int, tmp: Path, seconds: int) -> dict:
    """One Envoy of `side` with `workers` workers (on CPU 0): 2 s of warm-up,
    then `seconds` of load while its RSS is sampled every 0.2 s. Ends the run
    unless every response is a 2xx and every worker accepted connections
    during the measurement."""
    proc, port, admin = start_envoy(bootstrap, backend_port, tmp, f"{side}-{workers}w", FLOOR_WASM.get(side),
                                    concurrency=workers)
    try:
        rss_idle = rss_mb(proc.pid)
        # The same for every worker count (so connection buffers do not grow
        # with it), 16 per worker at the most: the kernel spreads connections
        # over the workers' sockets (SO_REUSEPORT) by hash, and 16 each leave
        # none out in practice (checked below).
        connections = 16 * max(WORKER_COUNTS)
        script = wrk_script(tmp, f"workers-{side}", chat_body(1024), "sk-demo")
        for length in (2, seconds):
            accepted_before = worker_connections(admin)
            samples = []
            load = start_wrk(port, "/v1/chat/completions", script, connections, length)
            while load.poll() is None:  # wrk prints a few lines: its pipe cannot fill
                samples.append(rss_mb(proc.pid))
                time.sleep(0.2)
            measured = parse_wrk(load.communicate(timeout=60)[0])
            check_responses(f"{WORKERS_ID}, {side} with {workers} workers ({length} s)", measured, None)
        accepted = worker_connections(admin)
        per_worker = {w: accepted.get(w, 0) - accepted_before.get(w, 0) for w in range(workers)}
        if len(accepted) != workers or not all(per_worker.values()):
            raise SystemExit(f"FAILED {WORKERS_ID}, {side} with {workers} workers: connections accepted per worker "
                             f"during the measurement {per_worker} (stats of {len(accepted)} workers); not every "
                             f"worker served requests")
    finally:
        stop(proc)
    row = {"workers": workers, "connections": connections, "rss_idle_mb": round(rss_idle, 1),
           "rss_load_mb": round(max(samples), 1), "rss_samples": len(samples),
           "connections_per_worker": per_worker, "rps": measured["rps"], "requests": measured["requests"],
           "statuses": measured["statuses"], "socket_errors": measured["socket_errors"]}
    print(f"{WORKERS_ID}: {side} with {workers} workers, RSS {row['rss_idle_mb']} MB idle, {row['rss_load_mb']} MB "
          f"under load; responses {responses_text(measured)}; connections per worker {per_worker}", flush=True)
    return row


def worker_memory(bootstraps: dict, backend_port: int, tmp: Path) -> dict:
    """RSS under load of plain Envoy and of the gateway Envoy at each of
    WORKER_COUNTS workers, and what each extra worker adds: from the fewest
    to the most workers, and between each step."""
    seconds = min(SECONDS, 5)  # RSS settles within a second of load
    out = {"id": WORKERS_ID, "scenario": "RSS under load by Envoy worker count (chat 1 KB)", "seconds": seconds,
           "worker_counts": list(WORKER_COUNTS), "sides": {}}
    for side in ("plain", "gateway"):
        runs = [load_workers(bootstraps[side], side, n, backend_port, tmp, seconds) for n in WORKER_COUNTS]
        rss = {r["workers"]: r["rss_load_mb"] for r in runs}
        first, last = WORKER_COUNTS[0], WORKER_COUNTS[-1]
        out["sides"][side] = {
            "runs": runs,
            "added_mb_per_worker": round((rss[last] - rss[first]) / (last - first), 1),
            "steps": [{"from": a, "to": b, "added_mb_per_worker": round((rss[b] - rss[a]) / (b - a), 1)}
                      for a, b in zip(WORKER_COUNTS, WORKER_COUNTS[1:])],
        }
    out["gateway_over_plain_mb_per_worker"] = round(
        out["sides"]["gateway"]["added_mb_per_worker"] - out["sides"]["plain"]["added_mb_per_worker"], 1)
    print(f"{WORKERS_ID}: each extra worker adds {out['sides']['gateway']['added_mb_per_worker']} MB to the gateway "
          f"Envoy, {out['sides']['plain']['added_mb_per_worker']} MB to plain Envoy", flush=True)
    return out


def workers_markdown(workers: dict) -> str:
    counts = workers["worker_counts"]
    first, last = counts[0], counts[-1]
    lines = ["| Envoy RSS under load (MB), by `--concurrency` | " + " | ".join(map(str, counts))
             + f" | **added per extra worker, {first}→{last}** | per step ("
             + ", ".join(f"{a}→{b}" for a, b in zip(counts, counts[1:])) + ") |",
             "|---" * (len(counts) + 3) + "|"]
    for side, title in (("plain", "plain Envoy"), ("gateway", "gateway")):
        w = workers["sides"][side]
        lines.append(f"| {title} | " + " | ".join(f"{r['rss_load_mb']}" for r in w["runs"])
                     + f" | **{w['added_mb_per_worker']}** | "
                     + ", ".join(str(step["added_mb_per_worker"]) for step in w["steps"]) + " |")
    g = workers["sides"]["gateway"]["runs"]
    return ("\n".join(lines) + "\n\n"
            f"Each Envoy loaded alone on CPU {ENVOY_CPU}, {workers['seconds']} s of chat 1 KB load after 2 s of warm-up, "
            f"{g[0]['connections']} connections whatever the worker count; RSS is the highest of the samples taken every "
            f"0.2 s under load. Every worker accepted connections (Envoy's per-worker listener stats) and every response "
            f"was a 2xx (checked). Per extra worker, gateway minus plain Envoy: "
            f"{workers['gateway_over_plain_mb_per_worker']} MB.\n")


def compare_peers(envoys: dict, backend_port: int, tmp: Path) -> dict:
    """Scenario 1 through plain Envoy, the gateway and LiteLLM proxy, one after
    the other (LiteLLM cannot be co-scheduled with an Envoy meaningfully: it
    serves a hundredth of the load), same wrk command and script, 30 s request
    timeout. Each side gets requests it serves (the script's routing header
    for plain Envoy, the demo key for the gateway, the master key for
    LiteLLM), and every response must be a 2xx."""
    sys.path.insert(0, str(ROOT / "bench"))
    import peers as peer_bench  # noqa: PLC0415

    body = chat_body(1024)
    rows = {}
    for name in ("plain", "gateway"):
        proc, port = envoys[name]
        check_responses(f"peers, {name} warm-up", peer_bench.wrk(port, body, "sk-demo", 2, tmp), None)
        before = cpu_seconds(proc.pid)
        measured = peer_bench.wrk(port, body, "sk-demo", SECONDS, tmp)
        check_responses(f"peers, {name}", measured, None)
        measured["proxy_cpu_us_per_request"] = round((cpu_seconds(proc.pid) - before) * 1e6 / max(measured["requests"], 1), 1)
        rows[name] = measured
    rows["litellm"] = peer_bench.measure_litellm(backend_port, tmp, SECONDS)
    g, lite = rows["gateway"], rows["litellm"]
    out = {"rows": rows, "gateway/litellm rps": round(g["rps"] / lite["rps"], 1),
           "litellm/gateway p99": round(lite["p99_us"] / g["p99_us"], 1)}
    lines = [f"| chat 1 KB, 32 connections, {SECONDS} s each | req/s | p50 (µs) | p99 (µs) | proxy CPU µs/req "
             "| responses |",
             "|---|---|---|---|---|---|"]
    for name, title in (("plain", "plain Envoy"), ("gateway", "gateway"),
                        ("litellm", f"LiteLLM proxy {lite['litellm_version']}")):
        r = rows[name]
        lines.append(f"| {title} | {r['rps']:.0f} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['proxy_cpu_us_per_request']} "
                     f"| {responses_text(r)} |")
    out["markdown"] = "\n".join(lines) + (f"\n\nGateway vs LiteLLM: **{out['gateway/litellm rps']}×** the requests/s, "
                                          f"**{out['litellm/gateway p99']}×** lower p99.\n")
    print(out["markdown"], flush=True)
    return out


def markdown(meta: dict, rows: list[dict], stream: dict | None, soaked: dict | None, peers: dict | None,
             workers: dict | None = None) -> str:
    lines = ["| scenario | plain req/s | gateway req/s | **gateway/plain** | routing floor/plain | no-op/plain "
             "| gateway p50 / p99 (µs) | plain p50 / p99 (µs) | Envoy CPU µs/req plain / gateway "
             "| added by gateway / routing floor / no-op (µs) | responses plain / no-op / routing floor / gateway |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g, rt, n = r["pairs"]["gateway"], r["pairs"]["routing"], r["pairs"]["noop"]
        gp, gg = g["plain"], g["gateway"]
        lines.append(f"| {r['scenario']} | {gp['rps']:.0f} | {gg['rps']:.0f} | **{g['ratio_rps']:.2f}** "
                     f"| {rt['ratio_rps']:.2f} | {n['ratio_rps']:.2f} "
                     f"| {gg['p50_us']} / {gg['p99_us']} | {gp['p50_us']} / {gp['p99_us']} "
                     f"| {gp['envoy_cpu_us_per_request']} / {gg['envoy_cpu_us_per_request']} "
                     f"| {g['added_cpu_us_per_request']} / {rt['added_cpu_us_per_request']} / "
                     f"{n['added_cpu_us_per_request']} "
                     f"| {responses_text(gp)} / {responses_text(n['noop'])} / {responses_text(rt['routing'])} "
                     f"/ {responses_text(gg)} |")
    text = "\n".join(lines) + "\n" if rows else ""
    if stream:
        p, g = stream["plain"], stream["gateway"]
        text += ("\n| streamed chat (event every 2 ms) | TTFB p50 (µs) | TTFB p99 (µs) | total p50 (µs) | total p99 (µs) |\n"
                 "|---|---|---|---|---|\n"
                 f"| plain | {p['ttfb_p50_us']} | {p['ttfb_p99_us']} | {p['total_p50_us']} | {p['total_p99_us']} |\n"
                 f"| gateway | {g['ttfb_p50_us']} | {g['ttfb_p99_us']} | {g['total_p50_us']} | {g['total_p99_us']} |\n")
    if peers:
        text += "\n" + peers["markdown"] + "\n"
    if workers:
        text += "\n" + workers_markdown(workers)
    if soaked:
        text += (f"\nSoak: {soaked['requests']} requests through the gateway ({soaked['non_2xx']} non-2xx); Envoy RSS "
                 f"{soaked['rss_before_mb']} MB before, {soaked['samples'][1]['rss_mb']} MB after the first 20 s, "
                 f"{soaked['rss_after_mb']} MB at the end.\n")
    text += (f"\n.wasm: {meta['wasm_bytes']} bytes (no-op: {meta['noop_wasm_bytes']}, routing floor: "
             f"{meta['routing_wasm_bytes']}). {meta['seconds']} s per measurement, "
             f"co-scheduled pairs on CPU {ENVOY_CPU} (wrk on CPU {LOAD_CPU}), Envoy --concurrency 1, {meta['cpus']} CPUs, "
             f"{meta['date']}. Responses by status (plain's from the gateway pair); no socket errors (checked).\n")
    return text


def ab_markdown(meta: dict, rows: list[dict]) -> str:
    lines = ["| scenario | A req/s | B req/s | **B/A** | Envoy CPU µs/req A / B | A p50 / p99 (µs) | B p50 / p99 (µs) "
             "| responses A | responses B | socket errors A / B |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b = r["a"], r["b"]
        lines.append(f"| {r['scenario']} | {a['rps']:.0f} | {b['rps']:.0f} | **{r['rps_b_over_a']:.3f}** "
                     f"| {a['envoy_cpu_us_per_request']} / {b['envoy_cpu_us_per_request']} "
                     f"| {a['p50_us']} / {a['p99_us']} | {b['p50_us']} / {b['p99_us']} "
                     f"| {responses_text(a)} | {responses_text(b)} "
                     f"| {sum(a['socket_errors'].values())} / {sum(b['socket_errors'].values())} |")
    text = "\n".join(lines) + "\n\n"
    for side in ("a", "b"):
        w = meta[side]
        text += f"- {side.upper()}: `{w['path']}`, {w['bytes']} bytes, sha256 {w['sha256'][:16]}…\n"
    text += (f"\n{meta['seconds']} s per measurement after 2 s of warm-up, A and B co-scheduled on CPU {ENVOY_CPU} "
             f"(wrk on CPU {LOAD_CPU}), Envoy --concurrency 1, "
             f"{'the filter alone' if meta['filter_only'] else 'the demo configuration'}, {meta['cpus']} CPUs, "
             f"{meta['date']}.\n")
    return text


def wasm_meta(path: Path) -> dict:
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def selected_ids(valid: list[str], default: str = "") -> set[str]:
    """BENCH_ONLY's ids (empty: everything); an id that is not in `valid` ends
    the run, rather than measuring nothing and writing that down."""
    only = {s for s in os.environ.get("BENCH_ONLY", default).split(",") if s}
    unknown = only - set(valid)
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown {', '.join(sorted(unknown))} (known here: {', '.join(valid)})")
    return only


def main_ab(a_wasm: Path, b_wasm: Path) -> int:
    """make bench-ab: build A against build B on the wrk scenarios."""
    for needed in (a_wasm, b_wasm):
        if not needed.is_file():
            raise SystemExit(f"missing {needed}")
    only = selected_ids([sc.id for sc in SCENARIOS])
    scenarios = [sc for sc in SCENARIOS if not only or sc.id in only]
    backend = start_backend("backend-a")
    subprocess.run(["taskset", "-a", "-p", "-c", LOAD_CPU, str(backend.proc.pid)], check=True, capture_output=True)
    procs, rows = [], []
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            gateway = variants()["gateway"]
            envoys = {}
            for name, wasm in (("a", a_wasm), ("b", b_wasm)):
                proc, port, _ = start_envoy(gateway, backend.port, tmp, name, wasm)
                procs.append(proc)
                envoys[name] = (proc, port)
            for scenario in scenarios:
                rows.append(run_ab_scenario(envoys, scenario, tmp))
    finally:
        for proc in procs:
            stop(proc)
        stop(backend.proc)
    meta = {"date": time.strftime("%Y-%m-%d"), "seconds": SECONDS, "envoy_concurrency": 1, "cpus": os.cpu_count(),
            "envoy_cpu": ENVOY_CPU, "load_cpu": LOAD_CPU, "filter_only": bool(os.environ.get("BENCH_FILTER_ONLY")),
            "a": wasm_meta(a_wasm), "b": wasm_meta(b_wasm)}
    (ROOT / "bench/ab-results.json").write_text(json.dumps({"meta": meta, "scenarios": rows}, indent=1) + "\n")
    table = ab_markdown(meta, rows)
    (ROOT / "bench/ab-results.md").write_text(table)
    print("\n" + table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="make bench / bench-peers / bench-ab (see the module docstring)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--peers", action="store_true", help="scenario 1 plus LiteLLM proxy")
    mode.add_argument("--ab", nargs="+", type=Path, metavar="WASM",
                      help=f"A [B]: two gateway builds against each other (B defaults to {WASM.relative_to(ROOT)})")
    args = parser.parse_args()
    if args.ab:
        if len(args.ab) > 2:
            parser.error("--ab takes A and at most one B")
        return main_ab(args.ab[0].resolve(), args.ab[1].resolve() if len(args.ab) == 2 else WASM)
    peers_mode = args.peers
    for needed in (WASM, *FLOOR_WASM.values()):
        if not needed.is_file():
            raise SystemExit(f"missing {needed}: run `make bench` (it builds everything)")
    # make bench-peers: scenario 1 and the peer only, written beside the main results.
    only = selected_ids([sc.id for sc in SCENARIOS] + [STREAM_ID, WORKERS_ID, SOAK_ID], "chat-1k" if peers_mode else "")
    peers = None
    backend = start_backend("backend-a")
    subprocess.run(["taskset", "-a", "-p", "-c", LOAD_CPU, str(backend.proc.pid)], check=True, capture_output=True)
    procs = []
    rows, stream, soaked, workers = [], None, None, None
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            envoys = {}
            bootstraps = variants()
            for name, bootstrap in bootstraps.items():
                proc, port, _ = start_envoy(bootstrap, backend.port, tmp, name, FLOOR_WASM.get(name))
                procs.append(proc)
                envoys[name] = (proc, port)
            rss_idle = {name: round(rss_mb(proc.pid), 1) for name, (proc, _) in envoys.items()}
            for scenario in SCENARIOS:
                if not only or scenario.id in only:
                    rows.append(run_scenario(envoys, scenario, tmp))
            if not only or STREAM_ID in only:
                stream = run_stream(envoys)
            if not only or WORKERS_ID in only:
                workers = worker_memory(bootstraps, backend.port, tmp)
            if peers_mode:
                peers = compare_peers(envoys, backend.port, tmp)
            if SOAK_REQUESTS and (not only or SOAK_ID in only):
                soaked = soak(envoys, tmp, SOAK_REQUESTS)
    finally:
        for proc in procs:
            stop(proc)
        stop(backend.proc)
    meta = {"date": time.strftime("%Y-%m-%d"), "seconds": SECONDS, "envoy_concurrency": 1,
            "wasm_bytes": WASM.stat().st_size, "noop_wasm_bytes": NOOP_WASM.stat().st_size,
            "routing_wasm_bytes": ROUTING_WASM.stat().st_size, "cpus": os.cpu_count(),
            "envoy_cpu": ENVOY_CPU, "load_cpu": LOAD_CPU, "rss_idle_mb": rss_idle,
            "filter_only": bool(os.environ.get("BENCH_FILTER_ONLY"))}
    result = {"meta": meta, "scenarios": rows, "stream": stream, "workers": workers, "soak": soaked, "peers": peers}
    stem = "bench/peers-results" if peers_mode else "bench/results"
    (ROOT / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(meta, rows, stream, soaked, peers, workers)
    (ROOT / f"{stem}.md").write_text(table)
    print("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
