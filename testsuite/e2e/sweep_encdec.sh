#!/usr/bin/env bash
# podsim sweep's memory bounds on an encoder-decoder (T5-large over 32 TPU
# v4 chips) against full-depth evaluation (--exact): one more depth adds a
# layer to each stack, and values gathered or recomputed far ahead of the
# layer that reads them (the encoder output, gathered once per decoder
# layer) grow with it, so an upper bound must count them. Every extended
# memory must be the full-depth peak, or on the side of it that it says.
set -uo pipefail
podsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

space=(sweep --model t5-large --chip tpu-v4 --chips 32 --batch 128 --seq 512
	--max tensor=4 --remat none,full --microbatches 1,2,16 --shapes 1 --json)
"$podsim" "${space[@]}" >"$tmp/fast.json" 2>"$tmp/err" ||
	fail "sweep: exit $? ($(head -c 300 "$tmp/err"))"
"$podsim" "${space[@]}" --exact >"$tmp/exact.json" 2>"$tmp/err" ||
	fail "sweep --exact: exit $? ($(head -c 300 "$tmp/err"))"

python3 - "$tmp/fast.json" "$tmp/exact.json" <<'PY' || fail "extended memory vs full depth"
import json, sys
fast, exact = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda r: (r["ici"], r["dcn"], r["slice"], r["remat"], r["microbatches"])
E = {key(r): r for r in exact["layouts"]}
n = 0
for r in fast["layouts"]:
    e = E[key(r)]
    if r["status"] != "ok" or not r.get("extrapolated"):
        continue
    n += 1
    assert r["memory"]["fits"] == e["memory"]["fits"], ("fit differs", key(r))
    fm, em = r["memory"]["per_chip_bytes"], e["memory"]["per_chip_bytes"]
    if r["memory"]["lower_bound"]:
        assert fm <= em * (1 + 1e-9), ("lower bound above the peak", key(r), fm, em)
    elif r["memory"]["upper_bound"]:
        assert fm >= em * (1 - 1e-9), ("upper bound below the peak", key(r), fm, em)
    else:
        assert abs(fm - em) <= 1e-9 * em, ("exact memory differs", key(r), fm, em)
assert n > 0, "no layout was extended: the test space is wrong"
PY

[ "$fails" = 0 ] || exit 1
echo "sweep_encdec: ok"
