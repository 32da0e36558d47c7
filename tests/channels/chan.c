/* Tests for channels/chan.c, ring.c, list.c and blocking.c: the mpsc
 * (bounded and unbounded) and mpmc channels. By hand first with a
 * counting waker (order, full and empty, who is woken when, recv_many,
 * capacity 1, item sizes 0 and 200), closing from either end, misuse,
 * the unbounded list across blocks and under -ENOMEM, mpmc receivers and
 * the hand-on of an unused wake, the sink and the eventfd; then
 * exactly-once under load on two workers, on the sim with chaos over many
 * seeds and from foreign threads; then the cancel sweeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "weft/weft.h"
#include "channels/queue.h"
#include "core/atomic.h"
#include "support/alarm_watchdog.h"
#include "support/counting_waker.h"
#include "support/every_other.h"
#include "support/poll.h"
#include "support/rng.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "sync/misc_support.h"

/* ---- helpers ------------------------------------------------------------------------- */

typedef int (*chan_new_fn)(weft_chan_tx *, weft_chan_rx *, size_t, size_t);

static int unbounded_new(weft_chan_tx *tx, weft_chan_rx *rx, size_t item_size, size_t cap)
{
    (void)cap;
    return weft_mpsc_unbounded_new(tx, rx, item_size);
}

/* The three kinds, for tests that run on each. */
static const struct {
    const char *name;
    chan_new_fn make;
} kinds[] = {
    { "mpsc", weft_mpsc_new },
    { "unbounded", unbounded_new },
    { "mpmc", weft_mpmc_new },
};
#define KINDS 3

static weft_poll pollc(weft_future *f, counting_waker *c, void *out)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(f, &cx, out);
}

static weft_poll sink_ready(weft_chan_tx *tx, counting_waker *c, int *res)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_sink_poll_ready(&tx->base, &cx, res);
}

static weft_poll sink_flush(weft_chan_tx *tx, counting_waker *c, int *res)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_sink_poll_flush(&tx->base, &cx, res);
}

static weft_poll sink_close(weft_chan_tx *tx, counting_waker *c, int *res)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_sink_poll_close(&tx->base, &cx, res);
}

/* Waiters in `q` now. */
static unsigned queued(weft__waitq *q)
{
    unsigned k = 0;
    weft__waitq_lock(q);
    for (weft_sync_waiter *w = q->head_; w; w = w->next_)
        k++;
    weft__waitq_unlock(q);
    return k;
}

static void send_ok(weft_chan_tx *tx, uint64_t v)
{
    assert_int_equal(weft_chan_try_send(tx, &v), 0);
}

static uint64_t recv_ok(weft_chan_rx *rx)
{
    uint64_t v = 0;
    assert_int_equal(weft_chan_try_recv(rx, &v), 0);
    return v;
}

/* ---- by hand ------------------------------------------------------------------------- */

static void test_order_len_and_capacity(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 4), 0);
        bool bounded = k != 1;
        assert_int_equal(weft_chan_capacity(&rx), bounded ? 4 : 0);
        uint64_t v = 0;
        assert_int_equal(weft_chan_try_recv(&rx, &v), -EAGAIN);
        for (uint64_t i = 1; i <= 4; i++) {
            send_ok(&tx, i);
            assert_int_equal(weft_chan_len(&rx), i);
        }
        v = 99;
        assert_int_equal(weft_chan_try_send(&tx, &v), bounded ? -EAGAIN : 0);
        assert_int_equal(weft_chan_len(&rx), bounded ? 4 : 5);
        for (uint64_t i = 1; i <= 4; i++)
            assert_int_equal(recv_ok(&rx), i);
        if (!bounded)
            assert_int_equal(recv_ok(&rx), 99);
        assert_int_equal(weft_chan_len(&rx), 0);
        assert_int_equal(weft_chan_try_recv(&rx, &v), -EAGAIN);
        /* Several laps of the ring, in order. */
        for (uint64_t i = 0; i < 50; i++) {
            send_ok(&tx, i);
            send_ok(&tx, i + 1000);
            assert_int_equal(recv_ok(&rx), i);
            assert_int_equal(recv_ok(&rx), i + 1000);
        }
        assert_false(weft_chan_tx_is_closed(&tx));
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_full_send_is_woken_exactly_when_a_receive_frees_room(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k += 2) { /* the bounded kinds */
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 2), 0);
        send_ok(&tx, 1);
        send_ok(&tx, 2);
        counting_waker c;
        cw_init(&c);
        uint64_t three = 3;
        weft_chan_send s;
        weft_chan_send_init(&s, &tx, &three);
        int out = 7;
        assert_int_equal(pollc(&s.base, &c, &out), WEFT_PENDING);
        assert_int_equal(queued(&tx.ch_->txq), 1);
        assert_int_equal(cw_woken(&c), 0);
        /* A second poll with nothing changed: still pending, not woken. */
        assert_int_equal(pollc(&s.base, &c, &out), WEFT_PENDING);
        assert_int_equal(cw_woken(&c), 0);
        uint64_t four = 4;
        assert_int_equal(weft_chan_try_send(&tx, &four), -EAGAIN);
        assert_int_equal(cw_woken(&c), 0);
        assert_int_equal(recv_ok(&rx), 1); /* room: the send is woken, once */
        assert_int_equal(cw_woken(&c), 1);
        assert_int_equal(pollc(&s.base, &c, &out), WEFT_READY);
        assert_int_equal(out, 0);
        assert_int_equal(queued(&tx.ch_->txq), 0);
        weft_future_drop(&s.base);
        assert_int_equal(weft_chan_len(&rx), 2);
        assert_int_equal(recv_ok(&rx), 2);
        assert_int_equal(recv_ok(&rx), 3);
        assert_int_equal(cw_woken(&c), 1);
        assert_int_equal(cw_outstanding(&c), 0);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_empty_recv_is_woken_by_a_send(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 3), 0);
        counting_waker c;
        cw_init(&c);
        uint64_t got = 0;
        weft_chan_recv r;
        weft_chan_recv_init(&r, &rx, &got);
        int out = 7;
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_PENDING);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_PENDING);
        assert_int_equal(cw_woken(&c), 0);
        send_ok(&tx, 42);
        assert_int_equal(cw_woken(&c), 1);
        send_ok(&tx, 43); /* the receiver is no longer parked: no wake */
        assert_int_equal(cw_woken(&c), 1);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_READY);
        assert_int_equal(out, 0);
        assert_int_equal(got, 42);
        weft_future_drop(&r.base);
        /* recv_many: pending on empty, woken by a send, takes the run. */
        assert_int_equal(recv_ok(&rx), 43);
        uint64_t buf[8] = { 0 };
        weft_chan_recv_many m;
        weft_chan_recv_many_init(&m, &rx, buf, 8);
        size_t n = 99;
        assert_int_equal(pollc(&m.base, &c, &n), WEFT_PENDING);
        send_ok(&tx, 5);
        assert_int_equal(cw_woken(&c), 2);
        send_ok(&tx, 6);
        assert_int_equal(pollc(&m.base, &c, &n), WEFT_READY);
        assert_int_equal(n, 2);
        assert_int_equal(buf[0], 5);
        assert_int_equal(buf[1], 6);
        weft_future_drop(&m.base);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_recv_many_takes_a_run_and_frees_room_for_waiting_senders(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k += 2) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 4), 0);
        for (uint64_t i = 0; i < 4; i++)
            send_ok(&tx, i);
        counting_waker c[3];
        weft_chan_send s[3];
        uint64_t items[3] = { 10, 11, 12 };
        int out[3];
        for (int i = 0; i < 3; i++) {
            cw_init(&c[i]);
            weft_chan_send_init(&s[i], &tx, &items[i]);
            assert_int_equal(pollc(&s[i].base, &c[i], &out[i]), WEFT_PENDING);
        }
        assert_int_equal(queued(&tx.ch_->txq), 3);
        uint64_t buf[3];
        assert_int_equal(weft_chan_try_recv_many(&rx, buf, 3), 3);
        for (uint64_t i = 0; i < 3; i++)
            assert_int_equal(buf[i], i);
        /* Three slots freed: the three senders, each once, in order. */
        for (int i = 0; i < 3; i++)
            assert_int_equal(cw_woken(&c[i]), 1);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(pollc(&s[i].base, &c[i], &out[i]), WEFT_READY);
            assert_int_equal(out[i], 0);
            weft_future_drop(&s[i].base);
        }
        uint64_t rest[8];
        assert_int_equal(weft_chan_try_recv_many(&rx, rest, 8), 4);
        assert_int_equal(rest[0], 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(rest[1 + i], items[i]);
        assert_int_equal(weft_chan_try_recv_many(&rx, rest, 8), -EAGAIN);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
        for (int i = 0; i < 3; i++)
            assert_int_equal(cw_outstanding(&c[i]), 0);
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_capacity_one(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k += 2) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 1), 0);
        assert_int_equal(weft_chan_capacity(&rx), 1);
        counting_waker c;
        cw_init(&c);
        send_ok(&tx, 0);
        for (uint64_t i = 1; i < 200; i++) {
            weft_chan_send s;
            weft_chan_send_init(&s, &tx, &i);
            int out = 7;
            assert_int_equal(pollc(&s.base, &c, &out), WEFT_PENDING);
            long before = cw_woken(&c);
            assert_int_equal(recv_ok(&rx), i - 1);
            assert_int_equal(cw_woken(&c), before + 1);
            assert_int_equal(pollc(&s.base, &c, &out), WEFT_READY);
            assert_int_equal(out, 0);
            weft_future_drop(&s.base);
            assert_int_equal(weft_chan_len(&rx), 1);
        }
        assert_int_equal(recv_ok(&rx), 199);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
}

