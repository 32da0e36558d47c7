/* Tests of sync/mutex.c: weft_mutex, its lock future, try_lock, unlock
 * through the guard and the blocking form. By hand (one poll at a time,
 * counting wakers) for the exact protocol: barging, a woken waiter that
 * loses the race going back to the front, the starvation hand-off, and
 * what each kind of dropped lock future hands on. On the two-worker
 * runtime and on the sim (200 seeds, chaos on) for mutual exclusion and
 * exact counts; on virtual time for fairness: a waiter is not passed over
 * forever by a task that relocks in a loop. From foreign threads for the
 * blocking form. And the cancel sweep of the lock future. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "sync/waitq.h"
#include "support/counting_waker.h"
#include "support/poll.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "support/wait.h"

/* The state word's fields (sync/mutex.c). */
#define S_LOCKED 1u
#define S_WOKEN 2u
#define S_STARVING 4u
#define S_WAITERS(s) ((s) >> 3)

static uint32_t state_of(weft_mutex *m)
{
    return weft_atomic_load_acquire(&m->state_);
}

static weft_mutex_lock lock_of(weft_mutex *m)
{
    weft_mutex_lock l;
    assert_int_equal(weft_mutex_lock_init(&l, m), 0);
    return l;
}

/* ---- by hand --------------------------------------------------------------------------------- */

static void test_uncontended_lock_is_ready_at_once_and_unlock_frees_it(void **state)
{
    (void)state;
    weft_mutex m;
    weft_mutex_init(&m);
    counting_waker c;
    cw_init(&c);
    weft_waker wk = cw_waker(&c);
    weft_mutex_lock l = lock_of(&m);
    weft_mutex_guard g = { NULL };
    assert_int_equal(poll_with(&l.base, &wk, &g), WEFT_READY);
    weft_future_drop(&l.base);
    assert_ptr_equal(g.mutex, &m);
    assert_int_equal(state_of(&m), S_LOCKED);
    assert_int_equal(weft_mutex_unlock(&g), 0);
    assert_null(g.mutex);
    assert_int_equal(state_of(&m), 0);
    assert_int_equal(weft_atomic_load_relaxed(&c.clones), 0); /* never queued */
    weft_mutex_fini(&m);
}

static void test_try_lock_fails_while_held_and_succeeds_once_free(void **state)
{
    (void)state;
    weft_mutex m;
    weft_mutex_init(&m);
    weft_mutex_guard a, b = { NULL };
    assert_int_equal(weft_mutex_try_lock(&m, &a), 0);
    assert_int_equal(weft_mutex_try_lock(&m, &b), -EAGAIN);
    assert_null(b.mutex);
    assert_int_equal(weft_mutex_unlock(&a), 0);
    assert_int_equal(weft_mutex_try_lock(&m, &b), 0);
    assert_int_equal(weft_mutex_unlock(&b), 0);
    weft_mutex_fini(&m);
}

static void test_misuse_is_reported_and_refused_without_harm(void **state)
{
    (void)state;
    weft_mutex m;
    weft_mutex_init(&m);
    weft_mutex_guard g, copy, empty = { NULL };
    int before = misuse_count();
    assert_int_equal(weft_mutex_unlock(&empty), -EINVAL);
    assert_misuse_since(before, 1, "empty guard");
    assert_int_equal(weft_mutex_unlock(NULL), -EINVAL);
    assert_int_equal(weft_mutex_try_lock(NULL, &g), -EINVAL);
    assert_int_equal(weft_mutex_try_lock(&m, NULL), -EINVAL);
    weft_mutex_lock l;
    assert_int_equal(weft_mutex_lock_init(&l, NULL), -EINVAL);
    assert_int_equal(weft_mutex_lock_init(NULL, &m), -EINVAL);
    assert_int_equal(weft_mutex_lock_blocking(NULL, &g), -EINVAL);
    assert_misuse_since(before, 7, "NULL");

    /* Unlocked twice: through the guard (emptied), through a copy. */
    assert_int_equal(weft_mutex_try_lock(&m, &g), 0);
    copy = g;
    assert_int_equal(weft_mutex_unlock(&g), 0);
    before = misuse_count();
    assert_int_equal(weft_mutex_unlock(&g), -EINVAL);
    assert_int_equal(weft_mutex_unlock(&copy), -EINVAL);
    assert_misuse_since(before, 2, "not locked");
    assert_int_equal(state_of(&m), 0); /* untouched */

    /* Finalised while locked. */
    assert_int_equal(weft_mutex_try_lock(&m, &g), 0);
    before = misuse_count();
    weft_mutex_fini(&m);
    assert_misuse_since(before, 1, "still locked");
    assert_int_equal(weft_mutex_unlock(&g), 0);
    weft_mutex_fini(&m);
}

