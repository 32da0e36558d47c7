/* Cancel sweeps of the select forms (select/select.c, select/merge.c):
 * every await point becomes a cancellation point, on one seed and then
 * with chaos over several.
 *  - weft_select over one of each kind of branch (channel recv and send,
 *    mutex lock, semaphore acquire, sleep, join), in several mixes, each
 *    kind made the fastest in turn so that every kind both wins and
 *    loses: after each drop every item is received exactly once or still
 *    in its channel (a send that lost delivered nothing), the mutex is
 *    free, every permit is back, no waker is left, and only the winner's
 *    output was written, and only when the select completed; also polled
 *    every other turn, so a lock or permits handed to a losing branch
 *    before it was polled are given back by its drop.
 *  - a WEFT_SELECT loop in an async fn (two receivers' stream nexts, a
 *    KEEP'd deadline, a cancel token): items received plus items left in
 *    the channels are the items sent, each once.
 *  - weft_select_next over two receivers and a generator, and a
 *    weft_merge's stream next over the same: a drop at any point loses
 *    nothing (the rest, drained after the drop, completes the set) and
 *    each branch's end is reported once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/every_other.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

#define SEEDS 8
#define CHAOS 0.3

/* ---- weft_select over every kind of branch ---------------------------------------------------- */

enum { K_RECV, K_SEND, K_LOCK, K_ACQ, K_SLEEP, K_JOIN, KINDS };
static const char *const kind_name[KINDS] = { "recv", "send", "lock", "acquire", "sleep", "join" };

#define RECV_ITEMS 3     /* the producer's ids: 1..3 */
#define PREFILL 100u     /* fills the send branch's channel (capacity 1) */
#define SEND_ITEM 200u   /* the send branch's item */
#define PERMITS 2        /* the semaphore's; the acquire wants both */
#define JOIN_OUT 42
#define FAST_MS 1
#define SLOW_MS 4

typedef struct sel_case {
    unsigned kinds; /* bit per kind: the branches of this select */
    int delay[KINDS]; /* ms (or turns) before the environment of each kind acts */
    bool turns;       /* delays in turns (yields), not ms */
    /* Environment. */
    weft_chan_tx ptx, stx;
    weft_chan_rx prx, srx;
    weft_mutex m;
    weft_mutex_guard held; /* the holder task's */
    weft_semaphore s;
    uint64_t consumed; /* what the consumer task received */
    /* Branches and their outputs. */
    weft_chan_recv recv;
    uint64_t recv_item;
    int recv_out;
    weft_chan_send send;
    uint64_t send_item;
    int send_out;
    weft_mutex_lock lock;
    weft_mutex_guard guard;
    weft_semaphore_acquire acq;
    int acq_out;
    weft_sleep sleep;
    weft_join join;
    int join_out;
    int at[KINDS]; /* branch index of each kind, -1: absent */
    weft_select_branch br[KINDS];
    weft_select sel;
    int won;
    /* Across the runs of a test: completions won and lost per kind. */
    unsigned wins[KINDS], losses[KINDS];
} sel_case;

/* The environment of one kind: waits its delay, then acts. */
typedef struct env_task {
    weft_future base;
    weft_co co;
    sel_case *c;
    int kind, i, rc;
    uint64_t id;
    weft_sleep nap;
    weft_chan_send send;
    weft_chan_recv recv;
} env_task;

