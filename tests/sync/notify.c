/* Tests for sync/notify.c: weft_notify and its waiting future
 * weft_notified. By hand first (one permit at most, oldest first, what
 * notify_waiters reaches, what a drop hands on), then producers and
 * consumers on two workers and on the sim under chaos over many seeds,
 * the blocking wait from foreign threads, and the cancel sweeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "sync/waitq.h"
#include "support/alarm_watchdog.h"
#include "support/counting_waker.h"
#include "support/every_other.h"
#include "support/rng.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

/* ---- by hand ------------------------------------------------------------------------ */

static weft_poll poll_with(weft_notified *nf, counting_waker *c)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(&nf->base, &cx, NULL);
}

/* A fresh waiter's first poll: READY when a permit (or a notify_waiters
 * since its initialisation) was there; it is dropped either way. */
static bool fresh_ready(weft_notify *n)
{
    counting_waker c;
    cw_init(&c);
    weft_notified nf;
    weft_notified_init(&nf, n);
    bool ready = poll_with(&nf, &c) == WEFT_READY;
    weft_future_drop(&nf.base);
    assert_int_equal(cw_outstanding(&c), 0);
    return ready;
}

/* The state bits of the word: 0 EMPTY, 1 WAITING, 2 NOTIFIED. */
static unsigned notify_bits(weft_notify *n)
{
    /* Relaxed: read by the thread that made the last change, or as a
     * snapshot. */
    return (unsigned)(weft_atomic_load_relaxed(&n->state_) & 3u);
}

/* Waiters queued now (under the queue's lock: other threads may queue). */
static unsigned queued(weft_notify *n)
{
    unsigned k = 0;
    weft__waitq_lock(&n->q_);
    for (weft_sync_waiter *w = n->q_.head_; w; w = w->next_)
        k++;
    weft__waitq_unlock(&n->q_);
    return k;
}

static void test_notify_one_with_nobody_waiting_stores_one_permit_only(void **state)
{
    (void)state;
    weft_notify n;
    weft_notify_init(&n);
    weft_notify_one(&n);
    weft_notify_one(&n); /* no second permit */
    assert_true(fresh_ready(&n));
    assert_false(fresh_ready(&n));
    assert_int_equal(notify_bits(&n), 0);
    weft_notify_fini(&n);
    assert_int_equal(misuse_count(), 0);
}

static void test_notify_one_wakes_the_oldest_waiter_first(void **state)
{
    (void)state;
    weft_notify n;
    weft_notify_init(&n);
    counting_waker c[3];
    weft_notified nf[3];
    for (int i = 0; i < 3; i++) {
        cw_init(&c[i]);
        weft_notified_init(&nf[i], &n);
        assert_int_equal(poll_with(&nf[i], &c[i]), WEFT_PENDING);
    }
    for (int i = 0; i < 3; i++) {
        weft_notify_one(&n);
        for (int j = 0; j < 3; j++)
            assert_int_equal(cw_woken(&c[j]), j <= i ? 1 : 0);
        /* Spurious polls of the others change nothing. */
        for (int j = i + 1; j < 3; j++)
            assert_int_equal(poll_with(&nf[j], &c[j]), WEFT_PENDING);
        assert_int_equal(poll_with(&nf[i], &c[i]), WEFT_READY);
        weft_future_drop(&nf[i].base);
    }
    assert_int_equal(notify_bits(&n), 0);
    assert_false(fresh_ready(&n));
    for (int i = 0; i < 3; i++)
        assert_int_equal(cw_outstanding(&c[i]), 0);
    weft_notify_fini(&n);
}

/* More waiters than one wakeset holds, so notify_waiters wakes in
 * batches. */
#define MANY 75

