/* weft_iter_sink_from_fn: the essays' Tee written with await — a sink
 * whose send is a coroutine (tee_send_co, tests/iter/sink_support.h)
 * kept inside the pinned sink. Items exactly once on both channels, the
 * send in flight resumed across polls and dropped with the sink, errors,
 * chaos, and a cancel sweep over a forward into it. */
#include "iter/sink_support.h"

static void test_sink_fn_tee_end_to_end(void **state)
{
    (void)state;
    enum { N = 200 };
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, N, 1), 0);
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    static uint64_t got[2][N + 1];
    size_t n[2] = { 0, 0 };
    weft_iter_collect col[2];
    weft_join j[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(weft_mpsc_new(&tx[i], &rx[i], sizeof(uint64_t), 2), 0);
        assert_int_equal(weft_iter_collect_init(&col[i], &rx[i].base, got[i], N + 1, &n[i]), 0);
        spawn_into(g_rt, &col[i].base, sizeof col[i], &j[i]);
    }
    tee_pair p = { &tx[0], &tx[1] };
    weft_iter_sink_fn s;
    assert_int_equal(tee_sink_init(&s, &p), 0);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &s.base, true), 0);
    assert_true(weft_future_is_send(&f.base));
    int out = -1;
    assert_int_equal(weft_block_on(g_rt, &f.base, &out, sizeof out), 0);
    assert_int_equal(out, 0);
    /* Closing the sink_fn closes the sink, not the channels behind it. */
    for (int i = 0; i < 2; i++)
        weft_chan_tx_drop(&tx[i]);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(join_int(g_rt, &j[i]), 0);
        assert_int_equal(n[i], N);
        for (size_t k = 0; k < N; k++)
            assert_int_equal(got[i][k], k);
        weft_chan_rx_drop(&rx[i]);
    }
    weft_sink_drop(&s.base);
}

/* The send in flight stays in the sink: with b full it waits half done
 * (a has the item), poll_ready resumes it, and start_send while it is in
 * flight is misuse. After close, start_send is -EPIPE. */
