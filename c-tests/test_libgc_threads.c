/* libgc's roots and thread API on gcpin: GC_add_roots/GC_remove_roots with
 * libgc's "any part of a range" removal, GC_clear_roots; GC_THREADS builds
 * where pthread_create is GC_pthread_create (the start argument is the only
 * reference to its object), explicit registration, registration from a
 * pthread key destructor while the thread exits, the stack base,
 * GC_call_with_alloc_lock, GC_pthread_sigmask. */
#define GC_THREADS 1
#include <gc.h>

#include "check.h"

static atomic_int finalized;
static void on_finalize(void *obj, void *cd) {
    (void)obj;
    (void)cd;
    atomic_fetch_add(&finalized, 1);
}

/* Roots in malloc memory, which gcpin does not scan by itself. */
static NOINLINE void **make_root_area(size_t words, int *ids) {
    void **area = calloc(words, sizeof(void *));
    REQUIRE(area);
    GC_add_roots(area, area + words);
    for (int i = 0; i < 3; i++) {
        area[ids[i]] = GC_MALLOC(64);
        REQUIRE(area[ids[i]]);
        GC_REGISTER_FINALIZER(area[ids[i]], on_finalize, NULL, NULL, NULL);
    }
    return area;
}

TEST(remove_roots_takes_out_any_part_of_an_added_range) {
    int ids[3] = {10, 500, 1000};
    void **area = make_root_area(1024, ids);
    collect_hard();
    CHECK_EQ(atomic_load(&finalized), 0); /* all three reachable through the area */
    /* A hole in the middle: only the object there becomes unreachable. */
    GC_remove_roots(area + 400, area + 600);
    CHECK(collect_until(&finalized, 1, 10));
    collect_hard();
    CHECK_EQ(atomic_load(&finalized), 1);
    CHECK(GC_base(area[10]) == area[10] && GC_base(area[1000]) == area[1000]);
    /* Both remaining pieces go with GC_clear_roots. */
    GC_clear_roots();
    CHECK(collect_until(&finalized, 3, 10));
    GC_exclude_static_roots(area, area + 1); /* accepted, changes nothing */
    free(area);
}

/* -------------------------------------------------------------- threads */

static NOINLINE void *make_arg(void) {
    uint64_t *p = GC_MALLOC(256);
    if (p) fill_words(p, 32, 77);
    return p;
}

static void *check_arg(void *arg) {
    /* The parent dropped its reference; collections ran meanwhile. */
    churn_and_collect(3);
    CHECK(GC_thread_is_registered());
    return words_intact(arg, 32, 77) ? arg : NULL;
}

static NOINLINE void start_checkers(pthread_t *t, int n) {
    for (int i = 0; i < n; i++) {
        void *arg = make_arg();
        REQUIRE(arg);
        CHECK_EQ(pthread_create(&t[i], NULL, check_arg, arg), 0); /* GC_pthread_create */
    }
}

TEST(pthread_create_keeps_the_argument_alive_and_registers_the_thread) {
    pthread_t t[4];
    start_checkers(t, 4);
    churn_and_collect(3);
    for (int i = 0; i < 4; i++) {
        void *r = (void *)1;
        CHECK_EQ(pthread_join(t[i], &r), 0); /* GC_pthread_join */
        CHECK(r != NULL);
    }
}

static void *exits_early(void *arg) {
    (void)arg;
    void *p = GC_MALLOC(32);
    pthread_exit(p); /* GC_pthread_exit */
    return NULL;
}

TEST(pthread_exit_and_detach_go_through_the_gc_versions) {
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, exits_early, NULL), 0);
    void *r = NULL;
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK(r != NULL);
    CHECK_EQ(pthread_create(&t, NULL, exits_early, NULL), 0);
    CHECK_EQ(pthread_detach(t), 0); /* GC_pthread_detach */
    churn_and_collect(2);
}

static void *registers_explicitly(void *arg) {
    (void)arg;
    /* A thread created with the real pthread_create (below) starts unregistered. */
    CHECK(!GC_thread_is_registered());
    struct GC_stack_base sb;
    CHECK_EQ(GC_get_stack_base(&sb), GC_SUCCESS);
    int here;
    CHECK((char *)sb.mem_base > (char *)&here); /* the stack grows down from its base */
    GC_allow_register_threads();
    CHECK_EQ(GC_register_my_thread(&sb), GC_SUCCESS);
    CHECK_EQ(GC_register_my_thread(&sb), GC_DUPLICATE);
    CHECK(GC_thread_is_registered());
    void *p = GC_MALLOC(64);
    CHECK(p != NULL);
    CHECK_EQ(GC_unregister_my_thread(), GC_SUCCESS);
    CHECK(!GC_thread_is_registered());
    return NULL;
}

#undef pthread_create
TEST(explicit_registration_and_unregistration) {
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, registers_explicitly, NULL), 0); /* the real one */
    CHECK_EQ(GC_pthread_join(t, NULL), 0);
}
#define pthread_create GC_pthread_create

/* A key destructor that allocates: it runs while the thread exits, after
 * gcpin may have unregistered it, and must find a working heap. */
static pthread_key_t key;
static atomic_int destructor_ok;
static uintptr_t destructor_object;

