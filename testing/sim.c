/* The deterministic runtime: a scheduler flavour that runs every task on
 * the thread driving it (weft_block_on, weft_sim_run), one poll at a time.
 *
 * It implements the seam (sched/seam.h) as the pool of workers does, so
 * tasks, wakers and join handles (task.c, join.c) run under it unchanged;
 * runtime.c and block_on.c hand it their cold paths through
 * struct weft__rt_flavour. Spawning is the pool's code: it reaches
 * schedule() below through the seam.
 *
 * The run loop, on one thread:
 *   1. move what other threads queued (the remote queue) to the runnable
 *      set;
 *   2. if something is runnable, poll one, picked by the seeded stream
 *      (never FIFO), and record the poll in the trace;
 *   3. else, if an outside hold is open, wait for a wake from outside
 *      (time stands still: the run is not idle, only waiting);
 *   4. else, if the reactor has events ready now (a socketpair's data),
 *      dispatch them;
 *   5. else, if a timer is armed, jump the clock to the wheel's next
 *      deadline (plus lateness, if that knob says so) and fire what is due;
 *   6. else, with fds registered, wait for outside I/O a while (real time;
 *      the clock stands still);
 *   7. else nothing can ever happen again: the tasks still blocked are a
 *      stall — they are named in a report and cancelled.
 * Time moves only in step 5, so a poll never sees the clock move under it,
 * and a ten-minute sleep is one jump.
 *
 * Queues. On the running thread, schedule() and requeue() append to the
 * runnable set (an array, so a random pick is O(1)); anywhere else
 * schedule() pushes to the remote queue (the injector's wait-free queue of
 * task nodes) and unparks the running thread. A task in the remote queue
 * holds a queue reference like any queued task. The remote pusher holds a
 * task reference until it has finished (as the pool's remote hand-off
 * does): once queued, the task may complete and be freed, and after
 * shutdown its free may free the sim. After shutdown closed the queues, a
 * late push is released by one side or the other (a seq_cst store + fence
 * against a fence + seq_cst load).
 *
 * Lifetime is runtime.c's, as for the pool's tasks spawned off its
 * workers: every task counts on rt.remote_live, which starts with a bias
 * that weft_rt_shutdown drops; whoever brings it to zero frees the sim
 * (sim_destroy, then the runtime's memory). */
#include "testing/sim.h"
#include "testing/trace.h"
#include "sched/dump.h"
#include "sched/task.h"
#include "core/alloc.h"
#include "core/errors.h"
#include "core/future.h"
#include "weft/co.h"
#include "time/clock.h"
#include "time/driver.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RUN_INITIAL_CAP 64u
/* How long a run with nothing else to do waits for outside I/O (real
 * time) before it reports a stall. */
#define SIM_IO_WAIT_NS (2u * 1000u * 1000u * 1000u)

/* The sim the calling thread is running (or shutting down), or NULL. */
static _Thread_local struct weft__sim *tl_sim;

static const struct weft__rt_flavour sim_flavour;

struct weft__sim *weft__sim_of(weft_rt *rt)
{
    return rt && rt->flavour == &sim_flavour ? (struct weft__sim *)rt : NULL;
}

static struct weft__sim *sim_of_sched(struct weft__sched *s)
{
    return (struct weft__sim *)weft__rt_of(s);
}

void weft__sim_report(const weft_sim_options *o, const char *msg)
{
    if (o && o->report)
        o->report(msg, o->report_arg);
    else
        fprintf(stderr, "%s\n", msg);
}

/* ---- lifetime ------------------------------------------------------------------ */

/* The last task is gone: free what the sim allocated (runtime.c frees the
 * runtime's memory after). */
static void sim_destroy(weft_rt *rt)
{
    struct weft__sim *sim = (struct weft__sim *)rt;
    weft__reactor_fini(&sim->rt.pool.reactor);
    weft__slab_fini(&sim->rt.pool.sched.slab);
    weft__injector_fini(&sim->remote);
    weft__free(sim->run);
}

/* ---- queues -------------------------------------------------------------------- */

/* Make room for one more runnable entry. False when out of memory (the
 * caller falls back to the remote queue, which needs none). */
