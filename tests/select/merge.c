/* Tests for select/merge.c: weft_merge yields every branch's items with
 * the branch's index, round robin (two always-ready branches alternate),
 * marks a branch that ended and never polls it again, says DONE only once
 * every branch ended or was removed (at once when empty); branches come
 * and go between polls (free indexes reused, -ENOSPC when full, -EINVAL on
 * bad input); poll_next_many lays a branch's batch out as (index, item)
 * pairs; items from channels fed by tasks arrive exactly once on both
 * runtimes; size_hint sums the live branches'. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "select/select_support.h"

/* ---- a probe stream: uint64_t items from..end-1, PENDING while !ready ---------------------- */

typedef struct probe {
    weft_stream base;
    uint64_t next, end;
    bool ready;
    unsigned polls, polls_after_done;
    bool done;
} probe;

static weft_next probe_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    probe *p = (probe *)s;
    (void)cx; /* the test polls again by itself */
    p->polls++;
    if (p->done)
        p->polls_after_done++;
    if (!p->ready)
        return WEFT_NEXT_PENDING;
    if (p->next >= p->end) {
        p->done = true;
        return WEFT_NEXT_DONE;
    }
    memcpy(item, &p->next, sizeof p->next);
    p->next++;
    return WEFT_NEXT_ITEM;
}

static void probe_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const probe *p = (const probe *)s;
    *lo = *hi = p->ready ? (size_t)(p->end - p->next) : 0;
    if (!p->ready)
        *hi = SIZE_MAX;
}

static const weft_stream_ops probe_ops = {
    .name = "test_probe", .item_size = sizeof(uint64_t), .poll_next = probe_poll_next,
    .size_hint = probe_size_hint,
};

static void probe_init(probe *p, uint64_t from, uint64_t end, bool ready, uint32_t flags)
{
    weft_stream_init(&p->base, &probe_ops, flags);
    p->next = from;
    p->end = end;
    p->ready = ready;
    p->polls = p->polls_after_done = 0;
    p->done = false;
}

#define MAXI sizeof(uint64_t)
typedef unsigned char mitem[WEFT_MERGE_ITEM_SIZE(MAXI)];

static weft_next mnext(weft_merge *m, void *item)
{
    weft_waker w = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_stream_poll_next(&m->base, &cx, item);
}

static uint64_t mval(mitem it)
{
    uint64_t v;
    memcpy(&v, weft_merge_item_data(it), sizeof v);
    return v;
}

static void test_merge_items_carry_their_branch_index(void **state)
{
    (void)state;
    probe p[3];
    for (int i = 0; i < 3; i++)
        probe_init(&p[i], 100 * (uint64_t)i, 100 * (uint64_t)i + 4 + (uint64_t)i, true,
                   WEFT_F_SEND);
    weft_merge_slot slots[3];
    weft_merge m;
    assert_int_equal(weft_merge_init(&m, slots, 3, MAXI, WEFT_F_SEND), 0);
    assert_int_equal(weft_stream_item_size(&m.base), WEFT_MERGE_ITEM_SIZE(MAXI));
    for (size_t i = 0; i < 3; i++) {
        size_t idx = 9;
        assert_int_equal(weft_merge_add(&m, &p[i].base, &idx), 0);
        assert_int_equal(idx, i);
    }
    assert_int_equal(weft_merge_len(&m), 3);
    uint64_t want[3] = { 0, 100, 200 };
    mitem it;
    weft_next r;
    int items = 0;
    while ((r = mnext(&m, it)) == WEFT_NEXT_ITEM) {
        uint64_t i = weft_merge_item_index(it);
        assert_true(i < 3);
        assert_int_equal(mval(it), want[i]); /* in order, none skipped */
        want[i]++;
        items++;
    }
    assert_int_equal(r, WEFT_NEXT_DONE);
    assert_int_equal(items, 4 + 5 + 6);
    for (int i = 0; i < 3; i++)
        assert_int_equal(want[i], 100 * (uint64_t)i + 4 + (uint64_t)i);
    assert_int_equal(weft_merge_len(&m), 0);
    weft_stream_drop(&m.base);
    assert_int_equal(misuse_count(), 0);
}

