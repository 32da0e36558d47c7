/* Test support for the sink tests (tests/iter/forward.c, tee.c,
 * sink_fn.c): hand polling of futures and sinks, a drainer task, the
 * essays' Tee written with await (a send coroutine for sink_from_fn), and
 * the cancel sweep over weft_iter_forward into a channel sender, a tee of
 * two, or a sink_from_fn writing to two. Each test program includes it
 * once. */
#ifndef WEFT_TESTS_ITER_SINK_SUPPORT_H
#define WEFT_TESTS_ITER_SINK_SUPPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/counting_waker.h"
#include "support/misuse_capture.h"
#include "support/rt_fixture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "sync/misc_support.h"

/* ---- polling by hand ----------------------------------------------------------- */

static inline weft_poll fpoll(weft_future *f, counting_waker *c, void *out)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(f, &cx, out);
}

static inline weft_next pn_u64(weft_stream *s, counting_waker *c, uint64_t *v)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_stream_poll_next(s, &cx, v);
}

typedef weft_poll sink_poll_fn(weft_sink *, weft_cx *, int *);

static inline weft_poll spoll(sink_poll_fn *fn, weft_sink *s, counting_waker *c, int *res)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    *res = 12345;
    return fn(s, &cx, res);
}

/* Every uint64_t item waiting in `rx`, appended to got[*n]. */
static inline void drain_now(weft_chan_rx *rx, uint64_t *got, size_t *n, size_t cap)
{
    uint64_t v;
    while (weft_chan_try_recv(rx, &v) == 0) {
        if (*n < cap)
            got[*n] = v;
        (*n)++;
    }
}

/* ---- the essays' Tee, written with await ------------------------------------------ */

/* One send of the Tee: the item to a, then to b. Output 0 or -EPIPE. */
typedef struct tee_send_co {
    weft_future base;
    weft_co co;
    weft_chan_tx *a, *b;
    const void *item;
    weft_chan_send s;
    int rc;
} tee_send_co;

