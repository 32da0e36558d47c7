/* stress_select_storm: select loops over channels, cancelled all the time
 * (see README.md).
 *
 * Each round makes 2-3 mpmc bounded channels (capacity 1-8, items of 8
 * bytes: an id, `producer << 20 | seq`) on a multi-thread runtime.
 * Producers: 1-4 tasks and 0-2 foreign threads, 100-600 ids each. A task
 * sends each id by awaiting the send, by a select between the send and a
 * sleep of 0-30 us, or by that select under an owning weft_timeout of
 * 0-40 us; a send that lost (or whose select was dropped) sent nothing,
 * and its id is sent again or given up (returned). A foreign thread uses
 * weft_chan_send_blocking. Consumers: 1-3 tasks, each with a receiver of
 * every channel, looping over a select of one branch per channel (a
 * weft_stream_next over the receiver, or a weft_chan_recv future), a timer
 * (a fresh sleep of 0-20 us, or a deadline kept across selects and moved
 * when it fires) and the round's cancellation token; a third of the
 * selects run under an owning weft_timeout of 0-40 us, which drops the
 * select and every branch in it. Now and then a consumer pauses, so the
 * channels fill up and sends wait. A foreign thread aborts random
 * producer tasks and consumers but the first one (stress_abort_at_random),
 * so selects and sends are dropped pending at any await point.
 *
 * Once every producer is done, the token is cancelled, the consumers stop
 * (at the token's branch), the runtime is shut down and the channels are
 * drained through a receiver the round kept. Checked exactly, per id: an
 * id sent (its send said 0) was received or drained once, an id returned
 * (its send lost, timed out, or its task was aborted with it pending) was
 * never received, none both; lost = 0 and duplicated = 0. Every task is
 * dropped once with a join that agrees with the aborts.
 *
 * Counted: cancelled branches — every branch that lost a select, and
 * every branch of a select dropped by a timeout or an abort (the kept
 * deadline included). After the summary line the program prints the
 * total and its rate per second. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "stress_common.h"

#define MAX_CH 3
#define MAX_PROD_TASKS 4
#define MAX_PROD_THREADS 2
#define MAX_PROD (MAX_PROD_TASKS + MAX_PROD_THREADS)
#define MAX_CONS 3
#define MAX_QUOTA 600
#define MAX_TASKS (MAX_PROD_TASKS + MAX_CONS)
#define MAX_ABORTS 8

/* Per-id flags. */
#define F_SENT 1u
#define F_RETURNED 2u

/* The round (one at a time; reset by round_reset). */
static struct {
    weft_rt *rt;
    unsigned nch, nprod_tasks, nprod_threads, ncons;
    weft_chan_tx tx[MAX_CH];   /* the round's: cloned for each producer */
    weft_chan_rx rx[MAX_CH];   /* the round's: cloned for each consumer, drains at the end */
    weft_cancel_token token;
    unsigned quota[MAX_PROD];
    /* Per id. Relaxed: `flags` is or'ed by the id's producer (its task, or
     * its drop), `recvd` added to by the consumer that took it (or the
     * drain); the main thread reads both after the runtime's shutdown. */
    _Atomic uint8_t flags[MAX_PROD][MAX_QUOTA];
    _Atomic uint8_t recvd[MAX_PROD][MAX_QUOTA];

    /* Tasks: the abortable ones first (producers, then consumers 1..),
     * consumer 0 last. */
    unsigned ntasks, nabortable;
    weft_join joins[MAX_TASKS];
    /* aborted: set by the aborter (release), read by the main thread at the
     * join check (acquire); drops: the task's drop (stress_drop_once);
     * done: the task before it returns, read by its drop and by the main
     * thread after shutdown. */
    _Atomic uint8_t aborted[MAX_TASKS], drops[MAX_TASKS], done[MAX_TASKS];
    _Atomic unsigned published; /* main thread (release) -> aborter (acquire) */
    _Atomic bool over;          /* main thread (release) -> aborter (acquire) */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned prod_dropped, cons_dropped; /* under lock */

