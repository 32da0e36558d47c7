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

#include <stdio.h>

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
    size_t stack_size;              /* 0: the platform default; raised to
                                       the system's minimum; at most
                                       WEFT_RT_MAX_STACK_SIZE */
    unsigned blocking_threads_max;  /* 0: WEFT_BLOCKING_THREADS_DEFAULT;
                                       at most WEFT_BLOCKING_THREADS_MAX
                                       (see "blocking pool") */
    uint64_t blocking_idle_timeout; /* a weft_duration (ns): how long a
                                       blocking-pool thread waits for a
                                       job before it exits; 0: 10 s */
} weft_rt_options;

#define WEFT_RT_OPTIONS_INIT { 0, NULL, 0, 0, 0 }

/* Upper bound on `workers`. */
#define WEFT_RT_MAX_WORKERS 256u

/* Upper bound on `stack_size`: 1 GiB, far beyond what a worker needs; a
 * larger request is a mistake (a unit error, an uninitialised field). */
#define WEFT_RT_MAX_STACK_SIZE ((size_t)1 << 30)

/* Create a runtime and start its workers. `opts` NULL means defaults.
 * Returns 0 and stores the runtime in `*out`, or -EINVAL (out NULL,
 * workers above WEFT_RT_MAX_WORKERS, stack_size above
 * WEFT_RT_MAX_STACK_SIZE — checked before anything starts — or a stack
 * size the system calls invalid), -ENOMEM (no memory, also when thread
 * creation reports it), or -EAGAIN (a worker thread could not be started,
 * e.g. the thread limit, or no room for a stack that large); on error
 * nothing is left running or allocated.
 * Any non-worker thread. Pair with weft_rt_shutdown(). */
WEFT_API WEFT_NODISCARD int weft_rt_new(weft_rt **out, const weft_rt_options *opts);

/* Stop the runtime and free it: every task not yet complete is cancelled
 * (its future dropped: a local task's on its owner worker, the others on
 * the calling thread), join handles then yield -ECANCELED, worker threads
 * are joined, and every byte the runtime allocated is freed. Join handles
 * and wakers still held by the caller stay valid: wakes become no-ops and
 * each handle frees its task when dropped. Call from a non-worker thread
 * (on a worker: reported in debug builds, and ignored), once; `rt` NULL is
 * a no-op. Other threads may still use join handles and wakers, and may
 * spawn while this runs (see weft_spawn). After it returned, the runtime's
 * memory lives only as long as a join handle or waker of one of its tasks:
 * meanwhile a spawn returns -ECANCELED and a second shutdown is ignored
 * (debug builds report it). Once the memory is gone, any call with `rt`
 * uses freed memory; debug builds catch it in weft_rt_shutdown (reported,
 * ignored), weft_spawn and weft_rt_stats (reported, -EINVAL), unless a
 * new runtime got the same address. */
WEFT_API void weft_rt_shutdown(weft_rt *rt);

/* Graceful shutdown: let the tasks run for up to `d` (a weft_duration,
 * ns) to finish on their own, then shut down as weft_rt_shutdown does
 * (every task left is cancelled, its join handle yields -ECANCELED; the
 * blocking pool's queued jobs are cancelled and its running ones waited
 * for). Spawns are still accepted during the grace period (a task may
 * need a helper to finish) and count as tasks to wait for. The wait ends
 * as soon as no task is left (checked every millisecond or so on the
 * multi-thread runtime; a sim runtime is driven by the calling thread
 * meanwhile, with `d` in virtual time, and its tasks must let the clock
 * move for the grace period to end: one that never waits spins it).
 * Returns 0 when every task finished within `d`, -ETIMEDOUT when some
 * were cancelled, -EINVAL when `rt` is NULL or the call is refused as
 * weft_rt_shutdown would refuse it (from a worker, or a second shutdown:
 * reported, nothing done). Threads as weft_rt_shutdown. */
WEFT_API int weft_rt_shutdown_timeout(weft_rt *rt, uint64_t d);

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
 * no runtime, an already polled future, or — debug builds — a runtime shut
 * down and freed; see weft_rt_shutdown), -EPERM (fut is not Send; debug
 * builds name it), -ENOMEM, or -ECANCELED (the runtime is shutting down).
 * A spawn racing weft_rt_shutdown on another thread returns -ECANCELED, or
 * 0 and the task is cancelled: its future dropped (maybe on this thread,
 * before this returns), never polled; its join handle yields -ECANCELED.
 * Any thread, including workers and foreign threads. */
