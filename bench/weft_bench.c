/* weft-bench: weft's implementation of the benchmark workloads.
 *
 * Usage: weft-bench <workload> [--workers N]      (N defaults to online CPUs)
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
 *
 * The workloads are written the way a weft user would write them: leaf
 * tasks that never wait are plain poll functions, tasks that wait are
 * coroutines (weft/co.h), and the main thread waits through weft_block_on.
 */
#define _POSIX_C_SOURCE 200809L

#include <weft/weft.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The future that waits for a signal. Output: the published value (the
 * error, if any, is read from the signal afterwards). Send. Cancel safety:
 * nothing to lose; the registered waker stays in the signal until
 * signal_fini. */
typedef struct signal_wait {
    weft_future base;
    bench_signal *sig;
} signal_wait;

static weft_poll signal_wait_poll(weft_future *f, weft_cx *cx, void *out)
{
    signal_wait *w = (signal_wait *)f;
    if (!signal_is_set(w->sig)) {
        weft_atomic_waker_register(&w->sig->waker, cx->waker);
        /* A set that completed before the registration found no waker to
         * wake: look again now that ours is in place. */
        if (!signal_is_set(w->sig))
            return WEFT_PENDING;
    }
    *(uint64_t *)out = w->sig->value;
    return WEFT_READY;
}

static const weft_future_ops signal_wait_ops = {
    "bench_signal_wait", sizeof(uint64_t), signal_wait_poll, NULL, NULL,
};

static void signal_wait_init(signal_wait *w, bench_signal *sig)
{
    weft_future_init(&w->base, &signal_wait_ops, WEFT_F_SEND);
    w->sig = sig;
}

/* Block the calling (main) thread until `sig` is set. Returns 0 and the
 * value, or a negative error (the published one or block_on's). */
