/* weft_oneshot: one value, once (tokio/src/sync/oneshot.rs).
 *
 * One allocation holds a state word, the receiver's and the sender's
 * waker cells, a count of the two handles and the item's bytes
 * (channels/oneshot.h). The state word's bits, WEFT__OS_ + :
 *   RX_TASK_SET   rx_waker holds the waker of a pending recv;
 *   VALUE_SENT    the item's bytes are written (the receiver owns them);
 *   CLOSED        the receiver was dropped;
 *   TX_TASK_SET   tx_waker holds the waker of a pending closed future;
 *   TX_DROPPED    the sender was dropped without sending;
 *   VALUE_TAKEN   the receiver has received the value (receiver only).
 * COMPLETE = VALUE_SENT | TX_DROPPED: the sender is done; at most one of
 * the two is ever set, once.
 *
 * Who owns what (tokio's protocol, with one change: a waker cell belongs
 * to whoever clears its TASK_SET bit, so the side that completes takes the
 * other side's waker in the same CAS that completes, wakes it by value,
 * and no waker outlives the wait it was registered for — tokio keeps it
 * until the channel is freed):
 *  - the item bytes: the sender's until VALUE_SENT (it writes them before
 *    its CAS), then the receiver's (it reads them after seeing the bit).
 *    A sender that finds CLOSED leaves them written but never read.
 *  - rx_waker: the receiver's while RX_TASK_SET is clear and no sender's
 *    CAS has taken it; the receiver writes it, then sets the bit. The
 *    sender's completing CAS clears the bit and takes the cell if it was
 *    set; the receiver's own fetch_and that clears it takes it back
 *    (re-registering with another waker, a recv dropped while pending, the
 *    receiver's drop). Whoever's RMW saw the bit set owns the contents.
 *    The other end's take is a copy: until the owner's next look at the
 *    word shows the bit clear it may still be reading the cell (a
 *    will_wake of a poll that loaded the word first), so the cell keeps a
 *    stale copy, never read as a waker again (TSan found the write).
 *  - tx_waker: the same between a closed future (writes, sets
 *    TX_TASK_SET, clears it to re-register or on its drop) and the
 *    receiver's drop (its CAS sets CLOSED and takes the cell). A send or
 *    tx_drop takes it too (a closed future still pending then is misuse).
 *  - VALUE_TAKEN is set and read by the receiver only (an RMW, so as not
 *    to lose the others' bits).
 *  - the allocation: `refs` counts the two handles; the last drop frees.
 *    A completing sender, and a dropping receiver, touch the oneshot only
 *    before their own decrement, so the other side may free it after.
 *
 * Linearization points: send / tx_drop — the CAS that sets VALUE_SENT /
 * TX_DROPPED (or sees CLOSED: -EPIPE); rx_drop — the CAS that sets
 * CLOSED; a receive — the load or RMW that first sees COMPLETE.
 *
 * No lost wake: a recv that registers does so with an RMW (fetch_or of
 * RX_TASK_SET) whose result it checks for COMPLETE. The sender's CAS and
 * that fetch_or are ordered on the one word: if the CAS came first, the
 * fetch_or returns COMPLETE and the recv completes at once; if the
 * fetch_or came first, the CAS sees RX_TASK_SET, takes the waker and
 * wakes it. The closed future and the receiver's drop are the same pair.
 *
 * What may run at once (one thread each):
 *
 *   |                     | send / tx_drop | recv, try_recv | rx_drop | closed |
 *   | send / tx_drop      | no (once)      | yes            | yes     | no     |
 *   | recv poll/drop,     | yes            | no (one at a   | no      | yes    |
 *   |   try_recv          |                |   time)        |         |        |
 *   | rx_drop             | yes            | no             | no      | yes    |
 *   | closed poll/drop    | no             | yes            | yes     | no     |
 *
 * tx_is_closed runs with anything but the sender's own completion. */
#include <stddef.h>
#include <string.h>

#include "channels/oneshot.h"
#include "core/alloc.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "sched/block_on.h"

enum { STEP_INIT = 0, STEP_REGISTERED = 1, STEP_DONE = 2 };

/* ---- the allocation ------------------------------------------------------------------- */

