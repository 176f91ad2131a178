/* libgc_gcbench.c: a GCBench written against libgc's API only (<gc.h>), after
 * Boehm's and Ellis's GCBench, for this project. The same source builds
 * against the system libgc and against gcpin's gc.h (make bench compares the
 * two, scripts/bench-libgc.sh); c-tests/test_libgc_gcbench.c runs it as a test
 * (with GCBENCH_NO_MAIN defined).
 *
 * Binary trees are built top-down and bottom-up with GC_NEW while a long-lived
 * tree and a long-lived GC_MALLOC_ATOMIC array stay reachable. Every tree is
 * checked node by node: a node freed or reused too early is counted.
 *
 *     libgc_gcbench [MAX_DEPTH [THREADS]]   (defaults 16 and 1)
 *
 * prints "gcbench: depth D, T threads, S s, N collections" and exits 1 if a
 * tree failed its check.
 */
#ifndef GC_THREADS
#define GC_THREADS 1
#endif
#include <gc.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct Node {
    struct Node *left, *right;
    int i, j;
} Node;

static int gcbench_tree_size(int depth) { return (1 << (depth + 1)) - 1; }

/* Top-down: children are allocated before their parent is filled. */
static int gcbench_populate(int depth, Node *n) {
    if (depth <= 0) return 0;
    n->left = GC_NEW(Node);
    n->right = GC_NEW(Node);
    if (!n->left || !n->right) return -1;
    return gcbench_populate(depth - 1, n->left) | gcbench_populate(depth - 1, n->right);
}

/* Bottom-up: children first, then the parent that points to them. */
static Node *gcbench_make_tree(int depth) {
    Node *n = GC_NEW(Node);
    if (n && depth > 0) {
        n->left = gcbench_make_tree(depth - 1);
        n->right = gcbench_make_tree(depth - 1);
    }
    return n;
}

static void gcbench_mark(Node *n, int depth, int id) {
    for (; n; n = n->right, depth--) {
        n->i = id;
        n->j = depth;
        gcbench_mark(n->left, depth - 1, id);
    }
}

/* The number of nodes, or a negative number when a node lost its marks. */
static long gcbench_check(const Node *n, int depth, int id) {
    if (!n) return 0;
    if (n->i != id || n->j != depth) return -1000000000L;
    return 1 + gcbench_check(n->left, depth - 1, id) + gcbench_check(n->right, depth - 1, id);
}

/* One GCBench run at `max_depth`; returns the number of trees that failed
 * their check (or could not be allocated). */
static int gcbench(int max_depth, int id) {
    int bad = 0;
    const int min_depth = 4, long_lived_depth = max_depth - 2;
    const size_t array_len = 500000;
    Node *long_lived = GC_NEW(Node);
    if (!long_lived || gcbench_populate(long_lived_depth, long_lived) != 0) return 1;
    gcbench_mark(long_lived, long_lived_depth, id);
    double *array = GC_MALLOC_ATOMIC(array_len * sizeof(double));
    if (!array) return 1;
    for (size_t i = 0; i < array_len / 2; i++) array[i] = 1.0 / (double)(i + 1);
    for (int d = min_depth; d <= max_depth; d += 2) {
        int iters = 2 * gcbench_tree_size(max_depth) / gcbench_tree_size(d);
        for (int k = 0; k < iters; k++) {
            Node *t = GC_NEW(Node);
            if (!t || gcbench_populate(d, t) != 0) return bad + 1;
            gcbench_mark(t, d, id);
            bad += gcbench_check(t, d, id) != gcbench_tree_size(d);
            t = gcbench_make_tree(d);
            gcbench_mark(t, d, id + 1);
            bad += gcbench_check(t, d, id + 1) != gcbench_tree_size(d);
        }
    }
    bad += gcbench_check(long_lived, long_lived_depth, id) != gcbench_tree_size(long_lived_depth);
    bad += array[1000] != 1.0 / 1001.0;
    GC_reachable_here(long_lived);
    GC_reachable_here(array);
    return bad;
}

struct gcbench_job {
    int depth, id, bad;
};

static void *gcbench_thread(void *arg) {
    struct gcbench_job *job = arg;
    job->bad = gcbench(job->depth, job->id);
    return NULL;
}

/* Runs `threads` GCBench runs at once (pthread_create is GC_pthread_create
 * here); returns the failed trees of all of them, or -1 if a thread could not
 * be started. */
static int gcbench_threads(int depth, int threads) {
    pthread_t t[64];
    struct gcbench_job jobs[64];
    if (threads < 1 || threads > 64) return -1;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct gcbench_job){depth, 10 * (i + 1), 0};
        if (pthread_create(&t[i], NULL, gcbench_thread, &jobs[i]) != 0) return -1;
    }
    int bad = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        bad += jobs[i].bad;
    }
    return bad;
}

#ifndef GCBENCH_NO_MAIN
int main(int argc, char **argv) {
    int depth = argc > 1 ? atoi(argv[1]) : 16;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    GC_INIT();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int bad = threads == 1 ? gcbench(depth, 1) : gcbench_threads(depth, threads);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("gcbench: depth %d, %d threads, %.3f s, %lu collections\n", depth, threads, secs,
           (unsigned long)GC_get_gc_no());
    if (bad != 0) fprintf(stderr, "gcbench: %d trees failed their check\n", bad);
    return bad != 0;
}
#endif
