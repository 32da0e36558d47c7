/* Unit tests for sched/join.c beyond the task state machine (which
 * tests/sched/task.c covers through join handles): weft_join_cancel and
 * weft_join_all. Each runs on a two-worker runtime and again on a sim
 * runtime (one thread, seeded order, virtual time: the 10 s bound costs
 * nothing there), where a wait for a worker becomes a run of the sim. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/counting_waker.h"
#include "support/never.h"
#include "support/poll.h"
#include "support/rt_fixture.h"
#include "support/sim_fixture.h"
#include "support/wait.h"

/* The tasks that never finish by themselves are nevers (support/never.h):
 * only an abort ends them. */
static void spawn_forever(weft_join *j, countdown_counts *n)
{
    assert_int_equal(WEFT_SPAWN(g_rt, j, &(never){ WEFT_FUTURE_INIT(&never_ops, WEFT_F_SEND), n }),
                     0);
}

/* Forever tasks into joins[from, to). */
static void spawn_forevers(weft_join *joins, int from, int to, countdown_counts *n)
{
    for (int i = from; i < to; i++)
        spawn_forever(&joins[i], n);
}

static void square(void *arg, void *out)
{
    int i = *(int *)arg;
    *(int *)out = i * i;
}

static void spawn_square(weft_join *j, int i)
{
    assert_int_equal(weft_spawn_fn(g_rt, square, &i, sizeof(int), j), 0);
}

/* Wait for exactly `want` drops, made on a worker, or by the sim. */
static void wait_drops(countdown_counts *n, int want)
{
    RT_WAIT_UNTIL(g_rt, weft_atomic_load_acquire(&n->drops) >= want);
    assert_int_equal(weft_atomic_load_acquire(&n->drops), want);
}

/* Run `f` to completion with a 10 s limit, so a join_all that would hang
 * fails instead. Returns the timeout's status. */
static int run_bounded(weft_future *f)
{
    typedef struct {
        weft_timeout limit;
    } bounded;
    bounded b;
    assert_int_equal(weft_timeout_at_init(&b.limit, f, rt_now(g_rt) + WEFT_SEC(10)), 0);
    assert_int_equal(weft_block_on(g_rt, &b.limit.base, NULL, 0), 0);
    return b.limit.status;
}

/* Runs `ja` to completion (run_bounded) and checks that it failed with
 * -ECANCELED, `failed` being the index of the handle that failed it. */
static void run_cancelled(weft_join_all *ja, size_t failed)
{
    assert_int_equal(run_bounded(&ja->base), 0);
    assert_int_equal(ja->status, -ECANCELED);
    assert_int_equal(ja->failed, failed);
}

/* ---- weft_join_cancel ---------------------------------------------------------- */

static void test_join_cancel_aborts_the_task_and_drops_the_handle(void **state)
{
    (void)state;
    countdown_counts n = COUNTDOWN_COUNTS_INIT;
    weft_join j;
    spawn_forever(&j, &n);
    weft_join_cancel(&j);
    assert_null(j.task);  /* the handle is gone */
    wait_drops(&n, 1); /* and the task's future was dropped on a worker */
    weft_join_cancel(&j); /* again: a no-op */
    weft_join_cancel(NULL);
}

/* ---- weft_join_all --------------------------------------------------------------- */

#define N 16

static void test_join_all_writes_every_output_in_order(void **state)
{
    (void)state;
    weft_join joins[N];
    int outs[N];
    for (int i = 0; i < N; i++)
        spawn_square(&joins[i], i);
    weft_join_all ja;
    assert_int_equal(weft_join_all_init(&ja, joins, N, outs, sizeof outs[0], 0), 0);
    assert_int_equal(weft_block_on(g_rt, &ja.base, NULL, 0), 0);
    assert_int_equal(ja.status, 0);
    assert_int_equal(ja.failed, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(outs[i], i * i);
        assert_null(joins[i].task); /* every handle was dropped */
    }
}

