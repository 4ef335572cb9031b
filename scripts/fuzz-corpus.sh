#!/usr/bin/env bash
# Runs every fuzz target for a while and commits what it learned: the
# inputs the fuzzer found interesting are copied from Go's fuzz cache into
# <package>/testdata/fuzz/<Target>/, where every plain `go test` replays them.
#
#   scripts/fuzz-corpus.sh [seconds-per-target] [max-files-per-target]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
keep=${2:-40}
cache=$(go env GOCACHE)/fuzz
module=$(go list -m)

grep -rl --include='*_test.go' '^func Fuzz' . | while read -r file; do
	dir=$(dirname "$file")
	pkg=$(cd "$dir" && go list .)
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
		echo "== $pkg $target (${secs}s)"
		# A real crasher is written to testdata/fuzz by go test itself and
		# then fails every `make test`, so a failure here is reported, not fatal.
		if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "${secs}s" -fuzzminimizetime 5s "./${dir#./}" 2>&1); then
			echo "FAILED: $pkg $target"
			echo "$out" | tail -20
		else
			echo "$out" | tail -1
		fi
		src="$cache/$pkg/$target"
		dst="$dir/testdata/fuzz/$target"
		[ -d "$src" ] || continue
		mkdir -p "$dst"
		# The newest inputs are the ones that widened coverage last.
		ls -t "$src" | head -n "$keep" | while read -r f; do cp "$src/$f" "$dst/$f"; done
	done
done
echo "corpus under */testdata/fuzz/ (module $module)"