    stress_counter lost, duplicated, sent, received, drained, returned, foreign_sent;
    stress_counter selects, select_timeouts, send_selects, send_timeouts, aborts;
    stress_counter selects_aborted, cancelled_branches, completed, cancelled;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static uint64_t make_id(unsigned p, unsigned seq)
{
    return (uint64_t)p << 20 | seq;
}

/* Marks a task dropped, once, and wakes the round's main thread. */
static void task_dropped(unsigned idx, bool consumer)
{
    stress_drop_once(&g.drops[idx], "task", idx);
    if (atomic_load_explicit(&g.done[idx], memory_order_relaxed))
        stress_count(&g.completed);
    else
        stress_count(&g.cancelled);
    pthread_mutex_lock(&g.lock);
    if (consumer)
        g.cons_dropped++;
    else
        g.prod_dropped++;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

/* ---- producer tasks ------------------------------------------------------------- */

typedef struct producer {
    weft_future base;
    weft_co co;
    unsigned idx, p;
    uint64_t rng, item;
    unsigned seq;
    bool tx_live, in_flight, in_select;
    int rc, won;
    weft_chan_tx tx;
    weft_chan_send send;
    weft_sleep nap;
    weft_select_branch br[2];
    weft_select sel;
    weft_timeout to;
} producer;

static void producer_drop(weft_future *f)
{
    producer *self = (producer *)f;
    weft_co_drop(&self->co);
    if (self->in_select) /* aborted with its select pending: both branches */
        stress_count_n(&g.cancelled_branches, 2);
    if (self->in_flight) {
        /* Aborted with the send pending: it sent nothing. */
        atomic_fetch_or_explicit(&g.flags[self->p][self->seq], F_RETURNED, memory_order_relaxed);
        stress_count(&g.returned);
    }
    if (self->tx_live)
        weft_chan_tx_drop(&self->tx);
    task_dropped(self->idx, false);
}

WEFT_ASYNC_FN_WITH_DROP(producer, uint64_t)
{
    WEFT_FN_BEGIN;
    for (self->seq = 0; self->seq < g.quota[self->p];) {
        self->item = make_id(self->p, self->seq);
        self->in_flight = true;
        weft_chan_send_init(&self->send, &self->tx, &self->item);
        if (rng_next32(&self->rng) % 4 == 0) {
            WEFT_FN_AWAIT(&self->send, &self->rc);
            STRESS_ENSURE(self->rc == 0, "producer %u: send: %d", self->p, self->rc);
            self->won = 0;
        } else {
            weft_sleep_init(&self->nap, WEFT_US(rng_next32(&self->rng) % 31));
            self->br[0] = WEFT_BRANCH(&self->send, &self->rc);
            self->br[1] = WEFT_BRANCH(&self->nap, NULL);
            STRESS_ENSURE(weft_select_init(&self->sel, self->br, 2, WEFT_SELECT_FAIR) == 0,
                          "weft_select_init");
            stress_count(&g.send_selects);
            self->in_select = true;
            if (rng_next32(&self->rng) % 2 == 0) {
                WEFT_FN_AWAIT(&self->sel, &self->won);
            } else {
                STRESS_ENSURE(weft_timeout_init(&self->to, &self->sel.base,
                                                WEFT_US(rng_next32(&self->rng) % 41)) == 0,
                              "weft_timeout_init");
                WEFT_FN_AWAIT(&self->to, &self->won);
                if (self->to.status == -ETIMEDOUT) {
                    stress_count(&g.send_timeouts);
                    stress_count(&g.cancelled_branches); /* the loser, below, is the other */
                    self->won = 1;
                }
            }
            self->in_select = false;
            stress_count(&g.cancelled_branches); /* the branch that lost */
            STRESS_ENSURE(self->won == 0 || self->won == 1, "producer select: %d", self->won);
            if (self->won == 0)
                STRESS_ENSURE(self->rc == 0, "producer %u: send: %d", self->p, self->rc);
        }
        self->in_flight = false;
        if (self->won == 0) {
            atomic_fetch_or_explicit(&g.flags[self->p][self->seq], F_SENT, memory_order_relaxed);
            stress_count(&g.sent);
            self->seq++;
        } else if (rng_next32(&self->rng) % 2 == 0) {
            /* Lost: give the id up (receiving it now is a duplicate)... */
            atomic_fetch_or_explicit(&g.flags[self->p][self->seq], F_RETURNED,
                                     memory_order_relaxed);
            stress_count(&g.returned);
            self->seq++;
        } /* ...or send it again (receiving it twice is a duplicate). */
    }
    atomic_store_explicit(&g.done[self->idx], 1, memory_order_relaxed);
    WEFT_FN_RETURN(self->idx);
    WEFT_FN_END;
}

/* ---- foreign producers ------------------------------------------------------------- */

static void *producer_thread(void *arg)
{
    unsigned p = (unsigned)(uintptr_t)arg;
    weft_chan_tx tx;
    STRESS_ENSURE(weft_chan_tx_clone(&g.tx[p % g.nch], &tx) == 0, "tx clone");
    for (unsigned s = 0; s < g.quota[p]; s++) {
        uint64_t id = make_id(p, s);
        int rc = weft_chan_send_blocking(&tx, &id);
        STRESS_ENSURE(rc == 0, "foreign producer %u: send_blocking: %d", p, rc);
        atomic_fetch_or_explicit(&g.flags[p][s], F_SENT, memory_order_relaxed);
        stress_count(&g.sent);
        stress_count(&g.foreign_sent);
    }
    weft_chan_tx_drop(&tx);
    return NULL;
}

/* ---- consumers ------------------------------------------------------------------- */

typedef struct consumer {
    weft_future base;
    weft_co co;
    unsigned idx, c, n;
    uint64_t rng, item[MAX_CH];
    int got[MAX_CH], won;
    bool use_next, fresh, rx_live, deadline_live, in_select;
    weft_chan_rx rx[MAX_CH];
    weft_stream_next next[MAX_CH];
    weft_chan_recv recv[MAX_CH];
    weft_sleep nap, deadline;
    weft_cancel_token_cancelled stop;
    weft_select_branch br[MAX_CH + 2];
    weft_select sel;
    weft_timeout to;
} consumer;

static void consumer_drop(weft_future *f)
{
    consumer *self = (consumer *)f;
    weft_co_drop(&self->co);
    if (self->in_select) {
        /* Aborted with its select pending: every branch. */
        stress_count(&g.selects_aborted);
        stress_count_n(&g.cancelled_branches, self->n);
    }
    if (self->deadline_live)
        weft_future_drop(&self->deadline.base);
    if (self->rx_live)
        for (unsigned i = 0; i < g.nch; i++)
            weft_chan_rx_drop(&self->rx[i]);
    task_dropped(self->idx, true);
}

static void consumer_got(consumer *self, unsigned ch)
{
    int ok = self->use_next ? 1 : 0; /* next: 1 = an item; recv: 0 */
    STRESS_ENSURE(self->got[ch] == ok, "consumer %u: channel %u said %d", self->c, ch,
                  self->got[ch]);
    uint64_t id = self->item[ch];
    unsigned p = (unsigned)(id >> 20), s = (unsigned)(id & 0xfffff);
    STRESS_ENSURE(p < g.nprod_tasks + g.nprod_threads && s < g.quota[p],
                  "consumer %u: id %#" PRIx64 " out of range", self->c, id);
    atomic_fetch_add_explicit(&g.recvd[p][s], 1, memory_order_relaxed);
    stress_count(&g.received);
}

WEFT_ASYNC_FN_WITH_DROP(consumer, uint64_t)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->deadline, WEFT_US(rng_next32(&self->rng) % 20));
    self->deadline_live = true;
    self->n = g.nch + 2;
    for (;;) {
        self->use_next = rng_next32(&self->rng) % 2 == 0;
        self->fresh = rng_next32(&self->rng) % 2 == 0;
        for (unsigned i = 0; i < g.nch; i++) {
            self->got[i] = -1;
            if (self->use_next) {
                weft_stream_next_init(&self->next[i], &self->rx[i].base, &self->item[i]);
                self->br[i] = WEFT_BRANCH(&self->next[i], &self->got[i]);
            } else {
                weft_chan_recv_init(&self->recv[i], &self->rx[i], &self->item[i]);
                self->br[i] = WEFT_BRANCH(&self->recv[i], &self->got[i]);
            }
        }
        if (self->fresh) {
            weft_sleep_init(&self->nap, WEFT_US(rng_next32(&self->rng) % 21));
            self->br[g.nch] = WEFT_BRANCH(&self->nap, NULL);
        } else {
            self->br[g.nch] = WEFT_BRANCH_KEEP(&self->deadline, NULL);
        }
        weft_cancel_token_cancelled_init(&self->stop, &g.token);
        self->br[g.nch + 1] = WEFT_BRANCH(&self->stop, NULL);
        STRESS_ENSURE(weft_select_init(&self->sel, self->br, self->n, WEFT_SELECT_FAIR) == 0,
                      "weft_select_init");
        stress_count(&g.selects);
        self->in_select = true;
        if (rng_next32(&self->rng) % 3 != 0) {
            WEFT_FN_AWAIT(&self->sel, &self->won);
        } else {
            STRESS_ENSURE(weft_timeout_init(&self->to, &self->sel.base,
                                            WEFT_US(rng_next32(&self->rng) % 41)) == 0,
                          "weft_timeout_init");
            WEFT_FN_AWAIT(&self->to, &self->won);
            if (self->to.status == -ETIMEDOUT) {
                /* The select was dropped with every branch. */
                self->in_select = false;
                stress_count(&g.select_timeouts);
                stress_count_n(&g.cancelled_branches, self->n);
                continue;
            }
        }
        self->in_select = false;
        stress_count_n(&g.cancelled_branches, self->n - 1); /* the losers */
        STRESS_ENSURE(self->won >= 0 && (unsigned)self->won < self->n,
                      "consumer %u: select said %d", self->c, self->won);
        if ((unsigned)self->won == g.nch + 1)
            break; /* the token */
        if ((unsigned)self->won == g.nch) {
            if (!self->fresh)
                weft_sleep_reset(&self->deadline,
                                 weft_now() + WEFT_US(rng_next32(&self->rng) % 20));
            continue;
        }
        consumer_got(self, (unsigned)self->won);
        if (rng_next32(&self->rng) % 64 == 0) {
            /* A pause: the channels fill up and sends wait. */
            weft_sleep_init(&self->nap, WEFT_US(rng_next32(&self->rng) % 200));
            WEFT_FN_AWAIT(&self->nap, NULL);
        }
    }
    atomic_store_explicit(&g.done[self->idx], 1, memory_order_relaxed);
    WEFT_FN_RETURN(self->idx);
    WEFT_FN_END;
}