/* A holder, and waiters B and C queued in that order. */
typedef struct trio {
    weft_mutex m;
    weft_mutex_guard held;
    counting_waker cb, cc;
    weft_waker wb, wc;
    weft_mutex_lock b, c;
    weft_mutex_guard gb, gc;
} trio;

static void trio_start(trio *t)
{
    weft_mutex_init(&t->m);
    assert_int_equal(weft_mutex_try_lock(&t->m, &t->held), 0);
    cw_init(&t->cb);
    cw_init(&t->cc);
    t->wb = cw_waker(&t->cb);
    t->wc = cw_waker(&t->cc);
    t->b = lock_of(&t->m);
    t->c = lock_of(&t->m);
    t->gb.mutex = t->gc.mutex = NULL;
    assert_int_equal(poll_with(&t->b.base, &t->wb, &t->gb), WEFT_PENDING);
    assert_int_equal(poll_with(&t->c.base, &t->wc, &t->gc), WEFT_PENDING);
    assert_int_equal(state_of(&t->m), S_LOCKED | 2u << 3);
    assert_ptr_equal(weft__waitq_front(&t->m.q_), &t->b.waiter_);
}

static void test_unlock_wakes_the_oldest_waiter_to_retry(void **state)
{
    (void)state;
    trio t;
    trio_start(&t);
    /* Polled again while queued: still pending, same waker kept. */
    assert_int_equal(poll_with(&t.b.base, &t.wb, &t.gb), WEFT_PENDING);
    assert_int_equal(weft_atomic_load_relaxed(&t.cb.clones), 1);
    assert_int_equal(weft_mutex_unlock(&t.held), 0);
    /* Released, B taken off the queue and woken (WOKEN): C is not. */
    assert_int_equal(state_of(&t.m), S_WOKEN | 1u << 3);
    assert_int_equal(cw_woken(&t.cb), 1);
    assert_int_equal(cw_woken(&t.cc), 0);
    assert_int_equal(poll_with(&t.b.base, &t.wb, &t.gb), WEFT_READY);
    assert_ptr_equal(t.gb.mutex, &t.m);
    assert_int_equal(state_of(&t.m), S_LOCKED | 1u << 3);
    assert_int_equal(weft_mutex_unlock(&t.gb), 0);
    assert_int_equal(cw_woken(&t.cc), 1);
    assert_int_equal(poll_with(&t.c.base, &t.wc, &t.gc), WEFT_READY);
    assert_int_equal(weft_mutex_unlock(&t.gc), 0);
    assert_int_equal(state_of(&t.m), 0);
    weft_future_drop(&t.b.base);
    weft_future_drop(&t.c.base);
    assert_int_equal(cw_outstanding(&t.cb), 0);
    assert_int_equal(cw_outstanding(&t.cc), 0);
    weft_mutex_fini(&t.m);
}

