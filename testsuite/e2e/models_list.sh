#!/bin/bash
# podsim list models: the table, --json, model files and errors.
# Usage: models_list.sh /path/to/podsim (PODSIM_SRC = source root)
set -u
PODSIM=$1
SRC=${PODSIM_SRC:?PODSIM_SRC is not set}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The table lists every preset of the issue, each once.
"$PODSIM" list models >"$tmp/table" || fail "list models exited $?"
for m in palm-8b palm-62b palm-540b t5-small t5-base t5-large t5-3b t5-11b \
         t5.1.1-small t5.1.1-base t5.1.1-large t5.1.1-xl t5.1.1-xxl \
         flan-t5-small flan-t5-base flan-t5-large flan-t5-xl flan-t5-xxl \
         switch-base-8 switch-base-16 switch-base-32 switch-base-64 switch-base-128 \
         switch-base-256 switch-large-128 switch-xxl-128 switch-c-2048 \
         vit-b16 vit-l16 vit-h14 mixer-b16 mixer-l16 mixer-h14 gpt3-175b \
         tiny-decoder tiny-t5 tiny-moe tiny-vit; do
	n=$(awk -v m="$m" '$1 == m' "$tmp/table" | wc -l)
	[ "$n" = 1 ] || fail "preset $m listed $n times"
done
# PaLM 540B: 118 layers, d_model 18432, 48 heads, 540.35B parameters (+-0.5%)
awk '$1 == "palm-540b" { ok = ($2 == "decoder" && $3 == 118 && $4 == 18432 && $5 == 48 &&
                              $6 > 537.65e9 && $6 < 543.05e9) } END { exit !ok }' "$tmp/table" ||
	fail "palm-540b row: $(grep '^palm-540b ' "$tmp/table")"

# --json: an array of objects with the same names and counts as the table.
"$PODSIM" list models --json >"$tmp/json" || fail "list models --json exited $?"
python3 - "$tmp/json" "$tmp/table" <<'PY' || fail "json listing"
import json, sys
rows = json.load(open(sys.argv[1]))
table = {l.split()[0]: l.split() for l in open(sys.argv[2]).read().splitlines()[1:]}
assert isinstance(rows, list) and len(rows) == len(table), (len(rows), len(table))
for r in rows:
    for k in ("name", "family", "encoder_layers", "decoder_layers", "d_model", "heads", "params"):
        assert k in r, (r, k)
    t = table[r["name"]]
    assert int(t[5]) == r["params"], (r["name"], t[5], r["params"])
    assert r["params_without_head"] <= r["params"] and r["active_params"] <= r["params"]
    if r["experts"] == 0:
        assert r["active_params"] == r["params"], r
    else:
        assert r["active_params"] < r["params"], r
t5 = next(r for r in rows if r["name"] == "t5-base")
assert (t5["encoder_layers"], t5["decoder_layers"], t5["family"]) == (12, 12, "encoder_decoder")
PY

# Model files: ours and Hugging Face configs, listed by name.
"$PODSIM" list models "$SRC/frontends/examples/tiny-gqa.json" \
	"$SRC/frontends/examples/hf/llama.json" >"$tmp/files" || fail "list of files exited $?"
grep -q '^tiny-gqa ' "$tmp/files" || fail "tiny-gqa.json not listed"
grep -q '^llama  *decoder ' "$tmp/files" || fail "hf llama.json not listed"

# A bad model file: exit 1, file:line:col naming the key.
printf '{\n  "model_type": "llama",\n  "hidden_sise": 64\n}\n' >"$tmp/bad.json"
"$PODSIM" list models "$tmp/bad.json" 2>"$tmp/err" >/dev/null
rc=$?
[ $rc = 1 ] || fail "bad file exit $rc, want 1"
grep -q "bad.json:3:3: error: unknown key 'hidden_sise'" "$tmp/err" || fail "message: $(cat "$tmp/err")"

# An unknown preset: exit 1; a bad option: exit 2.
"$PODSIM" list models no-such-model 2>"$tmp/err" >/dev/null
[ $? = 1 ] || fail "unknown preset exit status"
grep -q "unknown model 'no-such-model'" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$PODSIM" list models --bogus 2>/dev/null >/dev/null
[ $? = 2 ] || fail "bad option exit status"
echo PASS
