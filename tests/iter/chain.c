/* Tests for iter/chain.c: chain (all of a, then b, batches from each)
 * and zip (pairs; a's item held inside while b is pending, so a fresh
 * next after a drop loses it not), PENDING passed on with the waker,
 * DONE, flags AND over both parts, misuse, and the cancel sweeps over
 * weft_stream_next of each on a channel receiver. */
#include "iter/comb_support.h"

static void test_chain_a_then_b(void **state)
{
    (void)state;
    scripted a, b;
    SCRIPT(&a, &batched_ops, WEFT_F_SEND, 1, S_PENDING, 2, S_DONE);
    SCRIPT(&b, &scripted_ops, WEFT_F_SEND, 3, S_PENDING, 4, S_DONE);
    weft_iter_chain ch;
    assert_int_equal(weft_iter_chain_init(&ch, &a.base, &b.base), 0);
    size_t lo, hi;
    weft_stream_size_hint(&ch.base, &lo, &hi);
    assert_int_equal(lo, 4);
    assert_int_equal(hi, 4);
    counting_waker c;
    cw_init(&c);
    uint64_t v = 0, buf[4];
    size_t n;
    assert_int_equal(next_u64(&ch.base, &c), 1);
    assert_int_equal(b.polls, 0);
    assert_int_equal(pn(&ch.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(pmany(&ch.base, &c, buf, 4, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(buf[0], 2);
    assert_int_equal(b.polls, 0);
    assert_int_equal(next_u64(&ch.base, &c), 3); /* a DONE, b begins */
    assert_int_equal(pn(&ch.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(next_u64(&ch.base, &c), 4);
    assert_int_equal(pn(&ch.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(a.after_done, 0);
    assert_int_equal(b.after_done, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_zip_pairs_and_holds_a_while_b_waits(void **state)
{
    (void)state;
    scripted a, b;
    SCRIPT(&a, &scripted_ops, WEFT_F_SEND, 1, 2, S_PENDING, 3, 4, S_DONE);
    SCRIPT(&b, &scripted_ops, WEFT_F_SEND, 10, S_PENDING, 20, 30, S_DONE);
    weft_iter_zip z;
    assert_int_equal(weft_iter_zip_init(&z, &a.base, &b.base), 0);
    assert_int_equal(weft_stream_item_size(&z.base), 16);
    counting_waker c;
    cw_init(&c);
    uint64_t p[2] = { 0, 0 };
    assert_int_equal(pn(&z.base, &c, p), WEFT_NEXT_ITEM);
    assert_int_equal(p[0], 1);
    assert_int_equal(p[1], 10);
    p[0] = p[1] = 0;
    assert_int_equal(pn(&z.base, &c, p), WEFT_NEXT_PENDING); /* a's 2 held, b pending */
    assert_int_equal(p[0], 0);
    assert_int_equal(cw_woken(&c), 1);
    size_t lo, hi;
    weft_stream_size_hint(&z.base, &lo, &hi);
    assert_int_equal(lo, 2); /* a: 2 held + 3, 4; b: 20, 30 */
    uint64_t q[2] = { 0, 0 }; /* another item buffer: the held 2 is not lost */
    assert_int_equal(pn(&z.base, &c, q), WEFT_NEXT_ITEM);
    assert_int_equal(q[0], 2);
    assert_int_equal(q[1], 20);
    assert_int_equal(pn(&z.base, &c, q), WEFT_NEXT_PENDING); /* a pending */
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(pn(&z.base, &c, q), WEFT_NEXT_ITEM);
    assert_int_equal(q[0], 3);
    assert_int_equal(q[1], 30);
    unsigned bp = b.polls;
    assert_int_equal(pn(&z.base, &c, q), WEFT_NEXT_DONE); /* b DONE */
    assert_int_equal(b.polls, bp + 1);
    assert_int_equal(a.after_done, 0);
    assert_int_equal(b.after_done, 0);
    /* a DONE first: b is not polled. */
    SCRIPT(&a, &scripted_ops, WEFT_F_SEND, S_DONE);
    SCRIPT(&b, &scripted_ops, WEFT_F_SEND, 1);
    assert_int_equal(weft_iter_zip_init(&z, &a.base, &b.base), 0);
    assert_int_equal(pn(&z.base, &c, q), WEFT_NEXT_DONE);
    assert_int_equal(b.polls, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_flags_are_the_and_of_both_parts(void **state)
{
    (void)state;
    for (int fa = 0; fa < 2; fa++)
        for (int fb = 0; fb < 2; fb++) {
            scripted a, b;
            SCRIPT(&a, &scripted_ops, fa ? WEFT_F_SEND : 0, 1);
            SCRIPT(&b, &scripted_ops, fb ? WEFT_F_SEND : 0, 1);
            weft_iter_chain ch;
            weft_iter_zip z;
            assert_int_equal(weft_iter_chain_init(&ch, &a.base, &b.base), 0);
            assert_int_equal(weft_iter_zip_init(&z, &a.base, &b.base), 0);
            ASSERT_SEND_IFF(ch.base.flags, fa && fb);
            ASSERT_SEND_IFF(z.base.flags, fa && fb);
        }
}

static void test_chain_and_zip_misuse(void **state)
{
    (void)state;
    scripted a;
    SCRIPT(&a, &scripted_ops, WEFT_F_SEND, 1);
    weft_iter_enumerate e; /* items of 16 bytes */
    assert_int_equal(weft_iter_enumerate_init(&e, &a.base), 0);
    weft_iter_chain ch;
    weft_iter_zip z;
    int before = misuse_count();
    assert_int_equal(weft_iter_chain_init(&ch, &a.base, &e.base), -EINVAL);
    assert_misuse_since(before, 1, "item sizes differ");
    assert_int_equal(weft_iter_chain_init(&ch, &a.base, NULL), -EINVAL);
    assert_int_equal(weft_iter_zip_init(&z, NULL, &a.base), -EINVAL);
    assert_misuse_since(before, 3, "NULL");
}

static weft_stream *make_chain(comb_sweep *cs)
{
    weft_iter_chain *c = (weft_iter_chain *)cs->st.b;
    cs->extra.end = 102;
    return weft_iter_chain_init(c, &cs->rx.base, &cs->extra.base) ? NULL : &c->base;
}

static weft_stream *make_zip_rx_first(comb_sweep *cs)
{
    weft_iter_zip *z = (weft_iter_zip *)cs->st.b;
    return weft_iter_zip_init(z, &cs->rx.base, &cs->extra.base) ? NULL : &z->base;
}

/* The receiver second: the counter's item is taken and held while the
 * receiver is pending — the case a drop must not lose. */
static weft_stream *make_zip_rx_second(comb_sweep *cs)
{
    weft_iter_zip *z = (weft_iter_zip *)cs->st.b;
    return weft_iter_zip_init(z, &cs->extra.base, &cs->rx.base) ? NULL : &z->base;
}

static void test_cancel_sweep_chain(void **state)
{
    (void)state;
    COMB_SWEEP("chain", make_chain, 1, 1, 2, 3, 4, 5, 6, 100, 101);
}

static void test_cancel_sweep_zip(void **state)
{
    (void)state;
    COMB_SWEEP("zip", make_zip_rx_first, 2, 1, 100, 2, 101, 3, 102, 4, 103, 5, 104, 6, 105);
    COMB_SWEEP("zip", make_zip_rx_second, 2, 100, 1, 101, 2, 102, 3, 103, 4, 104, 5, 105, 6);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_chain_a_then_b),
        T(test_zip_pairs_and_holds_a_while_b_waits),
        T(test_flags_are_the_and_of_both_parts),
        T(test_chain_and_zip_misuse),
        T(test_cancel_sweep_chain),
        T(test_cancel_sweep_zip),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
