/* Time: weft_now, and the sleep, timeout and interval futures on the
 * runtime's timer wheel.
 *
 * Who touches a timer entry: the task polling or dropping its future (the
 * "owner"), and the wheel (under its lock). The owner arms an entry under
 * the lock (state IDLE -> ARMED, waker cloned into it); the wheel fires it
 * under the lock (ARMED -> FIRED, waker moved out, woken after unlock);
 * the owner cancels under the lock (ARMED -> IDLE). Outside the lock the
 * owner reads the state with acquire loads: FIRED means the wheel is done
 * with the entry for good. */
#include "weft/time.h"
#include "alloc.h"
#include "future_internal.h"
#include "runtime.h"
#include "sys.h"

#include <string.h>

weft_instant weft_now(void)
{
    return weft__sys_now_ns();
}

/* ---- runtime side --------------------------------------------------------- */

/* Arm `e` (IDLE, when_ set) in `w` with a clone of `waker`. Returns false
 * when the deadline has already been reached by the wheel (nothing armed). */
static bool timer_arm(struct weft_rt *rt, weft_timer_entry *e, const weft_waker *waker)
{
    weft__wheel *w = &rt->wheel;
    struct weft__worker *unpark = NULL;
    bool no_driver;
    weft__spin_lock(&w->lock);
    if (e->when_ <= w->elapsed) {
        weft__spin_unlock(&w->lock);
        return false;
    }
    e->wheel_ = w;
    e->waker_ = weft_waker_clone(waker);
    weft__wheel_insert(w, e);
    /* Relaxed under the lock: readers outside it only act on FIRED. */
    atomic_store_relaxed(&e->state_, WEFT__TIMER_ARMED);
    if (e->when_ < atomic_load_relaxed(&w->next_due))
        atomic_store_relaxed(&w->next_due, e->when_);
    if (w->driver && e->when_ < w->driver_deadline) {
        /* The driver sleeps past this deadline: wake it to re-arm. */
        unpark = w->driver;
        w->driver_deadline = e->when_;
    }
    no_driver = !w->driver;
    weft__spin_unlock(&w->lock);
    if (unpark)
        weft__unpark(&unpark->parker);
    else if (no_driver)
        weft__sched_wake_sleeper(rt); /* a sleeper re-parks as the driver */
    return true;
}

/* Disarm `e` if armed; afterwards the wheel no longer references it. */
static void timer_cancel(weft_timer_entry *e)
{
    /* Acquire: pairs with the release store of FIRED in weft__wheel_poll. */
    if (atomic_load_acquire(&e->state_) != WEFT__TIMER_ARMED)
        return;
    weft__wheel *w = e->wheel_;
    weft_waker waker = WEFT_WAKER_EMPTY;
    weft__spin_lock(&w->lock);
    /* Relaxed under the lock: every state change happens under it. */
    if (atomic_load_relaxed(&e->state_) == WEFT__TIMER_ARMED) {
        weft__wheel_remove(w, e);
        waker = e->waker_;
        e->waker_.ops = NULL;
        e->waker_.data = NULL;
        atomic_store_relaxed(&e->state_, WEFT__TIMER_IDLE);
    }
    weft__spin_unlock(&w->lock);
    weft_waker_drop(&waker); /* outside the lock: may free a task */
}

/* Replace an armed entry's waker if it would wake someone else. Returns
 * false if the entry fired meanwhile. */
static bool timer_update_waker(weft_timer_entry *e, const weft_waker *waker)
{
    weft__wheel *w = e->wheel_;
    weft_waker old = WEFT_WAKER_EMPTY;
    bool armed;
    weft__spin_lock(&w->lock);
    armed = atomic_load_relaxed(&e->state_) == WEFT__TIMER_ARMED; /* under lock */
    if (armed && !weft_waker_will_wake(&e->waker_, waker)) {
        old = e->waker_;
        e->waker_ = weft_waker_clone(waker);
    }
    weft__spin_unlock(&w->lock);
    weft_waker_drop(&old);
    return armed;
}

#define FIRE_BATCH 32u

