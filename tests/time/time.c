/* Unit tests for time/clock.c, time/sleep.c, time/timeout.c and
 * time/interval.c on a real two-worker runtime — durations and deadlines
 * that saturate instead of wrapping, completion no earlier than the
 * deadline, ordering,
 * cancellation by drop (a dropped timer never wakes anyone), reset, the
 * timeout's race between its inner future and its timer, the interval's
 * schedule and missed-tick policies, 100,000 sleeps created and dropped at
 * random, shutdown with timers an hour away, a timer firing while the
 * worker that drove timers is stuck in a long poll, and misuse outside a
 * runtime.
 *
 * Timing rules: nothing waits on the clock for more than a few
 * milliseconds at a time (hour-long timers are cancelled, never awaited),
 * and no test asserts an upper bound on how late anything happens — only
 * lower bounds (never early) and orders the wheel guarantees. Waits for
 * other threads are event driven (wakes forwarded to the waiting future),
 * with a watchdog that only turns a hang into a readable failure.
 *
 * Every test that does not need worker threads runs a second time on a
 * sim runtime (weft/testing.h: one thread, virtual time), where the same
 * code is deterministic and waits for nothing: a 2 ms deadline is a jump
 * of the clock, a test thread can never be descheduled past a deadline
 * (the tests that skip themselves then never skip there), and a wait for
 * a worker becomes a run of the sim (RT_WAIT_UNTIL).
 *
 * Each test gets a fresh runtime and a counting allocator; teardown checks
 * every allocation came back after shutdown and no unexpected misuse was
 * reported. Code running on workers records what it sees in atomics; the
 * test thread asserts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "sched/runtime.h"
#include "time/clock.h"
#include "time/driver.h"
#include "support/alarm_watchdog.h"
#include "support/co_future.h"
#include "support/co_steps.h"
#include "support/countdown.h"
#include "support/downcast.h"
#include "support/gate.h"
#include "support/never.h"
#include "support/poll.h"
#include "support/rng.h"
#include "support/rt_fixture.h"
#include "support/sim_fixture.h"
#include "support/wait.h"
#include "support/waker_ops.h"

/* ---- misuse reports ----------------------------------------------------- */

static int g_misuse_expected; /* reports the running test provokes on purpose */

/* ---- fixture ------------------------------------------------------------ */

/* The support fixture (support/rt_fixture.h) under the watchdog (a timer
 * that never fires leaves a test waiting forever), and a check that the
 * test provoked only the misuse reports it expected. */
static int setup(void **state)
{
    g_misuse_expected = 0;
    alarm_watchdog_arm(state);
    return rt_setup(state);
}

/* The same on a sim runtime. */
static int setup_sim(void **state)
{
    g_misuse_expected = 0;
    alarm_watchdog_arm(state);
    return sim_setup_g_rt(state);
}

static int teardown(void **state)
{
    int rc = rt_teardown(state);
    alarm_watchdog_disarm(state);
#ifndef NDEBUG
    if (misuse_count() != g_misuse_expected) {
        print_error("%d misuse report(s), expected %d; last: %s\n", misuse_count(),
                    g_misuse_expected, g_misuse_msg);
        rc = -1;
    }
#endif
    return rc;
}


/* Timers armed in the runtime's wheels right now (a sample). */
static size_t wheel_armed(void)
{
    return weft__timers_armed(&g_rt->pool.timers);
}

/* ---- a probe waker ------------------------------------------------------ */

/* A waker that counts its live clones and wakes, flags wakes that arrive
 * once they are forbidden, and forwards every wake to `target` (the waiting
 * future's own waker) so a test can wait for it without timing. Static
 * storage: a timer that wrongly outlives its future may still wake it. */
typedef struct probe {
    _Atomic int clones;    /* clones alive (the probe's own handle not counted) */
    _Atomic int wakes;     /* wake + wake_by_ref */
    _Atomic bool forbid;   /* set when no wake may come any more */
    _Atomic int bad_wakes; /* wakes while forbidden */
    weft_waker target;     /* set before the probe is first handed out */
} probe;

TEST_WAKER_OPS(probe);

static weft_waker probe_clone(const void *data)
{
    /* Relaxed: a counter, checked after the events that settle it. */
    weft_atomic_fetch_add_relaxed(&((probe *)data)->clones, 1);
    return waker_of(&probe_ops, data);
}

static void probe_note(probe *p)
{
    weft_atomic_fetch_add_acq_rel(&p->wakes, 1);
    if (weft_atomic_load_acquire(&p->forbid))
        weft_atomic_fetch_add_acq_rel(&p->bad_wakes, 1);
    weft_waker_wake_by_ref(&p->target);
}

static void probe_wake_by_ref(const void *data)
{
    probe_note((probe *)data);
}

static void probe_wake(void *data)
{
    /* Release the clone before noting the wake, so whoever sees the wake
     * also sees the clone gone. */
    probe_drop(data);
    probe_note(data);
}

static void probe_drop(void *data)
{
    probe *p = data;
    weft_atomic_fetch_sub_acq_rel(&p->clones, 1);
}

static probe g_probe;

/* Reset the probe to forward to a clone of `target`. */
static weft_waker probe_start(probe *p, const weft_waker *target)
{
    weft_atomic_store_relaxed(&p->clones, 0);
    weft_atomic_store_relaxed(&p->wakes, 0);
    weft_atomic_store_relaxed(&p->forbid, false);
    weft_atomic_store_relaxed(&p->bad_wakes, 0);
    p->target = weft_waker_clone(target);
    return waker_of(&probe_ops, p);
}

static void probe_stop(probe *p)
{
    weft_waker_drop(&p->target);
}

static int probe_clones(probe *p)
{
    return weft_atomic_load_acquire(&p->clones);
}

static int probe_wakes(probe *p)
{
    return weft_atomic_load_acquire(&p->wakes);
}

/* Tests that need a timer still armed after its first poll use deadlines
 * of 1-2 ms; a test thread preempted for longer between taking the
 * deadline and polling would find it passed. Such a poll is simply tried
 * again with a fresh deadline (it armed nothing), up to RETRIES times. */
#define RETRIES 20

/* Reset `s` to `d` from now and poll it with `w` until a poll leaves it
 * pending (armed). Returns the last result and stores the deadline. */
static weft_poll reset_and_arm(weft_sleep *s, const weft_waker *w, weft_duration d,
                               weft_instant *deadline)
{
    weft_poll r = WEFT_READY;
    for (int i = 0; i < RETRIES && r == WEFT_READY; i++) {
        *deadline = weft_now() + d;
        weft_sleep_reset(s, *deadline);
        r = poll_with(&s->base, w, NULL);
    }
    return r;
}

/* ---- small futures ------------------------------------------------------ */

/* A timeout and its inner future side by side in one struct (the timeout
 * finds its inner by offset, so the pair may move together before the
 * first poll). */
typedef struct timed_countdown {
    weft_timeout t;
    countdown inner;
} timed_countdown;

typedef struct timed_never {
    weft_timeout t;
    never inner;
} timed_never;

/* ==== durations ========================================================== */

static void test_durations_saturate_instead_of_wrapping(void **state)
{
    (void)state;
    /* In range: exact. */
    assert_int_equal(WEFT_NS(7), 7);
    assert_int_equal(WEFT_US(7), 7000);
    assert_int_equal(WEFT_MS(250), 250000000);
    assert_int_equal(WEFT_SEC(3), 3000000000ull);
    assert_int_equal(WEFT_MS((uint8_t)200), 200000000);
    assert_int_equal(WEFT_MS((uint32_t)UINT32_MAX), 4294967295000000ull);
    assert_int_equal(WEFT_SEC(1.5), WEFT_SEC(1)); /* fractions are cut off */

    /* Zero or less: 0, already due (wrapping made WEFT_MS(-1) 584 years). */
    int neg = -5;
    long lmin = LONG_MIN;
    assert_int_equal(WEFT_MS(-1), 0);
    assert_int_equal(WEFT_SEC(neg), 0);
    assert_int_equal(WEFT_NS(lmin), 0);
    assert_int_equal(WEFT_US((int64_t)-1), 0);
    assert_int_equal(WEFT_SEC(0), 0);
    assert_int_equal(WEFT_MS(-0.5), 0);
    assert_int_equal(WEFT_MS(-1e30), 0);
    assert_int_equal(WEFT_SEC(NAN), 0);

    /* Too large: never. The last whole second that fits is exact; one
     * more used to wrap to 0.29 s. */
    uint64_t huge = UINT64_MAX;
    assert_int_equal(WEFT_SEC(18446744073u), 18446744073000000000ull);
    assert_int_equal(WEFT_SEC(18446744074ull), WEFT_NEVER);
    assert_int_equal(WEFT_SEC(huge), WEFT_NEVER);
    assert_int_equal(WEFT_NS(huge), WEFT_NEVER);
    assert_int_equal(WEFT_MS(INT64_MAX), WEFT_NEVER);
    assert_int_equal(WEFT_US(UINT64_MAX / 1000u + 1u), WEFT_NEVER);
    assert_int_equal(WEFT_SEC(1e30), WEFT_NEVER);

    /* The count is evaluated once. */
    int calls = 0;
    assert_int_equal(WEFT_MS(++calls), WEFT_MS(1));
    assert_int_equal(calls, 1);
}

static void test_deadlines_saturate_instead_of_wrapping(void **state)
{
    (void)state;
    assert_int_equal(weft__instant_add(5, 7), 12);
    assert_int_equal(weft__instant_add(WEFT_NEVER - 5, 5), WEFT_NEVER);
    assert_int_equal(weft__instant_add(WEFT_NEVER - 5, 6), WEFT_NEVER);
    assert_int_equal(weft__instant_add(weft_now(), WEFT_SEC(UINT64_MAX)), WEFT_NEVER);
    weft_instant before = weft_now();
    assert_true(weft__deadline_after(WEFT_MS(10)) >= before + WEFT_MS(10));
    assert_int_equal(weft__deadline_after(WEFT_NEVER), WEFT_NEVER);
    assert_int_equal(weft__deadline_after(WEFT_NEVER - 1), WEFT_NEVER);
}

/* Polls a sleep of WEFT_NEVER once (it arms), notes the wheel, drops it. */
typedef struct never_sleeper {
    weft_future base;
    weft_sleep s;
    weft_poll r;
    size_t armed, armed_after_drop;
} never_sleeper;

static weft_poll never_sleeper_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(never_sleeper, n);
    (void)out;
    weft_sleep_init(&n->s, WEFT_SEC(18446744074ull)); /* used to wrap to 0.29 s */
    n->r = weft_future_poll(&n->s.base, cx, NULL);
    n->armed = wheel_armed();
    weft_future_drop(&n->s.base);
    n->armed_after_drop = wheel_armed();
    return WEFT_READY;
}