int weft_oneshot_new(weft_oneshot_tx *tx, weft_oneshot_rx *rx, size_t item_size)
{
    if (tx)
        tx->os_ = NULL;
    if (rx)
        rx->os_ = NULL;
    if (!tx || !rx || item_size > WEFT_CHAN_ITEM_MAX) {
        WEFT_MISUSE("weft_oneshot_new: %s",
                    !tx || !rx ? "a handle is NULL" : "item_size is over WEFT_CHAN_ITEM_MAX");
        return -EINVAL;
    }
    weft_oneshot *os = weft__alloc(sizeof *os + item_size);
    if (!os)
        return -ENOMEM;
    weft_atomic_init(&os->state, (uintptr_t)0);
    weft_atomic_init(&os->refs, 2u);
    os->item_size = (uint32_t)item_size;
    os->rx_waker.ops = NULL;
    os->rx_waker.data = NULL;
    os->tx_waker.ops = NULL;
    os->tx_waker.data = NULL;
    tx->os_ = os;
    rx->os_ = os;
    return 0;
}

/* One handle gone: the last frees. */
static void os_release(weft_oneshot *os)
{
    /* AcqRel: the last end sees everything the other did to the oneshot
     * before its own decrement (release), and frees after (acquire). */
    if (weft_atomic_fetch_sub_acq_rel(&os->refs, 1u) != 1u)
        return;
    /* Both ends took their wakers back or handed them over (a cell
     * handed over keeps a stale copy, never read). */
    WEFT_ASSERT((weft_atomic_load_relaxed(&os->state) & WEFT__OS_TASKS) == 0);
    weft__free(os);
}

/* Take the waker out of a cell this thread owns. */
static weft_waker cell_take(weft_waker *cell)
{
    weft_waker w = *cell;
    cell->ops = NULL;
    cell->data = NULL;
    return w;
}

/* ---- the sender --------------------------------------------------------------------- */

/* Complete the sender's side with `bit` (WEFT__OS_VALUE_SENT or WEFT__OS_TX_DROPPED) unless
 * the receiver is gone; take both waker cells in the same CAS. Returns
 * false when WEFT__OS_CLOSED was found (nothing set). */
static bool tx_complete(weft_oneshot *os, uintptr_t bit)
{
    /* Relaxed: the CAS below checks it. */
    uintptr_t curr = weft_atomic_load_relaxed(&os->state);
    for (;;) {
        if (curr & WEFT__OS_CLOSED)
            return false;
        uintptr_t next = (curr | bit) & ~(uintptr_t)WEFT__OS_TASKS;
        /* AcqRel: release publishes the item's bytes written before
         * (pairs with the acquire of the receiver's load or RMW that sees
         * WEFT__OS_VALUE_SENT); acquire sees the rx_waker the receiver stored
         * before its release fetch_or of WEFT__OS_RX_TASK_SET (and tx_waker, from
         * the closed future's). */
        if (weft_atomic_cas_weak_acq_rel(&os->state, &curr, next))
            break;
    }
    /* Copies, not takes: the other end may still be reading the cell (a
     * will_wake of a poll that loaded the state before this CAS), so the
     * cell is left as it is — stale, never read as a waker again: its
     * bit is clear, and only the end that owns it sets it, after writing
     * a new one. */
    weft_waker rxw = WEFT_WAKER_EMPTY, txw = WEFT_WAKER_EMPTY;
    if (curr & WEFT__OS_RX_TASK_SET)
        rxw = os->rx_waker;
    if (curr & WEFT__OS_TX_TASK_SET)
        txw = os->tx_waker;
    weft_waker_wake(&rxw);
    weft_waker_drop(&txw);
    return true;
}

int weft_oneshot_send(weft_oneshot_tx *tx, const void *item)
{
    weft_oneshot *os = tx ? tx->os_ : NULL;
    if (!os) {
        WEFT_MISUSE("weft_oneshot_send: %s", tx ? "the sender is spent (sent or dropped)"
                                                : "sender is NULL");
        return -EINVAL;
    }
    tx->os_ = NULL;
    if (!item && os->item_size) {
        WEFT_MISUSE("weft_oneshot_send: item is NULL (the sender is dropped unsent)");
        (void)tx_complete(os, WEFT__OS_TX_DROPPED);
        os_release(os);
        return -EINVAL;
    }
    int rc = -EPIPE;
    /* Relaxed: only spares the copy when the receiver is long gone; the
     * CAS in tx_complete decides. */
    if (!(weft_atomic_load_relaxed(&os->state) & WEFT__OS_CLOSED)) {
        /* The bytes are the sender's until WEFT__OS_VALUE_SENT: the receiver reads
         * none before, and a failed send leaves them unread. */
        if (os->item_size)
            memcpy(os->item, item, os->item_size);
        if (tx_complete(os, WEFT__OS_VALUE_SENT))
            rc = 0;
    }
    os_release(os);
    return rc;
}

