/* Threads: the stacks and registers of every registered thread are roots;
 * a thread is stopped for a collection wherever it is (allocating, computing,
 * blocked in a system call); a thread that exits stops being a root; any thread
 * may start a collection at any time; explicit (un)registration.
 *
 * Every test does a fixed amount of work, guarded by a safety deadline that
 * fails the test when reached (and by the harness timeout), and checks what
 * survived, not only that nothing crashed. Progress that depends on another
 * thread is waited for explicitly, never assumed from timing. CHECK is safe on
 * any thread. */
#include "check.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

static double now_sec(void) { return check_now(); }


/* ---------------------------------------------------------------------------
 * Four threads build, verify and drop linked lists while another collects. */

enum { LIST_WORKERS = 4, LIST_LEN = 1500, LIST_ROUNDS = 8, PAYLOAD = 40 };

typedef struct lnode {
    struct lnode *next;
    uint64_t key;
    uint64_t sum;
    unsigned char *payload; /* gc_alloc_noscan, reachable only through the node */
} lnode;

static atomic_int workers_running;
static atomic_long collections_done;
static atomic_long rounds_done;
static atomic_long worker_rounds[LIST_WORKERS];
static double list_deadline;
/* LIST_LEN, or a quarter of it in a reduced run (`check_size`): under
 * GCPIN_STRESS=1 every allocation collects, and the full length took 14-24 s
 * of the 20 s the test allows (it failed `make stress` once so). */
static int list_len;

static uint64_t list_key(int t, int r, int i) {
    return ((uint64_t)t << 48) | ((uint64_t)r << 24) | (uint64_t)i;
}
static unsigned char payload_byte(uint64_t key, int j) {
    return (unsigned char)((mix(key) >> ((j % 8) * 8)) ^ (uint64_t)j);
}

static NOINLINE lnode *build_list(int t, int r, int len) {
    lnode *head = NULL;
    for (int i = 0; i < len; i++) {
        lnode *n = gc_alloc(sizeof *n);
        unsigned char *p = gc_alloc_noscan(PAYLOAD);
        CHECK(n != NULL && p != NULL);
        if (!n || !p) return head;
        uint64_t key = list_key(t, r, i);
        n->key = key;
        n->sum = mix(key);
        for (int j = 0; j < PAYLOAD; j++) p[j] = payload_byte(key, j);
        n->payload = p;
        n->next = head;
        head = n;
    }
    return head;
}

/* True if the list holds exactly len nodes, newest first, all intact. */
static NOINLINE bool verify_list(const lnode *n, int t, int r, int len) {
    int i = len - 1;
    for (; n; n = n->next, i--) {
        if (i < 0) return false;
        uint64_t key = list_key(t, r, i);
        if (n->key != key || n->sum != mix(key) || !n->payload) return false;
        for (int j = 0; j < PAYLOAD; j++)
            if (n->payload[j] != payload_byte(key, j)) return false;
    }
    return i == -1;
}

static void *list_worker(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int r = 0; r < LIST_ROUNDS && now_sec() < list_deadline; r++) {
        long c0 = atomic_load(&collections_done);
        lnode *head = build_list(t, r, list_len);
        /* At least one whole collection runs while this list is alive. */
        while (atomic_load(&collections_done) < c0 + 2 && now_sec() < list_deadline) sched_yield();
        CHECK(atomic_load(&collections_done) >= c0 + 2);
        CHECK(verify_list(head, t, r, list_len));
        head = NULL; /* dropped */
        atomic_fetch_add(&rounds_done, 1);
        atomic_fetch_add(&worker_rounds[t], 1);
    }
    atomic_fetch_sub(&workers_running, 1);
    return NULL;
}

static void *looping_collector(void *arg) {
    (void)arg;
    while (atomic_load(&workers_running) > 0) {
        gc_collect();
        atomic_fetch_add(&collections_done, 1);
    }
    return NULL;
}

