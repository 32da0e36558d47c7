/* Private: the waiter queue every sync primitive is built on — an
 * intrusive FIFO list of waiters under a spinlock, tokio's
 * `Mutex<LinkedList<Waiter>>`.
 *
 * A waiter lives inside the pinned future that waits (no allocation per
 * wait). The primitive's lock guards the list, each waiter's links, its
 * waker and its `data`; a waiter's `state` is also read without the lock
 * by the future that owns it, so that a poll after a wake can see "I was
 * served" with one acquire load and take no lock.
 *
 * Wakers are collected under the lock into a weft__wakeset and woken after
 * unlocking, so a lock hold is a few list operations however many tasks a
 * release wakes. */
#ifndef WEFT_SYNC_WAITQ_H
#define WEFT_SYNC_WAITQ_H

#include <stdbool.h>
#include <stdint.h>

#include "weft/sync.h"
#include "core/atomic.h"
#include "core/spinlock.h"

/* A waiter's state. IDLE: not in any list (never queued, or taken back).
 * QUEUED: in the list, not served. SERVED: taken off the list by the
 * primitive and given what it waited for (a permit, the lock, a
 * notification); its owner must consume it or, when dropped, hand it on. */
enum {
    WEFT__WAITER_IDLE = 0,
    WEFT__WAITER_QUEUED = 1,
    WEFT__WAITER_SERVED = 2,
};

/* The public types (weft/sync.h embeds them in its primitives and
 * waiting futures) under their private names. A waiter: its links, waker
 * and `data_` (the primitive's: permits wanted, reader or writer...) are
 * guarded by the queue's lock; `state_` is written under the lock with
 * release and read by the owning future with acquire, with or without the
 * lock. A queue: `lock_` is a spinlock word guarding `head_` (oldest) and
 * `tail_`. */
typedef weft_sync_waiter weft__waiter;
typedef weft_sync_queue weft__waitq;

void weft__waitq_init(weft__waitq *q);

static inline void weft__waitq_lock(weft__waitq *q) { weft__spin_lock_word(&q->lock_); }
static inline void weft__waitq_unlock(weft__waitq *q) { weft__spin_unlock_word(&q->lock_); }

/* Lock held for all of the following. */
static inline bool weft__waitq_empty(const weft__waitq *q) { return q->head_ == NULL; }
static inline weft__waiter *weft__waitq_front(const weft__waitq *q) { return q->head_; }

/* Initialise `w` as IDLE with no waker (before the owning future's first
 * poll; no lock). Inline: a channel send initialises one per item. */
static inline void weft__waiter_init(weft__waiter *w)
{
    w->prev_ = w->next_ = NULL;
    w->waker_ = (weft_waker)WEFT_WAKER_EMPTY;
    w->data_ = 0;
    weft_atomic_init(&w->state_, WEFT__WAITER_IDLE);
}
/* Append `w` (IDLE) at the back with a clone of `waker`; it becomes QUEUED. */
void weft__waitq_push_back(weft__waitq *q, weft__waiter *w, const weft_waker *waker);
/* Unlink `w` (QUEUED) without serving it; it becomes IDLE and its waker is
 * dropped. */
void weft__waitq_remove(weft__waitq *q, weft__waiter *w);
/* Replace a QUEUED waiter's waker with a clone of `waker` unless it wakes
 * the same task already. */
void weft__waiter_set_waker(weft__waiter *w, const weft_waker *waker);

/* Wakers to wake once the lock is released. */
#define WEFT__WAKESET_CAP 32
typedef struct weft__wakeset {
    unsigned n;
    weft_waker w[WEFT__WAKESET_CAP];
} weft__wakeset;

static inline void weft__wakeset_init(weft__wakeset *s) { s->n = 0; }
static inline bool weft__wakeset_full(const weft__wakeset *s)
{
    return s->n == WEFT__WAKESET_CAP;
}
/* Wake every collected waker (without the lock) and empty the set. */
void weft__wakeset_wake(weft__wakeset *s);

/* Unlink `w` (QUEUED), mark it SERVED and move its waker into `s`, which
 * must not be full (a primitive serving many waiters checks
 * weft__wakeset_full, unlocks, wakes the set and locks again). */
void weft__waitq_serve(weft__waitq *q, weft__waiter *w, weft__wakeset *s);

/* The owning future's lock-free look at its waiter: SERVED means the
 * primitive gave it what it waited for, and everything the server wrote
 * before serving is visible (acquire; pairs with the release in
 * weft__waitq_serve). */
static inline uint32_t weft__waiter_state(weft__waiter *w)
{
    return weft_atomic_load_acquire(&w->state_);
}

/* The owning future's poll of its waiter: the state it finds. SERVED: the
 * primitive gave it what it waited for, and what the server wrote before
 * serving is visible. QUEUED: still waiting, and its waker is now `waker`
 * (replaced under the queue's lock unless it wakes the same task). IDLE:
 * it was not queued. */
uint32_t weft__waiter_poll_queued(weft__waitq *q, weft__waiter *w, const weft_waker *waker);
static inline uint32_t weft__waiter_poll(weft__waitq *q, weft__waiter *w,
                                         const weft_waker *waker)
{
    /* Acquire: pairs with the release store of SERVED in
     * weft__waitq_serve. Inline: a lock's first poll comes here. */
    uint32_t st = weft_atomic_load_acquire(&w->state_);
    return st == WEFT__WAITER_QUEUED ? weft__waiter_poll_queued(q, w, waker) : st;
}

/* Consume a SERVED waiter's mark (the owner took what it was given):
 * back to IDLE so the future may wait again. Owner only, no lock needed
 * (nobody else touches a waiter that is not in a list). */
static inline void weft__waiter_reset(weft__waiter *w)
{
    weft_atomic_store_relaxed(&w->state_, WEFT__WAITER_IDLE);
}

/* Put `w` (IDLE) at the front with a clone of `waker`; it becomes QUEUED.
 * For a waiter that was served but could not use what it got (a mutex's
 * woken waiter that lost the lock to a running task): it keeps its turn. */
void weft__waitq_push_front(weft__waitq *q, weft__waiter *w, const weft_waker *waker);

#endif
