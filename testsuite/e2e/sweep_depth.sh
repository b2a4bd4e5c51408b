#!/usr/bin/env bash
# podsim sweep's depth extrapolation against full-depth evaluation
# (--exact) on PaLM 8B (32 layers) over 8 TPU v4 chips: the same layouts
# fit; a row at full depth has exactly the full-depth numbers; an extended
# row (from three consecutive depths, 2 to 9 layers) has its step time,
# MFU and HFU within 0.5%, and a memory that is the full-depth peak (to
# rounding), or, where it says so, a lower bound of it (does not fit) or an
# upper bound (fits), as docs/sweep.md claims. Eight microbatches bring
# layouts whose memory bounds do not hold yet at 2 to 4 layers (the window
# slides) and layouts the bounds leave open (a full-depth memory plan).
set -uo pipefail
podsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

space=(sweep --model palm-8b --chip tpu-v4 --chips 8 --batch 16 --seq 2048
	--remat none,minimal,full --microbatches 1,2,8 --shapes 1 --json)
"$podsim" "${space[@]}" >"$tmp/fast.json" 2>"$tmp/err" ||
	fail "sweep: exit $? ($(head -c 300 "$tmp/err"))"
"$podsim" "${space[@]}" --exact >"$tmp/exact.json" 2>"$tmp/err" ||
	fail "sweep --exact: exit $? ($(head -c 300 "$tmp/err"))"
# reuse (one compile per depth and group, pods shared across meshes) changes
# nothing here either, and the activation bound prunes only layouts whose
# full-depth peak (brute force) is at least the bound
"$podsim" "${space[@]}" --no-prune >"$tmp/brute.json" 2>"$tmp/err" ||
	fail "sweep --no-prune: exit $? ($(head -c 300 "$tmp/err"))"
python3 - "$tmp/fast.json" "$tmp/brute.json" <<'PY' || fail "sweep vs sweep --no-prune"
import json, sys
fast, brute = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda r: (r["ici"], r["dcn"], r["slice"], r["remat"], r["microbatches"])
B = {key(r): r for r in brute["layouts"]}
strip = lambda r: {k: v for k, v in r.items() if k != "rank"}
npruned = 0
for r in fast["layouts"]:
    b = B[key(r)]
    if r["status"] != "pruned":
        assert strip(r) == strip(b), ("rows differ", r, b)
        continue
    npruned += 1
    assert b["status"] == "ok" and not b["memory"]["fits"], ("pruned but fits", r, b)
    assert b["memory"]["per_chip_bytes"] >= r["memory"]["per_chip_bytes"], (r, b)
assert npruned > 0, "the space should exercise the activation bound"
PY

python3 - "$tmp/fast.json" "$tmp/exact.json" <<'PY' || fail "extrapolated vs full depth"
import json, sys
fast, exact = (json.load(open(p)) for p in sys.argv[1:3])
# 2, 3, 4, then deeper windows up to half the depth (32 layers)
assert fast["summary"]["small_depths"] == list(range(2, 10)), fast["summary"]
assert exact["summary"]["small_depths"] == [] and exact["summary"]["extrapolated"] == 0
key = lambda r: (r["ici"], r["dcn"], r["slice"], r["remat"], r["microbatches"])
F = {key(r): r for r in fast["layouts"]}
E = {key(r): r for r in exact["layouts"]}
assert F.keys() == E.keys()
strip = lambda r: {k: v for k, v in r.items() if k != "rank"}
kinds = {"exact": 0, "lower": 0, "upper": 0}
for k, f in F.items():
    e = E[k]
    assert f["memory"]["fits"] == e["memory"]["fits"], ("fit differs", k, f, e)
    if not f.get("extrapolated"):
        assert strip(f) == strip(e), ("full-depth rows differ", k, f, e)
        continue
    for m in ("step_time_s", "mfu", "hfu"):
        assert abs(f[m] - e[m]) <= 5e-3 * e[m], (k, m, f[m], e[m])
    fm, em = f["memory"]["per_chip_bytes"], e["memory"]["per_chip_bytes"]
    if f["memory"]["lower_bound"]:
        kinds["lower"] += 1
        assert not f["memory"]["fits"] and fm <= em * (1 + 1e-9), (k, f, e)
    elif f["memory"]["upper_bound"]:
        kinds["upper"] += 1
        assert f["memory"]["fits"] and fm >= em * (1 - 1e-9), (k, f, e)
    else:
        kinds["exact"] += 1
        assert abs(fm - em) <= 1e-9 * em, (k, fm, em)
assert kinds["exact"] > 0 and kinds["lower"] > 0 and kinds["upper"] > 0, kinds
assert sum(kinds.values()) < len(F), "every layout was extended: the test space is wrong"
# the same layouts fit, ranked the same but where an extended step time
# (within 0.5%) can swap two layouts whose full-depth times are that close
fits = lambda doc: [key(r) for r in doc["layouts"] if r["memory"]["fits"]]
assert sorted(fits(fast)) == sorted(fits(exact))
pos = {k: i for i, k in enumerate(fits(exact))}
order = fits(fast)
for a, b in zip(order, order[1:]):
    if pos[a] > pos[b]:
        ta, tb = E[a]["step_time_s"], E[b]["step_time_s"]
        assert ta <= tb * (1 + 1e-2), ("ranked out of order", a, b, ta, tb)
best_fast, best_exact = E[order[0]], E[fits(exact)[0]]
assert best_fast["step_time_s"] <= best_exact["step_time_s"] * (1 + 5e-3), (best_fast, best_exact)
PY

[ "$fails" = 0 ] || exit 1
echo "sweep_depth: ok"