static void test_join_all_of_nothing_is_ready_at_once(void **state)
{
    (void)state;
    weft_join_all ja;
    assert_int_equal(weft_join_all_init(&ja, NULL, 0, NULL, 0, 0), 0);
    assert_int_equal(poll_noop(&ja.base, NULL), WEFT_READY);
    weft_future_drop(&ja.base);
    assert_int_equal(ja.status, 0);
}

static void test_join_all_reports_the_first_failure_in_array_order(void **state)
{
    (void)state;
    countdown_counts n = COUNTDOWN_COUNTS_INIT;
    weft_join joins[5];
    int outs[5] = { -1, -1, -1, -1, -1 };
    spawn_square(&joins[0], 3);
    spawn_forever(&joins[1], &n);
    spawn_square(&joins[2], 4);
    spawn_forever(&joins[3], &n);
    spawn_square(&joins[4], 5);
    weft_join_abort(&joins[3]); /* the later one fails first in time */
    wait_drops(&n, 1);
    weft_join_abort(&joins[1]);
    weft_join_all ja;
    assert_int_equal(weft_join_all_init(&ja, joins, 5, outs, sizeof outs[0], 0), 0);
    run_cancelled(&ja, 1);
    assert_int_equal(outs[0], 9);
    assert_int_equal(outs[1], 0); /* a cancelled task's output reads zero */
    assert_int_equal(outs[2], 16);
    assert_int_equal(outs[4], 25); /* without fail-fast the rest completes */
}

static void test_join_all_fail_fast_aborts_the_rest_and_waits_for_them(void **state)
{
    (void)state;
    countdown_counts n = COUNTDOWN_COUNTS_INIT;
    weft_join joins[6];
    spawn_square(&joins[0], 2);
    spawn_forevers(joins, 1, 6, &n);
    weft_join_abort(&joins[1]);
    weft_join_all ja;
    assert_int_equal(weft_join_all_init(&ja, joins, 6, NULL, 0, WEFT_JOIN_ALL_FAIL_FAST), 0);
    /* Without fail-fast the tasks after 1 would never finish: the bound
     * would expire. */
    run_cancelled(&ja, 1);
    /* Every forever task was dropped before join_all completed. */
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 5);
}

static void test_join_all_abort_stops_every_task_not_yet_joined(void **state)
{
    (void)state;
    countdown_counts n = COUNTDOWN_COUNTS_INIT;
    weft_join joins[4];
    spawn_forevers(joins, 0, 4, &n);
    weft_join_all ja;
    assert_int_equal(weft_join_all_init(&ja, joins, 4, NULL, 0, 0), 0);
    weft_join_all_abort(&ja);
    run_cancelled(&ja, 0);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 4);
}

static void test_dropping_a_pending_join_all_detaches_the_rest(void **state)
{
    (void)state;
    /* Static: the tasks outlive this frame, and shutdown drops them. */
    static countdown_counts n;
    countdown_counts_init(&n);
    weft_join joins[3];
    spawn_forevers(joins, 0, 3, &n);
    weft_join_all ja;
    assert_int_equal(weft_join_all_init(&ja, joins, 3, NULL, 0, 0), 0);
    assert_int_equal(poll_noop(&ja.base, NULL), WEFT_PENDING);
    weft_future_drop(&ja.base);
    for (int i = 0; i < 3; i++)
        assert_null(joins[i].task); /* handles dropped */
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 0); /* tasks still alive: detached */
    /* Shutdown (teardown) cancels them; nothing leaks. */
}

