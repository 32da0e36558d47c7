/* weft_semaphore: a fair counting semaphore with partial grants, tokio's
 * batch semaphore (tokio/src/sync/batch_semaphore.rs), on the waiter queue
 * of sync/waitq.h — with one change: a release that finds nobody waiting
 * takes no lock (tokio's always does).
 *
 * One word: (available << 2) | WAITERS | CLOSED.
 *   available  permits nobody holds. Taken by a CAS (acquire, try_acquire;
 *              only while WAITERS is clear), added by an atomic add
 *              (release, a drop giving permits back, close returning
 *              partial grants).
 *   WAITERS    the queue is not empty. Set and cleared only under the
 *              lock.
 *   CLOSED     set once, under the lock; never cleared.
 * A queued waiter's `data_` is the number of permits it still needs; the
 * difference from what it asked for is what it has been given already
 * (partial grants live in the waiter node, not in the word).
 *
 * Fairness: while WAITERS is set, nobody takes from `available` but the
 * lock holder handing permits to the front waiter (distribute_locked), so
 * a later acquire, small or try_, never passes a queued one.
 *
 * Why a release that takes no lock never misses a waiter: the releaser's
 * add and the queueing acquirer's CAS that sets WAITERS are RMWs of the
 * same word, so one comes first. If the add comes first, the CAS fails,
 * the acquirer reloads and sees the permits (and takes them, being the
 * first waiter). If the CAS comes first, the add returns a word with
 * WAITERS set, and the releaser takes the lock — after the acquirer has
 * queued and unlocked — and hands the permits to the queue. Between the
 * add and its lock, the permits sit in `available` with WAITERS set:
 * nobody but a lock holder takes them.
 *
 * Linearization points: an acquire completes at the CAS that takes its
 * last permits, or at the serve that marks its waiter (with every permit
 * it asked for in hand); a release at its add.
 *
 *   may run concurrently with    | acquire fast | release fast | lock holder
 *   acquire fast (CAS)           | yes          | yes          | yes (fails on WAITERS)
 *   release fast (add)           | yes          | yes          | yes (then locks if WAITERS)
 */
#include <stddef.h>

#include "weft/sync.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "sched/block_on.h"
#include "sync/waitq.h"

#define W_CLOSED ((size_t)1)
#define W_WAITERS ((size_t)2)
#define W_FLAGS ((size_t)3)
#define W_SHIFT 2

/* A waiter's `data_` once close served it. */
#define CLOSED_MARK UINTPTR_MAX

enum { STEP_INIT = 0, STEP_QUEUED = 1, STEP_DONE = 2 };

static inline size_t avail_of(size_t w) { return w >> W_SHIFT; }

static inline weft_semaphore_acquire *acquire_of(weft__waiter *w)
{
    return (weft_semaphore_acquire *)((char *)w - offsetof(weft_semaphore_acquire, w_));
}

int weft_semaphore_init(weft_semaphore *s, size_t permits)
{
    if (!s || permits > WEFT_SEMAPHORE_MAX) {
        WEFT_MISUSE("weft_semaphore_init: %s", !s ? "semaphore is NULL"
                                                   : "more than WEFT_SEMAPHORE_MAX permits");
        return -EINVAL;
    }
    weft_atomic_init(&s->permits_, permits << W_SHIFT);
    weft__waitq_init(&s->q_);
    return 0;
}

void weft_semaphore_fini(weft_semaphore *s)
{
    if (!s) {
        WEFT_MISUSE("weft_semaphore_fini: semaphore is NULL");
        return;
    }
    weft__waitq_lock(&s->q_);
    bool waiters = !weft__waitq_empty(&s->q_);
    weft__waitq_unlock(&s->q_);
    if (waiters)
        WEFT_MISUSE("weft_semaphore_fini: acquires are still queued on the semaphore");
}

/* Under the lock: while waiters are queued (and not closed), move the
 * permits of `available` to them, front first — whole requests are
 * served, the last one reached keeps a partial grant in its node. May
 * release and retake the lock to wake a full wakeset (nothing is held
 * across: the permits not handed out yet are put back first). */
