/* Configuration: every GCPIN_* variable takes only values that make sense. A
 * value it cannot take never stops the program: the default is used, and one
 * line on stderr names the variable, the value and what is used instead. The
 * suspend signal can only be one gcpin may take over (never a fault signal,
 * SIGTERM or SIGINT, nor one glibc keeps for itself). */
#include "check.h"

struct env_case {
    const char *var, *value, *instead;
};

static const struct env_case bad_values[] = {
    {"GCPIN_GC_PERCENT", "abc", "using 100"},    {"GCPIN_GC_PERCENT", "-5", "using 100"},
    {"GCPIN_MAX_HEAP", "1X", "using no limit"},  {"GCPIN_MAX_HEAP", "-1", "using no limit"},
    {"GCPIN_STRESS", "abc", "using 0 (off)"},    {"GCPIN_TRACE", "yes", "using 1"},
    {"GCPIN_SIG_SUSPEND", "11", "using SIGPWR"}, {"GCPIN_SIG_SUSPEND", "8", "using SIGPWR"},
    {"GCPIN_SIG_SUSPEND", "15", "using SIGPWR"}, {"GCPIN_SIG_SUSPEND", "2", "using SIGPWR"},
    {"GCPIN_SIG_SUSPEND", "32", "using SIGPWR"}, {"GCPIN_SIG_SUSPEND", "xyz", "using SIGPWR"},
    {"GCPIN_HUGEPAGES", "2", "using 0"},
};

static void *idle_thread(void *arg) {
    (void)arg;
    gc_thread_register();
    for (;;) pause();
    return NULL;
}

/* Starts the runtime with one variable set, with a second registered thread
 * so that a collection really sends the suspend signal. */
static void start_with(const struct env_case *c) {
    REQUIRE(setenv(c->var, c->value, 1) == 0);
    pthread_t t;
    start_thread(&t, idle_thread, NULL);
    for (int i = 0; i < 1000; i++) escape(gc_alloc(64));
    gc_collect();
}

static void run_with(void *arg) {
    const struct env_case *c = arg;
    if (strcmp(c->var, "GCPIN_TRACE") == 0) {
        /* No collection (a trace line would be a second line): not even the
         * stress pass's. */
        REQUIRE(unsetenv("GCPIN_STRESS") == 0);
        REQUIRE(setenv(c->var, c->value, 1) == 0);
        for (int i = 0; i < 10; i++) escape(gc_alloc(64));
        return;
    }
    start_with(c);
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

TEST_TIMEOUT(each_unusable_value_gets_one_line_naming_variable_value_and_fallback, 60) {
    static struct check_child out;
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        const struct env_case *c = &bad_values[i];
        run_child(run_with, (void *)c, 20, &out);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "%s=\"%s\"", c->var, c->value);
        CHECKF(out.exit_code == 0, "%s=%s: the program did not run to its end (status %d, signal %d)", c->var,
               c->value, out.exit_code, out.signal);
        CHECKF(strstr(out.err, quoted) != NULL && strstr(out.err, c->instead) != NULL,
               "%s=%s: stderr lacks \"%s\" and \"%s\": \"%s\"", c->var, c->value, quoted, c->instead, out.err);
        CHECKF(lines(out.err) == 1, "%s=%s: %d lines on stderr, expected 1: \"%s\"", c->var, c->value,
               lines(out.err), out.err);
    }
}

TEST_TIMEOUT(good_values_are_taken_silently, 60) {
    static const struct env_case good[] = {
        {"GCPIN_GC_PERCENT", "off", ""}, {"GCPIN_GC_PERCENT", "50", ""}, {"GCPIN_MAX_HEAP", "2T", ""},
        {"GCPIN_MAX_HEAP", "512m", ""},  {"GCPIN_STRESS", "100", ""},    {"GCPIN_SIG_SUSPEND", "SIGUSR2", ""},
        {"GCPIN_SIG_SUSPEND", "12", ""}, {"GCPIN_SIG_SUSPEND", "40", ""},
    };
    static struct check_child out;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        /* Reduced runs (valgrind: CHECK_SIZE_DIV) have a 512 MiB arena, and
         * a 2 TiB limit then rightly gets the line saying the heap stops
         * short of it. */
        if (getenv("CHECK_SIZE_DIV") != NULL && strcmp(good[i].value, "2T") == 0) continue;
        run_child(run_with, (void *)&good[i], 20, &out);
        CHECKF(out.exit_code == 0 && out.err[0] == 0, "%s=%s: status %d, signal %d, stderr \"%s\"", good[i].var,
               good[i].value, out.exit_code, out.signal, out.err);
    }
}

/* 1 if the mapping that holds p is advised for transparent huge pages ("hg"
 * among its VmFlags in /proc/self/smaps), 0 if not, -1 if it is not found. */
static int advised_huge(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    REQUIRE(f != NULL);
    static char line[4096];
    unsigned long a = (unsigned long)p, lo, hi;
    int in = 0, hg = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            in = a >= lo && a < hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            hg = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return hg;
}

/* 256 MiB of garbage in 1 MiB blocks: automatic collections. */
static NOINLINE void allocate_256_mib_of_garbage(void) {
    for (int i = 0; i < 256; i++) {
        unsigned char *b = gc_alloc_noscan(1 << 20);
        REQUIRE(b != NULL);
        b[0] = 1;
    }
}

