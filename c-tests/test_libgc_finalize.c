/* libgc's finalization and disappearing-link API on gcpin: finalizers with
 * their old function and data reported back, libgc's order for objects
 * reachable from finalizable ones, finalize-on-demand and the notifier;
 * short links cleared when their object is unreachable, long ones only when
 * it is freed, moves, duplicates, and links that die with their own object. */
#include <gc.h>

#include "check.h"

static atomic_int finalized;
static atomic_int order[4];
static atomic_int order_next;

static void on_finalize(void *obj, void *cd) {
    (void)obj;
    intptr_t id = (intptr_t)cd;
    if (id >= 0 && id < 4) atomic_store(&order[id], atomic_fetch_add(&order_next, 1) + 1);
    atomic_fetch_add(&finalized, 1);
}

static void other_finalizer(void *obj, void *cd) {
    (void)obj;
    (void)cd;
}

static NOINLINE uintptr_t make_finalizable(intptr_t id) {
    void *p = GC_MALLOC(64);
    if (p) GC_REGISTER_FINALIZER(p, on_finalize, (void *)id, NULL, NULL);
    return HIDE(p);
}

TEST(finalizer_runs_and_reports_the_old_one) {
    uintptr_t h = make_finalizable(0);
    REQUIRE(UNHIDE(h) != NULL);
    GC_finalization_proc ofn = NULL;
    void *ocd = NULL;
    /* Replace it, getting the old one back, then put it back the same way. */
    GC_register_finalizer(UNHIDE(h), other_finalizer, (void *)9, &ofn, &ocd);
    CHECK(ofn == on_finalize);
    CHECK_EQ(ocd, (void *)0);
    GC_register_finalizer(UNHIDE(h), on_finalize, (void *)0, &ofn, &ocd);
    CHECK(ofn == other_finalizer);
    CHECK_EQ(ocd, (void *)9);
    CHECK(collect_until(&finalized, 1, 10));
    /* A pointer outside the heap: nothing, and no old finalizer. */
    int local;
    ofn = other_finalizer;
    ocd = &local;
    GC_register_finalizer(&local, on_finalize, NULL, &ofn, &ocd);
    CHECK(ofn == NULL);
    CHECK_EQ(ocd, NULL);
}

static NOINLINE uintptr_t make_cleared(void) {
    void *p = GC_MALLOC(64);
    if (!p) return 0;
    GC_register_finalizer_no_order(p, on_finalize, (void *)1, NULL, NULL);
    GC_finalization_proc ofn = NULL;
    GC_register_finalizer_ignore_self(p, NULL, NULL, &ofn, NULL); /* NULL: clears */
    CHECK(ofn == on_finalize);
    return HIDE(p);
}

TEST(null_function_clears_the_finalizer) {
    uintptr_t h = make_cleared();
    REQUIRE(h != 0);
    collect_hard();
    collect_hard();
    CHECK_EQ(atomic_load(&finalized), 0);
}

struct pair { struct pair *other; uint64_t pad[3]; };

static NOINLINE void make_chain(void) {
    /* a -> b, both finalizable: libgc's order finalizes a first. */
    struct pair *a = GC_NEW(struct pair), *b = GC_NEW(struct pair);
    REQUIRE(a && b);
    a->other = b;
    GC_REGISTER_FINALIZER(a, on_finalize, (void *)2, NULL, NULL);
    GC_REGISTER_FINALIZER_UNREACHABLE(b, on_finalize, (void *)3, NULL, NULL);
}

TEST(an_object_reachable_from_a_finalizable_one_is_finalized_after_it) {
    make_chain();
    CHECK(collect_until(&finalized, 2, 20));
    CHECK_EQ(atomic_load(&order[2]), 1);
    CHECK_EQ(atomic_load(&order[3]), 2);
}

static atomic_int notified;
static void on_notify(void) { atomic_fetch_add(&notified, 1); }

TEST(finalize_on_demand_waits_for_invoke_finalizers) {
    GC_set_finalize_on_demand(1);
    CHECK_EQ(GC_get_finalize_on_demand(), 1);
    GC_set_finalizer_notifier(on_notify);
    CHECK(GC_get_finalizer_notifier() == on_notify);
    for (int i = 0; i < 10; i++) make_finalizable(-1);
    for (int i = 0; i < 10 && !GC_should_invoke_finalizers(); i++) {
        scrub_stack();
        GC_gcollect();
    }
    CHECK(GC_should_invoke_finalizers());
    CHECK_GT(atomic_load(&notified), 0);
    usleep(50000);
    CHECK_EQ(atomic_load(&finalized), 0); /* nobody ran them behind our back */
    CHECK_GT(GC_invoke_finalizers(), 0);
    CHECK_GT(atomic_load(&finalized), 0);
    GC_set_java_finalization(0);
    CHECK_EQ(GC_get_java_finalization(), 0);
}

/* Links live in the data segment; they hold hidden pointers, so the link
 * itself keeps nothing alive. */
static void *short_link, *long_link, *moved_link, *unregistered_link;

static NOINLINE void make_linked(bool with_finalizer) {
    void *p = GC_MALLOC(48);
    REQUIRE(p);
    short_link = long_link = (void *)GC_HIDE_POINTER(p);
    CHECK_EQ(GC_GENERAL_REGISTER_DISAPPEARING_LINK(&short_link, p), GC_SUCCESS);
    CHECK_EQ(GC_general_register_disappearing_link(&short_link, p), GC_DUPLICATE);
    CHECK_EQ(GC_REGISTER_LONG_LINK(&long_link, p), GC_SUCCESS);
    if (with_finalizer) GC_REGISTER_FINALIZER(p, on_finalize, (void *)-1, NULL, NULL);
}

