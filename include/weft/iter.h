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
/* Streams made from values (iter/source.c) and from an "async next"
 * function (iter/from_fn.c). Each is a struct in caller storage with an
 * init function returning 0 or -EINVAL (bad arguments; the struct is then
 * untouched and must not be polled or dropped). Poll, drop and size_hint
 * through the weft_stream_* functions; drop each exactly once. They are
 * polled by one task at a time (whoever owns the stream); every one but
 * from_fn is Send (from_fn: the flags given). Cancel safety of
 * weft_stream_next over each: nothing is lost — the position is in the
 * stream, and an item leaves it only in the poll that returns it. */

/* Items of `item_size` bytes from a caller array of `len` items, in order,
 * then DONE. The array is borrowed: it must outlive the stream and not
 * change while it is read. item_size 0 yields `len` empty items. */
typedef struct weft_iter_array {
    weft_stream base;
    const unsigned char *items_;
    size_t item_size_, len_, at_;
} weft_iter_array;

WEFT_API WEFT_NODISCARD int weft_iter_array_init(weft_iter_array *s, const void *items,
                                                 size_t item_size, size_t len);

/* uint64_t items lo, lo + step, ... while < hi (none when lo >= hi), then
 * DONE. step 0 is -EINVAL. Never overflows. */
typedef struct weft_iter_range {
    weft_stream base;
    uint64_t next_, step_, left_;
} weft_iter_range;

WEFT_API WEFT_NODISCARD int weft_iter_range_init(weft_iter_range *s, uint64_t lo, uint64_t hi,
                                                 uint64_t step);

/* Copies of one value of `size` (<= WEFT_ITER_VALUE_MAX) bytes, `times`
 * times (WEFT_ITER_FOREVER: never DONE), then DONE. The value is copied at
 * init. */
#define WEFT_ITER_VALUE_MAX 64
#define WEFT_ITER_FOREVER UINT64_MAX
typedef struct weft_iter_repeat {
    weft_stream base;
    uint64_t left_;
    size_t size_;
    unsigned char value_[WEFT_ITER_VALUE_MAX];
} weft_iter_repeat;

WEFT_API WEFT_NODISCARD int weft_iter_repeat_init(weft_iter_repeat *s, const void *value,
                                                  size_t size, uint64_t times);

/* One copy of a value of `size` (<= WEFT_ITER_VALUE_MAX) bytes, then DONE. */
typedef weft_iter_repeat weft_iter_once;
WEFT_API WEFT_NODISCARD int weft_iter_once_init(weft_iter_once *s, const void *value,
                                                size_t size);

/* DONE at the first poll; its items would be `item_size` bytes. */
typedef struct weft_iter_empty {
    weft_stream base;
    size_t item_size_;
} weft_iter_empty;

WEFT_API WEFT_NODISCARD int weft_iter_empty_init(weft_iter_empty *s, size_t item_size);

/* ---- from_fn: a stream from an "async next" function ------------------------ */

/* `n` bytes aligned for any scalar (internal; `.b` is the bytes). */
#define WEFT__ITER_BYTES(name, n)                                             \
    union {                                                                   \
        unsigned char b[n];                                                   \
        long double ld_;                                                      \
        void *p_;                                                             \
        uint64_t u_;                                                          \
    } name

/* An "async next": initialise, in `storage` (next_size bytes aligned to
 * next_align, as given to weft_iter_from_fn_init), a future whose output
 * is an int: 1 after it wrote one item to `item`, 0 when there are no more
 * items, or a negative errno (the stream then ends). Returns 0, or a
 * negative errno (no future was made; the stream ends). `self` is the
 * context given at init. */
typedef int weft_iter_next_fn(void *self, weft_future *storage, void *item);

/* Bytes of in-stream storage for the next future and for one item. */
#define WEFT_ITER_FROM_FN_STORAGE 256
#define WEFT_ITER_FROM_FN_ITEM_MAX 64

/* A poll_next stream over an async next (the essays' "streamify"). The
 * next future in flight lives inside this (pinned) stream, and so does the
 * item it writes; both are copied out only in the poll that returns ITEM.
 * So dropping the consumer's weft_stream_next (or any consumer) while a
 * next future is pending loses nothing: the next poll of the stream
 * resumes that same future. Item: item_size bytes. Flags: those given
 * (pass WEFT_F_SEND only if `next`, `self` and its futures may run on any
 * worker). The drop drops a next future in flight. weft_iter_from_fn_error
 * says why it ended early (0: it ended normally or has not ended). */
typedef struct weft_iter_from_fn {
    weft_stream base;
    weft_iter_next_fn *next_;
    void *self_;
    size_t item_size_;
    int err_;
    bool inflight_;
    WEFT__ITER_BYTES(fut_, WEFT_ITER_FROM_FN_STORAGE);
    WEFT__ITER_BYTES(item_, WEFT_ITER_FROM_FN_ITEM_MAX);
} weft_iter_from_fn;

/* 0, -EINVAL (s or next NULL, or next_align not a power of two), or
 * -ENOSPC: next_size > WEFT_ITER_FROM_FN_STORAGE, next_align > _Alignof(long double) or
 * item_size > WEFT_ITER_FROM_FN_ITEM_MAX (the future or item does not fit
 * inside the stream). */
WEFT_API WEFT_NODISCARD int weft_iter_from_fn_init(weft_iter_from_fn *s, weft_iter_next_fn *next,
                                                   void *self, size_t next_size,
                                                   size_t next_align, size_t item_size,
                                                   uint32_t flags);

/* The negative errno that ended `s` early (from `next` or its future's
 * output), else 0. */
static inline int weft_iter_from_fn_error(const weft_iter_from_fn *s)
{
    return s->err_;
}

/* ==== consumers ============================================================ */
/* Futures that drain a stream (iter/consume.c). Each borrows its stream:
 * the stream must outlive the future and not move once polled; the owner
 * still drops the stream. Each is Send when the stream is (its function
 * and ctx then run on whichever worker polls it). Init returns 0 or
 * -EINVAL (NULL arguments; a stream whose item size exceeds
 * WEFT_ITER_BATCH_BYTES for the batching ones; the future is then
 * untouched). Each poll charges the task's coop budget once per batch it
 * takes (weft_coop_proceed), so a stream that is always ready still lets
 * other tasks run. Cancel safety: an item leaves the stream only in the
 * poll that also hands it on (to the function, the count or the buffer),
 * so dropping a consumer pending leaves every item it has not handled in
 * the stream; what it handled stays handled (in your accumulator or
 * buffer; count's running total is lost with it). */

