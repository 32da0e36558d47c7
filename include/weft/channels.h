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
/* (see channels/oneshot.c) */

/* ==== broadcast ========================================================== */
/* (see channels/broadcast.c) */

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
