/* Private to the iter/ combinators: the checks every init makes. */
#ifndef WEFT_ITER_COMB_H
#define WEFT_ITER_COMB_H

#include <string.h>

#include "weft/iter.h"
#include "core/errors.h"

/* 0 when `self` and `up` are set and well formed (and `fn` when the
 * combinator takes one, `need_fn`), else -EINVAL with the misuse
 * reported under `who`. */
static inline int comb_check(const char *who, const void *self, const weft_stream *up,
                             bool need_fn, bool fn_set)
{
    (void)who; /* only in the misuse report (debug builds) */
    if (!self || !up || !up->ops || !up->ops->poll_next || (need_fn && !fn_set)) {
        WEFT_MISUSE("%s: NULL combinator, upstream or callback", who);
        return -EINVAL;
    }
    return 0;
}

/* 0 when `up`'s items fit a combinator's buffer, else -EINVAL. */
static inline int comb_check_held(const char *who, const weft_stream *up)
{
    (void)who;
    size_t sz = weft_stream_item_size(up);
    if (sz > WEFT_ITER_ITEM_MAX) {
        WEFT_MISUSE("%s: items of stream '%s' are %zu bytes, more than WEFT_ITER_ITEM_MAX",
                    who, up->ops->name, sz);
        return -EINVAL;
    }
    return 0;
}

/* The flags of a combinator over `a` (and `b`, may be NULL): Send only
 * when every part is. */
static inline uint32_t comb_flags(const weft_stream *a, const weft_stream *b)
{
    return a->flags & (b ? b->flags : WEFT_F_SEND) & WEFT_F_SEND;
}

/* How many `in_size`-byte inputs a batch poll may pull into the caller's
 * own array of `max` outputs of `out_size` bytes, placed one input in
 * (from byte in_size on) so that output i, written at i * out_size, never
 * overlaps input i or any later one: 0 when out_size > in_size or
 * in_size is 0 (the combinator uses its buffer instead). Callers keep it
 * only when it beats WEFT_ITER_ITEM_MAX / in_size. */
static inline size_t comb_shifted_cap(size_t max, size_t in_size, size_t out_size)
{
    if (in_size == 0 || out_size > in_size || max > SIZE_MAX / (out_size ? out_size : 1))
        return 0;
    size_t k = max * out_size / in_size;
    return k > 1 ? k - 1 : 0;
}

/* Where a batch poll of a map-like stage pulls its inputs: the caller's
 * array shifted by one input (comb_shifted_cap) when that holds more than
 * the stage's buffer, else the buffer. Returns the base, *cap the count. */
static inline unsigned char *comb_batch_in(unsigned char *items, size_t max, size_t in_size,
                                           size_t out_size, unsigned char *buf, size_t *cap)
{
    size_t shifted = comb_shifted_cap(max, in_size, out_size);
    size_t held = in_size ? WEFT_ITER_ITEM_MAX / in_size : max;
    if (held > max)
        held = max;
    if (shifted > held) {
        *cap = shifted;
        return items + in_size;
    }
    *cap = held;
    return buf;
}

/* memcpy of one item, with the common sizes copied inline. */
static inline void comb_copy(void *dst, const void *src, size_t sz)
{
    switch (sz) {
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    case 16: memcpy(dst, src, 16); break;
    default: memcpy(dst, src, sz); break;
    }
}

static inline size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

#endif
