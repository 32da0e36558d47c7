/* Unit tests for sched/dump.c: weft_rt_tasks, weft_rt_dump, weft_rt_count
 * and weft_rt_track_ages, on real runtimes; and the holds of sched/task.c
 * that make reading a running task safe.
 *
 * Tasks are put in known states (blocked on a future that never finishes,
 * held running by a gate, queued behind it, aborted while queued, complete
 * and kept by a join handle, cancelled) and found in the dump by their
 * names. No sleeps, no timing assertions: the test thread waits on
 * conditions (WAIT_UNTIL) and join handles. The last test dumps from a
 * second thread, over and over, while tasks spawn, run and finish; it is
 * the one the sanitizer builds are for.
 *
 * The tests that need no worker held busy run again on a sim runtime,
 * dumped between its runs: the states they wait for are where the sim
 * stops (RT_WAIT_UNTIL runs it until every task waits). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "sched/task.h"
#include "support/countdown.h"
#include "support/downcast.h"
#include "support/never.h"
#include "support/rt_fixture.h"
#include "support/sim_fixture.h"
#include "support/wait.h"

/* ---- finding a task by name -------------------------------------------------- */

typedef struct find {
    const char *name;
    int found;
    weft_task_info info; /* the last task of that name */
} find;

static int find_visit(const weft_task_info *t, void *ctx)
{
    find *f = ctx;
    if (strcmp(t->name, f->name) == 0) {
        f->found++;
        f->info = *t;
    }
    return 0;
}

/* True when exactly one task of `rt` is called `name`; its snapshot goes
 * to `*out`. */
static bool lookup(weft_rt *rt, const char *name, weft_task_info *out)
{
    find f = { .name = name };
    assert_int_equal(weft_rt_tasks(rt, find_visit, &f), 0);
    if (f.found == 1 && out)
        *out = f.info;
    return f.found == 1;
}

/* True when exactly one task is called `name` and it is in `state`. */
static bool in_state(weft_rt *rt, const char *name, weft_task_state state,
                     weft_task_info *out)
{
    weft_task_info t;
    if (!lookup(rt, name, &t) || t.state != state)
        return false;
    if (out)
        *out = t;
    return true;
}

static int count_visit(const weft_task_info *t, void *ctx)
{
    (void)t;
    ++*(int *)ctx;
    return 0;
}

static int tasks_listed(weft_rt *rt)
{
    int n = 0;
    assert_int_equal(weft_rt_tasks(rt, count_visit, &n), 0);
    return n;
}

static weft_rt_counts counts_of(weft_rt *rt)
{
    weft_rt_counts c;
    assert_int_equal(weft_rt_count(rt, &c), 0);
    return c;
}

/* ---- the futures -------------------------------------------------------------- */

static countdown_counts g_never_counts;

/* Waits forever on a `never`; `at` is the line of its await. */
typedef struct blocked {
    weft_future base;
    weft_co co;
    never nv;
    int sink;
    int at;
} blocked;

WEFT_ASYNC_FN(blocked, int)
{
    WEFT_FN_BEGIN;
    never_init(&self->nv, &g_never_counts, WEFT_F_SEND);
    self->at = __LINE__; WEFT_FN_AWAIT(&self->nv, &self->sink);
    WEFT_FN_RETURN(self->sink);
    WEFT_FN_END;
}

/* Awaits a `blocked` child: a chain of three frames. */
typedef struct outer {
    weft_future base;
    weft_co co;
    blocked inner;
    int sink;
    int at;
} outer;

WEFT_ASYNC_FN(outer, int)
{
    WEFT_FN_BEGIN;
    self->inner = (blocked){ WEFT_FN_INIT(blocked, WEFT_F_SEND) };
    self->at = __LINE__; WEFT_FN_AWAIT(&self->inner, &self->sink);
    WEFT_FN_RETURN(self->sink);
    WEFT_FN_END;
}

/* A future too big for the slab's size classes (a large block). */
typedef struct bulky {
    weft_future base;
    weft_co co;
    never nv;
    int sink;
    unsigned char pad[600];
} bulky;

WEFT_ASYNC_FN(bulky, int)
{
    WEFT_FN_BEGIN;
    never_init(&self->nv, &g_never_counts, WEFT_F_SEND);
    WEFT_FN_AWAIT(&self->nv, &self->sink);
    WEFT_FN_RETURN(self->sink);
    WEFT_FN_END;
}

/* Sleeps for an hour: a timer armed in the runtime's driver. */
typedef struct napper {
    weft_future base;
    weft_co co;
    weft_sleep nap;
    int at;
} napper;

WEFT_ASYNC_FN_VOID(napper)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->nap, WEFT_SEC(3600));
    self->at = __LINE__; WEFT_FN_AWAIT(&self->nap, NULL);
    WEFT_FN_END;
}

