/* Unit tests for testing/sim.c, the deterministic runtime: the runtime
 * API on it (spawn from inside and outside tasks and from another thread,
 * spawn_local, join, abort, detach, yield, block_on, sleep, timeout,
 * interval, stats, shutdown), the seeded order (not FIFO; one seed, one
 * order), virtual time (a ten-minute sleep is one clock jump, and the clock
 * moves only when nothing is runnable), WEFT_SEED, stall and time-limit
 * reports naming the blocked tasks and where each waits, outside holds,
 * and refusals.
 *
 * Everything runs on the test thread (the sim's thread) except where a
 * test starts a thread on purpose. No timing: virtual time is exact, and
 * "no wall sleeping" is asserted as "the sim never parked". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/co_steps.h"
#include "support/countdown.h"
#include "support/downcast.h"
#include "support/gate.h"
#include "support/never.h"
#include "support/poll.h"
#include "support/sim.h"
#include "support/wait.h"

/* ---- futures ------------------------------------------------------------------------- */

/* Appends its id to g_log at its first poll, yields `yields` times, and
 * answers its id. */
#define LOG_MAX 64
static int g_log[LOG_MAX];
static int g_nlog;

typedef struct logger {
    weft_future base;
    weft_co co;
    int id, yields, i;
} logger;

WEFT_ASYNC_FN(logger, int)
{
    WEFT_FN_BEGIN;
    if (g_nlog < LOG_MAX)
        g_log[g_nlog++] = self->id;
    for (self->i = 0; self->i < self->yields; self->i++)
        WEFT_FN_YIELD;
    WEFT_FN_RETURN(self->id);
    WEFT_FN_END;
}

/* Spawns `n` loggers from outside any task, with join handles in `j`. */
static void spawn_loggers(weft_rt *rt, weft_join *j, int n, int yields)
{
    g_nlog = 0;
    for (int i = 0; i < n; i++)
        assert_int_equal(WEFT_SPAWN(rt, &j[i],
                                    &(logger){ WEFT_FN_INIT(logger, WEFT_F_SEND), .id = i,
                                               .yields = yields }),
                         0);
}

/* Sleeps `d`, noting weft_now() before and after. */
typedef struct nap {
    weft_future base;
    weft_co co;
    weft_sleep s;
    weft_duration d;
    weft_instant before, after;
} nap;

WEFT_ASYNC_FN_VOID(nap)
{
    WEFT_FN_BEGIN;
    self->before = weft_now();
    weft_sleep_init(&self->s, self->d);
    WEFT_FN_AWAIT(&self->s, NULL);
    self->after = weft_now();
    WEFT_FN_END;
}

/* Spawns a `never` and waits for it: blocked for good. */
typedef struct waits_forever {
    weft_future base;
    weft_co co;
    never nv;
    countdown_counts *n;
    weft_join j;
    int out;
} waits_forever;

static int g_waits_forever_line; /* the line of its await */

WEFT_ASYNC_FN(waits_forever, int)
{
    WEFT_FN_BEGIN;
    never_init(&self->nv, self->n, WEFT_F_SEND);
    if (weft_spawn(NULL, &self->nv.base, sizeof self->nv, &self->j) != 0)
        WEFT_FN_RETURN(-1);
    g_waits_forever_line = __LINE__ + 1;
    WEFT_FN_AWAIT(&self->j, &self->out);
    WEFT_FN_RETURN(self->j.status);
    WEFT_FN_END;
}

/* A gated future (support/gate.h) that notes its first poll, so another
 * thread can tell the sim is running it. */
typedef struct noted {
    weft_future base;
    gated in;
    _Atomic bool polled;
} noted;

static weft_poll noted_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(noted, self);
    /* Release: nothing to publish but the fact; pairs with WAIT_UNTIL's
     * acquire load. */
    weft_atomic_store_release(&self->polled, true);
    return weft_future_poll(&self->in.base, cx, out);
}

static const weft_future_ops noted_ops = { "noted", sizeof(int), noted_poll, NULL, NULL };

static void noted_init(noted *n, gate *g, int value)
{
    weft_future_init(&n->base, &noted_ops, WEFT_F_SEND);
    n->in = gated_make(g, value);
    weft_atomic_init(&n->polled, false);
}

/* ---- the runtime API on the sim --------------------------------------------------------- */

static void test_sim_block_on_runs_spawns_and_joins(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(1);
    weft_rt *rt = sim_start(&o);
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 3, 42, WEFT_F_SEND);
    int out = 0;
    assert_int_equal(weft_block_on(rt, &c.base, &out, sizeof out), 0);
    assert_int_equal(out, 42);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 4);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
    /* It ran with the sim as the current runtime, on no worker. */
    assert_ptr_equal(weft_atomic_load_relaxed(&n.seen_rt), rt);
    assert_int_equal(weft_atomic_load_relaxed(&n.seen_worker), -1);
    assert_null(weft_rt_current());
    weft_rt_shutdown(rt);
}

/* Spawns `n` countdowns from inside a task and sums their outputs. */
typedef struct fan {
    weft_future base;
    weft_co co;
    weft_join j[8];
    int n, i, one, sum;
} fan;

