/* dlopen_helper: a program that is NOT linked against libgcpin and loads it
 * with dlopen (as a plugin host would), then allocates, pins and collects from
 * four threads. test_threads runs it. The library keeps its thread pointer in
 * initial-exec TLS, which the loader must place in the static TLS area it
 * reserves for libraries opened later: this is the check that it does.
 *
 * Usage: dlopen_helper /path/to/libgcpin.so NODES; exit status 0 on success,
 * and a line on stderr saying what went wrong otherwise. Each thread builds a
 * list of NODES nodes (the test scales it down under GCPIN_STRESS). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    void *impl;
} pinner_t; /* gc_pinner: one word, zeroed */

static void *(*p_gc_alloc)(size_t);
static void (*p_gc_collect)(void);
static int (*p_pinner_pin)(pinner_t *, const void *);
static void (*p_pinner_unpin)(pinner_t *);
static _Bool (*p_is_pinned)(const void *);

typedef struct node {
    struct node *next;
    uintptr_t value;
} node;

enum { THREADS = 4 };
static uintptr_t NODES;

static void *worker(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    node *head = NULL;
    for (uintptr_t i = 0; i < NODES; i++) {
        node *n = p_gc_alloc(sizeof *n);
        if (!n) return "gc_alloc returned NULL";
        n->value = id * NODES + i;
        n->next = head;
        head = n;
        (void)p_gc_alloc(48); /* garbage, so collections have work */
    }
    pinner_t pin = {0};
    if (p_pinner_pin(&pin, head) != 0) return "pinner_pin failed";
    if (!p_is_pinned(head)) return "is_pinned false after pinner_pin";
    p_gc_collect();
    uintptr_t expect = id * NODES + NODES;
    for (node *n = head; n; n = n->next) {
        if (n->value != --expect) return "list content changed: an object was freed while reachable";
    }
    if (expect != id * NODES) return "list lost nodes";
    p_pinner_unpin(&pin);
    if (p_is_pinned(head)) return "is_pinned true after pinner_unpin";
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 || (NODES = strtoul(argv[2], NULL, 10)) == 0) {
        fprintf(stderr, "usage: %s /path/to/libgcpin.so NODES\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen_helper: dlopen failed: %s\n", dlerror());
        return 1;
    }
    *(void **)&p_gc_alloc = dlsym(lib, "gc_alloc");
    *(void **)&p_gc_collect = dlsym(lib, "gc_collect");
    *(void **)&p_pinner_pin = dlsym(lib, "pinner_pin");
    *(void **)&p_pinner_unpin = dlsym(lib, "pinner_unpin");
    *(void **)&p_is_pinned = dlsym(lib, "is_pinned");
    if (!p_gc_alloc || !p_gc_collect || !p_pinner_pin || !p_pinner_unpin || !p_is_pinned) {
        fprintf(stderr, "dlopen_helper: a symbol is missing: %s\n", dlerror());
        return 1;
    }
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++) {
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "dlopen_helper: pthread_create failed\n");
            return 1;
        }
    }
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r) {
            fprintf(stderr, "dlopen_helper: thread %d: %s\n", i, (const char *)r);
            bad = 1;
        }
    }
    p_gc_collect();
    return bad;
}
