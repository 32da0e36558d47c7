/* buffered / buffer_unordered: up to n per-item futures in flight, each
 * in a slot of the caller's array (header, future, held output). State:
 * live_ slots are RUNNING or READY; seq_in_ counts items taken from the
 * upstream, seq_out_ items yielded. Ordered mode puts item seq in slot
 * seq % n (at most n are between seq_out_ and seq_in_, so that slot is
 * free) and yields slot seq_out_ % n once READY; unordered mode puts an
 * item in any free slot and yields the first future found READY.
 *
 * Wakes: each future is polled with its slot's waker (iter/slot_wake.h),
 * so a poll polls only the futures woken since the last one (and those
 * just made), each at most once: a future that wakes itself during its
 * poll is polled again by the next poll. Unordered mode looks at the
 * woken slots from scan_ round robin and stops at the first READY; the
 * woken slots it did not reach stay marked for the next poll. */
#include "iter/comb.h"
#include "iter/slot_wake.h"

enum { SLOT_FREE = 0, SLOT_RUNNING, SLOT_READY };

static weft_iter_buffered_slot_ *slot_at(const weft_iter_buffered *b, size_t i)
{
    return (weft_iter_buffered_slot_ *)(void *)(b->slots_ + i * b->slot_size_);
}

static size_t slot_index(const weft_iter_buffered *b, const weft_iter_buffered_slot_ *sl)
{
    return (size_t)((const unsigned char *)sl - b->slots_) / b->slot_size_;
}

static unsigned char *slot_fut(weft_iter_buffered_slot_ *sl)
{
    return (unsigned char *)sl + WEFT__ITER_RUP(sizeof *sl);
}

static unsigned char *slot_out(const weft_iter_buffered *b, weft_iter_buffered_slot_ *sl)
{
    return slot_fut(sl) + WEFT__ITER_RUP(b->fut_size_);
}

static void slot_free(weft_iter_buffered *b, weft_iter_buffered_slot_ *sl)
{
    if (sl->state == SLOT_RUNNING)
        weft_future_drop(sl->fut);
    sl->fut = NULL;
    sl->state = SLOT_FREE;
    b->live_--;
}

/* A free slot for the next item, or NULL when n are in flight (ordered:
 * also when the window of n input indexes is full). */
static weft_iter_buffered_slot_ *free_slot(weft_iter_buffered *b)
{
    if (b->ordered_) {
        if (b->seq_in_ - b->seq_out_ >= b->n_)
            return NULL;
        return slot_at(b, (size_t)(b->seq_in_ % b->n_));
    }
    if (b->live_ >= b->n_)
        return NULL;
    for (size_t k = 0; k < b->n_; k++) {
        weft_iter_buffered_slot_ *sl = slot_at(b, (b->scan_ + k) % b->n_);
        if (sl->state == SLOT_FREE)
            return sl;
    }
    return NULL; /* not reached: live_ < n */
}

/* Take upstream items into free slots. False when fn broke its contract
 * (reported; the stage then ends). */
static bool fill(weft_iter_buffered *b, weft_cx *cx)
{
    weft_iter_buffered_slot_ *sl;
    while (!b->up_done_ && (sl = free_slot(b)) != NULL) {
        weft_next r = weft_stream_poll_next(b->up_, cx, b->buf_.b);
        if (r == WEFT_NEXT_PENDING)
            break;
        if (r == WEFT_NEXT_DONE) {
            b->up_done_ = true;
            break;
        }
        void *st = slot_fut(sl);
        weft_future *f = b->fn_(b->ctx_, b->buf_.b, st, b->fut_size_);
        if (!f || (void *)f != st || weft_future_out_size(f) != b->out_size_ ||
            ((b->base.flags & WEFT_F_SEND) && !weft_future_is_send(f))) {
            WEFT_MISUSE("weft_iter_buffered: fn made no future at its storage, or one of "
                        "another output size or not Send");
            if (f)
                weft_future_drop(f);
            return false;
        }
        sl->fut = f;
        sl->seq = b->seq_in_++;
        sl->state = SLOT_RUNNING;
        b->live_++;
        weft__slot_wake_mark_local(b->wake_, slot_index(b, sl)); /* its first poll */
    }
    return true;
}

static void drop_all(weft_iter_buffered *b)
{
    for (size_t i = 0; i < b->n_; i++) {
        weft_iter_buffered_slot_ *sl = slot_at(b, i);
        if (sl->state != SLOT_FREE)
            slot_free(b, sl);
    }
}

/* Poll the future in slot i with slot i's waker, clearing its mark. */
static weft_poll poll_slot(weft_iter_buffered *b, weft_cx *cx, size_t i, void *out)
{
    weft_iter_buffered_slot_ *sl = slot_at(b, i);
    weft__slot_wake_clear_local(b->wake_, i);
    if (sl->state != SLOT_RUNNING)
        return WEFT_PENDING; /* a stale wake: the future is gone */
    weft_waker sw = weft__slot_wake_waker(b->wake_, i);
    weft_cx ccx = *cx;
    ccx.waker = &sw;
    weft_poll r = weft_future_poll(sl->fut, &ccx, out);
    cx->budget = ccx.budget;
    return r;
}

