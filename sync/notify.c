/* weft_notify: tokio's Notify (tokio/src/sync/notify.rs) on the waiter
 * queue of sync/waitq.h.
 *
 * One state word: (notify_waiters calls << 2) | EMPTY, WAITING or
 * NOTIFIED.
 *   EMPTY     nobody waits, no permit stored;
 *   WAITING   the queue is not empty (set and cleared only under the lock);
 *   NOTIFIED  a notify_one found nobody and stored the one permit.
 * Invariant (under the lock): WAITING exactly when the queue is not empty;
 * so a stored permit and a queued waiter never coexist.
 *
 * Who changes the word:
 *   EMPTY -> NOTIFIED     notify_one's fast path (a CAS, no lock), or
 *                         under the lock (a drop handing a notification
 *                         back when nobody else waits);
 *   NOTIFIED -> EMPTY     a waiter taking the permit (a CAS, with or
 *                         without the lock);
 *   EMPTY -> WAITING      a waiter queueing (under the lock);
 *   WAITING -> EMPTY      the last waiter leaves the queue (served or
 *                         removed; under the lock);
 *   calls + 1             notify_waiters (under the lock).
 * Since the two lock-free transitions only happen in EMPTY or NOTIFIED, a
 * lock holder that sees WAITING knows nobody changes the state bits
 * until it unlocks; one that sees EMPTY or NOTIFIED uses CASes, as the
 * fast paths may race with it.
 *
 * Linearization points: notify_one — its successful CAS to NOTIFIED, or
 * the serve of the front waiter under the lock; a wait — the CAS that
 * takes the permit, the load that sees a new notify_waiters count, or the
 * serve that marks its waiter.
 *
 * A waiter's `data_` says what served it: ONE (a notify_one, which a
 * drop before it was seen hands on) or ALL (a notify_waiters, which
 * stored nothing for anyone else, so a drop hands nothing on). */
#include <stddef.h>

#include "weft/sync.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "sched/block_on.h"
#include "sync/waitq.h"

#define ST_EMPTY 0u
#define ST_WAITING 1u
#define ST_NOTIFIED 2u
#define ST_MASK 3u
#define CALL_ONE 4u /* one notify_waiters call, in the word */

#define KIND_ONE 1u
#define KIND_ALL 2u

enum { STEP_INIT = 0, STEP_QUEUED = 1, STEP_DONE = 2 };

static inline uintptr_t st_of(uintptr_t w) { return w & ST_MASK; }
static inline uintptr_t calls_of(uintptr_t w) { return w & ~(uintptr_t)ST_MASK; }
static inline uintptr_t with_st(uintptr_t w, uintptr_t st) { return calls_of(w) | st; }

static inline weft_notified *notified_of(weft__waiter *w)
{
    return (weft_notified *)((char *)w - offsetof(weft_notified, w_));
}

/* A NULL notify is misuse: reported, and the call does nothing. */
static bool notify_null(const weft_notify *n, const char *what)
{
    (void)what; /* release builds report nothing */
    if (n)
        return false;
    WEFT_MISUSE("%s: notify is NULL", what);
    return true;
}

void weft_notify_init(weft_notify *n)
{
    if (notify_null(n, "weft_notify_init"))
        return;
    weft_atomic_init(&n->state_, (uintptr_t)ST_EMPTY);
    weft__waitq_init(&n->q_);
}

void weft_notify_fini(weft_notify *n)
{
    if (notify_null(n, "weft_notify_fini"))
        return;
    weft__waitq_lock(&n->q_);
    bool waiters = !weft__waitq_empty(&n->q_);
    weft__waitq_unlock(&n->q_);
    if (waiters)
        WEFT_MISUSE("weft_notify_fini: waiters are still queued on the notify");
}

/* Give one notification, under the lock: to the front waiter (into `s`),
 * or as the stored permit. */
