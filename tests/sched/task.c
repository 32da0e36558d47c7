/* Unit tests for sched/task.c: the task state machine, task wakers and join
 * handles, on a real runtime with two workers driven from the test thread.
 *
 * Each test gets a fresh runtime and a counting allocator; teardown shuts
 * the runtime down and checks that every allocation came back, so a
 * reference-count leak fails every build (ASan/LSan additionally catch
 * double frees and use-after-free).
 *
 * The tests that need no second thread — the task is idle or finished
 * when the handle acts, wakers, shutdown, many tasks — run again on a sim
 * runtime (weft/testing.h), in a seeded order on the test thread, where a
 * wait for a worker becomes a run of the sim (RT_WAIT_UNTIL).
 *
 * Rules: no sleeps and no timing assertions. The test thread waits on join
 * handles (weft_block_on) or spins, yielding the CPU, on a flag a task sets.
 * A spin has a watchdog that fails the test with what it was waiting for;
 * its bound is far beyond any legitimate delay, so it only turns a lost
 * wakeup into a readable failure instead of a hang. cmocka assertions run on
 * the test thread only: code on workers and helper threads records what it
 * saw in atomics that the test thread checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "sched/task.h"
#include "support/co_future.h"
#include "support/countdown.h"
#include "support/counting_waker.h"
#include "support/downcast.h"
#include "support/poll.h"
#include "support/rng.h"
#include "support/rt_fixture.h"
#include "support/sim_fixture.h"
#include "support/spawn_join.h"
#include "support/wait.h"

/* ---- the probe future ------------------------------------------------------------ */

enum probe_mode {
    M_READY,        /* READY at once */
    M_GATE,         /* first poll spins until `release`, then READY */
    M_GATE_PENDING, /* first poll spins until `release`, then PENDING (no wake) */
    M_IDLE,         /* stashes its waker and stays PENDING until `release` */
    M_STASH_READY,  /* stashes its waker and is READY at once */
};

/* What a task's future did, written by whichever worker polls or drops it
 * and read by the test thread. Lives in the per-test context (heap), so a
 * failed test that leaves a task behind does not leave it pointing at a
 * dead stack frame. */
typedef struct probe {
    enum probe_mode mode; /* set before spawn */
    _Atomic int polls;
    _Atomic int drops;
    _Atomic int started;   /* first poll began (stash is valid) */
    _Atomic int release;   /* set by the test */
    _Atomic int completed; /* a poll returned READY */
    _Atomic int in_poll;
    _Atomic int overlap;        /* two polls, or a poll and the drop, overlapped */
    _Atomic int drop_on_worker; /* the drop ran on a worker thread */
    /* A clone of the task's waker, written by the first poll before
     * `started` is released; owned by the test from then on. */
    weft_waker stash;
} probe;

typedef struct probe_fut {
    weft_future base;
    probe *p;
    int value;
} probe_fut;

static void probe_reset(probe *p, enum probe_mode mode)
{
    p->mode = mode;
    weft_atomic_init(&p->polls, 0);
    weft_atomic_init(&p->drops, 0);
    weft_atomic_init(&p->started, 0);
    weft_atomic_init(&p->release, 0);
    weft_atomic_init(&p->completed, 0);
    weft_atomic_init(&p->in_poll, 0);
    weft_atomic_init(&p->overlap, 0);
    weft_atomic_init(&p->drop_on_worker, 0);
    p->stash.ops = NULL;
    p->stash.data = NULL;
}

static void spin_released(probe *p)
{
    /* Acquire: pairs with the test's release store. */
    while (!weft_atomic_load_acquire(&p->release))
        sched_yield();
}

static weft_poll probe_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(probe_fut, pf);
    probe *p = pf->p;
    if (weft_atomic_swap_acq_rel(&p->in_poll, 1))
        weft_atomic_store_relaxed(&p->overlap, 1);
    int n = weft_atomic_fetch_add_acq_rel(&p->polls, 1) + 1;
    weft_poll r = WEFT_READY;
    switch (p->mode) {
    case M_READY:
        break;
    case M_GATE:
    case M_GATE_PENDING:
        /* Release: the test sees this poll under way. */
        weft_atomic_store_release(&p->started, 1);
        spin_released(p);
        if (p->mode == M_GATE_PENDING)
            r = WEFT_PENDING;
        break;
    case M_IDLE:
        if (n == 1) {
            p->stash = weft_waker_clone(cx->waker);
            /* Release: publishes the stash to the test thread. */
            weft_atomic_store_release(&p->started, 1);
        }
        r = weft_atomic_load_acquire(&p->release) ? WEFT_READY : WEFT_PENDING;
        break;
    case M_STASH_READY:
        p->stash = weft_waker_clone(cx->waker);
        weft_atomic_store_release(&p->started, 1);
        break;
    }
    if (r == WEFT_READY) {
        *(int *)out = pf->value;
        weft_atomic_store_release(&p->completed, 1);
    }
    /* Release: the next poll or the drop, on whichever worker, sees this
     * poll finished. */
    weft_atomic_store_release(&p->in_poll, 0);
    return r;
}

static void probe_drop(weft_future *f)
{
    probe *p = ((probe_fut *)f)->p;
    if (weft_atomic_load_acquire(&p->in_poll))
        weft_atomic_store_relaxed(&p->overlap, 1);
    /* On a sim, the thread running it is its one worker. */
    if (weft_worker_index() >= 0 || rt_is_sim(weft_rt_current()))
        weft_atomic_store_relaxed(&p->drop_on_worker, 1);
    /* Release: the test reads the other fields after seeing the drop. */
    weft_atomic_fetch_add_acq_rel(&p->drops, 1);
}