static void test_item_size_zero_and_a_large_item(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, 0, 3), 0);
        char dummy = 'x';
        for (int i = 0; i < 3; i++)
            assert_int_equal(weft_chan_try_send(&tx, &dummy), 0);
        assert_int_equal(weft_chan_len(&rx), 3);
        assert_int_equal(weft_chan_try_recv(&rx, &dummy), 0);
        assert_int_equal(weft_chan_try_recv_many(&rx, &dummy, 8), 2);
        assert_int_equal(weft_chan_try_recv(&rx, &dummy), -EAGAIN);
        assert_int_equal(dummy, 'x');
        assert_int_equal(weft_stream_item_size(&rx.base), 0);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);

        /* 200 bytes, over several laps (and blocks). */
        enum { BIG = 200 };
        assert_int_equal(kinds[k].make(&tx, &rx, BIG, 3), 0);
        assert_int_equal(weft_stream_item_size(&rx.base), BIG);
        assert_int_equal(weft_sink_item_size(&tx.base), BIG);
        unsigned char in[BIG], out[2][BIG];
        unsigned next = 0;
        for (unsigned i = 0; i < 100; i++) {
            memset(in, (int)(i & 0xff), sizeof in);
            in[0] = (unsigned char)i;
            in[BIG - 1] = (unsigned char)~i;
            assert_int_equal(weft_chan_try_send(&tx, in), 0);
            if (i % 2 == 1) {
                assert_int_equal(weft_chan_try_recv_many(&rx, out, 2), 2);
                for (int j = 0; j < 2; j++, next++) {
                    assert_int_equal(out[j][0], (unsigned char)next);
                    assert_int_equal(out[j][BIG / 2], (unsigned char)next);
                    assert_int_equal(out[j][BIG - 1], (unsigned char)~next);
                }
            }
        }
        assert_int_equal(next, 100);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
    }
    assert_int_equal(misuse_count(), 0);
}

/* A send that claimed its slot before the receiver parked but has not
 * published the item yet will not wake the receiver (its claim saw no
 * WAITING), so the receiver must look again by itself. The test plays
 * that sender by hand: it claims a slot with the producer cursor's CAS,
 * lets the receive park, then publishes. */
static unsigned char *claim_by_hand(weft_chan *ch, uint64_t *stamp)
{
    uint64_t tw = weft_atomic_load_acquire(&ch->tail);
    uint64_t s = tw >> WEFT__CHAN_SHIFT;
    uint64_t next = ch->kind == WEFT__CHAN_UNBOUNDED ? s + 1 : weft__ring_next(ch, s);
    assert_true(weft_atomic_cas_strong_acq_rel(&ch->tail, &tw, next << WEFT__CHAN_SHIFT));
    *stamp = s;
    if (ch->kind == WEFT__CHAN_UNBOUNDED) {
        weft__lblock *b = weft_atomic_load_acquire(&ch->tail_block);
        return b->slots + (size_t)(s % WEFT__LIST_LAP) * ch->stride;
    }
    return ch->slots + (s & (ch->one_lap - 1)) * ch->stride;
}

static void publish_by_hand(weft_chan *ch, unsigned char *slot, uint64_t stamp, uint64_t v)
{
    memcpy(slot + sizeof(uint64_t), &v, sizeof v);
    weft_atomic_store_release((WEFT_ATOMIC(uint64_t) *)(void *)slot,
                              ch->kind == WEFT__CHAN_UNBOUNDED ? 1 : stamp + 1);
}

static void test_a_receive_behind_a_claimed_unpublished_send_looks_again(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 4), 0);
        send_ok(&tx, 1);
        assert_int_equal(recv_ok(&rx), 1);
        uint64_t stamp;
        unsigned char *slot = claim_by_hand(tx.ch_, &stamp);
        counting_waker c;
        cw_init(&c);
        uint64_t got = 0;
        int out = 7;
        weft_chan_recv r;
        weft_chan_recv_init(&r, &rx, &got);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_PENDING);
        if (cw_woken(&c) != 1)
            fail_msg("%s: a receive parked behind an unpublished claim was not told to "
                     "look again",
                     kinds[k].name);
        publish_by_hand(tx.ch_, slot, stamp, 55);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_READY);
        assert_int_equal(out, 0);
        assert_int_equal(got, 55);
        weft_future_drop(&r.base);
        send_ok(&tx, 2); /* the queue goes on from there */
        assert_int_equal(recv_ok(&rx), 2);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
}

/* The last sender goes while a send it made has claimed a slot but not
 * published its item: the receivers must not see the channel closed
 * and drained before that item (the claim counts, written or not). */
static void test_a_close_behind_a_claimed_unpublished_send_still_delivers_it(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 4), 0);
        uint64_t stamp;
        unsigned char *slot = claim_by_hand(tx.ch_, &stamp);
        weft_chan *ch = tx.ch_;
        weft_chan_tx_drop(&tx);
        uint64_t got = 0;
        if (weft_chan_try_recv(&rx, &got) != -EAGAIN)
            fail_msg("%s: closed and drained before a claimed send's item", kinds[k].name);
        counting_waker c;
        cw_init(&c);
        int out = 7;
        weft_chan_recv r;
        weft_chan_recv_init(&r, &rx, &got);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_PENDING);
        publish_by_hand(ch, slot, stamp, 77);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_READY);
        assert_int_equal(out, 0);
        assert_int_equal(got, 77);
        weft_future_drop(&r.base);
        assert_int_equal(weft_chan_try_recv(&rx, &got), -EPIPE);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
    assert_int_equal(misuse_count(), 0);
}

/* mpmc: a receive X claims a slot (its CAS on the head word takes the
 * WAITING bit: it owes the senders a wake) and, before it wakes anyone,
 * a receive Y frees another slot (its CAS saw no WAITING: it wakes
 * nobody). X must then serve one sender per slot: both, not one. The
 * test plays X by hand with the ring's own steps. */
static void test_mpmc_a_receive_that_owes_a_wake_serves_for_the_slots_freed_meanwhile(void **state)
{
    (void)state;
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpmc_new(&tx, &rx, sizeof(uint64_t), 2), 0);
    weft_chan *ch = tx.ch_;
    send_ok(&tx, 1);
    send_ok(&tx, 2);
    counting_waker c[2];
    weft_chan_send s[2];
    uint64_t items[2] = { 3, 4 };
    int out[2];
    for (int i = 0; i < 2; i++) {
        cw_init(&c[i]);
        weft_chan_send_init(&s[i], &tx, &items[i]);
        assert_int_equal(pollc(&s[i].base, &c[i], &out[i]), WEFT_PENDING);
    }
    /* X: claim the front slot, take its item, free it. */
    uint64_t hw = weft_atomic_load_acquire(&ch->head);
    assert_true(hw & WEFT__CHAN_WAITING);
    uint64_t h = hw >> WEFT__CHAN_SHIFT, e = weft__ring_next(ch, h);
    assert_true(weft_atomic_cas_strong_acq_rel(&ch->head, &hw, e << WEFT__CHAN_SHIFT));
    unsigned char *slot = ch->slots + (h & (ch->one_lap - 1)) * ch->stride;
    uint64_t v;
    memcpy(&v, slot + sizeof(uint64_t), sizeof v);
    assert_int_equal(v, 1);
    weft_atomic_store_release((WEFT_ATOMIC(uint64_t) *)(void *)slot, h + ch->one_lap);
    /* Y, meanwhile: wakes nobody. */
    assert_int_equal(recv_ok(&rx), 2);
    assert_int_equal(cw_woken(&c[0]) + cw_woken(&c[1]), 0);
    /* X's wake: one sender per slot freed. */
    weft__chan_wake_senders(ch, 1, e);
    assert_int_equal(cw_woken(&c[0]), 1);
    if (cw_woken(&c[1]) != 1)
        fail_msg("the second sender sleeps with a free slot");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pollc(&s[i].base, &c[i], &out[i]), WEFT_READY);
        assert_int_equal(out[i], 0);
        weft_future_drop(&s[i].base);
    }
    assert_int_equal(recv_ok(&rx), 3);
    assert_int_equal(recv_ok(&rx), 4);
    weft_chan_tx_drop(&tx);
    weft_chan_rx_drop(&rx);
    for (int i = 0; i < 2; i++)
        assert_int_equal(cw_outstanding(&c[i]), 0);
}

/* ---- closing ------------------------------------------------------------------------- */

static void test_last_sender_dropped_receivers_drain_then_epipe(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx, tx2;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 4), 0);
        assert_int_equal(weft_chan_tx_clone(&tx, &tx2), 0);
        send_ok(&tx, 1);
        send_ok(&tx2, 2);
        send_ok(&tx2, 3);
        weft_chan_tx_drop(&tx);
        send_ok(&tx2, 4); /* one sender left: still open */
        weft_chan_tx_drop(&tx2);
        /* Drain first: try_recv, recv, recv_many, stream next. */
        assert_int_equal(recv_ok(&rx), 1);
        counting_waker c;
        cw_init(&c);
        uint64_t got = 0;
        int out = 7;
        weft_chan_recv r;
        weft_chan_recv_init(&r, &rx, &got);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_READY);
        assert_int_equal(out, 0);
        assert_int_equal(got, 2);
        weft_future_drop(&r.base);
        weft_stream_next nx;
        weft_stream_next_init(&nx, &rx.base, &got);
        assert_int_equal(pollc(&nx.base, &c, &out), WEFT_READY);
        assert_int_equal(out, 1);
        assert_int_equal(got, 3);
        weft_future_drop(&nx.base);
        uint64_t buf[4];
        size_t n = 0;
        weft_chan_recv_many m;
        weft_chan_recv_many_init(&m, &rx, buf, 4);
        assert_int_equal(pollc(&m.base, &c, &n), WEFT_READY);
        assert_int_equal(n, 1);
        assert_int_equal(buf[0], 4);
        weft_future_drop(&m.base);
        /* Then -EPIPE everywhere. */
        assert_int_equal(weft_chan_try_recv(&rx, &got), -EPIPE);
        assert_int_equal(weft_chan_try_recv_many(&rx, buf, 4), -EPIPE);
        weft_chan_recv_init(&r, &rx, &got);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_READY);
        assert_int_equal(out, -EPIPE);
        weft_future_drop(&r.base);
        weft_chan_recv_many_init(&m, &rx, buf, 4);
        n = 99;
        assert_int_equal(pollc(&m.base, &c, &n), WEFT_READY);
        assert_int_equal(n, 0);
        weft_future_drop(&m.base);
        weft_stream_next_init(&nx, &rx.base, &got);
        assert_int_equal(pollc(&nx.base, &c, &out), WEFT_READY);
        assert_int_equal(out, 0); /* DONE */
        weft_future_drop(&nx.base);
        assert_int_equal(weft_chan_recv_blocking(&rx, &got), -EPIPE);
        assert_int_equal(weft_chan_recv_many_blocking(&rx, buf, 4), -EPIPE);
        assert_int_equal(cw_woken(&c), 0);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_a_pending_receive_is_woken_by_the_last_sender_drop(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 4), 0);
        counting_waker c;
        cw_init(&c);
        uint64_t got = 0;
        int out = 7;
        weft_chan_recv r;
        weft_chan_recv_init(&r, &rx, &got);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_PENDING);
        weft_chan_tx_drop(&tx);
        assert_int_equal(cw_woken(&c), 1);
        assert_int_equal(pollc(&r.base, &c, &out), WEFT_READY);
        assert_int_equal(out, -EPIPE);
        weft_future_drop(&r.base);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
}

