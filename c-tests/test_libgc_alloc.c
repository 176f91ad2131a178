/* libgc's allocation API on gcpin (include/gc.h): GC_malloc and its kinds,
 * GC_realloc's rules, GC_free (reuse at once, pinned objects, bad pointers),
 * GC_base/GC_size, strings, aligned memory, GC_malloc_many, the OOM function,
 * and one heap with gcpin's own API (pinning GC_MALLOC memory). */
#include <gc.h>

#include "check.h"

/* Warnings through the warn proc, counted (and not printed). */
static atomic_int warnings;
static void count_warning(char *msg, GC_word arg) {
    (void)msg;
    (void)arg;
    atomic_fetch_add(&warnings, 1);
}

/* Collections can be frequent enough (GCPIN_STRESS below 100) that a freed
 * slot goes to the sweep before the next allocation could reuse it. */
static bool stress_heavy(void) {
    const char *s = getenv("GCPIN_STRESS");
    return s && atoi(s) > 0 && atoi(s) < 100;
}

TEST(malloc_kinds_are_zeroed_distinct_and_sized) {
    GC_INIT();
    CHECK(GC_is_init_called());
    char *a = GC_MALLOC(100);
    char *b = GC_MALLOC_ATOMIC(100);
    void *z1 = GC_malloc(0), *z2 = GC_malloc(0);
    REQUIRE(a && b && z1 && z2);
    CHECK(all_zero(a, 100) && all_zero(b, 100));
    CHECK(z1 != z2);                 /* size 0: distinct objects, as in libgc */
    CHECK_EQ(GC_base(z1), z1);
    CHECK_GE(GC_size(a), 100);
    CHECK_EQ(GC_base(a + 57), a);    /* interior pointers find their object */
    CHECK(GC_is_heap_ptr(a + 99));
    int local = 0;
    CHECK(!GC_is_heap_ptr(&local));
    CHECK_EQ(GC_base(&local), NULL);
    int *n = GC_NEW(int);
    double *d = GC_NEW_ATOMIC(double);
    CHECK(n && d && *n == 0 && *d == 0.0);
    CHECK(GC_malloc_ignore_off_page(1 << 20) != NULL);
    CHECK(GC_MALLOC_ATOMIC_IGNORE_OFF_PAGE(64) != NULL);
}

TEST(realloc_follows_libgc_rules) {
    CHECK(GC_REALLOC(NULL, 40) != NULL); /* NULL: a new object */
    uint64_t *p = GC_MALLOC(256);
    REQUIRE(p);
    fill_words(p, 32, 7);
    /* Within the object and at least half of it: in place, the tail zeroed. */
    uint64_t *q = GC_REALLOC(p, 200);
    CHECK_EQ(q, p);
    CHECK(words_intact(q, 25, 7));
    CHECK(all_zero((char *)q + 200, GC_size(q) - 200));
    /* Growing: a new object with the old contents. */
    uint64_t *r = GC_REALLOC(q, 100000);
    REQUIRE(r);
    CHECK(r != q);
    CHECK(words_intact(r, 25, 7));
    CHECK_GE(GC_size(r), 100000);
    /* Shrinking below half: a new, smaller object with the first bytes. */
    uint64_t *s = GC_REALLOC(r, 64);
    REQUIRE(s);
    CHECK(s != r);
    CHECK(words_intact(s, 8, 7));
    CHECK_LT(GC_size(s), 1000);
    /* Size 0 frees and returns NULL. */
    CHECK_EQ(GC_REALLOC(s, 0), NULL);
    CHECK_EQ(GC_base(s), NULL);
}

static NOINLINE uintptr_t make_uncollectable(size_t size, bool atomic) {
    uint64_t *p = atomic ? GC_MALLOC_ATOMIC_UNCOLLECTABLE(size) : GC_MALLOC_UNCOLLECTABLE(size);
    if (p) fill_words(p, size / 8, 99);
    return HIDE(p);
}

