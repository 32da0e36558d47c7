/* Counting and predicate cut-offs: take, skip, take_while, skip_while.
 * take and take_while stop polling their upstream once they are done;
 * skip and skip_while pull and drop the items they skip (charging the
 * task's cooperative budget for each). */
#include "iter/comb.h"

static size_t up_item_size(weft_stream *up)
{
    return weft_stream_item_size(up);
}

/* ---- take --------------------------------------------------------------- */

static weft_next take_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_take *t = (weft_iter_take *)s;
    if (t->left_ == 0)
        return WEFT_NEXT_DONE; /* upstream is not polled again */
    weft_next r = weft_stream_poll_next(t->up_, cx, item);
    if (r == WEFT_NEXT_ITEM)
        t->left_--;
    return r;
}

static weft_next take_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                     size_t *n)
{
    weft_iter_take *t = (weft_iter_take *)s;
    *n = 0;
    if (t->left_ == 0)
        return WEFT_NEXT_DONE;
    if ((uint64_t)max > t->left_)
        max = (size_t)t->left_;
    weft_next r = weft_stream_poll_next_many(t->up_, cx, items, max, n);
    t->left_ -= *n;
    return r;
}

static void take_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_take *t = (const weft_iter_take *)s;
    size_t cap = t->left_ > SIZE_MAX ? SIZE_MAX : (size_t)t->left_;
    if (cap == 0) {
        *lo = *hi = 0;
        return;
    }
    weft_stream_size_hint(t->up_, lo, hi);
    if (*lo > cap)
        *lo = cap;
    if (*hi > cap)
        *hi = cap;
}

static size_t take_item_size(const weft_stream *s)
{
    return weft_stream_item_size(((const weft_iter_take *)s)->up_);
}

static const weft_stream_ops take_ops = {
    .name = "weft_iter_take",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = take_poll_next,
    .size_hint = take_size_hint,
    .poll_next_many = take_poll_next_many,
    .item_size_of = take_item_size,
};

int weft_iter_take_init(weft_iter_take *t, weft_stream *up, uint64_t n)
{
    int err = comb_check("weft_iter_take_init", t, up, false, true);
    if (err)
        return err;
    weft_stream_init(&t->base, &take_ops, comb_flags(up, NULL));
    t->up_ = up;
    t->left_ = n;
    return 0;
}

/* ---- skip --------------------------------------------------------------- */

static weft_next skip_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_skip *k = (weft_iter_skip *)s;
    while (k->left_ > 0) {
        weft_next r = weft_stream_poll_next(k->up_, cx, k->buf_.b);
        if (r != WEFT_NEXT_ITEM)
            return r;
        k->left_--;
        if (!weft_coop_proceed(cx))
            return WEFT_NEXT_PENDING;
    }
    return weft_stream_poll_next(k->up_, cx, item);
}

static weft_next skip_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                     size_t *n)
{
    weft_iter_skip *k = (weft_iter_skip *)s;
    *n = 0;
    if (k->left_ > 0) {
        weft_next r = skip_poll_next(s, cx, items);
        *n = r == WEFT_NEXT_ITEM;
        return r;
    }
    return weft_stream_poll_next_many(k->up_, cx, items, max, n);
}

static void skip_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_skip *k = (const weft_iter_skip *)s;
    weft_stream_size_hint(k->up_, lo, hi);
    size_t left = k->left_ > SIZE_MAX ? SIZE_MAX : (size_t)k->left_;
    *lo = *lo > left ? *lo - left : 0;
    if (*hi != SIZE_MAX)
        *hi = *hi > left ? *hi - left : 0;
}

static size_t skip_item_size(const weft_stream *s)
{
    return weft_stream_item_size(((const weft_iter_skip *)s)->up_);
}

static const weft_stream_ops skip_ops = {
    .name = "weft_iter_skip",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = skip_poll_next,
    .size_hint = skip_size_hint,
    .poll_next_many = skip_poll_next_many,
    .item_size_of = skip_item_size,
};

int weft_iter_skip_init(weft_iter_skip *k, weft_stream *up, uint64_t n)
{
    int err = comb_check("weft_iter_skip_init", k, up, false, true);
    if (!err)
        err = comb_check_held("weft_iter_skip_init", up);
    if (err)
        return err;
    weft_stream_init(&k->base, &skip_ops, comb_flags(up, NULL));
    k->up_ = up;
    k->left_ = n;
    return 0;
}

/* ---- take_while --------------------------------------------------------- */

static weft_next take_while_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_take_while *t = (weft_iter_take_while *)s;
    if (t->done_)
        return WEFT_NEXT_DONE;
    weft_next r = weft_stream_poll_next(t->up_, cx, t->buf_.b);
    if (r != WEFT_NEXT_ITEM)
        return r;
    if (!t->pred_(t->ctx_, t->buf_.b)) {
        t->done_ = true; /* upstream is not polled again */
        return WEFT_NEXT_DONE;
    }
    memcpy(item, t->buf_.b, t->size_);
    return WEFT_NEXT_ITEM;
}

/* Upstream items one at a time (poll_next, never a batch: the items after
 * the first false one must stay in the upstream), each tested and written
 * straight into the caller's array, until max, a PENDING, a DONE or the
 * first false one; what came before those is returned now, and a DONE or
 * the false item ends the stream (done_) exactly as the single path does. */
