/* stress_sync_storm: tasks and foreign threads storming one weft_mutex, one
 * weft_rwlock and one weft_semaphore, with random timeouts and aborts, on
 * a real runtime.
 *
 *   stress_sync_storm [--threads N] [--iters N] [--seed S] [--seconds T]
 *
 * --threads  workers per runtime (default 2)
 * --iters    stop after this many rounds (default 0: only the time box)
 * --seed     the run's seed (default: from the clock); printed first
 * --seconds  time box (default 3)
 *
 * Each round starts a runtime and spawns 8-48 tasks. A task runs 1-40
 * operations; each takes the mutex, a read lock, the write lock or 1-2 of
 * the semaphore's SEM_PERMITS permits, in one of four ways: awaiting the lock future (half of them); awaiting it
 * under a borrowing timeout (weft_timeout_borrow_init) of 0-2 ms, dropping
 * the lock future itself when the timeout expires; under an owning timeout
 * (weft_timeout_init), which drops it; or with try_lock / try_read /
 * try_write / try_acquire. Holding the lock, it yields (a quarter), sleeps 0-0.5 ms (a
 * sixteenth) or does nothing, then counts its critical section and
 * unlocks. A fifth of the tasks abort a random task before a sixteenth of
 * their operations; a foreign thread aborts random tasks at
 * random moments; so lock futures are dropped while queued, after being
 * handed the lock, after being woken to retry, and tasks are dropped while
 * holding a guard (their drop unlocks it, as a guard's owner must). Two
 * more foreign threads take the mutex with weft_mutex_lock_blocking, and
 * the mutex and the rwlock through weft_block_on, some under owning
 * timeouts. A quarter of the rounds shut the runtime down while tasks
 * still wait. Every decision comes from PRNGs derived from the round's
 * seed, so a seed replays the same operations; only the interleavings
 * differ.
 *
 * Invariants (any violation aborts with the seed and round):
 *  - mutual exclusion: never two holders of the mutex; never two writers,
 *    or a writer with readers, in the rwlock; never more than SEM_PERMITS
 *    permits held (counted on entry);
 *  - the mutex's counter equals the critical sections completed under it,
 *    and the rwlock's the write sections (the counters are plain
 *    variables, written only under the locks);
 *  - every task is dropped exactly once, its join agrees with it
 *    (-ECANCELED only after an abort or a shutdown), completed + cancelled
 *    == spawned: every waiter finished;
 *  - afterwards both locks are free with empty queues, and the semaphore
 *    has all SEM_PERMITS permits back and an empty queue: none was lost
 *    to a dropped acquire (weft_*_fini would report a queue left, and
 *    misuse reports are fatal);
 *  - no hang: a lost wake leaves a waiter on a free lock forever, which
 *    the watchdog reports (seconds * 10 + 30 s).
 * Waits for threads are joins and condition variables; the only clock
 * waits are the timers under test and the watchdog's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "weft/weft.h"

#include "stress_common.h"

#define MAX_TASKS 48
#define MAX_OPS 40
#define FOREIGN_OPS 200
#define SEM_PERMITS 3

enum { K_MUTEX, K_READ, K_WRITE, K_SEM };
enum { HOW_AWAIT, HOW_BORROW, HOW_OWN, HOW_TRY };

/* ---- per-round state ---------------------------------------------------- */

typedef struct round_state {
    uint64_t seed;
    weft_rt *rt;
    unsigned ntasks;
    bool shutdown_mid;
    _Atomic bool over; /* foreign threads stop */

    weft_mutex m;
    weft_rwlock rw;
    weft_semaphore sem;
    /* Plain: written only under the mutex / the write lock. */
    uint64_t m_counter, rw_counter;
    _Atomic int m_inside, rw_readers, rw_writers, sem_held;
    _Atomic uint64_t violations;

    weft_join joins[MAX_TASKS];
    _Atomic unsigned published;
    unsigned nops[MAX_TASKS];
    _Atomic uint8_t drops[MAX_TASKS], done[MAX_TASKS], aborted[MAX_TASKS];

    stress_counter m_cs, r_cs, w_cs, s_cs, timeouts, try_fails, aborts_task, aborts_foreign,
        dropped_holding, completed, cancelled, foreign_cs, rounds_shut_down, tasks;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned dropped; /* tasks dropped */
} round_state;