static void test_last_receiver_dropped_sends_fail_with_epipe(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        bool bounded = k != 1;
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 1), 0);
        send_ok(&tx, 1);
        counting_waker c;
        cw_init(&c);
        uint64_t item = 0x1234;
        weft_chan_send s;
        weft_chan_send_init(&s, &tx, &item);
        int out = 7;
        assert_int_equal(pollc(&s.base, &c, &out), bounded ? WEFT_PENDING : WEFT_READY);
        if (!bounded) {
            weft_future_drop(&s.base);
            weft_chan_send_init(&s, &tx, &item);
        }
        weft_chan_rx_drop(&rx);
        assert_true(weft_chan_tx_is_closed(&tx));
        assert_int_equal(cw_woken(&c), bounded ? 1 : 0);
        assert_int_equal(pollc(&s.base, &c, &out), WEFT_READY);
        assert_int_equal(out, -EPIPE);
        weft_future_drop(&s.base);
        assert_int_equal(weft_chan_try_send(&tx, &item), -EPIPE);
        assert_int_equal(weft_chan_send_blocking(&tx, &item), -EPIPE);
        assert_int_equal(item, 0x1234);
        /* The sink too. */
        int res = 1;
        assert_int_equal(sink_ready(&tx, &c, &res), WEFT_READY);
        assert_int_equal(res, -EPIPE);
        weft_chan_tx_drop(&tx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_rx_close_fails_sends_and_leaves_the_buffer_to_drain(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 2), 0);
        send_ok(&tx, 1);
        send_ok(&tx, 2);
        counting_waker c;
        cw_init(&c);
        uint64_t item = 3;
        int out = 7;
        weft_chan_send s;
        weft_chan_send_init(&s, &tx, &item);
        bool bounded = k != 1;
        assert_int_equal(pollc(&s.base, &c, &out), bounded ? WEFT_PENDING : WEFT_READY);
        assert_false(weft_chan_tx_is_closed(&tx));
        weft_chan_rx_close(&rx);
        weft_chan_rx_close(&rx); /* twice: nothing more */
        assert_true(weft_chan_tx_is_closed(&tx));
        if (bounded) {
            assert_int_equal(cw_woken(&c), 1);
            assert_int_equal(pollc(&s.base, &c, &out), WEFT_READY);
            assert_int_equal(out, -EPIPE);
        }
        weft_future_drop(&s.base);
        assert_int_equal(weft_chan_try_send(&tx, &item), -EPIPE);
        assert_int_equal(recv_ok(&rx), 1);
        assert_int_equal(recv_ok(&rx), 2);
        if (!bounded)
            assert_int_equal(recv_ok(&rx), 3);
        assert_int_equal(weft_chan_try_recv(&rx, &item), -EPIPE);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
    assert_int_equal(misuse_count(), 0);
}

/* ---- misuse ------------------------------------------------------------------------- */

static void test_bad_arguments_and_handles_used_after_drop(void **state)
{
    (void)state;
    weft_chan_tx tx;
    weft_chan_rx rx;
    int before = misuse_count();
    assert_int_equal(weft_mpsc_new(NULL, &rx, 8, 4), -EINVAL);
    assert_misuse_since(before, 1, "weft_mpsc_new");
    before = misuse_count();
    assert_int_equal(weft_mpmc_new(&tx, NULL, 8, 4), -EINVAL);
    assert_misuse_since(before, 1, "weft_mpmc_new");
    before = misuse_count();
    assert_int_equal(weft_mpsc_new(&tx, &rx, 8, 0), -EINVAL);
    assert_misuse_since(before, 1, "capacity");
    before = misuse_count();
    assert_int_equal(weft_mpmc_new(&tx, &rx, 8, WEFT_CHAN_CAPACITY_MAX + 1), -EINVAL);
    assert_misuse_since(before, 1, "capacity");
    before = misuse_count();
    assert_int_equal(weft_mpsc_unbounded_new(&tx, &rx, WEFT_CHAN_ITEM_MAX + 1), -EINVAL);
    assert_misuse_since(before, 1, "item_size");
    before = misuse_count();
    assert_int_equal(weft_mpsc_unbounded_new(NULL, &rx, 8), -EINVAL);
    assert_misuse_since(before, 1, "weft_mpsc_unbounded_new");
    /* The largest accepted. */
    assert_int_equal(weft_mpsc_new(&tx, &rx, WEFT_CHAN_ITEM_MAX, 1), 0);
    weft_chan_tx_drop(&tx);
    weft_chan_rx_drop(&rx);

    /* NULL handles. */
    uint64_t v = 1;
    before = misuse_count();
    assert_int_equal(weft_chan_try_send(NULL, &v), -EINVAL);
    assert_misuse_since(before, 1, "weft_chan_try_send");
    before = misuse_count();
    assert_int_equal(weft_chan_try_recv(NULL, &v), -EINVAL);
    assert_misuse_since(before, 1, "weft_chan_try_recv");
    before = misuse_count();
    weft_chan_tx_drop(NULL);
    assert_misuse_since(before, 1, "weft_chan_tx_drop");
    before = misuse_count();
    weft_chan_rx_drop(NULL);
    assert_misuse_since(before, 1, "weft_chan_rx_drop");

    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof v, 2), 0);
    weft_chan_tx tx2;
    weft_chan_rx rx2;
    before = misuse_count();
    assert_int_equal(weft_chan_rx_clone(&rx, &rx2), -EINVAL);
    assert_misuse_since(before, 1, "weft_chan_rx_clone");
    before = misuse_count();
    assert_int_equal(weft_chan_tx_clone(&tx, NULL), -EINVAL);
    assert_misuse_since(before, 1, "weft_chan_tx_clone");
    before = misuse_count();
    assert_int_equal(weft_chan_try_recv_many(&rx, &v, 0), -EINVAL);
    assert_misuse_since(before, 1, "weft_chan_try_recv_many");
    before = misuse_count();
    assert_int_equal(weft_chan_recv_many_blocking(&rx, &v, 0), -EINVAL);
    assert_misuse_since(before, 1, "weft_chan_recv_many_blocking");
    before = misuse_count();
    weft_chan_recv_many m;
    weft_chan_recv_many_init(&m, &rx, &v, 0);
    size_t n = 99;
    assert_int_equal(poll_noop(&m.base, &n), WEFT_READY);
    assert_int_equal(n, 0);
    weft_future_drop(&m.base);
    assert_misuse_since(before, 1, "weft_chan_recv_many");
    before = misuse_count();
    int fdrc = weft_chan_rx_eventfd(&rx, NULL);
    assert_int_equal(fdrc, -EINVAL);
    assert_misuse_since(before, 1, "weft_chan_rx_eventfd");

    /* Used after drop: -EINVAL, reported, nothing touched. */
    assert_int_equal(weft_chan_tx_clone(&tx, &tx2), 0);
    weft_chan_tx_drop(&tx2);
    before = misuse_count();
    assert_int_equal(weft_chan_try_send(&tx2, &v), -EINVAL);
    assert_misuse_since(before, 1, "sender was dropped");
    before = misuse_count();
    assert_int_equal(weft_chan_tx_clone(&tx2, &tx), -EINVAL);
    assert_misuse_since(before, 1, "sender was dropped"); /* one report, the right one */
    before = misuse_count();
    assert_true(weft_chan_tx_is_closed(&tx2));
    assert_misuse_since(before, 1, "weft_chan_tx_is_closed");
    before = misuse_count();
    weft_chan_send s;
    weft_chan_send_init(&s, &tx2, &v);
    int out = 7;
    assert_int_equal(poll_noop(&s.base, &out), WEFT_READY);
    assert_int_equal(out, -EINVAL);
    weft_future_drop(&s.base);
    assert_misuse_since(before, 1, "weft_chan_send");
    before = misuse_count();
    weft_chan_tx_drop(&tx2);
    assert_misuse_since(before, 1, "sender dropped twice");
    assert_false(weft_chan_tx_is_closed(&tx)); /* the first sender is still there */
    send_ok(&tx, 5);
    weft_chan_rx_drop(&rx);
    before = misuse_count();
    assert_int_equal(weft_chan_try_recv(&rx, &v), -EINVAL);
    assert_misuse_since(before, 1, "receiver was dropped");
    before = misuse_count();
    assert_int_equal(weft_chan_len(&rx), 0);
    assert_int_equal(weft_chan_capacity(&rx), 0);
    assert_misuse_since(before, 2, "weft_chan_capacity");
    before = misuse_count();
    weft_chan_recv r;
    weft_chan_recv_init(&r, &rx, &v);
    assert_int_equal(poll_noop(&r.base, &out), WEFT_READY);
    assert_int_equal(out, -EINVAL);
    weft_future_drop(&r.base);
    assert_misuse_since(before, 1, "weft_chan_recv");
    before = misuse_count();
    weft_chan_recv_many_init(&m, &rx, &v, 4);
    n = 99;
    assert_int_equal(poll_noop(&m.base, &n), WEFT_READY);
    assert_int_equal(n, 0);
    weft_future_drop(&m.base);
    assert_misuse_since(before, 1, "receiver was dropped");
    before = misuse_count();
    weft_chan_rx_close(&rx);
    assert_misuse_since(before, 1, "weft_chan_rx_close");
    before = misuse_count();
    weft_chan_rx_drop(&rx);
    assert_misuse_since(before, 1, "receiver dropped twice");
    assert_int_equal(weft_chan_try_send(&tx, &v), -EPIPE);
    weft_chan_tx_drop(&tx);
}

/* ---- the unbounded list ------------------------------------------------------------- */

