/* The local run queue: a fixed ring with steal-half (the design of the Go
 * and tokio schedulers).
 *
 * Algorithm. `tail` (u32) is written only by the owner. `head` packs two
 * u32 indices: `real`, the owner's pop position, and `steal`, the start of
 * a range a thief has claimed but not finished copying (steal == real when
 * no steal is in progress). Indices wrap; only differences are used.
 *  - push (owner): room when tail - steal < CAP: write the slot, then
 *    publish with a release store of tail. When full and no steal is in
 *    flight, claim CAP/2 tasks by advancing both halves of head with one
 *    CAS and hand them (plus the new task) back to the caller, which moves
 *    them to the global queue as one batch.
 *  - pop (owner): CAS head.real forward (and head.steal with it when no
 *    steal is in flight).
 *  - push at the front (owner): when no steal is in flight and there is
 *    room, write the slot before head, then CAS both halves of head back
 *    onto it (release). It fails, and the caller queues elsewhere, while
 *    a thief copies or when the ring is full — and, so that tasks at the
 *    back are never starved, once WEFT_RING_BACK_WAIT_MAX pops came from
 *    the run of front pushes while tasks waited at the back, until every
 *    task queued then was popped (owner-only bookkeeping: note_pop).
 *  - steal (thief): one thief at a time per ring (steal != real means busy).
 *    Claim ceil(n/2) tasks by CASing head.real forward while head.steal
 *    stays; copy the slots; then CAS head.steal up to head.real, releasing
 *    the slots to the owner.
 * Invariants: slots in [steal, tail) are owned by the queue; the owner never
 * writes a slot in [steal, real) (a thief may be copying it) because it
 * checks tail - steal < CAP; no buffer is ever freed, so no reclamation.
 * Linearization points: push — the release store of tail; push at the
 * front, pop and steal claim — their successful CAS on head.
 * Concurrency: push/push_front/pop (owner only) | steal_into (any number of thieves,
 * at most one makes progress at a time); len from anyone.
 *
 * The LIFO slot (inline in ring.h, on the tail's line) is one atomic
 * pointer. Only the owner fills it: a release store when it knows the slot
 * is empty (`lifo_full` false: only the owner makes it full, so it stays
 * empty), else a release swap. The owner empties it with a swap, a thief
 * with a CAS from the task it saw to NULL; exactly one of them gets a given
 * task, and the thief's acquire reads the release that put it there. An
 * ABA (the task ran, its memory went to a new task put in the slot) lets
 * the thief's CAS take the new task: just as runnable, and published by
 * the store its CAS read. Linearization points: the store or swap that
 * fills, the swap or CAS that empties.
 * Concurrency: lifo_put/lifo_take (owner only) | lifo_peek/lifo_steal (any
 * number of thieves).
 * No memory is allocated here. */
#include "sched/ring.h"
#include "core/errors.h"

#include <stddef.h>

static inline uint64_t pack(uint32_t steal, uint32_t real)
{
    return ((uint64_t)steal << 32) | real;
}

static inline uint32_t head_steal(uint64_t h) { return (uint32_t)(h >> 32); }
static inline uint32_t head_real(uint64_t h) { return (uint32_t)h; }

void weft__ring_init(weft__ring *r)
{
    weft_atomic_init(&r->head, 0);
    weft_atomic_init(&r->tail, 0);
    weft_atomic_init(&r->lifo, NULL);
    r->lifo_full = false;
    weft_atomic_init(&r->lifo_wake_armed, true);
    r->front_end = 0;
    r->back_waited = 0;
    r->serve_until = 0;
    r->serving = false;
    r->pops = r->run_since = 0;
    for (unsigned i = 0; i < WEFT_RING_CAP; i++)
        weft_atomic_init(&r->slots[i], NULL);
}

/* Claim CAP/2 tasks from the head and copy them, plus `t`, to `spill`.
 * Returns 0 if a thief moved head first (the caller retries the push). */
static unsigned claim_half(weft__ring *r, struct weft__task *t, uint32_t real,
                           struct weft__task **spill)
{
    const uint32_t n = WEFT_RING_CAP / 2;
    uint64_t expect = pack(real, real);
    /* Relaxed: the slots are ours (we wrote them) and the CAS only has to
     * exclude thieves claiming the same range, which atomicity alone
     * does; a failure means a thief got there first and we retry. */
    if (!weft_atomic_cas_strong_relaxed(&r->head, &expect, pack(real + n, real + n)))
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        /* Relaxed: this thread wrote these slots; the CAS above keeps
         * thieves off them. */
        spill[i] = weft_atomic_load_relaxed(&r->slots[(real + i) & WEFT_RING_MASK]);
    }
    spill[n] = t;
    return n + 1;
}

