/* Tests for weft_rt_shutdown_timeout (sched/runtime.c): tasks that finish
 * within the grace period complete normally and the call returns 0; a task
 * that never finishes is cancelled once the period is over (-ETIMEDOUT),
 * while the others still complete; a blocking job in flight is waited for;
 * misuse is refused. Counted, never timed: on the sim the period is
 * virtual; on two workers the tasks finish once signalled, and the task
 * that never finishes meets a short period. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>

#include "weft/weft.h"
#include "support/gate.h"
#include "support/misuse_capture.h"
#include "support/never.h"
#include "support/sim_fixture.h"

/* Sleeps `d` (virtual on a sim), then outputs `v`. */
typedef struct nap {
    weft_future base;
    weft_co co;
    weft_duration d;
    int v;
    weft_sleep sleep;
} nap;

WEFT_ASYNC_FN(nap, int)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->sleep, self->d);
    WEFT_FN_AWAIT(&self->sleep, NULL);
    WEFT_FN_RETURN(self->v);
    WEFT_FN_END;
}

/* Waits at a gate, then yields a while before it outputs its value: a
 * shutdown that does not wait would catch it mid-way. */
typedef struct slow {
    weft_future base;
    weft_co co;
    gated g;
    int v, i;
} slow;

WEFT_ASYNC_FN(slow, int)
{
    WEFT_FN_BEGIN;
    WEFT_FN_AWAIT(&self->g, &self->v);
    for (self->i = 0; self->i < 200; self->i++)
        WEFT_FN_YIELD;
    WEFT_FN_RETURN(self->v);
    WEFT_FN_END;
}

/* A join handle of a runtime that was shut down: it is finished; its
 * status and output. */
static int joined(weft_join *j, int *out)
{
    assert_true(weft_join_is_finished(j));
    weft_waker nw = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &nw);
    assert_int_equal(weft_future_poll(&j->base, &cx, out), WEFT_READY);
    int st = j->status;
    weft_future_drop(&j->base);
    return st;
}

static void spawn_nap(weft_rt *rt, weft_join *j, weft_duration d, int v)
{
    assert_int_equal(WEFT_SPAWN(rt, j, &(nap){ WEFT_FN_INIT(nap, WEFT_F_SEND), .d = d, .v = v }),
                     0);
}

static void test_sim_tasks_finishing_in_time(void **state)
{
    (void)state;
    weft_sim_options so = sim_options(1);
    weft_rt *rt = sim_start(&so);
    weft_join j[3];
    for (int i = 0; i < 3; i++)
        spawn_nap(rt, &j[i], WEFT_SEC(i + 1), i + 10);
    assert_int_equal(weft_rt_shutdown_timeout(rt, WEFT_SEC(5)), 0);
    for (int i = 0; i < 3; i++) {
        int out = -1;
        assert_int_equal(joined(&j[i], &out), 0);
        assert_int_equal(out, i + 10);
    }
}

static void test_sim_a_task_that_never_finishes_is_cancelled(void **state)
{
    (void)state;
    weft_sim_options so = sim_options(2);
    weft_rt *rt = sim_start(&so);
    weft_join a, b, n, late;
    spawn_nap(rt, &a, WEFT_SEC(1), 1);
    spawn_nap(rt, &b, WEFT_SEC(2), 2);
    spawn_nap(rt, &late, WEFT_SEC(10), 3); /* beyond the period */
    countdown_counts nc;
    never nv;
    never_start(&nv, &nc, WEFT_F_SEND);
    assert_int_equal(weft_spawn(rt, &nv.base, sizeof nv, &n), 0);
    assert_int_equal(weft_rt_shutdown_timeout(rt, WEFT_SEC(5)), -ETIMEDOUT);
    int out = -1;
    assert_int_equal(joined(&a, &out), 0);
    assert_int_equal(out, 1);
    assert_int_equal(joined(&b, &out), 0);
    assert_int_equal(out, 2);
    assert_int_equal(joined(&late, &out), -ECANCELED);
    assert_int_equal(joined(&n, &out), -ECANCELED);
    assert_int_equal(atomic_load(&nc.drops), 1);
}

