/* Tests for iter/then.c: each item through a future made inside the
 * combinator — outputs in order, PENDING from the upstream and from the
 * future passed on with the waker, the pending future kept across a
 * dropped next and dropped with the stream (never the upstream), flags
 * AND with the futures' Send, misuse — and the cancel sweep over
 * weft_stream_next on a channel receiver. */
#include "iter/comb_support.h"

/* A leaf future: PENDING `waits` times (waking itself), then READY with
 * 10 x. Counts its drops. */
typedef struct later {
    weft_future base;
    uint64_t x;
    int waits;
} later;

static int g_drops;

static weft_poll later_poll(weft_future *f, weft_cx *cx, void *out)
{
    later *l = (later *)f;
    if (l->waits > 0) {
        l->waits--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    uint64_t v = 10 * l->x;
    memcpy(out, &v, sizeof v);
    return WEFT_READY;
}

static void later_drop(weft_future *f)
{
    (void)f;
    g_drops++;
}

static const weft_future_ops later_ops = {
    .name = "test_later", .out_size = sizeof(uint64_t), .poll = later_poll,
    .drop = later_drop,
};

static weft_future *make_later(void *ctx, const void *item, void *storage, size_t size)
{
    assert_true(size >= sizeof(later));
    later *l = storage;
    weft_future_init(&l->base, &later_ops, WEFT_F_SEND);
    memcpy(&l->x, item, sizeof l->x);
    l->waits = ctx ? *(int *)ctx : 1;
    return &l->base;
}

static weft_future *make_bad(void *ctx, const void *item, void *storage, size_t size)
{
    (void)ctx, (void)item, (void)size;
    later *l = storage;
    weft_future_init(&l->base, &later_ops, 0); /* not Send */
    l->waits = 0;
    return &l->base;
}

static void test_then_outputs_in_order_and_passes_pending_on(void **state)
{
    (void)state;
    g_drops = 0;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, S_PENDING, 2, S_DONE);
    weft_iter_then t;
    assert_int_equal(weft_iter_then_init(&t, &sc.base, make_later, NULL, 8, WEFT_F_SEND), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t v = 0;
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_PENDING); /* the future waits */
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(v, 0);
    size_t lo, hi;
    weft_stream_size_hint(&t.base, &lo, &hi);
    assert_int_equal(lo, 2); /* the pending one and 2 */
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(v, 10);
    assert_int_equal(g_drops, 1); /* dropped once READY */
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_PENDING); /* the upstream waits */
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(v, 20);
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_DONE);
    weft_stream_drop(&t.base);
    assert_int_equal(g_drops, 2);
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_then_pending_future_survives_a_dropped_next_and_dies_with_it(void **state)
{
    (void)state;
    g_drops = 0;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, 2, S_DONE);
    weft_iter_then t;
    int waits = 3;
    assert_int_equal(weft_iter_then_init(&t, &sc.base, make_later, &waits, 8, WEFT_F_SEND),
                     0);
    counting_waker c;
    cw_init(&c);
    uint64_t v = 0;
    int out = 9;
    weft_stream_next nx;
    weft_stream_next_init(&nx, &t.base, &v);
    weft_waker w = cw_waker(&c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    assert_int_equal(weft_future_poll(&nx.base, &cx, &out), WEFT_PENDING);
    weft_future_drop(&nx.base); /* the next, not the then's future */
    assert_int_equal(g_drops, 0);
    weft_stream_next_init(&nx, &t.base, &v);
    while (weft_future_poll(&nx.base, &cx, &out) == WEFT_PENDING)
        ;
    weft_future_drop(&nx.base);
    assert_int_equal(out, 1);
    assert_int_equal(v, 10); /* the same item, once */
    assert_int_equal(sc.polls, 1);
    /* Start 2's future, then drop the stream: the future goes with it. */
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_PENDING);
    weft_stream_drop(&t.base);
    assert_int_equal(g_drops, 2);
    assert_int_equal(sc.after_done, 0);
    /* The upstream is borrowed: still there, DONE next. */
    assert_int_equal(pn(&sc.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(misuse_count(), 0);
}

static void test_then_flags_and_misuse(void **state)
{
    (void)state;
    for (int fu = 0; fu < 2; fu++)
        for (int ff = 0; ff < 2; ff++) {
            scripted sc;
            SCRIPT(&sc, &scripted_ops, fu ? WEFT_F_SEND : 0, 1);
            weft_iter_then t;
            assert_int_equal(weft_iter_then_init(&t, &sc.base, make_later, NULL, 8,
                                                 ff ? WEFT_F_SEND : 0),
                             0);
            ASSERT_SEND_IFF(t.base.flags, fu && ff);
        }
    g_drops = 0;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, 2);
    weft_iter_then t;
    int before = misuse_count();
    assert_int_equal(weft_iter_then_init(&t, &sc.base, NULL, NULL, 8, 0), -EINVAL);
    /* Out size mismatch. */
    assert_int_equal(weft_iter_then_init(&t, &sc.base, make_later, NULL, 4, WEFT_F_SEND), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t v = 0;
#ifndef NDEBUG
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_DONE);
    assert_misuse_since(before, 2, "weft_iter_then");
    assert_int_equal(g_drops, 1);
    /* A Send then whose fn made a future that is not. */
    assert_int_equal(weft_iter_then_init(&t, &sc.base, make_bad, NULL, 8, WEFT_F_SEND), 0);
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_DONE);
    assert_misuse_since(before, 3, "not Send");
#else
    (void)before, (void)v, (void)make_bad;
#endif
}

static weft_stream *make_then(comb_sweep *cs)
{
    weft_iter_then *t = (weft_iter_then *)cs->st.b;
    return weft_iter_then_init(t, &cs->rx.base, make_later, NULL, 8, WEFT_F_SEND) ? NULL
                                                                                   : &t->base;
}

static void test_cancel_sweep_then(void **state)
{
    (void)state;
    COMB_SWEEP("then", make_then, 1, 10, 20, 30, 40, 50, 60);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_then_outputs_in_order_and_passes_pending_on),
        T(test_then_pending_future_survives_a_dropped_next_and_dies_with_it),
        T(test_then_flags_and_misuse),
        T(test_cancel_sweep_then),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
