/* Cancel sweeps (weft_cancel_sweep) of the futures of weft/rt.h: a join
 * handle (weft_join), weft_join_all, and the join handle of a
 * weft_spawn_fn task — alone, and awaited by coroutines that either
 * detach their children when dropped (the default) or cancel them (a
 * WEFT_ASYNC_FN_WITH_DROP that aborts first). Each run checks what
 * docs/cancel-safety.md promises: a dropped handle detaches its task,
 * which runs to completion and is freed; an aborted one is never polled
 * again and its future is dropped once; a function task runs once or
 * never; no waker is left registered, and no task, timer or allocation
 * is left behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/sim.h"
#include "support/sweep.h"

#define SEEDS 8
#define CHAOS 0.3

/* Sweeps `c` over SEEDS seeds, with chaos off and then with every knob at
 * CHAOS (the seed decides whether a task runs before or after the handle
 * is first polled). */
static void sweep_seeds(const weft_sweep_case *c)
{
    weft_sweep_options o = sweep_options(1, SEEDS);
    sweep_pass(c, &o);
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    sweep_pass(c, &o);
}

/* ---- the tasks joined --------------------------------------------------------------------- */

/* What a worker task did. */
typedef struct work {
    int steps;   /* its first poll, and each yield it came back from */
    int drops;   /* its drops: exactly one per task */
    bool done;   /* it completed */
    int steps_at_abort; /* steps when its handle's owner aborted it; -1 */
} work;

/* Yields `n` times (each a library await point), then answers `value`. */
typedef struct worker {
    weft_future base;
    weft_co co;
    weft_yield y;
    work *w;
    int n, i, value;
} worker;

static void worker_drop(weft_future *f)
{
    worker *self = (worker *)f;
    self->w->drops++;
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_WITH_DROP(worker, int)
{
    WEFT_FN_BEGIN;
    self->w->steps++;
    for (self->i = 0; self->i < self->n; self->i++) {
        weft_yield_init(&self->y);
        WEFT_FN_AWAIT(&self->y, NULL);
        self->w->steps++;
    }
    self->w->done = true;
    WEFT_FN_RETURN(self->value);
    WEFT_FN_END;
}

static void work_init(work *w)
{
    memset(w, 0, sizeof *w);
    w->steps_at_abort = -1;
}

static int spawn_worker(weft_rt *rt, work *w, int n, int value, weft_join *j)
{
    work_init(w);
    return WEFT_SPAWN(rt, j, &(worker){ WEFT_FN_INIT(worker, WEFT_F_SEND), .w = w, .n = n,
                                       .value = value });
}

/* A worker that was left alone (detached, or joined) ran to the end. */
static const char *ran_to_the_end(const work *w, const char *who)
{
    if (!w->done || w->drops != 1)
        return sweep_say("%s: done %d, %d drops", who, w->done, w->drops);
    return NULL;
}

/* A worker whose owner aborted it: no step after the abort (its future
 * was dropped at its next turn instead of polled), dropped once; done
 * only if it finished before. */
static const char *stopped_by_abort(const work *w, const char *who)
{
    if (w->drops != 1)
        return sweep_say("%s: %d drops", who, w->drops);
    if (w->steps_at_abort >= 0 && w->steps != w->steps_at_abort)
        return sweep_say("%s: %d steps after its abort", who, w->steps - w->steps_at_abort);
    return NULL;
}

/* ---- weft_join ---------------------------------------------------------------------------- */

typedef struct join_case {
    work w;
    weft_join j;
    int out;
} join_case;

static int join_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    join_case *jc = ctx;
    jc->out = -1;
    int err = spawn_worker(rt, &jc->w, 3, 5, &jc->j);
    *fut = &jc->j.base;
    *out = &jc->out;
    return err;
}

static const char *join_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    join_case *jc = ctx;
    /* Dropping the handle detaches the task: it ran to completion all
     * the same, and was freed (no task kept). */
    const char *why = ran_to_the_end(&jc->w, "the joined task");
    if (why)
        return why;
    if (jc->j.task)
        return "the handle still holds its task";
    if (run->completed ? (jc->out != 5 || jc->j.status != 0) : jc->out != -1)
        return sweep_say("k=%u: output %d, status %d", run->k, jc->out, jc->j.status);
    /* The join waker was taken back at the drop. */
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) left registered, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    return sweep_leftovers(rt);
}

static void test_cancel_sweep_join_handle_detaches(void **state)
{
    (void)state;
    static join_case jc;
    weft_sweep_case c = { join_build, join_check, NULL, &jc };
    sweep_seeds(&c);
}

