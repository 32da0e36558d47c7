/* Item-by-item combinators: map, filter, filter_map and inspect, and the
 * batch-callback forms map_many and filter_many. Each
 * polls its borrowed upstream in the poll that produces its own item, so
 * an item leaves the pipeline only when it is returned; what is pulled and
 * rejected (filter, filter_map) is gone by design. */
#include "iter/comb.h"

/* ---- map ---------------------------------------------------------------- */

static weft_next map_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_map *m = (weft_iter_map *)s;
    weft_next r = weft_stream_poll_next(m->up_, cx, m->buf_.b);
    if (r == WEFT_NEXT_ITEM)
        m->fn_(m->ctx_, m->buf_.b, item);
    return r;
}

/* A batch of the upstream's, mapped: pulled into the caller's array one
 * input ahead of the outputs when the items shrink or keep their size
 * (comb_batch_in), else into the buffer (as many as it holds). */
static weft_next map_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                    size_t *n)
{
    weft_iter_map *m = (weft_iter_map *)s;
    size_t cap;
    unsigned char *out = items;
    unsigned char *in = comb_batch_in(out, max, m->in_size_, m->out_size_, m->buf_.b, &cap);
    weft_next r = weft_stream_poll_next_many(m->up_, cx, in, cap, n);
    for (size_t i = 0; i < *n; i++)
        m->fn_(m->ctx_, in + i * m->in_size_, out + i * m->out_size_);
    return r;
}

static void map_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    weft_stream_size_hint(((const weft_iter_map *)s)->up_, lo, hi);
}

static size_t map_item_size(const weft_stream *s)
{
    return ((const weft_iter_map *)s)->out_size_;
}

static const weft_stream_ops map_ops = {
    .name = "weft_iter_map",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = map_poll_next,
    .size_hint = map_size_hint,
    .poll_next_many = map_poll_next_many,
    .item_size_of = map_item_size,
};

int weft_iter_map_init(weft_iter_map *m, weft_stream *up, weft_iter_map_fn *fn, void *ctx,
                       size_t out_item_size)
{
    int err = comb_check("weft_iter_map_init", m, up, true, fn != NULL);
    if (!err)
        err = comb_check_held("weft_iter_map_init", up);
    if (!err && out_item_size == WEFT_ITEM_SIZE_VARIES) {
        WEFT_MISUSE("weft_iter_map_init: out_item_size WEFT_ITEM_SIZE_VARIES");
        err = -EINVAL;
    }
    if (err)
        return err;
    weft_stream_init(&m->base, &map_ops, comb_flags(up, NULL));
    m->up_ = up;
    m->fn_ = fn;
    m->ctx_ = ctx;
    m->in_size_ = weft_stream_item_size(up);
    m->out_size_ = out_item_size;
    return 0;
}

/* ---- filter ------------------------------------------------------------- */

static weft_next filter_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_filter *f = (weft_iter_filter *)s;
    for (;;) {
        weft_next r = weft_stream_poll_next(f->up_, cx, f->buf_.b);
        if (r != WEFT_NEXT_ITEM)
            return r;
        if (f->pred_(f->ctx_, f->buf_.b)) {
            memcpy(item, f->buf_.b, f->size_);
            return WEFT_NEXT_ITEM;
        }
        /* A rejection is work done: a long run of them yields the turn
         * (the budget's wake is arranged) instead of starving the worker. */
        if (!weft_coop_proceed(cx))
            return WEFT_NEXT_PENDING;
    }
}

/* A batch of the upstream's pulled straight into the caller's array and
 * compacted in place; a batch rejected whole charges the budget once and
 * the next is pulled. Kept items are returned in this poll (never held),
 * and a PENDING or DONE comes only with none kept: nothing taken is lost.
 * After a PENDING the array may hold rejected items (scratch). */
