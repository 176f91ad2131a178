/* Pinning: Go's pinner_test.go behaviour for C (TestPinnerSimple, ...KeepsAlive,
 * ...MultiplePinsSame, ...TwoPinner, ...PinZerosizeObj, ...PinGlobalPtr,
 * ...PinTinyObj, ...Interface, ...PinNonPtrPanics, ...EmptyUnpin), plus the C
 * API's own: errors for bad pointers, interior pointers, large objects, reuse,
 * pinner_pin_many's all-or-nothing, gc_pin_count, statistics, and pinned objects
 * (and what they point to) surviving while only C memory refers to them. */
#include "check.h"

typedef struct obj {
    int64_t x, y, z;
} obj;

static obj *new_obj(void) {
    obj *o = gc_alloc(sizeof *o);
    REQUIRE(o != NULL);
    return o;
}

/* ------------------------------------------------------ Go's basic cases */

TEST(pin_then_unpin) { /* TestPinnerSimple */
    gc_pinner pinner = {0};
    obj *p = new_obj();
    CHECK(!is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 0);
    CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
    CHECK(is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 1); /* Go: no pin counter (nil) */
    pinner_unpin(&pinner);
    CHECK(!is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 0);
}

#define KEEP_N 100
static atomic_int kept_finalized;
static void count_finalizer(void *o, void *a) {
    (void)o;
    (void)a;
    atomic_fetch_add(&kept_finalized, 1);
}
static uintptr_t kept_hidden[KEEP_N];
static gc_pinner keep_pinner; /* in bss: the collector sees it */

static NOINLINE void pin_hidden_objects(void) {
    for (int i = 0; i < KEEP_N; i++) {
        obj *p = new_obj();
        p->x = i;
        p->y = ~(int64_t)i;
        CHECK_STATUS(gc_set_finalizer(p, count_finalizer, NULL), GC_OK);
        CHECK_STATUS(pinner_pin(&keep_pinner, p), GC_OK);
        kept_hidden[i] = HIDE(p);
    }
}

TEST(pin_keeps_object_alive_and_unpin_releases_it) { /* TestPinnerPinKeepsAliveAndReleases */
    pin_hidden_objects();
    collect_hard();
    collect_hard();
    wait_for_count(&kept_finalized, 1, 0.05);
    CHECK_EQ(atomic_load(&kept_finalized), 0);
    for (int i = 0; i < KEEP_N; i++) {
        obj *p = UNHIDE(kept_hidden[i]);
        CHECKF(is_pinned(p) && p->x == i && p->y == ~(int64_t)i, "pinned object %d lost or overwritten", i);
    }
    pinner_unpin(&keep_pinner);
    CHECKF(collect_until(&kept_finalized, KEEP_N * 9 / 10, 10), "Unpin released only %d of %d objects",
           atomic_load(&kept_finalized), KEEP_N);
}

TEST(hundred_pins_of_one_object_count_and_unpin_together) { /* TestPinnerMultiplePinsSame */
    gc_pinner pinner = {0};
    obj *p = new_obj();
    CHECK(!is_pinned(p));
    for (int i = 0; i < 100; i++) {
        CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
        CHECKF(gc_pin_count(p) == (size_t)i + 1, "after %d pins the count is %zu", i + 1, gc_pin_count(p));
    }
    CHECK(is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 100);
    gc_collect();
    CHECK_EQ(gc_pin_count(p), 100); /* a collection changes no count */
    pinner_unpin(&pinner);
    CHECK(!is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 0);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

TEST(two_pinners_on_one_object) { /* TestPinnerTwoPinner */
    gc_pinner pinner1 = {0}, pinner2 = {0};
    obj *p = new_obj();
    CHECK(!is_pinned(p));
    CHECK_STATUS(pinner_pin(&pinner1, p), GC_OK);
    CHECK(is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 1);
    CHECK_STATUS(pinner_pin(&pinner2, p), GC_OK);
    CHECK(is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 2);
    pinner_unpin(&pinner1);
    CHECK(is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 1);
    pinner_unpin(&pinner2);
    CHECK(!is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 0);
}

TEST(pinning_the_zero_size_address_succeeds_and_changes_nothing) { /* TestPinnerPinZerosizeObj */
    gc_pinner pinner = {0};
    void *z = gc_alloc(0);
    REQUIRE(z != NULL);
    CHECK_STATUS(pinner_pin(&pinner, z), GC_OK);
    CHECK(is_pinned(z));
    CHECK_EQ(gc_pin_count(z), 0);
    gc_stats s;
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, 0);
    pinner_unpin(&pinner);
    CHECK(is_pinned(z)); /* unmanaged memory is always "pinned" */
    CHECK(gc_alloc(0) == z);
}

