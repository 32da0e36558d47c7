/* weft_broadcast: every receiver sees every item sent after it subscribed
 * (tokio's tokio/src/sync/broadcast.rs, with a back-pressure mode).
 *
 * The ring. `cap` slots (a power of two), position p in slot p & mask.
 * `tail_` counts the items published: positions [0, tail_) have been
 * sent. Senders take `send_lock_` (a spinlock word: one uncontended CAS
 * per send with one sender) to write a slot and publish it by storing
 * tail_ + 1. A receiver owns its position `pos_`; the items it may read
 * are [pos_, tail_), found with one load of tail_ per run of items.
 *
 * LAG mode: a send overwrites slot (t & mask), which held position
 * t - cap. Each slot carries a stamp: 2p + 1 while position p is being
 * written, 2p + 2 once it is. A receiver reading position p checks the
 * stamp is 2p + 2 before and after copying the item (a seqlock, Lameter;
 * with the C11 form of Boehm, "Can Seqlocks Get Along With Programming
 * Language Memory Models?", MSPC 2012: the writer stores the odd stamp,
 * then the item words with release, then the even stamp with release;
 * the reader loads the stamp with acquire, the item words with acquire,
 * then the stamp again — the acquire loads keep the second stamp load
 * after the copy without a standalone fence). The item is stored as
 * 64-bit words through relaxed/release atomics and read through acquire
 * atomics, so a reader racing an overwrite is no data race (TSan-clean)
 * and never returns a torn item: a changed stamp means the position was
 * overwritten, and the receiver is told how many it missed. Acquire loads
 * of words cost what plain loads do on x86 and an LDAR each on arm64; a
 * per-slot lock would cost an RMW per item on both sides.
 *
 * WAIT mode: no slot is overwritten while a receiver may read it, so
 * slots are plain bytes copied with memcpy: the acquire load of tail_
 * that shows position p orders the sender's copy before the receiver's,
 * and the receiver's release of its position (below) orders its copy
 * before the sender's overwrite. Each receiver publishes its position in
 * a cursor of its own (a cache line allocated by the channel, so the
 * receiver struct may move until first used), once per run of items. A
 * sender may write position t only if t - min(cursors) < cap. It keeps a
 * cached lower bound `min_cache_` of that minimum (under send_lock_) and
 * recomputes it — under `list_lock_`, walking the cursors — only when the
 * ring looks full with the cached value, i.e. about once per ring's worth
 * of items, not per item.
 *   min_cache_ stays a lower bound: cursors only grow, a dropped cursor
 *   only raises the minimum, and a new one is added under send_lock_ at
 *   tail_, which is >= every cursor.
 *
 * Parking, without a lost wake (both directions are the same Dekker
 * pattern, so the four accesses involved are seq_cst):
 *   receiver: lock rxq; rx_parked_ = 1; load tail_ / closed_; queue or
 *             retry.            sender: store tail_; load rx_parked_; if
 *             set: lock rxq, serve every receiver, clear rx_parked_.
 *   sender:   lock txq; tx_parked_ = 1; recompute the minimum; queue with
 *             park_min_ = that minimum, or retry.
 *             receiver: store its cursor; load tx_parked_; if set: lock
 *             txq and, if its previous cursor was <= park_min_ (it may
 *             have been the slowest), serve every sender.
 *   The receiver that was the slowest when the sender computed park_min_
 *   has, at its next publish, previous cursor == that minimum <= the
 *   park_min_ it finds (later minima are larger), so it wakes the senders;
 *   faster receivers do not. A dropped receiver wakes them always.
 * Invariant: rx_parked_ (tx_parked_) is 1 whenever rxq_ (txq_) is not
 * empty; it is cleared only under the queue's lock when the queue empties.
 * Every wake serves the whole queue: receivers all want the same thing
 * (new items), and so do senders (room), so no wake needs handing on.
 *
 * Linearization points: a send — its store of tail_; a receive — its load
 * of tail_ (and, in LAG mode, the stamp check after the copy); the close —
 * the store of closed_ (under rxq's lock); a receiver's drop — its removal
 * from the cursor list (WAIT) or the decrement of rx_count_.
 *
 * What may run concurrently: any number of senders (serialised by
 * send_lock_ for the slot write), any number of receivers (each its own
 * position; one future at a time per receiver), subscribe (under
 * send_lock_ in WAIT mode), drops of other handles. Lock order:
 * txq -> send_lock_ -> list_lock_, and txq -> rxq (a parking sender whose
 * retry succeeds wakes parked receivers); never rxq -> txq. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weft/channels.h"
#include "core/alloc.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "sched/block_on.h"
#include "sync/waitq.h"

#define HANDLE_LIVE 0x6263u /* "bc": a handle made by this file, not dropped */
#define HANDLE_DEAD 0u

enum { STEP_INIT = 0, STEP_QUEUED = 1, STEP_DONE = 2 };