static void distribute_locked(weft_semaphore *s, weft__wakeset *ws)
{
    /* Relaxed: the CAS below checks it. */
    size_t curr = weft_atomic_load_relaxed(&s->permits_);
    for (;;) {
        if (!(curr & W_WAITERS) || (curr & W_CLOSED) || avail_of(curr) == 0)
            return;
        /* Take them all. Acquire: pairs with the release add of each
         * releaser, whose writes the waiters served below must see
         * (through the release in weft__waitq_serve). */
        if (!weft_atomic_cas_weak_acquire(&s->permits_, &curr, curr & W_FLAGS))
            continue;
        size_t avail = avail_of(curr);
        while (avail > 0) {
            weft__waiter *w = weft__waitq_front(&s->q_);
            WEFT_ASSERT(w != NULL);
            size_t need = (size_t)w->data_;
            if (avail < need) {
                w->data_ = need - avail;
                avail = 0;
                break;
            }
            if (weft__wakeset_full(ws)) {
                /* Put back what is left (WAITERS still set: only a lock
                 * holder takes it), wake, and start over. Release: as
                 * for a release's add. */
                weft_atomic_fetch_add_release(&s->permits_, avail << W_SHIFT);
                avail = 0;
                weft__waitq_unlock(&s->q_);
                weft__wakeset_wake(ws);
                weft__waitq_lock(&s->q_);
                break;
            }
            avail -= need;
            w->data_ = 0;
            weft__waitq_serve(&s->q_, w, ws);
            if (weft__waitq_empty(&s->q_)) {
                /* Nobody left: clear WAITERS and give the rest back in
                 * one RMW. Release: as for a release's add. */
                size_t c = weft_atomic_load_relaxed(&s->permits_);
                while (!weft_atomic_cas_weak_release(&s->permits_, &c,
                                                     (c & ~W_WAITERS) + (avail << W_SHIFT)))
                    ;
                return;
            }
        }
        curr = weft_atomic_load_relaxed(&s->permits_);
    }
}

/* Under the lock, after the last waiter left the queue: clear WAITERS.
 * Relaxed: it only opens the fast paths, which synchronise through the
 * permits they then take (release adds, acquire CASes). */
static void clear_waiters_locked(weft_semaphore *s)
{
    if (weft__waitq_empty(&s->q_))
        weft_atomic_fetch_and_relaxed(&s->permits_, ~W_WAITERS);
}

int weft_semaphore_try_acquire(weft_semaphore *s, size_t n)
{
    if (!s || n > WEFT_SEMAPHORE_MAX) {
        WEFT_MISUSE("weft_semaphore_try_acquire: %s",
                    !s ? "semaphore is NULL" : "more than WEFT_SEMAPHORE_MAX permits");
        return -EINVAL;
    }
    /* Relaxed: the CAS checks it. */
    size_t curr = weft_atomic_load_relaxed(&s->permits_);
    for (;;) {
        if (curr & W_CLOSED)
            return -EPIPE;
        if (n == 0)
            return 0;
        if ((curr & W_WAITERS) || avail_of(curr) < n)
            return -EAGAIN;
        /* Acquire: pairs with the release adds that put these permits
         * there. */
        if (weft_atomic_cas_weak_acquire(&s->permits_, &curr, curr - (n << W_SHIFT)))
            return 0;
    }
}

int weft_semaphore_release(weft_semaphore *s, size_t n)
{
    if (!s || n > WEFT_SEMAPHORE_MAX ||
        avail_of(weft_atomic_load_relaxed(&s->permits_)) + n > WEFT_SEMAPHORE_MAX) {
        /* The bound is checked against a snapshot: releases racing past
         * it still fit in the word (it holds twice the maximum), and are
         * misuse anyway. */
        WEFT_MISUSE("weft_semaphore_release: %s",
                    !s ? "semaphore is NULL"
                       : "more than WEFT_SEMAPHORE_MAX permits would be available");
        return -EINVAL;
    }
    if (n == 0)
        return 0;
    /* Release: whoever takes these permits (an acquire CAS, or the lock
     * holder in distribute_locked) sees what the caller did before. */
    size_t old = weft_atomic_fetch_add_release(&s->permits_, n << W_SHIFT);
    if (!(old & W_WAITERS) || (old & W_CLOSED))
        return 0;
    /* Somebody queued (see the file comment): hand the permits over. */
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(&s->q_);
    distribute_locked(s, &ws);
    weft__waitq_unlock(&s->q_);
    weft__wakeset_wake(&ws);
    return 0;
}

