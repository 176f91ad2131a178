/* Cleanups (Go's runtime.AddCleanup): gc_add_cleanup and gc_stop_cleanup.
 * fn(arg) runs once, on the finalizer thread or in gc_run_finalizers, after
 * the object became unreachable (after its finalizer, if any, once it is
 * unreachable again); the cleanup does not keep the object alive, its argument
 * is kept alive; several per object; a pending cleanup can be stopped. */
#include "check.h"

#define N 1000

extern void GC_free(void *p);

static atomic_int ran;
static atomic_int ran_ids[N];

static void count_cleanup(void *arg) {
    intptr_t id = (intptr_t)arg;
    if (id >= 0 && id < N) atomic_fetch_add(&ran_ids[id], 1);
    atomic_fetch_add(&ran, 1);
}

static void never(void *arg) {
    (void)arg;
    abort();
}

static uint64_t ids[N];
static uintptr_t hidden[N];
static int global_word;

static void *make64(void) { return gc_alloc(64); }

TEST(bad_arguments_give_id_0) {
    void *p = gc_alloc(32);
    REQUIRE(p != NULL);
    CHECK_EQ(gc_add_cleanup(p, NULL, NULL), 0);
    CHECK_EQ(gc_add_cleanup(NULL, count_cleanup, NULL), 0);
    int local;
    void *m = malloc(16);
    void *outside[] = {&local, m, &global_word, gc_alloc(0)};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        errno = 0;
        CHECK_EQ(gc_add_cleanup(outside[i], never, NULL), 0);
        CHECK_EQ(errno, EINVAL);
    }
    free(m);
    REQUIRE(make_freed_slots(make64, hidden, N));
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        uint64_t id = gc_add_cleanup(UNHIDE(hidden[i]), count_cleanup, (void *)-1);
        if (id != 0) {
            accepted++; /* a slot a stale word kept allocated */
            CHECK(gc_stop_cleanup(id));
        }
    }
    CHECK_LE(accepted, N / 10);
    CHECK(!gc_stop_cleanup(0));
    CHECK(!gc_stop_cleanup(UINT64_MAX));
    escape(p);
}

TEST(ids_are_distinct_and_nonzero) {
    char *p = gc_alloc(64);
    uint64_t a = gc_add_cleanup(p, never, NULL);
    uint64_t b = gc_add_cleanup(p + 10, never, NULL);
    uint64_t c = gc_add_cleanup(p, never, NULL);
    CHECK(a != 0 && b != 0 && c != 0 && a != b && b != c && a != c);
    CHECK_EQ(check_stats().cleanups_pending, 3);
    CHECK(gc_stop_cleanup(a) && gc_stop_cleanup(b) && gc_stop_cleanup(c));
    CHECK_EQ(check_stats().cleanups_pending, 0);
    escape(p);
}

static NOINLINE void make_garbage_with_cleanups(size_t size, int per_object) {
    for (int i = 0; i < N; i++) {
        char *p = gc_alloc(size);
        REQUIRE(p != NULL);
        for (int k = 0; k < per_object; k++) {
            uint64_t id = gc_add_cleanup(p + k, count_cleanup, (void *)(intptr_t)i);
            REQUIRE(id != 0);
        }
        hidden[i] = HIDE(p);
    }
}

TEST(unreachable_objects_cleanups_run_exactly_once) {
    make_garbage_with_cleanups(48, 1);
    CHECK_LE(check_stats().cleanups_pending, N); /* under GCPIN_STRESS some ran already */
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups ran", atomic_load(&ran), N);
    collect_hard();
    collect_hard();
    wait_for_count(&ran, N + 1, 0.2);
    for (int i = 0; i < N; i++) CHECKF(atomic_load(&ran_ids[i]) <= 1, "cleanup %d ran %d times", i,
                                       atomic_load(&ran_ids[i]));
    CHECK_LE(check_stats().cleanups_pending, (uint64_t)(N - atomic_load(&ran)));
}

