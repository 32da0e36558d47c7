/* The runtime: construction, spawning, shutdown, statistics, and the
 * accounting that decides when the runtime's memory can go.
 *
 * A weft_rt is a pool of workers (worker.c) wired into the seam (seam.h)
 * with this file's lifetime accounting as its task_freed operation.
 *
 * Lifetime. The runtime struct outlives weft_rt_shutdown while tasks it
 * allocated are still referenced (by join handles or wakers held
 * elsewhere): every task counts toward `live` — on its allocating/freeing
 * worker's own counter, or on remote_live when that happens off the
 * runtime's workers. remote_live starts with a large bias; shutdown adds
 * the workers' counts and removes the bias; whoever brings it to zero
 * frees the runtime. */
#include "sched/runtime.h"
#include "sched/blocking.h"
#include "sched/task.h"
#include "core/alloc.h"
#include "core/errors.h"
#include "core/future.h"
#include "core/sys.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "weft/time.h"

/* ---- live runtimes (debug builds) ----------------------------------------------- *
 *
 * Debug builds keep every runtime whose memory is not freed on a list, so
 * that a call with a runtime already shut down and freed — a second
 * shutdown, a spawn after shutdown with no handle keeping the runtime —
 * is reported and refused instead of using freed memory. The list's lock
 * is held from the look-up to the point where the caller holds the
 * runtime (its claim, or its shut_down flag), and rt_destroy takes it
 * before the memory goes. A freed runtime's address may be reused by a
 * later runtime, which hides the mistake. */

#if WEFT_DEBUG_LEVEL >= 1
static pthread_mutex_t g_live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_rt *g_live; /* under g_live_lock */

static void live_add(struct weft_rt *rt)
{
    pthread_mutex_lock(&g_live_lock);
    rt->live_next = g_live;
    g_live = rt;
    pthread_mutex_unlock(&g_live_lock);
}

static void live_remove(struct weft_rt *rt)
{
    pthread_mutex_lock(&g_live_lock);
    for (struct weft_rt **pp = &g_live; *pp; pp = &(*pp)->live_next) {
        if (*pp == rt) {
            *pp = rt->live_next;
            break;
        }
    }
    pthread_mutex_unlock(&g_live_lock);
}

/* Under g_live_lock. Compares addresses only: `rt` may be freed. */
static bool live_has(const struct weft_rt *rt)
{
    for (struct weft_rt *r = g_live; r; r = r->live_next)
        if (r == rt)
            return true;
    return false;
}
#endif

/* ---- lifetime --------------------------------------------------------------- */

static void rt_destroy(struct weft_rt *rt)
{
#if WEFT_DEBUG_LEVEL >= 1
    live_remove(rt);
#endif
    if (rt->flavour)
        rt->flavour->destroy(rt);
    else
        weft__pool_fini(&rt->pool);
    weft__free(rt->raw);
}

/* A thread off the runtime's workers counts the task it is about to spawn
 * in remote_live before it looks at anything else of the runtime: from
 * then on the runtime's memory stays, even if a shutdown finishes
 * meanwhile (it frees the runtime only when the count reaches zero). Pair
 * with release_remote when the spawn fails, else the task's free pairs
 * with it. Returns 0, or -EINVAL (debug builds: `rt` was freed). */
static int claim_remote(struct weft_rt *rt)
{
#if WEFT_DEBUG_LEVEL >= 1
    pthread_mutex_lock(&g_live_lock);
    bool live = live_has(rt);
    if (live) {
        /* Relaxed: a first guess; the CAS acquires. A count of zero means
         * the runtime's last task is being freed, and the runtime with it
         * (rt_destroy waits for this lock): too late to claim it. */
        int64_t n = weft_atomic_load_relaxed(&rt->remote_live);
        do {
            live = n > 0;
            /* Acquire: as the add below. */
        } while (live && !weft_atomic_cas_weak_acquire(&rt->remote_live, &n, n + 1));
    }
    pthread_mutex_unlock(&g_live_lock);
    if (!live) {
        WEFT_MISUSE("weft_spawn on runtime %p, which was shut down and freed", (void *)rt);
        return -EINVAL;
    }
#else
    /* Acquire: a claim that comes after shutdown's last step (its acq_rel
     * add to this count) sees `stopping` set. */
    weft_atomic_fetch_add_acquire(&rt->remote_live, 1);
#endif
    return 0;
}

