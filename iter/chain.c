/* Two upstreams: chain (one after the other) and zip (in pairs). */
#include "iter/comb.h"

/* ---- chain -------------------------------------------------------------- */

static weft_next chain_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_chain *c = (weft_iter_chain *)s;
    if (!c->a_done_) {
        weft_next r = weft_stream_poll_next(c->a_, cx, item);
        if (r != WEFT_NEXT_DONE)
            return r;
        c->a_done_ = true;
    }
    return weft_stream_poll_next(c->b_, cx, item);
}

static weft_next chain_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                      size_t *n)
{
    weft_iter_chain *c = (weft_iter_chain *)s;
    if (!c->a_done_) {
        weft_next r = weft_stream_poll_next_many(c->a_, cx, items, max, n);
        if (r != WEFT_NEXT_DONE)
            return r;
        c->a_done_ = true;
    }
    return weft_stream_poll_next_many(c->b_, cx, items, max, n);
}

static void chain_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_chain *c = (const weft_iter_chain *)s;
    size_t blo, bhi;
    weft_stream_size_hint(c->b_, &blo, &bhi);
    if (c->a_done_) {
        *lo = blo;
        *hi = bhi;
        return;
    }
    weft_stream_size_hint(c->a_, lo, hi);
    *lo = sat_add(*lo, blo);
    *hi = sat_add(*hi, bhi);
}

static size_t chain_item_size(const weft_stream *s)
{
    return weft_stream_item_size(((const weft_iter_chain *)s)->a_);
}

static const weft_stream_ops chain_ops = {
    .name = "weft_iter_chain",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = chain_poll_next,
    .size_hint = chain_size_hint,
    .poll_next_many = chain_poll_next_many,
    .item_size_of = chain_item_size,
};

int weft_iter_chain_init(weft_iter_chain *c, weft_stream *a, weft_stream *b)
{
    int err = comb_check("weft_iter_chain_init", c, a, false, true);
    if (!err)
        err = comb_check("weft_iter_chain_init", c, b, false, true);
    if (!err && weft_stream_item_size(a) != weft_stream_item_size(b)) {
        WEFT_MISUSE("weft_iter_chain_init: item sizes differ (%zu, %zu)",
                    weft_stream_item_size(a), weft_stream_item_size(b));
        err = -EINVAL;
    }
    if (err)
        return err;
    weft_stream_init(&c->base, &chain_ops, comb_flags(a, b));
    c->a_ = a;
    c->b_ = b;
    c->a_done_ = false;
    return 0;
}

/* ---- zip ---------------------------------------------------------------- */

static weft_next zip_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_zip *z = (weft_iter_zip *)s;
    if (!z->have_a_) {
        weft_next r = weft_stream_poll_next(z->a_, cx, z->a_item_.b);
        if (r != WEFT_NEXT_ITEM)
            return r;
        /* Held here, not in `item`, while b is pending: the next poll may
         * come with another item buffer (a fresh next). */
        z->have_a_ = true;
    }
    weft_next r = weft_stream_poll_next(z->b_, cx, (unsigned char *)item + z->a_size_);
    if (r == WEFT_NEXT_ITEM) {
        memcpy(item, z->a_item_.b, z->a_size_);
        z->have_a_ = false;
    }
    return r;
}

static void zip_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_zip *z = (const weft_iter_zip *)s;
    size_t alo, ahi, blo, bhi;
    weft_stream_size_hint(z->a_, &alo, &ahi);
    weft_stream_size_hint(z->b_, &blo, &bhi);
    if (z->have_a_) {
        alo = sat_add(alo, 1);
        ahi = sat_add(ahi, 1);
    }
    *lo = alo < blo ? alo : blo;
    *hi = ahi < bhi ? ahi : bhi;
}

static size_t zip_item_size(const weft_stream *s)
{
    const weft_iter_zip *z = (const weft_iter_zip *)s;
    return z->a_size_ + z->b_size_;
}

static const weft_stream_ops zip_ops = {
    .name = "weft_iter_zip",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = zip_poll_next,
    .size_hint = zip_size_hint,
    .item_size_of = zip_item_size,
};

int weft_iter_zip_init(weft_iter_zip *z, weft_stream *a, weft_stream *b)
{
    int err = comb_check("weft_iter_zip_init", z, a, false, true);
    if (!err)
        err = comb_check("weft_iter_zip_init", z, b, false, true);
    if (!err)
        err = comb_check_held("weft_iter_zip_init", a);
    if (err)
        return err;
    weft_stream_init(&z->base, &zip_ops, comb_flags(a, b));
    z->a_ = a;
    z->b_ = b;
    z->a_size_ = weft_stream_item_size(a);
    z->b_size_ = weft_stream_item_size(b);
    z->have_a_ = false;
    return 0;
}
