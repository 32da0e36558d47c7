/* The timer driver: the wheels of one runtime, one per shard under its own
 * spinlock, fired by whichever worker gets to them.
 *
 * Shards (the design of tokio's sharded timer). A thread arms its timers
 * in its own shard (given round-robin when it first enters or arms), so
 * workers that arm and cancel at the same time do not share a lock or a
 * cache line; an entry remembers its shard, so a cancel or a waker update
 * takes that shard's lock wherever the task runs by then. Between polls a
 * worker looks at one word, `earliest` (no later than any shard's next
 * due tick), and when it has come fires every shard that has work due;
 * the parked driver sleeps until the earliest deadline of all shards.
 *
 * Who touches a timer entry: the task polling or dropping its future (the
 * "owner"), and the driver (under its shard's lock). The owner arms an
 * entry under the lock (state IDLE -> ARMED, waker cloned into it); the
 * driver fires it under the lock (ARMED -> FIRED, waker copied out, woken
 * after unlock); the owner cancels under the lock (ARMED -> IDLE). Outside
 * the lock the owner reads the state with acquire loads: FIRED means the
 * driver is done with the entry for good. Only the owner writes the
 * entry's waker (the wheel copies it out when firing and leaves the field
 * alone), so the owner may read it without the lock: a re-poll with the
 * same waker (weft_waker_will_wake) takes no lock.
 *
 * Who fires timers: there is no timer thread. One parked worker is the
 * driver: it sleeps on its parker with a timeout at the earliest deadline
 * of all shards, and an earlier new timer unparks it. Woken by its
 * deadline or by an earlier timer, the driver keeps the role, "away",
 * while it fires and runs what the timers woke, and takes it back (with
 * the new deadline) when it parks again; meanwhile a new timer wakes
 * nobody, and a worker that parks first takes the role over. Woken to run
 * other work, it leaves idle: it gives the role up and, with timers still
 * armed, asks the scheduler to wake a sleeper, which parks again as the
 * driver. Busy workers, the away driver among them, fire due timers
 * between polls (weft__timers_tick). Wakers are always woken after
 * unlocking: waking may free a task, and never runs user code.
 *
 * The role word `drive` (driver.h) says what an arm must do, and an arm
 * reads it without the role lock: NONE, wake a sleeper to drive; AWAY,
 * nothing (the away driver is awake and reads every shard when it parks);
 * a parked deadline, unpark the driver (lowering the deadline under the
 * role lock) if the new timer is earlier; COMPUTING, take the role lock,
 * which the driver holds while it reads the shards, and decide then.
 *
 * No lost timer. An arm publishes its entry (shard lock), executes a
 * seq_cst fence, then reads `earliest` (lowering it) and `drive`. A worker
 * that parks as the driver stores COMPUTING, executes a seq_cst fence,
 * then reads every shard's next_due and `armed`. By the fences' order,
 * either the driver sees the new entry (and sleeps no later than its
 * slot), or the arm sees COMPUTING or what followed it (and unparks the
 * driver, or wakes a sleeper when the driver found nothing to drive and
 * gave the role up). The same holds for a driver that gives the role up
 * when it leaves for work (it stores NONE, fences, reads `armed`) and for
 * firing, which raises `earliest` (a CAS, a fence, a second scan). A
 * worker that parks with no timer armed and the role not its own takes no
 * lock at all: it lists itself as a sleeper, fences
 * (weft__idle_sleep_begin) and reads every shard's `armed`; an arm that
 * finds NONE fenced before the hook looks for a sleeper: either the worker
 * sees the timer and takes the role, or the hook finds the worker asleep
 * and wakes it.
 *
 * Concurrency: arm, cancel, update_waker on an entry by its owner only
 * (one at a time); fire_due, tick, timeout from any thread; driver_begin
 * and driver_end by a parking worker, for its own parker. */
#include "time/driver.h"
#include "core/errors.h"

#include <assert.h>
#include <string.h>

/* Each shard on lines of its own (workers write their own shards at the
 * same time); `earliest` apart from them (every tick reads it) and from the
 * role (written by parking and arming threads). */
static_assert(sizeof(weft__timer_shard) % WEFT_CACHE_LINE == 0, "shards share a cache line");
static_assert(offsetof(weft__timers, earliest) % WEFT_CACHE_LINE == 0,
              "earliest shares a cache line with a shard");