/* A WAIT-mode receiver's published position, on a cache line of its own
 * (written by its receiver once per run, read by senders under list_lock_
 * when the ring looks full). */
typedef struct cursor {
    _Atomic uint64_t pos;       /* its receiver writes (seq_cst), senders read */
    struct cursor *prev, *next; /* under list_lock_ */
    void *raw;                  /* what weft__alloc returned */
} cursor;

struct weft_broadcast {
    /* Read-mostly, set at creation. */
    size_t item_size;
    size_t words;  /* LAG: 64-bit words per item */
    size_t stride; /* bytes per slot */
    uint64_t cap, mask;
    int mode;
    unsigned char *ring;
    _Atomic long refs;      /* handles; the last drop frees */
    _Atomic long tx_count;  /* senders alive */
    _Atomic long rx_count;  /* receivers alive */

    /* Senders write, receivers read (one line: it moves per item). */
    _Alignas(WEFT_CACHE_LINE) _Atomic uint64_t tail_;
    _Atomic uint32_t send_lock_;
    uint64_t min_cache_; /* WAIT: lower bound of the cursors; under send_lock_ */

    /* Receivers waiting for items. */
    _Alignas(WEFT_CACHE_LINE) _Atomic uint32_t rx_parked_;
    _Atomic uint32_t closed_; /* last sender gone; set under rxq's lock */
    weft_sync_queue rxq_;

    /* Senders waiting for room (WAIT) and the cursor list. */
    _Alignas(WEFT_CACHE_LINE) _Atomic uint32_t tx_parked_;
    uint64_t park_min_; /* the minimum the last parking sender saw; under txq's lock */
    weft_sync_queue txq_;
    _Atomic uint32_t list_lock_;
    cursor *cursors; /* under list_lock_ */
    void *raw;       /* what weft__alloc returned */
};

_Static_assert(offsetof(struct weft_broadcast, tail_) % WEFT_CACHE_LINE == 0,
               "tail_ (written per item) must not share the creation fields' line");
_Static_assert(offsetof(struct weft_broadcast, rx_parked_) - offsetof(struct weft_broadcast, tail_) >=
                   WEFT_CACHE_LINE,
               "the receivers' queue must not share the senders' line");

/* ---- helpers ---------------------------------------------------------------------------- */

static bool tx_bad(const weft_broadcast_tx *tx, const char *what)
{
    (void)what; /* release builds report nothing */
    if (tx && tx->b_ && tx->state_ == HANDLE_LIVE)
        return false;
    WEFT_MISUSE("%s: not a live weft_broadcast_tx", what);
    return true;
}

static bool rx_bad(const weft_broadcast_rx *rx, const char *what)
{
    (void)what;
    if (rx && rx->b_ && rx->state_ == HANDLE_LIVE)
        return false;
    WEFT_MISUSE("%s: not a live weft_broadcast_rx", what);
    return true;
}

static void bc_free(weft_broadcast *b)
{
    weft__free(b->ring);
    weft__free(b->raw);
}

static void bc_unref(weft_broadcast *b)
{
    /* AcqRel: the last drop sees every other handle's writes before it
     * frees (pairs with the release half of the other decrements). */
    if (weft_atomic_fetch_sub_acq_rel(&b->refs, 1) == 1)
        bc_free(b);
}

static inline unsigned char *slot_of(weft_broadcast *b, uint64_t pos)
{
    return b->ring + (size_t)(pos & b->mask) * b->stride;
}

/* LAG slots: [stamp][words...], all 64-bit atomics. */
static inline _Atomic uint64_t *stamp_of(unsigned char *slot) { return (_Atomic uint64_t *)slot; }
static inline _Atomic uint64_t *words_of(unsigned char *slot) { return (_Atomic uint64_t *)slot + 1; }

/* Serve every waiter of `q` (its lock held), waking them outside the lock
 * in batches; clears *flag when the queue is empty. Returns with the lock
 * released. */
static void serve_all_unlock(weft__waitq *q, _Atomic uint32_t *flag)
{
    weft__wakeset s;
    weft__wakeset_init(&s);
    for (weft__waiter *w; (w = weft__waitq_front(q)) != NULL;) {
        if (weft__wakeset_full(&s)) {
            weft__waitq_unlock(q);
            weft__wakeset_wake(&s);
            weft__waitq_lock(q);
            continue;
        }
        weft__waitq_serve(q, w, &s);
    }
    /* Relaxed: cleared only under the lock, and each waiter served learns
     * of its wake through its SERVED mark (release in weft__waitq_serve). */
    weft_atomic_store_relaxed(flag, 0u);
    weft__waitq_unlock(q);
    weft__wakeset_wake(&s);
}

static void wake_receivers(weft_broadcast *b)
{
    weft__waitq_lock(&b->rxq_);
    serve_all_unlock(&b->rxq_, &b->rx_parked_);
}

static void wake_senders(weft_broadcast *b)
{
    weft__waitq_lock(&b->txq_);
    serve_all_unlock(&b->txq_, &b->tx_parked_);
}