WEFT_ASYNC_FN(env_task, int)
{
    WEFT_FN_BEGIN;
    if (self->c->turns) {
        /* Polled every other turn, the future keeps its task runnable, so
         * virtual time stands still: count turns instead. */
        for (self->i = 0; self->i < self->c->delay[self->kind]; self->i++)
            WEFT_FN_YIELD;
    } else {
        weft_sleep_init(&self->nap, WEFT_MS(self->c->delay[self->kind]));
        WEFT_FN_AWAIT(&self->nap, NULL);
    }
    if (self->kind == K_RECV) {
        /* The producer: its ids into a channel with room for all. */
        for (self->i = 1; self->i <= RECV_ITEMS; self->i++) {
            self->id = (uint64_t)self->i;
            weft_chan_send_init(&self->send, &self->c->ptx, &self->id);
            WEFT_FN_AWAIT(&self->send, &self->rc);
            if (self->rc != 0)
                WEFT_FN_RETURN(-1);
            WEFT_FN_YIELD;
        }
    } else if (self->kind == K_SEND) {
        /* The consumer: takes the prefill, which makes room for the send. */
        weft_chan_recv_init(&self->recv, &self->c->srx, &self->id);
        WEFT_FN_AWAIT(&self->recv, &self->rc);
        if (self->rc != 0)
            WEFT_FN_RETURN(-1);
        self->c->consumed = self->id;
    } else if (self->kind == K_LOCK) {
        /* Unlock and barge back in at once, ahead of the woken waiter: it
         * requeues at the front, having waited over a millisecond, which
         * puts the mutex in starvation mode, so the next unlock hands the
         * mutex to it before it polls (then a drop must hand it on). */
        if (weft_mutex_unlock(&self->c->held) != 0)
            WEFT_FN_RETURN(-1);
        if (weft_mutex_try_lock(&self->c->m, &self->c->held) == 0) {
            WEFT_FN_YIELD;
            WEFT_FN_YIELD;
            if (weft_mutex_unlock(&self->c->held) != 0)
                WEFT_FN_RETURN(-1);
        }
    } else if (self->kind == K_ACQ) {
        /* One permit at a time: the acquire is partly served in between. */
        if (weft_semaphore_release(&self->c->s, 1) != 0)
            WEFT_FN_RETURN(-1);
        WEFT_FN_YIELD;
        if (weft_semaphore_release(&self->c->s, 1) != 0)
            WEFT_FN_RETURN(-1);
    } else if (self->kind == K_JOIN) {
        WEFT_FN_RETURN(JOIN_OUT);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static bool has(const sel_case *c, int k)
{
    return (c->kinds >> k) & 1u;
}

static int spawn_env(weft_rt *rt, sel_case *c, int kind, weft_join *join)
{
    return WEFT_SPAWN(rt, join,
                      &(env_task){ WEFT_FN_INIT(env_task, WEFT_F_SEND), .c = c, .kind = kind });
}

static int sel_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    sel_case *c = ctx;
    int err = 0;
    size_t n = 0;
    c->won = -7;
    c->recv_item = 0;
    c->recv_out = c->send_out = c->acq_out = 1;
    c->join_out = -1;
    c->guard.mutex = NULL;
    c->consumed = 0;
    c->send_item = SEND_ITEM;
    for (int k = 0; k < KINDS; k++)
        c->at[k] = -1;
    /* Every kind's environment is made, so teardown is the same for all. */
    if (weft_mpsc_new(&c->ptx, &c->prx, sizeof(uint64_t), RECV_ITEMS) != 0 ||
        weft_mpsc_new(&c->stx, &c->srx, sizeof(uint64_t), 1) != 0 ||
        weft_chan_try_send(&c->stx, &(uint64_t){ PREFILL }) != 0)
        return -ENOMEM;
    weft_mutex_init(&c->m);
    if (weft_mutex_try_lock(&c->m, &c->held) != 0 || weft_semaphore_init(&c->s, PERMITS) != 0 ||
        weft_semaphore_try_acquire(&c->s, PERMITS) != 0)
        return -EINVAL;
    if (has(c, K_RECV)) {
        weft_chan_recv_init(&c->recv, &c->prx, &c->recv_item);
        c->br[c->at[K_RECV] = (int)n++] = WEFT_BRANCH(&c->recv, &c->recv_out);
    }
    if (has(c, K_SEND)) {
        weft_chan_send_init(&c->send, &c->stx, &c->send_item);
        c->br[c->at[K_SEND] = (int)n++] = WEFT_BRANCH(&c->send, &c->send_out);
    }
    if (has(c, K_LOCK)) {
        if (weft_mutex_lock_init(&c->lock, &c->m) != 0)
            return -EINVAL;
        c->br[c->at[K_LOCK] = (int)n++] = WEFT_BRANCH(&c->lock, &c->guard);
    }
    if (has(c, K_ACQ)) {
        weft_semaphore_acquire_init(&c->acq, &c->s, PERMITS);
        c->br[c->at[K_ACQ] = (int)n++] = WEFT_BRANCH(&c->acq, &c->acq_out);
    }
    if (has(c, K_SLEEP)) {
        weft_sleep_init(&c->sleep, WEFT_MS(c->delay[K_SLEEP]));
        c->br[c->at[K_SLEEP] = (int)n++] = WEFT_BRANCH(&c->sleep, NULL);
    }
    /* The environment of every kind acts, branch or not: the mutex and
     * the permits come back either way, the consumer takes the prefill. */
    for (int k = 0; k < KINDS && !err; k++)
        if (k != K_SLEEP && k != K_JOIN)
            err = spawn_env(rt, c, k, NULL);
    if (!err && has(c, K_JOIN)) {
        err = spawn_env(rt, c, K_JOIN, &c->join);
        if (!err)
            c->br[c->at[K_JOIN] = (int)n++] = WEFT_BRANCH(&c->join, &c->join_out);
    }
    if (err)
        return err;
    if (weft_select_init(&c->sel, c->br, n, WEFT_SELECT_FAIR) != 0)
        return -EINVAL;
    *fut = &c->sel.base;
    *out = &c->won;
    return 0;
}

/* Whether branch `k`'s output was written (with its success value). */
static bool written(const sel_case *c, int k)
{
    switch (k) {
    case K_RECV: return c->recv_out != 1;
    case K_SEND: return c->send_out != 1;
    case K_LOCK: return c->guard.mutex != NULL;
    case K_ACQ: return c->acq_out != 1;
    case K_JOIN: return c->join_out != -1;
    default: return false; /* sleep: no output */
    }
}

static bool succeeded(const sel_case *c, int k)
{
    switch (k) {
    case K_RECV: return c->recv_out == 0 && c->recv_item >= 1 && c->recv_item <= RECV_ITEMS;
    case K_SEND: return c->send_out == 0;
    case K_LOCK: return c->guard.mutex == &c->m;
    case K_ACQ: return c->acq_out == 0;
    case K_JOIN: return c->join_out == JOIN_OUT && c->join.status == 0;
    default: return true;
    }
}

static const char *sel_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    sel_case *c = ctx;
    const char *how = run->completed ? "completed" : "dropped";
    /* An mpsc receiver keeps the registration of its last pending poll
     * until the next send wakes it once (or it is dropped): one at most.
     * Every other branch takes its waker back when dropped. */
    uint32_t may = has(c, K_RECV) ? 1 : 0;
    if (run->wakers_after_drop > may || run->wakes_after_drop > may)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    /* The winner, if any, is the only branch that wrote its output. */
    int winner = -1;
    if (run->completed) {
        for (int k = 0; k < KINDS; k++)
            if (has(c, k) && c->at[k] == c->won)
                winner = k;
        if (winner < 0)
            return sweep_say("k=%u: completed with %d, not a branch", run->k, c->won);
        if (!succeeded(c, winner))
            return sweep_say("k=%u: the winner (%s) has no output", run->k, kind_name[winner]);
    } else if (c->won != -7) {
        return "a select dropped before it finished wrote its output";
    }
    for (int k = 0; k < KINDS; k++) {
        if (k != winner && written(c, k))
            return sweep_say("k=%u (%s, winner %s): the %s branch wrote its output", run->k,
                             how, winner >= 0 ? kind_name[winner] : "none", kind_name[k]);
        if (run->completed && has(c, k)) {
            if (k == winner)
                c->wins[k]++;
            else
                c->losses[k]++;
        }
    }
    /* recv: each id received once, by the winner or left in the channel. */
    int count[RECV_ITEMS + 1] = { 0 };
    if (winner == K_RECV)
        count[c->recv_item]++;
    uint64_t v;
    int r;
    while ((r = weft_chan_try_recv(&c->prx, &v)) == 0) {
        if (v < 1 || v > RECV_ITEMS)
            return sweep_say("k=%u: unknown id %llu", run->k, (unsigned long long)v);
        count[v]++;
    }
    if (r != -EAGAIN)
        return sweep_say("k=%u: the producer's channel drained with %d", run->k, r);
    for (int id = 1; id <= RECV_ITEMS; id++)
        if (count[id] != 1)
            return sweep_say("k=%u (%s): id %d received %d time(s)", run->k, how, id,
                             count[id]);
    /* send: the consumer had the prefill; the item is in the channel
     * exactly when the send won. */
    if (c->consumed != PREFILL)
        return sweep_say("k=%u: the consumer received %llu", run->k,
                         (unsigned long long)c->consumed);
    int delivered = 0;
    while ((r = weft_chan_try_recv(&c->srx, &v)) == 0) {
        if (v != SEND_ITEM)
            return sweep_say("k=%u: %llu in the send channel", run->k, (unsigned long long)v);
        delivered++;
    }
    if (delivered != (winner == K_SEND))
        return sweep_say("k=%u (%s, winner %s): the send delivered %d time(s)", run->k, how,
                         winner >= 0 ? kind_name[winner] : "none", delivered);
    /* lock: held by the winner's guard only; free after. */
    weft_mutex_guard g;
    if (winner == K_LOCK) {
        if (weft_mutex_try_lock(&c->m, &g) != -EAGAIN)
            return "the lock won but the mutex is free";
        if (weft_mutex_unlock(&c->guard) != 0)
            return "the winner's guard did not unlock";
    }
    if (weft_mutex_try_lock(&c->m, &g) != 0)
        return sweep_say("k=%u (%s): the mutex is left locked", run->k, how);
    if (weft_mutex_unlock(&g) != 0)
        return "unlock failed";
    /* acquire: every permit back, but the winner's. */
    size_t want = PERMITS - (winner == K_ACQ ? PERMITS : 0);
    size_t have = weft_semaphore_available(&c->s);
    if (have != want)
        return sweep_say("k=%u (%s, winner %s): %zu permit(s) available, want %zu", run->k,
                         how, winner >= 0 ? kind_name[winner] : "none", have, want);
    if (winner == K_ACQ && weft_semaphore_release(&c->s, PERMITS) != 0)
        return "release failed";
    return NULL;
}

