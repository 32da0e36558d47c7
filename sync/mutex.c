/* weft_mutex: an async mutex with barging and a starvation mode.
 *
 * Algorithm (after Go's sync.Mutex; docs/sync.md has the measurements
 * behind the choice). One 32-bit state word and a FIFO of waiting lock
 * futures (sync/waitq.h):
 *
 *   bit 0  LOCKED    somebody holds the mutex
 *   bit 1  WOKEN     a waiter was taken off the queue and woken to retry;
 *                    until it does (or passes the claim on), unlocks wake
 *                    nobody else
 *   bit 2  STARVING  strict FIFO: unlocks hand the mutex to the front
 *                    waiter instead of releasing it
 *   3..31  WAITERS   queued waiters (the queue's length)
 *
 * Normal mode: a lock takes the mutex with one CAS whenever LOCKED is
 * clear, queued waiters or not (barging). An unlock with waiters releases
 * LOCKED, takes the front waiter off the queue and wakes it to *retry*
 * (WOKEN): if a running task took the mutex in between, the woken one
 * queues again at the front. A running task that locks, unlocks and locks
 * again never switches for it, which is what makes contended locking
 * cheap; the price is that a waiter may lose many retries in a row.
 * Starvation mode bounds that: a waiter that retries after waiting 1 ms
 * or more sets STARVING (only while LOCKED); from then on an unlock keeps
 * LOCKED and hands the mutex to the front waiter (SERVED with the lock),
 * and nobody barges. It ends when the queue empties or a waiter that was
 * handed the mutex had waited less than 1 ms.
 *
 * Invariants (q_ = the queue, under its spinlock):
 *  - WAITERS equals q_'s length; it changes only under q_'s lock.
 *  - STARVING implies LOCKED (it is set only while LOCKED, a hand-off keeps
 *    LOCKED, and the unlock that empties the queue clears both).
 *  - WOKEN is held by at most one lock future (its `woken_`), which either
 *    retries (clearing it when it locks or queues again) or, dropped,
 *    passes it on (pass_woken): a wake is never lost.
 *  - WAITERS > 0 implies LOCKED or WOKEN: a waiter queues only while
 *    LOCKED (its CAS checks), and the unlock that releases LOCKED with
 *    waiters sets WOKEN.
 *
 * Linearization points: lock — the CAS that sets LOCKED, or, handed the
 * mutex, the unlock's CAS that keeps it for it; unlock — the CAS that
 * clears LOCKED or hands it on.
 *
 * What may run concurrently: any number of locks, try_locks, polls and
 * drops of lock futures (each future polled or dropped by one thread at a
 * time), and the holder's unlock. Everything that reads or changes
 * WAITERS, STARVING or the queue holds q_'s lock; LOCKED and WOKEN may
 * also change by a lock's CAS without it, so every update under the lock
 * is a CAS loop too. */
#include "weft/sync.h"
#include "weft/time.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/future.h"
#include "sched/block_on.h"
#include "sync/waitq.h"

#include <stddef.h>

#define M_LOCKED 1u
#define M_WOKEN 2u
#define M_STARVING 4u
#define M_WAITER 8u /* one queued waiter */
#define M_WAITERS(s) ((s) >> 3)

/* How long a waiter waits before the mutex turns to strict hand-off. */
#define STARVE_AFTER WEFT_MS(1)

/* What a served waiter got (its `data_`): woken to retry, or the mutex. */
enum { GRANT_RETRY = 0, GRANT_LOCK = 1 };

static weft_poll lock_poll(weft_future *f, weft_cx *cx, void *out);
static void lock_drop(weft_future *f);

static const weft_future_ops lock_ops = {
    .name = "weft_mutex_lock", .out_size = sizeof(weft_mutex_guard),
    .poll = lock_poll, .drop = lock_drop,
};

void weft_mutex_init(weft_mutex *m)
{
    if (!m) {
        WEFT_MISUSE("weft_mutex_init(NULL)");
        return;
    }
    weft_atomic_init(&m->state_, 0u);
    m->reserved_ = 0;
    weft__waitq_init(&m->q_);
}

