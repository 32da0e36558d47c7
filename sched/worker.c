/* The runtime: worker threads, scheduling, stealing, parking, spawning,
 * shutdown and statistics.
 *
 * Where a task goes when it becomes runnable (weft__sched_schedule):
 *  - a local task: its owner's inbox (and the owner is woken if asleep);
 *  - on a worker of its runtime: the LIFO slot (the previous occupant
 *    moves to the ring), for message-passing locality;
 *  - anywhere else: the injector, then one idle worker is woken.
 * A task woken while it runs is requeued at the back of the ring after the
 * poll (weft__sched_requeue), so yielding tasks take turns.
 *
 * Worker loop: every 61st tick the injector (then the inbox) is checked
 * first so remote work is never starved; otherwise LIFO (at most 3 times
 * in a row), ring, inbox, a batch from the injector. Out of work, the
 * worker fires due timers, then becomes a searcher (at most half the
 * workers search at once) and steals half of a random victim's ring; a
 * searcher that finds nothing spins for a few tens of microseconds before
 * it parks (a futex sleep/wake per task costs far more). One parked worker
 * drives the timers with a futex timeout (time.c).
 *
 * Idle protocol (no lost wakeups). idle_state = (unparked << 16) |
 * searching. A producer that made work available publishes it (queue
 * push), executes a seq_cst fence, then reads idle_state: if nobody is
 * searching and some worker sleeps, it wakes one as a searcher. (A worker
 * pushing to its own ring skips the fence: it runs that ring before it can
 * sleep, so a missed wake costs parallelism, never progress.) A worker
 * going to sleep decrements idle_state (seq_cst RMW) and, if it was the
 * last searcher, executes a seq_cst fence and re-reads every queue. By the
 * fences' total order, either the producer sees the decrement (and wakes a
 * sleeper) or the last searcher sees the work (and wakes someone, possibly
 * itself). Non-searching workers may sleep without re-checking because a
 * searcher exists, and the last searcher re-checks. A searcher that finds
 * work and was the last one wakes another, so a burst fans out.
 * The same pattern covers local tasks: the waker pushes to the owner's
 * inbox, fences, and reads the owner's `sleeping`; the owner sets
 * `sleeping`, fences, and re-reads its inbox.
 * TSan note: TSan does not model fences, but no plain data depends on
 * them here (only whether a sleeper is woken), so there is nothing for it
 * to misreport; the no-lost-wakeup property is exercised by the stress
 * programs instead.
 *
 * Runtime lifetime. The runtime struct outlives weft_rt_shutdown while
 * tasks it allocated are still referenced (by join handles or wakers held
 * elsewhere): every task counts toward `live` — on its allocating/freeing
 * worker's own counter, or on remote_live when that happens off the
 * runtime's workers. remote_live starts with a large bias; shutdown adds
 * the workers' counts and removes the bias; whoever brings it to zero
 * frees the runtime. A thread off the workers that queues a task holds a
 * task reference until it has finished notifying, so neither the task nor
 * the runtime can be freed under it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "runtime.h"
#include "alloc.h"
#include "future_internal.h"
#include "sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNPARKED_ONE (1u << 16)
#define SEARCHING_MASK 0xffffu
#define INJECTOR_INTERVAL 61u
#define LIFO_MAX_STREAK 3u

static _Thread_local struct weft__worker *tl_worker;
static _Thread_local struct weft_rt *tl_rt;

struct weft__worker *weft__sched_current_worker(void)
{
    return tl_worker;
}

void weft__sched_set_current_rt(struct weft_rt *rt)
{
    tl_rt = rt;
}

weft_rt *weft_rt_current(void)
{
    return tl_rt;
}

int weft_worker_index(void)
{
    return tl_worker ? (int)tl_worker->index : -1;
}

static inline void ctr_add(_Atomic uint64_t *c, uint64_t n)
{
    /* Relaxed load+store: only the owning worker writes this counter. */
    atomic_store_relaxed(c, atomic_load_relaxed(c) + n);
}

static inline struct weft__worker *worker_of(struct weft_rt *rt)
{
    struct weft__worker *w = tl_worker;
    return (w && w->rt == rt) ? w : NULL;
}

/* ---- runtime lifetime ----------------------------------------------------- */

static void rt_destroy(struct weft_rt *rt);

