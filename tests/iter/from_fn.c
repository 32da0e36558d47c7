/* Tests for iter/from_fn.c: a poll_next stream over an "async next".
 *
 * The async next used here is the lossy kind on purpose: its future takes
 * an item from an inner stream, keeps it in itself, and then waits once
 * more (say, to log it) before it completes. Used alone, dropping that
 * future after it took the item loses the item (the reverse adapter: an
 * async next built on poll_next). Wrapped by weft_iter_from_fn, the same
 * future lives inside the pinned stream, so dropping the consumer's
 * weft_stream_next loses nothing: the cancel sweep checks every drop
 * point. That is why weft's streams are poll_next (docs/iter.md). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/misuse_capture.h"
#include "support/sweep.h"

/* ---- the lossy async next ------------------------------------------------------ */

typedef struct take_then_wait {
    weft_future base;
    weft_stream *s;
    uint64_t held;   /* the item, once taken: owned by this future */
    uint64_t *item;  /* where it goes at completion */
    int stage;       /* 0: take; 1: taken, waiting once more */
} take_then_wait;

static weft_poll ttw_poll(weft_future *f, weft_cx *cx, void *out)
{
    take_then_wait *t = (take_then_wait *)f;
    if (t->stage == 0) {
        weft_next r = weft_stream_poll_next(t->s, cx, &t->held);
        if (r == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (r == WEFT_NEXT_DONE) {
            *(int *)out = 0;
            return WEFT_READY;
        }
        t->stage = 1;
        weft_waker_wake_by_ref(cx->waker); /* one more wait after the take */
        return WEFT_PENDING;
    }
    *t->item = t->held;
    *(int *)out = 1;
    return WEFT_READY;
}

static const weft_future_ops ttw_ops = { "take_then_wait", sizeof(int), ttw_poll, NULL, NULL };

static void ttw_init(take_then_wait *t, weft_stream *s, uint64_t *item)
{
    weft_future_init(&t->base, &ttw_ops, s->flags & WEFT_F_SEND);
    t->s = s;
    t->held = 0;
    t->item = item;
    t->stage = 0;
}

/* The async next function over it: `self` is the inner stream. */
static int ttw_next(void *self, weft_future *storage, void *item)
{
    ttw_init((take_then_wait *)(void *)storage, self, item);
    return 0;
}

static weft_poll poll_noop(weft_future *f, void *out)
{
    weft_waker w = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(f, &cx, out);
}

/* The next item of `s` by hand (polls until it is not PENDING). */
static int next_blocking(weft_stream *s, uint64_t *v)
{
    weft_stream_next nx;
    weft_stream_next_init(&nx, s, v);
    int out = -1;
    for (int i = 0; i < 100 && poll_noop(&nx.base, &out) == WEFT_PENDING; i++)
        ;
    weft_future_drop(&nx.base);
    return out;
}

/* ---- the reverse adapter loses an item; from_fn does not ----------------------- */

static void test_async_next_dropped_after_the_take_loses_the_item(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 1, 4, 1), 0);
    uint64_t v = 0;
    take_then_wait t;
    int out = -1;
    ttw_init(&t, &r.base, &v);
    assert_int_equal(poll_noop(&t.base, &out), WEFT_PENDING); /* took 1, waits */
    weft_future_drop(&t.base);                                 /* ...and 1 is gone */
    ttw_init(&t, &r.base, &v);
    assert_int_equal(poll_noop(&t.base, &out), WEFT_PENDING);
    assert_int_equal(poll_noop(&t.base, &out), WEFT_READY);
    assert_int_equal(out, 1);
    assert_int_equal(v, 2); /* the reverse adapter lost item 1 */
    weft_future_drop(&t.base);
    weft_stream_drop(&r.base);
    assert_int_equal(misuse_count(), 0);
}

