/* Test support: cache-line aligned, zeroed memory for structures that
 * carry cache-line alignment (queues, the idle set, a timer driver). Each
 * test program includes it once. */
#ifndef WEFT_TESTS_ALIGNED_H
#define WEFT_TESTS_ALIGNED_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/atomic.h"

/* `size` zeroed bytes aligned to a cache line (aligned_alloc wants a size
 * that is a multiple of the alignment); free() them. */
static inline void *aligned_zalloc(size_t size)
{
    size = (size + WEFT_CACHE_LINE - 1) & ~(size_t)(WEFT_CACHE_LINE - 1);
    void *p = aligned_alloc(WEFT_CACHE_LINE, size);
    assert_non_null(p);
    memset(p, 0, size);
    return p;
}

#endif
