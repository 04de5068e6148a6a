"""Hostile input, end to end through real Envoy: every case is answered with
OpenAI's error envelope `{"error": {"message", "type", "param", "code"}}` (or,
where the input is in fact valid, served as it should be), nothing reaches a
backend, and the client's next request is served.

Each case goes over one raw HTTP/1.1 connection (raw, because the cases are
byte-level: bare CR, NUL, chunk framing), and a valid request follows it:

- on the same connection when Envoy has read the whole bad request before the
  answer (the filter's body stage, a request without a body, and the
  header-stage 401/415 of a request whose announced body is at most 64 KiB:
  the filter reads it before answering). The demo sets
  `stream_error_on_invalid_http_message` so that this holds for 400s too;
- on a new connection, served at once, when the answer comes before the body
  has been read (a header-stage 413 for a body announced over the limit, a
  refusal of a larger or unannounced body) or when Envoy's HTTP codec refused
  the request (431, NUL in a header, a broken request line). Envoy then sends
  `connection: close` and closes: it will not read (or cannot frame) the rest
  of the request. The table says which for each case, and the test checks it.

Covered elsewhere and not repeated here: truncated JSON, an empty body with a
content type, a non-object body, no `model`, `model` twice
(test_gateway.test_malformed_bodies_are_400_envelopes); a duplicate key
inside a message, `NaN` temperature, `seed: 1e400`, 200-deep nesting
(test_field_matrix.test_smuggling_and_number_tricks_are_refused); spoofed
`x-gateway-*` headers sent as ordinary headers
(test_gateway.test_client_key_and_spoofed_internal_headers_never_reach_a_backend);
missing, non-bearer and unknown keys (test_gateway.test_missing_or_non_bearer_auth_is_401_with_instructions,
test_wrong_key_is_401_invalid_api_key_without_echoing_it); obs-text header
bytes (test_gateway.test_non_utf8_header_values_do_not_break_the_filter); a
content-length over the limit sent in full (test_gateway.test_body_over_the_limit_is_a_413_envelope);
a chunked body in 7 KB chunks (test_gateway.test_chunked_request_with_alias_rewrite_reaches_the_backend_whole).
The decisions themselves are unit-tested in src/pipeline/tests/, src/json.rs
and src/auth.rs."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import time
import urllib.request
from dataclasses import dataclass
from typing import Callable

import pytest

from harness import connection_manager, demo_bootstrap, header, nothing_reached, plugin_config, set_plugin_config, start_gateway

MODEL = "llama-3.1-8b-instruct"  # on backend-a
HI = [{"role": "user", "content": "hi"}]
DEMO_KEY = "sk-demo"
ENVELOPE_FIELDS = {"message", "type", "param", "code"}


def body_of(**fields) -> bytes:
    return json.dumps({"model": MODEL, "messages": HI, **fields}).encode()


def request(body: bytes | None = b"", *, method: str = "POST", path: str = "/v1/chat/completions",
            content_type: str | None = "application/json", key: bytes | None = DEMO_KEY.encode(),
            extra: bytes = b"") -> bytes:
    """A raw HTTP/1.1 request; `body=None` sends the headers only (with a
    content-length announcing 0 bytes unless `extra` says otherwise)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: gateway\r\n".encode()
    if key is not None:
        head += b"Authorization: Bearer " + key + b"\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n".encode()
    head += extra
    if method == "POST" and b"content-length" not in extra.lower() and b"transfer-encoding" not in extra.lower():
        head += f"Content-Length: {len(body or b'')}\r\n".encode()
    return head + b"\r\n" + (body or b"")


GOOD = request(body_of())


