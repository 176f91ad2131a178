/* gc_version.h: the libgc API level gcpin's gc.h provides.
 *
 * Written for gcpin. gcpin follows libgc 8.2's API; GC_get_version() returns
 * the same number, packed as libgc packs it:
 * (GC_VERSION_MAJOR << 16) | (GC_VERSION_MINOR << 8) | GC_VERSION_MICRO.
 * GCPIN_LIBGC_COMPAT tells a program it is built against gcpin.
 */
#ifndef GCPIN_GC_VERSION_H
#define GCPIN_GC_VERSION_H

#define GC_VERSION_MAJOR 8
#define GC_VERSION_MINOR 2
#define GC_VERSION_MICRO 0

#define GCPIN_LIBGC_COMPAT 1

#endif /* GCPIN_GC_VERSION_H */