/* ---- the aborter ----------------------------------------------------------------- */

static uint64_t g_aborter_seed;

static void *aborter_main(void *arg)
{
    (void)arg;
    stress_abortable t = { g.joins, g.aborted, &g.published, &g.over };
    stress_abort_at_random(&t, g_aborter_seed, MAX_ABORTS, &g.aborts);
    return NULL;
}

/* ---- a round ---------------------------------------------------------------------- */

static void check_ids(void)
{
    uint64_t lost = 0, dup = 0, both = 0, drained = 0, first_lost = 0, first_dup = 0;
    /* Drain what the consumers left. */
    for (unsigned i = 0; i < g.nch; i++) {
        uint64_t id;
        int rc;
        while ((rc = weft_chan_try_recv(&g.rx[i], &id)) == 0) {
            unsigned p = (unsigned)(id >> 20), s = (unsigned)(id & 0xfffff);
            STRESS_ENSURE(p < g.nprod_tasks + g.nprod_threads && s < g.quota[p],
                          "drained id %#" PRIx64 " out of range", id);
            atomic_fetch_add_explicit(&g.recvd[p][s], 1, memory_order_relaxed);
            drained++;
        }
        STRESS_ENSURE(rc == -EAGAIN, "drain: %d", rc);
    }
    stress_count_n(&g.drained, drained);
    for (unsigned p = 0; p < g.nprod_tasks + g.nprod_threads; p++) {
        for (unsigned s = 0; s < g.quota[p]; s++) {
            uint8_t f = atomic_load_explicit(&g.flags[p][s], memory_order_relaxed);
            uint8_t n = atomic_load_explicit(&g.recvd[p][s], memory_order_relaxed);
            if (f == (F_SENT | F_RETURNED))
                both++;
            if ((f & F_SENT) && n == 0 && lost++ == 0)
                first_lost = make_id(p, s);
            if ((n > 1 || (n == 1 && f != F_SENT)) && dup++ == 0)
                first_dup = make_id(p, s);
        }
    }
    stress_count_n(&g.lost, lost);
    stress_count_n(&g.duplicated, dup);
    STRESS_ENSURE(lost == 0 && dup == 0 && both == 0,
                  "ids: lost=%" PRIu64 " (first %#" PRIx64 ") duplicated=%" PRIu64
                  " (first %#" PRIx64 ") sent_and_returned=%" PRIu64,
                  lost, first_lost, dup, first_dup, both);
}

