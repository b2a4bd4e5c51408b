#!/bin/bash
# podsim collective over named mesh axes: the default placement (tensor on
# consecutive chips), an explicit --place, the placement printed, and the
# errors for meshes that do not fit the pod.
set -u
PODSIM=${1:?usage: collective_mesh.sh /path/to/podsim}
SRC=${PODSIM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
fail() { echo "FAIL: $*" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pod=(--chip tpu-v5e --slice 16x16 --slices 2)
mesh=(--ici fsdp=64,tensor=4 --dcn data=2)

"$PODSIM" collective "${pod[@]}" "${mesh[@]}" --over tensor --op all-reduce \
	--bytes 64MiB --json > "$TMP/t.json" || fail "tensor all-reduce exited $?"
"$PODSIM" collective "${pod[@]}" "${mesh[@]}" --place tensor=y,fsdp=xy --over tensor \
	--op all-reduce --bytes 64MiB --json > "$TMP/ty.json" || fail "--place exited $?"
"$PODSIM" collective "${pod[@]}" "${mesh[@]}" --over tensor,fsdp --op all-reduce \
	--bytes 64MiB --json > "$TMP/tf.json" || fail "tensor,fsdp exited $?"
"$PODSIM" collective "${pod[@]}" --axes x,y --op all-reduce \
	--bytes 64MiB --json > "$TMP/xy.json" || fail "x,y exited $?"
python3 - "$TMP" "$SRC/sim/chips/tpu-v5e.json" <<'PY' || fail "mesh placement checks"
import json, sys
d = sys.argv[1]
t = json.load(open(d + "/t.json"))
ty = json.load(open(d + "/ty.json"))
tf = json.load(open(d + "/tf.json"))
xy = json.load(open(d + "/xy.json"))
chip = json.load(open(sys.argv[2]))
assert chip["ici_link_bw"]["unit"] == "GB/s" and chip["ici_hop_latency"]["unit"] == "us"
bw = chip["ici_link_bw"]["value"] * 1e9
lat = chip["ici_hop_latency"]["value"] * 1e-6
B = 64 * 2**20
# default: tensor on 4 consecutive chips of x, a line: folded ring
assert t["placement_default"] is True
pl = {e["axis"]: e for e in t["placement"]}
assert pl["tensor"]["on"].startswith("x(4 of 16, stride 1"), pl["tensor"]
assert pl["data"]["on"].startswith("dcn(2"), pl["data"]
assert t["group_size"] == 4
want = 2 * 3 * (2 * lat + B / (4 * bw))
assert abs(t["time_s"] - want) <= 1e-9 * want, (t["time_s"], want)
# explicit: tensor on y, same cost by symmetry, reported as not default
assert ty["placement_default"] is False
assert {e["axis"]: e for e in ty["placement"]}["tensor"]["on"].startswith("y(4 of 16")
assert abs(ty["time_s"] - want) <= 1e-9 * want
# tensor and fsdp together span the slice: the same as over x,y
assert tf["group_size"] == 256
assert abs(tf["time_s"] - xy["time_s"]) <= 1e-9 * xy["time_s"]
PY

"$PODSIM" collective "${pod[@]}" "${mesh[@]}" --over fsdp --op all-gather --bytes 1MiB \
	> "$TMP/text" || fail "text output exited $?"
grep -q '^placement' "$TMP/text" || fail "text output has no placement"
grep -q 'fsdp .*ici=64' "$TMP/text" || fail "placement does not list fsdp"
grep -q '(placement: default)' "$TMP/text" || fail "placement does not say it is the default"

expect() { # status pattern args...
	local want=$1 pat=$2
	shift 2
	"$PODSIM" collective "$@" > /dev/null 2> "$TMP/err"
	local got=$?
	[ "$got" = "$want" ] || fail "'$*' exited $got, want $want"
	grep -q -- "$pat" "$TMP/err" || fail "'$*': message lacks '$pat': $(cat "$TMP/err")"
}
op=(--op all-reduce --bytes 1MiB)
expect 1 --ici "${pod[@]}" --ici fsdp=32,tensor=4 --dcn data=2 --over fsdp "${op[@]}"
expect 1 --dcn "${pod[@]}" --ici fsdp=64,tensor=4 --dcn data=4 --over fsdp "${op[@]}"
expect 1 --place "${pod[@]}" "${mesh[@]}" --place fsdp=x --over fsdp "${op[@]}"
expect 1 --place "${pod[@]}" "${mesh[@]}" --place model=x --over fsdp "${op[@]}"
expect 2 --over "${pod[@]}" "${mesh[@]}" --over model "${op[@]}"
expect 2 --over "${pod[@]}" "${mesh[@]}" "${op[@]}"
expect 2 --ici "${pod[@]}" --ici fsdp=0 --over fsdp "${op[@]}"
expect 2 --axes "${pod[@]}" "${mesh[@]}" --over fsdp --axes x "${op[@]}"
echo PASS
