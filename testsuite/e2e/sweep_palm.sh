#!/usr/bin/env bash
# podsim sweep on PaLM 540B over 6144 TPU v4 chips in 2 slices: the
# paper's layout (fsdp=256, tensor=12 in each slice, data=2 over DCN) is
# found and fits, with the numbers podsim estimate gives for it; pure data
# parallelism is reported as not fitting, with its overflow; the ranking
# does not depend on the thread count. The space is kept small with --fix.
set -uo pipefail
podsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

palm=(--model palm-540b --chip tpu-v4 --batch 2048 --seq 2048)
sweep=(sweep "${palm[@]}" --chips 6144 --slices 2 --fix fsdp=256,tensor=12 --remat full
	--microbatches 1 --json)
for t in 1 2; do
	OMP_NUM_THREADS=$t "$podsim" "${sweep[@]}" >"$tmp/palm$t.json" 2>"$tmp/err" ||
		fail "sweep ($t threads): exit $? ($(head -c 300 "$tmp/err"))"
done
cmp -s "$tmp/palm1.json" "$tmp/palm2.json" || fail "the ranking differs between 1 and 2 threads"

"$podsim" estimate "${palm[@]}" --slice 12x16x16 --slices 2 --ici fsdp=256,tensor=12 --dcn data=2 \
	--remat full --json >"$tmp/est.json" 2>"$tmp/err" || fail "estimate: exit $?"

python3 - "$tmp/palm1.json" "$tmp/est.json" <<'PY' || fail "the PaLM layout"
import json, sys
doc, est = (json.load(open(p)) for p in sys.argv[1:3])
rows = [r for r in doc["layouts"] if r["ici"] == "fsdp=256,tensor=12" and r["dcn"] == "data=2"
        and r["slice"] == "12x16x16"]
assert len(rows) == 1, [(r["ici"], r["dcn"], r["slice"]) for r in doc["layouts"]]
r = rows[0]
assert r["status"] == "ok" and r["memory"]["fits"], r
assert doc["layouts"][0]["memory"]["fits"]
# the same engine as podsim estimate, to rounding
for k in ("step_time_s", "tokens_per_s", "mfu", "hfu"):
    assert abs(r[k] - est[k]) <= 1e-6 * abs(est[k]), (k, r[k], est[k])
# the memory too, or, for a layout extended from small depths whose peak is
# only bounded (docs/sweep.md), a bound above it that still fits
mem, emem = r["memory"]["per_chip_bytes"], est["memory"]["per_chip_bytes"]
if r["memory"].get("upper_bound"):
    assert r["extrapolated"] and emem <= mem <= r["memory"]["hbm_bytes"], (r, est["memory"])
else:
    assert abs(mem - emem) <= 1e-6 * emem, (r, est["memory"])
# every layout here has fsdp of total size 256 and tensor 12
for x in doc["layouts"]:
    m = x["mesh"]
    assert m["fsdp"]["ici"] * m["fsdp"]["dcn"] == 256 and m["tensor"]["ici"] == 12, x
PY

# Pure data parallelism (a batch it divides): 540B bf16 weights on every
# chip cannot fit in 32 GiB; the sweep says so, with the overflow, and
# exits 1 because no layout fits.
"$podsim" sweep "${palm[@]}" --chips 6144 --slices 2 --batch 6144 --fix data=6144 --remat full \
	--microbatches 1 --json >"$tmp/dp.json" 2>"$tmp/err"
rc=$?
[ "$rc" = 1 ] || fail "pure data parallelism: exit $rc, expected 1"
grep -q "no layout" "$tmp/err" || fail "pure data parallelism: stderr lacks 'no layout'"
python3 - "$tmp/dp.json" <<'PY' || fail "pure data parallelism"
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc["layouts"]
assert rows, doc["summary"]
params = 540e9
for r in rows:
    assert r["ici"] == "data=3072" and r["dcn"] == "data=2", r
    mem = r["memory"]
    assert not mem["fits"], r
    # at least the bf16 weights, replicated
    assert mem["per_chip_bytes"] >= 2 * params and mem["overflow_bytes"] > 0, r
    assert abs(mem["overflow_bytes"] - (mem["per_chip_bytes"] - mem["hbm_bytes"])) <= \
        1e-8 * mem["per_chip_bytes"], r
PY
"$podsim" sweep "${palm[@]}" --chips 6144 --slices 2 --batch 6144 --fix data=6144 --remat full \
	--microbatches 1 >"$tmp/dp.txt" 2>/dev/null
grep -q "no (over by" "$tmp/dp.txt" || fail "the table does not show the overflow: $(cat "$tmp/dp.txt")"

[ "$fails" = 0 ] || exit 1
echo "sweep_palm: ok"