static void release_remote(struct weft_rt *rt)
{
    /* AcqRel: the thread reaching zero sees every other holder's accesses
     * before it frees the runtime. */
    if (weft_atomic_fetch_sub_acq_rel(&rt->remote_live, 1) == 1)
        rt_destroy(rt);
}

void weft__rt_task_freed(struct weft__sched *s)
{
    struct weft_rt *rt = weft__rt_of(s);
    struct weft__worker *w = weft__pool_worker(&rt->pool);
    if (w)
        w->live_tasks--;
    else
        release_remote(rt); /* may free the runtime: last */
}

/* The multi-thread flavour of the seam. */
static const weft__sched_ops pool_ops = {
    .schedule = weft__pool_schedule,
    .requeue = weft__pool_requeue,
    .task_freed = weft__rt_task_freed,
};

/* ---- the calling thread --------------------------------------------------------- */

weft_rt *weft_rt_current(void)
{
    struct weft__sched *s = weft__sched_current();
    return s ? weft__rt_of(s) : NULL;
}

int weft_worker_index(void)
{
    struct weft__worker *w = weft__worker_current();
    return w ? (int)w->index : -1;
}

/* ---- test hooks ------------------------------------------------------------------ */

#if WEFT_DEBUG_LEVEL >= 1
/* Set while no other thread spawns or shuts down; read by those. */
static weft__rt_hook_fn *g_hook;
static void *g_hook_ctx;

void weft__rt_set_hook(weft__rt_hook_fn *fn, void *ctx)
{
    g_hook = fn;
    g_hook_ctx = ctx;
}

#define RT_HOOK(at, rt) (g_hook ? g_hook((at), (rt), g_hook_ctx) : (void)0)
#else
void weft__rt_set_hook(weft__rt_hook_fn *fn, void *ctx)
{
    (void)fn, (void)ctx;
}

#define RT_HOOK(at, rt) ((void)0)
#endif

/* ---- spawning ------------------------------------------------------------------- *
 *
 * A spawn racing shutdown. A worker of the runtime spawns only while it
 * runs (shutdown waits for the workers to leave their loops, and refuses
 * spawns from the drops after). Any other thread may be anywhere in a
 * spawn while a shutdown runs, and its task ends cancelled whatever the
 * interleaving:
 *  - it saw `stopping`: refused with -ECANCELED, nothing allocated;
 *  - its task was allocated before the stop's scan reached it: the scan
 *    cancels it; its queue entry is released by the close (or the
 *    spawner's drain, below);
 *  - allocated later: the scan misses it, but the spawner queues it, and
 *    the close or the spawner itself (seeing `closed` after its push)
 *    drains the entry and cancels the task (worker.c, "remote hand-off").
 * The claim on the runtime (claim_remote) keeps its memory meanwhile. */

static int spawn_task(struct weft_rt *rt, const weft_future *fut, size_t fut_size,
                      weft_join *join, struct weft__worker *owner)
{
    struct weft__worker *w = weft__pool_worker(&rt->pool); /* no access to rt */
    int rc = w ? 0 : claim_remote(rt);
    if (rc)
        return rc;
    rc = -ECANCELED;
    if (weft__pool_stopping(&rt->pool))
        goto refused;
    if (!w)
        RT_HOOK(WEFT__RT_HOOK_SPAWN_ADMITTED, rt);
    uint64_t flags = WEFT_T_NOTIFIED | (join ? WEFT_T_JOIN_INTEREST : 0);
    unsigned refs = 2u + (join ? 1u : 0u); /* live + queue (+ join) */
    struct weft__task *t = weft__task_new(&rt->pool.sched, fut, fut_size,
                                          owner ? owner->index + 1u : 0u, flags, refs);
    rc = -ENOMEM;
    if (!t)
        goto refused;
    if (w)
        w->live_tasks++;
    else
        RT_HOOK(WEFT__RT_HOOK_SPAWN_ALLOCATED, rt);
    if (join)
        weft__join_init(join, t);
    rt->pool.sched.ops->schedule(&rt->pool.sched, t); /* the flavour's; may free the runtime: last */
    return 0;
refused:
    if (!w)
        release_remote(rt); /* may free the runtime: last */
    return rc;
}