/* ---- weft_spawn_fn ------------------------------------------------------------------------ */

static int g_fn_runs;

static void triple(void *arg, void *out)
{
    g_fn_runs++;
    *(int *)out = 3 * *(int *)arg;
}

typedef struct fn_case {
    weft_join j;
    int out;
} fn_case;

static int fn_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    fn_case *fc = ctx;
    g_fn_runs = 0;
    fc->out = -1;
    int err = weft_spawn_fn(rt, triple, &(int){ 14 }, sizeof(int), &fc->j);
    *fut = &fc->j.base;
    *out = &fc->out;
    return err;
}

static const char *fn_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    fn_case *fc = ctx;
    /* Detached, the function still runs, once. */
    if (g_fn_runs != 1)
        return sweep_say("k=%u: the function ran %d times", run->k, g_fn_runs);
    if (fc->out != (run->completed ? 42 : -1))
        return sweep_say("k=%u: output %d", run->k, fc->out);
    if (run->wakers_after_drop)
        return "a waker was left registered";
    return sweep_leftovers(rt); /* its copy of the argument went with it */
}

static void test_cancel_sweep_spawn_fn_task_handle(void **state)
{
    (void)state;
    static fn_case fc;
    weft_sweep_case c = { fn_build, fn_check, NULL, &fc };
    sweep_seeds(&c);
}

/* ---- weft_join_all ------------------------------------------------------------------------ */

#define NJ 3

typedef struct join_all_case {
    work w[NJ];
    weft_join j[NJ];
    int outs[NJ];
    weft_join_all ja;
} join_all_case;

static int join_all_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    join_all_case *jc = ctx;
    (void)out;
    for (int i = 0; i < NJ; i++) {
        jc->outs[i] = -1;
        int err = spawn_worker(rt, &jc->w[i], 1 + 2 * i, 10 + i, &jc->j[i]);
        if (err)
            return err;
    }
    int err = weft_join_all_init(&jc->ja, jc->j, NJ, jc->outs, sizeof jc->outs[0], 0);
    *fut = &jc->ja.base;
    return err;
}

static const char *join_all_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    join_all_case *jc = ctx;
    /* Dropped, it detaches the tasks not joined yet: every task ran to
     * the end. The outputs of those joined before the drop (in array
     * order: a prefix) stay; the others were never written. */
    bool joined = true;
    for (int i = 0; i < NJ; i++) {
        const char *why = ran_to_the_end(&jc->w[i], "a task of the set");
        if (why)
            return why;
        if (jc->j[i].task)
            return sweep_say("k=%u: handle %d still holds its task", run->k, i);
        joined = joined && jc->outs[i] != -1;
        if (jc->outs[i] != (joined ? 10 + i : -1) || (run->completed && !joined))
            return sweep_say("k=%u: output %d is %d", run->k, i, jc->outs[i]);
    }
    if (run->completed && (jc->ja.next != NJ || jc->ja.status != 0 || jc->ja.failed != NJ))
        return "complete, but not every task was joined";
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) left registered", run->k, run->wakers_after_drop);
    return sweep_leftovers(rt);
}

static void test_cancel_sweep_join_all_detaches_the_rest(void **state)
{
    (void)state;
    static join_all_case jc;
    weft_sweep_case c = { join_all_build, join_all_check, NULL, &jc };
    sweep_seeds(&c);
}

/* ---- coroutines that own their children ---------------------------------------------------- */

/* Spawns a worker, a function task and a set of workers, and awaits each
 * (a join handle, the function's handle, a join_all) right after
 * spawning it, so the child it awaits is all it owns. With `cancels`,
 * its drop aborts what that child has not joined yet
 * (WEFT_ASYNC_FN_WITH_DROP); without, dropping it detaches them, as
 * dropping the handles does. */
typedef struct boss_case boss_case;

typedef struct boss {
    weft_future base;
    weft_co co;
    boss_case *bc;
    weft_join j, fj, set[2];
    weft_join_all ja;
    bool spawned_j, spawned_fj, spawned_set;
    int v, sum;
} boss;

struct boss_case {
    bool cancels;
    work w, sw[2];
    boss b;
    int out;
    int stopped, fn_never; /* runs whose drop stopped a task; aborted a function early */
};

