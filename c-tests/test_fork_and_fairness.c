/* fork() in a threaded program, and liveness of threads while others collect
 * back to back. Regression tests for bugs found in the stop-the-world code:
 * a child forked while another thread created the heap (or waited for the
 * world lock) deadlocked; a gc_collect loop starved a thread in nanosleep. */
#include <errno.h>
#include <pthread.h>

#include "check.h"

typedef struct node { struct node *next; long value; } node;

static atomic_int stop_churn;

static void *churn(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_churn)) {
        for (int i = 0; i < 1000; i++) escape(gc_alloc(64));
        if (rand() % 8 == 0) gc_collect();
    }
    return NULL;
}

/* In the child: the heap works, only this thread is registered, collections
 * keep what is reachable. Exit status 0 on success. */
static int child_body(void) {
    node *head = NULL;
    const long len = (long)check_size(20000);
    for (long i = 0; i < len; i++) {
        node *n = gc_alloc(sizeof *n);
        if (!n) return 2;
        n->next = head;
        n->value = i;
        head = n;
    }
    for (size_t i = 0; i < check_size(200000); i++) escape(gc_alloc(32));
    gc_collect();
    long expect = len - 1;
    for (node *n = head; n; n = n->next, expect--)
        if (n->value != expect) return 3;
    if (expect != -1) return 4;
    if (gc_verify_heap() != GC_OK) return 5;
    return 0;
}

TEST_TIMEOUT(fork_in_a_threaded_program_leaves_a_working_child, 120) {
    /* The children fork while the churn threads start up, allocate and collect,
     * including the first forks, racing with the heap's creation. */
    pthread_t t[2];
    for (int i = 0; i < 2; i++) REQUIRE(pthread_create(&t[i], NULL, churn, NULL) == 0);
    for (int k = 0; k < 30; k++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) _exit(child_body());
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d ended with status %#x", k, status);
    }
    atomic_store(&stop_churn, 1);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

static atomic_int stop_collecting;
static atomic_long collections;

static void *collect_loop(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_collecting)) {
        gc_collect();
        atomic_fetch_add(&collections, 1);
    }
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    gc_thread_register();
    for (int i = 0; i < 20; i++) {
        struct timespec ts = {0, 1000000}; /* 1 ms, resumed with the rest on EINTR */
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return NULL;
}

TEST_TIMEOUT(sleeping_thread_progresses_while_another_collects_in_a_loop, 60) {
    gc_collect();
    pthread_t c, s;
    REQUIRE(pthread_create(&c, NULL, collect_loop, NULL) == 0);
    double t0 = check_now();
    REQUIRE(pthread_create(&s, NULL, sleeper, NULL) == 0);
    pthread_join(s, NULL);
    double dt = check_now() - t0;
    atomic_store(&stop_collecting, 1);
    pthread_join(c, NULL);
    CHECKF(dt < 20.0, "20 sleeps of 1 ms took %.1f s", dt);
    CHECK_GT(atomic_load(&collections), 10);
}

static void *stress_allocator(void *arg) {
    (void)arg;
    for (int i = 0; i < 800; i++) escape(gc_alloc(48));
    return NULL;
}

TEST_TIMEOUT(thread_waiting_to_collect_is_not_starved_by_a_collect_loop, 60) {
    /* A thread that must collect (GCPIN_STRESS=1 makes every allocation a
     * collection) finishes while another thread collects back to back. */
    setenv("GCPIN_STRESS", "1", 1);
    gc_collect();
    pthread_t c, a;
    REQUIRE(pthread_create(&c, NULL, collect_loop, NULL) == 0);
    double t0 = check_now();
    REQUIRE(pthread_create(&a, NULL, stress_allocator, NULL) == 0);
    pthread_join(a, NULL);
    double dt = check_now() - t0;
    atomic_store(&stop_collecting, 1);
    pthread_join(c, NULL);
    CHECKF(dt < 30.0, "800 stressed allocations took %.1f s", dt);
}

/* A thread of the parent holds pins through a pinner on its own stack. In a
 * child that thread does not exist, but its stack was copied as it was: the
 * child keeps the pinner and its objects (they stay pinned), and never
 * reports the parent's pinner as leaked (the default handler would abort). */
#define FP_OBJECTS 16
static atomic_int fp_ready, fp_done;
static void *fp_objects[FP_OBJECTS];

static void *hold_pins(void *arg) {
    (void)arg;
    gc_pinner pinner = {0}; /* only on this thread's stack */
    for (int i = 0; i < FP_OBJECTS; i++) {
        void *o = gc_alloc(96);
        memset(o, 0x40 + i, 96);
        if (pinner_pin(&pinner, o) != GC_OK) abort();
        fp_objects[i] = (void *)HIDE(o); /* the pinner is the only reference */
    }
    atomic_store(&fp_ready, 1);
    while (!atomic_load(&fp_done)) sleep_ms(1);
    pinner_unpin(&pinner);
    return NULL;
}

static int pinned_child(void) {
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < check_size(50000); i++) escape(gc_alloc(96));
        gc_collect();
        gc_run_finalizers();
    }
    for (int i = 0; i < FP_OBJECTS; i++) {
        unsigned char *o = UNHIDE((uintptr_t)fp_objects[i]);
        if (!is_pinned(o)) return 2;
        for (int b = 0; b < 96; b++)
            if (o[b] != 0x40 + i) return 3;
    }
    return gc_verify_heap() == GC_OK ? 0 : 4;
}

TEST_TIMEOUT(fork_while_another_thread_holds_pins_keeps_them_in_the_child, 60) {
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, hold_pins, NULL) == 0);
    REQUIRE(await_int(&fp_ready, 1, 30));
    int bad = 0;
    for (int k = 0; k < 40; k++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) _exit(pinned_child());
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            if (bad++ == 0) check_fail(__FILE__, __LINE__, "child %d ended with status %#x", k, status);
        }
    }
    CHECKF(bad == 0, "%d of 40 children failed", bad);
    atomic_store(&fp_done, 1);
    pthread_join(t, NULL);
}
