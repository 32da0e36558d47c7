/* Tests for channels/watch.c: the watch channel (the latest value,
 * published with RCU). By hand first (what borrow, borrow_and_update,
 * has_changed and changed() see, the sender's drop, receiver counts, bad
 * arguments, -ENOMEM, every block freed), then readers on two workers
 * and on foreign threads while a writer publishes as fast as it can (no
 * torn value, versions never go backwards), threads that read and exit,
 * the sim under chaos over seeds, the blocking wait (and a ping-pong that
 * lands sends between changed()'s two checks), and the cancel sweeps of
 * weft_watch_changed.
 *
 * Old values are freed by liburcu's call_rcu thread after a grace period,
 * so every fixture calls weft_watch_barrier before the counting allocator
 * checks that every allocation came back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "channels/watch.h"
#include "support/alarm_watchdog.h"
#include "support/counting_waker.h"
#include "support/every_other.h"
#include "support/rng.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

/* ---- fixtures ------------------------------------------------------------------------ */

static int watch_sim_teardown(void **state)
{
    weft_watch_barrier(); /* old values retired by call_rcu: freed now */
    return sim_teardown(state);
}

static int watch_rt_teardown(void **state)
{
    weft_watch_barrier();
    return rt_teardown(state);
}

/* ---- values with a checksum ----------------------------------------------------------- */

#define WORDS 13

typedef struct item {
    uint64_t seq;
    uint64_t w[WORDS];
    uint64_t sum;
} item;

static item make_item(uint64_t seq)
{
    item it;
    it.seq = seq;
    it.sum = seq;
    for (int i = 0; i < WORDS; i++) {
        it.w[i] = mix64(seq * 31 + (uint64_t)i);
        it.sum ^= it.w[i] * (uint64_t)(i + 1);
    }
    return it;
}

/* True when `it` is one whole value (no mix of two). */
static bool item_whole(const item *it)
{
    uint64_t sum = it->seq;
    for (int i = 0; i < WORDS; i++) {
        if (it->w[i] != mix64(it->seq * 31 + (uint64_t)i))
            return false;
        sum ^= it->w[i] * (uint64_t)(i + 1);
    }
    return sum == it->sum;
}

/* ---- by hand ------------------------------------------------------------------------- */

static weft_poll poll_changed(weft_watch_changed *f, counting_waker *c, int *out)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(&f->base, &cx, out);
}

/* A fresh changed() polled once: its output, or 1 when it is pending (it
 * is dropped either way, and must have given back its waker). */
static int fresh_changed(weft_watch_rx *rx)
{
    counting_waker c;
    cw_init(&c);
    weft_watch_changed f;
    weft_watch_changed_init(&f, rx);
    int out = 99;
    weft_poll p = poll_changed(&f, &c, &out);
    weft_future_drop(&f.base);
    assert_int_equal(cw_outstanding(&c), 0);
    return p == WEFT_READY ? out : 1;
}

static void test_borrow_sees_the_initial_value(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx;
    item init = make_item(7), got;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof(item), &init), 0);
    weft_watch_borrow(&rx, &got);
    assert_memory_equal(&got, &init, sizeof got);
    assert_false(weft_watch_has_changed(&rx)); /* the initial value counts as seen */
    assert_int_equal(fresh_changed(&rx), 1);
    weft_watch_rx_drop(&rx);
    weft_watch_tx_drop(&tx);
}

static void test_send_then_borrow_sees_the_new_value(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx;
    int v = 1, got = 0;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    for (v = 2; v < 50; v++) {
        assert_int_equal(weft_watch_send(&tx, &v), 0);
        weft_watch_borrow(&rx, &got);
        assert_int_equal(got, v);
    }
    weft_watch_tx_drop(&tx);
    weft_watch_borrow(&rx, &got); /* still readable after the sender left */
    assert_int_equal(got, 49);
    weft_watch_rx_drop(&rx);
}

static void test_borrow_does_not_mark_seen_and_borrow_and_update_does(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx;
    int v = 1, got = 0;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    v = 2;
    assert_int_equal(weft_watch_send(&tx, &v), 0);
    assert_true(weft_watch_has_changed(&rx));
    weft_watch_borrow(&rx, &got);
    assert_int_equal(got, 2);
    assert_true(weft_watch_has_changed(&rx)); /* borrow marked nothing */
    weft_watch_borrow_and_update(&rx, &got);
    assert_int_equal(got, 2);
    assert_false(weft_watch_has_changed(&rx));
    assert_int_equal(fresh_changed(&rx), 1); /* nothing newer: pending */
    v = 3;
    assert_int_equal(weft_watch_send(&tx, &v), 0);
    /* changed() marks the newest seen, borrow then reads it. */
    assert_int_equal(fresh_changed(&rx), 0);
    assert_false(weft_watch_has_changed(&rx));
    assert_int_equal(fresh_changed(&rx), 1);
    weft_watch_borrow(&rx, &got);
    assert_int_equal(got, 3);
    weft_watch_tx_drop(&tx);
    weft_watch_rx_drop(&rx);
}

