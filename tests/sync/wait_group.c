/* Tests of sync/wait_group.c: the count and its misuse, waits released at
 * zero (by hand with a counting waker, on two workers, and on sims with
 * chaos over many seeds), add while a wait is pending, the blocking wait,
 * and the cancel sweep of weft_wait_group_wait. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "weft/weft.h"
#include "sync/waitq.h"
#include "support/counting_waker.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "misc_support.h"

/* ---- tasks ------------------------------------------------------------------------------ */

/* Yields `yields` times, bumps `*finished`, then calls done; outputs
 * done's return code. */
typedef struct worker {
    weft_future base;
    weft_co co;
    weft_wait_group *wg;
    _Atomic int *finished;
    int yields, i;
} worker;

WEFT_ASYNC_FN(worker, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->yields; self->i++)
        WEFT_FN_YIELD;
    /* Relaxed on purpose: done (a lock release) and the waiter's release
     * (an acquire) must order it; the waiters check that they do. */
    weft_atomic_fetch_add_relaxed(self->finished, 1);
    WEFT_FN_RETURN(weft_wait_group_done(self->wg));
    WEFT_FN_END;
}

/* Waits on the group; outputs how many workers had finished by then. */
typedef struct waiter {
    weft_future base;
    weft_co co;
    weft_wait_group *wg;
    _Atomic int *finished;
    weft_wait_group_wait w;
} waiter;

WEFT_ASYNC_FN(waiter, int)
{
    WEFT_FN_BEGIN;
    weft_wait_group_wait_init(&self->w, self->wg);
    WEFT_FN_AWAIT(&self->w, NULL);
    WEFT_FN_RETURN(weft_atomic_load_relaxed(self->finished));
    WEFT_FN_END;
}

#define MAX_TASKS 80

/* `nw` workers after add(nw), `nv` waiters spawned first; every waiter
 * must see every worker finished. */
static void run_workers_and_waiters(weft_rt *rt, int nw, int nv)
{
    weft_wait_group wg;
    _Atomic int finished;
    weft_atomic_init(&finished, 0);
    assert_int_equal(weft_wait_group_init(&wg), 0);
    assert_int_equal(weft_wait_group_add(&wg, (uint32_t)nw), 0);
    weft_join jv[MAX_TASKS], jw[MAX_TASKS];
    for (int i = 0; i < nv; i++) {
        waiter v = { WEFT_FN_INIT(waiter, WEFT_F_SEND), .wg = &wg, .finished = &finished };
        spawn_into(rt, &v.base, sizeof v, &jv[i]);
    }
    for (int i = 0; i < nw; i++) {
        worker w = { WEFT_FN_INIT(worker, WEFT_F_SEND), .wg = &wg, .finished = &finished,
                     .yields = (i * 7) % 5 };
        spawn_into(rt, &w.base, sizeof w, &jw[i]);
    }
    for (int i = 0; i < nv; i++)
        assert_int_equal(join_int(rt, &jv[i]), nw);
    for (int i = 0; i < nw; i++)
        assert_int_equal(join_int(rt, &jw[i]), 0);
    weft_wait_group_fini(&wg);
}

/* ---- by hand ---------------------------------------------------------------------------- */

static weft_poll poll_once(weft_future *f, counting_waker *c)
{
    weft_waker wk = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &wk);
    return weft_future_poll(f, &cx, NULL);
}

static void test_wait_at_zero_is_ready_at_once(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_wait_group wg;
    assert_int_equal(weft_wait_group_init(&wg), 0);
    weft_wait_group_wait w;
    weft_wait_group_wait_init(&w, &wg);
    assert_int_equal(poll_once(&w.base, &c), WEFT_READY);
    weft_future_drop(&w.base);
    assert_int_equal(weft_wait_group_wait_blocking(&wg), 0);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_wait_group_fini(&wg);
}

