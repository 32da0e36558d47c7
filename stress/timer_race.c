/* stress_timer_race: timers racing other work, cancelled at every point,
 * on a real runtime, with aborts from tasks and foreign threads and some
 * rounds shut down in mid-flight.
 *
 *   stress_timer_race [--threads N] [--iters N] [--seed S] [--seconds T]
 *
 * --threads  workers per runtime (default 2)
 * --iters    stop after this many rounds (default 0: only the time box)
 * --seed     the run's seed (default: from the clock); printed first
 * --seconds  time box (default 3)
 *
 * Each round starts a runtime and spawns racer tasks. A racer runs a
 * series of races, written by hand with the coroutine macros (there is no
 * select combinator yet):
 *  - sleep vs yield loop: a weft_sleep of 0-3 ms and a future that yields a
 *    random number of times are polled in turn, the one polled first
 *    alternating each turn; the first to be READY wins and the loser is
 *    dropped where it stands (a sleep armed, or fired but not yet polled);
 *  - timeout: a weft_timeout of 0-3 ms around a yield loop, awaited;
 *  - a lone sleep of 0-3 ms, awaited (a timer that never fires hangs it).
 * A sixteenth of the sleeps and timeouts last 4-20 ms instead (some on the
 * wheel's second level), so the runtime idles between timer events and the
 * timer driver parks, wakes, keeps or hands on its role; an eighth of the
 * yield loops spin 20-300 us in every poll (at most 30 of them), so every
 * worker may be in a long poll when a timer falls due and must fire it
 * between polls. Some racers abort random racers (possibly themselves)
 * between races, and foreign threads abort random racers at random moments
 * and await sleeps of their own in weft_block_on (timers armed from off
 * the workers). All decisions come from PRNGs derived from the round's
 * seed and the racer's index, so a seed replays the same races; only the
 * interleavings differ.
 *
 * Invariants (any violation aborts with the seed and round):
 *  - every future the program initialises (sleep and timeout wrappers,
 *    yield loops, racers) is dropped exactly once;
 *  - a sleep that won its race, and a foreign thread's sleep, completed at
 *    or after its deadline;
 *  - a timeout that timed out reported -ETIMEDOUT with zeroed output, no
 *    earlier than its deadline, having dropped its inner future exactly
 *    once; one that did not time out has its inner future's output;
 *  - races started == sleep wins + loop wins + timeouts completed +
 *    timeouts expired + lone sleeps + races cut short by a drop; racers
 *    completed + cancelled == spawned; a join's status and output agree
 *    with whether its racer finished, and -ECANCELED only after an abort
 *    or shutdown;
 *  - no hang: a watchdog aborts after seconds * 10 + 30 s (a dropped timer
 *    left linked in the wheel corrupts it when its memory is reused, which
 *    shows up as a crash, a lost wake or a hang).
 * Waits for threads are joins and condition variables; the only clock
 * waits are the timers under test and the watchdog's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"

#include "stress_common.h"
#include "support/co_future.h"
#include "support/co_steps.h"
#include "support/downcast.h"

/* A timer duration: 0-3 ms, a tenth of them exactly 0, a sixteenth 4-20
 * ms (long enough for the runtime to idle meanwhile). */
static weft_duration random_duration(uint64_t *r)
{
    uint32_t pick = rng_next32(r);
    if (pick % 10 == 0)
        return 0;
    if (pick % 16 == 1)
        return WEFT_MS(4) + (weft_duration)rng_next32(r) % (WEFT_MS(16) + 1);
    return (weft_duration)rng_next32(r) % (WEFT_MS(3) + 1);
}

/* How long each poll of a yield loop spins: nothing, or for an eighth of
 * the loops 20-300 us (a long poll). */
static weft_duration random_spin(uint64_t *r)
{
    if (rng_next32(r) % 8 != 0)
        return 0;
    return WEFT_US(20) + (weft_duration)rng_next32(r) % (WEFT_US(280) + 1);
}

/* A yield loop's length, from nothing to long enough to lose to any
 * sleep (at most 30 polls for a loop that spins). */
static unsigned random_yields(uint64_t *r, weft_duration spin)
{
    if (spin)
        return rng_next32(r) % 31;
    switch (rng_next32(r) % 4) {
    case 0: return rng_next32(r) % 4;
    case 1: return rng_next32(r) % 100;
    case 2: return rng_next32(r) % 2000;
    default: return rng_next32(r) % 20000;
    }
}