/* A leaf that keeps HOLDER_WAKERS clones of its task's waker (for the
 * test to wake or drop) and is PENDING until `g_holder_release`. */
#define HOLDER_WAKERS 3
static weft_waker g_held[HOLDER_WAKERS];
static _Atomic int g_holder_polls, g_holder_release;

typedef struct holder {
    weft_future base;
} holder;

static weft_poll holder_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)out;
    /* AcqRel: the test that sees the count sees the clones stored before. */
    if (weft_atomic_fetch_add_acq_rel(&g_holder_polls, 1) == 0)
        for (int i = 0; i < HOLDER_WAKERS; i++)
            g_held[i] = weft_waker_clone(cx->waker);
    /* Acquire: pairs with the test's release store. */
    return weft_atomic_load_acquire(&g_holder_release) ? WEFT_READY : WEFT_PENDING;
}

static const weft_future_ops holder_ops = { .name = "holder", .poll = holder_poll };

static void holder_reset(void)
{
    weft_atomic_store_relaxed(&g_holder_polls, 0);
    weft_atomic_store_relaxed(&g_holder_release, 0);
}

/* A leaf whose first poll spins until `g_gate_release`: it keeps its
 * worker busy, so the test knows what runs. */
static _Atomic int g_gate_started, g_gate_release;

typedef struct gate {
    weft_future base;
} gate;

static weft_poll gate_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    /* Release/acquire: the test waits for `started`, the gate for it. */
    weft_atomic_store_release(&g_gate_started, 1);
    while (!weft_atomic_load_acquire(&g_gate_release))
        sched_yield();
    return WEFT_READY;
}

static const weft_future_ops gate_ops = { .name = "gate", .poll = gate_poll };

static void spawn_blocked(weft_rt *rt, weft_join *j)
{
    assert_int_equal(WEFT_SPAWN(rt, j, &(blocked){ WEFT_FN_INIT(blocked, WEFT_F_SEND) }), 0);
}

/* Aborts the task of `j` and waits for its handle: -ECANCELED. */
static void cancel_and_join(weft_rt *rt, weft_join *j)
{
    weft_join_abort(j);
    int sink;
    assert_int_equal(join_blocking(rt, j, &sink, sizeof sink), -ECANCELED);
}

/* ---- bad input ---------------------------------------------------------------- */

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    int before = misuse_count();
    weft_rt_counts c;
    assert_int_equal(weft_rt_tasks(NULL, count_visit, NULL), -EINVAL);
    assert_int_equal(weft_rt_tasks(g_rt, NULL, NULL), -EINVAL);
    assert_int_equal(weft_rt_dump(NULL, stdout), -EINVAL);
    assert_int_equal(weft_rt_dump(g_rt, NULL), -EINVAL);
    assert_int_equal(weft_rt_count(NULL, &c), -EINVAL);
    assert_int_equal(weft_rt_count(g_rt, NULL), -EINVAL);
    assert_int_equal(weft_rt_track_ages(NULL, true), -EINVAL);
    assert_misuse_since(before, 7, "weft_rt_track_ages");
    assert_string_equal(weft_task_state_name((weft_task_state)99), "?");
}

static void test_an_empty_runtime_lists_nothing(void **state)
{
    (void)state;
    assert_int_equal(tasks_listed(g_rt), 0);
    weft_rt_counts c = counts_of(g_rt);
    assert_int_equal(c.tasks, 0);
    assert_int_equal(c.kept, 0);
    assert_int_equal(c.timers, 0);
    assert_int_equal(c.wakers, 0);
}

/* ---- states --------------------------------------------------------------------- */

static void test_a_blocked_task_is_idle_with_its_await_chain(void **state)
{
    (void)state;
    countdown_counts_init(&g_never_counts);
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(outer){ WEFT_FN_INIT(outer, WEFT_F_SEND) }), 0);
    weft_task_info t;
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "outer", WEFT_TASK_IDLE, &t));
    assert_ptr_equal(t.id, j.task);
    assert_int_equal(t.worker, -1);
    assert_int_equal(t.polls, 1);
    assert_int_equal(t.wakers, 0); /* `never` keeps no waker */
    assert_int_equal(t.age_ns, WEFT_TASK_AGE_UNKNOWN);
    /* outer at its await > blocked at its await > never (a leaf). */
    assert_int_equal(t.depth, 3);
    assert_string_equal(t.await[0].name, "outer");
    assert_true(t.await[0].line > 0);
    assert_string_equal(t.await[1].name, "blocked");
    assert_true(t.await[1].line > 0);
    assert_string_equal(t.await[2].name, "never");
    assert_int_equal(t.await[2].line, 0);
    /* The lines are those of the awaits (recorded by the bodies). Reading
     * the future from here is safe: the task is idle, nothing wakes it,
     * and the dump's hold ordered its last poll before us. */
    const outer *o = (const outer *)weft__task_future(j.task);
    assert_int_equal(t.await[0].line, o->at);
    assert_int_equal(t.await[1].line, o->inner.at);

    weft_rt_counts c = counts_of(g_rt);
    assert_int_equal(c.tasks, 1);
    assert_int_equal(c.kept, 0);
    assert_int_equal(c.wakers, 0);
    cancel_and_join(g_rt, &j);
}

