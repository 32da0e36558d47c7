/* future_set: a set of futures polled as a stream of completions, with a
 * waker per slot so a poll polls only the futures that were woken
 * (futures-rs FuturesUnordered's ready-to-run queue, as a bitmask).
 *
 * State. Owner side (the set, and `local`/`free` in the shared
 * allocation, touched only by the owner): which slots hold futures
 * (slot->fut), a stack of free slot indexes, `local`: slots marked ready
 * and not polled yet. Shared side (`ready`, `consumer`, `rc`): slot
 * wakers set bits in `ready` from any thread and wake `consumer`, the
 * waker of the task that last polled the set.
 *
 * Poll: register the poll's waker in `consumer`; seq_cst fence; move
 * every `ready` word into `local` (one swap per word); then poll the
 * futures whose `local` bit is set, from `cursor_` round robin, each
 * once, clearing its bit first. A wake during that poll (the future's
 * own, or another thread's) sets a `ready` bit, which only the next poll
 * moves: so each future is polled at most once per set poll, and a
 * woken future is never missed (below). The first READY ends the poll
 * with that item; bits not reached stay in `local` for the next poll.
 *
 * No lost wake: a slot waker does W(ready bit); seq_cst fence;
 * weft_atomic_waker_wake(consumer). The poll does register(consumer);
 * seq_cst fence; swap(ready word). The two fences are ordered: if the
 * waker's comes first, the poll's swap sees the bit; if the poll's comes
 * first, the waker's wake finds the registered waker (or the atomic
 * waker's protocol has the registering side wake itself). Dekker with
 * fences, as in the atomic waker's users elsewhere.
 *
 * Lifetime: the shared part is one allocation with a weft_rc. The set
 * holds one reference; each slot-waker clone holds one. A waker is
 * {slot_waker_ops, &nodes[i]} and nodes[i] names the shared part and i,
 * so a clone outliving its future — or the set — sets a bit nobody reads
 * and wakes whatever is registered (nothing, once the set dropped its
 * registered waker). The last release frees it, on whatever thread.
 *
 * Concurrency:
 *   | op                    | may run concurrently with            |
 *   | init, push, poll, drop | slot-waker ops only (one owner)     |
 *   | slot wake/clone/drop  | everything, from any thread          |
 */
#include "iter/comb.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/future.h"

#include <stdint.h>

typedef struct fs_node {
    weft_future_set_wake_ *w;
    size_t idx;
} fs_node;

struct weft_future_set_wake_ {
    weft_rc rc;                    /* the set's reference + one per waker clone */
    weft_atomic_waker consumer;    /* registered by the owner's poll; woken by slot wakers */
    size_t words;                  /* ceil(n / 64) */
    WEFT_ATOMIC(uint64_t) *ready;  /* written by slot wakers (any thread), swapped by the owner */
    uint64_t *local;               /* owner only: ready bits not polled yet */
    size_t *free;                  /* owner only: stack of free slot indexes */
    fs_node *nodes;                /* written at init, read-only afterwards */
};

static weft_future_set_slot_ *slot_at(const weft_future_set *s, size_t i)
{
    return (weft_future_set_slot_ *)(void *)(s->slots_ + i * s->slot_size_);
}

static unsigned char *slot_fut(weft_future_set_slot_ *sl)
{
    return (unsigned char *)sl + WEFT__ITER_RUP(sizeof *sl);
}

/* ---- the shared wake state and the slot wakers ---------------------------- */

static void wake_state_free(weft_rc *rc)
{
    weft_future_set_wake_ *w = (weft_future_set_wake_ *)(void *)rc;
    weft_atomic_waker_fini(&w->consumer);
    weft__free(w);
}

static size_t rup_line(size_t x)
{
    return (x + WEFT_CACHE_LINE - 1) / WEFT_CACHE_LINE * WEFT_CACHE_LINE;
}

/* One allocation: header, then `ready` on its own cache lines (written
 * by wakers on other threads), then the owner-only `local`, `free` and
 * the nodes. */
static weft_future_set_wake_ *wake_state_new(size_t n)
{
    size_t words = (n + 63) / 64;
    size_t off_ready = rup_line(sizeof(weft_future_set_wake_));
    size_t off_local = off_ready + rup_line(words * sizeof(uint64_t));
    size_t off_free = off_local + words * sizeof(uint64_t);
    size_t off_nodes = off_free + n * sizeof(size_t);
    if (n > (SIZE_MAX - 4 * WEFT_CACHE_LINE) / (2 * sizeof(uint64_t) + sizeof(size_t) +
                                               sizeof(fs_node)))
        return NULL;
    unsigned char *mem = weft__alloc(off_nodes + n * sizeof(fs_node));
    if (!mem)
        return NULL;
    weft_future_set_wake_ *w = (weft_future_set_wake_ *)(void *)mem;
    weft_rc_init(&w->rc, wake_state_free);
    weft_atomic_waker_init(&w->consumer);
    w->words = words;
    w->ready = (WEFT_ATOMIC(uint64_t) *)(void *)(mem + off_ready);
    w->local = (uint64_t *)(void *)(mem + off_local);
    w->free = (size_t *)(void *)(mem + off_free);
    w->nodes = (fs_node *)(void *)(mem + off_nodes);
    for (size_t k = 0; k < words; k++) {
        weft_atomic_init(&w->ready[k], 0);
        w->local[k] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        w->free[i] = n - 1 - i; /* pops 0 first */
        w->nodes[i].w = w;
        w->nodes[i].idx = i;
    }
    return w;
}