static int check_spawnable(const weft_future *fut, size_t fut_size)
{
    if (fut_size < sizeof(weft_future))
        return -EINVAL;
    return weft__future_check_fresh(fut, "spawn");
}

int weft_spawn(weft_rt *rt, const weft_future *fut, size_t fut_size, weft_join *join)
{
    int rc = check_spawnable(fut, fut_size);
    if (rc)
        return rc;
    if (!rt)
        rt = weft_rt_current();
    if (!rt)
        return -EINVAL;
    if (!(fut->flags & WEFT_F_SEND)) {
        WEFT_MISUSE("weft_spawn: future '%s' is not Send (WEFT_F_SEND); "
                    "use weft_spawn_local", weft__future_name(fut));
        return -EPERM;
    }
    return spawn_task(rt, fut, fut_size, join, NULL);
}

int weft_spawn_local(const weft_future *fut, size_t fut_size, weft_join *join)
{
    int rc = check_spawnable(fut, fut_size);
    if (rc)
        return rc;
    struct weft__worker *w = weft__worker_current();
    if (!w) {
        weft_rt *cur = weft_rt_current();
        if (cur && cur->flavour) /* one thread runs all of its tasks */
            return spawn_task(cur, fut, fut_size, join, NULL);
        WEFT_MISUSE("weft_spawn_local of '%s' from a thread that is not a worker",
                    weft__future_name(fut));
        return -EPERM;
    }
    return spawn_task(weft__rt_of(&w->pool->sched), fut, fut_size, join, w);
}

/* ---- construction and shutdown ---------------------------------------------------- */

void weft__rt_accounting_init(struct weft_rt *rt)
{
    weft_atomic_init(&rt->remote_live, WEFT__RT_LIVE_BIAS);
    weft_atomic_init(&rt->shut_down, false);
#if WEFT_DEBUG_LEVEL >= 1
    live_add(rt);
#endif
}

int weft_rt_new(weft_rt **out, const weft_rt_options *opts)
{
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (opts)
        o = *opts;
    if (o.workers > WEFT_RT_MAX_WORKERS || o.stack_size > WEFT_RT_MAX_STACK_SIZE ||
        o.blocking_threads_max > WEFT_BLOCKING_THREADS_MAX)
        return -EINVAL;
    unsigned n = o.workers ? o.workers : weft__sys_cpu_count();
    if (n > WEFT_RT_MAX_WORKERS)
        n = WEFT_RT_MAX_WORKERS;
    const char *prefix = o.thread_name_prefix ? o.thread_name_prefix : "weft-w";

    /* Cache-line aligned: the struct has fields on lines of their own. */
    void *raw = weft__alloc(sizeof(struct weft_rt) + WEFT_CACHE_LINE);
    if (!raw)
        return -ENOMEM;
    uintptr_t a = ((uintptr_t)raw + WEFT_CACHE_LINE - 1) & ~(uintptr_t)(WEFT_CACHE_LINE - 1);
    struct weft_rt *rt = (struct weft_rt *)a;
    memset(rt, 0, sizeof *rt);
    rt->raw = raw;
    rt->blocking_threads_max = o.blocking_threads_max;
    rt->blocking_idle_timeout = o.blocking_idle_timeout;
    if (weft__pool_init(&rt->pool, n, &pool_ops) != 0) {
        weft__free(raw);
        return -ENOMEM;
    }
    weft__rt_accounting_init(rt); /* rt_destroy, below or later, ends it */
    int rc = weft__pool_start(&rt->pool, prefix, o.stack_size);
    if (rc != 0) {
        rt_destroy(rt);
        /* The system's verdict on the thread's attributes (-EINVAL: it
         * calls the stack size invalid) or memory (-ENOMEM); anything else
         * is a thread it could not start now. */
        return rc == -ENOMEM || rc == -EINVAL ? rc : -EAGAIN;
    }
    *out = rt;
    return 0;
}

/* Marks `rt` shut down; false (reported) when it already was, or — debug
 * builds — when its memory is gone. */
