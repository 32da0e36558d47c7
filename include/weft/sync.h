/* weft — sync: primitives for tasks that share state and wait for each
 * other without blocking a worker. Notify, Semaphore, Mutex, RwLock,
 * Barrier, OnceCell, CancellationToken, WaitGroup (docs/sync.md).
 *
 * Common rules:
 *  - Every primitive is caller-owned: initialise it, share a pointer to
 *    it, and finalise it once nobody uses it any more. It must not move
 *    once used. All are Send: their futures may be polled on any worker.
 *  - Waiting is a future (caller-owned, pinned once polled). Its waiter
 *    node lives inside it, linked into the primitive's queue, so waiting
 *    allocates nothing. Dropping it is cancelling it: each waiting future
 *    states, beside its declaration, what a drop while pending loses
 *    (docs/cancel-safety.md lists them with the tests behind each row).
 *  - Waiters are served in FIFO order unless a primitive says otherwise.
 *  - The `_blocking` calls are for threads that run no tasks (a server's
 *    own threads): they park the thread. Called on a worker (or a sim
 *    runtime's thread) they return -EDEADLK, as weft_block_on does.
 *  - Misuse (an unlock by a guard that does not hold the lock, a
 *    primitive finalised with waiters) is reported in debug builds. */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "weft/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- waiter queues (weft's; embedded in the types below) ------------------ */

/* A waiter: one node of a primitive's FIFO queue, inside the future that
 * waits. Its fields are weft's. */
typedef struct weft_sync_waiter {
    struct weft_sync_waiter *prev_, *next_;
    weft_waker waker_;
    uintptr_t data_;
    WEFT_ATOMIC(uint32_t) state_;
    uint32_t reserved_;
} weft_sync_waiter;

/* A queue of waiters under a spinlock word. Its fields are weft's. */
typedef struct weft_sync_queue {
    WEFT_ATOMIC(uint32_t) lock_;
    uint32_t reserved_;
    weft_sync_waiter *head_, *tail_;
} weft_sync_queue;


/* ---- notify ------------------------------------------------------------------ */

/* A notification between tasks, tokio's Notify: one task tells another
 * "look again" without a value. `weft_notify_one` wakes the oldest waiter,
 * or, when nobody waits, stores one permit that the next wait consumes at
 * once (at most one: a second notify_one with nobody waiting stores
 * nothing more). `weft_notify_waiters` wakes every waiter there is at that
 * moment and stores nothing.
 *
 * A `weft_notified` counts as waiting from its initialisation for
 * notify_waiters, not from its first poll: it captures the notify's
 * notify_waiters count when initialised, and completes at its first poll
 * if a notify_waiters came since. So "initialise the future, check the
 * condition, then await it" cannot miss a notify_waiters sent between the
 * check and the await. (notify_one needs no such care: its permit waits.)
 *
 * Caller-owned; must not move once used. Pair init with fini; finalising
 * with waiters still queued is misuse (reported in debug builds). Every
 * call may come from any thread. */
typedef struct weft_notify {
    /* (notify_waiters calls << 2) | EMPTY, WAITING or NOTIFIED: written
     * by notify_one's fast path and by a waiter that takes the stored
     * permit without the lock, else under the queue's lock. */
    WEFT_ATOMIC(uintptr_t) state_;
    weft_sync_queue q_;
} weft_notify;

/* Initialise `n`: nobody waiting, no permit. Any thread. */
WEFT_API void weft_notify_init(weft_notify *n);
/* Finalise `n` (nothing to free). No waiter may remain (misuse). */
WEFT_API void weft_notify_fini(weft_notify *n);

/* Wake the oldest waiter, or store the permit when nobody waits (one at
 * most). Everything the caller did before is visible to the task that
 * completes because of it. Any thread; never blocks beyond the queue's
 * short spinlock (and not even that when nobody waits). */
WEFT_API void weft_notify_one(weft_notify *n);
/* Wake every waiter queued now, and every `weft_notified` initialised
 * before this call that is not queued yet (it completes at its next
 * poll). Stores no permit; a stored permit stays. Everything the caller
 * did before is visible to those waiters. Any thread. */
