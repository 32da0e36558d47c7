/* Tests for sched/blocking.c: the blocking pool — jobs run and return
 * their outputs, the thread bound holds (counted with gated jobs), jobs
 * queue FIFO beyond it, idle threads exit, an abort before start means the
 * job never runs and after start it runs to the end, shutdown cancels the
 * queued jobs and waits for the running ones, allocation and thread-start
 * failures leave nothing behind and the runtime serving, and on the sim
 * the virtual clock stands still while a job runs; the cancel sweep of a
 * blocking job's join handle. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "weft/weft.h"
#include "core/sys.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

/* ---- jobs ---------------------------------------------------------------------- */

static void twice(void *arg, void *out)
{
    *(int *)out = *(int *)arg * 2;
}

/* A gate for pool threads: jobs block on it (a real blocking wait). */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static bool g_open;
static _Atomic int g_now_running, g_max_running, g_finished;
static _Atomic int g_order[16];
static _Atomic int g_order_n;

static void gate_reset(void)
{
    g_open = false;
    atomic_store(&g_now_running, 0);
    atomic_store(&g_max_running, 0);
    atomic_store(&g_finished, 0);
    atomic_store(&g_order_n, 0);
}

static void thread_gate_open(void)
{
    pthread_mutex_lock(&g_lock);
    g_open = true;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
}

/* Counts itself running, waits at the gate, records its id in order. */
static void gated_job(void *arg, void *out)
{
    int id = *(int *)arg;
    int n = atomic_fetch_add(&g_now_running, 1) + 1;
    int m = atomic_load(&g_max_running);
    while (n > m && !atomic_compare_exchange_weak(&g_max_running, &m, n))
        ;
    pthread_mutex_lock(&g_lock);
    while (!g_open)
        pthread_cond_wait(&g_cond, &g_lock);
    pthread_mutex_unlock(&g_lock);
    atomic_store(&g_order[atomic_fetch_add(&g_order_n, 1)], id);
    atomic_fetch_sub(&g_now_running, 1);
    atomic_fetch_add(&g_finished, 1);
    *(int *)out = id + 100;
}

static weft_blocking_stats bstats(weft_rt *rt)
{
    weft_blocking_stats s;
    assert_int_equal(weft_blocking_stats_get(rt, &s), 0);
    return s;
}

static weft_rt *rt_blocking(unsigned max, uint64_t idle)
{
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 2;
    o.blocking_threads_max = max;
    o.blocking_idle_timeout = idle;
    weft_rt *rt = NULL;
    assert_int_equal(weft_rt_new(&rt, &o), 0);
    return rt;
}

/* ---- basics --------------------------------------------------------------------- */