static void test_notify_waiters_wakes_every_waiter_and_stores_nothing(void **state)
{
    (void)state;
    static weft_notified nf[MANY];
    counting_waker c;
    cw_init(&c);
    weft_notify n;
    weft_notify_init(&n);
    for (int i = 0; i < MANY; i++) {
        weft_notified_init(&nf[i], &n);
        assert_int_equal(poll_with(&nf[i], &c), WEFT_PENDING);
    }
    weft_notified early; /* initialised before the call, polled after */
    weft_notified_init(&early, &n);
    weft_notify_waiters(&n);
    assert_int_equal(cw_woken(&c), MANY);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(poll_with(&nf[i], &c), WEFT_READY);
        weft_future_drop(&nf[i].base);
    }
    assert_int_equal(poll_with(&early, &c), WEFT_READY);
    weft_future_drop(&early.base);
    /* Nothing stored for later waiters. */
    assert_int_equal(notify_bits(&n), 0);
    assert_false(fresh_ready(&n));
    /* A permit stored before stays. */
    weft_notify_one(&n);
    weft_notify_waiters(&n);
    assert_true(fresh_ready(&n));
    assert_false(fresh_ready(&n));
    assert_int_equal(cw_outstanding(&c), 0);
    weft_notify_fini(&n);
}

static void test_a_chosen_waiter_dropped_hands_the_notification_to_the_next(void **state)
{
    (void)state;
    weft_notify n;
    weft_notify_init(&n);
    counting_waker c[2];
    weft_notified nf[2];
    for (int i = 0; i < 2; i++) {
        cw_init(&c[i]);
        weft_notified_init(&nf[i], &n);
        assert_int_equal(poll_with(&nf[i], &c[i]), WEFT_PENDING);
    }
    weft_notify_one(&n);
    assert_int_equal(cw_woken(&c[0]), 1);
    weft_future_drop(&nf[0].base); /* chosen, never saw it */
    assert_int_equal(cw_woken(&c[1]), 1);
    assert_int_equal(poll_with(&nf[1], &c[1]), WEFT_READY);
    weft_future_drop(&nf[1].base);
    assert_false(fresh_ready(&n)); /* handed on, not duplicated */
    weft_notify_fini(&n);
}

static void test_a_chosen_waiter_dropped_alone_stores_the_permit(void **state)
{
    (void)state;
    weft_notify n;
    weft_notify_init(&n);
    counting_waker c;
    cw_init(&c);
    weft_notified nf;
    weft_notified_init(&nf, &n);
    assert_int_equal(poll_with(&nf, &c), WEFT_PENDING);
    weft_notify_one(&n);
    weft_future_drop(&nf.base);
    assert_int_equal(notify_bits(&n), 2);
    assert_true(fresh_ready(&n));
    assert_int_equal(cw_outstanding(&c), 0);
    weft_notify_fini(&n);
}

static void test_a_queued_waiter_dropped_just_unlinks(void **state)
{
    (void)state;
    weft_notify n;
    weft_notify_init(&n);
    counting_waker c[2];
    weft_notified nf[2];
    for (int i = 0; i < 2; i++) {
        cw_init(&c[i]);
        weft_notified_init(&nf[i], &n);
        assert_int_equal(poll_with(&nf[i], &c[i]), WEFT_PENDING);
    }
    weft_future_drop(&nf[0].base);
    assert_int_equal(cw_outstanding(&c[0]), 0);
    assert_int_equal(cw_woken(&c[1]), 0);
    assert_int_equal(notify_bits(&n), 1); /* one still waits */
    weft_notify_one(&n);
    assert_int_equal(cw_woken(&c[1]), 1);
    assert_int_equal(poll_with(&nf[1], &c[1]), WEFT_READY);
    weft_future_drop(&nf[1].base);
    /* The last one leaving empties the state: the next notify is stored. */
    weft_notified_init(&nf[0], &n);
    assert_int_equal(poll_with(&nf[0], &c[0]), WEFT_PENDING);
    weft_future_drop(&nf[0].base);
    assert_int_equal(notify_bits(&n), 0);
    weft_notify_one(&n);
    assert_true(fresh_ready(&n));
    weft_notify_fini(&n);
}

static void test_a_waiter_woken_by_notify_waiters_dropped_passes_nothing_on(void **state)
{
    (void)state;
    weft_notify n;
    weft_notify_init(&n);
    counting_waker c;
    cw_init(&c);
    weft_notified nf;
    weft_notified_init(&nf, &n);
    assert_int_equal(poll_with(&nf, &c), WEFT_PENDING);
    weft_notify_waiters(&n);
    weft_future_drop(&nf.base);
    assert_int_equal(notify_bits(&n), 0);
    assert_false(fresh_ready(&n));
    weft_notify_fini(&n);
}