static round_state g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* ---- critical sections --------------------------------------------------- */

/* Enter a section of `kind`; `permits` for K_SEM. */
static void enter(int kind, unsigned permits)
{
    switch (kind) {
    case K_SEM:
        if (atomic_fetch_add_explicit(&g.sem_held, (int)permits, memory_order_relaxed) +
                (int)permits > SEM_PERMITS)
            atomic_fetch_add_explicit(&g.violations, 1, memory_order_relaxed);
        break;
    case K_MUTEX:
        if (atomic_fetch_add_explicit(&g.m_inside, 1, memory_order_relaxed) != 0)
            atomic_fetch_add_explicit(&g.violations, 1, memory_order_relaxed);
        break;
    case K_READ:
        atomic_fetch_add_explicit(&g.rw_readers, 1, memory_order_relaxed);
        if (atomic_load_explicit(&g.rw_writers, memory_order_relaxed) != 0)
            atomic_fetch_add_explicit(&g.violations, 1, memory_order_relaxed);
        break;
    default:
        if (atomic_fetch_add_explicit(&g.rw_writers, 1, memory_order_relaxed) != 0 ||
            atomic_load_explicit(&g.rw_readers, memory_order_relaxed) != 0)
            atomic_fetch_add_explicit(&g.violations, 1, memory_order_relaxed);
        break;
    }
}

/* Leave; `count` when the section completed (not cut short by a drop). */
static void leave(int kind, unsigned permits, bool count)
{
    switch (kind) {
    case K_SEM:
        if (count)
            stress_count(&g.s_cs);
        atomic_fetch_sub_explicit(&g.sem_held, (int)permits, memory_order_relaxed);
        break;
    case K_MUTEX:
        if (count) {
            g.m_counter++;
            stress_count(&g.m_cs);
        }
        atomic_fetch_sub_explicit(&g.m_inside, 1, memory_order_relaxed);
        break;
    case K_READ:
        if (count)
            stress_count(&g.r_cs);
        atomic_fetch_sub_explicit(&g.rw_readers, 1, memory_order_relaxed);
        break;
    default:
        if (count) {
            g.rw_counter++;
            stress_count(&g.w_cs);
        }
        atomic_fetch_sub_explicit(&g.rw_writers, 1, memory_order_relaxed);
        break;
    }
}

/* ---- a task --------------------------------------------------------------- */

typedef struct storm_task {
    weft_future base;
    weft_co co;
    unsigned idx, nops, i;
    uint64_t rng;
    bool aborter;
    int kind, how, inside; /* inside: 0 nothing, 1 yield, 2 sleep */
    bool borrowed_live;    /* the borrowed lock future still needs its drop */
    bool held;             /* holds a guard of `kind` (K_SEM: the permits) */
    unsigned permits;      /* K_SEM: 1 or 2 */
    int sem_status;        /* K_SEM: the acquire's output */
    weft_semaphore_acquire sa;
    weft_mutex_lock ml;
    weft_rwlock_read rr;
    weft_rwlock_write rwr;
    weft_timeout t;
    weft_mutex_guard mg;
    weft_rwlock_read_guard rg;
    weft_rwlock_write_guard wg;
    weft_yield y;
    weft_sleep s;
} storm_task;

static weft_future *lock_future(storm_task *s)
{
    switch (s->kind) {
    case K_MUTEX:
        return &s->ml.base;
    case K_READ:
        return &s->rr.base;
    case K_SEM:
        return &s->sa.base;
    default:
        return &s->rwr.base;
    }
}

static void *guard_of(storm_task *s)
{
    return s->kind == K_MUTEX  ? (void *)&s->mg
           : s->kind == K_READ ? (void *)&s->rg
           : s->kind == K_SEM  ? (void *)&s->sem_status
                               : (void *)&s->wg;
}

static void init_lock_future(storm_task *s)
{
    if (s->kind == K_SEM) {
        weft_semaphore_acquire_init(&s->sa, &g.sem, s->permits);
        return;
    }
    int rc = s->kind == K_MUTEX  ? weft_mutex_lock_init(&s->ml, &g.m)
             : s->kind == K_READ ? weft_rwlock_read_init(&s->rr, &g.rw)
                                 : weft_rwlock_write_init(&s->rwr, &g.rw);
    STRESS_ENSURE(rc == 0, "lock future init: %d", rc);
}

