/* Cancel sweeps (weft_cancel_sweep) of the futures of weft/time.h:
 * weft_sleep, weft_timeout in its owning and borrowing forms, and a
 * pending next of a weft_interval — alone and awaited by coroutines. Each
 * run checks what docs/cancel-safety.md promises: a dropped timer is
 * disarmed at once (no timer left armed, no waker left in the wheel, no
 * wake afterwards, and virtual time never goes to its deadline); the
 * owning timeout drops its inner future exactly once; the borrowing one
 * leaves it pending, where it is, and it can still be awaited to the end;
 * a dropped next loses no tick. On virtual time, so the deadlines are
 * exact and cost nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/countdown.h"
#include "support/never.h"
#include "support/sim.h"
#include "support/sweep.h"

#define SEEDS 8
#define CHAOS 0.3

/* Sweeps `c` once with chaos off (N must be `n`) and over SEEDS seeds
 * with every knob at CHAOS. */
static void sweep_both(const weft_sweep_case *c, uint32_t n)
{
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(c, &o);
    assert_int_equal(res.polls, n);
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    res = sweep_pass(c, &o);
    assert_true(res.polls >= n);
}

/* Virtual time since the sim started (outside a run, weft_now() is the
 * monotonic clock). */
static weft_duration elapsed(weft_rt *rt)
{
    weft_sim_stats st;
    return weft_sim_stats_get(rt, &st) == 0 ? st.now - WEFT_SIM_START : WEFT_NEVER;
}

/* A timer dropped while armed is gone at once: nothing of the future is
 * left in the wheel, nothing wakes it afterwards. */
static const char *disarmed(const weft_sweep_run *run)
{
    if (run->wakers_after_drop || run->wakes_after_drop || run->timers_after_drop)
        return sweep_say("after the drop at k=%u: %u waker(s) held, %u wake(s), %u timer(s) "
                         "armed",
                         run->k, run->wakers_after_drop, run->wakes_after_drop,
                         (unsigned)run->timers_after_drop);
    return NULL;
}

/* ---- weft_sleep --------------------------------------------------------------------------- */

typedef struct sleep_case {
    weft_sleep s;
} sleep_case;

static int sleep_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    sleep_case *sc = ctx;
    (void)rt, (void)out;
    weft_sleep_init(&sc->s, WEFT_MS(10));
    *fut = &sc->s.base;
    return 0;
}

static const char *sleep_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    (void)ctx;
    const char *why = disarmed(run);
    if (why)
        return why;
    /* Completed: the clock went to its deadline, or a late tick after it.
     * (Dropped before, the clock may have moved anyway: with chaos on, a
     * poll after its timer fired may still return PENDING.) */
    weft_duration at = elapsed(rt);
    if (run->completed && at < WEFT_MS(10))
        return sweep_say("completed at +%llu ns", (unsigned long long)at);
    return sweep_leftovers(rt);
}

static void test_cancel_sweep_sleep(void **state)
{
    (void)state;
    static sleep_case sc;
    weft_sweep_case c = { sleep_build, sleep_check, NULL, &sc };
    /* Poll 1 arms it; 2 comes after it fired. */
    sweep_both(&c, 2);
}

/* ---- weft_timeout, owning ------------------------------------------------------------------- */

/* The owning form's inner future lives next to it (it is found by its
 * offset). */
typedef struct timed {
    weft_timeout t;
    countdown cd;
    never nv;
} timed;

typedef struct owning_case {
    bool inner_wins; /* a countdown inside an hour; else a never inside 10 ms */
    timed tm;
    countdown_counts n;
    int out;
} owning_case;

static int owning_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    owning_case *oc = ctx;
    (void)rt;
    oc->out = -1;
    weft_future *inner;
    if (oc->inner_wins) {
        countdown_start(&oc->tm.cd, &oc->n, 3, 21, WEFT_F_SEND);
        inner = &oc->tm.cd.base;
    } else {
        never_start(&oc->tm.nv, &oc->n, WEFT_F_SEND);
        inner = &oc->tm.nv.base;
    }
    int err = weft_timeout_init(&oc->tm.t, inner, oc->inner_wins ? WEFT_SEC(3600) : WEFT_MS(10));
    *fut = &oc->tm.t.base;
    *out = &oc->out;
    return err;
}

