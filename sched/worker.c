/* The multi-thread scheduler: the worker loop, the routing of runnable
 * tasks, stealing, and the pool's start and stop.
 *
 * Where a task goes when it becomes runnable (weft__pool_schedule):
 *  - a local task: its owner's inbox (and the owner is woken if asleep);
 *  - on a worker of its pool: the LIFO slot, for message-passing
 *    locality; the previous occupant moves to the front of the ring, so
 *    several tasks spawned or woken in one poll run newest first
 *    (depth-first, within the ring's bounds on delaying what waits
 *    behind: timers due in one tick all run before the polls queued); a
 *    searcher takes an occupant that has waited behind a long poll
 *    (steal_lifo), and a poll
 *    that fills the slot wakes a sleeper for that, once per busy spell
 *    (lifo_wake);
 *  - anywhere else: the injector, then one idle worker is woken.
 * A task woken while it runs is requeued at the back of the ring after the
 * poll (weft__pool_requeue), so yielding tasks take turns. A full ring
 * spills half of itself to the injector in one batch.
 *
 * Worker loop: every tick, due timers are fired by the clock (cheap when
 * none is near: time/driver.h); every 61st tick the injector (then the
 * inbox) is checked first so remote work is never starved; otherwise LIFO
 * (at most 3 times in a row), ring, inbox, a batch from the injector. Out
 * of work, the worker becomes a searcher (idle.c: at most min(half the
 * workers, CPUs) search at once) and steals half of a random victim's
 * ring, or a LIFO occupant its owner left waiting (steal_lifo); a searcher
 * that finds nothing spins for up to some tens of microseconds (less after
 * spins that found nothing) before it parks (a futex sleep/wake per task
 * costs far more). One parked worker drives the timers with a timeout on
 * its parker (time/driver.c). The no-lost-wakeup argument is in idle.c.
 *
 * Remote hand-off. A thread off the pool's workers that queues a task
 * holds a task reference until it has finished notifying: once queued, a
 * worker may run the task to completion and free it — and after shutdown,
 * freeing the last task frees the runtime — while this thread still
 * notifies. After weft__pool_close, such a late push is released by one
 * side or the other (a seq_cst store + fence against a fence + seq_cst
 * load), and the task it holds is cancelled if it is still live: a spawn
 * racing shutdown may have allocated it after the stop's scan (see
 * "spawning" in runtime.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched/worker.h"
#include "sched/task.h"
#include "core/alloc.h"
#include "core/errors.h"
#include "core/future.h"
#include "core/sys.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

#define INJECTOR_INTERVAL 61u
#define LIFO_MAX_STREAK 3u

_Thread_local struct weft__worker *weft__tl_worker;

static inline struct weft__pool *pool_of(struct weft__sched *s)
{
    return (struct weft__pool *)((char *)s - offsetof(struct weft__pool, sched));
}

static inline void ctr_add(_Atomic uint64_t *c, uint64_t n)
{
    /* Relaxed load+store: only the owning worker writes this counter. */
    weft_atomic_store_relaxed(c, weft_atomic_load_relaxed(c) + n);
}

/* The worker owning a local task, or NULL for a Send task. */
static inline struct weft__worker *task_owner(struct weft__pool *p, const struct weft__task *t)
{
    return t->owner_plus1 ? &p->workers[t->owner_plus1 - 1u] : NULL;
}

static void inbox_push(struct weft__worker *w, struct weft__task *t)
{
    weft__inbox_push(&w->inbox, &t->qnode);
}

static struct weft__task *inbox_pop(struct weft__worker *w)
{
    struct cds_wfcq_node *n = weft__inbox_pop(&w->inbox);
    return n ? weft__task_of_qnode(n) : NULL;
}

static struct weft__task *injector_pop(struct weft__pool *p)
{
    struct cds_wfcq_node *n = weft__injector_pop(&p->injector);
    return n ? weft__task_of_qnode(n) : NULL;
}

/* ---- queues ------------------------------------------------------------------ */