static_assert(offsetof(weft__timers, lock) % WEFT_CACHE_LINE == 0,
              "the role shares a cache line with earliest");

static _Thread_local weft__timers *tl_timers;
static _Thread_local unsigned tl_shard;
static _Thread_local bool tl_shard_given;
/* Shards handed out so far, to every thread of the process. */
static _Atomic unsigned g_shards_given;

void weft__timers_init(weft__timers *t, uint64_t origin_ns, weft__timers_wake_fn *wake,
                       void *wake_ctx)
{
    for (unsigned i = 0; i < WEFT__TIMER_SHARDS; i++) {
        weft__timer_shard *s = &t->shards[i];
        weft__spin_init(&s->lock);
        s->locks_taken = 0;
        weft_atomic_init(&s->armed, 0);
        weft__wheel_init(&s->wheel, origin_ns);
    }
    weft_atomic_init(&t->earliest, WEFT__WHEEL_NONE);
    t->coarse_lag_ns = weft__sys_coarse_lag_ns();
    weft__spin_init(&t->lock);
    t->locks_taken = 0;
    weft_atomic_init(&t->driver, NULL);
    weft_atomic_init(&t->drive, WEFT__DRIVE_NONE);
    t->wake_sleeper = wake;
    t->wake_ctx = wake_ctx;
}

/* The calling thread's shard, given on first use. */
static unsigned my_shard(void)
{
    if (!tl_shard_given) {
        /* Relaxed: only spreads threads over the shards. */
        unsigned n = weft_atomic_fetch_add_relaxed(&g_shards_given, 1u);
        tl_shard = n & (WEFT__TIMER_SHARDS - 1u);
        tl_shard_given = true;
    }
    return tl_shard;
}

weft__timers *weft__timers_current(void)
{
    return tl_timers;
}

weft__timers *weft__timers_enter(weft__timers *t)
{
    weft__timers *prev = tl_timers;
    tl_timers = t;
    if (t)
        my_shard();
    return prev;
}

static void shard_lock(weft__timer_shard *s)
{
    weft__spin_lock(&s->lock);
    s->locks_taken++;
}

static void shard_unlock(weft__timer_shard *s)
{
    weft__spin_unlock(&s->lock);
}

static void role_lock(weft__timers *t)
{
    weft__spin_lock(&t->lock);
    t->locks_taken++;
}

static void role_unlock(weft__timers *t)
{
    weft__spin_unlock(&t->lock);
}

/* Under the shard's lock, after wheel.armed changed. */
static void publish_armed(weft__timer_shard *s)
{
    /* Relaxed: the readers outside the lock are ordered by the fences
     * (see "No lost timer" at the top). */
    weft_atomic_store_relaxed(&s->armed, s->wheel.armed);
}

size_t weft__timers_armed(weft__timers *t)
{
    size_t n = 0;
    for (unsigned i = 0; i < WEFT__TIMER_SHARDS; i++)
        n += weft_atomic_load_relaxed(&t->shards[i].armed); /* relaxed: see publish_armed */
    return n;
}

uint64_t weft__timers_locks_taken(weft__timers *t)
{
    uint64_t n = t->locks_taken;
    for (unsigned i = 0; i < WEFT__TIMER_SHARDS; i++)
        n += t->shards[i].locks_taken;
    return n;
}

/* The earliest tick at which some shard has work, from the next_due
 * hints, or WEFT__WHEEL_NONE. */
static uint64_t earliest_due(weft__timers *t)
{
    uint64_t due = WEFT__WHEEL_NONE;
    for (unsigned i = 0; i < WEFT__TIMER_SHARDS; i++) {
        /* Relaxed: see next_due in wheel.h; ordered by the caller's fence
         * where it matters (driver_begin). */
        uint64_t d = weft_atomic_load_relaxed(&t->shards[i].wheel.next_due);
        if (d < due)
            due = d;
    }
    return due;
}

weft_instant weft__timers_next_deadline(weft__timers *t)
{
    /* Exact, from each wheel under its lock: the next_due hints are not
     * raised when a timer is cancelled, and a clock that jumps to a
     * cancelled timer's deadline would move time for nothing. */
    uint64_t due = WEFT__WHEEL_NONE;
    for (unsigned i = 0; i < WEFT__TIMER_SHARDS; i++) {
        weft__timer_shard *s = &t->shards[i];
        shard_lock(s);
        uint64_t d = weft__wheel_next_due(&s->wheel);
        shard_unlock(s);
        if (d < due)
            due = d;
    }
    /* Every shard's wheel has the same origin: any one converts. */
    return due == WEFT__WHEEL_NONE ? WEFT_NEVER
                                   : weft__wheel_instant(&t->shards[0].wheel, due);
}