static void test_merge_round_robin_alternates_two_ready_branches(void **state)
{
    (void)state;
    probe a, b;
    probe_init(&a, 0, 1000, true, WEFT_F_SEND);
    probe_init(&b, 0, 1000, true, WEFT_F_SEND);
    weft_merge_slot slots[4];
    weft_merge m;
    size_t ia, ib;
    assert_int_equal(weft_merge_init(&m, slots, 4, MAXI, WEFT_F_SEND), 0);
    assert_int_equal(weft_merge_add(&m, &a.base, &ia), 0);
    assert_int_equal(weft_merge_add(&m, &b.base, &ib), 0);
    mitem it;
    uint64_t last = 99;
    for (int k = 0; k < 64; k++) {
        assert_int_equal(mnext(&m, it), WEFT_NEXT_ITEM);
        uint64_t i = weft_merge_item_index(it);
        assert_true(i != last); /* wins alternate */
        last = i;
    }
    assert_int_equal(a.next, 32);
    assert_int_equal(b.next, 32);
    /* A branch that is not ready is passed over, the other still served. */
    a.ready = false;
    for (int k = 0; k < 4; k++) {
        assert_int_equal(mnext(&m, it), WEFT_NEXT_ITEM);
        assert_int_equal(weft_merge_item_index(it), ib);
    }
    b.ready = false;
    assert_int_equal(mnext(&m, it), WEFT_NEXT_PENDING);
    weft_stream_drop(&m.base);
}

static void test_merge_an_ended_branch_is_marked_and_never_polled_again(void **state)
{
    (void)state;
    probe a, b;
    probe_init(&a, 0, 1, true, WEFT_F_SEND);  /* one item, then DONE */
    probe_init(&b, 0, 3, false, WEFT_F_SEND); /* pending for now */
    weft_merge_slot slots[2];
    weft_merge m;
    size_t ia, ib;
    assert_int_equal(weft_merge_init(&m, slots, 2, MAXI, WEFT_F_SEND), 0);
    assert_int_equal(weft_merge_add(&m, &a.base, &ia), 0);
    assert_int_equal(weft_merge_add(&m, &b.base, &ib), 0);
    mitem it;
    assert_int_equal(mnext(&m, it), WEFT_NEXT_ITEM);
    assert_int_equal(weft_merge_item_index(it), ia);
    assert_false(weft_merge_ended(&m, ia));
    assert_int_equal(mnext(&m, it), WEFT_NEXT_PENDING); /* a said DONE, b pending */
    assert_true(weft_merge_ended(&m, ia));
    assert_false(weft_merge_ended(&m, ib));
    assert_int_equal(weft_merge_len(&m), 1);
    unsigned apolls = a.polls;
    for (int k = 0; k < 5; k++)
        assert_int_equal(mnext(&m, it), WEFT_NEXT_PENDING); /* not DONE: b lives */
    b.ready = true;
    for (uint64_t v = 0; v < 3; v++) {
        assert_int_equal(mnext(&m, it), WEFT_NEXT_ITEM);
        assert_int_equal(weft_merge_item_index(it), ib);
        assert_int_equal(mval(it), v);
    }
    assert_int_equal(mnext(&m, it), WEFT_NEXT_DONE);
    assert_true(weft_merge_ended(&m, ib));
    assert_int_equal(a.polls, apolls); /* never polled after its end */
    assert_int_equal(a.polls_after_done + b.polls_after_done, 0);
    assert_false(weft_merge_ended(&m, 7)); /* out of range */
    weft_stream_drop(&m.base);
}

static void test_merge_empty_is_done_at_once_and_removal_counts_as_an_end(void **state)
{
    (void)state;
    weft_merge_slot slots[2];
    weft_merge m;
    mitem it;
    assert_int_equal(weft_merge_init(&m, slots, 2, MAXI, 0), 0);
    assert_int_equal(mnext(&m, it), WEFT_NEXT_DONE);
    weft_stream_drop(&m.base);

    probe a;
    probe_init(&a, 0, 5, false, WEFT_F_SEND);
    assert_int_equal(weft_merge_init(&m, slots, 2, MAXI, 0), 0);
    size_t ia;
    assert_int_equal(weft_merge_add(&m, &a.base, &ia), 0);
    assert_int_equal(mnext(&m, it), WEFT_NEXT_PENDING);
    assert_int_equal(weft_merge_remove(&m, ia), 0); /* the caller still owns it */
    assert_int_equal(weft_merge_len(&m), 0);
    assert_false(weft_merge_ended(&m, ia)); /* a free slot */
    unsigned apolls = a.polls;
    assert_int_equal(mnext(&m, it), WEFT_NEXT_DONE);
    assert_int_equal(a.polls, apolls);
    assert_int_equal(a.next, 0);
    weft_stream_drop(&m.base);
    assert_int_equal(misuse_count(), 0);
}

