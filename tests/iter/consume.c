/* Tests for iter/consume.c: fold, for_each, count, collect, any and all
 * over a source and over a channel receiver fed by a task, on the
 * multi-thread runtime and on the sim; early stop of any/all (the items
 * after the deciding one stay in the stream); collect's overflow; the
 * coop budget over a stream that is always ready; bad arguments;
 * WEFT_FOR_AWAIT in an async fn; and a cancel sweep over each consumer:
 * every item is either handled or still in the channel, exactly once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/counting_waker.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

#define NITEMS 5

/* ---- what the consumers saw ------------------------------------------------------- */

typedef struct tally {
    int count[NITEMS + 2];
    int bad;
    uint64_t sum;
} tally;

static void mark(tally *t, uint64_t v)
{
    if (v >= 1 && v <= NITEMS)
        t->count[v]++;
    else
        t->bad++;
    t->sum += v;
}

static void fold_fn(void *ctx, void *acc, const void *item)
{
    (void)ctx;
    mark(acc, *(const uint64_t *)item);
}

static void each_fn(void *ctx, const void *item)
{
    mark(ctx, *(const uint64_t *)item);
}

static bool is3(void *ctx, const void *item)
{
    mark(ctx, *(const uint64_t *)item);
    return *(const uint64_t *)item == 3;
}

static bool below3(void *ctx, const void *item)
{
    mark(ctx, *(const uint64_t *)item);
    return *(const uint64_t *)item < 3;
}

/* ---- one consumer of each kind ---------------------------------------------------- */

enum { C_FOLD, C_EACH, C_COUNT, C_COLLECT, C_ANY, C_ALL, C_KINDS };
static const char *const cname[] = { "fold", "for_each", "count", "collect", "any", "all" };

typedef struct cons {
    int kind;
    union {
        weft_iter_fold fold;
        weft_iter_collect collect;
        weft_iter_any any;
    } u;
    union {
        size_t n;
        int rc;
        bool b;
    } out;
    tally t;
    uint64_t buf[8];
    size_t cap, got;
} cons;

static weft_future *cons_init(cons *c, int kind, weft_stream *s)
{
    int rc = -1;
    c->kind = kind;
    memset(&c->t, 0, sizeof c->t);
    memset(&c->out, 0xff, sizeof c->out);
    memset(c->buf, 0, sizeof c->buf);
    switch (kind) {
    case C_FOLD:
        rc = weft_iter_fold_init(&c->u.fold, s, &c->t, fold_fn, NULL);
        break;
    case C_EACH:
        rc = weft_iter_for_each_init(&c->u.fold, s, each_fn, &c->t);
        break;
    case C_COUNT:
        rc = weft_iter_count_init(&c->u.fold, s);
        break;
    case C_COLLECT:
        rc = weft_iter_collect_init(&c->u.collect, s, c->buf, c->cap ? c->cap : 8, &c->got);
        break;
    case C_ANY:
        rc = weft_iter_any_init(&c->u.any, s, is3, &c->t);
        break;
    default:
        rc = weft_iter_all_init(&c->u.any, s, below3, &c->t);
    }
    assert_int_equal(rc, 0);
    return &c->u.fold.base;
}

/* Items the consumer handled into its tally (collect: its buffer). */
static void cons_handled(cons *c)
{
    if (c->kind == C_COLLECT)
        for (size_t i = 0; i < c->got; i++)
            mark(&c->t, c->buf[i]);
}

/* ---- a task feeding a channel ------------------------------------------------------- */

typedef struct feeder {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send s;
    uint64_t item;
    int rc;
} feeder;

