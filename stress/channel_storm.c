/* stress_channel_storm: producers and consumers — tasks and foreign
 * threads — over one mpsc or mpmc channel per round (and oneshot pairs,
 * a broadcast and a watch channel beside it), with timeouts,
 * aborts, dropped futures and closes at random points, checking that no
 * item is ever lost or duplicated.
 *
 *   stress_channel_storm [--threads N] [--iters N] [--seed S] [--seconds T]
 *
 * --threads  workers per runtime (default 2)
 * --iters    stop after this many rounds (default 0: only the time box)
 * --seed     the run's seed (default: from the clock); printed first
 * --seconds  time box (default 3)
 *
 * Each round starts a runtime and one channel: mpsc bounded, mpsc
 * unbounded or mpmc bounded (a third each), capacity 1-4, 7, 16 or 64,
 * items of 8 bytes (an id) or 16 (an id and a check word, so a torn item
 * shows). 1-6 producer tasks and 0-2 foreign producer threads each send
 * up to MAX_QUOTA items; the consumers are one task or foreign thread
 * (mpsc), or 1-4 of either (mpmc, cloned receivers). Every item carries a
 * unique id, producer << 32 | seq; a returned id is never sent again.
 *
 * Producer tasks send each item by awaiting the send future, under an
 * owning timeout of 0-1 ms (which drops it pending), under a borrowing
 * timeout (then the pending send is dropped, or awaited again), or with
 * try_send. Consumer tasks await the receive or recv_many future (max
 * 1-32), under the same timeouts, or try_recv / try_recv_many. Foreign
 * threads use the `_blocking` forms, try_*, and weft_block_on of a send
 * or receive under an owning timeout. Some producers stop early (their
 * sender is dropped before their quota); some consumers stop early
 * (their receiver is dropped); some call weft_chan_rx_close and go on
 * draining. Some tasks abort random tasks, and a foreign thread does too,
 * so tasks are dropped with a send or receive pending (their drop drops
 * the pending future, then the handle). A quarter of the rounds shut the
 * runtime down while tasks still run (foreign threads then use only the
 * `_blocking` forms and try_*, which need no runtime).
 *
 * Beside the channel, 0-16 oneshot request/reply pairs per round, each end
 * a task or served by a foreign thread. A sender may sleep, may wait for
 * the receiver to go (weft_oneshot_closed under a timeout), then sends or
 * drops unsent; a receiver awaits the recv future (plain, under an owning
 * timeout, under a borrowing one then dropped or awaited again), polls
 * try_recv, uses recv_blocking (foreign), or drops early; aborts drop
 * either end. A receiver released without an outcome takes what is there
 * with try_recv first. Checked per pair: a value received was sent, and
 * is the pair's; a receiver told -EPIPE had a sender that dropped unsent
 * (else the value was lost); a failed send found the receiver dropped;
 * both ends finished. A value sent to a receiver dropped just before it
 * arrived is discarded, as documented: counted (os_discarded).
 *
 * In half the rounds, a broadcast channel too (LAG or WAIT mode, capacity
 * 1-16): 1-3 senders (one in half of those rounds) and 1-4 receivers,
 * each a task or a foreign thread; receivers after the first may
 * subscribe late, some drop early. Senders await the send (plain, under
 * timeouts), try_send or send_blocking; receivers await the receive
 * (plain, under timeouts), try_recv or recv_blocking, and log every item
 * and lag notice. Checked: every send resolved once; each receiver got
 * only items that were sent, each sender's in order and none twice;
 * where the order of all sends is known (one sender: its successful
 * sends; else a receiver that saw everything from the start without
 * lagging) each receiver's items are consecutive in it, a lag notice of
 * n skipping exactly n; a receiver that ran from the start to -EPIPE got
 * every item sent or was told it missed it (items + missed == sent).
 *
 * In half the rounds, a watch channel too: one sender (task or foreign
 * thread) publishes versions 1..N of a 64-byte value whose words all
 * derive from the version, then drops; 1-4 receivers await changed()
 * (plain, under timeouts), use changed_blocking, or poll has_changed and
 * borrow_and_update. Checked: no read is torn, versions never go back,
 * changed() says -EPIPE only with nothing unseen, and the value read then
 * is the last version sent.
 *
 * The last receiver released (counted by the program, not the library)
 * closes the channel, drains it with try_recv until -EPIPE and only then
 * drops its handle: the items it takes are counted apart ("drained"), and
 * none is discarded by the drop, so every item a send reported as sent
 * must have been received.
 *
 * Per id the program records sent (the send said 0), returned (the send
 * failed, timed out, or was dropped pending: the item stayed the
 * sender's) and how often it was received. Invariants (any violation
 * aborts with the seed and round):
 *  - no id is both sent and returned, and every id a producer took is one
 *    of the two by the end of the round;
 *  - lost = 0: every sent id was received (or drained);
 *  - duplicated = 0: no id received twice, none received that was
 *    returned, none received that was never sent, none out of range, and
 *    (16-byte items) none torn;
 *  - every handle is dropped exactly once; every task is dropped once and
 *    its join agrees with it (-ECANCELED only after an abort or a
 *    shutdown);
 *  - no hang (a lost wake leaves a waiter on a channel with room or items
 *    forever): the watchdog reports it (seconds * 10 + 30 s).
 * Waits for threads are joins and condition variables; the only clock
 * waits are the timers under test, short sleeps that let buffers fill,
 * and the watchdog's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "weft/weft.h"
#include "weft/channels.h"

#include "stress_common.h"

#define MAX_PROD 8 /* task and foreign producers */
#define MAX_CONS 5 /* task and foreign consumers */
#define MAX_PAIRS 16 /* oneshot request/reply pairs */
#define MAX_BTX 3 /* broadcast senders */
#define MAX_BRX 4 /* broadcast receivers */
#define BQUOTA 300
#define MAX_BLOG (2 * MAX_BTX * BQUOTA + 2) /* items and lag notices a receiver logs */
#define BLAG ((uint64_t)1 << 63)            /* a log entry that is a lag notice */
#define MAX_WRX 4      /* watch receivers */
#define WVERSIONS 500 /* versions a watch sender publishes at most */
#define WWORDS 8      /* words of a watch value: a version and words derived from it */
#define MAX_TASKS (MAX_PROD + MAX_CONS + 2 * MAX_PAIRS + MAX_BTX + MAX_BRX + 1 + MAX_WRX)
#define MAX_QUOTA 400
#define MANY_MAX 32
#define ITEM_MAX 16

enum { KIND_MPSC, KIND_UNBOUNDED, KIND_MPMC, NKINDS };
enum { F_SENT = 1, F_RETURNED = 2 };
enum {
    ROLE_PRODUCER,
    ROLE_CONSUMER,
    ROLE_OS_TX,
    ROLE_OS_RX,
    ROLE_BC_TX,
    ROLE_BC_RX,
    ROLE_W_TX,
    ROLE_W_RX,
};

/* A watch value: version v in w[0], and each other word derived from v,
 * so a read that mixes two versions shows. */
typedef struct wvalue {
    uint64_t w[WWORDS];
} wvalue;
/* A oneshot pair's outcome, per end. The sender: sent (0), returned
 * (-EPIPE: the receiver was gone) or dropped unsent. The receiver: the
 * value received (by a receive, or drained by try_recv before its drop),
 * -EPIPE, or dropped with nothing there yet. */
enum { OS_TX_SENT = 1, OS_TX_RETURNED, OS_TX_UNSENT };
enum { OS_RX_RECEIVED = 1, OS_RX_DRAINED, OS_RX_EPIPE, OS_RX_DROPPED };
enum { HOW_AWAIT, HOW_MANY, HOW_OWN, HOW_BORROW, HOW_TRY, HOW_PAUSE };

typedef struct item {
    uint64_t id;
    uint64_t check; /* only in 16-byte items */
} item;

static uint64_t check_of(uint64_t id)
{
    return mix64(id ^ 0x9e3779b97f4a7c15ull);
}

/* ---- per-round state ---------------------------------------------------- */

typedef struct round_state {
    uint64_t seed;
    weft_rt *rt;
    int kind;
    size_t cap, item_size;
    bool shutdown_mid;
    bool foreign_timeouts; /* foreign threads may use weft_block_on */
    _Atomic bool over;     /* the aborter stops */

    unsigned nprod, ncons;
    bool prod_foreign[MAX_PROD], cons_foreign[MAX_CONS];
    unsigned quota[MAX_PROD];
    unsigned quit_at[MAX_PROD];   /* stop early after this many ids (quota: never) */
    unsigned next_seq[MAX_PROD];  /* the producer's own */
    uint64_t cons_quit[MAX_CONS]; /* stop after this many receive ops (0: never) */
    uint64_t cons_close[MAX_CONS]; /* call rx_close after this many (0: never) */

    /* Each handle is owned by one actor (a task or a thread); `*_live`
     * is the owner's, read by the main thread after the round. */
    weft_chan_tx tx[MAX_PROD];
    weft_chan_rx rx[MAX_CONS];
    bool tx_live[MAX_PROD], rx_live[MAX_CONS];
    _Atomic unsigned rx_left; /* receivers not yet released */

    /* Oneshot pairs: each end is a task or served by the oneshot thread. */
    unsigned npairs;
    bool os_tx_foreign[MAX_PAIRS], os_rx_foreign[MAX_PAIRS];
    weft_oneshot_tx os_tx[MAX_PAIRS];
    weft_oneshot_rx os_rx[MAX_PAIRS];
    bool os_rx_live[MAX_PAIRS]; /* the receiver's owner's */
    _Atomic uint8_t os_tx_out[MAX_PAIRS], os_rx_out[MAX_PAIRS];

    /* Broadcast (half the rounds): senders and receivers, each a task or
     * a foreign thread; a late receiver subscribes through a sender of
     * its own (bsub), then drops it. */
    bool bc_on;
    int bc_mode;
    size_t bc_cap;
    unsigned nbtx, nbrx;
    bool btx_foreign[MAX_BTX], brx_foreign[MAX_BRX], brx_late[MAX_BRX];
    unsigned bquota[MAX_BTX], bquit_at[MAX_BTX], bnext[MAX_BTX];
    uint64_t brx_quit[MAX_BRX]; /* drop after this many receives (0: never) */
    weft_broadcast_tx btx[MAX_BTX], bsub[MAX_BRX];
    weft_broadcast_rx brx[MAX_BRX];
    bool btx_live[MAX_BTX], bsub_live[MAX_BRX], brx_live[MAX_BRX]; /* the owners' */
    bool brx_full[MAX_BRX]; /* it reached -EPIPE */
    _Atomic uint8_t bflags[MAX_BTX][BQUOTA];
    uint64_t blog[MAX_BRX][MAX_BLOG]; /* what each receiver saw, in order */
    unsigned blen[MAX_BRX];

    /* Watch (half the rounds): one sender, receivers made at the start,
     * each a task or a foreign thread. */
    bool w_on;
    bool wtx_foreign, wrx_foreign[MAX_WRX];
    unsigned nwrx, wversions;
    uint64_t wrx_quit[MAX_WRX];
    weft_watch_tx wtx;
    weft_watch_rx wrx[MAX_WRX];
    bool wtx_live, wrx_live[MAX_WRX]; /* the owners' */
    uint64_t w_last_sent;             /* the sender's: the last version sent */
    uint64_t w_final[MAX_WRX];        /* the version read after -EPIPE, or ~0 */

    _Atomic uint8_t flags[MAX_PROD][MAX_QUOTA];
    _Atomic uint8_t recvd[MAX_PROD][MAX_QUOTA];

    unsigned ntasks;
    weft_join joins[MAX_TASKS];
    _Atomic unsigned published;
    _Atomic uint8_t drops[MAX_TASKS], done[MAX_TASKS], aborted[MAX_TASKS];

    stress_counter lost, duplicated, rounds_mpsc, rounds_unbounded, rounds_mpmc,
        rounds_shut_down, tasks, sent, received, drained, returned, send_epipe,
        send_own_timeouts, send_borrow_drops,
        send_borrow_retries, send_aborted, try_send_fails, recv_own_timeouts,
        recv_borrow_drops, recv_borrow_retries, recv_aborted, try_recv_empty,
        foreign_send_timeouts, foreign_recv_timeouts, rx_closes, tx_early_drops,
        rx_early_drops, aborts_task, aborts_foreign, completed, cancelled, os_pairs,
        os_received, os_drained, os_epipe, os_discarded, os_returned, os_unsent,
        os_rx_early_drops, os_recv_timeouts, os_recv_borrow_drops, os_closed_seen,
        bc_rounds_lag, bc_rounds_wait, bc_sent, bc_returned, bc_received, bc_lag_notices,
        bc_missed, bc_timeouts, bc_borrow_drops, bc_try_empty, bc_late_subscribes,
        bc_rx_early_drops, bc_checked_in_order, w_rounds, w_sent, w_reads, w_changed,
        w_timeouts, w_borrow_drops, w_finals_checked, w_rx_early_drops;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned dropped; /* tasks dropped */
} round_state;

