#!/usr/bin/env bash
# run-c-tests.sh: runs C test binaries built with c-tests/check.h, prints each
# test's result prefixed with its binary, and sums the binaries' last lines
# ("check: N passed, M failed").
#
#   run-c-tests.sh [--label L] [--counts FILE] BINARY...
#
# --label L      printed in the headline and the summary ("stress", ...)
# --counts FILE  also writes "PASSED FAILED" to FILE (for make test's total),
#                and the failures' lines to FILE.failures (make test repeats
#                them above its total, where a cut log still shows them)
#
# A binary that dies without its summary line, or whose exit status disagrees
# with its summary, counts as one more failure. Exit status: 0 when nothing
# failed, 1 otherwise.
set -uo pipefail

label=c-tests
counts=
while [ $# -gt 0 ]; do
    case $1 in
    --label) label=$2; shift 2 ;;
    --counts) counts=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
    esac
done

passed=0
failed=0
out=$(mktemp)
failures=$(mktemp)
trap 'rm -f "$out" "$failures"' EXIT
# A binary's own failure (not one of its tests'): printed, and kept for the list.
binary_failed() {
    echo "  $name: FAIL ($1)"
    echo "$label: $name: FAIL ($1)" >>"$failures"
}

echo "== $label: $# binaries${GCPIN_STRESS:+ (GCPIN_STRESS=$GCPIN_STRESS)}${GCPIN_CONCURRENT:+ (GCPIN_CONCURRENT=$GCPIN_CONCURRENT)}"
for bin in "$@"; do
    name=$(basename "$bin")
    start=$(date +%s.%N)
    # stdout carries the results; the tests' diagnostics go to stderr, shown as is.
    "$bin" >"$out"
    rc=$?
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    sed -n -E "s/^(ok|FAIL) /  $name: \1 /p" "$out"
    awk -v at="$label: $name: " '/^FAIL / { print at $0 }' "$out" >>"$failures"
    summary=$(grep -E '^check: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -z "$summary" ]; then
        binary_failed "no summary line; exit status $rc"
        sed 's/^/    | /' "$out" | tail -n 20
        failed=$((failed + 1))
        continue
    fi
    p=$(sed -E 's/^check: ([0-9]+) passed.*/\1/' <<<"$summary")
    f=$(sed -E 's/.*, ([0-9]+) failed$/\1/' <<<"$summary")
    passed=$((passed + p))
    failed=$((failed + f))
    expect=$((f > 100 ? 100 : f))
    if [ "$rc" -ne "$expect" ]; then
        binary_failed "exit status $rc, but $f failures reported"
        failed=$((failed + 1))
    fi
    echo "  $name: $p passed, $f failed (${secs} s)"
done
echo "== $label: $passed passed, $failed failed"
if [ -n "$counts" ]; then
    echo "$passed $failed" >"$counts"
    cp "$failures" "$counts.failures"
fi
[ "$failed" -eq 0 ]