TEST(several_cleanups_per_object_all_run) {
    make_garbage_with_cleanups(40000, 3); /* large objects, spans of their own */
    bool enough = collect_until(&ran, 3 * N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups ran", atomic_load(&ran), 3 * N);
    int full = 0;
    for (int i = 0; i < N; i++) {
        CHECK(atomic_load(&ran_ids[i]) == 0 || atomic_load(&ran_ids[i]) == 3);
        full += atomic_load(&ran_ids[i]) == 3;
    }
    CHECK_GE(full, N * 9 / 10);
}

TEST(cleanups_run_on_the_finalizer_thread) {
    make_garbage_with_cleanups(32, 1);
    scrub_stack();
    for (int r = 0; r < 10 && atomic_load(&ran) < N * 9 / 10; r++) {
        gc_collect();
        await_int(&ran, N * 9 / 10, 0.5); /* without gc_run_finalizers */
    }
    CHECK_GE(atomic_load(&ran), N * 9 / 10);
}

/* The argument stays alive until the cleanup runs: it is filled with a
 * pattern the cleanup checks after garbage has reused every freed slot. */
#define ARG_WORDS 8
static atomic_int arg_damaged, arg_checked;
static gc_weak *arg_handles[N];

static void check_arg_cleanup(void *arg) {
    uintptr_t *a = arg;
    bool ok = true;
    for (int k = 0; k < ARG_WORDS; k++) ok &= a[k] == (uintptr_t)a + (uintptr_t)k;
    atomic_fetch_add(ok ? &arg_checked : &arg_damaged, 1);
}

static NOINLINE void make_cleanups_with_heap_args(void) {
    for (int i = 0; i < N; i++) {
        uintptr_t *a = gc_alloc(ARG_WORDS * sizeof *a);
        void *p = gc_alloc(32);
        REQUIRE(a != NULL && p != NULL);
        for (int k = 0; k < ARG_WORDS; k++) a[k] = (uintptr_t)a + (uintptr_t)k;
        arg_handles[i] = gc_weak_make(a);
        REQUIRE(gc_add_cleanup(p, check_arg_cleanup, a) != 0);
    }
}

static void *objs[N];

static NOINLINE void drop_objs(void) {
    memset(objs, 0, sizeof objs);
    escape(objs);
}

TEST(the_argument_is_kept_alive_until_the_cleanup_runs) {
    make_cleanups_with_heap_args();
    /* The objects die at once; their arguments are reachable only from the
     * cleanups, until those run: garbage reuses every other freed slot. */
    for (int r = 0; r < 3; r++) {
        churn_classes(50);
        for (int j = 0; j < 4 * N; j++) {
            void *g = gc_alloc(ARG_WORDS * sizeof(uintptr_t));
            if (g) memset(g, 0xEE, ARG_WORDS * sizeof(uintptr_t));
        }
        scrub_stack();
        gc_collect();
    }
    bool enough = collect_until(&arg_checked, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups ran", atomic_load(&arg_checked), N);
    CHECK_EQ(atomic_load(&arg_damaged), 0);
    /* Once run, the arguments are garbage too. */
    collect_hard();
    collect_hard();
    int alive = 0;
    for (int i = 0; i < N; i++) alive += gc_weak_get(arg_handles[i]) != NULL;
    CHECK_LE(alive, N / 10);
}

static NOINLINE void make_pending_cleanups_on_kept_objects(void) {
    for (int i = 0; i < N; i++) {
        objs[i] = gc_alloc(32);
        uintptr_t *a = gc_alloc(ARG_WORDS * sizeof *a);
        REQUIRE(objs[i] != NULL && a != NULL);
        for (int k = 0; k < ARG_WORDS; k++) a[k] = (uintptr_t)a + (uintptr_t)k;
        arg_handles[i] = gc_weak_make(a);
        REQUIRE(gc_add_cleanup(objs[i], check_arg_cleanup, a) != 0);
    }
}

TEST(a_pending_cleanups_argument_survives_collections) {
    make_pending_cleanups_on_kept_objects();
    collect_hard();
    churn_classes(50);
    collect_hard();
    CHECK_EQ(atomic_load(&arg_checked) + atomic_load(&arg_damaged), 0);
    for (int i = 0; i < N; i++) CHECK(gc_weak_get(arg_handles[i]) != NULL);
    drop_objs();
    bool enough = collect_until(&arg_checked, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups ran", atomic_load(&arg_checked), N);
    CHECK_EQ(atomic_load(&arg_damaged), 0);
}

/* An argument that reaches the object keeps it alive: the cleanup never runs. */
struct holder {
    void *obj;
};

static NOINLINE void make_cleanups_whose_argument_reaches_the_object(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(32);
        struct holder *hd = gc_alloc(sizeof *hd);
        REQUIRE(p != NULL && hd != NULL);
        hd->obj = p;
        REQUIRE(gc_add_cleanup(p, count_cleanup, i % 2 ? (void *)hd : p) != 0);
        hidden[i] = HIDE(p);
    }
}

TEST(an_argument_reaching_the_object_means_the_cleanup_never_runs) {
    make_cleanups_whose_argument_reaches_the_object();
    for (int r = 0; r < 4; r++) collect_hard();
    wait_for_count(&ran, 1, 0.2);
    CHECK_EQ(atomic_load(&ran), 0);
    CHECK_EQ(check_stats().cleanups_pending, N);
}

static NOINLINE void make_stopped_cleanups(void) {
    for (int i = 0; i < N; i++) {
        void *p = objs[i] = gc_alloc(32); /* alive until stopped */
        REQUIRE(p != NULL);
        ids[i] = gc_add_cleanup(p, never, NULL);
        REQUIRE(ids[i] != 0);
        /* A second cleanup, left pending, shows when the object died. */
        REQUIRE(gc_add_cleanup(p, count_cleanup, (void *)(intptr_t)i) != 0);
    }
}

TEST(a_stopped_cleanup_never_runs) {
    make_stopped_cleanups();
    for (int i = 0; i < N; i++) CHECK(gc_stop_cleanup(ids[i]));
    for (int i = 0; i < N; i++) CHECK(!gc_stop_cleanup(ids[i])); /* stopped already */
    drop_objs();
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d objects died", atomic_load(&ran), N);
    /* never() aborts the test if a stopped cleanup runs. */
}

static NOINLINE void make_cleanups_keeping_ids(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(32);
        REQUIRE(p != NULL);
        ids[i] = gc_add_cleanup(p, count_cleanup, (void *)(intptr_t)i);
        REQUIRE(ids[i] != 0);
    }
}

TEST(stopping_a_cleanup_that_ran_is_false) {
    make_cleanups_keeping_ids();
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups ran", atomic_load(&ran), N);
    for (int i = 0; i < N; i++) {
        if (atomic_load(&ran_ids[i]) == 1) CHECK(!gc_stop_cleanup(ids[i]));
    }
}

/* After the finalizer: the cleanup sees the finalizer's mark; an object the
 * finalizer revived keeps its cleanup pending until it is dropped again. */
static atomic_int fin_done[N], cleanup_before_fin, fin_ran;
static void *revived[N];

static void marking_finalizer(void *obj, void *arg) {
    intptr_t i = (intptr_t)arg;
    atomic_store(&fin_done[i], 1);
    if (i % 2) revived[i] = obj;
    atomic_fetch_add(&fin_ran, 1);
}

static void after_fin_cleanup(void *arg) {
    intptr_t i = (intptr_t)arg;
    if (!atomic_load(&fin_done[i])) atomic_fetch_add(&cleanup_before_fin, 1);
    if (i % 2 && revived[i] != NULL) atomic_fetch_add(&cleanup_before_fin, 1);
    count_cleanup(arg);
}

static NOINLINE void make_objects_with_finalizer_and_cleanup(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(48);
        REQUIRE(p != NULL);
        REQUIRE(gc_add_cleanup(p, after_fin_cleanup, (void *)(intptr_t)i) != 0);
        CHECK_STATUS(gc_set_finalizer(p, marking_finalizer, (void *)(intptr_t)i), GC_OK);
    }
}

