#!/usr/bin/env python3
"""make soak: a mixed load through real Envoy + the filter, with a backend that
dies mid-run and comes back; reproduces the figures of RELIABILITY.md.

256 concurrent connections (SOAK_CONNECTIONS) for 60 s (SOAK_SECONDS) send a
mix of valid chats, streamed chats, invalid requests (n=2), requests with a
wrong key and requests with the rate-limited demo key. Every response is
checked: the status its kind must get, and an OpenAI error envelope for every
error. backend-a (the chat model's backend) is killed at 1/3 of the run and
restarted at 7/12: meanwhile chats must get a 503 envelope, afterwards 200s
again. Envoy's RSS is sampled every 5 s. Exits non-zero on any unexpected
response, on any 5xx outside the outage, or if the gateway never recovers."""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/e2e"))
from harness import MOCK, connection_manager, demo_bootstrap, start_gateway, stop  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "60"))
CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "256"))
PAGE = os.sysconf("SC_PAGE_SIZE")
MODEL = "llama-3.1-8b-instruct"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "lorem ipsum " * 80}], "max_tokens": 16}

# kind: (weight, key, body)
KINDS = {
    "valid": (50, "sk-demo", CHAT),
    "stream": (10, "sk-demo", {**CHAT, "stream": True}),
    "invalid": (15, "sk-demo", {**CHAT, "n": 2}),
    "unauthorized": (15, "sk-wrong-key-for-soak", CHAT),
    "rate-limited": (10, "sk-demo-limited", CHAT),
}


def soak_bootstrap() -> dict:
    """The demo configuration with its shared buckets (any key, any model)
    too large for the soak to empty; sk-demo-limited keeps its 3 per minute."""
    b = copy.deepcopy(demo_bootstrap())
    for f in connection_manager(b)["http_filters"]:
        if f["name"] == "envoy.filters.http.local_ratelimit":
            for d in f["typed_config"]["descriptors"]:
                if not any(e.get("value") == "demo-limited" for e in d["entries"]):
                    d["token_bucket"] = {"max_tokens": 10**9, "tokens_per_fill": 10**9, "fill_interval": "60s"}
    return b


def rss_mb(pid: int) -> float:
    return round(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20, 1)