static obj *global_ptr_to_obj;
static obj global_obj;

TEST(pinning_objects_that_globals_point_to) { /* TestPinnerPinGlobalPtr */
    gc_pinner pinner = {0};
    global_ptr_to_obj = new_obj();
    CHECK_STATUS(pinner_pin(&pinner, global_ptr_to_obj), GC_OK);
    CHECK(is_pinned(global_ptr_to_obj));
    /* The global itself is not a heap object (Go ignores it; C reports it). */
    CHECK_STATUS(pinner_pin(&pinner, &global_obj), GC_ERR_NOT_GC_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, &global_ptr_to_obj), GC_ERR_NOT_GC_POINTER);
    pinner_unpin(&pinner);
    CHECK(!is_pinned(global_ptr_to_obj));
}

TEST(tiny_objects_pinned_twice) { /* TestPinnerPinTinyObj */
    enum { N = 64 };
    gc_pinner pinner = {0};
    void *addr[N];
    for (int i = 0; i < N; i++) {
        addr[i] = gc_alloc(1);
        REQUIRE(addr[i] != NULL);
        CHECK_STATUS(pinner_pin(&pinner, addr[i]), GC_OK);
        CHECK_STATUS(pinner_pin(&pinner, addr[i]), GC_OK);
        CHECKF(is_pinned(addr[i]), "tiny object %d not pinned", i);
        CHECKF(gc_pin_count(addr[i]) == 2, "tiny object %d: count %zu, expected 2", i, gc_pin_count(addr[i]));
    }
    /* Each tiny object is an object of its own: the counts did not mix. */
    for (int i = 0; i < N; i++) CHECKF(gc_pin_count(addr[i]) == 2, "tiny object %d: count %zu", i, gc_pin_count(addr[i]));
    pinner_unpin(&pinner);
    for (int i = 0; i < N; i++) {
        CHECKF(!is_pinned(addr[i]), "tiny object %d still pinned", i);
        CHECKF(gc_pin_count(addr[i]) == 0, "tiny object %d: count %zu after unpin", i, gc_pin_count(addr[i]));
    }
}

TEST(pinning_a_holder_does_not_pin_what_it_points_to) { /* TestPinnerInterface */
    gc_pinner pinner = {0};
    obj *o = new_obj();
    void **holder = gc_alloc(sizeof(void *));
    REQUIRE(holder != NULL);
    *holder = o;
    CHECK_STATUS(pinner_pin(&pinner, holder), GC_OK);
    CHECK(is_pinned(holder));
    CHECK(!is_pinned(o));
    pinner_unpin(&pinner);
    CHECK_STATUS(pinner_pin(&pinner, *holder), GC_OK);
    CHECK(is_pinned(o));
    CHECK(!is_pinned(holder));
    pinner_unpin(&pinner);
}

TEST(unpin_of_an_empty_pinner_twice_does_nothing) { /* TestPinnerEmptyUnpin */
    gc_pinner pinner = {0};
    pinner_unpin(&pinner);
    pinner_unpin(&pinner);
    /* No crash, and the pinner is still usable: */
    obj *p = new_obj();
    CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
    pinner_unpin(&pinner);
    pinner_unpin(&pinner); /* second unpin after real pins */
    CHECK(!is_pinned(p));
    CHECK_EQ(gc_pin_count(p), 0);
}

/* ------------------------------------------------------ bad pointers */

