/* The cancel sweep (weft_cancel_sweep, weft/testing.h): every await point
 * of a future under test becomes a cancellation point.
 *
 * For each seed, a counting run builds the scenario on a fresh sim and
 * polls the future to completion, counting its polls N; then, for every k
 * in 0..N-1, a run builds the scenario afresh, polls the future k times
 * and drops it. Every run then goes on until each task of the sim has
 * completed (weft_sim_run), and is judged: the caller's check, then the
 * caller's teardown, then the sim is shut down, and then no clone of the
 * future's waker may be left. The first failure stops the sweep.
 *
 * The driver. The future under test is polled by a task of its own, the
 * driver: one poll of the future per turn of the task, and after the
 * k-th the driver drops it in that same turn — on the sim's thread, with
 * the sim current, between two polls, as an abort or a parent
 * coroutine's drop would. The driver records the future where a coroutine
 * records the child it awaits (a weft_co, located by the flag bits
 * WEFT_FN_INIT sets), so task dumps and stall reports show the future
 * under test, and where it waits, below "weft_cancel_sweep".
 *
 * The probe. The future is polled with a waker of the sweep's rather
 * than the task's: until the drop it forwards every wake to the task;
 * always, it counts the clones the future hands out (to a timer, a join
 * handle, a waiter list). Clones held right after the drop are
 * registrations the drop did not take back (the run tells the check how
 * many); a clone still held after teardown will never be released (a
 * failure). The probe is reference counted — the run holds one
 * reference, every clone another — so a clone that outlives the run
 * keeps it alive instead of pointing at freed memory.
 *
 * Determinism. The runs of one seed build the same scenario and draw the
 * same random decisions, so they agree with the counting run up to the
 * drop; a run of k < N whose future completes or stalls before its k-th
 * poll diverged, and is reported as such (the scenario depends on more
 * than the seed). */
#include "weft/testing.h"
#include "weft/co.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/errors.h"
#include "core/future.h"
#include "core/spinlock.h"
#include "testing/chaos.h"
#include "testing/sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The k of a counting run: poll until READY. */
#define COUNT UINT32_MAX

/* ---- the probe waker --------------------------------------------------------------- */

struct probe {
    /* The run's reference plus one per clone; the last release frees the
     * probe. Any thread. */
    _Atomic uint32_t refs;
    _Atomic uint32_t clones;      /* clones alive; any thread */
    _Atomic uint32_t wakes_after; /* wakes that came after the drop */
    weft__spinlock lock;          /* guards `target` and `dropped` */
    weft_waker target;            /* the driver task's waker, until the drop */
    bool dropped;
};

static const weft_waker_ops probe_ops;

static struct probe *probe_new(void)
{
    struct probe *p = weft__alloc(sizeof *p);
    if (!p)
        return NULL;
    weft_atomic_init(&p->refs, 1u);
    weft_atomic_init(&p->clones, 0u);
    weft_atomic_init(&p->wakes_after, 0u);
    weft__spin_init(&p->lock);
    p->target.ops = NULL;
    p->target.data = NULL;
    p->dropped = false;
    return p;
}

static void probe_release(struct probe *p)
{
    /* AcqRel: the last release sees every other holder's use of the probe
     * before it frees it (the usual reference count). */
    if (weft_atomic_fetch_sub_acq_rel(&p->refs, 1u) != 1u)
        return;
    weft_waker_drop(&p->target); /* empty unless the driver never ran */
    weft__free(p);
}

/* Forward a wake to the task, or count it when the future is gone. The
 * task's waker is cloned under the lock and woken outside it: waking may
 * cancel and drop the driver (a wake after shutdown), which takes the
 * lock. */
static void probe_notify(struct probe *p)
{
    weft__spin_lock(&p->lock);
    weft_waker t = p->dropped ? (weft_waker)WEFT_WAKER_EMPTY : weft_waker_clone(&p->target);
    bool after = p->dropped;
    weft__spin_unlock(&p->lock);
    if (after)
        /* Relaxed: a counter, read once the run is over. */
        weft_atomic_fetch_add_relaxed(&p->wakes_after, 1u);
    else
        weft_waker_wake(&t);
}

static void probe_let_go(struct probe *p)
{
    /* Relaxed: a count read after the run; the reference below orders the
     * free. */
    weft_atomic_fetch_sub_relaxed(&p->clones, 1u);
    probe_release(p);
}