static const weft_future_ops never_sleeper_ops = { "never_sleeper", 0, never_sleeper_poll,
                                                   NULL, NULL };

static void test_negative_durations_are_due_and_huge_ones_never(void **state)
{
    (void)state;
    /* A negative duration is already due: READY at the first poll, with no
     * wheel (polled outside any runtime, and no misuse). */
    weft_sleep s;
    weft_sleep_init(&s, WEFT_MS(-1));
    assert_true(s.deadline <= weft_now());
    assert_int_equal(poll_noop(&s.base, NULL), WEFT_READY);
    weft_future_drop(&s.base);

    /* A timeout of a negative duration times out at its first poll, unless
     * the inner future is ready then. */
    countdown_counts n;
    timed_never tn;
    never_start(&tn.inner, &n, WEFT_F_SEND);
    assert_int_equal(weft_timeout_init(&tn.t, &tn.inner.base, WEFT_SEC(-3)), 0);
    int out = 1;
    assert_int_equal(poll_noop(&tn.t.base, &out), WEFT_READY);
    assert_int_equal(tn.t.status, -ETIMEDOUT);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
    weft_future_drop(&tn.t.base);
    timed_countdown tc;
    countdown_start(&tc.inner, &n, 0, 5, WEFT_F_SEND);
    assert_int_equal(weft_timeout_init(&tc.t, &tc.inner.base, WEFT_MS(-1)), 0);
    assert_int_equal(poll_noop(&tc.t.base, &out), WEFT_READY);
    assert_int_equal(tc.t.status, 0);
    assert_int_equal(out, 5);
    weft_future_drop(&tc.t.base);
    assert_true(misuse_reported(0, ""));

    /* Too long to represent: a deadline that never comes. */
    never_start(&tn.inner, &n, WEFT_F_SEND);
    assert_int_equal(weft_timeout_init(&tn.t, &tn.inner.base, WEFT_MS(UINT64_MAX)), 0);
    assert_int_equal(tn.t.sleep.deadline, WEFT_NEVER);
    weft_future_drop(&tn.t.base);
    never_sleeper ns;
    weft_future_init(&ns.base, &never_sleeper_ops, 0);
    assert_int_equal(weft_block_on(g_rt, &ns.base, NULL, 0), 0);
    assert_int_equal(ns.s.deadline, WEFT_NEVER);
    assert_int_equal(ns.r, WEFT_PENDING);
    assert_int_equal(ns.armed, 1);
    assert_int_equal(ns.armed_after_drop, 0);
}

/* ==== sleep ============================================================== */

/* A coroutine sleeping three times, checking the clock after each. */
typedef struct sleeper {
    weft_future base;
    weft_co co;
    weft_sleep s;
    int i;
    weft_instant deadline[3];
    weft_instant woke[3];
} sleeper;

static weft_poll sleeper_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(sleeper, s);
    for (s->i = 0; s->i < 3; s->i++) {
        weft_sleep_init(&s->s, WEFT_US(700) * (weft_duration)(s->i + 1));
        s->deadline[s->i] = s->s.deadline;
        WEFT_AWAIT(&s->co, cx, &s->s.base, NULL);
        s->woke[s->i] = weft_now();
    }
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(sleeper, "sleeper", 0);

/* A spawned task that sleeps `d` and outputs whether the clock had passed
 * the deadline when the sleep completed. */
typedef struct sleep_task {
    weft_future base;
    weft_co co;
    weft_sleep s;
    weft_duration d;
} sleep_task;

static weft_poll sleep_task_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(sleep_task, t);
    weft_sleep_init(&t->s, t->d);
    WEFT_AWAIT(&t->co, cx, &t->s.base, NULL);
    *(int *)out = weft_now() >= t->s.deadline ? 1 : -1;
    CO_FUTURE_END(t);
}

CO_FUTURE_OPS(sleep_task, "sleep_task", sizeof(int));