static void sel_teardown(void *ctx)
{
    sel_case *c = ctx;
    weft_chan_tx_drop(&c->ptx);
    weft_chan_rx_drop(&c->prx);
    weft_chan_tx_drop(&c->stx);
    weft_chan_rx_drop(&c->srx);
    weft_mutex_fini(&c->m);
    weft_semaphore_fini(&c->s);
}

/* Sweep the select of `kinds`, each kind of it made the fastest in turn
 * (the others act later, the sleep lasts as long as its delay), with one
 * seed and with chaos, polled directly or every other turn; then every
 * kind must have won and lost. */
static void sweep_select(unsigned kinds, bool eo)
{
    static sel_case c;
    static every_other_sweep es;
    memset(&c, 0, sizeof c);
    c.kinds = kinds;
    c.turns = eo;
    weft_sweep_case inner = { sel_build, sel_check, sel_teardown, &c };
    weft_sweep_case sc = eo ? every_other_sweep_case(&es, &inner) : inner;
    /* fast == KINDS: a tie, every kind at once (the fair start draws). */
    for (int fast = 0; fast <= KINDS; fast++) {
        if (fast < KINDS && !has(&c, fast))
            continue;
        for (int k = 0; k < KINDS; k++)
            c.delay[k] = fast == KINDS ? SLOW_MS : k == fast ? FAST_MS : SLOW_MS + k;
        weft_sweep_options o = sweep_options(1, 1);
        weft_sweep_result res = sweep_pass(&sc, &o);
        assert_true(res.polls >= 2); /* pending first: every branch waits */
        o = sweep_chaos_options(1, SEEDS, CHAOS);
        sweep_pass(&sc, &o);
    }
    for (int k = 0; k < KINDS; k++) {
        if (!has(&c, k))
            continue;
        if (c.wins[k] == 0 || c.losses[k] == 0)
            fail_msg("the %s branch won %u and lost %u time(s)", kind_name[k], c.wins[k],
                     c.losses[k]);
    }
    assert_int_equal(misuse_count(), 0);
}

