/* Unit tests for testing/sweep.c, the cancel sweep: it counts the polls N
 * a future needs and drops it after each k in 0..N (every await point a
 * cancellation point), on fresh sims, seed after seed; what it finds —
 * a leak at the second await point (the k and the seed it reports), an
 * item lost by a race, a peer stranded by a drop (the stall report names
 * it and where it waits), a waker registration never taken back, a future
 * that never completes, a scenario that depends on more than the seed —
 * and what it refuses. The race of docs/testing.md's worked example is
 * here, swept over seeds with chaos on.
 *
 * Every test runs on the counting allocator (support/sim.h): whatever a
 * sweep's runs allocated came back once it returned. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "support/never.h"
#include "support/sim.h"
#include "support/sweep.h"

/* ---- every k -------------------------------------------------------------------------- */

/* Awaits three yields, counting those it came back from, then answers
 * 7: polls 1..3 end at a yield, poll 4 is READY. */
typedef struct stepper {
    weft_future base;
    weft_co co;
    weft_yield y;
    int *steps;
    int i;
} stepper;

WEFT_ASYNC_FN(stepper, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++) {
        weft_yield_init(&self->y);
        WEFT_FN_AWAIT(&self->y, NULL);
        (*self->steps)++;
    }
    WEFT_FN_RETURN(7);
    WEFT_FN_END;
}

typedef struct steps_case {
    bool chaos; /* polls per yield vary: steps are not a function of k */
    stepper s;
    int out, steps, builds, teardowns;
    uint32_t k[16];
    bool done[16];
    uint64_t seed[16];
    int runs;
} steps_case;

static int steps_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    steps_case *sc = ctx;
    (void)rt;
    sc->builds++;
    sc->steps = 0;
    sc->out = -1;
    sc->s = (stepper){ WEFT_FN_INIT(stepper, WEFT_F_SEND), .steps = &sc->steps };
    *fut = &sc->s.base;
    *out = &sc->out;
    return 0;
}

static const char *steps_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    steps_case *sc = ctx;
    if (sc->runs < 16) {
        sc->k[sc->runs] = run->k;
        sc->done[sc->runs] = run->completed;
        sc->seed[sc->runs] = run->seed;
    }
    sc->runs++;
    int want = run->completed ? 3 : (run->k > 0 ? (int)run->k - 1 : 0);
    if (!sc->chaos && sc->steps != want)
        return sweep_say("k=%u: %d steps, want %d", run->k, sc->steps, want);
    if (sc->out != (run->completed ? 7 : -1))
        return sweep_say("k=%u: output %d", run->k, sc->out);
    /* A yield wakes its task before it returns PENDING: nothing is
     * registered anywhere, and no wake comes after the drop. */
    if (run->wakers_after_drop || run->wakes_after_drop || run->timers_after_drop)
        return "a yield left something behind";
    return sweep_leftovers(rt);
}

static void steps_teardown(void *ctx)
{
    ((steps_case *)ctx)->teardowns++;
}

static void test_sweep_drops_the_future_after_every_number_of_polls(void **state)
{
    (void)state;
    static steps_case sc;
    memset(&sc, 0, sizeof sc);
    weft_sweep_case c = { steps_build, steps_check, steps_teardown, &sc };
    weft_sweep_options o = sweep_options(3, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_int_equal(res.polls, 4);
    assert_int_equal(res.runs, 5);
    assert_int_equal(res.seeds, 1);
    assert_false(res.failed);
    assert_string_equal(res.message, "");
    assert_int_equal(sc.builds, 5);
    assert_int_equal(sc.teardowns, 5);
    /* The counting run (complete, k = N) first, then every k < N. */
    const uint32_t want[] = { 4, 0, 1, 2, 3 };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sc.k[i], want[i]);
        assert_int_equal(sc.done[i], i == 0);
        assert_int_equal(sc.seed[i], sim_seed_or(3));
    }
    assert_int_equal(g_sim_reports, 0);
}

