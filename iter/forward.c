/* weft_iter_forward: a future that moves a stream into a sink.
 *
 * Each step asks the sink for room before it takes an item from the
 * stream, and hands the item over in the same poll, so the future never
 * holds an item between polls: dropping it pending loses nothing. When
 * the stream is pending, the sink is flushed (what it accepted gets
 * delivered while we wait); at the end it is flushed, or closed. */
#include "weft/iter.h"
#include "core/errors.h"

#include <errno.h>
#include <string.h>

static weft_poll finish(int res, void *out)
{
    *(int *)out = res;
    return WEFT_READY;
}

static weft_poll forward_poll(weft_future *fut, weft_cx *cx, void *out)
{
    weft_iter_forward *f = (weft_iter_forward *)fut;
    int res = 0;
    while (!f->done_) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        if (weft_sink_poll_ready(f->sink_, cx, &res) == WEFT_PENDING)
            return WEFT_PENDING;
        if (res < 0)
            return finish(res, out);
        weft_next r = weft_stream_poll_next(f->s_, cx, f->buf_.b);
        if (r == WEFT_NEXT_DONE) {
            f->done_ = true;
            break;
        }
        if (r == WEFT_NEXT_PENDING) {
            /* Deliver what the sink accepted while the stream is quiet. */
            if (weft_sink_poll_flush(f->sink_, cx, &res) == WEFT_READY && res < 0)
                return finish(res, out);
            return WEFT_PENDING;
        }
        res = weft_sink_start_send(f->sink_, f->buf_.b);
        if (res < 0) {
            f->refused_ = true; /* the item stays ours: refused_ hands it back */
            return finish(res, out);
        }
    }
    weft_poll p = f->close_ ? weft_sink_poll_close(f->sink_, cx, &res)
                            : weft_sink_poll_flush(f->sink_, cx, &res);
    if (p == WEFT_PENDING)
        return WEFT_PENDING;
    return finish(res, out);
}

static const weft_future_ops forward_ops = {
    .name = "weft_iter_forward", .out_size = sizeof(int), .poll = forward_poll,
};

int weft_iter_forward_init(weft_iter_forward *f, weft_stream *s, weft_sink *sink, bool close)
{
    if (!f || !s || !sink || !s->ops || !sink->ops) {
        WEFT_MISUSE("weft_iter_forward_init: future, stream or sink NULL");
        return -EINVAL;
    }
    size_t sz = weft_stream_item_size(s);
    if (sz > WEFT_ITER_ITEM_MAX || sz != weft_sink_item_size(sink)) {
        WEFT_MISUSE("weft_iter_forward_init: items of '%s' are %zu bytes, '%s' takes %zu "
                    "(at most WEFT_ITER_ITEM_MAX)",
                    s->ops->name, sz, sink->ops->name, weft_sink_item_size(sink));
        return -EINVAL;
    }
    weft_future_init(&f->base, &forward_ops, s->flags & sink->flags & WEFT_F_SEND);
    f->s_ = s;
    f->sink_ = sink;
    f->size_ = sz;
    f->close_ = close;
    f->done_ = false;
    f->refused_ = false;
    return 0;
}

bool weft_iter_forward_refused(const weft_iter_forward *f, void *item)
{
    if (!f || !f->refused_)
        return false;
    if (f->size_ && item)
        memcpy(item, f->buf_.b, f->size_);
    return true;
}
