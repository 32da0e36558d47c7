/* Private: allocation through the pluggable allocator, and misuse reports. */
#ifndef WEFT_SCHED_ALLOC_H
#define WEFT_SCHED_ALLOC_H

#include <stddef.h>

void *weft__alloc(size_t size);
void *weft__calloc(size_t size);
void weft__free(void *p);

/* Report API misuse (debug builds; no-op with NDEBUG). printf-style. */
#ifndef NDEBUG
__attribute__((format(printf, 1, 2))) void weft__misuse(const char *fmt, ...);
#define WEFT_MISUSE(...) weft__misuse(__VA_ARGS__)
#else
#define WEFT_MISUSE(...) ((void)0)
#endif

#endif
