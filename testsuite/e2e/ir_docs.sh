#!/bin/bash
# The examples in docs/ir.md are copies of test files: each fenced block after
# a line "<!-- example: PATH -->" must equal $PODSIM_SRC/PATH byte for byte, and
# every file so referenced must exist.
#   usage: bash ir_docs.sh /path/to/podsim   (PODSIM_SRC = the source root)
set -u
src=${PODSIM_SRC:?PODSIM_SRC must be the source root}
doc=$src/docs/ir.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0
# Split the examples out: tmp/N.path holds the path, tmp/N.txt the block.
awk -v dir="$tmp" '
	/^<!-- example: .* -->$/ { path = $3; want = 1; next }
	want && /^```/ { if (inblock) { inblock = 0; want = 0; next } inblock = 1; n++;
	                 print path > (dir "/" n ".path"); printf "" > (dir "/" n ".txt"); next }
	inblock { print >> (dir "/" n ".txt") }
' "$doc"
for p in "$tmp"/*.path; do
	[ -e "$p" ] || break
	n=$((n + 1))
	path=$(cat "$p")
	if [ ! -f "$src/$path" ]; then
		echo "FAIL: docs/ir.md cites $path, which does not exist"
		fails=$((fails + 1))
	elif ! cmp -s "$src/$path" "${p%.path}.txt"; then
		echo "FAIL: the example of $path in docs/ir.md differs from the file:"
		diff "$src/$path" "${p%.path}.txt" | head -n 10
		fails=$((fails + 1))
	fi
done
echo "ir_docs: $n examples, $fails differ"
[ "$n" -gt 0 ] && [ "$fails" = 0 ]