static const char *owning_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    owning_case *oc = ctx;
    /* The inner future was dropped exactly once: at its completion, at
     * the deadline, or with the timeout. */
    int drops = weft_atomic_load_relaxed(&oc->n.drops);
    if (drops != 1)
        return sweep_say("k=%u: the inner future was dropped %d times", run->k, drops);
    const char *why = disarmed(run);
    if (why)
        return why;
    if (run->completed) {
        int want_status = oc->inner_wins ? 0 : -ETIMEDOUT;
        int want_out = oc->inner_wins ? 21 : 0;
        if (oc->tm.t.status != want_status || oc->out != want_out)
            return sweep_say("status %d, output %d", oc->tm.t.status, oc->out);
    } else if (oc->out != -1) {
        return "an output was written by a timeout dropped before it finished";
    }
    return sweep_leftovers(rt);
}

static void test_cancel_sweep_owning_timeout_inner_wins(void **state)
{
    (void)state;
    static owning_case oc;
    oc.inner_wins = true;
    weft_sweep_case c = { owning_build, owning_check, NULL, &oc };
    /* The countdown is PENDING three times, READY at the fourth poll. */
    sweep_both(&c, 4);
}

static void test_cancel_sweep_owning_timeout_deadline_wins(void **state)
{
    (void)state;
    static owning_case oc;
    oc.inner_wins = false;
    weft_sweep_case c = { owning_build, owning_check, NULL, &oc };
    /* Poll 1 arms the timer; 2 comes after it fired. */
    sweep_both(&c, 2);
}

/* ---- weft_timeout, borrowing ---------------------------------------------------------------- */

/* Sleeps 20 ms, then answers 8. */
typedef struct slow {
    weft_future base;
    weft_co co;
    weft_sleep s;
} slow;

WEFT_ASYNC_FN(slow, int)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->s, WEFT_MS(20));
    WEFT_FN_AWAIT(&self->s, NULL);
    WEFT_FN_RETURN(8);
    WEFT_FN_END;
}

/* The caller's inner future: a countdown it owns (READY at its fourth
 * poll, inside the hour the timeout gives it), or the join handle of a
 * task that takes 20 ms (past the timeout's 10 ms). */
typedef struct borrow_case {
    bool of_join;
    countdown cd;
    countdown_counts n;
    weft_join j;
    weft_timeout t;
    int out;
    int again; /* what awaiting the inner future again gave */
} borrow_case;

static weft_future *borrow_inner(borrow_case *bc)
{
    return bc->of_join ? &bc->j.base : &bc->cd.base;
}

static int borrow_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    borrow_case *bc = ctx;
    bc->out = bc->again = -1;
    countdown_counts_init(&bc->n);
    if (bc->of_join) {
        int err = WEFT_SPAWN(rt, &bc->j, &(slow){ WEFT_FN_INIT(slow, WEFT_F_SEND) });
        if (err)
            return err;
    } else {
        countdown_start(&bc->cd, &bc->n, 3, 21, WEFT_F_SEND);
    }
    int err = weft_timeout_borrow_init(&bc->t, borrow_inner(bc),
                                       bc->of_join ? WEFT_MS(10) : WEFT_SEC(3600));
    *fut = &bc->t.base;
    *out = &bc->out;
    return err;
}

static const char *borrow_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    borrow_case *bc = ctx;
    /* Never dropped by the timeout. */
    if (weft_atomic_load_relaxed(&bc->n.drops) != 0 || (bc->of_join && !bc->j.task))
        return sweep_say("k=%u: the borrowed future was dropped", run->k);
    /* The timeout's own timer is gone. Whatever waker is left is the
     * inner future's, from its last poll: a join handle keeps its
     * registration until it is polled or dropped again, and wakes it once
     * if the task completes later (the sweep checks that teardown, which
     * drops the handle, releases it). */
    if (run->wakers_after_drop > 1 || run->wakes_after_drop > run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) left, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    /* Chaos may fire the timer late, with the task's: either may win. */
    bool finished = run->completed && bc->t.status == 0;
    if (run->completed && bc->t.status != 0 && bc->t.status != -ETIMEDOUT)
        return sweep_say("status %d", bc->t.status);
    if (run->completed && !finished && bc->out != 0)
        return "a timeout that expired did not zero its output";
    if (!finished) {
        /* Still pending where it is, and usable: awaited again, it gives
         * its output. */
        int rc = weft_block_on(rt, borrow_inner(bc), &bc->again, sizeof bc->again);
        if (rc != 0 || bc->again != (bc->of_join ? 8 : 21))
            return sweep_say("k=%u: awaited again: %d, output %d", run->k, rc, bc->again);
        if (bc->of_join && bc->j.status != 0)
            return "the task behind the borrowed handle was cancelled";
    } else if (bc->out != (bc->of_join ? 8 : 21)) {
        return sweep_say("output %d", bc->out);
    } else {
        /* Finished: the caller drops it, and never polls it again. */
        weft_future_drop(borrow_inner(bc));
    }
    return sweep_leftovers(rt);
}

