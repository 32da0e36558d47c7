/* weft_watch: the latest value, tokio's watch channel
 * (tokio/src/sync/watch.rs), with the value published by RCU (liburcu's
 * membarrier flavour, urcu-memb) instead of tokio's RwLock, so readers
 * take no lock and never wait for the sender.
 *
 * The value lives in an immutable block { rcu head, version, bytes }.
 * `cur` points at the published block. A send fills a new block, and
 * under the waiter queue's lock (which also serialises sends): stamps it
 * with the next version, swaps it into `cur`, stores the new version in
 * `state`, and serves the changed() waiters; after unlocking it wakes
 * them and hands the old block to call_rcu, which frees it once every
 * read section that could still see it has ended (a grace period).
 *
 * `state`: version (steps of 2) | CLOSED (bit 0), tokio's AtomicState.
 * Written only under the queue's lock (send: version + 2; sender drop:
 * CLOSED); read without it by has_changed and changed()'s first check.
 *
 * A read: rcu_read_lock; load `cur` (acquire); copy the bytes and the
 * block's version; rcu_read_unlock. Never across an await: an RCU read
 * section belongs to a thread, and a task may move between workers.
 * Since the block carries its version, borrow_and_update reads the value
 * and the version it marks seen together, whatever the sender does.
 *
 * Why a changed() never misses a send: it checks `state` for a version
 * newer than its seen one; if none, it takes the queue's lock, checks
 * again and queues. The sender stores the new version and serves the
 * queue under that same lock, so either the re-check sees the version or
 * the waiter is in the queue when the sender serves it.
 *
 * Invariant (under the lock): a queued waiter's `data_` is the version
 * `state` held when it queued, which was its receiver's seen version (a
 * borrow_and_update may read a block whose version `state` does not show
 * yet, but only while a send holds the lock, so a waiter queueing after
 * that sees `state` caught up). Versions only grow, so a send serving
 * waiters whose data_ differs from its version serves exactly those
 * queued before it, even across the unlocks that wake a full wakeset.
 *
 * Linearization points: a send at its swap of `cur` (for readers) and
 * its store of `state` (for has_changed and changed); a read at its load
 * of `cur`; the sender's drop at its store of CLOSED.
 *
 *   may run concurrently with | send      | read (borrow) | changed() | drops
 *   send                      | serialised| yes           | yes       | yes
 *   read (borrow)             | yes       | yes           | yes (other rx) | yes (other handles)
 *
 * Memory reclamation: a replaced block is freed by liburcu's call_rcu
 * thread after a grace period; the current block and the channel are
 * freed by whoever drops the last handle (no reader can hold a section on
 * them then: every reader holds a handle). weft_watch_barrier waits for
 * the pending frees (liburcu's rcu_barrier).
 *
 * Threads: urcu-memb needs every thread that reads (or calls call_rcu) to
 * be registered. reader_enter registers the calling thread at its first
 * call (a thread-local flag) and arms a pthread key whose destructor
 * unregisters it at thread exit; if the key cannot be armed, that call
 * registers and unregisters around its read section instead (slow but
 * correct).
 *
 * ThreadSanitizer: the grace period orders a reader's copy before the
 * free on the call_rcu thread through membarrier, which TSan cannot see;
 * TSan builds annotate it: the reader releases the block at the end of
 * its section, the sender releases the old block when it retires it, and
 * the free callback acquires it. Publication itself is a C11 acquire /
 * release pair on `cur`, which TSan sees. rcu_barrier's own allocations
 * are handed to the call_rcu thread the same invisible way: TSan builds
 * ignore the barrier caller's accesses during it (weft_watch_barrier). */
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include <urcu/urcu-memb.h>

#include "channels/watch.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/tsan.h"
#include "sched/block_on.h"
#include "sync/waitq.h"

#ifdef WEFT_TSAN
/* In libtsan, not in its public header. */
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define GP_RELEASE(p) __tsan_release(p)
#define GP_ACQUIRE(p) __tsan_acquire(p)
#define IGNORE_BEGIN() __tsan_ignore_thread_begin()
#define IGNORE_END() __tsan_ignore_thread_end()
#else
#define GP_RELEASE(p) ((void)0)
#define GP_ACQUIRE(p) ((void)0)
#define IGNORE_BEGIN() ((void)0)
#define IGNORE_END() ((void)0)
#endif

