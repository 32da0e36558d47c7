/* mpsc and mpmc channels: creation, handles, closing, and the wait
 * protocol both sides share (queue.h has the queues and the argument).
 *
 * Parking: a receiver that finds nothing registers its waker (mpsc: the
 * channel's atomic waker; mpmc: its waiter in `rxq`), sets WAITING in
 * `tail` with an RMW, and takes again. A send whose CAS replaced a word
 * with WAITING wakes. A sender that finds the ring full queues its waiter
 * in `txq`, sets WAITING in `head`, and sends again; a receive whose RMW
 * on `head` replaced WAITING wakes senders. A woken waiter that is
 * dropped before it looked hands its wake to the next one, so a wake is
 * never spent on nobody. Nothing is handed over directly: an item moves
 * only inside the queue, in the poll that returns it. */
#include "channels/queue.h"
#include "core/alloc.h"
#include "core/chaos.h"
#include "core/errors.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum {
    RX_SPENT = 1u,   /* dropped */
    RX_EVENTFD = 2u, /* try_recv re-arms the eventfd */
};
enum {
    TX_SPENT = 1u,   /* dropped or closed as a sink */
    TX_PENDING = 2u, /* the sink holds an item it accepted while full */
};

/* ---- serving waiters ------------------------------------------------------ */

/* Serve up to `n` waiters from the front of `q` (locked on entry and on
 * return; unlocked meanwhile to wake a full set). Returns how many. */
static size_t serve_front(weft__waitq *q, size_t n, weft__wakeset *ws)
{
    size_t done = 0;
    while (done < n && !weft__waitq_empty(q)) {
        if (weft__wakeset_full(ws)) {
            weft__waitq_unlock(q);
            weft__wakeset_wake(ws);
            weft__waitq_lock(q);
            continue;
        }
        weft__waitq_serve(q, weft__waitq_front(q), ws);
        done++;
    }
    return done;
}

static void serve_all(weft__waitq *q)
{
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(q);
    serve_front(q, SIZE_MAX, &ws);
    weft__waitq_unlock(q);
    weft__wakeset_wake(&ws);
}

/* A served waiter that did not use its wake (dropped) passes it on. */
static void hand_on(weft__waitq *q)
{
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(q);
    serve_front(q, 1, &ws);
    weft__waitq_unlock(q);
    weft__wakeset_wake(&ws);
}

/* A waiter whose owner got what it waited for (or gave up): out of the
 * queue. A wake it was given and used needs no hand-on. Inline: every
 * send ends here, nearly always with a waiter that never waited. */
static inline void waiter_done(weft__waitq *q, weft__waiter *w)
{
    uint32_t st = weft__waiter_state(w);
    if (st == WEFT__WAITER_IDLE)
        return;
    if (st == WEFT__WAITER_QUEUED) {
        weft__waitq_lock(q);
        if (weft_atomic_load_relaxed(&w->state_) == WEFT__WAITER_QUEUED)
            weft__waitq_remove(q, w);
        weft__waitq_unlock(q);
    }
    weft__waiter_reset(w);
}

/* A waiter whose owner is dropped: out of the queue, and a wake it was
 * given but never looked at goes to the next waiter. */
static inline void waiter_drop(weft__waitq *q, weft__waiter *w)
{
    uint32_t st = weft__waiter_state(w);
    if (st == WEFT__WAITER_IDLE)
        return;
    if (st == WEFT__WAITER_QUEUED) {
        weft__waitq_lock(q);
        st = weft_atomic_load_relaxed(&w->state_);
        if (st == WEFT__WAITER_QUEUED)
            weft__waitq_remove(q, w);
        weft__waitq_unlock(q);
    }
    if (st == WEFT__WAITER_SERVED)
        hand_on(q);
    weft__waiter_reset(w);
}

/* Queue `w` (or refresh its waker). A served waiter that could not use
 * its wake keeps its turn at the front. */
static void waiter_park(weft__waitq *q, weft__waiter *w, const weft_waker *waker)
{
    uint32_t st = weft__waiter_poll(q, w, waker);
    if (st == WEFT__WAITER_QUEUED)
        return;
    weft__waiter_reset(w);
    weft__waitq_lock(q);
    if (st == WEFT__WAITER_SERVED)
        weft__waitq_push_front(q, w, waker);
    else
        weft__waitq_push_back(q, w, waker);
    weft__waitq_unlock(q);
}