/* Make `earliest` no later than `due`. */
static void lower_earliest(weft__timers *t, uint64_t due)
{
    /* Relaxed: `earliest` is a hint; what keeps it a lower bound is the
     * fence before this call (in arm) and the one in raise_earliest. */
    uint64_t low = weft_atomic_load_relaxed(&t->earliest);
    while (due < low && !weft_atomic_cas_weak_relaxed(&t->earliest, &low, due))
        ;
}

/* After firing: raise `earliest` from `seen` (read before the shards
 * were polled) to what the shards say now. An arm that lowered it
 * meanwhile makes the CAS fail: its value stands. An arm whose entry the
 * scan missed and that read `earliest` before the CAS: it lowers it
 * afterwards, or the second scan (after the fence) sees its entry. */
static void raise_earliest(weft__timers *t, uint64_t seen)
{
    uint64_t due = earliest_due(t);
    /* Relaxed CAS: the fence below orders it. */
    if (due <= seen || !weft_atomic_cas_strong_relaxed(&t->earliest, &seen, due))
        return;
    /* SeqCst fence: our raise before the second scan; pairs with the
     * fence in arm before its lower_earliest. */
    weft_atomic_fence_seq_cst();
    lower_earliest(t, earliest_due(t));
}

/* The role holder, for a thread that holds the role lock or compares it
 * with itself (see `driver` in driver.h). */
static weft__parker *driver_of(weft__timers *t)
{
    /* Relaxed: every write is under the role lock. */
    return weft_atomic_load_relaxed(&t->driver);
}

/* Under the role lock. */
static void set_role(weft__timers *t, weft__parker *d, uint64_t drive)
{
    /* Relaxed: under the role lock; the lock-free readers order their
     * reads with fences (see the top). */
    weft_atomic_store_relaxed(&t->driver, d);
    weft_atomic_store_relaxed(&t->drive, drive);
}

/* Have a sleeping worker woken to park as the driver: nobody holds the
 * role and timers are armed. Called with no lock held, after a seq_cst
 * fence that follows the caller's publication (an entry, or NONE): that
 * fence pairs with the one a parking worker executes between listing
 * itself as a sleeper and reading `armed` in driver_begin. */
static void wake_a_driver(weft__timers *t)
{
    t->wake_sleeper(t->wake_ctx);
}

/* ---- the futures' side ------------------------------------------------------ */

bool weft__timers_arm(weft__timers *t, weft_timer_entry *e, weft_instant deadline,
                      const weft_waker *waker)
{
    weft__timer_shard *s = &t->shards[my_shard()];
    weft__wheel *w = &s->wheel;
    shard_lock(s);
    uint64_t when = weft__wheel_tick_ceil(w, deadline);
    if (when <= w->elapsed) {
        shard_unlock(s);
        return false;
    }
    e->when_ = when;
    e->driver_ = s;
    e->waker_ = weft_waker_clone(waker);
    weft__wheel_insert(w, e);
    publish_armed(s);
    /* Relaxed under the lock: readers outside it only act on FIRED. */
    weft_atomic_store_relaxed(&e->state_, WEFT__TIMER_ARMED);
    /* next_due is when the wheel next has work: the start of the earliest
     * occupied slot, which for an entry on a coarse level is before its
     * deadline (the slot must be cascaded then). The driver sleeps until
     * exactly that tick, so the two must agree: with the entry's own
     * deadline here, a driver woken at the slot's start would find nothing
     * due and spin until the deadline. (Relaxed: see wheel.h.) */
    uint64_t due = weft__wheel_next_due(w);
    weft_atomic_store_relaxed(&w->next_due, due);
    shard_unlock(s);

    /* SeqCst fence: the entry (armed, next_due) before our reads of
     * `earliest` and of the role word; pairs with the fences in
     * raise_earliest, driver_begin and driver_end and with a parking
     * worker's sleeper fence (see "No lost timer"). */
    weft_atomic_fence_seq_cst();
    lower_earliest(t, due);
    /* Relaxed: ordered by the fence above. */
    uint64_t drive = weft_atomic_load_relaxed(&t->drive);
    if (drive == WEFT__DRIVE_AWAY || (drive != WEFT__DRIVE_COMPUTING && when >= drive))
        return true; /* an awake driver, or a parked one due no later */
    weft__parker *unpark = NULL;
    bool wake = drive == WEFT__DRIVE_NONE;
    if (!wake) {
        /* A parked driver due later than this timer, or one deciding its
         * deadline right now: decide under the role lock, where `drive`
         * is never COMPUTING. */
        role_lock(t);
        /* Relaxed: under the role lock. */
        drive = weft_atomic_load_relaxed(&t->drive);
        if (drive == WEFT__DRIVE_NONE) {
            wake = true;
        } else if (drive != WEFT__DRIVE_AWAY && when < drive) {
            /* The driver sleeps past this deadline: wake it to re-arm. */
            unpark = driver_of(t);
            weft_atomic_store_relaxed(&t->drive, when); /* relaxed: under the lock */
        }
        role_unlock(t);
    }
    if (unpark)
        weft__unpark(unpark);
    else if (wake)
        wake_a_driver(t); /* a sleeper parks again as the driver */
    return true;
}