static void test_sweep_sweeps_seeds_and_counts_polls_per_seed(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    static steps_case sc;
    memset(&sc, 0, sizeof sc);
    sc.chaos = true;
    weft_sweep_case c = { steps_build, steps_check, NULL, &sc };
    /* Every leaf PENDING first, but never twice in a row: a yield takes
     * four polls (chaos, its own PENDING, chaos, READY), and the
     * coroutine's last one completes it: N = 10, whatever the seed. */
    weft_sweep_options o = sweep_options(10, 4);
    o.sim.leaf_pending = WEFT_SIM_ON;
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_int_equal(res.seeds, 4);
    assert_int_equal(res.polls, 10);
    assert_int_equal(res.runs, 4 * 11);
    assert_int_equal(sc.builds, 44);
    assert_int_equal(sc.seed[11], 11); /* the second seed's counting run */
    /* Random chaos: N differs from seed to seed. */
    memset(&sc, 0, sizeof sc);
    sc.chaos = true;
    o.sim.leaf_pending = 0.5;
    res = sweep_pass(&c, &o);
    assert_int_equal(res.seeds, 4);
    assert_true(res.polls >= 4 && res.polls <= 10);
    assert_true(res.runs > 4 * 5 && res.runs < 4 * 11);
}

/* ---- a leak at the second await point ---------------------------------------------------- */

/* A deliberately broken coroutine: between its second await point and
 * the end it holds a buffer, which its drop forgets. Dropped there, the
 * buffer leaks; dropped anywhere else, nothing does. */
typedef struct leaky {
    weft_future base;
    weft_co co;
    weft_yield y;
    weft_sleep s;
    char *buf;
    int *live; /* buffers taken and not given back */
} leaky;

static void leaky_drop(weft_future *f)
{
    leaky *self = (leaky *)f;
    weft_co_drop(&self->co); /* the bug: self->buf is not freed */
}

WEFT_ASYNC_FN_VOID_WITH_DROP(leaky)
{
    WEFT_FN_BEGIN;
    weft_yield_init(&self->y);
    WEFT_FN_AWAIT(&self->y, NULL); /* the first await point */
    self->buf = malloc(64);
    if (!self->buf)
        abort();
    (*self->live)++;
    weft_sleep_init(&self->s, WEFT_MS(10));
    WEFT_FN_AWAIT(&self->s, NULL); /* the second: dropped here, buf leaks */
    free(self->buf);
    self->buf = NULL;
    (*self->live)--;
    WEFT_FN_END;
}

typedef struct leaky_case {
    leaky l;
    int live;
} leaky_case;

static int leaky_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    leaky_case *lc = ctx;
    (void)rt, (void)out;
    lc->live = 0;
    lc->l = (leaky){ WEFT_FN_INIT(leaky, WEFT_F_SEND), .live = &lc->live };
    *fut = &lc->l.base;
    return 0;
}

static const char *leaky_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    (void)run;
    if (((leaky_case *)ctx)->live != 0)
        return "a buffer taken at the second await point was never freed";
    return sweep_leftovers(rt);
}

/* What the test does about the leak once the sweep found it. */
static void leaky_teardown(void *ctx)
{
    leaky_case *lc = ctx;
    free(lc->l.buf);
    lc->l.buf = NULL;
}

static void test_sweep_finds_a_leak_at_the_second_await_point_and_names_k_and_seed(void **state)
{
    (void)state;
    static leaky_case lc;
    weft_sweep_case c = { leaky_build, leaky_check, leaky_teardown, &lc };
    /* Chaos off: poll 1 ends at the yield, poll 2 at the sleep, poll 3
     * completes. The drop after poll 2 is the one that leaks. */
    weft_sweep_options o = sweep_options(5, 1);
    weft_sweep_result res;
    assert_int_equal(weft_cancel_sweep(&c, &o, &res), -EPROTO);
    assert_true(res.failed);
    assert_int_equal(res.k, 2);
    assert_int_equal(res.polls, 3);
    assert_int_equal(res.seed, sim_seed_or(5));
    assert_string_equal(res.message, "a buffer taken at the second await point was never freed");
    /* Counting run, then k = 0, 1, 2: the sweep stops at the failure. */
    assert_int_equal(res.runs, 4);
    assert_int_equal(g_sim_reports, 1);
    char want[128];
    snprintf(want, sizeof want, "'leaky' failed at k=2 of N=3, seed=%" PRIu64 ": a buffer",
             sim_seed_or(5));
    assert_true(sim_report_contains(want));
    snprintf(want, sizeof want, "replay with WEFT_SEED=%" PRIu64, sim_seed_or(5));
    assert_true(sim_report_contains(want));

    /* Every leaf PENDING first: the yield takes four polls (chaos, its
     * own PENDING, chaos, READY), and the sleep's first poll is a chaos
     * PENDING: the coroutine waits at its second await point after poll
     * 4 (then the sleep arms at 5, and at 6 and 7 goes chaos, READY). */
    o.sim.leaf_pending = WEFT_SIM_ON;
    assert_int_equal(weft_cancel_sweep(&c, &o, &res), -EPROTO);
    assert_int_equal(res.k, 4);
    assert_int_equal(res.polls, 7);
    assert_int_equal(g_sim_reports, 2);
    assert_true(sim_report_contains("'leaky' failed at k=4 of N=7"));
}

