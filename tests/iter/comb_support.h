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
/* The largest combinator item the batch checks take (bytes). */
#define CS_MAX_ITEM_BS 32

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

/* ---- a batch pull as a future ------------------------------------------------ */

/* One weft_stream_poll_next_many of up to `max` items into `buf`, as a
 * future: output size_t, the items written (>= 1), or 0 when the stream
 * is DONE. Like weft_stream_next, items reach `buf` only in the poll that
 * completes it. */
typedef struct next_many {
    weft_future base;
    weft_stream *s;
    void *buf;
    size_t max;
} next_many;

static weft_poll next_many_poll(weft_future *f, weft_cx *cx, void *out)
{
    next_many *m = (next_many *)f;
    size_t n = 0;
    weft_next r = weft_stream_poll_next_many(m->s, cx, m->buf, m->max, &n);
    if (r == WEFT_NEXT_PENDING)
        return WEFT_PENDING;
    *(size_t *)out = r == WEFT_NEXT_ITEM ? n : 0;
    return WEFT_READY;
}

static const weft_future_ops next_many_ops = {
    .name = "test_next_many", .out_size = sizeof(size_t), .poll = next_many_poll,
};

static inline void next_many_init(next_many *m, weft_stream *s, void *buf, size_t max)
{
    weft_future_init(&m->base, &next_many_ops, s->flags & WEFT_F_SEND);
    m->s = s;
    m->buf = buf;
    m->max = max;
}

/* ---- batch and single-item paths agree -------------------------------------- */

/* The combinator `make` builds in `st` over `up`. */
typedef weft_stream *comb_make_up_fn(void *st, weft_stream *up);

#define BS_MAX_OUT 64

typedef struct bs_run {
    unsigned char items[BS_MAX_OUT * CS_MAX_ITEM_BS];
    size_t n, at;
    unsigned pendings;
} bs_run;

/* Drain the combinator over a fresh scripted upstream (`ops`) in one
 * mode: 0 item by item, m > 0 batches of at most m, m < 0 mixed single
 * polls and batches of 1..9 chosen by a generator seeded with -m. */
static inline void bs_drain(bs_run *out, comb_make_up_fn *make, const weft_stream_ops *ops,
                            const int64_t *script, size_t len, size_t item_size, int mode)
{
    scripted sc;
    scripted_init(&sc, ops, script, len, WEFT_F_SEND);
    union {
        max_align_t a_;
        unsigned char b[1024];
    } st;
    weft_stream *s = make(st.b, &sc.base);
    assert_non_null(s);
    assert_int_equal(weft_stream_item_size(s), item_size);
    counting_waker c;
    cw_init(&c);
    memset(out, 0, sizeof *out);
    uint64_t rng = (uint64_t)(mode < 0 ? -mode : 0) * 0x9E3779B97F4A7C15ull + 1;
    for (int guard = 0;; guard++) {
        assert_true(guard < 10000);
        unsigned char buf[48 * CS_MAX_ITEM_BS];
        size_t max = (size_t)(mode > 0 ? mode : 0), n = 0;
        if (mode < 0) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            max = rng % 10; /* 0: a single poll */
        }
        weft_next r;
        if (max == 0) {
            r = pn(s, &c, buf);
            n = r == WEFT_NEXT_ITEM;
        } else {
            r = pmany(s, &c, buf, max, &n);
            assert_true(n <= max);
            assert_true((r == WEFT_NEXT_ITEM) == (n > 0));
        }
        if (r == WEFT_NEXT_DONE)
            break;
        if (r == WEFT_NEXT_PENDING)
            out->pendings++;
        assert_true(out->n + n <= BS_MAX_OUT);
        memcpy(out->items + out->n * item_size, buf, n * item_size);
        out->n += n;
    }
    assert_int_equal(sc.after_done, 0);
    out->at = sc.at; /* how far the upstream was read: a cut-off reads no further */
    weft_stream_drop(s);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* Item by item, in batches of 1, 2, 3, 5, 16 and 48, and mixed over 20
 * seeds, over an upstream with and without its own batches: the same
 * items in the same order, the upstream read to the same point, and
 * `want_n` items (each mode's PENDINGs are the upstream's, passed on). */