static void fan_drop(weft_future *f)
{
    fan *self = (fan *)f;
    for (int i = 0; i < self->n; i++)
        if (self->j[i].task && self->co.awaiting != &self->j[i].base)
            weft_future_drop(&self->j[i].base);
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_WITH_DROP(fan, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        countdown c;
        countdown_init(&c, self->i, self->i + 1, NULL, WEFT_F_SEND);
        if (weft_spawn(NULL, &c.base, sizeof c, &self->j[self->i]) != 0)
            WEFT_FN_RETURN(-1);
    }
    for (self->i = 0; self->i < self->n; self->i++) {
        WEFT_FN_AWAIT(&self->j[self->i], &self->one);
        self->sum += self->one;
    }
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

static void test_sim_spawn_from_a_task(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(2);
    weft_rt *rt = sim_start(&o);
    fan f = { WEFT_FN_INIT(fan, WEFT_F_SEND), .n = 8 };
    int sum = 0;
    assert_int_equal(weft_block_on(rt, &f.base, &sum, sizeof sum), 0);
    assert_int_equal(sum, 36);
    weft_rt_shutdown(rt);
}

static void test_sim_spawn_from_outside_then_run(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(3);
    weft_rt *rt = sim_start(&o);
    weft_join j[6];
    spawn_loggers(rt, j, 6, 2);
    assert_int_equal(g_nlog, 0); /* nothing runs until the sim is driven */
    assert_int_equal(weft_sim_run(rt), 0);
    assert_int_equal(g_nlog, 6);
    for (int i = 0; i < 6; i++) {
        int out = -1;
        assert_true(weft_join_is_finished(&j[i]));
        assert_int_equal(poll_noop(&j[i].base, &out), WEFT_READY);
        assert_int_equal(out, i);
        weft_future_drop(&j[i].base);
    }
    assert_int_equal(weft_sim_run(rt), 0); /* nothing left: returns at once */
    weft_rt_shutdown(rt);
}

static void test_sim_abort_and_detach(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(4);
    weft_rt *rt = sim_start(&o);
    countdown_counts nn, cn;
    never nv;
    never_start(&nv, &nn, WEFT_F_SEND);
    weft_join jn, jc;
    assert_int_equal(weft_spawn(rt, &nv.base, sizeof nv, &jn), 0);
    countdown c;
    countdown_start(&c, &cn, 2, 5, WEFT_F_SEND);
    assert_int_equal(weft_spawn(rt, &c.base, sizeof c, &jc), 0);
    weft_join_detach(&jc);
    weft_join_abort(&jn);
    assert_int_equal(weft_sim_run(rt), 0);
    /* The aborted task never ran; its future was dropped. */
    assert_int_equal(weft_atomic_load_relaxed(&nn.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&nn.drops), 1);
    int out = 1;
    assert_int_equal(poll_noop(&jn.base, &out), WEFT_READY);
    assert_int_equal(jn.status, -ECANCELED);
    weft_future_drop(&jn.base);
    /* The detached one ran to the end. */
    assert_int_equal(weft_atomic_load_relaxed(&cn.polls), 3);
    assert_int_equal(weft_atomic_load_relaxed(&cn.drops), 1);
    weft_rt_shutdown(rt);
}

/* Spawns a non-Send countdown with weft_spawn_local and joins it. */
typedef struct local_parent {
    weft_future base;
    weft_co co;
    weft_join j;
    int rc, out;
} local_parent;

WEFT_ASYNC_FN(local_parent, int)
{
    WEFT_FN_BEGIN;
    countdown c;
    countdown_init(&c, 2, 9, NULL, 0);
    self->rc = weft_spawn_local(&c.base, sizeof c, &self->j);
    if (self->rc != 0)
        WEFT_FN_RETURN(self->rc);
    WEFT_FN_AWAIT(&self->j, &self->out);
    WEFT_FN_RETURN(self->out);
    WEFT_FN_END;
}

static void test_sim_spawn_local_from_its_tasks_only(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(5);
    weft_rt *rt = sim_start(&o);
    local_parent p = { WEFT_FN_INIT(local_parent, 0) };
    int out = 0;
    assert_int_equal(weft_block_on(rt, &p.base, &out, sizeof out), 0);
    assert_int_equal(out, 9);
    /* Outside its tasks there is no runtime to spawn a local task on. */
    countdown c;
    countdown_init(&c, 0, 1, NULL, 0);
    int before = misuse_count();
    assert_int_equal(weft_spawn_local(&c.base, sizeof c, NULL), -EPERM);
    assert_misuse_since(before, 1, "test_countdown");
    weft_rt_shutdown(rt);
}

static void test_sim_rt_stats_show_one_thread(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(6);
    weft_rt *rt = sim_start(&o);
    weft_join j[4];
    spawn_loggers(rt, j, 4, 3);
    assert_int_equal(weft_sim_run(rt), 0);
    for (int i = 0; i < 4; i++)
        weft_future_drop(&j[i].base);
    weft_worker_stats ws[2];
    unsigned n = 2;
    assert_int_equal(weft_rt_stats(rt, ws, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ws[0].polls, 16);
    assert_int_equal(ws[0].polls, sim_stats(rt).polls);
    assert_int_equal(ws[0].parks, 0);
    assert_int_equal(ws[0].queue_depth, 0);
    weft_rt_shutdown(rt);
}

/* ---- the seeded order ------------------------------------------------------------------ */

/* The order in which 8 tasks spawned in order 0..7 were first polled. */
static void first_poll_order(uint64_t seed, int *order)
{
    weft_sim_options o = sim_options(seed);
    weft_rt *rt = sim_start(&o);
    weft_join j[8];
    spawn_loggers(rt, j, 8, 1);
    assert_int_equal(weft_sim_run(rt), 0);
    for (int i = 0; i < 8; i++)
        weft_future_drop(&j[i].base);
    assert_int_equal(g_nlog, 8);
    memcpy(order, g_log, 8 * sizeof *order);
    weft_rt_shutdown(rt);
}

static void test_sim_order_is_seeded_not_fifo(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    int first[8], order[8], again[8];
    first_poll_order(0, first);
    int fifo_runs = 0, differ = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        first_poll_order(seed, order);
        first_poll_order(seed, again);
        /* One seed, one order. */
        assert_memory_equal(order, again, sizeof order);
        bool fifo = true;
        for (int i = 0; i < 8; i++)
            fifo = fifo && order[i] == i;
        fifo_runs += fifo;
        differ += memcmp(order, first, sizeof order) != 0;
    }
    /* FIFO would be 1 in 8! = 40320 for a uniform order. */
    assert_int_equal(fifo_runs, 0);
    assert_true(differ >= 15);
}

/* ---- virtual time ----------------------------------------------------------------------- */

static void test_sim_ten_minute_sleep_is_one_clock_jump(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(7);
    weft_rt *rt = sim_start(&o);
    nap n = { WEFT_FN_INIT(nap, WEFT_F_SEND), .d = WEFT_SEC(600) };
    assert_int_equal(weft_block_on(rt, &n.base, NULL, 0), 0);
    assert_int_equal(n.before, WEFT_SIM_START);
    assert_int_equal(n.after - n.before, WEFT_SEC(600));
    weft_sim_stats st = sim_stats(rt);
    assert_int_equal(st.now, WEFT_SIM_START + WEFT_SEC(600));
    assert_int_equal(st.clock_jumps, 1); /* cascades of the wheel included */
    assert_int_equal(st.outside_waits, 0); /* the thread never slept */
    /* Outside a run, weft_now() is the monotonic clock again. */
    assert_true(weft_now() != st.now);
    weft_rt_shutdown(rt);
}

/* Arms a 5 s sleep, drops it (which unlinks its timer), then waits for
 * something that never comes. */
typedef struct changed_mind {
    weft_future base;
    weft_sleep sleep;
    bool armed;
} changed_mind;

static weft_poll changed_mind_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(changed_mind, self);
    (void)out;
    if (!self->armed) {
        self->armed = true;
        weft_sleep_init(&self->sleep, WEFT_SEC(5));
        if (weft_future_poll(&self->sleep.base, cx, NULL) == WEFT_READY)
            return WEFT_READY;
        weft_future_drop(&self->sleep.base);
    }
    return WEFT_PENDING;
}