static void test_a_completed_task_kept_by_its_handle_is_listed_until_dropped(void **state)
{
    (void)state;
    weft_join j;
    weft_ready r;
    assert_int_equal(weft_ready_init(&r, &(int){ 5 }, sizeof(int)), 0);
    assert_int_equal(weft_spawn(g_rt, &r.base, sizeof r, &j), 0);
    /* Its worker drops the scheduler's two references just after marking
     * it complete; until then they count as wakers. */
    weft_task_info t;
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "weft_ready", WEFT_TASK_COMPLETE, &t) && t.wakers == 0);
    assert_int_equal(t.polls, 1);
    assert_int_equal(t.depth, 0);
    weft_rt_counts c = counts_of(g_rt);
    assert_int_equal(c.tasks, 0);
    assert_int_equal(c.kept, 1);
    weft_join_detach(&j); /* frees the task */
    assert_int_equal(tasks_listed(g_rt), 0);
    assert_int_equal(counts_of(g_rt).kept, 0);
}

static void test_a_cancelled_task_was_never_polled_again(void **state)
{
    (void)state;
    countdown_counts_init(&g_never_counts);
    weft_join j;
    spawn_blocked(g_rt, &j);
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "blocked", WEFT_TASK_IDLE, NULL));
    weft_join_abort(&j);
    RT_WAIT_UNTIL(g_rt, weft_join_is_finished(&j));
    weft_task_info t;
    assert_true(in_state(g_rt, "blocked", WEFT_TASK_CANCELLED, &t));
    assert_int_equal(t.polls, 1); /* a cancellation is no poll */
    assert_int_equal(t.depth, 0);
    assert_int_equal(counts_of(g_rt).kept, 1);
    int sink;
    assert_int_equal(join_blocking(g_rt, &j, &sink, sizeof sink), -ECANCELED);
    RT_WAIT_UNTIL(g_rt, tasks_listed(g_rt) == 0); /* once its worker let go too */
}

/* One worker, held by a gate: what comes after it waits in the queue, and
 * an abort of a queued task shows until the worker gets to it. */
static void test_running_queued_and_cancelling_tasks(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(1);
    weft_atomic_store_relaxed(&g_gate_started, 0);
    weft_atomic_store_relaxed(&g_gate_release, 0);
    weft_join jg, jq, jc;
    gate g = { WEFT_FUTURE_INIT(&gate_ops, WEFT_F_SEND) };
    assert_int_equal(weft_spawn(rt, &g.base, sizeof g, &jg), 0);
    WAIT_UNTIL(weft_atomic_load_acquire(&g_gate_started));
    countdown_counts_init(&g_never_counts);
    spawn_blocked(rt, &jq);
    weft_ready r;
    assert_int_equal(weft_ready_init(&r, NULL, 0), 0);
    assert_int_equal(weft_spawn(rt, &r.base, sizeof r, &jc), 0);
    weft_join_abort(&jc);

    weft_task_info t;
    assert_true(in_state(rt, "gate", WEFT_TASK_RUNNING, &t));
    assert_int_equal(t.polls, 1);
    assert_int_equal(t.depth, 0);
    assert_true(in_state(rt, "blocked", WEFT_TASK_QUEUED, &t));
    assert_int_equal(t.polls, 0);
    assert_int_equal(t.depth, 0); /* only an idle task's chain is read */
    assert_true(in_state(rt, "weft_ready", WEFT_TASK_CANCELLING, &t));
    assert_int_equal(t.polls, 0);
    weft_rt_counts c = counts_of(rt);
    assert_int_equal(c.tasks, 3);
    assert_int_equal(c.wakers, 0);

    /* Release the gate: the worker runs the rest. */
    weft_atomic_store_release(&g_gate_release, 1);
    assert_int_equal(join_blocking(rt, &jg, NULL, 0), 0);
    assert_int_equal(join_blocking(rt, &jc, NULL, 0), -ECANCELED);
    WAIT_UNTIL(in_state(rt, "blocked", WEFT_TASK_IDLE, NULL));
    cancel_and_join(rt, &jq);
    weft_rt_shutdown(rt);
}

/* A local task names its owner worker. */
static _Atomic int g_spawner_worker;

static void spawn_local_blocked(void *arg, void *out)
{
    (void)arg, (void)out;
    blocked b = { WEFT_FN_INIT(blocked, 0) };
    /* Relaxed: the test reads it after joining this task. */
    weft_atomic_store_relaxed(&g_spawner_worker, weft_worker_index());
    int rc = weft_spawn_local(&b.base, sizeof b, NULL);
    if (rc != 0)
        weft_future_drop(&b.base);
}

