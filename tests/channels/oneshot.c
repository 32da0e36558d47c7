/* Tests of channels/oneshot.c: send and receive in either order, either
 * end dropped, the closed future, try_recv's states, the blocking receive
 * from a foreign thread, misuse and -ENOMEM, races between two workers and
 * between a task and a foreign thread (many rounds; run under TSan), sims
 * with chaos over many seeds, and the cancel sweeps of weft_oneshot_recv
 * and weft_oneshot_closed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "weft/weft.h"
#include "channels/oneshot.h"
#include "support/counting_waker.h"
#include "support/rng.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

#define CHAOS_SEEDS 200u
#define CHAOS_P 0.4

static weft_poll poll_once(weft_future *f, counting_waker *c, void *out)
{
    weft_waker wk = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &wk);
    return weft_future_poll(f, &cx, out);
}

/* The state word, for tests that wait for a registration. */
static uintptr_t os_state(weft_oneshot *os)
{
    /* Acquire: the test then reads what the registering thread did. */
    return weft_atomic_load_acquire(&os->state);
}

static weft_rt *chaos_sim(uint64_t seed)
{
    weft_sim_options o = sim_options(seed);
    o.spurious_wake = CHAOS_P;
    o.leaf_pending = CHAOS_P;
    return sim_start(&o);
}

static int join_int(weft_rt *rt, weft_join *j)
{
    int out = -1000;
    assert_int_equal(join_blocking(rt, j, &out, sizeof out), 0);
    return out;
}

/* ---- tasks ------------------------------------------------------------------------------ */

/* Receives from `rx`: outputs the value (> 0) or the error. */
typedef struct recv_task {
    weft_future base;
    weft_co co;
    weft_oneshot_rx *rx;
    int item, rc;
    weft_oneshot_recv r;
} recv_task;

WEFT_ASYNC_FN(recv_task, int)
{
    WEFT_FN_BEGIN;
    weft_oneshot_recv_init(&self->r, self->rx, &self->item);
    WEFT_FN_AWAIT(&self->r, &self->rc);
    WEFT_FN_RETURN(self->rc == 0 ? self->item : self->rc);
    WEFT_FN_END;
}

/* Yields `yields` times, then sends `value` on `tx` (or drops it when
 * `drop` is set); outputs send's code (0 for a drop). */
typedef struct send_task {
    weft_future base;
    weft_co co;
    weft_oneshot_tx *tx;
    int value, yields, i;
    bool drop;
} send_task;

WEFT_ASYNC_FN(send_task, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->yields; self->i++)
        WEFT_FN_YIELD;
    if (self->drop) {
        weft_oneshot_tx_drop(self->tx);
        WEFT_FN_RETURN(0);
    }
    WEFT_FN_RETURN(weft_oneshot_send(self->tx, &self->value));
    WEFT_FN_END;
}

/* Yields `yields` times, then drops `rx`; outputs 0. */
typedef struct rx_drop_task {
    weft_future base;
    weft_co co;
    weft_oneshot_rx *rx;
    int yields, i;
} rx_drop_task;

WEFT_ASYNC_FN(rx_drop_task, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->yields; self->i++)
        WEFT_FN_YIELD;
    weft_oneshot_rx_drop(self->rx);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* A server: waits until its client (the receiver) is gone, then tries to
 * send anyway; outputs send's code (-EPIPE). */
typedef struct server_task {
    weft_future base;
    weft_co co;
    weft_oneshot_tx *tx;
    int value;
    weft_oneshot_closed c;
} server_task;

WEFT_ASYNC_FN(server_task, int)
{
    WEFT_FN_BEGIN;
    weft_oneshot_closed_init(&self->c, self->tx);
    WEFT_FN_AWAIT(&self->c, NULL);
    if (!weft_oneshot_tx_is_closed(self->tx))
        WEFT_FN_RETURN(-1);
    WEFT_FN_RETURN(weft_oneshot_send(self->tx, &self->value));
    WEFT_FN_END;
}

/* ---- by hand ------------------------------------------------------------------------------ */

static void test_send_then_recv(void **state)
{
    (void)state;
    int before = misuse_count();
    counting_waker c;
    cw_init(&c);
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    assert_false(weft_oneshot_tx_is_closed(&tx));
    int v = 42, got = 0, rc = 1;
    assert_int_equal(weft_oneshot_send(&tx, &v), 0);
    assert_null(tx.os_); /* spent */
    weft_oneshot_tx_drop(&tx); /* a no-op on a spent sender */
    weft_oneshot_recv r;
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_READY);
    assert_int_equal(rc, 0);
    assert_int_equal(got, 42);
    weft_future_drop(&r.base);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_int_equal(cw_woken(&c), 0);
    /* Given once: a later try_recv finds nothing. */
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), -EPIPE);
    weft_oneshot_rx_drop(&rx);
    assert_null(rx.os_);
    weft_oneshot_rx_drop(&rx); /* a no-op on a dropped receiver */
    assert_no_misuse_since(before);
}