/* ---- creation and handles --------------------------------------------------------------------- */

static weft_next rx_poll_next(weft_stream *s, weft_cx *cx, void *item);
static weft_next rx_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                   size_t *n);
static void rx_stream_drop(weft_stream *s);

static size_t rx_item_size(const weft_stream *s)
{
    const weft_broadcast_rx *rx = (const weft_broadcast_rx *)s;
    return rx->b_ ? rx->b_->item_size : 0;
}

static const weft_stream_ops rx_ops = {
    .name = "weft_broadcast_rx",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = rx_poll_next,
    .drop = rx_stream_drop,
    .poll_next_many = rx_poll_next_many,
    .item_size_of = rx_item_size,
};

/* A cursor at `pos` (WAIT mode), linked into the list; NULL on -ENOMEM. */
static cursor *cursor_new(weft_broadcast *b, uint64_t pos)
{
    void *raw = weft__alloc(sizeof(cursor) + WEFT_CACHE_LINE);
    if (!raw)
        return NULL;
    uintptr_t a = ((uintptr_t)raw + WEFT_CACHE_LINE - 1) & ~(uintptr_t)(WEFT_CACHE_LINE - 1);
    cursor *c = (cursor *)a;
    c->raw = raw;
    weft_atomic_init(&c->pos, pos);
    c->prev = NULL;
    weft__spin_lock_word(&b->list_lock_);
    c->next = b->cursors;
    if (c->next)
        c->next->prev = c;
    b->cursors = c;
    weft__spin_unlock_word(&b->list_lock_);
    return c;
}

static void cursor_remove(weft_broadcast *b, cursor *c)
{
    weft__spin_lock_word(&b->list_lock_);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->cursors = c->next;
    if (c->next)
        c->next->prev = c->prev;
    weft__spin_unlock_word(&b->list_lock_);
    weft__free(c->raw);
}

/* Make `rx` a receiver of `b` starting at the current tail. */
static int rx_attach(weft_broadcast *b, weft_broadcast_rx *rx)
{
    memset(rx, 0, sizeof *rx);
    weft_stream_init(&rx->base, &rx_ops, WEFT_F_SEND);
    weft__waiter_init(&rx->w_);
    if (b->mode == WEFT_BROADCAST_WAIT) {
        /* Under send_lock_: no send runs between reading tail_ and adding
         * the cursor, so min_cache_ stays a lower bound (see the top). */
        weft__spin_lock_word(&b->send_lock_);
        /* Relaxed: tail_ is written only under send_lock_, which we hold. */
        uint64_t t = weft_atomic_load_relaxed(&b->tail_);
        cursor *c = cursor_new(b, t);
        weft__spin_unlock_word(&b->send_lock_);
        if (!c)
            return -ENOMEM;
        rx->cur_ = c;
        rx->pos_ = t;
    } else {
        /* Acquire: items published before this load are not ours to see,
         * but what a later load shows must be ordered after it anyway;
         * pairs with the senders' tail_ stores. */
        rx->pos_ = weft_atomic_load_acquire(&b->tail_);
    }
    rx->b_ = b;
    rx->state_ = HANDLE_LIVE;
    /* Relaxed: counts; a send that misses this receiver started before
     * the subscription returned. */
    weft_atomic_fetch_add_relaxed(&b->refs, 1);
    weft_atomic_fetch_add_relaxed(&b->rx_count, 1);
    return 0;
}

int weft_broadcast_new(weft_broadcast_tx *tx, weft_broadcast_rx *rx, size_t item_size,
                       size_t capacity, int mode)
{
    if (!tx || capacity == 0 || capacity > WEFT_CHAN_CAPACITY_MAX ||
        item_size > WEFT_CHAN_ITEM_MAX ||
        (mode != WEFT_BROADCAST_LAG && mode != WEFT_BROADCAST_WAIT)) {
        WEFT_MISUSE("weft_broadcast_new: tx NULL, capacity %zu not in 1..%zu, item_size %zu "
                    "above %zu, or mode %d unknown",
                    capacity, (size_t)WEFT_CHAN_CAPACITY_MAX, item_size,
                    (size_t)WEFT_CHAN_ITEM_MAX, mode);
        return -EINVAL;
    }
    uint64_t cap = 1;
    while (cap < capacity)
        cap <<= 1;
    /* Aligned by hand to a cache line (the allocator promises less), so
     * the lines of the struct are the lines of the machine. */
    void *raw = weft__calloc(sizeof(weft_broadcast) + WEFT_CACHE_LINE);
    if (!raw)
        return -ENOMEM;
    weft_broadcast *b = (weft_broadcast *)(((uintptr_t)raw + WEFT_CACHE_LINE - 1) &
                                           ~(uintptr_t)(WEFT_CACHE_LINE - 1));
    b->raw = raw;
    b->item_size = item_size;
    b->mode = mode;
    b->cap = cap;
    b->mask = cap - 1;
    b->words = (item_size + 7) / 8;
    b->stride = mode == WEFT_BROADCAST_LAG ? 8 * (1 + b->words) : item_size;
    size_t bytes = (size_t)cap * b->stride;
    if (bytes) {
        b->ring = weft__calloc(bytes);
        if (!b->ring) {
            weft__free(raw);
            return -ENOMEM;
        }
    }
    weft_atomic_init(&b->refs, 1);
    weft_atomic_init(&b->tx_count, 1);
    weft_atomic_init(&b->rx_count, 0);
    weft_atomic_init(&b->tail_, 0);
    weft_atomic_init(&b->send_lock_, 0);
    weft_atomic_init(&b->rx_parked_, 0);
    weft_atomic_init(&b->closed_, 0);
    weft_atomic_init(&b->tx_parked_, 0);
    weft_atomic_init(&b->list_lock_, 0);
    weft__waitq_init(&b->rxq_);
    weft__waitq_init(&b->txq_);
    if (rx) {
        int rc = rx_attach(b, rx);
        if (rc) {
            bc_free(b);
            return rc;
        }
    }
    tx->b_ = b;
    tx->state_ = HANDLE_LIVE;
    tx->reserved_ = 0;
    return 0;
}

