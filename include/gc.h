/* gc.h: the Boehm-Demers-Weiser collector's API (libgc 8.2), for gcpin.
 *
 * Written for gcpin (not libgc's header): the names, types, return codes and
 * macros of libgc's API, so that a program written for libgc builds unchanged:
 *
 *     cc prog.c $(pkg-config --cflags --libs gcpin)
 *
 * It is one heap with gcpin's own API: a program may also include gcpin.h and,
 * for example, pin GC_MALLOC memory with pinner_pin. The same symbols are in
 * target/release/libgc.so.1, which lets a binary linked against libgc run on
 * gcpin unchanged (LD_LIBRARY_PATH). Where gcpin differs from libgc, the
 * README's "Coming from libgc" table says how; the comments below say it in
 * short.
 *
 * Memory from every allocation function is zeroed (libgc zeroes only the
 * pointer-containing kinds) and 16-byte aligned. Interior pointers are always
 * recognized. Bad pointers passed to GC_free, GC_realloc and GC_size never
 * corrupt the heap: they get a warning through the warn proc and are ignored.
 */
#ifndef GCPIN_GC_H
#define GCPIN_GC_H

#include <stddef.h>

#include "gc_version.h"
#include "gc_config_macros.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ types */

typedef unsigned long GC_word;     /* unsigned, the size of a pointer */
typedef long GC_signed_word;

/* Status codes of the functions that return an int status. */
#define GC_SUCCESS 0
#define GC_DUPLICATE 1     /* already registered                         */
#define GC_NO_THREADS 2    /* (not returned by gcpin: threads always work) */
#define GC_NO_MEMORY 2     /* out of memory                              */
#define GC_UNIMPLEMENTED 3 /* not supported, or an argument gcpin refuses */
#define GC_NOT_FOUND 4     /* the link is not registered                 */

typedef void (GC_CALLBACK *GC_finalization_proc)(void *obj, void *client_data);
typedef void (GC_CALLBACK *GC_warn_proc)(char *msg, GC_word arg);
typedef void *(GC_CALLBACK *GC_oom_func)(size_t bytes_requested);
typedef int (GC_CALLBACK *GC_stop_func)(void);
typedef void (GC_CALLBACK *GC_start_callback_proc)(void);
typedef void (GC_CALLBACK *GC_finalizer_notifier_proc)(void);
typedef void *(GC_CALLBACK *GC_fn_type)(void *client_data);

/* The hot end of a thread's stack (its highest address on Linux). */
struct GC_stack_base {
    void *mem_base;
};
typedef void *(GC_CALLBACK *GC_stack_base_func)(struct GC_stack_base *sb, void *arg);

/* Heap figures, as GC_get_prof_stats fills them. A figure gcpin does not keep
 * is (GC_word)-1, libgc's "unknown". */
struct GC_prof_stats_s {
    GC_word heapsize_full;             /* held from the OS, plus given back  */
    GC_word free_bytes_full;           /* free in held pages, plus given back */
    GC_word unmapped_bytes;            /* pages given back to the OS         */
    GC_word bytes_allocd_since_gc;
    GC_word allocd_bytes_before_gc;
    GC_word non_gc_bytes;              /* in uncollectable objects           */
    GC_word gc_no;                     /* completed collections              */
    GC_word markers_m1;                /* marker threads besides the first: 0 */
    GC_word bytes_reclaimed_since_gc;  /* (GC_word)-1: not kept              */
    GC_word reclaimed_bytes_before_gc; /* (GC_word)-1: not kept              */
    GC_word expl_freed_bytes_since_gc; /* freed with GC_free since the last  */
    GC_word obtained_from_os_bytes;
};

/* ------------------------------------------------------------- allocation */

/* Scanned memory (may hold pointers), zeroed. Size 0 gives a distinct object,
 * as in libgc. On failure the OOM function's result is returned (NULL by
 * default). */
