#!/bin/bash
# podsim collective: output fields, the nccl-tests bandwidth convention, size
# suffixes, a closed-form check against the chip file's link figures, and
# exit statuses for bad usage (2) and unsupported slices / chips (1).
set -u
PODSIM=${1:?usage: collective_cli.sh /path/to/podsim}
SRC=${PODSIM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
fail() { echo "FAIL: $*" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- JSON output and the bandwidth convention --------------------------------
"$PODSIM" collective --chip tpu-v5e --slice 16x16 --op all-reduce --axes x,y \
	--bytes 1GiB --json > "$TMP/ar.json" || fail "all-reduce --json exited $?"
"$PODSIM" collective --chip tpu-v5e --slice 16x16 --op all-reduce --axes x,y \
	--bytes 1GiB --algo sequential --json > "$TMP/seq.json" || fail "--algo sequential exited $?"
python3 - "$TMP/ar.json" "$SRC/sim/chips/tpu-v5e.json" "$TMP/seq.json" <<'PY' || fail "all-reduce JSON checks"
import json, sys
r = json.load(open(sys.argv[1]))
chip = json.load(open(sys.argv[2]))
seq = json.load(open(sys.argv[3]))
def si(field):
    v, u = chip[field]["value"], chip[field]["unit"]
    scale = {"GB/s": 1e9, "B/s": 1, "us": 1e-6, "ns": 1e-9, "s": 1, "ms": 1e-3}
    if u not in scale:
        sys.exit("unknown unit %r for %s" % (u, field))
    return v * scale[u]
B = 2**30
assert r["bytes"] == B, r["bytes"]
assert r["group_size"] == 256, r["group_size"]
assert r["op"] == "all-reduce"
t = r["time_s"]
assert abs(r["algbw_bytes_per_s"] - B / t) <= 1e-9 * B / t
assert abs(r["busbw_bytes_per_s"] - B / t * 2 * 255 / 256) <= 1e-9 * B / t
assert "bidirectional ring" in r["algorithm"], r["algorithm"]
# 16x16 wraps on both axes on v5e: bidirectional rings.
bw, lat = si("ici_link_bw"), si("ici_hop_latency")
# sequential: reduce-scatter x on B, then y on B/16; all-gather back
rs = 15 * (lat + B / (32 * bw)) + 15 * (lat + B / 16 / (32 * bw))
ts = seq["time_s"]
assert abs(ts - 2 * rs) <= 1e-9 * ts, (ts, 2 * rs)
# default (auto): split in two halves, x-then-y and y-then-x at once
split = 15 * (lat + B / 2 / (32 * bw)) + 15 * (lat + B / 2 / 16 / (32 * bw))
assert abs(t - 2 * split) <= 1e-9 * t, (t, 2 * split)
assert "split" in r["algorithm"] and "split" not in seq["algorithm"], r["algorithm"]
PY

for op in all-gather reduce-scatter all-to-all; do
	"$PODSIM" collective --chip tpu-v4 --slice 4x4x4 --op $op --axes x,y,z --bytes 64MiB \
		--json > "$TMP/$op.json" || fail "$op exited $?"
	python3 - "$TMP/$op.json" <<'PY' || fail "$op busbw factor"
import json, sys
r = json.load(open(sys.argv[1]))
n = r["group_size"]
assert n == 64, n
assert r["time_s"] > 0
alg = r["bytes"] / r["time_s"]
assert abs(r["busbw_bytes_per_s"] - alg * (n - 1) / n) <= 1e-9 * alg
PY
done

# --- size suffixes ------------------------------------------------------------
check_bytes() {
	"$PODSIM" collective --chip tpu-v4 --slice 4x4x4 --op all-gather --axes x --bytes "$1" \
		--json > "$TMP/b.json" || fail "--bytes $1 exited $?"
	python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["bytes"]; assert b == float(sys.argv[2]), b' \
		"$TMP/b.json" "$2" || fail "--bytes $1 is not $2 bytes"
}
check_bytes 1GiB 1073741824
check_bytes 3MiB 3145728
check_bytes 512KiB 524288
check_bytes 2GB 2000000000
check_bytes 5MB 5000000
check_bytes 7KB 7000
check_bytes 4096 4096

# --- text output --------------------------------------------------------------
"$PODSIM" collective --chip tpu-v4 --slice 4x4x4 --op collective-permute --axes z \
	--bytes 1MiB > "$TMP/t.txt" || fail "text output exited $?"
for k in '^pod ' '^op ' '^algorithm ' '^time ' '^algbw ' '^busbw '; do
	grep -q "$k" "$TMP/t.txt" || fail "text output lacks $k"
done

# --- bad usage: exit 2, naming the flag ---------------------------------------
expect() { # status flag args...
	local want=$1 flag=$2
	shift 2
	"$PODSIM" collective "$@" > /dev/null 2> "$TMP/err"
	local got=$?
	[ "$got" = "$want" ] || fail "'$*' exited $got, want $want"
	grep -q -- "$flag" "$TMP/err" || fail "'$*': message does not name $flag: $(cat "$TMP/err")"
}
base=(--chip tpu-v5e --slice 16x16 --op all-reduce --axes x)
expect 2 --bytes "${base[@]}" --bytes 12XB
expect 2 --bytes "${base[@]}" --bytes -5
expect 2 --bytes "${base[@]}" --bytes GiB
expect 2 --op --chip tpu-v5e --slice 16x16 --op all-sum --axes x --bytes 1
expect 2 --axes --chip tpu-v5e --slice 16x16 --op all-reduce --axes w --bytes 1
expect 2 --slice --chip tpu-v5e --slice 16x --op all-reduce --axes x --bytes 1
expect 2 --slices "${base[@]}" --bytes 1 --slices 0
expect 2 --bytes --chip tpu-v5e --slice 16x16 --op all-reduce --axes x
expect 2 --frobnicate "${base[@]}" --bytes 1 --frobnicate
expect 2 --algo "${base[@]}" --bytes 1 --algo fastest
expect 2 dcn "${base[@]}" --bytes 1 --axes x,dcn
# --- bad input: exit 1 with the reason ----------------------------------------
expect 1 32x16 --chip tpu-v5e --slice 32x16 --op all-reduce --axes x --bytes 1
grep -q 16x16 "$TMP/err" || fail "unsupported slice: the chip's limit is not named"
expect 1 4x4x4 --chip tpu-v5e --slice 4x4x4 --op all-reduce --axes x --bytes 1
expect 1 no-such-chip --chip no-such-chip --slice 4x4 --op all-reduce --axes x --bytes 1
expect 1 twisted --chip tpu-v5e --slice 8x16 --twisted --op all-reduce --axes x --bytes 1
expect 1 "axis z" --chip tpu-v5e --slice 16x16 --op all-reduce --axes z --bytes 1

"$PODSIM" collective --help | grep -q -- --bytes || fail "--help does not describe --bytes"
echo PASS