static const weft_future_ops changed_mind_ops = {
    "changed_mind", 0, changed_mind_poll, NULL, NULL,
};

/* The clock moves only to a timer that is still armed: with the dropped
 * sleep's deadline still counted, the stall below was found 5 virtual
 * seconds late (the wheels' next-due hints are not raised by a cancel). */
static void test_sim_clock_skips_a_cancelled_timer(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(8);
    weft_rt *rt = sim_start(&o);
    changed_mind c = { .armed = false };
    weft_future_init(&c.base, &changed_mind_ops, WEFT_F_SEND);
    assert_int_equal(weft_block_on(rt, &c.base, NULL, 0), -EDEADLK);
    assert_true(sim_report_contains("changed_mind"));
    weft_sim_stats st = sim_stats(rt);
    assert_int_equal(st.now, WEFT_SIM_START);
    assert_int_equal(st.clock_jumps, 0);
    weft_rt_shutdown(rt);
}

/* Yields `n` times, noting whether weft_now() ever moved meanwhile, and
 * whether the napper finished before it did. */
static bool g_napper_done;

typedef struct busy {
    weft_future base;
    weft_co co;
    int n, i;
    weft_instant start;
    bool clock_moved, napper_done_first;
} busy;

WEFT_ASYNC_FN_VOID(busy)
{
    WEFT_FN_BEGIN;
    self->start = weft_now();
    for (self->i = 0; self->i < self->n; self->i++) {
        WEFT_FN_YIELD;
        self->clock_moved = self->clock_moved || weft_now() != self->start;
    }
    self->napper_done_first = g_napper_done;
    WEFT_FN_END;
}

typedef struct napper {
    weft_future base;
    weft_co co;
    weft_sleep s;
} napper;

WEFT_ASYNC_FN_VOID(napper)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->s, WEFT_MS(1));
    WEFT_FN_AWAIT(&self->s, NULL);
    g_napper_done = true;
    WEFT_FN_END;
}

static void test_sim_clock_moves_only_when_nothing_is_runnable(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(8);
    weft_rt *rt = sim_start(&o);
    g_napper_done = false;
    assert_int_equal(WEFT_SPAWN(rt, NULL, &(napper){ WEFT_FN_INIT(napper, WEFT_F_SEND) }), 0);
    busy b = { WEFT_FN_INIT(busy, WEFT_F_SEND), .n = 200 };
    assert_int_equal(weft_block_on(rt, &b.base, NULL, 0), 0);
    assert_false(b.clock_moved);
    assert_false(b.napper_done_first); /* 1 ms never passed while it ran */
    assert_false(g_napper_done);
    assert_int_equal(weft_sim_run(rt), 0);
    assert_true(g_napper_done);
    assert_int_equal(sim_elapsed(rt), WEFT_MS(1));
    weft_rt_shutdown(rt);
}

/* Waits on `inner` (a never) with a 100 ms timeout, then on a countdown
 * with a 1 s one. Output: the two statuses. */
typedef struct timeouts {
    weft_future base;
    weft_co co;
    never nv;
    countdown cd;
    weft_timeout t;
    countdown_counts n;
    int nv_out, cd_out, status[2];
    weft_duration at_first;
} timeouts;

