/* Tests for sync/semaphore.c: weft_semaphore and its waiting future
 * weft_semaphore_acquire. By hand first (try_acquire, FIFO with partial
 * grants, no barging, what a drop gives back, close), then permit
 * conservation on two workers with random aborts, FIFO with a large
 * request at the front on the sim under chaos over many seeds, the
 * blocking acquire from foreign threads, and the cancel sweeps. */
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
#include "support/alarm_watchdog.h"
#include "support/counting_waker.h"
#include "support/every_other.h"
#include "support/rng.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

/* ---- by hand ------------------------------------------------------------------------ */

static weft_poll poll_with(weft_semaphore_acquire *a, counting_waker *c, int *status)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(&a->base, &cx, status);
}

/* Acquires queued now (under the queue's lock: other threads may queue). */
static unsigned queued(weft_semaphore *s)
{
    unsigned k = 0;
    weft__waitq_lock(&s->q_);
    for (weft_sync_waiter *w = s->q_.head_; w; w = w->next_)
        k++;
    weft__waitq_unlock(&s->q_);
    return k;
}

/* The WAITERS bit of the permit word (set exactly while acquires are
 * queued). */
static bool waiters_bit(weft_semaphore *s)
{
    /* Relaxed: a snapshot. */
    return (weft_atomic_load_relaxed(&s->permits_) & 2u) != 0;
}

static void test_try_acquire_release_and_available(void **state)
{
    (void)state;
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 5), 0);
    assert_int_equal(weft_semaphore_available(&s), 5);
    assert_int_equal(weft_semaphore_try_acquire(&s, 3), 0);
    assert_int_equal(weft_semaphore_available(&s), 2);
    assert_int_equal(weft_semaphore_try_acquire(&s, 3), -EAGAIN);
    assert_int_equal(weft_semaphore_try_acquire(&s, 0), 0);
    assert_int_equal(weft_semaphore_release(&s, 3), 0);
    assert_int_equal(weft_semaphore_available(&s), 5);
    assert_int_equal(misuse_count(), 0);
    /* Too many, anywhere: refused and reported. */
    weft_semaphore bad;
    assert_int_equal(weft_semaphore_init(&bad, WEFT_SEMAPHORE_MAX + 1), -EINVAL);
    assert_int_equal(weft_semaphore_try_acquire(&s, WEFT_SEMAPHORE_MAX + 1), -EINVAL);
    assert_int_equal(weft_semaphore_release(&s, WEFT_SEMAPHORE_MAX + 1), -EINVAL);
    assert_int_equal(weft_semaphore_release(&s, WEFT_SEMAPHORE_MAX - 4), -EINVAL);
    assert_int_equal(weft_semaphore_available(&s), 5);
    assert_misuse_since(0, 4, "weft_semaphore_release");
    assert_int_equal(weft_semaphore_release(&s, WEFT_SEMAPHORE_MAX - 5), 0);
    assert_int_equal(weft_semaphore_available(&s), WEFT_SEMAPHORE_MAX);
    weft_semaphore_fini(&s);
}

