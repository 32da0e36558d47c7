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

/* For threads that run no tasks: take a read (write) lock of `rw`, parking
 * the thread until it is given, in the same FIFO queue as the futures.
 * Returns 0 (the guard holds it), -EINVAL (a NULL argument), -EDEADLK on
 * a worker or a sim runtime's thread (misuse, reported; nothing queued)
 * or -ENOMEM. */
WEFT_API WEFT_NODISCARD int weft_rwlock_read_blocking(weft_rwlock *rw,
                                                      weft_rwlock_read_guard *guard);
WEFT_API WEFT_NODISCARD int weft_rwlock_write_blocking(weft_rwlock *rw,
                                                       weft_rwlock_write_guard *guard);



/* ---- barrier -------------------------------------------------------------------- */

/* A barrier of `n` parties (tokio's Barrier): each party awaits a
 * weft_barrier_wait; the n-th to arrive releases the generation and is its
 * leader (exactly one per generation), and the barrier is ready for the
 * next generation at once. Caller-owned; must not move once used; pair
 * weft_barrier_init with weft_barrier_fini. Any thread. */
typedef struct weft_barrier {
    weft_sync_queue q_;   /* parties waiting, tagged with their generation */
    uint32_t n_;          /* parties per generation; set at init */
    uint32_t arrived_;    /* this generation's arrivals; under q_'s lock */
    uint64_t generation_; /* generations released; under q_'s lock */
} weft_barrier;

/* Returns 0, or -EINVAL (b NULL, n zero; debug builds report it). */
WEFT_API WEFT_NODISCARD int weft_barrier_init(weft_barrier *b, uint32_t n);
/* Once no wait is pending (one is misuse, reported in debug builds). */
WEFT_API void weft_barrier_fini(weft_barrier *b);

/* Arrive at the barrier and wait for the generation to fill. The arrival
 * happens at the first poll. Output: bool, true for the generation's
 * leader (the last to arrive, which does not wait), false for the others.
 * Send.
 * Cancel safety: dropped while pending, the arrival is taken back, as if
 * this party had never come: the generation waits for another party, and
 * nothing else is lost (a timeout around a wait can be retried). Dropped
 * after the generation filled but before seeing it, the arrival stays
 * counted (the others were released with it); only the output is lost. */
typedef struct weft_barrier_wait {
    weft_future base;
    weft_barrier *barrier_;
    weft_sync_waiter w_;
    bool arrived_; /* owner only */
} weft_barrier_wait;

/* Initialise `f` to wait at `b` (caller-owned; movable until its first
 * poll; drop it like any future). With `b` NULL the wait reports misuse
 * and stays PENDING. Any thread. */
WEFT_API void weft_barrier_wait_init(weft_barrier_wait *f, weft_barrier *b);



/* ---- once cell ------------------------------------------------------------------- */

/* A cell initialised at most once, by an async initialiser (tokio's
 * OnceCell). The value lives in a buffer of the caller's (`size` bytes,
 * given at init). Callers race weft_once_get_or_init; one of them wins the
 * right to initialise and polls its init future, the others wait. If the
 * initialiser fails or is dropped, the cell is empty again and the oldest
 * waiter becomes the next initialiser, with its own init future. Once set,
 * the value never changes. Caller-owned; must not move once used; pair
 * weft_once_init with weft_once_fini. Any thread. */
typedef struct weft_once {
    weft_sync_queue q_;   /* callers waiting while an initialiser runs */
    WEFT_ATOMIC(uint32_t) state_; /* empty, running or set: written under
                                     q_'s lock, set read lock-free */
    uint32_t reserved_;
    void *value_;         /* the caller's buffer */
    size_t size_;
} weft_once;

/* Returns 0, or -EINVAL (c or buf NULL, size zero; reported in debug
 * builds). `buf` is the caller's and must outlive the cell. */
WEFT_API WEFT_NODISCARD int weft_once_init(weft_once *c, void *buf, size_t size);
/* Once no get_or_init is alive (one is misuse, reported in debug builds).
 * The buffer stays the caller's, with the value in it. */
WEFT_API void weft_once_fini(weft_once *c);

/* The value, or NULL while the cell is not set. Never waits. A non-NULL
 * result sees every byte the initialiser wrote (acquire). Any thread. */