static bool shutdown_begin(struct weft_rt *rt)
{
#if WEFT_DEBUG_LEVEL >= 1
    /* The lock keeps a live rt from being freed until the flag is read. */
    pthread_mutex_lock(&g_live_lock);
    bool live = live_has(rt);
    /* Relaxed: the flag only decides which call shuts down; the other
     * returns without touching anything else. */
    bool again = live && weft_atomic_swap_relaxed(&rt->shut_down, true);
    pthread_mutex_unlock(&g_live_lock);
    if (!live) {
        WEFT_MISUSE("weft_rt_shutdown: runtime %p was already shut down and freed "
                    "(shut down twice?); ignored", (void *)rt);
        return false;
    }
#else
    /* Relaxed: as above. */
    bool again = weft_atomic_swap_relaxed(&rt->shut_down, true);
#endif
    if (again) {
        WEFT_MISUSE("weft_rt_shutdown: runtime %p is already shut down; ignored", (void *)rt);
        return false;
    }
    return true;
}

/* Whether the calling thread may shut `rt` down; reported if not. Only a
 * current runtime is dereferenced here: a freed one is caught by
 * shutdown_begin (debug builds). */
static bool shutdown_allowed(weft_rt *rt)
{
    if (weft__worker_current() || (weft_rt_current() == rt && rt->flavour)) {
        WEFT_MISUSE("weft_rt_shutdown called from a thread running tasks (a worker, "
                    "or a sim runtime's own thread: it would wait for itself); ignored");
        return false;
    }
    return true;
}

static void shutdown_now(weft_rt *rt);

void weft_rt_shutdown(weft_rt *rt)
{
    if (!rt || !shutdown_allowed(rt) || !shutdown_begin(rt))
        return;
    shutdown_now(rt);
}

/* ---- graceful shutdown ------------------------------------------------------------- *
 *
 * weft_rt_shutdown_timeout marks the runtime shut down (a second shutdown
 * is refused from then on) but leaves it running: it waits for the task
 * count (weft_rt_count) to reach zero, or for the grace period to end,
 * then runs weft_rt_shutdown's body. No hook in the tasks is needed: the
 * multi-thread runtime is looked at every millisecond; a sim runtime has
 * to be driven, so the calling thread runs it with a grace future as its
 * root (below), the period measured on the sim's clock. */

/* The root of a sim's grace period: sleeps until the deadline (virtual
 * time moves only while every task waits, so the tasks get their chance
 * first), then reports whether tasks other than itself are left. */
typedef struct grace_fut {
    weft_future base;
    weft_rt *rt;
    weft_duration d;
    bool armed;
    weft_sleep sleep;
} grace_fut;

static bool only_root_left(weft_rt *rt)
{
    weft_rt_counts c;
    return weft_rt_count(rt, &c) == 0 && c.tasks <= 1;
}

static weft_poll grace_poll(weft_future *f, weft_cx *cx, void *out)
{
    grace_fut *g = (grace_fut *)f;
    if (only_root_left(g->rt)) {
        *(int *)out = 0;
        return WEFT_READY;
    }
    if (!g->armed) {
        weft_sleep_init(&g->sleep, g->d); /* inside the run: the sim's clock */
        g->armed = true;
    }
    if (weft_future_poll(&g->sleep.base, cx, NULL) == WEFT_PENDING)
        return WEFT_PENDING;
    *(int *)out = only_root_left(g->rt) ? 0 : -ETIMEDOUT;
    return WEFT_READY;
}

static void grace_drop(weft_future *f)
{
    grace_fut *g = (grace_fut *)f;
    if (g->armed)
        weft_future_drop(&g->sleep.base);
}

static const weft_future_ops grace_ops = {
    .name = "weft_rt_shutdown_timeout", .out_size = sizeof(int),
    .poll = grace_poll, .drop = grace_drop,
};

/* Waits out the grace period; 0 when no task is left, else -ETIMEDOUT. */
static int grace(weft_rt *rt, uint64_t d)
{
    if (rt->flavour) {
        grace_fut g;
        weft_future_init(&g.base, &grace_ops, 0);
        g.rt = rt;
        g.d = d;
        g.armed = false;
        int out = -ETIMEDOUT;
        int rc = weft_block_on(rt, &g.base, &out, sizeof out);
        return rc == 0 ? out : -ETIMEDOUT; /* a stalled sim: tasks are left */
    }
    uint64_t start = weft__sys_now_ns();
    for (;;) {
        weft_rt_counts c;
        if (weft_rt_count(rt, &c) == 0 && c.tasks == 0)
            return 0;
        uint64_t now = weft__sys_now_ns();
        if (now - start >= d)
            return -ETIMEDOUT;
        uint64_t left = d - (now - start);
        uint64_t step = left < 1000000u ? left : 1000000u;
        struct timespec ts = { 0, (long)step };
        nanosleep(&ts, NULL);
    }
}