static void test_a_local_task_names_its_worker(void **state)
{
    (void)state;
    countdown_counts_init(&g_never_counts);
    weft_join j;
    assert_int_equal(weft_spawn_fn(g_rt, spawn_local_blocked, &(char){ 0 }, 0, &j), 0);
    assert_int_equal(join_blocking(g_rt, &j, NULL, 0), 0);
    weft_task_info t;
    WAIT_UNTIL(in_state(g_rt, "blocked", WEFT_TASK_IDLE, &t));
    assert_int_equal(t.worker, weft_atomic_load_relaxed(&g_spawner_worker));
    assert_true(t.worker >= 0);
    /* The detached local task is left to shutdown (teardown). */
}

/* A task made from a plain function is listed under the function's name
 * in every state. */
static void test_a_function_task_is_named_after_its_function(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(1);
    weft_atomic_store_relaxed(&g_gate_started, 0);
    weft_atomic_store_relaxed(&g_gate_release, 0);
    weft_join jg, jf;
    gate g = { WEFT_FUTURE_INIT(&gate_ops, WEFT_F_SEND) };
    assert_int_equal(weft_spawn(rt, &g.base, sizeof g, &jg), 0);
    WAIT_UNTIL(weft_atomic_load_acquire(&g_gate_started));
    assert_int_equal(weft_spawn_fn(rt, spawn_local_blocked, &(char){ 0 }, 0, &jf), 0);
    assert_true(in_state(rt, "spawn_local_blocked", WEFT_TASK_QUEUED, NULL));
    weft_join_abort(&jf);
    assert_true(in_state(rt, "spawn_local_blocked", WEFT_TASK_CANCELLING, NULL));
    weft_atomic_store_release(&g_gate_release, 1);
    WAIT_UNTIL(weft_join_is_finished(&jf));
    assert_true(in_state(rt, "spawn_local_blocked", WEFT_TASK_CANCELLED, NULL));
    assert_int_equal(join_blocking(rt, &jf, NULL, 0), -ECANCELED);
    assert_int_equal(join_blocking(rt, &jg, NULL, 0), 0);
    weft_rt_shutdown(rt);
}

/* ---- wakers, timers, polls, ages ---------------------------------------------------- */

static void test_wakers_count_the_clones_held_elsewhere(void **state)
{
    (void)state;
    holder_reset();
    weft_join j;
    holder h = { WEFT_FUTURE_INIT(&holder_ops, WEFT_F_SEND) };
    assert_int_equal(weft_spawn(g_rt, &h.base, sizeof h, &j), 0);
    weft_task_info t;
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "holder", WEFT_TASK_IDLE, &t));
    assert_int_equal(t.wakers, HOLDER_WAKERS);
    assert_int_equal(t.depth, 0); /* not a coroutine */
    assert_int_equal(counts_of(g_rt).wakers, HOLDER_WAKERS);
    weft_waker_drop(&g_held[0]);
    assert_true(in_state(g_rt, "holder", WEFT_TASK_IDLE, &t));
    assert_int_equal(t.wakers, HOLDER_WAKERS - 1);

    weft_atomic_store_release(&g_holder_release, 1);
    weft_waker_wake(&g_held[1]);
    assert_int_equal(join_blocking(g_rt, &j, NULL, 0), 0);
    /* The last clone keeps the completed task: listed, with no handle.
     * (Its worker drops the scheduler's two references just after marking
     * it complete, which the join may see first: until then they count.) */
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "holder", WEFT_TASK_COMPLETE, &t) && t.wakers == 1);
    assert_int_equal(t.polls, 2);
    weft_waker_drop(&g_held[2]);
    assert_int_equal(tasks_listed(g_rt), 0);
}

static void test_timers_count_armed_sleeps(void **state)
{
    (void)state;
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(napper){ WEFT_FN_INIT(napper, WEFT_F_SEND) }), 0);
    weft_task_info t;
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "napper", WEFT_TASK_IDLE, &t));
    assert_int_equal(t.depth, 2);
    assert_string_equal(t.await[1].name, "weft_sleep");
    assert_int_equal(t.await[0].line,
                     ((const napper *)weft__task_future(j.task))->at);
    assert_int_equal(t.wakers, 1); /* the timer's */
    weft_rt_counts c = counts_of(g_rt);
    assert_int_equal(c.timers, 1);
    assert_int_equal(c.wakers, 1);
    weft_join_abort(&j);
    assert_int_equal(join_blocking(g_rt, &j, NULL, 0), -ECANCELED);
    /* Gone once its worker dropped the last references (see above). */
    RT_WAIT_UNTIL(g_rt, counts_of(g_rt).kept == 0);
    c = counts_of(g_rt);
    assert_int_equal(c.tasks, 0);
    assert_int_equal(c.timers, 0);
    assert_int_equal(c.wakers, 0);
}