/* Bytes of items fold, for_each and count take per batch (their buffer). */
#define WEFT_ITER_BATCH_BYTES 256

/* Callbacks take their context first, as every weft callback does. The
 * predicate of any/all is the combinators' weft_iter_pred_fn (below). */
typedef void weft_iter_fold_fn(void *ctx, void *acc, const void *item);
typedef void weft_iter_each_fn(void *ctx, const void *item);
typedef bool weft_iter_pred_fn(void *ctx, const void *item);

/* fold: fn(ctx, acc, item) for every item, with `acc` yours (updated in
 * place, read it after READY). Output: size_t, the items folded.
 * for_each: fn(ctx, item) for every item. Output: size_t, the items.
 * count: output size_t, the items (each discarded). */
typedef struct weft_iter_fold {
    weft_future base;
    weft_stream *s_;
    weft_iter_fold_fn *fold_;
    weft_iter_each_fn *each_;
    void *acc_, *ctx_;
    size_t n_;
    WEFT__ITER_BYTES(buf_, WEFT_ITER_BATCH_BYTES);
} weft_iter_fold;
typedef weft_iter_fold weft_iter_for_each;
typedef weft_iter_fold weft_iter_count;

WEFT_API WEFT_NODISCARD int weft_iter_fold_init(weft_iter_fold *f, weft_stream *s, void *acc,
                                                weft_iter_fold_fn *fn, void *ctx);
WEFT_API WEFT_NODISCARD int weft_iter_for_each_init(weft_iter_for_each *f, weft_stream *s,
                                                    weft_iter_each_fn *fn, void *ctx);
WEFT_API WEFT_NODISCARD int weft_iter_count_init(weft_iter_count *f, weft_stream *s);

/* collect: items into the caller's `buf` of `cap` items, stored as they
 * come (`*n`, updated in every poll, says how many are there, even after
 * a drop). Output: int, 0 when the stream ended, or -ENOSPC when `buf`
 * filled while the stream may still have items: those stay in the stream
 * (it is not polled past cap; a stream whose size_hint says 0 left counts
 * as ended). Batches straight into `buf` (poll_next_many). cap 0 is fine. */
typedef struct weft_iter_collect {
    weft_future base;
    weft_stream *s_;
    unsigned char *buf_;
    size_t cap_, stride_;
    size_t *n_;
} weft_iter_collect;

WEFT_API WEFT_NODISCARD int weft_iter_collect_init(weft_iter_collect *f, weft_stream *s,
                                                   void *buf, size_t cap, size_t *n);

/* any: output bool, true at the first item `pred` accepts (then it stops:
 * the items after it stay in the stream), false when the stream ended.
 * all: false at the first item `pred` rejects, else true. They take one
 * item per poll_next (never a batch), so stopping early loses nothing.
 * The deciding item is passed to pred and then gone. */
typedef struct weft_iter_any {
    weft_future base;
    weft_stream *s_;
    weft_iter_pred_fn *pred_;
    void *ctx_;
    bool want_;
    WEFT__ITER_BYTES(item_, WEFT_ITER_BATCH_BYTES);
} weft_iter_any;
typedef weft_iter_any weft_iter_all;

WEFT_API WEFT_NODISCARD int weft_iter_any_init(weft_iter_any *f, weft_stream *s,
                                               weft_iter_pred_fn *pred, void *ctx);
WEFT_API WEFT_NODISCARD int weft_iter_all_init(weft_iter_all *f, weft_stream *s,
                                               weft_iter_pred_fn *pred, void *ctx);

/* ---- WEFT_FOR_AWAIT: a loop over a stream in an async fn ------------------- */

/* Inside a WEFT_ASYNC_FN body (self, cx and self->co in scope):
 *
 *   WEFT_FOR_AWAIT(&self->rx.base, &self->v) {
 *       self->sum += self->v;          // may contain awaits of its own
 *   }
 *
 * polls the stream where it is (its struct in *self, or borrowed, pinned
 * either way), suspending while it is PENDING, and runs the body with
 * each item written to `item` (which must live in *self too), until DONE.
 * Each poll charges the coop budget once. `break` leaves the loop (the
 * stream keeps its remaining items), `continue` polls the next. The
 * stream is not dropped by the loop: it is the caller's (drop it with
 * WEFT_ASYNC_FN_WITH_DROP if *self owns it). One per source line, on a
 * line of its own (the line is the resume point). Needs weft/co.h (as
 * WEFT_ASYNC_FN does); iter.h does not include it. Cancel safety: dropping
 * the coroutine while it waits loses no item (the stream keeps them). */
#define WEFT__ITER_CAT2(a, b) a##b
#define WEFT__ITER_CAT(a, b) WEFT__ITER_CAT2(a, b)
#define WEFT_FOR_AWAIT(stream, item)                                          \
    WEFT__FALLTHROUGH;                                                        \
    case __LINE__:                                                            \
    for (weft_next WEFT__ITER_CAT(weft__for_r_, __LINE__);                    \
         (self->co.line = __LINE__,                                           \
          WEFT__ITER_CAT(weft__for_r_, __LINE__) =                            \
              weft__for_await_next((stream), cx, (item))) != WEFT_NEXT_DONE;) \
        if (WEFT__ITER_CAT(weft__for_r_, __LINE__) == WEFT_NEXT_PENDING)      \
            return WEFT_PENDING;                                              \
        else

/* One poll of WEFT_FOR_AWAIT (internal): PENDING when the budget is spent
 * (the task was woken), else the stream's answer. */
static inline weft_next weft__for_await_next(weft_stream *s, weft_cx *cx, void *item)
{
    if (!weft_coop_proceed(cx))
        return WEFT_NEXT_PENDING;
    return weft_stream_poll_next(s, cx, item);
}

