/* Errors: every status has a distinct description; root ranges, finalizers,
 * checks and thread registration reject bad arguments with the documented
 * status and change nothing. */
#include "check.h"

#include <limits.h>
#include <pthread.h>

TEST(strerror_describes_every_status_distinctly) {
    const gc_status all[] = {GC_OK, GC_ERR_NULL, GC_ERR_NOT_GC_POINTER, GC_ERR_NOT_ALLOCATED,
                             GC_ERR_UNPINNED_POINTER, GC_ERR_NO_MEMORY, GC_ERR_INVALID, GC_ERR_THREAD};
    const size_t n = sizeof all / sizeof all[0];
    const char *text[sizeof all / sizeof all[0]];
    for (size_t i = 0; i < n; i++) {
        text[i] = gc_strerror(all[i]);
        CHECKF(text[i] != NULL, "gc_strerror(%d) is NULL", (int)all[i]);
        if (!text[i]) continue;
        CHECKF(text[i][0] != 0, "gc_strerror(%d) is empty", (int)all[i]);
        for (size_t j = 0; j < i; j++)
            CHECKF(text[j] == NULL || strcmp(text[i], text[j]) != 0, "gc_strerror(%d) == gc_strerror(%d): \"%s\"",
                   (int)all[i], (int)all[j], text[i]);
    }
    /* Unknown values get a text too. */
    const int unknown[] = {8, 9, 100, 255, INT_MAX, -1};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *u = gc_strerror((gc_status)unknown[i]);
        CHECKF(u != NULL && u[0] != 0, "gc_strerror(%d) is NULL or empty", unknown[i]);
        for (size_t j = 0; u && j < n; j++)
            CHECKF(text[j] == NULL || strcmp(u, text[j]) != 0, "unknown status %d described as status %d: \"%s\"",
                   unknown[i], (int)all[j], u);
    }
}

TEST(root_ranges_reject_null_unregistered_and_wrapping_ranges) {
    static char area[256];
    static char other[256];
    CHECK_STATUS(gc_add_roots(NULL, 16), GC_ERR_NULL);
    CHECK_STATUS(gc_remove_roots(NULL, 16), GC_ERR_NULL);
    /* Never added. */
    CHECK_STATUS(gc_remove_roots(area, sizeof area), GC_ERR_INVALID);
    /* The end wraps around the address space. */
    CHECK_STATUS(gc_add_roots((void *)(UINTPTR_MAX - 15), 32), GC_ERR_INVALID);
    CHECK_STATUS(gc_add_roots((void *)(UINTPTR_MAX & ~(uintptr_t)15), SIZE_MAX), GC_ERR_INVALID);
    CHECK_STATUS(gc_add_roots(area, SIZE_MAX), GC_ERR_INVALID);
    /* Removal takes exactly the range that was added. */
    CHECK_STATUS(gc_add_roots(area, sizeof area), GC_OK);
    CHECK_STATUS(gc_remove_roots(area, 128), GC_ERR_INVALID);
    CHECK_STATUS(gc_remove_roots(area + 16, sizeof area - 16), GC_ERR_INVALID);
    CHECK_STATUS(gc_remove_roots(other, sizeof other), GC_ERR_INVALID);
    CHECK_STATUS(gc_remove_roots(area, sizeof area), GC_OK);
    /* Removed once; a second removal is an unregistered range. */
    CHECK_STATUS(gc_remove_roots(area, sizeof area), GC_ERR_INVALID);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* A wrapped range that was rejected was not registered either: a root there
 * would keep this object alive. */
static atomic_int finalized;
static void count_finalizer(void *o, void *a) {
    (void)o;
    (void)a;
    atomic_fetch_add(&finalized, 1);
}

static NOINLINE void make_garbage(void **slots, int n) {
    for (int i = 0; i < n; i++) {
        slots[i] = gc_alloc(32);
        REQUIRE(slots[i] != NULL);
        CHECK_STATUS(gc_set_finalizer(slots[i], count_finalizer, NULL), GC_OK);
    }
}

TEST(rejected_root_range_is_not_registered) {
    enum { N = 100 };
    void **slots = calloc(N, sizeof(void *));
    REQUIRE(slots != NULL);
    /* Rejected: a length that makes the range wrap. */
    CHECK_STATUS(gc_add_roots(slots, SIZE_MAX - 8), GC_ERR_INVALID);
    make_garbage(slots, N);
    CHECKF(collect_until(&finalized, N * 9 / 10, 10), "only %d of %d objects in a rejected range were freed",
           atomic_load(&finalized), N);
    free(slots);
}

TEST(check_pointer_and_set_finalizer_reject_null) {
    CHECK_STATUS(gc_check_pointer(NULL), GC_ERR_NULL);
    CHECK_STATUS(gc_set_finalizer(NULL, count_finalizer, NULL), GC_ERR_NULL);
    CHECK_STATUS(gc_set_finalizer(NULL, NULL, NULL), GC_ERR_NULL);
    gc_get_stats(NULL); /* ignored, no crash */
}

/* -------------------------------------------------- thread registration */

struct reg_result {
    gc_status unregister_fresh, register_first, register_again, unregister_first, unregister_again;
};

static void *registration_thread(void *arg) {
    struct reg_result *r = arg;
    r->unregister_fresh = gc_thread_unregister(); /* never registered */
    r->register_first = gc_thread_register();
    r->register_again = gc_thread_register();
    r->unregister_first = gc_thread_unregister();
    r->unregister_again = gc_thread_unregister();
    return NULL;
}

TEST(thread_unregister_of_an_unregistered_thread_is_an_error) {
    gc_thread_register();
    struct reg_result r;
    memset(&r, 0xFF, sizeof r);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, registration_thread, &r) == 0);
    pthread_join(t, NULL);
    CHECK_STATUS(r.unregister_fresh, GC_ERR_THREAD);
    CHECK_STATUS(r.register_first, GC_OK);
    CHECK_STATUS(r.register_again, GC_OK); /* registering twice is fine */
    CHECK_STATUS(r.unregister_first, GC_OK);
    CHECK_STATUS(r.unregister_again, GC_ERR_THREAD);
    /* The runtime works on after all that. */
    gc_collect();
    CHECK(gc_alloc(16) != NULL);
}