static void test_from_fn_keeps_the_in_flight_next_so_nothing_is_lost(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 1, 4, 1), 0);
    weft_iter_from_fn s;
    assert_int_equal(weft_iter_from_fn_init(&s, ttw_next, &r.base, sizeof(take_then_wait),
                                            _Alignof(take_then_wait), sizeof(uint64_t),
                                            WEFT_F_SEND),
                     0);
    assert_true(s.base.flags & WEFT_F_SEND);
    assert_int_equal(weft_stream_item_size(&s.base), sizeof(uint64_t));
    uint64_t v = 0;
    weft_stream_next nx;
    int out = -1;
    weft_stream_next_init(&nx, &s.base, &v);
    assert_int_equal(poll_noop(&nx.base, &out), WEFT_PENDING); /* took 1, waits */
    weft_future_drop(&nx.base);                                /* nothing lost */
    assert_int_equal(v, 0);
    for (uint64_t want = 1; want <= 3; want++) {
        assert_int_equal(next_blocking(&s.base, &v), 1);
        assert_int_equal(v, want);
    }
    assert_int_equal(next_blocking(&s.base, &v), 0);
    assert_int_equal(weft_iter_from_fn_error(&s), 0);
    weft_stream_drop(&s.base);
    weft_stream_drop(&r.base);
    assert_int_equal(misuse_count(), 0);
}

/* ---- errors, sizes, drop ----------------------------------------------------------- */

static int fails_next(void *self, weft_future *storage, void *item)
{
    (void)self, (void)storage, (void)item;
    return -EIO;
}

static weft_poll errs_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx;
    *(int *)out = -EBADMSG;
    return WEFT_READY;
}
static const weft_future_ops errs_ops = { "errs", sizeof(int), errs_poll, NULL, NULL };
static int errs_next(void *self, weft_future *storage, void *item)
{
    (void)self, (void)item;
    weft_future_init(storage, &errs_ops, WEFT_F_SEND);
    return 0;
}

static weft_poll wrong_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    return WEFT_READY;
}
static const weft_future_ops wrong_ops = { "outputs_nothing", 0, wrong_poll, NULL, NULL };
static int wrong_next(void *self, weft_future *storage, void *item)
{
    (void)self, (void)item;
    weft_future_init(storage, &wrong_ops, WEFT_F_SEND);
    return 0;
}

static void test_from_fn_errors_and_sizes(void **state)
{
    (void)state;
    weft_iter_from_fn s;
    uint64_t v;
    int before = misuse_count();
    assert_int_equal(weft_iter_from_fn_init(NULL, ttw_next, NULL, 8, 8, 8, 0), -EINVAL);
    assert_int_equal(weft_iter_from_fn_init(&s, NULL, NULL, 8, 8, 8, 0), -EINVAL);
    assert_int_equal(weft_iter_from_fn_init(&s, ttw_next, NULL, 8, 3, 8, 0), -EINVAL);
    assert_int_equal(weft_iter_from_fn_init(&s, ttw_next, NULL, 8, 0, 8, 0), -EINVAL);
    assert_misuse_since(before, 4, "weft_iter_from_fn_init");
    /* Does not fit inside the stream: -ENOSPC. */
    assert_int_equal(weft_iter_from_fn_init(&s, ttw_next, NULL, WEFT_ITER_FROM_FN_STORAGE + 1,
                                            8, 8, 0),
                     -ENOSPC);
    assert_int_equal(weft_iter_from_fn_init(&s, ttw_next, NULL, 8, 64, 8, 0), -ENOSPC);
    assert_int_equal(weft_iter_from_fn_init(&s, ttw_next, NULL, 8, 8,
                                            WEFT_ITER_FROM_FN_ITEM_MAX + 1, 0),
                     -ENOSPC);
    assert_int_equal(weft_iter_from_fn_init(&s, ttw_next, NULL, WEFT_ITER_FROM_FN_STORAGE, 8,
                                            WEFT_ITER_FROM_FN_ITEM_MAX, 0),
                     0);
    assert_false(s.base.flags & WEFT_F_SEND); /* the flags given */
    /* next fails: DONE, the error kept. */
    assert_int_equal(weft_iter_from_fn_init(&s, fails_next, NULL, 8, 8, 8, 0), 0);
    assert_int_equal(next_blocking(&s.base, &v), 0);
    assert_int_equal(weft_iter_from_fn_error(&s), -EIO);
    weft_stream_drop(&s.base);
    /* Its future outputs an error: the same. */
    assert_int_equal(weft_iter_from_fn_init(&s, errs_next, NULL, sizeof(weft_future), 8, 8, 0),
                     0);
    assert_int_equal(next_blocking(&s.base, &v), 0);
    assert_int_equal(weft_iter_from_fn_error(&s), -EBADMSG);
    weft_stream_drop(&s.base);
    /* Its future does not output an int: misuse, -EINVAL, DONE. */
    before = misuse_count();
    assert_int_equal(weft_iter_from_fn_init(&s, wrong_next, NULL, sizeof(weft_future), 8, 8, 0),
                     0);
    assert_int_equal(next_blocking(&s.base, &v), 0);
    assert_int_equal(weft_iter_from_fn_error(&s), -EINVAL);
    assert_misuse_since(before, 1, "outputs_nothing");
    weft_stream_drop(&s.base);
}

