/* weft_barrier: n parties meet, the last to arrive leads (tokio's
 * Barrier).
 *
 * Under the queue's lock: `arrived_` counts this generation's parties and
 * the queue holds those waiting, each tagged (`data_`) with the
 * generation it arrived in. An arrival that makes `arrived_` reach n is
 * the leader: it resets `arrived_`, bumps `generation_` and serves every
 * waiter whose tag is not the open generation (tags only grow along the
 * queue). Between batches of WEFT__WAKESET_CAP wakes it lets the lock go;
 * a party arriving then belongs to the next generation, queues behind
 * with the next tag, and the leader stops before it (should that next
 * generation fill meanwhile, its leader serves what is left of this one
 * too). Every generation has exactly one leader and n parties.
 *
 * A wait dropped while QUEUED in the open generation takes its arrival
 * back (arrived_--): the generation then needs another party. Dropped
 * once its generation closed (served, or about to be in the leader's next
 * batch), its arrival stays counted: that generation is over. */
#include "weft/sync.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/future.h"
#include "sync/waitq.h"

static weft_poll barrier_wait_poll(weft_future *f, weft_cx *cx, void *out);
static void barrier_wait_drop(weft_future *f);

static const weft_future_ops barrier_wait_ops = {
    .name = "weft_barrier_wait",
    .out_size = sizeof(bool),
    .poll = barrier_wait_poll,
    .drop = barrier_wait_drop,
};

int weft_barrier_init(weft_barrier *b, uint32_t n)
{
    if (!b || n == 0) {
        WEFT_MISUSE("weft_barrier_init: %s", b ? "zero parties" : "barrier NULL");
        return -EINVAL;
    }
    weft__waitq_init(&b->q_);
    b->n_ = n;
    b->arrived_ = 0;
    b->generation_ = 0;
    return 0;
}

void weft_barrier_fini(weft_barrier *b)
{
    if (!b)
        return;
    weft__waitq_lock(&b->q_);
    bool waiters = !weft__waitq_empty(&b->q_);
    weft__waitq_unlock(&b->q_);
    if (waiters)
        WEFT_MISUSE("weft_barrier_fini: a weft_barrier_wait is still pending");
}

void weft_barrier_wait_init(weft_barrier_wait *f, weft_barrier *b)
{
    weft_future_init(&f->base, &barrier_wait_ops, WEFT_F_SEND);
    f->barrier_ = b;
    weft__waiter_init(&f->w_);
    f->arrived_ = false;
}

static weft_poll barrier_wait_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_barrier_wait *w = (weft_barrier_wait *)f;
    weft_barrier *b = w->barrier_;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (!b) {
        WEFT_MISUSE("'%s' polled without a barrier", weft__future_name(f));
        return WEFT_PENDING;
    }
    if (w->arrived_) {
        /* Served by the leader: what every party did before arriving is
         * visible (weft__waiter_poll's acquire). */
        if (weft__waiter_poll(&b->q_, &w->w_, cx->waker) != WEFT__WAITER_SERVED)
            return WEFT_PENDING;
        weft__waiter_reset(&w->w_);
        w->arrived_ = false;
        *(bool *)out = false;
        return WEFT_READY;
    }
    weft__waitq_lock(&b->q_);
    if (++b->arrived_ < b->n_) {
        w->w_.data_ = (uintptr_t)b->generation_;
        weft__waitq_push_back(&b->q_, &w->w_, cx->waker);
        weft__waitq_unlock(&b->q_);
        w->arrived_ = true;
        return WEFT_PENDING;
    }
    /* The leader: release the generation. The lock orders every party's
     * earlier writes (each arrived under it) before the leader's return. */
    b->arrived_ = 0;
    b->generation_++;
    weft__wakeset s;
    weft__wakeset_init(&s);
    while (!weft__waitq_empty(&b->q_) &&
           weft__waitq_front(&b->q_)->data_ != (uintptr_t)b->generation_) {
        if (weft__wakeset_full(&s)) {
            weft__waitq_unlock(&b->q_);
            weft__wakeset_wake(&s);
            weft__waitq_lock(&b->q_);
            continue;
        }
        weft__waitq_serve(&b->q_, weft__waitq_front(&b->q_), &s);
    }
    weft__waitq_unlock(&b->q_);
    weft__wakeset_wake(&s);
    *(bool *)out = true;
    return WEFT_READY;
}

static void barrier_wait_drop(weft_future *f)
{
    weft_barrier_wait *w = (weft_barrier_wait *)f;
    if (!w->arrived_)
        return;
    weft_barrier *b = w->barrier_;
    weft__waitq_lock(&b->q_);
    /* Under the lock: the leader may have released it meanwhile, or
     * closed its generation and not served it yet; then its arrival stays
     * counted (that generation is over; a leader's batch skips nothing:
     * the ones after it are still tagged with the closed generation). */
    if (weft__waiter_state(&w->w_) == WEFT__WAITER_QUEUED) {
        if (w->w_.data_ == (uintptr_t)b->generation_)
            b->arrived_--; /* the open generation: take the arrival back */
        weft__waitq_remove(&b->q_, &w->w_);
    }
    weft__waitq_unlock(&b->q_);
    weft__waiter_reset(&w->w_);
    w->arrived_ = false;
}
