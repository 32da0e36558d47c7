/* Cancel sweeps (weft_cancel_sweep) of the futures of weft/future.h and
 * weft/co.h — weft_yield, weft_ready, weft_poll_fn, an async fn
 * (WEFT_ASYNC_FN) and a hand-written coroutine (weft_co, WEFT_AWAIT) —
 * alone and awaited by a coroutine. Each is dropped after every number of
 * polls, on seeds with chaos on and off, and each run checks what
 * docs/cancel-safety.md promises: nothing is lost, every child is dropped
 * exactly once, no waker is left registered, no task, timer or
 * allocation is left behind. */
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

/* Nothing of the future is left once it was dropped: no waker clone
 * registered anywhere, no wake after the drop, no timer; nothing left on
 * the sim either. */
static const char *nothing_left(weft_rt *rt, const weft_sweep_run *run)
{
    if (run->wakers_after_drop || run->wakes_after_drop || run->timers_after_drop)
        return sweep_say("after the drop at k=%u: %u waker(s), %u wake(s), %u timer(s)",
                         run->k, run->wakers_after_drop, run->wakes_after_drop,
                         (unsigned)run->timers_after_drop);
    return sweep_leftovers(rt);
}

/* Sweeps `c` once with chaos off (one seed: N must be `n`) and over
 * SEEDS seeds with every knob at CHAOS. */
static void sweep_both(const weft_sweep_case *c, uint32_t n)
{
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(c, &o);
    assert_int_equal(res.polls, n);
    assert_int_equal(res.runs, n + 1);
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    res = sweep_pass(c, &o);
    assert_true(res.polls >= n);
}

/* ---- weft_yield ------------------------------------------------------------------------- */

typedef struct yield_case {
    weft_yield y;
} yield_case;

static int yield_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    yield_case *yc = ctx;
    (void)rt, (void)out;
    weft_yield_init(&yc->y);
    *fut = &yc->y.base;
    return 0;
}

static const char *yield_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    (void)ctx;
    return nothing_left(rt, run);
}

static void test_cancel_sweep_yield(void **state)
{
    (void)state;
    static yield_case yc;
    weft_sweep_case c = { yield_build, yield_check, NULL, &yc };
    sweep_both(&c, 2);
}

/* ---- weft_ready ------------------------------------------------------------------------- */

typedef struct ready_case {
    weft_ready r;
    int out;
} ready_case;

static int ready_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    ready_case *rc = ctx;
    (void)rt;
    int v = 99;
    rc->out = -1;
    int err = weft_ready_init(&rc->r, &v, sizeof v);
    *fut = &rc->r.base;
    *out = &rc->out;
    return err;
}

static const char *ready_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    ready_case *rc = ctx;
    /* READY at its first poll, with its value; dropped unpolled, it gave
     * nothing. */
    if (rc->out != (run->completed ? 99 : -1) || run->polls != 1)
        return sweep_say("k=%u: output %d", run->k, rc->out);
    return nothing_left(rt, run);
}

static void test_cancel_sweep_ready(void **state)
{
    (void)state;
    static ready_case rc;
    weft_sweep_case c = { ready_build, ready_check, NULL, &rc };
    sweep_both(&c, 1);
}

/* ---- weft_poll_fn ------------------------------------------------------------------------- */

/* The caller's state a poll_fn works on: its function is READY at its
 * third call, with the calls so far, waking its task before each
 * PENDING. */
typedef struct counter {
    int calls;
} counter;

static weft_poll count_to_three(void *ctx, weft_cx *cx, void *out)
{
    counter *c = ctx;
    if (++c->calls < 3) {
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    *(int *)out = c->calls;
    return WEFT_READY;
}

typedef struct poll_fn_case {
    counter cnt;
    weft_poll_fn pf;
    int out;
} poll_fn_case;

static int poll_fn_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    poll_fn_case *pc = ctx;
    (void)rt;
    pc->cnt.calls = 0;
    pc->out = -1;
    int err = weft_poll_fn_init(&pc->pf, count_to_three, &pc->cnt, sizeof(int), WEFT_F_SEND);
    *fut = &pc->pf.base;
    *out = &pc->out;
    return err;
}

static const char *poll_fn_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    poll_fn_case *pc = ctx;
    /* One call per poll, none at the drop: the caller's state is as the
     * k-th call left it. */
    if (pc->cnt.calls != (int)run->k)
        return sweep_say("k=%u: %d calls", run->k, pc->cnt.calls);
    if (pc->out != (run->completed ? 3 : -1))
        return sweep_say("k=%u: output %d", run->k, pc->out);
    return nothing_left(rt, run);
}

static void test_cancel_sweep_poll_fn(void **state)
{
    (void)state;
    static poll_fn_case pc;
    weft_sweep_case c = { poll_fn_build, poll_fn_check, NULL, &pc };
    sweep_both(&c, 3);
}

/* ---- coroutines ------------------------------------------------------------------------- */

/* What the coroutines below did: children started and dropped, and how
 * far they got. */
typedef struct tally {
    int started, dropped; /* children (`child` below) */
    int finished;         /* children that completed */
    int step;             /* awaits the outer coroutine came back from */
} tally;

/* An async fn child: yields (a library await point), then answers 1. Its
 * drop is counted: it must run exactly once per child started. */
typedef struct child {
    weft_future base;
    weft_co co;
    weft_yield y;
    tally *t;
} child;