#define CLOSED ((uint64_t)1)
#define VERSION_STEP ((uint64_t)2)

enum { STEP_INIT = 0, STEP_QUEUED = 1, STEP_DONE = 2 };

typedef struct value_block {
    struct rcu_head rcu; /* call_rcu's link once retired */
    uint64_t version;    /* set before the block is published; never changed */
    _Alignas(max_align_t) unsigned char data[];
} value_block;

struct weft_watch {
    /* The published block: swapped by sends (under q's lock), loaded by
     * every read. */
    _Atomic(value_block *) cur;
    /* version | CLOSED: written under q's lock, read by anyone. */
    _Atomic uint64_t state;
    /* Handles alive (sender and receivers); the last drop frees. */
    _Atomic size_t refs;
    /* Receivers alive (receiver_count). */
    _Atomic size_t receivers;
    size_t item_size;
    /* changed() waiters; its lock also serialises sends and the close. */
    weft__waitq q;
};

/* ---- thread registration ---------------------------------------------------------- */

static _Thread_local bool t_registered;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_exit_key;
static bool g_key_ok;

/* At thread exit (pthread key destructor): leave liburcu's registry. */
static void reader_exit(void *arg)
{
    (void)arg;
    if (t_registered) {
        t_registered = false;
        urcu_memb_unregister_thread();
    }
}

static void exit_key_create(void)
{
    g_key_ok = pthread_key_create(&g_exit_key, reader_exit) == 0;
}

/* Make the calling thread a registered reader. Returns true when it was
 * registered for this call only (reader_leave undoes it). */
static bool reader_enter_slow(void)
{
    pthread_once(&g_key_once, exit_key_create);
    urcu_memb_register_thread();
    if (g_key_ok && pthread_setspecific(g_exit_key, (void *)1) == 0) {
        t_registered = true;
        return false;
    }
    return true;
}

static inline bool reader_enter(void)
{
    return t_registered ? false : reader_enter_slow();
}

static inline void reader_leave(bool temporary)
{
    if (temporary)
        urcu_memb_unregister_thread();
}

/* ---- blocks --------------------------------------------------------------------------- */

static value_block *block_new(size_t item_size, const void *value)
{
    value_block *b = weft__alloc(sizeof(value_block) + item_size);
    if (!b)
        return NULL;
    b->version = 0;
    if (item_size)
        memcpy(b->data, value, item_size);
    return b;
}

/* call_rcu's callback, on liburcu's call_rcu thread after a grace period. */
static void block_free_rcu(struct rcu_head *h)
{
    value_block *b = caa_container_of(h, value_block, rcu);
    /* The readers' sections and the retiring send happened before (the
     * grace period); TSan is told so here (pairs with GP_RELEASE in
     * read_value and weft_watch_send). */
    GP_ACQUIRE(b);
    weft__free(b);
}

/* Copy the current value to `out`; returns its version. No lock. */
static uint64_t read_value(weft_watch *w, void *out)
{
    bool temporary = reader_enter();
    urcu_memb_read_lock();
    /* Acquire: pairs with the release swap in weft_watch_send, so the
     * block's bytes and version are those written before publishing. */
    value_block *b = weft_atomic_load_acquire(&w->cur);
    if (w->item_size)
        memcpy(out, b->data, w->item_size);
    uint64_t v = b->version;
    GP_RELEASE(b); /* done with b: pairs with GP_ACQUIRE in block_free_rcu */
    urcu_memb_read_unlock();
    reader_leave(temporary);
    return v;
}

/* ---- handles -------------------------------------------------------------------------- */

static void handle_put(weft_watch *w)
{
    /* Acq_rel: the last dropper sees every other handle's use (their
     * reads of `cur` included) before it frees. */
    if (weft_atomic_fetch_sub_acq_rel(&w->refs, (size_t)1) != 1)
        return;
    WEFT_ASSERT(weft__waitq_empty(&w->q));
    /* No handle is left, so no read section can be on the current block:
     * freed now, without a grace period. */
    weft__free(weft_atomic_load_relaxed(&w->cur));
    weft__free(w);
}

