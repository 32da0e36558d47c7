/* weft — channels: values passed between tasks and threads.
 *
 *  - oneshot: one value, once; the receiver learns if the sender is gone.
 *  - mpsc (bounded and unbounded) and mpmc (bounded): a queue of items.
 *  - broadcast: every receiver sees every item.
 *  - watch: the latest value; readers take no lock.
 *
 * Common rules (docs/channels.md):
 *  - Items are fixed-size copies of `item_size` bytes, chosen at creation.
 *  - Handles are caller-owned structs holding a reference on a shared
 *    channel. Clone a handle to share it; drop each handle exactly once.
 *    When the last sender is dropped, receivers drain what was sent and
 *    then see the channel closed (-EPIPE). When the last receiver is
 *    dropped, sends fail with -EPIPE and the item stays the caller's.
 *  - A receive is all-or-nothing per poll: an item leaves the channel only
 *    in the poll that returns it. A pending send that is dropped sent
 *    nothing; a send that fails leaves the item with the caller. So no
 *    item is ever lost or duplicated, whatever is cancelled when.
 *  - The mpsc/mpmc receiver is a stream (poll_next is the receive) and the
 *    sender is a sink (weft/iter.h), so the iterator combinators apply.
 *  - Every future here is Send. Sends and receives may be called from any
 *    thread; the `_blocking` forms are for threads that run no tasks and
 *    return -EDEADLK on a worker or a sim runtime's thread.
 *  - Bad arguments return -EINVAL (a message in debug builds); allocation
 *    failure returns -ENOMEM with nothing half-made. */
#ifndef WEFT_CHANNELS_H
#define WEFT_CHANNELS_H

#include "weft/future.h"
#include "weft/iter.h"
#include "weft/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest item and capacity a channel accepts (larger: -EINVAL). */
#define WEFT_CHAN_ITEM_MAX ((size_t)1 << 16)
#define WEFT_CHAN_CAPACITY_MAX ((size_t)1 << 24)

/* ==== mpsc and mpmc ====================================================== */

/* One queue type serves three kinds, chosen at creation:
 *  - mpsc bounded: many senders, one receiver, at most `capacity` items
 *    buffered (a send waits for room);
 *  - mpsc unbounded: never full (a send never waits; memory grows);
 *  - mpmc bounded: many senders and many receivers (weft_chan_rx_clone);
 *    each item goes to exactly one receiver.
 *
 * The bounded queue is a ring of slots, each with a sequence stamp (one
 * CAS per send, none per receive on mpsc); the receiver drains runs of
 * items and releases them with one atomic per batch. Senders wake the
 * receiver only when it is parked; a parked receiver is woken by the send
 * that follows its final check. */
typedef struct weft_chan weft_chan;

/* A sender: a sink of items (base), one reference on the channel. */
typedef struct weft_chan_tx {
    weft_sink base;
    weft_chan *ch_;
    weft_sync_waiter w_;      /* the sink's wait for room */
    unsigned char *pending_;  /* the sink's item accepted while full */
    uint32_t state_;
    uint32_t reserved_;
} weft_chan_tx;

/* A receiver: a stream of items (base), one reference on the channel. */
typedef struct weft_chan_rx {
    weft_stream base;
    weft_chan *ch_;
    weft_sync_waiter w_;      /* mpmc: this receiver's wait for an item */
    uint32_t state_;
    uint32_t reserved_;
} weft_chan_rx;

/* Create a channel and its first sender and receiver. `capacity` >= 1
 * (bounded kinds); `item_size` may be 0 (items carry no data). Returns 0,
 * -EINVAL or -ENOMEM. The handles may be moved until first used. */
WEFT_API WEFT_NODISCARD int weft_mpsc_new(weft_chan_tx *tx, weft_chan_rx *rx,
                                          size_t item_size, size_t capacity);
WEFT_API WEFT_NODISCARD int weft_mpsc_unbounded_new(weft_chan_tx *tx, weft_chan_rx *rx,
                                                    size_t item_size);
