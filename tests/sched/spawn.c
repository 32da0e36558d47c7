/* Unit tests for sched/spawn.c: the consuming spawn (weft_spawn_or_drop,
 * WEFT_SPAWN) and leaf tasks from plain functions (weft_spawn_fn). Each
 * runs on a two-worker runtime and again on a sim runtime, where waiting
 * for detached tasks is a run of the sim rather than a spin. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>

#include "weft/weft.h"
#include "core/future.h"
#include "sched/task.h"
#include "support/rt_fixture.h"
#include "support/sim_fixture.h"

/* ---- weft_spawn_fn ------------------------------------------------------------- */

struct sum_arg {
    int a, b;
    int worker; /* written by the task: where it ran */
};

static void add(void *arg, void *out)
{
    struct sum_arg *s = arg;
    s->worker = weft_worker_index();
    *(int *)out = s->a + s->b;
}

static void test_spawn_fn_runs_function_with_its_own_copy_of_arg(void **state)
{
    (void)state;
    struct sum_arg arg = { 20, 22, -7 };
    weft_join j;
    assert_int_equal(weft_spawn_fn(g_rt, add, &arg, sizeof(int), &j), 0);
    arg.a = 1000; /* the task has its own copy */
    arg.b = 1000;
    int sum = 0;
    assert_int_equal(join_blocking(g_rt, &j, &sum, sizeof sum), 0);
    assert_int_equal(sum, 42);
    assert_int_equal(arg.worker, -7); /* the caller's copy was never written */
}

static void test_spawn_fn_output_size_is_what_the_join_yields(void **state)
{
    (void)state;
    struct sum_arg arg = { 1, 2, 0 };
    weft_join j;
    assert_int_equal(weft_spawn_fn(g_rt, add, &arg, sizeof(int), &j), 0);
    assert_int_equal(weft_future_out_size(&j.base), sizeof(int));
    int sum = 0;
    assert_int_equal(join_blocking(g_rt, &j, &sum, sizeof sum), 0);
    assert_int_equal(sum, 3);
}

struct big_arg {
    unsigned char bytes[3000]; /* larger than the on-stack staging buffer */
};

static void checksum(void *arg, void *out)
{
    const struct big_arg *b = arg;
    uint64_t s = 0;
    for (size_t i = 0; i < sizeof b->bytes; i++)
        s = s * 31u + b->bytes[i];
    *(uint64_t *)out = s;
}

static void test_spawn_fn_copies_a_large_argument_whole(void **state)
{
    (void)state;
    static struct big_arg arg;
    uint64_t want = 0;
    for (size_t i = 0; i < sizeof arg.bytes; i++) {
        arg.bytes[i] = (unsigned char)(i * 7u + 3u);
        want = want * 31u + arg.bytes[i];
    }
    weft_join j;
    assert_int_equal(weft_spawn_fn(g_rt, checksum, &arg, sizeof(uint64_t), &j), 0);
    memset(&arg, 0, sizeof arg);
    uint64_t got = 0;
    assert_int_equal(join_blocking(g_rt, &j, &got, sizeof got), 0);
    assert_true(got == want);
}

static atomic_int g_ticks;

static void tick(void *arg, void *out)
{
    (void)out;
    atomic_fetch_add(&g_ticks, *(int *)arg);
}

static void test_spawn_fn_without_output_or_join_runs_detached(void **state)
{
    (void)state;
    atomic_store(&g_ticks, 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(weft_spawn_fn(g_rt, tick, &(int){ 2 }, 0, NULL), 0);
    RT_WAIT_UNTIL(g_rt, atomic_load(&g_ticks) >= 200);
    assert_int_equal(atomic_load(&g_ticks), 200);
}

static void test_spawn_fn_rejects_bad_arguments(void **state)
{
    (void)state;
    static struct { unsigned char b[WEFT_SPAWN_FN_ARG_MAX + 1]; } huge;
    weft_join j;
    assert_int_equal(weft_spawn_fn(g_rt, tick, &huge, 0, &j), -EINVAL);
    assert_int_equal(weft__spawn_fn(g_rt, NULL, "none", NULL, 0, 0, &j), -EINVAL);
    assert_int_equal(weft__spawn_fn(g_rt, tick, "tick", NULL, 4, 0, &j), -EINVAL);
}

static void test_spawn_fn_task_is_named_after_the_function(void **state)
{
    (void)state;
    /* On a sim runtime, which polls nothing until it is driven: the name
     * is read while no worker can be polling the future (a poll writes the
     * future's flags, which the name lookup reads). */
    weft_rt *sim;
    assert_int_equal(weft_rt_new_sim(&sim, NULL), 0);
    weft_join j;
    struct sum_arg arg = { 1, 1, 0 };
    assert_int_equal(weft_spawn_fn(sim, add, &arg, sizeof(int), &j), 0);
    /* The task's future reports the function's name (#fn), not the
     * library type's; the handle keeps the task's memory alive. */
    assert_string_equal(weft__future_name(weft__task_future(j.task)), "add");
    assert_string_equal(weft__task_future(j.task)->ops->name, "weft_spawn_fn");
    int sum = 0;
    assert_int_equal(join_blocking(sim, &j, &sum, sizeof sum), 0);
    assert_int_equal(sum, 2);
    weft_rt_shutdown(sim);
}

/* ---- the consuming spawn ---------------------------------------------------------- */

typedef struct counted {
    weft_future base;
    int value;
    atomic_int *drops;
} counted;

static weft_poll counted_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx;
    *(int *)out = ((counted *)f)->value;
    return WEFT_READY;
}

