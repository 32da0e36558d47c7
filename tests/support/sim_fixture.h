/* Test support: running a test written for the multi-thread runtime on the
 * deterministic one (weft/testing.h) too. sim_fixture_up is
 * rt_fixture_up (support/rt_fixture.h) with a sim runtime of a given seed
 * instead of two workers: counting allocator, misuse capture, and the
 * sim's reports captured (support/sim.h); rt_fixture_down takes either.
 * sim_setup_g_rt gives g_rt a sim, as rt_setup gives it two workers.
 *
 * Waiting differs: a sim runs its tasks only while the test thread drives
 * it, so a test that spins until a worker did something must drive the
 * sim instead, and a deadline the test thread computes starts from the
 * sim's clock (rt_now). RT_WAIT_UNTIL(rt, cond) does what fits: on the
 * multi-thread runtime it is WAIT_UNTIL (support/wait.h); on a sim it
 * runs the sim until every task waits (rt_settle; virtual time does not
 * move) and then asserts `cond`. Each test program includes it once. */
#ifndef WEFT_TESTS_SIM_FIXTURE_H
#define WEFT_TESTS_SIM_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "support/rt_fixture.h"
#include "support/sim.h"
#include "support/wait.h"

/* True when `rt` is a sim runtime. */
static inline bool rt_is_sim(weft_rt *rt)
{
    weft_sim_stats st;
    return rt && weft_sim_stats_get(rt, &st) == 0;
}

/* The clock `rt`'s futures run on, read from the test thread: a sim's
 * virtual clock (weft_now() outside a run is the monotonic one), else
 * weft_now(). Deadlines the test thread computes for a runtime's futures
 * start from it. */
static inline weft_instant rt_now(weft_rt *rt)
{
    weft_sim_stats st;
    return rt && weft_sim_stats_get(rt, &st) == 0 ? st.now : weft_now();
}

/* Yields until nothing else of its sim is runnable (bounded: a task that
 * never stops yielding is not waited for forever). */
typedef struct settle {
    weft_future base;
    unsigned turns;
} settle;

#define SETTLE_MAX_TURNS 1000000u

static inline weft_poll settle_poll(weft_future *f, weft_cx *cx, void *out)
{
    settle *s = (settle *)f;
    weft_worker_stats ws;
    unsigned n = 1;
    (void)out;
    /* The sim's one pseudo-worker: its queue depth is what is runnable
     * besides this future's task. */
    if (weft_rt_stats(weft_rt_current(), &ws, &n) != 0 || ws.queue_depth == 0 ||
        ++s->turns >= SETTLE_MAX_TURNS)
        return WEFT_READY;
    weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops settle_ops = { "settle", 0, settle_poll, NULL, NULL };

/* Run sim `rt` until every task is blocked (or done); a no-op for other
 * runtimes. */
static inline void rt_settle(weft_rt *rt)
{
    if (!rt_is_sim(rt))
        return;
    settle s = { WEFT_FUTURE_INIT(&settle_ops, WEFT_F_SEND), 0 };
    assert_int_equal(weft_block_on(rt, &s.base, NULL, 0), 0);
}

/* Wait until `cond` holds: on a sim, drive it until every task waits, and
 * then it must hold; elsewhere spin as WAIT_UNTIL does. */
#define RT_WAIT_UNTIL(rt, cond)                                               \
    do {                                                                      \
        if (rt_is_sim(rt)) {                                                  \
            rt_settle(rt);                                                    \
            if (!(cond))                                                      \
                fail_msg("%s:%d: not true once the sim settled: %s",          \
                         __FILE__, __LINE__, #cond);                          \
        } else {                                                              \
            WAIT_UNTIL(cond);                                                 \
        }                                                                     \
    } while (0)

/* rt_fixture_up with a sim runtime of seed `seed` in `*rt`. Returns 0, or
 * -1 (a cmocka setup failure). Pair with rt_fixture_down. */
static inline int sim_fixture_up(weft_rt **rt, uint64_t seed)
{
    if (sim_setup(NULL) != 0)
        return -1;
    weft_sim_options o = sim_options(seed);
    return weft_rt_new_sim(rt, &o) == 0 ? 0 : -1;
}

/* As rt_setup, with a sim (seed 1) in g_rt. Pair with rt_teardown. */
static inline int sim_setup_g_rt(void **state)
{
    (void)state;
    return sim_fixture_up(&g_rt, 1);
}

#endif