static const weft_future_ops probe_ops = {
    "test_probe", sizeof(int), probe_poll, probe_drop, NULL,
};

/* ---- per-test context ------------------------------------------------------------ */

#define NPROBES 4

typedef struct ctx {
    weft_rt *rt;
    probe p[NPROBES];
    probe gate[2];
    weft_join gate_join[2];
    weft_join join[NPROBES];
} ctx;

static void release_probe(void *arg);
static void release_gates(void *arg);

/* The support fixture (support/rt_fixture.h) with the runtime in the
 * context, next to the probes. */
static int setup(void **state)
{
    ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    for (int i = 0; i < NPROBES; i++)
        probe_reset(&c->p[i], M_READY);
    if (rt_fixture_up(&c->rt, "task-test") != 0) {
        rt_fixture_down(&c->rt);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

/* The same with a sim runtime (seed 1). */
static int setup_sim(void **state)
{
    ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    for (int i = 0; i < NPROBES; i++)
        probe_reset(&c->p[i], M_READY);
    if (sim_fixture_up(&c->rt, 1) != 0) {
        rt_fixture_down(&c->rt);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx *c = *state;
    /* A failed test may have left tasks spinning in gate polls: let them go
     * so shutdown can join the workers. */
    for (int i = 0; i < NPROBES; i++)
        release_probe(&c->p[i]);
    release_gates(c);
    int rc = rt_fixture_down(&c->rt);
    free(c);
    return rc;
}

/* ---- helpers ----------------------------------------------------------------------- */

static void spawn_probe(ctx *c, probe *p, enum probe_mode mode, int value,
                        weft_join *join)
{
    probe_reset(p, mode);
    probe_fut f;
    weft_future_init(&f.base, &probe_ops, WEFT_F_SEND);
    f.p = p;
    f.value = value;
    assert_int_equal(weft_spawn(c->rt, &f.base, sizeof f, join), 0);
}

/* Join from the test thread; returns the output, stores the status. */
static int join_int(ctx *c, weft_join *j, int *status)
{
    int out = -1;
    assert_int_equal(weft_block_on(c->rt, &j->base, &out, sizeof out), 0);
    *status = j->status;
    return out;
}

/* Keep both workers busy inside gate polls, so that tasks spawned now wait
 * in a queue, unpolled, until release_gates(). One at a time, so each gate
 * surely lands on its own worker. */
static void occupy_workers(ctx *c)
{
    for (int i = 0; i < 2; i++) {
        spawn_probe(c, &c->gate[i], M_GATE, 100 + i, &c->gate_join[i]);
        WAIT_UNTIL(weft_atomic_load_acquire(&c->gate[i].started));
    }
}

static void release_probe(void *arg)
{
    /* Release: pairs with the acquire in spin_released / probe_poll. */
    weft_atomic_store_release(&((probe *)arg)->release, 1);
}

static void release_gates(void *arg)
{
    ctx *c = arg;
    release_probe(&c->gate[0]);
    release_probe(&c->gate[1]);
}

static void join_gates(ctx *c)
{
    for (int i = 0; i < 2; i++) {
        int st;
        assert_int_equal(join_int(c, &c->gate_join[i], &st), 100 + i);
        assert_int_equal(st, 0);
    }
}

/* A task is idle when nobody runs it and it sits in no queue: only a wake
 * can bring it back. Read from the state word (internal header). */
static bool task_is_idle(const weft_join *j)
{
    uint64_t s = weft_atomic_load_acquire(&j->task->state);
    return (s & (WEFT_T_RUNNING | WEFT_T_NOTIFIED | WEFT_T_COMPLETE)) == 0;
}

static void release_and_wake(void *arg)
{
    probe *p = arg;
    release_probe(p);
    weft_waker_wake_by_ref(&p->stash);
}

/* A future for weft_block_on that polls a join handle and, right after the
 * handle's first PENDING (its waker is registered now), runs an action —
 * releasing the task it waits for. So the join is in place before the task
 * can complete, whatever state the task is in. Outputs the join's output;
 * owns (drops) the join. */
typedef struct join_then {
    weft_future base;
    weft_join *j;
    void (*action)(void *);
    void *arg;
    bool acted;
} join_then;

static weft_poll join_then_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(join_then, jt);
    weft_poll r = weft_future_poll(&jt->j->base, cx, out);
    if (r == WEFT_PENDING && !jt->acted) {
        jt->acted = true;
        jt->action(jt->arg);
    }
    return r;
}

static void join_then_drop(weft_future *f)
{
    weft_future_drop(&((join_then *)f)->j->base);
}

static size_t join_then_out_size(const weft_future *f)
{
    return weft_future_out_size(&((const join_then *)f)->j->base);
}

static const weft_future_ops join_then_ops = {
    "test_join_then", WEFT_OUT_SIZE_VARIES, join_then_poll, join_then_drop,
    join_then_out_size,
};

static int join_then_block(ctx *c, weft_join *j, void (*action)(void *), void *arg,
                           int *status)
{
    join_then jt;
    weft_future_init(&jt.base, &join_then_ops, WEFT_F_SEND);
    jt.j = j;
    jt.action = action;
    jt.arg = arg;
    jt.acted = false;
    int out = -1;
    assert_int_equal(weft_block_on(c->rt, &jt.base, &out, sizeof out), 0);
    assert_true(jt.acted); /* the join really waited */
    *status = j->status;
    return out;
}

static void assert_probe_clean(probe *p)
{
    assert_int_equal(weft_atomic_load_acquire(&p->drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&p->overlap), 0);
    assert_int_equal(weft_atomic_load_relaxed(&p->drop_on_worker), 1);
}

/* ---- join returns the output ------------------------------------------------------ */

typedef struct big_out {
    uint64_t w[6];
} big_out;

typedef struct big_fut {
    weft_future base;
    uint64_t seed;
} big_fut;

static weft_poll big_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(big_fut, b);
    big_out *o = out;
    (void)cx;
    for (int i = 0; i < 6; i++)
        o->w[i] = b->seed * (uint64_t)(i + 1) + 0x9e3779b97f4a7c15ull;
    return WEFT_READY;
}

static const weft_future_ops big_ops = { "test_big", sizeof(big_out), big_poll, NULL, NULL };

static weft_poll unit_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    return WEFT_READY;
}