/* ---- per-round state ---------------------------------------------------- */

#define MAX_RACERS 96
#define MAX_RACES 12
/* Sub-future ids: at most two per race, plus slack. */
#define MAX_IDS (MAX_RACERS * MAX_RACES * 2 + 64)
#define ABORT_THREADS 2

typedef struct round_state {
    uint64_t seed;
    weft_rt *rt; /* for the foreign threads' sleeps */
    unsigned nracers;
    bool shutdown_mid;
    _Atomic bool shutting_down; /* set (release) just before weft_rt_shutdown */
    _Atomic bool over;          /* foreign aborters stop */

    /* Join handles: written by the main thread before `published` counts
     * them (release); aborted through from any thread; polled and dropped
     * by the main thread once no other thread uses them. */
    weft_join joins[MAX_RACERS];
    _Atomic unsigned published;
    unsigned nraces[MAX_RACERS]; /* what each racer will run, if not cut short */

    _Atomic uint8_t racer_drops[MAX_RACERS];
    _Atomic uint8_t racer_done[MAX_RACERS];
    _Atomic uint8_t aborted[MAX_RACERS];

    _Atomic uint32_t ids; /* sub-future ids handed out */
    _Atomic uint8_t drops[MAX_IDS];

    /* Events, this round's and the run's (the summary line). */
    stress_counter races_started, sleep_wins, loop_wins, tmo_ok, tmo_expired, sleeps_alone,
        cut_short, spinning_loops, foreign_sleeps;
    stress_counter aborts_task, aborts_foreign, racers_completed, racers_cancelled;
    stress_counter rounds_shut_down, racers, sub_futures;

    /* Progress, for the main thread to wait on. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned dropped;     /* racers dropped */
    uint64_t races_ended; /* races finished or cut short */
} round_state;

static round_state g_rs = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void progress_add(unsigned dropped, uint64_t races)
{
    pthread_mutex_lock(&g_rs.lock);
    g_rs.dropped += dropped;
    g_rs.races_ended += races;
    pthread_cond_broadcast(&g_rs.cond);
    pthread_mutex_unlock(&g_rs.lock);
}

static uint32_t new_id(void)
{
    uint32_t id = atomic_fetch_add_explicit(&g_rs.ids, 1, memory_order_relaxed);
    STRESS_ENSURE(id < MAX_IDS, "more than %u sub-futures in a round", (unsigned)MAX_IDS);
    return id;
}

static void note_drop(uint32_t id, const char *what)
{
    stress_drop_once(&g_rs.drops[id], what, id);
}

static bool dropped_once(uint32_t id)
{
    return atomic_load_explicit(&g_rs.drops[id], memory_order_acquire) == 1;
}

/* Abort racer `victim` through its join handle. */
static void abort_racer(unsigned victim, stress_counter *counter)
{
    atomic_store_explicit(&g_rs.aborted[victim], 1, memory_order_release);
    weft_join_abort(&g_rs.joins[victim]);
    stress_count(counter);
}

/* ---- a yield loop ------------------------------------------------------- */

/* PENDING `left` times (waking itself: it goes to the back of the queue),
 * then READY with `value`; every poll first spins for `spin`. */
typedef struct yloop {
    weft_future base;
    uint32_t id, value;
    unsigned left;
    weft_duration spin;
} yloop;

static weft_poll yloop_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(yloop, y);
    if (y->spin) {
        weft_instant end = weft_now() + y->spin;
        while (weft_now() < end)
            ;
    }
    if (y->left > 0) {
        y->left--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    memcpy(out, &y->value, sizeof y->value);
    return WEFT_READY;
}

static void yloop_drop(weft_future *f)
{
    note_drop(((yloop *)f)->id, "yield loop");
}

static const weft_future_ops yloop_ops = { "yield_loop", sizeof(uint32_t), yloop_poll,
                                           yloop_drop, NULL };

static void yloop_init(yloop *y, uint64_t *r)
{
    weft_future_init(&y->base, &yloop_ops, WEFT_F_SEND);
    y->id = new_id();
    y->spin = random_spin(r);
    y->left = random_yields(r, y->spin);
    if (y->spin)
        stress_count(&g_rs.spinning_loops);
    y->value = (uint32_t)mix64(y->id) | 1u;
}

