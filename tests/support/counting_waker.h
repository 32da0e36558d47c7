/* Test support: a waker that counts what is done to it. The waker a test
 * hands to a register or a poll is borrowed from the test; every clone is
 * a reference that must come back through exactly one wake (by value) or
 * drop, which cw_outstanding() checks. Wakes may come from any thread.
 * Each test program includes it once. */
#ifndef WEFT_TESTS_COUNTING_WAKER_H
#define WEFT_TESTS_COUNTING_WAKER_H

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/waker_ops.h"

typedef struct counting_waker {
    _Atomic long clones;
    _Atomic long wakes; /* by value: consumes a clone */
    _Atomic long wake_by_refs;
    _Atomic long drops;
    /* Spin this many pause instructions inside clone: widens the window in
     * which a register holds the REGISTERING state (STYLE rule 24). */
    unsigned clone_spin;
    /* cw_thread_id of the thread that performed the last wake. */
    _Atomic int last_waker;
} counting_waker;

/* A small per-thread id a test may set, so a waker can tell who woke it
 * (0: unnamed). */
static _Thread_local int cw_thread_id;

TEST_WAKER_OPS(cw);

/* AcqRel on every count: a test thread that reads a count also sees what
 * the thread that made it did before (pairs with the acquire loads). */
static weft_waker cw_clone(const void *data)
{
    counting_waker *c = (counting_waker *)data;
    for (unsigned i = 0; i < c->clone_spin; i++)
        weft__cpu_relax();
    weft_atomic_fetch_add_acq_rel(&c->clones, 1);
    return waker_of(&cw_ops, c);
}

static void cw_wake(void *data)
{
    counting_waker *c = data;
    weft_atomic_store_relaxed(&c->last_waker, cw_thread_id);
    weft_atomic_fetch_add_acq_rel(&c->wakes, 1);
}

static void cw_wake_by_ref(const void *data)
{
    counting_waker *c = (counting_waker *)data;
    weft_atomic_store_relaxed(&c->last_waker, cw_thread_id);
    weft_atomic_fetch_add_acq_rel(&c->wake_by_refs, 1);
}

static void cw_drop(void *data)
{
    counting_waker *c = data;
    weft_atomic_fetch_add_acq_rel(&c->drops, 1);
}

static inline void cw_init(counting_waker *c)
{
    weft_atomic_init(&c->clones, 0);
    weft_atomic_init(&c->wakes, 0);
    weft_atomic_init(&c->wake_by_refs, 0);
    weft_atomic_init(&c->drops, 0);
    c->clone_spin = 0;
    weft_atomic_init(&c->last_waker, 0);
}

/* The test's own (borrowed) waker for `c`: not counted as a clone. */
static inline weft_waker cw_waker(counting_waker *c)
{
    return waker_of(&cw_ops, c);
}

/* Wakes so far, by value and by reference. */
static inline long cw_woken(counting_waker *c)
{
    return weft_atomic_load_acquire(&c->wakes) + weft_atomic_load_acquire(&c->wake_by_refs);
}

/* Clones not yet given back by a wake or a drop. */
static inline long cw_outstanding(counting_waker *c)
{
    return weft_atomic_load_acquire(&c->clones) - weft_atomic_load_acquire(&c->wakes) -
           weft_atomic_load_acquire(&c->drops);
}

#endif
