/* Allocation: every size class boundary and large sizes are zeroed, 16-byte
 * aligned, distinct and writable over their full size; reused memory is zeroed
 * again; size 0 is one shared address. */
#include "check.h"

/* Go's size classes without 8 and 24 (DESIGN.md): every class a multiple of 16. */
static const size_t class_sizes[] = {
    16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352,
    384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
    2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
};
#define NCLASSES (sizeof class_sizes / sizeof class_sizes[0])

static const size_t large_sizes[] = {
    32769, 32784, 40000, 49152, 65535, 65536, 65537, 100000, 131072, 250000,
    262144, 524296, 1048575, 1048576,
};
#define NLARGE (sizeof large_sizes / sizeof large_sizes[0])

/* The sizes under test: 1..64, every class boundary -1/0/+1, large sizes. */
static size_t test_sizes[64 + 3 * NCLASSES + NLARGE];
static size_t n_test_sizes;

static void build_sizes(void) {
    n_test_sizes = 0;
    for (size_t s = 1; s <= 64; s++) test_sizes[n_test_sizes++] = s;
    for (size_t c = 0; c < NCLASSES; c++) {
        for (int d = -1; d <= 1; d++) {
            size_t s = (size_t)((long)class_sizes[c] + d);
            if (s > 64) test_sizes[n_test_sizes++] = s;
        }
    }
    for (size_t i = 0; i < NLARGE; i++) test_sizes[n_test_sizes++] = large_sizes[i];
}

struct block {
    unsigned char *p;
    size_t size;
    uintptr_t seed;
};

#define PER_SIZE 3
/* In bss: a root, so every block stays alive for the whole test. */
static struct block blocks[2 * PER_SIZE * (64 + 3 * NCLASSES + NLARGE)];
static size_t n_blocks;

static int by_address(const void *a, const void *b) {
    const struct block *x = a, *y = b;
    return (x->p > y->p) - (x->p < y->p);
}

static void check_fresh_block(const struct block *b, const char *kind) {
    CHECKF(((uintptr_t)b->p & 15) == 0, "%s(%zu) = %p is not 16-byte aligned", kind, b->size, (void *)b->p);
    CHECKF(all_zero(b->p, b->size), "%s(%zu) = %p is not zeroed", kind, b->size, (void *)b->p);
}

