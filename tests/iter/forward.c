/* weft_iter_forward: every item of a stream into a sink exactly once,
 * waiting for the sink's room before taking an item (so a dropped
 * forward loses nothing), flushing and closing, and the sink's errors. */
#include "iter/sink_support.h"

/* A range into a bounded channel drained by a collect task: every item
 * once, in order; close ends the receiver's stream. */
static void test_forward_range_into_a_channel(void **state)
{
    (void)state;
    enum { N = 200 };
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, N, 1), 0);
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 3), 0);
    static uint64_t got[N + 1];
    size_t n = 0;
    weft_iter_collect col;
    assert_int_equal(weft_iter_collect_init(&col, &rx.base, got, N + 1, &n), 0);
    weft_join j;
    spawn_into(g_rt, &col.base, sizeof col, &j);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &tx.base, true), 0);
    assert_true(weft_future_is_send(&f.base));
    int out = -1;
    assert_int_equal(weft_block_on(g_rt, &f.base, &out, sizeof out), 0);
    assert_int_equal(out, 0);
    assert_int_equal(join_int(g_rt, &j), 0);
    assert_int_equal(n, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(got[i], i);
    weft_chan_tx_drop(&tx);
    weft_chan_rx_drop(&rx);
}

/* A full bounded channel makes forward wait: it takes no item from the
 * stream until the channel has room, and a receive wakes it. */
static void test_forward_waits_for_room(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, 10, 1), 0);
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 2), 0);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &tx.base, false), 0);
    counting_waker c;
    cw_init(&c);
    int out = -1;
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_PENDING);
    assert_int_equal(weft_chan_len(&rx), 2);
    size_t lo, hi;
    weft_stream_size_hint(&r.base, &lo, &hi);
    assert_int_equal(lo, 8); /* nothing taken beyond what the channel holds */
    long before = cw_woken(&c);
    uint64_t v = 99;
    assert_int_equal(weft_chan_try_recv(&rx, &v), 0);
    assert_int_equal(v, 0);
    assert_true(cw_woken(&c) > before); /* room wakes the forward */
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_PENDING);
    weft_stream_size_hint(&r.base, &lo, &hi);
    assert_int_equal(lo, 7);
    /* Dropped here: items 1, 2 are in the channel, 3.. in the range. */
    weft_future_drop(&f.base);
    for (uint64_t want = 1; want <= 2; want++) {
        assert_int_equal(weft_chan_try_recv(&rx, &v), 0);
        assert_int_equal(v, want);
    }
    assert_int_equal(weft_chan_try_recv(&rx, &v), -EAGAIN);
    counting_waker c2;
    cw_init(&c2);
    assert_int_equal(pn_u64(&r.base, &c2, &v), WEFT_NEXT_ITEM);
    assert_int_equal(v, 3);
    weft_chan_tx_drop(&tx);
    weft_chan_rx_drop(&rx);
}

/* The receiver gone: -EPIPE, and the item forward would have sent stays
 * in the stream (poll_ready failed before it was taken). */
static void test_forward_closed_channel_is_epipe(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, 10, 1), 0);
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 4), 0);
    weft_chan_rx_drop(&rx);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &tx.base, true), 0);
    counting_waker c;
    cw_init(&c);
    int out = 0;
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_READY);
    assert_int_equal(out, -EPIPE);
    assert_false(weft_iter_forward_refused(&f, NULL));
    size_t lo, hi;
    weft_stream_size_hint(&r.base, &lo, &hi);
    assert_int_equal(lo, 10);
    weft_future_drop(&f.base);
    weft_chan_tx_drop(&tx);
}

/* A sink whose start_send refuses: the refused item is handed back. */
static int refuse_send(void *self, const void *item, weft_future *storage)
{
    (void)self;
    (void)storage;
    return *(const uint64_t *)item == 3 ? -EIO : -ENOSYS;
}

static void test_forward_hands_back_a_refused_item(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 3, 10, 1), 0);
    weft_iter_sink_fn s;
    assert_int_equal(weft_iter_sink_from_fn(&s, refuse_send, NULL, 8, 8, sizeof(uint64_t),
                                            WEFT_F_SEND),
                     0);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &s.base, false), 0);
    counting_waker c;
    cw_init(&c);
    int out = 0;
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_READY);
    assert_int_equal(out, -EIO);
    uint64_t v = 0;
    assert_true(weft_iter_forward_refused(&f, &v));
    assert_int_equal(v, 3);
    weft_future_drop(&f.base);
    weft_sink_drop(&s.base);
}

static void test_forward_bad_arguments(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, 10, 1), 0);
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint32_t), 4), 0);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(NULL, &r.base, &tx.base, false), -EINVAL);
    assert_int_equal(weft_iter_forward_init(&f, NULL, &tx.base, false), -EINVAL);
    assert_int_equal(weft_iter_forward_init(&f, &r.base, NULL, false), -EINVAL);
    /* 8-byte items into a sink of 4-byte ones. */
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &tx.base, false), -EINVAL);
    assert_true(misuse_reported(4, "weft_iter_forward_init"));
    weft_chan_tx_drop(&tx);
    weft_chan_rx_drop(&rx);
    misuse_reset();
}

/* Chaos: over many seeds, a channel source through forward into a small
 * channel, drained by a task: every item once, in order. */
static void test_forward_chaos(void **state)
{
    (void)state;
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        weft_rt *rt = chaos_sim(seed);
        static sk_sweep s;
        memset(&s, 0, sizeof s);
        weft_chan_tx stx;
        assert_int_equal(weft_mpsc_new(&stx, &s.src, sizeof(uint64_t), SK_N), 0);
        sk_feeder fd = { WEFT_FN_INIT(sk_feeder, WEFT_F_SEND), .tx = stx, .n = SK_N };
        assert_int_equal(weft_spawn(rt, &fd.base, sizeof fd, NULL), 0);
        assert_int_equal(weft_mpsc_new(&s.tx[0], &s.rx[0], sizeof(uint64_t), 1), 0);
        weft_iter_collect col;
        assert_int_equal(weft_iter_collect_init(&col, &s.rx[0].base, s.got[0], 4 * SK_N,
                                                &s.got_n[0]),
                         0);
        weft_join j;
        spawn_into(rt, &col.base, sizeof col, &j);
        assert_int_equal(weft_iter_forward_init(&s.fwd, &s.src.base, &s.tx[0].base, true), 0);
        weft_join jf;
        spawn_into(rt, &s.fwd.base, sizeof s.fwd, &jf);
        assert_int_equal(join_int(rt, &jf), 0);
        assert_int_equal(join_int(rt, &j), 0);
        assert_int_equal(s.got_n[0], SK_N);
        for (size_t i = 0; i < SK_N; i++)
            assert_int_equal(s.got[0][i], i + 1);
        weft_chan_tx_drop(&s.tx[0]);
        weft_chan_rx_drop(&s.rx[0]);
        weft_chan_rx_drop(&s.src);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* Dropped after any poll: each item is still in the source or was
 * received exactly once. */
static void test_cancel_sweep_forward(void **state)
{
    (void)state;
    sk_sweep_run(SK_CHAN);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup_g_rt, rt_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_forward_range_into_a_channel),
        SIM(test_forward_range_into_a_channel),
        T(test_forward_waits_for_room),
        T(test_forward_closed_channel_is_epipe),
        T(test_forward_hands_back_a_refused_item),
        T(test_forward_bad_arguments),
        T(test_forward_chaos),
        T(test_cancel_sweep_forward),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
