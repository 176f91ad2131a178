#!/usr/bin/env bash
# rust-sanitizers.sh: the Rust tests under Miri and under AddressSanitizer.
#
#   rust-sanitizers.sh [miri] [asan]      default: both
#
# Both need the nightly toolchain (Miri also its miri component); a part whose
# tools are missing is skipped with the reason. Exit status: 0 when every part
# that ran passed, 1 otherwise.
#
# Miri (about 1 minute after the first build): the unit tests (--lib), under
# Stacked Borrows, with -Zmiri-disable-isolation (clocks, the environment) and
# -Zmiri-permissive-provenance (the runtime turns addresses into pointers: page
# table, span records). src/os.rs has Miri variants of reserve/release (plain
# mappings, zeroing instead of madvise). Tests Miri cannot run are ignored in
# their source with #[cfg_attr(miri, ignore = "reason")] (the reason shows in
# the output): dl_iterate_phdr (roots), a byte-by-byte division check too slow
# to interpret (sizeclass), and the integration tests in tests/ (the real
# runtime: a 4 TiB arena, signals, futexes). The concurrent tests run fewer
# rounds under cfg(miri). One test exercises bitvec directly, whose
# BitSlice::set violates Stacked Borrows (ferrilab/bitvec#193, not gcpin): it is
# run on its own under Tree Borrows.
#
# AddressSanitizer (about 2 minutes to build): the unit tests, then the
# integration tests (tests/*.rs), in target/asan/. The integration tests run
# real collections, whose conservative scan reads every word of the data
# segments and of the thread stacks, including the redzones ASan puts around
# globals and stack variables: it reports global-buffer-overflow (and
# stack-buffer-overflow) in Marker::scan_range. So they are built without
# global and stack redzones (-asan-globals=0 -asan-stack=0); heap checks
# (malloc'd memory: overflows, use after free, double free, leaks) stay. And
# detect_stack_use_after_return=0: ASan's fake stacks would move locals off the
# thread stack, out of the collector's sight. The unit tests do not scan and
# get full instrumentation.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(miri asan)
failed=()

have_nightly() {
    command -v cargo >/dev/null 2>&1 && cargo +nightly --version >/dev/null 2>&1
}

run_miri() {
    if ! have_nightly; then
        echo "== miri: skipped (no nightly toolchain; rustup toolchain install nightly --component miri)"
        return 0
    fi
    if ! cargo +nightly miri --version >/dev/null 2>&1; then
        echo "== miri: skipped (the nightly toolchain lacks miri; rustup +nightly component add miri)"
        return 0
    fi
    local flags="-Zmiri-disable-isolation -Zmiri-permissive-provenance"
    echo "== miri: cargo +nightly miri test --lib (MIRIFLAGS=$flags)"
    MIRIFLAGS="$flags" cargo +nightly miri test --lib || return 1
    echo "== miri: the bitvec test under Tree Borrows (MIRIFLAGS=$flags -Zmiri-tree-borrows)"
    MIRIFLAGS="$flags -Zmiri-tree-borrows" cargo +nightly miri test --lib \
        span::tests::mark_bits_are_a_bitvec_array -- --include-ignored --exact || return 1
}

run_asan() {
    if ! have_nightly; then
        echo "== asan: skipped (no nightly toolchain; rustup toolchain install nightly)"
        return 0
    fi
    local host
    host=$(rustc +nightly -vV | sed -n 's/^host: //p')
    case $host in
    x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
    *)
        echo "== asan: skipped (not set up for host $host)"
        return 0
        ;;
    esac
    # --target keeps RUSTFLAGS away from build scripts and proc macros.
    echo "== asan: unit tests (cargo +nightly test --lib, -Zsanitizer=address)"
    RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS="detect_stack_use_after_return=0" \
        cargo +nightly test --lib --target "$host" --target-dir target/asan/full || return 1
    echo "== asan: integration tests (cargo +nightly test --test '*', -Zsanitizer=address without global and stack redzones)"
    RUSTFLAGS="-Zsanitizer=address -Cllvm-args=-asan-globals=0 -Cllvm-args=-asan-stack=0" \
        ASAN_OPTIONS="detect_stack_use_after_return=0" \
        cargo +nightly test --test '*' --target "$host" --target-dir target/asan/no-redzones || return 1
}

for part in "${parts[@]}"; do
    case $part in
    miri) run_miri || failed+=(miri) ;;
    asan) run_asan || failed+=(asan) ;;
    *)
        echo "rust-sanitizers.sh: unknown part '$part' (miri, asan)" >&2
        exit 2
        ;;
    esac
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "== sanitizers: FAILED: ${failed[*]}"
    exit 1
fi
echo "== sanitizers: ${parts[*]}: passed (or skipped, as printed)"
