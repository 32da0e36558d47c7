/* Private to iter/: per-slot wakers for a stage that polls n futures in
 * slots (future_set.c, buffered.c), so a poll polls only the futures
 * woken since the last one (futures-rs FuturesUnordered's ready-to-run
 * queue, as a bitmask).
 *
 * Shared side (any thread): `ready`, one bit per slot, set by the slot
 * wakers; `consumer`, the waker of the task that last polled the stage.
 * Owner side (the thread polling the stage): `local`, the ready bits moved
 * out and not polled yet.
 *
 * A slot waker is {ops, &nodes[i]}; waking it does: set bit i (release);
 * seq_cst fence; wake `consumer`. The owner's poll does
 * weft__slot_wake_begin: register the poll's waker in `consumer`; seq_cst
 * fence; swap each `ready` word to 0 (acquire) into `local`. The fences
 * are ordered one way or the other: if the waker's comes first, the swap
 * sees the bit; if the poll's does, the wake finds the registered waker
 * (or the atomic waker's protocol makes the registering side wake
 * itself). So no wake is lost, and a wake during the poll (a future
 * waking itself) is seen by the next poll, not this one.
 *
 * Lifetime: one allocation behind a weft_rc. The owner holds one
 * reference and each slot-waker clone one, so a clone that outlives its
 * future or the stage (a timer's, a channel's, another thread's) stays
 * valid: it sets a bit nobody reads and wakes nothing once the owner's
 * weft__slot_wake_release took the registered waker away. The last
 * release frees it, on whatever thread.
 *
 *   | op                                  | concurrent with               |
 *   | new, begin, waker, mark_local, release | slot-waker ops (one owner) |
 *   | slot-waker clone / wake / drop      | everything, any thread        |
 */
#ifndef WEFT_ITER_SLOT_WAKE_H
#define WEFT_ITER_SLOT_WAKE_H

#include <stdint.h>

#include "weft/future.h"

typedef struct weft__slot_wake weft__slot_wake;

typedef struct weft__slot_node {
    weft__slot_wake *w;
    size_t idx;
} weft__slot_node;

struct weft__slot_wake {
    weft_rc rc;                   /* the owner's reference + one per clone */
    weft_atomic_waker consumer;   /* registered by the owner; woken by slot wakers */
    size_t n, words;              /* slots; ceil(n / 64) */
    WEFT_ATOMIC(uint64_t) *ready; /* slot wakers set bits (any thread); the owner swaps */
    uint64_t *local;              /* owner only: moved-out bits not polled yet */
    size_t *free;                 /* owner only: n indexes for the stage's own use */
    weft__slot_node *nodes;       /* written by new, read-only afterwards */
};

/* The state for n slots (every bit clear), or NULL (-ENOMEM; n too
 * large). */
weft__slot_wake *weft__slot_wake_new(size_t n);

/* The owner is done: drop its registered waker and its reference. */
void weft__slot_wake_release(weft__slot_wake *w);

/* Start a poll: register `cx`'s waker, then move every bit woken since
 * into `local`. */
void weft__slot_wake_begin(weft__slot_wake *w, weft_cx *cx);

/* Slot i's waker, borrowed (valid while the owner holds its reference):
 * poll slot i's future with it. */
weft_waker weft__slot_wake_waker(weft__slot_wake *w, size_t i);

/* Owner: slot i is due for a poll (a new future). */
static inline void weft__slot_wake_mark_local(weft__slot_wake *w, size_t i)
{
    w->local[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline bool weft__slot_wake_is_local(const weft__slot_wake *w, size_t i)
{
    return (w->local[i / 64] >> (i % 64)) & 1u;
}

static inline void weft__slot_wake_clear_local(weft__slot_wake *w, size_t i)
{
    w->local[i / 64] &= ~((uint64_t)1 << (i % 64));
}

/* Owner: the first slot in [lo, hi) whose local bit is set, or hi. */
static inline size_t weft__slot_wake_next_local(const weft__slot_wake *w, size_t lo, size_t hi)
{
    for (size_t wd = lo / 64; lo < hi && wd * 64 < hi; wd++) {
        uint64_t bits = w->local[wd];
        if (wd * 64 < lo)
            bits &= ~(uint64_t)0 << (lo - wd * 64);
        if (bits) {
            size_t i = wd * 64 + (size_t)__builtin_ctzll(bits);
            return i < hi ? i : hi;
        }
    }
    return hi;
}

#endif