TEST_TIMEOUT(four_threads_build_and_drop_lists_while_another_thread_collects, 30) {
    pthread_t w[LIST_WORKERS], c;
    list_len = check_size(LIST_LEN) < LIST_LEN ? LIST_LEN / 4 : LIST_LEN;
    list_deadline = now_sec() + 20.0; /* a safety net: reaching it fails */
    atomic_store(&workers_running, LIST_WORKERS);
    gc_stats before;
    gc_get_stats(&before);
    start_thread(&c, looping_collector, NULL);
    for (int t = 0; t < LIST_WORKERS; t++) start_thread(&w[t], list_worker, (void *)(intptr_t)t);
    for (int t = 0; t < LIST_WORKERS; t++) pthread_join(w[t], NULL);
    pthread_join(c, NULL);

    for (int t = 0; t < LIST_WORKERS; t++) CHECK_EQ(atomic_load(&worker_rounds[t]), LIST_ROUNDS);
    CHECK(atomic_load(&collections_done) >= 5);
    /* The workers are gone: their lists are garbage. A stale word may retain
     * one list (or part of one), never more. */
    collect_hard();
    gc_stats after;
    gc_get_stats(&after);
    CHECK(after.heap_objects < before.heap_objects + 2 * (uint64_t)list_len);
    CHECK(after.num_gc >= before.num_gc + (uint64_t)atomic_load(&collections_done));
    CHECK_EQ(gc_verify_heap(), GC_OK);
}

/* ---------------------------------------------------------------------------
 * Objects reachable only from another thread's stack. */

enum { STACK_OBJS = 64 };
static atomic_int holder_ready, holder_release, holder_bad;
static atomic_int holder_finalized, control_finalized;

static size_t obj_words(int i) { return 4 + (size_t)(i % 8) * 6; }

static NOINLINE void hold_objects_on_stack(void) {
    uint64_t *objs[STACK_OBJS];
    for (int i = 0; i < STACK_OBJS; i++) {
        size_t words = obj_words(i);
        objs[i] = (i & 1) ? gc_alloc(words * 8) : gc_alloc_noscan(words * 8);
        fill_words(objs[i], words, 100 + (uint64_t)i);
        CHECK(gc_set_finalizer(objs[i], count_fin, &holder_finalized) == GC_OK);
    }
    /* objs[1] (scanned) holds the only reference to a child. */
    uint64_t *child = gc_alloc_noscan(64);
    fill_words(child, 8, 99);
    CHECK(gc_set_finalizer(child, count_fin, &holder_finalized) == GC_OK);
    objs[1][0] = (uint64_t)(uintptr_t)child;
    child = NULL;

    atomic_store(&holder_ready, 1);
    while (!atomic_load(&holder_release)) sleep_ms(1);

    int bad = 0;
    for (int i = 0; i < STACK_OBJS; i++) {
        size_t from = (i == 1); /* word 0 of objs[1] is the child pointer */
        if (gc_check_pointer(objs[i]) == GC_ERR_NOT_ALLOCATED ||
            !words_intact_from(objs[i], from, obj_words(i), 100 + (uint64_t)i))
            bad++;
    }
    uint64_t *c = (uint64_t *)(uintptr_t)objs[1][0];
    if (gc_check_pointer(c) == GC_ERR_NOT_ALLOCATED || !words_intact(c, 8, 99)) bad++;
    atomic_store(&holder_bad, bad);
    __asm__ volatile("" : : "r"(objs) : "memory");
}

static void *stack_holder(void *arg) {
    (void)arg;
    hold_objects_on_stack();
    return NULL;
}

static NOINLINE void make_hidden_controls(int n, atomic_int *counter) {
    for (int i = 0; i < n; i++) {
        void *o = gc_alloc(48);
        gc_set_finalizer(o, count_fin, counter);
    }
}

TEST_TIMEOUT(objects_only_on_another_threads_stack_survive_collections, 30) {
    pthread_t h;
    start_thread(&h, stack_holder, NULL);
    CHECK(await_int(&holder_ready, 1, 10));
    /* Controls: garbage with finalizers, proving that collections here do
     * find and finalize unreachable objects. */
    make_hidden_controls(64, &control_finalized);
    churn_and_collect(40);
    collect_until(&control_finalized, 62, 20);
    long controls = atomic_load(&control_finalized);
    sleep_ms(20);
    gc_run_finalizers();
    long lost = atomic_load(&holder_finalized); /* before the holder returns */
    atomic_store(&holder_release, 1);
    pthread_join(h, NULL);
    CHECK(controls >= 62);
    CHECK_EQ(lost, 0);
    CHECK_EQ(atomic_load(&holder_bad), 0);
}

/* ---------------------------------------------------------------------------
 * Objects reachable only from another thread's registers. */

enum { REG_OBJ_WORDS = 24 };
static atomic_int spin_ready, spin_stop, spin_bad, spin_stack_copies;
static atomic_long spin_iters;
static atomic_int reg_finalized, reg_control_finalized;

/* The objects stay visible in this frame until all four exist (an allocation
 * may collect: under GCPIN_STRESS=1 every one does); the caller scrubs the dead
 * frame afterwards. */
