/* weft — the stream (async iterator) contract.
 *
 * A stream is polled with `poll_next(s, cx, item)`, which returns
 * WEFT_NEXT_PENDING (after arranging for cx's waker to be woken),
 * WEFT_NEXT_ITEM (one item of `item_size` bytes written to `item`) or
 * WEFT_NEXT_DONE (exhausted; never polled again). All iteration state lives
 * in the stream itself, which is pinned after its first poll like a future.
 * Because there is no second state machine per item, dropping a pending
 * "next" loses nothing: the stream's state is intact for the next poll.
 */
#ifndef WEFT_ITER_H
#define WEFT_ITER_H

#include "weft/future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weft_next {
    WEFT_NEXT_PENDING = 0,
    WEFT_NEXT_ITEM = 1,
    WEFT_NEXT_DONE = 2
} weft_next;

typedef struct weft_stream weft_stream;

typedef weft_next weft_poll_next_fn(weft_stream *s, weft_cx *cx, void *item);
typedef void weft_stream_drop_fn(weft_stream *s);
/* Bounds on the items left: lower in *lo, upper in *hi (SIZE_MAX: none). */
typedef void weft_size_hint_fn(const weft_stream *s, size_t *lo, size_t *hi);

typedef struct weft_stream_ops {
    const char *name;                /* never NULL */
    size_t item_size;                /* bytes written per item (may be 0) */
    weft_poll_next_fn *poll_next;    /* required */
    weft_stream_drop_fn *drop;       /* NULL: nothing to free */
    weft_size_hint_fn *size_hint;    /* NULL: (0, SIZE_MAX) */
} weft_stream_ops;

/* First member of every stream struct; flags as for futures (WEFT_F_SEND). */
struct weft_stream {
    const weft_stream_ops *ops;
    uint32_t flags;
    uint32_t pin_tag_;
};

/* Initialise a stream header, as weft_future_init does for futures. */
static inline void weft_stream_init(weft_stream *s, const weft_stream_ops *ops,
                                    uint32_t flags)
{
    s->ops = ops;
    s->flags = flags & WEFT_F_USER_MASK;
    s->pin_tag_ = 0;
}

/* Poll for the next item. Debug builds report a stream moved after its
 * first poll, or polled after DONE, by name (and return PENDING). */
WEFT_API weft_next weft_stream_poll_next(weft_stream *s, weft_cx *cx, void *item);

/* Drop `s` (calls ops->drop if set): exactly once, by its owner. */
static inline void weft_stream_drop(weft_stream *s)
{
    if (s->ops->drop)
        s->ops->drop(s);
}

/* (lo, hi) bounds on the items left; (0, SIZE_MAX) when unknown. */
WEFT_API void weft_stream_size_hint(const weft_stream *s, size_t *lo, size_t *hi);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_ITER_H */