void weft_oneshot_tx_drop(weft_oneshot_tx *tx)
{
    weft_oneshot *os = tx ? tx->os_ : NULL;
    if (!os)
        return;
    tx->os_ = NULL;
    (void)tx_complete(os, WEFT__OS_TX_DROPPED);
    os_release(os);
}

bool weft_oneshot_tx_is_closed(const weft_oneshot_tx *tx)
{
    if (!tx || !tx->os_) {
        WEFT_MISUSE("weft_oneshot_tx_is_closed: %s",
                    tx ? "the sender is spent (sent or dropped)" : "sender is NULL");
        return true;
    }
    /* Acquire: pairs with the release CAS of rx_drop, so a sender that
     * sees WEFT__OS_CLOSED sees what the receiver did before it went. */
    return (weft_atomic_load_acquire(&tx->os_->state) & WEFT__OS_CLOSED) != 0;
}

/* ---- the receiver ------------------------------------------------------------------- */

/* The receive once WEFT__OS_COMPLETE is seen in `st` (with acquire): the value, or
 * -EPIPE. */
static int rx_finish(weft_oneshot *os, uintptr_t st, void *item)
{
    if (!(st & WEFT__OS_VALUE_SENT))
        return -EPIPE;
    if (os->item_size)
        memcpy(item, os->item, os->item_size);
    /* Relaxed: WEFT__OS_VALUE_TAKEN is the receiver's own bit; the RMW keeps the
     * others' bits. */
    weft_atomic_fetch_or_relaxed(&os->state, (uintptr_t)WEFT__OS_VALUE_TAKEN);
    return 0;
}

static bool rx_args_bad(const weft_oneshot_rx *rx, const void *item, const char *what)
{
    (void)what; /* release builds report nothing */
    if (!rx || !rx->os_) {
        WEFT_MISUSE("%s: %s", what, rx ? "the receiver was dropped" : "receiver is NULL");
        return true;
    }
    if (!item && rx->os_->item_size) {
        WEFT_MISUSE("%s: item is NULL", what);
        return true;
    }
    return false;
}

int weft_oneshot_try_recv(weft_oneshot_rx *rx, void *item)
{
    if (rx_args_bad(rx, item, "weft_oneshot_try_recv"))
        return -EINVAL;
    weft_oneshot *os = rx->os_;
    /* Acquire: pairs with the sender's release CAS, so the item's bytes
     * are seen as written. */
    uintptr_t st = weft_atomic_load_acquire(&os->state);
    if (st & WEFT__OS_VALUE_TAKEN)
        return -EPIPE;
    if (!(st & WEFT__OS_COMPLETE))
        return -EAGAIN;
    return rx_finish(os, st, item);
}

/* Take back the receiver's registered waker, if the sender has not taken
 * it. */
static void rx_unregister(weft_oneshot *os)
{
    /* AcqRel: acquire sees the cell as this receiver last wrote it (maybe
     * on another thread, pairs with the release of its fetch_or); release
     * keeps the cell's reads before the bit is seen clear. */
    uintptr_t prev =
            weft_atomic_fetch_and_acq_rel(&os->state, ~(uintptr_t)WEFT__OS_RX_TASK_SET);
    if (prev & WEFT__OS_RX_TASK_SET) {
        weft_waker w = cell_take(&os->rx_waker);
        weft_waker_drop(&w);
    }
}

void weft_oneshot_rx_drop(weft_oneshot_rx *rx)
{
    weft_oneshot *os = rx ? rx->os_ : NULL;
    if (!os)
        return;
    rx->os_ = NULL;
    /* Relaxed: the CAS checks it. */
    uintptr_t curr = weft_atomic_load_relaxed(&os->state);
    for (;;) {
        uintptr_t next = (curr | WEFT__OS_CLOSED) & ~(uintptr_t)WEFT__OS_TASKS;
        /* AcqRel: release publishes the close (pairs with the acquire of
         * tx_is_closed and of the closed future); acquire sees tx_waker as
         * the closed future stored it before its release fetch_or. */
        if (weft_atomic_cas_weak_acq_rel(&os->state, &curr, next))
            break;
    }
    /* A waker of a recv still registered (misuse: a pending recv must be
     * dropped first) is released; a closed future's is woken. */
    weft_waker rxw = WEFT_WAKER_EMPTY, txw = WEFT_WAKER_EMPTY;
    if (curr & WEFT__OS_RX_TASK_SET)
        rxw = cell_take(&os->rx_waker); /* our own cell: nobody reads it */
    if (curr & WEFT__OS_TX_TASK_SET)
        txw = os->tx_waker; /* a copy, as in tx_complete */
    weft_waker_drop(&rxw);
    weft_waker_wake(&txw);
    os_release(os);
}