static NOINLINE void make_register_objects(uintptr_t hidden[4]) {
    uint64_t *volatile held[4] = {0};
    for (int i = 0; i < 4; i++) {
        uint64_t *o = gc_alloc(REG_OBJ_WORDS * 8);
        fill_words(o, REG_OBJ_WORDS, 500 + (uint64_t)i);
        CHECK(gc_set_finalizer(o, count_fin, &reg_finalized) == GC_OK);
        held[i] = o;
        hidden[i] = HIDE(o);
    }
    escape(held);
}

static inline int points_into(uintptr_t v, const void *obj) {
    return v - (uintptr_t)obj < REG_OBJ_WORDS * 8;
}

/* Unhides the four pointers into registers and spins without any call, so the
 * registers (saved by the kernel when the suspend signal arrives) are the only
 * place they exist. Checks that no copy is in this thread's stack memory. */
static NOINLINE void spin_with_pointers_in_registers(const uintptr_t hidden[4], uintptr_t stack_hi) {
    uint64_t *a = UNHIDE(hidden[0]), *b = UNHIDE(hidden[1]);
    uint64_t *c = UNHIDE(hidden[2]), *d = UNHIDE(hidden[3]);
    __asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
    uintptr_t lo = ((uintptr_t)__builtin_frame_address(0) - 1024) & ~(uintptr_t)7;
    int copies = 0;
    for (uintptr_t w = lo; w < stack_hi; w += 8) {
        uintptr_t v = *(volatile uintptr_t *)w;
        copies += points_into(v, a) + points_into(v, b) + points_into(v, c) + points_into(v, d);
    }
    atomic_store(&spin_stack_copies, copies);
    atomic_store(&spin_ready, 1);
    long iters = 0;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
        __asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
        if ((++iters & 0xfff) == 0) atomic_store_explicit(&spin_iters, iters, memory_order_relaxed);
    }
    int bad = 0;
    bad += !words_intact(a, REG_OBJ_WORDS, 500);
    bad += !words_intact(b, REG_OBJ_WORDS, 501);
    bad += !words_intact(c, REG_OBJ_WORDS, 502);
    bad += !words_intact(d, REG_OBJ_WORDS, 503);
    atomic_store(&spin_bad, bad);
}

static void *register_spinner(void *arg) {
    (void)arg;
    pthread_attr_t attr;
    void *base;
    size_t size;
    pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &base, &size);
    pthread_attr_destroy(&attr);
    uintptr_t hidden[4];
    make_register_objects(hidden);
    scrub_stack(); /* the dead frames of the allocation may hold copies */
    spin_with_pointers_in_registers(hidden, (uintptr_t)base + size);
    return NULL;
}

TEST_TIMEOUT(objects_only_in_another_threads_registers_survive_collections, 30) {
    pthread_t s;
    start_thread(&s, register_spinner, NULL);
    CHECK(await_int(&spin_ready, 1, 10));
    /* If a copy were in memory, this test would not test registers. */
    CHECK_EQ(atomic_load(&spin_stack_copies), 0);
    make_hidden_controls(64, &reg_control_finalized);
    long iters_before = atomic_load(&spin_iters);
    churn_and_collect(40);
    collect_until(&reg_control_finalized, 62, 20);
    long controls = atomic_load(&reg_control_finalized);
    sleep_ms(20);
    gc_run_finalizers();
    long lost = atomic_load(&reg_finalized);
    long iters_after = atomic_load(&spin_iters);
    atomic_store(&spin_stop, 1);
    pthread_join(s, NULL);
    CHECK(controls >= 62);
    CHECK_EQ(lost, 0);
    CHECK_EQ(atomic_load(&spin_bad), 0);
    CHECK(iters_after > iters_before); /* it kept running between stops */
}

/* ---------------------------------------------------------------------------
 * A thread blocked in read() on a pipe during many collections. */

enum { PIPE_MSG = 3000 };
static int pipe_fds[2];
static atomic_int reader_ready, reader_eintr, reader_bad, reader_got;
static atomic_long reader_tid;
static atomic_int reader_finalized;

static unsigned char pipe_byte(int i) { return (unsigned char)(i * 7 + 3); }