static void test_unbounded_keeps_order_across_many_blocks(void **state)
{
    (void)state;
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_unbounded_new(&tx, &rx, sizeof(uint64_t)), 0);
    uint64_t next_in = 0, next_out = 0;
    uint64_t rng = rng_seed(7);
    uint64_t buf[100];
    while (next_out < 20000) {
        unsigned burst = rng_next32(&rng) % 300;
        for (unsigned i = 0; i < burst && next_in < 20000; i++)
            send_ok(&tx, next_in++);
        assert_int_equal(weft_chan_len(&rx), next_in - next_out);
        unsigned take = rng_next32(&rng) % 400;
        while (take > 0 && next_out < next_in) {
            size_t max = 1 + rng_next32(&rng) % 100;
            long n = weft_chan_try_recv_many(&rx, buf, max);
            assert_true(n >= 1 && (size_t)n <= max);
            for (long i = 0; i < n; i++)
                assert_int_equal(buf[i], next_out++);
            take = take > (unsigned)n ? take - (unsigned)n : 0;
        }
    }
    assert_int_equal(weft_chan_try_recv(&rx, buf), -EAGAIN);
    /* A long backlog, dropped with items in it: freed with the channel. */
    for (uint64_t i = 0; i < 5000; i++)
        send_ok(&tx, i);
    weft_chan_tx_drop(&tx);
    weft_chan_rx_drop(&rx);
    /* Acquire: the frees ran on this thread; a count read. */
    assert_int_equal(atomic_load_explicit(&g_live_allocs, memory_order_acquire), 0);
}

/* Senders on foreign threads racing at every block boundary (a block
 * allocated for a link that another sender won goes to the spare) while
 * the receiver recycles the blocks it finished through the same spare:
 * whoever frees the block the spare held must see every access its
 * previous owner made (TSan checks the handoff). */
enum { SPARE_SENDERS = 4, SPARE_ITEMS = 20000 };

typedef struct spare_sender {
    weft_chan_tx tx;
    int id, rc;
} spare_sender;

static void *spare_sender_main(void *arg)
{
    spare_sender *s = arg;
    s->rc = 0;
    for (uint64_t i = 0; i < SPARE_ITEMS && s->rc == 0; i++) {
        uint64_t v = (uint64_t)s->id * SPARE_ITEMS + i;
        s->rc = weft_chan_try_send(&s->tx, &v);
    }
    weft_chan_tx_drop(&s->tx);
    return NULL;
}

static void test_unbounded_blocks_pass_between_threads(void **state)
{
    (void)state;
    for (int round = 0; round < 4; round++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(weft_mpsc_unbounded_new(&tx, &rx, sizeof(uint64_t)), 0);
        spare_sender s[SPARE_SENDERS];
        pthread_t t[SPARE_SENDERS];
        for (int i = 0; i < SPARE_SENDERS; i++) {
            s[i].id = i;
            assert_int_equal(weft_chan_tx_clone(&tx, &s[i].tx), 0);
        }
        weft_chan_tx_drop(&tx);
        for (int i = 0; i < SPARE_SENDERS; i++)
            assert_int_equal(pthread_create(&t[i], NULL, spare_sender_main, &s[i]), 0);
        uint64_t next[SPARE_SENDERS] = { 0 }, buf[64], rng = rng_seed((uint64_t)round);
        long n;
        for (;;) {
            n = weft_chan_try_recv_many(&rx, buf, 1 + rng_next32(&rng) % 64);
            if (n == -EAGAIN) {
                sched_yield();
                continue;
            }
            if (n < 0)
                break;
            /* Per sender, in order. */
            for (long i = 0; i < n; i++) {
                uint64_t id = buf[i] / SPARE_ITEMS;
                assert_true(id < SPARE_SENDERS);
                assert_int_equal(buf[i] % SPARE_ITEMS, next[id]++);
            }
        }
        assert_int_equal(n, -EPIPE);
        for (int i = 0; i < SPARE_SENDERS; i++) {
            assert_int_equal(pthread_join(t[i], NULL), 0);
            assert_int_equal(s[i].rc, 0);
            assert_int_equal(next[i], SPARE_ITEMS);
        }
        weft_chan_rx_drop(&rx);
    }
    assert_int_equal(atomic_load_explicit(&g_live_allocs, memory_order_acquire), 0);
}

/* Allocation failure injection over the counting allocator: while
 * g_fail_all is set every allocation fails; g_fail_at fails the n-th
 * (1-based) from when it was set. */
static _Atomic int g_fail_all;
static _Atomic long g_fail_at, g_alloc_seen;

static void *inj_alloc(size_t size, void *ctx)
{
    /* Relaxed: set by the test thread before the allocating calls. */
    if (atomic_load_explicit(&g_fail_all, memory_order_relaxed))
        return NULL;
    long n = atomic_fetch_add_explicit(&g_alloc_seen, 1, memory_order_relaxed) + 1;
    if (n == atomic_load_explicit(&g_fail_at, memory_order_relaxed))
        return NULL;
    return count_alloc(size, ctx);
}

static void inj_install(void)
{
    atomic_store_explicit(&g_fail_all, 0, memory_order_relaxed);
    atomic_store_explicit(&g_fail_at, 0, memory_order_relaxed);
    atomic_store_explicit(&g_alloc_seen, 0, memory_order_relaxed);
    weft_allocator a = { inj_alloc, count_free, NULL };
    assert_int_equal(weft_set_allocator(&a), 0);
}

static void test_unbounded_enomem_at_a_block_boundary_loses_nothing(void **state)
{
    (void)state;
    inj_install();
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_unbounded_new(&tx, &rx, sizeof(uint64_t)), 0);
    uint64_t next = 0, seen = 0;
    /* Several boundaries: the first needs a new block, later ones may
     * reuse the spare (then nothing can fail), so fail at each one the
     * spare does not cover. */
    int failed = 0;
    for (int round = 0; round < 6; round++) {
        /* Fill up to the block's last slot. */
        while ((next + 1) % WEFT__LIST_BLOCK_CAP != 0)
            send_ok(&tx, next++);
        atomic_store_explicit(&g_fail_all, 1, memory_order_relaxed);
        uint64_t v = next;
        int rc = weft_chan_try_send(&tx, &v);
        atomic_store_explicit(&g_fail_all, 0, memory_order_relaxed);
        if (rc == -ENOMEM) {
            failed++;
            assert_int_equal(weft_chan_len(&rx), next - seen);
            /* The send future reports it too. */
            atomic_store_explicit(&g_fail_all, 1, memory_order_relaxed);
            weft_chan_send s;
            weft_chan_send_init(&s, &tx, &v);
            int out = 7;
            assert_int_equal(poll_noop(&s.base, &out), WEFT_READY);
            assert_int_equal(out, -ENOMEM);
            weft_future_drop(&s.base);
            atomic_store_explicit(&g_fail_all, 0, memory_order_relaxed);
            send_ok(&tx, next++); /* the allocator recovered */
        } else {
            assert_int_equal(rc, 0);
            next++;
        }
        send_ok(&tx, next++);
        /* Drain all but a few every other round (so the spare is used
         * sometimes and the list spans blocks other times). */
        if (round % 2 == 1) {
            uint64_t got;
            while (weft_chan_try_recv(&rx, &got) == 0)
                assert_int_equal(got, seen++);
        }
    }
    assert_true(failed >= 3);
    weft_chan_tx_drop(&tx);
    uint64_t got;
    int rc;
    while ((rc = weft_chan_try_recv(&rx, &got)) == 0)
        assert_int_equal(got, seen++);
    assert_int_equal(rc, -EPIPE);
    assert_int_equal(seen, next);
    weft_chan_rx_drop(&rx);
    assert_int_equal(atomic_load_explicit(&g_live_allocs, memory_order_acquire), 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_creation_under_enomem_at_each_allocation(void **state)
{
    (void)state;
    inj_install();
    for (int k = 0; k < KINDS; k++) {
        for (long at = 1;; at++) {
            atomic_store_explicit(&g_alloc_seen, 0, memory_order_relaxed);
            atomic_store_explicit(&g_fail_at, at, memory_order_relaxed);
            weft_chan_tx tx;
            weft_chan_rx rx;
            int rc = kinds[k].make(&tx, &rx, 16, 8);
            atomic_store_explicit(&g_fail_at, 0, memory_order_relaxed);
            if (rc == 0) {
                /* Fewer allocations than `at`: the sweep is done. */
                assert_true(atomic_load_explicit(&g_alloc_seen, memory_order_relaxed) < at);
                weft_chan_tx_drop(&tx);
                weft_chan_rx_drop(&rx);
                assert_true(at >= 2);
                break;
            }
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(atomic_load_explicit(&g_live_allocs, memory_order_acquire), 0);
        }
    }
    /* The sink's item kept while full also allocates. */
    weft_chan_tx tx, tx2;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 1), 0);
    assert_int_equal(weft_chan_tx_clone(&tx, &tx2), 0);
    counting_waker c;
    cw_init(&c);
    int res = 1;
    assert_int_equal(sink_ready(&tx, &c, &res), WEFT_READY);
    send_ok(&tx2, 1); /* takes the room */
    uint64_t v = 2;
    atomic_store_explicit(&g_fail_all, 1, memory_order_relaxed);
    assert_int_equal(weft_sink_start_send(&tx.base, &v), -ENOMEM);
    atomic_store_explicit(&g_fail_all, 0, memory_order_relaxed);
    assert_int_equal(recv_ok(&rx), 1);
    assert_int_equal(weft_chan_try_recv(&rx, &v), -EAGAIN);
    weft_chan_tx_drop(&tx);
    weft_chan_tx_drop(&tx2);
    weft_chan_rx_drop(&rx);
    assert_int_equal(atomic_load_explicit(&g_live_allocs, memory_order_acquire), 0);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* ---- mpmc ------------------------------------------------------------------------------- */