/* ---- the worked example: a race under random cancellation -------------------------------- */

/* A one-item mailbox: a producer puts, a take future waits and takes. */
typedef struct mailbox {
    bool full;
    int item;
    weft_waker taker; /* the waiting take's waker, or empty */
    int take_drops;
} mailbox;

typedef struct take {
    weft_future base;
    mailbox *mb;
} take;

static weft_poll take_poll(weft_future *f, weft_cx *cx, void *out)
{
    take *t = (take *)f;
    if (t->mb->full) {
        t->mb->full = false;
        *(int *)out = t->mb->item;
        return WEFT_READY;
    }
    if (!weft_waker_will_wake(&t->mb->taker, cx->waker)) {
        weft_waker_drop(&t->mb->taker);
        t->mb->taker = weft_waker_clone(cx->waker);
    }
    return WEFT_PENDING;
}

static void take_drop(weft_future *f)
{
    take *t = (take *)f;
    weft_waker_drop(&t->mb->taker); /* take the registration back */
    t->mb->take_drops++;
}

static const weft_future_ops take_ops = {
    .name = "take", .out_size = sizeof(int), .poll = take_poll, .drop = take_drop,
};

/* Sleeps 5 ms, then puts 42 and wakes the taker. */
typedef struct producer {
    weft_future base;
    weft_co co;
    weft_sleep s;
    mailbox *mb;
} producer;

WEFT_ASYNC_FN_VOID(producer)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->s, WEFT_MS(5));
    WEFT_FN_AWAIT(&self->s, NULL);
    self->mb->item = 42;
    self->mb->full = true;
    weft_waker_wake_by_ref(&self->mb->taker);
    WEFT_FN_END;
}

/* race: each poll polls both futures; the first READY wins, both are
 * dropped at once (each exactly once), and the output is the winner's
 * index. `late` breaks it on purpose: the win is delivered on the next
 * poll, so a drop in between loses what the winner took. */
typedef struct race {
    weft_future base;
    weft_future *f[2];
    void *out[2];
    bool live[2];
    bool late;
    int won;       /* late: the winner, delivered next poll; else -1 */
    uint32_t polls, won_at;
} race;

static void race_drop_both(race *r)
{
    for (int i = 0; i < 2; i++)
        if (r->live[i]) {
            r->live[i] = false;
            weft_future_drop(r->f[i]);
        }
}

