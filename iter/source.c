/* Streams made from values: an array (borrowed), a range of uint64_t, one
 * value repeated (or once), and the empty stream. Each keeps its position
 * in its own struct and takes an item only in the poll that returns it,
 * so a dropped weft_stream_next over any of them loses nothing. They are
 * always ready; under the sim's chaos they answer PENDING now and then
 * like every leaf, which is what cancel sweeps drop them at. */
#include "weft/iter.h"
#include "core/chaos.h"
#include "core/errors.h"

#include <errno.h>
#include <string.h>

static void hint(size_t *lo, size_t *hi, uint64_t left)
{
    *lo = *hi = left > SIZE_MAX ? SIZE_MAX : (size_t)left;
}

/* ---- array ------------------------------------------------------------------- */

static weft_next array_poll_next_many(weft_stream *st, weft_cx *cx, void *items, size_t max,
                                      size_t *n)
{
    weft_iter_array *s = (weft_iter_array *)st;
    *n = 0;
    if (weft__chaos_pending_stream(st, cx))
        return WEFT_NEXT_PENDING;
    size_t left = s->len_ - s->at_;
    if (left == 0)
        return WEFT_NEXT_DONE;
    size_t k = left < max ? left : max;
    if (s->item_size_)
        memcpy(items, s->items_ + s->at_ * s->item_size_, k * s->item_size_);
    s->at_ += k;
    *n = k;
    return WEFT_NEXT_ITEM;
}

static weft_next array_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    size_t n;
    return array_poll_next_many(st, cx, item, 1, &n);
}

static void array_size_hint(const weft_stream *st, size_t *lo, size_t *hi)
{
    const weft_iter_array *s = (const weft_iter_array *)st;
    hint(lo, hi, s->len_ - s->at_);
}

static size_t array_item_size(const weft_stream *st)
{
    return ((const weft_iter_array *)st)->item_size_;
}

static const weft_stream_ops array_ops = {
    .name = "weft_iter_array",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = array_poll_next,
    .size_hint = array_size_hint,
    .poll_next_many = array_poll_next_many,
    .item_size_of = array_item_size,
};

int weft_iter_array_init(weft_iter_array *s, const void *items, size_t item_size, size_t len)
{
    if (!s || (!items && len > 0 && item_size > 0) || item_size == WEFT_ITEM_SIZE_VARIES) {
        WEFT_MISUSE("weft_iter_array_init: %s",
                    !s ? "stream NULL" : item_size == WEFT_ITEM_SIZE_VARIES
                                             ? "item_size WEFT_ITEM_SIZE_VARIES"
                                             : "items NULL with len > 0");
        return -EINVAL;
    }
    weft_stream_init(&s->base, &array_ops, WEFT_F_SEND);
    s->items_ = items;
    s->item_size_ = item_size;
    s->len_ = len;
    s->at_ = 0;
    return 0;
}

/* ---- range ------------------------------------------------------------------- */

static weft_next range_poll_next_many(weft_stream *st, weft_cx *cx, void *items, size_t max,
                                      size_t *n)
{
    weft_iter_range *s = (weft_iter_range *)st;
    *n = 0;
    if (weft__chaos_pending_stream(st, cx))
        return WEFT_NEXT_PENDING;
    if (s->left_ == 0)
        return WEFT_NEXT_DONE;
    uint64_t *out = items;
    while (*n < max && s->left_ > 0) {
        out[(*n)++] = s->next_;
        if (--s->left_ > 0)
            s->next_ += s->step_; /* only while another item follows: no overflow */
    }
    return WEFT_NEXT_ITEM;
}

static weft_next range_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    size_t n;
    return range_poll_next_many(st, cx, item, 1, &n);
}

static void range_size_hint(const weft_stream *st, size_t *lo, size_t *hi)
{
    hint(lo, hi, ((const weft_iter_range *)st)->left_);
}

