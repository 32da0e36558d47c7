/* Unit tests for sched/idle.c: the idle protocol's bookkeeping, driven from
 * one thread (a worker's calls are made on its behalf), with each worker's
 * parker showing whether it was woken: a woken worker's park returns at
 * once (it holds a token), an unwoken one's times out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>

#include "sched/idle.h"
#include "support/aligned.h"

#define N 4

static weft__idle *g_idle;

static int setup(void **state)
{
    (void)state;
    g_idle = aligned_zalloc(sizeof *g_idle);
    return weft__idle_init(g_idle, N, N) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    weft__idle_fini(g_idle);
    free(g_idle);
    return 0;
}

/* Was worker `i` unparked since its last check? (Takes the token.) */
static bool woken(unsigned i)
{
    return weft__park_timeout(weft__idle_parker(g_idle, i), 0);
}

static unsigned searching(void)
{
    return atomic_load(&g_idle->state) & WEFT__IDLE_SEARCHING_MASK;
}

static unsigned unparked(void)
{
    return atomic_load(&g_idle->state) >> 16;
}

/* Worker i goes to sleep (not searching). */
static void sleep_worker(unsigned i)
{
    assert_false(weft__idle_sleep_begin(g_idle, i, false));
}

static void test_idle_starts_with_every_worker_awake_and_none_searching(void **state)
{
    (void)state;
    assert_int_equal(unparked(), N);
    assert_int_equal(searching(), 0);
    for (unsigned i = 0; i < N; i++)
        assert_false(woken(i));
}

static void test_idle_lets_at_most_half_the_workers_search(void **state)
{
    (void)state;
    assert_true(weft__idle_start_search(g_idle));
    assert_true(weft__idle_start_search(g_idle));
    assert_false(weft__idle_start_search(g_idle)); /* 2 of 4 already */
    assert_int_equal(searching(), 2);
}

static void test_idle_sleep_begin_tells_the_last_searcher_to_recheck(void **state)
{
    (void)state;
    assert_true(weft__idle_start_search(g_idle));
    assert_true(weft__idle_start_search(g_idle));
    assert_false(weft__idle_sleep_begin(g_idle, 0, true)); /* one searcher left */
    assert_true(weft__idle_sleep_begin(g_idle, 1, true));  /* the last one */
    assert_int_equal(searching(), 0);
    assert_int_equal(unparked(), N - 2);
}

static void test_idle_notify_wakes_one_sleeper_as_a_searcher(void **state)
{
    (void)state;
    sleep_worker(2);
    sleep_worker(3);
    weft__idle_notify(g_idle);
    /* Exactly one of them, as a searcher. */
    assert_int_equal((int)woken(2) + (int)woken(3), 1);
    assert_int_equal(searching(), 1);
    assert_int_equal(unparked(), N - 1);
    bool s2 = weft__idle_sleep_end(g_idle, 2), s3 = weft__idle_sleep_end(g_idle, 3);
    assert_true(s2 != s3); /* only the woken one wakes searching */
    assert_int_equal(unparked(), N);
}

static void test_idle_notify_wakes_nobody_while_someone_searches(void **state)
{
    (void)state;
    sleep_worker(3);
    assert_true(weft__idle_start_search(g_idle));
    weft__idle_notify(g_idle);
    weft__idle_notify_local(g_idle);
    assert_false(woken(3)); /* the searcher will find the work */
    assert_int_equal(unparked(), N - 1);
}

static void test_idle_last_searcher_finding_work_wakes_another(void **state)
{
    (void)state;
    sleep_worker(3);
    assert_true(weft__idle_start_search(g_idle));
    weft__idle_stop_search(g_idle); /* found work: fan out */
    assert_true(woken(3));
    assert_int_equal(searching(), 1); /* the woken one searches now */
    assert_true(weft__idle_sleep_end(g_idle, 3));
}

static void test_idle_notify_worker_wakes_only_that_worker_and_only_if_asleep(void **state)
{
    (void)state;
    sleep_worker(1);
    sleep_worker(2);
    weft__idle_notify_worker(g_idle, 2);
    assert_true(woken(2));
    assert_false(woken(1));
    assert_false(weft__idle_sleep_end(g_idle, 2)); /* not as a searcher */
    weft__idle_notify_worker(g_idle, 0); /* awake: nothing to do */
    assert_false(woken(0));
    assert_int_equal(unparked(), N - 1);
}

static void test_idle_wake_sleeper_wakes_one_not_searching(void **state)
{
    (void)state;
    weft__idle_wake_sleeper(g_idle); /* nobody sleeps */
    for (unsigned i = 0; i < N; i++)
        assert_false(woken(i));
    sleep_worker(0);
    weft__idle_wake_sleeper(g_idle);
    assert_true(woken(0));
    assert_int_equal(searching(), 0);
    assert_false(weft__idle_sleep_end(g_idle, 0));
    assert_int_equal(unparked(), N);
}