static void test_recv_pending_then_woken_by_send(void **state)
{
    (void)state;
    int before = misuse_count();
    counting_waker c, c2;
    cw_init(&c);
    cw_init(&c2);
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    int got = 0, rc = 1;
    weft_oneshot_recv r;
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_PENDING);
    assert_int_equal(cw_outstanding(&c), 1);
    assert_true(os_state(rx.os_) & WEFT__OS_RX_TASK_SET);
    /* Polled again with the same waker: nothing cloned. */
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_PENDING);
    assert_int_equal(cw_outstanding(&c), 1);
    /* With another waker: the old one is released, the new one kept. */
    assert_int_equal(poll_once(&r.base, &c2, &rc), WEFT_PENDING);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_int_equal(cw_outstanding(&c2), 1);
    int v = 7;
    assert_int_equal(weft_oneshot_send(&tx, &v), 0);
    assert_int_equal(cw_woken(&c), 0);
    assert_int_equal(cw_woken(&c2), 1);
    assert_int_equal(cw_outstanding(&c2), 0); /* woken by value */
    assert_int_equal(poll_once(&r.base, &c2, &rc), WEFT_READY);
    assert_int_equal(rc, 0);
    assert_int_equal(got, 7);
    weft_future_drop(&r.base);
    weft_oneshot_rx_drop(&rx);
    assert_int_equal(cw_outstanding(&c2), 0);
    assert_no_misuse_since(before);
}

static void test_sender_dropped_is_epipe(void **state)
{
    (void)state;
    int before = misuse_count();
    counting_waker c;
    cw_init(&c);
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    /* Dropped while a recv waits: woken, -EPIPE. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    int got = -7, rc = 1;
    weft_oneshot_recv r;
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_PENDING);
    weft_oneshot_tx_drop(&tx);
    assert_null(tx.os_);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_READY);
    assert_int_equal(rc, -EPIPE);
    assert_int_equal(got, -7); /* untouched */
    weft_future_drop(&r.base);
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), -EPIPE);
    weft_oneshot_rx_drop(&rx);
    /* Dropped before the first poll: -EPIPE at once. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    weft_oneshot_tx_drop(&tx);
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_READY);
    assert_int_equal(rc, -EPIPE);
    weft_future_drop(&r.base);
    weft_oneshot_rx_drop(&rx);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_no_misuse_since(before);
}

static void test_receiver_dropped_send_fails_and_item_untouched(void **state)
{
    (void)state;
    int before = misuse_count();
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    assert_int_equal(weft_oneshot_new(&tx, &rx, 16), 0);
    weft_oneshot_rx_drop(&rx);
    assert_true(weft_oneshot_tx_is_closed(&tx));
    unsigned char item[16], copy[16];
    for (int i = 0; i < 16; i++)
        item[i] = copy[i] = (unsigned char)(0xa0 + i);
    assert_int_equal(weft_oneshot_send(&tx, item), -EPIPE);
    assert_memory_equal(item, copy, sizeof item);
    assert_null(tx.os_); /* spent anyway: the oneshot is freed */
    weft_oneshot_tx_drop(&tx);
    /* Value sent, never received, receiver dropped: discarded, freed. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, 16), 0);
    assert_int_equal(weft_oneshot_send(&tx, item), 0);
    weft_oneshot_rx_drop(&rx);
    assert_no_misuse_since(before);
}

static void test_closed_future_wakes_on_rx_drop(void **state)
{
    (void)state;
    int before = misuse_count();
    counting_waker c, c2;
    cw_init(&c);
    cw_init(&c2);
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    weft_oneshot_closed cf;
    weft_oneshot_closed_init(&cf, &tx);
    assert_int_equal(poll_once(&cf.base, &c, NULL), WEFT_PENDING);
    assert_int_equal(poll_once(&cf.base, &c, NULL), WEFT_PENDING);
    assert_int_equal(cw_outstanding(&c), 1);
    assert_int_equal(poll_once(&cf.base, &c2, NULL), WEFT_PENDING);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_int_equal(cw_outstanding(&c2), 1);
    /* A recv coming and going does not wake it. */
    int got = 0, rc = 1;
    weft_oneshot_recv r;
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_PENDING);
    weft_future_drop(&r.base);
    assert_int_equal(cw_woken(&c2), 0);
    weft_oneshot_rx_drop(&rx);
    assert_int_equal(cw_woken(&c2), 1);
    assert_int_equal(cw_outstanding(&c2), 0);
    assert_int_equal(poll_once(&cf.base, &c2, NULL), WEFT_READY);
    weft_future_drop(&cf.base);
    /* Already closed: READY at once. */
    weft_oneshot_closed late;
    weft_oneshot_closed_init(&late, &tx);
    assert_int_equal(poll_once(&late.base, &c, NULL), WEFT_READY);
    weft_future_drop(&late.base);
    weft_oneshot_tx_drop(&tx);
    /* Dropped while pending: its waker is released, the rx drop wakes
     * nobody. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    weft_oneshot_closed_init(&cf, &tx);
    assert_int_equal(poll_once(&cf.base, &c, NULL), WEFT_PENDING);
    weft_future_drop(&cf.base);
    assert_int_equal(cw_outstanding(&c), 0);
    long woken = cw_woken(&c);
    weft_oneshot_rx_drop(&rx);
    assert_int_equal(cw_woken(&c), woken);
    weft_oneshot_tx_drop(&tx);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_no_misuse_since(before);
}

static void test_try_recv_states(void **state)
{
    (void)state;
    int before = misuse_count();
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    int got = -1, v = 5;
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), -EAGAIN);
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), -EAGAIN);
    assert_int_equal(got, -1);
    assert_int_equal(weft_oneshot_send(&tx, &v), 0);
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), 0);
    assert_int_equal(got, 5);
    got = -1;
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), -EPIPE); /* taken */
    assert_int_equal(got, -1);
    weft_oneshot_rx_drop(&rx);
    /* Sender dropped: -EPIPE. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    weft_oneshot_tx_drop(&tx);
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), -EPIPE);
    weft_oneshot_rx_drop(&rx);
    /* Zero-size items: only the fact of the send; item may be NULL. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, 0), 0);
    assert_int_equal(weft_oneshot_try_recv(&rx, NULL), -EAGAIN);
    assert_int_equal(weft_oneshot_send(&tx, NULL), 0);
    assert_int_equal(weft_oneshot_try_recv(&rx, NULL), 0);
    weft_oneshot_rx_drop(&rx);
    /* The largest item. */
    static unsigned char big[WEFT_CHAN_ITEM_MAX], big2[WEFT_CHAN_ITEM_MAX];
    memset(big, 0x5a, sizeof big);
    big[sizeof big - 1] = 0x11;
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof big), 0);
    assert_int_equal(weft_oneshot_send(&tx, big), 0);
    assert_int_equal(weft_oneshot_try_recv(&rx, big2), 0);
    assert_memory_equal(big, big2, sizeof big);
    weft_oneshot_rx_drop(&rx);
    assert_no_misuse_since(before);
}