static void test_acquire_is_served_in_fifo_order_with_partial_grants(void **state)
{
    (void)state;
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 0), 0);
    counting_waker c[3];
    weft_semaphore_acquire a[3];
    const size_t want[3] = { 3, 1, 1 };
    int st[3] = { -1, -1, -1 };
    for (int i = 0; i < 3; i++) {
        cw_init(&c[i]);
        weft_semaphore_acquire_init(&a[i], &s, want[i]);
        assert_int_equal(poll_with(&a[i], &c[i], &st[i]), WEFT_PENDING);
    }
    /* Two for the front, which wants three: it keeps them and waits. */
    assert_int_equal(weft_semaphore_release(&s, 2), 0);
    assert_int_equal(weft_semaphore_available(&s), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cw_woken(&c[i]), 0);
    assert_int_equal(a[0].w_.data_, 1);
    /* The third: the front is served, nobody behind it passed it. */
    assert_int_equal(weft_semaphore_release(&s, 1), 0);
    assert_int_equal(cw_woken(&c[0]), 1);
    assert_int_equal(cw_woken(&c[1]) + cw_woken(&c[2]), 0);
    assert_int_equal(poll_with(&a[1], &c[1], &st[1]), WEFT_PENDING);
    assert_int_equal(poll_with(&a[0], &c[0], &st[0]), WEFT_READY);
    assert_int_equal(st[0], 0);
    assert_int_equal(weft_semaphore_release(&s, 2), 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(cw_woken(&c[i]), 1);
        assert_int_equal(poll_with(&a[i], &c[i], &st[i]), WEFT_READY);
        assert_int_equal(st[i], 0);
    }
    assert_int_equal(weft_semaphore_available(&s), 0);
    assert_false(waiters_bit(&s));
    for (int i = 0; i < 3; i++) {
        weft_future_drop(&a[i].base); /* after READY: gives nothing back */
        assert_int_equal(cw_outstanding(&c[i]), 0);
    }
    assert_int_equal(weft_semaphore_available(&s), 0);
    weft_semaphore_fini(&s);
    assert_int_equal(misuse_count(), 0);
}

static void test_nothing_passes_a_queued_acquire(void **state)
{
    (void)state;
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 2), 0);
    counting_waker c;
    cw_init(&c);
    weft_semaphore_acquire big, small;
    int st = -1, st2 = -1;
    weft_semaphore_acquire_init(&big, &s, 3);
    assert_int_equal(poll_with(&big, &c, &st), WEFT_PENDING);
    assert_true(waiters_bit(&s));
    /* Neither try_acquire nor a later acquire of one takes a permit
     * released now. */
    assert_int_equal(weft_semaphore_release(&s, 1), 0);
    assert_int_equal(weft_semaphore_try_acquire(&s, 1), -EAGAIN);
    weft_semaphore_acquire_init(&small, &s, 1);
    assert_int_equal(poll_with(&small, &c, &st2), WEFT_PENDING);
    assert_int_equal(poll_with(&big, &c, &st), WEFT_READY);
    assert_int_equal(st, 0);
    assert_int_equal(weft_semaphore_try_acquire(&s, 1), -EAGAIN); /* small waits */
    assert_int_equal(weft_semaphore_release(&s, 2), 0);
    assert_int_equal(poll_with(&small, &c, &st2), WEFT_READY);
    assert_int_equal(weft_semaphore_try_acquire(&s, 1), 0);
    assert_int_equal(weft_semaphore_available(&s), 0);
    weft_future_drop(&big.base);
    weft_future_drop(&small.base);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_semaphore_fini(&s);
}

static void test_a_partly_served_acquire_dropped_gives_its_permits_to_the_next(void **state)
{
    (void)state;
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 0), 0);
    counting_waker c[2];
    weft_semaphore_acquire a[2];
    int st[2] = { -1, -1 };
    for (int i = 0; i < 2; i++) {
        cw_init(&c[i]);
        weft_semaphore_acquire_init(&a[i], &s, i == 0 ? 3 : 2);
        assert_int_equal(poll_with(&a[i], &c[i], &st[i]), WEFT_PENDING);
    }
    assert_int_equal(weft_semaphore_release(&s, 2), 0); /* to the front: 2 of 3 */
    assert_int_equal(cw_woken(&c[1]), 0);
    weft_future_drop(&a[0].base);
    assert_int_equal(cw_woken(&c[1]), 1); /* its two serve the next */
    assert_int_equal(poll_with(&a[1], &c[1], &st[1]), WEFT_READY);
    assert_int_equal(st[1], 0);
    assert_int_equal(weft_semaphore_available(&s), 0);
    weft_future_drop(&a[1].base);
    /* Alone, it gives them back to the semaphore. */
    weft_semaphore_acquire_init(&a[0], &s, 3);
    assert_int_equal(weft_semaphore_release(&s, 1), 0);
    assert_int_equal(poll_with(&a[0], &c[0], &st[0]), WEFT_PENDING);
    assert_int_equal(weft_semaphore_available(&s), 0);
    weft_future_drop(&a[0].base);
    assert_int_equal(weft_semaphore_available(&s), 1);
    assert_false(waiters_bit(&s));
    assert_int_equal(weft_semaphore_try_acquire(&s, 1), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(cw_outstanding(&c[i]), 0);
    weft_semaphore_fini(&s);
}