static void test_mpmc_receivers_share_the_items(void **state)
{
    (void)state;
    weft_chan_tx tx;
    weft_chan_rx a, b;
    assert_int_equal(weft_mpmc_new(&tx, &a, sizeof(uint64_t), 8), 0);
    assert_int_equal(weft_chan_rx_clone(&a, &b), 0);
    for (uint64_t i = 0; i < 6; i++)
        send_ok(&tx, i);
    assert_int_equal(recv_ok(&b), 0);
    assert_int_equal(recv_ok(&a), 1);
    uint64_t buf[3];
    assert_int_equal(weft_chan_try_recv_many(&b, buf, 3), 3);
    assert_int_equal(buf[0], 2);
    assert_int_equal(buf[2], 4);
    /* Dropping one receiver does not close: another is left. */
    weft_chan_rx_drop(&b);
    assert_false(weft_chan_tx_is_closed(&tx));
    assert_int_equal(recv_ok(&a), 5);
    weft_chan_rx c2;
    assert_int_equal(weft_chan_rx_clone(&a, &c2), 0);
    weft_chan_rx_drop(&a);
    send_ok(&tx, 9);
    assert_int_equal(recv_ok(&c2), 9);
    weft_chan_rx_drop(&c2);
    assert_true(weft_chan_tx_is_closed(&tx));
    weft_chan_tx_drop(&tx);
    assert_int_equal(misuse_count(), 0);
}

/* Two receivers parked, one item sent: the first is woken. Dropped before
 * it looked (its receiver, or only its receive future), the wake goes to
 * the other, which finds the item: nobody sleeps with an item queued. */
static void test_mpmc_a_woken_receiver_dropped_before_it_looked_hands_the_wake_on(void **state)
{
    (void)state;
    for (int drop_handle = 0; drop_handle < 2; drop_handle++) {
        weft_chan_tx tx;
        weft_chan_rx a, b;
        assert_int_equal(weft_mpmc_new(&tx, &a, sizeof(uint64_t), 4), 0);
        assert_int_equal(weft_chan_rx_clone(&a, &b), 0);
        counting_waker ca, cb;
        cw_init(&ca);
        cw_init(&cb);
        uint64_t ga = 0, gb = 0;
        int oa = 7, ob = 7;
        weft_chan_recv ra, rb;
        weft_chan_recv_init(&ra, &a, &ga);
        weft_chan_recv_init(&rb, &b, &gb);
        assert_int_equal(pollc(&ra.base, &ca, &oa), WEFT_PENDING);
        assert_int_equal(pollc(&rb.base, &cb, &ob), WEFT_PENDING);
        assert_int_equal(queued(&tx.ch_->rxq), 2);
        send_ok(&tx, 77);
        assert_int_equal(cw_woken(&ca), 1);
        assert_int_equal(cw_woken(&cb), 0);
        weft_future_drop(&ra.base);
        if (drop_handle)
            weft_chan_rx_drop(&a);
        if (cw_woken(&cb) != 1)
            fail_msg("%s dropped after its wake: the other receiver was not woken",
                     drop_handle ? "a receiver" : "a receive future");
        assert_int_equal(pollc(&rb.base, &cb, &ob), WEFT_READY);
        assert_int_equal(ob, 0);
        assert_int_equal(gb, 77);
        weft_future_drop(&rb.base);
        assert_int_equal(queued(&tx.ch_->rxq), 0);
        if (!drop_handle)
            weft_chan_rx_drop(&a);
        weft_chan_rx_drop(&b);
        weft_chan_tx_drop(&tx);
        assert_int_equal(cw_outstanding(&ca), 0);
        assert_int_equal(cw_outstanding(&cb), 0);
    }
    assert_int_equal(misuse_count(), 0);
}

/* A woken sender dropped before it looked hands its wake to the next. */
static void test_a_woken_send_dropped_before_it_looked_hands_the_wake_on(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k += 2) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 1), 0);
        send_ok(&tx, 0);
        counting_waker ca, cb;
        cw_init(&ca);
        cw_init(&cb);
        uint64_t ia = 1, ib = 2;
        int oa = 7, ob = 7;
        weft_chan_send sa, sb;
        weft_chan_send_init(&sa, &tx, &ia);
        weft_chan_send_init(&sb, &tx, &ib);
        assert_int_equal(pollc(&sa.base, &ca, &oa), WEFT_PENDING);
        assert_int_equal(pollc(&sb.base, &cb, &ob), WEFT_PENDING);
        assert_int_equal(recv_ok(&rx), 0);
        assert_int_equal(cw_woken(&ca), 1);
        assert_int_equal(cw_woken(&cb), 0);
        weft_future_drop(&sa.base);
        assert_int_equal(cw_woken(&cb), 1);
        assert_int_equal(pollc(&sb.base, &cb, &ob), WEFT_READY);
        assert_int_equal(ob, 0);
        weft_future_drop(&sb.base);
        assert_int_equal(recv_ok(&rx), 2);
        assert_int_equal(queued(&tx.ch_->txq), 0);
        weft_chan_tx_drop(&tx);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&ca), 0);
        assert_int_equal(cw_outstanding(&cb), 0);
    }
}

/* ---- the sink ----------------------------------------------------------------------------- */

static void test_sink_on_a_full_channel(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k += 2) {
        weft_chan_tx tx, other;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 1), 0);
        assert_int_equal(weft_chan_tx_clone(&tx, &other), 0);
        counting_waker c;
        cw_init(&c);
        int res = 1;
        /* Room: ready, start_send goes straight in, flush is a no-op. */
        assert_int_equal(sink_ready(&tx, &c, &res), WEFT_READY);
        assert_int_equal(res, 0);
        uint64_t v = 1;
        assert_int_equal(weft_sink_start_send(&tx.base, &v), 0);
        assert_int_equal(sink_flush(&tx, &c, &res), WEFT_READY);
        assert_int_equal(res, 0);
        /* Full: poll_ready waits, woken when the receiver frees room. */
        assert_int_equal(sink_ready(&tx, &c, &res), WEFT_PENDING);
        assert_int_equal(cw_woken(&c), 0);
        assert_int_equal(recv_ok(&rx), 1);
        assert_int_equal(cw_woken(&c), 1);
        assert_int_equal(sink_ready(&tx, &c, &res), WEFT_READY);
        assert_int_equal(res, 0);
        /* The race: another sender takes the room between poll_ready and
         * start_send. The item is kept in the handle, pushed by flush. */
        send_ok(&other, 2);
        v = 3;
        assert_int_equal(weft_sink_start_send(&tx.base, &v), 0);
        v = 999; /* the caller's buffer is free again */
        int before = misuse_count();
        assert_int_equal(weft_sink_start_send(&tx.base, &v), -EINVAL); /* not ready */
        assert_misuse_since(before, 1, "start_send");
        assert_int_equal(sink_flush(&tx, &c, &res), WEFT_PENDING);
        assert_int_equal(sink_ready(&tx, &c, &res), WEFT_PENDING);
        long w = cw_woken(&c);
        assert_int_equal(recv_ok(&rx), 2);
        assert_int_equal(cw_woken(&c), w + 1);
        assert_int_equal(sink_flush(&tx, &c, &res), WEFT_READY);
        assert_int_equal(res, 0);
        assert_int_equal(recv_ok(&rx), 3);
        /* poll_close with an item kept while full: waits, then pushes it
         * and spends the handle. */
        assert_int_equal(sink_ready(&tx, &c, &res), WEFT_READY);
        send_ok(&other, 4);
        v = 5;
        assert_int_equal(weft_sink_start_send(&tx.base, &v), 0);
        assert_int_equal(sink_close(&tx, &c, &res), WEFT_PENDING);
        assert_int_equal(recv_ok(&rx), 4);
        assert_int_equal(sink_close(&tx, &c, &res), WEFT_READY);
        assert_int_equal(res, 0);
        assert_false(weft_chan_tx_is_closed(&other));
        before = misuse_count();
        assert_int_equal(weft_chan_try_send(&tx, &v), -EINVAL); /* closed as a sink */
        assert_misuse_since(before, 1, "weft_chan_try_send");
        weft_chan_tx_drop(&tx); /* still dropped once */
        assert_int_equal(recv_ok(&rx), 5);
        /* The last sender closed as a sink closes the channel. */
        assert_int_equal(sink_close(&other, &c, &res), WEFT_READY);
        assert_int_equal(res, 0);
        assert_int_equal(weft_chan_try_recv(&rx, &v), -EPIPE);
        weft_chan_tx_drop(&other);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
}

/* An item kept by the sink and never flushed: pushed by the drop if it
 * fits, else discarded (the documented rule); nothing leaks either way. */
static void test_sink_drop_with_an_item_kept(void **state)
{
    (void)state;
    for (int fits = 0; fits < 2; fits++) {
        weft_chan_tx tx, other;
        weft_chan_rx rx;
        assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 1), 0);
        assert_int_equal(weft_chan_tx_clone(&tx, &other), 0);
        counting_waker c;
        cw_init(&c);
        int res = 1;
        assert_int_equal(sink_ready(&tx, &c, &res), WEFT_READY);
        send_ok(&other, 1);
        uint64_t v = 2;
        assert_int_equal(weft_sink_start_send(&tx.base, &v), 0);
        assert_int_equal(sink_flush(&tx, &c, &res), WEFT_PENDING);
        if (fits)
            assert_int_equal(recv_ok(&rx), 1);
        weft_chan_tx_drop(&tx);
        if (!fits)
            assert_int_equal(recv_ok(&rx), 1);
        else
            assert_int_equal(recv_ok(&rx), 2);
        assert_int_equal(weft_chan_try_recv(&rx, &v), -EAGAIN);
        assert_int_equal(queued(&other.ch_->txq), 0);
        weft_chan_tx_drop(&other);
        weft_chan_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
}

/* ---- the eventfd ---------------------------------------------------------------------------- */

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    return r == 1 && (p.revents & POLLIN);
}

