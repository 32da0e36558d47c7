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

static inline size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

#endif