static void test_jobs_run_and_return_outputs(void **state)
{
    (void)state;
    weft_join j[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_spawn_blocking(g_rt, twice, &i, sizeof i, sizeof(int), &j[i]), 0);
    for (int i = 0; i < 8; i++) {
        int out = -1;
        assert_int_equal(join_blocking(g_rt, &j[i], &out, sizeof out), 0);
        assert_int_equal(out, 2 * i);
    }
    weft_blocking_stats s = bstats(g_rt);
    assert_int_equal(s.jobs_run, 8);
    assert_true(s.threads_started >= 1 && s.threads_started <= 8);
    assert_int_equal(s.jobs_cancelled, 0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    int x = 1;
    weft_join j;
    assert_int_equal(weft_spawn_blocking(g_rt, NULL, &x, sizeof x, 0, &j), -EINVAL);
    assert_misuse_since(0, 1, "fn is NULL");
    assert_int_equal(weft_spawn_blocking(g_rt, twice, NULL, 4, 0, &j), -EINVAL);
    static char big[WEFT_SPAWN_BLOCKING_ARG_MAX + 1];
    assert_int_equal(weft_spawn_blocking(g_rt, twice, big, sizeof big, 0, &j), -EINVAL);
    assert_int_equal(weft_spawn_blocking(g_rt, twice, &x, sizeof x,
                                         WEFT_SPAWN_BLOCKING_OUT_MAX + 1, &j), -EINVAL);
    /* No runtime: not a worker, NULL rt. */
    assert_int_equal(weft_spawn_blocking(NULL, twice, &x, sizeof x, sizeof x, &j), -EINVAL);
    assert_int_equal(weft_blocking_stats_get(NULL, &(weft_blocking_stats){ 0 }), -EINVAL);
    assert_int_equal(weft_blocking_stats_get(g_rt, NULL), -EINVAL);
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.blocking_threads_max = WEFT_BLOCKING_THREADS_MAX + 1;
    weft_rt *rt = NULL;
    assert_int_equal(weft_rt_new(&rt, &o), -EINVAL);
    assert_null(rt);
    /* Nothing ran, the pool still serves. */
    assert_int_equal(bstats(g_rt).jobs_run, 0);
    assert_int_equal(weft_spawn_blocking(g_rt, twice, &x, sizeof x, sizeof x, &j), 0);
    int out = 0;
    assert_int_equal(join_blocking(g_rt, &j, &out, sizeof out), 0);
    assert_int_equal(out, 2);
}

/* ---- the bound and the queue ------------------------------------------------------- */

static void test_bound_respected_and_jobs_queue(void **state)
{
    (void)state;
    gate_reset();
    weft_rt *rt = rt_blocking(3, 0);
    weft_join j[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_spawn_blocking(rt, gated_job, &i, sizeof i, sizeof(int), &j[i]),
                         0);
    /* Three run (and stay at the gate), five wait. */
    WAIT_UNTIL(bstats(rt).running == 3 && bstats(rt).queued == 5 &&
               atomic_load(&g_now_running) == 3);
    weft_blocking_stats s = bstats(rt);
    assert_int_equal(s.threads, 3);
    assert_int_equal(atomic_load(&g_now_running), 3);
    thread_gate_open();
    for (int i = 0; i < 8; i++) {
        int out = 0;
        assert_int_equal(join_blocking(rt, &j[i], &out, sizeof out), 0);
        assert_int_equal(out, i + 100);
    }
    s = bstats(rt);
    assert_int_equal(atomic_load(&g_max_running), 3); /* reached, never passed */
    assert_int_equal(s.max_running, 3);
    assert_int_equal(s.threads_started, 3);
    assert_int_equal(s.jobs_run, 8);
    weft_rt_shutdown(rt);
}

static void test_queue_is_fifo(void **state)
{
    (void)state;
    gate_reset();
    weft_rt *rt = rt_blocking(1, 0);
    weft_join j[6];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(weft_spawn_blocking(rt, gated_job, &i, sizeof i, sizeof(int), &j[i]),
                         0);
        /* Each job queued before the next is spawned: the order is known. */
        if (i == 0)
            WAIT_UNTIL(bstats(rt).running == 1);
        else
            WAIT_UNTIL(bstats(rt).queued == (unsigned)i);
    }
    thread_gate_open();
    for (int i = 0; i < 6; i++) {
        int out = 0;
        assert_int_equal(join_blocking(rt, &j[i], &out, sizeof out), 0);
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal(atomic_load(&g_order[i]), i);
    assert_int_equal(bstats(rt).threads_started, 1);
    weft_rt_shutdown(rt);
}

static void test_idle_threads_exit(void **state)
{
    (void)state;
    gate_reset();
    weft_rt *rt = rt_blocking(4, WEFT_MS(1));
    weft_join j[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_spawn_blocking(rt, gated_job, &i, sizeof i, sizeof(int), &j[i]),
                         0);
    WAIT_UNTIL(bstats(rt).running == 3);
    assert_int_equal(bstats(rt).threads, 3);
    thread_gate_open();
    for (int i = 0; i < 3; i++) {
        int out = 0;
        assert_int_equal(join_blocking(rt, &j[i], &out, sizeof out), 0);
    }
    /* Idle for the timeout: every thread leaves. */
    WAIT_UNTIL(bstats(rt).threads == 0);
    weft_blocking_stats s = bstats(rt);
    assert_int_equal(s.threads_exited, 3);
    assert_int_equal(s.idle, 0);
    /* A later job starts a thread again. */
    int x = 21, out = 0;
    weft_join k;
    assert_int_equal(weft_spawn_blocking(rt, twice, &x, sizeof x, sizeof out, &k), 0);
    assert_int_equal(join_blocking(rt, &k, &out, sizeof out), 0);
    assert_int_equal(out, 42);
    assert_int_equal(bstats(rt).threads_started, 4);
    weft_rt_shutdown(rt);
}

/* ---- abort ------------------------------------------------------------------------ */

static _Atomic int g_ran;

static void mark_ran(void *arg, void *out)
{
    (void)arg;
    atomic_fetch_add(&g_ran, 1);
    *(int *)out = 7;
}

static void test_abort_before_start_never_runs(void **state)
{
    (void)state;
    gate_reset();
    atomic_store(&g_ran, 0);
    weft_rt *rt = rt_blocking(1, 0);
    int id = 0;
    weft_join a, b;
    assert_int_equal(weft_spawn_blocking(rt, gated_job, &id, sizeof id, sizeof(int), &a), 0);
    WAIT_UNTIL(bstats(rt).running == 1);
    assert_int_equal(weft_spawn_blocking(rt, mark_ran, &id, sizeof id, sizeof(int), &b), 0);
    WAIT_UNTIL(bstats(rt).queued == 1);
    weft_join_abort(&b);
    int out = -1;
    assert_int_equal(join_blocking(rt, &b, &out, sizeof out), -ECANCELED);
    assert_int_equal(out, 0);
    assert_int_equal(bstats(rt).queued, 0);
    assert_int_equal(bstats(rt).jobs_cancelled, 1);
    thread_gate_open();
    assert_int_equal(join_blocking(rt, &a, &out, sizeof out), 0);
    weft_rt_shutdown(rt);
    assert_int_equal(atomic_load(&g_ran), 0);
}

static void test_abort_after_start_runs_to_completion(void **state)
{
    (void)state;
    gate_reset();
    int id = 5;
    weft_join a;
    assert_int_equal(weft_spawn_blocking(g_rt, gated_job, &id, sizeof id, sizeof(int), &a), 0);
    WAIT_UNTIL(bstats(g_rt).running == 1);
    weft_join_abort(&a);
    int out = -1;
    /* The task is cancelled at once; the function still waits at the gate. */
    assert_int_equal(join_blocking(g_rt, &a, &out, sizeof out), -ECANCELED);
    assert_int_equal(atomic_load(&g_finished), 0);
    thread_gate_open();
    WAIT_UNTIL(atomic_load(&g_finished) == 1 && bstats(g_rt).running == 0);
    assert_int_equal(bstats(g_rt).jobs_cancelled, 0);
}

static void test_abort_before_first_poll_on_a_sim(void **state)
{
    (void)state;
    atomic_store(&g_ran, 0);
    weft_sim_options so = sim_options(3);
    weft_rt *rt = sim_start(&so);
    int x = 0;
    weft_join b;
    assert_int_equal(weft_spawn_blocking(rt, mark_ran, &x, sizeof x, sizeof(int), &b), 0);
    weft_join_abort(&b);
    int out = -1;
    assert_int_equal(join_blocking(rt, &b, &out, sizeof out), -ECANCELED);
    assert_int_equal(bstats(rt).jobs_run, 0);
    weft_rt_shutdown(rt);
    assert_int_equal(atomic_load(&g_ran), 0);
}

/* ---- shutdown --------------------------------------------------------------------- */

static _Atomic bool g_shutdown_returned;

static void *shutdown_thread(void *arg)
{
    weft_rt_shutdown(arg);
    atomic_store(&g_shutdown_returned, true);
    return NULL;
}

static void test_shutdown_waits_for_running_and_cancels_queued(void **state)
{
    (void)state;
    gate_reset();
    atomic_store(&g_ran, 0);
    atomic_store(&g_shutdown_returned, false);
    weft_rt *rt = rt_blocking(1, 0);
    int id = 1;
    weft_join a, b;
    assert_int_equal(weft_spawn_blocking(rt, gated_job, &id, sizeof id, sizeof(int), &a), 0);
    WAIT_UNTIL(bstats(rt).running == 1);
    assert_int_equal(weft_spawn_blocking(rt, mark_ran, &id, sizeof id, sizeof(int), &b), 0);
    WAIT_UNTIL(bstats(rt).queued == 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shutdown_thread, rt), 0);
    /* Both tasks are cancelled; the running job holds the shutdown. */
    WAIT_UNTIL(weft_join_is_finished(&a) && weft_join_is_finished(&b));
    assert_false(atomic_load(&g_shutdown_returned)); /* certain: the job waits at the gate */
    assert_int_equal(atomic_load(&g_finished), 0);
    thread_gate_open();
    pthread_join(t, NULL);
    assert_true(atomic_load(&g_shutdown_returned));
    assert_int_equal(atomic_load(&g_finished), 1); /* ran to the end */
    assert_int_equal(atomic_load(&g_ran), 0);      /* the queued one never ran */
    int out = -1;
    weft_waker nw = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &nw);
    assert_int_equal(weft_future_poll(&a.base, &cx, &out), WEFT_READY);
    assert_int_equal(a.status, -ECANCELED);
    weft_future_drop(&a.base);
    weft_future_drop(&b.base);
}

