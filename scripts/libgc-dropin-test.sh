#!/usr/bin/env bash
# libgc-dropin-test.sh: gcpin as a drop-in for libgc, at the binary and the
# source level. Prints "ok NAME" / "FAIL NAME: why" per check and, last,
# "check: N passed, M failed" (as the C tests do); the exit status is the number
# of failures. Run by `make test` after `make lib`.
#
#   libgc-dropin-test.sh [--counts FILE] [--measure]
#
# --counts FILE  also writes "PASSED FAILED" to FILE
# --measure      prints the time and peak RSS of the two w3m runs (make demo)
#
# The checks:
# - the symbols: every libgc function the Debian w3m binary imports, and every
#   function of the issue's list, is exported unversioned by libgc.so.1 and by
#   libgcpin.so; the SONAMEs are libgc.so.1 and libgcpin.so.0;
# - w3m (unmodified, linked against libgc.so.1) dumps a generated 20,000-row
#   table once on the system libgc and once on gcpin's libgc.so.1
#   (LD_LIBRARY_PATH, GCPIN_TRACE=1): the outputs are byte-identical, the
#   trace shows gcpin collected, and the loader says which libgc it loaded;
# - a libgc program builds unchanged with `pkg-config --cflags --libs gcpin`
#   against an installed copy (make install PREFIX=<tmp>) and runs;
# - a CMake project finds it with find_package(gcpin) (skipped, and said so,
#   when cmake is not installed).
set -uo pipefail

cd "$(dirname "$0")/.."
counts=
measure=0
while [ $# -gt 0 ]; do
    case $1 in
    --counts) counts=$2; shift 2 ;;
    --measure) measure=1; shift ;;
    *) echo "usage: $0 [--counts FILE] [--measure]" >&2; exit 2 ;;
    esac
done

LIBDIR=$PWD/target/release
SYSTEM_LIBGC=$(ldconfig -p 2>/dev/null | awk '/libgc\.so\.1 / { print $NF; exit }')
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
check() { # check NAME WHY COMMAND...: ok if COMMAND succeeds
    local name=$1 why=$2
    shift 2
    if "$@"; then ok "$name"; else fail "$name" "$why"; fi
}

# ------------------------------------------------------------------ symbols

# libgc's API as issue 14 lists it (every one must be a defined, unversioned
# symbol); w3m's imports are added below.
api=(GC_malloc GC_malloc_atomic GC_malloc_uncollectable GC_malloc_atomic_uncollectable
    GC_malloc_ignore_off_page GC_malloc_atomic_ignore_off_page GC_realloc GC_free GC_strdup
    GC_strndup GC_memalign GC_posix_memalign GC_base GC_size GC_is_heap_ptr GC_same_obj
    GC_malloc_many GC_init GC_is_init_called GC_gcollect GC_gcollect_and_unmap GC_try_to_collect
    GC_collect_a_little GC_enable GC_disable GC_is_disabled GC_get_gc_no GC_get_heap_size
    GC_get_free_bytes GC_get_total_bytes GC_get_bytes_since_gc GC_get_unmapped_bytes
    GC_get_heap_usage_safe GC_get_prof_stats GC_set_max_heap_size GC_expand_hp
    GC_set_free_space_divisor GC_get_version GC_get_parallel GC_set_all_interior_pointers
    GC_get_all_interior_pointers GC_set_warn_proc GC_get_warn_proc GC_set_oom_fn GC_get_oom_fn
    GC_set_find_leak GC_get_find_leak GC_set_start_callback GC_noop1 GC_enable_incremental
    GC_set_manual_vdb_allowed GC_start_mark_threads GC_dump GC_add_roots GC_remove_roots
    GC_clear_roots GC_exclude_static_roots GC_register_finalizer GC_register_finalizer_ignore_self
    GC_register_finalizer_no_order GC_register_finalizer_unreachable GC_invoke_finalizers
    GC_should_invoke_finalizers GC_set_finalize_on_demand GC_set_finalizer_notifier
    GC_set_java_finalization GC_general_register_disappearing_link GC_register_disappearing_link
    GC_unregister_disappearing_link GC_move_disappearing_link GC_register_long_link
    GC_unregister_long_link GC_pthread_create GC_pthread_join GC_pthread_detach GC_pthread_exit
    GC_pthread_cancel GC_pthread_sigmask GC_register_my_thread GC_unregister_my_thread
    GC_thread_is_registered GC_allow_register_threads GC_get_stack_base GC_call_with_stack_base
    GC_do_blocking GC_call_with_gc_active GC_call_with_alloc_lock GC_get_suspend_signal
    GC_get_thr_restart_signal GC_set_suspend_signal GC_ptr_store_and_dirty GC_end_stubborn_change
    GC_debug_malloc GC_debug_malloc_atomic GC_debug_malloc_uncollectable GC_debug_free
    GC_debug_realloc GC_debug_strdup GC_debug_strndup GC_debug_register_finalizer)

