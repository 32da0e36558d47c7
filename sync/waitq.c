/* The waiter queue: an intrusive doubly linked FIFO list, guarded by the
 * owning primitive's spinlock (see waitq.h). */
#include "sync/waitq.h"
#include "core/errors.h"

void weft__waitq_init(weft__waitq *q)
{
    weft_atomic_init(&q->lock_, 0u);
    q->head_ = q->tail_ = NULL;
}

void weft__waitq_push_back(weft__waitq *q, weft__waiter *w, const weft_waker *waker)
{
    WEFT_ASSERT(weft_atomic_load_relaxed(&w->state_) == WEFT__WAITER_IDLE);
    w->waker_ = weft_waker_clone(waker);
    w->next_ = NULL;
    w->prev_ = q->tail_;
    if (q->tail_)
        q->tail_->next_ = w;
    else
        q->head_ = w;
    q->tail_ = w;
    /* Relaxed: only the lock holder and the owner read QUEUED, and the
     * owner holds no claim on anything until SERVED. */
    weft_atomic_store_relaxed(&w->state_, WEFT__WAITER_QUEUED);
}

static void waitq_unlink(weft__waitq *q, weft__waiter *w)
{
    if (w->prev_)
        w->prev_->next_ = w->next_;
    else
        q->head_ = w->next_;
    if (w->next_)
        w->next_->prev_ = w->prev_;
    else
        q->tail_ = w->prev_;
    w->prev_ = w->next_ = NULL;
}

void weft__waitq_remove(weft__waitq *q, weft__waiter *w)
{
    WEFT_ASSERT(weft_atomic_load_relaxed(&w->state_) == WEFT__WAITER_QUEUED);
    waitq_unlink(q, w);
    weft_waker_drop(&w->waker_);
    weft_atomic_store_relaxed(&w->state_, WEFT__WAITER_IDLE);
}

void weft__waiter_set_waker(weft__waiter *w, const weft_waker *waker)
{
    if (weft_waker_will_wake(&w->waker_, waker))
        return;
    weft_waker old = w->waker_;
    w->waker_ = weft_waker_clone(waker);
    weft_waker_drop(&old);
}

/* weft__waiter_poll's slow half: the waiter was queued when it looked. */
uint32_t weft__waiter_poll_queued(weft__waitq *q, weft__waiter *w, const weft_waker *waker)
{
    weft__waitq_lock(q);
    /* Relaxed: a serve happens under the lock we now hold, whose acquire
     * orders what the server wrote before our reads. */
    uint32_t st = weft_atomic_load_relaxed(&w->state_);
    if (st == WEFT__WAITER_QUEUED)
        weft__waiter_set_waker(w, waker);
    weft__waitq_unlock(q);
    return st;
}

void weft__waitq_serve(weft__waitq *q, weft__waiter *w, weft__wakeset *s)
{
    WEFT_ASSERT(weft_atomic_load_relaxed(&w->state_) == WEFT__WAITER_QUEUED);
    WEFT_ASSERT(s->n < WEFT__WAKESET_CAP);
    waitq_unlink(q, w);
    s->w[s->n++] = w->waker_;
    w->waker_ = (weft_waker)WEFT_WAKER_EMPTY;
    /* Release, and the last touch of `w`: the owner may see SERVED without
     * the lock and be dropped at once, so nothing here reads or writes `w`
     * after this store; what the primitive gave it (`data`, its own state)
     * was written before and is visible to the owner's acquire load. */
    weft_atomic_store_release(&w->state_, WEFT__WAITER_SERVED);
}

void weft__wakeset_wake(weft__wakeset *s)
{
    for (unsigned i = 0; i < s->n; i++)
        weft_waker_wake(&s->w[i]);
    s->n = 0;
}

void weft__waitq_push_front(weft__waitq *q, weft__waiter *w, const weft_waker *waker)
{
    WEFT_ASSERT(weft_atomic_load_relaxed(&w->state_) == WEFT__WAITER_IDLE);
    w->waker_ = weft_waker_clone(waker);
    w->prev_ = NULL;
    w->next_ = q->head_;
    if (q->head_)
        q->head_->prev_ = w;
    else
        q->tail_ = w;
    q->head_ = w;
    /* Relaxed: as in weft__waitq_push_back. */
    weft_atomic_store_relaxed(&w->state_, WEFT__WAITER_QUEUED);
}