static void test_a_served_acquire_dropped_unseen_gives_back_all(void **state)
{
    (void)state;
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 1), 0);
    counting_waker c[2];
    weft_semaphore_acquire a[2];
    int st[2] = { -1, -1 };
    for (int i = 0; i < 2; i++) {
        cw_init(&c[i]);
        weft_semaphore_acquire_init(&a[i], &s, 2);
        assert_int_equal(poll_with(&a[i], &c[i], &st[i]), WEFT_PENDING);
    }
    assert_int_equal(weft_semaphore_release(&s, 1), 0); /* the front has its 2 */
    assert_int_equal(cw_woken(&c[0]), 1);
    weft_future_drop(&a[0].base); /* never saw them: all 2 go to the next */
    assert_int_equal(cw_woken(&c[1]), 1);
    assert_int_equal(poll_with(&a[1], &c[1], &st[1]), WEFT_READY);
    assert_int_equal(weft_semaphore_available(&s), 0);
    assert_int_equal(weft_semaphore_release(&s, 2), 0);
    assert_int_equal(weft_semaphore_available(&s), 2);
    weft_future_drop(&a[1].base);
    for (int i = 0; i < 2; i++)
        assert_int_equal(cw_outstanding(&c[i]), 0);
    weft_semaphore_fini(&s);
}

/* More waiters than one wakeset holds. */
#define MANY 75

static void test_one_release_serves_many_waiters(void **state)
{
    (void)state;
    static weft_semaphore_acquire a[MANY];
    int st = -1;
    counting_waker c;
    cw_init(&c);
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 0), 0);
    for (int i = 0; i < MANY; i++) {
        weft_semaphore_acquire_init(&a[i], &s, 1);
        assert_int_equal(poll_with(&a[i], &c, &st), WEFT_PENDING);
    }
    assert_int_equal(weft_semaphore_release(&s, MANY + 2), 0);
    assert_int_equal(cw_woken(&c), MANY);
    assert_int_equal(weft_semaphore_available(&s), 2);
    assert_false(waiters_bit(&s));
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(poll_with(&a[i], &c, &st), WEFT_READY);
        assert_int_equal(st, 0);
        weft_future_drop(&a[i].base);
    }
    assert_int_equal(cw_outstanding(&c), 0);
    weft_semaphore_fini(&s);
}

static void test_close_fails_every_waiter_with_epipe(void **state)
{
    (void)state;
    static weft_semaphore_acquire a[MANY];
    int st = 0;
    counting_waker c;
    cw_init(&c);
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 1), 0);
    for (int i = 0; i < MANY; i++) {
        weft_semaphore_acquire_init(&a[i], &s, i == 0 ? 3 : 1); /* the front gets 1 of 3 */
        assert_int_equal(poll_with(&a[i], &c, &st), WEFT_PENDING);
    }
    assert_int_equal(weft_semaphore_available(&s), 0);
    weft_semaphore_close(&s);
    assert_int_equal(cw_woken(&c), MANY);
    assert_int_equal(weft_semaphore_available(&s), 1); /* the partial grant came back */
    for (int i = 0; i < MANY; i++) {
        st = 0;
        assert_int_equal(poll_with(&a[i], &c, &st), WEFT_READY);
        assert_int_equal(st, -EPIPE);
        weft_future_drop(&a[i].base);
    }
    /* Later acquires fail; releases still count. */
    weft_semaphore_acquire late;
    weft_semaphore_acquire_init(&late, &s, 1);
    assert_int_equal(poll_with(&late, &c, &st), WEFT_READY);
    assert_int_equal(st, -EPIPE);
    weft_future_drop(&late.base);
    weft_semaphore_acquire_init(&late, &s, 0);
    assert_int_equal(poll_with(&late, &c, &st), WEFT_READY);
    assert_int_equal(st, -EPIPE);
    weft_future_drop(&late.base);
    assert_int_equal(weft_semaphore_try_acquire(&s, 1), -EPIPE);
    assert_int_equal(weft_semaphore_release(&s, 2), 0);
    assert_int_equal(weft_semaphore_available(&s), 3);
    weft_semaphore_close(&s); /* idempotent */
    assert_int_equal(cw_outstanding(&c), 0);
    weft_semaphore_fini(&s);
    assert_int_equal(misuse_count(), 0);
}