void weft__rt_task_allocated(struct weft_rt *rt)
{
    struct weft__worker *w = worker_of(rt);
    if (w)
        w->live_tasks++;
    else
        /* Relaxed: a counter; the free that brings it to zero uses acq_rel. */
        atomic_fetch_add_relaxed(&rt->remote_live, 1);
}

void weft__rt_task_freed(struct weft_rt *rt)
{
    struct weft__worker *w = worker_of(rt);
    if (w) {
        w->live_tasks--;
        return;
    }
    /* AcqRel: the thread reaching zero sees every other holder's accesses
     * before it frees the runtime. */
    if (atomic_fetch_sub_acq_rel(&rt->remote_live, 1) == 1)
        rt_destroy(rt);
}

/* ---- idle protocol -------------------------------------------------------- */

/* Wake a sleeping worker as a searcher if nobody searches. */
static void wake_searcher(struct weft_rt *rt)
{
    uint32_t s = atomic_load_relaxed(&rt->idle_state);
    if ((s & SEARCHING_MASK) != 0 || (s >> 16) >= rt->nworkers)
        return;
    pthread_mutex_lock(&rt->sleep_lock);
    /* Relaxed: re-read under sleep_lock, which every sleeper-list change
     * holds; the seq_cst RMWs below keep the idle_state total order. */
    s = atomic_load_relaxed(&rt->idle_state);
    struct weft__worker *w = NULL;
    if ((s & SEARCHING_MASK) == 0 && rt->nsleepers > 0) {
        w = &rt->workers[rt->sleepers[--rt->nsleepers]];
        atomic_store_relaxed(&w->sleeping, false);
        w->wake_searching = true;
        /* SeqCst RMW: part of the idle_state total order. */
        atomic_fetch_add_seq_cst(&rt->idle_state, UNPARKED_ONE + 1);
    }
    pthread_mutex_unlock(&rt->sleep_lock);
    if (w)
        weft__unpark(&w->parker);
}

/* Work was made available where only other workers (or a sleeping one)
 * would find it: the injector, or a push from off the workers. */
static void notify_parked(struct weft_rt *rt)
{
    /* SeqCst fence: orders the caller's queue push before the idle_state
     * read (Dekker with the fence in park_worker). */
    atomic_fence_seq_cst();
    wake_searcher(rt);
}

/* A worker pushed to its own ring or LIFO slot. No fence: the pushing
 * worker runs its own queue before it can sleep, so a wake missed here
 * costs parallelism, never progress; it saves a full fence per spawn. */
static void notify_parked_local(struct weft_rt *rt)
{
    wake_searcher(rt);
}

/* Remove `w` from the sleeper list and count it as unparked (not as a
 * searcher). Caller holds sleep_lock and saw w->sleeping. */
static void take_off_sleepers(struct weft_rt *rt, struct weft__worker *w)
{
    for (unsigned i = 0; i < rt->nsleepers; i++) {
        if (rt->sleepers[i] == w->index) {
            rt->sleepers[i] = rt->sleepers[--rt->nsleepers];
            break;
        }
    }
    /* Relaxed: `sleeping` changes under sleep_lock; lock-free readers only
     * use it as a hint before taking the lock. */
    atomic_store_relaxed(&w->sleeping, false);
    w->wake_searching = false;
    /* SeqCst RMW: part of the idle_state total order (see the top). */
    atomic_fetch_add_seq_cst(&rt->idle_state, UNPARKED_ONE);
}

void weft__sched_wake_sleeper(struct weft_rt *rt)
{
    /* Relaxed: a hint; a sleeper that parks after this check becomes the
     * timer driver by itself (see weft__timer_driver_begin). */
    uint32_t s = atomic_load_relaxed(&rt->idle_state);
    if ((s >> 16) >= rt->nworkers)
        return; /* nobody sleeps */
    struct weft__worker *w = NULL;
    pthread_mutex_lock(&rt->sleep_lock);
    if (rt->nsleepers > 0) {
        w = &rt->workers[rt->sleepers[rt->nsleepers - 1]];
        take_off_sleepers(rt, w);
    }
    pthread_mutex_unlock(&rt->sleep_lock);
    if (w)
        weft__unpark(&w->parker);
}