/* A recv dropped while pending loses nothing: it takes its waker back,
 * the send wakes nobody, and a fresh recv gets the value. */
static void test_dropped_pending_recv_loses_nothing(void **state)
{
    (void)state;
    int before = misuse_count();
    counting_waker c;
    cw_init(&c);
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    int got = 0, rc = 1, v = 99;
    weft_oneshot_recv r;
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_PENDING);
    weft_future_drop(&r.base);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_false(os_state(rx.os_) & WEFT__OS_RX_TASK_SET);
    assert_int_equal(weft_oneshot_send(&tx, &v), 0);
    assert_int_equal(cw_woken(&c), 0);
    assert_int_equal(got, 0);
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_READY);
    assert_int_equal(rc, 0);
    assert_int_equal(got, 99);
    weft_future_drop(&r.base);
    weft_oneshot_rx_drop(&rx);
    assert_no_misuse_since(before);
}

static void test_misuse_is_einval_or_reported(void **state)
{
    (void)state;
    int before = misuse_count();
    counting_waker c;
    cw_init(&c);
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    int v = 1, got = 0, rc = 1;
    assert_int_equal(weft_oneshot_new(NULL, &rx, 4), -EINVAL);
    assert_null(rx.os_);
    assert_int_equal(weft_oneshot_new(&tx, NULL, 4), -EINVAL);
    assert_null(tx.os_);
    assert_int_equal(weft_oneshot_new(&tx, &rx, WEFT_CHAN_ITEM_MAX + 1), -EINVAL);
    assert_null(tx.os_);
    assert_null(rx.os_);
    assert_misuse_since(before, 3, "weft_oneshot_new");
    /* Spent and NULL handles. */
    assert_int_equal(weft_oneshot_send(&tx, &v), -EINVAL);
    assert_misuse_since(before, 4, "spent");
    assert_int_equal(weft_oneshot_send(NULL, &v), -EINVAL);
    assert_true(weft_oneshot_tx_is_closed(&tx));
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), -EINVAL);
    assert_int_equal(weft_oneshot_try_recv(NULL, &got), -EINVAL);
    assert_misuse_since(before, 8, "weft_oneshot_try_recv");
    weft_oneshot_tx_drop(NULL);
    weft_oneshot_rx_drop(NULL);
    weft_oneshot_recv r;
    weft_oneshot_recv_init(&r, &rx, &got); /* dropped receiver */
    assert_misuse_since(before, 9, "weft_oneshot_recv_init");
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_READY);
    assert_int_equal(rc, -EINVAL);
    weft_future_drop(&r.base);
    weft_oneshot_closed cf;
    weft_oneshot_closed_init(&cf, &tx); /* spent sender */
    assert_misuse_since(before, 10, "weft_oneshot_closed_init");
    assert_int_equal(poll_once(&cf.base, &c, NULL), WEFT_READY);
    weft_future_drop(&cf.base);
    assert_int_equal(weft_oneshot_recv_blocking(NULL, &got), -EINVAL);
    assert_misuse_since(before, 11, "weft_oneshot_recv_blocking");
    /* A NULL item: send drops the sender unsent (the receiver sees
     * -EPIPE); receives refuse. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    assert_int_equal(weft_oneshot_try_recv(&rx, NULL), -EINVAL);
    assert_misuse_since(before, 12, "item is NULL");
    assert_int_equal(weft_oneshot_send(&tx, NULL), -EINVAL);
    assert_misuse_since(before, 13, "item is NULL");
    assert_null(tx.os_);
    assert_int_equal(weft_oneshot_try_recv(&rx, &got), -EPIPE);
    weft_oneshot_rx_drop(&rx);
    /* Receiving again after READY: -EPIPE, reported. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    assert_int_equal(weft_oneshot_send(&tx, &v), 0);
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_READY);
    assert_int_equal(rc, 0);
    weft_future_drop(&r.base);
    weft_oneshot_recv_init(&r, &rx, &got);
    assert_int_equal(poll_once(&r.base, &c, &rc), WEFT_READY);
    assert_int_equal(rc, -EPIPE);
    assert_misuse_since(before, 14, "already received");
    weft_future_drop(&r.base);
    weft_oneshot_rx_drop(&rx);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* ---- allocation failure --------------------------------------------------------------------- */