#define BIT(k) (1u << (k))
#define ALL_KINDS (BIT(KINDS) - 1u)

static void test_cancel_sweep_select_recv_send_sleep(void **state)
{
    (void)state;
    sweep_select(BIT(K_RECV) | BIT(K_SEND) | BIT(K_SLEEP), false);
}

static void test_cancel_sweep_select_lock_acquire_join(void **state)
{
    (void)state;
    sweep_select(BIT(K_LOCK) | BIT(K_ACQ) | BIT(K_JOIN), false);
}

static void test_cancel_sweep_select_of_every_kind(void **state)
{
    (void)state;
    sweep_select(ALL_KINDS, false);
}

/* Polled every other turn (support/every_other.h): a drop may find the
 * mutex or the permits handed to a losing branch's waiter before it was
 * polled; its drop gives them back. No sleep branch: the every-other
 * wrapper keeps the task runnable, so virtual time does not move. */
static void test_cancel_sweep_select_served_but_unseen_gives_back(void **state)
{
    (void)state;
    sweep_select(BIT(K_LOCK) | BIT(K_ACQ) | BIT(K_JOIN), true);
    sweep_select(ALL_KINDS & ~BIT(K_SLEEP), true);
}

/* ---- a WEFT_SELECT loop in an async fn ---------------------------------------------------- */

