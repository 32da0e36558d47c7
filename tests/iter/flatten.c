/* Tests for iter/flatten.c: the items of each inner stream in turn
 * (empty ones skipped), PENDING from the outer and the inner streams
 * passed on with the waker, the current inner stream kept across a
 * dropped next, DONE, flags AND, misuse, and the cancel sweep over
 * weft_stream_next with a channel receiver as the first inner stream. */
#include "iter/comb_support.h"

/* An outer stream: the stream pointers of an array, with an optional
 * PENDING before the one at index `pend_at`. */
typedef struct outer {
    weft_stream base;
    weft_stream *list[4];
    size_t len, at;
    size_t pend_at;
    bool pended;
} outer;

static weft_next outer_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    outer *o = (outer *)s;
    if (o->at == o->pend_at && !o->pended) {
        o->pended = true;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_NEXT_PENDING;
    }
    if (o->at >= o->len)
        return WEFT_NEXT_DONE;
    memcpy(item, &o->list[o->at++], sizeof(weft_stream *));
    return WEFT_NEXT_ITEM;
}

static const weft_stream_ops outer_ops = {
    .name = "test_outer", .item_size = sizeof(weft_stream *), .poll_next = outer_poll_next,
};

static void outer_init(outer *o, uint32_t flags, size_t pend_at)
{
    memset(o, 0, sizeof *o);
    weft_stream_init(&o->base, &outer_ops, flags);
    o->pend_at = pend_at;
}

static void test_flatten_reads_each_inner_in_turn(void **state)
{
    (void)state;
    scripted a, e;
    counter b;
    SCRIPT(&a, &scripted_ops, WEFT_F_SEND, 1, S_PENDING, 2, S_DONE);
    SCRIPT(&e, &scripted_ops, WEFT_F_SEND, S_DONE); /* empty */
    counter_init(&b, 10, 12, WEFT_F_SEND);
    outer o;
    outer_init(&o, WEFT_F_SEND, 2);
    o.list[0] = &a.base;
    o.list[1] = &e.base;
    o.list[2] = &b.base;
    o.len = 3;
    weft_iter_flatten f;
    assert_int_equal(weft_iter_flatten_init(&f, &o.base, 8), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t v = 0;
    assert_int_equal(next_u64(&f.base, &c), 1);
    assert_int_equal(pn(&f.base, &c, &v), WEFT_NEXT_PENDING); /* inner pending */
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(next_u64(&f.base, &c), 2);
    assert_int_equal(pn(&f.base, &c, &v), WEFT_NEXT_PENDING); /* outer pending */
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(next_u64(&f.base, &c), 10);
    assert_int_equal(next_u64(&f.base, &c), 11);
    assert_int_equal(pn(&f.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(a.after_done, 0);
    assert_int_equal(e.after_done, 0);
    weft_stream_drop(&f.base);
    assert_int_equal(misuse_count(), 0);
}

static void test_flatten_flags_and_misuse(void **state)
{
    (void)state;
    for (int send = 0; send < 2; send++) {
        outer o;
        outer_init(&o, send ? WEFT_F_SEND : 0, 99);
        weft_iter_flatten f;
        assert_int_equal(weft_iter_flatten_init(&f, &o.base, 8), 0);
        ASSERT_SEND_IFF(f.base.flags, send);
    }
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1);
    weft_iter_enumerate en; /* 16-byte items: not stream pointers */
    assert_int_equal(weft_iter_enumerate_init(&en, &sc.base), 0);
    weft_iter_flatten f;
    int before = misuse_count();
    assert_int_equal(weft_iter_flatten_init(&f, &en.base, 8), -EINVAL);
    assert_misuse_since(before, 1, "stream pointers");
    /* An inner stream of the wrong item size ends it, reported. */
    outer o;
    outer_init(&o, WEFT_F_SEND, 99);
    o.list[0] = &en.base;
    o.len = 1;
    assert_int_equal(weft_iter_flatten_init(&f, &o.base, 8), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t v;
    assert_int_equal(pn(&f.base, &c, &v), WEFT_NEXT_DONE);
    assert_misuse_since(before, 2, "inner stream");
}

static weft_stream *make_flatten(comb_sweep *cs)
{
    struct {
        outer o;
        weft_iter_flatten f;
    } *p = (void *)cs->st.b;
    outer_init(&p->o, WEFT_F_SEND, 99);
    cs->extra.end = 102;
    p->o.list[0] = &cs->rx.base;
    p->o.list[1] = &cs->extra.base;
    p->o.len = 2;
    return weft_iter_flatten_init(&p->f, &p->o.base, 8) ? NULL : &p->f.base;
}

static void test_cancel_sweep_flatten(void **state)
{
    (void)state;
    COMB_SWEEP("flatten", make_flatten, 1, 1, 2, 3, 4, 5, 6, 100, 101);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_flatten_reads_each_inner_in_turn),
        T(test_flatten_flags_and_misuse),
        T(test_cancel_sweep_flatten),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