static _Atomic int g_fail_allocs; /* allocations still to refuse */

static void *failing_alloc(size_t size, void *ctx)
{
    /* Relaxed: set by the test thread before the call that allocates. */
    if (weft_atomic_load_relaxed(&g_fail_allocs) > 0) {
        weft_atomic_fetch_sub_relaxed(&g_fail_allocs, 1);
        return NULL;
    }
    return count_alloc(size, ctx);
}

static void test_enomem_leaves_nothing_half_made(void **state)
{
    (void)state;
    int before = misuse_count();
    weft_allocator a = { failing_alloc, count_free, NULL };
    assert_int_equal(weft_set_allocator(&a), 0); /* counting_free keeps the count */
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    weft_atomic_store_relaxed(&g_fail_allocs, 1);
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), -ENOMEM);
    assert_null(tx.os_);
    assert_null(rx.os_);
    weft_oneshot_tx_drop(&tx);
    weft_oneshot_rx_drop(&rx);
    assert_int_equal(weft_atomic_load_acquire(&g_live_allocs), 0);
    /* recv_blocking whose waker cannot be made: -ENOMEM, nothing
     * received; the value is still there. */
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    assert_int_equal(weft_atomic_load_acquire(&g_live_allocs), 1);
    int v = 3, got = 0;
    assert_int_equal(weft_oneshot_send(&tx, &v), 0);
    weft_atomic_store_relaxed(&g_fail_allocs, 1);
    assert_int_equal(weft_oneshot_recv_blocking(&rx, &got), -ENOMEM);
    assert_int_equal(got, 0);
    assert_int_equal(weft_oneshot_recv_blocking(&rx, &got), 0);
    assert_int_equal(got, 3);
    weft_oneshot_rx_drop(&rx);
    assert_int_equal(weft_atomic_load_acquire(&g_live_allocs), 0);
    assert_no_misuse_since(before);
}

/* ---- blocking receive from a foreign thread ------------------------------------------------ */

typedef struct blocker {
    weft_oneshot_rx *rx;
    int item;
    _Atomic int rc;
} blocker;

static void *blocker_main(void *arg)
{
    blocker *b = arg;
    /* Release: the test thread reads `item` after seeing rc. */
    weft_atomic_store_release(&b->rc, weft_oneshot_recv_blocking(b->rx, &b->item));
    return NULL;
}

