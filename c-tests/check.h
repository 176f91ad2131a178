/* check.h: the tiny test harness of gcpin's C tests.
 *
 * A test file includes this header once and defines its tests:
 *
 *     TEST(pin_keeps_object_alive) { CHECK(is_pinned(p)); CHECK_EQ(n, 3); }
 *     TEST_TIMEOUT(big_list_survives, 120) { ... }
 *
 * The header defines main() (unless CHECK_NO_MAIN is defined). main runs every
 * test in a forked child of its own, so a crash, an abort or a hang fails that
 * test only, and every test starts with a fresh gcpin runtime: the parent never
 * calls gcpin. A child that runs longer than its timeout (60 s by default, the
 * environment variable CHECK_TIMEOUT overrides the default, TEST_TIMEOUT the
 * value for one test) is killed with its whole process group. The parent prints
 * `ok name` or `FAIL name: reason` per test and, last, `check: N passed, M
 * failed`; the exit status is the number of failures (at most 100).
 *
 *     ./test_x            runs every test of the file
 *     ./test_x a b        runs the tests named a and b
 *     ./test_x -l         lists the tests
 *     CHECK_TIMES=1       also prints each test's duration on stderr
 *
 * CHECK and its relatives record a failure (file:line and the expression) and go
 * on; REQUIRE ends the test at the first failure, for preconditions the rest of
 * the test depends on.
 *
 * Conservative-GC helpers: NOINLINE, HIDE/UNHIDE (a pointer the collector cannot
 * see), scrub_stack, collect_hard, wait_for, wait_for_count, collect_until; and
 * expect_abort to run a body in a child process that must die of SIGABRT with a
 * given message on stderr.
 */
#ifndef GCPIN_CHECK_H
#define GCPIN_CHECK_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gcpin.h"

#define NOINLINE __attribute__((noinline))
#define CHECK_UNUSED __attribute__((unused))

/* ------------------------------------------------------------------ registry */

typedef void (*check_fn)(void);

struct check_test {
    const char *name;
    check_fn fn;
    unsigned timeout; /* seconds; 0: the default */
    int line;         /* tests run in the order of their lines in the file */
};

#define CHECK_MAX_TESTS 256
static struct check_test check_tests[CHECK_MAX_TESTS];
static int check_ntests;

CHECK_UNUSED static void check_register(const char *name, check_fn fn, unsigned timeout, int line) {
    if (check_ntests == CHECK_MAX_TESTS) {
        fprintf(stderr, "check.h: more than %d tests\n", CHECK_MAX_TESTS);
        abort();
    }
    check_tests[check_ntests].name = name;
    check_tests[check_ntests].fn = fn;
    check_tests[check_ntests].timeout = timeout;
    check_tests[check_ntests].line = line;
    check_ntests++;
}

/* TEST_TIMEOUT(name, seconds) { body }: a test with its own timeout. */
#define TEST_TIMEOUT(name, seconds)                                              \
    static void test_##name(void);                                               \
    __attribute__((constructor)) static void check_register_##name(void) {       \
        check_register(#name, test_##name, (seconds), __LINE__);                 \
    }                                                                            \
    static void test_##name(void)

/* TEST(name) { body }: a test with the default timeout. */
#define TEST(name) TEST_TIMEOUT(name, 0)

/* ------------------------------------------------------------------ failures */

/* Shared between the parent and the test's child (MAP_SHARED), so the parent
 * learns the first failure even when the child crashes later. */
struct check_shared {
    atomic_int failures;
    char first[1024];
};

static struct check_shared *check_sh;
static struct check_shared check_sh_local; /* when no child is running (CHECK_NO_MAIN) */

#define CHECK_MAX_PRINTED 20

__attribute__((format(printf, 3, 4)))
CHECK_UNUSED static void check_fail(const char *file, int line, const char *fmt, ...) {
    struct check_shared *sh = check_sh ? check_sh : &check_sh_local;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int n = atomic_fetch_add(&sh->failures, 1);
    if (n == 0) {
        snprintf(sh->first, sizeof sh->first, "%s:%d: %s", file, line, msg);
    }
    if (n < CHECK_MAX_PRINTED) {
        fprintf(stderr, "    %s:%d: %s\n", file, line, msg);
    } else if (n == CHECK_MAX_PRINTED) {
        fprintf(stderr, "    (further failures of this test not printed)\n");
    }
}

