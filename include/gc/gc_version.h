/* gc/gc_version.h: the same header as gc_version.h (libgc programs include either). */
#include "../gc_version.h"