static void test_recv_blocking_parks_a_foreign_thread_until_sent(void **state)
{
    (void)state;
    int before = misuse_count();
    for (int round = 0; round < 2; round++) {
        bool drop = round == 1;
        weft_oneshot_tx tx;
        weft_oneshot_rx rx;
        assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
        blocker b = { &rx, 0, 1 };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, blocker_main, &b), 0);
        /* Parked: its waker is registered. */
        WAIT_UNTIL(os_state(rx.os_) & WEFT__OS_RX_TASK_SET);
        assert_int_equal(weft_atomic_load_acquire(&b.rc), 1);
        /* A task on a worker sends (or drops the sender). */
        send_task s = { WEFT_FN_INIT(send_task, WEFT_F_SEND), .tx = &tx, .value = 31,
                        .yields = 1, .drop = drop };
        int out = -1;
        assert_int_equal(spawn_blocking(g_rt, &s.base, sizeof s, &out, sizeof out), 0);
        assert_int_equal(out, 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(weft_atomic_load_acquire(&b.rc), drop ? -EPIPE : 0);
        if (!drop)
            assert_int_equal(b.item, 31);
        weft_oneshot_rx_drop(&rx);
    }
    assert_no_misuse_since(before);
}

static weft_oneshot_rx g_task_rx;

static void recv_blocking_in_task(void *arg, void *out)
{
    (void)arg;
    int got = 0;
    *(int *)out = weft_oneshot_recv_blocking(&g_task_rx, &got);
}

static void test_recv_blocking_in_a_task_is_edeadlk(void **state)
{
    (void)state;
    weft_oneshot_tx tx;
    assert_int_equal(weft_oneshot_new(&tx, &g_task_rx, sizeof(int)), 0);
    int v = 8, out = 0, got = 0;
    assert_int_equal(weft_oneshot_send(&tx, &v), 0);
    int before = misuse_count();
    assert_int_equal(RUN_FN_BLOCKING(g_rt, recv_blocking_in_task, &out, sizeof out), 0);
    assert_int_equal(out, -EDEADLK);
    assert_misuse_since(before, 1, "weft_oneshot_recv_blocking");
    assert_int_equal(weft_oneshot_try_recv(&g_task_rx, &got), 0); /* still there */
    assert_int_equal(got, 8);
    weft_oneshot_rx_drop(&g_task_rx);
}

/* ---- on a runtime: tasks, races, sims ------------------------------------------------------- */

/* One oneshot, a receiver task and a sender task (or a server waiting
 * for its client to go, and a client that goes), by `kind`:
 *   0 send after `yields` yields, 1 drop the sender, 2 the receiver goes
 *   and the server's closed future sees it. */
static void run_pair(weft_rt *rt, int kind, int yields, int value)
{
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
    weft_join jr, js;
    if (kind == 2) {
        server_task s = { WEFT_FN_INIT(server_task, WEFT_F_SEND), .tx = &tx, .value = value };
        assert_int_equal(weft_spawn(rt, &s.base, sizeof s, &js), 0);
        rx_drop_task d = { WEFT_FN_INIT(rx_drop_task, WEFT_F_SEND), .rx = &rx,
                           .yields = yields };
        assert_int_equal(weft_spawn(rt, &d.base, sizeof d, &jr), 0);
        assert_int_equal(join_int(rt, &jr), 0);
        assert_int_equal(join_int(rt, &js), -EPIPE);
        return;
    }
    recv_task r = { WEFT_FN_INIT(recv_task, WEFT_F_SEND), .rx = &rx };
    assert_int_equal(weft_spawn(rt, &r.base, sizeof r, &jr), 0);
    send_task s = { WEFT_FN_INIT(send_task, WEFT_F_SEND), .tx = &tx, .value = value,
                    .yields = yields, .drop = kind == 1 };
    assert_int_equal(weft_spawn(rt, &s.base, sizeof s, &js), 0);
    assert_int_equal(join_int(rt, &js), 0);
    assert_int_equal(join_int(rt, &jr), kind == 1 ? -EPIPE : value);
    weft_oneshot_rx_drop(&rx);
}

#define RACE_ROUNDS 3000

static void test_race_on_two_workers(void **state)
{
    (void)state;
    int before = misuse_count();
    for (int round = 0; round < RACE_ROUNDS; round++)
        run_pair(g_rt, round % 3, (round / 3) % 3, round + 1);
    assert_no_misuse_since(before);
}

/* The test thread (foreign) sends, drops the sender or drops the
 * receiver while a task registers its recv or closed future. */