static weft_waker probe_clone(const void *data)
{
    struct probe *p = (struct probe *)data;
    /* Relaxed: the caller holds a reference (the waker it clones), so the
     * count cannot reach zero meanwhile. */
    weft_atomic_fetch_add_relaxed(&p->refs, 1u);
    weft_atomic_fetch_add_relaxed(&p->clones, 1u);
    weft_waker w = { &probe_ops, p };
    return w;
}

static void probe_wake(void *data)
{
    probe_notify(data);
    probe_let_go(data);
}

static void probe_wake_by_ref(const void *data)
{
    probe_notify((struct probe *)data);
}

static void probe_drop(void *data)
{
    probe_let_go(data);
}

static const weft_waker_ops probe_ops = {
    .clone = probe_clone,
    .wake = probe_wake,
    .wake_by_ref = probe_wake_by_ref,
    .drop = probe_drop,
};

/* Forward to `task` from now on (the driver's first turn). */
static void probe_aim(struct probe *p, const weft_waker *task)
{
    weft_waker t = weft_waker_clone(task);
    weft__spin_lock(&p->lock);
    weft_waker old = p->target;
    p->target = t;
    weft__spin_unlock(&p->lock);
    weft_waker_drop(&old);
}

/* The future was dropped: wakes are counted, not forwarded, from now on,
 * and the task's waker goes (the task may be freed once it completes). */
static void probe_disarm(struct probe *p)
{
    weft__spin_lock(&p->lock);
    p->dropped = true;
    weft_waker t = p->target;
    p->target.ops = NULL;
    p->target.data = NULL;
    weft__spin_unlock(&p->lock);
    weft_waker_drop(&t);
}

static uint32_t probe_clones(struct probe *p)
{
    /* Acquire: a clone dropped on another thread is seen as gone along
     * with what its holder did before. */
    return weft_atomic_load_acquire(&p->clones);
}

/* ---- one run ---------------------------------------------------------------------- */

/* One run, shared by the sweep and the driver task. */
struct run {
    const weft_sweep_case *c;
    weft_rt *rt;
    int build_rc;     /* build's result, or -EINVAL for what it gave */
    bool built;       /* build was called */
    bool build_ok;    /* ... and returned 0: teardown follows */
    weft_future *fut; /* the future under test (the caller's memory) */
    void *out;
    const char *name; /* its name, read before it was ever polled */
    uint32_t k;       /* drop after this many polls (COUNT: until READY) */
    uint32_t max_polls;
    uint32_t polls;   /* polls made */
    bool completed;   /* fut returned READY */
    bool dropped;     /* the driver dropped fut: after k polls, or READY */
    bool cancelled;   /* the driver's task was cancelled first */
    struct probe *probe;
    weft_waker pw;    /* the probe, as the waker fut is polled with */
    uint32_t wakers_after_drop;
    uint64_t timers_after_drop;
    char report[8192]; /* the sim's report of this run, if it made one */
};

typedef struct driver {
    weft_future base;
    /* Read by dumps only: `awaiting` is the future under test while it
     * lives; `line` stays 0 (the driver is no coroutine: no resume point). */
    weft_co co;
    struct run *run;
} driver;

/* The driver's first turn: build the scenario inside the run, where
 * weft_now() is the sim's clock and spawns land on the sim. Returns
 * false when there is nothing to poll (build_rc says why). */
static bool driver_build(driver *d, const weft_cx *cx)
{
    struct run *r = d->run;
    weft_future *fut = NULL;
    void *out = NULL;
    r->built = true;
    r->build_rc = r->c->build(r->rt, r->c->ctx, &fut, &out);
    if (r->build_rc)
        return false;
    r->build_ok = true;
    if (!weft__future_well_formed(fut)) {
        WEFT_MISUSE("weft_cancel_sweep: build gave no future, or a malformed one");
        r->build_rc = -EINVAL;
        return false;
    }
    if (!out && weft_future_out_size(fut) > 0) {
        WEFT_MISUSE("weft_cancel_sweep: build gave no room for the output of '%s'",
                    weft__future_name(fut));
        r->build_rc = -EINVAL;
        weft_future_drop(fut); /* never polled */
        return false;
    }
    r->fut = fut;
    r->out = out;
    r->name = weft__future_name(fut);
    d->co.awaiting = fut;
    probe_aim(r->probe, cx->waker);
    return true;
}

/* Drop the future under test; with `counts`, note what is left right
 * after. */
static void driver_let_go(driver *d, bool counts)
{
    struct run *r = d->run;
    d->co.awaiting = NULL;
    weft_future_drop(r->fut);
    r->dropped = true;
    probe_disarm(r->probe);
    r->wakers_after_drop = probe_clones(r->probe);
    weft_rt_counts c;
    if (counts && weft_rt_count(r->rt, &c) == 0)
        r->timers_after_drop = c.timers;
}

