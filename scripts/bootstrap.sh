#!/usr/bin/env bash
# Installs podsim's build dependencies (Debian 12 packages) when missing,
# then configures and builds podsim in ./build (or $PODSIM_BUILD_DIR).
#   scripts/bootstrap.sh [extra cmake arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config python3 check libjansson-dev
      llvm-19-dev llvm-19-tools clang-19 libomp-19-dev libclang-rt-19-dev
      libopenblas-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "bootstrap: installing ${missing[*]}" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build="${PODSIM_BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