CHECK_UNUSED static int check_failures(void) {
    struct check_shared *sh = check_sh ? check_sh : &check_sh_local;
    return atomic_load(&sh->failures);
}

/* Ends the current test now (its recorded failures decide the result). */
CHECK_UNUSED static void check_end_test(void) {
    fflush(stdout);
    fflush(stderr);
    _exit(check_failures() ? 1 : 0);
}

CHECK_UNUSED static const char *check_status_name(uintmax_t s) {
    switch (s) {
    case 0: return "GC_OK";
    case 1: return "GC_ERR_NULL";
    case 2: return "GC_ERR_NOT_GC_POINTER";
    case 3: return "GC_ERR_NOT_ALLOCATED";
    case 4: return "GC_ERR_UNPINNED_POINTER";
    case 5: return "GC_ERR_NO_MEMORY";
    case 6: return "GC_ERR_INVALID";
    case 7: return "GC_ERR_THREAD";
    default: return "(unknown status)";
    }
}

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) check_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);         \
    } while (0)

/* CHECKF(cond, fmt, ...): CHECK with a message of its own (for loops). */
#define CHECKF(cond, ...)                                                        \
    do {                                                                         \
        if (!(cond)) check_fail(__FILE__, __LINE__, __VA_ARGS__);                \
    } while (0)

/* Integer, enum, bool and pointer operands: compared as uintmax_t. */
#define CHECK_CMP_(a, op, b, as, bs)                                             \
    do {                                                                         \
        uintmax_t check_a_ = (uintmax_t)(a);                                     \
        uintmax_t check_b_ = (uintmax_t)(b);                                     \
        if (!(check_a_ op check_b_))                                             \
            check_fail(__FILE__, __LINE__, "CHECK(%s %s %s): %jd (%#jx) vs %jd (%#jx)", \
                       as, #op, bs, (intmax_t)check_a_, check_a_,                \
                       (intmax_t)check_b_, check_b_);                            \
    } while (0)

/* The operands are stringified here, before the expansion of macros in them. */
#define CHECK_EQ(a, b) CHECK_CMP_(a, ==, b, #a, #b)
#define CHECK_NE(a, b) CHECK_CMP_(a, !=, b, #a, #b)
#define CHECK_LE(a, b) CHECK_CMP_(a, <=, b, #a, #b)
#define CHECK_LT(a, b) CHECK_CMP_(a, <, b, #a, #b)
#define CHECK_GE(a, b) CHECK_CMP_(a, >=, b, #a, #b)
#define CHECK_GT(a, b) CHECK_CMP_(a, >, b, #a, #b)

/* CHECK_STATUS(call, expected): a gc_status compared by name. */
#define CHECK_STATUS(expr, expected)                                             \
    do {                                                                         \
        uintmax_t check_s_ = (uintmax_t)(expr);                                  \
        uintmax_t check_e_ = (uintmax_t)(expected);                              \
        if (check_s_ != check_e_)                                                \
            check_fail(__FILE__, __LINE__, "%s returned %s, expected %s", #expr, \
                       check_status_name(check_s_), check_status_name(check_e_)); \
    } while (0)

/* REQUIRE(cond): a precondition; on failure the test ends here. */
#define REQUIRE(cond)                                                            \
    do {                                                                         \
        if (!(cond)) {                                                           \
            check_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);                \
            check_end_test();                                                    \
        }                                                                        \
    } while (0)

/* ------------------------------------------------- conservative-GC helpers */

/* A pointer XORed with this key does not point into the heap (the result is not
 * even a canonical address), so a hidden copy keeps nothing alive. */
#define CHECK_HIDE_KEY ((uintptr_t)0xA5A5A5A5A5A5A5A5ull)
#define HIDE(p) ((uintptr_t)(p) ^ CHECK_HIDE_KEY)
#define UNHIDE(x) ((void *)((uintptr_t)(x) ^ CHECK_HIDE_KEY))