static int signal_block_on(weft_rt *rt, bench_signal *sig, uint64_t *value)
{
    signal_wait w;
    signal_wait_init(&w, sig);
    int rc = weft_block_on(rt, &w.base, value, sizeof *value);
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

/* The W1/W2 task: count down once and finish. A leaf that never waits, so
 * a plain poll function is the natural register. Send. */
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

static const weft_future_ops hit_ops = { "bench_hit", 0, hit_poll, NULL, NULL };

/* Spawn `n` detached hit tasks on `rt` (NULL: the current runtime).
 * Returns 0 or the first spawn error. */
static int spawn_hits(weft_rt *rt, countdown *cd, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        hit_task h;
        weft_future_init(&h.base, &hit_ops, WEFT_F_SEND);
        h.cd = cd;
        int rc = weft_spawn(rt, &h.base, sizeof h, NULL);
        if (rc != 0) {
            weft_future_drop(&h.base); /* still ours after a failed spawn */
            return rc;
        }
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

/* The root task of W1: spawns every hit task from a worker, then ends. */
typedef struct spawner_task {
    weft_future base;
    countdown *cd;
} spawner_task;

static weft_poll spawner_poll(weft_future *f, weft_cx *cx, void *out)
{
    spawner_task *s = (spawner_task *)f;
    (void)cx, (void)out;
    int rc = spawn_hits(NULL, s->cd, SPAWN_COUNT);
    if (rc != 0)
        signal_set(&s->cd->done, 0, rc); /* or the main thread waits forever */
    return WEFT_READY;
}

static const weft_future_ops spawner_ops = { "bench_spawner", 0, spawner_poll, NULL, NULL };

static int run_spawn_many(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    spawner_task s;
    weft_future_init(&s.base, &spawner_ops, WEFT_F_SEND);
    s.cd = &sh->cd;
    int rc = weft_spawn(rt, &s.base, sizeof s, NULL);
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

/* Yields YIELDS_PER_TASK times; outputs how many yields it completed. */
typedef struct yielder_task {
    weft_future base;
    weft_co co;
    weft_yield y;
    uint64_t yielded;
} yielder_task;

static weft_poll yielder_poll(weft_future *f, weft_cx *cx, void *out)
{
    yielder_task *s = (yielder_task *)f;
    WEFT_CO_BEGIN(&s->co);
    for (s->yielded = 0; s->yielded < YIELDS_PER_TASK;) {
        weft_yield_init(&s->y);
        WEFT_AWAIT(&s->co, cx, &s->y.base, NULL);
        s->yielded++;
    }
    *(uint64_t *)out = s->yielded;
    WEFT_CO_RETURN(&s->co);
    WEFT_CO_END(&s->co);
}

static void yielder_drop(weft_future *f)
{
    weft_co_drop(&((yielder_task *)f)->co);
}

static const weft_future_ops yielder_ops = {
    "bench_yielder", sizeof(uint64_t), yielder_poll, yielder_drop, NULL,
};

/* Cancel a child whose result is no longer wanted: abort it so it stops at
 * its next scheduling point, and release the handle (exactly once). */
static void join_cancel(weft_join *j)
{
    weft_join_abort(j);
    weft_future_drop(&j->base);
}

typedef struct bench_out {
    uint64_t value;
    int err;
} bench_out;

/* W3's root: spawn the yielders, then join them in order and add up their
 * outputs. It is run by weft_block_on, which polls it in place, so the
 * handles can live in the struct itself. */
typedef struct yield_all {
    weft_future base;
    weft_co co;
    unsigned spawned;  /* joins[0, spawned) were initialised */
    unsigned next;     /* joins[next, spawned) are live and not yet awaited */
    uint64_t got;
    bench_out res;
    weft_join joins[YIELD_TASKS];
} yield_all;

static weft_poll yield_all_poll(weft_future *f, weft_cx *cx, void *out)
{
    yield_all *s = (yield_all *)f;
    WEFT_CO_BEGIN(&s->co);
    for (s->spawned = 0; s->spawned < YIELD_TASKS; s->spawned++) {
        yielder_task y;
        weft_future_init(&y.base, &yielder_ops, WEFT_F_SEND);
        weft_co_init(&y.co);
        int rc = weft_spawn(NULL, &y.base, sizeof y, &s->joins[s->spawned]);
        if (rc != 0) {
            weft_future_drop(&y.base); /* still ours after a failed spawn */
            s->res.err = rc;
            break;
        }
    }
    if (s->res.err != 0) {
        for (; s->next < s->spawned; s->next++)
            join_cancel(&s->joins[s->next]);
    }
    while (s->next < s->spawned) {
        s->next++; /* from here the coroutine owns the awaited handle */
        WEFT_AWAIT(&s->co, cx, &s->joins[s->next - 1].base, &s->got);
        if (s->joins[s->next - 1].status != 0 && s->res.err == 0)
            s->res.err = s->joins[s->next - 1].status;
        s->res.value += s->got;
    }
    *(bench_out *)out = s->res;
    WEFT_CO_RETURN(&s->co);
    WEFT_CO_END(&s->co);
}

static void yield_all_drop(weft_future *f)
{
    yield_all *s = (yield_all *)f;
    weft_co_drop(&s->co); /* the handle being awaited, if any */
    for (; s->next < s->spawned; s->next++)
        join_cancel(&s->joins[s->next]);
}

static const weft_future_ops yield_all_ops = {
    "bench_yield_all", sizeof(bench_out), yield_all_poll, yield_all_drop, NULL,
};

static int run_yield_many(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    /* 32 KB of handles: static rather than on the main thread's stack. */
    static yield_all root;
    memset(&root, 0, sizeof root);
    weft_future_init(&root.base, &yield_all_ops, 0); /* polled in place only */
    weft_co_init(&root.co);
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
 * publishes its index, which is therefore the number of links that ran. */
typedef struct chain_link {
    weft_future base;
    bench_signal *done;
    uint64_t index;
} chain_link;

static const weft_future_ops chain_link_ops;

static void chain_link_init(chain_link *l, bench_signal *done, uint64_t index)
{
    weft_future_init(&l->base, &chain_link_ops, WEFT_F_SEND);
    l->done = done;
    l->index = index;
}

static weft_poll chain_link_poll(weft_future *f, weft_cx *cx, void *out)
{
    chain_link *l = (chain_link *)f;
    (void)cx, (void)out;
    if (l->index == CHAIN_LEN) {
        signal_set(l->done, l->index, 0);
        return WEFT_READY;
    }
    chain_link next;
    chain_link_init(&next, l->done, l->index + 1);
    int rc = weft_spawn(NULL, &next.base, sizeof next, NULL);
    if (rc != 0)
        signal_set(l->done, l->index, rc);
    return WEFT_READY;
}

static const weft_future_ops chain_link_ops = {
    "bench_chain_link", 0, chain_link_poll, NULL, NULL,
};

static int run_chained_spawn(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    chain_link first;
    chain_link_init(&first, &sh->sig, 1);
    int rc = weft_spawn(rt, &first.base, sizeof first, NULL);
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

static const weft_future_ops fib_ops;

static void fib_init(fib_task *t, int32_t n)
{
    weft_future_init(&t->base, &fib_ops, WEFT_F_SEND);
    weft_co_init(&t->co);
    t->n = n;
    t->sum = 0;
}

/* Spawn fib(n) as a child task joined through `j`. Returns 0 or the spawn
 * error (then `j` is not initialised). */
static int fib_spawn(int32_t n, weft_join *j)
{
    fib_task child;
    fib_init(&child, n);
    int rc = weft_spawn(NULL, &child.base, sizeof child, j);
    if (rc != 0)
        weft_future_drop(&child.base);
    return rc;
}

/* A joined child's result: its output, or its status if it was cancelled. */
static int64_t fib_child_result(const weft_join *j, int64_t got)
{
    return j->status != 0 ? j->status : got;
}

static weft_poll fib_poll(weft_future *f, weft_cx *cx, void *out)
{
    fib_task *s = (fib_task *)f;
    int rc;
    WEFT_CO_BEGIN(&s->co);
    if (s->n < 2) {
        *(int64_t *)out = s->n;
        WEFT_CO_RETURN(&s->co);
    }
    rc = fib_spawn(s->n - 1, &s->left);
    if (rc != 0) {
        *(int64_t *)out = rc;
        WEFT_CO_RETURN(&s->co);
    }
    rc = fib_spawn(s->n - 2, &s->right);
    if (rc != 0) {
        join_cancel(&s->left);
        *(int64_t *)out = rc;
        WEFT_CO_RETURN(&s->co);
    }
    WEFT_AWAIT(&s->co, cx, &s->left.base, &s->got);
    s->sum = fib_child_result(&s->left, s->got);
    if (s->sum < 0) {
        join_cancel(&s->right);
        *(int64_t *)out = s->sum;
        WEFT_CO_RETURN(&s->co);
    }
    WEFT_AWAIT(&s->co, cx, &s->right.base, &s->got);
    s->got = fib_child_result(&s->right, s->got);
    *(int64_t *)out = s->got < 0 ? s->got : s->sum + s->got;
    WEFT_CO_RETURN(&s->co);
    WEFT_CO_END(&s->co);
}

static void fib_drop(weft_future *f)
{
    fib_task *s = (fib_task *)f;
    /* Both children exist exactly while the left one is awaited; the
     * coroutine drops the awaited handle, the right one is ours. */
    bool right_live = s->co.awaiting == &s->left.base;
    if (s->co.awaiting)
        weft_join_abort((weft_join *)s->co.awaiting);
    weft_co_drop(&s->co);
    if (right_live)
        join_cancel(&s->right);
}

static const weft_future_ops fib_ops = {
    "bench_fib", sizeof(int64_t), fib_poll, fib_drop, NULL,
};

static int run_fib_fork_join(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    (void)sh;
    fib_task root;
    fib_init(&root, FIB_N);
    weft_join join;
    int rc = weft_spawn(rt, &root.base, sizeof root, &join);
    if (rc != 0) {
        weft_future_drop(&root.base);
        return rc;
    }
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
 * and parked in the pending state. Exactly MEMORY_FUTURE_SIZE bytes. */
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
    "bench_pending", 0, pending_poll, pending_drop, NULL,
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

static weft_poll sleeper_poll(weft_future *f, weft_cx *cx, void *out)
{
    sleeper_task *t = (sleeper_task *)f;
    (void)out;
    WEFT_CO_BEGIN(&t->co);
    weft_sleep_init(&t->sleep, WEFT_MS(t->ms));
    WEFT_AWAIT(&t->co, cx, &t->sleep.base, NULL);
    countdown_hit(t->cd);
    WEFT_CO_RETURN(&t->co);
    WEFT_CO_END(&t->co);
}

static void sleeper_drop(weft_future *f)
{
    weft_co_drop(&((sleeper_task *)f)->co);
}

static const weft_future_ops sleeper_ops = {
    "bench_sleeper", 0, sleeper_poll, sleeper_drop, NULL,
};

static weft_poll timer_spawner_poll(weft_future *f, weft_cx *cx, void *out)
{
    spawner_task *s = (spawner_task *)f;
    (void)cx, (void)out;
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (uint64_t i = 0; i < SPAWN_COUNT; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sleeper_task t;
        weft_future_init(&t.base, &sleeper_ops, WEFT_F_SEND);
        weft_co_init(&t.co);
        t.cd = s->cd;
        t.ms = 1 + x % 100;
        int rc = weft_spawn(NULL, &t.base, sizeof t, NULL);
        if (rc != 0) {
            weft_future_drop(&t.base); /* still ours after a failed spawn */
            signal_set(&s->cd->done, 0, rc);
            break;
        }
    }
    return WEFT_READY;
}

static const weft_future_ops timer_spawner_ops = {
    "bench_timer_spawner", 0, timer_spawner_poll, NULL, NULL,
};

static int run_timers(weft_rt *rt, bench_shared *sh, uint64_t *check)
{
    spawner_task s;
    weft_future_init(&s.base, &timer_spawner_ops, WEFT_F_SEND);
    s.cd = &sh->cd;
    int rc = weft_spawn(rt, &s.base, sizeof s, NULL);
    if (rc != 0)
        return rc;
    return signal_block_on(rt, &sh->cd.done, check);
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
    { "chained_spawn", run_chained_spawn }, /* W5 */
    { "fib_fork_join", run_fib_fork_join }, /* W6 */
    { "timers", run_timers },               /* W11 */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int usage(void)
{
    fprintf(stderr, "usage: weft-bench <workload> [--workers N]\n"
                    "workloads: spawn_many spawn_remote yield_many chained_spawn "
                    "fib_fork_join task_memory\n");
    return 1;
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
        pending_task p;
        memset(&p, 0, sizeof p);
        weft_future_init(&p.base, &pending_ops, WEFT_F_SEND);
        p.cd = &sh->cd;
        rc = weft_spawn(rt, &p.base, sizeof p, NULL);
        if (rc != 0)
            weft_future_drop(&p.base); /* still ours after a failed spawn */
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

int main(int argc, char **argv)
{
    const char *name = NULL;
    unsigned workers = 0; /* weft's default: online CPUs */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0) {
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
    if (!w && !memory) {
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
    countdown_init(&sh.cd, memory ? MEMORY_TASKS : SPAWN_COUNT);
    signal_init(&sh.sig);

    int status = 0;
    if (memory) {
        status = run_task_memory(rt, &sh);
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
            printf("check=%" PRIu64 "\n", check);
        }
    }

    weft_rt_shutdown(rt);
    /* The workers are joined: no task can touch the shared state now. */
    signal_fini(&sh.cd.done);
    signal_fini(&sh.sig);
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