TEST(uncollectable_objects_survive_until_freed_and_realloc_keeps_the_kind) {
    uintptr_t h = make_uncollectable(512, false);
    uintptr_t ha = make_uncollectable(512, true);
    REQUIRE(UNHIDE(h) != NULL && UNHIDE(ha) != NULL);
    CHECK_GE(GC_get_non_gc_bytes(), 1024);
    collect_hard();
    collect_hard();
    CHECK_EQ(gc_verify_heap(), GC_OK); /* with uncollectable objects in the heap */
    CHECK(GC_base(UNHIDE(h)) == UNHIDE(h));   /* still allocated */
    CHECK(words_intact(UNHIDE(h), 64, 99));
    CHECK(words_intact(UNHIDE(ha), 64, 99));
    /* Realloc to a new object keeps it uncollectable. */
    uintptr_t h2 = HIDE(GC_REALLOC(UNHIDE(h), 5000));
    REQUIRE(UNHIDE(h2) != NULL);
    collect_hard();
    CHECK(GC_base(UNHIDE(h2)) == UNHIDE(h2));
    CHECK(words_intact(UNHIDE(h2), 64, 99));
    GC_FREE(UNHIDE(h2));
    GC_FREE(UNHIDE(ha));
    CHECK_EQ(GC_base(UNHIDE(h2)), NULL);
    CHECK_EQ(GC_base(UNHIDE(ha)), NULL);
    CHECK_EQ(gc_verify_heap(), GC_OK);
}

TEST(free_releases_the_slot_at_once_and_it_is_reused) {
    for (size_t size = 16; size <= 4096; size *= 4) {
        void *p = GC_MALLOC(size);
        REQUIRE(p);
        GC_FREE(p);
        CHECKF(GC_base(p) == NULL, "size %zu: freed object still allocated", size);
        if (stress_heavy()) continue;
        bool reused = false;
        /* A stress collection between the free and the malloc sends the slot
         * to the sweep instead: try a few times. */
        for (int i = 0; i < 5 && !reused; i++) {
            void *q = GC_MALLOC(size);
            REQUIRE(q);
            GC_FREE(q);
            void *r = GC_MALLOC(size);
            reused = r == q;
        }
        CHECKF(reused, "size %zu: a freed slot was not handed out again", size);
    }
    /* A large object's pages go back to the page heap at once. */
    void *big = GC_MALLOC_ATOMIC(1 << 20);
    REQUIRE(big);
    GC_word gc_no = GC_get_gc_no();
    GC_FREE(big);
    CHECK_EQ(GC_base(big), NULL);
    size_t freed = GC_get_expl_freed_bytes_since_gc();
    /* A cycle that ended meanwhile (a concurrent one, GCPIN_CONCURRENT=1,
     * ends whenever it is done) starts the count again. */
    CHECK(freed > 0 || stress_heavy() || GC_get_gc_no() != gc_no);
    CHECK_EQ(gc_verify_heap(), GC_OK);
}

/* Kept alive by this array (a root) through a collection, so that the objects
 * are in spans that are not this thread's current span: full ones, and after
 * the collection partial ones in the central lists. */
static void *old_objects[20000];

static NOINLINE void fill_and_free_old_objects(uintptr_t *freed, int n) {
    for (int i = 0; i < n; i++) old_objects[i] = GC_MALLOC(48);
    gc_collect();
    for (int i = 0; i < n; i += 2) {
        freed[i / 2] = HIDE(old_objects[i]);
        GC_FREE(old_objects[i]);
        old_objects[i] = NULL;
    }
}

TEST(free_of_old_objects_in_uncached_spans_keeps_the_heap_consistent) {
    static uintptr_t freed[10000];
    GC_set_warn_proc(count_warning);
    fill_and_free_old_objects(freed, 20000);
    CHECK_EQ(atomic_load(&warnings), 0);
    for (int i = 0; i < 10000; i++) CHECKF(GC_base(UNHIDE(freed[i])) == NULL, "object %d still allocated", i);
    for (int i = 1; i < 20000; i += 2) CHECKF(GC_base(old_objects[i]) == old_objects[i], "object %d was freed", i);
    /* Reuse them: every new object is zeroed and distinct from live ones. */
    for (int i = 0; i < 10000; i++) {
        uint64_t *p = GC_MALLOC(48);
        REQUIRE(p);
        CHECK(all_zero(p, 48));
        fill_words(p, 6, (uint64_t)i);
    }
    CHECK_EQ(gc_verify_heap(), GC_OK);
}

static atomic_int pinned_finalized;
static void note_pinned_finalized(void *obj, void *cd) {
    (void)obj;
    (void)cd;
    atomic_fetch_add(&pinned_finalized, 1);
}

static NOINLINE uintptr_t pin_and_free(gc_pinner *pinner) {
    uint64_t *p = GC_MALLOC(128);
    if (!p) return 0;
    fill_words(p, 16, 5);
    GC_REGISTER_FINALIZER(p, note_pinned_finalized, NULL, NULL, NULL);
    CHECK_STATUS(pinner_pin(pinner, p), GC_OK);
    GC_FREE(p); /* pinned: must not be freed */
    return HIDE(p);
}