static const weft_future_ops unit_ops = { "test_unit", 0, unit_poll, NULL, NULL };

static void test_join_returns_the_output(void **state)
{
    ctx *c = *state;
    int st = -1;
    spawn_probe(c, &c->p[0], M_READY, 42, &c->join[0]);
    assert_int_equal(join_int(c, &c->join[0], &st), 42);
    assert_int_equal(st, 0);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), 1);
    assert_probe_clean(&c->p[0]);

    /* A multi-word output is copied whole. */
    big_fut b;
    weft_future_init(&b.base, &big_ops, WEFT_F_SEND);
    b.seed = 12345;
    weft_join bj;
    assert_int_equal(weft_spawn(c->rt, &b.base, sizeof b, &bj), 0);
    big_out o;
    memset(&o, 0, sizeof o);
    assert_int_equal(weft_block_on(c->rt, &bj.base, &o, sizeof o), 0);
    assert_int_equal(bj.status, 0);
    for (int i = 0; i < 6; i++)
        assert_true(o.w[i] == 12345u * (uint64_t)(i + 1) + 0x9e3779b97f4a7c15ull);

    /* No output at all. */
    weft_future u;
    weft_future_init(&u, &unit_ops, WEFT_F_SEND);
    weft_join uj;
    assert_int_equal(weft_spawn(c->rt, &u, sizeof u, &uj), 0);
    assert_int_equal(weft_future_out_size(&uj.base), 0);
    assert_int_equal(weft_block_on(c->rt, &uj.base, NULL, 0), 0);
    assert_int_equal(uj.status, 0);
}

/* A task that spawns a child onto the current runtime and awaits its join
 * handle (support/spawn_join.h): the join waker is then a task waker, not
 * block_on's. */
static void test_task_joins_a_child_it_spawned(void **state)
{
    ctx *c = *state;
    for (int round = 0; round < 50; round++) {
        probe_reset(&c->p[1], M_READY);
        probe_fut child;
        weft_future_init(&child.base, &probe_ops, WEFT_F_SEND);
        child.p = &c->p[1];
        child.value = 21;
        spawn_join p;
        spawn_join_init(&p, &child.base, sizeof child, WEFT_F_SEND);
        assert_int_equal(weft_spawn(c->rt, &p.base, sizeof p, &c->join[0]), 0);
        int st;
        assert_int_equal(join_int(c, &c->join[0], &st), 42);
        assert_int_equal(st, 0);
        assert_probe_clean(&c->p[1]);
    }
}

/* ---- the four states of a task and the three things a handle can do ------------------------- */

/* Probe 0's task with handle join[0], in the state its tests start from:
 * not yet polled (both workers busy in gates: release_gates starts it),
 * running (inside its first poll, a gate in `mode`), idle (spawn_idle,
 * below) or finished. */
static void spawn_unpolled(ctx *c, int value)
{
    occupy_workers(c);
    spawn_probe(c, &c->p[0], M_READY, value, &c->join[0]);
}

static void spawn_running(ctx *c, enum probe_mode mode, int value)
{
    spawn_probe(c, &c->p[0], mode, value, &c->join[0]);
    WAIT_UNTIL(weft_atomic_load_acquire(&c->p[0].started));
}

static void spawn_finished(ctx *c, enum probe_mode mode, int value)
{
    spawn_probe(c, &c->p[0], mode, value, &c->join[0]);
    RT_WAIT_UNTIL(c->rt, weft_join_is_finished(&c->join[0]));
}

/* Joins probe 0's task from the test thread (join[0]) and checks what the
 * join yields. A cancelled task's output reads zero. */
static void expect_join(ctx *c, int out, int status)
{
    int st = 1;
    assert_int_equal(join_int(c, &c->join[0], &st), out);
    assert_int_equal(st, status);
}

/* The same, with `action(arg)` run once the join waits (join_then_block). */
static void expect_join_then(ctx *c, void (*action)(void *), void *arg, int out)
{
    int st = 1;
    assert_int_equal(join_then_block(c, &c->join[0], action, arg, &st), out);
    assert_int_equal(st, 0);
}

static void wait_dropped(ctx *c, probe *p)
{
    RT_WAIT_UNTIL(c->rt, weft_atomic_load_acquire(&p->drops) == 1);
}

/* A detached task runs to completion: its future completed, then was
 * dropped. */
static void wait_completed(ctx *c, probe *p)
{
    wait_dropped(c, p);
    assert_int_equal(weft_atomic_load_relaxed(&p->completed), 1);
}

enum handle_act { ABORT, DETACH };

/* Probe 0's task running in a gate: abort or detach its handle, then let
 * the poll finish. */
static void act_while_running(ctx *c, int value, enum handle_act act)
{
    spawn_running(c, M_GATE, value);
    if (act == ABORT)
        weft_join_abort(&c->join[0]);
    else
        weft_join_detach(&c->join[0]);
    release_probe(&c->p[0]);
}

