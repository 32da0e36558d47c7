/* Tests for iter/fuse.c: items and PENDING passed on, and once the
 * upstream said DONE it is never polled again however often
 * weft_iter_fuse_poll_next asks (the generic poll still reports a poll
 * after DONE); flags AND, misuse, the cancel sweep over weft_stream_next. */
#include "iter/comb_support.h"

static void test_fuse_done_stays_done(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, S_PENDING, 2, 3, S_DONE);
    weft_iter_fuse f;
    assert_int_equal(weft_iter_fuse_init(&f, &sc.base), 0);
    counting_waker c;
    cw_init(&c);
    weft_waker w = cw_waker(&c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    uint64_t b[4];
    size_t n;
    assert_int_equal(weft_iter_fuse_poll_next(&f, &cx, b), WEFT_NEXT_ITEM);
    assert_int_equal(b[0], 1);
    assert_int_equal(weft_iter_fuse_poll_next(&f, &cx, b), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(pmany(&f.base, &c, b, 4, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(b[1], 3);
    assert_false(weft_iter_fuse_is_done(&f));
    for (int i = 0; i < 5; i++)
        assert_int_equal(weft_iter_fuse_poll_next(&f, &cx, b), WEFT_NEXT_DONE);
    assert_true(weft_iter_fuse_is_done(&f));
    assert_int_equal(sc.after_done, 0);
    size_t lo, hi;
    weft_stream_size_hint(&f.base, &lo, &hi);
    assert_int_equal(hi, 0);
    assert_int_equal(misuse_count(), 0);
#ifndef NDEBUG
    /* Through the generic poll, a DONE fuse is a stream like any other. */
    assert_int_equal(pn(&f.base, &c, b), WEFT_NEXT_DONE);
    assert_int_equal(pn(&f.base, &c, b), WEFT_NEXT_PENDING);
    assert_misuse_since(0, 1, "weft_iter_fuse");
#endif
    assert_int_equal(sc.after_done, 0);
}

static void test_fuse_flags_and_misuse(void **state)
{
    (void)state;
    for (int send = 0; send < 2; send++) {
        scripted sc;
        SCRIPT(&sc, &scripted_ops, send ? WEFT_F_SEND : 0, 1);
        weft_iter_fuse f;
        assert_int_equal(weft_iter_fuse_init(&f, &sc.base), 0);
        ASSERT_SEND_IFF(f.base.flags, send);
    }
    int before = misuse_count();
    assert_int_equal(weft_iter_fuse_init(NULL, NULL), -EINVAL);
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1);
    weft_cx cx;
    counting_waker c;
    cw_init(&c);
    weft_waker w = cw_waker(&c);
    weft_cx_init(&cx, &w);
    uint64_t v;
    /* Not a fuse: refused, not run. */
    assert_int_equal(weft_iter_fuse_poll_next((weft_iter_fuse *)&sc, &cx, &v),
                     WEFT_NEXT_PENDING);
    assert_int_equal(sc.polls, 0);
    assert_misuse_since(before, 2, "not a fuse");
}

static weft_stream *make_fuse(comb_sweep *cs)
{
    weft_iter_fuse *f = (weft_iter_fuse *)cs->st.b;
    return weft_iter_fuse_init(f, &cs->rx.base) ? NULL : &f->base;
}

static void test_cancel_sweep_fuse(void **state)
{
    (void)state;
    COMB_SWEEP("fuse", make_fuse, 1, 1, 2, 3, 4, 5, 6);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_fuse_done_stays_done),
        T(test_fuse_flags_and_misuse),
        T(test_cancel_sweep_fuse),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