static void test_a_woken_waiter_that_loses_the_race_goes_back_to_the_front(void **state)
{
    (void)state;
    trio t;
    trio_start(&t);
    assert_int_equal(weft_mutex_unlock(&t.held), 0);
    /* A running task barges in before B runs: no task switch for it. */
    weft_mutex_guard d;
    assert_int_equal(weft_mutex_try_lock(&t.m, &d), 0);
    assert_int_equal(poll_with(&t.b.base, &t.wb, &t.gb), WEFT_PENDING);
    assert_ptr_equal(weft__waitq_front(&t.m.q_), &t.b.waiter_);
    assert_int_equal(state_of(&t.m), S_LOCKED | 2u << 3); /* WOKEN given back */
    assert_int_equal(weft_mutex_unlock(&d), 0);
    assert_int_equal(cw_woken(&t.cb), 2);
    assert_int_equal(cw_woken(&t.cc), 0);
    assert_int_equal(poll_with(&t.b.base, &t.wb, &t.gb), WEFT_READY);
    assert_int_equal(weft_mutex_unlock(&t.gb), 0);
    assert_int_equal(poll_with(&t.c.base, &t.wc, &t.gc), WEFT_READY);
    assert_int_equal(weft_mutex_unlock(&t.gc), 0);
    weft_future_drop(&t.b.base);
    weft_future_drop(&t.c.base);
    assert_int_equal(state_of(&t.m), 0);
    weft_mutex_fini(&t.m);
}

static void test_a_dropped_queued_waiter_unlinks_and_releases_its_waker(void **state)
{
    (void)state;
    trio t;
    trio_start(&t);
    weft_future_drop(&t.b.base);
    assert_int_equal(cw_outstanding(&t.cb), 0);
    assert_int_equal(state_of(&t.m), S_LOCKED | 1u << 3);
    assert_ptr_equal(weft__waitq_front(&t.m.q_), &t.c.waiter_);
    assert_int_equal(weft_mutex_unlock(&t.held), 0);
    assert_int_equal(cw_woken(&t.cc), 1);
    assert_int_equal(poll_with(&t.c.base, &t.wc, &t.gc), WEFT_READY);
    assert_int_equal(weft_mutex_unlock(&t.gc), 0);
    weft_future_drop(&t.c.base);
    assert_int_equal(state_of(&t.m), 0);
    assert_true(weft__waitq_empty(&t.m.q_));
    weft_mutex_fini(&t.m);
}

static void test_a_dropped_woken_waiter_passes_the_wake_on(void **state)
{
    (void)state;
    trio t;
    trio_start(&t);
    assert_int_equal(weft_mutex_unlock(&t.held), 0);
    assert_int_equal(cw_woken(&t.cb), 1);
    /* B was woken to retry and is dropped before it does: C must be woken
     * in its place, or C would wait on a free mutex forever. */
    weft_future_drop(&t.b.base);
    assert_int_equal(cw_woken(&t.cc), 1);
    assert_int_equal(state_of(&t.m), S_WOKEN);
    assert_int_equal(poll_with(&t.c.base, &t.wc, &t.gc), WEFT_READY);
    assert_int_equal(weft_mutex_unlock(&t.gc), 0);
    weft_future_drop(&t.c.base);
    assert_int_equal(state_of(&t.m), 0);
    weft_mutex_fini(&t.m);
}

/* B has waited over 1 ms and loses a retry to a barger: it queues at the
 * front and turns the mutex to starvation mode; the barger's unlock hands
 * the mutex to B (it stays LOCKED, nobody can take it in between). */
static void starve_b(trio *t)
{
    t->b.since_ -= WEFT_MS(2); /* as if queued 2 ms earlier */
    assert_int_equal(weft_mutex_unlock(&t->held), 0);
    weft_mutex_guard d;
    assert_int_equal(weft_mutex_try_lock(&t->m, &d), 0);
    assert_int_equal(poll_with(&t->b.base, &t->wb, &t->gb), WEFT_PENDING);
    assert_int_equal(state_of(&t->m), S_LOCKED | S_STARVING | 2u << 3);
    assert_int_equal(weft_mutex_unlock(&d), 0);
    /* Handed to B (C is still queued and has not waited 1 ms). */
    assert_int_equal(state_of(&t->m), S_LOCKED | S_STARVING | 1u << 3);
    assert_int_equal(cw_woken(&t->cb), 2);
    weft_mutex_guard e;
    assert_int_equal(weft_mutex_try_lock(&t->m, &e), -EAGAIN);
}

