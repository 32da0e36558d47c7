/* weft-bench: weft's implementation of the benchmark workloads.
 *
 * Usage: weft-bench <workload> [--workers N] [--poll-us N]
 *        (workers default to online CPUs; --poll-us is timer_lateness's)
 *
 * One workload per process. Each prints
 *   elapsed_ms=<float>   timed from just before the workload starts to its
 *                        end; building and shutting down the runtime are not
 *                        timed
 *   check=<value>        a checksum computed from the work actually done, so
 *                        a lost or duplicated task shows up as a wrong value
 * Exit status: 0 ok, 1 bad usage or a failed run, 2 a workload this binary
 * does not implement (the runner tells that apart from a crash).
 *
 * `weft-bench task_memory` is not one of the timed workloads: it measures
 * what a pending task costs in resident memory and prints bytes_per_task.
 * `weft-bench idle_timers` is not either: it measures what an otherwise
 * idle runtime costs while timers are pending and sockets are open (four
 * registered socketpairs waited on, two 250 ms tickers and one
 * 10 s sleep, for 2 s) and prints cpu_per_wall (CPU seconds used per wall
 * second) and the workers' parks. `weft-bench idle_many` measures what a
 * runtime with many workers costs when it has nothing or almost nothing
 * to do, and `weft-bench lifo_latency` how long a task spawned by a
 * long-polling parent waits to start (see their sections below).
 * `weft-bench timer_lateness --poll-us N` measures how late 10 ms sleeps
 * resume while busy tasks with N-microsecond polls keep every worker busy
 * (p50/p99/max and count); `weft-bench timer_churn` measures arm + re-poll
 * + cancel cycles of a sleep per second. `weft-bench mutex_uncontended`
 * prints the nanoseconds of one lock/unlock pair of a weft_mutex that
 * only one task uses (ns_per_pair).
 *
 * The workloads are written the way a weft user would write them: tasks
 * that wait are async fns (WEFT_ASYNC_FN), root tasks that only spawn are
 * plain functions run by weft_spawn_fn, and leaf tasks that touch shared
 * state are hand-written poll functions (STYLE rule 26; they are spawned a
 * million times, and their size is part of what is measured). The main
 * thread waits through weft_block_on.
 */
#define _POSIX_C_SOURCE 200809L

#include <weft/weft.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SPAWN_COUNT 1000000u     /* W1, W2, W11 */
#define YIELD_TASKS 1000u        /* W3 */
#define YIELDS_PER_TASK 1000u    /* W3 */
#define CHAIN_LEN 1000000u       /* W5 */
#define FIB_N 27                 /* W6 */
#define MEMORY_TASKS 1000000u    /* task_memory */
#define MEMORY_FUTURE_SIZE 64u   /* task_memory: bytes per pending future */

/* ---- completion signal ---------------------------------------------------- */

/* A one-shot result that one task publishes and the main thread awaits
 * with weft_block_on: the "the one reaching 0 signals completion" of the
 * workloads, without a busy-wait.
 *
 * Lifetime: the setter still touches the signal (it wakes the waker) after
 * the waiter can already see `set`, so a signal must outlive every task
 * that may set it. Here that means: finalise it only after
 * weft_rt_shutdown has joined the workers. */
typedef struct bench_signal {
    /* Who may publish: the first thread to swap it to true. */
    atomic_bool claimed;
    /* Written once by the claimant (release) after value/err; read by the
     * waiter (acquire) before it reads them. */
    atomic_bool set;
    uint64_t value;
    int err;
    weft_atomic_waker waker;
} bench_signal;

static void signal_init(bench_signal *s)
{
    atomic_init(&s->claimed, false);
    atomic_init(&s->set, false);
    s->value = 0;
    s->err = 0;
    weft_atomic_waker_init(&s->waker);
}

/* No task may touch `s` any more (see the lifetime note above). */
static void signal_fini(bench_signal *s)
{
    weft_atomic_waker_fini(&s->waker);
}

/* Publish `value` (or the error `err`) and wake the waiter. Only the first
 * call publishes: a failure racing with a success must not tear the
 * result. Any thread. */
static void signal_set(bench_signal *s, uint64_t value, int err)
{
    /* Relaxed: the swap only elects one publisher; the release store of
     * `set` below is what publishes. */
    if (atomic_exchange_explicit(&s->claimed, true, memory_order_relaxed))
        return;
    s->value = value;
    s->err = err;
    /* Release: value and err before `set` (pairs with the acquire load in
     * signal_is_set). */
    atomic_store_explicit(&s->set, true, memory_order_release);
    weft_atomic_waker_wake(&s->waker);
}

static bool signal_is_set(bench_signal *s)
{
    /* Acquire: pairs with the release store in signal_set. */
    return atomic_load_explicit(&s->set, memory_order_acquire);
}

/* The poll function of the future that waits for a signal (a weft_poll_fn
 * over the signal). Output: the published value (the error, if any, is
 * read from the signal afterwards). Cancel safety: nothing to lose; the
 * registered waker stays in the signal until signal_fini. */
static weft_poll signal_wait(void *ctx, weft_cx *cx, void *out)
{
    bench_signal *s = ctx;
    if (!signal_is_set(s)) {
        weft_atomic_waker_register(&s->waker, cx->waker);
        /* A set that completed before the registration found no waker to
         * wake: look again now that ours is in place. */
        if (!signal_is_set(s))
            return WEFT_PENDING;
    }
    *(uint64_t *)out = s->value;
    return WEFT_READY;
}

/* Block the calling (main) thread until `sig` is set. Returns 0 and the
 * value, or a negative error (the published one or block_on's). */
static int signal_block_on(weft_rt *rt, bench_signal *sig, uint64_t *value)
{
    weft_poll_fn w;
    int rc = weft_poll_fn_init(&w, signal_wait, sig, sizeof *value, WEFT_F_SEND);
    if (rc != 0)
        return rc;
    rc = weft_block_on(rt, &w.base, value, sizeof *value);
    if (rc != 0) {
        /* block_on refused before polling: the future is still ours. */
        weft_future_drop(&w.base);
        return rc;
    }
    return sig->err;
}

/* ---- countdown: "each decrements a shared counter; the one reaching 0
 * signals completion" ------------------------------------------------------- */

typedef struct countdown {
    atomic_uint_fast64_t remaining;
    /* What the check reports: how many tasks really ran, so a duplicated
     * task cannot hide behind a counter that merely reached zero. */
    atomic_uint_fast64_t decremented;
    bench_signal done;
} countdown;

static void countdown_init(countdown *c, uint64_t n)
{
    atomic_init(&c->remaining, n);
    atomic_init(&c->decremented, 0);
    signal_init(&c->done);
}

static void countdown_hit(countdown *c)
{
    /* Relaxed: ordered before the acq_rel decrement below, whose release
     * sequence carries it to the last decrementer. */
    atomic_fetch_add_explicit(&c->decremented, 1, memory_order_relaxed);
    /* AcqRel: the last decrementer acquires every earlier task's increment
     * of `decremented` before reading it. */
    if (atomic_fetch_sub_explicit(&c->remaining, 1, memory_order_acq_rel) == 1)
        signal_set(&c->done,
                   atomic_load_explicit(&c->decremented, memory_order_relaxed), 0);
}

/* The W1/W2 task: count down once and finish. A leaf that never waits and
 * touches shared state, so a plain poll function is the natural register
 * (and keeps the future at 24 bytes). Send. */
typedef struct hit_task {
    weft_future base;
    countdown *cd;
} hit_task;

static weft_poll hit_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx, (void)out;
    countdown_hit(((hit_task *)f)->cd);
    return WEFT_READY;
}

static const weft_future_ops hit_ops = { .name = "bench_hit", .poll = hit_poll };

/* Spawn `n` detached hit tasks on `rt` (NULL: the current runtime).
 * Returns 0 or the first spawn error. */
