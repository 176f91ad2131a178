/*
 * benches/harness.c — the same workloads against gcpin and against libgc (Boehm).
 *
 * Built twice by scripts/bench.sh:
 *   -DUSE_GCPIN  linked with target/release/libgcpin.a
 *   -DUSE_BOEHM  linked with -lgc
 *
 * Usage: harness micro [name,name,...]      ns/op of the small workloads
 *        harness list                       names of the micro workloads
 *        harness probe                      machine speed probe (ns), no collector
 *        harness fullgc                     one full collection, 100 MiB live
 *        harness tree                       GCBench-style binary trees
 *        harness floor                      one uncontended compare-and-swap (ns),
 *                                           no collector: the floor under a pin
 *
 * Every figure is printed as one machine-readable line:
 *   RESULT <impl> <workload> <value> <unit> [key=value ...]
 * and notes about method as
 *   INFO <impl> <text>
 *
 * Environment: BENCH_RUNS (default 5) runs per micro workload, each auto-scaled
 * to about BENCH_TARGET_MS (default 150) milliseconds; the median is reported.
 *
 * The workloads follow Go's runtime Pinner benchmarks (pinner_test.go): the
 * single pin+unpin workloads allocate a fresh 24-byte object (Go's `obj`,
 * three int64s) every iteration, the tiny ones a 1-byte noscan object (Go's
 * `new(bool)`); the batch ones pin 1000 objects allocated up front.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#if defined(USE_GCPIN)
#include "gcpin.h"
#define IMPL "gcpin"
#elif defined(USE_BOEHM)
#define GC_THREADS 1
#include <gc.h>
#define IMPL "libgc"
#else
#error "define USE_GCPIN or USE_BOEHM"
#endif

/* ------------------------------------------------------------------------ */
/* Clock                                                                     */

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* The thin layer over the two collectors                                    */

#if defined(USE_GCPIN)

static void h_init(void) { gc_thread_register(); }
static inline void *h_alloc(size_t n) { return gc_alloc(n); }
static inline void *h_alloc_noscan(size_t n) { return gc_alloc_noscan(n); }
static inline void h_collect(void) { gc_collect(); }

typedef gc_pinner h_pinner;
#define H_PINNER_INIT {0}
static inline void h_pin(h_pinner *p, const void *obj) {
    gc_status st = pinner_pin(p, obj);
    if (st != GC_OK) {
        fprintf(stderr, "pinner_pin failed: %s\n", gc_strerror(st));
        abort();
    }
}
static inline void h_unpin(h_pinner *p) { pinner_unpin(p); }
static inline bool h_is_pinned(const void *obj) { return is_pinned(obj); }
static void h_pinner_release(h_pinner *p) { (void)p; }

static const char *pin_method(void) {
    return "pin = pinner_pin, unpin = pinner_unpin, is_pinned = is_pinned";
}

#else /* USE_BOEHM */

static void h_init(void) { GC_INIT(); }
static inline void *h_alloc(size_t n) { return GC_MALLOC(n); }
static inline void *h_alloc_noscan(size_t n) { return GC_MALLOC_ATOMIC(n); }
static inline void h_collect(void) { GC_gcollect(); }

/*
 * What a libgc user does to keep an object alive while only C memory (or the
 * kernel) refers to it: store it in a table the collector scans but never
 * frees. libgc never moves objects, so "pinned" only means "kept alive".
 * One table per pinner: pin = store into the next slot (the table grows by
 * doubling, and keeps its capacity across unpins, like Go's pinner keeps its
 * refs slice); unpin = clear the used slots.
 */
typedef struct h_pinner {
    void **slots; /* GC_MALLOC_UNCOLLECTABLE: a root, never collected */
    size_t n, cap;
    struct h_pinner *next_registered;
    bool registered;
} h_pinner;
#define H_PINNER_INIT {0}

