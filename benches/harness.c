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
 *        harness pause [MiB]                pauses and request latency with MiB
 *                                           (default 256) live in a hash table
 *        harness bandwidth                  streaming-read memory bandwidth
 *                                           (GB/s), no collector
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
#include <unistd.h>

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

/* Pauses. libgc: time each collection from GC_EVENT_START to GC_EVENT_END
 * (the mutator is blocked for all of it: libgc runs here non-incremental, and
 * collects on the allocating thread), and the stopped-world part from
 * PRE_STOP_WORLD to POST_START_WORLD. gcpin: gc_get_stats, which stops the
 * world itself to count the heap: call it outside timed regions only. */
#if defined(USE_BOEHM)
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
static void h_pause_watch(void) {
    GC_set_on_collection_event(on_event);
    GC_start_performance_measurement();
}
#else
static void h_pause_watch(void) {}
#endif

typedef struct {
    uint64_t num_gc, pause_total_ns, max_pause_ns;
} h_pauses;

static h_pauses h_get_pauses(void) {
#if defined(USE_BOEHM)
    return (h_pauses){ev_count, ev_total, ev_max};
#else
    gc_stats st;
    gc_get_stats(&st);
    return (h_pauses){st.num_gc, st.pause_total_ns, st.max_pause_ns};
#endif
}

static void print_pause_method(const char *workload) {
#if defined(USE_BOEHM)
    printf("INFO %s %s: pause = GC_EVENT_START..GC_EVENT_END per collection "
           "(max stopped-world part %.3f ms); GC_get_full_gc_total_time=%lu ms; "
           "parallel markers=%d\n",
           IMPL, workload, ev_stw_max / 1e6, GC_get_full_gc_total_time(), GC_get_parallel());
#else
    printf("INFO %s %s: pause = gc_get_stats max_pause_ns\n", IMPL, workload);
#endif
}

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
    h_pause_watch();
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
    h_pauses ps = h_get_pauses();
    print_pause_method("tree");
    printf("RESULT %s tree_total %.3f ms\n", IMPL, total / 1e6);
    printf("RESULT %s tree_max_pause %.3f ms num_gc=%llu pause_total_ms=%.3f\n", IMPL,
           ps.max_pause_ns / 1e6, (unsigned long long)ps.num_gc, ps.pause_total_ns / 1e6);
    printf("RESULT %s tree_peak_rss %ld KiB\n", IMPL, ru.ru_maxrss);
}

/* ------------------------------------------------------------------------ */
/* Pause benchmark (issues 16 and 17): LIVE MiB of 64-byte records in a
 * chained hash table, built once and kept live, then a request loop. Each
 * request allocates a 16 KiB noscan buffer and pins it (the I/O buffer the
 * kernel writes into), fills it, allocates 40 small scanned objects (39
 * request-local 32-byte nodes, and one 64-byte record that replaces a record
 * of the table: the table stays the same size and old objects get new
 * pointers written into them), looks up 4 keys, unpins. Reports the longest
 * pause of the process (building included: the pause statistics cannot be
 * read per request without stopping the world), the longest request, the
 * time of the loop, and the collections. benches/go/pause is the same program
 * in Go. */

typedef struct rec {
    struct rec *next;
    uint64_t key;
    uint64_t val[6];
} rec; /* 64 bytes */

typedef struct robj {
    struct robj *next;
    rec *r;
    uint64_t a, b;
} robj; /* 32 bytes */

enum { PAUSE_BUF = 16384, PAUSE_SMALL = 40, PAUSE_LOOKUPS = 4 };

static rec **volatile g_buckets;
static robj *volatile g_req_list;

static inline uint64_t xorshift64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return *s = x;
}
static inline uint64_t bucket_of(uint64_t key, uint64_t mask) {
    return (key * 0x9E3779B97F4A7C15ull >> 20) & mask;
}

/* The slot that points at the record with `key` (it is always there). */
static rec **find_slot(rec **buckets, uint64_t mask, uint64_t key) {
    rec **pp = &buckets[bucket_of(key, mask)];
    while ((*pp)->key != key) pp = &(*pp)->next;
    return pp;
}

