/* weft_rwlock: a writer-preferring, FIFO reader-writer lock.
 *
 * Algorithm. One 32-bit state word and a FIFO of waiting read and write
 * futures (sync/waitq.h):
 *
 *   bit 0   WRITER   a writer holds the lock
 *   bit 1   QUEUED   the queue is not empty: everybody new queues too
 *   2..31   READERS  readers holding the lock
 *
 * Fast paths take no lock: a read lock is one CAS adding a reader while
 * neither WRITER nor QUEUED is set; a write lock one CAS from 0 to WRITER;
 * a read unlock one CAS removing a reader; a write unlock one CAS from
 * WRITER to 0. A future that cannot enter queues (setting QUEUED, with a
 * CAS that checks the state it saw, under the queue's lock). Admission is
 * strict FIFO with direct hand-off (no barging): whoever frees the lock
 * while QUEUED is set — the last reader out, a writer, a dropped waiter —
 * takes the queue's lock and admits from the front: one writer if nobody
 * holds the lock, or every reader of the run at the front while no writer
 * holds it, adding them to the state word before serving them (SERVED
 * means "you hold it"). A writer at the front therefore holds back every
 * reader behind it, and readers never starve writers.
 *
 * Invariants: QUEUED is set exactly when the queue is not empty (changed
 * only under the queue's lock). A served waiter was counted in the state
 * word (as WRITER or one reader) before its SERVED store. The front waiter
 * is never admissible while nothing is being released: every release that
 * could make it admissible (reader count to 0, or from the maximum; the
 * writer's unlock; a waiter leaving the front) runs admission.
 *
 * Linearization points: a lock at its CAS (fast path) or at the admitting
 * CAS; an unlock at its CAS.
 *
 * What may run concurrently: any number of locks, unlocks, polls and drops;
 * fast-path CASes never hold the queue's lock, so every update under it is
 * a CAS loop. */
#include "weft/sync.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/future.h"
#include "sync/waitq.h"
#include "sched/block_on.h"

#define RW_WRITER 1u
#define RW_QUEUED 2u
#define RW_READER 4u
#define RW_READERS(s) ((s) >> 2)

/* What a waiter waits for (its `data_`). */
enum { WANT_READ = 1, WANT_WRITE = 2 };

static weft_poll read_poll(weft_future *f, weft_cx *cx, void *out);
static void read_drop(weft_future *f);
static weft_poll write_poll(weft_future *f, weft_cx *cx, void *out);
static void write_drop(weft_future *f);

static const weft_future_ops read_ops = {
    .name = "weft_rwlock_read", .out_size = sizeof(weft_rwlock_read_guard),
    .poll = read_poll, .drop = read_drop,
};
static const weft_future_ops write_ops = {
    .name = "weft_rwlock_write", .out_size = sizeof(weft_rwlock_write_guard),
    .poll = write_poll, .drop = write_drop,
};

void weft_rwlock_init(weft_rwlock *rw)
{
    if (!rw) {
        WEFT_MISUSE("weft_rwlock_init(NULL)");
        return;
    }
    weft_atomic_init(&rw->state_, 0u);
    rw->reserved_ = 0;
    weft__waitq_init(&rw->q_);
}

void weft_rwlock_fini(weft_rwlock *rw)
{
    if (!rw) {
        WEFT_MISUSE("weft_rwlock_fini(NULL)");
        return;
    }
    /* Relaxed: whoever finalises has stopped every user. */
    uint32_t s = weft_atomic_load_relaxed(&rw->state_);
    if (s & RW_QUEUED)
        WEFT_MISUSE("weft_rwlock_fini: futures still waiting");
    else if (s != 0)
        WEFT_MISUSE("weft_rwlock_fini: the lock is still held");
}

/* May a newcomer (nobody queued ahead of it) read / write in state `s`? */
static bool can_read(uint32_t s)
{
    return !(s & (RW_WRITER | RW_QUEUED)) && RW_READERS(s) < WEFT_RWLOCK_MAX_READERS;
}

/* Admit what the front of the queue may take now, then serve it; the
 * queue's lock is held. Returns true when it stopped only because the
 * wakeset filled (the caller flushes it and calls again). At most one
 * writer, or a run of readers, per call. */