W3M=$(command -v w3m || true)
if [ -n "$W3M" ]; then
    mapfile -t w3m_imports < <(nm -D --undefined-only "$W3M" | awk '$2 ~ /^GC_/ { sub(/@.*/, "", $2); print $2 }')
else
    w3m_imports=()
fi

# defined_unversioned LIB SYMBOL...: every SYMBOL is a defined dynamic symbol of
# LIB without a version; prints the ones that are not.
defined_unversioned() {
    local lib=$1
    shift
    local have
    have=$(nm -D --defined-only "$lib" | awk '{ print $3 }')
    local missing=()
    for s in "$@"; do
        grep -qx "$s" <<<"$have" || missing+=("$s")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "    missing or versioned in $(basename "$lib"): ${missing[*]}" >&2
        return 1
    fi
}

check libgc_so_exports_the_api_unversioned "see stderr" defined_unversioned "$LIBDIR/libgc.so.1" "${api[@]}"
check libgcpin_so_exports_the_api_unversioned "see stderr" defined_unversioned "$LIBDIR/libgcpin.so" "${api[@]}"
if [ ${#w3m_imports[@]} -gt 0 ]; then
    check libgc_so_has_every_libgc_symbol_w3m_imports "see stderr" defined_unversioned "$LIBDIR/libgc.so.1" "${w3m_imports[@]}"
else
    fail libgc_so_has_every_libgc_symbol_w3m_imports "w3m is not installed (scripts/deps.sh installs it)"
fi
soname() { readelf -d "$1" | sed -n -E 's/.*\(SONAME\).*\[(.*)\]/\1/p'; }
check sonames_are_libgc_so_1_and_libgcpin_so_0 "libgc.so.1: '$(soname "$LIBDIR/libgc.so.1")', libgcpin.so: '$(soname "$LIBDIR/libgcpin.so")'" \
    test "$(soname "$LIBDIR/libgc.so.1")" = libgc.so.1 -a "$(soname "$LIBDIR/libgcpin.so")" = libgcpin.so.0

# ---------------------------------------------------------------------- w3m

# A 20,000-row table, about 2 MB of HTML.
python3 scripts/w3m-page.py "$tmp/big.html"

# run_w3m OUT ERR [ENV...]: w3m -dump of the page, with its own HOME (w3m
# writes ~/.w3m), under /usr/bin/time when it exists (time and peak RSS go to
# OUT.time).
run_w3m() {
    local out=$1 err=$2
    shift 2
    local timer=()
    if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -o "$out.time" -f "%e s, peak RSS %M KiB"); fi
    env HOME="$tmp" "$@" "${timer[@]}" "$W3M" -dump -cols 120 -T text/html "$tmp/big.html" >"$out" 2>"$err"
}

if [ -z "$W3M" ] || [ -z "$SYSTEM_LIBGC" ]; then
    fail w3m_dump_is_identical_on_gcpin "w3m or the system libgc.so.1 is missing (scripts/deps.sh installs them)"
else
    run_w3m "$tmp/libgc.txt" "$tmp/libgc.err" LD_DEBUG=libs
    rc_sys=$?
    run_w3m "$tmp/gcpin.txt" "$tmp/gcpin.err" LD_LIBRARY_PATH="$LIBDIR" GCPIN_TRACE=1 LD_DEBUG=libs
    rc_gcpin=$?
    # The loader's account of which libgc.so.1 each run loaded.
    loaded() { sed -n -E 's/.*calling init: (.*libgc\.so\.1)$/\1/p' "$1" | head -n 1; }
    sys_lib=$(loaded "$tmp/libgc.err")
    gcpin_lib=$(loaded "$tmp/gcpin.err")
    echo "    w3m on the system libgc loaded ${sys_lib:-?}; with LD_LIBRARY_PATH, ${gcpin_lib:-?}" >&2
    check w3m_runs_on_system_libgc_and_on_gcpin "exit statuses $rc_sys and $rc_gcpin" test "$rc_sys" -eq 0 -a "$rc_gcpin" -eq 0
    check loader_loaded_gcpins_libgc_so_1 "it loaded '${gcpin_lib:-nothing}' (system: '${sys_lib:-nothing}')" \
        test "$(realpath -e "${gcpin_lib:-/nonexistent}" 2>/dev/null)" = "$LIBDIR/libgc.so.1" \
        -a "$(realpath -e "${sys_lib:-/nonexistent}" 2>/dev/null)" = "$(realpath -e "$SYSTEM_LIBGC")"
    check w3m_dump_is_identical_on_gcpin "outputs differ: $(cmp "$tmp/libgc.txt" "$tmp/gcpin.txt" 2>&1)" \
        cmp -s "$tmp/libgc.txt" "$tmp/gcpin.txt"
    lines=$(wc -l <"$tmp/gcpin.txt")
    check w3m_dump_has_every_row "$lines lines" test "$lines" -gt 20000
    ncycles=$(grep -c '^gcpin: gc [0-9]' "$tmp/gcpin.err")
    check gcpin_collected_during_the_w3m_run "no gcpin trace line on stderr" test "$ncycles" -gt 0
    if [ $measure -eq 1 ] || [ -n "${CHECK_TIMES:-}" ]; then
        echo "    w3m -dump of the 20,000-row table: libgc $(cat "$tmp/libgc.txt.time" 2>/dev/null)," \
            "gcpin $(cat "$tmp/gcpin.txt.time" 2>/dev/null) ($ncycles collections)" >&2
    fi
fi

# -------------------------------------------------- pkg-config and CMake

cat >"$tmp/prog.c" <<'EOF'
/* A program written for libgc, unchanged: both header spellings, the macros. */
#include <gc.h>
#include <gc/gc.h>
#include <stdio.h>
#include <string.h>

struct node { struct node *next; char *name; };

int main(void) {
    GC_INIT();
    struct node *list = NULL;
    for (int i = 0; i < 100000; i++) {
        struct node *n = GC_NEW(struct node);
        char buf[32];
        snprintf(buf, sizeof buf, "node %d", i);
        n->name = GC_STRDUP(buf);
        n->next = (i % 1000 == 0) ? NULL : list; /* drop the list now and then */
        list = n;
    }
    GC_gcollect();
    int n = 0;
    for (struct node *p = list; p; p = p->next) n++;
    printf("%d %s %lu\n", n, list->name, (unsigned long)(GC_get_gc_no() > 0));
    return strcmp(list->name, "node 99999") != 0 || n != 1000;
}
EOF
prefix="$tmp/prefix"
if ! make --no-print-directory -s install PREFIX="$prefix" >"$tmp/install.log" 2>&1; then
    fail make_install_then_pkg_config_build "make install failed: $(tail -n 3 "$tmp/install.log")"
else
    build_pc() {
        PKG_CONFIG_PATH="$prefix/lib/pkgconfig" cc -std=c11 -Wall -Werror -o "$tmp/prog" "$tmp/prog.c" \
            $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs gcpin) \
            -Wl,-rpath,"$prefix/lib" 2>"$tmp/cc.log" &&
            [ "$("$tmp/prog")" = "1000 node 99999 1" ] &&
            readelf -d "$tmp/prog" | grep -q 'NEEDED.*\[libgcpin\.so\.0\]'
    }
    check make_install_then_pkg_config_build_of_a_libgc_program "$(head -c 300 "$tmp/cc.log" 2>/dev/null)" build_pc
    check installed_libgc_so_1_does_not_shadow_the_system_one "lib/libgc.so.1 installed without LIBGC_DROP_IN" \
        test -f "$prefix/lib/gcpin/libgc.so.1" -a ! -e "$prefix/lib/libgc.so.1"
    check installed_libgcpin_links "libgcpin.so -> libgcpin.so.0 -> libgcpin.so.0.x.y expected" \
        test "$(readlink "$prefix/lib/libgcpin.so")" = libgcpin.so.0 -a -f "$prefix/lib/$(readlink "$prefix/lib/libgcpin.so.0")"
    if command -v cmake >/dev/null 2>&1; then
        mkdir -p "$tmp/cm"
        cp "$tmp/prog.c" "$tmp/cm/prog.c"
        cat >"$tmp/cm/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.13)
project(libgc_program C)
find_package(gcpin 0.1 REQUIRED)
add_executable(prog prog.c)
target_link_libraries(prog PRIVATE gcpin::gcpin)
EOF
        build_cmake() {
            cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_RPATH="$prefix/lib" \
                >"$tmp/cmake.log" 2>&1 &&
                cmake --build "$tmp/cm/build" >>"$tmp/cmake.log" 2>&1 &&
                [ "$("$tmp/cm/build/prog")" = "1000 node 99999 1" ]
        }
        check cmake_find_package_gcpin_builds_a_libgc_program "$(tail -n 5 "$tmp/cmake.log" 2>/dev/null)" build_cmake
    else
        echo "skip cmake_find_package_gcpin_builds_a_libgc_program: cmake is not installed" >&2
    fi
fi

echo "check: $passed passed, $failed failed"
if [ -n "$counts" ]; then
    echo "$passed $failed" >"$counts"
fi
exit $((failed > 100 ? 100 : failed))