/* The task completed with output `out`: the join says so, and its future
 * was dropped cleanly. */
static void expect_output(ctx *c, int out)
{
    expect_join(c, out, 0);
    assert_probe_clean(&c->p[0]);
}

/* The abort took effect: the future was dropped after `polls` polls, the
 * join says -ECANCELED with a zeroed output, and nothing overlapped. */
static void expect_cancelled(ctx *c, int polls)
{
    wait_dropped(c, &c->p[0]);
    expect_join(c, 0, -ECANCELED);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), polls);
    assert_probe_clean(&c->p[0]);
}

/* Abort (or detach) twice: the second call finds the handle done with. */
static void abort_twice(weft_join *j)
{
    weft_join_abort(j);
    weft_join_abort(j); /* idempotent */
}

/* ---- before the first poll ------------------------------------------------------------ */

static void test_join_before_first_poll(void **state)
{
    ctx *c = *state;
    spawn_unpolled(c, 5);
    assert_false(weft_join_is_finished(&c->join[0]));
    expect_join_then(c, release_gates, c, 5);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), 1);
    assert_probe_clean(&c->p[0]);
    join_gates(c);
}

static void test_abort_before_first_poll_never_polls(void **state)
{
    ctx *c = *state;
    spawn_unpolled(c, 5);
    abort_twice(&c->join[0]);
    release_gates(c);
    expect_cancelled(c, 0);
    join_gates(c);
}

static void test_detach_before_first_poll_still_runs(void **state)
{
    ctx *c = *state;
    spawn_unpolled(c, 5);
    weft_join_detach(&c->join[0]);
    assert_null(c->join[0].task);
    /* Spawned without a handle at all: detached from the start. */
    spawn_probe(c, &c->p[1], M_READY, 6, NULL);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), 0);
    release_gates(c);
    for (int i = 0; i < 2; i++) {
        wait_completed(c, &c->p[i]);
        assert_int_equal(weft_atomic_load_relaxed(&c->p[i].polls), 1);
        assert_probe_clean(&c->p[i]);
    }
    join_gates(c);
}

/* ---- while running ------------------------------------------------------------------------ */

static void test_join_while_running(void **state)
{
    ctx *c = *state;
    spawn_running(c, M_GATE, 9);
    expect_join_then(c, release_probe, &c->p[0], 9);
    assert_probe_clean(&c->p[0]);
}

static void test_abort_while_running_takes_effect_after_the_poll(void **state)
{
    ctx *c = *state;
    spawn_running(c, M_GATE_PENDING, 9);
    weft_join_abort(&c->join[0]);
    /* The poll is still inside the future: it must not be dropped under it
     * (probe_drop records an overlap if it is). */
    assert_int_equal(weft_atomic_load_acquire(&c->p[0].drops), 0);
    assert_false(weft_join_is_finished(&c->join[0]));
    release_probe(&c->p[0]);
    /* Dropped after that poll returned PENDING, without another poll. */
    expect_cancelled(c, 1);
}

static void test_abort_while_running_loses_to_a_poll_that_completes(void **state)
{
    ctx *c = *state;
    act_while_running(c, 13, ABORT);
    /* The poll in progress finished the task: the output stands. */
    expect_output(c, 13);
}

static void test_detach_while_running_still_completes(void **state)
{
    ctx *c = *state;
    act_while_running(c, 9, DETACH);
    wait_completed(c, &c->p[0]);
    assert_probe_clean(&c->p[0]);
}

/* ---- while idle ------------------------------------------------------------------------------ */

static void spawn_idle(ctx *c, probe *p, int value, weft_join *j)
{
    spawn_probe(c, p, M_IDLE, value, j);
    RT_WAIT_UNTIL(c->rt, weft_atomic_load_acquire(&p->started));
    if (j)
        RT_WAIT_UNTIL(c->rt, task_is_idle(j));
}

static void test_join_while_idle(void **state)
{
    ctx *c = *state;
    spawn_idle(c, &c->p[0], 11, &c->join[0]);
    expect_join_then(c, release_and_wake, &c->p[0], 11);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), 2);
    assert_probe_clean(&c->p[0]);
    weft_waker_drop(&c->p[0].stash);
}

static void test_abort_while_idle_drops_future_promptly_on_a_worker(void **state)
{
    ctx *c = *state;
    spawn_idle(c, &c->p[0], 11, &c->join[0]);
    weft_join_abort(&c->join[0]);
    /* Nothing but the abort can bring the task back to a worker. */
    wait_dropped(c, &c->p[0]);
    assert_probe_clean(&c->p[0]);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), 1);
    /* The drop comes first, then the completion is published. */
    RT_WAIT_UNTIL(c->rt, weft_join_is_finished(&c->join[0]));
    expect_join(c, 0, -ECANCELED);
    /* The stashed waker outlived the task's future: waking it does nothing. */
    weft_waker_wake_by_ref(&c->p[0].stash);
    weft_waker_wake(&c->p[0].stash);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), 1);
}

static void test_detach_while_idle_then_wake_completes(void **state)
{
    ctx *c = *state;
    spawn_idle(c, &c->p[0], 11, &c->join[0]);
    weft_join_detach(&c->join[0]);
    release_probe(&c->p[0]);
    /* By value: the stash's reference becomes the queue's; the task then
     * holds the last references itself and frees itself at completion. */
    weft_waker_wake(&c->p[0].stash);
    wait_completed(c, &c->p[0]);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), 2);
    assert_probe_clean(&c->p[0]);
}

/* ---- after completion ---------------------------------------------------------------------- */