/* ---- a counted sleep ---------------------------------------------------- */

typedef struct csleep {
    weft_future base;
    uint32_t id;
    weft_sleep s;
} csleep;

static weft_poll csleep_poll(weft_future *f, weft_cx *cx, void *out)
{
    return weft_future_poll(&((csleep *)f)->s.base, cx, out);
}

static void csleep_drop(weft_future *f)
{
    csleep *c = (csleep *)f;
    weft_future_drop(&c->s.base);
    note_drop(c->id, "sleep");
}

static const weft_future_ops csleep_ops = { "counted_sleep", 0, csleep_poll, csleep_drop, NULL };

static void csleep_init(csleep *c, weft_duration d)
{
    weft_future_init(&c->base, &csleep_ops, WEFT_F_SEND);
    c->id = new_id();
    weft_sleep_init(&c->s, d);
}

/* ---- a counted timeout around a yield loop ------------------------------ */

/* The timeout keeps a pointer to its inner future, so both live here,
 * initialised in place inside the racer's pinned state. */
typedef struct ctimeout {
    weft_future base;
    uint32_t id;
    weft_timeout t;
    yloop inner;
} ctimeout;

static weft_poll ctimeout_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(ctimeout, c);
    uint32_t v = 0xdeadbeefu;
    if (weft_future_poll(&c->t.base, cx, &v) == WEFT_PENDING)
        return WEFT_PENDING;
    /* Whichever way it ended, the inner future is gone, exactly once. */
    STRESS_ENSURE(dropped_once(c->inner.id), "timeout %u finished without dropping its inner %u once",
           c->id, c->inner.id);
    if (c->t.status == 0) {
        STRESS_ENSURE(v == c->inner.value, "timeout %u: output %08x, inner's %08x", c->id, v,
               c->inner.value);
        stress_count(&g_rs.tmo_ok);
    } else {
        STRESS_ENSURE(c->t.status == -ETIMEDOUT, "timeout %u: status %d", c->id, c->t.status);
        STRESS_ENSURE(v == 0, "timeout %u timed out with output %08x", c->id, v);
        STRESS_ENSURE(weft_now() >= c->t.sleep.deadline, "timeout %u expired before its deadline",
               c->id);
        stress_count(&g_rs.tmo_expired);
    }
    memcpy(out, &v, sizeof v);
    return WEFT_READY;
}

static void ctimeout_drop(weft_future *f)
{
    ctimeout *c = (ctimeout *)f;
    weft_future_drop(&c->t.base);
    STRESS_ENSURE(dropped_once(c->inner.id), "dropped timeout %u left its inner %u dropped %u times",
           c->id, c->inner.id,
           (unsigned)atomic_load_explicit(&g_rs.drops[c->inner.id], memory_order_relaxed));
    note_drop(c->id, "timeout");
}

static const weft_future_ops ctimeout_ops = { "counted_timeout", sizeof(uint32_t),
                                              ctimeout_poll, ctimeout_drop, NULL };

static void ctimeout_init(ctimeout *c, weft_duration d, uint64_t *r)
{
    weft_future_init(&c->base, &ctimeout_ops, WEFT_F_SEND);
    c->id = new_id();
    yloop_init(&c->inner, r);
    if (weft_timeout_init(&c->t, &c->inner.base, d) != 0)
        stress_die("weft_timeout_init refused a valid inner future");
}

/* ---- the racer ---------------------------------------------------------- */

enum { RACE_NONE, RACE_SLEEP_LOOP, RACE_TIMEOUT, RACE_SLEEP };

typedef struct racer {
    weft_future base;
    weft_co co;
    unsigned idx;
    uint64_t rng;
    unsigned nraces, r, kind;
    bool aborter;
    int race;       /* what is in flight (RACE_*) */
    unsigned turn;  /* which of the two is polled first this turn */
    bool sleep_live, loop_live;
    uint32_t scratch;
    csleep cs;
    yloop yl;
    ctimeout ct;
    uint64_t out;
} racer;

static void racer_end_race(racer *s)
{
    s->race = RACE_NONE;
    progress_add(0, 1);
}

/* One turn of a sleep-vs-loop race: poll both (the first alternating),
 * stop at the first READY, drop the loser. Returns true when decided. */