static NOINLINE void read_while_holding(void) {
    uint64_t *obj = gc_alloc(32 * 8);
    fill_words(obj, 32, 4242);
    CHECK(gc_set_finalizer(obj, count_fin, &reader_finalized) == GC_OK);
    /* The read buffer is a GC object reachable only from this stack. */
    unsigned char *buf = gc_alloc_noscan(PIPE_MSG);
    CHECK(gc_set_finalizer(buf, count_fin, &reader_finalized) == GC_OK);
    atomic_store(&reader_tid, (long)gettid());
    atomic_store(&reader_ready, 1);
    int got = 0;
    while (got < PIPE_MSG) {
        ssize_t r = read(pipe_fds[0], buf + got, (size_t)(PIPE_MSG - got));
        if (r < 0 && errno == EINTR) {
            atomic_fetch_add(&reader_eintr, 1);
            continue;
        }
        if (r <= 0) break;
        got += (int)r;
    }
    atomic_store(&reader_got, got);
    int bad = 0;
    for (int i = 0; i < got; i++) bad += buf[i] != pipe_byte(i);
    bad += !words_intact(obj, 32, 4242);
    atomic_store(&reader_bad, bad);
    __asm__ volatile("" : : "r"(obj), "r"(buf) : "memory");
}

static void *pipe_reader(void *arg) {
    (void)arg;
    read_while_holding();
    return NULL;
}

/* 1 if the thread is in read(), 0 if not, -1 if /proc cannot tell. */
static int thread_in_read(long tid) {
    long nr = thread_syscall(tid);
    return nr == -2 ? -1 : nr == SYS_read;
}

static int wait_in_read(long tid) {
    int s = -1;
    for (int i = 0; i < 2000; i++) {
        s = thread_in_read(tid);
        if (s != 0) break;
        sleep_ms(1);
    }
    if (s < 0) sleep_ms(50); /* cannot observe it: give it time to block */
    return s;
}