static void test_changed_wakes_a_waiting_poll_once_per_send(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx, rx2;
    int v = 1, out = 99;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    assert_int_equal(weft_watch_rx_clone(&rx, &rx2), 0);
    counting_waker c, c2;
    cw_init(&c);
    cw_init(&c2);
    weft_watch_changed f, f2;
    weft_watch_changed_init(&f, &rx);
    weft_watch_changed_init(&f2, &rx2);
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_PENDING);
    assert_int_equal(poll_changed(&f2, &c2, &out), WEFT_PENDING);
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_PENDING); /* repoll: still one waker */
    assert_int_equal(cw_outstanding(&c), 1);
    assert_int_equal(cw_woken(&c), 0);
    v = 2;
    assert_int_equal(weft_watch_send(&tx, &v), 0);
    assert_int_equal(cw_woken(&c), 1); /* every waiter woken */
    assert_int_equal(cw_woken(&c2), 1);
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    assert_int_equal(poll_changed(&f2, &c2, &out), WEFT_READY);
    assert_int_equal(out, 0);
    weft_future_drop(&f.base);
    weft_future_drop(&f2.base);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_int_equal(cw_outstanding(&c2), 0);
    assert_false(weft_watch_has_changed(&rx));
    /* A send made while nobody waits is not missed. */
    v = 3;
    assert_int_equal(weft_watch_send(&tx, &v), 0);
    assert_int_equal(fresh_changed(&rx), 0);
    assert_int_equal(fresh_changed(&rx2), 0);
    weft_watch_rx_drop(&rx2);
    weft_watch_rx_drop(&rx);
    weft_watch_tx_drop(&tx);
}

static void test_sender_drop_wakes_waiters_with_epipe_after_the_last_value(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx, rx2;
    int v = 1, out = 99;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    assert_int_equal(weft_watch_rx_clone(&rx, &rx2), 0);
    counting_waker c;
    cw_init(&c);
    weft_watch_changed f;
    weft_watch_changed_init(&f, &rx);
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_PENDING);
    v = 2;
    assert_int_equal(weft_watch_send(&tx, &v), 0); /* rx2 leaves it unseen */
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    weft_future_drop(&f.base);
    weft_watch_changed_init(&f, &rx);
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_PENDING);
    weft_watch_tx_drop(&tx);
    assert_null(tx.w_);
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_READY);
    assert_int_equal(out, -EPIPE);
    weft_future_drop(&f.base);
    assert_int_equal(cw_outstanding(&c), 0);
    /* The unseen value first, then -EPIPE, every time after. */
    assert_true(weft_watch_has_changed(&rx2));
    assert_int_equal(fresh_changed(&rx2), 0);
    assert_int_equal(fresh_changed(&rx2), -EPIPE);
    assert_int_equal(fresh_changed(&rx2), -EPIPE);
    weft_watch_borrow(&rx2, &v);
    assert_int_equal(v, 2);
    weft_watch_rx_drop(&rx2);
    weft_watch_rx_drop(&rx);
}

static void test_subscribe_clone_and_receiver_count(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx, sub, cl;
    int v = 1;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    assert_int_equal(weft_watch_receiver_count(&tx), 1);
    v = 2;
    assert_int_equal(weft_watch_send(&tx, &v), 0);
    /* A clone has seen what its original has (nothing new); a subscriber
     * has seen the current value. */
    assert_int_equal(weft_watch_rx_clone(&rx, &cl), 0);
    assert_int_equal(weft_watch_subscribe(&tx, &sub), 0);
    assert_int_equal(weft_watch_receiver_count(&tx), 3);
    assert_true(weft_watch_has_changed(&cl));
    assert_false(weft_watch_has_changed(&sub));
    weft_watch_rx_drop(&rx);
    weft_watch_rx_drop(&cl);
    weft_watch_rx_drop(&sub);
    assert_int_equal(weft_watch_receiver_count(&tx), 0);
    /* Publishing with nobody listening still works, and a later
     * subscriber reads it. */
    v = 3;
    assert_int_equal(weft_watch_send(&tx, &v), 0);
    assert_int_equal(weft_watch_subscribe(&tx, &sub), 0);
    int got = 0;
    weft_watch_borrow(&sub, &got);
    assert_int_equal(got, 3);
    /* The sender dropped first, the receiver last: the last one frees. */
    weft_watch_tx_drop(&tx);
    assert_int_equal(weft_watch_receiver_count(&tx), 0);
    weft_watch_rx_drop(&sub);
}