static weft_poll driver_poll(weft_future *f, weft_cx *cx, void *out)
{
    driver *d = (driver *)f;
    struct run *r = d->run;
    (void)out;
    if (!r->built && !driver_build(d, cx))
        return WEFT_READY;
    if (r->polls < r->k && r->polls < r->max_polls) {
        weft_cx pcx = *cx;
        pcx.waker = &r->pw;
        weft_poll p = weft_future_poll(r->fut, &pcx, r->out);
        cx->budget = pcx.budget; /* the task's turn is one turn */
        r->polls++;
        if (p == WEFT_READY)
            r->completed = true;
        else if (r->polls < r->k && r->polls < r->max_polls)
            return WEFT_PENDING; /* fut arranged for the probe to be woken */
    }
    driver_let_go(d, true);
    return WEFT_READY;
}

static void driver_drop(weft_future *f)
{
    driver *d = (driver *)f;
    if (!d->run->fut || d->run->dropped)
        return;
    /* Cancelled before its k-th poll: a stall, the time limit. */
    d->run->cancelled = true;
    driver_let_go(d, false);
}

static const weft_future_ops driver_ops = {
    .name = "weft_cancel_sweep", .out_size = 0, .poll = driver_poll, .drop = driver_drop,
};

/* snprintf for messages that may be cut short: a report longer than its
 * buffer (a stall naming many tasks) loses its end, nothing else. */
__attribute__((format(printf, 3, 4))) static void say(char *dst, size_t size, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, size, fmt, ap);
    va_end(ap);
}

static void capture_report(const char *msg, void *arg)
{
    struct run *r = arg;
    say(r->report, sizeof r->report, "%s", msg);
}

/* ---- the sweep ---------------------------------------------------------------------- */

struct sweep {
    const weft_sweep_case *c;
    weft_sweep_options o;
    weft_sweep_result res;
};

/* Record the failure of run `r`, `why`, and report it: at poll `k` of
 * the counting run (`n` unknown: 0), or of a run of k < N. */
static void fail(struct sweep *sw, const struct run *r, uint64_t seed, uint32_t k, uint32_t n,
                 const char *why)
{
    weft_sweep_result *res = &sw->res;
    res->failed = true;
    res->k = k;
    res->seed = seed;
    res->polls = n ? n : k;
    say(res->message, sizeof res->message, "%s", why);
    char where[96];
    if (n)
        say(where, sizeof where, "k=%" PRIu32 " of N=%" PRIu32, k, n);
    else
        say(where, sizeof where, "poll %" PRIu32 " of the counting run", k);
    char msg[sizeof res->message + 256];
    say(msg, sizeof msg,
        "weft sweep: '%s' failed at %s, seed=%" PRIu64 ": %s\n"
        "weft sweep: replay with WEFT_SEED=%" PRIu64,
        r->name, where, seed, res->message, seed);
    weft__sim_report(&sw->o.sim, msg);
}

/* What went wrong in a run that is over (`ran`: weft_sim_run's result),
 * written to `why`; "" when nothing did. A counting run sets `*n`. */
static void judge(struct run *r, int ran, uint32_t *n, char *why, size_t size)
{
    why[0] = '\0';
    if (r->k == COUNT) {
        if (!r->completed && !r->cancelled && r->polls >= r->max_polls)
            say(why, size, "the future did not complete in %" PRIu32 " polls (max_polls)",
                r->max_polls);
        else if (!r->completed)
            say(why, size, "the future never completed; the sim said:\n%s", r->report);
        else if (ran != 0)
            say(why, size,
                "it completed, but then the rest of the scenario did not finish; the "
                "sim said:\n%s", r->report);
        if (r->completed)
            *n = r->polls;
        return;
    }
    if (r->completed || r->cancelled || r->polls < r->k)
        say(why, size,
            "diverged from the counting run of its seed: the future %s after %" PRIu32
            " poll(s), where it needed %" PRIu32 " (the scenario depends on more than "
            "the seed: global state, the wall clock, another thread)",
            r->completed ? "completed" : "stalled", r->polls, *n);
    else if (ran != 0)
        say(why, size,
            "after the drop, the rest of the scenario did not finish; the sim "
            "said:\n%s", r->report);
}

/* One run of `k` (COUNT: the counting run, which sets `*n`). Returns 0
 * (passed), -EPROTO (failed: sw->res says how), or an error. */