TEST(null_and_non_heap_pointers_are_rejected) { /* TestPinnerPinNonPtrPanics */
    gc_pinner pinner = {0};
    int on_stack = 0;
    static int in_bss;
    static const char in_rodata[] = "read-only data";
    void *in_malloc = malloc(64);
    REQUIRE(in_malloc != NULL);
    CHECK_STATUS(pinner_pin(&pinner, NULL), GC_ERR_NULL);
    CHECK_STATUS(pinner_pin(&pinner, &on_stack), GC_ERR_NOT_GC_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, &in_bss), GC_ERR_NOT_GC_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, in_rodata), GC_ERR_NOT_GC_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, in_malloc), GC_ERR_NOT_GC_POINTER);
    /* Memory the collector does not manage counts as pinned, with no count. */
    CHECK(is_pinned(&on_stack));
    CHECK(is_pinned(in_malloc));
    CHECK(!is_pinned(NULL));
    CHECK_EQ(gc_pin_count(&on_stack), 0);
    CHECK_EQ(gc_pin_count(NULL), 0);
    gc_stats s;
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, 0); /* nothing was pinned by the failed calls */
    pinner_unpin(&pinner);
    free(in_malloc);
}

#define FREED_N 200
static uintptr_t freed_hidden[FREED_N];
static void *make_obj(void) { return new_obj(); }

TEST(freed_slot_is_not_allocated) {
    REQUIRE(make_freed_slots(make_obj, freed_hidden, FREED_N));
    gc_pinner pinner = {0};
    int not_allocated = 0, pinned_ok = 0;
    for (int i = 0; i < FREED_N; i++) {
        void *p = UNHIDE(freed_hidden[i]);
        gc_status s = pinner_pin(&pinner, p);
        not_allocated += s == GC_ERR_NOT_ALLOCATED;
        pinned_ok += s == GC_OK; /* one a stale word kept alive */
        CHECKF(s == GC_ERR_NOT_ALLOCATED || s == GC_OK, "pinning a freed slot: %s", check_status_name(s));
        if (s == GC_ERR_NOT_ALLOCATED) {
            CHECKF(!is_pinned(p), "freed slot %d reads as pinned", i);
            CHECKF(gc_pin_count(p) == 0, "freed slot %d has a pin count", i);
        }
    }
    CHECKF(not_allocated >= FREED_N * 9 / 10, "only %d of %d freed slots reported GC_ERR_NOT_ALLOCATED",
           not_allocated, FREED_N);
    gc_stats s;
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, (uint64_t)pinned_ok);
    pinner_unpin(&pinner);
}

TEST(never_allocated_slot_is_not_allocated) {
    /* 3456-byte noscan objects: a size class nothing else in this process uses,
     * so these come from a fresh span, lowest slots first, and the slot after
     * the last one was never handed out. */
    const size_t size = 3456;
    char *a = gc_alloc_noscan(size);
    char *b = gc_alloc_noscan(size);
    REQUIRE(a && b);
    REQUIRE(b == a + size); /* consecutive slots of one span */
    char *never = b + size;
    gc_pinner pinner = {0};
    CHECK_STATUS(pinner_pin(&pinner, never), GC_ERR_NOT_ALLOCATED);
    CHECK_STATUS(pinner_pin(&pinner, never + 100), GC_ERR_NOT_ALLOCATED);
    CHECK(!is_pinned(never));
    CHECK_EQ(gc_pin_count(never), 0);
    CHECK_STATUS(gc_check_pointer(never), GC_ERR_NOT_ALLOCATED);
    /* Its live neighbours are fine. */
    CHECK_STATUS(pinner_pin(&pinner, b + size - 1), GC_OK);
    CHECK(is_pinned(b));
    CHECK(!is_pinned(a));
    pinner_unpin(&pinner);
    /* Once allocated, the slot pins normally. */
    char *c = gc_alloc_noscan(size);
    REQUIRE(c != NULL);
    if (c == never) CHECK_STATUS(pinner_pin(&pinner, never), GC_OK);
    pinner_unpin(&pinner);
}

/* ------------------------------------------- interior pointers, large objects */