/* Pinners that hold pins, for the is_pinned lookup. Only the thread that owns a
 * pinner touches its slots; the registry is guarded by a mutex. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static h_pinner *registry;

static void h_pin_grow(h_pinner *p) {
    size_t cap = p->cap ? p->cap * 2 : 8;
    void **slots = GC_MALLOC_UNCOLLECTABLE(cap * sizeof(void *));
    if (!slots) {
        fprintf(stderr, "GC_MALLOC_UNCOLLECTABLE failed\n");
        abort();
    }
    if (p->n) memcpy(slots, p->slots, p->n * sizeof(void *));
    if (p->slots) GC_FREE(p->slots);
    p->slots = slots;
    p->cap = cap;
    if (!p->registered) {
        pthread_mutex_lock(&registry_mu);
        p->next_registered = registry;
        registry = p;
        p->registered = true;
        pthread_mutex_unlock(&registry_mu);
    }
}
static inline void h_pin(h_pinner *p, const void *obj) {
    if (p->n == p->cap) h_pin_grow(p);
    p->slots[p->n++] = (void *)obj;
}
static inline void h_unpin(h_pinner *p) {
    if (p->n) memset(p->slots, 0, p->n * sizeof(void *));
    p->n = 0;
}
/* The lookup a libgc user would do: GC_base says whether the address is in
 * the collected heap at all (memory libgc does not manage is never moved or
 * freed by it: "pinned", as gcpin and Go answer), then a linear search of the
 * pin tables for the pointer. The benchmark has one table with <= 1 entry. */