WEFT_ASYNC_FN(tee_send_co, int)
{
    WEFT_FN_BEGIN;
    weft_chan_send_init(&self->s, self->a, self->item);
    WEFT_FN_AWAIT(&self->s, &self->rc);
    if (self->rc != 0)
        WEFT_FN_RETURN(self->rc);
    weft_chan_send_init(&self->s, self->b, self->item);
    WEFT_FN_AWAIT(&self->s, &self->rc);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

typedef struct tee_pair {
    weft_chan_tx *a, *b;
} tee_pair;

static int tee_send(void *self, const void *item, weft_future *storage)
{
    tee_pair *p = self;
    tee_send_co *c = (tee_send_co *)(void *)storage;
    *c = (tee_send_co){ WEFT_FN_INIT(tee_send_co, WEFT_F_SEND), .a = p->a, .b = p->b,
                        .item = item };
    return 0;
}

static inline int tee_sink_init(weft_iter_sink_fn *s, tee_pair *p)
{
    return weft_iter_sink_from_fn(s, tee_send, p, sizeof(tee_send_co), _Alignof(tee_send_co),
                                  sizeof(uint64_t), WEFT_F_SEND);
}

/* ---- feeder and drainer tasks ----------------------------------------------------- */

/* Sends 1..n into tx with yields between, then drops tx. */
typedef struct sk_feeder {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send s;
    uint64_t item, n;
    int rc;
} sk_feeder;

WEFT_ASYNC_FN(sk_feeder, int)
{
    WEFT_FN_BEGIN;
    WEFT_FN_YIELD;
    for (self->item = 1; self->item <= self->n; self->item++) {
        weft_chan_send_init(&self->s, &self->tx, &self->item);
        WEFT_FN_AWAIT(&self->s, &self->rc);
        if (self->rc != 0)
            break;
        WEFT_FN_YIELD;
    }
    weft_chan_tx_drop(&self->tx);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* Takes what is in rx (try_recv) `rounds` times, yielding between, into
 * got[*n] (sim only: the arrays are the test's). */
typedef struct sk_drainer {
    weft_future base;
    weft_co co;
    weft_chan_rx *rx;
    uint64_t *got;
    size_t *n, cap;
    unsigned rounds, i;
} sk_drainer;

WEFT_ASYNC_FN(sk_drainer, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->rounds; self->i++) {
        drain_now(self->rx, self->got, self->n, self->cap);
        WEFT_FN_YIELD;
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* ---- the cancel sweep over forward ------------------------------------------------- */

/* A feeder sends 1..SK_N over a source channel (it holds them all) with
 * yields between; forward moves them into the sink under test over
 * bounded channels of SK_CAP (so it waits for room), drained by a task
 * each, SK_ROUNDS times. The sweep drops the forward after k polls; the
 * check flushes the sink (delivering what it accepted, draining the
 * channels meanwhile), takes what is left in the channels, then the rest
 * of the source: per output channel, received ++ left in the source must
 * be exactly 1..SK_N, in order. */
#define SK_N 6
#define SK_CAP 2
#define SK_ROUNDS 400

typedef enum sk_kind { SK_CHAN, SK_TEE, SK_FN, SK_MAP } sk_kind;

typedef struct sk_sweep {
    sk_kind kind;
    weft_chan_rx src;
    weft_chan_tx tx[2];
    weft_chan_rx rx[2];
    tee_pair pair;
    weft_iter_tee tee;
    weft_iter_sink_fn sfn;
    weft_iter_sink_map smap;
    weft_sink *sink;
    weft_iter_forward fwd;
    int out;
    uint64_t got[2][4 * SK_N];
    size_t got_n[2];
} sk_sweep;

static inline unsigned sk_outs(const sk_sweep *s)
{
    return s->kind == SK_CHAN || s->kind == SK_MAP ? 1 : 2;
}

/* SK_MAP's map: the item as it is (the check compares values). */
static void sk_same(void *ctx, const void *in, void *out)
{
    (void)ctx;
    memcpy(out, in, sizeof(uint64_t));
}

static int sk_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    sk_sweep *s = ctx;
    sk_kind kind = s->kind;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    weft_chan_tx stx;
    if (weft_mpsc_new(&stx, &s->src, sizeof(uint64_t), SK_N) != 0)
        return -ENOMEM;
    sk_feeder fd = { WEFT_FN_INIT(sk_feeder, WEFT_F_SEND), .tx = stx, .n = SK_N };
    int err = weft_spawn(rt, &fd.base, sizeof fd, NULL);
    for (unsigned i = 0; i < sk_outs(s); i++) {
        if (weft_mpsc_new(&s->tx[i], &s->rx[i], sizeof(uint64_t), SK_CAP + i) != 0)
            return -ENOMEM;
        sk_drainer dr = { WEFT_FN_INIT(sk_drainer, WEFT_F_SEND), .rx = &s->rx[i],
                          .got = s->got[i], .n = &s->got_n[i], .cap = 4 * SK_N,
                          .rounds = SK_ROUNDS };
        if (!err)
            err = weft_spawn(rt, &dr.base, sizeof dr, NULL);
    }
    s->pair = (tee_pair){ &s->tx[0], &s->tx[1] };
    if (s->kind == SK_CHAN) {
        s->sink = &s->tx[0].base;
    } else if (s->kind == SK_TEE) {
        if (weft_iter_tee_init(&s->tee, &s->tx[0].base, &s->tx[1].base) != 0)
            return -EINVAL;
        s->sink = &s->tee.base;
    } else if (s->kind == SK_MAP) {
        if (weft_iter_sink_map_init(&s->smap, &s->tx[0].base, sk_same, NULL, sizeof(uint64_t)) !=
            0)
            return -EINVAL;
        s->sink = &s->smap.base;
    } else {
        if (tee_sink_init(&s->sfn, &s->pair) != 0)
            return -EINVAL;
        s->sink = &s->sfn.base;
    }
    if (weft_iter_forward_init(&s->fwd, &s->src.base, s->sink, false) != 0)
        return -EINVAL;
    s->out = 1;
    *fut = &s->fwd.base;
    *out = &s->out;
    return err;
}

static const char *sk_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    sk_sweep *s = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (run->completed && s->out != 0)
        return sweep_say("k=%u: forward completed with %d", run->k, s->out);
    counting_waker c;
    cw_init(&c);
    /* Deliver what the sink accepted, making room as it needs. */
    int res = 0, spins = 0;
    while (spoll(s->sink->ops->poll_flush, s->sink, &c, &res) == WEFT_PENDING) {
        for (unsigned i = 0; i < sk_outs(s); i++)
            drain_now(&s->rx[i], s->got[i], &s->got_n[i], 4 * SK_N);
        if (++spins > 1000)
            return sweep_say("k=%u: the sink never flushed", run->k);
    }
    if (res != 0)
        return sweep_say("k=%u: flush said %d", run->k, res);
    for (unsigned i = 0; i < sk_outs(s); i++)
        drain_now(&s->rx[i], s->got[i], &s->got_n[i], 4 * SK_N);
    uint64_t rest[4 * SK_N];
    size_t rest_n = 0;
    /* A forward that completed saw the source DONE: it is not polled again. */
    for (int pending = 0; !run->completed;) {
        uint64_t v;
        weft_next r = pn_u64(&s->src.base, &c, &v);
        if (r == WEFT_NEXT_DONE)
            break;
        if (r == WEFT_NEXT_ITEM) {
            if (rest_n < 4 * SK_N)
                rest[rest_n] = v;
            rest_n++;
        } else if (++pending > 1000) {
            return sweep_say("k=%u: source pending after the feeder finished", run->k);
        }
    }
    for (unsigned i = 0; i < sk_outs(s); i++) {
        size_t n = s->got_n[i];
        if (n + rest_n != SK_N)
            return sweep_say("k=%u (%s) out %u: %zu received + %zu in the source, want %d",
                             run->k, run->completed ? "completed" : "dropped", i, n, rest_n,
                             SK_N);
        for (size_t j = 0; j < SK_N; j++) {
            uint64_t v = j < n ? s->got[i][j] : rest[j - n];
            if (v != j + 1)
                return sweep_say("k=%u out %u: item %zu is %llu", run->k, i, j,
                                 (unsigned long long)v);
        }
    }
    return NULL;
}

static void sk_teardown(void *ctx)
{
    sk_sweep *s = ctx;
    if (s->kind == SK_FN)
        weft_sink_drop(&s->sfn.base);
    for (unsigned i = 0; i < sk_outs(s); i++) {
        weft_chan_tx_drop(&s->tx[i]);
        weft_chan_rx_drop(&s->rx[i]);
    }
    weft_chan_rx_drop(&s->src);
}

/* Sweep forward into the sink of `kind`: chaos off (it must wait at least
 * SK_N / SK_CAP times), then 8 seeds with every chaos knob at 0.3. */
static inline void sk_sweep_run(sk_kind kind)
{
    static sk_sweep s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    weft_sweep_case c = { sk_build, sk_check, sk_teardown, &s };
    assert_true(sweep_both(&c) >= 3);
}

#endif
