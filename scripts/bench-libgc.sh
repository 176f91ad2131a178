#!/usr/bin/env bash
# bench-libgc.sh: gcpin as libgc, against libgc, in the same run (called by
# scripts/bench.sh; alone: bash scripts/bench-libgc.sh OUTDIR).
#
# Two workloads, each BENCH_PROCS times per implementation, alternating:
# - benches/libgc_gcbench.c, a GCBench written against <gc.h> only, built
#   against the system libgc (static, as bench.sh links its harness) and
#   against gcpin's gc.h and libgcpin.a: depth 18 on one thread, depth 16 on
#   two;
# - the Debian w3m binary (linked against libgc.so.1) dumping a generated
#   20,000-row table, on the system libgc and with LD_LIBRARY_PATH at gcpin's
#   libgc.so.1.
# Time (wall clock) and peak RSS come from /usr/bin/time. Writes OUTDIR/libgc_dropin.txt:
#   RESULT <gcpin|libgc> <workload> <wall s> <user s> <system s> <peak KiB>
# and records what it could not run in OUTDIR/skipped.txt.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT=${1:?usage: bench-libgc.sh OUTDIR}
PROCS=${BENCH_PROCS:-3}
CC=${CC:-cc}
CFLAGS=${BENCH_CFLAGS:--O2 -g}
BIN=target/bench
RES=$OUT/libgc_dropin.txt
mkdir -p "$OUT" "$BIN"
: >"$RES"

log() { echo "bench-libgc: $*" >&2; }
skip() { echo "$1 $2" >>"$OUT/skipped.txt"; log "skipping $1: $2"; }

if [ ! -x /usr/bin/time ]; then
    skip libgc_dropin "/usr/bin/time is not installed"
    exit 0
fi

# measure <impl> <workload> COMMAND...: one run, appended to $RES.
measure() {
    local impl=$1 workload=$2
    shift 2
    local t
    t=$(mktemp)
    if /usr/bin/time -o "$t" -f "%e %U %S %M" "$@" >/dev/null 2>"$t.err"; then
        echo "RESULT $impl $workload $(cat "$t")" >>"$RES"
    else
        log "$impl $workload failed: $(tail -n 3 "$t.err")"
    fi
    rm -f "$t" "$t.err"
}

have_gcbench=1
if ! $CC $CFLAGS -std=c11 -D_GNU_SOURCE -Wall -Iinclude benches/libgc_gcbench.c target/release/libgcpin.a \
    -lpthread -ldl -lm -o "$BIN/libgc_gcbench_gcpin"; then
    skip libgc_gcbench "building it against gcpin failed"
    have_gcbench=0
elif ! $CC $CFLAGS -std=c11 -D_GNU_SOURCE -Wall benches/libgc_gcbench.c -Wl,-Bstatic -lgc -Wl,-Bdynamic \
    -lpthread -ldl -o "$BIN/libgc_gcbench_libgc" 2>/dev/null &&
    ! $CC $CFLAGS -std=c11 -D_GNU_SOURCE -Wall benches/libgc_gcbench.c -lgc -lpthread \
        -o "$BIN/libgc_gcbench_libgc"; then
    skip libgc_gcbench "building it against libgc failed (libgc-dev)"
    have_gcbench=0
fi

W3M=$(command -v w3m || true)
page=$BIN/w3m_table.html
if [ -n "$W3M" ]; then
    python3 scripts/w3m-page.py "$page"
else
    skip w3m "w3m is not installed (scripts/deps.sh)"
fi

home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
for i in $(seq 1 "$PROCS"); do
    log "round $i/$PROCS"
    for impl in libgc gcpin; do
        if [ $have_gcbench = 1 ]; then
            measure $impl gcbench_d18 "$BIN/libgc_gcbench_$impl" 18 1
            measure $impl gcbench_d16_2threads "$BIN/libgc_gcbench_$impl" 16 2
        fi
        if [ -n "$W3M" ]; then
            env=(HOME="$home")
            [ $impl = gcpin ] && env+=(LD_LIBRARY_PATH="$PWD/target/release")
            measure $impl w3m_dump env "${env[@]}" "$W3M" -dump -cols 120 -T text/html "$page"
        fi
    done
done
cat "$RES" >&2
