/* Tests for iter/map.c: map, filter, filter_map and inspect over a
 * scripted upstream (items in order, DONE and PENDING passed on with the
 * waker, flags AND, map's native batches, filter's budget, misuse), the
 * batch paths of each against its single-item path, map_many and
 * filter_many (the user's fn once per batch); a
 * four-stage pipeline in one struct over a channel receiver on two
 * workers, on the sim and on chaos sims; and the cancel sweep over
 * weft_stream_next of each. */
#include "iter/comb_support.h"

static void triple(void *ctx, const void *in, void *out)
{
    uint64_t v;
    memcpy(&v, in, sizeof v);
    if (ctx)
        (*(unsigned *)ctx)++;
    uint32_t o = (uint32_t)(v * 3);
    memcpy(out, &o, sizeof o);
}

static void triple64(void *ctx, const void *in, void *out)
{
    (void)ctx;
    uint64_t v;
    memcpy(&v, in, sizeof v);
    v *= 3;
    memcpy(out, &v, sizeof v);
}

static void widen(void *ctx, const void *in, void *out)
{
    (void)ctx;
    uint64_t v[2];
    memcpy(&v[0], in, sizeof v[0]);
    v[1] = ~v[0];
    memcpy(out, v, sizeof v);
}

static bool is_odd(void *ctx, const void *item)
{
    uint64_t v;
    memcpy(&v, item, sizeof v);
    if (ctx)
        (*(unsigned *)ctx)++;
    return v & 1;
}

static bool half_if_even(void *ctx, const void *in, void *out)
{
    (void)ctx;
    uint64_t v;
    memcpy(&v, in, sizeof v);
    if (v & 1)
        return false;
    v /= 2;
    memcpy(out, &v, sizeof v);
    return true;
}

static void record(void *ctx, const void *item)
{
    uint64_t *log = ctx;
    memcpy(&log[1 + log[0]++], item, sizeof(uint64_t));
}

/* ---- map ----------------------------------------------------------------------- */

