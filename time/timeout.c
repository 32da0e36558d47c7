/* weft_timeout: run an inner future with a deadline. The inner future is
 * polled first, then the sleep; whichever finishes first decides, and the
 * inner future is dropped exactly once either way. */
#include "weft/time.h"
#include "time/clock.h"

#include <string.h>

static weft_poll timeout_poll(weft_future *f, weft_cx *cx, void *out);
static void timeout_drop(weft_future *f);
static weft_future *timeout_inner(const weft_timeout *t)
{
    return (weft_future *)((char *)t + t->inner_off_);
}

static size_t timeout_out_size(const weft_future *f)
{
    return weft_future_out_size(timeout_inner((const weft_timeout *)f));
}

static const weft_future_ops timeout_ops = {
    .name = "weft_timeout",
    .out_size = WEFT_OUT_SIZE_VARIES,
    .poll = timeout_poll,
    .drop = timeout_drop,
    .out_size_of = timeout_out_size,
};

int weft_timeout_at_init(weft_timeout *t, weft_future *inner, weft_instant deadline)
{
    if (!t || !inner || !inner->ops || !inner->ops->poll)
        return -EINVAL;
    weft_future_init(&t->base, &timeout_ops, inner->flags & WEFT_F_SEND);
    t->inner_off_ = (char *)inner - (char *)t;
    t->status = 0;
    t->inner_done = false;
    weft_sleep_until_init(&t->sleep, deadline);
    return 0;
}

int weft_timeout_init(weft_timeout *t, weft_future *inner, weft_duration d)
{
    return weft_timeout_at_init(t, inner, weft__deadline_after(d));
}

/* Drop the inner future and the timer (once). */
static void timeout_finish(weft_timeout *t)
{
    if (!t->inner_done) {
        t->inner_done = true;
        weft_future_drop(timeout_inner(t));
    }
    weft_future_drop(&t->sleep.base);
}

static weft_poll timeout_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_timeout *t = (weft_timeout *)f;
    weft_future *inner = timeout_inner(t);
    size_t out_size = weft_future_out_size(inner);
    /* The inner future first: ready in the same tick as the deadline, it
     * wins. */
    if (weft_future_poll(inner, cx, out) == WEFT_READY) {
        t->status = 0;
        timeout_finish(t);
        return WEFT_READY;
    }
    if (weft_future_poll(&t->sleep.base, cx, NULL) == WEFT_READY) {
        t->status = -ETIMEDOUT;
        timeout_finish(t);
        if (out_size && out)
            memset(out, 0, out_size);
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void timeout_drop(weft_future *f)
{
    timeout_finish((weft_timeout *)f);
}