void weft_mutex_fini(weft_mutex *m)
{
    if (!m) {
        WEFT_MISUSE("weft_mutex_fini(NULL)");
        return;
    }
    /* Relaxed: whoever finalises has stopped every user. */
    uint32_t s = weft_atomic_load_relaxed(&m->state_);
    if (M_WAITERS(s) != 0)
        WEFT_MISUSE("weft_mutex_fini: %u lock future(s) still waiting", (unsigned)M_WAITERS(s));
    else if (s & M_LOCKED)
        WEFT_MISUSE("weft_mutex_fini: the mutex is still locked");
}

static weft_mutex_lock *lock_of(weft__waiter *w)
{
    return (weft_mutex_lock *)((char *)w - offsetof(weft_mutex_lock, waiter_));
}

int weft_mutex_try_lock(weft_mutex *m, weft_mutex_guard *guard)
{
    if (!m || !guard) {
        WEFT_MISUSE("weft_mutex_try_lock: NULL %s", m ? "guard" : "mutex");
        return -EINVAL;
    }
    uint32_t old = weft_atomic_load_relaxed(&m->state_);
    while (!(old & M_LOCKED)) {
        /* Acquire: pairs with the release of the unlock that freed it; the
         * last holder's writes are visible from here on. */
        if (weft_atomic_cas_weak_acquire(&m->state_, &old, old | M_LOCKED)) {
            guard->mutex = m;
            return 0;
        }
    }
    return -EAGAIN;
}

/* The unlock after the one-CAS path failed: there are waiters, a woken
 * one, or starvation mode. Wakes the front waiter to retry, or hands it
 * the mutex. */
static void unlock_slow(weft_mutex *m)
{
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(&m->q_);
    weft__waiter *front = weft__waitq_front(&m->q_);
    weft_instant now = 0;
    uint32_t old = weft_atomic_load_relaxed(&m->state_);
    if ((old & M_STARVING) && front)
        now = weft_now();
    for (;;) {
        WEFT_ASSERT(old & M_LOCKED);
        uint32_t want;
        int grant = -1;
        if ((old & M_STARVING) && front) {
            /* Hand-off: LOCKED stays set, for the front waiter. */
            want = old - M_WAITER;
            if (M_WAITERS(want) == 0 || now - lock_of(front)->since_ < STARVE_AFTER)
                want &= ~M_STARVING;
            grant = GRANT_LOCK;
        } else {
            want = old & ~(M_LOCKED | M_STARVING);
            if (front && !(old & M_WOKEN)) {
                want = (want - M_WAITER) | M_WOKEN;
                grant = GRANT_RETRY;
            }
        }
        /* Release: the critical section happens before the next lock's
         * acquire CAS that reads this value (or a later one in its release
         * sequence: every update of the word is a read-modify-write). A
         * hand-off also publishes through the serve's release store of
         * SERVED, which the new holder reads with acquire. */
        if (weft_atomic_cas_weak_release(&m->state_, &old, want)) {
            if (grant >= 0) {
                front->data_ = (uintptr_t)grant;
                weft__waitq_serve(&m->q_, front, &ws);
            }
            break;
        }
    }
    weft__waitq_unlock(&m->q_);
    weft__wakeset_wake(&ws);
}

int weft_mutex_unlock(weft_mutex_guard *guard)
{
    if (!guard || !guard->mutex) {
        WEFT_MISUSE("weft_mutex_unlock: %s guard (unlocked already?)", guard ? "an empty" : "a NULL");
        return -EINVAL;
    }
    weft_mutex *m = guard->mutex;
    uint32_t old = M_LOCKED;
    /* Release: publish the critical section to the next holder (pairs with
     * the acquire CAS of weft_mutex_try_lock / lock_acquire). */
    if (weft_atomic_cas_strong_release(&m->state_, &old, 0u)) {
        guard->mutex = NULL;
        return 0;
    }
    for (;;) {
        if (!(old & M_LOCKED)) {
            WEFT_MISUSE("weft_mutex_unlock: the mutex is not locked (a guard unlocked twice?)");
            return -EINVAL;
        }
        /* Waiters, but one of them is awake already (it will retry), or
         * none: release LOCKED alone, without the queue's lock. */
        if ((old & M_STARVING) || (M_WAITERS(old) != 0 && !(old & M_WOKEN)))
            break;
        /* Release: as above. */
        if (weft_atomic_cas_weak_release(&m->state_, &old, old & ~M_LOCKED)) {
            guard->mutex = NULL;
            return 0;
        }
    }
    guard->mutex = NULL;
    unlock_slow(m);
    return 0;
}