static bool run_reserve(struct weft__sim *sim)
{
    if (sim->nrun < sim->cap)
        return true;
    struct weft__sim_entry *grown = weft__alloc(2 * sim->cap * sizeof *grown);
    if (!grown)
        return false;
    memcpy(grown, sim->run, sim->nrun * sizeof *grown);
    weft__free(sim->run);
    sim->run = grown;
    sim->cap *= 2;
    return true;
}

static void push_local(struct weft__sim *sim, struct weft__task *t, unsigned kind)
{
    if (!run_reserve(sim)) {
        weft__injector_push(&sim->remote, &t->qnode);
        return;
    }
    sim->run[sim->nrun].task = t;
    sim->run[sim->nrun].kind = kind;
    sim->nrun++;
}

/* Move what other threads queued into the runnable set, in their order. */
static void take_remote(struct weft__sim *sim)
{
    while (run_reserve(sim)) {
        struct cds_wfcq_node *n = weft__injector_pop(&sim->remote);
        if (!n)
            return;
        push_local(sim, weft__task_of_qnode(n), WEFT__SIM_WAKE);
    }
}

/* A queue entry after close: cancel its task if it is still live (a spawn
 * racing shutdown queued it after the scan went by), then drop the entry's
 * reference. */
static void release_entry(struct weft__task *t)
{
    weft__task_shutdown(t);
    weft__task_drop_ref(t);
}

/* Release every entry of the remote queue (after close), with the sim as
 * the current scheduler so the drops see it. The caller holds a reference
 * that keeps the sim alive meanwhile (a task of its own, or the runtime's
 * bias); a drop that queues again drains again (one pop at a time, so
 * nothing is lost or released twice). */
static void drain_remote(struct weft__sim *sim)
{
    struct weft__sched *saved = weft__sched_enter(&sim->rt.pool.sched);
    struct cds_wfcq_node *n;
    while ((n = weft__injector_pop(&sim->remote)))
        release_entry(weft__task_of_qnode(n));
    weft__sched_enter(saved);
}

static void sim_schedule(struct weft__sched *s, struct weft__task *t)
{
    struct weft__sim *sim = sim_of_sched(s);
    if (tl_sim == sim) {
        push_local(sim, t, sim->wake_kind);
        return;
    }
    /* Another thread, or this one outside a run. See "Queues" at the top. */
    weft__task_hold(t);
    weft__injector_push(&sim->remote, &t->qnode);
    weft__unpark(&sim->parker);
    /* SeqCst fence and load: pairs with the seq_cst store and fence in
     * sim_shutdown, so that a push after its drain is released here. */
    weft_atomic_fence_seq_cst();
    if (weft_atomic_load_seq_cst(&sim->closed))
        drain_remote(sim);
    weft__task_drop_ref(t); /* may free the task, then the sim: last */
}

/* The task woke itself during its poll: only the running thread polls. */
static void sim_requeue(struct weft__sched *s, struct weft__task *t)
{
    push_local(sim_of_sched(s), t, WEFT__SIM_SELF);
}

static const weft__sched_ops sim_ops = {
    .schedule = sim_schedule,
    .requeue = sim_requeue,
    .task_freed = weft__rt_task_freed,
};

/* ---- the running thread's context --------------------------------------------------- */

struct sim_saved {
    struct weft__sim *sim;
    struct weft__sched *sched;
    weft__timers *timers;
    const weft_instant *clock;
    weft__chaos *chaos;
    weft__rand_source *rand;
    weft__reactor *reactor;
};

/* Make `sim` the calling thread's runtime: its scheduler, timers, clock
 * and (with `chaos`) its leaf-future chaos. Pair with ctx_leave. */
static void ctx_enter(struct weft__sim *sim, struct sim_saved *sv, bool chaos)
{
    sv->sim = tl_sim;
    tl_sim = sim;
    sv->sched = weft__sched_enter(&sim->rt.pool.sched);
    sv->timers = weft__timers_enter(&sim->rt.pool.timers);
    sv->clock = weft__clock_virtual;
    weft__clock_virtual = &sim->now;
    sv->chaos = weft__chaos_enter(chaos && sim->chaos.leaf_pending > 0.0 ? &sim->leaf : NULL);
    sv->rand = weft__rand_enter(&sim->rand);
    sv->reactor = weft__reactor_enter(&sim->rt.pool.reactor);
}