static void test_merge_add_and_remove_between_polls(void **state)
{
    (void)state;
    probe p[4];
    for (int i = 0; i < 4; i++)
        probe_init(&p[i], 10 * (uint64_t)i, 10 * (uint64_t)i + 3, true, WEFT_F_SEND);
    weft_merge_slot slots[3];
    weft_merge m;
    size_t idx[4];
    assert_int_equal(weft_merge_init(&m, slots, 3, MAXI, WEFT_F_SEND), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_merge_add(&m, &p[i].base, &idx[i]), 0);
    int before = misuse_count();
    assert_int_equal(weft_merge_add(&m, &p[3].base, &idx[3]), -ENOSPC); /* full */
    assert_int_equal(misuse_count(), before);
    mitem it;
    assert_int_equal(mnext(&m, it), WEFT_NEXT_ITEM);
    /* Take out branch 1; its free index goes to the next add. */
    assert_int_equal(weft_merge_remove(&m, idx[1]), 0);
    assert_int_equal(weft_merge_len(&m), 2);
    assert_int_equal(weft_merge_add(&m, &p[3].base, &idx[3]), 0);
    assert_int_equal(idx[3], idx[1]);
    uint64_t p1_next = p[1].next;
    int got[4] = { 0 };
    got[0] = 1; /* the first item was branch 0's (round robin starts at 0) */
    assert_int_equal(weft_merge_item_index(it), 0);
    weft_next r;
    while ((r = mnext(&m, it)) == WEFT_NEXT_ITEM) {
        uint64_t i = weft_merge_item_index(it), v = mval(it);
        int src = i == idx[3] ? 3 : (int)i;
        assert_int_equal(v / 10, (uint64_t)src); /* slot 1 now carries p[3]'s items */
        got[src]++;
    }
    assert_int_equal(r, WEFT_NEXT_DONE);
    assert_int_equal(got[0], 3);
    assert_int_equal(got[1], 0);
    assert_int_equal(got[2], 3);
    assert_int_equal(got[3], 3);
    assert_int_equal(p[1].next, p1_next); /* removed: never polled after */
    /* After DONE: no more adds. */
    before = misuse_count();
    assert_int_equal(weft_merge_add(&m, &p[1].base, &idx[1]), -EINVAL);
    assert_misuse_since(before, 1, "weft_merge_add");
    weft_stream_drop(&m.base);
}

static void test_merge_misuse(void **state)
{
    (void)state;
    weft_merge_slot slots[2];
    weft_merge m;
    int before = misuse_count();
    assert_int_equal(weft_merge_init(NULL, slots, 2, MAXI, 0), -EINVAL);
    assert_int_equal(weft_merge_init(&m, NULL, 2, MAXI, 0), -EINVAL);
    assert_int_equal(weft_merge_init(&m, slots, 0, MAXI, 0), -EINVAL);
    assert_int_equal(weft_merge_init(&m, slots, 2, 0, 0), -EINVAL);
    assert_int_equal(weft_merge_init(&m, slots, 2, WEFT_ITER_ITEM_MAX, 0), -EINVAL);
    assert_int_equal(weft_merge_init(&m, slots, 2, MAXI, 0x100u), -EINVAL);
    assert_misuse_since(before, 6, "weft_merge_init");

    assert_int_equal(weft_merge_init(&m, slots, 2, sizeof(uint32_t), WEFT_F_SEND), 0);
    probe big, local;
    probe_init(&big, 0, 1, true, WEFT_F_SEND); /* 8-byte items into a 4-byte merge */
    probe_init(&local, 0, 1, true, 0);
    size_t idx = 77;
    before = misuse_count();
    assert_int_equal(weft_merge_add(&m, &big.base, &idx), -EINVAL);
    assert_int_equal(weft_merge_add(&m, NULL, &idx), -EINVAL);
    assert_int_equal(weft_merge_add(&m, &big.base, NULL), -EINVAL);
    assert_int_equal(weft_merge_add(NULL, &big.base, &idx), -EINVAL);
    assert_int_equal(weft_merge_remove(&m, 0), -EINVAL); /* free */
    assert_int_equal(weft_merge_remove(&m, 5), -EINVAL); /* out of range */
    assert_int_equal(weft_merge_remove(NULL, 0), -EINVAL);
    assert_misuse_since(before, 7, "weft_merge");
    assert_int_equal(idx, 77);
    assert_int_equal(weft_merge_len(&m), 0);
    weft_stream_drop(&m.base);

    /* Not Send into a Send merge: refused; into a merge that is not Send: fine. */
    assert_int_equal(weft_merge_init(&m, slots, 2, MAXI, WEFT_F_SEND), 0);
    before = misuse_count();
    assert_int_equal(weft_merge_add(&m, &local.base, &idx), -EINVAL);
    assert_misuse_since(before, 1, "not Send");
    weft_stream_drop(&m.base);
    assert_int_equal(weft_merge_init(&m, slots, 2, MAXI, 0), 0);
    assert_false(m.base.flags & WEFT_F_SEND);
    assert_int_equal(weft_merge_add(&m, &local.base, &idx), 0);
    weft_stream_drop(&m.base);
}