GC_API void *GC_malloc(size_t bytes) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
/* Memory never scanned for pointers (strings, numbers, I/O buffers). */
GC_API void *GC_malloc_atomic(size_t bytes) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
/* Never collected; scanned; freed only by GC_free. */
GC_API void *GC_malloc_uncollectable(size_t bytes) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_malloc_atomic_uncollectable(size_t bytes) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
/* The "ignore off page" hint changes nothing: all interior pointers count. */
GC_API void *GC_malloc_ignore_off_page(size_t bytes) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_malloc_atomic_ignore_off_page(size_t bytes) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
/* Deprecated in libgc: an ordinary GC_malloc. */
GC_API void *GC_malloc_stubborn(size_t bytes) GC_ATTR_DEPRECATED;
/* NULL -> GC_malloc; size 0 -> GC_free and NULL; otherwise the object resized
 * (in place when the new size is within it and at least half of it), of the
 * same kind, contents kept up to the smaller size. */
GC_API void *GC_realloc(void *p, size_t bytes) GC_ATTR_ALLOC_SIZE(2);
/* Frees an object now (its slot is reused). NULL is ignored; a pointer that
 * is not an object's start is ignored with a warning; a pinned object stays
 * until it is unpinned, and is then collected. */
GC_API void GC_free(void *p);
GC_API char *GC_strdup(const char *s) GC_ATTR_MALLOC;
GC_API char *GC_strndup(const char *s, size_t n) GC_ATTR_MALLOC;
/* Aligned memory. Up to a page (8 KiB) the result is an object's start; beyond,
 * it is inside a larger object, and GC_free refuses it. */
GC_API void *GC_memalign(size_t align, size_t bytes) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(2);
GC_API int GC_posix_memalign(void **out, size_t align, size_t bytes) GC_ATTR_NONNULL(1);
/* About a page's worth of objects of `bytes` bytes, linked through their
 * first word; GC_NEXT reads the link. */
GC_API void *GC_malloc_many(size_t bytes);
#define GC_NEXT(p) (*(void **)(p))

/* The start of the object p points into, or NULL outside the heap. */
GC_API void *GC_base(void *p);
/* Whether p points into the heap (an object or a free slot). */
GC_API int GC_is_heap_ptr(const void *p);
/* The size of the object starting at p (its size class); 0 otherwise. */
GC_API size_t GC_size(const void *p);
/* Checks that p and q are in one object (a warning if not); returns p. */
GC_API void *GC_same_obj(void *p, void *q);
GC_API void *GC_is_visible(void *p);             /* returns p */
GC_API void *GC_is_valid_displacement(void *p);  /* returns p */
GC_API void GC_register_displacement(size_t offset); /* no-op */

/* ------------------------------------------------------ collection, state */

GC_API void GC_init(void);
GC_API int GC_is_init_called(void);
/* A full collection, unless collection is disabled. */
GC_API void GC_gcollect(void);
GC_API void GC_gcollect_and_unmap(void);
/* 0 if stop() (asked once, before the collection) says stop or collection is
 * disabled; otherwise collects and returns 1. */
GC_API int GC_try_to_collect(GC_stop_func stop);
/* Collects if an allocation asked for it; returns 0 (nothing left to do). */
GC_API int GC_collect_a_little(void);
/* GC_disable/GC_enable nest; while disabled, no collection runs at all. */
GC_API void GC_disable(void);
GC_API void GC_enable(void);
GC_API int GC_is_disabled(void);
GC_API GC_word GC_get_gc_no(void);

GC_API size_t GC_get_heap_size(void);     /* pages held from the OS */
GC_API size_t GC_get_free_bytes(void);    /* free in those pages    */
GC_API size_t GC_get_unmapped_bytes(void);
GC_API size_t GC_get_total_bytes(void);
GC_API size_t GC_get_bytes_since_gc(void);
GC_API size_t GC_get_expl_freed_bytes_since_gc(void);
GC_API size_t GC_get_non_gc_bytes(void);
/* Each out-parameter may be NULL. */
GC_API void GC_get_heap_usage_safe(GC_word *heap_size, GC_word *free_bytes, GC_word *unmapped_bytes,
                                   GC_word *bytes_since_gc, GC_word *total_bytes);
