/* Tests of sync/rwlock.c: weft_rwlock, its read and write futures,
 * try_read / try_write and the unlocks. By hand (one poll at a time,
 * counting wakers) for the admission order: a waiting writer holds back
 * new readers, a run of readers at the front is admitted together (in
 * batches past a wakeset's size), and what a dropped waiter hands on. On
 * the two-worker runtime and on the sim (200 seeds, chaos on) for
 * exclusion — never two writers, never a writer with readers — and exact
 * counts. And the cancel sweeps of both futures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "sync/waitq.h"
#include "support/counting_waker.h"
#include "support/poll.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

/* The state word's fields (sync/rwlock.c). */
#define S_WRITER 1u
#define S_QUEUED 2u
#define S_READERS(n) ((uint32_t)(n) << 2)

static uint32_t state_of(weft_rwlock *rw)
{
    return weft_atomic_load_acquire(&rw->state_);
}

/* A waiting future by hand: a read or a write, its waker and output. */
typedef struct hand {
    bool write;
    weft_rwlock_read r;
    weft_rwlock_write w;
    weft_rwlock_read_guard rg;
    weft_rwlock_write_guard wg;
    counting_waker c;
    weft_waker wk;
} hand;

static void hand_init(hand *h, weft_rwlock *rw, bool write)
{
    h->write = write;
    cw_init(&h->c);
    h->wk = cw_waker(&h->c);
    h->rg.rwlock = NULL;
    h->wg.rwlock = NULL;
    if (write)
        assert_int_equal(weft_rwlock_write_init(&h->w, rw), 0);
    else
        assert_int_equal(weft_rwlock_read_init(&h->r, rw), 0);
}

static weft_poll hand_poll(hand *h)
{
    return h->write ? poll_with(&h->w.base, &h->wk, &h->wg) : poll_with(&h->r.base, &h->wk, &h->rg);
}

static void hand_unlock(hand *h)
{
    if (h->write)
        assert_int_equal(weft_rwlock_write_unlock(&h->wg), 0);
    else
        assert_int_equal(weft_rwlock_read_unlock(&h->rg), 0);
}

static void hand_drop(hand *h)
{
    weft_future_drop(h->write ? &h->w.base : &h->r.base);
    assert_int_equal(cw_outstanding(&h->c), 0);
}

static void test_uncontended_reads_share_and_a_write_excludes(void **state)
{
    (void)state;
    weft_rwlock rw;
    weft_rwlock_init(&rw);
    hand r1, r2, w;
    hand_init(&r1, &rw, false);
    hand_init(&r2, &rw, false);
    hand_init(&w, &rw, true);
    assert_int_equal(hand_poll(&r1), WEFT_READY);
    assert_int_equal(hand_poll(&r2), WEFT_READY);
    assert_ptr_equal(r1.rg.rwlock, &rw);
    assert_int_equal(state_of(&rw), S_READERS(2));
    weft_rwlock_write_guard wg;
    assert_int_equal(weft_rwlock_try_write(&rw, &wg), -EAGAIN);
    hand_unlock(&r1);
    hand_unlock(&r2);
    assert_null(r1.rg.rwlock);
    assert_int_equal(state_of(&rw), 0);
    assert_int_equal(hand_poll(&w), WEFT_READY);
    assert_int_equal(state_of(&rw), S_WRITER);
    weft_rwlock_read_guard rg;
    assert_int_equal(weft_rwlock_try_read(&rw, &rg), -EAGAIN);
    assert_int_equal(weft_rwlock_try_write(&rw, &wg), -EAGAIN);
    hand_unlock(&w);
    assert_int_equal(weft_rwlock_try_read(&rw, &rg), 0);
    assert_int_equal(weft_rwlock_read_unlock(&rg), 0);
    assert_int_equal(weft_rwlock_try_write(&rw, &wg), 0);
    assert_int_equal(weft_rwlock_write_unlock(&wg), 0);
    hand_drop(&r1);
    hand_drop(&r2);
    hand_drop(&w);
    assert_int_equal(weft_atomic_load_relaxed(&r1.c.clones), 0); /* none queued */
    weft_rwlock_fini(&rw);
}