/* ==== combinators ========================================================== */
/* Combinators: streams over a borrowed upstream stream. Each is a struct
 * in caller storage whose first member is its weft_stream header, set up
 * by weft_iter_<name>_init(&c, upstream, ...). The upstream is borrowed:
 * it must outlive the combinator and not move once polled; dropping a
 * combinator drops only what it owns (then's pending future), never its
 * upstream, which stays usable. Flags: the AND of the parts' WEFT_F_SEND.
 * No allocation, ever: a pipeline of several is one caller struct,
 *
 *   struct { weft_iter_map m; weft_iter_filter f; weft_iter_take t; } p;
 *   weft_iter_map_init(&p.m, &rx.base, twice, NULL, sizeof(int));
 *   weft_iter_filter_init(&p.f, &p.m.base, is_odd, NULL);
 *   weft_iter_take_init(&p.t, &p.f.base, 10);   // poll &p.t.base
 *
 * Cancel safety (all): an item leaves a combinator only in the poll that
 * returns it, and any item taken from upstream but not yet returned (a
 * zip's first half, then's pending future) stays inside the combinator,
 * so dropping a weft_stream_next over it loses nothing and a fresh next
 * continues where it stopped. Who may call: the inits and polls from one
 * thread at a time (the owner), like any stream; user callbacks run
 * inside the poll, on the polling thread, and must not block or re-poll
 * the combinator. Inits return 0, or -EINVAL (misuse reported in debug
 * builds: NULL pointer or callback, an item larger than
 * WEFT_ITER_ITEM_MAX where one must be held, mismatched item sizes); on
 * failure the struct is not a stream (do not poll or drop it). Items
 * a combinator holds between polls (map's input, zip's first half) are
 * copied through a buffer of WEFT_ITER_ITEM_MAX bytes inside it. */
#define WEFT_ITER_ITEM_MAX 128

typedef union weft_iter_buf_ {
    max_align_t align_;
    unsigned char b[WEFT_ITER_ITEM_MAX];
} weft_iter_buf_;

/* fn(ctx, in, out): write the output item for input `in` into `out`. */
typedef void weft_iter_map_fn(void *ctx, const void *in, void *out);
/* pred(ctx, item) (declared with the consumers above): keep (filter,
 * take_while) or skip (skip_while) it. */
/* fn(ctx, in, out): true with `out` written to yield an item, false to
 * drop `in`. */
typedef bool weft_iter_filter_map_fn(void *ctx, const void *in, void *out);
/* fn(ctx, item): look at each item as it passes. */
typedef void weft_iter_inspect_fn(void *ctx, const void *item);

/* map: items fn(upstream item), each of `out_item_size` bytes. Upstream
 * items up to WEFT_ITER_ITEM_MAX bytes. Batches natively: a
 * poll_next_many maps a batch of the upstream's, pulled into the caller's
 * array one input ahead of the outputs when the items do not grow (so fn
 * never sees `in` and `out` overlap), else into the buffer. */
typedef struct weft_iter_map {
    weft_stream base;
    weft_stream *up_;
    weft_iter_map_fn *fn_;
    void *ctx_;
    size_t in_size_, out_size_;
    weft_iter_buf_ buf_;
} weft_iter_map;
WEFT_API WEFT_NODISCARD int weft_iter_map_init(weft_iter_map *m, weft_stream *up,
                                               weft_iter_map_fn *fn, void *ctx,
                                               size_t out_item_size);

/* filter: the upstream's items for which pred is true (item size
 * unchanged, up to WEFT_ITER_ITEM_MAX). Rejections charge the task's
 * cooperative budget, so a long run of them yields instead of starving
 * the worker. Batches natively: an upstream batch is pulled into the
 * caller's array and compacted in place (a batch rejected whole charges
 * the budget once; after a PENDING the array may hold rejected items). */
typedef struct weft_iter_filter {
    weft_stream base;
    weft_stream *up_;
    weft_iter_pred_fn *pred_;
    void *ctx_;
    size_t size_;
    weft_iter_buf_ buf_;
} weft_iter_filter;
WEFT_API WEFT_NODISCARD int weft_iter_filter_init(weft_iter_filter *f, weft_stream *up,
                                                  weft_iter_pred_fn *pred, void *ctx);

/* filter_map: fn's outputs (of `out_item_size` bytes) for the upstream
 * items it accepts; budget as filter. Batches natively, its inputs placed
 * as map's. */
typedef struct weft_iter_filter_map {
    weft_stream base;
    weft_stream *up_;
    weft_iter_filter_map_fn *fn_;
    void *ctx_;
    size_t in_size_, out_size_;
    weft_iter_buf_ buf_;
} weft_iter_filter_map;
WEFT_API WEFT_NODISCARD int weft_iter_filter_map_init(weft_iter_filter_map *f,
                                                      weft_stream *up,
                                                      weft_iter_filter_map_fn *fn,
                                                      void *ctx, size_t out_item_size);

/* Batch-callback forms of map and filter: the user's function is called
 * once per batch instead of once per item, so a pipeline of them costs
 * one indirect call per stage per batch. Same streams otherwise (items,
 * DONE, PENDING, budget, flags, borrowing; cancel safety and who may
 * call: as every combinator above); a single-item poll calls fn with
 * n == 1.
 * fn(ctx, in, out, n): write the n output items for the n input items
 * `in` (arrays of the item sizes) into `out`. When the item sizes are
 * equal the batch is mapped in place: in == out, so out[i] may depend
 * only on in[i], read before out[i] is written (an element-wise loop
 * does this); otherwise `in` is map_many's own buffer, apart from `out`.
 * Both are aligned as the caller's array (the buffer: max-aligned). */
typedef void weft_iter_map_many_fn(void *ctx, const void *in, void *out, size_t n);
/* fn(ctx, items, n): keep some of the n items, moved to the front of
 * `items` in their order, and return how many (<= n; more is reported
 * and counted as n). */
typedef size_t weft_iter_filter_many_fn(void *ctx, void *items, size_t n);

/* map_many: as map, with a batch fn. A batch of equal-size items is
 * pulled into the caller's array and mapped in place (as many as the
 * caller asked for); otherwise into the buffer (as many as it holds). */
