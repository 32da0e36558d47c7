/* future_set: a set of futures polled as a stream of completions, with a
 * waker per slot so a poll polls only the futures that were woken
 * (iter/slot_wake.h: the ready bitmask, its memory model, the lifetime
 * of a slot waker that outlives its future or the set).
 *
 * Owner-side state: which slots hold futures (slot->fut), len_, a stack
 * of free slot indexes (the slot-wake state's `free`: free[0 .. n-len)),
 * and cursor_, where the next poll starts looking. A poll moves the bits
 * woken since the last one into `local` and polls those futures from
 * cursor_ round robin, each once, clearing its bit first; the first READY
 * ends the poll with its item, the bits not reached stay for the next
 * poll. A wake during the poll (the future's own, or another thread's) is
 * seen by the next poll: each future is polled at most once per poll.
 *
 * Concurrency: init, push, poll and drop are the owner's (one thread at
 * a time); the slot wakers run anywhere, any time (slot_wake.h). */
#include "iter/comb.h"
#include "iter/slot_wake.h"
#include "core/future.h"

#include <stdint.h>

typedef weft__slot_wake fs_wake;

static weft_future_set_slot_ *slot_at(const weft_future_set *s, size_t i)
{
    return (weft_future_set_slot_ *)(void *)(s->slots_ + i * s->slot_size_);
}

static unsigned char *slot_fut(weft_future_set_slot_ *sl)
{
    return (unsigned char *)sl + WEFT__ITER_RUP(sizeof *sl);
}

/* ---- the stream ------------------------------------------------------------ */

static void fs_drop(weft_stream *st)
{
    weft_future_set *s = (weft_future_set *)st;
    fs_wake *w = s->wake_;
    if (!w)
        return;
    for (size_t i = 0; i < s->n_; i++) {
        weft_future_set_slot_ *sl = slot_at(s, i);
        if (sl->fut) {
            weft_future_drop(sl->fut);
            sl->fut = NULL;
        }
    }
    s->len_ = 0;
    s->wake_ = NULL;
    weft__slot_wake_release(w);
}

/* Poll slot i (its local bit set). Returns ITEM (written), PENDING to go
 * on, or DONE meaning "stop: the budget is spent" (the bit stays). */
static weft_next poll_slot(weft_future_set *s, weft_cx *cx, size_t i, void *item)
{
    fs_wake *w = s->wake_;
    weft_future_set_slot_ *sl = slot_at(s, i);
    if (!sl->fut) { /* a stale wake of a future already gone */
        weft__slot_wake_clear_local(w, i);
        return WEFT_NEXT_PENDING;
    }
    if (!weft_coop_proceed(cx)) {
        s->cursor_ = i; /* resume here; coop_proceed woke the task */
        return WEFT_NEXT_DONE;
    }
    weft__slot_wake_clear_local(w, i);
    weft_waker sw = weft__slot_wake_waker(w, i);
    weft_cx ccx = *cx;
    ccx.waker = &sw;
    unsigned char *out = (unsigned char *)item + WEFT_FUTURE_SET_OUT_OFFSET;
    weft_poll r = weft_future_poll(sl->fut, &ccx, out);
    cx->budget = ccx.budget;
    if (r != WEFT_READY)
        return WEFT_NEXT_PENDING;
    weft_future_set_head h = { sl->tag, i };
    memcpy(item, &h, sizeof h);
    weft_future_drop(sl->fut);
    sl->fut = NULL;
    w->free[s->n_ - s->len_] = i;
    s->len_--;
    s->cursor_ = i + 1 == s->n_ ? 0 : i + 1;
    return WEFT_NEXT_ITEM;
}

/* Poll the ready slots in [lo, hi). ITEM, DONE (budget spent) or PENDING
 * (none ready). */
static weft_next poll_range(weft_future_set *s, weft_cx *cx, size_t lo, size_t hi, void *item)
{
    for (size_t i = weft__slot_wake_next_local(s->wake_, lo, hi); i < hi;
         i = weft__slot_wake_next_local(s->wake_, i + 1, hi)) {
        weft_next r = poll_slot(s, cx, i, item);
        if (r != WEFT_NEXT_PENDING)
            return r;
    }
    return WEFT_NEXT_PENDING;
}

static weft_next fs_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    weft_future_set *s = (weft_future_set *)st;
    if (s->len_ == 0)
        return WEFT_NEXT_DONE;
    weft__slot_wake_begin(s->wake_, cx);
    size_t c = s->cursor_;
    weft_next r = poll_range(s, cx, c, s->n_, item);
    if (r == WEFT_NEXT_PENDING)
        r = poll_range(s, cx, 0, c, item);
    return r == WEFT_NEXT_ITEM ? WEFT_NEXT_ITEM : WEFT_NEXT_PENDING;
}