static void test_polls_saturate(void **state)
{
    (void)state;
    holder_reset();
    weft_join j;
    holder h = { WEFT_FUTURE_INIT(&holder_ops, WEFT_F_SEND) };
    assert_int_equal(weft_spawn(g_rt, &h.base, sizeof h, &j), 0);
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "holder", WEFT_TASK_IDLE, NULL));
    /* Idle and woken by nobody but us: move its count near the top (the
     * count is part of the state word; see sched/task.h). */
    weft_atomic_fetch_add_relaxed(&j.task->state,
                                  (uint64_t)(WEFT_TASK_POLLS_MAX - 2u) * WEFT_T_POLL_ONE);
    weft_task_info t;
    assert_true(in_state(g_rt, "holder", WEFT_TASK_IDLE, &t));
    assert_int_equal(t.polls, WEFT_TASK_POLLS_MAX - 1u);
    for (int i = 0; i < 3; i++) {
        int polled = weft_atomic_load_acquire(&g_holder_polls);
        weft_waker_wake_by_ref(&g_held[0]);
        RT_WAIT_UNTIL(g_rt, weft_atomic_load_acquire(&g_holder_polls) > polled &&
                   in_state(g_rt, "holder", WEFT_TASK_IDLE, NULL));
    }
    assert_true(in_state(g_rt, "holder", WEFT_TASK_IDLE, &t));
    assert_int_equal(t.polls, WEFT_TASK_POLLS_MAX); /* stuck at the top */
    assert_int_equal(t.wakers, HOLDER_WAKERS);     /* references intact */
    weft_atomic_store_release(&g_holder_release, 1);
    for (int i = 0; i < HOLDER_WAKERS; i++)
        weft_waker_wake(&g_held[i]);
    assert_int_equal(join_blocking(g_rt, &j, NULL, 0), 0);
}

static void test_ages_are_known_only_for_tasks_spawned_while_tracking(void **state)
{
    (void)state;
    countdown_counts_init(&g_never_counts);
    weft_join plain, aged, big;
    spawn_blocked(g_rt, &plain);
    assert_int_equal(weft_rt_track_ages(g_rt, true), 0);
    assert_int_equal(WEFT_SPAWN(g_rt, &aged, &(outer){ WEFT_FN_INIT(outer, WEFT_F_SEND) }), 0);
    assert_int_equal(WEFT_SPAWN(g_rt, &big, &(bulky){ WEFT_FN_INIT(bulky, WEFT_F_SEND) }), 0);
    assert_int_equal(weft_rt_track_ages(g_rt, false), 0);

    weft_task_info tp, ta, tb;
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "blocked", WEFT_TASK_IDLE, &tp) &&
               in_state(g_rt, "outer", WEFT_TASK_IDLE, &ta) &&
               in_state(g_rt, "bulky", WEFT_TASK_IDLE, &tb));
    assert_int_equal(tp.age_ns, WEFT_TASK_AGE_UNKNOWN);
    assert_int_not_equal(ta.age_ns, WEFT_TASK_AGE_UNKNOWN);
    assert_int_not_equal(tb.age_ns, WEFT_TASK_AGE_UNKNOWN); /* a large block */
    assert_int_equal(tb.depth, 2);
    /* Ages only grow. */
    weft_task_info later;
    assert_true(in_state(g_rt, "outer", WEFT_TASK_IDLE, &later));
    assert_true(later.age_ns >= ta.age_ns);
    cancel_and_join(g_rt, &plain);
    cancel_and_join(g_rt, &aged);
    cancel_and_join(g_rt, &big);
}

/* ---- the walk --------------------------------------------------------------------- */

static int stop_visit(const weft_task_info *t, void *ctx)
{
    (void)t;
    ++*(int *)ctx;
    return 42;
}

static void test_a_visitor_stops_the_walk(void **state)
{
    (void)state;
    countdown_counts_init(&g_never_counts);
    weft_join j[3];
    for (int i = 0; i < 3; i++)
        spawn_blocked(g_rt, &j[i]);
    RT_WAIT_UNTIL(g_rt, tasks_listed(g_rt) == 3);
    int visits = 0;
    assert_int_equal(weft_rt_tasks(g_rt, stop_visit, &visits), 42);
    assert_int_equal(visits, 1);
    for (int i = 0; i < 3; i++)
        cancel_and_join(g_rt, &j[i]);
}

