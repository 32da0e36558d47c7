/* Tests of sync/barrier.c: one leader per generation, reuse across
 * generations, an arrival taken back by a drop while waiting (and kept
 * once the generation was released), more waiters than one batch of
 * wakes, misuse; parties looping over many generations on two workers
 * and on sims with chaos; the cancel sweep of weft_barrier_wait. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "sync/waitq.h"
#include "support/counting_waker.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "misc_support.h"

static weft_poll poll_wait(weft_barrier_wait *w, counting_waker *c, bool *leader)
{
    weft_waker wk = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &wk);
    return weft_future_poll(&w->base, &cx, leader);
}

/* ---- by hand ---------------------------------------------------------------------------- */

static void test_last_to_arrive_leads_and_releases_the_others(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, 3), 0);
    for (int gen = 0; gen < 3; gen++) {
        weft_barrier_wait w[3];
        bool leader = true;
        for (int i = 0; i < 3; i++)
            weft_barrier_wait_init(&w[i], &b);
        long woken = cw_woken(&c);
        assert_int_equal(poll_wait(&w[0], &c, &leader), WEFT_PENDING);
        assert_int_equal(poll_wait(&w[1], &c, &leader), WEFT_PENDING);
        assert_int_equal(poll_wait(&w[0], &c, &leader), WEFT_PENDING); /* spurious */
        assert_int_equal(cw_woken(&c), woken);
        assert_int_equal(poll_wait(&w[2], &c, &leader), WEFT_READY);
        assert_true(leader);
        assert_int_equal(cw_woken(&c), woken + 2);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(poll_wait(&w[i], &c, &leader), WEFT_READY);
            assert_false(leader);
        }
        for (int i = 0; i < 3; i++)
            weft_future_drop(&w[i].base);
        assert_int_equal(b.generation_, (uint64_t)gen + 1);
    }
    assert_int_equal(cw_outstanding(&c), 0);
    weft_barrier_fini(&b);
}

static void test_a_barrier_of_one_always_leads(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, 1), 0);
    for (int i = 0; i < 3; i++) {
        weft_barrier_wait w;
        bool leader = false;
        weft_barrier_wait_init(&w, &b);
        assert_int_equal(poll_wait(&w, &c, &leader), WEFT_READY);
        assert_true(leader);
        weft_future_drop(&w.base);
    }
    assert_int_equal(cw_outstanding(&c), 0);
    weft_barrier_fini(&b);
}

static void test_a_wait_dropped_while_waiting_takes_its_arrival_back(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, 2), 0);
    weft_barrier_wait w[3];
    bool leader = false;
    for (int i = 0; i < 3; i++)
        weft_barrier_wait_init(&w[i], &b);
    assert_int_equal(poll_wait(&w[0], &c, &leader), WEFT_PENDING);
    weft_future_drop(&w[0].base);
    assert_int_equal(b.arrived_, 0u);
    assert_int_equal(cw_outstanding(&c), 0);
    /* w[1] does not lead: the generation still needs a second party. */
    assert_int_equal(poll_wait(&w[1], &c, &leader), WEFT_PENDING);
    assert_int_equal(poll_wait(&w[2], &c, &leader), WEFT_READY);
    assert_true(leader);
    assert_int_equal(poll_wait(&w[1], &c, &leader), WEFT_READY);
    assert_false(leader);
    weft_future_drop(&w[1].base);
    weft_future_drop(&w[2].base);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_barrier_fini(&b);
}

static void test_a_wait_dropped_after_its_release_stays_counted(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, 2), 0);
    weft_barrier_wait w[4];
    bool leader = false;
    for (int i = 0; i < 4; i++)
        weft_barrier_wait_init(&w[i], &b);
    assert_int_equal(poll_wait(&w[0], &c, &leader), WEFT_PENDING);
    assert_int_equal(poll_wait(&w[1], &c, &leader), WEFT_READY);
    assert_true(leader);
    weft_future_drop(&w[0].base); /* released, not seen: nothing taken back */
    assert_int_equal(b.arrived_, 0u);
    assert_int_equal(b.generation_, 1u);
    assert_int_equal(poll_wait(&w[2], &c, &leader), WEFT_PENDING);
    assert_int_equal(poll_wait(&w[3], &c, &leader), WEFT_READY);
    assert_true(leader);
    assert_int_equal(poll_wait(&w[2], &c, &leader), WEFT_READY);
    for (int i = 1; i < 4; i++)
        weft_future_drop(&w[i].base);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_barrier_fini(&b);
}

#define MANY 75 /* more than two batches of wakes */