static void test_a_starving_waiter_is_handed_the_mutex_and_nobody_barges(void **state)
{
    (void)state;
    trio t;
    trio_start(&t);
    starve_b(&t);
    assert_int_equal(poll_with(&t.b.base, &t.wb, &t.gb), WEFT_READY);
    assert_ptr_equal(t.gb.mutex, &t.m);
    assert_int_equal(weft_mutex_unlock(&t.gb), 0);
    /* C waited less than 1 ms: handed the mutex, starvation mode ends. */
    assert_int_equal(state_of(&t.m), S_LOCKED);
    assert_int_equal(poll_with(&t.c.base, &t.wc, &t.gc), WEFT_READY);
    assert_int_equal(weft_mutex_unlock(&t.gc), 0);
    assert_int_equal(state_of(&t.m), 0);
    weft_future_drop(&t.b.base);
    weft_future_drop(&t.c.base);
    weft_mutex_fini(&t.m);
}

static void test_a_dropped_waiter_handed_the_mutex_hands_it_on(void **state)
{
    (void)state;
    trio t;
    trio_start(&t);
    starve_b(&t);
    /* B is dropped holding the mutex it never saw: C gets it. */
    weft_future_drop(&t.b.base);
    assert_int_equal(cw_woken(&t.cc), 1);
    assert_int_equal(state_of(&t.m), S_LOCKED);
    assert_int_equal(poll_with(&t.c.base, &t.wc, &t.gc), WEFT_READY);
    assert_int_equal(weft_mutex_unlock(&t.gc), 0);
    weft_future_drop(&t.c.base);
    assert_int_equal(state_of(&t.m), 0);
    assert_int_equal(cw_outstanding(&t.cb), 0);
    weft_mutex_fini(&t.m);
}

/* ---- many tasks ------------------------------------------------------------------------------- */

typedef struct shared {
    weft_mutex m;
    _Atomic int inside;    /* holders right now: must never exceed 1 */
    _Atomic int overlaps;  /* times it did */
    uint64_t counter;      /* plain: only ever touched under the mutex */
} shared;

static void shared_init(shared *sh)
{
    weft_mutex_init(&sh->m);
    weft_atomic_init(&sh->inside, 0);
    weft_atomic_init(&sh->overlaps, 0);
    sh->counter = 0;
}

static void enter(shared *sh)
{
    if (weft_atomic_fetch_add_relaxed(&sh->inside, 1) != 0)
        weft_atomic_fetch_add_relaxed(&sh->overlaps, 1);
}

static void leave(shared *sh)
{
    sh->counter++;
    weft_atomic_fetch_sub_relaxed(&sh->inside, 1);
}

/* Locks, counts and unlocks `iters` times; with `yield_inside`, yields
 * while holding the mutex so the others queue behind it. */
typedef struct locker {
    weft_future base;
    weft_co co;
    shared *sh;
    unsigned i, iters;
    bool yield_inside;
    weft_mutex_lock lk;
    weft_mutex_guard g;
    weft_yield y;
} locker;

