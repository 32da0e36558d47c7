/* Unit tests for testing/chaos.c: the seeded stream (one seed, one
 * stream; knobs that are off or on draw nothing), WEFT_SEED parsing, and
 * each chaos knob of the deterministic runtime doing what it says, counted:
 * spurious wakes poll a waiting task with nothing changed, leaf_pending
 * makes every library leaf future (yield, sleep, timeout, join) return
 * PENDING first and never twice in a row, timer_late fires timers late
 * (and an interval then sees missed ticks); all off, nothing happens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "testing/chaos.h"
#include "support/countdown.h"
#include "support/downcast.h"
#include "support/sim.h"

/* ---- the stream -------------------------------------------------------------------------- */

static void test_chaos_one_seed_one_stream(void **state)
{
    (void)state;
    weft_sim_options o = WEFT_SIM_OPTIONS_INIT;
    struct weft__sim_chaos a, b, c;
    weft__sim_chaos_init(&a, 7, &o);
    weft__sim_chaos_init(&b, 7, &o);
    weft__sim_chaos_init(&c, 8, &o);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = weft__sim_rand(&a);
        assert_int_equal(x, weft__sim_rand(&b));
        same += x == weft__sim_rand(&c);
    }
    assert_int_equal(same, 0);
    for (size_t n = 1; n < 100; n++)
        assert_true(weft__sim_rand_below(&a, n) < n);
}

static void test_chaos_off_and_on_draw_nothing(void **state)
{
    (void)state;
    weft_sim_options o = WEFT_SIM_OPTIONS_INIT;
    struct weft__sim_chaos a, b;
    weft__sim_chaos_init(&a, 3, &o);
    weft__sim_chaos_init(&b, 3, &o);
    assert_false(weft__sim_chance(&a, WEFT_SIM_OFF));
    assert_true(weft__sim_chance(&a, WEFT_SIM_ON));
    assert_int_equal(weft__sim_lateness(&a), 0); /* timer_late off */
    assert_int_equal(weft__sim_rand(&a), weft__sim_rand(&b));
    /* A probability in between draws, and lands near it. */
    int yes = 0;
    for (int i = 0; i < 10000; i++)
        yes += weft__sim_chance(&a, 0.25);
    assert_in_range(yes, 2000, 3000);
}

static void test_chaos_lateness_is_within_bounds(void **state)
{
    (void)state;
    weft_sim_options o = WEFT_SIM_OPTIONS_INIT;
    o.timer_late = WEFT_SIM_ON;
    o.timer_late_max_ms = 3;
    struct weft__sim_chaos c;
    weft__sim_chaos_init(&c, 1, &o);
    bool seen[4] = { false };
    for (int i = 0; i < 200; i++) {
        uint64_t late = weft__sim_lateness(&c);
        assert_in_range(late, WEFT_MS(1), WEFT_MS(3));
        assert_int_equal(late % WEFT_MS(1), 0);
        seen[late / WEFT_MS(1)] = true;
    }
    assert_true(seen[1] && seen[2] && seen[3]);
    o.timer_late_max_ms = 0; /* the default */
    weft__sim_chaos_init(&c, 1, &o);
    assert_int_equal(c.late_max_ms, WEFT__SIM_LATE_MAX_MS);
}

static void test_chaos_env_seed_parsing(void **state)
{
    (void)state;
    const char *old = getenv("WEFT_SEED");
    char *saved = old ? strdup(old) : NULL;
    uint64_t seed = 5;
    unsetenv("WEFT_SEED");
    assert_int_equal(weft__sim_env_seed(&seed), 0);
    assert_int_equal(seed, 5);
    setenv("WEFT_SEED", "", 1);
    assert_int_equal(weft__sim_env_seed(&seed), 0);
    setenv("WEFT_SEED", "18446744073709551615", 1);
    assert_int_equal(weft__sim_env_seed(&seed), 1);
    assert_int_equal(seed, UINT64_MAX);
    setenv("WEFT_SEED", "0x2a", 1);
    assert_int_equal(weft__sim_env_seed(&seed), 1);
    assert_int_equal(seed, 42);
    setenv("WEFT_SEED", "4 2", 1);
    assert_int_equal(weft__sim_env_seed(&seed), -EINVAL);
    assert_int_equal(seed, 42);
    if (saved)
        setenv("WEFT_SEED", saved, 1);
    else
        unsetenv("WEFT_SEED");
    free(saved);
}

