/* Bad input: every API function given every kind of bad argument, table-driven.
 *
 * Pointer table: one row per kind of pointer (NULL, stack, malloc, globals, the
 * zero-size address, interior and misaligned, one past the end of objects that
 * fill their slot exactly and that do not, a freed slot of a span with live
 * objects, a never-allocated slot, the middle of a freed large object, unused
 * arena pages, beyond the arena, non-canonical). Each row goes through is_pinned,
 * gc_pin_count, pinner_pin (fresh and non-empty pinner), pinner_pin_many (alone
 * and between two good pointers), gc_check_pointer, gc_set_finalizer (set and
 * clear), gc_add_roots / gc_remove_roots, gc_weak_make / gc_weak_get and
 * gc_add_cleanup / gc_stop_cleanup. The expected values come from
 * include/gcpin.h and DESIGN.md; where those are silent the row says so.
 *
 * Other rows: bad pinners (NULL, garbage contents), unpin twice, pin after the
 * object died, root ranges (never added, other lengths, wrapping), sizes, thread
 * (un)registration, gc_strerror, gc_get_stats, the leak handler. Tests of their
 * own: a gc_pinner holding a freed pinner's state, registration by a first call
 * that fails, sizes near GCPIN_MAX_HEAP, and pinning when the heap is full of
 * garbage.
 *
 * After every row: gc_verify_heap() == GC_OK and a fresh object can be
 * allocated, pinned and unpinned. Every failure message names its row. */
#include "check.h"

#include <limits.h>
#include <pthread.h>

/* ------------------------------------------------------------ row plumbing */

static const char *row = "(setup)";

#define RCHECK(cond) CHECKF(cond, "[%s] CHECK(%s)", row, #cond)
#define RSTATUS(expr, expected)                                                        \
    do {                                                                               \
        gc_status rs_got_ = (expr);                                                    \
        gc_status rs_want_ = (expected);                                               \
        CHECKF(rs_got_ == rs_want_, "[%s] %s returned %s, expected %s", row, #expr,    \
               check_status_name(rs_got_), check_status_name(rs_want_));               \
    } while (0)

static uint64_t pinned_objects(void) {
    gc_stats s;
    gc_get_stats(&s);
    return s.pinned_objects;
}

/* After every row: the heap is intact and still works. */
static void row_epilogue(void) {
    RSTATUS(gc_verify_heap(), GC_OK);
    unsigned char *q = gc_alloc(48);
    RCHECK(q != NULL);
    if (!q) return;
    RCHECK(all_zero(q, 48));
    gc_pinner pn = {0};
    RSTATUS(pinner_pin(&pn, q), GC_OK);
    RCHECK(is_pinned(q));
    RCHECK(gc_pin_count(q) == 1);
    RSTATUS(gc_check_pointer(q), GC_OK);
    pinner_unpin(&pn);
    RCHECK(!is_pinned(q));
    RCHECK(gc_pin_count(q) == 0);
    RCHECK(pinned_objects() == 0);
}

/* ------------------------------------------------------------ fixtures */

/* Globals are roots: everything here stays alive for the whole test. */
static char *g_good1, *g_good2; /* 48-byte objects, never a row's target */
static char *g_obj40;           /* gc_alloc(40): a 48-byte slot */
static char *g_obj40_next;      /* the object allocated right after it */
static char *g_exact1, *g_exact2; /* 1152 bytes (a class size), consecutive slots */
static char *g_large_odd;       /* 40000 bytes: 5 pages, 960 bytes of tail */
static char *g_large_exact;     /* 65536 bytes: exactly 8 pages */
static char *g_after_large;     /* the large object in the pages right after it */
static char *g_span_a, *g_span_c; /* 1280-byte noscan, live neighbours of a freed slot */
static char *g_span_b;             /* the freed slot between them (out of sight until freed) */
static char *g_freed_large;        /* a freed 4 MiB object (out of sight until freed) */
static int g_bss_int;
static int g_data_int = 42;
static const char g_rodata[] = "read-only data of the program";
static atomic_int g_fin_runs;
static gc_weak *g_weak_good1;

enum { EXACT = 1152, SPAN_SIZE = 1280, FREED_LARGE = 4 << 20, CANDIDATES = 2 };

/* Candidates for freeing, kept out of the collector's sight. A conservative
 * collector may keep any one object alive through a stale word, so there are
 * several and the test uses one that was really freed. */
static char *g_span_live[2 * CANDIDATES + 1];
static uintptr_t g_span_hole_hidden[CANDIDATES];
static uintptr_t g_large_hidden[CANDIDATES];

/* Size 1152 and noscan 1280 belong to this file's fixtures alone: nothing else
 * allocates them, so a free slot of theirs stays free. Of the 6 slots of the
 * span, 0, 2 and 4 stay live, 1 and 3 are dropped. */
static NOINLINE void make_span_with_holes(void) {
    char *s[2 * CANDIDATES + 1];
    /* Consecutive slots of one span, lowest first. A collection between two
     * of the allocations (GCPIN_STRESS, with the sweep of a concurrent cycle
     * still running) takes the span from this thread's cache, and the next
     * slot comes from another span: then the run starts again. */
    for (int attempt = 0;; attempt++) {
        REQUIRE(attempt < 100);
        int i = 0;
        for (; i < 2 * CANDIDATES + 1; i++) {
            s[i] = gc_alloc_noscan(SPAN_SIZE);
            REQUIRE(s[i] != NULL);
            if (i > 0 && s[i] != s[i - 1] + SPAN_SIZE) break;
        }
        if (i == 2 * CANDIDATES + 1) break;
    }
    for (int i = 0; i < CANDIDATES; i++) {
        CHECK_STATUS(gc_set_finalizer(s[2 * i + 1], count_fin, &g_fin_runs), GC_OK);
        g_span_hole_hidden[i] = HIDE(s[2 * i + 1]);
        s[2 * i + 1] = NULL;
    }
    memcpy(g_span_live, s, sizeof s);
    memset(s, 0, sizeof s);
    escape(s);
}

