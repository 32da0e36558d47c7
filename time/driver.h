/* Private: the timer driver of one runtime — its wheel under a lock, which
 * parked worker (if any) sleeps until the next deadline to fire timers,
 * and the operations the time futures use (arm, cancel, update a waker).
 *
 * The driver knows nothing of workers: the scheduler hands it a parker
 * when a worker parks as the driver, and a hook to wake some sleeping
 * worker when timers need a driver and nobody holds the role. A second
 * scheduler flavour (the deterministic runtime) drives the same
 * structure. */
#ifndef WEFT_TIME_DRIVER_H
#define WEFT_TIME_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/time.h"
#include "core/park.h"
#include "core/sys.h"
#include "core/spinlock.h"
#include "time/wheel.h"

/* Wake one sleeping worker so that it parks again as the driver. Any
 * thread; called with no lock held. */
typedef void weft__timers_wake_fn(void *ctx);

typedef struct weft__timers {
    weft__spinlock lock; /* guards the wheel, the driver fields and every entry */
    weft__wheel wheel;
    /* The worker holding the driver role, by its parker (NULL: none).
     * Written under the lock; read without it by a worker only to learn
     * whether the role is its own (only a worker makes itself the
     * driver, and nobody takes the role from a parked driver). */
    _Atomic(weft__parker *) driver;
    /* Under the lock. Parked: the driver sleeps until driver_deadline.
     * Away: it left its park for a timer event (its deadline, an earlier
     * timer) and runs what the timers woke; it takes the role back when it
     * parks, unless a worker that parks first took it over. */
    bool driver_parked;
    uint64_t driver_deadline;
    /* The wheel's count of armed entries, for readers outside the lock (a
     * parking worker takes no lock when it is 0). Written under the lock
     * after every change of wheel.armed. */
    _Atomic size_t armed;
    /* Times the lock was taken (written under it): tests count it. */
    uint64_t locks_taken;
    weft__timers_wake_fn *wake_sleeper;
    void *wake_ctx;
    uint64_t coarse_lag_ns; /* weft__sys_coarse_lag_ns(), read once */
} weft__timers;

void weft__timers_init(weft__timers *t, uint64_t origin_ns, weft__timers_wake_fn *wake,
                       void *wake_ctx);

/* The timers of the runtime the calling thread runs in (a worker, or a
 * thread inside weft_block_on), or NULL. The scheduler sets it. */
weft__timers *weft__timers_current(void);
/* Make `t` the calling thread's timers; returns the previous ones. */
weft__timers *weft__timers_enter(weft__timers *t);

/* ---- the futures' side ---- */

/* Arm entry `e` (idle) for `deadline` with a clone of `waker`. Returns
 * false when the deadline has already passed for the wheel (nothing
 * armed: the caller is ready). */
bool weft__timers_arm(weft__timers *t, weft_timer_entry *e, weft_instant deadline,
                      const weft_waker *waker);
/* Disarm `e` if armed; afterwards the wheel no longer references it. */
void weft__timer_cancel(weft_timer_entry *e);
/* Replace an armed entry's waker if it would wake someone else. Returns
 * false if the entry fired meanwhile. */
bool weft__timer_update_waker(weft_timer_entry *e, const weft_waker *waker);

/* ---- the scheduler's side ---- */

/* Fire every timer due now; returns how many were fired. Any thread. */
size_t weft__timers_fire_due(weft__timers *t);
/* A worker between two polls: fire what is due by the clock, so that with
 * every worker busy a timer is late by at most the poll it fell due in
 * (DESIGN §5: by elapsed time, not by tick count). Every scheduler tick
 * calls it: inline, one relaxed load when nothing is armed; otherwise
 * weft__timers_tick_armed. */
size_t weft__timers_tick_armed(weft__timers *t);
static inline void weft__timers_tick(weft__timers *t)
{
    /* Relaxed: a hint (see next_due in wheel.h); a stale value delays
     * the check by one tick or costs a clock read for nothing. */
    if (weft_atomic_load_relaxed(&t->wheel.next_due) != WEFT__WHEEL_NONE)
        weft__timers_tick_armed(t);
}
/* How long until the wheel next has work (UINT64_MAX: nothing armed), for
 * a thread that parks and fires timers itself (weft_block_on). A hint read
 * without the lock. Any thread. */
uint64_t weft__timers_timeout(weft__timers *t);
/* A worker about to park: become the driver if there is none, or if the
 * driver is away (awake). Returns how long to sleep (UINT64_MAX: until
 * woken). With no timer armed and the role not its own, it takes no lock:
 * call it after listing the worker as a sleeper and a seq_cst fence
 * (weft__idle_sleep_begin does both), which pair with the fence in
 * weft__timers_arm, so that either this worker sees the new timer or the
 * arm finds it sleeping and wakes it. Pair with _end after waking. */
uint64_t weft__timers_driver_begin(weft__timers *t, weft__parker *me);
/* The worker woke. `for_work`: it was woken to run tasks found elsewhere,
 * so it leaves idle: a driver gives up the role and, with timers armed,
 * has a sleeper woken to take it over. Otherwise (its deadline, an
 * earlier timer, a spurious wake) a driver keeps the role, away, while it
 * runs what the timers woke, and takes it back when it parks: no other
 * worker is woken for a timer event. Takes no lock unless the caller is
 * the driver. */
void weft__timers_driver_end(weft__timers *t, weft__parker *me, bool for_work);

#endif
