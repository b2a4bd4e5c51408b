#!/bin/bash
# podsim run --check for one model: every sharding strategy (data, fsdp,
# tensor, 2D, and expert where the model has experts) on 1, 2, 4 and 8 chips
# reproduces the unsharded reference interpreter within tolerance. Each case
# also asserts that the compute ran as JIT kernels and, on more than one
# chip, that data really moved at collectives.
#   run_strategies.sh PODSIM MODEL EXPERTS
set -u
PODSIM=${1:?usage: $0 /path/to/podsim MODEL EXPERTS}
MODEL=${2:?model}
EXPERTS=${3:-0}

fail=0
check() { # strategy mesh chips
	local strategy=$1 mesh=$2 chips=$3
	local cmd="$PODSIM run --model $MODEL --ici $mesh --batch 8 --seq 8 --dtype f32 --check --jit-O0"
	local out rc
	out=$($cmd 2>&1)
	rc=$?
	local jit coll nchips
	jit=$(sed -n 's/.*instructions per chip: \([0-9]*\) JIT.*/\1/p' <<<"$out")
	coll=$(sed -n 's/.* \([0-9]*\) collectives.*/\1/p' <<<"$out")
	nchips=$(sed -n 's/^podsim run: [^,]*, \([0-9]*\) chips.*/\1/p' <<<"$out")
	local why=""
	[ "$rc" -eq 0 ] || why="exit $rc"
	grep -q '^PASS' <<<"$out" || why="$why, no PASS line"
	[ "${nchips:-0}" -eq "$chips" ] || why="$why, ran on ${nchips:-?} chips, expected $chips"
	[ "${jit:-0}" -gt 0 ] || why="$why, no JIT kernels ran"
	if [ "$chips" -gt 1 ] && [ "${coll:-0}" -eq 0 ]; then why="$why, no collectives on $chips chips"; fi
	if [ -n "$why" ]; then
		echo "FAIL $MODEL $strategy --ici $mesh: ${why#, }"
		echo "$out"
		fail=1
	else
		echo "ok   $MODEL $strategy --ici $mesh: $(grep '^PASS' <<<"$out")"
	fi
}

check single data=1 1
for n in 2 4 8; do
	check data data=$n $n
	check fsdp fsdp=$n $n
	check tensor tensor=$n $n
	if [ "$EXPERTS" -gt 0 ]; then check expert expert=$n $n; fi
done
check 2D fsdp=2,tensor=2 4
check 2D fsdp=2,tensor=4 8
check 2D fsdp=4,tensor=2 8
exit $fail
