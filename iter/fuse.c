/* fuse: a stream that, once its upstream answered DONE, never polls it
 * again and answers DONE itself as often as it is asked (through
 * weft_iter_fuse_poll_next; weft_stream_poll_next reports a poll after
 * DONE in debug builds, for a fuse as for any stream). */
#include "iter/comb.h"

static weft_next fuse_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_fuse *f = (weft_iter_fuse *)s;
    if (f->done_)
        return WEFT_NEXT_DONE;
    weft_next r = weft_stream_poll_next(f->up_, cx, item);
    if (r == WEFT_NEXT_DONE)
        f->done_ = true;
    return r;
}

static weft_next fuse_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                     size_t *n)
{
    weft_iter_fuse *f = (weft_iter_fuse *)s;
    *n = 0;
    if (f->done_)
        return WEFT_NEXT_DONE;
    weft_next r = weft_stream_poll_next_many(f->up_, cx, items, max, n);
    if (r == WEFT_NEXT_DONE)
        f->done_ = true;
    return r;
}

static void fuse_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_fuse *f = (const weft_iter_fuse *)s;
    if (f->done_)
        *lo = *hi = 0;
    else
        weft_stream_size_hint(f->up_, lo, hi);
}

static size_t fuse_item_size(const weft_stream *s)
{
    return weft_stream_item_size(((const weft_iter_fuse *)s)->up_);
}

static const weft_stream_ops fuse_ops = {
    .name = "weft_iter_fuse",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = fuse_poll_next,
    .size_hint = fuse_size_hint,
    .poll_next_many = fuse_poll_next_many,
    .item_size_of = fuse_item_size,
};

int weft_iter_fuse_init(weft_iter_fuse *f, weft_stream *up)
{
    int err = comb_check("weft_iter_fuse_init", f, up, false, true);
    if (err)
        return err;
    weft_stream_init(&f->base, &fuse_ops, comb_flags(up, NULL));
    f->up_ = up;
    f->done_ = false;
    return 0;
}

weft_next weft_iter_fuse_poll_next(weft_iter_fuse *f, weft_cx *cx, void *item)
{
    if (!f || !cx || f->base.ops != &fuse_ops) {
        WEFT_MISUSE("weft_iter_fuse_poll_next: NULL or not a fuse");
        return WEFT_NEXT_PENDING;
    }
    return fuse_poll_next(&f->base, cx, item);
}
