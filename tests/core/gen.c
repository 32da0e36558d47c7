/* Tests for generators (WEFT_GEN_FN, weft/co.h): items in order then DONE
 * for good; awaits inside a generator (a channel receive, a sleep, a
 * yield) on the two-worker runtime and on sims with chaos over many seeds;
 * a pointer into the generator's own buffer kept across yields and awaits;
 * drops at every point (suspended in an await: the child dropped once;
 * between yields; a user-written drop) with nothing leaked; the misuses
 * debug builds report; weft_stream_next and weft_stream_poll_next_many
 * over a generator; and the cancel sweep of weft_stream_next over a
 * generator that awaits between yields. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "support/counting_waker.h"
#include "support/countdown.h"
#include "support/never.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "sync/misc_support.h"

static weft_next gnext(weft_stream *s, counting_waker *c, void *item)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_stream_poll_next(s, &cx, item);
}

static weft_next gmany(weft_stream *s, counting_waker *c, void *items, size_t max, size_t *n)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_stream_poll_next_many(s, &cx, items, max, n);
}

/* ---- counter: yields 0, 10, 20, ... (n items), no awaits ------------------ */

typedef struct counter {
    weft_stream base;
    weft_co co;
    int n, i;
} counter;

WEFT_GEN_FN(counter, int)
{
    WEFT_GEN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++)
        WEFT_GEN_YIELD(self->i * 10);
    WEFT_GEN_END;
}

static void gen_yields_in_order_then_done(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    counter g = { WEFT_GEN_INIT(counter, WEFT_F_SEND), .n = 4 };
    assert_string_equal(g.base.ops->name, "counter");
    assert_int_equal(weft_stream_item_size(&g.base), sizeof(int));
    assert_int_equal(g.base.flags & WEFT_F_USER_MASK, WEFT_F_SEND);
    for (int i = 0; i < 4; i++) {
        int v = -1;
        assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_ITEM);
        assert_int_equal(v, i * 10);
    }
    int v = -1;
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_DONE);
    assert_int_equal(v, -1);
    /* Stays DONE when its poll_next is called again (release builds of
     * weft_stream_poll_next do that; debug builds refuse first). */
    weft_waker w = cw_waker(&c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    assert_int_equal(g.base.ops->poll_next(&g.base, &cx, &v), WEFT_NEXT_DONE);
    assert_int_equal(g.base.ops->poll_next(&g.base, &cx, &v), WEFT_NEXT_DONE);
    assert_int_equal(v, -1);
    assert_int_equal(cw_woken(&c), 0);
    weft_stream_drop(&g.base);
    assert_int_equal(cw_outstanding(&c), 0);
}

static void gen_poll_after_done_is_misuse(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    counter g = { WEFT_GEN_INIT(counter, 0), .n = 1 };
    int v = -1;
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_DONE);
    int before = misuse_count();
#ifdef NDEBUG
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_DONE);
#else
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_PENDING);
#endif
    assert_misuse_since(before, 1, "counter");
    weft_stream_drop(&g.base);
}

/* An await inside a switch of the user's: the resume point is lost, which
 * the generator reports by name and refuses. */
typedef struct switched {
    weft_stream base;
    weft_co co;
    int mode;
} switched;

WEFT_GEN_FN(switched, int)
{
    WEFT_GEN_BEGIN;
    switch (self->mode) {
    case 0:
        WEFT_GEN_YIELD(7);
        break;
    default:
        break;
    }
    WEFT_GEN_END;
}

static void gen_yield_in_own_switch_is_refused(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    switched g = { WEFT_GEN_INIT(switched, 0) };
    int v = -1;
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(v, 7);
    int before = misuse_count();
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_PENDING);
    assert_misuse_since(before, 1, "switched");
    weft_stream_drop(&g.base);
}

/* ---- awaiting: yields 1, awaits a child, yields its output ---------------- */

typedef struct awaiter {
    weft_stream base;
    weft_co co;
    int use_never;
    never nv;
    countdown cd;
    int got;
} awaiter;

WEFT_GEN_FN(awaiter, int)
{
    WEFT_GEN_BEGIN;
    WEFT_GEN_YIELD(1);
    if (self->use_never)
        WEFT_GEN_AWAIT(&self->nv, &self->got);
    else
        WEFT_GEN_AWAIT(&self->cd, &self->got);
    WEFT_GEN_YIELD(self->got);
    WEFT_GEN_END;
}

