/* Weak references (Go's weak.Pointer): gc_weak_make and gc_weak_get. A handle
 * gives back exactly the pointer it was made for while the object is
 * reachable, and NULL from the collection that finds it unreachable on (before
 * any finalizer of it runs, even one that revives it); handles are canonical,
 * collected objects that keep nothing alive; a pinned object's handle is never
 * cleared; reading is safe from any thread during collections. */
#include "check.h"

#define N 1000

/* libgc's explicit free, exported by libgcpin (declared in gc.h, which this
 * test does not include beside gcpin.h). */
extern void GC_free(void *p);

/* Handles live in this global array (a root): handles keep nothing alive. */
static gc_weak *handles[N];
static uintptr_t hidden[N];

static int global_word;

TEST(null_and_non_heap_pointers_give_no_handle) {
    CHECK(gc_weak_make(NULL) == NULL);
    CHECK(gc_weak_get(NULL) == NULL);
    int local = 0;
    void *m = malloc(32);
    REQUIRE(m != NULL);
    void *outside[] = {&local, m, &global_word, gc_alloc(0)};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        errno = 0;
        CHECK(gc_weak_make(outside[i]) == NULL);
        CHECK_EQ(errno, EINVAL);
    }
    free(m);
}

static void *make64(void) { return gc_alloc(64); }

TEST(a_free_slot_gives_no_handle) {
    REQUIRE(make_freed_slots(make64, hidden, N));
    int handed = 0;
    for (int i = 0; i < N; i++) {
        errno = 0;
        gc_weak *w = gc_weak_make(UNHIDE(hidden[i]));
        if (w != NULL) {
            handed++; /* a slot a stale word kept allocated */
        } else {
            CHECK_EQ(errno, EINVAL);
        }
    }
    CHECK_LE(handed, N / 10);
}

TEST(get_returns_exactly_the_pointer_given_while_reachable) {
    char *p = gc_alloc(256);
    REQUIRE(p != NULL);
    gc_weak *base = gc_weak_make(p);
    gc_weak *inner = gc_weak_make(p + 100);
    REQUIRE(base != NULL && inner != NULL);
    for (int i = 0; i < 5; i++) {
        CHECK(gc_weak_get(base) == p);
        CHECK(gc_weak_get(inner) == p + 100);
        collect_hard();
    }
    escape(p);
    CHECK(gc_weak_get(base) == p);
}

TEST(handles_are_canonical_while_alive) {
    char *p = gc_alloc(64);
    REQUIRE(p != NULL);
    gc_weak *a = gc_weak_make(p);
    REQUIRE(a != NULL);
    CHECK(gc_weak_make(p) == a);
    collect_hard();
    CHECK(gc_weak_make(p) == a);
    gc_weak *b = gc_weak_make(p + 8);
    CHECK(b != NULL && b != a);
    CHECK(gc_weak_make(p + 8) == b);
    escape(p);
    escape(a);
}

static NOINLINE void make_weak_garbage(size_t size) {
    for (int i = 0; i < N; i++) {
        char *p = gc_alloc(size);
        REQUIRE(p != NULL);
        handles[i] = gc_weak_make(p + i % 16);
        REQUIRE(handles[i] != NULL);
        CHECK(gc_weak_get(handles[i]) == p + i % 16);
        hidden[i] = HIDE(p);
    }
}

static int count_set(void) {
    int n = 0;
    for (int i = 0; i < N; i++) n += gc_weak_get(handles[i]) != NULL;
    return n;
}

TEST(get_is_null_once_the_object_is_unreachable) {
    make_weak_garbage(48);
    collect_hard();
    collect_hard();
    int left = count_set();
    CHECKF(left <= N / 10, "%d of %d handles still give their object", left, N);
    /* A cleared handle stays cleared. */
    for (int i = 0; i < N; i++) {
        void *before = gc_weak_get(handles[i]);
        collect_hard();
        if (before == NULL) CHECK(gc_weak_get(handles[i]) == NULL);
        if (i >= 20) break;
    }
}

TEST(large_objects_are_cleared_too) {
    make_weak_garbage(40000);
    collect_hard();
    collect_hard();
    CHECK_LE(count_set(), N / 10);
}

/* Go's rule: the weak reference is NULL before the finalizer runs, and stays
 * NULL though the finalizer revives the object. */