/* Fills up to `size` bytes of *stats; returns the bytes filled. */
GC_API size_t GC_get_prof_stats(struct GC_prof_stats_s *stats, size_t size);
/* A heap limit in bytes, 0 for none (the smaller of it and GCPIN_MAX_HEAP
 * applies). */
GC_API void GC_set_max_heap_size(GC_word bytes);
/* 1 if `bytes` more fit under the limit (gcpin's arena is reserved at start). */
GC_API int GC_expand_hp(size_t bytes);
/* Kept and reported back; gcpin paces by GCPIN_GC_PERCENT. */
GC_API void GC_set_free_space_divisor(GC_word divisor);
GC_API GC_word GC_get_free_space_divisor(void);
GC_API GC_word GC_get_version(void);
GC_API int GC_get_parallel(void);                    /* 0: one marker    */
GC_API void GC_set_all_interior_pointers(int value); /* no-op: always on */
GC_API int GC_get_all_interior_pointers(void);       /* 1                */
GC_API void GC_set_warn_proc(GC_warn_proc proc);
GC_API GC_warn_proc GC_get_warn_proc(void);
GC_API void GC_CALLBACK GC_ignore_warn_proc(char *msg, GC_word arg);
GC_API void GC_CALLBACK GC_default_warn_proc(char *msg, GC_word arg);
/* Called with the size when an allocation fails; its result is returned. */
GC_API void GC_set_oom_fn(GC_oom_func fn);
GC_API GC_oom_func GC_get_oom_fn(void);
/* Leak-finding mode is not supported: a nonzero value gets a warning. */
GC_API void GC_set_find_leak(int value);
GC_API int GC_get_find_leak(void); /* 0 */
/* Runs at the start of each collection; it must not allocate. */
GC_API void GC_set_start_callback(GC_start_callback_proc fn);
GC_API GC_start_callback_proc GC_get_start_callback(void);
GC_API void GC_noop1(GC_word x);
/* Accepted: gcpin collects in its own way. */
GC_API void GC_enable_incremental(void);
GC_API int GC_is_incremental_mode(void); /* 0 */
GC_API void GC_set_manual_vdb_allowed(int value);
GC_API int GC_get_manual_vdb_allowed(void);
GC_API void GC_start_mark_threads(void); /* no-op */
/* A summary of the heap on stderr. */
GC_API void GC_dump(void);

/* No write barrier is needed: these store, or do nothing. */
GC_API void GC_ptr_store_and_dirty(void *p, const void *q);
GC_API void GC_end_stubborn_change(const void *p);
GC_API void GC_change_stubborn(const void *p) GC_ATTR_DEPRECATED;

/* ----------------------------------------------------------------- roots */

/* Scans [low, high_plus1) as a root range. */
GC_API void GC_add_roots(void *low, void *high_plus1);
/* Removes [low, high_plus1) from the added ranges: any part of one. */
GC_API void GC_remove_roots(void *low, void *high_plus1);
/* Removes every added range (data segments stay roots). */
GC_API void GC_clear_roots(void);
/* No-op: gcpin scans data segments whole. */
GC_API void GC_exclude_static_roots(void *low, void *high_plus1);

/* ---------------------------------------------------------- finalization */

/* Registers fn(obj, cd) to run once obj is unreachable (fn NULL: clears), and
 * reports the old finalizer through *ofn and *ocd (either may be NULL). An
 * object reachable from another finalizable object is finalized after it,
 * for every variant below; a pointer from an object to itself keeps it from
 * being finalized, for every variant (see the README). */
GC_API void GC_register_finalizer(void *obj, GC_finalization_proc fn, void *cd, GC_finalization_proc *ofn,
                                  void **ocd);
GC_API void GC_register_finalizer_ignore_self(void *obj, GC_finalization_proc fn, void *cd,
                                              GC_finalization_proc *ofn, void **ocd);