/* The table: a header, one line per task, the counts. */
static void test_dump_prints_a_table_and_the_counts(void **state)
{
    (void)state;
    countdown_counts_init(&g_never_counts);
    weft_join jb, jn;
    spawn_blocked(g_rt, &jb);
    assert_int_equal(WEFT_SPAWN(g_rt, &jn, &(napper){ WEFT_FN_INIT(napper, WEFT_F_SEND) }), 0);
    RT_WAIT_UNTIL(g_rt, in_state(g_rt, "blocked", WEFT_TASK_IDLE, NULL) &&
               in_state(g_rt, "napper", WEFT_TASK_IDLE, NULL));

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(weft_rt_dump(g_rt, f), 0);
    assert_int_equal(fclose(f), 0);
    print_message("%s", text);

    char want[128];
    assert_non_null(strstr(text, "TASK"));
    assert_non_null(strstr(text, "AWAIT"));
    snprintf(want, sizeof want, "blocked:%d > never  (no waker)\n",
             ((const blocked *)weft__task_future(jb.task))->at);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "napper:%d > weft_sleep\n",
             ((const napper *)weft__task_future(jn.task))->at);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "tasks: 2 live (2 idle, 0 queued, 0 running, 0 cancelling), "
                                 "0 complete kept (0 cancelled); timers armed: 1; "
                                 "task wakers: 1\n"));
    free(text);
    cancel_and_join(g_rt, &jb);
    weft_join_abort(&jn);
    assert_int_equal(join_blocking(g_rt, &jn, NULL, 0), -ECANCELED);
}

static void test_dump_reports_a_failed_write(void **state)
{
    (void)state;
    FILE *f = fopen("/dev/null", "r"); /* not writable */
    assert_non_null(f);
    assert_int_equal(weft_rt_dump(g_rt, f), -EIO);
    fclose(f);
}

/* ---- the holds (sched/task.c) ------------------------------------------------------------ */

static void test_try_ref_leaves_free_and_dying_blocks_alone(void **state)
{
    (void)state;
    _Alignas(16) struct weft__task fake;
    memset(&fake, 0, sizeof fake);
    weft_atomic_store_relaxed(&fake.state, 0); /* a free block */
    assert_false(weft__task_try_ref(&fake));
    /* Complete, its last reference gone: about to be freed. */
    weft_atomic_store_relaxed(&fake.state, WEFT_T_COMPLETE | WEFT_T_OUT_CANCELLED);
    assert_false(weft__task_try_ref(&fake));
    assert_int_equal(weft_atomic_load_relaxed(&fake.state),
                     WEFT_T_COMPLETE | WEFT_T_OUT_CANCELLED);
}

/* Hold an idle holder task (a reference and RUNNING), as a dump does. */
static struct weft__task *hold_holder(weft_join *j)
{
    holder_reset();
    holder h = { WEFT_FUTURE_INIT(&holder_ops, WEFT_F_SEND) };
    assert_int_equal(weft_spawn(g_rt, &h.base, sizeof h, j), 0);
    WAIT_UNTIL(in_state(g_rt, "holder", WEFT_TASK_IDLE, NULL));
    struct weft__task *t = j->task;
    assert_true(weft__task_try_ref(t));
    uint64_t s = weft__task_hold_idle(t);
    assert_int_equal(s & (WEFT_T_RUNNING | WEFT_T_NOTIFIED | WEFT_T_COMPLETE), 0);
    return t;
}

static void test_a_wake_during_a_hold_runs_the_task_after_it(void **state)
{
    (void)state;
    weft_join j;
    struct weft__task *t = hold_holder(&j);
    weft_atomic_store_release(&g_holder_release, 1);
    weft_waker_wake_by_ref(&g_held[0]);
    /* Held: no worker may poll it (it is not even queued). */
    assert_int_equal(weft_atomic_load_acquire(&g_holder_polls), 1);
    assert_true(weft_atomic_load_acquire(&t->state) & WEFT_T_NOTIFIED);
    weft__task_let_go(t);
    WAIT_UNTIL(weft_join_is_finished(&j));
    assert_int_equal(weft_atomic_load_acquire(&g_holder_polls), 2);
    weft__task_drop_ref(t);
    assert_int_equal(join_blocking(g_rt, &j, NULL, 0), 0);
    for (int i = 0; i < HOLDER_WAKERS; i++)
        weft_waker_drop(&g_held[i]);
}

static void test_an_abort_during_a_hold_cancels_the_task_after_it(void **state)
{
    (void)state;
    weft_join j;
    struct weft__task *t = hold_holder(&j);
    weft_join_abort(&j);
    assert_false(weft_join_is_finished(&j));
    weft__task_let_go(t);
    WAIT_UNTIL(weft_join_is_finished(&j));
    assert_int_equal(weft_atomic_load_acquire(&g_holder_polls), 1);
    weft__task_drop_ref(t);
    assert_int_equal(join_blocking(g_rt, &j, NULL, 0), -ECANCELED);
    for (int i = 0; i < HOLDER_WAKERS; i++)
        weft_waker_drop(&g_held[i]);
}