static atomic_int fin_ran, fin_saw_live_ref;
static void *revived[N];

static void reviving_finalizer(void *obj, void *arg) {
    intptr_t i = (intptr_t)arg;
    if (gc_weak_get(handles[i]) != NULL) atomic_fetch_add(&fin_saw_live_ref, 1);
    revived[i] = obj;
    atomic_fetch_add(&fin_ran, 1);
}

static NOINLINE void make_weak_garbage_with_finalizers(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(32);
        REQUIRE(p != NULL);
        handles[i] = gc_weak_make(p);
        REQUIRE(handles[i] != NULL);
        CHECK_STATUS(gc_set_finalizer(p, reviving_finalizer, (void *)(intptr_t)i), GC_OK);
    }
}

TEST(cleared_before_the_finalizer_runs_even_if_it_revives) {
    make_weak_garbage_with_finalizers();
    bool enough = collect_until(&fin_ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d finalizers ran", atomic_load(&fin_ran), N);
    CHECK_EQ(atomic_load(&fin_saw_live_ref), 0);
    /* The revived objects are alive (in revived[]), their handles stay NULL,
     * and a new handle for a revived object gives it back. */
    collect_hard();
    int revived_ok = 0;
    for (int i = 0; i < N; i++) {
        if (revived[i] == NULL) continue;
        CHECK(gc_weak_get(handles[i]) == NULL);
        gc_weak *again = gc_weak_make(revived[i]);
        CHECK(again != NULL && again != handles[i]);
        CHECK(gc_weak_get(again) == revived[i]);
        revived_ok++;
    }
    CHECK_GE(revived_ok, N * 9 / 10);
}

static gc_pinner pinner;

static NOINLINE void make_pinned_unreferenced(void) {
    for (int i = 0; i < N; i++) {
        char *p = gc_alloc(64);
        REQUIRE(p != NULL);
        CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
        handles[i] = gc_weak_make(p + 1);
        hidden[i] = HIDE(p);
    }
}

TEST(a_pinned_objects_weak_reference_is_never_cleared) {
    make_pinned_unreferenced();
    for (int r = 0; r < 4; r++) collect_hard();
    for (int i = 0; i < N; i++) CHECK(gc_weak_get(handles[i]) == (char *)UNHIDE(hidden[i]) + 1);
    pinner_unpin(&pinner);
    collect_hard();
    collect_hard();
    CHECK_LE(count_set(), N / 10);
}

TEST(an_explicit_free_clears_at_once) {
    void *p = gc_alloc(64);
    REQUIRE(p != NULL);
    gc_weak *w = gc_weak_make(p);
    REQUIRE(gc_weak_get(w) == p);
    GC_free(p);
    CHECK(gc_weak_get(w) == NULL);
    void *q = gc_alloc(64); /* may reuse the slot: the handle stays NULL */
    CHECK(gc_weak_get(w) == NULL);
    gc_weak *wq = gc_weak_make(q);
    CHECK(wq != w && gc_weak_get(wq) == q);
    /* Freeing a handle explicitly drops it: the next handle is new. */
    GC_free(wq);
    gc_weak *wq2 = gc_weak_make(q);
    CHECK(wq2 != NULL && gc_weak_get(wq2) == q);
    escape(q);
}

/* Handles only hidden: they are collected, the objects stay. */
static void *kept[N];

static NOINLINE void make_handles(void) {
    for (int i = 0; i < N; i++) {
        kept[i] = gc_alloc(32);
        REQUIRE(kept[i] != NULL);
        handles[i] = gc_weak_make(kept[i]);
    }
}

TEST(handles_are_collected_objects_counted_in_stats) {
    CHECK_EQ(check_stats().weak_handles, 0);
    make_handles();
    collect_hard();
    CHECK_EQ(check_stats().weak_handles, N);
    memset(handles, 0, sizeof handles);
    escape(handles);
    collect_hard();
    collect_hard();
    uint64_t left = check_stats().weak_handles;
    CHECKF(left <= N / 10, "%" PRIu64 " of %d unreferenced handles alive", left, N);
    /* Once a handle died, making one again gives a working (new) handle. */
    for (int i = 0; i < N; i++) {
        handles[i] = gc_weak_make(kept[i]);
        CHECK(handles[i] != NULL && gc_weak_get(handles[i]) == kept[i]);
        if (i < 2) {
            collect_hard();
            CHECK(gc_weak_get(handles[i]) == kept[i]);
        }
    }
    CHECK_EQ(check_stats().weak_handles, N);
}

/* A million objects with a handle each, all dropped: their memory comes back. */
static NOINLINE void make_many_weak(size_t n) {
    for (size_t i = 0; i < n; i++) {
        void *p = gc_alloc(16);
        REQUIRE(p != NULL);
        gc_weak *w = gc_weak_make(p);
        REQUIRE(w != NULL && gc_weak_get(w) == p);
    }
}

TEST_TIMEOUT(a_million_handles_and_objects_are_collected, 240) {
    size_t n = check_size(1000000);
    make_many_weak(n);
    collect_hard();
    collect_hard();
    gc_stats st = check_stats();
    CHECKF(st.heap_alloc_bytes < (4u << 20), "%" PRIu64 " bytes still allocated", st.heap_alloc_bytes);
    CHECKF(st.weak_handles < 1000, "%" PRIu64 " handles alive", st.weak_handles);
    /* Handles keep working after the table shrank. */
    void *p = gc_alloc(16);
    gc_weak *w = gc_weak_make(p);
    CHECK(w != NULL && gc_weak_get(w) == p && gc_weak_make(p) == w);
    escape(p);
}

/* Four threads create objects and handles and read handles (theirs and the
 * others') while a fifth collects. A pointer a handle gives must be to an
 * intact object: the slot is filled with its own address, and freed slots are
 * reused and overwritten by the churn. */
#define RING 64
#define WORKERS 4
static gc_weak *shared[WORKERS][RING];
static atomic_int stop_flag, bad_reads, good_reads, done_workers;

struct tagged {
    uintptr_t self[4];
};

static void *worker(void *arg) {
    intptr_t me = (intptr_t)arg;
    struct tagged *keep[RING / 2] = {0};
    size_t rounds = check_size(20000);
    for (size_t r = 0; r < rounds && !atomic_load(&stop_flag); r++) {
        struct tagged *t = gc_alloc(sizeof *t);
        if (t == NULL) break;
        for (int k = 0; k < 4; k++) t->self[k] = (uintptr_t)t;
        gc_weak *w = gc_weak_make(&t->self[2]);
        if (w == NULL || gc_weak_get(w) != &t->self[2] || gc_weak_make(&t->self[2]) != w) atomic_fetch_add(&bad_reads, 1);
        __atomic_store_n(&shared[me][r % RING], w, __ATOMIC_RELEASE);
        if (r % 2) keep[(r / 2) % (RING / 2)] = t; /* half stay alive a while */
        for (int o = 0; o < WORKERS; o++) {
            gc_weak *x = __atomic_load_n(&shared[o][(r * 7 + o) % RING], __ATOMIC_ACQUIRE);
            if (x == NULL) continue;
            uintptr_t *q = gc_weak_get(x);
            if (q == NULL) continue;
            struct tagged *obj = (struct tagged *)(q - 2);
            bool ok = true;
            for (int k = 0; k < 4; k++) ok &= obj->self[k] == (uintptr_t)obj;
            atomic_fetch_add(ok ? &good_reads : &bad_reads, 1);
        }
        churn_classes(1);
    }
    escape(keep);
    atomic_fetch_add(&done_workers, 1);
    return NULL;
}

TEST_TIMEOUT(four_threads_make_and_read_during_collections, 240) {
    pthread_t t[WORKERS];
    for (intptr_t i = 0; i < WORKERS; i++) start_thread(&t[i], worker, (void *)i);
    int cycles = 0;
    while (atomic_load(&done_workers) < WORKERS) {
        gc_collect();
        cycles++;
        sleep_ms(1);
    }
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    CHECK_EQ(atomic_load(&bad_reads), 0);
    CHECK_GT(atomic_load(&good_reads), 0);
    CHECK_GT(cycles, 0);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* A thread that never called gcpin reads a handle: it is registered first. */
static void *reader(void *arg) {
    return gc_weak_get(arg);
}

TEST(an_unregistered_thread_can_read) {
    void *p = gc_alloc(32);
    gc_weak *w = gc_weak_make(p);
    pthread_t t;
    void *got = NULL;
    start_thread(&t, reader, w);
    pthread_join(t, &got);
    CHECK(got == p);
    escape(p);
}
