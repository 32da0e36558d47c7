/* Task dumps: weft_rt_tasks (a snapshot of each task, handed to a
 * visitor), weft_rt_dump (the same as a table for people), weft_rt_count
 * (live counts of tasks, timers and task wakers) and weft_rt_track_ages.
 *
 * Reading a runtime while it runs. Tasks are found by walking the slabs
 * (weft__slab_walk), which tolerates spawns and frees during the walk: a
 * free block's state word reads 0 and a live task's never does. For each
 * block:
 *
 *   1. weft__task_try_ref takes a reference only from a nonzero count (a
 *      weak pointer's upgrade): the block can then be neither freed nor
 *      reused, and its acquire sees what the spawn wrote;
 *   2. under the scheduler's dump_lock, weft__task_hold_idle classifies
 *      the task from its state word and, if it is idle, holds it as
 *      RUNNING, so that no worker polls or drops its future while the
 *      await chain is read; weft__task_let_go ends that hold (a wake or an
 *      abort meanwhile queues the task from here);
 *   3. the reference is dropped (that may free a completed task);
 *   4. the visitor gets a copy, with nothing held.
 *
 * What is read, and why none of it races:
 *
 *   | what                                    | written           | read                    |
 *   |-----------------------------------------|-------------------|-------------------------|
 *   | state word (state, polls, references)   | atomically        | atomically              |
 *   | owner_plus1, block_units                | before the spawn  | after step 1            |
 *   | the future's ops; a NAMED future's name | before the spawn  | after step 1            |
 *   | the spawn time of an AGED task          | before the spawn  | after step 1            |
 *   | the future's flags, its weft_co, the    | by the task's own | only during the hold of |
 *   | awaited children                        | polls             | step 2                  |
 *
 * The future's flags say where a coroutine's `co` sits (WEFT_FN_INIT), but
 * every poll writes them, hence the hold; whether the future is NAMED was
 * copied into the state word at spawn so that no flags are read outside
 * it.
 *
 * dump_lock: a hold looks like a poll to everyone, another dump included,
 * which would report the held task as running. Holds are short (a few
 * loads) and the lock covers one task's hold: never a visitor call (a
 * visitor may start another walk) and never a free (which takes the
 * slab's lock, which a walk holds while it takes references).
 *
 * Concurrency: any number of walks and counts may run at once, and with
 * every other operation on the runtime except weft_rt_shutdown (whose
 * cancellation scan does not expect a task held as RUNNING). */
#include "sched/dump.h"
#include "sched/runtime.h"
#include "sched/task.h"
#include "core/errors.h"
#include "core/future.h"
#include "core/sys.h"
#include "weft/co.h"

#include <inttypes.h>
#include <string.h>

/* ---- one task --------------------------------------------------------------- */

static weft_task_state state_of(uint64_t s)
{
    if (s & WEFT_T_COMPLETE)
        return (s & WEFT_T_OUT_CANCELLED) ? WEFT_TASK_CANCELLED : WEFT_TASK_COMPLETE;
    if (s & WEFT_T_CANCELLED)
        return WEFT_TASK_CANCELLING;
    if (s & WEFT_T_RUNNING)
        return WEFT_TASK_RUNNING;
    if (s & WEFT_T_NOTIFIED)
        return WEFT_TASK_QUEUED;
    return WEFT_TASK_IDLE;
}

/* References of state word `s` that are not wakers: `ours` (taken by the
 * reader), the live one and the queue's or poller's (until complete), and
 * the join handle's. */
static uint32_t wakers_of(uint64_t s, uint64_t ours)
{
    uint64_t structural = ours;
    if (!(s & WEFT_T_COMPLETE))
        structural += 1u + ((s & (WEFT_T_RUNNING | WEFT_T_NOTIFIED)) ? 1u : 0u);
    if (s & WEFT_T_JOIN_INTEREST)
        structural++;
    uint64_t refs = weft__task_refs(s);
    /* A transient reference (see weft_rt_counts) can make it more, never
     * fewer: clamp all the same, a snapshot must not wrap. */
    return refs > structural ? (uint32_t)(refs - structural) : 0u;
}

/* The coroutine state of `f`, when WEFT_FN_INIT recorded where it sits.
 * Reads f's flags: the task must be held idle. */
static const weft_co *co_of(const weft_future *f)
{
    uint32_t units = (f->flags >> WEFT__F_CO_SHIFT) & WEFT__F_CO_UNITS;
    return units ? (const weft_co *)(const void *)((const char *)f +
                                                   units * _Alignof(weft_co))
                 : NULL;
}