static bool race_turn(racer *s, weft_cx *cx)
{
    for (unsigned k = 0; k < 2; k++) {
        bool sleep_first = ((s->turn + k) & 1u) == 0;
        if (sleep_first) {
            if (weft_future_poll(&s->cs.base, cx, NULL) == WEFT_READY) {
                STRESS_ENSURE(weft_now() >= s->cs.s.deadline, "sleep %u won before its deadline",
                       s->cs.id);
                stress_count(&g_rs.sleep_wins);
                break;
            }
        } else {
            if (weft_future_poll(&s->yl.base, cx, &s->scratch) == WEFT_READY) {
                STRESS_ENSURE(s->scratch == s->yl.value, "yield loop %u: wrong output", s->yl.id);
                stress_count(&g_rs.loop_wins);
                break;
            }
        }
        if (k == 1) {
            s->turn++;
            return false;
        }
    }
    /* Decided: drop both (the winner is done, the loser stops here). */
    s->sleep_live = false;
    weft_future_drop(&s->cs.base);
    s->loop_live = false;
    weft_future_drop(&s->yl.base);
    return true;
}

static weft_poll racer_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(racer, s);
    for (s->r = 0; s->r < s->nraces; s->r++) {
        if (s->aborter && rng_next32(&s->rng) % 3 == 0) {
            unsigned n = atomic_load_explicit(&g_rs.published, memory_order_acquire);
            if (n > 0)
                abort_racer(rng_next32(&s->rng) % n, &g_rs.aborts_task);
        }
        stress_count(&g_rs.races_started);
        s->kind = rng_next32(&s->rng) % 6;
        if (s->kind >= 2) {
            s->race = RACE_SLEEP_LOOP;
            csleep_init(&s->cs, random_duration(&s->rng));
            s->sleep_live = true;
            yloop_init(&s->yl, &s->rng);
            s->loop_live = true;
            s->turn = rng_next32(&s->rng) & 1u;
            /* Pending turns: the sleep holds our waker, the loop woke us. */
            while (!race_turn(s, cx))
                CO_SUSPEND(&s->co);
        } else if (s->kind == 1) {
            /* A sleep with no competitor: a timer that never fires hangs
             * here, and the watchdog reports it. */
            s->race = RACE_SLEEP;
            csleep_init(&s->cs, random_duration(&s->rng));
            WEFT_AWAIT(&s->co, cx, &s->cs.base, NULL);
            STRESS_ENSURE(weft_now() >= s->cs.s.deadline, "sleep %u completed before its deadline",
                   s->cs.id);
            stress_count(&g_rs.sleeps_alone);
        } else {
            s->race = RACE_TIMEOUT;
            ctimeout_init(&s->ct, random_duration(&s->rng), &s->rng);
            WEFT_AWAIT(&s->co, cx, &s->ct.base, &s->scratch);
        }
        racer_end_race(s);
    }
    atomic_store_explicit(&g_rs.racer_done[s->idx], 1, memory_order_release);
    s->out = s->nraces;
    memcpy(out, &s->out, sizeof s->out);
    CO_FUTURE_END(s);
}

static void racer_drop(weft_future *f)
{
    racer *s = (racer *)f;
    weft_co_drop(&s->co); /* an awaited timeout or sleep */
    if (s->sleep_live) {
        s->sleep_live = false;
        weft_future_drop(&s->cs.base);
    }
    if (s->loop_live) {
        s->loop_live = false;
        weft_future_drop(&s->yl.base);
    }
    if (s->race != RACE_NONE) {
        stress_count(&g_rs.cut_short);
        racer_end_race(s);
    }
    stress_drop_once(&g_rs.racer_drops[s->idx], "racer", s->idx);
    if (atomic_load_explicit(&g_rs.racer_done[s->idx], memory_order_acquire))
        stress_count(&g_rs.racers_completed);
    else
        stress_count(&g_rs.racers_cancelled);
    progress_add(1, 0);
}

static const weft_future_ops racer_ops = { "racer", sizeof(uint64_t), racer_poll, racer_drop,
                                           NULL };

static void racer_init(racer *s, unsigned idx, uint64_t round_seed)
{
    co_future_init(s, sizeof *s, &racer_ops, WEFT_F_SEND);
    s->idx = idx;
    s->rng = rng_seed(round_seed ^ ((uint64_t)(idx + 1) * 0x100000001b3ull));
    s->nraces = 1 + rng_next32(&s->rng) % MAX_RACES;
    s->aborter = rng_next32(&s->rng) % 5 == 0;
    s->race = RACE_NONE;
}

