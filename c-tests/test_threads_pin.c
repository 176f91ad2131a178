/* Pinning across threads: pins keep objects that only C memory (malloc, the
 * kernel) refers to while other threads allocate and collect; pins from many
 * threads on the same objects count exactly; pins outlive the pinning thread
 * and may be undone by another; a pinner left on an exited thread's stack is
 * reported as leaked and its objects stay pinned.
 *
 * Bounded in time; CHECK is safe on any thread. */
#include "check.h"

#include <pthread.h>
#include <sched.h>

enum { BUF_BYTES = 1024 };

/* Churn: garbage in the buffers' size class, overwritten at once, so a buffer
 * freed too early is soon reused and its pattern destroyed. Collects every 64
 * rounds. */
static atomic_int churn_stop;
static atomic_long churn_collections;

static void *churner(void *arg) {
    (void)arg;
    long k = 0;
    while (!atomic_load(&churn_stop)) {
        unsigned char *g = gc_alloc_noscan(BUF_BYTES);
        if (g) memset(g, 0xEE, BUF_BYTES);
        void **n = gc_alloc(64);
        if (n) n[0] = g;
        if ((++k & 63) == 0) {
            gc_collect();
            atomic_fetch_add(&churn_collections, 1);
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Buffers pinned by one thread and referenced only from malloc memory. */

enum { PIN_BUFS = 128, CTL_BUFS = 64 };
static void **pinned_slots;  /* malloc: not a root */
static void **control_slots; /* malloc: the same, but unpinned */
static atomic_int pinned_fin, control_fin, owner_ready, owner_release, owner_bad, owner_after_unpin_bad;

static NOINLINE void pin_into_malloc(gc_pinner *pn) {
    for (int i = 0; i < PIN_BUFS; i++) {
        void *b = gc_alloc_noscan(BUF_BYTES);
        REQUIRE(b != NULL);
        pattern_fill(b, BUF_BYTES, 1000 + (uintptr_t)i);
        CHECK_STATUS(gc_set_finalizer(b, count_fin, &pinned_fin), GC_OK);
        CHECK_STATUS(pinner_pin(pn, (char *)b + (size_t)i % BUF_BYTES), GC_OK); /* interior too */
        pinned_slots[i] = b;
    }
    for (int i = 0; i < CTL_BUFS; i++) {
        void *c = gc_alloc_noscan(BUF_BYTES);
        REQUIRE(c != NULL);
        pattern_fill(c, BUF_BYTES, 5000 + (uintptr_t)i);
        CHECK_STATUS(gc_set_finalizer(c, count_fin, &control_fin), GC_OK);
        control_slots[i] = c;
    }
}

static void *pin_owner(void *arg) {
    (void)arg;
    gc_pinner pn = {0}; /* on this thread's stack: where the collector looks */
    pin_into_malloc(&pn);
    scrub_stack();
    atomic_store(&owner_ready, 1);
    while (!atomic_load(&owner_release)) sleep_ms(1);
    int bad = 0;
    for (int i = 0; i < PIN_BUFS; i++) {
        void *b = pinned_slots[i];
        if (!is_pinned(b) || gc_pin_count(b) != 1 || gc_check_pointer(b) != GC_OK ||
            !pattern_ok(b, BUF_BYTES, 1000 + (uintptr_t)i))
            bad++;
    }
    atomic_store(&owner_bad, bad);
    pinner_unpin(&pn);
    bad = 0;
    for (int i = 0; i < PIN_BUFS; i++)
        if (is_pinned(pinned_slots[i]) || gc_pin_count(pinned_slots[i]) != 0) bad++;
    atomic_store(&owner_after_unpin_bad, bad);
    escape(&pn);
    return NULL;
}

TEST_TIMEOUT(pinned_buffers_only_in_malloc_memory_survive_other_threads_churn, 40) {
    pinned_slots = calloc(PIN_BUFS, sizeof *pinned_slots);
    control_slots = calloc(CTL_BUFS, sizeof *control_slots);
    pthread_t owner, ch[2];
    start_thread(&owner, pin_owner, NULL);
    REQUIRE(await_int(&owner_ready, 1, 10));
    gc_stats st;
    gc_get_stats(&st);
    CHECK_GE(st.pinned_objects, PIN_BUFS);

    for (int i = 0; i < 2; i++) start_thread(&ch[i], churner, NULL);
    double end = check_now() + 3;
    while (atomic_load(&churn_collections) < 100 && check_now() < end) sleep_ms(5);
    /* The unpinned controls, also only in malloc memory, are collected: so it
     * is the pins that keep the others. */
    CHECK(collect_until(&control_fin, CTL_BUFS - 2, 20));
    gc_run_finalizers();
    int lost = atomic_load(&pinned_fin);
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(ch[i], NULL);
    CHECK_GE(atomic_load(&churn_collections), 20);

    atomic_store(&owner_release, 1);
    pthread_join(owner, NULL);
    CHECK_EQ(lost, 0);
    CHECK_EQ(atomic_load(&owner_bad), 0);
    CHECK_EQ(atomic_load(&owner_after_unpin_bad), 0);

    /* Unpinned, referenced only from malloc: now they are garbage. */
    CHECK(collect_until(&pinned_fin, PIN_BUFS - 2, 20));
    CHECK_LE(atomic_load(&pinned_fin), PIN_BUFS);
    gc_get_stats(&st);
    CHECK_EQ(st.pinned_objects, 0);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
    free(pinned_slots);
    free(control_slots);
}

/* ---------------------------------------------------------------------------
 * Pinning and unpinning the same objects from several threads at once. */

enum { SHARED = 64, PIN_THREADS = 4, PIN_ROUNDS = 3000 };
static void *shared[SHARED]; /* a global: the objects stay reachable */
static atomic_int holding, released, release_upto, pin_rounds[PIN_THREADS], pin_bad, coll_stop;
static double pin_deadline;

static void *concurrent_pinner(void *arg) {
    int t = (int)(intptr_t)arg;
    gc_pinner pn = {0};
    for (int r = 0; r < PIN_ROUNDS && check_now() < pin_deadline; r++) {
        int mode = (r + t) % 3;
        size_t mine = mode == 2 ? 2 : 1;
        if (mode == 1) {
            CHECK_STATUS(pinner_pin_many(&pn, (const void *const *)shared, SHARED), GC_OK);
        } else {
            for (size_t k = 0; k < mine; k++)
                for (int i = 0; i < SHARED; i++)
                    CHECK_STATUS(pinner_pin(&pn, (char *)shared[i] + (size_t)(i % 4) * 8), GC_OK);
        }
        /* While my pins are outstanding the objects are pinned, whatever the
         * other threads do. */
        for (int i = 0; i < SHARED; i++)
            if (!is_pinned(shared[i]) || gc_pin_count(shared[i]) < mine) atomic_fetch_add(&pin_bad, 1);
        pinner_unpin(&pn);
        atomic_fetch_add(&pin_rounds[t], 1);
    }
    /* End state: thread t holds exactly t + 1 pins on every object. */
    for (int k = 0; k <= t; k++)
        for (int i = 0; i < SHARED; i++) CHECK_STATUS(pinner_pin(&pn, shared[i]), GC_OK);
    atomic_fetch_add(&holding, 1);
    while (atomic_load(&release_upto) <= t) sleep_ms(1);
    pinner_unpin(&pn);
    atomic_fetch_add(&released, 1);
    escape(&pn);
    return NULL;
}

static void *tight_collector(void *arg) {
    (void)arg;
    while (!atomic_load(&coll_stop)) gc_collect();
    return NULL;
}

/* Sum over threads t >= from of (t + 1). */
static size_t pins_held_from(int from) {
    size_t n = 0;
    for (int t = from; t < PIN_THREADS; t++) n += (size_t)t + 1;
    return n;
}

static bool counts_are(size_t want) {
    bool ok = true;
    for (int i = 0; i < SHARED; i++) {
        size_t c = gc_pin_count(shared[i]);
        if (c != want || is_pinned(shared[i]) != (want > 0)) {
            fprintf(stderr, "    object %d: pin count %zu, is_pinned %d, expected %zu\n", i, c,
                    is_pinned(shared[i]), want);
            ok = false;
        }
    }
    return ok;
}

TEST_TIMEOUT(concurrent_pin_unpin_from_several_threads_keeps_counts_exact, 40) {
    for (int i = 0; i < SHARED; i++) shared[i] = (i & 1) ? gc_alloc(64) : gc_alloc_noscan(64);
    pthread_t c, p[PIN_THREADS];
    pin_deadline = check_now() + 2.0;
    start_thread(&c, tight_collector, NULL);
    for (int t = 0; t < PIN_THREADS; t++) start_thread(&p[t], concurrent_pinner, (void *)(intptr_t)t);
    REQUIRE(await_int(&holding, PIN_THREADS, 30));

    CHECK(counts_are(pins_held_from(0))); /* 1 + 2 + 3 + 4 */
    gc_stats st;
    gc_get_stats(&st);
    CHECK_EQ(st.pinned_objects, SHARED);
    /* Release one thread at a time, collections still running. */
    for (int t = 0; t < PIN_THREADS; t++) {
        atomic_store(&release_upto, t + 1);
        REQUIRE(await_int(&released, t + 1, 10));
        CHECK(counts_are(pins_held_from(t + 1)));
    }
    for (int t = 0; t < PIN_THREADS; t++) pthread_join(p[t], NULL);
    atomic_store(&coll_stop, 1);
    pthread_join(c, NULL);
    gc_get_stats(&st);
    CHECK_EQ(st.pinned_objects, 0);
    CHECK_EQ(atomic_load(&pin_bad), 0);
    for (int t = 0; t < PIN_THREADS; t++) CHECK_GE(atomic_load(&pin_rounds[t]), 3);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* ---------------------------------------------------------------------------
 * Pins outlive the thread that made them; another thread undoes them. */

enum { OUTLIVE = 100 };
typedef struct holder {
    unsigned char *child; /* unpinned, reachable only through the pinned holder */
    uint64_t tag;
} holder;

static gc_pinner global_pinner; /* in bss: where the collector looks */
static void **outlive_slots;    /* malloc */
static atomic_int parent_fin, child_fin;

static NOINLINE void pin_and_leave(void) {
    for (int i = 0; i < OUTLIVE; i++) {
        holder *h = gc_alloc(sizeof *h);
        REQUIRE(h != NULL);
        h->tag = 0x7A6000u + (uint64_t)i;
        h->child = gc_alloc_noscan(256);
        REQUIRE(h->child != NULL);
        pattern_fill(h->child, 256, (uintptr_t)i);
        CHECK_STATUS(gc_set_finalizer(h, count_fin, &parent_fin), GC_OK);
        CHECK_STATUS(gc_set_finalizer(h->child, count_fin, &child_fin), GC_OK);
        CHECK_STATUS(pinner_pin(&global_pinner, h), GC_OK);
        outlive_slots[i] = h;
    }
}

static void *pinning_thread(void *arg) {
    (void)arg;
    pin_and_leave();
    scrub_stack();
    return NULL; /* exits with its pins outstanding */
}

static NOINLINE void churn_some(int n) {
    for (int i = 0; i < n; i++) {
        holder *g = gc_alloc(sizeof *g);
        g->tag = ~0ull;
        memset(gc_alloc_noscan(256), 0xEE, 256);
    }
}

TEST_TIMEOUT(pins_outlive_the_pinning_thread_and_another_thread_unpins, 40) {
    outlive_slots = calloc(OUTLIVE, sizeof *outlive_slots);
    pthread_t t;
    start_thread(&t, pinning_thread, NULL);
    pthread_join(t, NULL);
    for (int i = 0; i < 10; i++) {
        churn_some(200);
        collect_hard();
    }
    sleep_ms(20);
    gc_run_finalizers();
    CHECK_EQ(atomic_load(&parent_fin), 0);
    CHECK_EQ(atomic_load(&child_fin), 0); /* a pinned object is a root */
    int bad = 0;
    for (int i = 0; i < OUTLIVE; i++) {
        holder *h = outlive_slots[i];
        if (!is_pinned(h) || gc_pin_count(h) != 1 || h->tag != 0x7A6000u + (uint64_t)i ||
            !pattern_ok(h->child, 256, (uintptr_t)i))
            bad++;
        /* cgocheck: the holder points at an unpinned heap object. */
        if (gc_check_pointer(h) != GC_ERR_UNPINNED_POINTER) bad++;
    }
    CHECK_EQ(bad, 0);

    pinner_unpin(&global_pinner); /* from this thread, not the one that pinned */
    for (int i = 0; i < OUTLIVE; i++) CHECK(!is_pinned(outlive_slots[i]));
    CHECK(collect_until(&parent_fin, OUTLIVE - 2, 20));
    /* The children go once their parents' finalizers have run. */
    CHECK(collect_until(&child_fin, OUTLIVE - 4, 20));
    CHECK_LE(atomic_load(&parent_fin), OUTLIVE);
    CHECK_LE(atomic_load(&child_fin), OUTLIVE);
    free(outlive_slots);
}

/* ---------------------------------------------------------------------------
 * A pinner left on the stack of a thread that exits is reported as leaked;
 * the objects it pinned stay pinned (the kernel may still use them). */

enum { LEAKERS = 6, LEAK_PINS = 3 };
static void **leak_slots; /* malloc */
static atomic_int leaks, leaked_objects;

static void on_leak(size_t pinned, void *arg) {
    CHECK(arg == (void *)&leaks);
    atomic_fetch_add(&leaks, 1);
    atomic_fetch_add(&leaked_objects, (int)pinned);
}

static NOINLINE void pin_and_forget(int t) {
    gc_pinner pn = {0};
    for (int k = 0; k < LEAK_PINS; k++) {
        void *b = gc_alloc_noscan(128);
        REQUIRE(b != NULL);
        pattern_fill(b, 128, (uintptr_t)(t * 10 + k));
        CHECK_STATUS(pinner_pin(&pn, b), GC_OK);
        leak_slots[t * LEAK_PINS + k] = b;
    }
    escape(&pn); /* ... and never unpinned */
}

static void *leaking_thread(void *arg) {
    pin_and_forget((int)(intptr_t)arg);
    scrub_stack();
    return NULL;
}

TEST_TIMEOUT(pinner_left_on_an_exited_threads_stack_is_reported_and_keeps_its_pins, 40) {
    leak_slots = calloc(LEAKERS * LEAK_PINS, sizeof *leak_slots);
    gc_set_pinner_leak_handler(on_leak, &leaks);
    pthread_t t[LEAKERS];
    for (int i = 0; i < LEAKERS; i++) start_thread(&t[i], leaking_thread, (void *)(intptr_t)i);
    for (int i = 0; i < LEAKERS; i++) pthread_join(t[i], NULL);
    /* One stale word may hide one pinner; never more reports than pinners. */
    CHECK(collect_until(&leaks, LEAKERS - 1, 20));
    collect_hard();
    sleep_ms(20);
    gc_run_finalizers();
    int n = atomic_load(&leaks);
    CHECK_LE(n, LEAKERS);
    CHECK_EQ(atomic_load(&leaked_objects), n * LEAK_PINS);
    churn_some(500);
    collect_hard();
    int bad = 0;
    for (int i = 0; i < LEAKERS * LEAK_PINS; i++) {
        void *b = leak_slots[i];
        if (!is_pinned(b) || gc_pin_count(b) != 1 || !pattern_ok(b, 128, (uintptr_t)((i / LEAK_PINS) * 10 + i % LEAK_PINS)))
            bad++;
    }
    CHECK_EQ(bad, 0);
    gc_stats st;
    gc_get_stats(&st);
    CHECK_GE(st.pinned_objects, LEAKERS * LEAK_PINS);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
    free(leak_slots);
}