WEFT_API WEFT_NODISCARD int weft_mpmc_new(weft_chan_tx *tx, weft_chan_rx *rx,
                                          size_t item_size, size_t capacity);

/* Another sender on the same channel in `out`. 0 or -EINVAL. Any thread.
 * Cloning a sender of a closed channel works (its sends fail). */
WEFT_API WEFT_NODISCARD int weft_chan_tx_clone(const weft_chan_tx *tx, weft_chan_tx *out);
/* Drop a sender; the last one closes the channel for receivers (they
 * drain what was sent first). A sink item accepted but not yet flushed
 * is pushed if there is room, else discarded (flush before dropping). */
WEFT_API void weft_chan_tx_drop(weft_chan_tx *tx);
/* Another receiver (mpmc only; -EINVAL on mpsc). */
WEFT_API WEFT_NODISCARD int weft_chan_rx_clone(const weft_chan_rx *rx, weft_chan_rx *out);
/* Drop a receiver; the last one closes the channel for senders (sends
 * fail with -EPIPE, waiting sends complete with -EPIPE, items still
 * buffered are discarded: drain with try_recv first if they own memory). */
WEFT_API void weft_chan_rx_drop(weft_chan_rx *rx);
/* Close from the receiving side without dropping: sends fail from now
 * on; receivers still drain what is buffered, then see -EPIPE. */
WEFT_API void weft_chan_rx_close(weft_chan_rx *rx);

/* Send without waiting: 0 (the item was copied in), -EAGAIN (full),
 * -EPIPE (closed). On error the item stays the caller's. Any thread. */
WEFT_API WEFT_NODISCARD int weft_chan_try_send(weft_chan_tx *tx, const void *item);
/* Receive without waiting: 0 (an item written to `item`), -EAGAIN
 * (empty), -EPIPE (closed and drained). */
WEFT_API WEFT_NODISCARD int weft_chan_try_recv(weft_chan_rx *rx, void *item);
/* Up to `max` items into `items`: the count (>= 1), -EAGAIN or -EPIPE. */
WEFT_API WEFT_NODISCARD long weft_chan_try_recv_many(weft_chan_rx *rx, void *items,
                                                     size_t max);

/* Items buffered now (a snapshot) and the capacity (0: unbounded). */
WEFT_API size_t weft_chan_len(const weft_chan_rx *rx);
WEFT_API size_t weft_chan_capacity(const weft_chan_rx *rx);
/* True once the channel is closed for senders (every receiver dropped or
 * weft_chan_rx_close called). */
WEFT_API bool weft_chan_tx_is_closed(const weft_chan_tx *tx);

/* Send, waiting for room: output int, 0 (sent) or -EPIPE (closed; the
 * item stays the caller's). `item` is read when the send happens, so it
 * must stay valid and unchanged until the future completes or is dropped.
 * Cancel safety: dropped while pending, nothing was sent (and a wake it
 * was given for room is handed to the next waiting sender). */
typedef struct weft_chan_send {
    weft_future base;
    weft_chan_tx *tx_;
    const void *item_;
    weft_sync_waiter w_;
} weft_chan_send;
WEFT_API void weft_chan_send_init(weft_chan_send *f, weft_chan_tx *tx, const void *item);

/* Receive one item: output int, 0 (written to `item`) or -EPIPE (closed
 * and drained). Cancel safety: nothing is lost — the receive is the
 * receiver's poll_next, so an item leaves the channel only in the poll
 * that completes this future. The receiver must outlive the future and
 * be polled by one future at a time. */
typedef struct weft_chan_recv {
    weft_future base;
    weft_chan_rx *rx_;
    void *item_;
} weft_chan_recv;
WEFT_API void weft_chan_recv_init(weft_chan_recv *f, weft_chan_rx *rx, void *item);

