/* Private: the runtime object — a pool of workers (worker.h) plus the
 * accounting that decides when the runtime's memory can go. */
#ifndef WEFT_SCHED_RUNTIME_H
#define WEFT_SCHED_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "weft/rt.h"
#include "sched/worker.h"

struct weft_rt {
    struct weft__pool pool; /* first: the seam is the runtime's address */
    /* Tasks allocated or freed off this runtime's workers, plus a bias
     * held by the runtime itself until shutdown; the runtime's memory is
     * freed when the count (with the workers' shares added at shutdown)
     * reaches zero. See "lifetime" in runtime.c. */
    alignas(WEFT_CACHE_LINE) _Atomic int64_t remote_live;
    /* Set by the first weft_rt_shutdown (a later one is refused). */
    _Atomic bool shut_down;
    /* Debug builds: the next runtime on the list of live ones (runtime.c,
     * "live runtimes"); under that list's lock. */
    struct weft_rt *live_next;
    void *raw; /* the allocation, before cache-line alignment */
};

#define WEFT__RT_LIVE_BIAS ((int64_t)1 << 62)

/* Test hooks: points where a spawn from a thread off the runtime's
 * workers and a shutdown can interleave. A test sets a hook to run code
 * inside such a window — a whole shutdown in the middle of a spawn, or a
 * spawn between shutdown's steps — so each interleaving runs on purpose.
 * Debug builds only (release builds never call the hook). */
typedef enum weft__rt_hook_at {
    WEFT__RT_HOOK_SPAWN_ADMITTED,   /* a spawn saw the runtime running */
    WEFT__RT_HOOK_SPAWN_ALLOCATED,  /* ... and allocated its task, not queued yet */
    WEFT__RT_HOOK_SHUTDOWN_STOPPED, /* shutdown cancelled every task it found and
                                       joined the workers; queues not closed yet */
} weft__rt_hook_at;

typedef void weft__rt_hook_fn(weft__rt_hook_at at, weft_rt *rt, void *ctx);

/* Install `fn` (NULL: none), called with `ctx` at every hook point, on
 * the spawning or shutting-down thread. Set while no other thread spawns
 * or shuts down. */
void weft__rt_set_hook(weft__rt_hook_fn *fn, void *ctx);

/* The runtime whose scheduler is `s` (a pool's seam). */
static inline struct weft_rt *weft__rt_of(struct weft__sched *s)
{
    return (struct weft_rt *)((char *)s - offsetof(struct weft_rt, pool.sched));
}

#endif