/* Move tasks the ring spilled to the injector as one batch. */
static void spill_to_injector(struct weft__pool *p, struct weft__task **spill, unsigned n)
{
    if (n == 1) {
        weft__injector_push(&p->injector, &spill[0]->qnode);
        return;
    }
    struct __cds_wfcq_head bh;
    struct cds_wfcq_tail bt;
    __cds_wfcq_init(&bh, &bt);
    for (unsigned i = 0; i < n; i++) {
        cds_wfcq_node_init(&spill[i]->qnode);
        cds_wfcq_enqueue(&bh, &bt, &spill[i]->qnode);
    }
    weft__injector_push_batch(&p->injector, &bh, &bt);
}

static void push_ring(struct weft__worker *w, struct weft__task *t)
{
    unsigned n = weft__ring_push_owner(&w->ring, t, w->spill);
    if (n) {
        spill_to_injector(w->pool, w->spill, n);
        ctr_add(&w->ctr.overflows, 1);
        weft__idle_notify(&w->pool->idle);
    }
}

/* Wake an idle worker if this one has more queued than it will run next. */
static void maybe_notify_others(struct weft__worker *w)
{
    if (w->searching)
        return;
    if (weft__ring_len(&w->ring) + (weft__ring_lifo_full(&w->ring) ? 1u : 0u) > 1u)
        weft__idle_notify_local(&w->pool->idle);
}

/* A poll just filled the LIFO slot. Its occupant waits for that poll to
 * end, which may be long: wake a sleeping worker to watch it (steal_lifo
 * takes it once it has waited). But only once per busy spell: for a poll
 * that ends soon — the common case, say a ping-pong pair — every such wake
 * is a futex call here and a wake-up, search and park there (beside an idle
 * worker, a waking ping-pong ran at half speed and burned a second core:
 * weft-bench lifo_latency). The wake is re-armed when this worker runs out
 * of work and when a thief took its occupant (waking paid off). */
static void lifo_wake(struct weft__worker *w)
{
    /* Relaxed: a hint (see ring.h). */
    if (w->searching || !weft_atomic_load_relaxed(&w->ring.lifo_wake_armed) ||
        !weft__idle_wake_wanted(&w->pool->idle))
        return;
    weft_atomic_store_relaxed(&w->ring.lifo_wake_armed, false);
    weft__idle_wake_searcher(&w->pool->idle);
}

/* A queue entry after close: cancel its task if it is still live (a spawn
 * racing shutdown queued it after the stop's scan went by), then drop the
 * entry's reference. */
static void release_entry(struct weft__task *t)
{
    weft__task_shutdown(t);
    weft__task_drop_ref(t);
}

/* After close, a remote scheduler may still push: one that won its wake
 * before the task was cancelled, or a spawn racing shutdown. Release such
 * entries, cancelling what they hold, with the runtime current so the
 * drops see it. Collect first, then release, because dropping the last
 * task reference may free the runtime (and a drop may push again, which
 * drains again). */
static void drain_closed(struct weft__pool *p)
{
    struct weft__task *list = NULL, *t;
    pthread_mutex_lock(&p->drain_lock);
    while ((t = injector_pop(p))) {
        t->qnode.next = list ? &list->qnode : NULL;
        list = t;
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        while ((t = inbox_pop(&p->workers[i]))) {
            t->qnode.next = list ? &list->qnode : NULL;
            list = t;
        }
    }
    pthread_mutex_unlock(&p->drain_lock);
    /* Out of every queue now: the link field is ours. */
    struct weft__sched *saved = weft__sched_enter(&p->sched);
    while (list) {
        t = list;
        list = t->qnode.next ? weft__task_of_qnode(t->qnode.next) : NULL;
        release_entry(t); /* may free the runtime after the last one */
    }
    weft__sched_enter(saved);
}

/* Queue `t` from a thread that is not one of the pool's workers: the
 * injector, or the inbox of `owner` (a local task). See "remote
 * hand-off" at the top. */
static void schedule_remote(struct weft__pool *p, struct weft__task *t,
                            struct weft__worker *owner)
{
    weft__task_hold(t);
    if (owner) {
        inbox_push(owner, t);
        weft__idle_notify_worker(&p->idle, owner->index);
    } else {
        weft__injector_push(&p->injector, &t->qnode);
        weft__idle_notify(&p->idle);
    }
    /* SeqCst load after the notify's fence: pairs with the seq_cst store
     * and fence in weft__pool_close, so a late push is released by one
     * side. */
    if (weft_atomic_load_seq_cst(&p->closed))
        drain_closed(p);
    weft__task_drop_ref(t); /* may free the task, then the runtime: last */
}