/* Receive up to `max` (>= 1) items at once into `items`: output size_t,
 * the count, 0 only when the channel is closed and drained. Charges the
 * task's budget once per batch. Cancel safety: as weft_chan_recv. */
typedef struct weft_chan_recv_many {
    weft_future base;
    weft_chan_rx *rx_;
    void *items_;
    size_t max_;
} weft_chan_recv_many;
WEFT_API void weft_chan_recv_many_init(weft_chan_recv_many *f, weft_chan_rx *rx, void *items,
                                       size_t max);

/* Blocking forms for threads that run no tasks: 0, -EPIPE, -EDEADLK,
 * -EINVAL or -ENOMEM; recv_many returns the count (>= 1) instead of 0. */
WEFT_API WEFT_NODISCARD int weft_chan_send_blocking(weft_chan_tx *tx, const void *item);
WEFT_API WEFT_NODISCARD int weft_chan_recv_blocking(weft_chan_rx *rx, void *item);
WEFT_API WEFT_NODISCARD long weft_chan_recv_many_blocking(weft_chan_rx *rx, void *items,
                                                          size_t max);

/* An eventfd readable while `rx` may have items (or the channel closed),
 * for a host event loop (epoll, libuv uv_poll): wait for it, then call
 * weft_chan_try_recv / _try_recv_many until -EAGAIN, which re-arms it.
 * The channel owns the fd (closed with the channel); the receiver must
 * not be polled as a stream at the same time. 0 with *fd set, -EINVAL,
 * or the errno of eventfd(2) (negative). */
WEFT_API WEFT_NODISCARD int weft_chan_rx_eventfd(weft_chan_rx *rx, int *fd);

/* ==== oneshot ============================================================ */

/* One value, sent at most once, from one sender to one receiver (tokio's
 * oneshot). The channel is one allocation: a state word, the two ends'
 * wakers and the item's bytes, freed by the last of the two handles to
 * go. Sending never waits; the receiver waits with weft_oneshot_recv (or
 * try_recv, or recv_blocking); the sender may wait for the receiver to
 * go with weft_oneshot_closed, to stop work nobody waits for. */
typedef struct weft_oneshot weft_oneshot;

/* The sender: spent (os_ NULL) once it has sent or been dropped. */
typedef struct weft_oneshot_tx {
    weft_oneshot *os_;
} weft_oneshot_tx;

/* The receiver: drop it exactly once, whether it received or not. */
typedef struct weft_oneshot_rx {
    weft_oneshot *os_;
} weft_oneshot_rx;

/* Create a oneshot of `item_size`-byte items (0: the value carries no
 * data, only the fact that it was sent) and its two ends. Returns 0,
 * -EINVAL (tx or rx NULL, item_size > WEFT_CHAN_ITEM_MAX) or -ENOMEM; on
 * an error both handles are left spent (their drops do nothing). The
 * handles hold only a pointer: they may be moved at any time, but a
 * pending weft_oneshot_recv / _closed refers to its handle where it is.
 * Any thread. */
WEFT_API WEFT_NODISCARD int weft_oneshot_new(weft_oneshot_tx *tx, weft_oneshot_rx *rx,
                                             size_t item_size);

/* Send `item` (item_size bytes, copied; NULL only when item_size is 0)
 * and spend the sender: after the call the sender is spent whatever it
 * returns, so it is never dropped after a send. Returns 0 (the value is
 * stored for the receiver, which is woken), -EPIPE (the receiver was
 * already dropped: nothing was stored and the item stays the caller's),
 * or -EINVAL (tx NULL or spent; item NULL with item_size > 0: then the
 * sender is dropped unsent, and the receiver sees -EPIPE). Never waits.
 * Any thread. */
WEFT_API WEFT_NODISCARD int weft_oneshot_send(weft_oneshot_tx *tx, const void *item);
/* Drop the sender without sending: the receiver sees -EPIPE (a pending
 * recv is woken). A no-op on a spent sender (after a send or a drop) or
 * NULL. Any thread. */