void weft__chan_wake_senders(weft_chan *ch, size_t n, uint64_t mine)
{
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(&ch->txq);
    serve_front(&ch->txq, n, &ws);
    if (!weft__waitq_empty(&ch->txq)) {
        /* Senders still wait: WAITING again. Receives that moved `head`
         * between our swap and this RMW woke nobody; serve one per slot
         * they freed. */
        uint64_t hw = weft_atomic_fetch_or_acq_rel(&ch->head, WEFT__CHAN_WAITING);
        uint64_t moved = weft__ring_len(ch, hw >> WEFT__CHAN_SHIFT, mine);
        serve_front(&ch->txq, moved, &ws);
    }
    weft__waitq_unlock(&ch->txq);
    weft__wakeset_wake(&ws);
}

/* A send replaced a tail word with WAITING in it. */
static void wake_receivers(weft_chan *ch, uint64_t seen)
{
    if (ch->kind != WEFT__CHAN_MPMC) {
        weft_atomic_waker_wake(&ch->rx_waker);
        return;
    }
    uint64_t mine = weft__ring_next(ch, seen >> WEFT__CHAN_SHIFT);
    weft__wakeset ws;
    weft__wakeset_init(&ws);
    weft__waitq_lock(&ch->rxq);
    serve_front(&ch->rxq, 1, &ws);
    if (!weft__waitq_empty(&ch->rxq)) {
        /* As for senders: sends between our CAS and this RMW woke
         * nobody; serve one per item they added. */
        uint64_t tw = weft_atomic_fetch_or_acq_rel(&ch->tail, WEFT__CHAN_WAITING);
        serve_front(&ch->rxq, weft__ring_len(ch, tw >> WEFT__CHAN_SHIFT, mine), &ws);
    }
    weft__waitq_unlock(&ch->rxq);
    weft__wakeset_wake(&ws);
}

/* ---- the queue, whichever kind -------------------------------------------- */

static inline int chan_push(weft_chan *ch, const void *item, uint64_t *seen)
{
    switch (ch->kind) {
    case WEFT__CHAN_MPSC:
        return weft__ring_try_push_mpsc(ch, item, seen);
    case WEFT__CHAN_UNBOUNDED:
        return weft__list_try_push(ch, item, seen);
    default:
        return weft__ring_try_push(ch, item, seen);
    }
}

static inline size_t chan_pop(weft_chan *ch, void *out, size_t max)
{
    uint64_t owe;
    size_t n;
    switch (ch->kind) {
    case WEFT__CHAN_MPSC:
        n = weft__ring_pop_mpsc(ch, out, max, &owe);
        break;
    case WEFT__CHAN_UNBOUNDED:
        return weft__list_pop(ch, out, max);
    default:
        n = weft__ring_pop_mpmc(ch, out, max, &owe);
        break;
    }
    if (owe != WEFT__CHAN_OWE_NONE)
        weft__chan_wake_senders(ch, n, owe);
    return n;
}

/* Items between the consumer cursor and tail word `tw` (claimed sends
 * count even if not yet published). The mpsc cursor is the receiver's
 * own: only the receiver calls this with `mine` true. */
static uint64_t chan_len_at(const weft_chan *ch, uint64_t tw, bool mine)
{
    uint64_t t = tw >> WEFT__CHAN_SHIFT;
    uint64_t h = mine && ch->kind != WEFT__CHAN_MPMC
                     ? ch->rx_pos
                     /* Relaxed: a snapshot for len; the receivers' own
                      * checks use their cursor or the head RMW. */
                     : weft_atomic_load_relaxed(&ch->head) >> WEFT__CHAN_SHIFT;
    return ch->kind == WEFT__CHAN_UNBOUNDED ? weft__list_len(t, h) : weft__ring_len(ch, t, h);
}

/* ---- the eventfd waker ----------------------------------------------------- */

static void efd_signal(weft_chan *ch)
{
    int fd = weft_atomic_load_acquire(&ch->efd);
    if (fd >= 0) {
        uint64_t one = 1;
        /* EAGAIN (counter full) still leaves it readable. */
        ssize_t r = write(fd, &one, sizeof one);
        (void)r;
    }
}

static const weft_waker_ops efd_waker_ops;

/* The waker of a receiver in eventfd mode: waking makes the fd readable.
 * It holds no reference (the receiver's handle keeps the channel). */
static weft_waker efd_clone(const void *data)
{
    weft_waker w = { &efd_waker_ops, (void *)data };
    return w;
}
static void efd_wake_by_ref(const void *data) { efd_signal((weft_chan *)data); }
static void efd_wake(void *data) { efd_signal(data); }
static void efd_drop(void *data) { (void)data; }