static NOINLINE void make_freed_large(void) {
    for (int i = 0; i < CANDIDATES; i++) {
        char *p = gc_alloc_noscan(FREED_LARGE);
        REQUIRE(p != NULL);
        memset(p, 0x5A, FREED_LARGE);
        CHECK_STATUS(gc_set_finalizer(p, count_fin, &g_fin_runs), GC_OK);
        g_large_hidden[i] = HIDE(p);
    }
}

static NOINLINE gc_status check_hidden(uintptr_t h, size_t off) {
    return gc_check_pointer((char *)UNHIDE(h) + off);
}

/* The first candidate that is really freed: its finalizer ran and a later
 * cycle freed it (gc_check_pointer says so). -1 if none. */
static NOINLINE int first_freed(const uintptr_t *hidden, size_t off) {
    for (int i = 0; i < CANDIDATES; i++)
        if (check_hidden(hidden[i], off) == GC_ERR_NOT_ALLOCATED) return i;
    return -1;
}

static NOINLINE void free_hidden_fixtures(const gc_stats *before) {
    gc_stats after;
    REQUIRE(collect_until(&g_fin_runs, 2, 20));
    int hole = -1, large = -1;
    for (int i = 0; i < 20 && (hole < 0 || large < 0); i++) {
        collect_hard();
        hole = first_freed(g_span_hole_hidden, 0);
        large = first_freed(g_large_hidden, FREED_LARGE / 2);
    }
    REQUIRE(hole >= 0 && large >= 0);
    g_span_a = g_span_live[2 * hole];
    g_span_c = g_span_live[2 * hole + 2];
    g_span_b = UNHIDE(g_span_hole_hidden[hole]);
    g_freed_large = UNHIDE(g_large_hidden[large]);
    /* The statistics lost the freed large object's bytes too: at most the
     * other candidate is still counted (and a few KiB of small fixtures). */
    gc_get_stats(&after);
    CHECK_LE(after.heap_alloc_bytes, before->heap_alloc_bytes + (CANDIDATES - 1) * FREED_LARGE + (64 << 10));
}

static void make_fixtures(void) {
    g_good1 = gc_alloc(48);
    g_good2 = gc_alloc(48);
    g_obj40 = gc_alloc(40);
    g_obj40_next = gc_alloc(40);
    g_exact1 = gc_alloc(EXACT);
    g_exact2 = gc_alloc(EXACT);
    g_large_odd = gc_alloc(40000);
    g_large_exact = gc_alloc(65536);
    g_after_large = gc_alloc(3 * 8192);
    REQUIRE(g_good1 && g_good2 && g_obj40 && g_obj40_next && g_exact1 && g_exact2 && g_large_odd && g_large_exact &&
            g_after_large);
    REQUIRE(g_exact2 == g_exact1 + EXACT); /* a fresh span, lowest slots first */
    /* Nothing was freed yet: pages are handed out in address order (to
     * spans of one kind: scanned and noscan spans keep to chunks of their
     * own). */
    REQUIRE(g_after_large == g_large_exact + 65536);
    /* The span of weak handles exists before anything is freed, so the
     * handles the rows make never take the freed pages. */
    g_weak_good1 = gc_weak_make(g_good1);
    REQUIRE(g_weak_good1 != NULL);
    gc_stats before;
    gc_get_stats(&before);
    make_freed_large();
    make_span_with_holes();
    free_hidden_fixtures(&before);
    CHECK_EQ(pinned_objects(), 0);
}

/* ------------------------------------------------------------ pointer table */

struct ptr_row {
    const char *name;
    const void *ptr;
    gc_status pin;          /* pinner_pin and pinner_pin_many */
    const void *target;     /* the object a successful pin pins (NULL: none) */
    const void *untouched;  /* an object that must not get pinned (or NULL) */
    bool is_pinned;         /* is_pinned(ptr) while nothing is pinned */
    gc_status check;        /* gc_check_pointer */
    gc_status setfin;       /* gc_set_finalizer, setting and clearing */
    bool readable;          /* [ptr, ptr + 64) may be given to gc_add_roots */
};

static void pin_and_unpin(const struct ptr_row *r, gc_status want) {
    const void *p = r->ptr;
    gc_pinner pn = {0};
    RSTATUS(pinner_pin(&pn, p), want);
    if (want == GC_OK && r->target) {
        RCHECK(is_pinned(r->target));
        RCHECK(gc_pin_count(r->target) == 1);
        RCHECK(is_pinned(p));
        RCHECK(gc_pin_count(p) == 1);
        RCHECK(pinned_objects() == 1);
    } else {
        /* An error (or the zero-size address) pins nothing. */
        RCHECK(pinned_objects() == 0);
        RCHECK(gc_pin_count(p) == 0);
    }
    if (r->untouched) RCHECK(!is_pinned(r->untouched));
    pinner_unpin(&pn);
    RCHECK(pinned_objects() == 0);
    if (r->target) RCHECK(!is_pinned(r->target));

    /* Through a pinner that already holds a pin: the same answer, its pin kept. */
    RSTATUS(pinner_pin(&pn, g_good1), GC_OK);
    RSTATUS(pinner_pin(&pn, p), want);
    RCHECK(gc_pin_count(g_good1) == 1);
    pinner_unpin(&pn);
    RCHECK(!is_pinned(g_good1));

    /* pinner_pin_many: alone, and between two good pointers (all or nothing). */
    RSTATUS(pinner_pin_many(&pn, &p, 1), want);
    pinner_unpin(&pn);
    const void *list[3] = {g_good1, p, g_good2};
    RSTATUS(pinner_pin_many(&pn, list, 3), want);
    if (want == GC_OK) {
        RCHECK(gc_pin_count(g_good1) == 1 && gc_pin_count(g_good2) == 1);
        if (r->target) RCHECK(gc_pin_count(r->target) == 1);
    } else {
        RCHECK(!is_pinned(g_good1) && !is_pinned(g_good2));
        RCHECK(pinned_objects() == 0);
    }
    if (r->untouched) RCHECK(!is_pinned(r->untouched));
    pinner_unpin(&pn);
    pinner_unpin(&pn); /* twice: nothing */
    RCHECK(pinned_objects() == 0);
}

