"""The suite's secrets audit: no client API key and no client Authorization
value may appear in Envoy's logs or in anything a backend received.

While the suite runs, every Envoy the harness starts writes its log (the
filter's `wasm` component at debug level) and its access log into one session
directory, and what each mock backend and rate-limit service recorded is copied
there before it is cleared or the process stops. At the end of the session
(conftest.py) `scan_session` reads all of it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Any Authorization value carrying a key, whatever the key.
BEARER_KEY = re.compile(r"bearer\s+sk-", re.IGNORECASE)
# Any key-shaped token, including keys the audit was not told about.
KEY_TOKEN = re.compile(r"(?<![A-Za-z0-9_])sk-[A-Za-z0-9_-]{4,}")

ENVOY_LOGS = ("envoy.log", "access.log")
RECORDS_SUFFIX = ".records.jsonl"

_session: Path | None = None
_tracked: dict[int, object] = {}  # recorders still running, by id()
_server_secrets: set[str] = set()  # from the gateways' plugin configurations


@dataclass(frozen=True)
class Finding:
    where: str
    what: str      # the secret, or the pattern that matched
    context: str   # the surrounding text

    def __str__(self) -> str:
        return f"{self.where}: {self.what!r} in …{self.context}…"


# --- collecting ------------------------------------------------------------------

def session_dir() -> Path:
    global _session
    if _session is None:
        _session = Path(tempfile.mkdtemp(prefix="gateway-e2e-audit-"))
    return _session


def new_log_dir(prefix: str) -> Path:
    """A directory, kept until the end of the session, for one Envoy's logs."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=session_dir()))


def add_server_secrets(secrets) -> None:
    """Secrets of the gateway itself (backend credentials, the id secret): never
    in Envoy's logs."""
    _server_secrets.update(s for s in secrets if s)


def track(recorder) -> None:
    """`recorder` has `audit_label` and `requests()`; what it holds at the end
    of the session is audited even if nobody stopped it."""
    _tracked[id(recorder)] = recorder


def keep(recorder, stopping: bool = False) -> None:
    """Copies what `recorder` received so far (call before clearing it)."""
    keep_records(recorder.audit_label, recorder.requests())
    if stopping:
        _tracked.pop(id(recorder), None)


def keep_records(label: str, records: list[dict]) -> None:
    if not records:
        return
    with (session_dir() / f"{label}{RECORDS_SUFFIX}").open("a") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


# --- scanning --------------------------------------------------------------------

def _context(text: str, start: int, end: int) -> str:
    return text[max(0, start - 60):end + 60].replace("\n", "\\n")


def scan_text(text: str, where: str, keys, secrets=()) -> list[Finding]:
    findings = []
    for needle in sorted(set(keys) | set(secrets)):
        at = text.find(needle)
        if at >= 0:
            findings.append(Finding(where, needle, _context(text, at, at + len(needle))))
    for pattern in (BEARER_KEY, KEY_TOKEN):
        for match in pattern.finditer(text):
            findings.append(Finding(where, match.group(0), _context(text, match.start(), match.end())))
    once = {(f.where, f.what): f for f in reversed(findings)}  # the first of each
    return [f for f in findings if once[(f.where, f.what)] is f]


def record_text(record: dict) -> str:
    """A recorded request as text: the whole record (a mock backend's request
    line and headers, or the descriptors the rate-limit service got) and, for a
    mock backend, the body's bytes decoded, so that a key in any body, binary
    or not, is visible."""
    body = base64.b64decode(record.get("body_base64") or "")
    return json.dumps(record, ensure_ascii=False) + "\n" + body.decode("utf-8", errors="replace")


def scan_dir(root: Path, keys, secrets=(), envoy_logs: bool = True) -> tuple[list[Finding], list[Path]]:
    """Every Envoy log and recorded request under `root`; returns the findings
    and the files read."""
    findings, read = [], []
    for path in sorted(root.rglob("*")):
        if path.name in ENVOY_LOGS and envoy_logs:
            findings += scan_text(path.read_text(errors="replace"), str(path), keys, secrets)
        elif path.name.endswith(RECORDS_SUFFIX):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                findings += scan_text(record_text(json.loads(line)), f"{path}:{n}", keys)
        else:
            continue
        read.append(path)
    return findings, read


def scan_session(keys, envoy_logs: bool = True) -> tuple[list[Finding], list[Path]]:
    """Copies what the still-running recorders hold, then scans the session."""
    lost = []
    for recorder in list(_tracked.values()):
        try:
            keep(recorder, stopping=True)
        except OSError as exc:  # it died: what it received cannot be audited
            lost.append(Finding(recorder.audit_label, "(its records could not be read)", str(exc)))
    if _session is None:
        return lost, []
    findings, read = scan_dir(_session, keys, _server_secrets, envoy_logs)
    return lost + findings, read


def remove_session() -> None:
    global _session
    if _session is not None:
        shutil.rmtree(_session, ignore_errors=True)
        _session = None