WEFT_ASYNC_FN(locker, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->iters; self->i++) {
        if (weft_mutex_lock_init(&self->lk, &self->sh->m) != 0)
            WEFT_FN_RETURN(-EINVAL);
        WEFT_FN_AWAIT(&self->lk, &self->g);
        enter(self->sh);
        if (self->yield_inside) {
            weft_yield_init(&self->y);
            WEFT_FN_AWAIT(&self->y, NULL);
        }
        leave(self->sh);
        if (weft_mutex_unlock(&self->g) != 0)
            WEFT_FN_RETURN(-EPROTO);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void run_lockers(weft_rt *rt, shared *sh, unsigned tasks, unsigned iters, bool yield_inside)
{
    weft_join j[64];
    assert_true(tasks <= 64);
    for (unsigned i = 0; i < tasks; i++)
        assert_int_equal(WEFT_SPAWN(rt, &j[i],
                                    &(locker){ WEFT_FN_INIT(locker, WEFT_F_SEND), .sh = sh,
                                               .iters = iters, .yield_inside = yield_inside }),
                         0);
    for (unsigned i = 0; i < tasks; i++) {
        int out = -1;
        assert_int_equal(join_blocking(rt, &j[i], &out, sizeof out), 0);
        assert_int_equal(out, 0);
    }
}

static void test_contending_tasks_exclude_each_other_and_count_exactly(void **state)
{
    (void)state;
    static shared sh;
    shared_init(&sh);
    run_lockers(g_rt, &sh, 50, 2000, false);
    assert_int_equal(sh.counter, 50 * 2000);
    run_lockers(g_rt, &sh, 20, 200, true);
    assert_int_equal(sh.counter, 50 * 2000 + 20 * 200);
    assert_int_equal(weft_atomic_load_relaxed(&sh.overlaps), 0);
    assert_int_equal(state_of(&sh.m), 0);
    weft_mutex_fini(&sh.m);
}

static void test_contending_tasks_on_the_sim_with_chaos_over_200_seeds(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    for (uint64_t seed = 1; seed <= 200; seed++) {
        weft_sim_options o = sim_options(seed);
        o.spurious_wake = 0.3;
        o.leaf_pending = 0.3;
        weft_rt *rt = sim_start(&o);
        shared sh;
        shared_init(&sh);
        run_lockers(rt, &sh, 6, 20, seed & 1);
        SIM_ASSERT(rt, sh.counter == 6 * 20);
        SIM_ASSERT(rt, weft_atomic_load_relaxed(&sh.overlaps) == 0);
        SIM_ASSERT(rt, state_of(&sh.m) == 0);
        SIM_ASSERT(rt, weft__waitq_empty(&sh.m.q_));
        /* Without yields, the lock futures are the only leaves: chaos
         * reached them (their poll asks weft__chaos_pending first). */
        if (!(seed & 1))
            SIM_ASSERT(rt, sim_stats(rt).leaf_pendings > 0);
        weft_rt_shutdown(rt);
        weft_mutex_fini(&sh.m);
    }
}

/* ---- fairness, on virtual time ---------------------------------------------------------------- */

/* What a barger shows the others (it is copied into its task). */
typedef struct barger_view {
    _Atomic unsigned done; /* critical sections finished */
    _Atomic bool holding;  /* it has held the mutex at least once */
} barger_view;

/* Relocks at once after every unlock, holding the mutex 1 ms each time:
 * without a starvation mode it would take the mutex every time, since the
 * waiter it wakes always comes too late. */
typedef struct barger {
    weft_future base;
    weft_co co;
    shared *sh;
    barger_view *v;
    unsigned i, iters;
    weft_duration hold; /* 0: 1 ms */
    weft_mutex_lock lk;
    weft_mutex_guard g;
    weft_sleep s;
} barger;

WEFT_ASYNC_FN(barger, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->iters; self->i++) {
        if (weft_mutex_lock_init(&self->lk, &self->sh->m) != 0)
            WEFT_FN_RETURN(-EINVAL);
        WEFT_FN_AWAIT(&self->lk, &self->g);
        weft_atomic_store_relaxed(&self->v->holding, true);
        enter(self->sh);
        weft_sleep_init(&self->s, self->hold ? self->hold : WEFT_MS(1));
        WEFT_FN_AWAIT(&self->s, NULL);
        leave(self->sh);
        weft_atomic_fetch_add_relaxed(&self->v->done, 1);
        if (weft_mutex_unlock(&self->g) != 0)
            WEFT_FN_RETURN(-EPROTO);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* Waits until the barger holds the mutex, then locks it once; outputs
 * how many critical sections the barger had finished by then. */
typedef struct latecomer {
    weft_future base;
    weft_co co;
    shared *sh;
    barger_view *v;
    weft_mutex_lock lk;
    weft_mutex_guard g;
    unsigned passed;
} latecomer;

WEFT_ASYNC_FN(latecomer, unsigned)
{
    WEFT_FN_BEGIN;
    while (!weft_atomic_load_relaxed(&self->v->holding))
        WEFT_FN_YIELD;
    if (weft_mutex_lock_init(&self->lk, &self->sh->m) != 0)
        WEFT_FN_RETURN(~0u);
    WEFT_FN_AWAIT(&self->lk, &self->g);
    self->passed = weft_atomic_load_relaxed(&self->v->done);
    enter(self->sh);
    leave(self->sh);
    if (weft_mutex_unlock(&self->g) != 0)
        WEFT_FN_RETURN(~0u);
    WEFT_FN_RETURN(self->passed);
    WEFT_FN_END;
}

/* Once it has waited 1 ms, the latecomer turns the mutex to hand-off: it
 * gets it within a few of the barger's holds, never after all of them. */
static void test_a_waiter_is_not_passed_over_forever_by_a_relocking_task(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    enum { ITERS = 100 };
    for (uint64_t seed = 1; seed <= 50; seed++) {
        weft_sim_options o = sim_options(seed);
        if (seed > 25) {
            o.spurious_wake = 0.3;
            o.leaf_pending = 0.3;
        }
        weft_rt *rt = sim_start(&o);
        shared sh;
        shared_init(&sh);
        barger_view v;
        weft_atomic_init(&v.done, 0u);
        weft_atomic_init(&v.holding, false);
        weft_join jb;
        assert_int_equal(WEFT_SPAWN(rt, &jb,
                                    &(barger){ WEFT_FN_INIT(barger, WEFT_F_SEND), .sh = &sh,
                                               .v = &v, .iters = ITERS }),
                         0);
        latecomer lc = { WEFT_FN_INIT(latecomer, WEFT_F_SEND), .sh = &sh, .v = &v };
        unsigned passed = ~0u;
        assert_int_equal(weft_block_on(rt, &lc.base, &passed, sizeof passed), 0);
        int rb = -1;
        assert_int_equal(join_blocking(rt, &jb, &rb, sizeof rb), 0);
        SIM_ASSERT(rt, rb == 0);
        SIM_ASSERT(rt, passed <= 3);
        SIM_ASSERT(rt, sh.counter == ITERS + 1);
        SIM_ASSERT(rt, weft_atomic_load_relaxed(&sh.overlaps) == 0);
        weft_rt_shutdown(rt);
        weft_mutex_fini(&sh.m);
    }
}

/* ---- blocking form, foreign threads ------------------------------------------------------------ */

typedef struct blocker {
    shared *sh;
    unsigned iters;
    int rc;
    _Atomic bool done;
} blocker;

static void *blocker_main(void *arg)
{
    blocker *b = arg;
    b->rc = 0;
    for (unsigned i = 0; i < b->iters && b->rc == 0; i++) {
        weft_mutex_guard g;
        b->rc = weft_mutex_lock_blocking(&b->sh->m, &g);
        if (b->rc != 0)
            break;
        enter(b->sh);
        leave(b->sh);
        b->rc = weft_mutex_unlock(&g);
    }
    weft_atomic_store_release(&b->done, true);
    return NULL;
}

static void test_lock_blocking_parks_a_foreign_thread_until_unlocked(void **state)
{
    (void)state;
    static shared sh;
    shared_init(&sh);
    weft_mutex_guard g;
    assert_int_equal(weft_mutex_try_lock(&sh.m, &g), 0);
    blocker b = { .sh = &sh, .iters = 1 };
    weft_atomic_init(&b.done, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocker_main, &b), 0);
    WAIT_UNTIL(S_WAITERS(state_of(&sh.m)) == 1); /* it queued */
    assert_false(weft_atomic_load_acquire(&b.done));
    assert_int_equal(weft_mutex_unlock(&g), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(sh.counter, 1);
    assert_int_equal(state_of(&sh.m), 0);
    weft_mutex_fini(&sh.m);
}

static void lock_blocking_in_a_task(void *arg, void *out)
{
    (void)arg;
    static weft_mutex m;
    weft_mutex_init(&m);
    weft_mutex_guard g = { NULL };
    *(int *)out = weft_mutex_lock_blocking(&m, &g);
    weft_mutex_fini(&m);
}

static void test_lock_blocking_in_a_task_returns_edeadlk(void **state)
{
    (void)state;
    int before = misuse_count();
    int out = 0;
    assert_int_equal(RUN_FN_BLOCKING(g_rt, lock_blocking_in_a_task, &out, sizeof out), 0);
    assert_int_equal(out, -EDEADLK);
    assert_misuse_since(before, 1, "weft_mutex_lock_blocking");
}

static weft_poll lock_blocking_on_the_sim(void *ctx, weft_cx *cx, void *out)
{
    (void)cx;
    weft_mutex_guard g = { NULL };
    *(int *)out = weft_mutex_lock_blocking(ctx, &g);
    return WEFT_READY;
}

static void test_lock_blocking_on_a_sim_thread_returns_edeadlk(void **state)
{
    (void)state;
    weft_mutex m;
    weft_mutex_init(&m);
    weft_poll_fn pf;
    assert_int_equal(weft_poll_fn_init(&pf, lock_blocking_on_the_sim, &m, sizeof(int), 0), 0);
    int out = 0;
    assert_int_equal(weft_block_on(g_rt, &pf.base, &out, sizeof out), 0);
    assert_int_equal(out, -EDEADLK);
    assert_int_equal(state_of(&m), 0);
    weft_mutex_fini(&m);
}

static void test_foreign_threads_and_tasks_share_the_mutex(void **state)
{
    (void)state;
    static shared sh;
    shared_init(&sh);
    blocker b[2] = { { .sh = &sh, .iters = 3000 }, { .sh = &sh, .iters = 3000 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        weft_atomic_init(&b[i].done, false);
        assert_int_equal(pthread_create(&th[i], NULL, blocker_main, &b[i]), 0);
    }
    run_lockers(g_rt, &sh, 20, 500, false);
    run_lockers(g_rt, &sh, 8, 50, true);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(b[i].rc, 0);
    }
    assert_int_equal(sh.counter, 2 * 3000 + 20 * 500 + 8 * 50);
    assert_int_equal(weft_atomic_load_relaxed(&sh.overlaps), 0);
    assert_int_equal(state_of(&sh.m), 0);
    weft_mutex_fini(&sh.m);
}

/* ---- cancel sweep ------------------------------------------------------------------------------- */

/* The lock future under test contends with a barger (three 2 ms holds,
 * relocking at once: the future is woken to retry, loses, turns the mutex
 * to starvation mode and is handed it) and with one more waiter. It is
 * awaited by the latecomer (which waits for the barger to hold the mutex,
 * then locks, counts and unlocks once), since the sweep runs
 * the scenario to its end before the check, and a future that kept the
 * mutex would stall it. Dropped at any poll, it must leave the mutex free
 * once the others finish, its queue empty, no waker of its own anywhere,
 * and both others done. */
typedef struct lock_case {
    shared sh;
    barger_view v;
    weft_join jb, jo;
    latecomer l;
    unsigned out;
} lock_case;

static int lock_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    lock_case *lc = ctx;
    shared_init(&lc->sh);
    weft_atomic_init(&lc->v.done, 0u);
    weft_atomic_init(&lc->v.holding, false);
    int rc = WEFT_SPAWN(rt, &lc->jb,
                        &(barger){ WEFT_FN_INIT(barger, WEFT_F_SEND), .sh = &lc->sh, .v = &lc->v,
                                   .iters = 3, .hold = WEFT_MS(2) });
    if (rc == 0)
        rc = WEFT_SPAWN(rt, &lc->jo,
                        &(locker){ WEFT_FN_INIT(locker, WEFT_F_SEND), .sh = &lc->sh, .iters = 1,
                                   .yield_inside = true });
    lc->l = (latecomer){ WEFT_FN_INIT(latecomer, WEFT_F_SEND), .sh = &lc->sh, .v = &lc->v };
    lc->out = ~0u;
    *fut = &lc->l.base;
    *out = &lc->out;
    return rc;
}

static const char *lock_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    lock_case *lc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) left, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    if (run->completed && lc->out > 3)
        return sweep_say("completed after %u of the barger's holds", lc->out);
    unsigned mine = run->completed ? 1 : 0;
    int sb = -1, so = -1;
    if (join_blocking(rt, &lc->jb, &sb, sizeof sb) != 0 || sb != 0)
        return sweep_say("k=%u: the barger did not finish (%d)", run->k, sb);
    if (join_blocking(rt, &lc->jo, &so, sizeof so) != 0 || so != 0)
        return sweep_say("k=%u: the other waiter did not finish (%d)", run->k, so);
    if (lc->sh.counter != 4 + mine || weft_atomic_load_relaxed(&lc->sh.overlaps) != 0)
        return sweep_say("k=%u: counter %llu, overlaps %d", run->k,
                         (unsigned long long)lc->sh.counter,
                         weft_atomic_load_relaxed(&lc->sh.overlaps));
    uint32_t s = state_of(&lc->sh.m);
    if (s != 0 || !weft__waitq_empty(&lc->sh.m.q_))
        return sweep_say("k=%u: mutex state %#x after everyone finished", run->k, s);
    return sweep_leftovers(rt);
}