typedef struct weft_iter_map_many {
    weft_stream base;
    weft_stream *up_;
    weft_iter_map_many_fn *fn_;
    void *ctx_;
    size_t in_size_, out_size_;
    weft_iter_buf_ buf_;
} weft_iter_map_many;
WEFT_API WEFT_NODISCARD int weft_iter_map_many_init(weft_iter_map_many *m, weft_stream *up,
                                                    weft_iter_map_many_fn *fn, void *ctx,
                                                    size_t out_item_size);

/* filter_many: as filter, with a batch fn that compacts each upstream
 * batch (pulled into the caller's array) in place. */
typedef struct weft_iter_filter_many {
    weft_stream base;
    weft_stream *up_;
    weft_iter_filter_many_fn *fn_;
    void *ctx_;
    size_t size_;
    weft_iter_buf_ buf_;
} weft_iter_filter_many;
WEFT_API WEFT_NODISCARD int weft_iter_filter_many_init(weft_iter_filter_many *f,
                                                       weft_stream *up,
                                                       weft_iter_filter_many_fn *fn,
                                                       void *ctx);

/* inspect: the upstream's items unchanged, fn called on each as it
 * passes (any item size; batches natively). */
typedef struct weft_iter_inspect {
    weft_stream base;
    weft_stream *up_;
    weft_iter_inspect_fn *fn_;
    void *ctx_;
} weft_iter_inspect;
WEFT_API WEFT_NODISCARD int weft_iter_inspect_init(weft_iter_inspect *i, weft_stream *up,
                                                   weft_iter_inspect_fn *fn, void *ctx);

/* take: the first `n` items, then DONE without polling upstream again
 * (any item size; batches natively). */
typedef struct weft_iter_take {
    weft_stream base;
    weft_stream *up_;
    uint64_t left_;
} weft_iter_take;
WEFT_API WEFT_NODISCARD int weft_iter_take_init(weft_iter_take *t, weft_stream *up,
                                                uint64_t n);

/* skip: all but the first `n` items (up to WEFT_ITER_ITEM_MAX bytes;
 * skipped ones charge the budget). */
typedef struct weft_iter_skip {
    weft_stream base;
    weft_stream *up_;
    uint64_t left_;
    weft_iter_buf_ buf_;
} weft_iter_skip;
WEFT_API WEFT_NODISCARD int weft_iter_skip_init(weft_iter_skip *s, weft_stream *up,
                                                uint64_t n);

/* take_while: items while pred is true; the first false one is dropped
 * and the stream is DONE (upstream not polled again). Its batches fill
 * the caller's array one upstream item at a time (never an upstream
 * batch: the items after the false one stay the upstream's). */
typedef struct weft_iter_take_while {
    weft_stream base;
    weft_stream *up_;
    weft_iter_pred_fn *pred_;
    void *ctx_;
    size_t size_;
    bool done_;
    weft_iter_buf_ buf_;
} weft_iter_take_while;
WEFT_API WEFT_NODISCARD int weft_iter_take_while_init(weft_iter_take_while *t,
                                                      weft_stream *up,
                                                      weft_iter_pred_fn *pred, void *ctx);

/* skip_while: drops items while pred is true, then yields the first false
 * one and every item after it (pred no longer called). Batches natively
 * (a batch skipped whole charges the budget once). */
typedef struct weft_iter_skip_while {
    weft_stream base;
    weft_stream *up_;
    weft_iter_pred_fn *pred_;
    void *ctx_;
    size_t size_;
    bool skipping_;
    weft_iter_buf_ buf_;
} weft_iter_skip_while;
WEFT_API WEFT_NODISCARD int weft_iter_skip_while_init(weft_iter_skip_while *s,
                                                      weft_stream *up,
                                                      weft_iter_pred_fn *pred, void *ctx);

/* enumerate: items (index, item): a uint64_t index counting from 0, then
 * the upstream item at offset WEFT_ITER_ENUM_OFFSET (8: an item needing
 * more alignment than 8 is read with memcpy). Item size 8 + upstream's.
 * Batches natively (an upstream batch is spread into pairs in place). */
#define WEFT_ITER_ENUM_OFFSET sizeof(uint64_t)
typedef struct weft_iter_enumerate {
    weft_stream base;
    weft_stream *up_;
    uint64_t next_;
} weft_iter_enumerate;
WEFT_API WEFT_NODISCARD int weft_iter_enumerate_init(weft_iter_enumerate *e,
                                                     weft_stream *up);

/* fuse: the upstream's items; once upstream answered DONE it is never
 * polled again. Through weft_stream_poll_next a fuse answers DONE once,
 * like every stream; weft_iter_fuse_poll_next may be called again after
 * that and answers DONE every time (for loops that poll a stream without
 * tracking whether it ended). */
typedef struct weft_iter_fuse {
    weft_stream base;
    weft_stream *up_;
    bool done_;
} weft_iter_fuse;
WEFT_API WEFT_NODISCARD int weft_iter_fuse_init(weft_iter_fuse *f, weft_stream *up);
WEFT_API weft_next weft_iter_fuse_poll_next(weft_iter_fuse *f, weft_cx *cx, void *item);
static inline bool weft_iter_fuse_is_done(const weft_iter_fuse *f) { return f->done_; }

/* chain: every item of `a`, then every item of `b` (same item size; `b`
 * is first polled once `a` is DONE). */
typedef struct weft_iter_chain {
    weft_stream base;
    weft_stream *a_, *b_;
    bool a_done_;
} weft_iter_chain;
WEFT_API WEFT_NODISCARD int weft_iter_chain_init(weft_iter_chain *c, weft_stream *a,
                                                 weft_stream *b);

/* zip: items (a item, b item): a's item at offset 0 and b's right after
 * it, at offset weft_stream_item_size(a); DONE as soon as either is DONE
 * (b is not polled once a is DONE). A's item, taken while b is pending,
 * waits inside the zip (a's items up to WEFT_ITER_ITEM_MAX bytes). */