static void test_race_task_against_a_foreign_thread(void **state)
{
    (void)state;
    int before = misuse_count();
    for (int round = 0; round < RACE_ROUNDS; round++) {
        weft_oneshot_tx tx;
        weft_oneshot_rx rx;
        assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
        weft_join j;
        int value = round + 1;
        switch (round % 3) {
        case 0:
        case 1: {
            recv_task r = { WEFT_FN_INIT(recv_task, WEFT_F_SEND), .rx = &rx };
            assert_int_equal(weft_spawn(g_rt, &r.base, sizeof r, &j), 0);
            if (round % 3 == 0)
                assert_int_equal(weft_oneshot_send(&tx, &value), 0);
            else
                weft_oneshot_tx_drop(&tx);
            assert_int_equal(join_int(g_rt, &j), round % 3 == 0 ? value : -EPIPE);
            weft_oneshot_rx_drop(&rx);
            break;
        }
        default: {
            server_task s = { WEFT_FN_INIT(server_task, WEFT_F_SEND), .tx = &tx,
                              .value = value };
            assert_int_equal(weft_spawn(g_rt, &s.base, sizeof s, &j), 0);
            weft_oneshot_rx_drop(&rx);
            assert_int_equal(join_int(g_rt, &j), -EPIPE);
            break;
        }
        }
    }
    assert_no_misuse_since(before);
}

/* A task sends while a foreign thread parks in recv_blocking. */
static void test_race_blocking_recv_against_a_task(void **state)
{
    (void)state;
    int before = misuse_count();
    for (int round = 0; round < RACE_ROUNDS / 3; round++) {
        weft_oneshot_tx tx;
        weft_oneshot_rx rx;
        assert_int_equal(weft_oneshot_new(&tx, &rx, sizeof(int)), 0);
        send_task s = { WEFT_FN_INIT(send_task, WEFT_F_SEND), .tx = &tx, .value = round + 1,
                        .yields = round % 2 };
        weft_join j;
        assert_int_equal(weft_spawn(g_rt, &s.base, sizeof s, &j), 0);
        int got = 0;
        assert_int_equal(weft_oneshot_recv_blocking(&rx, &got), 0);
        assert_int_equal(got, round + 1);
        assert_int_equal(join_int(g_rt, &j), 0);
        weft_oneshot_rx_drop(&rx);
    }
    assert_no_misuse_since(before);
}

static void test_sim_chaos_pairs(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    int before = misuse_count();
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= CHAOS_SEEDS; seed++) {
        weft_rt *rt = chaos_sim(seed);
        for (int kind = 0; kind < 3; kind++)
            run_pair(rt, kind, (int)(seed % 4), (int)seed);
        weft_sim_stats st = sim_stats(rt);
        dealt += st.leaf_pendings + st.spurious_wakes;
        weft_rt_shutdown(rt);
    }
    assert_true(dealt > 0);
    assert_no_misuse_since(before);
}

/* ---- the registration window, widened ------------------------------------------------------ */

/* Two threads per round: the test thread polls a recv (or a closed
 * future) once while a second thread sends, drops the sender (or drops
 * the receiver), each after a random spin, and the waker's clone — made
 * between the recv's load of the state and its fetch_or — spins too
 * (STYLE rule 24), so the completion lands before, inside and after the
 * registration; every other round a first poll registers another waker
 * first, so it lands inside a re-registration too. Whatever the order: a PENDING poll was woken exactly once
 * by the time the other thread is done, the next poll is READY with the
 * right result, and no waker clone is left. A lost wake fails the round. */
#define DUEL_ROUNDS 20000

typedef struct duel {
    _Atomic int go;   /* the round the other thread is to play; -1: stop */
    _Atomic int done; /* the last round it played */
    int kind;         /* 0 send, 1 drop the sender, 2 drop the receiver */
    unsigned spin;
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    int value, rc;
} duel;

static void spin_for(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        weft__cpu_relax();
}

static void *duel_main(void *arg)
{
    duel *d = arg;
    int last = 0;
    for (;;) {
        int round;
        /* Acquire: pairs with the release that starts a round (the
         * handles and the kind). */
        while ((round = weft_atomic_load_acquire(&d->go)) == last)
            weft__cpu_relax();
        if (round < 0)
            return NULL;
        last = round;
        spin_for(d->spin);
        if (d->kind == 0)
            d->rc = weft_oneshot_send(&d->tx, &d->value);
        else if (d->kind == 1)
            weft_oneshot_tx_drop(&d->tx);
        else
            weft_oneshot_rx_drop(&d->rx);
        /* Release: the test thread reads rc after seeing the round done. */
        weft_atomic_store_release(&d->done, round);
    }
}