int weft_broadcast_subscribe(weft_broadcast_tx *tx, weft_broadcast_rx *rx)
{
    if (tx_bad(tx, "weft_broadcast_subscribe"))
        return -EINVAL;
    if (!rx) {
        WEFT_MISUSE("weft_broadcast_subscribe: rx is NULL");
        return -EINVAL;
    }
    return rx_attach(tx->b_, rx);
}

int weft_broadcast_tx_clone(const weft_broadcast_tx *tx, weft_broadcast_tx *out)
{
    if (tx_bad(tx, "weft_broadcast_tx_clone"))
        return -EINVAL;
    if (!out) {
        WEFT_MISUSE("weft_broadcast_tx_clone: out is NULL");
        return -EINVAL;
    }
    /* Relaxed: the caller holds a reference, so neither count is zero. */
    weft_atomic_fetch_add_relaxed(&tx->b_->refs, 1);
    weft_atomic_fetch_add_relaxed(&tx->b_->tx_count, 1);
    *out = *tx;
    return 0;
}

void weft_broadcast_tx_drop(weft_broadcast_tx *tx)
{
    if (tx_bad(tx, "weft_broadcast_tx_drop"))
        return;
    weft_broadcast *b = tx->b_;
    tx->state_ = HANDLE_DEAD;
    tx->b_ = NULL;
    /* AcqRel: the last sender's decrement is ordered after every other
     * sender's sends (their release halves). */
    if (weft_atomic_fetch_sub_acq_rel(&b->tx_count, 1) == 1) {
        weft__waitq_lock(&b->rxq_);
        /* Release: a receiver that sees closed_ (acquire) sees every
         * item published before; set under rxq's lock, so a receiver
         * parking (which checks closed_ under it) cannot miss it. */
        weft_atomic_store_release(&b->closed_, 1u);
        serve_all_unlock(&b->rxq_, &b->rx_parked_);
    }
    bc_unref(b);
}

/* Take rx's waiter out of rxq if it is queued (a wake it got is dropped:
 * every receiver is woken for itself). */
static void rx_unqueue(weft_broadcast *b, weft_broadcast_rx *rx)
{
    uint32_t st = weft__waiter_state(&rx->w_);
    if (st == WEFT__WAITER_IDLE)
        return;
    if (st == WEFT__WAITER_QUEUED) {
        weft__waitq_lock(&b->rxq_);
        /* Relaxed: under the lock every serve holds. */
        if (weft_atomic_load_relaxed(&rx->w_.state_) == WEFT__WAITER_QUEUED) {
            weft__waitq_remove(&b->rxq_, &rx->w_);
            if (weft__waitq_empty(&b->rxq_))
                /* Relaxed: cleared only under the lock. */
                weft_atomic_store_relaxed(&b->rx_parked_, 0u);
        }
        weft__waitq_unlock(&b->rxq_);
    }
    weft__waiter_reset(&rx->w_);
}

void weft_broadcast_rx_drop(weft_broadcast_rx *rx)
{
    if (rx_bad(rx, "weft_broadcast_rx_drop"))
        return;
    weft_broadcast *b = rx->b_;
    rx_unqueue(b, rx);
    if (rx->cur_)
        cursor_remove(b, rx->cur_);
    rx->cur_ = NULL;
    rx->state_ = HANDLE_DEAD;
    rx->b_ = NULL;
    /* Seq_cst: with the load of tx_parked_ below, the Dekker pair of a
     * parking sender's store of tx_parked_ and its load of rx_count (in
     * send_locked): either it sees this receiver gone or we see it parked. */
    weft_atomic_fetch_sub_seq_cst(&b->rx_count, 1);
    if (weft_atomic_load_seq_cst(&b->tx_parked_))
        wake_senders(b);
    bc_unref(b);
}