void weft__pool_schedule(struct weft__sched *s, struct weft__task *t)
{
    struct weft__pool *p = pool_of(s);
    struct weft__worker *w = weft__pool_worker(p);
    struct weft__worker *owner = task_owner(p, t); /* before it is queued */
    if (owner == w && owner) {
        /* Our own local task: we are running, so we will see it. */
        inbox_push(owner, t);
        return;
    }
    if (w && !owner) {
        /* A worker of this pool: the LIFO slot (a thief may take the
         * task once it has waited there: steal_lifo). */
        struct weft__task *prev = weft__ring_lifo_put(&w->ring, t);
        /* The occupant it pushed out goes to the front of the ring: the
         * next to run after it. A task that spawns (or wakes) several
         * runs them newest first, depth-first, and a fork-join tree keeps
         * a path of pending tasks queued instead of a whole level (fib:
         * 5 MB instead of 14, and faster). The ring bounds how long that
         * may delay the tasks at its back (WEFT_RING_BACK_WAIT_MAX). */
        if (prev && !weft__ring_push_front_owner(&w->ring, prev))
            push_ring(w, prev);
        maybe_notify_others(w);
        if (w->polling)
            lifo_wake(w);
        return;
    }
    schedule_remote(p, t, owner);
}

void weft__pool_requeue(struct weft__sched *s, struct weft__task *t)
{
    struct weft__pool *p = pool_of(s);
    struct weft__worker *w = weft__tl_worker;
    struct weft__worker *owner = task_owner(p, t);
    if (owner) {
        inbox_push(owner, t);
        return;
    }
    push_ring(w, t);
    maybe_notify_others(w);
}

static struct weft__task *pull_injector(struct weft__worker *w)
{
    struct weft__pool *p = w->pool;
    /* Acquire head as the ring's owner does; relaxed tail: only we write
     * it. A thief's claim only frees room, so this is a safe bound. */
    uint64_t h = weft_atomic_load_acquire(&w->ring.head);
    uint32_t used = weft_atomic_load_relaxed(&w->ring.tail) - (uint32_t)(h >> 32);
    unsigned room = WEFT_RING_CAP - used;
    unsigned max = room < WEFT_RING_CAP / 2 ? room : WEFT_RING_CAP / 2;
    /* Take a fair share, not everything: other workers pull too. */
    unsigned n = weft__injector_pop_batch(&p->injector, w->batch, max ? max : 1);
    if (n == 0)
        return NULL;
    ctr_add(&w->ctr.injector_pulls, n);
    for (unsigned i = 1; i < n; i++)
        push_ring(w, weft__task_of_qnode(w->batch[i]));
    /* The rest wait in our ring while we run the first: more than we run
     * next, even when it is one task (maybe_notify_others counts a ring
     * of one as our next). A searcher wakes another when it stops
     * searching; otherwise wake one here, fenced: a worker on its way to
     * sleep may have re-checked the queues while these tasks were in
     * neither (popped, not yet pushed), and only the fence against its
     * decrement (idle.c) makes one of us see the other. */
    if (n > 1 && !w->searching)
        weft__idle_notify(&p->idle);
    return weft__task_of_qnode(w->batch[0]);
}

static void reactor_wait_hook(void *ctx, uint64_t timeout_ns)
{
    (void)weft__reactor_wait(ctx, timeout_ns);
}

/* Now and then a busy worker looks at the reactor without waiting, so
 * I/O is not left until a worker parks. */
static void poll_reactor(struct weft__pool *p)
{
    weft__reactor *r = &p->reactor;
    /* Relaxed: a hint; with nothing registered there is nothing to see. */
    if (weft_atomic_load_relaxed(&r->registered) == 0 || !weft__reactor_try_acquire(r))
        return;
    weft__reactor_wait(r, 0);
    weft__reactor_dispatch(r);
    weft__reactor_release(r);
}