static void mode_pause(const char *arg) {
    uint64_t live_mib = arg ? strtoull(arg, NULL, 10) : 256;
    if (live_mib == 0) live_mib = 256;
    const uint64_t nrec = (live_mib << 20) / sizeof(rec);
    uint64_t nb = 1;
    while (nb * 4 < nrec) nb <<= 1; /* about 4 records a bucket */
    const uint64_t mask = nb - 1;
    const uint64_t req_bytes = PAUSE_BUF + (PAUSE_SMALL - 1) * sizeof(robj) + sizeof(rec);
    /* default: allocate 4x the live size in requests (a few cycles at any size) */
    uint64_t requests = 4 * (live_mib << 20) / req_bytes;
    const char *e = getenv("BENCH_PAUSE_REQUESTS");
    if (e && strtoull(e, NULL, 10) > 0) requests = strtoull(e, NULL, 10);

    h_pause_watch();
    uint64_t t0 = now_ns();
    rec **b = h_alloc(nb * sizeof *b);
    if (!b) abort();
    g_buckets = b;
    for (uint64_t k = 0; k < nrec; k++) {
        rec *r = h_alloc(sizeof *r);
        if (!r) {
            fprintf(stderr, "allocation failed while building the table\n");
            abort();
        }
        r->key = k;
        r->val[0] = k;
        rec **head = &b[bucket_of(k, mask)];
        r->next = *head;
        *head = r;
    }
    uint64_t build_ns = now_ns() - t0;

    uint64_t *lat = malloc(requests * sizeof *lat); /* not a root: numbers only */
    if (!lat) abort();
    h_pinner p = H_PINNER_INIT;
    uint64_t seed = 0x2545F4914F6CDD1Dull, sum = 0;
    h_pauses before = h_get_pauses();
    uint64_t t1 = now_ns();
    for (uint64_t i = 0; i < requests; i++) {
        uint64_t s = now_ns();
        unsigned char *buf = h_alloc_noscan(PAUSE_BUF);
        if (!buf) abort();
        h_pin(&p, buf);
        memset(buf, (int)(i & 0xff), PAUSE_BUF); /* the "kernel" writes the request */
        robj *list = NULL;
        for (int j = 0; j < PAUSE_SMALL - 1; j++) {
            robj *o = h_alloc(sizeof *o);
            if (!o) abort();
            o->next = list;
            o->a = (uint64_t)j;
            list = o;
        }
        robj *o = list;
        for (int j = 0; j < PAUSE_LOOKUPS; j++, o = o->next) {
            rec *r = *find_slot(b, mask, xorshift64(&seed) % nrec);
            o->r = r;
            memcpy(buf + 64 * j, r->val, sizeof r->val);
            sum += r->val[0];
        }
        /* replace one record: a pointer store into an old object */
        uint64_t k = xorshift64(&seed) % nrec;
        rec **pp = find_slot(b, mask, k);
        rec *nr = h_alloc(sizeof *nr);
        if (!nr) abort();
        nr->key = k;
        memcpy(nr->val, (*pp)->val, sizeof nr->val);
        nr->val[1] = i;
        nr->next = (*pp)->next;
        *pp = nr;
        g_req_list = list;
        sum += buf[i % PAUSE_BUF] + list->a;
        h_unpin(&p);
        lat[i] = now_ns() - s;
    }
    uint64_t loop_ns = now_ns() - t1;
    h_pauses after = h_get_pauses();
    g_req_list = NULL;
    g_sink_word = sum;
    h_pinner_release(&p);

    uint64_t count = 0;
    for (uint64_t i = 0; i < nb; i++)
        for (rec *r = b[i]; r; r = r->next) count++;
    if (count != nrec) {
        fprintf(stderr, "pause: the table lost records: %llu of %llu\n",
                (unsigned long long)count, (unsigned long long)nrec);
        abort();
    }
    double *l = malloc(requests * sizeof *l);
    if (!l) abort();
    for (uint64_t i = 0; i < requests; i++) l[i] = (double)lat[i];
    qsort(l, requests, sizeof *l, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    unsigned long long m = (unsigned long long)live_mib;
    print_pause_method("pause");
    printf("INFO %s pause objects, %llu MiB: %llu records of %zu bytes in %llu buckets%s; "
           "%llu requests of %llu bytes\n",
           IMPL, m, (unsigned long long)nrec, sizeof(rec), (unsigned long long)nb,
#if defined(USE_BOEHM)
           " (GC_MALLOC(64): 80-byte objects with libgc's extra byte); libgc has no "
           "pinner: the buffer is kept alive by a pin table, as in the micro workloads",
#else
           "; the buffer is pinned with pinner_pin / pinner_unpin",
#endif
           (unsigned long long)requests, (unsigned long long)req_bytes);
    printf("RESULT %s pause%llu_max_pause %.3f ms num_gc=%llu loop_gc=%llu "
           "loop_pause_total_ms=%.3f\n",
           IMPL, m, after.max_pause_ns / 1e6, (unsigned long long)after.num_gc,
           (unsigned long long)(after.num_gc - before.num_gc),
           (after.pause_total_ns - before.pause_total_ns) / 1e6);
    printf("RESULT %s pause%llu_max_request %.3f ms p99_us=%.1f p999_us=%.1f requests=%llu\n",
           IMPL, m, l[requests - 1] / 1e6, l[requests * 99 / 100] / 1e3,
           l[requests * 999 / 1000] / 1e3, (unsigned long long)requests);
    printf("RESULT %s pause%llu_total %.3f ms build_ms=%.1f\n", IMPL, m, loop_ns / 1e6,
           build_ns / 1e6);
    printf("RESULT %s pause%llu_peak_rss %ld KiB\n", IMPL, m, ru.ru_maxrss);
    free(l);
    free(lat);
}

/* ------------------------------------------------------------------------ */
/* Streaming-read memory bandwidth, no collector: the limit a mark phase runs
 * into. BENCH_BW_MIB (default 512) MiB of malloc memory, far beyond the
 * caches, summed by 1 thread and by one thread per online core, each summing
 * its own slice; best of 5 passes (GB = 10^9 bytes). */

typedef struct {
    const uint64_t *a;
    size_t n; /* words */
    int threads, idx;
    pthread_barrier_t *bar;
    double best_ns; /* thread 0 only */
} bw_arg;

static uint64_t sum_words(const uint64_t *a, size_t n) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        s0 += a[i], s1 += a[i + 1], s2 += a[i + 2], s3 += a[i + 3];
        s4 += a[i + 4], s5 += a[i + 5], s6 += a[i + 6], s7 += a[i + 7];
    }
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