TEST(interior_pointers_pin_the_whole_small_object) {
    gc_pinner pinner = {0};
    char *p = gc_alloc(64);
    char *next = gc_alloc(64);
    REQUIRE(p && next);
    CHECK_STATUS(pinner_pin(&pinner, p + 40), GC_OK);
    CHECK(is_pinned(p));
    CHECK(is_pinned(p + 63));
    CHECK_EQ(gc_pin_count(p + 1), 1);
    CHECK(!is_pinned(next)); /* the neighbour is another object */
    CHECK_STATUS(pinner_pin(&pinner, p + 63), GC_OK);
    CHECK_EQ(gc_pin_count(p), 2);
    pinner_unpin(&pinner);
    CHECK(!is_pinned(p + 40));
    CHECK_EQ(gc_pin_count(p), 0);
}

TEST(interior_pointers_pin_the_whole_large_object) {
    gc_pinner pinner = {0};
    const size_t size = 1 << 20;
    char *p = gc_alloc(size);
    REQUIRE(p != NULL);
    CHECK_STATUS(pinner_pin(&pinner, p + 5000), GC_OK);
    CHECK(is_pinned(p));
    CHECK(is_pinned(p + 777777));
    CHECK(is_pinned(p + size - 1));
    CHECK_EQ(gc_pin_count(p + 123456), 1);
    CHECK_STATUS(pinner_pin(&pinner, p + size - 1), GC_OK);
    CHECK_EQ(gc_pin_count(p), 2);
    gc_stats s;
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, 1);
    pinner_unpin(&pinner);
    CHECK(!is_pinned(p + 5000));
    CHECK(!is_pinned(p + size - 1));
    CHECK_EQ(gc_pin_count(p), 0);
}

/* ------------------------------------------------------------- reuse */

TEST(one_pinner_reused_many_times) {
    gc_pinner pinner = {0};
    enum { MAXN = 40 };
    obj *objs[MAXN];
    for (int i = 0; i < MAXN; i++) objs[i] = new_obj();
    /* Alternate small (inline store) and large (spilled) sets of pins. */
    for (int round = 0; round < 20; round++) {
        int n = (round % 4 == 3) ? MAXN : 1 + round % 6;
        for (int i = 0; i < n; i++) CHECK_STATUS(pinner_pin(&pinner, objs[(i + round) % MAXN]), GC_OK);
        for (int i = 0; i < MAXN; i++) {
            bool want = false;
            for (int k = 0; k < n; k++) want |= (k + round) % MAXN == i;
            CHECKF(is_pinned(objs[i]) == want, "round %d: object %d pinned=%d, expected %d", round, i,
                   is_pinned(objs[i]), want);
        }
        if (round % 5 == 4) gc_collect(); /* collections empty the pinner caches */
        pinner_unpin(&pinner);
        for (int i = 0; i < MAXN; i++) CHECKF(!is_pinned(objs[i]), "round %d: object %d still pinned", round, i);
    }
}

TEST(thousand_objects_through_one_pinner) {
    enum { N = 1000 };
    gc_pinner pinner = {0};
    void **objs = gc_alloc(N * sizeof(void *));
    REQUIRE(objs != NULL);
    for (int i = 0; i < N; i++) {
        objs[i] = gc_alloc(16 + (size_t)(i % 50) * 16);
        REQUIRE(objs[i] != NULL);
        CHECK_STATUS(pinner_pin(&pinner, objs[i]), GC_OK);
    }
    gc_collect();
    int pinned = 0;
    for (int i = 0; i < N; i++) pinned += is_pinned(objs[i]) && gc_pin_count(objs[i]) == 1;
    CHECK_EQ(pinned, N);
    gc_stats s;
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, N);
    pinner_unpin(&pinner);
    pinned = 0;
    for (int i = 0; i < N; i++) pinned += is_pinned(objs[i]);
    CHECK_EQ(pinned, 0);
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, 0);
}

/* ---------------------------------------------------------- pin_many */

