/* Collection: large live structures survive intact, dropped garbage shrinks the
 * heap (statistics and resident memory), automatic collection bounds the heap,
 * and the statistics count exactly. */
#include "check.h"

static void stats(gc_stats *s) {
    memset(s, 0xEE, sizeof *s);
    gc_get_stats(s);
}

/* -------------------------------------------------- a million-node list */

struct node {
    struct node *next;
    uint64_t id;
    uint64_t check;
};

static uint64_t node_check(uint64_t id) { return id * 0x9E3779B97F4A7C15ull ^ 0xDEADBEEFull; }

#define MILLION 1000000
/* The list's length: a million, less under heavy stress (check.h). */
static long list_len;

static struct node *list_head;

static NOINLINE void build_list(void) {
    /* Built back to front, so the head is the last allocation. */
    struct node *head = NULL;
    list_len = (long)check_size(MILLION);
    for (uint64_t i = (uint64_t)list_len; i-- > 0;) {
        struct node *n = gc_alloc(sizeof *n);
        REQUIRE(n != NULL);
        n->next = head;
        n->id = i;
        n->check = node_check(i);
        head = n;
    }
    list_head = head;
}

static long walk_list(void) {
    long good = 0;
    uint64_t i = 0;
    for (struct node *n = list_head; n; n = n->next, i++) {
        if (n->id != i || n->check != node_check(i)) return -(long)i - 1;
        good++;
    }
    return good;
}

