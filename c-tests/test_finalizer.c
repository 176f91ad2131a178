/* Finalizers, with Go's semantics: an unreachable object's finalizer runs once,
 * with everything the object reaches still alive; the object is freed by a
 * later collection; gc_run_finalizers runs queued finalizers on the caller. */
#include "check.h"

#include <pthread.h>

#define N 1000

static atomic_int ran;
static atomic_int ran_ids[N];

static void count_finalizer(void *obj, void *arg) {
    (void)obj;
    intptr_t id = (intptr_t)arg;
    if (id >= 0 && id < N) atomic_fetch_add(&ran_ids[id], 1);
    atomic_fetch_add(&ran, 1);
}

static uintptr_t hidden[N];

/* Tests that count freed addresses keep their objects here until all N exist,
 * so the addresses are distinct: under GCPIN_STRESS=1 an object dropped early
 * is freed at once and its slot handed to the next one, and a single retained
 * slot would then count many times. */
static void *held[N];

static void release_held(void) {
    memset(held, 0, sizeof held);
    escape(held);
}

static NOINLINE void make_garbage_with_finalizers(size_t size) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(size);
        REQUIRE(p != NULL);
        CHECK_STATUS(gc_set_finalizer(p, count_finalizer, (void *)(intptr_t)i), GC_OK);
        hidden[i] = HIDE(p);
    }
}

TEST(unreachable_objects_are_finalized_exactly_once) {
    make_garbage_with_finalizers(64);
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d finalizers ran", atomic_load(&ran), N);
    /* More collections never run a finalizer again. */
    collect_hard();
    collect_hard();
    wait_for_count(&ran, N + 1, 0.2);
    for (int i = 0; i < N; i++) CHECKF(atomic_load(&ran_ids[i]) <= 1, "finalizer %d ran %d times", i,
                                       atomic_load(&ran_ids[i]));
    CHECK_LE(atomic_load(&ran), N);
}

TEST(large_unreachable_objects_are_finalized) {
    /* 1000 objects of 40000 bytes: large objects, spans of their own. */
    make_garbage_with_finalizers(40000);
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d finalizers ran", atomic_load(&ran), N);
}

/* ------------------------------------------------------ arguments and base */

/* Counted as failures inside the finalizers, so that a finalizer still running
 * when the test checks cannot make the counts disagree. */
static atomic_int bad_arg, bad_base;
static uintptr_t expected_base_hidden[N];
static int cookie;

static void base_finalizer(void *obj, void *arg) {
    intptr_t id = ((intptr_t)arg - (intptr_t)&cookie);
    if (id >= 0 && id < N) {
        if (HIDE(obj) != expected_base_hidden[id]) atomic_fetch_add(&bad_base, 1);
        atomic_fetch_add(&ran_ids[id], 1);
    } else {
        atomic_fetch_add(&bad_arg, 1);
    }
    atomic_fetch_add(&ran, 1);
}

static NOINLINE void make_finalizers_through_interior_pointers(void) {
    for (int i = 0; i < N; i++) {
        char *p = gc_alloc(256);
        REQUIRE(p != NULL);
        expected_base_hidden[i] = HIDE(p);
        /* Set through an interior pointer; the finalizer receives the base. */
        CHECK_STATUS(gc_set_finalizer(p + 1 + i % 255, base_finalizer, (char *)&cookie + i), GC_OK);
    }
}

TEST(finalizer_gets_object_base_and_its_argument) {
    make_finalizers_through_interior_pointers();
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d finalizers ran", atomic_load(&ran), N);
    CHECK_EQ(atomic_load(&bad_arg), 0);
    CHECK_EQ(atomic_load(&bad_base), 0);
}

/* ------------------------------------- what an object reaches stays alive */

/* X -> Y, both with finalizers. X's finalizer must find Y intact and must run
 * before Y's; Y is finalized by a later cycle. */
#define PAIRS 500
#define Y_SIZE 200
static atomic_int x_ran, y_ran, y_damaged_in_x, y_before_x;
static atomic_int x_done[PAIRS];

struct x_obj {
    intptr_t id;
    unsigned char *y;
};

static void y_finalizer(void *obj, void *arg) {
    (void)obj;
    intptr_t id = (intptr_t)arg;
    if (!atomic_load(&x_done[id])) atomic_fetch_add(&y_before_x, 1);
    atomic_fetch_add(&y_ran, 1);
}