static inline bool h_is_pinned(const void *obj) {
    if (GC_base((void *)obj) == NULL) return true;
    for (h_pinner *p = registry; p; p = p->next_registered)
        for (size_t i = 0; i < p->n; i++)
            if (p->slots[i] == obj) return true;
    return false;
}
static void h_pinner_release(h_pinner *p) {
    h_unpin(p);
    pthread_mutex_lock(&registry_mu);
    for (h_pinner **pp = &registry; *pp; pp = &(*pp)->next_registered)
        if (*pp == p) {
            *pp = p->next_registered;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    if (p->slots) GC_FREE(p->slots);
    memset(p, 0, sizeof *p);
}

static const char *pin_method(void) {
    return "pin = store the pointer into the pinner's GC_MALLOC_UNCOLLECTABLE slot "
           "table, unpin = clear the used slots; is_pinned = GC_base(p)!=NULL then a "
           "linear search of the pin tables";
}

#endif

/* ------------------------------------------------------------------------ */
/* Micro benchmarks                                                          */

typedef void (*bench_fn)(uint64_t n);

static int g_runs = 5;
static double g_target_ns = 150e6;

static void *volatile g_sink;
static volatile uintptr_t g_sink_word;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double run_once(bench_fn f, uint64_t n) {
    uint64_t t0 = now_ns();
    f(n);
    return (double)(now_ns() - t0);
}

/* Auto-scales n so that one run takes about g_target_ns, then reports the
 * median ns per iteration over g_runs runs. */
static void bench(const char *name, bench_fn f) {
    uint64_t n = 1;
    double t = run_once(f, n);
    for (int attempt = 0; attempt < 4; attempt++) {
        while (t < g_target_ns / 8 && n < (1ull << 40)) {
            double scale = t > 1000 ? (g_target_ns / 4) / t : 100;
            if (scale > 100) scale = 100;
            if (scale < 2) scale = 2;
            n = (uint64_t)(n * scale);
            t = run_once(f, n);
        }
        /* Once more at this n: a stall in the calibration run (a descheduled
         * thread, a burst of page faults) would otherwise shrink n. */
        double t2 = run_once(f, n);
        if (t2 >= t / 2) {
            if (t2 < t) t = t2;
            break;
        }
        t = t2; /* the first run stalled: go on scaling from the second */
    }
    n = (uint64_t)(n * (g_target_ns / t));
    if (n < 1) n = 1;
    double r[64];
    int runs = g_runs > 64 ? 64 : g_runs;
    for (int i = 0; i < runs; i++) r[i] = run_once(f, n) / (double)n;
    qsort(r, runs, sizeof r[0], cmp_double);
    double med = runs % 2 ? r[runs / 2] : (r[runs / 2 - 1] + r[runs / 2]) / 2;
    printf("RESULT %s %s %.3f ns/op min=%.3f max=%.3f iters=%llu runs=%d\n", IMPL, name, med,
           r[0], r[runs - 1], (unsigned long long)n, runs);
    fflush(stdout);
}

/* Go's `obj`: three int64s. */
#define OBJ_SIZE 24

static void b_pin_unpin(uint64_t n) {
    h_pinner p = H_PINNER_INIT;
    for (uint64_t i = 0; i < n; i++) {
        h_pin(&p, h_alloc(OBJ_SIZE));
        h_unpin(&p);
    }
    h_pinner_release(&p);
}

static void b_pin_unpin_tiny(uint64_t n) {
    h_pinner p = H_PINNER_INIT;
    for (uint64_t i = 0; i < n; i++) {
        h_pin(&p, h_alloc_noscan(1));
        h_unpin(&p);
    }
    h_pinner_release(&p);
}

static void b_pin_unpin_double(uint64_t n) {
    h_pinner p = H_PINNER_INIT;
    for (uint64_t i = 0; i < n; i++) {
        void *o = h_alloc(OBJ_SIZE);
        h_pin(&p, o);
        h_pin(&p, o);
        h_unpin(&p);
    }
    h_pinner_release(&p);
}

/* Parallel: 2 threads (the machine's cores), each with its own pinner, share
 * the n iterations; ns/op = wall time / n, as Go's b.RunParallel reports. */
#define PAR_THREADS 2
typedef struct {
    uint64_t n;
    int kind; /* 0: obj, 1: tiny, 2: double */
    pthread_barrier_t *bar;
} par_arg;

static void *par_worker(void *arg) {
    par_arg *a = arg;
    h_pinner p = H_PINNER_INIT;
    pthread_barrier_wait(a->bar);
    for (uint64_t i = 0; i < a->n; i++) {
        void *o = a->kind == 1 ? h_alloc_noscan(1) : h_alloc(OBJ_SIZE);
        h_pin(&p, o);
        if (a->kind == 2) h_pin(&p, o);
        h_unpin(&p);
    }
    h_pinner_release(&p);
    return NULL;
}

static void par_run(uint64_t n, int kind) {
    pthread_t th[PAR_THREADS];
    par_arg args[PAR_THREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, PAR_THREADS);
    for (int i = 0; i < PAR_THREADS; i++) {
        args[i].n = n / PAR_THREADS + (i == 0 ? n % PAR_THREADS : 0);
        args[i].kind = kind;
        args[i].bar = &bar;
        if (pthread_create(&th[i], NULL, par_worker, &args[i]) != 0) {
            perror("pthread_create");
            abort();
        }
    }
    for (int i = 0; i < PAR_THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
}
static void b_pin_unpin_parallel(uint64_t n) { par_run(n, 0); }
static void b_pin_unpin_parallel_tiny(uint64_t n) { par_run(n, 1); }
static void b_pin_unpin_parallel_double(uint64_t n) { par_run(n, 2); }

/* Batch: 1000 objects allocated up front, kept in a global (a root for both
 * collectors); one iteration pins all of them through one pinner and unpins. */
#define BATCH 1000
static void *g_batch[BATCH];
static void *g_batch_tiny[BATCH];
static h_pinner g_batch_pinner = H_PINNER_INIT;

static void batch_setup(void) {
    for (int i = 0; i < BATCH; i++) {
        g_batch[i] = h_alloc(OBJ_SIZE);
        g_batch_tiny[i] = h_alloc_noscan(1);
    }
}

static void b_batch(uint64_t n) {
    for (uint64_t k = 0; k < n; k++) {
        for (int i = 0; i < BATCH; i++) h_pin(&g_batch_pinner, g_batch[i]);
        h_unpin(&g_batch_pinner);
    }
}
static void b_batch_double(uint64_t n) {
    for (uint64_t k = 0; k < n; k++) {
        for (int i = 0; i < BATCH; i++) {
            h_pin(&g_batch_pinner, g_batch[i]);
            h_pin(&g_batch_pinner, g_batch[i]);
        }
        h_unpin(&g_batch_pinner);
    }
}
static void b_batch_tiny(uint64_t n) {
    for (uint64_t k = 0; k < n; k++) {
        for (int i = 0; i < BATCH; i++) h_pin(&g_batch_pinner, g_batch_tiny[i]);
        h_unpin(&g_batch_pinner);
    }
}

/* is_pinned on one pinned and on one unpinned object. */
static void *g_probe_obj;
static void b_is_pinned(uint64_t n) {
    const void *o = g_probe_obj;
    uintptr_t acc = 0;
    for (uint64_t i = 0; i < n; i++) {
        acc += h_is_pinned(o);
        __asm__ volatile("" : "+r"(o)); /* reload: no hoisting of the call's argument */
    }
    g_sink_word = acc;
}

/* Allocation throughput: each object is dropped at once (the collector's cost
 * is included, amortized, as in Go's allocation benchmarks). */
static void b_alloc16(uint64_t n) {
    for (uint64_t i = 0; i < n; i++) g_sink = h_alloc(16);
}
static void b_alloc64(uint64_t n) {
    for (uint64_t i = 0; i < n; i++) g_sink = h_alloc(64);
}
static void b_alloc1k(uint64_t n) {
    for (uint64_t i = 0; i < n; i++) g_sink = h_alloc(1024);
}
static void b_alloc16_noscan(uint64_t n) {
    for (uint64_t i = 0; i < n; i++) g_sink = h_alloc_noscan(16);
}

/* filter: NULL (all), or a comma-separated list of exact workload names. */
static int want(const char *filter, const char *name) {
    if (filter == NULL) return 1;
    size_t n = strlen(name);
    for (const char *p = filter; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

static int g_list_only;

static void mode_micro(const char *filter) {
    if (!g_list_only) printf("INFO %s %s\n", IMPL, pin_method());
#define RUN(name, fn)          \
    if (g_list_only)           \
        puts(name);            \
    else if (want(filter, name)) \
        bench(name, fn)
    RUN("pin_unpin", b_pin_unpin);
    RUN("pin_unpin_tiny", b_pin_unpin_tiny);
    RUN("pin_unpin_double", b_pin_unpin_double);
    RUN("pin_unpin_parallel", b_pin_unpin_parallel);
    RUN("pin_unpin_parallel_tiny", b_pin_unpin_parallel_tiny);
    RUN("pin_unpin_parallel_double", b_pin_unpin_parallel_double);
    /* Set-up only for the workloads that run: each process measures exactly
     * what it was asked to (no pinner, hence no finalizer thread, before the
     * allocation workloads, for instance). */
    if (!g_list_only && (want(filter, "batch1000") || want(filter, "batch1000_double") ||
                         want(filter, "batch1000_tiny")))
        batch_setup();
    RUN("batch1000", b_batch);
    RUN("batch1000_double", b_batch_double);
    RUN("batch1000_tiny", b_batch_tiny);
    h_pinner_release(&g_batch_pinner);
    if (g_list_only || want(filter, "is_pinned_on_pinned")) {
        h_pinner p = H_PINNER_INIT;
        g_probe_obj = h_alloc(OBJ_SIZE);
        h_pin(&p, g_probe_obj);
        if (!h_is_pinned(g_probe_obj)) {
            fprintf(stderr, "is_pinned: pinned object reported unpinned\n");
            abort();
        }
        RUN("is_pinned_on_pinned", b_is_pinned);
        h_unpin(&p);
        h_pinner_release(&p);
    }
    if (g_list_only || want(filter, "is_pinned_on_unpinned")) {
        g_probe_obj = h_alloc(OBJ_SIZE);
        if (h_is_pinned(g_probe_obj)) {
            fprintf(stderr, "is_pinned: unpinned object reported pinned\n");
            abort();
        }
        RUN("is_pinned_on_unpinned", b_is_pinned);
    }
    RUN("alloc16", b_alloc16);
    RUN("alloc64", b_alloc64);
    RUN("alloc1k", b_alloc1k);
    RUN("alloc16_noscan", b_alloc16_noscan);
#undef RUN
}

/* ------------------------------------------------------------------------ */
/* Full collection with 100 MiB live in 32-byte nodes                        */

typedef struct tnode {
    struct tnode *left, *right;
    uint64_t value, pad;
} tnode; /* 32 bytes */

static tnode *volatile g_live_root;

/* A balanced binary tree of exactly `count` nodes. */
static tnode *build_count(uint64_t count, uint64_t *next_value) {
    if (count == 0) return NULL;
    tnode *t = h_alloc(sizeof(tnode));
    if (!t) {
        fprintf(stderr, "allocation failed while building the live tree\n");
        abort();
    }
    t->value = (*next_value)++;
    uint64_t rest = count - 1;
    t->left = build_count(rest / 2, next_value);
    t->right = build_count(rest - rest / 2, next_value);
    return t;
}

static uint64_t tree_count(const tnode *t) {
    uint64_t c = 0;
    while (t) { /* recurse left, loop right */
        c += 1 + tree_count(t->left);
        t = t->right;
    }
    return c;
}

static void mode_fullgc(void) {
    const uint64_t live_bytes = 100ull << 20;
    const uint64_t nodes = live_bytes / sizeof(tnode);
    uint64_t v = 0;
    uint64_t t0 = now_ns();
    g_live_root = build_count(nodes, &v);
    uint64_t build_ns = now_ns() - t0;
    h_collect(); /* warm-up: leaves only the live tree */
    int reps = 7;
    double r[16];
    for (int i = 0; i < reps; i++) {
        uint64_t s = now_ns();
        h_collect();
        r[i] = (double)(now_ns() - s);
    }
    uint64_t c = tree_count(g_live_root);
    if (c != nodes) {
        fprintf(stderr, "live tree lost nodes: %llu of %llu\n", (unsigned long long)c,
                (unsigned long long)nodes);
        abort();
    }
    qsort(r, reps, sizeof r[0], cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT %s gc_full_100mib %.0f ns/op min=%.0f max=%.0f reps=%d nodes=%llu "
           "build_ms=%.1f maxrss_kib=%ld\n",
           IMPL, r[reps / 2], r[0], r[reps - 1], reps, (unsigned long long)nodes,
           build_ns / 1e6, ru.ru_maxrss);
#if defined(USE_BOEHM)
    printf("INFO %s gc_full_100mib: GC_gcollect(); GC_MALLOC(32) (libgc adds 1 byte for "
           "interior pointers: 48-byte objects); parallel markers=%d; heap=%zu bytes\n",
           IMPL, GC_get_parallel(), (size_t)GC_get_heap_size());
#else
    gc_stats st;
    gc_get_stats(&st);
    printf("INFO %s gc_full_100mib: gc_collect(); heap_alloc=%llu heap_sys=%llu objects=%llu\n",
           IMPL, (unsigned long long)st.heap_alloc_bytes, (unsigned long long)st.heap_sys_bytes,
           (unsigned long long)st.heap_objects);
#endif
}

/* ------------------------------------------------------------------------ */
/* GCBench-style binary trees                                                */

typedef struct Node {
    struct Node *left, *right;
    int i, j;
} Node; /* 24 bytes */

enum {
    STRETCH_DEPTH = 21,   /* one tree of max+1 to stretch the heap          */
    ITER_BASE_DEPTH = 18, /* iterations scaled so each depth does similar work */
    LONG_LIVED_DEPTH = 16,
    MIN_DEPTH = 4,
    MAX_DEPTH = 20,
    ARRAY_SIZE = 500000,
};

#if defined(USE_BOEHM)
/* libgc: time each collection from GC_EVENT_START to GC_EVENT_END (the
 * mutator is blocked for all of it: libgc runs here non-incremental), and the
 * stopped-world part from PRE_STOP_WORLD to POST_START_WORLD. */
static uint64_t ev_start, ev_stop, ev_max, ev_total, ev_count, ev_stw_max;
static void GC_CALLBACK on_event(GC_EventType e) {
    uint64_t t = now_ns();
    switch (e) {
    case GC_EVENT_START: ev_start = t; break;
    case GC_EVENT_END: {
        uint64_t d = t - ev_start;
        ev_total += d;
        ev_count++;
        if (d > ev_max) ev_max = d;
        break;
    }
    case GC_EVENT_PRE_STOP_WORLD: ev_stop = t; break;
    case GC_EVENT_POST_START_WORLD:
        if (t - ev_stop > ev_stw_max) ev_stw_max = t - ev_stop;
        break;
    default: break;
    }
}
#endif

static int tree_size(int depth) { return (1 << (depth + 1)) - 1; }
static int num_iters(int depth) {
    int n = 2 * tree_size(ITER_BASE_DEPTH) / tree_size(depth);
    return n < 1 ? 1 : n;
}

static Node *new_node(Node *l, Node *r) {
    Node *n = h_alloc(sizeof(Node));
    if (!n) {
        fprintf(stderr, "allocation failed in tree benchmark\n");
        abort();
    }
    n->left = l;
    n->right = r;
    return n;
}

/* Top-down: fill the children of an existing node. */
static void populate(int depth, Node *n) {
    while (depth-- > 0) {
        n->left = new_node(NULL, NULL);
        n->right = new_node(NULL, NULL);
        populate(depth, n->left);
        n = n->right;
    }
}

/* Bottom-up. */
static Node *make_tree(int depth) {
    if (depth <= 0) return new_node(NULL, NULL);
    Node *l = make_tree(depth - 1);
    Node *r = make_tree(depth - 1);
    return new_node(l, r);
}

static Node *volatile g_temp_tree;
static Node *volatile g_long_lived;
static double *volatile g_array;

static void mode_tree(void) {
#if defined(USE_BOEHM)
    GC_set_on_collection_event(on_event);
    GC_start_performance_measurement();
#endif
    uint64_t t0 = now_ns();
    g_temp_tree = make_tree(STRETCH_DEPTH);
    g_temp_tree = NULL;

    Node *ll = new_node(NULL, NULL);
    g_long_lived = ll;
    populate(LONG_LIVED_DEPTH, ll);

    double *a = h_alloc_noscan(ARRAY_SIZE * sizeof(double));
    g_array = a;
    for (int i = 0; i < ARRAY_SIZE / 2; i++) a[i] = 1.0 / i;

    for (int d = MIN_DEPTH; d <= MAX_DEPTH; d += 2) {
        int iters = num_iters(d);
        for (int i = 0; i < iters; i++) {
            Node *t = new_node(NULL, NULL);
            g_temp_tree = t;
            populate(d, t);
            g_temp_tree = NULL;
        }
        for (int i = 0; i < iters; i++) {
            g_temp_tree = make_tree(d);
            g_temp_tree = NULL;
        }
    }
    if (g_long_lived == NULL || g_array[1000] != 1.0 / 1000) {
        fprintf(stderr, "tree benchmark: long-lived data lost\n");
        abort();
    }
    uint64_t total = now_ns() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
#if defined(USE_BOEHM)
    uint64_t max_pause = ev_max, num_gc = ev_count, pause_total = ev_total;
    printf("INFO %s tree: pause = GC_EVENT_START..GC_EVENT_END per collection "
           "(max stopped-world part %.3f ms); GC_get_full_gc_total_time=%lu ms; "
           "parallel markers=%d\n",
           IMPL, ev_stw_max / 1e6, GC_get_full_gc_total_time(), GC_get_parallel());
#else
    gc_stats st;
    gc_get_stats(&st);
    uint64_t max_pause = st.max_pause_ns, num_gc = st.num_gc, pause_total = st.pause_total_ns;
    printf("INFO %s tree: pause = gc_get_stats max_pause_ns\n", IMPL);
#endif
    printf("RESULT %s tree_total %.3f ms\n", IMPL, total / 1e6);
    printf("RESULT %s tree_max_pause %.3f ms num_gc=%llu pause_total_ms=%.3f\n", IMPL,
           max_pause / 1e6, (unsigned long long)num_gc, pause_total / 1e6);
    printf("RESULT %s tree_peak_rss %ld KiB\n", IMPL, ru.ru_maxrss);
}

/* ------------------------------------------------------------------------ */
/* Machine speed probe: no collector involved. A fixed mix of dependent
 * arithmetic and a random pointer chase through 16 MiB of malloc memory (the
 * memory latency a collector's mark phase lives on); best of 5. scripts/bench.sh
 * runs it around every measurement to spot a machine slowed by its neighbours. */

static void mode_probe(void) {
    const size_t n = (16u << 20) / sizeof(uint32_t);
    uint32_t *next = malloc(n * sizeof *next);
    if (!next) abort();
    for (size_t i = 0; i < n; i++) next[i] = (uint32_t)i;
    uint64_t x = 88172645463325252ull;
    for (size_t i = n - 1; i > 0; i--) { /* Sattolo: one cycle through all slots */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = x % i;
        uint32_t t = next[i];
        next[i] = next[j];
        next[j] = t;
    }
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        uint64_t t0 = now_ns();
        uint32_t k = 0;
        for (int i = 0; i < 100000; i++) k = next[k];
        uint64_t h = k;
        for (int i = 0; i < 1000000; i++) h = h * 6364136223846793005ull + 1442695040888963407ull;
        g_sink_word = h;
        double t = (double)(now_ns() - t0);
        if (t < best) best = t;
    }
    free(next);
    printf("%.0f\n", best);
}

/* ------------------------------------------------------------------------ */
/* Floor: what one uncontended atomic read-modify-write costs on this machine.
 * gcpin's pin and unpin each do one on the object's pin-bit word (Go's do too),
 * so pin+unpin can never cost less than an allocation plus two of these, and a
 * batch of 1000 pins never less than 1000 of them. The words are spread over
 * one cache line, as consecutive objects' pin bits are. */

static uint64_t g_cas_words[8];
static void b_cas(uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        uint64_t *w = &g_cas_words[i & 7];
        uint64_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
        __atomic_compare_exchange_n(w, &old, old + 1, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
}

int main(int argc, char **argv) {
    h_init();
    const char *e = getenv("BENCH_RUNS");
    if (e && atoi(e) > 0) g_runs = atoi(e);
    e = getenv("BENCH_TARGET_MS");
    if (e && atof(e) > 0) g_target_ns = atof(e) * 1e6;
    const char *mode = argc > 1 ? argv[1] : "micro";
    if (strcmp(mode, "probe") == 0) {
        mode_probe();
        return 0;
    }
    if (strcmp(mode, "list") == 0) {
        g_list_only = 1;
        mode_micro(NULL);
    } else if (strcmp(mode, "micro") == 0) {
        mode_micro(argc > 2 ? argv[2] : NULL);
    } else if (strcmp(mode, "fullgc") == 0) {
        mode_fullgc();
    } else if (strcmp(mode, "tree") == 0) {
        mode_tree();
    } else if (strcmp(mode, "floor") == 0) {
        bench("cas_floor", b_cas);
    } else {
        fprintf(stderr, "usage: %s micro [name,...] | list | fullgc | tree | floor\n", argv[0]);
        return 2;
    }
    return 0;
}
