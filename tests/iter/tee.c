/* weft_iter_tee (one sink writing to two) and weft_iter_sink_map: items
 * exactly once on both sides end to end (stream -> forward -> tee -> two
 * channels), both sides' readiness respected, errors, chaos, and a cancel
 * sweep over a tee-driven forward. */
#include "iter/sink_support.h"

/* A range through forward and a tee into two bounded channels of
 * different capacities, each drained by a collect task: both receive
 * every item once, in order; closing the tee closes both channels. */
static void test_tee_end_to_end(void **state)
{
    (void)state;
    enum { N = 300 };
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, N, 1), 0);
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    static uint64_t got[2][N + 1];
    size_t n[2] = { 0, 0 };
    weft_iter_collect col[2];
    weft_join j[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(weft_mpsc_new(&tx[i], &rx[i], sizeof(uint64_t), 1 + 4 * (size_t)i), 0);
        assert_int_equal(weft_iter_collect_init(&col[i], &rx[i].base, got[i], N + 1, &n[i]), 0);
        spawn_into(g_rt, &col[i].base, sizeof col[i], &j[i]);
    }
    weft_iter_tee t;
    assert_int_equal(weft_iter_tee_init(&t, &tx[0].base, &tx[1].base), 0);
    assert_true(t.base.flags & WEFT_F_SEND);
    assert_int_equal(weft_sink_item_size(&t.base), sizeof(uint64_t));
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &t.base, true), 0);
    int out = -1;
    assert_int_equal(weft_block_on(g_rt, &f.base, &out, sizeof out), 0);
    assert_int_equal(out, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(join_int(g_rt, &j[i]), 0);
        assert_int_equal(n[i], N);
        for (size_t k = 0; k < N; k++)
            assert_int_equal(got[i][k], k);
        weft_chan_tx_drop(&tx[i]);
        weft_chan_rx_drop(&rx[i]);
    }
}

/* The tee is ready only when both sides are: with side a full, nothing
 * is sent to either, and b never runs ahead of a. */
static void test_tee_waits_for_both_sides(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, 10, 1), 0);
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    assert_int_equal(weft_mpsc_new(&tx[0], &rx[0], sizeof(uint64_t), 1), 0);
    assert_int_equal(weft_mpsc_new(&tx[1], &rx[1], sizeof(uint64_t), 8), 0);
    weft_iter_tee t;
    assert_int_equal(weft_iter_tee_init(&t, &tx[0].base, &tx[1].base), 0);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &t.base, false), 0);
    counting_waker c;
    cw_init(&c);
    int out = -1;
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_PENDING);
    assert_int_equal(weft_chan_len(&rx[0]), 1);
    assert_int_equal(weft_chan_len(&rx[1]), 1);
    for (uint64_t want = 0; want < 3; want++) {
        uint64_t v = 99;
        long before = cw_woken(&c);
        assert_int_equal(weft_chan_try_recv(&rx[0], &v), 0);
        assert_int_equal(v, want);
        assert_true(cw_woken(&c) > before);
        assert_int_equal(fpoll(&f.base, &c, &out), WEFT_PENDING);
        assert_int_equal(weft_chan_len(&rx[0]), 1);
        assert_int_equal(weft_chan_len(&rx[1]), want + 2);
    }
    size_t lo, hi;
    weft_stream_size_hint(&r.base, &lo, &hi);
    assert_int_equal(lo, 6);
    weft_future_drop(&f.base);
    for (int i = 0; i < 2; i++) {
        weft_chan_tx_drop(&tx[i]);
        weft_chan_rx_drop(&rx[i]);
    }
}

/* One side's receiver gone: -EPIPE from forward, the item not taken from
 * the stream; the error sticks; close still closes the live side. */
static void test_tee_closed_side_is_epipe(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, 10, 1), 0);
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(weft_mpsc_new(&tx[i], &rx[i], sizeof(uint64_t), 4), 0);
    weft_iter_tee t;
    assert_int_equal(weft_iter_tee_init(&t, &tx[0].base, &tx[1].base), 0);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &t.base, false), 0);
    counting_waker c;
    cw_init(&c);
    int out = -1;
    /* Two items in, then b's receiver goes. */
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_PENDING);
    weft_future_drop(&f.base);
    weft_chan_rx_drop(&rx[1]);
    size_t lo, hi;
    weft_stream_size_hint(&r.base, &lo, &hi);
    assert_int_equal(lo, 6);
    uint64_t v;
    for (uint64_t want = 0; want < 4; want++) {
        assert_int_equal(weft_chan_try_recv(&rx[0], &v), 0);
        assert_int_equal(v, want);
    }
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &t.base, true), 0);
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_READY);
    assert_int_equal(out, -EPIPE);
    weft_stream_size_hint(&r.base, &lo, &hi);
    assert_int_equal(lo, 6); /* nothing taken */
    int res = 0;
    assert_int_equal(spoll(weft_sink_poll_ready, &t.base, &c, &res), WEFT_READY);
    assert_int_equal(res, -EPIPE);
    assert_int_equal(weft_sink_start_send(&t.base, &v), -EPIPE);
    weft_future_drop(&f.base);
    for (int i = 0; i < 2; i++)
        weft_chan_tx_drop(&tx[i]);
    weft_chan_rx_drop(&rx[0]);
}