WEFT_ASYNC_FN_VOID(timeouts)
{
    WEFT_FN_BEGIN;
    never_start(&self->nv, &self->n, WEFT_F_SEND);
    if (weft_timeout_init(&self->t, &self->nv.base, WEFT_MS(100)) != 0)
        WEFT_FN_RETURN_VOID;
    WEFT_FN_AWAIT(&self->t, &self->nv_out);
    self->status[0] = self->t.status;
    self->at_first = weft_now() - WEFT_SIM_START;
    countdown_init(&self->cd, 3, 11, NULL, WEFT_F_SEND);
    if (weft_timeout_init(&self->t, &self->cd.base, WEFT_SEC(1)) != 0)
        WEFT_FN_RETURN_VOID;
    WEFT_FN_AWAIT(&self->t, &self->cd_out);
    self->status[1] = self->t.status;
    WEFT_FN_END;
}

static void test_sim_timeout_fires_at_its_virtual_deadline(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(9);
    weft_rt *rt = sim_start(&o);
    timeouts t = { WEFT_FN_INIT(timeouts, WEFT_F_SEND) };
    assert_int_equal(weft_block_on(rt, &t.base, NULL, 0), 0);
    assert_int_equal(t.status[0], -ETIMEDOUT);
    assert_int_equal(t.at_first, WEFT_MS(100));
    assert_int_equal(weft_atomic_load_relaxed(&t.n.drops), 1);
    assert_int_equal(t.status[1], 0);
    assert_int_equal(t.cd_out, 11);
    assert_int_equal(sim_elapsed(rt), WEFT_MS(100)); /* the 1 s timer never fired */
    weft_rt_shutdown(rt);
}

/* Takes 5 ticks of a 250 ms interval, noting each. */
typedef struct ticks {
    weft_future base;
    weft_co co;
    weft_interval iv;
    weft_instant at[5];
    int i, rc;
} ticks;

static weft_poll ticks_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(ticks, self);
    (void)out;
    WEFT_CO_BEGIN(&self->co);
    if (weft_interval_init(&self->iv, WEFT_MS(250), WEFT_MISSED_BURST) != 0)
        WEFT_CO_RETURN(&self->co);
    for (self->i = 0; self->i < 5; self->i++)
        CO_NEXT(&self->co, cx, &self->iv.base, &self->at[self->i], self->rc);
    weft_stream_drop(&self->iv.base);
    WEFT_CO_RETURN(&self->co);
    WEFT_CO_END(&self->co);
}

static const weft_future_ops ticks_ops = { "ticks", 0, ticks_poll, NULL, NULL };