int weft_watch_new(weft_watch_tx *tx, weft_watch_rx *rx, size_t item_size, const void *initial)
{
    if (!tx || !rx || item_size > WEFT_CHAN_ITEM_MAX || (!initial && item_size)) {
        WEFT_MISUSE("weft_watch_new: %s", !tx || !rx ? "a handle is NULL"
                                          : item_size > WEFT_CHAN_ITEM_MAX
                                              ? "item_size above WEFT_CHAN_ITEM_MAX"
                                              : "initial is NULL");
        return -EINVAL;
    }
    weft_watch *w = weft__alloc(sizeof *w);
    if (!w)
        return -ENOMEM;
    value_block *b = block_new(item_size, initial);
    if (!b) {
        weft__free(w);
        return -ENOMEM;
    }
    weft_atomic_init(&w->cur, b);
    weft_atomic_init(&w->state, (uint64_t)0);
    weft_atomic_init(&w->refs, (size_t)2);
    weft_atomic_init(&w->receivers, (size_t)1);
    w->item_size = item_size;
    weft__waitq_init(&w->q);
    tx->w_ = w;
    rx->w_ = w;
    rx->seen_ = 0;
    return 0;
}

static bool tx_bad(const weft_watch_tx *tx, const char *what)
{
    (void)what; /* release builds report nothing */
    if (tx && tx->w_)
        return false;
    WEFT_MISUSE("%s: %s", what, !tx ? "sender is NULL" : "sender was dropped");
    return true;
}

static bool rx_bad(const weft_watch_rx *rx, const char *what)
{
    (void)what;
    if (rx && rx->w_)
        return false;
    WEFT_MISUSE("%s: %s", what, !rx ? "receiver is NULL" : "receiver was dropped");
    return true;
}

int weft_watch_send(weft_watch_tx *tx, const void *value)
{
    if (tx_bad(tx, "weft_watch_send"))
        return -EINVAL;
    weft_watch *w = tx->w_;
    if (!value && w->item_size) {
        WEFT_MISUSE("weft_watch_send: value is NULL");
        return -EINVAL;
    }
    value_block *b = block_new(w->item_size, value);
    if (!b)
        return -ENOMEM;
    bool temporary = reader_enter(); /* call_rcu needs a registered thread */
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&w->q);
    /* Relaxed: `state` is only written under the lock we hold. */
    uint64_t st = weft_atomic_load_relaxed(&w->state);
    uint64_t ver = (st & ~CLOSED) + VERSION_STEP;
    b->version = ver;
    /* Release: publishes the block's bytes and version (pairs with the
     * acquire load in read_value). Acquire: the old block's writer
     * happened before us, which its free after the grace period needs. */
    value_block *old = weft_atomic_swap_acq_rel(&w->cur, b);
    /* Release: whoever sees the new version (acquire in has_changed and
     * changed_check) finds the new block in `cur`. */
    weft_atomic_store_release(&w->state, st + VERSION_STEP);
    /* Serve every waiter queued before this send (data_ != ver: see the
     * invariant above), waking in batches. */
    for (;;) {
        weft__waiter *q = weft__waitq_front(&w->q);
        if (!q || q->data_ == (uintptr_t)ver)
            break;
        if (weft__wakeset_full(&s)) {
            weft__waitq_unlock(&w->q);
            weft__wakeset_wake(&s);
            weft__waitq_lock(&w->q);
            /* Relaxed: written under the lock. A newer send (or the
             * close) served everybody older, ours included. */
            if (weft_atomic_load_relaxed(&w->state) != st + VERSION_STEP)
                break;
            continue;
        }
        weft__waitq_serve(&w->q, q, &s);
    }
    weft__waitq_unlock(&w->q);
    weft__wakeset_wake(&s);
    GP_RELEASE(old); /* pairs with GP_ACQUIRE in block_free_rcu */
    urcu_memb_call_rcu(&old->rcu, block_free_rcu);
    reader_leave(temporary);
    return 0;
}

int weft_watch_subscribe(const weft_watch_tx *tx, weft_watch_rx *out)
{
    if (tx_bad(tx, "weft_watch_subscribe"))
        return -EINVAL;
    if (!out) {
        WEFT_MISUSE("weft_watch_subscribe: out is NULL");
        return -EINVAL;
    }
    weft_watch *w = tx->w_;
    /* Relaxed: the caller's handle keeps the channel alive. */
    weft_atomic_fetch_add_relaxed(&w->refs, (size_t)1);
    weft_atomic_fetch_add_relaxed(&w->receivers, (size_t)1);
    out->w_ = w;
    /* Acquire: pairs with the sender's release store, so a borrow after
     * this finds a block at least this new. */
    out->seen_ = weft_atomic_load_acquire(&w->state) & ~CLOSED;
    return 0;
}