TEST(short_links_clear_when_unreachable_long_links_when_freed) {
    /* Finalizers on demand: the object waits for its finalizer as long as we
     * like, so the two kinds of link can be told apart. */
    GC_set_finalize_on_demand(1);
    make_linked(true);
    for (int i = 0; i < 20 && short_link != NULL; i++) {
        scrub_stack();
        GC_gcollect();
    }
    CHECK_EQ(short_link, NULL); /* unreachable: cleared, before the finalizer */
    CHECK(long_link != NULL);   /* waiting for its finalizer: not freed yet */
    scrub_stack();
    GC_gcollect();
    CHECK(long_link != NULL);
    CHECK_EQ(atomic_load(&finalized), 0);
    CHECK_GT(GC_invoke_finalizers(), 0);
    /* Now a later cycle frees the object, and clears the long link. */
    for (int i = 0; i < 20 && long_link != NULL; i++) collect_hard();
    CHECK_EQ(long_link, NULL);
    /* Cleared links are no longer registered. */
    CHECK_EQ(GC_unregister_disappearing_link(&short_link), 0);
    CHECK_EQ(GC_unregister_long_link(&long_link), 0);
}

static void *kept_alive;

static NOINLINE void make_live_links(void) {
    void *p = GC_MALLOC(48);
    REQUIRE(p);
    kept_alive = p;
    short_link = moved_link = unregistered_link = (void *)GC_HIDE_POINTER(p);
    CHECK_EQ(GC_general_register_disappearing_link(&short_link, p), GC_SUCCESS);
    CHECK_EQ(GC_general_register_disappearing_link(&unregistered_link, p), GC_SUCCESS);
}

TEST(links_to_a_live_object_stay_and_can_be_moved_and_unregistered) {
    make_live_links();
    void *hidden = (void *)GC_HIDE_POINTER(kept_alive);
    CHECK_EQ(GC_move_disappearing_link(&short_link, &moved_link), GC_SUCCESS);
    CHECK_EQ(GC_move_disappearing_link(&short_link, &moved_link), GC_NOT_FOUND);
    CHECK_EQ(GC_move_disappearing_link(&moved_link, &unregistered_link), GC_DUPLICATE);
    CHECK_EQ(GC_unregister_disappearing_link(&unregistered_link), 1);
    CHECK_EQ(GC_unregister_disappearing_link(&unregistered_link), 0);
    collect_hard();
    CHECK_EQ(moved_link, hidden); /* alive: untouched */
    kept_alive = NULL;
    escape(&kept_alive);
    for (int i = 0; i < 20 && moved_link != NULL; i++) collect_hard();
    CHECK_EQ(moved_link, NULL);          /* the moved registration was the live one */
    CHECK_EQ(unregistered_link, hidden); /* the unregistered one is left alone */
}

/* A link inside a heap object that dies with it: the registration goes too,
 * so the slot's next owner is never written to. */
static NOINLINE uintptr_t make_object_with_link_inside(void *target) {
    void **holder = GC_MALLOC(64);
    if (!holder) return 0;
    holder[1] = (void *)GC_HIDE_POINTER(target);
    CHECK_EQ(GC_general_register_disappearing_link(&holder[1], target), GC_SUCCESS);
    return HIDE(holder);
}

TEST(a_link_inside_a_dead_object_is_dropped_with_it) {
    void *target = GC_MALLOC(32);
    REQUIRE(target);
    kept_alive = target;
    uintptr_t h = make_object_with_link_inside(target);
    REQUIRE(h != 0);
    collect_hard(); /* the holder dies; the target lives */
    /* Reuse the holder's slot (same size class) with a recognizable pattern. */
    static uint64_t *fresh[2000];
    for (int i = 0; i < 2000; i++) {
        fresh[i] = GC_MALLOC(64);
        REQUIRE(fresh[i]);
        fill_words(fresh[i], 8, (uint64_t)i);
    }
    kept_alive = NULL;
    escape(&kept_alive);
    collect_hard(); /* the target dies: no stale link may be cleared into a fresh object */
    for (int i = 0; i < 2000; i++) CHECKF(words_intact(fresh[i], 8, (uint64_t)i), "object %d was written", i);
    CHECK_EQ(gc_verify_heap(), GC_OK);
}

TEST(old_style_link_clears_with_the_object_containing_it) {
    void **holder = GC_MALLOC(32);
    REQUIRE(holder);
    static void *outside;
    GC_set_warn_proc(GC_ignore_warn_proc);
    CHECK_EQ(GC_register_disappearing_link(&outside), GC_UNIMPLEMENTED); /* not in the heap */
    CHECK_EQ(GC_register_disappearing_link(&holder[2]), GC_SUCCESS);
    CHECK_EQ(GC_unregister_disappearing_link(&holder[2]), 1);
    void **volatile no_link = NULL; /* volatile: past the nonnull attribute */
    CHECK_EQ(GC_general_register_disappearing_link(no_link, holder), GC_UNIMPLEMENTED);
    CHECK_EQ(GC_general_register_disappearing_link((void **)((char *)&outside + 1), holder), GC_UNIMPLEMENTED);
}