/* A lock future held the WOKEN claim and will not retry (it is dropped):
 * give it up, and wake the next waiter in its place if the mutex is free
 * (if it is held, the holder's unlock wakes one now that WOKEN is clear;
 * in starvation mode it hands the mutex on). */
static void pass_woken(weft_mutex *m)
{
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(&m->q_);
    weft__waiter *front = weft__waitq_front(&m->q_);
    uint32_t old = weft_atomic_load_relaxed(&m->state_);
    for (;;) {
        WEFT_ASSERT(old & M_WOKEN);
        uint32_t want = old & ~M_WOKEN;
        bool wake = front && !(old & M_LOCKED);
        if (wake)
            want = (want - M_WAITER) | M_WOKEN;
        /* Relaxed: nothing is published here; the claim only moves. */
        if (weft_atomic_cas_weak_relaxed(&m->state_, &old, want)) {
            if (wake) {
                front->data_ = GRANT_RETRY;
                weft__waitq_serve(&m->q_, front, &ws);
            }
            break;
        }
    }
    weft__waitq_unlock(&m->q_);
    weft__wakeset_wake(&ws);
}

static weft_poll lock_done(weft_mutex_lock *l, void *out)
{
    l->since_ = 0;
    l->woken_ = false;
    ((weft_mutex_guard *)out)->mutex = l->mutex_;
    return WEFT_READY;
}

/* Take the mutex if LOCKED is clear, else queue: at the back the first
 * time, at the front when it waited before (a woken waiter that lost the
 * race keeps its turn), setting STARVING once it has waited 1 ms. */
static weft_poll lock_acquire(weft_mutex_lock *l, weft_cx *cx, void *out)
{
    weft_mutex *m = l->mutex_;
    /* Guess "free, nobody waiting" first: the CAS fetches the cache line
     * for writing at once, where a load first would fetch it twice under
     * contention. */
    uint32_t old = 0;
    for (;;) {
        while (!(old & M_LOCKED)) {
            uint32_t want = (old | M_LOCKED) & ~(l->woken_ ? M_WOKEN : 0u);
            /* Acquire: pairs with the release of the unlock that freed it
             * (unlock fast path or unlock_slow). */
            if (weft_atomic_cas_weak_acquire(&m->state_, &old, want))
                return lock_done(l, out);
        }
        weft_instant now = weft_now();
        weft__waitq_lock(&m->q_);
        old = weft_atomic_load_relaxed(&m->state_);
        bool queued = false;
        while (old & M_LOCKED) {
            uint32_t want = old + M_WAITER;
            if (l->woken_)
                want &= ~M_WOKEN;
            if (l->since_ && now - l->since_ >= STARVE_AFTER)
                want |= M_STARVING;
            /* Relaxed: queueing publishes nothing; the unlock that serves
             * this waiter reads the queue under q_'s lock, which orders
             * the push below before it. */
            if (weft_atomic_cas_weak_relaxed(&m->state_, &old, want)) {
                queued = true;
                break;
            }
        }
        if (queued) {
            if (l->since_) {
                weft__waitq_push_front(&m->q_, &l->waiter_, cx->waker);
            } else {
                l->since_ = now ? now : 1;
                weft__waitq_push_back(&m->q_, &l->waiter_, cx->waker);
            }
            l->woken_ = false;
            weft__waitq_unlock(&m->q_);
            return WEFT_PENDING;
        }
        /* Freed while we took the queue's lock: try again. */
        weft__waitq_unlock(&m->q_);
        old = weft_atomic_load_relaxed(&m->state_);
    }
}