static const weft_waker_ops efd_waker_ops = {
    .clone = efd_clone,
    .wake = efd_wake,
    .wake_by_ref = efd_wake_by_ref,
    .drop = efd_drop,
};

/* ---- receiving --------------------------------------------------------------- */

static void rx_park(weft_chan_rx *rx, const weft_waker *waker)
{
    weft_chan *ch = rx->ch_;
    if (ch->kind == WEFT__CHAN_MPMC)
        waiter_park(&ch->rxq, &rx->w_, waker);
    else
        weft_atomic_waker_register(&ch->rx_waker, waker);
}

static void rx_unpark(weft_chan_rx *rx)
{
    if (rx->ch_->kind == WEFT__CHAN_MPMC)
        waiter_done(&rx->ch_->rxq, &rx->w_);
}

/* Take up to `max` items: the count; -EPIPE when closed and drained;
 * else, with a waker, 0 after parking (woken by the next send), and
 * without one -EAGAIN. */
static long rx_take(weft_chan_rx *rx, void *out, size_t max, const weft_waker *waker)
{
    weft_chan *ch = rx->ch_;
    size_t n = chan_pop(ch, out, max);
    if (n) {
        rx_unpark(rx);
        return (long)n;
    }
    /* Acquire: pairs with the closer's RMW, so a closed channel's
     * cursor is final here. */
    uint64_t tw = weft_atomic_load_acquire(&ch->tail);
    if ((tw & WEFT__CHAN_CLOSED) && chan_len_at(ch, tw, true) == 0) {
        rx_unpark(rx);
        return -EPIPE;
    }
    if (!waker)
        return -EAGAIN;
    rx_park(rx, waker);
    /* The RMW every send's CAS is ordered against: a send after it sees
     * WAITING and wakes us; one before it is found by the take below. */
    tw = weft_atomic_fetch_or_acq_rel(&ch->tail, WEFT__CHAN_WAITING);
    n = chan_pop(ch, out, max);
    if (n) {
        rx_unpark(rx);
        return (long)n;
    }
    if (chan_len_at(ch, tw, true) == 0) {
        if (tw & WEFT__CHAN_CLOSED) {
            rx_unpark(rx);
            return -EPIPE;
        }
        return 0;
    }
    /* A send claimed a slot before our WAITING and has not published
     * its item yet; it will not wake us, so look again soon. */
    weft_waker_wake_by_ref(waker);
    return 0;
}

static bool rx_usable(const weft_chan_rx *rx, const char *what)
{
    if (!rx || !rx->ch_ || (rx->state_ & RX_SPENT)) {
        WEFT_MISUSE("%s: %s", what, !rx ? "receiver is NULL" : "receiver was dropped");
        (void)what;
        return false;
    }
    return true;
}

static weft_next rx_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                   size_t *n)
{
    weft_chan_rx *rx = (weft_chan_rx *)s;
    *n = 0;
    if (!rx_usable(rx, "weft_chan_rx poll"))
        return WEFT_NEXT_DONE;
    if (weft__chaos_pending_stream(s, cx) || !weft_coop_proceed(cx))
        return WEFT_NEXT_PENDING;
    long r = rx_take(rx, items, max, cx->waker);
    if (r > 0) {
        *n = (size_t)r;
        return WEFT_NEXT_ITEM;
    }
    return r == 0 ? WEFT_NEXT_PENDING : WEFT_NEXT_DONE;
}

static weft_next rx_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    size_t n;
    return rx_poll_next_many(s, cx, item, 1, &n);
}

static void rx_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_chan_rx *rx = (const weft_chan_rx *)s;
    *lo = rx->ch_ ? weft_chan_len(rx) : 0;
    *hi = SIZE_MAX;
}

static size_t rx_item_size(const weft_stream *s)
{
    const weft_chan_rx *rx = (const weft_chan_rx *)s;
    return rx->ch_ ? rx->ch_->item_size : 0;
}

static void rx_stream_drop(weft_stream *s) { weft_chan_rx_drop((weft_chan_rx *)s); }

static const weft_stream_ops rx_ops = {
    .name = "weft_chan_rx",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = rx_poll_next,
    .drop = rx_stream_drop,
    .size_hint = rx_size_hint,
    .poll_next_many = rx_poll_next_many,
    .item_size_of = rx_item_size,
};

/* ---- sending --------------------------------------------------------------- */

