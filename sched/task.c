/* Tasks: the state machine, task wakers, running and cancelling. Join
 * handles are in join.c; the scheduler is reached only through the seam
 * (seam.h).
 *
 * Every transition of the state word is one CAS loop (or one RMW) computing
 * the next state from the current one; the comments on each say what the
 * transition decides. Orders: transitions are acq_rel — release publishes
 * what this side wrote (output, status, the join waker) and acquire sees
 * the other side's — except ref_inc (relaxed: a new reference is only ever
 * made from an existing one, like Arc::clone). */
#include "sched/task.h"
#include "core/errors.h"
#include "core/future.h"
#include "core/sys.h"

#include <string.h>

static inline uint64_t ref_count(uint64_t s)
{
    return weft__task_refs(s);
}

/* ---- allocation ------------------------------------------------------------ */

struct weft__task *weft__task_new(struct weft__sched *s, const weft_future *fut,
                                  size_t fut_size, unsigned owner_plus1,
                                  uint64_t flags, unsigned refs)
{
    size_t out_size = weft_future_out_size(fut);
    if (out_size > UINT32_MAX / 2 || fut_size > UINT32_MAX / 2)
        return NULL;
    size_t out_room = (out_size + 15u) & ~(size_t)15u;
    /* Relaxed: a switch; a spawn racing with it may go either way. */
    bool aged = weft_atomic_load_relaxed(&s->track_ages);
    size_t size = sizeof(struct weft__task) + out_room + fut_size +
                  (aged ? WEFT__TASK_AGE_SIZE : 0u);
    uint32_t block_size;
    struct weft__task *t = weft__slab_alloc(&s->slab, size, &block_size);
    if (!t)
        return NULL;
    if (aged) {
        uint64_t now = weft__sys_coarse_ns(); /* a few ms steps: ages in dumps */
        memcpy((char *)t + block_size - WEFT__TASK_AGE_SIZE, &now, sizeof now);
        flags |= WEFT_T_AGED;
    }
    if (fut->flags & WEFT_F__NAMED)
        flags |= WEFT_T_NAMED;
    cds_wfcq_node_init(&t->qnode);
    t->sched = s;
    t->owner_plus1 = (uint16_t)owner_plus1;
    t->join_waker.ops = NULL;
    t->join_waker.data = NULL;
    t->out_size = (uint32_t)out_size;
    t->block_units = block_size <= WEFT__SLAB_MAX ? (uint16_t)(block_size / WEFT__SLAB_GRAIN) : 0;
    memset(t->data, 0, out_room);
    memcpy(weft__task_future(t), fut, fut_size);
    /* Release: a shutdown scan may run meanwhile (a spawn from off the
     * workers racing shutdown) and cancel the task as soon as it reads this
     * word, and a dump may find the block before the task is queued (both
     * walk the slabs): the word publishes the fields above (pairs with the
     * scan's acquire load and the acquire CAS in weft__task_try_ref; on
     * x86 this is a plain store). Other threads otherwise get the task
     * through the queue push that follows. */
    weft_atomic_store_release(&t->state, flags | (uint64_t)refs * WEFT_T_REF_ONE);
    return t;
}

static void task_dealloc(struct weft__task *t)
{
    struct weft__sched *s = t->sched;
    weft__slab_free(&s->slab, t,
                    t->block_units ? (uint32_t)t->block_units * WEFT__SLAB_GRAIN : UINT32_MAX);
    s->ops->task_freed(s); /* may free the scheduler: last */
}

static void schedule(struct weft__task *t)
{
    t->sched->ops->schedule(t->sched, t);
}

static void ref_inc(struct weft__task *t)
{
    /* Relaxed: the caller already holds a reference, so the task cannot be
     * freed concurrently; nothing is published by taking a reference. */
    uint64_t prev = weft_atomic_fetch_add_relaxed(&t->state, WEFT_T_REF_ONE);
    WEFT_ASSERT(ref_count(prev) < WEFT_T_REF_MAX); /* the count never carries */
    (void)prev;
}

/* Drop `n` references; frees the task when they were the last. */
static void ref_dec_n(struct weft__task *t, unsigned n)
{
    /* AcqRel: release orders this holder's accesses before the free;
     * acquire makes the freeing thread see every other holder's. */
    uint64_t prev = weft_atomic_fetch_sub_acq_rel(&t->state, (uint64_t)n * WEFT_T_REF_ONE);
    WEFT_ASSERT(ref_count(prev) >= n); /* a count never goes below zero */
    if (ref_count(prev) == n)
        task_dealloc(t);
}

void weft__task_hold(struct weft__task *t)
{
    ref_inc(t);
}

void weft__task_drop_ref(struct weft__task *t)
{
    ref_dec_n(t, 1);
}

