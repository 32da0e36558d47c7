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
/* Up to `max` (>= 1) items at once into `items` (an array of item_size
 * strides): ITEM with *n >= 1 written, or PENDING / DONE with *n == 0.
 * A stream whose items come in batches (a channel) drains many per wake
 * and charges the task's budget once. All-or-nothing per item like
 * poll_next: items not written stay in the stream. */
typedef weft_next weft_poll_next_many_fn(weft_stream *s, weft_cx *cx, void *items,
                                         size_t max, size_t *n);

/* Item size of streams whose item size is fixed per instance rather than
 * per type (a channel receiver). */
#define WEFT_ITEM_SIZE_VARIES ((size_t)-1)
typedef size_t weft_stream_item_size_fn(const weft_stream *s);

typedef struct weft_stream_ops {
    const char *name;                /* never NULL */
    size_t item_size;                /* bytes written per item (may be 0), or
                                        WEFT_ITEM_SIZE_VARIES with item_size_of */
    weft_poll_next_fn *poll_next;    /* required */
    weft_stream_drop_fn *drop;       /* NULL: nothing to free */
    weft_size_hint_fn *size_hint;    /* NULL: (0, SIZE_MAX) */
    weft_poll_next_many_fn *poll_next_many; /* NULL: poll_next in a loop */
    weft_stream_item_size_fn *item_size_of; /* only with WEFT_ITEM_SIZE_VARIES */
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

/* Bytes `s` writes per item. */
static inline size_t weft_stream_item_size(const weft_stream *s)
{
    return s->ops->item_size == WEFT_ITEM_SIZE_VARIES ? s->ops->item_size_of(s)
                                                      : s->ops->item_size;
}

/* (lo, hi) bounds on the items left; (0, SIZE_MAX) when unknown. */
WEFT_API void weft_stream_size_hint(const weft_stream *s, size_t *lo, size_t *hi);

/* Poll for up to `max` items (see weft_poll_next_many_fn): the stream's
 * own batch poll, or poll_next repeated while it yields items (stopping
 * at the first PENDING or DONE after one item, which it leaves to the
 * next call). `max` 0 is misuse (reported; PENDING with *n = 0). */
WEFT_API weft_next weft_stream_poll_next_many(weft_stream *s, weft_cx *cx, void *items,
                                              size_t max, size_t *n);

/* ---- next: a future over a stream --------------------------------------- */

/* The next item of `s` as a future: output int, 1 when an item was
 * written to `item`, 0 when the stream is DONE. The stream is borrowed
 * (it must outlive the future and not move); the future is Send when the
 * stream is. Cancel safety: nothing is lost — an item leaves the stream
 * only in the poll that completes this future, so dropping it pending
 * leaves every item in the stream. */
typedef struct weft_stream_next {
    weft_future base;
    weft_stream *s_;
    void *item_;
} weft_stream_next;

WEFT_API void weft_stream_next_init(weft_stream_next *f, weft_stream *s, void *item);

/* ---- sinks ---------------------------------------------------------------- */

/* A sink takes items, futures-rs' Sink: `poll_ready` until it says there
 * is room for one item, then `start_send` that item (it never waits),
 * then `poll_flush` to see everything started delivered; `poll_close`
 * flushes and closes. Each poll returns READY with the result in *res
 * (0, or a negative errno such as -EPIPE: the receiving end is gone) or
 * PENDING after arranging a wake. An item is the sink's from a
 * successful start_send on; one refused (an error) stays the caller's.
 * A sink is pinned after its first poll, like a stream; its header is
 * the first member of the sink's struct. Channel senders are sinks. */
typedef struct weft_sink weft_sink;

typedef weft_poll weft_sink_poll_fn(weft_sink *s, weft_cx *cx, int *res);
typedef int weft_sink_start_send_fn(weft_sink *s, const void *item);
typedef void weft_sink_drop_fn(weft_sink *s);

typedef size_t weft_sink_item_size_fn(const weft_sink *s);

typedef struct weft_sink_ops {
    const char *name;                  /* never NULL */
    size_t item_size;                  /* bytes read per item (may be 0), or
                                          WEFT_ITEM_SIZE_VARIES with item_size_of */
    weft_sink_poll_fn *poll_ready;     /* required */
    weft_sink_start_send_fn *start_send; /* required */
    weft_sink_poll_fn *poll_flush;     /* required */
    weft_sink_poll_fn *poll_close;     /* required */
    weft_sink_drop_fn *drop;           /* NULL: nothing to free */
    weft_sink_item_size_fn *item_size_of; /* only with WEFT_ITEM_SIZE_VARIES */
} weft_sink_ops;

struct weft_sink {
    const weft_sink_ops *ops;
    uint32_t flags;
    uint32_t pin_tag_;
};

static inline void weft_sink_init(weft_sink *s, const weft_sink_ops *ops, uint32_t flags)
{
    s->ops = ops;
    s->flags = flags & WEFT_F_USER_MASK;
    s->pin_tag_ = 0;
}

/* Bytes `s` reads per item. */
static inline size_t weft_sink_item_size(const weft_sink *s)
{
    return s->ops->item_size == WEFT_ITEM_SIZE_VARIES ? s->ops->item_size_of(s)
                                                      : s->ops->item_size;
}

static inline weft_poll weft_sink_poll_ready(weft_sink *s, weft_cx *cx, int *res)
{
    return s->ops->poll_ready(s, cx, res);
}
/* Only after poll_ready said READY with 0; returns 0 (taken) or <0. */
static inline int weft_sink_start_send(weft_sink *s, const void *item)
{
    return s->ops->start_send(s, item);
}
static inline weft_poll weft_sink_poll_flush(weft_sink *s, weft_cx *cx, int *res)
{
    return s->ops->poll_flush(s, cx, res);
}
static inline weft_poll weft_sink_poll_close(weft_sink *s, weft_cx *cx, int *res)
{
    return s->ops->poll_close(s, cx, res);
}
static inline void weft_sink_drop(weft_sink *s)
{
    if (s->ops->drop)
        s->ops->drop(s);
}

/* ==== sources ============================================================== */
/* (see iter/source.c) */

/* ==== consumers ============================================================ */
/* (see iter/consume.c) */

/* ==== combinators ========================================================== */
/* (see iter/ combinator files) */

#ifdef __cplusplus
}
#endif
#endif /* WEFT_ITER_H */