static struct weft__task *next_local_task(struct weft__worker *w)
{
    struct weft__task *t;
    w->tick++;
    /* Due timers by the clock, every tick: when every worker runs long
     * polls, a timer is late by one poll, not by 61 of them. Whatever
     * they wake lands in this worker's queues, checked below. */
    weft__timers_tick(&w->pool->timers);
    if (w->tick % INJECTOR_INTERVAL == 0) {
        /* And by the exact clock, should the coarse one lag. */
        weft__timers_fire_due(&w->pool->timers);
        poll_reactor(w->pool);
        if ((t = injector_pop(w->pool))) {
            ctr_add(&w->ctr.injector_pulls, 1);
            w->lifo_streak = 0;
            return t;
        }
        if ((t = inbox_pop(w))) {
            w->lifo_streak = 0;
            return t;
        }
    }
    if ((t = weft__ring_lifo_take(&w->ring))) {
        if (w->lifo_streak < LIFO_MAX_STREAK) {
            w->lifo_streak++;
            ctr_add(&w->ctr.lifo_hits, 1);
            return t;
        }
        /* Three in a row: the LIFO task goes to the ring, behind the
         * task at its head, so a ping-ponging pair cannot starve the
         * queue. At the front (the ring's bounds on delaying what waits
         * behind still hold), else a depth-first tree would leave a task
         * at the back every fourth poll, and the back would fill. */
        if (!weft__ring_push_front_owner(&w->ring, t))
            push_ring(w, t);
    }
    w->lifo_streak = 0;
    if ((t = weft__ring_pop_owner(&w->ring)))
        return t;
    if ((t = inbox_pop(w)))
        return t;
    return pull_injector(w);
}

/* ---- stealing ------------------------------------------------------------------ */

static uint32_t xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void start_searching(struct weft__worker *w)
{
    if (!w->searching)
        w->searching = weft__idle_start_search(&w->pool->idle);
}

static void stop_searching(struct weft__worker *w)
{
    if (!w->searching)
        return;
    w->searching = false;
    weft__idle_stop_search(&w->pool->idle);
}

/* A LIFO task may be stolen once it has waited this long behind one poll
 * of its owner: long enough that the owner was not about to run it (and
 * keep the cache warm for it), short next to the polls that strand it.
 * (The pool keeps it in lifo_steal_after_ns, for tests.) */
#define LIFO_STEAL_AFTER_NS 20000u

static void unwatch(struct weft__worker *w)
{
    w->watch_victim = NULL;
    w->watch_waiting = false;
}

static uint64_t polls_of(struct weft__worker *v)
{
    /* Relaxed: a sample of the owner's progress; nothing is read through
     * it. */
    return weft_atomic_load_relaxed(&v->ctr.polls);
}

/* Searching, found nothing in rings or the injector: the LIFO occupant of
 * `v` (the first occupied slot this pass met), or of the one we watch.
 * The owner runs its slot next, so its occupant has waited only if the
 * owner has been inside one poll all along: same task in the slot, same
 * poll count. Such a task is taken after LIFO_STEAL_AFTER_NS; until then
 * we watch it (and search_then_spin keeps spinning for it). Returns the
 * stolen task or NULL. */
static struct weft__task *steal_lifo(struct weft__worker *w, struct weft__worker *v)
{
    struct weft__worker *u = w->watch_victim;
    if (u) {
        w->watch_waiting = false;
        if (weft__ring_lifo_peek(&u->ring) == w->watch_task &&
            polls_of(u) == w->watch_polls) {
            /* Relaxed: a setting (see worker.h). */
            uint64_t after = weft_atomic_load_relaxed(&w->pool->lifo_steal_after_ns);
            if (weft__sys_now_ns() - w->watch_since_ns < after) {
                w->watch_waiting = true;
                return NULL;
            }
            struct weft__task *t = w->watch_task;
            unwatch(w);
            if (weft__ring_lifo_steal(&u->ring, t)) {
                /* Relaxed: a hint; waking for its slot paid off. */
                weft_atomic_store_relaxed(&u->ring.lifo_wake_armed, true);
                ctr_add(&w->ctr.steals, 1);
                ctr_add(&w->ctr.steal_ops, 1);
                return t;
            }
            return NULL;
        }
        unwatch(w); /* its owner moved on */
    }
    struct weft__task *t = v ? weft__ring_lifo_peek(&v->ring) : NULL;
    if (t) {
        w->watch_victim = v;
        w->watch_task = t;
        w->watch_polls = polls_of(v);
        w->watch_since_ns = weft__sys_now_ns();
    }
    return NULL;
}

