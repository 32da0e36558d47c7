/* select_storm: a consumer that selects in a loop, and why nothing it
 * cancels loses an item.
 *
 * Three bounded mpsc channels (capacity 4) carry item ids. Four producer
 * tasks send ids 0..R-1 between them (producer p sends to channel p % 3).
 * A producer sends each id by awaiting the send, or by selecting between
 * the send and a short sleep: when the sleep wins, the send lost and was
 * dropped pending, so it must not have delivered; the producer then sends
 * the same id again or gives it up. Either way a send that lost and still
 * delivered shows as a duplicate below.
 *
 * One consumer task loops over a WEFT_SELECT of five branches: the next
 * item of each channel (weft_stream_next on each receiver in some passes,
 * weft_chan_recv futures in others), a timer, and the cancellation token.
 * The timer is a fresh sleep of 0-4 us in some passes (it often wins, and
 * the three channel branches are dropped pending), and in the others a
 * deadline kept across passes (WEFT_BRANCH_KEEP), moved on when it fires.
 * Both channel branch kinds are cancel-safe: an item leaves a channel only
 * in the poll that completes its branch, so the losers take nothing. Now
 * and then the consumer sleeps after an item, so the channels fill up and
 * the producers' sends wait, and lose to their sleeps.
 *
 * Once every producer finished, the token is cancelled, the consumer
 * stops at its token branch, and every channel is drained with try_recv.
 * Per id the program counts successful sends and receipts (drained ones
 * included); lost = ids sent more often than received (sent - received -
 * still in a channel), duplicated = ids received more often than sent.
 *
 * By default it runs on the deterministic runtime (weft/testing.h) with
 * every chaos knob at 0.5 (spurious wakes, leaf PENDINGs, late timers);
 * `--mt` runs the same scenario on the multi-thread runtime (2 workers).
 *
 *   select_storm [--seed N] [--rounds R] [--mt]
 *     R: the number of item ids the producers send (default 10000).
 *   Last line: seed=N rounds=R items=<ids sent> lost=<n> duplicated=<n>
 *              trace=<16 hex digits>
 *   trace is the sim's trace hash: the same seed prints the same line.
 *   With --mt the interleaving is the machine's, so there is no trace:
 *   it prints trace=- (the items count may differ from run to run, as
 *   the ids given up depend on which sends lost).
 * Exit status 0 only when lost=0 and duplicated=0. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/weft.h>

#define NCH 3
#define NPROD 4
#define CAPACITY 4

/* splitmix64: a small seeded PRNG per task. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* What every task shares. The per-id counters: `sent` is written by the
 * producer of the id, `received` by the consumer (and the final drain);
 * they are read once every task has been joined. */
typedef struct world {
    weft_chan_tx tx[NCH]; /* kept until the drain, so no channel closes */
    weft_chan_rx rx[NCH];
    weft_cancel_token token;
    uint64_t rounds;
    uint8_t *sent, *received;
    /* Consumer counters. */
    uint64_t selects, wins_next, wins_recv, wins_fresh_timer, wins_deadline;
    uint64_t lost_branches; /* channel branches dropped pending */
    /* Per producer: sends that lost their select, ids given up. */
    uint64_t lost_sends[NPROD], given_up[NPROD];
    int error;              /* first inconsistency a task saw */
} world;

/* ---- producers -------------------------------------------------------------------- */

typedef struct producer {
    weft_future base;
    weft_co co;
    world *w;
    weft_chan_tx tx;
    uint64_t rng, first, count, k, item;
    int idx, rc, won;
    weft_chan_send send;
    weft_sleep nap;
    weft_select sel;
} producer;

static void producer_drop(weft_future *f)
{
    producer *self = (producer *)f;
    weft_co_drop(&self->co);
    if (self->tx.ch_) {
        weft_chan_tx_drop(&self->tx);
        self->tx.ch_ = NULL;
    }
}