static void rx_stream_drop(weft_stream *s)
{
    weft_broadcast_rx *rx = (weft_broadcast_rx *)s;
    if (rx->state_ == HANDLE_LIVE)
        weft_broadcast_rx_drop(rx);
}

uint64_t weft_broadcast_rx_missed(const weft_broadcast_rx *rx)
{
    return rx ? rx->missed_ : 0;
}

/* ---- sending ---------------------------------------------------------------------------------- */

/* The minimum of the cursors (WAIT), or `t` with none. */
static uint64_t cursors_min(weft_broadcast *b, uint64_t t)
{
    uint64_t m = t;
    weft__spin_lock_word(&b->list_lock_);
    for (cursor *c = b->cursors; c; c = c->next) {
        /* Seq_cst: the sender's half of the Dekker pair with a receiver's
         * cursor store and tx_parked_ load (see the top); it is also an
         * acquire, ordering the receiver's copies before our overwrite. */
        uint64_t p = weft_atomic_load_seq_cst(&c->pos);
        if (p < m)
            m = p;
    }
    weft__spin_unlock_word(&b->list_lock_);
    return m;
}

static void lag_write(weft_broadcast *b, uint64_t t, const void *item)
{
    unsigned char *slot = slot_of(b, t);
    /* Relaxed: the release stores of the words below keep it before them. */
    weft_atomic_store_relaxed(stamp_of(slot), 2 * t + 1);
    _Atomic uint64_t *w = words_of(slot);
    const unsigned char *src = item;
    size_t full = b->item_size / 8;
    for (size_t i = 0; i < full; i++) {
        uint64_t v;
        memcpy(&v, src + 8 * i, 8);
        /* Release: orders the odd stamp before this word, so a reader
         * that loads this word (acquire) then sees the stamp changed. */
        weft_atomic_store_release(&w[i], v);
    }
    if (full < b->words) {
        uint64_t v = 0;
        memcpy(&v, src + 8 * full, b->item_size - 8 * full);
        weft_atomic_store_release(&w[full], v); /* as above */
    }
    /* Release: a reader that loads the even stamp (acquire) sees the words. */
    weft_atomic_store_release(stamp_of(slot), 2 * t + 2);
}

/* Send one item if there is room: 0, -EAGAIN, -EPIPE. In WAIT mode, the
 * minimum of the cursors it computed (if it did) goes to *min_seen. */
static int send_locked(weft_broadcast *b, const void *item, uint64_t *min_seen)
{
    /* Seq_cst: a parking sender's half of the Dekker pair with a dropped
     * receiver's decrement and tx_parked_ load (weft_broadcast_rx_drop). */
    if (weft_atomic_load_seq_cst(&b->rx_count) == 0)
        return -EPIPE;
    weft__spin_lock_word(&b->send_lock_);
    /* Relaxed: written only under send_lock_. */
    uint64_t t = weft_atomic_load_relaxed(&b->tail_);
    if (b->mode == WEFT_BROADCAST_WAIT) {
        if (t - b->min_cache_ >= b->cap) {
            b->min_cache_ = cursors_min(b, t);
            if (min_seen)
                *min_seen = b->min_cache_;
            if (t - b->min_cache_ >= b->cap) {
                weft__spin_unlock_word(&b->send_lock_);
                return -EAGAIN;
            }
        }
        if (b->item_size)
            memcpy(slot_of(b, t), item, b->item_size);
    } else {
        lag_write(b, t, item);
    }
    /* Seq_cst: publishes the item (a release: pairs with the receivers'
     * acquire loads of tail_) and is the sender's half of the Dekker pair
     * with a parking receiver's rx_parked_ store and tail_ load. */
    weft_atomic_store_seq_cst(&b->tail_, t + 1);
    weft__spin_unlock_word(&b->send_lock_);
    if (weft_atomic_load_seq_cst(&b->rx_parked_)) /* the other half */
        wake_receivers(b);
    return 0;
}

int weft_broadcast_try_send(weft_broadcast_tx *tx, const void *item)
{
    if (tx_bad(tx, "weft_broadcast_try_send"))
        return -EINVAL;
    if (!item && tx->b_->item_size) {
        WEFT_MISUSE("weft_broadcast_try_send: item is NULL");
        return -EINVAL;
    }
    return send_locked(tx->b_, item, NULL);
}

static weft_poll send_poll(weft_future *f, weft_cx *cx, void *out);
static void send_drop(weft_future *f);

static const weft_future_ops send_ops = {
    .name = "weft_broadcast_send", .out_size = sizeof(int), .poll = send_poll, .drop = send_drop,
};