static round_state g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* ---- ids -------------------------------------------------------------------- */

/* The next id of producer `p`, and its item in `it`. */
static uint64_t take_id(unsigned p, item *it)
{
    uint64_t id = (uint64_t)p << 32 | g.next_seq[p]++;
    it->id = id;
    it->check = check_of(id);
    return id;
}

/* The id's fate as its producer saw it: F_SENT or F_RETURNED, once. */
static void resolve(uint64_t id, uint8_t f)
{
    unsigned p = (unsigned)(id >> 32), s = (uint32_t)id;
    /* Relaxed: read by the main thread after every actor is joined. */
    uint8_t prev = atomic_fetch_or_explicit(&g.flags[p][s], f, memory_order_relaxed);
    STRESS_ENSURE(prev == 0, "id %#" PRIx64 " resolved twice (%u then %u)", id, prev, f);
    stress_count(f == F_SENT ? &g.sent : &g.returned);
}

/* The outcome `r` of a send of `id` that finished: 0 sent, -EPIPE
 * returned. Returns true when the channel is closed. */
static bool send_done(uint64_t id, int r)
{
    STRESS_ENSURE(r == 0 || r == -EPIPE, "send of %#" PRIx64 ": %d", id, r);
    resolve(id, r == 0 ? F_SENT : F_RETURNED);
    if (r == -EPIPE)
        stress_count(&g.send_epipe);
    return r == -EPIPE;
}

/* `n` items received into `buf`; `c`: received or drained. */
static void record(const unsigned char *buf, size_t n, stress_counter *c)
{
    for (size_t i = 0; i < n; i++) {
        item it = { 0, 0 };
        memcpy(&it, buf + i * g.item_size, g.item_size);
        unsigned p = (unsigned)(it.id >> 32), s = (uint32_t)it.id;
        STRESS_ENSURE(p < g.nprod && s < g.quota[p], "received a garbage id %#" PRIx64, it.id);
        STRESS_ENSURE(g.item_size < 16 || it.check == check_of(it.id),
                      "torn item: id %#" PRIx64 " check %#" PRIx64, it.id, it.check);
        /* Relaxed: as flags. */
        atomic_fetch_add_explicit(&g.recvd[p][s], 1, memory_order_relaxed);
    }
    stress_count_n(c, n);
}

/* ---- handles ----------------------------------------------------------------- */

static void release_tx(unsigned p)
{
    if (!g.tx_live[p])
        return;
    g.tx_live[p] = false;
    weft_chan_tx_drop(&g.tx[p]);
}

/* The last receiver released closes the channel and drains it before the
 * drop, so the drop discards nothing. try_recv_many at random. */
static void release_rx(unsigned c, uint64_t *rng)
{
    if (!g.rx_live[c])
        return;
    g.rx_live[c] = false;
    /* AcqRel: the last one sees the others' releases (nothing rides on
     * it but the count). */
    if (atomic_fetch_sub_explicit(&g.rx_left, 1, memory_order_acq_rel) == 1) {
        weft_chan_rx_close(&g.rx[c]);
        unsigned char buf[MANY_MAX * ITEM_MAX];
        for (;;) {
            long r;
            if (rng_next32(rng) % 2) {
                r = weft_chan_try_recv(&g.rx[c], buf);
                r = r == 0 ? 1 : r;
            } else {
                r = weft_chan_try_recv_many(&g.rx[c], buf, 1 + rng_next32(rng) % MANY_MAX);
            }
            if (r > 0) {
                record(buf, (size_t)r, &g.drained);
            } else if (r == -EAGAIN) {
                /* A send claimed a slot before the close and has not
                 * written it yet. */
                sched_yield();
            } else {
                STRESS_ENSURE(r == -EPIPE, "drain: %ld", r);
                break;
            }
        }
    }
    weft_chan_rx_drop(&g.rx[c]);
}

/* ---- oneshot pairs ---------------------------------------------------------- */

/* Pair k's value: an id no mpsc item has, and its check word. */
static item os_item(unsigned k)
{
    item it = { (uint64_t)0xa5 << 56 | k, 0 };
    it.check = check_of(it.id);
    return it;
}

static void os_tx_done(unsigned k, uint8_t out)
{
    /* Relaxed: read by the main thread after every actor is joined. */
    uint8_t prev = atomic_exchange_explicit(&g.os_tx_out[k], out, memory_order_relaxed);
    STRESS_ENSURE(prev == 0, "oneshot %u: sender outcome %u then %u", k, prev, out);
}

/* The receiving end of pair k finished with `out` (`it`: the value taken,
 * for RECEIVED and DRAINED). */
static void os_rx_done(unsigned k, uint8_t out, const item *it)
{
    if (out == OS_RX_RECEIVED || out == OS_RX_DRAINED) {
        item want = os_item(k);
        STRESS_ENSURE(it->id == want.id && it->check == want.check,
                      "oneshot %u: received %#" PRIx64 "/%#" PRIx64, k, it->id, it->check);
    }
    uint8_t prev = atomic_exchange_explicit(&g.os_rx_out[k], out, memory_order_relaxed);
    STRESS_ENSURE(prev == 0, "oneshot %u: receiver outcome %u then %u", k, prev, out);
}

/* The outcome of a receive or try_recv that returned `r`: true when the
 * receiver is done. */
static bool os_rx_result(unsigned k, int r, const item *it)
{
    if (r == -EAGAIN)
        return false;
    STRESS_ENSURE(r == 0 || r == -EPIPE, "oneshot %u: receive: %d", k, r);
    os_rx_done(k, r == 0 ? OS_RX_RECEIVED : OS_RX_EPIPE, it);
    return true;
}

/* The sending end of pair k: sends (it fails only if the receiver is
 * gone, which `closed_seen` says it is) or, at random, drops unsent. */
static void os_send(unsigned k, bool closed_seen, uint64_t *rng)
{
    if (rng_next32(rng) % 5 == 0) {
        os_tx_done(k, OS_TX_UNSENT);
        weft_oneshot_tx_drop(&g.os_tx[k]);
        return;
    }
    item it = os_item(k);
    int r = weft_oneshot_send(&g.os_tx[k], &it);
    STRESS_ENSURE(r == 0 || r == -EPIPE, "oneshot %u: send: %d", k, r);
    STRESS_ENSURE(!closed_seen || r == -EPIPE, "oneshot %u: send %d after closed completed", k, r);
    os_tx_done(k, r == 0 ? OS_TX_SENT : OS_TX_RETURNED);
}

/* Release the receiving end of pair k: if it has no outcome yet, take
 * what is there first (so a value is never discarded unseen), then drop. */
static void os_rx_release(unsigned k)
{
    if (!g.os_rx_live[k])
        return;
    g.os_rx_live[k] = false;
    if (atomic_load_explicit(&g.os_rx_out[k], memory_order_relaxed) == 0) {
        item it = { 0, 0 };
        int r = weft_oneshot_try_recv(&g.os_rx[k], &it);
        STRESS_ENSURE(r == 0 || r == -EPIPE || r == -EAGAIN, "oneshot %u: try_recv: %d", k, r);
        os_rx_done(k, r == 0 ? OS_RX_DRAINED : r == -EPIPE ? OS_RX_EPIPE : OS_RX_DROPPED, &it);
    }
    weft_oneshot_rx_drop(&g.os_rx[k]);
}

/* ---- broadcast ---------------------------------------------------------------- */

static item bc_item(uint64_t id)
{
    item it = { id, check_of(id) };
    return it;
}

/* Sender s's next id: its number and sequence, tagged apart from the
 * others'. */
static uint64_t bc_take_id(unsigned s)
{
    return (uint64_t)0x3b << 56 | (uint64_t)s << 32 | g.bnext[s]++;
}

static void bc_resolve(uint64_t id, uint8_t f)
{
    unsigned s = (unsigned)(id >> 32) & 0xff, q = (uint32_t)id;
    /* Relaxed: read by the main thread after every actor is joined. */
    uint8_t prev = atomic_fetch_or_explicit(&g.bflags[s][q], f, memory_order_relaxed);
    STRESS_ENSURE(prev == 0, "broadcast id %#" PRIx64 " resolved twice", id);
    stress_count(f == F_SENT ? &g.bc_sent : &g.bc_returned);
}