typedef struct weft_iter_zip {
    weft_stream base;
    weft_stream *a_, *b_;
    size_t a_size_, b_size_;
    bool have_a_;
    weft_iter_buf_ a_item_;
} weft_iter_zip;
WEFT_API WEFT_NODISCARD int weft_iter_zip_init(weft_iter_zip *z, weft_stream *a,
                                               weft_stream *b);

/* then: an async map. For each upstream item, fn(ctx, item, storage,
 * WEFT_ITER_THEN_FUT_MAX) initialises a future in `storage` (inside the
 * combinator, max-aligned) and returns it; its output, `out_item_size`
 * bytes, is the then's item. One future at a time: the upstream is polled
 * again only once it completed. The pending future lives in the
 * combinator: dropping a next over it loses nothing (the next poll polls
 * the same future); dropping the then drops it. fn must return a future
 * at `storage` whose output size is out_item_size, and whose flags
 * include WEFT_F_SEND when `fut_flags` does (the then is Send only when
 * its upstream and fut_flags both are); a future that breaks this is
 * reported (debug builds) and dropped, and the then answers DONE. */
#define WEFT_ITER_THEN_FUT_MAX 256
typedef weft_future *weft_iter_then_fn(void *ctx, const void *item, void *storage,
                                       size_t size);
typedef struct weft_iter_then {
    weft_stream base;
    weft_stream *up_;
    weft_iter_then_fn *fn_;
    void *ctx_;
    size_t out_size_;
    weft_future *fut_; /* the pending future in fut_st_, or NULL */
    weft_iter_buf_ buf_;
    union {
        max_align_t align_;
        unsigned char b[WEFT_ITER_THEN_FUT_MAX];
    } fut_st_;
} weft_iter_then;
WEFT_API WEFT_NODISCARD int weft_iter_then_init(weft_iter_then *t, weft_stream *up,
                                                weft_iter_then_fn *fn, void *ctx,
                                                size_t out_item_size, uint32_t fut_flags);

/* chunks: items of `n` (>= 1) upstream items at a time, the last one
 * shorter: each item is a uint64_t count (1..n) and then that many
 * upstream items, at offset WEFT_ITER_CHUNK_OFFSET; item size
 * WEFT_ITER_CHUNK_OFFSET + n * (upstream item size). The chunk being
 * filled is kept in `buf` (caller storage, at least n * upstream item
 * size bytes, borrowed like the upstream), so a dropped next loses no
 * part of it. Fills from upstream batches (poll_next_many).
 * chunks_timeout also ends a chunk early, short, once `timeout` passed
 * since its first item arrived and the upstream is pending (a weft_sleep
 * inside, armed per chunk; it must be polled inside a runtime). `timeout`
 * is a weft_duration (WEFT_MS(20)); 0 means none. */
#define WEFT_ITER_CHUNK_OFFSET sizeof(uint64_t)
/* Room for the timeout's weft_sleep (weft/time.h includes this header,
 * so the type cannot be named here; iter/chunks.c checks the size). */
#define WEFT_ITER_SLEEP_MAX 128
typedef struct weft_iter_chunks {
    weft_stream base;
    weft_stream *up_;
    unsigned char *buf_;
    size_t n_, in_size_, len_;
    uint64_t timeout_; /* a weft_duration; 0: no timeout */
    bool up_done_;
    bool armed_; /* the sleep runs for the chunk being filled */
    union {
        max_align_t align_;
        unsigned char b[WEFT_ITER_SLEEP_MAX];
    } sleep_; /* a weft_sleep when timeout_ != 0 */
} weft_iter_chunks;
WEFT_API WEFT_NODISCARD int weft_iter_chunks_init(weft_iter_chunks *c, weft_stream *up,
                                                  size_t n, void *buf, size_t buf_size);
WEFT_API WEFT_NODISCARD int weft_iter_chunks_timeout_init(weft_iter_chunks *c,
                                                          weft_stream *up, size_t n,
                                                          void *buf, size_t buf_size,
                                                          uint64_t timeout);

/* flatten: every item of every inner stream, in turn. The upstream's
 * items are `weft_stream *` (inner streams, borrowed: each must stay
 * alive and in place until flatten moved past it, and is never dropped by
 * it) whose items are `item_size` bytes; the upstream is polled for the
 * next inner stream once the current one is DONE. An inner stream that is
 * NULL or of another item size is reported (debug builds) and ends the
 * flatten (DONE). */
typedef struct weft_iter_flatten {
    weft_stream base;
    weft_stream *up_;
    weft_stream *inner_; /* the current inner stream, or NULL */
    size_t size_;
} weft_iter_flatten;
WEFT_API WEFT_NODISCARD int weft_iter_flatten_init(weft_iter_flatten *f, weft_stream *up,
                                                   size_t item_size);

/* ==== sinks ================================================================ */
/* Moving items into sinks (iter/forward.c, iter/tee.c, iter/sink_fn.c).
 * Each is a struct in caller storage with an init returning 0 or -EINVAL
 * (misuse reported in debug builds: NULL pointer or callback, mismatched
 * item sizes, items larger than WEFT_ITER_ITEM_MAX; the struct is then
 * untouched: do not poll or drop it). Streams and sinks they are given
 * are borrowed: they must outlive the struct and not move once polled,
 * and their owner still drops them. Flags: the AND of the parts'
 * WEFT_F_SEND. Polled by one task at a time, like any future or sink;
 * callbacks run inside that poll. No allocation. */

/* forward: a future that moves every item of `s` into `sink`, output int:
 * 0 once the stream is DONE and the sink flushed (and closed, with
 * `close`), or the sink's first error (-EPIPE: its receiving end is
 * gone). Each step asks the sink for room (poll_ready) BEFORE taking an
 * item from the stream, then hands the item over (start_send) in the same
 * poll; it flushes the sink whenever the stream is pending, and at the
 * end. Charges the coop budget once per item. Cancel safety: nothing is
 * lost — forward holds no item between polls, so dropping it pending
 * leaves every item either still in the stream or accepted by the sink
 * (flush the sink, or forward again, to deliver what it accepted). An
 * item the sink refused with an error is kept in the future:
 * weft_iter_forward_refused copies it out. */