static void counted_drop(weft_future *f)
{
    atomic_fetch_add(((counted *)f)->drops, 1);
}

static const weft_future_ops counted_ops = {
    .name = "counted", .out_size = sizeof(int), .poll = counted_poll, .drop = counted_drop,
};

static void test_spawn_macro_takes_a_compound_literal_and_its_size(void **state)
{
    (void)state;
    atomic_int drops = 0;
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(counted){ WEFT_FUTURE_INIT(&counted_ops, WEFT_F_SEND),
                                                       .value = 9, .drops = &drops }),
                     0);
    int v = 0;
    assert_int_equal(join_blocking(g_rt, &j, &v, sizeof v), 0);
    assert_int_equal(v, 9);
    assert_int_equal(atomic_load(&drops), 1); /* dropped once, by the task */
}

static void test_spawn_or_drop_drops_the_future_when_spawn_fails(void **state)
{
    (void)state;
    atomic_int drops = 0;
    weft_join j;
    /* Not Send: refused, and dropped here rather than left to the caller. */
    int rc = WEFT_SPAWN(g_rt, &j, &(counted){ WEFT_FUTURE_INIT(&counted_ops, 0), .drops = &drops });
    assert_int_equal(rc, -EPERM);
    assert_int_equal(atomic_load(&drops), 1);
    /* A plain weft_spawn leaves the future with the caller. */
    counted c = { WEFT_FUTURE_INIT(&counted_ops, 0), 0, &drops };
    assert_int_equal(weft_spawn(g_rt, &c.base, sizeof c, &j), -EPERM);
    assert_int_equal(atomic_load(&drops), 1);
    weft_future_drop(&c.base);
    assert_int_equal(atomic_load(&drops), 2);
}

static void test_spawn_or_drop_leaves_a_malformed_future_alone(void **state)
{
    (void)state;
    weft_future bare = WEFT_FUTURE_INIT(NULL, WEFT_F_SEND);
    assert_int_equal(weft_spawn_or_drop(g_rt, &bare, sizeof bare, NULL), -EINVAL);
    assert_int_equal(weft_spawn_or_drop(g_rt, NULL, sizeof bare, NULL), -EINVAL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, rt_setup, rt_teardown)
/* The same test on a sim runtime. */
#define S(name) { #name "_on_a_sim", name, sim_setup_g_rt, rt_teardown, NULL }

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_spawn_fn_runs_function_with_its_own_copy_of_arg),
        T(test_spawn_fn_output_size_is_what_the_join_yields),
        T(test_spawn_fn_copies_a_large_argument_whole),
        T(test_spawn_fn_without_output_or_join_runs_detached),
        T(test_spawn_fn_rejects_bad_arguments),
        T(test_spawn_fn_task_is_named_after_the_function),
        T(test_spawn_macro_takes_a_compound_literal_and_its_size),
        T(test_spawn_or_drop_drops_the_future_when_spawn_fails),
        T(test_spawn_or_drop_leaves_a_malformed_future_alone),
        S(test_spawn_fn_runs_function_with_its_own_copy_of_arg),
        S(test_spawn_fn_output_size_is_what_the_join_yields),
        S(test_spawn_fn_copies_a_large_argument_whole),
        S(test_spawn_fn_without_output_or_join_runs_detached),
        S(test_spawn_macro_takes_a_compound_literal_and_its_size),
        S(test_spawn_or_drop_drops_the_future_when_spawn_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