unsigned weft__ring_push_owner(weft__ring *r, struct weft__task *t,
                               struct weft__task **spill)
{
    /* Relaxed: only this thread writes tail. */
    uint32_t tail = weft_atomic_load_relaxed(&r->tail);
    for (;;) {
        /* Acquire: a thief's release of its claim (the CAS that moves
         * steal up) happens-before we overwrite the slots it copied. */
        uint64_t h = weft_atomic_load_acquire(&r->head);
        uint32_t steal = head_steal(h), real = head_real(h);
        WEFT_ASSERT(tail - steal <= WEFT_RING_CAP); /* length bound */
        if (tail - steal < WEFT_RING_CAP) {
            weft_atomic_store_relaxed(&r->slots[tail & WEFT_RING_MASK], t);
            /* Release: publish the slot (and the task's fields) to thieves
             * (pairs with the acquire load of tail in steal_into). */
            weft_atomic_store_release(&r->tail, tail + 1);
            return 0;
        }
        if (steal != real) {
            /* A thief is copying: it is about to make room, but we cannot
             * take half now. Spill just this task. */
            spill[0] = t;
            return 1;
        }
        unsigned n = claim_half(r, t, real, spill);
        if (n)
            return n;
    }
}

bool weft__ring_push_front_owner(weft__ring *r, struct weft__task *t)
{
    /* Relaxed: only this thread writes tail. */
    uint32_t tail = weft_atomic_load_relaxed(&r->tail);
    /* Acquire: a thief's release of its claim happens-before we write the
     * slot below, which it may have copied from (as in push). */
    uint64_t h = weft_atomic_load_acquire(&r->head);
    if (r->serving) {
        if ((int32_t)(r->serve_until - head_real(h)) > 0)
            return false; /* the tasks at the back go first now */
        r->serving = false; /* thieves took the rest */
        r->back_waited = 0;
    }
    for (;;) {
        uint32_t steal = head_steal(h), real = head_real(h);
        /* A thief copying [steal, real) may be reading the slot before
         * real; and a full ring has no slot before its head. */
        if (steal != real || tail - steal >= WEFT_RING_CAP)
            return false;
        if ((int32_t)(r->front_end - real) <= 0) {
            r->front_end = real; /* the front run was empty: it starts here */
            r->run_since = r->pops;
        }
        uint32_t front = real - 1;
        /* Relaxed: the slot is outside [steal, tail), so nobody reads it
         * until the CAS below puts it inside. */
        weft_atomic_store_relaxed(&r->slots[front & WEFT_RING_MASK], t);
        /* Release: publish the slot (and the task's fields) to a thief,
         * whose claim CAS (or the load before it) acquires head. A thief
         * that read head before this CAS fails its own and reloads. Should
         * head come back to a value a thief saw (we pop what we pushed),
         * the thief's claim still covers queued tasks only: tail never
         * moves back, so [real, real + n) stays inside [head, tail). */
        if (weft_atomic_cas_weak_release(&r->head, &h, pack(front, front)))
            return true;
    }
}

/* The owner popped index `real` (tail is `tail`): count a pop from the
 * front run while tasks wait at the back, and once the count reaches
 * WEFT_RING_BACK_WAIT_MAX serve the back — every task queued now — before
 * the front again (see weft__ring_push_front_owner). Counted over pops,
 * not in a row: each task popped from the back may start a new run at the
 * front, and resetting there would let a long back wait a run per task. */
static void note_pop(weft__ring *r, uint32_t real, uint32_t tail)
{
    r->pops++;
    if (r->serving) {
        if ((int32_t)(r->serve_until - (real + 1)) <= 0) {
            r->serving = false;
            r->back_waited = 0;
        }
        return;
    }
    if ((int32_t)(r->front_end - real) <= 0)
        return; /* from the back */
    bool back_too_long = false;
    if (tail == r->front_end)
        r->back_waited = 0; /* nobody waits at the back */
    else
        back_too_long = ++r->back_waited >= WEFT_RING_BACK_WAIT_MAX;
    bool run_too_old = (int32_t)(r->front_end - (real + 1)) > 0 &&
                       r->pops - r->run_since >= WEFT_RING_FRONT_AGE_MAX;
    if (back_too_long || run_too_old) {
        r->serving = true;
        r->serve_until = tail;
    }
}