WEFT_API const void *weft_once_get(const weft_once *c);

/* Set the cell to a copy of `value` (`size` bytes) unless it is set or
 * being initialised. Returns 0, -EEXIST (already set), -EBUSY (an
 * initialiser is running: it will set it or hand the right on), or
 * -EINVAL (a NULL argument). Any thread. */
WEFT_API WEFT_NODISCARD int weft_once_set(weft_once *c, const void *value);

/* Wait until the cell is set, initialising it with `init` if this caller
 * wins the right to. `init` is a future whose output is an int status:
 * before returning 0 it writes the value into the cell's buffer (its
 * caller gave that buffer to weft_once_init, and only the one initialiser
 * writes it, so it needs no lock); a negative status is a failure, and the
 * cell stays empty. The get_or_init owns `init` from init on and drops it
 * exactly once (at once when the cell turns out set, after it completes,
 * or with the get_or_init); like weft_timeout_init it finds `init` by its
 * offset, so the two must move together until the first poll (put `init`
 * in the same struct). Output: int, 0 when the cell is set (by this
 * caller or another; weft_once_get gives the value), else the failed
 * init's status. `status` holds the same after READY.
 * Send when `init` is.
 * Cancel safety: a waiter dropped while pending loses its place in line.
 * Dropped while its init runs, the init is dropped and the cell goes back
 * to empty: the oldest waiter becomes the next initialiser (with its own
 * init). Dropped after it was handed the right but before using it, it
 * hands the right on the same way. Nothing is ever lost but the dropped
 * caller's own init work. */
typedef struct weft_once_get_or_init {
    weft_future base;
    weft_once *cell_;
    weft_sync_waiter w_;
    ptrdiff_t init_off_; /* init's address minus this future's */
    uint8_t phase_;      /* owner only: start, queued, running, done */
    bool init_dropped_;  /* owner only */
    int status;          /* after READY: the output */
} weft_once_get_or_init;

/* Returns 0, or -EINVAL (a NULL argument, `init` without ops or poll, or
 * an init whose output is not an int; the caller keeps `init`). Any
 * thread. */
WEFT_API WEFT_NODISCARD int weft_once_get_or_init_init(weft_once_get_or_init *f, weft_once *c,
                                                      weft_future *init);



/* ---- cancellation token ------------------------------------------------------------ */

/* A cancellation token (tokio-util's CancellationToken): a flag that goes
 * from "not cancelled" to "cancelled" once, with a future that waits for
 * it, arranged in a tree. Cancelling a token cancels every descendant;
 * cancelling a child leaves its parent and siblings alone. Caller-owned;
 * must not move once used; pair weft_cancel_token_init or
 * weft_cancel_token_init_child with weft_cancel_token_fini. A parent must
 * be finalised after its children (one finalised with children still
 * linked is misuse, reported in debug builds). Any thread. */
typedef struct weft_cancel_token {
    weft_sync_queue q_;   /* waiters; its lock also guards the list of
                             children (first_child_ and each child's
                             sibling links and linked_) */
    WEFT_ATOMIC(uint32_t) cancelled_; /* 0 -> 1 once, under q_'s lock */
    WEFT_ATOMIC(uint32_t) busy_;      /* a parent's cancel is cancelling
                                         this token (set under the
                                         parent's lock, cleared last) */
    struct weft_cancel_token *parent_; /* NULL for a root; never changes */
    struct weft_cancel_token *first_child_;
    struct weft_cancel_token *prev_sibling_, *next_sibling_;
    bool linked_;         /* in parent_'s list; under the parent's lock */
} weft_cancel_token;

/* A root token, not cancelled. Returns 0 or -EINVAL (t NULL). */
WEFT_API WEFT_NODISCARD int weft_cancel_token_init(weft_cancel_token *t);
/* A child of `parent`, linked into its list; cancelled at once when the
 * parent already is. Returns 0 or -EINVAL (a NULL argument). Any thread,
 * concurrently with anything done to the parent. */
WEFT_API WEFT_NODISCARD int weft_cancel_token_init_child(weft_cancel_token *child,
                                                         weft_cancel_token *parent);
/* Unlink `t` from its parent (at any time, also while another thread
 * cancels the parent: it then waits until that cancel is done with `t`).
 * No cancelled future may be pending on `t`, and its children must have
 * been finalised (either is misuse, reported in debug builds). */