static int spawn_hits(weft_rt *rt, countdown *cd, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        hit_task *h = &(hit_task){ .base = WEFT_FUTURE_INIT(&hit_ops, WEFT_F_SEND), .cd = cd };
        int rc = WEFT_SPAWN(rt, NULL, h);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* State shared between the main thread and the tasks. It lives in main()
 * and is finalised after weft_rt_shutdown (see bench_signal). */
typedef struct bench_shared {
    countdown cd;     /* W1, W2, task_memory */
    bench_signal sig; /* W5 */
} bench_shared;

/* ---- W1 spawn_many ----------------------------------------------------------- */

/* The root task of W1, run by weft_spawn_fn: spawns every hit task from a
 * worker, then ends. Its argument is the countdown's address. */
static void spawn_many_root(void *arg, void *out)
{
    countdown *cd = *(countdown **)arg;
    (void)out;
    int rc = spawn_hits(NULL, cd, SPAWN_COUNT);
    if (rc != 0)
        signal_set(&cd->done, 0, rc); /* or the main thread waits forever */
}

static int run_spawn_many(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    countdown *cd = &sh->cd;
    int rc = weft_spawn_fn(rt, spawn_many_root, &cd, 0, NULL);
    if (rc != 0)
        return rc;
    return signal_block_on(rt, &sh->cd.done, check);
}

/* ---- W2 spawn_remote ------------------------------------------------------------ */

static int run_spawn_remote(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    /* The main thread is not a worker: every spawn takes the remote path. */
    int rc = spawn_hits(rt, &sh->cd, SPAWN_COUNT);
    if (rc != 0)
        return rc;
    return signal_block_on(rt, &sh->cd.done, check);
}

/* ---- W3 yield_many ---------------------------------------------------------------- */

/* Yields YIELDS_PER_TASK times; outputs how many yields it completed. It
 * awaits a weft_yield, like tokio's yield_now().await. */
typedef struct yielder_task {
    weft_future base;
    weft_co co;
    weft_yield y;
    uint64_t yielded;
} yielder_task;

WEFT_ASYNC_FN(yielder_task, uint64_t)
{
    WEFT_FN_BEGIN;
    for (self->yielded = 0; self->yielded < YIELDS_PER_TASK;) {
        weft_yield_init(&self->y);
        WEFT_FN_AWAIT(&self->y, NULL);
        self->yielded++;
    }
    WEFT_FN_RETURN(self->yielded);
    WEFT_FN_END;
}

typedef struct bench_out {
    uint64_t value;
    int err;
} bench_out;

/* W3's root: spawn the yielders, then join them all (in order) and add up
 * their outputs. It is run by weft_block_on, which polls it in place, so
 * the handles and outputs can live in the struct itself. */
typedef struct yield_all {
    weft_future base;
    weft_co co;
    weft_join_all all; /* owns joins[] once initialised */
    weft_join joins[YIELD_TASKS];
    uint64_t yielded[YIELD_TASKS]; /* each yielder's output */
} yield_all;

/* Dropped while joining: stop the yielders not joined yet (dropping the
 * join_all alone would only detach them). */
static void yield_all_drop(weft_future *f)
{
    yield_all *self = (yield_all *)f;
    if (self->co.awaiting)
        weft_join_all_abort(&self->all);
    weft_co_drop(&self->co); /* drops `all`, and with it the handles */
}

WEFT_ASYNC_FN_WITH_DROP(yield_all, bench_out)
{
    /* C locals, used only within one poll (never across the await). */
    unsigned n = 0; /* joins[0, n) were spawned */
    int rc = 0;
    uint64_t sum = 0;
    WEFT_FN_BEGIN;
    for (; n < YIELD_TASKS; n++) {
        rc = WEFT_SPAWN(NULL, &self->joins[n],
                        &(yielder_task){ WEFT_FN_INIT(yielder_task, WEFT_F_SEND) });
        if (rc != 0)
            break;
    }
    if (rc == 0)
        rc = weft_join_all_init(&self->all, self->joins, n, self->yielded,
                                sizeof self->yielded[0], 0);
    if (rc != 0) {
        while (n > 0)
            weft_join_cancel(&self->joins[--n]);
        WEFT_FN_RETURN((bench_out){ .err = rc });
    }
    WEFT_FN_AWAIT(&self->all, NULL);
    for (unsigned i = 0; i < YIELD_TASKS; i++)
        sum += self->yielded[i];
    /* all.status: 0, or the first failed yielder's (-ECANCELED). */
    WEFT_FN_RETURN((bench_out){ .value = sum, .err = self->all.status });
    WEFT_FN_END;
}

static int run_yield_many(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    /* 40 KB of handles and outputs: static rather than on the main thread's
     * stack. Not Send: it is polled in place only. */
    static yield_all root = { WEFT_FN_INIT(yield_all, 0) };
    bench_out res;
    int rc = weft_block_on(rt, &root.base, &res, sizeof res);
    if (rc != 0) {
        weft_future_drop(&root.base);
        return rc;
    }
    *check = res.value;
    return res.err;
}

/* ---- W5 chained_spawn -------------------------------------------------------------- */

/* Link `index` of the chain: spawn link index+1 and finish; the last link
 * publishes its index, which is therefore the number of links that ran.
 * A leaf that touches shared state (the signal), written by hand. */
typedef struct chain_link {
    weft_future base;
    bench_signal *done;
    uint64_t index;
} chain_link;

static weft_poll chain_link_poll(weft_future *f, weft_cx *cx, void *out);

static const weft_future_ops chain_link_ops = {
    .name = "bench_chain_link",
    .poll = chain_link_poll,
};

/* Spawn link `index`, detached, on `rt` (NULL: the current runtime). */
static int chain_spawn(weft_rt *rt, bench_signal *done, uint64_t index)
{
    chain_link *l = &(chain_link){ .base = WEFT_FUTURE_INIT(&chain_link_ops, WEFT_F_SEND),
                                   .done = done, .index = index };
    return WEFT_SPAWN(rt, NULL, l);
}

static weft_poll chain_link_poll(weft_future *f, weft_cx *cx, void *out)
{
    chain_link *l = (chain_link *)f;
    (void)cx, (void)out;
    if (l->index == CHAIN_LEN) {
        signal_set(l->done, l->index, 0);
        return WEFT_READY;
    }
    int rc = chain_spawn(NULL, l->done, l->index + 1);
    if (rc != 0)
        signal_set(l->done, l->index, rc);
    return WEFT_READY;
}

static int run_chained_spawn(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    int rc = chain_spawn(rt, &sh->sig, 1);
    if (rc != 0)
        return rc;
    return signal_block_on(rt, &sh->sig, check);
}

/* ---- W6 fib_fork_join ---------------------------------------------------------------- */

/* fib(n): for n >= 2 spawn fib(n-1) and fib(n-2) as tasks and join both.
 * Output: int64_t, fib(n) or a negative error code from a failed spawn or
 * a cancelled child. */
typedef struct fib_task {
    weft_future base;
    weft_co co;
    int32_t n;
    int64_t got; /* output of the child being joined */
    int64_t sum;
    weft_join left, right;
} fib_task;

static void fib_task_drop(weft_future *f)
{
    fib_task *self = (fib_task *)f;
    /* Both children exist exactly while the left one is awaited; the
     * coroutine drops the awaited handle, the right one is ours. */
    weft_future *awaited = self->co.awaiting;
    if (awaited)
        weft_join_abort((weft_join *)awaited);
    weft_co_drop(&self->co);
    if (awaited == &self->left.base)
        weft_join_cancel(&self->right);
}

/* A joined child's result: its output, or its status if it was cancelled. */
static int64_t fib_child_result(const weft_join *j, int64_t got)
{
    return j->status != 0 ? j->status : got;
}

WEFT_ASYNC_FN_WITH_DROP(fib_task, int64_t)
{
    int rc; /* used between awaits only, so a C local will do */
    WEFT_FN_BEGIN;
    if (self->n < 2)
        WEFT_FN_RETURN(self->n);
    rc = WEFT_SPAWN(NULL, &self->left,
                    &(fib_task){ WEFT_FN_INIT(fib_task, WEFT_F_SEND), .n = self->n - 1 });
    if (rc != 0)
        WEFT_FN_RETURN(rc);
    rc = WEFT_SPAWN(NULL, &self->right,
                    &(fib_task){ WEFT_FN_INIT(fib_task, WEFT_F_SEND), .n = self->n - 2 });
    if (rc != 0) {
        weft_join_cancel(&self->left);
        WEFT_FN_RETURN(rc);
    }
    WEFT_FN_AWAIT(&self->left, &self->got);
    self->sum = fib_child_result(&self->left, self->got);
    if (self->sum < 0) {
        weft_join_cancel(&self->right);
        WEFT_FN_RETURN(self->sum);
    }
    WEFT_FN_AWAIT(&self->right, &self->got);
    self->got = fib_child_result(&self->right, self->got);
    WEFT_FN_RETURN(self->got < 0 ? self->got : self->sum + self->got);
    WEFT_FN_END;
}

static int run_fib_fork_join(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    weft_join join;
    int rc = WEFT_SPAWN(rt, &join, &(fib_task){ WEFT_FN_INIT(fib_task, WEFT_F_SEND), .n = FIB_N });
    if (rc != 0)
        return rc;
    int64_t r;
    rc = weft_block_on(rt, &join.base, &r, sizeof r);
    if (rc != 0) {
        weft_future_drop(&join.base);
        return rc;
    }
    if (join.status != 0)
        return join.status;
    if (r < 0)
        return (int)r;
    *check = (uint64_t)r;
    return 0;
}

/* ---- task_memory ----------------------------------------------------------------------- */

/* A task that stays pending forever, waiting on nothing: it registers no
 * waker, so only weft_rt_shutdown ends it (by dropping it). Its first poll
 * counts down, so the main thread knows when every task has been scheduled
 * and parked in the pending state. Exactly MEMORY_FUTURE_SIZE bytes, which
 * is why it is written by hand. */
typedef struct pending_task {
    weft_future base;
    countdown *cd;
    bool polled;
    unsigned char pad_[MEMORY_FUTURE_SIZE - sizeof(weft_future) - sizeof(countdown *) -
                       sizeof(bool)];
} pending_task;

_Static_assert(sizeof(pending_task) == MEMORY_FUTURE_SIZE,
               "task_memory measures futures of exactly 64 bytes");

/* Pending futures dropped: by shutdown, which cancels them. */
static atomic_uint_fast64_t pending_dropped;

static weft_poll pending_poll(weft_future *f, weft_cx *cx, void *out)
{
    pending_task *p = (pending_task *)f;
    (void)cx, (void)out;
    if (!p->polled) {
        p->polled = true;
        countdown_hit(p->cd);
    }
    return WEFT_PENDING;
}

static void pending_drop(weft_future *f)
{
    (void)f;
    /* Relaxed: read after weft_rt_shutdown joined the workers. */
    atomic_fetch_add_explicit(&pending_dropped, 1, memory_order_relaxed);
}

static const weft_future_ops pending_ops = {
    .name = "bench_pending",
    .poll = pending_poll,
    .drop = pending_drop,
};

static long resident_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp)
        return -1;
    long size, resident;
    int n = fscanf(fp, "%ld %ld", &size, &resident);
    fclose(fp);
    return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

/* ---- W11 timers --------------------------------------------------------------------- */

/* Task i sleeps 1 + x_i % 100 ms (x: the xorshift sequence of BENCH.md,
 * advanced once per task before use), then counts down. */
typedef struct sleeper_task {
    weft_future base;
    weft_co co;
    countdown *cd;
    uint64_t ms;
    weft_sleep sleep;
} sleeper_task;

WEFT_ASYNC_FN_VOID(sleeper_task)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->sleep, WEFT_MS(self->ms));
    WEFT_FN_AWAIT(&self->sleep, NULL);
    countdown_hit(self->cd);
    WEFT_FN_END;
}

/* The root task of W11, run by weft_spawn_fn: spawns every sleeper from a
 * worker. Its argument is the countdown's address. */
static void spawn_sleepers(void *arg, void *out)
{
    countdown *cd = *(countdown **)arg;
    (void)out;
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (uint64_t i = 0; i < SPAWN_COUNT; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int rc = WEFT_SPAWN(NULL, NULL, &(sleeper_task){ WEFT_FN_INIT(sleeper_task, WEFT_F_SEND),
                                                         .cd = cd, .ms = 1 + x % 100 });
        if (rc != 0) {
            signal_set(&cd->done, 0, rc);
            break;
        }
    }
}

static int run_timers(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    countdown *cd = &sh->cd;
    int rc = weft_spawn_fn(rt, spawn_sleepers, &cd, 0, NULL);
    if (rc != 0)
        return rc;
    return signal_block_on(rt, &sh->cd.done, check);
}

/* ---- W12 mutex_contended ------------------------------------------------------------- */

#define MUTEX_TASKS 100u            /* W12 */
#define MUTEX_LOCKS_PER_TASK 10000u /* W12 */
#define MUTEX_PAIRS 10000000u       /* mutex_uncontended */

/* One shared async mutex and the counter it guards; the last task to
 * finish publishes the counter. */
typedef struct mutex_shared {
    weft_mutex m;
    uint64_t counter; /* under m */
    atomic_uint_fast64_t running;
    bench_signal done;
} mutex_shared;

static mutex_shared g_mx;

static double now_ms(void);

/* Locks the shared mutex, adds one, unlocks; `n` times. Awaits the lock
 * future as tokio's `m.lock().await` would. */
typedef struct mutex_task {
    weft_future base;
    weft_co co;
    mutex_shared *sh;
    uint32_t i, n;
    weft_mutex_lock lk;
    weft_mutex_guard g;
} mutex_task;

WEFT_ASYNC_FN_VOID(mutex_task)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        if (weft_mutex_lock_init(&self->lk, &self->sh->m) != 0)
            break;
        WEFT_FN_AWAIT(&self->lk, &self->g);
        self->sh->counter += 1;
        if (weft_mutex_unlock(&self->g) != 0)
            break;
    }
    /* AcqRel: the last one out acquires every other task's release, so
     * it reads the counter after all their critical sections. */
    if (atomic_fetch_sub_explicit(&self->sh->running, 1, memory_order_acq_rel) == 1)
        signal_set(&self->sh->done, self->sh->counter, 0);
    WEFT_FN_END;
}

static int run_mutex_tasks(weft_rt *rt, uint32_t tasks, uint32_t n, uint64_t *check)
{
    mutex_shared *sh = &g_mx;
    weft_mutex_init(&sh->m);
    sh->counter = 0;
    atomic_init(&sh->running, tasks);
    signal_init(&sh->done);
    int rc = 0;
    for (uint32_t i = 0; i < tasks && rc == 0; i++)
        rc = WEFT_SPAWN(rt, NULL, &(mutex_task){ WEFT_FN_INIT(mutex_task, WEFT_F_SEND), .sh = sh,
                                                 .n = n });
    if (rc == 0)
        rc = signal_block_on(rt, &sh->done, check);
    return rc;
}

static int run_mutex_contended(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    return run_mutex_tasks(rt, MUTEX_TASKS, MUTEX_LOCKS_PER_TASK, check);
}

/* mutex_uncontended: one task, MUTEX_PAIRS lock/unlock pairs; prints the
 * nanoseconds per pair (the lock future's first poll takes the mutex with
 * one CAS, the unlock releases it with another). */
static int run_mutex_uncontended(weft_rt *rt)
{
    uint64_t check = 0;
    double t0 = now_ms();
    int rc = run_mutex_tasks(rt, 1, MUTEX_PAIRS, &check);
    double t1 = now_ms();
    if (rc != 0) {
        fprintf(stderr, "weft-bench: mutex_uncontended: %s\n", weft_strerror(rc));
        return 1;
    }
    printf("elapsed_ms=%.3f\n", t1 - t0);
    printf("ns_per_pair=%.2f\n", (t1 - t0) * 1e6 / MUTEX_PAIRS);
    printf("check=%" PRIu64 "\n", check);
    return check == MUTEX_PAIRS ? 0 : 1;
}

/* ---- W4 ping_pong, W7 mpsc_throughput, W8 spsc_throughput ------------------------------ */

#define PING_PAIRS 100u          /* W4 */
#define PING_ROUNDS 10000u       /* W4 */
#define CHAN_ITEMS 10000000u     /* W7, W8 */
#define CHAN_CAPACITY 1024u      /* W7, W8 */
#define CHAN_MPSC_PRODUCERS 4u   /* W7 */
#define CHAN_BATCH 256u          /* items the consumer takes per receive */

/* Sends lo, lo + 1, ..., hi - 1, then drops its sender. */
typedef struct chan_producer {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    uint64_t v, hi;
    int rc;
    weft_chan_send send;
} chan_producer;

WEFT_ASYNC_FN_VOID(chan_producer)
{
    WEFT_FN_BEGIN;
    for (; self->v < self->hi; self->v++) {
        weft_chan_send_init(&self->send, &self->tx, &self->v);
        WEFT_FN_AWAIT(&self->send, &self->rc);
        if (self->rc != 0)
            break;
    }
    weft_chan_tx_drop(&self->tx);
    WEFT_FN_END;
}

/* Sums everything received, taking up to CHAN_BATCH items per wake, until
 * the channel is closed and drained; then publishes the sum. */
typedef struct chan_consumer {
    weft_future base;
    weft_co co;
    weft_chan_rx rx;
    bench_signal *done;
    uint64_t sum;
    size_t n, batch;
    weft_chan_recv_many recv;
    uint64_t buf[CHAN_BATCH];
} chan_consumer;

WEFT_ASYNC_FN_VOID(chan_consumer)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_chan_recv_many_init(&self->recv, &self->rx, self->buf, self->batch);
        WEFT_FN_AWAIT(&self->recv, &self->n);
        if (self->n == 0)
            break;
        for (size_t k = 0; k < self->n; k++)
            self->sum += self->buf[k];
    }
    weft_chan_rx_drop(&self->rx);
    signal_set(self->done, self->sum, 0);
    WEFT_FN_END;
}

