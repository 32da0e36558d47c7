/* Private: a worker's local run queue — a fixed ring, owner pushes at the
 * tail and pops at the head, thieves take half in one claim — and its LIFO
 * slot, which thieves may empty too (ring.c). */
#ifndef WEFT_SCHED_RING_H
#define WEFT_SCHED_RING_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
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
    /* The LIFO slot: the task the owner runs next (worker.c). Filled by
     * the owner only (release store or swap); emptied by the owner (swap)
     * or by a thief (CAS); read by thieves (acquire). On the tail's line:
     * same writer, same readers. */
    _Atomic(struct weft__task *) lifo;
    /* Owner only: the owner filled `lifo` and has not emptied it since (a
     * thief may have). False means the slot is empty for sure, so the
     * owner's fill is a plain store and its take costs nothing. */
    bool lifo_full;
    /* For the owner's wake policy (worker.c: lifo_wake): whether a fill
     * from inside a poll may wake a sleeping worker. Cleared by the owner
     * when it does; set by the owner when it runs out of work and by a
     * thief that took the occupant. Relaxed: a hint. */
    _Atomic bool lifo_wake_armed;
    /* Owner only: tasks pushed at the front form a run [head, front_end)
     * (empty when front_end is at or behind head: thieves take from the
     * run first); back_waited counts the owner's pops from that run while
     * tasks queued at the back waited behind it; once it reaches
     * WEFT_RING_BACK_WAIT_MAX the ring is `serving` its back: no pushes at
     * the front until head passes serve_until (the tail then). */
    uint32_t front_end;
    uint32_t back_waited;
    uint32_t serve_until;
    bool serving;
    /* Owner only: its pops so far, and their number when the front run
     * last started (its oldest task was pushed then). */
    uint32_t pops, run_since;
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

/* Pops from the front run, with tasks waiting at the back, after which
 * pushes at the front are refused until every task then queued was
 * popped: depth-first order may delay the tasks queued at the back (by at
 * most this many pops and two ringfuls), never starve them. */
#define WEFT_RING_BACK_WAIT_MAX 256u
/* Pops since the front run started, after which the ring likewise serves
 * everything queued before pushing at the front again: a task buried at
 * the bottom of the run (a task woken just before its waker spawned a
 * large tree) waits that long at most, plus two ringfuls. Larger than the
 * back's bound because a fork-join tree's oldest pending task is the root
 * of its largest subtree, which depth-first order wants last. */
#ifndef WEFT_RING_FRONT_AGE_MAX
#define WEFT_RING_FRONT_AGE_MAX 1024u
#endif

/* Owner: push `t` at the head, to be popped next: true, or false (the
 * caller queues it elsewhere) when the ring is full, a thief is copying
 * from it, or the ring is serving the tasks at its back (they waited
 * WEFT_RING_BACK_WAIT_MAX pops). */
bool weft__ring_push_front_owner(weft__ring *r, struct weft__task *t);

/* Owner: pop from the head, or NULL when empty. */
struct weft__task *weft__ring_pop_owner(weft__ring *r);

/* Thief: move half of `src`'s tasks into `dst` (the thief's own ring,
 * which must be empty enough: at most half full) and return one of them to
 * run now, or NULL. `*stolen` receives how many were taken. */
struct weft__task *weft__ring_steal_into(weft__ring *src, weft__ring *dst,
                                         unsigned *stolen);

/* ---- the LIFO slot --------------------------------------------------------- */

/* Owner: put `t` in the LIFO slot. Returns its previous occupant, for the
 * caller to queue elsewhere, or NULL (the slot was empty, or a thief took
 * the occupant). Inline: every spawn on a worker comes here. */
static inline struct weft__task *weft__ring_lifo_put(weft__ring *r, struct weft__task *t)
{
    struct weft__task *prev = NULL;
    if (!r->lifo_full) {
        /* Release: publish the task's fields to a thief (pairs with the
         * acquire load in lifo_peek and the acquire CAS in lifo_steal).
         * A plain store is enough: the slot is empty and only we fill
         * it. */
        weft_atomic_store_release(&r->lifo, t);
    } else {
        /* Release: as above; the swap tells us whether a thief took the
         * previous occupant (it reads our own store or a thief's NULL:
         * nothing to acquire). */
        prev = weft_atomic_swap_release(&r->lifo, t);
    }
    r->lifo_full = true;
    return prev;
}

/* Owner: take the LIFO task, or NULL (empty, or a thief took it). */
static inline struct weft__task *weft__ring_lifo_take(weft__ring *r)
{
    if (!r->lifo_full)
        return NULL;
    r->lifo_full = false;
    /* Relaxed: we read either our own store or a thief's NULL; the swap
     * only has to be atomic against a thief's CAS, so exactly one of us
     * gets the task. */
    return weft_atomic_swap_relaxed(&r->lifo, NULL);
}

/* Owner: whether the LIFO slot may hold a task. */
static inline bool weft__ring_lifo_full(const weft__ring *r)
{
    return r->lifo_full;
}

/* Thief: the LIFO occupant now (a snapshot), or NULL. */
static inline struct weft__task *weft__ring_lifo_peek(weft__ring *r)
{
    /* Acquire: pairs with the owner's release in lifo_put. */
    return weft_atomic_load_acquire(&r->lifo);
}

/* Thief: take `t` out of the LIFO slot if it is still there; true when we
 * got it. Should `t` have run and its memory been reused by another task
 * put in the slot since, we take that task instead: just as runnable, and
 * the CAS reads the store that put it. */
static inline bool weft__ring_lifo_steal(weft__ring *r, struct weft__task *t)
{
    /* Acquire: pairs with the owner's release in lifo_put (the task's
     * fields); the CAS excludes the owner's swap and other thieves. */
    return weft_atomic_cas_strong_acquire(&r->lifo, &t, NULL);
}

/* Tasks in the ring (owner: exact; others: a snapshot). */
unsigned weft__ring_len(weft__ring *r);

static inline bool weft__ring_is_empty(weft__ring *r)
{
    return weft__ring_len(r) == 0;
}

#endif
