#!/bin/bash
# Every IR file in the testsuite round-trips through the printer.
#   usage: bash ir_roundtrip.sh /path/to/podsim   (PODSIM_SRC = the source root)
# For each *.ir and *.tir file under $PODSIM_SRC/testsuite, by the marker on
# its first line (docs/ir.md, "Test files"):
#   (no marker)      canonical text: `podsim compile F --emit graph` must exit 0
#                    and print F back byte for byte; in a file that has comment
#                    lines (lit RUN/CHECK lines), those and blank lines are left
#                    out of the comparison, every other line must match;
#   # NONCANONICAL   must compile, and its output must be a fixpoint (compiling
#                    the output gives the output again);
#   # ERROR          a negative test: must exit 1 with one "F:LINE:COL: error:"
#                    or "F: error:" message on stderr and nothing on stdout;
#   # XFAIL          skipped.
set -u
podsim=${1:?usage: ir_roundtrip.sh /path/to/podsim}
src=${PODSIM_SRC:?PODSIM_SRC must be the source root}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 canonical=0 noncanonical=0 errors=0 skipped=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

while IFS= read -r -d '' f; do
	first=$(head -n 1 "$f")
	case "$first" in
	*"# XFAIL"*)
		skipped=$((skipped + 1))
		;;
	*"# ERROR"*)
		errors=$((errors + 1))
		"$podsim" compile "$f" --emit graph >"$tmp/out" 2>"$tmp/err"
		rc=$?
		[ "$rc" = 1 ] || fail "$f: exit status $rc, expected 1"
		[ -s "$tmp/out" ] && fail "$f: a rejected file printed output"
		grep -qE "^$(printf '%s' "$f" | sed 's/[][\.*^$]/\\&/g')(:[0-9]+:[0-9]+)?: error: " "$tmp/err" ||
			fail "$f: no positioned diagnostic: $(head -c 300 "$tmp/err")"
		;;
	*"# NONCANONICAL"*)
		noncanonical=$((noncanonical + 1))
		if ! "$podsim" compile "$f" --emit graph >"$tmp/a" 2>"$tmp/err"; then
			fail "$f: $(cat "$tmp/err")"
			continue
		fi
		"$podsim" compile - --emit graph <"$tmp/a" >"$tmp/b" 2>"$tmp/err" ||
			fail "$f: the printed form does not compile: $(cat "$tmp/err")"
		cmp -s "$tmp/a" "$tmp/b" || fail "$f: printing is not a fixpoint"
		;;
	*)
		canonical=$((canonical + 1))
		if ! "$podsim" compile "$f" --emit graph >"$tmp/a" 2>"$tmp/err"; then
			fail "$f: $(cat "$tmp/err")"
			continue
		fi
		want=$f
		if grep -qE '^[[:space:]]*#' "$f"; then
			grep -vE '^[[:space:]]*(#.*)?$' "$f" >"$tmp/want"
			want=$tmp/want
		fi
		if ! cmp -s "$want" "$tmp/a"; then
			fail "$f: printed text differs from the file (< file, > printed):"
			diff "$want" "$tmp/a" | head -n 10
		fi
		;;
	esac
done < <(find "$src/testsuite" \( -name '*.ir' -o -name '*.tir' \) -type f -print0 | sort -z)

echo "ir_roundtrip: $canonical canonical, $noncanonical noncanonical, $errors negative, $skipped skipped, $fails failed"
total=$((canonical + noncanonical + errors))
[ "$total" -gt 0 ] || { echo "FAIL: no IR files found under $src/testsuite"; exit 1; }
[ "$fails" = 0 ]