static const weft_stream_ops range_ops = {
    .name = "weft_iter_range",
    .item_size = sizeof(uint64_t),
    .poll_next = range_poll_next,
    .size_hint = range_size_hint,
    .poll_next_many = range_poll_next_many,
};

int weft_iter_range_init(weft_iter_range *s, uint64_t lo, uint64_t hi, uint64_t step)
{
    if (!s || step == 0) {
        WEFT_MISUSE("weft_iter_range_init: %s", !s ? "stream NULL" : "step 0");
        return -EINVAL;
    }
    weft_stream_init(&s->base, &range_ops, WEFT_F_SEND);
    s->next_ = lo;
    s->step_ = step;
    s->left_ = lo < hi ? (hi - lo - 1) / step + 1 : 0;
    return 0;
}

/* ---- repeat, once --------------------------------------------------------------- */

static weft_next repeat_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    weft_iter_repeat *s = (weft_iter_repeat *)st;
    if (weft__chaos_pending_stream(st, cx))
        return WEFT_NEXT_PENDING;
    if (s->left_ == 0)
        return WEFT_NEXT_DONE;
    if (s->left_ != WEFT_ITER_FOREVER)
        s->left_--;
    if (s->size_)
        memcpy(item, s->value_, s->size_);
    return WEFT_NEXT_ITEM;
}

static void repeat_size_hint(const weft_stream *st, size_t *lo, size_t *hi)
{
    hint(lo, hi, ((const weft_iter_repeat *)st)->left_); /* forever: (MAX, MAX) */
}

static size_t repeat_item_size(const weft_stream *st)
{
    return ((const weft_iter_repeat *)st)->size_;
}

static const weft_stream_ops repeat_ops = {
    .name = "weft_iter_repeat",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = repeat_poll_next,
    .size_hint = repeat_size_hint,
    .item_size_of = repeat_item_size,
};

int weft_iter_repeat_init(weft_iter_repeat *s, const void *value, size_t size, uint64_t times)
{
    if (!s || size > WEFT_ITER_VALUE_MAX || (size > 0 && !value)) {
        WEFT_MISUSE("weft_iter_repeat_init / once_init: %s",
                    !s ? "stream NULL" : size > WEFT_ITER_VALUE_MAX
                                             ? "size > WEFT_ITER_VALUE_MAX"
                                             : "value NULL with size > 0");
        return -EINVAL;
    }
    weft_stream_init(&s->base, &repeat_ops, WEFT_F_SEND);
    s->left_ = times;
    s->size_ = size;
    if (size)
        memcpy(s->value_, value, size);
    return 0;
}

int weft_iter_once_init(weft_iter_once *s, const void *value, size_t size)
{
    return weft_iter_repeat_init(s, value, size, 1);
}

/* ---- empty ------------------------------------------------------------------------ */

static weft_next empty_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    (void)item;
    if (weft__chaos_pending_stream(st, cx))
        return WEFT_NEXT_PENDING;
    return WEFT_NEXT_DONE;
}

static void empty_size_hint(const weft_stream *st, size_t *lo, size_t *hi)
{
    (void)st;
    *lo = *hi = 0;
}

static size_t empty_item_size(const weft_stream *st)
{
    return ((const weft_iter_empty *)st)->item_size_;
}

static const weft_stream_ops empty_ops = {
    .name = "weft_iter_empty",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = empty_poll_next,
    .size_hint = empty_size_hint,
    .item_size_of = empty_item_size,
};

int weft_iter_empty_init(weft_iter_empty *s, size_t item_size)
{
    if (!s || item_size == WEFT_ITEM_SIZE_VARIES) {
        WEFT_MISUSE("weft_iter_empty_init: %s",
                    !s ? "stream NULL" : "item_size WEFT_ITEM_SIZE_VARIES");
        return -EINVAL;
    }
    weft_stream_init(&s->base, &empty_ops, WEFT_F_SEND);
    s->item_size_ = item_size;
    return 0;
}
