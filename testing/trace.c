/* The trace hash's name digest (see trace.h). */
#include "testing/trace.h"

uint64_t weft__trace_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}
