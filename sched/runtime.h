/* Private: the runtime object — a pool of workers (worker.h) plus the
 * accounting that decides when the runtime's memory can go. */
#ifndef WEFT_SCHED_RUNTIME_H
#define WEFT_SCHED_RUNTIME_H

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
    void *raw; /* the allocation, before cache-line alignment */
};

#define WEFT__RT_LIVE_BIAS ((int64_t)1 << 62)

/* The runtime whose scheduler is `s` (a pool's seam). */
static inline struct weft_rt *weft__rt_of(struct weft__sched *s)
{
    return (struct weft_rt *)((char *)s - offsetof(struct weft_rt, pool.sched));
}

#endif