/* ---- transitions ---------------------------------------------------------- */

enum wake_action { WAKE_NONE, WAKE_SUBMIT, WAKE_DEALLOC };

/* Wake by value: the waker's reference is consumed — it becomes the queue
 * reference when the task gets queued, else it is dropped. */
static enum wake_action transition_notify_by_val(struct weft__task *t)
{
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        uint64_t next;
        enum wake_action a;
        if (s & WEFT_T_RUNNING) {
            /* The worker requeues after its poll; the running reference
             * keeps the count above zero. */
            next = (s | WEFT_T_NOTIFIED) - WEFT_T_REF_ONE;
            a = WAKE_NONE;
        } else if (s & (WEFT_T_COMPLETE | WEFT_T_NOTIFIED)) {
            next = s - WEFT_T_REF_ONE;
            a = ref_count(next) == 0 ? WAKE_DEALLOC : WAKE_NONE;
        } else {
            next = s | WEFT_T_NOTIFIED;
            a = WAKE_SUBMIT;
        }
        /* AcqRel: release orders the waker's prior writes (e.g. a channel
         * slot) before the poll that follows the queue hand-off (pairs
         * with the acquire in transition_to_running); acquire because
         * dropping the last reference here frees the task, which must see
         * every other holder's accesses. */
        if (weft_atomic_cas_weak_acq_rel(&t->state, &s, next))
            return a;
    }
}

/* Wake by reference: a new queue reference is taken when the task gets
 * queued. */
static enum wake_action transition_notify_by_ref(struct weft__task *t)
{
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        uint64_t next;
        enum wake_action a;
        if (s & (WEFT_T_COMPLETE | WEFT_T_NOTIFIED)) {
            /* Acquire-less early exit is fine: nothing is published by a
             * wake that does nothing, and the pending notification already
             * guarantees a poll after this point. */
            return WAKE_NONE;
        } else if (s & WEFT_T_RUNNING) {
            next = s | WEFT_T_NOTIFIED;
            a = WAKE_NONE;
        } else {
            next = (s | WEFT_T_NOTIFIED) + WEFT_T_REF_ONE;
            a = WAKE_SUBMIT;
        }
        /* Release: orders the waker's prior writes before the poll that
         * follows the queue hand-off (pairs with the acquire in
         * transition_to_running). Nothing is freed here. */
        if (weft_atomic_cas_weak_release(&t->state, &s, next))
            return a;
    }
}

/* Abort: mark CANCELLED; queue the task (with a new reference) if idle, so
 * a worker drops its future at once. */
static enum wake_action transition_cancel(struct weft__task *t)
{
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        uint64_t next;
        enum wake_action a = WAKE_NONE;
        if (s & (WEFT_T_CANCELLED | WEFT_T_COMPLETE))
            return WAKE_NONE;
        if (s & WEFT_T_RUNNING)
            next = s | WEFT_T_NOTIFIED | WEFT_T_CANCELLED;
        else if (s & WEFT_T_NOTIFIED)
            next = s | WEFT_T_CANCELLED;
        else {
            next = (s | WEFT_T_NOTIFIED | WEFT_T_CANCELLED) + WEFT_T_REF_ONE;
            a = WAKE_SUBMIT;
        }
        /* Release: orders the abort before the poll that drops the future
         * (pairs with the acquire in transition_to_running). */
        if (weft_atomic_cas_weak_release(&t->state, &s, next))
            return a;
    }
}

enum run_action { RUN_POLL, RUN_CANCEL, RUN_SKIP };

/* A worker popped the task: take RUNNING (the queue reference becomes the
 * running reference), or drop the stale entry's reference. */
static enum run_action transition_to_running(struct weft__task *t)
{
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        if (s & (WEFT_T_RUNNING | WEFT_T_COMPLETE)) {
            /* Only at shutdown, which took the task out from under its
             * queue entry: drop the entry's reference. */
            ref_dec_n(t, 1);
            return RUN_SKIP;
        }
        uint64_t next = (s | WEFT_T_RUNNING) & ~(uint64_t)WEFT_T_NOTIFIED;
        if (!(s & WEFT_T_CANCELLED) && weft__task_polls(s) < WEFT_T_POLL_MAX)
            next += WEFT_T_POLL_ONE; /* a poll begins (for dumps) */
        /* Acquire: see everything the waker published before queueing and
         * the previous poll's writes to the future (pairs with the release
         * in transition_to_idle and the wake transitions). Taking RUNNING
         * publishes nothing. */
        if (weft_atomic_cas_weak_acquire(&t->state, &s, next))
            return (s & WEFT_T_CANCELLED) ? RUN_CANCEL : RUN_POLL;
    }
}

