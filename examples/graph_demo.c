/* graph_demo: builds and drops a large object graph, round after round.
 *
 * Each round allocates about 64 MiB: binary trees of small scanned nodes, and a
 * linked list whose nodes each own a 4 KiB noscan buffer. One tree per round is
 * kept for two rounds, everything else becomes garbage as soon as the round
 * ends. Run with GCPIN_TRACE=1 to watch the collector keep the heap near the
 * live size; at the end everything is dropped and the heap shrinks.
 *
 *     GCPIN_TRACE=1 build/examples/graph_demo [rounds]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcpin.h"

struct tree {
    struct tree *left, *right;
    uint64_t id;
    uint64_t sum; /* id + the sums of the children: checked after collections */
};

struct item {
    struct item *next;
    unsigned char *buf; /* 4 KiB, gc_alloc_noscan: never scanned */
    uint64_t id;
};

#define BUF_SIZE 4096

static struct tree *make_tree(uint64_t id, int depth) {
    struct tree *t = gc_alloc(sizeof *t);
    if (!t) {
        perror("gc_alloc");
        exit(1);
    }
    t->id = id;
    t->sum = id;
    if (depth > 1) {
        t->left = make_tree(2 * id, depth - 1);
        t->right = make_tree(2 * id + 1, depth - 1);
        t->sum += t->left->sum + t->right->sum;
    }
    return t;
}

/* Recomputes the sums; returns the node count, or -1 if a node is wrong. */
static long check_tree(const struct tree *t) {
    if (!t->left && !t->right) return t->sum == t->id ? 1 : -1;
    if (!t->left || !t->right) return -1;
    long l = check_tree(t->left), r = check_tree(t->right);
    if (l < 0 || r < 0 || t->sum != t->id + t->left->sum + t->right->sum) return -1;
    return 1 + l + r;
}

static struct item *make_list(int n) {
    struct item *head = NULL;
    for (int i = 0; i < n; i++) {
        struct item *it = gc_alloc(sizeof *it);
        if (!it || !(it->buf = gc_alloc_noscan(BUF_SIZE))) {
            perror("gc_alloc");
            exit(1);
        }
        memset(it->buf, i & 0xFF, BUF_SIZE);
        it->id = (uint64_t)i;
        it->next = head;
        head = it;
    }
    return head;
}

static void print_stats(const char *when) {
    gc_stats s;
    gc_get_stats(&s);
    printf("%-14s heap %7.1f MiB in %8" PRIu64 " objects, held %7.1f MiB, released %7.1f MiB, %4" PRIu64
           " collections, max pause %.2f ms, allocated %8.1f MiB in total\n",
           when, (double)s.heap_alloc_bytes / 1048576.0, s.heap_objects, (double)s.heap_sys_bytes / 1048576.0,
           (double)s.heap_released_bytes / 1048576.0, s.num_gc, (double)s.max_pause_ns / 1e6,
           (double)s.total_alloc_bytes / 1048576.0);
    fflush(stdout);
}

/* Kept trees live in a global: a root. */
static struct tree *kept[2];

enum {
    KEPT_DEPTH = 16,    /* 65535 nodes, 2 MiB: live across two rounds */
    GARBAGE_DEPTH = 18, /* 262143 nodes, 8 MiB each */
    LIST_ITEMS = 8000,  /* 8000 x (4 KiB buffer + node): about 32 MiB */
};

/* One round, in a frame of its own: once it returns, nothing on the stack
 * refers to its garbage any more (the collector scans stacks conservatively). */
static __attribute__((noinline)) int run_round(int round) {
    kept[round % 2] = make_tree((uint64_t)round, KEPT_DEPTH);
    for (int i = 0; i < 3; i++) {
        struct tree *garbage = make_tree((uint64_t)i, GARBAGE_DEPTH);
        if (check_tree(garbage) != (1L << GARBAGE_DEPTH) - 1) {
            fprintf(stderr, "graph_demo: round %d: a fresh tree is broken\n", round);
            return 1;
        }
    }
    for (struct item *it = make_list(LIST_ITEMS); it; it = it->next) {
        if (it->buf[BUF_SIZE - 1] != (unsigned char)(it->id & 0xFF)) {
            fprintf(stderr, "graph_demo: round %d: list item %" PRIu64 " is broken\n", round, it->id);
            return 1;
        }
    }
    for (int k = 0; k < 2; k++) {
        if (kept[k] && check_tree(kept[k]) != (1L << KEPT_DEPTH) - 1) {
            fprintf(stderr, "graph_demo: round %d: a kept tree was damaged\n", round);
            return 1;
        }
    }
    return 0;
}

/* Zeroes the stack below main's frame, where the rounds' dead frames were. */
static __attribute__((noinline)) void scrub_stack(void) {
    char buf[64 * 1024];
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 8;
    if (rounds < 1) rounds = 1;
    print_stats("start");
    for (int round = 1; round <= rounds; round++) {
        if (run_round(round) != 0) return 1;
        char label[32];
        snprintf(label, sizeof label, "round %d", round);
        print_stats(label);
    }
    kept[0] = kept[1] = NULL;
    scrub_stack();
    gc_collect();
    gc_collect();
    print_stats("all dropped");
    return 0;
}