GC_API void GC_register_finalizer_no_order(void *obj, GC_finalization_proc fn, void *cd,
                                           GC_finalization_proc *ofn, void **ocd);
GC_API void GC_register_finalizer_unreachable(void *obj, GC_finalization_proc fn, void *cd,
                                              GC_finalization_proc *ofn, void **ocd);
/* Runs the queued finalizers here; returns how many ran. */
GC_API int GC_invoke_finalizers(void);
GC_API int GC_should_invoke_finalizers(void);
/* Nonzero: finalizers run only in GC_invoke_finalizers. */
GC_API void GC_set_finalize_on_demand(int value);
GC_API int GC_get_finalize_on_demand(void);
/* Called after each collection that queued finalizers. */
GC_API void GC_set_finalizer_notifier(GC_finalizer_notifier_proc fn);
GC_API GC_finalizer_notifier_proc GC_get_finalizer_notifier(void);
GC_API void GC_set_java_finalization(int value); /* kept, reported back */
GC_API int GC_get_java_finalization(void);

/* --------------------------------------------------- disappearing links */

/* *link is set to NULL when obj becomes unreachable (before its finalizer, if
 * any, runs). link must be non-NULL and aligned, and should not keep obj
 * alive itself (store GC_HIDE_POINTER(obj) in it, or keep it in atomic
 * memory). GC_SUCCESS, GC_DUPLICATE, GC_NO_MEMORY; GC_UNIMPLEMENTED (and a
 * warning) for a bad link or a free heap slot. */
GC_API int GC_general_register_disappearing_link(void **link, const void *obj) GC_ATTR_NONNULL(1);
/* The older form: link is cleared when the object containing it dies. */
GC_API int GC_register_disappearing_link(void **link) GC_ATTR_NONNULL(1);
/* GC_SUCCESS, GC_DUPLICATE (new_link registered), GC_NOT_FOUND. */
GC_API int GC_move_disappearing_link(void **link, void **new_link) GC_ATTR_NONNULL(2);
/* 1 if link was registered, else 0. */
GC_API int GC_unregister_disappearing_link(void **link);
/* Long links are cleared only when obj is freed (after its finalizer). */
GC_API int GC_register_long_link(void **link, const void *obj) GC_ATTR_NONNULL(1);
GC_API int GC_move_long_link(void **link, void **new_link) GC_ATTR_NONNULL(2);
GC_API int GC_unregister_long_link(void **link);

/* --------------------------------------------------------------- threads */

/* GC_SUCCESS, or GC_DUPLICATE if the thread was registered (gcpin registers
 * a thread on its first call anyway); sb is not used. */
GC_API int GC_register_my_thread(const struct GC_stack_base *sb);
GC_API int GC_unregister_my_thread(void);
GC_API int GC_thread_is_registered(void);
GC_API void GC_allow_register_threads(void); /* no-op: always allowed */
/* GC_SUCCESS, or GC_UNIMPLEMENTED if the system cannot tell. */
GC_API int GC_get_stack_base(struct GC_stack_base *sb);
GC_API void *GC_call_with_stack_base(GC_stack_base_func fn, void *arg);
/* Call fn(arg): gcpin stops threads by signal, blocked or not. */
GC_API void *GC_do_blocking(GC_fn_type fn, void *client_data);
GC_API void *GC_call_with_gc_active(GC_fn_type fn, void *client_data);
/* fn(arg) with no collection meanwhile, one caller at a time. */
GC_API void *GC_call_with_alloc_lock(GC_fn_type fn, void *client_data);
GC_API int GC_get_suspend_signal(void);
GC_API int GC_get_thr_restart_signal(void); /* -1: none is used */
GC_API void GC_set_suspend_signal(int sig);       /* no-op: GCPIN_SIG_SUSPEND */
GC_API void GC_set_thr_restart_signal(int sig);   /* no-op */

/* ------------------------------------------------------ GC_debug_* API */

/* The debugging versions take the caller's file and line (GC_EXTRAS) and
 * behave as the plain ones. */
