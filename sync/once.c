/* weft_once: a cell set at most once, by an async initialiser (tokio's
 * OnceCell).
 *
 * State (written under the queue's lock; SET also read without it):
 *   EMPTY    no value, no initialiser; the queue is empty.
 *   RUNNING  one caller holds the right to initialise: a get_or_init
 *            polling its init future, or a waiter just served the right
 *            and not yet polled. Other callers queue.
 *   SET      the value is in the buffer; the queue is empty. Final.
 * The right to initialise is a token exactly one caller holds while
 * RUNNING. The holder gives it up in one of three ways, each under the
 * lock: its init succeeded (SET; every waiter is served "the value is
 * there"), its init failed, or it was dropped (then the right goes to the
 * oldest waiter, served "your turn", or the cell goes back to EMPTY when
 * nobody waits). A waiter dropped after it was served the right hands it
 * on the same way, so the right is never lost and never held twice.
 *
 * Memory: the holder's init writes the buffer without a lock (no one else
 * writes it, no one reads it before SET); the release store of SET
 * publishes it, paired with the acquire in weft_once_get and, for waiters,
 * with the acquire of their SERVED state (served after the SET store).
 *
 * A waiter's `data_` says what it was served: WAITER_GOT_VALUE or
 * WAITER_GOT_RIGHT (written under the lock before the release in
 * weft__waitq_serve). */
#include "weft/sync.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/future.h"
#include "sync/waitq.h"

#include <string.h>

enum { ONCE_EMPTY = 0, ONCE_RUNNING = 1, ONCE_SET = 2 };
enum { WAITER_GOT_VALUE = 1, WAITER_GOT_RIGHT = 2 };
/* The get_or_init's phase (owner only). */
enum { PHASE_START = 0, PHASE_QUEUED, PHASE_RUNNING, PHASE_DONE };

static weft_poll goi_poll(weft_future *f, weft_cx *cx, void *out);
static void goi_drop(weft_future *f);

static const weft_future_ops goi_ops = {
    .name = "weft_once_get_or_init", .out_size = sizeof(int), .poll = goi_poll, .drop = goi_drop,
};

int weft_once_init(weft_once *c, void *buf, size_t size)
{
    if (!c || !buf || size == 0) {
        WEFT_MISUSE("weft_once_init: %s", !c ? "cell NULL" : !buf ? "buffer NULL" : "size zero");
        return -EINVAL;
    }
    weft__waitq_init(&c->q_);
    weft_atomic_init(&c->state_, (uint32_t)ONCE_EMPTY);
    c->reserved_ = 0;
    c->value_ = buf;
    c->size_ = size;
    return 0;
}

void weft_once_fini(weft_once *c)
{
    if (!c)
        return;
    weft__waitq_lock(&c->q_);
    /* Relaxed: under the lock every state write holds. */
    bool busy = !weft__waitq_empty(&c->q_) ||
                weft_atomic_load_relaxed(&c->state_) == ONCE_RUNNING;
    weft__waitq_unlock(&c->q_);
    if (busy)
        WEFT_MISUSE("weft_once_fini: a weft_once_get_or_init is still alive");
}

const void *weft_once_get(const weft_once *c)
{
    /* Acquire: pairs with the release store of SET; the value's bytes are
     * visible. */
    if (c && weft_atomic_load_acquire(&c->state_) == ONCE_SET)
        return c->value_;
    return NULL;
}

/* Serve every waiter "the value is there"; the lock is held and state is
 * SET (so nobody queues while the lock is let go between batches). */
static void serve_all_value(weft_once *c, weft__wakeset *s)
{
    while (!weft__waitq_empty(&c->q_)) {
        if (weft__wakeset_full(s)) {
            weft__waitq_unlock(&c->q_);
            weft__wakeset_wake(s);
            weft__waitq_lock(&c->q_);
            continue;
        }
        weft__waiter *w = weft__waitq_front(&c->q_);
        w->data_ = WAITER_GOT_VALUE;
        weft__waitq_serve(&c->q_, w, s);
    }
}

int weft_once_set(weft_once *c, const void *value)
{
    if (!c || !value) {
        WEFT_MISUSE("weft_once_set: %s NULL", c ? "value" : "cell");
        return -EINVAL;
    }
    weft__waitq_lock(&c->q_);
    /* Relaxed: under the lock every state write holds. */
    uint32_t st = weft_atomic_load_relaxed(&c->state_);
    if (st != ONCE_EMPTY) {
        weft__waitq_unlock(&c->q_);
        return st == ONCE_SET ? -EEXIST : -EBUSY;
    }
    memcpy(c->value_, value, c->size_);
    /* Release: publishes the bytes; pairs with the acquire in
     * weft_once_get. (EMPTY: nobody waits.) */
    weft_atomic_store_release(&c->state_, (uint32_t)ONCE_SET);
    weft__waitq_unlock(&c->q_);
    return 0;
}

/* The holder of the right gives it up without setting the value: to the
 * oldest waiter, or back to EMPTY. The lock is held. */
static void hand_on_right(weft_once *c, weft__wakeset *s)
{
    if (weft__waitq_empty(&c->q_)) {
        /* Relaxed: nothing was published; under the lock. */
        weft_atomic_store_relaxed(&c->state_, (uint32_t)ONCE_EMPTY);
        return;
    }
    weft__waiter *w = weft__waitq_front(&c->q_);
    w->data_ = WAITER_GOT_RIGHT; /* state stays RUNNING: the right moves */
    weft__waitq_serve(&c->q_, w, s);
}