static void test_sleep_completes_no_earlier_than_its_deadline(void **state)
{
    (void)state;
    /* A bare sleep, run by block_on. */
    weft_sleep s;
    weft_sleep_until_init(&s, rt_now(g_rt) + WEFT_MS(2));
    weft_instant deadline = s.deadline;
    assert_true(deadline >= rt_now(g_rt));
    assert_int_equal(weft_block_on(g_rt, &s.base, NULL, 0), 0);
    assert_true(rt_now(g_rt) >= deadline);

    /* Awaited in a coroutine; deadlines not on tick boundaries. */
    sleeper c;
    co_future_init(&c, sizeof c, &sleeper_ops, WEFT_F_SEND);
    assert_int_equal(weft_block_on(g_rt, &c.base, NULL, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_true(c.woke[i] >= c.deadline[i]);

    /* On workers, several at once. */
    enum { N = 8 };
    weft_join j[N];
    for (int i = 0; i < N; i++) {
        sleep_task t;
        co_future_init(&t, sizeof t, &sleep_task_ops, WEFT_F_SEND);
        t.d = WEFT_US(250) * (weft_duration)(i + 1);
        assert_int_equal(weft_spawn(g_rt, &t.base, sizeof t, &j[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        int ok = 0;
        assert_int_equal(weft_block_on(g_rt, &j[i].base, &ok, sizeof ok), 0);
        assert_int_equal(j[i].status, 0);
        assert_int_equal(ok, 1);
    }
    assert_int_equal(wheel_armed(), 0);
}

/* K sleeps 2 ms apart, created in a shuffled order, all polled by one
 * future on every wake (latest deadline first). The wheel fires them in
 * deadline order under its lock, so whenever one is READY every earlier one
 * is READY too, even if several fire in one batch: the completion order
 * (an atomic counter, taken in deadline order within a wake) must be the
 * deadline order. */
#define ORDER_K 6

typedef struct orderer {
    weft_future base;
    weft_co co;
    weft_sleep s[ORDER_K]; /* s[k] is due (k + 1) * 2 ms after start */
    bool done[ORDER_K];
    int seq[ORDER_K];
    weft_instant woke[ORDER_K];
    int inversions;
    int left;
} orderer;

static _Atomic int g_order_counter;

static weft_poll orderer_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(orderer, o);
    {
        static const int create_order[ORDER_K] = { 3, 0, 5, 1, 4, 2 };
        weft_instant start = weft_now();
        for (int i = 0; i < ORDER_K; i++) {
            int k = create_order[i];
            weft_sleep_until_init(&o->s[k], start + WEFT_MS(2) * (weft_duration)(k + 1));
            o->done[k] = false;
        }
        o->left = ORDER_K;
        o->inversions = 0;
    }
    while (o->left > 0) {
        {
            bool ready[ORDER_K] = { false };
            for (int k = ORDER_K - 1; k >= 0; k--)
                if (!o->done[k])
                    ready[k] = weft_future_poll(&o->s[k].base, cx, NULL) == WEFT_READY;
            weft_instant now = weft_now();
            bool seen_pending = false;
            for (int k = 0; k < ORDER_K; k++) {
                if (o->done[k])
                    continue;
                if (!ready[k]) {
                    seen_pending = true;
                    continue;
                }
                if (seen_pending)
                    o->inversions++;
                o->done[k] = true;
                o->woke[k] = now;
                o->seq[k] = weft_atomic_fetch_add_relaxed(&g_order_counter, 1);
                o->left--;
            }
        }
        if (o->left > 0)
            CO_SUSPEND(&o->co); /* the next timer to fire wakes us */
    }
    CO_FUTURE_END(o);
}

static void orderer_drop(weft_future *f)
{
    orderer *o = (orderer *)f;
    /* All initialised at the first poll, which block_on always makes. */
    for (int k = 0; k < ORDER_K; k++)
        weft_future_drop(&o->s[k].base);
}

static const weft_future_ops orderer_ops = { "orderer", 0, orderer_poll, orderer_drop, NULL };

static void test_sleeps_complete_in_deadline_order(void **state)
{
    (void)state;
    weft_atomic_store_relaxed(&g_order_counter, 0);
    orderer o;
    co_future_init(&o, sizeof o, &orderer_ops, 0);
    assert_int_equal(weft_block_on(g_rt, &o.base, NULL, 0), 0);
    assert_int_equal(o.inversions, 0);
    for (int k = 0; k < ORDER_K; k++) {
        assert_int_equal(o.seq[k], k);
        assert_true(o.woke[k] >= o.s[k].deadline);
    }
    assert_int_equal(wheel_armed(), 0);
}

/* Ready on its first poll when the deadline has passed. */
typedef struct first_poll {
    weft_future base;
    weft_poll r[4];
    size_t armed_after;
} first_poll;

static weft_poll first_poll_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(first_poll, p);
    (void)out;
    weft_sleep s[4];
    weft_sleep_until_init(&s[0], weft_now() - WEFT_MS(1));
    weft_sleep_until_init(&s[1], 0);
    weft_sleep_until_init(&s[2], weft_now());
    weft_sleep_init(&s[3], 0);
    for (int i = 0; i < 4; i++)
        p->r[i] = weft_future_poll(&s[i].base, cx, NULL);
    p->armed_after = wheel_armed();
    for (int i = 0; i < 4; i++)
        weft_future_drop(&s[i].base);
    return WEFT_READY;
}

static const weft_future_ops first_poll_ops = { "first_poll", 0, first_poll_poll, NULL, NULL };

static void test_sleep_until_past_is_ready_on_first_poll(void **state)
{
    (void)state;
    first_poll p;
    weft_future_init(&p.base, &first_poll_ops, 0);
    assert_int_equal(weft_block_on(g_rt, &p.base, NULL, 0), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(p.r[i], WEFT_READY);
    assert_int_equal(p.armed_after, 0); /* never touched the wheel */

    /* Also outside any runtime: a past deadline needs no wheel, so it is
     * neither pending nor a misuse. */
    weft_sleep s;
    weft_sleep_until_init(&s, weft_now() - 1);
    assert_int_equal(poll_noop(&s.base, NULL), WEFT_READY);
    weft_future_drop(&s.base);
    assert_true(misuse_reported(0, ""));
}

/* ---- drop --------------------------------------------------------------- */

enum { DROP_BEFORE_POLL, DROP_WHILE_ARMED, DROP_AFTER_FIRING };

/* A drop scene, run by block_on on the test thread: arm a subject (a
 * sleep, a timeout, an interval) with the probe as its waker, drop it at
 * the chosen point, note what the wheel and the probe show right after,
 * then wait past the subject's deadline (on a guard sleep the wheel fires
 * after it) and check the probe was never woken after the drop. */
typedef struct drop_scene drop_scene;

typedef struct drop_subject {
    /* Sets the subject up and, unless it is to be dropped before its first
     * poll, arms it with the probe's waker d->pw (retrying with a fresh
     * deadline while it completes at once); sets d->deadline and
     * d->pending (the arming poll left it armed). */
    void (*arm)(drop_scene *d);
    /* Drops it, noting what only this subject can tell. */
    void (*drop)(drop_scene *d);
} drop_subject;

struct drop_scene {
    weft_future base;
    weft_co co;
    const drop_subject *subject;
    int when; /* DROP_*; only sleeps are dropped other than while armed */
    weft_waker pw;
    weft_sleep guard;
    weft_instant deadline;
    bool pending;
    size_t armed_before, armed_after;
    int clones_after;
    bool in_time; /* dropped before the deadline: the cancel beat the timer */
    /* The subjects, and what only they can tell. */
    weft_sleep s;
    uint32_t state_after; /* the sleep's timer state after the drop */
    timed_never tn;
    countdown_counts n;
    int drops_after; /* drops of the timeout's inner future after the drop */
    weft_poll inner_after; /* a borrowed inner future polled after the drop */
    weft_interval iv;
    weft_instant tick0;
    weft_next r0, r1; /* the interval's first two polls */
};

static weft_poll drop_scene_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(drop_scene, d);
    d->pw = probe_start(&g_probe, cx->waker);
    d->subject->arm(d);
    if (d->when == DROP_AFTER_FIRING && d->pending)
        CO_WAIT_UNTIL(&d->co, probe_wakes(&g_probe) > 0);
    d->armed_before = wheel_armed();
    d->subject->drop(d);
    /* A timer never fires before its deadline, so a drop that returned
     * before it certainly cancelled an armed timer. */
    d->in_time = weft_now() < d->deadline;
    d->armed_after = wheel_armed();
    d->clones_after = probe_clones(&g_probe);
    /* From here on no wake may reach the probe: cancelled means silent.
     * (After firing, the one wake has already been counted. Dropped late,
     * the timer may have fired first and its wake be on its way.) */
    if (d->when != DROP_WHILE_ARMED || d->in_time)
        weft_atomic_store_release(&g_probe.forbid, true);
    weft_sleep_until_init(&d->guard, d->deadline + WEFT_MS(2));
    WEFT_AWAIT(&d->co, cx, &d->guard.base, NULL);
    probe_stop(&g_probe);
    CO_FUTURE_END(d);
}

CO_FUTURE_OPS(drop_scene, "drop_scene", 0);

/* Runs the scene of `subject` dropped at `when`: no wake reached the probe
 * once none could. */
static void run_drop_scene(drop_scene *d, const drop_subject *subject, int when)
{
    co_future_init(d, sizeof *d, &drop_scene_ops, 0);
    d->subject = subject;
    d->when = when;
    assert_int_equal(weft_block_on(g_rt, &d->base, NULL, 0), 0);
    assert_int_equal(weft_atomic_load_acquire(&g_probe.bad_wakes), 0);
}

/* Dropped while armed (the drop came in time, or the test is skipped):
 * the drop unlinked the timer and released the probe's waker at once, and
 * the probe was never woken, though the deadline passed long ago (the
 * guard is later). */
static void assert_disarmed_silently(const drop_scene *d)
{
    if (!d->in_time) {
        /* The test thread was descheduled past the deadline: never on a
         * sim, whose clock moves only when every task waits. */
        assert_false(rt_is_sim(g_rt));
        skip();
    }
    assert_int_equal(d->armed_before, 1);
    assert_int_equal(d->armed_after, 0);
    assert_int_equal(d->clones_after, 0);
    assert_int_equal(probe_wakes(&g_probe), 0);
}

static void sleep_arm(drop_scene *d)
{
    weft_sleep_init(&d->s, WEFT_MS(2));
    d->deadline = d->s.deadline;
    if (d->when != DROP_BEFORE_POLL)
        d->pending = reset_and_arm(&d->s, &d->pw, WEFT_MS(2), &d->deadline) == WEFT_PENDING;
}

static void sleep_drop(drop_scene *d)
{
    weft_future_drop(&d->s.base);
    d->state_after = weft_atomic_load_acquire(&d->s.entry.state_);
}

static const drop_subject sleep_subject = { sleep_arm, sleep_drop };

static void run_sleep_drop(drop_scene *d, int when)
{
    run_drop_scene(d, &sleep_subject, when);
    assert_int_equal(probe_clones(&g_probe), 0);
    assert_int_equal(wheel_armed(), 0);
    assert_true(rt_now(g_rt) >= d->deadline + WEFT_MS(2));
}

static void test_sleep_dropped_before_first_poll_never_arms(void **state)
{
    (void)state;
    drop_scene d;
    run_sleep_drop(&d, DROP_BEFORE_POLL);
    assert_int_equal(d.armed_before, 0);
    assert_int_equal(probe_wakes(&g_probe), 0);
}

static void test_sleep_dropped_while_armed_is_never_woken(void **state)
{
    (void)state;
    drop_scene d;
    run_sleep_drop(&d, DROP_WHILE_ARMED);
    assert_true(d.pending);
    assert_disarmed_silently(&d);
    assert_int_equal(d.state_after, WEFT__TIMER_IDLE);
}

static void test_sleep_dropped_after_firing(void **state)
{
    (void)state;
    drop_scene d;
    run_sleep_drop(&d, DROP_AFTER_FIRING);
    assert_true(d.pending);
    assert_int_equal(d.armed_before, 0);
    assert_int_equal(d.state_after, WEFT__TIMER_FIRED);
    assert_int_equal(d.clones_after, 0);
    assert_int_equal(probe_wakes(&g_probe), 1); /* fired exactly once */
}

/* A sleep whose memory is freed right after its drop: the wheel must not
 * touch it again (the ASan build turns a stale link into a report). */
typedef struct heap_dropper {
    weft_future base;
    weft_co co;
    weft_sleep *s;
    weft_sleep guard;
    weft_instant deadline;
    int i;
} heap_dropper;

static weft_poll heap_dropper_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(heap_dropper, h);
    for (h->i = 0; h->i < 16; h->i++) {
        h->s = malloc(sizeof *h->s);
        assert_non_null(h->s);
        weft_sleep_init(h->s, WEFT_US(100) * (weft_duration)(h->i + 1));
        h->deadline = h->s->deadline;
        (void)weft_future_poll(&h->s->base, cx, NULL);
        weft_future_drop(&h->s->base);
        memset(h->s, 0xa5, sizeof *h->s);
        free(h->s);
        h->s = NULL;
    }
    weft_sleep_until_init(&h->guard, h->deadline + WEFT_MS(2));
    WEFT_AWAIT(&h->co, cx, &h->guard.base, NULL);
    CO_FUTURE_END(h);
}

CO_FUTURE_OPS(heap_dropper, "heap_dropper", 0);

static void test_sleep_memory_may_be_freed_after_drop(void **state)
{
    (void)state;
    heap_dropper *h = test_malloc(sizeof *h); /* on the heap too, for ASan */
    co_future_init(h, sizeof *h, &heap_dropper_ops, 0);
    assert_int_equal(weft_block_on(g_rt, &h->base, NULL, 0), 0);
    assert_int_equal(wheel_armed(), 0);
    test_free(h);
}

/* ---- reset -------------------------------------------------------------- */

typedef struct resetter {
    weft_future base;
    weft_co co;
    weft_waker pw;
    weft_sleep s, guard;
    weft_instant deadline;
    /* Results, checked by the test thread. */
    weft_poll r_far, r_rearmed_pending, r_rearmed, r_done_again_pending, r_done_again,
        r_past, r_far_again;
    weft_instant t_rearmed, t_done_again;
    weft_instant d_rearmed, d_done_again;
    size_t armed_far, armed_after_far_drop;
    int wakes_before_guard, wakes_after_guard;
    bool reset_in_time; /* moved before the old deadline */
} resetter;

static weft_poll resetter_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(resetter, r);
    r->pw = probe_start(&g_probe, cx->waker);

    /* Pending an hour away; reset to 2 ms: it completes then. */
    weft_sleep_init(&r->s, WEFT_SEC(3600));
    r->r_far = poll_with(&r->s.base, &r->pw, NULL);
    r->armed_far = wheel_armed();
    r->r_rearmed_pending = reset_and_arm(&r->s, &r->pw, WEFT_MS(2), &r->d_rearmed);
    if (r->r_rearmed_pending == WEFT_PENDING)
        CO_WAIT_UNTIL(&r->co, probe_wakes(&g_probe) >= 1);
    r->r_rearmed = poll_with(&r->s.base, &r->pw, NULL);
    r->t_rearmed = weft_now();

    /* Completed; reset to 1 ms from now: pending again, then ready. */
    r->r_done_again_pending = reset_and_arm(&r->s, &r->pw, WEFT_MS(1), &r->d_done_again);
    if (r->r_done_again_pending == WEFT_PENDING)
        CO_WAIT_UNTIL(&r->co, probe_wakes(&g_probe) >= 2);
    r->r_done_again = poll_with(&r->s.base, &r->pw, NULL);
    r->t_done_again = weft_now();

    /* Reset into the past: ready at once, without the wheel. */
    weft_sleep_reset(&r->s, weft_now() - WEFT_MS(5));
    r->r_past = poll_with(&r->s.base, &r->pw, NULL);

    /* Pending soon, reset to an hour away: the old deadline must not wake
     * it (the guard outlives the old deadline). */
    (void)reset_and_arm(&r->s, &r->pw, WEFT_MS(1), &r->deadline);
    weft_sleep_reset(&r->s, weft_now() + WEFT_SEC(3600));
    r->reset_in_time = weft_now() < r->deadline;
    r->r_far_again = poll_with(&r->s.base, &r->pw, NULL);
    r->wakes_before_guard = probe_wakes(&g_probe);
    weft_sleep_until_init(&r->guard, r->deadline + WEFT_MS(2));
    WEFT_AWAIT(&r->co, cx, &r->guard.base, NULL);
    r->wakes_after_guard = probe_wakes(&g_probe);
    weft_future_drop(&r->s.base); /* cancels the hour-long timer */
    r->armed_after_far_drop = wheel_armed();
    probe_stop(&g_probe);
    CO_FUTURE_END(r);
}

CO_FUTURE_OPS(resetter, "resetter", 0);

static void test_sleep_reset_rearms(void **state)
{
    (void)state;
    resetter r;
    co_future_init(&r, sizeof r, &resetter_ops, 0);
    assert_int_equal(weft_block_on(g_rt, &r.base, NULL, 0), 0);
    assert_int_equal(r.r_far, WEFT_PENDING);
    assert_int_equal(r.armed_far, 1);
    assert_int_equal(r.r_rearmed_pending, WEFT_PENDING);
    assert_int_equal(r.r_rearmed, WEFT_READY);
    assert_true(r.t_rearmed >= r.d_rearmed);
    assert_int_equal(r.r_done_again_pending, WEFT_PENDING);
    assert_int_equal(r.r_done_again, WEFT_READY);
    assert_true(r.t_done_again >= r.d_done_again);
    assert_int_equal(r.r_past, WEFT_READY);
    assert_int_equal(r.r_far_again, WEFT_PENDING);
    assert_int_equal(r.armed_after_far_drop, 0);
    assert_int_equal(probe_clones(&g_probe), 0);
    if (!r.reset_in_time) {
        assert_false(rt_is_sim(g_rt)); /* see assert_disarmed_silently */
        skip(); /* descheduled past the old deadline: it may have fired */
    }
    assert_int_equal(r.wakes_after_guard, r.wakes_before_guard);
    assert_int_equal(r.wakes_before_guard, 2);
}

/* ==== timeout ============================================================ */

/* An hour-long timeout around a countdown (fresh counts `n`) that will not
 * let it expire. */
static void timed_countdown_hour(timed_countdown *tc, countdown_counts *n, int pending, int value)
{
    countdown_start(&tc->inner, n, pending, value, WEFT_F_SEND);
    assert_int_equal(weft_timeout_at_init(&tc->t, &tc->inner.base, rt_now(g_rt) + WEFT_SEC(3600)),
                     0);
}

/* The timeout dropped its inner future (counts `n`) exactly once, and no
 * timer is left in the wheel. */
static void assert_inner_dropped_once_and_disarmed(countdown_counts *n)
{
    assert_int_equal(weft_atomic_load_acquire(&n->drops), 1);
    assert_int_equal(wheel_armed(), 0);
}

static void test_timeout_inner_first_copies_output(void **state)
{
    (void)state;
    countdown_counts n;
    timed_countdown tc;
    timed_countdown_hour(&tc, &n, 3, 4242);
    assert_int_equal(weft_future_out_size(&tc.t.base), sizeof(int));
    int out = -1;
    assert_int_equal(weft_block_on(g_rt, &tc.t.base, &out, sizeof out), 0);
    assert_int_equal(tc.t.status, 0);
    assert_int_equal(out, 4242);
    assert_int_equal(weft_atomic_load_acquire(&n.polls), 4);
    /* The hour-long timer went with it. */
    assert_inner_dropped_once_and_disarmed(&n);
}

/* Initialised on this stack frame, then copied into a task by weft_spawn:
 * the task's timeout must drive the task's copy of the inner future, not
 * the original left behind here (which is scribbled over to catch that). */
static void test_timeout_spawned_together_with_its_inner_uses_the_copy(void **state)
{
    (void)state;
    countdown_counts n;
    timed_countdown tc;
    timed_countdown_hour(&tc, &n, 2, 5151);
    weft_join j;
    assert_int_equal(weft_spawn(g_rt, &tc.t.base, sizeof tc, &j), 0);
    memset(&tc.inner, 0xa5, sizeof tc.inner);
    int out = -1;
    assert_int_equal(weft_block_on(g_rt, &j.base, &out, sizeof out), 0);
    assert_int_equal(j.status, 0);
    assert_int_equal(out, 5151);
    assert_int_equal(weft_atomic_load_acquire(&n.polls), 3);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
}

static void test_timeout_expires_drops_inner_once_and_zeroes_output(void **state)
{
    (void)state;
    countdown_counts n;
    timed_never tn;
    never_start(&tn.inner, &n, WEFT_F_SEND);
    assert_int_equal(weft_timeout_at_init(&tn.t, &tn.inner.base, rt_now(g_rt) + WEFT_MS(2)), 0);
    weft_instant deadline = tn.t.sleep.deadline;
    int out = 0x5a5a5a5a;
    assert_int_equal(weft_block_on(g_rt, &tn.t.base, &out, sizeof out), 0);
    assert_true(rt_now(g_rt) >= deadline);
    assert_int_equal(tn.t.status, -ETIMEDOUT);
    assert_int_equal(out, 0);
    assert_true(weft_atomic_load_acquire(&n.polls) >= 1);
    /* Once at expiry, not again when block_on dropped the timeout. */
    assert_inner_dropped_once_and_disarmed(&n);
}

static void test_timeout_inner_ready_at_once_wins_past_deadline(void **state)
{
    (void)state;
    /* Deadline long gone, inner ready on its first poll: the inner future
     * is polled first, so it wins. */
    countdown_counts n;
    timed_countdown tc;
    countdown_start(&tc.inner, &n, 0, 77, WEFT_F_SEND);
    assert_int_equal(weft_timeout_at_init(&tc.t, &tc.inner.base, rt_now(g_rt) - WEFT_MS(10)), 0);
    int out = 0;
    assert_int_equal(weft_block_on(g_rt, &tc.t.base, &out, sizeof out), 0);
    assert_int_equal(tc.t.status, 0);
    assert_int_equal(out, 77);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);

    /* Same with weft_ready as the inner future and a deadline of 0. */
    weft_ready rd;
    int v = 99;
    assert_int_equal(weft_ready_init(&rd, &v, sizeof v), 0);
    weft_timeout t;
    assert_int_equal(weft_timeout_at_init(&t, &rd.base, 0), 0);
    out = 0;
    assert_int_equal(weft_block_on(g_rt, &t.base, &out, sizeof out), 0);
    assert_int_equal(t.status, 0);
    assert_int_equal(out, 99);
}