static void gen_drop_in_await_drops_child_once(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    countdown_counts n;
    awaiter g = { WEFT_GEN_INIT(awaiter, WEFT_F_SEND), .use_never = 1 };
    never_start(&g.nv, &n, WEFT_F_SEND);
    int v = -1;
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(v, 1);
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(n.polls, 2);
    assert_int_equal(n.drops, 0);
    assert_ptr_equal(g.co.awaiting, &g.nv.base);
    weft_stream_drop(&g.base);
    assert_int_equal(n.drops, 1);
    assert_null(g.co.awaiting);
    assert_int_equal(n.polls, 2);
}

static void gen_awaited_child_dropped_once_after_ready(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    countdown_counts n;
    countdown_counts_init(&n);
    awaiter g = { WEFT_GEN_INIT(awaiter, WEFT_F_SEND) };
    g.cd = (countdown){ { &countdown_ops, WEFT_F_SEND, 0 }, 2, 42, &n };
    int v = -1;
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(v, 42);
    assert_int_equal(n.drops, 1);
    assert_null(g.co.awaiting);
    /* Dropped between the last yield and DONE: the child is not dropped
     * again. */
    weft_stream_drop(&g.base);
    assert_int_equal(n.drops, 1);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* A user-written drop that forgets weft_co_drop: reported by name. */
typedef struct forgetful {
    weft_stream base;
    weft_co co;
    never nv;
} forgetful;

WEFT_GEN_FN_WITH_DROP(forgetful, int)
{
    WEFT_GEN_BEGIN;
    WEFT_GEN_AWAIT(&self->nv, NULL);
    WEFT_GEN_END;
}

static void forgetful_drop(weft_stream *s)
{
    (void)s; /* forgets weft_co_drop on purpose */
}

static void gen_user_drop_forgetting_child_is_reported(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    countdown_counts n;
    forgetful g = { WEFT_GEN_INIT(forgetful, 0) };
    never_start(&g.nv, &n, 0);
    assert_int_equal(gnext(&g.base, &c, NULL), WEFT_NEXT_PENDING);
    int before = misuse_count();
    weft_stream_drop(&g.base);
    assert_misuse_since(before, 1, "forgetful");
    assert_int_equal(n.drops, 0);
    never_drop(&g.nv.base);
}

/* ---- fields: parses "1,2,3" lines received from a channel ---------------- */

/* THE property: `p` points into the generator's own `line` buffer and is
 * kept across a yield and an await (a weft_yield, and the next receive
 * happens only once the line is used up). The generator owns the
 * receiver, so it has a drop of its own. */
typedef struct text_line {
    char text[40]; /* three ints, two commas */
} text_line;

typedef struct fields {
    weft_stream base;
    weft_co co;
    weft_chan_rx rx;
    weft_chan_recv recv;
    weft_yield y;
    text_line line;
    char *p;
    int rc;
    long value;
    unsigned bad; /* `p` found outside `line` */
} fields;

WEFT_GEN_FN_WITH_DROP(fields, long)
{
    WEFT_GEN_BEGIN;
    for (;;) {
        weft_chan_recv_init(&self->recv, &self->rx, &self->line);
        WEFT_GEN_AWAIT(&self->recv, &self->rc);
        if (self->rc != 0)
            break;
        for (self->p = self->line.text; *self->p;) {
            char *end;
            self->value = strtol(self->p, &end, 10);
            self->p = *end == ',' ? end + 1 : end;
            WEFT_GEN_YIELD(self->value);
            weft_yield_init(&self->y);
            WEFT_GEN_AWAIT(&self->y, NULL);
            if (self->p < self->line.text || self->p > self->line.text + sizeof self->line.text)
                self->bad++;
        }
    }
    WEFT_GEN_END;
}

static void fields_drop(weft_stream *s)
{
    fields *self = (fields *)s;
    weft_co_drop(&self->co); /* a pending receive borrows rx: first */
    weft_chan_rx_drop(&self->rx);
}

/* Lines i of the scenario: "3i+1,3i+2,3i+3" (fields 1, 2, 3, ... in
 * order), LINES of them. */
#define LINES 20

static text_line line_of(int i)
{
    text_line l;
    memset(&l, 0, sizeof l);
    snprintf(l.text, sizeof l.text, "%d,%d,%d", 3 * i + 1, 3 * i + 2, 3 * i + 3);
    return l;
}

/* Sends the LINES lines, then drops the sender (closing the channel). */
typedef struct producer {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send send;
    text_line l;
    int i, rc;
} producer;

WEFT_ASYNC_FN_VOID_WITH_DROP(producer)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < LINES; self->i++) {
        self->l = line_of(self->i);
        weft_chan_send_init(&self->send, &self->tx, &self->l);
        WEFT_FN_AWAIT(&self->send, &self->rc);
        if (self->rc != 0)
            break;
    }
    WEFT_FN_END;
}

