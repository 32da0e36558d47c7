/* Tests for iter/source.c: the array, range, repeat, once and empty
 * streams yield their items in order and then DONE, say how many are left
 * (size_hint), refuse bad arguments, batch through poll_next_many, and a
 * weft_stream_next over each, dropped after any number of polls (a cancel
 * sweep, chaos on), leaves every item it did not return in the stream. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/counting_waker.h"
#include "support/misuse_capture.h"
#include "support/sweep.h"

/* One poll_next by hand (no runtime, so no chaos): PENDING never comes. */
static weft_next next1(weft_stream *s, void *item)
{
    weft_waker w = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_stream_poll_next(s, &cx, item);
}

static void expect_hint(weft_stream *s, size_t lo, size_t hi)
{
    size_t l = 1234, h = 1234;
    weft_stream_size_hint(s, &l, &h);
    assert_int_equal(l, lo);
    assert_int_equal(h, hi);
}

static void test_array_in_order_then_done(void **state)
{
    (void)state;
    const uint32_t a[] = { 10, 20, 30 };
    weft_iter_array s;
    assert_int_equal(weft_iter_array_init(&s, a, sizeof *a, 3), 0);
    assert_true(s.base.flags & WEFT_F_SEND);
    assert_int_equal(weft_stream_item_size(&s.base), sizeof(uint32_t));
    expect_hint(&s.base, 3, 3);
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(next1(&s.base, &v), WEFT_NEXT_ITEM);
        assert_int_equal(v, a[i]);
        expect_hint(&s.base, (size_t)(2 - i), (size_t)(2 - i));
    }
    v = 99;
    assert_int_equal(next1(&s.base, &v), WEFT_NEXT_DONE);
    assert_int_equal(v, 99);
    weft_stream_drop(&s.base);
    /* Empty array, NULL items: DONE at once. */
    assert_int_equal(weft_iter_array_init(&s, NULL, 4, 0), 0);
    assert_int_equal(next1(&s.base, &v), WEFT_NEXT_DONE);
    assert_int_equal(misuse_count(), 0);
}