typedef struct weft_iter_forward {
    weft_future base;
    weft_stream *s_;
    weft_sink *sink_;
    size_t size_;
    bool close_, done_, refused_;
    weft_iter_buf_ buf_;
} weft_iter_forward;
WEFT_API WEFT_NODISCARD int weft_iter_forward_init(weft_iter_forward *f, weft_stream *s,
                                                   weft_sink *sink, bool close);
/* True with the item copied to `item` when the sink refused one (the
 * future then completed with that error). */
WEFT_API bool weft_iter_forward_refused(const weft_iter_forward *f, void *item);

/* tee: a sink that writes each item to both `a` and `b` (same item size).
 * poll_ready is READY only when both sides are (a side that is ready
 * keeps its room while the other is waited for), so start_send hands the
 * item to both at once and the tee holds nothing. poll_flush and
 * poll_close flush / close both (each side closed once). The first error
 * of either side is the tee's and sticks: every later poll returns it
 * (an item a took before b refused it stays a's). Cancel safety: the tee
 * holds no item, so dropping whatever polls it loses nothing; dropping
 * the tee drops neither side. */
typedef struct weft_iter_tee {
    weft_sink base;
    weft_sink *a_, *b_;
    size_t size_;
    int err_;
    bool a_closed_, b_closed_;
} weft_iter_tee;
WEFT_API WEFT_NODISCARD int weft_iter_tee_init(weft_iter_tee *t, weft_sink *a, weft_sink *b);

/* sink_from_fn: a sink whose send is an async function (a coroutine,
 * WEFT_ASYNC_FN) kept inside the pinned sink: the essays' Tee written
 * with await. start_send copies the item into the sink and calls
 * send(self, item copy, storage), which initialises in `storage`
 * (send_size bytes aligned to send_align, inside the sink) a future whose
 * output is an int, 0 or a negative errno, and returns 0 or a negative
 * errno. poll_ready and poll_flush poll that future to completion;
 * poll_close does so and closes the sink (start_send then fails with
 * -EPIPE). The first error sticks. Item: item_size bytes (up to
 * WEFT_ITER_ITEM_MAX), copied into the sink at start_send and stable
 * there until the send future completes. Flags: those given (pass
 * WEFT_F_SEND only when `send`, `self` and its futures may run on any
 * worker). Cancel safety: the send future in flight lives in the sink,
 * so dropping whatever polls the sink loses nothing: the next poll of
 * the sink resumes it. Dropping the sink drops a send in flight (that
 * item may be half sent: flush first). */
#define WEFT_ITER_SINK_FN_STORAGE 256
typedef int weft_iter_send_fn(void *self, const void *item, weft_future *storage);
typedef struct weft_iter_sink_fn {
    weft_sink base;
    weft_iter_send_fn *send_;
    void *self_;
    size_t item_size_;
    int err_;
    bool inflight_, closed_;
    weft_iter_buf_ item_;
    union {
        max_align_t align_;
        unsigned char b[WEFT_ITER_SINK_FN_STORAGE];
    } fut_;
} weft_iter_sink_fn;
/* 0, -EINVAL (NULL sink or send, send_align not a power of two, item_size
 * over WEFT_ITER_ITEM_MAX) or -ENOSPC (send_size over
 * WEFT_ITER_SINK_FN_STORAGE or send_align over max_align_t's). */
WEFT_API WEFT_NODISCARD int weft_iter_sink_from_fn(weft_iter_sink_fn *s, weft_iter_send_fn *send,
                                                   void *self, size_t send_size,
                                                   size_t send_align, size_t item_size,
                                                   uint32_t flags);

/* sink_map ("with"): a sink of `in_item_size`-byte items (up to
 * WEFT_ITER_ITEM_MAX) that writes fn(ctx, item) into `down` (a map_fn
 * writes the downstream item, of down's item size up to
 * WEFT_ITER_ITEM_MAX). Readiness, flush, close and errors are down's; it
 * holds nothing between calls (fn runs inside start_send). */
typedef struct weft_iter_sink_map {
    weft_sink base;
    weft_sink *down_;
    weft_iter_map_fn *fn_;
    void *ctx_;
    size_t in_size_;
    weft_iter_buf_ buf_;
} weft_iter_sink_map;
WEFT_API WEFT_NODISCARD int weft_iter_sink_map_init(weft_iter_sink_map *m, weft_sink *down,
                                                    weft_iter_map_fn *fn, void *ctx,
                                                    size_t in_item_size);

/* ==== concurrency ========================================================== */
/* Stages that run several per-item futures at once (iter/buffered.c,
 * iter/spawn_map.c), each a stream over a borrowed upstream like the
 * combinators above (same init rules, same borrowing, -EINVAL on bad
 * input with the misuse reported). The futures are made by a then-like
 * fn(ctx, item, storage, size): it initialises, at `storage` (max-aligned,
 * `size` bytes), a future whose output of `out_item_size` bytes is the
 * stage's item for that upstream item, and returns it. Up to `n` are in
 * flight; the upstream is polled for more only while fewer are. Order:
 * WEFT_ITER_ORDERED yields outputs in input order (an early finisher
 * waits for those before it), WEFT_ITER_UNORDERED in completion order.
 * No allocation per item in the stage itself (spawn_map's tasks are the
 * runtime's). Who may call: the owner, one thread at a time; fn runs
 * inside the poll. Cancel safety of weft_stream_next over either: nothing
 * is lost — an upstream item, once taken, lives on as a future inside the
 * stage (or its task), and an output leaves the stage only in the poll
 * that returns it. Dropping the stage drops (or aborts) every future it
 * still holds: their outputs are lost, the upstream is untouched. */
#include "weft/rt.h" /* weft_join (rt.h does not include this header) */

#define WEFT_ITER_UNORDERED 0u
#define WEFT_ITER_ORDERED 1u

/* (internal) x rounded up to max_align_t. */
#define WEFT__ITER_RUP(x)                                                     \
    (((x) + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t))