static void test_wait_is_released_when_the_count_reaches_zero(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_wait_group wg;
    assert_int_equal(weft_wait_group_init(&wg), 0);
    assert_int_equal(weft_wait_group_add(&wg, 2), 0);
    weft_wait_group_wait w[3];
    for (int i = 0; i < 3; i++) {
        weft_wait_group_wait_init(&w[i], &wg);
        assert_int_equal(poll_once(&w[i].base, &c), WEFT_PENDING);
    }
    assert_int_equal(poll_once(&w[0].base, &c), WEFT_PENDING); /* spurious */
    assert_int_equal(weft_wait_group_done(&wg), 0);
    assert_int_equal(cw_woken(&c), 0);
    assert_int_equal(weft_wait_group_done(&wg), 0);
    assert_int_equal(cw_woken(&c), 3);
    /* Served at the zero, a wait stays released though the count rises. */
    assert_int_equal(weft_wait_group_add(&wg, 1), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(poll_once(&w[i].base, &c), WEFT_READY);
        weft_future_drop(&w[i].base);
    }
    assert_int_equal(weft_wait_group_done(&wg), 0);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_wait_group_fini(&wg);
}

static void test_add_while_a_wait_is_pending_extends_it(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_wait_group wg;
    assert_int_equal(weft_wait_group_init(&wg), 0);
    assert_int_equal(weft_wait_group_add(&wg, 1), 0);
    weft_wait_group_wait w;
    weft_wait_group_wait_init(&w, &wg);
    assert_int_equal(poll_once(&w.base, &c), WEFT_PENDING);
    assert_int_equal(weft_wait_group_add(&wg, 2), 0);
    assert_int_equal(weft_wait_group_done(&wg), 0);
    assert_int_equal(weft_wait_group_done(&wg), 0);
    assert_int_equal(cw_woken(&c), 0);
    assert_int_equal(poll_once(&w.base, &c), WEFT_PENDING);
    assert_int_equal(weft_wait_group_done(&wg), 0);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(poll_once(&w.base, &c), WEFT_READY);
    weft_future_drop(&w.base);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_wait_group_fini(&wg);
}

static void test_dropped_wait_unlinks_and_releases_its_waker(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_wait_group wg;
    assert_int_equal(weft_wait_group_init(&wg), 0);
    assert_int_equal(weft_wait_group_add(&wg, 1), 0);
    weft_wait_group_wait w[2];
    for (int i = 0; i < 2; i++) {
        weft_wait_group_wait_init(&w[i], &wg);
        assert_int_equal(poll_once(&w[i].base, &c), WEFT_PENDING);
    }
    weft_future_drop(&w[0].base);
    assert_int_equal(cw_outstanding(&c), 1);
    assert_int_equal(weft_wait_group_done(&wg), 0);
    assert_int_equal(cw_woken(&c), 1);
    /* Served but dropped before seeing it: nothing to hand on. */
    weft_future_drop(&w[1].base);
    assert_true(weft__waitq_empty(&wg.q_));
    assert_int_equal(cw_outstanding(&c), 0);
    weft_wait_group_fini(&wg);
}

static void test_misuse_is_einval_and_leaves_the_count(void **state)
{
    (void)state;
    int before = misuse_count();
    weft_wait_group wg;
    assert_int_equal(weft_wait_group_init(NULL), -EINVAL);
    assert_int_equal(weft_wait_group_init(&wg), 0);
    assert_int_equal(weft_wait_group_done(&wg), -EINVAL);
    assert_misuse_since(before, 2, "more done than add");
    assert_int_equal(weft_wait_group_add(&wg, 0), -EINVAL);
    assert_int_equal(weft_wait_group_add(&wg, UINT32_MAX), 0);
    assert_int_equal(weft_wait_group_add(&wg, 1), -EINVAL);
    assert_misuse_since(before, 4, "UINT32_MAX");
    assert_int_equal(wg.count_, UINT32_MAX);
    assert_int_equal(weft_wait_group_wait_blocking(NULL), -EINVAL);
    weft_wait_group_fini(&wg);
    assert_misuse_since(before, 5, "NULL");
}

static void test_fini_with_a_pending_wait_is_reported(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    int before = misuse_count();
    weft_wait_group wg;
    assert_int_equal(weft_wait_group_init(&wg), 0);
    assert_int_equal(weft_wait_group_add(&wg, 1), 0);
    weft_wait_group_wait w;
    weft_wait_group_wait_init(&w, &wg);
    assert_int_equal(poll_once(&w.base, &c), WEFT_PENDING);
    weft_wait_group_fini(&wg);
    assert_misuse_since(before, 1, "still pending");
    weft_future_drop(&w.base);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* ---- on two workers --------------------------------------------------------------------- */

static void test_waiters_see_every_worker_finished(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++)
        run_workers_and_waiters(g_rt, 8, 4);
    /* More waiters than one batch of wakes. */
    run_workers_and_waiters(g_rt, 3, MAX_TASKS);
}

