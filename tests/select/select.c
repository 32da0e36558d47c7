/* Tests for select/select.c: weft_select over futures — the first to
 * finish wins and writes its output, the others are dropped then (and
 * only then), KEEP branches are never dropped, OFF branches never
 * polled, every branch OFF answers ELSE, biased polls in order and fair
 * spreads wins (seeded on the sim runtime: the same seed, the same
 * choices), flags are the AND of the branches', misuse answers -EINVAL —
 * and weft_select_next over streams: an item or an end, reported once,
 * nothing taken from the losers, exactly-once delivery from channels fed
 * by tasks on both runtimes, and WEFT_SELECT in an async fn. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/counting_waker.h"
#include "support/misuse_capture.h"
#include "support/poll.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "select/select_support.h"

/* ---- a leaf future: PENDING `waits` times (waking itself), then READY ---- */

typedef struct later {
    weft_future base;
    int value, waits;
    int *polls, *drops;
} later;

static weft_poll later_poll(weft_future *f, weft_cx *cx, void *out)
{
    later *l = (later *)f;
    if (l->polls)
        (*l->polls)++;
    if (l->waits > 0) {
        l->waits--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    memcpy(out, &l->value, sizeof l->value);
    return WEFT_READY;
}

static void later_drop(weft_future *f)
{
    later *l = (later *)f;
    if (l->drops)
        (*l->drops)++;
}

static const weft_future_ops later_ops = {
    .name = "test_later", .out_size = sizeof(int), .poll = later_poll, .drop = later_drop,
};

static void later_init(later *l, int value, int waits, int *polls, int *drops, uint32_t flags)
{
    weft_future_init(&l->base, &later_ops, flags);
    l->value = value;
    l->waits = waits;
    l->polls = polls;
    l->drops = drops;
}

/* Never finishes (and never wakes). */
static int later_never_waits = 1 << 30;

/* ---- weft_select ---------------------------------------------------------------------- */

static void test_select_first_to_finish_wins_and_the_rest_are_dropped(void **state)
{
    (void)state;
    int polls[3] = { 0 }, drops[3] = { 0 }, outs[3] = { -1, -1, -1 };
    later l[3];
    later_init(&l[0], 10, 3, &polls[0], &drops[0], WEFT_F_SEND);
    later_init(&l[1], 11, 1, &polls[1], &drops[1], WEFT_F_SEND);
    later_init(&l[2], 12, later_never_waits, &polls[2], &drops[2], WEFT_F_SEND);
    weft_select_branch br[3] = {
        WEFT_BRANCH(&l[0], &outs[0]), WEFT_BRANCH(&l[1], &outs[1]), WEFT_BRANCH(&l[2], &outs[2]),
    };
    weft_select s;
    assert_int_equal(weft_select_init(&s, br, 3, WEFT_SELECT_BIASED), 0);
    assert_true(s.base.flags & WEFT_F_SEND);
    int won = -7;
    counting_waker c;
    cw_init(&c);
    weft_waker w = cw_waker(&c);
    assert_int_equal(poll_with(&s.base, &w, &won), WEFT_PENDING);
    assert_int_equal(drops[0] + drops[1] + drops[2], 0); /* nothing dropped while pending */
    assert_int_equal(poll_with(&s.base, &w, &won), WEFT_READY);
    assert_int_equal(won, 1);
    assert_int_equal(outs[1], 11);
    assert_int_equal(outs[0], -1); /* the losers wrote nothing */
    assert_int_equal(outs[2], -1);
    /* Biased: branch 0 polled first each time, branch 2 not reached when 1 won. */
    assert_int_equal(polls[0], 2);
    assert_int_equal(polls[1], 2);
    assert_int_equal(polls[2], 1);
    /* Every branch dropped exactly once at completion, the winner too. */
    assert_int_equal(drops[0], 1);
    assert_int_equal(drops[1], 1);
    assert_int_equal(drops[2], 1);
    weft_future_drop(&s.base); /* the select's own drop drops nothing twice */
    assert_int_equal(drops[0] + drops[1] + drops[2], 3);
    assert_int_equal(misuse_count(), 0);
}

static void test_select_dropped_pending_drops_its_branches_but_not_kept_ones(void **state)
{
    (void)state;
    int drops[3] = { 0 }, outs[3];
    later l[3];
    for (int i = 0; i < 3; i++)
        later_init(&l[i], i, later_never_waits, NULL, &drops[i], WEFT_F_SEND);
    weft_select_branch br[3] = {
        WEFT_BRANCH(&l[0], &outs[0]), WEFT_BRANCH_KEEP(&l[1], &outs[1]),
        WEFT_BRANCH_IF(false, &l[2], &outs[2]),
    };
    weft_select s;
    assert_int_equal(weft_select_init(&s, br, 3, WEFT_SELECT_FAIR), 0);
    int won;
    assert_int_equal(poll_noop(&s.base, &won), WEFT_PENDING);
    weft_future_drop(&s.base);
    assert_int_equal(drops[0], 1);
    assert_int_equal(drops[1], 0); /* KEEP: the caller's */
    assert_int_equal(drops[2], 1); /* OFF but owned */
    weft_future_drop(&l[1].base);
}

static void test_select_kept_branch_survives_rounds_and_wins_later(void **state)
{
    (void)state;
    int kdrops = 0, kpolls = 0, out = -1, kout = -1;
    later deadline;
    later_init(&deadline, 99, 4, &kpolls, &kdrops, WEFT_F_SEND);
    int rounds = 0, won = -7;
    for (;;) {
        int drops = 0;
        later l;
        later_init(&l, rounds, later_never_waits, NULL, &drops, WEFT_F_SEND);
        weft_select s;
        weft_select_branch br[2] = { WEFT_BRANCH(&l, &out), WEFT_BRANCH_KEEP(&deadline, &kout) };
        assert_int_equal(weft_select_init(&s, br, 2, WEFT_SELECT_BIASED), 0);
        weft_poll r = poll_noop(&s.base, &won);
        weft_future_drop(&s.base);
        assert_int_equal(drops, 1); /* this round's future, every round */
        rounds++;
        if (r == WEFT_READY)
            break;
    }
    assert_int_equal(won, 1);
    assert_int_equal(kout, 99);
    assert_int_equal(rounds, 5); /* one poll of the kept future per round */
    assert_int_equal(kpolls, 5);
    assert_int_equal(kdrops, 0);
    weft_future_drop(&deadline.base);
    assert_int_equal(kdrops, 1);
}

static void test_select_off_branches_are_never_polled_and_all_off_is_else(void **state)
{
    (void)state;
    int polls[2] = { 0 }, drops[2] = { 0 }, outs[2];
    later l[2];
    later_init(&l[0], 1, 0, &polls[0], &drops[0], WEFT_F_SEND);
    later_init(&l[1], 2, 0, &polls[1], &drops[1], WEFT_F_SEND);
    weft_select_branch br[2] = { WEFT_BRANCH_IF(false, &l[0], &outs[0]),
                                 WEFT_BRANCH(&l[1], &outs[1]) };
    weft_select s;
    assert_int_equal(weft_select_init(&s, br, 2, WEFT_SELECT_FAIR), 0);
    int won;
    assert_int_equal(poll_noop(&s.base, &won), WEFT_READY);
    assert_int_equal(won, 1);
    assert_int_equal(polls[0], 0);
    weft_future_drop(&s.base);

    later_init(&l[0], 1, 0, &polls[0], &drops[0], WEFT_F_SEND);
    weft_select_branch off[2] = { WEFT_BRANCH_IF(false, &l[0], &outs[0]),
                                  { NULL, NULL, WEFT_SELECT_OFF } };
    assert_int_equal(weft_select_init(&s, off, 2, WEFT_SELECT_FAIR), 0);
    assert_int_equal(poll_noop(&s.base, &won), WEFT_READY);
    assert_int_equal(won, WEFT_SELECT_ELSE);
    assert_int_equal(polls[0], 0);
    assert_int_equal(drops[0], 2);
    weft_future_drop(&s.base);

    assert_int_equal(weft_select_init(&s, NULL, 0, WEFT_SELECT_FAIR), 0); /* no branch: else */
    assert_int_equal(poll_noop(&s.base, &won), WEFT_READY);
    assert_int_equal(won, WEFT_SELECT_ELSE);
    weft_future_drop(&s.base);
}

static void test_select_flags_are_the_and_of_the_branches(void **state)
{
    (void)state;
    int outs[2];
    later l[2];
    later_init(&l[0], 1, 0, NULL, NULL, WEFT_F_SEND);
    later_init(&l[1], 2, 0, NULL, NULL, 0);
    weft_select_branch br[2] = { WEFT_BRANCH(&l[0], &outs[0]), WEFT_BRANCH(&l[1], &outs[1]) };
    weft_select s;
    assert_int_equal(weft_select_init(&s, br, 2, WEFT_SELECT_FAIR), 0);
    assert_false(s.base.flags & WEFT_F_SEND);
    weft_future_drop(&s.base);
}

static void test_select_misuse(void **state)
{
    (void)state;
    int out, before = misuse_count();
    later l;
    later_init(&l, 1, 0, NULL, NULL, WEFT_F_SEND);
    weft_select s;
    weft_select_branch ok = WEFT_BRANCH(&l, &out);
    weft_select_branch no_out = WEFT_BRANCH(&l, NULL);
    weft_select_branch no_fut = { NULL, &out, 0 };
    weft_select_branch bad_flag = { &l.base, &out, 0x80u };
    assert_int_equal(weft_select_init(NULL, &ok, 1, WEFT_SELECT_FAIR), -EINVAL);
    assert_int_equal(weft_select_init(&s, NULL, 1, WEFT_SELECT_FAIR), -EINVAL);
    assert_int_equal(weft_select_init(&s, &ok, 1, 7u), -EINVAL);
    assert_int_equal(weft_select_init(&s, &no_out, 1, WEFT_SELECT_FAIR), -EINVAL);
    assert_int_equal(weft_select_init(&s, &no_fut, 1, WEFT_SELECT_FAIR), -EINVAL);
    assert_int_equal(weft_select_init(&s, &bad_flag, 1, WEFT_SELECT_FAIR), -EINVAL);
    assert_misuse_since(before, 6, "weft_select_init");

    /* init_inline: still a future; it dropped what it owned, answers -EINVAL. */
    int drops = 0;
    later_init(&l, 1, 0, NULL, &drops, WEFT_F_SEND);
    weft_select_branch many[WEFT_SELECT_INLINE + 1];
    for (size_t i = 0; i < WEFT_SELECT_INLINE + 1; i++)
        many[i] = (weft_select_branch){ NULL, NULL, WEFT_SELECT_OFF };
    many[0] = WEFT_BRANCH(&l, &out);
    before = misuse_count();
    weft_select_init_inline(&s, many, WEFT_SELECT_INLINE + 1, WEFT_SELECT_FAIR);
    assert_misuse_since(before, 1, "weft_select_init_inline");
    assert_int_equal(drops, 1);
    int won = 0;
    assert_int_equal(poll_noop(&s.base, &won), WEFT_READY);
    assert_int_equal(won, -EINVAL);
    weft_future_drop(&s.base);
    assert_int_equal(drops, 1);
}

/* Biased always takes the first ready branch; fair spreads the wins over
 * every ready branch, and on the sim runtime the seed fixes the choices. */
typedef struct fair_run {
    weft_future base;
    weft_co co;
    int wins[3], i, won, outs[3];
    unsigned mode;
    later l[3];
    weft_select s;
    int order[64];
} fair_run;

WEFT_ASYNC_FN(fair_run, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 64; self->i++) {
        for (int b = 0; b < 3; b++)
            later_init(&self->l[b], b, 0, NULL, NULL, WEFT_F_SEND);
        if (self->mode == WEFT_SELECT_BIASED)
            WEFT_SELECT_BIASED_IN(&self->s, &self->won, WEFT_BRANCH(&self->l[0], &self->outs[0]),
                                  WEFT_BRANCH(&self->l[1], &self->outs[1]),
                                  WEFT_BRANCH(&self->l[2], &self->outs[2]));
        else
            WEFT_SELECT(&self->s, &self->won, WEFT_BRANCH(&self->l[0], &self->outs[0]),
                        WEFT_BRANCH(&self->l[1], &self->outs[1]),
                        WEFT_BRANCH(&self->l[2], &self->outs[2]));
        if (self->won < 0 || self->outs[self->won] != self->won)
            WEFT_FN_RETURN(-1);
        self->wins[self->won]++;
        self->order[self->i] = self->won;
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void run_fair(weft_rt *rt, unsigned mode, fair_run *f)
{
    *f = (fair_run){ WEFT_FN_INIT(fair_run, WEFT_F_SEND), .mode = mode };
    int rc = -1;
    assert_int_equal(weft_block_on(rt, &f->base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
}

static void test_select_biased_takes_the_first_and_fair_spreads_seeded(void **state)
{
    (void)state;
    static fair_run a, b;
    weft_sim_options o = sim_options(sim_seed_or(7));
    weft_rt *rt = sim_start(&o);
    run_fair(rt, WEFT_SELECT_BIASED, &a);
    assert_int_equal(a.wins[0], 64);
    run_fair(rt, WEFT_SELECT_FAIR, &a);
    for (int i = 0; i < 3; i++)
        assert_true(a.wins[i] > 0); /* 64 fair draws over 3 ready branches */
    weft_rt_shutdown(rt);
    /* The same seed, the same choices. */
    rt = sim_start(&o);
    run_fair(rt, WEFT_SELECT_BIASED, &b);
    run_fair(rt, WEFT_SELECT_FAIR, &b);
    assert_memory_equal(a.order, b.order, sizeof a.order);
    weft_rt_shutdown(rt);
}

static void test_select_fair_spreads_on_the_thread_runtime(void **state)
{
    (void)state;
    weft_rt *rt = g_rt;
    static fair_run a;
    int total[3] = { 0 };
    for (int k = 0; k < 4; k++) {
        run_fair(rt, WEFT_SELECT_FAIR, &a);
        for (int i = 0; i < 3; i++)
            total[i] += a.wins[i];
    }
    for (int i = 0; i < 3; i++)
        assert_true(total[i] > 0); /* 256 draws: a branch never chosen is a bias */
}

/* ---- weft_select_next ------------------------------------------------------------------ */

/* uint64_t items from..end-1, PENDING (with a wake) every other poll. */
typedef struct slow {
    weft_stream base;
    uint64_t next, end;
    bool tick;
    unsigned polls;
} slow;

static weft_next slow_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    slow *sl = (slow *)s;
    sl->polls++;
    if ((sl->tick = !sl->tick)) {
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_NEXT_PENDING;
    }
    if (sl->next >= sl->end)
        return WEFT_NEXT_DONE;
    memcpy(item, &sl->next, sizeof sl->next);
    sl->next++;
    return WEFT_NEXT_ITEM;
}

static const weft_stream_ops slow_ops = {
    .name = "test_slow", .item_size = sizeof(uint64_t), .poll_next = slow_poll_next,
};

static void slow_init(slow *s, uint64_t from, uint64_t end, bool tick)
{
    weft_stream_init(&s->base, &slow_ops, WEFT_F_SEND);
    s->next = from;
    s->end = end;
    s->tick = tick;
    s->polls = 0;
}

static void test_select_next_items_and_ends_reported_once(void **state)
{
    (void)state;
    slow a, b;
    slow_init(&a, 0, 3, false);   /* PENDING first */
    slow_init(&b, 100, 102, true); /* ITEM first */
    uint64_t ia = 0, ib = 0;
    weft_select_stream br[2] = { { &a.base, &ia, 0 }, { &b.base, &ib, 0 } };
    uint64_t seen_a = 0, seen_b = 0;
    int ends = 0, elses = 0, polls = 0;
    for (;;) {
        weft_select_next s;
        assert_int_equal(weft_select_next_init(&s, br, 2, WEFT_SELECT_FAIR), 0);
        weft_select_event ev;
        weft_poll r;
        while ((r = poll_noop(&s.base, &ev)) == WEFT_PENDING)
            assert_true(++polls < 1000);
        weft_future_drop(&s.base);
        if (ev.index == WEFT_SELECT_ELSE) {
            elses++;
            break;
        }
        if (ev.ended) {
            ends++;
            assert_true(br[ev.index].flags & WEFT_SELECT_ENDED);
        } else if (ev.index == 0) {
            assert_int_equal(ia, seen_a); /* in order, none skipped */
            seen_a++;
        } else {
            assert_int_equal(ib, 100 + seen_b);
            seen_b++;
        }
    }
    assert_int_equal(seen_a, 3);
    assert_int_equal(seen_b, 2);
    assert_int_equal(ends, 2);
    assert_int_equal(elses, 1);
    assert_int_equal(misuse_count(), 0); /* no stream polled after DONE */
}

static void test_select_next_dropped_pending_takes_nothing(void **state)
{
    (void)state;
    slow a;
    slow_init(&a, 5, 6, false);
    uint64_t it = 0;
    weft_select_stream br[1] = { { &a.base, &it, 0 } };
    weft_select_next s;
    assert_int_equal(weft_select_next_init(&s, br, 1, WEFT_SELECT_FAIR), 0);
    weft_select_event ev;
    assert_int_equal(poll_noop(&s.base, &ev), WEFT_PENDING);
    weft_future_drop(&s.base);
    assert_int_equal(a.next, 5); /* the item is still the stream's */
    assert_int_equal(weft_select_next_init(&s, br, 1, WEFT_SELECT_FAIR), 0);
    assert_int_equal(poll_noop(&s.base, &ev), WEFT_READY);
    assert_int_equal(ev.index, 0);
    assert_int_equal(it, 5);
    weft_future_drop(&s.base);
}

static void test_select_next_misuse(void **state)
{
    (void)state;
    slow a;
    slow_init(&a, 0, 1, false);
    uint64_t it;
    weft_select_next s;
    int before = misuse_count();
    weft_select_stream no_item[1] = { { &a.base, NULL, 0 } };
    weft_select_stream no_stream[1] = { { NULL, &it, 0 } };
    weft_select_stream bad_flag[1] = { { &a.base, &it, 0x40u } };
    assert_int_equal(weft_select_next_init(&s, no_item, 1, WEFT_SELECT_FAIR), -EINVAL);
    assert_int_equal(weft_select_next_init(&s, no_stream, 1, WEFT_SELECT_FAIR), -EINVAL);
    assert_int_equal(weft_select_next_init(&s, bad_flag, 1, WEFT_SELECT_FAIR), -EINVAL);
    assert_int_equal(weft_select_next_init(&s, no_item, 1, 9u), -EINVAL);
    assert_misuse_since(before, 4, "weft_select_next_init");
}

/* Producers (tasks) each send ITEMS distinct ids into their own bounded
 * channel and close it; a consumer selects over the receivers (and a
 * short sleep, so the timer branch wins sometimes and its loss is swept
 * every round) until every channel ended. Each id arrives exactly once. */
#define PRODUCERS 3
#define ITEMS 400

typedef struct consumer {
    weft_future base;
    weft_co co;
    weft_chan_rx rx[PRODUCERS];
    uint64_t items[PRODUCERS];
    weft_select_stream br[PRODUCERS];
    weft_select_next next;
    weft_select_event ev;
    unsigned char *seen;
    unsigned got, ends;
} consumer;

WEFT_ASYNC_FN_WITH_DROP(consumer, int)
{
    WEFT_FN_BEGIN;
    for (int i = 0; i < PRODUCERS; i++)
        self->br[i] = (weft_select_stream){ &self->rx[i].base, &self->items[i], 0 };
    for (;;) {
        if (weft_select_next_init(&self->next, self->br, PRODUCERS, WEFT_SELECT_FAIR) != 0)
            WEFT_FN_RETURN(-EINVAL);
        WEFT_FN_AWAIT(&self->next, &self->ev);
        if (self->ev.index == WEFT_SELECT_ELSE)
            break;
        if (self->ev.ended) {
            self->ends++;
            continue;
        }
        uint64_t id = self->items[self->ev.index];
        if (id / ITEMS != (uint64_t)self->ev.index || self->seen[id]++)
            WEFT_FN_RETURN(-EPROTO); /* wrong channel, or a duplicate */
        self->got++;
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void consumer_drop(weft_future *f)
{
    consumer *self = (consumer *)f;
    weft_co_drop(&self->co);
    for (int i = 0; i < PRODUCERS; i++)
        weft_chan_rx_drop(&self->rx[i]);
}

static void run_exactly_once(weft_rt *rt)
{
    static unsigned char seen[PRODUCERS * ITEMS];
    memset(seen, 0, sizeof seen);
    consumer c = { WEFT_FN_INIT(consumer, WEFT_F_SEND), .seen = seen };
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
    assert_int_equal(c.ends, PRODUCERS);
    for (size_t i = 0; i < sizeof seen; i++)
        assert_int_equal(seen[i], 1);
}

static void test_select_next_over_channels_exactly_once(void **state)
{
    (void)state;
    run_exactly_once(g_rt);
}

static void test_select_next_over_channels_exactly_once_chaos_sims(void **state)
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
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_select_first_to_finish_wins_and_the_rest_are_dropped),
        T(test_select_dropped_pending_drops_its_branches_but_not_kept_ones),
        T(test_select_kept_branch_survives_rounds_and_wins_later),
        T(test_select_off_branches_are_never_polled_and_all_off_is_else),
        T(test_select_flags_are_the_and_of_the_branches),
        T(test_select_misuse),
        T(test_select_biased_takes_the_first_and_fair_spreads_seeded),
        RT(test_select_fair_spreads_on_the_thread_runtime),
        T(test_select_next_items_and_ends_reported_once),
        T(test_select_next_dropped_pending_takes_nothing),
        T(test_select_next_misuse),
        RT(test_select_next_over_channels_exactly_once),
        T(test_select_next_over_channels_exactly_once_chaos_sims),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
