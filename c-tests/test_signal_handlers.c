/* Signal handlers that call gcpin. A handler may interrupt its thread anywhere,
 * including inside gcpin (holding a heap lock, or collecting with the world
 * lock held). Serving such a call would deadlock, so gcpin refuses it: NULL
 * with errno = EDEADLK from gc_alloc, GC_ERR_WOULD_DEADLOCK from calls with a
 * status, nothing done (errno = EDEADLK) by the others. A handler that
 * interrupted its thread outside gcpin is served normally. */
#include "check.h"

#include <sched.h>
#include <sys/syscall.h>
#include <sys/time.h>

static atomic_long served, refused, wrong;

static void alloc_in_handler(int sig) {
    (void)sig;
    int saved = errno;
    static int n;
    errno = 0;
    void *p = gc_alloc(48);
    if (p != NULL) {
        memset(p, 0x5A, 48);
        atomic_fetch_add(&served, 1);
    } else if (errno == EDEADLK) {
        atomic_fetch_add(&refused, 1);
    } else {
        atomic_fetch_add(&wrong, 1);
    }
    gc_pinner pin = {0};
    gc_status st = pinner_pin(&pin, p ? p : (void *)&pin);
    if (p != NULL && st != GC_OK && st != GC_ERR_WOULD_DEADLOCK) atomic_fetch_add(&wrong, 1);
    if (st == GC_OK) pinner_unpin(&pin);
    if (++n % 16 == 0) gc_collect(); /* refused if the thread was collecting */
    errno = saved;
}