static void test_zero_sized_values_carry_versions_only(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx;
    assert_int_equal(weft_watch_new(&tx, &rx, 0, NULL), 0);
    assert_int_equal(weft_watch_send(&tx, NULL), 0);
    assert_true(weft_watch_has_changed(&rx));
    weft_watch_borrow_and_update(&rx, NULL);
    assert_false(weft_watch_has_changed(&rx));
    weft_watch_tx_drop(&tx);
    assert_int_equal(fresh_changed(&rx), -EPIPE);
    weft_watch_rx_drop(&rx);
    assert_int_equal(misuse_count(), 0);
}

static void test_bad_arguments_are_einval_and_reported(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx, rx2;
    int v = 1;
    int before = misuse_count();
    assert_int_equal(weft_watch_new(NULL, &rx, sizeof v, &v), -EINVAL);
    assert_misuse_since(before, 1, "weft_watch_new");
    assert_int_equal(weft_watch_new(&tx, NULL, sizeof v, &v), -EINVAL);
    assert_int_equal(weft_watch_new(&tx, &rx, WEFT_CHAN_ITEM_MAX + 1, &v), -EINVAL);
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, NULL), -EINVAL);
    assert_misuse_since(before, 4, "initial is NULL");
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    before = misuse_count();
    assert_int_equal(weft_watch_send(NULL, &v), -EINVAL);
    assert_int_equal(weft_watch_send(&tx, NULL), -EINVAL);
    assert_misuse_since(before, 2, "weft_watch_send");
    assert_int_equal(weft_watch_subscribe(NULL, &rx2), -EINVAL);
    assert_int_equal(weft_watch_subscribe(&tx, NULL), -EINVAL);
    assert_int_equal(weft_watch_rx_clone(NULL, &rx2), -EINVAL);
    assert_int_equal(weft_watch_rx_clone(&rx, NULL), -EINVAL);
    assert_misuse_since(before, 6, "weft_watch_rx_clone");
    int got = 5;
    weft_watch_borrow(&rx, NULL);
    weft_watch_borrow(NULL, &got);
    weft_watch_borrow_and_update(&rx, NULL);
    assert_misuse_since(before, 9, "weft_watch_borrow_and_update");
    assert_false(weft_watch_has_changed(NULL));
    assert_int_equal(weft_watch_changed_blocking(NULL), -EINVAL);
    assert_misuse_since(before, 11, "weft_watch_changed_blocking");
    assert_int_equal(weft_watch_receiver_count(NULL), 0);
    /* A changed() on a NULL receiver completes with -EINVAL, never hangs. */
    weft_watch_changed f;
    weft_watch_changed_init(&f, NULL);
    assert_misuse_since(before, 12, "weft_watch_changed_init");
    counting_waker c;
    cw_init(&c);
    int out = 0;
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_READY);
    assert_int_equal(out, -EINVAL);
    weft_future_drop(&f.base);
    /* Dropped handles refuse. */
    weft_watch_tx_drop(&tx);
    before = misuse_count();
    assert_int_equal(weft_watch_send(&tx, &v), -EINVAL);
    assert_int_equal(weft_watch_subscribe(&tx, &rx2), -EINVAL);
    weft_watch_tx_drop(&tx);
    assert_misuse_since(before, 3, "sender was dropped");
    weft_watch_rx_drop(&rx);
    weft_watch_rx_drop(&rx);
    weft_watch_borrow(&rx, &got);
    assert_misuse_since(before, 5, "receiver was dropped");
    assert_int_equal(got, 5); /* untouched */
}

/* ---- allocation ------------------------------------------------------------------------ */

/* Allocations left before the next one fails (< 0: none fails). */
static _Atomic long g_fail_in = -1;

static void *failing_alloc(size_t size, void *ctx)
{
    /* Relaxed: set by the test thread before the calls it tests. */
    if (atomic_load_explicit(&g_fail_in, memory_order_relaxed) >= 0 &&
        atomic_fetch_sub_explicit(&g_fail_in, 1, memory_order_relaxed) == 0)
        return NULL;
    return count_alloc(size, ctx);
}

/* The counting allocator whose `n`th allocation from now (0: the next)
 * fails, or (n < 0) none. */
static void fail_alloc_in(long n)
{
    atomic_store_explicit(&g_fail_in, n, memory_order_relaxed);
    weft_allocator a = { failing_alloc, count_free, NULL };
    assert_int_equal(weft_set_allocator(&a), 0);
}

