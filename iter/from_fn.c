/* weft_iter_from_fn: a poll_next stream over an "async next" function.
 *
 * The next future is made by the user's function in storage inside the
 * stream, and writes its item into the stream too; poll_next copies the
 * item out only in the poll where that future completes. A consumer that
 * is dropped while the next future is pending therefore loses nothing:
 * the future stays in the stream and the next poll resumes it. (The
 * reverse — an async next built on poll_next that keeps the item in its
 * own future — loses the item when that future is dropped after taking
 * it; tests/iter/from_fn.c shows both.) */
#include "weft/iter.h"
#include "core/errors.h"

#include <errno.h>
#include <string.h>

static weft_future *fut_of(weft_iter_from_fn *s)
{
    return (weft_future *)(void *)s->fut_.b;
}

static void end_with(weft_iter_from_fn *s, int err)
{
    if (err < 0 && s->err_ == 0)
        s->err_ = err;
}

static weft_next from_fn_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    weft_iter_from_fn *s = (weft_iter_from_fn *)st;
    if (!s->inflight_) {
        int rc = s->next_(s->self_, fut_of(s), s->item_.b);
        if (rc < 0) {
            end_with(s, rc);
            return WEFT_NEXT_DONE;
        }
        if (weft_future_out_size(fut_of(s)) != sizeof(int)) {
            WEFT_MISUSE("weft_iter_from_fn: the next future '%s' outputs %zu bytes, not an int",
                        fut_of(s)->ops->name, weft_future_out_size(fut_of(s)));
            weft_future_drop(fut_of(s));
            end_with(s, -EINVAL);
            return WEFT_NEXT_DONE;
        }
        s->inflight_ = true;
    }
    int got = 0;
    if (weft_future_poll(fut_of(s), cx, &got) == WEFT_PENDING)
        return WEFT_NEXT_PENDING;
    s->inflight_ = false;
    weft_future_drop(fut_of(s));
    if (got <= 0) {
        end_with(s, got);
        return WEFT_NEXT_DONE;
    }
    if (s->item_size_)
        memcpy(item, s->item_.b, s->item_size_);
    return WEFT_NEXT_ITEM;
}

static void from_fn_drop(weft_stream *st)
{
    weft_iter_from_fn *s = (weft_iter_from_fn *)st;
    if (s->inflight_) {
        s->inflight_ = false;
        weft_future_drop(fut_of(s));
    }
}

static size_t from_fn_item_size(const weft_stream *st)
{
    return ((const weft_iter_from_fn *)st)->item_size_;
}

static const weft_stream_ops from_fn_ops = {
    .name = "weft_iter_from_fn",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = from_fn_poll_next,
    .drop = from_fn_drop,
    .item_size_of = from_fn_item_size,
};

int weft_iter_from_fn_init(weft_iter_from_fn *s, weft_iter_next_fn *next, void *self,
                           size_t next_size, size_t next_align, size_t item_size, uint32_t flags)
{
    if (!s || !next || next_align == 0 || (next_align & (next_align - 1)) != 0) {
        WEFT_MISUSE("weft_iter_from_fn_init: %s",
                    !s ? "stream NULL" : !next ? "next NULL" : "next_align not a power of two");
        return -EINVAL;
    }
    if (next_size > WEFT_ITER_FROM_FN_STORAGE || next_align > _Alignof(long double) ||
        item_size > WEFT_ITER_FROM_FN_ITEM_MAX)
        return -ENOSPC;
    weft_stream_init(&s->base, &from_fn_ops, flags);
    s->next_ = next;
    s->self_ = self;
    s->item_size_ = item_size;
    s->err_ = 0;
    s->inflight_ = false;
    return 0;
}