/* ---- foreign threads ---------------------------------------------------- */

/* A sleep awaited from off the workers: it arms its timer from this
 * thread, which then fires what is due itself while it waits. */
static void foreign_sleep(uint64_t *rng)
{
    weft_sleep s;
    weft_sleep_init(&s, random_duration(rng));
    int rc = weft_block_on(g_rs.rt, &s.base, NULL, 0);
    STRESS_ENSURE(rc == 0, "foreign sleep: weft_block_on: %s", weft_strerror(rc));
    STRESS_ENSURE(weft_now() >= s.deadline, "foreign sleep completed before its deadline");
    stress_count(&g_rs.foreign_sleeps);
}

/* Aborts random racers at random moments, and sleeps in between. */
static void *aborter_main(void *arg)
{
    uint64_t rng = rng_seed(g_rs.seed ^ (uintptr_t)arg);
    unsigned n = rng_next32(&rng) % 5;
    for (unsigned i = 0; i < n; i++) {
        if (rng_next32(&rng) % 2 == 0)
            foreign_sleep(&rng);
        /* A random moment: a random number of scheduler yields. */
        for (unsigned k = rng_next32(&rng) % 3000; k > 0; k--) {
            if (atomic_load_explicit(&g_rs.over, memory_order_acquire))
                return NULL;
            sched_yield();
        }
        unsigned published = atomic_load_explicit(&g_rs.published, memory_order_acquire);
        if (published > 0)
            abort_racer(rng_next32(&rng) % published, &g_rs.aborts_foreign);
    }
    return NULL;
}

/* ---- a round ------------------------------------------------------------ */

