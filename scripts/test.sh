#!/usr/bin/env bash
# Installs what is missing, builds podsim with warnings as errors, and runs
# every test (Check unit tests, lit/FileCheck, end-to-end, validation).
#   scripts/test.sh [--sanitize]   (--sanitize: ASan + UBSan build in build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
	export PODSIM_BUILD_DIR=build-asan
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	scripts/bootstrap.sh -DPODSIM_WERROR=ON -DPODSIM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
else
	scripts/bootstrap.sh -DPODSIM_WERROR=ON
fi
ctest --test-dir "${PODSIM_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