int weft_watch_rx_clone(const weft_watch_rx *rx, weft_watch_rx *out)
{
    if (rx_bad(rx, "weft_watch_rx_clone"))
        return -EINVAL;
    if (!out) {
        WEFT_MISUSE("weft_watch_rx_clone: out is NULL");
        return -EINVAL;
    }
    /* Relaxed: the caller's handle keeps the channel alive. */
    weft_atomic_fetch_add_relaxed(&rx->w_->refs, (size_t)1);
    weft_atomic_fetch_add_relaxed(&rx->w_->receivers, (size_t)1);
    out->w_ = rx->w_;
    out->seen_ = rx->seen_;
    return 0;
}

void weft_watch_borrow(const weft_watch_rx *rx, void *out)
{
    if (rx_bad(rx, "weft_watch_borrow"))
        return;
    if (!out && rx->w_->item_size) {
        WEFT_MISUSE("weft_watch_borrow: out is NULL");
        return;
    }
    (void)read_value(rx->w_, out);
}

void weft_watch_borrow_and_update(weft_watch_rx *rx, void *out)
{
    if (rx_bad(rx, "weft_watch_borrow_and_update"))
        return;
    if (!out && rx->w_->item_size) {
        WEFT_MISUSE("weft_watch_borrow_and_update: out is NULL");
        return;
    }
    uint64_t v = read_value(rx->w_, out);
    if (v > rx->seen_)
        rx->seen_ = v;
}

bool weft_watch_has_changed(const weft_watch_rx *rx)
{
    if (rx_bad(rx, "weft_watch_has_changed"))
        return false;
    /* Acquire: pairs with the sender's release store (a borrow after a
     * true finds that version or a newer one). */
    return (weft_atomic_load_acquire(&rx->w_->state) & ~CLOSED) > rx->seen_;
}

void weft_watch_tx_drop(weft_watch_tx *tx)
{
    if (tx_bad(tx, "weft_watch_tx_drop"))
        return;
    weft_watch *w = tx->w_;
    tx->w_ = NULL;
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&w->q);
    /* Release: a receiver that sees CLOSED (acquire in changed_check)
     * sees every send before it. Under the lock: a changed() that checked
     * under it before queueing is served below. */
    weft_atomic_store_release(&w->state, weft_atomic_load_relaxed(&w->state) | CLOSED);
    /* Every waiter: none queues after CLOSED. */
    for (;;) {
        weft__waiter *q = weft__waitq_front(&w->q);
        if (!q)
            break;
        if (weft__wakeset_full(&s)) {
            weft__waitq_unlock(&w->q);
            weft__wakeset_wake(&s);
            weft__waitq_lock(&w->q);
            continue;
        }
        weft__waitq_serve(&w->q, q, &s);
    }
    weft__waitq_unlock(&w->q);
    weft__wakeset_wake(&s);
    handle_put(w);
}

void weft_watch_rx_drop(weft_watch_rx *rx)
{
    if (rx_bad(rx, "weft_watch_rx_drop"))
        return;
    weft_watch *w = rx->w_;
    rx->w_ = NULL;
    /* Relaxed: a count for receiver_count snapshots. */
    weft_atomic_fetch_sub_relaxed(&w->receivers, (size_t)1);
    handle_put(w);
}

size_t weft_watch_receiver_count(const weft_watch_tx *tx)
{
    if (!tx || !tx->w_)
        return 0;
    /* Relaxed: a snapshot. */
    return weft_atomic_load_relaxed(&tx->w_->receivers);
}

void weft_watch_barrier(void)
{
    /* rcu_barrier callocs a work item per call_rcu thread, which that
     * thread frees after a hand-off through liburcu's queue (atomics TSan
     * cannot see): TSan builds do not record the calloc's writes, so the
     * free is not reported as a race. Our blocks' frees are annotated
     * (GP_RELEASE / GP_ACQUIRE). */
    IGNORE_BEGIN();
    urcu_memb_barrier();
    IGNORE_END();
}