static weft_poll race_poll(weft_future *f, weft_cx *cx, void *out)
{
    race *r = (race *)f;
    r->polls++;
    if (r->won >= 0) {
        *(int *)out = r->won;
        return WEFT_READY;
    }
    for (int i = 0; i < 2; i++) {
        if (weft_future_poll(r->f[i], cx, r->out[i]) == WEFT_PENDING)
            continue;
        race_drop_both(r);
        r->won_at = r->polls;
        if (r->late) {
            r->won = i;
            weft_waker_wake_by_ref(cx->waker);
            return WEFT_PENDING;
        }
        *(int *)out = i;
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void race_drop(weft_future *f)
{
    race_drop_both((race *)f);
}

static const weft_future_ops race_ops = {
    .name = "race", .out_size = sizeof(int), .poll = race_poll, .drop = race_drop,
};

/* The scenario: a producer puts 42 after 5 ms; a take of the mailbox
 * races a 5 ms timer. Both are due at the same instant, so the seeded
 * order decides which wins. */
typedef struct race_case {
    bool late;
    mailbox mb;
    take tk;
    weft_sleep timer;
    race r;
    int got, winner;
    int wins[2]; /* counting runs won by each side */
} race_case;

static int race_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    race_case *rc = ctx;
    rc->mb = (mailbox){ .full = false };
    int err = WEFT_SPAWN(rt, NULL, &(producer){ WEFT_FN_INIT(producer, WEFT_F_SEND), .mb = &rc->mb });
    if (err)
        return err;
    rc->tk = (take){ WEFT_FUTURE_INIT(&take_ops, WEFT_F_SEND), &rc->mb };
    weft_sleep_init(&rc->timer, WEFT_MS(5)); /* inside the run: virtual time */
    rc->got = rc->winner = -1;
    rc->r = (race){ WEFT_FUTURE_INIT(&race_ops, WEFT_F_SEND),
                    .f = { &rc->tk.base, &rc->timer.base },
                    .out = { &rc->got, NULL },
                    .live = { true, true },
                    .late = rc->late,
                    .won = -1 };
    *fut = &rc->r.base;
    *out = &rc->winner;
    return 0;
}

static const char *race_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    race_case *rc = ctx;
    if (run->completed)
        rc->wins[rc->winner]++;
    /* The item is in exactly one place: delivered by the race, or still
     * in the mailbox (the producer always puts it). */
    int delivered = run->completed && rc->winner == 0 && rc->got == 42;
    int places = rc->mb.full + delivered;
    if (places != 1)
        return sweep_say("the item is in %d places (race dropped after %u polls)", places,
                         run->k);
    /* Both branches dropped, once: the take says so, and a timer still
     * armed would hold a clone of the race's waker. */
    if (rc->mb.take_drops != 1 || run->wakers_after_drop != 0 || rc->mb.taker.ops)
        return "a branch of the race was not dropped, or left its waker behind";
    return sweep_leftovers(rt);
}

static void test_sweep_race_over_seeds_with_chaos(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    static race_case rc;
    memset(&rc, 0, sizeof rc);
    weft_sweep_case c = { race_build, race_check, NULL, &rc };
    weft_sweep_options o = sweep_chaos_options(1, 32, 0.3);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_int_equal(res.seeds, 32);
    assert_true(res.runs > 32 * 2);
    /* The order decided the race both ways. */
    assert_true(rc.wins[0] > 0);
    assert_true(rc.wins[1] > 0);
    assert_int_equal(rc.wins[0] + rc.wins[1], 32);
}

static void test_sweep_race_that_delivers_late_loses_the_item(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    static race_case rc;
    memset(&rc, 0, sizeof rc);
    rc.late = true;
    weft_sweep_case c = { race_build, race_check, NULL, &rc };
    weft_sweep_options o = sweep_chaos_options(1, 32, 0.3);
    weft_sweep_result res;
    assert_int_equal(weft_cancel_sweep(&c, &o, &res), -EPROTO);
    assert_true(res.failed);
    /* Dropped right after the poll at which the take won: the item was
     * taken, and never delivered. */
    assert_int_equal(res.k, rc.r.won_at);
    assert_int_equal(rc.winner, -1);
    assert_int_equal(rc.got, 42);
    assert_non_null(strstr(res.message, "the item is in 0 places"));
    assert_int_equal(g_sim_reports, 1);
}

/* ---- a peer stranded by the drop ------------------------------------------------------------ */

/* A one-shot signal: signal_wait is PENDING until it is set. */
typedef struct sig {
    bool set;
    weft_waker waiter;
} signal_t;

typedef struct signal_wait {
    weft_future base;
    signal_t *sg;
} signal_wait;

static weft_poll signal_wait_poll(weft_future *f, weft_cx *cx, void *out)
{
    signal_wait *w = (signal_wait *)f;
    (void)out;
    if (w->sg->set)
        return WEFT_READY;
    weft_waker_drop(&w->sg->waiter);
    w->sg->waiter = weft_waker_clone(cx->waker);
    return WEFT_PENDING;
}

static void signal_wait_drop(weft_future *f)
{
    weft_waker_drop(&((signal_wait *)f)->sg->waiter);
}

static const weft_future_ops signal_wait_ops = {
    .name = "signal_wait", .out_size = 0, .poll = signal_wait_poll, .drop = signal_wait_drop,
};

static void signal_fire(signal_t *sg)
{
    sg->set = true;
    weft_waker_wake(&sg->waiter);
}

/* The peer: waits for the signal. */
typedef struct waiter {
    weft_future base;
    weft_co co;
    signal_wait w;
} waiter;

