/* gc_pthread_redirects.h: thread functions of gcpin's libgc-compatible API.
 *
 * Written for gcpin. Included by gc.h when the program defines GC_THREADS (see
 * gc_config_macros.h). Declares GC_pthread_create and its relatives and, unless
 * GC_NO_THREAD_REDIRECTS is defined, redirects pthread_create, pthread_join,
 * pthread_detach, pthread_exit, pthread_cancel, pthread_sigmask and dlopen to
 * them, as libgc's header does. With gcpin the redirects are not required (a
 * thread registers itself on its first gcpin call and is stopped by a signal
 * wherever it is); GC_pthread_create also keeps the start routine's argument
 * alive until the new thread runs, and GC_pthread_sigmask never blocks the
 * signal gcpin stops threads with.
 */
#ifndef GCPIN_GC_PTHREAD_REDIRECTS_H
#define GCPIN_GC_PTHREAD_REDIRECTS_H

#include "gc_config_macros.h"

#if defined(GC_PTHREADS) && !defined(GC_NO_THREAD_DECLS)

#include <pthread.h>
#include <signal.h>
#include <dlfcn.h>

#ifdef __cplusplus
extern "C" {
#endif

GC_API int GC_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                             void *(*start_routine)(void *), void *arg);
GC_API int GC_pthread_join(pthread_t thread, void **retval);
GC_API int GC_pthread_detach(pthread_t thread);
GC_API int GC_pthread_cancel(pthread_t thread);
GC_API void GC_pthread_exit(void *retval) GC_ATTR_NORETURN;
GC_API int GC_pthread_sigmask(int how, const sigset_t *set, sigset_t *oldset);
GC_API void *GC_dlopen(const char *path, int mode);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GC_PTHREADS && !GC_NO_THREAD_DECLS */

#if defined(GC_PTHREADS) && !defined(GC_NO_THREAD_REDIRECTS) && !defined(GCPIN_BUILDING)
#undef pthread_create
#undef pthread_join
#undef pthread_detach
#undef pthread_cancel
#undef pthread_exit
#undef pthread_sigmask
#undef dlopen
#define pthread_create GC_pthread_create
#define pthread_join GC_pthread_join
#define pthread_detach GC_pthread_detach
#define pthread_cancel GC_pthread_cancel
#define pthread_exit GC_pthread_exit
#define pthread_sigmask GC_pthread_sigmask
#define dlopen GC_dlopen
#endif

#endif /* GCPIN_GC_PTHREAD_REDIRECTS_H */
