/* libgc's collection and state API on gcpin: GC_gcollect and its relatives,
 * GC_disable/GC_enable, the statistics, the heap limit, the start callback,
 * the version, the knobs gcpin accepts without using, and GC_DEBUG builds
 * (this file defines GC_DEBUG: every GC_MALLOC here is GC_debug_malloc). */
#define GC_DEBUG 1
#include <gc/gc.h>
#include <gc/gc_backptr.h>

#include "check.h"

static atomic_int warnings;
static void count_warning(char *msg, GC_word arg) {
    (void)msg;
    (void)arg;
    atomic_fetch_add(&warnings, 1);
}

static NOINLINE void garbage(int n) {
    for (int i = 0; i < n; i++) {
        void *p = GC_MALLOC(64);
        escape(p);
    }
}

TEST(gcollect_counts_collections) {
    GC_INIT();
    GC_word before = GC_get_gc_no();
    GC_gcollect();
    GC_gcollect_and_unmap();
    CHECK_GE(GC_get_gc_no(), before + 2);
}

static int stop_now(void) { return 1; }
static int go_on(void) { return 0; }

TEST(try_to_collect_asks_the_stop_function) {
    GC_INIT();
    GC_word before = GC_get_gc_no();
    CHECK_EQ(GC_try_to_collect(stop_now), 0);
    CHECK_EQ(GC_try_to_collect(go_on), 1);
    CHECK_GE(GC_get_gc_no(), before + 1);
    CHECK_EQ(GC_collect_a_little(), 0);
}

TEST(disable_stops_every_collection_until_enabled) {
    GC_INIT();
    GC_disable();
    GC_disable(); /* nests */
    CHECK(GC_is_disabled());
    GC_word before = GC_get_gc_no();
    garbage(200000); /* far past the trigger, and past GCPIN_STRESS's count */
    GC_gcollect();
    CHECK_EQ(GC_try_to_collect(go_on), 0);
    CHECK_EQ(GC_get_gc_no(), before);
    GC_enable();
    CHECK(GC_is_disabled());
    GC_gcollect();
    CHECK_EQ(GC_get_gc_no(), before);
    GC_enable();
    CHECK(!GC_is_disabled());
    GC_gcollect();
    CHECK_GT(GC_get_gc_no(), before);
    GC_set_warn_proc(count_warning);
    GC_enable(); /* unmatched: a warning, the count stays 0 */
    CHECK_EQ(atomic_load(&warnings), 1);
    CHECK(!GC_is_disabled());
}

static atomic_int callbacks;
static void on_start(void) { atomic_fetch_add(&callbacks, 1); }

TEST(start_callback_runs_at_each_collection) {
    GC_set_start_callback(on_start);
    CHECK(GC_get_start_callback() == on_start);
    int before = atomic_load(&callbacks);
    GC_gcollect();
    GC_gcollect();
    CHECK_GE(atomic_load(&callbacks), before + 2);
    GC_set_start_callback(NULL);
    before = atomic_load(&callbacks);
    GC_gcollect();
    CHECK_EQ(atomic_load(&callbacks), before);
}

static void *kept[1000];

TEST(statistics_describe_the_heap) {
    GC_INIT();
    for (int i = 0; i < 1000; i++) kept[i] = GC_MALLOC_ATOMIC(1000);
    size_t heap = GC_get_heap_size(), free_bytes = GC_get_free_bytes(), total = GC_get_total_bytes();
    CHECK_GE(heap, 1000 * 1000);
    CHECK_LT(free_bytes, heap);
    CHECK_GE(total, 1000 * 1000);
    CHECK_GE(GC_get_bytes_since_gc(), 0);
    GC_word hs = 0, fb = 0, ub = 0, since = 0, tot = 0;
    GC_get_heap_usage_safe(&hs, &fb, &ub, &since, &tot);
    CHECK_GE(hs, 1000 * 1000);
    CHECK_GE(tot, total);
    GC_get_heap_usage_safe(NULL, NULL, NULL, NULL, NULL); /* each may be NULL */
    struct GC_prof_stats_s st;
    CHECK_EQ(GC_get_prof_stats(&st, sizeof st), sizeof st);
    CHECK_GE(st.heapsize_full, hs);
    CHECK_EQ(st.gc_no, GC_get_gc_no());
    CHECK_EQ(st.bytes_reclaimed_since_gc, (GC_word)-1); /* not kept: "unknown" */
    /* A smaller struct (an older libgc's) gets only its fields. */
    GC_word two[3] = {0, 0, 12345};
    CHECK_EQ(GC_get_prof_stats((struct GC_prof_stats_s *)two, 2 * sizeof(GC_word)), 2 * sizeof(GC_word));
    CHECK_EQ(two[2], 12345);
    CHECK_GT(two[0], 0);
    (void)GC_get_unmapped_bytes();
    GC_dump(); /* a summary on stderr; must not crash */
    escape(kept);
}