static int run_channel_throughput(weft_rt *rt, bench_shared *sh, uint32_t producers,
                                  size_t batch, uint64_t *check)
{
    weft_chan_tx tx;
    weft_chan_rx rx;
    int rc = weft_mpsc_new(&tx, &rx, sizeof(uint64_t), CHAN_CAPACITY);
    if (rc != 0)
        return rc;
    signal_init(&sh->sig);
    chan_consumer *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (chan_consumer){ WEFT_FN_INIT(chan_consumer, WEFT_F_SEND), .rx = rx, .done = &sh->sig,
                          .batch = batch };
    rc = weft_spawn(rt, &c->base, sizeof *c, NULL);
    free(c);
    uint64_t per = CHAN_ITEMS / producers;
    for (uint32_t p = 0; p < producers && rc == 0; p++) {
        chan_producer pr = { WEFT_FN_INIT(chan_producer, WEFT_F_SEND), .v = p * per,
                             .hi = (p + 1) * per };
        rc = p + 1 < producers ? weft_chan_tx_clone(&tx, &pr.tx) : 0;
        if (p + 1 == producers)
            pr.tx = tx;
        if (rc == 0)
            rc = WEFT_SPAWN(rt, NULL, &pr);
    }
    if (rc != 0)
        return rc;
    return signal_block_on(rt, &sh->sig, check);
}

static int run_mpsc_throughput(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    return run_channel_throughput(rt, sh, CHAN_MPSC_PRODUCERS, CHAN_BATCH, check);
}

static int run_spsc_throughput(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    return run_channel_throughput(rt, sh, 1, CHAN_BATCH, check);
}

/* The same with the consumer taking one item per receive, as the peers'
 * `recv().await` does: what the batches are worth. */
static int run_mpsc_throughput_one(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    return run_channel_throughput(rt, sh, CHAN_MPSC_PRODUCERS, 1, check);
}

static int run_spsc_throughput_one(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    return run_channel_throughput(rt, sh, 1, 1, check);
}

/* W4: the w4_ponger answers each i with i + 1 until its channel closes. */
typedef struct w4_ponger {
    weft_future base;
    weft_co co;
    weft_chan_rx ping;
    weft_chan_tx pong;
    uint64_t v;
    int rc;
    weft_chan_recv recv;
    weft_chan_send send;
} w4_ponger;

WEFT_ASYNC_FN_VOID(w4_ponger)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_chan_recv_init(&self->recv, &self->ping, &self->v);
        WEFT_FN_AWAIT(&self->recv, &self->rc);
        if (self->rc != 0)
            break;
        self->v += 1;
        weft_chan_send_init(&self->send, &self->pong, &self->v);
        WEFT_FN_AWAIT(&self->send, &self->rc);
        if (self->rc != 0)
            break;
    }
    weft_chan_rx_drop(&self->ping);
    weft_chan_tx_drop(&self->pong);
    WEFT_FN_END;
}

/* W4: the w4_pinger sends 0..PING_ROUNDS-1 and sums the answers. */
typedef struct w4_pinger {
    weft_future base;
    weft_co co;
    weft_chan_tx ping;
    weft_chan_rx pong;
    countdown *cd;
    _Atomic uint64_t *total;
    uint64_t i, v, sum;
    int rc;
    weft_chan_send send;
    weft_chan_recv recv;
} w4_pinger;

WEFT_ASYNC_FN_VOID(w4_pinger)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < PING_ROUNDS; self->i++) {
        weft_chan_send_init(&self->send, &self->ping, &self->i);
        WEFT_FN_AWAIT(&self->send, &self->rc);
        if (self->rc != 0)
            break;
        weft_chan_recv_init(&self->recv, &self->pong, &self->v);
        WEFT_FN_AWAIT(&self->recv, &self->rc);
        if (self->rc != 0)
            break;
        self->sum += self->v;
    }
    weft_chan_tx_drop(&self->ping);
    weft_chan_rx_drop(&self->pong);
    atomic_fetch_add_explicit(self->total, self->sum, memory_order_relaxed);
    countdown_hit(self->cd);
    WEFT_FN_END;
}

static _Atomic uint64_t g_ping_total;

static int run_ping_pong(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    countdown *cd = &sh->cd;
    countdown_init(cd, PING_PAIRS);
    atomic_init(&g_ping_total, 0);
    int rc = 0;
    for (uint32_t p = 0; p < PING_PAIRS && rc == 0; p++) {
        w4_pinger pi = { WEFT_FN_INIT(w4_pinger, WEFT_F_SEND), .cd = cd, .total = &g_ping_total };
        w4_ponger po = { WEFT_FN_INIT(w4_ponger, WEFT_F_SEND) };
        rc = weft_mpsc_new(&pi.ping, &po.ping, sizeof(uint64_t), 1);
        if (rc == 0)
            rc = weft_mpsc_new(&po.pong, &pi.pong, sizeof(uint64_t), 1);
        if (rc == 0)
            rc = WEFT_SPAWN(rt, NULL, &po);
        if (rc == 0)
            rc = WEFT_SPAWN(rt, NULL, &pi);
    }
    if (rc != 0)
        return rc;
    uint64_t hits = 0;
    rc = signal_block_on(rt, &cd->done, &hits);
    /* Acquire: countdown_hit's release of the last w4_pinger. */
    *check = atomic_load_explicit(&g_ping_total, memory_order_acquire);
    return rc;
}

/* ---- W15 broadcast ---------------------------------------------------------------------- */

#define BCAST_ITEMS 1000000u  /* W15 */
#define BCAST_RECEIVERS 8u    /* W15 */
#define BCAST_CAPACITY 1024u  /* W15 */
#define BCAST_BATCH 256u      /* items a receiver takes per poll */

/* The receivers' handles (pinned here: a receiver is polled where it is)
 * and the sum of every receiver's sum, published by the last to finish. */
typedef struct bcast_shared {
    weft_broadcast_rx rx[BCAST_RECEIVERS];
    atomic_uint_fast64_t running, total;
    bench_signal done;
} bcast_shared;

static bcast_shared g_bc;

/* Sends 0..BCAST_ITEMS-1 (each send waits for room: WAIT mode), then
 * drops its sender, which closes the channel. */
typedef struct bcast_sender {
    weft_future base;
    weft_co co;
    weft_broadcast_tx tx;
    uint64_t v;
    int rc;
    weft_broadcast_send send;
} bcast_sender;

WEFT_ASYNC_FN_VOID_WITH_DROP(bcast_sender)
{
    WEFT_FN_BEGIN;
    for (self->v = 0; self->v < BCAST_ITEMS; self->v++) {
        weft_broadcast_send_init(&self->send, &self->tx, &self->v);
        WEFT_FN_AWAIT(&self->send, &self->rc);
        if (self->rc != 0)
            break;
    }
    WEFT_FN_END;
}

static void bcast_sender_drop(weft_future *f)
{
    bcast_sender *self = (bcast_sender *)f;
    weft_co_drop(&self->co);
    weft_broadcast_tx_drop(&self->tx);
}

/* Sums what its receiver gets, a run of up to BCAST_BATCH items per
 * stream poll, until the channel is closed and drained. */
typedef struct bcast_receiver {
    weft_future base;
    weft_broadcast_rx *rx;
    uint64_t sum;
    uint64_t buf[BCAST_BATCH];
} bcast_receiver;

static weft_poll bcast_receiver_poll(weft_future *f, weft_cx *cx, void *out)
{
    bcast_receiver *r = (bcast_receiver *)f;
    (void)out;
    for (;;) {
        size_t n = 0;
        weft_next st = weft_stream_poll_next_many(&r->rx->base, cx, r->buf, BCAST_BATCH, &n);
        if (st == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (st == WEFT_NEXT_DONE)
            break;
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++)
            s += r->buf[i];
        r->sum += s;
    }
    atomic_fetch_add_explicit(&g_bc.total, r->sum, memory_order_relaxed);
    /* AcqRel: the last one out sees every other receiver's addition. */
    if (atomic_fetch_sub_explicit(&g_bc.running, 1, memory_order_acq_rel) == 1)
        signal_set(&g_bc.done, atomic_load_explicit(&g_bc.total, memory_order_relaxed), 0);
    return WEFT_READY;
}

static const weft_future_ops bcast_receiver_ops = {
    .name = "bench_bcast_receiver", .poll = bcast_receiver_poll,
};

static int run_broadcast(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    bcast_shared *bc = &g_bc;
    atomic_init(&bc->running, BCAST_RECEIVERS);
    atomic_init(&bc->total, 0);
    signal_init(&bc->done);
    weft_broadcast_tx tx;
    int rc = weft_broadcast_new(&tx, &bc->rx[0], sizeof(uint64_t), BCAST_CAPACITY,
                                WEFT_BROADCAST_WAIT);
    if (rc != 0)
        return rc;
    unsigned made = 1;
    while (made < BCAST_RECEIVERS && (rc = weft_broadcast_subscribe(&tx, &bc->rx[made])) == 0)
        made++;
    for (unsigned i = 0; i < BCAST_RECEIVERS && rc == 0; i++) {
        bcast_receiver r = { .base = WEFT_FUTURE_INIT(&bcast_receiver_ops, WEFT_F_SEND),
                             .rx = &bc->rx[i] };
        rc = weft_spawn(rt, &r.base, sizeof r, NULL);
    }
    if (rc == 0)
        rc = WEFT_SPAWN(rt, NULL, &(bcast_sender){ WEFT_FN_INIT(bcast_sender, WEFT_F_SEND),
                                                   .tx = tx });
    else
        weft_broadcast_tx_drop(&tx);
    if (rc == 0)
        rc = signal_block_on(rt, &bc->done, check);
    /* Every receiver task is done with its handle once the signal is set
     * (on an error, the runtime's shutdown has not run yet: leak them). */
    if (rc == 0)
        for (unsigned i = 0; i < made; i++)
            weft_broadcast_rx_drop(&bc->rx[i]);
    return rc;
}

/* ---- W9 select_two ---------------------------------------------------------------------- */

#define SELECT_PER_PRODUCER 1000000u /* W9 */
#define SELECT_CAPACITY 128u         /* W9 */
#define SELECT_MERGE_BATCH 256u      /* select_two_merge: items per stream poll */

/* The consumer's count; its sum travels in the signal. Written by the
 * consumer before signal_set (release), read after signal_block_on
 * (acquire). */
static uint64_t g_select_count;

/* W9: awaits weft_select_next over both receivers (fair), one item per
 * select, as the peers' select! / select do; an ended branch is reported
 * once and skipped after; WEFT_SELECT_ELSE means both have ended. */
typedef struct select_consumer {
    weft_future base;
    weft_co co;
    weft_chan_rx rx[2];
    bench_signal *done;
    uint64_t count, sum;
    uint64_t item[2];
    weft_select_stream br[2];
    weft_select_next next;
    weft_select_event ev;
} select_consumer;

WEFT_ASYNC_FN_VOID(select_consumer)
{
    WEFT_FN_BEGIN;
    /* The task's copy is where the consumer lives: point the branches
     * at it here, not before the spawn. */
    for (int i = 0; i < 2; i++)
        self->br[i] = (weft_select_stream){ &self->rx[i].base, &self->item[i], 0 };
    for (;;) {
        if (weft_select_next_init(&self->next, self->br, 2, WEFT_SELECT_FAIR) != 0) {
            signal_set(self->done, 0, -EINVAL);
            break;
        }
        WEFT_FN_AWAIT(&self->next, &self->ev);
        if (self->ev.index == WEFT_SELECT_ELSE)
            break; /* both closed and drained */
        if (self->ev.ended)
            continue;
        self->count++;
        self->sum += self->item[self->ev.index];
    }
    weft_chan_rx_drop(&self->rx[0]);
    weft_chan_rx_drop(&self->rx[1]);
    g_select_count = self->count;
    signal_set(self->done, self->sum, 0);
    WEFT_FN_END;
}

/* select_two_merge, another form of W9: both receivers in a weft_merge,
 * pulled with weft_stream_poll_next_many (a run of up to
 * SELECT_MERGE_BATCH items from one branch per poll, the branches taken
 * round robin). A hand-written poll: it drains what is there and returns
 * PENDING when both channels are empty. */
typedef struct merge_consumer {
    weft_future base;
    weft_chan_rx rx[2];
    bench_signal *done;
    bool started;
    uint64_t count, sum;
    weft_merge merge;
    weft_merge_slot slots[2];
    unsigned char buf[SELECT_MERGE_BATCH * WEFT_MERGE_ITEM_SIZE(sizeof(uint64_t))];
} merge_consumer;

/* The receivers are dropped with the task (merge_consumer_drop). */
static void merge_consumer_finish(merge_consumer *c, int err)
{
    g_select_count = c->count;
    signal_set(c->done, c->sum, err);
}