/* Send `item`: 0 or -EPIPE (done; `w` out of the queue), -ENOMEM
 * (unbounded), or -EAGAIN: full — with a waker, `w` is parked and the
 * waker will be woken when there may be room. */
static int tx_send(weft_chan *ch, weft__waiter *w, const void *item, const weft_waker *waker)
{
    uint64_t seen;
    int r = chan_push(ch, item, &seen);
    if (r == -EAGAIN && waker) {
        waiter_park(&ch->txq, w, waker);
        /* The RMW every receive's head RMW is ordered against: a receive
         * after it sees WAITING and wakes us; one before it freed slots
         * the send below finds. */
        uint64_t hw = weft_atomic_fetch_or_acq_rel(&ch->head, WEFT__CHAN_WAITING);
        r = chan_push(ch, item, &seen);
        if (r == -EAGAIN) {
            /* Relaxed: only to see whether an mpmc receive claimed slots
             * it has not freed yet (it will not wake us for them). */
            uint64_t tw = weft_atomic_load_relaxed(&ch->tail);
            if (weft__ring_len(ch, tw >> WEFT__CHAN_SHIFT, hw >> WEFT__CHAN_SHIFT) < ch->cap)
                weft_waker_wake_by_ref(waker);
            return -EAGAIN;
        }
    }
    if (r != -EAGAIN && w)
        waiter_done(&ch->txq, w);
    if (r == 0 && (seen & WEFT__CHAN_WAITING))
        wake_receivers(ch, seen);
    return r;
}

static bool tx_usable(const weft_chan_tx *tx, const char *what)
{
    if (!tx || !tx->ch_ || (tx->state_ & TX_SPENT)) {
        WEFT_MISUSE("%s: %s", what, !tx ? "sender is NULL" : "sender was dropped");
        (void)what;
        return false;
    }
    return true;
}

/* Wait for room without an item (the sink's poll_ready): 0, -EPIPE, or
 * -EAGAIN after parking. */
static int tx_wait_room(weft_chan *ch, weft__waiter *w, const weft_waker *waker)
{
    for (int pass = 0;; pass++) {
        uint64_t tw = weft_atomic_load_acquire(&ch->tail);
        int r = (tw & WEFT__CHAN_CLOSED) ? -EPIPE
                : (ch->kind == WEFT__CHAN_UNBOUNDED || chan_len_at(ch, tw, false) < ch->cap)
                    ? 0
                    : -EAGAIN;
        if (r != -EAGAIN || pass == 1) {
            if (r != -EAGAIN)
                waiter_done(&ch->txq, w);
            return r;
        }
        waiter_park(&ch->txq, w, waker);
        /* As in tx_send: set WAITING, then look again. */
        weft_atomic_fetch_or_acq_rel(&ch->head, WEFT__CHAN_WAITING);
    }
}

/* ---- the sink ------------------------------------------------------------------ */

static weft_poll tx_push_pending(weft_chan_tx *tx, weft_cx *cx, int *res)
{
    if (tx->state_ & TX_PENDING) {
        int r = tx_send(tx->ch_, &tx->w_, tx->pending_, cx->waker);
        if (r == -EAGAIN)
            return WEFT_PENDING;
        tx->state_ &= ~TX_PENDING;
        if (r < 0) {
            *res = r;
            return WEFT_READY;
        }
    }
    *res = 0;
    return WEFT_READY;
}

