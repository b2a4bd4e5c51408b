#!/bin/bash
# podsim collective on real chip presets: an axis with wraparound against the
# same-chip axis without (v5e wraps only 16-chip axes), a multi-slice
# all-reduce bounded by DCN, and a twisted torus speeding up all-to-all.
set -u
PODSIM=${1:?usage: collective_topology.sh /path/to/podsim}
SRC=${PODSIM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
fail() { echo "FAIL: $*" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
run() { # name args...
	local name=$1
	shift
	"$PODSIM" collective "$@" --json > "$TMP/$name.json" || fail "$name: exit $?"
}

# Torus vs line on v5e: x of 16 wraps, x of 8 does not. For a large buffer the
# bidirectional ring's bus bandwidth is about two links' worth, the line's one.
run torus --chip tpu-v5e --slice 16x16 --op all-reduce --axes x --bytes 4GiB
run line --chip tpu-v5e --slice 8x16 --op all-reduce --axes x --bytes 4GiB
python3 - "$TMP" "$SRC/sim/chips/tpu-v5e.json" <<'PY' || fail "torus vs line"
import json, sys
d = sys.argv[1]
t = json.load(open(d + "/torus.json"))
l = json.load(open(d + "/line.json"))
chip = json.load(open(sys.argv[2]))
assert chip["ici_link_bw"]["unit"] == "GB/s"
bw = chip["ici_link_bw"]["value"] * 1e9
assert "torus" in t["group"] and "line" in l["group"], (t["group"], l["group"])
rt, rl = t["busbw_bytes_per_s"] / bw, l["busbw_bytes_per_s"] / bw
assert 1.9 < rt <= 2.0, rt
assert 0.95 < rl <= 1.0, rl
PY

# Two v5e slices over DCN: the hierarchical all-reduce is slower than inside
# one slice, and no faster than the DCN part alone can be.
run one --chip tpu-v5e --slice 16x16 --slices 2 --op all-reduce --axes x,y --bytes 1GiB
run two --chip tpu-v5e --slice 16x16 --slices 2 --op all-reduce --axes x,y,dcn --bytes 1GiB
python3 - "$TMP" "$SRC/sim/chips/tpu-v5e.json" <<'PY' || fail "multi-slice"
import json, sys
d = sys.argv[1]
one = json.load(open(d + "/one.json"))
two = json.load(open(d + "/two.json"))
chip = json.load(open(sys.argv[2]))
assert chip["dcn_bw_per_chip"]["unit"] == "GB/s"
dbw = chip["dcn_bw_per_chip"]["value"] * 1e9
B = 2**30
assert two["group_size"] == 512
assert two["time_s"] > one["time_s"]
# each chip's shard B/256 must go round a 2-slice ring: 2 (N-1)/N of it
assert two["time_s"] >= (B / 256) / dbw
assert two["dcn_time_s"] >= (B / 256) / dbw
assert abs(two["ici_time_s"] + two["dcn_time_s"] - two["time_s"]) <= 1e-9 * two["time_s"]
assert "dcn" in two["algorithm"]
PY

# Twisted 4x4x8 on v4: all-to-all over the whole slice is faster than on the
# plain torus (shorter routes, more bisection), and routes are checked.
run plain --chip tpu-v4 --slice 4x4x8 --op all-to-all --axes x,y,z --bytes 1GiB
run twist --chip tpu-v4 --slice 4x4x8 --twisted --op all-to-all --axes x,y,z --bytes 1GiB
python3 - "$TMP" <<'PY' || fail "twisted"
import json, sys
d = sys.argv[1]
p = json.load(open(d + "/plain.json"))
t = json.load(open(d + "/twist.json"))
assert t["twisted"] is True and p["twisted"] is False
assert t["time_s"] < p["time_s"], (t["time_s"], p["time_s"])
PY
echo PASS