static void test_fini_with_waiters_is_reported(void **state)
{
    (void)state;
    weft_notify n;
    weft_notify_init(&n);
    counting_waker c;
    cw_init(&c);
    weft_notified nf;
    weft_notified_init(&nf, &n);
    assert_int_equal(poll_with(&nf, &c), WEFT_PENDING);
    int before = misuse_count();
    weft_notify_fini(&n);
    assert_misuse_since(before, 1, "weft_notify_fini");
    weft_future_drop(&nf.base);
    assert_int_equal(cw_outstanding(&c), 0);
}

static void test_null_arguments_are_reported_and_refused(void **state)
{
    (void)state;
    weft_notify_one(NULL);
    weft_notify_waiters(NULL);
    assert_int_equal(weft_notify_wait_blocking(NULL), -EINVAL);
    assert_int_equal(weft_notified_wait_blocking(NULL), -EINVAL);
    assert_misuse_since(0, 4, "weft_notified_wait_blocking");
    counting_waker c;
    cw_init(&c);
    weft_notified nf;
    weft_notified_init(&nf, NULL);
    assert_misuse_since(4, 1, "weft_notified_init");
    assert_int_equal(poll_with(&nf, &c), WEFT_READY); /* never a hang */
    weft_future_drop(&nf.base);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* ---- producers and consumers ------------------------------------------------------------ */

/* Producers add items and notify_one each; consumers claim items and
 * wait when there are none; the consumer claiming the last item
 * notify_waiters the others out. A lost notification strands a consumer
 * (a hang on the runtime, a stall report on the sim). */
typedef struct pc_shared {
    weft_notify n;
    _Atomic int items;   /* produced, not claimed yet */
    _Atomic int claimed; /* claimed so far */
    int total;
} pc_shared;

typedef struct producer {
    weft_future base;
    weft_co co;
    pc_shared *sh;
    int count, i;
    uint64_t rng;
} producer;

WEFT_ASYNC_FN(producer, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->count; self->i++) {
        /* Release: a consumer that claims it sees it produced. */
        weft_atomic_fetch_add_release(&self->sh->items, 1);
        weft_notify_one(&self->sh->n);
        if (rng_next32(&self->rng) % 4 == 0)
            WEFT_FN_YIELD;
    }
    WEFT_FN_RETURN(self->count);
    WEFT_FN_END;
}

typedef struct consumer {
    weft_future base;
    weft_co co;
    pc_shared *sh;
    weft_notified nf;
    int got;
} consumer;

/* Claim every item there is; true once all are claimed. */
static bool consume(consumer *self)
{
    pc_shared *sh = self->sh;
    int have = weft_atomic_load_acquire(&sh->items);
    while (have > 0) {
        /* Acquire: pairs with the producer's release add. */
        if (!weft_atomic_cas_weak_acquire(&sh->items, &have, have - 1))
            continue;
        self->got++;
        if (weft_atomic_fetch_add_acq_rel(&sh->claimed, 1) + 1 == sh->total)
            weft_notify_waiters(&sh->n);
        have = weft_atomic_load_acquire(&sh->items);
    }
    return weft_atomic_load_acquire(&sh->claimed) == sh->total;
}

WEFT_ASYNC_FN(consumer, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        /* Initialise, check, then await: a notify_waiters after the
         * initialisation is not missed. */
        weft_notified_init(&self->nf, &self->sh->n);
        if (consume(self)) {
            weft_future_drop(&self->nf.base);
            break;
        }
        WEFT_FN_AWAIT(&self->nf, NULL);
    }
    WEFT_FN_RETURN(self->got);
    WEFT_FN_END;
}

enum { PC_PRODUCERS = 2, PC_CONSUMERS = 4 };

/* Spawns the scenario on `rt`, runs it (drives a sim) and checks that
 * every item was consumed once. */