TEST_TIMEOUT(linked_list_of_a_million_nodes_survives_collections, 180) {
    build_list();
    for (int round = 0; round < 3; round++) {
        collect_hard();
        for (size_t i = 0; i < check_size(100000); i++) (void)gc_alloc(sizeof(struct node)); /* reuse pressure */
        long n = walk_list();
        CHECKF(n == list_len, "round %d: list broken at node %ld", round, n < 0 ? -n - 1 : n);
    }
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* -------------------------------------------------- a million-node tree */

struct tree {
    struct tree *left, *right;
    uint64_t id;
};

static struct tree *make_tree(uint64_t id, int depth) {
    struct tree *t = gc_alloc(sizeof *t);
    REQUIRE(t != NULL);
    t->id = id;
    if (depth > 1) {
        t->left = make_tree(2 * id, depth - 1);
        t->right = make_tree(2 * id + 1, depth - 1);
    }
    return t;
}

static long check_tree(const struct tree *t, uint64_t id, int depth) {
    if (!t || t->id != id) return -1000000000;
    if (depth == 1) return (t->left || t->right) ? -1000000000 : 1;
    return 1 + check_tree(t->left, 2 * id, depth - 1) + check_tree(t->right, 2 * id + 1, depth - 1);
}

static struct tree *tree_root;

TEST_TIMEOUT(binary_tree_of_a_million_nodes_survives_collections, 180) {
    const int depth = check_size(MILLION) == MILLION ? 20 : 13; /* 2^20 - 1 nodes; 8191 under heavy stress */
    tree_root = make_tree(1, depth);
    for (int round = 0; round < 3; round++) {
        collect_hard();
        for (size_t i = 0; i < check_size(100000); i++) (void)gc_alloc(sizeof(struct tree));
        CHECK_EQ(check_tree(tree_root, 1, depth), (1L << depth) - 1);
    }
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ------------------------------------------------------- heap shrinking */

/* 50 MiB of independent objects (no object keeps another alive, so a stale
 * word retains one object at most): 400 large ones of 64 KiB, 200000 of 128. */
#define BIG_N 400
#define BIG_SIZE (64 << 10)
#define SMALL_N 200000
#define SMALL_SIZE 128

/* Under heavy stress the small objects shrink (check.h); the large ones, cheap
 * to mark, stay, so dropping them still has to free 25 MiB. */
static size_t small_n;

static NOINLINE void allocate_50_mib(gc_stats *during) {
    small_n = check_size(SMALL_N);
    void **big = calloc(BIG_N, sizeof(void *));
    void **small = calloc(SMALL_N, sizeof(void *));
    REQUIRE(big && small);
    CHECK_STATUS(gc_add_roots(big, BIG_N * sizeof(void *)), GC_OK);
    CHECK_STATUS(gc_add_roots(small, SMALL_N * sizeof(void *)), GC_OK);
    for (int i = 0; i < BIG_N; i++) {
        big[i] = gc_alloc_noscan(BIG_SIZE);
        REQUIRE(big[i] != NULL);
        memset(big[i], 1, BIG_SIZE);
    }
    for (size_t i = 0; i < small_n; i++) {
        small[i] = gc_alloc(SMALL_SIZE);
        REQUIRE(small[i] != NULL);
    }
    stats(during);
    CHECK_STATUS(gc_remove_roots(big, BIG_N * sizeof(void *)), GC_OK);
    CHECK_STATUS(gc_remove_roots(small, SMALL_N * sizeof(void *)), GC_OK);
    free(big);
    free(small);
}

TEST(heap_shrinks_after_dropping_50_mib) {
    gc_stats before, during, after;
    collect_hard();
    stats(&before);
    allocate_50_mib(&during);
    const uint64_t total = (uint64_t)BIG_N * BIG_SIZE + (uint64_t)small_n * SMALL_SIZE;
    CHECK_GE(during.heap_alloc_bytes, before.heap_alloc_bytes + total);
    CHECK_GE(during.heap_objects, before.heap_objects + BIG_N + small_n);
    collect_hard();
    stats(&after);
    /* At most a few stale words' worth stays: 1 MiB and 1000 objects. */
    CHECK_LE(after.heap_alloc_bytes, before.heap_alloc_bytes + (1 << 20));
    CHECK_LE(after.heap_objects, before.heap_objects + 1000);
    CHECK_GT(after.num_gc, during.num_gc);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, resident = 0;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return n == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

#define RSS_BLOCKS 128
/* In bss, a root; volatile, or the compiler could drop these write-only stores. */
static void *volatile rss_blocks[RSS_BLOCKS];

static NOINLINE void touch_128_mib(void) {
    for (int i = 0; i < RSS_BLOCKS; i++) {
        void *p = gc_alloc_noscan(1 << 20);
        REQUIRE(p != NULL);
        memset(p, 0x77, 1 << 20);
        rss_blocks[i] = p;
    }
}

TEST(free_pages_go_back_to_the_os) {
    collect_hard();
    long base = rss_kib();
    REQUIRE(base > 0);
    touch_128_mib();
    long peak = rss_kib();
    CHECK_GE(peak, base + 100 * 1024); /* the memory was really resident */
    for (int i = 0; i < RSS_BLOCKS; i++) rss_blocks[i] = NULL;
    collect_hard();
    collect_hard();
    long after = rss_kib();
    gc_stats s;
    stats(&s);
    CHECKF(after <= peak - 64 * 1024, "resident memory did not shrink: %ld KiB with 128 MiB live, %ld KiB after "
           "dropping it", peak, after);
    CHECK_GE(s.heap_released_bytes, 64u << 20);
    CHECK_LE(s.heap_sys_bytes, 64u << 20); /* held pages exclude released ones */
}

/* -------------------------------------------------- automatic collection */

static NOINLINE void allocate_garbage(size_t total, size_t each) {
    for (size_t done = 0; done < total; done += each) {
        unsigned char *p = gc_alloc_noscan(each);
        REQUIRE(p != NULL);
        p[0] = 1;
        p[each - 1] = 1;
    }
}

TEST(automatic_collection_bounds_the_heap) {
    /* Unless the environment turned automatic collection off. */
    const char *pct = getenv("GCPIN_GC_PERCENT");
    if (pct && (strcmp(pct, "off") == 0 || strcmp(pct, "OFF") == 0)) return;
    gc_stats before, after;
    stats(&before);
    allocate_garbage(512u << 20, 64 << 10); /* 512 MiB of garbage, nothing live */
    stats(&after);
    CHECK_GE(after.num_gc, before.num_gc + 4);
    /* The live heap is nearly empty, so the trigger stays near the 4 MiB minimum. */
    CHECK_LE(after.heap_sys_bytes, 64u << 20);
    CHECK_LE(after.next_gc_bytes, 32u << 20);
    CHECK_GE(after.total_alloc_bytes, before.total_alloc_bytes + (512u << 20));
}

/* ------------------------------------------------------------ statistics */

static void *volatile counted[1000];

TEST(stats_count_objects_and_bytes_exactly) {
    /* Exact only when no collection runs between the readings: no automatic
     * collection, no stress collection (read at the runtime's first use). */
    REQUIRE(setenv("GCPIN_GC_PERCENT", "off", 1) == 0);
    REQUIRE(unsetenv("GCPIN_STRESS") == 0);
    collect_hard();
    gc_stats a, b;
    stats(&a);
    /* 1000 objects of 100 bytes: size class 112. */
    for (int i = 0; i < 1000; i++) counted[i] = gc_alloc(100);
    stats(&b);
    CHECK_EQ(b.heap_objects - a.heap_objects, 1000);
    CHECK_EQ(b.heap_alloc_bytes - a.heap_alloc_bytes, 1000 * 112);
    CHECK_EQ(b.total_alloc_bytes - a.total_alloc_bytes, 1000 * 112);
    CHECK_GE(b.heap_sys_bytes, b.heap_alloc_bytes);
    CHECK_EQ(b.num_gc, a.num_gc); /* reading statistics is not a collection */
    /* A large object counts at least its size. */
    void *volatile big = gc_alloc(100000);
    gc_stats c;
    stats(&c);
    CHECK_EQ(c.heap_objects - b.heap_objects, 1);
    CHECK_GE(c.heap_alloc_bytes - b.heap_alloc_bytes, 100000);
    CHECK_LE(c.heap_alloc_bytes - b.heap_alloc_bytes, 100000 + 8192);
    (void)big;
}

TEST(each_gc_collect_is_one_counted_cycle_with_pauses) {
    gc_stats a, b;
    stats(&a);
    for (int i = 0; i < 5; i++) gc_collect();
    stats(&b);
    CHECK_EQ(b.num_gc - a.num_gc, 5);
    CHECK_GT(b.pause_total_ns, a.pause_total_ns);
    CHECK_GT(b.last_pause_ns, 0);
    CHECK_GE(b.max_pause_ns, b.last_pause_ns);
    CHECK_GE(b.pause_total_ns, b.max_pause_ns);
    CHECK_EQ(b.pinned_objects, 0);
    CHECK_EQ(b.finalizers_queued, 0);
    gc_get_stats(NULL); /* ignored */
}
