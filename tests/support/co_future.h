/* Test support: coroutine futures (weft/co.h). A coroutine future's poll
 * opens with CO_FUTURE_BEGIN and closes with CO_FUTURE_END:
 *
 *   static weft_poll fetch_poll(weft_future *f, weft_cx *cx, void *out)
 *   {
 *       CO_FUTURE_BEGIN(fetch, s);    (s: the future as a fetch *)
 *       ...                           (WEFT_AWAIT(&s->co, ...), ...)
 *       CO_FUTURE_END(s);
 *   }
 *
 * Those that own nothing but the child they await share one drop: their
 * struct starts with `weft_future base; weft_co co;`, their poll is
 * type##_poll, and CO_FUTURE_OPS(type, "name", out_size); after the poll
 * defines their ops table, type##_ops. */
#ifndef WEFT_TESTS_CO_FUTURE_H
#define WEFT_TESTS_CO_FUTURE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weft/co.h"
#include "weft/rt.h"
#include "support/downcast.h"

/* Declares `self`, the future `f` of the poll as a `type *`, and starts
 * (or resumes) its coroutine `self->co`. */
#define CO_FUTURE_BEGIN(type, self)                                           \
    DOWNCAST(type, self);                                                     \
    WEFT_CO_BEGIN(&(self)->co)

/* Finishes the coroutine (READY; the output, if any, is written) and
 * closes it. */
#define CO_FUTURE_END(self)                                                   \
    WEFT_CO_RETURN(&(self)->co);                                              \
    WEFT_CO_END(&(self)->co)

typedef struct co_future {
    weft_future base;
    weft_co co;
} co_future;

/* Drops the child the coroutine is suspended on, if any. */
static inline void co_future_drop(weft_future *f)
{
    weft_co_drop(&((co_future *)f)->co);
}

/* Zeroes the coroutine future `f` (`size` bytes: its struct starts with
 * `weft_future base; weft_co co;`) and starts it with `ops` and `flags`
 * (WEFT_F_SEND or 0), its coroutine at the beginning. Set the rest of its
 * fields after. */
static inline void co_future_init(void *f, size_t size, const weft_future_ops *ops,
                                  uint32_t flags)
{
    memset(f, 0, size);
    co_future *c = f;
    weft_future_init(&c->base, ops, flags);
    weft_co_init(&c->co);
}

/* The drop of a coroutine that awaits joins[0 .. n) in order, `next`
 * being the one it awaits (or will await next): drops the awaited handle
 * through the coroutine and the handles it has not reached. */
static inline void co_future_drop_joins(weft_co *co, weft_join *joins, int next, int n)
{
    if (co->awaiting) {
        weft_co_drop(co);
        next++;
    }
    for (int i = next; i < n; i++)
        weft_future_drop(&joins[i].base);
}

#define CO_FUTURE_OPS(type, name, out_size)                                   \
    static_assert(offsetof(type, co) == offsetof(co_future, co),            \
                  #type " starts with weft_future base; weft_co co;");      \
    static const weft_future_ops type##_ops = { name, (out_size), type##_poll, co_future_drop, \
                                                NULL }

#endif