/* ---- poll_next_many -------------------------------------------------------------------- */

#define SMALL 5   /* a branch item: 5 bytes */
#define WIDE 13   /* the merge's max item */
#define NSMALL 7

static void test_merge_poll_next_many_lays_out_index_item_pairs(void **state)
{
    (void)state;
    unsigned char src[2][NSMALL][SMALL];
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < NSMALL; i++)
            for (int b = 0; b < SMALL; b++)
                src[s][i][b] = (unsigned char)(s * 100 + i * 10 + b + 1);
    weft_iter_array a[2];
    for (int s = 0; s < 2; s++)
        assert_int_equal(weft_iter_array_init(&a[s], src[s], SMALL, NSMALL), 0);
    weft_merge_slot slots[2];
    weft_merge m;
    assert_int_equal(weft_merge_init(&m, slots, 2, WIDE, WEFT_F_SEND), 0);
    size_t idx;
    for (int s = 0; s < 2; s++) {
        assert_int_equal(weft_merge_add(&m, &a[s].base, &idx), 0);
        assert_int_equal(idx, (size_t)s);
    }
    const size_t stride = WEFT_MERGE_ITEM_SIZE(WIDE);
    unsigned char buf[16 * WEFT_MERGE_ITEM_SIZE(WIDE)];
    size_t seen[2] = { 0 }, batches = 0, n;
    weft_waker w = weft_waker_noop();
    weft_cx cx;
    weft_next r;
    for (;;) {
        weft_cx_init(&cx, &w);
        memset(buf, 0xee, sizeof buf);
        size_t max = batches % 2 ? 16 : 3; /* batches cut short and whole */
        r = weft_stream_poll_next_many(&m.base, &cx, buf, max, &n);
        if (r != WEFT_NEXT_ITEM)
            break;
        assert_true(n >= 1 && n <= max);
        batches++;
        uint64_t br = weft_merge_item_index(buf);
        assert_true(br < 2);
        for (size_t j = 0; j < n; j++) {
            unsigned char *it = buf + j * stride;
            assert_int_equal(weft_merge_item_index(it), br); /* one branch per batch */
            unsigned char *d = weft_merge_item_data(it);
            for (int b = 0; b < SMALL; b++)
                assert_int_equal(d[b], src[br][seen[br]][b]);
            seen[br]++;
        }
    }
    assert_int_equal(r, WEFT_NEXT_DONE);
    assert_int_equal(seen[0], NSMALL);
    assert_int_equal(seen[1], NSMALL);
    assert_true(batches >= 4);
    weft_stream_drop(&m.base);
    assert_int_equal(misuse_count(), 0);
}

/* ---- size_hint --------------------------------------------------------------------------- */

static void test_merge_size_hint_sums_the_live_branches(void **state)
{
    (void)state;
    probe a, b, c;
    probe_init(&a, 0, 5, true, WEFT_F_SEND);
    probe_init(&b, 0, 3, true, WEFT_F_SEND);
    probe_init(&c, 0, 2, false, WEFT_F_SEND); /* unknown: 0..SIZE_MAX */
    weft_merge_slot slots[3];
    weft_merge m;
    size_t lo = 1, hi = 1, ia, ib, ic;
    assert_int_equal(weft_merge_init(&m, slots, 3, MAXI, WEFT_F_SEND), 0);
    weft_stream_size_hint(&m.base, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 0);
    assert_int_equal(weft_merge_add(&m, &a.base, &ia), 0);
    assert_int_equal(weft_merge_add(&m, &b.base, &ib), 0);
    weft_stream_size_hint(&m.base, &lo, &hi);
    assert_int_equal(lo, 8);
    assert_int_equal(hi, 8);
    mitem it;
    assert_int_equal(mnext(&m, it), WEFT_NEXT_ITEM);
    weft_stream_size_hint(&m.base, &lo, &hi);
    assert_int_equal(lo, 7);
    assert_int_equal(hi, 7);
    assert_int_equal(weft_merge_add(&m, &c.base, &ic), 0);
    weft_stream_size_hint(&m.base, &lo, &hi);
    assert_int_equal(lo, 7);
    assert_int_equal(hi, SIZE_MAX);
    assert_int_equal(weft_merge_remove(&m, ic), 0);
    assert_int_equal(weft_merge_remove(&m, ia), 0);
    weft_stream_size_hint(&m.base, &lo, &hi);
    assert_int_equal(lo, 3); /* b's: the first item was a's */
    assert_int_equal(hi, 3);
    weft_stream_drop(&m.base);
}