WEFT_API void weft_notify_waiters(weft_notify *n);

/* The future that waits for a notification. Output: none. Send.
 * Cancel safety: dropped while pending it loses only its place in the
 * queue. A notify_one that had already chosen it (and that it did not see)
 * is handed on, to the next waiter or back as the stored permit, so no
 * notify_one is ever lost; a notify_waiters that woke it is not (nothing
 * was stored for anyone else). Initialise with weft_notified_init; drop
 * like any future. Its fields are weft's. */
typedef struct weft_notified {
    weft_future base;
    weft_notify *n_;
    uintptr_t calls_; /* notify_waiters count at initialisation */
    uint32_t step_;   /* not polled yet / queued / done */
    uint32_t reserved_;
    weft_sync_waiter w_;
} weft_notified;

/* Initialise `nf` to wait on `n` (which must outlive it). From here on,
 * a notify_waiters call completes it. `n` NULL is misuse (reported; the
 * future completes at its first poll, as every call given a NULL notify
 * does nothing rather than crash). Any thread. */
WEFT_API void weft_notified_init(weft_notified *nf, weft_notify *n);

/* For threads that run no tasks: poll `nf` to completion, parking the
 * thread in between (it is not dropped: drop it after). Returns 0;
 * -EDEADLK on a worker or a sim runtime's thread (misuse, reported; not
 * polled); -ENOMEM (not polled); -EINVAL (nf NULL, not initialised, or
 * already completed; misuse, reported).
 * weft_notify_wait_blocking(n) does the same with a future of its own. */
WEFT_API WEFT_NODISCARD int weft_notified_wait_blocking(weft_notified *nf);
WEFT_API WEFT_NODISCARD int weft_notify_wait_blocking(weft_notify *n);



/* ---- semaphore ------------------------------------------------------------------ */

/* A counting semaphore, tokio's batch semaphore: fair (strict FIFO) and
 * with partial grants. Released permits go to the oldest waiter first; a
 * waiter wanting 3 when 2 are free is given the 2 (kept in its node) and
 * waits for the third, and nobody queued behind it passes it, so a large
 * request is never starved by small ones. `weft_semaphore_try_acquire`
 * does not barge either: with waiters queued it fails.
 *
 * Uncontended, acquire is one CAS on the permit word and release one
 * atomic add. Closing makes every pending and later acquire fail with
 * -EPIPE; releases after a close still count (weft_semaphore_available).
 * Permits are not owned by anybody: what an acquire took comes back only
 * through weft_semaphore_release (or a drop while pending, below).
 *
 * Caller-owned; must not move once used. Pair init with fini; finalising
 * with waiters still queued is misuse (reported in debug builds). Every
 * call may come from any thread. */

/* At most this many permits, in the semaphore or in one call. */
#define WEFT_SEMAPHORE_MAX (SIZE_MAX >> 3)

typedef struct weft_semaphore {
    /* (available << 2) | WAITERS | CLOSED. available and CLOSED change
     * with or without the lock; WAITERS (the queue is not empty) only
     * under it. */
    WEFT_ATOMIC(size_t) permits_;
    weft_sync_queue q_;
} weft_semaphore;

/* Initialise `s` with `permits` available. Returns 0, or -EINVAL (s NULL,
 * permits above WEFT_SEMAPHORE_MAX). Any thread. */
WEFT_API WEFT_NODISCARD int weft_semaphore_init(weft_semaphore *s, size_t permits);
/* Finalise `s` (nothing to free). No waiter may remain (misuse). */
WEFT_API void weft_semaphore_fini(weft_semaphore *s);

/* Take `n` permits now or not at all. Returns 0; -EAGAIN when fewer than
 * `n` are available or any acquire is queued (it never passes a waiter);
 * -EPIPE once closed; -EINVAL (s NULL, n above WEFT_SEMAPHORE_MAX).
 * n == 0 takes nothing and succeeds unless closed. Any thread. */
WEFT_API WEFT_NODISCARD int weft_semaphore_try_acquire(weft_semaphore *s, size_t n);