static weft_poll merge_consumer_poll(weft_future *f, weft_cx *cx, void *out)
{
    merge_consumer *c = (merge_consumer *)f;
    (void)out;
    if (!c->started) {
        /* As above: the merge points into the task's copy. */
        c->started = true;
        size_t idx;
        if (weft_merge_init(&c->merge, c->slots, 2, sizeof(uint64_t), WEFT_F_SEND) != 0 ||
            weft_merge_add(&c->merge, &c->rx[0].base, &idx) != 0 ||
            weft_merge_add(&c->merge, &c->rx[1].base, &idx) != 0) {
            merge_consumer_finish(c, -EINVAL);
            return WEFT_READY;
        }
    }
    const size_t stride = WEFT_MERGE_ITEM_SIZE(sizeof(uint64_t));
    for (;;) {
        size_t n = 0;
        weft_next r = weft_stream_poll_next_many(&c->merge.base, cx, c->buf,
                                                 SELECT_MERGE_BATCH, &n);
        if (r == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (r == WEFT_NEXT_DONE)
            break;
        uint64_t s = 0;
        for (size_t k = 0; k < n; k++) {
            uint64_t v;
            memcpy(&v, weft_merge_item_data(c->buf + k * stride), sizeof v);
            s += v;
        }
        c->count += n;
        c->sum += s;
    }
    merge_consumer_finish(c, 0);
    return WEFT_READY;
}

static void merge_consumer_drop(weft_future *f)
{
    merge_consumer *c = (merge_consumer *)f;
    weft_chan_rx_drop(&c->rx[0]);
    weft_chan_rx_drop(&c->rx[1]);
}

static const weft_future_ops merge_consumer_ops = {
    .name = "bench_merge_consumer", .poll = merge_consumer_poll, .drop = merge_consumer_drop,
};

/* Two channels of SELECT_CAPACITY, a chan_producer on each (values
 * 0..999,999 and 1,000,000..1,999,999), and the consumer `merge` picks. */
static int run_select(weft_rt *rt, bench_shared *sh, bool merge, uint64_t *check)
{
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    int rc = weft_mpsc_new(&tx[0], &rx[0], sizeof(uint64_t), SELECT_CAPACITY);
    if (rc != 0)
        return rc;
    rc = weft_mpsc_new(&tx[1], &rx[1], sizeof(uint64_t), SELECT_CAPACITY);
    if (rc != 0) {
        weft_chan_tx_drop(&tx[0]);
        weft_chan_rx_drop(&rx[0]);
        return rc;
    }
    signal_init(&sh->sig);
    g_select_count = 0;
    if (merge) {
        merge_consumer *c = calloc(1, sizeof *c);
        if (!c)
            return -ENOMEM;
        weft_future_init(&c->base, &merge_consumer_ops, WEFT_F_SEND);
        c->rx[0] = rx[0];
        c->rx[1] = rx[1];
        c->done = &sh->sig;
        rc = weft_spawn(rt, &c->base, sizeof *c, NULL);
        free(c);
    } else {
        select_consumer c = { WEFT_FN_INIT(select_consumer, WEFT_F_SEND), .rx = { rx[0], rx[1] },
                              .done = &sh->sig };
        rc = WEFT_SPAWN(rt, NULL, &c);
    }
    for (uint32_t p = 0; p < 2 && rc == 0; p++) {
        chan_producer pr = { WEFT_FN_INIT(chan_producer, WEFT_F_SEND), .tx = tx[p],
                             .v = p * SELECT_PER_PRODUCER,
                             .hi = (p + 1) * SELECT_PER_PRODUCER };
        rc = WEFT_SPAWN(rt, NULL, &pr);
    }
    if (rc != 0)
        return rc;
    rc = signal_block_on(rt, &sh->sig, check);
    return rc;
}

static int run_select_two(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    return run_select(rt, sh, false, check);
}

static int run_select_two_merge(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    return run_select(rt, sh, true, check);
}

/* W9's check is two figures: the count (read after the signal's acquire)
 * and the sum. */
static void print_select_check(uint64_t sum)
{
    printf("check=count=%" PRIu64 " sum=%" PRIu64 "\n", g_select_count, sum);
}

/* ---- iter_overhead --------------------------------------------------------------------- */

/* Eight combinator stages (map +1, filter not a multiple of 7, map +1,
 * filter not a multiple of 11, twice) over a counter of 10M items, against
 * the same arithmetic in a plain C loop; every sum must agree (the
 * check). Three forms, run back to back: per-item functions pulled one
 * item at a time (weft_stream_poll_next), the same pulled in batches of
 * ITER_BATCH (weft_stream_poll_next_many: the counter, map and filter
 * batch natively), and the batch-callback forms (map_many, filter_many:
 * one call of the user's function per stage per batch). The predicates
 * divide by constants, as the loop does. A fourth figure, "staged C
 * loops", calls the same batch functions directly on arrays of
 * ITER_BATCH with no stream in between: the floor of the batch form. */
#define ITER_ITEMS 10000000u
#define ITER_BATCH 256u

typedef struct iter_count {
    weft_stream base;
    uint64_t next;
} iter_count;

static weft_next iter_count_poll(weft_stream *s, weft_cx *cx, void *item)
{
    iter_count *c = (iter_count *)s;
    (void)cx;
    if (c->next >= ITER_ITEMS)
        return WEFT_NEXT_DONE;
    memcpy(item, &c->next, sizeof c->next);
    c->next++;
    return WEFT_NEXT_ITEM;
}

static weft_next iter_count_poll_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                      size_t *n)
{
    iter_count *c = (iter_count *)s;
    (void)cx;
    uint64_t left = ITER_ITEMS - c->next, *o = items;
    size_t k = left < max ? (size_t)left : max;
    for (size_t i = 0; i < k; i++)
        o[i] = c->next + i;
    c->next += k;
    *n = k;
    return k ? WEFT_NEXT_ITEM : WEFT_NEXT_DONE;
}

static const weft_stream_ops iter_count_ops = {
    .name = "bench_count", .item_size = sizeof(uint64_t), .poll_next = iter_count_poll,
    .poll_next_many = iter_count_poll_many,
};

static void iter_add1(void *ctx, const void *in, void *out)
{
    (void)ctx;
    uint64_t v;
    memcpy(&v, in, sizeof v);
    v++;
    memcpy(out, &v, sizeof v);
}

static bool iter_not7(void *ctx, const void *item)
{
    (void)ctx;
    uint64_t v;
    memcpy(&v, item, sizeof v);
    return v % 7 != 0;
}

static bool iter_not11(void *ctx, const void *item)
{
    (void)ctx;
    uint64_t v;
    memcpy(&v, item, sizeof v);
    return v % 11 != 0;
}

static void iter_add1_many(void *ctx, const void *in, void *out, size_t n)
{
    (void)ctx;
    const uint64_t *i = in;
    uint64_t *o = out;
    for (size_t k = 0; k < n; k++)
        o[k] = i[k] + 1;
}

static size_t iter_not7_many(void *ctx, void *items, size_t n)
{
    (void)ctx;
    uint64_t *a = items;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        a[k] = a[i];
        k += a[i] % 7 != 0;
    }
    return k;
}

static size_t iter_not11_many(void *ctx, void *items, size_t n)
{
    (void)ctx;
    uint64_t *a = items;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        a[k] = a[i];
        k += a[i] % 11 != 0;
    }
    return k;
}

typedef struct iter_pipe {
    iter_count src;
    weft_iter_map m[4];
    weft_iter_filter f[4];
    weft_iter_map_many mm[4];
    weft_iter_filter_many fm[4];
    bool many;
} iter_pipe;

/* The eight stages over a fresh counter; returns the last one. */
static weft_stream *iter_pipe_build(iter_pipe *p, bool many)
{
    weft_stream_init(&p->src.base, &iter_count_ops, WEFT_F_SEND);
    p->src.next = 0;
    p->many = many;
    weft_stream *up = &p->src.base;
    for (int i = 0; i < 4; i++) {
        if (many) {
            if (weft_iter_map_many_init(&p->mm[i], up, iter_add1_many, NULL,
                                        sizeof(uint64_t)) ||
                weft_iter_filter_many_init(&p->fm[i], &p->mm[i].base,
                                           i % 2 ? iter_not11_many : iter_not7_many, NULL))
                return NULL;
            up = &p->fm[i].base;
        } else {
            if (weft_iter_map_init(&p->m[i], up, iter_add1, NULL, sizeof(uint64_t)) ||
                weft_iter_filter_init(&p->f[i], &p->m[i].base, i % 2 ? iter_not11 : iter_not7,
                                      NULL))
                return NULL;
            up = &p->f[i].base;
        }
    }
    return up;
}

static void iter_pipe_drop(iter_pipe *p)
{
    for (int i = 3; i >= 0; i--) {
        weft_stream_drop(p->many ? &p->fm[i].base : &p->f[i].base);
        weft_stream_drop(p->many ? &p->mm[i].base : &p->m[i].base);
    }
}

static double iter_ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Drain `up` one item (batch 0) or up to ITER_BATCH items at a time. */
static uint64_t iter_drain(weft_stream *up, bool batch)
{
    weft_waker w = weft_waker_noop();
    weft_cx cx;
    uint64_t sum = 0, buf[ITER_BATCH];
    for (;;) {
        weft_cx_init(&cx, &w);
        size_t n = 1;
        weft_next r = batch ? weft_stream_poll_next_many(up, &cx, buf, ITER_BATCH, &n)
                            : weft_stream_poll_next(up, &cx, buf);
        if (r == WEFT_NEXT_DONE)
            break;
        if (r == WEFT_NEXT_ITEM)
            for (size_t i = 0; i < n; i++)
                sum += buf[i];
    }
    return sum;
}

static int run_iter_overhead(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)rt, (void)sh;
    static iter_pipe p;
    static const struct {
        const char *name;
        bool many, batch;
    } forms[] = {
        { "per-item pull", false, false },
        { "batched pull", false, true },
        { "batch callbacks", true, true },
    };
    double ms[3];
    uint64_t sums[3];
    for (int f = 0; f < 3; f++) {
        weft_stream *up = iter_pipe_build(&p, forms[f].many);
        if (!up)
            return -EINVAL;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sums[f] = iter_drain(up, forms[f].batch);
        ms[f] = iter_ms_since(&t0);
        iter_pipe_drop(&p);
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t plain = 0;
    for (uint64_t i = 0; i < ITER_ITEMS; i++) {
        uint64_t x = i;
        bool keep = true;
        for (int s = 0; s < 4 && keep; s++) {
            x++;
            keep = x % (s % 2 ? 11u : 7u) != 0;
        }
        if (keep)
            plain += x;
    }
    double ms_plain = iter_ms_since(&t0);
    /* The floor of the batch form: the same eight batch functions called
     * directly, stage after stage, on arrays of ITER_BATCH, no streams. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t staged = 0, buf[ITER_BATCH];
    for (uint64_t at = 0; at < ITER_ITEMS; at += ITER_BATCH) {
        size_t n = ITER_ITEMS - at < ITER_BATCH ? (size_t)(ITER_ITEMS - at) : ITER_BATCH;
        for (size_t i = 0; i < n; i++)
            buf[i] = at + i;
        for (int s = 0; s < 4; s++) {
            iter_add1_many(NULL, buf, buf, n);
            n = s % 2 ? iter_not11_many(NULL, buf, n) : iter_not7_many(NULL, buf, n);
        }
        for (size_t i = 0; i < n; i++)
            staged += buf[i];
    }
    double ms_staged = iter_ms_since(&t0);
    printf("iter_overhead: 8 stages over %u items: plain loop %.1f ms (%.2f ns/item)\n",
           ITER_ITEMS, ms_plain, ms_plain * 1e6 / ITER_ITEMS);
    for (int f = 0; f < 3; f++)
        printf("iter_overhead: %-15s %.1f ms (%.2f ns/item, %.1fx the loop)\n",
               forms[f].name, ms[f], ms[f] * 1e6 / ITER_ITEMS,
               ms_plain > 0 ? ms[f] / ms_plain : 0.0);
    printf("iter_overhead: %-15s %.1f ms (%.2f ns/item, %.1fx the loop)\n", "staged C loops",
           ms_staged, ms_staged * 1e6 / ITER_ITEMS, ms_plain > 0 ? ms_staged / ms_plain : 0.0);
    for (int f = 0; f < 3; f++)
        if (sums[f] != plain)
            return -EPROTO;
    if (staged != plain)
        return -EPROTO;
    *check = plain;
    return 0;
}

/* ---- W10: pipeline ------------------------------------------------------------------------ */

#define PIPE_ITEMS 100000u
#define PIPE_INFLIGHT 64u

static uint64_t pipe_work(uint64_t x)
{
    uint64_t h = x + 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 2000; i++) {
        h ^= h << 13;
        h ^= h >> 7;
        h ^= h << 17;
        h *= 0x2545F4914F6CDD1Dull;
    }
    return h;
}

/* One item's task: work(x), output u64. */
typedef struct pipe_job {
    weft_future base;
    uint64_t x;
} pipe_job;

static weft_poll pipe_job_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx;
    uint64_t h = pipe_work(((pipe_job *)f)->x);
    memcpy(out, &h, sizeof h);
    return WEFT_READY;
}

static const weft_future_ops pipe_job_ops = {
    .name = "pipe_job", .out_size = sizeof(uint64_t), .poll = pipe_job_poll,
};

static weft_future *pipe_make(void *ctx, const void *item, void *storage, size_t size)
{
    (void)ctx, (void)size;
    pipe_job *j = storage;
    weft_future_init(&j->base, &pipe_job_ops, WEFT_F_SEND);
    memcpy(&j->x, item, sizeof j->x);
    return &j->base;
}

static bool pipe_even(void *ctx, const void *item)
{
    (void)ctx;
    uint64_t v;
    memcpy(&v, item, sizeof v);
    return v % 2 == 0;
}