/* ---- exactly once from channels fed by tasks ---------------------------------------------- */

#define PRODUCERS 3
#define ITEMS 300

typedef struct consumer {
    weft_future base;
    weft_co co;
    weft_chan_rx rx[PRODUCERS];
    weft_merge_slot slots[PRODUCERS];
    weft_merge m;
    weft_stream_next next;
    mitem item;
    int got_one;
    unsigned char *seen;
    unsigned got;
} consumer;

WEFT_ASYNC_FN_WITH_DROP(consumer, int)
{
    WEFT_FN_BEGIN;
    if (weft_merge_init(&self->m, self->slots, PRODUCERS, MAXI, WEFT_F_SEND) != 0)
        WEFT_FN_RETURN(-EINVAL);
    for (size_t i = 0; i < PRODUCERS; i++) {
        size_t idx;
        if (weft_merge_add(&self->m, &self->rx[i].base, &idx) != 0 || idx != i)
            WEFT_FN_RETURN(-EINVAL);
    }
    for (;;) {
        weft_stream_next_init(&self->next, &self->m.base, self->item);
        WEFT_FN_AWAIT(&self->next, &self->got_one);
        if (!self->got_one)
            break;
        uint64_t id = mval(self->item);
        if (id / ITEMS != weft_merge_item_index(self->item) || self->seen[id]++)
            WEFT_FN_RETURN(-EPROTO); /* wrong branch, or a duplicate */
        self->got++;
    }
    for (size_t i = 0; i < PRODUCERS; i++)
        if (!weft_merge_ended(&self->m, i))
            WEFT_FN_RETURN(-ESRCH);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void consumer_drop(weft_future *f)
{
    consumer *self = (consumer *)f;
    weft_co_drop(&self->co);
    weft_stream_drop(&self->m.base);
    for (int i = 0; i < PRODUCERS; i++)
        weft_chan_rx_drop(&self->rx[i]);
}

static void run_exactly_once(weft_rt *rt)
{
    static unsigned char seen[PRODUCERS * ITEMS];
    memset(seen, 0, sizeof seen);
    static consumer c;
    c = (consumer){ WEFT_FN_INIT(consumer, WEFT_F_SEND), .seen = seen };
    for (int i = 0; i < PRODUCERS; i++) {
        producer p = { WEFT_FN_INIT(producer, WEFT_F_SEND), .base_id = (uint64_t)i * ITEMS,
                        .n = ITEMS };
        assert_int_equal(weft_mpsc_new(&p.tx, &c.rx[i], sizeof(uint64_t), 4), 0);
        assert_int_equal(weft_spawn(rt, &p.base, sizeof p, NULL), 0);
    }
    int rc = -1;
    assert_int_equal(weft_block_on(rt, &c.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(c.got, PRODUCERS * ITEMS);
    for (size_t i = 0; i < sizeof seen; i++)
        assert_int_equal(seen[i], 1);
}

static void test_merge_over_channels_exactly_once(void **state)
{
    (void)state;
    run_exactly_once(g_rt);
}

static void test_merge_over_channels_exactly_once_chaos_sims(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        weft_sim_options o = sim_options(sim_seed_or(seed));
        o.leaf_pending = 0.3;
        o.spurious_wake = 0.3;
        weft_rt *rt = sim_start(&o);
        run_exactly_once(rt);
        weft_rt_shutdown(rt);
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_merge_items_carry_their_branch_index),
        T(test_merge_round_robin_alternates_two_ready_branches),
        T(test_merge_an_ended_branch_is_marked_and_never_polled_again),
        T(test_merge_empty_is_done_at_once_and_removal_counts_as_an_end),
        T(test_merge_add_and_remove_between_polls),
        T(test_merge_misuse),
        T(test_merge_poll_next_many_lays_out_index_item_pairs),
        T(test_merge_size_hint_sums_the_live_branches),
        RT(test_merge_over_channels_exactly_once),
        T(test_merge_over_channels_exactly_once_chaos_sims),
    };
#undef T
#undef RT
    return cmocka_run_group_tests(tests, NULL, NULL);
}