GC_API void *GC_debug_malloc(size_t bytes, GC_EXTRA_PARAMS) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_debug_malloc_atomic(size_t bytes, GC_EXTRA_PARAMS) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_debug_malloc_uncollectable(size_t bytes, GC_EXTRA_PARAMS) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_debug_malloc_atomic_uncollectable(size_t bytes, GC_EXTRA_PARAMS) GC_ATTR_MALLOC
    GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_debug_malloc_ignore_off_page(size_t bytes, GC_EXTRA_PARAMS) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_debug_malloc_atomic_ignore_off_page(size_t bytes, GC_EXTRA_PARAMS) GC_ATTR_MALLOC
    GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_debug_malloc_stubborn(size_t bytes, GC_EXTRA_PARAMS) GC_ATTR_DEPRECATED;
GC_API void *GC_debug_malloc_replacement(size_t bytes) GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1);
GC_API void *GC_debug_realloc(void *p, size_t bytes, GC_EXTRA_PARAMS) GC_ATTR_ALLOC_SIZE(2);
GC_API void *GC_debug_realloc_replacement(void *p, size_t bytes) GC_ATTR_ALLOC_SIZE(2);
GC_API void GC_debug_free(void *p);
GC_API char *GC_debug_strdup(const char *s, GC_EXTRA_PARAMS) GC_ATTR_MALLOC;
GC_API char *GC_debug_strndup(const char *s, size_t n, GC_EXTRA_PARAMS) GC_ATTR_MALLOC;
GC_API void GC_debug_register_finalizer(void *obj, GC_finalization_proc fn, void *cd, GC_finalization_proc *ofn,
                                        void **ocd);
GC_API void GC_debug_register_finalizer_ignore_self(void *obj, GC_finalization_proc fn, void *cd,
                                                    GC_finalization_proc *ofn, void **ocd);
GC_API void GC_debug_register_finalizer_no_order(void *obj, GC_finalization_proc fn, void *cd,
                                                 GC_finalization_proc *ofn, void **ocd);
GC_API void GC_debug_register_finalizer_unreachable(void *obj, GC_finalization_proc fn, void *cd,
                                                    GC_finalization_proc *ofn, void **ocd);
GC_API void GC_debug_end_stubborn_change(const void *p);
GC_API void GC_debug_change_stubborn(const void *p) GC_ATTR_DEPRECATED;
GC_API void GC_debug_ptr_store_and_dirty(void *p, const void *q);
GC_API void GC_debug_register_displacement(size_t offset);

/* ---------------------------------------------------------------- macros */

#ifdef GC_DEBUG
#define GC_MALLOC(sz) GC_debug_malloc(sz, GC_EXTRAS)
#define GC_MALLOC_ATOMIC(sz) GC_debug_malloc_atomic(sz, GC_EXTRAS)
#define GC_STRDUP(s) GC_debug_strdup(s, GC_EXTRAS)
#define GC_STRNDUP(s, n) GC_debug_strndup(s, n, GC_EXTRAS)
#define GC_MALLOC_UNCOLLECTABLE(sz) GC_debug_malloc_uncollectable(sz, GC_EXTRAS)
#define GC_MALLOC_ATOMIC_UNCOLLECTABLE(sz) GC_debug_malloc_atomic_uncollectable(sz, GC_EXTRAS)
#define GC_MALLOC_IGNORE_OFF_PAGE(sz) GC_debug_malloc_ignore_off_page(sz, GC_EXTRAS)
#define GC_MALLOC_ATOMIC_IGNORE_OFF_PAGE(sz) GC_debug_malloc_atomic_ignore_off_page(sz, GC_EXTRAS)
#define GC_REALLOC(p, sz) GC_debug_realloc(p, sz, GC_EXTRAS)
#define GC_FREE(p) GC_debug_free(p)
#define GC_REGISTER_FINALIZER(p, f, d, of, od) GC_debug_register_finalizer(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_IGNORE_SELF(p, f, d, of, od) GC_debug_register_finalizer_ignore_self(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_NO_ORDER(p, f, d, of, od) GC_debug_register_finalizer_no_order(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_UNREACHABLE(p, f, d, of, od) GC_debug_register_finalizer_unreachable(p, f, d, of, od)
#define GC_END_STUBBORN_CHANGE(p) GC_debug_end_stubborn_change(p)
#define GC_PTR_STORE_AND_DIRTY(p, q) GC_debug_ptr_store_and_dirty(p, q)
#define GC_GENERAL_REGISTER_DISAPPEARING_LINK(link, obj) \
    GC_general_register_disappearing_link(link, GC_base((void *)(obj)))