static void test_timeout_past_deadline_with_pending_inner_times_out_at_once(void **state)
{
    (void)state;
    countdown_counts n;
    timed_never tn;
    never_start(&tn.inner, &n, WEFT_F_SEND);
    assert_int_equal(weft_timeout_at_init(&tn.t, &tn.inner.base, weft_now() - 1), 0);
    int out = 1234;
    /* No wheel needed: the deadline is behind us (polled on the main
     * thread, outside any runtime, and no misuse). */
    assert_int_equal(poll_noop(&tn.t.base, &out), WEFT_READY);
    assert_int_equal(tn.t.status, -ETIMEDOUT);
    assert_int_equal(out, 0);
    assert_int_equal(weft_atomic_load_acquire(&n.polls), 1);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
    weft_future_drop(&tn.t.base);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
    assert_true(misuse_reported(0, ""));
}

/* Spawns a timeout it initialises in place (a timeout cannot be copied
 * into a task together with its inner future: see the header). */
typedef struct timeout_task {
    weft_future base;
    weft_co co;
    bool started;
    timed_countdown tc;
    countdown_counts *n;
} timeout_task;

static weft_poll timeout_task_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(timeout_task, t);
    countdown_init(&t->tc.inner, 2, 31, t->n, WEFT_F_SEND);
    if (weft_timeout_init(&t->tc.t, &t->tc.inner.base, WEFT_SEC(3600)) != 0) {
        *(int *)out = -1;
        WEFT_CO_RETURN(&t->co);
    }
    t->started = true;
    WEFT_AWAIT(&t->co, cx, &t->tc.t.base, out);
    if (t->tc.t.status != 0)
        *(int *)out = -2;
    CO_FUTURE_END(t);
}

CO_FUTURE_OPS(timeout_task, "timeout_task", sizeof(int));

static void test_timeout_of_non_send_inner_is_not_send(void **state)
{
    (void)state;
    countdown_counts n;
    timed_countdown tc;
    countdown_start(&tc.inner, &n, 0, 1, 0); /* local only */
    assert_int_equal(weft_timeout_init(&tc.t, &tc.inner.base, WEFT_MS(5)), 0);
    assert_false(weft_future_is_send(&tc.t.base));
    g_misuse_expected = 1;
    assert_int_equal(weft_spawn(g_rt, &tc.t.base, sizeof tc, NULL), -EPERM);
    assert_true(misuse_reported(1, "weft_timeout"));
    /* Still ours: nothing was spawned, nothing dropped. */
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 0);
    weft_future_drop(&tc.t.base);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
    assert_int_equal(weft_atomic_load_acquire(&n.polls), 0);

    /* A Send inner makes a Send timeout, which runs on a worker. */
    countdown_init(&tc.inner, 0, 1, &n, WEFT_F_SEND);
    assert_int_equal(weft_timeout_init(&tc.t, &tc.inner.base, WEFT_MS(5)), 0);
    assert_true(weft_future_is_send(&tc.t.base));
    weft_future_drop(&tc.t.base);


    countdown_counts m;
    countdown_counts_init(&m);
    timeout_task tt;
    co_future_init(&tt, sizeof tt, &timeout_task_ops, WEFT_F_SEND);
    tt.started = false;
    tt.n = &m;
    int out = 0;
    assert_int_equal(spawn_blocking(g_rt, &tt.base, sizeof tt, &out, sizeof out), 0);
    assert_int_equal(out, 31);
    assert_inner_dropped_once_and_disarmed(&m);
}

/* Drop a pending timeout: the inner future is dropped once and the timer
 * unlinked, its waker released and never woken. */
static void timeout_arm(drop_scene *d)
{
    for (int i = 0; i < RETRIES && !d->pending; i++) {
        /* A retry (deadline passed before the first poll: it timed out at
         * once) starts over with a fresh inner future. */
        if (i > 0)
            weft_future_drop(&d->tn.t.base);
        never_start(&d->tn.inner, &d->n, WEFT_F_SEND);
        assert_int_equal(weft_timeout_init(&d->tn.t, &d->tn.inner.base, WEFT_MS(2)), 0);
        int scratch;
        d->pending = poll_with(&d->tn.t.base, &d->pw, &scratch) == WEFT_PENDING;
    }
    d->deadline = d->tn.t.sleep.deadline;
}

static void timeout_drop(drop_scene *d)
{
    weft_future_drop(&d->tn.t.base);
    d->drops_after = weft_atomic_load_acquire(&d->n.drops);
}

static const drop_subject timeout_subject = { timeout_arm, timeout_drop };

static void test_timeout_dropped_while_pending_drops_inner_and_disarms(void **state)
{
    (void)state;
    drop_scene d;
    run_drop_scene(&d, &timeout_subject, DROP_WHILE_ARMED);
    assert_true(d.pending);
    assert_int_equal(d.drops_after, 1);
    assert_int_equal(weft_atomic_load_acquire(&d.n.drops), 1);
    assert_disarmed_silently(&d);
}

static void test_timeout_init_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_timeout t;
    weft_future nopoll = { NULL, 0, 0 };
    static const weft_future_ops no_poll_ops = { "no_poll", 0, NULL, NULL, NULL };
    assert_int_equal(weft_timeout_init(NULL, &t.base, 1), -EINVAL);
    assert_int_equal(weft_timeout_init(&t, NULL, 1), -EINVAL);
    assert_int_equal(weft_timeout_init(&t, &nopoll, 1), -EINVAL);
    weft_future_init(&nopoll, &no_poll_ops, WEFT_F_SEND);
    assert_int_equal(weft_timeout_at_init(&t, &nopoll, 1), -EINVAL);
}