static void test_more_parties_than_one_batch_of_wakes(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, MANY), 0);
    static weft_barrier_wait w[MANY];
    bool leader = false;
    for (int i = 0; i < MANY; i++) {
        weft_barrier_wait_init(&w[i], &b);
        assert_int_equal(poll_wait(&w[i], &c, &leader), i == MANY - 1 ? WEFT_READY : WEFT_PENDING);
    }
    assert_true(leader);
    assert_int_equal(cw_woken(&c), MANY - 1);
    for (int i = 0; i < MANY - 1; i++) {
        assert_int_equal(poll_wait(&w[i], &c, &leader), WEFT_READY);
        assert_false(leader);
    }
    for (int i = 0; i < MANY; i++)
        weft_future_drop(&w[i].base);
    assert_true(weft__waitq_empty(&b.q_));
    assert_int_equal(cw_outstanding(&c), 0);
    weft_barrier_fini(&b);
}

static void test_misuse_is_einval_or_reported(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    int before = misuse_count();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(NULL, 2), -EINVAL);
    assert_int_equal(weft_barrier_init(&b, 0), -EINVAL);
    assert_misuse_since(before, 2, "zero parties");
    assert_int_equal(weft_barrier_init(&b, 2), 0);
    weft_barrier_wait w;
    bool leader;
    weft_barrier_wait_init(&w, &b);
    assert_int_equal(poll_wait(&w, &c, &leader), WEFT_PENDING);
    weft_barrier_fini(&b);
    assert_misuse_since(before, 3, "still pending");
    weft_future_drop(&w.base);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_barrier_fini(&b);
    assert_misuse_since(before, 3, "still pending");
}

/* ---- parties over many generations ------------------------------------------------------ */

#define PARTIES 5
#define MANY_PARTIES 40 /* more than one batch of wakes */
#define ROUNDS 20

typedef struct rounds {
    weft_barrier b;
    int parties;
    _Atomic int arrivals[ROUNDS];
    _Atomic int leaders[ROUNDS];
} rounds;

/* Per round: count its arrival, wait, check that every party of the round
 * arrived, count a leader; outputs the rounds it found short (0). */
typedef struct party {
    weft_future base;
    weft_co co;
    rounds *r;
    int i, yields, bad;
    bool leader;
    weft_barrier_wait w;
} party;

WEFT_ASYNC_FN(party, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < ROUNDS; self->i++) {
        if ((self->i + self->yields) % 3 == 0)
            WEFT_FN_YIELD;
        /* Relaxed: the barrier orders it before the others' check (each
         * arrival and the leader's release go through its lock). */
        weft_atomic_fetch_add_relaxed(&self->r->arrivals[self->i], 1);
        weft_barrier_wait_init(&self->w, &self->r->b);
        WEFT_FN_AWAIT(&self->w, &self->leader);
        if (weft_atomic_load_relaxed(&self->r->arrivals[self->i]) < self->r->parties)
            self->bad++;
        if (self->leader)
            weft_atomic_fetch_add_relaxed(&self->r->leaders[self->i], 1);
    }
    WEFT_FN_RETURN(self->bad);
    WEFT_FN_END;
}

static void run_rounds(weft_rt *rt, int parties)
{
    static rounds r;
    r.parties = parties;
    assert_int_equal(weft_barrier_init(&r.b, (uint32_t)parties), 0);
    for (int i = 0; i < ROUNDS; i++) {
        weft_atomic_init(&r.arrivals[i], 0);
        weft_atomic_init(&r.leaders[i], 0);
    }
    weft_join j[MANY_PARTIES];
    for (int p = 0; p < parties; p++) {
        party t = { WEFT_FN_INIT(party, WEFT_F_SEND), .r = &r, .yields = p };
        spawn_into(rt, &t.base, sizeof t, &j[p]);
    }
    for (int p = 0; p < parties; p++)
        assert_int_equal(join_int(rt, &j[p]), 0);
    for (int i = 0; i < ROUNDS; i++)
        assert_int_equal(weft_atomic_load_relaxed(&r.leaders[i]), 1);
    assert_int_equal(r.b.generation_, (uint64_t)ROUNDS);
    weft_barrier_fini(&r.b);
}

static void test_parties_meet_every_generation_with_one_leader(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++)
        run_rounds(g_rt, PARTIES);
    /* A leader lets the lock go between batches of wakes: the next
     * generation's parties arrive meanwhile and must wait for theirs. */
    for (int round = 0; round < 10; round++)
        run_rounds(g_rt, MANY_PARTIES);
}