static void pipe_add(void *ctx, void *acc, const void *item)
{
    (void)ctx;
    uint64_t v;
    memcpy(&v, item, sizeof v);
    *(uint64_t *)acc += v;
}

/* range -> spawn_map(64, completion order) -> filter(even) -> fold(+), the
 * fold running as a task of its own. */
static int run_pipeline(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    static struct {
        weft_iter_range src;
        weft_iter_spawn_map m;
        weft_iter_filter f;
        weft_iter_spawn_slot slots[PIPE_INFLIGHT];
    } p;
    uint64_t sum = 0;
    int rc = weft_iter_range_init(&p.src, 0, PIPE_ITEMS, 1);
    if (rc == 0)
        rc = weft_iter_spawn_map_init(&p.m, &p.src.base, rt, pipe_make, NULL,
                                      sizeof(pipe_job), sizeof(uint64_t), PIPE_INFLIGHT,
                                      WEFT_ITER_UNORDERED, p.slots, PIPE_INFLIGHT);
    if (rc == 0)
        rc = weft_iter_filter_init(&p.f, &p.m.base, pipe_even, NULL);
    if (rc != 0)
        return rc;
    weft_iter_fold fold;
    rc = weft_iter_fold_init(&fold, &p.f.base, &sum, pipe_add, NULL);
    weft_join j;
    if (rc == 0)
        rc = weft_spawn(rt, &fold.base, sizeof fold, &j);
    if (rc == 0) {
        size_t n = 0;
        rc = weft_block_on(rt, &j.base, &n, sizeof n);
        if (rc == 0)
            rc = j.status;
    }
    weft_stream_drop(&p.f.base);
    weft_stream_drop(&p.m.base);
    *check = sum;
    return rc;
}

/* The same work, one item after another on the calling thread. */
static int run_pipeline_seq(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)rt, (void)sh;
    uint64_t sum = 0;
    for (uint64_t x = 0; x < PIPE_ITEMS; x++) {
        uint64_t h = pipe_work(x);
        if (h % 2 == 0)
            sum += h;
    }
    *check = sum;
    return 0;
}

/* ---- W13 tcp_echo, W14 tcp_stream ---------------------------------------------------- */

#define ECHO_CLIENTS 50u             /* W13 */
#define ECHO_MSGS 10000u             /* W13: round trips per client */
#define ECHO_MSG_LEN 64u             /* W13 */
#define STREAM_CONNS 4u              /* W14 */
#define STREAM_BYTES (64u << 20)     /* W14: bytes per connection */
#define STREAM_CHUNK 16384u          /* W14: bytes per write */
#define STREAM_PERIOD 251u           /* W14: byte i = (i * 131 + conn) mod 251 */
#define ECHO_BUF 65536u              /* the server's copy buffer: one recv takes what
                                      * the socket holds, up to a pipe's worth (what
                                      * one splice moves in Go's server) */

/* One W14 client connection: its stream, shared by a writer task and a
 * reader task; the last of the two to finish closes it. */
typedef struct tcp_conn {
    weft_tcp_stream s;
    atomic_uint refs;
    unsigned index;
} tcp_conn;

/* What the W13/W14 tasks share. The listener, the port and the streams
 * are written before the tasks that read them are spawned; `bytes` counts
 * what the clients got back and checked; the last client to finish
 * publishes it through `cd` (a failure publishes its error at once). */
typedef struct tcp_shared {
    weft_tcp_listener l;
    uint16_t port;
    unsigned conns; /* connections the acceptor takes */
    bool stream;    /* W14 (else W13) */
    atomic_uint_fast64_t bytes;
    countdown cd;
    tcp_conn conn[STREAM_CONNS];
    /* W14's pattern, one row per connection: row c at offset i % 251 is
     * the next STREAM_CHUNK bytes from stream offset i. */
    unsigned char pat[STREAM_CONNS][STREAM_CHUNK + STREAM_PERIOD];
} tcp_shared;

static tcp_shared g_tcp;

static void tcp_fail(int rc)
{
    signal_set(&g_tcp.cd.done, 0, rc);
}

/* The server's side of a connection: echoes everything until the client
 * closes its write side, then closes. The copy buffer is allocated, not
 * part of the future: spawning copies the future, and a 64 KiB member
 * would be written (made resident) whole for every connection, where
 * W13's 64-byte messages touch only its first page. */
typedef struct echo_conn {
    weft_future base;
    weft_co co;
    weft_tcp_stream s;
    int64_t n;
    unsigned char *buf;
    weft_copy cp;
} echo_conn;

static void echo_conn_drop(weft_future *f)
{
    echo_conn *self = (echo_conn *)f;
    weft_co_drop(&self->co);
    weft_tcp_stream_close(&self->s);
    free(self->buf);
}

WEFT_ASYNC_FN_VOID_WITH_DROP(echo_conn)
{
    WEFT_FN_BEGIN;
    self->buf = malloc(ECHO_BUF);
    if (!self->buf) {
        tcp_fail(-ENOMEM);
        weft_tcp_stream_close(&self->s);
        WEFT_FN_RETURN_VOID;
    }
    weft_copy_init(&self->cp, &self->s.reader, &self->s.writer, self->buf, ECHO_BUF);
    WEFT_FN_AWAIT(&self->cp, &self->n);
    if (self->n < 0)
        tcp_fail((int)self->n);
    weft_tcp_stream_close(&self->s);
    free(self->buf);
    self->buf = NULL;
    WEFT_FN_END;
}

/* Accepts g_tcp.conns connections, a task for each, then closes the
 * listener. */
typedef struct tcp_acceptor {
    weft_future base;
    weft_co co;
    unsigned i;
    int rc;
    weft_tcp_stream s;
    weft_tcp_accept a;
} tcp_acceptor;

WEFT_ASYNC_FN_VOID(tcp_acceptor)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < g_tcp.conns; self->i++) {
        weft_tcp_accept_init(&self->a, &g_tcp.l, &self->s);
        WEFT_FN_AWAIT(&self->a, &self->rc);
        if (self->rc == 0)
            self->rc = weft_tcp_stream_set_nodelay(&self->s, true);
        if (self->rc == 0)
            self->rc = WEFT_SPAWN(NULL, NULL,
                                  &(echo_conn){ WEFT_FN_INIT(echo_conn, WEFT_F_SEND),
                                                .s = self->s });
        if (self->rc != 0) {
            tcp_fail(self->rc);
            break;
        }
    }
    if (weft_tcp_listener_close(&g_tcp.l) != 0)
        tcp_fail(-EBUSY);
    WEFT_FN_END;
}

/* W13's client: 10,000 round trips of a 64-byte message, each echo read
 * in full and compared before the next message goes. */
typedef struct echo_client {
    weft_future base;
    weft_co co;
    unsigned id, i;
    int rc;
    weft_tcp_stream s;
    union {
        weft_tcp_connect c;
        weft_write_all w;
        weft_read_exact r;
    } op;
    unsigned char out[ECHO_MSG_LEN], in[ECHO_MSG_LEN];
} echo_client;

static void echo_client_drop(weft_future *f)
{
    echo_client *self = (echo_client *)f;
    weft_co_drop(&self->co);
    weft_tcp_stream_close(&self->s); /* a stream never opened is left alone */
}

WEFT_ASYNC_FN_VOID_WITH_DROP(echo_client)
{
    WEFT_FN_BEGIN;
    weft_tcp_connect_ip_init(&self->op.c, &self->s, "127.0.0.1", g_tcp.port);
    WEFT_FN_AWAIT(&self->op.c, &self->rc);
    if (self->rc == 0)
        self->rc = weft_tcp_stream_set_nodelay(&self->s, true);
    for (self->i = 0; self->i < ECHO_MSGS && self->rc == 0; self->i++) {
        memset(self->out, (int)(self->id * 7 + self->i), sizeof self->out);
        weft_write_all_init(&self->op.w, &self->s.writer, self->out, sizeof self->out);
        WEFT_FN_AWAIT(&self->op.w, &self->rc);
        if (self->rc != 0)
            break;
        weft_read_exact_init(&self->op.r, &self->s.reader, self->in, sizeof self->in);
        WEFT_FN_AWAIT(&self->op.r, &self->rc);
        if (self->rc == 0 && memcmp(self->in, self->out, sizeof self->in) != 0)
            self->rc = -EPROTO;
        if (self->rc == 0)
            atomic_fetch_add_explicit(&g_tcp.bytes, sizeof self->in, memory_order_relaxed);
    }
    weft_tcp_stream_close(&self->s);
    if (self->rc != 0)
        tcp_fail(self->rc);
    else if (atomic_fetch_sub_explicit(&g_tcp.cd.remaining, 1, memory_order_acq_rel) == 1)
        /* AcqRel: the last client acquires every other client's count. */
        signal_set(&g_tcp.cd.done, atomic_load_explicit(&g_tcp.bytes, memory_order_relaxed), 0);
    WEFT_FN_END;
}

static void tcp_conn_release(tcp_conn *c)
{
    /* AcqRel: the closer acquires the other task's last use of the stream. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        weft_tcp_stream_close(&c->s);
}

/* W14's reader: checks the echo byte for byte until end of stream. */
typedef struct stream_reader {
    weft_future base;
    weft_co co;
    tcp_conn *c;
    uint64_t pos;
    int64_t n;
    bool released;
    weft_read r;
    unsigned char buf[STREAM_CHUNK];
} stream_reader;

static void stream_reader_drop(weft_future *f)
{
    stream_reader *self = (stream_reader *)f;
    weft_co_drop(&self->co);
    if (!self->released)
        tcp_conn_release(self->c);
}

WEFT_ASYNC_FN_VOID_WITH_DROP(stream_reader)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_read_init(&self->r, &self->c->s.reader, self->buf, sizeof self->buf);
        WEFT_FN_AWAIT(&self->r, &self->n);
        if (self->n <= 0)
            break;
        if (memcmp(self->buf, &g_tcp.pat[self->c->index][self->pos % STREAM_PERIOD],
                   (size_t)self->n) != 0) {
            self->n = -EPROTO;
            break;
        }
        self->pos += (uint64_t)self->n;
    }
    self->released = true;
    tcp_conn_release(self->c);
    if (self->n < 0 || self->pos != STREAM_BYTES) {
        tcp_fail(self->n < 0 ? (int)self->n : -EPROTO);
    } else {
        atomic_fetch_add_explicit(&g_tcp.bytes, self->pos, memory_order_relaxed);
        if (atomic_fetch_sub_explicit(&g_tcp.cd.remaining, 1, memory_order_acq_rel) == 1)
            signal_set(&g_tcp.cd.done,
                       atomic_load_explicit(&g_tcp.bytes, memory_order_relaxed), 0);
    }
    WEFT_FN_END;
}

/* W14's writer: connects, starts the reader, streams STREAM_BYTES in
 * STREAM_CHUNK writes, then shuts its write side (the server then ends
 * its echo, and the reader sees end of stream). */
typedef struct stream_writer {
    weft_future base;
    weft_co co;
    tcp_conn *c;
    uint64_t pos;
    int rc;
    bool released;
    union {
        weft_tcp_connect c;
        weft_write_all w;
    } op;
} stream_writer;

static void stream_writer_drop(weft_future *f)
{
    stream_writer *self = (stream_writer *)f;
    weft_co_drop(&self->co);
    if (!self->released)
        tcp_conn_release(self->c);
}

WEFT_ASYNC_FN_VOID_WITH_DROP(stream_writer)
{
    WEFT_FN_BEGIN;
    weft_tcp_connect_ip_init(&self->op.c, &self->c->s, "127.0.0.1", g_tcp.port);
    WEFT_FN_AWAIT(&self->op.c, &self->rc);
    if (self->rc == 0)
        self->rc = weft_tcp_stream_set_nodelay(&self->c->s, true);
    if (self->rc == 0) {
        atomic_fetch_add_explicit(&self->c->refs, 1, memory_order_relaxed);
        self->rc = WEFT_SPAWN(NULL, NULL,
                              &(stream_reader){ WEFT_FN_INIT(stream_reader, WEFT_F_SEND),
                                                .c = self->c });
        if (self->rc != 0)
            atomic_fetch_sub_explicit(&self->c->refs, 1, memory_order_relaxed);
    }
    for (self->pos = 0; self->pos < STREAM_BYTES && self->rc == 0; self->pos += STREAM_CHUNK) {
        weft_write_all_init(&self->op.w, &self->c->s.writer,
                            &g_tcp.pat[self->c->index][self->pos % STREAM_PERIOD],
                            STREAM_CHUNK);
        WEFT_FN_AWAIT(&self->op.w, &self->rc);
    }
    if (self->rc == 0)
        self->rc = weft_tcp_stream_shutdown_write(&self->c->s);
    self->released = true;
    tcp_conn_release(self->c);
    if (self->rc != 0)
        tcp_fail(self->rc);
    WEFT_FN_END;
}

/* The root task: binds the listener (on a worker, where the reactor is),
 * starts the acceptor, then the clients. */