TEST(pin_many_pins_all_or_nothing) {
    gc_pinner pinner = {0};
    obj *a = new_obj(), *b = new_obj(), *c = new_obj(), *d = new_obj();
    int on_stack = 0;
    /* Already pinned before: must survive a failed pin_many untouched. */
    CHECK_STATUS(pinner_pin(&pinner, d), GC_OK);

    const void *with_stack[] = {a, b, &on_stack, c};
    CHECK_STATUS(pinner_pin_many(&pinner, with_stack, 4), GC_ERR_NOT_GC_POINTER);
    const void *with_null[] = {a, NULL, b, c};
    CHECK_STATUS(pinner_pin_many(&pinner, with_null, 4), GC_ERR_NULL);
    /* Two bad pointers: the first one's status. */
    const void *null_then_stack[] = {a, NULL, &on_stack};
    CHECK_STATUS(pinner_pin_many(&pinner, null_then_stack, 3), GC_ERR_NULL);
    const void *stack_then_null[] = {a, &on_stack, NULL};
    CHECK_STATUS(pinner_pin_many(&pinner, stack_then_null, 3), GC_ERR_NOT_GC_POINTER);
    /* A bad pointer last, after a pointer given twice. */
    const void *bad_last[] = {a, a, b, c, &on_stack};
    CHECK_STATUS(pinner_pin_many(&pinner, bad_last, 5), GC_ERR_NOT_GC_POINTER);

    CHECK(!is_pinned(a));
    CHECK(!is_pinned(b));
    CHECK(!is_pinned(c));
    CHECK_EQ(gc_pin_count(a), 0);
    CHECK_EQ(gc_pin_count(d), 1);
    gc_stats s;
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, 1);

    /* The good case: everything pinned, duplicates counted. */
    const void *good[] = {a, b, c, a, (char *)b + 8};
    CHECK_STATUS(pinner_pin_many(&pinner, good, 5), GC_OK);
    CHECK_EQ(gc_pin_count(a), 2);
    CHECK_EQ(gc_pin_count(b), 2);
    CHECK_EQ(gc_pin_count(c), 1);
    CHECK_STATUS(pinner_pin_many(&pinner, good, 0), GC_OK); /* nothing to pin */
    pinner_unpin(&pinner);
    CHECK(!is_pinned(a) && !is_pinned(b) && !is_pinned(c) && !is_pinned(d));
}

TEST(pin_many_with_a_freed_slot_pins_nothing) {
    /* Allocated first: allocating after the probe could reuse the freed slot. */
    obj *a = new_obj(), *b = new_obj();
    REQUIRE(make_freed_slots(make_obj, freed_hidden, FREED_N));
    /* Find a slot that reports freed (without pinning anything: check_pointer). */
    void *freed = NULL;
    for (int i = 0; i < FREED_N && !freed; i++)
        if (gc_check_pointer(UNHIDE(freed_hidden[i])) == GC_ERR_NOT_ALLOCATED) freed = UNHIDE(freed_hidden[i]);
    REQUIRE(freed != NULL);
    gc_pinner pinner = {0};
    const void *ptrs[] = {a, freed, b};
    CHECK_STATUS(pinner_pin_many(&pinner, ptrs, 3), GC_ERR_NOT_ALLOCATED);
    CHECK(!is_pinned(a));
    CHECK(!is_pinned(b));
    pinner_unpin(&pinner);
}

/* ---------------------------------------------------------- gc_pin_count */

TEST(pin_count_follows_every_pin_and_unpin) {
    gc_pinner p1 = {0}, p2 = {0}, p3 = {0};
    obj *o = new_obj();
    CHECK_EQ(gc_pin_count(o), 0);
    for (int i = 0; i < 3; i++) CHECK_STATUS(pinner_pin(&p1, o), GC_OK);
    CHECK_EQ(gc_pin_count(o), 3);
    CHECK_STATUS(pinner_pin(&p2, o), GC_OK);
    CHECK_EQ(gc_pin_count(o), 4);
    const void *many[] = {o, o, o};
    CHECK_STATUS(pinner_pin_many(&p3, many, 3), GC_OK);
    CHECK_EQ(gc_pin_count(o), 7);
    pinner_unpin(&p2);
    CHECK_EQ(gc_pin_count(o), 6);
    pinner_unpin(&p1);
    CHECK_EQ(gc_pin_count(o), 3);
    CHECK(is_pinned(o));
    pinner_unpin(&p3);
    CHECK_EQ(gc_pin_count(o), 0);
    CHECK(!is_pinned(o));
    pinner_unpin(&p3);
    CHECK_EQ(gc_pin_count(o), 0);
}

