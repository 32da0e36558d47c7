/* Tests of sync/once.c: one initialiser at a time and exactly one success;
 * the right to initialise handed on when an initialiser fails or is
 * dropped (to one waiter, with its own init); set and get; misuse; racing
 * tasks on two workers and on sims with chaos; and the cancel sweeps of
 * weft_once_get_or_init, as the initialiser and as a waiter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "sync/waitq.h"
#include "support/counting_waker.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "misc_support.h"

/* ---- the init future: fill -------------------------------------------------------------- */

typedef struct fill_counts {
    _Atomic int polls, drops, successes;
} fill_counts;

static void fill_counts_init(fill_counts *n)
{
    weft_atomic_init(&n->polls, 0);
    weft_atomic_init(&n->drops, 0);
    weft_atomic_init(&n->successes, 0);
}

/* PENDING `yields` times (waking itself; -1: forever, never waking), then
 * writes `value` to `*dst` when `status` is 0 and outputs `status`. */
typedef struct fill {
    weft_future base;
    int *dst;
    int value, status, yields;
    fill_counts *n;
} fill;

static weft_poll fill_poll(weft_future *f, weft_cx *cx, void *out)
{
    fill *s = (fill *)f;
    /* Relaxed counts: read after joins or on the polling thread. */
    weft_atomic_fetch_add_relaxed(&s->n->polls, 1);
    if (s->yields < 0)
        return WEFT_PENDING;
    if (s->yields > 0) {
        s->yields--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    if (s->status == 0) {
        *s->dst = s->value;
        weft_atomic_fetch_add_relaxed(&s->n->successes, 1);
    }
    *(int *)out = s->status;
    return WEFT_READY;
}

static void fill_drop(weft_future *f)
{
    weft_atomic_fetch_add_relaxed(&((fill *)f)->n->drops, 1);
}

static const weft_future_ops fill_ops = { "test_fill", sizeof(int), fill_poll, fill_drop, NULL };

static fill fill_make(int *dst, int value, int status, int yields, fill_counts *n)
{
    fill s;
    weft_future_init(&s.base, &fill_ops, WEFT_F_SEND);
    s.dst = dst;
    s.value = value;
    s.status = status;
    s.yields = yields;
    s.n = n;
    return s;
}

/* A get_or_init and its init, moving together. */
typedef struct goi {
    weft_once_get_or_init g;
    fill init;
} goi;

static void goi_start(goi *x, weft_once *cell, int value, int status, int yields, fill_counts *n)
{
    x->init = fill_make(cell->value_, value, status, yields, n);
    assert_int_equal(weft_once_get_or_init_init(&x->g, cell, &x->init.base), 0);
}

static weft_poll poll_goi(goi *x, counting_waker *c, int *out)
{
    weft_waker wk = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &wk);
    return weft_future_poll(&x->g.base, &cx, out);
}

/* ---- by hand ---------------------------------------------------------------------------- */

