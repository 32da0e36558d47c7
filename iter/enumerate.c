/* enumerate: each upstream item with its index (a uint64_t from 0) in
 * front of it. The index counts only items returned, so a next dropped
 * while pending skips no index. */
#include "iter/comb.h"

static weft_next enumerate_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_enumerate *e = (weft_iter_enumerate *)s;
    weft_next r =
        weft_stream_poll_next(e->up_, cx, (unsigned char *)item + WEFT_ITER_ENUM_OFFSET);
    if (r == WEFT_NEXT_ITEM) {
        memcpy(item, &e->next_, sizeof e->next_);
        e->next_++;
    }
    return r;
}

/* A batch of the upstream's pulled packed into the tail of the caller's
 * array (from byte max * 8 on), then spread forward into (index, item)
 * pairs: pair i ends where input i + 1 starts, so no input is overwritten
 * before it is moved. Indexes count only items returned, as one by one. */
static weft_next enumerate_poll_next_many(weft_stream *s, weft_cx *cx, void *items,
                                          size_t max, size_t *n)
{
    weft_iter_enumerate *e = (weft_iter_enumerate *)s;
    size_t us = weft_stream_item_size(e->up_);
    size_t stride = WEFT_ITER_ENUM_OFFSET + us;
    unsigned char *a = items;
    unsigned char *in = a + max * WEFT_ITER_ENUM_OFFSET;
    weft_next r = weft_stream_poll_next_many(e->up_, cx, in, max, n);
    for (size_t i = 0; i < *n; i++) {
        unsigned char *pair = a + i * stride;
        memmove(pair + WEFT_ITER_ENUM_OFFSET, in + i * us, us);
        memcpy(pair, &e->next_, sizeof e->next_);
        e->next_++;
    }
    return r;
}

static void enumerate_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    weft_stream_size_hint(((const weft_iter_enumerate *)s)->up_, lo, hi);
}

static size_t enumerate_item_size(const weft_stream *s)
{
    return WEFT_ITER_ENUM_OFFSET +
           weft_stream_item_size(((const weft_iter_enumerate *)s)->up_);
}

static const weft_stream_ops enumerate_ops = {
    .name = "weft_iter_enumerate",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = enumerate_poll_next,
    .size_hint = enumerate_size_hint,
    .poll_next_many = enumerate_poll_next_many,
    .item_size_of = enumerate_item_size,
};

int weft_iter_enumerate_init(weft_iter_enumerate *e, weft_stream *up)
{
    int err = comb_check("weft_iter_enumerate_init", e, up, false, true);
    if (err)
        return err;
    weft_stream_init(&e->base, &enumerate_ops, comb_flags(up, NULL));
    e->up_ = up;
    e->next_ = 0;
    return 0;
}