static void test_join_after_completion(void **state)
{
    ctx *c = *state;
    spawn_finished(c, M_READY, 3);
    expect_output(c, 3);
}

static void test_abort_after_completion_has_no_effect(void **state)
{
    ctx *c = *state;
    spawn_finished(c, M_READY, 4);
    abort_twice(&c->join[0]);
    expect_output(c, 4);
}

static void test_detach_after_completion_frees_the_task(void **state)
{
    ctx *c = *state;
    spawn_finished(c, M_READY, 4);
    assert_probe_clean(&c->p[0]);
    /* The handle holds the last reference; teardown checks it was freed. */
    weft_join_detach(&c->join[0]);
    weft_join_detach(&c->join[0]); /* the handle is empty now */
    assert_false(weft_join_is_finished(&c->join[0]));
}

static void test_wake_after_completion_is_a_noop(void **state)
{
    ctx *c = *state;
    spawn_finished(c, M_STASH_READY, 8);
    for (int i = 0; i < 3; i++)
        weft_waker_wake_by_ref(&c->p[0].stash);
    weft_waker w = weft_waker_clone(&c->p[0].stash);
    weft_waker_wake(&w);
    expect_join(c, 8, 0);
    /* The stash now holds the task's last reference: wakes are still
     * no-ops, and waking by value frees the task. */
    weft_waker_wake_by_ref(&c->p[0].stash);
    weft_waker_wake(&c->p[0].stash);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].polls), 1);
    assert_probe_clean(&c->p[0]);
}

/* ---- join wakers ----------------------------------------------------------------------------- */

static void test_join_waker_is_replaced_and_released_when_the_handle_drops(void **state)
{
    ctx *c = *state;
    counting_waker a, b;
    cw_init(&a);
    cw_init(&b);
    weft_waker wa = cw_waker(&a), wb = cw_waker(&b);
    int out;
    spawn_idle(c, &c->p[0], 1, &c->join[0]);

    assert_int_equal(poll_with(&c->join[0].base, &wa, &out), WEFT_PENDING);
    assert_int_equal(poll_with(&c->join[0].base, &wa, &out), WEFT_PENDING);
    assert_int_equal(weft_atomic_load_acquire(&a.clones), 1); /* same waker: kept */
    assert_int_equal(poll_with(&c->join[0].base, &wb, &out), WEFT_PENDING);
    assert_int_equal(cw_outstanding(&a), 0); /* replaced: released */
    assert_int_equal(cw_outstanding(&b), 1);

    /* Dropping a pending handle gives its waker back and the task runs on. */
    weft_join_detach(&c->join[0]);
    assert_int_equal(cw_outstanding(&b), 0);
    assert_int_equal(cw_woken(&a) + cw_woken(&b), 0);
    release_and_wake(&c->p[0]);
    RT_WAIT_UNTIL(c->rt, weft_atomic_load_acquire(&c->p[0].drops) == 1);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].completed), 1);
    assert_int_equal(cw_woken(&b), 0);
    weft_waker_drop(&c->p[0].stash);
}

static void test_join_waker_is_woken_once_at_completion(void **state)
{
    ctx *c = *state;
    counting_waker a;
    cw_init(&a);
    weft_waker wa = cw_waker(&a);
    int out = 0;
    spawn_idle(c, &c->p[0], 17, &c->join[0]);
    assert_int_equal(poll_with(&c->join[0].base, &wa, &out), WEFT_PENDING);
    release_and_wake(&c->p[0]);
    RT_WAIT_UNTIL(c->rt, cw_woken(&a) == 1);
    assert_int_equal(poll_with(&c->join[0].base, &wa, &out), WEFT_READY);
    assert_int_equal(out, 17);
    assert_int_equal(c->join[0].status, 0);
    RT_WAIT_UNTIL(c->rt, weft_atomic_load_acquire(&c->p[0].drops) == 1);
    weft_future_drop(&c->join[0].base);
    assert_int_equal(cw_woken(&a), 1);
    RT_WAIT_UNTIL(c->rt, cw_outstanding(&a) == 0); /* the completer lets go of it */
    weft_waker_drop(&c->p[0].stash);
}

/* ---- references across shutdown --------------------------------------------------------------- */

static void test_handles_and_wakers_outlive_shutdown(void **state)
{
    ctx *c = *state;
    spawn_idle(c, &c->p[0], 1, &c->join[0]);
    spawn_idle(c, &c->p[1], 2, NULL);
    weft_rt_shutdown(c->rt);
    c->rt = NULL; /* teardown's shutdown is a no-op now */
    /* Shutdown cancelled both idle tasks: futures dropped, joins finished. */
    assert_int_equal(weft_atomic_load_acquire(&c->p[0].drops), 1);
    assert_int_equal(weft_atomic_load_acquire(&c->p[1].drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].overlap), 0);
    assert_true(weft_join_is_finished(&c->join[0]));
    int out = -1;
    assert_int_equal(poll_noop(&c->join[0].base, &out), WEFT_READY);
    assert_int_equal(out, 0);
    assert_int_equal(c->join[0].status, -ECANCELED);
    /* Wakes are no-ops now; the last holders free the tasks, and the last
     * task freed frees what is left of the runtime (checked by teardown). */
    weft_waker_wake_by_ref(&c->p[0].stash);
    weft_waker_wake(&c->p[1].stash);
    weft_future_drop(&c->join[0].base);
    weft_waker_drop(&c->p[0].stash);
}

/* ---- many tasks, mixed fates ------------------------------------------------------------------ */

/* The tasks below are countdowns (support/countdown.h): each yields a few
 * times, then outputs its index, with its own counts record. */