static int g_waiter_line; /* the line of its await */

WEFT_ASYNC_FN_VOID(waiter)
{
    WEFT_FN_BEGIN;
    g_waiter_line = __LINE__ + 1;
    WEFT_FN_AWAIT(&self->w, NULL);
    WEFT_FN_END;
}

/* The future under test: yields once, then fires the signal. Its drop
 * fires it too when `closes` (a sender that closes on drop); otherwise a
 * drop before it fired strands the waiter. */
typedef struct signaller {
    weft_future base;
    weft_co co;
    signal_t *sg;
    bool closes;
} signaller;

static void signaller_drop(weft_future *f)
{
    signaller *self = (signaller *)f;
    if (self->closes && !self->sg->set)
        signal_fire(self->sg);
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_VOID_WITH_DROP(signaller)
{
    WEFT_FN_BEGIN;
    WEFT_FN_YIELD;
    signal_fire(self->sg);
    WEFT_FN_END;
}

typedef struct signal_case {
    bool closes;
    signal_t sg;
    signaller s;
} signal_case;

static int signal_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    signal_case *sc = ctx;
    (void)out;
    sc->sg = (signal_t){ false, WEFT_WAKER_EMPTY };
    int err = WEFT_SPAWN(rt, NULL, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                             .w = { WEFT_FUTURE_INIT(&signal_wait_ops, WEFT_F_SEND),
                                                    &sc->sg } });
    if (err)
        return err;
    sc->s = (signaller){ WEFT_FN_INIT(signaller, WEFT_F_SEND), .sg = &sc->sg,
                         .closes = sc->closes };
    *fut = &sc->s.base;
    return 0;
}

static const char *signal_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    (void)ctx, (void)run;
    return sweep_leftovers(rt);
}

static void test_sweep_reports_a_peer_stranded_by_the_drop_and_where_it_waits(void **state)
{
    (void)state;
    static signal_case sc;
    memset(&sc, 0, sizeof sc);
    weft_sweep_case c = { signal_build, signal_check, NULL, &sc };
    weft_sweep_options o = sweep_options(8, 1);
    weft_sweep_result res;
    assert_int_equal(weft_cancel_sweep(&c, &o, &res), -EPROTO);
    /* Dropped before its first poll, it never fires: the waiter stalls,
     * and the sim's report names it and the line it waits at. */
    assert_int_equal(res.k, 0);
    assert_int_equal(res.polls, 2);
    assert_non_null(strstr(res.message, "after the drop, the rest of the scenario did not finish"));
    char want[96];
    snprintf(want, sizeof want, "'waiter' at waiter:%d > signal_wait", g_waiter_line);
    assert_non_null(strstr(res.message, want));
    assert_non_null(strstr(res.message, "stall"));

    /* A sender that closes on drop strands nobody. */
    sc.closes = true;
    sweep_pass(&c, &o);
}

/* ---- a registration never taken back -------------------------------------------------------- */

/* Stores a clone of its waker in the slot at its first poll and is READY
 * at its second, dropping the clone; its drop forgets it. */
typedef struct sticky {
    weft_future base;
    weft_waker *slot;
    int polls;
} sticky;

static weft_poll sticky_poll(weft_future *f, weft_cx *cx, void *out)
{
    sticky *s = (sticky *)f;
    (void)out;
    if (s->polls++ == 0) {
        *s->slot = weft_waker_clone(cx->waker);
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    weft_waker_drop(s->slot);
    return WEFT_READY;
}

static const weft_future_ops sticky_ops = { "sticky", 0, sticky_poll, NULL, NULL };

typedef struct sticky_case {
    weft_waker slot;
    sticky s;
} sticky_case;

static int sticky_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    sticky_case *sc = ctx;
    (void)rt, (void)out;
    sc->s = (sticky){ WEFT_FUTURE_INIT(&sticky_ops, WEFT_F_SEND), &sc->slot, 0 };
    *fut = &sc->s.base;
    return 0;
}

static const char *sticky_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    (void)rt, (void)ctx;
    /* Seen right after the drop: the clone is still in the slot. */
    if (!run->completed && run->k == 1 && run->wakers_after_drop != 1)
        return "the clone in the slot was not counted";
    return NULL;
}

