/* Test support for the combinator tests (tests/iter/map.c, take.c,
 * enumerate.c, fuse.c, chain.c): upstreams written here rather than taken
 * from iter/, so each combinator is tested alone — a scripted stream (every
 * answer chosen by the test, polls counted) and a counter (always ready) —
 * a poll helper with a counting waker, and the cancel sweep over
 * weft_stream_next of a combinator on a channel receiver fed by a task:
 * what the dropped next returned plus what fresh nexts get after the drop
 * must be exactly the expected items, in order. Each test program
 * includes it once. */
#ifndef WEFT_TESTS_ITER_COMB_SUPPORT_H
#define WEFT_TESTS_ITER_COMB_SUPPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/counting_waker.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "sync/misc_support.h"

/* ---- scripted upstream ------------------------------------------------------ */

/* Items are uint64_t: a script value >= 0 is an item, S_PENDING arranges
 * a wake (by ref, on the waker it was given) and answers PENDING, S_DONE
 * ends it (and so does the end of the script). */
#define S_PENDING (-1)
#define S_DONE (-2)

typedef struct scripted {
    weft_stream base;
    const int64_t *script;
    size_t len, at;
    unsigned polls, after_done, batch_calls;
    bool done;
} scripted;

static weft_next scripted_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    scripted *sc = (scripted *)s;
    sc->polls++;
    if (sc->done) {
        sc->after_done++;
        return WEFT_NEXT_DONE;
    }
    int64_t v = sc->at < sc->len ? sc->script[sc->at++] : S_DONE;
    if (v == S_PENDING) {
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_NEXT_PENDING;
    }
    if (v == S_DONE) {
        sc->done = true;
        return WEFT_NEXT_DONE;
    }
    uint64_t u = (uint64_t)v;
    memcpy(item, &u, sizeof u);
    return WEFT_NEXT_ITEM;
}

/* A batch poll of its own: the items up to the next PENDING, DONE or max. */
static weft_next scripted_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                         size_t *n)
{
    scripted *sc = (scripted *)s;
    sc->batch_calls++;
    uint64_t *o = items;
    *n = 0;
    while (*n < max && sc->at < sc->len && sc->script[sc->at] >= 0)
        o[(*n)++] = (uint64_t)sc->script[sc->at++];
    if (*n)
        return WEFT_NEXT_ITEM;
    return scripted_poll_next(s, cx, items);
}

static void scripted_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const scripted *sc = (const scripted *)s;
    size_t k = 0;
    for (size_t i = sc->at; i < sc->len && sc->script[i] != S_DONE; i++)
        k += sc->script[i] >= 0;
    *lo = *hi = sc->done ? 0 : k;
}

static const weft_stream_ops scripted_ops = {
    .name = "test_scripted",
    .item_size = sizeof(uint64_t),
    .poll_next = scripted_poll_next,
    .size_hint = scripted_size_hint,
};

static const weft_stream_ops batched_ops = {
    .name = "test_batched",
    .item_size = sizeof(uint64_t),
    .poll_next = scripted_poll_next,
    .size_hint = scripted_size_hint,
    .poll_next_many = scripted_poll_next_many,
};

static inline void scripted_init(scripted *sc, const weft_stream_ops *ops, const int64_t *script,
                                 size_t len, uint32_t flags)
{
    memset(sc, 0, sizeof *sc);
    weft_stream_init(&sc->base, ops, flags);
    sc->script = script;
    sc->len = len;
}

#define SCRIPT(sc, ops, flags, ...)                                            \
    do {                                                                       \
        static const int64_t script_[] = { __VA_ARGS__ };                      \
        scripted_init((sc), (ops), script_, sizeof script_ / sizeof *script_,  \
                      (flags));                                                \
    } while (0)

/* ---- counter upstream ------------------------------------------------------- */

/* uint64_t items next, next + 1, ... up to end (excluded), always ready. */
typedef struct counter {
    weft_stream base;
    uint64_t next, end;
    unsigned polls;
} counter;

static weft_next counter_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    counter *c = (counter *)s;
    (void)cx;
    c->polls++;
    if (c->next >= c->end)
        return WEFT_NEXT_DONE;
    memcpy(item, &c->next, sizeof c->next);
    c->next++;
    return WEFT_NEXT_ITEM;
}

static const weft_stream_ops counter_ops = {
    .name = "test_counter",
    .item_size = sizeof(uint64_t),
    .poll_next = counter_poll_next,
};

static inline void counter_init(counter *c, uint64_t from, uint64_t end, uint32_t flags)
{
    memset(c, 0, sizeof *c);
    weft_stream_init(&c->base, &counter_ops, flags);
    c->next = from;
    c->end = end;
}

/* ---- polling by hand -------------------------------------------------------- */

static inline weft_next pn(weft_stream *s, counting_waker *c, void *item)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_stream_poll_next(s, &cx, item);
}

static inline weft_next pmany(weft_stream *s, counting_waker *c, void *items, size_t max,
                              size_t *n)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_stream_poll_next_many(s, &cx, items, max, n);
}

/* The next uint64_t item of `s`, which must have one ready. */
static inline uint64_t next_u64(weft_stream *s, counting_waker *c)
{
    uint64_t v = 0;
    assert_int_equal(pn(s, c, &v), WEFT_NEXT_ITEM);
    return v;
}

/* Flags AND: the combinator made by `make` over upstreams of flags fa
 * (and fb) is Send exactly when they all are; each case calls it. */
#define ASSERT_SEND_IFF(comb_flags, all_send)                                  \
    assert_int_equal(((comb_flags) & WEFT_F_SEND) != 0, (all_send))

/* ---- the cancel sweep ------------------------------------------------------- */