WEFT_API void weft_oneshot_tx_drop(weft_oneshot_tx *tx);
/* True once the receiver was dropped (a send would fail with -EPIPE). A
 * snapshot: false may turn true at any moment. NULL or spent: true (and a
 * misuse report). Any thread. */
WEFT_API bool weft_oneshot_tx_is_closed(const weft_oneshot_tx *tx);

/* Receive without waiting: 0 (the value written to `item`), -EAGAIN
 * (nothing sent yet, the sender still holds it), -EPIPE (the sender was
 * dropped without sending, or the value was already received), -EINVAL
 * (rx NULL or dropped; item NULL with item_size > 0). Any thread, but one
 * receive at a time per receiver. */
WEFT_API WEFT_NODISCARD int weft_oneshot_try_recv(weft_oneshot_rx *rx, void *item);
/* Drop the receiver: the sender's sends fail with -EPIPE from now on and a
 * pending weft_oneshot_closed is woken. A value sent and never received
 * is discarded (receive it first if it owns memory). A no-op on NULL or a
 * handle already dropped. No recv future may be pending on it. Any
 * thread. */
WEFT_API void weft_oneshot_rx_drop(weft_oneshot_rx *rx);

/* Receive the value: output int, 0 (written to `item`, item_size bytes)
 * or -EPIPE (the sender was dropped without sending; also, with a misuse
 * report, when the value was received before: a oneshot gives it once),
 * -EINVAL (misuse at init: rx NULL or dropped, item NULL with item_size
 * > 0; READY at the first poll). `rx` and `item` must outlive the
 * future; one future per receiver at a time. Send. Cancel safety: nothing
 * is lost — the value stays in the oneshot until the poll that returns
 * it, so a recv dropped while pending leaves it for the next receive
 * (a fresh weft_oneshot_recv, try_recv or recv_blocking); the drop takes
 * back the waker it registered. */
typedef struct weft_oneshot_recv {
    weft_future base;
    weft_oneshot_rx *rx_;
    void *item_;
    uint32_t step_;
    uint32_t reserved_;
} weft_oneshot_recv;
WEFT_API void weft_oneshot_recv_init(weft_oneshot_recv *f, weft_oneshot_rx *rx, void *item);

/* Wait for the receiver to be dropped (tokio's Sender::closed): output
 * none; READY once weft_oneshot_tx_is_closed would say true (at once if
 * it already does; also at once, with a misuse report, on a NULL or spent
 * sender). `tx` must outlive the future and must not send or be dropped
 * while the future is pending. Send. Cancel safety: nothing is lost —
 * closing is a state, so a later wait sees it; the drop takes back the
 * waker it registered. */
typedef struct weft_oneshot_closed {
    weft_future base;
    weft_oneshot_tx *tx_;
    uint32_t step_;
    uint32_t reserved_;
} weft_oneshot_closed;
WEFT_API void weft_oneshot_closed_init(weft_oneshot_closed *f, weft_oneshot_tx *tx);

/* Receive, parking the calling thread until the value or the sender's
 * drop: 0, -EPIPE, -EINVAL (as try_recv), -EDEADLK (misuse: called on a
 * worker or a sim runtime's thread; nothing was received) or -ENOMEM
 * (nothing was received). For threads that run no tasks. */
WEFT_API WEFT_NODISCARD int weft_oneshot_recv_blocking(weft_oneshot_rx *rx, void *item);

/* ==== broadcast ========================================================== */

/* Every receiver sees every item sent after it subscribed (tokio's
 * broadcast). Items live in a ring of `capacity` slots (rounded up to a
 * power of two, as tokio does). Two modes, chosen at creation:
 *  - WEFT_BROADCAST_LAG: a full ring overwrites its oldest item, so a send
 *    never waits; a receiver that fell behind is told once how many items
 *    it missed and continues from the oldest one still retained.
 *  - WEFT_BROADCAST_WAIT: no receiver lags; a send waits until the slowest
 *    receiver has taken the oldest item (back-pressure). A dropped
 *    receiver no longer holds senders back.
 * Receivers read runs of published items and, in WAIT mode, publish how
 * far they got once per run; senders look at the slowest receiver only
 * when the ring looks full, and wake receivers only when one is parked. */