/* The caller's part: drop the inner future, unless the check (or
 * weft_block_on in it) did. */
static void borrow_teardown(void *ctx)
{
    borrow_case *bc = ctx;
    if (bc->of_join)
        weft_future_drop(&bc->j.base); /* a no-op once dropped */
    else if (weft_atomic_load_relaxed(&bc->n.drops) == 0)
        weft_future_drop(&bc->cd.base);
}

static void test_cancel_sweep_borrowing_timeout_leaves_inner_pending_and_usable(void **state)
{
    (void)state;
    static borrow_case bc;
    bc.of_join = false;
    weft_sweep_case c = { borrow_build, borrow_check, borrow_teardown, &bc };
    sweep_both(&c, 4);
    bc.of_join = true;
    /* Poll 1 registers with the join and arms the timer; 2 times out. */
    sweep_both(&c, 2);
}

/* ---- weft_interval: a pending next ------------------------------------------------------------ */

/* The next item of an interval, as a future (a poll_fn over
 * weft_stream_poll_next): the future under test is one "next". */
static weft_poll next_tick(void *ctx, weft_cx *cx, void *out)
{
    return weft_stream_poll_next(ctx, cx, out) == WEFT_NEXT_ITEM ? WEFT_READY : WEFT_PENDING;
}

typedef struct next_case {
    weft_interval iv;
    bool live;
    weft_poll_fn next;
    weft_instant start, tick, later[2];
} next_case;

#define PERIOD WEFT_MS(10)

static int next_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    next_case *nc = ctx;
    (void)rt;
    nc->tick = 0;
    /* The first tick 10 ms from now, so a next is pending until then. */
    nc->start = weft_now() + PERIOD;
    int err = weft_interval_at_init(&nc->iv, nc->start, PERIOD, WEFT_MISSED_BURST);
    nc->live = err == 0;
    if (err == 0)
        err = weft_poll_fn_init(&nc->next, next_tick, &nc->iv, sizeof(weft_instant),
                                WEFT_F_SEND);
    *fut = &nc->next.base;
    *out = &nc->tick;
    return err;
}

static const char *next_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    next_case *nc = ctx;
    /* The stream keeps its schedule: its timer (armed by the dropped
     * next's poll, with that next's waker) stays armed, fires once, and
     * the tick is still there for the next "next". */
    if (run->wakers_after_drop > 1 || run->wakes_after_drop != run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s), %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    if (run->completed && nc->tick != nc->start)
        return "the first tick is not the interval's start";
    /* No tick lost, none twice: the next two come on the grid. */
    for (int i = 0; i < 2; i++) {
        weft_poll_fn again;
        if (weft_poll_fn_init(&again, next_tick, &nc->iv, sizeof(weft_instant), WEFT_F_SEND) != 0 ||
            weft_block_on(rt, &again.base, &nc->later[i], sizeof nc->later[i]) != 0)
            return "the interval could not be awaited again";
        weft_instant want = nc->start + PERIOD * (weft_duration)(i + (run->completed ? 1 : 0));
        if (nc->later[i] != want)
            return sweep_say("k=%u: tick %d is at +%llu ns, want +%llu", run->k, i,
                             (unsigned long long)(nc->later[i] - WEFT_SIM_START),
                             (unsigned long long)(want - WEFT_SIM_START));
    }
    return NULL;
}

static void next_teardown(void *ctx)
{
    next_case *nc = ctx;
    if (nc->live)
        weft_stream_drop(&nc->iv.base); /* unlinks its timer, if armed */
    nc->live = false;
}

static void test_cancel_sweep_interval_next_loses_no_tick(void **state)
{
    (void)state;
    static next_case nc;
    weft_sweep_case c = { next_build, next_check, next_teardown, &nc };
    /* Poll 1 arms the interval's timer; 2 comes after it fired. */
    sweep_both(&c, 2);
}

/* ---- coroutines awaiting them ------------------------------------------------------------------ */

/* Awaits, in turn: a sleep, an owning timeout around a never (times
 * out), a borrowing timeout around its own countdown, and three ticks of
 * an interval it owns (its drop drops the interval). Output: the sum of
 * the countdown's value and the ticks' offsets in periods. */
typedef struct timekeeper {
    weft_future base;
    weft_co co;
    weft_sleep s;
    timed tm;
    countdown cd;
    countdown_counts *n;
    weft_timeout bt;
    weft_interval iv;
    bool iv_live, cd_live;
    weft_poll_fn next;
    weft_instant first, tick;
    int v, sum, i;
    int *steps;
} timekeeper;