static void test_acquire_of_zero_or_too_many(void **state)
{
    (void)state;
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 0), 0);
    counting_waker c;
    cw_init(&c);
    int st = -1;
    weft_semaphore_acquire q, z, big;
    weft_semaphore_acquire_init(&q, &s, 1);
    assert_int_equal(poll_with(&q, &c, &st), WEFT_PENDING);
    /* Zero takes nothing, so it passes nobody: READY at once. */
    weft_semaphore_acquire_init(&z, &s, 0);
    assert_int_equal(poll_with(&z, &c, &st), WEFT_READY);
    assert_int_equal(st, 0);
    weft_future_drop(&z.base);
    int before = misuse_count();
    weft_semaphore_acquire_init(&big, &s, WEFT_SEMAPHORE_MAX + 1);
    assert_misuse_since(before, 1, "weft_semaphore_acquire_init");
    assert_int_equal(poll_with(&big, &c, &st), WEFT_READY);
    assert_int_equal(st, -EINVAL);
    weft_future_drop(&big.base);
    weft_future_drop(&q.base);
    assert_false(waiters_bit(&s));
    assert_int_equal(cw_outstanding(&c), 0);
    weft_semaphore_fini(&s);
}

static void test_fini_with_waiters_is_reported(void **state)
{
    (void)state;
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 0), 0);
    counting_waker c;
    cw_init(&c);
    int st;
    weft_semaphore_acquire a;
    weft_semaphore_acquire_init(&a, &s, 1);
    assert_int_equal(poll_with(&a, &c, &st), WEFT_PENDING);
    int before = misuse_count();
    weft_semaphore_fini(&s);
    assert_misuse_since(before, 1, "weft_semaphore_fini");
    weft_future_drop(&a.base);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* ---- conservation under aborts ------------------------------------------------------------ */

/* What the holders share: the semaphore, how many permits are held now
 * (never above the semaphore's), and the most ever held. */
typedef struct pool {
    weft_semaphore s;
    size_t permits;
    _Atomic long held;
    _Atomic long over; /* times `held` was seen above `permits` */
} pool;

/* Takes 1..3 permits, holds them across a yield, gives them back; `rounds`
 * times. Aborted at any point, its drop gives back what it holds. */
typedef struct holder {
    weft_future base;
    weft_co co;
    pool *p;
    weft_semaphore_acquire a;
    size_t k;
    bool holding;
    int rc, i, rounds;
    uint64_t rng;
} holder;

static void holder_give_back(holder *self)
{
    weft_atomic_fetch_sub_acq_rel(&self->p->held, (long)self->k);
    self->holding = false;
    if (weft_semaphore_release(&self->p->s, self->k) != 0)
        weft_atomic_fetch_add_relaxed(&self->p->over, 1000); /* on a worker: no assert */
}

static void holder_drop(weft_future *f)
{
    holder *self = (holder *)f;
    weft_co_drop(&self->co); /* a pending acquire gives back its part */
    if (self->holding)
        holder_give_back(self);
}