enum idle_action { IDLE_DONE, IDLE_REQUEUE, IDLE_CANCEL };

/* After a PENDING poll: release RUNNING. A wake during the poll (from
 * another thread: NOTIFIED; from the task itself: `self_woken`) keeps the
 * running reference for the requeue; otherwise it is dropped here (the
 * live reference keeps the count above zero). */
static enum idle_action transition_to_idle(struct weft__task *t, bool self_woken)
{
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        if (s & WEFT_T_CANCELLED)
            return IDLE_CANCEL;
        uint64_t next = s & ~(uint64_t)WEFT_T_RUNNING;
        enum idle_action a = IDLE_REQUEUE;
        if (self_woken) {
            next |= WEFT_T_NOTIFIED;
        } else if (!(s & WEFT_T_NOTIFIED)) {
            next -= WEFT_T_REF_ONE;
            a = IDLE_DONE;
        }
        /* Release: the poll's writes to the future happen-before the next
         * poll on whichever worker (pairs with transition_to_running). A
         * wake's writes reach that poll too: this RMW continues the
         * waker's release sequence. */
        if (weft_atomic_cas_weak_release(&t->state, &s, next))
            return a;
    }
}

/* ---- wakers ----------------------------------------------------------------- */

static weft_waker task_waker_clone(const void *data);
static void task_waker_wake(void *data);
static void task_waker_wake_by_ref(const void *data);
static void task_waker_drop(void *data);

static const weft_waker_ops task_waker_ops = {
    task_waker_clone, task_waker_wake, task_waker_wake_by_ref, task_waker_drop,
};

static weft_waker task_waker_clone(const void *data)
{
    struct weft__task *t = (struct weft__task *)data;
    ref_inc(t);
    weft_waker w = { &task_waker_ops, t };
    return w;
}

static void task_waker_wake(void *data)
{
    struct weft__task *t = data;
    switch (transition_notify_by_val(t)) {
    case WAKE_SUBMIT:
        schedule(t);
        break;
    case WAKE_DEALLOC:
        task_dealloc(t);
        break;
    case WAKE_NONE:
        break;
    }
}

/* The task this thread is polling, and whether it woke itself. A task that
 * wakes itself while running (yield, a coop budget running out) needs no
 * atomic: the worker folds the wake into its transition to idle. */
static _Thread_local struct weft__task *tl_running;
static _Thread_local bool tl_self_woken;

static void task_waker_wake_by_ref(const void *data)
{
    struct weft__task *t = (struct weft__task *)data;
    if (t == tl_running) {
        tl_self_woken = true;
        return;
    }
    if (transition_notify_by_ref(t) == WAKE_SUBMIT)
        schedule(t);
}

void weft__task_wake(struct weft__task *t)
{
    task_waker_wake_by_ref(t);
}

static void task_waker_drop(void *data)
{
    ref_dec_n(data, 1);
}

/* ---- completion --------------------------------------------------------------- */

/* The task's future is gone (finished or cancelled): publish the status,
 * wake the joiner and drop the running and live references. The caller
 * holds RUNNING. */
static void task_complete(struct weft__task *t, int status)
{
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    uint64_t next;
    do {
        next = (s & ~(uint64_t)WEFT_T_RUNNING) | WEFT_T_COMPLETE |
               (status ? WEFT_T_OUT_CANCELLED : 0u);
        /* AcqRel: release publishes output and status to the joiner (pairs
         * with the acquire load in join_poll); acquire sees the join waker
         * the joiner stored before setting JOIN_WAKER. */
    } while (!weft_atomic_cas_weak_acq_rel(&t->state, &s, next));

    if ((s & WEFT_T_JOIN_INTEREST) && (s & WEFT_T_JOIN_WAKER)) {
        weft_waker_wake_by_ref(&t->join_waker);
        /* Hand the waker field back; if the handle was dropped meanwhile,
         * it left the field to us. AcqRel: release ends our use of the
         * field before the handle takes it back (pairs with the acquire
         * CASes in join.c); acquire, because a field left to us is then
         * ours to drop. */
        uint64_t after = weft_atomic_fetch_and_acq_rel(&t->state, ~(uint64_t)WEFT_T_JOIN_WAKER);
        if (!(after & WEFT_T_JOIN_INTEREST))
            weft_waker_drop(&t->join_waker);
    }
    ref_dec_n(t, 2); /* running + live */
}

static void task_cancel_now(struct weft__task *t)
{
    weft_future *f = weft__task_future(t);
    weft_future_drop(f);
    memset(weft__task_output(t), 0, t->out_size);
    task_complete(t, -ECANCELED);
}

