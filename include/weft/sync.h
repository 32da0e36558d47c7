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

/* (mutex: to be written) */



/* ---- rwlock --------------------------------------------------------------------- */

/* (rwlock: to be written) */



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