static struct weft__task *steal_work(struct weft__worker *w)
{
    struct weft__pool *p = w->pool;
    start_searching(w);
    if (!w->searching)
        return NULL;
    struct weft__task *t = pull_injector(w);
    if (!t && p->nworkers > 1) {
        struct weft__worker *lifo_victim = NULL;
        unsigned start = xorshift32(&w->rng) % p->nworkers;
        for (unsigned i = 0; i < p->nworkers && !t; i++) {
            struct weft__worker *v = &p->workers[(start + i) % p->nworkers];
            if (v == w)
                continue;
            unsigned n;
            t = weft__ring_steal_into(&v->ring, &w->ring, &n);
            if (t) {
                ctr_add(&w->ctr.steals, n);
                ctr_add(&w->ctr.steal_ops, 1);
            } else if (!lifo_victim && weft__ring_lifo_peek(&v->ring)) {
                lifo_victim = v;
            }
        }
        if (!t)
            t = steal_lifo(w, lifo_victim);
    }
    if (t) {
        unwatch(w);
        stop_searching(w);
    }
    return t;
}

/* Out of work: as a searcher, keep looking for a while (up to about 50 us,
 * with growing pauses) before sleeping. A producer on another thread
 * typically makes the next task available within that window, and a futex
 * sleep/wake pair costs far more than the spin. Only searchers spin (at
 * most min(half the workers, CPUs): idle.c), so idle cores are not all
 * burned. The number of rounds adapts: a spin that found work restores the
 * full count; one that found nothing halves it (down to one round), so a
 * mostly idle runtime — a timer every millisecond — does not pay a whole
 * spin per wake-up (that spin was four fifths of its CPU time), while a
 * worker fed from another thread keeps spinning. */
#define SPIN_ROUNDS_MAX 12u
#define SPIN_ROUNDS_MIN 1u

static struct weft__task *search_then_spin(struct weft__worker *w)
{
    /* Out of work: the end of a busy spell (see lifo_wake). Relaxed: a
     * hint. */
    weft_atomic_store_relaxed(&w->ring.lifo_wake_armed, true);
    struct weft__task *t = steal_work(w);
    unsigned round = 0;
    for (; !t && w->searching && (round < w->spin_rounds || w->watch_waiting); round++) {
        ctr_add(&w->ctr.spin_rounds, 1);
        unsigned pause = round < SPIN_ROUNDS_MAX ? round : SPIN_ROUNDS_MAX - 1;
        for (unsigned i = 0; i < (16u << (pause / 2)); i++)
            weft__cpu_relax();
        /* Relaxed: a hint; the loop re-checks with acquire. */
        if (weft_atomic_load_relaxed(&w->pool->stopping))
            break;
        if (!(t = next_local_task(w)))
            t = steal_work(w);
    }
    if (t && round > 0)
        w->spin_rounds = SPIN_ROUNDS_MAX;
    else if (!t && round >= w->spin_rounds && w->spin_rounds > SPIN_ROUNDS_MIN)
        w->spin_rounds /= 2;
    unwatch(w);
    return t;
}

/* ---- running and parking ----------------------------------------------------- */

static void run_task(struct weft__worker *w, struct weft__task *t)
{
#if WEFT_DEBUG_LEVEL >= 1
    struct weft__worker *owner = task_owner(w->pool, t);
    if (owner && owner != w) {
        WEFT_MISUSE("local task '%s' reached worker %u but belongs to worker %u",
                    weft__future_name(weft__task_future(t)), w->index, owner->index);
        inbox_push(owner, t);
        weft__idle_notify_worker(&w->pool->idle, owner->index);
        return;
    }
#endif
    ctr_add(&w->ctr.polls, 1);
    w->polling = true;
    weft__task_run(t);
    w->polling = false;
}

static bool work_pending(struct weft__pool *p)
{
    if (!weft__injector_is_empty(&p->injector))
        return true;
    for (unsigned i = 0; i < p->nworkers; i++)
        if (weft__ring_len(&p->workers[i].ring) > 0)
            return true;
    return false;
}

