/* The timer driver: one wheel per runtime under a spinlock, fired by
 * whichever worker gets to it.
 *
 * Who touches a timer entry: the task polling or dropping its future (the
 * "owner"), and the driver (under its lock). The owner arms an entry under
 * the lock (state IDLE -> ARMED, waker cloned into it); the driver fires it
 * under the lock (ARMED -> FIRED, waker copied out, woken after unlock);
 * the owner cancels under the lock (ARMED -> IDLE). Outside the lock the
 * owner reads the state with acquire loads: FIRED means the driver is done
 * with the entry for good. Only the owner writes the entry's waker (the
 * wheel copies it out when firing and leaves the field alone), so the
 * owner may read it without the lock: a re-poll with the same waker
 * (weft_waker_will_wake) takes no lock.
 *
 * Who fires timers: there is no timer thread. One parked worker is the
 * driver: it sleeps on its parker with a timeout at the next deadline, and
 * an earlier new timer unparks it. Woken by its deadline or by an earlier
 * timer, the driver keeps the role, "away", while it fires and runs what
 * the timers woke, and takes it back (with the new deadline) when it parks
 * again; meanwhile a new timer wakes nobody, and a worker that parks first
 * takes the role over. Woken to run other work, it leaves idle: it gives
 * the role up and, with timers still armed, asks the scheduler to wake a
 * sleeper, which parks again as the driver. Busy workers, the away driver
 * among them, fire due timers between polls (weft__timers_tick). Wakers are
 * always woken after unlocking: waking may free a task, and never runs
 * user code.
 *
 * No lost timer. A timer armed while nobody holds the role wakes a
 * sleeper; one armed while the driver is away is seen by the away driver,
 * which takes the lock when it parks; one armed while the driver is parked
 * and earlier than its deadline unparks it. A worker that parks with no
 * timer armed takes no lock, so arm and park meet through `armed` and the
 * idle protocol's sleeper list instead: the arm publishes `armed`, fences
 * (seq_cst) and looks for a sleeper; the parking worker lists itself as a
 * sleeper, fences (weft__idle_sleep_begin) and reads `armed`. By the
 * fences' order, either the arm finds the worker listed and wakes it, or
 * the worker sees the timer and takes the role under the lock.
 *
 * Concurrency: arm, cancel, update_waker on an entry by its owner only
 * (one at a time); fire_due, tick, timeout from any thread; driver_begin
 * and driver_end by a parking worker, for its own parker. */
#include "time/driver.h"
#include "core/errors.h"

#include <string.h>

static _Thread_local weft__timers *tl_timers;

void weft__timers_init(weft__timers *t, uint64_t origin_ns, weft__timers_wake_fn *wake,
                       void *wake_ctx)
{
    weft__spin_init(&t->lock);
    weft__wheel_init(&t->wheel, origin_ns);
    weft_atomic_init(&t->driver, NULL);
    t->driver_parked = false;
    t->driver_deadline = WEFT__WHEEL_NONE;
    weft_atomic_init(&t->armed, 0);
    t->locks_taken = 0;
    t->wake_sleeper = wake;
    t->wake_ctx = wake_ctx;
    t->coarse_lag_ns = weft__sys_coarse_lag_ns();
}

weft__timers *weft__timers_current(void)
{
    return tl_timers;
}

weft__timers *weft__timers_enter(weft__timers *t)
{
    weft__timers *prev = tl_timers;
    tl_timers = t;
    return prev;
}

static void timers_lock(weft__timers *t)
{
    weft__spin_lock(&t->lock);
    t->locks_taken++;
}

static void timers_unlock(weft__timers *t)
{
    weft__spin_unlock(&t->lock);
}

/* Under the lock, after wheel.armed changed. */
static void publish_armed(weft__timers *t)
{
    /* Relaxed: the parking worker's read is ordered by the fences (see
     * "No lost timer" at the top); other readers take the lock. */
    weft_atomic_store_relaxed(&t->armed, t->wheel.armed);
}

/* The role holder, for a thread that holds the lock or compares it with
 * itself (see `driver` in driver.h). */
static weft__parker *driver_of(weft__timers *t)
{
    /* Relaxed: every write is under the lock. */
    return weft_atomic_load_relaxed(&t->driver);
}

