/* Faults: what a careful program expects of the collector when things go
 * wrong around it.
 *
 * - four threads hit GCPIN_MAX_HEAP together: NULL + ENOMEM in each, no
 *   deadlock, their data intact, and all allocate again once memory is dropped;
 * - the program's own signal handlers (installed before and after the runtime
 *   starts) stay installed and run while other threads collect; thread signal
 *   masks are left alone; a program that needs SIGPWR moves gcpin elsewhere
 *   with GCPIN_SIG_SUSPEND;
 * - fork() in a threaded program: the child runs threads of its own, collects
 *   with them, pins, finalizes and forks again; finalizers set before the fork
 *   still run in the child;
 * - threads blocked in read(), write(), nanosleep(), poll(), sem_wait() and
 *   pthread_cond_wait() during many collections: data intact, objects reachable
 *   only from their stacks intact, EINTR only where the kernel never restarts;
 * - a thread that blocks every signal for a while: the collection waits;
 * - objects reachable only from a program signal handler's frame, on the thread
 *   stack and on an alternate signal stack;
 * - threads that come and go (joined, detached, unregistered, pthread_exit,
 *   pthread_cancel in read()) while another thread collects;
 * - a handler that leaves with siglongjmp (the classic timeout pattern);
 * - posix_spawn and system() while collecting;
 * - an address-space limit (RLIMIT_AS): a smaller heap, ENOMEM at its end.
 *
 * Every wait has a deadline that fails the test with a message instead of
 * hanging it. */
#include "check.h"

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>

extern char **environ;

/* ------------------------------------------------------------ helpers */

/* Joins `t`, failing the test (and ending it: the runtime may be wedged) if the
 * thread has not ended within `seconds`. */
static void join_within(pthread_t t, double seconds, const char *what) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)seconds;
    int rc = pthread_timedjoin_np(t, NULL, &ts);
    if (rc != 0) {
        check_fail(__FILE__, __LINE__, "%s did not end within %.0f s (%s)", what, seconds, strerror(rc));
        check_end_test();
    }
}


/* Objects with finalizers that nothing reaches: proof that the collections of
 * a test do free garbage (so that "not freed" means something). */
static NOINLINE void make_controls(int n, atomic_int *counter) {
    for (int i = 0; i < n; i++) {
        void *o = gc_alloc(48);
        if (o) gc_set_finalizer(o, count_fin, counter);
    }
}

/* Objects kept by the calling thread in `objs`, with finalizers counting into
 * `lost`: a finalizer that runs while the thread still holds them is a bug. */
static NOINLINE void hold_objects(uint64_t **objs, int n, uint64_t seed, atomic_int *lost) {
    for (int i = 0; i < n; i++) {
        size_t words = 4 + (size_t)(i % 6) * 5;
        objs[i] = (i & 1) ? gc_alloc(words * 8) : gc_alloc_noscan(words * 8);
        if (!objs[i]) continue;
        fill_words(objs[i], words, seed + (uint64_t)i);
        gc_set_finalizer(objs[i], count_fin, lost);
    }
}
static int objects_bad(uint64_t *const *objs, int n, uint64_t seed) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        size_t words = 4 + (size_t)(i % 6) * 5;
        bad += objs[i] == NULL || !words_intact(objs[i], words, seed + (uint64_t)i);
    }
    return bad;
}

/* A thread that collects (with some garbage) every `period_ms` until told to
 * stop. */
struct collector {
    pthread_t t;
    atomic_int stop;
    atomic_long done;
    int period_ms;
};
static void *collector_main(void *arg) {
    struct collector *c = arg;
    while (!atomic_load(&c->stop)) {
        churn_classes(1);
        gc_collect();
        atomic_fetch_add(&c->done, 1);
        if (c->period_ms) sleep_ms(c->period_ms);
    }
    return NULL;
}
static void collector_start(struct collector *c, int period_ms) {
    atomic_store(&c->stop, 0);
    atomic_store(&c->done, 0);
    c->period_ms = period_ms;
    start_thread(&c->t, collector_main, c);
}
static void collector_stop(struct collector *c) {
    atomic_store(&c->stop, 1);
    join_within(c->t, 20, "the collecting thread");
}
/* Waits until the collector has done `n` more collections; false after 3 s
 * (the collector is stuck). */
static bool collector_progress(struct collector *c, long n) {
    long want = atomic_load(&c->done) + n;
    double end = check_now() + 3;
    while (atomic_load(&c->done) < want) {
        if (check_now() > end) return false;
        sleep_ms(1);
    }
    return true;
}

/* 1 if thread `tid` is in a system call (any), 0 if running, -1 if unknown. */
static int thread_in_syscall(long tid) {
    long nr = thread_syscall(tid);
    return nr == -2 ? -1 : nr >= 0;
}
/* Waits up to 2 s for the thread to block in a system call (best effort). */
static void wait_blocked(long tid) {
    for (int i = 0; i < 2000; i++) {
        int s = thread_in_syscall(tid);
        if (s != 0) {
            if (s < 0) sleep_ms(20);
            return;
        }
        sleep_ms(1);
    }
}

/* ===================================================================
 * Four threads reach GCPIN_MAX_HEAP together. */

enum { FILLERS = 4, MAX_KEEP = 16384 };
static uint64_t *fill_keep[FILLERS][MAX_KEEP]; /* bss: a root */
static const size_t fill_size[FILLERS] = {4096, 1 << 20, 96 << 10, 16 << 10};
static atomic_int fill_started, fill_failed, fill_retried, fill_dropped, fill_go_again;
static int fill_n[FILLERS], fill_errno[FILLERS], fill_still_null[FILLERS], fill_bad[FILLERS];
static size_t fill_again[FILLERS];

