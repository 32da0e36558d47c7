/* Join handles: a future over a task's completion. The handle and the
 * completing task share the task's output slot and its join waker;
 * ownership of the waker field follows the JOIN_WAKER bit of the state
 * word (see task.h): whoever clears or sets it with a CAS owns the field
 * until the next transition. Orders as in task.c: transitions are acq_rel
 * unless a comment says why less is enough. */
#include "sched/task.h"
#include "core/chaos.h"
#include "core/errors.h"

#include <string.h>


static weft_poll join_poll(weft_future *f, weft_cx *cx, void *out);
static void join_drop(weft_future *f);
static size_t join_out_size(const weft_future *f)
{
    const weft_join *j = (const weft_join *)f;
    return j->task ? j->task->out_size : 0;
}

static const weft_future_ops join_ops = {
    .name = "weft_join",
    .out_size = WEFT_OUT_SIZE_VARIES,
    .poll = join_poll,
    .drop = join_drop,
    .out_size_of = join_out_size,
};

void weft__join_init(weft_join *j, struct weft__task *t)
{
    weft_future_init(&j->base, &join_ops, WEFT_F_SEND);
    j->task = t;
    j->status = 0;
}

/* Store a clone of `w` as the join waker and set JOIN_WAKER. The field is
 * ours (JOIN_WAKER is clear). Returns false if the task completed first. */
static bool join_set_waker(struct weft__task *t, const weft_waker *w)
{
    t->join_waker = weft_waker_clone(w);
    /* Acquire: if the task completed, the output is read next (pairs with
     * the release in task_complete); the CAS below acquires on failure. */
    uint64_t s = weft_atomic_load_acquire(&t->state);
    for (;;) {
        if (s & WEFT_T_COMPLETE) {
            weft_waker_drop(&t->join_waker);
            return false;
        }
        /* AcqRel: release so that the completer's acquire sees the waker
         * we wrote; acquire on failure, because a COMPLETE seen here is
         * followed by reading the output. */
        if (weft_atomic_cas_weak_acq_rel(&t->state, &s, s | WEFT_T_JOIN_WAKER))
            return true;
    }
}

static weft_poll join_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_join *j = (weft_join *)f;
    struct weft__task *t = j->task;
    if (!t) {
        WEFT_MISUSE("join handle polled after it was detached");
        return WEFT_PENDING;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    /* Acquire: pairs with the release in task_complete (output, status). */
    uint64_t s = weft_atomic_load_acquire(&t->state);
    if (!(s & WEFT_T_COMPLETE)) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        if (!(s & WEFT_T_JOIN_WAKER)) {
            if (join_set_waker(t, cx->waker))
                return WEFT_PENDING;
        } else {
            if (weft_waker_will_wake(&t->join_waker, cx->waker))
                return WEFT_PENDING;
            /* Take the field back to replace it. */
            for (;;) {
                if (s & WEFT_T_COMPLETE)
                    goto ready;
                /* Acquire: the completer is done reading the field when it
                 * is not COMPLETE yet — we own it after this CAS; on
                 * failure, a COMPLETE seen is followed by reading the
                 * output. Clearing the bit publishes nothing. */
                if (weft_atomic_cas_weak_acquire(&t->state, &s, s & ~(uint64_t)WEFT_T_JOIN_WAKER))
                    break;
            }
            weft_waker_drop(&t->join_waker);
            if (join_set_waker(t, cx->waker))
                return WEFT_PENDING;
        }
        /* Completed meanwhile: the acquire load or failed CAS that saw
         * COMPLETE ordered the output before us. */
    }
ready:
    if (t->out_size && out)
        memcpy(out, weft__task_output(t), t->out_size);
    /* Relaxed: COMPLETE was already acquired above; the bit came with it. */
    j->status = (weft_atomic_load_relaxed(&t->state) & WEFT_T_OUT_CANCELLED) ? -ECANCELED : 0;
    return WEFT_READY;
}