#define GC_REGISTER_LONG_LINK(link, obj) GC_register_long_link(link, GC_base((void *)(obj)))
#define GC_REGISTER_DISPLACEMENT(n) GC_debug_register_displacement(n)
#else
#define GC_MALLOC(sz) GC_malloc(sz)
#define GC_MALLOC_ATOMIC(sz) GC_malloc_atomic(sz)
#define GC_STRDUP(s) GC_strdup(s)
#define GC_STRNDUP(s, n) GC_strndup(s, n)
#define GC_MALLOC_UNCOLLECTABLE(sz) GC_malloc_uncollectable(sz)
#define GC_MALLOC_ATOMIC_UNCOLLECTABLE(sz) GC_malloc_atomic_uncollectable(sz)
#define GC_MALLOC_IGNORE_OFF_PAGE(sz) GC_malloc_ignore_off_page(sz)
#define GC_MALLOC_ATOMIC_IGNORE_OFF_PAGE(sz) GC_malloc_atomic_ignore_off_page(sz)
#define GC_REALLOC(p, sz) GC_realloc(p, sz)
#define GC_FREE(p) GC_free(p)
#define GC_REGISTER_FINALIZER(p, f, d, of, od) GC_register_finalizer(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_IGNORE_SELF(p, f, d, of, od) GC_register_finalizer_ignore_self(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_NO_ORDER(p, f, d, of, od) GC_register_finalizer_no_order(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_UNREACHABLE(p, f, d, of, od) GC_register_finalizer_unreachable(p, f, d, of, od)
#define GC_END_STUBBORN_CHANGE(p) GC_end_stubborn_change(p)
#define GC_PTR_STORE_AND_DIRTY(p, q) GC_ptr_store_and_dirty(p, q)
#define GC_GENERAL_REGISTER_DISAPPEARING_LINK(link, obj) GC_general_register_disappearing_link(link, obj)
#define GC_REGISTER_LONG_LINK(link, obj) GC_register_long_link(link, obj)
#define GC_REGISTER_DISPLACEMENT(n) GC_register_displacement(n)
#endif

#define GC_NEW(t) ((t *)GC_MALLOC(sizeof(t)))
#define GC_NEW_ATOMIC(t) ((t *)GC_MALLOC_ATOMIC(sizeof(t)))
#define GC_NEW_UNCOLLECTABLE(t) ((t *)GC_MALLOC_UNCOLLECTABLE(sizeof(t)))

/* A pointer the collector does not see, and back. */
typedef GC_word GC_hidden_pointer;
#define GC_HIDE_POINTER(p) (~(GC_hidden_pointer)(p))
#define GC_REVEAL_POINTER(p) ((void *)GC_HIDE_POINTER(p))

/* Keeps the value of ptr alive (in a register or on the stack) up to here. */
#if defined(__GNUC__) || defined(__clang__)
#define GC_reachable_here(ptr) __asm__ __volatile__(" " : : "X"(ptr) : "memory")
#else
#define GC_reachable_here(ptr) GC_noop1(~(GC_word)(ptr))
#endif

/* GC_INIT: libgc wants it in main before any allocation; gcpin initializes on
 * first use, so it only calls GC_init. */
#define GC_INIT() GC_init()

#ifdef __cplusplus
} /* extern "C" */
#endif

#include "gc_pthread_redirects.h"

#endif /* GCPIN_GC_H */