typedef struct weft_broadcast weft_broadcast;

#define WEFT_BROADCAST_LAG 0
#define WEFT_BROADCAST_WAIT 1

/* A sender: one reference on the channel. */
typedef struct weft_broadcast_tx {
    weft_broadcast *b_;
    uint32_t state_;
    uint32_t reserved_;
} weft_broadcast_tx;

/* A receiver: a stream of items (base; poll_next skips lag notices and
 * counts the items skipped, see weft_broadcast_rx_missed), one reference
 * on the channel. Pinned after its first poll. */
typedef struct weft_broadcast_rx {
    weft_stream base;
    weft_broadcast *b_;
    void *cur_;          /* WAIT mode: where this receiver publishes its position */
    uint64_t pos_;       /* the next position it reads */
    uint64_t missed_;    /* items the stream form skipped */
    weft_sync_waiter w_; /* its wait for an item */
    uint32_t state_;
    uint32_t reserved_;
} weft_broadcast_rx;

/* Create a channel in `mode` (WEFT_BROADCAST_LAG or _WAIT) and its first
 * sender, and a first receiver in `rx` unless it is NULL. `capacity` >= 1
 * (rounded up to a power of two); `item_size` may be 0. Returns 0, -EINVAL
 * or -ENOMEM (nothing made). Any thread. The handles may be moved until
 * first used. */
WEFT_API WEFT_NODISCARD int weft_broadcast_new(weft_broadcast_tx *tx, weft_broadcast_rx *rx,
                                               size_t item_size, size_t capacity, int mode);
/* A new receiver in `rx` that sees every item sent after this call (and
 * none before). 0, -EINVAL or -ENOMEM. Any thread. */
WEFT_API WEFT_NODISCARD int weft_broadcast_subscribe(weft_broadcast_tx *tx, weft_broadcast_rx *rx);
/* Another sender in `out`. 0 or -EINVAL. Any thread. */
WEFT_API WEFT_NODISCARD int weft_broadcast_tx_clone(const weft_broadcast_tx *tx,
                                                    weft_broadcast_tx *out);
/* Drop a sender; the last one closes the channel: receivers take what was
 * sent, then see -EPIPE. Any thread. */
WEFT_API void weft_broadcast_tx_drop(weft_broadcast_tx *tx);
/* Drop a receiver: it no longer holds senders back (WAIT mode); with the
 * last one gone, sends fail with -EPIPE and waiting sends complete with
 * -EPIPE. No future may be polling it. Any thread. */
WEFT_API void weft_broadcast_rx_drop(weft_broadcast_rx *rx);

/* Send without waiting: 0 (copied in; in LAG mode the oldest item may
 * have been overwritten), -EAGAIN (WAIT mode: the slowest receiver has
 * not taken the oldest item), -EPIPE (no receiver), -EINVAL. On error the
 * item stays the caller's. Any thread. */
WEFT_API WEFT_NODISCARD int weft_broadcast_try_send(weft_broadcast_tx *tx, const void *item);
/* Receive without waiting: 0 (an item written to `item`), n > 0 (the
 * receiver fell behind and missed n items; nothing written, the next
 * receive continues with the oldest item retained; LAG mode only), -EPIPE
 * (closed and drained), -EAGAIN (nothing yet) or -EINVAL. Any thread, one
 * at a time per receiver. */
WEFT_API WEFT_NODISCARD int64_t weft_broadcast_try_recv(weft_broadcast_rx *rx, void *item);
/* Items the stream form (poll_next, poll_next_many) skipped because the
 * receiver lagged (LAG mode). */
WEFT_API uint64_t weft_broadcast_rx_missed(const weft_broadcast_rx *rx);