static void producer_drop(weft_future *f)
{
    producer *self = (producer *)f;
    weft_co_drop(&self->co);
    weft_chan_tx_drop(&self->tx);
}

/* Drains the stream it borrows with weft_stream_next; output: the number
 * of items, each of which must be 1, 2, 3, ... in order (else -1). */
typedef struct drain_longs {
    weft_future base;
    weft_co co;
    weft_stream *s;
    weft_stream_next nx;
    long item;
    int more, n, wrong;
} drain_longs;

WEFT_ASYNC_FN(drain_longs, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_stream_next_init(&self->nx, self->s, &self->item);
        WEFT_FN_AWAIT(&self->nx, &self->more);
        if (!self->more)
            break;
        if (self->item != self->n + 1)
            self->wrong++;
        if (++self->n > 3 * LINES)
            break; /* a generator repeating itself */
    }
    WEFT_FN_RETURN(self->wrong ? -1 : self->n);
    WEFT_FN_END;
}

/* Runs producer and drain_longs over a fields generator on `rt`. */
static void run_fields(weft_rt *rt)
{
    weft_chan_tx tx;
    fields *g = malloc(sizeof *g);
    assert_non_null(g);
    *g = (fields){ WEFT_GEN_INIT(fields, WEFT_F_SEND) };
    assert_int_equal(weft_mpsc_new(&tx, &g->rx, sizeof(text_line), 2), 0);
    producer p = { WEFT_FN_INIT(producer, WEFT_F_SEND), .tx = tx };
    drain_longs d = { WEFT_FN_INIT(drain_longs, WEFT_F_SEND), .s = &g->base };
    weft_join jp, jd;
    assert_int_equal(weft_spawn(rt, &p.base, sizeof p, &jp), 0);
    assert_int_equal(weft_spawn(rt, &d.base, sizeof d, &jd), 0);
    int n = join_int(rt, &jd);
    unsigned bad = g->bad;
    /* Dropped before the producer is joined: a producer still sending
     * (the stream stopped early) sees the channel closed. */
    weft_stream_drop(&g->base);
    free(g);
    assert_int_equal(join_blocking(rt, &jp, NULL, 0), 0);
    assert_int_equal(n, 3 * LINES);
    assert_int_equal(bad, 0);
}

static void gen_fields_from_channel_rt(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++)
        run_fields(g_rt);
}

static void gen_fields_from_channel_sim_chaos(void **state)
{
    (void)state;
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= CHAOS_SEEDS; seed++) {
        weft_rt *rt = chaos_sim(seed);
        run_fields(rt);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* Dropped between yields, with lines still in the channel and a sender
 * alive: the receiver goes with it, nothing leaks (the counting allocator
 * checks at teardown). */
static void gen_drop_between_yields(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_chan_tx tx;
    fields g = { WEFT_GEN_INIT(fields, WEFT_F_SEND) };
    assert_int_equal(weft_mpsc_new(&tx, &g.rx, sizeof(text_line), 4), 0);
    for (int i = 0; i < 3; i++) {
        text_line l = line_of(i);
        assert_int_equal(weft_chan_try_send(&tx, &l), 0);
    }
    long v = -1;
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(v, 1);
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_PENDING); /* the weft_yield */
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_ITEM);
    assert_int_equal(v, 2);
    weft_stream_drop(&g.base);
    assert_true(weft_chan_tx_is_closed(&tx));
    weft_chan_tx_drop(&tx);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* Dropped while suspended in the receive (the channel empty): the receive
 * is dropped before the receiver, whose waker registration goes too. */