#define LOOP_ITEMS 5 /* per channel: ids 1..5 and 101..105 */
#define ID_MAX 256

/* A producer task owning its sender: one id a millisecond, then it drops
 * the sender (the channel ends). */
typedef struct feeder {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    uint64_t id, first;
    int n, rc;
    weft_sleep nap;
    weft_chan_send send;
} feeder;

WEFT_ASYNC_FN_WITH_DROP(feeder, int)
{
    WEFT_FN_BEGIN;
    for (self->id = self->first; self->id < self->first + (uint64_t)self->n; self->id++) {
        weft_sleep_init(&self->nap, WEFT_MS(1));
        WEFT_FN_AWAIT(&self->nap, NULL);
        weft_chan_send_init(&self->send, &self->tx, &self->id);
        WEFT_FN_AWAIT(&self->send, &self->rc);
        if (self->rc != 0)
            WEFT_FN_RETURN(self->rc);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void feeder_drop(weft_future *f)
{
    feeder *self = (feeder *)f;
    weft_co_drop(&self->co);
    weft_chan_tx_drop(&self->tx);
}

/* Cancels a token after `ms`. */
typedef struct canceller {
    weft_future base;
    weft_co co;
    weft_cancel_token *token;
    int ms;
    weft_sleep nap;
} canceller;

WEFT_ASYNC_FN(canceller, int)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->nap, WEFT_MS(self->ms));
    WEFT_FN_AWAIT(&self->nap, NULL);
    WEFT_FN_RETURN(weft_cancel_token_cancel(self->token));
    WEFT_FN_END;
}

/* Ids marked once each; `bad` counts unknown ones. */
typedef struct tally {
    int count[ID_MAX];
    int bad;
} tally;

static void tally_mark(tally *t, uint64_t id)
{
    if (id < ID_MAX)
        t->count[id]++;
    else
        t->bad++;
}

/* Drain what is left in `rx` into `t`; the channel must have ended. */
static const char *drain(weft_chan_rx *rx, tally *t)
{
    uint64_t v;
    int r;
    while ((r = weft_chan_try_recv(rx, &v)) == 0)
        tally_mark(t, v);
    return r == -EPIPE ? NULL : sweep_say("drain ended with %d, not -EPIPE", r);
}

static const char *want_each_once(const tally *t, uint64_t first, int n, const weft_sweep_run *run)
{
    if (t->bad)
        return sweep_say("k=%u: %d unknown id(s)", run->k, t->bad);
    for (uint64_t id = first; id < first + (uint64_t)n; id++)
        if (t->count[id] != 1)
            return sweep_say("k=%u (%s): id %llu received %d time(s)", run->k,
                             run->completed ? "completed" : "dropped", (unsigned long long)id,
                             t->count[id]);
    return NULL;
}

enum { END_CHANNELS, END_DEADLINE, END_TOKEN };

/* A sleep that counts its drops, so the loop can tell that the select
 * never dropped its KEEP branch. */
typedef struct counted_sleep {
    weft_future base;
    weft_sleep s;
    int *drops;
} counted_sleep;

static weft_poll counted_sleep_poll(weft_future *f, weft_cx *cx, void *out)
{
    return weft_future_poll(&((counted_sleep *)f)->s.base, cx, out);
}

static void counted_sleep_drop(weft_future *f)
{
    counted_sleep *cs = (counted_sleep *)f;
    (*cs->drops)++;
    weft_future_drop(&cs->s.base);
}

static const weft_future_ops counted_sleep_ops = { "counted_sleep", 0, counted_sleep_poll,
                                                   counted_sleep_drop, NULL };

typedef struct loop_case loop_case;

typedef struct select_loop {
    weft_future base;
    weft_co co;
    loop_case *c;
    weft_stream_next n0, n1;
    uint64_t i0, i1;
    int got0, got1, which;
    bool ended0, ended1, deadline_live;
    counted_sleep deadline;
    weft_cancel_token_cancelled stop;
    weft_select sel;
} select_loop;

struct loop_case {
    int deadline_ms, cancel_ms, expect; /* expect: how the loop ends */
    int deadline_made, deadline_drops;
    weft_chan_rx rx0, rx1;
    weft_cancel_token token;
    tally t;
    select_loop fn;
    int out;
};