/* ---- the borrowing timeout ---------------------------------------------- */

static void test_timeout_borrow_delivers_the_output_and_leaves_inner_to_its_owner(void **state)
{
    (void)state;
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 3, 4242, WEFT_F_SEND);
    weft_timeout t;
    assert_int_equal(weft_timeout_borrow_at_init(&t, &c.base, rt_now(g_rt) + WEFT_SEC(3600)), 0);
    assert_true(weft_future_is_send(&t.base));
    assert_int_equal(weft_future_out_size(&t.base), sizeof(int));
    /* Moved before its first poll, without its inner future (it holds the
     * inner's address); the old copy is scribbled over. */
    weft_timeout moved;
    memcpy(&moved, &t, sizeof t);
    memset(&t, 0xa5, sizeof t);
    int out = -1;
    assert_int_equal(weft_block_on(g_rt, &moved.base, &out, sizeof out), 0);
    assert_int_equal(moved.status, 0);
    assert_int_equal(out, 4242);
    assert_int_equal(weft_atomic_load_acquire(&n.polls), 4);
    /* Finished, but not the timeout's to drop; its timer is gone. */
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 0);
    assert_int_equal(wheel_armed(), 0);
#ifndef NDEBUG
    /* Finished, it cannot be borrowed again (debug builds tell). */
    g_misuse_expected = 1;
    assert_int_equal(weft_timeout_borrow_init(&t, &c.base, WEFT_SEC(1)), -EINVAL);
    assert_true(misuse_reported(1, "finished"));
#endif
    weft_future_drop(&c.base);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
}

static void test_timeout_borrow_expires_and_leaves_inner_pending(void **state)
{
    (void)state;
    countdown_counts n;
    never nv;
    never_start(&nv, &n, WEFT_F_SEND);
    weft_timeout t;
    assert_int_equal(weft_timeout_borrow_at_init(&t, &nv.base, rt_now(g_rt) + WEFT_MS(2)), 0);
    weft_instant deadline = t.sleep.deadline;
    int out = 0x5a5a5a5a;
    assert_int_equal(weft_block_on(g_rt, &t.base, &out, sizeof out), 0);
    assert_true(rt_now(g_rt) >= deadline);
    assert_int_equal(t.status, -ETIMEDOUT);
    assert_int_equal(out, 0);
    int polls = weft_atomic_load_acquire(&n.polls);
    assert_true(polls >= 1);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 0);
    assert_int_equal(wheel_armed(), 0);

    /* Still pending where it is: a second timeout, with a deadline already
     * behind us, polls it again (first) and times out at once. */
    assert_int_equal(weft_timeout_borrow_at_init(&t, &nv.base, 0), 0);
    out = 1;
    assert_int_equal(poll_noop(&t.base, &out), WEFT_READY);
    assert_int_equal(t.status, -ETIMEDOUT);
    assert_int_equal(weft_atomic_load_acquire(&n.polls), polls + 1);
    weft_future_drop(&t.base);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 0);
    weft_future_drop(&nv.base); /* by its owner, once */
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
    assert_true(misuse_reported(0, ""));
}

/* What the borrowing form is for: wait for a job under a deadline; past
 * it, the join handle is still there, to be waited for again, aborted or
 * cancelled. */
static void test_timeout_borrow_of_a_join_then_wait_again_or_abort(void **state)
{
    (void)state;
    weft_timeout t;
    weft_join j;
    int out = -1;

    /* Waited for again, under a later deadline. */
    gate g;
    gate_init(&g);
    gated gd = gated_make(&g, 7);
    assert_int_equal(weft_spawn(g_rt, &gd.base, sizeof gd, &j), 0);
    assert_int_equal(weft_timeout_borrow_at_init(&t, &j.base, rt_now(g_rt) + WEFT_MS(2)), 0);
    assert_int_equal(weft_block_on(g_rt, &t.base, &out, sizeof out), 0);
    assert_int_equal(t.status, -ETIMEDOUT);
    assert_non_null(j.task); /* the handle is still live */
    assert_false(weft_join_is_finished(&j));
    gate_open(&g);
    assert_int_equal(weft_timeout_borrow_at_init(&t, &j.base, rt_now(g_rt) + WEFT_SEC(3600)), 0);
    assert_int_equal(weft_block_on(g_rt, &t.base, &out, sizeof out), 0);
    assert_int_equal(t.status, 0);
    assert_int_equal(j.status, 0);
    assert_int_equal(out, 7);
    weft_future_drop(&j.base);
    gate_fini(&g);

    /* Aborted, then waited for (by weft_block_on, where the timeout left
     * it): the task's future is dropped and the handle says so. */
    countdown_counts n;
    never nv;
    never_start(&nv, &n, WEFT_F_SEND);
    assert_int_equal(weft_spawn(g_rt, &nv.base, sizeof nv, &j), 0);
    assert_int_equal(weft_timeout_borrow_at_init(&t, &j.base, rt_now(g_rt) + WEFT_MS(2)), 0);
    assert_int_equal(weft_block_on(g_rt, &t.base, &out, sizeof out), 0);
    assert_int_equal(t.status, -ETIMEDOUT);
    weft_join_abort(&j);
    out = -1;
    assert_int_equal(weft_block_on(g_rt, &j.base, &out, sizeof out), 0);
    assert_int_equal(j.status, -ECANCELED);
    assert_int_equal(out, 0);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);

    /* Cancelled: aborted and the handle dropped in one call. */
    never_start(&nv, &n, WEFT_F_SEND);
    assert_int_equal(weft_spawn(g_rt, &nv.base, sizeof nv, &j), 0);
    assert_int_equal(weft_timeout_borrow_at_init(&t, &j.base, rt_now(g_rt) + WEFT_MS(2)), 0);
    assert_int_equal(weft_block_on(g_rt, &t.base, &out, sizeof out), 0);
    assert_int_equal(t.status, -ETIMEDOUT);
    weft_join_cancel(&j);
    RT_WAIT_UNTIL(g_rt, weft_atomic_load_acquire(&n.drops) >= 1);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
    assert_true(misuse_reported(0, ""));
}

/* Drop a pending borrowing timeout: its timer is unlinked as for the
 * owning form, and the inner future is left as it was — pending, the
 * caller's to poll again and to drop. */
static void borrow_arm(drop_scene *d)
{
    never_start(&d->tn.inner, &d->n, WEFT_F_SEND);
    for (int i = 0; i < RETRIES && !d->pending; i++) {
        /* A retry (the deadline passed before the first poll) takes a
         * fresh timeout around the same inner future, still pending. */
        if (i > 0)
            weft_future_drop(&d->tn.t.base);
        assert_int_equal(weft_timeout_borrow_init(&d->tn.t, &d->tn.inner.base, WEFT_MS(2)), 0);
        int scratch;
        d->pending = poll_with(&d->tn.t.base, &d->pw, &scratch) == WEFT_PENDING;
    }
    d->deadline = d->tn.t.sleep.deadline;
}

static void borrow_drop(drop_scene *d)
{
    weft_future_drop(&d->tn.t.base);
    d->drops_after = weft_atomic_load_acquire(&d->n.drops);
    int scratch;
    d->inner_after = poll_noop(&d->tn.inner.base, &scratch);
    weft_future_drop(&d->tn.inner.base);
}

static const drop_subject borrow_subject = { borrow_arm, borrow_drop };

static void test_timeout_borrow_dropped_while_pending_leaves_inner_pending(void **state)
{
    (void)state;
    drop_scene d;
    run_drop_scene(&d, &borrow_subject, DROP_WHILE_ARMED);
    assert_true(d.pending);
    assert_int_equal(d.drops_after, 0);
    assert_int_equal(d.inner_after, WEFT_PENDING);
    assert_int_equal(weft_atomic_load_acquire(&d.n.drops), 1); /* by its owner */
    assert_true(misuse_reported(0, ""));
    assert_disarmed_silently(&d);
}

static void test_timeout_borrow_init_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_timeout t;
    weft_future bad = { NULL, 0, 0 };
    static const weft_future_ops no_poll_ops = { "no_poll", 0, NULL, NULL, NULL };
    static const weft_future_ops varies_ops = { "varies_without_size", WEFT_OUT_SIZE_VARIES,
                                                countdown_poll, NULL, NULL };
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 2, 1, WEFT_F_SEND);
    assert_int_equal(weft_timeout_borrow_init(NULL, &c.base, 1), -EINVAL);
    assert_int_equal(weft_timeout_borrow_init(&t, NULL, 1), -EINVAL);
    assert_int_equal(weft_timeout_borrow_init(&t, &bad, 1), -EINVAL);
    weft_future_init(&bad, &no_poll_ops, WEFT_F_SEND);
    assert_int_equal(weft_timeout_borrow_at_init(&t, &bad, 1), -EINVAL);
    weft_future_init(&bad, &varies_ops, WEFT_F_SEND);
    assert_int_equal(weft_timeout_borrow_at_init(&t, &bad, 1), -EINVAL);
#ifndef NDEBUG
    /* Moved since its first poll: refused and reported at init, rather
     * than every poll of it refused until the deadline. */
    int out;
    assert_int_equal(poll_noop(&c.base, &out), WEFT_PENDING);
    countdown moved = c;
    g_misuse_expected = 1;
    assert_int_equal(weft_timeout_borrow_init(&t, &moved.base, WEFT_SEC(1)), -EINVAL);
    assert_true(misuse_reported(1, "moved"));
    assert_true(misuse_reported(1, "weft_timeout_borrow_init"));
#endif
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 0);
    weft_future_drop(&c.base);

    /* Send exactly when the inner future is. */
    countdown_start(&c, &n, 0, 1, 0);
    assert_int_equal(weft_timeout_borrow_init(&t, &c.base, WEFT_SEC(1)), 0);
    assert_false(weft_future_is_send(&t.base));
    weft_future_drop(&t.base);
    weft_future_drop(&c.base);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
}

/* ==== interval =========================================================== */

/* Period 2.5 ms: short, yet 3.5 periods late puts a tick 6.25 ms behind,
 * past the 5 ms the interval forgives as ordinary timer lateness. */
#define IV_PERIOD WEFT_US(2500)
#define IV_ITEMS 5

typedef struct ticker {
    weft_future base;
    weft_co co;
    weft_interval iv;
    weft_missed_tick policy;
    bool late; /* busy-wait 3.5 periods after the first tick */
    int k;
    weft_next rc;
    bool live; /* iv initialised */
    weft_instant start;
    weft_instant item[IV_ITEMS];
    weft_instant got[IV_ITEMS];     /* clock when the item arrived */
    bool at_once[IV_ITEMS];         /* item arrived on its first poll */
    weft_instant before_late_poll, after_late_poll;
    weft_sleep busy; /* how a late consumer spends 3.5 periods */
} ticker;