static void test_eventfd_by_hand(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), 4), 0);
        int fd = -1, fd2 = -1;
        assert_int_equal(weft_chan_rx_eventfd(&rx, &fd), 0);
        assert_true(fd >= 0);
        assert_int_equal(weft_chan_rx_eventfd(&rx, &fd2), 0);
        assert_int_equal(fd2, fd); /* one per channel */
        /* Readable at once (the host must look); empty re-arms it. */
        assert_true(readable(fd, 0));
        uint64_t v;
        assert_int_equal(weft_chan_try_recv(&rx, &v), -EAGAIN);
        assert_false(readable(fd, 0));
        send_ok(&tx, 1);
        assert_true(readable(fd, 0));
        send_ok(&tx, 2);
        assert_int_equal(recv_ok(&rx), 1);
        assert_true(readable(fd, 0)); /* not re-armed until it finds nothing */
        uint64_t buf[4];
        assert_int_equal(weft_chan_try_recv_many(&rx, buf, 4), 1);
        assert_int_equal(buf[0], 2);
        assert_int_equal(weft_chan_try_recv_many(&rx, buf, 4), -EAGAIN);
        assert_false(readable(fd, 0));
        send_ok(&tx, 3);
        assert_true(readable(fd, 0));
        assert_int_equal(recv_ok(&rx), 3);
        assert_int_equal(weft_chan_try_recv(&rx, &v), -EAGAIN);
        assert_false(readable(fd, 0));
        weft_chan_tx_drop(&tx); /* close: readable */
        assert_true(readable(fd, 0));
        assert_int_equal(weft_chan_try_recv(&rx, &v), -EPIPE);
        weft_chan_rx_drop(&rx); /* closes the fd with the channel */
    }
    assert_int_equal(misuse_count(), 0);
}

enum { EFD_ITEMS = 20000 };

typedef struct efd_producer {
    weft_chan_tx tx;
    int rc;
} efd_producer;

static void *efd_producer_main(void *arg)
{
    efd_producer *p = arg;
    p->rc = 0;
    for (uint64_t i = 0; i < EFD_ITEMS && p->rc == 0; i++)
        p->rc = weft_chan_send_blocking(&p->tx, &i);
    weft_chan_tx_drop(&p->tx);
    return NULL;
}

static void test_eventfd_from_a_foreign_thread(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        efd_producer p;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&p.tx, &rx, sizeof(uint64_t), 16), 0);
        int fd = -1;
        assert_int_equal(weft_chan_rx_eventfd(&rx, &fd), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, efd_producer_main, &p), 0);
        uint64_t next = 0, buf[7];
        long waits = 0;
        for (;;) {
            /* A lost re-arm shows as a minute's wait here, then a failure. */
            if (!readable(fd, 60000))
                fail_msg("%s: eventfd not readable with %llu of %d items received",
                         kinds[k].name, (unsigned long long)next, EFD_ITEMS);
            waits++;
            long n;
            while ((n = weft_chan_try_recv_many(&rx, buf, 1 + (size_t)(waits % 7))) > 0)
                for (long i = 0; i < n; i++)
                    assert_int_equal(buf[i], next++);
            if (n == -EPIPE)
                break;
            assert_int_equal(n, -EAGAIN);
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(p.rc, 0);
        assert_int_equal(next, EFD_ITEMS);
        weft_chan_rx_drop(&rx);
    }
}

/* ---- exactly once under load ---------------------------------------------------------- */

enum { MAX_PRODUCERS = 4, PER_PRODUCER = 400, MAX_IDS = MAX_PRODUCERS * PER_PRODUCER };

/* Each id sent once must be received once. */
typedef struct tally {
    _Atomic unsigned char seen[MAX_IDS];
    _Atomic long dups, bad, got;
} tally;

static tally g_tally;

static void tally_reset(void)
{
    for (size_t i = 0; i < MAX_IDS; i++)
        weft_atomic_init(&g_tally.seen[i], 0);
    weft_atomic_init(&g_tally.dups, 0);
    weft_atomic_init(&g_tally.bad, 0);
    weft_atomic_init(&g_tally.got, 0);
}

static void tally_mark(uint64_t id)
{
    /* Relaxed: counters read after every task was joined. */
    if (id >= MAX_IDS) {
        weft_atomic_fetch_add_relaxed(&g_tally.bad, 1);
        return;
    }
    if (weft_atomic_fetch_add_relaxed(&g_tally.seen[id], 1) != 0)
        weft_atomic_fetch_add_relaxed(&g_tally.dups, 1);
    weft_atomic_fetch_add_relaxed(&g_tally.got, 1);
}

/* Every id of `producers` producers seen exactly once. */
static bool tally_exact(int producers)
{
    /* Acquire: pairs with nothing stronger than the joins; a read. */
    if (weft_atomic_load_acquire(&g_tally.dups) || weft_atomic_load_acquire(&g_tally.bad) ||
        weft_atomic_load_acquire(&g_tally.got) != (long)producers * PER_PRODUCER)
        return false;
    for (int i = 0; i < producers * PER_PRODUCER; i++)
        if (weft_atomic_load_relaxed(&g_tally.seen[i]) != 1)
            return false;
    return true;
}

/* Sends its PER_PRODUCER ids (some through the sink), then drops its
 * sender. */
typedef struct producer {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send s;
    uint64_t item;
    int p, i, rc;
} producer;

WEFT_ASYNC_FN(producer, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < PER_PRODUCER; self->i++) {
        self->item = (uint64_t)self->p * PER_PRODUCER + (uint64_t)self->i;
        weft_chan_send_init(&self->s, &self->tx, &self->item);
        WEFT_FN_AWAIT(&self->s, &self->rc);
        if (self->rc != 0)
            break;
    }
    weft_chan_tx_drop(&self->tx);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

/* Receives until the channel is closed and drained, with recv_many,
 * recv or the stream's next (by `mode`), then drops its receiver. */
typedef struct consumer {
    weft_future base;
    weft_co co;
    weft_chan_rx rx;
    int mode;
    weft_chan_recv_many m;
    weft_chan_recv r;
    weft_stream_next nx;
    uint64_t buf[16];
    size_t n;
    int rc;
} consumer;

WEFT_ASYNC_FN(consumer, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        if (self->mode == 0) {
            weft_chan_recv_many_init(&self->m, &self->rx, self->buf, 16);
            WEFT_FN_AWAIT(&self->m, &self->n);
        } else if (self->mode == 1) {
            weft_chan_recv_init(&self->r, &self->rx, self->buf);
            WEFT_FN_AWAIT(&self->r, &self->rc);
            self->n = self->rc == 0;
        } else {
            weft_stream_next_init(&self->nx, &self->rx.base, self->buf);
            WEFT_FN_AWAIT(&self->nx, &self->rc);
            self->n = self->rc == 1;
        }
        if (self->n == 0)
            break;
        for (size_t i = 0; i < self->n; i++)
            tally_mark(self->buf[i]);
    }
    weft_chan_rx_drop(&self->rx);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static const size_t load_caps[] = { 1, 2, 7, 64 };

/* Spawn P producers and C consumers on `rt` over a fresh channel of kind
 * `k`; joins in j (may be NULL: detached, for the sim). */
static void load_spawn(weft_rt *rt, int k, size_t cap, int producers, int consumers,
                       weft_join *j)
{
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), cap), 0);
    int n = 0;
    for (int p = 0; p < producers; p++) {
        producer pr = { WEFT_FN_INIT(producer, WEFT_F_SEND), .p = p };
        assert_int_equal(weft_chan_tx_clone(&tx, &pr.tx), 0);
        assert_int_equal(weft_spawn(rt, &pr.base, sizeof pr, j ? &j[n++] : NULL), 0);
    }
    weft_chan_tx_drop(&tx);
    for (int c = 0; c < consumers; c++) {
        consumer co = { WEFT_FN_INIT(consumer, WEFT_F_SEND), .mode = c % 3 };
        if (c == consumers - 1)
            co.rx = rx; /* the first receiver moves in (not used yet) */
        else
            assert_int_equal(weft_chan_rx_clone(&rx, &co.rx), 0);
        assert_int_equal(weft_spawn(rt, &co.base, sizeof co, j ? &j[n++] : NULL), 0);
    }
}

static int load_consumers(int k) { return k == 2 ? 3 : 1; }

static void test_exactly_once_on_two_workers(void **state)
{
    (void)state;
    static weft_join j[MAX_PRODUCERS + 3];
    for (int round = 0; round < 24; round++) {
        int k = round % KINDS;
        size_t cap = load_caps[(round / KINDS) % 4];
        int consumers = load_consumers(k);
        tally_reset();
        load_spawn(g_rt, k, cap, MAX_PRODUCERS, consumers, j);
        for (int i = 0; i < MAX_PRODUCERS + consumers; i++) {
            int out = -1;
            assert_int_equal(join_blocking(g_rt, &j[i], &out, sizeof out), 0);
            assert_int_equal(out, 0);
        }
        if (!tally_exact(MAX_PRODUCERS))
            fail_msg("round %d (%s, capacity %zu): got %ld, %ld duplicate(s)", round,
                     kinds[k].name, cap, weft_atomic_load_acquire(&g_tally.got),
                     weft_atomic_load_acquire(&g_tally.dups));
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_exactly_once_on_the_sim_with_chaos(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= 120; seed++) {
        int k = (int)(seed % KINDS);
        size_t cap = load_caps[(seed / KINDS) % 4];
        weft_rt *rt = chaos_sim(seed);
        tally_reset();
        load_spawn(rt, k, cap, 3, load_consumers(k), NULL);
        SIM_ASSERT(rt, weft_sim_run(rt) == 0);
        SIM_ASSERT(rt, tally_exact(3));
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
    assert_int_equal(misuse_count(), 0);
}

/* Foreign threads: producers with send_blocking, consumers with
 * recv_blocking or recv_many_blocking. */
typedef struct fthread {
    weft_chan_tx tx;
    weft_chan_rx rx;
    int p, mode, rc;
} fthread;

static void *fproducer_main(void *arg)
{
    fthread *f = arg;
    f->rc = 0;
    for (int i = 0; i < PER_PRODUCER && f->rc == 0; i++) {
        uint64_t id = (uint64_t)f->p * PER_PRODUCER + (uint64_t)i;
        f->rc = weft_chan_send_blocking(&f->tx, &id);
    }
    weft_chan_tx_drop(&f->tx);
    return NULL;
}

static void *fconsumer_main(void *arg)
{
    fthread *f = arg;
    uint64_t buf[16];
    for (;;) {
        long n;
        if (f->mode == 0) {
            n = weft_chan_recv_many_blocking(&f->rx, buf, 16);
        } else {
            int r = weft_chan_recv_blocking(&f->rx, buf);
            n = r == 0 ? 1 : r;
        }
        if (n < 0) {
            f->rc = n == -EPIPE ? 0 : (int)n;
            break;
        }
        for (long i = 0; i < n; i++)
            tally_mark(buf[i]);
    }
    weft_chan_rx_drop(&f->rx);
    return NULL;
}

static void test_exactly_once_between_foreign_threads(void **state)
{
    (void)state;
    for (int round = 0; round < 12; round++) {
        int k = round % KINDS;
        size_t cap = load_caps[(round / KINDS) % 4];
        int consumers = load_consumers(k);
        tally_reset();
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), cap), 0);
        fthread f[MAX_PRODUCERS + 3];
        pthread_t t[MAX_PRODUCERS + 3];
        int n = 0;
        for (int p = 0; p < MAX_PRODUCERS; p++, n++) {
            f[n] = (fthread){ .p = p };
            assert_int_equal(weft_chan_tx_clone(&tx, &f[n].tx), 0);
        }
        weft_chan_tx_drop(&tx);
        for (int c = 0; c < consumers; c++, n++) {
            f[n] = (fthread){ .mode = (c + round) % 2 };
            if (c == consumers - 1)
                f[n].rx = rx;
            else
                assert_int_equal(weft_chan_rx_clone(&rx, &f[n].rx), 0);
        }
        for (int i = 0; i < n; i++)
            assert_int_equal(pthread_create(&t[i], NULL,
                                             i < MAX_PRODUCERS ? fproducer_main : fconsumer_main,
                                             &f[i]),
                             0);
        for (int i = 0; i < n; i++) {
            assert_int_equal(pthread_join(t[i], NULL), 0);
            assert_int_equal(f[i].rc, 0);
        }
        if (!tally_exact(MAX_PRODUCERS))
            fail_msg("round %d (%s, capacity %zu): got %ld, %ld duplicate(s)", round,
                     kinds[k].name, cap, weft_atomic_load_acquire(&g_tally.got),
                     weft_atomic_load_acquire(&g_tally.dups));
    }
}

