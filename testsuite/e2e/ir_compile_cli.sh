#!/bin/bash
# `podsim compile FILE.ir`: output, -o, stdin, exit statuses and messages.
#   usage: bash ir_compile_cli.sh /path/to/podsim   (PODSIM_SRC = the source root)
set -u
podsim=${1:?usage: ir_compile_cli.sh /path/to/podsim}
src=${PODSIM_SRC:?PODSIM_SRC must be the source root}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tiny=$src/testsuite/lit/ir/Inputs/tiny.ir

# expect STATUS STDERR-SUBSTRING -- ARGS...: runs podsim with ARGS.
expect() {
	local want=$1 msg=$2
	shift 3
	"$podsim" "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	[ "$rc" = "$want" ] || fail "podsim $*: exit $rc, expected $want ($(head -c 200 "$tmp/err"))"
	[ -z "$msg" ] || grep -qF -- "$msg" "$tmp/err" ||
		fail "podsim $*: stderr lacks '$msg': $(head -c 300 "$tmp/err")"
}

# Success: stdout, --emit=graph, -o (atomic: no temporary left behind), stdin.
expect 0 "" -- compile "$tiny"
cmp -s "$tiny" "$tmp/out" || fail "compile FILE does not print the module"
[ -s "$tmp/err" ] && fail "compile FILE wrote to stderr"
expect 0 "" -- compile "$tiny" --emit=graph
cmp -s "$tiny" "$tmp/out" || fail "--emit=graph output differs"
expect 0 "" -- compile --emit graph -o "$tmp/o.ir" "$tiny"
cmp -s "$tiny" "$tmp/o.ir" || fail "-o FILE content differs"
[ -s "$tmp/out" ] && fail "-o FILE also printed to stdout"
[ "$(ls "$tmp" | grep -c 'o.ir.tmp')" = 0 ] || fail "-o left a temporary file"
"$podsim" compile - <"$tiny" >"$tmp/out" 2>"$tmp/err" || fail "compile - (stdin) failed"
cmp -s "$tiny" "$tmp/out" || fail "compile - (stdin) output differs"
expect 0 "" -- compile --help
grep -q "usage: podsim compile" "$tmp/out" || fail "--help does not print usage on stdout"

# Bad usage: exit 2.
expect 2 "unknown option '--frobnicate'" -- compile "$tiny" --frobnicate
expect 2 "no input file" -- compile
expect 2 "no input file" -- compile --emit graph
expect 2 "unknown --emit 'hlo'" -- compile "$tiny" --emit hlo
expect 2 "--emit tiled needs --model" -- compile "$tiny" --emit tiled
expect 1 "is not at the tiled level" -- compile "$tiny" --emit llvm
expect 1 "unknown model 'gpt2'" -- compile --model gpt2 --ici data=8
expect 2 "give an IR file or --model, not both" -- compile "$tiny" --model tiny-decoder
expect 2 "--emit needs a value" -- compile "$tiny" --emit
expect 2 "-o needs a value" -- compile "$tiny" -o
expect 2 "more than one input file" -- compile "$tiny" "$tiny"

# Bad input: exit 1, the diagnostic on stderr, nothing on stdout.
expect 1 "$tmp/missing.ir: error: cannot open" -- compile "$tmp/missing.ir"
printf 'module @m graph\n%%x = parameter() {name="x"} : f32[4]\n%%y = neg(%%q) : f32[4]\nreturn %%y\n' >"$tmp/bad.ir"
expect 1 "$tmp/bad.ir:3:10: error: undefined value %q" -- compile "$tmp/bad.ir"
[ -s "$tmp/out" ] && fail "a rejected file printed output"
printf 'module @m graph\n%%x = parameter() {name="x"} : f32[4]\n%%y = neg(%%x) : f32[5]\nreturn %%y\n' >"$tmp/bad2.ir"
expect 1 "$tmp/bad2.ir:3:1: error: %y: declared type f32[5], but neg computes f32[4]" -- compile "$tmp/bad2.ir"
expect 1 "<stdin>:1:1: error: expected the header" -- compile - </dev/null
# The verifier reports the first error and counts the others.
printf 'module @m graph\n%%x = parameter() : f32[4]\n%%y = neg(%%x) : f32[5]\n%%z = exp(%%y, %%y) : f32[5]\nreturn %%z\n' >"$tmp/bad3.ir"
expect 1 "$tmp/bad3.ir:2:1: error: %x: parameter needs attribute name" -- compile "$tmp/bad3.ir"
grep -q "podsim compile: 2 more errors not shown" "$tmp/err" || fail "the count of further errors is missing"
[ "$(grep -c 'error:' "$tmp/err")" = 1 ] || fail "more than one error message printed"
# A verifier error leaves an existing -o file untouched.
echo keep >"$tmp/keep.ir"
expect 1 "error:" -- compile "$tmp/bad2.ir" -o "$tmp/keep.ir"
[ "$(cat "$tmp/keep.ir")" = keep ] || fail "a failed compile overwrote the -o file"
# An unwritable -o: exit 1 with a message naming the file.
expect 1 "cannot write $tmp/no/such/dir.ir" -- compile "$tiny" -o "$tmp/no/such/dir.ir"

[ "$fails" = 0 ] && echo "ir_compile_cli: all passed"
[ "$fails" = 0 ]