WEFT_ASYNC_FN_WITH_DROP(holder, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->rounds; self->i++) {
        self->k = 1 + rng_next32(&self->rng) % 3;
        weft_semaphore_acquire_init(&self->a, &self->p->s, self->k);
        WEFT_FN_AWAIT(&self->a, &self->rc);
        if (self->rc != 0)
            WEFT_FN_RETURN(self->rc);
        self->holding = true;
        if (weft_atomic_fetch_add_acq_rel(&self->p->held, (long)self->k) + (long)self->k >
            (long)self->p->permits)
            weft_atomic_fetch_add_relaxed(&self->p->over, 1);
        WEFT_FN_YIELD;
        holder_give_back(self);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

#define HOLDERS 32

static void test_permits_are_conserved_under_random_aborts_on_two_workers(void **state)
{
    (void)state;
    static weft_join j[HOLDERS];
    for (uint64_t round = 0; round < 20; round++) {
        pool p = { .permits = 4 };
        assert_int_equal(weft_semaphore_init(&p.s, p.permits), 0);
        weft_atomic_init(&p.held, 0);
        weft_atomic_init(&p.over, 0);
        uint64_t rng = rng_seed(round);
        for (int i = 0; i < HOLDERS; i++)
            assert_int_equal(WEFT_SPAWN(g_rt, &j[i],
                                        &(holder){ WEFT_FN_INIT(holder, WEFT_F_SEND), .p = &p,
                                                   .rounds = 50,
                                                   .rng = rng_seed(round * 1000 + (uint64_t)i) }),
                             0);
        /* Abort about a third of them, at moments the workers choose. */
        for (int i = 0; i < HOLDERS; i++) {
            if (rng_next32(&rng) % 3 == 0)
                weft_join_abort(&j[i]);
            sched_yield();
        }
        int done = 0, cancelled = 0;
        for (int i = 0; i < HOLDERS; i++) {
            int out = -1;
            int status = join_blocking(g_rt, &j[i], &out, sizeof out);
            if (status == 0) {
                assert_int_equal(out, 0);
                done++;
            } else {
                assert_int_equal(status, -ECANCELED);
                cancelled++;
            }
        }
        assert_int_equal(done + cancelled, HOLDERS);
        assert_int_equal(weft_atomic_load_acquire(&p.over), 0);
        assert_int_equal(weft_atomic_load_acquire(&p.held), 0);
        assert_int_equal(weft_semaphore_available(&p.s), p.permits);
        assert_int_equal(queued(&p.s), 0);
        assert_false(waiters_bit(&p.s));
        weft_semaphore_fini(&p.s);
    }
    assert_int_equal(misuse_count(), 0);
}

/* Acquires `n` and outputs the status (giving back what it got). */
typedef struct acquirer {
    weft_future base;
    weft_co co;
    weft_semaphore *s;
    weft_semaphore_acquire a;
    size_t n;
    int rc;
} acquirer;

WEFT_ASYNC_FN(acquirer, int)
{
    WEFT_FN_BEGIN;
    weft_semaphore_acquire_init(&self->a, self->s, self->n);
    WEFT_FN_AWAIT(&self->a, &self->rc);
    if (self->rc == 0 && weft_semaphore_release(self->s, self->n) != 0)
        WEFT_FN_RETURN(-1);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

static void test_close_wakes_every_waiting_task_with_epipe_on_two_workers(void **state)
{
    (void)state;
    enum { TASKS = 40 };
    static weft_join j[TASKS];
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 1), 0);
    for (int i = 0; i < TASKS; i++)
        assert_int_equal(WEFT_SPAWN(g_rt, &j[i], &(acquirer){ WEFT_FN_INIT(acquirer, WEFT_F_SEND),
                                                              .s = &s, .n = 2 }),
                         0);
    WAIT_UNTIL(queued(&s) == TASKS);
    weft_semaphore_close(&s);
    for (int i = 0; i < TASKS; i++) {
        int out = 0;
        assert_int_equal(join_blocking(g_rt, &j[i], &out, sizeof out), 0);
        assert_int_equal(out, -EPIPE);
    }
    assert_int_equal(weft_semaphore_available(&s), 1); /* the front's partial grant */
    weft_semaphore_fini(&s);
    assert_int_equal(misuse_count(), 0);
}

/* ---- FIFO: a large request is not starved ---------------------------------------------------- */