static void *bw_worker(void *arg) {
    bw_arg *w = arg;
    size_t per = w->n / (size_t)w->threads;
    const uint64_t *mine = w->a + per * (size_t)w->idx;
    w->best_ns = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        pthread_barrier_wait(w->bar);
        uint64_t t0 = now_ns();
        uint64_t s = sum_words(mine, per);
        pthread_barrier_wait(w->bar); /* all slices done */
        double t = (double)(now_ns() - t0);
        if (t < w->best_ns) w->best_ns = t;
        __atomic_fetch_add(&g_sink_word, s, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void mode_bandwidth(void) {
    size_t mib = 512;
    const char *e = getenv("BENCH_BW_MIB");
    if (e && atoi(e) > 0) mib = (size_t)atoi(e);
    size_t bytes = mib << 20, n = bytes / sizeof(uint64_t);
    uint64_t *a = malloc(bytes);
    if (!a) abort();
    for (size_t i = 0; i < n; i++) a[i] = i; /* fault every page in */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    int counts[2] = {1, (int)cores};
    for (int c = 0; c < (cores > 1 ? 2 : 1); c++) {
        int t = counts[c] > 64 ? 64 : counts[c];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)t);
        bw_arg args[64];
        pthread_t th[64];
        for (int i = 0; i < t; i++) {
            args[i] = (bw_arg){a, n, t, i, &bar, 0};
            if (i > 0 && pthread_create(&th[i], NULL, bw_worker, &args[i]) != 0) abort();
        }
        bw_worker(&args[0]);
        for (int i = 1; i < t; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&bar);
        size_t per = n / (size_t)t * (size_t)t * sizeof(uint64_t);
        printf("RESULT machine mem_read_bw_%dt %.2f GB/s mib=%zu threads=%d passes=5\n", t,
               (double)per / args[0].best_ns, mib, t);
    }
    free(a);
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
    } else if (strcmp(mode, "pause") == 0) {
        mode_pause(argc > 2 ? argv[2] : NULL);
    } else if (strcmp(mode, "bandwidth") == 0) {
        mode_bandwidth();
    } else if (strcmp(mode, "floor") == 0) {
        bench("cas_floor", b_cas);
    } else {
        fprintf(stderr, "usage: %s micro [name,...] | list | fullgc | tree | pause [MiB] | "
                        "bandwidth | floor\n", argv[0]);
        return 2;
    }
    return 0;
}
