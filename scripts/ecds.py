#!/usr/bin/env python3
"""The gateway's configuration delivered by Envoy's extension config discovery
(ECDS) from a watched file, so keys, models, probes and limits change while
Envoy serves.

    scripts/ecds.py show [FILE]               # the plugin configuration now in FILE
    scripts/ecds.py apply PLUGIN.json [FILE]  # put PLUGIN.json in FILE, atomically
    scripts/ecds.py init BOOTSTRAP [FILE]     # FILE from an inline bootstrap's filter

FILE defaults to run/ecds/openai_gateway.yaml, the file envoy/ecds.yaml
watches. `apply` keeps everything else of the filter (the .wasm, its VM,
`allow_on_headers_stop_iteration`), gives the new content a version, writes
it beside FILE and renames it onto FILE: Envoy reads a file it watches only
when one is renamed onto it, and never sees half a write. Envoy then hands
the configuration to the filter, which refuses an invalid one: Envoy keeps
the previous configuration and counts the refusal
(`extension_config_discovery.http_filter.openai_gateway.update_rejected`).

Also a module: scripts/render_examples.py renders envoy/ecds.yaml with
`to_ecds`, and the end-to-end tests use the same functions."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

# The HTTP filter's name, which is also the name of the resource Envoy asks
# the discovery source for.
FILTER_NAME = "openai_gateway"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
EXTENSION_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
DEFAULT_FILE = Path("run/ecds/openai_gateway.yaml")


def connection_manager(bootstrap: dict) -> dict:
    """The typed config of the bootstrap's (first listener's) HTTP connection
    manager (also the examples' renderer's and the tests' way there)."""
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def discovery_response(typed_config: dict, version: str, name: str = FILTER_NAME) -> dict:
    """The file's content: a DiscoveryResponse holding the one extension config."""
    return {"version_info": version,
            "resources": [{"@type": EXTENSION_TYPE, "name": name, "typed_config": typed_config}]}


# Until a valid configuration has arrived (a missing or refused first one),
# Envoy answers every request itself with an empty 500 (response flag NFCF,
# no filter config found): shaped here like the gateway's other errors.
NO_CONFIGURATION_REPLY = {
    "filter": {"response_flag_filter": {"flags": ["NFCF"]}},
    "status_code": 503,
    "body_format_override": {"json_format": {"error": {
        "message": "The gateway has no valid configuration yet (its extension config was not "
                   "delivered, or was refused: see Envoy's log). Retry the request later.",
        "type": "server_error", "param": None, "code": None}}},
}


def to_ecds(bootstrap: dict, path: str, watched_directory: str, name: str = FILTER_NAME) -> tuple[dict, dict]:
    """A bootstrap whose gateway filter (the HTTP filter and the resource
    `name`) comes from the file `path` (watched through `watched_directory`),
    and that file's first content: the inline filter's own configuration."""
    b = copy.deepcopy(bootstrap)
    hcm = connection_manager(b)
    filters = hcm["http_filters"]
    index = next(i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.wasm")
    typed_config = filters[index]["typed_config"]
    filters[index] = {
        "name": name,
        "config_discovery": {
            "config_source": {
                "resource_api_version": "V3",
                "path_config_source": {"path": path, "watched_directory": {"path": watched_directory}},
            },
            "type_urls": [WASM_TYPE],
        },
    }
    # Envoy asks a discovery source for resources as a node: it must have a name.
    b.setdefault("node", {"id": "openai-gateway", "cluster": "openai-gateway"})
    hcm.setdefault("local_reply_config", {}).setdefault("mappers", []).insert(0, NO_CONFIGURATION_REPLY)
    return b, discovery_response(typed_config, "initial", name)


def plugin_config(response: dict) -> dict:
    """The gateway's JSON configuration inside a discovery response."""
    value = response["resources"][0]["typed_config"]["config"]["configuration"]["value"]
    return json.loads(value)


def with_plugin_config(response: dict, config: dict | str, version: str | None = None) -> dict:
    """The response with another plugin configuration (a dict, or JSON text
    as is, even broken) and a new version (default: when, and a digest of
    the content)."""
    text = config if isinstance(config, str) else json.dumps(config)
    out = copy.deepcopy(response)
    out["resources"][0]["typed_config"]["config"]["configuration"]["value"] = text
    if version is None:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        version = f"{now}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    out["version_info"] = version
    return out


def read(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def write_atomically(path: Path, content: dict | str) -> None:
    """Writes `content` (a response, or raw text) beside `path`, then renames
    it onto `path` (same directory, so the rename is atomic)."""
    path = Path(path)
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] == "show":
        path = Path(argv[2]) if len(argv) > 2 else DEFAULT_FILE
        print(json.dumps(plugin_config(read(path)), indent=2))
        return 0
    if len(argv) >= 3 and argv[1] == "apply":
        path = Path(argv[3]) if len(argv) > 3 else DEFAULT_FILE
        text = Path(argv[2]).read_text() if argv[2] != "-" else sys.stdin.read()
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            print(f"{argv[2]}: not JSON ({e}); nothing written", file=sys.stderr)
            return 1
        response = with_plugin_config(read(path), text)
        write_atomically(path, response)
        print(f"wrote {path} version {response['version_info']}\n"
              "Envoy's verdict: curl -s http://127.0.0.1:9901/stats?filter=extension_config_discovery\n"
              "(version_text is the version serving; update_rejected counts refusals, and the log says why)")
        return 0
    if len(argv) >= 3 and argv[1] == "init":
        path = Path(argv[3]) if len(argv) > 3 else DEFAULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        _, response = to_ecds(read(Path(argv[2])), str(path), str(path.parent))
        write_atomically(path, response)
        print(f"wrote {path} from {argv[2]}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