static void test_sim_interval_ticks_on_virtual_time(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(10);
    weft_rt *rt = sim_start(&o);
    ticks t;
    memset(&t, 0, sizeof t);
    weft_future_init(&t.base, &ticks_ops, WEFT_F_SEND);
    assert_int_equal(weft_block_on(rt, &t.base, NULL, 0), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(t.at[i], WEFT_SIM_START + (weft_duration)i * WEFT_MS(250));
    assert_int_equal(sim_elapsed(rt), WEFT_MS(1000));
    weft_rt_shutdown(rt);
}

/* ---- WEFT_SEED -------------------------------------------------------------------------- */

/* Sets WEFT_SEED to `value` (NULL: unset). */
static void env_seed_put(const char *value)
{
    if (value)
        setenv("WEFT_SEED", value, 1);
    else
        unsetenv("WEFT_SEED");
}

/* env_seed_put, returning the old value to put back with
 * env_seed_restore. */
static char *env_seed_set(const char *value)
{
    const char *old = getenv("WEFT_SEED");
    char *saved = old ? strdup(old) : NULL;
    env_seed_put(value);
    return saved;
}

static void env_seed_restore(char *saved)
{
    env_seed_put(saved);
    free(saved);
}

static void test_sim_weft_seed_overrides_every_seed(void **state)
{
    (void)state;
    char *saved = env_seed_set("1234");
    int a[8], b[8];
    first_poll_order(1, a);
    first_poll_order(99, b);
    assert_memory_equal(a, b, sizeof a); /* both ran with seed 1234 */
    weft_sim_options o = sim_options(5);
    weft_rt *rt = sim_start(&o);
    assert_int_equal(sim_stats(rt).seed, 1234);
    weft_rt_shutdown(rt);

    env_seed_put("0x10");
    rt = sim_start(&o);
    assert_int_equal(sim_stats(rt).seed, 16);
    weft_rt_shutdown(rt);

    const char *bad[] = { "x", "12abc", "-1", "99999999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        env_seed_put(bad[i]);
        rt = (weft_rt *)&o;
        int before = misuse_count();
        assert_int_equal(weft_rt_new_sim(&rt, &o), -EINVAL);
        assert_null(rt);
        assert_misuse_since(before, 1, "WEFT_SEED");
    }
    env_seed_restore(saved);
}

/* ---- stalls and limits ------------------------------------------------------------------- */

static void test_sim_stall_names_the_blocked_tasks_and_the_seed(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed(); /* it checks its seed in the report */
    weft_sim_options o = sim_options(42);
    weft_rt *rt = sim_start(&o);
    countdown_counts n;
    countdown_counts_init(&n);
    waits_forever w = { WEFT_FN_INIT(waits_forever, WEFT_F_SEND), .n = &n };
    int out = 0;
    assert_int_equal(weft_block_on(rt, &w.base, &out, sizeof out), -EDEADLK);
    assert_int_equal(g_sim_reports, 1);
    assert_true(sim_report_contains("stall"));
    assert_true(sim_report_contains("2 blocked task(s)"));
    assert_true(sim_report_contains("\n  'never'\n"));
    /* Where it waits: the line of its await, and what it awaits. */
    char want[128];
    snprintf(want, sizeof want,
             "'waits_forever' (the future given to weft_block_on) at waits_forever:%d > "
             "weft_join\n",
             g_waits_forever_line);
    assert_true(sim_report_contains(want));
    assert_true(sim_report_contains("seed=42; replay with WEFT_SEED=42"));
    /* Both were cancelled: the never's future is gone, and the caller's
     * future was dropped (block_on owns it). */
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
    assert_null(w.co.awaiting);
    weft_rt_shutdown(rt);
}

/* Await chains in stall reports: a spawned coroutine waiting in a
 * coroutine it awaits, which waits on a future that never finishes; and a
 * chain deeper than a dump keeps. */
static int g_nest_line; /* the line of its await of the next level */

typedef struct nest {
    weft_future base;
    weft_co co;
    int level, depth;
    struct nest *child; /* the next level, heap: a struct cannot hold itself */
    never nv;
    countdown_counts *n;
} nest;

static void nest_drop(weft_future *f);

WEFT_ASYNC_FN_VOID_WITH_DROP(nest)
{
    WEFT_FN_BEGIN;
    if (self->level + 1 < self->depth) {
        self->child = malloc(sizeof *self->child);
        if (!self->child)
            WEFT_FN_RETURN_VOID;
        *self->child = (nest){ WEFT_FN_INIT(nest, WEFT_F_SEND), .level = self->level + 1,
                               .depth = self->depth, .n = self->n };
        g_nest_line = __LINE__ + 1;
        WEFT_FN_AWAIT(self->child, NULL);
    } else {
        never_init(&self->nv, self->n, WEFT_F_SEND);
        WEFT_FN_AWAIT(&self->nv, NULL);
    }
    WEFT_FN_END;
}

static void nest_drop(weft_future *f)
{
    nest *self = (nest *)f;
    weft_co_drop(&self->co); /* drops the child, which frees its own */
    free(self->child);
    self->child = NULL;
}

static void test_sim_stall_report_shows_where_each_task_waits(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(45);
    weft_rt *rt = sim_start(&o);
    countdown_counts n;
    countdown_counts_init(&n);
    /* Two levels: the first awaits the second, which awaits a never. */
    assert_int_equal(WEFT_SPAWN(rt, NULL, &(nest){ WEFT_FN_INIT(nest, WEFT_F_SEND), .depth = 2,
                                                  .n = &n }),
                     0);
    assert_int_equal(weft_sim_run(rt), -EDEADLK);
    char want[160];
    assert_true(sim_report_contains("1 blocked task(s) cancelled:\n  'nest' at nest:"));
    snprintf(want, sizeof want, "'nest' at nest:%d > nest:%d > never\n", g_nest_line,
             g_nest_line + 3);
    assert_true(sim_report_contains(want));
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);

    /* Deeper than WEFT_TASK_AWAIT_MAX frames: the first four are named. */
    assert_int_equal(WEFT_SPAWN(rt, NULL, &(nest){ WEFT_FN_INIT(nest, WEFT_F_SEND), .depth = 6,
                                                  .n = &n }),
                     0);
    assert_int_equal(weft_sim_run(rt), -EDEADLK);
    snprintf(want, sizeof want, "'nest' at nest:%d > nest:%d > nest:%d > nest:%d\n",
             g_nest_line, g_nest_line, g_nest_line, g_nest_line);
    assert_true(sim_report_contains(want));
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 2);
    weft_rt_shutdown(rt);
}

static void test_sim_run_stall_cancels_what_is_left(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(43);
    weft_rt *rt = sim_start(&o);
    countdown_counts n;
    never nv;
    never_start(&nv, &n, WEFT_F_SEND);
    weft_join j;
    assert_int_equal(weft_spawn(rt, &nv.base, sizeof nv, &j), 0);
    assert_int_equal(weft_sim_run(rt), -EDEADLK);
    assert_int_equal(g_sim_reports, 1);
    assert_true(sim_report_contains("1 blocked task(s) cancelled:\n  'never'\n"));
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 1);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
    int out = 1;
    assert_int_equal(poll_noop(&j.base, &out), WEFT_READY);
    assert_int_equal(j.status, -ECANCELED);
    weft_future_drop(&j.base);
    assert_int_equal(weft_sim_run(rt), 0); /* nothing left */
    weft_rt_shutdown(rt);
}

/* Takes ticks of a 1 s interval forever. */
typedef struct forever_ticks {
    weft_future base;
    weft_interval iv;
    bool started;
} forever_ticks;

static weft_poll forever_ticks_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(forever_ticks, self);
    (void)out;
    if (!self->started) {
        self->started = true;
        if (weft_interval_init(&self->iv, WEFT_SEC(1), WEFT_MISSED_BURST) != 0)
            return WEFT_READY;
    }
    weft_instant tick;
    while (weft_stream_poll_next(&self->iv.base, cx, &tick) == WEFT_NEXT_ITEM)
        ;
    return WEFT_PENDING;
}

static void forever_ticks_drop(weft_future *f)
{
    DOWNCAST(forever_ticks, self);
    if (self->started)
        weft_stream_drop(&self->iv.base);
}

static const weft_future_ops forever_ticks_ops = {
    "forever_ticks", 0, forever_ticks_poll, forever_ticks_drop, NULL,
};

