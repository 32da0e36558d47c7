/* Test support: the countdown future, PENDING `pending` times (waking
 * itself each time, so it goes round the run queue) and then READY with
 * `value`. It counts its polls and drops in a countdown_counts record and
 * notes the runtime and worker of its last poll, for whichever thread
 * checks. Each test program includes it once. */
#ifndef WEFT_TESTS_COUNTDOWN_H
#define WEFT_TESTS_COUNTDOWN_H

#include <stddef.h>

#include "weft/weft.h"
#include "core/atomic.h"

typedef struct countdown_counts {
    _Atomic int polls;
    _Atomic int drops;
    weft_rt *_Atomic seen_rt; /* weft_rt_current() at the last poll */
    _Atomic int seen_worker;  /* weft_worker_index() at the last poll; -2: none */
} countdown_counts;

typedef struct countdown {
    weft_future base;
    int pending;
    int value;
    countdown_counts *n; /* NULL: count nothing */
} countdown;

/* A countdown_counts record at rest, as an initialiser. */
#define COUNTDOWN_COUNTS_INIT { 0, 0, NULL, -2 }

static inline void countdown_counts_init(countdown_counts *n)
{
    weft_atomic_init(&n->polls, 0);
    weft_atomic_init(&n->drops, 0);
    weft_atomic_init(&n->seen_rt, NULL);
    weft_atomic_init(&n->seen_worker, -2);
}

static inline weft_poll countdown_poll(weft_future *f, weft_cx *cx, void *out)
{
    countdown *c = (countdown *)f;
    if (c->n) {
        /* Relaxed: read by the test on the polling thread, or after a join
         * or a drop (acq_rel) that orders it. */
        weft_atomic_fetch_add_relaxed(&c->n->polls, 1);
        weft_atomic_store_relaxed(&c->n->seen_rt, weft_rt_current());
        weft_atomic_store_relaxed(&c->n->seen_worker, weft_worker_index());
    }
    if (c->pending > 0) {
        c->pending--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    *(int *)out = c->value;
    return WEFT_READY;
}

static inline void countdown_drop(weft_future *f)
{
    countdown *c = (countdown *)f;
    /* AcqRel: a test that sees the drop also sees the polls before it. */
    if (c->n)
        weft_atomic_fetch_add_acq_rel(&c->n->drops, 1);
}

static const weft_future_ops countdown_ops = {
    "test_countdown", sizeof(int), countdown_poll, countdown_drop, NULL,
};

/* The initialiser of another ops table for countdowns, under `name`, so
 * that a misuse report tells it apart. */
#define COUNTDOWN_OPS(name) { (name), sizeof(int), countdown_poll, countdown_drop, NULL }

/* `flags`: WEFT_F_SEND or 0. `n` may be NULL. */
static inline void countdown_init(countdown *c, int pending, int value, countdown_counts *n,
                                  uint32_t flags)
{
    weft_future_init(&c->base, &countdown_ops, flags);
    c->pending = pending;
    c->value = value;
    c->n = n;
}

/* countdown_init with fresh counts `n`. */
static inline void countdown_start(countdown *c, countdown_counts *n, int pending, int value,
                                   uint32_t flags)
{
    countdown_counts_init(n);
    countdown_init(c, pending, value, n, flags);
}

#endif