TEST_TIMEOUT(thread_blocked_in_read_survives_collections_and_reads_correctly, 30) {
    CHECK_EQ(pipe(pipe_fds), 0);
    pthread_t r;
    start_thread(&r, pipe_reader, NULL);
    CHECK(await_int(&reader_ready, 1, 10));
    long tid = atomic_load(&reader_tid);
    int s = wait_in_read(tid);
    CHECK(s != 0);
    if (s < 0) fprintf(stderr, "    note: /proc/self/task/*/syscall unreadable; not verifying the thread blocks\n");
    gc_stats st0, st1;
    gc_get_stats(&st0);
    for (int i = 0; i < 60; i++) {
        churn_classes(4);
        scrub_stack();
        gc_collect();
    }
    gc_run_finalizers();
    gc_get_stats(&st1);
    CHECK(st1.num_gc >= st0.num_gc + 60);
    /* Back in read() (restarted, not ended: the thread got no EINTR and no
     * data); it may take a moment to leave the suspend handler. */
    if (s > 0) CHECK_EQ(wait_in_read(tid), 1);
    sleep_ms(10);
    gc_run_finalizers();
    long lost = atomic_load(&reader_finalized);

    unsigned char msg[PIPE_MSG];
    for (int i = 0; i < PIPE_MSG; i++) msg[i] = pipe_byte(i);
    CHECK_EQ(write(pipe_fds[1], msg, PIPE_MSG), PIPE_MSG);
    pthread_join(r, NULL);
    CHECK_EQ(lost, 0);
    CHECK_EQ(atomic_load(&reader_got), PIPE_MSG);
    CHECK_EQ(atomic_load(&reader_bad), 0);
    CHECK_EQ(atomic_load(&reader_eintr), 0); /* SA_RESTART: no EINTR for the program */
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

/* ---------------------------------------------------------------------------
 * Threads that exit mid-run: their objects become collectable, and collections
 * keep working after they are gone. */

enum { EXITERS = 8, EXIT_OBJS = 200 };
static atomic_int exit_ready, exit_go, exit_bad, bg_stop;
static atomic_int exit_finalized, bg_collections;

static NOINLINE void allocate_then_exit(int t) {
    uint64_t *objs[EXIT_OBJS];
    for (int i = 0; i < EXIT_OBJS; i++) {
        objs[i] = gc_alloc(6 * 8);
        fill_words(objs[i], 6, (uint64_t)(t * EXIT_OBJS + i));
        CHECK(gc_set_finalizer(objs[i], count_fin, &exit_finalized) == GC_OK);
    }
    atomic_fetch_add(&exit_ready, 1);
    while (!atomic_load(&exit_go)) sleep_ms(1);
    int bad = 0;
    for (int i = 0; i < EXIT_OBJS; i++) bad += !words_intact(objs[i], 6, (uint64_t)(t * EXIT_OBJS + i));
    atomic_fetch_add(&exit_bad, bad);
    memset(objs, 0, sizeof objs);
    __asm__ volatile("" : : "r"(objs) : "memory");
}

static void *exiter(void *arg) {
    allocate_then_exit((int)(intptr_t)arg);
    scrub_stack();
    return NULL; /* the thread exits: unregistered by the runtime */
}

static void *background_collector(void *arg) {
    (void)arg;
    while (!atomic_load(&bg_stop)) {
        churn_classes(2);
        gc_collect();
        atomic_fetch_add(&bg_collections, 1);
    }
    return NULL;
}

static void *list_once(void *arg) {
    (void)arg;
    lnode *head = build_list(7, 7, 500);
    for (int i = 0; i < 5; i++) gc_collect();
    CHECK(verify_list(head, 7, 7, 500));
    return NULL;
}

TEST_TIMEOUT(exited_threads_objects_become_collectable_and_collections_continue, 30) {
    pthread_t bg, ex[EXITERS], late;
    for (int t = 0; t < EXITERS; t++) start_thread(&ex[t], exiter, (void *)(intptr_t)t);
    CHECK(await_int(&exit_ready, EXITERS, 10));
    for (int i = 0; i < 5; i++) {
        scrub_stack();
        gc_collect();
    }
    gc_run_finalizers();
    sleep_ms(20);
    gc_run_finalizers();
    CHECK_EQ(atomic_load(&exit_finalized), 0); /* alive while their threads are */

    /* The threads exit while another thread collects continuously. */
    start_thread(&bg, background_collector, NULL);
    atomic_store(&exit_go, 1);
    for (int t = 0; t < EXITERS; t++) pthread_join(ex[t], NULL);
    CHECK_EQ(atomic_load(&exit_bad), 0);

    /* Their stacks are no longer roots. One stale word may keep one object. */
    collect_until(&exit_finalized, EXITERS * EXIT_OBJS - 4, 20);
    long fin = atomic_load(&exit_finalized);
    CHECK(fin >= EXITERS * EXIT_OBJS - 4);
    CHECK(fin <= EXITERS * EXIT_OBJS);

    /* Collections keep working: from here, from the background thread, and
     * with a newly started thread. */
    long bg0 = atomic_load(&bg_collections);
    start_thread(&late, list_once, NULL);
    pthread_join(late, NULL);
    for (int i = 0; i < 10; i++) gc_collect();
    double end = now_sec() + 5;
    while (atomic_load(&bg_collections) < bg0 + 5 && now_sec() < end) sleep_ms(1);
    CHECK(atomic_load(&bg_collections) >= bg0 + 5);
    atomic_store(&bg_stop, 1);
    pthread_join(bg, NULL);
    CHECK_EQ(gc_verify_heap(), GC_OK);
}

/* ---------------------------------------------------------------------------
 * gc_collect from two threads at once. */

enum { DUAL_COLLECTS = 150 };
static atomic_long dual_calls[2];
static atomic_int dual_running, mutator_rounds;
static double dual_deadline;

static void *dual_collector(void *arg) {
    int k = (int)(intptr_t)arg;
    /* Both keep collecting until each did its share and the mutator made
     * progress in between (the deadline is a safety net: reaching it fails). */
    for (int i = 0; (i < DUAL_COLLECTS || atomic_load(&mutator_rounds) < 3) && now_sec() < dual_deadline; i++) {
        gc_collect();
        atomic_fetch_add(&dual_calls[k], 1);
        if (i % 25 == 0) CHECK(gc_verify_heap() == GC_OK);
    }
    atomic_fetch_sub(&dual_running, 1);
    return NULL;
}

static void *dual_mutator(void *arg) {
    (void)arg;
    for (int r = 0; atomic_load(&dual_running) > 0; r++) {
        lnode *head = build_list(9, r & 0xff, 400);
        sched_yield();
        CHECK(verify_list(head, 9, r & 0xff, 400));
        atomic_fetch_add(&mutator_rounds, 1);
    }
    return NULL;
}

TEST_TIMEOUT(gc_collect_from_two_threads_at_once, 30) {
    pthread_t a, b, m;
    gc_stats st0, st1;
    gc_get_stats(&st0);
    dual_deadline = now_sec() + 20.0;
    atomic_store(&dual_running, 2);
    start_thread(&m, dual_mutator, NULL);
    start_thread(&a, dual_collector, (void *)0);
    start_thread(&b, dual_collector, (void *)1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_join(m, NULL);
    gc_get_stats(&st1);
    long c0 = atomic_load(&dual_calls[0]), c1 = atomic_load(&dual_calls[1]);
    CHECK(c0 >= DUAL_COLLECTS);
    CHECK(c1 >= DUAL_COLLECTS);
    /* Every call saw a full collection: its own, or two that completed while
     * it waited (the second of them started after the call), and one thread's
     * calls do not overlap, so each thread's calls needed that many cycles. */
    CHECK(st1.num_gc >= st0.num_gc + (uint64_t)(c0 > c1 ? c0 : c1));
    CHECK(atomic_load(&mutator_rounds) >= 3);
    CHECK(now_sec() < dual_deadline);
    CHECK_EQ(gc_verify_heap(), GC_OK);
}

/* ---------------------------------------------------------------------------
 * Explicit registration. Defined results: registering twice is GC_OK;
 * unregistering a thread that is not registered is GC_ERR_THREAD; any later
 * gcpin call registers the thread again. */

static atomic_int reg_results[9];

static void *registration_calls(void *arg) {
    (void)arg;
    atomic_store(&reg_results[0], gc_thread_unregister()); /* never registered */
    atomic_store(&reg_results[1], gc_thread_register());
    atomic_store(&reg_results[2], gc_thread_register()); /* twice */
    atomic_store(&reg_results[3], gc_thread_unregister());
    atomic_store(&reg_results[4], gc_thread_unregister()); /* twice */
    atomic_store(&reg_results[5], gc_thread_register());
    void *p = gc_alloc(64);
    CHECK(p != NULL);
    atomic_store(&reg_results[6], gc_thread_unregister());
    p = gc_alloc(64); /* registers implicitly */
    CHECK(p != NULL);
    atomic_store(&reg_results[7], gc_thread_unregister()); /* so this is GC_OK */
    atomic_store(&reg_results[8], gc_thread_unregister());
    return NULL;
}

TEST_TIMEOUT(thread_register_twice_ok_and_unregister_unregistered_is_err_thread, 30) {
    pthread_t t;
    start_thread(&t, registration_calls, NULL);
    pthread_join(t, NULL);
    CHECK_EQ(atomic_load(&reg_results[0]), GC_ERR_THREAD);
    CHECK_EQ(atomic_load(&reg_results[1]), GC_OK);
    CHECK_EQ(atomic_load(&reg_results[2]), GC_OK);
    CHECK_EQ(atomic_load(&reg_results[3]), GC_OK);
    CHECK_EQ(atomic_load(&reg_results[4]), GC_ERR_THREAD);
    CHECK_EQ(atomic_load(&reg_results[5]), GC_OK);
    CHECK_EQ(atomic_load(&reg_results[6]), GC_OK);
    CHECK_EQ(atomic_load(&reg_results[7]), GC_OK);
    CHECK_EQ(atomic_load(&reg_results[8]), GC_ERR_THREAD);
    /* The main thread too: twice is fine, and it keeps working. */
    CHECK_EQ(gc_thread_register(), GC_OK);
    CHECK_EQ(gc_thread_register(), GC_OK);
    CHECK_EQ(gc_thread_unregister(), GC_OK);
    CHECK(gc_alloc(16) != NULL);
    gc_collect();
    CHECK_EQ(gc_verify_heap(), GC_OK);
    CHECK_EQ(atomic_load(&reg_results[0]), GC_ERR_THREAD);
}

/* An unregistered thread is no longer stopped (even with every signal
 * blocked, collections complete) and its stack is no longer a root; after
 * registering again, its stack is a root again. */

enum { UNREG_OBJS = 100 };
static atomic_int unreg_phase, unreg_bad;
static atomic_int unreg_finalized, rereg_finalized;

static NOINLINE void fill_stack_objects(uint64_t **objs, int n, atomic_int *counter, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        objs[i] = gc_alloc(8 * 8);
        fill_words(objs[i], 8, seed + (uint64_t)i);
        CHECK(gc_set_finalizer(objs[i], count_fin, counter) == GC_OK);
    }
}

static NOINLINE void unregistered_phase(void) {
    uint64_t *objs[UNREG_OBJS];
    fill_stack_objects(objs, UNREG_OBJS, &unreg_finalized, 7000);
    CHECK(gc_thread_unregister() == GC_OK);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    atomic_store(&unreg_phase, 1);
    while (atomic_load(&unreg_phase) < 2) { /* no gcpin calls, no signals */ }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* objs[] now point at collected memory: never touched again. */
    memset(objs, 0, sizeof objs);
    __asm__ volatile("" : : "r"(objs) : "memory");
}

static NOINLINE void reregistered_phase(void) {
    uint64_t *objs[UNREG_OBJS];
    CHECK(gc_thread_register() == GC_OK);
    fill_stack_objects(objs, UNREG_OBJS, &rereg_finalized, 9000);
    atomic_store(&unreg_phase, 3);
    while (atomic_load(&unreg_phase) < 4) sleep_ms(1);
    int bad = 0;
    for (int i = 0; i < UNREG_OBJS; i++) bad += !words_intact(objs[i], 8, 9000 + (uint64_t)i);
    atomic_store(&unreg_bad, bad);
    __asm__ volatile("" : : "r"(objs) : "memory");
}

static void *unregistering_thread(void *arg) {
    (void)arg;
    unregistered_phase();
    scrub_stack();
    reregistered_phase();
    return NULL;
}

TEST_TIMEOUT(unregistered_thread_is_not_stopped_nor_scanned_until_registered_again, 30) {
    pthread_t t;
    start_thread(&t, unregistering_thread, NULL);
    CHECK(await_int(&unreg_phase, 1, 10));
    for (int i = 0; i < 5; i++) gc_collect(); /* would hang if it were still stopped */
    collect_until(&unreg_finalized, UNREG_OBJS - 2, 20);
    long fin = atomic_load(&unreg_finalized);
    CHECK(fin >= UNREG_OBJS - 2);
    atomic_store(&unreg_phase, 2);
    CHECK(await_int(&unreg_phase, 3, 10));
    for (int i = 0; i < 20; i++) {
        churn_classes(2);
        scrub_stack();
        gc_collect();
    }
    gc_run_finalizers();
    sleep_ms(20);
    gc_run_finalizers();
    long lost = atomic_load(&rereg_finalized);
    atomic_store(&unreg_phase, 4);
    pthread_join(t, NULL);
    CHECK_EQ(lost, 0);
    CHECK_EQ(atomic_load(&unreg_bad), 0);
}

/* ---------------------------------------------------------------------------
 * A thread spinning in pure computation (no gcpin calls) does not block
 * collections, and its computation is not disturbed by being stopped. */

static atomic_int calc_started, calc_stop;
static atomic_long calc_progress;
static uint64_t calc_x;
static double calc_f;
static long calc_n;

/* Runs until `limit` iterations or until *stop is set; the same code for the
 * spinning thread and for the check. */
static NOINLINE long calculate(long limit, atomic_int *stop, uint64_t *xo, double *fo) {
    uint64_t x = 88172645463325252ull;
    double f = 0.0;
    long i = 0;
    while (i < limit) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        f = f * 0.999 + (double)(x & 0xffff) * 0.5;
        i++;
        if ((i & 0xffff) == 0) {
            atomic_store_explicit(&calc_progress, i, memory_order_relaxed);
            if (atomic_load_explicit(stop, memory_order_relaxed)) break;
        }
    }
    *xo = x;
    *fo = f;
    return i;
}