static void test_misuse_is_reported_and_refused_without_harm(void **state)
{
    (void)state;
    weft_rwlock rw;
    weft_rwlock_init(&rw);
    weft_rwlock_read_guard rg = { NULL }, rcopy;
    weft_rwlock_write_guard wg = { NULL }, wcopy;
    int before = misuse_count();
    assert_int_equal(weft_rwlock_read_unlock(&rg), -EINVAL);
    assert_int_equal(weft_rwlock_write_unlock(&wg), -EINVAL);
    assert_misuse_since(before, 2, "empty guard");
    assert_int_equal(weft_rwlock_read_unlock(NULL), -EINVAL);
    assert_int_equal(weft_rwlock_try_read(NULL, &rg), -EINVAL);
    assert_int_equal(weft_rwlock_try_write(&rw, NULL), -EINVAL);
    weft_rwlock_read r;
    assert_int_equal(weft_rwlock_read_init(&r, NULL), -EINVAL);
    assert_int_equal(weft_rwlock_write_init(NULL, &rw), -EINVAL);
    assert_misuse_since(before, 7, "NULL");

    assert_int_equal(weft_rwlock_try_read(&rw, &rg), 0);
    rcopy = rg;
    assert_int_equal(weft_rwlock_read_unlock(&rg), 0);
    before = misuse_count();
    assert_int_equal(weft_rwlock_read_unlock(&rcopy), -EINVAL);
    assert_misuse_since(before, 1, "no reader");
    assert_int_equal(weft_rwlock_try_write(&rw, &wg), 0);
    wcopy = wg;
    assert_int_equal(weft_rwlock_write_unlock(&wg), 0);
    assert_int_equal(weft_rwlock_write_unlock(&wcopy), -EINVAL);
    assert_misuse_since(before, 2, "not write-locked");
    assert_int_equal(state_of(&rw), 0);

    assert_int_equal(weft_rwlock_try_read(&rw, &rg), 0);
    before = misuse_count();
    weft_rwlock_fini(&rw);
    assert_misuse_since(before, 1, "still held");
    assert_int_equal(weft_rwlock_read_unlock(&rg), 0);
    weft_rwlock_fini(&rw);
}

static void test_a_waiting_writer_holds_back_new_readers(void **state)
{
    (void)state;
    weft_rwlock rw;
    weft_rwlock_init(&rw);
    hand r1, w, r2;
    hand_init(&r1, &rw, false);
    hand_init(&w, &rw, true);
    hand_init(&r2, &rw, false);
    assert_int_equal(hand_poll(&r1), WEFT_READY);
    assert_int_equal(hand_poll(&w), WEFT_PENDING);
    /* A reader now queues behind the writer, though readers hold it. */
    assert_int_equal(hand_poll(&r2), WEFT_PENDING);
    weft_rwlock_read_guard rg;
    assert_int_equal(weft_rwlock_try_read(&rw, &rg), -EAGAIN);
    assert_int_equal(state_of(&rw), S_READERS(1) | S_QUEUED);
    assert_int_equal(hand_poll(&w), WEFT_PENDING); /* polled again: still waits */
    hand_unlock(&r1);
    assert_int_equal(cw_woken(&w.c), 1);
    assert_int_equal(cw_woken(&r2.c), 0);
    assert_int_equal(state_of(&rw), S_WRITER | S_QUEUED);
    assert_int_equal(hand_poll(&w), WEFT_READY);
    assert_ptr_equal(w.wg.rwlock, &rw);
    hand_unlock(&w);
    assert_int_equal(cw_woken(&r2.c), 1);
    assert_int_equal(state_of(&rw), S_READERS(1));
    assert_int_equal(hand_poll(&r2), WEFT_READY);
    hand_unlock(&r2);
    hand_drop(&r1);
    hand_drop(&w);
    hand_drop(&r2);
    assert_int_equal(state_of(&rw), 0);
    weft_rwlock_fini(&rw);
}