/* ---- spurious wakes ------------------------------------------------------------------------ */

/* A latch another task sets; its waiter counts the polls that found it
 * clear. */
typedef struct latch {
    bool set;
    int clear_polls;
    weft_waker waiter;
} latch;

typedef struct latch_wait {
    weft_future base;
    latch *l;
} latch_wait;

static weft_poll latch_wait_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(latch_wait, self);
    (void)out;
    if (self->l->set)
        return WEFT_READY;
    self->l->clear_polls++;
    weft_waker_drop(&self->l->waiter);
    self->l->waiter = weft_waker_clone(cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops latch_wait_ops = { "latch_wait", 0, latch_wait_poll, NULL, NULL };

/* Yields three times, then sets the latch. */
typedef struct setter {
    weft_future base;
    weft_co co;
    latch *l;
    int i;
} setter;

WEFT_ASYNC_FN_VOID(setter)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++)
        WEFT_FN_YIELD;
    self->l->set = true;
    weft_waker_wake(&self->l->waiter);
    WEFT_FN_END;
}

/* Spawns the setter, then waits on the latch. */
typedef struct latch_user {
    weft_future base;
    weft_co co;
    latch *l;
    latch_wait w;
} latch_user;

WEFT_ASYNC_FN_VOID(latch_user)
{
    WEFT_FN_BEGIN;
    if (WEFT_SPAWN(NULL, NULL, &(setter){ WEFT_FN_INIT(setter, WEFT_F_SEND), .l = self->l }) != 0)
        WEFT_FN_RETURN_VOID;
    self->w = (latch_wait){ WEFT_FUTURE_INIT(&latch_wait_ops, WEFT_F_SEND), self->l };
    WEFT_FN_AWAIT(&self->w, NULL);
    WEFT_FN_END;
}

/* Runs a latch_user with `spurious` on; returns the latch's clear polls. */
static int latch_clear_polls(double spurious, weft_sim_stats *st)
{
    weft_sim_options o = sim_options(21);
    o.spurious_wake = spurious;
    weft_rt *rt = sim_start(&o);
    latch l = { false, 0, WEFT_WAKER_EMPTY };
    latch_user u = { WEFT_FN_INIT(latch_user, WEFT_F_SEND), .l = &l };
    assert_int_equal(weft_block_on(rt, &u.base, NULL, 0), 0);
    assert_true(l.set);
    *st = sim_stats(rt);
    weft_rt_shutdown(rt);
    return l.clear_polls;
}

static void test_chaos_spurious_wake_polls_a_waiting_task_again(void **state)
{
    (void)state;
    weft_sim_stats st;
    /* Off: the waiter is polled once while the latch is clear (it waits
     * until the setter wakes it). */
    assert_int_equal(latch_clear_polls(WEFT_SIM_OFF, &st), 1);
    assert_int_equal(st.spurious_wakes, 0);
    /* On: after the poll that followed its spawn it is woken once more,
     * for nothing; the spurious poll is not followed by another. */
    assert_int_equal(latch_clear_polls(WEFT_SIM_ON, &st), 2);
    assert_int_equal(st.spurious_wakes, 1);
}

/* ---- leaf futures return PENDING first --------------------------------------------------------- */

/* Awaits `n` weft_yield futures. */
typedef struct yields {
    weft_future base;
    weft_co co;
    weft_yield y;
    int n, i;
} yields;