static void test_sim_time_limit_stops_a_run_that_never_ends(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed(); /* it checks its seed in the report */
    weft_sim_options o = sim_options(44);
    o.time_limit = WEFT_SEC(60);
    weft_rt *rt = sim_start(&o);
    forever_ticks ft;
    memset(&ft, 0, sizeof ft);
    weft_future_init(&ft.base, &forever_ticks_ops, WEFT_F_SEND);
    assert_int_equal(weft_block_on(rt, &ft.base, NULL, 0), -ETIMEDOUT);
    assert_int_equal(g_sim_reports, 1);
    assert_true(sim_report_contains("time limit reached"));
    assert_true(sim_report_contains("'forever_ticks' (the future given to weft_block_on)"));
    assert_true(sim_report_contains("WEFT_SEED=44"));
    assert_int_equal(sim_elapsed(rt), WEFT_SEC(60));
    weft_rt_shutdown(rt);
}

/* An interval whose period is too long to add to a deadline: one tick, then
 * none (the next deadline saturates to WEFT_NEVER instead of wrapping into
 * the past, which made every poll a tick). For each missed-tick policy,
 * started a second late so the policies that recompute from now run. */
typedef struct never_again {
    weft_future base;
    weft_missed_tick policy;
    weft_next r[2];
} never_again;

static weft_poll never_again_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(never_again, self);
    (void)out;
    weft_interval iv;
    weft_instant tick;
    if (weft_interval_at_init(&iv, weft_now() - WEFT_SEC(1), WEFT_NEVER, self->policy) != 0)
        return WEFT_READY;
    self->r[0] = weft_stream_poll_next(&iv.base, cx, &tick);
    self->r[1] = weft_stream_poll_next(&iv.base, cx, &tick);
    weft_stream_drop(&iv.base);
    return WEFT_READY;
}

static const weft_future_ops never_again_ops = {
    "never_again", 0, never_again_poll, NULL, NULL,
};

static void test_sim_interval_with_a_huge_period_ticks_once(void **state)
{
    (void)state;
    const weft_missed_tick policies[] = { WEFT_MISSED_BURST, WEFT_MISSED_DELAY,
                                          WEFT_MISSED_SKIP };
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        weft_sim_options o = sim_options(45);
        weft_rt *rt = sim_start(&o);
        never_again na = { .policy = policies[i], .r = { WEFT_NEXT_DONE, WEFT_NEXT_DONE } };
        weft_future_init(&na.base, &never_again_ops, WEFT_F_SEND);
        assert_int_equal(weft_block_on(rt, &na.base, NULL, 0), 0);
        assert_int_equal(na.r[0], WEFT_NEXT_ITEM);
        assert_int_equal(na.r[1], WEFT_NEXT_PENDING);
        weft_rt_shutdown(rt);
    }
}

/* ---- other threads -------------------------------------------------------------------------- */

typedef struct opener_arg {
    weft_rt *rt;
    gate *g;
    countdown_counts *n;
    int spawn_rc;
} opener_arg;

/* Another thread: spawns a countdown onto the sim, opens the gate, ends
 * its outside hold. */
static void *opener_main(void *p)
{
    opener_arg *a = p;
    countdown c;
    countdown_init(&c, 2, 3, a->n, WEFT_F_SEND);
    a->spawn_rc = weft_spawn(a->rt, &c.base, sizeof c, NULL);
    gate_open(a->g);
    weft_sim_outside_end(a->rt);
    return NULL;
}

static void test_sim_outside_thread_spawns_and_wakes(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(11);
    weft_rt *rt = sim_start(&o);
    gate g;
    gate_init(&g);
    countdown_counts n;
    countdown_counts_init(&n);
    opener_arg a = { rt, &g, &n, -1 };
    assert_int_equal(weft_sim_outside_begin(rt), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, opener_main, &a), 0);
    /* The gate opens from the other thread: the sim waits for it instead
     * of reporting a stall. */
    gated gd = gated_make(&g, 5);
    int v = 0;
    assert_int_equal(weft_block_on(rt, &gd.base, &v, sizeof v), 0);
    assert_int_equal(v, 5);
    pthread_join(th, NULL);
    assert_int_equal(a.spawn_rc, 0);
    assert_int_equal(weft_sim_run(rt), 0);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 3);
    assert_int_equal(g_sim_reports, 0);
    gate_fini(&g);
    weft_rt_shutdown(rt);
}

typedef struct runner_arg {
    weft_rt *rt;
    noted *nt;
    int rc, out;
} runner_arg;

static void *runner_main(void *p)
{
    runner_arg *a = p;
    a->rc = weft_block_on(a->rt, &a->nt->base, &a->out, sizeof a->out);
    return NULL;
}

static void test_sim_refuses_a_second_running_thread(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(12);
    weft_rt *rt = sim_start(&o);
    gate g;
    gate_init(&g);
    noted nt;
    noted_init(&nt, &g, 6);
    runner_arg a = { rt, &nt, -1, 0 };
    assert_int_equal(weft_sim_outside_begin(rt), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, runner_main, &a), 0);
    WAIT_UNTIL(weft_atomic_load_acquire(&nt.polled)); /* the other thread runs the sim */
    assert_int_equal(weft_sim_run(rt), -EBUSY);
    gate_open(&g);
    weft_sim_outside_end(rt);
    pthread_join(th, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.out, 6);
    gate_fini(&g);
    weft_rt_shutdown(rt);
}

/* ---- refusals ------------------------------------------------------------------------------ */

/* Calls weft_block_on and weft_sim_run on its own sim from inside, and
 * weft_block_on on g_other_rt (a runtime of the other flavour). */