static void producers_and_consumers(weft_rt *rt, int per_producer, uint64_t seed)
{
    pc_shared sh;
    weft_notify_init(&sh.n);
    weft_atomic_init(&sh.items, 0);
    weft_atomic_init(&sh.claimed, 0);
    sh.total = PC_PRODUCERS * per_producer;
    weft_join j[PC_PRODUCERS + PC_CONSUMERS];
    for (int i = 0; i < PC_CONSUMERS; i++)
        assert_int_equal(WEFT_SPAWN(rt, &j[i], &(consumer){ WEFT_FN_INIT(consumer, WEFT_F_SEND),
                                                            .sh = &sh }),
                         0);
    for (int i = 0; i < PC_PRODUCERS; i++)
        assert_int_equal(WEFT_SPAWN(rt, &j[PC_CONSUMERS + i],
                                    &(producer){ WEFT_FN_INIT(producer, WEFT_F_SEND), .sh = &sh,
                                                 .count = per_producer,
                                                 .rng = rng_seed(seed * 7 + (uint64_t)i) }),
                         0);
    if (rt_is_sim(rt))
        SIM_ASSERT(rt, weft_sim_run(rt) == 0);
    int got = 0;
    for (int i = 0; i < PC_PRODUCERS + PC_CONSUMERS; i++) {
        int out = 0;
        assert_int_equal(join_blocking(rt, &j[i], &out, sizeof out), 0);
        if (i < PC_CONSUMERS)
            got += out;
    }
    assert_int_equal(got, sh.total);
    assert_int_equal(weft_atomic_load_relaxed(&sh.items), 0);
    int before = misuse_count();
    weft_notify_fini(&sh.n);
    assert_no_misuse_since(before);
}

static void test_producers_and_consumers_lose_no_notification_on_two_workers(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++)
        producers_and_consumers(g_rt, 2000, (uint64_t)round);
}

static void test_producers_and_consumers_on_the_sim_under_chaos(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    for (uint64_t seed = 1; seed <= 200; seed++) {
        weft_sim_options o = sim_options(seed);
        o.spurious_wake = 0.3;
        o.leaf_pending = 0.3;
        weft_rt *rt = sim_start(&o);
        producers_and_consumers(rt, 20, seed);
        weft_rt_shutdown(rt);
    }
}

/* ---- blocking waits ----------------------------------------------------------------------- */

typedef struct blocker {
    weft_notify *n;
    _Atomic int rc;
    _Atomic bool done;
} blocker;

static void *blocker_main(void *arg)
{
    blocker *b = arg;
    weft_atomic_store_release(&b->rc, weft_notify_wait_blocking(b->n));
    weft_atomic_store_release(&b->done, true);
    return NULL;
}

static void test_notify_wait_blocking_parks_a_foreign_thread_until_notified(void **state)
{
    (void)state;
    weft_notify n;
    weft_notify_init(&n);
    /* Queued first, then notified: it parks and is woken. */
    blocker b = { &n, -1, false };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocker_main, &b), 0);
    WAIT_UNTIL(queued(&n) == 1);
    assert_false(weft_atomic_load_acquire(&b.done));
    weft_notify_one(&n);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(weft_atomic_load_acquire(&b.rc), 0);
    /* Notified first: the stored permit lets it through at once. */
    weft_notify_one(&n);
    blocker b2 = { &n, -1, false };
    assert_int_equal(pthread_create(&t, NULL, blocker_main, &b2), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(weft_atomic_load_acquire(&b2.rc), 0);
    /* notify_waiters releases two threads. */
    blocker b3[2] = { { &n, -1, false }, { &n, -1, false } };
    pthread_t t3[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t3[i], NULL, blocker_main, &b3[i]), 0);
    WAIT_UNTIL(queued(&n) == 2);
    weft_notify_waiters(&n);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t3[i], NULL), 0);
        assert_int_equal(weft_atomic_load_acquire(&b3[i].rc), 0);
    }
    /* The caller's own future: initialised before the notify_waiters. */
    weft_notified nf;
    weft_notified_init(&nf, &n);
    weft_notify_waiters(&n);
    assert_int_equal(weft_notified_wait_blocking(&nf), 0);
    weft_future_drop(&nf.base);
    weft_notify_fini(&n);
    assert_int_equal(misuse_count(), 0);
}