TEST(heap_limit_and_expand) {
    GC_set_max_heap_size(32 << 20);
    CHECK_EQ(GC_expand_hp((size_t)1 << 30), 0); /* over the limit */
    CHECK_EQ(GC_expand_hp(1 << 20), 1);
    void *big = GC_MALLOC_ATOMIC(64 << 20);
    CHECK_EQ(big, NULL); /* the default OOM function returns NULL */
    GC_set_max_heap_size(0);
    big = GC_MALLOC_ATOMIC(64 << 20);
    CHECK(big != NULL);
}

TEST(version_and_knobs_report_what_gcpin_does) {
    CHECK_EQ(GC_get_version(), (GC_word)(GC_VERSION_MAJOR << 16 | GC_VERSION_MINOR << 8 | GC_VERSION_MICRO));
    CHECK_EQ(GC_VERSION_MAJOR, 8);
    CHECK_EQ(GC_get_parallel(), 0);
    GC_set_all_interior_pointers(0);
    CHECK_EQ(GC_get_all_interior_pointers(), 1); /* always on in gcpin */
    GC_set_warn_proc(count_warning);
    GC_set_find_leak(1); /* not supported: a warning */
    CHECK_EQ(atomic_load(&warnings), 1);
    CHECK_EQ(GC_get_find_leak(), 0);
    GC_set_free_space_divisor(7);
    CHECK_EQ(GC_get_free_space_divisor(), 7);
    GC_enable_incremental();
    CHECK_EQ(GC_is_incremental_mode(), 0);
    GC_set_manual_vdb_allowed(0);
    CHECK_EQ(GC_get_manual_vdb_allowed(), 0);
    GC_start_mark_threads();
    GC_noop1(42);
    CHECK_EQ(GC_get_thr_restart_signal(), -1);
    CHECK_GT(GC_get_suspend_signal(), 0);
    void *base = (void *)1;
    size_t off = 7;
    CHECK_EQ(GC_get_back_ptr_info(kept, &base, &off), GC_NO_SPACE);
    CHECK_EQ(base, NULL);
    CHECK_EQ(off, 0);
}

TEST(debug_macros_allocate_and_free) {
    char *s = GC_STRDUP("debug");
    char *t = GC_STRNDUP("debugging", 5);
    int *n = GC_NEW(int);
    REQUIRE(s && t && n);
    CHECK(strcmp(s, "debug") == 0 && strcmp(t, "debug") == 0);
    uint64_t *p = GC_MALLOC(100);
    REQUIRE(p);
    fill_words(p, 12, 3);
    uint64_t *q = GC_REALLOC(p, 5000);
    REQUIRE(q);
    CHECK(words_intact(q, 12, 3));
    void *u = GC_MALLOC_UNCOLLECTABLE(32);
    void *a = GC_MALLOC_ATOMIC_UNCOLLECTABLE(32);
    void *o = GC_MALLOC_IGNORE_OFF_PAGE(32);
    CHECK(u && a && o);
    GC_PTR_STORE_AND_DIRTY(&kept[0], q);
    CHECK_EQ(kept[0], q);
    GC_END_STUBBORN_CHANGE(q);
    GC_reachable_here(q);
    GC_FREE(u);
    GC_FREE(a);
    GC_FREE(q);
    CHECK_EQ(GC_base(q), NULL);
    kept[0] = NULL;
    CHECK_EQ(gc_verify_heap(), GC_OK);
}
