# The two commands of the README: `make run` and `make test`. Both install
# what they need on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv
PY := $(VENV)/bin/python
# The .wasm Envoy loads: the adapter crate (filter/) built for wasm32 and
# optimised by wasm-opt under the product's name.
WASM := target/wasm32-wasip1/release/openai_gateway.wasm
FILTER_BUILD := target/wasm32-wasip1/release/openai_gateway_filter.wasm

.PHONY: run run-ecds test setup build wasm tools unit lint e2e docs examples sdk-snapshot bench bench-floors bench-ab bench-peers bench-micro soak fuzz clean

run: build
	scripts/run-demo.sh

# The demo with the gateway's configuration read from a watched file (Envoy's
# extension config discovery): change it while it serves with
# scripts/ecds.py apply (README: "Changing the configuration").
run-ecds: build
	$(PY) scripts/ecds.py init envoy/demo.yaml run/ecds/openai_gateway.yaml
	CONFIG=envoy/ecds.yaml scripts/run-demo.sh

test: build unit lint e2e

# --- set-up -----------------------------------------------------------------
setup: $(VENV)/.installed
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
# wasm-opt (binaryen) shrinks the filter; chromium is the browser of the CORS
# test (tests/e2e/test_browser_cors.py); wrk is the steady load of the
# runtime-configuration test (tests/e2e/test_runtime_config.py) and of make bench.
	@command -v wasm-opt >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen)
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# --- build ------------------------------------------------------------------
build: setup wasm tools

wasm:
	$(CARGO) build --release --target wasm32-wasip1 -p openai-gateway-filter
	scripts/optimize-wasm.sh $(FILTER_BUILD) $(WASM)

# The mock model backend and the rate-limit service double (native).
tools:
	$(CARGO) build --profile tools -p mock-backend -p ratelimit-double

# --- test tiers ---------------------------------------------------------------
unit:
	$(CARGO) test --workspace --features openai-gateway/schema

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --features openai-gateway/schema -- -D warnings
	$(CARGO) clippy -p openai-gateway -p openai-gateway-filter --target wasm32-wasip1 --all-targets -- -D warnings
	scripts/check-boundary.sh

e2e: build
	$(PY) -m pytest tests -q -p no:cacheprovider

# --- benchmarks (not part of make test: timings are read, never asserted) ------
bench: build bench-floors
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/run.py

# The two floors bench/run.py measures beside the gateway: the no-op filter,
# and the bare routing filter, optimised like the gateway's .wasm (a floor is
# the best the approach can do).
bench-floors:
	$(CARGO) build --release --target wasm32-wasip1 -p noop-filter -p routing-filter
	scripts/optimize-wasm.sh target/wasm32-wasip1/release/routing_filter.wasm target/wasm32-wasip1/release/routing_floor.wasm

# Two builds of the gateway co-scheduled against each other on the same
# scenarios: make bench-ab A=old.wasm [B=new.wasm] (B: this checkout's build).
# BENCH_ONLY, BENCH_SECONDS and BENCH_FILTER_ONLY apply. bench/ab-results.{json,md}.
B ?= $(WASM)
ifneq ($(filter bench-ab,$(MAKECMDGOALS)),)
ifeq ($(A),)
$(error usage: make bench-ab A=path/to/old.wasm [B=path/to/new.wasm])
endif
endif
bench-ab: build
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/run.py --ab "$(A)" "$(B)"

# Scenario 1 through plain Envoy, the gateway and LiteLLM proxy (installed once
# into .venv-litellm): bench/peers-results.{json,md}.
bench-peers: build bench-floors
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/run.py --peers

# Mixed load for 60 s at 256 connections with a backend outage (RELIABILITY.md).
soak: build
	$(PY) scripts/soak.py

# Native criterion microbenchmarks of the request and response paths, in MB/s
# (benches/; about 2 minutes once built). Reports: target/criterion/.
bench-micro:
	$(CARGO) bench -p openai-gateway

# --- fuzzing (not part of make test: nightly + cargo-fuzz, installed on demand) ---
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

# --- generated files (tests fail when they are stale) ---------------------------
docs:
	UPDATE_DOCS=1 $(CARGO) test -p openai-gateway --features schema --test generated_docs

examples: setup
	$(PY) scripts/render_examples.py

sdk-snapshot: setup
	$(PY) scripts/sdk_snapshot.py

clean:
	$(CARGO) clean
	rm -rf $(VENV)