static bool admit(weft_rwlock *rw, weft__wakeset *ws)
{
    uint32_t old = weft_atomic_load_relaxed(&rw->state_);
    for (;;) {
        weft__waiter *front = weft__waitq_front(&rw->q_);
        weft__waiter *stop = front; /* first waiter not admitted */
        uint32_t want = old;
        if (front && front->data_ == WANT_WRITE) {
            if (!(old & RW_WRITER) && RW_READERS(old) == 0) {
                want |= RW_WRITER;
                stop = front->next_;
            }
        } else if (!(old & RW_WRITER)) {
            unsigned n = 0;
            while (stop && stop->data_ == WANT_READ && !weft__wakeset_full(ws) &&
                   n < WEFT__WAKESET_CAP - ws->n &&
                   RW_READERS(want) < WEFT_RWLOCK_MAX_READERS) {
                want += RW_READER;
                stop = stop->next_;
                n++;
            }
        }
        if (stop == front && (old & RW_QUEUED) == (front ? RW_QUEUED : 0u))
            return false; /* nothing to admit, QUEUED right */
        if (stop)
            want |= RW_QUEUED;
        else
            want &= ~RW_QUEUED;
        /* AcqRel: release — what the releaser did before (a writer's
         * critical section, which it published with its own release CAS
         * or this one) is carried to the admitted, who also see it through
         * the serve's release store of SERVED; acquire — the readers
         * leaving before this CAS finished their reads before a writer
         * admitted here writes. */
        if (weft_atomic_cas_weak_acq_rel(&rw->state_, &old, want)) {
            bool more = false;
            while (front != stop) {
                weft__waiter *next = front->next_;
                weft__waitq_serve(&rw->q_, front, ws);
                front = next;
            }
            /* Stopped at a reader only because the set filled? */
            more = stop && stop->data_ == WANT_READ && !(want & RW_WRITER) &&
                   RW_READERS(want) < WEFT_RWLOCK_MAX_READERS;
            return more;
        }
    }
}

/* Run admission to the end, flushing the wakeset when it fills. */
static void admit_all_locked_then_unlock(weft_rwlock *rw)
{
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    while (admit(rw, &ws)) {
        weft__waitq_unlock(&rw->q_);
        weft__wakeset_wake(&ws);
        weft__waitq_lock(&rw->q_);
    }
    weft__waitq_unlock(&rw->q_);
    weft__wakeset_wake(&ws);
}

static void admit_all(weft_rwlock *rw)
{
    weft__waitq_lock(&rw->q_);
    admit_all_locked_then_unlock(rw);
}

int weft_rwlock_try_read(weft_rwlock *rw, weft_rwlock_read_guard *guard)
{
    if (!rw || !guard) {
        WEFT_MISUSE("weft_rwlock_try_read: NULL %s", rw ? "guard" : "rwlock");
        return -EINVAL;
    }
    uint32_t old = weft_atomic_load_relaxed(&rw->state_);
    while (can_read(old)) {
        /* Acquire: pairs with the release CAS of the last writer's unlock
         * (or of the admission after it): its writes are visible. */
        if (weft_atomic_cas_weak_acquire(&rw->state_, &old, old + RW_READER)) {
            guard->rwlock = rw;
            return 0;
        }
    }
    return -EAGAIN;
}

int weft_rwlock_try_write(weft_rwlock *rw, weft_rwlock_write_guard *guard)
{
    if (!rw || !guard) {
        WEFT_MISUSE("weft_rwlock_try_write: NULL %s", rw ? "guard" : "rwlock");
        return -EINVAL;
    }
    uint32_t old = 0;
    /* Acquire: pairs with the release CAS of every earlier unlock (readers
     * done reading, a writer's writes). */
    if (weft_atomic_cas_strong_acquire(&rw->state_, &old, RW_WRITER)) {
        guard->rwlock = rw;
        return 0;
    }
    return -EAGAIN;
}

int weft_rwlock_read_unlock(weft_rwlock_read_guard *guard)
{
    if (!guard || !guard->rwlock) {
        WEFT_MISUSE("weft_rwlock_read_unlock: %s guard (unlocked already?)",
                    guard ? "an empty" : "a NULL");
        return -EINVAL;
    }
    weft_rwlock *rw = guard->rwlock;
    uint32_t old = weft_atomic_load_relaxed(&rw->state_);
    for (;;) {
        if (RW_READERS(old) == 0) {
            WEFT_MISUSE("weft_rwlock_read_unlock: no reader holds the lock (a guard unlocked "
                        "twice?)");
            return -EINVAL;
        }
        /* Release: our reads happen before a later writer's lock (pairs
         * with its acquire CAS, or the acq_rel of the admission). */
        if (weft_atomic_cas_weak_release(&rw->state_, &old, old - RW_READER))
            break;
    }
    guard->rwlock = NULL;
    uint32_t n = RW_READERS(old);
    if ((old & RW_QUEUED) && (n == 1 || n == WEFT_RWLOCK_MAX_READERS))
        admit_all(rw);
    return 0;
}

