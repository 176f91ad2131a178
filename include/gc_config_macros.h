/* gc_config_macros.h: configuration macros of gcpin's libgc-compatible API.
 *
 * Written for gcpin. Included by gc.h; a program may include it on its own.
 * It defines the attribute and calling-convention macros that libgc's API uses
 * (GC_API, GC_CALL, GC_CALLBACK, GC_ATTR_*) and, when the program asks for
 * threads (GC_THREADS or its older spelling GC_PTHREADS, or _REENTRANT), the
 * GC_PTHREADS flag that turns on the pthread redirects in
 * gc_pthread_redirects.h. gcpin is always thread-safe: the flag only controls
 * the redirects.
 */
#ifndef GCPIN_GC_CONFIG_MACROS_H
#define GCPIN_GC_CONFIG_MACROS_H

#if defined(__GNUC__) && defined(__GNUC_MINOR__)
#define GC_GNUC_PREREQ(major, minor) \
    ((__GNUC__ << 8) + __GNUC_MINOR__ >= ((major) << 8) + (minor))
#else
#define GC_GNUC_PREREQ(major, minor) 0
#endif

#if defined(__clang__) && defined(__clang_major__)
#define GC_CLANG_PREREQ(major, minor) \
    ((__clang_major__ << 8) + __clang_minor__ >= ((major) << 8) + (minor))
#else
#define GC_CLANG_PREREQ(major, minor) 0
#endif

/* Threads: any of these names asks for the pthread redirects. */
#if (defined(GC_THREADS) || defined(GC_LINUX_THREADS) || defined(_REENTRANT)) && !defined(GC_PTHREADS)
#define GC_PTHREADS 1
#endif
#if defined(GC_PTHREADS) && !defined(GC_THREADS)
#define GC_THREADS 1
#endif
#if defined(GC_PTHREADS) && defined(__linux__) && !defined(GC_LINUX_THREADS)
#define GC_LINUX_THREADS 1
#endif

/* Every function is an ordinary exported C function. */
#ifndef GC_API
#define GC_API extern
#endif
#ifndef GC_CALL
#define GC_CALL
#endif
#ifndef GC_CALLBACK
#define GC_CALLBACK GC_CALL
#endif

#if GC_GNUC_PREREQ(3, 1) || defined(__clang__)
#define GC_ATTR_MALLOC __attribute__((__malloc__))
#else
#define GC_ATTR_MALLOC
#endif

#if GC_GNUC_PREREQ(4, 3) || GC_CLANG_PREREQ(3, 4)
#define GC_ATTR_ALLOC_SIZE(argnum) __attribute__((__alloc_size__(argnum)))
#else
#define GC_ATTR_ALLOC_SIZE(argnum)
#endif

#if GC_GNUC_PREREQ(4, 0) || defined(__clang__)
#define GC_ATTR_NONNULL(argnum) __attribute__((__nonnull__(argnum)))
#define GC_ATTR_CONST __attribute__((__const__))
#define GC_ATTR_DEPRECATED __attribute__((__deprecated__))
#define GC_ATTR_NORETURN __attribute__((__noreturn__))
#else
#define GC_ATTR_NONNULL(argnum)
#define GC_ATTR_CONST
#define GC_ATTR_DEPRECATED
#define GC_ATTR_NORETURN
#endif

#ifndef GC_ATTR_NO_SANITIZE_ADDR
#define GC_ATTR_NO_SANITIZE_ADDR
#endif
#ifndef GC_ATTR_NO_SANITIZE_MEMORY
#define GC_ATTR_NO_SANITIZE_MEMORY
#endif
#ifndef GC_ATTR_NO_SANITIZE_THREAD
#define GC_ATTR_NO_SANITIZE_THREAD
#endif
#ifndef GC_ATTR_UNUSED
#if GC_GNUC_PREREQ(3, 4) || defined(__clang__)
#define GC_ATTR_UNUSED __attribute__((__unused__))
#else
#define GC_ATTR_UNUSED
#endif
#endif

/* The GC_DEBUG allocation macros pass the file and line (GC_EXTRAS) to the
 * GC_debug_* functions, as libgc does on glibc. */
#define GC_EXTRAS __FILE__, __LINE__
#define GC_EXTRA_PARAMS const char *gc_file, int gc_line

#endif /* GCPIN_GC_CONFIG_MACROS_H */