static void *calculator(void *arg) {
    (void)arg;
    CHECK(gc_thread_register() == GC_OK);
    atomic_store(&calc_started, 1);
    calc_n = calculate(LONG_MAX, &calc_stop, &calc_x, &calc_f);
    return NULL;
}

TEST_TIMEOUT(thread_in_pure_computation_does_not_block_collections, 30) {
    pthread_t t;
    start_thread(&t, calculator, NULL);
    CHECK(await_int(&calc_started, 1, 10));
    while (atomic_load(&calc_progress) == 0) sleep_ms(1);
    long p0 = atomic_load(&calc_progress);
    double worst = 0;
    for (int i = 0; i < 50; i++) {
        double t0 = now_sec();
        gc_collect();
        double dt = now_sec() - t0;
        if (dt > worst) worst = dt;
    }
    sleep_ms(20);
    long p1 = atomic_load(&calc_progress);
    atomic_store(&calc_stop, 1);
    pthread_join(t, NULL);
    CHECK(worst < 2.0);
    CHECK(p1 > p0);
    uint64_t x;
    double f;
    static atomic_int never;
    long n = calculate(calc_n, &never, &x, &f);
    CHECK_EQ(n, calc_n);
    CHECK(x == calc_x);
    CHECK(f == calc_f); /* registers, FP state included, restored exactly */
}