/* Wake one specific worker (owner of a local task) if it sleeps. */
static void notify_worker(struct weft_rt *rt, struct weft__worker *w)
{
    /* SeqCst fence: the inbox push before the `sleeping` read (pairs with
     * the fence in park_worker between setting `sleeping` and re-reading
     * the inbox). */
    atomic_fence_seq_cst();
    if (!atomic_load_relaxed(&w->sleeping))
        return;
    pthread_mutex_lock(&rt->sleep_lock);
    bool wake = atomic_load_relaxed(&w->sleeping); /* under sleep_lock */
    if (wake) {
        take_off_sleepers(rt, w);
    }
    pthread_mutex_unlock(&rt->sleep_lock);
    if (wake)
        weft__unpark(&w->parker);
}

static bool transition_to_searching(struct weft__worker *w)
{
    struct weft_rt *rt = w->rt;
    if (w->searching)
        return true;
    /* Relaxed: a limit, not a guarantee; a concurrent transition may
     * overshoot it by one, which only costs an extra searcher. */
    uint32_t s = atomic_load_relaxed(&rt->idle_state);
    /* At most half the workers search at once, so a burst of idleness
     * does not turn every worker into a thief hammering the same queues. */
    if (2u * (s & SEARCHING_MASK) >= rt->nworkers)
        return false;
    atomic_fetch_add_seq_cst(&rt->idle_state, 1);
    w->searching = true;
    return true;
}

static void transition_from_searching(struct weft__worker *w)
{
    if (!w->searching)
        return;
    w->searching = false;
    /* SeqCst RMW: part of the idle_state total order (see the top). */
    uint32_t prev = atomic_fetch_sub_seq_cst(&w->rt->idle_state, 1);
    if ((prev & SEARCHING_MASK) == 1)
        notify_parked(w->rt); /* the last searcher found work: fan out */
}

static bool work_pending(struct weft_rt *rt)
{
    if (!weft__injector_is_empty(&rt->injector))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (weft__ring_len(&rt->workers[i].ring) > 0)
            return true;
    return false;
}

static void park_worker(struct weft__worker *w)
{
    struct weft_rt *rt = w->rt;
    bool was_searching = w->searching;
    w->searching = false;
    pthread_mutex_lock(&rt->sleep_lock);
    rt->sleepers[rt->nsleepers++] = w->index;
    /* Relaxed: ordered before the inbox re-read by the fence below. */
    atomic_store_relaxed(&w->sleeping, true);
    /* SeqCst RMW: part of the idle_state total order (see the top). */
    uint32_t prev = atomic_fetch_sub_seq_cst(&rt->idle_state,
                                             UNPARKED_ONE + (was_searching ? 1u : 0u));
    pthread_mutex_unlock(&rt->sleep_lock);

    /* SeqCst fence: our idle_state/sleeping writes before the queue reads
     * below (pairs with the fences in notify_parked / notify_worker). */
    atomic_fence_seq_cst();
    if (was_searching && (prev & SEARCHING_MASK) == 1 && work_pending(rt))
        notify_parked(rt);
    if (!weft__inbox_is_empty(&w->inbox))
        notify_worker(rt, w);

    ctr_add(&w->ctr.parks, 1);
    /* One parked worker drives the timers: it sleeps until the next
     * deadline (an earlier new timer unparks it); the others sleep until
     * woken. */
    uint64_t timeout = weft__timer_driver_begin(rt, w);
    weft__park_timeout(&w->parker, timeout);
    weft__timer_driver_end(rt, w);

    /* A waker that takes us off the sleeper list does so before unparking
     * us; a timer deadline or a timer insert does not: leave it ourselves. */
    pthread_mutex_lock(&rt->sleep_lock);
    if (atomic_load_relaxed(&w->sleeping)) {
        take_off_sleepers(rt, w);
    }
    bool searching = w->wake_searching;
    pthread_mutex_unlock(&rt->sleep_lock);
    /* Relaxed: stopping only ends the loop, which re-reads it (acquire). */
    w->searching = searching && !atomic_load_relaxed(&rt->stopping);
}

/* ---- queues ------------------------------------------------------------------ */

static void push_ring(struct weft__worker *w, struct weft__task *t)
{
    if (weft__ring_push_owner(&w->ring, t, &w->rt->injector)) {
        ctr_add(&w->ctr.overflows, 1);
        notify_parked(w->rt);
    }
}

/* Wake an idle worker if this one has more queued than it will run next. */
static void maybe_notify_others(struct weft__worker *w)
{
    if (w->searching)
        return;
    if (weft__ring_len(&w->ring) + (w->lifo ? 1u : 0u) > 1u)
        notify_parked_local(w->rt);
}