static void test_sink_fn_resumes_the_send_in_flight(void **state)
{
    (void)state;
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    assert_int_equal(weft_mpsc_new(&tx[0], &rx[0], sizeof(uint64_t), 4), 0);
    assert_int_equal(weft_mpsc_new(&tx[1], &rx[1], sizeof(uint64_t), 1), 0);
    tee_pair p = { &tx[0], &tx[1] };
    weft_iter_sink_fn s;
    assert_int_equal(tee_sink_init(&s, &p), 0);
    counting_waker c;
    cw_init(&c);
    int res = -1;
    assert_int_equal(spoll(weft_sink_poll_ready, &s.base, &c, &res), WEFT_READY);
    assert_int_equal(res, 0);
    uint64_t v = 7;
    assert_int_equal(weft_sink_start_send(&s.base, &v), 0);
    v = 0; /* the sink copied the item */
    assert_int_equal(spoll(weft_sink_poll_ready, &s.base, &c, &res), WEFT_READY);
    v = 8;
    assert_int_equal(weft_sink_start_send(&s.base, &v), 0);
    assert_int_equal(spoll(weft_sink_poll_ready, &s.base, &c, &res), WEFT_PENDING);
    assert_int_equal(weft_chan_len(&rx[0]), 2); /* 8 is in a, waiting for b */
    assert_int_equal(weft_sink_start_send(&s.base, &v), -EINVAL);
    assert_true(misuse_reported(1, "poll_ready did not say ready"));
    misuse_reset();
    long before = cw_woken(&c);
    assert_int_equal(weft_chan_try_recv(&rx[1], &v), 0);
    assert_int_equal(v, 7);
    assert_true(cw_woken(&c) > before);
    assert_int_equal(spoll(weft_sink_poll_close, &s.base, &c, &res), WEFT_READY);
    assert_int_equal(res, 0);
    assert_int_equal(weft_chan_try_recv(&rx[1], &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(weft_sink_start_send(&s.base, &v), -EPIPE);
    assert_int_equal(spoll(weft_sink_poll_ready, &s.base, &c, &res), WEFT_READY);
    assert_int_equal(res, -EPIPE);
    weft_sink_drop(&s.base);
    for (int i = 0; i < 2; i++) {
        weft_chan_tx_drop(&tx[i]);
        weft_chan_rx_drop(&rx[i]);
    }
}

/* Dropping the sink with a send in flight drops that send (its waiter
 * leaves the channel: nothing is left registered). */
static void test_sink_fn_drop_drops_the_send(void **state)
{
    (void)state;
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(weft_mpsc_new(&tx[i], &rx[i], sizeof(uint64_t), 1), 0);
    uint64_t v = 1;
    assert_int_equal(weft_chan_try_send(&tx[0], &v), 0); /* a is full */
    tee_pair p = { &tx[0], &tx[1] };
    weft_iter_sink_fn s;
    assert_int_equal(tee_sink_init(&s, &p), 0);
    counting_waker c;
    cw_init(&c);
    int res = -1;
    assert_int_equal(spoll(weft_sink_poll_ready, &s.base, &c, &res), WEFT_READY);
    v = 2;
    assert_int_equal(weft_sink_start_send(&s.base, &v), 0);
    assert_int_equal(spoll(weft_sink_poll_flush, &s.base, &c, &res), WEFT_PENDING);
    weft_sink_drop(&s.base);
    long before = cw_woken(&c);
    assert_int_equal(weft_chan_try_recv(&rx[0], &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cw_woken(&c), before); /* nobody waits any more */
    assert_int_equal(weft_chan_try_recv(&rx[1], &v), -EAGAIN);
    for (int i = 0; i < 2; i++) {
        weft_chan_tx_drop(&tx[i]);
        weft_chan_rx_drop(&rx[i]);
    }
    assert_int_equal(weft_atomic_load_acquire(&c.clones), weft_atomic_load_acquire(&c.drops));
}

/* A side closed: the send future's -EPIPE becomes the sink's, and sticks. */
static void test_sink_fn_error_sticks(void **state)
{
    (void)state;
    weft_iter_range r;
    assert_int_equal(weft_iter_range_init(&r, 0, 10, 1), 0);
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(weft_mpsc_new(&tx[i], &rx[i], sizeof(uint64_t), 4), 0);
    weft_chan_rx_drop(&rx[1]);
    tee_pair p = { &tx[0], &tx[1] };
    weft_iter_sink_fn s;
    assert_int_equal(tee_sink_init(&s, &p), 0);
    weft_iter_forward f;
    assert_int_equal(weft_iter_forward_init(&f, &r.base, &s.base, false), 0);
    counting_waker c;
    cw_init(&c);
    int out = 0;
    assert_int_equal(fpoll(&f.base, &c, &out), WEFT_READY);
    assert_int_equal(out, -EPIPE);
    int res = 0;
    assert_int_equal(spoll(weft_sink_poll_flush, &s.base, &c, &res), WEFT_READY);
    assert_int_equal(res, -EPIPE);
    uint64_t v = 0;
    assert_int_equal(weft_sink_start_send(&s.base, &v), -EPIPE);
    weft_future_drop(&f.base);
    weft_sink_drop(&s.base);
    for (int i = 0; i < 2; i++)
        weft_chan_tx_drop(&tx[i]);
    weft_chan_rx_drop(&rx[0]);
}

static int plain_send(void *self, const void *item, weft_future *storage)
{
    (void)self;
    (void)item;
    (void)storage;
    return -ENOSYS;
}

static void test_sink_fn_bad_arguments(void **state)
{
    (void)state;
    weft_iter_sink_fn s;
    assert_int_equal(weft_iter_sink_from_fn(NULL, plain_send, NULL, 8, 8, 8, 0), -EINVAL);
    assert_int_equal(weft_iter_sink_from_fn(&s, NULL, NULL, 8, 8, 8, 0), -EINVAL);
    assert_int_equal(weft_iter_sink_from_fn(&s, plain_send, NULL, 8, 3, 8, 0), -EINVAL);
    assert_int_equal(weft_iter_sink_from_fn(&s, plain_send, NULL, 8, 8, 4096, 0), -EINVAL);
    assert_true(misuse_reported(4, "weft_iter_sink_from_fn"));
    misuse_reset();
    assert_int_equal(weft_iter_sink_from_fn(&s, plain_send, NULL, 4096, 8, 8, 0), -ENOSPC);
    assert_int_equal(weft_iter_sink_from_fn(&s, plain_send, NULL, 8, 4096, 8, 0), -ENOSPC);
    /* A send that makes no future: the item stays the caller's. */
    assert_int_equal(weft_iter_sink_from_fn(&s, plain_send, NULL, 8, 8, 8, 0), 0);
    uint64_t v = 1;
    assert_int_equal(weft_sink_start_send(&s.base, &v), -ENOSYS);
    weft_sink_drop(&s.base);
}

/* Chaos: a channel source through forward into the await-written Tee,
 * over two channels of capacity 1, each collected by a task. */
static void test_sink_fn_chaos(void **state)
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
            assert_int_equal(weft_mpsc_new(&s.tx[i], &s.rx[i], sizeof(uint64_t), 1), 0);
            assert_int_equal(weft_iter_collect_init(&col[i], &s.rx[i].base, s.got[i], 4 * SK_N,
                                                    &s.got_n[i]),
                             0);
            spawn_into(rt, &col[i].base, sizeof col[i], &j[i]);
        }
        s.pair = (tee_pair){ &s.tx[0], &s.tx[1] };
        assert_int_equal(tee_sink_init(&s.sfn, &s.pair), 0);
        assert_int_equal(weft_iter_forward_init(&s.fwd, &s.src.base, &s.sfn.base, true), 0);
        weft_join jf;
        spawn_into(rt, &s.fwd.base, sizeof s.fwd, &jf);
        assert_int_equal(join_int(rt, &jf), 0);
        for (int i = 0; i < 2; i++)
            weft_chan_tx_drop(&s.tx[i]);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(join_int(rt, &j[i]), 0);
            assert_int_equal(s.got_n[i], SK_N);
            for (size_t k = 0; k < SK_N; k++)
                assert_int_equal(s.got[i][k], k + 1);
            weft_chan_rx_drop(&s.rx[i]);
        }
        weft_sink_drop(&s.sfn.base);
        weft_chan_rx_drop(&s.src);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* A forward into the await-written Tee dropped after any poll: the send
 * in flight stays in the sink and a flush completes it, so on each side
 * every item is in the source or received exactly once. */
static void test_cancel_sweep_sink_fn_forward(void **state)
{
    (void)state;
    sk_sweep_run(SK_FN);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup_g_rt, rt_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_sink_fn_tee_end_to_end),
        SIM(test_sink_fn_tee_end_to_end),
        T(test_sink_fn_resumes_the_send_in_flight),
        T(test_sink_fn_drop_drops_the_send),
        T(test_sink_fn_error_sticks),
        T(test_sink_fn_bad_arguments),
        T(test_sink_fn_chaos),
        T(test_cancel_sweep_sink_fn_forward),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