/* A job spawned after the pool closed yields -ECANCELED (from inside a task
 * being shut down nothing can poll; a spawn is refused outright). */
static void test_spawn_after_shutdown_is_refused(void **state)
{
    (void)state;
    weft_rt *rt = rt_blocking(1, 0);
    int x = 1;
    weft_join j;
    assert_int_equal(weft_spawn_blocking(rt, twice, &x, sizeof x, sizeof x, &j), 0);
    int out = 0;
    assert_int_equal(join_blocking(rt, &j, &out, sizeof out), 0);
    /* Held by the join's task so the runtime's memory stays. */
    assert_int_equal(weft_spawn_blocking(rt, twice, &x, sizeof x, sizeof x, &j), 0);
    weft_rt_shutdown(rt);
    weft_join k;
    assert_int_equal(weft_spawn_blocking(rt, twice, &x, sizeof x, sizeof x, &k), -ECANCELED);
    weft_future_drop(&j.base);
}

/* ---- failures --------------------------------------------------------------------- */

/* An allocator that fails the n-th allocation from when it is armed. */
static _Atomic long g_fail_at; /* 0: off */

static void *failing_alloc(size_t size, void *ctx)
{
    if (atomic_load(&g_fail_at) > 0 && atomic_fetch_sub(&g_fail_at, 1) == 1)
        return NULL;
    return count_alloc(size, ctx);
}