/* Zeroes 64 KiB of the stack below the caller, where dead frames of earlier
 * calls (allocation helpers, the runtime's own frames) left pointers. */
NOINLINE CHECK_UNUSED static void scrub_stack(void) {
    char buf[64 * 1024];
    memset(buf, 0, sizeof buf);
    /* The compiler must believe buf is used, or it drops the memset. */
    __asm__ volatile("" : : "r"(buf) : "memory");
}

/* escape(p): the compiler must assume the memory at p is read after this point,
 * so stores that clear it (to drop references) are not removed as dead. */
#define escape(p) __asm__ volatile("" : : "r"(p) : "memory")

/* Scrubs the stack, then collects three times, running queued finalizers after
 * each collection (so that objects whose finalizer ran are freed by the next). */
NOINLINE CHECK_UNUSED static void collect_hard(void) {
    scrub_stack();
    for (int i = 0; i < 3; i++) {
        gc_collect();
        gc_run_finalizers();
    }
}

/* check_size(n): the size of a heavy workload (a million-node list, 200,000
 * allocations of churn). It is n, divided by CHECK_SIZE_DIV when that is set
 * (runs under valgrind) or by 100 under heavy stress (GCPIN_STRESS below 100:
 * a collection every few allocations, each marking the whole live heap, would
 * make such a test run for hours); at least 1. `make stress` relies on it. */
CHECK_UNUSED static size_t check_size(size_t n) {
    const char *div_s = getenv("CHECK_SIZE_DIV");
    const char *stress = getenv("GCPIN_STRESS");
    long div = 1;
    if (div_s != NULL)
        div = atol(div_s);
    else if (stress != NULL && atol(stress) > 0 && atol(stress) < 100)
        div = 100;
    if (div < 1) div = 1;
    size_t m = n / (size_t)div;
    return m > 0 ? m : 1;
}

/* Sleeps about `ms` milliseconds (may return early: callers loop on a condition). */
CHECK_UNUSED static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A finalizer that counts into the atomic_int its argument points to. */
CHECK_UNUSED static void count_fin(void *obj, void *arg) {
    (void)obj;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* A finalizer that counts runs in fin_count and, per object id (its argument,
 * below CHECK_MAX_IDS), in fin_ids: for tests that must tell which objects were
 * finalized and that none was finalized twice. */
#define CHECK_MAX_IDS 1000
static atomic_int fin_count;
static atomic_int fin_ids[CHECK_MAX_IDS];

CHECK_UNUSED static void count_fin_id(void *obj, void *arg) {
    (void)obj;
    intptr_t id = (intptr_t)arg;
    if (id >= 0 && id < CHECK_MAX_IDS) atomic_fetch_add(&fin_ids[id], 1);
    atomic_fetch_add(&fin_count, 1);
}

CHECK_UNUSED static double check_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The collector's statistics (gc_get_stats). */
CHECK_UNUSED static gc_stats check_stats(void) {
    gc_stats st;
    gc_get_stats(&st);
    return st;
}

/* Polls until *counter >= target, running finalizers on this thread meanwhile;
 * false when `seconds` pass first. */
CHECK_UNUSED static bool wait_for_count(atomic_int *counter, int target, double seconds) {
    double deadline = check_now() + seconds;
    for (;;) {
        if (atomic_load(counter) >= target) return true;
        if (check_now() > deadline) return false;
        gc_run_finalizers();
        usleep(1000);
    }
}

/* Polls until *flag != 0 (see wait_for_count). */
CHECK_UNUSED static bool wait_for(atomic_int *flag, double seconds) {
    double deadline = check_now() + seconds;
    for (;;) {
        if (atomic_load(flag) != 0) return true;
        if (check_now() > deadline) return false;
        gc_run_finalizers();
        usleep(1000);
    }
}

/* Up to `rounds` times: collect_hard, then wait up to 0.2 s for *counter to
 * reach target. True as soon as it does. For "the garbage gets collected",
 * where one cycle may not be enough (finalizer ordering, a stale word). */
CHECK_UNUSED static bool collect_until(atomic_int *counter, int target, int rounds) {
    for (int i = 0; i < rounds; i++) {
        collect_hard();
        if (wait_for_count(counter, target, 0.2)) return true;
    }
    return atomic_load(counter) >= target;
}

/* Freed slots, for tests of what the API says about them: makes n objects
 * with make(), each with a counting finalizer, keeping only hidden copies
 * (HIDE) in hidden[]; then collects until at least 90% were finalized, and
 * once more so that those are freed. False when the finalizers did not run.
 * A few slots may stay allocated (a stale word): callers allow for that. */
static atomic_int check_freed_finalized;

NOINLINE CHECK_UNUSED static void check_drop_objects(void *(*make)(void), uintptr_t *hidden, int n) {
    for (int i = 0; i < n; i++) {
        void *p = make();
        CHECK_STATUS(gc_set_finalizer(p, count_fin, &check_freed_finalized), GC_OK);
        hidden[i] = HIDE(p);
    }
}

CHECK_UNUSED static bool make_freed_slots(void *(*make)(void), uintptr_t *hidden, int n) {
    atomic_store(&check_freed_finalized, 0);
    check_drop_objects(make, hidden, n);
    if (!collect_until(&check_freed_finalized, n * 9 / 10, 10)) return false;
    collect_hard(); /* finalized objects are freed by this later cycle */
    return true;
}

/* Installs `fn` for signal `sig` with `flags` (SA_RESTART, SA_ONSTACK, ...)
 * and an empty mask; a test cannot go on without it. */
CHECK_UNUSED static void on_signal(int sig, void (*fn)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        fprintf(stderr, "sigaction(%d): %s\n", sig, strerror(errno));
        abort();
    }
}