/* ---- weft_oneshot_recv ----------------------------------------------------------------- */

static weft_poll recv_poll(weft_future *f, weft_cx *cx, void *out);
static void recv_drop(weft_future *f);

static const weft_future_ops recv_ops = {
    .name = "weft_oneshot_recv", .out_size = sizeof(int), .poll = recv_poll, .drop = recv_drop,
};

void weft_oneshot_recv_init(weft_oneshot_recv *f, weft_oneshot_rx *rx, void *item)
{
    weft_future_init(&f->base, &recv_ops, WEFT_F_SEND);
    f->rx_ = rx;
    f->item_ = item;
    f->step_ = STEP_INIT;
    f->reserved_ = 0;
    if (rx_args_bad(rx, item, "weft_oneshot_recv_init"))
        f->rx_ = NULL; /* its poll completes at once with -EINVAL */
}

static weft_poll recv_ready(weft_oneshot_recv *f, void *out, int rc)
{
    f->step_ = STEP_DONE;
    *(int *)out = rc;
    return WEFT_READY;
}

static weft_poll recv_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_oneshot_recv *rf = (weft_oneshot_recv *)f;
    if (!rf->rx_) /* misuse, reported at initialisation: never hang */
        return recv_ready(rf, out, -EINVAL);
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    weft_oneshot *os = rf->rx_->os_;
    if (!os) {
        WEFT_MISUSE("weft_oneshot_recv: its receiver was dropped while it waited");
        return recv_ready(rf, out, -EINVAL);
    }
    /* Acquire: pairs with the sender's release CAS (the item's bytes). */
    uintptr_t st = weft_atomic_load_acquire(&os->state);
    if (st & WEFT__OS_VALUE_TAKEN) {
        WEFT_MISUSE("weft_oneshot_recv: the value was already received (a oneshot gives it "
                    "once)");
        return recv_ready(rf, out, -EPIPE);
    }
    if (st & WEFT__OS_COMPLETE)
        return recv_ready(rf, out, rx_finish(os, st, rf->item_));
    if (st & WEFT__OS_RX_TASK_SET) {
        /* Reading the cell races only with a sender's copy of it (a
         * read): see tx_complete. */
        if (weft_waker_will_wake(&os->rx_waker, cx->waker))
            return WEFT_PENDING;
        /* AcqRel: acquire, if the sender completed meanwhile (it then
         * took the cell), sees the item's bytes. */
        uintptr_t prev =
            weft_atomic_fetch_and_acq_rel(&os->state, ~(uintptr_t)WEFT__OS_RX_TASK_SET);
        if (!(prev & WEFT__OS_RX_TASK_SET)) {
            WEFT_ASSERT(prev & WEFT__OS_COMPLETE);
            return recv_ready(rf, out, rx_finish(os, prev, rf->item_));
        }
        weft_waker old = cell_take(&os->rx_waker);
        weft_waker_drop(&old);
    }
    os->rx_waker = weft_waker_clone(cx->waker);
    /* AcqRel: release publishes the cell to the sender (pairs with the
     * acquire of its CAS); acquire, if it completed first, sees the
     * item's bytes. */
    uintptr_t prev = weft_atomic_fetch_or_acq_rel(&os->state, (uintptr_t)WEFT__OS_RX_TASK_SET);
    if (prev & WEFT__OS_COMPLETE) {
        /* The sender completed without seeing the bit: the cell is still
         * ours, and nobody will wake it. */
        rx_unregister(os);
        return recv_ready(rf, out, rx_finish(os, prev, rf->item_));
    }
    rf->step_ = STEP_REGISTERED;
    return WEFT_PENDING;
}

static void recv_drop(weft_future *f)
{
    weft_oneshot_recv *rf = (weft_oneshot_recv *)f;
    if (rf->step_ != STEP_REGISTERED)
        return;
    rf->step_ = STEP_DONE;
    if (!rf->rx_->os_) {
        WEFT_MISUSE("weft_oneshot_recv: dropped after its receiver");
        return;
    }
    rx_unregister(rf->rx_->os_);
}