void weft__timer_cancel(weft_timer_entry *e)
{
    /* Acquire: pairs with the release store of FIRED in weft__wheel_poll. */
    if (weft_atomic_load_acquire(&e->state_) != WEFT__TIMER_ARMED)
        return;
    weft__timer_shard *s = e->driver_;
    weft_waker waker = WEFT_WAKER_EMPTY;
    shard_lock(s);
    /* Relaxed under the lock: every state change happens under it. */
    if (weft_atomic_load_relaxed(&e->state_) == WEFT__TIMER_ARMED) {
        weft__wheel_remove(&s->wheel, e);
        publish_armed(s);
        waker = e->waker_;
        e->waker_.ops = NULL;
        e->waker_.data = NULL;
        weft_atomic_store_relaxed(&e->state_, WEFT__TIMER_IDLE);
    }
    shard_unlock(s);
    weft_waker_drop(&waker); /* outside the lock: may free a task */
}

bool weft__timer_update_waker(weft_timer_entry *e, const weft_waker *waker)
{
    /* The same task's waker: nothing to change, and no lock. We are the
     * owner, the only writer of waker_ (see the top). If the timer fired
     * meanwhile, its wake is on its way to this same task. */
    if (weft_waker_will_wake(&e->waker_, waker))
        return true;
    weft__timer_shard *s = e->driver_;
    weft_waker old = WEFT_WAKER_EMPTY;
    bool armed;
    shard_lock(s);
    armed = weft_atomic_load_relaxed(&e->state_) == WEFT__TIMER_ARMED; /* under lock */
    if (armed) {
        old = e->waker_;
        e->waker_ = weft_waker_clone(waker);
    }
    shard_unlock(s);
    weft_waker_drop(&old);
    return armed;
}

/* ---- the scheduler's side ------------------------------------------------------ */

#define FIRE_BATCH 32u

/* Fire what shard `s` has due by tick `now`. */
static size_t fire_shard(weft__timer_shard *s, uint64_t now)
{
    weft__wheel *w = &s->wheel;
    /* Relaxed: a stale value only delays this check to the next tick or
     * makes us take the lock for nothing. */
    if (weft_atomic_load_relaxed(&w->next_due) > now)
        return 0;
    size_t total = 0, n;
    weft_waker batch[FIRE_BATCH];
    do {
        shard_lock(s);
        n = weft__wheel_poll(w, now, batch, FIRE_BATCH);
        publish_armed(s);
        shard_unlock(s);
        for (size_t i = 0; i < n; i++)
            weft_waker_wake(&batch[i]);
        total += n;
    } while (n == FIRE_BATCH);
    return total;
}