static weft_next filter_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                       size_t *n)
{
    weft_iter_filter *f = (weft_iter_filter *)s;
    unsigned char *a = items;
    size_t sz = f->size_;
    for (;;) {
        size_t got;
        weft_next r = weft_stream_poll_next_many(f->up_, cx, items, max, &got);
        if (r != WEFT_NEXT_ITEM) {
            *n = 0;
            return r;
        }
        size_t k = 0;
        for (size_t i = 0; i < got; i++) {
            if (f->pred_(f->ctx_, a + i * sz)) {
                if (k != i)
                    comb_copy(a + k * sz, a + i * sz, sz);
                k++;
            }
        }
        if (k > 0) {
            *n = k;
            return WEFT_NEXT_ITEM;
        }
        if (!weft_coop_proceed(cx)) {
            *n = 0;
            return WEFT_NEXT_PENDING;
        }
    }
}

static void filter_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    weft_stream_size_hint(((const weft_iter_filter *)s)->up_, lo, hi);
    *lo = 0;
}

static size_t filter_item_size(const weft_stream *s)
{
    return ((const weft_iter_filter *)s)->size_;
}

static const weft_stream_ops filter_ops = {
    .name = "weft_iter_filter",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = filter_poll_next,
    .size_hint = filter_size_hint,
    .poll_next_many = filter_poll_next_many,
    .item_size_of = filter_item_size,
};

int weft_iter_filter_init(weft_iter_filter *f, weft_stream *up, weft_iter_pred_fn *pred,
                          void *ctx)
{
    int err = comb_check("weft_iter_filter_init", f, up, true, pred != NULL);
    if (!err)
        err = comb_check_held("weft_iter_filter_init", up);
    if (err)
        return err;
    weft_stream_init(&f->base, &filter_ops, comb_flags(up, NULL));
    f->up_ = up;
    f->pred_ = pred;
    f->ctx_ = ctx;
    f->size_ = weft_stream_item_size(up);
    return 0;
}

/* ---- filter_map --------------------------------------------------------- */

static weft_next filter_map_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_filter_map *f = (weft_iter_filter_map *)s;
    for (;;) {
        weft_next r = weft_stream_poll_next(f->up_, cx, f->buf_.b);
        if (r != WEFT_NEXT_ITEM)
            return r;
        if (f->fn_(f->ctx_, f->buf_.b, item))
            return WEFT_NEXT_ITEM;
        if (!weft_coop_proceed(cx))
            return WEFT_NEXT_PENDING;
    }
}

/* As filter's batch, through map's placement (comb_batch_in): inputs in
 * the caller's array one ahead of the outputs, or in the buffer. */
static weft_next filter_map_poll_next_many(weft_stream *s, weft_cx *cx, void *items,
                                           size_t max, size_t *n)
{
    weft_iter_filter_map *f = (weft_iter_filter_map *)s;
    size_t cap;
    unsigned char *out = items;
    unsigned char *in = comb_batch_in(out, max, f->in_size_, f->out_size_, f->buf_.b, &cap);
    for (;;) {
        size_t got;
        weft_next r = weft_stream_poll_next_many(f->up_, cx, in, cap, &got);
        if (r != WEFT_NEXT_ITEM) {
            *n = 0;
            return r;
        }
        size_t k = 0;
        for (size_t i = 0; i < got; i++)
            k += f->fn_(f->ctx_, in + i * f->in_size_, out + k * f->out_size_);
        if (k > 0) {
            *n = k;
            return WEFT_NEXT_ITEM;
        }
        if (!weft_coop_proceed(cx)) {
            *n = 0;
            return WEFT_NEXT_PENDING;
        }
    }
}

static void filter_map_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    weft_stream_size_hint(((const weft_iter_filter_map *)s)->up_, lo, hi);
    *lo = 0;
}

static size_t filter_map_item_size(const weft_stream *s)
{
    return ((const weft_iter_filter_map *)s)->out_size_;
}

static const weft_stream_ops filter_map_ops = {
    .name = "weft_iter_filter_map",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = filter_map_poll_next,
    .size_hint = filter_map_size_hint,
    .poll_next_many = filter_map_poll_next_many,
    .item_size_of = filter_map_item_size,
};