unsigned weft__await_chain(const weft_future *f, weft_task_frame *fr, unsigned max)
{
    unsigned n = 0;
    while (f && n < max) {
        const weft_co *co = co_of(f);
        fr[n].name = weft__future_name(f);
        fr[n++].line = co ? co->line : 0;
        f = co ? co->awaiting : NULL; /* a leaf: where it waits is its own business */
    }
    return n;
}

/* The await chain of the idle, held task whose spawned future is `f`. */
static void read_await(weft_task_info *info, const weft_future *f)
{
    if (!co_of(f))
        return; /* not a coroutine: nothing recorded */
    info->depth = weft__await_chain(f, info->await, WEFT_TASK_AWAIT_MAX);
    info->await[0].name = info->name;
}

static uint64_t spawn_time(struct weft__task *t)
{
    size_t block = t->block_units ? (size_t)t->block_units * WEFT__SLAB_GRAIN
                                  : weft__slab_large_size(t);
    uint64_t at;
    memcpy(&at, (const char *)t + block - WEFT__TASK_AGE_SIZE, sizeof at);
    return at;
}

/* Fill `info` from task `t`, on which the caller holds a reference. */
static void inspect(struct weft__sched *sched, struct weft__task *t, uint64_t now,
                    weft_task_info *info)
{
    const weft_future *f = weft__task_future(t);
    memset(info, 0, sizeof *info);
    info->id = t;
    info->worker = (int)t->owner_plus1 - 1;
    weft__spin_lock(&sched->dump_lock);
    uint64_t s = weft__task_hold_idle(t);
    /* The name pointer follows a NAMED future's header (core/future.h). */
    info->name = (s & WEFT_T_NAMED) ? *(const char *const *)(const void *)(f + 1)
                                    : f->ops->name;
    info->state = state_of(s);
    if (info->state == WEFT_TASK_IDLE) {
        read_await(info, f);
        weft__task_let_go(t);
    }
    weft__spin_unlock(&sched->dump_lock);
    info->polls = weft__task_polls(s);
    info->wakers = wakers_of(s, 1u);
    info->age_ns = WEFT_TASK_AGE_UNKNOWN;
    if (s & WEFT_T_AGED) {
        uint64_t at = spawn_time(t);
        info->age_ns = now > at ? now - at : 0u;
    }
}

/* ---- the walk ------------------------------------------------------------------- */

struct walk {
    struct weft__sched *sched;
    weft_task_visit_fn *fn;
    void *ctx;
    uint64_t now;
    int rc; /* the first nonzero return of fn: the walk stops */
};

static bool walk_hold(void *block, void *ctx)
{
    struct walk *w = ctx;
    return w->rc == 0 && weft__task_try_ref(block);
}

static void walk_visit(void *block, void *ctx)
{
    struct walk *w = ctx;
    struct weft__task *t = block;
    weft_task_info info;
    inspect(w->sched, t, w->now, &info);
    weft__task_drop_ref(t); /* may free a completed task */
    if (w->rc == 0)
        w->rc = w->fn(&info, w->ctx);
}

int weft_rt_tasks(weft_rt *rt, weft_task_visit_fn *fn, void *ctx)
{
    if (!rt || !fn) {
        WEFT_MISUSE("weft_rt_tasks: %s is NULL", rt ? "fn" : "rt");
        return -EINVAL;
    }
    /* The clock tasks record their spawn time with. */
    struct walk w = { &rt->pool.sched, fn, ctx, weft__sys_coarse_ns(), 0 };
    weft__slab_walk(&rt->pool.sched.slab, walk_hold, walk_visit, &w);
    return w.rc;
}

/* ---- counts ---------------------------------------------------------------------- */

static bool count_one(void *block, void *ctx)
{
    weft_rt_counts *c = ctx;
    /* Relaxed: a sample of one word; nothing else of the block is read. */
    uint64_t s = weft_atomic_load_relaxed(&((struct weft__task *)block)->state);
    if (weft__task_refs(s) == 0)
        return false; /* free, or being freed */
    if (s & WEFT_T_COMPLETE)
        c->kept++;
    else
        c->tasks++;
    c->wakers += wakers_of(s, 0u);
    return false;
}

static void count_never(void *block, void *ctx)
{
    (void)block, (void)ctx; /* count_one holds nothing */
}

int weft_rt_count(weft_rt *rt, weft_rt_counts *out)
{
    if (!rt || !out) {
        WEFT_MISUSE("weft_rt_count: %s is NULL", rt ? "out" : "rt");
        return -EINVAL;
    }
    weft_rt_counts c = { 0, 0, 0, 0 };
    weft__slab_walk(&rt->pool.sched.slab, count_one, count_never, &c);
    c.timers = weft__timers_armed(&rt->pool.timers);
    *out = c;
    return 0;
}

