#!/usr/bin/env bash
# Optimises a filter for speed with binaryen's wasm-opt -O3 (installed by
# `make setup`), debug sections stripped, into the .wasm Envoy loads:
# `optimize-wasm.sh BUILT.wasm [OUT.wasm]` (in place without OUT). Cargo writes a fresh artifact on every build, so this
# runs after every `cargo build` (about 2 s).
set -euo pipefail
wasm="${1:?usage: optimize-wasm.sh BUILT.wasm [OUT.wasm]}"
out="${2:-$wasm}"
command -v wasm-opt >/dev/null || { echo "wasm-opt not found: run 'make setup' (Debian package binaryen)" >&2; exit 1; }
# The features Rust 1.95's wasm32-wasip1 output uses (binaryen 108 needs them named).
wasm-opt -O3 --strip-debug --strip-producers \
  --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$wasm" -o "$out.tmp"
mv "$out.tmp" "$out"
echo "wasm-opt -O3: $out is $(stat -c %s "$out") bytes"
