/* A libgc-style GCBench (after Boehm's and Ellis's GCBench, written for this
 * project): binary trees built top-down and bottom-up with GC_NEW while a
 * long-lived tree and a long-lived GC_MALLOC_ATOMIC array stay reachable, one
 * thread and four threads (GC_THREADS: pthread_create is GC_pthread_create).
 * Every tree is checked node by node, so a node freed or reused too early
 * fails the test. Sizes shrink under valgrind or heavy stress (check_size). */
#define GC_THREADS 1
#include <gc.h>

#include "check.h"

typedef struct Node {
    struct Node *left, *right;
    int i, j;
} Node;

static int tree_size(int depth) { return (1 << (depth + 1)) - 1; }

static void populate(int depth, Node *n) {
    if (depth <= 0) return;
    n->left = GC_NEW(Node);
    n->right = GC_NEW(Node);
    REQUIRE(n->left && n->right);
    populate(depth - 1, n->left);
    populate(depth - 1, n->right);
}

static Node *make_tree(int depth) {
    Node *n = GC_NEW(Node);
    REQUIRE(n);
    if (depth > 0) {
        n->left = make_tree(depth - 1);
        n->right = make_tree(depth - 1);
    }
    return n;
}

/* Counts the nodes and checks the marks `mark` put into them. */
static int check_tree(const Node *n, int depth, int id) {
    if (!n) return 0;
    if (n->i != id || n->j != depth) return -1000000;
    return 1 + check_tree(n->left, depth - 1, id) + check_tree(n->right, depth - 1, id);
}

static void mark(Node *n, int depth, int id) {
    if (!n) return;
    n->i = id;
    n->j = depth;
    mark(n->left, depth - 1, id);
    mark(n->right, depth - 1, id);
}

/* One GCBench run; returns the number of trees that failed their check. */
static NOINLINE int gcbench(int max_depth, int id) {
    int bad = 0;
    const int min_depth = 4, long_lived_depth = max_depth - 2;
    Node *long_lived = GC_NEW(Node);
    REQUIRE(long_lived);
    populate(long_lived_depth, long_lived);
    mark(long_lived, long_lived_depth, id);
    size_t array_len = 500000 / (size_t)(check_size(100) == 100 ? 1 : 100);
    double *array = GC_MALLOC_ATOMIC(array_len * sizeof(double));
    REQUIRE(array);
    for (size_t i = 0; i < array_len / 2; i++) array[i] = 1.0 / (double)(i + 1);
    for (int d = min_depth; d <= max_depth; d += 2) {
        int iters = 2 * tree_size(max_depth) / tree_size(d);
        for (int k = 0; k < iters; k++) {
            Node *t = GC_NEW(Node);
            REQUIRE(t);
            populate(d, t); /* top-down */
            mark(t, d, id);
            if (check_tree(t, d, id) != tree_size(d)) bad++;
            t = make_tree(d); /* bottom-up */
            mark(t, d, id + 1);
            if (check_tree(t, d, id + 1) != tree_size(d)) bad++;
        }
    }
    if (check_tree(long_lived, long_lived_depth, id) != tree_size(long_lived_depth)) bad++;
    if (array[1000] != 1.0 / 1001.0) bad++;
    GC_reachable_here(long_lived);
    GC_reachable_here(array);
    return bad;
}

static int bench_depth(void) { return check_size(100) == 100 ? 16 : 10; }

TEST_TIMEOUT(gcbench_single_thread, 120) {
    GC_INIT();
    GC_word before = GC_get_gc_no();
    CHECK_EQ(gcbench(bench_depth(), 1), 0);
    CHECK_GT(GC_get_gc_no(), before); /* it collected on its own */
}

static void *bench_thread(void *arg) {
    intptr_t id = (intptr_t)arg;
    return (void *)(intptr_t)gcbench(bench_depth() - 2, (int)id * 10);
}

TEST_TIMEOUT(gcbench_four_threads, 120) {
    pthread_t t[4];
    for (intptr_t i = 0; i < 4; i++) CHECK_EQ(pthread_create(&t[i], NULL, bench_thread, (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++) {
        void *bad = (void *)1;
        CHECK_EQ(pthread_join(t[i], &bad), 0);
        CHECKF(bad == NULL, "thread %d: %ld trees failed their check", i, (long)(intptr_t)bad);
    }
}
