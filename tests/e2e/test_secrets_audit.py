"""The secrets audit (secrets_audit.py, run by conftest.py when the session
ends): it finds a planted key wherever one could leak, it knows every key the
suite sends, and the Envoys it audits log the filter at debug level."""

import base64
import json
import urllib.request
from pathlib import Path

import httpx
import pytest

import secrets_audit
from harness import DEMO_KEYS, TEST_KEYS, client_keys, demo_bootstrap, plugin_config, sha256_hex, start_gateway, wait_until

KEYS = {"sk-demo", "sk-test-slow"}


def record(headers=(), body=b"", path="/v1/chat/completions") -> dict:
    return {"method": "POST", "path": path, "headers": [list(h) for h in headers],
            "body_base64": base64.b64encode(body).decode(), "body_utf8": None}


LEAKS = [
    # (where it leaked, text, what the audit reports)
    ("an access log field", '"POST /v1/chat/completions" 200 key=sk-test-slow model=m', "sk-test-slow"),
    ("Envoy's header dump", "':path', '/v1/models'\n'authorization', 'Bearer sk-demo'\n", "Bearer sk-"),
    ("an unknown key", "wasm log: rejected sk-somebody-elses-key", "sk-somebody-elses-key"),
    ("a lowercase scheme", "authorization: bearer  sk-x", "bearer  sk-"),
    ("a backend header", secrets_audit.record_text(record([("authorization", "Bearer sk-demo")])), "sk-demo"),
    ("a backend body", secrets_audit.record_text(record(body=b'{"user": "sk-test-slow"}')), "sk-test-slow"),
    ("a binary body", secrets_audit.record_text(record(body=b"\xff\x00sk-demo\x00\xfe")), "sk-demo"),
    ("a query string", secrets_audit.record_text(record(path="/v1/models?api_key=sk-demo")), "sk-demo"),
    ("a rate-limit descriptor", secrets_audit.record_text({"descriptors": [{"entries": [["key_id", "sk-demo"]]}]}),
     "sk-demo"),
]

CLEAN = [
    '"POST /v1/chat/completions" 200 key=demo model=llama-3.1-8b-instruct backend=backend-a',
    "authorization: Bearer demo-backend-b-token",  # the backend's own credential, where it belongs
    "task-list disk-usage risk-free sk- sk-ab",    # not keys
    secrets_audit.record_text(record([("x-gateway-key-id", "demo")], b'{"model": "m"}')),
]


@pytest.mark.parametrize("where,text,found", LEAKS, ids=[row[0] for row in LEAKS])
def test_the_scanner_finds_a_planted_key(where, text, found):
    findings = secrets_audit.scan_text(text, where, KEYS)
    assert findings and all(f.where == where for f in findings)
    assert found in [f.what for f in findings]


@pytest.mark.parametrize("text", CLEAN)
def test_the_scanner_passes_text_without_keys(text):
    assert secrets_audit.scan_text(text, "clean", KEYS) == []


def test_the_scanner_finds_a_gateway_secret():
    findings = secrets_audit.scan_text("signing with demo-only-id-secret", "log", KEYS, ["demo-only-id-secret"])
    assert [f.what for f in findings] == ["demo-only-id-secret"]


def test_the_scanner_reads_envoy_logs_and_backend_records(tmp_path):
    (tmp_path / "gw").mkdir()
    (tmp_path / "gw/envoy.log").write_text("[info][wasm] ok\n[debug][http] 'authorization', 'Bearer sk-demo'\n")
    (tmp_path / "gw/access.log").write_text('"GET /v1/models" 200 key=demo\n')
    (tmp_path / "gw/envoy.yaml").write_text("not a log: sk-demo")  # configuration, not audited
    clean, leaked = record([("x-gateway-key-id", "demo")]), record([("authorization", "Bearer sk-test-slow")])
    (tmp_path / "backend-a-1.records.jsonl").write_text(json.dumps(clean) + "\n" + json.dumps(leaked) + "\n")

    findings, read = secrets_audit.scan_dir(tmp_path, KEYS)
    assert {p.name for p in read} == {"envoy.log", "access.log", "backend-a-1.records.jsonl"}
    assert {f.where for f in findings} == {str(tmp_path / "gw/envoy.log"), f"{tmp_path / 'backend-a-1.records.jsonl'}:2"}

    findings, _ = secrets_audit.scan_dir(tmp_path, KEYS, envoy_logs=False)
    assert {f.where for f in findings} == {f"{tmp_path / 'backend-a-1.records.jsonl'}:2"}


def test_the_audit_knows_every_key_the_suite_sends():
    keys = client_keys()
    assert set(DEMO_KEYS) | set(TEST_KEYS) <= keys
    assert {"sk-not-a-real-key-abcdefghijk", "sk-wrong-key-for-metrics"} <= keys  # wrong keys, from the tests
    # DEMO_KEYS are the demo's keys: their hashes are the demo configuration's.
    configured = {k["sha256"] for k in plugin_config(demo_bootstrap())["api_keys"]}
    assert {sha256_hex(k) for k in DEMO_KEYS} == configured


def admin_log_levels(gw) -> dict[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{gw.admin_port}/logging", method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return dict(line.strip().split(": ", 1) for line in lines if ": " in line)


def test_audited_envoys_log_the_filter_at_debug_level_into_the_audit(gateway):
    levels = admin_log_levels(gateway)
    assert levels["wasm"] == "debug"
    # Envoy's own request logging stays at info: at debug it prints every header.
    assert levels["http"] == levels["conn_handler"] == levels["router"] == "info"
    assert gateway.log_path.is_relative_to(secrets_audit.session_dir())
    assert "[debug][wasm]" in gateway.log()


def test_the_audit_catches_envoys_own_header_dump():
    """Envoy's `http` debug log prints request headers, Authorization included:
    the reason the suite never enables it, and a real leak the audit must catch."""
    gw = start_gateway(component_log_level="wasm:debug,http:debug", audited=False)
    try:
        r = httpx.get(f"{gw.base_url}/models", headers={"Authorization": "Bearer sk-demo"})
        assert r.status_code == 200
        wait_until(lambda: "sk-demo" in gw.log(), 10, "Envoy's header dump")
        findings, read = secrets_audit.scan_dir(Path(gw.log_path.parent), client_keys())
        assert findings and {f.where for f in findings} == {str(gw.log_path)}
        assert {"sk-demo", "Bearer sk-"} <= {f.what for f in findings}
    finally:
        gw.stop()


def test_the_filters_debug_lines_reach_the_audited_log(gateway):
    """The filter logs at the level Envoy runs `wasm` at (debug in the suite),
    so the secrets audit reads the filter's debug lines too."""
    r = httpx.get(f"{gateway.base_url}/models")  # no key: answered by the gateway, logged at debug
    assert r.status_code == 401
    request_id = r.headers["x-request-id"]
    wait_until(lambda: request_id in gateway.access_log(), 10, "the access log")
    wait_until(lambda: "(answered by the gateway)" in gateway.log(), 3, "the filter's debug line")