static void gen_drop_in_receive(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_chan_tx tx;
    fields g = { WEFT_GEN_INIT(fields, WEFT_F_SEND) };
    assert_int_equal(weft_mpsc_new(&tx, &g.rx, sizeof(text_line), 4), 0);
    long v = -1;
    assert_int_equal(gnext(&g.base, &c, &v), WEFT_NEXT_PENDING);
    assert_ptr_equal(g.co.awaiting, &g.recv.base);
    weft_stream_drop(&g.base);
    weft_chan_tx_drop(&tx);
    assert_int_equal(cw_outstanding(&c), 0);
}

/* ---- spaced: yields 0..n-1, sleeping 1 ms before each -------------------- */

typedef struct spaced {
    weft_stream base;
    weft_co co;
    weft_sleep nap;
    int n, i;
} spaced;

WEFT_GEN_FN(spaced, int)
{
    WEFT_GEN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        weft_sleep_init(&self->nap, WEFT_MS(1));
        WEFT_GEN_AWAIT(&self->nap, NULL);
        WEFT_GEN_YIELD(self->i);
    }
    WEFT_GEN_END;
}

/* Owns a spaced generator of `want` items and sums it: output the sum, or
 * -1 when an item is out of order. It owns the generator, so its drop
 * drops that too (a sleep armed in it unlinks). */
typedef struct sum_spaced {
    weft_future base;
    weft_co co;
    spaced g;
    weft_stream_next nx;
    int want, item, more, n, sum;
} sum_spaced;