static void ctx_leave(const struct sim_saved *sv)
{
    weft__reactor_enter(sv->reactor);
    weft__rand_enter(sv->rand);
    weft__chaos_enter(sv->chaos);
    weft__clock_virtual = sv->clock;
    weft__timers_enter(sv->timers);
    weft__sched_enter(sv->sched);
    tl_sim = sv->sim;
}

/* Claim the sim for a run on this thread. Returns 0, -EDEADLK (called from
 * its own tasks: the run would wait for itself) or -EBUSY. */
static int run_begin(struct weft__sim *sim, struct sim_saved *sv, const char *what)
{
    (void)what; /* only named in debug-build reports */
    if (tl_sim == sim) {
        WEFT_MISUSE("%s from a task of the sim runtime it would run (it would wait "
                    "for itself)", what);
        return -EDEADLK;
    }
    bool idle = false;
    /* Acquire: see everything the previous running thread wrote to the
     * sim (pairs with the release store in run_end). */
    if (!weft_atomic_cas_strong_acquire(&sim->running, &idle, true))
        return -EBUSY;
    ctx_enter(sim, sv, true);
    return 0;
}

static void run_end(struct weft__sim *sim, const struct sim_saved *sv)
{
    ctx_leave(sv);
    /* Release: hands the sim's state to the next running thread. */
    weft_atomic_store_release(&sim->running, false);
}

/* The leaf_pending knob, asked by every library leaf future's poll. */
static bool leaf_decide(weft__chaos *c)
{
    struct weft__sim *sim = (struct weft__sim *)((char *)c - offsetof(struct weft__sim, leaf));
    if (!weft__sim_chance(&sim->chaos, sim->chaos.leaf_pending))
        return false;
    sim->leaf_pendings++;
    sim->trace = weft__trace_add(sim->trace, WEFT__TRACE_LEAF);
    return true;
}

/* The library's random choices (a fair select's first branch) draw from
 * the run's stream, so the seed replays them too. */
static uint64_t sim_rand_next(weft__rand_source *src)
{
    struct weft__sim *sim = (struct weft__sim *)((char *)src - offsetof(struct weft__sim, rand));
    return weft__sim_rand(&sim->chaos);
}

/* ---- the run ------------------------------------------------------------------------ */

enum { OUT_WAITING, OUT_WOKEN, OUT_READY, OUT_CANCELLED };

/* Poll one runnable task, picked at random. */
static void step(struct weft__sim *sim)
{
    size_t n = sim->nrun;
    size_t i = weft__sim_rand_below(&sim->chaos, n);
    struct weft__sim_entry e = sim->run[i];
    sim->run[i] = sim->run[n - 1];
    sim->nrun = n - 1;

    struct weft__task *t = e.task;
    weft__task_hold(t); /* to read its state after the poll */
    uint64_t name = weft__trace_name(weft__future_name(weft__task_future(t)));
    weft__task_run(t);
    sim->polls++;
    /* Acquire: pairs with the release transitions of the poll's wakes
     * (only this thread polls; a wake from another thread may race). */
    uint64_t s = weft_atomic_load_acquire(&t->state);
    unsigned out = (s & WEFT_T_COMPLETE)
                       ? ((s & WEFT_T_OUT_CANCELLED) ? OUT_CANCELLED : OUT_READY)
                       : ((s & WEFT_T_NOTIFIED) ? OUT_WOKEN : OUT_WAITING);
    uint64_t h = weft__trace_add(sim->trace, WEFT__TRACE_POLL);
    h = weft__trace_add(h, n);
    h = weft__trace_add(h, i);
    h = weft__trace_add(h, e.kind);
    h = weft__trace_add(h, name);
    sim->trace = weft__trace_add(h, out);

    /* A spurious wake: the task waits after a wake from elsewhere; poll it
     * once more with nothing changed. */
    if (out == OUT_WAITING && e.kind == WEFT__SIM_WAKE &&
        weft__sim_chance(&sim->chaos, sim->chaos.spurious_wake)) {
        sim->spurious_wakes++;
        sim->trace = weft__trace_add(sim->trace, WEFT__TRACE_SPURIOUS);
        sim->wake_kind = WEFT__SIM_SPURIOUS;
        weft__task_wake(t);
        sim->wake_kind = WEFT__SIM_WAKE;
    }
    weft__task_drop_ref(t);
}