int weft_rt_shutdown_timeout(weft_rt *rt, uint64_t d)
{
    if (!rt || !shutdown_allowed(rt) || !shutdown_begin(rt))
        return -EINVAL;
    int rc = grace(rt, d);
    shutdown_now(rt);
    return rc;
}

/* weft_rt_shutdown's body, once the runtime is marked shut down. */
static void shutdown_now(weft_rt *rt)
{
    /* Cancel every task — Send futures dropped here, local ones on their
     * owner workers, with this runtime current so the drops see it — and
     * join the workers; this thread then owns their queues. Wakes from the
     * drops land in queues that the close releases; every task is
     * complete afterwards, so later wakes do nothing. */
    struct weft__sched *saved_sched = weft__sched_enter(&rt->pool.sched);
    weft__timers *saved_timers = weft__timers_enter(&rt->pool.timers);
    weft__reactor *saved_reactor = weft__reactor_enter(&rt->pool.reactor);
    if (rt->flavour) {
        rt->flavour->shutdown(rt);
    } else {
        weft__pool_stop(&rt->pool);
        RT_HOOK(WEFT__RT_HOOK_SHUTDOWN_STOPPED, rt);
        weft__pool_close(&rt->pool);
    }
    weft__reactor_enter(saved_reactor);
    weft__timers_enter(saved_timers);
    weft__sched_enter(saved_sched);
    /* Every task is cancelled: no job is queued any more, and the running
     * ones are detached; wait for those and join the pool's threads. */
    weft__blocking_shutdown(rt);
    int64_t worker_live = 0;
    for (unsigned i = 0; i < rt->pool.nworkers; i++)
        worker_live += rt->pool.workers[i].live_tasks;
    /* Drop the bias, adding the workers' share: the runtime's memory goes
     * when the last task (held by a join handle or waker) is freed. */
    int64_t delta = worker_live - WEFT__RT_LIVE_BIAS;
    if (weft_atomic_fetch_add_acq_rel(&rt->remote_live, delta) + delta == 0)
        rt_destroy(rt);
}

/* ---- statistics ------------------------------------------------------------------ */

int weft_rt_stats(weft_rt *rt, weft_worker_stats *out, unsigned *n)
{
    if (!rt || !n || (*n > 0 && !out))
        return -EINVAL;
#if WEFT_DEBUG_LEVEL >= 1
    pthread_mutex_lock(&g_live_lock);
    bool live = live_has(rt);
    pthread_mutex_unlock(&g_live_lock);
    if (!live) {
        WEFT_MISUSE("weft_rt_stats on runtime %p, which was shut down and freed", (void *)rt);
        return -EINVAL;
    }
#endif
    if (rt->flavour)
        return rt->flavour->stats(rt, out, n);
    unsigned m = *n < rt->pool.nworkers ? *n : rt->pool.nworkers;
    for (unsigned i = 0; i < m; i++) {
        struct weft__worker *w = &rt->pool.workers[i];
        weft_worker_stats *s = &out[i];
        /* Relaxed: each counter is a sample (see struct
         * weft__worker_counters). */
        s->polls = weft_atomic_load_relaxed(&w->ctr.polls);
        s->steals = weft_atomic_load_relaxed(&w->ctr.steals);
        s->steal_ops = weft_atomic_load_relaxed(&w->ctr.steal_ops);
        s->parks = weft_atomic_load_relaxed(&w->ctr.parks);
        s->injector_pulls = weft_atomic_load_relaxed(&w->ctr.injector_pulls);
        s->lifo_hits = weft_atomic_load_relaxed(&w->ctr.lifo_hits);
        s->overflows = weft_atomic_load_relaxed(&w->ctr.overflows);
        s->queue_depth = weft__ring_len(&w->ring);
    }
    *n = rt->pool.nworkers;
    return 0;
}