static void test_enomem_leaves_nothing_and_the_runtime_serves(void **state)
{
    (void)state;
    /* counting_alloc_install reset the counts (fixture); swap in ours. */
    assert_int_equal(weft_set_allocator(NULL), 0);
    weft_allocator al = { failing_alloc, count_free, NULL };
    assert_int_equal(weft_set_allocator(&al), 0);
    bool spawn_failed = false, join_cancelled = false, succeeded = false;
    for (long n = 1; n < 40 && !succeeded; n++) {
        weft_sim_options so = sim_options(1);
        weft_rt *rt = sim_start(&so);
        int x = 4, out = -1;
        weft_join j;
        atomic_store(&g_fail_at, n);
        int rc = weft_spawn_blocking(rt, twice, &x, sizeof x, sizeof out, &j);
        if (rc == -ENOMEM) {
            spawn_failed = true;
        } else {
            assert_int_equal(rc, 0);
            rc = weft_block_on(rt, &j.base, &out, sizeof out);
            if (rc == -ENOMEM) {
                weft_future_drop(&j.base);
            } else {
                assert_int_equal(rc, 0);
                if (j.status == -ECANCELED)
                    join_cancelled = true;
                else if (j.status == 0 && out == 8)
                    succeeded = true;
                else
                    fail_msg("n=%ld: status %d out %d", n, j.status, out);
            }
        }
        atomic_store(&g_fail_at, 0);
        /* The runtime still serves. */
        weft_join k;
        assert_int_equal(weft_spawn_blocking(rt, twice, &x, sizeof x, sizeof out, &k), 0);
        assert_int_equal(join_blocking(rt, &k, &out, sizeof out), 0);
        assert_int_equal(out, 8);
        weft_rt_shutdown(rt);
    }
    assert_true(spawn_failed);   /* the job's allocation */
    assert_true(join_cancelled); /* the pool's or a thread record's */
    assert_true(succeeded);
    /* The fixture's teardown checks every byte came back. */
}

static void test_thread_start_failure_cancels_the_job(void **state)
{
    (void)state;
    atomic_store(&g_ran, 0);
    weft_sim_options so = sim_options(2);
    weft_rt *rt = sim_start(&so);
    int x = 0, out = -1;
    weft_join j;
    weft__sys_fail_thread_start_at(1);
    assert_int_equal(weft_spawn_blocking(rt, mark_ran, &x, sizeof x, sizeof out, &j), 0);
    assert_int_equal(join_blocking(rt, &j, &out, sizeof out), -ECANCELED);
    weft__sys_fail_thread_start_at(0);
    assert_misuse_since(0, 1, "could be started");
    assert_int_equal(atomic_load(&g_ran), 0);
    /* The next job gets its thread. */
    assert_int_equal(weft_spawn_blocking(rt, mark_ran, &x, sizeof x, sizeof out, &j), 0);
    assert_int_equal(join_blocking(rt, &j, &out, sizeof out), 0);
    assert_int_equal(out, 7);
    weft_rt_shutdown(rt);
}

/* ---- the sim: the clock stands still ----------------------------------------------- */

static _Atomic bool g_slept;