static void test_a_hold_without_wakes_leaves_the_task_idle(void **state)
{
    (void)state;
    weft_join j;
    struct weft__task *t = hold_holder(&j);
    weft__task_let_go(t);
    weft__task_drop_ref(t);
    weft_task_info info;
    assert_true(in_state(g_rt, "holder", WEFT_TASK_IDLE, &info));
    assert_int_equal(info.wakers, HOLDER_WAKERS); /* no reference lost or left */
    assert_int_equal(info.polls, 1);
    weft_atomic_store_release(&g_holder_release, 1);
    for (int i = 0; i < HOLDER_WAKERS; i++)
        weft_waker_wake(&g_held[i]);
    assert_int_equal(join_blocking(g_rt, &j, NULL, 0), 0);
}

/* ---- dumping while the runtime runs ---------------------------------------------------- */

#define CHURN_WAVES_MIN 20
#define CHURN_DUMPS_MIN 30
#define CHURN_WIDTH 24

static _Atomic int g_dumps;        /* passes the dumping thread made */
static _Atomic int g_stop_dumping; /* set by the test when the work is done */
static _Atomic int g_bad_snapshot; /* what a dump saw that cannot be */

/* One child of a wave, by kind: yields a few times, naps 1 ms, waits for
 * an abort, or is a bulky or plain-function task. */
typedef struct churn_child {
    weft_future base;
    weft_co co;
    int kind, i;
    weft_yield y;
    weft_sleep nap;
    never nv;
    int sink;
} churn_child;

WEFT_ASYNC_FN(churn_child, int)
{
    WEFT_FN_BEGIN;
    if (self->kind == 0) {
        for (self->i = 0; self->i < 3; self->i++) {
            weft_yield_init(&self->y);
            WEFT_FN_AWAIT(&self->y, NULL);
        }
    } else if (self->kind == 1) {
        weft_sleep_init(&self->nap, WEFT_MS(1));
        WEFT_FN_AWAIT(&self->nap, NULL);
    } else {
        never_init(&self->nv, &g_never_counts, WEFT_F_SEND);
        WEFT_FN_AWAIT(&self->nv, &self->sink);
    }
    WEFT_FN_RETURN(self->kind);
    WEFT_FN_END;
}

static void churn_leaf(void *arg, void *out)
{
    *(int *)out = *(const int *)arg;
}

/* Spawns waves of children until enough waves ran and the dumping thread
 * made enough passes; aborts the waiting ones and joins all. Output: 0, or
 * a negative error. */
typedef struct churner {
    weft_future base;
    weft_co co;
    int wave, i, got;
    weft_join kids[CHURN_WIDTH];
    int spawned;
} churner;

static void churner_drop(weft_future *f)
{
    churner *self = (churner *)f;
    weft_co_drop(&self->co);
    for (int k = self->i; k < self->spawned; k++)
        weft_join_cancel(&self->kids[k]);
}

