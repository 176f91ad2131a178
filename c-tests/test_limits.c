/* Limits: with GCPIN_MAX_HEAP, allocation past the limit (after a full
 * collection) returns NULL with errno ENOMEM and crashes nothing; once memory is
 * dropped, allocation works again. Impossible sizes fail the same way. */
#include "check.h"

#define LIMIT_MIB 64
#define MAX_CHUNKS 4096

static void **kept; /* malloc memory registered as a root */

/* Each test sets the limit before its first gcpin call: the configuration is
 * read when the runtime starts, and every test runs in a fresh process. */
static void limit_heap(void) {
    REQUIRE(setenv("GCPIN_MAX_HEAP", "64M", 1) == 0);
    kept = calloc(MAX_CHUNKS, sizeof(void *));
    REQUIRE(kept != NULL);
    REQUIRE(gc_add_roots(kept, MAX_CHUNKS * sizeof(void *)) == GC_OK);
}

/* Allocates chunks of `size` and keeps them until allocation fails; returns
 * how many succeeded. */
static NOINLINE int fill_until_null(size_t size, bool noscan) {
    int n = 0;
    for (;;) {
        errno = 0;
        void *p = noscan ? gc_alloc_noscan(size) : gc_alloc(size);
        if (p == NULL) {
            CHECKF(errno == ENOMEM, "allocation %d of %zu bytes failed with errno %d, expected ENOMEM", n, size,
                   errno);
            return n;
        }
        if (n == MAX_CHUNKS) {
            check_fail(__FILE__, __LINE__, "%d allocations of %zu bytes (%zu MiB) never reached the %d MiB limit",
                       n, size, (size_t)n * size >> 20, LIMIT_MIB);
            return n;
        }
        kept[n++] = p;
    }
}

static NOINLINE void drop_all(void) {
    memset(kept, 0, MAX_CHUNKS * sizeof(void *));
    collect_hard();
}

TEST(large_allocations_past_the_limit_return_null_with_enomem) {
    limit_heap();
    const size_t chunk = 1 << 20;
    int n = fill_until_null(chunk, true);
    /* Most of the 64 MiB is usable, and no more than the limit was handed out. */
    CHECK_GE(n, LIMIT_MIB / 2);
    CHECK_LE(n, LIMIT_MIB);
    gc_stats s;
    gc_get_stats(&s);
    CHECK_LE(s.heap_alloc_bytes, (uint64_t)LIMIT_MIB << 20);
    /* Still failing while everything is kept: no crash, the same error. */
    errno = 0;
    CHECK(gc_alloc_noscan(chunk) == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
    /* After dropping it all, the same amount fits again. */
    drop_all();
    void *p = gc_alloc_noscan(chunk);
    CHECK(p != NULL);
    p = NULL;
    int again = fill_until_null(chunk, true);
    CHECK_GE(again, n - 2);
}

TEST(small_allocations_past_the_limit_return_null_with_enomem) {
    limit_heap();
    /* 4 KiB scanned objects, kept through one root range of chunk arrays. */
    int n = 0;
    errno = 0;
    for (int c = 0; c < MAX_CHUNKS; c++) {
        void **arr = gc_alloc(512 * sizeof(void *));
        if (!arr) break;
        kept[c] = arr;
        int i = 0;
        for (; i < 512; i++) {
            arr[i] = gc_alloc(4096);
            if (!arr[i]) break;
            n++;
        }
        if (i < 512) break;
    }
    CHECK_EQ(errno, ENOMEM);
    CHECK_GE(n, (LIMIT_MIB / 2) * 256); /* at least 32 MiB of 4 KiB objects */
    CHECK_LE(n, LIMIT_MIB * 256);
    drop_all();
    for (int i = 0; i < 1000; i++) CHECKF(gc_alloc(4096) != NULL, "allocation %d failed after the drop", i);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

TEST(garbage_is_collected_before_the_limit_fails_an_allocation) {
    limit_heap();
    /* 1 GiB through a 64 MiB heap: every allocation must succeed, because a full
     * collection comes before giving up. */
    for (int i = 0; i < 1024; i++) {
        void *p = gc_alloc_noscan(1 << 20);
        CHECKF(p != NULL, "allocation %d of 1 MiB (garbage) failed", i);
        if (!p) break;
    }
}

/* Sizes beyond any arena gcpin reserves (4 TiB without a limit; 1 TiB was
 * one of these while the arena was 32 GiB, and is a possible size now). */
TEST(impossible_sizes_fail_with_enomem) {
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2, (size_t)1 << 48, (size_t)1 << 43};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        CHECKF(gc_alloc(sizes[i]) == NULL, "gc_alloc(%#zx) did not fail", sizes[i]);
        CHECKF(errno == ENOMEM, "gc_alloc(%#zx): errno %d, expected ENOMEM", sizes[i], errno);
        errno = 0;
        CHECKF(gc_alloc_noscan(sizes[i]) == NULL, "gc_alloc_noscan(%#zx) did not fail", sizes[i]);
        CHECKF(errno == ENOMEM, "gc_alloc_noscan(%#zx): errno %d, expected ENOMEM", sizes[i], errno);
    }
    /* The heap still works. */
    unsigned char *p = gc_alloc(64);
    CHECK(p != NULL && all_zero(p, 64));
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* Without GCPIN_MAX_HEAP the heap is limited by the machine, not by a fixed
 * reservation: it grows past 32 GiB (it stopped at the 32nd 1 GiB object).
 * Noscan objects that are never touched cost address space, not memory. */
#define GIB ((size_t)1 << 30)

static NOINLINE int take_gib_objects(void **out, int n) {
    int got = 0;
    for (; got < n; got++) {
        errno = 0;
        out[got] = gc_alloc_noscan(GIB);
        if (out[got] == NULL) {
            CHECKF(errno == ENOMEM, "1 GiB allocation %d failed with errno %d", got, errno);
            break;
        }
    }
    return got;
}

static bool skip_address_space_tests(void) {
    if (check_size(40) < 40) {
        fprintf(stderr, "    skipped: a reduced run (CHECK_SIZE_DIV / heavy stress)\n");
        return true;
    }
    return false;
}

TEST_TIMEOUT(heap_without_a_limit_grows_past_32_gib, 60) {
    if (skip_address_space_tests()) return;
    static void *objs[48];
    CHECK_EQ(take_gib_objects(objs, 48), 48);
}

/* Any GCPIN_MAX_HEAP is honoured, past the old 1 TiB reservation cap too
 * (2T parses; "T" was ignored before, silently). */
TEST_TIMEOUT(max_heap_of_40_gib_stops_allocation_there, 60) {
    if (skip_address_space_tests()) return;
    REQUIRE(setenv("GCPIN_MAX_HEAP", "40G", 1) == 0);
    static void *objs[48];
    int got = take_gib_objects(objs, 48);
    CHECKF(got >= 39 && got <= 40, "%d objects of 1 GiB under a 40 GiB limit", got);
}

TEST_TIMEOUT(max_heap_in_tebibytes_is_accepted, 60) {
    if (skip_address_space_tests()) return;
    REQUIRE(setenv("GCPIN_MAX_HEAP", "2T", 1) == 0);
    static void *objs[40];
    CHECK_EQ(take_gib_objects(objs, 40), 40);
}
