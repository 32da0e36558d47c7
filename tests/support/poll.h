/* Test support: polling a future by hand, once, with a fresh context (a
 * full coop budget) as an executor would for one turn. */
#ifndef WEFT_TESTS_POLL_H
#define WEFT_TESTS_POLL_H

#include "weft/future.h"

/* Polls `f` once with `w` as its waker. */
static inline weft_poll poll_with(weft_future *f, const weft_waker *w, void *out)
{
    weft_cx cx;
    weft_cx_init(&cx, w);
    return weft_future_poll(f, &cx, out);
}

/* Polls `f` once with the noop waker: nothing will wake it (the runtime
 * is shut down, or the test polls again by itself). */
static inline weft_poll poll_noop(weft_future *f, void *out)
{
    weft_waker noop = weft_waker_noop();
    return poll_with(f, &noop, out);
}

#endif