static void *filler(void *arg) {
    int t = (int)(intptr_t)arg;
    size_t size = fill_size[t], words = size / 8;
    bool noscan = t & 1;
    int n = 0;
    /* Everyone gets a first 2 MiB before the race to the limit starts (or a
     * thread that starts late would find the heap full already). */
    int quota = (int)(((size_t)2 << 20) / size);
    bool started = false;
    for (;;) {
        if (n == quota && !started) {
            started = true;
            atomic_fetch_add(&fill_started, 1);
            while (atomic_load(&fill_started) < FILLERS) sleep_ms(1);
        }
        errno = 0;
        uint64_t *p = noscan ? gc_alloc_noscan(size) : gc_alloc(size);
        if (!p) {
            fill_errno[t] = errno;
            if (!started) atomic_fetch_add(&fill_started, 1); /* never leave the others waiting */
            break;
        }
        if (n == MAX_KEEP) {
            fill_errno[t] = -1; /* never reached the limit */
            break;
        }
        p[0] = mix((uint64_t)(t * MAX_KEEP + n)) | 1;
        p[words - 1] = mix((uint64_t)(t * MAX_KEEP + n) + 7) | 1;
        fill_keep[t][n++] = p;
    }
    fill_n[t] = n;
    atomic_fetch_add(&fill_failed, 1);
    while (atomic_load(&fill_failed) < FILLERS) sleep_ms(1);

    /* Everything is still kept: still no room, the same error. */
    errno = 0;
    void *q = noscan ? gc_alloc_noscan(size) : gc_alloc(size);
    fill_still_null[t] = q == NULL && errno == ENOMEM;
    q = NULL;
    /* No one drops anything before every thread has retried. */
    atomic_fetch_add(&fill_retried, 1);
    while (atomic_load(&fill_retried) < FILLERS) sleep_ms(1);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        uint64_t *p = fill_keep[t][i];
        uint64_t seed = (uint64_t)(t * MAX_KEEP + i);
        bad += p[0] != (mix(seed) | 1) || p[words - 1] != (mix(seed + 7) | 1);
    }
    fill_bad[t] = bad;
    memset(fill_keep[t], 0, sizeof fill_keep[t]);
    atomic_fetch_add(&fill_dropped, 1);
    while (!atomic_load(&fill_go_again)) sleep_ms(1);

    /* 12 MiB each, 48 MiB together: fits in the 64 MiB again. */
    size_t want = ((size_t)12 << 20) / size, got = 0;
    for (; got < want; got++) {
        uint64_t *p = noscan ? gc_alloc_noscan(size) : gc_alloc(size);
        if (!p) break;
        fill_keep[t][got] = p;
    }
    fill_again[t] = got;
    return NULL;
}

TEST_TIMEOUT(four_threads_reach_the_heap_limit_together, 60) {
    REQUIRE(setenv("GCPIN_MAX_HEAP", "64M", 1) == 0); /* before the first gcpin call */
    pthread_t t[FILLERS];
    escape(fill_keep); /* the stores are real: the collector reads them */
    for (int i = 0; i < FILLERS; i++) start_thread(&t[i], filler, (void *)(intptr_t)i);
    CHECKF(await_int(&fill_failed, FILLERS, 30), "only %d of %d threads got NULL within 30 s (deadlock?)",
           atomic_load(&fill_failed), FILLERS);
    if (atomic_load(&fill_failed) < FILLERS) check_end_test();
    gc_stats s;
    gc_get_stats(&s);
    CHECK_LE(s.heap_alloc_bytes, (uint64_t)64 << 20);
    CHECK_GE(s.heap_alloc_bytes, (uint64_t)48 << 20); /* the heap was really used */
    REQUIRE(await_int(&fill_dropped, FILLERS, 30));
    collect_hard();
    gc_get_stats(&s);
    /* A stale word may keep a chunk or two (a filler's own frame keeps its
     * last one: 1 MiB). Up to 9 MiB were kept while the stopped threads'
     * signal frames were scanned: their vector-state areas held stale words of
     * the collections those threads ran at the limit. */
    CHECK_LT(s.heap_alloc_bytes, (uint64_t)3 << 20);
    atomic_store(&fill_go_again, 1);
    for (int i = 0; i < FILLERS; i++) join_within(t[i], 30, "a filling thread");
    for (int i = 0; i < FILLERS; i++) {
        CHECKF(fill_errno[i] == ENOMEM, "thread %d (%zu-byte chunks): errno %d at NULL, expected ENOMEM", i,
               fill_size[i], fill_errno[i]);
        CHECKF(fill_n[i] >= ((2 << 20) / (int)fill_size[i]), "thread %d got only %d chunks", i, fill_n[i]);
        CHECKF(fill_still_null[i], "thread %d: a retry while the heap was full did not give NULL + ENOMEM", i);
        CHECKF(fill_bad[i] == 0, "thread %d: %d chunks were overwritten", i, fill_bad[i]);
        CHECKF(fill_again[i] == ((size_t)12 << 20) / fill_size[i],
               "thread %d: only %zu of %zu chunks after the memory was dropped", i, fill_again[i],
               ((size_t)12 << 20) / fill_size[i]);
    }
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ===================================================================
 * The program's signal handlers. */

static atomic_int usr1_runs, usr2_runs, alrm_runs, segv_runs;
static char *fault_pages; /* one page per thread that faults on purpose */
static long page_size;

static void on_usr1(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    (void)ctx;
    atomic_fetch_add(&usr1_runs, 1);
}
static void on_usr2(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    (void)ctx;
    atomic_fetch_add(&usr2_runs, 1);
}
static void on_alrm(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    (void)ctx;
    atomic_fetch_add(&alrm_runs, 1);
}
/* A write to a PROT_NONE page of ours: make it writable and let the write
 * retry. Anything else is a real crash: default action. */
static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    char *a = si->si_addr;
    if (fault_pages && a >= fault_pages && a < fault_pages + 3 * page_size) {
        atomic_fetch_add(&segv_runs, 1);
        mprotect((void *)((uintptr_t)a & ~(uintptr_t)(page_size - 1)), (size_t)page_size, PROT_READ | PROT_WRITE);
        return;
    }
    signal(sig, SIG_DFL);
}

static void install(int sig, void (*h)(int, siginfo_t *, void *), int flags, int masked) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (masked) sigaddset(&sa.sa_mask, masked);
    REQUIRE(sigaction(sig, &sa, NULL) == 0);
}

/* The handler the kernel has for `sig` is ours, with our flags and mask. */
static bool handler_is(int sig, void (*h)(int, siginfo_t *, void *), int flags, int masked) {
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0) return false;
    const int mine = SA_SIGINFO | SA_RESTART | SA_ONSTACK | SA_NODEFER | SA_RESETHAND;
    return cur.sa_sigaction == h && (cur.sa_flags & mine) == (SA_SIGINFO | flags) &&
           (masked == 0 || sigismember(&cur.sa_mask, masked) == 1);
}

/* Faults on the calling thread's page: the handler opens it, the write goes
 * through. */
static void fault_once(int page, int k) {
    char *p = fault_pages + page * page_size;
    mprotect(p, (size_t)page_size, PROT_NONE);
    ((volatile char *)p)[k % page_size] = (char)k;
}

static atomic_int sig_stop, sig_faults[2], sig_raised[2];
static void *signal_collector(void *arg) {
    int me = (int)(intptr_t)arg;
    for (int k = 0; !atomic_load(&sig_stop); k++) {
        churn_classes(2);
        gc_collect();
        raise(SIGUSR1); /* synchronous: runs before raise returns */
        atomic_fetch_add(&sig_raised[me], 1);
        fault_once(1 + me, k);
        atomic_fetch_add(&sig_faults[me], 1);
    }
    return NULL;
}

/* A thread with SIGUSR2 and SIGALRM blocked, stopped by many collections: its
 * mask is the same afterwards, and the suspend signal never got added. */