/* A finished send of `id` (0 or -EPIPE): true when no receiver is left. */
static bool bc_send_done(uint64_t id, int r)
{
    STRESS_ENSURE(r == 0 || r == -EPIPE, "broadcast send: %d", r);
    bc_resolve(id, r == 0 ? F_SENT : F_RETURNED);
    return r == -EPIPE;
}

/* Receiver k's receive returned `r` (0 with `it`, n > 0 missed, -EPIPE,
 * -EAGAIN): logs it; true when the receiver is done (-EPIPE). */
static bool bc_recv_done(unsigned k, int64_t r, const item *it)
{
    if (r == -EAGAIN)
        return false;
    if (r == -EPIPE) {
        g.brx_full[k] = true;
        return true;
    }
    STRESS_ENSURE(r >= 0, "broadcast receive: %" PRId64, r);
    STRESS_ENSURE(g.blen[k] < MAX_BLOG, "broadcast receiver %u: log full", k);
    if (r > 0) {
        STRESS_ENSURE(g.bc_mode == WEFT_BROADCAST_LAG, "lag notice %" PRId64 " in WAIT mode", r);
        g.blog[k][g.blen[k]++] = BLAG | (uint64_t)r;
        stress_count(&g.bc_lag_notices);
        stress_count_n(&g.bc_missed, (uint64_t)r);
        return false;
    }
    unsigned s = (unsigned)(it->id >> 32) & 0xff, q = (uint32_t)it->id;
    STRESS_ENSURE(it->id >> 56 == 0x3b && s < g.nbtx && q < g.bquota[s] &&
                      it->check == check_of(it->id),
                  "broadcast receiver %u: garbage item %#" PRIx64 "/%#" PRIx64, k, it->id,
                  it->check);
    g.blog[k][g.blen[k]++] = it->id;
    stress_count(&g.bc_received);
    return false;
}

static void bc_release_tx(unsigned s)
{
    if (g.btx_live[s]) {
        g.btx_live[s] = false;
        weft_broadcast_tx_drop(&g.btx[s]);
    }
}

/* A late receiver subscribes through its own sender, then drops it. */
static void bc_subscribe(unsigned k)
{
    int rc = weft_broadcast_subscribe(&g.bsub[k], &g.brx[k]);
    STRESS_ENSURE(rc == 0, "broadcast subscribe: %s", weft_strerror(rc));
    g.brx_live[k] = true;
    g.bsub_live[k] = false;
    weft_broadcast_tx_drop(&g.bsub[k]);
    stress_count(&g.bc_late_subscribes);
}

static void bc_release_rx(unsigned k)
{
    if (g.bsub_live[k]) {
        g.bsub_live[k] = false;
        weft_broadcast_tx_drop(&g.bsub[k]);
    }
    if (g.brx_live[k]) {
        g.brx_live[k] = false;
        weft_broadcast_rx_drop(&g.brx[k]);
    }
}

/* ---- watch -------------------------------------------------------------------- */

static void w_make(uint64_t v, wvalue *out)
{
    out->w[0] = v;
    for (unsigned i = 1; i < WWORDS; i++)
        out->w[i] = mix64(v * WWORDS + i);
}

/* Check a value receiver k read: whole, a version that was (or is being)
 * sent, not older than what it read before (`*last`). */
static uint64_t w_check(unsigned k, const wvalue *val, uint64_t *last)
{
    uint64_t v = val->w[0];
    for (unsigned i = 1; i < WWORDS; i++)
        STRESS_ENSURE(val->w[i] == mix64(v * WWORDS + i),
                      "watch receiver %u: torn value (version %" PRIu64 ", word %u)", k, v, i);
    STRESS_ENSURE(v <= g.wversions, "watch receiver %u: version %" PRIu64 " never sent", k, v);
    STRESS_ENSURE(v >= *last, "watch receiver %u: version %" PRIu64 " after %" PRIu64, k, v,
                  *last);
    *last = v;
    stress_count(&g.w_reads);
    return v;
}

/* Publish version v. */
static void w_send(uint64_t v)
{
    wvalue val;
    w_make(v, &val);
    int rc = weft_watch_send(&g.wtx, &val);
    STRESS_ENSURE(rc == 0, "watch send: %s", weft_strerror(rc));
    g.w_last_sent = v;
    stress_count(&g.w_sent);
}

static void w_release_tx(void)
{
    if (g.wtx_live) {
        g.wtx_live = false;
        weft_watch_tx_drop(&g.wtx);
    }
}

static void w_release_rx(unsigned k)
{
    if (g.wrx_live[k]) {
        g.wrx_live[k] = false;
        weft_watch_rx_drop(&g.wrx[k]);
    }
}

/* changed() of receiver k returned `r`: reads the value; true at -EPIPE
 * (the read is then the final value). */
static bool w_changed_done(unsigned k, int r, uint64_t *last)
{
    STRESS_ENSURE(r == 0 || r == -EPIPE, "watch changed: %d", r);
    wvalue val;
    weft_watch_borrow(&g.wrx[k], &val);
    uint64_t v = w_check(k, &val, last);
    if (r == 0) {
        stress_count(&g.w_changed);
        return false;
    }
    /* -EPIPE only once the last version is seen. */
    STRESS_ENSURE(!weft_watch_has_changed(&g.wrx[k]),
                  "watch receiver %u: -EPIPE with a version unseen", k);
    g.w_final[k] = v;
    return true;
}

/* ---- tasks -------------------------------------------------------------------- */

typedef struct actor {
    weft_future base;
    weft_co co;
    unsigned idx, role, who; /* task index; producer or consumer number */
    uint64_t rng;
    bool aborter;
    int how;
    bool inflight;      /* producer: `id` is taken and its fate open */
    bool borrowed_live; /* the borrowed send/recv future still needs its drop */
    bool many;          /* consumer: this op is a recv_many */
    uint64_t ops;
    uint64_t id;
    item it;
    int r;
    size_t n;
    unsigned char buf[MANY_MAX * ITEM_MAX];
    weft_timeout t;
    weft_chan_send sf;
    weft_chan_recv rf;
    weft_chan_recv_many rmf;
    weft_oneshot_recv orf;
    weft_oneshot_closed ocf;
    weft_broadcast_send bsf;
    weft_broadcast_recv brf;
    int64_t r64;
    weft_watch_changed wcf;
    uint64_t wlast; /* watch receiver: the version it read last */
    bool closed_seen; /* oneshot sender: its closed future completed */
    weft_yield y;
    weft_sleep s;
} actor;