static NOINLINE void drop_revived(void) {
    memset(revived, 0, sizeof revived);
    escape(revived);
}

TEST(a_cleanup_runs_after_the_finalizer_and_not_while_revived) {
    make_objects_with_finalizer_and_cleanup();
    bool enough = collect_until(&ran, N / 2 * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups of unrevived objects ran", atomic_load(&ran), N / 2);
    CHECK_GE(atomic_load(&fin_ran), N * 9 / 10);
    collect_hard();
    int odd_ran = 0;
    for (int i = 1; i < N; i += 2) odd_ran += atomic_load(&ran_ids[i]);
    CHECK_EQ(odd_ran, 0); /* revived objects: pending */
    drop_revived();
    enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups ran", atomic_load(&ran), N);
    CHECK_EQ(atomic_load(&cleanup_before_fin), 0);
}

static gc_pinner pinner;

static NOINLINE void make_pinned_with_cleanups(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(32);
        REQUIRE(p != NULL);
        CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
        REQUIRE(gc_add_cleanup(p, count_cleanup, (void *)(intptr_t)i) != 0);
    }
}

TEST(a_pinned_objects_cleanup_waits_for_the_unpin) {
    make_pinned_with_cleanups();
    for (int r = 0; r < 3; r++) collect_hard();
    wait_for_count(&ran, 1, 0.2);
    CHECK_EQ(atomic_load(&ran), 0);
    pinner_unpin(&pinner);
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups ran", atomic_load(&ran), N);
}