static long live_allocs(void)
{
    return atomic_load_explicit(&g_live_allocs, memory_order_acquire);
}

static void test_enomem_leaves_nothing_half_made(void **state)
{
    (void)state;
    long base = live_allocs();
    weft_watch_tx tx = { NULL };
    weft_watch_rx rx = { NULL, 0 };
    int v = 1;
    for (long n = 0; n < 2; n++) { /* the channel, then its first block */
        fail_alloc_in(n);
        assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), -ENOMEM);
        assert_int_equal(live_allocs(), base);
        assert_null(tx.w_);
    }
    fail_alloc_in(-1);
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    /* A send that cannot allocate leaves the old value published and
     * wakes nobody. */
    counting_waker c;
    cw_init(&c);
    weft_watch_changed f;
    weft_watch_changed_init(&f, &rx);
    int out = 99;
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_PENDING);
    long before_send = live_allocs();
    fail_alloc_in(0);
    v = 2;
    assert_int_equal(weft_watch_send(&tx, &v), -ENOMEM);
    fail_alloc_in(-1);
    assert_int_equal(live_allocs(), before_send);
    assert_int_equal(cw_woken(&c), 0);
    assert_false(weft_watch_has_changed(&rx));
    int got = 0;
    weft_watch_borrow(&rx, &got);
    assert_int_equal(got, 1);
    assert_int_equal(weft_watch_send(&tx, &v), 0); /* and it works again */
    assert_int_equal(poll_changed(&f, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    weft_future_drop(&f.base);
    weft_watch_tx_drop(&tx);
    weft_watch_rx_drop(&rx);
    weft_watch_barrier();
    assert_int_equal(live_allocs(), base);
}

static void test_every_value_is_freed_after_the_last_handle(void **state)
{
    (void)state;
    long base = live_allocs();
    for (int last_is_rx = 0; last_is_rx < 2; last_is_rx++) {
        weft_watch_tx tx;
        weft_watch_rx rx, rx2;
        item it = make_item(0);
        assert_int_equal(weft_watch_new(&tx, &rx, sizeof it, &it), 0);
        assert_int_equal(weft_watch_rx_clone(&rx, &rx2), 0);
        assert_int_equal(live_allocs(), base + 2); /* the channel and one block */
        for (uint64_t s = 1; s <= 500; s++) {
            it = make_item(s);
            assert_int_equal(weft_watch_send(&tx, &it), 0);
        }
        weft_watch_barrier(); /* every replaced block is freed by now */
        assert_int_equal(live_allocs(), base + 2);
        weft_watch_rx_drop(&rx);
        if (last_is_rx) {
            weft_watch_tx_drop(&tx);
            assert_int_equal(live_allocs(), base + 2);
            weft_watch_rx_drop(&rx2);
        } else {
            weft_watch_rx_drop(&rx2);
            assert_int_equal(live_allocs(), base + 2);
            weft_watch_tx_drop(&tx);
        }
        assert_int_equal(live_allocs(), base); /* no barrier needed for the rest */
    }
}

/* ---- readers and a writer on two workers ------------------------------------------------------ */

enum { SENDS = 20000 };

typedef struct shared {
    weft_watch_tx tx;
    weft_watch_rx rx;
    _Atomic long torn;      /* reads that were not one whole value */
    _Atomic long backwards; /* reads older than one before, on one receiver */
    _Atomic long reads;
    uint64_t last;          /* the last seq sent */
} shared;

/* Publishes seq 1..last as fast as it can (a yield now and then), then
 * drops the sender. */
typedef struct writer {
    weft_future base;
    weft_co co;
    shared *sh;
    uint64_t seq;
} writer;

WEFT_ASYNC_FN(writer, int)
{
    WEFT_FN_BEGIN;
    for (self->seq = 1; self->seq <= self->sh->last; self->seq++) {
        item it = make_item(self->seq);
        if (weft_watch_send(&self->sh->tx, &it) != 0)
            WEFT_FN_RETURN(-1);
        if (self->seq % 64 == 0)
            WEFT_FN_YIELD;
    }
    weft_watch_tx_drop(&self->sh->tx);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void check_read(shared *sh, const item *it, uint64_t *prev)
{
    if (!item_whole(it))
        weft_atomic_fetch_add_relaxed(&sh->torn, 1);
    if (it->seq < *prev)
        weft_atomic_fetch_add_relaxed(&sh->backwards, 1);
    *prev = it->seq;
    weft_atomic_fetch_add_relaxed(&sh->reads, 1);
}

/* Waits with changed() until -EPIPE, reading after each change; then the
 * last read must be the last value. `spin`: borrows between waits too. */
typedef struct reader {
    weft_future base;
    weft_co co;
    shared *sh;
    weft_watch_rx rx;
    weft_watch_changed ch;
    int r;
    uint64_t prev;
    bool spin;
    int k;
} reader;

WEFT_ASYNC_FN(reader, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        if (self->spin) {
            for (self->k = 0; self->k < 8; self->k++) {
                item it;
                weft_watch_borrow(&self->rx, &it);
                check_read(self->sh, &it, &self->prev);
                WEFT_FN_YIELD;
            }
        }
        weft_watch_changed_init(&self->ch, &self->rx);
        WEFT_FN_AWAIT(&self->ch, &self->r);
        if (self->r == -EPIPE)
            break;
        item it;
        weft_watch_borrow_and_update(&self->rx, &it);
        check_read(self->sh, &it, &self->prev);
    }
    {
        item it;
        weft_watch_borrow(&self->rx, &it);
        check_read(self->sh, &it, &self->prev);
        uint64_t last = it.seq;
        weft_watch_rx_drop(&self->rx);
        WEFT_FN_RETURN(last == self->sh->last ? 0 : -2);
    }
    WEFT_FN_END;
}

enum { READERS = 6 };

/* Runs a writer and READERS readers (half also spinning on borrow) on
 * `rt`; every read whole, none backwards, every reader ends on the last
 * value. */
static void readers_and_writer(weft_rt *rt, uint64_t last)
{
    shared sh;
    item init = make_item(0);
    assert_int_equal(weft_watch_new(&sh.tx, &sh.rx, sizeof init, &init), 0);
    weft_atomic_init(&sh.torn, 0);
    weft_atomic_init(&sh.backwards, 0);
    weft_atomic_init(&sh.reads, 0);
    sh.last = last;
    weft_join j[READERS + 1];
    for (int i = 0; i < READERS; i++) {
        reader r = { WEFT_FN_INIT(reader, WEFT_F_SEND), .sh = &sh, .spin = i % 2 == 0 };
        assert_int_equal(weft_watch_rx_clone(&sh.rx, &r.rx), 0);
        assert_int_equal(WEFT_SPAWN(rt, &j[i], &r), 0);
    }
    assert_int_equal(WEFT_SPAWN(rt, &j[READERS], &(writer){ WEFT_FN_INIT(writer, WEFT_F_SEND),
                                                            .sh = &sh }),
                     0);
    if (rt_is_sim(rt))
        SIM_ASSERT(rt, weft_sim_run(rt) == 0);
    for (int i = 0; i <= READERS; i++) {
        int out = -9;
        assert_int_equal(join_blocking(rt, &j[i], &out, sizeof out), 0);
        assert_int_equal(out, 0);
    }
    assert_int_equal(weft_atomic_load_relaxed(&sh.torn), 0);
    assert_int_equal(weft_atomic_load_relaxed(&sh.backwards), 0);
    assert_true(weft_atomic_load_relaxed(&sh.reads) >= READERS);
    weft_watch_rx_drop(&sh.rx);
}

static void test_readers_on_two_workers_never_see_a_torn_value(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++)
        readers_and_writer(g_rt, SENDS);
}