static weft_notify g_task_notify;

static void wait_blocking_in_task(void *arg, void *out)
{
    (void)arg;
    *(int *)out = weft_notify_wait_blocking(&g_task_notify);
}

static void test_notify_wait_blocking_in_a_task_is_edeadlk(void **state)
{
    (void)state;
    weft_notify_init(&g_task_notify);
    weft_notify_one(&g_task_notify); /* even with a permit there */
    int out = 0;
    int before = misuse_count();
    assert_int_equal(RUN_FN_BLOCKING(g_rt, wait_blocking_in_task, &out, sizeof out), 0);
    assert_int_equal(out, -EDEADLK);
    assert_misuse_since(before, 1, "weft_notify_wait_blocking");
    /* Not polled: the permit is still there. */
    assert_true(fresh_ready(&g_task_notify));
    weft_notify_fini(&g_task_notify);
}

/* ---- cancel sweeps -------------------------------------------------------------------------- */

#define SEEDS 8
#define CHAOS 0.3

/* Sweeps `c` once with chaos off (N must be `n`) and over SEEDS seeds
 * with every knob at CHAOS. */
static void sweep_both(const weft_sweep_case *c, uint32_t n)
{
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(c, &o);
    assert_int_equal(res.polls, n);
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    res = sweep_pass(c, &o);
    assert_true(res.polls >= n);
}

/* What the environment of a sweep shares with its tasks. */
typedef struct env {
    weft_notify n;
    _Atomic int sends;        /* notify_one calls made */
    _Atomic bool other_done;  /* the other waiter got its notification */
    bool all;                 /* notify_waiters instead of notify_one */
} env;

/* Waits for one notification, with a notified initialised before it was
 * spawned (so a notify_waiters before its first poll reaches it). */
typedef struct other_waiter {
    weft_future base;
    weft_co co;
    env *e;
    weft_notified nf;
} other_waiter;

WEFT_ASYNC_FN(other_waiter, int)
{
    WEFT_FN_BEGIN;
    WEFT_FN_AWAIT(&self->nf, NULL);
    weft_atomic_store_release(&self->e->other_done, true);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* Yields three times, then notifies: notify_waiters once, or notify_one
 * twice — each time only once no permit is stored, so that neither is
 * absorbed by the one-permit rule: every send reaches a waiter or becomes
 * the permit. Two sends for two waiters (the future and the other). */
typedef struct notifier {
    weft_future base;
    weft_co co;
    env *e;
    int i;
} notifier;

WEFT_ASYNC_FN(notifier, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++)
        WEFT_FN_YIELD;
    if (self->e->all) {
        weft_notify_waiters(&self->e->n);
        WEFT_FN_RETURN(0);
    }
    while (weft_atomic_load_relaxed(&self->e->sends) < 2) {
        while (notify_bits(&self->e->n) == 2)
            WEFT_FN_YIELD;
        weft_atomic_fetch_add_relaxed(&self->e->sends, 1);
        weft_notify_one(&self->e->n);
        WEFT_FN_YIELD;
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct notified_case {
    env e;
    weft_notified nf;
} notified_case;

static int notified_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    notified_case *nc = ctx;
    (void)out;
    weft_notify_init(&nc->e.n);
    weft_atomic_init(&nc->e.sends, 0);
    weft_atomic_init(&nc->e.other_done, false);
    /* Initialised first; polled right after this, in the same turn, so
     * it queues ahead of the other waiter. */
    weft_notified_init(&nc->nf, &nc->e.n);
    other_waiter ow = { WEFT_FN_INIT(other_waiter, WEFT_F_SEND), .e = &nc->e };
    weft_notified_init(&ow.nf, &nc->e.n); /* moved by the spawn: not polled yet */
    int err = WEFT_SPAWN(rt, NULL, &ow);
    if (!err)
        err = WEFT_SPAWN(rt, NULL, &(notifier){ WEFT_FN_INIT(notifier, WEFT_F_SEND),
                                                .e = &nc->e });
    *fut = &nc->nf.base;
    return err;
}

static const char *notified_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    notified_case *nc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (!weft_atomic_load_acquire(&nc->e.other_done))
        return "the other waiter never got its notification";
    if (queued(&nc->e.n) || notify_bits(&nc->e.n) == 1)
        return sweep_say("k=%u: the queue is not empty (state %u)", run->k,
                         notify_bits(&nc->e.n));
    /* Every notify_one went somewhere: to the future (if it completed),
     * to the other waiter, or is the stored permit a fresh waiter gets.
     * notify_waiters stores nothing. */
    int sends = weft_atomic_load_relaxed(&nc->e.sends);
    int stored = nc->e.all ? 0 : sends - (run->completed ? 1 : 0) - 1;
    if (stored < 0 || stored > 1)
        return sweep_say("k=%u: %d notify_one(s) for %s", run->k, sends,
                         run->completed ? "two waiters" : "one waiter");
    bool ready = fresh_ready(&nc->e.n);
    if (ready != (stored == 1))
        return sweep_say("k=%u (%s): %d sent, a fresh waiter %s", run->k,
                         run->completed ? "completed" : "dropped", sends,
                         ready ? "found a permit" : "found none: a notification was lost");
    return NULL;
}