/* After shutdown closed the queues, a remote scheduler that won its wake
 * before the task was cancelled may still push: release such entries.
 * Collect first, then drop the references, because dropping the last task
 * reference may free the runtime. */
static void drain_closed(struct weft_rt *rt)
{
    struct weft__task *list = NULL, *t;
    pthread_mutex_lock(&rt->drain_lock);
    while ((t = weft__injector_pop(&rt->injector))) {
        t->qnode.next = list ? &list->qnode : NULL;
        list = t;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        while ((t = weft__inbox_pop(&rt->workers[i].inbox))) {
            t->qnode.next = list ? &list->qnode : NULL;
            list = t;
        }
    }
    pthread_mutex_unlock(&rt->drain_lock);
    /* Out of every queue now: the link field is ours. */
    while (list) {
        t = list;
        list = t->qnode.next ? weft__task_of_qnode(t->qnode.next) : NULL;
        weft__task_drop_ref(t);
    }
}

/* A queue push from off the runtime's workers: if shutdown has closed the
 * queues (seq_cst load after the fence in notify_parked; pairs with the
 * seq_cst store and fence in weft_rt_shutdown), release the entry. */
static void after_remote_push(struct weft_rt *rt)
{
    if (atomic_load_seq_cst(&rt->closed))
        drain_closed(rt);
}

/* Queue `t` from a thread that is not one of the runtime's workers: the
 * injector, or the inbox of `owner` (a local task). Once queued, a worker
 * may run the task to completion and free it — and after shutdown, freeing
 * the last task frees the runtime — while this thread still notifies. A
 * reference held across the whole hand-off keeps both alive. */
static void schedule_remote(struct weft_rt *rt, struct weft__task *t,
                            struct weft__worker *owner)
{
    weft__task_hold(t);
    if (owner) {
        weft__inbox_push(&owner->inbox, t);
        notify_worker(rt, owner);
    } else {
        weft__injector_push(&rt->injector, t);
        notify_parked(rt);
    }
    after_remote_push(rt);
    weft__task_drop_ref(t); /* may free the task, then the runtime: last */
}

void weft__sched_schedule(struct weft__task *t)
{
    struct weft_rt *rt = t->rt;
    struct weft__worker *w = worker_of(rt);
    struct weft__worker *owner = weft__task_owner(t); /* before it is queued */
    if (owner == w && owner) {
        /* Our own local task: we are running, so we will see it. */
        weft__inbox_push(&owner->inbox, t);
        return;
    }
    if (w && !owner) {
        /* A worker of this runtime: the LIFO slot (never stolen, so the
         * task stays ours to touch until we run it). */
        struct weft__task *prev = w->lifo;
        w->lifo = t;
        if (prev)
            push_ring(w, prev);
        maybe_notify_others(w);
        return;
    }
    schedule_remote(rt, t, owner);
}

void weft__sched_requeue(struct weft__task *t)
{
    struct weft__worker *w = tl_worker;
    struct weft__worker *owner = weft__task_owner(t);
    if (owner) {
        weft__inbox_push(&owner->inbox, t);
        return;
    }
    push_ring(w, t);
    maybe_notify_others(w);
}

static struct weft__task *pull_injector(struct weft__worker *w)
{
    struct weft_rt *rt = w->rt;
    /* Acquire head as the ring's owner does; relaxed tail: only we write
     * it. A thief's claim only frees room, so this is a safe bound. */
    uint64_t h = atomic_load_acquire(&w->ring.head);
    uint32_t used = atomic_load_relaxed(&w->ring.tail) - (uint32_t)(h >> 32);
    unsigned room = WEFT_RING_CAP - used;
    unsigned max = room < WEFT_RING_CAP / 2 ? room : WEFT_RING_CAP / 2;
    /* Take a fair share, not everything: other workers pull too. */
    unsigned n = weft__injector_pop_batch(&rt->injector, w->batch, max ? max : 1);
    if (n == 0)
        return NULL;
    ctr_add(&w->ctr.injector_pulls, n);
    for (unsigned i = 1; i < n; i++)
        push_ring(w, w->batch[i]);
    if (n > 1)
        maybe_notify_others(w);
    return w->batch[0];
}

