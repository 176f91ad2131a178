/* The libgc-style GCBench of benches/libgc_gcbench.c as a test: one thread and
 * four (GC_THREADS: pthread_create is GC_pthread_create), every tree checked
 * node by node, so a node freed or reused too early fails. Smaller trees under
 * valgrind or heavy stress (check_size). */
#define GCBENCH_NO_MAIN 1
#include "../benches/libgc_gcbench.c"

#include "check.h"

static int bench_depth(void) { return check_size(100) == 100 ? 16 : 10; }

TEST_TIMEOUT(gcbench_single_thread, 120) {
    GC_INIT();
    GC_word before = GC_get_gc_no();
    CHECK_EQ(gcbench(bench_depth(), 1), 0);
    /* It collected on its own. With GCPIN_CONCURRENT=1 a cycle the run asked
     * for runs on the background collector and may end after the run: give
     * it a second. */
    for (int i = 0; i < 100 && GC_get_gc_no() == before; i++) sleep_ms(10);
    CHECK_GT(GC_get_gc_no(), before);
}

TEST_TIMEOUT(gcbench_four_threads, 120) {
    CHECK_EQ(gcbench_threads(bench_depth() - 2, 4), 0);
}