static void test_cancel_sweep_mutex_lock(void **state)
{
    (void)state;
    static lock_case lc;
    weft_sweep_case c = { lock_build, lock_check, NULL, &lc };
    weft_sweep_options o = sweep_options(1, 16);
    weft_sweep_result res = sweep_pass(&c, &o);
    /* Some seeds queue it behind the barger and take it through the
     * retry and the hand-off: several await points each. */
    assert_true(res.polls >= 3);
    o = sweep_chaos_options(100, 16, 0.3);
    res = sweep_pass(&c, &o);
    print_message("swept %u runs, up to N=%u\n", res.runs, res.polls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_uncontended_lock_is_ready_at_once_and_unlock_frees_it,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_try_lock_fails_while_held_and_succeeds_once_free,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_is_reported_and_refused_without_harm,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test(test_unlock_wakes_the_oldest_waiter_to_retry),
        cmocka_unit_test(test_a_woken_waiter_that_loses_the_race_goes_back_to_the_front),
        cmocka_unit_test(test_a_dropped_queued_waiter_unlinks_and_releases_its_waker),
        cmocka_unit_test(test_a_dropped_woken_waiter_passes_the_wake_on),
        cmocka_unit_test(test_a_starving_waiter_is_handed_the_mutex_and_nobody_barges),
        cmocka_unit_test(test_a_dropped_waiter_handed_the_mutex_hands_it_on),
        cmocka_unit_test_setup_teardown(test_contending_tasks_exclude_each_other_and_count_exactly,
                                        rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(test_contending_tasks_on_the_sim_with_chaos_over_200_seeds,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_a_waiter_is_not_passed_over_forever_by_a_relocking_task,
                                        sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_lock_blocking_parks_a_foreign_thread_until_unlocked,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_lock_blocking_in_a_task_returns_edeadlk, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_lock_blocking_on_a_sim_thread_returns_edeadlk,
                                        sim_setup_g_rt, rt_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_threads_and_tasks_share_the_mutex, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_sweep_mutex_lock, sim_setup, sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
