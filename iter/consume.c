/* Consumers: futures that drain a borrowed stream — fold, for_each and
 * count (batches through a buffer in the future, every item of a batch
 * handled in the poll that took it), collect (batches straight into the
 * caller's buffer), any and all (one item per poll_next, so stopping at
 * the deciding item leaves the rest in the stream). Each charges the coop
 * budget once per batch: over a stream that is always ready the task
 * still yields every WEFT_COOP_BUDGET batches. */
#include "weft/iter.h"
#include "core/errors.h"

#include <errno.h>
#include <string.h>

/* ---- fold, for_each, count ------------------------------------------------------ */

static weft_poll fold_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_iter_fold *fo = (weft_iter_fold *)f;
    size_t stride = weft_stream_item_size(fo->s_);
    size_t max = stride ? WEFT_ITER_BATCH_BYTES / stride : WEFT_ITER_BATCH_BYTES;
    for (;;) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        size_t n = 0;
        weft_next r = weft_stream_poll_next_many(fo->s_, cx, fo->buf_.b, max, &n);
        if (r == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (r == WEFT_NEXT_DONE) {
            *(size_t *)out = fo->n_;
            return WEFT_READY;
        }
        for (size_t i = 0; i < n; i++) {
            const void *item = fo->buf_.b + i * stride;
            if (fo->fold_)
                fo->fold_(fo->ctx_, fo->acc_, item);
            else if (fo->each_)
                fo->each_(fo->ctx_, item);
        }
        fo->n_ += n;
    }
}

static const weft_future_ops fold_ops = {
    .name = "weft_iter_fold", .out_size = sizeof(size_t), .poll = fold_poll,
};
static const weft_future_ops for_each_ops = {
    .name = "weft_iter_for_each", .out_size = sizeof(size_t), .poll = fold_poll,
};
static const weft_future_ops count_ops = {
    .name = "weft_iter_count", .out_size = sizeof(size_t), .poll = fold_poll,
};

static bool item_fits(const weft_stream *s, size_t limit, const char *who)
{
    size_t sz = weft_stream_item_size(s);
    if (sz > limit) {
        WEFT_MISUSE("%s: items of stream %s are %zu bytes, more than %zu", who, s->ops->name,
                    sz, limit);
        (void)who;
        return false;
    }
    return true;
}

static int fold_setup(weft_iter_fold *f, const weft_future_ops *ops, weft_stream *s,
                      weft_iter_fold_fn *fold, weft_iter_each_fn *each, void *acc, void *ctx)
{
    if (!item_fits(s, WEFT_ITER_BATCH_BYTES, ops->name))
        return -EINVAL;
    weft_future_init(&f->base, ops, s->flags & WEFT_F_SEND);
    f->s_ = s;
    f->fold_ = fold;
    f->each_ = each;
    f->acc_ = acc;
    f->ctx_ = ctx;
    f->n_ = 0;
    return 0;
}

int weft_iter_fold_init(weft_iter_fold *f, weft_stream *s, void *acc, weft_iter_fold_fn *fn,
                        void *ctx)
{
    if (!f || !s || !fn) {
        WEFT_MISUSE("weft_iter_fold_init: future, stream or fn NULL");
        return -EINVAL;
    }
    return fold_setup(f, &fold_ops, s, fn, NULL, acc, ctx);
}

int weft_iter_for_each_init(weft_iter_for_each *f, weft_stream *s, weft_iter_each_fn *fn,
                            void *ctx)
{
    if (!f || !s || !fn) {
        WEFT_MISUSE("weft_iter_for_each_init: future, stream or fn NULL");
        return -EINVAL;
    }
    return fold_setup(f, &for_each_ops, s, NULL, fn, NULL, ctx);
}

int weft_iter_count_init(weft_iter_count *f, weft_stream *s)
{
    if (!f || !s) {
        WEFT_MISUSE("weft_iter_count_init: future or stream NULL");
        return -EINVAL;
    }
    return fold_setup(f, &count_ops, s, NULL, NULL, NULL, NULL);
}

/* ---- collect ----------------------------------------------------------------------- */

static weft_poll collect_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_iter_collect *c = (weft_iter_collect *)f;
    for (;;) {
        if (*c->n_ == c->cap_) {
            size_t lo, hi;
            weft_stream_size_hint(c->s_, &lo, &hi);
            *(int *)out = hi == 0 ? 0 : -ENOSPC;
            return WEFT_READY;
        }
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        size_t n = 0;
        weft_next r = weft_stream_poll_next_many(c->s_, cx, c->buf_ + *c->n_ * c->stride_,
                                                 c->cap_ - *c->n_, &n);
        if (r == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (r == WEFT_NEXT_DONE) {
            *(int *)out = 0;
            return WEFT_READY;
        }
        *c->n_ += n;
    }
}

static const weft_future_ops collect_ops = {
    .name = "weft_iter_collect", .out_size = sizeof(int), .poll = collect_poll,
};

int weft_iter_collect_init(weft_iter_collect *f, weft_stream *s, void *buf, size_t cap,
                           size_t *n)
{
    if (!f || !s || !n || (!buf && cap > 0)) {
        WEFT_MISUSE("weft_iter_collect_init: future, stream, n or buf NULL");
        return -EINVAL;
    }
    weft_future_init(&f->base, &collect_ops, s->flags & WEFT_F_SEND);
    f->s_ = s;
    f->buf_ = buf;
    f->cap_ = cap;
    f->stride_ = weft_stream_item_size(s);
    f->n_ = n;
    *n = 0;
    return 0;
}

/* ---- any, all --------------------------------------------------------------------- */

static weft_poll any_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_iter_any *a = (weft_iter_any *)f;
    for (;;) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        weft_next r = weft_stream_poll_next(a->s_, cx, a->item_.b);
        if (r == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (r == WEFT_NEXT_DONE) {
            *(bool *)out = !a->want_; /* any: false; all: true */
            return WEFT_READY;
        }
        if (a->pred_(a->ctx_, a->item_.b) == a->want_) {
            *(bool *)out = a->want_;
            return WEFT_READY;
        }
    }
}

static const weft_future_ops any_ops = {
    .name = "weft_iter_any", .out_size = sizeof(bool), .poll = any_poll,
};
static const weft_future_ops all_ops = {
    .name = "weft_iter_all", .out_size = sizeof(bool), .poll = any_poll,
};

static int any_setup(weft_iter_any *f, const weft_future_ops *ops, weft_stream *s,
                     weft_iter_pred_fn *pred, void *ctx, bool want)
{
    if (!f || !s || !pred) {
        WEFT_MISUSE("%s_init: future, stream or pred NULL", ops->name);
        return -EINVAL;
    }
    if (!item_fits(s, WEFT_ITER_BATCH_BYTES, ops->name))
        return -EINVAL;
    weft_future_init(&f->base, ops, s->flags & WEFT_F_SEND);
    f->s_ = s;
    f->pred_ = pred;
    f->ctx_ = ctx;
    f->want_ = want;
    return 0;
}

int weft_iter_any_init(weft_iter_any *f, weft_stream *s, weft_iter_pred_fn *pred, void *ctx)
{
    return any_setup(f, &any_ops, s, pred, ctx, true);
}

int weft_iter_all_init(weft_iter_all *f, weft_stream *s, weft_iter_pred_fn *pred, void *ctx)
{
    return any_setup(f, &all_ops, s, pred, ctx, false);
}