static weft_poll tx_poll_ready(weft_sink *s, weft_cx *cx, int *res)
{
    weft_chan_tx *tx = (weft_chan_tx *)s;
    if (!tx_usable(tx, "weft_chan_tx poll_ready")) {
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (tx_push_pending(tx, cx, res) == WEFT_PENDING || *res < 0)
        return tx->state_ & TX_PENDING ? WEFT_PENDING : WEFT_READY;
    int r = tx_wait_room(tx->ch_, &tx->w_, cx->waker);
    if (r == -EAGAIN)
        return WEFT_PENDING;
    *res = r;
    return WEFT_READY;
}

static int tx_start_send(weft_sink *s, const void *item)
{
    weft_chan_tx *tx = (weft_chan_tx *)s;
    if (!tx_usable(tx, "weft_chan_tx start_send"))
        return -EINVAL;
    if (tx->state_ & TX_PENDING) {
        WEFT_MISUSE("weft_chan_tx start_send: poll_ready did not say ready");
        return -EINVAL;
    }
    int r = tx_send(tx->ch_, NULL, item, NULL);
    if (r != -EAGAIN)
        return r;
    /* Another sender took the room poll_ready saw: keep the item here
     * until poll_ready / poll_flush can push it. */
    if (!tx->pending_) {
        tx->pending_ = weft__alloc(tx->ch_->item_size ? tx->ch_->item_size : 1);
        if (!tx->pending_)
            return -ENOMEM;
    }
    weft__item_copy(tx->pending_, item, tx->ch_->item_size);
    tx->state_ |= TX_PENDING;
    return 0;
}

static weft_poll tx_poll_flush(weft_sink *s, weft_cx *cx, int *res)
{
    weft_chan_tx *tx = (weft_chan_tx *)s;
    if (!tx_usable(tx, "weft_chan_tx poll_flush")) {
        *res = -EINVAL;
        return WEFT_READY;
    }
    return tx_push_pending(tx, cx, res);
}

static void tx_release(weft_chan_tx *tx);

static weft_poll tx_poll_close(weft_sink *s, weft_cx *cx, int *res)
{
    weft_chan_tx *tx = (weft_chan_tx *)s;
    if (!tx_usable(tx, "weft_chan_tx poll_close")) {
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (tx_push_pending(tx, cx, res) == WEFT_PENDING)
        return WEFT_PENDING;
    tx_release(tx);
    return WEFT_READY;
}

static size_t tx_item_size(const weft_sink *s)
{
    const weft_chan_tx *tx = (const weft_chan_tx *)s;
    return tx->ch_ ? tx->ch_->item_size : 0;
}

static void tx_sink_drop(weft_sink *s) { weft_chan_tx_drop((weft_chan_tx *)s); }

static const weft_sink_ops tx_ops = {
    .name = "weft_chan_tx",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_ready = tx_poll_ready,
    .start_send = tx_start_send,
    .poll_flush = tx_poll_flush,
    .poll_close = tx_poll_close,
    .drop = tx_sink_drop,
    .item_size_of = tx_item_size,
};

/* ---- lifetime ------------------------------------------------------------------- */

static void chan_close(weft_chan *ch)
{
    uint64_t tw = weft_atomic_fetch_or_acq_rel(&ch->tail, WEFT__CHAN_CLOSED);
    if (tw & WEFT__CHAN_CLOSED)
        return;
    weft_atomic_waker_wake(&ch->rx_waker);
    serve_all(&ch->rxq);
    serve_all(&ch->txq);
    efd_signal(ch);
}

static void chan_unref(weft_chan *ch)
{
    /* acq_rel: the last handle sees every other handle's writes. */
    if (weft_atomic_fetch_sub_acq_rel(&ch->refs, 1) != 1)
        return;
    weft_atomic_waker_fini(&ch->rx_waker);
    if (ch->kind == WEFT__CHAN_UNBOUNDED)
        weft__list_fini(ch);
    int fd = weft_atomic_load_relaxed(&ch->efd);
    if (fd >= 0)
        close(fd);
    weft__free(ch);
}

static void tx_init(weft_chan_tx *tx, weft_chan *ch)
{
    weft_sink_init(&tx->base, &tx_ops, WEFT_F_SEND);
    tx->ch_ = ch;
    weft__waiter_init(&tx->w_);
    tx->pending_ = NULL;
    tx->state_ = 0;
    tx->reserved_ = 0;
}

static void rx_init(weft_chan_rx *rx, weft_chan *ch)
{
    weft_stream_init(&rx->base, &rx_ops, WEFT_F_SEND);
    rx->ch_ = ch;
    weft__waiter_init(&rx->w_);
    rx->state_ = 0;
    rx->reserved_ = 0;
}

static int chan_new(weft_chan_tx *tx, weft_chan_rx *rx, size_t item_size, size_t cap,
                    uint32_t kind, const char *what)
{
    if (!tx || !rx || item_size > WEFT_CHAN_ITEM_MAX ||
        (kind != WEFT__CHAN_UNBOUNDED && (cap == 0 || cap > WEFT_CHAN_CAPACITY_MAX))) {
        WEFT_MISUSE("%s: %s", what,
                    !tx || !rx ? "a handle is NULL"
                    : item_size > WEFT_CHAN_ITEM_MAX ? "item_size above WEFT_CHAN_ITEM_MAX"
                                                     : "capacity 0 or above WEFT_CHAN_CAPACITY_MAX");
        (void)what;
        return -EINVAL;
    }
    size_t stride = sizeof(uint64_t) + ((item_size + 7) & ~(size_t)7);
    uint64_t one_lap = 1;
    unsigned lap_shift = 0;
    while (one_lap <= cap) {
        one_lap <<= 1;
        lap_shift++;
    }
    size_t head_bytes = (sizeof(weft_chan) + 63) & ~(size_t)63;
    size_t ring_bytes = kind == WEFT__CHAN_UNBOUNDED ? 0 : cap * stride;
    weft_chan *ch = weft__alloc(head_bytes + ring_bytes);
    if (!ch)
        return -ENOMEM;
    memset(ch, 0, head_bytes);
    ch->kind = kind;
    ch->item_size = item_size;
    ch->stride = stride;
    ch->cap = cap;
    ch->one_lap = one_lap;
    ch->lap_shift = lap_shift;
    ch->slots = (unsigned char *)ch + head_bytes;
    weft_atomic_init(&ch->tail, 0);
    weft_atomic_init(&ch->head, 0);
    weft_atomic_init(&ch->head_seen, 0);
    ch->rx_pos = 0;
    weft_atomic_waker_init(&ch->rx_waker);
    weft__waitq_init(&ch->rxq);
    weft__waitq_init(&ch->txq);
    weft_atomic_init(&ch->refs, 2);
    weft_atomic_init(&ch->senders, 1);
    weft_atomic_init(&ch->receivers, 1);
    weft_atomic_init(&ch->efd, -1);
    if (kind == WEFT__CHAN_UNBOUNDED) {
        if (weft__list_init(ch) < 0) {
            weft__free(ch);
            return -ENOMEM;
        }
    } else {
        for (size_t i = 0; i < cap; i++)
            weft_atomic_init((WEFT_ATOMIC(uint64_t) *)(void *)(ch->slots + i * stride), i);
    }
    tx_init(tx, ch);
    rx_init(rx, ch);
    return 0;
}

int weft_mpsc_new(weft_chan_tx *tx, weft_chan_rx *rx, size_t item_size, size_t capacity)
{
    return chan_new(tx, rx, item_size, capacity, WEFT__CHAN_MPSC, "weft_mpsc_new");
}

int weft_mpsc_unbounded_new(weft_chan_tx *tx, weft_chan_rx *rx, size_t item_size)
{
    return chan_new(tx, rx, item_size, 0, WEFT__CHAN_UNBOUNDED, "weft_mpsc_unbounded_new");
}

int weft_mpmc_new(weft_chan_tx *tx, weft_chan_rx *rx, size_t item_size, size_t capacity)
{
    return chan_new(tx, rx, item_size, capacity, WEFT__CHAN_MPMC, "weft_mpmc_new");
}

int weft_chan_tx_clone(const weft_chan_tx *tx, weft_chan_tx *out)
{
    if (!tx_usable(tx, "weft_chan_tx_clone"))
        return -EINVAL;
    if (!out) {
        WEFT_MISUSE("weft_chan_tx_clone: out is NULL");
        return -EINVAL;
    }
    /* Relaxed: the caller's handle keeps the channel alive. */
    weft_atomic_fetch_add_relaxed(&tx->ch_->refs, 1);
    weft_atomic_fetch_add_relaxed(&tx->ch_->senders, 1);
    tx_init(out, tx->ch_);
    return 0;
}

int weft_chan_rx_clone(const weft_chan_rx *rx, weft_chan_rx *out)
{
    if (!rx_usable(rx, "weft_chan_rx_clone"))
        return -EINVAL;
    if (!out || rx->ch_->kind != WEFT__CHAN_MPMC) {
        WEFT_MISUSE("weft_chan_rx_clone: %s", !out ? "out is NULL"
                                                  : "only an mpmc receiver can be cloned");
        return -EINVAL;
    }
    weft_atomic_fetch_add_relaxed(&rx->ch_->refs, 1);
    weft_atomic_fetch_add_relaxed(&rx->ch_->receivers, 1);
    rx_init(out, rx->ch_);
    return 0;
}

/* The sender's share: out of the queue, its pending sink item pushed if
 * it fits, its count down (the last closes). The handle is spent. */
static void tx_release(weft_chan_tx *tx)
{
    weft_chan *ch = tx->ch_;
    waiter_drop(&ch->txq, &tx->w_);
    if (tx->state_ & TX_PENDING) {
        int r = tx_send(ch, NULL, tx->pending_, NULL);
        (void)r; /* full or closed: the unflushed item is discarded */
    }
    weft__free(tx->pending_);
    tx->pending_ = NULL;
    tx->state_ = TX_SPENT;
    if (weft_atomic_fetch_sub_acq_rel(&ch->senders, 1) == 1)
        chan_close(ch);
}

void weft_chan_tx_drop(weft_chan_tx *tx)
{
    if (!tx || !tx->ch_) {
        WEFT_MISUSE("weft_chan_tx_drop: %s", !tx ? "sender is NULL" : "sender dropped twice");
        return;
    }
    weft_chan *ch = tx->ch_;
    if (!(tx->state_ & TX_SPENT))
        tx_release(tx);
    tx->ch_ = NULL;
    chan_unref(ch);
}

void weft_chan_rx_drop(weft_chan_rx *rx)
{
    if (!rx || !rx->ch_) {
        WEFT_MISUSE("weft_chan_rx_drop: %s", !rx ? "receiver is NULL" : "receiver dropped twice");
        return;
    }
    weft_chan *ch = rx->ch_;
    if (ch->kind == WEFT__CHAN_MPMC)
        waiter_drop(&ch->rxq, &rx->w_);
    rx->state_ = RX_SPENT;
    if (weft_atomic_fetch_sub_acq_rel(&ch->receivers, 1) == 1)
        chan_close(ch);
    rx->ch_ = NULL;
    chan_unref(ch);
}

void weft_chan_rx_close(weft_chan_rx *rx)
{
    if (rx_usable(rx, "weft_chan_rx_close"))
        chan_close(rx->ch_);
}

/* ---- without waiting ---------------------------------------------------------- */

int weft_chan_try_send(weft_chan_tx *tx, const void *item)
{
    if (!tx_usable(tx, "weft_chan_try_send"))
        return -EINVAL;
    return tx_send(tx->ch_, NULL, item, NULL);
}

static long rx_try(weft_chan_rx *rx, void *items, size_t max, const char *what)
{
    if (!rx_usable(rx, what))
        return -EINVAL;
    if (!(rx->state_ & RX_EVENTFD))
        return rx_take(rx, items, max, NULL);
    long r = rx_take(rx, items, max, NULL);
    if (r != -EAGAIN)
        return r;
    /* Empty: clear the eventfd, then park with it as the waker, so the
     * next send makes it readable again (or the take finds an item that
     * came in between). */
    uint64_t v;
    ssize_t rd = read(weft_atomic_load_relaxed(&rx->ch_->efd), &v, sizeof v);
    (void)rd;
    weft_waker efd = efd_clone(rx->ch_);
    r = rx_take(rx, items, max, &efd);
    return r == 0 ? -EAGAIN : r;
}

int weft_chan_try_recv(weft_chan_rx *rx, void *item)
{
    long r = rx_try(rx, item, 1, "weft_chan_try_recv");
    return r > 0 ? 0 : (int)r;
}

long weft_chan_try_recv_many(weft_chan_rx *rx, void *items, size_t max)
{
    if (max == 0) {
        WEFT_MISUSE("weft_chan_try_recv_many: max 0");
        return -EINVAL;
    }
    return rx_try(rx, items, max, "weft_chan_try_recv_many");
}

size_t weft_chan_len(const weft_chan_rx *rx)
{
    if (!rx_usable(rx, "weft_chan_len"))
        return 0;
    /* Relaxed: a snapshot. */
    return (size_t)chan_len_at(rx->ch_, weft_atomic_load_relaxed(&rx->ch_->tail), false);
}

size_t weft_chan_capacity(const weft_chan_rx *rx)
{
    return rx_usable(rx, "weft_chan_capacity") ? rx->ch_->cap : 0;
}

bool weft_chan_tx_is_closed(const weft_chan_tx *tx)
{
    if (!tx_usable(tx, "weft_chan_tx_is_closed"))
        return true;
    return (weft_atomic_load_acquire(&tx->ch_->tail) & WEFT__CHAN_CLOSED) != 0;
}

/* ---- futures -------------------------------------------------------------------- */

static weft_poll send_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_chan_send *sf = (weft_chan_send *)f;
    if (!tx_usable(sf->tx_, "weft_chan_send")) {
        *(int *)out = -EINVAL;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx) || !weft_coop_proceed(cx))
        return WEFT_PENDING;
    int r = tx_send(sf->tx_->ch_, &sf->w_, sf->item_, cx->waker);
    if (r == -EAGAIN)
        return WEFT_PENDING;
    *(int *)out = r;
    return WEFT_READY;
}