/* buffered / buffer_unordered: the futures live in the caller's `slots`,
 * an array of n slots of WEFT_ITER_BUFFERED_SLOT_SIZE(fut_size,
 * out_item_size) bytes each, max-aligned, borrowed like the upstream.
 * `fut_size` is the most fn's futures need (fn gets exactly that as
 * `size`); ordered mode keeps a finished future's output in its slot
 * until its turn. Each future is polled with its slot's own waker, and a
 * poll polls only the futures woken since the last one (as
 * weft_future_set does; one allocation at init holds that wake state), so
 * n may be in the hundreds. Flags: the upstream's
 * Send AND fut_flags' (fn must then make Send futures: one that is not,
 * or is not at `storage`, or has another output size, is reported and
 * dropped, and the stage answers DONE). Item: out_item_size bytes. */
typedef struct weft_iter_buffered_slot_ {
    weft_future *fut; /* the future in flight here, or NULL */
    uint64_t seq;     /* input index of its item */
    uint8_t state;    /* free, running, ready (output held) */
} weft_iter_buffered_slot_;
#define WEFT_ITER_BUFFERED_SLOT_SIZE(fut_size, out_item_size)                 \
    (WEFT__ITER_RUP(sizeof(weft_iter_buffered_slot_)) + WEFT__ITER_RUP(fut_size) + \
     WEFT__ITER_RUP(out_item_size))

typedef struct weft_iter_buffered {
    weft_stream base;
    weft_stream *up_;
    weft_iter_then_fn *fn_;
    void *ctx_;
    unsigned char *slots_;
    size_t n_, slot_size_, fut_size_, out_size_, live_;
    uint64_t seq_in_, seq_out_;
    size_t scan_; /* unordered: where the next search starts */
    bool ordered_, up_done_;
    weft_iter_buf_ buf_;
    struct weft__slot_wake *wake_; /* the slot wakers' shared state */
} weft_iter_buffered;

/* 0, -EINVAL (NULL pointers, n 0, upstream items over
 * WEFT_ITER_ITEM_MAX, unknown order, slots not max-aligned or
 * slots_size < n * WEFT_ITER_BUFFERED_SLOT_SIZE(fut_size, out_item_size))
 * or -ENOMEM (the wake state). */
WEFT_API WEFT_NODISCARD int weft_iter_buffered_init(weft_iter_buffered *b, weft_stream *up,
                                                    weft_iter_then_fn *fn, void *ctx,
                                                    size_t fut_size, size_t out_item_size,
                                                    uint32_t fut_flags, size_t n,
                                                    unsigned order, void *slots,
                                                    size_t slots_size);

/* The futures in flight (for tests and gauges). */
static inline size_t weft_iter_buffered_in_flight(const weft_iter_buffered *b)
{
    return b->live_;
}

/* spawn_map: the parallel pipeline stage. Each item's future (made by fn
 * in a buffer inside the stage, `fut_size` bytes at most
 * WEFT_ITER_THEN_FUT_MAX, and Send) is spawned as its own task on `rt`
 * (NULL: the current runtime), so up to n run at once on any worker; the
 * stage keeps their join handles in the caller's `slots` (n of
 * weft_iter_spawn_slot, borrowed like the upstream) and yields their
 * outputs (out_item_size bytes) in input or completion order. A poll
 * looks at each handle with one atomic load and re-registers the waker
 * only when it changed, so n may be in the hundreds. Dropping the stage
 * aborts the tasks still running and drops their handles (each task's
 * future is dropped at its next scheduling point, its memory freed by
 * the runtime): nothing leaks. A spawn that fails, or a task that ends
 * cancelled (the runtime shut down), ends the stage: it aborts the rest
 * and answers DONE, and weft_iter_spawn_map_error says why. Flags: the
 * upstream's Send. */
typedef struct weft_iter_spawn_slot {
    weft_join join;   /* while busy and not ready */
    uint64_t seq;
    int status;       /* the task's, once ready */
    bool busy, registered, ready;
    weft_iter_buf_ out; /* ordered mode: an output waiting for its turn */
} weft_iter_spawn_slot;

typedef struct weft_iter_spawn_map {
    weft_stream base;
    weft_stream *up_;
    weft_iter_then_fn *fn_;
    void *ctx_;
    weft_rt *rt_;
    weft_iter_spawn_slot *slots_;
    size_t n_, fut_size_, out_size_, live_, scan_;
    uint64_t seq_in_, seq_out_;
    bool ordered_, up_done_, have_waker_;
    int err_;
    weft_waker waker_; /* the waker the handles were registered with */
    weft_iter_buf_ buf_;
    union {
        max_align_t align_;
        unsigned char b[WEFT_ITER_THEN_FUT_MAX];
    } fut_st_;
} weft_iter_spawn_map;

/* 0 or -EINVAL (NULL pointers, n 0, fut_size 0 or over
 * WEFT_ITER_THEN_FUT_MAX, upstream or output items over
 * WEFT_ITER_ITEM_MAX, unknown order, slots_len < n). */
WEFT_API WEFT_NODISCARD int weft_iter_spawn_map_init(weft_iter_spawn_map *m, weft_stream *up,
                                                     weft_rt *rt,
                                                     weft_iter_then_fn *fn, void *ctx,
                                                     size_t fut_size, size_t out_item_size,
                                                     size_t n, unsigned order,
                                                     weft_iter_spawn_slot *slots,
                                                     size_t slots_len);

static inline size_t weft_iter_spawn_map_in_flight(const weft_iter_spawn_map *m)
{
    return m->live_;
}
/* The negative errno that ended `m` early (a spawn's, or -ECANCELED),
 * else 0. */
static inline int weft_iter_spawn_map_error(const weft_iter_spawn_map *m)
{
    return m->err_;
}