static void join_drop(weft_future *f)
{
    weft_join *j = (weft_join *)f;
    struct weft__task *t = j->task;
    if (!t)
        return;
    j->task = NULL;
    /* Relaxed: a first guess; the CAS below acquires. */
    uint64_t s = weft_atomic_load_relaxed(&t->state);
    uint64_t next;
    do {
        next = s & ~(uint64_t)WEFT_T_JOIN_INTEREST;
        if (!(s & WEFT_T_COMPLETE))
            next &= ~(uint64_t)WEFT_T_JOIN_WAKER; /* take the field back */
        /* AcqRel. Acquire: see the completer's hand-back of the field
         * (pairs with the release in task_complete's fetch_and). Release:
         * when COMPLETE is set the field stays with the completer, which
         * drops it once it sees JOIN_INTEREST clear (its acq_rel
         * fetch_and); our earlier reads of the field (join_poll's
         * will_wake) must happen before that drop. */
    } while (!weft_atomic_cas_weak_acq_rel(&t->state, &s, next));
    /* JOIN_WAKER clear: the field is ours (possibly empty). Still set
     * (COMPLETE): the completer is using it and drops it. */
    if (!(next & WEFT_T_JOIN_WAKER))
        weft_waker_drop(&t->join_waker);
    weft__task_drop_ref(t);
}

void weft_join_detach(weft_join *j)
{
    if (j)
        join_drop(&j->base);
}

void weft_join_abort(const weft_join *j)
{
    if (j && j->task)
        weft__task_abort(j->task);
}

bool weft_join_is_finished(const weft_join *j)
{
    if (!j || !j->task)
        return false;
    /* Acquire: a true answer lets the caller rely on the completion. */
    return (weft_atomic_load_acquire(&j->task->state) & WEFT_T_COMPLETE) != 0;
}

void weft_join_cancel(weft_join *j)
{
    if (!j || !j->task)
        return;
    weft__task_abort(j->task);
    join_drop(&j->base);
}

/* ---- join_all ------------------------------------------------------------------ */

static weft_poll join_all_poll(weft_future *f, weft_cx *cx, void *out);
static void join_all_drop(weft_future *f);

static const weft_future_ops join_all_ops = {
    .name = "weft_join_all",
    .out_size = 0,
    .poll = join_all_poll,
    .drop = join_all_drop,
};

int weft_join_all_init(weft_join_all *ja, weft_join *joins, size_t n, void *outs,
                       size_t out_stride, unsigned flags)
{
    if (!ja || (n > 0 && !joins) || (flags & ~WEFT_JOIN_ALL_FAIL_FAST))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (joins[i].base.ops != &join_ops || !joins[i].task)
            return -EINVAL; /* not a live join handle */
        if (outs && weft_future_out_size(&joins[i].base) > out_stride)
            return -EINVAL;
    }
    weft_future_init(&ja->base, &join_all_ops, WEFT_F_SEND);
    ja->joins = joins;
    ja->n = n;
    ja->outs = outs;
    ja->out_stride = out_stride;
    ja->flags = flags;
    ja->next = 0;
    ja->failed = n;
    ja->status = 0;
    return 0;
}

void weft_join_all_abort(weft_join_all *ja)
{
    for (size_t i = ja->next; i < ja->n; i++)
        weft_join_abort(&ja->joins[i]);
}

static weft_poll join_all_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_join_all *ja = (weft_join_all *)f;
    (void)out;
    /* In array order: one registered waker at a time, so joining n tasks
     * costs O(n) polls however they complete. */
    while (ja->next < ja->n) {
        size_t i = ja->next;
        weft_join *j = &ja->joins[i];
        /* A join handle given no buffer discards the output. */
        void *dst = ja->outs ? ja->outs + i * ja->out_stride : NULL;
        if (weft_future_poll(&j->base, cx, dst) == WEFT_PENDING)
            return WEFT_PENDING;
        int status = j->status;
        join_drop(&j->base);
        ja->next++;
        if (status != 0 && ja->failed == ja->n) {
            ja->failed = i;
            ja->status = status;
            if (ja->flags & WEFT_JOIN_ALL_FAIL_FAST)
                weft_join_all_abort(ja);
        }
    }
    return WEFT_READY;
}

static void join_all_drop(weft_future *f)
{
    weft_join_all *ja = (weft_join_all *)f;
    while (ja->next < ja->n)
        join_drop(&ja->joins[ja->next++].base);
}