static struct weft__task *next_local_task(struct weft__worker *w)
{
    struct weft__task *t;
    w->tick++;
    if (w->tick % INJECTOR_INTERVAL == 0) {
        /* Busy workers fire due timers as they go (whatever they wake
         * lands in this worker's queues, checked next). */
        weft__timer_fire_due(w->rt);
        if ((t = weft__injector_pop(&w->rt->injector))) {
            ctr_add(&w->ctr.injector_pulls, 1);
            w->lifo_streak = 0;
            return t;
        }
        if ((t = weft__inbox_pop(&w->inbox))) {
            w->lifo_streak = 0;
            return t;
        }
    }
    if (w->lifo) {
        t = w->lifo;
        w->lifo = NULL;
        if (w->lifo_streak < LIFO_MAX_STREAK) {
            w->lifo_streak++;
            ctr_add(&w->ctr.lifo_hits, 1);
            return t;
        }
        /* Three in a row: the LIFO task goes to the back of the ring so
         * a ping-ponging pair cannot starve the queue. */
        push_ring(w, t);
    }
    w->lifo_streak = 0;
    if ((t = weft__ring_pop_owner(&w->ring)))
        return t;
    if ((t = weft__inbox_pop(&w->inbox)))
        return t;
    return pull_injector(w);
}

static uint32_t xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static struct weft__task *steal_work(struct weft__worker *w)
{
    struct weft_rt *rt = w->rt;
    if (!transition_to_searching(w))
        return NULL;
    struct weft__task *t = pull_injector(w);
    if (!t && rt->nworkers > 1) {
        unsigned start = xorshift32(&w->rng) % rt->nworkers;
        for (unsigned i = 0; i < rt->nworkers && !t; i++) {
            struct weft__worker *v = &rt->workers[(start + i) % rt->nworkers];
            if (v == w)
                continue;
            unsigned n;
            t = weft__ring_steal_into(&v->ring, &w->ring, &n);
            if (t) {
                ctr_add(&w->ctr.steals, n);
                ctr_add(&w->ctr.steal_ops, 1);
            }
        }
    }
    if (t)
        transition_from_searching(w);
    return t;
}

static void run_task(struct weft__worker *w, struct weft__task *t)
{
#ifndef NDEBUG
    struct weft__worker *owner = weft__task_owner(t);
    if (owner && owner != w) {
        WEFT_MISUSE("local task '%s' reached worker %u but belongs to worker %u",
                    weft__task_future(t)->ops->name, w->index, owner->index);
        weft__inbox_push(&owner->inbox, t);
        notify_worker(w->rt, owner);
        return;
    }
#endif
    ctr_add(&w->ctr.polls, 1);
    weft__task_run(t);
}

/* Out of work: as a searcher, keep looking for a short while (about tens
 * of microseconds, with growing pauses) before sleeping. A producer on
 * another thread typically makes the next task available within that
 * window, and a futex sleep/wake pair costs far more than the spin. Only
 * searchers spin (at most half the workers), so idle cores are not all
 * burned. */
#define SPIN_ROUNDS 12u

static struct weft__task *search_then_spin(struct weft__worker *w)
{
    struct weft__task *t = steal_work(w);
    for (unsigned round = 0; !t && w->searching && round < SPIN_ROUNDS; round++) {
        for (unsigned i = 0; i < (16u << (round / 2)); i++)
            weft__cpu_relax();
        if (atomic_load_relaxed(&w->rt->stopping)) /* a hint; the loop re-checks */
            break;
        if (!(t = next_local_task(w)))
            t = steal_work(w);
    }
    return t;
}

static void *worker_main(void *arg)
{
    struct weft__worker *w = arg;
    struct weft_rt *rt = w->rt;
    tl_worker = w;
    tl_rt = rt;
    weft__slab_cache_bind(&w->cache);
    /* Acquire: pairs with the release store in weft_rt_shutdown. */
    while (!atomic_load_acquire(&rt->stopping)) {
        struct weft__task *t = next_local_task(w);
        if (!t && weft__timer_fire_due(rt) > 0)
            continue; /* woke tasks into our own queues */
        if (!t)
            t = search_then_spin(w);
        if (t) {
            transition_from_searching(w);
            run_task(w, t);
            continue;
        }
        park_worker(w);
    }
    weft__slab_cache_bind(NULL);
    tl_worker = NULL;
    tl_rt = NULL;
    return NULL;
}

/* ---- spawning ----------------------------------------------------------------- */