struct weft__task *weft__ring_pop_owner(weft__ring *r)
{
    /* Acquire: pairs with a thief's release of its claim, like push. */
    uint64_t h = weft_atomic_load_acquire(&r->head);
    /* Relaxed: only this thread writes tail. */
    uint32_t tail = weft_atomic_load_relaxed(&r->tail);
    for (;;) {
        uint32_t steal = head_steal(h), real = head_real(h);
        if (real == tail)
            return NULL;
        uint32_t next_real = real + 1;
        uint32_t next_steal = steal == real ? next_real : steal;
        /* Acquire: a thief's release of its claim (steal_into's final CAS)
         * happens-before the owner goes on to reuse slots; on failure it
         * reloads their claim. The CAS excludes thieves claiming the same
         * slot; popping publishes nothing. */
        if (weft_atomic_cas_weak_acquire(&r->head, &h, pack(next_steal, next_real))) {
            note_pop(r, real, tail);
            /* The task after this one is most likely the next to run:
             * start bringing its header in now (its state word is the
             * first thing the run touches, and with many tasks queued it
             * is no longer in this core's first-level cache). A stale
             * slot is harmless: a prefetch never faults. */
            if (next_real != tail)
                __builtin_prefetch(
                    weft_atomic_load_relaxed(&r->slots[next_real & WEFT_RING_MASK]), 1);
            return weft_atomic_load_relaxed(&r->slots[real & WEFT_RING_MASK]);
        }
    }
}

struct weft__task *weft__ring_steal_into(weft__ring *src, weft__ring *dst,
                                         unsigned *stolen)
{
    *stolen = 0;
    /* Relaxed: dst is ours; only we write its tail. */
    uint32_t dst_tail = weft_atomic_load_relaxed(&dst->tail);
    uint32_t dst_steal = head_steal(weft_atomic_load_acquire(&dst->head));
    if (dst_tail - dst_steal > WEFT_RING_CAP / 2)
        return NULL; /* no room for half of another ring */

    uint64_t h = weft_atomic_load_acquire(&src->head);
    uint32_t first, n;
    for (;;) {
        uint32_t steal = head_steal(h), real = head_real(h);
        if (steal != real)
            return NULL; /* another thief is at work */
        /* Acquire: pairs with the owner's release store of tail, so the
         * slots up to it (and the tasks they point to) are visible. */
        uint32_t src_tail = weft_atomic_load_acquire(&src->tail);
        n = src_tail - real;
        n -= n / 2;
        if (n == 0)
            return NULL;
        if (n > WEFT_RING_CAP / 2)
            n = WEFT_RING_CAP / 2;
        /* Acquire: claims [real, real+n) against the owner's pops and
         * other thieves, and (with the acquire load of tail above) orders
         * the slot reads below after the owner's writes. The claim
         * publishes nothing. */
        if (weft_atomic_cas_weak_acquire(&src->head, &h, pack(steal, real + n))) {
            first = real;
            break;
        }
    }
    /* Relaxed copies: the acquire load of src->tail ordered the source
     * slots, our claim keeps the owner off them, and dst's slots are ours
     * until the release store of dst->tail below publishes them. */
    for (uint32_t i = 0; i < n; i++) {
        struct weft__task *t = weft_atomic_load_relaxed(&src->slots[(first + i) & WEFT_RING_MASK]);
        weft_atomic_store_relaxed(&dst->slots[(dst_tail + i) & WEFT_RING_MASK], t);
    }
    /* Release the claim: steal catches up with real (which the owner may
     * have advanced meanwhile). Release: our slot reads happen-before the
     * owner reuses the slots (pairs with the acquire load in push). */
    h = weft_atomic_load_acquire(&src->head);
    for (;;) {
        uint32_t real = head_real(h);
        if (weft_atomic_cas_weak_release(&src->head, &h, pack(real, real)))
            break;
    }
    *stolen = n;
    n--;
    struct weft__task *ret = weft_atomic_load_relaxed(&dst->slots[(dst_tail + n) & WEFT_RING_MASK]);
    if (n > 0) {
        /* Release: publish the copied slots to thieves of dst. */
        weft_atomic_store_release(&dst->tail, dst_tail + n);
    }
    return ret;
}

unsigned weft__ring_len(weft__ring *r)
{
    /* Acquire both, head first: a snapshot; head is read before tail, so
     * the owner never sees a negative length. */
    uint64_t h = weft_atomic_load_acquire(&r->head);
    uint32_t tail = weft_atomic_load_acquire(&r->tail);
    return tail - head_real(h);
}