int weft_once_get_or_init_init(weft_once_get_or_init *f, weft_once *c, weft_future *init)
{
    if (!f || !c || !init || !init->ops || !init->ops->poll) {
        WEFT_MISUSE("weft_once_get_or_init_init: a NULL argument, or an init future without ops");
        return -EINVAL;
    }
    if (weft_future_out_size(init) != sizeof(int)) {
        WEFT_MISUSE("weft_once_get_or_init_init: '%s' does not output an int status",
                    weft__future_name(init));
        return -EINVAL;
    }
    weft_future_init(&f->base, &goi_ops, init->flags & WEFT_F_SEND);
    f->cell_ = c;
    weft__waiter_init(&f->w_);
    f->init_off_ = (char *)init - (char *)f;
    f->phase_ = PHASE_START;
    f->init_dropped_ = false;
    f->status = 0;
    return 0;
}

static weft_future *goi_init(weft_once_get_or_init *g)
{
    return (weft_future *)((char *)g + g->init_off_);
}

/* Drop the init future, exactly once. */
static void goi_drop_init(weft_once_get_or_init *g)
{
    if (!g->init_dropped_) {
        g->init_dropped_ = true;
        weft_future_drop(goi_init(g));
    }
}

static weft_poll goi_ready(weft_once_get_or_init *g, void *out, int status)
{
    goi_drop_init(g);
    g->phase_ = PHASE_DONE;
    g->status = status;
    *(int *)out = status;
    return WEFT_READY;
}

static weft_poll goi_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_once_get_or_init *g = (weft_once_get_or_init *)f;
    weft_once *c = g->cell_;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (g->phase_ == PHASE_START) {
        if (weft_once_get(c))
            return weft_coop_proceed(cx) ? goi_ready(g, out, 0) : WEFT_PENDING;
        weft__waitq_lock(&c->q_);
        /* Relaxed: under the lock; a SET seen here was published by a
         * release under this lock, which the lock orders before us. */
        uint32_t st = weft_atomic_load_relaxed(&c->state_);
        if (st == ONCE_SET) {
            weft__waitq_unlock(&c->q_);
            return goi_ready(g, out, 0);
        }
        if (st == ONCE_EMPTY) {
            /* Relaxed: RUNNING publishes nothing; read under the lock. */
            weft_atomic_store_relaxed(&c->state_, (uint32_t)ONCE_RUNNING);
            weft__waitq_unlock(&c->q_);
            g->phase_ = PHASE_RUNNING;
        } else {
            weft__waitq_push_back(&c->q_, &g->w_, cx->waker);
            weft__waitq_unlock(&c->q_);
            g->phase_ = PHASE_QUEUED;
            return WEFT_PENDING;
        }
    } else if (g->phase_ == PHASE_QUEUED) {
        /* Served: `data_` and, for a value, the buffer are visible
         * (weft__waiter_poll's acquire). */
        if (weft__waiter_poll(&c->q_, &g->w_, cx->waker) != WEFT__WAITER_SERVED)
            return WEFT_PENDING;
        weft__waiter_reset(&g->w_);
        if (g->w_.data_ == WAITER_GOT_VALUE)
            return goi_ready(g, out, 0);
        g->phase_ = PHASE_RUNNING; /* the right to initialise is ours */
    }
    /* PHASE_RUNNING: this caller holds the right. */
    int status = 0;
    if (weft_future_poll(goi_init(g), cx, &status) == WEFT_PENDING)
        return WEFT_PENDING;
    goi_drop_init(g);
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&c->q_);
    if (status == 0) {
        /* Release: publishes the bytes the init wrote; pairs with the
         * acquire in weft_once_get (waiters see them through their SERVED
         * acquire, served after this store). */
        weft_atomic_store_release(&c->state_, (uint32_t)ONCE_SET);
        serve_all_value(c, &s);
    } else {
        hand_on_right(c, &s);
    }
    weft__waitq_unlock(&c->q_);
    weft__wakeset_wake(&s);
    return goi_ready(g, out, status);
}

static void goi_drop(weft_future *f)
{
    weft_once_get_or_init *g = (weft_once_get_or_init *)f;
    weft_once *c = g->cell_;
    goi_drop_init(g);
    weft__wakeset s;
    weft__wakeset_init(&s);
    if (g->phase_ == PHASE_QUEUED) {
        weft__waitq_lock(&c->q_);
        /* Under the lock: it may have been served meanwhile. Served the
         * right and never used it: hand it on. Served the value: nothing
         * to hand on. */
        if (weft__waiter_state(&g->w_) == WEFT__WAITER_QUEUED)
            weft__waitq_remove(&c->q_, &g->w_);
        else if (g->w_.data_ == WAITER_GOT_RIGHT)
            hand_on_right(c, &s);
        weft__waitq_unlock(&c->q_);
        weft__waiter_reset(&g->w_);
    } else if (g->phase_ == PHASE_RUNNING) {
        /* Its init was dropped above, before the right moves on: two inits
         * of one cell never run at once. */
        weft__waitq_lock(&c->q_);
        hand_on_right(c, &s);
        weft__waitq_unlock(&c->q_);
    }
    g->phase_ = PHASE_DONE;
    weft__wakeset_wake(&s);
}