/* The shared record of the FIFO scenario. */
typedef struct fifo {
    weft_semaphore s;
    bool big_queued, big_done; /* one thread: the sim's */
    int passed;                /* small acquires begun after big queued, done before it */
    int small_done;
} fifo;

/* Wants every permit; marks when it first waits and when it has them. */
typedef struct big {
    weft_future base;
    fifo *f;
    weft_semaphore_acquire a;
    int yields;
} big;

static weft_poll big_poll(weft_future *fut, weft_cx *cx, void *out)
{
    big *b = (big *)fut;
    (void)out;
    if (b->yields > 0) { /* let the small ones start first */
        b->yields--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    int st = -1;
    if (weft_future_poll(&b->a.base, cx, &st) == WEFT_PENDING) {
        b->f->big_queued = b->f->big_queued || b->a.step_ == 1;
        return WEFT_PENDING;
    }
    assert_int_equal(st, 0);
    b->f->big_done = true;
    assert_int_equal(weft_semaphore_release(&b->f->s, b->a.n_), 0);
    return WEFT_READY;
}

static void big_drop(weft_future *fut)
{
    weft_future_drop(&((big *)fut)->a.base);
}

static const weft_future_ops big_ops = { "big", 0, big_poll, big_drop, NULL };

/* Takes one permit at a time, holds it across a yield, until the big one
 * is done (at most SMALL_ROUNDS times). */
typedef struct small {
    weft_future base;
    weft_co co;
    fifo *f;
    weft_semaphore_acquire a;
    bool after; /* began once big was queued, before it was done */
    int rc, i;
} small;

#define SMALL_ROUNDS 200

WEFT_ASYNC_FN(small, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < SMALL_ROUNDS && !self->f->big_done; self->i++) {
        self->after = self->f->big_queued && !self->f->big_done;
        weft_semaphore_acquire_init(&self->a, &self->f->s, 1);
        WEFT_FN_AWAIT(&self->a, &self->rc);
        if (self->after && !self->f->big_done)
            self->f->passed++;
        WEFT_FN_YIELD;
        if (weft_semaphore_release(&self->f->s, 1) != 0)
            WEFT_FN_RETURN(-1);
    }
    self->f->small_done++;
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

#define PERMITS 4

static void fifo_run(weft_rt *rt)
{
    fifo f = { 0 };
    assert_int_equal(weft_semaphore_init(&f.s, PERMITS), 0);
    for (int i = 0; i < PERMITS; i++)
        assert_int_equal(WEFT_SPAWN(rt, NULL, &(small){ WEFT_FN_INIT(small, WEFT_F_SEND),
                                                        .f = &f }),
                         0);
    big b = { WEFT_FUTURE_INIT(&big_ops, WEFT_F_SEND), .f = &f, .yields = 3 };
    weft_semaphore_acquire_init(&b.a, &f.s, PERMITS);
    assert_int_equal(weft_spawn(rt, &b.base, sizeof b, NULL), 0);
    SIM_ASSERT(rt, weft_sim_run(rt) == 0);
    SIM_ASSERT(rt, f.big_done && f.small_done == PERMITS);
    SIM_ASSERT(rt, f.passed == 0);
    SIM_ASSERT(rt, weft_semaphore_available(&f.s) == PERMITS);
    weft_semaphore_fini(&f.s);
}

static void test_a_large_acquire_at_the_front_is_not_starved_on_the_sim(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    for (uint64_t seed = 1; seed <= 200; seed++) {
        weft_sim_options o = sim_options(seed);
        o.spurious_wake = 0.3;
        o.leaf_pending = 0.3;
        weft_rt *rt = sim_start(&o);
        fifo_run(rt);
        weft_rt_shutdown(rt);
    }
    assert_int_equal(misuse_count(), 0);
}

/* ---- blocking acquires ------------------------------------------------------------------------- */

typedef struct blocker {
    weft_semaphore *s;
    size_t n;
    _Atomic int rc;
} blocker;

static void *blocker_main(void *arg)
{
    blocker *b = arg;
    weft_atomic_store_release(&b->rc, weft_semaphore_acquire_blocking(b->s, b->n));
    return NULL;
}

static void test_acquire_blocking_parks_a_foreign_thread_until_released(void **state)
{
    (void)state;
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, 1), 0);
    blocker b = { &s, 3, 1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocker_main, &b), 0);
    WAIT_UNTIL(queued(&s) == 1);
    assert_int_equal(weft_semaphore_release(&s, 1), 0); /* 2 of 3 */
    assert_int_equal(weft_atomic_load_acquire(&b.rc), 1);
    assert_int_equal(weft_semaphore_release(&s, 1), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(weft_atomic_load_acquire(&b.rc), 0);
    assert_int_equal(weft_semaphore_available(&s), 0);
    /* A close wakes a parked thread with -EPIPE. */
    blocker b2 = { &s, 1, 1 };
    assert_int_equal(pthread_create(&t, NULL, blocker_main, &b2), 0);
    WAIT_UNTIL(queued(&s) == 1);
    weft_semaphore_close(&s);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(weft_atomic_load_acquire(&b2.rc), -EPIPE);
    assert_int_equal(weft_semaphore_acquire_blocking(&s, 1), -EPIPE);
    assert_int_equal(weft_semaphore_acquire_blocking(NULL, 1), -EINVAL);
    assert_misuse_since(0, 1, "weft_semaphore_acquire_blocking");
    weft_semaphore_fini(&s);
}