static void progress_dropped(void)
{
    pthread_mutex_lock(&g.lock);
    g.dropped++;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

static const stress_abortable g_tasks = { g.joins, g.aborted, &g.published, &g.over };

static void abort_task(unsigned victim, stress_counter *c)
{
    stress_abort_task(&g_tasks, victim, c);
}

static void maybe_abort(actor *a)
{
    if (!a->aborter || rng_next32(&a->rng) % 64 != 0)
        return;
    unsigned n = atomic_load_explicit(&g.published, memory_order_acquire);
    if (n > 0)
        abort_task(rng_next32(&a->rng) % n, &g.aborts_task);
}

static weft_duration random_timeout(uint64_t *r)
{
    uint32_t pick = rng_next32(r);
    return pick % 8 == 0 ? 0 : (weft_duration)rng_next32(r) % (WEFT_MS(1) + 1);
}

static int pick_how(uint64_t *r)
{
    unsigned v = rng_next32(r) % 16;
    return v < 4 ? HOW_AWAIT : v < 6 ? HOW_MANY : v < 9 ? HOW_OWN : v < 12 ? HOW_BORROW
           : v < 15 ? HOW_TRY : HOW_PAUSE;
}

/* The future a consumer's op awaits. */
static weft_future *recv_future(actor *a)
{
    return a->many ? &a->rmf.base : &a->rf.base;
}

static void init_recv(actor *a)
{
    if (a->many)
        weft_chan_recv_many_init(&a->rmf, &g.rx[a->who], a->buf,
                                 1 + rng_next32(&a->rng) % MANY_MAX);
    else
        weft_chan_recv_init(&a->rf, &g.rx[a->who], a->buf);
}

static void *recv_out(actor *a)
{
    return a->many ? (void *)&a->n : (void *)&a->r;
}

/* The outcome of a finished receive: true when closed and drained. */
static bool recv_done(actor *a)
{
    if (a->many) {
        if (a->n == 0)
            return true;
        record(a->buf, a->n, &g.received);
        return false;
    }
    STRESS_ENSURE(a->r == 0 || a->r == -EPIPE, "recv: %d", a->r);
    if (a->r == -EPIPE)
        return true;
    record(a->buf, 1, &g.received);
    return false;
}

static void actor_drop(weft_future *f)
{
    actor *a = (actor *)f;
    weft_co_drop(&a->co); /* the awaited future, timeout, yield or sleep */
    if (a->borrowed_live) {
        /* Its borrowing timeout is gone: the pending future is ours. */
        a->borrowed_live = false;
        weft_future_drop(a->role == ROLE_PRODUCER  ? &a->sf.base
                         : a->role == ROLE_OS_RX ? &a->orf.base
                         : a->role == ROLE_BC_TX ? &a->bsf.base
                         : a->role == ROLE_BC_RX ? &a->brf.base
                         : a->role == ROLE_W_RX  ? &a->wcf.base
                                                 : recv_future(a));
    }
    if (a->role == ROLE_W_TX) {
        w_release_tx();
    } else if (a->role == ROLE_W_RX) {
        w_release_rx(a->who);
    } else if (a->role == ROLE_BC_TX) {
        if (a->inflight) {
            a->inflight = false;
            bc_resolve(a->id, F_RETURNED);
        }
        bc_release_tx(a->who);
    } else if (a->role == ROLE_BC_RX) {
        bc_release_rx(a->who);
    } else if (a->role == ROLE_OS_TX) {
        if (atomic_load_explicit(&g.os_tx_out[a->who], memory_order_relaxed) == 0) {
            os_tx_done(a->who, OS_TX_UNSENT);
            weft_oneshot_tx_drop(&g.os_tx[a->who]);
        }
    } else if (a->role == ROLE_OS_RX) {
        os_rx_release(a->who);
    } else if (a->role == ROLE_PRODUCER) {
        if (a->inflight) {
            /* Dropped with the send pending: nothing was sent. */
            a->inflight = false;
            resolve(a->id, F_RETURNED);
            stress_count(&g.send_aborted);
        }
        release_tx(a->who);
    } else {
        if (!atomic_load_explicit(&g.done[a->idx], memory_order_relaxed))
            stress_count(&g.recv_aborted);
        release_rx(a->who, &a->rng);
    }
    stress_drop_once(&g.drops[a->idx], "task", a->idx);
    if (atomic_load_explicit(&g.done[a->idx], memory_order_acquire))
        stress_count(&g.completed);
    else
        stress_count(&g.cancelled);
    progress_dropped();
}

/* One body for both roles (a coroutine awaits only from its own body). */
WEFT_ASYNC_FN_WITH_DROP(actor, uint64_t)
{
    WEFT_FN_BEGIN;
    if (self->role == ROLE_OS_TX) {
        /* ---- a oneshot's sender: maybe wait a little, maybe wait (under
         * a timeout) for the receiver to go, then send or drop ---- */
        if (rng_next32(&self->rng) % 3 == 0) {
            weft_sleep_init(&self->s,
                            (weft_duration)rng_next32(&self->rng) % (WEFT_US(200) + 1));
            WEFT_FN_AWAIT(&self->s, NULL);
        }
        if (rng_next32(&self->rng) % 3 == 0) {
            weft_oneshot_closed_init(&self->ocf, &g.os_tx[self->who]);
            STRESS_ENSURE(weft_timeout_init(&self->t, &self->ocf.base,
                                            random_timeout(&self->rng)) == 0,
                          "timeout init");
            WEFT_FN_AWAIT(&self->t, NULL);
            self->closed_seen = self->t.status == 0;
            if (self->closed_seen)
                stress_count(&g.os_closed_seen);
        }
        os_send(self->who, self->closed_seen, &self->rng);
    } else if (self->role == ROLE_OS_RX) {
        /* ---- a oneshot's receiver: receive in one of the ways, or drop
         * the receiver early ---- */
        for (;;) {
            self->how = (int)(rng_next32(&self->rng) % 16);
            if (self->how == 0) {
                stress_count(&g.os_rx_early_drops);
                break;
            }
            weft_oneshot_recv_init(&self->orf, &g.os_rx[self->who], &self->it);
            if (self->how < 6) {
                WEFT_FN_AWAIT(&self->orf, &self->r);
            } else if (self->how < 9) {
                STRESS_ENSURE(weft_timeout_init(&self->t, &self->orf.base,
                                                random_timeout(&self->rng)) == 0,
                              "timeout init");
                WEFT_FN_AWAIT(&self->t, &self->r);
                if (self->t.status != 0) {
                    stress_count(&g.os_recv_timeouts);
                    continue;
                }
            } else if (self->how < 12) {
                self->borrowed_live = true;
                STRESS_ENSURE(weft_timeout_borrow_init(&self->t, &self->orf.base,
                                                       random_timeout(&self->rng)) == 0,
                              "borrow init");
                WEFT_FN_AWAIT(&self->t, &self->r);
                self->borrowed_live = false;
                if (self->t.status == 0) {
                    weft_future_drop(&self->orf.base);
                } else if (rng_next32(&self->rng) % 2) {
                    weft_future_drop(&self->orf.base);
                    stress_count(&g.os_recv_borrow_drops);
                    continue;
                } else {
                    WEFT_FN_AWAIT(&self->orf, &self->r);
                }
            } else {
                weft_future_drop(&self->orf.base); /* never polled */
                self->r = weft_oneshot_try_recv(&g.os_rx[self->who], &self->it);
                if (self->r == -EAGAIN) {
                    weft_yield_init(&self->y);
                    WEFT_FN_AWAIT(&self->y, NULL);
                    continue;
                }
            }
            os_rx_result(self->who, self->r, &self->it);
            break;
        }
        os_rx_release(self->who);
    }
    if (self->role == ROLE_BC_TX) {
        /* ---- a broadcast sender ---- */
        while (g.bnext[self->who] < g.bquit_at[self->who]) {
            self->how = pick_how(&self->rng);
            if (self->how == HOW_PAUSE) {
                weft_yield_init(&self->y);
                WEFT_FN_AWAIT(&self->y, NULL);
                continue;
            }
            self->id = bc_take_id(self->who);
            self->it = bc_item(self->id);
            self->inflight = true;
            if (self->how == HOW_TRY) {
                self->r = weft_broadcast_try_send(&g.btx[self->who], &self->it);
                self->inflight = false;
                if (self->r == -EAGAIN) {
                    bc_resolve(self->id, F_RETURNED);
                    continue;
                }
                if (bc_send_done(self->id, self->r))
                    break;
                continue;
            }
            weft_broadcast_send_init(&self->bsf, &g.btx[self->who], &self->it);
            if (self->how == HOW_AWAIT || self->how == HOW_MANY) {
                WEFT_FN_AWAIT(&self->bsf, &self->r);
            } else if (self->how == HOW_OWN) {
                STRESS_ENSURE(weft_timeout_init(&self->t, &self->bsf.base,
                                                random_timeout(&self->rng)) == 0,
                              "timeout init");
                WEFT_FN_AWAIT(&self->t, &self->r);
                if (self->t.status != 0) {
                    self->inflight = false;
                    bc_resolve(self->id, F_RETURNED);
                    stress_count(&g.bc_timeouts);
                    continue;
                }
            } else {
                self->borrowed_live = true;
                STRESS_ENSURE(weft_timeout_borrow_init(&self->t, &self->bsf.base,
                                                       random_timeout(&self->rng)) == 0,
                              "borrow init");
                WEFT_FN_AWAIT(&self->t, &self->r);
                self->borrowed_live = false;
                if (self->t.status == 0) {
                    weft_future_drop(&self->bsf.base);
                } else if (rng_next32(&self->rng) % 2) {
                    weft_future_drop(&self->bsf.base);
                    self->inflight = false;
                    bc_resolve(self->id, F_RETURNED);
                    stress_count(&g.bc_borrow_drops);
                    continue;
                } else {
                    WEFT_FN_AWAIT(&self->bsf, &self->r);
                }
            }
            self->inflight = false;
            if (bc_send_done(self->id, self->r))
                break;
        }
        bc_release_tx(self->who);
    } else if (self->role == ROLE_BC_RX) {
        /* ---- a broadcast receiver ---- */
        if (g.brx_late[self->who]) {
            weft_sleep_init(&self->s,
                            (weft_duration)rng_next32(&self->rng) % (WEFT_US(300) + 1));
            WEFT_FN_AWAIT(&self->s, NULL);
            bc_subscribe(self->who);
        }
        for (;;) {
            self->ops++;
            if (self->ops == g.brx_quit[self->who]) {
                stress_count(&g.bc_rx_early_drops);
                break;
            }
            self->how = pick_how(&self->rng);
            if (self->how == HOW_PAUSE) {
                weft_yield_init(&self->y);
                WEFT_FN_AWAIT(&self->y, NULL);
                continue;
            }
            if (self->how == HOW_TRY) {
                self->r64 = weft_broadcast_try_recv(&g.brx[self->who], &self->it);
                if (self->r64 == -EAGAIN) {
                    stress_count(&g.bc_try_empty);
                    weft_yield_init(&self->y);
                    WEFT_FN_AWAIT(&self->y, NULL);
                    continue;
                }
                if (bc_recv_done(self->who, self->r64, &self->it))
                    break;
                continue;
            }
            weft_broadcast_recv_init(&self->brf, &g.brx[self->who], &self->it);
            if (self->how == HOW_AWAIT || self->how == HOW_MANY) {
                WEFT_FN_AWAIT(&self->brf, &self->r64);
            } else if (self->how == HOW_OWN) {
                STRESS_ENSURE(weft_timeout_init(&self->t, &self->brf.base,
                                                random_timeout(&self->rng)) == 0,
                              "timeout init");
                WEFT_FN_AWAIT(&self->t, &self->r64);
                if (self->t.status != 0) {
                    stress_count(&g.bc_timeouts);
                    continue;
                }
            } else {
                self->borrowed_live = true;
                STRESS_ENSURE(weft_timeout_borrow_init(&self->t, &self->brf.base,
                                                       random_timeout(&self->rng)) == 0,
                              "borrow init");
                WEFT_FN_AWAIT(&self->t, &self->r64);
                self->borrowed_live = false;
                if (self->t.status == 0) {
                    weft_future_drop(&self->brf.base);
                } else if (rng_next32(&self->rng) % 2) {
                    weft_future_drop(&self->brf.base);
                    stress_count(&g.bc_borrow_drops);
                    continue;
                } else {
                    WEFT_FN_AWAIT(&self->brf, &self->r64);
                }
            }
            if (bc_recv_done(self->who, self->r64, &self->it))
                break;
        }
        bc_release_rx(self->who);
    }
    if (self->role == ROLE_W_TX) {
        /* ---- the watch sender: versions 1.. with pauses ---- */
        for (self->id = 1; self->id <= g.wversions; self->id++) {
            w_send(self->id);
            if (rng_next32(&self->rng) % 4 == 0) {
                weft_yield_init(&self->y);
                WEFT_FN_AWAIT(&self->y, NULL);
            } else if (rng_next32(&self->rng) % 64 == 0) {
                weft_sleep_init(&self->s,
                                (weft_duration)rng_next32(&self->rng) % (WEFT_US(200) + 1));
                WEFT_FN_AWAIT(&self->s, NULL);
            }
        }
        w_release_tx();
    } else if (self->role == ROLE_W_RX) {
        /* ---- a watch receiver: wait for changes, read, check ---- */
        for (;;) {
            self->ops++;
            if (self->ops == g.wrx_quit[self->who]) {
                stress_count(&g.w_rx_early_drops);
                break;
            }
            self->how = pick_how(&self->rng);
            if (self->how == HOW_PAUSE || self->how == HOW_TRY) {
                if (self->how == HOW_TRY && weft_watch_has_changed(&g.wrx[self->who])) {
                    wvalue val;
                    weft_watch_borrow_and_update(&g.wrx[self->who], &val);
                    w_check(self->who, &val, &self->wlast);
                }
                weft_yield_init(&self->y);
                WEFT_FN_AWAIT(&self->y, NULL);
                continue;
            }
            weft_watch_changed_init(&self->wcf, &g.wrx[self->who]);
            if (self->how == HOW_AWAIT || self->how == HOW_MANY) {
                WEFT_FN_AWAIT(&self->wcf, &self->r);
            } else if (self->how == HOW_OWN) {
                STRESS_ENSURE(weft_timeout_init(&self->t, &self->wcf.base,
                                                random_timeout(&self->rng)) == 0,
                              "timeout init");
                WEFT_FN_AWAIT(&self->t, &self->r);
                if (self->t.status != 0) {
                    stress_count(&g.w_timeouts);
                    continue;
                }
            } else {
                self->borrowed_live = true;
                STRESS_ENSURE(weft_timeout_borrow_init(&self->t, &self->wcf.base,
                                                       random_timeout(&self->rng)) == 0,
                              "borrow init");
                WEFT_FN_AWAIT(&self->t, &self->r);
                self->borrowed_live = false;
                if (self->t.status == 0) {
                    weft_future_drop(&self->wcf.base);
                } else if (rng_next32(&self->rng) % 2) {
                    weft_future_drop(&self->wcf.base);
                    stress_count(&g.w_borrow_drops);
                    continue;
                } else {
                    WEFT_FN_AWAIT(&self->wcf, &self->r);
                }
            }
            if (w_changed_done(self->who, self->r, &self->wlast))
                break;
        }
        w_release_rx(self->who);
    }
    while (self->role == ROLE_PRODUCER || self->role == ROLE_CONSUMER) {
        maybe_abort(self);
        self->how = pick_how(&self->rng);
        if (self->how == HOW_PAUSE) {
            if (rng_next32(&self->rng) % 4 == 0) {
                weft_sleep_init(&self->s,
                                (weft_duration)rng_next32(&self->rng) % (WEFT_US(200) + 1));
                WEFT_FN_AWAIT(&self->s, NULL);
            } else {
                weft_yield_init(&self->y);
                WEFT_FN_AWAIT(&self->y, NULL);
            }
            continue;
        }
        if (self->role == ROLE_PRODUCER) {
            /* ---- producer: one item per op ---- */
            unsigned p = self->who;
            if (g.next_seq[p] >= g.quit_at[p]) {
                if (g.next_seq[p] < g.quota[p])
                    stress_count(&g.tx_early_drops);
                break;
            }
            self->id = take_id(p, &self->it);
            self->inflight = true;
            if (self->how == HOW_TRY) {
                int r = weft_chan_try_send(&g.tx[p], &self->it);
                self->inflight = false;
                if (r == -EAGAIN) {
                    resolve(self->id, F_RETURNED);
                    stress_count(&g.try_send_fails);
                    continue;
                }
                if (send_done(self->id, r))
                    break;
                continue;
            }
            weft_chan_send_init(&self->sf, &g.tx[p], &self->it);
            if (self->how == HOW_AWAIT || self->how == HOW_MANY) {
                WEFT_FN_AWAIT(&self->sf, &self->r);
            } else if (self->how == HOW_OWN) {
                STRESS_ENSURE(weft_timeout_init(&self->t, &self->sf.base,
                                                random_timeout(&self->rng)) == 0,
                              "timeout init");
                WEFT_FN_AWAIT(&self->t, &self->r);
                if (self->t.status != 0) {
                    /* The timeout dropped the pending send. */
                    self->inflight = false;
                    resolve(self->id, F_RETURNED);
                    stress_count(&g.send_own_timeouts);
                    continue;
                }
            } else {
                self->borrowed_live = true;
                STRESS_ENSURE(weft_timeout_borrow_init(&self->t, &self->sf.base,
                                                       random_timeout(&self->rng)) == 0,
                              "borrow init");
                WEFT_FN_AWAIT(&self->t, &self->r);
                self->borrowed_live = false;
                if (self->t.status == 0) {
                    weft_future_drop(&self->sf.base);
                } else if (rng_next32(&self->rng) % 2) {
                    /* Give up: drop the pending send (it may have been
                     * woken for room: the wake goes on to the next). */
                    weft_future_drop(&self->sf.base);
                    self->inflight = false;
                    resolve(self->id, F_RETURNED);
                    stress_count(&g.send_borrow_drops);
                    continue;
                } else {
                    /* Wait for it after all, where it is. */
                    stress_count(&g.send_borrow_retries);
                    WEFT_FN_AWAIT(&self->sf, &self->r);
                }
            }
            self->inflight = false;
            if (send_done(self->id, self->r))
                break;
        } else {
            /* ---- consumer: one receive per op ---- */
            unsigned c = self->who;
            self->ops++;
            if (self->ops == g.cons_close[c]) {
                weft_chan_rx_close(&g.rx[c]);
                stress_count(&g.rx_closes);
            }
            if (self->ops == g.cons_quit[c]) {
                stress_count(&g.rx_early_drops);
                break;
            }
            self->many = self->how == HOW_MANY || rng_next32(&self->rng) % 4 == 0;
            if (self->how == HOW_TRY) {
                long r = self->many ? weft_chan_try_recv_many(&g.rx[c], self->buf,
                                                             1 + rng_next32(&self->rng) % MANY_MAX)
                                    : weft_chan_try_recv(&g.rx[c], self->buf);
                if (r == -EAGAIN) {
                    stress_count(&g.try_recv_empty);
                    weft_yield_init(&self->y);
                    WEFT_FN_AWAIT(&self->y, NULL);
                    continue;
                }
                if (r == -EPIPE)
                    break;
                STRESS_ENSURE(r >= 0, "try_recv: %ld", r);
                record(self->buf, self->many ? (size_t)r : 1, &g.received);
                continue;
            }
            init_recv(self);
            if (self->how == HOW_AWAIT || self->how == HOW_MANY) {
                WEFT_AWAIT(&self->co, cx, recv_future(self), recv_out(self));
            } else if (self->how == HOW_OWN) {
                STRESS_ENSURE(weft_timeout_init(&self->t, recv_future(self),
                                                random_timeout(&self->rng)) == 0,
                              "timeout init");
                WEFT_FN_AWAIT(&self->t, recv_out(self));
                if (self->t.status != 0) {
                    stress_count(&g.recv_own_timeouts);
                    continue;
                }
            } else {
                self->borrowed_live = true;
                STRESS_ENSURE(weft_timeout_borrow_init(&self->t, recv_future(self),
                                                       random_timeout(&self->rng)) == 0,
                              "borrow init");
                WEFT_FN_AWAIT(&self->t, recv_out(self));
                self->borrowed_live = false;
                if (self->t.status == 0) {
                    weft_future_drop(recv_future(self));
                } else if (rng_next32(&self->rng) % 2) {
                    weft_future_drop(recv_future(self));
                    stress_count(&g.recv_borrow_drops);
                    continue;
                } else {
                    stress_count(&g.recv_borrow_retries);
                    WEFT_AWAIT(&self->co, cx, recv_future(self), recv_out(self));
                }
            }
            if (recv_done(self))
                break;
        }
    }
    if (self->role == ROLE_PRODUCER)
        release_tx(self->who);
    else if (self->role == ROLE_CONSUMER)
        release_rx(self->who, &self->rng);
    atomic_store_explicit(&g.done[self->idx], 1, memory_order_release);
    WEFT_FN_RETURN((uint64_t)self->idx);
    WEFT_FN_END;
}

/* ---- foreign threads --------------------------------------------------------- */

/* A producer thread: send_blocking, try_send, or weft_block_on of a send
 * under an owning timeout. */
static void *producer_main(void *arg)
{
    unsigned p = (unsigned)(uintptr_t)arg;
    uint64_t rng = rng_seed(g.seed ^ (0x7000u + p));
    while (g.next_seq[p] < g.quit_at[p]) {
        item it;
        uint64_t id = take_id(p, &it);
        unsigned how = rng_next32(&rng) % 10;
        int r;
        if (how < 3) {
            r = weft_chan_try_send(&g.tx[p], &it);
            if (r == -EAGAIN) {
                resolve(id, F_RETURNED);
                stress_count(&g.try_send_fails);
                sched_yield();
                continue;
            }
        } else if (how < 6 && g.foreign_timeouts) {
            struct {
                weft_timeout t;
                weft_chan_send sf;
            } f;
            weft_chan_send_init(&f.sf, &g.tx[p], &it);
            STRESS_ENSURE(weft_timeout_init(&f.t, &f.sf.base, random_timeout(&rng)) == 0,
                          "timeout init");
            r = 0;
            int rc = weft_block_on(g.rt, &f.t.base, &r, sizeof r);
            STRESS_ENSURE(rc == 0, "foreign weft_block_on: %s", weft_strerror(rc));
            if (f.t.status != 0) {
                resolve(id, F_RETURNED);
                stress_count(&g.foreign_send_timeouts);
                continue;
            }
        } else {
            r = weft_chan_send_blocking(&g.tx[p], &it);
        }
        if (send_done(id, r))
            break;
    }
    if (g.next_seq[p] == g.quit_at[p] && g.quit_at[p] < g.quota[p])
        stress_count(&g.tx_early_drops);
    release_tx(p);
    return NULL;
}

/* A consumer thread: recv_blocking, recv_many_blocking, try_recv(_many),
 * or weft_block_on of a receive under an owning timeout. */
static void *consumer_main(void *arg)
{
    unsigned c = (unsigned)(uintptr_t)arg;
    uint64_t rng = rng_seed(g.seed ^ (0x9000u + c));
    unsigned char buf[MANY_MAX * ITEM_MAX];
    for (uint64_t ops = 1;; ops++) {
        if (ops == g.cons_close[c]) {
            weft_chan_rx_close(&g.rx[c]);
            stress_count(&g.rx_closes);
        }
        if (ops == g.cons_quit[c]) {
            stress_count(&g.rx_early_drops);
            break;
        }
        unsigned how = rng_next32(&rng) % 10;
        size_t max = 1 + rng_next32(&rng) % MANY_MAX;
        long n;
        if (how < 3) {
            int r = weft_chan_recv_blocking(&g.rx[c], buf);
            n = r == 0 ? 1 : r;
        } else if (how < 5) {
            n = weft_chan_recv_many_blocking(&g.rx[c], buf, max);
        } else if (how < 7) {
            if (how == 5) {
                int r = weft_chan_try_recv(&g.rx[c], buf);
                n = r == 0 ? 1 : r;
            } else {
                n = weft_chan_try_recv_many(&g.rx[c], buf, max);
            }
            if (n == -EAGAIN) {
                stress_count(&g.try_recv_empty);
                sched_yield();
                continue;
            }
        } else if (g.foreign_timeouts) {
            struct {
                weft_timeout t;
                weft_chan_recv_many rf;
            } f;
            weft_chan_recv_many_init(&f.rf, &g.rx[c], buf, max);
            STRESS_ENSURE(weft_timeout_init(&f.t, &f.rf.base, random_timeout(&rng)) == 0,
                          "timeout init");
            size_t got = 0;
            int rc = weft_block_on(g.rt, &f.t.base, &got, sizeof got);
            STRESS_ENSURE(rc == 0, "foreign weft_block_on: %s", weft_strerror(rc));
            if (f.t.status != 0) {
                stress_count(&g.foreign_recv_timeouts);
                continue;
            }
            n = got ? (long)got : -EPIPE;
        } else {
            n = weft_chan_recv_many_blocking(&g.rx[c], buf, max);
        }
        if (n == -EPIPE)
            break;
        STRESS_ENSURE(n > 0, "foreign receive: %ld", n);
        record(buf, (size_t)n, &g.received);
    }
    release_rx(c, &rng);
    return NULL;
}

/* The oneshot ends no task serves: first the senders (send or drop, never
 * waiting), then the receivers (recv_blocking, try_recv until an answer,
 * or an early drop), so a receiver never waits for a sender this thread
 * has yet to serve. */
static void *oneshot_main(void *arg)
{
    uint64_t rng = rng_seed(g.seed ^ (uintptr_t)arg);
    for (unsigned k = 0; k < g.npairs; k++) {
        if (!g.os_tx_foreign[k])
            continue;
        for (unsigned n = rng_next32(&rng) % 200; n > 0; n--)
            sched_yield();
        os_send(k, false, &rng);
    }
    for (unsigned k = 0; k < g.npairs; k++) {
        if (!g.os_rx_foreign[k])
            continue;
        unsigned how = rng_next32(&rng) % 6;
        item it = { 0, 0 };
        if (how == 0) {
            stress_count(&g.os_rx_early_drops);
        } else if (how < 4) {
            os_rx_result(k, weft_oneshot_recv_blocking(&g.os_rx[k], &it), &it);
        } else {
            while (!os_rx_result(k, weft_oneshot_try_recv(&g.os_rx[k], &it), &it))
                sched_yield();
        }
        os_rx_release(k);
    }
    return NULL;
}

/* A foreign broadcast sender: send_blocking or try_send. */
static void *bc_sender_main(void *arg)
{
    unsigned s = (unsigned)(uintptr_t)arg;
    uint64_t rng = rng_seed(g.seed ^ (0xb100u + s));
    while (g.bnext[s] < g.bquit_at[s]) {
        uint64_t id = bc_take_id(s);
        item it = bc_item(id);
        int r;
        if (rng_next32(&rng) % 3 == 0) {
            r = weft_broadcast_try_send(&g.btx[s], &it);
            if (r == -EAGAIN) {
                bc_resolve(id, F_RETURNED);
                sched_yield();
                continue;
            }
        } else {
            r = weft_broadcast_send_blocking(&g.btx[s], &it);
        }
        if (bc_send_done(id, r))
            break;
    }
    bc_release_tx(s);
    return NULL;
}

/* A foreign broadcast receiver: recv_blocking or try_recv. */
static void *bc_receiver_main(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg;
    uint64_t rng = rng_seed(g.seed ^ (0xb200u + k));
    if (g.brx_late[k]) {
        for (unsigned n = rng_next32(&rng) % 500; n > 0; n--)
            sched_yield();
        bc_subscribe(k);
    }
    for (uint64_t ops = 1;; ops++) {
        if (ops == g.brx_quit[k]) {
            stress_count(&g.bc_rx_early_drops);
            break;
        }
        item it = { 0, 0 };
        int64_t r;
        if (rng_next32(&rng) % 3 == 0) {
            r = weft_broadcast_try_recv(&g.brx[k], &it);
            if (r == -EAGAIN) {
                stress_count(&g.bc_try_empty);
                sched_yield();
                continue;
            }
        } else {
            r = weft_broadcast_recv_blocking(&g.brx[k], &it);
        }
        if (bc_recv_done(k, r, &it))
            break;
    }
    bc_release_rx(k);
    return NULL;
}

/* The watch sender as a foreign thread. */
static void *w_sender_main(void *arg)
{
    uint64_t rng = rng_seed(g.seed ^ (uintptr_t)arg);
    for (uint64_t v = 1; v <= g.wversions; v++) {
        w_send(v);
        for (unsigned n = rng_next32(&rng) % 8; n > 0; n--)
            sched_yield();
    }
    w_release_tx();
    return NULL;
}

/* A watch receiver as a foreign thread: changed_blocking, or has_changed
 * and borrow_and_update. */
static void *w_receiver_main(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg;
    uint64_t rng = rng_seed(g.seed ^ (0xc300u + k)), last = 0;
    for (uint64_t ops = 1;; ops++) {
        if (ops == g.wrx_quit[k]) {
            stress_count(&g.w_rx_early_drops);
            break;
        }
        if (rng_next32(&rng) % 3 == 0) {
            if (weft_watch_has_changed(&g.wrx[k])) {
                wvalue val;
                weft_watch_borrow_and_update(&g.wrx[k], &val);
                w_check(k, &val, &last);
            }
            sched_yield();
            continue;
        }
        if (w_changed_done(k, weft_watch_changed_blocking(&g.wrx[k]), &last))
            break;
    }
    w_release_rx(k);
    return NULL;
}

/* Aborts random tasks at random moments. */
static void *aborter_main(void *arg)
{
    stress_abort_at_random(&g_tasks, g.seed ^ (uintptr_t)arg, 4, &g.aborts_foreign);
    return NULL;
}

/* ---- a round -------------------------------------------------------------- */

static const size_t caps[] = { 1, 1, 2, 3, 4, 7, 16, 64 };

static void round_reset(uint64_t seed)
{
    g.seed = seed;
    uint64_t r = rng_seed(seed);
    g.kind = (int)(rng_next32(&r) % NKINDS);
    g.cap = caps[rng_next32(&r) % (sizeof caps / sizeof caps[0])];
    g.item_size = rng_next32(&r) % 2 ? 16 : 8;
    g.shutdown_mid = rng_next32(&r) % 4 == 0;
    g.foreign_timeouts = !g.shutdown_mid;
    atomic_store_explicit(&g.over, false, memory_order_relaxed);

    unsigned task_prod = 1 + rng_next32(&r) % 6, foreign_prod = rng_next32(&r) % 3;
    g.nprod = task_prod + foreign_prod;
    for (unsigned p = 0; p < g.nprod; p++) {
        g.prod_foreign[p] = p >= task_prod;
        g.quota[p] = 1 + rng_next32(&r) % MAX_QUOTA;
        g.quit_at[p] = rng_next32(&r) % 6 == 0 ? rng_next32(&r) % g.quota[p] : g.quota[p];
        g.next_seq[p] = 0;
        for (unsigned s = 0; s < MAX_QUOTA; s++) {
            atomic_store_explicit(&g.flags[p][s], 0, memory_order_relaxed);
            atomic_store_explicit(&g.recvd[p][s], 0, memory_order_relaxed);
        }
    }
    g.npairs = rng_next32(&r) % (MAX_PAIRS + 1);
    for (unsigned k = 0; k < g.npairs; k++) {
        g.os_tx_foreign[k] = rng_next32(&r) % 4 == 0;
        g.os_rx_foreign[k] = rng_next32(&r) % 3 == 0;
        atomic_store_explicit(&g.os_tx_out[k], 0, memory_order_relaxed);
        atomic_store_explicit(&g.os_rx_out[k], 0, memory_order_relaxed);
    }
    g.bc_on = rng_next32(&r) % 2 == 0;
    g.nbtx = g.nbrx = 0;
    if (g.bc_on) {
        g.bc_mode = rng_next32(&r) % 2 ? WEFT_BROADCAST_LAG : WEFT_BROADCAST_WAIT;
        g.bc_cap = (size_t)1 << rng_next32(&r) % 5;
        /* Half the rounds have one sender: its order is the order. */
        g.nbtx = rng_next32(&r) % 2 ? 1 : 1 + rng_next32(&r) % MAX_BTX;
        g.nbrx = 1 + rng_next32(&r) % MAX_BRX;
        for (unsigned b = 0; b < g.nbtx; b++) {
            g.btx_foreign[b] = rng_next32(&r) % 4 == 0;
            g.bquota[b] = 1 + rng_next32(&r) % BQUOTA;
            g.bquit_at[b] = rng_next32(&r) % 6 == 0 ? rng_next32(&r) % g.bquota[b] : g.bquota[b];
            g.bnext[b] = 0;
            for (unsigned q = 0; q < BQUOTA; q++)
                atomic_store_explicit(&g.bflags[b][q], 0, memory_order_relaxed);
        }
        for (unsigned k = 0; k < g.nbrx; k++) {
            g.brx_foreign[k] = rng_next32(&r) % 4 == 0;
            g.brx_late[k] = k > 0 && rng_next32(&r) % 3 == 0;
            g.brx_quit[k] = rng_next32(&r) % 6 == 0 ? 1 + rng_next32(&r) % 400 : 0;
            g.blen[k] = 0;
            g.brx_full[k] = false;
        }
    }
    g.w_on = rng_next32(&r) % 2 == 0;
    g.nwrx = 0;
    if (g.w_on) {
        g.wtx_foreign = rng_next32(&r) % 4 == 0;
        g.wversions = 1 + rng_next32(&r) % WVERSIONS;
        g.nwrx = 1 + rng_next32(&r) % MAX_WRX;
        g.w_last_sent = 0;
        for (unsigned k = 0; k < g.nwrx; k++) {
            g.wrx_foreign[k] = rng_next32(&r) % 4 == 0;
            g.wrx_quit[k] = rng_next32(&r) % 6 == 0 ? 1 + rng_next32(&r) % 400 : 0;
            g.w_final[k] = ~(uint64_t)0;
        }
    }
    g.ncons = g.kind == KIND_MPMC ? 1 + rng_next32(&r) % 4 : 1;
    for (unsigned c = 0; c < g.ncons; c++) {
        g.cons_foreign[c] = rng_next32(&r) % 3 == 0;
        /* Receive ops, not items: a quitter stops after 1-600. */
        g.cons_quit[c] = rng_next32(&r) % 5 == 0 ? 1 + rng_next32(&r) % 600 : 0;
        g.cons_close[c] = rng_next32(&r) % 6 == 0 ? 1 + rng_next32(&r) % 600 : 0;
    }
    atomic_store_explicit(&g.published, 0, memory_order_relaxed);
    for (unsigned i = 0; i < MAX_TASKS; i++) {
        atomic_store_explicit(&g.drops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g.done[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g.aborted[i], 0, memory_order_relaxed);
    }
    g.dropped = 0;
}

static void make_channel(void)
{
    int rc = g.kind == KIND_MPSC        ? weft_mpsc_new(&g.tx[0], &g.rx[0], g.item_size, g.cap)
             : g.kind == KIND_UNBOUNDED ? weft_mpsc_unbounded_new(&g.tx[0], &g.rx[0], g.item_size)
                                        : weft_mpmc_new(&g.tx[0], &g.rx[0], g.item_size, g.cap);
    STRESS_ENSURE(rc == 0, "channel new: %s", weft_strerror(rc));
    for (unsigned p = 1; p < g.nprod; p++)
        STRESS_ENSURE(weft_chan_tx_clone(&g.tx[0], &g.tx[p]) == 0, "tx clone");
    for (unsigned c = 1; c < g.ncons; c++)
        STRESS_ENSURE(weft_chan_rx_clone(&g.rx[0], &g.rx[c]) == 0, "rx clone");
    for (unsigned p = 0; p < g.nprod; p++)
        g.tx_live[p] = true;
    for (unsigned c = 0; c < g.ncons; c++)
        g.rx_live[c] = true;
    atomic_store_explicit(&g.rx_left, g.ncons, memory_order_relaxed);
    if (g.bc_on) {
        rc = weft_broadcast_new(&g.btx[0], &g.brx[0], sizeof(item), g.bc_cap, g.bc_mode);
        STRESS_ENSURE(rc == 0, "broadcast new: %s", weft_strerror(rc));
        for (unsigned b = 1; b < g.nbtx; b++)
            STRESS_ENSURE(weft_broadcast_tx_clone(&g.btx[0], &g.btx[b]) == 0, "clone");
        for (unsigned b = 0; b < g.nbtx; b++)
            g.btx_live[b] = true;
        g.brx_live[0] = true;
        g.bsub_live[0] = false;
        for (unsigned k = 1; k < g.nbrx; k++) {
            g.bsub_live[k] = g.brx_late[k];
            g.brx_live[k] = !g.brx_late[k];
            rc = g.brx_late[k] ? weft_broadcast_tx_clone(&g.btx[0], &g.bsub[k])
                               : weft_broadcast_subscribe(&g.btx[0], &g.brx[k]);
            STRESS_ENSURE(rc == 0, "broadcast subscribe/clone: %s", weft_strerror(rc));
        }
    }
    if (g.w_on) {
        wvalue v0;
        w_make(0, &v0);
        rc = weft_watch_new(&g.wtx, &g.wrx[0], sizeof v0, &v0);
        STRESS_ENSURE(rc == 0, "watch new: %s", weft_strerror(rc));
        g.wtx_live = true;
        g.wrx_live[0] = true;
        for (unsigned k = 1; k < g.nwrx; k++) {
            STRESS_ENSURE(weft_watch_subscribe(&g.wtx, &g.wrx[k]) == 0, "watch subscribe");
            g.wrx_live[k] = true;
        }
    }
    for (unsigned k = 0; k < g.npairs; k++) {
        rc = weft_oneshot_new(&g.os_tx[k], &g.os_rx[k], sizeof(item));
        STRESS_ENSURE(rc == 0, "oneshot new: %s", weft_strerror(rc));
        g.os_rx_live[k] = true;
    }
}

/* Broadcast: every send resolved once; every receiver saw items that were
 * sent, each sender's in its order, none twice. Where the order of all
 * sends is known (one sender: its successful sends; else a receiver that
 * saw everything from the start without lagging), each receiver's items
 * are consecutive in it, a lag notice of n skipping exactly n; a receiver
 * that ran from the start to -EPIPE saw every item sent or was told it
 * missed it. */
static int bpos[MAX_BTX][BQUOTA]; /* position in the order of all sends, or -1 */

static void check_broadcast(void)
{
    if (!g.bc_on)
        return;
    uint64_t total = 0;
    for (unsigned b = 0; b < g.nbtx; b++) {
        STRESS_ENSURE(!g.btx_live[b], "broadcast sender %u never dropped", b);
        for (unsigned q = 0; q < g.bquota[b]; q++) {
            uint8_t f = atomic_load_explicit(&g.bflags[b][q], memory_order_relaxed);
            STRESS_ENSURE(q >= g.bnext[b] || f == F_SENT || f == F_RETURNED,
                          "broadcast id %u/%u unresolved (%u)", b, q, f);
            total += f == F_SENT;
            bpos[b][q] = -1;
        }
    }
    /* The order of all sends, if known. */
    int ref = -1; /* a receiver whose log is the order; -2: sender 0's */
    if (g.nbtx == 1) {
        ref = -2;
        int n = 0;
        for (unsigned q = 0; q < g.bquota[0]; q++)
            if (atomic_load_explicit(&g.bflags[0][q], memory_order_relaxed) == F_SENT)
                bpos[0][q] = n++;
    } else {
        for (unsigned k = 0; k < g.nbrx && ref == -1; k++) {
            bool lagged = false;
            for (unsigned i = 0; i < g.blen[k]; i++)
                lagged |= (g.blog[k][i] & BLAG) != 0;
            if (!g.brx_late[k] && g.brx_full[k] && !lagged)
                ref = (int)k;
        }
        if (ref >= 0)
            for (unsigned i = 0; i < g.blen[ref]; i++) {
                uint64_t id = g.blog[ref][i];
                bpos[(id >> 32) & 0xff][(uint32_t)id] = (int)i;
            }
    }
    for (unsigned k = 0; k < g.nbrx; k++) {
        STRESS_ENSURE(!g.brx_live[k] && !g.bsub_live[k], "broadcast receiver %u never dropped", k);
        int64_t last_seq[MAX_BTX] = { -1, -1, -1 };
        int64_t last = g.brx_late[k] ? INT64_MIN : -1; /* position of the last item seen */
        uint64_t gap = 0, items = 0, missed = 0;
        for (unsigned i = 0; i < g.blen[k]; i++) {
            uint64_t e = g.blog[k][i];
            if (e & BLAG) {
                gap += e & ~BLAG;
                missed += e & ~BLAG;
                continue;
            }
            unsigned b = (unsigned)(e >> 32) & 0xff, q = (uint32_t)e;
            STRESS_ENSURE(atomic_load_explicit(&g.bflags[b][q], memory_order_relaxed) == F_SENT,
                          "broadcast receiver %u got %u/%u, which was not sent", k, b, q);
            STRESS_ENSURE((int64_t)q > last_seq[b],
                          "broadcast receiver %u: %u/%u after %u/%" PRId64 " (order, duplicate)",
                          k, b, q, b, last_seq[b]);
            last_seq[b] = q;
            items++;
            if (ref != -1) {
                int p = bpos[b][q];
                STRESS_ENSURE(p >= 0, "broadcast receiver %u: %u/%u not in the order", k, b, q);
                STRESS_ENSURE(last == INT64_MIN || p == last + 1 + (int64_t)gap,
                              "broadcast receiver %u: item at %d after %" PRId64
                              " with %" PRIu64 " missed (mode %d cap %zu)",
                              k, p, last, gap, g.bc_mode, g.bc_cap);
                last = p;
            }
            gap = 0;
        }
        if (!g.brx_late[k] && g.brx_full[k])
            STRESS_ENSURE(items + missed == total,
                          "broadcast receiver %u: %" PRIu64 " items + %" PRIu64
                          " missed != %" PRIu64 " sent (mode %d cap %zu)",
                          k, items, missed, total, g.bc_mode, g.bc_cap);
        if (ref != -1 && g.brx_full[k] && last != INT64_MIN)
            STRESS_ENSURE(last + 1 + (int64_t)gap == (int64_t)total,
                          "broadcast receiver %u ends at %" PRId64 " of %" PRIu64, k, last,
                          total);
    }
    if (ref != -1)
        stress_count(&g.bc_checked_in_order);
    stress_count(g.bc_mode == WEFT_BROADCAST_LAG ? &g.bc_rounds_lag : &g.bc_rounds_wait);
}

/* Watch: every handle dropped; a receiver that saw -EPIPE read the last
 * version sent (torn values and versions going back failed earlier). */
static void check_watch(void)
{
    if (!g.w_on)
        return;
    STRESS_ENSURE(!g.wtx_live, "watch sender never dropped");
    for (unsigned k = 0; k < g.nwrx; k++) {
        STRESS_ENSURE(!g.wrx_live[k], "watch receiver %u never dropped", k);
        if (g.w_final[k] == ~(uint64_t)0)
            continue;
        STRESS_ENSURE(g.w_final[k] == g.w_last_sent,
                      "watch receiver %u: read %" PRIu64 " after -EPIPE, last sent %" PRIu64, k,
                      g.w_final[k], g.w_last_sent);
        stress_count(&g.w_finals_checked);
    }
    stress_count(&g.w_rounds);
    /* Old values are freed a grace period after their replacement: let
     * that happen now, so a leak checker at exit finds nothing pending. */
    weft_watch_barrier();
}

/* Each oneshot pair's two outcomes agree: a value received was sent; a
 * receiver told -EPIPE had a sender that dropped unsent (a sent value
 * there is lost); a send that failed found the receiver dropped. A value
 * sent to a receiver dropped before it arrived is discarded, counted. */
static void check_oneshots(void)
{
    for (unsigned k = 0; k < g.npairs; k++) {
        uint8_t t = atomic_load_explicit(&g.os_tx_out[k], memory_order_relaxed);
        uint8_t r = atomic_load_explicit(&g.os_rx_out[k], memory_order_relaxed);
        STRESS_ENSURE(t != 0 && r != 0 && g.os_rx_live[k] == false,
                      "oneshot %u unfinished: sender %u receiver %u", k, t, r);
        STRESS_ENSURE((r != OS_RX_RECEIVED && r != OS_RX_DRAINED) || t == OS_TX_SENT,
                      "oneshot %u: received a value its sender did not send (%u)", k, t);
        STRESS_ENSURE(r != OS_RX_EPIPE || t == OS_TX_UNSENT,
                      "oneshot %u: receiver saw -EPIPE, sender outcome %u (lost)", k, t);
        STRESS_ENSURE(t != OS_TX_RETURNED || r == OS_RX_DROPPED,
                      "oneshot %u: send failed, receiver outcome %u", k, r);
        if (r == OS_RX_RECEIVED)
            stress_count(&g.os_received);
        else if (r == OS_RX_DRAINED)
            stress_count(&g.os_drained);
        else if (r == OS_RX_EPIPE)
            stress_count(&g.os_epipe);
        else if (t == OS_TX_SENT)
            stress_count(&g.os_discarded);
        if (t == OS_TX_RETURNED)
            stress_count(&g.os_returned);
        else if (t == OS_TX_UNSENT)
            stress_count(&g.os_unsent);
    }
    stress_count_n(&g.os_pairs, g.npairs);
}

/* Lost and duplicated ids, and ids a producer took but never resolved. */
static void check_ids(void)
{
    uint64_t lost = 0, dup = 0, open = 0, both = 0;
    uint64_t first_lost = 0, first_dup = 0;
    for (unsigned p = 0; p < g.nprod; p++) {
        for (unsigned s = 0; s < g.quota[p]; s++) {
            uint64_t id = (uint64_t)p << 32 | s;
            uint8_t f = atomic_load_explicit(&g.flags[p][s], memory_order_relaxed);
            uint8_t n = atomic_load_explicit(&g.recvd[p][s], memory_order_relaxed);
            if (s < g.next_seq[p] && f == 0)
                open++;
            if (f == (F_SENT | F_RETURNED))
                both++;
            if (f == F_SENT && n == 0 && lost++ == 0)
                first_lost = id;
            if ((n > 1 || (n == 1 && f != F_SENT)) && dup++ == 0)
                first_dup = id;
        }
    }
    /* Counted, so the summary line states them (any nonzero fails now). */
    stress_count_n(&g.lost, lost);
    stress_count_n(&g.duplicated, dup);
    STRESS_ENSURE(lost == 0 && dup == 0 && open == 0 && both == 0,
                  "ids: lost=%" PRIu64 " (first %#" PRIx64 ") duplicated=%" PRIu64
                  " (first %#" PRIx64 ") unresolved=%" PRIu64 " sent_and_returned=%" PRIu64
                  " (kind %d cap %zu item %zu)",
                  lost, first_lost, dup, first_dup, open, both, g.kind, g.cap, g.item_size);
}

static void run_round(uint64_t seed, const stress_options *opt)
{
    round_reset(seed);
    weft_rt *rt = stress_rt_new(opt);
    g.rt = rt;
    make_channel();

    /* Tasks are the non-foreign actors, producers first. */
    unsigned task_role[MAX_TASKS], task_who[MAX_TASKS];
    g.ntasks = 0;
    for (unsigned p = 0; p < g.nprod; p++)
        if (!g.prod_foreign[p]) {
            task_role[g.ntasks] = ROLE_PRODUCER;
            task_who[g.ntasks++] = p;
        }
    for (unsigned c = 0; c < g.ncons; c++)
        if (!g.cons_foreign[c]) {
            task_role[g.ntasks] = ROLE_CONSUMER;
            task_who[g.ntasks++] = c;
        }
    bool os_thread = false;
    for (unsigned k = 0; k < g.npairs; k++) {
        if (!g.os_tx_foreign[k]) {
            task_role[g.ntasks] = ROLE_OS_TX;
            task_who[g.ntasks++] = k;
        }
        if (!g.os_rx_foreign[k]) {
            task_role[g.ntasks] = ROLE_OS_RX;
            task_who[g.ntasks++] = k;
        }
        os_thread |= g.os_tx_foreign[k] || g.os_rx_foreign[k];
    }
    if (g.w_on && !g.wtx_foreign) {
        task_role[g.ntasks] = ROLE_W_TX;
        task_who[g.ntasks++] = 0;
    }
    for (unsigned k = 0; k < g.nwrx; k++)
        if (!g.wrx_foreign[k]) {
            task_role[g.ntasks] = ROLE_W_RX;
            task_who[g.ntasks++] = k;
        }
    for (unsigned b = 0; b < g.nbtx; b++)
        if (!g.btx_foreign[b]) {
            task_role[g.ntasks] = ROLE_BC_TX;
            task_who[g.ntasks++] = b;
        }
    for (unsigned k = 0; k < g.nbrx; k++)
        if (!g.brx_foreign[k]) {
            task_role[g.ntasks] = ROLE_BC_RX;
            task_who[g.ntasks++] = k;
        }

    pthread_t threads[MAX_PROD + MAX_CONS + 1 + MAX_BTX + MAX_BRX + 1 + MAX_WRX], aborter;
    unsigned nthreads = 0;
    for (unsigned p = 0; p < g.nprod; p++)
        if (g.prod_foreign[p])
            STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, producer_main,
                                         (void *)(uintptr_t)p) == 0,
                          "pthread_create");
    for (unsigned c = 0; c < g.ncons; c++)
        if (g.cons_foreign[c])
            STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, consumer_main,
                                         (void *)(uintptr_t)c) == 0,
                          "pthread_create");
    for (unsigned b = 0; b < g.nbtx; b++)
        if (g.btx_foreign[b])
            STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, bc_sender_main,
                                         (void *)(uintptr_t)b) == 0,
                          "pthread_create");
    for (unsigned k = 0; k < g.nbrx; k++)
        if (g.brx_foreign[k])
            STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, bc_receiver_main,
                                         (void *)(uintptr_t)k) == 0,
                          "pthread_create");
    if (g.w_on && g.wtx_foreign)
        STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, w_sender_main, (void *)55) == 0,
                      "pthread_create");
    for (unsigned k = 0; k < g.nwrx; k++)
        if (g.wrx_foreign[k])
            STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, w_receiver_main,
                                         (void *)(uintptr_t)k) == 0,
                          "pthread_create");
    if (os_thread)
        STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, oneshot_main, (void *)77) == 0,
                      "pthread_create");
    STRESS_ENSURE(pthread_create(&aborter, NULL, aborter_main, (void *)99) == 0, "pthread_create");

    for (unsigned i = 0; i < g.ntasks; i++) {
        actor a = { WEFT_FN_INIT(actor, WEFT_F_SEND), .idx = i, .role = task_role[i],
                    .who = task_who[i] };
        a.rng = rng_seed(seed ^ ((uint64_t)(i + 1) * 0x100000001b3ull));
        a.aborter = rng_next32(&a.rng) % 5 == 0;
        int rc = weft_spawn(rt, &a.base, sizeof a, &g.joins[i]);
        STRESS_ENSURE(rc == 0, "spawn of task %u: %s", i, weft_strerror(rc));
        /* Release: the join handle is initialised before anyone aborts
         * through it (pairs with the acquire loads of `published`). */
        atomic_store_explicit(&g.published, i + 1, memory_order_release);
    }

    pthread_mutex_lock(&g.lock);
    unsigned until = g.ntasks;
    if (g.shutdown_mid && g.ntasks > 0) {
        uint64_t r = rng_seed(seed ^ 0x51);
        until = rng_next32(&r) % g.ntasks;
    }
    while (g.dropped < until)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);

    atomic_store_explicit(&g.over, true, memory_order_release);
    pthread_join(aborter, NULL);
    /* In a round without a mid-flight shutdown the foreign threads may
     * still use the runtime (weft_block_on): they finish first. In one
     * with it they use no runtime, and the shutdown drops the tasks still
     * running and with them their handles, which lets the threads see
     * their channel closed. */
    if (!g.shutdown_mid)
        for (unsigned i = 0; i < nthreads; i++)
            pthread_join(threads[i], NULL);
    weft_rt_shutdown(rt);
    if (g.shutdown_mid)
        for (unsigned i = 0; i < nthreads; i++)
            pthread_join(threads[i], NULL);

    pthread_mutex_lock(&g.lock);
    unsigned dropped = g.dropped;
    pthread_mutex_unlock(&g.lock);
    STRESS_ENSURE(dropped == g.ntasks, "%u of %u tasks dropped after shutdown", dropped, g.ntasks);
    for (unsigned i = 0; i < g.ntasks; i++) {
        weft_join *j = &g.joins[i];
        uint64_t out;
        stress_join_finished(j, "task", i, &out);
        bool done = atomic_load_explicit(&g.done[i], memory_order_acquire);
        bool may_cancel =
            atomic_load_explicit(&g.aborted[i], memory_order_acquire) || g.shutdown_mid;
        stress_check_join("main", "task", i, j->status, out, done, i, may_cancel);
        weft_future_drop(&j->base);
    }
    for (unsigned p = 0; p < g.nprod; p++)
        STRESS_ENSURE(!g.tx_live[p], "sender %u never dropped", p);
    for (unsigned c = 0; c < g.ncons; c++)
        STRESS_ENSURE(!g.rx_live[c], "receiver %u never dropped", c);
    STRESS_ENSURE(stress_load(&g.completed) + stress_load(&g.cancelled) == g.ntasks,
                  "tasks: %" PRIu64 " completed + %" PRIu64 " cancelled != %u spawned",
                  stress_load(&g.completed), stress_load(&g.cancelled), g.ntasks);
    check_ids();
    check_oneshots();
    check_broadcast();
    check_watch();

    stress_count(g.kind == KIND_MPSC        ? &g.rounds_mpsc
                 : g.kind == KIND_UNBOUNDED ? &g.rounds_unbounded
                                            : &g.rounds_mpmc);
    stress_count_n(&g.rounds_shut_down, g.shutdown_mid);
    stress_count_n(&g.tasks, g.ntasks);
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g.lost, &g.duplicated, &g.rounds_mpsc, &g.rounds_unbounded, &g.rounds_mpmc,
        &g.rounds_shut_down, &g.tasks, &g.completed, &g.cancelled, &g.sent, &g.received,
        &g.drained, &g.returned,
        &g.send_epipe, &g.send_own_timeouts, &g.send_borrow_drops, &g.send_borrow_retries,
        &g.send_aborted, &g.try_send_fails, &g.recv_own_timeouts, &g.recv_borrow_drops,
        &g.recv_borrow_retries, &g.recv_aborted, &g.try_recv_empty, &g.foreign_send_timeouts,
        &g.foreign_recv_timeouts, &g.rx_closes, &g.tx_early_drops, &g.rx_early_drops,
        &g.aborts_task, &g.aborts_foreign, &g.os_pairs, &g.os_received, &g.os_drained,
        &g.os_epipe, &g.os_discarded, &g.os_returned, &g.os_unsent, &g.os_rx_early_drops,
        &g.os_recv_timeouts, &g.os_recv_borrow_drops, &g.os_closed_seen, &g.bc_rounds_lag,
        &g.bc_rounds_wait, &g.bc_checked_in_order, &g.bc_sent, &g.bc_returned, &g.bc_received,
        &g.bc_lag_notices, &g.bc_missed, &g.bc_timeouts, &g.bc_borrow_drops, &g.bc_try_empty,
        &g.bc_late_subscribes, &g.bc_rx_early_drops, &g.w_rounds, &g.w_sent, &g.w_reads,
        &g.w_changed, &g.w_timeouts, &g.w_borrow_drops, &g.w_finals_checked,
        &g.w_rx_early_drops,
    };
    const stress_program p = {
        "stress_channel_storm", run_round, counters, sizeof counters / sizeof counters[0],
        "lost duplicated rounds_mpsc rounds_unbounded rounds_mpmc shut_down_mid_flight tasks "
        "completed cancelled sent received drained returned send_epipe send_own_timeouts "
        "send_borrow_drops send_borrow_retries send_aborted try_send_fails recv_own_timeouts "
        "recv_borrow_drops recv_borrow_retries recv_aborted try_recv_empty "
        "foreign_send_timeouts foreign_recv_timeouts rx_closes tx_early_drops rx_early_drops "
        "aborts_task aborts_foreign oneshots os_received os_drained os_epipe os_discarded "
        "os_returned os_unsent os_rx_early_drops os_recv_timeouts os_recv_borrow_drops "
        "os_closed_seen bc_rounds_lag bc_rounds_wait bc_rounds_order_checked bc_sent "
        "bc_returned bc_received bc_lag_notices bc_missed bc_timeouts bc_borrow_drops "
        "bc_try_empty bc_late_subscribes bc_rx_early_drops w_rounds w_sent w_reads w_changed "
        "w_timeouts w_borrow_drops w_finals_checked w_rx_early_drops",
    };
    return stress_main(argc, argv, &p);
}