/* Gives the calling thread a 256 KiB alternate signal stack. */
CHECK_UNUSED static void use_alt_stack(void) {
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_size = 256 << 10;
    ss.ss_sp = mmap(NULL, ss.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) != 0) {
        fprintf(stderr, "alternate signal stack: %s\n", strerror(errno));
        abort();
    }
}

/* Starts a thread; aborts when the system will not (a test cannot go on). */
CHECK_UNUSED static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(rc));
        abort();
    }
}

/* Garbage in the size classes of 32 to 512 bytes, scan and noscan, filled with
 * a pattern, so that a slot freed too early is soon reused and overwritten. */
NOINLINE CHECK_UNUSED static void churn_classes(int rounds) {
    for (int r = 0; r < rounds; r++) {
        for (size_t words = 4; words <= 64; words += 6) {
            uint64_t *g = (r & 1) ? gc_alloc(words * 8) : gc_alloc_noscan(words * 8);
            if (g) memset(g, 0xEE, words * 8);
        }
    }
}

/* `cycles` times: garbage (churn_classes(4)), a scrubbed stack, a collection,
 * then the queued finalizers: the loop the thread tests run while another
 * thread holds objects only it can see. */
NOINLINE CHECK_UNUSED static void churn_and_collect(int cycles) {
    for (int i = 0; i < cycles; i++) {
        churn_classes(4);
        scrub_stack();
        gc_collect();
        gc_run_finalizers();
    }
}

/* Waits without calling gcpin until *flag >= want; false after `seconds`. */
CHECK_UNUSED static bool await_int(atomic_int *flag, int want, double seconds) {
    double end = check_now() + seconds;
    while (atomic_load(flag) < want) {
        if (check_now() > end) return false;
        sleep_ms(1);
    }
    return true;
}

/* splitmix64's finalizer: a well-mixed word from x. */
CHECK_UNUSED static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Fills words with odd values (never mistaken for aligned pointers) derived
 * from `seed`; words_intact_from checks words [from, words) of such a fill. */