static weft_semaphore g_task_sem;

static void acquire_blocking_in_task(void *arg, void *out)
{
    (void)arg;
    *(int *)out = weft_semaphore_acquire_blocking(&g_task_sem, 1);
}

static void test_acquire_blocking_in_a_task_is_edeadlk(void **state)
{
    (void)state;
    assert_int_equal(weft_semaphore_init(&g_task_sem, 1), 0);
    int out = 0;
    int before = misuse_count();
    assert_int_equal(RUN_FN_BLOCKING(g_rt, acquire_blocking_in_task, &out, sizeof out), 0);
    assert_int_equal(out, -EDEADLK);
    assert_misuse_since(before, 1, "weft_semaphore_acquire_blocking");
    assert_int_equal(weft_semaphore_available(&g_task_sem), 1); /* nothing taken */
    weft_semaphore_fini(&g_task_sem);
}

/* ---- cancel sweeps ------------------------------------------------------------------------------ */

#define SEEDS 8
#define CHAOS 0.3
#define SWEEP_PERMITS 3

/* The environment: three permits; a holder that has two from the start
 * and gives them back one at a time, and a later acquire of one queued
 * behind the future (which wants two: one at its first poll, the other
 * from the holder). `held` counts what the environment holds. */
typedef struct sem_env {
    weft_semaphore s;
    _Atomic int held;
} sem_env;

typedef struct giver {
    weft_future base;
    weft_co co;
    sem_env *e;
    int i;
} giver;

