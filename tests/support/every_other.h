/* Test support: a future that polls an inner one every other turn, as
 * inside a select whose other branch keeps the task busy. On even polls
 * it polls the inner future, on odd ones it only wakes itself; its output
 * is the inner future's. A sweep that drops it after an odd poll finds the
 * inner future served by its primitive but unseen (SERVED): the hand-on
 * path of a waiter's drop, reached with chaos off. It owns the inner
 * future (drops it). Each test program includes it once. */
#ifndef WEFT_TESTS_EVERY_OTHER_H
#define WEFT_TESTS_EVERY_OTHER_H

#include "weft/weft.h"
#include "weft/testing.h"

typedef struct every_other {
    weft_future base;
    weft_future *inner;
    unsigned polls;
} every_other;

static weft_poll every_other_poll(weft_future *f, weft_cx *cx, void *out)
{
    every_other *eo = (every_other *)f;
    if (eo->polls++ % 2 == 0 && weft_future_poll(eo->inner, cx, out) == WEFT_READY)
        return WEFT_READY;
    weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static void every_other_drop(weft_future *f)
{
    weft_future_drop(((every_other *)f)->inner);
}

static size_t every_other_out_size(const weft_future *f)
{
    return weft_future_out_size(((const every_other *)f)->inner);
}

static const weft_future_ops every_other_ops = { "every_other", WEFT_OUT_SIZE_VARIES,
                                                 every_other_poll, every_other_drop,
                                                 every_other_out_size };

static inline void every_other_init(every_other *eo, weft_future *inner)
{
    weft_future_init(&eo->base, &every_other_ops, WEFT_F_SEND);
    eo->inner = inner;
    eo->polls = 0;
}

/* A sweep case whose future is `inner`'s, polled every other turn: build
 * wraps it, check and teardown are inner's. Keep it where the sweep can
 * see it for the whole sweep (static storage). */
typedef struct every_other_sweep {
    const weft_sweep_case *inner;
    every_other eo;
} every_other_sweep;

static int every_other_sweep_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    every_other_sweep *es = ctx;
    weft_future *inner = NULL;
    int err = es->inner->build(rt, es->inner->ctx, &inner, out);
    every_other_init(&es->eo, inner);
    *fut = &es->eo.base;
    return err;
}

static const char *every_other_sweep_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    every_other_sweep *es = ctx;
    return es->inner->check ? es->inner->check(rt, es->inner->ctx, run) : NULL;
}

static void every_other_sweep_teardown(void *ctx)
{
    every_other_sweep *es = ctx;
    if (es->inner->teardown)
        es->inner->teardown(es->inner->ctx);
}

/* The wrapped case of `inner`, with `es` as its context. */
static inline weft_sweep_case every_other_sweep_case(every_other_sweep *es,
                                                     const weft_sweep_case *inner)
{
    es->inner = inner;
    weft_sweep_case c = { every_other_sweep_build, every_other_sweep_check,
                          every_other_sweep_teardown, es };
    return c;
}

#endif