static void child_drop(weft_future *f)
{
    child *self = (child *)f;
    self->t->dropped++;
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_WITH_DROP(child, int)
{
    WEFT_FN_BEGIN;
    weft_yield_init(&self->y);
    WEFT_FN_AWAIT(&self->y, NULL);
    self->t->finished++;
    WEFT_FN_RETURN(1);
    WEFT_FN_END;
}

static void child_start(child *c, tally *t)
{
    *c = (child){ WEFT_FN_INIT(child, WEFT_F_SEND), .t = t };
    t->started++;
}

/* An async fn awaiting each future of future.h and co.h in turn: a
 * yield, a ready, a poll_fn, two async fn children. Output: the sum of
 * what they gave (99 + 3 + 1 + 1). */
typedef struct tour {
    weft_future base;
    weft_co co;
    weft_yield y;
    weft_ready r;
    weft_poll_fn pf;
    counter cnt;
    child c;
    tally *t;
    int v, sum, i;
} tour;

WEFT_ASYNC_FN(tour, int)
{
    WEFT_FN_BEGIN;
    weft_yield_init(&self->y);
    WEFT_FN_AWAIT(&self->y, NULL);
    self->t->step++;
    self->v = 99;
    if (weft_ready_init(&self->r, &self->v, sizeof self->v) != 0)
        WEFT_FN_RETURN(-1);
    WEFT_FN_AWAIT(&self->r, &self->sum);
    self->t->step++;
    if (weft_poll_fn_init(&self->pf, count_to_three, &self->cnt, sizeof(int), WEFT_F_SEND) != 0)
        WEFT_FN_RETURN(-1);
    WEFT_FN_AWAIT(&self->pf, &self->v);
    self->sum += self->v;
    self->t->step++;
    for (self->i = 0; self->i < 2; self->i++) {
        child_start(&self->c, self->t);
        WEFT_FN_AWAIT(&self->c, &self->v);
        self->sum += self->v;
        self->t->step++;
    }
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

/* The same children in the hand-written register: a poll function with
 * WEFT_CO_BEGIN / WEFT_AWAIT, and a drop that drops the awaited child
 * (weft_co_drop). */
typedef struct hand {
    weft_future base;
    weft_co co;
    child c;
    tally *t;
    int v, sum, i;
} hand;

static weft_poll hand_poll(weft_future *f, weft_cx *cx, void *out)
{
    hand *h = (hand *)f;
    WEFT_CO_BEGIN(&h->co);
    for (h->i = 0; h->i < 3; h->i++) {
        child_start(&h->c, h->t);
        WEFT_AWAIT(&h->co, cx, &h->c.base, &h->v);
        h->sum += h->v;
        h->t->step++;
    }
    *(int *)out = h->sum;
    WEFT_CO_RETURN(&h->co);
    WEFT_CO_END(&h->co);
}

static void hand_drop(weft_future *f)
{
    weft_co_drop(&((hand *)f)->co);
}

static const weft_future_ops hand_ops = {
    .name = "hand", .out_size = sizeof(int), .poll = hand_poll, .drop = hand_drop,
};

typedef struct co_case {
    bool by_hand;
    tally t;
    tour tr;
    hand h;
    int out;
} co_case;

static int co_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    co_case *cc = ctx;
    (void)rt;
    memset(&cc->t, 0, sizeof cc->t);
    cc->out = -1;
    if (cc->by_hand) {
        cc->h = (hand){ WEFT_FUTURE_INIT(&hand_ops, WEFT_F_SEND), WEFT_CO_INIT, .t = &cc->t };
        *fut = &cc->h.base;
    } else {
        cc->tr = (tour){ WEFT_FN_INIT(tour, WEFT_F_SEND), .t = &cc->t };
        *fut = &cc->tr.base;
    }
    *out = &cc->out;
    return 0;
}

static const char *co_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    co_case *cc = ctx;
    tally *t = &cc->t;
    /* Every child started was dropped exactly once: by the await that saw
     * it READY, or by the coroutine's drop. */
    if (t->dropped != t->started)
        return sweep_say("k=%u: %d children started, %d dropped", run->k, t->started, t->dropped);
    /* What ran before the drop happened; nothing after it. A child may
     * have finished in the poll the coroutine was dropped after. */
    int steps = cc->by_hand ? 3 : 5;
    if (run->completed ? (t->step != steps || cc->out != (cc->by_hand ? 3 : 104))
                       : (t->step >= steps || cc->out != -1))
        return sweep_say("k=%u: %d steps, output %d", run->k, t->step, cc->out);
    /* A child finishes in the poll its await comes back from. */
    int finished = cc->by_hand ? t->step : (t->step > 3 ? t->step - 3 : 0);
    if (t->finished != finished)
        return sweep_say("k=%u: %d children finished", run->k, t->finished);
    return nothing_left(rt, run);
}

static void test_cancel_sweep_async_fn_awaiting_each_future(void **state)
{
    (void)state;
    static co_case cc;
    cc.by_hand = false;
    weft_sweep_case c = { co_build, co_check, NULL, &cc };
    /* Poll 1 ends at the yield; 2 gets past it and the ready (READY at
     * once) to the poll_fn's first call; 3 and 4 make its other two, and
     * 4 goes on to the first child's yield; 5 and 6 finish a child each,
     * and 6 completes. */
    sweep_both(&c, 6);
}

static void test_cancel_sweep_hand_written_coroutine(void **state)
{
    (void)state;
    static co_case cc;
    cc.by_hand = true;
    weft_sweep_case c = { co_build, co_check, NULL, &cc };
    /* Polls 1..3 end at each child's yield; 4 completes. */
    sweep_both(&c, 4);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        T(test_cancel_sweep_yield),
        T(test_cancel_sweep_ready),
        T(test_cancel_sweep_poll_fn),
        T(test_cancel_sweep_async_fn_awaiting_each_future),
        T(test_cancel_sweep_hand_written_coroutine),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