static void task_waits_blocking(void *arg, void *out)
{
    (void)arg;
    weft_wait_group wg;
    assert_int_equal(weft_wait_group_init(&wg), 0);
    *(int *)out = weft_wait_group_wait_blocking(&wg);
    weft_wait_group_fini(&wg);
}

static void test_wait_blocking_on_a_worker_is_edeadlk(void **state)
{
    (void)state;
    int before = misuse_count(), rc = 0;
    assert_int_equal(RUN_FN_BLOCKING(g_rt, task_waits_blocking, &rc, sizeof rc), 0);
    assert_int_equal(rc, -EDEADLK);
    assert_misuse_since(before, 1, "weft_wait_group_wait_blocking");
}

/* A server thread spawns tasks and waits for all of them, parked. */
static void test_wait_blocking_waits_for_spawned_tasks(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        weft_wait_group wg;
        _Atomic int finished;
        weft_atomic_init(&finished, 0);
        assert_int_equal(weft_wait_group_init(&wg), 0);
        assert_int_equal(weft_wait_group_add(&wg, 6), 0);
        for (int i = 0; i < 6; i++) {
            worker w = { WEFT_FN_INIT(worker, WEFT_F_SEND), .wg = &wg, .finished = &finished,
                         .yields = i % 3 };
            assert_int_equal(weft_spawn(g_rt, &w.base, sizeof w, NULL), 0);
        }
        assert_int_equal(weft_wait_group_wait_blocking(&wg), 0);
        assert_int_equal(weft_atomic_load_relaxed(&finished), 6);
        weft_wait_group_fini(&wg);
    }
}

/* ---- on the sim ------------------------------------------------------------------------- */

static void test_sim_chaos_waiters_see_every_worker_finished(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= CHAOS_SEEDS; seed++) {
        weft_rt *rt = chaos_sim(seed);
        run_workers_and_waiters(rt, 5, 3);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* ---- cancel sweep ----------------------------------------------------------------------- */

/* The wait under test waits for three workers; dropped at any point, the
 * workers still finish, the group's queue is empty, its count zero, and
 * no waker of the wait is left. */
typedef struct wait_case {
    weft_wait_group wg;
    _Atomic int finished;
    weft_wait_group_wait w;
} wait_case;

static int wait_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    wait_case *wc = ctx;
    (void)out;
    weft_atomic_init(&wc->finished, 0);
    int rc = weft_wait_group_init(&wc->wg);
    if (rc == 0)
        rc = weft_wait_group_add(&wc->wg, 3);
    for (int i = 0; rc == 0 && i < 3; i++) {
        worker w = { WEFT_FN_INIT(worker, WEFT_F_SEND), .wg = &wc->wg, .finished = &wc->finished,
                     .yields = i + 1 };
        rc = weft_spawn(rt, &w.base, sizeof w, NULL);
    }
    weft_wait_group_wait_init(&wc->w, &wc->wg);
    *fut = &wc->w.base;
    return rc;
}

static const char *wait_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    wait_case *wc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    if (!weft__waitq_empty(&wc->wg.q_) || wc->wg.count_ != 0)
        return sweep_say("k=%u: queue %s, count %llu", run->k,
                         weft__waitq_empty(&wc->wg.q_) ? "empty" : "not empty",
                         (unsigned long long)wc->wg.count_);
    if (run->completed && weft_atomic_load_relaxed(&wc->finished) != 3)
        return "completed before every worker finished";
    return sweep_leftovers(rt);
}

static void wait_teardown(void *ctx)
{
    weft_wait_group_fini(&((wait_case *)ctx)->wg);
}

static void test_cancel_sweep_wait_group_wait(void **state)
{
    (void)state;
    static wait_case wc;
    weft_sweep_case c = { wait_build, wait_check, wait_teardown, &wc };
    assert_true(sweep_both(&c) >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wait_at_zero_is_ready_at_once,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_wait_is_released_when_the_count_reaches_zero,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_add_while_a_wait_is_pending_extends_it,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_dropped_wait_unlinks_and_releases_its_waker,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_is_einval_and_leaves_the_count,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_fini_with_a_pending_wait_is_reported,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_waiters_see_every_worker_finished, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_wait_blocking_on_a_worker_is_edeadlk, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_wait_blocking_waits_for_spawned_tasks, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_sim_chaos_waiters_see_every_worker_finished,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_sweep_wait_group_wait, sim_setup,
                                        sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
