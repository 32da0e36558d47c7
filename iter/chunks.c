/* chunks and chunks_timeout: upstream items gathered n at a time into the
 * caller's buffer, handed out as one item (count, then the items). The
 * partial chunk lives in that buffer between polls, so nothing is lost
 * when a next is dropped; len_ counts what it holds. */
#include "iter/comb.h"
#include "weft/time.h"

_Static_assert(sizeof(weft_sleep) <= WEFT_ITER_SLEEP_MAX &&
                   _Alignof(weft_sleep) <= _Alignof(max_align_t),
               "WEFT_ITER_SLEEP_MAX holds a weft_sleep");

static weft_sleep *chunk_sleep(weft_iter_chunks *c)
{
    return (weft_sleep *)(void *)c->sleep_.b;
}

/* Hand out the chunk gathered so far. */
static weft_next chunks_emit(weft_iter_chunks *c, void *item)
{
    uint64_t len = c->len_;
    memcpy(item, &len, sizeof len);
    memcpy((unsigned char *)item + WEFT_ITER_CHUNK_OFFSET, c->buf_, c->len_ * c->in_size_);
    c->len_ = 0;
    c->armed_ = false;
    return WEFT_NEXT_ITEM;
}

static weft_next chunks_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_chunks *c = (weft_iter_chunks *)s;
    for (;;) {
        if (c->len_ == c->n_)
            return chunks_emit(c, item);
        if (c->up_done_)
            return c->len_ ? chunks_emit(c, item) : WEFT_NEXT_DONE;
        size_t k = 0;
        weft_next r = weft_stream_poll_next_many(c->up_, cx, c->buf_ + c->len_ * c->in_size_,
                                                 c->n_ - c->len_, &k);
        if (r == WEFT_NEXT_ITEM) {
            if (c->len_ == 0 && c->timeout_) {
                weft_instant now = weft_now();
                weft_sleep_reset(chunk_sleep(c), now > WEFT_NEVER - c->timeout_
                                                     ? WEFT_NEVER
                                                     : now + c->timeout_);
                c->armed_ = true;
            }
            c->len_ += k;
        } else if (r == WEFT_NEXT_DONE) {
            c->up_done_ = true; /* never polled again */
        } else {
            /* Upstream pending (its wake arranged): a chunk past its
             * timeout goes out short; else the sleep's wake is arranged
             * too, and whichever comes first polls us again. */
            if (c->armed_ && weft_future_poll(&chunk_sleep(c)->base, cx, NULL) == WEFT_READY)
                return chunks_emit(c, item);
            return WEFT_NEXT_PENDING;
        }
    }
}

static void chunks_drop(weft_stream *s)
{
    weft_iter_chunks *c = (weft_iter_chunks *)s;
    if (c->timeout_)
        weft_future_drop(&chunk_sleep(c)->base); /* unlinks the timer */
}

static void chunks_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_chunks *c = (const weft_iter_chunks *)s;
    if (c->up_done_) {
        *lo = *hi = c->len_ ? 1 : 0;
        return;
    }
    weft_stream_size_hint(c->up_, lo, hi);
    size_t l = sat_add(*lo, c->len_), h = sat_add(*hi, c->len_);
    /* Full chunks, then one short; a timeout may cut any chunk short. */
    *lo = l / c->n_ + (l % c->n_ != 0);
    if (h != SIZE_MAX && !c->timeout_)
        *hi = h / c->n_ + (h % c->n_ != 0);
    else
        *hi = h;
}

static size_t chunks_item_size(const weft_stream *s)
{
    const weft_iter_chunks *c = (const weft_iter_chunks *)s;
    return WEFT_ITER_CHUNK_OFFSET + c->n_ * c->in_size_;
}

static const weft_stream_ops chunks_ops = {
    .name = "weft_iter_chunks",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = chunks_poll_next,
    .drop = chunks_drop,
    .size_hint = chunks_size_hint,
    .item_size_of = chunks_item_size,
};

int weft_iter_chunks_timeout_init(weft_iter_chunks *c, weft_stream *up, size_t n, void *buf,
                                  size_t buf_size, uint64_t timeout)
{
    int err = comb_check("weft_iter_chunks_init", c, up, true, buf != NULL);
    if (err)
        return err;
    size_t in = weft_stream_item_size(up);
    if (n == 0 || (in && n > (SIZE_MAX - WEFT_ITER_CHUNK_OFFSET) / in) || buf_size < n * in) {
        WEFT_MISUSE("weft_iter_chunks_init: n %zu, or buffer of %zu bytes for %zu-byte items",
                    n, buf_size, in);
        return -EINVAL;
    }
    weft_stream_init(&c->base, &chunks_ops, comb_flags(up, NULL));
    c->up_ = up;
    c->buf_ = buf;
    c->n_ = n;
    c->in_size_ = in;
    c->len_ = 0;
    c->timeout_ = timeout;
    c->up_done_ = false;
    c->armed_ = false;
    if (timeout)
        weft_sleep_until_init(chunk_sleep(c), WEFT_NEVER);
    return 0;
}

int weft_iter_chunks_init(weft_iter_chunks *c, weft_stream *up, size_t n, void *buf,
                          size_t buf_size)
{
    return weft_iter_chunks_timeout_init(c, up, n, buf, buf_size, 0);
}
