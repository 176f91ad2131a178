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

/* Unmapped memory cannot be a root: gc_add_roots refuses it (and memory that
 * is mapped but not readable) instead of letting the next collection fault. */
TEST(adding_unmapped_or_unreadable_memory_as_roots_is_refused) {
    long page = sysconf(_SC_PAGESIZE);
    /* The runtime first: its own tables, mapped when it starts, must not
     * fill the hole (under valgrind, whose mmap takes the lowest gap that
     * fits, a one-page table did). */
    gc_collect();
    char *m = mmap(NULL, 3 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    REQUIRE(munmap(m + page, (size_t)page) == 0); /* a hole in the middle */
    CHECK_STATUS(gc_add_roots(m + page, (size_t)page), GC_ERR_INVALID);
    CHECK_STATUS(gc_add_roots(m, 3 * (size_t)page), GC_ERR_INVALID);
    REQUIRE(mprotect(m + 2 * page, (size_t)page, PROT_NONE) == 0);
    CHECK_STATUS(gc_add_roots(m + 2 * page, 64), GC_ERR_INVALID);
    CHECK_STATUS(gc_add_roots(m, (size_t)page), GC_OK); /* the readable page still can */
    gc_collect();
    CHECK_STATUS(gc_remove_roots(m, (size_t)page), GC_OK);
    gc_collect();
    munmap(m, 3 * (size_t)page);
}

/* ---------------------------------------------------- thread-local storage */

#include <dlfcn.h>

static __thread void *tls_slots[N]; /* the program's own static TLS */

TEST(object_referenced_only_from_a_main_thread_tls_variable_stays_alive) {
    fill_slots(tls_slots);
    churn();
    check_all_alive(tls_slots, "a __thread variable of the main thread");
    memset(tls_slots, 0, sizeof tls_slots);
    escape(tls_slots);
    check_most_finalized("after clearing the __thread variable");
}

/* A worker thread fills its own __thread slots, then waits while the main
 * thread churns and collects; it checks them before it exits. */
static atomic_int tls_worker_filled, tls_worker_go_on;

static void *tls_worker(void *arg) {
    (void)arg;
    fill_slots(tls_slots);
    atomic_store(&tls_worker_filled, 1);
    await_int(&tls_worker_go_on, 1, 60);
    void *copy[N];
    memcpy(copy, tls_slots, sizeof copy);
    check_all_alive(copy, "a worker's __thread variable");
    memset(tls_slots, 0, sizeof tls_slots);
    return NULL;
}

TEST(object_referenced_only_from_a_worker_thread_tls_variable_stays_alive) {
    pthread_t t;
    start_thread(&t, tls_worker, NULL);
    REQUIRE(await_int(&tls_worker_filled, 1, 30));
    churn();
    atomic_store(&tls_worker_go_on, 1);
    pthread_join(t, NULL);
}

/* The path of the helper library, next to this test's binary. */
static void helper_path(char *out, size_t size, const char *name) {
    ssize_t n = readlink("/proc/self/exe", out, size - 64);
    REQUIRE(n > 0);
    out[n] = 0;
    char *slash = strrchr(out, '/');
    REQUIRE(slash != NULL);
    snprintf(slash + 1, 64, "%s", name);
}

struct tls_helper {
    void *handle;
    void (*set)(int, void *);
    void *(*get)(int);
    void (*set_bss)(int, void *);
};

static void open_tls_helper(struct tls_helper *h) {
    char path[4096];
    helper_path(path, sizeof path, "libtls_helper.so");
    h->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    REQUIRE(h->handle != NULL);
    *(void **)&h->set = dlsym(h->handle, "tls_helper_set");
    *(void **)&h->get = dlsym(h->handle, "tls_helper_get");
    *(void **)&h->set_bss = dlsym(h->handle, "tls_helper_set_bss");
    REQUIRE(h->set && h->get && h->set_bss);
}

static struct tls_helper helper;

/* Objects `first..first+count` into the dlopened library's __thread slots. */
static NOINLINE void fill_helper_tls(int first, int count) {
    for (int i = 0; i < count; i++) helper.set(i, make_object(first + i));
}

static void check_helper_tls(int first, int count, const char *where) {
    for (int i = 0; i < count; i++) {
        void *p = helper.get(i);
        CHECKF(p != NULL && pattern_ok(p, OBJ_SIZE, (uintptr_t)(first + i) + 1000), "object %d (only in %s) was lost",
               first + i, where);
        CHECKF(atomic_load(&fin_ids[first + i]) == 0, "object %d (only in %s) was finalized", first + i, where);
    }
}

static atomic_int dyn_worker_filled, dyn_worker_go_on;

static void *dyn_tls_worker(void *arg) {
    (void)arg;
    fill_helper_tls(N / 2, N / 2);
    atomic_store(&dyn_worker_filled, 1);
    await_int(&dyn_worker_go_on, 1, 60);
    check_helper_tls(N / 2, N / 2, "a worker's __thread variable of a dlopened library");
    for (int i = 0; i < N / 2; i++) helper.set(i, NULL);
    return NULL;
}

/* glibc keeps a dlopened library's TLS blocks in malloc memory, one per thread
 * that touched them: not a stack, not a data segment. */
TEST(object_referenced_only_from_a_dlopened_librarys_tls_stays_alive) {
    open_tls_helper(&helper);
    fill_helper_tls(0, N / 2);
    pthread_t t;
    start_thread(&t, dyn_tls_worker, NULL);
    REQUIRE(await_int(&dyn_worker_filled, 1, 30));
    churn();
    check_helper_tls(0, N / 2, "a main-thread __thread variable of a dlopened library");
    atomic_store(&dyn_worker_go_on, 1);
    pthread_join(t, NULL);
    for (int i = 0; i < N / 2; i++) helper.set(i, NULL);
    check_most_finalized("after clearing the library's __thread variables");
}

/* One thread loads and unloads a library in a loop (and never calls gcpin)
 * while this one collects: a library unloaded between the list of loaded
 * objects and the scan must not be scanned. */
static atomic_int dl_stop, dl_rounds;

static void *dlopen_loop(void *arg) {
    const char *path = arg;
    while (!atomic_load(&dl_stop)) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            break;
        }
        void (*set_bss)(int, void *);
        *(void **)&set_bss = dlsym(h, "tls_helper_set_bss");
        if (set_bss) set_bss(0, &dl_rounds);
        dlclose(h);
        atomic_fetch_add(&dl_rounds, 1);
    }
    return NULL;
}

TEST_TIMEOUT(dlopen_and_dlclose_on_another_thread_during_collections, 60) {
    static char path[4096];
    helper_path(path, sizeof path, "libtls_helper.so");
    gc_thread_register();
    pthread_t t;
    start_thread(&t, dlopen_loop, path);
    double end = check_now() + 1.5;
    int cycles = 0;
    void *keep = make_object(0);
    while (check_now() < end) {
        for (int i = 0; i < 200; i++) (void)gc_alloc(64);
        gc_collect();
        cycles++;
    }
    atomic_store(&dl_stop, 1);
    pthread_join(t, NULL);
    CHECKF(atomic_load(&dl_rounds) > 10, "only %d dlopen/dlclose rounds", atomic_load(&dl_rounds));
    CHECKF(cycles > 10, "only %d collections", cycles);
    CHECK(pattern_ok(keep, OBJ_SIZE, 1000));
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}
