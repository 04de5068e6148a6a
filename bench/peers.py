#!/usr/bin/env python3
"""make bench-peers: LiteLLM proxy in front of the same mock upstream as the
gateway, measured like bench/run.py measures Envoy (scenario 1, a valid 1 KB
chat completion, non-streamed): requests/s, p50/p99 latency, and the proxy's
CPU µs per request (every process of its process group, from /proc).

LiteLLM is pinned and lives in its own venv (.venv-litellm at the repo root),
installed once. It runs with a master key, no database (so no spend logs),
spend and error logs off, no callbacks, the bundled model cost map instead of
a download at start, and error-level logging only.

Every side gets requests it serves: the same body and headers as
bench/run.py's scenario 1 (its wrk script: the routing header plain Envoy
needs, and the status counts), with the demo key `sk-demo` for the Envoys and
LiteLLM's master key for LiteLLM. Every response must be a 2xx, with no
socket error, or the run ends (bench/run.py's check).

`python bench/peers.py` measures LiteLLM alone; bench/run.py imports this
module to put it beside plain Envoy. PEERS_SECONDS sets the measurement's
length (default 10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/e2e"))
sys.path.insert(0, str(ROOT / "bench"))
from harness import free_port, wait_until  # noqa: E402
# run.py imports this module only inside a function, so this is no cycle.
from run import chat_body, check_responses, parse_wrk, wrk_script  # noqa: E402

# The newest 1.106 release (the line measured before) that installs from the
# registry this project uses: 1.106.3 and later, like 1.103.11, 1.104.6-1.104.9,
# 1.105.7, 1.108.x and 1.109.1, require certifi>=2026.10.19, newer than any
# certifi published there. 1.107.0 was the compromised release (not on the index).
LITELLM_VERSION = "1.106.2"
VENV = ROOT / ".venv-litellm"
MARKER = VENV / f".installed-litellm-{LITELLM_VERSION}"
MASTER_KEY = "sk-bench-master"
MODEL = "llama-3.1-8b-instruct"
SECONDS = int(os.environ.get("PEERS_SECONDS", "10"))
CONNECTIONS = 32
TICKS = os.sysconf("SC_CLK_TCK")


def ensure_litellm() -> Path:
    """The venv's `litellm` executable, installing the pinned release first
    if this venv does not have it yet."""
    litellm = VENV / "bin/litellm"
    if MARKER.is_file() and litellm.is_file():
        return litellm
    if not (VENV / "bin/python").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    started = time.monotonic()
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {VENV.name} (once)", flush=True)
    subprocess.run([str(VENV / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-input", f"litellm[proxy]=={LITELLM_VERSION}"],
                   check=True, stdin=subprocess.DEVNULL, env={**os.environ, "PIP_NO_INPUT": "1"})
    print(f"installed in {time.monotonic() - started:.0f} s", flush=True)
    for stale in VENV.glob(".installed-litellm-*"):
        stale.unlink()
    MARKER.write_text(LITELLM_VERSION + "\n")
    return litellm


def litellm_config(upstream_port: int) -> str:
    """LiteLLM's proxy configuration (JSON is YAML): one model on the mock
    upstream, a master key, nothing logged or stored."""
    return json.dumps({
        "model_list": [{
            "model_name": MODEL,
            "litellm_params": {
                "model": f"openai/{MODEL}",
                "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key": "sk-upstream",
            },
        }],
        "litellm_settings": {
            "set_verbose": False,
            "json_logs": False,
            "turn_off_message_logging": True,
            "callbacks": [],
            "success_callback": [],
            "failure_callback": [],
            "service_callback": [],
            "request_timeout": 30,
        },
        "general_settings": {
            "master_key": MASTER_KEY,
            "disable_spend_logs": True,
            "disable_error_logs": True,
        },
    }, indent=1)


def litellm_env(tmp: Path) -> dict[str, str]:
    """A clean environment: nothing inherited can point LiteLLM at a database,
    a callback or a provider key; telemetry, profiling and downloads off."""
    return {
        "PATH": f"{VENV / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "LITELLM_MODE": "PRODUCTION",  # do not read a .env file
        "LITELLM_LOG": "ERROR",  # also sets uvicorn's level: no access log
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no cost map download at start
        "LITELLM_TELEMETRY": "False",
        "LITELLM_ENABLE_PYROSCOPE": "false",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
        "NO_REDOC": "True",
        "DO_NOT_TRACK": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }


def start_litellm(upstream_port: int, tmp: Path) -> tuple[subprocess.Popen, int]:
    """LiteLLM proxy (one uvicorn worker, its own process group) in front of
    an OpenAI-compatible upstream; returns once it answers its liveness probe."""
    litellm = ensure_litellm()
    config = tmp / "litellm.yaml"
    config.write_text(litellm_config(upstream_port))
    port = free_port()
    log = (tmp / "litellm.log").open("wb")
    proc = subprocess.Popen([str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", "1", "--telemetry", "False"],
                            cwd=tmp, env=litellm_env(tmp), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()

    def alive() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"litellm exited with {proc.returncode}:\n{_tail(tmp / 'litellm.log')}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=1) as resp:
            return resp.status == 200

    try:
        wait_until(alive, 120, "litellm")
    except BaseException:
        stop_litellm(proc)
        print(_tail(tmp / "litellm.log"), file=sys.stderr)
        raise
    return proc, port


def stop_litellm(proc: subprocess.Popen) -> None:
    """Stops LiteLLM and whatever it started (its process group, by id)."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    _signal_group(proc.pid, signal.SIGKILL)  # any child left behind


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every live process in the group, plus what each has
    collected from children that already exited."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[2]) == pgid:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def check_chat(port: int, body: str) -> dict:
    """One request through LiteLLM: it must come back a chat.completion."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        status, answer = resp.status, json.loads(resp.read())
    if status != 200 or answer.get("object") != "chat.completion" or not answer.get("choices"):
        raise SystemExit(f"litellm did not answer a chat completion: {status} {answer}")
    return answer


def wrk(port: int, body: str, key: str, seconds: int, tmp: Path) -> dict:
    """bench/run.py's wrk load (same command and script: body, headers and
    status counts, with `key` as the bearer key) and its parse_wrk() fields,
    with a 30 s request timeout instead of wrk's 2 s: LiteLLM's tail latency
    under 32 connections comes near 2 s, and a request wrk gives up on would
    drop out of the latency distribution."""
    script = wrk_script(tmp, f"peers-{port}", body, key)
    out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "30s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}/v1/chat/completions"],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out)


def measure_litellm(upstream_port: int, tmp: Path, seconds: int = SECONDS) -> dict:
    """Scenario 1 (bench/run.py's chat_body(1024)) through LiteLLM: the
    fields of bench/run.py's parse_wrk() plus `proxy_cpu_us_per_request` and
    `litellm_version`. Raises SystemExit unless every request got a 2xx."""
    body = chat_body(1024)
    proc, port = start_litellm(upstream_port, tmp)
    try:
        check_chat(port, body)
        warm_up = wrk(port, body, MASTER_KEY, 3, tmp)  # LiteLLM imports some features on first use
        check_responses("litellm warm-up", warm_up, None)
        before = group_cpu_seconds(proc.pid)
        measured = wrk(port, body, MASTER_KEY, seconds, tmp)
        used = group_cpu_seconds(proc.pid) - before
        if proc.poll() is not None:
            raise SystemExit(f"litellm died during the measurement:\n{_tail(tmp / 'litellm.log')}")
    finally:
        stop_litellm(proc)
    check_responses("litellm", measured, None)
    measured["proxy_cpu_us_per_request"] = round(used * 1e6 / measured["requests"], 1)
    measured["litellm_version"] = LITELLM_VERSION
    return measured


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main() -> int:
    from harness import start_backend, stop

    ensure_litellm()
    backend = start_backend("backend-a")
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            m = measure_litellm(backend.port, Path(tmpdir))
    finally:
        stop(backend.proc)
    print(json.dumps(m, indent=1))
    print(f"LiteLLM {LITELLM_VERSION}, chat 1 KB, {CONNECTIONS} connections, {SECONDS} s: "
          f"{m['rps']:.0f} req/s, p50 {m['p50_us']:.0f} µs, p99 {m['p99_us']:.0f} µs, "
          f"{m['proxy_cpu_us_per_request']} CPU µs/request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