CHECK_UNUSED static void fill_words(uint64_t *o, size_t words, uint64_t seed) {
    for (size_t i = 0; i < words; i++) o[i] = mix(seed * 1000003u + i) | 1;
}
CHECK_UNUSED static bool words_intact_from(const uint64_t *o, size_t from, size_t words, uint64_t seed) {
    for (size_t i = from; i < words; i++)
        if (o[i] != (mix(seed * 1000003u + i) | 1)) return false;
    return true;
}
CHECK_UNUSED static bool words_intact(const uint64_t *o, size_t words, uint64_t seed) {
    return words_intact_from(o, 0, words, seed);
}

/* The system call that thread `tid` (a kernel thread id) is in, read from
 * /proc/self/task/TID/syscall: its number, -1 when the thread is not in one
 * (running), -2 when /proc cannot tell. */
CHECK_UNUSED static long thread_syscall(long tid) {
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -2;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -2;
    buf[n] = 0;
    return buf[0] >= '0' && buf[0] <= '9' ? strtol(buf, NULL, 10) : -1;
}

/* Byte patterns to detect overwritten or overlapping memory. */
CHECK_UNUSED static unsigned char check_pattern_byte(uintptr_t seed, size_t i) {
    uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (unsigned char)(x | 1); /* never 0, so a zeroed byte is a mismatch */
}

CHECK_UNUSED static void pattern_fill(void *p, size_t n, uintptr_t seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = check_pattern_byte(seed, i);
}

CHECK_UNUSED static bool pattern_ok(const void *p, size_t n, uintptr_t seed) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != check_pattern_byte(seed, i)) return false;
    }
    return true;
}

CHECK_UNUSED static bool all_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) return false;
    }
    return true;
}

/* ------------------------------------------------------ children that abort */

struct check_child {
    bool timed_out;
    int exit_code; /* -1 when killed by a signal */
    int signal;    /* 0 when it exited */
    char err[16384]; /* what it wrote on stderr (truncated) */
};

/* Runs body(arg) in a forked child whose stderr is captured through a pipe.
 * Call it only from a test that has not called gcpin yet: a forked copy of a
 * process whose runtime has threads has a runtime without them. */
