/* Unit tests for core/co.c and the async fn macros of weft/co.h:
 * WEFT_ASYNC_FN and its variants (no output, user-written drop), the ops
 * they generate, WEFT_FN_INIT, awaiting children, drops while suspended,
 * the misuse the macros catch at run time (an async fn with an output
 * falling off its end, an await inside a switch of the user's own, for the
 * WEFT_CO_* register too, a user drop that forgets the awaited child), and
 * weft_poll_fn awaited and spawned.
 *
 * Most cases poll by hand on the test thread. The runtime cases get a
 * fresh two-worker runtime and a counting allocator, and teardown checks
 * that every allocation came back after shutdown. What must not compile is
 * checked by the compile_fail_* tests (tests/compile_fail/). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdatomic.h>

#include "weft/weft.h"
#include "support/co_future.h"
#include "support/countdown.h"
#include "support/counting_waker.h"
#include "support/misuse_capture.h"
#include "support/rt_fixture.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A context for polling by hand, waking the counting waker `c`. */
typedef struct hand {
    counting_waker c;
    weft_waker w;
    weft_cx cx;
} hand;

static void hand_init(hand *h)
{
    cw_init(&h->c);
    h->w = cw_waker(&h->c);
    weft_cx_init(&h->cx, &h->w);
}

/* Polls `f` by hand `n` times, each PENDING. */
static void poll_pending(hand *h, weft_future *f, void *out, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(weft_future_poll(f, &h->cx, out), WEFT_PENDING);
}

/* Polls `f` by hand once, READY. */
static void poll_ready(hand *h, weft_future *f, void *out)
{
    assert_int_equal(weft_future_poll(f, &h->cx, out), WEFT_READY);
}

/* Polls `f` by hand until READY; returns how many polls were PENDING,
 * failing the test once they reach `limit`. */
static int poll_until_ready(hand *h, weft_future *f, void *out, int limit)
{
    int pendings = 0;
    while (weft_future_poll(f, &h->cx, out) == WEFT_PENDING) {
        pendings++;
        assert_true(pendings < limit);
    }
    return pendings;
}

/* Drops the finished coroutine future `f` (its coroutine `co`): it had
 * reached its end, and every clone of the hand waker came back. */
static void drop_finished(hand *h, weft_future *f, const weft_co *co)
{
    assert_int_equal(co->line, WEFT__CO_DONE);
    weft_future_drop(f);
    assert_int_equal(h->c.clones, h->c.drops);
}

/* rt_teardown that also fails the test on a misuse report it did not
 * expect (one it expected, it reset). */
static int rt_teardown_no_misuse(void **state)
{
    int rc = rt_teardown(state);
    if (misuse_count() != 0) {
        print_error("unexpected misuse report: %s\n", g_misuse_msg);
        rc = -1;
    }
    return rc;
}

/* Spawns `f` (`size` bytes) on g_rt and waits for it from the test
 * thread: the task ran and its output is in `out`. */
static void spawn_and_join(weft_future *f, size_t size, void *out, size_t out_size)
{
    assert_int_equal(spawn_blocking(g_rt, f, size, out, out_size), 0);
}

/* ---- the async fns under test -------------------------------------------------- */

/* Yields once, then returns n. */
typedef struct answer {
    weft_future base;
    weft_co co;
    int n;
    int starts; /* times the body ran from its beginning */
} answer;