TEST(one_heap_gc_malloc_memory_can_be_pinned_and_free_spares_pinned_objects) {
    static gc_pinner pinner; /* a root: in the data segment */
    uintptr_t h = pin_and_free(&pinner);
    REQUIRE(h != 0);
    CHECK(is_pinned(UNHIDE(h)));
    collect_hard();
    CHECK_EQ(GC_base(UNHIDE(h)), UNHIDE(h));
    CHECK(words_intact(UNHIDE(h), 16, 5));
    CHECK_EQ(atomic_load(&pinned_finalized), 0);
    pinner_unpin(&pinner);
    /* Unpinned, it is collected as usual: its finalizer runs. */
    CHECK(collect_until(&pinned_finalized, 1, 10));
}

TEST(bad_pointers_to_free_realloc_size_warn_and_change_nothing) {
    GC_set_warn_proc(count_warning);
    CHECK(GC_get_warn_proc() == count_warning);
    char *p = GC_MALLOC(64);
    REQUIRE(p);
    int local;
    void *m = malloc(32);
    GC_FREE(NULL); /* NULL: nothing, silently */
    CHECK_EQ(atomic_load(&warnings), 0);
    GC_FREE(&local);
    GC_FREE(m);
    GC_FREE(p + 8); /* interior */
    CHECK_EQ(atomic_load(&warnings), 3);
    CHECK_EQ(GC_base(p), p);      /* the object is untouched */
    CHECK_EQ(GC_REALLOC(p + 8, 100), NULL);
    CHECK_EQ(GC_REALLOC(&local, 100), NULL);
    CHECK_EQ(GC_size(p + 8), 0);
    CHECK_EQ(GC_size(m), 0);
    CHECK_EQ(atomic_load(&warnings), 7);
    GC_FREE(p);
    GC_FREE(p); /* double free */
    CHECK_EQ(atomic_load(&warnings), 8);
    CHECK_EQ(GC_size(NULL), 0);
    free(m);
    CHECK_EQ(gc_verify_heap(), GC_OK);
    GC_set_warn_proc(GC_ignore_warn_proc);
    GC_FREE(&local);
    CHECK_EQ(atomic_load(&warnings), 8);
}

TEST(strings_are_copied_into_atomic_memory) {
    char *s = GC_STRDUP("hello, libgc");
    REQUIRE(s);
    CHECK(strcmp(s, "hello, libgc") == 0);
    CHECK_EQ(GC_base(s), s);
    char *t = GC_STRNDUP("truncated here", 9);
    REQUIRE(t);
    CHECK(strcmp(t, "truncated") == 0);
    CHECK_EQ(GC_strdup(NULL), NULL);
}

TEST(memalign_gives_aligned_objects) {
    for (size_t align = 8; align <= 65536; align *= 2) {
        void *p = GC_memalign(align, 100);
        REQUIRE(p);
        CHECKF((uintptr_t)p % align == 0, "align %zu: %p", align, p);
        CHECKF(GC_base(p) != NULL, "align %zu: not in the heap", align);
        void *q = NULL;
        if (align >= sizeof(void *)) {
            CHECK_EQ(GC_posix_memalign(&q, align, 3000), 0);
            CHECKF(q && (uintptr_t)q % align == 0, "posix_memalign %zu: %p", align, q);
        }
    }
    void *q = NULL;
    CHECK_EQ(GC_posix_memalign(&q, 24, 100), EINVAL);
    CHECK_EQ(GC_posix_memalign(&q, 4, 100), EINVAL);
}

TEST(malloc_many_returns_a_linked_list) {
    void *list = GC_malloc_many(32);
    REQUIRE(list);
    int n = 0;
    for (void *p = list; p; p = GC_NEXT(p)) {
        CHECK_EQ(GC_base(p), p);
        CHECK_GE(GC_size(p), 32);
        n++;
    }
    CHECK_GT(n, 1);
}

static atomic_size_t oom_asked;
static char oom_spare[64];
static void *on_oom(size_t bytes) {
    atomic_store(&oom_asked, bytes);
    return oom_spare;
}

TEST(failed_allocation_calls_the_oom_function) {
    GC_set_max_heap_size(64 << 20);
    GC_set_oom_fn(on_oom);
    CHECK(GC_get_oom_fn() == on_oom);
    void *p = GC_MALLOC_ATOMIC((size_t)256 << 20);
    CHECK_EQ(p, (void *)oom_spare);
    CHECK_EQ(atomic_load(&oom_asked), (size_t)256 << 20);
    GC_set_max_heap_size(0);
    CHECK(GC_MALLOC_ATOMIC((size_t)80 << 20) != NULL);
}