WEFT_ASYNC_FN_WITH_DROP(select_loop, int)
{
    WEFT_FN_BEGIN;
    weft_future_init(&self->deadline.base, &counted_sleep_ops, WEFT_F_SEND);
    self->deadline.drops = &self->c->deadline_drops;
    weft_sleep_init(&self->deadline.s, WEFT_MS(self->c->deadline_ms));
    self->deadline_live = true;
    self->c->deadline_made = 1;
    while (!self->ended0 || !self->ended1) {
        weft_stream_next_init(&self->n0, &self->c->rx0.base, &self->i0);
        weft_stream_next_init(&self->n1, &self->c->rx1.base, &self->i1);
        weft_cancel_token_cancelled_init(&self->stop, &self->c->token);
        WEFT_SELECT(&self->sel, &self->which, WEFT_BRANCH_IF(!self->ended0, &self->n0, &self->got0),
                    WEFT_BRANCH_IF(!self->ended1, &self->n1, &self->got1),
                    WEFT_BRANCH_KEEP(&self->deadline, NULL), WEFT_BRANCH(&self->stop, NULL));
        if (self->which == 0) {
            if (self->got0)
                tally_mark(&self->c->t, self->i0);
            else
                self->ended0 = true;
        } else if (self->which == 1) {
            if (self->got1)
                tally_mark(&self->c->t, self->i1);
            else
                self->ended1 = true;
        } else {
            weft_future_drop(&self->deadline.base);
            self->deadline_live = false;
            WEFT_FN_RETURN(self->which == 2 ? END_DEADLINE : self->which == 3 ? END_TOKEN : -1);
        }
    }
    weft_future_drop(&self->deadline.base);
    self->deadline_live = false;
    WEFT_FN_RETURN(END_CHANNELS);
    WEFT_FN_END;
}

static void select_loop_drop(weft_future *f)
{
    select_loop *self = (select_loop *)f;
    weft_co_drop(&self->co); /* the select, with this pass's branches */
    if (self->deadline_live)
        weft_future_drop(&self->deadline.base); /* KEEP: ours */
}

static int loop_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    loop_case *c = ctx;
    memset(&c->t, 0, sizeof c->t);
    c->out = -7;
    c->deadline_made = c->deadline_drops = 0;
    if (weft_cancel_token_init(&c->token) != 0)
        return -ENOMEM;
    int err = 0;
    weft_chan_rx *rx[2] = { &c->rx0, &c->rx1 };
    for (int i = 0; i < 2 && !err; i++) {
        feeder f = { WEFT_FN_INIT(feeder, WEFT_F_SEND), .first = 1 + 100 * (uint64_t)i,
                     .n = LOOP_ITEMS };
        if (weft_mpsc_new(&f.tx, rx[i], sizeof(uint64_t), LOOP_ITEMS) != 0)
            return -ENOMEM;
        err = WEFT_SPAWN(rt, NULL, &f);
    }
    if (!err)
        err = WEFT_SPAWN(rt, NULL, &(canceller){ WEFT_FN_INIT(canceller, WEFT_F_SEND),
                                                 .token = &c->token, .ms = c->cancel_ms });
    c->fn = (select_loop){ WEFT_FN_INIT(select_loop, WEFT_F_SEND), .c = c };
    *fut = &c->fn.base;
    *out = &c->out;
    return err;
}

static const char *loop_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    loop_case *c = ctx;
    /* Each mpsc receiver may keep one registration (see sel_check). */
    if (run->wakers_after_drop > 2 || run->wakes_after_drop > 2)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (run->completed && c->out != c->expect)
        return sweep_say("completed with %d, want %d", c->out, c->expect);
    if (!run->completed && c->out != -7)
        return "a loop dropped before it finished wrote its output";
    if (c->deadline_drops != c->deadline_made)
        return sweep_say("k=%u: the kept deadline was dropped %d time(s)", run->k,
                         c->deadline_drops);
    const char *e = drain(&c->rx0, &c->t);
    if (!e)
        e = drain(&c->rx1, &c->t);
    if (!e)
        e = want_each_once(&c->t, 1, LOOP_ITEMS, run);
    if (!e)
        e = want_each_once(&c->t, 101, LOOP_ITEMS, run);
    return e;
}

static void loop_teardown(void *ctx)
{
    loop_case *c = ctx;
    weft_chan_rx_drop(&c->rx0);
    weft_chan_rx_drop(&c->rx1);
    weft_cancel_token_fini(&c->token);
}