static void test_sweep_reports_a_waker_registration_never_taken_back(void **state)
{
    (void)state;
    static sticky_case sc;
    memset(&sc, 0, sizeof sc);
    weft_sweep_case c = { sticky_build, sticky_check, NULL, &sc };
    weft_sweep_options o = sweep_options(2, 1);
    weft_sweep_result res;
    assert_int_equal(weft_cancel_sweep(&c, &o, &res), -EPROTO);
    assert_int_equal(res.k, 1);
    assert_int_equal(res.polls, 2);
    assert_non_null(strstr(res.message, "1 clone(s) of its waker were still held after teardown"));
    /* The clone keeps the sweep's waker alive until it goes. */
    assert_non_null(sc.slot.ops);
    weft_waker_wake(&sc.slot); /* after the run: counted, not forwarded */
}

/* ---- futures that never complete, and scenarios that depend on more than the seed ----------- */

typedef struct never_case {
    never nv;
    countdown_counts n;
    int out;
} never_case;

static int never_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    never_case *nc = ctx;
    (void)rt;
    never_start(&nc->nv, &nc->n, WEFT_F_SEND);
    *fut = &nc->nv.base;
    *out = &nc->out;
    return 0;
}

/* A countdown that never gets to the end: PENDING after waking itself. */
typedef struct spinner_case {
    countdown cd;
    int out;
} spinner_case;

static int spinner_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    spinner_case *sc = ctx;
    (void)rt;
    countdown_init(&sc->cd, 1 << 30, 0, NULL, WEFT_F_SEND);
    *fut = &sc->cd.base;
    *out = &sc->out;
    return 0;
}

static void test_sweep_reports_a_future_that_never_completes(void **state)
{
    (void)state;
    static never_case nc;
    weft_sweep_case c = { never_build, NULL, NULL, &nc };
    weft_sweep_options o = sweep_options(4, 3);
    weft_sweep_result res;
    assert_int_equal(weft_cancel_sweep(&c, &o, &res), -EPROTO);
    assert_int_equal(res.k, 1); /* its one poll */
    assert_int_equal(res.runs, 1);
    assert_non_null(strstr(res.message, "the future never completed"));
    assert_non_null(strstr(res.message, "'weft_cancel_sweep' at never"));
    assert_int_equal(weft_atomic_load_relaxed(&nc.n.drops), 1); /* cancelled by the stall */
    assert_true(sim_report_contains("failed at poll 1 of the counting run"));

    static spinner_case sc;
    weft_sweep_case s = { spinner_build, NULL, NULL, &sc };
    o.max_polls = 50;
    assert_int_equal(weft_cancel_sweep(&s, &o, &res), -EPROTO);
    assert_int_equal(res.k, 50);
    assert_string_equal(res.message, "the future did not complete in 50 polls (max_polls)");
}

/* Each build after the first makes the future shorter: the runs of k
 * diverge from the counting run. */
typedef struct drifting_case {
    stepper s;
    countdown cd;
    int builds, out;
} drifting_case;

static int drifting_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    drifting_case *dc = ctx;
    (void)rt;
    countdown_init(&dc->cd, dc->builds++ == 0 ? 5 : 1, 3, NULL, WEFT_F_SEND);
    *fut = &dc->cd.base;
    *out = &dc->out;
    return 0;
}

static void test_sweep_reports_a_scenario_that_depends_on_more_than_the_seed(void **state)
{
    (void)state;
    static drifting_case dc;
    memset(&dc, 0, sizeof dc);
    weft_sweep_case c = { drifting_build, NULL, NULL, &dc };
    weft_sweep_options o = sweep_options(6, 1);
    weft_sweep_result res;
    assert_int_equal(weft_cancel_sweep(&c, &o, &res), -EPROTO);
    assert_int_equal(res.polls, 6);
    assert_int_equal(res.k, 2); /* k = 2 completes at its second poll */
    assert_non_null(strstr(res.message, "diverged from the counting run of its seed: the future "
                                        "completed after 2 poll(s), where it needed 6"));
}

/* ---- refusals ------------------------------------------------------------------------------------ */

static int g_build_rc;
static weft_future *g_build_fut;
static void *g_build_out;

static int fixed_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt, (void)ctx;
    *fut = g_build_fut;
    *out = g_build_out;
    return g_build_rc;
}

static int g_teardowns;

static void count_teardown(void *ctx)
{
    (void)ctx;
    g_teardowns++;
}

