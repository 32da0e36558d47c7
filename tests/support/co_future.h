/* Test support: coroutine futures (weft/co.h) that own nothing but the
 * child they await, and so share one drop. Such a future's struct starts
 * with `weft_future base; weft_co co;`; its poll is type##_poll, and
 *
 *   CO_FUTURE_OPS(type, "name", out_size);
 *
 * after the poll defines its ops table, type##_ops. */
#ifndef WEFT_TESTS_CO_FUTURE_H
#define WEFT_TESTS_CO_FUTURE_H

#include <assert.h>
#include <stddef.h>

#include "weft/co.h"

typedef struct co_future {
    weft_future base;
    weft_co co;
} co_future;

/* Drops the child the coroutine is suspended on, if any. */
static inline void co_future_drop(weft_future *f)
{
    weft_co_drop(&((co_future *)f)->co);
}

#define CO_FUTURE_OPS(type, name, out_size)                                   \
    static_assert(offsetof(type, co) == offsetof(co_future, co),            \
                  #type " starts with weft_future base; weft_co co;");      \
    static const weft_future_ops type##_ops = { name, (out_size), type##_poll, co_future_drop, \
                                                NULL }

#endif