static weft_poll ticker_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(ticker, t);
    t->start = weft_now();
    if (weft_interval_at_init(&t->iv, t->start, IV_PERIOD, t->policy) != 0)
        WEFT_CO_RETURN(&t->co);
    t->live = true;
    for (t->k = 0; t->k < IV_ITEMS; t->k++) {
        /* Try once by hand to see whether the item is there at once. */
        t->rc = weft_stream_poll_next(&t->iv.base, cx, &t->item[t->k]);
        t->at_once[t->k] = t->rc == WEFT_NEXT_ITEM;
        if (t->rc == WEFT_NEXT_PENDING)
            CO_NEXT(&t->co, cx, &t->iv.base, &t->item[t->k], t->rc);
        t->got[t->k] = weft_now();
        if (t->k == 0 && t->late) {
            /* A slow consumer, away 3.5 periods (on a sleep of its own:
             * the interval's timer is not armed meanwhile, as with a
             * consumer busy elsewhere; and a sim's clock moves). */
            weft_sleep_until_init(&t->busy, t->got[0] + IV_PERIOD * 7 / 2);
            WEFT_AWAIT(&t->co, cx, &t->busy.base, NULL);
            t->before_late_poll = weft_now();
        }
        if (t->k == 1 && t->late)
            t->after_late_poll = t->got[1];
    }
    CO_FUTURE_END(t);
}

static void ticker_drop(weft_future *f)
{
    ticker *t = (ticker *)f;
    weft_co_drop(&t->co); /* the busy sleep, if it waits there */
    if (t->live)
        weft_stream_drop(&t->iv.base);
}

static const weft_future_ops ticker_ops = { "ticker", 0, ticker_poll, ticker_drop, NULL };

static void run_ticker(ticker *t, weft_missed_tick policy, bool late)
{
    co_future_init(t, sizeof *t, &ticker_ops, 0);
    t->policy = policy;
    t->late = late;
    assert_int_equal(weft_block_on(g_rt, &t->base, NULL, 0), 0);
    assert_int_equal(t->k, IV_ITEMS);
    /* Whatever the policy: never early, and the first tick is immediate. */
    assert_true(t->at_once[0]);
    assert_int_equal(t->item[0], t->start);
    for (int k = 0; k < IV_ITEMS; k++)
        assert_true(t->got[k] >= t->item[k]);
    assert_int_equal(wheel_armed(), 0);
}

static void test_interval_first_tick_immediate_then_period_apart(void **state)
{
    (void)state;
    ticker t;
    run_ticker(&t, WEFT_MISSED_BURST, false);
    for (int k = 1; k < IV_ITEMS; k++)
        assert_int_equal(t.item[k] - t.item[k - 1], IV_PERIOD);
}

static void test_interval_missed_ticks_burst_fires_them_back_to_back(void **state)
{
    (void)state;
    ticker t;
    run_ticker(&t, WEFT_MISSED_BURST, true);
    /* start+1p, +2p, +3p were all due when the consumer came back: each
     * arrives on its first poll. */
    for (int k = 1; k <= 3; k++) {
        assert_true(t.at_once[k]);
        assert_int_equal(t.item[k], t.start + IV_PERIOD * (weft_duration)k);
    }
    /* And the schedule continues on the original grid. */
    assert_int_equal(t.item[4], t.start + IV_PERIOD * 4);
}

/* A late consumer under `policy`: the missed tick arrives at once, with
 * its scheduled instant. */
static void run_late_ticker(ticker *t, weft_missed_tick policy)
{
    run_ticker(t, policy, true);
    assert_true(t->at_once[1]);
    assert_int_equal(t->item[1], t->start + IV_PERIOD);
}

static void test_interval_missed_ticks_delay_restarts_from_now(void **state)
{
    (void)state;
    ticker t;
    run_late_ticker(&t, WEFT_MISSED_DELAY);
    /* The next one is a full period after the late poll. */
    assert_true(t.item[2] >= t.before_late_poll + IV_PERIOD);
    assert_true(t.item[2] <= t.after_late_poll + IV_PERIOD);
}

static void test_interval_missed_ticks_skip_stays_on_the_grid(void **state)
{
    (void)state;
    ticker t;
    run_late_ticker(&t, WEFT_MISSED_SKIP);
    /* The next one: on the original grid, in the future of the late poll,
     * the missed ones skipped. */
    assert_int_equal((t.item[2] - t.start) % IV_PERIOD, 0);
    assert_true(t.item[2] > t.before_late_poll);
    assert_true(t.item[2] <= t.after_late_poll + IV_PERIOD);
    assert_true(t.item[2] >= t.start + IV_PERIOD * 4);
    for (int k = 3; k < IV_ITEMS; k++)
        assert_int_equal((t.item[k] - t.start) % IV_PERIOD, 0);
}

static void test_interval_init_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_interval iv;
    assert_int_equal(weft_interval_init(NULL, WEFT_MS(1), WEFT_MISSED_BURST), -EINVAL);
    assert_int_equal(weft_interval_init(&iv, 0, WEFT_MISSED_BURST), -EINVAL);
    assert_int_equal(weft_interval_init(&iv, WEFT_MS(1), (weft_missed_tick)3), -EINVAL);
    assert_int_equal(weft_interval_at_init(&iv, 0, 0, WEFT_MISSED_SKIP), -EINVAL);
}

/* Drop an interval while its next tick is armed: silent afterwards. */
static void interval_arm(drop_scene *d)
{
    for (int i = 0; i < RETRIES && !d->pending; i++) {
        /* The second tick is 2 ms after the first: retried if it was
         * already due when polled. */
        if (i > 0)
            weft_stream_drop(&d->iv.base);
        assert_int_equal(weft_interval_init(&d->iv, WEFT_MS(2), WEFT_MISSED_BURST), 0);
        weft_cx pcx;
        weft_cx_init(&pcx, &d->pw);
        weft_instant second;
        d->r0 = weft_stream_poll_next(&d->iv.base, &pcx, &d->tick0);
        d->r1 = weft_stream_poll_next(&d->iv.base, &pcx, &second);
        d->pending = d->r1 == WEFT_NEXT_PENDING;
    }
    d->deadline = d->tick0 + WEFT_MS(2);
}

static void interval_drop(drop_scene *d)
{
    weft_stream_drop(&d->iv.base);
}

static const drop_subject interval_subject = { interval_arm, interval_drop };

static void test_interval_dropped_while_armed_is_never_woken(void **state)
{
    (void)state;
    drop_scene d;
    run_drop_scene(&d, &interval_subject, DROP_WHILE_ARMED);
    assert_int_equal(d.r0, WEFT_NEXT_ITEM);
    assert_int_equal(d.r1, WEFT_NEXT_PENDING);
    assert_disarmed_silently(&d);
}

/* ==== many sleeps at random ============================================== */

/* STORM_TASKS tasks create STORM_PER_TASK sleeps each (deadlines 0-3 ms),
 * and drop each at a random point: before its first poll, right after
 * arming (or a few yields later), after its timer fired (woken, not polled
 * again), or after awaiting it to completion. Every sleep is wrapped in a
 * future that polls it with a tracking waker of its own, so each wake is
 * attributed to its sleep: a sleep whose drop cancelled its timer must
 * never be woken afterwards, a wrapper is never polled after its drop,
 * each timer fires at most once, nothing completes early, and every
 * tracking waker is released in the end. */
#define STORM_TASKS 100
#define STORM_PER_TASK 1000
#define STORM_N (STORM_TASKS * STORM_PER_TASK)

typedef struct srec {
    _Atomic uint8_t dropped; /* the wrapper was dropped */
    _Atomic uint8_t quiet;   /* dropped with its timer cancelled: no wake may come */
    _Atomic uint16_t wakes;
} srec;

static srec *g_srec;
static _Atomic long v_woken_after_cancel, v_polled_after_drop, v_armed_after_drop, v_early,
    v_double_fire, v_double_drop;
static _Atomic long n_before_poll, n_while_armed, n_after_fire, n_completed, n_dropped;
static _Atomic long g_twakers_live;

/* A tracking waker: one per poll, reference counted (the wheel keeps a
 * clone while the timer is armed). Forwards wakes to the task. */
typedef struct twaker {
    _Atomic int refs;
    srec *r;
    weft_waker task;
} twaker;

TEST_WAKER_OPS(tw);

static twaker *tw_new(srec *r, const weft_waker *task)
{
    twaker *t = malloc(sizeof *t);
    if (!t)
        abort();
    weft_atomic_init(&t->refs, 1);
    t->r = r;
    t->task = weft_waker_clone(task);
    weft_atomic_fetch_add_relaxed(&g_twakers_live, 1);
    return t;
}

static weft_waker tw_clone(const void *data)
{
    /* Relaxed: a new reference is made from an existing one. */
    weft_atomic_fetch_add_relaxed(&((twaker *)data)->refs, 1);
    return waker_of(&tw_ops, data);
}

static void tw_release(twaker *t)
{
    /* AcqRel: the last holder sees every other holder's use first. */
    if (weft_atomic_fetch_sub_acq_rel(&t->refs, 1) == 1) {
        weft_waker_drop(&t->task);
        free(t);
        weft_atomic_fetch_sub_acq_rel(&g_twakers_live, 1);
    }
}

static void tw_note(twaker *t)
{
    srec *r = t->r;
    if (weft_atomic_fetch_add_acq_rel(&r->wakes, 1) >= 1)
        weft_atomic_fetch_add_relaxed(&v_double_fire, 1);
    /* Acquire: pairs with the release store of `quiet` after the drop. */
    if (weft_atomic_load_acquire(&r->quiet))
        weft_atomic_fetch_add_relaxed(&v_woken_after_cancel, 1);
    weft_waker_wake_by_ref(&t->task);
}

static void tw_wake(void *data)
{
    tw_note(data);
    tw_release(data);
}

static void tw_wake_by_ref(const void *data)
{
    tw_note((twaker *)data);
}

static void tw_drop(void *data)
{
    tw_release(data);
}

/* The wrapper around one sleep. */
typedef struct tsleep {
    weft_future base;
    weft_sleep s;
    srec *r;
} tsleep;

static weft_poll tsleep_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(tsleep, t);
    (void)out;
    if (weft_atomic_load_acquire(&t->r->dropped))
        weft_atomic_fetch_add_relaxed(&v_polled_after_drop, 1);
    twaker *tw = tw_new(t->r, cx->waker);
    weft_waker w = waker_of(&tw_ops, tw);
    weft_cx inner;
    inner.waker = &w;
    inner.budget = cx->budget;
    inner.reserved_ = 0;
    weft_poll r = weft_future_poll(&t->s.base, &inner, NULL);
    cx->budget = inner.budget;
    tw_release(tw); /* the wheel holds its own clone if it armed */
    if (r == WEFT_READY) {
        if (weft_now() < t->s.deadline)
            weft_atomic_fetch_add_relaxed(&v_early, 1);
        weft_atomic_fetch_add_relaxed(&n_completed, 1);
    }
    return r;
}