/* Foreign producers feeding task consumers on the workers. */
static void test_foreign_producers_feed_task_consumers(void **state)
{
    (void)state;
    static weft_join j[3];
    for (int round = 0; round < 6; round++) {
        int k = round % KINDS;
        int consumers = load_consumers(k);
        tally_reset();
        weft_chan_tx tx;
        weft_chan_rx rx;
        assert_int_equal(kinds[k].make(&tx, &rx, sizeof(uint64_t), load_caps[round % 4]), 0);
        fthread f[2];
        pthread_t t[2];
        for (int p = 0; p < 2; p++) {
            f[p] = (fthread){ .p = p };
            assert_int_equal(weft_chan_tx_clone(&tx, &f[p].tx), 0);
        }
        weft_chan_tx_drop(&tx);
        for (int c = 0; c < consumers; c++) {
            consumer co = { WEFT_FN_INIT(consumer, WEFT_F_SEND), .mode = c % 3 };
            if (c == consumers - 1)
                co.rx = rx;
            else
                assert_int_equal(weft_chan_rx_clone(&rx, &co.rx), 0);
            assert_int_equal(weft_spawn(g_rt, &co.base, sizeof co, &j[c]), 0);
        }
        for (int p = 0; p < 2; p++)
            assert_int_equal(pthread_create(&t[p], NULL, fproducer_main, &f[p]), 0);
        for (int p = 0; p < 2; p++) {
            assert_int_equal(pthread_join(t[p], NULL), 0);
            assert_int_equal(f[p].rc, 0);
        }
        for (int c = 0; c < consumers; c++) {
            int out = -1;
            assert_int_equal(join_blocking(g_rt, &j[c], &out, sizeof out), 0);
        }
        assert_true(tally_exact(2));
    }
}

static weft_chan_tx g_task_tx;
static weft_chan_rx g_task_rx;

static void blocking_in_task(void *arg, void *out)
{
    (void)arg;
    uint64_t v = 1, buf[2];
    int *o = out;
    o[0] = weft_chan_send_blocking(&g_task_tx, &v);
    o[1] = weft_chan_recv_blocking(&g_task_rx, &v);
    o[2] = (int)weft_chan_recv_many_blocking(&g_task_rx, buf, 2);
}

static void test_blocking_forms_on_a_worker_are_edeadlk(void **state)
{
    (void)state;
    assert_int_equal(weft_mpsc_new(&g_task_tx, &g_task_rx, sizeof(uint64_t), 2), 0);
    send_ok(&g_task_tx, 5);
    int out[3] = { 0, 0, 0 };
    int before = misuse_count();
    assert_int_equal(RUN_FN_BLOCKING(g_rt, blocking_in_task, out, sizeof out), 0);
    assert_int_equal(out[0], -EDEADLK);
    assert_int_equal(out[1], -EDEADLK);
    assert_int_equal(out[2], -EDEADLK);
    assert_misuse_since(before, 3, "weft_chan_recv_many_blocking");
    /* Nothing sent, nothing taken. */
    assert_int_equal(weft_chan_len(&g_task_rx), 1);
    assert_int_equal(recv_ok(&g_task_rx), 5);
    weft_chan_tx_drop(&g_task_tx);
    weft_chan_rx_drop(&g_task_rx);
}

/* ---- cancel sweeps --------------------------------------------------------------------------- */

#define SWEEP_SEEDS 8
#define SWEEP_CHAOS 0.3

/* Ids in the sweeps: PREFILL is in the channel from the start, MINE is
 * the swept send's item, OTHER the environment's; a producer's are 1..3. */
enum { ID_PREFILL = 100, ID_MINE = 1, ID_OTHER = 200 };

/* What the environment and the check received, by id. */
typedef struct sweep_tally {
    int count[256];
    int bad;
} sweep_tally;

static void st_mark(sweep_tally *t, uint64_t id)
{
    if (id < 256)
        t->count[id]++;
    else
        t->bad++;
}

/* The send sweep: capacity 1, full at the start (PREFILL); the swept send
 * of MINE; an OTHER send queued behind it; a drainer that receives until
 * it has seen OTHER. The check drains the rest. */
typedef struct send_case {
    int k;
    weft_chan_tx tx;   /* the swept send's */
    weft_chan_rx rx;   /* the drainer's, then the check's */
    weft_chan_send s;
    uint64_t mine;
    int out;
    sweep_tally t;
    every_other eo;
    bool use_eo;
} send_case;

typedef struct other_sender {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send s;
    uint64_t item;
    int rc;
} other_sender;

