#!/usr/bin/env bash
# The architecture's one rule, checked by the build: the core crate (every
# decision, src/) never depends on proxy-wasm; only the adapter (filter/)
# does. A `use proxy_wasm` in src/ already fails to compile; this catches the
# dependency being added back to Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p openai-gateway --edges normal,build --target all --prefix none)
if grep -q '^proxy-wasm ' <<<"$tree"; then
  echo "boundary broken: the core crate openai-gateway depends on proxy-wasm; only filter/ may" >&2
  exit 1
fi
grep -q '^proxy-wasm ' < <(cargo tree -p openai-gateway-filter --edges normal --target all --prefix none) || {
  echo "check-boundary: the adapter filter/ no longer depends on proxy-wasm?" >&2; exit 1; }
echo "boundary: the core crate does not depend on proxy-wasm"