static void send_drop(weft_future *f)
{
    weft_chan_send *sf = (weft_chan_send *)f;
    if (sf->tx_ && sf->tx_->ch_)
        waiter_drop(&sf->tx_->ch_->txq, &sf->w_);
}

static const weft_future_ops send_ops = {
    .name = "weft_chan_send",
    .out_size = sizeof(int),
    .poll = send_poll,
    .drop = send_drop,
};

void weft_chan_send_init(weft_chan_send *f, weft_chan_tx *tx, const void *item)
{
    weft_future_init(&f->base, &send_ops, WEFT_F_SEND);
    f->tx_ = tx;
    f->item_ = item;
    weft__waiter_init(&f->w_);
}

static weft_poll recv_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_chan_recv *rf = (weft_chan_recv *)f;
    if (!rx_usable(rf->rx_, "weft_chan_recv")) {
        *(int *)out = -EINVAL;
        return WEFT_READY;
    }
    size_t n;
    weft_next r = rx_poll_next_many(&rf->rx_->base, cx, rf->item_, 1, &n);
    if (r == WEFT_NEXT_PENDING)
        return WEFT_PENDING;
    *(int *)out = r == WEFT_NEXT_ITEM ? 0 : -EPIPE;
    return WEFT_READY;
}

/* A receive dropped while an mpmc receiver waits: its waiter leaves the
 * queue, and a wake it was given but never looked at goes to the next
 * receiver (else that one sleeps with an item queued). */
