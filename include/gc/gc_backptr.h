/* gc/gc_backptr.h: the same header as gc_backptr.h (libgc programs include either). */
#include "../gc_backptr.h"