/* A program that is not linked against the library loads it with dlopen, as a
 * plugin host would, and allocates, pins and collects from four threads
 * (c-tests/dlopen_helper.c). The library keeps each thread's record in
 * initial-exec TLS, which the loader must then find room for in its static TLS
 * reserve. The helper finds the library where this process loaded it. */
TEST_TIMEOUT(library_opened_with_dlopen_by_an_unlinked_program_works_from_threads, 120) {
    Dl_info info;
    void *(*fn)(size_t) = gc_alloc;
    void *code; /* ISO C has no cast from a function pointer to void * */
    memcpy(&code, &fn, sizeof code);
    REQUIRE(dladdr(code, &info) != 0 && info.dli_fname != NULL);
    char helper[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", helper, sizeof helper - 32);
    REQUIRE(n > 0);
    helper[n] = 0;
    char *slash = strrchr(helper, '/');
    REQUIRE(slash != NULL);
    strcpy(slash + 1, "dlopen_helper");
    char nodes[32];
    snprintf(nodes, sizeof nodes, "%zu", check_size(20000));
    char *argv[] = {helper, (char *)info.dli_fname, nodes, NULL};
    pid_t pid;
    REQUIRE(posix_spawn(&pid, helper, NULL, NULL, argv, environ) == 0);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "dlopen_helper (%s, %s): wait status %#x", info.dli_fname,
           nodes, status);
}