size_t weft__timer_fire_due(struct weft_rt *rt)
{
    weft__wheel *w = &rt->wheel;
    /* Relaxed: a stale value only delays this check to the next tick or
     * makes us take the lock for nothing. */
    uint64_t due = atomic_load_relaxed(&w->next_due);
    if (due == WEFT__WHEEL_NONE)
        return 0;
    uint64_t now = weft__wheel_tick_floor(w, weft__sys_now_ns());
    if (now < due)
        return 0;
    size_t total = 0, n;
    weft_waker batch[FIRE_BATCH];
    do {
        weft__spin_lock(&w->lock);
        n = weft__wheel_poll(w, now, batch, FIRE_BATCH);
        weft__spin_unlock(&w->lock);
        for (size_t i = 0; i < n; i++)
            weft_waker_wake(&batch[i]);
        total += n;
    } while (n == FIRE_BATCH);
    return total;
}

uint64_t weft__timer_driver_begin(struct weft_rt *rt, struct weft__worker *me)
{
    weft__wheel *w = &rt->wheel;
    uint64_t timeout_ns = UINT64_MAX;
    weft__spin_lock(&w->lock);
    if (!w->driver) {
        w->driver = me;
        w->driver_deadline = weft__wheel_next_due(w);
    }
    bool driving = w->driver == me;
    uint64_t deadline = w->driver_deadline;
    weft__spin_unlock(&w->lock);
    if (driving && deadline != WEFT__WHEEL_NONE) {
        weft_instant at = weft__wheel_instant(w, deadline);
        weft_instant now = weft__sys_now_ns();
        timeout_ns = at > now ? at - now : 0;
    }
    return timeout_ns;
}

void weft__timer_driver_end(struct weft_rt *rt, struct weft__worker *me)
{
    weft__wheel *w = &rt->wheel;
    bool handoff = false;
    weft__spin_lock(&w->lock);
    if (w->driver == me) {
        w->driver = NULL;
        w->driver_deadline = WEFT__WHEEL_NONE;
        handoff = w->armed > 0;
    }
    weft__spin_unlock(&w->lock);
    /* We leave to run tasks, possibly for long: timers still armed need a
     * parked driver, not our next tick. */
    if (handoff)
        weft__sched_wake_sleeper(rt);
}

/* ---- sleep ---------------------------------------------------------------------- */

static weft_poll sleep_poll(weft_future *f, weft_cx *cx, void *out);
static void sleep_drop(weft_future *f);

static const weft_future_ops sleep_ops = { "weft_sleep", 0, sleep_poll, sleep_drop, NULL };

static void entry_init(weft_timer_entry *e)
{
    memset(e, 0, sizeof *e);
    atomic_init(&e->state_, WEFT__TIMER_IDLE);
}

void weft_sleep_until_init(weft_sleep *s, weft_instant deadline)
{
    weft_future_init(&s->base, &sleep_ops, WEFT_F_SEND);
    s->deadline = deadline;
    entry_init(&s->entry);
}

void weft_sleep_init(weft_sleep *s, weft_duration d)
{
    weft_instant now = weft_now();
    weft_sleep_until_init(s, d > UINT64_MAX - now ? UINT64_MAX : now + d);
}

void weft_sleep_reset(weft_sleep *s, weft_instant deadline)
{
    timer_cancel(&s->entry);
    /* Relaxed: the entry is idle or fired; nobody else reads it now. */
    atomic_store_relaxed(&s->entry.state_, WEFT__TIMER_IDLE);
    s->deadline = deadline;
    s->base.flags &= ~WEFT_F__DONE; /* it may complete again */
}

static weft_poll sleep_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_sleep *s = (weft_sleep *)f;
    (void)out;
    /* Acquire: pairs with the wheel's release store of FIRED. */
    uint32_t st = atomic_load_acquire(&s->entry.state_);
    if (st == WEFT__TIMER_FIRED)
        return WEFT_READY;
    if (st == WEFT__TIMER_ARMED) {
        if (!timer_update_waker(&s->entry, cx->waker))
            return WEFT_READY; /* fired meanwhile */
        return WEFT_PENDING;
    }
    if (weft_now() >= s->deadline)
        return WEFT_READY;
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    struct weft_rt *rt = weft_rt_current();
    if (!rt) {
        WEFT_MISUSE("'%s' first polled outside a runtime (no timer wheel)",
                    f->ops->name);
        return WEFT_PENDING;
    }
    s->entry.when_ = weft__wheel_tick_ceil(&rt->wheel, s->deadline);
    if (!timer_arm(rt, &s->entry, cx->waker))
        return WEFT_READY;
    return WEFT_PENDING;
}

static void sleep_drop(weft_future *f)
{
    timer_cancel(&((weft_sleep *)f)->entry);
}

/* ---- timeout --------------------------------------------------------------------- */

