/* flatten: a stream of (pointers to) streams, read one inner stream after
 * another. The inner stream being read is kept in inner_, so a dropped
 * next loses neither it nor its place. */
#include "iter/comb.h"

static weft_next flatten_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_flatten *f = (weft_iter_flatten *)s;
    for (;;) {
        if (!f->inner_) {
            weft_stream *in = NULL;
            weft_next r = weft_stream_poll_next(f->up_, cx, &in);
            if (r != WEFT_NEXT_ITEM)
                return r;
            if (!in || !in->ops || weft_stream_item_size(in) != f->size_) {
                WEFT_MISUSE("weft_iter_flatten: an inner stream that is NULL or of "
                            "another item size than %zu", f->size_);
                return WEFT_NEXT_DONE;
            }
            f->inner_ = in;
        }
        weft_next r = weft_stream_poll_next(f->inner_, cx, item);
        if (r != WEFT_NEXT_DONE)
            return r;
        f->inner_ = NULL;
        /* A run of empty inner streams is work: yield when the budget is. */
        if (!weft_coop_proceed(cx))
            return WEFT_NEXT_PENDING;
    }
}

static size_t flatten_item_size(const weft_stream *s)
{
    return ((const weft_iter_flatten *)s)->size_;
}

static const weft_stream_ops flatten_ops = {
    .name = "weft_iter_flatten",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = flatten_poll_next,
    .item_size_of = flatten_item_size,
};

int weft_iter_flatten_init(weft_iter_flatten *f, weft_stream *up, size_t item_size)
{
    int err = comb_check("weft_iter_flatten_init", f, up, false, true);
    if (!err && (weft_stream_item_size(up) != sizeof(weft_stream *) ||
                 item_size == WEFT_ITEM_SIZE_VARIES)) {
        WEFT_MISUSE("weft_iter_flatten_init: upstream items are not stream pointers");
        err = -EINVAL;
    }
    if (err)
        return err;
    /* Send when the upstream is: the inner streams are the caller's to
     * keep Send (they move with the items). */
    weft_stream_init(&f->base, &flatten_ops, comb_flags(up, NULL));
    f->up_ = up;
    f->inner_ = NULL;
    f->size_ = item_size;
    return 0;
}
