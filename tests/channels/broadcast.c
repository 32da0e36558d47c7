/* Tests for channels/broadcast.c: weft_broadcast in its two modes. By
 * hand first (every receiver gets every item, subscribe, lag counts,
 * back-pressure and who wakes a waiting sender, drops, close, try_*
 * states, bad arguments, out of memory), then many receivers on two
 * workers and on the sim under chaos over seeds, the blocking forms from
 * foreign threads, and the cancel sweeps of send (WAIT mode) and recv. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "sync/waitq.h"
#include "support/alarm_watchdog.h"
#include "support/counting_waker.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

#define LAG WEFT_BROADCAST_LAG
#define WAIT WEFT_BROADCAST_WAIT

/* ---- by hand ------------------------------------------------------------------------ */

static int send_u64(weft_broadcast_tx *tx, uint64_t v)
{
    return weft_broadcast_try_send(tx, &v);
}

/* try_recv that must give an item: returns it. */
static uint64_t recv_u64(weft_broadcast_rx *rx)
{
    uint64_t v = UINT64_MAX;
    assert_int_equal(weft_broadcast_try_recv(rx, &v), 0);
    return v;
}

static weft_poll poll_send(weft_broadcast_send *f, counting_waker *c, int *out)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(&f->base, &cx, out);
}

static weft_poll poll_recv(weft_broadcast_recv *f, counting_waker *c, int64_t *out)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(&f->base, &cx, out);
}

static void test_every_receiver_gets_every_item_in_order(void **state)
{
    (void)state;
    for (int mode = LAG; mode <= WAIT; mode++) {
        weft_broadcast_tx tx;
        weft_broadcast_rx rx[3];
        assert_int_equal(weft_broadcast_new(&tx, &rx[0], sizeof(uint64_t), 8, mode), 0);
        for (int i = 1; i < 3; i++)
            assert_int_equal(weft_broadcast_subscribe(&tx, &rx[i]), 0);
        for (uint64_t round = 0; round < 5; round++) { /* wraps the ring */
            for (uint64_t v = 0; v < 8; v++)
                assert_int_equal(send_u64(&tx, round * 8 + v), 0);
            for (int i = 0; i < 3; i++) {
                for (uint64_t v = 0; v < 8; v++)
                    assert_int_equal(recv_u64(&rx[i]), round * 8 + v);
                uint64_t x;
                assert_int_equal(weft_broadcast_try_recv(&rx[i], &x), -EAGAIN);
            }
        }
        weft_broadcast_tx_drop(&tx);
        for (int i = 0; i < 3; i++) {
            uint64_t x;
            assert_int_equal(weft_broadcast_try_recv(&rx[i], &x), -EPIPE);
            assert_int_equal(weft_broadcast_rx_missed(&rx[i]), 0);
            weft_broadcast_rx_drop(&rx[i]);
        }
    }
    assert_int_equal(misuse_count(), 0);
}

static void test_subscribe_sees_only_items_sent_after_it(void **state)
{
    (void)state;
    for (int mode = LAG; mode <= WAIT; mode++) {
        weft_broadcast_tx tx;
        weft_broadcast_rx a, late;
        assert_int_equal(weft_broadcast_new(&tx, &a, sizeof(uint64_t), 8, mode), 0);
        for (uint64_t v = 0; v < 3; v++)
            assert_int_equal(send_u64(&tx, v), 0);
        assert_int_equal(weft_broadcast_subscribe(&tx, &late), 0);
        uint64_t x;
        assert_int_equal(weft_broadcast_try_recv(&late, &x), -EAGAIN);
        for (uint64_t v = 3; v < 5; v++)
            assert_int_equal(send_u64(&tx, v), 0);
        assert_int_equal(recv_u64(&late), 3);
        assert_int_equal(recv_u64(&late), 4);
        assert_int_equal(weft_broadcast_try_recv(&late, &x), -EAGAIN);
        for (uint64_t v = 0; v < 5; v++)
            assert_int_equal(recv_u64(&a), v);
        weft_broadcast_rx_drop(&late);
        weft_broadcast_rx_drop(&a);
        weft_broadcast_tx_drop(&tx);
    }
}