WEFT_API WEFT_NODISCARD int weft_spawn(weft_rt *rt, const weft_future *fut,
                                       size_t fut_size, weft_join *join);

/* Spawn, consuming `fut` either way: as weft_spawn, but on failure `fut`
 * is dropped here (weft_future_drop) before the error is returned, so the
 * caller never owns it afterwards — what a compound literal or a one-line
 * spawn needs. The one exception is a `fut` too malformed to drop (NULL,
 * no ops or no poll function: -EINVAL). Any thread. */
static inline WEFT_NODISCARD int weft_spawn_or_drop(weft_rt *rt, weft_future *fut,
                                                    size_t fut_size, weft_join *join)
{
    int rc = weft_spawn(rt, fut, fut_size, join);
    if (rc != 0 && fut && fut->ops && fut->ops->poll)
        weft_future_drop(fut);
    return rc;
}

/* Spawn the future `*fut_ptr` (a pointer to any future struct whose header
 * member is `base`), taking its size from the struct, consuming it as
 * weft_spawn_or_drop does. The future comes last so that a compound
 * literal with several fields can be written in place:
 *   WEFT_SPAWN(rt, &join, &(fetch){ WEFT_FN_INIT(fetch, WEFT_F_SEND), .id = 7 });
 * `join` may be NULL (detached). Returns as weft_spawn. */
#define WEFT_SPAWN(rt, join, ...)                                             \
    weft_spawn_or_drop((rt), &(__VA_ARGS__)->base, sizeof *(__VA_ARGS__), (join))

/* A plain function run as a leaf task: it reads its argument (the task's
 * own copy) and writes `out_size` bytes of output to `out` (NULL when
 * out_size is 0). It runs once, to completion, on a worker. */
typedef void weft_task_fn(void *arg, void *out);

/* Largest argument weft_spawn_fn copies into a task. */
#define WEFT_SPAWN_FN_ARG_MAX 4096u

/* Spawn `fn` as a leaf task on `rt` (NULL: the current runtime). `*arg`
 * (sizeof *arg bytes, of any type; a function that needs no argument can
 * be given `&(char){0}`; a compound literal with commas must be wrapped
 * in parentheses, as for any macro argument) is copied into the task,
 * so the caller's copy may go at once; `#fn` names the task in reports and
 * dumps. The join handle's output is the `out_size` bytes `fn` writes.
 * The task is Send: `fn` may run on any worker, so what `arg` points to
 * must be safe to use from there. Returns as weft_spawn, plus -EINVAL when
 * fn is NULL or the argument is larger than WEFT_SPAWN_FN_ARG_MAX.
 * Cancel safety: an aborted task that has not run yet never calls `fn`;
 * once started, `fn` runs to the end. Any thread. */
