/* gc/gc_config_macros.h: the same header as gc_config_macros.h (libgc programs include either). */
#include "../gc_config_macros.h"