static void test_map_items_in_order_pending_and_done(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, 2, S_PENDING, 3, S_DONE);
    weft_iter_map m;
    unsigned calls = 0;
    assert_int_equal(weft_iter_map_init(&m, &sc.base, triple, &calls, sizeof(uint32_t)), 0);
    assert_int_equal(weft_stream_item_size(&m.base), sizeof(uint32_t));
    size_t lo, hi;
    weft_stream_size_hint(&m.base, &lo, &hi);
    assert_int_equal(lo, 3);
    assert_int_equal(hi, 3);
    counting_waker c;
    cw_init(&c);
    uint32_t out = 0;
    assert_int_equal(pn(&m.base, &c, &out), WEFT_NEXT_ITEM);
    assert_int_equal(out, 3);
    assert_int_equal(pn(&m.base, &c, &out), WEFT_NEXT_ITEM);
    assert_int_equal(out, 6);
    /* Upstream PENDING: PENDING, the upstream woke the waker it got — ours. */
    out = 77;
    assert_int_equal(pn(&m.base, &c, &out), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(out, 77);
    assert_int_equal(pn(&m.base, &c, &out), WEFT_NEXT_ITEM);
    assert_int_equal(out, 9);
    assert_int_equal(pn(&m.base, &c, &out), WEFT_NEXT_DONE);
    assert_int_equal(calls, 3);
    assert_int_equal(sc.after_done, 0);
    weft_stream_drop(&m.base);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_map_batches_natively(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, 2, 3, 4, S_PENDING, 5, S_DONE);
    weft_iter_map m;
    assert_int_equal(weft_iter_map_init(&m, &sc.base, triple, NULL, sizeof(uint32_t)), 0);
    counting_waker c;
    cw_init(&c);
    uint32_t out[8] = { 0 };
    size_t n = 0;
    assert_int_equal(pmany(&m.base, &c, out, 3, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
    assert_int_equal(sc.batch_calls, 1); /* one upstream batch, mapped */
    assert_int_equal(sc.polls, 0);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[2], 9);
    assert_int_equal(pmany(&m.base, &c, out, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 12);
    assert_int_equal(pmany(&m.base, &c, out, 8, &n), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(pmany(&m.base, &c, out, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(out[0], 15);
    assert_int_equal(pmany(&m.base, &c, out, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(n, 0);
    /* Items that shrink: the inputs are pulled into the caller's array one
     * input ahead of the outputs, 40 * 4 / 8 - 1 of them at once. */
    static int64_t many_items[40];
    for (int i = 0; i < 40; i++)
        many_items[i] = i;
    scripted_init(&sc, &batched_ops, many_items, 40, WEFT_F_SEND);
    assert_int_equal(weft_iter_map_init(&m, &sc.base, triple, NULL, sizeof(uint32_t)), 0);
    uint32_t big[40];
    assert_int_equal(pmany(&m.base, &c, big, 40, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 19);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(big[i], 3 * i);
    /* Items that grow: never more than the map's buffer holds. */
    scripted_init(&sc, &batched_ops, many_items, 40, WEFT_F_SEND);
    assert_int_equal(weft_iter_map_init(&m, &sc.base, widen, NULL, 16), 0);
    uint64_t wide[80];
    assert_int_equal(pmany(&m.base, &c, wide, 40, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, WEFT_ITER_ITEM_MAX / sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(wide[2 * i], i);
        assert_int_equal(wide[2 * i + 1], ~(uint64_t)i);
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_flags_are_the_and_of_the_parts(void **state)
{
    (void)state;
    for (int send = 0; send < 2; send++) {
        scripted sc;
        SCRIPT(&sc, &scripted_ops, send ? WEFT_F_SEND : 0, 1);
        weft_iter_map m;
        weft_iter_filter f;
        weft_iter_filter_map fm;
        weft_iter_inspect in;
        uint64_t log[4] = { 0 };
        assert_int_equal(weft_iter_map_init(&m, &sc.base, triple, NULL, 4), 0);
        assert_int_equal(weft_iter_filter_init(&f, &sc.base, is_odd, NULL), 0);
        assert_int_equal(weft_iter_filter_map_init(&fm, &sc.base, half_if_even, NULL, 8), 0);
        assert_int_equal(weft_iter_inspect_init(&in, &sc.base, record, log), 0);
        ASSERT_SEND_IFF(m.base.flags, send);
        ASSERT_SEND_IFF(f.base.flags, send);
        ASSERT_SEND_IFF(fm.base.flags, send);
        ASSERT_SEND_IFF(in.base.flags, send);
        weft_stream_next nx;
        uint32_t o;
        weft_stream_next_init(&nx, &m.base, &o);
        assert_int_equal(weft_future_is_send(&nx.base), send);
        weft_future_drop(&nx.base);
    }
}

static void test_misuse_is_einval(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1);
    weft_iter_map m;
    weft_iter_filter f;
    long before = misuse_count();
    assert_int_equal(weft_iter_map_init(NULL, &sc.base, triple, NULL, 4), -EINVAL);
    assert_int_equal(weft_iter_map_init(&m, NULL, triple, NULL, 4), -EINVAL);
    assert_int_equal(weft_iter_map_init(&m, &sc.base, NULL, NULL, 4), -EINVAL);
    assert_int_equal(weft_iter_map_init(&m, &sc.base, triple, NULL, WEFT_ITEM_SIZE_VARIES),
                     -EINVAL);
    assert_int_equal(weft_iter_filter_init(&f, &sc.base, NULL, NULL), -EINVAL);
    assert_int_equal(weft_iter_inspect_init(NULL, &sc.base, record, NULL), -EINVAL);
    /* Items too large to hold. */
    static const weft_stream_ops big_ops = {
        .name = "test_big", .item_size = WEFT_ITER_ITEM_MAX + 1,
        .poll_next = scripted_poll_next,
    };
    scripted big;
    scripted_init(&big, &big_ops, NULL, 0, WEFT_F_SEND);
    assert_int_equal(weft_iter_map_init(&m, &big.base, triple, NULL, 4), -EINVAL);
    assert_int_equal(weft_iter_filter_init(&f, &big.base, is_odd, NULL), -EINVAL);
#ifndef NDEBUG
    assert_int_equal(misuse_count() - before, 8);
    assert_misuse_since(before, 8, "test_big");
#else
    (void)before;
#endif
}

/* ---- filter, filter_map, inspect --------------------------------------------------- */

static void test_filter_keeps_matches_in_order(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 2, 3, 4, S_PENDING, 6, 7, 9, S_DONE);
    weft_iter_filter f;
    unsigned calls = 0;
    assert_int_equal(weft_iter_filter_init(&f, &sc.base, is_odd, &calls), 0);
    size_t lo, hi;
    weft_stream_size_hint(&f.base, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 6);
    counting_waker c;
    cw_init(&c);
    assert_int_equal(next_u64(&f.base, &c), 3);
    uint64_t v = 55;
    assert_int_equal(pn(&f.base, &c, &v), WEFT_NEXT_PENDING); /* 4 dropped, then PENDING */
    assert_int_equal(v, 55); /* a rejected item is not written */
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(next_u64(&f.base, &c), 7);
    assert_int_equal(next_u64(&f.base, &c), 9);
    assert_int_equal(pn(&f.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(calls, 6);
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_filter_yields_on_a_long_run_of_rejections(void **state)
{
    (void)state;
    weft_iter_filter f;
    counting_waker c;
    cw_init(&c);
    static const int64_t evens[300] = { 0 }; /* all zero: all rejected */
    scripted sc;
    scripted_init(&sc, &scripted_ops, evens, 300, WEFT_F_SEND);
    assert_int_equal(weft_iter_filter_init(&f, &sc.base, is_odd, NULL), 0);
    uint64_t v;
    assert_int_equal(pn(&f.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1); /* the budget's wake */
    assert_true(sc.polls <= WEFT_COOP_BUDGET + 1);
    /* 300 rejections at most a budget's worth per poll, then DONE. */
    int pendings = 1;
    while (pn(&f.base, &c, &v) == WEFT_NEXT_PENDING)
        pendings++;
    assert_int_equal(pendings, 2); /* 129 + 129 polls, then 42 and DONE */
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(sc.polls, 301);
    assert_int_equal(sc.after_done, 0);
}

static void test_filter_map_and_inspect(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, 4, S_PENDING, 5, 10, S_DONE);
    weft_iter_filter_map fm;
    assert_int_equal(weft_iter_filter_map_init(&fm, &sc.base, half_if_even, NULL, 8), 0);
    counting_waker c;
    cw_init(&c);
    assert_int_equal(next_u64(&fm.base, &c), 2);
    uint64_t v = 0;
    assert_int_equal(pn(&fm.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(next_u64(&fm.base, &c), 5);
    assert_int_equal(pn(&fm.base, &c, &v), WEFT_NEXT_DONE);

    SCRIPT(&sc, &batched_ops, 0, 7, 8, S_PENDING, 9, S_DONE);
    uint64_t log[8] = { 0 };
    weft_iter_inspect in;
    assert_int_equal(weft_iter_inspect_init(&in, &sc.base, record, log), 0);
    uint64_t b[4];
    size_t n;
    assert_int_equal(pmany(&in.base, &c, b, 4, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(b[1], 8);
    assert_int_equal(pn(&in.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(next_u64(&in.base, &c), 9);
    assert_int_equal(pn(&in.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(log[0], 3);
    assert_int_equal(log[1], 7);
    assert_int_equal(log[2], 8);
    assert_int_equal(log[3], 9);
    assert_int_equal(misuse_count(), 0);
}

/* ---- batches: the same items as one by one ----------------------------------------- */

static const int64_t bs_script[] = { 1,  2,  3,  S_PENDING, 4,  5,  6,  7, S_PENDING,
                                     S_PENDING, 8,  10, 12, 14, 16, 18, 20, 22,
                                     24, 26, 9,  11, S_PENDING, 13, 15, 17, 19, 21,
                                     23, 25, 27, 29, 31, 30, S_DONE };
#define BS_LEN (sizeof bs_script / sizeof *bs_script)
#define BS_ITEMS 30u /* the items in bs_script */
#define BS_ODD 16u   /* the odd ones */

static weft_stream *up_map(void *st, weft_stream *up)
{
    weft_iter_map *m = st;
    return weft_iter_map_init(m, up, triple64, NULL, 8) ? NULL : &m->base;
}

/* Writes out while still reading in: wrong if the two overlapped. */
static void reverse_bytes(void *ctx, const void *in, void *out)
{
    (void)ctx;
    const unsigned char *i = in;
    unsigned char *o = out;
    for (int j = 0; j < 8; j++)
        o[j] = i[7 - j];
}

static weft_stream *up_map_reverse(void *st, weft_stream *up)
{
    weft_iter_map *m = st;
    return weft_iter_map_init(m, up, reverse_bytes, NULL, 8) ? NULL : &m->base;
}

static weft_stream *up_map_narrow(void *st, weft_stream *up)
{
    weft_iter_map *m = st;
    return weft_iter_map_init(m, up, triple, NULL, 4) ? NULL : &m->base;
}

static weft_stream *up_map_wide(void *st, weft_stream *up)
{
    weft_iter_map *m = st;
    return weft_iter_map_init(m, up, widen, NULL, 16) ? NULL : &m->base;
}

static weft_stream *up_filter(void *st, weft_stream *up)
{
    weft_iter_filter *f = st;
    return weft_iter_filter_init(f, up, is_odd, NULL) ? NULL : &f->base;
}

static weft_stream *up_filter_map(void *st, weft_stream *up)
{
    weft_iter_filter_map *f = st;
    return weft_iter_filter_map_init(f, up, half_if_even, NULL, 8) ? NULL : &f->base;
}

static bool half_if_even_narrow(void *ctx, const void *in, void *out)
{
    uint64_t v;
    if (!half_if_even(ctx, in, &v))
        return false;
    uint32_t o = (uint32_t)v;
    memcpy(out, &o, sizeof o);
    return true;
}

static weft_stream *up_filter_map_narrow(void *st, weft_stream *up)
{
    weft_iter_filter_map *f = st;
    return weft_iter_filter_map_init(f, up, half_if_even_narrow, NULL, 4) ? NULL : &f->base;
}

static weft_stream *up_filter_of_map(void *st, weft_stream *up)
{
    struct {
        weft_iter_map m;
        weft_iter_filter f;
    } *p = st;
    if (weft_iter_map_init(&p->m, up, triple64, NULL, 8) ||
        weft_iter_filter_init(&p->f, &p->m.base, is_odd, NULL))
        return NULL;
    return &p->f.base;
}

static void test_batch_paths_give_the_same_items(void **state)
{
    (void)state;
    batch_same_items(up_map, bs_script, BS_LEN, 8, BS_ITEMS);
    batch_same_items(up_map_reverse, bs_script, BS_LEN, 8, BS_ITEMS);
    batch_same_items(up_map_narrow, bs_script, BS_LEN, 4, BS_ITEMS);
    batch_same_items(up_map_wide, bs_script, BS_LEN, 16, BS_ITEMS);
    batch_same_items(up_filter, bs_script, BS_LEN, 8, BS_ODD);
    batch_same_items(up_filter_map, bs_script, BS_LEN, 8, BS_ITEMS - BS_ODD);
    batch_same_items(up_filter_map_narrow, bs_script, BS_LEN, 4, BS_ITEMS - BS_ODD);
    batch_same_items(up_filter_of_map, bs_script, BS_LEN, 8, BS_ODD);
    assert_int_equal(misuse_count(), 0);
}

/* ---- map_many and filter_many ------------------------------------------------------ */

static unsigned g_many_calls;

static void triple64_many(void *ctx, const void *in, void *out, size_t n)
{
    (void)ctx;
    g_many_calls++;
    for (size_t i = 0; i < n; i++)
        triple64(NULL, (const unsigned char *)in + 8 * i, (unsigned char *)out + 8 * i);
}

static void triple_many(void *ctx, const void *in, void *out, size_t n)
{
    (void)ctx;
    assert_true((const unsigned char *)in + 8 * n <= (unsigned char *)out ||
                (unsigned char *)out + 4 * n <= (const unsigned char *)in);
    for (size_t i = 0; i < n; i++)
        triple(NULL, (const unsigned char *)in + 8 * i, (unsigned char *)out + 4 * i);
}

static void widen_many(void *ctx, const void *in, void *out, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        widen(NULL, (const unsigned char *)in + 8 * i, (unsigned char *)out + 16 * i);
}

static size_t odd_many(void *ctx, void *items, size_t n)
{
    (void)ctx;
    g_many_calls++;
    uint64_t *a = items;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] & 1)
            a[k++] = a[i];
    return k;
}

static size_t keep_too_many(void *ctx, void *items, size_t n)
{
    (void)ctx, (void)items;
    return n + 1;
}

static weft_stream *up_map_many(void *st, weft_stream *up)
{
    weft_iter_map_many *m = st;
    return weft_iter_map_many_init(m, up, triple64_many, NULL, 8) ? NULL : &m->base;
}

static weft_stream *up_map_many_narrow(void *st, weft_stream *up)
{
    weft_iter_map_many *m = st;
    return weft_iter_map_many_init(m, up, triple_many, NULL, 4) ? NULL : &m->base;
}

static weft_stream *up_map_many_wide(void *st, weft_stream *up)
{
    weft_iter_map_many *m = st;
    return weft_iter_map_many_init(m, up, widen_many, NULL, 16) ? NULL : &m->base;
}

static weft_stream *up_filter_many(void *st, weft_stream *up)
{
    weft_iter_filter_many *f = st;
    return weft_iter_filter_many_init(f, up, odd_many, NULL) ? NULL : &f->base;
}

static void test_many_forms_give_the_same_items(void **state)
{
    (void)state;
    batch_same_items(up_map_many, bs_script, BS_LEN, 8, BS_ITEMS);
    batch_same_items(up_map_many_narrow, bs_script, BS_LEN, 4, BS_ITEMS);
    batch_same_items(up_map_many_wide, bs_script, BS_LEN, 16, BS_ITEMS);
    batch_same_items(up_filter_many, bs_script, BS_LEN, 8, BS_ODD);
    assert_int_equal(misuse_count(), 0);
}

static void test_many_forms_call_fn_once_per_batch(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, 2, 3, 4, 5, 6, 7, S_PENDING, 9, S_DONE);
    struct {
        weft_iter_map_many m;
        weft_iter_filter_many f;
    } p;
    assert_int_equal(weft_iter_map_many_init(&p.m, &sc.base, triple64_many, NULL, 8), 0);
    assert_int_equal(weft_iter_filter_many_init(&p.f, &p.m.base, odd_many, NULL), 0);
    assert_int_equal(weft_stream_item_size(&p.f.base), 8);
    counting_waker c;
    cw_init(&c);
    uint64_t b[8];
    size_t n;
    g_many_calls = 0;
    assert_int_equal(pmany(&p.f.base, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 4); /* 3, 9, 15, 21 of 3..21 */
    assert_int_equal(b[0], 3);
    assert_int_equal(b[3], 21);
    assert_int_equal(g_many_calls, 2); /* one map call, one filter call */
    assert_int_equal(sc.batch_calls, 1);
    assert_int_equal(pmany(&p.f.base, &c, b, 8, &n), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(next_u64(&p.f.base, &c), 27); /* one by one: fn with n 1 */
    assert_int_equal(pn(&p.f.base, &c, b), WEFT_NEXT_DONE);
    assert_int_equal(sc.after_done, 0);
    weft_stream_drop(&p.f.base);
    weft_stream_drop(&p.m.base);

    /* Equal sizes: mapped in place in the caller's array, so a batch is
     * as large as asked for (not capped by the buffer). */
    static int64_t seq[40];
    for (int i = 0; i < 40; i++)
        seq[i] = i;
    scripted_init(&sc, &batched_ops, seq, 40, WEFT_F_SEND);
    assert_int_equal(weft_iter_map_many_init(&p.m, &sc.base, triple64_many, NULL, 8), 0);
    uint64_t big[40];
    g_many_calls = 0;
    assert_int_equal(pmany(&p.m.base, &c, big, 40, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 40);
    assert_int_equal(g_many_calls, 1);
    assert_int_equal(big[39], 3 * 39);

    /* A rejected batch charges the budget once, as filter's. */
    static int64_t evens[301];
    evens[300] = 7;
    scripted_init(&sc, &batched_ops, evens, 301, WEFT_F_SEND);
    assert_int_equal(weft_iter_filter_many_init(&p.f, &sc.base, odd_many, NULL), 0);
    int woken = cw_woken(&c);
    assert_int_equal(pmany(&p.f.base, &c, b, 1, &n), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), woken + 1);
    assert_true(sc.batch_calls <= WEFT_COOP_BUDGET + 1);
    assert_int_equal(misuse_count(), 0);
}

static void test_many_forms_flags_and_misuse(void **state)
{
    (void)state;
    for (int send = 0; send < 2; send++) {
        scripted sc;
        SCRIPT(&sc, &scripted_ops, send ? WEFT_F_SEND : 0, 1);
        weft_iter_map_many m;
        weft_iter_filter_many f;
        assert_int_equal(weft_iter_map_many_init(&m, &sc.base, triple64_many, NULL, 8), 0);
        assert_int_equal(weft_iter_filter_many_init(&f, &sc.base, odd_many, NULL), 0);
        ASSERT_SEND_IFF(m.base.flags, send);
        ASSERT_SEND_IFF(f.base.flags, send);
    }
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, 2, 3, S_DONE);
    weft_iter_map_many m;
    weft_iter_filter_many f;
    long before = misuse_count();
    assert_int_equal(weft_iter_map_many_init(NULL, &sc.base, triple64_many, NULL, 8), -EINVAL);
    assert_int_equal(weft_iter_map_many_init(&m, &sc.base, NULL, NULL, 8), -EINVAL);
    assert_int_equal(weft_iter_map_many_init(&m, &sc.base, triple64_many, NULL,
                                             WEFT_ITEM_SIZE_VARIES),
                     -EINVAL);
    assert_int_equal(weft_iter_filter_many_init(&f, NULL, odd_many, NULL), -EINVAL);
    assert_int_equal(weft_iter_filter_many_init(&f, &sc.base, NULL, NULL), -EINVAL);
#ifndef NDEBUG
    assert_int_equal(misuse_count() - before, 5);
#endif
    /* A fn that claims more than it was given: reported, taken as all. */
    assert_int_equal(weft_iter_filter_many_init(&f, &sc.base, keep_too_many, NULL), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t b[4];
    size_t n;
    before = misuse_count();
    assert_int_equal(pmany(&f.base, &c, b, 4, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
#ifndef NDEBUG
    assert_misuse_since(before, 1, "weft_iter_filter_many");
#else
    (void)before;
#endif
}

static void test_filter_batches_natively(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, 2, 3, 4, 5, 6, S_PENDING, 8, 9, S_DONE);
    weft_iter_filter f;
    unsigned calls = 0;
    assert_int_equal(weft_iter_filter_init(&f, &sc.base, is_odd, &calls), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t b[8] = { 0 };
    size_t n = 0;
    /* One upstream batch of 5, compacted in place to the 3 odd ones. */
    assert_int_equal(pmany(&f.base, &c, b, 5, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[1], 3);
    assert_int_equal(b[2], 5);
    assert_int_equal(sc.batch_calls, 1);
    assert_int_equal(sc.polls, 0);
    assert_int_equal(calls, 5);
    /* 6 rejected, then the upstream's PENDING: PENDING, 6 gone by design. */
    assert_int_equal(pmany(&f.base, &c, b, 5, &n), WEFT_NEXT_PENDING);
    assert_int_equal(n, 0);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(pmany(&f.base, &c, b, 5, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(b[0], 9);
    assert_int_equal(pmany(&f.base, &c, b, 5, &n), WEFT_NEXT_DONE);
    assert_int_equal(sc.after_done, 0);

    /* A batch rejected whole charges the budget once: 300 rejections in
     * batches of 8 fit one poll; in batches of 1 they yield after a
     * budget's worth, with the wake arranged. */
    static int64_t evens[301];
    evens[300] = 7;
    scripted_init(&sc, &batched_ops, evens, 301, WEFT_F_SEND);
    assert_int_equal(weft_iter_filter_init(&f, &sc.base, is_odd, NULL), 0);
    assert_int_equal(pmany(&f.base, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(b[0], 7);
    assert_int_equal(sc.batch_calls, 38);
    scripted_init(&sc, &batched_ops, evens, 301, WEFT_F_SEND);
    assert_int_equal(weft_iter_filter_init(&f, &sc.base, is_odd, NULL), 0);
    int woken = cw_woken(&c);
    assert_int_equal(pmany(&f.base, &c, b, 1, &n), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), woken + 1);
    assert_true(sc.batch_calls <= WEFT_COOP_BUDGET + 1);
    assert_int_equal(misuse_count(), 0);
}

/* ---- a pipeline in one struct, on both runtimes -------------------------------------- */

/* The consumer: receiver -> map(x*3) -> filter(odd) -> enumerate -> take(K),
 * every stage in the task's own struct (pinned once spawned, so the
 * stages are set up in its first poll). Items 1..N come from a producer
 * task; the consumer checks each (index, value) and returns the count. */
#define PIPE_N 300
#define PIPE_K 100

typedef struct pipeline {
    weft_iter_map m;
    weft_iter_filter f;
    weft_iter_enumerate e;
    weft_iter_take t;
} pipeline;

typedef struct pipe_consumer {
    weft_future base;
    weft_co co;
    weft_chan_rx rx;
    pipeline p;
    weft_stream_next nx;
    uint64_t item[2];
    int rc;
    int count;
    bool batches;     /* pull with next_many too, alternating with next */
    next_many nm;
    uint64_t many[7][2];
    size_t got, i;
} pipe_consumer;

WEFT_ASYNC_FN(pipe_consumer, int)
{
    WEFT_FN_BEGIN;
    if (weft_iter_map_init(&self->p.m, &self->rx.base, triple64, NULL, 8) ||
        weft_iter_filter_init(&self->p.f, &self->p.m.base, is_odd, NULL) ||
        weft_iter_enumerate_init(&self->p.e, &self->p.f.base) ||
        weft_iter_take_init(&self->p.t, &self->p.e.base, PIPE_K))
        WEFT_FN_RETURN(-1);
    if (!(self->p.t.base.flags & WEFT_F_SEND))
        WEFT_FN_RETURN(-2);
    for (;;) {
        if (self->batches && self->count % 2) {
            /* A batch of 1 + count % 7 items, every stage batching. */
            next_many_init(&self->nm, &self->p.t.base, self->many,
                           1 + (size_t)self->count % 7);
            WEFT_FN_AWAIT(&self->nm, &self->got);
            if (self->got == 0)
                break;
            for (self->i = 0; self->i < self->got; self->i++) {
                if (self->many[self->i][0] != (uint64_t)self->count ||
                    self->many[self->i][1] != 3 * (2 * (uint64_t)self->count + 1))
                    WEFT_FN_RETURN(-4);
                self->count++;
            }
            continue;
        }
        weft_stream_next_init(&self->nx, &self->p.t.base, self->item);
        WEFT_FN_AWAIT(&self->nx, &self->rc);
        if (self->rc == 0)
            break;
        /* The i-th odd multiple of 3 among 3, 6, 9, ...: 3 (2i + 1). */
        if (self->item[0] != (uint64_t)self->count ||
            self->item[1] != 3 * (2 * (uint64_t)self->count + 1))
            WEFT_FN_RETURN(-3);
        self->count++;
    }
    weft_stream_drop(&self->p.t.base);
    weft_stream_drop(&self->p.e.base);
    weft_stream_drop(&self->p.f.base);
    weft_stream_drop(&self->p.m.base);
    weft_chan_rx_drop(&self->rx); /* early: the producer sees -EPIPE */
    WEFT_FN_RETURN(self->count);
    WEFT_FN_END;
}

typedef struct pipe_producer {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send s;
    uint64_t v;
    int rc;
} pipe_producer;

WEFT_ASYNC_FN(pipe_producer, int)
{
    WEFT_FN_BEGIN;
    for (self->v = 1; self->v <= PIPE_N; self->v++) {
        weft_chan_send_init(&self->s, &self->tx, &self->v);
        WEFT_FN_AWAIT(&self->s, &self->rc);
        if (self->rc != 0)
            break;
    }
    weft_chan_tx_drop(&self->tx);
    WEFT_FN_RETURN(self->rc == 0 || self->rc == -EPIPE ? 0 : self->rc);
    WEFT_FN_END;
}

static void run_pipeline_in(weft_rt *rt, bool batches)
{
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 8), 0);
    pipe_consumer co = { WEFT_FN_INIT(pipe_consumer, WEFT_F_SEND), .rx = rx,
                         .batches = batches };
    pipe_producer pr = { WEFT_FN_INIT(pipe_producer, WEFT_F_SEND), .tx = tx };
    weft_join jc, jp;
    spawn_into(rt, &co.base, sizeof co, &jc);
    spawn_into(rt, &pr.base, sizeof pr, &jp);
    assert_int_equal(join_int(rt, &jc), PIPE_K);
    assert_int_equal(join_int(rt, &jp), 0);
}

static void run_pipeline(weft_rt *rt)
{
    run_pipeline_in(rt, false);
    run_pipeline_in(rt, true);
}

static void test_pipeline_in_one_struct_on_two_workers(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(2);
    for (int i = 0; i < 20; i++)
        run_pipeline(rt);
    weft_rt_shutdown(rt);
}

static void test_pipeline_in_one_struct_on_chaos_sims(void **state)
{
    (void)state;
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        weft_sim_options o = sim_options(seed);
        weft_rt *rt = sim_start(&o);
        run_pipeline(rt); /* chaos off */
        weft_rt_shutdown(rt);
        rt = chaos_sim(seed);
        run_pipeline(rt);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* ---- cancel sweeps ---------------------------------------------------------------- */

static weft_stream *make_map(comb_sweep *cs)
{
    weft_iter_map *m = (weft_iter_map *)cs->st.b;
    return weft_iter_map_init(m, &cs->rx.base, triple64, NULL, 8) ? NULL : &m->base;
}

static weft_stream *make_filter(comb_sweep *cs)
{
    weft_iter_filter *f = (weft_iter_filter *)cs->st.b;
    return weft_iter_filter_init(f, &cs->rx.base, is_odd, NULL) ? NULL : &f->base;
}

static weft_stream *make_filter_map(comb_sweep *cs)
{
    weft_iter_filter_map *f = (weft_iter_filter_map *)cs->st.b;
    return weft_iter_filter_map_init(f, &cs->rx.base, half_if_even, NULL, 8) ? NULL
                                                                               : &f->base;
}

static void ignore(void *ctx, const void *item)
{
    (void)ctx, (void)item;
}

static weft_stream *make_inspect(comb_sweep *cs)
{
    weft_iter_inspect *i = (weft_iter_inspect *)cs->st.b;
    return weft_iter_inspect_init(i, &cs->rx.base, ignore, NULL) ? NULL : &i->base;
}

static void test_cancel_sweep_map(void **state)
{
    (void)state;
    COMB_SWEEP("map", make_map, 1, 3, 6, 9, 12, 15, 18);
}

static void test_cancel_sweep_filter(void **state)
{
    (void)state;
    COMB_SWEEP("filter", make_filter, 1, 1, 3, 5);
}

static void test_cancel_sweep_filter_map(void **state)
{
    (void)state;
    COMB_SWEEP("filter_map", make_filter_map, 1, 1, 2, 3);
}

static void test_cancel_sweep_inspect(void **state)
{
    (void)state;
    COMB_SWEEP("inspect", make_inspect, 1, 1, 2, 3, 4, 5, 6);
}

static weft_stream *make_map_many(comb_sweep *cs)
{
    weft_iter_map_many *m = (weft_iter_map_many *)cs->st.b;
    return weft_iter_map_many_init(m, &cs->rx.base, triple64_many, NULL, 8) ? NULL : &m->base;
}

static weft_stream *make_filter_many(comb_sweep *cs)
{
    weft_iter_filter_many *f = (weft_iter_filter_many *)cs->st.b;
    return weft_iter_filter_many_init(f, &cs->rx.base, odd_many, NULL) ? NULL : &f->base;
}

static void test_cancel_sweep_many_forms(void **state)
{
    (void)state;
    COMB_SWEEP("map_many", make_map_many, 1, 3, 6, 9, 12, 15, 18);
    COMB_SWEEP("filter_many", make_filter_many, 1, 1, 3, 5);
    COMB_SWEEP_MANY("map_many batches", make_map_many, 1, 3, 3, 6, 9, 12, 15, 18);
    COMB_SWEEP_MANY("filter_many batches", make_filter_many, 1, 3, 1, 3, 5);
}

/* The same sweeps over batch pulls (next_many of up to 3), the drop
 * landing in the middle of batches the channel hands over. */
static void test_cancel_sweep_batches(void **state)
{
    (void)state;
    COMB_SWEEP_MANY("map batches", make_map, 1, 3, 3, 6, 9, 12, 15, 18);
    COMB_SWEEP_MANY("filter batches", make_filter, 1, 3, 1, 3, 5);
    COMB_SWEEP_MANY("filter_map batches", make_filter_map, 1, 3, 1, 2, 3);
    COMB_SWEEP_MANY("inspect batches", make_inspect, 1, 3, 1, 2, 3, 4, 5, 6);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_map_items_in_order_pending_and_done),
        T(test_map_batches_natively),
        T(test_flags_are_the_and_of_the_parts),
        T(test_misuse_is_einval),
        T(test_filter_keeps_matches_in_order),
        T(test_filter_yields_on_a_long_run_of_rejections),
        T(test_filter_map_and_inspect),
        T(test_batch_paths_give_the_same_items),
        T(test_filter_batches_natively),
        T(test_many_forms_give_the_same_items),
        T(test_many_forms_call_fn_once_per_batch),
        T(test_many_forms_flags_and_misuse),
        T(test_pipeline_in_one_struct_on_two_workers),
        T(test_pipeline_in_one_struct_on_chaos_sims),
        T(test_cancel_sweep_map),
        T(test_cancel_sweep_filter),
        T(test_cancel_sweep_filter_map),
        T(test_cancel_sweep_inspect),
        T(test_cancel_sweep_batches),
        T(test_cancel_sweep_many_forms),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
