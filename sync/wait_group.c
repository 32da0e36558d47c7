/* weft_wait_group: a count and the waits for it to reach zero (Go's
 * sync.WaitGroup).
 *
 * The count and the queue of waits sit under one lock (the queue's), so
 * "count is zero" and "nobody is queued" are decided together: a wait
 * looks at the count and queues itself in one critical section, and the
 * done that brings the count to zero serves every queued wait in the same
 * section as its decrement. A wait can therefore never queue after the
 * zero that should have released it, and no wake is lost.
 *
 * Concurrency: add, done, wait polls and drops may all run at once from
 * any threads; each takes the lock once (done at zero: once per batch of
 * WEFT__WAKESET_CAP waiters, waking each batch after unlocking).
 * A wait served at a zero stays served even if an add raises the count
 * again before it is polled: it waited for that zero. */
#include "weft/sync.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/future.h"
#include "sched/block_on.h"
#include "sync/waitq.h"

static weft_poll wg_wait_poll(weft_future *f, weft_cx *cx, void *out);
static void wg_wait_drop(weft_future *f);

static const weft_future_ops wg_wait_ops = {
    .name = "weft_wait_group_wait", .out_size = 0, .poll = wg_wait_poll, .drop = wg_wait_drop,
};

int weft_wait_group_init(weft_wait_group *wg)
{
    if (!wg) {
        WEFT_MISUSE("weft_wait_group_init: wait group NULL");
        return -EINVAL;
    }
    weft__waitq_init(&wg->q_);
    wg->count_ = 0;
    return 0;
}

void weft_wait_group_fini(weft_wait_group *wg)
{
    if (!wg)
        return;
    weft__waitq_lock(&wg->q_);
    bool waiters = !weft__waitq_empty(&wg->q_);
    weft__waitq_unlock(&wg->q_);
    if (waiters)
        WEFT_MISUSE("weft_wait_group_fini: a weft_wait_group_wait is still pending");
}

int weft_wait_group_add(weft_wait_group *wg, uint32_t n)
{
    if (!wg || n == 0) {
        WEFT_MISUSE("weft_wait_group_add: %s", wg ? "n is zero" : "wait group NULL");
        return -EINVAL;
    }
    weft__waitq_lock(&wg->q_);
    if (wg->count_ + n > UINT32_MAX) {
        weft__waitq_unlock(&wg->q_);
        WEFT_MISUSE("weft_wait_group_add: the count would pass UINT32_MAX");
        return -EINVAL;
    }
    wg->count_ += n;
    weft__waitq_unlock(&wg->q_);
    return 0;
}

int weft_wait_group_done(weft_wait_group *wg)
{
    if (!wg) {
        WEFT_MISUSE("weft_wait_group_done: wait group NULL");
        return -EINVAL;
    }
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&wg->q_);
    if (wg->count_ == 0) {
        weft__waitq_unlock(&wg->q_);
        WEFT_MISUSE("weft_wait_group_done: the count is already zero (more done than add)");
        return -EINVAL;
    }
    if (--wg->count_ == 0) {
        /* Serve every wait queued now. Between batches the lock is let go:
         * a wait polled then finds the count zero and does not queue, and
         * an add then does not unserve those left (they are served in the
         * next batch: they waited for this zero). */
        while (!weft__waitq_empty(&wg->q_)) {
            if (weft__wakeset_full(&s)) {
                weft__waitq_unlock(&wg->q_);
                weft__wakeset_wake(&s);
                weft__waitq_lock(&wg->q_);
                continue;
            }
            weft__waitq_serve(&wg->q_, weft__waitq_front(&wg->q_), &s);
        }
    }
    weft__waitq_unlock(&wg->q_);
    weft__wakeset_wake(&s);
    return 0;
}

void weft_wait_group_wait_init(weft_wait_group_wait *f, weft_wait_group *wg)
{
    weft_future_init(&f->base, &wg_wait_ops, WEFT_F_SEND);
    f->wg_ = wg;
    weft__waiter_init(&f->w_);
    f->queued_ = false;
}

static weft_poll wg_wait_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_wait_group_wait *w = (weft_wait_group_wait *)f;
    (void)out;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    weft_wait_group *wg = w->wg_;
    if (!wg) {
        WEFT_MISUSE("'%s' polled without a wait group", weft__future_name(f));
        return WEFT_PENDING;
    }
    if (w->queued_) {
        /* Served after the done that reached zero (weft__waiter_poll's
         * acquire). */
        if (weft__waiter_poll(&wg->q_, &w->w_, cx->waker) != WEFT__WAITER_SERVED)
            return WEFT_PENDING;
        weft__waiter_reset(&w->w_);
        w->queued_ = false;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    weft__waitq_lock(&wg->q_);
    /* The lock orders this read after every done before it (each wrote
     * the count under the same lock): the work those tasks did before
     * done is visible once the lock is taken. */
    if (wg->count_ == 0) {
        weft__waitq_unlock(&wg->q_);
        return WEFT_READY;
    }
    weft__waitq_push_back(&wg->q_, &w->w_, cx->waker);
    weft__waitq_unlock(&wg->q_);
    w->queued_ = true;
    return WEFT_PENDING;
}

static void wg_wait_drop(weft_future *f)
{
    weft_wait_group_wait *w = (weft_wait_group_wait *)f;
    if (!w->queued_)
        return;
    weft_wait_group *wg = w->wg_;
    weft__waitq_lock(&wg->q_);
    /* Under the lock: a done may have served it meanwhile. Served, there
     * is nothing to hand on (every wait is released at a zero). */
    if (weft__waiter_state(&w->w_) == WEFT__WAITER_QUEUED)
        weft__waitq_remove(&wg->q_, &w->w_);
    weft__waitq_unlock(&wg->q_);
    weft__waiter_reset(&w->w_);
    w->queued_ = false;
}

int weft_wait_group_wait_blocking(weft_wait_group *wg)
{
    if (!wg) {
        WEFT_MISUSE("weft_wait_group_wait_blocking: wait group NULL");
        return -EINVAL;
    }
    weft_wait_group_wait w;
    weft_wait_group_wait_init(&w, wg);
    int rc = weft__block_poll(&w.base, NULL, "weft_wait_group_wait_blocking");
    weft_future_drop(&w.base);
    return rc;
}