static const weft_waker_ops slot_waker_ops;

static weft_waker slot_clone(const void *data)
{
    const fs_node *nd = data;
    weft_rc_retain(&nd->w->rc);
    weft_waker c = { &slot_waker_ops, (void *)(uintptr_t)data };
    return c;
}

static void slot_wake_by_ref(const void *data)
{
    const fs_node *nd = data;
    weft_future_set_wake_ *w = nd->w;
    /* Release: what the waking thread did before the wake (the event the
     * future waits for) is visible to the poll that swaps this word
     * (pairs with the acquire swap in fs_poll_next). */
    weft_atomic_fetch_or_release(&w->ready[nd->idx / 64], (uint64_t)1 << (nd->idx % 64));
    /* Seq_cst: orders the bit before the check of the registered waker
     * against the poll's register-then-swap (pairs with the fence in
     * fs_poll_next; see "No lost wake" above). */
    weft_atomic_fence_seq_cst();
    weft_atomic_waker_wake(&w->consumer);
}

static void slot_drop(void *data)
{
    fs_node *nd = data;
    (void)weft_rc_release(&nd->w->rc);
}

static void slot_wake(void *data)
{
    slot_wake_by_ref(data);
    slot_drop(data);
}

static const weft_waker_ops slot_waker_ops = {
    slot_clone, slot_wake, slot_wake_by_ref, slot_drop,
};

/* ---- the stream ------------------------------------------------------------ */

static void fs_drop(weft_stream *st)
{
    weft_future_set *s = (weft_future_set *)st;
    weft_future_set_wake_ *w = s->wake_;
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
    /* The task's waker goes now, not with the last slot-waker clone. */
    weft_waker cw;
    if (weft_atomic_waker_take(&w->consumer, &cw))
        weft_waker_drop(&cw);
    s->wake_ = NULL;
    (void)weft_rc_release(&w->rc);
}

/* Poll slot i (its local bit set). Returns ITEM (written), PENDING to go
 * on, or DONE meaning "stop: the budget is spent" (the bit stays). */
static weft_next poll_slot(weft_future_set *s, weft_cx *cx, size_t i, void *item)
{
    weft_future_set_wake_ *w = s->wake_;
    uint64_t bit = (uint64_t)1 << (i % 64);
    weft_future_set_slot_ *sl = slot_at(s, i);
    if (!sl->fut) { /* a stale wake of a future already gone */
        w->local[i / 64] &= ~bit;
        return WEFT_NEXT_PENDING;
    }
    if (!weft_coop_proceed(cx)) {
        s->cursor_ = i; /* resume here; coop_proceed woke the task */
        return WEFT_NEXT_DONE;
    }
    w->local[i / 64] &= ~bit;
    weft_waker sw = { &slot_waker_ops, &w->nodes[i] };
    weft_cx ccx = *cx;
    ccx.waker = &sw;
    weft_poll r = weft_future_poll(sl->fut, &ccx, (unsigned char *)item + WEFT_FUTURE_SET_OUT_OFFSET);
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
    weft_future_set_wake_ *w = s->wake_;
    for (size_t wd = lo / 64; lo < hi && wd * 64 < hi; wd++) {
        uint64_t bits = w->local[wd];
        if (wd * 64 < lo)
            bits &= ~(uint64_t)0 << (lo - wd * 64);
        if (hi - wd * 64 < 64)
            bits &= ((uint64_t)1 << (hi - wd * 64)) - 1;
        while (bits) {
            size_t i = wd * 64 + (size_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            weft_next r = poll_slot(s, cx, i, item);
            if (r != WEFT_NEXT_PENDING)
                return r;
        }
    }
    return WEFT_NEXT_PENDING;
}

static weft_next fs_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    weft_future_set *s = (weft_future_set *)st;
    weft_future_set_wake_ *w = s->wake_;
    if (s->len_ == 0)
        return WEFT_NEXT_DONE;
    weft_atomic_waker_register(&w->consumer, cx->waker);
    /* Seq_cst: the register before the swaps, against a slot waker's bit
     * before its wake (pairs with the fence in slot_wake_by_ref). */
    weft_atomic_fence_seq_cst();
    for (size_t k = 0; k < w->words; k++)
        /* Acquire: see what the waking thread did before it set the bit
         * (pairs with the release fetch_or in slot_wake_by_ref). */
        w->local[k] |= weft_atomic_swap_acquire(&w->ready[k], 0);
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
    weft_future_set_wake_ *w = wake_state_new(n);
    if (!w)
        return -ENOMEM;
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
    weft_future_set_wake_ *w = s->wake_;
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
    weft_waker sw = { &slot_waker_ops, &w->nodes[i] };
    weft_waker_wake_by_ref(&sw);
    return 0;
}
