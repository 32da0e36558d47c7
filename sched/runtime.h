/* Private: the runtime and worker structures (shared by the scheduler's
 * files; never installed). */
#ifndef WEFT_SCHED_RUNTIME_H
#define WEFT_SCHED_RUNTIME_H

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>

#include "weft/rt.h"
#include "atomic.h"
#include "injector.h"
#include "park.h"
#include "ring.h"
#include "slab.h"
#include "timer.h"
#include "task.h"

/* Counters: written by the owning worker only (relaxed load + store, no
 * RMW), read by weft_rt_stats from any thread (relaxed: each value is a
 * sample, not a synchronisation point). */
struct weft__worker_counters {
    _Atomic uint64_t polls, steals, steal_ops, parks, injector_pulls,
        lifo_hits, overflows;
};

struct weft__worker {
    /* ---- shared with other threads ---- */
    weft__ring ring;   /* stolen from by other workers */
    weft__inbox inbox; /* local tasks woken from anywhere */
    alignas(WEFT_CACHE_LINE) weft__parker parker;
    /* In the runtime's sleeper list. Guarded by rt->sleep_lock; also read
     * without it (after a seq_cst fence) by a targeted wake. */
    _Atomic bool sleeping;
    /* Set under sleep_lock by whoever removes us from the sleeper list:
     * whether we wake as a searcher (counted in idle_state). */
    bool wake_searching;
    struct weft__worker_counters ctr;

    /* ---- owner thread only ---- */
    alignas(WEFT_CACHE_LINE) struct weft__task *lifo;
    unsigned lifo_streak;
    uint32_t tick;
    uint32_t rng;
    bool searching;
    int64_t live_tasks; /* tasks allocated minus freed on this worker */
    unsigned index;
    struct weft_rt *rt;
    pthread_t thread;
    struct weft__slab_cache cache;
    struct weft__task *batch[WEFT_RING_CAP / 2];
};

struct weft_rt {
    unsigned nworkers;
    struct weft__worker *workers;
    void *workers_raw;
    weft__injector injector;

    /* (unparked << 16) | searching. RMW by parking/waking workers and
     * notifiers; see worker.c for the protocol. */
    alignas(WEFT_CACHE_LINE) _Atomic uint32_t idle_state;
    pthread_mutex_t sleep_lock;
    unsigned nsleepers;
    unsigned *sleepers; /* worker indices, guarded by sleep_lock */

    /* Set once by weft_rt_shutdown. `stopping` stops the workers' loops;
     * `closed` tells remote schedulers the queues are being drained. */
    alignas(WEFT_CACHE_LINE) _Atomic bool stopping;
    _Atomic bool closed;
    pthread_mutex_t drain_lock; /* serialises draining after close */
    /* Tasks allocated or freed off this runtime's workers, plus a bias
     * held by the runtime itself until shutdown; the runtime's memory is
     * freed when the count (with the workers' shares added at shutdown)
     * reaches zero. See task lifetime in worker.c. */
    _Atomic int64_t remote_live;

    /* Timers of this runtime. */
    alignas(WEFT_CACHE_LINE) weft__wheel wheel;

    /* Task memory, and the set of live tasks shutdown scans. */
    alignas(WEFT_CACHE_LINE) struct weft__slab slab;
};

#define WEFT__RT_LIVE_BIAS ((int64_t)1 << 62)

/* The worker owning a local task, or NULL for a Send task. */
static inline struct weft__worker *weft__task_owner(const struct weft__task *t)
{
    return t->owner_plus1 ? &t->rt->workers[t->owner_plus1 - 1u] : NULL;
}

/* Thread-local scheduler context. */
struct weft__worker *weft__sched_current_worker(void);
void weft__sched_set_current_rt(struct weft_rt *rt);

/* Wake one sleeping worker (not as a searcher), if any: it parks again
 * and so takes over driving the timers. Any thread. */
void weft__sched_wake_sleeper(struct weft_rt *rt);

/* Task accounting (worker.c): called on allocation and after a free. */
void weft__rt_task_allocated(struct weft_rt *rt);
void weft__rt_task_freed(struct weft_rt *rt);

/* Timers (time.c). */
/* Fire every timer due now; returns how many were fired. Any thread. */
size_t weft__timer_fire_due(struct weft_rt *rt);
/* Parking worker: become the timer driver if there is none; returns how
 * long to sleep (UINT64_MAX: until woken). Pair with _end after waking. */
uint64_t weft__timer_driver_begin(struct weft_rt *rt, struct weft__worker *me);
void weft__timer_driver_end(struct weft_rt *rt, struct weft__worker *me);


#endif
