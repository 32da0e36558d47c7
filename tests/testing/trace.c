/* Unit tests for testing/trace.c: the trace hash of a deterministic run —
 * one seed gives one hash, run after run, chaos on or off; different seeds
 * give different traces; a scenario that depends on more than the seed is
 * caught by weft_sim_check_replay and reported with its seed — and the
 * name digest the trace uses to tell tasks apart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "testing/trace.h"
#include "support/sim.h"

/* Six workers that yield and sleep, joined by the main task. */
typedef struct worker {
    weft_future base;
    weft_co co;
    weft_sleep s;
    int id, i;
} worker;

WEFT_ASYNC_FN(worker, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++) {
        WEFT_FN_YIELD;
        weft_sleep_init(&self->s, WEFT_MS(self->id + 1));
        WEFT_FN_AWAIT(&self->s, NULL);
    }
    WEFT_FN_RETURN(self->id);
    WEFT_FN_END;
}

typedef struct boss {
    weft_future base;
    weft_co co;
    weft_join j[6];
    int n, i, out, sum;
} boss;

static void boss_drop(weft_future *f)
{
    boss *self = (boss *)f;
    for (int i = 0; i < self->n; i++)
        if (self->j[i].task && self->co.awaiting != &self->j[i].base)
            weft_future_drop(&self->j[i].base);
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_WITH_DROP(boss, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++)
        if (WEFT_SPAWN(NULL, &self->j[self->i],
                       &(worker){ WEFT_FN_INIT(worker, WEFT_F_SEND), .id = self->i }) != 0)
            WEFT_FN_RETURN(-1);
    for (self->i = 0; self->i < self->n; self->i++) {
        WEFT_FN_AWAIT(&self->j[self->i], &self->out);
        self->sum += self->out;
    }
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

static int boss_scenario(weft_rt *rt, void *arg)
{
    (void)arg;
    boss b = { WEFT_FN_INIT(boss, WEFT_F_SEND), .n = 6 };
    int sum = 0;
    int rc = weft_block_on(rt, &b.base, &sum, sizeof sum);
    return rc ? rc : (sum == 15 ? 0 : -EINVAL);
}

static weft_sim_options chaos_options(uint64_t seed)
{
    weft_sim_options o = sim_options(seed);
    o.spurious_wake = 0.3;
    o.leaf_pending = 0.3;
    o.timer_late = 0.3;
    return o;
}

static void test_trace_one_seed_one_hash(void **state)
{
    (void)state;
    for (int chaos = 0; chaos < 2; chaos++) {
        weft_sim_options o = chaos ? chaos_options(77) : sim_options(77);
        uint64_t h1 = 0, h2 = 0;
        assert_int_equal(weft_sim_check_replay(&o, boss_scenario, NULL, &h1), 0);
        assert_int_equal(weft_sim_check_replay(&o, boss_scenario, NULL, &h2), 0);
        assert_int_equal(h1, h2);
        assert_true(h1 != WEFT__TRACE_INIT);
    }
    assert_int_equal(g_sim_reports, 0);
}

static void test_trace_differs_across_seeds(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    uint64_t h[20];
    int distinct = 0;
    for (int s = 0; s < 20; s++) {
        weft_sim_options o = chaos_options((uint64_t)s);
        assert_int_equal(weft_sim_check_replay(&o, boss_scenario, NULL, &h[s]), 0);
        bool seen = false;
        for (int t = 0; t < s; t++)
            seen = seen || h[t] == h[s];
        distinct += !seen;
    }
    assert_true(distinct >= 15);
}

/* A scenario with a memory of its own: each call spawns one task more. */
static int g_calls;

static int drifting_scenario(weft_rt *rt, void *arg)
{
    (void)arg;
    boss b = { WEFT_FN_INIT(boss, WEFT_F_SEND), .n = 1 + g_calls++ % 2 };
    int sum = 0;
    return weft_block_on(rt, &b.base, &sum, sizeof sum);
}

static int failing_scenario(weft_rt *rt, void *arg)
{
    (void)rt;
    return *(int *)arg;
}

static void test_trace_check_replay_reports_divergence_and_errors(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed(); /* it checks its seed in the report */
    weft_sim_options o = sim_options(31);
    g_calls = 0;
    uint64_t h = 123;
    assert_int_equal(weft_sim_check_replay(&o, drifting_scenario, NULL, &h), -EPROTO);
    assert_int_equal(h, 123);
    assert_int_equal(g_sim_reports, 1);
    assert_true(sim_report_contains("replay diverged: seed=31"));
    int err = -ENOENT;
    assert_int_equal(weft_sim_check_replay(&o, failing_scenario, &err, &h), -ENOENT);
    assert_int_equal(weft_sim_check_replay(&o, NULL, NULL, &h), -EINVAL);
    o.leaf_pending = 2.0;
    err = 0;
    assert_int_equal(weft_sim_check_replay(&o, failing_scenario, &err, NULL), -EINVAL);
}

static void test_trace_name_digest(void **state)
{
    (void)state;
    assert_int_equal(weft__trace_name("worker"), weft__trace_name("worker"));
    assert_true(weft__trace_name("worker") != weft__trace_name("boss"));
    assert_true(weft__trace_name("ab") != weft__trace_name("ba"));
    /* Order matters in the hash. */
    uint64_t a = weft__trace_add(weft__trace_add(WEFT__TRACE_INIT, 1), 2);
    uint64_t b = weft__trace_add(weft__trace_add(WEFT__TRACE_INIT, 2), 1);
    assert_true(a != b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_trace_one_seed_one_hash, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_trace_differs_across_seeds, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_trace_check_replay_reports_divergence_and_errors,
                                        sim_setup, sim_teardown),
        cmocka_unit_test(test_trace_name_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