/* Send: output int, 0 (sent) or -EPIPE (no receiver; the item stays the
 * caller's). READY at its first poll in LAG mode; in WAIT mode it waits
 * for room. `item` is read when the send happens, so it must stay valid
 * and unchanged until the future completes or is dropped.
 * Cancel safety: dropped while pending, nothing was sent (it only leaves
 * the queue of waiting senders; every waiting sender is woken when room
 * appears, so no wake is lost with it). */
typedef struct weft_broadcast_send {
    weft_future base;
    weft_broadcast_tx *tx_;
    const void *item_;
    weft_sync_waiter w_;
    uint32_t step_;
    uint32_t reserved_;
} weft_broadcast_send;
WEFT_API void weft_broadcast_send_init(weft_broadcast_send *f, weft_broadcast_tx *tx,
                                       const void *item);

/* Receive: output int64_t, as weft_broadcast_try_recv's (0: item written;
 * n > 0: n items missed, nothing written; -EPIPE: closed and drained).
 * Cancel safety: nothing is lost — the receiver's position moves only in
 * the poll that completes the future; dropped while pending, it takes the
 * receiver's wait out of the queue. The receiver must outlive the future
 * and be polled by one future at a time. */
typedef struct weft_broadcast_recv {
    weft_future base;
    weft_broadcast_rx *rx_;
    void *item_;
} weft_broadcast_recv;
WEFT_API void weft_broadcast_recv_init(weft_broadcast_recv *f, weft_broadcast_rx *rx, void *item);

/* Blocking forms for threads that run no tasks: as the futures' outputs,
 * or -EDEADLK (on a worker or a sim's thread), -EINVAL, -ENOMEM. */
WEFT_API WEFT_NODISCARD int weft_broadcast_send_blocking(weft_broadcast_tx *tx, const void *item);
WEFT_API WEFT_NODISCARD int64_t weft_broadcast_recv_blocking(weft_broadcast_rx *rx, void *item);

/* ==== watch ============================================================== */

/* The latest value, tokio's watch: one sender publishes versions of one
 * value; any number of receivers read the newest, or wait until there is
 * a newer one than they have seen. Intermediate versions may be skipped;
 * what a receiver reads is always one whole version, never a mix.
 *
 * Readers take no lock: the value lives in a block published with RCU
 * (liburcu's membarrier flavour), a read copies it out inside a short
 * read-side section (never across an await). Each thread that reads or
 * sends is registered with liburcu at its first call (once per thread,
 * undone by a thread-exit destructor), so workers, foreign threads and
 * the main thread may all call these functions, with nothing to set up.
 * A send swaps in a new block and frees the old one after a grace period
 * (liburcu's call_rcu thread): see weft_watch_barrier. */
typedef struct weft_watch weft_watch;

/* The sender: one reference on the channel. Not cloneable (one sender). */
typedef struct weft_watch_tx {
    weft_watch *w_;
} weft_watch_tx;

/* A receiver: one reference on the channel, and the version it has seen.
 * One receiver is used by one thread or task at a time; clone it to read
 * from several. */
typedef struct weft_watch_rx {
    weft_watch *w_;
    uint64_t seen_;
} weft_watch_rx;

/* Create a channel holding a copy of `initial` (`item_size` bytes; NULL
 * only when item_size is 0), with its sender and a first receiver that
 * has seen it. Returns 0, -EINVAL (tx or rx NULL, item_size above
 * WEFT_CHAN_ITEM_MAX, initial NULL) or -ENOMEM (nothing made). Any
 * thread. The handles may be moved freely (they are plain pointers). */
WEFT_API WEFT_NODISCARD int weft_watch_new(weft_watch_tx *tx, weft_watch_rx *rx,
                                           size_t item_size, const void *initial);