int weft_rt_track_ages(weft_rt *rt, bool on)
{
    if (!rt) {
        WEFT_MISUSE("weft_rt_track_ages: rt is NULL");
        return -EINVAL;
    }
    /* Relaxed: a switch for spawns to come; it orders nothing. */
    weft_atomic_store_relaxed(&rt->pool.sched.track_ages, on);
    return 0;
}

/* ---- the table --------------------------------------------------------------------- */

const char *weft_task_state_name(weft_task_state state)
{
    static const char *const names[] = {
        [WEFT_TASK_IDLE] = "idle",
        [WEFT_TASK_QUEUED] = "queued",
        [WEFT_TASK_RUNNING] = "running",
        [WEFT_TASK_CANCELLING] = "cancelling",
        [WEFT_TASK_COMPLETE] = "complete",
        [WEFT_TASK_CANCELLED] = "cancelled",
    };
    unsigned i = (unsigned)state;
    return i < sizeof names / sizeof names[0] ? names[i] : "?";
}

struct table {
    FILE *out;
    uint64_t by_state[WEFT_TASK_CANCELLED + 1];
    uint64_t wakers;
};

/* One frame of an await chain: "name:line" for a coroutine, "name" for a
 * leaf. */
static int print_frame(FILE *out, const weft_task_frame *fr)
{
    if (fr->line > 0)
        return fprintf(out, "%s:%d", fr->name, fr->line);
    if (fr->line == 0)
        return fprintf(out, "%s", fr->name);
    return fprintf(out, "%s:%s", fr->name, fr->line == WEFT__CO_DONE ? "done" : "refused");
}

static int print_row(const weft_task_info *t, void *ctx)
{
    struct table *tb = ctx;
    FILE *out = tb->out;
    tb->by_state[t->state]++;
    tb->wakers += t->wakers;
    char worker[16] = "-", age[32] = "-";
    if (t->worker >= 0)
        snprintf(worker, sizeof worker, "%d", t->worker);
    if (t->age_ns != WEFT_TASK_AGE_UNKNOWN)
        snprintf(age, sizeof age, "%.3fs", (double)t->age_ns / 1e9);
    int rc = fprintf(out, "%-18p %-20s %-10s %6s %8" PRIu32 " %10s %6" PRIu32 "  ", t->id,
                     t->name, weft_task_state_name(t->state), worker, t->polls, age,
                     t->wakers);
    for (unsigned i = 0; rc >= 0 && i < t->depth; i++) {
        if (i > 0)
            rc = fprintf(out, " > ");
        if (rc >= 0)
            rc = print_frame(out, &t->await[i]);
    }
    if (rc >= 0 && t->depth == 0)
        rc = fprintf(out, "-");
    /* Nothing can wake an idle task nobody holds a waker of. */
    if (rc >= 0 && t->state == WEFT_TASK_IDLE && t->wakers == 0)
        rc = fprintf(out, "  (no waker)");
    if (rc >= 0)
        rc = fprintf(out, "\n");
    return rc < 0 ? -EIO : 0;
}

int weft_rt_dump(weft_rt *rt, FILE *out)
{
    if (!rt || !out) {
        WEFT_MISUSE("weft_rt_dump: %s is NULL", rt ? "out" : "rt");
        return -EINVAL;
    }
    struct table tb;
    memset(&tb, 0, sizeof tb);
    tb.out = out;
    if (fprintf(out, "%-18s %-20s %-10s %6s %8s %10s %6s  %s\n", "TASK", "NAME", "STATE",
                "WORKER", "POLLS", "AGE", "WAKERS", "AWAIT") < 0)
        return -EIO;
    int rc = weft_rt_tasks(rt, print_row, &tb);
    if (rc != 0)
        return rc;
    const uint64_t *n = tb.by_state;
    uint64_t live = n[WEFT_TASK_IDLE] + n[WEFT_TASK_QUEUED] + n[WEFT_TASK_RUNNING] +
                    n[WEFT_TASK_CANCELLING];
    if (fprintf(out,
                "tasks: %" PRIu64 " live (%" PRIu64 " idle, %" PRIu64 " queued, %" PRIu64
                " running, %" PRIu64 " cancelling), %" PRIu64 " complete kept (%" PRIu64
                " cancelled); timers armed: %zu; task wakers: %" PRIu64 "\n",
                live, n[WEFT_TASK_IDLE], n[WEFT_TASK_QUEUED], n[WEFT_TASK_RUNNING],
                n[WEFT_TASK_CANCELLING], n[WEFT_TASK_COMPLETE] + n[WEFT_TASK_CANCELLED],
                n[WEFT_TASK_CANCELLED], weft__timers_armed(&rt->pool.timers),
                tb.wakers) < 0 ||
        fflush(out) != 0 || ferror(out))
        return -EIO;
    return 0;
}
