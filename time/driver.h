/* Private: the timer driver of one runtime — its wheels (one per shard,
 * each under its own lock), which parked worker (if any) sleeps until the
 * next deadline to fire timers, and the operations the time futures use
 * (arm, cancel, update a waker).
 *
 * The driver knows nothing of workers: the scheduler hands it a parker
 * when a worker parks as the driver, and a hook to wake some sleeping
 * worker when timers need a driver and nobody holds the role. A second
 * scheduler flavour (the deterministic runtime) drives the same
 * structure. */
#ifndef WEFT_TIME_DRIVER_H
#define WEFT_TIME_DRIVER_H

#include <stdalign.h>
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

/* Shards: every thread arms its timers in one shard, picked round-robin
 * the first time it enters (or arms in) a runtime's timers, so workers
 * arming and cancelling at the same time take different locks and write
 * different cache lines. A power of two. */
#define WEFT__TIMER_SHARDS 8u

/* One wheel and the lock that guards it and the entries armed in it. */
typedef struct weft__timer_shard {
    alignas(WEFT_CACHE_LINE) weft__spinlock lock;
    uint64_t locks_taken; /* written under the lock; tests count it */
    /* wheel.armed, for readers outside the lock (parking workers, who take
     * no lock when every shard has 0): written under the lock after every
     * change of wheel.armed. */
    _Atomic size_t armed;
    weft__wheel wheel;
} weft__timer_shard;

/* The role word (weft__timers.drive): the tick the parked driver sleeps
 * until, or one of these (above any tick). */
#define WEFT__DRIVE_NONE UINT64_MAX             /* nobody holds the role */
#define WEFT__DRIVE_AWAY (UINT64_MAX - 1u)      /* the driver is awake */
#define WEFT__DRIVE_COMPUTING (UINT64_MAX - 2u) /* it reads the shards (under the role lock) */

typedef struct weft__timers {
    weft__timer_shard shards[WEFT__TIMER_SHARDS];

    /* No later than any shard's next_due (WEFT__WHEEL_NONE: nothing
     * armed), so that a worker's tick looks at one word for all shards.
     * Lowered by arms (a CAS to the minimum, after the arm's fence);
     * raised by weft__timers_fire_due once the shards say later (a CAS
     * from the value it read first, which fails if an arm lowered it
     * meanwhile; then a fence and a second scan, for an arm that read the
     * old value). Read by every tick: on a line of its own, written seldom
     * (an arm writes it only when it is earlier than every timer armed
     * before). */
    alignas(WEFT_CACHE_LINE) _Atomic uint64_t earliest;
    uint64_t coarse_lag_ns; /* weft__sys_coarse_lag_ns(), read once */

    /* ---- the driver role ---- */
    /* Serialises role changes and the lowering of a parked driver's
     * deadline. */
    alignas(WEFT_CACHE_LINE) weft__spinlock lock;
    uint64_t locks_taken; /* written under the lock; tests count it */
    /* The worker holding the role, by its parker (NULL: none). Written
     * under the role lock; read without it by a worker only to learn
     * whether the role is its own (only a worker makes itself the driver,
     * and nobody takes the role from a parked driver). */
    _Atomic(weft__parker *) driver;
    /* Written under the role lock: the parked driver's deadline (a tick),
     * WEFT__DRIVE_AWAY (it left its park for a timer event — its deadline,
     * an earlier timer — and runs what the timers woke; it takes the role
     * back when it parks, unless a worker that parks first takes it over),
     * WEFT__DRIVE_COMPUTING or WEFT__DRIVE_NONE. Read without the lock by
     * arms, after a seq_cst fence (see time/driver.c). */
    _Atomic uint64_t drive;
    weft__timers_wake_fn *wake_sleeper;
    void *wake_ctx;
} weft__timers;

void weft__timers_init(weft__timers *t, uint64_t origin_ns, weft__timers_wake_fn *wake,
                       void *wake_ctx);

/* The timers of the runtime the calling thread runs in (a worker, or a
 * thread inside weft_block_on), or NULL. The scheduler sets it. */
weft__timers *weft__timers_current(void);
/* Make `t` the calling thread's timers; returns the previous ones. A
 * thread entering timers for the first time is given its shard. */
weft__timers *weft__timers_enter(weft__timers *t);

/* ---- the futures' side ---- */

/* Arm entry `e` (idle) for `deadline` with a clone of `waker`, in the
 * calling thread's shard. Returns false when the deadline has already
 * passed for that shard's wheel (nothing armed: the caller is ready). */
bool weft__timers_arm(weft__timers *t, weft_timer_entry *e, weft_instant deadline,
                      const weft_waker *waker);
/* Disarm `e` if armed; afterwards the wheel no longer references it. */
void weft__timer_cancel(weft_timer_entry *e);
/* Replace an armed entry's waker if it would wake someone else. Returns
 * false if the entry fired meanwhile (only known when the waker changed:
 * with the same waker it takes no lock and returns true; the fired
 * timer's wake then reaches that same waker). */
bool weft__timer_update_waker(weft_timer_entry *e, const weft_waker *waker);

/* ---- the scheduler's side ---- */

/* Fire every timer due now, in every shard; returns how many were fired.
 * Any thread. */
size_t weft__timers_fire_due(weft__timers *t);
/* A worker between two polls: fire what is due by the clock, so that with
 * every worker busy a timer is late by at most the poll it fell due in
 * (DESIGN §5: by elapsed time, not by tick count). Every scheduler tick
 * calls it: inline, one relaxed load when nothing is armed; otherwise
 * weft__timers_tick_armed. */
size_t weft__timers_tick_armed(weft__timers *t);
static inline void weft__timers_tick(weft__timers *t)
{
    /* Relaxed: a hint (see `earliest`); a stale value delays the check by
     * one tick or costs a clock read for nothing. */
    if (weft_atomic_load_relaxed(&t->earliest) != WEFT__WHEEL_NONE)
        weft__timers_tick_armed(t);
}
/* How long until a wheel next has work (UINT64_MAX: nothing armed), for
 * a thread that parks and fires timers itself (weft_block_on). A hint read
 * without the locks. Any thread. */
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

/* ---- observation ---- */

/* The instant at which the earliest tick with work in any shard begins
 * (a deadline, or a coarse slot's start that only cascades), or
 * WEFT_NEVER when nothing is armed. Exact: each shard's wheel is read
 * under its lock (a cancelled timer no longer counts). For the
 * deterministic runtime's clock jump. */
weft_instant weft__timers_next_deadline(weft__timers *t);
/* Timers armed in all shards (a sample, for dumps and the idle check;
 * any thread). */
size_t weft__timers_armed(weft__timers *t);
/* Times any of the locks (the shards', the role's) was taken. Tests only,
 * while no other thread uses `t`. */
uint64_t weft__timers_locks_taken(weft__timers *t);

#endif
