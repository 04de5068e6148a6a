"""Every Envoy configuration in the repository passes `envoy --mode validate`
(which also loads the .wasm and runs its on_configure), and a broken plugin
configuration makes Envoy refuse to start with one clear log line."""

import json
from pathlib import Path

import pytest
import yaml

from harness import ROOT, WASM, demo_bootstrap, ecds, envoy_validate, localize, plugin_config, set_plugin_config

# The bootstraps in envoy/ (the examples' are checked by test_examples.py,
# which first points their container paths at this checkout).
ENVOY_CONFIGS = sorted(p for p in (ROOT / "envoy").glob("*.yaml") if "static_resources" in p.read_text())


def test_there_are_configs_to_check():
    assert ROOT / "envoy/demo.yaml" in ENVOY_CONFIGS


@pytest.mark.parametrize("path", ENVOY_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_envoy_config_validates(path, tmp_path):
    assert WASM.is_file(), "build the .wasm first (make build)"
    bootstrap = yaml.safe_load(path.read_text())
    discovered = [f for f in ecds.connection_manager(bootstrap)["http_filters"] if "config_discovery" in f]
    if discovered:
        # envoy/ecds.yaml watches a file `make run-ecds` writes: here, one in
        # a temporary directory (Envoy refuses a missing one). Its content,
        # the plugin configuration, is checked by test_runtime_config.py.
        source = discovered[0]["config_discovery"]["config_source"]["path_config_source"]
        watched = tmp_path / "ecds" / Path(source["path"]).name
        watched.parent.mkdir()
        source.update(path=str(watched), watched_directory={"path": str(watched.parent)})
        _, first = ecds.to_ecds(demo_bootstrap(), str(watched), str(watched.parent))
        ecds.write_atomically(watched, first)
        path = tmp_path / "ecds.yaml"
        path.write_text(yaml.safe_dump(bootstrap))
    result = envoy_validate(path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if not discovered:
        assert "openai-gateway: configured" in result.stdout + result.stderr


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c.update(unknown_setting=True), "unknown field `unknown_setting`"),
    (lambda c: c["api_keys"][0].update(sha256="sk-demo"), "api_keys[0].sha256"),
    (lambda c: c["models"][0].update(category="poetry"), "unknown variant `poetry`"),
], ids=["unknown-field", "plaintext-key", "bad-category"])
def test_invalid_plugin_config_fails_closed(tmp_path, mutate, needle):
    bootstrap = localize(demo_bootstrap(), 1, 2, {"backend-a": 3, "backend-b": 4})
    config = plugin_config(bootstrap)
    mutate(config)
    set_plugin_config(bootstrap, config)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    result = envoy_validate(path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    lines = [l for l in output.splitlines() if "invalid plugin configuration" in l]
    assert len(lines) == 1 and needle in lines[0], output[-3000:]


def test_demo_config_is_valid_json_with_digests_only():
    config = plugin_config(demo_bootstrap())
    for key in config["api_keys"]:
        assert len(key["sha256"]) == 64 and not key["sha256"].startswith("sk-")
    assert "sk-demo" not in json.dumps(config)