static void notify_locked(weft_notify *n, weft__wakeset *s)
{
    /* Relaxed: under the lock, the state bits that matter here (WAITING)
     * only change under it; the CASes below handle the lock-free ones. */
    uintptr_t curr = weft_atomic_load_relaxed(&n->state_);
    for (;;) {
        if (st_of(curr) == ST_WAITING) {
            weft__waiter *w = weft__waitq_front(&n->q_);
            WEFT_ASSERT(w != NULL);
            w->data_ = KIND_ONE;
            weft__waitq_serve(&n->q_, w, s);
            if (weft__waitq_empty(&n->q_))
                /* Relaxed: WAITING -> EMPTY happens only under the lock,
                 * and the waiter just served learns of it through its
                 * own SERVED mark (release in weft__waitq_serve). */
                weft_atomic_store_relaxed(&n->state_, with_st(curr, ST_EMPTY));
            return;
        }
        /* EMPTY or NOTIFIED: store the permit. Release: the permit
         * publishes what the notifier did before (pairs with the acquire
         * CAS that takes it). */
        if (weft_atomic_cas_weak_release(&n->state_, &curr, with_st(curr, ST_NOTIFIED)))
            return;
    }
}

void weft_notify_one(weft_notify *n)
{
    if (notify_null(n, "weft_notify_one"))
        return;
    /* Fast path: nobody waits, so store the permit with one CAS. Relaxed
     * load: the CAS checks it. */
    uintptr_t curr = weft_atomic_load_relaxed(&n->state_);
    while (st_of(curr) != ST_WAITING) {
        /* Release: pairs with the acquire CAS of the waiter that takes
         * the permit. */
        if (weft_atomic_cas_weak_release(&n->state_, &curr, with_st(curr, ST_NOTIFIED)))
            return;
    }
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&n->q_);
    notify_locked(n, &s);
    weft__waitq_unlock(&n->q_);
    weft__wakeset_wake(&s);
}

void weft_notify_waiters(weft_notify *n)
{
    if (notify_null(n, "weft_notify_waiters"))
        return;
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&n->q_);
    /* Release: a future initialised before this call that sees the new
     * count (acquire in notified_poll) sees what the caller did before.
     * The state bits are left alone: a stored permit stays. */
    uintptr_t now = calls_of(weft_atomic_fetch_add_release(&n->state_, (uintptr_t)CALL_ONE)) +
                    CALL_ONE;
    /* Every waiter queued now was initialised before this call, so it
     * holds an older count; one initialised since, which polls while the
     * lock is released below, holds `now` and queues behind all of them.
     * Serve from the front until such a one, or until a newer call took
     * over (it serves everybody older, ours included). */
    for (;;) {
        weft__waiter *w = weft__waitq_front(&n->q_);
        if (!w || calls_of(notified_of(w)->calls_) == now)
            break;
        if (weft__wakeset_full(&s)) {
            weft__waitq_unlock(&n->q_);
            weft__wakeset_wake(&s);
            weft__waitq_lock(&n->q_);
            /* Relaxed: the count only changes under the lock. */
            if (calls_of(weft_atomic_load_relaxed(&n->state_)) != now)
                break;
            continue;
        }
        w->data_ = KIND_ALL;
        weft__waitq_serve(&n->q_, w, &s);
    }
    if (weft__waitq_empty(&n->q_)) {
        uintptr_t curr = weft_atomic_load_relaxed(&n->state_);
        if (st_of(curr) == ST_WAITING)
            /* Relaxed: WAITING -> EMPTY happens only under the lock. */
            weft_atomic_store_relaxed(&n->state_, with_st(curr, ST_EMPTY));
    }
    weft__waitq_unlock(&n->q_);
    weft__wakeset_wake(&s);
}

/* ---- weft_notified ---------------------------------------------------------- */

static weft_poll notified_poll(weft_future *f, weft_cx *cx, void *out);
static void notified_drop(weft_future *f);

static const weft_future_ops notified_ops = {
    .name = "weft_notified", .out_size = 0, .poll = notified_poll, .drop = notified_drop,
};

void weft_notified_init(weft_notified *nf, weft_notify *n)
{
    weft_future_init(&nf->base, &notified_ops, WEFT_F_SEND);
    nf->n_ = n;
    nf->step_ = STEP_INIT;
    nf->reserved_ = 0;
    weft__waiter_init(&nf->w_);
    if (notify_null(n, "weft_notified_init")) {
        nf->calls_ = 0; /* its poll completes at once */
        return;
    }
    /* Acquire: pairs with the release increment of notify_waiters, so a
     * caller that checks its condition after this and finds it false
     * either sees the count before that call (and is woken by it) or
     * sees what the notifier did before it. */
    nf->calls_ = calls_of(weft_atomic_load_acquire(&n->state_));
}