/* Under the lock. */
static void set_driver(weft__timers *t, weft__parker *d, bool parked, uint64_t deadline)
{
    /* Relaxed: under the lock (see driver_of). */
    weft_atomic_store_relaxed(&t->driver, d);
    t->driver_parked = parked;
    t->driver_deadline = deadline;
}

/* Have a sleeping worker woken to park as the driver: nobody holds the
 * role and timers are armed. Called after unlocking. */
static void wake_a_driver(weft__timers *t)
{
    /* SeqCst fence: the `armed` and `driver` writes before the hook's read
     * of the sleepers; pairs with the fence a parking worker executes
     * between listing itself as a sleeper and reading `armed` in
     * driver_begin (see "No lost timer" at the top). */
    weft_atomic_fence_seq_cst();
    t->wake_sleeper(t->wake_ctx);
}

/* ---- the futures' side ------------------------------------------------------ */

bool weft__timers_arm(weft__timers *t, weft_timer_entry *e, weft_instant deadline,
                      const weft_waker *waker)
{
    weft__wheel *w = &t->wheel;
    weft__parker *unpark = NULL;
    timers_lock(t);
    e->when_ = weft__wheel_tick_ceil(w, deadline);
    if (e->when_ <= w->elapsed) {
        timers_unlock(t);
        return false;
    }
    e->driver_ = t;
    e->waker_ = weft_waker_clone(waker);
    weft__wheel_insert(w, e);
    publish_armed(t);
    /* Relaxed under the lock: readers outside it only act on FIRED. */
    weft_atomic_store_relaxed(&e->state_, WEFT__TIMER_ARMED);
    /* next_due is when the wheel next has work: the start of the earliest
     * occupied slot, which for an entry on a coarse level is before its
     * deadline (the slot must be cascaded then). The driver sleeps until
     * exactly that tick, so the two must agree: with the entry's own
     * deadline here, a driver woken at the slot's start would find nothing
     * due and spin until the deadline. (Relaxed: see wheel.h.) */
    weft_atomic_store_relaxed(&w->next_due, weft__wheel_next_due(w));
    weft__parker *d = driver_of(t);
    if (d && t->driver_parked && e->when_ < t->driver_deadline) {
        /* The driver sleeps past this deadline: wake it to re-arm. */
        unpark = d;
        t->driver_deadline = e->when_;
    }
    /* An away driver is awake: it fires due timers between polls and
     * takes this deadline with it when it parks. */
    timers_unlock(t);
    if (unpark)
        weft__unpark(unpark);
    else if (!d)
        wake_a_driver(t); /* a sleeper parks again as the driver */
    return true;
}

void weft__timer_cancel(weft_timer_entry *e)
{
    /* Acquire: pairs with the release store of FIRED in weft__wheel_poll. */
    if (weft_atomic_load_acquire(&e->state_) != WEFT__TIMER_ARMED)
        return;
    weft__timers *t = e->driver_;
    weft_waker waker = WEFT_WAKER_EMPTY;
    timers_lock(t);
    /* Relaxed under the lock: every state change happens under it. */
    if (weft_atomic_load_relaxed(&e->state_) == WEFT__TIMER_ARMED) {
        weft__wheel_remove(&t->wheel, e);
        publish_armed(t);
        waker = e->waker_;
        e->waker_.ops = NULL;
        e->waker_.data = NULL;
        weft_atomic_store_relaxed(&e->state_, WEFT__TIMER_IDLE);
    }
    timers_unlock(t);
    weft_waker_drop(&waker); /* outside the lock: may free a task */
}

bool weft__timer_update_waker(weft_timer_entry *e, const weft_waker *waker)
{
    /* The same task's waker: nothing to change, and no lock. We are the
     * owner, the only writer of waker_ (see the top). If the timer fired
     * meanwhile, its wake is on its way to this same task. */
    if (weft_waker_will_wake(&e->waker_, waker))
        return true;
    weft__timers *t = e->driver_;
    weft_waker old = WEFT_WAKER_EMPTY;
    bool armed;
    timers_lock(t);
    armed = weft_atomic_load_relaxed(&e->state_) == WEFT__TIMER_ARMED; /* under lock */
    if (armed) {
        old = e->waker_;
        e->waker_ = weft_waker_clone(waker);
    }
    timers_unlock(t);
    weft_waker_drop(&old);
    return armed;
}