static void test_the_run_of_readers_at_the_front_is_admitted_together(void **state)
{
    (void)state;
    weft_rwlock rw;
    weft_rwlock_init(&rw);
    weft_rwlock_write_guard held;
    assert_int_equal(weft_rwlock_try_write(&rw, &held), 0);
    /* Queue: R R R W R */
    hand h[5];
    const bool writes[5] = { false, false, false, true, false };
    for (int i = 0; i < 5; i++) {
        hand_init(&h[i], &rw, writes[i]);
        assert_int_equal(hand_poll(&h[i]), WEFT_PENDING);
    }
    assert_int_equal(weft_rwlock_write_unlock(&held), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cw_woken(&h[i].c), i < 3 ? 1 : 0);
    assert_int_equal(state_of(&rw), S_READERS(3) | S_QUEUED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hand_poll(&h[i]), WEFT_READY);
    hand_unlock(&h[0]);
    hand_unlock(&h[1]);
    assert_int_equal(cw_woken(&h[3].c), 0);
    hand_unlock(&h[2]); /* the last reader out admits the writer */
    assert_int_equal(cw_woken(&h[3].c), 1);
    assert_int_equal(hand_poll(&h[3]), WEFT_READY);
    hand_unlock(&h[3]);
    assert_int_equal(cw_woken(&h[4].c), 1);
    assert_int_equal(hand_poll(&h[4]), WEFT_READY);
    hand_unlock(&h[4]);
    for (int i = 0; i < 5; i++)
        hand_drop(&h[i]);
    assert_int_equal(state_of(&rw), 0);
    assert_true(weft__waitq_empty(&rw.q_));
    weft_rwlock_fini(&rw);
}

static void test_more_readers_than_a_wakeset_holds_are_all_admitted(void **state)
{
    (void)state;
    enum { N = WEFT__WAKESET_CAP * 2 + 3 };
    static weft_rwlock rw;
    weft_rwlock_init(&rw);
    weft_rwlock_write_guard held;
    assert_int_equal(weft_rwlock_try_write(&rw, &held), 0);
    static hand h[N];
    for (int i = 0; i < N; i++) {
        hand_init(&h[i], &rw, false);
        assert_int_equal(hand_poll(&h[i]), WEFT_PENDING);
    }
    assert_int_equal(weft_rwlock_write_unlock(&held), 0);
    assert_int_equal(state_of(&rw), S_READERS(N));
    for (int i = 0; i < N; i++) {
        assert_int_equal(cw_woken(&h[i].c), 1);
        assert_int_equal(hand_poll(&h[i]), WEFT_READY);
        hand_unlock(&h[i]);
        hand_drop(&h[i]);
    }
    assert_int_equal(state_of(&rw), 0);
    weft_rwlock_fini(&rw);
}

static void test_past_max_readers_try_read_says_eagain_and_a_read_waits(void **state)
{
    (void)state;
    weft_rwlock rw;
    weft_rwlock_init(&rw);
    /* As if WEFT_RWLOCK_MAX_READERS - 1 readers held it, and we take one. */
    weft_atomic_store_relaxed(&rw.state_, S_READERS(WEFT_RWLOCK_MAX_READERS - 1));
    weft_rwlock_read_guard last, more;
    assert_int_equal(weft_rwlock_try_read(&rw, &last), 0);
    assert_int_equal(weft_rwlock_try_read(&rw, &more), -EAGAIN);
    hand r;
    hand_init(&r, &rw, false);
    assert_int_equal(hand_poll(&r), WEFT_PENDING);
    assert_int_equal(weft_rwlock_read_unlock(&last), 0); /* one leaves: r enters */
    assert_int_equal(cw_woken(&r.c), 1);
    assert_int_equal(hand_poll(&r), WEFT_READY);
    hand_unlock(&r);
    hand_drop(&r);
    assert_int_equal(state_of(&rw), S_READERS(WEFT_RWLOCK_MAX_READERS - 1));
    weft_atomic_store_relaxed(&rw.state_, 0u);
    weft_rwlock_fini(&rw);
}

static void test_a_dropped_queued_writer_lets_the_readers_behind_it_in(void **state)
{
    (void)state;
    weft_rwlock rw;
    weft_rwlock_init(&rw);
    hand r1, w, r2;
    hand_init(&r1, &rw, false);
    hand_init(&w, &rw, true);
    hand_init(&r2, &rw, false);
    assert_int_equal(hand_poll(&r1), WEFT_READY);
    assert_int_equal(hand_poll(&w), WEFT_PENDING);
    assert_int_equal(hand_poll(&r2), WEFT_PENDING);
    hand_drop(&w);
    assert_int_equal(cw_woken(&r2.c), 1);
    assert_int_equal(state_of(&rw), S_READERS(2));
    assert_int_equal(hand_poll(&r2), WEFT_READY);
    hand_unlock(&r1);
    hand_unlock(&r2);
    hand_drop(&r1);
    hand_drop(&r2);
    assert_int_equal(state_of(&rw), 0);
    weft_rwlock_fini(&rw);
}

