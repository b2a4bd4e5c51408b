#!/bin/bash
# Builds the IR parser fuzzer with clang-19 (libFuzzer + ASan + UBSan) and runs
# it for a bounded time.
#   usage: testsuite/fuzz/run.sh [SECONDS=60] [BUILD_DIR=<src>/build-fuzz]
# Exit status: 0 if no crash was found; non-zero otherwise, with the crashing
# input saved as BUILD_DIR/fuzz-crash-* (replay: BUILD_DIR/fuzz_ir_parse FILE).
# New inputs go to BUILD_DIR/fuzz-corpus; the seeds in testsuite/fuzz/corpus
# are only read.
set -euo pipefail
secs=${1:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$src/build-fuzz}
CC=clang-19 cmake -S "$src" -B "$build" -DPODSIM_FUZZ=ON >/dev/null
make -C "$build" -j"$(nproc)" fuzz_ir_parse >/dev/null
mkdir -p "$build/fuzz-corpus"
exec "$build/fuzz_ir_parse" -max_total_time="$secs" -max_len=4096 -timeout=10 \
	-dict="$src/testsuite/fuzz/ir.dict" -artifact_prefix="$build/fuzz-" \
	-print_final_stats=1 "$build/fuzz-corpus" "$src/testsuite/fuzz/corpus"