WEFT_ASYNC_FN(answer, int)
{
    WEFT_FN_BEGIN;
    self->starts++;
    WEFT_FN_YIELD;
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

/* Usable as a static initialiser (address constant + integer constants). */
static answer g_static_answer = { WEFT_FN_INIT(answer, WEFT_F_SEND | 0xffff0000u), .n = 9 };

/* Awaits a hand-written child and a nested async fn, each into a field of
 * its own struct, then returns a struct built from both. */
typedef struct pair {
    int a;
    long b;
} pair;

typedef struct parent {
    weft_future base;
    weft_co co;
    countdown cd;
    answer ans;
    weft_yield y;
    countdown_counts ncd;
    int got_cd, got_ans;
} parent;

WEFT_ASYNC_FN(parent, pair)
{
    WEFT_FN_BEGIN;
    countdown_init(&self->cd, 2, 7, &self->ncd, WEFT_F_SEND);
    WEFT_FN_AWAIT(&self->cd, &self->got_cd);
    self->ans = (answer){ WEFT_FN_INIT(answer, WEFT_F_SEND), .n = 35 };
    WEFT_FN_AWAIT(&self->ans, &self->got_ans);
    weft_yield_init(&self->y);
    WEFT_FN_AWAIT(&self->y, NULL); /* no output */
    WEFT_FN_RETURN((pair){ .a = self->got_cd, .b = self->got_cd + self->got_ans });
    WEFT_FN_END;
}

/* No output: adds 1 to *counter after a yield, then 10 more unless told to
 * return early; finishes by WEFT_FN_RETURN_VOID or by falling off the end. */
typedef struct tick {
    weft_future base;
    weft_co co;
    weft_yield y;
    int *counter;
    bool early;
} tick;

WEFT_ASYNC_FN_VOID(tick)
{
    WEFT_FN_BEGIN;
    weft_yield_init(&self->y);
    WEFT_FN_AWAIT(&self->y, NULL);
    (*self->counter)++;
    if (self->early)
        WEFT_FN_RETURN_VOID;
    *self->counter += 10;
    WEFT_FN_END;
}

/* Owns two children and awaits them one after the other: while it awaits
 * `a`, `b` is alive but not awaited, so its own drop releases `b`. */
typedef struct both {
    weft_future base;
    weft_co co;
    countdown a, b;
    countdown_counts na, nb;
    int got_a, got_b;
} both;

static void both_drop(weft_future *f)
{
    DOWNCAST(both, self);
    bool b_alive_not_awaited = self->co.awaiting == &self->a.base;
    weft_co_drop(&self->co); /* the awaited child, if any */
    if (b_alive_not_awaited)
        weft_future_drop(&self->b.base);
}

WEFT_ASYNC_FN_WITH_DROP(both, int)
{
    WEFT_FN_BEGIN;
    countdown_init(&self->a, 1, 1, &self->na, WEFT_F_SEND);
    countdown_init(&self->b, 1, 2, &self->nb, WEFT_F_SEND);
    WEFT_FN_AWAIT(&self->a, &self->got_a);
    WEFT_FN_AWAIT(&self->b, &self->got_b);
    WEFT_FN_RETURN(self->got_a + self->got_b);
    WEFT_FN_END;
}

/* The void variant with a user drop: counts its drops. */
typedef struct watched {
    weft_future base;
    weft_co co;
    countdown c;
    countdown_counts nc;
    int got;
    int drops;
} watched;

static void watched_drop(weft_future *f)
{
    DOWNCAST(watched, self);
    self->drops++;
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_VOID_WITH_DROP(watched)
{
    WEFT_FN_BEGIN;
    countdown_init(&self->c, 1, 0, &self->nc, WEFT_F_SEND);
    WEFT_FN_AWAIT(&self->c, &self->got);
    WEFT_FN_END;
}

/* ---- fork-join under a runtime: fib with two join handles ------------------------ */

#define FIB_FAILED (-1000000L)

typedef struct fib {
    weft_future base;
    weft_co co;
    int n;
    weft_join left, right;
    long l, r;
} fib;

/* Stops the child task behind `j` (not just detaches it) and drops the
 * handle. */
static void join_abort_drop(weft_join *j)
{
    weft_join_abort(j);
    weft_future_drop(&j->base);
}

/* While awaiting `left`, `right` is alive but not awaited: ours to stop
 * and drop. Children are aborted (not just detached) so a cancelled tree
 * stops. */
static void fib_drop(weft_future *f)
{
    DOWNCAST(fib, self);
    bool right_alive_not_awaited = self->co.awaiting == &self->left.base;
    if (self->co.awaiting)
        weft_join_abort((weft_join *)self->co.awaiting);
    weft_co_drop(&self->co);
    if (right_alive_not_awaited)
        join_abort_drop(&self->right);
}

WEFT_ASYNC_FN_WITH_DROP(fib, long)
{
    WEFT_FN_BEGIN;
    if (self->n < 2)
        WEFT_FN_RETURN(self->n);
    if (weft_spawn(NULL, &(fib){ WEFT_FN_INIT(fib, WEFT_F_SEND), .n = self->n - 1 }.base,
                   sizeof(fib), &self->left) != 0)
        WEFT_FN_RETURN(FIB_FAILED);
    if (weft_spawn(NULL, &(fib){ WEFT_FN_INIT(fib, WEFT_F_SEND), .n = self->n - 2 }.base,
                   sizeof(fib), &self->right) != 0) {
        join_abort_drop(&self->left);
        WEFT_FN_RETURN(FIB_FAILED);
    }
    WEFT_FN_AWAIT(&self->left, &self->l);
    WEFT_FN_AWAIT(&self->right, &self->r);
    if (self->left.status != 0 || self->right.status != 0 || self->l == FIB_FAILED ||
        self->r == FIB_FAILED)
        WEFT_FN_RETURN(FIB_FAILED);
    WEFT_FN_RETURN(self->l + self->r);
    WEFT_FN_END;
}

static long fib_ref(int n)
{
    return n < 2 ? n : fib_ref(n - 1) + fib_ref(n - 2);
}

/* ---- weft_poll_fn helpers --------------------------------------------------------- */

/* PENDING (waking the task) until polled `ready_at` times, then READY with
 * `value`. Shared with a worker in the runtime cases, hence the atomic. */
typedef struct gate {
    atomic_int polls;
    int ready_at;
    int value;
} gate;

static weft_poll gate_poll(void *ctx, weft_cx *cx, void *out)
{
    gate *g = ctx;
    /* Relaxed: one poll at a time; the test reads it after the join. */
    int n = atomic_fetch_add_explicit(&g->polls, 1, memory_order_relaxed) + 1;
    if (n < g->ready_at) {
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    *(int *)out = g->value;
    return WEFT_READY;
}

static void gate_init(gate *g, int ready_at, int value)
{
    atomic_init(&g->polls, 0);
    g->ready_at = ready_at;
    g->value = value;
}

typedef struct via_poll_fn {
    weft_future base;
    weft_co co;
    weft_poll_fn pf;
    gate *g;
    int got;
} via_poll_fn;

WEFT_ASYNC_FN(via_poll_fn, int)
{
    WEFT_FN_BEGIN;
    if (weft_poll_fn_init(&self->pf, gate_poll, self->g, sizeof(int), WEFT_F_SEND) != 0)
        WEFT_FN_RETURN(-1);
    WEFT_FN_AWAIT(&self->pf, &self->got);
    WEFT_FN_RETURN(self->got * 2);
    WEFT_FN_END;
}

/* ---- async fn: yield and return ----------------------------------------------------- */

static void test_async_fn_yields_once_then_returns_its_value(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    answer a = { WEFT_FN_INIT(answer, WEFT_F_SEND), .n = 42 };
    int out = 0;

    poll_pending(&h, &a.base, &out, 1);
    assert_int_equal(cw_woken(&h.c), 1); /* the yield woke the task */
    assert_int_equal(out, 0);
    poll_ready(&h, &a.base, &out);
    assert_int_equal(out, 42);
    assert_int_equal(a.starts, 1); /* resumed after the yield, not restarted */
    assert_int_equal(cw_woken(&h.c), 1);
    drop_finished(&h, &a.base, &a.co);
}

static void test_async_fn_runs_as_a_spawned_task_and_under_block_on(void **state)
{
    (void)state;
    int out = 0;
    spawn_and_join(&(answer){ WEFT_FN_INIT(answer, WEFT_F_SEND), .n = 42 }.base, sizeof(answer),
                   &out, sizeof out);
    assert_int_equal(out, 42);

    /* block_on polls the async fn in place on this thread. */
    answer a = { WEFT_FN_INIT(answer, 0), .n = 7 };
    out = 0;
    assert_int_equal(weft_block_on(g_rt, &a.base, &out, sizeof out), 0);
    assert_int_equal(out, 7);
    assert_int_equal(a.starts, 1);
}

/* ---- awaiting children ----------------------------------------------------------- */

static void test_async_fn_awaits_children_into_struct_fields(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    parent *p = test_malloc(sizeof *p);
    *p = (parent){ WEFT_FN_INIT(parent, WEFT_F_SEND) };
    pair out = { 0, 0 };
    /* countdown: 2 PENDING; nested answer: 1 (its yield); weft_yield: 1. */
    assert_int_equal(poll_until_ready(&h, &p->base, &out, 100), 4);
    assert_int_equal(cw_woken(&h.c), 4);
    assert_int_equal(p->got_cd, 7);
    assert_int_equal(p->got_ans, 35);
    assert_int_equal(out.a, 7);
    assert_int_equal(out.b, 42);
    assert_int_equal(p->ncd.polls, 3);
    assert_int_equal(p->ncd.drops, 1); /* dropped once READY */
    assert_null(p->co.awaiting);
    weft_future_drop(&p->base);
    assert_int_equal(p->ncd.drops, 1); /* not again */
    test_free(p);
}

/* Starts `*p` afresh and polls it `polls` times, each PENDING, after which
 * it awaits the nested async fn (`on_answer`: the countdown is already
 * dropped) or the countdown. Dropping it then drops the countdown once and
 * leaves nothing awaited. */
static void drop_parent_suspended(hand *h, parent *p, int polls, bool on_answer)
{
    pair out;
    *p = (parent){ WEFT_FN_INIT(parent, WEFT_F_SEND) };
    poll_pending(h, &p->base, &out, polls);
    assert_ptr_equal(p->co.awaiting, on_answer ? &p->ans.base : &p->cd.base);
    if (on_answer)
        assert_int_equal(p->ncd.drops, 1);
    weft_future_drop(&p->base);
    assert_int_equal(p->ncd.drops, 1);
    assert_null(p->co.awaiting);
}

static void test_async_fn_dropped_while_suspended_drops_the_awaited_child_once(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    parent *p = test_malloc(sizeof *p);

    /* Suspended on the hand-written child. */
    drop_parent_suspended(&h, p, 1, false);

    /* Suspended on the nested async fn (the countdown already dropped):
     * dropping the parent drops the nested fn, which owns nothing more. */
    drop_parent_suspended(&h, p, 3, true);

    /* Never polled: nothing awaited, nothing dropped. */
    *p = (parent){ WEFT_FN_INIT(parent, WEFT_F_SEND) };
    weft_future_drop(&p->base);
    assert_int_equal(p->ncd.drops, 0);
    test_free(p);
}

/* ---- the void variant ------------------------------------------------------------- */

/* Runs a fresh tick (`early` or not) on `counter`: PENDING (its yield),
 * then READY. */
static void run_tick(hand *h, tick *t, int *counter, bool early)
{
    *t = (tick){ WEFT_FN_INIT(tick, WEFT_F_SEND), .counter = counter, .early = early };
    poll_pending(h, &t->base, NULL, 1);
    poll_ready(h, &t->base, NULL);
}

static void test_async_fn_void_finishes_by_return_or_by_falling_off_the_end(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    int counter = 0;

    tick t = { WEFT_FN_INIT(tick, WEFT_F_SEND) };
    assert_int_equal(weft_future_out_size(&t.base), 0);
    run_tick(&h, &t, &counter, true);
    assert_int_equal(counter, 1);
    weft_future_drop(&t.base);

    /* Falling off the end of a function without an output is READY. */
    counter = 0;
    run_tick(&h, &t, &counter, false);
    assert_int_equal(counter, 11);
    drop_finished(&h, &t.base, &t.co);
}

/* ---- a user-written drop ------------------------------------------------------------ */

/* Each child of `b` has been dropped exactly once. */
static void assert_both_children_dropped_once(const both *b)
{
    assert_int_equal(b->na.drops, 1);
    assert_int_equal(b->nb.drops, 1);
}

static void test_async_fn_with_drop_drops_each_child_once_wherever_it_stops(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    both *b = test_malloc(sizeof *b);
    int out = 0;

    /* Never polled: the children do not exist yet. */
    *b = (both){ WEFT_FN_INIT(both, WEFT_F_SEND) };
    weft_future_drop(&b->base);
    assert_int_equal(b->na.drops + b->nb.drops, 0);

    /* Suspended on `a`: weft_co_drop drops `a`, the user drop drops `b`. */
    *b = (both){ WEFT_FN_INIT(both, WEFT_F_SEND) };
    poll_pending(&h, &b->base, &out, 1);
    assert_ptr_equal(b->co.awaiting, &b->a.base);
    weft_future_drop(&b->base);
    assert_both_children_dropped_once(b);

    /* Suspended on `b`: `a` was dropped by its await; `b` goes once. */
    *b = (both){ WEFT_FN_INIT(both, WEFT_F_SEND) };
    poll_pending(&h, &b->base, &out, 2);
    assert_ptr_equal(b->co.awaiting, &b->b.base);
    assert_int_equal(b->na.drops, 1);
    weft_future_drop(&b->base);
    assert_both_children_dropped_once(b);

    /* Run to the end, then dropped: nothing twice. */
    *b = (both){ WEFT_FN_INIT(both, WEFT_F_SEND) };
    (void)poll_until_ready(&h, &b->base, &out, INT_MAX);
    assert_int_equal(out, 3);
    assert_both_children_dropped_once(b);
    weft_future_drop(&b->base);
    assert_both_children_dropped_once(b);
    test_free(b);

    /* The void variant calls its user drop exactly once. */
    watched w = { WEFT_FN_INIT(watched, WEFT_F_SEND) };
    poll_pending(&h, &w.base, NULL, 1);
    weft_future_drop(&w.base);
    assert_int_equal(w.drops, 1);
    assert_int_equal(w.nc.drops, 1);
}

static void test_fib_with_two_join_handles_runs_and_cancels_without_leaks(void **state)
{
    (void)state;
    long out = 0;
    spawn_and_join(&(fib){ WEFT_FN_INIT(fib, WEFT_F_SEND), .n = 15 }.base, sizeof(fib), &out,
                   sizeof out);
    assert_int_equal(out, fib_ref(15));

    /* Aborted at once: the root's drop aborts and drops its children, whose
     * drops do the same; teardown checks that nothing leaked. */
    weft_join join;
    assert_int_equal(weft_spawn(g_rt, &(fib){ WEFT_FN_INIT(fib, WEFT_F_SEND), .n = 20 }.base,
                                sizeof(fib), &join),
                     0);
    weft_join_abort(&join);
    out = 0;
    int status = join_blocking(g_rt, &join, &out, sizeof out);
    if (status == 0)
        assert_int_equal(out, fib_ref(20)); /* finished before the abort landed */
    else
        assert_int_equal(status, -ECANCELED);
}

/* ---- misuse caught at run time --------------------------------------------------------- */

/* Has an output but reaches WEFT_FN_END without WEFT_FN_RETURN. */
typedef struct forgetful {
    weft_future base;
    weft_co co;
    weft_yield y;
    int ends;
} forgetful;

WEFT_ASYNC_FN(forgetful, int)
{
    WEFT_FN_BEGIN;
    weft_yield_init(&self->y);
    WEFT_FN_AWAIT(&self->y, NULL);
    self->ends++;
    WEFT_FN_END;
}

/* Awaits inside a switch of its own when mode is 1: as an async fn
 * (switcher_ops) and, with the same struct, in the WEFT_CO_* register
 * (old_switcher_ops). */
typedef struct switcher {
    weft_future base;
    weft_co co;
    int mode;
    countdown c;
    countdown_counts nc;
    int got;
} switcher;

WEFT_ASYNC_FN(switcher, int)
{
    WEFT_FN_BEGIN;
    countdown_init(&self->c, 1, 5, &self->nc, WEFT_F_SEND);
    switch (self->mode) {
    case 1:
        WEFT_FN_AWAIT(&self->c, &self->got);
        break;
    default:
        break;
    }
    WEFT_FN_RETURN(self->got);
    WEFT_FN_END;
}

/* The same mistake in the WEFT_CO_* register. */
typedef switcher old_switcher;

static weft_poll old_switcher_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(old_switcher, s);
    countdown_init(&s->c, 1, 5, &s->nc, WEFT_F_SEND);
    switch (s->mode) {
    case 1:
        WEFT_AWAIT(&s->co, cx, &s->c.base, &s->got);
        break;
    default:
        break;
    }
    *(int *)out = s->got;
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(old_switcher, "test_old_switcher", sizeof(int));

/* A user drop that forgets weft_co_drop (reported in debug builds only). */
typedef struct leaky {
    weft_future base;
    weft_co co;
    countdown c;
    countdown_counts nc;
    int got;
} leaky;

static void leaky_drop(weft_future *f)
{
    (void)f; /* should have called weft_co_drop(&self->co) */
}

WEFT_ASYNC_FN_VOID_WITH_DROP(leaky)
{
    WEFT_FN_BEGIN;
    countdown_init(&self->c, 5, 0, &self->nc, WEFT_F_SEND);
    WEFT_FN_AWAIT(&self->c, &self->got);
    WEFT_FN_END;
}

/* Starts a test of the misuse reports, polling by hand with `h`. Release
 * builds make no misuse reports: the test is skipped there. */
static void start_misuse_test(hand *h)
{
#ifdef NDEBUG
    skip();
#endif
    hand_init(h);
}

/* The first poll of a misused coroutine `f` suspends it (PENDING) and
 * reports nothing yet: the misuse shows when it resumes. */
static void suspend_unreported(hand *h, weft_future *f, int *out)
{
    poll_pending(h, f, out, 1);
    assert_int_equal(misuse_count(), 0);
}

/* Debug builds made their `n`th misuse report about the refused
 * coroutine `name`, saying `what`. */
static void assert_refusal_reported(int n, const char *name, const char *what)
{
    assert_true(misuse_reported(n, name));
    assert_true(misuse_last_contains(what));
}

/* A forgetful that already suspended once: polled again it runs to
 * WEFT_FN_END at most once, and the poll is refused (PENDING, no output). */
static void forgetful_refused(hand *h, forgetful *f, int *out)
{
    poll_pending(h, &f->base, out, 1);
    assert_int_equal(f->ends, 1);
    assert_int_equal(*out, -1);
}

/* A switcher in mode 1 that suspended on its child: polled again, it
 * resumes inside the user's switch and is refused: the child is not
 * polled, no output. */
static void switcher_refused(hand *h, switcher *s, int *out)
{
    poll_pending(h, &s->base, out, 1);
    assert_int_equal(s->nc.polls, 1);
    assert_int_equal(*out, -1);
}

/* A refused switcher is still suspended on its child: dropping it drops
 * the child, once. */
static void drop_refused_switcher(switcher *s)
{
    weft_future_drop(&s->base);
    assert_int_equal(s->nc.drops, 1);
}

static void test_async_fn_with_output_falling_off_the_end_is_reported_and_refused(void **state)
{
    (void)state;
    hand h;
    start_misuse_test(&h);
    forgetful f = { WEFT_FN_INIT(forgetful, WEFT_F_SEND) };
    int out = -1;
    suspend_unreported(&h, &f.base, &out);

    /* The body runs to WEFT_FN_END: refused, reported by name. */
    forgetful_refused(&h, &f, &out);
    assert_refusal_reported(1, "'forgetful'", "WEFT_FN_RETURN");

    /* Refused for good: the body does not run again. */
    forgetful_refused(&h, &f, &out);
    assert_true(misuse_reported(2, "'forgetful'"));
    weft_future_drop(&f.base);
}

static void test_await_inside_a_user_switch_is_reported_on_resume_and_refused(void **state)
{
    (void)state;
    hand h;
    start_misuse_test(&h);
    switcher s = { WEFT_FN_INIT(switcher, WEFT_F_SEND), .mode = 1, .got = -1 };
    int out = -1;
    suspend_unreported(&h, &s.base, &out);
    assert_int_equal(s.nc.polls, 1);

    /* The resume point is a case of the user's switch, not of the
     * coroutine's: reported by name, the child is not polled, no READY. */
    switcher_refused(&h, &s, &out);
    assert_refusal_reported(1, "'switcher'", "not an await point");
    assert_true(misuse_last_contains("switch"));

    /* Still suspended on the child: dropping drops it, once. */
    drop_refused_switcher(&s);

    /* Without the await taken, the same function runs normally. */
    s = (switcher){ WEFT_FN_INIT(switcher, WEFT_F_SEND), .mode = 0, .got = 3 };
    poll_ready(&h, &s.base, &out);
    assert_int_equal(out, 3);
    weft_future_drop(&s.base);
    assert_int_equal(misuse_count(), 1);
}

static void test_co_await_inside_a_user_switch_is_reported_on_resume_and_refused(void **state)
{
    (void)state;
    hand h;
    start_misuse_test(&h);
    old_switcher s = { .base = WEFT_FUTURE_INIT(&old_switcher_ops, WEFT_F_SEND),
                       .co = WEFT_CO_INIT, .mode = 1, .got = -1 };
    int out = -1;
    suspend_unreported(&h, &s.base, &out);
    switcher_refused(&h, &s, &out);
    /* The WEFT_CO_* register does not know the future's name: the report
     * names the poll function. */
    assert_refusal_reported(1, "old_switcher_poll", "not an await point");
    drop_refused_switcher(&s);
}

static void test_user_drop_that_forgets_the_awaited_child_is_reported(void **state)
{
    (void)state;
    hand h;
    start_misuse_test(&h);
    leaky l = { WEFT_FN_INIT(leaky, WEFT_F_SEND) };
    poll_pending(&h, &l.base, NULL, 1);
    weft_future_drop(&l.base);
    assert_refusal_reported(1, "'leaky'", "weft_co_drop");
    /* Reported, not dropped behind the user's back. */
    assert_int_equal(l.nc.drops, 0);
    weft_co_drop(&l.co);
    assert_int_equal(l.nc.drops, 1);
}

/* The refusals do not depend on the report: release builds (NDEBUG, no
 * misuse reports) refuse the same polls. */
static void test_misused_coroutines_are_refused_in_every_build(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    int out = -1;

    forgetful f = { WEFT_FN_INIT(forgetful, WEFT_F_SEND) };
    poll_pending(&h, &f.base, &out, 2);
    forgetful_refused(&h, &f, &out);
    weft_future_drop(&f.base);

    switcher s = { WEFT_FN_INIT(switcher, WEFT_F_SEND), .mode = 1, .got = -1 };
    poll_pending(&h, &s.base, &out, 1);
    switcher_refused(&h, &s, &out);
    drop_refused_switcher(&s);

    old_switcher o = { .base = WEFT_FUTURE_INIT(&old_switcher_ops, WEFT_F_SEND),
                       .co = WEFT_CO_INIT, .mode = 1, .got = -1 };
    poll_pending(&h, &o.base, &out, 1);
    switcher_refused(&h, &o, &out);
    drop_refused_switcher(&o);

    /* Debug builds reported each refusal; release builds report nothing. */
    assert_true(misuse_reported(4, "old_switcher_poll"));
}

/* ---- weft_poll_fn ---------------------------------------------------------------------- */

static void test_poll_fn_awaited_inside_an_async_fn(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    gate g;
    gate_init(&g, 3, 21);
    via_poll_fn v = { WEFT_FN_INIT(via_poll_fn, WEFT_F_SEND), .g = &g };
    int out = 0;
    poll_pending(&h, &v.base, &out, 1);
    assert_ptr_equal(v.co.awaiting, &v.pf.base);
    assert_int_equal(weft_future_out_size(&v.pf.base), sizeof(int));
    assert_string_equal(v.pf.base.ops->name, "weft_poll_fn");
    poll_pending(&h, &v.base, &out, 1);
    poll_ready(&h, &v.base, &out);
    assert_int_equal(atomic_load(&g.polls), 3);
    assert_int_equal(cw_woken(&h.c), 2);
    assert_int_equal(v.got, 21);
    assert_int_equal(out, 42);
    weft_future_drop(&v.base);

    /* Dropped while awaiting it: nothing of the gate is touched. */
    gate_init(&g, 3, 21);
    v = (via_poll_fn){ WEFT_FN_INIT(via_poll_fn, WEFT_F_SEND), .g = &g };
    poll_pending(&h, &v.base, &out, 1);
    weft_future_drop(&v.base);
    assert_null(v.co.awaiting);
    assert_int_equal(atomic_load(&g.polls), 1);
}

static void test_poll_fn_runs_as_a_spawned_task_and_in_an_async_fn_task(void **state)
{
    (void)state;
    gate g;
    gate_init(&g, 4, 99);
    weft_poll_fn pf;
    assert_int_equal(weft_poll_fn_init(&pf, gate_poll, &g, sizeof(int), WEFT_F_SEND), 0);
    int out = 0;
    spawn_and_join(&pf.base, sizeof pf, &out, sizeof out);
    assert_int_equal(out, 99);
    assert_int_equal(atomic_load(&g.polls), 4);

    /* Not Send: weft_spawn refuses it, and the caller still owns it. */
    weft_join join;
    assert_int_equal(weft_poll_fn_init(&pf, gate_poll, &g, sizeof(int), 0), 0);
    assert_int_equal(weft_spawn(g_rt, &pf.base, sizeof pf, &join), -EPERM);
    assert_true(misuse_reported(1, "weft_poll_fn")); /* debug builds name it */
    weft_future_drop(&pf.base);
    misuse_reset();

    /* An async fn awaiting a poll_fn, as a task. */
    gate_init(&g, 2, 8);
    out = 0;
    (void)spawn_blocking(g_rt,
                         &(via_poll_fn){ WEFT_FN_INIT(via_poll_fn, WEFT_F_SEND), .g = &g }.base,
                         sizeof(via_poll_fn), &out, sizeof out);
    assert_int_equal(out, 16);
}

static void test_poll_fn_init_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_poll_fn pf;
    gate g;
    gate_init(&g, 1, 1);
    assert_int_equal(weft_poll_fn_init(NULL, gate_poll, &g, sizeof(int), 0), -EINVAL);
    assert_int_equal(weft_poll_fn_init(&pf, NULL, &g, sizeof(int), 0), -EINVAL);
    assert_int_equal(weft_poll_fn_init(&pf, gate_poll, &g, WEFT_OUT_SIZE_VARIES, 0),
                     -EINVAL);
    /* A NULL ctx is the caller's business; flags keep only the user bits. */
    assert_int_equal(weft_poll_fn_init(&pf, gate_poll, NULL, 0, 0xffffffffu), 0);
    assert_int_equal(pf.base.flags, WEFT_F_USER_MASK);
    assert_int_equal(weft_future_out_size(&pf.base), 0);
    weft_future_drop(&pf.base);
}

/* ---- generated ops and the initialiser ----------------------------------------------- */

static void test_generated_ops_carry_the_type_name_and_output_size(void **state)
{
    (void)state;
    assert_string_equal(answer_ops.name, "answer");
    assert_int_equal(answer_ops.out_size, sizeof(int));
    assert_ptr_equal(answer_ops.poll, answer_poll);
    assert_ptr_equal(answer_ops.drop, answer_drop);
    assert_null(answer_ops.out_size_of);

    assert_string_equal(parent_ops.name, "parent");
    assert_int_equal(parent_ops.out_size, sizeof(pair));
    assert_string_equal(fib_ops.name, "fib");
    assert_int_equal(fib_ops.out_size, sizeof(long));
    assert_non_null(fib_ops.drop);

    assert_string_equal(tick_ops.name, "tick");
    assert_int_equal(tick_ops.out_size, 0);
    assert_string_equal(watched_ops.name, "watched");
    assert_int_equal(watched_ops.out_size, 0);
    assert_non_null(watched_ops.drop);
}

static void test_fn_init_sets_the_header_and_starts_the_coroutine(void **state)
{
    (void)state;
    answer a = { WEFT_FN_INIT(answer, WEFT_F_SEND), .n = 3 };
    assert_ptr_equal(a.base.ops, &answer_ops);
    /* The user's flags, plus where `co` sits (for task dumps). */
    assert_int_equal(a.base.flags & WEFT_F_USER_MASK, WEFT_F_SEND);
    assert_int_equal(a.base.flags & ~WEFT_F_USER_MASK,
                     (offsetof(answer, co) / _Alignof(weft_co)) << WEFT__F_CO_SHIFT);
    assert_int_equal(a.base.pin_tag_, 0);
    assert_int_equal(a.co.line, 0);
    assert_null(a.co.awaiting);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.starts, 0);
    assert_true(weft_future_is_send(&a.base));
    assert_int_equal(weft_future_out_size(&a.base), sizeof(int));

    /* Not Send, and only the user bits survive (also statically). */
    answer b = { WEFT_FN_INIT(answer, 0) };
    assert_false(weft_future_is_send(&b.base));
    assert_ptr_equal(g_static_answer.base.ops, &answer_ops);
    assert_int_equal(g_static_answer.base.flags, a.base.flags);
    assert_int_equal(g_static_answer.n, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_fn_yields_once_then_returns_its_value),
        cmocka_unit_test_setup_teardown(test_async_fn_runs_as_a_spawned_task_and_under_block_on,
                                        rt_setup, rt_teardown_no_misuse),
        cmocka_unit_test(test_async_fn_awaits_children_into_struct_fields),
        cmocka_unit_test(test_async_fn_dropped_while_suspended_drops_the_awaited_child_once),
        cmocka_unit_test(test_async_fn_void_finishes_by_return_or_by_falling_off_the_end),
        cmocka_unit_test(test_async_fn_with_drop_drops_each_child_once_wherever_it_stops),
        cmocka_unit_test_setup_teardown(
            test_fib_with_two_join_handles_runs_and_cancels_without_leaks, rt_setup,
            rt_teardown_no_misuse),
        cmocka_unit_test_setup_teardown(
            test_async_fn_with_output_falling_off_the_end_is_reported_and_refused,
            misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(
            test_await_inside_a_user_switch_is_reported_on_resume_and_refused, misuse_capture_setup,
            misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(
            test_co_await_inside_a_user_switch_is_reported_on_resume_and_refused,
            misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_user_drop_that_forgets_the_awaited_child_is_reported,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_misused_coroutines_are_refused_in_every_build,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test(test_poll_fn_awaited_inside_an_async_fn),
        cmocka_unit_test_setup_teardown(
            test_poll_fn_runs_as_a_spawned_task_and_in_an_async_fn_task, rt_setup,
            rt_teardown_no_misuse),
        cmocka_unit_test(test_poll_fn_init_rejects_bad_arguments),
        cmocka_unit_test(test_generated_ops_carry_the_type_name_and_output_size),
        cmocka_unit_test(test_fn_init_sets_the_header_and_starts_the_coroutine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