static void never_cleanup(void *arg) {
    (void)arg;
    abort();
}

/* gc_weak_make and gc_add_cleanup take every pointer gc_set_finalizer takes
 * (an object, by an interior pointer too) and give NULL / 0 for the others,
 * with errno = EINVAL but for NULL. */
static void weak_and_cleanup(const void *p, gc_status want_setfin) {
    errno = 0;
    gc_weak *w = gc_weak_make(p);
    uint64_t id = gc_add_cleanup(p, never_cleanup, NULL);
    if (want_setfin == GC_OK) {
        RCHECK(w != NULL && gc_weak_get(w) == p && gc_weak_make(p) == w);
        RCHECK(id != 0 && gc_stop_cleanup(id) && !gc_stop_cleanup(id));
    } else {
        RCHECK(w == NULL && id == 0 && !gc_stop_cleanup(id));
        RCHECK(errno == (p == NULL ? 0 : EINVAL));
    }
    RCHECK(gc_add_cleanup(p, NULL, NULL) == 0);
}

static void run_ptr_row(const struct ptr_row *r) {
    row = r->name;
    const void *p = r->ptr;
    gc_status want_pin = r->pin, want_check = r->check, want_setfin = r->setfin;
    bool want_is_pinned = r->is_pinned;

    RCHECK(is_pinned(p) == want_is_pinned);
    RCHECK(gc_pin_count(p) == 0);
    pin_and_unpin(r, want_pin);
    RSTATUS(gc_check_pointer(p), want_check);

    static atomic_int never_runs;
    RSTATUS(gc_set_finalizer((void *)p, count_fin, &never_runs), want_setfin);
    RSTATUS(gc_set_finalizer((void *)p, NULL, NULL), want_setfin); /* clears it again */
    RSTATUS(gc_set_finalizer((void *)p, NULL, NULL), want_setfin); /* clearing nothing */

    if (p == NULL) {
        RSTATUS(gc_add_roots(p, 64), GC_ERR_NULL);
        RSTATUS(gc_remove_roots(p, 64), GC_ERR_NULL);
    } else {
        RSTATUS(gc_remove_roots(p, 64), GC_ERR_INVALID); /* never added */
        if (r->readable) {
            /* No allocation happens between add and remove: no collection
             * scans the range, whatever it holds. */
            RSTATUS(gc_add_roots(p, 64), GC_OK);
            RSTATUS(gc_remove_roots(p, 32), GC_ERR_INVALID);
            RSTATUS(gc_remove_roots(p, 65), GC_ERR_INVALID);
            RSTATUS(gc_remove_roots((const char *)p + 8, 56), GC_ERR_INVALID);
            RSTATUS(gc_remove_roots(p, 64), GC_OK);
            RSTATUS(gc_remove_roots(p, 64), GC_ERR_INVALID);
        }
    }
    weak_and_cleanup(p, want_setfin);
    RCHECK(gc_pin_count(p) == 0);
    row_epilogue();
}

static NOINLINE void some_function(void) { __asm__ volatile(""); }