static void notified_teardown(void *ctx)
{
    notified_case *nc = ctx;
    weft_notify_fini(&nc->e.n);
}

static void test_cancel_sweep_notified_never_loses_a_notify_one(void **state)
{
    (void)state;
    static notified_case nc;
    nc.e.all = false;
    weft_sweep_case c = { notified_build, notified_check, notified_teardown, &nc };
    /* Poll 1 queues it; 2 sees it served. */
    sweep_both(&c, 2);
    assert_int_equal(misuse_count(), 0);
}

static void test_cancel_sweep_notified_woken_by_notify_waiters_passes_nothing_on(void **state)
{
    (void)state;
    static notified_case nc;
    nc.e.all = true;
    weft_sweep_case c = { notified_build, notified_check, notified_teardown, &nc };
    sweep_both(&c, 2);
    assert_int_equal(misuse_count(), 0);
}

/* The notified polled every other turn (support/every_other.h): a drop
 * after a turn it skipped finds the waiter chosen by a notify_one it has
 * not seen (SERVED), the hand-on path, with chaos off. */
static void test_cancel_sweep_notified_chosen_but_unseen_hands_it_on(void **state)
{
    (void)state;
    static notified_case nc;
    static every_other_sweep es;
    nc.e.all = false;
    weft_sweep_case inner = { notified_build, notified_check, notified_teardown, &nc };
    weft_sweep_case c = every_other_sweep_case(&es, &inner);
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 3);
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    sweep_pass(&c, &o);
    nc.e.all = true;
    sweep_pass(&c, &o);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
    alarm_watchdog_install("watchdog: a notify test hung (a lost notification?)\n");
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_notify_one_with_nobody_waiting_stores_one_permit_only),
        T(test_notify_one_wakes_the_oldest_waiter_first),
        T(test_notify_waiters_wakes_every_waiter_and_stores_nothing),
        T(test_a_chosen_waiter_dropped_hands_the_notification_to_the_next),
        T(test_a_chosen_waiter_dropped_alone_stores_the_permit),
        T(test_a_queued_waiter_dropped_just_unlinks),
        T(test_a_waiter_woken_by_notify_waiters_dropped_passes_nothing_on),
        T(test_fini_with_waiters_is_reported),
        T(test_null_arguments_are_reported_and_refused),
        RT(test_producers_and_consumers_lose_no_notification_on_two_workers),
        T(test_producers_and_consumers_on_the_sim_under_chaos),
        T(test_notify_wait_blocking_parks_a_foreign_thread_until_notified),
        RT(test_notify_wait_blocking_in_a_task_is_edeadlk),
        T(test_cancel_sweep_notified_never_loses_a_notify_one),
        T(test_cancel_sweep_notified_woken_by_notify_waiters_passes_nothing_on),
        T(test_cancel_sweep_notified_chosen_but_unseen_hands_it_on),
    };
#undef T
#undef RT
    alarm(ALARM_WATCHDOG_S * 4);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