static void park_worker(struct weft__worker *w)
{
    struct weft__pool *p = w->pool;
    bool was_searching = w->searching;
    w->searching = false;
    /* The idle protocol's re-checks (idle.c): the last searcher looks at
     * every queue, every sleeper at its own inbox. */
    bool recheck = weft__idle_sleep_begin(&p->idle, w->index, was_searching);
    /* And so does a worker that finds nobody searching once it is listed
     * (the relaxed read comes after sleep_begin's fence). It did not search
     * because another worker did, and counted on that searcher to wake it
     * for what it finds; but the searcher may have found work and looked
     * for a sleeper before we were listed. Acquire fence: the searcher
     * queued that work before its stop-search RMW (a release), which our
     * read saw. Had it not stopped yet, its look for a sleeper comes after
     * our listing and finds us. */
    if (!recheck && weft__idle_wake_wanted(&p->idle)) {
        weft_atomic_fence_acquire();
        recheck = true;
    }
    if (recheck && work_pending(p))
        weft__idle_notify(&p->idle);
    if (!weft__inbox_is_empty(&w->inbox))
        weft__idle_notify_worker(&p->idle, w->index);

    ctr_add(&w->ctr.parks, 1);
    /* One parked worker drives the timers: it sleeps until the next
     * deadline (an earlier new timer unparks it); the others sleep until
     * woken. With no timer armed this takes no lock: sleep_begin's fence
     * above orders our listing before its read (time/driver.c). */
    weft__parker *parker = weft__idle_parker(&p->idle, w->index);
    uint64_t timeout = weft__timers_driver_begin(&p->timers, parker);
    /* And one waits in the reactor (with the same deadline), if nobody
     * does: whoever leaves it, dispatches below and comes back. */
    bool io = weft__reactor_try_acquire(&p->reactor);
    if (io)
        weft__park_io(parker, reactor_wait_hook, &p->reactor, timeout);
    else
        weft__park_timeout(parker, timeout);

    /* Off the sleeper list first, then out of the driver park: a driver
     * woken to run tasks found elsewhere (as a searcher, or for a local
     * task in our inbox) hands the role on with timers armed, waking a
     * sleeper, and that must be another worker — picking ourselves would
     * unpark our own parker and make every later park return at once (a
     * spinning idle runtime). Woken by its deadline or an earlier timer,
     * it keeps the role and wakes nobody. */
    bool searching = weft__idle_sleep_end(&p->idle, w->index);
    weft__timers_driver_end(&p->timers, parker,
                            searching || !weft__inbox_is_empty(&w->inbox));
    /* Wake what the I/O events are for (into our own queues, like any
     * wake on a worker), off the sleeper list: a wake that picked us as
     * the sleeper to notify would leave a token behind. */
    if (io) {
        weft__reactor_dispatch(&p->reactor);
        weft__reactor_release(&p->reactor);
    }
    /* Relaxed: stopping only ends the loop, which re-reads it (acquire). */
    w->searching = searching && !weft_atomic_load_relaxed(&p->stopping);
}

/* ---- stopping ------------------------------------------------------------------ *
 *
 * A local future is polled and dropped only on its owner worker, so at
 * shutdown the owners drop their own. The pool stops in three steps:
 *  1. stop_and_join sets `stopping`; each worker leaves its loop between
 *     two polls and waits (wait_for_stop), so nothing is polled any more;
 *  2. the stopping thread scans the slab once (stop_task): it cancels each
 *     Send task not yet complete — its future is dropped there and then —
 *     and aborts each local one, counting it for its owner;
 *  3. it lets the workers go: each cancels its counted local tasks
 *     (cancel_own_locals) and exits; then they are joined.
 * Send futures are thus dropped before local ones, and no task is polled
 * after step 1. A drop may wake or abort other tasks: a Send task is
 * complete by step 3 (the wake does nothing), a local one is marked
 * CANCELLED and queued, so waking it does nothing either; nothing becomes
 * runnable that the steps above do not cancel. A spawn from a drop is
 * refused (`stopping`). */

/* A worker out of its loop: count itself paused and wait for step 3. */
static void wait_for_stop(struct weft__worker *w)
{
    struct weft__pool *p = w->pool;
    pthread_mutex_lock(&p->stop_lock);
    p->stop_paused++;
    pthread_cond_broadcast(&p->stop_cond);
    while (!p->stop_go)
        pthread_cond_wait(&p->stop_cond, &p->stop_lock);
    pthread_mutex_unlock(&p->stop_lock);
}