WEFT_ASYNC_FN(feeder, int)
{
    WEFT_FN_BEGIN;
    for (self->item = 1; self->item <= NITEMS; self->item++) {
        weft_chan_send_init(&self->s, &self->tx, &self->item);
        WEFT_FN_AWAIT(&self->s, &self->rc);
        if (self->rc != 0)
            break;
        WEFT_FN_YIELD;
    }
    weft_chan_tx_drop(&self->tx);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

static void feed(weft_rt *rt, weft_chan_rx *rx, size_t cap)
{
    weft_chan_tx tx;
    assert_int_equal(weft_mpsc_new(&tx, rx, sizeof(uint64_t), cap), 0);
    feeder fd = { WEFT_FN_INIT(feeder, WEFT_F_SEND), .tx = tx };
    assert_int_equal(weft_spawn(rt, &fd.base, sizeof fd, NULL), 0);
}

/* Check what kind `k` output and handled over the items 1..NITEMS. */
static void check_full_run(cons *c)
{
    cons_handled(c);
    int stop = c->kind == C_ANY || c->kind == C_ALL ? 3 : NITEMS;
    switch (c->kind) {
    case C_FOLD:
    case C_EACH:
    case C_COUNT:
        assert_int_equal(c->out.n, NITEMS);
        break;
    case C_COLLECT:
        assert_int_equal(c->out.rc, 0);
        assert_int_equal(c->got, NITEMS);
        break;
    case C_ANY:
        assert_true(c->out.b);
        break;
    default:
        assert_false(c->out.b);
    }
    if (c->kind == C_COUNT)
        return;
    for (int v = 1; v <= NITEMS; v++)
        assert_int_equal(c->t.count[v], v <= stop ? 1 : 0);
    assert_int_equal(c->t.bad, 0);
}

static size_t cons_out_size(int kind)
{
    return kind <= C_COUNT ? sizeof(size_t) : kind == C_COLLECT ? sizeof(int) : sizeof(bool);
}

/* Each consumer over a range and over a fed channel receiver, on g_rt. */
static void test_each_consumer_over_a_source_and_a_channel(void **state)
{
    (void)state;
    for (int kind = 0; kind < C_KINDS; kind++) {
        cons c = { 0 };
        weft_iter_range r;
        assert_int_equal(weft_iter_range_init(&r, 1, NITEMS + 1, 1), 0);
        weft_future *f = cons_init(&c, kind, &r.base);
        assert_true(weft_future_is_send(f));
        assert_int_equal(weft_block_on(g_rt, f, &c.out, cons_out_size(kind)), 0);
        check_full_run(&c);
        /* any/all stopped at 3: 4 and 5 are still in the range. */
        size_t lo, hi;
        weft_stream_size_hint(&r.base, &lo, &hi);
        assert_int_equal(lo, kind >= C_ANY ? 2 : 0);
        weft_stream_drop(&r.base);

        weft_chan_rx rx;
        feed(g_rt, &rx, 2);
        f = cons_init(&c, kind, &rx.base);
        assert_int_equal(weft_block_on(g_rt, f, &c.out, cons_out_size(kind)), 0);
        check_full_run(&c);
        /* What is left in the channel (the others saw DONE): any/all
         * left 4 and 5. */
        if (kind >= C_ANY) {
            cons rest = { 0 };
            f = cons_init(&rest, C_FOLD, &rx.base);
            assert_int_equal(weft_block_on(g_rt, f, &rest.out, sizeof(size_t)), 0);
            assert_int_equal(rest.out.n, 2);
            assert_true(rest.t.count[4] == 1 && rest.t.count[5] == 1);
        }
        weft_chan_rx_drop(&rx);
    }
    assert_int_equal(misuse_count(), 0);
}

/* ---- by hand: any/all that do not stop, collect, budget, bad args ------------------ */

static weft_poll poll_cw(weft_future *f, counting_waker *c, void *out)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(f, &cx, out);
}

static bool never(void *ctx, const void *item)
{
    (void)item, (void)ctx;
    return false;
}

static bool always(void *ctx, const void *item)
{
    (void)item, (void)ctx;
    return true;
}

static void test_any_all_run_to_the_end_when_undecided(void **state)
{
    (void)state;
    counting_waker cw;
    cw_init(&cw);
    weft_iter_range r;
    weft_iter_any a;
    bool b = true;
    assert_int_equal(weft_iter_range_init(&r, 0, 10, 1), 0);
    assert_int_equal(weft_iter_any_init(&a, &r.base, never, NULL), 0);
    assert_int_equal(poll_cw(&a.base, &cw, &b), WEFT_READY);
    assert_false(b);
    weft_future_drop(&a.base);
    b = false;
    assert_int_equal(weft_iter_range_init(&r, 0, 10, 1), 0);
    assert_int_equal(weft_iter_all_init(&a, &r.base, always, NULL), 0);
    assert_int_equal(poll_cw(&a.base, &cw, &b), WEFT_READY);
    assert_true(b);
    weft_future_drop(&a.base);
    /* Over the empty stream: any false, all true. */
    weft_iter_empty e;
    assert_int_equal(weft_iter_empty_init(&e, 4), 0);
    assert_int_equal(weft_iter_any_init(&a, &e.base, always, NULL), 0);
    assert_int_equal(poll_cw(&a.base, &cw, &b), WEFT_READY);
    assert_false(b);
    assert_int_equal(misuse_count(), 0);
}

