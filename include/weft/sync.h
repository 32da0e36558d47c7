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
