/* Private: the task — one allocation holding the header, the output slot
 * and the pinned future.
 *
 * State word (one _Atomic uint64_t, every transition one CAS loop):
 *   RUNNING        a worker is polling the future (it owns the future)
 *   COMPLETE       the future is gone; status and output are final
 *   NOTIFIED       the task is queued (or will be requeued after its poll)
 *   CANCELLED      drop the future at the next scheduling point
 *   JOIN_INTEREST  a join handle exists
 *   JOIN_WAKER     join_waker is set and owned by the completing side
 *   OUT_CANCELLED  set with COMPLETE when the task was cancelled (the join
 *                  status is -ECANCELED, else 0)
 *   NAMED          the future carries its own name (WEFT_F__NAMED); fixed at
 *                  spawn, so a dump finds the name without reading the
 *                  future's flags, which polls write
 *   AGED           spawned while age tracking was on: the spawn time
 *                  (weft__sys_coarse_ns) is the last 8 bytes of the
 *                  block; fixed
 *   bits 9..39     reference count (31 bits; each reference is at least a
 *                  16-byte waker somewhere, so 2^31 of them cannot exist
 *                  on one task in practice; debug builds check)
 *   bits 40..63    polls begun (24 bits, saturating), for dumps: counted by
 *                  the transition to RUNNING, which is a CAS anyway
 * References are held by: the task itself until it completes (the "live"
 * reference: an idle task nobody can wake still exists, and shutdown finds
 * it by scanning the slabs), the queue entry (or the worker running it),
 * the join handle, every task waker, and a dump while it reads the task.
 * Invariant: NOTIFIED && !RUNNING && !COMPLETE <=> exactly one queue entry
 * holds a reference; a running task's notification is requeued by the
 * worker after the poll, so a task is never in two queues. */
#ifndef WEFT_SCHED_TASK_H
#define WEFT_SCHED_TASK_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <urcu/wfcqueue.h>

#include "weft/rt.h"
#include "core/atomic.h"
#include "sched/seam.h"

#define WEFT_T_RUNNING 0x01u
#define WEFT_T_COMPLETE 0x02u
#define WEFT_T_NOTIFIED 0x04u
#define WEFT_T_CANCELLED 0x08u
#define WEFT_T_JOIN_INTEREST 0x10u
#define WEFT_T_JOIN_WAKER 0x20u
#define WEFT_T_OUT_CANCELLED 0x40u /* with COMPLETE: status is -ECANCELED */
#define WEFT_T_NAMED 0x80u
#define WEFT_T_AGED 0x100u
#define WEFT_T_REF_SHIFT 9
#define WEFT_T_REF_ONE ((uint64_t)1 << WEFT_T_REF_SHIFT)
#define WEFT_T_REF_MAX (((uint64_t)1 << 31) - 1u)
#define WEFT_T_POLL_SHIFT 40
#define WEFT_T_POLL_ONE ((uint64_t)1 << WEFT_T_POLL_SHIFT)
#define WEFT_T_POLL_MAX (((uint64_t)1 << 24) - 1u)

/* Fields of a state word. */
static inline uint64_t weft__task_refs(uint64_t s)
{
    return (s >> WEFT_T_REF_SHIFT) & WEFT_T_REF_MAX;
}

static inline uint32_t weft__task_polls(uint64_t s)
{
    return (uint32_t)(s >> WEFT_T_POLL_SHIFT);
}

/* Bytes an aged task's block has beyond its header, output and future. */
#define WEFT__TASK_AGE_SIZE sizeof(uint64_t)

struct weft__task {
    /* Written by every thread that transitions the task. */
    _Atomic uint64_t state;
    /* Link for the injector / an inbox; one queue at a time. */
    struct cds_wfcq_node qnode;
    /* The scheduler that runs the task (see seam.h). */
    struct weft__sched *sched;
    /* Join handle's waker; ownership follows the JOIN_WAKER bit. */
    weft_waker join_waker;
    uint32_t out_size;    /* output bytes, fixed at spawn */
    /* Local tasks: index + 1 of the worker that owns them; 0 for Send
     * tasks. Written at spawn, read-only afterwards; only the scheduler
     * reads it. */
    uint16_t owner_plus1;
    /* Size of this allocation in WEFT__SLAB_GRAIN units (for the slab);
     * 0 for a large block. */
    uint16_t block_units;
    /* Output slot (out_size rounded up to 16), then the future. The header
     * is 48 bytes: per-task memory is a headline number. */
    alignas(16) unsigned char data[];
};