/* Dropping the stream with a next future in flight drops that future. */
static int drops;
static void counted_drop(weft_future *f)
{
    (void)f;
    drops++;
}
static weft_poll never_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    return WEFT_PENDING;
}
static const weft_future_ops never_ops = { "never", sizeof(int), never_poll, counted_drop, NULL };
static int never_next(void *self, weft_future *storage, void *item)
{
    (void)self, (void)item;
    weft_future_init(storage, &never_ops, 0);
    return 0;
}

static void test_from_fn_drop_drops_the_future_in_flight(void **state)
{
    (void)state;
    weft_iter_from_fn s;
    uint64_t v;
    drops = 0;
    assert_int_equal(weft_iter_from_fn_init(&s, never_next, NULL, sizeof(weft_future), 8, 8, 0),
                     0);
    weft_stream_drop(&s.base); /* never polled: nothing in flight */
    assert_int_equal(drops, 0);
    assert_int_equal(weft_iter_from_fn_init(&s, never_next, NULL, sizeof(weft_future), 8, 8, 0),
                     0);
    weft_stream_next nx;
    int out;
    weft_stream_next_init(&nx, &s.base, &v);
    assert_int_equal(poll_noop(&nx.base, &out), WEFT_PENDING);
    weft_future_drop(&nx.base);
    assert_int_equal(drops, 0); /* still in the stream */
    weft_stream_drop(&s.base);
    assert_int_equal(drops, 1);
    assert_int_equal(misuse_count(), 0);
}

/* ---- cancel sweep: weft_stream_next over from_fn(take_then_wait over a range) ---- */

typedef struct ff_case {
    weft_iter_range r;
    weft_iter_from_fn s;
    weft_stream_next nx;
    uint64_t item;
    int out;
} ff_case;

static int ff_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    ff_case *c = ctx;
    (void)rt;
    if (weft_iter_range_init(&c->r, 1, 4, 1) != 0 ||
        weft_iter_from_fn_init(&c->s, ttw_next, &c->r.base, sizeof(take_then_wait),
                               _Alignof(take_then_wait), sizeof(uint64_t), WEFT_F_SEND) != 0)
        return -EINVAL;
    c->item = 0;
    c->out = -1;
    weft_stream_next_init(&c->nx, &c->s.base, &c->item);
    *fut = &c->nx.base;
    *out = &c->out;
    return 0;
}

static const char *ff_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    ff_case *c = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    uint64_t got[4];
    size_t n = 0;
    if (run->completed) {
        if (c->out != 1)
            return sweep_say("completed with %d", c->out);
        got[n++] = c->item;
    } else if (c->item != 0) {
        return "a dropped next wrote its item";
    }
    uint64_t v;
    int r;
    while (n < 4 && (r = next_blocking(&c->s.base, &v)) == 1)
        got[n++] = v;
    if (n != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3)
        return sweep_say("k=%u (%s): %zu items in all, want 1 2 3", run->k,
                         run->completed ? "completed" : "dropped", n);
    return NULL;
}

static void ff_teardown(void *ctx)
{
    ff_case *c = ctx;
    weft_stream_drop(&c->s.base);
    weft_stream_drop(&c->r.base);
}

static void test_cancel_sweep_stream_next_over_from_fn(void **state)
{
    (void)state;
    static ff_case c;
    memset(&c, 0, sizeof c);
    weft_sweep_case sc = { ff_build, ff_check, ff_teardown, &c };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2); /* a drop after the take is swept */
    o = sweep_chaos_options(1, 16, 0.5);
    sweep_pass(&sc, &o);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_async_next_dropped_after_the_take_loses_the_item),
        T(test_from_fn_keeps_the_in_flight_next_so_nothing_is_lost),
        T(test_from_fn_errors_and_sizes),
        T(test_from_fn_drop_drops_the_future_in_flight),
        T(test_cancel_sweep_stream_next_over_from_fn),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