static int spawn_task(struct weft_rt *rt, const weft_future *fut, size_t fut_size,
                      weft_join *join, struct weft__worker *owner)
{
    /* Acquire: pairs with shutdown's release store of stopping. */
    if (atomic_load_acquire(&rt->stopping))
        return -ECANCELED;
    uint64_t flags = WEFT_T_NOTIFIED | (join ? WEFT_T_JOIN_INTEREST : 0);
    unsigned refs = 2u + (join ? 1u : 0u); /* live + queue (+ join) */
    struct weft__task *t = weft__task_new(rt, fut, fut_size, owner, flags, refs);
    if (!t)
        return -ENOMEM;
    weft__rt_task_allocated(rt);
    if (join)
        weft__join_init(join, t);
    weft__sched_schedule(t);
    return 0;
}

static int check_spawnable(const weft_future *fut, size_t fut_size)
{
    if (fut_size < sizeof(weft_future))
        return -EINVAL;
    return weft__future_check_fresh(fut, "spawn");
}

int weft_spawn(weft_rt *rt, const weft_future *fut, size_t fut_size, weft_join *join)
{
    int rc = check_spawnable(fut, fut_size);
    if (rc)
        return rc;
    if (!rt)
        rt = tl_rt;
    if (!rt)
        return -EINVAL;
    if (!(fut->flags & WEFT_F_SEND)) {
        WEFT_MISUSE("weft_spawn: future '%s' is not Send (WEFT_F_SEND); "
                    "use weft_spawn_local", fut->ops->name);
        return -EPERM;
    }
    return spawn_task(rt, fut, fut_size, join, NULL);
}

int weft_spawn_local(const weft_future *fut, size_t fut_size, weft_join *join)
{
    int rc = check_spawnable(fut, fut_size);
    if (rc)
        return rc;
    struct weft__worker *w = tl_worker;
    if (!w) {
        WEFT_MISUSE("weft_spawn_local of '%s' from a thread that is not a worker",
                    fut->ops->name);
        return -EPERM;
    }
    return spawn_task(w->rt, fut, fut_size, join, w);
}

/* ---- construction and shutdown ---------------------------------------------------- */

static void rt_destroy(struct weft_rt *rt)
{
    weft__slab_fini(&rt->slab);
    weft__injector_fini(&rt->injector);
    pthread_mutex_destroy(&rt->sleep_lock);
    pthread_mutex_destroy(&rt->drain_lock);
    weft__free(rt->sleepers);
    weft__free(rt->workers_raw);
    weft__free(rt);
}

static void stop_and_join(struct weft_rt *rt, unsigned started)
{
    /* Release: pairs with the acquire load in worker_main. */
    atomic_store_release(&rt->stopping, true);
    for (unsigned i = 0; i < started; i++)
        weft__unpark(&rt->workers[i].parker);
    for (unsigned i = 0; i < started; i++)
        if (pthread_join(rt->workers[i].thread, NULL) != 0)
            WEFT_DIE("pthread_join");
}