WEFT_ASYNC_FN_WITH_DROP(producer, int)
{
    WEFT_FN_BEGIN;
    for (self->k = 0; self->k < self->count;) {
        self->item = self->first + self->k;
        if (rng_next(&self->rng) % 4 == 0) {
            /* A plain send: waits for room, then delivers. */
            weft_chan_send_init(&self->send, &self->tx, &self->item);
            WEFT_FN_AWAIT(&self->send, &self->rc);
            if (self->rc != 0)
                WEFT_FN_RETURN(self->rc);
            self->w->sent[self->item]++;
            self->k++;
            continue;
        }
        /* The send against a sleep of 0-7 us. */
        weft_chan_send_init(&self->send, &self->tx, &self->item);
        weft_sleep_init(&self->nap, WEFT_US(rng_next(&self->rng) % 8));
        WEFT_SELECT(&self->sel, &self->won, WEFT_BRANCH(&self->send, &self->rc),
                    WEFT_BRANCH(&self->nap, NULL));
        if (self->won == 0) {
            if (self->rc != 0)
                WEFT_FN_RETURN(self->rc);
            self->w->sent[self->item]++;
            self->k++;
        } else {
            /* The send lost and was dropped pending: it sent nothing. */
            self->w->lost_sends[self->idx]++;
            if (rng_next(&self->rng) % 2 == 0) {
                self->w->given_up[self->idx]++; /* never sent: receiving it is a duplicate */
                self->k++;
            } /* else: the same id again */
        }
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* ---- the consumer ------------------------------------------------------------------- */

typedef struct consumer {
    weft_future base;
    weft_co co;
    world *w;
    uint64_t rng, item[NCH];
    int got[NCH], won;
    bool use_next, fresh, deadline_live;
    weft_stream_next next[NCH];
    weft_chan_recv recv[NCH];
    weft_sleep nap, deadline;
    weft_cancel_token_cancelled stop;
    weft_select sel;
} consumer;

static void consumer_drop(weft_future *f)
{
    consumer *self = (consumer *)f;
    weft_co_drop(&self->co); /* a pending select drops its branches, not the KEEP one */
    if (self->deadline_live) {
        weft_future_drop(&self->deadline.base);
        self->deadline_live = false;
    }
}

/* Branch i of the channels: the receiver's next, or a receive future. */
#define CHAN_BRANCH(self, i)                                                  \
    ((self)->use_next ? WEFT_BRANCH(&(self)->next[i], &(self)->got[i])        \
                      : WEFT_BRANCH(&(self)->recv[i], &(self)->got[i]))

WEFT_ASYNC_FN_WITH_DROP(consumer, int)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->deadline, WEFT_US(2));
    self->deadline_live = true;
    for (;;) {
        self->use_next = rng_next(&self->rng) % 2 == 0;
        self->fresh = rng_next(&self->rng) % 2 == 0;
        for (int i = 0; i < NCH; i++) {
            self->got[i] = -1;
            if (self->use_next)
                weft_stream_next_init(&self->next[i], &self->w->rx[i].base, &self->item[i]);
            else
                weft_chan_recv_init(&self->recv[i], &self->w->rx[i], &self->item[i]);
        }
        if (self->fresh)
            weft_sleep_init(&self->nap, WEFT_US(rng_next(&self->rng) % 5));
        weft_cancel_token_cancelled_init(&self->stop, &self->w->token);
        WEFT_SELECT(&self->sel, &self->won, CHAN_BRANCH(self, 0), CHAN_BRANCH(self, 1),
                    CHAN_BRANCH(self, 2),
                    self->fresh ? WEFT_BRANCH(&self->nap, NULL)
                                : WEFT_BRANCH_KEEP(&self->deadline, NULL),
                    WEFT_BRANCH(&self->stop, NULL));
        self->w->selects++;
        if (self->won < 0)
            WEFT_FN_RETURN(self->won);
        if (self->won == NCH + 1)
            break; /* the token: the run is over */
        if (self->won == NCH) {
            /* The timer won: the three channel branches were dropped
             * pending, and took nothing. */
            self->w->lost_branches += NCH;
            if (self->fresh) {
                self->w->wins_fresh_timer++;
            } else {
                self->w->wins_deadline++;
                weft_sleep_reset(&self->deadline,
                                 weft_now() + WEFT_US(rng_next(&self->rng) % 8));
            }
            continue;
        }
        /* A channel won; the other two were dropped pending. */
        self->w->lost_branches += NCH - 1;
        int ok = self->use_next ? 1 : 0; /* next: 1 = item; recv: 0 = item */
        if (self->got[self->won] != ok)
            WEFT_FN_RETURN(-EPROTO); /* no channel ends before the drain */
        uint64_t id = self->item[self->won];
        if (id >= self->w->rounds)
            WEFT_FN_RETURN(-ERANGE);
        if (self->w->received[id] < UINT8_MAX)
            self->w->received[id]++;
        if (self->use_next)
            self->w->wins_next++;
        else
            self->w->wins_recv++;
        if (rng_next(&self->rng) % 32 == 0) {
            /* A slow moment: the channels fill up, so sends wait and lose. */
            weft_sleep_init(&self->nap, WEFT_US(rng_next(&self->rng) % 20));
            WEFT_FN_AWAIT(&self->nap, NULL);
        }
    }
    weft_future_drop(&self->deadline.base);
    self->deadline_live = false;
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* ---- the scenario ------------------------------------------------------------------ */

typedef struct scenario {
    weft_future base;
    weft_co co;
    world *w;
    uint64_t seed;
    weft_join prod[NPROD], cons;
    int i, status[NPROD], cons_status;
} scenario;

static void drop_join(weft_join *j, const weft_co *co)
{
    if (j->base.ops && j->task && co->awaiting != &j->base)
        weft_future_drop(&j->base);
}

static void scenario_drop(weft_future *f)
{
    scenario *self = (scenario *)f;
    for (int i = 0; i < NPROD; i++)
        drop_join(&self->prod[i], &self->co);
    drop_join(&self->cons, &self->co);
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_WITH_DROP(scenario, int)
{
    int rc;
    WEFT_FN_BEGIN;
    rc = WEFT_SPAWN(NULL, &self->cons,
                    &(consumer){ WEFT_FN_INIT(consumer, WEFT_F_SEND), .w = self->w,
                                 .rng = self->seed ^ 0xc0c0c0c0u });
    if (rc != 0)
        WEFT_FN_RETURN(rc);
    for (self->i = 0; self->i < NPROD; self->i++) {
        uint64_t per = self->w->rounds / NPROD, first = per * (uint64_t)self->i;
        uint64_t count = self->i == NPROD - 1 ? self->w->rounds - first : per;
        producer p = { WEFT_FN_INIT(producer, WEFT_F_SEND), .w = self->w,
                       .rng = self->seed + 0x1000u * (uint64_t)(self->i + 1), .first = first,
                       .count = count, .idx = self->i };
        rc = weft_chan_tx_clone(&self->w->tx[self->i % NCH], &p.tx);
        if (rc != 0)
            WEFT_FN_RETURN(rc);
        rc = WEFT_SPAWN(NULL, &self->prod[self->i], &p);
        if (rc != 0)
            WEFT_FN_RETURN(rc);
    }
    for (self->i = 0; self->i < NPROD; self->i++) {
        WEFT_FN_AWAIT(&self->prod[self->i], &self->status[self->i]);
        if (self->status[self->i] != 0)
            WEFT_FN_RETURN(self->status[self->i]);
    }
    /* Every producer is done: stop the consumer. */
    rc = weft_cancel_token_cancel(&self->w->token);
    if (rc != 0)
        WEFT_FN_RETURN(rc);
    WEFT_FN_AWAIT(&self->cons, &self->cons_status);
    WEFT_FN_RETURN(self->cons_status);
    WEFT_FN_END;
}

__attribute__((noreturn)) static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--seed N] [--rounds R] [--mt]\n", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t seed = 1, rounds = 10000;
    bool mt = false;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--mt") == 0) {
            mt = true;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], &end, 0);
            if (*end)
                usage(argv[0]);
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = strtoull(argv[++i], &end, 0);
            if (*end || rounds == 0)
                usage(argv[0]);
        } else {
            usage(argv[0]);
        }
    }

    weft_rt *rt = NULL;
    int rc;
    if (mt) {
        weft_rt_options o = WEFT_RT_OPTIONS_INIT;
        o.workers = 2;
        rc = weft_rt_new(&rt, &o);
    } else {
        /* Chaos on: every knob fires half the time. */
        weft_sim_options o = WEFT_SIM_OPTIONS_INIT;
        o.seed = seed;
        o.spurious_wake = 0.5;
        o.leaf_pending = 0.5;
        o.timer_late = 0.5;
        rc = weft_rt_new_sim(&rt, &o);
    }
    if (rc != 0) {
        fprintf(stderr, "select_storm: runtime: %s\n", weft_strerror(rc));
        return 1;
    }

    world *w = calloc(1, sizeof *w);
    if (!w)
        return 1;
    w->rounds = rounds;
    w->sent = calloc(rounds, 1);
    w->received = calloc(rounds, 1);
    if (!w->sent || !w->received)
        return 1;
    for (int i = 0; i < NCH; i++) {
        rc = weft_mpsc_new(&w->tx[i], &w->rx[i], sizeof(uint64_t), CAPACITY);
        if (rc != 0) {
            fprintf(stderr, "select_storm: weft_mpsc_new: %s\n", weft_strerror(rc));
            return 1;
        }
    }
    if (weft_cancel_token_init(&w->token) != 0)
        return 1;

    scenario main_task = { WEFT_FN_INIT(scenario, WEFT_F_SEND), .w = w, .seed = seed };
    int status = 0;
    rc = weft_block_on(rt, &main_task.base, &status, sizeof status);
    char trace[24] = "-";
    if (rc == 0 && !mt) {
        weft_sim_stats st;
        rc = weft_sim_stats_get(rt, &st);
        snprintf(trace, sizeof trace, "%016" PRIx64, st.trace_hash);
    }
    if (rc != 0 || status != 0) {
        fprintf(stderr, "select_storm: %s\n", weft_strerror(rc ? rc : status));
        weft_rt_shutdown(rt);
        return 1;
    }

    /* Drain: what the consumer left in a channel counts as received. */
    uint64_t drained = 0;
    for (int i = 0; i < NCH; i++) {
        uint64_t id;
        while ((rc = weft_chan_try_recv(&w->rx[i], &id)) == 0) {
            drained++;
            if (id >= rounds) {
                fprintf(stderr, "select_storm: id %" PRIu64 " out of range\n", id);
                return 1;
            }
            if (w->received[id] < UINT8_MAX)
                w->received[id]++;
        }
        if (rc != -EAGAIN) {
            fprintf(stderr, "select_storm: drain: %s\n", weft_strerror(rc));
            return 1;
        }
    }
    uint64_t items = 0, lost = 0, duplicated = 0, lost_sends = 0, given_up = 0;
    for (int p = 0; p < NPROD; p++) {
        lost_sends += w->lost_sends[p];
        given_up += w->given_up[p];
    }
    for (uint64_t id = 0; id < rounds; id++) {
        items += w->sent[id];
        if (w->sent[id] > w->received[id])
            lost += (uint64_t)(w->sent[id] - w->received[id]);
        else
            duplicated += (uint64_t)(w->received[id] - w->sent[id]);
    }
    printf("selects=%" PRIu64 " channel wins: next=%" PRIu64 " recv=%" PRIu64
           " timer wins: fresh=%" PRIu64 " deadline=%" PRIu64 " channel branches dropped=%" PRIu64
           " drained=%" PRIu64 " sends that lost=%" PRIu64 " ids given up=%" PRIu64 "\n",
           w->selects, w->wins_next, w->wins_recv, w->wins_fresh_timer, w->wins_deadline,
           w->lost_branches, drained, lost_sends, given_up);
    printf("seed=%" PRIu64 " rounds=%" PRIu64 " items=%" PRIu64 " lost=%" PRIu64
           " duplicated=%" PRIu64 " trace=%s\n",
           seed, rounds, items, lost, duplicated, trace);

    for (int i = 0; i < NCH; i++) {
        weft_chan_tx_drop(&w->tx[i]);
        weft_chan_rx_drop(&w->rx[i]);
    }
    weft_rt_shutdown(rt);
    weft_cancel_token_fini(&w->token);
    free(w->sent);
    free(w->received);
    free(w);
    return lost == 0 && duplicated == 0 ? 0 : 1;
}