TEST(every_pointer_taking_call_rejects_each_kind_of_bad_pointer) {
    make_fixtures();
    static atomic_int fin_before;
    atomic_store(&fin_before, atomic_load(&g_fin_runs));
    char on_stack[64] = {0};
    char *in_malloc = malloc(64);
    REQUIRE(in_malloc != NULL);
    memset(in_malloc, 0, 64);
    const void *zero = gc_alloc(0);
    REQUIRE(zero != NULL);
    char *span_b = g_span_b;
    char *freed_large = g_freed_large;
    /* README: one arena of at most 4 TiB (512 MiB under valgrind), pages
     * handed out lowest first; the fixtures are in its first few MiB, so
     * +256 MiB is in its unused middle and +8 TiB beyond its end. */
    const char *arena_middle = g_good1 + ((size_t)256 << 20);
    const char *beyond_arena = g_good1 + ((size_t)8 << 40);
    const void *noncanonical = (const void *)HIDE(g_good1);
    const void *text = (const void *)(uintptr_t)some_function;

    const gc_status OK = GC_OK, NUL = GC_ERR_NULL, NOTGC = GC_ERR_NOT_GC_POINTER, NOTAL = GC_ERR_NOT_ALLOCATED,
                    INVAL = GC_ERR_INVALID;
    const struct ptr_row rows[] = {
        /* name, ptr, pin, target, untouched, is_pinned, check, setfin, readable */
        {"NULL", NULL, NUL, NULL, NULL, false, NUL, NUL, false},
        {"stack address", on_stack, NOTGC, NULL, NULL, true, OK, NOTGC, true},
        {"malloc memory", in_malloc, NOTGC, NULL, NULL, true, OK, NOTGC, true},
        {"global in bss", &g_bss_int, NOTGC, NULL, NULL, true, OK, NOTGC, true},
        {"global in data", &g_data_int, NOTGC, NULL, NULL, true, OK, NOTGC, true},
        {"read-only data", g_rodata, NOTGC, NULL, NULL, true, OK, NOTGC, true},
        {"function address", text, NOTGC, NULL, NULL, true, OK, NOTGC, true},
        /* Docs: pinning it succeeds and changes nothing; it is not managed memory
         * (is_pinned true). gc_set_finalizer: docs silent; the runtime says
         * GC_ERR_INVALID (Go ignores it silently). */
        {"zero-size address", zero, OK, NULL, NULL, true, OK, INVAL, true},
        /* Interior pointers are legal, at any alignment: the containing object. */
        {"interior +1 (misaligned)", g_obj40 + 1, OK, g_obj40, g_obj40_next, false, OK, OK, true},
        {"interior +7 (misaligned)", g_obj40 + 7, OK, g_obj40, g_obj40_next, false, OK, OK, true},
        {"interior +20001 (misaligned, large object)", g_large_odd + 20001, OK, g_large_odd, NULL, false, OK, OK,
         true},
        /* One past the end of a 40-byte object is still inside its 48-byte slot:
         * docs say "the object that contains ptr"; the runtime (like the
         * conservative scan) takes the whole slot as the object. */
        {"one past the end, 40 bytes in a 48-byte slot", g_obj40 + 40, OK, g_obj40, g_obj40_next, false, OK, OK,
         true},
        {"last byte of a 48-byte slot", g_obj40 + 47, OK, g_obj40, g_obj40_next, false, OK, OK, true},
        {"one past the end, 40000-byte large object (5 pages)", g_large_odd + 40000, OK, g_large_odd, NULL, false,
         OK, OK, true},
        /* An exact fit: one past the end is the next slot, another object. */
        {"one past the end, exact 1152-byte slot, next slot live", g_exact1 + EXACT, OK, g_exact2, g_exact1, false,
         OK, OK, true},
        {"one past the end, exact 1152-byte slot, next slot never allocated", g_exact2 + EXACT, NOTAL, NULL,
         g_exact2, false, NOTAL, NOTAL, true},
        {"one past the end, exact 65536-byte large object, next span live", g_large_exact + 65536, OK,
         g_after_large, g_large_exact, false, OK, OK, true},
        {"free slot (freed by a collection) between two live objects", span_b, NOTAL, NULL, g_span_a, false, NOTAL,
         NOTAL, true},
        {"inside a freed slot, +100", span_b + 100, NOTAL, NULL, g_span_c, false, NOTAL, NOTAL, true},
        {"middle of a freed 4 MiB large object", freed_large + FREED_LARGE / 2, NOTAL, NULL, NULL, false, NOTAL,
         NOTAL, true},
        {"last byte of a freed 4 MiB large object", freed_large + FREED_LARGE - 1, NOTAL, NULL, NULL, false, NOTAL,
         NOTAL, true},
        {"unused arena pages (a heap object + 256 MiB)", arena_middle, NOTAL, NULL, NULL, false, NOTAL, NOTAL, true},
        {"beyond the arena (a heap object + 8 TiB)", beyond_arena, NOTGC, NULL, NULL, true, OK, NOTGC, false},
        {"non-canonical address", noncanonical, NOTGC, NULL, NULL, true, OK, NOTGC, false},
        {"address 1", (const void *)1, NOTGC, NULL, NULL, true, OK, NOTGC, false},
        {"highest address", (const void *)UINTPTR_MAX, NOTGC, NULL, NULL, true, OK, NOTGC, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) run_ptr_row(&rows[i]);
    row = "(after the pointer table)";
    /* The live fixtures are intact, and no finalizer ran for anything the rows
     * touched (the two finalized fixtures were counted before). */
    RCHECK(atomic_load(&g_fin_runs) == atomic_load(&fin_before));
    RSTATUS(gc_check_pointer(g_span_a), OK);
    RSTATUS(gc_check_pointer(g_span_c), OK);
    RCHECK(all_zero(g_exact1, EXACT) && all_zero(g_exact2, EXACT));
    free(in_malloc);
    escape(on_stack);
}

/* ------------------------------------------------------------ other rows */

static NOINLINE bool hidden_is_freed(uintptr_t h);

static NOINLINE void row_null_pinner(void) {
    RSTATUS(pinner_pin(NULL, g_good1), GC_ERR_NULL);
    RSTATUS(pinner_pin(NULL, NULL), GC_ERR_NULL);
    const void *list[1] = {g_good1};
    RSTATUS(pinner_pin_many(NULL, list, 1), GC_ERR_NULL);
    RSTATUS(pinner_pin_many(NULL, list, 0), GC_ERR_NULL);
    pinner_unpin(NULL); /* nothing, no crash */
    RCHECK(!is_pinned(g_good1));
    RCHECK(pinned_objects() == 0);
}

static NOINLINE void row_pin_many_null_list(void) {
    gc_pinner pn = {0};
    RSTATUS(pinner_pin_many(&pn, NULL, 2), GC_ERR_NULL);
    /* n == 0: nothing to pin, all of it pinned (docs silent; GC_OK). */
    RSTATUS(pinner_pin_many(&pn, NULL, 0), GC_OK);
    const void *list[2] = {g_good1, g_good2};
    RSTATUS(pinner_pin_many(&pn, list, 0), GC_OK);
    RCHECK(!is_pinned(g_good1));
    /* Duplicates in one call count as two pins. */
    const void *dup[3] = {g_good1, g_good1 + 5, g_good2};
    RSTATUS(pinner_pin_many(&pn, dup, 3), GC_OK);
    RCHECK(gc_pin_count(g_good1) == 2);
    pinner_unpin(&pn);
    RCHECK(gc_pin_count(g_good1) == 0);
    RCHECK(pinned_objects() == 0);
}

/* A gc_pinner whose contents are garbage: GC_ERR_INVALID from the pin calls,
 * nothing pinned, and pinner_unpin leaves it alone (docs: "a gc_pinner that is
 * not zeroed or previously used -> GC_ERR_INVALID"; unpin: docs silent). */
static NOINLINE void row_garbage_pinners(void) {
    char on_stack[128] __attribute__((aligned(64)));
    memset(on_stack, 0x77, sizeof on_stack);
    char *in_malloc = malloc(128);
    REQUIRE(in_malloc != NULL);
    memset(in_malloc, 0x77, 128);
    char *obj64 = gc_alloc(64); /* a live 64-byte object: the size of an inner pinner */
    REQUIRE(obj64 != NULL);
    memset(obj64, 0x77, 64);
    void *garbage[] = {
        (void *)(uintptr_t)0xdeadbeef,
        (void *)(uintptr_t)1,
        (void *)UINTPTR_MAX,
        (void *)HIDE(g_good1),
        on_stack,
        in_malloc,
        g_good1,                                  /* a live object, not a pinner */
        obj64,                                    /* 64-byte aligned live object */
        obj64 + 8,
        (char *)g_good1 + ((size_t)16 << 30),     /* unused arena pages */
        (void *)(((uintptr_t)g_good1 + ((size_t)16 << 30)) & ~(uintptr_t)63),
        (void *)((uintptr_t)g_good1 & ~(uintptr_t)8191), /* a span's first page */
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        gc_pinner bad = {garbage[i]};
        RSTATUS(pinner_pin(&bad, g_good1), GC_ERR_INVALID);
        const void *list[2] = {g_good1, g_good2};
        RSTATUS(pinner_pin_many(&bad, list, 2), GC_ERR_INVALID);
        /* A bad pointer is reported as such whatever the pinner holds. */
        RSTATUS(pinner_pin(&bad, NULL), GC_ERR_NULL);
        RSTATUS(pinner_pin(&bad, on_stack), GC_ERR_NOT_GC_POINTER);
        CHECKF(bad.impl == garbage[i], "[%s] garbage pinner %zu was modified", row, i);
        RCHECK(!is_pinned(g_good1) && !is_pinned(g_good2));
        RCHECK(pinned_objects() == 0);
        pinner_unpin(&bad); /* left alone, no crash */
        CHECKF(bad.impl == garbage[i], "[%s] pinner_unpin modified garbage pinner %zu", row, i);
    }
    RCHECK(all_zero(g_good1, 48)); /* nothing was written through the garbage */
    free(in_malloc);
    escape(on_stack);
    escape(obj64);
}

/* An uninitialized gc_pinner on the stack can hold what a dead frame's pinner
 * left there: a pointer to an inner state that a collection has freed since.
 * Header: "a gc_pinner that is not zeroed or previously used ->
 * GC_ERR_INVALID"; this one is neither (its state is gone). */
static NOINLINE uintptr_t dead_pinner_state(void) {
    gc_pinner cached = {0}, left = {0};
    RSTATUS(pinner_pin(&cached, g_good1), GC_OK);
    RSTATUS(pinner_pin(&left, g_good2), GC_OK);
    pinner_unpin(&cached); /* its state goes to the thread's cache */
    pinner_unpin(&left);   /* the cache is full: `left` keeps its state */
    uintptr_t h = HIDE(left.impl);
    memset(&left, 0, sizeof left);
    escape(&left);
    return h;
}

static NOINLINE void row_stale_pinner(void) {
    uintptr_t h = 0;
    bool freed = false;
    for (int attempt = 0; attempt < 3 && !freed; attempt++) {
        h = dead_pinner_state();
        REQUIRE(UNHIDE(h) != NULL);
        for (int i = 0; i < 10 && !freed; i++) {
            collect_hard();
            freed = hidden_is_freed(h);
        }
    }
    REQUIRE(freed);
    gc_pinner stale = {UNHIDE(h)};
    RSTATUS(pinner_pin(&stale, g_good1), GC_ERR_INVALID);
    const void *list[1] = {g_good2};
    RSTATUS(pinner_pin_many(&stale, list, 1), GC_ERR_INVALID);
    pinner_unpin(&stale); /* undoes whatever was pinned through it */
    RCHECK(!is_pinned(g_good1) && !is_pinned(g_good2));
    RCHECK(pinned_objects() == 0);
}

/* Its own test: when the row fails, what follows in the process is suspect. */
TEST(gc_pinner_holding_a_freed_pinners_state_is_rejected) {
    g_good1 = gc_alloc(48);
    g_good2 = gc_alloc(48);
    REQUIRE(g_good1 && g_good2);
    row = "gc_pinner holding a freed pinner's state";
    row_stale_pinner();
    row_epilogue();
    /* Afterwards, pinners work as before: 64-byte objects (the inner state's
     * size) are allocated and fresh pinners pin and unpin. */
    row = "pinners after the stale one";
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 200; i++) {
            unsigned char *o = gc_alloc(64);
            RCHECK(o != NULL && all_zero(o, 64));
            if (o) memset(o, 0xAB, 64);
        }
        gc_pinner pn = {0};
        RSTATUS(pinner_pin(&pn, g_good1), GC_OK);
        RSTATUS(pinner_pin(&pn, g_good2), GC_OK);
        pinner_unpin(&pn);
        CHECKF(pinned_objects() == 0, "[%s] round %d: %" PRIu64 " objects still pinned after pinner_unpin", row,
               round, pinned_objects());
        RCHECK(!is_pinned(g_good1) && !is_pinned(g_good2));
        collect_hard();
        row_epilogue();
    }
}