/* Step 3 on worker `w`: each local task the stopping thread counted for us
 * is CANCELLED and NOTIFIED, so exactly one entry for it is in our inbox
 * or on its way (its waker may be between its transition and its push).
 * Run entries until that many tasks were cancelled: running a cancelled
 * task drops its future, here. */
static void cancel_own_locals(struct weft__worker *w)
{
    unsigned left = w->locals_to_cancel;
    while (left > 0) {
        struct weft__task *t = inbox_pop(w);
        if (!t) {
            sched_yield(); /* a waker finishing its push */
            continue;
        }
        /* The entry holds a reference; only this thread completes the
         * task now. */
        if (!weft__task_is_complete(t))
            left--;
        weft__task_run(t);
    }
}

/* Step 2, for each task the scan finds not complete (`ctx` is the pool). */
static void stop_task(void *block, void *ctx)
{
    struct weft__pool *p = ctx;
    struct weft__task *t = block;
    struct weft__worker *owner = task_owner(p, t);
    if (!owner) {
        weft__task_shutdown(t);
        return;
    }
    /* Aborting queues the task on its owner's inbox (unless a wake did
     * already): one entry per counted task. */
    owner->locals_to_cancel++;
    weft__task_abort(t);
}

static void *worker_main(void *arg)
{
    struct weft__worker *w = arg;
    struct weft__pool *p = w->pool;
    weft__tl_worker = w;
    weft__sched_enter(&p->sched);
    weft__timers_enter(&p->timers);
    weft__reactor_enter(&p->reactor);
    weft__slab_cache_bind(&w->cache);
    /* Acquire: pairs with the release store in weft__pool_stop. */
    while (!weft_atomic_load_acquire(&p->stopping)) {
        struct weft__task *t = next_local_task(w);
        if (!t)
            t = search_then_spin(w);
        if (t) {
            stop_searching(w);
            run_task(w, t);
            continue;
        }
        park_worker(w);
    }
    /* Stopped. Wait while the stopping thread cancels the Send tasks and
     * aborts our local ones, then drop those futures here, on the thread
     * that owns them. */
    wait_for_stop(w);
    cancel_own_locals(w);
    weft__slab_cache_bind(NULL);
    weft__reactor_enter(NULL);
    weft__timers_enter(NULL);
    weft__sched_enter(NULL);
    weft__tl_worker = NULL;
    return NULL;
}

/* ---- the pool's life ------------------------------------------------------------ */

static void reactor_wake_hook(void *ctx)
{
    weft__reactor_wake(ctx);
}

static void wake_sleeper_hook(void *ctx)
{
    weft__idle_wake_sleeper(&((struct weft__pool *)ctx)->idle);
}

int weft__pool_init(struct weft__pool *p, unsigned n, const weft__sched_ops *ops)
{
    memset(p, 0, sizeof *p);
    p->sched.ops = ops;
    p->nworkers = n;
    p->workers_raw = weft__alloc(sizeof(struct weft__worker) * n + WEFT_CACHE_LINE);
    if (!p->workers_raw)
        return -ENOMEM;
    if (weft__idle_init(&p->idle, n, weft__sys_cpu_count()) != 0) {
        weft__free(p->workers_raw);
        return -ENOMEM;
    }
    int err = weft__reactor_init(&p->reactor);
    if (err != 0) {
        weft__idle_fini(&p->idle);
        weft__free(p->workers_raw);
        return err;
    }
    /* An unpark of a worker parked in the reactor writes its eventfd. */
    for (unsigned i = 0; i < n; i++) {
        weft__parker *pk = weft__idle_parker(&p->idle, i);
        pk->io_wake = reactor_wake_hook;
        pk->io_ctx = &p->reactor;
    }
    uintptr_t a = ((uintptr_t)p->workers_raw + WEFT_CACHE_LINE - 1) &
                  ~(uintptr_t)(WEFT_CACHE_LINE - 1);
    p->workers = (struct weft__worker *)a;
    memset(p->workers, 0, sizeof(struct weft__worker) * n);
    weft__injector_init(&p->injector);
    weft__slab_init(&p->sched.slab);
    weft__timers_init(&p->timers, weft__sys_now_ns(), wake_sleeper_hook, p);
    int rc = pthread_mutex_init(&p->drain_lock, NULL);
    if (rc != 0)
        WEFT_DIE_RC("pthread_mutex_init", rc);
    rc = pthread_mutex_init(&p->stop_lock, NULL);
    if (rc != 0)
        WEFT_DIE_RC("pthread_mutex_init", rc);
    rc = pthread_cond_init(&p->stop_cond, NULL);
    if (rc != 0)
        WEFT_DIE_RC("pthread_cond_init", rc);
    weft_atomic_init(&p->stopping, false);
    weft_atomic_init(&p->closed, false);
    weft_atomic_init(&p->lifo_steal_after_ns, LIFO_STEAL_AFTER_NS);
    for (unsigned i = 0; i < n; i++) {
        struct weft__worker *w = &p->workers[i];
        weft__ring_init(&w->ring);
        weft__inbox_init(&w->inbox);
        w->index = i;
        w->pool = p;
        w->rng = 0x9e3779b9u * (i + 1);
        w->spin_rounds = SPIN_ROUNDS_MAX;
        weft__slab_cache_init(&w->cache, &p->sched.slab);
    }
    return 0;
}

