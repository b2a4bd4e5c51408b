#!/usr/bin/env bash
# podsim estimate and compile --model end to end: the JSON contract, what the
# numbers must satisfy whatever the model, and the errors users meet.
set -uo pipefail
podsim="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

expect() { # expect STATUS MESSAGE -- ARGS...
	local want=$1 msg=$2
	shift 3
	"$podsim" "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	[ "$rc" = "$want" ] || fail "podsim $*: exit $rc, expected $want ($(head -c 300 "$tmp/err"))"
	[ -z "$msg" ] || grep -qF -- "$msg" "$tmp/err" ||
		fail "podsim $*: stderr lacks '$msg': $(head -c 300 "$tmp/err")"
}

# The JSON contract of DESIGN.md, and invariants that hold for any model.
expect 0 "" -- estimate --model tiny-decoder --slice 2x2x2 --ici fsdp=4,tensor=2 --batch 16 \
	--json --trace "$tmp/trace.json"
python3 - "$tmp/out" "$tmp/trace.json" <<'PY' || fail "estimate --json contract"
import json, sys
e = json.load(open(sys.argv[1]))
for k in ("step_time_s", "tokens_per_s", "mfu", "hfu", "model_flops_per_step", "params", "chips"):
    assert k in e, k
for k in ("per_chip_bytes", "hbm_bytes", "fits"):
    assert k in e["memory"], k
for k in ("compute", "exposed_comm", "mxu", "vpu", "hbm_bound", "exposed_ici", "exposed_dcn", "idle"):
    assert k in e["breakdown_s"], k
assert e["chips"] == 8
assert e["peak_flops_per_chip"] > 2e14  # tpu-v4: 2 x 4 MXUs of 128x128 at 1.05 GHz
assert abs(e["tokens_per_s"] - e["tokens_per_step"] / e["step_time_s"]) < 1e-6 * e["tokens_per_s"]
assert 0 < e["mfu"] <= e["hfu"] <= 1, (e["mfu"], e["hfu"])
b = e["breakdown_s"]
parts = b["mxu"] + b["vpu"] + b["hbm_bound"] + b["exposed_ici"] + b["exposed_dcn"] + b["idle"]
assert abs(parts - e["step_time_s"]) < 1e-6 * e["step_time_s"], (parts, e["step_time_s"])
assert e["memory"]["fits"] and 0 < e["memory"]["per_chip_bytes"] < e["memory"]["hbm_bytes"]
t = json.load(open(sys.argv[2]))
events = t["traceEvents"] if isinstance(t, dict) else t
assert any(ev.get("ph") == "X" for ev in events)
PY

# Overlap only helps; full remat costs hardware FLOPs, not model FLOPs.
run() { "$podsim" estimate --model tiny-palm --slice 2x2x2 --ici fsdp=8 --batch 16 --json "$@"; }
run >"$tmp/a.json" && run --no-overlap >"$tmp/b.json" && run --remat full >"$tmp/c.json" ||
	fail "estimate variants"
python3 - "$tmp/a.json" "$tmp/b.json" "$tmp/c.json" <<'PY' || fail "overlap / remat invariants"
import json, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:])
assert b["step_time_s"] >= a["step_time_s"], (a["step_time_s"], b["step_time_s"])
assert c["model_flops_per_step"] == a["model_flops_per_step"]
assert c["hardware_flops_per_step"] > a["hardware_flops_per_step"]
PY

# Microbatches: same tokens, the update once.
"$podsim" estimate --model tiny-decoder --ici data=8 --batch 32 --microbatches 4 --json \
	>"$tmp/m.json" || fail "microbatches"
python3 -c "import json,sys; e=json.load(open(sys.argv[1])); assert e['microbatches']==4 and e['tokens_per_step']==32*64" "$tmp/m.json" ||
	fail "microbatches JSON"

# Errors: each names the flag or the file.
expect 2 "--model is required" -- estimate --ici data=8
expect 2 "--batch '0'" -- estimate --model tiny-decoder --ici data=8 --batch 0
expect 2 "--remat 'most'" -- estimate --model tiny-decoder --ici data=8 --remat most
expect 2 "unknown option '--bogus'" -- estimate --model tiny-decoder --ici data=8 --bogus
expect 2 "--ici 'data'" -- estimate --model tiny-decoder --ici data
expect 1 "unknown model 'nope'" -- estimate --model nope --ici data=8
expect 2 "axis 'data' is given twice" -- estimate --model tiny-decoder --ici data=4,data=2
expect 2 "--ici ''" -- estimate --model tiny-decoder --ici ""
# a batch and sequence within the flags' ranges whose step overflows 64-bit shapes
expect 2 "more than podsim can represent" -- estimate --model tiny-palm --ici data=4 \
	--batch 1099511627776 --seq 16777216
expect 1 "mesh axis 'model' is unknown" -- estimate --model tiny-decoder --ici model=8
expect 1 "--ici sizes multiply to 8 chips, the 4x4x4 slice has 64" -- \
	estimate --model tiny-decoder --slice 4x4x4 --ici data=8
expect 1 "--dcn sizes multiply to 2, but --slices is 1" -- \
	estimate --model tiny-decoder --ici data=8 --dcn data=2
expect 1 "not divisible by the 8 chips of its mesh axes (data=8)" -- \
	estimate --model tiny-decoder --ici data=8 --batch 12
echo '{"name": "bad", "layers": 2,}' >"$tmp/bad.json"
expect 1 "bad.json:1:" -- estimate --model "$tmp/bad.json" --ici data=8
# A model that does not fit: the report still prints, the error names the overflow.
expect 1 "does not fit in HBM" -- estimate --model palm-540b --chip tpu-v4 --slice 2x2x2 \
	--ici fsdp=8 --batch 8 --seq 2048
grep -q "DOES NOT FIT" "$tmp/out" || fail "the report of a model that does not fit"

# compile --model prints every stage; the per-chip program verifies and re-parses.
for stage in forward graph local tiled; do
	"$podsim" compile --model tiny-decoder --ici fsdp=4,tensor=2 --batch 8 --emit $stage \
		-o "$tmp/$stage.ir" || fail "compile --emit $stage"
	"$podsim" compile "$tmp/$stage.ir" >"$tmp/again.ir" || fail "$stage output does not parse"
	cmp -s "$tmp/$stage.ir" "$tmp/again.ir" || fail "$stage output is not canonical"
done
grep -q "all_gather" "$tmp/local.ir" || fail "no all-gather in the fsdp program"
grep -q "coll_start" "$tmp/tiled.ir" || fail "no async collective in the scheduled program"
grep -q "dot(.*bf16\[2,64,2,64\]$" "$tmp/local.ir" ||
	fail "per-chip q projection is not [batch/4, seq, heads/2, head_dim]"

[ $fails -eq 0 ] && echo "estimate_cli: all passed" || { echo "estimate_cli: $fails failed"; exit 1; }