static void test_array_batches(void **state)
{
    (void)state;
    const uint16_t a[] = { 1, 2, 3, 4, 5 };
    weft_iter_array s;
    assert_int_equal(weft_iter_array_init(&s, a, sizeof *a, 5), 0);
    weft_waker w = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &w);
    uint16_t b[8] = { 0 };
    size_t n = 0;
    assert_int_equal(weft_stream_poll_next_many(&s.base, &cx, b, 3, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
    assert_int_equal(b[2], 3);
    assert_int_equal(weft_stream_poll_next_many(&s.base, &cx, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(b[0], 4);
    assert_int_equal(b[1], 5);
    assert_int_equal(weft_stream_poll_next_many(&s.base, &cx, b, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(n, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_range_in_order_then_done(void **state)
{
    (void)state;
    weft_iter_range r;
    uint64_t v = 0;
    assert_int_equal(weft_iter_range_init(&r, 3, 12, 4), 0); /* 3 7 11 */
    assert_int_equal(weft_stream_item_size(&r.base), sizeof(uint64_t));
    expect_hint(&r.base, 3, 3);
    const uint64_t want[] = { 3, 7, 11 };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(next1(&r.base, &v), WEFT_NEXT_ITEM);
        assert_int_equal(v, want[i]);
    }
    assert_int_equal(next1(&r.base, &v), WEFT_NEXT_DONE);
    expect_hint(&r.base, 0, 0);
    /* hi excluded; lo >= hi: nothing. */
    assert_int_equal(weft_iter_range_init(&r, 0, 2, 1), 0);
    expect_hint(&r.base, 2, 2);
    assert_int_equal(weft_iter_range_init(&r, 5, 5, 1), 0);
    assert_int_equal(next1(&r.base, &v), WEFT_NEXT_DONE);
    assert_int_equal(weft_iter_range_init(&r, 9, 2, 1), 0);
    expect_hint(&r.base, 0, 0);
    assert_int_equal(next1(&r.base, &v), WEFT_NEXT_DONE);
    /* Up to the top of uint64_t without overflow. */
    assert_int_equal(weft_iter_range_init(&r, UINT64_MAX - 5, UINT64_MAX, 3), 0);
    assert_int_equal(next1(&r.base, &v), WEFT_NEXT_ITEM);
    assert_true(v == UINT64_MAX - 5);
    assert_int_equal(next1(&r.base, &v), WEFT_NEXT_ITEM);
    assert_true(v == UINT64_MAX - 2);
    assert_int_equal(next1(&r.base, &v), WEFT_NEXT_DONE);
    assert_int_equal(misuse_count(), 0);
}

static void test_repeat_once_empty(void **state)
{
    (void)state;
    weft_iter_repeat r;
    const char val[3] = { 'a', 'b', 'c' };
    char got[3];
    assert_int_equal(weft_iter_repeat_init(&r, val, 3, 2), 0);
    assert_int_equal(weft_stream_item_size(&r.base), 3);
    expect_hint(&r.base, 2, 2);
    for (int i = 0; i < 2; i++) {
        memset(got, 0, 3);
        assert_int_equal(next1(&r.base, got), WEFT_NEXT_ITEM);
        assert_memory_equal(got, val, 3);
    }
    assert_int_equal(next1(&r.base, got), WEFT_NEXT_DONE);
    /* Forever: never DONE; the hint says unbounded above and below. */
    int x = 7, y = 0;
    assert_int_equal(weft_iter_repeat_init(&r, &x, sizeof x, WEFT_ITER_FOREVER), 0);
    x = 8; /* copied at init */
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(next1(&r.base, &y), WEFT_NEXT_ITEM);
        assert_int_equal(y, 7);
    }
    expect_hint(&r.base, SIZE_MAX, SIZE_MAX);
    /* Once. */
    weft_iter_once o;
    assert_int_equal(weft_iter_once_init(&o, &x, sizeof x), 0);
    expect_hint(&o.base, 1, 1);
    assert_int_equal(next1(&o.base, &y), WEFT_NEXT_ITEM);
    assert_int_equal(y, 8);
    assert_int_equal(next1(&o.base, &y), WEFT_NEXT_DONE);
    /* Zero times: empty. */
    assert_int_equal(weft_iter_repeat_init(&r, &x, sizeof x, 0), 0);
    assert_int_equal(next1(&r.base, &y), WEFT_NEXT_DONE);
    /* Empty. */
    weft_iter_empty e;
    assert_int_equal(weft_iter_empty_init(&e, 16), 0);
    assert_int_equal(weft_stream_item_size(&e.base), 16);
    expect_hint(&e.base, 0, 0);
    assert_int_equal(next1(&e.base, &y), WEFT_NEXT_DONE);
    assert_int_equal(misuse_count(), 0);
#ifndef NDEBUG
    /* Polled after DONE: refused by name. */
    assert_int_equal(next1(&e.base, &y), WEFT_NEXT_PENDING);
    assert_misuse_since(0, 1, "weft_iter_empty");
#endif
}

static void test_bad_arguments(void **state)
{
    (void)state;
    weft_iter_array a;
    weft_iter_range r;
    weft_iter_repeat p;
    weft_iter_empty e;
    char big[WEFT_ITER_VALUE_MAX + 1] = { 0 };
    int before = misuse_count();
    assert_int_equal(weft_iter_array_init(NULL, big, 1, 1), -EINVAL);
    assert_int_equal(weft_iter_array_init(&a, NULL, 1, 1), -EINVAL);
    assert_int_equal(weft_iter_array_init(&a, big, WEFT_ITEM_SIZE_VARIES, 1), -EINVAL);
    assert_int_equal(weft_iter_range_init(NULL, 0, 1, 1), -EINVAL);
    assert_int_equal(weft_iter_range_init(&r, 0, 1, 0), -EINVAL);
    assert_int_equal(weft_iter_repeat_init(NULL, big, 1, 1), -EINVAL);
    assert_int_equal(weft_iter_repeat_init(&p, big, sizeof big, 1), -EINVAL);
    assert_int_equal(weft_iter_repeat_init(&p, NULL, 1, 1), -EINVAL);
    assert_int_equal(weft_iter_once_init(&p, NULL, 4), -EINVAL);
    assert_int_equal(weft_iter_empty_init(NULL, 1), -EINVAL);
    assert_int_equal(weft_iter_empty_init(&e, WEFT_ITEM_SIZE_VARIES), -EINVAL);
    assert_misuse_since(before, 11, "weft_iter_empty_init");
}

/* ---- cancel sweeps over weft_stream_next of each source ---------------------- */

enum { SRC_ARRAY, SRC_RANGE, SRC_REPEAT, SRC_FOREVER, SRC_ONCE, SRC_EMPTY, SRC_KINDS };

static const uint64_t k_array[] = { 5, 6, 7, 8 };

typedef struct src_case {
    int kind;
    union {
        weft_iter_array a;
        weft_iter_range r;
        weft_iter_repeat p;
        weft_iter_empty e;
    } u;
    weft_stream_next nx;
    uint64_t item;
    int out;
} src_case;

/* The items each kind yields (the forever one: its first 4). */
static size_t src_expect(int kind, uint64_t *want)
{
    switch (kind) {
    case SRC_ARRAY:
        memcpy(want, k_array, sizeof k_array);
        return 4;
    case SRC_RANGE:
        for (int i = 0; i < 4; i++)
            want[i] = 100 + 10 * (uint64_t)i;
        return 4;
    case SRC_REPEAT:
    case SRC_FOREVER:
        for (int i = 0; i < 4; i++)
            want[i] = 42;
        return kind == SRC_REPEAT ? 3 : 4;
    case SRC_ONCE:
        want[0] = 9;
        return 1;
    default:
        return 0;
    }
}

static weft_stream *src_make(src_case *c)
{
    uint64_t v42 = 42, v9 = 9;
    int rc = -1;
    switch (c->kind) {
    case SRC_ARRAY:
        rc = weft_iter_array_init(&c->u.a, k_array, sizeof *k_array, 4);
        break;
    case SRC_RANGE:
        rc = weft_iter_range_init(&c->u.r, 100, 131, 10);
        break;
    case SRC_REPEAT:
        rc = weft_iter_repeat_init(&c->u.p, &v42, sizeof v42, 3);
        break;
    case SRC_FOREVER:
        rc = weft_iter_repeat_init(&c->u.p, &v42, sizeof v42, WEFT_ITER_FOREVER);
        break;
    case SRC_ONCE:
        rc = weft_iter_once_init(&c->u.p, &v9, sizeof v9);
        break;
    default:
        rc = weft_iter_empty_init(&c->u.e, sizeof(uint64_t));
    }
    return rc == 0 ? &c->u.a.base : NULL;
}

static int src_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    src_case *c = ctx;
    (void)rt;
    weft_stream *s = src_make(c);
    if (!s)
        return -EINVAL;
    c->item = 0;
    c->out = -1;
    weft_stream_next_init(&c->nx, s, &c->item);
    *fut = &c->nx.base;
    *out = &c->out;
    return 0;
}

static const char *src_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    src_case *c = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    uint64_t want[4], got[5];
    size_t nwant = src_expect(c->kind, want), ngot = 0;
    if (run->completed) {
        if (c->out != (nwant > 0))
            return sweep_say("kind %d: next output %d", c->kind, c->out);
        if (c->out == 1)
            got[ngot++] = c->item;
    } else if (c->item != 0 || c->out != -1) {
        return sweep_say("kind %d k=%u: a dropped next wrote", c->kind, run->k);
    }
    /* What the stream still has (by hand, no chaos): exactly the rest. */
    uint64_t v;
    weft_next r = WEFT_NEXT_DONE;
    if (!(run->completed && nwant == 0)) {
        size_t lim = c->kind == SRC_FOREVER ? 4 : 5;
        while (ngot < lim && (r = next1(&c->u.a.base, &v)) == WEFT_NEXT_ITEM)
            got[ngot++] = v;
    }
    if (ngot != nwant || memcmp(got, want, nwant * sizeof *want) != 0)
        return sweep_say("kind %d k=%u (%s): %zu items after the drop, want %zu", c->kind,
                         run->k, run->completed ? "completed" : "dropped", ngot, nwant);
    if (c->kind != SRC_FOREVER && r != WEFT_NEXT_DONE)
        return sweep_say("kind %d: not DONE after its items", c->kind);
    return NULL;
}

static void src_teardown(void *ctx)
{
    weft_stream_drop(&((src_case *)ctx)->u.a.base);
}

static void test_cancel_sweep_stream_next_of_each_source(void **state)
{
    (void)state;
    static src_case c;
    for (int kind = 0; kind < SRC_KINDS; kind++) {
        memset(&c, 0, sizeof c);
        c.kind = kind;
        weft_sweep_case sc = { src_build, src_check, src_teardown, &c };
        weft_sweep_options o = sweep_options(1, 1);
        sweep_pass(&sc, &o);
        o = sweep_chaos_options(1, 16, 0.5);
        weft_sweep_result res = sweep_pass(&sc, &o);
        assert_true(res.polls >= 2); /* chaos made it wait at least once */
    }
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_array_in_order_then_done),
        T(test_array_batches),
        T(test_range_in_order_then_done),
        T(test_repeat_once_empty),
        T(test_bad_arguments),
        T(test_cancel_sweep_stream_next_of_each_source),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