static void key_destructor(void *value) {
    (void)value;
    uint64_t *p = GC_MALLOC(128);
    if (!p) return;
    fill_words(p, 16, 5);
    destructor_object = HIDE(p);
    GC_REGISTER_FINALIZER(p, on_finalize, NULL, NULL, NULL);
    atomic_store(&destructor_ok, words_intact(p, 16, 5));
}

static void *uses_key(void *arg) {
    (void)arg;
    pthread_setspecific(key, (void *)1);
    void *p = GC_MALLOC(16);
    escape(p);
    return NULL;
}

TEST(registration_from_a_key_destructor_during_thread_exit) {
    REQUIRE(pthread_key_create(&key, key_destructor) == 0);
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, uses_key, NULL), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(atomic_load(&destructor_ok), 1);
        atomic_store(&destructor_ok, 0);
        /* The exited thread is gone from the registry: collections work. */
        churn_and_collect(2);
    }
    /* The destructors' objects are collected like any other. */
    CHECK(collect_until(&finalized, 4, 20));
}

struct locked_arg {
    GC_word before;
    GC_word during;
};

static void *under_alloc_lock(void *p) {
    struct locked_arg *a = p;
    a->before = GC_get_gc_no();
    for (int i = 0; i < 50000; i++) escape(GC_MALLOC(64)); /* may allocate, unlike libgc */
    GC_gcollect();
    a->during = GC_get_gc_no();
    return p;
}

TEST(call_with_alloc_lock_holds_off_collections) {
    struct locked_arg a = {0, 0};
    CHECK_EQ(GC_call_with_alloc_lock(under_alloc_lock, &a), &a);
    CHECK_EQ(a.during, a.before);
    GC_gcollect();
    CHECK_GT(GC_get_gc_no(), a.during);
}

static void *identity(void *p) { return p; }
static void *with_base(struct GC_stack_base *sb, void *arg) {
    int here;
    return (char *)sb->mem_base > (char *)&here ? arg : NULL;
}

TEST(blocking_and_stack_base_calls_call_their_function) {
    int x;
    CHECK_EQ(GC_do_blocking(identity, &x), &x);
    CHECK_EQ(GC_call_with_gc_active(identity, &x), &x);
    CHECK_EQ(GC_call_with_stack_base(with_base, &x), &x);
}

static void *blocks_everything(void *arg) {
    (void)arg;
    sigset_t all, now;
    sigfillset(&all);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &all, NULL), 0); /* GC_pthread_sigmask */
    CHECK_EQ(GC_pthread_sigmask(SIG_SETMASK, NULL, &now), 0);
    CHECK(!sigismember(&now, GC_get_suspend_signal())); /* still stoppable */
    CHECK(sigismember(&now, SIGUSR1));
    churn_and_collect(2);
    return NULL;
}

TEST(sigmask_never_blocks_the_suspend_signal) {
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, blocks_everything, NULL), 0);
    churn_and_collect(3); /* must be able to stop the thread */
    CHECK_EQ(pthread_join(t, NULL), 0);
}

/* Threads that free each other's objects while they allocate: the slots of
 * spans another thread allocates from are left to the sweep, those of spans
 * no thread holds are cleared under the mcentral lock; the heap stays
 * consistent either way, and no live object is freed or handed out twice.
 * Round r fills buffer r % 2; a thread frees its neighbour's round-r objects
 * while the others already allocate round r + 1 into the other buffer. */
#define XFREE_OBJECTS 4096
static void *volatile xfree_slots[4][2][XFREE_OBJECTS];
static atomic_int xfree_round;
static int xfree_n; /* objects per round: check_size(XFREE_OBJECTS) */

static void *cross_free(void *arg) {
    int me = (int)(intptr_t)arg, other = (me + 1) % 4;
    for (int r = 0; r < 40; r++) {
        void *volatile *mine = xfree_slots[me][r % 2], *volatile *theirs = xfree_slots[other][r % 2];
        for (int i = 0; i < xfree_n; i++) {
            uint64_t *p = GC_MALLOC(16 + 16 * (size_t)(i % 8));
            if (!p) return (void *)1;
            p[0] = (uint64_t)(me * 1000003 + r * 7919 + i) | 1;
            mine[i] = p;
        }
        /* Everyone has filled round r (and so has freed round r - 1). */
        atomic_fetch_add(&xfree_round, 1);
        while (atomic_load(&xfree_round) < 4 * (r + 1)) sched_yield();
        for (int i = 0; i < xfree_n; i++) {
            uint64_t *p = theirs[i];
            if (!p || p[0] != ((uint64_t)(other * 1000003 + r * 7919 + i) | 1)) return (void *)2;
            GC_FREE(p);
        }
    }
    return NULL;
}

TEST_TIMEOUT(threads_freeing_each_others_objects_keep_the_heap_consistent, 120) {
    pthread_t t[4];
    xfree_n = (int)check_size(XFREE_OBJECTS);
    for (intptr_t i = 0; i < 4; i++) CHECK_EQ(pthread_create(&t[i], NULL, cross_free, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *r = (void *)3;
        CHECK_EQ(pthread_join(t[i], &r), 0);
        CHECKF(r == NULL, "thread %d: %s", i, r == (void *)1 ? "out of memory" : "an object was overwritten");
    }
    CHECK_EQ(gc_verify_heap(), GC_OK);
}
