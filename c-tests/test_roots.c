/* Roots: objects referenced only from globals (bss and data), from the stack, or
 * from ranges given to gc_add_roots stay alive across collections; once the
 * range is removed (or the global cleared) they become collectable. */
#include "check.h"

#define N 100
#define OBJ_SIZE 96

/* Allocates object `id` with a finalizer and a pattern; returns it. */
static NOINLINE void *make_object(int id) {
    void *p = gc_alloc(OBJ_SIZE);
    REQUIRE(p != NULL);
    pattern_fill(p, OBJ_SIZE, (uintptr_t)id + 1000);
    CHECK_STATUS(gc_set_finalizer(p, count_fin_id, (void *)(intptr_t)id), GC_OK);
    return p;
}

/* Fills slots[0..N) with new objects (the only references). */
static NOINLINE void fill_slots(void **slots) {
    for (int i = 0; i < N; i++) slots[i] = make_object(i);
}

static void check_all_alive(void *const *slots, const char *where) {
    CHECKF(atomic_load(&fin_count) == 0, "%d finalizers ran for objects referenced from %s",
           atomic_load(&fin_count), where);
    for (int i = 0; i < N; i++) {
        CHECKF(pattern_ok(slots[i], OBJ_SIZE, (uintptr_t)i + 1000), "object %d (only in %s) was overwritten", i,
               where);
        CHECKF(gc_check_pointer(slots[i]) == GC_OK, "object %d (only in %s) is no longer allocated", i, where);
    }
}

/* Several collections with garbage in between, which would reuse freed slots. */
static NOINLINE void churn(void) {
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 20000; i++) (void)gc_alloc(OBJ_SIZE);
        collect_hard();
    }
}

/* At least 90% of the N objects were finalized, and none twice. */
static void check_most_finalized(const char *what) {
    bool enough = collect_until(&fin_count, N * 9 / 10, 10);
    CHECKF(enough, "%s: only %d of %d objects were finalized", what, atomic_load(&fin_count), N);
    for (int i = 0; i < N; i++) CHECKF(atomic_load(&fin_ids[i]) <= 1, "object %d finalized twice", i);
}

/* ----------------------------------------------------------------- globals */

static void *bss_slots[N];                           /* .bss */
static void *data_slots[N] = {(void *)&fin_count};  /* .data: initialized */

TEST(object_referenced_only_from_bss_stays_alive) {
    fill_slots(bss_slots);
    churn();
    check_all_alive(bss_slots, "a .bss global");
    memset(bss_slots, 0, sizeof bss_slots);
    check_most_finalized("after clearing the .bss global");
}

TEST(object_referenced_only_from_data_stays_alive) {
    fill_slots(data_slots);
    churn();
    check_all_alive(data_slots, "a .data global");
    memset(data_slots, 0, sizeof data_slots);
    check_most_finalized("after clearing the .data global");
}

/* ------------------------------------------------------------------- stack */

static NOINLINE void stack_frame_keeps_objects(void) {
    void *volatile local[N];
    for (int i = 0; i < N; i++) local[i] = make_object(i);
    churn();
    void *copy[N];
    for (int i = 0; i < N; i++) copy[i] = local[i];
    check_all_alive(copy, "the stack");
    for (int i = 0; i < N; i++) local[i] = NULL;
    for (int i = 0; i < N; i++) copy[i] = NULL;
    escape(copy);
}

TEST(object_referenced_only_from_the_stack_stays_alive) {
    stack_frame_keeps_objects();
    check_most_finalized("after the frame returned");
}

/* -------------------------------------------------------------- added roots */

TEST(object_referenced_only_from_added_malloc_range_stays_alive) {
    void **range = calloc(N, sizeof(void *));
    REQUIRE(range != NULL);
    CHECK_STATUS(gc_add_roots(range, N * sizeof(void *)), GC_OK);
    fill_slots(range);
    churn();
    check_all_alive(range, "a gc_add_roots range");
    /* The range still holds every pointer, but it is no longer a root. */
    CHECK_STATUS(gc_remove_roots(range, N * sizeof(void *)), GC_OK);
    check_most_finalized("after gc_remove_roots");
    free(range);
}

TEST(large_mmap_root_range_is_scanned_to_its_end) {
    size_t len = 4 << 20;
    void **range = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(range != MAP_FAILED);
    CHECK_STATUS(gc_add_roots(range, len), GC_OK);
    size_t words = len / sizeof(void *);
    /* Pointers spread over the range, the last one in its very last word. */
    void *slots[N];
    fill_slots(slots);
    for (int i = 0; i < N; i++) {
        size_t at = (i == N - 1) ? words - 1 : (size_t)i * (words / N);
        range[at] = slots[i];
        slots[i] = NULL;
    }
    escape(slots);
    churn();
    void *found[N];
    for (int i = 0; i < N; i++) found[i] = range[(i == N - 1) ? words - 1 : (size_t)i * (words / N)];
    check_all_alive(found, "a 4 MiB mmap root range");
    memset(found, 0, sizeof found);
    escape(found);
    CHECK_STATUS(gc_remove_roots(range, len), GC_OK);
    check_most_finalized("after removing the mmap range");
    munmap(range, len);
}

TEST(removing_one_range_keeps_the_other_ranges_roots) {
    void **a = calloc(N, sizeof(void *));
    void **b = calloc(N, sizeof(void *));
    REQUIRE(a && b);
    CHECK_STATUS(gc_add_roots(a, N * sizeof(void *)), GC_OK);
    CHECK_STATUS(gc_add_roots(b, N * sizeof(void *)), GC_OK);
    fill_slots(b); /* b holds the objects; a holds nothing */
    CHECK_STATUS(gc_remove_roots(a, N * sizeof(void *)), GC_OK);
    churn();
    check_all_alive(b, "a range registered next to a removed one");
    CHECK_STATUS(gc_remove_roots(b, N * sizeof(void *)), GC_OK);
    check_most_finalized("after removing the second range");
    free(a);
    free(b);
}

/* Plain malloc memory is not a root: an object whose only reference is there is
 * collected (the contract's reason for gc_add_roots and pinning). */
TEST(plain_malloc_memory_is_not_a_root) {
    void **range = calloc(N, sizeof(void *));
    REQUIRE(range != NULL);
    fill_slots(range);
    check_most_finalized("objects referenced only from malloc memory");
    free(range);
}