static void test_sim_nothing_left_returns_at_once(void **state)
{
    (void)state;
    weft_sim_options so = sim_options(3);
    weft_rt *rt = sim_start(&so);
    assert_int_equal(weft_rt_shutdown_timeout(rt, WEFT_SEC(5)), 0);
}

static void double_it(void *arg, void *out)
{
    *(int *)out = *(int *)arg * 2;
}

static void test_sim_blocking_job_in_flight_is_waited_for(void **state)
{
    (void)state;
    weft_sim_options so = sim_options(4);
    weft_rt *rt = sim_start(&so);
    weft_join j;
    int x = 21, out = 0;
    assert_int_equal(weft_spawn_blocking(rt, double_it, &x, sizeof x, sizeof out, &j), 0);
    /* The period is short in virtual time, but the clock stands still
     * while the job runs. */
    assert_int_equal(weft_rt_shutdown_timeout(rt, WEFT_MS(1)), 0);
    assert_int_equal(joined(&j, &out), 0);
    assert_int_equal(out, 42);
}

static void test_tasks_finish_once_signalled(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(2);
    gate g[6]; /* one waiter per gate (its atomic waker holds one) */
    weft_join j[6];
    for (int i = 0; i < 6; i++) {
        gate_init(&g[i]);
        assert_int_equal(WEFT_SPAWN(rt, &j[i], &(slow){ WEFT_FN_INIT(slow, WEFT_F_SEND),
                                                       .g = gated_make(&g[i], i) }),
                         0);
    }
    for (int i = 0; i < 6; i++)
        gate_open(&g[i]);
    /* A long bound, never reached: they finish on their own. */
    assert_int_equal(weft_rt_shutdown_timeout(rt, WEFT_SEC(60)), 0);
    for (int i = 0; i < 6; i++) {
        int out = -1;
        assert_int_equal(joined(&j[i], &out), 0);
        assert_int_equal(out, i);
        gate_fini(&g[i]);
    }
}

static void test_a_task_that_never_finishes_is_cancelled(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(2);
    gate g;
    gate_init(&g); /* never opened */
    weft_join j;
    assert_int_equal(WEFT_SPAWN(rt, &j, &(slow){ WEFT_FN_INIT(slow, WEFT_F_SEND),
                                                .g = gated_make(&g, 1) }),
                     0);
    assert_int_equal(weft_rt_shutdown_timeout(rt, WEFT_MS(20)), -ETIMEDOUT);
    int out = -1;
    assert_int_equal(joined(&j, &out), -ECANCELED);
    gate_fini(&g);
}

static void test_misuse(void **state)
{
    (void)state;
    assert_int_equal(weft_rt_shutdown_timeout(NULL, 0), -EINVAL);
    weft_rt *rt = rt_start(1);
    gate g;
    gate_init(&g);
    weft_join j;
    assert_int_equal(WEFT_SPAWN(rt, &j, &(slow){ WEFT_FN_INIT(slow, WEFT_F_SEND),
                                                .g = gated_make(&g, 1) }),
                     0);
    assert_int_equal(weft_rt_shutdown_timeout(rt, 0), -ETIMEDOUT);
    /* The handle keeps the runtime's memory: a second shutdown is refused. */
    int before = misuse_count();
    assert_int_equal(weft_rt_shutdown_timeout(rt, 0), -EINVAL);
    weft_rt_shutdown(rt);
    assert_misuse_since(before, 2, "already shut down");
    int out = -1;
    assert_int_equal(joined(&j, &out), -ECANCELED);
    gate_fini(&g);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        T(test_sim_tasks_finishing_in_time),
        T(test_sim_a_task_that_never_finishes_is_cancelled),
        T(test_sim_nothing_left_returns_at_once),
        T(test_sim_blocking_job_in_flight_is_waited_for),
        T(test_tasks_finish_once_signalled),
        T(test_a_task_that_never_finishes_is_cancelled),
        T(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