/* Publish a copy of `value` as the next version and wake every changed()
 * waiter. Publishes even when no receiver is left (a later subscribe sees
 * it). Returns 0, -EINVAL (tx NULL or dropped, value NULL with a nonzero
 * item size) or -ENOMEM (the new block could not be allocated: the old
 * value stays published, nobody is woken). Any thread; never waits (the
 * old block is freed later, after a grace period). Sends through one
 * sender from several threads are serialised. */
WEFT_API WEFT_NODISCARD int weft_watch_send(weft_watch_tx *tx, const void *value);

/* A new receiver in `out` that has seen the current value. 0 or -EINVAL
 * (tx NULL or dropped, out NULL). Any thread. */
WEFT_API WEFT_NODISCARD int weft_watch_subscribe(const weft_watch_tx *tx, weft_watch_rx *out);
/* Another receiver in `out` that has seen what `rx` has. 0 or -EINVAL.
 * Any thread. Works after the sender is gone. */
WEFT_API WEFT_NODISCARD int weft_watch_rx_clone(const weft_watch_rx *rx, weft_watch_rx *out);

/* Copy the latest value to `out` (item_size bytes) without marking it
 * seen. Takes no lock: an RCU read section around the copy. Any thread.
 * Bad arguments are misuse (reported; `out` untouched). */
WEFT_API void weft_watch_borrow(const weft_watch_rx *rx, void *out);
/* Copy the latest value to `out` and mark that version seen (the value
 * and its version are read together). Any thread. */
WEFT_API void weft_watch_borrow_and_update(weft_watch_rx *rx, void *out);
/* True when a version newer than the receiver's seen one was published
 * (also after the sender is gone, until it is seen). Any thread. */
WEFT_API bool weft_watch_has_changed(const weft_watch_rx *rx);

/* Wait for a version newer than the receiver's seen one: output int, 0
 * (there is one; the newest version is now marked seen — read it with
 * borrow) or -EPIPE (the sender is gone and nothing newer was published;
 * -EINVAL for a NULL or dropped receiver, reported). A value published
 * while nobody waits is not missed: the check is against the version.
 * Cancel safety: nothing is lost — the receiver's seen version moves only
 * in the poll that returns 0, so a dropped changed() leaves the change
 * for the next one. The receiver must outlive the future, stay where it
 * is while the future is pending, and be polled by one future at a time. */
typedef struct weft_watch_changed {
    weft_future base;
    weft_watch_rx *rx_;
    weft_sync_waiter w_;
    uint32_t step_;
    uint32_t reserved_;
} weft_watch_changed;
WEFT_API void weft_watch_changed_init(weft_watch_changed *f, weft_watch_rx *rx);

/* The same for threads that run no tasks: 0, -EPIPE, -EINVAL, -EDEADLK
 * (on a worker or a sim runtime's thread; reported) or -ENOMEM. */
WEFT_API WEFT_NODISCARD int weft_watch_changed_blocking(weft_watch_rx *rx);

/* Drop the sender: receivers' changed() returns -EPIPE once they have
 * seen the last value (the value stays readable). Any thread; `tx` is
 * left dropped (its calls return -EINVAL). */
WEFT_API void weft_watch_tx_drop(weft_watch_tx *tx);
/* Drop a receiver. The last handle dropped frees the channel and its
 * current value. Any thread. */
WEFT_API void weft_watch_rx_drop(weft_watch_rx *rx);
/* Receivers alive now (a snapshot); 0 for a NULL or dropped sender. */
WEFT_API size_t weft_watch_receiver_count(const weft_watch_tx *tx);

/* Wait until every old value any watch channel retired so far has been
 * freed (liburcu's rcu_barrier). Values are otherwise freed a grace
 * period after they were replaced, on liburcu's call_rcu thread, through
 * weft's allocator: call this before swapping the allocator
 * (weft_set_allocator), before counting leaks, and before exit when a
 * leak checker should find nothing pending. It waits for a grace period:
 * for threads that run no tasks (a task calling it stalls its worker). */
WEFT_API void weft_watch_barrier(void);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_CHANNELS_H */
