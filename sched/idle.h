/* Private: the idle protocol — which workers are searching for work,
 * which sleep, and who wakes whom, so that no wakeup is lost and an idle
 * runtime does not spin. The workers' loop (worker.c) drives it; this file
 * owns the counters, the sleeper list and each worker's parker, and knows
 * nothing of queues or tasks. */
#ifndef WEFT_SCHED_IDLE_H
#define WEFT_SCHED_IDLE_H

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>

#include "core/atomic.h"
#include "core/park.h"

/* The state word: (unparked << 16) | searching. */
#define WEFT__IDLE_UNPARKED_ONE (1u << 16)
#define WEFT__IDLE_SEARCHING_MASK 0xffffu

/* One per worker, on its own cache line (wakers write it). */
struct weft__sleeper {
    alignas(WEFT_CACHE_LINE) weft__parker parker;
    /* In the sleeper list. Changed under the idle lock; also read without
     * it (after a seq_cst fence) by a targeted wake. */
    _Atomic bool sleeping;
    /* Set under the idle lock by whoever takes the worker off the list:
     * whether it wakes as a searcher (counted in `state`). */
    bool wake_searching;
    /* Its index in `sleepers` while it sleeps (under the idle lock), so
     * that leaving the list costs no search. */
    unsigned list_pos;
};

typedef struct weft__idle {
    /* (unparked << 16) | searching. Seq_cst RMWs by parking and waking
     * workers and by notifiers; see idle.c for the protocol. */
    alignas(WEFT_CACHE_LINE) _Atomic uint32_t state;
    unsigned nworkers;
    /* Most workers that search at once: half the workers, and no more
     * than there are CPUs (a searcher spins; more spinners than CPUs only
     * take turns burning them). Set at init; tests may lower it. */
    unsigned max_searching;
    pthread_mutex_t lock; /* guards the sleeper list */
    unsigned nsleepers;
    unsigned *sleepers;   /* worker indices, a stack: the latest sleeper on top */
    struct weft__sleeper *slots; /* nworkers, cache-line aligned */
    void *slots_raw;

    /* Statistics for tests and benchmarks, off the hot paths (relaxed: each
     * is a sample, not a synchronisation point). `wakes`: unparks this file
     * issued (fetch_add, any thread). `searching_peak`: most searchers
     * seen at once (raised by whoever raises the count). */
    alignas(WEFT_CACHE_LINE) _Atomic uint64_t wakes;
    _Atomic uint32_t searching_peak;
} weft__idle;

/* All `n` workers start unparked and not searching; at most
 * min(ceil(n / 2), cpus) of them search at once. Returns 0 or -ENOMEM.
 * Pair with weft__idle_fini. */
int weft__idle_init(weft__idle *idle, unsigned n, unsigned cpus);
void weft__idle_fini(weft__idle *idle);

/* Worker `i`'s parker (unpark it to stop the worker at shutdown). */
static inline weft__parker *weft__idle_parker(weft__idle *idle, unsigned i)
{
    return &idle->slots[i].parker;
}

/* ---- producers: work was made available -------------------------------- */

/* Wake a sleeping worker as a searcher if nobody searches (the locked
 * part of the notifies below). */
void weft__idle_wake_searcher(weft__idle *idle);

/* True when a notify has someone to wake: nobody searches and some worker
 * sleeps. Relaxed: a hint, checked again under the lock; inline because
 * every spawn on a worker asks it. */
static inline bool weft__idle_wake_wanted(weft__idle *idle)
{
    uint32_t s = weft_atomic_load_relaxed(&idle->state);
    return (s & WEFT__IDLE_SEARCHING_MASK) == 0 && (s >> 16) < idle->nworkers;
}

/* Where only other workers would find it (the global queue, a push from
 * off the workers): seq_cst fence, then wake a sleeper as a searcher if
 * nobody searches. Any thread. */
static inline void weft__idle_notify(weft__idle *idle)
{
    /* SeqCst fence: orders the caller's queue push before the state read
     * (Dekker with the fence in weft__idle_sleep_begin; see idle.c). */
    weft_atomic_fence_seq_cst();
    if (weft__idle_wake_wanted(idle))
        weft__idle_wake_searcher(idle);
}

/* A worker pushed to its own queue: the same without the fence. The
 * pushing worker runs its own queue before it can sleep, so a wake missed
 * here costs parallelism, never progress; it saves a full fence per
 * spawn. */
static inline void weft__idle_notify_local(weft__idle *idle)
{
    if (weft__idle_wake_wanted(idle))
        weft__idle_wake_searcher(idle);
}
/* Worker `i` (owner of a local task) has work in its inbox: fence, then
 * wake it if it sleeps. Any thread. */
void weft__idle_notify_worker(weft__idle *idle, unsigned i);
/* Wake one sleeper, not as a searcher (it parks again, e.g. as the timer
 * driver). Any thread. */
void weft__idle_wake_sleeper(weft__idle *idle);

/* ---- workers ------------------------------------------------------------ */

/* Become a searcher; false when max_searching workers already search
 * (the caller then does not steal). */
bool weft__idle_start_search(weft__idle *idle);
/* Stop searching (found work, or going to sleep through sleep_begin
 * instead); the last searcher to find work wakes another. */
void weft__idle_stop_search(weft__idle *idle);
/* Worker `i` goes to sleep: list it as a sleeper and fence. Returns true
 * when it was the last searcher: the caller must then re-check every
 * queue and weft__idle_notify if any has work. The caller must also
 * re-check its own inbox and notify itself (weft__idle_notify_worker). */
bool weft__idle_sleep_begin(weft__idle *idle, unsigned i, bool was_searching);
/* Worker `i` woke (unparked, timed out or spuriously): leave the list if
 * still on it. Returns whether it woke as a searcher. */
bool weft__idle_sleep_end(weft__idle *idle, unsigned i);

#endif