static void boss_drop(weft_future *f)
{
    boss *self = (boss *)f;
    boss_case *bc = self->bc;
    if (bc->cancels && self->co.awaiting == &self->j.base) {
        bc->w.steps_at_abort = bc->w.steps;
        weft_join_abort(&self->j);
    }
    if (bc->cancels && self->co.awaiting == &self->fj.base)
        weft_join_abort(&self->fj);
    if (bc->cancels && self->co.awaiting == &self->ja.base) {
        for (size_t i = self->ja.next; i < 2; i++)
            bc->sw[i].steps_at_abort = bc->sw[i].steps;
        weft_join_all_abort(&self->ja);
    }
    weft_co_drop(&self->co); /* the awaited child: detached or aborted */
}

WEFT_ASYNC_FN_WITH_DROP(boss, int)
{
    WEFT_FN_BEGIN;
    if (spawn_worker(NULL, &self->bc->w, 2, 7, &self->j) != 0)
        WEFT_FN_RETURN(-1);
    self->spawned_j = true;
    WEFT_FN_AWAIT(&self->j, &self->v);
    self->sum = self->v;
    if (weft_spawn_fn(NULL, triple, &(int){ 2 }, sizeof(int), &self->fj) != 0)
        WEFT_FN_RETURN(-1);
    self->spawned_fj = true;
    WEFT_FN_AWAIT(&self->fj, &self->v);
    self->sum += self->v;
    for (int i = 0; i < 2; i++)
        if (spawn_worker(NULL, &self->bc->sw[i], 1 + i, 1, &self->set[i]) != 0)
            WEFT_FN_RETURN(-1);
    if (weft_join_all_init(&self->ja, self->set, 2, NULL, 0, 0) != 0)
        WEFT_FN_RETURN(-1);
    self->spawned_set = true;
    WEFT_FN_AWAIT(&self->ja, NULL);
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

static int boss_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    boss_case *bc = ctx;
    (void)rt;
    g_fn_runs = 0;
    bc->out = -1;
    work_init(&bc->w);
    work_init(&bc->sw[0]);
    work_init(&bc->sw[1]);
    bc->b = (boss){ WEFT_FN_INIT(boss, WEFT_F_SEND), .bc = bc };
    *fut = &bc->b.base;
    *out = &bc->out;
    return 0;
}

static const char *boss_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    boss_case *bc = ctx;
    boss *b = &bc->b;
    const char *(*judge)(const work *, const char *) =
        bc->cancels ? stopped_by_abort : ran_to_the_end;
    const char *why = NULL;
    if (b->spawned_j)
        why = judge(&bc->w, "the worker");
    for (int i = 0; !why && b->spawned_set && i < 2; i++)
        why = judge(&bc->sw[i], "a worker of the set");
    if (why)
        return why;
    /* Never spawned, never run. A function task runs once, or — aborted
     * before it started — never. */
    if ((!b->spawned_j && bc->w.steps) || g_fn_runs > (int)b->spawned_fj ||
        (!bc->cancels && g_fn_runs != (int)b->spawned_fj))
        return sweep_say("k=%u: the function ran %d times", run->k, g_fn_runs);
    if (run->completed && (bc->out != 13 || g_fn_runs != 1))
        return sweep_say("k=%u: output %d", run->k, bc->out);
    bc->stopped += (b->spawned_j && !bc->w.done) ||
                   (b->spawned_set && (!bc->sw[0].done || !bc->sw[1].done));
    bc->fn_never += b->spawned_fj && g_fn_runs == 0;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) left registered", run->k, run->wakers_after_drop);
    return sweep_leftovers(rt);
}

static void test_cancel_sweep_coroutine_awaiting_joins_detaches_them(void **state)
{
    (void)state;
    static boss_case bc;
    bc.cancels = false;
    weft_sweep_case c = { boss_build, boss_check, NULL, &bc };
    sweep_seeds(&c);
}

static void test_cancel_sweep_coroutine_that_aborts_its_joins_on_drop(void **state)
{
    (void)state;
    static boss_case bc;
    bc.cancels = true;
    weft_sweep_case c = { boss_build, boss_check, NULL, &bc };
    sweep_seeds(&c);
    /* Some drops came while a child was still running, and one before the
     * function task started: the aborts did stop them. */
    assert_true(bc.stopped > 0);
    assert_true(bc.fn_never > 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        T(test_cancel_sweep_join_handle_detaches),
        T(test_cancel_sweep_spawn_fn_task_handle),
        T(test_cancel_sweep_join_all_detaches_the_rest),
        T(test_cancel_sweep_coroutine_awaiting_joins_detaches_them),
        T(test_cancel_sweep_coroutine_that_aborts_its_joins_on_drop),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