/* Calls weft_cancel_sweep from inside a sim's task. */
static int g_nested_rc;

static weft_poll nested_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    weft_sweep_case c = { fixed_build, NULL, NULL, NULL };
    g_nested_rc = weft_cancel_sweep(&c, NULL, NULL);
    return WEFT_READY;
}

static const weft_future_ops nested_ops = { "nested", 0, nested_poll, NULL, NULL };

static void test_sweep_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_sweep_result res;
    int before = misuse_count();
    assert_int_equal(weft_cancel_sweep(NULL, NULL, &res), -EINVAL);
    assert_false(res.failed);
    weft_sweep_case c = { NULL, NULL, NULL, NULL };
    assert_int_equal(weft_cancel_sweep(&c, NULL, NULL), -EINVAL);
    assert_misuse_since(before, 2, "weft_cancel_sweep");
    c.build = fixed_build;
    weft_sweep_options o = sweep_options(0, 1);
    o.sim.leaf_pending = 1.5;
    assert_int_equal(weft_cancel_sweep(&c, &o, NULL), -EINVAL);

    /* What build returns or gives: its error, no teardown; a NULL
     * future, or no room for an output: -EINVAL, after a teardown. */
    c.teardown = count_teardown;
    g_teardowns = 0;
    g_build_rc = -ENOENT;
    assert_int_equal(weft_cancel_sweep(&c, NULL, &res), -ENOENT);
    assert_int_equal(g_teardowns, 0);
    g_build_rc = 0;
    g_build_fut = NULL;
    before = misuse_count();
    assert_int_equal(weft_cancel_sweep(&c, NULL, &res), -EINVAL);
    assert_misuse_since(before, 1, "no future");
    countdown_counts n;
    countdown cd;
    countdown_start(&cd, &n, 0, 1, WEFT_F_SEND);
    g_build_fut = &cd.base;
    g_build_out = NULL;
    assert_int_equal(weft_cancel_sweep(&c, NULL, &res), -EINVAL);
    assert_misuse_since(before, 2, "no room for the output of 'test_countdown'");
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1); /* dropped, never polled */
    assert_int_equal(g_teardowns, 2);
    assert_false(res.failed);
    assert_int_equal(res.runs, 0);

    /* Inside a runtime it would block it. */
    weft_sim_options so = sim_options(0);
    weft_rt *rt = sim_start(&so);
    weft_future f;
    weft_future_init(&f, &nested_ops, WEFT_F_SEND);
    before = misuse_count();
    assert_int_equal(weft_block_on(rt, &f, NULL, 0), 0);
    assert_int_equal(g_nested_rc, -EDEADLK);
    assert_misuse_since(before, 1, "weft_cancel_sweep inside a runtime");
    weft_rt_shutdown(rt);
}

static void test_sweep_weft_seed_sweeps_that_one_seed(void **state)
{
    (void)state;
    const char *old = getenv("WEFT_SEED");
    char *saved = old ? strdup(old) : NULL;
    setenv("WEFT_SEED", "77", 1);
    static steps_case sc;
    memset(&sc, 0, sizeof sc);
    weft_sweep_case c = { steps_build, steps_check, NULL, &sc };
    weft_sweep_options o = sweep_options(1, 10);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_int_equal(res.seeds, 1);
    assert_int_equal(res.runs, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sc.seed[i], 77);
    if (saved)
        setenv("WEFT_SEED", saved, 1);
    else
        unsetenv("WEFT_SEED");
    free(saved);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        T(test_sweep_drops_the_future_after_every_number_of_polls),
        T(test_sweep_sweeps_seeds_and_counts_polls_per_seed),
        T(test_sweep_finds_a_leak_at_the_second_await_point_and_names_k_and_seed),
        T(test_sweep_race_over_seeds_with_chaos),
        T(test_sweep_race_that_delivers_late_loses_the_item),
        T(test_sweep_reports_a_peer_stranded_by_the_drop_and_where_it_waits),
        T(test_sweep_reports_a_waker_registration_never_taken_back),
        T(test_sweep_reports_a_future_that_never_completes),
        T(test_sweep_reports_a_scenario_that_depends_on_more_than_the_seed),
        T(test_sweep_rejects_bad_arguments),
        T(test_sweep_weft_seed_sweeps_that_one_seed),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