static void test_a_dropped_admitted_waiter_hands_the_lock_on(void **state)
{
    (void)state;
    weft_rwlock rw;
    weft_rwlock_init(&rw);
    weft_rwlock_write_guard held;
    assert_int_equal(weft_rwlock_try_write(&rw, &held), 0);
    hand w, r, w2;
    hand_init(&w, &rw, true);
    hand_init(&r, &rw, false);
    hand_init(&w2, &rw, true);
    assert_int_equal(hand_poll(&w), WEFT_PENDING);
    assert_int_equal(hand_poll(&r), WEFT_PENDING);
    assert_int_equal(hand_poll(&w2), WEFT_PENDING);
    assert_int_equal(weft_rwlock_write_unlock(&held), 0);
    assert_int_equal(cw_woken(&w.c), 1);
    /* W was admitted and is dropped before it saw it: R gets in. */
    hand_drop(&w);
    assert_int_equal(cw_woken(&r.c), 1);
    assert_int_equal(state_of(&rw), S_READERS(1) | S_QUEUED);
    /* R too: its read unlock admits W2. */
    hand_drop(&r);
    assert_int_equal(cw_woken(&w2.c), 1);
    assert_int_equal(state_of(&rw), S_WRITER);
    hand_drop(&w2); /* and W2's write unlock frees it */
    assert_int_equal(state_of(&rw), 0);
    assert_true(weft__waitq_empty(&rw.q_));
    weft_rwlock_fini(&rw);
}

/* ---- many tasks ------------------------------------------------------------------------------- */

typedef struct shared {
    weft_rwlock rw;
    _Atomic int readers, writers; /* inside right now */
    _Atomic int violations;       /* two writers, or a writer with readers */
    uint64_t counter;             /* written under the write lock only */
    _Atomic uint64_t reads;
} shared;

static void shared_init(shared *sh)
{
    weft_rwlock_init(&sh->rw);
    weft_atomic_init(&sh->readers, 0);
    weft_atomic_init(&sh->writers, 0);
    weft_atomic_init(&sh->violations, 0);
    weft_atomic_init(&sh->reads, 0);
    sh->counter = 0;
}

/* Reads (or, every `write_every`-th time, writes) `iters` times; yields
 * while holding the lock so others pile up behind it. */
typedef struct user {
    weft_future base;
    weft_co co;
    shared *sh;
    unsigned i, iters, write_every, who;
    weft_rwlock_read r;
    weft_rwlock_write w;
    weft_rwlock_read_guard rg;
    weft_rwlock_write_guard wg;
    weft_yield y;
} user;

