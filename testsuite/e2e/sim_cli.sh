#!/bin/bash
# podsim sim and podsim list chips: outputs, the trace file, exit statuses.
# Usage: sim_cli.sh /path/to/podsim (PODSIM_SRC = source root)
set -u
PODSIM=$1
SRC=${PODSIM_SRC:?PODSIM_SRC is not set}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- list chips: every preset once; --json peaks derived from the array ----
"$PODSIM" list chips >"$tmp/table" || fail "list chips exited $?"
for c in tpu-v2 tpu-v3 tpu-v4 tpu-v5e tpu-v5p tpu-v6e tpu-7x; do
	n=$(awk -v c="$c" '$1 == c' "$tmp/table" | wc -l)
	[ "$n" = 1 ] || fail "chip $c listed $n times"
done
"$PODSIM" list chips --json >"$tmp/chips.json" || fail "list chips --json exited $?"
python3 - "$tmp/chips.json" <<'PY' || fail "list chips --json content"
import json, sys
chips = {c["name"]: c for c in json.load(open(sys.argv[1]))}
for name, c in chips.items():
    derived = 2 * c["tensorcores"] * c["mxus_per_core"] * c["mxu_rows"] * c["mxu_cols"] * c["clock_hz"]
    assert abs(derived / c["peak_flops"] - 1) < 1e-9, name
    if not c["clock_from_peak"]:
        assert abs(c["peak_flops"] / c["peak_flops_published"] - 1) < 0.01, name
v4 = chips["tpu-v4"]
assert v4["peak_flops"] == 2 * 2 * 4 * 128 * 128 * 1.05e9
assert v4["ici_ndims"] == 3 and v4["max_slice"] == [16, 16, 16]
assert chips["tpu-v6e"]["clock_from_peak"] and chips["tpu-v6e"]["mxu_rows"] == 256
PY
"$PODSIM" list chips --bogus >/dev/null 2>&1; [ $? = 2 ] || fail "list chips --bogus should exit 2"

# ---- sim: a DMA + matmul + VPU program ----
cat >"$tmp/p.tir" <<'TIR'
module @p tiled
%a = parameter() {name="a"} : bf16[1024,4096] in hbm
%b = parameter() {name="b"} : bf16[4096,1024] in vmem
%as = dma_start(%a) {to="vmem"} : bf16[1024,4096] on dma
%ad = dma_done(%as) : bf16[1024,4096] on dma in vmem
%y = dot(%ad, %b) {lhs_contract=[1], rhs_contract=[0]} : bf16[1024,1024] on mxu in vmem
%z = tanh(%y) : bf16[1024,1024] on vpu in vmem
return %z
TIR
"$PODSIM" sim "$tmp/p.tir" --json --trace "$tmp/trace.json" >"$tmp/out.json" ||
	fail "sim exited $?"
python3 - "$tmp/out.json" "$tmp/trace.json" <<'PY' || fail "sim --json / --trace content"
import json, sys
r = json.load(open(sys.argv[1]))
ops = {o["value"]: o for o in r["ops"]}
# dependencies: the dot waits for the DMA, the tanh for the dot
assert ops["%y"]["start_s"] >= ops["%ad"]["end_s"] > 0
assert ops["%z"]["start_s"] >= ops["%y"]["end_s"]
assert abs(r["seconds"] - ops["%z"]["end_s"]) < 1e-15
# the matmul cannot beat the chip's peak
dot_s = ops["%y"]["end_s"] - ops["%y"]["start_s"]
assert dot_s >= 2 * 1024 * 4096 * 1024 / r["peak_flops"]
assert abs(r["cycles"] - r["seconds"] * r["clock_hz"]) < 1e-3 * r["cycles"]
assert abs(r["busy_s"]["mxu"] - dot_s) <= 1e-9 * dot_s
t = json.load(open(sys.argv[2]))
ev = [e for e in t["traceEvents"] if e["ph"] == "X"]
assert sorted(e["name"] for e in ev) == ["dma_start", "dot", "tanh"], ev
tracks = {e["args"]["name"] for e in t["traceEvents"] if e["name"] == "thread_name"}
assert {"mxu", "vpu", "dma", "ici", "dcn"} <= tracks, tracks
dot = [e for e in ev if e["name"] == "dot"][0]
assert abs(dot["dur"] - dot_s * 1e6) < 1e-6
PY
ls "$tmp" | grep -q '\.tmp\.' && fail "temporary trace file left behind"

# same program on another chip by file path: faster chip, shorter time
"$PODSIM" sim "$tmp/p.tir" --chip "$SRC/sim/chips/tpu-v5p.json" --json >"$tmp/v5p.json" ||
	fail "sim --chip path exited $?"
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert b["chip"]=="tpu-v5p" and b["seconds"] < a["seconds"]' \
	"$tmp/out.json" "$tmp/v5p.json" || fail "v5p not faster than v4"

# ---- errors ----
"$PODSIM" sim >/dev/null 2>&1; [ $? = 2 ] || fail "no file should exit 2"
"$PODSIM" sim "$tmp/p.tir" --frobnicate >/dev/null 2>&1; [ $? = 2 ] || fail "bad option should exit 2"
"$PODSIM" sim "$tmp/p.tir" --chip >/dev/null 2>&1; [ $? = 2 ] || fail "--chip without value should exit 2"
"$PODSIM" sim "$tmp/missing.tir" >/dev/null 2>"$tmp/err"; [ $? = 1 ] || fail "missing file should exit 1"
grep -q "missing.tir" "$tmp/err" || fail "missing file not named: $(cat "$tmp/err")"
"$PODSIM" sim "$tmp/p.tir" --chip tpu-v99 >/dev/null 2>"$tmp/err"; [ $? = 1 ] || fail "bad chip should exit 1"
grep -q "unknown chip 'tpu-v99'" "$tmp/err" || fail "bad chip message: $(cat "$tmp/err")"
printf 'module @x tiled\n%%a = parameter() {name="a"} : f32[4] in vmem\n%%b = frob(%%a) : f32[4] on vpu\nreturn %%b\n' >"$tmp/bad.tir"
"$PODSIM" sim "$tmp/bad.tir" >/dev/null 2>"$tmp/err"; [ $? = 1 ] || fail "bad IR should exit 1"
grep -q "bad.tir:3:" "$tmp/err" || fail "bad IR message lacks line: $(cat "$tmp/err")"
"$PODSIM" sim "$tmp/p.tir" --trace /nonexistent-dir/t.json >/dev/null 2>"$tmp/err"
[ $? = 1 ] || fail "unwritable trace should exit 1"
grep -q "/nonexistent-dir/t.json" "$tmp/err" || fail "trace error: $(cat "$tmp/err")"
echo "sim_cli: ok"