WEFT_ASYNC_FN_WITH_DROP(sum_spaced, int)
{
    WEFT_FN_BEGIN;
    self->g = (spaced){ WEFT_GEN_INIT(spaced, WEFT_F_SEND), .n = self->want };
    for (self->n = 0;; self->n++) {
        weft_stream_next_init(&self->nx, &self->g.base, &self->item);
        WEFT_FN_AWAIT(&self->nx, &self->more);
        if (!self->more)
            break;
        if (self->item != self->n)
            WEFT_FN_RETURN(-1);
        self->sum += self->item;
    }
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

static void sum_spaced_drop(weft_future *f)
{
    sum_spaced *self = (sum_spaced *)f;
    weft_co_drop(&self->co); /* the next borrows g: first */
    if (self->g.base.ops)   /* set in the first poll */
        weft_stream_drop(&self->g.base);
}

static int run_sum_spaced(weft_rt *rt, int n)
{
    sum_spaced s = { WEFT_FN_INIT(sum_spaced, WEFT_F_SEND), .want = n };
    weft_join j;
    assert_int_equal(weft_spawn(rt, &s.base, sizeof s, &j), 0);
    return join_int(rt, &j);
}

static void gen_await_sleep_rt(void **state)
{
    (void)state;
    weft_join j[4];
    for (int t = 0; t < 4; t++) {
        sum_spaced s = { WEFT_FN_INIT(sum_spaced, WEFT_F_SEND), .want = 10 + t };
        assert_int_equal(weft_spawn(g_rt, &s.base, sizeof s, &j[t]), 0);
    }
    for (int t = 0; t < 4; t++)
        assert_int_equal(join_int(g_rt, &j[t]), (10 + t) * (9 + t) / 2);
}

static void gen_await_sleep_sim_chaos(void **state)
{
    (void)state;
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= CHAOS_SEEDS; seed++) {
        weft_rt *rt = chaos_sim(seed);
        assert_int_equal(run_sum_spaced(rt, 8), 28);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* ---- poll_next_many over a generator -------------------------------------- */

typedef struct burst {
    weft_stream base;
    weft_co co;
    countdown cd;
    int got;
} burst;

WEFT_GEN_FN(burst, int)
{
    WEFT_GEN_BEGIN;
    WEFT_GEN_YIELD(1);
    WEFT_GEN_YIELD(2);
    WEFT_GEN_YIELD(3);
    self->cd = (countdown){ { &countdown_ops, 0, 0 }, 1, 4, NULL };
    WEFT_GEN_AWAIT(&self->cd, &self->got);
    WEFT_GEN_YIELD(self->got);
    WEFT_GEN_YIELD(5);
    WEFT_GEN_END;
}

static void gen_poll_next_many(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    burst g = { WEFT_GEN_INIT(burst, 0) };
    int items[8] = { 0 };
    size_t n = 99;
    assert_int_equal(gmany(&g.base, &c, items, 2, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(items[0], 1);
    assert_int_equal(items[1], 2);
    /* 3, then the await is PENDING: the batch stops at one item. */
    assert_int_equal(gmany(&g.base, &c, items, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(items[0], 3);
    assert_int_equal(cw_woken(&c), 1);
    /* 4, 5, then DONE held for the next call. */
    assert_int_equal(gmany(&g.base, &c, items, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(items[0], 4);
    assert_int_equal(items[1], 5);
    assert_int_equal(gmany(&g.base, &c, items, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(n, 0);
    weft_stream_drop(&g.base);
}

/* ---- the cancel sweep of weft_stream_next over a spaced generator ------- */

#define SWEEP_N 4

typedef struct next_sweep {
    spaced g;
    weft_stream_next nx;
    int item;
    int more;
    int rest[SWEEP_N + 1];
    int rest_n;
} next_sweep;

static int next_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    next_sweep *s = ctx;
    memset(s, 0, sizeof *s);
    s->item = -1;
    s->more = -1;
    s->g = (spaced){ WEFT_GEN_INIT(spaced, WEFT_F_SEND), .n = SWEEP_N };
    weft_stream_next_init(&s->nx, &s->g.base, &s->item);
    *fut = &s->nx.base;
    *out = &s->more;
    return 0;
}

/* Collects the rest of the stream, through fresh nexts, into s->rest. */
typedef struct collect {
    weft_future base;
    weft_co co;
    next_sweep *s;
    weft_stream_next nx;
    int item, more;
} collect;

WEFT_ASYNC_FN_VOID(collect)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_stream_next_init(&self->nx, &self->s->g.base, &self->item);
        WEFT_FN_AWAIT(&self->nx, &self->more);
        if (!self->more || self->s->rest_n > SWEEP_N)
            break;
        self->s->rest[self->s->rest_n++] = self->item;
    }
    WEFT_FN_END;
}

static const char *next_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    next_sweep *s = ctx;
    if (run->completed && (s->more != 1 || s->item != 0))
        return sweep_say("k=%u: completed with more %d item %d", run->k, s->more, s->item);
    if (!run->completed && s->item != -1)
        return sweep_say("k=%u: an item written by a dropped next: %d", run->k, s->item);
    collect cl = { WEFT_FN_INIT(collect, WEFT_F_SEND), .s = s };
    if (weft_block_on(rt, &cl.base, NULL, 0) != 0)
        return "block_on of the rest failed";
    int first = run->completed ? 1 : 0;
    if (s->rest_n != SWEEP_N - first)
        return sweep_say("k=%u: %d items after the drop, want %d", run->k, s->rest_n,
                         SWEEP_N - first);
    for (int i = 0; i < s->rest_n; i++)
        if (s->rest[i] != first + i)
            return sweep_say("k=%u: item %d after the drop is %d, want %d", run->k, i,
                             s->rest[i], first + i);
    return sweep_leftovers(rt);
}

static void next_teardown(void *ctx)
{
    next_sweep *s = ctx;
    weft_stream_drop(&s->g.base);
}

static void gen_cancel_sweep_stream_next(void **state)
{
    (void)state;
    static next_sweep s;
    weft_sweep_case c = { next_build, next_check, next_teardown, &s };
    uint32_t n = sweep_both(&c);
    assert_true(n >= 2); /* the sleep made it wait at least once */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(gen_yields_in_order_then_done, misuse_capture_setup,
                                        misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(gen_poll_after_done_is_misuse, misuse_capture_setup,
                                        misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(gen_yield_in_own_switch_is_refused,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(gen_drop_in_await_drops_child_once,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(gen_awaited_child_dropped_once_after_ready,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(gen_user_drop_forgetting_child_is_reported,
                                        misuse_capture_setup, misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(gen_poll_next_many, misuse_capture_setup,
                                        misuse_capture_teardown),
        cmocka_unit_test_setup_teardown(gen_drop_between_yields, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(gen_drop_in_receive, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(gen_fields_from_channel_rt, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(gen_fields_from_channel_sim_chaos, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(gen_await_sleep_rt, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(gen_await_sleep_sim_chaos, rt_setup, rt_teardown),
        cmocka_unit_test_setup_teardown(gen_cancel_sweep_stream_next, rt_setup, rt_teardown),
    };
    /* GEN_TESTS=pattern runs only the tests it matches. */
    const char *only = getenv("GEN_TESTS");
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
