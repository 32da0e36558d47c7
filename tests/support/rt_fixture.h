/* Test support: a runtime for each test. rt_setup and rt_teardown, as
 * cmocka fixtures, give every test a fresh two-worker runtime in g_rt, on
 * the counting allocator (support/counting_alloc.h) and with misuse reports
 * captured (support/misuse_capture.h); teardown shuts the runtime down and
 * fails the test when an allocation was not freed (a reference leaked) or
 * was freed twice. A fixture that keeps its runtime elsewhere calls
 * rt_fixture_up and rt_fixture_down; rt_start makes further runtimes, and
 * join_blocking, spawn_blocking and RUN_FN_BLOCKING wait for tasks from
 * the test thread.
 * Each test program includes it once. */
#ifndef WEFT_TESTS_RT_FIXTURE_H
#define WEFT_TESTS_RT_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/counting_alloc.h"
#include "support/misuse_capture.h"

/* The runtime of the running test (rt_setup). */
static weft_rt *g_rt;

/* A runtime with `workers` workers and default options; fails the test
 * when it cannot start. Pair with weft_rt_shutdown. */
static inline weft_rt *rt_start(unsigned workers)
{
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = workers;
    weft_rt *rt = NULL;
    assert_int_equal(weft_rt_new(&rt, &o), 0);
    assert_non_null(rt);
    return rt;
}

/* Waits for the join handle `j` from the test thread (weft_block_on, which
 * drops the handle) and returns its status; the output lands in `out`. */
static inline int join_blocking(weft_rt *rt, weft_join *j, void *out, size_t out_size)
{
    assert_int_equal(weft_block_on(rt, &j->base, out, out_size), 0);
    return j->status;
}

/* Spawns the future `f` (`size` bytes, copied into the task) on `rt` and
 * joins it as join_blocking does. */
static inline int spawn_blocking(weft_rt *rt, weft_future *f, size_t size, void *out,
                                 size_t out_size)
{
    weft_join j;
    assert_int_equal(weft_spawn(rt, f, size, &j), 0);
    return join_blocking(rt, &j, out, out_size);
}

/* Runs the plain function `fn` (a weft_task_fn, no argument) as a leaf
 * task on `rt` and joins it as join_blocking does. */
#define RUN_FN_BLOCKING(rt, fn, out, out_size) run_fn_blocking((rt), (fn), #fn, (out), (out_size))

static inline int run_fn_blocking(weft_rt *rt, weft_task_fn *fn, const char *name, void *out,
                                  size_t out_size)
{
    weft_join j;
    const char none = 0;
    assert_int_equal(weft__spawn_fn(rt, fn, name, &none, sizeof none, out_size, &j), 0);
    return join_blocking(rt, &j, out, out_size);
}

/* Installs the counting allocator and the misuse capture, then starts a
 * two-worker runtime in `*rt` whose threads are named after
 * `thread_name_prefix` (NULL: the default). Returns 0, or -1 (a cmocka
 * setup failure). */
static inline int rt_fixture_up(weft_rt **rt, const char *thread_name_prefix)
{
    misuse_reset();
    weft_set_misuse_handler(record_misuse, NULL);
    if (counting_alloc_install() != 0)
        return -1;
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 2;
    o.thread_name_prefix = thread_name_prefix;
    return weft_rt_new(rt, &o) == 0 ? 0 : -1;
}

/* Shuts `*rt` down (NULL when the test did so itself) and checks that
 * every allocation came back exactly once; restores the default allocator
 * and misuse handler. Returns 0, or -1 (a cmocka teardown failure). */
static inline int rt_fixture_down(weft_rt **rt)
{
    weft_rt_shutdown(*rt);
    *rt = NULL;
    int rc = counting_alloc_uninstall("after shutdown (a reference was leaked)");
    weft_set_misuse_handler(NULL, NULL);
    return rc;
}

static inline int rt_setup(void **state)
{
    (void)state;
    return rt_fixture_up(&g_rt, NULL);
}

static inline int rt_teardown(void **state)
{
    (void)state;
    return rt_fixture_down(&g_rt);
}

#endif