static bool try_take(storm_task *s)
{
    int rc = s->kind == K_SEM    ? weft_semaphore_try_acquire(&g.sem, s->permits)
             : s->kind == K_MUTEX ? weft_mutex_try_lock(&g.m, &s->mg)
             : s->kind == K_READ ? weft_rwlock_try_read(&g.rw, &s->rg)
                                 : weft_rwlock_try_write(&g.rw, &s->wg);
    STRESS_ENSURE(rc == 0 || rc == -EAGAIN, "try: %d", rc);
    return rc == 0;
}

static void unlock_held(storm_task *s)
{
    int rc = s->kind == K_SEM    ? weft_semaphore_release(&g.sem, s->permits)
             : s->kind == K_MUTEX ? weft_mutex_unlock(&s->mg)
             : s->kind == K_READ ? weft_rwlock_read_unlock(&s->rg)
                                 : weft_rwlock_write_unlock(&s->wg);
    STRESS_ENSURE(rc == 0, "unlock: %d", rc);
    s->held = false;
}

static void progress_dropped(void)
{
    pthread_mutex_lock(&g.lock);
    g.dropped++;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

static const stress_abortable g_tasks = { g.joins, g.aborted, &g.published, &g.over };

static void abort_task(unsigned victim, stress_counter *c)
{
    stress_abort_task(&g_tasks, victim, c);
}

static weft_duration random_timeout(uint64_t *r)
{
    uint32_t pick = rng_next32(r);
    return pick % 8 == 0 ? 0 : (weft_duration)rng_next32(r) % (WEFT_MS(2) + 1);
}

static void storm_task_drop(weft_future *f)
{
    storm_task *s = (storm_task *)f;
    weft_co_drop(&s->co); /* the awaited lock future, timeout, yield or sleep */
    if (s->borrowed_live) {
        /* Its borrowing timeout is gone: the lock future is ours to drop,
         * wherever it stands (queued, served, woken). */
        s->borrowed_live = false;
        weft_future_drop(lock_future(s));
    }
    if (s->held) {
        leave(s->kind, s->permits, false);
        unlock_held(s);
        stress_count(&g.dropped_holding);
    }
    stress_drop_once(&g.drops[s->idx], "task", s->idx);
    if (atomic_load_explicit(&g.done[s->idx], memory_order_acquire))
        stress_count(&g.completed);
    else
        stress_count(&g.cancelled);
    progress_dropped();
}

WEFT_ASYNC_FN_WITH_DROP(storm_task, uint64_t)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->nops; self->i++) {
        if (self->aborter && rng_next32(&self->rng) % 16 == 0) {
            unsigned n = atomic_load_explicit(&g.published, memory_order_acquire);
            if (n > 0)
                abort_task(rng_next32(&self->rng) % n, &g.aborts_task);
        }
        self->kind = (int)(rng_next32(&self->rng) % 4);
        self->permits = 1 + rng_next32(&self->rng) % 2;
        self->how = (int)(rng_next32(&self->rng) % 10);
        self->how = self->how < 5 ? HOW_AWAIT : self->how < 7 ? HOW_BORROW
                                                : self->how < 9 ? HOW_OWN : HOW_TRY;
        self->inside = (int)(rng_next32(&self->rng) % 16);
        self->inside = self->inside < 4 ? 1 : self->inside == 4 ? 2 : 0;
        if (self->how == HOW_TRY) {
            self->held = try_take(self);
            if (!self->held)
                stress_count(&g.try_fails);
        } else if (self->how == HOW_AWAIT) {
            init_lock_future(self);
            if (self->kind == K_MUTEX)
                WEFT_FN_AWAIT(&self->ml, &self->mg);
            else if (self->kind == K_READ)
                WEFT_FN_AWAIT(&self->rr, &self->rg);
            else if (self->kind == K_SEM)
                WEFT_FN_AWAIT(&self->sa, &self->sem_status);
            else
                WEFT_FN_AWAIT(&self->rwr, &self->wg);
            self->held = true;
            /* The semaphore is never closed: an acquire always gets. */
            STRESS_ENSURE(self->kind != K_SEM || self->sem_status == 0, "acquire: %d",
                          self->sem_status);
        } else {
            init_lock_future(self);
            int rc;
            if (self->how == HOW_BORROW) {
                self->borrowed_live = true;
                rc = weft_timeout_borrow_init(&self->t, lock_future(self),
                                              random_timeout(&self->rng));
            } else {
                rc = weft_timeout_init(&self->t, lock_future(self), random_timeout(&self->rng));
            }
            STRESS_ENSURE(rc == 0, "timeout init: %d", rc);
            WEFT_FN_AWAIT(&self->t, guard_of(self));
            self->held = self->t.status == 0;
            STRESS_ENSURE(!self->held || self->kind != K_SEM || self->sem_status == 0,
                          "acquire under a timeout: %d", self->sem_status);
            if (!self->held) {
                STRESS_ENSURE(self->t.status == -ETIMEDOUT, "timeout status %d", self->t.status);
                stress_count(&g.timeouts);
            }
            if (self->borrowed_live) {
                /* Finished (drop is then a no-op) or timed out (the drop
                 * cancels the pending lock future). */
                self->borrowed_live = false;
                weft_future_drop(lock_future(self));
            }
        }
        if (!self->held)
            continue;
        enter(self->kind, self->permits);
        if (self->inside == 1) {
            weft_yield_init(&self->y);
            WEFT_FN_AWAIT(&self->y, NULL);
        } else if (self->inside == 2) {
            weft_sleep_init(&self->s, (weft_duration)rng_next32(&self->rng) % (WEFT_US(500) + 1));
            WEFT_FN_AWAIT(&self->s, NULL);
        }
        leave(self->kind, self->permits, true);
        unlock_held(self);
    }
    atomic_store_explicit(&g.done[self->idx], 1, memory_order_release);
    WEFT_FN_RETURN((uint64_t)self->nops);
    WEFT_FN_END;
}