TEST(pinned_objects_statistic_counts_objects_not_pins) {
    gc_pinner pinner = {0};
    enum { N = 37 };
    obj *objs[N];
    gc_stats s;
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, 0);
    for (int i = 0; i < N; i++) {
        objs[i] = new_obj();
        CHECK_STATUS(pinner_pin(&pinner, objs[i]), GC_OK);
    }
    CHECK_STATUS(pinner_pin(&pinner, objs[0]), GC_OK); /* twice: still one object */
    CHECK_STATUS(pinner_pin(&pinner, objs[5]), GC_OK);
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, N);
    gc_collect();
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, N);
    pinner_unpin(&pinner);
    gc_get_stats(&s);
    CHECK_EQ(s.pinned_objects, 0);
}

/* ------------------------------------- pinned objects referenced from C only */

#define C_ONLY_N 200
static atomic_int c_only_finalized;
static void c_only_finalizer(void *o, void *a) {
    (void)o;
    (void)a;
    atomic_fetch_add(&c_only_finalized, 1);
}

static size_t c_only_size(int i) {
    static const size_t sizes[] = {16, 48, 100, 1024, 4000, 32768, 40000, 300000};
    return sizes[i % 8];
}

static NOINLINE void pin_into_c_memory(gc_pinner *pinner, void **c_mem) {
    for (int i = 0; i < C_ONLY_N; i++) {
        size_t size = c_only_size(i);
        void *p = (i % 3) ? gc_alloc(size) : gc_alloc_noscan(size);
        REQUIRE(p != NULL);
        pattern_fill(p, size, (uintptr_t)i + 99);
        CHECK_STATUS(gc_set_finalizer(p, c_only_finalizer, NULL), GC_OK);
        CHECK_STATUS(pinner_pin(pinner, p), GC_OK);
        c_mem[i] = p; /* plain malloc memory: not a root */
    }
}

static NOINLINE void churn(void) {
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 2000; i++) {
            unsigned char *g = gc_alloc(c_only_size(i));
            REQUIRE(g != NULL);
            memset(g, 0xCC, c_only_size(i)); /* would overwrite a wrongly freed slot */
        }
        collect_hard();
    }
}

TEST(pinned_objects_referenced_only_from_malloc_memory_survive) {
    static gc_pinner pinner;
    void **c_mem = malloc(C_ONLY_N * sizeof(void *));
    REQUIRE(c_mem != NULL);
    pin_into_c_memory(&pinner, c_mem);
    churn();
    wait_for_count(&c_only_finalized, 1, 0.05);
    CHECK_EQ(atomic_load(&c_only_finalized), 0);
    for (int i = 0; i < C_ONLY_N; i++) {
        CHECKF(is_pinned(c_mem[i]), "object %d no longer pinned", i);
        CHECKF(gc_check_pointer(c_mem[i]) != GC_ERR_NOT_ALLOCATED, "pinned object %d was freed", i);
        CHECKF(pattern_ok(c_mem[i], c_only_size(i), (uintptr_t)i + 99), "pinned object %d (%zu bytes) overwritten",
               i, c_only_size(i));
    }
    CHECK_STATUS(gc_verify_heap(), GC_OK);
    pinner_unpin(&pinner);
    CHECKF(collect_until(&c_only_finalized, C_ONLY_N * 9 / 10, 10), "after unpin only %d of %d were freed",
           atomic_load(&c_only_finalized), C_ONLY_N);
    free(c_mem);
}

/* A pinned object is a root: what it points to stays alive. */
#define REACH_N 100
static atomic_int reached_finalized;
static void reached_finalizer(void *o, void *a) {
    (void)o;
    (void)a;
    atomic_fetch_add(&reached_finalized, 1);
}