static void test_readers_and_writer_on_the_sim_under_chaos(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    for (uint64_t seed = 1; seed <= 100; seed++) {
        weft_sim_options o = sim_options(seed);
        o.spurious_wake = 0.3;
        o.leaf_pending = 0.3;
        weft_rt *rt = sim_start(&o);
        readers_and_writer(rt, 200);
        weft_rt_shutdown(rt);
    }
}

/* ---- foreign threads ---------------------------------------------------------------------- */

typedef struct thread_reader {
    shared *sh;
    weft_watch_rx rx;
    bool blocking; /* waits with changed_blocking; else spins on borrow */
    int rc;
} thread_reader;

static void *thread_reader_main(void *arg)
{
    thread_reader *t = arg;
    uint64_t prev = 0;
    item it;
    t->rc = 0;
    if (t->blocking) {
        int r;
        while ((r = weft_watch_changed_blocking(&t->rx)) == 0) {
            weft_watch_borrow_and_update(&t->rx, &it);
            check_read(t->sh, &it, &prev);
        }
        if (r != -EPIPE)
            t->rc = r;
    }
    do {
        weft_watch_borrow(&t->rx, &it);
        check_read(t->sh, &it, &prev);
        if (!t->blocking)
            sched_yield();
    } while (it.seq != t->sh->last);
    weft_watch_rx_drop(&t->rx);
    return NULL;
}

