/* Private: a test-and-test-and-set spinlock for critical sections of a few
 * instructions (slab free lists and batches), where a pthread
 * mutex's two atomic RMWs and call overhead dominate. After a short spin
 * it yields the CPU, so a preempted holder does not burn a core. */
#ifndef WEFT_CORE_SPINLOCK_H
#define WEFT_CORE_SPINLOCK_H

#include <sched.h>
#include <stdint.h>

#include "core/atomic.h"

typedef struct weft__spinlock {
    _Atomic uint32_t held; /* 0 free, 1 held; any thread */
} weft__spinlock;

static inline void weft__spin_init(weft__spinlock *l)
{
    weft_atomic_init(&l->held, 0);
}

/* The lock on a bare word, for structures that embed one in a public
 * type (sync/'s waiter queues). */
static inline void weft__spin_lock_word(_Atomic uint32_t *held)
{
    /* Acquire: the critical section sees the previous holder's writes
     * (pairs with the release in weft__spin_unlock_word). */
    while (weft_atomic_swap_acquire(held, 1u) != 0) {
        unsigned spins = 0;
        while (weft_atomic_load_relaxed(held) != 0) {
            if (++spins < 64)
                weft__cpu_relax();
            else
                sched_yield();
        }
    }
}

static inline void weft__spin_unlock_word(_Atomic uint32_t *held)
{
    /* Release: publish the critical section to the next holder. */
    weft_atomic_store_release(held, 0u);
}

static inline void weft__spin_lock(weft__spinlock *l)
{
    weft__spin_lock_word(&l->held);
}

static inline void weft__spin_unlock(weft__spinlock *l)
{
    weft__spin_unlock_word(&l->held);
}

#endif