static void test_completion_racing_registration_is_never_lost(void **state)
{
    (void)state;
    int before = misuse_count();
    static duel d;
    weft_atomic_init(&d.go, 0);
    weft_atomic_init(&d.done, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, duel_main, &d), 0);
    uint64_t rs = rng_seed(1);
    long pending_polls = 0;
    for (int round = 1; round <= DUEL_ROUNDS; round++) {
        counting_waker c;
        cw_init(&c);
        c.clone_spin = rng_next32(&rs) % 64;
        d.kind = round % 3;
        d.spin = rng_next32(&rs) % 128;
        d.value = round;
        d.rc = 1;
        assert_int_equal(weft_oneshot_new(&d.tx, &d.rx, sizeof(int)), 0);
        weft_oneshot_rx rx = d.rx; /* ours: the other thread may drop d.rx */
        weft_oneshot_tx tx = d.tx;
        weft_oneshot_recv r;
        weft_oneshot_closed cf;
        int got = 0, rc = 1;
        weft_future *f;
        if (d.kind < 2) {
            weft_oneshot_recv_init(&r, &rx, &got);
            f = &r.base;
        } else {
            weft_oneshot_closed_init(&cf, &tx);
            f = &cf.base;
        }
        unsigned my_spin = rng_next32(&rs) % 128;
        /* Every other round, a first poll registers another waker, which
         * the racing poll replaces (the re-registration's window). */
        counting_waker c0;
        cw_init(&c0);
        bool pre = (round / 3) % 2 == 1;
        if (pre)
            assert_int_equal(poll_once(f, &c0, &rc), WEFT_PENDING);
        /* Release: the other thread sees the handles and the kind. */
        weft_atomic_store_release(&d.go, round);
        spin_for(my_spin);
        weft_poll p = poll_once(f, &c, &rc);
        while (weft_atomic_load_acquire(&d.done) != round)
            weft__cpu_relax();
        if (p == WEFT_PENDING) {
            pending_polls++;
            if (cw_woken(&c) != 1)
                fail_msg("round %d (kind %d): pending, then %ld wake(s) once the other "
                         "side was done", round, d.kind, cw_woken(&c));
            assert_int_equal(poll_once(f, &c, &rc), WEFT_READY);
        }
        weft_future_drop(f);
        assert_int_equal(cw_outstanding(&c), 0);
        assert_int_equal(cw_outstanding(&c0), 0);
        assert_true(cw_woken(&c0) <= 1);
        if (d.kind == 0) {
            assert_int_equal(d.rc, 0);
            assert_int_equal(rc, 0);
            assert_int_equal(got, round);
        } else if (d.kind == 1) {
            assert_int_equal(rc, -EPIPE);
        }
        if (d.kind < 2)
            weft_oneshot_rx_drop(&rx);
        else
            weft_oneshot_tx_drop(&tx);
    }
    weft_atomic_store_release(&d.go, -1);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* Both orders happened: some polls came first, some completions. */
    assert_true(pending_polls > 0 && pending_polls < DUEL_ROUNDS);
    assert_no_misuse_since(before);
}

/* ---- cancel sweeps -------------------------------------------------------------------------- */

#define SWEEP_VALUE 4242

/* weft_oneshot_recv against a sender task that yields 3 times, then sends
 * (or drops the sender). Dropped at any point: no waker is left, and the
 * value is received exactly once — by the swept recv if it completed,
 * else by a fresh recv after the drop. */
typedef struct recv_case {
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    weft_oneshot_recv r;
    int item, rc;
    bool drop_tx;
} recv_case;

static int recv_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    recv_case *rc = ctx;
    rc->item = 0;
    rc->rc = 1;
    int err = weft_oneshot_new(&rc->tx, &rc->rx, sizeof(int));
    if (err != 0)
        return err;
    send_task s = { WEFT_FN_INIT(send_task, WEFT_F_SEND), .tx = &rc->tx, .value = SWEEP_VALUE,
                    .yields = 3, .drop = rc->drop_tx };
    err = weft_spawn(rt, &s.base, sizeof s, NULL);
    weft_oneshot_recv_init(&rc->r, &rc->rx, &rc->item);
    *fut = &rc->r.base;
    *out = &rc->rc;
    return err;
}

static const char *recv_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    recv_case *rc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    int want = rc->drop_tx ? -EPIPE : 0;
    int got = 0, frc = 1;
    if (run->completed) {
        if (rc->rc != want || (want == 0 && rc->item != SWEEP_VALUE))
            return sweep_say("k=%u: completed with %d, item %d", run->k, rc->rc, rc->item);
        /* Not twice: the value is gone. */
        if (weft_oneshot_try_recv(&rc->rx, &got) != -EPIPE)
            return sweep_say("k=%u: the value could be received again", run->k);
    } else {
        if (rc->item != 0)
            return sweep_say("k=%u: dropped unfinished, yet wrote the item", run->k);
        /* A fresh recv after the drop gets what the swept one did not. */
        weft_oneshot_recv fresh;
        weft_oneshot_recv_init(&fresh, &rc->rx, &got);
        if (weft_block_on(rt, &fresh.base, &frc, sizeof frc) != 0)
            return sweep_say("k=%u: the fresh recv did not complete", run->k);
        if (frc != want || (want == 0 && got != SWEEP_VALUE))
            return sweep_say("k=%u: the fresh recv got %d, item %d", run->k, frc, got);
    }
    if (os_state(rc->rx.os_) & WEFT__OS_TASKS)
        return sweep_say("k=%u: a waker cell is still marked set", run->k);
    return sweep_leftovers(rt);
}