WEFT_ASYNC_FN_WITH_DROP(churner, int)
{
    int rc;
    WEFT_FN_BEGIN;
    for (self->wave = 0; self->wave < CHURN_WAVES_MIN ||
                         weft_atomic_load_acquire(&g_dumps) < CHURN_DUMPS_MIN;
         self->wave++) {
        for (self->spawned = 0; self->spawned < CHURN_WIDTH; self->spawned++) {
            int kind = self->spawned % 4;
            if (kind == 3)
                rc = weft_spawn_fn(NULL, churn_leaf, &kind, sizeof(int),
                                   &self->kids[self->spawned]);
            else
                rc = WEFT_SPAWN(NULL, &self->kids[self->spawned],
                                &(churn_child){ WEFT_FN_INIT(churn_child, WEFT_F_SEND),
                                                .kind = kind });
            if (rc != 0) {
                self->i = 0; /* the drop cancels what was spawned */
                WEFT_FN_RETURN(rc);
            }
        }
        for (self->i = 0; self->i < CHURN_WIDTH; self->i++) {
            if (self->i % 4 == 2)
                weft_join_abort(&self->kids[self->i]);
            WEFT_FN_AWAIT(&self->kids[self->i], &self->got);
            if (self->i % 4 == 2 ? self->kids[self->i].status != -ECANCELED
                                 : self->kids[self->i].status != 0 || self->got != self->i % 4)
                WEFT_FN_RETURN(-EPROTO);
        }
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static bool known_name(const char *name)
{
    static const char *const names[] = { "churner", "churn_child", "churn_leaf",
                                         "weft_yield", "weft_sleep", "never", "weft_join" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

static int check_visit(const weft_task_info *t, void *ctx)
{
    (void)ctx;
    bool ok = t->id && t->name && known_name(t->name) && t->state <= WEFT_TASK_CANCELLED &&
              t->worker == -1 && t->polls <= WEFT_TASK_POLLS_MAX &&
              t->depth <= WEFT_TASK_AWAIT_MAX && t->age_ns != WEFT_TASK_AGE_UNKNOWN &&
              (t->state == WEFT_TASK_IDLE || t->depth == 0);
    for (unsigned i = 0; ok && i < t->depth; i++)
        ok = t->await[i].name && known_name(t->await[i].name);
    if (ok && t->depth > 0)
        ok = strcmp(t->await[0].name, t->name) == 0 && t->await[0].line > 0;
    if (!ok)
        weft_atomic_fetch_add_relaxed(&g_bad_snapshot, 1);
    return 0;
}

static void *dumping_thread(void *arg)
{
    weft_rt *rt = arg;
    FILE *null = fopen("/dev/null", "w");
    /* Acquire: pairs with the test's release store. */
    while (!weft_atomic_load_acquire(&g_stop_dumping)) {
        weft_rt_counts c;
        if (weft_rt_tasks(rt, check_visit, NULL) != 0 || weft_rt_count(rt, &c) != 0 ||
            (null && weft_rt_dump(rt, null) != 0))
            weft_atomic_fetch_add_relaxed(&g_bad_snapshot, 1);
        /* Release: the churner reads the count to decide when to stop. */
        weft_atomic_fetch_add_release(&g_dumps, 1);
    }
    if (null)
        fclose(null);
    return NULL;
}

static void test_dumps_from_another_thread_while_tasks_come_and_go(void **state)
{
    (void)state;
    countdown_counts_init(&g_never_counts);
    weft_atomic_store_relaxed(&g_dumps, 0);
    weft_atomic_store_relaxed(&g_stop_dumping, 0);
    weft_atomic_store_relaxed(&g_bad_snapshot, 0);
    assert_int_equal(weft_rt_track_ages(g_rt, true), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, dumping_thread, g_rt), 0);
    weft_join j;
    int rc = WEFT_SPAWN(g_rt, &j, &(churner){ WEFT_FN_INIT(churner, WEFT_F_SEND) });
    int out = -1, status = rc;
    if (rc == 0)
        status = join_blocking(g_rt, &j, &out, sizeof out);
    weft_atomic_store_release(&g_stop_dumping, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(status, 0);
    assert_int_equal(out, 0);
    assert_int_equal(weft_atomic_load_relaxed(&g_bad_snapshot), 0);
    assert_true(weft_atomic_load_relaxed(&g_dumps) >= CHURN_DUMPS_MIN);
    /* Every `never` a waiting child started was polled once (nothing
     * wakes it) and dropped once, by the child's abort. */
    assert_int_equal(weft_atomic_load_acquire(&g_never_counts.drops),
                     weft_atomic_load_acquire(&g_never_counts.polls));
    WAIT_UNTIL(tasks_listed(g_rt) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_arguments_are_refused, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_an_empty_runtime_lists_nothing, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_a_blocked_task_is_idle_with_its_await_chain,
                                        rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_completed_task_kept_by_its_handle_is_listed_until_dropped, rt_setup,
            rt_teardown),
        cmocka_unit_test_setup_teardown(test_a_cancelled_task_was_never_polled_again, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_running_queued_and_cancelling_tasks, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_a_local_task_names_its_worker, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_a_function_task_is_named_after_its_function,
                                        rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_wakers_count_the_clones_held_elsewhere, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_timers_count_armed_sleeps, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_polls_saturate, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(
            test_ages_are_known_only_for_tasks_spawned_while_tracking, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_a_visitor_stops_the_walk, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_dump_prints_a_table_and_the_counts, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_dump_reports_a_failed_write, rt_setup,
                                        rt_teardown),
        cmocka_unit_test(test_try_ref_leaves_free_and_dying_blocks_alone),
        cmocka_unit_test_setup_teardown(test_a_wake_during_a_hold_runs_the_task_after_it,
                                        rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_an_abort_during_a_hold_cancels_the_task_after_it,
                                        rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_a_hold_without_wakes_leaves_the_task_idle,
                                        rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_dumps_from_another_thread_while_tasks_come_and_go,
                                        rt_setup, rt_teardown),
/* The same test on a sim runtime. */
#define S(fn) { #fn "_on_a_sim", fn, sim_setup_g_rt, rt_teardown, NULL }
        S(test_an_empty_runtime_lists_nothing),
        S(test_a_blocked_task_is_idle_with_its_await_chain),
        S(test_a_completed_task_kept_by_its_handle_is_listed_until_dropped),
        S(test_a_cancelled_task_was_never_polled_again),
        S(test_wakers_count_the_clones_held_elsewhere),
        S(test_timers_count_armed_sleeps),
        S(test_polls_saturate),
        S(test_ages_are_known_only_for_tasks_spawned_while_tracking),
        S(test_a_visitor_stops_the_walk),
        S(test_dump_prints_a_table_and_the_counts),
#undef S
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