typedef struct sleeper {
    weft_future base;
    weft_co co;
    weft_sleep sleep;
} sleeper;

WEFT_ASYNC_FN_VOID(sleeper)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->sleep, WEFT_SEC(1));
    WEFT_FN_AWAIT(&self->sleep, NULL);
    atomic_store(&g_slept, true);
    WEFT_FN_END;
}

/* Blocks for a while of real time, watching whether the sleeper fired
 * meanwhile (it must not: the clock stands still while this runs). */
static void watch_sleeper(void *arg, void *out)
{
    (void)arg;
    bool fired = false;
    for (int i = 0; i < 50 && !fired; i++) {
        struct timespec ts = { 0, 2000000 };
        nanosleep(&ts, NULL);
        fired = atomic_load(&g_slept);
    }
    *(bool *)out = fired;
}

static void test_sim_clock_stands_still_while_a_job_runs(void **state)
{
    (void)state;
    atomic_store(&g_slept, false);
    weft_sim_options so = sim_options(5);
    weft_rt *rt = sim_start(&so);
    assert_int_equal(WEFT_SPAWN(rt, NULL, &(sleeper){ WEFT_FN_INIT(sleeper, WEFT_F_SEND) }), 0);
    char none = 0;
    bool fired = true;
    weft_join j;
    assert_int_equal(weft_spawn_blocking(rt, watch_sleeper, &none, 1, sizeof fired, &j), 0);
    assert_int_equal(join_blocking(rt, &j, &fired, sizeof fired), 0);
    /* The job finished before the clock moved; the sleeper then fires. */
    assert_false(fired);
    assert_int_equal(sim_elapsed(rt), 0);
    assert_false(atomic_load(&g_slept));
    assert_true(sim_stats(rt).outside_waits >= 1);
    assert_int_equal(weft_sim_run(rt), 0);
    assert_true(atomic_load(&g_slept));
    assert_int_equal(sim_elapsed(rt), WEFT_SEC(1));
    weft_rt_shutdown(rt);
}

/* ---- the cancel sweep of a blocking job's join ----------------------------------------- */

typedef struct join_case {
    weft_join j;
    int out;
} join_case;

static _Atomic int g_sweep_ran;

static void count_twice(void *arg, void *out)
{
    atomic_fetch_add(&g_sweep_ran, 1);
    twice(arg, out);
}

static int join_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    join_case *jc = ctx;
    atomic_store(&g_sweep_ran, 0);
    jc->out = 0;
    int x = 9;
    int rc = weft_spawn_blocking(rt, count_twice, &x, sizeof x, sizeof jc->out, &jc->j);
    if (rc)
        return rc;
    *fut = &jc->j.base;
    *out = &jc->out;
    return 0;
}

static const char *join_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    join_case *jc = ctx;
    if (run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) held after the drop", run->k,
                         run->wakers_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    /* Dropping the join detaches: the job runs once either way. */
    if (atomic_load(&g_sweep_ran) != 1)
        return sweep_say("k=%u: the job ran %d times", run->k, atomic_load(&g_sweep_ran));
    if (run->completed && jc->out != 18)
        return sweep_say("completed with %d", jc->out);
    weft_blocking_stats s;
    if (weft_blocking_stats_get(rt, &s) != 0 || s.running != 0 || s.queued != 0)
        return "a job is left in the pool";
    return NULL;
}

static void test_cancel_sweep_blocking_join(void **state)
{
    (void)state;
    static join_case jc;
    weft_sweep_case c = { join_build, join_check, NULL, &jc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2); /* it waited for the thread */
    /* More seeds, chaos off: a job's completion is a real thread's, so a
     * spurious wake may find it done or not (the poll count would depend
     * on the OS, which the sweep calls divergence). */
    o = sweep_options(2, 4);
    sweep_pass(&c, &o);
}

int main(void)
{
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_jobs_run_and_return_outputs),
        RT(test_bad_arguments),
        T(test_bound_respected_and_jobs_queue),
        T(test_queue_is_fifo),
        T(test_idle_threads_exit),
        T(test_abort_before_start_never_runs),
        RT(test_abort_after_start_runs_to_completion),
        T(test_abort_before_first_poll_on_a_sim),
        T(test_shutdown_waits_for_running_and_cancels_queued),
        T(test_spawn_after_shutdown_is_refused),
        T(test_enomem_leaves_nothing_and_the_runtime_serves),
        T(test_thread_start_failure_cancels_the_job),
        T(test_sim_clock_stands_still_while_a_job_runs),
        T(test_cancel_sweep_blocking_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