#define weft_spawn_fn(rt, fn, arg, out_size, join)                            \
    weft__spawn_fn((rt), (fn), #fn, (arg), WEFT__ARG_SIZE(arg), (out_size), (join))
#define WEFT__ARG_SIZE(arg) sizeof(*(arg))
WEFT_API WEFT_NODISCARD int weft__spawn_fn(weft_rt *rt, weft_task_fn *fn, const char *name,
                                           const void *arg, size_t arg_size,
                                           size_t out_size, weft_join *join);

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

/* Cancel: abort the task, then drop the handle (nothing is left to join;
 * the task's future is dropped at its next scheduling point). `join` NULL
 * or already dropped is a no-op. Any thread that owns the handle. */
WEFT_API void weft_join_cancel(weft_join *join);

/* True once the task has completed (or was cancelled); then polling the
 * handle returns READY. Any thread. */
WEFT_API bool weft_join_is_finished(const weft_join *join);

/* ---- join_all ------------------------------------------------------------ */

/* Options of weft_join_all_init. */
#define WEFT_JOIN_ALL_FAIL_FAST 0x1u /* on the first failed task, abort the rest */

/* A future that waits for every handle in a caller's array. Handle i's
 * output goes to `outs + i * out_stride` (outs NULL: outputs discarded).
 * Handles are joined in array order; each is dropped once it completed.
 * Output: none. When READY, `status` is 0 if every task succeeded, else
 * the status of the first failed one in array order (-ECANCELED), and
 * `failed` is its index (n when none failed). With WEFT_JOIN_ALL_FAIL_FAST
 * the tasks after a failed one are aborted when it is joined, and still
 * waited for (so nothing of the set is running once join_all is READY).
 * The join_all owns the handles from init: drop it (or let it finish)
 * instead of dropping them. Send.
 * Cancel safety: dropping a pending join_all drops the handles it has not
 * joined yet, which detaches their tasks (they keep running); call
 * weft_join_all_abort first to stop them. Outputs already written stay. */
typedef struct weft_join_all {
    weft_future base;
    weft_join *joins;
    size_t n;
    unsigned char *outs;
    size_t out_stride;
    unsigned flags;
    size_t next;   /* handles before this one are joined and dropped */
    size_t failed; /* index of the first failed task, or n */
    int status;
} weft_join_all;

/* Initialise `ja` over the caller's `n` live join handles (not polled or
 * dropped by the caller from now on; the array and `outs` must stay valid
 * until `ja` is dropped). Returns 0, or -EINVAL (NULL ja, NULL joins with
 * n > 0, unknown flags, an element that is not a live join handle, an
 * out_stride smaller than some handle's output while outs is set). On
 * error the caller keeps the handles. Any thread that owns the handles. */
WEFT_API WEFT_NODISCARD int weft_join_all_init(weft_join_all *ja, weft_join *joins, size_t n,
                                               void *outs, size_t out_stride,
                                               unsigned flags);
/* Abort every task the join_all has not joined yet; it still waits for
 * them (their status is -ECANCELED unless they finished first). Any
 * thread that owns `ja`, not concurrently with a poll. */
WEFT_API void weft_join_all_abort(weft_join_all *ja);

/* ---- block_on ------------------------------------------------------------ */

/* Run `fut` to completion on the calling thread (which parks between
 * polls), with `rt` as the current runtime, then drop it. `fut` need not be
 * Send; it is polled in place and must not move while this runs. `out`
 * receives the output; `out_size` must equal weft_future_out_size(fut).
 * `fut` may have been polled before (by hand, or by a borrowing timeout
 * that gave up on it: weft_timeout_borrow_init) as long as it was not
 * moved since its first poll and has not finished; debug builds refuse and report a moved
 * or finished one (-EINVAL), release builds cannot tell (polling such a
 * future is undefined, as for any future).
 * Returns 0 (the future was dropped), or — with the caller still owning
 * `fut`, which this call did not poll — -EINVAL (NULL arguments, size
 * mismatch, malformed ops, moved or finished as above), -EDEADLK (called
 * from a worker thread: it would block that worker), or -ENOMEM.
 * Non-worker threads only. */
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
 * they are not a consistent snapshot of each other). Returns 0 or -EINVAL
 * (NULL rt or n, NULL out with *n > 0, or — debug builds — a runtime shut
 * down and freed). Any thread while `rt` is alive. */
WEFT_API WEFT_NODISCARD int weft_rt_stats(weft_rt *rt, weft_worker_stats *out,
                                          unsigned *n);

/* ---- task dump ----------------------------------------------------------- */

/* What a task is doing (docs/rt.md, "Task dumps"). */
typedef enum weft_task_state {
    WEFT_TASK_IDLE,       /* waiting for a wake */
    WEFT_TASK_QUEUED,     /* spawned or woken, waiting in a run queue */
    WEFT_TASK_RUNNING,    /* being polled */
    WEFT_TASK_CANCELLING, /* aborted; its future is dropped at its next turn */
    WEFT_TASK_COMPLETE,   /* finished; kept by its join handle or a waker */
    WEFT_TASK_CANCELLED   /* finished by cancellation; kept likewise */
} weft_task_state;

/* The short name of a state ("idle", "queued", ...); never NULL. */
WEFT_API const char *weft_task_state_name(weft_task_state state);

/* A task's await chain is cut after this many frames. */
#define WEFT_TASK_AWAIT_MAX 4u

/* One frame of an await chain: a future, and — for a coroutine
 * (WEFT_ASYNC_FN, weft/co.h) — the line it is suspended at. */
typedef struct weft_task_frame {
    const char *name; /* the future's name (static storage) */
    int line;         /* resume line; 0 for a future that is no coroutine */
} weft_task_frame;

