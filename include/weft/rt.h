/* weft — the runtime: worker threads, spawning, join handles, block_on.
 *
 * A runtime owns N worker threads. Each worker runs tasks from its own
 * lock-free run queue, a LIFO slot for the task just woken or spawned, and
 * an inbox for its local (non-Send) tasks; idle workers steal half of a
 * busy worker's queue. A task is one allocation holding its pinned future
 * and its output. */
#ifndef WEFT_RT_H
#define WEFT_RT_H

#include "weft/future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_rt weft_rt;
struct weft__task;

/* Runtime options. Start from WEFT_RT_OPTIONS_INIT and set what you need. */
typedef struct weft_rt_options {
    unsigned workers;               /* 0: number of online CPUs */
    const char *thread_name_prefix; /* NULL: "weft-w"; the worker index is
                                       appended (Linux truncates to 15) */
    size_t stack_size;              /* 0: the platform default */
} weft_rt_options;

#define WEFT_RT_OPTIONS_INIT { 0, NULL, 0 }

/* Upper bound on `workers`. */
#define WEFT_RT_MAX_WORKERS 256u

/* Create a runtime and start its workers. `opts` NULL means defaults.
 * Returns 0 and stores the runtime in `*out`, or -EINVAL (workers above
 * WEFT_RT_MAX_WORKERS, out NULL, a stack size the system refuses),
 * -ENOMEM, or -EAGAIN (a thread could not be started); on error nothing is
 * left running or allocated.
 * Any non-worker thread. Pair with weft_rt_shutdown(). */
WEFT_API WEFT_NODISCARD int weft_rt_new(weft_rt **out, const weft_rt_options *opts);

/* Stop the runtime and free it: every task not yet complete is cancelled
 * (its future dropped), join handles then yield -ECANCELED, worker threads
 * are joined, and every byte the runtime allocated is freed. Join handles
 * and wakers still held by the caller stay valid: wakes become no-ops and
 * each handle frees its task when dropped. Call from a non-worker thread,
 * once, when no other thread will call into this runtime any more except
 * through join handles and wakers; `rt` NULL is a no-op. */
WEFT_API void weft_rt_shutdown(weft_rt *rt);

/* The runtime whose worker (or weft_block_on) is running the calling
 * thread, or NULL. */
WEFT_API weft_rt *weft_rt_current(void);

/* Index of the calling worker thread in its runtime, or -1 when the calling
 * thread is not a worker. */
WEFT_API int weft_worker_index(void);

/* ---- join handles -------------------------------------------------------- */

/* A join handle is a future (caller-owned, pinned once polled) that
 * completes when its task does. Its output is the task's output
 * (weft_future_out_size() of the spawned future, copied to `out`), and
 * `status` is then 0, or -ECANCELED when the task was aborted or the
 * runtime shut down first (the output bytes are zero then). `status` stays
 * readable after the handle is dropped. Dropping the handle detaches the
 * task: it keeps running and frees its output when it completes.
 * Send. Cancel safety: dropping a pending join loses nothing but the
 * output; the task keeps running. `status` is meaningful only after the
 * handle returned READY (a handle dropped while pending leaves it 0). */
typedef struct weft_join {
    weft_future base;
    struct weft__task *task; /* NULL once dropped or detached */
    int status;
} weft_join;

/* Spawn `fut` (of `fut_size` bytes, memcpy'd into the task and pinned
 * there) on `rt`, or on the current runtime when `rt` is NULL. `fut` must
 * carry WEFT_F_SEND and must not have been polled yet. If `join` is not
 * NULL it is initialised as the task's join handle; otherwise the task is
 * detached.
 * Returns 0 (the task owns the future; the caller must not drop its copy),
 * or — with the caller still owning `fut`, and nothing spawned —
 * -EINVAL (NULL fut, fut_size smaller than a weft_future, no poll function,
 * no runtime, or an already polled future), -EPERM (fut is not Send; debug
 * builds name it), -ENOMEM, or -ECANCELED (the runtime is shutting down).
 * Any thread, including workers and foreign threads. */
WEFT_API WEFT_NODISCARD int weft_spawn(weft_rt *rt, const weft_future *fut,
                                       size_t fut_size, weft_join *join);

/* Spawn a local task: it is polled only on the calling worker (never
 * stolen), also when woken from other threads; `fut` need not be Send.
 * Returns as weft_spawn, plus -EPERM when the calling thread is not a
 * worker. Worker threads only. */
WEFT_API WEFT_NODISCARD int weft_spawn_local(const weft_future *fut, size_t fut_size,
                                             weft_join *join);

/* Ask the task to stop: its future is dropped at its next scheduling point
 * on a worker (at once if idle, after the current poll if running), and the
 * join handle yields -ECANCELED. No effect on a completed task. Any thread. */
WEFT_API void weft_join_abort(const weft_join *join);

/* Detach: same as dropping the handle (weft_future_drop). */
WEFT_API void weft_join_detach(weft_join *join);

/* True once the task has completed (or was cancelled); then polling the
 * handle returns READY. Any thread. */
WEFT_API bool weft_join_is_finished(const weft_join *join);

/* ---- block_on ------------------------------------------------------------ */

/* Run `fut` to completion on the calling thread (which parks between
 * polls), with `rt` as the current runtime, then drop it. `fut` need not be
 * Send; it is polled in place and must not move while this runs. `out`
 * receives the output; `out_size` must equal weft_future_out_size(fut).
 * Returns 0 (the future was dropped), or — with the caller still owning
 * `fut`, which was not polled — -EINVAL (NULL arguments, size mismatch,
 * malformed ops, already polled), -EDEADLK (called from a worker thread: it would block
 * that worker), or -ENOMEM. Non-worker threads only. */
WEFT_API WEFT_NODISCARD int weft_block_on(weft_rt *rt, weft_future *fut,
                                          void *out, size_t out_size);

/* ---- statistics ---------------------------------------------------------- */

typedef struct weft_worker_stats {
    uint64_t polls;          /* task polls */
    uint64_t steals;         /* tasks taken from other workers */
    uint64_t steal_ops;      /* successful steal operations */
    uint64_t parks;          /* times the worker slept */
    uint64_t injector_pulls; /* tasks taken from the global queue */
    uint64_t lifo_hits;      /* tasks run from the LIFO slot */
    uint64_t overflows;      /* times half the queue moved to the injector */
    uint64_t queue_depth;    /* tasks in the local queue at sampling time */
} weft_worker_stats;

/* Copy up to `*n` workers' counters into `out` and set `*n` to the number
 * of workers. Counters are sampled while the runtime runs (each is exact;
 * they are not a consistent snapshot of each other). Returns 0 or -EINVAL.
 * Any thread while `rt` is alive. */
WEFT_API WEFT_NODISCARD int weft_rt_stats(weft_rt *rt, weft_worker_stats *out,
                                          unsigned *n);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_RT_H */