static atomic_int mask_stop, mask_same, mask_ready;
static void *masked_thread(void *arg) {
    (void)arg;
    sigset_t block, before, after;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    gc_thread_register();
    atomic_store(&mask_ready, 1);
    while (!atomic_load(&mask_stop)) churn_classes(1);
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    int same = 1;
    for (int s = 1; s < 65; s++) same &= sigismember(&before, s) == sigismember(&after, s);
    atomic_store(&mask_same, same);
    return NULL;
}

static bool await_more(atomic_int *counter, int than, double seconds) {
    double end = check_now() + seconds;
    while (atomic_load(counter) <= than) {
        if (check_now() > end) return false;
        sleep_ms(1);
    }
    return true;
}

TEST_TIMEOUT(program_signal_handlers_are_kept_and_run_during_collections, 60) {
    page_size = sysconf(_SC_PAGESIZE);
    fault_pages = mmap(NULL, 3 * (size_t)page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(fault_pages != MAP_FAILED);
    /* Before the runtime starts. */
    install(SIGUSR1, on_usr1, SA_RESTART, SIGUSR2);
    install(SIGSEGV, on_segv, SA_NODEFER, 0);
    REQUIRE(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
    REQUIRE(gc_alloc(64) != NULL); /* the runtime starts here */
    gc_collect();
    CHECK(handler_is(SIGUSR1, on_usr1, SA_RESTART, SIGUSR2));
    CHECK(handler_is(SIGSEGV, on_segv, SA_NODEFER, 0));
    struct sigaction pipe_sa;
    CHECK(sigaction(SIGPIPE, NULL, &pipe_sa) == 0 && pipe_sa.sa_handler == SIG_IGN);
    /* After it started. */
    install(SIGUSR2, on_usr2, SA_RESTART, 0);
    install(SIGALRM, on_alrm, 0, 0);

    pthread_t col[2], masked;
    start_thread(&masked, masked_thread, NULL);
    REQUIRE(await_int(&mask_ready, 1, 10));
    for (int i = 0; i < 2; i++) start_thread(&col[i], signal_collector, (void *)(intptr_t)i);
    gc_stats st0, st1;
    gc_get_stats(&st0);

    /* Synchronous signals on this thread while the others collect. */
    int raised = 0, faults = 0, usr2_expected = 0;
    for (int i = 0; i < 200; i++) {
        raise(SIGUSR1);
        raised++;
        raise(SIGUSR2);
        usr2_expected++;
        fault_once(0, i);
        faults++;
        if (i % 20 == 0) gc_collect();
    }
    /* Process-directed and thread-directed signals, one at a time (standard
     * signals do not queue): each must run its handler. */
    for (int i = 0; i < 40; i++) {
        int before = atomic_load(&usr2_runs);
        kill(getpid(), SIGUSR2);
        usr2_expected++;
        CHECKF(await_more(&usr2_runs, before, 5), "kill(SIGUSR2) %d: the handler did not run", i);
        before = atomic_load(&usr2_runs);
        pthread_kill(col[i % 2], SIGUSR2);
        usr2_expected++;
        CHECKF(await_more(&usr2_runs, before, 5), "pthread_kill(SIGUSR2) %d: the handler did not run", i);
    }
    /* A 1 ms interval timer: SIGALRM keeps coming during collections. */
    struct itimerval it = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    REQUIRE(setitimer(ITIMER_REAL, &it, NULL) == 0);
    double end = check_now() + 10;
    while (atomic_load(&alrm_runs) < 50 && check_now() < end) sleep_ms(1);
    setitimer(ITIMER_REAL, &off, NULL);
    CHECKF(atomic_load(&alrm_runs) >= 50, "SIGALRM handler ran %d times in 10 s", atomic_load(&alrm_runs));

    atomic_store(&sig_stop, 1);
    for (int i = 0; i < 2; i++) join_within(col[i], 20, "a collecting thread");
    atomic_store(&mask_stop, 1);
    join_within(masked, 20, "the thread with a signal mask");
    gc_get_stats(&st1);

    CHECK_GE(st1.num_gc, st0.num_gc + 20);
    CHECK_EQ(atomic_load(&usr1_runs), raised + atomic_load(&sig_raised[0]) + atomic_load(&sig_raised[1]));
    CHECK_EQ(atomic_load(&usr2_runs), usr2_expected);
    CHECK_EQ(atomic_load(&segv_runs), faults + atomic_load(&sig_faults[0]) + atomic_load(&sig_faults[1]));
    CHECK_EQ(atomic_load(&mask_same), 1);
    /* Still ours, all of them. */
    CHECK(handler_is(SIGUSR1, on_usr1, SA_RESTART, SIGUSR2));
    CHECK(handler_is(SIGUSR2, on_usr2, SA_RESTART, 0));
    CHECK(handler_is(SIGALRM, on_alrm, 0, 0));
    CHECK(handler_is(SIGSEGV, on_segv, SA_NODEFER, 0));
    CHECK(sigaction(SIGPIPE, NULL, &pipe_sa) == 0 && pipe_sa.sa_handler == SIG_IGN);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ===================================================================
 * A program that needs SIGPWR: GCPIN_SIG_SUSPEND moves gcpin elsewhere. */

static atomic_int pwr_runs;
static void on_pwr(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    (void)ctx;
    atomic_fetch_add(&pwr_runs, 1);
}

enum { PWR_OBJS = 64 };
static atomic_int pwr_ready, pwr_release, pwr_bad, pwr_lost, pwr_controls;

static NOINLINE void pwr_hold(void) {
    uint64_t *objs[PWR_OBJS];
    hold_objects(objs, PWR_OBJS, 3000, &pwr_lost);
    atomic_store(&pwr_ready, 1);
    while (!atomic_load(&pwr_release)) sleep_ms(1);
    atomic_store(&pwr_bad, objects_bad(objs, PWR_OBJS, 3000));
    escape(objs);
}
static void *pwr_holder(void *arg) {
    (void)arg;
    pwr_hold();
    return NULL;
}

TEST_TIMEOUT(program_keeps_sigpwr_when_gcpin_uses_another_signal, 30) {
    int sig = SIGRTMIN + 3;
    char num[16];
    snprintf(num, sizeof num, "%d", sig);
    REQUIRE(setenv("GCPIN_SIG_SUSPEND", num, 1) == 0);
    install(SIGPWR, on_pwr, SA_RESTART, 0);
    pthread_t h;
    start_thread(&h, pwr_holder, NULL);
    REQUIRE(await_int(&pwr_ready, 1, 10));
    CHECK(handler_is(SIGPWR, on_pwr, SA_RESTART, 0));
    struct sigaction gs;
    CHECK(sigaction(sig, NULL, &gs) == 0 && gs.sa_handler != SIG_DFL && gs.sa_handler != SIG_IGN);
    make_controls(64, &pwr_controls);
    int sent = 0;
    for (int i = 0; i < 30; i++) {
        churn_classes(3);
        scrub_stack();
        gc_collect(); /* stops the holder with the other signal */
        gc_run_finalizers();
        raise(SIGPWR);
        sent++;
        int before = atomic_load(&pwr_runs);
        pthread_kill(h, SIGPWR);
        sent++;
        CHECKF(await_more(&pwr_runs, before, 5), "SIGPWR %d to the other thread: the program's handler did not run", i);
    }
    collect_until(&pwr_controls, 60, 10);
    CHECK_GE(atomic_load(&pwr_controls), 60); /* the collections do collect */
    sleep_ms(10);
    gc_run_finalizers();
    int lost = atomic_load(&pwr_lost);
    atomic_store(&pwr_release, 1);
    join_within(h, 10, "the holding thread");
    CHECK_EQ(lost, 0);
    CHECK_EQ(atomic_load(&pwr_bad), 0);
    CHECK_EQ(atomic_load(&pwr_runs), sent);
    CHECK(handler_is(SIGPWR, on_pwr, SA_RESTART, 0));
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ===================================================================
 * fork() in a threaded program. */

typedef struct node {
    struct node *next;
    uint64_t key;
    unsigned char *payload; /* noscan, reachable only through the node */
} node;

static NOINLINE node *build_list(uint64_t tag, int len) {
    node *head = NULL;
    for (int i = 0; i < len; i++) {
        node *n = gc_alloc(sizeof *n);
        unsigned char *p = gc_alloc_noscan(24);
        if (!n || !p) return NULL;
        n->key = mix(tag * 100003u + (uint64_t)i);
        for (int j = 0; j < 24; j++) p[j] = (unsigned char)(n->key >> (j % 8 * 8));
        n->payload = p;
        n->next = head;
        head = n;
    }
    return head;
}
static NOINLINE bool list_ok(const node *n, uint64_t tag, int len) {
    int i = len - 1;
    for (; n; n = n->next, i--) {
        if (i < 0 || n->key != mix(tag * 100003u + (uint64_t)i) || !n->payload) return false;
        for (int j = 0; j < 24; j++)
            if (n->payload[j] != (unsigned char)(n->key >> (j % 8 * 8))) return false;
    }
    return i == -1;
}

static node *fork_list;            /* global: a root in the child too */
static gc_pinner fork_pinner;      /* pins fork_pinned twice */
static char *fork_pinned_addr;
static uintptr_t fork_pinned_hidden;
static int fork_reader_pipe[2];
static atomic_int fork_reader_ready, fork_reader_bad, fork_reader_lost;

static NOINLINE void fork_reader_body(void) {
    uint64_t *objs[16];
    hold_objects(objs, 16, 5000, &fork_reader_lost);
    atomic_store(&fork_reader_ready, 1);
    unsigned char buf[256];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t r = read(fork_reader_pipe[0], buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    int bad = got != sizeof buf;
    for (size_t i = 0; i < got; i++) bad += buf[i] != (unsigned char)(i * 13);
    atomic_store(&fork_reader_bad, bad + objects_bad(objs, 16, 5000));
    escape(objs);
}
static void *fork_reader(void *arg) {
    (void)arg;
    fork_reader_body();
    return NULL;
}

/* In the child: a thread of the child's own. */
static void *child_worker(void *arg) {
    uint64_t tag = 900 + (uint64_t)(uintptr_t)arg;
    node *l = build_list(tag, 800);
    int ok = l != NULL;
    for (int i = 0; i < 5 && ok; i++) {
        churn_classes(2);
        gc_collect();
        ok = list_ok(l, tag, 800);
    }
    gc_pinner pn = {0};
    ok &= pinner_pin(&pn, l) == GC_OK && is_pinned(l) && gc_check_pointer(l) == GC_ERR_UNPINNED_POINTER;
    pinner_unpin(&pn);
    ok &= !is_pinned(l);
    return (void *)(intptr_t)ok;
}

static atomic_int child_fin;
static NOINLINE void child_garbage(void) {
    for (int i = 0; i < 50; i++) {
        void *o = gc_alloc(80);
        if (o) gc_set_finalizer(o, count_fin, &child_fin);
    }
}

static int grandchild(void) {
    node *l = build_list(77, 500);
    gc_collect();
    if (!list_ok(l, 77, 500) || !list_ok(fork_list, 1, 2000)) return 1;
    return gc_verify_heap() == GC_OK ? 0 : 2;
}

/* Returns 0, or the number of the first check that failed. */
static int fork_child(void) {
    if (!list_ok(fork_list, 1, 2000)) return 10;
    if (gc_pin_count(fork_pinned_addr) != 2 || !is_pinned(fork_pinned_addr)) return 11;
    pthread_t w[3];
    for (int i = 0; i < 3; i++)
        if (pthread_create(&w[i], NULL, child_worker, (void *)(intptr_t)i) != 0) return 12;
    for (int i = 0; i < 10; i++) {
        churn_classes(2);
        gc_collect();
    }
    for (int i = 0; i < 3; i++) {
        void *ok = NULL;
        pthread_join(w[i], &ok);
        if (!ok) return 13;
    }
    child_garbage();
    if (!collect_until(&child_fin, 45, 20)) return 14;
    pinner_unpin(&fork_pinner);
    if (gc_pin_count(fork_pinned_addr) != 0) return 15;
    /* Fork again, while a thread of the child collects. */
    struct collector c;
    collector_start(&c, 0);
    pid_t pid = fork();
    if (pid < 0) return 16;
    if (pid == 0) _exit(grandchild());
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 17;
    atomic_store(&c.stop, 1);
    pthread_join(c.t, NULL);
    if (!list_ok(fork_list, 1, 2000)) return 18;
    if (gc_verify_heap() != GC_OK) return 19;
    return 0;
}

static NOINLINE void pin_fork_object(void) {
    char *p = gc_alloc_noscan(200);
    REQUIRE(p != NULL);
    CHECK_STATUS(pinner_pin(&fork_pinner, p), GC_OK);
    CHECK_STATUS(pinner_pin(&fork_pinner, p + 10), GC_OK);
    fork_pinned_hidden = HIDE(p); /* only the pins keep it */
}

TEST_TIMEOUT(forked_child_runs_threads_of_its_own_and_forks_again, 60) {
    REQUIRE(pipe(fork_reader_pipe) == 0);
    fork_list = build_list(1, 2000);
    REQUIRE(fork_list != NULL);
    pin_fork_object();
    fork_pinned_addr = UNHIDE(fork_pinned_hidden);
    pthread_t r;
    start_thread(&r, fork_reader, NULL);
    REQUIRE(await_int(&fork_reader_ready, 1, 10));
    struct collector c[2];
    collector_start(&c[0], 0);
    collector_start(&c[1], 1);
    for (int k = 0; k < 4; k++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) _exit(fork_child());
        int status = 0;
        double end = check_now() + 30;
        pid_t w;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && check_now() < end) sleep_ms(2);
        if (w == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            CHECKF(false, "child %d did not finish within 30 s", k);
            continue;
        }
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "child %d: %s %d (exit codes: 10 list, 11 pins, 12-13 its threads, 14 finalizers, 15 unpin, 16-17 "
               "grandchild, 18 list after, 19 verify)",
               k, WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    /* The parent is unaffected: its threads, its pins, its list. */
    for (int i = 0; i < 2; i++) collector_stop(&c[i]);
    unsigned char msg[256];
    for (int i = 0; i < 256; i++) msg[i] = (unsigned char)(i * 13);
    CHECK_EQ(write(fork_reader_pipe[1], msg, sizeof msg), (ssize_t)sizeof msg);
    join_within(r, 10, "the reader");
    CHECK_EQ(atomic_load(&fork_reader_bad), 0);
    CHECK_EQ(atomic_load(&fork_reader_lost), 0);
    CHECK_EQ(gc_pin_count(fork_pinned_addr), 2);
    CHECK(list_ok(fork_list, 1, 2000));
    pinner_unpin(&fork_pinner);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* Docs: an unreachable object with a finalizer is kept until its finalizer has
 * run, "on a runtime thread, or in gc_run_finalizers". A child that never calls
 * gc_run_finalizers relies on the runtime thread. */
enum { PRE_FORK = 100 };
static void *pre_fork_objs[PRE_FORK]; /* bss: a root until the child clears it */
static atomic_int pre_fork_fin;
static int pre_fork_report[2];

static int finalizer_child(void) {
    memset(pre_fork_objs, 0, sizeof pre_fork_objs);
    for (int i = 0; i < 3; i++) {
        scrub_stack();
        gc_collect(); /* no gc_run_finalizers: the runtime runs them */
    }
    double end = check_now() + 2;
    while (atomic_load(&pre_fork_fin) < PRE_FORK - 5 && check_now() < end) sleep_ms(5);
    int on_their_own = atomic_load(&pre_fork_fin);
    size_t by_hand = gc_run_finalizers();
    int r[2] = {on_their_own, (int)by_hand};
    if (write(pre_fork_report[1], r, sizeof r) != (ssize_t)sizeof r) return 2;
    return on_their_own >= PRE_FORK - 5 ? 0 : 1;
}

TEST_TIMEOUT(finalizers_set_before_fork_run_in_the_child, 30) {
    REQUIRE(pipe(pre_fork_report) == 0);
    escape(pre_fork_objs); /* the stores below are real: the collector reads them */
    for (int i = 0; i < PRE_FORK; i++) {
        pre_fork_objs[i] = gc_alloc(64);
        REQUIRE(pre_fork_objs[i] != NULL);
        CHECK_STATUS(gc_set_finalizer(pre_fork_objs[i], count_fin, &pre_fork_fin), GC_OK);
    }
    gc_collect(); /* the parent's finalizer thread runs from here on */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(finalizer_child());
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    int r[2] = {-1, -1};
    CHECK_EQ(read(pre_fork_report[0], r, sizeof r), (ssize_t)sizeof r);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "in the child, %d of %d finalizers ran on their own within 2 s of the collections; "
           "gc_run_finalizers then ran %d (status %#x)",
           r[0], PRE_FORK, r[1], status);
    /* In the parent they are still reachable. */
    gc_collect();
    gc_run_finalizers();
    CHECK_EQ(atomic_load(&pre_fork_fin), 0);
}

/* ===================================================================
 * Threads blocked in system calls while many collections run. */

enum { STREAM = 64 << 10, WSTREAM = 256 << 10, HELD = 24 };
static int pa[2], pb[2], pc[2];
static sem_t blk_sem;
static pthread_mutex_t blk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t blk_cv = PTHREAD_COND_INITIALIZER;
static int blk_cv_go;
static atomic_int blk_ready, blk_lost, blk_release;
static atomic_int read_eintr, write_eintr, poll_eintr, sleep_eintr, sem_eintr;
static atomic_int read_bad, write_bad, poll_bad, sleep_bad, sem_bad, cv_bad;
static atomic_long blk_tid[6];
static double sleep_took;

static unsigned char stream_byte(size_t i, unsigned salt) { return (unsigned char)(i * 31 + salt + (i >> 12)); }

static NOINLINE void blocked_reader(void) {
    uint64_t *objs[HELD];
    hold_objects(objs, HELD, 100, &blk_lost);
    unsigned char *buf = gc_alloc_noscan(STREAM); /* only on this stack */
    gc_set_finalizer(buf, count_fin, &blk_lost);
    atomic_store(&blk_tid[0], (long)gettid());
    atomic_fetch_add(&blk_ready, 1);
    size_t got = 0;
    while (got < STREAM) {
        ssize_t r = read(pa[0], buf + got, STREAM - got);
        if (r < 0 && errno == EINTR) {
            atomic_fetch_add(&read_eintr, 1);
            continue;
        }
        if (r <= 0) break;
        got += (size_t)r;
    }
    int bad = got != STREAM;
    for (size_t i = 0; i < got; i++) bad += buf[i] != stream_byte(i, 1);
    atomic_store(&read_bad, bad + objects_bad(objs, HELD, 100));
    escape(objs);
    escape(buf);
}

static NOINLINE void blocked_writer(void) {
    uint64_t *objs[HELD];
    hold_objects(objs, HELD, 200, &blk_lost);
    unsigned char *buf = gc_alloc_noscan(WSTREAM);
    for (size_t i = 0; i < WSTREAM; i++) buf[i] = stream_byte(i, 2);
    gc_set_finalizer(buf, count_fin, &blk_lost);
    atomic_store(&blk_tid[1], (long)gettid());
    atomic_fetch_add(&blk_ready, 1);
    size_t put = 0;
    while (put < WSTREAM) { /* blocks once the pipe is full */
        ssize_t w = write(pb[1], buf + put, WSTREAM - put);
        if (w < 0 && errno == EINTR) {
            atomic_fetch_add(&write_eintr, 1);
            continue;
        }
        if (w <= 0) break;
        put += (size_t)w;
    }
    atomic_store(&write_bad, (put != WSTREAM) + objects_bad(objs, HELD, 200));
    escape(objs);
    escape(buf);
}

/* nanosleep is never restarted by the kernel: EINTR is expected during
 * collections, and the program resumes with the remaining time. */
static NOINLINE void blocked_sleeper(void) {
    uint64_t *objs[HELD];
    hold_objects(objs, HELD, 300, &blk_lost);
    atomic_store(&blk_tid[2], (long)gettid());
    atomic_fetch_add(&blk_ready, 1);
    double t0 = check_now();
    struct timespec left = {0, 400 * 1000000L};
    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR) break;
        atomic_fetch_add(&sleep_eintr, 1);
    }
    sleep_took = check_now() - t0;
    while (!atomic_load(&blk_release)) sleep_ms(1);
    atomic_store(&sleep_bad, objects_bad(objs, HELD, 300));
    escape(objs);
}

/* poll is never restarted either: EINTR, then poll again with the time left. */
static NOINLINE void blocked_poller(void) {
    uint64_t *objs[HELD];
    hold_objects(objs, HELD, 400, &blk_lost);
    atomic_store(&blk_tid[3], (long)gettid());
    atomic_fetch_add(&blk_ready, 1);
    double end = check_now() + 20;
    int bad = 1;
    for (;;) {
        struct pollfd p = {.fd = pc[0], .events = POLLIN};
        int ms = (int)((end - check_now()) * 1000);
        if (ms <= 0) break;
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) {
            atomic_fetch_add(&poll_eintr, 1);
            continue;
        }
        if (r == 1 && (p.revents & POLLIN)) {
            unsigned char b[100];
            bad = read(pc[0], b, sizeof b) != (ssize_t)sizeof b;
            for (int i = 0; i < 100; i++) bad += b[i] != stream_byte((size_t)i, 3);
        }
        break;
    }
    atomic_store(&poll_bad, bad + objects_bad(objs, HELD, 400));
    escape(objs);
}

/* signal(7) lists sem_wait among the calls that fail with EINTR whatever
 * SA_RESTART says (glibc's futex wait is in fact restarted): loop on EINTR. */
static NOINLINE void blocked_sem(void) {
    uint64_t *objs[HELD];
    hold_objects(objs, HELD, 500, &blk_lost);
    atomic_store(&blk_tid[4], (long)gettid());
    atomic_fetch_add(&blk_ready, 1);
    int r;
    while ((r = sem_wait(&blk_sem)) != 0 && errno == EINTR) atomic_fetch_add(&sem_eintr, 1);
    atomic_store(&sem_bad, (r != 0) + objects_bad(objs, HELD, 500));
    escape(objs);
}

static NOINLINE void blocked_cond(void) {
    uint64_t *objs[HELD];
    hold_objects(objs, HELD, 600, &blk_lost);
    atomic_store(&blk_tid[5], (long)gettid());
    atomic_fetch_add(&blk_ready, 1);
    pthread_mutex_lock(&blk_mu);
    while (!blk_cv_go) pthread_cond_wait(&blk_cv, &blk_mu); /* never EINTR */
    pthread_mutex_unlock(&blk_mu);
    atomic_store(&cv_bad, objects_bad(objs, HELD, 600));
    escape(objs);
}

static void *blocked_thread(void *arg) {
    switch ((int)(intptr_t)arg) {
    case 0: blocked_reader(); break;
    case 1: blocked_writer(); break;
    case 2: blocked_sleeper(); break;
    case 3: blocked_poller(); break;
    case 4: blocked_sem(); break;
    default: blocked_cond(); break;
    }
    return NULL;
}

TEST_TIMEOUT(threads_blocked_in_system_calls_keep_their_data_and_objects, 60) {
    REQUIRE(pipe(pa) == 0 && pipe(pb) == 0 && pipe(pc) == 0);
    REQUIRE(sem_init(&blk_sem, 0, 0) == 0);
    gc_collect();
    pthread_t t[6];
    for (int i = 0; i < 6; i++) start_thread(&t[i], blocked_thread, (void *)(intptr_t)i);
    REQUIRE(await_int(&blk_ready, 6, 10));
    for (int i = 0; i < 6; i++) wait_blocked(atomic_load(&blk_tid[i]));
    static atomic_int controls;
    make_controls(64, &controls);
    gc_stats st0, st1;
    gc_get_stats(&st0);
    for (int i = 0; i < 60; i++) {
        churn_classes(3);
        scrub_stack();
        gc_collect();
        gc_run_finalizers();
    }
    gc_get_stats(&st1);
    CHECK_GE(st1.num_gc, st0.num_gc + 60);
    collect_until(&controls, 60, 10);
    CHECK_GE(atomic_load(&controls), 60);
    sleep_ms(10);
    gc_run_finalizers();
    int lost = atomic_load(&blk_lost); /* before anyone is released */

    /* Release them, with collections in between. */
    for (size_t off = 0; off < STREAM; off += 4096) {
        unsigned char chunk[4096];
        for (size_t i = 0; i < 4096; i++) chunk[i] = stream_byte(off + i, 1);
        CHECK_EQ(write(pa[1], chunk, sizeof chunk), (ssize_t)sizeof chunk);
        if (off % 16384 == 0) gc_collect();
    }
    size_t got = 0;
    int wbad = 0;
    while (got < WSTREAM) {
        unsigned char chunk[8192];
        ssize_t r = read(pb[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) wbad += chunk[i] != stream_byte(got + (size_t)i, 2);
        got += (size_t)r;
        if (got % 65536 < 8192) gc_collect();
    }
    unsigned char small[100];
    for (int i = 0; i < 100; i++) small[i] = stream_byte((size_t)i, 3);
    CHECK_EQ(write(pc[1], small, sizeof small), (ssize_t)sizeof small);
    sem_post(&blk_sem);
    pthread_mutex_lock(&blk_mu);
    blk_cv_go = 1;
    pthread_cond_signal(&blk_cv);
    pthread_mutex_unlock(&blk_mu);
    atomic_store(&blk_release, 1);
    for (int i = 0; i < 6; i++) join_within(t[i], 20, "a blocked thread");

    CHECK_EQ(lost, 0);
    CHECK_EQ(got, (size_t)WSTREAM);
    CHECK_EQ(wbad, 0);
    CHECK_EQ(atomic_load(&read_bad), 0);
    CHECK_EQ(atomic_load(&write_bad), 0);
    CHECK_EQ(atomic_load(&poll_bad), 0);
    CHECK_EQ(atomic_load(&sleep_bad), 0);
    CHECK_EQ(atomic_load(&sem_bad), 0);
    CHECK_EQ(atomic_load(&cv_bad), 0);
    /* SA_RESTART: read and write resume by themselves. */
    CHECK_EQ(atomic_load(&read_eintr), 0);
    CHECK_EQ(atomic_load(&write_eintr), 0);
    /* The sleep, resumed with the remaining time, lasted its 400 ms (not much
     * more: a thread is never kept stopped for long). */
    CHECKF(sleep_took >= 0.399 && sleep_took < 10, "400 ms of nanosleep took %.3f s", sleep_took);
    if (getenv("CHECK_TIMES"))
        fprintf(stderr, "    EINTR: nanosleep %d, poll %d, sem_wait %d\n", atomic_load(&sleep_eintr),
                atomic_load(&poll_eintr), atomic_load(&sem_eintr));
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ===================================================================
 * A thread that blocks every signal for a while: the collection waits for it
 * (README: "a collection waits for it") and never runs while it runs. */

static atomic_int bs_phase, bs_bad, bs_lost;
static double bs_unblocked_at;

static NOINLINE void block_all_for_a_while(void) {
    uint64_t *objs[HELD];
    hold_objects(objs, HELD, 700, &bs_lost);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    atomic_store(&bs_phase, 1);
    double until = check_now() + 0.3;
    while (check_now() < until) {
        /* a critical section: no gcpin calls, no signals */
    }
    bs_unblocked_at = check_now();
    pthread_sigmask(SIG_SETMASK, &old, NULL); /* the pending stop request arrives here */
    atomic_store(&bs_bad, objects_bad(objs, HELD, 700));
    escape(objs);
}
static void *signal_blocker(void *arg) {
    (void)arg;
    block_all_for_a_while();
    return NULL;
}

TEST_TIMEOUT(collection_waits_for_a_thread_that_blocks_signals, 30) {
    gc_collect();
    pthread_t t;
    start_thread(&t, signal_blocker, NULL);
    REQUIRE(await_int(&bs_phase, 1, 10));
    churn_classes(4);
    gc_collect();
    double done = check_now();
    join_within(t, 10, "the blocking thread");
    CHECKF(done >= bs_unblocked_at, "the collection finished %.3f s before the thread unblocked the signal",
           bs_unblocked_at - done);
    for (int i = 0; i < 5; i++) {
        scrub_stack();
        gc_collect();
    }
    CHECK_EQ(atomic_load(&bs_bad), 0);
}

/* ===================================================================
 * Objects reachable only from a program signal handler's frame. */

enum { SH_WORDS = 16 };
static uintptr_t sh_hidden;
static atomic_int sh_ready, sh_release, sh_bad, sh_lost, sh_controls;

static NOINLINE void sh_wait(void) {
    while (!atomic_load(&sh_release)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* The only reference lives in this frame (a volatile slot in memory, not a
 * register) while the handler waits. */
static void on_hold(int sig) {
    (void)sig;
    volatile uintptr_t slot[2];
    slot[0] = (uintptr_t)UNHIDE(sh_hidden);
    slot[1] = 0;
    sh_hidden = 0;
    atomic_store(&sh_ready, 1);
    sh_wait();
    atomic_store(&sh_bad, !words_intact((const uint64_t *)slot[0], SH_WORDS, 4321));
    slot[0] = 0;
}

static NOINLINE void make_handler_object(void) {
    uint64_t *o = gc_alloc(SH_WORDS * 8);
    REQUIRE(o != NULL);
    fill_words(o, SH_WORDS, 4321);
    CHECK_STATUS(gc_set_finalizer(o, count_fin, &sh_lost), GC_OK);
    sh_hidden = HIDE(o);
}

static void *handler_holder(void *arg) {
    if (arg != NULL) use_alt_stack();
    CHECK_STATUS(gc_thread_register(), GC_OK);
    make_handler_object();
    scrub_stack();
    raise(SIGUSR1); /* the handler runs here until released */
    return NULL;
}

static void handler_frame_test(bool alt) {
    on_signal(SIGUSR1, on_hold, SA_RESTART | (alt ? SA_ONSTACK : 0));
    gc_collect();
    pthread_t t;
    start_thread(&t, handler_holder, alt ? (void *)1 : NULL);
    REQUIRE(await_int(&sh_ready, 1, 10));
    make_controls(64, &sh_controls);
    churn_and_collect(20);
    collect_until(&sh_controls, 60, 10);
    CHECK_GE(atomic_load(&sh_controls), 60);
    sleep_ms(10);
    gc_run_finalizers();
    int lost = atomic_load(&sh_lost);
    atomic_store(&sh_release, 1);
    join_within(t, 10, "the thread in the handler");
    CHECKF(lost == 0, "the object only the %s handler frame refers to was freed",
           alt ? "alternate-stack" : "thread-stack");
    CHECK_EQ(atomic_load(&sh_bad), 0);
}

TEST_TIMEOUT(object_held_only_by_a_signal_handler_frame_survives, 30) { handler_frame_test(false); }

/* Docs: the stacks of every registered thread are roots. A handler installed
 * with SA_ONSTACK runs on the thread's alternate signal stack (sigaltstack),
 * memory the program mapped for it. */
TEST_TIMEOUT(object_held_only_by_a_handler_on_the_alternate_signal_stack_survives, 30) {
    handler_frame_test(true);
}

/* ===================================================================
 * Threads that come and go while another thread collects. */

static atomic_int cg_bad, cg_detached_done, cg_lost;

static NOINLINE int list_work(uint64_t tag) {
    node *l = build_list(tag, 300);
    churn_classes(2);
    gc_collect();
    return !list_ok(l, tag, 300);
}
static NOINLINE void exit_from_deep(uint64_t tag, int depth) {
    if (depth < 0) return;
    if (depth > 0) {
        exit_from_deep(tag, depth - 1);
        return;
    }
    uint64_t *objs[8];
    hold_objects(objs, 8, tag, &cg_lost);
    atomic_fetch_add(&cg_bad, list_work(tag));
    atomic_fetch_add(&cg_bad, objects_bad(objs, 8, tag));
    pthread_exit(NULL); /* from inside nested frames, objects on the stack */
}
static void *come_and_go(void *arg) {
    intptr_t k = (intptr_t)arg;
    uint64_t tag = 2000 + (uint64_t)k;
    switch (k % 4) {
    case 0: /* joined */
        atomic_fetch_add(&cg_bad, list_work(tag));
        break;
    case 1: /* detached */
        atomic_fetch_add(&cg_bad, list_work(tag));
        atomic_fetch_add(&cg_detached_done, 1);
        break;
    case 2: /* unregisters itself before it ends */
        atomic_fetch_add(&cg_bad, list_work(tag));
        scrub_stack();
        atomic_fetch_add(&cg_bad, gc_thread_unregister() != GC_OK);
        break;
    default:
        exit_from_deep(tag, 5);
    }
    return NULL;
}

TEST_TIMEOUT(threads_come_and_go_while_another_thread_collects, 60) {
    gc_collect();
    struct collector c;
    collector_start(&c, 1);
    int detached = 0;
    for (int round = 0; round < 20; round++) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            intptr_t k = round * 4 + i;
            start_thread(&t[i], come_and_go, (void *)k);
            if (k % 4 == 1) {
                pthread_detach(t[i]);
                detached++;
            }
        }
        for (int i = 0; i < 4; i++)
            if ((round * 4 + i) % 4 != 1) join_within(t[i], 20, "a short-lived thread");
    }
    CHECK(await_int(&cg_detached_done, detached, 20));
    CHECK(collector_progress(&c, 5));
    collector_stop(&c);
    CHECK_EQ(atomic_load(&cg_bad), 0);
    /* The pthread_exit threads' objects are garbage now. */
    CHECK(collect_until(&cg_lost, 20 * 8 - 4, 20));
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ===================================================================
 * A handler that leaves with siglongjmp: the classic timeout around a blocking
 * call. The signal may arrive at any moment, including while the thread is
 * stopped for a collection. */

static _Thread_local sigjmp_buf jmp_env;
static atomic_int jmp_stop, jmp_count, jmp_ready;
static void on_timeout(int sig) {
    (void)sig;
    siglongjmp(jmp_env, 1);
}
static void *timeout_worker(void *arg) {
    (void)arg;
    gc_thread_register();
    atomic_store(&jmp_ready, 1);
    while (!atomic_load(&jmp_stop)) {
        if (sigsetjmp(jmp_env, 1) == 0) {
            for (;;) pause(); /* "blocking call with a timeout" */
        }
        atomic_fetch_add(&jmp_count, 1);
    }
    return NULL;
}

TEST_TIMEOUT(handler_that_leaves_with_siglongjmp_while_another_thread_collects, 60) {
    on_signal(SIGUSR2, on_timeout, 0);
    gc_collect();
    pthread_t w;
    start_thread(&w, timeout_worker, NULL);
    REQUIRE(await_int(&jmp_ready, 1, 10));
    struct collector c;
    collector_start(&c, 0);
    CHECK_STATUS(gc_thread_unregister(), GC_OK); /* never stopped: see the test above */
    for (int i = 0; i < 1000; i++) {
        int before = atomic_load(&jmp_count);
        pthread_kill(w, SIGUSR2);
        if (!await_more(&jmp_count, before, 5)) {
            check_fail(__FILE__, __LINE__, "timeout %d: the worker did not come back from its handler", i);
            check_end_test();
        }
        if (i % 100 == 99) {
            long done = atomic_load(&c.done);
            if (!collector_progress(&c, 1)) {
                check_fail(__FILE__, __LINE__,
                           "the collecting thread is stuck: %ld collections, none in 3 s, while the worker "
                           "left its handler with siglongjmp %d times",
                           done, atomic_load(&jmp_count));
                check_end_test();
            }
        }
    }
    atomic_store(&jmp_stop, 1);
    pthread_kill(w, SIGUSR2);
    join_within(w, 10, "the worker");
    collector_stop(&c);
    CHECK_STATUS(gc_thread_register(), GC_OK);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ===================================================================
 * Subprocesses started while another thread collects. */

TEST_TIMEOUT(posix_spawn_and_system_while_another_thread_collects, 60) {
    gc_collect();
    struct collector c;
    collector_start(&c, 0);
    for (int i = 0; i < 10; i++) {
        pid_t pid;
        char *argv[] = {"/bin/sh", "-c", "exit 7", NULL};
        REQUIRE(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) == 0);
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 7, "spawned shell %d: status %#x", i, status);
        if (i % 3 == 0) {
            int r = system("exit 3");
            CHECKF(WIFEXITED(r) && WEXITSTATUS(r) == 3, "system() %d: %#x", i, r);
        }
        churn_classes(2);
    }
    CHECK(collector_progress(&c, 3));
    collector_stop(&c);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ===================================================================
 * Under an address-space limit (ulimit -v): the runtime reserves a smaller
 * arena, and allocation past its end gives NULL + ENOMEM, not a crash. */

static long vm_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = -1;
    if (fscanf(f, "%ld", &pages) != 1) pages = -1;
    fclose(f);
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

enum { AS_KEEP = 4096 };
static void *as_keep[AS_KEEP];

TEST_TIMEOUT(address_space_limit_gives_a_smaller_heap_and_enomem, 60) {
    long vm = vm_bytes();
    REQUIRE(vm > 0);
    struct rlimit rl = {(rlim_t)vm + ((rlim_t)1536 << 20), (rlim_t)vm + ((rlim_t)1536 << 20)};
    REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0); /* before the runtime starts */
    escape(as_keep); /* the stores below are real: the collector reads them */
    int n = 0;
    errno = 0;
    for (; n < AS_KEEP; n++) {
        as_keep[n] = gc_alloc_noscan(16 << 20); /* never touched: costs no memory */
        if (!as_keep[n]) break;
    }
    CHECKF(n < AS_KEEP && errno == ENOMEM, "after %d chunks of 16 MiB: errno %d", n, errno);
    CHECK_GE(n, 8);      /* at least 128 MiB of heap */
    CHECK_LE(n, 1536 / 16); /* no more than the address space allows */
    /* Still working: collections, small allocations, threads. */
    for (int i = 0; i < 4; i++) as_keep[i] = NULL;
    collect_hard();
    CHECK(gc_alloc(100) != NULL);
    struct collector c;
    collector_start(&c, 1);
    CHECK(collector_progress(&c, 3));
    collector_stop(&c);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ===================================================================
 * Collections that start on an alternate signal stack: gc_collect, an
 * automatic collection and (under GCPIN_STRESS) stress collections, inside a
 * handler installed with SA_ONSTACK. The scan covers the used part of the
 * alternate stack and the interrupted thread stack, each within its bounds
 * (the main thread's stack is mapped only as far as it has grown). */

static atomic_int as_bad, as_done;

static void collect_on_alt_stack(int sig) {
    (void)sig;
    node *l = build_list(777, 200); /* only the handler's frames hold it */
    for (int i = 0; i < 3; i++) {
        churn_classes(20);
        gc_collect();
    }
    for (int i = 0; i < 12 * 1024; i++) (void)gc_alloc(1024); /* crosses the trigger */
    atomic_fetch_add(&as_bad, !list_ok(l, 777, 200));
    atomic_fetch_add(&as_done, 1);
}

static NOINLINE void raise_with_a_list_on_the_stack(uint64_t tag) {
    node *outer = build_list(tag, 100); /* only the interrupted frame holds it */
    scrub_stack();
    raise(SIGUSR2);
    atomic_fetch_add(&as_bad, !list_ok(outer, tag, 100));
}

static void *alt_collector_thread(void *arg) {
    (void)arg;
    use_alt_stack();
    raise_with_a_list_on_the_stack(901);
    return NULL;
}

TEST_TIMEOUT(collections_started_in_a_handler_on_the_alternate_signal_stack, 60) {
    on_signal(SIGUSR2, collect_on_alt_stack, SA_ONSTACK);
    use_alt_stack();
    raise_with_a_list_on_the_stack(900); /* on the main thread */
    pthread_t t;
    start_thread(&t, alt_collector_thread, NULL);
    join_within(t, 30, "the thread collecting on its alternate stack");
    CHECK_EQ(atomic_load(&as_done), 2);
    CHECK_EQ(atomic_load(&as_bad), 0);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}