/* ---------------------------------------------------------------------------
 * Thousands of registered threads that exit at once: each unregisters under
 * the world lock, and every one is served in turn while another thread
 * collects (the lock wakes only the next waiter; when every release woke
 * every waiter, 4,000 threads took 55 s to exit). Each thread's objects are
 * intact until it exits. */

enum { MANY_THREADS = 2000 };
static atomic_int many_registered, many_bad;
static pthread_mutex_t many_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t many_cond = PTHREAD_COND_INITIALIZER;
static bool many_go; /* under many_lock; the workers sleep on many_cond */

static void *many_worker(void *arg) {
    intptr_t k = (intptr_t)arg;
    /* In a stack slot: in a register, -O2 may keep only o + 64 (the end of
     * the check loop below), which points past the object. */
    uint64_t *volatile o = gc_alloc(64);
    if (o == NULL) {
        atomic_fetch_add(&many_bad, 1);
        return NULL;
    }
    fill_words(o, 8, (uint64_t)k);
    atomic_fetch_add(&many_registered, 1);
    pthread_mutex_lock(&many_lock);
    while (!many_go) pthread_cond_wait(&many_cond, &many_lock);
    pthread_mutex_unlock(&many_lock);
    if (!words_intact(o, 8, (uint64_t)k)) atomic_fetch_add(&many_bad, 1);
    return NULL;
}

TEST_TIMEOUT(thousands_of_threads_exit_at_once_while_another_collects, 60) {
    static pthread_t t[MANY_THREADS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 << 10);
    /* Reduced runs (valgrind, which runs at most 500 threads) start a tenth. */
    const int want = (int)check_size(MANY_THREADS);
    int started = 0;
    for (; started < want; started++) {
        if (pthread_create(&t[started], &attr, many_worker, (void *)(intptr_t)started) != 0) break;
    }
    pthread_attr_destroy(&attr);
    CHECKF(started >= want / 2, "only %d threads could be started", started);
    REQUIRE(await_int(&many_registered, started, 60));
    gc_collect(); /* stops every one of them */
    pthread_mutex_lock(&many_lock);
    many_go = true;
    pthread_cond_broadcast(&many_cond);
    pthread_mutex_unlock(&many_lock);
    for (int i = 0; i < 20; i++) {
        churn_classes(2);
        gc_collect();
    }
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    CHECK_EQ(atomic_load(&many_bad), 0);
    gc_collect();
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ---------------------------------------------------------------------------
 * A thread whose program key destructor calls gcpin in every destructor
 * round: glibc runs gcpin's destructor (which unregisters the thread) before
 * the program's in each round, and the program's registers the thread again,
 * also in the last round, after which the thread is gone, still registered.
 * Collections must not wait for it (nor signal a thread that no longer
 * exists): the stop finds it gone and drops its record. */

static pthread_key_t late_key;
static atomic_int late_rounds;

static void late_destructor(void *v) {
    atomic_fetch_add(&late_rounds, 1);
    escape(gc_alloc(32));             /* registers the exiting thread again */
    pthread_setspecific(late_key, v); /* and asks for another round */
}

static void *late_thread(void *arg) {
    (void)arg;
    CHECK_STATUS(gc_thread_register(), GC_OK);
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

TEST_TIMEOUT(thread_registered_again_by_its_last_key_destructor_does_not_stall_collections, 30) {
    CHECK_STATUS(gc_thread_register(), GC_OK); /* gcpin's key first: it runs first in each round */
    REQUIRE(pthread_key_create(&late_key, late_destructor) == 0);
    for (int k = 0; k < 4; k++) {
        pthread_t t;
        start_thread(&t, late_thread, NULL);
        pthread_join(t, NULL);
        for (int i = 0; i < 3; i++) {
            churn_classes(2);
            gc_collect();
        }
    }
    CHECKF(atomic_load(&late_rounds) >= 8, "only %d destructor rounds", atomic_load(&late_rounds));
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}