/* After shutdown: probe 0's idle task was cancelled (its future dropped
 * once, never under a poll) and its handle, polled once, says -ECANCELED;
 * the handle is dropped. */
static void expect_cancelled_by_shutdown(ctx *c)
{
    assert_int_equal(weft_atomic_load_acquire(&c->p[0].drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&c->p[0].overlap), 0);
    int out = -1;
    assert_int_equal(poll_noop(&c->join[0].base, &out), WEFT_READY);
    assert_int_equal(c->join[0].status, -ECANCELED);
    weft_future_drop(&c->join[0].base);
}

/* `n` fresh counts records, returned, and `n` join handles, in `*joins`,
 * for many countdowns; free() both. */
static countdown_counts *alloc_tasks(size_t n, weft_join **joins)
{
    countdown_counts *counts = calloc(n, sizeof *counts);
    *joins = calloc(n, sizeof **joins);
    assert_non_null(counts);
    assert_non_null(*joins);
    for (size_t i = 0; i < n; i++)
        countdown_counts_init(&counts[i]);
    return counts;
}

#define MIXED_TASKS 2000

static void test_many_tasks_with_mixed_join_abort_detach(void **state)
{
    ctx *c = *state;
    weft_join *joins;
    countdown_counts *n = alloc_tasks(MIXED_TASKS, &joins);
    uint64_t rng = rng_seed(0xc0ffee);
    for (int i = 0; i < MIXED_TASKS; i++) {
        countdown y;
        countdown_init(&y, (int)(rng_next32(&rng) >> 28) % 5, i, &n[i], WEFT_F_SEND);
        assert_int_equal(weft_spawn(c->rt, &y.base, sizeof y, i % 5 == 4 ? NULL : &joins[i]),
                         0);
        /* Abort some right away, while they may be queued or running. */
        if (i % 5 == 1 || i % 5 == 2)
            weft_join_abort(&joins[i]);
    }
    for (int i = 0; i < MIXED_TASKS; i++) {
        int st = 1, out = -1;
        switch (i % 5) {
        case 0: /* plain join */
            out = join_int(c, &joins[i], &st);
            assert_int_equal(st, 0);
            assert_int_equal(out, i);
            break;
        case 1: /* aborted, then joined: cancelled, or finished first */
            out = join_int(c, &joins[i], &st);
            assert_true((st == -ECANCELED && out == 0) || (st == 0 && out == i));
            break;
        case 2: /* aborted, then detached */
        case 3: /* detached */
            weft_join_detach(&joins[i]);
            break;
        default: /* spawned detached */
            break;
        }
    }
    for (int i = 0; i < MIXED_TASKS; i++) {
        RT_WAIT_UNTIL(c->rt, weft_atomic_load_acquire(&n[i].drops) >= 1);
        assert_int_equal(weft_atomic_load_acquire(&n[i].drops), 1);
    }
    free(joins);
    free(n);
}

/* Shutdown while tasks are queued, running and idle, with their join
 * handles and a waker still held: every future is dropped exactly once,
 * every handle completes (with the output, or -ECANCELED and zeroes), and
 * the last holders free the tasks and the runtime (checked by teardown). */
#define SHUTDOWN_TASKS 64

static void test_shutdown_cancels_every_kind_of_task_and_handles_stay_valid(void **state)
{
    ctx *c = *state;
    weft_join *joins;
    countdown_counts *n = alloc_tasks(SHUTDOWN_TASKS, &joins);
    spawn_idle(c, &c->p[0], 1, &c->join[0]);
    for (int i = 0; i < SHUTDOWN_TASKS; i++) {
        countdown y; /* some finish first */
        countdown_init(&y, i % 4 == 0 ? 0 : 20 + i % 7, i, &n[i], WEFT_F_SEND);
        assert_int_equal(weft_spawn(c->rt, &y.base, sizeof y, &joins[i]), 0);
    }
    weft_rt_shutdown(c->rt);
    c->rt = NULL; /* teardown's shutdown is a no-op now */

    int cancelled = 0;
    for (int i = 0; i < SHUTDOWN_TASKS; i++) {
        assert_int_equal(weft_atomic_load_acquire(&n[i].drops), 1);
        assert_true(weft_join_is_finished(&joins[i]));
        int out = -1;
        assert_int_equal(poll_noop(&joins[i].base, &out), WEFT_READY);
        if (joins[i].status == -ECANCELED) {
            assert_int_equal(out, 0);
            cancelled++;
        } else {
            assert_int_equal(joins[i].status, 0);
            assert_int_equal(out, i);
        }
        weft_future_drop(&joins[i].base);
    }
    expect_cancelled_by_shutdown(c);
    weft_waker_wake(&c->p[0].stash); /* the last reference */
    print_message("    %d of %d cancelled by shutdown\n", cancelled, SHUTDOWN_TASKS);
    free(joins);
    free(n);
}

/* A foreign thread keeps waking (by reference and by value) and cloning
 * and dropping an idle task's waker before, during and after shutdown.
 * Wakes that reach the closed runtime's queues must be released by one
 * side or the other, exactly once: ASan and the allocation count check
 * there is neither a leak nor a double free. */
typedef struct waker_loop {
    weft_waker *w;
    _Atomic long ops;
    _Atomic int stop;
} waker_loop;

static void *waker_loop_main(void *arg)
{
    waker_loop *l = arg;
    /* Acquire: pairs with the test's release of `stop`. */
    for (long n = 0; !weft_atomic_load_acquire(&l->stop); n++) {
        weft_waker w;
        switch (n % 3) {
        case 0:
            weft_waker_wake_by_ref(l->w);
            break;
        case 1:
            w = weft_waker_clone(l->w);
            weft_waker_wake(&w);
            break;
        default:
            w = weft_waker_clone(l->w);
            weft_waker_drop(&w);
            break;
        }
        weft_atomic_fetch_add_release(&l->ops, 1);
    }
    return NULL;
}