/* Polls of one task saturate at this count. */
#define WEFT_TASK_POLLS_MAX 16777215u
/* age_ns of a task spawned while weft_rt_track_ages was off. */
#define WEFT_TASK_AGE_UNKNOWN UINT64_MAX

/* A snapshot of one task, taken while the runtime runs: each field is
 * exact at the moment it was read, but the task moves on at once. */
typedef struct weft_task_info {
    const void *id;        /* the task's address: unique among live tasks,
                              reused once it is freed */
    const char *name;      /* the spawned future's name (its ops name, or
                              the function of weft_spawn_fn); static */
    weft_task_state state;
    int worker;            /* owner worker of a local task; -1 for Send */
    uint32_t polls;        /* polls begun (a cancellation is no poll) */
    uint32_t wakers;       /* its wakers held anywhere (as counted in
                              weft_rt_counts.wakers) */
    uint64_t age_ns;       /* since spawn, or WEFT_TASK_AGE_UNKNOWN */
    /* Where an idle task waits, outermost future first: the spawned
     * coroutine's line, the child it awaits, that child's line if it is a
     * coroutine, ... Empty (0) when the task is not idle, or its future is
     * not a coroutine made with WEFT_FN_INIT. */
    unsigned depth;
    weft_task_frame await[WEFT_TASK_AWAIT_MAX];
} weft_task_info;

/* Called once per task; return 0 to go on, anything else to stop. `task`
 * is valid during the call only. Nothing of weft is held meanwhile: the
 * callback may spawn, print, or call weft again. */
typedef int weft_task_visit_fn(const weft_task_info *task, void *ctx);

/* Call `fn` for every task of `rt` that is alive or complete and still
 * kept (a task not yet freed), while the runtime runs: other threads go
 * on polling, spawning and freeing tasks. A task spawned or freed during
 * the walk may or may not be seen; none is seen twice. An idle task is
 * held for a moment while its await chain is read: a wake meanwhile is
 * honoured when the hold ends (the task is then queued from the calling
 * thread). Costs time linear in the tasks' memory. Returns 0, the first
 * nonzero value `fn` returned, or -EINVAL (rt or fn NULL). Any thread
 * (also a task on one of rt's workers, which shows itself as running)
 * while rt is alive; not concurrently with weft_rt_shutdown. */
WEFT_API WEFT_NODISCARD int weft_rt_tasks(weft_rt *rt, weft_task_visit_fn *fn, void *ctx);

/* Write a table of `rt`'s tasks to `out` as weft_rt_tasks sees them, one
 * line each (id, name, state, worker, polls, age, wakers, await chain; an
 * idle task with no waker is marked), then a summary line (the tasks
 * listed, by state; armed timers; task wakers). The format is for people
 * (docs/rt.md); programs use weft_rt_tasks. Returns 0, -EINVAL (rt or out
 * NULL) or -EIO (writing failed). Threads as weft_rt_tasks. */
WEFT_API WEFT_NODISCARD int weft_rt_dump(weft_rt *rt, FILE *out);

/* Live counts of a runtime, sampled while it runs. */
typedef struct weft_rt_counts {
    uint64_t tasks;  /* tasks not complete (idle, queued, running,
                        cancelling) */
    uint64_t kept;   /* complete tasks kept by a join handle or a waker */
    uint64_t timers; /* timers armed in the runtime's timer driver */
    /* Task wakers outstanding: for every task, the references beyond the
     * scheduler's and its join handle's — clones of its waker stored by
     * timers, channels or user code. Transient references (a remote wake
     * being queued, a join handle being dropped, another dump, the
     * scheduler's two of a task just marked complete) may count for a
     * moment. An idle task with none can never be woken again. */
    uint64_t wakers;
} weft_rt_counts;

/* Count `rt`'s tasks, armed timers and task wakers into `*out` (a walk of
 * the tasks' memory, reading each task's state word once; it holds no
 * task). Returns 0 or -EINVAL (rt or out NULL). Threads as
 * weft_rt_tasks. */
WEFT_API WEFT_NODISCARD int weft_rt_count(weft_rt *rt, weft_rt_counts *out);