static void tcp_root(void *arg, void *out)
{
    (void)arg, (void)out;
    int rc = weft_tcp_listen_ip(&g_tcp.l, "127.0.0.1", 0, 0);
    if (rc == 0) {
        int port = weft_tcp_listener_port(&g_tcp.l);
        rc = port < 0 ? port : 0;
        g_tcp.port = (uint16_t)port;
    }
    if (rc == 0)
        rc = WEFT_SPAWN(NULL, NULL, &(tcp_acceptor){ WEFT_FN_INIT(tcp_acceptor, WEFT_F_SEND) });
    for (unsigned i = 0; i < g_tcp.conns && rc == 0; i++) {
        if (g_tcp.stream) {
            tcp_conn *c = &g_tcp.conn[i];
            atomic_init(&c->refs, 1);
            c->index = i;
            rc = WEFT_SPAWN(NULL, NULL, &(stream_writer){ WEFT_FN_INIT(stream_writer, WEFT_F_SEND),
                                                          .c = c });
        } else {
            rc = WEFT_SPAWN(NULL, NULL, &(echo_client){ WEFT_FN_INIT(echo_client, WEFT_F_SEND),
                                                        .id = i });
        }
    }
    if (rc != 0)
        tcp_fail(rc);
}

static void tcp_pattern_init(void)
{
    for (unsigned c = 0; c < STREAM_CONNS; c++)
        for (unsigned k = 0; k < STREAM_CHUNK + STREAM_PERIOD; k++)
            g_tcp.pat[c][k] = (unsigned char)((k * 131u + c) % STREAM_PERIOD);
}

static int run_tcp(weft_rt *rt, bool stream, uint64_t *check)
{
    g_tcp.stream = stream;
    g_tcp.conns = stream ? STREAM_CONNS : ECHO_CLIENTS;
    if (stream)
        tcp_pattern_init();
    atomic_init(&g_tcp.bytes, 0);
    countdown_init(&g_tcp.cd, g_tcp.conns);
    int rc = weft_spawn_fn(rt, tcp_root, &(char){ 0 }, 0, NULL);
    if (rc == 0)
        rc = signal_block_on(rt, &g_tcp.cd.done, check);
    return rc;
}

static int run_tcp_echo(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    return run_tcp(rt, false, check);
}

static int run_tcp_stream(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    return run_tcp(rt, true, check);
}

/* ---- driver ------------------------------------------------------------------------------- */

typedef int workload_fn(weft_rt *rt, bench_shared *sh, uint64_t *check);

static const struct workload {
    const char *name;
    workload_fn *run;
} workloads[] = {
    { "spawn_many", run_spawn_many },       /* W1 */
    { "spawn_remote", run_spawn_remote },   /* W2 */
    { "yield_many", run_yield_many },       /* W3 */
    { "ping_pong", run_ping_pong },         /* W4 */
    { "chained_spawn", run_chained_spawn }, /* W5 */
    { "fib_fork_join", run_fib_fork_join }, /* W6 */
    { "mpsc_throughput", run_mpsc_throughput }, /* W7 */
    { "spsc_throughput", run_spsc_throughput }, /* W8 */
    { "mpsc_throughput_one", run_mpsc_throughput_one }, /* W7, one item per receive */
    { "spsc_throughput_one", run_spsc_throughput_one }, /* W8, one item per receive */
    { "timers", run_timers },               /* W11 */
    { "mutex_contended", run_mutex_contended }, /* W12 */
    { "select_two", run_select_two },       /* W9 */
    { "select_two_merge", run_select_two_merge }, /* W9, weft_merge */
    { "broadcast", run_broadcast },         /* W15 */
    { "iter_overhead", run_iter_overhead }, /* combinator cost per item */
    { "pipeline", run_pipeline },           /* W10 */
    { "pipeline_seq", run_pipeline_seq },   /* W10, sequential baseline */
    { "tcp_echo", run_tcp_echo },           /* W13 */
    { "tcp_stream", run_tcp_stream },       /* W14 */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int usage(void)
{
    fprintf(stderr, "usage: weft-bench <workload> [--workers N] [--poll-us N]\n"
                    "workloads: spawn_many spawn_remote yield_many ping_pong chained_spawn "
                    "fib_fork_join mpsc_throughput spsc_throughput mpsc_throughput_one "
                    "spsc_throughput_one select_two select_two_merge pipeline pipeline_seq timers "
                    "mutex_contended broadcast "
                    "iter_overhead task_memory "
                    "idle_timers idle_many lifo_latency timer_lateness timer_churn "
                    "mutex_uncontended\n");
    return 1;
}

/* timer_lateness's busy poll length: 1 to 100000 microseconds. */
static bool parse_poll_us(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 100000 || s[0] == '-')
        return false;
    *out = (unsigned)v;
    return true;
}

static bool parse_workers(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > WEFT_RT_MAX_WORKERS ||
        s[0] == '-')
        return false;
    *out = (unsigned)v;
    return true;
}

/* The countdown in `sh` counts MEMORY_TASKS first polls. */
static int run_task_memory(weft_rt *rt, bench_shared *sh)
{
    long before = resident_bytes();
    int rc = 0;
    for (uint64_t i = 0; i < MEMORY_TASKS && rc == 0; i++) {
        pending_task *p = &(pending_task){ .base = WEFT_FUTURE_INIT(&pending_ops, WEFT_F_SEND),
                                           .cd = &sh->cd };
        rc = WEFT_SPAWN(rt, NULL, p);
    }
    uint64_t polled = 0;
    if (rc == 0)
        rc = signal_block_on(rt, &sh->cd.done, &polled);
    long after = resident_bytes();
    if (rc != 0) {
        fprintf(stderr, "weft-bench: task_memory: %s\n", weft_strerror(rc));
        return 1;
    }
    if (before < 0 || after < 0) {
        fprintf(stderr, "weft-bench: task_memory: cannot read /proc/self/statm\n");
        return 1;
    }
    printf("tasks=%" PRIu64 "\n", polled);
    printf("future_bytes=%u\n", MEMORY_FUTURE_SIZE);
    printf("bytes_per_task=%ld\n", (after - before) / (long)MEMORY_TASKS);
    return 0;
}

/* ---- idle_timers ------------------------------------------------------------------------ */

#define IDLE_TICKS 8u /* per ticker: 2 s at 250 ms */

typedef struct ticker {
    weft_future base;
    weft_co co;
    weft_sleep tick;
    unsigned n;
} ticker;