/* Give `n` permits back (or add new ones): to the queued waiters, oldest
 * first, and the rest to the semaphore. Everything the caller did before
 * is visible to whoever acquires them. Counts after a close too. Returns
 * 0, or -EINVAL (s NULL, or more than WEFT_SEMAPHORE_MAX would be
 * available: nothing is added; misuse, reported). Any thread. */
WEFT_API WEFT_NODISCARD int weft_semaphore_release(weft_semaphore *s, size_t n);

/* Permits available now (a snapshot; 0 while any acquire is queued,
 * except for a moment while a release hands them over). Any thread. */
WEFT_API size_t weft_semaphore_available(weft_semaphore *s);

/* Close `s`: every queued acquire completes with -EPIPE (permits it had
 * been partly given go back to the semaphore), and so does every later
 * one. Releases still count. Idempotent. Any thread. */
WEFT_API void weft_semaphore_close(weft_semaphore *s);

/* The future that acquires `n` permits. Output: int — 0 (the caller now
 * holds `n` permits: give them back with weft_semaphore_release), -EPIPE
 * (closed; holds nothing) or -EINVAL (s NULL or n above
 * WEFT_SEMAPHORE_MAX; misuse, reported at init). n == 0 completes at once with 0 (-EPIPE if closed). Send.
 * Cancel safety: dropped while pending it loses only its place in the
 * queue: permits it had been partly given, or all `n` if it was served
 * but had not seen it yet, go back to the semaphore (to the next waiters
 * first). Dropped after READY it gives nothing back: the caller holds
 * what it got. Initialise with weft_semaphore_acquire_init; drop like any
 * future. Its fields are weft's. */
typedef struct weft_semaphore_acquire {
    weft_future base;
    weft_semaphore *s_;
    size_t n_;
    uint32_t step_; /* not polled yet / queued / done */
    uint32_t reserved_;
    weft_sync_waiter w_; /* data_: permits still needed while queued */
} weft_semaphore_acquire;

/* Initialise `a` to acquire `n` permits of `s` (which must outlive it).
 * Any thread. */
WEFT_API void weft_semaphore_acquire_init(weft_semaphore_acquire *a, weft_semaphore *s,
                                          size_t n);

/* For threads that run no tasks: acquire `n` permits, parking the thread
 * until they are given. Returns 0 (held), -EPIPE (closed), -EINVAL (s
 * NULL, n too large), -EDEADLK on a worker or a sim runtime's thread
 * (misuse, reported; nothing taken, nothing queued) or -ENOMEM. */
WEFT_API WEFT_NODISCARD int weft_semaphore_acquire_blocking(weft_semaphore *s, size_t n);



/* ---- mutex ---------------------------------------------------------------------- */

/* An async mutex: tasks take turns on shared state, waiting for the lock
 * without blocking a worker. Not reentrant. Locking is a future whose
 * output is a guard; unlock through the guard (tokio's MutexGuard, in C).
 *
 * Fairness (docs/sync.md, "Mutex"): a running task may take a free lock
 * even while others wait (barging), so a lock freed and retaken in one
 * poll costs no task switch; a waiter that has waited 1 ms or more turns
 * the mutex into strict FIFO hand-off until the queue drains, so no
 * waiter is passed over forever.
 *
 * Memory model: everything the holder wrote before weft_mutex_unlock is
 * visible to the next holder once its lock completes (release/acquire,
 * by the state word or by the hand-off).
 *
 * Caller-owned, must not move once used; pair weft_mutex_init with
 * weft_mutex_fini. Its fields are weft's: `state_` is the lock word
 * (LOCKED, WOKEN, STARVING bits and the count of queued waiters), any
 * thread; `q_` the queue of waiting lock futures. */
typedef struct weft_mutex {
    WEFT_ATOMIC(uint32_t) state_;
    uint32_t reserved_;
    weft_sync_queue q_;
} weft_mutex;

/* Proof of holding a mutex: the lock's output. `mutex` names the mutex
 * held, NULL once unlocked (an empty guard). Copy it freely, unlock it
 * once. */