WEFT_ASYNC_FN(other_sender, int)
{
    WEFT_FN_BEGIN;
    self->item = ID_OTHER;
    weft_chan_send_init(&self->s, &self->tx, &self->item);
    WEFT_FN_AWAIT(&self->s, &self->rc);
    weft_chan_tx_drop(&self->tx);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

typedef struct drainer {
    weft_future base;
    weft_co co;
    send_case *sc;
    weft_chan_recv r;
    uint64_t v;
    int rc, y;
} drainer;

WEFT_ASYNC_FN(drainer, int)
{
    WEFT_FN_BEGIN;
    for (self->y = 0; self->y < 2; self->y++)
        WEFT_FN_YIELD; /* let the sends queue first */
    do {
        weft_chan_recv_init(&self->r, &self->sc->rx, &self->v);
        WEFT_FN_AWAIT(&self->r, &self->rc);
        if (self->rc != 0)
            WEFT_FN_RETURN(self->rc);
        st_mark(&self->sc->t, self->v);
        WEFT_FN_YIELD;
    } while (self->v != ID_OTHER);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static int send_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    send_case *sc = ctx;
    memset(&sc->t, 0, sizeof sc->t);
    if (kinds[sc->k].make(&sc->tx, &sc->rx, sizeof(uint64_t), 1) != 0)
        return -ENOMEM;
    uint64_t pre = ID_PREFILL;
    if (weft_chan_try_send(&sc->tx, &pre) != 0)
        return -EINVAL;
    other_sender os = { WEFT_FN_INIT(other_sender, WEFT_F_SEND) };
    if (weft_chan_tx_clone(&sc->tx, &os.tx) != 0)
        return -EINVAL;
    int err = weft_spawn(rt, &os.base, sizeof os, NULL);
    if (!err)
        err = WEFT_SPAWN(rt, NULL, &(drainer){ WEFT_FN_INIT(drainer, WEFT_F_SEND), .sc = sc });
    sc->mine = ID_MINE;
    sc->out = 1;
    weft_chan_send_init(&sc->s, &sc->tx, &sc->mine);
    *fut = &sc->s.base;
    if (sc->use_eo) {
        every_other_init(&sc->eo, &sc->s.base);
        *fut = &sc->eo.base;
    }
    *out = &sc->out;
    return err;
}

/* Drain what is left into the tally (the channel is still open: the
 * swept send's sender is alive until teardown). */
static void st_drain(sweep_tally *t, weft_chan_rx *rx)
{
    uint64_t v;
    while (weft_chan_try_recv(rx, &v) == 0)
        st_mark(t, v);
}

static const char *send_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    send_case *sc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("%s k=%u: %u waker(s) held, %u wake(s) after the drop",
                         kinds[sc->k].name, run->k, run->wakers_after_drop,
                         run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (queued(&sc->tx.ch_->txq))
        return sweep_say("%s k=%u: a send left queued", kinds[sc->k].name, run->k);
    st_drain(&sc->t, &sc->rx);
    bool sent = run->completed && sc->out == 0;
    if (run->completed && sc->out != 0)
        return sweep_say("completed with %d", sc->out);
    if (!run->completed && sc->out != 1)
        return "an output was written by a send dropped before it finished";
    if (sc->t.bad || sc->t.count[ID_PREFILL] != 1 || sc->t.count[ID_OTHER] != 1 ||
        sc->t.count[ID_MINE] != (sent ? 1 : 0))
        return sweep_say("%s k=%u (%s): received prefill %d, other %d, mine %d (bad %d)",
                         kinds[sc->k].name, run->k, sent ? "sent" : "dropped",
                         sc->t.count[ID_PREFILL], sc->t.count[ID_OTHER],
                         sc->t.count[ID_MINE], sc->t.bad);
    return NULL;
}

static void send_teardown(void *ctx)
{
    send_case *sc = ctx;
    weft_chan_tx_drop(&sc->tx);
    weft_chan_rx_drop(&sc->rx);
}

static void sweep_send_kind(int k, bool eo)
{
    static send_case sc;
    memset(&sc, 0, sizeof sc);
    sc.k = k;
    sc.use_eo = eo;
    weft_sweep_case c = { send_build, send_check, send_teardown, &sc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    if (k != 1)
        assert_true(res.polls >= 2);
    o = sweep_chaos_options(1, SWEEP_SEEDS, SWEEP_CHAOS);
    sweep_pass(&c, &o);
}

static void test_cancel_sweep_chan_send(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++)
        sweep_send_kind(k, false);
    assert_int_equal(misuse_count(), 0);
}

static void test_cancel_sweep_chan_send_woken_but_unseen_hands_on(void **state)
{
    (void)state;
    sweep_send_kind(0, true);
    sweep_send_kind(2, true);
    assert_int_equal(misuse_count(), 0);
}

/* The receive sweeps: an empty channel; a producer that sends 1, 2, 3
 * with yields and drops its sender (capacity 4: it never waits); for
 * mpmc, a second receiver task that receives until -EPIPE. The swept
 * future (recv, recv_many of 2, or the stream's next) receives; the
 * check drains the rest. Every id once, by someone. */
enum { SW_RECV, SW_RECV_MANY, SW_NEXT };

typedef struct recv_case {
    int k, what;
    weft_chan_rx rx; /* the swept future's */
    weft_chan_recv r;
    weft_chan_recv_many m;
    weft_stream_next nx;
    uint64_t buf[2];
    union {
        int i;
        size_t n;
    } out;
    sweep_tally t;
    every_other eo;
    bool use_eo;
} recv_case;

typedef struct feeder {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send s;
    uint64_t item;
    int rc;
} feeder;

WEFT_ASYNC_FN(feeder, int)
{
    WEFT_FN_BEGIN;
    WEFT_FN_YIELD;
    for (self->item = 1; self->item <= 3; self->item++) {
        weft_chan_send_init(&self->s, &self->tx, &self->item);
        WEFT_FN_AWAIT(&self->s, &self->rc);
        if (self->rc != 0)
            break;
        WEFT_FN_YIELD;
    }
    weft_chan_tx_drop(&self->tx);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

typedef struct rival {
    weft_future base;
    weft_co co;
    weft_chan_rx rx;
    sweep_tally *t;
    weft_chan_recv r;
    uint64_t v;
    int rc;
} rival;

WEFT_ASYNC_FN(rival, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_chan_recv_init(&self->r, &self->rx, &self->v);
        WEFT_FN_AWAIT(&self->r, &self->rc);
        if (self->rc != 0)
            break;
        st_mark(self->t, self->v);
    }
    weft_chan_rx_drop(&self->rx);
    WEFT_FN_RETURN(self->rc == -EPIPE ? 0 : self->rc);
    WEFT_FN_END;
}

static int recv_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    recv_case *rc = ctx;
    memset(&rc->t, 0, sizeof rc->t);
    weft_chan_tx tx;
    if (kinds[rc->k].make(&tx, &rc->rx, sizeof(uint64_t), 4) != 0)
        return -ENOMEM;
    feeder fd = { WEFT_FN_INIT(feeder, WEFT_F_SEND), .tx = tx };
    int err = weft_spawn(rt, &fd.base, sizeof fd, NULL);
    if (!err && rc->k == 2) {
        rival rv = { WEFT_FN_INIT(rival, WEFT_F_SEND), .t = &rc->t };
        if (weft_chan_rx_clone(&rc->rx, &rv.rx) != 0)
            return -EINVAL;
        err = weft_spawn(rt, &rv.base, sizeof rv, NULL);
    }
    rc->buf[0] = rc->buf[1] = 0;
    memset(&rc->out, 0xff, sizeof rc->out);
    switch (rc->what) {
    case SW_RECV:
        weft_chan_recv_init(&rc->r, &rc->rx, rc->buf);
        *fut = &rc->r.base;
        break;
    case SW_RECV_MANY:
        weft_chan_recv_many_init(&rc->m, &rc->rx, rc->buf, 2);
        *fut = &rc->m.base;
        break;
    default:
        weft_stream_next_init(&rc->nx, &rc->rx.base, rc->buf);
        *fut = &rc->nx.base;
    }
    if (rc->use_eo) {
        every_other_init(&rc->eo, *fut);
        *fut = &rc->eo.base;
    }
    *out = &rc->out;
    return err;
}

static const char *what_name(int what)
{
    return what == SW_RECV ? "recv" : what == SW_RECV_MANY ? "recv_many" : "stream next";
}

static const char *recv_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    recv_case *rc = ctx;
    const char *name = kinds[rc->k].name;
    /* The mpsc receiver's registration stays in the channel until the
     * next send's wake or the receiver's drop (one, bounded); a stream's
     * next cannot take back an mpmc receiver's wait (no drop hook). */
    bool must_unregister = rc->k == 2 && rc->what != SW_NEXT;
    if (must_unregister && (run->wakers_after_drop || run->wakes_after_drop))
        return sweep_say("%s %s k=%u: %u waker(s) held, %u wake(s) after the drop", name,
                         what_name(rc->what), run->k, run->wakers_after_drop,
                         run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (must_unregister && queued(&rc->rx.ch_->rxq))
        return sweep_say("%s %s k=%u: a receiver left queued", name, what_name(rc->what),
                         run->k);
    size_t mine = 0;
    if (run->completed) {
        if (rc->what == SW_RECV)
            mine = rc->out.i == 0 ? 1 : 0;
        else if (rc->what == SW_RECV_MANY)
            mine = rc->out.n;
        else
            mine = rc->out.i == 1 ? 1 : 0;
        for (size_t i = 0; i < mine; i++)
            st_mark(&rc->t, rc->buf[i]);
    } else if (rc->buf[0] != 0) {
        return "a receive dropped before it finished wrote an item";
    }
    uint64_t v;
    int r;
    while ((r = weft_chan_try_recv(&rc->rx, &v)) == 0)
        st_mark(&rc->t, v);
    if (r != -EPIPE)
        return sweep_say("drain ended with %d, not -EPIPE", r);
    for (int id = 1; id <= 3; id++)
        if (rc->t.count[id] != 1)
            return sweep_say("%s %s k=%u (%s): id %d received %d time(s)", name,
                             what_name(rc->what), run->k,
                             run->completed ? "completed" : "dropped", id, rc->t.count[id]);
    if (rc->t.bad)
        return "an unknown id was received";
    return NULL;
}

static void recv_teardown(void *ctx)
{
    weft_chan_rx_drop(&((recv_case *)ctx)->rx);
}

static void sweep_recv(int k, int what, bool eo)
{
    static recv_case rc;
    memset(&rc, 0, sizeof rc);
    rc.k = k;
    rc.what = what;
    rc.use_eo = eo;
    weft_sweep_case c = { recv_build, recv_check, recv_teardown, &rc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2);
    o = sweep_chaos_options(1, SWEEP_SEEDS, SWEEP_CHAOS);
    sweep_pass(&c, &o);
}

static void test_cancel_sweep_chan_recv(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++)
        sweep_recv(k, SW_RECV, false);
    assert_int_equal(misuse_count(), 0);
}

static void test_cancel_sweep_chan_recv_many(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++)
        sweep_recv(k, SW_RECV_MANY, false);
    assert_int_equal(misuse_count(), 0);
}

static void test_cancel_sweep_stream_next_on_a_receiver(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++)
        sweep_recv(k, SW_NEXT, false);
    assert_int_equal(misuse_count(), 0);
}

static void test_cancel_sweep_chan_recv_woken_but_unseen_hands_on(void **state)
{
    (void)state;
    for (int k = 0; k < KINDS; k++) {
        sweep_recv(k, SW_RECV, true);
        sweep_recv(k, SW_RECV_MANY, true);
    }
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
    alarm_watchdog_install("watchdog: a channel test hung (a lost wake?)\n");
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_order_len_and_capacity),
        T(test_full_send_is_woken_exactly_when_a_receive_frees_room),
        T(test_empty_recv_is_woken_by_a_send),
        T(test_recv_many_takes_a_run_and_frees_room_for_waiting_senders),
        T(test_capacity_one),
        T(test_item_size_zero_and_a_large_item),
        T(test_a_receive_behind_a_claimed_unpublished_send_looks_again),
        T(test_a_close_behind_a_claimed_unpublished_send_still_delivers_it),
        T(test_mpmc_a_receive_that_owes_a_wake_serves_for_the_slots_freed_meanwhile),
        T(test_last_sender_dropped_receivers_drain_then_epipe),
        T(test_a_pending_receive_is_woken_by_the_last_sender_drop),
        T(test_last_receiver_dropped_sends_fail_with_epipe),
        T(test_rx_close_fails_sends_and_leaves_the_buffer_to_drain),
        T(test_bad_arguments_and_handles_used_after_drop),
        T(test_unbounded_keeps_order_across_many_blocks),
        T(test_unbounded_blocks_pass_between_threads),
        T(test_unbounded_enomem_at_a_block_boundary_loses_nothing),
        T(test_creation_under_enomem_at_each_allocation),
        T(test_mpmc_receivers_share_the_items),
        T(test_mpmc_a_woken_receiver_dropped_before_it_looked_hands_the_wake_on),
        T(test_a_woken_send_dropped_before_it_looked_hands_the_wake_on),
        T(test_sink_on_a_full_channel),
        T(test_sink_drop_with_an_item_kept),
        T(test_eventfd_by_hand),
        T(test_eventfd_from_a_foreign_thread),
        RT(test_exactly_once_on_two_workers),
        T(test_exactly_once_on_the_sim_with_chaos),
        T(test_exactly_once_between_foreign_threads),
        RT(test_foreign_producers_feed_task_consumers),
        RT(test_blocking_forms_on_a_worker_are_edeadlk),
        T(test_cancel_sweep_chan_send),
        T(test_cancel_sweep_chan_send_woken_but_unseen_hands_on),
        T(test_cancel_sweep_chan_recv),
        T(test_cancel_sweep_chan_recv_many),
        T(test_cancel_sweep_stream_next_on_a_receiver),
        T(test_cancel_sweep_chan_recv_woken_but_unseen_hands_on),
    };
#undef T
#undef RT
    alarm(ALARM_WATCHDOG_S * 8);
    /* CHAN_TEST_FILTER=pattern: run only the tests it names (repeating
     * one under TSan). */
    if (getenv("CHAN_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CHAN_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
