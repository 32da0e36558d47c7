/* Private: the multi-thread scheduler flavour — a pool of worker threads,
 * each with a ring, a LIFO slot and an inbox, sharing a global queue (the
 * injector), the idle protocol and a timer driver. runtime.c builds a
 * weft_rt around one pool and wires the pool into the seam. */
#ifndef WEFT_SCHED_WORKER_H
#define WEFT_SCHED_WORKER_H

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/atomic.h"
#include "sched/idle.h"
#include "sched/injector.h"
#include "sched/ring.h"
#include "sched/seam.h"
#include "sched/slab.h"
#include "io/reactor.h"
#include "time/driver.h"

/* Counters: written by the owning worker only (relaxed load + store, no
 * RMW), read by weft_rt_stats from any thread (relaxed: each value is a
 * sample, not a synchronisation point). `spin_rounds` (pauses a searcher
 * spent looking again before it parked) is not in weft_rt_stats; tests
 * read it here. */
struct weft__worker_counters {
    _Atomic uint64_t polls, steals, steal_ops, parks, injector_pulls,
        lifo_hits, overflows, spin_rounds;
};

struct weft__worker {
    /* ---- shared with other threads ---- */
    weft__ring ring;   /* and the LIFO slot: stolen from by other workers */
    weft__inbox inbox; /* local tasks woken from anywhere */
    alignas(WEFT_CACHE_LINE) struct weft__worker_counters ctr;

    /* ---- owner thread only ---- */
    alignas(WEFT_CACHE_LINE) unsigned lifo_streak;
    uint32_t tick;
    uint32_t rng;
    bool searching;
    bool polling;         /* inside a task's poll (run_task) */
    unsigned spin_rounds; /* how long the next search may spin (worker.c) */
    /* The LIFO occupant this worker, searching, watches in another
     * worker's slot (steal_lifo in worker.c): where, which task, that
     * worker's poll count then, and since when. */
    struct weft__worker *watch_victim;
    struct weft__task *watch_task;
    uint64_t watch_polls, watch_since_ns;
    bool watch_waiting; /* seen unchanged at the last look, not yet due */
    unsigned index;
    /* Tasks allocated minus tasks freed on this worker: the runtime's
     * lifetime count, kept here so spawns pay no shared atomic
     * (runtime.c). */
    int64_t live_tasks;
    /* At stop: how many of this worker's local tasks the stopping thread
     * aborted, for this worker to cancel before it exits. Written by the
     * stopping thread while the worker waits out of its loop, read by the
     * worker after (both under the pool's stop_lock). */
    unsigned locals_to_cancel;
    struct weft__pool *pool;
    pthread_t thread;
    struct weft__slab_cache cache;
    struct weft__task *spill[WEFT_RING_SPILL];
    struct cds_wfcq_node *batch[WEFT_RING_CAP / 2];
};

struct weft__pool {
    /* The seam: what tasks see (first, so a task's scheduler pointer is
     * the pool's address). */
    struct weft__sched sched;
    unsigned nworkers;
    struct weft__worker *workers;
    void *workers_raw;
    weft__injector injector;
    weft__idle idle;

    /* Set once by weft__pool_stop / weft__pool_close. `stopping` ends the
     * workers' loops; `closed` tells remote schedulers the queues are
     * being drained. */
    alignas(WEFT_CACHE_LINE) _Atomic bool stopping;
    _Atomic bool closed;
    pthread_mutex_t drain_lock; /* serialises draining after close */
    /* The stop handshake (weft__pool_stop): workers out of their loops
     * count themselves in `stop_paused` and wait for `stop_go`. */
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    unsigned stop_paused; /* under stop_lock */
    bool stop_go;         /* under stop_lock */

    alignas(WEFT_CACHE_LINE) weft__timers timers;
    /* The I/O reactor: a parking worker that takes its role waits in its
     * epoll_wait (with the timers' deadline), the others on their futex. */
    alignas(WEFT_CACHE_LINE) weft__reactor reactor;

    /* How long a LIFO occupant waits behind its owner's poll before a
     * searcher may take it (worker.c: steal_lifo). Set at init; tests
     * raise it to take stealing out of a count. Relaxed: read by
     * searchers only. */
    alignas(WEFT_CACHE_LINE) _Atomic uint64_t lifo_steal_after_ns;
};

/* Set up a pool of `n` workers (not started), its seam operations `ops`.
 * Returns 0 or -ENOMEM (nothing left allocated). Pair with _fini. */
int weft__pool_init(struct weft__pool *p, unsigned n, const weft__sched_ops *ops);
void weft__pool_fini(struct weft__pool *p);
/* Start the worker threads (named prefix + index). Returns 0, or a
 * negative errno with no thread left running. */
int weft__pool_start(struct weft__pool *p, const char *prefix, size_t stack_size);
/* Stop the loops, cancel every task not complete yet and join the
 * threads: while the workers wait out of their loops, Send tasks are
 * cancelled on the calling thread (their futures dropped here) and local
 * tasks are aborted; then each worker drops its own local tasks' futures
 * before it exits. Afterwards the calling thread owns every queue. Call
 * from a thread off the pool, with the pool's scheduler entered (the drops
 * see their runtime). Once. */
void weft__pool_stop(struct weft__pool *p);
/* After stop: close the queues and release every entry still in them. */
void weft__pool_close(struct weft__pool *p);
/* True once weft__pool_stop began. Inline: every spawn asks. */
static inline bool weft__pool_stopping(struct weft__pool *p)
{
    /* Acquire: pairs with the release store in weft__pool_stop. */
    return weft_atomic_load_acquire(&p->stopping);
}

/* The seam operations (seam.h) of this flavour. */
void weft__pool_schedule(struct weft__sched *s, struct weft__task *t);
void weft__pool_requeue(struct weft__sched *s, struct weft__task *t);

/* The calling thread's worker, or NULL. Written by the worker's own
 * thread only. A variable rather than a function because every spawn,
 * wake and task free asks it (an out-of-line call here cost W5 about a
 * sixth of its time). */
extern _Thread_local struct weft__worker *weft__tl_worker;

static inline struct weft__worker *weft__worker_current(void)
{
    return weft__tl_worker;
}
/* The calling thread's worker if it belongs to `p`, else NULL. */
static inline struct weft__worker *weft__pool_worker(struct weft__pool *p)
{
    struct weft__worker *w = weft__worker_current();
    return (w && w->pool == p) ? w : NULL;
}

#endif