static void test_foreign_threads_read_whole_values_while_a_task_writes(void **state)
{
    (void)state;
    shared sh;
    item init = make_item(0);
    assert_int_equal(weft_watch_new(&sh.tx, &sh.rx, sizeof init, &init), 0);
    weft_atomic_init(&sh.torn, 0);
    weft_atomic_init(&sh.backwards, 0);
    weft_atomic_init(&sh.reads, 0);
    sh.last = SENDS;
    enum { THREADS = 4 };
    thread_reader tr[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        tr[i] = (thread_reader){ &sh, { NULL, 0 }, i % 2 == 1, -1 };
        assert_int_equal(weft_watch_rx_clone(&sh.rx, &tr[i].rx), 0);
        assert_int_equal(pthread_create(&t[i], NULL, thread_reader_main, &tr[i]), 0);
    }
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(writer){ WEFT_FN_INIT(writer, WEFT_F_SEND),
                                                     .sh = &sh }),
                     0);
    int out = -9;
    assert_int_equal(join_blocking(g_rt, &j, &out, sizeof out), 0);
    assert_int_equal(out, 0);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(tr[i].rc, 0);
    }
    assert_int_equal(weft_atomic_load_relaxed(&sh.torn), 0);
    assert_int_equal(weft_atomic_load_relaxed(&sh.backwards), 0);
    weft_watch_rx_drop(&sh.rx);
}

/* Short-lived threads that read and send: each registers with liburcu at
 * its first call and is unregistered at its exit, so grace periods after
 * they are gone (the barrier) neither wait for them nor touch their
 * freed thread-local state (ASan would see it). */
typedef struct brief_thread {
    weft_watch_rx rx;
    weft_watch_tx *tx; /* sends once when set */
    int got;
} brief_thread;

static void *brief_main(void *arg)
{
    brief_thread *b = arg;
    weft_watch_borrow(&b->rx, &b->got);
    if (b->tx) {
        int v = b->got + 1;
        if (weft_watch_send(b->tx, &v) != 0)
            b->got = -1;
    }
    weft_watch_rx_drop(&b->rx);
    return NULL;
}

static void test_threads_that_read_and_exit_leave_no_registration_behind(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx;
    int v = 0;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    for (int i = 0; i < 64; i++) {
        brief_thread b = { { NULL, 0 }, i % 2 ? &tx : NULL, -5 };
        assert_int_equal(weft_watch_rx_clone(&rx, &b.rx), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, brief_main, &b), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(b.got, i / 2);
        weft_watch_barrier(); /* a grace period with the thread gone */
    }
    weft_watch_borrow(&rx, &v);
    assert_int_equal(v, 32);
    weft_watch_tx_drop(&tx);
    weft_watch_rx_drop(&rx);
}

/* ---- blocking --------------------------------------------------------------------------------- */

typedef struct blocker {
    weft_watch_rx rx;
    _Atomic int rc;
    _Atomic bool done;
} blocker;

static void *blocker_main(void *arg)
{
    blocker *b = arg;
    weft_atomic_store_release(&b->rc, weft_watch_changed_blocking(&b->rx));
    weft_atomic_store_release(&b->done, true);
    return NULL;
}

static unsigned queued(weft_watch *w);

static void test_changed_blocking_parks_a_foreign_thread_until_a_send(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx;
    int v = 1;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    blocker b = { { NULL, 0 }, -1, false };
    assert_int_equal(weft_watch_rx_clone(&rx, &b.rx), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocker_main, &b), 0);
    WAIT_UNTIL(queued(tx.w_) == 1);
    assert_false(weft_atomic_load_acquire(&b.done));
    v = 2;
    assert_int_equal(weft_watch_send(&tx, &v), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(weft_atomic_load_acquire(&b.rc), 0);
    assert_false(weft_watch_has_changed(&b.rx));
    /* Then the sender's drop releases it with -EPIPE. */
    weft_atomic_store_relaxed(&b.done, false);
    assert_int_equal(pthread_create(&t, NULL, blocker_main, &b), 0);
    WAIT_UNTIL(queued(tx.w_) == 1);
    weft_watch_tx_drop(&tx);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(weft_atomic_load_acquire(&b.rc), -EPIPE);
    weft_watch_rx_drop(&b.rx);
    weft_watch_rx_drop(&rx);
}

/* Ping-pong with a thread that waits again right after each change: many
 * sends land while it is between its lock-free check and queueing, which
 * is where a changed() that did not check again under the lock would
 * queue after the send had served the queue, and sleep forever. */
typedef struct ponger {
    weft_watch_rx rx;
    int rounds;
    _Atomic int acked;
    int rc;
} ponger;