static void recv_teardown(void *ctx)
{
    recv_case *rc = ctx;
    weft_oneshot_tx_drop(&rc->tx); /* spent: a no-op */
    weft_oneshot_rx_drop(&rc->rx);
}

static void sweep_both(const weft_sweep_case *c)
{
    weft_sweep_options o = sweep_options(1, 1);
    assert_true(sweep_pass(c, &o).polls >= 2);
    o = sweep_chaos_options(1, 8, 0.3);
    (void)sweep_pass(c, &o);
}

static void test_cancel_sweep_oneshot_recv_receives_exactly_once(void **state)
{
    (void)state;
    static recv_case rc;
    rc.drop_tx = false;
    weft_sweep_case c = { recv_build, recv_check, recv_teardown, &rc };
    sweep_both(&c);
    assert_int_equal(misuse_count(), 0);
}

static void test_cancel_sweep_oneshot_recv_sender_dropped(void **state)
{
    (void)state;
    static recv_case rc;
    rc.drop_tx = true;
    weft_sweep_case c = { recv_build, recv_check, recv_teardown, &rc };
    sweep_both(&c);
    assert_int_equal(misuse_count(), 0);
}

/* weft_oneshot_closed against a client task that yields 3 times, then
 * drops the receiver. Dropped at any point: no waker is left, the sender
 * sees the close, and its send fails with the item still its own. */
typedef struct closed_case {
    weft_oneshot_tx tx;
    weft_oneshot_rx rx;
    weft_oneshot_closed c;
} closed_case;

static int closed_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    closed_case *cc = ctx;
    (void)out;
    int err = weft_oneshot_new(&cc->tx, &cc->rx, sizeof(int));
    if (err != 0)
        return err;
    rx_drop_task d = { WEFT_FN_INIT(rx_drop_task, WEFT_F_SEND), .rx = &cc->rx, .yields = 3 };
    err = weft_spawn(rt, &d.base, sizeof d, NULL);
    weft_oneshot_closed_init(&cc->c, &cc->tx);
    *fut = &cc->c.base;
    return err;
}

static const char *closed_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    closed_case *cc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    if (os_state(cc->tx.os_) & WEFT__OS_TASKS)
        return sweep_say("k=%u: a waker cell is still marked set", run->k);
    if (!weft_oneshot_tx_is_closed(&cc->tx))
        return sweep_say("k=%u: the sender does not see the close", run->k);
    int item = SWEEP_VALUE;
    if (weft_oneshot_send(&cc->tx, &item) != -EPIPE || item != SWEEP_VALUE)
        return sweep_say("k=%u: a send after the close did not fail cleanly", run->k);
    return sweep_leftovers(rt);
}

static void closed_teardown(void *ctx)
{
    closed_case *cc = ctx;
    weft_oneshot_tx_drop(&cc->tx);
    weft_oneshot_rx_drop(&cc->rx);
}

static void test_cancel_sweep_oneshot_closed(void **state)
{
    (void)state;
    static closed_case cc;
    weft_sweep_case c = { closed_build, closed_check, closed_teardown, &cc };
    sweep_both(&c);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
#define COUNTED(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
#define ON_RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
    const struct CMUnitTest tests[] = {
        COUNTED(test_send_then_recv),
        COUNTED(test_recv_pending_then_woken_by_send),
        COUNTED(test_sender_dropped_is_epipe),
        COUNTED(test_receiver_dropped_send_fails_and_item_untouched),
        COUNTED(test_closed_future_wakes_on_rx_drop),
        COUNTED(test_try_recv_states),
        COUNTED(test_dropped_pending_recv_loses_nothing),
        COUNTED(test_misuse_is_einval_or_reported),
        COUNTED(test_enomem_leaves_nothing_half_made),
        ON_RT(test_recv_blocking_parks_a_foreign_thread_until_sent),
        ON_RT(test_recv_blocking_in_a_task_is_edeadlk),
        ON_RT(test_race_on_two_workers),
        ON_RT(test_race_task_against_a_foreign_thread),
        ON_RT(test_race_blocking_recv_against_a_task),
        COUNTED(test_completion_racing_registration_is_never_lost),
        COUNTED(test_sim_chaos_pairs),
        COUNTED(test_cancel_sweep_oneshot_recv_receives_exactly_once),
        COUNTED(test_cancel_sweep_oneshot_recv_sender_dropped),
        COUNTED(test_cancel_sweep_oneshot_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