/* Exits 10 + advised_huge(an object) after starting the runtime with
 * GCPIN_HUGEPAGES=1, and GCPIN_CONCURRENT as arg says (NULL: unset). On a
 * heap advised for huge pages, automatic collections release nothing and
 * gc_collect() still releases what it holds past 16 MiB: 20, 21 or 22 if
 * not. */
static void huge_pages_child(void *arg) {
    const char *concurrent = arg;
    REQUIRE(setenv("GCPIN_HUGEPAGES", "1", 1) == 0);
    REQUIRE((concurrent ? setenv("GCPIN_CONCURRENT", concurrent, 1) : unsetenv("GCPIN_CONCURRENT")) == 0);
    void *p = gc_alloc(64);
    REQUIRE(p != NULL);
    int hg = advised_huge(p);
    if (hg == 1) {
        allocate_256_mib_of_garbage();
        gc_stats s;
        gc_get_stats(&s);
        if (s.num_gc == 0) exit(21);
        if (s.heap_released_bytes != 0) exit(20);
        gc_collect();
        gc_get_stats(&s);
        /* (Under GCPIN_STRESS the freed blocks are reused at once: then there
         * is little to release.) */
        if (s.heap_released_bytes == 0 && s.heap_sys_bytes > (16u << 20)) exit(22);
    }
    exit(10 + hg);
}

/* Whether the kernel gives huge pages to advised memory. */
static bool huge_pages_available(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f == NULL) return false;
    char mode[128] = {0};
    bool ok = fgets(mode, sizeof mode, f) != NULL && (strstr(mode, "[always]") || strstr(mode, "[madvise]"));
    fclose(f);
    return ok;
}

/* GCPIN_HUGEPAGES=1 advises the heap's mapping for huge pages, silently, and
 * automatic collections then keep their free pages (gc_collect() releases);
 * with GCPIN_CONCURRENT=1 it is not used (the write tracker's first write to
 * a huge page splits it), and one line says so. Without the setting the
 * mapping is not advised. */
TEST_TIMEOUT(huge_pages_are_asked_for_the_heap_unless_marking_is_concurrent, 60) {
    if (!huge_pages_available()) {
        printf("  (the kernel gives no transparent huge pages: nothing to advise)\n");
        return;
    }
    static struct check_child out;
    run_child(huge_pages_child, NULL, 20, &out);
    CHECKF(out.exit_code == 11 && out.err[0] == 0,
           "GCPIN_HUGEPAGES=1: exit %d (11: advised; 20: an automatic collection released pages; 22: "
           "gc_collect() released none), stderr \"%s\"",
           out.exit_code, out.err);
    run_child(huge_pages_child, (void *)"1", 20, &out);
    CHECKF(out.exit_code == 10, "with GCPIN_CONCURRENT=1: exit %d (10: not advised)", out.exit_code);
    CHECKF(lines(out.err) == 1 && strstr(out.err, "GCPIN_HUGEPAGES=1 is not used with GCPIN_CONCURRENT=1"),
           "with GCPIN_CONCURRENT=1: stderr \"%s\"", out.err);
    if (getenv("GCPIN_HUGEPAGES") == NULL) {
        void *p = gc_alloc(64);
        CHECKF(advised_huge(p) == 0, "without GCPIN_HUGEPAGES: the heap is advised for huge pages (%d)",
               advised_huge(p));
    }
}

/* With GCPIN_SIG_SUSPEND naming a fault or a termination signal, that signal
 * keeps its meaning: a real segfault or division by zero still kills the
 * process (before, it spun at 100% CPU in gcpin's handler), and SIGTERM and
 * SIGINT still end it. */
static void fault_after_start(void *arg) {
    const struct env_case *c = arg;
    int sig = atoi(c->value);
    /* The signal's meaning is the default one: a shell that starts the suite
     * in the background (no job control) hands it SIGINT ignored. */
    signal(sig, SIG_DFL);
    start_with(c);
    if (sig == SIGSEGV) {
        volatile uintptr_t bad = 8;
        *(volatile int *)bad = 1;
    } else if (sig == SIGFPE) {
        volatile int zero = 0, seven = 7; /* (gcc computes 1 / x without a division) */
        volatile int x = seven / zero;
        (void)x;
    } else {
        raise(sig);
    }
    sleep_ms(2000);
}

TEST_TIMEOUT(a_fault_or_termination_signal_keeps_its_meaning, 60) {
    static const struct env_case sigs[] = {
        {"GCPIN_SIG_SUSPEND", "11", ""},
        {"GCPIN_SIG_SUSPEND", "8", ""},
        {"GCPIN_SIG_SUSPEND", "15", ""},
        {"GCPIN_SIG_SUSPEND", "2", ""},
    };
    static struct check_child out;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        run_child(fault_after_start, (void *)&sigs[i], 10, &out);
        int sig = atoi(sigs[i].value);
        CHECKF(!out.timed_out && out.signal == sig, "GCPIN_SIG_SUSPEND=%d, then that signal: %s (signal %d)", sig,
               out.timed_out ? "the process hung" : "not killed by it", out.signal);
    }
}
