/* The future contract's runtime side: checked polling (debug builds report
 * a future or stream moved after its first poll, or polled after it
 * finished), the same check for a future handed to weft to be polled in
 * place, and the ready-made leaf futures weft_yield and weft_ready. */
#include "weft/future.h"
#include "weft/iter.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/future.h"

#include <stdint.h>
#include <string.h>

/* ---- checked polling ------------------------------------------------------ */

#if WEFT_DEBUG_LEVEL >= 1
static uint32_t pin_tag_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uint32_t t = (uint32_t)(a ^ (a >> 32));
    return t ? t : 1u;
}
#endif

/* Returns false when the poll must be refused (misuse reported). */
static bool check_pinned(uint32_t *flags, uint32_t *tag, const void *self,
                         const char *kind, const char *name)
{
#if WEFT_DEBUG_LEVEL >= 1
    if (*flags & WEFT_F__DONE) {
        WEFT_MISUSE("%s '%s' polled after it finished", kind, name);
        return false;
    }
    if (*flags & WEFT_F__POLLED) {
        if (*tag != pin_tag_of(self)) {
            WEFT_MISUSE("%s '%s' moved after its first poll (it is pinned)",
                        kind, name);
            return false;
        }
    } else {
        *flags |= WEFT_F__POLLED;
        *tag = pin_tag_of(self);
    }
#else
    /* Release builds keep only the "pinned" bit (spawn refuses a future
     * that was already polled). */
    (void)tag, (void)self, (void)kind, (void)name;
    *flags |= WEFT_F__POLLED;
#endif
    return true;
}

/* Debug builds remember that a future or stream finished (its poll
 * returned `final`), so a later poll is reported instead of run. Returns
 * `result`. */
static inline int finish(uint32_t *flags, int result, int final)
{
#if WEFT_DEBUG_LEVEL >= 1
    if (result == final)
        *flags |= WEFT_F__DONE;
#else
    (void)flags, (void)final;
#endif
    return result;
}

int weft__future_check_in_place(const weft_future *fut, const char *what)
{
    if (!weft__future_well_formed(fut))
        return -EINVAL;
#if WEFT_DEBUG_LEVEL >= 1
    /* The refusals weft_future_poll would make, made before the caller
     * waits on a poll that would never run. */
    if (fut->flags & WEFT_F__DONE) {
        WEFT_MISUSE("%s of future '%s' that already finished", what,
                    weft__future_name(fut));
        return -EINVAL;
    }
    if ((fut->flags & WEFT_F__POLLED) && fut->pin_tag_ != pin_tag_of(fut)) {
        WEFT_MISUSE("%s of future '%s' that moved after its first poll (it is pinned)",
                    what, weft__future_name(fut));
        return -EINVAL;
    }
#else
    (void)what;
#endif
    return 0;
}

weft_poll weft_future_poll(weft_future *f, weft_cx *cx, void *out)
{
    if (!check_pinned(&f->flags, &f->pin_tag_, f, "future", f->ops->name))
        return WEFT_PENDING;
    return (weft_poll)finish(&f->flags, f->ops->poll(f, cx, out), WEFT_READY);
}

/* Bit 27 of a stream's flags: its poll_next answered DONE after items the
 * default poll_next_many loop returned; the next poll reports that DONE
 * without polling the stream again (a DONE stream is never polled). */
#define WEFT_F__DONE_HELD 0x08000000u

weft_next weft_stream_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    if (!check_pinned(&s->flags, &s->pin_tag_, s, "stream", s->ops->name))
        return WEFT_NEXT_PENDING;
    if (s->flags & WEFT_F__DONE_HELD)
        return (weft_next)finish(&s->flags, WEFT_NEXT_DONE, WEFT_NEXT_DONE);
    return (weft_next)finish(&s->flags, s->ops->poll_next(s, cx, item), WEFT_NEXT_DONE);
}