TEST(every_size_is_zeroed_aligned_distinct_and_writable) {
    build_sizes();
    n_blocks = 0;
    for (size_t i = 0; i < n_test_sizes; i++) {
        for (int k = 0; k < PER_SIZE; k++) {
            for (int noscan = 0; noscan <= 1; noscan++) {
                size_t s = test_sizes[i];
                unsigned char *p = noscan ? gc_alloc_noscan(s) : gc_alloc(s);
                REQUIRE(p != NULL);
                struct block *b = &blocks[n_blocks];
                b->p = p;
                b->size = s;
                b->seed = n_blocks + 1;
                check_fresh_block(b, noscan ? "gc_alloc_noscan" : "gc_alloc");
                pattern_fill(p, s, b->seed); /* writable over the full size */
                n_blocks++;
            }
        }
    }
    /* Nothing was overwritten by a later allocation. */
    for (size_t i = 0; i < n_blocks; i++)
        CHECKF(pattern_ok(blocks[i].p, blocks[i].size, blocks[i].seed),
               "block of %zu bytes at %p was overwritten", blocks[i].size, (void *)blocks[i].p);
    /* Distinct and non-overlapping. */
    static struct block sorted[sizeof blocks / sizeof blocks[0]];
    memcpy(sorted, blocks, n_blocks * sizeof blocks[0]);
    qsort(sorted, n_blocks, sizeof sorted[0], by_address);
    for (size_t i = 1; i < n_blocks; i++)
        CHECKF(sorted[i - 1].p + sorted[i - 1].size <= sorted[i].p, "[%p, +%zu) overlaps [%p, +%zu)",
               (void *)sorted[i - 1].p, sorted[i - 1].size, (void *)sorted[i].p, sorted[i].size);
    /* Still intact after collections (they are all reachable from bss). */
    collect_hard();
    for (size_t i = 0; i < n_blocks; i++)
        CHECKF(pattern_ok(blocks[i].p, blocks[i].size, blocks[i].seed),
               "block of %zu bytes at %p changed across a collection", blocks[i].size, (void *)blocks[i].p);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ------------------------------------------------------------------ reuse */

static const size_t reuse_sizes[] = {16, 48, 256, 1024, 4096, 10240, 32768, 100000};
#define NREUSE (sizeof reuse_sizes / sizeof reuse_sizes[0])
#define REUSE_MAX 256
static uintptr_t old_hidden[NREUSE][REUSE_MAX];

static int reuse_count(size_t size) {
    size_t n = (4u << 20) / size;
    return n > REUSE_MAX ? REUSE_MAX : (int)n;
}

/* Objects of every reuse size filled with 0xFF and dropped; only hidden
 * addresses remain. */
static NOINLINE void make_dirty_garbage(bool noscan) {
    for (size_t s = 0; s < NREUSE; s++) {
        for (int i = 0; i < reuse_count(reuse_sizes[s]); i++) {
            void *p = noscan ? gc_alloc_noscan(reuse_sizes[s]) : gc_alloc(reuse_sizes[s]);
            REQUIRE(p != NULL);
            memset(p, 0xFF, reuse_sizes[s]);
            old_hidden[s][i] = HIDE(p);
        }
    }
}

/* Whether [p, p + size) overlaps memory that held one of the dirty objects. */
static bool overlaps_dirty(const unsigned char *p, size_t size) {
    for (size_t s = 0; s < NREUSE; s++) {
        for (int i = 0; i < reuse_count(reuse_sizes[s]); i++) {
            const unsigned char *q = UNHIDE(old_hidden[s][i]);
            if (p < q + reuse_sizes[s] && q < p + size) return true;
        }
    }
    return false;
}

/* Kept (volatile: the compiler must not drop the stores), so that every new
 * allocation takes a new slot. */
static void *volatile reuse_keep[2][NREUSE][REUSE_MAX];

static void check_reuse_is_zeroed(bool noscan) {
    const char *kind = noscan ? "gc_alloc_noscan" : "gc_alloc";
    make_dirty_garbage(noscan);
    collect_hard();
    int reused = 0;
    for (size_t s = 0; s < NREUSE; s++) {
        size_t size = reuse_sizes[s];
        for (int i = 0; i < reuse_count(size); i++) {
            unsigned char *p = noscan ? gc_alloc_noscan(size) : gc_alloc(size);
            REQUIRE(p != NULL);
            reuse_keep[noscan][s][i] = p;
            CHECKF(all_zero(p, size), "%s(%zu) = %p: reused memory not zeroed", kind, size, (void *)p);
            reused += overlaps_dirty(p, size);
        }
    }
    /* Otherwise this test did not test reuse at all. */
    CHECKF(reused > 0, "no %s object reused the freed (dirty) memory", kind);
}

TEST(reused_memory_is_zeroed_again) {
    check_reuse_is_zeroed(false);
    check_reuse_is_zeroed(true);
}

/* ---------------------------------------------------------------- zero size */

TEST(size_zero_is_one_shared_non_null_address) {
    void *a = gc_alloc(0);
    void *b = gc_alloc(0);
    void *c = gc_alloc_noscan(0);
    REQUIRE(a != NULL);
    CHECK(a == b);
    CHECK(a == c);
    for (int i = 0; i < 10000; i++) (void)gc_alloc(32); /* other allocations in between */
    collect_hard();
    CHECK(gc_alloc(0) == a);
    CHECK(gc_alloc_noscan(0) == a);
    /* Not an object of the heap: never freed, unmanaged memory is "pinned". */
    CHECK(is_pinned(a));
    CHECK_EQ(gc_pin_count(a), 0);
}

/* ----------------------------------------------------------- many objects */

#define MANY 200000
static uint64_t *many[MANY];

static int by_pointer(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return (x > y) - (x < y);
}

TEST(many_small_objects_are_distinct) {
    const int n = (int)check_size(MANY);
    for (int i = 0; i < n; i++) {
        many[i] = (i & 1) ? gc_alloc_noscan(16) : gc_alloc(16);
        REQUIRE(many[i] != NULL);
        CHECKF(many[i][0] == 0 && many[i][1] == 0, "object %d not zeroed", i);
        many[i][0] = (uint64_t)i * 2654435761u;
        many[i][1] = ~(uint64_t)i;
    }
    collect_hard();
    for (int i = 0; i < n; i++)
        CHECKF(many[i][0] == (uint64_t)i * 2654435761u && many[i][1] == ~(uint64_t)i,
               "object %d at %p overwritten", i, (void *)many[i]);
    static uint64_t *sorted[MANY];
    memcpy(sorted, many, (size_t)n * sizeof many[0]);
    qsort(sorted, (size_t)n, sizeof sorted[0], by_pointer);
    for (int i = 1; i < n; i++)
        CHECKF((uintptr_t)sorted[i - 1] + 16 <= (uintptr_t)sorted[i], "objects %p and %p overlap",
               (void *)sorted[i - 1], (void *)sorted[i]);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}