WEFT_ASYNC_FN(user, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->iters; self->i++) {
        if ((self->i + self->who) % self->write_every == 0) {
            if (weft_rwlock_write_init(&self->w, &self->sh->rw) != 0)
                WEFT_FN_RETURN(-EINVAL);
            WEFT_FN_AWAIT(&self->w, &self->wg);
            if (weft_atomic_fetch_add_relaxed(&self->sh->writers, 1) != 0 ||
                weft_atomic_load_relaxed(&self->sh->readers) != 0)
                weft_atomic_fetch_add_relaxed(&self->sh->violations, 1);
            weft_yield_init(&self->y);
            WEFT_FN_AWAIT(&self->y, NULL);
            self->sh->counter++;
            weft_atomic_fetch_sub_relaxed(&self->sh->writers, 1);
            if (weft_rwlock_write_unlock(&self->wg) != 0)
                WEFT_FN_RETURN(-EPROTO);
        } else {
            if (weft_rwlock_read_init(&self->r, &self->sh->rw) != 0)
                WEFT_FN_RETURN(-EINVAL);
            WEFT_FN_AWAIT(&self->r, &self->rg);
            weft_atomic_fetch_add_relaxed(&self->sh->readers, 1);
            if (weft_atomic_load_relaxed(&self->sh->writers) != 0)
                weft_atomic_fetch_add_relaxed(&self->sh->violations, 1);
            weft_yield_init(&self->y);
            WEFT_FN_AWAIT(&self->y, NULL);
            (void)*(volatile uint64_t *)&self->sh->counter;
            weft_atomic_fetch_add_relaxed(&self->sh->reads, 1);
            weft_atomic_fetch_sub_relaxed(&self->sh->readers, 1);
            if (weft_rwlock_read_unlock(&self->rg) != 0)
                WEFT_FN_RETURN(-EPROTO);
        }
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* `tasks` users of `iters` each; returns the number of writes. */
static uint64_t run_users(weft_rt *rt, shared *sh, unsigned tasks, unsigned iters,
                          unsigned write_every)
{
    weft_join j[32];
    assert_true(tasks <= 32);
    uint64_t writes = 0;
    for (unsigned t = 0; t < tasks; t++) {
        for (unsigned i = 0; i < iters; i++)
            writes += (i + t) % write_every == 0;
        assert_int_equal(WEFT_SPAWN(rt, &j[t],
                                    &(user){ WEFT_FN_INIT(user, WEFT_F_SEND), .sh = sh,
                                             .iters = iters, .write_every = write_every,
                                             .who = t }),
                         0);
    }
    for (unsigned t = 0; t < tasks; t++) {
        int out = -1;
        assert_int_equal(join_blocking(rt, &j[t], &out, sizeof out), 0);
        assert_int_equal(out, 0);
    }
    return writes;
}

static void test_readers_and_writers_exclude_each_other_on_two_workers(void **state)
{
    (void)state;
    static shared sh;
    shared_init(&sh);
    uint64_t writes = run_users(g_rt, &sh, 24, 400, 4);
    assert_int_equal(sh.counter, writes);
    assert_int_equal(weft_atomic_load_relaxed(&sh.reads), 24 * 400 - writes);
    assert_int_equal(weft_atomic_load_relaxed(&sh.violations), 0);
    assert_int_equal(state_of(&sh.rw), 0);
    weft_rwlock_fini(&sh.rw);
}

static void test_readers_and_writers_on_the_sim_with_chaos_over_200_seeds(void **state)
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
        uint64_t writes = run_users(rt, &sh, 6, 20, 2 + (unsigned)(seed % 3));
        SIM_ASSERT(rt, sh.counter == writes);
        SIM_ASSERT(rt, weft_atomic_load_relaxed(&sh.violations) == 0);
        SIM_ASSERT(rt, state_of(&sh.rw) == 0);
        SIM_ASSERT(rt, weft__waitq_empty(&sh.rw.q_));
        weft_rt_shutdown(rt);
        weft_rwlock_fini(&sh.rw);
    }
}

/* ---- blocking forms ----------------------------------------------------------------------------- */

typedef struct rw_blocker {
    weft_rwlock *rw;
    bool write;
    int rc;
    _Atomic bool done;
} rw_blocker;

static void *rw_blocker_main(void *arg)
{
    rw_blocker *b = arg;
    if (b->write) {
        weft_rwlock_write_guard g;
        b->rc = weft_rwlock_write_blocking(b->rw, &g);
        if (b->rc == 0)
            b->rc = weft_rwlock_write_unlock(&g);
    } else {
        weft_rwlock_read_guard g;
        b->rc = weft_rwlock_read_blocking(b->rw, &g);
        if (b->rc == 0)
            b->rc = weft_rwlock_read_unlock(&g);
    }
    weft_atomic_store_release(&b->done, true);
    return NULL;
}

/* A foreign thread's read waits behind a held write lock, and a write
 * behind a held read lock; each gets it once the lock is given back. */
static void test_blocking_forms_park_a_foreign_thread_until_given(void **state)
{
    (void)state;
    for (int write = 0; write < 2; write++) {
        weft_rwlock rw;
        weft_rwlock_init(&rw);
        weft_rwlock_read_guard rg;
        weft_rwlock_write_guard wg;
        if (write)
            assert_int_equal(weft_rwlock_try_read(&rw, &rg), 0);
        else
            assert_int_equal(weft_rwlock_try_write(&rw, &wg), 0);
        rw_blocker b = { .rw = &rw, .write = write != 0 };
        weft_atomic_init(&b.done, false);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, rw_blocker_main, &b), 0);
        /* Until it queued (or, broken, returned without waiting). */
        while (!(state_of(&rw) & S_QUEUED) && !weft_atomic_load_acquire(&b.done))
            sched_yield();
        assert_false(weft_atomic_load_acquire(&b.done));
        if (write)
            assert_int_equal(weft_rwlock_read_unlock(&rg), 0);
        else
            assert_int_equal(weft_rwlock_write_unlock(&wg), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(b.rc, 0);
        assert_int_equal(state_of(&rw), 0);
        weft_rwlock_fini(&rw);
    }
}