static void test_cancel_sweep_select_loop_in_an_async_fn(void **state)
{
    (void)state;
    static loop_case c;
    /* The channels end first; the token first; the deadline first. */
    const int cfg[3][3] = { { 100, 200, END_CHANNELS },
                            { 100, 3, END_TOKEN },
                            { 3, 100, END_DEADLINE } };
    for (int i = 0; i < 3; i++) {
        memset(&c, 0, sizeof c);
        c.deadline_ms = cfg[i][0];
        c.cancel_ms = cfg[i][1];
        c.expect = cfg[i][2];
        weft_sweep_case sc = { loop_build, loop_check, loop_teardown, &c };
        weft_sweep_options o = sweep_options(1, 1);
        weft_sweep_result res = sweep_pass(&sc, &o);
        assert_true(res.polls >= 3);
        o = sweep_chaos_options(1, SEEDS, CHAOS);
        sweep_pass(&sc, &o);
    }
    assert_int_equal(misuse_count(), 0);
}

/* ---- weft_select_next and weft_merge over two receivers and a generator ------------------ */

/* Ids 201..205, one every 2 ms. */
typedef struct gen_src {
    weft_stream base;
    weft_co co;
    uint64_t id;
    weft_sleep nap;
} gen_src;

WEFT_GEN_FN(gen_src, uint64_t)
{
    WEFT_GEN_BEGIN;
    for (self->id = 201; self->id < 201 + LOOP_ITEMS; self->id++) {
        weft_sleep_init(&self->nap, WEFT_MS(2));
        WEFT_GEN_AWAIT(&self->nap, NULL);
        WEFT_GEN_YIELD(self->id);
    }
    WEFT_GEN_END;
}

#define NEXT_BRANCHES 3

typedef struct next_case next_case;

/* Loops over a select_next (or the merge's stream next) until every
 * branch ended, marking items and ends in the case. */
typedef struct next_loop {
    weft_future base;
    weft_co co;
    next_case *c;
    weft_select_next sn;
    weft_select_event ev;
    weft_stream_next mn;
    int got;
} next_loop;

struct next_case {
    bool merge;
    weft_chan_rx rx0, rx1;
    gen_src gen;
    uint64_t items[NEXT_BRANCHES];
    weft_select_stream br[NEXT_BRANCHES];
    weft_merge m;
    weft_merge_slot slots[NEXT_BRANCHES];
    unsigned char mitem[WEFT_MERGE_ITEM_SIZE(sizeof(uint64_t))];
    int ends[NEXT_BRANCHES], dones, wrong;
    tally t;
    next_loop fn;
    int out;
};

/* Branch i's ids start at 1, 101, 201. */
static void next_mark(next_case *c, int i, uint64_t id)
{
    if (id / 100 != (uint64_t)i)
        c->wrong++;
    tally_mark(&c->t, id);
}

WEFT_ASYNC_FN(next_loop, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        if (self->c->merge) {
            weft_stream_next_init(&self->mn, &self->c->m.base, self->c->mitem);
            WEFT_FN_AWAIT(&self->mn, &self->got);
            if (!self->got) {
                self->c->dones++;
                break;
            }
            uint64_t id;
            memcpy(&id, weft_merge_item_data(self->c->mitem), sizeof id);
            next_mark(self->c, (int)weft_merge_item_index(self->c->mitem), id);
            continue;
        }
        if (weft_select_next_init(&self->sn, self->c->br, NEXT_BRANCHES, WEFT_SELECT_FAIR) != 0)
            WEFT_FN_RETURN(-EINVAL);
        WEFT_FN_AWAIT(&self->sn, &self->ev);
        if (self->ev.index == WEFT_SELECT_ELSE)
            break;
        if (self->ev.ended)
            self->c->ends[self->ev.index]++;
        else
            next_mark(self->c, self->ev.index, self->c->items[self->ev.index]);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static int next_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    next_case *c = ctx;
    bool merge = c->merge;
    memset(c, 0, sizeof *c);
    c->merge = merge;
    c->out = -7;
    int err = 0;
    weft_chan_rx *rx[2] = { &c->rx0, &c->rx1 };
    for (int i = 0; i < 2 && !err; i++) {
        feeder f = { WEFT_FN_INIT(feeder, WEFT_F_SEND), .first = 1 + 100 * (uint64_t)i,
                     .n = LOOP_ITEMS };
        if (weft_mpsc_new(&f.tx, rx[i], sizeof(uint64_t), LOOP_ITEMS) != 0)
            return -ENOMEM;
        err = WEFT_SPAWN(rt, NULL, &f);
    }
    c->gen = (gen_src){ WEFT_GEN_INIT(gen_src, WEFT_F_SEND) };
    weft_stream *streams[NEXT_BRANCHES] = { &c->rx0.base, &c->rx1.base, &c->gen.base };
    if (merge && weft_merge_init(&c->m, c->slots, NEXT_BRANCHES, sizeof(uint64_t),
                                 WEFT_F_SEND) != 0)
        return -EINVAL;
    for (int i = 0; i < NEXT_BRANCHES; i++) {
        c->br[i] = (weft_select_stream){ streams[i], &c->items[i], 0 };
        size_t idx;
        if (merge && (weft_merge_add(&c->m, streams[i], &idx) != 0 || idx != (size_t)i))
            return -EINVAL;
    }
    c->fn = (next_loop){ WEFT_FN_INIT(next_loop, WEFT_F_SEND), .c = c };
    *fut = &c->fn.base;
    *out = &c->out;
    return err;
}

