/* gc_backptr.h: libgc's back-pointer debugging API, as gcpin provides it.
 *
 * Written for gcpin. libgc answers these only when built with KEEP_BACK_PTRS;
 * gcpin keeps no back pointers, so GC_get_back_ptr_info always answers
 * GC_NO_SPACE (libgc's "no back-pointer information" result) and
 * GC_generate_random_backtrace prints one line saying so. GC_print_backtrace
 * prints what gcpin knows of the object: its base and size.
 */
#ifndef GCPIN_GC_BACKPTR_H
#define GCPIN_GC_BACKPTR_H

#include "gc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GC_UNREFERENCED,    /* no reference to the object was found          */
    GC_NO_SPACE,        /* no back-pointer information is kept           */
    GC_REFD_FROM_ROOT,  /* referenced from a root (*base_p is the root)  */
    GC_REFD_FROM_REG,   /* referenced from a register                    */
    GC_REFD_FROM_HEAP,  /* referenced from another heap object           */
    GC_FINALIZER_REFD   /* kept alive by a finalizer                     */
} GC_ref_kind;

/* What keeps `dest` alive. Sets *base_p and *offset_p (each may be NULL) to
 * NULL and 0, and returns GC_NO_SPACE: gcpin keeps no back pointers. */
GC_API GC_ref_kind GC_get_back_ptr_info(void *dest, void **base_p, size_t *offset_p);

/* Prints, on stderr, that gcpin keeps no back pointers. */
GC_API void GC_generate_random_backtrace(void);

/* Prints the base address and size of the object containing p on stderr. */
GC_API void GC_print_backtrace(void *p);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GCPIN_GC_BACKPTR_H */