static void test_idle_sleep_end_takes_a_timed_out_worker_off_the_list(void **state)
{
    (void)state;
    sleep_worker(1);
    /* Woken by its own timeout (the timer driver), not by anyone: it
     * leaves the sleeper list itself, so a later notify does not count it
     * as asleep. */
    assert_false(weft__idle_sleep_end(g_idle, 1));
    assert_int_equal(unparked(), N);
    weft__idle_notify(g_idle);
    assert_false(woken(1));
}

/* ---- many workers: the searcher bound, the sleeper stack, the counters ------ */

/* A state of `n` workers on `cpus` CPUs, apart from the fixture's. */
static weft__idle *idle_new(unsigned n, unsigned cpus)
{
    weft__idle *idle = aligned_zalloc(sizeof *idle);
    assert_int_equal(weft__idle_init(idle, n, cpus), 0);
    return idle;
}

static void idle_free(weft__idle *idle)
{
    weft__idle_fini(idle);
    free(idle);
}

static void test_idle_searchers_are_bounded_by_the_cpus(void **state)
{
    (void)state;
    weft__idle *idle = idle_new(64, 2);
    assert_int_equal(idle->max_searching, 2);
    assert_true(weft__idle_start_search(idle));
    assert_true(weft__idle_start_search(idle));
    for (int i = 0; i < 62; i++)
        assert_false(weft__idle_start_search(idle)); /* not 32: 2 CPUs */
    assert_int_equal(atomic_load(&idle->state) & WEFT__IDLE_SEARCHING_MASK, 2);
    assert_int_equal(atomic_load(&idle->searching_peak), 2);
    idle_free(idle);

    idle = idle_new(5, 64); /* CPUs to spare: half the workers, rounded up */
    assert_int_equal(idle->max_searching, 3);
    idle_free(idle);
    idle = idle_new(1, 1);
    assert_int_equal(idle->max_searching, 1);
    idle_free(idle);
}

static void test_idle_a_wake_adds_a_searcher_only_when_there_is_none(void **state)
{
    (void)state;
    weft__idle *idle = idle_new(64, 1);
    assert_false(weft__idle_sleep_begin(idle, 5, false));
    assert_false(weft__idle_sleep_begin(idle, 6, false));
    assert_true(weft__idle_start_search(idle)); /* the one searcher allowed */
    weft__idle_notify(idle);                    /* it will find the work */
    assert_false(weft__park_timeout(weft__idle_parker(idle, 6), 0));
    weft__idle_stop_search(idle); /* it found work and was the last: fan out */
    assert_true(weft__park_timeout(weft__idle_parker(idle, 6), 0));
    assert_int_equal(atomic_load(&idle->state) & WEFT__IDLE_SEARCHING_MASK, 1);
    assert_false(weft__idle_start_search(idle)); /* the woken one is it */
    assert_int_equal(atomic_load(&idle->searching_peak), 1);
    assert_true(weft__idle_sleep_end(idle, 6));
    assert_false(weft__idle_sleep_end(idle, 5)); /* timed out: leaves the list */
    idle_free(idle);
}

static void test_idle_sleepers_leave_from_anywhere_and_wakes_take_the_latest(void **state)
{
    (void)state;
    for (unsigned i = 0; i < N; i++)
        sleep_worker(i); /* the stack: 0 1 2 3 */
    weft__idle_notify_worker(g_idle, 1); /* from the middle */
    assert_true(woken(1));
    assert_false(weft__idle_sleep_end(g_idle, 1));
    assert_false(weft__idle_sleep_end(g_idle, 0)); /* timed out, from the bottom */
    weft__idle_notify(g_idle);                      /* the latest: 3 */
    assert_true(woken(3));
    assert_false(woken(2));
    assert_true(weft__idle_sleep_end(g_idle, 3));
    weft__idle_stop_search(g_idle); /* 3 found work: fan out to the one left */
    assert_true(woken(2));
    assert_true(weft__idle_sleep_end(g_idle, 2));
    assert_int_equal(g_idle->nsleepers, 0);
    weft__idle_stop_search(g_idle);
    weft__idle_wake_sleeper(g_idle); /* nobody sleeps */
    assert_int_equal(unparked(), N);
    /* Three unparks, each of exactly one worker. */
    assert_int_equal(atomic_load(&g_idle->wakes), 3);
    for (unsigned i = 0; i < N; i++)
        assert_false(woken(i));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_idle_starts_with_every_worker_awake_and_none_searching),
        T(test_idle_lets_at_most_half_the_workers_search),
        T(test_idle_sleep_begin_tells_the_last_searcher_to_recheck),
        T(test_idle_notify_wakes_one_sleeper_as_a_searcher),
        T(test_idle_notify_wakes_nobody_while_someone_searches),
        T(test_idle_last_searcher_finding_work_wakes_another),
        T(test_idle_notify_worker_wakes_only_that_worker_and_only_if_asleep),
        T(test_idle_wake_sleeper_wakes_one_not_searching),
        T(test_idle_sleep_end_takes_a_timed_out_worker_off_the_list),
        T(test_idle_searchers_are_bounded_by_the_cpus),
        T(test_idle_a_wake_adds_a_searcher_only_when_there_is_none),
        T(test_idle_sleepers_leave_from_anywhere_and_wakes_take_the_latest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