static weft_poll timeout_poll(weft_future *f, weft_cx *cx, void *out);
static void timeout_drop(weft_future *f);
static weft_future *timeout_inner(const weft_timeout *t)
{
    return (weft_future *)((char *)t + t->inner_off_);
}

static size_t timeout_out_size(const weft_future *f)
{
    return weft_future_out_size(timeout_inner((const weft_timeout *)f));
}

static const weft_future_ops timeout_ops = {
    "weft_timeout", WEFT_OUT_SIZE_VARIES, timeout_poll, timeout_drop, timeout_out_size,
};

int weft_timeout_at_init(weft_timeout *t, weft_future *inner, weft_instant deadline)
{
    if (!t || !inner || !inner->ops || !inner->ops->poll)
        return -EINVAL;
    weft_future_init(&t->base, &timeout_ops, inner->flags & WEFT_F_SEND);
    t->inner_off_ = (char *)inner - (char *)t;
    t->status = 0;
    t->inner_done = false;
    weft_sleep_until_init(&t->sleep, deadline);
    return 0;
}

int weft_timeout_init(weft_timeout *t, weft_future *inner, weft_duration d)
{
    weft_instant now = weft_now();
    return weft_timeout_at_init(t, inner, d > UINT64_MAX - now ? UINT64_MAX : now + d);
}

/* Drop the inner future and the timer (once). */
static void timeout_finish(weft_timeout *t)
{
    if (!t->inner_done) {
        t->inner_done = true;
        weft_future_drop(timeout_inner(t));
    }
    sleep_drop(&t->sleep.base);
}

static weft_poll timeout_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_timeout *t = (weft_timeout *)f;
    weft_future *inner = timeout_inner(t);
    size_t out_size = weft_future_out_size(inner);
    /* The inner future first: ready in the same tick as the deadline, it
     * wins. */
    if (weft_future_poll(inner, cx, out) == WEFT_READY) {
        t->status = 0;
        timeout_finish(t);
        return WEFT_READY;
    }
    if (weft_future_poll(&t->sleep.base, cx, NULL) == WEFT_READY) {
        t->status = -ETIMEDOUT;
        timeout_finish(t);
        if (out_size && out)
            memset(out, 0, out_size);
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void timeout_drop(weft_future *f)
{
    timeout_finish((weft_timeout *)f);
}

/* ---- interval ---------------------------------------------------------------------- */

static weft_next interval_poll_next(weft_stream *st, weft_cx *cx, void *item);
static void interval_drop(weft_stream *st);

static const weft_stream_ops interval_ops = {
    "weft_interval", sizeof(weft_instant), interval_poll_next, interval_drop, NULL,
};

int weft_interval_at_init(weft_interval *iv, weft_instant start, weft_duration period,
                          weft_missed_tick missed)
{
    if (!iv || period == 0 || (missed != WEFT_MISSED_BURST && missed != WEFT_MISSED_DELAY &&
                               missed != WEFT_MISSED_SKIP))
        return -EINVAL;
    weft_stream_init(&iv->base, &interval_ops, WEFT_F_SEND);
    iv->period = period;
    iv->missed = missed;
    weft_sleep_until_init(&iv->sleep, start);
    return 0;
}

int weft_interval_init(weft_interval *iv, weft_duration period, weft_missed_tick missed)
{
    return weft_interval_at_init(iv, weft_now(), period, missed);
}

/* A tick later than this after its deadline counts as missed (timers are
 * late by up to a tick or two by nature; that is not a missed tick). */
#define MISSED_TOLERANCE WEFT_MS(5)

static weft_next interval_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    weft_interval *iv = (weft_interval *)st;
    if (weft_future_poll(&iv->sleep.base, cx, NULL) == WEFT_PENDING)
        return WEFT_NEXT_PENDING;
    weft_instant tick = iv->sleep.deadline;
    weft_instant now = weft_now();
    weft_instant next = tick + iv->period;
    if (now > tick + MISSED_TOLERANCE) {
        switch (iv->missed) {
        case WEFT_MISSED_BURST:
            break;
        case WEFT_MISSED_DELAY:
            next = now + iv->period;
            break;
        case WEFT_MISSED_SKIP:
            next = now + iv->period - (now - tick) % iv->period;
            break;
        }
    }
    weft_sleep_reset(&iv->sleep, next);
    memcpy(item, &tick, sizeof tick);
    return WEFT_NEXT_ITEM;
}

static void interval_drop(weft_stream *st)
{
    sleep_drop(&((weft_interval *)st)->sleep.base);
}