/* Its own batch poll, so a DONE after items is never held for a later
 * call (a push may come first; see the header). */
static weft_next fs_poll_next_many(weft_stream *st, weft_cx *cx, void *items, size_t max,
                                   size_t *n)
{
    weft_future_set *s = (weft_future_set *)st;
    size_t isz = WEFT_FUTURE_SET_ITEM_SIZE(s->out_size_);
    *n = 0;
    while (*n < max) {
        weft_next r = fs_poll_next(st, cx, (unsigned char *)items + *n * isz);
        if (r != WEFT_NEXT_ITEM)
            return *n ? WEFT_NEXT_ITEM : r;
        (*n)++;
    }
    return WEFT_NEXT_ITEM;
}

static void fs_size_hint(const weft_stream *st, size_t *lo, size_t *hi)
{
    const weft_future_set *s = (const weft_future_set *)st;
    *lo = s->len_;
    *hi = SIZE_MAX; /* more may be pushed */
}

static size_t fs_item_size(const weft_stream *st)
{
    return WEFT_FUTURE_SET_ITEM_SIZE(((const weft_future_set *)st)->out_size_);
}

static const weft_stream_ops fs_ops = {
    .name = "weft_future_set",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = fs_poll_next,
    .drop = fs_drop,
    .size_hint = fs_size_hint,
    .poll_next_many = fs_poll_next_many,
    .item_size_of = fs_item_size,
};

int weft_future_set_init(weft_future_set *s, size_t fut_size, size_t out_size,
                         uint32_t fut_flags, size_t n, void *slots, size_t slots_size)
{
    size_t ss = WEFT_FUTURE_SET_SLOT_SIZE(fut_size);
    if (!s || !slots || n == 0 || ((uintptr_t)slots % _Alignof(max_align_t)) != 0 ||
        fut_size > SIZE_MAX / 4 || out_size > SIZE_MAX / 4 || n > SIZE_MAX / ss ||
        slots_size < n * ss) {
        WEFT_MISUSE("weft_future_set_init: NULL set or slots, n 0, slots not max-aligned, "
                    "or slots_size below n * WEFT_FUTURE_SET_SLOT_SIZE(fut_size)");
        return -EINVAL;
    }
    fs_wake *w = weft__slot_wake_new(n);
    if (!w)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        w->free[i] = n - 1 - i; /* pops slot 0 first */
    weft_stream_init(&s->base, &fs_ops, fut_flags & WEFT_F_SEND);
    s->wake_ = w;
    s->slots_ = slots;
    s->n_ = n;
    s->slot_size_ = ss;
    s->fut_size_ = fut_size;
    s->out_size_ = out_size;
    s->len_ = 0;
    s->cursor_ = 0;
    for (size_t i = 0; i < n; i++) {
        weft_future_set_slot_ *sl = slot_at(s, i);
        sl->fut = NULL;
        sl->tag = 0;
    }
    return 0;
}

int weft_future_set_push(weft_future_set *s, weft_iter_then_fn *fn, void *ctx,
                         const void *arg, uint64_t tag)
{
    if (!s || !fn || !s->wake_) {
        WEFT_MISUSE("weft_future_set_push: NULL or dropped set, or NULL fn");
        return -EINVAL;
    }
    if (s->len_ == s->n_)
        return -ENOSPC;
    fs_wake *w = s->wake_;
    size_t i = w->free[s->n_ - 1 - s->len_];
    weft_future_set_slot_ *sl = slot_at(s, i);
    void *st = slot_fut(sl);
    weft_future *f = fn(ctx, arg, st, s->fut_size_);
    if (!f || (void *)f != st || !f->ops || weft_future_out_size(f) != s->out_size_ ||
        ((s->base.flags & WEFT_F_SEND) && !weft_future_is_send(f))) {
        WEFT_MISUSE("weft_future_set_push: fn made no future at its storage, or one of "
                    "another output size or not Send");
        if (f && f->ops)
            weft_future_drop(f);
        return -EINVAL;
    }
    sl->fut = f;
    sl->tag = tag;
    s->len_++;
    /* Not DONE any more: the set may be polled again (see the header). */
    s->base.flags &= ~WEFT_F__DONE;
    /* Its first poll is due: mark it as its waker would, which also wakes
     * a task that polled the set before. */
    weft_waker sw = weft__slot_wake_waker(w, i);
    weft_waker_wake_by_ref(&sw);
    return 0;
}