TEST(an_explicit_free_drops_the_cleanups) {
    void *p = gc_alloc(64);
    REQUIRE(p != NULL);
    uint64_t a = gc_add_cleanup(p, never, NULL);
    REQUIRE(gc_add_cleanup(p, never, NULL) != 0);
    CHECK_EQ(check_stats().cleanups_pending, 2);
    GC_free(p);
    CHECK_EQ(check_stats().cleanups_pending, 0);
    CHECK(!gc_stop_cleanup(a));
    collect_hard();
}

/* A million objects with a cleanup each, all dropped: every cleanup runs and
 * the memory comes back. */
static atomic_int bulk_ran;

static void bulk_cleanup(void *arg) {
    (void)arg;
    atomic_fetch_add(&bulk_ran, 1);
}

static NOINLINE void make_many_cleanups(size_t n) {
    for (size_t i = 0; i < n; i++) {
        void *p = gc_alloc(16);
        REQUIRE(p != NULL && gc_add_cleanup(p, bulk_cleanup, NULL) != 0);
    }
}

TEST_TIMEOUT(a_million_cleanups_run_and_their_memory_returns, 240) {
    size_t n = check_size(1000000);
    make_many_cleanups(n);
    bool enough = collect_until(&bulk_ran, (int)(n - n / 100), 10);
    CHECKF(enough, "only %d of %zu cleanups ran", atomic_load(&bulk_ran), n);
    collect_hard();
    gc_stats st = check_stats();
    CHECKF(st.heap_alloc_bytes < (4u << 20), "%" PRIu64 " bytes still allocated", st.heap_alloc_bytes);
    CHECK_LE(st.cleanups_pending, n / 100 + 1);
}

/* Threads add and stop cleanups while others collect. */
#define WORKERS 4
static atomic_int workers_done, stop_mismatch;

static void *cleanup_worker(void *arg) {
    (void)arg;
    size_t rounds = check_size(20000);
    for (size_t r = 0; r < rounds; r++) {
        void *p = gc_alloc(32);
        if (p == NULL) break;
        uint64_t keep = gc_add_cleanup(p, bulk_cleanup, NULL);
        uint64_t cancel = gc_add_cleanup(p, never, NULL);
        if (keep == 0 || cancel == 0 || !gc_stop_cleanup(cancel)) atomic_fetch_add(&stop_mismatch, 1);
        escape(p);
        churn_classes(1);
    }
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

TEST_TIMEOUT(threads_add_and_stop_cleanups_during_collections, 240) {
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++) start_thread(&t[i], cleanup_worker, NULL);
    while (atomic_load(&workers_done) < WORKERS) {
        gc_collect();
        sleep_ms(1);
    }
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    CHECK_EQ(atomic_load(&stop_mismatch), 0);
    int total = (int)(WORKERS * check_size(20000));
    bool enough = collect_until(&bulk_ran, total * 9 / 10, 10);
    CHECKF(enough, "only %d of %d cleanups ran", atomic_load(&bulk_ran), total);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}