WEFT_API void weft_cancel_token_fini(weft_cancel_token *t);

/* Cancel `t` and every descendant, each once, and wake every task waiting
 * on any of them. Idempotent; cancelling a child does not touch its
 * parent. On return `t` and all its descendants are cancelled, unless
 * another thread's cancel of `t` is still cancelling them. Returns 0 or
 * -EINVAL (t NULL). Any thread; never waits for a task. */
WEFT_API WEFT_NODISCARD int weft_cancel_token_cancel(weft_cancel_token *t);
/* One acquire load: true once `t` is cancelled, and then everything the
 * canceller did before cancelling is visible. Any thread. */
WEFT_API bool weft_cancel_token_is_cancelled(const weft_cancel_token *t);

/* Wait until the token is cancelled (READY at once if it is). Output:
 * none. Send. Cancel safety: nothing is lost (the waiter is unlinked; a
 * cancel is a state, not an event: a later wait sees it). */
typedef struct weft_cancel_token_cancelled {
    weft_future base;
    weft_cancel_token *token_;
    weft_sync_waiter w_;
    bool queued_; /* owner only */
} weft_cancel_token_cancelled;

/* Initialise `f` to wait for `t` (movable until its first poll). With
 * `t` NULL it reports misuse and stays PENDING. Any thread. */
WEFT_API void weft_cancel_token_cancelled_init(weft_cancel_token_cancelled *f,
                                               weft_cancel_token *t);



/* ---- wait group ------------------------------------------------------------------- */

/* A wait group (Go's sync.WaitGroup): a count of work in flight, and a
 * future that waits for it to reach zero. add may be called at any time,
 * also while a wait is pending (the wait then waits for the new work too,
 * as in Go while the count is above zero); a wait that finds the count at
 * zero is ready at once. Each time the count reaches zero every pending
 * wait is released, and the group can be used again. Caller-owned; must
 * not move once used; pair weft_wait_group_init with weft_wait_group_fini.
 * Any thread. */
typedef struct weft_wait_group {
    weft_sync_queue q_; /* waits pending */
    uint64_t count_;    /* under q_'s lock */
} weft_wait_group;

/* Count zero. Returns 0 or -EINVAL (wg NULL). */
WEFT_API WEFT_NODISCARD int weft_wait_group_init(weft_wait_group *wg);
/* Once no wait is pending (one is misuse, reported in debug builds). */
WEFT_API void weft_wait_group_fini(weft_wait_group *wg);
/* Add `n` to the count. Returns 0, or -EINVAL (wg NULL, n zero, or a
 * count that would pass UINT32_MAX; reported in debug builds, count
 * unchanged). Any thread. */
WEFT_API WEFT_NODISCARD int weft_wait_group_add(weft_wait_group *wg, uint32_t n);
/* Take one from the count; at zero, wake every pending wait. Returns 0,
 * or -EINVAL (wg NULL, or the count already zero: more done than add,
 * reported in debug builds, count unchanged). Any thread. */
WEFT_API WEFT_NODISCARD int weft_wait_group_done(weft_wait_group *wg);

/* Wait until the count is zero. Output: none. Send.
 * Cancel safety: nothing is lost (the waiter is unlinked; the count is
 * not touched). */
typedef struct weft_wait_group_wait {
    weft_future base;
    weft_wait_group *wg_;
    weft_sync_waiter w_;
    bool queued_; /* owner only */
} weft_wait_group_wait;

/* Initialise `f` to wait on `wg` (movable until its first poll). With
 * `wg` NULL it reports misuse and stays PENDING. Any thread. */
WEFT_API void weft_wait_group_wait_init(weft_wait_group_wait *f, weft_wait_group *wg);

/* Park the calling thread until the count is zero. For threads that run
 * no tasks (a server thread waiting for the tasks it spawned). Returns 0,
 * -EINVAL (wg NULL), -EDEADLK (on a worker or a sim's thread; reported)
 * or -ENOMEM. */
WEFT_API WEFT_NODISCARD int weft_wait_group_wait_blocking(weft_wait_group *wg);



#ifdef __cplusplus
}
#endif
#endif /* WEFT_SYNC_H */