static weft_poll lock_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_mutex_lock *l = (weft_mutex_lock *)f;
    weft_mutex *m = l->mutex_;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    uint32_t st = weft__waiter_poll(&m->q_, &l->waiter_, cx->waker);
    if (st == WEFT__WAITER_QUEUED)
        return WEFT_PENDING;
    if (st == WEFT__WAITER_SERVED) {
        weft__waiter_reset(&l->waiter_);
        if (l->waiter_.data_ == GRANT_LOCK)
            return lock_done(l, out); /* handed to us: LOCKED was kept */
        l->woken_ = true;
    }
    /* A task that relocks in a loop yields once its budget is spent. A
     * woken one keeps its claim meanwhile (or passes it on if dropped). */
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    return lock_acquire(l, cx, out);
}

/* A lock future dropped with something to undo (queued, served or woken):
 * out of line, so that the drop of a finished lock — once per lock —
 * is a load and a return. */
static __attribute__((noinline)) void lock_drop_slow(weft_mutex_lock *l, uint32_t st)
{
    weft_mutex *m = l->mutex_;
    if (st == WEFT__WAITER_QUEUED) {
        weft__waitq_lock(&m->q_);
        /* Re-read under the lock: it may have been served meanwhile. */
        st = weft_atomic_load_relaxed(&l->waiter_.state_);
        if (st == WEFT__WAITER_QUEUED) {
            weft__waitq_remove(&m->q_, &l->waiter_);
            uint32_t old = weft_atomic_load_relaxed(&m->state_);
            uint32_t want;
            do {
                want = old - M_WAITER;
                if (M_WAITERS(want) == 0)
                    want &= ~M_STARVING; /* nobody left to hand it to */
                /* Relaxed: only the count and mode change. */
            } while (!weft_atomic_cas_weak_relaxed(&m->state_, &old, want));
            weft__waitq_unlock(&m->q_);
            return;
        }
        weft__waitq_unlock(&m->q_);
    }
    if (st == WEFT__WAITER_SERVED) {
        weft__waiter_reset(&l->waiter_);
        if (l->waiter_.data_ == GRANT_LOCK) {
            /* Handed the mutex before it saw it: hand it on. */
            weft_mutex_guard g = { m };
            int rc = weft_mutex_unlock(&g);
            WEFT_ASSERT(rc == 0);
            (void)rc;
            return;
        }
        l->woken_ = true;
    }
    if (l->woken_) {
        l->woken_ = false;
        pass_woken(m);
    }
}

static void lock_drop(weft_future *f)
{
    weft_mutex_lock *l = (weft_mutex_lock *)f;
    /* Acquire (in weft__waiter_state): as in lock_poll. */
    uint32_t st = weft__waiter_state(&l->waiter_);
    if (st != WEFT__WAITER_IDLE || l->woken_)
        lock_drop_slow(l, st);
}

int weft_mutex_lock_init(weft_mutex_lock *l, weft_mutex *m)
{
    if (!l || !m) {
        WEFT_MISUSE("weft_mutex_lock_init: NULL %s", l ? "mutex" : "future");
        return -EINVAL;
    }
    weft_future_init(&l->base, &lock_ops, WEFT_F_SEND);
    l->mutex_ = m;
    /* weft__waiter_init, spelled out: this runs once per lock, on the
     * uncontended path too. */
    l->waiter_.prev_ = l->waiter_.next_ = NULL;
    l->waiter_.waker_ = (weft_waker)WEFT_WAKER_EMPTY;
    l->waiter_.data_ = 0;
    weft_atomic_init(&l->waiter_.state_, WEFT__WAITER_IDLE);
    l->waiter_.reserved_ = 0;
    l->since_ = 0;
    l->woken_ = false;
    return 0;
}

int weft_mutex_lock_blocking(weft_mutex *m, weft_mutex_guard *guard)
{
    if (!m || !guard) {
        WEFT_MISUSE("weft_mutex_lock_blocking: NULL %s", m ? "guard" : "mutex");
        return -EINVAL;
    }
    weft_mutex_lock l;
    if (weft_mutex_lock_init(&l, m) != 0)
        return -EINVAL;
    int rc = weft__block_poll(&l.base, guard, "weft_mutex_lock_blocking");
    /* Completed, or refused before its first poll: either way the drop
     * has nothing to undo. */
    weft_future_drop(&l.base);
    return rc;
}
