/* The multi-thread scheduler: the worker loop, the routing of runnable
 * tasks, stealing, and the pool's start and stop.
 *
 * Where a task goes when it becomes runnable (weft__pool_schedule):
 *  - a local task: its owner's inbox (and the owner is woken if asleep);
 *  - on a worker of its pool: the LIFO slot (the previous occupant moves
 *    to the ring), for message-passing locality;
 *  - anywhere else: the injector, then one idle worker is woken.
 * A task woken while it runs is requeued at the back of the ring after the
 * poll (weft__pool_requeue), so yielding tasks take turns. A full ring
 * spills half of itself to the injector in one batch.
 *
 * Worker loop: every tick, due timers are fired by the clock (cheap when
 * none is near: time/driver.h); every 61st tick the injector (then the
 * inbox) is checked first so remote work is never starved; otherwise LIFO
 * (at most 3 times in a row), ring, inbox, a batch from the injector. Out
 * of work, the worker becomes a searcher (idle.c: at most half the
 * workers search at once) and steals
 * half of a random victim's ring; a searcher that finds nothing spins for
 * a few tens of microseconds before it parks (a futex sleep/wake per task
 * costs far more). One parked worker drives the timers with a timeout on
 * its parker (time/driver.c). The no-lost-wakeup argument is in idle.c.
 *
 * Remote hand-off. A thread off the pool's workers that queues a task
 * holds a task reference until it has finished notifying: once queued, a
 * worker may run the task to completion and free it — and after shutdown,
 * freeing the last task frees the runtime — while this thread still
 * notifies. After weft__pool_close, such a late push is released by one
 * side or the other (a seq_cst store + fence against a fence + seq_cst
 * load). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sched/worker.h"
#include "sched/task.h"
#include "core/alloc.h"
#include "core/errors.h"
#include "core/future.h"
#include "core/sys.h"

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
    if (weft__ring_len(&w->ring) + (w->lifo ? 1u : 0u) > 1u)
        weft__idle_notify_local(&w->pool->idle);
}

/* After close, a remote scheduler that won its wake before the task was
 * cancelled may still push: release such entries. Collect first, then
 * drop the references, because dropping the last task reference may free
 * the runtime. */
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
    while (list) {
        t = list;
        list = t->qnode.next ? weft__task_of_qnode(t->qnode.next) : NULL;
        weft__task_drop_ref(t);
    }
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
        /* A worker of this pool: the LIFO slot (never stolen, so the task
         * stays ours to touch until we run it). */
        struct weft__task *prev = w->lifo;
        w->lifo = t;
        if (prev)
            push_ring(w, prev);
        maybe_notify_others(w);
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
    if (n > 1)
        maybe_notify_others(w);
    return weft__task_of_qnode(w->batch[0]);
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

static struct weft__task *steal_work(struct weft__worker *w)
{
    struct weft__pool *p = w->pool;
    start_searching(w);
    if (!w->searching)
        return NULL;
    struct weft__task *t = pull_injector(w);
    if (!t && p->nworkers > 1) {
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
            }
        }
    }
    if (t)
        stop_searching(w);
    return t;
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
        /* Relaxed: a hint; the loop re-checks with acquire. */
        if (weft_atomic_load_relaxed(&w->pool->stopping))
            break;
        if (!(t = next_local_task(w)))
            t = steal_work(w);
    }
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
    weft__task_run(t);
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
    /* Relaxed: stopping only ends the loop, which re-reads it (acquire). */
    w->searching = searching && !weft_atomic_load_relaxed(&p->stopping);
}

static void *worker_main(void *arg)
{
    struct weft__worker *w = arg;
    struct weft__pool *p = w->pool;
    weft__tl_worker = w;
    weft__sched_enter(&p->sched);
    weft__timers_enter(&p->timers);
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
    weft__slab_cache_bind(NULL);
    weft__timers_enter(NULL);
    weft__sched_enter(NULL);
    weft__tl_worker = NULL;
    return NULL;
}

/* ---- the pool's life ------------------------------------------------------------ */

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
    if (weft__idle_init(&p->idle, n) != 0) {
        weft__free(p->workers_raw);
        return -ENOMEM;
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
    weft_atomic_init(&p->stopping, false);
    weft_atomic_init(&p->closed, false);
    for (unsigned i = 0; i < n; i++) {
        struct weft__worker *w = &p->workers[i];
        weft__ring_init(&w->ring);
        weft__inbox_init(&w->inbox);
        w->index = i;
        w->pool = p;
        w->rng = 0x9e3779b9u * (i + 1);
        weft__slab_cache_init(&w->cache, &p->sched.slab);
    }
    return 0;
}

void weft__pool_fini(struct weft__pool *p)
{
    weft__slab_fini(&p->sched.slab);
    weft__injector_fini(&p->injector);
    weft__idle_fini(&p->idle);
    pthread_mutex_destroy(&p->drain_lock);
    weft__free(p->workers_raw);
}

static void stop_and_join(struct weft__pool *p, unsigned started)
{
    /* Release: pairs with the acquire load in worker_main. */
    weft_atomic_store_release(&p->stopping, true);
    for (unsigned i = 0; i < started; i++)
        weft__unpark(weft__idle_parker(&p->idle, i));
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
            stop_and_join(p, i);
            return rc;
        }
    }
    return 0;
}

void weft__pool_stop(struct weft__pool *p)
{
    stop_and_join(p, p->nworkers);
    /* The workers are gone: give their caches back, so the slab scan and
     * later frees see every block. */
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
        if (w->lifo) {
            t = w->lifo;
            w->lifo = NULL;
            weft__task_drop_ref(t);
        }
        while ((t = weft__ring_pop_owner(&w->ring)))
            weft__task_drop_ref(t);
    }
    drain_closed(p);
}