size_t weft_semaphore_available(weft_semaphore *s)
{
    /* Relaxed: a snapshot, publishing nothing. */
    return s ? avail_of(weft_atomic_load_relaxed(&s->permits_)) : 0;
}

void weft_semaphore_close(weft_semaphore *s)
{
    if (!s) {
        WEFT_MISUSE("weft_semaphore_close: semaphore is NULL");
        return;
    }
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(&s->q_);
    /* Relaxed: CLOSED publishes nothing; the waiters learn of it through
     * their SERVED mark, later acquires under the lock or by their CAS. */
    weft_atomic_fetch_or_relaxed(&s->permits_, W_CLOSED);
    while (!weft__waitq_empty(&s->q_)) {
        if (weft__wakeset_full(&ws)) {
            weft__waitq_unlock(&s->q_);
            weft__wakeset_wake(&ws);
            weft__waitq_lock(&s->q_);
            continue;
        }
        weft__waiter *w = weft__waitq_front(&s->q_);
        size_t granted = acquire_of(w)->n_ - (size_t)w->data_;
        if (granted)
            /* Release: as for a release's add. */
            weft_atomic_fetch_add_release(&s->permits_, granted << W_SHIFT);
        w->data_ = CLOSED_MARK;
        weft__waitq_serve(&s->q_, w, &ws);
    }
    clear_waiters_locked(s);
    weft__waitq_unlock(&s->q_);
    weft__wakeset_wake(&ws);
}

/* ---- weft_semaphore_acquire ---------------------------------------------------- */

static weft_poll acquire_poll(weft_future *f, weft_cx *cx, void *out);
static void acquire_drop(weft_future *f);

static const weft_future_ops acquire_ops = {
    .name = "weft_semaphore_acquire", .out_size = sizeof(int), .poll = acquire_poll,
    .drop = acquire_drop,
};

void weft_semaphore_acquire_init(weft_semaphore_acquire *a, weft_semaphore *s, size_t n)
{
    weft_future_init(&a->base, &acquire_ops, WEFT_F_SEND);
    a->s_ = s;
    a->n_ = n;
    a->step_ = STEP_INIT;
    a->reserved_ = 0;
    weft__waiter_init(&a->w_);
    if (!s || n > WEFT_SEMAPHORE_MAX)
        WEFT_MISUSE("weft_semaphore_acquire_init: %s",
                    !s ? "semaphore is NULL" : "more than WEFT_SEMAPHORE_MAX permits");
}

static weft_poll acquire_done(weft_semaphore_acquire *a, void *out, int status)
{
    a->step_ = STEP_DONE;
    *(int *)out = status;
    return WEFT_READY;
}