static void test_wakes_racing_shutdown_are_released_once(void **state)
{
    ctx *c = *state;
    for (int round = 0; round < 20; round++) {
        if (!c->rt)
            c->rt = rt_start(2);
        spawn_idle(c, &c->p[0], 1, &c->join[0]);
        waker_loop l;
        l.w = &c->p[0].stash;
        weft_atomic_init(&l.ops, 0);
        weft_atomic_init(&l.stop, 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, waker_loop_main, &l), 0);
        WAIT_UNTIL(weft_atomic_load_acquire(&l.ops) >= 300);
        weft_rt_shutdown(c->rt);
        c->rt = NULL;
        long after = weft_atomic_load_acquire(&l.ops);
        WAIT_UNTIL(weft_atomic_load_acquire(&l.ops) >= after + 300);
        weft_atomic_store_release(&l.stop, 1);
        assert_int_equal(pthread_join(th, NULL), 0);

        expect_cancelled_by_shutdown(c);
        weft_waker_drop(&c->p[0].stash);
        /* Everything of this runtime is gone once its last task is. */
        assert_int_equal(weft_atomic_load_acquire(&g_live_allocs), 0);
    }
}

/* ---- wake storm ------------------------------------------------------------------------------ */

/* Four foreign threads hammer one task's waker — wake_by_ref, clone + wake,
 * clone + drop, and a wake through the atomic waker the task re-registers
 * at every poll — while the task runs on the workers. The storm comes in
 * waves: the test thread releases a wave, each thread performs four
 * operations, and once all are done the test thread waits until a poll has
 * seen every wake issued so far. Each thread counts a wake in `issued`
 * before performing it and the task reads `issued` after registering, at
 * each poll; a wake that poll did not see was issued after the poll began,
 * so it must cause another poll. A lost wake early in a wave is hidden by
 * the wakes after it; the last wakes of a wave have nothing after them, so
 * every wave's end checks the "polled at least once after the last wake"
 * rule afresh (a lost wakeup leaves the test waiting, and the watchdog
 * reports it). A task polled on two workers at once trips `in_poll`. */
#define STORM_THREADS 4
#define STORM_ITERS 100000 /* operations per thread */
#define STORM_WAVE 8       /* operations per thread per wave */

typedef struct storm {
    _Atomic int in_poll;
    _Atomic int overlap;
    _Atomic int started;
    _Atomic int drops;
    _Atomic long polls;
    _Atomic long issued;
    _Atomic long seen;
    _Atomic long wave;     /* released by the test thread */
    _Atomic long finished; /* thread-waves completed */
    long total;
    weft_atomic_waker aw;
    weft_waker stash; /* published by the first poll through `started` */
} storm;

typedef struct storm_fut {
    weft_future base;
    storm *s;
} storm_fut;