static void tsleep_drop(weft_future *f)
{
    tsleep *t = (tsleep *)f;
    weft_future_drop(&t->s.base);
    /* What the drop left: IDLE (never armed, or cancelled: the wheel let
     * go of it for good) or FIRED (the wheel took its waker; a wake may
     * still be on its way). Never still armed. */
    uint32_t st = weft_atomic_load_acquire(&t->s.entry.state_);
    if (st == WEFT__TIMER_ARMED)
        weft_atomic_fetch_add_relaxed(&v_armed_after_drop, 1);
    if (st != WEFT__TIMER_FIRED)
        weft_atomic_store_release(&t->r->quiet, 1); /* pairs with tw_note */
    if (weft_atomic_fetch_add_acq_rel(&t->r->dropped, 1) != 0)
        weft_atomic_fetch_add_relaxed(&v_double_drop, 1);
    weft_atomic_fetch_add_relaxed(&n_dropped, 1);
}

static const weft_future_ops tsleep_ops = { "tsleep", 0, tsleep_poll, tsleep_drop, NULL };

static void tsleep_init(tsleep *t, srec *r, weft_duration d)
{
    weft_future_init(&t->base, &tsleep_ops, WEFT_F_SEND);
    weft_sleep_init(&t->s, d);
    t->r = r;
}

typedef struct storm_task {
    weft_future base;
    weft_co co;
    uint64_t rng;
    unsigned task;
    unsigned i, y, ny, mode;
    bool live; /* ts is initialised and not dropped */
    tsleep ts;
} storm_task;

static void storm_drop_sleep(storm_task *t)
{
    if (t->live) {
        t->live = false;
        weft_future_drop(&t->ts.base);
    }
}

static weft_poll storm_task_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(storm_task, t);
    for (t->i = 0; t->i < STORM_PER_TASK; t->i++) {
        /* Yield now and then so one turn never spends the coop budget
         * (a budget self-wake would look like a second timer wake). */
        if (t->i % 16 == 15)
            WEFT_CO_YIELD(&t->co, cx);
        {
            uint64_t r = rng_next(&t->rng);
            weft_duration d = r % 8 == 0 ? 0 : (weft_duration)(r >> 8) % (WEFT_MS(3) + 1);
            tsleep_init(&t->ts, &g_srec[t->task * STORM_PER_TASK + t->i], d);
            t->live = true;
            t->mode = (unsigned)(r >> 40) % 4;
            t->ny = (unsigned)(r >> 44) % 3;
        }
        if (t->mode == 0) {
            weft_atomic_fetch_add_relaxed(&n_before_poll, 1);
            storm_drop_sleep(t);
        } else if (t->mode == 1) {
            /* Armed, then dropped now or after a few turns (it may fire
             * meanwhile). */
            weft_atomic_fetch_add_relaxed(&n_while_armed, 1);
            if (weft_future_poll(&t->ts.base, cx, NULL) == WEFT_PENDING)
                for (t->y = 0; t->y < t->ny; t->y++)
                    WEFT_CO_YIELD(&t->co, cx);
            storm_drop_sleep(t);
        } else if (t->mode == 2) {
            t->live = false; /* WEFT_AWAIT owns it from here and drops it */
            WEFT_AWAIT(&t->co, cx, &t->ts.base, NULL);
        } else {
            /* Fired (its waker woken), then dropped without a last poll. */
            weft_atomic_fetch_add_relaxed(&n_after_fire, 1);
            if (weft_future_poll(&t->ts.base, cx, NULL) == WEFT_PENDING)
                CO_WAIT_UNTIL(&t->co, weft_atomic_load_acquire(&t->ts.r->wakes) > 0);
            storm_drop_sleep(t);
        }
    }
    CO_FUTURE_END(t);
}

static void storm_task_drop(weft_future *f)
{
    storm_task *t = (storm_task *)f;
    weft_co_drop(&t->co);
    storm_drop_sleep(t);
}

static const weft_future_ops storm_task_ops = { "storm_task", 0, storm_task_poll,
                                                storm_task_drop, NULL };

static void test_many_sleeps_created_and_dropped_at_random(void **state)
{
    (void)state;
    uint64_t seed = 0x5eed7133ull;
    const char *env = getenv("WEFT_TEST_SEED");
    if (env)
        seed = strtoull(env, NULL, 0);
    print_message("seed %" PRIu64 "\n", seed);
    g_srec = calloc(STORM_N, sizeof *g_srec);
    assert_non_null(g_srec);
    _Atomic long *ctrs[] = { &v_woken_after_cancel, &v_polled_after_drop, &v_armed_after_drop,
                             &v_early, &v_double_fire, &v_double_drop, &n_before_poll,
                             &n_while_armed, &n_after_fire, &n_completed, &n_dropped,
                             &g_twakers_live };
    for (size_t i = 0; i < sizeof ctrs / sizeof ctrs[0]; i++)
        weft_atomic_store_relaxed(ctrs[i], 0);

    static weft_join joins[STORM_TASKS];
    for (unsigned k = 0; k < STORM_TASKS; k++) {
        storm_task t;
        co_future_init(&t, sizeof t, &storm_task_ops, WEFT_F_SEND);
        t.task = k;
        t.rng = (seed ^ ((uint64_t)(k + 1) * 0x9e3779b97f4a7c15ull)) | 1;
        assert_int_equal(weft_spawn(g_rt, &t.base, sizeof t, &joins[k]), 0);
    }
    for (unsigned k = 0; k < STORM_TASKS; k++) {
        assert_int_equal(weft_block_on(g_rt, &joins[k].base, NULL, 0), 0);
        assert_int_equal(joins[k].status, 0);
    }
    /* Wakes already taken out of the wheel may still be running. */
    weft_instant start = weft_now();
    while (weft_atomic_load_acquire(&g_twakers_live) != 0) {
        if (wait_expired(start))
            fail_msg("seed %" PRIu64 ": %ld tracking wakers never released", seed,
                     weft_atomic_load_acquire(&g_twakers_live));
        sched_yield();
    }
    long before = weft_atomic_load_relaxed(&n_before_poll),
         armed = weft_atomic_load_relaxed(&n_while_armed),
         fired = weft_atomic_load_relaxed(&n_after_fire);
    print_message("dropped: %ld before first poll, %ld armed, %ld after firing, "
                  "%ld completed\n",
                  before, armed, fired, weft_atomic_load_relaxed(&n_completed));
    assert_int_equal(weft_atomic_load_relaxed(&n_dropped), STORM_N);
    for (size_t i = 0; i < STORM_N; i++)
        if (weft_atomic_load_relaxed(&g_srec[i].dropped) != 1)
            fail_msg("seed %" PRIu64 ": sleep %zu dropped %u times", seed, i,
                     (unsigned)weft_atomic_load_relaxed(&g_srec[i].dropped));
    assert_int_equal(weft_atomic_load_relaxed(&v_woken_after_cancel), 0);
    assert_int_equal(weft_atomic_load_relaxed(&v_polled_after_drop), 0);
    assert_int_equal(weft_atomic_load_relaxed(&v_armed_after_drop), 0);
    assert_int_equal(weft_atomic_load_relaxed(&v_early), 0);
    assert_int_equal(weft_atomic_load_relaxed(&v_double_fire), 0);
    assert_int_equal(weft_atomic_load_relaxed(&v_double_drop), 0);
    assert_true(before > 0 && armed > 0 && fired > 0);
    assert_int_equal(wheel_armed(), 0);
    free(g_srec);
    g_srec = NULL;
}

/* ==== shutdown =========================================================== */

/* Tasks waiting an hour on a sleep, a timeout or an interval's second tick.
 * Shutdown must return (the driver's hour-long futex wait is cut short),
 * drop every future once, and leave no timer or allocation behind. */
#define SHUT_TASKS 30

static _Atomic long g_shut_armed;
static _Atomic int g_shut_drops[SHUT_TASKS];
static _Atomic int g_shut_sleep_drops[SHUT_TASKS];
static countdown_counts g_shut_inner[SHUT_TASKS];

/* A sleep that counts its first PENDING and its drop. */
typedef struct hour_sleep {
    weft_future base;
    weft_sleep s;
    int id;
    bool counted;
} hour_sleep;

static weft_poll hour_sleep_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(hour_sleep, h);
    weft_poll r = weft_future_poll(&h->s.base, cx, out);
    if (r == WEFT_PENDING && !h->counted) {
        h->counted = true;
        weft_atomic_fetch_add_acq_rel(&g_shut_armed, 1);
    }
    return r;
}

static void hour_sleep_drop(weft_future *f)
{
    hour_sleep *h = (hour_sleep *)f;
    weft_future_drop(&h->s.base);
    weft_atomic_fetch_add_acq_rel(&g_shut_sleep_drops[h->id], 1);
}

static const weft_future_ops hour_sleep_ops = { "hour_sleep", 0, hour_sleep_poll,
                                                hour_sleep_drop, NULL };

typedef struct hour_task {
    weft_future base;
    weft_co co;
    int id;
    bool iv_live;
    hour_sleep hs;
    timed_never tn;
    weft_interval iv;
    weft_instant item;
    weft_next rc;
    int out;
} hour_task;

static weft_poll hour_task_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(hour_task, t);
    if (t->id % 3 == 0) {
        weft_future_init(&t->hs.base, &hour_sleep_ops, WEFT_F_SEND);
        weft_sleep_init(&t->hs.s, WEFT_SEC(3600));
        t->hs.id = t->id;
        t->hs.counted = false;
        WEFT_AWAIT(&t->co, cx, &t->hs.base, NULL);
    } else if (t->id % 3 == 1) {
        never_init(&t->tn.inner, &g_shut_inner[t->id], WEFT_F_SEND);
        if (weft_timeout_init(&t->tn.t, &t->tn.inner.base, WEFT_SEC(3600)) != 0)
            WEFT_CO_RETURN(&t->co);
        /* One poll by hand to count it as armed, then await it. */
        if (weft_future_poll(&t->tn.t.base, cx, &t->out) == WEFT_PENDING) {
            weft_atomic_fetch_add_acq_rel(&g_shut_armed, 1);
            WEFT_AWAIT(&t->co, cx, &t->tn.t.base, &t->out);
        } else {
            weft_future_drop(&t->tn.t.base);
        }
    } else {
        if (weft_interval_init(&t->iv, WEFT_SEC(3600), WEFT_MISSED_DELAY) != 0)
            WEFT_CO_RETURN(&t->co);
        t->iv_live = true;
        CO_NEXT(&t->co, cx, &t->iv.base, &t->item, t->rc); /* the immediate tick */
        /* The next is an hour away: count it once its timer is armed. */
        t->rc = weft_stream_poll_next(&t->iv.base, cx, &t->item);
        if (t->rc == WEFT_NEXT_PENDING) {
            weft_atomic_fetch_add_acq_rel(&g_shut_armed, 1);
            CO_NEXT(&t->co, cx, &t->iv.base, &t->item, t->rc);
        }
    }
    CO_FUTURE_END(t);
}