static NOINLINE void row_unpin_twice(void) {
    gc_pinner pn = {0};
    RSTATUS(pinner_pin(&pn, g_good1), GC_OK);
    RSTATUS(pinner_pin(&pn, g_good1), GC_OK);
    RSTATUS(pinner_pin(&pn, g_good2), GC_OK);
    pinner_unpin(&pn);
    pinner_unpin(&pn);
    RCHECK(gc_pin_count(g_good1) == 0 && gc_pin_count(g_good2) == 0);
    /* Another pinner's pins are not touched by unpinning this one twice. */
    gc_pinner other = {0};
    RSTATUS(pinner_pin(&other, g_good1), GC_OK);
    RSTATUS(pinner_pin(&pn, g_good1), GC_OK);
    pinner_unpin(&pn);
    pinner_unpin(&pn);
    RCHECK(gc_pin_count(g_good1) == 1);
    /* The pinner works again after that. */
    RSTATUS(pinner_pin(&pn, g_good2), GC_OK);
    RCHECK(is_pinned(g_good2));
    pinner_unpin(&pn);
    pinner_unpin(&other);
    RCHECK(pinned_objects() == 0);
}

/* Pin after the object died: a pointer kept out of the collector's sight into
 * a slot a collection freed. */
static atomic_int died_fin;
static uintptr_t died_hidden[64];

