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
 * an earlier new timer unparks it. When the driver leaves to run tasks with
 * timers still armed, it asks the scheduler to wake another sleeper, which
 * parks again as the driver. Busy workers fire due timers as they go
 * (weft__timers_fire_due). Wakers are always woken after unlocking: waking
 * may free a task, and never runs user code. */
#include "time/driver.h"
#include "core/errors.h"

#include <string.h>

static _Thread_local weft__timers *tl_timers;

void weft__timers_init(weft__timers *t, uint64_t origin_ns, weft__timers_wake_fn *wake,
                       void *wake_ctx)
{
    weft__spin_init(&t->lock);
    weft__wheel_init(&t->wheel, origin_ns);
    t->driver = NULL;
    t->driver_deadline = WEFT__WHEEL_NONE;
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

/* ---- the futures' side ------------------------------------------------------ */

bool weft__timers_arm(weft__timers *t, weft_timer_entry *e, weft_instant deadline,
                      const weft_waker *waker)
{
    weft__wheel *w = &t->wheel;
    weft__parker *unpark = NULL;
    bool no_driver;
    timers_lock(t);
    e->when_ = weft__wheel_tick_ceil(w, deadline);
    if (e->when_ <= w->elapsed) {
        timers_unlock(t);
        return false;
    }
    e->driver_ = t;
    e->waker_ = weft_waker_clone(waker);
    weft__wheel_insert(w, e);
    /* Relaxed under the lock: readers outside it only act on FIRED. */
    weft_atomic_store_relaxed(&e->state_, WEFT__TIMER_ARMED);
    /* next_due is when the wheel next has work: the start of the earliest
     * occupied slot, which for an entry on a coarse level is before its
     * deadline (the slot must be cascaded then). The driver sleeps until
     * exactly that tick, so the two must agree: with the entry's own
     * deadline here, a driver woken at the slot's start would find nothing
     * due and spin until the deadline. (Relaxed: see wheel.h.) */
    weft_atomic_store_relaxed(&w->next_due, weft__wheel_next_due(w));
    if (t->driver && e->when_ < t->driver_deadline) {
        /* The driver sleeps past this deadline: wake it to re-arm. */
        unpark = t->driver;
        t->driver_deadline = e->when_;
    }
    no_driver = !t->driver;
    timers_unlock(t);
    if (unpark)
        weft__unpark(unpark);
    else if (no_driver)
        t->wake_sleeper(t->wake_ctx); /* a sleeper parks again as the driver */
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
    weft__wheel *w = &t->wheel;
    uint64_t timeout_ns = UINT64_MAX;
    timers_lock(t);
    if (!t->driver) {
        t->driver = me;
        t->driver_deadline = weft__wheel_next_due(w);
    }
    bool driving = t->driver == me;
    uint64_t deadline = t->driver_deadline;
    timers_unlock(t);
    if (driving && deadline != WEFT__WHEEL_NONE) {
        weft_instant at = weft__wheel_instant(w, deadline);
        weft_instant now = weft_now();
        timeout_ns = at > now ? at - now : 0;
    }
    return timeout_ns;
}

void weft__timers_driver_end(weft__timers *t, weft__parker *me)
{
    bool handoff = false;
    timers_lock(t);
    if (t->driver == me) {
        t->driver = NULL;
        t->driver_deadline = WEFT__WHEEL_NONE;
        handoff = t->wheel.armed > 0;
    }
    timers_unlock(t);
    /* We leave to run tasks, possibly for long: timers still armed need a
     * parked driver, not our next tick. */
    if (handoff)
        t->wake_sleeper(t->wake_ctx);
}