size_t weft__watch_waiters(weft_watch *w)
{
    size_t n = 0;
    weft__waitq_lock(&w->q);
    for (weft__waiter *x = weft__waitq_front(&w->q); x; x = x->next_)
        n++;
    weft__waitq_unlock(&w->q);
    return n;
}

/* ---- changed() ---------------------------------------------------------------------------- */

static weft_poll changed_poll(weft_future *f, weft_cx *cx, void *out);
static void changed_drop(weft_future *f);

static const weft_future_ops changed_ops = {
    .name = "weft_watch_changed", .out_size = sizeof(int), .poll = changed_poll,
    .drop = changed_drop,
};

void weft_watch_changed_init(weft_watch_changed *f, weft_watch_rx *rx)
{
    weft_future_init(&f->base, &changed_ops, WEFT_F_SEND);
    f->rx_ = rx;
    f->step_ = STEP_INIT;
    f->reserved_ = 0;
    weft__waiter_init(&f->w_);
    if (rx_bad(rx, "weft_watch_changed_init"))
        f->rx_ = NULL; /* its poll completes with -EINVAL */
}

/* Is there a version newer than seen (mark it seen: 0), or is the sender
 * gone (-EPIPE)? Else false. */
static bool changed_check(weft_watch *w, weft_watch_rx *rx, int *res)
{
    /* Acquire: pairs with the sender's release stores (of a version, of
     * CLOSED), so a borrow after READY finds that version's block. */
    uint64_t st = weft_atomic_load_acquire(&w->state);
    uint64_t ver = st & ~CLOSED;
    if (ver > rx->seen_) {
        rx->seen_ = ver;
        *res = 0;
        return true;
    }
    if (st & CLOSED) {
        *res = -EPIPE;
        return true;
    }
    return false;
}

static weft_poll changed_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_watch_changed *c = (weft_watch_changed *)f;
    int *res = out;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (!c->rx_) { /* misuse, reported at initialisation: never hang */
        c->step_ = STEP_DONE;
        *res = -EINVAL;
        return WEFT_READY;
    }
    weft_watch *w = c->rx_->w_;
    if (c->step_ == STEP_QUEUED) {
        /* Served by a send or the close: look again (acquire inside). */
        if (weft__waiter_poll(&w->q, &c->w_, cx->waker) == WEFT__WAITER_QUEUED)
            return WEFT_PENDING;
        weft__waiter_reset(&c->w_);
        c->step_ = STEP_INIT;
    }
    WEFT_ASSERT(c->step_ == STEP_INIT);
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    if (changed_check(w, c->rx_, res)) {
        c->step_ = STEP_DONE;
        return WEFT_READY;
    }
    weft__waitq_lock(&w->q);
    if (changed_check(w, c->rx_, res)) {
        weft__waitq_unlock(&w->q);
        c->step_ = STEP_DONE;
        return WEFT_READY;
    }
    /* Relaxed: under the lock, where `state` is written. */
    c->w_.data_ = (uintptr_t)(weft_atomic_load_relaxed(&w->state) & ~CLOSED);
    weft__waitq_push_back(&w->q, &c->w_, cx->waker);
    c->step_ = STEP_QUEUED;
    weft__waitq_unlock(&w->q);
    return WEFT_PENDING;
}

static void changed_drop(weft_future *f)
{
    weft_watch_changed *c = (weft_watch_changed *)f;
    if (c->step_ != STEP_QUEUED)
        return;
    weft_watch *w = c->rx_->w_;
    weft__waitq_lock(&w->q);
    /* Relaxed: under the lock, which every serve holds. A waiter served
     * but not polled since hands nothing on: a change is a state, which
     * the next changed() finds. */
    if (weft_atomic_load_relaxed(&c->w_.state_) == WEFT__WAITER_QUEUED)
        weft__waitq_remove(&w->q, &c->w_);
    weft__waitq_unlock(&w->q);
    weft__waiter_reset(&c->w_);
    c->step_ = STEP_DONE;
}

int weft_watch_changed_blocking(weft_watch_rx *rx)
{
    if (rx_bad(rx, "weft_watch_changed_blocking"))
        return -EINVAL;
    weft_watch_changed f;
    weft_watch_changed_init(&f, rx);
    int res = 0;
    int rc = weft__block_poll(&f.base, &res, "weft_watch_changed_blocking");
    weft_future_drop(&f.base);
    return rc ? rc : res;
}