static void rw_blocking_in_a_task(void *arg, void *out)
{
    (void)arg;
    static weft_rwlock rw;
    weft_rwlock_init(&rw);
    weft_rwlock_read_guard rg = { NULL };
    weft_rwlock_write_guard wg = { NULL };
    int a = weft_rwlock_read_blocking(&rw, &rg);
    int b = weft_rwlock_write_blocking(&rw, &wg);
    *(int *)out = a == -EDEADLK && b == -EDEADLK && state_of(&rw) == 0;
    weft_rwlock_fini(&rw);
}

/* On a worker the blocking forms would block the worker: refused with
 * -EDEADLK before anything is queued, and reported. */
static void test_blocking_forms_in_a_task_return_edeadlk(void **state)
{
    (void)state;
    int before = misuse_count();
    int ok = 0;
    assert_int_equal(RUN_FN_BLOCKING(g_rt, rw_blocking_in_a_task, &ok, sizeof ok), 0);
    assert_int_equal(ok, 1);
    assert_misuse_since(before, 2, "weft_rwlock_write_blocking");
    weft_rwlock_read_guard rg;
    assert_int_equal(weft_rwlock_read_blocking(NULL, &rg), -EINVAL);
    assert_int_equal(weft_rwlock_write_blocking(NULL, NULL), -EINVAL);
}

/* ---- cancel sweeps ----------------------------------------------------------------------------- */

/* Holds the write lock `holds` times for 2 ms each, relocking at once. */
typedef struct holder {
    weft_future base;
    weft_co co;
    shared *sh;
    _Atomic bool *holding;
    unsigned i, holds;
    weft_rwlock_write w;
    weft_rwlock_write_guard g;
    weft_sleep s;
} holder;