static void test_join_all_init_rejects_bad_arguments(void **state)
{
    (void)state;
    countdown_counts n = COUNTDOWN_COUNTS_INIT;
    weft_join joins[2];
    spawn_square(&joins[0], 1);
    spawn_forever(&joins[1], &n);
    weft_join_all ja;
    int outs[2];
    assert_int_equal(weft_join_all_init(NULL, joins, 2, NULL, 0, 0), -EINVAL);
    assert_int_equal(weft_join_all_init(&ja, NULL, 2, NULL, 0, 0), -EINVAL);
    assert_int_equal(weft_join_all_init(&ja, joins, 2, NULL, 0, 0x80u), -EINVAL);
    /* Room for each output is checked against each handle. */
    assert_int_equal(weft_join_all_init(&ja, joins, 2, outs, 2, 0), -EINVAL);
    weft_future not_a_join = WEFT_FUTURE_INIT(&never_ops, WEFT_F_SEND);
    weft_join fake = { not_a_join, NULL, 0 };
    assert_int_equal(weft_join_all_init(&ja, &fake, 1, NULL, 0, 0), -EINVAL);
    /* The caller still owns the handles. */
    weft_join_cancel(&joins[1]);
    weft_future_drop(&joins[0].base);
    wait_drops(&n, 1);
}

/* ---- a handle dropped as its task completes ------------------------------------- */

typedef struct yielder {
    weft_future base;
    weft_co co;
    int i;
} yielder;

WEFT_ASYNC_FN(yielder, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++)
        WEFT_FN_YIELD;
    WEFT_FN_RETURN(7);
    WEFT_FN_END;
}

/* The handle is polled twice while its task runs (the second poll reads
 * the join waker it stored), then dropped the moment the task completes,
 * racing the completer's wake and its hand-back of that waker. The drop
 * must order the handle's read before the completer's drop of the waker
 * (ThreadSanitizer builds report the race when it does not), and the
 * waker clone must be given back either way. */
static void test_join_dropped_as_its_task_completes_after_a_repoll(void **state)
{
    (void)state;
    static counting_waker c;
    cw_init(&c);
    weft_waker w = cw_waker(&c);
    unsigned raced = 0;
    for (int round = 0; round < 2000; round++) {
        weft_join j;
        assert_int_equal(WEFT_SPAWN(g_rt, &j, &(yielder){ WEFT_FN_INIT(yielder, WEFT_F_SEND) }),
                         0);
        int out = 0;
        if (poll_with(&j.base, &w, &out) == WEFT_PENDING &&
            poll_with(&j.base, &w, &out) == WEFT_PENDING) {
            raced++;
            RT_WAIT_UNTIL(g_rt, weft_join_is_finished(&j));
        }
        weft_future_drop(&j.base);
    }
    RT_WAIT_UNTIL(g_rt, cw_outstanding(&c) == 0);
    assert_true(raced > 0); /* the pattern was reached at least once */
}

#define T(name) cmocka_unit_test_setup_teardown(name, rt_setup, rt_teardown)
/* The same test on a sim runtime. */
#define S(name) { #name "_on_a_sim", name, sim_setup_g_rt, rt_teardown, NULL }

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_join_cancel_aborts_the_task_and_drops_the_handle),
        T(test_join_all_writes_every_output_in_order),
        T(test_join_all_of_nothing_is_ready_at_once),
        T(test_join_all_reports_the_first_failure_in_array_order),
        T(test_join_all_fail_fast_aborts_the_rest_and_waits_for_them),
        T(test_join_all_abort_stops_every_task_not_yet_joined),
        T(test_dropping_a_pending_join_all_detaches_the_rest),
        T(test_join_all_init_rejects_bad_arguments),
        T(test_join_dropped_as_its_task_completes_after_a_repoll),
        S(test_join_cancel_aborts_the_task_and_drops_the_handle),
        S(test_join_all_writes_every_output_in_order),
        S(test_join_all_reports_the_first_failure_in_array_order),
        S(test_join_all_fail_fast_aborts_the_rest_and_waits_for_them),
        S(test_join_all_abort_stops_every_task_not_yet_joined),
        S(test_dropping_a_pending_join_all_detaches_the_rest),
        S(test_join_all_init_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