void weft__task_run(struct weft__task *t)
{
    switch (transition_to_running(t)) {
    case RUN_SKIP:
        return;
    case RUN_CANCEL:
        task_cancel_now(t);
        return;
    case RUN_POLL:
        break;
    }
    weft_waker w = { &task_waker_ops, t };
    weft_cx cx;
    weft_cx_init(&cx, &w);
    weft_future *f = weft__task_future(t);
    tl_running = t;
    tl_self_woken = false;
    weft_poll r = weft_future_poll(f, &cx, weft__task_output(t));
    tl_running = NULL;
    if (r == WEFT_READY) {
        weft_future_drop(f);
        task_complete(t, 0);
        return;
    }
    switch (transition_to_idle(t, tl_self_woken)) {
    case IDLE_DONE:
        return;
    case IDLE_REQUEUE:
        t->sched->ops->requeue(t->sched, t);
        return;
    case IDLE_CANCEL:
        task_cancel_now(t);
        return;
    }
}

void weft__task_shutdown(struct weft__task *t)
{
    /* Acquire: see the writes of whoever made the task what it is (its
     * spawner, its last poll); a block the scan reports may just have been
     * freed. */
    uint64_t s = weft_atomic_load_acquire(&t->state);
    for (;;) {
        if (s == 0 || (s & WEFT_T_COMPLETE))
            return; /* freed, or done and held by a join handle or waker */
        if (s & WEFT_T_RUNNING) {
            /* Cannot happen: nothing polls a task once shutdown cancels
             * it, and only one thread cancels a given task (the stopping
             * thread, or the one that drained its queue entry). */
            WEFT_DIE("task running during shutdown");
        }
        /* Take RUNNING plus a running reference (task_complete drops
         * running + live). AcqRel: acquire as for the load above; release
         * keeps this transition ordered like every other one (shutdown
         * runs once, off the hot path). */
        uint64_t next = (s | WEFT_T_RUNNING | WEFT_T_CANCELLED) + WEFT_T_REF_ONE;
        if (weft_atomic_cas_weak_acq_rel(&t->state, &s, next))
            break;
    }
    task_cancel_now(t);
}

void weft__task_abort(struct weft__task *t)
{
    if (transition_cancel(t) == WAKE_SUBMIT)
        schedule(t);
}

/* ---- inspection (sched/dump.c) --------------------------------------------------- */

/* A dump reads a task it holds: a reference keeps the block from being
 * freed and reused, and for an idle task the RUNNING bit keeps every
 * worker away from its future. To wakers and aborts that hold looks like a
 * poll in progress: they set NOTIFIED (and CANCELLED) and leave the
 * queueing to whoever holds RUNNING, which weft__task_let_go does. */
bool weft__task_try_ref(void *block)
{
    struct weft__task *t = block;
    /* Relaxed: a first guess; the CAS below acquires. */
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        if (ref_count(s) == 0)
            return false; /* free (0), or its last reference is gone */
        /* Acquire: see the header and the future's ops the spawner wrote
         * (pairs with the release store in weft__task_new, whose release
         * sequence every later transition continues). A new reference
         * publishes nothing. */
        if (weft_atomic_cas_weak_acquire(&t->state, &s, s + WEFT_T_REF_ONE))
            return true;
    }
}

uint64_t weft__task_hold_idle(struct weft__task *t)
{
    /* Relaxed: a task that is not idle is only classified by this value
     * (what a dump reads of it besides was written before the spawn, and
     * weft__task_try_ref acquired that). */
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    for (;;) {
        if (s & (WEFT_T_RUNNING | WEFT_T_NOTIFIED | WEFT_T_COMPLETE))
            return s;
        /* Acquire: the last poll's writes to the future happen before our
         * reads of it (pairs with the release in transition_to_idle).
         * Taking RUNNING publishes nothing. */
        if (weft_atomic_cas_weak_acquire(&t->state, &s,
                                         (s | WEFT_T_RUNNING) + WEFT_T_REF_ONE))
            return s;
    }
}

void weft__task_let_go(struct weft__task *t)
{
    /* Relaxed: a first guess; the CAS below releases. */
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    uint64_t next;
    do {
        next = s & ~(uint64_t)WEFT_T_RUNNING;
        if (!(s & WEFT_T_NOTIFIED))
            next -= WEFT_T_REF_ONE; /* the live reference remains */
        /* Release: the hold's reads of the future happen before the next
         * poll writes it (pairs with the acquire in transition_to_running);
         * a wake during the hold reaches that poll through this RMW, which
         * continues the waker's release sequence. */
    } while (!weft_atomic_cas_weak_release(&t->state, &s, next));
    if (s & WEFT_T_NOTIFIED)
        schedule(t); /* woken or aborted meanwhile: the hold's reference queues it */
}
