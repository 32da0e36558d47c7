/* Tests for iter/enumerate.c: (index, item) pairs in order, PENDING passed
 * on with the waker without spending an index, DONE, flags AND, misuse,
 * and the cancel sweep over weft_stream_next on a channel receiver. */
#include "iter/comb_support.h"

static void test_enumerate_pairs_in_order(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 10, S_PENDING, 20, 30, S_DONE);
    weft_iter_enumerate e;
    assert_int_equal(weft_iter_enumerate_init(&e, &sc.base), 0);
    assert_int_equal(weft_stream_item_size(&e.base), WEFT_ITER_ENUM_OFFSET + 8);
    counting_waker c;
    cw_init(&c);
    uint64_t p[2] = { 0, 0 };
    assert_int_equal(pn(&e.base, &c, p), WEFT_NEXT_ITEM);
    assert_int_equal(p[0], 0);
    assert_int_equal(p[1], 10);
    p[0] = 99;
    assert_int_equal(pn(&e.base, &c, p), WEFT_NEXT_PENDING);
    assert_int_equal(p[0], 99);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(pn(&e.base, &c, p), WEFT_NEXT_ITEM);
    assert_int_equal(p[0], 1); /* the PENDING spent no index */
    assert_int_equal(p[1], 20);
    assert_int_equal(pn(&e.base, &c, p), WEFT_NEXT_ITEM);
    assert_int_equal(p[0], 2);
    assert_int_equal(p[1], 30);
    assert_int_equal(pn(&e.base, &c, p), WEFT_NEXT_DONE);
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_enumerate_flags_and_misuse(void **state)
{
    (void)state;
    for (int send = 0; send < 2; send++) {
        scripted sc;
        SCRIPT(&sc, &scripted_ops, send ? WEFT_F_SEND : 0, 1);
        weft_iter_enumerate e;
        assert_int_equal(weft_iter_enumerate_init(&e, &sc.base), 0);
        ASSERT_SEND_IFF(e.base.flags, send);
    }
    weft_iter_enumerate e;
    int before = misuse_count();
    assert_int_equal(weft_iter_enumerate_init(&e, NULL), -EINVAL);
    assert_misuse_since(before, 1, "weft_iter_enumerate_init");
}

static const int64_t bs_script[] = { 5, 6, S_PENDING, 7, 8, 9, S_PENDING, S_PENDING, 10,
                                     11, 12, 13, 14, 15, 16, 17, S_PENDING, 18, S_DONE };

static weft_stream *up_enumerate(void *st, weft_stream *up)
{
    weft_iter_enumerate *e = st;
    return weft_iter_enumerate_init(e, up) ? NULL : &e->base;
}

/* Pairs spread from a batch pulled into the array's tail: the same pairs,
 * indexes unbroken, as one by one, whatever the batch sizes. */
static void test_enumerate_batches(void **state)
{
    (void)state;
    batch_same_items(up_enumerate, bs_script, sizeof bs_script / sizeof *bs_script, 16, 14);
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 10, 20, 30, 40, S_DONE);
    weft_iter_enumerate e;
    assert_int_equal(weft_iter_enumerate_init(&e, &sc.base), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t p[8][2];
    size_t n;
    assert_int_equal(pn(&e.base, &c, p[0]), WEFT_NEXT_ITEM);
    assert_int_equal(pmany(&e.base, &c, p, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
    assert_int_equal(sc.batch_calls, 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(p[i][0], i + 1);
        assert_int_equal(p[i][1], 10 * (i + 2));
    }
    assert_int_equal(pmany(&e.base, &c, p, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(misuse_count(), 0);
}

static weft_stream *make_enumerate(comb_sweep *cs)
{
    weft_iter_enumerate *e = (weft_iter_enumerate *)cs->st.b;
    return weft_iter_enumerate_init(e, &cs->rx.base) ? NULL : &e->base;
}

static void test_cancel_sweep_enumerate(void **state)
{
    (void)state;
    COMB_SWEEP("enumerate", make_enumerate, 2, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6);
}

static void test_cancel_sweep_enumerate_batches(void **state)
{
    (void)state;
    COMB_SWEEP_MANY("enumerate batches", make_enumerate, 2, 3, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5,
                    5, 6);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_enumerate_pairs_in_order),
        T(test_enumerate_flags_and_misuse),
        T(test_enumerate_batches),
        T(test_cancel_sweep_enumerate),
        T(test_cancel_sweep_enumerate_batches),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