size_t weft__timers_fire_due(weft__timers *t)
{
    /* Relaxed: a hint, checked against the scan below. NONE: nothing is
     * armed (or, for the moment a racing raise takes to lower it again,
     * nothing the caller will not find at its next look), and no shard's
     * line need be read: the busy workers' 61st tick calls this. */
    uint64_t seen = weft_atomic_load_relaxed(&t->earliest);
    if (seen == WEFT__WHEEL_NONE)
        return 0;
    /* The shards themselves, not `earliest`, decide when something is
     * due: a caller woken at a shard's deadline must find it. */
    uint64_t due = earliest_due(t);
    size_t total = 0;
    if (due != WEFT__WHEEL_NONE) {
        /* All shards share one origin: one tick number is now for all. */
        uint64_t now = weft__wheel_tick_floor(&t->shards[0].wheel, weft_now());
        for (unsigned i = 0; i < WEFT__TIMER_SHARDS && now >= due; i++)
            total += fire_shard(&t->shards[i], now);
    }
    /* Fired timers, or cancelled ones the hint still counts: the ticks
     * would look again at every tick until it is raised. */
    if (seen < due || total > 0)
        raise_earliest(t, seen);
    return total;
}

size_t weft__timers_tick_armed(weft__timers *t)
{
    /* Relaxed: a hint (see `earliest` in driver.h). */
    uint64_t due = weft_atomic_load_relaxed(&t->earliest);
    /* The coarse clock first (a few ns, no hardware counter read): while
     * the next deadline is further away than it may lag, that is all a
     * tick costs; the exact clock only near the deadline. (Only the
     * pool's workers call this: their wheels run on the monotonic clock
     * the coarse one trails.) */
    if (due == WEFT__WHEEL_NONE ||
        weft__sys_coarse_ns() + t->coarse_lag_ns <
            weft__wheel_instant(&t->shards[0].wheel, due))
        return 0;
    return weft__timers_fire_due(t);
}

uint64_t weft__timers_timeout(weft__timers *t)
{
    /* A hint (see next_due in wheel.h); a stale value only makes the
     * caller wake early or fire nothing. */
    uint64_t due = earliest_due(t);
    if (due == WEFT__WHEEL_NONE)
        return UINT64_MAX;
    weft_instant at = weft__wheel_instant(&t->shards[0].wheel, due);
    weft_instant now = weft_now();
    return at > now ? at - now : 0;
}

uint64_t weft__timers_driver_begin(weft__timers *t, weft__parker *me)
{
    /* Relaxed: `driver` is only compared with ourselves (see driver.h);
     * `armed` is ordered after our listing as a sleeper by the caller's
     * fence (see "No lost timer" at the top). */
    if (driver_of(t) != me && weft__timers_armed(t) == 0)
        return UINT64_MAX;
    role_lock(t);
    weft__parker *d = driver_of(t);
    /* Relaxed: under the role lock. */
    uint64_t drive = weft_atomic_load_relaxed(&t->drive);
    if (!d || d == me || drive == WEFT__DRIVE_AWAY) {
        /* No driver, or an away one (possibly us): whoever parks drives. */
        set_role(t, me, WEFT__DRIVE_COMPUTING);
        /* SeqCst fence: COMPUTING before our reads of the shards; pairs
         * with the fence in arm (see "No lost timer" at the top). */
        weft_atomic_fence_seq_cst();
        uint64_t due = earliest_due(t);
        if (due == WEFT__WHEEL_NONE || weft__timers_armed(t) == 0)
            set_role(t, NULL, WEFT__DRIVE_NONE); /* nothing to drive */
        else
            set_role(t, me, due);
    }
    bool driving = driver_of(t) == me;
    drive = weft_atomic_load_relaxed(&t->drive); /* relaxed: under the role lock */
    role_unlock(t);
    if (!driving)
        return UINT64_MAX;
    weft_instant at = weft__wheel_instant(&t->shards[0].wheel, drive);
    weft_instant now = weft_now();
    return at > now ? at - now : 0;
}

void weft__timers_driver_end(weft__timers *t, weft__parker *me, bool for_work)
{
    /* Only we make ourselves the driver, and nobody takes the role from a
     * parked driver: if it is not ours now, it was not ours in the park. */
    if (driver_of(t) != me)
        return;
    role_lock(t);
    set_role(t, for_work ? NULL : me, for_work ? WEFT__DRIVE_NONE : WEFT__DRIVE_AWAY);
    role_unlock(t);
    if (!for_work)
        return; /* our next tick fires what is due */
    /* We leave idle to run tasks, possibly for long: timers still armed
     * need a parked driver, not our next tick. SeqCst fence: NONE before
     * our read of `armed`; pairs with the fence in arm, so that a timer
     * armed meanwhile is seen here or sees NONE and asks for a sleeper
     * itself. */
    weft_atomic_fence_seq_cst();
    if (weft__timers_armed(t) > 0)
        wake_a_driver(t);
}
