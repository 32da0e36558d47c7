/* Tests for iter/take.c: take, skip, take_while and skip_while over a
 * scripted upstream — items in order, PENDING passed on with the waker,
 * take and take_while not polling upstream once done, skip's batches and
 * budget, flags AND, size hints, misuse — and the cancel sweep over
 * weft_stream_next of each on a channel receiver. */
#include "iter/comb_support.h"

static bool below(void *ctx, const void *item)
{
    uint64_t v;
    memcpy(&v, item, sizeof v);
    return v < *(const uint64_t *)ctx;
}

static void test_take_stops_polling_upstream(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, S_PENDING, 2, 3, 4, S_DONE);
    weft_iter_take t;
    assert_int_equal(weft_iter_take_init(&t, &sc.base, 2), 0);
    size_t lo, hi;
    weft_stream_size_hint(&t.base, &lo, &hi);
    assert_int_equal(lo, 2);
    assert_int_equal(hi, 2);
    counting_waker c;
    cw_init(&c);
    assert_int_equal(next_u64(&t.base, &c), 1);
    uint64_t v = 0;
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(next_u64(&t.base, &c), 2);
    unsigned polls = sc.polls;
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(sc.polls, polls); /* upstream untouched once done */
    weft_stream_drop(&t.base);
    /* The upstream was borrowed, not dropped: it goes on. */
    assert_int_equal(next_u64(&sc.base, &c), 3);
    /* take 0: DONE at once, upstream never polled. */
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1);
    assert_int_equal(weft_iter_take_init(&t, &sc.base, 0), 0);
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(sc.polls, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_take_batches_up_to_what_is_left(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, 2, 3, 4, 5, 6, S_DONE);
    weft_iter_take t;
    assert_int_equal(weft_iter_take_init(&t, &sc.base, 4), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t b[8];
    size_t n;
    assert_int_equal(pmany(&t.base, &c, b, 3, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
    assert_int_equal(pmany(&t.base, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(b[0], 4);
    unsigned calls = sc.batch_calls;
    assert_int_equal(pmany(&t.base, &c, b, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(n, 0);
    assert_int_equal(sc.batch_calls, calls);
    assert_int_equal(misuse_count(), 0);
}

static void test_skip_drops_the_first_n(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, S_PENDING, 2, 3, 4, 5, S_DONE);
    weft_iter_skip k;
    assert_int_equal(weft_iter_skip_init(&k, &sc.base, 2), 0);
    size_t lo, hi;
    weft_stream_size_hint(&k.base, &lo, &hi);
    assert_int_equal(lo, 3); /* five left, two to skip */
    assert_int_equal(hi, 3);
    counting_waker c;
    cw_init(&c);
    uint64_t b[4] = { 0 };
    size_t n;
    assert_int_equal(pmany(&k.base, &c, b, 4, &n), WEFT_NEXT_PENDING); /* 1 skipped */
    assert_int_equal(b[0], 0);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(pmany(&k.base, &c, b, 4, &n), WEFT_NEXT_ITEM); /* 2 skipped */
    assert_int_equal(n, 1);
    assert_int_equal(b[0], 3);
    assert_int_equal(pmany(&k.base, &c, b, 4, &n), WEFT_NEXT_ITEM); /* a batch now */
    assert_int_equal(n, 2);
    assert_int_equal(b[1], 5);
    assert_int_equal(pmany(&k.base, &c, b, 4, &n), WEFT_NEXT_DONE);
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_take_while_and_skip_while(void **state)
{
    (void)state;
    uint64_t lim = 3;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, S_PENDING, 2, 3, 1, S_DONE);
    weft_iter_take_while t;
    assert_int_equal(weft_iter_take_while_init(&t, &sc.base, below, &lim), 0);
    counting_waker c;
    cw_init(&c);
    assert_int_equal(next_u64(&t.base, &c), 1);
    uint64_t v = 0;
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(next_u64(&t.base, &c), 2);
    v = 9;
    assert_int_equal(pn(&t.base, &c, &v), WEFT_NEXT_DONE); /* 3 fails: dropped, DONE */
    assert_int_equal(v, 9);
    unsigned polls = sc.polls;
    size_t lo, hi;
    weft_stream_size_hint(&t.base, &lo, &hi);
    assert_int_equal(hi, 0);
    assert_int_equal(sc.polls, polls);
    assert_int_equal(next_u64(&sc.base, &c), 1); /* upstream left as it was */

    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, 2, S_PENDING, 3, 1, 5, S_DONE);
    weft_iter_skip_while k;
    assert_int_equal(weft_iter_skip_while_init(&k, &sc.base, below, &lim), 0);
    assert_int_equal(pn(&k.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(next_u64(&k.base, &c), 3);
    assert_int_equal(next_u64(&k.base, &c), 1); /* pred no longer asked */
    assert_int_equal(next_u64(&k.base, &c), 5);
    assert_int_equal(pn(&k.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(misuse_count(), 0);
}

/* ---- batches: the same items as one by one ------------------------------------- */

static const int64_t bs_script[] = { 1, 2, S_PENDING, 3, 2, 1, 0, S_PENDING, S_PENDING, 2,
                                     3, 1, 7, 9, 1, 0, 2, S_PENDING, 3, 8, 1, S_DONE };
#define BS_LEN (sizeof bs_script / sizeof *bs_script)

static uint64_t g_bs_lim = 4;

static weft_stream *up_take(void *st, weft_stream *up)
{
    weft_iter_take *t = st;
    return weft_iter_take_init(t, up, 11) ? NULL : &t->base;
}

static weft_stream *up_skip(void *st, weft_stream *up)
{
    weft_iter_skip *k = st;
    return weft_iter_skip_init(k, up, 5) ? NULL : &k->base;
}

static weft_stream *up_take_while(void *st, weft_stream *up)
{
    weft_iter_take_while *t = st;
    return weft_iter_take_while_init(t, up, below, &g_bs_lim) ? NULL : &t->base;
}

static weft_stream *up_skip_while(void *st, weft_stream *up)
{
    weft_iter_skip_while *k = st;
    return weft_iter_skip_while_init(k, up, below, &g_bs_lim) ? NULL : &k->base;
}

/* take_while stops at 7 (the tenth of the 17 items), having read the
 * upstream through 7 and no further, in every mode (batch_same_items
 * compares how far the upstream was read); skip_while starts at 7. */
static void test_batch_paths_give_the_same_items(void **state)
{
    (void)state;
    batch_same_items(up_take, bs_script, BS_LEN, 8, 11);
    batch_same_items(up_skip, bs_script, BS_LEN, 8, 12);
    batch_same_items(up_take_while, bs_script, BS_LEN, 8, 9);
    batch_same_items(up_skip_while, bs_script, BS_LEN, 8, 8);
    g_bs_lim = 100; /* take_while to the end, skip_while everything */
    batch_same_items(up_take_while, bs_script, BS_LEN, 8, 17);
    batch_same_items(up_skip_while, bs_script, BS_LEN, 8, 0);
    g_bs_lim = 0; /* take_while nothing, skip_while nothing */
    batch_same_items(up_take_while, bs_script, BS_LEN, 8, 0);
    batch_same_items(up_skip_while, bs_script, BS_LEN, 8, 17);
    g_bs_lim = 4;
    assert_int_equal(misuse_count(), 0);
}

static void test_take_while_batch_reads_no_further(void **state)
{
    (void)state;
    uint64_t lim = 3;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, 2, 1, S_PENDING, 2, 5, 1, 2, S_DONE);
    weft_iter_take_while t;
    assert_int_equal(weft_iter_take_while_init(&t, &sc.base, below, &lim), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t b[8];
    size_t n;
    assert_int_equal(pmany(&t.base, &c, b, 2, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    /* 1, then the upstream's PENDING: the 1 now, the wake arranged (the
     * PENDING is not reported after an item, as the default loop does). */
    assert_int_equal(pmany(&t.base, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(b[0], 1);
    assert_int_equal(cw_woken(&c), 1);
    /* 2, then 5 fails: the 2 now, 5 dropped, DONE next without a poll. */
    assert_int_equal(pmany(&t.base, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(b[0], 2);
    unsigned polls = sc.polls, calls = sc.batch_calls;
    assert_int_equal(pmany(&t.base, &c, b, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(n, 0);
    assert_int_equal(sc.polls, polls);
    assert_int_equal(sc.batch_calls, calls);
    assert_int_equal(calls, 0); /* one by one, never the upstream's batch */
    /* The items after the failing one are still the upstream's. */
    assert_int_equal(next_u64(&sc.base, &c), 1);
    assert_int_equal(next_u64(&sc.base, &c), 2);
    assert_int_equal(misuse_count(), 0);
}

static void test_skip_while_batch(void **state)
{
    (void)state;
    uint64_t lim = 3;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, 2, S_PENDING, 0, 1, 5, 1, 6, 2, S_DONE);
    weft_iter_skip_while k;
    assert_int_equal(weft_iter_skip_while_init(&k, &sc.base, below, &lim), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t b[8] = { 0 };
    size_t n;
    /* 1, 2 skipped, then the PENDING. */
    assert_int_equal(pmany(&k.base, &c, b, 8, &n), WEFT_NEXT_PENDING);
    assert_int_equal(n, 0);
    assert_int_equal(cw_woken(&c), 1);
    /* 0, 1 skipped; 5 and the rest of that batch moved to the front. */
    assert_int_equal(pmany(&k.base, &c, b, 4, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(b[0], 5);
    assert_int_equal(b[1], 1); /* pred no longer asked */
    assert_int_equal(pmany(&k.base, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(b[0], 6);
    assert_int_equal(b[1], 2);
    assert_int_equal(pmany(&k.base, &c, b, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_flags_and_misuse(void **state)
{
    (void)state;
    uint64_t lim = 1;
    for (int send = 0; send < 2; send++) {
        scripted sc;
        SCRIPT(&sc, &scripted_ops, send ? WEFT_F_SEND : 0, 1);
        weft_iter_take t;
        weft_iter_skip k;
        weft_iter_take_while tw;
        weft_iter_skip_while sw;
        assert_int_equal(weft_iter_take_init(&t, &sc.base, 1), 0);
        assert_int_equal(weft_iter_skip_init(&k, &sc.base, 1), 0);
        assert_int_equal(weft_iter_take_while_init(&tw, &sc.base, below, &lim), 0);
        assert_int_equal(weft_iter_skip_while_init(&sw, &sc.base, below, &lim), 0);
        ASSERT_SEND_IFF(t.base.flags, send);
        ASSERT_SEND_IFF(k.base.flags, send);
        ASSERT_SEND_IFF(tw.base.flags, send);
        ASSERT_SEND_IFF(sw.base.flags, send);
    }
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1);
    weft_iter_take_while tw;
    int before = misuse_count();
    assert_int_equal(weft_iter_take_init(NULL, &sc.base, 1), -EINVAL);
    assert_int_equal(weft_iter_skip_init((weft_iter_skip *)&tw, NULL, 1), -EINVAL);
    assert_int_equal(weft_iter_take_while_init(&tw, &sc.base, NULL, NULL), -EINVAL);
    assert_misuse_since(before, 3, "NULL");
}

/* ---- cancel sweeps ------------------------------------------------------------ */

static uint64_t g_lim = 4;

static weft_stream *make_take(comb_sweep *cs)
{
    weft_iter_take *t = (weft_iter_take *)cs->st.b;
    return weft_iter_take_init(t, &cs->rx.base, 4) ? NULL : &t->base;
}

static weft_stream *make_skip(comb_sweep *cs)
{
    weft_iter_skip *k = (weft_iter_skip *)cs->st.b;
    return weft_iter_skip_init(k, &cs->rx.base, 2) ? NULL : &k->base;
}

static weft_stream *make_take_while(comb_sweep *cs)
{
    weft_iter_take_while *t = (weft_iter_take_while *)cs->st.b;
    return weft_iter_take_while_init(t, &cs->rx.base, below, &g_lim) ? NULL : &t->base;
}

static weft_stream *make_skip_while(comb_sweep *cs)
{
    weft_iter_skip_while *k = (weft_iter_skip_while *)cs->st.b;
    return weft_iter_skip_while_init(k, &cs->rx.base, below, &g_lim) ? NULL : &k->base;
}

static void test_cancel_sweep_take(void **state)
{
    (void)state;
    COMB_SWEEP("take", make_take, 1, 1, 2, 3, 4);
}

static void test_cancel_sweep_skip(void **state)
{
    (void)state;
    COMB_SWEEP("skip", make_skip, 1, 3, 4, 5, 6);
}

static void test_cancel_sweep_take_while(void **state)
{
    (void)state;
    COMB_SWEEP("take_while", make_take_while, 1, 1, 2, 3);
}

static void test_cancel_sweep_skip_while(void **state)
{
    (void)state;
    COMB_SWEEP("skip_while", make_skip_while, 1, 4, 5, 6);
}

/* The same sweeps over batch pulls (next_many of up to 3). */
static void test_cancel_sweep_batches(void **state)
{
    (void)state;
    COMB_SWEEP_MANY("take batches", make_take, 1, 3, 1, 2, 3, 4);
    COMB_SWEEP_MANY("skip batches", make_skip, 1, 3, 3, 4, 5, 6);
    COMB_SWEEP_MANY("take_while batches", make_take_while, 1, 3, 1, 2, 3);
    COMB_SWEEP_MANY("skip_while batches", make_skip_while, 1, 3, 4, 5, 6);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_take_stops_polling_upstream),
        T(test_take_batches_up_to_what_is_left),
        T(test_skip_drops_the_first_n),
        T(test_take_while_and_skip_while),
        T(test_batch_paths_give_the_same_items),
        T(test_take_while_batch_reads_no_further),
        T(test_skip_while_batch),
        T(test_flags_and_misuse),
        T(test_cancel_sweep_take),
        T(test_cancel_sweep_skip),
        T(test_cancel_sweep_take_while),
        T(test_cancel_sweep_skip_while),
        T(test_cancel_sweep_batches),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