/* Take the stored permit if there is one: NOTIFIED -> EMPTY. */
static bool take_permit(weft_notify *n, uintptr_t curr)
{
    while (st_of(curr) == ST_NOTIFIED) {
        /* Acquire: pairs with the release that stored the permit, so the
         * waiter sees what the notifier did before. */
        if (weft_atomic_cas_weak_acquire(&n->state_, &curr, with_st(curr, ST_EMPTY)))
            return true;
    }
    return false;
}

static weft_poll notified_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_notified *nf = (weft_notified *)f;
    weft_notify *n = nf->n_;
    (void)out;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (nf->step_ == STEP_QUEUED) {
        /* Served: the notification is ours (acquire inside). */
        if (weft__waiter_poll(&n->q_, &nf->w_, cx->waker) != WEFT__WAITER_SERVED)
            return WEFT_PENDING;
        weft__waiter_reset(&nf->w_);
        nf->step_ = STEP_DONE;
        return WEFT_READY;
    }
    WEFT_ASSERT(nf->step_ == STEP_INIT);
    if (!n) { /* misuse, reported at initialisation: never hang */
        nf->step_ = STEP_DONE;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    /* Acquire: pairs with notify_waiters' release increment. */
    uintptr_t curr = weft_atomic_load_acquire(&n->state_);
    if (calls_of(curr) != nf->calls_ || take_permit(n, curr)) {
        nf->step_ = STEP_DONE;
        return WEFT_READY;
    }
    weft__waitq_lock(&n->q_);
    /* Acquire: as above; the lock orders us after every notify_waiters
     * that held it, but a permit may have been stored without it. */
    curr = weft_atomic_load_acquire(&n->state_);
    for (;;) {
        if (calls_of(curr) != nf->calls_ || take_permit(n, curr)) {
            weft__waitq_unlock(&n->q_);
            nf->step_ = STEP_DONE;
            return WEFT_READY;
        }
        if (st_of(curr) == ST_WAITING)
            break;
        /* EMPTY -> WAITING. Relaxed: it publishes nothing; a notify_one
         * racing in its fast path fails its CAS on it and takes the lock,
         * which orders it after our push_back. */
        if (weft_atomic_cas_weak_relaxed(&n->state_, &curr, with_st(curr, ST_WAITING)))
            break;
    }
    weft__waitq_push_back(&n->q_, &nf->w_, cx->waker);
    nf->step_ = STEP_QUEUED;
    weft__waitq_unlock(&n->q_);
    return WEFT_PENDING;
}

static void notified_drop(weft_future *f)
{
    weft_notified *nf = (weft_notified *)f;
    if (nf->step_ != STEP_QUEUED)
        return;
    weft_notify *n = nf->n_;
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&n->q_);
    /* Relaxed: under the lock, which every serve holds. */
    if (weft_atomic_load_relaxed(&nf->w_.state_) == WEFT__WAITER_QUEUED) {
        weft__waitq_remove(&n->q_, &nf->w_);
        if (weft__waitq_empty(&n->q_)) {
            uintptr_t curr = weft_atomic_load_relaxed(&n->state_);
            /* Relaxed: WAITING -> EMPTY happens only under the lock. */
            weft_atomic_store_relaxed(&n->state_, with_st(curr, ST_EMPTY));
        }
    } else if (nf->w_.data_ == KIND_ONE) {
        /* Chosen by a notify_one it never saw: hand it on. */
        notify_locked(n, &s);
    }
    weft__waitq_unlock(&n->q_);
    weft__wakeset_wake(&s);
    weft__waiter_reset(&nf->w_);
    nf->step_ = STEP_DONE;
}

int weft_notified_wait_blocking(weft_notified *nf)
{
    if (!nf || nf->base.ops != &notified_ops || nf->step_ == STEP_DONE) {
        WEFT_MISUSE("weft_notified_wait_blocking: not an initialised, unfinished weft_notified");
        return -EINVAL;
    }
    return weft__block_poll(&nf->base, NULL, "weft_notified_wait_blocking");
}

int weft_notify_wait_blocking(weft_notify *n)
{
    if (notify_null(n, "weft_notify_wait_blocking"))
        return -EINVAL;
    weft_notified nf;
    weft_notified_init(&nf, n);
    int rc = weft__block_poll(&nf.base, NULL, "weft_notify_wait_blocking");
    weft_future_drop(&nf.base);
    return rc;
}