static void test_first_caller_initialises_and_the_others_wait(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    fill_counts n1, n2;
    fill_counts_init(&n1);
    fill_counts_init(&n2);
    int value = 0, out = -1;
    weft_once cell;
    assert_int_equal(weft_once_init(&cell, &value, sizeof value), 0);
    goi a, b;
    goi_start(&a, &cell, 7, 0, 1, &n1);
    goi_start(&b, &cell, 8, 0, 0, &n2);
    assert_int_equal(poll_goi(&a, &c, &out), WEFT_PENDING); /* init yields */
    assert_int_equal(poll_goi(&b, &c, &out), WEFT_PENDING); /* queued */
    assert_null(weft_once_get(&cell));
    long woken = cw_woken(&c);
    assert_int_equal(poll_goi(&a, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    assert_int_equal(cw_woken(&c), woken + 1); /* b */
    assert_int_equal(poll_goi(&b, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    assert_int_equal(b.g.status, 0);
    assert_int_equal(*(const int *)weft_once_get(&cell), 7);
    weft_future_drop(&a.g.base);
    weft_future_drop(&b.g.base);
    /* b's init never ran, and each init was dropped once. */
    assert_int_equal(weft_atomic_load_relaxed(&n2.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&n1.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&n2.drops), 1);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_once_fini(&cell);
}

/* Three callers: a initialises (its init never finishes), b and c wait.
 * `fail` makes a's init fail instead of being dropped. */
static void hand_on(bool fail)
{
    counting_waker cw[3];
    fill_counts n[3];
    int value = 0, out = -1;
    weft_once cell;
    assert_int_equal(weft_once_init(&cell, &value, sizeof value), 0);
    goi g[3];
    for (int i = 0; i < 3; i++) {
        cw_init(&cw[i]);
        fill_counts_init(&n[i]);
        goi_start(&g[i], &cell, 10 + i, i == 0 && fail ? -EIO : 0, i == 0 && !fail ? -1 : 1,
                  &n[i]);
        assert_int_equal(poll_goi(&g[i], &cw[i], &out), WEFT_PENDING);
    }
    if (fail) {
        assert_int_equal(poll_goi(&g[0], &cw[0], &out), WEFT_READY);
        assert_int_equal(out, -EIO);
        assert_int_equal(g[0].g.status, -EIO);
    }
    weft_future_drop(&g[0].g.base);
    assert_int_equal(weft_atomic_load_relaxed(&n[0].drops), 1);
    /* The cell is empty again and exactly one waiter, the oldest, is
     * woken to initialise. */
    assert_null(weft_once_get(&cell));
    assert_int_equal(cw_woken(&cw[1]), 1);
    assert_int_equal(cw_woken(&cw[2]), 0);
    assert_int_equal(poll_goi(&g[1], &cw[1], &out), WEFT_PENDING); /* its init yields */
    assert_int_equal(weft_atomic_load_relaxed(&n[1].polls), 1);
    assert_int_equal(poll_goi(&g[1], &cw[1], &out), WEFT_READY);
    assert_int_equal(out, 0);
    assert_int_equal(cw_woken(&cw[2]), 1);
    assert_int_equal(poll_goi(&g[2], &cw[2], &out), WEFT_READY);
    assert_int_equal(out, 0);
    assert_int_equal(*(const int *)weft_once_get(&cell), 11);
    for (int i = 1; i < 3; i++)
        weft_future_drop(&g[i].g.base);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft_atomic_load_relaxed(&n[i].drops), 1);
        assert_int_equal(cw_outstanding(&cw[i]), 0);
    }
    assert_int_equal(weft_atomic_load_relaxed(&n[2].polls), 0);
    weft_once_fini(&cell);
}

static void test_dropped_initialiser_hands_the_right_to_the_oldest_waiter(void **state)
{
    (void)state;
    hand_on(false);
}

static void test_failed_init_leaves_the_cell_empty_for_the_next_caller(void **state)
{
    (void)state;
    hand_on(true);
}

static void test_waiter_dropped_after_it_was_handed_the_right_hands_it_on(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    fill_counts n[3];
    int value = 0, out = -1;
    weft_once cell;
    assert_int_equal(weft_once_init(&cell, &value, sizeof value), 0);
    goi g[3];
    for (int i = 0; i < 3; i++) {
        fill_counts_init(&n[i]);
        goi_start(&g[i], &cell, 20 + i, 0, i == 0 ? -1 : 0, &n[i]);
        assert_int_equal(poll_goi(&g[i], &c, &out), WEFT_PENDING);
    }
    weft_future_drop(&g[0].g.base); /* g[1] is handed the right ... */
    weft_future_drop(&g[1].g.base); /* ... and hands it on unused */
    assert_int_equal(weft_atomic_load_relaxed(&n[1].polls), 0);
    assert_null(weft_once_get(&cell));
    assert_int_equal(poll_goi(&g[2], &c, &out), WEFT_READY);
    assert_int_equal(*(const int *)weft_once_get(&cell), 22);
    weft_future_drop(&g[2].g.base);
    assert_int_equal(cw_outstanding(&c), 0);
    /* Now with nobody left to hand it to: the cell is empty, and a new
     * caller initialises. */
    weft_once cell2;
    int v2 = 0;
    assert_int_equal(weft_once_init(&cell2, &v2, sizeof v2), 0);
    goi h;
    goi_start(&h, &cell2, 1, 0, -1, &n[0]);
    assert_int_equal(poll_goi(&h, &c, &out), WEFT_PENDING);
    weft_future_drop(&h.g.base);
    assert_int_equal(weft_atomic_load_relaxed(&cell2.state_), 0u); /* empty */
    assert_int_equal(weft_once_set(&cell2, &(int){ 5 }), 0);
    assert_int_equal(*(const int *)weft_once_get(&cell2), 5);
    weft_once_fini(&cell2);
    weft_once_fini(&cell);
}

static void test_set_get_and_their_errors(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    fill_counts n;
    fill_counts_init(&n);
    int value = 0, out = -1;
    weft_once cell;
    assert_int_equal(weft_once_init(&cell, &value, sizeof value), 0);
    goi g;
    goi_start(&g, &cell, 1, 0, -1, &n);
    assert_int_equal(poll_goi(&g, &c, &out), WEFT_PENDING);
    assert_int_equal(weft_once_set(&cell, &(int){ 3 }), -EBUSY);
    weft_future_drop(&g.g.base);
    assert_int_equal(weft_once_set(&cell, &(int){ 3 }), 0);
    assert_int_equal(weft_once_set(&cell, &(int){ 4 }), -EEXIST);
    assert_int_equal(*(const int *)weft_once_get(&cell), 3);
    /* A get_or_init of a set cell never polls its init. */
    goi late;
    fill_counts_init(&n);
    goi_start(&late, &cell, 9, 0, 0, &n);
    assert_int_equal(poll_goi(&late, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    weft_future_drop(&late.g.base);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_once_fini(&cell);
}

static void test_misuse_is_einval_or_reported(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    fill_counts n;
    fill_counts_init(&n);
    int before = misuse_count(), value = 0, out = -1;
    weft_once cell;
    assert_int_equal(weft_once_init(NULL, &value, sizeof value), -EINVAL);
    assert_int_equal(weft_once_init(&cell, NULL, sizeof value), -EINVAL);
    assert_int_equal(weft_once_init(&cell, &value, 0), -EINVAL);
    assert_misuse_since(before, 3, "size zero");
    assert_int_equal(weft_once_init(&cell, &value, sizeof value), 0);
    assert_int_equal(weft_once_set(&cell, NULL), -EINVAL);
    assert_null(weft_once_get(NULL));
    goi g;
    g.init = fill_make(&value, 1, 0, 0, &n);
    assert_int_equal(weft_once_get_or_init_init(&g.g, &cell, NULL), -EINVAL);
    weft_yield y; /* outputs nothing: not an int status */
    weft_yield_init(&y);
    assert_int_equal(weft_once_get_or_init_init(&g.g, &cell, &y.base), -EINVAL);
    assert_misuse_since(before, 6, "int status");
    weft_future_drop(&y.base);
    goi_start(&g, &cell, 1, 0, -1, &n);
    assert_int_equal(poll_goi(&g, &c, &out), WEFT_PENDING);
    weft_once_fini(&cell);
    assert_misuse_since(before, 7, "still alive");
    weft_future_drop(&g.g.base);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_once_fini(&cell);
    assert_misuse_since(before, 7, "still alive");
}

/* ---- racing tasks ----------------------------------------------------------------------- */

/* Calls get_or_init with its own fill; outputs the value it then sees, or
 * its status when that is not 0. A getter dropped before it started drops
 * its init itself (the get_or_init owns it only from its init on). */
typedef struct getter {
    weft_future base;
    weft_co co;
    weft_once *cell;
    bool started;
    int rc;
    goi x;
} getter;

static void getter_drop(weft_future *f)
{
    getter *self = (getter *)f;
    if (!self->started)
        weft_future_drop(&self->x.init.base);
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_WITH_DROP(getter, int)
{
    WEFT_FN_BEGIN;
    self->started = true;
    if (weft_once_get_or_init_init(&self->x.g, self->cell, &self->x.init.base) != 0)
        WEFT_FN_RETURN(-EINVAL);
    WEFT_FN_AWAIT(&self->x.g, &self->rc);
    if (self->rc != 0)
        WEFT_FN_RETURN(self->rc);
    WEFT_FN_RETURN(*(const int *)weft_once_get(self->cell));
    WEFT_FN_END;
}

static getter getter_make(weft_once *cell, int value, int status, int yields, fill_counts *n)
{
    getter g = { WEFT_FN_INIT(getter, WEFT_F_SEND), .cell = cell };
    g.x.init = fill_make(cell->value_, value, status, yields, n);
    return g;
}

#define NGET 9

/* NGET getters race; every third one's init fails, and two are aborted
 * (their drop may hit a running init). Exactly one init succeeds and every
 * getter that finished without failing saw its value. */
static void run_race(weft_rt *rt)
{
    int value = 0;
    fill_counts n;
    fill_counts_init(&n);
    weft_once cell;
    assert_int_equal(weft_once_init(&cell, &value, sizeof value), 0);
    weft_join j[NGET];
    for (int i = 0; i < NGET; i++) {
        getter g = getter_make(&cell, 100 + i, i % 3 == 0 ? -EIO : 0, 1 + i % 4, &n);
        spawn_into(rt, &g.base, sizeof g, &j[i]);
    }
    weft_join_abort(&j[1]);
    weft_join_abort(&j[4]);
    int seen = -1;
    for (int i = 0; i < NGET; i++) {
        int out = -1;
        int st = join_blocking(rt, &j[i], &out, sizeof out);
        if (st == -ECANCELED)
            continue;
        assert_int_equal(st, 0);
        if (out == -EIO) {
            assert_int_equal(i % 3, 0);
            continue;
        }
        if (seen < 0)
            seen = out;
        assert_int_equal(out, seen);
    }
    assert_int_equal(weft_atomic_load_relaxed(&n.successes), 1);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), NGET);
    assert_non_null(weft_once_get(&cell));
    assert_int_equal(*(const int *)weft_once_get(&cell), value);
    assert_true(value >= 100 && value < 100 + NGET && value % 3 != 1);
    weft_once_fini(&cell);
}

static void test_racing_tasks_initialise_once(void **state)
{
    (void)state;
    int before = misuse_count();
    for (int round = 0; round < 100; round++)
        run_race(g_rt);
    assert_no_misuse_since(before);
}

static void test_sim_chaos_racing_tasks_initialise_once(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    int before = misuse_count();
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= CHAOS_SEEDS; seed++) {
        weft_rt *rt = chaos_sim(seed);
        run_race(rt);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
    assert_no_misuse_since(before);
}

/* ---- cancel sweeps ---------------------------------------------------------------------- */

/* Two helper getters (values 2, 3; their inits yield `helper_yields`
 * times) and the future under test (value 1): either the get_or_init
 * itself, polled first, so it wins the right; or a getter that yields
 * twice first, so a helper holds the right and it waits. Each run checks:
 * its init was dropped exactly once; exactly one init succeeded; the cell
 * is set, its queue empty; if the future did not complete, the value is a
 * helper's (the right went on); no waker is left. */
typedef struct once_case {
    bool as_waiter;
    int value;
    weft_once cell;
    fill_counts n, nh;
    goi x;
    getter late;
    int out;
} once_case;

/* Yields twice, then a getter. */
typedef struct yielder {
    weft_future base;
    weft_co co;
    getter g;
} yielder;

static int once_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    once_case *oc = ctx;
    oc->value = 0;
    oc->out = -1;
    fill_counts_init(&oc->n);
    fill_counts_init(&oc->nh);
    int rc = weft_once_init(&oc->cell, &oc->value, sizeof oc->value);
    for (int i = 0; rc == 0 && i < 2; i++) {
        getter g = getter_make(&oc->cell, 2 + i, 0, oc->as_waiter ? 4 : 1, &oc->nh);
        rc = weft_spawn(rt, &g.base, sizeof g, NULL);
    }
    if (oc->as_waiter) {
        oc->late = getter_make(&oc->cell, 1, 0, 1, &oc->n);
        *fut = &oc->late.base;
    } else {
        oc->x.init = fill_make(&oc->value, 1, 0, 1, &oc->n);
        if (rc == 0)
            rc = weft_once_get_or_init_init(&oc->x.g, &oc->cell, &oc->x.init.base);
        *fut = &oc->x.g.base;
    }
    *out = &oc->out;
    return rc;
}

static const char *once_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    once_case *oc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    int drops = weft_atomic_load_relaxed(&oc->n.drops);
    if (drops != 1)
        return sweep_say("k=%u: its init was dropped %d times", run->k, drops);
    int ok = weft_atomic_load_relaxed(&oc->n.successes) +
             weft_atomic_load_relaxed(&oc->nh.successes);
    if (ok != 1)
        return sweep_say("k=%u: %d inits succeeded", run->k, ok);
    if (!weft_once_get(&oc->cell) || !weft__waitq_empty(&oc->cell.q_))
        return sweep_say("k=%u: cell not set, or a waiter left", run->k);
    if (!run->completed && oc->value == 1)
        return sweep_say("k=%u: dropped, yet its value was kept", run->k);
    if (run->completed && oc->out != (oc->as_waiter ? oc->value : 0))
        return sweep_say("k=%u: output %d, value %d", run->k, oc->out, oc->value);
    return sweep_leftovers(rt);
}

static void once_teardown(void *ctx)
{
    weft_once_fini(&((once_case *)ctx)->cell);
}

static void test_cancel_sweep_once_get_or_init_initialising(void **state)
{
    (void)state;
    static once_case oc;
    oc.as_waiter = false;
    weft_sweep_case c = { once_build, once_check, once_teardown, &oc };
    assert_true(sweep_both(&c) >= 2);
}

static void test_cancel_sweep_once_get_or_init_waiting(void **state)
{
    (void)state;
    static once_case oc;
    oc.as_waiter = true;
    weft_sweep_case c = { once_build, once_check, once_teardown, &oc };
    assert_true(sweep_both(&c) >= 2);
}

int main(void)
{
#define BY_HAND(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
#define ON_RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define ON_SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        BY_HAND(test_first_caller_initialises_and_the_others_wait),
        BY_HAND(test_dropped_initialiser_hands_the_right_to_the_oldest_waiter),
        BY_HAND(test_failed_init_leaves_the_cell_empty_for_the_next_caller),
        BY_HAND(test_waiter_dropped_after_it_was_handed_the_right_hands_it_on),
        BY_HAND(test_set_get_and_their_errors),
        BY_HAND(test_misuse_is_einval_or_reported),
        ON_RT(test_racing_tasks_initialise_once),
        ON_SIM(test_sim_chaos_racing_tasks_initialise_once),
        ON_SIM(test_cancel_sweep_once_get_or_init_initialising),
        ON_SIM(test_cancel_sweep_once_get_or_init_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