class Connection:
    """One client connection, used request after request."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> "Reply":
        resp = http.client.HTTPResponse(self.sock)
        resp.begin()
        body = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)

    def closed_by_server(self) -> bool:
        self.sock.settimeout(3)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict:
        assert self.headers.get("content-type") == "application/json", (self.status, self.headers, self.body)
        envelope = json.loads(self.body)
        assert list(envelope) == ["error"], envelope
        assert set(envelope["error"]) == ENVELOPE_FIELDS, envelope
        return envelope["error"]


def requests_seen(gateway) -> dict[str, list[dict]]:
    return {name: b.requests() for name, b in gateway.backends.items()}


def downstream_rq_active(gateway) -> int:
    url = f"http://127.0.0.1:{gateway.admin_port}/stats?filter=^http\\.openai_api\\.downstream_rq_active$"
    with urllib.request.urlopen(url, timeout=5) as resp:
        line = resp.read().decode().strip()
    return int(line.rsplit(":", 1)[1])


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def no_control_characters(record: dict) -> None:
    for name, value in record["headers"]:
        assert not any(c in value for c in "\r\n\0"), (name, value)


def the_gateway_chose_backend_a(record: dict) -> None:
    assert header(record, "x-gateway-backend") == ["backend-a"]
    assert header(record, "x-gateway-key-id") == ["demo"]
    no_control_characters(record)


def note_arrives_as(value: str) -> Callable[[dict], None]:
    def check(record: dict) -> None:
        no_control_characters(record)
        assert header(record, "x-note") == [value]
    return check


def temperature_is_zero(record: dict) -> None:
    assert json.loads(record["body_utf8"])["temperature"] == 0


@dataclass
class Case:
    id: str
    request: bytes
    status: int
    needle: str = ""
    param: str | None = None
    code: str | None = None
    type: str = "invalid_request_error"
    # Envoy keeps the connection for the next request (else it closes it).
    keeps_connection: bool = True
    # Valid input: forwarded to backend-a, whose record this checks.
    forwarded: Callable[[dict], None] | None = None


DEEP = b"[" * 10_000 + b"]" * 10_000
TWO_TO_THE_64 = b"18446744073709551616"
CYRILLIC_KEY = "ѕk-demo".encode()          # U+0455 for the s
FULLWIDTH_KEY = "ｓｋ-ｄｅｍｏ".encode()
ZERO_WIDTH_KEY = "sk-\u200bdemo".encode()
MODELS = dict(method="GET", path="/v1/models", content_type=None, body=None)


def chat_with(member: bytes) -> bytes:
    """A valid chat body with `member` spliced in as written."""
    return request(b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "hi"}], ' + member + b"}")


def chunked(body: bytes, size: int) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)) + b"0\r\n\r\n"


CASES = [
    # --- bodies that are not the JSON they claim to be --------------------------
    Case("trailing-garbage", request(body_of() + b" x"), 400, "could not parse"),
    Case("invalid-utf8-in-a-string", request(body_of().replace(b'"hi"', b'"h\xff\xfe"')), 400, "could not parse"),
    Case("invalid-utf8-in-a-key", request(body_of().replace(b'"messages"', b'"mess\xc3ages"')), 400, "could not parse"),
    Case("lone-surrogate-escape", request(body_of().replace(b'"hi"', b'"\\ud800"')), 400, "could not parse"),
    Case("nesting-10000-deep-in-a-field", chat_with(b'"x": ' + DEEP), 400, "could not parse"),
    Case("nesting-10000-deep-whole-body", request(DEEP), 400, "could not parse"),
    Case("raw-newline-in-a-string", request(body_of().replace(b'"hi"', b'"h\r\ni"')), 400, "could not parse"),
    # --- numbers -------------------------------------------------------------------
    Case("max-tokens-1e400", chat_with(b'"max_tokens": 1e400'), 400, "could not parse"),
    Case("temperature-minus-1e400", chat_with(b'"temperature": -1e400'), 400, "could not parse"),
    Case("max-tokens-2^64", chat_with(b'"max_tokens": ' + TWO_TO_THE_64), 400, "out of the integer range", "max_tokens"),
    Case("temperature-2^64", chat_with(b'"temperature": ' + TWO_TO_THE_64), 400, "out of range", "temperature"),
    # -0 is read as a decimal: refused where an integer is expected, 0 where any number is.
    Case("max-tokens-minus-0", chat_with(b'"max_tokens": -0'), 400, "expected an integer", "max_tokens"),
    Case("temperature-minus-0", chat_with(b'"temperature": -0'), 200, forwarded=temperature_is_zero),
    Case("temperature-NaN", chat_with(b'"temperature": NaN'), 400, "could not parse"),
    Case("temperature-Infinity", chat_with(b'"temperature": Infinity'), 400, "could not parse"),
    Case("top-p-minus-Infinity", chat_with(b'"top_p": -Infinity'), 400, "could not parse"),
    # --- members given twice: the gateway and a backend could read different ones --
    Case("model-twice-one-escaped", chat_with(b'"m\\u006fdel": "bge-m3"'), 400, "more than once", "model"),
    Case("include-usage-twice", chat_with(b'"stream": true, "stream_options": {"include_usage": true, "include_usage": false}'),
         400, "more than once", "include_usage"),
    # --- model values ------------------------------------------------------------------
    Case("model-with-escaped-crlf", request(body_of(model=f"{MODEL}\r\nx-gateway-backend: backend-b")),
         400, "escape sequences are not allowed", "model"),
    Case("model-unicode-look-alike", request(body_of(model="llama\u20113.1\u20118b\u2011instruct").replace(b"\\u2011", "\u2011".encode())),
         404, "does not exist", "model", "model_not_found"),
    Case("model-zero-width-space", request(body_of().replace(MODEL.encode(), MODEL.encode() + "\u200b".encode())),
         404, "does not exist", "model", "model_not_found"),
    # --- how the body is sent -------------------------------------------------------------
    Case("gzip-body", request(gzip.compress(body_of()), extra=b"Content-Encoding: gzip\r\n"), 415,
         "Send the body uncompressed"),
    Case("br-label-on-a-plain-body", request(body_of(), extra=b"Content-Encoding: br\r\n"), 415,
         "content-encoding: br"),
    Case("no-content-type", request(body_of(), content_type=None), 415, "has no content type"),
    Case("text-plain", request(body_of(), content_type="text/plain"), 415, "Content-Type: application/json"),
    Case("form-urlencoded", request(body_of(), content_type="application/x-www-form-urlencoded"), 415,
         "Content-Type: application/json"),
    Case("json-in-utf-16", request(body_of(), content_type="application/json; charset=utf-16"), 415, "UTF-8"),
    Case("json-content-type-any-case-with-charset", request(body_of(), content_type="Application/JSON; charset=UTF-8"),
         200, forwarded=no_control_characters),
    Case("transcription-sent-as-json", request(b'{"model": "whisper-1"}', path="/v1/audio/transcriptions"), 415,
         "multipart/form-data"),
    Case("empty-body", request(b""), 400, "body is empty"),
    Case("empty-chunked-body", request(None, extra=b"Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n", 400, "body is empty"),
    # Only the headers are sent: the refusal comes before any body byte.
    Case("content-length-over-the-limit", request(None, extra=b"Content-Length: 27262977\r\n"), 413,
         "at most 27262976 bytes (26 MiB)", keeps_connection=False),
    # --- headers ---------------------------------------------------------------------
    # Envoy's codec strips a bare CR, unfolds obs-fold and ends a header at a
    # bare LF: no CR or LF reaches a backend, and a header smuggled after a
    # bare LF is an ordinary client header, which the filter replaces.
    Case("bare-cr-in-a-header-value", request(body_of(), extra=b"X-Note: a\rb\r\n"), 200, forwarded=note_arrives_as("ab")),
    Case("obs-fold-header", request(body_of(), extra=b"X-Note: a\r\n b\r\n"), 200, forwarded=note_arrives_as("a b")),
    Case("bare-lf-smuggles-gateway-headers",
         request(body_of(), extra=b"X-Note: a\nx-gateway-backend: backend-b\nx-gateway-key-id: admin\r\n"), 200,
         forwarded=the_gateway_chose_backend_a),
    Case("nul-in-a-header-value", request(body_of(), extra=b"X-Note: a\0b\r\n"), 400,
         "could not read this HTTP request (http1.invalid_characters)", keeps_connection=False),
    Case("headers-too-large", request(body_of(), extra=b"X-Big: " + b"a" * 70_000 + b"\r\n"), 431,
         "headers are too large", keeps_connection=False),
    Case("headers-too-many", request(body_of(), extra=b"".join(b"X-H%d: v\r\n" % i for i in range(120))), 431,
         "headers are too large", keeps_connection=False),
    Case("broken-request-line", b"GARBAGE\r\n\r\n", 400, "could not read this HTTP request", keeps_connection=False),
    Case("escaped-slash-in-the-path", request(**{**MODELS, "path": "/v1/models%2Fllama-3.1-8b-instruct"}), 400,
         "could not read this HTTP request"),
    # --- keys ------------------------------------------------------------------------------
    Case("authorization-twice", request(**MODELS, extra=b"Authorization: Bearer sk-demo\r\n"), 401, "exactly one"),
    Case("authorization-twice-with-a-body", request(body_of(), extra=b"Authorization: Bearer sk-demo\r\n"), 401,
         "exactly one"),
    # A refusal does not wait for a body over 64 KiB: Envoy closes rather than read it.
    Case("wrong-key-with-a-large-body", request(body_of(user="x" * 70_000), key=b"sk-wrong"), 401,
         "Incorrect API key", code="invalid_api_key", keeps_connection=False),
    Case("key-cyrillic-look-alike", request(**MODELS, key=CYRILLIC_KEY), 401, "Incorrect API key", code="invalid_api_key"),
    Case("key-fullwidth", request(**MODELS, key=FULLWIDTH_KEY), 401, "Incorrect API key", code="invalid_api_key"),
    Case("key-zero-width-space", request(**MODELS, key=ZERO_WIDTH_KEY), 401, "Incorrect API key", code="invalid_api_key"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_request(gateway, backends, case):
    conn = Connection(gateway.port)
    conn.send(case.request)
    reply = conn.response()
    seen = requests_seen(gateway)
    if case.forwarded:
        assert reply.status == case.status, reply.body
        assert len(seen["backend-a"]) == 1 and not seen["backend-b"], seen
        case.forwarded(seen["backend-a"][0])
    else:
        error = reply.error()
        assert reply.status == case.status, error
        assert (error["type"], error["param"], error["code"]) == (case.type, case.param, case.code), error
        assert case.needle in error["message"], error["message"]
        for key in (CYRILLIC_KEY, FULLWIDTH_KEY, ZERO_WIDTH_KEY):
            assert key.decode() not in error["message"]
        assert not any(seen.values()), seen

    # The next request.
    closes = reply.headers.get("connection") == "close"
    assert closes != case.keeps_connection, reply.headers
    if case.keeps_connection:
        conn.send(GOOD)
        good = conn.response()
    else:
        assert conn.closed_by_server()
        started = time.monotonic()
        fresh = Connection(gateway.port)
        fresh.send(GOOD)
        good = fresh.response()
        assert time.monotonic() - started < 2
        fresh.close()
    conn.close()
    assert good.status == 200, good.body
    assert json.loads(good.body)["choices"][0]["message"]["content"] == "Hello from backend-a."
    assert len(gateway.backends["backend-a"].requests()) == (2 if case.forwarded else 1)


def test_a_body_in_thousands_of_tiny_chunks_is_served_whole(gateway, backends):
    """Chunked transfer encoding is valid however small the chunks: 4,000 of
    them, each its own TCP segment, make one body, alias rewritten."""
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"z" * 12_000 + b'"}]}'
    conn = Connection(gateway.port)
    conn.send(request(None, extra=b"Transfer-Encoding: chunked\r\n"))
    pieces = [body[i:i + 3] for i in range(0, len(body), 3)]
    assert len(pieces) > 4_000
    for piece in pieces:
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    reply = conn.response()
    assert reply.status == 200, reply.body
    seen = backends["backend-a"].requests()
    assert len(seen) == 1
    expected = body.replace(b'"gpt-4o-mini"', b'"meta-llama/Llama-3.1-8B-Instruct"')
    assert base64.b64decode(seen[0]["body_base64"]) == expected
    # The connection stays usable.
    conn.send(GOOD)
    assert conn.response().status == 200
    conn.close()


def test_a_chunked_body_over_the_buffer_limit_is_a_413_envelope(gateway, backends):
    """Just over 26 MiB, chunked (no length to refuse up front): whichever refuses it
    first, the filter at limits.max_request_bytes or Envoy's 26 MiB buffer
    (the same size in the demo), the client gets a 413 envelope."""
    conn = Connection(gateway.port)
    conn.send(request(None, extra=b"Transfer-Encoding: chunked\r\n"))
    chunk = b"x" * 65_536
    try:
        for _ in range(26 * 16 + 2):  # 26 MiB and 128 KiB
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused while still sending
    reply = conn.response()
    error = reply.error()
    assert reply.status == 413
    assert "larger than this gateway accepts" in error["message"]
    assert nothing_reached(gateway.backends)
    assert reply.headers.get("connection") == "close"
    conn.close()


# --- clients that stall: a gateway with short timeouts and a small body limit ------------

TIGHT_MAX_BYTES = 65_536


@pytest.fixture(scope="module")
def tight_gateway():
    """The demo with request_headers_timeout 1 s, request_timeout 2 s and
    limits.max_request_bytes 64 KiB (Envoy's buffer stays larger, 1 MiB, so
    the filter's own limit is the one met)."""
    bootstrap = demo_bootstrap()
    hcm = connection_manager(bootstrap)
    hcm["request_headers_timeout"] = "1s"
    hcm["request_timeout"] = "2s"
    bootstrap["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = 1_048_576
    config = plugin_config(bootstrap)
    config["limits"] = {"max_request_bytes": TIGHT_MAX_BYTES}
    set_plugin_config(bootstrap, config)
    gw = start_gateway(bootstrap)
    yield gw
    gw.stop()


@pytest.fixture
def tight(tight_gateway):
    tight_gateway.clear_backends()
    return tight_gateway


def test_a_client_that_stops_mid_body_gets_a_408_and_nothing_leaks(tight):
    conn = Connection(tight.port)
    whole = GOOD
    conn.send(whole[:-10])  # the last 10 bytes never come
    started = time.monotonic()
    reply = conn.response()
    waited = time.monotonic() - started
    error = reply.error()
    assert reply.status == 408 and 1.5 < waited < 10, (reply.status, waited)
    assert "request_overall_timeout" in error["message"]
    assert reply.headers.get("connection") == "close" and conn.closed_by_server()
    conn.close()
    assert wait_for(lambda: downstream_rq_active(tight) == 0, 5)
    assert nothing_reached(tight.backends)


def test_a_client_that_disconnects_mid_body_leaves_nothing_behind(tight):
    conn = Connection(tight.port)
    conn.send(GOOD[:-10])
    assert wait_for(lambda: downstream_rq_active(tight) == 1, 5)
    conn.close()
    assert wait_for(lambda: downstream_rq_active(tight) == 0, 5)
    assert nothing_reached(tight.backends)


def test_a_client_that_stops_mid_headers_gets_a_408_and_nothing_leaks(tight):
    conn = Connection(tight.port)
    conn.send(GOOD.split(b"\r\n\r\n")[0][:60])  # part of the headers
    started = time.monotonic()
    reply = conn.response()
    waited = time.monotonic() - started
    error = reply.error()
    assert reply.status == 408 and waited < 5, (reply.status, waited)
    assert "request_header_timeout" in error["message"] and "in time" in error["message"]
    assert reply.headers.get("connection") == "close" and conn.closed_by_server()
    conn.close()
    assert wait_for(lambda: downstream_rq_active(tight) == 0, 5)
    assert nothing_reached(tight.backends)


def test_a_chunked_body_is_refused_once_it_outgrows_the_limit(tight):
    conn = Connection(tight.port)
    conn.send(request(None, extra=b"Transfer-Encoding: chunked\r\n"))
    chunk = b"y" * 4_096
    try:
        for _ in range(TIGHT_MAX_BYTES // len(chunk) + 4):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = conn.response()
    error = reply.error()
    assert reply.status == 413
    assert f"at most {TIGHT_MAX_BYTES} bytes" in error["message"]
    assert nothing_reached(tight.backends)
    conn.close()
    # A body of exactly the limit passes.
    filler = TIGHT_MAX_BYTES - len(body_of(x=""))
    exact = body_of(x="a" * filler)
    assert len(exact) == TIGHT_MAX_BYTES
    conn = Connection(tight.port)
    conn.send(request(None, extra=b"Transfer-Encoding: chunked\r\n") + chunked(exact, 4_096))
    assert conn.response().status == 200
    conn.close()
