#!/bin/bash
# podsim run: the command-line contract (docs/run.md). Exit statuses, the
# report's lines, --tol that decides, the tiled program, bf16 mode, a DCN
# axis, and results that do not depend on the thread count.
set -u
PODSIM=${1:?usage: $0 /path/to/podsim}
fail=0
die() { echo "FAIL: $*"; fail=1; }

expect_rc() { # want-rc description command...
	local want=$1 what=$2
	shift 2
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		die "$what: exit $rc, expected $want"
		echo "$out"
	fi
	LAST=$out
}

expect_rc 0 "--help" "$PODSIM" run --help
grep -q -- '--check' <<<"$LAST" || die "--help does not describe --check"
expect_rc 2 "unknown option" "$PODSIM" run --model tiny-decoder --frobnicate
expect_rc 2 "--tol 0" "$PODSIM" run --model tiny-decoder --ici data=2 --tol 0
expect_rc 2 "--level bad" "$PODSIM" run --model tiny-decoder --ici data=2 --level bad
expect_rc 2 "--chips that is not the mesh size" "$PODSIM" run --model tiny-decoder --ici data=2 --chips 4
grep -q -- '--chips 4: the mesh has 2 chips' <<<"$LAST" || die "--chips message: $LAST"
expect_rc 1 "unknown model" "$PODSIM" run --model no-such-model --ici data=2
expect_rc 1 "indivisible batch" "$PODSIM" run --model tiny-decoder --ici data=4 --batch 6 --seq 8

base=(--model tiny-decoder --batch 4 --seq 8 --dtype f32 --jit-O0)

# without --check: the step runs and reports its loss, no comparison
expect_rc 0 "run without --check" "$PODSIM" run "${base[@]}" --ici data=2
grep -q '^  loss: [0-9]' <<<"$LAST" || die "no loss line: $LAST"
grep -q '^PASS\|^check' <<<"$LAST" && die "compared without --check"

# --check passes, and every kind of output is compared
expect_rc 0 "tensor=2 --check" "$PODSIM" run "${base[@]}" --ici tensor=2 --check --threads 1
t1=$LAST
for kind in loss weights opt_state all; do
	grep -q "^  $kind " <<<"$t1" || die "no '$kind' row: $t1"
done
grep -q '^PASS' <<<"$t1" || die "no PASS line"

# the same run on two threads prints the same numbers (timings aside)
expect_rc 0 "tensor=2 --check --threads 2" "$PODSIM" run "${base[@]}" --ici tensor=2 --check --threads 2
strip() { grep -v -e '^  run:' -e '^  JIT:' <<<"$1"; }
[ "$(strip "$t1")" = "$(strip "$LAST")" ] || die "results differ between 1 and 2 threads"

# the tolerance decides: summation order across chips differs from the
# reference, so the error is not zero, and a tolerance below it fails
err=$(sed -n 's/^PASS: max_rel \([^ ]*\) .*/\1/p' <<<"$t1")
awk -v e="$err" 'BEGIN { exit !(e > 0) }' || die "max_rel $err: expected a nonzero error"
expect_rc 1 "--tol below the error" "$PODSIM" run "${base[@]}" --ici tensor=2 --check --tol 1e-12
grep -q '^FAIL: max_rel' <<<"$LAST" || die "no FAIL line: $LAST"

# the interpreter alone, the tiled program (async collectives), bf16, DCN
expect_rc 0 "--no-jit" "$PODSIM" run "${base[@]}" --ici fsdp=2 --check --no-jit
grep -q ' 0 JIT, [1-9][0-9]* interpreted' <<<"$LAST" || die "--no-jit still ran JIT kernels"
expect_rc 0 "--level tiled" "$PODSIM" run "${base[@]}" --ici tensor=2 --check --level tiled
grep -q 'tiled program' <<<"$LAST" || die "--level tiled: $LAST"
expect_rc 0 "bf16" "$PODSIM" run --model tiny-decoder --batch 4 --seq 8 --dtype bf16 --jit-O0 \
	--ici tensor=2 --check
grep -q 'bf16 rounding' <<<"$LAST" || die "bf16 mode not reported"
expect_rc 0 "ICI and DCN" "$PODSIM" run "${base[@]}" --ici data=2 --dcn fsdp=2 --check
grep -q ' 4 chips' <<<"$LAST" || die "ICI x DCN is not 4 chips: $LAST"
# remat minimal keeps the output projections' reduced sums (docs/sharding.md):
# the parallel block's recomputed sum reads them without reducing again
expect_rc 0 "remat minimal, parallel block over tensor" "$PODSIM" run --model tiny-palm \
	--batch 4 --seq 8 --dtype f32 --jit-O0 --ici fsdp=2,tensor=2 --remat minimal --check --level tiled
exit $fail