void weft_broadcast_send_init(weft_broadcast_send *f, weft_broadcast_tx *tx, const void *item)
{
    weft_future_init(&f->base, &send_ops, WEFT_F_SEND);
    f->tx_ = tx;
    f->item_ = item;
    f->step_ = STEP_INIT;
    f->reserved_ = 0;
    weft__waiter_init(&f->w_);
    if (tx_bad(tx, "weft_broadcast_send_init") ||
        (!item && tx->b_->item_size && (WEFT_MISUSE("weft_broadcast_send_init: item is NULL"), 1)))
        f->tx_ = NULL; /* its poll completes with -EINVAL */
}

static weft_poll send_done(weft_broadcast_send *f, void *out, int rc)
{
    f->step_ = STEP_DONE;
    if (out)
        *(int *)out = rc;
    return WEFT_READY;
}

static weft_poll send_poll(weft_future *fut, weft_cx *cx, void *out)
{
    weft_broadcast_send *f = (weft_broadcast_send *)fut;
    if (weft__chaos_pending(fut, cx))
        return WEFT_PENDING;
    if (!f->tx_)
        return send_done(f, out, -EINVAL);
    weft_broadcast *b = f->tx_->b_;
    if (f->step_ == STEP_QUEUED) {
        /* SERVED: room may have appeared (acquire inside). */
        if (weft__waiter_poll(&b->txq_, &f->w_, cx->waker) != WEFT__WAITER_SERVED)
            return WEFT_PENDING;
        weft__waiter_reset(&f->w_);
        f->step_ = STEP_INIT;
    } else if (!weft_coop_proceed(cx)) {
        return WEFT_PENDING;
    }
    int rc = send_locked(b, f->item_, NULL);
    if (rc != -EAGAIN)
        return send_done(f, out, rc);
    weft__waitq_lock(&b->txq_);
    /* Seq_cst: the sender's half of the Dekker pair with a receiver's
     * cursor store and tx_parked_ load; the cursor loads in send_locked
     * come after it. */
    weft_atomic_store_seq_cst(&b->tx_parked_, 1u);
    uint64_t m = 0;
    rc = send_locked(b, f->item_, &m);
    if (rc != -EAGAIN) {
        if (weft__waitq_empty(&b->txq_))
            /* Relaxed: cleared only under the lock. */
            weft_atomic_store_relaxed(&b->tx_parked_, 0u);
        weft__waitq_unlock(&b->txq_);
        return send_done(f, out, rc);
    }
    b->park_min_ = m;
    weft__waitq_push_back(&b->txq_, &f->w_, cx->waker);
    f->step_ = STEP_QUEUED;
    weft__waitq_unlock(&b->txq_);
    return WEFT_PENDING;
}

static void send_drop(weft_future *fut)
{
    weft_broadcast_send *f = (weft_broadcast_send *)fut;
    if (f->step_ != STEP_QUEUED)
        return;
    weft_broadcast *b = f->tx_->b_;
    weft__waitq_lock(&b->txq_);
    /* Relaxed: under the lock every serve holds. A served waiter passes
     * nothing on: every waiting sender was served with it. */
    if (weft_atomic_load_relaxed(&f->w_.state_) == WEFT__WAITER_QUEUED) {
        weft__waitq_remove(&b->txq_, &f->w_);
        if (weft__waitq_empty(&b->txq_))
            /* Relaxed: cleared only under the lock. */
            weft_atomic_store_relaxed(&b->tx_parked_, 0u);
    }
    weft__waitq_unlock(&b->txq_);
    weft__waiter_reset(&f->w_);
    f->step_ = STEP_DONE;
}

int weft_broadcast_send_blocking(weft_broadcast_tx *tx, const void *item)
{
    if (tx_bad(tx, "weft_broadcast_send_blocking"))
        return -EINVAL;
    weft_broadcast_send f;
    weft_broadcast_send_init(&f, tx, item);
    int out = -EINVAL;
    int rc = weft__block_poll(&f.base, &out, "weft_broadcast_send_blocking");
    weft_future_drop(&f.base);
    return rc ? rc : out;
}

/* ---- receiving ------------------------------------------------------------------------------- */

/* Publish rx's position (WAIT) after it read up to `pos_`, from `old`. */
static void publish(weft_broadcast *b, weft_broadcast_rx *rx, uint64_t old)
{
    cursor *c = rx->cur_;
    /* Seq_cst: a release (our copies of the items come before a sender's
     * overwrite; pairs with the seq_cst load in cursors_min) and the
     * receiver's half of the Dekker pair with a parking sender's
     * tx_parked_ store and cursor loads. */
    weft_atomic_store_seq_cst(&c->pos, rx->pos_);
    if (!weft_atomic_load_seq_cst(&b->tx_parked_))
        return;
    weft__waitq_lock(&b->txq_);
    /* Relaxed: under the lock. Wake only if we may have been the slowest
     * when the sender last parked (see the top). */
    if (weft_atomic_load_relaxed(&b->tx_parked_) && old <= b->park_min_)
        serve_all_unlock(&b->txq_, &b->tx_parked_);
    else
        weft__waitq_unlock(&b->txq_);
}