/* ---- the scheduler's side ------------------------------------------------------ */

#define FIRE_BATCH 32u

size_t weft__timers_fire_due(weft__timers *t)
{
    weft__wheel *w = &t->wheel;
    /* Relaxed: a stale value only delays this check to the next tick or
     * makes us take the lock for nothing. */
    uint64_t due = weft_atomic_load_relaxed(&w->next_due);
    if (due == WEFT__WHEEL_NONE)
        return 0;
    uint64_t now = weft__wheel_tick_floor(w, weft_now());
    if (now < due)
        return 0;
    size_t total = 0, n;
    weft_waker batch[FIRE_BATCH];
    do {
        timers_lock(t);
        n = weft__wheel_poll(w, now, batch, FIRE_BATCH);
        publish_armed(t);
        timers_unlock(t);
        for (size_t i = 0; i < n; i++)
            weft_waker_wake(&batch[i]);
        total += n;
    } while (n == FIRE_BATCH);
    return total;
}

size_t weft__timers_tick_armed(weft__timers *t)
{
    /* Relaxed: as in fire_due. */
    uint64_t due = weft_atomic_load_relaxed(&t->wheel.next_due);
    /* The coarse clock first (a few ns, no hardware counter read): while
     * the next deadline is further away than it may lag, that is all a
     * tick costs; the exact clock only near the deadline. (Only the
     * pool's workers call this: their wheel runs on the monotonic clock
     * the coarse one trails.) */
    if (due == WEFT__WHEEL_NONE ||
        weft__sys_now_coarse_ns() + t->coarse_lag_ns < weft__wheel_instant(&t->wheel, due))
        return 0;
    return weft__timers_fire_due(t);
}

uint64_t weft__timers_timeout(weft__timers *t)
{
    /* Relaxed: a hint (see next_due in wheel.h); a stale value only makes
     * the caller wake early or fire nothing. */
    uint64_t due = weft_atomic_load_relaxed(&t->wheel.next_due);
    if (due == WEFT__WHEEL_NONE)
        return UINT64_MAX;
    weft_instant at = weft__wheel_instant(&t->wheel, due);
    weft_instant now = weft_now();
    return at > now ? at - now : 0;
}

uint64_t weft__timers_driver_begin(weft__timers *t, weft__parker *me)
{
    /* Relaxed: `driver` is only compared with ourselves (see driver.h);
     * `armed` is ordered after our listing as a sleeper by the caller's
     * fence (see "No lost timer" at the top). */
    if (driver_of(t) != me && weft_atomic_load_relaxed(&t->armed) == 0)
        return UINT64_MAX;
    weft__wheel *w = &t->wheel;
    timers_lock(t);
    weft__parker *d = driver_of(t);
    if (w->armed == 0) {
        if (d == me)
            set_driver(t, NULL, false, WEFT__WHEEL_NONE); /* nothing to drive */
    } else if (!d || !t->driver_parked) {
        /* No driver, or an away one (possibly us): whoever parks drives. */
        set_driver(t, me, true, weft__wheel_next_due(w));
    }
    bool driving = driver_of(t) == me;
    uint64_t deadline = t->driver_deadline;
    timers_unlock(t);
    if (!driving || deadline == WEFT__WHEEL_NONE)
        return UINT64_MAX;
    weft_instant at = weft__wheel_instant(w, deadline);
    weft_instant now = weft_now();
    return at > now ? at - now : 0;
}

void weft__timers_driver_end(weft__timers *t, weft__parker *me, bool for_work)
{
    /* Only we make ourselves the driver, and nobody takes the role from a
     * parked driver: if it is not ours now, it was not ours in the park. */
    if (driver_of(t) != me)
        return;
    bool handoff = false;
    timers_lock(t);
    if (for_work) {
        /* We leave idle to run tasks, possibly for long: timers still
         * armed need a parked driver, not our next tick. */
        handoff = t->wheel.armed > 0;
        set_driver(t, NULL, false, WEFT__WHEEL_NONE);
    } else {
        set_driver(t, me, false, WEFT__WHEEL_NONE); /* away */
    }
    timers_unlock(t);
    if (handoff)
        wake_a_driver(t);
}