int weft_rwlock_write_unlock(weft_rwlock_write_guard *guard)
{
    if (!guard || !guard->rwlock) {
        WEFT_MISUSE("weft_rwlock_write_unlock: %s guard (unlocked already?)",
                    guard ? "an empty" : "a NULL");
        return -EINVAL;
    }
    weft_rwlock *rw = guard->rwlock;
    uint32_t old = RW_WRITER;
    /* Release: publish the writes to the next holder (pairs with the
     * acquire CAS of try_read / try_write / the fast paths). */
    if (!weft_atomic_cas_strong_release(&rw->state_, &old, 0u)) {
        if (!(old & RW_WRITER)) {
            WEFT_MISUSE("weft_rwlock_write_unlock: the lock is not write-locked (a guard "
                        "unlocked twice?)");
            return -EINVAL;
        }
        /* Waiters: clear WRITER and admit, under the queue's lock. */
        weft__waitq_lock(&rw->q_);
        old = weft_atomic_load_relaxed(&rw->state_);
        /* Release: as above; admission then reads the state afresh. */
        while (!weft_atomic_cas_weak_release(&rw->state_, &old, old & ~RW_WRITER)) {
        }
        admit_all_locked_then_unlock(rw);
    }
    guard->rwlock = NULL;
    return 0;
}

/* ---- the waiting futures ----------------------------------------------------------------- */

/* Poll of a queued (or just served) waiter: READY-ish answers.
 * Returns 1 served (it holds the lock), 0 still queued (waker updated),
 * -1 idle (not queued: try to enter). */
static int waiter_poll(weft_rwlock *rw, weft__waiter *w, weft_cx *cx)
{
    uint32_t st = weft__waiter_poll(&rw->q_, w, cx->waker);
    if (st == WEFT__WAITER_QUEUED)
        return 0;
    if (st == WEFT__WAITER_SERVED) {
        weft__waiter_reset(w);
        return 1;
    }
    return -1;
}

/* Enter (1) or queue (0) under the queue's lock, for `kind`. */
static int enter_or_queue(weft_rwlock *rw, weft__waiter *w, int kind, weft_cx *cx)
{
    weft__waitq_lock(&rw->q_);
    uint32_t old = weft_atomic_load_relaxed(&rw->state_);
    for (;;) {
        bool can = kind == WANT_READ ? can_read(old) : old == 0;
        uint32_t want = can ? (kind == WANT_READ ? old + RW_READER : RW_WRITER) : old | RW_QUEUED;
        /* Acquire when entering: as the fast paths. Queueing publishes
         * nothing (relaxed would do; one CAS serves both). */
        if (weft_atomic_cas_weak_acquire(&rw->state_, &old, want)) {
            if (!can) {
                w->data_ = (uintptr_t)kind;
                weft__waitq_push_back(&rw->q_, w, cx->waker);
            }
            weft__waitq_unlock(&rw->q_);
            return can ? 1 : 0;
        }
    }
}

/* A waiter dropped while queued: unlink it, then admit whoever it held
 * back (a writer at the front holds back the readers behind it). */
static void waiter_drop(weft_rwlock *rw, weft__waiter *w, int kind)
{
    uint32_t st = weft__waiter_state(w);
    if (st == WEFT__WAITER_QUEUED) {
        weft__waitq_lock(&rw->q_);
        /* Re-read under the lock: it may have been admitted meanwhile. */
        st = weft_atomic_load_relaxed(&w->state_);
        if (st == WEFT__WAITER_QUEUED) {
            weft__waitq_remove(&rw->q_, w);
            admit_all_locked_then_unlock(rw);
            return;
        }
        weft__waitq_unlock(&rw->q_);
    }
    if (st == WEFT__WAITER_SERVED) {
        /* Admitted before it saw it: it holds the lock; hand it on. */
        weft__waiter_reset(w);
        int rc;
        if (kind == WANT_READ) {
            weft_rwlock_read_guard g = { rw };
            rc = weft_rwlock_read_unlock(&g);
        } else {
            weft_rwlock_write_guard g = { rw };
            rc = weft_rwlock_write_unlock(&g);
        }
        WEFT_ASSERT(rc == 0);
        (void)rc;
    }
}

