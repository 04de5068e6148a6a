"""A real browser (headless Chromium) on another origin cannot call the gateway:
the API is for server-to-server calls (CORS preflights refused). The same call from a
server succeeds."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import nothing_reached, wait_until

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None and os.environ.get("CI", "").lower() not in ("", "0", "false"):
    raise RuntimeError("chromium is not installed: `make setup` installs it (apt package `chromium`)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make setup` installs it)")

MODEL = "llama-3.1-8b-instruct"
KEY = "sk-demo"

# Each attempt writes "status <code>" or "blocked: <error>" into the page;
# `done` is written last.
PAGE = """<!doctype html>
<html><body><pre id="results">pending</pre><script>
async function attempt(url, init) {
  try {
    const response = await fetch(url, init);
    return "status " + response.status;
  } catch (error) {
    return "blocked: " + error.name + ": " + error.message;
  }
}
(async () => {
  const call = {
    method: "POST",
    headers: {"Authorization": "Bearer %(key)s", "Content-Type": "application/json"},
    body: JSON.stringify({model: "%(model)s", messages: [{role: "user", content: "hi"}]}),
  };
  const results = {
    // Authorization and a JSON body: the browser asks first (a preflight).
    chat: await attempt("%(gateway)s/v1/chat/completions", call),
    // A "simple" request, sent without a preflight: the answer is not readable.
    models: await attempt("%(gateway)s/v1/models", {}),
    // The same call to a server that grants CORS: the browser allows it.
    control: await attempt("%(control)s/v1/chat/completions", call),
  };
  results.done = true;
  document.getElementById("results").textContent = JSON.stringify(results);
})();
</script></body></html>
"""


class Origin:
    """A web server on its own port (its own origin). Serves `page` at `/`;
    anything else is a stand-in API that grants CORS to every origin, and
    records the method and path of each request it gets."""

    def __init__(self, page: str = ""):
        self.seen: list[str] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes, content_type: str, cors: bool) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                if cors:
                    self.send_header("access-control-allow-origin", "*")
                    self.send_header("access-control-allow-headers", "authorization, content-type")
                    self.send_header("access-control-allow-methods", "GET, POST")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                origin.seen.append(f"GET {self.path}")
                if self.path == "/":
                    self._send(200, page.encode(), "text/html", cors=False)
                else:
                    self._send(404, b"", "text/plain", cors=True)

            def do_OPTIONS(self):
                origin.seen.append(f"OPTIONS {self.path}")
                self._send(204, b"", "text/plain", cors=True)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", "0")))
                origin.seen.append(f"POST {self.path}")
                self._send(200, b'{"ok": true}', "application/json", cors=True)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def load_in_chromium(url: str) -> str:
    """The page's DOM once its scripts have finished (or Chromium gave up)."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         # Virtual time waits for pending fetches, so the DOM is dumped after them.
         "--virtual-time-budget=10000", "--dump-dom", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        dom, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # Chromium and the helpers it started
        dom, stderr = proc.communicate()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}:\n{stderr[-3000:]}"
    return dom


def page_results(dom: str) -> dict:
    match = re.search(r'<pre id="results">(.*?)</pre>', dom, re.DOTALL)
    assert match, f"no results in the page:\n{dom[:2000]}"
    text = unescape(match.group(1))
    assert text != "pending", f"the page's script did not finish:\n{dom[:2000]}"
    results = json.loads(text)
    assert results.get("done") is True, results
    return results


def test_a_web_page_on_another_origin_cannot_call_the_gateway(gateway, backends, client):
    logged_before = len(gateway.access_log())

    def access_log() -> str:  # this test's lines
        return gateway.access_log()[logged_before:]

    with Origin() as control:
        page = PAGE % {"key": KEY, "model": MODEL, "gateway": gateway.origin, "control": control.url}
        with Origin(page) as site:
            assert site.url != gateway.origin
            results = page_results(load_in_chromium(f"{site.url}/"))

    # The browser did make cross-origin calls: the CORS-granting stand-in got
    # the preflight and then the call itself...
    assert results["control"] == "status 200", results
    assert control.seen == ["OPTIONS /v1/chat/completions", "POST /v1/chat/completions"]
    # ...but both calls to the gateway failed in the page.
    assert results["chat"].startswith("blocked: TypeError"), results
    assert results["models"].startswith("blocked: TypeError"), results
    # The gateway refused the preflight (so the browser never sent the key),
    # and answered the simple request without a grant (so the page could not read it).
    wait_until(lambda: '"OPTIONS /v1/chat/completions" 403' in access_log(), 10, "the preflight's access log")
    wait_until(lambda: '"GET /v1/models" 401' in access_log(), 10, "the simple request's access log")
    assert '"POST /v1/chat/completions"' not in access_log()
    assert nothing_reached(backends)

    # The same call from a server goes through.
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    assert len(backends["backend-a"].requests()) == 1