void weft__pool_fini(struct weft__pool *p)
{
    weft__reactor_fini(&p->reactor);
    weft__slab_fini(&p->sched.slab);
    weft__injector_fini(&p->injector);
    weft__idle_fini(&p->idle);
    pthread_mutex_destroy(&p->drain_lock);
    pthread_mutex_destroy(&p->stop_lock);
    pthread_cond_destroy(&p->stop_cond);
    weft__free(p->workers_raw);
}

/* Stop the first `started` workers and join them; with `cancel`, cancel
 * every task while they wait out of their loops (see "stopping"). */
static void stop_and_join(struct weft__pool *p, unsigned started, bool cancel)
{
    /* Release: pairs with the acquire load in worker_main. */
    weft_atomic_store_release(&p->stopping, true);
    for (unsigned i = 0; i < started; i++)
        weft__unpark(weft__idle_parker(&p->idle, i));
    pthread_mutex_lock(&p->stop_lock);
    while (p->stop_paused < started)
        pthread_cond_wait(&p->stop_cond, &p->stop_lock);
    pthread_mutex_unlock(&p->stop_lock);
    /* Every worker is out of its loop, and the lock ordered what they did
     * before the scan. */
    if (cancel)
        (void)weft__slab_scan(&p->sched.slab, WEFT_T_COMPLETE, stop_task, p);
    pthread_mutex_lock(&p->stop_lock);
    p->stop_go = true;
    pthread_cond_broadcast(&p->stop_cond);
    pthread_mutex_unlock(&p->stop_lock);
    for (unsigned i = 0; i < started; i++) {
        int rc = pthread_join(p->workers[i].thread, NULL);
        if (rc != 0)
            WEFT_DIE_RC("pthread_join", rc);
    }
}

int weft__pool_start(struct weft__pool *p, const char *prefix, size_t stack_size)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%u", prefix, i);
        int rc = weft__sys_thread_start(&p->workers[i].thread, worker_main,
                                        &p->workers[i], stack_size, name);
        if (rc != 0) {
            stop_and_join(p, i, false); /* no task exists yet */
            return rc;
        }
    }
    return 0;
}

void weft__pool_stop(struct weft__pool *p)
{
    stop_and_join(p, p->nworkers, true);
    /* The workers are gone: give their caches back, so later allocations
     * and frees off the workers see every block. */
    for (unsigned i = 0; i < p->nworkers; i++)
        weft__slab_cache_flush(&p->workers[i].cache);
}

void weft__pool_close(struct weft__pool *p)
{
    /* SeqCst store and fence: pairs with the fence and seq_cst load in
     * schedule_remote, so a late remote push is released by one side. */
    weft_atomic_store_seq_cst(&p->closed, true);
    weft_atomic_fence_seq_cst();
    /* Release every queue entry (the runtime's bias keeps it alive). */
    struct weft__task *t;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct weft__worker *w = &p->workers[i];
        if ((t = weft__ring_lifo_take(&w->ring)))
            release_entry(t);
        while ((t = weft__ring_pop_owner(&w->ring)))
            release_entry(t);
    }
    drain_closed(p);
}