static weft_poll read_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_rwlock_read *r = (weft_rwlock_read *)f;
    weft_rwlock *rw = r->rwlock_;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    int st = waiter_poll(rw, &r->waiter_, cx);
    if (st == 0)
        return WEFT_PENDING;
    if (st < 0) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        uint32_t old = weft_atomic_load_relaxed(&rw->state_);
        bool in = false;
        while (!in && can_read(old))
            /* Acquire: as in weft_rwlock_try_read. */
            in = weft_atomic_cas_weak_acquire(&rw->state_, &old, old + RW_READER);
        if (!in && !enter_or_queue(rw, &r->waiter_, WANT_READ, cx))
            return WEFT_PENDING;
    }
    ((weft_rwlock_read_guard *)out)->rwlock = rw;
    return WEFT_READY;
}

static void read_drop(weft_future *f)
{
    weft_rwlock_read *r = (weft_rwlock_read *)f;
    waiter_drop(r->rwlock_, &r->waiter_, WANT_READ);
}

static weft_poll write_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_rwlock_write *w = (weft_rwlock_write *)f;
    weft_rwlock *rw = w->rwlock_;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    int st = waiter_poll(rw, &w->waiter_, cx);
    if (st == 0)
        return WEFT_PENDING;
    if (st < 0) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        uint32_t old = 0;
        /* Acquire: as in weft_rwlock_try_write. */
        if (!weft_atomic_cas_strong_acquire(&rw->state_, &old, RW_WRITER) &&
            !enter_or_queue(rw, &w->waiter_, WANT_WRITE, cx))
            return WEFT_PENDING;
    }
    ((weft_rwlock_write_guard *)out)->rwlock = rw;
    return WEFT_READY;
}

static void write_drop(weft_future *f)
{
    weft_rwlock_write *w = (weft_rwlock_write *)f;
    waiter_drop(w->rwlock_, &w->waiter_, WANT_WRITE);
}

int weft_rwlock_read_init(weft_rwlock_read *r, weft_rwlock *rw)
{
    if (!r || !rw) {
        WEFT_MISUSE("weft_rwlock_read_init: NULL %s", r ? "rwlock" : "future");
        return -EINVAL;
    }
    weft_future_init(&r->base, &read_ops, WEFT_F_SEND);
    r->rwlock_ = rw;
    weft__waiter_init(&r->waiter_);
    return 0;
}

int weft_rwlock_write_init(weft_rwlock_write *w, weft_rwlock *rw)
{
    if (!w || !rw) {
        WEFT_MISUSE("weft_rwlock_write_init: NULL %s", w ? "rwlock" : "future");
        return -EINVAL;
    }
    weft_future_init(&w->base, &write_ops, WEFT_F_SEND);
    w->rwlock_ = rw;
    weft__waiter_init(&w->waiter_);
    return 0;
}

/* ---- blocking forms --------------------------------------------------------------------- */

int weft_rwlock_read_blocking(weft_rwlock *rw, weft_rwlock_read_guard *guard)
{
    weft_rwlock_read r;
    if (!guard || weft_rwlock_read_init(&r, rw) != 0) {
        if (!guard)
            WEFT_MISUSE("weft_rwlock_read_blocking: NULL guard");
        return -EINVAL;
    }
    int rc = weft__block_poll(&r.base, guard, "weft_rwlock_read_blocking");
    /* Completed, or refused before its first poll: the drop has nothing
     * to undo. */
    weft_future_drop(&r.base);
    return rc;
}

int weft_rwlock_write_blocking(weft_rwlock *rw, weft_rwlock_write_guard *guard)
{
    weft_rwlock_write w;
    if (!guard || weft_rwlock_write_init(&w, rw) != 0) {
        if (!guard)
            WEFT_MISUSE("weft_rwlock_write_blocking: NULL guard");
        return -EINVAL;
    }
    int rc = weft__block_poll(&w.base, guard, "weft_rwlock_write_blocking");
    weft_future_drop(&w.base);
    return rc;
}