static void round_reset(uint64_t seed)
{
    g_rs.seed = seed;
    uint64_t r = rng_seed(seed);
    g_rs.nracers = 8 + rng_next32(&r) % (MAX_RACERS - 7);
    g_rs.shutdown_mid = rng_next32(&r) % 4 == 0;
    atomic_store_explicit(&g_rs.shutting_down, false, memory_order_relaxed);
    atomic_store_explicit(&g_rs.over, false, memory_order_relaxed);
    atomic_store_explicit(&g_rs.published, 0, memory_order_relaxed);
    atomic_store_explicit(&g_rs.ids, 0, memory_order_relaxed);
    for (unsigned i = 0; i < MAX_RACERS; i++) {
        atomic_store_explicit(&g_rs.racer_drops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_rs.racer_done[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_rs.aborted[i], 0, memory_order_relaxed);
    }
    for (unsigned i = 0; i < MAX_IDS; i++)
        atomic_store_explicit(&g_rs.drops[i], 0, memory_order_relaxed);
    g_rs.dropped = 0;
    g_rs.races_ended = 0;
}

static void run_round(uint64_t seed, const stress_options *opt)
{
    round_reset(seed);
    weft_rt *rt = stress_rt_new(opt);
    g_rs.rt = rt;

    pthread_t aborters[ABORT_THREADS];
    for (uintptr_t i = 0; i < ABORT_THREADS; i++)
        STRESS_ENSURE(pthread_create(&aborters[i], NULL, aborter_main, (void *)(i + 1)) == 0,
               "pthread_create");

    for (unsigned i = 0; i < g_rs.nracers; i++) {
        racer s;
        racer_init(&s, i, seed);
        g_rs.nraces[i] = s.nraces;
        int rc = weft_spawn(rt, &s.base, sizeof s, &g_rs.joins[i]);
        STRESS_ENSURE(rc == 0, "spawn of racer %u: %s", i, weft_strerror(rc));
        /* Release: the join handle is initialised before anyone aborts
         * through it (pairs with the acquire loads of `published`). */
        atomic_store_explicit(&g_rs.published, i + 1, memory_order_release);
    }

    pthread_mutex_lock(&g_rs.lock);
    if (g_rs.shutdown_mid) {
        /* Shut down once some races have ended, with timers in flight. */
        uint64_t r = rng_seed(seed ^ 0x51);
        uint64_t ended = 1 + rng_next32(&r) % (2 * g_rs.nracers);
        while (g_rs.races_ended < ended && g_rs.dropped < g_rs.nracers)
            pthread_cond_wait(&g_rs.cond, &g_rs.lock);
    } else {
        while (g_rs.dropped < g_rs.nracers)
            pthread_cond_wait(&g_rs.cond, &g_rs.lock);
    }
    pthread_mutex_unlock(&g_rs.lock);

    /* Foreign aborters stop before the runtime goes away. */
    atomic_store_explicit(&g_rs.over, true, memory_order_release);
    for (int i = 0; i < ABORT_THREADS; i++)
        pthread_join(aborters[i], NULL);
    if (g_rs.shutdown_mid)
        atomic_store_explicit(&g_rs.shutting_down, true, memory_order_release);
    weft_rt_shutdown(rt);

    /* Everything was dropped, once. */
    pthread_mutex_lock(&g_rs.lock);
    unsigned dropped = g_rs.dropped;
    pthread_mutex_unlock(&g_rs.lock);
    STRESS_ENSURE(dropped == g_rs.nracers, "%u of %u racers dropped after shutdown", dropped,
           g_rs.nracers);
    uint32_t ids = atomic_load_explicit(&g_rs.ids, memory_order_acquire);
    for (uint32_t id = 0; id < ids; id++)
        STRESS_ENSURE(dropped_once(id), "sub-future %u dropped %u times", id,
               (unsigned)atomic_load_explicit(&g_rs.drops[id], memory_order_relaxed));

    /* Join handles outlive the runtime; each agrees with its racer. */
    for (unsigned i = 0; i < g_rs.nracers; i++) {
        weft_join *j = &g_rs.joins[i];
        uint64_t out;
        stress_join_finished(j, "racer", i, &out);
        bool done = atomic_load_explicit(&g_rs.racer_done[i], memory_order_acquire);
        bool may_cancel =
            atomic_load_explicit(&g_rs.aborted[i], memory_order_acquire) || g_rs.shutdown_mid;
        stress_check_join("main", "racer", i, j->status, out, done, g_rs.nraces[i], may_cancel);
        weft_future_drop(&j->base);
    }

    uint64_t started = stress_load(&g_rs.races_started), sw = stress_load(&g_rs.sleep_wins),
             lw = stress_load(&g_rs.loop_wins), tok = stress_load(&g_rs.tmo_ok),
             tex = stress_load(&g_rs.tmo_expired), sa = stress_load(&g_rs.sleeps_alone),
             cut = stress_load(&g_rs.cut_short);
    STRESS_ENSURE(started == sw + lw + tok + tex + sa + cut,
           "races: %" PRIu64 " started != %" PRIu64 " sleep wins + %" PRIu64
           " loop wins + %" PRIu64 " timeouts ok + %" PRIu64 " expired + %" PRIu64
           " lone sleeps + %" PRIu64 " cut short",
           started, sw, lw, tok, tex, sa, cut);
    uint64_t comp = stress_load(&g_rs.racers_completed), canc = stress_load(&g_rs.racers_cancelled);
    STRESS_ENSURE(comp + canc == g_rs.nracers, "racers: %" PRIu64 " completed + %" PRIu64
           " cancelled != %u spawned", comp, canc, g_rs.nracers);

    stress_count_n(&g_rs.rounds_shut_down, g_rs.shutdown_mid);
    stress_count_n(&g_rs.racers, g_rs.nracers);
    stress_count_n(&g_rs.sub_futures, ids);
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g_rs.rounds_shut_down, &g_rs.racers, &g_rs.racers_completed, &g_rs.racers_cancelled,
        &g_rs.races_started, &g_rs.sleep_wins, &g_rs.loop_wins, &g_rs.tmo_ok, &g_rs.tmo_expired,
        &g_rs.sleeps_alone, &g_rs.cut_short, &g_rs.aborts_task, &g_rs.aborts_foreign,
        &g_rs.sub_futures, &g_rs.spinning_loops, &g_rs.foreign_sleeps,
    };
    const stress_program p = {
        "stress_timer_race", run_round, counters, sizeof counters / sizeof counters[0],
        "shut_down_mid_flight racers completed cancelled races sleep_wins loop_wins "
        "timeouts_ok timeouts_expired lone_sleeps cut_short aborts_task aborts_foreign "
        "sub_futures spinning_loops foreign_sleeps",
    };
    return stress_main(argc, argv, &p);
}