static int one_run(struct sweep *sw, uint64_t seed, uint32_t k, uint32_t max_polls, uint32_t *n)
{
    const weft_sweep_case *c = sw->c;
    char why[sizeof sw->res.message];
    /* On the heap: with its report, too large for some stacks. */
    struct run *r = weft__calloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    r->c = c;
    r->k = k;
    r->max_polls = max_polls;
    r->probe = probe_new();
    weft_sim_options so = sw->o.sim;
    so.seed = seed;
    so.report = capture_report;
    so.report_arg = r;
    int rc = r->probe ? weft_rt_new_sim(&r->rt, &so) : -ENOMEM;
    if (rc) {
        if (r->probe)
            probe_release(r->probe);
        weft__free(r);
        return rc;
    }
    r->pw.ops = &probe_ops;
    r->pw.data = r->probe;

    /* Send: the sim polls it on its one thread, whatever the future under
     * test is. */
    driver d;
    weft_future_init(&d.base, &driver_ops, WEFT_F_SEND);
    d.base.flags |= WEFT__F_CO_AT(driver);
    weft_co_init(&d.co);
    d.run = r;
    rc = weft_spawn(r->rt, &d.base, sizeof d, NULL);
    int ran = rc ? rc : weft_sim_run(r->rt);
    if (rc == 0 && r->build_rc)
        rc = r->build_rc;
    if (rc == 0) {
        sw->res.runs++;
        judge(r, ran, n, why, sizeof why);
        if (why[0]) {
            fail(sw, r, seed, r->polls, r->completed || k != COUNT ? *n : 0, why);
            rc = -EPROTO;
        } else if (c->check) {
            weft_sweep_run info = {
                .seed = seed,
                .k = r->polls,
                .polls = *n,
                .completed = r->completed,
                .wakers_after_drop = r->wakers_after_drop,
                .timers_after_drop = r->timers_after_drop,
                /* Relaxed: a counter; the run is over. */
                .wakes_after_drop = weft_atomic_load_relaxed(&r->probe->wakes_after),
            };
            const char *msg = c->check(r->rt, c->ctx, &info);
            if (msg) {
                fail(sw, r, seed, info.k, *n, msg);
                rc = -EPROTO;
            }
        }
    }
    if (r->build_ok && c->teardown)
        c->teardown(c->ctx);
    weft_rt_shutdown(r->rt);
    uint32_t left = probe_clones(r->probe);
    if (rc == 0 && left > 0) {
        say(why, sizeof why,
            "%" PRIu32 " clone(s) of its waker were still held after teardown: a "
            "registration its drop did not take back, which nothing will release",
            left);
        fail(sw, r, seed, r->polls, *n, why);
        rc = -EPROTO;
    }
    probe_release(r->probe);
    weft__free(r);
    return rc;
}

int weft_cancel_sweep(const weft_sweep_case *c, const weft_sweep_options *opts,
                      weft_sweep_result *result)
{
    struct sweep sw;
    memset(&sw, 0, sizeof sw);
    sw.c = c;
    sw.o = (weft_sweep_options)WEFT_SWEEP_OPTIONS_INIT;
    if (opts)
        sw.o = *opts;
    if (result)
        *result = sw.res;
    if (!c || !c->build) {
        WEFT_MISUSE("weft_cancel_sweep: %s is NULL", c ? "the case's build" : "the case");
        return -EINVAL;
    }
    if (weft__sim_chaos_check(&sw.o.sim) != 0)
        return -EINVAL;
    uint64_t first = sw.o.sim.seed;
    int env = weft__sim_env_seed(&first);
    if (env < 0)
        return env;
    if (weft_rt_current()) {
        WEFT_MISUSE("weft_cancel_sweep inside a runtime (on a worker, or in a future "
                    "that weft_block_on or a sim runs) would block it");
        return -EDEADLK;
    }
    uint32_t seeds = env > 0 || sw.o.seeds == 0 ? 1u : sw.o.seeds;
    uint32_t max_polls = sw.o.max_polls ? sw.o.max_polls : WEFT_SWEEP_MAX_POLLS;
    if (max_polls == COUNT)
        max_polls--; /* COUNT means "until READY" */
    int rc = 0;
    for (uint32_t i = 0; i < seeds && rc == 0; i++) {
        uint64_t seed = first + i;
        uint32_t n = 0;
        sw.res.seeds++;
        rc = one_run(&sw, seed, COUNT, max_polls, &n);
        if (rc == 0 && n > sw.res.polls)
            sw.res.polls = n;
        for (uint32_t k = 0; k < n && rc == 0; k++)
            rc = one_run(&sw, seed, k, max_polls, &n);
    }
    if (result)
        *result = sw.res;
    return rc;
}