int weft_oneshot_recv_blocking(weft_oneshot_rx *rx, void *item)
{
    if (rx_args_bad(rx, item, "weft_oneshot_recv_blocking"))
        return -EINVAL;
    weft_oneshot_recv f;
    weft_oneshot_recv_init(&f, rx, item);
    int out = -EINVAL;
    int rc = weft__block_poll(&f.base, &out, "weft_oneshot_recv_blocking");
    weft_future_drop(&f.base);
    return rc != 0 ? rc : out;
}

/* ---- weft_oneshot_closed --------------------------------------------------------------- */

static weft_poll closed_poll(weft_future *f, weft_cx *cx, void *out);
static void closed_drop(weft_future *f);

static const weft_future_ops closed_ops = {
    .name = "weft_oneshot_closed", .out_size = 0, .poll = closed_poll, .drop = closed_drop,
};

void weft_oneshot_closed_init(weft_oneshot_closed *f, weft_oneshot_tx *tx)
{
    weft_future_init(&f->base, &closed_ops, WEFT_F_SEND);
    f->tx_ = tx;
    f->step_ = STEP_INIT;
    f->reserved_ = 0;
    if (!tx || !tx->os_) {
        WEFT_MISUSE("weft_oneshot_closed_init: %s",
                    tx ? "the sender is spent (sent or dropped)" : "sender is NULL");
        f->tx_ = NULL; /* its poll completes at once */
    }
}

/* Take back the closed future's registered waker, if the receiver's drop
 * has not taken it. */
static void tx_unregister(weft_oneshot *os)
{
    /* AcqRel: as rx_unregister, for tx_waker. */
    uintptr_t prev =
            weft_atomic_fetch_and_acq_rel(&os->state, ~(uintptr_t)WEFT__OS_TX_TASK_SET);
    if (prev & WEFT__OS_TX_TASK_SET) {
        weft_waker w = cell_take(&os->tx_waker);
        weft_waker_drop(&w);
    }
}

static weft_poll closed_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_oneshot_closed *cf = (weft_oneshot_closed *)f;
    (void)out;
    if (!cf->tx_) {
        cf->step_ = STEP_DONE;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    weft_oneshot *os = cf->tx_->os_;
    if (!os) {
        WEFT_MISUSE("weft_oneshot_closed: its sender sent or was dropped while it waited");
        cf->step_ = STEP_DONE;
        return WEFT_READY;
    }
    /* Acquire: pairs with the release CAS of rx_drop. */
    uintptr_t st = weft_atomic_load_acquire(&os->state);
    if (st & WEFT__OS_CLOSED) {
        cf->step_ = STEP_DONE;
        return WEFT_READY;
    }
    if (st & WEFT__OS_TX_TASK_SET) {
        /* Reading the cell races only with the receiver's drop's copy of
         * it (a read). */
        if (weft_waker_will_wake(&os->tx_waker, cx->waker))
            return WEFT_PENDING;
        /* AcqRel: as rx_unregister. */
        uintptr_t prev =
            weft_atomic_fetch_and_acq_rel(&os->state, ~(uintptr_t)WEFT__OS_TX_TASK_SET);
        if (!(prev & WEFT__OS_TX_TASK_SET)) {
            /* The receiver's drop took it (and wakes the old waker). */
            WEFT_ASSERT(prev & WEFT__OS_CLOSED);
            cf->step_ = STEP_DONE;
            return WEFT_READY;
        }
        weft_waker old = cell_take(&os->tx_waker);
        weft_waker_drop(&old);
    }
    os->tx_waker = weft_waker_clone(cx->waker);
    /* AcqRel: release publishes the cell to the receiver's drop (pairs
     * with the acquire of its CAS); acquire pairs with its release. */
    uintptr_t prev = weft_atomic_fetch_or_acq_rel(&os->state, (uintptr_t)WEFT__OS_TX_TASK_SET);
    if (prev & WEFT__OS_CLOSED) {
        /* Closed without seeing the bit: the cell is still ours. */
        tx_unregister(os);
        cf->step_ = STEP_DONE;
        return WEFT_READY;
    }
    cf->step_ = STEP_REGISTERED;
    return WEFT_PENDING;
}

static void closed_drop(weft_future *f)
{
    weft_oneshot_closed *cf = (weft_oneshot_closed *)f;
    if (cf->step_ != STEP_REGISTERED)
        return;
    cf->step_ = STEP_DONE;
    if (!cf->tx_->os_)
        return; /* its send or drop took the waker (misuse, reported by the poll if any) */
    tx_unregister(cf->tx_->os_);
}