typedef struct weft_mutex_guard {
    weft_mutex *mutex;
} weft_mutex_guard;

/* Initialise `m` unlocked. Any thread. Pair with weft_mutex_fini. */
WEFT_API void weft_mutex_init(weft_mutex *m);
/* Finalise `m` once nobody uses it. Finalising a locked mutex, or one with
 * waiters, is misuse (reported in debug builds; nothing is freed either
 * way). */
WEFT_API void weft_mutex_fini(weft_mutex *m);

/* Take `m` if it is free, without waiting: returns 0 and fills `*guard`,
 * or -EAGAIN (held, or handed to a waiter), or -EINVAL (a NULL argument).
 * Any thread. */
WEFT_API WEFT_NODISCARD int weft_mutex_try_lock(weft_mutex *m, weft_mutex_guard *guard);

/* Release the mutex `guard` holds and empty the guard. The next holder is
 * a running task that locks first, or the oldest waiter (woken to retry,
 * or handed the lock when the mutex is in starvation mode). Returns 0, or
 * -EINVAL for an empty or NULL guard, or a guard of a mutex that is not
 * locked (unlocked twice through a copy): misuse, reported in debug
 * builds; the mutex is left as it was. Any thread (a guard may be sent). */
WEFT_API WEFT_NODISCARD int weft_mutex_unlock(weft_mutex_guard *guard);

/* The lock future. Output: a weft_mutex_guard holding the mutex. Send.
 * Its waiter node lives inside it: no allocation.
 * Cancel safety: dropping it while pending loses only its place in the
 * queue — a queued waiter unlinks itself; one the lock was already handed
 * to unlocks it (the lock goes on to the next); one woken to retry passes
 * the wake on to the next waiter. The mutex is never left locked by a
 * dropped future, and no wake is lost. Fields are weft's. */
typedef struct weft_mutex_lock {
    weft_future base;
    weft_mutex *mutex_;
    weft_sync_waiter waiter_;
    uint64_t since_; /* first queued (weft_now), 0: not yet */
    bool woken_;     /* holds the mutex's WOKEN claim: must retry or pass it */
} weft_mutex_lock;

/* Initialise `l` to lock `m` (nothing happens until it is polled). It may
 * be moved until its first poll; drop it like any future. Returns 0, or
 * -EINVAL (a NULL argument; `l` is then not initialised). Any thread. */
WEFT_API WEFT_NODISCARD int weft_mutex_lock_init(weft_mutex_lock *l, weft_mutex *m);

/* Lock `m` from a thread that runs no tasks, parking it until the lock is
 * taken: returns 0 and fills `*guard`; -EDEADLK on a worker or a sim
 * runtime's thread (misuse, reported; nothing waits); -EINVAL (a NULL
 * argument); -ENOMEM. It queues like any lock future. */
WEFT_API WEFT_NODISCARD int weft_mutex_lock_blocking(weft_mutex *m, weft_mutex_guard *guard);



/* ---- rwlock --------------------------------------------------------------------- */

/* An async reader-writer lock: many readers or one writer. Writer-
 * preferring and FIFO: once anybody waits, new readers and writers queue
 * behind it, so readers never starve a writer; when the lock frees, the
 * front writer, or the whole run of readers at the front of the queue, is
 * admitted together (tokio's RwLock, on its fair semaphore).
 *
 * Memory model: a writer's unlock publishes its writes to every later
 * holder; a reader's lock sees every earlier writer's writes.
 *
 * At most WEFT_RWLOCK_MAX_READERS readers hold it at once: beyond that
 * weft_rwlock_try_read returns -EAGAIN and a read future waits in the
 * queue until a reader leaves.
 *
 * Caller-owned, must not move once used; pair weft_rwlock_init with
 * weft_rwlock_fini. Its fields are weft's: `state_` (WRITER, QUEUED bits
 * and the reader count; any thread) and `q_`, the queue of waiting read
 * and write futures. */
#define WEFT_RWLOCK_MAX_READERS ((1u << 30) - 1u)