/* LAG: the receiver at `pos` finds its position overwritten by the write
 * of position q (from the slot's stamp): where it continues. */
static uint64_t lag_restart(weft_broadcast *b, uint64_t q)
{
    /* Acquire: pairs with the senders' tail_ stores. */
    uint64_t t = weft_atomic_load_acquire(&b->tail_);
    uint64_t from_tail = t > b->cap ? t - b->cap : 0;
    uint64_t from_slot = q - b->cap + 1; /* q >= pos + cap */
    return from_tail > from_slot ? from_tail : from_slot;
}

/* LAG: copy position `pos` to `item`: 0, or the position to continue from
 * (> pos) when it was overwritten. */
static uint64_t lag_read(weft_broadcast *b, uint64_t pos, void *item)
{
    unsigned char *slot = slot_of(b, pos);
    /* Acquire: pairs with the writer's release store of the even stamp,
     * so the words below are at least that write's. */
    uint64_t s1 = weft_atomic_load_acquire(stamp_of(slot));
    if (s1 != 2 * pos + 2) {
        WEFT_ASSERT(s1 > 2 * pos + 2); /* published, so written at least once */
        return lag_restart(b, (s1 - 1) / 2);
    }
    _Atomic uint64_t *w = words_of(slot);
    unsigned char *dst = item;
    size_t full = b->item_size / 8;
    for (size_t i = 0; i < full; i++) {
        /* Acquire: a word of a newer write makes the stamp load below see
         * that write's odd stamp (its release store of the word orders
         * it), and keeps that load after the copy. */
        uint64_t v = weft_atomic_load_acquire(&w[i]);
        memcpy(dst + 8 * i, &v, 8);
    }
    if (full < b->words) {
        uint64_t v = weft_atomic_load_acquire(&w[full]); /* as above */
        memcpy(dst + 8 * full, &v, b->item_size - 8 * full);
    }
    /* Relaxed: the acquire loads above keep it after the copy. */
    uint64_t s2 = weft_atomic_load_relaxed(stamp_of(slot));
    if (s2 != s1)
        return lag_restart(b, (s2 - 1) / 2);
    return 0;
}

/* Receive up to `max` items into `items` without waiting: the count (>= 1),
 * or (count 0) the lag notice n > 0 (position moved), -EPIPE or -EAGAIN.
 * A lag after some items stops the run; it is found by the next call. */
static int64_t rx_try_many(weft_broadcast_rx *rx, void *items, size_t max, size_t *n)
{
    weft_broadcast *b = rx->b_;
    *n = 0;
    /* Acquire: pairs with the senders' tail_ stores, so the items below
     * position t are in their slots. */
    uint64_t t = weft_atomic_load_acquire(&b->tail_);
    uint64_t pos = rx->pos_;
    if (pos == t) {
        /* Acquire: pairs with the release store of closed_; tail_ is then
         * final, and reloaded to see the last sends. */
        if (!weft_atomic_load_acquire(&b->closed_))
            return -EAGAIN;
        t = weft_atomic_load_acquire(&b->tail_);
        if (pos == t)
            return -EPIPE;
    }
    if (b->mode == WEFT_BROADCAST_WAIT) {
        uint64_t k = t - pos;
        if (k > max)
            k = max;
        if (b->item_size) {
            /* The run is contiguous in the ring but for one wrap. */
            size_t first = (size_t)(b->cap - (pos & b->mask));
            if (first > k)
                first = (size_t)k;
            memcpy(items, slot_of(b, pos), first * b->item_size);
            if (first < k)
                memcpy((unsigned char *)items + first * b->item_size, b->ring,
                       ((size_t)k - first) * b->item_size);
        }
        rx->pos_ = pos + k;
        publish(b, rx, pos);
        *n = (size_t)k;
        return (int64_t)k;
    }
    if (t - pos > b->cap) {
        rx->pos_ = t - b->cap;
        return (int64_t)(rx->pos_ - pos);
    }
    unsigned char *dst = items;
    size_t k = 0;
    while (k < max && pos < t) {
        uint64_t next = lag_read(b, pos, dst + k * b->item_size);
        if (next) {
            if (k)
                break;
            rx->pos_ = next;
            return (int64_t)(next - pos);
        }
        pos++;
        k++;
    }
    rx->pos_ = pos;
    *n = k;
    return (int64_t)k;
}

int64_t weft_broadcast_try_recv(weft_broadcast_rx *rx, void *item)
{
    if (rx_bad(rx, "weft_broadcast_try_recv"))
        return -EINVAL;
    if (!item && rx->b_->item_size) {
        WEFT_MISUSE("weft_broadcast_try_recv: item is NULL");
        return -EINVAL;
    }
    size_t n;
    int64_t r = rx_try_many(rx, item, 1, &n);
    return n ? 0 : r;
}

/* Poll for up to `max` items: READY with *res as rx_try_many's (count,
 * lag notice or -EPIPE), or PENDING with rx's waiter queued. */
