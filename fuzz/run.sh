#!/usr/bin/env bash
# Runs each cargo-fuzz target for FUZZ_SECONDS, one after another (a single
# libFuzzer process at a time), and prints one summary line per target.
# Exits non-zero when a target finds a crash, timeout, OOM or leak; the
# input is saved under fuzz/artifacts/<target>/ and the log under fuzz/logs/.
#
#   FUZZ_SECONDS=60 fuzz/run.sh                  # every target, 60 s each
#   FUZZ_TARGETS="sse_reader" fuzz/run.sh        # some targets
#   FUZZ_TOOLCHAIN=nightly-2026-01-01 fuzz/run.sh
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
targets=${FUZZ_TARGETS:-request_pipeline json_document sse_reader multipart_form plugin_config routed_ids response_adjust}

rustup run "$toolchain" rustc --version >/dev/null 2>&1 ||
    rustup toolchain install "$toolchain" --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

mkdir -p fuzz/logs
# One run at a time: two would share the cores and the corpus directories.
exec 9>fuzz/logs/.lock
flock -n 9 || { echo "fuzz/run.sh is already running" >&2; exit 1; }
printf '%-17s %7s %12s %8s %6s %7s %6s %s\n' target seconds executions exec/s cov ft corpus findings
status=0
for target in $targets; do
    mkdir -p "fuzz/corpus/$target"
    log="fuzz/logs/$target.log"
    # Safe Rust (no `unsafe` in src/): no sanitizer, so more executions per
    # second; cargo-fuzz keeps debug assertions and overflow checks on.
    # libFuzzer's memory and time limits stay at their defaults.
    cargo "+$toolchain" fuzz run --sanitizer none "$target" \
        "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -dict=fuzz/dict/gateway.dict -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    field() { sed -nE "s/.* $1: ([0-9]+).*/\1/p" <<<"$last"; }
    corpus=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
    findings=none
    if [ "$rc" -ne 0 ]; then
        status=1
        findings=$(sed -nE 's/.*Test unit written to (.*)/\1/p' "$log" | tr '\n' ' ')
        findings=${findings:-"exit $rc, see $log"}
    fi
    printf '%-17s %7s %12s %8s %6s %7s %6s %s\n' "$target" "$seconds" \
        "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
        "$(field cov)" "$(field ft)" "$corpus" "$findings"
done
exit $status