/* Turn age tracking on or off for tasks spawned on `rt` from now on
 * (default off). A tracked task records its spawn time, so dumps show its
 * age: 8 more bytes per task (often 16: tasks take 16-byte steps) and one
 * read of a coarse clock per spawn (ages move in steps of the kernel's
 * tick, a few ms). Returns 0 or -EINVAL (rt NULL). Any thread while rt is
 * alive. */
WEFT_API WEFT_NODISCARD int weft_rt_track_ages(weft_rt *rt, bool on);

/* ---- blocking pool ------------------------------------------------------- */

/* A function that may block (a file read, getaddrinfo, a library with no
 * async interface) must not run on a worker: it would stall every task
 * queued there. weft_spawn_blocking runs it on the runtime's blocking
 * pool instead, a set of threads beside the workers:
 *  - threads are started on demand, up to blocking_threads_max
 *    (weft_rt_options); a job that finds every thread busy at the limit
 *    waits in a FIFO queue;
 *  - a thread with no job for blocking_idle_timeout exits;
 *  - weft_rt_shutdown (and weft_rt_shutdown_timeout) cancel the jobs still
 *    queued (they never run), wait for the running ones to return, and
 *    join every pool thread.
 * On a sim runtime (weft/testing.h) the job runs on a real thread too, and
 * the sim holds its virtual clock still from the job's submission until it
 * returned: no timer fires while a blocking job is in flight. */

/* Default and upper bound of blocking_threads_max. */
#define WEFT_BLOCKING_THREADS_DEFAULT 64u
#define WEFT_BLOCKING_THREADS_MAX 4096u
/* Default blocking_idle_timeout: 10 s. */
#define WEFT_BLOCKING_IDLE_DEFAULT ((uint64_t)10 * 1000000000u)
/* Largest argument and output of a blocking job. */
#define WEFT_SPAWN_BLOCKING_ARG_MAX 4096u
#define WEFT_SPAWN_BLOCKING_OUT_MAX ((size_t)1 << 20)

/* Run `fn` on `rt`'s blocking pool (NULL: the current runtime): `fn(arg
 * copy, out)` is called once on a pool thread with the job's own copy of
 * the `arg_size` bytes at `arg` (the caller's may go at once) and writes
 * `out_size` bytes of output (`out` NULL when out_size is 0). The job is
 * joined through an ordinary task: `join` (NULL: detached) completes with
 * that output, status 0. The job is handed to the pool when that task is
 * first polled (so a job spawned on a sim waits for the sim to run).
 * Returns as weft_spawn (-EINVAL, -ENOMEM, -ECANCELED), plus -EINVAL when
 * fn is NULL, arg is NULL with arg_size > 0, arg_size is above
 * WEFT_SPAWN_BLOCKING_ARG_MAX or out_size above WEFT_SPAWN_BLOCKING_OUT_MAX.
 * Cancel safety: aborting the join (weft_join_abort, weft_join_cancel,
 * shutdown) before the job started means `fn` never runs; once started
 * it runs to completion (a thread cannot be interrupted) and its output
 * is discarded; the join yields -ECANCELED either way. The join also
 * yields -ECANCELED when the job could not be queued: the pool was shut
 * down, or no pool thread was running and none could be started. Dropping
 * the join only detaches: the job still runs. Any thread. */
WEFT_API WEFT_NODISCARD int weft_spawn_blocking(weft_rt *rt, weft_task_fn *fn, const void *arg,
                                                size_t arg_size, size_t out_size,
                                                weft_join *join);

/* Counters of a blocking pool, sampled while it runs. */
typedef struct weft_blocking_stats {
    unsigned threads;          /* pool threads alive */
    unsigned idle;             /* ... of which waiting for a job */
    unsigned queued;           /* jobs waiting for a thread */
    unsigned running;          /* jobs being run */
    unsigned max_running;      /* the most jobs ever run at once */
    uint64_t threads_started;  /* threads started so far */
    uint64_t threads_exited;   /* threads that exited (idle timeout) */
    uint64_t jobs_run;         /* jobs whose function was called */
    uint64_t jobs_cancelled;   /* jobs dropped while queued: never run */
} weft_blocking_stats;

/* Copy `rt`'s blocking-pool counters into `*out` (all zero before the
 * first job). Returns 0 or -EINVAL (a NULL argument). Any thread while
 * `rt` is alive and not shut down. */
WEFT_API WEFT_NODISCARD int weft_blocking_stats_get(weft_rt *rt, weft_blocking_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_RT_H */