WEFT_ASYNC_FN_VOID(yields)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        weft_yield_init(&self->y);
        WEFT_FN_AWAIT(&self->y, NULL);
    }
    WEFT_FN_END;
}

static weft_sim_stats run_yields(double leaf, int n)
{
    weft_sim_options o = sim_options(22);
    o.leaf_pending = leaf;
    weft_rt *rt = sim_start(&o);
    yields y = { WEFT_FN_INIT(yields, WEFT_F_SEND), .n = n };
    assert_int_equal(weft_block_on(rt, &y.base, NULL, 0), 0);
    weft_sim_stats st = sim_stats(rt);
    weft_rt_shutdown(rt);
    return st;
}

static void test_chaos_leaf_pending_on_interleaves_every_await(void **state)
{
    (void)state;
    weft_sim_stats st = run_yields(WEFT_SIM_OFF, 50);
    assert_int_equal(st.leaf_pendings, 0);
    assert_int_equal(st.polls, 51); /* one PENDING per yield */
    /* On: each of a yield's two polls is preceded by a chaos PENDING, and
     * none follows another: 2 per yield, 3 polls per yield. */
    st = run_yields(WEFT_SIM_ON, 50);
    assert_int_equal(st.leaf_pendings, 100);
    assert_int_equal(st.polls, 151);
    /* In between: some await points, not all. */
    st = run_yields(0.5, 50);
    assert_in_range(st.leaf_pendings, 1, 99);
    assert_int_equal(st.polls, 51 + st.leaf_pendings);
}

/* Spawns a countdown, sleeps 1 ms (by then the countdown is done: time
 * moves only when nothing is runnable), times out another countdown that
 * is ready at once, and joins the first. */
typedef struct leaves {
    weft_future base;
    weft_co co;
    weft_sleep s;
    countdown cd;
    weft_timeout t;
    weft_join j;
    int out;
} leaves;

WEFT_ASYNC_FN_VOID(leaves)
{
    WEFT_FN_BEGIN;
    countdown_init(&self->cd, 0, 2, NULL, WEFT_F_SEND);
    if (weft_spawn(NULL, &self->cd.base, sizeof self->cd, &self->j) != 0)
        WEFT_FN_RETURN_VOID;
    weft_sleep_init(&self->s, WEFT_MS(1));
    WEFT_FN_AWAIT(&self->s, NULL);
    countdown_init(&self->cd, 0, 1, NULL, WEFT_F_SEND);
    if (weft_timeout_init(&self->t, &self->cd.base, WEFT_SEC(1)) != 0)
        WEFT_FN_RETURN_VOID;
    WEFT_FN_AWAIT(&self->t, &self->out);
    WEFT_FN_AWAIT(&self->j, &self->out);
    WEFT_FN_END;
}

static void test_chaos_leaf_pending_reaches_sleep_timeout_and_join(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(23);
    o.leaf_pending = WEFT_SIM_ON;
    weft_rt *rt = sim_start(&o);
    leaves l = { WEFT_FN_INIT(leaves, WEFT_F_SEND) };
    assert_int_equal(weft_block_on(rt, &l.base, NULL, 0), 0);
    assert_int_equal(l.out, 2);
    /* A chaos PENDING before each poll that would have done something:
     * the sleep's two (arming, then seeing its timer fired), the
     * timeout's one (its inner countdown is ready at once) and the
     * join's one (its task is done by then). */
    assert_int_equal(sim_stats(rt).leaf_pendings, 4);
    assert_int_equal(sim_elapsed(rt), WEFT_MS(1));
    weft_rt_shutdown(rt);
}

/* ---- late timers ---------------------------------------------------------------------------------- */

/* Sleeps 10 ms `n` times, noting how late each wake-up was. */
typedef struct late_naps {
    weft_future base;
    weft_co co;
    weft_sleep s;
    weft_duration late[20];
    int i;
} late_naps;