static void timekeeper_drop(weft_future *f)
{
    timekeeper *self = (timekeeper *)f;
    /* The borrowing timeout is the child awaited; the countdown it
     * borrows, and the interval, are ours. */
    weft_co_drop(&self->co);
    if (self->cd_live)
        weft_future_drop(&self->cd.base);
    if (self->iv_live)
        weft_stream_drop(&self->iv.base);
}

WEFT_ASYNC_FN_WITH_DROP(timekeeper, int)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->s, WEFT_MS(5));
    WEFT_FN_AWAIT(&self->s, NULL);
    (*self->steps)++;
    never_init(&self->tm.nv, self->n, WEFT_F_SEND);
    if (weft_timeout_init(&self->tm.t, &self->tm.nv.base, WEFT_MS(5)) != 0)
        WEFT_FN_RETURN(-1);
    WEFT_FN_AWAIT(&self->tm.t, &self->v);
    (*self->steps)++;
    countdown_init(&self->cd, 2, 30, self->n, WEFT_F_SEND);
    self->cd_live = true;
    if (weft_timeout_borrow_init(&self->bt, &self->cd.base, WEFT_SEC(1)) != 0)
        WEFT_FN_RETURN(-1);
    WEFT_FN_AWAIT(&self->bt, &self->sum);
    self->cd_live = false;
    weft_future_drop(&self->cd.base); /* finished: the borrower drops it */
    (*self->steps)++;
    self->first = weft_now(); /* the first tick's instant */
    if (weft_interval_at_init(&self->iv, self->first, PERIOD, WEFT_MISSED_BURST) != 0)
        WEFT_FN_RETURN(-1);
    self->iv_live = true;
    for (self->i = 0; self->i < 3; self->i++) {
        if (weft_poll_fn_init(&self->next, next_tick, &self->iv, sizeof self->tick,
                              WEFT_F_SEND) != 0)
            WEFT_FN_RETURN(-1);
        WEFT_FN_AWAIT(&self->next, &self->tick);
        self->sum += (int)((self->tick - self->first) / PERIOD);
        (*self->steps)++;
    }
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

typedef struct keeper_case {
    timekeeper tk;
    countdown_counts n;
    int steps, out;
} keeper_case;

static int keeper_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    keeper_case *kc = ctx;
    (void)rt;
    countdown_counts_init(&kc->n);
    kc->steps = 0;
    kc->out = -1;
    kc->tk = (timekeeper){ WEFT_FN_INIT(timekeeper, WEFT_F_SEND), .n = &kc->n,
                           .steps = &kc->steps };
    *fut = &kc->tk.base;
    *out = &kc->out;
    return 0;
}

static const char *keeper_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    keeper_case *kc = ctx;
    /* The inner futures started — the never after step 1, the countdown
     * after step 2 — were each dropped exactly once: by the owning
     * timeout, by the coroutine after the borrowing one, or by the
     * coroutine's drop. */
    int started = (kc->steps >= 1) + (kc->steps >= 2);
    int drops = weft_atomic_load_relaxed(&kc->n.drops);
    if (drops != started)
        return sweep_say("k=%u: %d inner drops after %d steps", run->k, drops, kc->steps);
    const char *why = disarmed(run);
    if (why)
        return why;
    /* Ticks 0, 1, 2 periods after the interval's start. */
    if (run->completed && (kc->steps != 6 || kc->out != 30 + 0 + 1 + 2))
        return sweep_say("%d steps, output %d", kc->steps, kc->out);
    return sweep_leftovers(rt);
}

static void test_cancel_sweep_coroutine_awaiting_time_futures(void **state)
{
    (void)state;
    static keeper_case kc;
    weft_sweep_case c = { keeper_build, keeper_check, NULL, &kc };
    /* Poll 1 arms the sleep; 2 arms the timeout; 3 sees it expire and
     * polls the countdown, PENDING twice (3, 4); 5 sees it READY and gets
     * the first tick at once, and arms the second; 6 and 7 get one tick
     * each. */
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_int_equal(res.polls, 7);
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    sweep_pass(&c, &o);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        T(test_cancel_sweep_sleep),
        T(test_cancel_sweep_owning_timeout_inner_wins),
        T(test_cancel_sweep_owning_timeout_deadline_wins),
        T(test_cancel_sweep_borrowing_timeout_leaves_inner_pending_and_usable),
        T(test_cancel_sweep_interval_next_loses_no_tick),
        T(test_cancel_sweep_coroutine_awaiting_time_futures),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