static void x_finalizer(void *obj, void *arg) {
    (void)arg;
    struct x_obj *x = obj;
    if (x->id >= 0 && x->id < PAIRS) {
        if (!pattern_ok(x->y, Y_SIZE, (uintptr_t)x->id)) atomic_fetch_add(&y_damaged_in_x, 1);
        atomic_store(&x_done[x->id], 1);
    }
    atomic_fetch_add(&x_ran, 1);
}

static NOINLINE void make_pairs(void) {
    for (int i = 0; i < PAIRS; i++) {
        struct x_obj *x = gc_alloc(sizeof *x);
        unsigned char *y = gc_alloc(Y_SIZE);
        REQUIRE(x && y);
        pattern_fill(y, Y_SIZE, (uintptr_t)i);
        x->id = i;
        x->y = y;
        CHECK_STATUS(gc_set_finalizer(y, y_finalizer, (void *)(intptr_t)i), GC_OK);
        CHECK_STATUS(gc_set_finalizer(x, x_finalizer, NULL), GC_OK);
    }
}

TEST(finalizer_sees_what_its_object_reaches_alive) {
    make_pairs();
    /* One collection finds every X unreachable; their Ys are reachable from
     * objects waiting for their finalizer, so no Y finalizer may run yet. */
    scrub_stack();
    gc_collect();
    wait_for_count(&x_ran, PAIRS * 9 / 10, 5);
    CHECKF(atomic_load(&x_ran) >= PAIRS * 9 / 10, "only %d of %d X finalizers ran after one collection",
           atomic_load(&x_ran), PAIRS);
    CHECK_EQ(atomic_load(&y_before_x), 0);
    CHECK_EQ(atomic_load(&y_damaged_in_x), 0);
    /* Later cycles free X and then finalize Y. */
    bool enough = collect_until(&y_ran, PAIRS * 9 / 10, 10);
    CHECKF(enough, "only %d of %d Y finalizers ran", atomic_load(&y_ran), PAIRS);
    CHECK_EQ(atomic_load(&y_before_x), 0);
}

/* ---------------------------------------- freed by a later collection only */

static atomic_int freed_in_finalizer;

static void probe_finalizer(void *obj, void *arg) {
    (void)arg;
    /* While its finalizer runs the object is still allocated and intact. */
    if (gc_check_pointer(obj) != GC_OK || !pattern_ok(obj, 128, HIDE(obj)))
        atomic_fetch_add(&freed_in_finalizer, 1);
    atomic_fetch_add(&ran, 1);
}

static NOINLINE void make_probed_garbage(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc_noscan(128);
        REQUIRE(p != NULL);
        pattern_fill(p, 128, HIDE(p));
        CHECK_STATUS(gc_set_finalizer(p, probe_finalizer, NULL), GC_OK);
        hidden[i] = HIDE(p);
        held[i] = p;
    }
    release_held();
}

TEST(object_is_freed_by_a_later_cycle_than_its_finalizer) {
    make_probed_garbage();
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d finalizers ran", atomic_load(&ran), N);
    CHECK_EQ(atomic_load(&freed_in_finalizer), 0);
    /* After further collections the finalized objects are gone. */
    collect_hard();
    int freed = 0;
    for (int i = 0; i < N; i++) freed += gc_check_pointer(UNHIDE(hidden[i])) == GC_ERR_NOT_ALLOCATED;
    CHECKF(freed >= N * 9 / 10, "only %d of %d finalized objects were freed", freed, N);
}

/* --------------------------------------------------- clearing, replacing */

static atomic_int first_ran, second_ran;
static void first_finalizer(void *o, void *a) { (void)o; (void)a; atomic_fetch_add(&first_ran, 1); }
static void second_finalizer(void *o, void *a) { (void)o; (void)a; atomic_fetch_add(&second_ran, 1); }

static NOINLINE void make_cleared_and_replaced(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(32);
        REQUIRE(p != NULL);
        CHECK_STATUS(gc_set_finalizer(p, first_finalizer, NULL), GC_OK);
        if (i % 2 == 0) {
            CHECK_STATUS(gc_set_finalizer(p, NULL, NULL), GC_OK); /* cleared */
        } else {
            CHECK_STATUS(gc_set_finalizer(p, second_finalizer, NULL), GC_OK); /* replaced */
        }
        hidden[i] = HIDE(p);
        held[i] = p;
    }
    release_held();
}

