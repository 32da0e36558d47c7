/* Sink adapters: weft_iter_sink_from_fn (a sink whose send is an async
 * function, its future kept in the pinned sink) and weft_iter_sink_map
 * (items mapped before a downstream sink). */
#include "weft/iter.h"
#include "core/errors.h"

#include <errno.h>
#include <string.h>

/* ---- sink_from_fn ------------------------------------------------------------- */

static weft_future *send_fut(weft_iter_sink_fn *s)
{
    return (weft_future *)(void *)s->fut_.b;
}

static weft_poll sfn_fail(weft_iter_sink_fn *s, int err, int *res)
{
    if (s->err_ == 0)
        s->err_ = err;
    *res = s->err_;
    return WEFT_READY;
}

/* Drive the send in flight to completion: READY with 0 or its error. */
static weft_poll sfn_settle(weft_iter_sink_fn *s, weft_cx *cx, int *res)
{
    if (s->err_ < 0) {
        *res = s->err_;
        return WEFT_READY;
    }
    if (s->inflight_) {
        int got = 0;
        if (weft_future_poll(send_fut(s), cx, &got) == WEFT_PENDING)
            return WEFT_PENDING;
        s->inflight_ = false;
        weft_future_drop(send_fut(s));
        if (got < 0)
            return sfn_fail(s, got, res);
    }
    *res = 0;
    return WEFT_READY;
}

static weft_poll sfn_poll_ready(weft_sink *sk, weft_cx *cx, int *res)
{
    weft_iter_sink_fn *s = (weft_iter_sink_fn *)sk;
    if (s->closed_)
        return sfn_fail(s, -EPIPE, res);
    return sfn_settle(s, cx, res);
}

static int sfn_start_send(weft_sink *sk, const void *item)
{
    weft_iter_sink_fn *s = (weft_iter_sink_fn *)sk;
    if (s->err_ < 0)
        return s->err_;
    if (s->closed_)
        return -EPIPE;
    if (s->inflight_) {
        WEFT_MISUSE("weft_iter_sink_from_fn start_send: poll_ready did not say ready");
        return -EINVAL;
    }
    if (s->item_size_)
        memcpy(s->item_.b, item, s->item_size_);
    int rc = s->send_(s->self_, s->item_.b, send_fut(s));
    if (rc < 0)
        return rc; /* no future was made: the item stays the caller's */
    if (weft_future_out_size(send_fut(s)) != sizeof(int) ||
        ((s->base.flags & WEFT_F_SEND) && !(send_fut(s)->flags & WEFT_F_SEND))) {
        WEFT_MISUSE("weft_iter_sink_from_fn: the send future '%s' %s", send_fut(s)->ops->name,
                    weft_future_out_size(send_fut(s)) != sizeof(int)
                        ? "does not output an int"
                        : "is not Send but the sink is");
        weft_future_drop(send_fut(s));
        s->err_ = -EINVAL;
        return -EINVAL;
    }
    s->inflight_ = true;
    return 0;
}

static weft_poll sfn_poll_flush(weft_sink *sk, weft_cx *cx, int *res)
{
    return sfn_settle((weft_iter_sink_fn *)sk, cx, res);
}

static weft_poll sfn_poll_close(weft_sink *sk, weft_cx *cx, int *res)
{
    weft_iter_sink_fn *s = (weft_iter_sink_fn *)sk;
    weft_poll p = sfn_settle(s, cx, res);
    if (p == WEFT_READY)
        s->closed_ = true;
    return p;
}

static void sfn_drop(weft_sink *sk)
{
    weft_iter_sink_fn *s = (weft_iter_sink_fn *)sk;
    if (s->inflight_) {
        s->inflight_ = false;
        weft_future_drop(send_fut(s));
    }
}

static size_t sfn_item_size(const weft_sink *sk)
{
    return ((const weft_iter_sink_fn *)sk)->item_size_;
}

static const weft_sink_ops sfn_ops = {
    .name = "weft_iter_sink_from_fn",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_ready = sfn_poll_ready,
    .start_send = sfn_start_send,
    .poll_flush = sfn_poll_flush,
    .poll_close = sfn_poll_close,
    .drop = sfn_drop,
    .item_size_of = sfn_item_size,
};

int weft_iter_sink_from_fn(weft_iter_sink_fn *s, weft_iter_send_fn *send, void *self,
                           size_t send_size, size_t send_align, size_t item_size, uint32_t flags)
{
    if (!s || !send || send_align == 0 || (send_align & (send_align - 1)) != 0 ||
        item_size > WEFT_ITER_ITEM_MAX) {
        WEFT_MISUSE("weft_iter_sink_from_fn: %s",
                    !s || !send ? "sink or send NULL"
                    : item_size > WEFT_ITER_ITEM_MAX ? "item larger than WEFT_ITER_ITEM_MAX"
                                                     : "send_align not a power of two");
        return -EINVAL;
    }
    if (send_size > WEFT_ITER_SINK_FN_STORAGE || send_align > _Alignof(max_align_t))
        return -ENOSPC;
    weft_sink_init(&s->base, &sfn_ops, flags);
    s->send_ = send;
    s->self_ = self;
    s->item_size_ = item_size;
    s->err_ = 0;
    s->inflight_ = false;
    s->closed_ = false;
    return 0;
}

/* ---- sink_map ----------------------------------------------------------------- */

static weft_poll smap_poll_ready(weft_sink *sk, weft_cx *cx, int *res)
{
    return weft_sink_poll_ready(((weft_iter_sink_map *)sk)->down_, cx, res);
}

static int smap_start_send(weft_sink *sk, const void *item)
{
    weft_iter_sink_map *m = (weft_iter_sink_map *)sk;
    m->fn_(m->ctx_, item, m->buf_.b);
    return weft_sink_start_send(m->down_, m->buf_.b);
}

static weft_poll smap_poll_flush(weft_sink *sk, weft_cx *cx, int *res)
{
    return weft_sink_poll_flush(((weft_iter_sink_map *)sk)->down_, cx, res);
}

static weft_poll smap_poll_close(weft_sink *sk, weft_cx *cx, int *res)
{
    return weft_sink_poll_close(((weft_iter_sink_map *)sk)->down_, cx, res);
}

static size_t smap_item_size(const weft_sink *sk)
{
    return ((const weft_iter_sink_map *)sk)->in_size_;
}

static const weft_sink_ops smap_ops = {
    .name = "weft_iter_sink_map",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_ready = smap_poll_ready,
    .start_send = smap_start_send,
    .poll_flush = smap_poll_flush,
    .poll_close = smap_poll_close,
    .item_size_of = smap_item_size,
};

int weft_iter_sink_map_init(weft_iter_sink_map *m, weft_sink *down, weft_iter_map_fn *fn,
                            void *ctx, size_t in_item_size)
{
    if (!m || !down || !down->ops || !fn || in_item_size > WEFT_ITER_ITEM_MAX ||
        weft_sink_item_size(down) > WEFT_ITER_ITEM_MAX) {
        WEFT_MISUSE("weft_iter_sink_map_init: %s",
                    !m || !down || !fn ? "sink, downstream or fn NULL"
                                       : "items larger than WEFT_ITER_ITEM_MAX");
        return -EINVAL;
    }
    weft_sink_init(&m->base, &smap_ops, down->flags & WEFT_F_SEND);
    m->down_ = down;
    m->fn_ = fn;
    m->ctx_ = ctx;
    m->in_size_ = in_item_size;
    return 0;
}
