/* The leak check (Go's TestPinnerLeakPanics): a pinner found unreachable while
 * it still holds pins is reported once, with the number of objects it pins, and
 * those objects stay pinned. The default report aborts with a message. Pinners
 * that live where the collector looks, or that were unpinned, are never
 * reported. */
#include "check.h"

#define LEAK_MESSAGE "gcpin: found leaking pinned pointer; forgot to call pinner_unpin()?"

/* The custom handler records each call's count; `arg` must be &leak_cookie. */
static int leak_cookie;
static atomic_int leak_calls;
static atomic_int leak_bad_arg;
#define MAX_COUNT 64
static atomic_int calls_with_count[MAX_COUNT + 1];

static void on_leak(size_t pinned_objects, void *arg) {
    if (arg != &leak_cookie) atomic_fetch_add(&leak_bad_arg, 1);
    if (pinned_objects <= MAX_COUNT) atomic_fetch_add(&calls_with_count[pinned_objects], 1);
    atomic_fetch_add(&leak_calls, 1);
}

#define OBJ_SIZE 48

/* Pins `n` new objects through a pinner on this frame's stack, then returns
 * without pinner_unpin: the pinner is gone. Only hidden addresses remain. */
static NOINLINE void leak_a_pinner(int n, uintptr_t *hidden) {
    gc_pinner pinner = {0};
    for (int i = 0; i < n; i++) {
        void *p = gc_alloc(OBJ_SIZE);
        REQUIRE(p != NULL);
        pattern_fill(p, OBJ_SIZE, HIDE(p));
        CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
        hidden[i] = HIDE(p);
    }
    escape(&pinner);
}

/* Overwrites freed slots of OBJ_SIZE: a leaked object wrongly freed would be
 * reused and overwritten. */
static NOINLINE void churn(void) {
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20000; i++) {
            unsigned char *g = gc_alloc(OBJ_SIZE);
            REQUIRE(g != NULL);
            memset(g, 0xCC, OBJ_SIZE);
        }
        collect_hard();
    }
}

/* Eight pinners with 1..8 objects each, all dropped. Each must be reported
 * once with its own count; a stale word may hide one pinner at most. */
#define PINNERS 8
static uintptr_t leaked[PINNERS + 1][PINNERS];