CHECK_UNUSED static void run_child(void (*body)(void *), void *arg, unsigned timeout_s,
                                   struct check_child *out) {
    memset(out, 0, sizeof *out);
    int fds[2];
    if (pipe(fds) != 0) {
        check_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
        out->exit_code = -1;
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        check_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
        out->exit_code = -1;
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        body(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    double deadline = check_now() + timeout_s;
    for (;;) {
        double left = deadline - check_now();
        if (left <= 0) {
            out->timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t room = sizeof out->err - 1 - len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(out->err + len, buf, take);
        len += take;
    }
    out->err[len] = 0;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        out->exit_code = -1;
        out->signal = WTERMSIG(status);
    } else {
        out->exit_code = WEXITSTATUS(status);
    }
}

/* expect_abort(body, arg, message): body(arg) run in a child must die of SIGABRT
 * within 30 s having written `message` on stderr. Records a failure otherwise.
 * Same restriction as run_child. */
#define expect_abort(body, arg, message) check_expect_abort(__FILE__, __LINE__, body, arg, message)

CHECK_UNUSED static void check_expect_abort(const char *file, int line, void (*body)(void *), void *arg,
                                            const char *message) {
    static struct check_child c; /* large: not on the stack */
    run_child(body, arg, 30, &c);
    if (c.timed_out) {
        check_fail(file, line, "expected abort, child timed out; its stderr: \"%.300s\"", c.err);
    } else if (c.signal != SIGABRT) {
        if (c.signal)
            check_fail(file, line, "expected SIGABRT, child killed by signal %d (%s); its stderr: \"%.300s\"",
                       c.signal, strsignal(c.signal), c.err);
        else
            check_fail(file, line, "expected SIGABRT, child exited with status %d; its stderr: \"%.300s\"",
                       c.exit_code, c.err);
    } else if (strstr(c.err, message) == NULL) {
        check_fail(file, line, "child aborted, but its stderr lacks \"%s\"; it was: \"%.300s\"", message, c.err);
    }
}

/* ---------------------------------------------------------------------- main */

#ifndef CHECK_NO_MAIN

static volatile sig_atomic_t check_alarm_fired;

static void check_on_alarm(int sig) {
    (void)sig;
    check_alarm_fired = 1;
}

static int check_by_line(const void *a, const void *b) {
    const struct check_test *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

/* Runs one test in a child; returns true when it passed. */
static bool check_run_one(const struct check_test *t, unsigned default_timeout) {
    unsigned timeout = t->timeout ? t->timeout : default_timeout;
    memset(check_sh, 0, sizeof *check_sh);
    fflush(stdout);
    fflush(stderr);
    double start = check_now();
    pid_t pid = fork();
    if (pid < 0) {
        printf("FAIL %s: fork: %s\n", t->name, strerror(errno));
        return false;
    }
    if (pid == 0) {
        setpgid(0, 0);
        alarm(0);
        signal(SIGALRM, SIG_DFL);
        t->fn();
        check_end_test();
    }
    setpgid(pid, pid); /* also here: whichever runs first */
    check_alarm_fired = 0;
    alarm(timeout);
    int status = 0;
    bool timed_out = false;
    for (;;) {
        pid_t r = waitpid(pid, &status, 0);
        if (r == pid) break;
        if (r < 0 && errno == EINTR) {
            if (check_alarm_fired && !timed_out) {
                timed_out = true;
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
            }
            continue;
        }
        printf("FAIL %s: waitpid: %s\n", t->name, strerror(errno));
        return false;
    }
    alarm(0);
    kill(-pid, SIGKILL); /* whatever the test left running in its group */
    if (getenv("CHECK_TIMES")) fprintf(stderr, "  (%s: %.2f s)\n", t->name, check_now() - start);

    int failures = atomic_load(&check_sh->failures);
    char reason[1400];
    if (timed_out) {
        snprintf(reason, sizeof reason, "timed out after %u s%s%s", timeout, failures ? "; first failure: " : "",
                 failures ? check_sh->first : "");
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(reason, sizeof reason, "killed by signal %d (%s)%s%s", sig, strsignal(sig),
                 failures ? "; first failure: " : "", failures ? check_sh->first : "");
    } else if (failures) {
        if (failures > 1)
            snprintf(reason, sizeof reason, "%s (and %d more)", check_sh->first, failures - 1);
        else
            snprintf(reason, sizeof reason, "%s", check_sh->first);
    } else if (WEXITSTATUS(status) != 0) {
        snprintf(reason, sizeof reason, "exited with status %d", WEXITSTATUS(status));
    } else {
        printf("ok %s\n", t->name);
        return true;
    }
    printf("FAIL %s: %s\n", t->name, reason);
    return false;
}

int main(int argc, char **argv) {
    qsort(check_tests, (size_t)check_ntests, sizeof check_tests[0], check_by_line);
    if (argc > 1 && strcmp(argv[1], "-l") == 0) {
        for (int i = 0; i < check_ntests; i++) printf("%s\n", check_tests[i].name);
        return 0;
    }
    check_sh = mmap(NULL, sizeof *check_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (check_sh == MAP_FAILED) {
        perror("check.h: mmap");
        return 100;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = check_on_alarm; /* no SA_RESTART: waitpid returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    unsigned default_timeout = 60;
    const char *env = getenv("CHECK_TIMEOUT");
    if (env && atoi(env) > 0) default_timeout = (unsigned)atoi(env);

    int passed = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        bool found = false;
        for (int j = 0; j < check_ntests; j++) found |= strcmp(argv[i], check_tests[j].name) == 0;
        if (!found) {
            printf("FAIL %s: no such test\n", argv[i]);
            failed++;
        }
    }
    for (int i = 0; i < check_ntests; i++) {
        if (argc > 1) {
            bool wanted = false;
            for (int j = 1; j < argc; j++) wanted |= strcmp(argv[j], check_tests[i].name) == 0;
            if (!wanted) continue;
        }
        if (check_run_one(&check_tests[i], default_timeout))
            passed++;
        else
            failed++;
        fflush(stdout);
    }
    printf("check: %d passed, %d failed\n", passed, failed);
    return failed > 100 ? 100 : failed;
}

#endif /* CHECK_NO_MAIN */

#endif /* GCPIN_CHECK_H */