static NOINLINE void pin_holders(gc_pinner *pinner, uintptr_t *hidden_holders) {
    for (int i = 0; i < REACH_N; i++) {
        void **holder = gc_alloc(4 * sizeof(void *));
        unsigned char *target = gc_alloc(80);
        REQUIRE(holder && target);
        pattern_fill(target, 80, (uintptr_t)i);
        CHECK_STATUS(gc_set_finalizer(target, reached_finalizer, NULL), GC_OK);
        holder[3] = target; /* the only reference to target */
        CHECK_STATUS(pinner_pin(pinner, holder), GC_OK);
        hidden_holders[i] = HIDE(holder);
    }
}

TEST(objects_a_pinned_object_points_to_stay_alive) {
    static gc_pinner pinner;
    static uintptr_t hidden_holders[REACH_N];
    pin_holders(&pinner, hidden_holders);
    churn();
    wait_for_count(&reached_finalized, 1, 0.05);
    CHECK_EQ(atomic_load(&reached_finalized), 0);
    for (int i = 0; i < REACH_N; i++) {
        void **holder = UNHIDE(hidden_holders[i]);
        CHECKF(pattern_ok(holder[3], 80, (uintptr_t)i), "object reached from pinned holder %d overwritten", i);
        CHECKF(!is_pinned(holder[3]), "target %d pinned, but only its holder was", i);
    }
    pinner_unpin(&pinner);
    CHECKF(collect_until(&reached_finalized, REACH_N * 9 / 10, 10), "after unpin only %d of %d targets were freed",
           atomic_load(&reached_finalized), REACH_N);
}

/* One gc_pinner used by two threads at once is a misuse gcpin reports at the
 * call, naming the cause, instead of corrupting the pinner (a crash or a
 * wrong "unpin of an object that is not pinned" later). Both threads pin and
 * unpin through one pinner until the runtime stops the process. */
#define SHARED_PINNER_OBJECTS 8
static gc_pinner shared_pinner;
static void *shared_objects[SHARED_PINNER_OBJECTS];
static atomic_int shared_started;

static void *hammer_shared_pinner(void *arg) {
    (void)arg;
    atomic_fetch_add(&shared_started, 1);
    while (atomic_load(&shared_started) < 2) {
    }
    for (long round = 0; round < 50 * 1000 * 1000L; round++) {
        for (int i = 0; i < 3; i++) pinner_pin(&shared_pinner, shared_objects[(round + i) % SHARED_PINNER_OBJECTS]);
        pinner_unpin(&shared_pinner);
    }
    return NULL;
}

static void two_threads_share_a_pinner(void *arg) {
    (void)arg;
    for (int i = 0; i < SHARED_PINNER_OBJECTS; i++) shared_objects[i] = gc_alloc(64);
    pthread_t a, b;
    start_thread(&a, hammer_shared_pinner, NULL);
    start_thread(&b, hammer_shared_pinner, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
}

TEST_TIMEOUT(one_pinner_used_by_two_threads_at_once_is_a_fatal_error_that_says_so, 60) {
    expect_abort(two_threads_share_a_pinner, NULL, "a gc_pinner was used by two threads at once");
}

/* Handing a pinner from one thread to another, one call at a time, is fine. */
static gc_pinner handed_pinner;
static void *handed_object;

static void *pin_handed(void *arg) {
    (void)arg;
    CHECK_STATUS(pinner_pin(&handed_pinner, handed_object), GC_OK);
    return NULL;
}

TEST(a_pinner_handed_to_another_thread_between_calls_works) {
    handed_object = gc_alloc(64);
    CHECK_STATUS(pinner_pin(&handed_pinner, handed_object), GC_OK);
    pthread_t t;
    start_thread(&t, pin_handed, NULL);
    pthread_join(t, NULL);
    CHECK_EQ(gc_pin_count(handed_object), 2);
    pinner_unpin(&handed_pinner);
    CHECK_EQ(gc_pin_count(handed_object), 0);
}