static void test_collect_overflow_leaves_the_rest_in_the_stream(void **state)
{
    (void)state;
    counting_waker cw;
    cw_init(&cw);
    weft_iter_range r;
    weft_iter_collect c;
    uint64_t buf[3] = { 0 };
    size_t n = 99;
    int rc = 1;
    assert_int_equal(weft_iter_range_init(&r, 1, 6, 1), 0);
    assert_int_equal(weft_iter_collect_init(&c, &r.base, buf, 3, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(poll_cw(&c.base, &cw, &rc), WEFT_READY);
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(n, 3);
    assert_true(buf[0] == 1 && buf[1] == 2 && buf[2] == 3);
    weft_future_drop(&c.base);
    /* 4 and 5 are still there: collect them too. */
    assert_int_equal(weft_iter_collect_init(&c, &r.base, buf, 3, &n), 0);
    assert_int_equal(poll_cw(&c.base, &cw, &rc), WEFT_READY);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_true(buf[0] == 4 && buf[1] == 5);
    weft_future_drop(&c.base);
    /* An exact fit into a stream whose size is known: 0. */
    assert_int_equal(weft_iter_range_init(&r, 1, 4, 1), 0);
    assert_int_equal(weft_iter_collect_init(&c, &r.base, buf, 3, &n), 0);
    assert_int_equal(poll_cw(&c.base, &cw, &rc), WEFT_READY);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 3);
    /* cap 0 (buf NULL is fine). */
    assert_int_equal(weft_iter_range_init(&r, 1, 4, 1), 0);
    assert_int_equal(weft_iter_collect_init(&c, &r.base, NULL, 0, &n), 0);
    assert_int_equal(poll_cw(&c.base, &cw, &rc), WEFT_READY);
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(n, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_consumers_respect_the_coop_budget(void **state)
{
    (void)state;
    counting_waker cw;
    cw_init(&cw);
    weft_iter_range r;
    weft_iter_count c;
    size_t n = 0;
    assert_int_equal(weft_iter_range_init(&r, 0, 1000000, 1), 0);
    assert_int_equal(weft_iter_count_init(&c, &r.base), 0);
    /* The first poll spends the budget, wakes the task and yields. */
    assert_int_equal(poll_cw(&c.base, &cw, &n), WEFT_PENDING);
    assert_int_equal(cw_woken(&cw), 1);
    assert_true(c.n_ > 0 && c.n_ < 1000000);
    int polls = 1;
    while (poll_cw(&c.base, &cw, &n) == WEFT_PENDING)
        polls++;
    assert_int_equal(n, 1000000);
    assert_int_equal(cw_woken(&cw), polls);
    weft_future_drop(&c.base);
    /* any over a stream that never ends yields too. */
    weft_iter_repeat p;
    int x = 1;
    weft_iter_any a;
    bool b;
    assert_int_equal(weft_iter_repeat_init(&p, &x, sizeof x, WEFT_ITER_FOREVER), 0);
    assert_int_equal(weft_iter_any_init(&a, &p.base, never, NULL), 0);
    assert_int_equal(poll_cw(&a.base, &cw, &b), WEFT_PENDING);
    assert_int_equal(cw_woken(&cw), polls + 1);
    weft_future_drop(&a.base);
    assert_int_equal(cw_outstanding(&cw), 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    weft_iter_range r;
    weft_iter_fold f;
    weft_iter_collect c;
    weft_iter_any a;
    size_t n;
    char big[300];
    weft_iter_array arr;
    assert_int_equal(weft_iter_range_init(&r, 0, 1, 1), 0);
    assert_int_equal(weft_iter_array_init(&arr, big, sizeof big, 1), 0);
    int before = misuse_count();
    assert_int_equal(weft_iter_fold_init(NULL, &r.base, NULL, fold_fn, NULL), -EINVAL);
    assert_int_equal(weft_iter_fold_init(&f, NULL, NULL, fold_fn, NULL), -EINVAL);
    assert_int_equal(weft_iter_fold_init(&f, &r.base, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(weft_iter_for_each_init(&f, &r.base, NULL, NULL), -EINVAL);
    assert_int_equal(weft_iter_count_init(&f, NULL), -EINVAL);
    assert_int_equal(weft_iter_collect_init(&c, &r.base, NULL, 1, &n), -EINVAL);
    assert_int_equal(weft_iter_collect_init(&c, &r.base, big, 1, NULL), -EINVAL);
    assert_int_equal(weft_iter_any_init(&a, &r.base, NULL, NULL), -EINVAL);
    assert_int_equal(weft_iter_all_init(&a, NULL, always, NULL), -EINVAL);
    assert_misuse_since(before, 9, "weft_iter_all");
    /* Items bigger than the batch buffer. */
    assert_int_equal(weft_iter_count_init(&f, &arr.base), -EINVAL);
    assert_int_equal(weft_iter_any_init(&a, &arr.base, always, NULL), -EINVAL);
    assert_misuse_since(before, 11, "weft_iter_array");
    /* collect takes any item size (it writes into your buffer). */
    assert_int_equal(weft_iter_collect_init(&c, &arr.base, big, 1, &n), 0);
}

/* ---- WEFT_FOR_AWAIT -------------------------------------------------------------------- */

typedef struct summer {
    weft_future base;
    weft_co co;
    weft_stream *s;
    uint64_t v, stop_at;
    uint64_t sum;
    weft_yield y;
} summer;

WEFT_ASYNC_FN(summer, uint64_t)
{
    WEFT_FN_BEGIN;
    WEFT_FOR_AWAIT(self->s, &self->v)
    {
        self->sum += self->v;
        weft_yield_init(&self->y);
        WEFT_FN_AWAIT(&self->y, NULL); /* an await inside the loop body */
        if (self->v == self->stop_at)
            break;
    }
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

/* No await in the body, over a stream that is always ready. */
typedef struct counter {
    weft_future base;
    weft_co co;
    weft_stream *s;
    uint64_t v, n;
} counter;

WEFT_ASYNC_FN(counter, uint64_t)
{
    WEFT_FN_BEGIN;
    WEFT_FOR_AWAIT(self->s, &self->v)
    {
        self->n++;
    }
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

static void test_for_await_over_a_channel_and_a_range(void **state)
{
    (void)state;
    weft_chan_rx rx;
    feed(g_rt, &rx, 2);
    summer s = { WEFT_FN_INIT(summer, WEFT_F_SEND), .s = &rx.base, .stop_at = 0 };
    uint64_t out = 0;
    assert_int_equal(weft_block_on(g_rt, &s.base, &out, sizeof out), 0);
    assert_int_equal(out, 15);
    weft_chan_rx_drop(&rx);
    /* break: the items after it stay in the stream. */
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 1, 6, 1), 0);
    summer b = { WEFT_FN_INIT(summer, WEFT_F_SEND), .s = &r.base, .stop_at = 3 };
    assert_int_equal(weft_block_on(g_rt, &b.base, &out, sizeof out), 0);
    assert_int_equal(out, 6);
    size_t lo, hi;
    weft_stream_size_hint(&r.base, &lo, &hi);
    assert_int_equal(lo, 2);
    /* Always ready, no await in the body: the budget makes it yield. */
    counting_waker cw;
    cw_init(&cw);
    assert_int_equal(weft_iter_range_init(&r, 0, 100000, 1), 0);
    counter c = { WEFT_FN_INIT(counter, WEFT_F_SEND), .s = &r.base };
    assert_int_equal(poll_cw(&c.base, &cw, &out), WEFT_PENDING);
    assert_int_equal(cw_woken(&cw), 1);
    while (poll_cw(&c.base, &cw, &out) == WEFT_PENDING)
        ;
    assert_int_equal(out, 100000);
    weft_future_drop(&c.base);
    assert_int_equal(misuse_count(), 0);
}

/* ---- cancel sweep over each consumer --------------------------------------------------- */

typedef struct cons_case {
    int kind;
    weft_chan_rx rx;
    cons c;
} cons_case;

static int cons_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    cons_case *cc = ctx;
    /* Room for every item: the feeder finishes after the drop. */
    weft_chan_tx tx;
    if (weft_mpsc_new(&tx, &cc->rx, sizeof(uint64_t), 8) != 0)
        return -ENOMEM;
    feeder fd = { WEFT_FN_INIT(feeder, WEFT_F_SEND), .tx = tx };
    int err = weft_spawn(rt, &fd.base, sizeof fd, NULL);
    cc->c.cap = 3; /* collect overflows at 3 */
    *fut = cons_init(&cc->c, cc->kind, &cc->rx.base);
    *out = &cc->c.out;
    return err;
}

static const char *cons_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    cons_case *cc = ctx;
    cons *c = &cc->c;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    cons_handled(c);
    if (run->completed && c->kind == C_COLLECT && c->out.rc != -ENOSPC)
        return sweep_say("collect of 5 into 3 gave %d", c->out.rc);
    if (run->completed && c->kind == C_ANY && !c->out.b)
        return "any did not find 3";
    size_t counted = c->kind == C_COUNT ? c->u.fold.n_ : 0;
    uint64_t v;
    int r;
    while ((r = weft_chan_try_recv(&cc->rx, &v)) == 0) {
        if (c->kind == C_COUNT && v <= counted)
            return sweep_say("count: %llu counted and still in the channel",
                             (unsigned long long)v);
        mark(&c->t, v);
    }
    if (r != -EPIPE)
        return sweep_say("drain ended with %d", r);
    for (int id = 1; id <= NITEMS; id++) {
        int want = c->kind == C_COUNT && (size_t)id <= counted ? 0 : 1;
        if (c->t.count[id] != want)
            return sweep_say("%s k=%u (%s): item %d seen %d time(s)", cname[c->kind], run->k,
                             run->completed ? "completed" : "dropped", id, c->t.count[id]);
    }
    return c->t.bad ? "an unknown item" : NULL;
}

static void cons_teardown(void *ctx)
{
    weft_chan_rx_drop(&((cons_case *)ctx)->rx);
}

static void test_cancel_sweep_each_consumer(void **state)
{
    (void)state;
    static cons_case cc;
    for (int kind = 0; kind < C_KINDS; kind++) {
        memset(&cc, 0, sizeof cc);
        cc.kind = kind;
        weft_sweep_case sc = { cons_build, cons_check, cons_teardown, &cc };
        weft_sweep_options o = sweep_options(1, 1);
        weft_sweep_result res = sweep_pass(&sc, &o);
        assert_true(res.polls >= 2);
        o = sweep_chaos_options(1, 8, 0.3);
        sweep_pass(&sc, &o);
    }
    assert_int_equal(misuse_count(), 0);
}

/* ---- cancel sweep over a WEFT_FOR_AWAIT coroutine ------------------------------------ */

typedef struct looper {
    weft_future base;
    weft_co co;
    weft_stream *s;
    tally *t;
    uint64_t v;
    weft_yield y;
} looper;

WEFT_ASYNC_FN(looper, int)
{
    WEFT_FN_BEGIN;
    WEFT_FOR_AWAIT(self->s, &self->v)
    {
        mark(self->t, self->v);
        weft_yield_init(&self->y);
        WEFT_FN_AWAIT(&self->y, NULL);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct loop_case {
    weft_chan_rx rx;
    looper l;
    tally t;
    int out;
} loop_case;

static int loop_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    loop_case *lc = ctx;
    weft_chan_tx tx;
    if (weft_mpsc_new(&tx, &lc->rx, sizeof(uint64_t), 8) != 0)
        return -ENOMEM;
    feeder fd = { WEFT_FN_INIT(feeder, WEFT_F_SEND), .tx = tx };
    int err = weft_spawn(rt, &fd.base, sizeof fd, NULL);
    memset(&lc->t, 0, sizeof lc->t);
    lc->l = (looper){ WEFT_FN_INIT(looper, WEFT_F_SEND), .s = &lc->rx.base, .t = &lc->t };
    *fut = &lc->l.base;
    *out = &lc->out;
    return err;
}

static const char *loop_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    loop_case *lc = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    uint64_t v;
    int r;
    while ((r = weft_chan_try_recv(&lc->rx, &v)) == 0)
        mark(&lc->t, v);
    if (r != -EPIPE)
        return sweep_say("drain ended with %d", r);
    for (int id = 1; id <= NITEMS; id++)
        if (lc->t.count[id] != 1)
            return sweep_say("for-await k=%u: item %d seen %d time(s)", run->k, id,
                             lc->t.count[id]);
    return lc->t.bad ? "an unknown item" : NULL;
}

static void loop_teardown(void *ctx)
{
    weft_chan_rx_drop(&((loop_case *)ctx)->rx);
}

static void test_cancel_sweep_for_await_loop(void **state)
{
    (void)state;
    static loop_case lc;
    memset(&lc, 0, sizeof lc);
    weft_sweep_case sc = { loop_build, loop_check, loop_teardown, &lc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= NITEMS);
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup_g_rt, rt_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_each_consumer_over_a_source_and_a_channel),
        SIM(test_each_consumer_over_a_source_and_a_channel),
        T(test_any_all_run_to_the_end_when_undecided),
        T(test_collect_overflow_leaves_the_rest_in_the_stream),
        T(test_consumers_respect_the_coop_budget),
        T(test_bad_arguments),
        RT(test_for_await_over_a_channel_and_a_range),
        SIM(test_for_await_over_a_channel_and_a_range),
        T(test_cancel_sweep_each_consumer),
        T(test_cancel_sweep_for_await_loop),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