/* ==== future sets and join ================================================ */
/* future_set: a set of futures polled as a stream of their completions,
 * futures-rs' FuturesUnordered (iter/future_set.c). The owner pushes
 * futures in at any time; each item is one completion: a
 * weft_future_set_head (the tag given to push, and the slot the future
 * was in, free again now) and then, at WEFT_FUTURE_SET_OUT_OFFSET, that
 * future's output of `out_size` bytes. Item size:
 * WEFT_FUTURE_SET_ITEM_SIZE(out_size).
 *
 * Storage: the futures live in the caller's `slots`, an array of n slots
 * of WEFT_FUTURE_SET_SLOT_SIZE(fut_size) bytes each, max-aligned,
 * borrowed (it must outlive the set and not move). push initialises the
 * future INTO a free slot through a then-like fn (fn(ctx, arg, storage,
 * size), the same weft_iter_then_fn buffered takes) rather than taking a
 * pointer to a future the caller placed somewhere: the set then owns the
 * future's storage as well as the future from the push on, so nothing the
 * caller frees or reuses can pull a future out from under it, and one
 * size check at init covers every future it will ever hold.
 *
 * Wakes: each slot has its own small waker. Waking it marks the slot in
 * the set's atomic ready bitmask and wakes the task that last polled the
 * set (held in a weft_atomic_waker), from any thread. A poll polls only
 * the futures marked since the last poll (FuturesUnordered's
 * ready-to-run queue), each at most once — a future that wakes itself
 * while polled is polled again by the next poll, not this one — in round
 * robin from where the last poll stopped, and charges the task's coop
 * budget once per future it polls (weft_coop_proceed). The bitmask and
 * the registered waker sit in one allocation made at init (the only
 * one), shared through a weft_rc with every slot waker: a clone a timer,
 * a channel or another thread still holds after its future finished, or
 * after the set was dropped, keeps that state alive and wakes nothing.
 *
 * Empty: a poll of an empty set answers DONE, as futures-rs' does. Unlike
 * other streams that DONE is not final: push again and the set yields
 * again (so wrap it in no combinator that takes DONE as the end while
 * you still push). weft_future_set_len tells "empty for now" from
 * anything else; push wakes the task that last polled the set.
 *
 * Flags: fut_flags' WEFT_F_SEND (every future pushed must then be Send).
 * Who may call: the owner, one thread at a time: init, push, len, poll,
 * drop. Slot wakers: any thread, any time. Cancel safety of
 * weft_stream_next over it: nothing is lost — a future's output is
 * written to the item only in the poll that returns it, and until then
 * the future stays in its slot. Dropping the set drops every future
 * still in it (their outputs are lost). */
typedef struct weft_future_set_slot_ {
    weft_future *fut; /* the future in this slot, or NULL: free */
    uint64_t tag;     /* push's tag */
} weft_future_set_slot_;
#define WEFT_FUTURE_SET_SLOT_SIZE(fut_size)                                   \
    (WEFT__ITER_RUP(sizeof(weft_future_set_slot_)) + WEFT__ITER_RUP(fut_size))

/* The head of every item. */
typedef struct weft_future_set_head {
    uint64_t tag; /* the tag the future was pushed with */
    size_t slot;  /* the slot it was in (0..n-1) */
} weft_future_set_head;
#define WEFT_FUTURE_SET_OUT_OFFSET WEFT__ITER_RUP(sizeof(weft_future_set_head))
#define WEFT_FUTURE_SET_ITEM_SIZE(out_size) (WEFT_FUTURE_SET_OUT_OFFSET + (out_size))

typedef struct weft_future_set {
    weft_stream base;
    struct weft__slot_wake *wake_; /* shared with the slot wakers */
    unsigned char *slots_;
    size_t n_, slot_size_, fut_size_, out_size_, len_, cursor_;
} weft_future_set;

/* 0, -EINVAL (NULL set or slots, n 0, slots not max-aligned, slots_size
 * < n * WEFT_FUTURE_SET_SLOT_SIZE(fut_size); misuse reported) or -ENOMEM
 * (the shared wake state). The set is empty. Pair with weft_stream_drop
 * (exactly once, after a successful init). */
WEFT_API WEFT_NODISCARD int weft_future_set_init(weft_future_set *s, size_t fut_size,
                                                 size_t out_size, uint32_t fut_flags,
                                                 size_t n, void *slots, size_t slots_size);

/* Push one future: fn(ctx, arg, storage, fut_size) initialises it in a
 * free slot and returns it; it is polled by the set's next poll. Returns
 * 0; -ENOSPC when all n slots hold futures (nothing called; poll some
 * out first); -EINVAL (NULL set or fn, or fn made no future at
 * `storage`, one of another output size, or one not Send in a Send set:
 * reported, and the future it made is dropped). Owner only. */
WEFT_API WEFT_NODISCARD int weft_future_set_push(weft_future_set *s, weft_iter_then_fn *fn,
                                                 void *ctx, const void *arg, uint64_t tag);

/* The futures in the set (pushed, not yet yielded). 0: a poll answers
 * DONE. */
static inline size_t weft_future_set_len(const weft_future_set *s)
{
    return s->len_;
}
static inline bool weft_future_set_is_empty(const weft_future_set *s)
{
    return s->len_ == 0;
}

/* join_futures: a future that polls n caller futures concurrently in the
 * polling task and is READY (no output) once every one is (iter/join.c).
 * The caller fills `branches` (borrowed: it must outlive the join and not
 * move): per branch the future (in the caller's storage, pinned from the
 * join's first poll) and where its output goes (NULL only for output
 * size 0). From a successful init on the join owns the futures: it
 * drops each as soon as it is READY (its output is then in `out` and
 * `done` is set) and, when it is dropped itself, the ones not finished
 * (their outputs are lost; those already written stay). Each poll polls
 * every branch not yet done with the poll's own waker (no per-branch
 * wakers: meant for a handful of branches) after one weft_coop_proceed.
 * Flags: the AND of the futures' WEFT_F_SEND. Who may call: the owner,
 * like any future. Cancel safety: the unfinished branches are dropped
 * with it; what each lost is that future's own cancel safety. */
typedef struct weft_join_branch {
    weft_future *fut; /* yours to set */
    void *out;        /* yours to set: its output's home */
    bool done;        /* the join's: READY seen, output written */
} weft_join_branch;

typedef struct weft_join_futures {
    weft_future base;
    weft_join_branch *br_;
    size_t n_, left_;
} weft_join_futures;

/* 0 or -EINVAL (NULL join, NULL branches with n > 0, a branch whose
 * future is NULL or malformed, or whose out is NULL for a non-empty
 * output; misuse reported; the futures then stay the caller's). n 0: READY
 * at the first poll. */
WEFT_API WEFT_NODISCARD int weft_join_futures_init(weft_join_futures *j,
                                                   weft_join_branch *branches, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_ITER_H */