static NOINLINE void make_dying(void) {
    for (int i = 0; i < 64; i++) {
        char *p = gc_alloc(2304); /* a class of its own in this file */
        REQUIRE(p != NULL);
        memset(p, 0x33, 2304);
        CHECK_STATUS(gc_set_finalizer(p, count_fin, &died_fin), GC_OK);
        died_hidden[i] = HIDE(p);
    }
}

static NOINLINE bool hidden_is_freed(uintptr_t h) {
    return gc_check_pointer(UNHIDE(h)) == GC_ERR_NOT_ALLOCATED;
}

static NOINLINE void row_pin_after_death(void) {
    make_dying();
    REQUIRE(collect_until(&died_fin, 60, 20));
    /* Finalized objects are freed by a later cycle; a stale word may keep one
     * or two a while longer: those are skipped. */
    int freed = 0;
    for (int round = 0; round < 10 && freed < 64; round++) {
        collect_hard();
        freed = 0;
        for (int i = 0; i < 64; i++) freed += hidden_is_freed(died_hidden[i]);
    }
    CHECKF(freed >= 62, "[%s] only %d of 64 finalized objects were freed", row, freed);
    gc_pinner pn = {0};
    for (int i = 0; i < 64; i++) {
        if (!hidden_is_freed(died_hidden[i])) continue;
        char *p = UNHIDE(died_hidden[i]);
        /* Nothing allocates this class again, so the slot stays free. */
        RSTATUS(pinner_pin(&pn, p + 16), GC_ERR_NOT_ALLOCATED);
        CHECKF(!is_pinned(p), "[%s] dead object %d reads as pinned", row, i);
        RCHECK(gc_pin_count(p) == 0);
        RSTATUS(gc_set_finalizer(p, count_fin, &died_fin), GC_ERR_NOT_ALLOCATED);
        const void *list[2] = {g_good1, p};
        RSTATUS(pinner_pin_many(&pn, list, 2), GC_ERR_NOT_ALLOCATED);
    }
    RCHECK(!is_pinned(g_good1));
    RCHECK(pinned_objects() == 0);
    pinner_unpin(&pn);
}

static NOINLINE void row_roots(void) {
    static char area[256];
    char *m = malloc(256);
    REQUIRE(m != NULL);
    memset(m, 0, 256);
    RSTATUS(gc_remove_roots(m, 256), GC_ERR_INVALID); /* never added */
    RSTATUS(gc_add_roots(m, 256), GC_OK);
    RSTATUS(gc_remove_roots(m, 255), GC_ERR_INVALID);
    RSTATUS(gc_remove_roots(m, 257), GC_ERR_INVALID);
    RSTATUS(gc_remove_roots(m + 1, 255), GC_ERR_INVALID);
    RSTATUS(gc_remove_roots((void *)((uintptr_t)m - 16), 272), GC_ERR_INVALID); /* a covering range */
    RSTATUS(gc_remove_roots(m, 256), GC_OK);
    RSTATUS(gc_remove_roots(m, 256), GC_ERR_INVALID);
    /* Added twice: removed twice, then not registered. */
    RSTATUS(gc_add_roots(area, sizeof area), GC_OK);
    RSTATUS(gc_add_roots(area, sizeof area), GC_OK);
    RSTATUS(gc_remove_roots(area, sizeof area), GC_OK);
    RSTATUS(gc_remove_roots(area, sizeof area), GC_OK);
    RSTATUS(gc_remove_roots(area, sizeof area), GC_ERR_INVALID);
    /* Length 0: an empty range (docs silent; accepted, removable). */
    RSTATUS(gc_add_roots(m, 0), GC_OK);
    RSTATUS(gc_remove_roots(m, 0), GC_OK);
    RSTATUS(gc_remove_roots(m, 0), GC_ERR_INVALID);
    /* Wrapping: the end would be 2^64 or beyond. */
    RSTATUS(gc_add_roots((void *)(UINTPTR_MAX - 63), 64), GC_ERR_INVALID);
    RSTATUS(gc_add_roots((void *)(UINTPTR_MAX - 63), 1000), GC_ERR_INVALID);
    RSTATUS(gc_add_roots((void *)(uintptr_t)4096, SIZE_MAX), GC_ERR_INVALID);
    RSTATUS(gc_add_roots(m, SIZE_MAX - (uintptr_t)m + 1), GC_ERR_INVALID);
    /* Wrapping ranges were not registered, so there is nothing to remove. */
    RSTATUS(gc_remove_roots((void *)(UINTPTR_MAX - 63), 64), GC_ERR_INVALID);
    RSTATUS(gc_remove_roots(m, SIZE_MAX - (uintptr_t)m + 1), GC_ERR_INVALID);
    /* NULL start, whatever the length. */
    RSTATUS(gc_add_roots(NULL, 0), GC_ERR_NULL);
    RSTATUS(gc_remove_roots(NULL, 0), GC_ERR_NULL);
    RSTATUS(gc_add_roots(NULL, SIZE_MAX), GC_ERR_NULL);
    /* A range inside the heap, overlapping a live object, is a legal root. */
    RSTATUS(gc_add_roots(g_good1, 48), GC_OK);
    gc_collect();
    RSTATUS(gc_remove_roots(g_good1, 48), GC_OK);
    free(m);
}

