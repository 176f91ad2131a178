#!/usr/bin/env bash
# demo.sh: what `make demo` runs after the build. Builds the examples, then runs
#   1. graph_demo with GCPIN_TRACE=1 (one line per collection), if it exists;
#   2. iovec_copy: a file copied through readv/writev with pinned GC buffers;
#   3. uring_echo: an io_uring TCP echo server on 127.0.0.1 with pinned GC receive
#      buffers and a load client that checks every byte (poll() fallback where
#      io_uring is unavailable).
# Every step runs even if an earlier one failed; the exit status is non-zero if
# any failed. Run from anywhere: it works in the repository root.
set -uo pipefail
cd "$(dirname "$0")/.."

bin=build/examples
failed=()

step() { # name, command...
    local name=$1; shift
    echo
    echo "== $name: $*"
    local start=$SECONDS
    if timeout 300 "$@"; then
        echo "== $name: ok ($((SECONDS - start)) s)"
    else
        local rc=$?
        [ "$rc" -eq 124 ] && echo "== $name: timed out" || echo "== $name: FAILED (exit status $rc)"
        failed+=("$name")
    fi
}

echo "== building the examples (make examples)"
if ! make --no-print-directory examples; then
    echo "demo: building the examples failed" >&2
    exit 1
fi

if [ -x "$bin/graph_demo" ]; then
    step graph_demo env GCPIN_TRACE=1 "$bin/graph_demo"
else
    echo
    echo "== graph_demo: not built (examples/graph_demo.c is missing), skipped"
fi
step iovec_copy "$bin/iovec_copy"
step uring_echo "$bin/uring_echo" --conns 64 --msgs 200 --seconds 20

echo
if [ ${#failed[@]} -eq 0 ]; then
    echo "demo: all steps passed"
else
    echo "demo: FAILED: ${failed[*]}" >&2
    exit 1
fi