static weft_poll acquire_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_semaphore_acquire *a = (weft_semaphore_acquire *)f;
    weft_semaphore *s = a->s_;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (a->step_ == STEP_QUEUED) {
        /* Served: the permits (or the close) are ours to see (acquire
         * inside; pairs with the release in weft__waitq_serve). */
        if (weft__waiter_poll(&s->q_, &a->w_, cx->waker) != WEFT__WAITER_SERVED)
            return WEFT_PENDING;
        int status = a->w_.data_ == CLOSED_MARK ? -EPIPE : 0;
        weft__waiter_reset(&a->w_);
        return acquire_done(a, out, status);
    }
    WEFT_ASSERT(a->step_ == STEP_INIT);
    if (!s || a->n_ > WEFT_SEMAPHORE_MAX)
        return acquire_done(a, out, -EINVAL);
    size_t n = a->n_;
    /* Relaxed: the CAS checks it. */
    size_t curr = weft_atomic_load_relaxed(&s->permits_);
    if (curr & W_CLOSED)
        return acquire_done(a, out, -EPIPE);
    if (n == 0)
        return acquire_done(a, out, 0);
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    /* Fast path: nobody queued and enough available. Acquire: pairs with
     * the release adds that put the permits there. */
    while (!(curr & (W_WAITERS | W_CLOSED)) && avail_of(curr) >= n) {
        if (weft_atomic_cas_weak_acquire(&s->permits_, &curr, curr - (n << W_SHIFT)))
            return acquire_done(a, out, 0);
    }
    weft__waitq_lock(&s->q_);
    curr = weft_atomic_load_relaxed(&s->permits_);
    size_t take;
    for (;;) {
        if (curr & W_CLOSED) {
            weft__waitq_unlock(&s->q_);
            return acquire_done(a, out, -EPIPE);
        }
        /* Queued waiters come first: join the back with nothing. Else
         * take what there is, all of it if it is enough. */
        take = (curr & W_WAITERS) ? 0 : avail_of(curr) < n ? avail_of(curr) : n;
        if (take == n) {
            /* Acquire: as on the fast path. */
            if (weft_atomic_cas_weak_acquire(&s->permits_, &curr, curr - (n << W_SHIFT))) {
                weft__waitq_unlock(&s->q_);
                return acquire_done(a, out, 0);
            }
            continue;
        }
        /* Take the part and set WAITERS in one RMW: a releaser's add
         * either comes before it (the CAS fails and we look again) or
         * sees WAITERS and hands its permits to the queue under the lock
         * (see the file comment). Acquire: pairs with the release adds
         * of the permits taken. */
        if (weft_atomic_cas_weak_acquire(&s->permits_, &curr,
                                         (curr - (take << W_SHIFT)) | W_WAITERS))
            break;
    }
    a->w_.data_ = n - take;
    weft__waitq_push_back(&s->q_, &a->w_, cx->waker);
    a->step_ = STEP_QUEUED;
    weft__waitq_unlock(&s->q_);
    return WEFT_PENDING;
}

static void acquire_drop(weft_future *f)
{
    weft_semaphore_acquire *a = (weft_semaphore_acquire *)f;
    if (a->step_ != STEP_QUEUED)
        return;
    weft_semaphore *s = a->s_;
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(&s->q_);
    size_t back = 0;
    /* Relaxed: under the lock, which every serve holds. */
    if (weft_atomic_load_relaxed(&a->w_.state_) == WEFT__WAITER_QUEUED) {
        back = a->n_ - (size_t)a->w_.data_; /* a partial grant */
        weft__waitq_remove(&s->q_, &a->w_);
    } else if (a->w_.data_ != CLOSED_MARK) {
        back = a->n_; /* served in full, never seen */
    }
    if (back)
        /* Release: whoever takes them next sees the history of the
         * permits, as for a release's add. */
        weft_atomic_fetch_add_release(&s->permits_, back << W_SHIFT);
    clear_waiters_locked(s);
    distribute_locked(s, &ws);
    weft__waitq_unlock(&s->q_);
    weft__wakeset_wake(&ws);
    weft__waiter_reset(&a->w_);
    a->step_ = STEP_DONE;
}

int weft_semaphore_acquire_blocking(weft_semaphore *s, size_t n)
{
    if (!s || n > WEFT_SEMAPHORE_MAX) {
        WEFT_MISUSE("weft_semaphore_acquire_blocking: %s",
                    !s ? "semaphore is NULL" : "more than WEFT_SEMAPHORE_MAX permits");
        return -EINVAL;
    }
    weft_semaphore_acquire a;
    weft_semaphore_acquire_init(&a, s, n);
    int status = 0;
    int rc = weft__block_poll(&a.base, &status, "weft_semaphore_acquire_blocking");
    weft_future_drop(&a.base);
    return rc ? rc : status;
}