WEFT_ASYNC_FN(ticker, unsigned)
{
    WEFT_FN_BEGIN;
    for (self->n = 0; self->n < IDLE_TICKS; self->n++) {
        weft_sleep_init(&self->tick, WEFT_MS(250));
        WEFT_FN_AWAIT(&self->tick, NULL);
    }
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

/* With WEFT_BENCH_STATS set: each worker's counters on stderr, after the
 * workload (what scheduling did: steals, overflows, parks). */
static void print_worker_stats(weft_rt *rt)
{
    weft_worker_stats st[WEFT_RT_MAX_WORKERS];
    unsigned n = WEFT_RT_MAX_WORKERS;
    if (weft_rt_stats(rt, st, &n) != 0)
        return;
    for (unsigned i = 0; i < n; i++)
        fprintf(stderr,
                "worker %u: polls=%" PRIu64 " steals=%" PRIu64 " steal_ops=%" PRIu64
                " parks=%" PRIu64 " injector_pulls=%" PRIu64 " lifo_hits=%" PRIu64
                " overflows=%" PRIu64 "\n",
                i, st[i].polls, st[i].steals, st[i].steal_ops, st[i].parks,
                st[i].injector_pulls, st[i].lifo_hits, st[i].overflows);
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static uint64_t total_parks(weft_rt *rt)
{
    weft_worker_stats st[WEFT_RT_MAX_WORKERS];
    unsigned n = WEFT_RT_MAX_WORKERS;
    uint64_t parks = 0;
    if (weft_rt_stats(rt, st, &n) == 0)
        for (unsigned i = 0; i < n; i++)
            parks += st[i].parks;
    return parks;
}

/* A task that registers one end of a socketpair and waits for it to be
 * readable: an open socket the reactor watches for the whole run. */
typedef struct idle_socket {
    weft_future base;
    weft_co co;
    int fd;
    weft_io io;
    weft_io_ready ready;
    uint32_t bits;
} idle_socket;

WEFT_ASYNC_FN_WITH_DROP(idle_socket, int)
{
    WEFT_FN_BEGIN;
    if (weft_io_register(&self->io, self->fd) != 0)
        WEFT_FN_RETURN(-1);
    weft_io_ready_init(&self->ready, &self->io, WEFT_IO_READ);
    WEFT_FN_AWAIT(&self->ready, &self->bits);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void idle_socket_drop(weft_future *f)
{
    idle_socket *self = (idle_socket *)f;
    weft_co_drop(&self->co);
    weft_io_deregister(&self->io);
}

#define IDLE_SOCKETS 4

static int run_idle_timers(weft_rt *rt)
{
    weft_join sleeper, tickers[2], sockets[IDLE_SOCKETS];
    int pairs[IDLE_SOCKETS][2];
    int nsock = 0;
    weft_sleep *s = &(weft_sleep){ 0 };
    weft_sleep_init(s, WEFT_SEC(10));
    int rc = WEFT_SPAWN(rt, &sleeper, s);
    /* Open sockets the reactor watches: the idle runtime waits on them
     * and on the timers in one epoll_wait. */
    for (; nsock < IDLE_SOCKETS && rc == 0; nsock++) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[nsock]) != 0) {
            rc = -errno;
            break;
        }
        rc = WEFT_SPAWN(rt, &sockets[nsock],
                        &(idle_socket){ WEFT_FN_INIT(idle_socket, WEFT_F_SEND),
                                        .fd = pairs[nsock][0] });
    }
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = WEFT_SPAWN(rt, &tickers[i], &(ticker){ WEFT_FN_INIT(ticker, WEFT_F_SEND) });
    if (rc != 0) {
        fprintf(stderr, "weft-bench: idle_timers: %s\n", weft_strerror(rc));
        return 1; /* shutdown cancels what was spawned */
    }
    unsigned ticks[2] = { 0, 0 };
    weft_join_all all;
    double w0 = now_ms(), c0 = cpu_ms();
    uint64_t p0 = total_parks(rt);
    rc = weft_join_all_init(&all, tickers, 2, ticks, sizeof ticks[0], 0);
    if (rc == 0 && (rc = weft_block_on(rt, &all.base, NULL, 0)) != 0)
        weft_future_drop(&all.base);
    double w1 = now_ms(), c1 = cpu_ms();
    uint64_t p1 = total_parks(rt);
    weft_join_cancel(&sleeper);
    for (int i = 0; i < nsock; i++) {
        weft_join_cancel(&sockets[i]);
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
    if (rc != 0 || all.status != 0) {
        fprintf(stderr, "weft-bench: idle_timers: %s\n", weft_strerror(rc ? rc : all.status));
        return 1;
    }
    printf("wall_ms=%.1f\n", w1 - w0);
    printf("cpu_ms=%.1f\n", c1 - c0);
    printf("cpu_per_wall=%.4f\n", (c1 - c0) / (w1 - w0));
    printf("parks=%" PRIu64 "\n", p1 - p0);
    printf("ticks=%u\n", ticks[0] + ticks[1]);
    return 0;
}

/* ---- idle_many ------------------------------------------------------------------------- */

/* What a runtime that has (almost) nothing to do costs, with many workers:
 * three phases of about 1 s each, measured one after the other.
 *   idle      nothing spawned (after a settling pause)
 *   tick      one task that sleeps 1 ms, IDLE_MANY_ROUNDS times
 *   pingpong  a pinger that sleeps 1 ms, then wakes a ponger and waits for
 *             its answer, IDLE_MANY_ROUNDS times
 * Each phase prints its CPU seconds per wall second, the workers' parks and
 * the process's wake-ups (voluntary context switches: every sleep that
 * really blocked ends in one), in total and per second. */

#define IDLE_MANY_ROUNDS 1000u
#define IDLE_MANY_SETTLE_MS 200

typedef struct idle_sample {
    double wall_ms, cpu_ms;
    uint64_t parks, wakes;
} idle_sample;

static uint64_t voluntary_switches(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_nvcsw;
}

static void idle_sample_take(weft_rt *rt, idle_sample *s)
{
    s->wall_ms = now_ms();
    s->cpu_ms = cpu_ms();
    s->parks = total_parks(rt);
    s->wakes = voluntary_switches();
}

static void idle_phase_print(const char *phase, const idle_sample *a, const idle_sample *b)
{
    double wall = b->wall_ms - a->wall_ms;
    printf("phase=%s wall_ms=%.1f cpu_per_wall=%.4f parks=%" PRIu64 " wakes=%" PRIu64
           " parks_per_s=%.0f wakes_per_s=%.0f\n",
           phase, wall, (b->cpu_ms - a->cpu_ms) / wall, b->parks - a->parks, b->wakes - a->wakes,
           (double)(b->parks - a->parks) * 1e3 / wall, (double)(b->wakes - a->wakes) * 1e3 / wall);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sleeps 1 ms, IDLE_MANY_ROUNDS times; outputs the rounds done. */
typedef struct ms_ticker {
    weft_future base;
    weft_co co;
    weft_sleep tick;
    unsigned n;
} ms_ticker;

WEFT_ASYNC_FN(ms_ticker, unsigned)
{
    WEFT_FN_BEGIN;
    for (self->n = 0; self->n < IDLE_MANY_ROUNDS; self->n++) {
        weft_sleep_init(&self->tick, WEFT_MS(1));
        WEFT_FN_AWAIT(&self->tick, NULL);
    }
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

/* A one-message mailbox: `full` is the message, the waker the receiver. */
typedef struct flag_box {
    atomic_bool full;
    weft_atomic_waker waker;
} flag_box;

static void flag_send(flag_box *b)
{
    /* Release: the sender's writes before the message (pairs with the
     * acquire exchange in flag_recv). */
    atomic_store_explicit(&b->full, true, memory_order_release);
    weft_atomic_waker_wake(&b->waker);
}

/* Poll function: take the message, or register and wait for it. */
static weft_poll flag_recv(void *ctx, weft_cx *cx, void *out)
{
    flag_box *b = ctx;
    (void)out;
    /* Acquire: pairs with the release store in flag_send. */
    if (atomic_exchange_explicit(&b->full, false, memory_order_acquire))
        return WEFT_READY;
    weft_atomic_waker_register(&b->waker, cx->waker);
    /* A send that came before the registration woke nobody: look again. */
    if (atomic_exchange_explicit(&b->full, false, memory_order_acquire))
        return WEFT_READY;
    return WEFT_PENDING;
}

typedef struct ping_pair {
    flag_box ping, pong;
} ping_pair;

/* Sleeps 1 ms, sends a ping, waits for the pong; IDLE_MANY_ROUNDS times.
 * Outputs the rounds done (fewer if a wait could not be set up). */
typedef struct pinger {
    weft_future base;
    weft_co co;
    ping_pair *pp;
    weft_sleep tick;
    weft_poll_fn wait;
    unsigned n;
} pinger;

WEFT_ASYNC_FN(pinger, unsigned)
{
    WEFT_FN_BEGIN;
    for (self->n = 0; self->n < IDLE_MANY_ROUNDS; self->n++) {
        weft_sleep_init(&self->tick, WEFT_MS(1));
        WEFT_FN_AWAIT(&self->tick, NULL);
        flag_send(&self->pp->ping);
        if (weft_poll_fn_init(&self->wait, flag_recv, &self->pp->pong, 0, WEFT_F_SEND) != 0)
            break;
        WEFT_FN_AWAIT(&self->wait, NULL);
    }
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

/* Answers `rounds` pings; outputs the rounds done. */
typedef struct ponger {
    weft_future base;
    weft_co co;
    ping_pair *pp;
    unsigned rounds;
    weft_poll_fn wait;
    unsigned n;
} ponger;

WEFT_ASYNC_FN(ponger, unsigned)
{
    WEFT_FN_BEGIN;
    for (self->n = 0; self->n < self->rounds; self->n++) {
        if (weft_poll_fn_init(&self->wait, flag_recv, &self->pp->ping, 0, WEFT_F_SEND) != 0)
            break;
        WEFT_FN_AWAIT(&self->wait, NULL);
        flag_send(&self->pp->pong);
    }
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

/* Join `j` from the main thread; its output is a round count. */
static int join_rounds(weft_rt *rt, weft_join *j, unsigned *rounds)
{
    int rc = weft_block_on(rt, &j->base, rounds, sizeof *rounds);
    if (rc != 0) {
        weft_future_drop(&j->base);
        return rc;
    }
    if (j->status != 0)
        return j->status;
    return *rounds == IDLE_MANY_ROUNDS ? 0 : -EIO;
}

/* Its wakers are released in main, after shutdown (the tasks may hold
 * them until then). */
static ping_pair g_pp;

static int run_idle_many(weft_rt *rt)
{
    ping_pair *pp = &g_pp;
    idle_sample a, b;
    unsigned rounds = 0;
    int rc;

    /* Let every worker start, find nothing and park before measuring. */
    sleep_ms(IDLE_MANY_SETTLE_MS);
    idle_sample_take(rt, &a);
    sleep_ms(1000);
    idle_sample_take(rt, &b);
    idle_phase_print("idle", &a, &b);

    weft_join j;
    idle_sample_take(rt, &a);
    rc = WEFT_SPAWN(rt, &j, &(ms_ticker){ WEFT_FN_INIT(ms_ticker, WEFT_F_SEND) });
    if (rc == 0)
        rc = join_rounds(rt, &j, &rounds);
    idle_sample_take(rt, &b);
    if (rc != 0) {
        fprintf(stderr, "weft-bench: idle_many: tick: %s\n", weft_strerror(rc));
        return 1;
    }
    idle_phase_print("tick", &a, &b);

    weft_join pj[2];
    idle_sample_take(rt, &a);
    rc = WEFT_SPAWN(rt, &pj[0], &(ponger){ WEFT_FN_INIT(ponger, WEFT_F_SEND), .pp = pp,
                                                .rounds = IDLE_MANY_ROUNDS });
    if (rc == 0) {
        rc = WEFT_SPAWN(rt, &pj[1], &(pinger){ WEFT_FN_INIT(pinger, WEFT_F_SEND), .pp = pp });
        if (rc != 0)
            weft_join_cancel(&pj[0]);
    }
    if (rc == 0) {
        rc = join_rounds(rt, &pj[1], &rounds);
        int rc2 = join_rounds(rt, &pj[0], &rounds);
        rc = rc ? rc : rc2;
    }
    idle_sample_take(rt, &b);
    if (rc != 0) {
        fprintf(stderr, "weft-bench: idle_many: pingpong: %s\n", weft_strerror(rc));
        return 1;
    }
    idle_phase_print("pingpong", &a, &b);
    return 0;
}

/* ---- lifo_latency ----------------------------------------------------------------------- */

/* How long a task spawned by a long-polling parent waits to start, with 2
 * workers: the parent works LIFO_LEAD_MS (so the other worker has gone to
 * sleep), spawns one child — into its worker's LIFO slot — and keeps
 * polling for LIFO_PARENT_POLL_MS. Prints the child's start latency
 * (min / median / max over LIFO_ROUNDS rounds) and in how many rounds the
 * child ran on the other worker while the parent was still polling; then
 * what a fast ping-pong pair costs beside an idle worker (below). */

#define LIFO_ROUNDS 20u
#define LIFO_LEAD_MS 2.0
#define LIFO_PARENT_POLL_MS 20.0
#define LIFO_GAP_MS 5 /* between rounds: both workers go back to sleep */

typedef struct lifo_round {
    double spawn_ms;          /* written by the parent before the spawn */
    atomic_int_least64_t start_us_x; /* the child's start, µs after spawn_ms + 1 (0: not yet) */
    int parent_worker, child_worker;
    bool ran_during_parent;   /* the child had started when the parent returned */
    weft_join child;
} lifo_round;

static void busy_until(double t_ms)
{
    while (now_ms() < t_ms) {
    }
}

/* The child: notes when and where it ran. A leaf touching shared state. */
typedef struct lifo_child {
    weft_future base;
    lifo_round *r;
} lifo_child;

static weft_poll lifo_child_poll(weft_future *f, weft_cx *cx, void *out)
{
    lifo_round *r = ((lifo_child *)f)->r;
    (void)cx, (void)out;
    r->child_worker = weft_worker_index();
    /* Release: child_worker before the start mark (pairs with the
     * parent's acquire load). */
    atomic_store_explicit(&r->start_us_x, (int_least64_t)((now_ms() - r->spawn_ms) * 1e3) + 1,
                          memory_order_release);
    return WEFT_READY;
}

static const weft_future_ops lifo_child_ops = { .name = "bench_lifo_child",
                                                .poll = lifo_child_poll };

/* The parent, run by weft_spawn_fn; its argument is the round's address. */
static void lifo_parent(void *arg, void *out)
{
    lifo_round *r = *(lifo_round **)arg;
    (void)out;
    busy_until(now_ms() + LIFO_LEAD_MS);
    r->parent_worker = weft_worker_index();
    r->spawn_ms = now_ms();
    int rc = WEFT_SPAWN(NULL, &r->child,
                        &(lifo_child){ .base = WEFT_FUTURE_INIT(&lifo_child_ops, WEFT_F_SEND),
                                       .r = r });
    if (rc != 0) {
        r->ran_during_parent = false;
        return;
    }
    busy_until(r->spawn_ms + LIFO_PARENT_POLL_MS);
    /* Acquire: pairs with the child's release store. */
    r->ran_during_parent = atomic_load_explicit(&r->start_us_x, memory_order_acquire) != 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The other side of the trade: a pair of tasks passing a message back and
 * forth LIFO_PINGS times at full speed, which runs on one worker (each
 * wakes the other into its LIFO slot) while the other worker idles. A
 * scheduler that wakes an idle worker for every LIFO occupant pays for it
 * here. */
#define LIFO_PINGS 1000000u

typedef struct fast_pinger {
    weft_future base;
    weft_co co;
    ping_pair *pp;
    weft_poll_fn wait;
    unsigned n;
} fast_pinger;

WEFT_ASYNC_FN(fast_pinger, unsigned)
{
    WEFT_FN_BEGIN;
    for (self->n = 0; self->n < LIFO_PINGS; self->n++) {
        flag_send(&self->pp->ping);
        if (weft_poll_fn_init(&self->wait, flag_recv, &self->pp->pong, 0, WEFT_F_SEND) != 0)
            break;
        WEFT_FN_AWAIT(&self->wait, NULL);
    }
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

static int run_fast_pingpong(weft_rt *rt)
{
    idle_sample a, b;
    unsigned n[2] = { 0, 0 };
    weft_join pj[2];
    sleep_ms(LIFO_GAP_MS);
    idle_sample_take(rt, &a);
    int rc = WEFT_SPAWN(rt, &pj[0], &(ponger){ WEFT_FN_INIT(ponger, WEFT_F_SEND), .pp = &g_pp,
                                                .rounds = LIFO_PINGS });
    if (rc == 0) {
        rc = WEFT_SPAWN(rt, &pj[1], &(fast_pinger){ WEFT_FN_INIT(fast_pinger, WEFT_F_SEND),
                                                     .pp = &g_pp });
        if (rc != 0)
            weft_join_cancel(&pj[0]);
    }
    for (int i = 1; i >= 0 && rc == 0; i--) {
        if ((rc = weft_block_on(rt, &pj[i].base, &n[i], sizeof n[i])) != 0)
            weft_future_drop(&pj[i].base);
        else if (pj[i].status != 0 || n[i] != LIFO_PINGS)
            rc = pj[i].status ? pj[i].status : -EIO;
    }
    idle_sample_take(rt, &b);
    if (rc != 0) {
        fprintf(stderr, "weft-bench: lifo_latency: pingpong: %s\n", weft_strerror(rc));
        return 1;
    }
    printf("pingpong_round_trips=%u\n", LIFO_PINGS);
    printf("pingpong_ns_per_round_trip=%.0f\n", (b.wall_ms - a.wall_ms) * 1e6 / LIFO_PINGS);
    printf("pingpong_cpu_per_wall=%.3f\n", (b.cpu_ms - a.cpu_ms) / (b.wall_ms - a.wall_ms));
    printf("pingpong_parks=%" PRIu64 "\n", b.parks - a.parks);
    printf("pingpong_wakes=%" PRIu64 "\n", b.wakes - a.wakes);
    return 0;
}

static int run_lifo_latency(weft_rt *rt)
{
    static lifo_round rounds[LIFO_ROUNDS];
    int64_t lat[LIFO_ROUNDS];
    unsigned other = 0, during = 0;
    for (unsigned i = 0; i < LIFO_ROUNDS; i++) {
        lifo_round *r = &rounds[i];
        atomic_init(&r->start_us_x, 0);
        sleep_ms(LIFO_GAP_MS);
        weft_join pj;
        int rc = weft_spawn_fn(rt, lifo_parent, &r, 0, &pj);
        if (rc == 0 && (rc = weft_block_on(rt, &pj.base, NULL, 0)) != 0)
            weft_future_drop(&pj.base);
        if (rc == 0 && (rc = weft_block_on(rt, &r->child.base, NULL, 0)) != 0)
            weft_future_drop(&r->child.base);
        if (rc == 0 && (pj.status != 0 || r->child.status != 0))
            rc = pj.status ? pj.status : r->child.status;
        if (rc != 0) {
            fprintf(stderr, "weft-bench: lifo_latency: %s\n", weft_strerror(rc));
            return 1;
        }
        lat[i] = atomic_load_explicit(&r->start_us_x, memory_order_acquire) - 1;
        other += r->child_worker != r->parent_worker;
        during += r->ran_during_parent;
    }
    qsort(lat, LIFO_ROUNDS, sizeof lat[0], cmp_i64);
    printf("rounds=%u parent_poll_ms=%.0f\n", LIFO_ROUNDS, LIFO_PARENT_POLL_MS);
    printf("child_start_us_min=%" PRId64 "\n", lat[0]);
    printf("child_start_us_median=%" PRId64 "\n", lat[LIFO_ROUNDS / 2]);
    printf("child_start_us_max=%" PRId64 "\n", lat[LIFO_ROUNDS - 1]);
    printf("child_on_other_worker=%u\n", other);
    printf("child_ran_during_parent=%u\n", during);
    return run_fast_pingpong(rt);
}

/* ---- timer_lateness --------------------------------------------------------------------- */

/* Busy tasks (LATE_BUSY_PER_WORKER per worker) run polls of --poll-us
 * microseconds of spinning and yield, so no worker is ever idle; meanwhile
 * LATE_SLEEPERS tasks each sleep 10 ms LATE_SLEEPS times and record how
 * late each sleep resumed (resume instant minus deadline). The sleepers
 * start 1 ms apart so their deadlines do not share a wheel tick. The main
 * thread waits on a condition variable, not in weft_block_on: a thread in
 * weft_block_on fires due timers itself and would hide the workers'
 * lateness. */
#define LATE_BUSY_PER_WORKER 2u
#define LATE_SLEEPERS 10u
#define LATE_SLEEPS 100u
#define LATE_SLEEP WEFT_MS(10)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned sleepers_done; /* under lock */
    atomic_bool stop;       /* the busy tasks finish (release/acquire) */
    /* Slot i * LATE_SLEEPS + k: sleeper i's k-th lateness in ns, written
     * by that sleeper only, read by the main thread after sleepers_done. */
    uint64_t late_ns[LATE_SLEEPERS * LATE_SLEEPS];
} g_late = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, { 0 } };

/* A busy task: each poll spins for `poll_ns`, then yields, until told to
 * stop; its output is how many polls it ran. */
typedef struct busy_task {
    weft_future base;
    weft_duration poll_ns;
    uint64_t polls;
} busy_task;

static weft_poll busy_poll(weft_future *f, weft_cx *cx, void *out)
{
    busy_task *b = (busy_task *)f;
    weft_instant end = weft_now() + b->poll_ns;
    while (weft_now() < end)
        ;
    b->polls++;
    if (atomic_load_explicit(&g_late.stop, memory_order_acquire)) {
        memcpy(out, &b->polls, sizeof b->polls);
        return WEFT_READY;
    }
    weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops busy_ops = {
    .name = "bench_busy", .out_size = sizeof(uint64_t), .poll = busy_poll,
};

typedef struct late_sleeper {
    weft_future base;
    weft_co co;
    weft_sleep sleep;
    unsigned index, k;
    weft_instant deadline;
} late_sleeper;

WEFT_ASYNC_FN_VOID(late_sleeper)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->sleep, WEFT_MS(self->index)); /* the stagger */
    WEFT_FN_AWAIT(&self->sleep, NULL);
    for (self->k = 0; self->k < LATE_SLEEPS; self->k++) {
        weft_sleep_init(&self->sleep, LATE_SLEEP);
        self->deadline = self->sleep.deadline;
        WEFT_FN_AWAIT(&self->sleep, NULL);
        g_late.late_ns[self->index * LATE_SLEEPS + self->k] = weft_now() - self->deadline;
    }
    pthread_mutex_lock(&g_late.lock);
    if (++g_late.sleepers_done == LATE_SLEEPERS)
        pthread_cond_signal(&g_late.cond);
    pthread_mutex_unlock(&g_late.lock);
    WEFT_FN_END;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run_timer_lateness(weft_rt *rt, unsigned poll_us)
{
    weft_worker_stats st[WEFT_RT_MAX_WORKERS];
    unsigned nworkers = WEFT_RT_MAX_WORKERS;
    if (weft_rt_stats(rt, st, &nworkers) != 0)
        return 1;
    unsigned nbusy = LATE_BUSY_PER_WORKER * nworkers;
    weft_join busy[LATE_BUSY_PER_WORKER * WEFT_RT_MAX_WORKERS];
    unsigned spawned = 0;
    int rc = 0;
    double t0 = now_ms();
    for (; spawned < nbusy && rc == 0; spawned++) {
        busy_task *b = &(busy_task){ .base = WEFT_FUTURE_INIT(&busy_ops, WEFT_F_SEND),
                                     .poll_ns = WEFT_US(poll_us) };
        if ((rc = WEFT_SPAWN(rt, &busy[spawned], b)) != 0)
            break;
    }
    for (unsigned i = 0; i < LATE_SLEEPERS && rc == 0; i++)
        rc = WEFT_SPAWN(rt, NULL, &(late_sleeper){ WEFT_FN_INIT(late_sleeper, WEFT_F_SEND),
                                                   .index = i });
    if (rc == 0) {
        pthread_mutex_lock(&g_late.lock);
        while (g_late.sleepers_done < LATE_SLEEPERS)
            pthread_cond_wait(&g_late.cond, &g_late.lock);
        pthread_mutex_unlock(&g_late.lock);
    }
    double t1 = now_ms();
    atomic_store_explicit(&g_late.stop, true, memory_order_release);
    uint64_t busy_polls = 0;
    for (unsigned i = 0; i < spawned; i++) {
        uint64_t polls = 0;
        if (weft_block_on(rt, &busy[i].base, &polls, sizeof polls) != 0)
            weft_join_cancel(&busy[i]);
        busy_polls += polls;
    }
    if (rc != 0) {
        fprintf(stderr, "weft-bench: timer_lateness: %s\n", weft_strerror(rc));
        return 1; /* shutdown cancels the sleepers */
    }
    size_t n = LATE_SLEEPERS * LATE_SLEEPS;
    qsort(g_late.late_ns, n, sizeof g_late.late_ns[0], cmp_u64);
    printf("elapsed_ms=%.1f\n", t1 - t0);
    printf("poll_us=%u\n", poll_us);
    printf("busy_tasks=%u\n", nbusy);
    printf("busy_polls=%" PRIu64 "\n", busy_polls);
    printf("count=%zu\n", n);
    printf("p50_us=%.0f\n", (double)g_late.late_ns[n / 2] / 1e3);
    printf("p99_us=%.0f\n", (double)g_late.late_ns[n * 99 / 100] / 1e3);
    printf("max_us=%.0f\n", (double)g_late.late_ns[n - 1] / 1e3);
    return 0;
}

/* ---- timer_churn ------------------------------------------------------------------------ */

/* CHURN_TASKS tasks each run CHURN_CYCLES cycles of: init a sleep of
 * 0.1-10 s, poll it (it arms its timer), poll it again with the same
 * waker, drop it (the timer is cancelled). That is what a request with a
 * timeout that does not expire costs. A task yields every CHURN_BATCH
 * cycles (each arm takes one unit of the poll's coop budget), so the tasks
 * spread over the workers. Prints cycles per second. (A worker descheduled
 * for a whole sleep finds it READY at its first poll; the cycle counts.) */
#define CHURN_TASKS 8u
#define CHURN_CYCLES 250000u
#define CHURN_BATCH 64u

typedef struct churn_task {
    weft_future base;
    countdown *cd;
    uint64_t rng;
    uint32_t done;
} churn_task;

static weft_poll churn_poll(weft_future *f, weft_cx *cx, void *out)
{
    churn_task *c = (churn_task *)f;
    (void)out;
    for (unsigned i = 0; i < CHURN_BATCH && c->done < CHURN_CYCLES; i++, c->done++) {
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        weft_sleep s;
        weft_sleep_init(&s, WEFT_MS(100 + c->rng % 9901));
        if (weft_future_poll(&s.base, cx, NULL) == WEFT_PENDING)
            (void)weft_future_poll(&s.base, cx, NULL);
        weft_future_drop(&s.base);
    }
    if (c->done == CHURN_CYCLES) {
        countdown_hit(c->cd);
        return WEFT_READY;
    }
    weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops churn_ops = { .name = "bench_churn", .poll = churn_poll };

static int run_timer_churn(weft_rt *rt, bench_shared *sh)
{
    countdown_init(&sh->cd, CHURN_TASKS);
    int rc = 0;
    double t0 = now_ms();
    for (unsigned i = 0; i < CHURN_TASKS && rc == 0; i++) {
        churn_task *c = &(churn_task){ .base = WEFT_FUTURE_INIT(&churn_ops, WEFT_F_SEND),
                                       .cd = &sh->cd, .rng = 0x2545F4914F6CDD1Dull + i };
        rc = WEFT_SPAWN(rt, NULL, c);
    }
    uint64_t tasks = 0;
    if (rc == 0)
        rc = signal_block_on(rt, &sh->cd.done, &tasks);
    double t1 = now_ms();
    if (rc != 0) {
        fprintf(stderr, "weft-bench: timer_churn: %s\n", weft_strerror(rc));
        return 1;
    }
    uint64_t cycles = tasks * CHURN_CYCLES;
    printf("elapsed_ms=%.1f\n", t1 - t0);
    printf("check=%" PRIu64 "\n", cycles);
    printf("cycles_per_sec=%.0f\n", (double)cycles / ((t1 - t0) / 1e3));
    return 0;
}

int main(int argc, char **argv)
{
    const char *name = NULL;
    unsigned workers = 0; /* weft's default: online CPUs */
    unsigned poll_us = 60; /* timer_lateness */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--poll-us") == 0) {
            if (++i >= argc || !parse_poll_us(argv[i], &poll_us))
                return usage();
        } else if (strcmp(argv[i], "--workers") == 0) {
            if (++i >= argc || !parse_workers(argv[i], &workers))
                return usage();
        } else if (strncmp(argv[i], "--workers=", 10) == 0) {
            if (!parse_workers(argv[i] + 10, &workers))
                return usage();
        } else if (argv[i][0] == '-' || name) {
            return usage();
        } else {
            name = argv[i];
        }
    }
    if (!name)
        return usage();

    const struct workload *w = NULL;
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        if (strcmp(workloads[i].name, name) == 0)
            w = &workloads[i];
    bool memory = strcmp(name, "task_memory") == 0;
    bool idle = strcmp(name, "idle_timers") == 0;
    bool idle_many = strcmp(name, "idle_many") == 0;
    bool lifo = strcmp(name, "lifo_latency") == 0;
    bool lateness = strcmp(name, "timer_lateness") == 0;
    bool churn = strcmp(name, "timer_churn") == 0;
    bool uncontended = strcmp(name, "mutex_uncontended") == 0;
    if (!w && !memory && !idle && !idle_many && !lifo && !lateness && !churn && !uncontended) {
        fprintf(stderr, "unsupported workload: %s\n", name);
        return 2;
    }

    weft_rt_options opts = WEFT_RT_OPTIONS_INIT;
    opts.workers = workers;
    weft_rt *rt;
    int rc = weft_rt_new(&rt, &opts);
    if (rc != 0) {
        fprintf(stderr, "weft-bench: weft_rt_new: %s\n", weft_strerror(rc));
        return 1;
    }

    static bench_shared sh;
    weft_atomic_waker_init(&g_pp.ping.waker);
    weft_atomic_waker_init(&g_pp.pong.waker);
    countdown_init(&sh.cd, memory ? MEMORY_TASKS : SPAWN_COUNT);
    signal_init(&sh.sig);

    int status = 0;
    if (memory) {
        status = run_task_memory(rt, &sh);
    } else if (idle) {
        status = run_idle_timers(rt);
    } else if (idle_many) {
        status = run_idle_many(rt);
    } else if (lifo) {
        status = run_lifo_latency(rt);
    } else if (lateness) {
        status = run_timer_lateness(rt, poll_us);
    } else if (churn) {
        status = run_timer_churn(rt, &sh);
    } else if (uncontended) {
        status = run_mutex_uncontended(rt);
    } else {
        uint64_t check = 0;
        double t0 = now_ms();
        rc = w->run(rt, &sh, &check);
        double t1 = now_ms();
        if (rc != 0) {
            fprintf(stderr, "weft-bench: %s failed: %s\n", name, weft_strerror(rc));
            status = 1;
        } else {
            printf("elapsed_ms=%.3f\n", t1 - t0);
            if (w->run == run_select_two || w->run == run_select_two_merge)
                print_select_check(check); /* W9: count and sum */
            else
                printf("check=%" PRIu64 "\n", check);
        }
    }
    if (getenv("WEFT_BENCH_STATS"))
        print_worker_stats(rt);

    weft_rt_shutdown(rt);
    /* The workers are joined: no task can touch the shared state now. */
    signal_fini(&sh.cd.done);
    signal_fini(&sh.sig);
    if (uncontended || strcmp(name, "mutex_contended") == 0) {
        signal_fini(&g_mx.done);
        weft_mutex_fini(&g_mx.m);
    }
    if (w && (w->run == run_tcp_echo || w->run == run_tcp_stream))
        signal_fini(&g_tcp.cd.done);
    weft_atomic_waker_fini(&g_pp.ping.waker);
    weft_atomic_waker_fini(&g_pp.pong.waker);
    if (memory && status == 0) {
        uint64_t dropped = atomic_load_explicit(&pending_dropped, memory_order_relaxed);
        printf("cancelled=%" PRIu64 "\n", dropped);
        if (dropped != MEMORY_TASKS) {
            fprintf(stderr, "weft-bench: task_memory: shutdown dropped %" PRIu64
                            " of %u pending futures\n", dropped, MEMORY_TASKS);
            status = 1;
        }
    }
    fflush(stdout);
    return status;
}
