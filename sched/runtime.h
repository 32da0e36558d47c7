/* Private: the runtime object — a pool of workers (worker.h) plus the
 * accounting that decides when the runtime's memory can go. */
#ifndef WEFT_SCHED_RUNTIME_H
#define WEFT_SCHED_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "weft/rt.h"
#include "sched/worker.h"

/* A scheduler flavour other than the pool of workers: the cold paths that
 * runtime.c and block_on.c hand over to it. The deterministic runtime
 * (testing/sim.c) is one. Spawning needs no entry here: it reaches the
 * flavour through the seam (pool.sched.ops), and the lifetime accounting
 * below is runtime.c's for every flavour. */
struct weft__rt_flavour {
    /* weft_block_on, after its arguments were checked. */
    int (*block_on)(weft_rt *rt, weft_future *fut, void *out, size_t out_size);
    /* weft_rt_shutdown's middle part, instead of stopping the pool: cancel
     * every task and release the queues. Called once, with the runtime
     * current; the accounting that may free it follows. */
    void (*shutdown)(weft_rt *rt);
    /* weft_rt_stats, after its arguments were checked. */
    int (*stats)(weft_rt *rt, weft_worker_stats *out, unsigned *n);
    /* Free what the flavour allocated, the runtime's memory (raw) aside:
     * its last task is gone. */
    void (*destroy)(weft_rt *rt);
    /* Work outside the runtime's tasks has begun (`on`) or ended: the
     * blocking pool's jobs. A flavour with its own clock keeps it still
     * meanwhile. NULL: nothing to do. Any thread. */
    void (*hold)(weft_rt *rt, bool on);
};

/* A runtime of another flavour (`flavour` set) has no workers: of `pool`
 * it uses only the seam and task memory (pool.sched), the timers and the
 * stopping flag. The flavour builds it (weft__rt_accounting_init, and
 * weft__rt_task_freed as its seam's task_freed); runtime.c shuts it down
 * and frees it. */
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
    /* NULL: the pool's workers run the tasks. Set at construction, read
     * on cold paths only (spawn goes through the seam). */
    const struct weft__rt_flavour *flavour;
    /* The blocking pool (blocking.c): NULL until the first job needs it,
     * then the pool; a sentinel once weft_rt_shutdown closed it. Its
     * options, from weft_rt_options (0: the defaults; a sim keeps 0). */
    _Atomic(struct weft__blocking *) blocking;
    unsigned blocking_threads_max;
    uint64_t blocking_idle_timeout;
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

/* Start the lifetime accounting of a runtime just built (the bias held
 * until shutdown, the shut-down flag, debug builds' list of live
 * runtimes); freeing the runtime ends it. */
void weft__rt_accounting_init(struct weft_rt *rt);

/* The seam's task_freed of every flavour: a task's memory went back to
 * the slab; may free the runtime (the caller's last access to it). */
void weft__rt_task_freed(struct weft__sched *s);

/* The runtime whose scheduler is `s` (a pool's seam). */
static inline struct weft_rt *weft__rt_of(struct weft__sched *s)
{
    return (struct weft_rt *)((char *)s - offsetof(struct weft_rt, pool.sched));
}

#endif
