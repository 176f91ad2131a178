/* gc/gc_pthread_redirects.h: the same header as gc_pthread_redirects.h (libgc programs include either). */
#include "../gc_pthread_redirects.h"
