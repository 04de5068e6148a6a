"""The deployment examples, checked offline (no Docker or Kubernetes here):
each is internally consistent and loads in the real Envoy with the real
filter."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import ROOT, WASM, connection_manager, envoy_validate

EXAMPLES = ROOT / "examples"
COMPOSE = EXAMPLES / "docker-compose/docker-compose.yaml"


def validate(bootstrap: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "bootstrap.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    return envoy_validate(path)


def local_wasm(value):
    """Every .wasm path in a structure, pointed at the build of this checkout."""
    if isinstance(value, dict):
        return {k: (str(WASM) if k == "filename" and str(v).endswith(".wasm") else local_wasm(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [local_wasm(v) for v in value]
    return value


def test_rendered_examples_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/render_examples.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- docker-compose ------------------------------------------------------------

def test_compose_file_parses_and_everything_it_mounts_exists():
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(compose["services"]) == {"envoy", "ratelimit", "redis", "backend-a", "backend-b"}
    assert compose["services"]["envoy"]["image"] == "envoyproxy/envoy:v1.40.0"  # the Envoy the tests run
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (COMPOSE.parent / source).resolve().exists(), f"{name} mounts missing {source}"
        if "build" in service:
            assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve().is_file()
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # Envoy reaches every service it names by its compose name.
    envoy = yaml.safe_load((COMPOSE.parent / "envoy.yaml").read_text())
    for cluster in envoy["static_resources"]["clusters"]:
        host = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        assert host["address"] in compose["services"], cluster["name"]
    mounted_wasm = [v for v in compose["services"]["envoy"]["volumes"] if v.endswith(".wasm:ro")]
    assert mounted_wasm and "/etc/envoy/openai_gateway.wasm" in mounted_wasm[0]


def test_compose_envoy_config_loads_with_the_filter(tmp_path):
    envoy = local_wasm(yaml.safe_load((COMPOSE.parent / "envoy.yaml").read_text()))
    result = validate(envoy, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "openai-gateway: configured" in result.stdout + result.stderr


# --- Istio -----------------------------------------------------------------------

def istio_docs():
    docs = []
    for path in sorted((EXAMPLES / "istio").glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def istio_envoyfilter(file: str = "envoyfilter.yaml") -> dict:
    """The EnvoyFilter of one manifest: the inline one, or the one whose
    gateway filter comes by ECDS (envoyfilter-ecds.yaml)."""
    (envoyfilter,) = [d for name, d in istio_docs() if name == file and d["kind"] == "EnvoyFilter"]
    return envoyfilter


def istio_gateway_filter(file: str) -> dict:
    """The gateway's Wasm filter configuration in a manifest: inline in its
    HTTP_FILTER patch, or its EXTENSION_CONFIG."""
    for p in istio_envoyfilter(file)["spec"]["configPatches"]:
        value = p["patch"]["value"]
        if p["applyTo"] in ("HTTP_FILTER", "EXTENSION_CONFIG") and "typed_config" in value \
                and value["typed_config"].get("config", {}).get("root_id") == "openai_gateway":
            return value
    raise AssertionError(f"no gateway filter in {file}")


REQUIRED = {
    "Namespace": [],
    "ConfigMap": ["data"],
    "Service": ["spec.selector", "spec.ports"],
    "Deployment": ["spec.selector.matchLabels", "spec.template.metadata.labels", "spec.template.spec.containers"],
    "EnvoyFilter": ["spec.configPatches"],
    "Gateway": ["spec.selector", "spec.servers"],
    "VirtualService": ["spec.hosts", "spec.http"],
}


def dig(doc, dotted):
    for part in dotted.split("."):
        doc = doc[part]
    return doc


@pytest.mark.parametrize("source, doc", istio_docs(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_kubernetes_manifests_carry_what_their_kinds_require(source, doc):
    assert doc["apiVersion"] and doc["kind"] in REQUIRED, source
    assert doc["metadata"]["name"]
    for field in REQUIRED[doc["kind"]]:
        assert dig(doc, field), f"{source} {doc['kind']}: {field}"
    if doc["kind"] == "Deployment":
        labels = dig(doc, "spec.template.metadata.labels")
        assert dig(doc, "spec.selector.matchLabels").items() <= labels.items()
        for container in dig(doc, "spec.template.spec.containers"):
            assert container["name"] and container["image"]
    if doc["kind"] == "EnvoyFilter":
        for patch in doc["spec"]["configPatches"]:
            assert patch["applyTo"] in {"HTTP_FILTER", "EXTENSION_CONFIG", "VIRTUAL_HOST", "HTTP_ROUTE", "CLUSTER"}
            assert patch["patch"]["operation"] in {"INSERT_BEFORE", "MERGE", "ADD"}


def test_a_bootstrap_assembled_from_the_envoyfilter_loads_with_the_filter(tmp_path):
    patches = istio_envoyfilter()["spec"]["configPatches"]
    filters = [p["patch"]["value"] for p in patches if p["applyTo"] == "HTTP_FILTER"]
    assert [f["name"] for f in filters] == ["envoy.filters.http.wasm", "envoy.filters.http.ratelimit",
                                            "envoy.filters.http.ratelimit", "envoy.filters.http.ratelimit"]
    vhost = next((p["patch"]["value"] for p in patches if p["applyTo"] == "VIRTUAL_HOST"), {})
    cluster = next(p["patch"]["value"] for p in patches if p["applyTo"] == "CLUSTER")
    bootstrap = local_wasm({
        "static_resources": {
            "listeners": [{"name": "gateway", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 18080}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                               "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                               "stat_prefix": "istio_like",
                               "http_filters": copy.deepcopy(filters) + [{"name": "envoy.filters.http.router", "typed_config": {
                                   "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                               "route_config": {"virtual_hosts": [{"name": "api", "domains": ["*"], **vhost,
                                                                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "ratelimit"}}]}]},
                           }}]}]}],
            "clusters": [cluster],
        }
    })
    result = validate(bootstrap, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "openai-gateway: configured" in result.stdout + result.stderr


def test_istio_probes_call_the_clusters_istio_makes_for_the_virtualservice_destinations():
    (vs,) = [d for _, d in istio_docs() if d["kind"] == "VirtualService"]
    destinations = {}
    for route in vs["spec"]["http"]:
        backend = route["match"][0]["headers"]["x-gateway-backend"]["exact"]
        dest = route["route"][0]["destination"]
        destinations[backend] = (f"outbound|{dest['port']['number']}||{dest['host']}", dest["host"])
    for file in ("envoyfilter.yaml", "envoyfilter-ecds.yaml"):
        wasm = istio_gateway_filter(file)
        plugin = json.loads(wasm["typed_config"]["config"]["configuration"]["value"])
        probed = [b for b in plugin["backends"] if "probe" in b]
        assert probed
        for backend in probed:
            assert (backend["probe"]["cluster"], backend["probe"]["authority"]) == destinations[backend["name"]]


def test_the_ecds_envoyfilter_is_the_inline_one_with_the_gateway_discovered():
    """Same patches, same order; the gateway's HTTP filter asks for the
    EXTENSION_CONFIG by name (over Istio's ADS, waiting for it), and that
    extension is the inline filter's configuration, flag included."""
    inline = istio_envoyfilter()["spec"]["configPatches"]
    discovered = istio_envoyfilter("envoyfilter-ecds.yaml")["spec"]["configPatches"]
    (extension,) = [p for p in discovered if p["applyTo"] == "EXTENSION_CONFIG"]
    assert extension["patch"]["operation"] == "ADD"  # the only operation Istio applies to it
    rest = [p for p in discovered if p["applyTo"] != "EXTENSION_CONFIG"]
    assert len(rest) == len(inline)
    for mine, theirs in zip(rest, inline):
        value = mine["patch"]["value"]
        if "config_discovery" in value:
            assert value["name"] == extension["patch"]["value"]["name"]
            assert value["config_discovery"] == {
                "config_source": {"ads": {}, "initial_fetch_timeout": "0s"},
                "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}
            assert extension["patch"]["value"]["typed_config"] == theirs["patch"]["value"]["typed_config"]
            assert extension["patch"]["value"]["typed_config"]["config"]["allow_on_headers_stop_iteration"] is True
        else:
            assert mine == theirs


def test_the_istio_ratelimit_configmap_is_the_shipped_limits():
    (configmap,) = [d for _, d in istio_docs() if d["kind"] == "ConfigMap"]
    assert configmap["data"]["config.yaml"] == (ROOT / "envoy/ratelimit-config.yaml").read_text()


# --- descriptors match limits -----------------------------------------------------

def produced_descriptors(rate_limits):
    """The (key, value-or-None) sequences Envoy builds from rate_limits actions."""
    out = []
    for entry in rate_limits:
        seq = []
        for action in entry["actions"]:
            if "generic_key" in action:
                seq.append((action["generic_key"]["descriptor_key"], action["generic_key"]["descriptor_value"]))
            elif "header_value_match" in action:
                seq.append((action["header_value_match"]["descriptor_key"], action["header_value_match"]["descriptor_value"]))
            elif "request_headers" in action:
                seq.append((action["request_headers"]["descriptor_key"], None))
            else:
                raise AssertionError(f"unexpected action {action}")
        out.append(seq)
    return out


def has_limit(config_descriptors, seq):
    """Whether envoyproxy/ratelimit's config gives a limit to every value of `seq`."""
    level = config_descriptors
    for i, (key, value) in enumerate(seq):
        node = next((d for d in level if d["key"] == key and (value is None and "value" not in d or d.get("value") == value)), None)
        if node is None:
            return False
        if i == len(seq) - 1:
            return "rate_limit" in node
        level = node.get("descriptors", [])
    return False


def test_every_descriptor_the_fleet_sends_has_a_limit():
    envoy = yaml.safe_load((ROOT / "envoy/global-ratelimit.yaml").read_text())
    hcm = connection_manager(envoy)
    limiters = [f["typed_config"] for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ratelimit"]
    rate_limits = [entry for limiter in limiters for entry in limiter["rate_limits"]]
    config = yaml.safe_load((ROOT / "envoy/ratelimit-config.yaml").read_text())
    domains = {f["typed_config"]["domain"] for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ratelimit"}
    assert domains == {config["domain"]}
    for seq in produced_descriptors(rate_limits):
        if seq[0] == ("limit", "spend"):
            # Spend budgets are per key: a key without one is not limited.
            assert any(top["value"] == "spend" for top in config["descriptors"])
            continue
        assert has_limit(config["descriptors"], seq), seq
    # The service's limit names tell the gateway requests, tokens and spend apart.
    names = {d["rate_limit"]["name"] for top in config["descriptors"] for d in top["descriptors"]}
    assert names == {"requests", "tokens", "spend"}


def test_every_descriptor_one_envoy_sends_has_a_bucket():
    envoy = yaml.safe_load((ROOT / "envoy/demo.yaml").read_text())
    hcm = connection_manager(envoy)
    for f in (f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.local_ratelimit"):
        config = f["typed_config"]
        buckets = [[(e["key"], e.get("value")) for e in d["entries"]] for d in config["descriptors"]]
        for seq in produced_descriptors(config["rate_limits"]):
            if config["stat_prefix"] == "gateway_spend":
                # Spend budgets are per key: a key without one is not limited.
                assert seq == [("limit", "spend"), ("key_id", None)] and buckets
                continue
            assert seq in buckets, (config["stat_prefix"], seq)