int weft_iter_filter_map_init(weft_iter_filter_map *f, weft_stream *up,
                              weft_iter_filter_map_fn *fn, void *ctx, size_t out_item_size)
{
    int err = comb_check("weft_iter_filter_map_init", f, up, true, fn != NULL);
    if (!err)
        err = comb_check_held("weft_iter_filter_map_init", up);
    if (!err && out_item_size == WEFT_ITEM_SIZE_VARIES) {
        WEFT_MISUSE("weft_iter_filter_map_init: out_item_size WEFT_ITEM_SIZE_VARIES");
        err = -EINVAL;
    }
    if (err)
        return err;
    weft_stream_init(&f->base, &filter_map_ops, comb_flags(up, NULL));
    f->up_ = up;
    f->fn_ = fn;
    f->ctx_ = ctx;
    f->in_size_ = weft_stream_item_size(up);
    f->out_size_ = out_item_size;
    return 0;
}

/* ---- inspect ------------------------------------------------------------ */

static weft_next inspect_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_inspect *i = (weft_iter_inspect *)s;
    weft_next r = weft_stream_poll_next(i->up_, cx, item);
    if (r == WEFT_NEXT_ITEM)
        i->fn_(i->ctx_, item);
    return r;
}

static weft_next inspect_poll_next_many(weft_stream *s, weft_cx *cx, void *items,
                                        size_t max, size_t *n)
{
    weft_iter_inspect *i = (weft_iter_inspect *)s;
    weft_next r = weft_stream_poll_next_many(i->up_, cx, items, max, n);
    size_t sz = weft_stream_item_size(i->up_);
    for (size_t k = 0; k < *n; k++)
        i->fn_(i->ctx_, (unsigned char *)items + k * sz);
    return r;
}

static void inspect_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    weft_stream_size_hint(((const weft_iter_inspect *)s)->up_, lo, hi);
}

static size_t inspect_item_size(const weft_stream *s)
{
    return weft_stream_item_size(((const weft_iter_inspect *)s)->up_);
}

static const weft_stream_ops inspect_ops = {
    .name = "weft_iter_inspect",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = inspect_poll_next,
    .size_hint = inspect_size_hint,
    .poll_next_many = inspect_poll_next_many,
    .item_size_of = inspect_item_size,
};

int weft_iter_inspect_init(weft_iter_inspect *i, weft_stream *up, weft_iter_inspect_fn *fn,
                           void *ctx)
{
    int err = comb_check("weft_iter_inspect_init", i, up, true, fn != NULL);
    if (err)
        return err;
    weft_stream_init(&i->base, &inspect_ops, comb_flags(up, NULL));
    i->up_ = up;
    i->fn_ = fn;
    i->ctx_ = ctx;
    return 0;
}

/* ---- map_many ----------------------------------------------------------- */

static weft_next map_many_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_map_many *m = (weft_iter_map_many *)s;
    weft_next r = weft_stream_poll_next(m->up_, cx, m->buf_.b);
    if (r == WEFT_NEXT_ITEM)
        m->fn_(m->ctx_, m->buf_.b, item, 1);
    return r;
}

/* Equal sizes: the batch is pulled into the caller's array and mapped in
 * place (in == out); else pulled into the buffer. */
static weft_next map_many_poll_next_many(weft_stream *s, weft_cx *cx, void *items,
                                         size_t max, size_t *n)
{
    weft_iter_map_many *m = (weft_iter_map_many *)s;
    unsigned char *out = items, *in = m->buf_.b;
    size_t cap = m->in_size_ ? WEFT_ITER_ITEM_MAX / m->in_size_ : max;
    if (cap > max)
        cap = max;
    if (m->in_size_ == m->out_size_) {
        cap = max; /* in place */
        in = out;
    }
    weft_next r = weft_stream_poll_next_many(m->up_, cx, in, cap, n);
    if (*n)
        m->fn_(m->ctx_, in, out, *n);
    return r;
}

static void map_many_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    weft_stream_size_hint(((const weft_iter_map_many *)s)->up_, lo, hi);
}

static size_t map_many_item_size(const weft_stream *s)
{
    return ((const weft_iter_map_many *)s)->out_size_;
}