static inline void batch_same_items(comb_make_up_fn *make, const int64_t *script, size_t len,
                                    size_t item_size, size_t want_n)
{
    static bs_run ref, got;
    assert_true(item_size <= CS_MAX_ITEM_BS);
    bs_drain(&ref, make, &scripted_ops, script, len, item_size, 0);
    assert_int_equal(ref.n, want_n);
    static const int modes[] = { 0, 1, 2, 3, 5, 16, 48 };
    for (int o = 0; o < 2; o++) {
        const weft_stream_ops *ops = o ? &batched_ops : &scripted_ops;
        for (int m = -20; m < (int)(sizeof modes / sizeof *modes); m++) {
            bs_drain(&got, make, ops, script, len, item_size, m < 0 ? m : modes[m]);
            assert_int_equal(got.n, ref.n);
            assert_memory_equal(got.items, ref.items, ref.n * item_size);
            assert_int_equal(got.at, ref.at);
        }
    }
}

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
    size_t batch_max; /* 0: sweep a weft_stream_next, else a next_many */
    next_many nm;
    size_t nm_out;
    uint64_t nm_buf[8 * CS_MAX_ITEM / 8];
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
    if (cs->batch_max) {
        cs->nm_out = SIZE_MAX;
        next_many_init(&cs->nm, cs->s, cs->nm_buf, cs->batch_max);
        *fut = &cs->nm.base;
        *out = &cs->nm_out;
        return err;
    }
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
    if (cs->batch_max) {
        /* What the dropped batch pull returned, if it completed; a pull
         * dropped pending may have used its array as scratch. */
        if (run->completed) {
            for (size_t i = 0; i < cs->nm_out; i++)
                cs_take(cs, cs->nm_buf + i * (cs->item_size / 8));
            done = cs->nm_out == 0;
        }
    } else if (run->completed) {
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
    for (unsigned turn = 0; !done; turn++) {
        uint64_t item[8 * CS_MAX_ITEM / 8];
        size_t n = 1;
        /* In batch mode, fresh pulls alternate single polls and batches. */
        weft_next r = cs->batch_max && turn % 2 ? pmany(cs->s, &c, item, cs->batch_max, &n)
                                                : pn(cs->s, &c, item);
        if (r == WEFT_NEXT_ITEM)
            for (size_t i = 0; i < n; i++)
                cs_take(cs, item + i * (cs->item_size / 8));
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
static inline void comb_sweep_run_max(const char *name, comb_make_fn *make,
                                      const uint64_t *want, size_t want_n, size_t item_size,
                                      size_t batch_max)
{
    static comb_sweep cs;
    memset(&cs, 0, sizeof cs);
    assert_true(batch_max <= 8);
    cs.batch_max = batch_max;
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

static inline void comb_sweep_run(const char *name, comb_make_fn *make, const uint64_t *want,
                                  size_t want_n, size_t item_size)
{
    comb_sweep_run_max(name, make, want, want_n, item_size, 0);
}

/* COMB_SWEEP_MANY(name, make, words per item, max, want...): the sweep
 * over a next_many of up to `max` (<= 8) items instead of a next; fresh
 * pulls after the drop mix single polls and batches. */
#define COMB_SWEEP_MANY(name, make, words, max, ...)                           \
    do {                                                                       \
        static const uint64_t want_[] = { __VA_ARGS__ };                       \
        comb_sweep_run_max((name), (make), want_,                              \
                           sizeof want_ / sizeof *want_ / (words), (words) * 8, \
                           (max));                                             \
    } while (0)

/* COMB_SWEEP(name, make, words per item, want...). */
#define COMB_SWEEP(name, make, words, ...)                                     \
    do {                                                                       \
        static const uint64_t want_[] = { __VA_ARGS__ };                       \
        comb_sweep_run((name), (make), want_,                                  \
                       sizeof want_ / sizeof *want_ / (words), (words) * 8);   \
    } while (0)

#endif