/* ---- foreign threads ------------------------------------------------------ */

/* Takes the mutex (weft_mutex_lock_blocking, or weft_block_on of the lock
 * future, some under an owning timeout) and the rwlock (weft_block_on of a
 * read or write future, some under a timeout). */
static void *locker_main(void *arg)
{
    uint64_t rng = rng_seed(g.seed ^ (uintptr_t)arg);
    for (unsigned i = 0; i < FOREIGN_OPS; i++) {
        if (atomic_load_explicit(&g.over, memory_order_acquire))
            break;
        int kind = (int)(rng_next32(&rng) % 3);
        bool timed = rng_next32(&rng) % 3 == 0;
        struct {
            weft_timeout t;
            weft_mutex_lock ml;
            weft_rwlock_read rr;
            weft_rwlock_write rwr;
        } f;
        weft_mutex_guard mg;
        weft_rwlock_read_guard rg;
        weft_rwlock_write_guard wg;
        void *out = kind == K_MUTEX ? (void *)&mg : kind == K_READ ? (void *)&rg : (void *)&wg;
        int rc;
        if (kind == K_MUTEX && !timed) {
            rc = weft_mutex_lock_blocking(&g.m, &mg);
            STRESS_ENSURE(rc == 0, "weft_mutex_lock_blocking: %s", weft_strerror(rc));
        } else {
            weft_future *lf;
            if (kind == K_MUTEX) {
                rc = weft_mutex_lock_init(&f.ml, &g.m);
                lf = &f.ml.base;
            } else if (kind == K_READ) {
                rc = weft_rwlock_read_init(&f.rr, &g.rw);
                lf = &f.rr.base;
            } else {
                rc = weft_rwlock_write_init(&f.rwr, &g.rw);
                lf = &f.rwr.base;
            }
            STRESS_ENSURE(rc == 0, "init: %d", rc);
            weft_future *top = lf;
            if (timed) {
                rc = weft_timeout_init(&f.t, lf, random_timeout(&rng));
                STRESS_ENSURE(rc == 0, "timeout init: %d", rc);
                top = &f.t.base;
            }
            /* It drops `top` once finished; the timeout's status stays. */
            rc = weft_block_on(g.rt, top, out, kind == K_MUTEX ? sizeof mg : sizeof rg);
            STRESS_ENSURE(rc == 0, "foreign weft_block_on: %s", weft_strerror(rc));
            bool got = !timed || f.t.status == 0;
            if (!got) {
                stress_count(&g.timeouts);
                continue;
            }
        }
        enter(kind, 0);
        for (unsigned k = rng_next32(&rng) % 50; k > 0; k--)
            sched_yield();
        leave(kind, 0, true);
        rc = kind == K_MUTEX  ? weft_mutex_unlock(&mg)
             : kind == K_READ ? weft_rwlock_read_unlock(&rg)
                              : weft_rwlock_write_unlock(&wg);
        STRESS_ENSURE(rc == 0, "foreign unlock: %d", rc);
        stress_count(&g.foreign_cs);
    }
    return NULL;
}