static const weft_stream_ops map_many_ops = {
    .name = "weft_iter_map_many",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = map_many_poll_next,
    .size_hint = map_many_size_hint,
    .poll_next_many = map_many_poll_next_many,
    .item_size_of = map_many_item_size,
};

int weft_iter_map_many_init(weft_iter_map_many *m, weft_stream *up, weft_iter_map_many_fn *fn,
                            void *ctx, size_t out_item_size)
{
    int err = comb_check("weft_iter_map_many_init", m, up, true, fn != NULL);
    if (!err)
        err = comb_check_held("weft_iter_map_many_init", up);
    if (!err && out_item_size == WEFT_ITEM_SIZE_VARIES) {
        WEFT_MISUSE("weft_iter_map_many_init: out_item_size WEFT_ITEM_SIZE_VARIES");
        err = -EINVAL;
    }
    if (err)
        return err;
    weft_stream_init(&m->base, &map_many_ops, comb_flags(up, NULL));
    m->up_ = up;
    m->fn_ = fn;
    m->ctx_ = ctx;
    m->in_size_ = weft_stream_item_size(up);
    m->out_size_ = out_item_size;
    return 0;
}

/* ---- filter_many -------------------------------------------------------- */

/* fn's count, checked: more than it was given is reported and taken as n. */
static size_t filter_many_keep(weft_iter_filter_many *f, void *items, size_t n)
{
    size_t k = f->fn_(f->ctx_, items, n);
    if (k > n) {
        WEFT_MISUSE("weft_iter_filter_many: fn kept %zu of %zu items", k, n);
        k = n;
    }
    return k;
}

static weft_next filter_many_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_filter_many *f = (weft_iter_filter_many *)s;
    for (;;) {
        weft_next r = weft_stream_poll_next(f->up_, cx, f->buf_.b);
        if (r != WEFT_NEXT_ITEM)
            return r;
        if (filter_many_keep(f, f->buf_.b, 1)) {
            memcpy(item, f->buf_.b, f->size_);
            return WEFT_NEXT_ITEM;
        }
        if (!weft_coop_proceed(cx))
            return WEFT_NEXT_PENDING;
    }
}

static weft_next filter_many_poll_next_many(weft_stream *s, weft_cx *cx, void *items,
                                            size_t max, size_t *n)
{
    weft_iter_filter_many *f = (weft_iter_filter_many *)s;
    for (;;) {
        size_t got;
        weft_next r = weft_stream_poll_next_many(f->up_, cx, items, max, &got);
        if (r != WEFT_NEXT_ITEM) {
            *n = 0;
            return r;
        }
        size_t k = filter_many_keep(f, items, got);
        if (k > 0) {
            *n = k;
            return WEFT_NEXT_ITEM;
        }
        if (!weft_coop_proceed(cx)) {
            *n = 0;
            return WEFT_NEXT_PENDING;
        }
    }
}

static void filter_many_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    weft_stream_size_hint(((const weft_iter_filter_many *)s)->up_, lo, hi);
    *lo = 0;
}

static size_t filter_many_item_size(const weft_stream *s)
{
    return ((const weft_iter_filter_many *)s)->size_;
}

static const weft_stream_ops filter_many_ops = {
    .name = "weft_iter_filter_many",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = filter_many_poll_next,
    .size_hint = filter_many_size_hint,
    .poll_next_many = filter_many_poll_next_many,
    .item_size_of = filter_many_item_size,
};

int weft_iter_filter_many_init(weft_iter_filter_many *f, weft_stream *up,
                               weft_iter_filter_many_fn *fn, void *ctx)
{
    int err = comb_check("weft_iter_filter_many_init", f, up, true, fn != NULL);
    if (!err)
        err = comb_check_held("weft_iter_filter_many_init", up);
    if (err)
        return err;
    weft_stream_init(&f->base, &filter_many_ops, comb_flags(up, NULL));
    f->up_ = up;
    f->fn_ = fn;
    f->ctx_ = ctx;
    f->size_ = weft_stream_item_size(up);
    return 0;
}
