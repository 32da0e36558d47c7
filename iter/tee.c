/* weft_iter_tee: one sink writing to two.
 *
 * poll_ready answers READY only when both sides did (a sink that said
 * ready keeps its room until the next start_send), so start_send hands
 * the item to both at once and the tee never holds an item. */
#include "weft/iter.h"
#include "core/errors.h"

#include <errno.h>

static weft_poll fail(weft_iter_tee *t, int err, int *res)
{
    if (t->err_ == 0)
        t->err_ = err;
    *res = t->err_;
    return WEFT_READY;
}

/* Poll `fn` on both sides (each side skipped once `skip_*` says so);
 * READY with 0 only when both are READY with 0. */
static weft_poll both(weft_iter_tee *t, weft_cx *cx, int *res,
                      weft_poll (*fn)(weft_sink *, weft_cx *, int *), bool skip_a, bool skip_b,
                      bool *ready_a, bool *ready_b)
{
    if (t->err_ < 0) {
        *res = t->err_;
        return WEFT_READY;
    }
    int ra = 0, rb = 0;
    weft_poll pa = skip_a ? WEFT_READY : fn(t->a_, cx, &ra);
    if (pa == WEFT_READY && ra < 0)
        return fail(t, ra, res);
    weft_poll pb = skip_b ? WEFT_READY : fn(t->b_, cx, &rb);
    if (pb == WEFT_READY && rb < 0)
        return fail(t, rb, res);
    if (ready_a)
        *ready_a = pa == WEFT_READY;
    if (ready_b)
        *ready_b = pb == WEFT_READY;
    if (pa == WEFT_PENDING || pb == WEFT_PENDING)
        return WEFT_PENDING;
    *res = 0;
    return WEFT_READY;
}

static weft_poll tee_poll_ready(weft_sink *s, weft_cx *cx, int *res)
{
    weft_iter_tee *t = (weft_iter_tee *)s;
    if (t->a_closed_ || t->b_closed_)
        return fail(t, -EPIPE, res);
    return both(t, cx, res, weft_sink_poll_ready, false, false, NULL, NULL);
}

static int tee_start_send(weft_sink *s, const void *item)
{
    weft_iter_tee *t = (weft_iter_tee *)s;
    if (t->err_ < 0)
        return t->err_;
    if (t->a_closed_ || t->b_closed_)
        return -EPIPE;
    int r = weft_sink_start_send(t->a_, item);
    if (r < 0)
        return r; /* nobody took it: the item stays the caller's */
    r = weft_sink_start_send(t->b_, item);
    if (r < 0)
        t->err_ = r; /* a has it, b refused it: the tee is broken */
    return r;
}

static weft_poll tee_poll_flush(weft_sink *s, weft_cx *cx, int *res)
{
    weft_iter_tee *t = (weft_iter_tee *)s;
    return both(t, cx, res, weft_sink_poll_flush, t->a_closed_, t->b_closed_, NULL, NULL);
}

static weft_poll tee_poll_close(weft_sink *s, weft_cx *cx, int *res)
{
    weft_iter_tee *t = (weft_iter_tee *)s;
    bool ra = false, rb = false;
    weft_poll p = both(t, cx, res, weft_sink_poll_close, t->a_closed_, t->b_closed_, &ra, &rb);
    /* A side that closed is not closed again (its handle may be spent). */
    t->a_closed_ |= ra;
    t->b_closed_ |= rb;
    return p;
}

static size_t tee_item_size(const weft_sink *s)
{
    return ((const weft_iter_tee *)s)->size_;
}

static const weft_sink_ops tee_ops = {
    .name = "weft_iter_tee",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_ready = tee_poll_ready,
    .start_send = tee_start_send,
    .poll_flush = tee_poll_flush,
    .poll_close = tee_poll_close,
    .item_size_of = tee_item_size,
};

int weft_iter_tee_init(weft_iter_tee *t, weft_sink *a, weft_sink *b)
{
    if (!t || !a || !b || !a->ops || !b->ops || a == b) {
        WEFT_MISUSE("weft_iter_tee_init: %s", a && a == b ? "a and b are the same sink"
                                                          : "tee or a sink NULL");
        return -EINVAL;
    }
    size_t sz = weft_sink_item_size(a);
    if (sz != weft_sink_item_size(b)) {
        WEFT_MISUSE("weft_iter_tee_init: '%s' takes %zu-byte items, '%s' %zu", a->ops->name, sz,
                    b->ops->name, weft_sink_item_size(b));
        return -EINVAL;
    }
    weft_sink_init(&t->base, &tee_ops, a->flags & b->flags & WEFT_F_SEND);
    t->a_ = a;
    t->b_ = b;
    t->size_ = sz;
    t->err_ = 0;
    t->a_closed_ = t->b_closed_ = false;
    return 0;
}