def is_envelope(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and bool(error.get("message")) and {"type", "param", "code"} <= error.keys()


class Outage:
    def __init__(self) -> None:
        self.start = self.end = None  # monotonic times

    def covers(self, sent: float, done: float) -> bool:
        """A request overlapping the outage (plus 5 s for Envoy to see the
        backend again) may get the outage's 503."""
        return self.start is not None and done >= self.start and (self.end is None or sent <= self.end + 5)


def verdict(kind: str, status: int, headers: dict, body: bytes, in_outage: bool) -> str | None:
    """None when the response is what `kind` must get; otherwise why not."""
    if status >= 500:
        if in_outage and kind in ("valid", "stream", "rate-limited") and status == 503 and is_envelope(body):
            return None
        return f"{status} outside the backend outage" if not in_outage else f"{status} (not a 503 envelope)"
    if kind == "valid":
        if status == 200 and b'"cache_read_input_tokens"' in body and b'"choices"' in body:
            return None
    elif kind == "stream":
        if status == 200 and body.endswith(b"data: [DONE]\n\n"):
            return None
    elif kind == "invalid":
        if status == 400 and is_envelope(body) and json.loads(body)["error"]["param"] == "n":
            return None
    elif kind == "unauthorized":
        if status == 401 and is_envelope(body) and json.loads(body)["error"]["code"] == "invalid_api_key":
            return None
    elif kind == "rate-limited":
        if status == 429 and is_envelope(body) and headers.get("retry-after"):
            return None
        if status == 200 and b'"choices"' in body:  # the 3 per minute it may use
            return None
    return f"{status} {body[:120]!r}"


class Connection:
    """A minimal HTTP/1.1 client connection (httpx costs more CPU per request
    than Envoy and the filter together): keep-alive, content-length or
    chunked bodies, reconnects when the server closes."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, key: str, body: bytes) -> tuple[int, dict, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\n"
                f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        try:
            status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                content = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                content = b""
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    content += await self.reader.readexactly(size)
                    await self.reader.readexactly(2)
                await self.reader.readuntil(b"\r\n")
            else:
                content = await self.reader.read()
        except BaseException:
            self.close()
            raise
        if headers.get("connection") == "close":
            self.close()
        return int(status_line.split()[1]), headers, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def worker(port: int, deadline: float, outage: Outage, stats: dict) -> None:
    kinds = list(KINDS)
    weights = [KINDS[k][0] for k in kinds]
    bodies = {kind: json.dumps(body).encode() for kind, (_, _, body) in KINDS.items()}
    conn = Connection("127.0.0.1", port)
    while time.monotonic() < deadline:
        kind = random.choices(kinds, weights)[0]
        key = KINDS[kind][1]
        sent = time.monotonic()
        try:
            status, headers, content = await asyncio.wait_for(conn.post("/v1/chat/completions", key, bodies[kind]), 30)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as exc:
            conn.close()
            status, headers, content = 0, {}, repr(exc).encode()
        done = time.monotonic()
        in_outage = outage.covers(sent, done)
        stats["by_kind"][(kind, status)] += 1
        if status == 0:
            why = f"transport error {content[:120]!r}"
        else:
            why = verdict(kind, status, headers, content, in_outage)
        if why:
            stats["unexpected"][(kind, why[:60])] += 1
            if len(stats["samples"]) < 10:
                stats["samples"].append(f"{kind}: {why}")
        if kind in ("valid", "stream") and status == 200 and outage.end is not None and done > outage.end:
            stats["recovered_after_s"] = stats["recovered_after_s"] or round(done - outage.end, 2)
    conn.close()


async def chaos(gateway, outage: Outage, start: float, stats: dict) -> None:
    backend = gateway.backends["backend-a"]
    await asyncio.sleep(max(0.0, start + SECONDS / 3 - time.monotonic()))
    stop(backend.proc)
    outage.start = time.monotonic()
    await asyncio.sleep(max(0.0, start + SECONDS * 7 / 12 - time.monotonic()))
    proc = subprocess.Popen([str(MOCK), "--name", "backend-a", "--listen", f"127.0.0.1:{backend.port}",
                             "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backend.proc = proc
    outage.end = time.monotonic()
    stats["outage_s"] = round(outage.end - outage.start, 1)


async def sample_rss(pid: int, deadline: float, stats: dict) -> None:
    while time.monotonic() < deadline:
        stats["rss_mb"].append(rss_mb(pid))
        await asyncio.sleep(5)
    stats["rss_mb"].append(rss_mb(pid))


async def run(gateway) -> dict:
    stats = {"by_kind": collections.Counter(), "unexpected": collections.Counter(), "samples": [],
             "rss_mb": [], "recovered_after_s": None, "outage_s": None}
    outage = Outage()
    start = time.monotonic()
    deadline = start + SECONDS
    await asyncio.gather(chaos(gateway, outage, start, stats), sample_rss(gateway.proc.pid, deadline, stats),
                         *(worker(gateway.port, deadline, outage, stats) for _ in range(CONNECTIONS)))
    stats["elapsed_s"] = round(time.monotonic() - start, 1)
    return stats


def main() -> int:
    gateway = start_gateway(soak_bootstrap(), audited=False)
    try:
        rss_idle = rss_mb(gateway.proc.pid)
        stats = asyncio.run(run(gateway))
        active = json.loads(httpx.get(f"http://127.0.0.1:{gateway.admin_port}/stats?format=json&filter=downstream_rq_active").text)
    finally:
        gateway.stop()
    total = sum(stats["by_kind"].values())
    unexpected = sum(stats["unexpected"].values())
    print(f"\n## Soak: {SECONDS} s, {CONNECTIONS} connections, {total} requests "
          f"({total / stats['elapsed_s']:.0f}/s), {time.strftime('%Y-%m-%d')}\n")
    print("| kind | status | responses |\n|---|---|---|")
    for (kind, status), n in sorted(stats["by_kind"].items()):
        print(f"| {kind} | {status or 'transport error'} | {n} |")
    print(f"\nUnexpected responses: {unexpected}")
    for (kind, why), n in stats["unexpected"].items():
        print(f"- {kind}: {why} × {n}")
    print(f"Backend outage: {stats['outage_s']} s; first chat served {stats['recovered_after_s']} s after the "
          f"backend came back.")
    rss = stats["rss_mb"]
    print(f"Envoy RSS (MB): idle {rss_idle}, during the run {min(rss)}–{max(rss)}, at the end {rss[-1]} "
          f"(samples every 5 s: {', '.join(map(str, rss))}).")
    print(f"Active downstream requests after the run: {active}")
    failed = unexpected > 0 or stats["recovered_after_s"] is None
    print("\nRESULT:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