static int g_nested_rc[4];
static weft_rt *g_other_rt;

static weft_poll nested_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    weft_yield y;
    weft_yield_init(&y);
    g_nested_rc[0] = weft_block_on(weft_rt_current(), &y.base, NULL, 0);
    g_nested_rc[1] = weft_sim_run(weft_rt_current());
    weft_rt_shutdown(weft_rt_current()); /* ignored */
    g_nested_rc[2] = weft_sim_outside_begin(weft_rt_current());
    weft_sim_outside_end(weft_rt_current());
    /* It would block every task of the sim, and run with the sim's clock. */
    g_nested_rc[3] = weft_block_on(g_other_rt, &y.base, NULL, 0);
    return WEFT_READY;
}

static const weft_future_ops nested_ops = { "nested", 0, nested_poll, NULL, NULL };

static void test_sim_refuses_running_itself_from_its_tasks(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(13);
    weft_rt *rt = sim_start(&o);
    weft_rt_options ro = WEFT_RT_OPTIONS_INIT;
    ro.workers = 1;
    assert_int_equal(weft_rt_new(&g_other_rt, &ro), 0);
    weft_future f;
    weft_future_init(&f, &nested_ops, WEFT_F_SEND);
    int before = misuse_count();
    assert_int_equal(weft_block_on(rt, &f, NULL, 0), 0);
    assert_int_equal(g_nested_rc[0], -EDEADLK);
    assert_int_equal(g_nested_rc[1], -EDEADLK);
    assert_int_equal(g_nested_rc[2], 0);
    assert_int_equal(g_nested_rc[3], -EDEADLK);
#ifndef NDEBUG
    assert_int_equal(misuse_count(), before + 4);
#else
    (void)before;
#endif
    weft_rt_shutdown(g_other_rt);
    weft_rt_shutdown(rt);
}

static void test_sim_bad_arguments(void **state)
{
    (void)state;
    weft_rt *rt = NULL;
    assert_int_equal(weft_rt_new_sim(NULL, NULL), -EINVAL);
    weft_sim_options o = sim_options(0);
    const double bad[] = { -0.1, 1.5, NAN };
    for (size_t i = 0; i < 3; i++) {
        o = sim_options(0);
        o.spurious_wake = bad[i];
        assert_int_equal(weft_rt_new_sim(&rt, &o), -EINVAL);
        o = sim_options(0);
        o.leaf_pending = bad[i];
        assert_int_equal(weft_rt_new_sim(&rt, &o), -EINVAL);
        o = sim_options(0);
        o.timer_late = bad[i];
        assert_int_equal(weft_rt_new_sim(&rt, &o), -EINVAL);
    }
    assert_null(rt);
    weft_sim_stats st;
    assert_int_equal(weft_sim_run(NULL), -EINVAL);
    assert_int_equal(weft_sim_outside_begin(NULL), -EINVAL);
    weft_sim_outside_end(NULL);
    /* A runtime of the other flavour is not a sim. */
    weft_rt_options ro = WEFT_RT_OPTIONS_INIT;
    ro.workers = 1;
    weft_rt *mt = NULL;
    assert_int_equal(weft_rt_new(&mt, &ro), 0);
    assert_int_equal(weft_sim_run(mt), -EINVAL);
    assert_int_equal(weft_sim_stats_get(mt, &st), -EINVAL);
    assert_int_equal(weft_sim_outside_begin(mt), -EINVAL);
    weft_rt_shutdown(mt);
    /* Defaults. */
    assert_int_equal(weft_rt_new_sim(&rt, NULL), 0);
    assert_int_equal(weft_sim_stats_get(rt, NULL), -EINVAL);
    assert_int_equal(weft_sim_stats_get(rt, &st), 0);
    assert_int_equal(st.now, WEFT_SIM_START);
    int before = misuse_count();
    weft_sim_outside_end(rt); /* unpaired */
    assert_misuse_since(before, 1, "weft_sim_outside_end");
    assert_int_equal(weft_sim_run(rt), 0); /* the unpaired end left no hold */
    weft_rt_shutdown(rt);
}

/* ---- a bug the order finds ------------------------------------------------------------------ */

/* A deliberately broken wait: its first poll finds the flag clear and
 * decides to wait, but it stores its waker only at the next poll, without
 * looking at the flag again. An opener that sets the flag between those
 * two polls wakes nobody: the wake is lost, under that one ordering. */
typedef struct flag {
    bool set;
    weft_waker waiter;
} flag;

typedef struct lossy_wait {
    weft_future base;
    flag *fl;
    int step;
} lossy_wait;

static weft_poll lossy_wait_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(lossy_wait, self);
    (void)out;
    switch (self->step) {
    case 0:
        if (self->fl->set)
            return WEFT_READY;
        self->step = 1;
        weft_waker_wake_by_ref(cx->waker); /* "register next time" */
        return WEFT_PENDING;
    case 1:
        /* The bug: no second look at the flag before sleeping. */
        self->fl->waiter = weft_waker_clone(cx->waker);
        self->step = 2;
        return WEFT_PENDING;
    default:
        return self->fl->set ? WEFT_READY : WEFT_PENDING;
    }
}

static const weft_future_ops lossy_wait_ops = { "lossy_wait", 0, lossy_wait_poll, NULL, NULL };

/* Yields twice, then sets the flag and wakes whoever waits. */
typedef struct opener {
    weft_future base;
    weft_co co;
    flag *fl;
    int i;
} opener;