static void rx_future_drop(weft_chan_rx *rx)
{
    if (rx && rx->ch_ && !(rx->state_ & RX_SPENT) && rx->ch_->kind == WEFT__CHAN_MPMC)
        waiter_drop(&rx->ch_->rxq, &rx->w_);
}

static void recv_drop(weft_future *f) { rx_future_drop(((weft_chan_recv *)f)->rx_); }

static const weft_future_ops recv_ops = {
    .name = "weft_chan_recv",
    .out_size = sizeof(int),
    .poll = recv_poll,
    .drop = recv_drop,
};

void weft_chan_recv_init(weft_chan_recv *f, weft_chan_rx *rx, void *item)
{
    weft_future_init(&f->base, &recv_ops, WEFT_F_SEND);
    f->rx_ = rx;
    f->item_ = item;
}

static weft_poll recv_many_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_chan_recv_many *rf = (weft_chan_recv_many *)f;
    if (!rx_usable(rf->rx_, "weft_chan_recv_many")) {
        *(size_t *)out = 0;
        return WEFT_READY;
    }
    if (rf->max_ == 0) {
        WEFT_MISUSE("weft_chan_recv_many: max 0");
        *(size_t *)out = 0;
        return WEFT_READY;
    }
    size_t n;
    weft_next r = rx_poll_next_many(&rf->rx_->base, cx, rf->items_, rf->max_, &n);
    if (r == WEFT_NEXT_PENDING)
        return WEFT_PENDING;
    *(size_t *)out = n;
    return WEFT_READY;
}