static void *ponger_main(void *arg)
{
    ponger *p = arg;
    p->rc = 0;
    for (int i = 1; i <= p->rounds; i++) {
        int r = weft_watch_changed_blocking(&p->rx);
        if (r != 0) {
            p->rc = r;
            break;
        }
        int got = 0;
        weft_watch_borrow(&p->rx, &got);
        if (got < i) {
            p->rc = -1000 - got;
            break;
        }
        /* Release: the sender's next send comes after this. */
        weft_atomic_store_release(&p->acked, i);
    }
    weft_watch_rx_drop(&p->rx);
    return NULL;
}

static void test_changed_blocking_ping_pong_loses_no_send(void **state)
{
    (void)state;
    weft_watch_tx tx;
    weft_watch_rx rx;
    int v = 0;
    assert_int_equal(weft_watch_new(&tx, &rx, sizeof v, &v), 0);
    ponger p = { { NULL, 0 }, 100000, 0, -1 };
    assert_int_equal(weft_watch_rx_clone(&rx, &p.rx), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ponger_main, &p), 0);
    for (v = 1; v <= p.rounds; v++) {
        assert_int_equal(weft_watch_send(&tx, &v), 0);
        /* Acquire: pairs with the ponger's release. */
        WAIT_UNTIL(weft_atomic_load_acquire(&p.acked) == v);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p.rc, 0);
    weft_watch_tx_drop(&tx);
    weft_watch_rx_drop(&rx);
}

static weft_watch_rx g_task_rx;

static void changed_blocking_in_task(void *arg, void *out)
{
    (void)arg;
    *(int *)out = weft_watch_changed_blocking(&g_task_rx);
}

static void test_changed_blocking_in_a_task_is_edeadlk(void **state)
{
    (void)state;
    weft_watch_tx tx;
    int v = 1;
    assert_int_equal(weft_watch_new(&tx, &g_task_rx, sizeof v, &v), 0);
    v = 2;
    assert_int_equal(weft_watch_send(&tx, &v), 0); /* even with a change there */
    int out = 0;
    int before = misuse_count();
    assert_int_equal(RUN_FN_BLOCKING(g_rt, changed_blocking_in_task, &out, sizeof out), 0);
    assert_int_equal(out, -EDEADLK);
    assert_misuse_since(before, 1, "weft_watch_changed_blocking");
    assert_true(weft_watch_has_changed(&g_task_rx)); /* not polled: still unseen */
    weft_watch_tx_drop(&tx);
    weft_watch_rx_drop(&g_task_rx);
}

/* ---- cancel sweeps ---------------------------------------------------------------------------- */

static unsigned queued(weft_watch *w)
{
    return (unsigned)weft__watch_waiters(w);
}

#define SEEDS 8
#define CHAOS 0.3

typedef struct env {
    weft_watch_tx tx;
    weft_watch_rx rx; /* the sweeping receiver */
    weft_watch_rx other;
    _Atomic bool other_done;
} env;

/* Yields three times, sends one value, yields, drops the sender. */
typedef struct sender {
    weft_future base;
    weft_co co;
    env *e;
    int i;
} sender;

WEFT_ASYNC_FN(sender, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++)
        WEFT_FN_YIELD;
    {
        int v = 42;
        if (weft_watch_send(&self->e->tx, &v) != 0)
            WEFT_FN_RETURN(-1);
    }
    WEFT_FN_YIELD;
    weft_watch_tx_drop(&self->e->tx);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* Another receiver waiting for the change too: the swept one's drop must
 * not take it from it. */
typedef struct other_waiter {
    weft_future base;
    weft_co co;
    env *e;
    weft_watch_changed ch;
    int r;
} other_waiter;

WEFT_ASYNC_FN(other_waiter, int)
{
    WEFT_FN_BEGIN;
    weft_watch_changed_init(&self->ch, &self->e->other);
    WEFT_FN_AWAIT(&self->ch, &self->r);
    if (self->r == 0)
        weft_atomic_store_release(&self->e->other_done, true);
    WEFT_FN_RETURN(self->r);
    WEFT_FN_END;
}

typedef struct changed_case {
    env e;
    weft_watch_changed f;
    int out;
} changed_case;

static int changed_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    changed_case *cc = ctx;
    *fut = &cc->f.base;
    *out = &cc->out;
    int v = 1;
    int err = weft_watch_new(&cc->e.tx, &cc->e.rx, sizeof v, &v);
    if (err)
        return err;
    err = weft_watch_rx_clone(&cc->e.rx, &cc->e.other);
    if (err)
        return err;
    weft_atomic_init(&cc->e.other_done, false);
    cc->out = 99;
    weft_watch_changed_init(&cc->f, &cc->e.rx);
    err = WEFT_SPAWN(rt, NULL, &(other_waiter){ WEFT_FN_INIT(other_waiter, WEFT_F_SEND),
                                                .e = &cc->e });
    if (!err)
        err = WEFT_SPAWN(rt, NULL, &(sender){ WEFT_FN_INIT(sender, WEFT_F_SEND), .e = &cc->e });
    return err;
}