WEFT_ASYNC_FN_VOID(opener)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 2; self->i++)
        WEFT_FN_YIELD;
    self->fl->set = true;
    weft_waker_wake(&self->fl->waiter);
    WEFT_FN_END;
}

/* Runs a lossy_wait and an opener side by side on the sim of `seed`.
 * Returns block_on's result; `*hash` receives the trace hash. */
static int run_lossy(uint64_t seed, uint64_t *hash)
{
    weft_sim_options o = sim_options(seed);
    weft_rt *rt = sim_start(&o);
    flag fl = { false, WEFT_WAKER_EMPTY };
    assert_int_equal(WEFT_SPAWN(rt, NULL, &(opener){ WEFT_FN_INIT(opener, WEFT_F_SEND), .fl = &fl }),
                     0);
    lossy_wait w = { WEFT_FUTURE_INIT(&lossy_wait_ops, WEFT_F_SEND), &fl, 0 };
    int rc = weft_block_on(rt, &w.base, NULL, 0);
    *hash = sim_stats(rt).trace_hash;
    weft_waker_drop(&fl.waiter);
    weft_rt_shutdown(rt);
    return rc;
}

static void test_sim_finds_a_lost_wake_and_replays_it(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    uint64_t found = UINT64_MAX, hash = 0;
    int fine = 0;
    for (uint64_t seed = 0; seed < 100; seed++) {
        int rc = run_lossy(seed, &hash);
        if (rc == 0) {
            fine++;
            continue;
        }
        assert_int_equal(rc, -EDEADLK);
        if (found == UINT64_MAX)
            found = seed;
    }
    /* The wake is lost under some orders only. */
    assert_true(fine > 0);
    assert_true(found != UINT64_MAX);
    print_message("lost wake found with seed=%" PRIu64 "; replay with WEFT_SEED=%" PRIu64 "\n",
                  found, found);

    /* The report named the task that waits forever and the seed. */
    g_sim_reports = 0;
    uint64_t first;
    assert_int_equal(run_lossy(found, &first), -EDEADLK);
    assert_int_equal(g_sim_reports, 1);
    assert_true(sim_report_contains("'lossy_wait' (the future given to weft_block_on)"));
    char seed_text[64];
    snprintf(seed_text, sizeof seed_text, "WEFT_SEED=%" PRIu64, found);
    assert_true(sim_report_contains(seed_text));

    /* WEFT_SEED replays it: whatever the options say, same stall, same trace. */
    char *saved = env_seed_set(seed_text + strlen("WEFT_SEED="));
    uint64_t again;
    assert_int_equal(run_lossy(found + 1, &again), -EDEADLK);
    assert_int_equal(again, first);
    env_seed_restore(saved);
}

/* ---- shutdown ------------------------------------------------------------------------------- */

static void test_sim_shutdown_cancels_tasks_left_and_frees_all(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(14);
    weft_rt *rt = sim_start(&o);
    countdown_counts n;
    never nv;
    never_start(&nv, &n, WEFT_F_SEND);
    weft_join j, k;
    assert_int_equal(weft_spawn(rt, &nv.base, sizeof nv, &j), 0);
    assert_int_equal(WEFT_SPAWN(rt, &k, &(nap){ WEFT_FN_INIT(nap, WEFT_F_SEND), .d = WEFT_SEC(3600) }),
                     0);
    /* Both blocked: the never on nothing, the nap on a timer an hour away. */
    nap short_nap = { WEFT_FN_INIT(nap, WEFT_F_SEND), .d = WEFT_SEC(1) };
    assert_int_equal(weft_block_on(rt, &short_nap.base, NULL, 0), 0);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 1);
    /* Spawned but never run, with a join handle, too. */
    countdown_counts cn;
    countdown c;
    countdown_start(&c, &cn, 1, 1, WEFT_F_SEND);
    weft_join l;
    assert_int_equal(weft_spawn(rt, &c.base, sizeof c, &l), 0);
    weft_rt_shutdown(rt); /* the join handles keep its memory alive */
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&cn.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&cn.drops), 1);
    weft_join *js[] = { &j, &k, &l };
    for (int i = 0; i < 3; i++) {
        int out = 1;
        assert_true(weft_join_is_finished(js[i]));
        assert_int_equal(poll_noop(&js[i]->base, i == 1 ? NULL : &out), WEFT_READY);
        assert_int_equal(js[i]->status, -ECANCELED);
        weft_future_drop(&js[i]->base); /* the last frees the sim (teardown counts) */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sim_block_on_runs_spawns_and_joins, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_spawn_from_a_task, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_spawn_from_outside_then_run, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_abort_and_detach, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_spawn_local_from_its_tasks_only, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_rt_stats_show_one_thread, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_order_is_seeded_not_fifo, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_ten_minute_sleep_is_one_clock_jump, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_clock_moves_only_when_nothing_is_runnable,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_timeout_fires_at_its_virtual_deadline,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_interval_ticks_on_virtual_time, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_weft_seed_overrides_every_seed, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_stall_names_the_blocked_tasks_and_the_seed,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_stall_report_shows_where_each_task_waits,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_run_stall_cancels_what_is_left, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_time_limit_stops_a_run_that_never_ends,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_interval_with_a_huge_period_ticks_once,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_clock_skips_a_cancelled_timer, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_outside_thread_spawns_and_wakes, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_refuses_a_second_running_thread, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_refuses_running_itself_from_its_tasks,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_bad_arguments, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_finds_a_lost_wake_and_replays_it, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_shutdown_cancels_tasks_left_and_frees_all,
                                        sim_setup, sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