void weft_stream_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    if (s->ops->size_hint) {
        s->ops->size_hint(s, lo, hi);
    } else {
        *lo = 0;
        *hi = SIZE_MAX;
    }
}

weft_next weft_stream_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                     size_t *n)
{
    *n = 0;
    if (max == 0) {
        WEFT_MISUSE("weft_stream_poll_next_many: max 0 (stream %s)", s->ops->name);
        return WEFT_NEXT_PENDING;
    }
    if (!check_pinned(&s->flags, &s->pin_tag_, s, "stream", s->ops->name))
        return WEFT_NEXT_PENDING;
    if (s->flags & WEFT_F__DONE_HELD)
        return (weft_next)finish(&s->flags, WEFT_NEXT_DONE, WEFT_NEXT_DONE);
    if (s->ops->poll_next_many) {
        weft_next r = s->ops->poll_next_many(s, cx, items, max, n);
        return (weft_next)finish(&s->flags, r, WEFT_NEXT_DONE);
    }
    /* Repeat poll_next while it yields; a PENDING or DONE after the first
     * item is not reported now: a DONE is held for the next call (the
     * stream is not polled again), and a PENDING poll arranged a wake that
     * costs one extra poll. */
    size_t stride = weft_stream_item_size(s);
    unsigned char *out = items;
    while (*n < max) {
        weft_next r = s->ops->poll_next(s, cx, out + *n * stride);
        if (r != WEFT_NEXT_ITEM) {
            if (*n > 0) {
                if (r == WEFT_NEXT_DONE)
                    s->flags |= WEFT_F__DONE_HELD;
                return WEFT_NEXT_ITEM;
            }
            return (weft_next)finish(&s->flags, r, WEFT_NEXT_DONE);
        }
        (*n)++;
    }
    return WEFT_NEXT_ITEM;
}

static weft_poll stream_next_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_stream_next *nx = (weft_stream_next *)f;
    weft_next r = weft_stream_poll_next(nx->s_, cx, nx->item_);
    if (r == WEFT_NEXT_PENDING)
        return WEFT_PENDING;
    *(int *)out = r == WEFT_NEXT_ITEM;
    return WEFT_READY;
}

static const weft_future_ops stream_next_ops = {
    .name = "weft_stream_next",
    .out_size = sizeof(int),
    .poll = stream_next_poll,
};

void weft_stream_next_init(weft_stream_next *f, weft_stream *s, void *item)
{
    weft_future_init(&f->base, &stream_next_ops, s->flags & WEFT_F_SEND);
    f->s_ = s;
    f->item_ = item;
}

/* ---- yield and ready ------------------------------------------------------- */

static weft_poll yield_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_yield *y = (weft_yield *)f;
    (void)out;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (y->yielded)
        return WEFT_READY;
    y->yielded = true;
    /* Waking while running marks the task NOTIFIED; the worker requeues it
     * at the back of its queue after this poll returns. */
    weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops yield_ops = { "weft_yield", 0, yield_poll, NULL, NULL };

void weft_yield_init(weft_yield *y)
{
    weft_future_init(&y->base, &yield_ops, WEFT_F_SEND);
    y->yielded = false;
}

static weft_poll ready_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_ready *r = (weft_ready *)f;
    (void)cx;
    if (r->size)
        memcpy(out, r->value, r->size);
    return WEFT_READY;
}

static size_t ready_out_size(const weft_future *f)
{
    return ((const weft_ready *)f)->size;
}

static const weft_future_ops ready_ops = {
    "weft_ready", WEFT_OUT_SIZE_VARIES, ready_poll, NULL, ready_out_size,
};

int weft_ready_init(weft_ready *r, const void *value, size_t size)
{
    if (!r || size > WEFT_READY_MAX || (size > 0 && !value))
        return -EINVAL;
    weft_future_init(&r->base, &ready_ops, WEFT_F_SEND);
    r->size = size;
    if (size)
        memcpy(r->value, value, size);
    return 0;
}