WEFT_ASYNC_FN(giver, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 4; self->i++) {
        WEFT_FN_YIELD;
        if (self->i % 2 == 1) {
            weft_atomic_fetch_sub_relaxed(&self->e->held, 1);
            if (weft_semaphore_release(&self->e->s, 1) != 0)
                WEFT_FN_RETURN(-1);
        }
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct taker {
    weft_future base;
    weft_co co;
    sem_env *e;
    weft_semaphore_acquire a;
    int rc;
} taker;

WEFT_ASYNC_FN(taker, int)
{
    WEFT_FN_BEGIN;
    weft_semaphore_acquire_init(&self->a, &self->e->s, 1);
    WEFT_FN_AWAIT(&self->a, &self->rc);
    weft_atomic_fetch_add_relaxed(&self->e->held, 1);
    WEFT_FN_YIELD;
    weft_atomic_fetch_sub_relaxed(&self->e->held, 1);
    if (weft_semaphore_release(&self->e->s, 1) != 0)
        WEFT_FN_RETURN(-1);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

typedef struct acquire_case {
    sem_env e;
    weft_semaphore_acquire a;
    int out;
} acquire_case;

static int acquire_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    acquire_case *ac = ctx;
    if (weft_semaphore_init(&ac->e.s, SWEEP_PERMITS) != 0 ||
        weft_semaphore_try_acquire(&ac->e.s, 2) != 0)
        return -EINVAL;
    weft_atomic_init(&ac->e.held, 2);
    ac->out = 1;
    weft_semaphore_acquire_init(&ac->a, &ac->e.s, 2);
    int err = WEFT_SPAWN(rt, NULL, &(giver){ WEFT_FN_INIT(giver, WEFT_F_SEND), .e = &ac->e });
    if (!err)
        err = WEFT_SPAWN(rt, NULL, &(taker){ WEFT_FN_INIT(taker, WEFT_F_SEND), .e = &ac->e });
    *fut = &ac->a.base;
    *out = &ac->out;
    return err;
}

static const char *acquire_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    acquire_case *ac = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (queued(&ac->e.s) || waiters_bit(&ac->e.s))
        return sweep_say("k=%u: acquires still queued, or WAITERS left set", run->k);
    if (run->completed && ac->out != 0)
        return sweep_say("completed with %d", ac->out);
    if (!run->completed && ac->out != 1)
        return "an output was written by an acquire dropped before it finished";
    /* Every permit is back but the future's own, if it got them. */
    size_t want = SWEEP_PERMITS - (size_t)weft_atomic_load_relaxed(&ac->e.held) -
                  (run->completed ? 2 : 0);
    size_t have = weft_semaphore_available(&ac->e.s);
    if (have != want)
        return sweep_say("k=%u (%s): %zu permit(s) available, want %zu", run->k,
                         run->completed ? "completed" : "dropped", have, want);
    return NULL;
}

static void acquire_teardown(void *ctx)
{
    weft_semaphore_fini(&((acquire_case *)ctx)->e.s);
}

static void test_cancel_sweep_semaphore_acquire_gives_back_what_it_was_given(void **state)
{
    (void)state;
    static acquire_case ac;
    weft_sweep_case c = { acquire_build, acquire_check, acquire_teardown, &ac };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_int_equal(res.polls, 2); /* 1: one of two, queued; 2: served */
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    sweep_pass(&c, &o);
    assert_int_equal(misuse_count(), 0);
}

/* The acquire polled every other turn (support/every_other.h), so a drop
 * may find it served in full but unseen. */
static void test_cancel_sweep_semaphore_acquire_served_but_unseen_gives_back_all(void **state)
{
    (void)state;
    static acquire_case ac;
    static every_other_sweep es;
    weft_sweep_case inner = { acquire_build, acquire_check, acquire_teardown, &ac };
    weft_sweep_case c = every_other_sweep_case(&es, &inner);
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 3);
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    sweep_pass(&c, &o);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
    alarm_watchdog_install("watchdog: a semaphore test hung (a lost permit or wake?)\n");
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_try_acquire_release_and_available),
        T(test_acquire_is_served_in_fifo_order_with_partial_grants),
        T(test_nothing_passes_a_queued_acquire),
        T(test_a_partly_served_acquire_dropped_gives_its_permits_to_the_next),
        T(test_a_served_acquire_dropped_unseen_gives_back_all),
        T(test_one_release_serves_many_waiters),
        T(test_close_fails_every_waiter_with_epipe),
        T(test_acquire_of_zero_or_too_many),
        T(test_fini_with_waiters_is_reported),
        RT(test_permits_are_conserved_under_random_aborts_on_two_workers),
        RT(test_close_wakes_every_waiting_task_with_epipe_on_two_workers),
        T(test_a_large_acquire_at_the_front_is_not_starved_on_the_sim),
        T(test_acquire_blocking_parks_a_foreign_thread_until_released),
        RT(test_acquire_blocking_in_a_task_is_edeadlk),
        T(test_cancel_sweep_semaphore_acquire_gives_back_what_it_was_given),
        T(test_cancel_sweep_semaphore_acquire_served_but_unseen_gives_back_all),
    };
#undef T
#undef RT
    alarm(ALARM_WATCHDOG_S * 4);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