static weft_next take_while_poll_next_many(weft_stream *s, weft_cx *cx, void *items,
                                           size_t max, size_t *n)
{
    weft_iter_take_while *t = (weft_iter_take_while *)s;
    unsigned char *a = items;
    size_t k = 0;
    *n = 0;
    if (t->done_)
        return WEFT_NEXT_DONE;
    while (k < max) {
        unsigned char *slot = a + k * t->size_;
        weft_next r = weft_stream_poll_next(t->up_, cx, slot);
        if (r == WEFT_NEXT_ITEM && !t->pred_(t->ctx_, slot)) {
            t->done_ = true; /* the false item is dropped, as one by one */
            r = WEFT_NEXT_DONE;
        } else if (r == WEFT_NEXT_DONE) {
            t->done_ = true; /* upstream is not polled again */
        }
        if (r != WEFT_NEXT_ITEM) {
            *n = k;
            return k ? WEFT_NEXT_ITEM : r;
        }
        k++;
    }
    *n = k;
    return WEFT_NEXT_ITEM;
}

static void take_while_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_take_while *t = (const weft_iter_take_while *)s;
    if (t->done_) {
        *lo = *hi = 0;
        return;
    }
    weft_stream_size_hint(t->up_, lo, hi);
    *lo = 0;
}

static size_t take_while_item_size(const weft_stream *s)
{
    return ((const weft_iter_take_while *)s)->size_;
}

static const weft_stream_ops take_while_ops = {
    .name = "weft_iter_take_while",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = take_while_poll_next,
    .size_hint = take_while_size_hint,
    .poll_next_many = take_while_poll_next_many,
    .item_size_of = take_while_item_size,
};

int weft_iter_take_while_init(weft_iter_take_while *t, weft_stream *up,
                              weft_iter_pred_fn *pred, void *ctx)
{
    int err = comb_check("weft_iter_take_while_init", t, up, true, pred != NULL);
    if (!err)
        err = comb_check_held("weft_iter_take_while_init", up);
    if (err)
        return err;
    weft_stream_init(&t->base, &take_while_ops, comb_flags(up, NULL));
    t->up_ = up;
    t->pred_ = pred;
    t->ctx_ = ctx;
    t->size_ = up_item_size(up);
    t->done_ = false;
    return 0;
}

/* ---- skip_while --------------------------------------------------------- */

static weft_next skip_while_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_skip_while *k = (weft_iter_skip_while *)s;
    while (k->skipping_) {
        weft_next r = weft_stream_poll_next(k->up_, cx, k->buf_.b);
        if (r != WEFT_NEXT_ITEM)
            return r;
        if (!k->pred_(k->ctx_, k->buf_.b)) {
            k->skipping_ = false;
            memcpy(item, k->buf_.b, k->size_);
            return WEFT_NEXT_ITEM;
        }
        if (!weft_coop_proceed(cx))
            return WEFT_NEXT_PENDING;
    }
    return weft_stream_poll_next(k->up_, cx, item);
}

/* While skipping: upstream batches pulled into the caller's array, the
 * ones pred is true for dropped from the front (a batch dropped whole
 * charges the budget once); from the first false one on, the rest of
 * that batch is moved to the front and returned, and later polls pass
 * the upstream's batches through. */
static weft_next skip_while_poll_next_many(weft_stream *s, weft_cx *cx, void *items,
                                           size_t max, size_t *n)
{
    weft_iter_skip_while *k = (weft_iter_skip_while *)s;
    unsigned char *a = items;
    while (k->skipping_) {
        size_t got;
        weft_next r = weft_stream_poll_next_many(k->up_, cx, items, max, &got);
        if (r != WEFT_NEXT_ITEM) {
            *n = 0;
            return r;
        }
        size_t i = 0;
        while (i < got && k->pred_(k->ctx_, a + i * k->size_))
            i++;
        if (i < got) {
            k->skipping_ = false;
            memmove(a, a + i * k->size_, (got - i) * k->size_);
            *n = got - i;
            return WEFT_NEXT_ITEM;
        }
        if (!weft_coop_proceed(cx)) {
            *n = 0;
            return WEFT_NEXT_PENDING;
        }
    }
    return weft_stream_poll_next_many(k->up_, cx, items, max, n);
}

static void skip_while_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_skip_while *k = (const weft_iter_skip_while *)s;
    weft_stream_size_hint(k->up_, lo, hi);
    if (k->skipping_)
        *lo = 0;
}

static size_t skip_while_item_size(const weft_stream *s)
{
    return ((const weft_iter_skip_while *)s)->size_;
}

static const weft_stream_ops skip_while_ops = {
    .name = "weft_iter_skip_while",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = skip_while_poll_next,
    .size_hint = skip_while_size_hint,
    .poll_next_many = skip_while_poll_next_many,
    .item_size_of = skip_while_item_size,
};

int weft_iter_skip_while_init(weft_iter_skip_while *k, weft_stream *up,
                              weft_iter_pred_fn *pred, void *ctx)
{
    int err = comb_check("weft_iter_skip_while_init", k, up, true, pred != NULL);
    if (!err)
        err = comb_check_held("weft_iter_skip_while_init", up);
    if (err)
        return err;
    weft_stream_init(&k->base, &skip_while_ops, comb_flags(up, NULL));
    k->up_ = up;
    k->pred_ = pred;
    k->ctx_ = ctx;
    k->size_ = up_item_size(up);
    k->skipping_ = true;
    return 0;
}