WEFT_ASYNC_FN(holder, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->holds; self->i++) {
        if (weft_rwlock_write_init(&self->w, &self->sh->rw) != 0)
            WEFT_FN_RETURN(-EINVAL);
        WEFT_FN_AWAIT(&self->w, &self->g);
        weft_atomic_store_relaxed(self->holding, true);
        weft_sleep_init(&self->s, WEFT_MS(2));
        WEFT_FN_AWAIT(&self->s, NULL);
        self->sh->counter++;
        if (weft_rwlock_write_unlock(&self->g) != 0)
            WEFT_FN_RETURN(-EPROTO);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* The future under test, awaited: waits until the holder has the lock,
 * then reads (or writes) once and unlocks. */
typedef struct tested {
    weft_future base;
    weft_co co;
    shared *sh;
    _Atomic bool *holding;
    bool write;
    weft_rwlock_read r;
    weft_rwlock_write w;
    weft_rwlock_read_guard rg;
    weft_rwlock_write_guard wg;
} tested;

WEFT_ASYNC_FN(tested, int)
{
    WEFT_FN_BEGIN;
    while (!weft_atomic_load_relaxed(self->holding))
        WEFT_FN_YIELD;
    if (self->write) {
        if (weft_rwlock_write_init(&self->w, &self->sh->rw) != 0)
            WEFT_FN_RETURN(-EINVAL);
        WEFT_FN_AWAIT(&self->w, &self->wg);
        self->sh->counter++;
        if (weft_rwlock_write_unlock(&self->wg) != 0)
            WEFT_FN_RETURN(-EPROTO);
    } else {
        if (weft_rwlock_read_init(&self->r, &self->sh->rw) != 0)
            WEFT_FN_RETURN(-EINVAL);
        WEFT_FN_AWAIT(&self->r, &self->rg);
        weft_atomic_fetch_add_relaxed(&self->sh->reads, 1);
        if (weft_rwlock_read_unlock(&self->rg) != 0)
            WEFT_FN_RETURN(-EPROTO);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* Around the future under test: a writer holding the lock in turns, a
 * reader and a writer queued too. Dropped at any poll, the lock must end
 * free, its queue empty, no waker of the future's left, everyone done. */
typedef struct rw_case {
    bool write;
    shared sh;
    _Atomic bool holding;
    weft_join jh, jr, jw;
    tested t;
    int out;
} rw_case;

static int rw_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    rw_case *rc = ctx;
    shared_init(&rc->sh);
    weft_atomic_init(&rc->holding, false);
    int err = WEFT_SPAWN(rt, &rc->jh,
                         &(holder){ WEFT_FN_INIT(holder, WEFT_F_SEND), .sh = &rc->sh,
                                    .holding = &rc->holding, .holds = 2 });
    if (err == 0)
        err = WEFT_SPAWN(rt, &rc->jr,
                         &(tested){ WEFT_FN_INIT(tested, WEFT_F_SEND), .sh = &rc->sh,
                                    .holding = &rc->holding, .write = false });
    if (err == 0)
        err = WEFT_SPAWN(rt, &rc->jw,
                         &(tested){ WEFT_FN_INIT(tested, WEFT_F_SEND), .sh = &rc->sh,
                                    .holding = &rc->holding, .write = true });
    rc->t = (tested){ WEFT_FN_INIT(tested, WEFT_F_SEND), .sh = &rc->sh, .holding = &rc->holding,
                      .write = rc->write };
    rc->out = -1;
    *fut = &rc->t.base;
    *out = &rc->out;
    return err;
}

static const char *rw_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    rw_case *rc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) left, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    if (run->completed && rc->out != 0)
        return sweep_say("completed with %d", rc->out);
    weft_join *js[3] = { &rc->jh, &rc->jr, &rc->jw };
    for (int i = 0; i < 3; i++) {
        int o = -1;
        if (join_blocking(rt, js[i], &o, sizeof o) != 0 || o != 0)
            return sweep_say("k=%u: task %d did not finish (%d)", run->k, i, o);
    }
    uint64_t writes = 2 + 1 + (run->completed && rc->write);
    uint64_t reads = 1 + (run->completed && !rc->write);
    if (rc->sh.counter != writes || weft_atomic_load_relaxed(&rc->sh.reads) != reads)
        return sweep_say("k=%u: %llu writes, %llu reads", run->k,
                         (unsigned long long)rc->sh.counter,
                         (unsigned long long)weft_atomic_load_relaxed(&rc->sh.reads));
    uint32_t s = state_of(&rc->sh.rw);
    if (s != 0 || !weft__waitq_empty(&rc->sh.rw.q_))
        return sweep_say("k=%u: rwlock state %#x after everyone finished", run->k, s);
    return sweep_leftovers(rt);
}

static void sweep_rw(bool write)
{
    static rw_case rc;
    rc.write = write;
    weft_sweep_case c = { rw_build, rw_check, NULL, &rc };
    weft_sweep_options o = sweep_options(1, 16);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 3); /* queued behind the holder: several awaits */
    o = sweep_chaos_options(100, 16, 0.3);
    sweep_pass(&c, &o);
}

static void test_cancel_sweep_rwlock_read(void **state)
{
    (void)state;
    sweep_rw(false);
}

static void test_cancel_sweep_rwlock_write(void **state)
{
    (void)state;
    sweep_rw(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_uncontended_reads_share_and_a_write_excludes,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_is_reported_and_refused_without_harm,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test(test_a_waiting_writer_holds_back_new_readers),
        cmocka_unit_test(test_the_run_of_readers_at_the_front_is_admitted_together),
        cmocka_unit_test(test_more_readers_than_a_wakeset_holds_are_all_admitted),
        cmocka_unit_test(test_past_max_readers_try_read_says_eagain_and_a_read_waits),
        cmocka_unit_test(test_a_dropped_queued_writer_lets_the_readers_behind_it_in),
        cmocka_unit_test(test_a_dropped_admitted_waiter_hands_the_lock_on),
        cmocka_unit_test_setup_teardown(test_readers_and_writers_exclude_each_other_on_two_workers,
                                        rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(
            test_readers_and_writers_on_the_sim_with_chaos_over_200_seeds, sim_setup,
            sim_teardown),
        cmocka_unit_test(test_blocking_forms_park_a_foreign_thread_until_given),
        cmocka_unit_test_setup_teardown(test_blocking_forms_in_a_task_return_edeadlk, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_sweep_rwlock_read, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_sweep_rwlock_write, sim_setup, sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
