/* Private: a worker's local run queue — a fixed ring, owner pushes at the
 * tail and pops at the head, thieves take half in one claim. */
#ifndef WEFT_SCHED_RING_H
#define WEFT_SCHED_RING_H

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/atomic.h"

#ifdef WEFT_SMALL_QUEUES
#define WEFT_RING_CAP 4u
#else
#define WEFT_RING_CAP 256u
#endif
#define WEFT_RING_MASK (WEFT_RING_CAP - 1u)

struct weft__task;
struct weft__injector;

typedef struct weft__ring {
    /* (steal << 32) | real. `real` is the owner's head; `steal` trails it
     * while a thief copies a claimed range. Written by the owner's pops
     * and by thieves (CAS). */
    alignas(WEFT_CACHE_LINE) _Atomic uint64_t head;
    /* Written by the owner only (release); read by thieves (acquire). */
    alignas(WEFT_CACHE_LINE) _Atomic uint32_t tail;
    /* Slots: written by the owner before publishing `tail`, read by
     * thieves within a claimed range. Relaxed atomics: the tail/head
     * release/acquire pairs order them; atomics keep a stale thief read
     * (never used) defined. */
    alignas(WEFT_CACHE_LINE) _Atomic(struct weft__task *) slots[WEFT_RING_CAP];
} weft__ring;

void weft__ring_init(weft__ring *r);

/* Room the caller of weft__ring_push_owner provides for spilled tasks. */
#define WEFT_RING_SPILL (WEFT_RING_CAP / 2u + 1u)

/* Owner: push `t` at the tail and return 0. When the ring is full, take
 * half of it from the head instead and return how many tasks (that half
 * plus `t`, or just `t` while a thief holds a claim) were written to
 * `spill` (room for WEFT_RING_SPILL): the caller queues them elsewhere (an
 * overflow). The ring itself never queues anywhere else. */
unsigned weft__ring_push_owner(weft__ring *r, struct weft__task *t,
                               struct weft__task **spill);

/* Owner: pop from the head, or NULL when empty. */
struct weft__task *weft__ring_pop_owner(weft__ring *r);

/* Thief: move half of `src`'s tasks into `dst` (the thief's own ring,
 * which must be empty enough: at most half full) and return one of them to
 * run now, or NULL. `*stolen` receives how many were taken. */
struct weft__task *weft__ring_steal_into(weft__ring *src, weft__ring *dst,
                                         unsigned *stolen);

/* Tasks in the ring (owner: exact; others: a snapshot). */
unsigned weft__ring_len(weft__ring *r);

static inline bool weft__ring_is_empty(weft__ring *r)
{
    return weft__ring_len(r) == 0;
}

#endif