TEST(leaked_pinner_is_reported_once_with_its_count_and_its_objects_stay_pinned) {
    gc_set_pinner_leak_handler(on_leak, &leak_cookie);
    for (int n = 1; n <= PINNERS; n++) leak_a_pinner(n, leaked[n]);
    collect_until(&leak_calls, PINNERS, 10);
    CHECKF(atomic_load(&leak_calls) >= PINNERS - 1, "only %d of %d leaked pinners were reported",
           atomic_load(&leak_calls), PINNERS);
    CHECK_EQ(atomic_load(&leak_bad_arg), 0);
    for (int n = 0; n <= MAX_COUNT; n++) {
        int calls = atomic_load(&calls_with_count[n]);
        CHECKF(calls <= 1, "a pinner of %d objects was reported %d times", n, calls);
        CHECKF(calls == 0 || (n >= 1 && n <= PINNERS), "a report of %d objects: no pinner pinned that many", n);
    }
    /* More collections: no second report, and every leaked object stays pinned,
     * allocated and intact (the kernel might still be writing into it). */
    int calls_before = atomic_load(&leak_calls);
    churn();
    wait_for_count(&leak_calls, calls_before + 1, 0.2);
    CHECK_EQ(atomic_load(&leak_calls), calls_before);
    gc_stats s;
    gc_get_stats(&s);
    for (int n = 1; n <= PINNERS; n++) {
        for (int i = 0; i < n; i++) {
            void *p = UNHIDE(leaked[n][i]);
            CHECKF(is_pinned(p), "object %d of leaked pinner %d is no longer pinned", i, n);
            CHECKF(gc_pin_count(p) == 1, "object %d of leaked pinner %d: pin count %zu", i, n, gc_pin_count(p));
            CHECKF(gc_check_pointer(p) == GC_OK, "object %d of leaked pinner %d was freed", i, n);
            CHECKF(pattern_ok(p, OBJ_SIZE, HIDE(p)), "object %d of leaked pinner %d was overwritten", i, n);
        }
    }
    CHECK_EQ(s.pinned_objects, PINNERS * (PINNERS + 1) / 2);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

TEST(pinner_in_plain_malloc_memory_is_reported_as_leaked) {
    /* DESIGN: a gc_pinner in plain malloc memory is not seen by the collector. */
    gc_set_pinner_leak_handler(on_leak, &leak_cookie);
    gc_pinner *pinner = calloc(1, sizeof *pinner);
    REQUIRE(pinner != NULL);
    void *a = gc_alloc(OBJ_SIZE), *b = gc_alloc(OBJ_SIZE), *c = gc_alloc(OBJ_SIZE);
    REQUIRE(a && b && c);
    CHECK_STATUS(pinner_pin(pinner, a), GC_OK);
    CHECK_STATUS(pinner_pin(pinner, b), GC_OK);
    CHECK_STATUS(pinner_pin(pinner, c), GC_OK);
    CHECK_STATUS(pinner_pin(pinner, c), GC_OK); /* 3 objects, 4 pins */
    CHECKF(collect_until(&leak_calls, 1, 10), "the pinner in malloc memory was not reported");
    CHECK_EQ(atomic_load(&leak_calls), 1);
    for (int n = 0; n <= MAX_COUNT; n++)
        CHECKF(atomic_load(&calls_with_count[n]) == (n == 3), "%d reports of %d pinned objects, expected %d",
               atomic_load(&calls_with_count[n]), n, n == 3);
    CHECK(is_pinned(a) && is_pinned(b) && is_pinned(c));
    free(pinner);
}

/* ---------------------------------------------------- never reported */

static gc_pinner global_pinner;   /* bss */
static void **heap_holder;        /* a gc_alloc object holding a gc_pinner */

TEST(pinners_where_the_collector_looks_are_not_leaked) {
    gc_set_pinner_leak_handler(on_leak, &leak_cookie);
    enum { N = 4 };
    void *objs[4][N];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < N; i++) {
            objs[k][i] = gc_alloc(OBJ_SIZE);
            REQUIRE(objs[k][i] != NULL);
        }
    /* On the stack, in bss, inside a GC object, in an added root range. */
    gc_pinner stack_pinner = {0};
    heap_holder = gc_alloc(sizeof(gc_pinner));
    REQUIRE(heap_holder != NULL);
    gc_pinner *heap_pinner = (gc_pinner *)heap_holder;
    gc_pinner *root_pinner = calloc(1, sizeof *root_pinner);
    REQUIRE(root_pinner != NULL);
    REQUIRE(gc_add_roots(root_pinner, sizeof *root_pinner) == GC_OK);
    gc_pinner *pinners[4] = {&stack_pinner, &global_pinner, heap_pinner, root_pinner};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < N; i++) CHECK_STATUS(pinner_pin(pinners[k], objs[k][i]), GC_OK);
    heap_pinner = NULL;
    pinners[2] = NULL;
    escape(pinners);
    churn();
    wait_for_count(&leak_calls, 1, 0.2);
    CHECK_EQ(atomic_load(&leak_calls), 0);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < N; i++) CHECKF(is_pinned(objs[k][i]), "pinner %d: object %d not pinned", k, i);
    /* Unpinned through each, then dropped: still no report. */
    pinner_unpin(&stack_pinner);
    pinner_unpin(&global_pinner);
    pinner_unpin((gc_pinner *)heap_holder);
    pinner_unpin(root_pinner);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < N; i++) CHECKF(!is_pinned(objs[k][i]), "pinner %d: object %d still pinned", k, i);
    heap_holder = NULL;
    CHECK_STATUS(gc_remove_roots(root_pinner, sizeof *root_pinner), GC_OK);
    free(root_pinner);
    churn();
    wait_for_count(&leak_calls, 1, 0.2);
    CHECK_EQ(atomic_load(&leak_calls), 0);
}

static NOINLINE void pin_unpin_and_drop(int n) {
    gc_pinner pinner = {0};
    for (int i = 0; i < n; i++) CHECK_STATUS(pinner_pin(&pinner, gc_alloc(OBJ_SIZE)), GC_OK);
    pinner_unpin(&pinner);
    escape(&pinner);
}

TEST(unpinned_pinners_that_are_dropped_are_not_leaked) {
    gc_set_pinner_leak_handler(on_leak, &leak_cookie);
    for (int k = 0; k < 100; k++) pin_unpin_and_drop(1 + k % 12);
    churn();
    wait_for_count(&leak_calls, 1, 0.2);
    CHECK_EQ(atomic_load(&leak_calls), 0);
}

/* ---------------------------------------------------- the default handler */

static void leak_and_collect(void *arg) {
    (void)arg;
    uintptr_t hidden[PINNERS];
    /* Several leaked pinners, so that a stale word cannot hide them all. */
    for (int n = 1; n <= 4; n++) leak_a_pinner(n, hidden);
    for (int round = 0; round < 50; round++) {
        collect_hard();
        usleep(20000);
        gc_run_finalizers();
    }
    fprintf(stderr, "no abort after 50 collections\n");
}

TEST(default_handler_aborts_with_the_message) {
    expect_abort(leak_and_collect, NULL, LEAK_MESSAGE);
}

static void restore_default_then_leak(void *arg) {
    gc_set_pinner_leak_handler(on_leak, &leak_cookie);
    gc_set_pinner_leak_handler(NULL, NULL); /* back to the default */
    leak_and_collect(arg);
}

TEST(null_handler_restores_the_default) {
    expect_abort(restore_default_then_leak, NULL, LEAK_MESSAGE);
}
