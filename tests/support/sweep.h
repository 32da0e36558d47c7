/* Test support: cancel sweeps (weft_cancel_sweep). sweep_options makes
 * sweep options whose failure reports are captured (support/sim.h)
 * instead of printed; sweep_pass runs a sweep that must pass, and fails
 * the test with the sweep's report otherwise; sweep_leftovers is the part
 * of a check that every scenario shares: once the run is over, the sim
 * holds no task, no kept task, no armed timer and no task waker.
 * Each test program includes it once. */
#ifndef WEFT_TESTS_SWEEP_H
#define WEFT_TESTS_SWEEP_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft/weft.h"
#include "support/sim.h"

/* The seed a sim made with `seed` in its options runs with: WEFT_SEED's
 * when that is set. */
static inline uint64_t sim_seed_or(uint64_t seed)
{
    const char *env = getenv("WEFT_SEED");
    return env && *env ? (uint64_t)strtoull(env, NULL, 0) : seed;
}

/* `seeds` seeds from `seed`, chaos off, reports captured. */
static inline weft_sweep_options sweep_options(uint64_t seed, uint32_t seeds)
{
    weft_sweep_options o = WEFT_SWEEP_OPTIONS_INIT;
    o.sim = sim_options(seed);
    o.seeds = seeds;
    return o;
}

/* The same with every chaos knob at `p`. */
static inline weft_sweep_options sweep_chaos_options(uint64_t seed, uint32_t seeds, double p)
{
    weft_sweep_options o = sweep_options(seed, seeds);
    o.sim.spurious_wake = p;
    o.sim.leaf_pending = p;
    o.sim.timer_late = p;
    return o;
}

/* Runs the sweep of `c`, which must pass; returns its result. */
static inline weft_sweep_result sweep_pass(const weft_sweep_case *c, const weft_sweep_options *o)
{
    weft_sweep_result res;
    int rc = weft_cancel_sweep(c, o, &res);
    if (rc != 0 || res.failed) {
        print_error("sweep failed (%d): %s\n", rc, g_sim_report);
        fail();
    }
    return res;
}

/* NULL when `rt` has nothing left — no task (complete ones kept by a
 * handle included), no armed timer, no task waker held anywhere — else a
 * message naming what is left (static storage). */
static inline const char *sweep_leftovers(weft_rt *rt)
{
    static char msg[160];
    weft_rt_counts n;
    if (weft_rt_count(rt, &n) != 0)
        return "weft_rt_count failed";
    if (n.tasks == 0 && n.kept == 0 && n.timers == 0 && n.wakers == 0)
        return NULL;
    snprintf(msg, sizeof msg,
             "left behind: %" PRIu64 " task(s), %" PRIu64 " kept, %" PRIu64
             " armed timer(s), %" PRIu64 " task waker(s)",
             n.tasks, n.kept, n.timers, n.wakers);
    return msg;
}

/* A check's message, formatted (static storage: a check returns it at
 * once). */
static inline const char *sweep_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline const char *sweep_say(const char *fmt, ...)
{
    static char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return msg;
}

#endif
