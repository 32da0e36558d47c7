/* weft_timeout: run an inner future with a deadline. The inner future is
 * polled first, then the sleep; whichever finishes first decides. The
 * owning form drops the inner future exactly once either way; the
 * borrowing form never does (its inner future stays the caller's). The two
 * forms share everything but where they find the inner future and whether
 * they drop it, told apart by their ops. */
#include "weft/time.h"
#include "core/future.h"
#include "time/clock.h"

#include <string.h>

static weft_poll timeout_poll(weft_future *f, weft_cx *cx, void *out);
static void timeout_drop(weft_future *f);
static size_t timeout_out_size(const weft_future *f);

static const weft_future_ops timeout_ops = {
    .name = "weft_timeout",
    .out_size = WEFT_OUT_SIZE_VARIES,
    .poll = timeout_poll,
    .drop = timeout_drop,
    .out_size_of = timeout_out_size,
};

static const weft_future_ops timeout_borrow_ops = {
    .name = "weft_timeout_borrow",
    .out_size = WEFT_OUT_SIZE_VARIES,
    .poll = timeout_poll,
    .drop = timeout_drop,
    .out_size_of = timeout_out_size,
};

static bool timeout_borrows(const weft_timeout *t)
{
    return t->base.ops == &timeout_borrow_ops;
}

static weft_future *timeout_inner(const weft_timeout *t)
{
    if (timeout_borrows(t))
        return t->inner_.ptr;
    return (weft_future *)((char *)t + t->inner_.off);
}

static size_t timeout_out_size(const weft_future *f)
{
    return weft_future_out_size(timeout_inner((const weft_timeout *)f));
}

static void timeout_start(weft_timeout *t, const weft_future_ops *ops, weft_future *inner,
                          weft_instant deadline)
{
    weft_future_init(&t->base, ops, inner->flags & WEFT_F_SEND);
    t->status = 0;
    t->inner_done = false;
    weft_sleep_until_init(&t->sleep, deadline);
}

int weft_timeout_at_init(weft_timeout *t, weft_future *inner, weft_instant deadline)
{
    if (!t || !inner || !inner->ops || !inner->ops->poll)
        return -EINVAL;
    timeout_start(t, &timeout_ops, inner, deadline);
    t->inner_.off = (char *)inner - (char *)t;
    return 0;
}

int weft_timeout_init(weft_timeout *t, weft_future *inner, weft_duration d)
{
    return weft_timeout_at_init(t, inner, weft__deadline_after(d));
}

int weft_timeout_borrow_at_init(weft_timeout *t, weft_future *inner, weft_instant deadline)
{
    /* The inner future may have been polled before, where it is; one that
     * moved or finished would have its polls refused, and the timeout
     * would report a timeout for what is a misuse. */
    if (!t || weft__future_check_in_place(inner, "weft_timeout_borrow_init") != 0)
        return -EINVAL;
    timeout_start(t, &timeout_borrow_ops, inner, deadline);
    t->inner_.ptr = inner;
    return 0;
}

int weft_timeout_borrow_init(weft_timeout *t, weft_future *inner, weft_duration d)
{
    return weft_timeout_borrow_at_init(t, inner, weft__deadline_after(d));
}

/* Finished with the inner future (the owning form drops it, once), and
 * with the timer. */
static void timeout_finish(weft_timeout *t)
{
    if (!t->inner_done) {
        t->inner_done = true;
        if (!timeout_borrows(t))
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