/* Nothing is runnable: move the clock to the next timer deadline and fire
 * what is due. The wheel's next due tick may be the start of a coarse
 * slot that only cascades (a deadline minutes away is reached in up to
 * one step per wheel level); those steps are part of one jump. Returns 1
 * (moved), 0 (no timer armed) or -ETIMEDOUT (the move would pass the time
 * limit). */
static int clock_jump(struct weft__sim *sim)
{
    weft__timers *tm = &sim->rt.pool.timers;
    uint64_t late = 0;
    bool moved = false;
    for (;;) {
        /* Timers are armed on this thread; the firing below re-reads
         * under the shards' locks. */
        weft_instant at = weft__timers_next_deadline(tm);
        if (at == WEFT_NEVER)
            break;
        if (!moved) {
            /* One draw per jump: every step of it lands this much past
             * its tick, so the deadline fires that late. */
            late = weft__sim_lateness(&sim->chaos);
            sim->late_timers += late != 0;
        }
        weft_instant due = at;
        at = late > UINT64_MAX - at ? UINT64_MAX : at + late;
        if (at < sim->now)
            at = sim->now;
        if (sim->opts.time_limit && at - WEFT_SIM_START > sim->opts.time_limit)
            return -ETIMEDOUT;
        sim->now = at;
        moved = true;
        if (weft__timers_fire_due(tm) > 0) /* wakes land in the runnable set */
            break;
        /* A cascade step: the wheel moved past `due` (it reads the clock
         * through weft_now, which must be ours here). */
        WEFT_ASSERT(weft__timers_next_deadline(tm) > due);
        (void)due; /* only the assertion reads it */
    }
    if (!moved)
        return 0;
    sim->clock_jumps++;
    sim->trace = weft__trace_add(weft__trace_add(sim->trace, WEFT__TRACE_CLOCK),
                                 sim->now - WEFT_SIM_START);
    return 1;
}

/* The stall report, filled while the blocked tasks are cancelled. */
struct stall {
    const struct weft__task *root; /* weft_block_on's task, or NULL */
    size_t blocked;
    size_t len;
    char text[8192];
};

#define STALL_LIST_MAX 64u

/* weft_block_on's future, for the root's await chain (defined with it). */
static const weft_future *root_inner(const weft_future *root);

