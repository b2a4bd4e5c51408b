#!/usr/bin/env bash
# podsim sweep end to end on small spaces: pruning and reuse change no
# result (against --no-prune, the brute force), the output does not depend
# on the thread count, the enumeration and its constraints, the CSV stream
# and --resume, and the errors users meet.
set -uo pipefail
podsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
src="${PODSIM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"

expect() { # expect STATUS MESSAGE -- ARGS...
	local want=$1 msg=$2
	shift 3
	"$podsim" "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	[ "$rc" = "$want" ] || fail "podsim $*: exit $rc, expected $want ($(head -c 300 "$tmp/err"))"
	[ -z "$msg" ] || grep -qF -- "$msg" "$tmp/err" ||
		fail "podsim $*: stderr lacks '$msg': $(head -c 300 "$tmp/err")"
}

# A v4 chip with 3 MiB of HBM: tiny-decoder's layouts then split into ones
# that fit, ones that do not, and ones pruned (a lower bound exceeds HBM).
sed -e 's/"hbm_bytes": {"value": 32, "unit": "GiB"/"hbm_bytes": {"value": 3, "unit": "MiB"/' \
	"$src/sim/chips/tpu-v4.json" >"$tmp/small.json"
grep -q '"value": 3, "unit": "MiB"' "$tmp/small.json" || fail "could not make the small-HBM chip"
space=(sweep --model tiny-decoder --chip "$tmp/small.json" --chips 16 --slices 2 --batch 32
	--remat none,full)

OMP_NUM_THREADS=2 "$podsim" "${space[@]}" --json >"$tmp/fast.json" 2>"$tmp/err" ||
	fail "sweep: exit $? ($(head -c 300 "$tmp/err"))"
OMP_NUM_THREADS=2 "$podsim" "${space[@]}" --json --no-prune >"$tmp/brute.json" 2>"$tmp/err" ||
	fail "sweep --no-prune: exit $? ($(head -c 300 "$tmp/err"))"
OMP_NUM_THREADS=1 "$podsim" "${space[@]}" --json >"$tmp/one.json" 2>"$tmp/err" ||
	fail "sweep, 1 thread: exit $?"
cmp -s "$tmp/fast.json" "$tmp/one.json" || fail "sweep output differs between 1 and 2 threads"

python3 - "$tmp/fast.json" "$tmp/brute.json" <<'PY' || fail "pruned/reused sweep vs brute force"
import json, sys
fast, brute = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda r: (r["ici"], r["dcn"], r["slice"], r["remat"], r["microbatches"])
F = {key(r): r for r in fast["layouts"]}
B = {key(r): r for r in brute["layouts"]}
assert F.keys() == B.keys(), "different layouts"
strip = lambda r: {k: v for k, v in r.items() if k != "rank"}
npruned = 0
for k, r in F.items():
    b = B[k]
    assert b["status"] == "ok", (k, b)
    if r["status"] == "pruned":
        # the lower bound never drops a layout that fits
        npruned += 1
        assert r["memory"]["lower_bound"] and not r["memory"]["fits"], r
        assert not b["memory"]["fits"], ("pruned but fits", k, b)
        assert b["memory"]["per_chip_bytes"] >= r["memory"]["per_chip_bytes"], (k, r, b)
    else:
        assert strip(r) == strip(b), ("rows differ", k, r, b)
assert npruned > 0, "the space should exercise pruning"
fits = [r for r in B.values() if r["memory"]["fits"]]
assert 0 < len(fits) < len(B), "the space should have layouts that fit and that do not"
# the ranking: fitting layouts first, each class by step time
for doc in (fast, brute):
    rows = doc["layouts"]
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    cls = [0 if r["memory"]["fits"] else (1 if r["status"] == "ok" else 2) for r in rows]
    assert cls == sorted(cls), "fitting layouts must rank first"
    for a, b in zip(rows, rows[1:]):
        if a["status"] == b["status"] == "ok" and a["memory"]["fits"] == b["memory"]["fits"]:
            assert a["step_time_s"] <= b["step_time_s"], (a, b)
    s = doc["summary"]
    assert s["layouts"] == len(rows) + s["failed"] + s["skipped"], s
    assert s["evaluated"] + s["pruned"] == len(rows), s
PY

# Enumeration: every factorisation of 8 chips per slice over data, fsdp,
# tensor and of 2 slices over data, fsdp, times the slice shapes; tensor
# must divide tiny-decoder's 4 heads and its d_ff.
"$podsim" sweep --model tiny-decoder --chips 16 --slices 2 --batch 64 --remat full \
	--microbatches 1,2 --json >"$tmp/enum.json" 2>"$tmp/err" || fail "enumeration sweep: exit $?"
