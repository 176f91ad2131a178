/* gc/gc.h: the same header as gc.h (libgc programs include either). */
#include "../gc.h"