static NOINLINE void row_sizes(void) {
    /* Beyond what test_limits covers: the 4 TiB arena, just past it, twice
     * it, and sizes that overflow a page-rounding. */
    const size_t sizes[] = {
        SIZE_MAX - 8191, SIZE_MAX - 8192, SIZE_MAX / 2 + 1, (size_t)1 << 63, (size_t)4 << 40,
        ((size_t)4 << 40) + 1, (size_t)8 << 40,
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        void *p = gc_alloc(sizes[i]);
        CHECKF(p == NULL && errno == ENOMEM, "[%s] gc_alloc(%#zx) = %p, errno %d; expected NULL, ENOMEM", row,
               sizes[i], p, errno);
        errno = 0;
        p = gc_alloc_noscan(sizes[i]);
        CHECKF(p == NULL && errno == ENOMEM, "[%s] gc_alloc_noscan(%#zx) = %p, errno %d; expected NULL, ENOMEM",
               row, sizes[i], p, errno);
    }
    /* Size 0 is no error: the shared address, errno untouched. */
    errno = 0;
    void *z1 = gc_alloc(0), *z2 = gc_alloc_noscan(0);
    RCHECK(z1 != NULL && z1 == z2 && errno == 0);
}

static NOINLINE void row_strerror(void) {
    const unsigned bad[] = {9, 16, 0x7fffffffu, 0x80000000u, 0xffffffffu}; /* 8 is GC_ERR_WOULD_DEADLOCK */
    const char *known = gc_strerror(GC_ERR_THREAD);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *t = gc_strerror((gc_status)bad[i]);
        CHECKF(t != NULL && t[0] != 0, "[%s] gc_strerror(%#x) is NULL or empty", row, bad[i]);
        CHECKF(t == NULL || strcmp(t, known) != 0, "[%s] gc_strerror(%#x) reads as a known status", row, bad[i]);
    }
}

static NOINLINE void row_threads_main(void) {
    /* The main thread: unregister twice (the second is GC_ERR_THREAD), then
     * registered again before anything can collect. */
    RSTATUS(gc_thread_unregister(), GC_OK);
    RSTATUS(gc_thread_unregister(), GC_ERR_THREAD);
    RSTATUS(gc_thread_register(), GC_OK);
    RSTATUS(gc_thread_register(), GC_OK);
}

static gc_status thread_rows[4];
static void *thread_row_body(void *arg) {
    (void)arg;
    thread_rows[0] = gc_thread_register();
    thread_rows[1] = gc_thread_unregister();
    thread_rows[2] = gc_thread_unregister();
    thread_rows[3] = gc_thread_register();
    return NULL;
}

/* Docs (README, "Threads and signals"): calls that only read, set the leak
 * handler, return the zero-size address or reject their arguments before
 * touching the heap do not register the calling thread. After any one of
 * these, gc_thread_unregister says GC_ERR_THREAD; a later call that works on
 * the heap registers it. */
static void first_pin_null(void) {
    gc_pinner pn = {0};
    (void)pinner_pin(&pn, NULL);
}
static void first_unpin_empty(void) {
    gc_pinner pn = {0};
    pinner_unpin(&pn);
}
static void first_check_null(void) { (void)gc_check_pointer(NULL); }
static void first_add_roots_null(void) { (void)gc_add_roots(NULL, 8); }
static void first_stats_null(void) { gc_get_stats(NULL); }
static void first_strerror(void) { (void)gc_strerror(GC_OK); }
static void first_leak_handler(void) { gc_set_pinner_leak_handler(NULL, NULL); }
static void first_alloc_zero(void) { escape(gc_alloc(0)); }
static void first_set_finalizer_null(void) { (void)gc_set_finalizer(NULL, NULL, NULL); }
static void first_weak_null(void) {
    escape(gc_weak_make(NULL));
    escape(gc_weak_get(NULL));
}
static void first_cleanup_null(void) {
    (void)gc_add_cleanup(NULL, never_cleanup, NULL);
    (void)gc_stop_cleanup(0);
}

static const struct {
    const char *name;
    void (*call)(void);
} first_calls[] = {
    {"pinner_pin(&pinner, NULL)", first_pin_null},
    {"pinner_unpin(&empty)", first_unpin_empty},
    {"gc_check_pointer(NULL)", first_check_null},
    {"gc_add_roots(NULL, 8)", first_add_roots_null},
    {"gc_get_stats(NULL)", first_stats_null},
    {"gc_strerror(GC_OK)", first_strerror},
    {"gc_set_pinner_leak_handler(NULL, NULL)", first_leak_handler},
    {"gc_alloc(0)", first_alloc_zero},
    {"gc_set_finalizer(NULL, NULL, NULL)", first_set_finalizer_null},
    {"gc_weak_make(NULL), gc_weak_get(NULL)", first_weak_null},
    {"gc_add_cleanup(NULL, ...), gc_stop_cleanup(0)", first_cleanup_null},
};
static gc_status first_call_unregister[sizeof first_calls / sizeof first_calls[0]];
static gc_status after_alloc_unregister[sizeof first_calls / sizeof first_calls[0]];

static void *first_call_body(void *arg) {
    size_t i = (size_t)(uintptr_t)arg;
    first_calls[i].call();
    first_call_unregister[i] = gc_thread_unregister();
    escape(gc_alloc(16));
    after_alloc_unregister[i] = gc_thread_unregister();
    return NULL;
}

static NOINLINE void row_threads_other(void) {
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, thread_row_body, NULL) == 0);
    pthread_join(t, NULL);
    RSTATUS(thread_rows[0], GC_OK);
    RSTATUS(thread_rows[1], GC_OK);
    RSTATUS(thread_rows[2], GC_ERR_THREAD);
    RSTATUS(thread_rows[3], GC_OK);
}

TEST(calls_that_fail_on_their_arguments_or_only_read_do_not_register_the_thread) {
    g_good1 = gc_alloc(48);
    REQUIRE(g_good1 != NULL);
    row = "registration by the first gcpin call";
    pthread_t t;
    for (size_t i = 0; i < sizeof first_calls / sizeof first_calls[0]; i++) {
        REQUIRE(pthread_create(&t, NULL, first_call_body, (void *)(uintptr_t)i) == 0);
        pthread_join(t, NULL);
        CHECKF(first_call_unregister[i] == GC_ERR_THREAD,
               "[%s] a thread whose only gcpin call was %s: gc_thread_unregister returned %s, "
               "expected GC_ERR_THREAD (not registered)",
               row, first_calls[i].name, check_status_name(first_call_unregister[i]));
        CHECKF(after_alloc_unregister[i] == GC_OK,
               "[%s] after %s and then gc_alloc(16), gc_thread_unregister returned %s, expected GC_OK", row,
               first_calls[i].name, check_status_name(after_alloc_unregister[i]));
    }
    row_epilogue();
}