static void test_tee_bad_arguments(void **state)
{
    (void)state;
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    assert_int_equal(weft_mpsc_new(&tx[0], &rx[0], sizeof(uint64_t), 4), 0);
    assert_int_equal(weft_mpsc_new(&tx[1], &rx[1], sizeof(uint32_t), 4), 0);
    weft_iter_tee t;
    assert_int_equal(weft_iter_tee_init(NULL, &tx[0].base, &tx[1].base), -EINVAL);
    assert_int_equal(weft_iter_tee_init(&t, NULL, &tx[1].base), -EINVAL);
    assert_int_equal(weft_iter_tee_init(&t, &tx[0].base, &tx[0].base), -EINVAL);
    assert_int_equal(weft_iter_tee_init(&t, &tx[0].base, &tx[1].base), -EINVAL);
    assert_true(misuse_reported(4, "weft_iter_tee_init"));
    misuse_reset();
    for (int i = 0; i < 2; i++) {
        weft_chan_tx_drop(&tx[i]);
        weft_chan_rx_drop(&rx[i]);
    }
}

/* ---- sink_map ----------------------------------------------------------------------- */

static void times_ten(void *ctx, const void *in, void *out)
{
    (void)ctx;
    uint64_t v = *(const uint32_t *)in;
    v *= 10;
    memcpy(out, &v, sizeof v);
}

/* uint32_t items mapped to uint64_t ones before a channel; readiness and
 * errors are the channel's. */
static void test_sink_map(void **state)
{
    (void)state;
    static const uint32_t in[] = { 1, 2, 3, 4, 5 };
    weft_iter_array a;
    assert_int_equal(weft_iter_array_init(&a, in, sizeof *in, 5), 0);
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 3), 0);
    weft_iter_sink_map m;
    assert_int_equal(weft_iter_sink_map_init(&m, &tx.base, times_ten, NULL, sizeof(uint32_t)),
                     0);
    assert_int_equal(weft_sink_item_size(&m.base), sizeof(uint32_t));
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &a.base, &m.base, true), 0);
    counting_waker c;
    cw_init(&c);
    int out = -1;
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_PENDING); /* full at 3 */
    uint64_t v;
    for (uint64_t want = 10; want <= 30; want += 10) {
        assert_int_equal(weft_chan_try_recv(&rx, &v), 0);
        assert_int_equal(v, want);
    }
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    for (uint64_t want = 40; want <= 50; want += 10) {
        assert_int_equal(weft_chan_try_recv(&rx, &v), 0);
        assert_int_equal(v, want);
    }
    assert_int_equal(weft_chan_try_recv(&rx, &v), -EPIPE); /* closed through the map */
    weft_future_drop(&f.base);
    assert_int_equal(weft_iter_sink_map_init(&m, NULL, times_ten, NULL, 4), -EINVAL);
    assert_int_equal(weft_iter_sink_map_init(&m, &tx.base, NULL, NULL, 4), -EINVAL);
    assert_int_equal(weft_iter_sink_map_init(&m, &tx.base, times_ten, NULL, 4096), -EINVAL);
    assert_true(misuse_reported(3, "weft_iter_sink_map_init"));
    misuse_reset();
    weft_chan_tx_drop(&tx);
    weft_chan_rx_drop(&rx);
}

/* Chaos: a channel source through forward and a tee into two channels
 * of capacity 1 and 2, each collected by a task, over many seeds. */
static void test_tee_chaos(void **state)
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
        weft_iter_collect col[2];
        weft_join j[2];
        for (int i = 0; i < 2; i++) {
            assert_int_equal(weft_mpsc_new(&s.tx[i], &s.rx[i], sizeof(uint64_t), 1 + (size_t)i),
                             0);
            assert_int_equal(weft_iter_collect_init(&col[i], &s.rx[i].base, s.got[i], 4 * SK_N,
                                                    &s.got_n[i]),
                             0);
            spawn_into(rt, &col[i].base, sizeof col[i], &j[i]);
        }
        assert_int_equal(weft_iter_tee_init(&s.tee, &s.tx[0].base, &s.tx[1].base), 0);
        assert_int_equal(weft_iter_forward_init(&s.fwd, &s.src.base, &s.tee.base, true), 0);
        weft_join jf;
        spawn_into(rt, &s.fwd.base, sizeof s.fwd, &jf);
        assert_int_equal(join_int(rt, &jf), 0);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(join_int(rt, &j[i]), 0);
            assert_int_equal(s.got_n[i], SK_N);
            for (size_t k = 0; k < SK_N; k++)
                assert_int_equal(s.got[i][k], k + 1);
            weft_chan_tx_drop(&s.tx[i]);
            weft_chan_rx_drop(&s.rx[i]);
        }
        weft_chan_rx_drop(&s.src);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* A forward into a tee dropped after any poll: on each side, every item
 * is still in the source or was received exactly once. */
static void test_cancel_sweep_tee_forward(void **state)
{
    (void)state;
    sk_sweep_run(SK_TEE);
    assert_int_equal(misuse_count(), 0);
}

/* A forward into a sink_map over a bounded channel dropped after any
 * poll: every item is received exactly once or is still in the source. */
static void test_cancel_sweep_sink_map_forward(void **state)
{
    (void)state;
    sk_sweep_run(SK_MAP);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup_g_rt, rt_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_tee_end_to_end),
        SIM(test_tee_end_to_end),
        T(test_tee_waits_for_both_sides),
        T(test_tee_closed_side_is_epipe),
        T(test_tee_bad_arguments),
        T(test_sink_map),
        T(test_tee_chaos),
        T(test_cancel_sweep_tee_forward),
        T(test_cancel_sweep_sink_map_forward),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