static void test_sim_chaos_parties_meet_every_generation_with_one_leader(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= CHAOS_SEEDS; seed++) {
        weft_rt *rt = chaos_sim(seed);
        run_rounds(rt, seed % 10 == 0 ? MANY_PARTIES : PARTIES);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* ---- cancel sweep ----------------------------------------------------------------------- */

/* A barrier of three: two helper parties and the wait under test, inside a
 * probe. When the probe is dropped and the wait's arrival does not count
 * (not made yet, or taken back by the drop), the probe spawns a
 * replacement party; counted (released, or completed), it does not. If
 * the row's promise broke either way, a party waits alone and the run
 * stalls. Each run also checks: one generation, one leader, every helper
 * finished, the barrier back at zero arrivals, its queue empty, no waker
 * of the wait left. */
typedef struct barrier_case {
    weft_barrier b;
    _Atomic int leaders, finished;
    int spawn_rc;
    bool replaced;
} barrier_case;

typedef struct helper {
    weft_future base;
    weft_co co;
    barrier_case *bc;
    bool leader;
    weft_barrier_wait w;
} helper;

WEFT_ASYNC_FN(helper, int)
{
    WEFT_FN_BEGIN;
    weft_barrier_wait_init(&self->w, &self->bc->b);
    WEFT_FN_AWAIT(&self->w, &self->leader);
    if (self->leader)
        weft_atomic_fetch_add_relaxed(&self->bc->leaders, 1);
    weft_atomic_fetch_add_relaxed(&self->bc->finished, 1);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct probe {
    weft_future base;
    barrier_case *bc;
    bool done;
    weft_barrier_wait w;
} probe;

static weft_poll probe_poll(weft_future *f, weft_cx *cx, void *out)
{
    probe *p = (probe *)f;
    if (weft_future_poll(&p->w.base, cx, out) == WEFT_PENDING)
        return WEFT_PENDING;
    p->done = true;
    if (*(bool *)out)
        weft_atomic_fetch_add_relaxed(&p->bc->leaders, 1);
    return WEFT_READY;
}

static void probe_drop(weft_future *f)
{
    probe *p = (probe *)f;
    bool counted = p->done ||
                   (p->w.arrived_ && weft__waiter_state(&p->w.w_) == WEFT__WAITER_SERVED);
    weft_future_drop(&p->w.base);
    if (!counted) {
        helper h = { WEFT_FN_INIT(helper, WEFT_F_SEND), .bc = p->bc };
        p->bc->spawn_rc = weft_spawn(NULL, &h.base, sizeof h, NULL);
        p->bc->replaced = true;
    }
}

static const weft_future_ops probe_ops = { "test_barrier_probe", sizeof(bool), probe_poll,
                                           probe_drop, NULL };

static int barrier_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    static probe p;
    static bool leader;
    barrier_case *bc = ctx;
    weft_atomic_init(&bc->leaders, 0);
    weft_atomic_init(&bc->finished, 0);
    bc->spawn_rc = 0;
    bc->replaced = false;
    int rc = weft_barrier_init(&bc->b, 3);
    for (int i = 0; rc == 0 && i < 2; i++) {
        helper h = { WEFT_FN_INIT(helper, WEFT_F_SEND), .bc = bc };
        rc = weft_spawn(rt, &h.base, sizeof h, NULL);
    }
    weft_future_init(&p.base, &probe_ops, WEFT_F_SEND);
    p.bc = bc;
    p.done = false;
    weft_barrier_wait_init(&p.w, &bc->b);
    *fut = &p.base;
    *out = &leader;
    return rc;
}

static const char *barrier_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    barrier_case *bc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    if (bc->spawn_rc != 0)
        return sweep_say("k=%u: the replacement was not spawned (%d)", run->k, bc->spawn_rc);
    int leaders = weft_atomic_load_relaxed(&bc->leaders);
    int finished = weft_atomic_load_relaxed(&bc->finished);
    if (leaders != 1 || finished != (bc->replaced ? 3 : 2))
        return sweep_say("k=%u: %d leader(s), %d helper(s) finished", run->k, leaders, finished);
    if (bc->b.generation_ != 1 || bc->b.arrived_ != 0 || !weft__waitq_empty(&bc->b.q_))
        return sweep_say("k=%u: generation %llu, %u arrived", run->k,
                         (unsigned long long)bc->b.generation_, bc->b.arrived_);
    return sweep_leftovers(rt);
}

static void barrier_teardown(void *ctx)
{
    weft_barrier_fini(&((barrier_case *)ctx)->b);
}

static void test_cancel_sweep_barrier_wait(void **state)
{
    (void)state;
    static barrier_case bc;
    weft_sweep_case c = { barrier_build, barrier_check, barrier_teardown, &bc };
    assert_true(sweep_both(&c) >= 2);
}

int main(void)
{
#define BY_HAND(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
#define ON_RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define ON_SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        BY_HAND(test_last_to_arrive_leads_and_releases_the_others),
        BY_HAND(test_a_barrier_of_one_always_leads),
        BY_HAND(test_a_wait_dropped_while_waiting_takes_its_arrival_back),
        BY_HAND(test_a_wait_dropped_after_its_release_stays_counted),
        BY_HAND(test_more_parties_than_one_batch_of_wakes),
        BY_HAND(test_misuse_is_einval_or_reported),
        ON_RT(test_parties_meet_every_generation_with_one_leader),
        ON_SIM(test_sim_chaos_parties_meet_every_generation_with_one_leader),
        ON_SIM(test_cancel_sweep_barrier_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