/* Aborts random tasks at random moments. */
static void *aborter_main(void *arg)
{
    stress_abort_at_random(&g_tasks, g.seed ^ (uintptr_t)arg, 6, &g.aborts_foreign);
    return NULL;
}

/* ---- a round ------------------------------------------------------------ */

#define LOCKERS 2

static void round_reset(uint64_t seed)
{
    g.seed = seed;
    uint64_t r = rng_seed(seed);
    g.ntasks = 8 + rng_next32(&r) % (MAX_TASKS - 7);
    g.shutdown_mid = rng_next32(&r) % 4 == 0;
    atomic_store_explicit(&g.over, false, memory_order_relaxed);
    weft_mutex_init(&g.m);
    weft_rwlock_init(&g.rw);
    STRESS_ENSURE(weft_semaphore_init(&g.sem, SEM_PERMITS) == 0, "semaphore init");
    atomic_store_explicit(&g.sem_held, 0, memory_order_relaxed);
    g.m_counter = g.rw_counter = 0;
    atomic_store_explicit(&g.m_inside, 0, memory_order_relaxed);
    atomic_store_explicit(&g.rw_readers, 0, memory_order_relaxed);
    atomic_store_explicit(&g.rw_writers, 0, memory_order_relaxed);
    atomic_store_explicit(&g.violations, 0, memory_order_relaxed);
    atomic_store_explicit(&g.published, 0, memory_order_relaxed);
    for (unsigned i = 0; i < MAX_TASKS; i++) {
        atomic_store_explicit(&g.drops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g.done[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g.aborted[i], 0, memory_order_relaxed);
    }
    g.dropped = 0;
}

static void run_round(uint64_t seed, const stress_options *opt)
{
    round_reset(seed);
    weft_rt *rt = stress_rt_new(opt);
    g.rt = rt;

    pthread_t lockers[LOCKERS], aborter;
    for (uintptr_t i = 0; i < LOCKERS; i++)
        STRESS_ENSURE(pthread_create(&lockers[i], NULL, locker_main, (void *)(i + 1)) == 0,
                      "pthread_create");
    STRESS_ENSURE(pthread_create(&aborter, NULL, aborter_main, (void *)99) == 0, "pthread_create");

    for (unsigned i = 0; i < g.ntasks; i++) {
        storm_task s = { WEFT_FN_INIT(storm_task, WEFT_F_SEND), .idx = i };
        s.rng = rng_seed(seed ^ ((uint64_t)(i + 1) * 0x100000001b3ull));
        s.nops = 1 + rng_next32(&s.rng) % MAX_OPS;
        s.aborter = rng_next32(&s.rng) % 5 == 0;
        g.nops[i] = s.nops;
        int rc = weft_spawn(rt, &s.base, sizeof s, &g.joins[i]);
        STRESS_ENSURE(rc == 0, "spawn of task %u: %s", i, weft_strerror(rc));
        /* Release: the join handle is initialised before anyone aborts
         * through it (pairs with the acquire loads of `published`). */
        atomic_store_explicit(&g.published, i + 1, memory_order_release);
    }

    pthread_mutex_lock(&g.lock);
    if (g.shutdown_mid) {
        uint64_t r = rng_seed(seed ^ 0x51);
        unsigned until = rng_next32(&r) % g.ntasks;
        while (g.dropped < until)
            pthread_cond_wait(&g.cond, &g.lock);
    } else {
        while (g.dropped < g.ntasks)
            pthread_cond_wait(&g.cond, &g.lock);
    }
    pthread_mutex_unlock(&g.lock);

    /* Foreign threads stop (the tasks still running let the lockers
     * finish what they wait for) before the runtime goes away. */
    atomic_store_explicit(&g.over, true, memory_order_release);
    for (int i = 0; i < LOCKERS; i++)
        pthread_join(lockers[i], NULL);
    pthread_join(aborter, NULL);
    weft_rt_shutdown(rt);

    pthread_mutex_lock(&g.lock);
    unsigned dropped = g.dropped;
    pthread_mutex_unlock(&g.lock);
    STRESS_ENSURE(dropped == g.ntasks, "%u of %u tasks dropped after shutdown", dropped, g.ntasks);
    for (unsigned i = 0; i < g.ntasks; i++) {
        weft_join *j = &g.joins[i];
        uint64_t out;
        stress_join_finished(j, "task", i, &out);
        bool done = atomic_load_explicit(&g.done[i], memory_order_acquire);
        bool may_cancel = atomic_load_explicit(&g.aborted[i], memory_order_acquire) || g.shutdown_mid;
        stress_check_join("main", "task", i, j->status, out, done, g.nops[i], may_cancel);
        weft_future_drop(&j->base);
    }

    uint64_t v = atomic_load_explicit(&g.violations, memory_order_relaxed);
    STRESS_ENSURE(v == 0, "%" PRIu64 " exclusion violations", v);
    STRESS_ENSURE(g.m_counter == stress_load(&g.m_cs),
                  "mutex counter %" PRIu64 " != %" PRIu64 " critical sections", g.m_counter,
                  stress_load(&g.m_cs));
    STRESS_ENSURE(g.rw_counter == stress_load(&g.w_cs),
                  "rwlock counter %" PRIu64 " != %" PRIu64 " write sections", g.rw_counter,
                  stress_load(&g.w_cs));
    STRESS_ENSURE(stress_load(&g.completed) + stress_load(&g.cancelled) == g.ntasks,
                  "tasks: %" PRIu64 " completed + %" PRIu64 " cancelled != %u spawned",
                  stress_load(&g.completed), stress_load(&g.cancelled), g.ntasks);
    /* Relaxed: every thread that used them is joined. */
    STRESS_ENSURE(atomic_load_explicit(&g.m.state_, memory_order_relaxed) == 0 && !g.m.q_.head_,
                  "mutex state %#x after the round",
                  (unsigned)atomic_load_explicit(&g.m.state_, memory_order_relaxed));
    STRESS_ENSURE(atomic_load_explicit(&g.rw.state_, memory_order_relaxed) == 0 && !g.rw.q_.head_,
                  "rwlock state %#x after the round",
                  (unsigned)atomic_load_explicit(&g.rw.state_, memory_order_relaxed));
    /* Permit conservation: every acquire that was given permits and then
     * dropped gave them back, and every holder released. */
    STRESS_ENSURE(weft_semaphore_available(&g.sem) == SEM_PERMITS && !g.sem.q_.head_,
                  "semaphore: %zu of %d permits after the round", weft_semaphore_available(&g.sem),
                  SEM_PERMITS);
    weft_mutex_fini(&g.m);
    weft_rwlock_fini(&g.rw);
    weft_semaphore_fini(&g.sem);

    stress_count_n(&g.rounds_shut_down, g.shutdown_mid);
    stress_count_n(&g.tasks, g.ntasks);
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g.rounds_shut_down, &g.tasks, &g.completed, &g.cancelled, &g.m_cs, &g.r_cs, &g.w_cs,
        &g.s_cs, &g.foreign_cs, &g.timeouts, &g.try_fails, &g.aborts_task, &g.aborts_foreign,
        &g.dropped_holding,
    };
    const stress_program p = {
        "stress_sync_storm", run_round, counters, sizeof counters / sizeof counters[0],
        "shut_down_mid_flight tasks completed cancelled mutex_sections read_sections "
        "write_sections semaphore_sections foreign_sections timeouts try_fails aborts_task aborts_foreign "
        "dropped_holding",
    };
    return stress_main(argc, argv, &p);
}