__attribute__((format(printf, 2, 3))) static void stall_add(struct stall *st,
                                                           const char *fmt, ...)
{
    if (st->len >= sizeof st->text)
        return; /* full: the report is cut short */
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(st->text + st->len, sizeof st->text - st->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        st->len += (size_t)w;
}

/* One blocked task: "'name' at where > it > waits", then cancel it. */
static void stall_cancel(void *block, void *ctx)
{
    struct weft__task *t = block;
    struct stall *st = ctx;
    /* Acquire: as the slab scan's own check. */
    uint64_t s = weft_atomic_load_acquire(&t->state);
    if (s == 0 || (s & WEFT_T_COMPLETE))
        return;
    if (st->blocked++ < STALL_LIST_MAX) {
        const weft_future *f = weft__task_future(t);
        bool root = t == st->root;
        weft_task_frame fr[WEFT_TASK_AWAIT_MAX];
        unsigned n = weft__await_chain(root ? root_inner(f) : f, fr, WEFT_TASK_AWAIT_MAX);
        stall_add(st, "\n  '%s'%s", weft__future_name(f),
                  root ? " (the future given to weft_block_on)" : "");
        /* A first frame without a line is the task's future itself, named
         * already; a line says where a coroutine waits. */
        unsigned i = n > 0 && fr[0].line == 0 ? 1 : 0;
        for (const char *sep = " at "; i < n; i++, sep = " > ") {
            stall_add(st, "%s%s", sep, fr[i].name);
            if (fr[i].line > 0)
                stall_add(st, ":%d", fr[i].line);
            else if (fr[i].line == WEFT__CO_FAILED)
                stall_add(st, ":refused");
        }
    }
    weft__task_shutdown(t); /* cancel: its future is dropped here */
}

/* Nothing can happen any more (`why` 0), or the time limit was reached
 * (-ETIMEDOUT): cancel every task that has not completed, naming them in
 * a report. Returns 0 when there was none (the run simply finished), else
 * -EDEADLK or -ETIMEDOUT. */
static int stall(struct weft__sim *sim, int why, const weft_join *root)
{
    struct stall st = { .root = root ? root->task : NULL };
    (void)weft__slab_scan(&sim->rt.pool.sched.slab, WEFT_T_COMPLETE, stall_cancel, &st);
    if (st.blocked == 0)
        return 0;
    int rc = why ? why : -EDEADLK;
    sim->trace = weft__trace_add(weft__trace_add(sim->trace, WEFT__TRACE_STALL), st.blocked);
    weft_duration at = sim->now - WEFT_SIM_START;
    char msg[sizeof st.text + 768];
    snprintf(msg, sizeof msg,
             "weft sim: %s after %" PRIu64 " polls, at virtual time +%" PRIu64 ".%03" PRIu64
             " s; %zu blocked task(s) cancelled:%s%s\n"
             "weft sim: seed=%" PRIu64 "; replay with WEFT_SEED=%" PRIu64,
             rc == -EDEADLK ? "stall (nothing runnable, no timer armed, no outside hold)"
                            : "time limit reached",
             sim->polls, at / 1000000000u, at / 1000000u % 1000u, st.blocked, st.text,
             st.blocked > STALL_LIST_MAX ? "\n  ..." : "", sim->seed, sim->seed);
    weft__sim_report(&sim->opts, msg);
    return rc;
}

/* Whether a task is still incomplete (a run with none left is over). */
static bool tasks_left(struct weft__sim *sim)
{
    weft_rt_counts c;
    return weft_rt_count(&sim->rt, &c) == 0 && c.tasks > 0;
}

/* Look at the reactor (waiting up to `timeout_ns` of real time): its
 * wakes land in the runnable set. True if something became runnable. */
static bool io_turn(struct weft__sim *sim, uint64_t timeout_ns)
{
    weft__reactor *r = &sim->rt.pool.reactor;
    /* Relaxed: registrations are made on this thread. */
    if (weft_atomic_load_relaxed(&r->registered) == 0 || !weft__reactor_try_acquire(r))
        return false;
    int n = weft__reactor_wait(r, timeout_ns);
    weft__reactor_dispatch(r);
    weft__reactor_release(r);
    if (n > 0) {
        sim->io_events += (uint64_t)n;
        sim->trace = weft__trace_add(sim->trace, WEFT__TRACE_IO);
    }
    take_remote(sim);
    return sim->nrun > 0;
}

/* Run until `root` completes (NULL: until no task is left). Returns 0,
 * -EDEADLK or -ETIMEDOUT (see stall). */
static int run(struct weft__sim *sim, const weft_join *root)
{
    for (;;) {
        if (root && weft_join_is_finished(root))
            return 0;
        take_remote(sim);
        if (sim->nrun > 0) {
            step(sim);
            continue;
        }
        /* Acquire: pairs with the release in weft_sim_outside_end, so what
         * the hold's owner queued before ending it is seen below. */
        if (weft_atomic_load_acquire(&sim->outside) > 0) {
            sim->outside_waits++;
            weft__park(&sim->parker); /* a remote push or an end unparks */
            continue;
        }
        take_remote(sim);
        if (sim->nrun > 0)
            continue;
        /* I/O that is ready already (a socketpair's data is there the
         * moment it was written) comes before any move of the clock. */
        if (io_turn(sim, 0))
            continue;
        int rc = clock_jump(sim);
        if (rc > 0)
            continue;
        /* Nothing runnable, no timer: only the outside world (a peer
         * process, the network) can still make progress. Give it a while
         * of real time before calling it a stall; the clock stands still. */
        if (rc == 0 && tasks_left(sim) && io_turn(sim, SIM_IO_WAIT_NS))
            continue;
        return stall(sim, rc, root);
    }
}

/* ---- weft_block_on ------------------------------------------------------------------ */

/* weft_block_on's future, run as a task among the others: it polls the
 * caller's future in place and writes the output to the caller. Named
 * after that future (WEFT_F__NAMED), so reports and the trace show it. */
typedef struct root_ref {
    weft_future base;
    const char *name; /* right after the header */
    weft_future *inner;
    void *out;
} root_ref;

static weft_poll root_poll(weft_future *f, weft_cx *cx, void *out)
{
    root_ref *r = (root_ref *)f;
    (void)out;
    return weft_future_poll(r->inner, cx, r->out);
}

static void root_drop(weft_future *f)
{
    weft_future_drop(((root_ref *)f)->inner);
}

static const weft_future_ops root_ops = {
    .name = "weft_block_on", .out_size = 0, .poll = root_poll, .drop = root_drop,
};

static const weft_future *root_inner(const weft_future *root)
{
    return ((const root_ref *)root)->inner;
}

static int sim_block_on(weft_rt *rt, weft_future *fut, void *out, size_t out_size)
{
    struct weft__sim *sim = (struct weft__sim *)rt;
    struct sim_saved sv;
    (void)out_size; /* checked by weft_block_on */
    int rc = run_begin(sim, &sv, "weft_block_on");
    if (rc)
        return rc;
    /* Send: it only ever runs on this thread, whatever `fut` is. */
    root_ref r;
    weft_future_init(&r.base, &root_ops, WEFT_F_SEND);
    r.base.flags |= WEFT_F__NAMED;
    r.name = weft__future_name(fut);
    r.inner = fut;
    r.out = out;
    weft_join j;
    rc = weft_spawn(rt, &r.base, sizeof r, &j);
    if (rc == 0) {
        rc = run(sim, &j);
        weft_future_drop(&j.base);
    }
    run_end(sim, &sv);
    return rc;
}

int weft_sim_run(weft_rt *rt)
{
    struct weft__sim *sim = weft__sim_of(rt);
    if (!sim)
        return -EINVAL;
    if (weft__worker_current()) {
        WEFT_MISUSE("weft_sim_run on a worker thread would block it");
        return -EDEADLK;
    }
    struct sim_saved sv;
    int rc = run_begin(sim, &sv, "weft_sim_run");
    if (rc)
        return rc;
    rc = run(sim, NULL);
    run_end(sim, &sv);
    return rc;
}

/* ---- outside holds ------------------------------------------------------------------ */

int weft_sim_outside_begin(weft_rt *rt)
{
    struct weft__sim *sim = weft__sim_of(rt);
    if (!sim)
        return -EINVAL;
    /* Relaxed: a count; the run reads it with acquire, and a begin must
     * happen before the run could need it (see testing.h). */
    weft_atomic_fetch_add_relaxed(&sim->outside, 1);
    return 0;
}

void weft_sim_outside_end(weft_rt *rt)
{
    struct weft__sim *sim = weft__sim_of(rt);
    if (!sim)
        return;
    /* Release: what this thread queued before is seen by the run that
     * reads the count (pairs with the acquire in run). */
    unsigned prev = weft_atomic_fetch_sub_release(&sim->outside, 1);
    if (prev == 0) {
        weft_atomic_fetch_add_relaxed(&sim->outside, 1); /* undo: unpaired */
        WEFT_MISUSE("weft_sim_outside_end without a weft_sim_outside_begin");
        return;
    }
    weft__unpark(&sim->parker); /* a waiting run looks again */
}

/* ---- shutdown and statistics ---------------------------------------------------------- */

static void shutdown_task(void *block, void *ctx)
{
    (void)ctx;
    weft__task_shutdown(block);
}

/* weft_rt_shutdown's middle part (runtime.c refused a call from the sim's
 * own tasks and a second call; the accounting that may free the sim
 * follows). */
static void sim_shutdown(weft_rt *rt)
{
    struct weft__sim *sim = (struct weft__sim *)rt;
    /* Release: pairs with the acquire in weft__pool_stopping (spawns fail
     * from now on). */
    weft_atomic_store_release(&rt->pool.stopping, true);
    /* Cancel every task not completed (futures dropped with the sim
     * current, clock and all, but no chaos), then release the queues. */
    struct sim_saved sv;
    ctx_enter(sim, &sv, false);
    (void)weft__slab_scan(&rt->pool.sched.slab, WEFT_T_COMPLETE, shutdown_task, NULL);
    /* SeqCst store and fence: pairs with the fence and load in
     * sim_schedule (see "Queues"). */
    weft_atomic_store_seq_cst(&sim->closed, true);
    weft_atomic_fence_seq_cst();
    while (sim->nrun > 0)
        release_entry(sim->run[--sim->nrun].task);
    drain_remote(sim);
    ctx_leave(&sv);
}

static int sim_rt_stats(weft_rt *rt, weft_worker_stats *out, unsigned *n)
{
    struct weft__sim *sim = (struct weft__sim *)rt;
    if (*n > 0) {
        memset(out, 0, sizeof *out);
        out->polls = sim->polls;
        out->parks = sim->outside_waits;
        out->queue_depth = sim->nrun;
    }
    *n = 1; /* the thread running it */
    return 0;
}

int weft_sim_stats_get(weft_rt *rt, weft_sim_stats *out)
{
    struct weft__sim *sim = weft__sim_of(rt);
    if (!sim || !out)
        return -EINVAL;
    out->seed = sim->seed;
    out->trace_hash = sim->trace;
    out->now = sim->now;
    out->polls = sim->polls;
    out->spurious_wakes = sim->spurious_wakes;
    out->leaf_pendings = sim->leaf_pendings;
    out->late_timers = sim->late_timers;
    out->clock_jumps = sim->clock_jumps;
    out->outside_waits = sim->outside_waits;
    return 0;
}

/* The blocking pool's jobs hold the run as an outside hold does. */
static void sim_hold(weft_rt *rt, bool on)
{
    if (!on) {
        weft_sim_outside_end(rt);
        return;
    }
    int rc = weft_sim_outside_begin(rt); /* rt is a sim: it cannot fail */
    (void)rc;
}

static const struct weft__rt_flavour sim_flavour = {
    .block_on = sim_block_on,
    .shutdown = sim_shutdown,
    .stats = sim_rt_stats,
    .destroy = sim_destroy,
    .hold = sim_hold,
};

/* ---- construction ---------------------------------------------------------------------- */

/* The sim fires its timers itself (clock_jump): no sleeper to wake. */
static void no_sleeper(void *ctx)
{
    (void)ctx;
}

int weft_rt_new_sim(weft_rt **out, const weft_sim_options *opts)
{
    weft_sim_options o = WEFT_SIM_OPTIONS_INIT;
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (opts)
        o = *opts;
    if (weft__sim_chaos_check(&o) != 0)
        return -EINVAL;
    uint64_t seed = o.seed;
    int rc = weft__sim_env_seed(&seed);
    if (rc < 0)
        return rc;

    /* Cache-line aligned: struct weft_rt has fields on lines of their own. */
    void *raw = weft__alloc(sizeof(struct weft__sim) + WEFT_CACHE_LINE);
    struct weft__sim_entry *entries = weft__alloc(RUN_INITIAL_CAP * sizeof *entries);
    if (!raw || !entries) {
        weft__free(raw);
        weft__free(entries);
        return -ENOMEM;
    }
    uintptr_t a = ((uintptr_t)raw + WEFT_CACHE_LINE - 1) & ~(uintptr_t)(WEFT_CACHE_LINE - 1);
    struct weft__sim *sim = (struct weft__sim *)a;
    memset(sim, 0, sizeof *sim);
    sim->rt.raw = raw;
    sim->rt.flavour = &sim_flavour;
    sim->rt.pool.sched.ops = &sim_ops;
    weft__slab_init(&sim->rt.pool.sched.slab);
    sim->now = WEFT_SIM_START;
    weft__timers_init(&sim->rt.pool.timers, sim->now, no_sleeper, NULL);
    weft_atomic_init(&sim->rt.pool.stopping, false);
    int err = weft__reactor_init(&sim->rt.pool.reactor);
    if (err != 0) {
        weft__slab_fini(&sim->rt.pool.sched.slab);
        weft__free(raw);
        weft__free(entries);
        return err;
    }

    sim->opts = o;
    sim->seed = seed;
    weft__sim_chaos_init(&sim->chaos, seed, &o);
    sim->leaf.decide = leaf_decide;
    sim->rand.next = sim_rand_next;
    sim->trace = WEFT__TRACE_INIT;
    sim->run = entries;
    sim->cap = RUN_INITIAL_CAP;
    sim->wake_kind = WEFT__SIM_WAKE;
    weft__injector_init(&sim->remote);
    weft__parker_init(&sim->parker);
    weft_atomic_init(&sim->outside, 0u);
    weft_atomic_init(&sim->running, false);
    weft_atomic_init(&sim->closed, false);
    weft__rt_accounting_init(&sim->rt);
    *out = &sim->rt;
    return 0;
}