static void recv_many_drop(weft_future *f)
{
    rx_future_drop(((weft_chan_recv_many *)f)->rx_);
}

static const weft_future_ops recv_many_ops = {
    .name = "weft_chan_recv_many",
    .out_size = sizeof(size_t),
    .poll = recv_many_poll,
    .drop = recv_many_drop,
};

void weft_chan_recv_many_init(weft_chan_recv_many *f, weft_chan_rx *rx, void *items, size_t max)
{
    weft_future_init(&f->base, &recv_many_ops, WEFT_F_SEND);
    f->rx_ = rx;
    f->items_ = items;
    f->max_ = max;
}

/* ---- the eventfd ------------------------------------------------------------------ */

int weft_chan_rx_eventfd(weft_chan_rx *rx, int *fd)
{
    if (!rx_usable(rx, "weft_chan_rx_eventfd"))
        return -EINVAL;
    if (!fd) {
        WEFT_MISUSE("weft_chan_rx_eventfd: fd is NULL");
        return -EINVAL;
    }
    weft_chan *ch = rx->ch_;
    int cur = weft_atomic_load_acquire(&ch->efd);
    if (cur < 0) {
        int made = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (made < 0)
            return -errno;
        /* acq_rel: publishes the fd to wakers' acquire loads; on a lost
         * race (two mpmc receivers) take the winner's. */
        if (weft_atomic_cas_strong_acq_rel(&ch->efd, &cur, made))
            cur = made;
        else
            close(made);
    }
    rx->state_ |= RX_EVENTFD;
    *fd = cur;
    /* Readable at once if items or a close are already there: the host
     * then calls try_recv, which re-arms it when it finds nothing. */
    efd_signal(rx->ch_);
    return 0;
}
