/* Test support for the barrier, once cell, cancellation token and wait
 * group tests: sims with chaos on, spawning int-output tasks and joining
 * them from the test thread on either runtime, and a sweep run with chaos
 * off then on. Each of those test programs includes it once, after
 * support/sim_fixture.h and support/sweep.h. */
#ifndef WEFT_TESTS_SYNC_MISC_SUPPORT_H
#define WEFT_TESTS_SYNC_MISC_SUPPORT_H

#include "support/sim_fixture.h"
#include "support/sweep.h"

/* Seeds of the chaos loops, and their knob. */
#define CHAOS_SEEDS 200u
#define CHAOS_P 0.4

/* A sim of seed `seed` with spurious wakes and leaf PENDINGs at CHAOS_P
 * (reports captured). Pair with weft_rt_shutdown. */
static inline weft_rt *chaos_sim(uint64_t seed)
{
    weft_sim_options o = sim_options(seed);
    o.spurious_wake = CHAOS_P;
    o.leaf_pending = CHAOS_P;
    return sim_start(&o);
}

/* Shut a chaos_sim down, adding the chaos it dealt (leaf PENDINGs and
 * spurious wakes) to `*dealt`: a loop over seeds asserts that it dealt
 * some, so the knobs reached the futures under test. */
static inline void chaos_sim_done(weft_rt *rt, uint64_t *dealt)
{
    weft_sim_stats st = sim_stats(rt);
    *dealt += st.leaf_pendings + st.spurious_wakes;
    weft_rt_shutdown(rt);
}

/* Spawn the int-output future `f` (`size` bytes) on `rt` with its handle
 * in `*j`. */
static inline void spawn_into(weft_rt *rt, weft_future *f, size_t size, weft_join *j)
{
    assert_int_equal(weft_spawn(rt, f, size, j), 0);
}

/* Join `*j` from the test thread (a sim is driven meanwhile); its status
 * must be 0; returns its int output. */
static inline int join_int(weft_rt *rt, weft_join *j)
{
    int out = -1;
    assert_int_equal(join_blocking(rt, j, &out, sizeof out), 0);
    return out;
}

/* Sweep `c` once with chaos off and over 8 seeds with every knob at 0.3;
 * returns the chaos-off N. */
static inline uint32_t sweep_both(const weft_sweep_case *c)
{
    weft_sweep_options o = sweep_options(1, 1);
    uint32_t n = sweep_pass(c, &o).polls;
    o = sweep_chaos_options(1, 8, 0.3);
    (void)sweep_pass(c, &o);
    return n;
}

#endif