/* The change (version 2) is observed exactly once by the sweeping
 * receiver: by the swept future if it completed (then a fresh changed()
 * finds only the closed channel), else by a fresh changed() after the
 * drop (then a second one finds the channel closed). */
static const char *changed_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    changed_case *cc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (!weft_atomic_load_acquire(&cc->e.other_done))
        return "the other receiver never saw the change";
    if (queued(cc->e.rx.w_))
        return sweep_say("k=%u: a waiter is still queued", run->k);
    if (run->completed) {
        if (cc->out != 0)
            return sweep_say("k=%u: completed with %d, not 0", run->k, cc->out);
        if (weft_watch_has_changed(&cc->e.rx))
            return sweep_say("k=%u: completed but the change is not marked seen", run->k);
        int r = fresh_changed(&cc->e.rx);
        if (r != -EPIPE)
            return sweep_say("k=%u: after completing, a fresh changed() gave %d: "
                             "the change observed twice", run->k, r);
        return NULL;
    }
    if (cc->out != 99)
        return sweep_say("k=%u: dropped, yet its output was written", run->k);
    if (!weft_watch_has_changed(&cc->e.rx))
        return sweep_say("k=%u: dropped, yet the change was marked seen: lost", run->k);
    int r1 = fresh_changed(&cc->e.rx);
    int r2 = fresh_changed(&cc->e.rx);
    if (r1 != 0 || r2 != -EPIPE)
        return sweep_say("k=%u: after the drop fresh changed() gave %d then %d "
                         "(want 0 then -EPIPE)", run->k, r1, r2);
    int got = 0;
    weft_watch_borrow(&cc->e.rx, &got);
    if (got != 42)
        return sweep_say("k=%u: read %d, not the value sent", run->k, got);
    return NULL;
}

static void changed_teardown(void *ctx)
{
    changed_case *cc = ctx;
    weft_watch_rx_drop(&cc->e.other);
    weft_watch_rx_drop(&cc->e.rx);
    if (cc->e.tx.w_) /* a stalled run never dropped it */
        weft_watch_tx_drop(&cc->e.tx);
}

static void test_cancel_sweep_watch_changed_observes_the_change_exactly_once(void **state)
{
    (void)state;
    static changed_case cc;
    weft_sweep_case c = { changed_build, changed_check, changed_teardown, &cc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_int_equal(res.polls, 2); /* poll 1 queues it; 2 sees the change */
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2);
    assert_int_equal(misuse_count(), 0);
}

/* Polled every other turn: a drop after a turn it skipped finds its
 * waiter served but unseen, which hands nothing on and loses nothing. */
static void test_cancel_sweep_watch_changed_served_but_unseen_loses_nothing(void **state)
{
    (void)state;
    static changed_case cc;
    static every_other_sweep es;
    weft_sweep_case inner = { changed_build, changed_check, changed_teardown, &cc };
    weft_sweep_case c = every_other_sweep_case(&es, &inner);
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 3);
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    sweep_pass(&c, &o);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
    alarm_watchdog_install("watchdog: a watch test hung (a lost wake?)\n");
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, watch_sim_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, watch_rt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_borrow_sees_the_initial_value),
        T(test_send_then_borrow_sees_the_new_value),
        T(test_borrow_does_not_mark_seen_and_borrow_and_update_does),
        T(test_changed_wakes_a_waiting_poll_once_per_send),
        T(test_sender_drop_wakes_waiters_with_epipe_after_the_last_value),
        T(test_subscribe_clone_and_receiver_count),
        T(test_zero_sized_values_carry_versions_only),
        T(test_bad_arguments_are_einval_and_reported),
        T(test_enomem_leaves_nothing_half_made),
        T(test_every_value_is_freed_after_the_last_handle),
        RT(test_readers_on_two_workers_never_see_a_torn_value),
        T(test_readers_and_writer_on_the_sim_under_chaos),
        RT(test_foreign_threads_read_whole_values_while_a_task_writes),
        T(test_threads_that_read_and_exit_leave_no_registration_behind),
        T(test_changed_blocking_parks_a_foreign_thread_until_a_send),
        T(test_changed_blocking_ping_pong_loses_no_send),
        RT(test_changed_blocking_in_a_task_is_edeadlk),
        T(test_cancel_sweep_watch_changed_observes_the_change_exactly_once),
        T(test_cancel_sweep_watch_changed_served_but_unseen_loses_nothing),
    };
#undef T
#undef RT
    alarm(ALARM_WATCHDOG_S * 4);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
