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

/* (notify: to be written) */



/* ---- semaphore ------------------------------------------------------------------ */

/* (semaphore: to be written) */



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