static void hour_task_drop(weft_future *f)
{
    hour_task *t = (hour_task *)f;
    weft_co_drop(&t->co);
    if (t->iv_live)
        weft_stream_drop(&t->iv.base);
    weft_atomic_fetch_add_acq_rel(&g_shut_drops[t->id], 1);
}

static const weft_future_ops hour_task_ops = { "hour_task", 0, hour_task_poll, hour_task_drop,
                                               NULL };

static void test_shutdown_with_pending_timers_drops_everything_once(void **state)
{
    (void)state;
    weft_atomic_store_relaxed(&g_shut_armed, 0);
    for (int i = 0; i < SHUT_TASKS; i++) {
        weft_atomic_store_relaxed(&g_shut_drops[i], 0);
        weft_atomic_store_relaxed(&g_shut_sleep_drops[i], 0);
        weft_atomic_store_relaxed(&g_shut_inner[i].polls, 0);
        weft_atomic_store_relaxed(&g_shut_inner[i].drops, 0);
    }
    weft_join joins[SHUT_TASKS];
    for (int i = 0; i < SHUT_TASKS; i++) {
        hour_task t;
        co_future_init(&t, sizeof t, &hour_task_ops, WEFT_F_SEND);
        t.id = i;
        assert_int_equal(weft_spawn(g_rt, &t.base, sizeof t, i % 2 ? &joins[i] : NULL), 0);
    }
    RT_WAIT_UNTIL(g_rt, weft_atomic_load_acquire(&g_shut_armed) >= SHUT_TASKS);
    assert_int_equal(wheel_armed(), SHUT_TASKS);

    weft_rt_shutdown(g_rt);
    g_rt = NULL;

    for (int i = 0; i < SHUT_TASKS; i++) {
        assert_int_equal(weft_atomic_load_acquire(&g_shut_drops[i]), 1);
        if (i % 3 == 0)
            assert_int_equal(weft_atomic_load_acquire(&g_shut_sleep_drops[i]), 1);
        if (i % 3 == 1)
            assert_int_equal(weft_atomic_load_acquire(&g_shut_inner[i].drops), 1);
    }
    /* Join handles outlive the runtime and report the cancellation. */
    for (int i = 1; i < SHUT_TASKS; i += 2) {
        assert_true(weft_join_is_finished(&joins[i]));
        assert_int_equal(poll_noop(&joins[i].base, NULL), WEFT_READY);
        assert_int_equal(joins[i].status, -ECANCELED);
        weft_future_drop(&joins[i].base);
    }
}

/* ==== who fires timers =================================================== */

/* A task that naps 1 ms (so the worker driving the timers fires it and
 * runs it: the wake lands in that worker's LIFO slot), then hogs its
 * worker in one long poll until released — CPU-bound user code. It gives
 * up after HOG_GIVE_UP only so a failure ends instead of hanging. */
#define HOG_GIVE_UP WEFT_SEC(10)

static _Atomic long g_hog_running;
static _Atomic bool g_hog_release;

typedef struct hog {
    weft_future base;
    weft_co co;
    weft_sleep nap;
} hog;

static weft_poll hog_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(hog, h);
    weft_sleep_init(&h->nap, WEFT_MS(1));
    WEFT_AWAIT(&h->co, cx, &h->nap.base, NULL);
    weft_atomic_store_release(&g_hog_running, 1);
    {
        weft_instant give_up = weft_now() + HOG_GIVE_UP;
        int gave_up = 0;
        while (!weft_atomic_load_acquire(&g_hog_release)) {
            if (weft_now() > give_up) {
                gave_up = 1;
                break;
            }
            sched_yield();
        }
        *(int *)out = gave_up;
    }
    CO_FUTURE_END(h);
}

CO_FUTURE_OPS(hog, "hog", sizeof(int));

/* One worker is stuck in a long poll, the other is idle: a timer must
 * still fire (the idle, parked worker is there to drive it), without
 * waiting for the busy one to come back. This is a liveness check, not a
 * latency bound: the hog is released only once the sleep completed, so a
 * timer nobody drives would wait for the hog's give-up. */
static void test_sleep_fires_while_the_driving_worker_is_busy(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        weft_atomic_store_relaxed(&g_hog_running, 0);
        weft_atomic_store_relaxed(&g_hog_release, false);
        hog h;
        co_future_init(&h, sizeof h, &hog_ops, WEFT_F_SEND);
        weft_join j;
        assert_int_equal(weft_spawn(g_rt, &h.base, sizeof h, &j), 0);
        WAIT_UNTIL(weft_atomic_load_acquire(&g_hog_running) >= 1);

        weft_sleep s;
        weft_sleep_init(&s, WEFT_MS(2));
        assert_int_equal(weft_block_on(g_rt, &s.base, NULL, 0), 0);
        weft_atomic_store_release(&g_hog_release, true);

        int gave_up = -1;
        assert_int_equal(weft_block_on(g_rt, &j.base, &gave_up, sizeof gave_up), 0);
        assert_int_equal(j.status, 0);
        if (gave_up)
            fail_msg("round %d: a 2 ms sleep did not fire while one worker was idle; it "
                     "waited for the busy worker's poll to end (10 s)", round);
    }
}

/* ==== misuse ============================================================= */

static void test_sleep_polled_outside_runtime_reports_misuse(void **state)
{
    (void)state;
    assert_null(weft_rt_current());
    weft_sleep s;
    weft_sleep_init(&s, WEFT_SEC(3600));
    g_misuse_expected = 2;
    assert_int_equal(poll_noop(&s.base, NULL), WEFT_PENDING);
    assert_true(misuse_reported(1, "weft_sleep"));
    /* It stays pending (and reports again): nothing was armed anywhere. */
    assert_int_equal(poll_noop(&s.base, NULL), WEFT_PENDING);
    assert_true(misuse_reported(2, "weft_sleep"));
    assert_int_equal(weft_atomic_load_relaxed(&s.entry.state_), WEFT__TIMER_IDLE);
    assert_int_equal(wheel_armed(), 0);
    weft_future_drop(&s.base);
#ifdef NDEBUG
    g_misuse_expected = 0;
#endif
}

int main(void)
{
    alarm_watchdog_install("watchdog: test hung (a timer that never fired?)\n");
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
/* The same test on a sim runtime. */
#define S(fn) { #fn "_on_a_sim", fn, setup_sim, teardown, NULL }
    const struct CMUnitTest tests[] = {
        T(test_durations_saturate_instead_of_wrapping),
        T(test_deadlines_saturate_instead_of_wrapping),
        T(test_negative_durations_are_due_and_huge_ones_never),
        T(test_sleep_completes_no_earlier_than_its_deadline),
        T(test_sleeps_complete_in_deadline_order),
        T(test_sleep_until_past_is_ready_on_first_poll),
        T(test_sleep_dropped_before_first_poll_never_arms),
        T(test_sleep_dropped_while_armed_is_never_woken),
        T(test_sleep_dropped_after_firing),
        T(test_sleep_memory_may_be_freed_after_drop),
        T(test_sleep_reset_rearms),
        T(test_timeout_inner_first_copies_output),
        T(test_timeout_spawned_together_with_its_inner_uses_the_copy),
        T(test_timeout_expires_drops_inner_once_and_zeroes_output),
        T(test_timeout_inner_ready_at_once_wins_past_deadline),
        T(test_timeout_past_deadline_with_pending_inner_times_out_at_once),
        T(test_timeout_of_non_send_inner_is_not_send),
        T(test_timeout_dropped_while_pending_drops_inner_and_disarms),
        T(test_timeout_init_rejects_bad_arguments),
        T(test_timeout_borrow_delivers_the_output_and_leaves_inner_to_its_owner),
        T(test_timeout_borrow_expires_and_leaves_inner_pending),
        T(test_timeout_borrow_of_a_join_then_wait_again_or_abort),
        T(test_timeout_borrow_dropped_while_pending_leaves_inner_pending),
        T(test_timeout_borrow_init_rejects_bad_arguments),
        T(test_interval_first_tick_immediate_then_period_apart),
        T(test_interval_missed_ticks_burst_fires_them_back_to_back),
        T(test_interval_missed_ticks_delay_restarts_from_now),
        T(test_interval_missed_ticks_skip_stays_on_the_grid),
        T(test_interval_init_rejects_bad_arguments),
        T(test_interval_dropped_while_armed_is_never_woken),
        T(test_many_sleeps_created_and_dropped_at_random),
        T(test_shutdown_with_pending_timers_drops_everything_once),
        T(test_sleep_polled_outside_runtime_reports_misuse),
        T(test_sleep_fires_while_the_driving_worker_is_busy),

        S(test_negative_durations_are_due_and_huge_ones_never),
        S(test_sleep_completes_no_earlier_than_its_deadline),
        S(test_sleeps_complete_in_deadline_order),
        S(test_sleep_until_past_is_ready_on_first_poll),
        S(test_sleep_dropped_before_first_poll_never_arms),
        S(test_sleep_dropped_while_armed_is_never_woken),
        S(test_sleep_dropped_after_firing),
        S(test_sleep_memory_may_be_freed_after_drop),
        S(test_sleep_reset_rearms),
        S(test_timeout_inner_first_copies_output),
        S(test_timeout_spawned_together_with_its_inner_uses_the_copy),
        S(test_timeout_expires_drops_inner_once_and_zeroes_output),
        S(test_timeout_inner_ready_at_once_wins_past_deadline),
        S(test_timeout_of_non_send_inner_is_not_send),
        S(test_timeout_dropped_while_pending_drops_inner_and_disarms),
        S(test_timeout_borrow_delivers_the_output_and_leaves_inner_to_its_owner),
        S(test_timeout_borrow_expires_and_leaves_inner_pending),
        S(test_timeout_borrow_of_a_join_then_wait_again_or_abort),
        S(test_timeout_borrow_dropped_while_pending_leaves_inner_pending),
        S(test_interval_first_tick_immediate_then_period_apart),
        S(test_interval_missed_ticks_burst_fires_them_back_to_back),
        S(test_interval_missed_ticks_delay_restarts_from_now),
        S(test_interval_missed_ticks_skip_stays_on_the_grid),
        S(test_interval_dropped_while_armed_is_never_woken),
        S(test_many_sleeps_created_and_dropped_at_random),
        S(test_shutdown_with_pending_timers_drops_everything_once),
    };
#undef S
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