_Static_assert(offsetof(struct weft__task, data) == 48, "task header is 48 bytes");

static inline void *weft__task_output(struct weft__task *t)
{
    return t->data;
}

static inline weft_future *weft__task_future(struct weft__task *t)
{
    return (weft_future *)(t->data + (((size_t)t->out_size + 15u) & ~(size_t)15u));
}

/* The inverse, for a future that knows it runs as a task's own future
 * (not awaited inside another) and its task's output size. */
static inline struct weft__task *weft__task_of_future(weft_future *f, size_t out_size)
{
    return (struct weft__task *)((unsigned char *)f - ((out_size + 15u) & ~(size_t)15u) -
                                 offsetof(struct weft__task, data));
}

static inline struct weft__task *weft__task_of_qnode(struct cds_wfcq_node *n)
{
    return (struct weft__task *)((char *)n - offsetof(struct weft__task, qnode));
}

/* Allocate a task of scheduler `s` holding a copy of `fut`, with `refs`
 * references and `flags` (NOTIFIED, JOIN_INTEREST). `owner_plus1` is the
 * owning worker's index + 1 for a local task, 0 for a Send one. Returns
 * NULL on allocation failure. Nothing is scheduled. */
struct weft__task *weft__task_new(struct weft__sched *s, const weft_future *fut,
                                  size_t fut_size, unsigned owner_plus1,
                                  uint64_t flags, unsigned refs);

/* Run one scheduling turn of a task popped from a queue (consumes the
 * queue's reference): poll it, or drop its future if it was aborted. The
 * thread the scheduler runs tasks on. */
void weft__task_run(struct weft__task *t);

/* Take / drop one reference. Dropping the last frees the task, and
 * through the seam possibly its scheduler. */
void weft__task_hold(struct weft__task *t);
void weft__task_drop_ref(struct weft__task *t);

/* Wake the task as its own waker's wake_by_ref would (the deterministic
 * runtime's spurious wakes). Any thread. */
void weft__task_wake(struct weft__task *t);

/* Abort: mark the task cancelled and, if it is idle, queue it so its
 * future is dropped at once. No effect once complete. Any thread. */
void weft__task_abort(struct weft__task *t);

/* Shutdown (nothing polls the task any more): cancel the task now — drop
 * its future on the calling thread, complete it with -ECANCELED — unless
 * it is already complete or its block is free (state 0). */
void weft__task_shutdown(struct weft__task *t);

/* True once `t` completed (its future is gone). The caller holds a
 * reference or otherwise knows the task is not freed. */
static inline bool weft__task_is_complete(struct weft__task *t)
{
    /* Acquire: pairs with task_complete's release, so a true answer comes
     * with the completion's writes. */
    return (weft_atomic_load_acquire(&t->state) & WEFT_T_COMPLETE) != 0;
}

/* The join handle of a task just spawned with JOIN_INTEREST (join.c). */
void weft__join_init(weft_join *j, struct weft__task *t);

/* ---- inspection (sched/dump.c) ---- */

/* Take a reference on the task in `block` if it is alive: only from a
 * nonzero count (a weak pointer's upgrade), so a free or dying block is
 * left alone. Returns false when the block holds no live task. After it,
 * what was written before the spawn and never after (the header, the
 * future's ops, the name of a NAMED future, the spawn time of an AGED
 * one) may be read. Drop with weft__task_drop_ref. Any thread; the block
 * must belong to a live scheduler's slab. */
bool weft__task_try_ref(void *block);
/* With a reference held: if the task is idle (not queued, running or
 * complete), hold it as RUNNING so that nothing polls or drops its future
 * until weft__task_let_go — its future may be read meanwhile; wakes and
 * aborts during the hold are honoured at the let-go. Returns the state
 * word just before; the hold was taken iff that word is idle. */
uint64_t weft__task_hold_idle(struct weft__task *t);
/* End a hold of weft__task_hold_idle; a task woken or aborted during it
 * is queued from the calling thread. */
void weft__task_let_go(struct weft__task *t);

#endif