static const char *next_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    next_case *c = ctx;
    /* Each mpsc receiver may keep one registration (see sel_check), and
     * the generator its nap's: it is the caller's, pending in its await,
     * and resumes there at the next poll (its timer fires once). */
    if (run->wakers_after_drop > 3 || run->wakes_after_drop > 3)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (run->completed != (c->out == 0))
        return sweep_say("k=%u: %s with output %d", run->k,
                         run->completed ? "completed" : "dropped", c->out);
    /* A fresh loop over the same branches takes the rest: the ends not
     * reported yet, every item not taken yet. */
    if (!run->completed) {
        next_loop rest = { WEFT_FN_INIT(next_loop, WEFT_F_SEND), .c = c };
        int rc = -1;
        if (weft_block_on(rt, &rest.base, &rc, sizeof rc) != 0 || rc != 0)
            return sweep_say("k=%u: the loop after the drop failed (%d)", run->k, rc);
    }
    if (c->wrong)
        return sweep_say("k=%u: %d item(s) reported for the wrong branch", run->k, c->wrong);
    if (c->merge) {
        if (c->dones != 1 || weft_merge_len(&c->m) != 0)
            return sweep_say("k=%u: the merge said DONE %d time(s), %zu live", run->k,
                             c->dones, weft_merge_len(&c->m));
        for (size_t i = 0; i < NEXT_BRANCHES; i++)
            if (!weft_merge_ended(&c->m, i))
                return sweep_say("k=%u: merge branch %zu not ended", run->k, i);
    } else {
        for (int i = 0; i < NEXT_BRANCHES; i++)
            if (c->ends[i] != 1 || !(c->br[i].flags & WEFT_SELECT_ENDED))
                return sweep_say("k=%u: branch %d's end reported %d time(s)", run->k, i,
                                 c->ends[i]);
    }
    const char *e = want_each_once(&c->t, 1, LOOP_ITEMS, run);
    if (!e)
        e = want_each_once(&c->t, 101, LOOP_ITEMS, run);
    if (!e)
        e = want_each_once(&c->t, 201, LOOP_ITEMS, run);
    return e;
}

static void next_teardown(void *ctx)
{
    next_case *c = ctx;
    weft_chan_rx_drop(&c->rx0);
    weft_chan_rx_drop(&c->rx1);
    weft_stream_drop(&c->gen.base);
}

static void sweep_next(bool merge)
{
    static next_case c;
    c.merge = merge;
    weft_sweep_case sc = { next_build, next_check, next_teardown, &c };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= LOOP_ITEMS); /* the generator's naps at least */
    o = sweep_chaos_options(1, SEEDS, CHAOS);
    sweep_pass(&sc, &o);
    assert_int_equal(misuse_count(), 0);
}

static void test_cancel_sweep_select_next_over_receivers_and_a_generator(void **state)
{
    (void)state;
    sweep_next(false);
}

static void test_cancel_sweep_merge_next_over_receivers_and_a_generator(void **state)
{
    (void)state;
    sweep_next(true);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        T(test_cancel_sweep_select_recv_send_sleep),
        T(test_cancel_sweep_select_lock_acquire_join),
        T(test_cancel_sweep_select_of_every_kind),
        T(test_cancel_sweep_select_served_but_unseen_gives_back),
        T(test_cancel_sweep_select_loop_in_an_async_fn),
        T(test_cancel_sweep_select_next_over_receivers_and_a_generator),
        T(test_cancel_sweep_merge_next_over_receivers_and_a_generator),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