TEST(finalizer_cleared_with_null_never_runs_and_replaced_one_runs_instead) {
    make_cleared_and_replaced();
    bool enough = collect_until(&second_ran, N / 2 * 9 / 10, 10);
    CHECKF(enough, "only %d of %d replacement finalizers ran", atomic_load(&second_ran), N / 2);
    collect_hard();
    /* The cleared objects were freed without a finalizer. */
    int freed = 0;
    for (int i = 0; i < N; i += 2) freed += gc_check_pointer(UNHIDE(hidden[i])) == GC_ERR_NOT_ALLOCATED;
    CHECKF(freed >= N / 2 * 9 / 10, "only %d of %d objects with a cleared finalizer were freed", freed, N / 2);
    CHECK_EQ(atomic_load(&first_ran), 0);
    CHECK_LE(atomic_load(&second_ran), N / 2);
}

/* ------------------------------------------------------------ resurrection */

static void **resurrected; /* a gc_alloc array in bss */
static atomic_int resurrect_ran;

static atomic_int freed_before_run; /* finalizers that found their object freed */

static void resurrect_finalizer(void *obj, void *arg) {
    intptr_t id = (intptr_t)arg;
    if (gc_check_pointer(obj) != GC_OK) atomic_fetch_add(&freed_before_run, 1);
    resurrected[id] = obj; /* reachable again */
    atomic_fetch_add(&ran_ids[id], 1);
    atomic_fetch_add(&resurrect_ran, 1);
}

static NOINLINE void make_resurrectable(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(48);
        REQUIRE(p != NULL);
        pattern_fill(p, 48, (uintptr_t)i);
        CHECK_STATUS(gc_set_finalizer(p, resurrect_finalizer, (void *)(intptr_t)i), GC_OK);
    }
}

TEST(resurrected_object_lives_and_is_not_finalized_again) {
    resurrected = gc_alloc(N * sizeof(void *));
    REQUIRE(resurrected != NULL);
    make_resurrectable();
    bool enough = collect_until(&resurrect_ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d finalizers ran", atomic_load(&resurrect_ran), N);
    collect_hard();
    collect_hard();
    wait_for_count(&resurrect_ran, N, 0.2);
    /* Resurrected objects are alive and intact. */
    int alive = 0;
    for (int i = 0; i < N; i++) {
        if (!resurrected[i]) continue;
        alive++;
        gc_status st = gc_check_pointer(resurrected[i]);
        CHECKF(st == GC_OK, "resurrected object %d at %p: gc_check_pointer says %s", i, resurrected[i],
               check_status_name(st));
        CHECKF(pattern_ok(resurrected[i], 48, (uintptr_t)i), "resurrected object %d overwritten", i);
    }
    CHECK_EQ(alive, atomic_load(&resurrect_ran));
    CHECK_EQ(atomic_load(&freed_before_run), 0);
    /* Dropped again: no finalizer runs a second time for the same object. */
    memset(resurrected, 0, N * sizeof(void *));
    collect_hard();
    collect_hard();
    wait_for_count(&resurrect_ran, N + 1, 0.3);
    for (int i = 0; i < N; i++)
        CHECKF(atomic_load(&ran_ids[i]) <= 1, "object %d finalized %d times", i, atomic_load(&ran_ids[i]));
}

/* ---------------------------------------------- finalizers may use the heap */

static atomic_int alloc_bad;

static void allocating_finalizer(void *obj, void *arg) {
    (void)obj;
    (void)arg;
    unsigned char *q = gc_alloc(1024);
    if (q && all_zero(q, 1024))
        memset(q, 0x5A, 1024);
    else
        atomic_fetch_add(&alloc_bad, 1);
    atomic_fetch_add(&ran, 1);
}

static NOINLINE void make_allocating_garbage(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(80);
        REQUIRE(p != NULL);
        CHECK_STATUS(gc_set_finalizer(p, allocating_finalizer, NULL), GC_OK);
    }
}

