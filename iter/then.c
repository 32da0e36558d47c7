/* then: an async map whose per-item future lives inside the combinator.
 * State: fut_ NULL (between items: the upstream is polled next) or the
 * future made for the item taken last (polled until READY, its output
 * written straight into the caller's item, which a future writes only in
 * the poll that returns READY). */
#include "iter/comb.h"

static weft_next then_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_then *t = (weft_iter_then *)s;
    if (!t->fut_) {
        weft_next r = weft_stream_poll_next(t->up_, cx, t->buf_.b);
        if (r != WEFT_NEXT_ITEM)
            return r;
        weft_future *f = t->fn_(t->ctx_, t->buf_.b, t->fut_st_.b, sizeof t->fut_st_);
        if (!f || (void *)f != (void *)t->fut_st_.b ||
            weft_future_out_size(f) != t->out_size_ ||
            ((t->base.flags & WEFT_F_SEND) && !weft_future_is_send(f))) {
            WEFT_MISUSE("weft_iter_then: fn made no future at its storage, or one of "
                        "another output size or not Send");
            if (f)
                weft_future_drop(f);
            return WEFT_NEXT_DONE;
        }
        t->fut_ = f;
    }
    if (weft_future_poll(t->fut_, cx, item) == WEFT_PENDING)
        return WEFT_NEXT_PENDING;
    weft_future_drop(t->fut_);
    t->fut_ = NULL;
    return WEFT_NEXT_ITEM;
}

static void then_drop(weft_stream *s)
{
    weft_iter_then *t = (weft_iter_then *)s;
    if (t->fut_) {
        weft_future_drop(t->fut_);
        t->fut_ = NULL;
    }
}

static void then_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_then *t = (const weft_iter_then *)s;
    weft_stream_size_hint(t->up_, lo, hi);
    if (t->fut_) {
        *lo = sat_add(*lo, 1);
        *hi = sat_add(*hi, 1);
    }
}

static size_t then_item_size(const weft_stream *s)
{
    return ((const weft_iter_then *)s)->out_size_;
}

static const weft_stream_ops then_ops = {
    .name = "weft_iter_then",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = then_poll_next,
    .drop = then_drop,
    .size_hint = then_size_hint,
    .item_size_of = then_item_size,
};

int weft_iter_then_init(weft_iter_then *t, weft_stream *up, weft_iter_then_fn *fn, void *ctx,
                        size_t out_item_size, uint32_t fut_flags)
{
    int err = comb_check("weft_iter_then_init", t, up, true, fn != NULL);
    if (!err)
        err = comb_check_held("weft_iter_then_init", up);
    if (err)
        return err;
    weft_stream_init(&t->base, &then_ops, up->flags & fut_flags & WEFT_F_SEND);
    t->up_ = up;
    t->fn_ = fn;
    t->ctx_ = ctx;
    t->out_size_ = out_item_size;
    t->fut_ = NULL;
    return 0;
}