static NOINLINE void row_stats(void) {
    gc_get_stats(NULL); /* ignored */
    gc_stats s;
    memset(&s, 0xFF, sizeof s);
    gc_get_stats(&s);
    RCHECK(s.heap_objects > 0 && s.heap_objects < (1u << 30));
    RCHECK(s.pinned_objects == 0);
    RCHECK(s.heap_alloc_bytes <= s.heap_sys_bytes);
}

static void custom_leak(size_t n, void *arg) {
    (void)n;
    (void)arg;
}

static NOINLINE void row_leak_handler(void) {
    gc_set_pinner_leak_handler(NULL, NULL);
    gc_set_pinner_leak_handler(NULL, (void *)(uintptr_t)0xdeadbeef); /* arg without a function */
    gc_set_pinner_leak_handler(custom_leak, NULL);
    gc_set_pinner_leak_handler(custom_leak, (void *)1);
    gc_set_pinner_leak_handler(NULL, NULL);
    gc_collect();
    gc_run_finalizers();
}

struct misc_row {
    const char *name;
    void (*fn)(void);
};

TEST(other_calls_reject_bad_arguments) {
    g_good1 = gc_alloc(48);
    g_good2 = gc_alloc(48);
    REQUIRE(g_good1 && g_good2);
    const struct misc_row rows[] = {
        {"NULL pinner", row_null_pinner},
        {"pinner_pin_many with a NULL list or n = 0", row_pin_many_null_list},
        {"gc_pinner with garbage contents", row_garbage_pinners},
        {"unpin twice", row_unpin_twice},
        {"pin after the object died", row_pin_after_death},
        {"root ranges: never added, other lengths, twice, empty, wrapping, NULL", row_roots},
        {"impossible sizes", row_sizes},
        {"gc_strerror out of range", row_strerror},
        {"main thread: unregister twice, register twice", row_threads_main},
        {"another thread: register twice, unregister twice", row_threads_other},
        {"gc_get_stats", row_stats},
        {"gc_set_pinner_leak_handler(NULL, ...)", row_leak_handler},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        row = rows[i].name;
        rows[i].fn();
        row_epilogue();
    }
}

/* ------------------------------------------------------- near the heap limit */

enum { LIMIT = 64 << 20, PAGE = 8192 };

static NOINLINE uintptr_t alloc_hidden_noscan(size_t n) {
    return HIDE(gc_alloc_noscan(n));
}

TEST(sizes_near_the_heap_limit) {
    REQUIRE(setenv("GCPIN_MAX_HEAP", "64M", 1) == 0);
    REQUIRE(setenv("GCPIN_GC_PERCENT", "off", 1) == 0); /* only the limit collects */

    row = "limit + 1 on an empty heap";
    errno = 0;
    RCHECK(gc_alloc_noscan((size_t)LIMIT + 1) == NULL && errno == ENOMEM);
    row = "limit + one page";
    errno = 0;
    RCHECK(gc_alloc((size_t)LIMIT + PAGE) == NULL && errno == ENOMEM);
    row = "twice the limit (the arena's size)";
    errno = 0;
    RCHECK(gc_alloc_noscan(2 * (size_t)LIMIT) == NULL && errno == ENOMEM);

    /* Exactly the limit, as the first allocation that succeeds (no page is in
     * use yet): not past it (docs: "allocation past it ... returns NULL"). */
    row = "exactly the limit on an empty heap";
    uintptr_t big = alloc_hidden_noscan(LIMIT);
    RCHECK(UNHIDE(big) != NULL);
    /* Now the heap is full of garbage: an allocation collects it first. */
    row = "small allocation when the heap is full of garbage";
    scrub_stack();
    char *q = gc_alloc(48);
    RCHECK(q != NULL);
    row_epilogue();

    /* A live object of half the limit: more than the other half fails, less
     * fits. */
    row = "half the limit live, then more than the rest";
    char *half = gc_alloc_noscan(LIMIT / 2);
    REQUIRE(half != NULL);
    errno = 0;
    RCHECK(gc_alloc_noscan(LIMIT / 2 + PAGE) == NULL && errno == ENOMEM);
    RCHECK(gc_alloc_noscan(LIMIT / 4) != NULL);
    row_epilogue();
    escape(half);
}

/* pinner_pin allocates the pinner's inner state: when the heap is full of
 * garbage, does it collect first, as gc_alloc does? Docs: gc_alloc "returns
 * NULL ... when the heap limit is reached even after a full collection";
 * pinner_pin lists no GC_ERR_NO_MEMORY at all. */
static NOINLINE void fill_with_garbage(void) {
    gc_stats s;
    gc_get_stats(&s);
    size_t room = (LIMIT - (size_t)s.heap_sys_bytes) & ~(size_t)(PAGE - 1);
    escape(gc_alloc_noscan(room));
}

TEST(pin_when_the_heap_is_full_of_garbage) {
    REQUIRE(setenv("GCPIN_MAX_HEAP", "64M", 1) == 0);
    REQUIRE(setenv("GCPIN_GC_PERCENT", "off", 1) == 0);
    row = "pinner_pin with a fresh pinner, heap full of garbage";
    char *obj = gc_alloc_noscan(48); /* the one live object */
    REQUIRE(obj != NULL);
    fill_with_garbage();
    scrub_stack();
    gc_pinner pn = {0};
    RSTATUS(pinner_pin(&pn, obj), GC_OK);
    RCHECK(is_pinned(obj));
    pinner_unpin(&pn);
    row_epilogue();
    escape(obj);
}