static weft_poll rx_poll(weft_broadcast_rx *rx, weft_cx *cx, void *items, size_t max,
                         size_t *n, int64_t *res)
{
    weft_broadcast *b = rx->b_;
    for (;;) {
        uint32_t st = weft__waiter_state(&rx->w_);
        if (st == WEFT__WAITER_SERVED)
            weft__waiter_reset(&rx->w_);
        int64_t r = rx_try_many(rx, items, max, n);
        if (r != -EAGAIN) {
            if (st == WEFT__WAITER_QUEUED)
                rx_unqueue(b, rx);
            *res = r;
            return WEFT_READY;
        }
        if (st == WEFT__WAITER_QUEUED) {
            /* Still queued: a send after our queueing serves us. */
            if (weft__waiter_poll(&b->rxq_, &rx->w_, cx->waker) == WEFT__WAITER_QUEUED)
                return WEFT_PENDING;
            continue; /* served meanwhile */
        }
        weft__waitq_lock(&b->rxq_);
        /* Seq_cst: the receiver's half of the Dekker pair with a sender's
         * tail_ store and rx_parked_ load (see the top). */
        weft_atomic_store_seq_cst(&b->rx_parked_, 1u);
        uint64_t t = weft_atomic_load_seq_cst(&b->tail_);
        /* Relaxed: closed_ is set under this lock. */
        if (t != rx->pos_ || weft_atomic_load_relaxed(&b->closed_)) {
            if (weft__waitq_empty(&b->rxq_))
                /* Relaxed: cleared only under the lock. */
                weft_atomic_store_relaxed(&b->rx_parked_, 0u);
            weft__waitq_unlock(&b->rxq_);
            continue;
        }
        weft__waitq_push_back(&b->rxq_, &rx->w_, cx->waker);
        weft__waitq_unlock(&b->rxq_);
        return WEFT_PENDING;
    }
}

static weft_next rx_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                   size_t *n)
{
    weft_broadcast_rx *rx = (weft_broadcast_rx *)s;
    *n = 0;
    if (rx->state_ != HANDLE_LIVE)
        return WEFT_NEXT_DONE;
    if (weft__chaos_pending_stream(s, cx) || !weft_coop_proceed(cx))
        return WEFT_NEXT_PENDING;
    for (;;) {
        int64_t r;
        if (rx_poll(rx, cx, items, max, n, &r) == WEFT_PENDING)
            return WEFT_NEXT_PENDING;
        if (*n)
            return WEFT_NEXT_ITEM;
        if (r < 0)
            return WEFT_NEXT_DONE;
        rx->missed_ += (uint64_t)r; /* a lag notice: skip it */
    }
}

static weft_next rx_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    size_t n;
    return rx_poll_next_many(s, cx, item, 1, &n);
}

static weft_poll recv_poll(weft_future *f, weft_cx *cx, void *out);
static void recv_drop(weft_future *f);

static const weft_future_ops recv_ops = {
    .name = "weft_broadcast_recv", .out_size = sizeof(int64_t), .poll = recv_poll,
    .drop = recv_drop,
};

void weft_broadcast_recv_init(weft_broadcast_recv *f, weft_broadcast_rx *rx, void *item)
{
    weft_future_init(&f->base, &recv_ops, WEFT_F_SEND);
    f->rx_ = rx;
    f->item_ = item;
    if (rx_bad(rx, "weft_broadcast_recv_init") ||
        (!item && rx->b_->item_size && (WEFT_MISUSE("weft_broadcast_recv_init: item is NULL"), 1)))
        f->rx_ = NULL; /* its poll completes with -EINVAL */
}

static weft_poll recv_poll(weft_future *fut, weft_cx *cx, void *out)
{
    weft_broadcast_recv *f = (weft_broadcast_recv *)fut;
    int64_t r = -EINVAL;
    if (weft__chaos_pending(fut, cx))
        return WEFT_PENDING;
    if (f->rx_) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        size_t n;
        if (rx_poll(f->rx_, cx, f->item_, 1, &n, &r) == WEFT_PENDING)
            return WEFT_PENDING;
        if (n)
            r = 0;
    }
    if (out)
        *(int64_t *)out = r;
    return WEFT_READY;
}

static void recv_drop(weft_future *fut)
{
    weft_broadcast_recv *f = (weft_broadcast_recv *)fut;
    if (f->rx_ && f->rx_->state_ == HANDLE_LIVE)
        rx_unqueue(f->rx_->b_, f->rx_);
}

int64_t weft_broadcast_recv_blocking(weft_broadcast_rx *rx, void *item)
{
    if (rx_bad(rx, "weft_broadcast_recv_blocking"))
        return -EINVAL;
    weft_broadcast_recv f;
    weft_broadcast_recv_init(&f, rx, item);
    int64_t out = -EINVAL;
    int rc = weft__block_poll(&f.base, &out, "weft_broadcast_recv_blocking");
    weft_future_drop(&f.base);
    return rc ? rc : out;
}