static void test_lag_is_reported_once_with_the_exact_count(void **state)
{
    (void)state;
    weft_broadcast_tx tx;
    weft_broadcast_rx rx, stream;
    assert_int_equal(weft_broadcast_new(&tx, &rx, sizeof(uint64_t), 4, LAG), 0);
    assert_int_equal(weft_broadcast_subscribe(&tx, &stream), 0);
    for (uint64_t v = 0; v < 10; v++) /* sends never wait in LAG mode */
        assert_int_equal(send_u64(&tx, v), 0);
    uint64_t x = 12345;
    assert_int_equal(weft_broadcast_try_recv(&rx, &x), 6); /* 0..5 were overwritten */
    assert_int_equal(x, 12345);                             /* nothing written */
    for (uint64_t v = 6; v < 10; v++)
        assert_int_equal(recv_u64(&rx), v);
    assert_int_equal(weft_broadcast_try_recv(&rx, &x), -EAGAIN);
    /* Lagging by a whole ring exactly loses nothing: still retained. */
    for (uint64_t v = 10; v < 14; v++)
        assert_int_equal(send_u64(&tx, v), 0);
    for (uint64_t v = 10; v < 14; v++)
        assert_int_equal(recv_u64(&rx), v);
    /* By one more: told 1. */
    for (uint64_t v = 14; v < 19; v++)
        assert_int_equal(send_u64(&tx, v), 0);
    assert_int_equal(weft_broadcast_try_recv(&rx, &x), 1);
    assert_int_equal(recv_u64(&rx), 15);
    /* The stream form skips the notice and counts it. */
    counting_waker c;
    cw_init(&c);
    weft_waker w = cw_waker(&c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    assert_int_equal(weft_stream_poll_next(&stream.base, &cx, &x), WEFT_NEXT_ITEM);
    assert_int_equal(x, 15);
    assert_int_equal(weft_broadcast_rx_missed(&stream), 15);
    uint64_t many[8];
    size_t n = 0;
    assert_int_equal(weft_stream_poll_next_many(&stream.base, &cx, many, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
    assert_int_equal(many[0], 16);
    assert_int_equal(many[2], 18);
    assert_int_equal(weft_stream_poll_next_many(&stream.base, &cx, many, 8, &n), WEFT_NEXT_PENDING);
    weft_broadcast_tx_drop(&tx);
    assert_int_equal(cw_woken(&c), 1); /* the close wakes the parked stream */
    assert_int_equal(weft_stream_poll_next_many(&stream.base, &cx, many, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_stream_drop(&stream.base);
    weft_broadcast_rx_drop(&rx);
}

static void test_wait_mode_never_lags_and_try_send_waits_for_the_slowest(void **state)
{
    (void)state;
    weft_broadcast_tx tx;
    weft_broadcast_rx fast, slow;
    assert_int_equal(weft_broadcast_new(&tx, &fast, sizeof(uint64_t), 3, WAIT), 0); /* 4 slots */
    assert_int_equal(weft_broadcast_subscribe(&tx, &slow), 0);
    for (uint64_t v = 0; v < 4; v++)
        assert_int_equal(send_u64(&tx, v), 0);
    assert_int_equal(send_u64(&tx, 4), -EAGAIN);
    for (uint64_t v = 0; v < 4; v++)
        assert_int_equal(recv_u64(&fast), v);
    assert_int_equal(send_u64(&tx, 4), -EAGAIN); /* the slow one holds the ring */
    assert_int_equal(recv_u64(&slow), 0);
    assert_int_equal(send_u64(&tx, 4), 0);
    assert_int_equal(send_u64(&tx, 5), -EAGAIN);
    for (uint64_t v = 1; v < 5; v++)
        assert_int_equal(recv_u64(&slow), v);
    assert_int_equal(recv_u64(&fast), 4);
    assert_int_equal(weft_broadcast_rx_missed(&slow), 0);
    weft_broadcast_rx_drop(&fast);
    weft_broadcast_rx_drop(&slow);
    weft_broadcast_tx_drop(&tx);
}

static void test_a_waiting_send_is_woken_by_the_slowest_receiver_only(void **state)
{
    (void)state;
    weft_broadcast_tx tx;
    weft_broadcast_rx fast, slow;
    assert_int_equal(weft_broadcast_new(&tx, &fast, sizeof(uint64_t), 2, WAIT), 0);
    assert_int_equal(weft_broadcast_subscribe(&tx, &slow), 0);
    assert_int_equal(send_u64(&tx, 0), 0);
    assert_int_equal(send_u64(&tx, 1), 0);
    assert_int_equal(recv_u64(&fast), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t item = 2;
    int out = 99;
    weft_broadcast_send s;
    weft_broadcast_send_init(&s, &tx, &item);
    assert_int_equal(poll_send(&s, &c, &out), WEFT_PENDING);
    assert_int_equal(recv_u64(&fast), 1); /* not the slowest: no wake */
    assert_int_equal(cw_woken(&c), 0);
    assert_int_equal(poll_send(&s, &c, &out), WEFT_PENDING); /* spurious poll */
    assert_int_equal(out, 99);
    assert_int_equal(recv_u64(&slow), 0);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(poll_send(&s, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    weft_future_drop(&s.base);
    assert_int_equal(recv_u64(&fast), 2);
    assert_int_equal(recv_u64(&slow), 1);
    assert_int_equal(recv_u64(&slow), 2);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_broadcast_rx_drop(&fast);
    weft_broadcast_rx_drop(&slow);
    weft_broadcast_tx_drop(&tx);
}

static void test_dropping_the_slowest_receiver_releases_a_waiting_sender(void **state)
{
    (void)state;
    weft_broadcast_tx tx;
    weft_broadcast_rx fast, slow;
    assert_int_equal(weft_broadcast_new(&tx, &fast, sizeof(uint64_t), 1, WAIT), 0);
    assert_int_equal(weft_broadcast_subscribe(&tx, &slow), 0);
    assert_int_equal(send_u64(&tx, 0), 0);
    assert_int_equal(recv_u64(&fast), 0);
    counting_waker c;
    cw_init(&c);
    uint64_t item = 1;
    int out = 99;
    weft_broadcast_send s;
    weft_broadcast_send_init(&s, &tx, &item);
    assert_int_equal(poll_send(&s, &c, &out), WEFT_PENDING);
    weft_broadcast_rx_drop(&slow);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(poll_send(&s, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    weft_future_drop(&s.base);
    assert_int_equal(recv_u64(&fast), 1);
    /* The last receiver gone: a waiting send completes with -EPIPE and
     * try_send fails; nothing was sent. */
    assert_int_equal(send_u64(&tx, 2), 0);
    item = 3;
    weft_broadcast_send_init(&s, &tx, &item);
    assert_int_equal(poll_send(&s, &c, &out), WEFT_PENDING);
    weft_broadcast_rx_drop(&fast);
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(poll_send(&s, &c, &out), WEFT_READY);
    assert_int_equal(out, -EPIPE);
    weft_future_drop(&s.base);
    assert_int_equal(send_u64(&tx, 4), -EPIPE);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_broadcast_tx_drop(&tx);
}

static void test_close_lets_receivers_drain_then_epipe(void **state)
{
    (void)state;
    for (int mode = LAG; mode <= WAIT; mode++) {
        weft_broadcast_tx tx, tx2;
        weft_broadcast_rx rx;
        assert_int_equal(weft_broadcast_new(&tx, &rx, sizeof(uint64_t), 4, mode), 0);
        assert_int_equal(weft_broadcast_tx_clone(&tx, &tx2), 0);
        counting_waker c;
        cw_init(&c);
        uint64_t x = 0;
        int64_t out = 99;
        weft_broadcast_recv r;
        weft_broadcast_recv_init(&r, &rx, &x);
        assert_int_equal(poll_recv(&r, &c, &out), WEFT_PENDING);
        assert_int_equal(send_u64(&tx2, 7), 0); /* wakes the parked receive */
        assert_int_equal(cw_woken(&c), 1);
        assert_int_equal(poll_recv(&r, &c, &out), WEFT_READY);
        assert_int_equal(out, 0);
        assert_int_equal(x, 7);
        weft_future_drop(&r.base);
        assert_int_equal(send_u64(&tx, 8), 0);
        weft_broadcast_tx_drop(&tx);
        assert_int_equal(recv_u64(&rx), 8); /* one sender left: still open */
        weft_broadcast_recv_init(&r, &rx, &x);
        assert_int_equal(poll_recv(&r, &c, &out), WEFT_PENDING);
        assert_int_equal(send_u64(&tx2, 9), 0);
        weft_broadcast_tx_drop(&tx2);
        assert_int_equal(poll_recv(&r, &c, &out), WEFT_READY);
        assert_int_equal(x, 9);
        weft_future_drop(&r.base);
        weft_broadcast_recv_init(&r, &rx, &x);
        assert_int_equal(poll_recv(&r, &c, &out), WEFT_READY);
        assert_int_equal(out, -EPIPE);
        weft_future_drop(&r.base);
        assert_int_equal(weft_broadcast_try_recv(&rx, &x), -EPIPE);
        /* A receive parked when the last sender goes is woken with -EPIPE. */
        weft_broadcast_rx_drop(&rx);
        assert_int_equal(cw_outstanding(&c), 0);
    }
    weft_broadcast_tx tx;
    weft_broadcast_rx rx;
    assert_int_equal(weft_broadcast_new(&tx, &rx, 0, 1, WAIT), 0); /* items of no bytes */
    counting_waker c;
    cw_init(&c);
    int64_t out = 99;
    weft_broadcast_recv r;
    weft_broadcast_recv_init(&r, &rx, NULL);
    assert_int_equal(poll_recv(&r, &c, &out), WEFT_PENDING);
    weft_broadcast_tx_drop(&tx);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(poll_recv(&r, &c, &out), WEFT_READY);
    assert_int_equal(out, -EPIPE);
    weft_future_drop(&r.base);
    weft_broadcast_rx_drop(&rx);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_try_states_and_a_dropped_pending_receive_leaves_no_waker(void **state)
{
    (void)state;
    weft_broadcast_tx tx;
    assert_int_equal(weft_broadcast_new(&tx, NULL, sizeof(uint64_t), 2, WAIT), 0);
    assert_int_equal(send_u64(&tx, 1), -EPIPE); /* nobody subscribed */
    weft_broadcast_rx rx;
    assert_int_equal(weft_broadcast_subscribe(&tx, &rx), 0);
    uint64_t x;
    assert_int_equal(weft_broadcast_try_recv(&rx, &x), -EAGAIN);
    counting_waker c;
    cw_init(&c);
    int64_t out = 99;
    weft_broadcast_recv r;
    weft_broadcast_recv_init(&r, &rx, &x);
    assert_int_equal(poll_recv(&r, &c, &out), WEFT_PENDING);
    assert_int_equal(cw_outstanding(&c), 1);
    weft_future_drop(&r.base); /* takes its wait out of the queue */
    assert_int_equal(cw_outstanding(&c), 0);
    assert_int_equal(send_u64(&tx, 1), 0);
    assert_int_equal(cw_woken(&c), 0);
    assert_int_equal(send_u64(&tx, 2), 0);
    assert_int_equal(send_u64(&tx, 3), -EAGAIN);
    assert_int_equal(recv_u64(&rx), 1);
    assert_int_equal(send_u64(&tx, 3), 0);
    /* A send of a LAG channel is READY at its first poll. */
    weft_broadcast_tx ltx;
    weft_broadcast_rx lrx;
    assert_int_equal(weft_broadcast_new(&ltx, &lrx, sizeof(uint64_t), 1, LAG), 0);
    int sout = 99;
    weft_broadcast_send s;
    for (uint64_t v = 0; v < 3; v++) {
        weft_broadcast_send_init(&s, &ltx, &v);
        assert_int_equal(poll_send(&s, &c, &sout), WEFT_READY);
        assert_int_equal(sout, 0);
        weft_future_drop(&s.base);
    }
    assert_int_equal(weft_broadcast_try_recv(&lrx, &x), 2);
    assert_int_equal(recv_u64(&lrx), 2);
    weft_broadcast_rx_drop(&lrx);
    weft_broadcast_tx_drop(&ltx);
    weft_broadcast_rx_drop(&rx);
    weft_broadcast_tx_drop(&tx);
    assert_int_equal(misuse_count(), 0);
}

static void test_bad_arguments_are_einval(void **state)
{
    (void)state;
    weft_broadcast_tx tx;
    weft_broadcast_rx rx;
    int before = misuse_count();
    assert_int_equal(weft_broadcast_new(NULL, &rx, 8, 4, LAG), -EINVAL);
    assert_int_equal(weft_broadcast_new(&tx, &rx, 8, 0, LAG), -EINVAL);
    assert_int_equal(weft_broadcast_new(&tx, &rx, 8, WEFT_CHAN_CAPACITY_MAX + 1, WAIT), -EINVAL);
    assert_int_equal(weft_broadcast_new(&tx, &rx, WEFT_CHAN_ITEM_MAX + 1, 4, WAIT), -EINVAL);
    assert_int_equal(weft_broadcast_new(&tx, &rx, 8, 4, 7), -EINVAL);
    assert_misuse_since(before, 5, "weft_broadcast_new");
    assert_int_equal(weft_broadcast_new(&tx, &rx, 8, 4, WAIT), 0);
    before = misuse_count();
    assert_int_equal(weft_broadcast_subscribe(&tx, NULL), -EINVAL);
    assert_int_equal(weft_broadcast_tx_clone(&tx, NULL), -EINVAL);
    assert_int_equal(weft_broadcast_try_send(&tx, NULL), -EINVAL);
    assert_int_equal(weft_broadcast_try_recv(&rx, NULL), -EINVAL);
    assert_misuse_since(before, 4, "weft_broadcast_try_recv");
    /* A recv future given no item completes with -EINVAL. */
    counting_waker c;
    cw_init(&c);
    int64_t out = 0;
    weft_broadcast_recv r;
    before = misuse_count();
    weft_broadcast_recv_init(&r, &rx, NULL);
    assert_misuse_since(before, 1, "weft_broadcast_recv_init");
    assert_int_equal(poll_recv(&r, &c, &out), WEFT_READY);
    assert_int_equal(out, -EINVAL);
    weft_future_drop(&r.base);
    /* Dropped handles are refused. */
    weft_broadcast_rx_drop(&rx);
    weft_broadcast_tx_drop(&tx);
    before = misuse_count();
    uint64_t x = 0;
    assert_int_equal(weft_broadcast_try_send(&tx, &x), -EINVAL);
    assert_int_equal(weft_broadcast_try_recv(&rx, &x), -EINVAL);
    assert_int_equal(weft_broadcast_subscribe(&tx, &rx), -EINVAL);
    int sout = 0;
    weft_broadcast_send s;
    weft_broadcast_send_init(&s, &tx, &x);
    assert_int_equal(poll_send(&s, &c, &sout), WEFT_READY);
    assert_int_equal(sout, -EINVAL);
    weft_future_drop(&s.base);
    assert_int_equal(weft_broadcast_send_blocking(&tx, &x), -EINVAL);
    assert_int_equal(weft_broadcast_recv_blocking(&rx, &x), -EINVAL);
    weft_broadcast_rx_drop(&rx);
    weft_broadcast_tx_drop(&tx);
    assert_misuse_since(before, 8, "weft_broadcast_tx_drop");
}

/* ---- out of memory ----------------------------------------------------------------- */

static _Atomic long g_allocs_left; /* allocations that succeed; -1: all */

static void *failing_alloc(size_t size, void *ctx)
{
    /* Relaxed: set and read on the test thread. */
    long left = weft_atomic_load_relaxed(&g_allocs_left);
    if (left == 0)
        return NULL;
    if (left > 0)
        weft_atomic_store_relaxed(&g_allocs_left, left - 1);
    return count_alloc(size, ctx);
}

static void test_out_of_memory_makes_nothing_and_leaks_nothing(void **state)
{
    (void)state;
    weft_atomic_store_relaxed(&g_allocs_left, -1);
    weft_allocator a = { failing_alloc, count_free, NULL };
    assert_int_equal(weft_set_allocator(&a), 0);
    /* Relaxed: counters read on this thread. */
    long live = weft_atomic_load_relaxed(&g_live_allocs);
    for (int mode = LAG; mode <= WAIT; mode++) {
        int fails = 0;
        for (long k = 0;; k++) {
            weft_atomic_store_relaxed(&g_allocs_left, k);
            weft_broadcast_tx tx;
            weft_broadcast_rx rx;
            int rc = weft_broadcast_new(&tx, &rx, sizeof(uint64_t), 16, mode);
            if (rc == -ENOMEM) {
                fails++;
                assert_int_equal(weft_atomic_load_relaxed(&g_live_allocs), live);
                continue;
            }
            assert_int_equal(rc, 0);
            /* A subscription out of memory makes no receiver. */
            weft_atomic_store_relaxed(&g_allocs_left, 0);
            weft_broadcast_rx rx2;
            assert_int_equal(weft_broadcast_subscribe(&tx, &rx2),
                             mode == WAIT ? -ENOMEM : 0);
            weft_atomic_store_relaxed(&g_allocs_left, -1);
            assert_int_equal(send_u64(&tx, 5), 0); /* rx2 holds nothing back */
            assert_int_equal(recv_u64(&rx), 5);
            if (mode == LAG)
                weft_broadcast_rx_drop(&rx2);
            weft_broadcast_rx_drop(&rx);
            weft_broadcast_tx_drop(&tx);
            break;
        }
        assert_int_equal(fails, mode == WAIT ? 3 : 2); /* struct, ring, and cursor */
        assert_int_equal(weft_atomic_load_relaxed(&g_live_allocs), live);
    }
    weft_atomic_store_relaxed(&g_allocs_left, -1);
}

/* ---- many receivers on runtimes ---------------------------------------------------------- */

/* What a receiver task saw. */
typedef struct rx_seen {
    uint64_t first, next, count, missed, sum;
    int bad; /* an item out of order, or an unexpected status */
} rx_seen;

/* Receives until -EPIPE, with recv futures (or the stream's
 * poll_next_many when `many`), checking order and counting lag. */
typedef struct rx_task {
    weft_future base;
    weft_co co;
    weft_broadcast_rx *rx;
    rx_seen *seen;
    weft_broadcast_recv r;
    uint64_t item;
    int64_t rc;
    bool started;
} rx_task;

WEFT_ASYNC_FN(rx_task, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_broadcast_recv_init(&self->r, self->rx, &self->item);
        WEFT_FN_AWAIT(&self->r, &self->rc);
        if (self->rc == -EPIPE)
            break;
        rx_seen *s = self->seen;
        if (self->rc > 0) {
            s->missed += (uint64_t)self->rc;
            s->next += (uint64_t)self->rc;
            continue;
        }
        if (self->rc != 0) {
            s->bad++;
            break;
        }
        if (!self->started) {
            self->started = true;
            s->first = s->next = self->item;
        }
        if (self->item != s->next)
            s->bad++;
        s->next = self->item + 1;
        s->count++;
        s->sum += self->item;
        if (self->item % 7 == 0)
            WEFT_FN_YIELD;
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* The stream form: runs of up to 5 items by poll_next_many until DONE;
 * lag notices are skipped by the stream and counted in its missed. */
typedef struct many_rx {
    weft_future base;
    weft_broadcast_rx *rx;
    rx_seen *seen;
    bool started;
} many_rx;

static weft_poll many_rx_poll(weft_future *f, weft_cx *cx, void *out)
{
    many_rx *m = (many_rx *)f;
    rx_seen *s = m->seen;
    (void)out;
    for (;;) {
        uint64_t buf[5];
        size_t n = 0;
        uint64_t missed_before = weft_broadcast_rx_missed(m->rx);
        weft_next st = weft_stream_poll_next_many(&m->rx->base, cx, buf, 5, &n);
        if (st == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (st == WEFT_NEXT_DONE)
            break;
        s->next += weft_broadcast_rx_missed(m->rx) - missed_before;
        for (size_t i = 0; i < n; i++) {
            if (!m->started) {
                m->started = true;
                s->first = s->next = buf[i];
            }
            if (buf[i] != s->next)
                s->bad++;
            s->next = buf[i] + 1;
            s->count++;
            s->sum += buf[i];
        }
    }
    s->missed = weft_broadcast_rx_missed(m->rx);
    return WEFT_READY;
}

static const weft_future_ops many_rx_ops = { .name = "many_rx", .poll = many_rx_poll };

/* Sends 0..n-1 with send futures, then drops its sender. */
typedef struct tx_task {
    weft_future base;
    weft_co co;
    weft_broadcast_tx *tx;
    weft_broadcast_send s;
    uint64_t i, n, item;
    int rc;
} tx_task;

WEFT_ASYNC_FN(tx_task, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        self->item = self->i;
        weft_broadcast_send_init(&self->s, self->tx, &self->item);
        WEFT_FN_AWAIT(&self->s, &self->rc);
        if (self->rc != 0)
            break;
        if (self->i % 13 == 0)
            WEFT_FN_YIELD;
    }
    weft_broadcast_tx_drop(self->tx);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

#define FAN_RX 4

/* One sender task and FAN_RX receiver tasks, plus a receiver subscribed
 * once the sender has started; each sees what it should. */
static void fanout_run(weft_rt *rt, int mode, size_t cap, uint64_t n)
{
    weft_broadcast_tx tx;
    static weft_broadcast_rx rx[FAN_RX + 1];
    static rx_seen seen[FAN_RX + 1];
    weft_join j[FAN_RX + 2];
    memset(seen, 0, sizeof seen);
    assert_int_equal(weft_broadcast_new(&tx, &rx[0], sizeof(uint64_t), cap, mode), 0);
    for (int i = 1; i < FAN_RX; i++)
        assert_int_equal(weft_broadcast_subscribe(&tx, &rx[i]), 0);
    /* The first receiver is read in the stream form, the others by recv. */
    assert_int_equal(WEFT_SPAWN(rt, &j[0], &(many_rx){ WEFT_FUTURE_INIT(&many_rx_ops, WEFT_F_SEND),
                                                      .rx = &rx[0], .seen = &seen[0] }),
                     0);
    for (int i = 1; i < FAN_RX; i++)
        assert_int_equal(WEFT_SPAWN(rt, &j[i], &(rx_task){ WEFT_FN_INIT(rx_task, WEFT_F_SEND),
                                                          .rx = &rx[i], .seen = &seen[i] }),
                         0);
    weft_broadcast_tx mine;
    assert_int_equal(weft_broadcast_tx_clone(&tx, &mine), 0);
    assert_int_equal(WEFT_SPAWN(rt, &j[FAN_RX], &(tx_task){ WEFT_FN_INIT(tx_task, WEFT_F_SEND),
                                                          .tx = &tx, .n = n }),
                     0);
    /* Subscribed mid-stream (on the multi-thread runtime; before anything
     * ran on the sim). */
    assert_int_equal(weft_broadcast_subscribe(&mine, &rx[FAN_RX]), 0);
    weft_broadcast_tx_drop(&mine);
    assert_int_equal(WEFT_SPAWN(rt, &j[FAN_RX + 1],
                                &(rx_task){ WEFT_FN_INIT(rx_task, WEFT_F_SEND),
                                            .rx = &rx[FAN_RX], .seen = &seen[FAN_RX] }),
                     0);
    int out = -1;
    assert_int_equal(join_blocking(rt, &j[FAN_RX], &out, sizeof out), 0);
    assert_int_equal(out, 0);
    for (int i = 0; i <= FAN_RX; i++) {
        int idx = i < FAN_RX ? i : FAN_RX + 1;
        assert_int_equal(join_blocking(rt, &j[idx], i == 0 ? NULL : &out, i == 0 ? 0 : sizeof out),
                         0);
        rx_seen *s = &seen[i];
        if (s->bad)
            print_error("receiver %d: %d out of order\n", i, s->bad);
        assert_int_equal(s->bad, 0);
        if (s->count)
            assert_int_equal(s->next, n); /* it saw the end */
        if (mode == WAIT) {
            assert_int_equal(s->missed, 0);
            if (i < FAN_RX) {
                assert_int_equal(s->count, n);
                assert_int_equal(s->sum, n * (n - 1) / 2);
            } else if (s->count) { /* a suffix: first..n-1 */
                assert_int_equal(s->count, n - s->first);
            }
        } else {
            /* Every position from its start is either received or missed. */
            if (i < FAN_RX)
                assert_int_equal(s->count + s->missed, n);
        }
        weft_broadcast_rx_drop(&rx[i]);
    }
}

static void test_every_receiver_gets_every_item_on_two_workers(void **state)
{
    (void)state;
    fanout_run(g_rt, WAIT, 16, 20000);
    fanout_run(g_rt, WAIT, 1, 3000);
    fanout_run(g_rt, LAG, 16, 20000);
    assert_int_equal(misuse_count(), 0);
}

static void test_fanout_on_the_sim_with_chaos_over_seeds(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    for (uint64_t seed = 1; seed <= 40; seed++) {
        weft_sim_options o = sim_options(seed);
        o.spurious_wake = 0.3;
        o.leaf_pending = 0.3;
        weft_rt *rt = sim_start(&o);
        fanout_run(rt, WAIT, 1 + seed % 8, 500);
        fanout_run(rt, LAG, 1 + seed % 8, 500);
        weft_rt_shutdown(rt);
    }
    assert_int_equal(misuse_count(), 0);
}

/* ---- blocking forms from foreign threads ----------------------------------------------------- */

#define BLOCK_N 20000u

typedef struct blocker {
    weft_broadcast_tx *tx;
    weft_broadcast_rx *rx;
    uint64_t sum, count;
    int64_t last;
} blocker;

static void *sender_main(void *arg)
{
    blocker *b = arg;
    for (uint64_t v = 0; v < BLOCK_N; v++)
        if ((b->last = weft_broadcast_send_blocking(b->tx, &v)) != 0)
            break;
    weft_broadcast_tx_drop(b->tx);
    return NULL;
}

static void *receiver_main(void *arg)
{
    blocker *b = arg;
    for (uint64_t expect = 0;; expect++) {
        uint64_t v;
        b->last = weft_broadcast_recv_blocking(b->rx, &v);
        if (b->last != 0 || v != expect)
            break;
        b->sum += v;
        b->count++;
    }
    return NULL;
}

static void test_blocking_forms_from_foreign_threads(void **state)
{
    (void)state;
    weft_broadcast_tx tx;
    weft_broadcast_rx rx[2];
    assert_int_equal(weft_broadcast_new(&tx, &rx[0], sizeof(uint64_t), 4, WAIT), 0);
    assert_int_equal(weft_broadcast_subscribe(&tx, &rx[1]), 0);
    blocker bs = { .tx = &tx }, br[2] = { { .rx = &rx[0] }, { .rx = &rx[1] } };
    pthread_t ts, tr[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&tr[i], NULL, receiver_main, &br[i]), 0);
    assert_int_equal(pthread_create(&ts, NULL, sender_main, &bs), 0);
    assert_int_equal(pthread_join(ts, NULL), 0);
    assert_int_equal(bs.last, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(tr[i], NULL), 0);
        assert_int_equal(br[i].last, -EPIPE);
        assert_int_equal(br[i].count, BLOCK_N);
        assert_int_equal(br[i].sum, (uint64_t)BLOCK_N * (BLOCK_N - 1) / 2);
        weft_broadcast_rx_drop(&rx[i]);
    }
    assert_int_equal(misuse_count(), 0);
}

/* LAG mode under a sender that never waits: receivers on other threads
 * race overwrites of the slots they copy. Each item is three words of the
 * same value, so a torn copy shows; values ascend, and every position is
 * received or counted missed. */
typedef struct wide {
    uint64_t w[3];
} wide;

#define TORN_N 200000u

typedef struct torn_rx {
    weft_broadcast_rx *rx;
    uint64_t count, missed, torn, disorder;
    int64_t last;
} torn_rx;

static void *torn_receiver_main(void *arg)
{
    torn_rx *t = arg;
    uint64_t next = 0;
    for (;;) {
        wide v;
        int64_t r = weft_broadcast_recv_blocking(t->rx, &v);
        if (r < 0) {
            t->last = r;
            break;
        }
        if (r > 0) {
            t->missed += (uint64_t)r;
            next += (uint64_t)r;
            continue;
        }
        if (v.w[0] != v.w[1] || v.w[1] != v.w[2])
            t->torn++;
        if (v.w[0] != next)
            t->disorder++;
        next = v.w[0] + 1;
        t->count++;
    }
    return NULL;
}

static void test_lag_mode_never_returns_a_torn_item_under_overwrites(void **state)
{
    (void)state;
    weft_broadcast_tx tx;
    weft_broadcast_rx rx[2];
    assert_int_equal(weft_broadcast_new(&tx, &rx[0], sizeof(wide), 8, LAG), 0);
    assert_int_equal(weft_broadcast_subscribe(&tx, &rx[1]), 0);
    torn_rx t[2] = { { .rx = &rx[0] }, { .rx = &rx[1] } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, torn_receiver_main, &t[i]), 0);
    for (uint64_t v = 0; v < TORN_N; v++) {
        wide w = { { v, v, v } };
        assert_int_equal(weft_broadcast_try_send(&tx, &w), 0);
    }
    weft_broadcast_tx_drop(&tx);
    uint64_t missed = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].last, -EPIPE);
        assert_int_equal(t[i].torn, 0);
        assert_int_equal(t[i].disorder, 0);
        assert_int_equal(t[i].count + t[i].missed, TORN_N);
        assert_int_equal(weft_broadcast_rx_missed(&rx[i]), 0); /* not the stream form */
        missed += t[i].missed;
        weft_broadcast_rx_drop(&rx[i]);
    }
    print_message("lagged receivers missed %" PRIu64 " of %u items\n", missed, 2 * TORN_N);
}

/* Ping-pong through two channels of one slot between two threads: every
 * round parks a receiver, so a wake lost between a receiver's last look
 * and its parking (or a sender's publish and its look for parked
 * receivers) hangs the test. */
#define PING_ROUNDS 50000u

typedef struct pinger {
    weft_broadcast_tx *tx;
    weft_broadcast_rx *rx;
    uint64_t bad;
} pinger;

static void *ponger_main(void *arg)
{
    pinger *p = arg;
    for (uint64_t i = 0; i < PING_ROUNDS; i++) {
        uint64_t v;
        if (weft_broadcast_recv_blocking(p->rx, &v) != 0 || v != i ||
            weft_broadcast_send_blocking(p->tx, &v) != 0)
            p->bad++;
    }
    return NULL;
}

static void test_ping_pong_between_threads_loses_no_wake(void **state)
{
    (void)state;
    for (int mode = LAG; mode <= WAIT; mode++) {
        weft_broadcast_tx ping_tx, pong_tx;
        weft_broadcast_rx ping_rx, pong_rx;
        assert_int_equal(weft_broadcast_new(&ping_tx, &ping_rx, sizeof(uint64_t), 1, mode), 0);
        assert_int_equal(weft_broadcast_new(&pong_tx, &pong_rx, sizeof(uint64_t), 1, mode), 0);
        pinger p = { &pong_tx, &ping_rx, 0 };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, ponger_main, &p), 0);
        uint64_t bad = 0;
        for (uint64_t i = 0; i < PING_ROUNDS; i++) {
            uint64_t v = i;
            if (weft_broadcast_send_blocking(&ping_tx, &v) != 0 ||
                weft_broadcast_recv_blocking(&pong_rx, &v) != 0 || v != i)
                bad++;
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(bad + p.bad, 0);
        weft_broadcast_tx_drop(&ping_tx);
        weft_broadcast_tx_drop(&pong_tx);
        weft_broadcast_rx_drop(&ping_rx);
        weft_broadcast_rx_drop(&pong_rx);
    }
}

static weft_broadcast_tx g_task_tx;
static weft_broadcast_rx g_task_rx;

static void blocking_in_task(void *arg, void *out)
{
    (void)arg;
    uint64_t v = 1;
    int a = weft_broadcast_send_blocking(&g_task_tx, &v);
    int64_t b = weft_broadcast_recv_blocking(&g_task_rx, &v);
    *(int *)out = a == -EDEADLK && b == -EDEADLK;
}

static void test_blocking_forms_in_a_task_are_edeadlk(void **state)
{
    (void)state;
    assert_int_equal(weft_broadcast_new(&g_task_tx, &g_task_rx, sizeof(uint64_t), 2, WAIT), 0);
    int out = 0;
    int before = misuse_count();
    assert_int_equal(RUN_FN_BLOCKING(g_rt, blocking_in_task, &out, sizeof out), 0);
    assert_int_equal(out, 1);
    assert_misuse_since(before, 2, "weft_broadcast_recv_blocking");
    uint64_t x;
    assert_int_equal(weft_broadcast_try_recv(&g_task_rx, &x), -EAGAIN); /* nothing sent */
    weft_broadcast_rx_drop(&g_task_rx);
    weft_broadcast_tx_drop(&g_task_tx);
}

/* ---- cancel sweeps ------------------------------------------------------------------------------ */

#define SEEDS 8
#define CHAOS 0.3

/* Drain `rx` with try_recv into `got` (at most `max`): the count; the
 * last status (-EAGAIN or -EPIPE expected) in *last. */
static size_t drain(weft_broadcast_rx *rx, uint64_t *got, size_t max, int64_t *last)
{
    size_t k = 0;
    for (;;) {
        uint64_t v;
        int64_t r = weft_broadcast_try_recv(rx, &v);
        if (r != 0) {
            *last = r;
            return k;
        }
        if (k < max)
            got[k] = v;
        k++;
    }
}

/* Send (WAIT mode): a full ring of two holding 0 and 1; a receiver task
 * takes both, a yield apart; the future sends 100. Exactly once: the
 * receiver afterwards holds 100 if the send completed and nothing if it
 * was dropped, whatever the point of the drop. */
typedef struct take_two {
    weft_future base;
    weft_co co;
    weft_broadcast_rx *rx;
    weft_broadcast_recv r;
    uint64_t item, *got;
    int64_t rc;
    int i;
} take_two;

WEFT_ASYNC_FN(take_two, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 2; self->i++) {
        WEFT_FN_YIELD;
        weft_broadcast_recv_init(&self->r, self->rx, &self->item);
        WEFT_FN_AWAIT(&self->r, &self->rc);
        if (self->rc != 0)
            WEFT_FN_RETURN(-1);
        self->got[self->i] = self->item;
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct send_case {
    weft_broadcast_tx tx;
    weft_broadcast_rx rx;
    weft_broadcast_send s;
    uint64_t item, got[2];
    int out;
} send_case;

static int send_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    send_case *sc = ctx;
    memset(sc, 0, sizeof *sc);
    int err = weft_broadcast_new(&sc->tx, &sc->rx, sizeof(uint64_t), 2, WAIT);
    if (err)
        return err;
    if (send_u64(&sc->tx, 0) || send_u64(&sc->tx, 1))
        return -EINVAL;
    sc->item = 100;
    sc->out = 1;
    sc->got[0] = sc->got[1] = 99;
    weft_broadcast_send_init(&sc->s, &sc->tx, &sc->item);
    *fut = &sc->s.base;
    *out = &sc->out;
    return WEFT_SPAWN(rt, NULL, &(take_two){ WEFT_FN_INIT(take_two, WEFT_F_SEND), .rx = &sc->rx,
                                             .got = sc->got });
}

static const char *send_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    send_case *sc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (sc->got[0] != 0 || sc->got[1] != 1)
        return sweep_say("k=%u: the receiver took %" PRIu64 ", %" PRIu64, run->k, sc->got[0],
                         sc->got[1]);
    if (run->completed && sc->out != 0)
        return sweep_say("completed with %d", sc->out);
    if (!run->completed && sc->out != 1)
        return "an output was written by a send dropped before it finished";
    uint64_t rest[4];
    int64_t last;
    size_t k = drain(&sc->rx, rest, 4, &last);
    if (last != -EAGAIN)
        return sweep_say("k=%u: drained with %lld", run->k, (long long)last);
    if (run->completed ? (k != 1 || rest[0] != 100) : k != 0)
        return sweep_say("k=%u (%s): %zu item(s) left for the receiver", run->k,
                         run->completed ? "completed" : "dropped", k);
    return NULL;
}

static void send_teardown(void *ctx)
{
    send_case *sc = ctx;
    weft_broadcast_rx_drop(&sc->rx);
    weft_broadcast_tx_drop(&sc->tx);
}

static void test_cancel_sweep_broadcast_send_sends_exactly_once_or_not_at_all(void **state)
{
    (void)state;
    static send_case sc;
    weft_sweep_case c = { send_build, send_check, send_teardown, &sc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2); /* it waited for room */
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    sweep_pass(&c, &o);
    assert_int_equal(misuse_count(), 0);
}

/* Recv: a sender task sends 7 after two yields (then 8 after one more);
 * the future receives. Exactly once: what the receiver gets afterwards is
 * 8 alone if the future completed with 7, else 7 then 8. */
typedef struct later_sender {
    weft_future base;
    weft_co co;
    weft_broadcast_tx *tx;
    int i;
} later_sender;

WEFT_ASYNC_FN(later_sender, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++) {
        WEFT_FN_YIELD;
        if (self->i >= 1 && send_u64(self->tx, 6 + (uint64_t)self->i) != 0)
            WEFT_FN_RETURN(-1);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct recv_case {
    int mode;
    bool stream; /* sweep weft_stream_next over the receiver instead */
    weft_broadcast_tx tx;
    weft_broadcast_rx rx;
    weft_broadcast_recv r;
    weft_stream_next nx;
    uint64_t item;
    int64_t out;
    int nx_out;
} recv_case;

static int recv_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    recv_case *rc = ctx;
    int err = weft_broadcast_new(&rc->tx, &rc->rx, sizeof(uint64_t), 4, rc->mode);
    if (err)
        return err;
    rc->item = 99;
    rc->out = 1;
    rc->nx_out = -1;
    if (rc->stream) {
        weft_stream_next_init(&rc->nx, &rc->rx.base, &rc->item);
        *fut = &rc->nx.base;
        *out = &rc->nx_out;
    } else {
        weft_broadcast_recv_init(&rc->r, &rc->rx, &rc->item);
        *fut = &rc->r.base;
        *out = &rc->out;
    }
    return WEFT_SPAWN(rt, NULL, &(later_sender){ WEFT_FN_INIT(later_sender, WEFT_F_SEND),
                                                 .tx = &rc->tx });
}

static const char *recv_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    recv_case *rc = ctx;
    /* The stream form has no hook into the receiver: the receiver's wait
     * keeps the dropped next's waker until it is polled again or dropped
     * (the sweep still fails if teardown, which drops it, leaves one). */
    if (!rc->stream && (run->wakers_after_drop || run->wakes_after_drop))
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    bool written = rc->stream ? rc->nx_out != -1 : rc->out != 1;
    bool got = rc->stream ? rc->nx_out == 1 : rc->out == 0;
    if (run->completed && (!got || rc->item != 7))
        return sweep_say("completed with %lld/%d, item %" PRIu64, (long long)rc->out,
                         rc->nx_out, rc->item);
    if (!run->completed && (written || rc->item != 99))
        return "a receive dropped before it finished wrote its output or item";
    uint64_t rest[4];
    int64_t last;
    size_t k = drain(&rc->rx, rest, 4, &last);
    if (last != -EAGAIN)
        return sweep_say("k=%u: drained with %lld", run->k, (long long)last);
    if (run->completed ? (k != 1 || rest[0] != 8)
                       : (k != 2 || rest[0] != 7 || rest[1] != 8))
        return sweep_say("k=%u (%s): %zu item(s) left for the receiver", run->k,
                         run->completed ? "completed" : "dropped", k);
    return NULL;
}

static void recv_teardown(void *ctx)
{
    recv_case *rc = ctx;
    weft_broadcast_rx_drop(&rc->rx);
    weft_broadcast_tx_drop(&rc->tx);
}

static void test_cancel_sweep_broadcast_recv_takes_each_item_exactly_once(void **state)
{
    (void)state;
    static recv_case rc;
    for (int mode = LAG; mode <= WAIT; mode++) {
        rc.mode = mode;
        weft_sweep_case c = { recv_build, recv_check, recv_teardown, &rc };
        weft_sweep_options o = sweep_options(1, 1);
        weft_sweep_result res = sweep_pass(&c, &o);
        assert_true(res.polls >= 2); /* it waited for the item */
        o = sweep_chaos_options(1, SEEDS, CHAOS);
        sweep_pass(&c, &o);
    }
    assert_int_equal(misuse_count(), 0);
}

/* The same through the receiver's stream form: a weft_stream_next over
 * it takes each item exactly once, or leaves it for the next receive. */
static void test_cancel_sweep_broadcast_stream_next_takes_each_item_exactly_once(void **state)
{
    (void)state;
    static recv_case rc;
    rc.stream = true;
    for (int mode = LAG; mode <= WAIT; mode++) {
        rc.mode = mode;
        weft_sweep_case c = { recv_build, recv_check, recv_teardown, &rc };
        weft_sweep_options o = sweep_options(1, 1);
        weft_sweep_result res = sweep_pass(&c, &o);
        assert_true(res.polls >= 2);
        o = sweep_chaos_options(1, SEEDS, CHAOS);
        sweep_pass(&c, &o);
    }
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
    alarm_watchdog_install("watchdog: a broadcast test hung (a lost wake?)\n");
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_every_receiver_gets_every_item_in_order),
        T(test_subscribe_sees_only_items_sent_after_it),
        T(test_lag_is_reported_once_with_the_exact_count),
        T(test_wait_mode_never_lags_and_try_send_waits_for_the_slowest),
        T(test_a_waiting_send_is_woken_by_the_slowest_receiver_only),
        T(test_dropping_the_slowest_receiver_releases_a_waiting_sender),
        T(test_close_lets_receivers_drain_then_epipe),
        T(test_try_states_and_a_dropped_pending_receive_leaves_no_waker),
        T(test_bad_arguments_are_einval),
        T(test_out_of_memory_makes_nothing_and_leaks_nothing),
        RT(test_every_receiver_gets_every_item_on_two_workers),
        T(test_fanout_on_the_sim_with_chaos_over_seeds),
        T(test_blocking_forms_from_foreign_threads),
        T(test_lag_mode_never_returns_a_torn_item_under_overwrites),
        T(test_ping_pong_between_threads_loses_no_wake),
        RT(test_blocking_forms_in_a_task_are_edeadlk),
        T(test_cancel_sweep_broadcast_send_sends_exactly_once_or_not_at_all),
        T(test_cancel_sweep_broadcast_recv_takes_each_item_exactly_once),
        T(test_cancel_sweep_broadcast_stream_next_takes_each_item_exactly_once),
    };
#undef T
#undef RT
    alarm(ALARM_WATCHDOG_S * 4);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