/* A feeder task sends 1..CS_FEED over an mpsc channel that holds them all
 * (so it finishes after any drop), with yields between, then drops its sender. The case's `make` builds the
 * combinator under test over the receiver (and `extra`, a counter of
 * 100.., for two-upstream ones) in `st`; the sweep polls a
 * weft_stream_next over it k times and drops it; the check takes what the
 * next returned, then drains the combinator with fresh polls: together
 * they must be exactly `want` (words of 8 bytes, `item_size` per item). */
#define CS_FEED 6
#define CS_MAX_ITEM 32
#define CS_MAX_ITEMS 16

typedef struct comb_sweep comb_sweep;
typedef weft_stream *comb_make_fn(comb_sweep *cs);

struct comb_sweep {
    const char *name;
    comb_make_fn *make;
    const uint64_t *want;
    size_t want_n, item_size;
    weft_chan_rx rx;
    counter extra;
    union {
        max_align_t align_;
        unsigned char b[1024];
    } st;
    weft_stream *s;
    weft_stream_next nx;
    uint64_t item[CS_MAX_ITEM / 8];
    int out;
    uint64_t got[CS_MAX_ITEMS * CS_MAX_ITEM / 8];
    size_t got_n;
};

typedef struct cs_feeder {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send s;
    uint64_t item;
    int rc;
} cs_feeder;

WEFT_ASYNC_FN(cs_feeder, int)
{
    WEFT_FN_BEGIN;
    WEFT_FN_YIELD;
    for (self->item = 1; self->item <= CS_FEED; self->item++) {
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

static int cs_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    comb_sweep *cs = ctx;
    weft_chan_tx tx;
    if (weft_mpsc_new(&tx, &cs->rx, sizeof(uint64_t), CS_FEED) != 0)
        return -ENOMEM;
    counter_init(&cs->extra, 100, 1000, WEFT_F_SEND);
    cs_feeder fd = { WEFT_FN_INIT(cs_feeder, WEFT_F_SEND), .tx = tx };
    int err = weft_spawn(rt, &fd.base, sizeof fd, NULL);
    cs->s = cs->make(cs);
    if (!cs->s)
        return -EINVAL;
    memset(cs->item, 0, sizeof cs->item);
    cs->got_n = 0;
    cs->out = -1;
    weft_stream_next_init(&cs->nx, cs->s, cs->item);
    *fut = &cs->nx.base;
    *out = &cs->out;
    return err;
}

static void cs_take(comb_sweep *cs, const uint64_t *item)
{
    size_t w = cs->item_size / 8;
    if (cs->got_n < CS_MAX_ITEMS)
        memcpy(&cs->got[cs->got_n * w], item, cs->item_size);
    cs->got_n++;
}

static const char *cs_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    comb_sweep *cs = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    static const uint64_t zero[CS_MAX_ITEM / 8];
    bool done = false;
    if (run->completed) {
        if (cs->out == 1)
            cs_take(cs, cs->item);
        else
            done = true; /* the stream answered DONE: never polled again */
    } else if (memcmp(cs->item, zero, sizeof zero) != 0) {
        return sweep_say("%s k=%u: a next dropped before it finished wrote an item",
                         cs->name, run->k);
    }
    counting_waker c;
    cw_init(&c);
    int pending = 0;
    while (!done) {
        uint64_t item[CS_MAX_ITEM / 8];
        weft_next r = pn(cs->s, &c, item);
        if (r == WEFT_NEXT_ITEM)
            cs_take(cs, item);
        else if (r == WEFT_NEXT_DONE)
            done = true;
        else if (++pending > 1000)
            return sweep_say("%s k=%u: pending after the feeder finished", cs->name, run->k);
    }
    if (cs->got_n != cs->want_n)
        return sweep_say("%s k=%u (%s): %zu item(s), want %zu", cs->name, run->k,
                         run->completed ? "completed" : "dropped", cs->got_n, cs->want_n);
    if (memcmp(cs->got, cs->want, cs->want_n * cs->item_size) != 0)
        return sweep_say("%s k=%u (%s): items differ (first %llu)", cs->name, run->k,
                         run->completed ? "completed" : "dropped",
                         (unsigned long long)cs->got[0]);
    return NULL;
}

static void cs_teardown(void *ctx)
{
    comb_sweep *cs = ctx;
    weft_stream_drop(cs->s); /* the combinator only: the receiver is borrowed */
    weft_chan_rx_drop(&cs->rx);
}

/* Sweep the combinator `make` builds: once with chaos off (it must take
 * at least two polls: the feeder yields first), then over 8 seeds with
 * every chaos knob at 0.3. */
static inline void comb_sweep_run(const char *name, comb_make_fn *make, const uint64_t *want,
                                  size_t want_n, size_t item_size)
{
    static comb_sweep cs;
    memset(&cs, 0, sizeof cs);
    cs.name = name;
    cs.make = make;
    cs.want = want;
    cs.want_n = want_n;
    cs.item_size = item_size;
    assert_true(want_n <= CS_MAX_ITEMS && item_size <= CS_MAX_ITEM && item_size % 8 == 0);
    weft_sweep_case c = { cs_build, cs_check, cs_teardown, &cs };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2);
    o = sweep_chaos_options(1, 8, 0.3);
    (void)sweep_pass(&c, &o);
}

/* COMB_SWEEP(name, make, words per item, want...). */
#define COMB_SWEEP(name, make, words, ...)                                     \
    do {                                                                       \
        static const uint64_t want_[] = { __VA_ARGS__ };                       \
        comb_sweep_run((name), (make), want_,                                  \
                       sizeof want_ / sizeof *want_ / (words), (words) * 8);   \
    } while (0)

#endif