TEST(finalizers_may_allocate) {
    make_allocating_garbage();
    bool enough = collect_until(&ran, N * 9 / 10, 10);
    CHECKF(enough, "only %d of %d finalizers ran", atomic_load(&ran), N);
    CHECK_EQ(atomic_load(&alloc_bad), 0);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ------------------------------------- gc_run_finalizers counts what it ran */

static pthread_t main_thread;
static atomic_int ran_on_main;

static void thread_noting_finalizer(void *obj, void *arg) {
    (void)obj;
    (void)arg;
    if (pthread_equal(pthread_self(), main_thread)) atomic_fetch_add(&ran_on_main, 1);
    atomic_fetch_add(&ran, 1);
}

static NOINLINE void make_noting_garbage(void) {
    for (int i = 0; i < N; i++) {
        void *p = gc_alloc(16);
        REQUIRE(p != NULL);
        CHECK_STATUS(gc_set_finalizer(p, thread_noting_finalizer, NULL), GC_OK);
    }
}

TEST(run_finalizers_returns_how_many_ran_on_the_caller) {
    main_thread = pthread_self();
    make_noting_garbage();
    long returned = 0;
    for (int round = 0; round < 10 && atomic_load(&ran) < N * 9 / 10; round++) {
        scrub_stack();
        gc_collect();
        for (int i = 0; i < 200 && atomic_load(&ran) < N; i++) {
            returned += (long)gc_run_finalizers();
            usleep(1000);
        }
    }
    returned += (long)gc_run_finalizers();
    CHECKF(atomic_load(&ran) >= N * 9 / 10, "only %d of %d finalizers ran", atomic_load(&ran), N);
    /* Whichever thread ran the others, the calls' sum is what ran on this one. */
    CHECK_EQ(returned, atomic_load(&ran_on_main));
    CHECK_EQ(gc_run_finalizers(), 0);
}

/* ------------------------------------------------------------------ errors */

TEST(set_finalizer_rejects_null_and_non_heap_pointers) {
    int on_stack = 0;
    static int in_bss;
    void *in_malloc = malloc(64);
    REQUIRE(in_malloc != NULL);
    CHECK_STATUS(gc_set_finalizer(NULL, count_finalizer, NULL), GC_ERR_NULL);
    CHECK_STATUS(gc_set_finalizer(&on_stack, count_finalizer, NULL), GC_ERR_NOT_GC_POINTER);
    CHECK_STATUS(gc_set_finalizer(&in_bss, count_finalizer, NULL), GC_ERR_NOT_GC_POINTER);
    CHECK_STATUS(gc_set_finalizer(in_malloc, count_finalizer, NULL), GC_ERR_NOT_GC_POINTER);
    free(in_malloc);
}

/* ------------------------- finalizers never run on a freed object (stress) */

/* For 5 seconds: rounds of 1000 dropped objects whose finalizers (on the
 * finalizer thread, while this thread keeps collecting) check that their object
 * is still allocated, and resurrect it; afterwards every resurrected object must
 * still be allocated and intact. A window in which a popped finalizer record's
 * object is visible to no root shows up here as a freed object. */
#define STRESS_OBJS 1000
static void **stress_res;
static atomic_int stress_ran, stress_freed_at_run;

static void stress_finalizer(void *obj, void *arg) {
    intptr_t id = (intptr_t)arg;
    if (gc_check_pointer(obj) != GC_OK || !pattern_ok(obj, 48, (uintptr_t)id))
        atomic_fetch_add(&stress_freed_at_run, 1);
    stress_res[id] = obj;
    atomic_fetch_add(&stress_ran, 1);
}

static NOINLINE void make_stress_round(void) {
    for (int i = 0; i < STRESS_OBJS; i++) {
        void *p = gc_alloc(48);
        REQUIRE(p != NULL);
        pattern_fill(p, 48, (uintptr_t)i);
        CHECK_STATUS(gc_set_finalizer(p, stress_finalizer, (void *)(intptr_t)i), GC_OK);
    }
}

TEST(finalizers_never_see_their_object_freed_while_collections_run) {
    double end = check_now() + 5;
    int rounds = 0, freed_after = 0;
    while (check_now() < end) {
        rounds++;
        stress_res = gc_alloc(STRESS_OBJS * sizeof(void *));
        REQUIRE(stress_res != NULL);
        atomic_store(&stress_ran, 0);
        make_stress_round();
        collect_until(&stress_ran, STRESS_OBJS * 9 / 10, 10);
        collect_hard();
        wait_for_count(&stress_ran, STRESS_OBJS, 0.01);
        for (int i = 0; i < STRESS_OBJS; i++) {
            void *p = stress_res[i];
            if (p && (gc_check_pointer(p) != GC_OK || !pattern_ok(p, 48, (uintptr_t)i))) freed_after++;
        }
        stress_res = NULL;
    }
    CHECKF(atomic_load(&stress_freed_at_run) == 0, "%d finalizers (in %d rounds) found their object freed",
           atomic_load(&stress_freed_at_run), rounds);
    CHECKF(freed_after == 0, "%d resurrected objects (in %d rounds) were freed or overwritten", freed_after, rounds);
}