WEFT_ASYNC_FN_VOID(late_naps)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 20; self->i++) {
        weft_sleep_init(&self->s, WEFT_MS(10));
        WEFT_FN_AWAIT(&self->s, NULL);
        self->late[self->i] = weft_now() - self->s.deadline;
    }
    WEFT_FN_END;
}

static void test_chaos_timer_late_fires_timers_late(void **state)
{
    (void)state;
    for (int on = 0; on < 2; on++) {
        weft_sim_options o = sim_options(24);
        o.timer_late = on ? WEFT_SIM_ON : WEFT_SIM_OFF;
        o.timer_late_max_ms = 4;
        weft_rt *rt = sim_start(&o);
        late_naps n = { WEFT_FN_INIT(late_naps, WEFT_F_SEND) };
        assert_int_equal(weft_block_on(rt, &n.base, NULL, 0), 0);
        weft_sim_stats st = sim_stats(rt);
        for (int i = 0; i < 20; i++) {
            if (on)
                assert_in_range(n.late[i], WEFT_MS(1), WEFT_MS(4));
            else
                assert_int_equal(n.late[i], 0);
        }
        assert_int_equal(st.late_timers, on ? 20 : 0);
        assert_int_equal(st.clock_jumps, 20);
        weft_rt_shutdown(rt);
    }
}

/* Takes 20 ticks of a 2 ms interval (DELAY policy), noting the gaps. */
typedef struct gaps {
    weft_future base;
    weft_interval iv;
    weft_instant last;
    int n, missed;
    bool started;
} gaps;

static weft_poll gaps_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(gaps, self);
    (void)out;
    if (!self->started) {
        self->started = true;
        if (weft_interval_init(&self->iv, WEFT_MS(2), WEFT_MISSED_DELAY) != 0)
            return WEFT_READY;
    }
    weft_instant tick;
    while (self->n < 20 && weft_stream_poll_next(&self->iv.base, cx, &tick) == WEFT_NEXT_ITEM) {
        if (self->n > 0 && tick - self->last != WEFT_MS(2))
            self->missed++;
        self->last = tick;
        self->n++;
    }
    return self->n == 20 ? WEFT_READY : WEFT_PENDING;
}

static void gaps_drop(weft_future *f)
{
    DOWNCAST(gaps, self);
    if (self->started)
        weft_stream_drop(&self->iv.base);
}

static const weft_future_ops gaps_ops = { "gaps", 0, gaps_poll, gaps_drop, NULL };

static int interval_missed(double late)
{
    weft_sim_options o = sim_options(25);
    o.timer_late = late;
    o.timer_late_max_ms = 20;
    weft_rt *rt = sim_start(&o);
    gaps g;
    memset(&g, 0, sizeof g);
    weft_future_init(&g.base, &gaps_ops, WEFT_F_SEND);
    assert_int_equal(weft_block_on(rt, &g.base, NULL, 0), 0);
    weft_rt_shutdown(rt);
    return g.missed;
}

static void test_chaos_late_timers_make_an_interval_miss_ticks(void **state)
{
    (void)state;
    assert_int_equal(interval_missed(WEFT_SIM_OFF), 0);
    assert_true(interval_missed(WEFT_SIM_ON) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chaos_one_seed_one_stream),
        cmocka_unit_test(test_chaos_off_and_on_draw_nothing),
        cmocka_unit_test(test_chaos_lateness_is_within_bounds),
        cmocka_unit_test_setup_teardown(test_chaos_env_seed_parsing, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_chaos_spurious_wake_polls_a_waiting_task_again,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_chaos_leaf_pending_on_interleaves_every_await,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_chaos_leaf_pending_reaches_sleep_timeout_and_join,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_chaos_timer_late_fires_timers_late, sim_setup,
                                        sim_teardown),
        cmocka_unit_test_setup_teardown(test_chaos_late_timers_make_an_interval_miss_ticks,
                                        sim_setup, sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