static weft_next buffered_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_buffered *b = (weft_iter_buffered *)s;
    if (!fill(b, cx)) {
        drop_all(b);
        b->up_done_ = true;
        return WEFT_NEXT_DONE;
    }
    if (b->live_ == 0)
        return b->up_done_ ? WEFT_NEXT_DONE : WEFT_NEXT_PENDING; /* upstream's wake */
    weft__slot_wake *w = b->wake_;
    weft__slot_wake_begin(w, cx);
    if (b->ordered_) {
        /* Poll every woken future; yield the head once it is ready. */
        for (size_t i = weft__slot_wake_next_local(w, 0, b->n_); i < b->n_;
             i = weft__slot_wake_next_local(w, i + 1, b->n_)) {
            weft_iter_buffered_slot_ *sl = slot_at(b, i);
            if (poll_slot(b, cx, i, slot_out(b, sl)) == WEFT_READY) {
                weft_future_drop(sl->fut);
                sl->fut = NULL;
                sl->state = SLOT_READY;
            }
        }
        weft_iter_buffered_slot_ *head = slot_at(b, (size_t)(b->seq_out_ % b->n_));
        if (head->state == SLOT_READY && head->seq == b->seq_out_) {
            memcpy(item, slot_out(b, head), b->out_size_);
            slot_free(b, head);
            b->seq_out_++;
            return WEFT_NEXT_ITEM;
        }
    } else {
        /* The woken ones from scan_ round robin, up to the first READY. */
        size_t c = b->scan_;
        for (int pass = 0; pass < 2; pass++) {
            size_t lo = pass ? 0 : c, hi = pass ? c : b->n_;
            for (size_t i = weft__slot_wake_next_local(w, lo, hi); i < hi;
                 i = weft__slot_wake_next_local(w, i + 1, hi)) {
                if (poll_slot(b, cx, i, item) == WEFT_READY) {
                    slot_free(b, slot_at(b, i));
                    b->seq_out_++;
                    b->scan_ = (i + 1) % b->n_; /* the others get the first look next */
                    return WEFT_NEXT_ITEM;
                }
            }
        }
    }
    if (b->live_ == 0 && b->up_done_)
        return WEFT_NEXT_DONE;
    return WEFT_NEXT_PENDING;
}

static void buffered_drop(weft_stream *s)
{
    weft_iter_buffered *b = (weft_iter_buffered *)s;
    drop_all(b);
    if (b->wake_)
        weft__slot_wake_release(b->wake_);
    b->wake_ = NULL;
}

static void buffered_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_buffered *b = (const weft_iter_buffered *)s;
    if (b->up_done_) {
        *lo = *hi = 0;
    } else {
        weft_stream_size_hint(b->up_, lo, hi);
    }
    *lo = sat_add(*lo, b->live_);
    *hi = sat_add(*hi, b->live_);
}

static size_t buffered_item_size(const weft_stream *s)
{
    return ((const weft_iter_buffered *)s)->out_size_;
}

static const weft_stream_ops buffered_ops = {
    .name = "weft_iter_buffered",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = buffered_poll_next,
    .drop = buffered_drop,
    .size_hint = buffered_size_hint,
    .item_size_of = buffered_item_size,
};

int weft_iter_buffered_init(weft_iter_buffered *b, weft_stream *up, weft_iter_then_fn *fn,
                            void *ctx, size_t fut_size, size_t out_item_size,
                            uint32_t fut_flags, size_t n, unsigned order, void *slots,
                            size_t slots_size)
{
    int err = comb_check("weft_iter_buffered_init", b, up, true, fn != NULL);
    if (!err)
        err = comb_check_held("weft_iter_buffered_init", up);
    if (err)
        return err;
    size_t slot = WEFT_ITER_BUFFERED_SLOT_SIZE(fut_size, out_item_size);
    if (n == 0 || fut_size == 0 || (order != WEFT_ITER_ORDERED && order != WEFT_ITER_UNORDERED) ||
        !slots || ((uintptr_t)slots % _Alignof(max_align_t)) != 0 ||
        n > SIZE_MAX / slot || slots_size < n * slot) {
        WEFT_MISUSE("weft_iter_buffered_init: n %zu or fut_size %zu is 0, order %u unknown, "
                    "or slots (%zu bytes) NULL, not max-aligned or under n * "
                    "WEFT_ITER_BUFFERED_SLOT_SIZE",
                    n, fut_size, order, slots_size);
        return -EINVAL;
    }
    weft__slot_wake *w = weft__slot_wake_new(n);
    if (!w)
        return -ENOMEM;
    weft_stream_init(&b->base, &buffered_ops, up->flags & fut_flags & WEFT_F_SEND);
    b->wake_ = w;
    b->up_ = up;
    b->fn_ = fn;
    b->ctx_ = ctx;
    b->slots_ = slots;
    b->n_ = n;
    b->slot_size_ = slot;
    b->fut_size_ = fut_size;
    b->out_size_ = out_item_size;
    b->live_ = 0;
    b->seq_in_ = b->seq_out_ = 0;
    b->scan_ = 0;
    b->ordered_ = order == WEFT_ITER_ORDERED;
    b->up_done_ = false;
    for (size_t i = 0; i < n; i++) {
        weft_iter_buffered_slot_ *sl = slot_at(b, i);
        sl->fut = NULL;
        sl->seq = 0;
        sl->state = SLOT_FREE;
    }
    return 0;
}
