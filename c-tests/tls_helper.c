/* tls_helper: a library the root tests load with dlopen. Its __thread slots
 * live in dynamic TLS blocks (glibc allocates them with malloc the first time a
 * thread touches them), and its .bss slot in a segment that exists only while
 * the library is loaded. Built with -fPIC -shared (general-dynamic TLS). */
#include <stddef.h>

#define TLS_HELPER_SLOTS 64

__thread void *tls_helper_slots[TLS_HELPER_SLOTS];
void *tls_helper_bss[TLS_HELPER_SLOTS];

void tls_helper_set(int i, void *p) { tls_helper_slots[i] = p; }
void *tls_helper_get(int i) { return tls_helper_slots[i]; }
void tls_helper_set_bss(int i, void *p) { tls_helper_bss[i] = p; }