"$podsim" list models --json >"$tmp/models.json" 2>/dev/null
python3 - "$tmp/enum.json" "$tmp/models.json" <<'PY' || fail "enumeration"
import itertools, json, sys
doc = json.load(open(sys.argv[1]))
models = json.load(open(sys.argv[2]))
models = models.get("models", models) if isinstance(models, dict) else models
m = next(x for x in models if x["name"] == "tiny-decoder")
heads, dff = m["heads"], m["d_ff"]
shapes = {r["slice"] for r in doc["layouts"]}
assert shapes <= {"2x2x2", "1x2x4", "1x1x8"} and len(shapes) == 3, shapes
ici = [t for t in itertools.product([1, 2, 4, 8], repeat=3) if t[0] * t[1] * t[2] == 8]
dcn = [t for t in itertools.product([1, 2], repeat=2) if t[0] * t[1] == 2]
want, skipped = set(), 0
for (d, f, t), (dd, df) in itertools.product(ici, dcn):
    for mb in (1, 2):
        if heads % t or dff % t:
            skipped += 3
            continue
        if (64 // mb) % (d * dd * f * df):
            skipped += 3
            continue
        spec = lambda pairs: ",".join("%s=%d" % p for p in pairs if p[1] > 1)
        for sh in shapes:
            want.add((spec([("data", d), ("fsdp", f), ("tensor", t)]) or "data=1",
                      spec([("data", dd), ("fsdp", df)]), sh, mb))
got = {(r["ici"], r["dcn"], r["slice"], r["microbatches"]) for r in doc["layouts"]}
got |= {(r["ici"], r["dcn"], r["slice"], r["microbatches"]) for r in doc["failed"]}
assert got == want, (sorted(got ^ want))
assert doc["summary"]["skipped"] == skipped, (doc["summary"], skipped)
assert all(r["remat"] == "full" for r in doc["layouts"])
PY

# Constraints: --fix and --max bound each axis's total size (ICI x DCN).
"$podsim" sweep --model tiny-decoder --chips 16 --slices 2 --batch 32 --fix tensor=2 \
	--max data=4 --microbatches 1 --json >"$tmp/fix.json" 2>"$tmp/err" || fail "--fix: exit $?"
python3 - "$tmp/fix.json" <<'PY' || fail "--fix/--max"
import json, sys
rows = json.load(open(sys.argv[1]))["layouts"]
assert rows
for r in rows:
    tot = lambda a: r["mesh"].get(a, {"ici": 1, "dcn": 1})["ici"] * r["mesh"].get(a, {"ici": 1, "dcn": 1})["dcn"]
    assert tot("tensor") == 2 and tot("data") <= 4 and r["microbatches"] == 1, r
assert any(r["mesh"].get("data", {}).get("dcn", 1) == 2 for r in rows)
assert any(r["mesh"].get("fsdp", {}).get("dcn", 1) == 2 for r in rows)
PY

# The CSV: every evaluated layout; --resume skips the rows already there.
OMP_NUM_THREADS=2 "$podsim" "${space[@]}" --csv "$tmp/all.csv" >"$tmp/table.txt" 2>"$tmp/err" ||
	fail "sweep --csv: exit $?"
grep -q "^rank" "$tmp/table.txt" || fail "no table"
python3 - "$tmp/all.csv" "$tmp/fast.json" "$tmp/part.csv" <<'PY' || fail "CSV rows"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
doc = json.load(open(sys.argv[2]))
assert len(rows) == len(doc["layouts"]) + len(doc["failed"]), (len(rows), len(doc["layouts"]))
for r, j in zip(rows, doc["layouts"]):
    assert r["slice"] == j["slice"] and r["remat"] == j["remat"] and r["status"] == j["status"]
    if j["status"] == "ok":
        assert float(r["step_time_s"]) == j["step_time_s"] or \
            abs(float(r["step_time_s"]) - j["step_time_s"]) <= 1e-9 * j["step_time_s"]
# an interrupted run: the header and a third of the rows, one of them
# doctored so that a re-evaluation would show
keep = rows[: len(rows) // 3]
keep[0]["step_time_s"] = "1e-12"
f = open(sys.argv[3], "w", newline="")
w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
w.writeheader()
w.writerows(keep)
# and half of the next row, as a kill in the middle of a write leaves it
nxt = ",".join(rows[len(keep)].values())
f.write(nxt[: len(nxt) // 2])
f.close()
PY
OMP_NUM_THREADS=2 "$podsim" "${space[@]}" --resume "$tmp/part.csv" --json >"$tmp/resumed.json" \
	2>"$tmp/err" || fail "sweep --resume: exit $? ($(head -c 300 "$tmp/err"))"
python3 - "$tmp/resumed.json" "$tmp/fast.json" "$tmp/part.csv" <<'PY' || fail "--resume"
import csv, json, sys
res, full = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert res["layouts"][0]["step_time_s"] == 1e-12, "the resumed row was evaluated again"
strip = lambda r: {k: v for k, v in r.items() if k != "rank"}
a = [strip(r) for r in res["layouts"][1:]]
b = [strip(r) for r in full["layouts"] if strip(r) not in a]
assert len(b) == 1, "resumed sweep should differ from the full one in the doctored row only"
rows = list(csv.DictReader(open(sys.argv[3])))
assert len(rows) == len(full["layouts"]) + len(full["failed"]), "the resumed CSV is not complete"
assert all(None not in r and None not in r.values() for r in rows), "a malformed row in the CSV"
PY

# --resume refuses the rows of another sweep (here: another batch).
"$podsim" sweep --model tiny-decoder --chips 8 --batch 16 --remat full --microbatches 1 \
	--csv "$tmp/b16.csv" >/dev/null 2>&1 || fail "sweep --batch 16: exit $?"
expect 1 "a row of another sweep" -- sweep --model tiny-decoder --chips 8 --batch 32 \
	--remat full --microbatches 1 --resume "$tmp/b16.csv"

# A narrower resume (--remat full of a none,full CSV) keeps the rows of
# the layouts it leaves out; a CSV resumed through another spelling of its
# path is appended to, not emptied.
"$podsim" sweep --model tiny-decoder --chips 8 --batch 16 --remat none,full --microbatches 1 \
	--csv "$tmp/wide.csv" >/dev/null 2>&1 || fail "sweep --remat none,full: exit $?"
before=$(sort "$tmp/wide.csv" | md5sum)
"$podsim" sweep --model tiny-decoder --chips 8 --batch 16 --remat full --microbatches 1 \
	--resume "$tmp/wide.csv" >/dev/null 2>&1 || fail "narrower --resume: exit $?"
[ "$(sort "$tmp/wide.csv" | md5sum)" = "$before" ] || fail "a narrower --resume lost rows"
mkdir -p "$tmp/d"
"$podsim" sweep --model tiny-decoder --chips 8 --batch 16 --remat full --microbatches 1 \
	--resume "$tmp/wide.csv" --csv "$tmp/d/../wide.csv" >/dev/null 2>&1 ||
	fail "--resume with --csv through another path: exit $?"
[ "$(sort "$tmp/wide.csv" | md5sum)" = "$before" ] || fail "--csv through another path lost rows"
# rows whose numbers no sweep writes are refused, naming the line
python3 - "$tmp/wide.csv" "$tmp/nan.csv" <<'PY' || fail "could not make nan.csv"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ok = [r for r in rows if r["status"] == "ok"]
ok[0]["step_time_s"] = "nan"
w = csv.DictWriter(open(sys.argv[2], "w", newline=""), fieldnames=list(rows[0].keys()),
                   lineterminator="\n")
w.writeheader()
w.writerows(ok[:1])
PY
expect 1 "nan.csv:2:1" -- sweep --model tiny-decoder --chips 8 --batch 16 --remat full \
	--microbatches 1 --resume "$tmp/nan.csv"
expect 1 "not a regular file" -- sweep --model tiny-decoder --chips 8 --resume "$tmp/d"

# A batch within --batch's range: the microbatch counts stay within
# --microbatches's (no count wraps around), and a step too large for 64-bit
# shapes is refused before anything runs.
"$podsim" sweep --model tiny-palm --chips 8 --batch 1099511627776 --json >"$tmp/huge.json" \
	2>"$tmp/err"
python3 - "$tmp/huge.json" <<'PY' || fail "microbatch counts of a huge batch"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["summary"]["failed"] == 0, doc["summary"]
assert all(1 <= r["microbatches"] <= 1 << 20 for r in doc["layouts"])
PY
expect 2 "more than podsim can represent" -- sweep --model tiny-palm --chips 8 \
	--batch 1099511627776 --seq 16777216

# Errors.
expect 2 "--chips is required" -- sweep --model tiny-decoder
expect 2 "--model is required" -- sweep --chips 8
expect 2 "not a multiple of --slices" -- sweep --model tiny-decoder --chips 6 --slices 4
expect 2 "sweep chooses the mesh" -- sweep --model tiny-decoder --chips 8 --ici data=8
expect 2 "unknown axis 'bogus'" -- sweep --model tiny-decoder --chips 8 --fix bogus=2
expect 2 "--remat" -- sweep --model tiny-decoder --chips 8 --remat some
expect 2 "'full' is listed twice" -- sweep --model tiny-decoder --chips 8 --remat full,none,full
expect 2 "--fix needs AXIS=N" -- sweep --model tiny-decoder --chips 8 --fix ""
expect 2 "sweep searches training layouts" -- sweep --model tiny-decoder --chips 8 --inference
expect 2 "has 8 chips, a slice here has 4" -- sweep --model tiny-decoder --chips 8 --slices 2 --slice 2x2x2
expect 1 "unknown" -- sweep --model no-such-model --chips 8
expect 1 "--fix and --max leave none" -- sweep --model tiny-decoder --chips 8 --fix tensor=3
expect 1 "all 270 were skipped" -- sweep --model tiny-palm --chips 8 --batch 64 \
	--microbatches 3,5,7
expect 2 "has 3 dims, but tpu-v3's interconnect has 2" -- sweep --model tiny-decoder \
	--chip tpu-v3 --chips 8 --slice 2x2x2
printf 'ici_data,nonsense\n1,2\n' >"$tmp/bad.csv"
expect 1 "bad.csv:2:1" -- sweep --model tiny-decoder --chips 8 --resume "$tmp/bad.csv"
expect 0 "" -- sweep --help

[ "$fails" = 0 ] || exit 1
echo "sweep_cli: ok"