static void wait_dropped(unsigned *count, unsigned n)
{
    pthread_mutex_lock(&g.lock);
    while (*count < n)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
}

static void run_round(uint64_t seed, const stress_options *opt)
{
    uint64_t rng = rng_seed(seed);
    g.nch = 2 + rng_next32(&rng) % 2;
    g.nprod_tasks = 1 + rng_next32(&rng) % MAX_PROD_TASKS;
    g.nprod_threads = rng_next32(&rng) % (MAX_PROD_THREADS + 1);
    g.ncons = 1 + rng_next32(&rng) % MAX_CONS;
    size_t cap = 1 + rng_next32(&rng) % 8;
    for (unsigned p = 0; p < MAX_PROD; p++) {
        g.quota[p] = 100 + rng_next32(&rng) % (MAX_QUOTA - 99);
        for (unsigned s = 0; s < MAX_QUOTA; s++) {
            atomic_store_explicit(&g.flags[p][s], 0, memory_order_relaxed);
            atomic_store_explicit(&g.recvd[p][s], 0, memory_order_relaxed);
        }
    }
    for (unsigned i = 0; i < MAX_TASKS; i++) {
        atomic_store_explicit(&g.aborted[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g.drops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g.done[i], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&g.published, 0, memory_order_relaxed);
    atomic_store_explicit(&g.over, false, memory_order_relaxed);
    g.prod_dropped = g.cons_dropped = 0;
    g_aborter_seed = rng_next(&rng);

    g.rt = stress_rt_new(opt);
    for (unsigned i = 0; i < g.nch; i++)
        STRESS_ENSURE(weft_mpmc_new(&g.tx[i], &g.rx[i], sizeof(uint64_t), cap) == 0, "mpmc_new");
    STRESS_ENSURE(weft_cancel_token_init(&g.token) == 0, "token");

    pthread_t threads[MAX_PROD_THREADS], aborter;
    for (unsigned t = 0; t < g.nprod_threads; t++)
        STRESS_ENSURE(pthread_create(&threads[t], NULL, producer_thread,
                                     (void *)(uintptr_t)(g.nprod_tasks + t)) == 0,
                      "pthread_create");
    STRESS_ENSURE(pthread_create(&aborter, NULL, aborter_main, NULL) == 0, "pthread_create");

    /* Producer tasks, consumers 1.. (abortable), then consumer 0. */
    g.ntasks = g.nprod_tasks + g.ncons;
    g.nabortable = g.ntasks - 1;
    for (unsigned i = 0; i < g.ntasks; i++) {
        int rc;
        uint64_t trng = rng_seed(seed ^ ((uint64_t)(i + 1) * 0x100000001b3ull));
        if (i < g.nprod_tasks) {
            producer pr = { WEFT_FN_INIT(producer, WEFT_F_SEND), .idx = i, .p = i, .rng = trng,
                            .tx_live = true };
            STRESS_ENSURE(weft_chan_tx_clone(&g.tx[i % g.nch], &pr.tx) == 0, "tx clone");
            rc = weft_spawn(g.rt, &pr.base, sizeof pr, &g.joins[i]);
        } else {
            unsigned c = i + 1 == g.ntasks ? 0 : i - g.nprod_tasks + 1;
            consumer co = { WEFT_FN_INIT(consumer, WEFT_F_SEND), .idx = i, .c = c, .rng = trng,
                            .rx_live = true };
            for (unsigned k = 0; k < g.nch; k++)
                STRESS_ENSURE(weft_chan_rx_clone(&g.rx[k], &co.rx[k]) == 0, "rx clone");
            rc = weft_spawn(g.rt, &co.base, sizeof co, &g.joins[i]);
        }
        STRESS_ENSURE(rc == 0, "spawn of task %u: %s", i, weft_strerror(rc));
        /* Release: the join is written before the aborter may use it.
         * Consumer 0, last, is never published: it drains to the end. */
        if (i < g.nabortable)
            atomic_store_explicit(&g.published, i + 1, memory_order_release);
    }

    /* Every producer done, then the consumers stopped by the token. */
    for (unsigned t = 0; t < g.nprod_threads; t++)
        pthread_join(threads[t], NULL);
    wait_dropped(&g.prod_dropped, g.nprod_tasks);
    atomic_store_explicit(&g.over, true, memory_order_release);
    pthread_join(aborter, NULL);
    STRESS_ENSURE(weft_cancel_token_cancel(&g.token) == 0, "cancel");
    wait_dropped(&g.cons_dropped, g.ncons);
    weft_rt_shutdown(g.rt);

    for (unsigned i = 0; i < g.ntasks; i++) {
        uint64_t out;
        stress_join_finished(&g.joins[i], "task", i, &out);
        bool done = atomic_load_explicit(&g.done[i], memory_order_acquire);
        bool aborted = atomic_load_explicit(&g.aborted[i], memory_order_acquire);
        stress_check_join("main", "task", i, g.joins[i].status, out, done, i, aborted);
        weft_future_drop(&g.joins[i].base);
    }
    check_ids();
    for (unsigned i = 0; i < g.nch; i++) {
        weft_chan_tx_drop(&g.tx[i]);
        weft_chan_rx_drop(&g.rx[i]);
    }
    weft_cancel_token_fini(&g.token);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g.lost, &g.duplicated, &g.sent, &g.received, &g.drained, &g.returned,
        &g.foreign_sent, &g.selects, &g.select_timeouts, &g.selects_aborted, &g.send_selects,
        &g.send_timeouts, &g.aborts, &g.completed, &g.cancelled, &g.cancelled_branches,
    };
    const stress_program p = {
        "stress_select_storm", run_round, counters, sizeof counters / sizeof counters[0],
        "lost duplicated sent received drained returned foreign_sent selects select_timeouts "
        "selects_aborted send_selects send_timeouts aborts completed cancelled "
        "cancelled_branches",
    };
    double start = now_s();
    int rc = stress_main(argc, argv, &p);
    double secs = now_s() - start;
    printf("cancelled_branches=%" PRIu64 " per_second=%.0f\n", g.cancelled_branches.total,
           secs > 0 ? (double)g.cancelled_branches.total / secs : 0.0);
    return rc;
}