static weft_poll storm_poll(weft_future *f, weft_cx *cx, void *out)
{
    storm *s = ((storm_fut *)f)->s;
    if (weft_atomic_swap_acq_rel(&s->in_poll, 1))
        weft_atomic_store_relaxed(&s->overlap, 1);
    long polls = weft_atomic_fetch_add_relaxed(&s->polls, 1) + 1;
    /* Relaxed: only polls of this task touch `started` before the release
     * below, and polls are ordered by the task's state word. */
    if (!weft_atomic_load_relaxed(&s->started)) {
        s->stash = weft_waker_clone(cx->waker);
        weft_atomic_store_release(&s->started, 1);
    }
    weft_atomic_waker_register(&s->aw, cx->waker);
    /* SeqCst: with the threads' seq_cst increments — a wake this read does
     * not see was issued after it, so it must cause another poll. */
    long seen = weft_atomic_load_seq_cst(&s->issued);
    for (int i = 0; i < 64; i++) /* widen the window for wakes while running */
        weft__cpu_relax();
    /* Release: the test thread reads `seen` and then the rest. */
    weft_atomic_store_release(&s->seen, seen);
    weft_atomic_store_release(&s->in_poll, 0);
    if (seen == s->total) {
        *(long *)out = polls;
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void storm_drop(weft_future *f)
{
    storm *s = ((storm_fut *)f)->s;
    weft_atomic_fetch_add_acq_rel(&s->drops, 1);
}

static const weft_future_ops storm_ops = { "test_storm", sizeof(long), storm_poll,
                                           storm_drop, NULL };

typedef struct storm_thread {
    storm *s;
    int id;
    pthread_t thread;
} storm_thread;

static void *storm_main(void *arg)
{
    storm_thread *t = arg;
    storm *s = t->s;
    uint64_t rng = rng_seed((uint64_t)t->id + 1);
    for (int n = 0; n < STORM_ITERS; n++) {
        if (n % STORM_WAVE == 0) {
            long w = n / STORM_WAVE + 1;
            /* Acquire: pairs with the test thread's release of the wave. */
            while (weft_atomic_load_acquire(&s->wave) < w)
                sched_yield();
        }
        /* A random pause so the threads' operations interleave differently
         * with each other and with the task's polls in every wave. */
        for (unsigned i = rng_next32(&rng) >> 26; i > 0; i--)
            weft__cpu_relax();
        weft_waker w;
        switch ((n + t->id) % 4) {
        case 0:
            atomic_fetch_add_explicit(&s->issued, 1, memory_order_seq_cst);
            weft_waker_wake_by_ref(&s->stash);
            break;
        case 1:
            w = weft_waker_clone(&s->stash);
            atomic_fetch_add_explicit(&s->issued, 1, memory_order_seq_cst);
            weft_waker_wake(&w);
            break;
        case 2:
            w = weft_waker_clone(&s->stash);
            weft_waker_drop(&w);
            break;
        default:
            atomic_fetch_add_explicit(&s->issued, 1, memory_order_seq_cst);
            weft_atomic_waker_wake(&s->aw);
            break;
        }
        if (n % STORM_WAVE == STORM_WAVE - 1)
            /* Release: this wave's wakes happen-before the test's check. */
            weft_atomic_fetch_add_acq_rel(&s->finished, 1);
    }
    return NULL;
}

static void test_wake_storm_loses_no_wakeup_and_never_polls_concurrently(void **state)
{
    ctx *c = *state;
    storm *s = calloc(1, sizeof *s);
    assert_non_null(s);
    weft_atomic_waker_init(&s->aw);
    s->total = 0;
    for (int id = 0; id < STORM_THREADS; id++)
        for (int n = 0; n < STORM_ITERS; n++)
            s->total += (n + id) % 4 != 2;

    storm_fut f;
    weft_future_init(&f.base, &storm_ops, WEFT_F_SEND);
    f.s = s;
    weft_join j;
    assert_int_equal(weft_spawn(c->rt, &f.base, sizeof f, &j), 0);
    WAIT_UNTIL(weft_atomic_load_acquire(&s->started));

    storm_thread th[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++) {
        th[i].s = s;
        th[i].id = i;
        assert_int_equal(pthread_create(&th[i].thread, NULL, storm_main, &th[i]), 0);
    }
    const long waves = STORM_ITERS / STORM_WAVE;
    for (long w = 1; w <= waves; w++) {
        weft_atomic_store_release(&s->wave, w);
        WAIT_UNTIL(weft_atomic_load_acquire(&s->finished) == w * STORM_THREADS);
        /* Every wake of this wave has been issued: a poll must see them. */
        long issued = weft_atomic_load_relaxed(&s->issued);
        weft_instant start = weft_now();
        unsigned long spins = 0;
        while (weft_atomic_load_acquire(&s->seen) < issued) {
            sched_yield();
            if ((++spins & 255u) == 0 && wait_expired(start)) {
                /* Let the threads finish so the test can fail cleanly. */
                weft_atomic_store_release(&s->wave, waves);
                fail_msg("wave %ld: wakes up to #%ld issued, but the task was "
                         "last polled having seen #%ld (lost wakeup)", w, issued,
                         (long)weft_atomic_load_acquire(&s->seen));
            }
        }
    }
    for (int i = 0; i < STORM_THREADS; i++)
        assert_int_equal(pthread_join(th[i].thread, NULL), 0);
    assert_int_equal(weft_atomic_load_relaxed(&s->issued), s->total);

    long polls = 0;
    assert_int_equal(weft_block_on(c->rt, &j.base, &polls, sizeof polls), 0);
    assert_int_equal(j.status, 0);
    assert_true(polls >= waves);
    assert_int_equal(weft_atomic_load_relaxed(&s->overlap), 0);
    assert_int_equal(weft_atomic_load_acquire(&s->drops), 1);
    print_message("    %ld wakes in %ld waves, %ld polls\n", s->total, waves, polls);
    weft_atomic_waker_fini(&s->aw);
    weft_waker_drop(&s->stash);
    free(s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_join_returns_the_output),
        T(test_task_joins_a_child_it_spawned),
        T(test_join_before_first_poll),
        T(test_abort_before_first_poll_never_polls),
        T(test_detach_before_first_poll_still_runs),
        T(test_join_while_running),
        T(test_abort_while_running_takes_effect_after_the_poll),
        T(test_abort_while_running_loses_to_a_poll_that_completes),
        T(test_detach_while_running_still_completes),
        T(test_join_while_idle),
        T(test_abort_while_idle_drops_future_promptly_on_a_worker),
        T(test_detach_while_idle_then_wake_completes),
        T(test_join_after_completion),
        T(test_abort_after_completion_has_no_effect),
        T(test_detach_after_completion_frees_the_task),
        T(test_wake_after_completion_is_a_noop),
        T(test_join_waker_is_replaced_and_released_when_the_handle_drops),
        T(test_join_waker_is_woken_once_at_completion),
        T(test_handles_and_wakers_outlive_shutdown),
        T(test_many_tasks_with_mixed_join_abort_detach),
        T(test_shutdown_cancels_every_kind_of_task_and_handles_stay_valid),
        T(test_wakes_racing_shutdown_are_released_once),
        T(test_wake_storm_loses_no_wakeup_and_never_polls_concurrently),
/* The same test on a sim runtime. */
#define S(fn) { #fn "_on_a_sim", fn, setup_sim, teardown, NULL }
        S(test_join_returns_the_output),
        S(test_task_joins_a_child_it_spawned),
        S(test_join_while_idle),
        S(test_abort_while_idle_drops_future_promptly_on_a_worker),
        S(test_detach_while_idle_then_wake_completes),
        S(test_join_after_completion),
        S(test_abort_after_completion_has_no_effect),
        S(test_detach_after_completion_frees_the_task),
        S(test_wake_after_completion_is_a_noop),
        S(test_join_waker_is_replaced_and_released_when_the_handle_drops),
        S(test_join_waker_is_woken_once_at_completion),
        S(test_handles_and_wakers_outlive_shutdown),
        S(test_many_tasks_with_mixed_join_abort_detach),
        S(test_shutdown_cancels_every_kind_of_task_and_handles_stay_valid),
#undef S
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