typedef struct weft_rwlock {
    WEFT_ATOMIC(uint32_t) state_;
    uint32_t reserved_;
    weft_sync_queue q_;
} weft_rwlock;

/* Proof of holding a read lock (the read future's output); `rwlock` is
 * NULL once unlocked. Unlock it once, with weft_rwlock_read_unlock. */
typedef struct weft_rwlock_read_guard {
    weft_rwlock *rwlock;
} weft_rwlock_read_guard;

/* Proof of holding the write lock (the write future's output); `rwlock`
 * is NULL once unlocked. Unlock it once, with weft_rwlock_write_unlock. */
typedef struct weft_rwlock_write_guard {
    weft_rwlock *rwlock;
} weft_rwlock_write_guard;

/* Initialise `rw` unlocked. Any thread. Pair with weft_rwlock_fini. */
WEFT_API void weft_rwlock_init(weft_rwlock *rw);
/* Finalise `rw` once nobody uses it; finalising it held or with waiters
 * is misuse (reported in debug builds). */
WEFT_API void weft_rwlock_fini(weft_rwlock *rw);

/* Take a read lock without waiting: 0 (and `*guard` filled), -EAGAIN
 * (write-locked, somebody queued — a writer may be among them — or
 * WEFT_RWLOCK_MAX_READERS readers hold it), -EINVAL (NULL). Any thread. */
WEFT_API WEFT_NODISCARD int weft_rwlock_try_read(weft_rwlock *rw, weft_rwlock_read_guard *guard);
/* Take the write lock without waiting: 0, -EAGAIN (held or queued for),
 * -EINVAL (NULL). Any thread. */
WEFT_API WEFT_NODISCARD int weft_rwlock_try_write(weft_rwlock *rw, weft_rwlock_write_guard *guard);

/* Release a read lock and empty the guard; the last reader out admits
 * the waiter at the front. Returns 0, or -EINVAL (an empty or NULL
 * guard, or no reader holds the lock: misuse, reported in debug builds;
 * nothing changes). Any thread. */
WEFT_API WEFT_NODISCARD int weft_rwlock_read_unlock(weft_rwlock_read_guard *guard);
/* Release the write lock and empty the guard, admitting the front writer
 * or the run of readers at the front. Returns 0, or -EINVAL as above
 * (the lock is not write-locked). Any thread. */
WEFT_API WEFT_NODISCARD int weft_rwlock_write_unlock(weft_rwlock_write_guard *guard);

/* The read and write futures. Output: a weft_rwlock_read_guard, or a
 * weft_rwlock_write_guard. Send. The waiter node lives inside: no
 * allocation. Cancel safety: dropping one while pending loses only its
 * place in the queue — a queued one unlinks itself (and if it was a
 * writer holding readers back, those readers are admitted); one already
 * admitted before it saw it unlocks at once, handing the lock on. Fields
 * are weft's. */
typedef struct weft_rwlock_read {
    weft_future base;
    weft_rwlock *rwlock_;
    weft_sync_waiter waiter_;
} weft_rwlock_read;

typedef struct weft_rwlock_write {
    weft_future base;
    weft_rwlock *rwlock_;
    weft_sync_waiter waiter_;
} weft_rwlock_write;

/* Initialise a read (write) future on `rw`; it may be moved until its
 * first poll. Returns 0, or -EINVAL (a NULL argument; the future is then
 * not initialised). Any thread. */
WEFT_API WEFT_NODISCARD int weft_rwlock_read_init(weft_rwlock_read *r, weft_rwlock *rw);
WEFT_API WEFT_NODISCARD int weft_rwlock_write_init(weft_rwlock_write *w, weft_rwlock *rw);



/* ---- barrier -------------------------------------------------------------------- */

/* (barrier: to be written) */



/* ---- once cell ------------------------------------------------------------------- */

/* (once cell: to be written) */



/* ---- cancellation token ------------------------------------------------------------ */

/* (cancellation token: to be written) */



/* ---- wait group ------------------------------------------------------------------- */

/* (wait group: to be written) */



#ifdef __cplusplus
}
#endif
#endif /* WEFT_SYNC_H */