int weft_rt_new(weft_rt **out, const weft_rt_options *opts)
{
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (opts)
        o = *opts;
    if (o.workers > WEFT_RT_MAX_WORKERS)
        return -EINVAL;
    unsigned n = o.workers ? o.workers : weft__sys_cpu_count();
    if (n > WEFT_RT_MAX_WORKERS)
        n = WEFT_RT_MAX_WORKERS;
    const char *prefix = o.thread_name_prefix ? o.thread_name_prefix : "weft-w";

    struct weft_rt *rt = weft__calloc(sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->nworkers = n;
    rt->sleepers = weft__calloc(sizeof(unsigned) * n);
    rt->workers_raw = weft__alloc(sizeof(struct weft__worker) * n + WEFT_CACHE_LINE);
    if (!rt->sleepers || !rt->workers_raw) {
        weft__free(rt->sleepers);
        weft__free(rt->workers_raw);
        weft__free(rt);
        return -ENOMEM;
    }
    uintptr_t a = ((uintptr_t)rt->workers_raw + WEFT_CACHE_LINE - 1) &
                  ~(uintptr_t)(WEFT_CACHE_LINE - 1);
    rt->workers = (struct weft__worker *)a;
    memset(rt->workers, 0, sizeof(struct weft__worker) * n);
    weft__injector_init(&rt->injector);
    weft__slab_init(&rt->slab);
    weft__wheel_init(&rt->wheel, weft__sys_now_ns());
    if (pthread_mutex_init(&rt->sleep_lock, NULL) != 0 ||
        pthread_mutex_init(&rt->drain_lock, NULL) != 0)
        WEFT_DIE("pthread_mutex_init");
    atomic_init(&rt->idle_state, n << 16); /* all unparked, none searching */
    atomic_init(&rt->stopping, false);
    atomic_init(&rt->closed, false);
    atomic_init(&rt->remote_live, WEFT__RT_LIVE_BIAS);
    for (unsigned i = 0; i < n; i++) {
        struct weft__worker *w = &rt->workers[i];
        weft__ring_init(&w->ring);
        weft__inbox_init(&w->inbox);
        weft__parker_init(&w->parker);
        atomic_init(&w->sleeping, false);
        w->index = i;
        w->rt = rt;
        w->rng = 0x9e3779b9u * (i + 1);
        weft__slab_cache_init(&w->cache, &rt->slab);
    }
    for (unsigned i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%u", prefix, i);
        int rc = weft__sys_thread_start(&rt->workers[i].thread, worker_main,
                                        &rt->workers[i], o.stack_size, name);
        if (rc != 0) {
            stop_and_join(rt, i);
            rt_destroy(rt);
            return rc == -ENOMEM || rc == -EINVAL ? rc : -EAGAIN;
        }
    }
    *out = rt;
    return 0;
}

/* Release every queue entry (the runtime's bias keeps it alive). */
static void drain_queues(struct weft_rt *rt)
{
    struct weft__task *t;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct weft__worker *w = &rt->workers[i];
        if (w->lifo) {
            t = w->lifo;
            w->lifo = NULL;
            weft__task_drop_ref(t);
        }
        while ((t = weft__ring_pop_owner(&w->ring)))
            weft__task_drop_ref(t);
    }
    drain_closed(rt);
}

void weft_rt_shutdown(weft_rt *rt)
{
    if (!rt)
        return;
    if (tl_worker) {
        WEFT_MISUSE("weft_rt_shutdown called from a worker thread (it would "
                    "join itself); ignored");
        return;
    }
    stop_and_join(rt, rt->nworkers);
    /* Workers are gone: this thread now owns their queues. Cancel every
     * task (futures dropped here), then release the queue entries. Wakes
     * from the cancellations land in the injector or inboxes (this is not
     * a worker) and are released by the drain; tasks are all complete
     * afterwards, so later wakes do nothing. */
    struct weft_rt *saved = tl_rt;
    tl_rt = rt;
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__slab_cache_flush(&rt->workers[i].cache);
    weft__slab_scan(&rt->slab, weft__task_shutdown);
    /* SeqCst store and fence: pairs with the fence and seq_cst load in
     * after_remote_push, so a late remote push is released by one side. */
    atomic_store_seq_cst(&rt->closed, true);
    atomic_fence_seq_cst();
    drain_queues(rt);
    tl_rt = saved;
    int64_t worker_live = 0;
    for (unsigned i = 0; i < rt->nworkers; i++)
        worker_live += rt->workers[i].live_tasks;
    /* Drop the bias, adding the workers' share: the runtime's memory goes
     * when the last task (held by a join handle or waker) is freed. */
    int64_t delta = worker_live - WEFT__RT_LIVE_BIAS;
    if (atomic_fetch_add_acq_rel(&rt->remote_live, delta) + delta == 0)
        rt_destroy(rt);
}

int weft_rt_stats(weft_rt *rt, weft_worker_stats *out, unsigned *n)
{
    if (!rt || !n || (*n > 0 && !out))
        return -EINVAL;
    unsigned m = *n < rt->nworkers ? *n : rt->nworkers;
    for (unsigned i = 0; i < m; i++) {
        struct weft__worker *w = &rt->workers[i];
        weft_worker_stats *s = &out[i];
        /* Relaxed: each counter is a sample (see struct
         * weft__worker_counters). */
        s->polls = atomic_load_relaxed(&w->ctr.polls);
        s->steals = atomic_load_relaxed(&w->ctr.steals);
        s->steal_ops = atomic_load_relaxed(&w->ctr.steal_ops);
        s->parks = atomic_load_relaxed(&w->ctr.parks);
        s->injector_pulls = atomic_load_relaxed(&w->ctr.injector_pulls);
        s->lifo_hits = atomic_load_relaxed(&w->ctr.lifo_hits);
        s->overflows = atomic_load_relaxed(&w->ctr.overflows);
        s->queue_depth = weft__ring_len(&w->ring);
    }
    *n = rt->nworkers;
    return 0;
}