static void start_timer(int us) {
    struct itimerval it = {{0, us}, {0, us}};
    REQUIRE(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static void stop_timer(void) {
    struct itimerval it = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* The main thread allocates, pins and collects in a loop while a 1 ms timer's
 * handler does the same on it: every handler call is served or refused,
 * none hangs. */
TEST_TIMEOUT(gcpin_calls_from_a_handler_that_interrupted_gcpin_are_refused_not_deadlocked, 60) {
    on_signal(SIGALRM, alloc_in_handler, SA_RESTART);
    gc_thread_register();
    start_timer(1000);
    double end = check_now() + 1.5;
    long rounds = 0;
    while (check_now() < end) {
        gc_pinner pin = {0};
        for (int i = 0; i < 1000; i++) {
            void *p = gc_alloc((size_t)(16 + (i % 64) * 16));
            REQUIRE(p != NULL);
            if (i % 8 == 0) CHECK_STATUS(pinner_pin(&pin, p), GC_OK);
        }
        pinner_unpin(&pin);
        if (++rounds % 20 == 0) gc_collect();
    }
    stop_timer();
    long s = atomic_load(&served), r = atomic_load(&refused);
    fprintf(stderr, "    %ld handler calls served, %ld refused, %ld rounds\n", s, r, rounds);
    CHECK_GT(s + r, 100);
    CHECK_EQ(atomic_load(&wrong), 0);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* A handler that interrupts its thread while it collects (holding the world
 * lock): a second thread signals the collecting thread every 200 us, and the
 * handler asks for statistics and a heap check, which stop the world. */
static atomic_int sig_stop;
static pthread_t sig_target;

static void *signal_loop(void *arg) {
    (void)arg;
    while (!atomic_load(&sig_stop)) {
        pthread_kill(sig_target, SIGUSR1);
        usleep(200);
    }
    return NULL;
}

static atomic_long collect_refused, collect_served;

static void collect_in_handler(int sig) {
    (void)sig;
    int saved = errno;
    errno = 0;
    gc_stats st;
    memset(&st, 0, sizeof st);
    gc_get_stats(&st);
    if (st.num_gc == 0 && errno == EDEADLK)
        atomic_fetch_add(&collect_refused, 1);
    else
        atomic_fetch_add(&collect_served, 1);
    gc_status v = gc_verify_heap();
    CHECK(v == GC_OK || v == GC_ERR_WOULD_DEADLOCK);
    errno = saved;
}

TEST_TIMEOUT(stats_and_verify_from_a_handler_while_its_thread_collects, 60) {
    on_signal(SIGUSR1, collect_in_handler, SA_RESTART);
    gc_thread_register();
    sig_target = pthread_self();
    pthread_t t;
    start_thread(&t, signal_loop, NULL);
    double end = check_now() + 1.0;
    while (check_now() < end) {
        for (int i = 0; i < 2000; i++) (void)gc_alloc(64);
        gc_collect();
    }
    atomic_store(&sig_stop, 1);
    pthread_join(t, NULL);
    fprintf(stderr, "    %ld handler calls served, %ld refused\n", atomic_load(&collect_served),
            atomic_load(&collect_refused));
    CHECK_GT(atomic_load(&collect_served) + atomic_load(&collect_refused), 100);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* A thread's first gcpin call registers it, which waits for the world lock
 * while a collection holds it; a handler that interrupts that wait and calls
 * gcpin must neither register the thread a second time (behind its own
 * ticket for the lock: it would wait for ever) nor be refused for good: it is
 * served once the thread is registered. The collection is held from its start
 * callback (libgc's GC_set_start_callback, which libgcpin exports) until the
 * new thread waits in the kernel and has been signalled. */
void GC_set_start_callback(void (*fn)(void));

static atomic_int reg_armed, reg_go, reg_done, reg_handler_served, reg_handler_refused;
static atomic_long reg_tid;
static pthread_t reg_thread;

static void alloc_once_in_handler(int sig) {
    (void)sig;
    int saved = errno;
    errno = 0;
    void *p = gc_alloc(48);
    if (p != NULL)
        atomic_fetch_add(&reg_handler_served, 1);
    else if (errno == EDEADLK)
        atomic_fetch_add(&reg_handler_refused, 1);
    errno = saved;
}

static void *first_call_thread(void *arg) {
    (void)arg;
    atomic_store(&reg_tid, (long)syscall(SYS_gettid));
    while (!atomic_load(&reg_go)) sched_yield();
    escape(gc_alloc(64)); /* registers: waits for the world lock */
    atomic_store(&reg_done, 1);
    return NULL;
}

/* On the collecting thread, with the world lock held. */
static void hold_collection_until_signalled(void) {
    if (!atomic_exchange(&reg_armed, 0)) return;
    atomic_store(&reg_go, 1);
    double end = check_now() + 5;
    while (thread_syscall(atomic_load(&reg_tid)) != SYS_futex && check_now() < end) sched_yield();
    sleep_ms(5); /* well inside the wait */
    pthread_kill(reg_thread, SIGUSR2);
    sleep_ms(20); /* time for a handler to run (and, before the fix, to hang) */
}

TEST_TIMEOUT(a_handler_that_interrupts_the_first_call_waiting_to_register_is_served_after_it, 60) {
    on_signal(SIGUSR2, alloc_once_in_handler, SA_RESTART);
    escape(gc_alloc(64));
    start_thread(&reg_thread, first_call_thread, NULL);
    while (atomic_load(&reg_tid) == 0) sched_yield();
    GC_set_start_callback(hold_collection_until_signalled);
    atomic_store(&reg_armed, 1);
    gc_collect();
    GC_set_start_callback(NULL);
    CHECK_EQ(atomic_load(&reg_armed), 0);
    CHECKF(await_int(&reg_done, 1, 10), "the thread never finished its first gcpin call (deadlocked registering)");
    CHECK_EQ(atomic_load(&reg_handler_served), 1);
    CHECK_EQ(atomic_load(&reg_handler_refused), 0);
    if (atomic_load(&reg_done)) pthread_join(reg_thread, NULL);
}

/* The runtime's threads start with the program's signals blocked. A fast
 * timer's SIGALRM, process-directed, goes to any thread that does not block
 * it, and while the main thread runs the handler (which blocks SIGALRM there)
 * that can be a marker thread the first collection has just created. A
 * handler run on it, before its first lines blocked the signals, called
 * gc_alloc, waited for the world lock the collecting thread held, and that
 * thread waited for the marker: a hang. Each child process creates its
 * marker threads at its first collection of a heap of over 1 MiB. */
enum { SPAWN_CHILDREN = 40 };

typedef struct snode {
    struct snode *next;
    char pad[48];
} snode;

static void alloc_only_in_handler(int sig) {
    (void)sig;
    int saved = errno;
    void *p = gc_alloc(48);
    if (p != NULL) memset(p, 0x5A, 48);
    errno = saved;
}

static NOINLINE void spawn_child(void) {
    on_signal(SIGALRM, alloc_only_in_handler, SA_RESTART);
    /* In a reduced run (`check_size`: GCPIN_STRESS=1, valgrind) every handler
     * call may collect, and a 20 us period would never let the program run. */
    start_timer(check_size(100) < 100 ? 2000 : 20);
    /* Over 1 MiB in few allocations (the test runs under GCPIN_STRESS=1 too). */
    char *big = gc_alloc_noscan(2 << 20);
    if (big == NULL) _exit(2);
    big[0] = 1;
    snode *head = NULL;
    for (int i = 0; i < 100; i++) {
        snode *n = gc_alloc(sizeof *n);
        if (n == NULL) _exit(2);
        n->next = head;
        head = n;
    }
    gc_collect(); /* starts the marker threads: the heap is over 1 MiB */
    gc_collect();
    stop_timer();
    escape(head);
    escape(big);
    _exit(0);
}

/* Runs `child` in `n` child processes, one after the other, each killed
 * after 10 s: returns how many hung; `failed` counts the others that did
 * not exit with 0. */
static int run_children(void (*child)(void), int n, int *failed) {
    int hung = 0;
    *failed = 0;
    for (int c = 0; c < n; c++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child();
        int status = 0;
        bool killed = false;
        double end = check_now() + 10.0;
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (check_now() > end) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                killed = true;
                break;
            }
            sleep_ms(1);
        }
        if (killed)
            hung++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            (*failed)++;
    }
    return hung;
}

TEST_TIMEOUT(runtime_threads_start_with_the_programs_signals_blocked, 120) {
    int failed;
    int hung = run_children(spawn_child, SPAWN_CHILDREN, &failed);
    CHECKF(hung == 0, "%d of %d children hung at their first collections", hung, SPAWN_CHILDREN);
    CHECK_EQ(failed, 0);
}

/* With GCPIN_CONCURRENT=1 an allocation past the trigger asks the
 * background collector for a cycle: it notes the cycle as asked for, then
 * wakes the collector (creating it, the first time). A handler that
 * interrupted it between the two and allocated saw the cycle asked for, and
 * waited for its end, while the wake waited for the handler to return: a
 * hang. The first request's window is the collector thread's creation, with
 * the signals held: a 20 us timer's SIGALRM arrives there and is delivered
 * as the signals are let go. Each child sets GCPIN_CONCURRENT=1 before its
 * first gcpin call and allocates past its first trigger. */
static NOINLINE void concurrent_request_child(void) {
    setenv("GCPIN_CONCURRENT", "1", 1);
    on_signal(SIGALRM, alloc_only_in_handler, SA_RESTART);
    start_timer(check_size(100) < 100 ? 2000 : 20);
    gc_stats st;
    do {
        /* 64 KiB of garbage at a time, until the first cycle has ended. */
        char *chunk = gc_alloc(64 << 10);
        if (chunk == NULL) _exit(2);
        chunk[0] = 1;
        gc_get_stats(&st);
    } while (st.num_gc == 0);
    stop_timer();
    _exit(0);
}

TEST_TIMEOUT(a_handler_that_interrupts_a_request_for_a_concurrent_cycle_does_not_wait_for_it, 120) {
    int failed;
    int hung = run_children(concurrent_request_child, SPAWN_CHILDREN / 2, &failed);
    CHECKF(hung == 0, "%d of %d children hung at their first concurrent cycle", hung, SPAWN_CHILDREN / 2);
    CHECK_EQ(failed, 0);
}

/* The status has its own text. */
TEST(would_deadlock_status_has_a_description) {
    CHECK(strstr(gc_strerror(GC_ERR_WOULD_DEADLOCK), "signal handler") != NULL);
}
