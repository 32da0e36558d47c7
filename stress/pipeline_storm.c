/* stress_pipeline_storm: random async-iterator pipelines, run on the
 * multi-thread runtime and checked against a plain sequential model, with
 * dropped nexts, dropped pipelines and aborted consumers at random points.
 *
 *   stress_pipeline_storm [--threads N] [--iters N] [--seed S] [--seconds T]
 *
 * --threads  workers per runtime (default 2)
 * --iters    stop after this many rounds (default 0: only the time box)
 * --seed     the run's seed (default: from the clock); printed first
 * --seconds  time box (default 3)
 *
 * Each round builds one pipeline inside one consumer task (the task's
 * struct holds every stage: no allocation per item) from a random source:
 * a range, an array, an mpsc channel receiver (bounded or unbounded) fed
 * by producer tasks and foreign threads sending items with unique ids
 * (producer << 32 | seq), or a generator (WEFT_GEN_FN) that awaits the
 * receive of such a channel and yields. A recording stream right after
 * the source logs every item as it leaves the source, and whether the
 * source said DONE. Then 1-8 combinators drawn from map, filter,
 * filter_map, inspect, take, skip, take_while, skip_while, enumerate,
 * fuse, chain, zip, then, chunks, flatten, buffered / buffer_unordered
 * and spawn_map (ordered and unordered); every item is a uint64_t (zip,
 * enumerate and chunks are each followed by a map that folds their item
 * back into one word; flatten is preceded by a map that turns each item
 * into an inner range stream kept in a per-round pool). Stages that
 * depend on order (take, skip, the whiles, enumerate, zip, chunks) are
 * never drawn after an unordered one. The pipeline is consumed by a
 * weft_stream_next loop (a fresh, poisoned item buffer per next), a
 * WEFT_FOR_AWAIT loop, fold, for_each, collect (sometimes 1-16 slots at a
 * time: -ENOSPC, then a fresh collect), forward into a channel sink, or
 * forward into a tee of two channels (closing the sink or not; the sink
 * channels unbounded, or bounded and drained by a foreign thread each as
 * the pipeline runs). A quarter of the rounds run on a sim runtime with
 * spurious wakes, leaf PENDINGs and late timers (no foreign threads).
 *
 * Every consumer future is awaited plainly, through a wrapper that gives
 * up after 1-3 pending polls (the consumer future is then dropped pending
 * and a fresh one continues), or under an owning weft_timeout of 0-100 us
 * (which drops it pending). Some rounds stop early: the next loop after a
 * random number of items, the other consumers after a give-up or a
 * timeout; the task then returns and its drop drops the whole pipeline.
 * In a third of the rounds a foreign thread (stress_abort_at_random), and
 * sometimes a producer task, aborts the consumer at a random moment; the
 * drop is the same. The drop closes a channel source and drains what is
 * left in it with try_recv ("drained").
 *
 * Checked: the recorded source items are the source's (a range's or an
 * array's exact prefix; for a channel, each id sent by a producer appears
 * exactly once in recorded + drained, none that was not sent, and each
 * producer's ids in order: lost = 0, duplicated = 0); the model, the
 * chain applied in plain C to the recorded items (knowing whether the
 * source ended), gives the exact output: a consumer that saw the end must
 * have produced exactly it (as a sequence when every stage keeps order,
 * as a multiset otherwise) and the model must agree that the pipeline
 * ended; a stopped or aborted one an exact prefix of it (a sub-multiset
 * when unordered); the two sides of a tee got the same sequence; every
 * per-item future (then, buffered, spawn_map) and every generator is
 * dropped (live counters back to 0 once the runtime is shut down); every
 * task dropped once, joins agree with aborts; misuse reports are
 * failures; no hang.
 *
 * If a combinator is found broken, it is kept out of the random set by
 * clearing its entry in `enabled` below (with a comment saying why), so
 * the storm keeps checking the rest. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress_common.h"
#include "weft/channels.h"
#include "weft/co.h"
#include "weft/iter.h"
#include "weft/testing.h"
#include "weft/time.h"

#define MASK ((1ull << 48) - 1)
#define MAX_STAGES 8
#define MAX_ITEMS 4096      /* model sequences, the output log */
#define MAX_SRC 400         /* range / array items */
#define MAX_PROD 5          /* producers: tasks and foreign threads */
#define MAX_QUOTA 100       /* items per producer */
#define MAX_CONC 4          /* buffered / spawn_map width */
#define MAX_CHUNK 5
#define MAX_AUX 16          /* chain / zip second stream */
#define POOL 1024           /* flatten's inner streams */

/* ---- stages --------------------------------------------------------------- */

enum {
    ST_MAP, ST_FILTER, ST_FILTER_MAP, ST_INSPECT, ST_TAKE, ST_SKIP, ST_TAKE_WHILE,
    ST_SKIP_WHILE, ST_ENUMERATE, ST_FUSE, ST_CHAIN, ST_ZIP, ST_THEN, ST_CHUNKS,
    ST_FLATTEN, ST_BUFFERED, ST_SPAWN_MAP, NKINDS
};

static const char *const kind_names[NKINDS] = {
    "map", "filter", "filter_map", "inspect", "take", "skip", "take_while", "skip_while",
    "enumerate", "fuse", "chain", "zip", "then", "chunks", "flatten", "buffered", "spawn_map",
};

/* The combinators drawn. Clear an entry (with a comment saying why) to
 * keep a combinator found broken out of the storm. */
static const bool enabled[NKINDS] = {
    [ST_MAP] = true, [ST_FILTER] = true, [ST_FILTER_MAP] = true, [ST_INSPECT] = true,
    [ST_TAKE] = true, [ST_SKIP] = true, [ST_TAKE_WHILE] = true, [ST_SKIP_WHILE] = true,
    [ST_ENUMERATE] = true, [ST_FUSE] = true, [ST_CHAIN] = true, [ST_ZIP] = true,
    [ST_THEN] = true, [ST_CHUNKS] = true, [ST_FLATTEN] = true, [ST_BUFFERED] = true,
    [ST_SPAWN_MAP] = true,
};

/* Stages whose output depends on the order of their input. */
static bool order_sensitive(unsigned k)
{
    return k == ST_TAKE || k == ST_SKIP || k == ST_TAKE_WHILE || k == ST_SKIP_WHILE ||
           k == ST_ENUMERATE || k == ST_ZIP || k == ST_CHUNKS;
}

/* The per-item future of then, buffered and spawn_map: PENDING `waits`
 * times (waking itself), then f_then(p, v). Counted live from its making
 * to its drop. */
typedef struct work {
    weft_future base;
    uint64_t v, p;
    unsigned waits;
} work;

#define SLOT_SIZE WEFT_ITER_BUFFERED_SLOT_SIZE(sizeof(work), sizeof(uint64_t))

typedef struct stage {
    unsigned kind;
    uint64_t p;     /* the functions' parameter */
    uint64_t n;     /* take/skip count, chunk size, width, aux length */
    bool ordered;   /* buffered / spawn_map */
    bool swap;      /* zip: the second stream first (its item then waits in
                       the zip while the pipeline is pending) */
    weft_stream *out;
    union {
        weft_iter_map map;
        weft_iter_filter filter;
        weft_iter_filter_map fmap;
        weft_iter_inspect insp;
        weft_iter_take take;
        weft_iter_skip skip;
        weft_iter_take_while tw;
        weft_iter_skip_while sw;
        weft_iter_enumerate en;
        weft_iter_fuse fuse;
        weft_iter_chain chain;
        weft_iter_zip zip;
        weft_iter_then then;
        weft_iter_chunks chunks;
        weft_iter_flatten flat;
        weft_iter_buffered buf;
        weft_iter_spawn_map sm;
    } u;
    bool has_pre, has_post, has_aux;
    weft_iter_map pre;   /* flatten: item -> inner stream */
    weft_iter_map post;  /* enumerate, zip, chunks: back to one word */
    weft_iter_range aux; /* chain, zip: the second stream */
    uint64_t inspected;
    uint64_t chunk_buf[MAX_CHUNK];
    _Alignas(max_align_t) unsigned char slots[MAX_CONC * SLOT_SIZE];
    weft_iter_spawn_slot sslots[MAX_CONC];
} stage;

/* ---- the functions, shared by the pipeline and the model ---------------------- */

static uint64_t f_map(uint64_t p, uint64_t v)
{
    return (v * 0x9E3779B97F4A7C15ull + p) & MASK;
}
static bool f_filter(uint64_t p, uint64_t v)
{
    return mix64(v ^ p) % 4 != 0;
}
static bool f_fmap_keep(uint64_t p, uint64_t v)
{
    return mix64(v ^ p ^ 0x55) % 3 != 0;
}
static uint64_t f_fmap(uint64_t p, uint64_t v)
{
    return (v + p) & MASK;
}
static bool f_take_while(uint64_t p, uint64_t v)
{
    return mix64(v ^ p) % 16 != 0;
}
static bool f_skip_while(uint64_t p, uint64_t v)
{
    return mix64(v ^ p) % 3 != 0;
}
static uint64_t f_enum(uint64_t p, uint64_t i, uint64_t v)
{
    return (v * 31 + i * 7 + p) & MASK;
}
static uint64_t f_zip(uint64_t p, uint64_t a, uint64_t b)
{
    return (a ^ (b * 0x12345677ull) ^ p) & MASK;
}
static uint64_t f_then(uint64_t p, uint64_t v)
{
    return (v * 3 + p) & MASK;
}
static uint64_t f_chunk(uint64_t p, const uint64_t *v, uint64_t n)
{
    uint64_t h = p + n;
    for (uint64_t i = 0; i < n; i++)
        h = h * 1000003 + v[i];
    return h & MASK;
}
static uint64_t flat_count(uint64_t p, uint64_t v)
{
    return mix64(v ^ p ^ 0xf1) % 4;
}
static uint64_t flat_lo(uint64_t v)
{
    return (v & (MASK >> 2)) << 2;
}
static uint64_t aux_lo(uint64_t p)
{
    return (1ull << 47) | ((p & 0xffff) << 20);
}

/* ---- round state ------------------------------------------------------------- */

enum { SRC_RANGE, SRC_ARRAY, SRC_CHAN, SRC_GEN, NSRC };
static const char *const src_names[NSRC] = { "range", "array", "channel", "generator" };
enum { C_NEXT, C_FOLD, C_EACH, C_COLLECT, C_FORWARD, C_TEE, C_FOR_AWAIT, NCONS };
static const char *const cons_names[NCONS] = { "next", "fold", "for_each", "collect",
                                               "forward", "tee", "for_await" };

typedef struct round_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned dropped; /* tasks dropped (lock) */

    uint64_t seed;
    weft_rt *rt;
    bool sim; /* a sim runtime with chaos, driven by main: no foreign threads */
    unsigned src, cons, nst;
    stage cfg[MAX_STAGES]; /* kinds and parameters, copied into the task */
    bool unordered;
    uint64_t src_n, src_lo;
    uint64_t src_arr[MAX_SRC];

    /* channel source */
    weft_chan_rx rx;
    weft_chan_tx tx[MAX_PROD];
    unsigned nprod;
    bool prod_foreign[MAX_PROD];
    uint64_t quota[MAX_PROD];
    uint8_t sent[MAX_PROD][MAX_QUOTA];
    weft_join pjoins[MAX_PROD];
    unsigned nptasks;

    /* forward / tee: the sink channels, bounded ones drained by a foreign
     * thread each as the pipeline runs */
    weft_chan_rx orx[2];
    bool sink_bounded;

    /* what the pipeline did (the consumer task, then main after the joins) */
    uint64_t rec[MAX_ITEMS];
    size_t nrec;
    bool src_done;
    uint64_t out[MAX_ITEMS];
    size_t nout;
    uint64_t drained[MAX_PROD * MAX_QUOTA];
    size_t ndrained;
    bool saw_done, stopped, cons_finished;
    bool ended_by_hint; /* collect: full buffer, size_hint 0 left */
    weft_iter_range pool[POOL];
    size_t npool;

    /* the consumer as aborters see it */
    weft_join cjoin[1];
    _Atomic uint8_t caborted[1];
    _Atomic unsigned published;
    _Atomic bool over;
    _Atomic uint8_t cdrops;

    _Atomic long live_work, live_gen;

    stress_counter lost, duplicated, rounds_complete, rounds_stopped, rounds_unordered,
        rounds_chan, rounds_gen, src_items, out_items, sent_items, drained_items, early_drops,
        aborts_foreign, aborts_task, next_drops, timeouts, stages, concurrent_stages,
        bounded_sinks, sim_rounds, chaos_dealt, collect_full;
} round_state;

static round_state g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static const stress_abortable g_cons = { g.cjoin, g.caborted, &g.published, &g.over };

static void note_dropped(void)
{
    pthread_mutex_lock(&g.lock);
    g.dropped++;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

static void push_out(uint64_t v)
{
    STRESS_ENSURE(g.nout < MAX_ITEMS, "output overflows %d items", MAX_ITEMS);
    g.out[g.nout++] = v;
}

/* ---- the work future ----------------------------------------------------------- */

static weft_poll work_poll(weft_future *f, weft_cx *cx, void *out)
{
    work *w = (work *)f;
    if (w->waits > 0) {
        w->waits--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    uint64_t v = f_then(w->p, w->v);
    memcpy(out, &v, sizeof v);
    return WEFT_READY;
}

static void work_drop(weft_future *f)
{
    (void)f;
    atomic_fetch_sub_explicit(&g.live_work, 1, memory_order_acq_rel);
}

static const weft_future_ops work_ops = {
    .name = "pipeline_work", .out_size = sizeof(uint64_t), .poll = work_poll,
    .drop = work_drop,
};

static weft_future *make_work(void *ctx, const void *item, void *storage, size_t size)
{
    const stage *s = ctx;
    STRESS_ENSURE(size >= sizeof(work), "then storage %zu < %zu", size, sizeof(work));
    work *w = storage;
    weft_future_init(&w->base, &work_ops, WEFT_F_SEND);
    memcpy(&w->v, item, sizeof w->v);
    w->p = s->p;
    w->waits = (unsigned)(mix64(w->v ^ s->p ^ 0x77) % 4);
    atomic_fetch_add_explicit(&g.live_work, 1, memory_order_acq_rel);
    return &w->base;
}

/* ---- callbacks ----------------------------------------------------------------- */

static uint64_t rd(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void cb_map(void *ctx, const void *in, void *out)
{
    uint64_t v = f_map(((const stage *)ctx)->p, rd(in));
    memcpy(out, &v, sizeof v);
}
static bool cb_filter(void *ctx, const void *item)
{
    return f_filter(((const stage *)ctx)->p, rd(item));
}
static bool cb_fmap(void *ctx, const void *in, void *out)
{
    uint64_t p = ((const stage *)ctx)->p, v = rd(in);
    if (!f_fmap_keep(p, v))
        return false;
    v = f_fmap(p, v);
    memcpy(out, &v, sizeof v);
    return true;
}
static void cb_inspect(void *ctx, const void *item)
{
    (void)item;
    ((stage *)ctx)->inspected++;
}
static bool cb_take_while(void *ctx, const void *item)
{
    return f_take_while(((const stage *)ctx)->p, rd(item));
}
static bool cb_skip_while(void *ctx, const void *item)
{
    return f_skip_while(((const stage *)ctx)->p, rd(item));
}
static void cb_enum(void *ctx, const void *in, void *out)
{
    const unsigned char *b = in;
    uint64_t v = f_enum(((const stage *)ctx)->p, rd(b), rd(b + WEFT_ITER_ENUM_OFFSET));
    memcpy(out, &v, sizeof v);
}
static void cb_zip(void *ctx, const void *in, void *out)
{
    const stage *s = ctx;
    const unsigned char *b = in;
    uint64_t x = rd(b), y = rd(b + sizeof(uint64_t));
    uint64_t v = s->swap ? f_zip(s->p, y, x) : f_zip(s->p, x, y);
    memcpy(out, &v, sizeof v);
}
static void cb_chunk(void *ctx, const void *in, void *out)
{
    const unsigned char *b = in;
    uint64_t n = rd(b), items[MAX_CHUNK];
    STRESS_ENSURE(n >= 1 && n <= ((const stage *)ctx)->n, "chunk of %" PRIu64 " items", n);
    memcpy(items, b + WEFT_ITER_CHUNK_OFFSET, n * sizeof(uint64_t));
    uint64_t v = f_chunk(((const stage *)ctx)->p, items, n);
    memcpy(out, &v, sizeof v);
}
static void cb_flat_pre(void *ctx, const void *in, void *out)
{
    uint64_t v = rd(in), p = ((const stage *)ctx)->p;
    STRESS_ENSURE(g.npool < POOL, "flatten pool overflows");
    weft_iter_range *r = &g.pool[g.npool++];
    uint64_t lo = flat_lo(v);
    STRESS_ENSURE(weft_iter_range_init(r, lo, lo + flat_count(p, v), 1) == 0, "range init");
    weft_stream *s = &r->base;
    memcpy(out, &s, sizeof s);
}

/* ---- the recorder: logs every item leaving the source ---------------------------- */

typedef struct recorder {
    weft_stream base;
    weft_stream *up;
} recorder;

static void rec_push(const void *item)
{
    STRESS_ENSURE(g.nrec < MAX_ITEMS, "recorder overflows");
    g.rec[g.nrec++] = rd(item);
}

static weft_next rec_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    recorder *r = (recorder *)s;
    weft_next n = weft_stream_poll_next(r->up, cx, item);
    if (n == WEFT_NEXT_ITEM)
        rec_push(item);
    else if (n == WEFT_NEXT_DONE)
        g.src_done = true;
    return n;
}

static weft_next rec_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                    size_t *n)
{
    recorder *r = (recorder *)s;
    weft_next res = weft_stream_poll_next_many(r->up, cx, items, max, n);
    for (size_t i = 0; i < *n; i++)
        rec_push((unsigned char *)items + i * sizeof(uint64_t));
    if (res == WEFT_NEXT_DONE)
        g.src_done = true;
    return res;
}

static const weft_stream_ops rec_ops = {
    .name = "pipeline_recorder", .item_size = sizeof(uint64_t), .poll_next = rec_poll_next,
    .poll_next_many = rec_poll_next_many,
};

/* ---- the generator source: awaits the channel's receive and yields ------------- */

typedef struct gen {
    weft_stream base;
    weft_co co;
    weft_chan_recv rf;
    int r;
    uint64_t v;
} gen;

WEFT_GEN_FN_WITH_DROP(gen, uint64_t)
{
    WEFT_GEN_BEGIN;
    for (;;) {
        weft_chan_recv_init(&self->rf, &g.rx, &self->v);
        WEFT_GEN_AWAIT(&self->rf, &self->r);
        if (self->r != 0) {
            STRESS_ENSURE(self->r == -EPIPE, "generator: receive says %d", self->r);
            break;
        }
        WEFT_GEN_YIELD(self->v);
    }
    WEFT_GEN_END;
}

static void gen_drop(weft_stream *s)
{
    gen *self = (gen *)s;
    weft_co_drop(&self->co);
    atomic_fetch_sub_explicit(&g.live_gen, 1, memory_order_acq_rel);
}

/* ---- poll_limit: await a borrowed future, giving up after some pending polls ---- */

typedef struct poll_limit {
    weft_future base;
    weft_future *inner;
    unsigned left; /* UINT_MAX: never give up */
    int status;    /* 0: inner READY (output in out); -EAGAIN: gave up, inner pending */
    uint64_t out[2];
} poll_limit;

static weft_poll lim_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    poll_limit *l = (poll_limit *)f;
    if (weft_future_poll(l->inner, cx, l->out) == WEFT_READY) {
        l->status = 0;
        return WEFT_READY;
    }
    if (l->left != UINT_MAX && --l->left == 0) {
        l->status = -EAGAIN;
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static const weft_future_ops lim_ops = { .name = "pipeline_poll_limit", .out_size = 0,
                                         .poll = lim_poll };

/* ---- the consumer task: the pipeline, its consumer, its teardown ---------------- */

enum { M_PLAIN, M_LIMIT, M_TIMEOUT };

typedef struct consumer {
    weft_future base;
    weft_co co;
    uint64_t rng;
    unsigned nst;
    stage st[MAX_STAGES];
    recorder rec;
    weft_iter_range src_range;
    weft_iter_array src_arr;
    gen gsrc;
    bool gen_made, rx_owned, built;
    weft_stream *head;
    weft_chan_tx otx[2];
    unsigned notx;
    weft_iter_tee tee;
    bool tee_made;
    size_t stop_after; /* next and for_await loops: stop after this many
                          items (SIZE_MAX: never) */
    size_t col_cap;    /* collect: room per collect future (SIZE_MAX: all) */
    size_t col_room;   /* the room of the collect future in flight */
    bool close;        /* forward: close the sink at the end */
    bool may_stop;     /* other consumers: may stop after a give-up or timeout */
    unsigned mode;
    union {
        weft_stream_next nx;
        weft_iter_fold fold;
        weft_iter_collect col;
        weft_iter_forward fw;
    } c;
    weft_timeout t;
    poll_limit lim;
    bool inner_live; /* lim.inner still needs its drop */
    bool stopping;
    bool col_active;
    size_t coln;
    uint64_t item[2]; /* a fresh next gets the other one, poisoned */
    unsigned which;
    uint64_t acc;
} consumer;

static void fold_fn(void *ctx, void *acc, const void *item)
{
    (void)ctx;
    (*(uint64_t *)acc)++;
    push_out(rd(item));
}
static void each_fn(void *ctx, const void *item)
{
    (void)ctx;
    push_out(rd(item));
}

#define OK(call) STRESS_ENSURE((call) == 0, "%s failed", #call)

static void build(consumer *self)
{
    weft_stream *src;
    switch (g.src) {
    case SRC_RANGE:
        OK(weft_iter_range_init(&self->src_range, g.src_lo, g.src_lo + g.src_n, 1));
        src = &self->src_range.base;
        break;
    case SRC_ARRAY:
        OK(weft_iter_array_init(&self->src_arr, g.src_arr, sizeof(uint64_t), g.src_n));
        src = &self->src_arr.base;
        break;
    case SRC_CHAN:
        src = &g.rx.base;
        break;
    default:
        self->gsrc = (gen){ WEFT_GEN_INIT(gen, WEFT_F_SEND) };
        atomic_fetch_add_explicit(&g.live_gen, 1, memory_order_acq_rel);
        self->gen_made = true;
        src = &self->gsrc.base;
        break;
    }
    weft_stream_init(&self->rec.base, &rec_ops, src->flags);
    self->rec.up = src;
    weft_stream *up = &self->rec.base;
    for (unsigned i = 0; i < self->nst; i++) {
        stage *s = &self->st[i];
        switch (s->kind) {
        case ST_MAP:
            OK(weft_iter_map_init(&s->u.map, up, cb_map, s, sizeof(uint64_t)));
            break;
        case ST_FILTER:
            OK(weft_iter_filter_init(&s->u.filter, up, cb_filter, s));
            break;
        case ST_FILTER_MAP:
            OK(weft_iter_filter_map_init(&s->u.fmap, up, cb_fmap, s, sizeof(uint64_t)));
            break;
        case ST_INSPECT:
            OK(weft_iter_inspect_init(&s->u.insp, up, cb_inspect, s));
            break;
        case ST_TAKE:
            OK(weft_iter_take_init(&s->u.take, up, s->n));
            break;
        case ST_SKIP:
            OK(weft_iter_skip_init(&s->u.skip, up, s->n));
            break;
        case ST_TAKE_WHILE:
            OK(weft_iter_take_while_init(&s->u.tw, up, cb_take_while, s));
            break;
        case ST_SKIP_WHILE:
            OK(weft_iter_skip_while_init(&s->u.sw, up, cb_skip_while, s));
            break;
        case ST_ENUMERATE:
            OK(weft_iter_enumerate_init(&s->u.en, up));
            OK(weft_iter_map_init(&s->post, &s->u.en.base, cb_enum, s, sizeof(uint64_t)));
            s->has_post = true;
            break;
        case ST_FUSE:
            OK(weft_iter_fuse_init(&s->u.fuse, up));
            break;
        case ST_CHAIN:
            OK(weft_iter_range_init(&s->aux, aux_lo(s->p), aux_lo(s->p) + s->n, 1));
            s->has_aux = true;
            OK(weft_iter_chain_init(&s->u.chain, up, &s->aux.base));
            break;
        case ST_ZIP:
            OK(weft_iter_range_init(&s->aux, aux_lo(s->p), aux_lo(s->p) + s->n, 1));
            s->has_aux = true;
            if (s->swap)
                OK(weft_iter_zip_init(&s->u.zip, &s->aux.base, up));
            else
                OK(weft_iter_zip_init(&s->u.zip, up, &s->aux.base));
            OK(weft_iter_map_init(&s->post, &s->u.zip.base, cb_zip, s, sizeof(uint64_t)));
            s->has_post = true;
            break;
        case ST_THEN:
            OK(weft_iter_then_init(&s->u.then, up, make_work, s, sizeof(uint64_t),
                                   WEFT_F_SEND));
            break;
        case ST_CHUNKS:
            OK(weft_iter_chunks_init(&s->u.chunks, up, s->n, s->chunk_buf,
                                     sizeof s->chunk_buf));
            OK(weft_iter_map_init(&s->post, &s->u.chunks.base, cb_chunk, s, sizeof(uint64_t)));
            s->has_post = true;
            break;
        case ST_FLATTEN:
            OK(weft_iter_map_init(&s->pre, up, cb_flat_pre, s, sizeof(weft_stream *)));
            s->has_pre = true;
            OK(weft_iter_flatten_init(&s->u.flat, &s->pre.base, sizeof(uint64_t)));
            break;
        case ST_BUFFERED:
            OK(weft_iter_buffered_init(&s->u.buf, up, make_work, s, sizeof(work),
                                       sizeof(uint64_t), WEFT_F_SEND, s->n,
                                       s->ordered ? WEFT_ITER_ORDERED : WEFT_ITER_UNORDERED,
                                       s->slots, sizeof s->slots));
            break;
        default:
            OK(weft_iter_spawn_map_init(&s->u.sm, up, NULL, make_work, s, sizeof(work),
                                        sizeof(uint64_t), s->n,
                                        s->ordered ? WEFT_ITER_ORDERED : WEFT_ITER_UNORDERED,
                                        s->sslots, MAX_CONC));
            break;
        }
        s->out = s->has_post ? &s->post.base : &s->u.map.base;
        STRESS_ENSURE(weft_stream_item_size(s->out) == sizeof(uint64_t),
                      "stage %u (%s): item size %zu", i, kind_names[s->kind],
                      weft_stream_item_size(s->out));
        STRESS_ENSURE(s->out->flags & WEFT_F_SEND, "stage %u (%s) not Send", i,
                      kind_names[s->kind]);
        up = s->out;
    }
    self->head = up;
    if (g.cons == C_TEE) {
        OK(weft_iter_tee_init(&self->tee, &self->otx[0].base, &self->otx[1].base));
        self->tee_made = true;
    }
    self->built = true;
}

/* Makes a fresh consumer future over the pipeline. */
static weft_future *start_consumer(consumer *self)
{
    switch (g.cons) {
    case C_NEXT:
        /* A stage that kept half an item in the caller's buffer across a
         * dropped next would be caught: each next has a fresh one. */
        self->which ^= 1;
        self->item[self->which] = 0xdeadbeefdeadbeefull;
        weft_stream_next_init(&self->c.nx, self->head, &self->item[self->which]);
        return &self->c.nx.base;
    case C_FOLD:
        OK(weft_iter_fold_init(&self->c.fold, self->head, &self->acc, fold_fn, NULL));
        return &self->c.fold.base;
    case C_EACH:
        OK(weft_iter_for_each_init(&self->c.fold, self->head, each_fn, NULL));
        return &self->c.fold.base;
    case C_COLLECT:
        self->coln = 0;
        self->col_active = true;
        self->col_room = self->col_cap < MAX_ITEMS - g.nout ? self->col_cap
                                                            : MAX_ITEMS - g.nout;
        OK(weft_iter_collect_init(&self->c.col, self->head, g.out + g.nout, self->col_room,
                                  &self->coln));
        return &self->c.col.base;
    case C_FORWARD:
        OK(weft_iter_forward_init(&self->c.fw, self->head, &self->otx[0].base, self->close));
        return &self->c.fw.base;
    default:
        OK(weft_iter_forward_init(&self->c.fw, self->head, &self->tee.base, self->close));
        return &self->c.fw.base;
    }
}

/* Sets up the await of one step: the consumer future, plainly, under a
 * give-up after 1-3 pending polls, or under an owning timeout. */
static void start_step(consumer *self)
{
    weft_future *f = start_consumer(self);
    unsigned v = rng_next32(&self->rng) % 10;
    self->mode = v < 5 ? M_PLAIN : v < 8 ? M_LIMIT : M_TIMEOUT;
    self->lim = (poll_limit){ .inner = f, .left = UINT_MAX };
    weft_future_init(&self->lim.base, &lim_ops, WEFT_F_SEND);
    if (self->mode == M_LIMIT) {
        self->lim.left = 1 + rng_next32(&self->rng) % 3;
    } else if (self->mode == M_TIMEOUT) {
        OK(weft_timeout_init(&self->t, f,
                             (weft_duration)(rng_next32(&self->rng) % (WEFT_US(100) + 1))));
        self->lim.inner = &self->t.base;
    }
    self->inner_live = true;
}

static void collect_settle(consumer *self)
{
    if (self->col_active) {
        g.nout += self->coln;
        self->col_active = false;
    }
}

/* After the step's await: true when the loop is over. */
static bool finish_step(consumer *self)
{
    bool gave_up = self->lim.status == -EAGAIN;
    bool timed_out = !gave_up && self->mode == M_TIMEOUT && self->t.status == -ETIMEDOUT;
    self->inner_live = false;
    weft_future_drop(self->lim.inner); /* a pending one: dropped mid-iteration */
    collect_settle(self);
    if (gave_up || timed_out) {
        stress_count(gave_up ? &g.next_drops : &g.timeouts);
        if (g.cons != C_NEXT && self->may_stop && rng_next32(&self->rng) % 6 == 0) {
            g.stopped = true;
            return true;
        }
        return false;
    }
    uint64_t w = self->lim.out[0];
    int r;
    memcpy(&r, &w, sizeof r);
    switch (g.cons) {
    case C_NEXT:
        STRESS_ENSURE(r == 0 || r == 1, "next says %d", r);
        if (r == 0) {
            g.saw_done = true;
            return true;
        }
        push_out(self->item[self->which]);
        return false;
    case C_FOLD:
    case C_EACH:
        g.saw_done = true;
        return true;
    case C_COLLECT:
        if (r == 0 && self->coln == self->col_room) {
            /* A full buffer and a size_hint of 0 left count as the end
             * (documented): the pipeline may not have said DONE. */
            g.ended_by_hint = true;
        }
        if (r == -ENOSPC) {
            /* Its buffer filled: a fresh collect takes the rest. */
            stress_count(&g.collect_full);
            return false;
        }
        STRESS_ENSURE(r == 0, "collect says %d", r);
        g.saw_done = true;
        return true;
    default:
        STRESS_ENSURE(r == 0, "%s says %d", cons_names[g.cons], r);
        g.saw_done = true;
        return true;
    }
}

/* Drops everything the task holds: the consumer future, the pipeline
 * (last stage first), the source; closes a channel source and drains it. */
static void teardown(consumer *self)
{
    weft_co_drop(&self->co);
    if (self->inner_live) {
        self->inner_live = false;
        weft_future_drop(self->lim.inner);
    }
    collect_settle(self);
    if (self->tee_made)
        weft_sink_drop(&self->tee.base);
    if (self->built) {
        for (unsigned i = self->nst; i-- > 0;) {
            stage *s = &self->st[i];
            if (s->has_post)
                weft_stream_drop(&s->post.base);
            weft_stream_drop(&s->u.map.base);
            if (s->has_pre)
                weft_stream_drop(&s->pre.base);
            if (s->has_aux)
                weft_stream_drop(&s->aux.base);
        }
        weft_stream_drop(&self->rec.base);
        if (g.src == SRC_RANGE)
            weft_stream_drop(&self->src_range.base);
        else if (g.src == SRC_ARRAY)
            weft_stream_drop(&self->src_arr.base);
    }
    if (self->gen_made)
        weft_stream_drop(&self->gsrc.base);
    for (unsigned i = 0; i < self->notx; i++)
        weft_chan_tx_drop(&self->otx[i]);
    if (self->rx_owned) {
        /* What the pipeline never took stays in the channel: take it. */
        weft_chan_rx_close(&g.rx);
        uint64_t v;
        int r;
        while ((r = weft_chan_try_recv(&g.rx, &v)) != -EPIPE) {
            if (r == -EAGAIN) {
                /* A send claimed a slot before the close and has not
                 * written it yet. */
                sched_yield();
                continue;
            }
            STRESS_ENSURE(r == 0, "drain: try_recv says %d", r);
            STRESS_ENSURE(g.ndrained < MAX_PROD * MAX_QUOTA, "drained overflows");
            g.drained[g.ndrained++] = v;
        }
        weft_chan_rx_drop(&g.rx);
    }
}

WEFT_ASYNC_FN_WITH_DROP(consumer, uint64_t)
{
    WEFT_FN_BEGIN;
    build(self);
    if (g.cons == C_FOR_AWAIT) {
        /* The loop macro: no give-ups or timeouts, stops and aborts only. */
        self->stopping = g.nout >= self->stop_after;
        if (!self->stopping) {
            WEFT_FOR_AWAIT(self->head, &self->item[0])
            {
                push_out(self->item[0]);
                if (g.nout >= self->stop_after) {
                    self->stopping = true;
                    break;
                }
            }
        }
        if (self->stopping)
            g.stopped = true;
        else
            g.saw_done = true;
    }
    while (g.cons != C_FOR_AWAIT) {
        if (g.cons == C_NEXT && g.nout >= self->stop_after) {
            g.stopped = true;
            break;
        }
        start_step(self);
        WEFT_FN_AWAIT(&self->lim, NULL);
        if (finish_step(self))
            break;
    }
    g.cons_finished = true;
    WEFT_FN_RETURN(42);
    WEFT_FN_END;
}

static void consumer_drop(weft_future *f)
{
    consumer *self = (consumer *)f;
    teardown(self);
    stress_drop_once(&g.cdrops, "consumer", 0);
    note_dropped();
}

/* ---- producers ------------------------------------------------------------------ */

static uint64_t make_id(unsigned p, uint64_t seq)
{
    return ((uint64_t)(p + 1) << 32) | seq;
}

typedef struct producer {
    weft_future base;
    weft_co co;
    unsigned p;
    uint64_t rng, seq, item;
    bool aborter;
    int r;
    weft_chan_send sf;
} producer;

WEFT_ASYNC_FN_WITH_DROP(producer, uint64_t)
{
    WEFT_FN_BEGIN;
    for (self->seq = 0; self->seq < g.quota[self->p]; self->seq++) {
        self->item = make_id(self->p, self->seq);
        weft_chan_send_init(&self->sf, &g.tx[self->p], &self->item);
        WEFT_FN_AWAIT(&self->sf, &self->r);
        if (self->r != 0) {
            STRESS_ENSURE(self->r == -EPIPE, "producer %u: send says %d", self->p, self->r);
            break;
        }
        g.sent[self->p][self->seq] = 1;
        if (self->aborter && rng_next32(&self->rng) % 40 == 0) {
            if (atomic_load_explicit(&g.published, memory_order_acquire) > 0)
                stress_abort_task(&g_cons, 0, &g.aborts_task);
        }
        if (rng_next32(&self->rng) % 4 == 0)
            WEFT_FN_YIELD;
    }
    WEFT_FN_RETURN(self->p);
    WEFT_FN_END;
}

static void producer_drop(weft_future *f)
{
    producer *self = (producer *)f;
    weft_co_drop(&self->co);
    weft_chan_tx_drop(&g.tx[self->p]);
    note_dropped();
}

static void *producer_main(void *arg)
{
    unsigned p = (unsigned)(uintptr_t)arg;
    uint64_t rng = rng_seed(g.seed ^ (0xabcdull * (p + 1)));
    for (uint64_t seq = 0; seq < g.quota[p]; seq++) {
        uint64_t id = make_id(p, seq);
        int r = weft_chan_send_blocking(&g.tx[p], &id);
        if (r != 0) {
            STRESS_ENSURE(r == -EPIPE, "foreign producer %u: send says %d", p, r);
            break;
        }
        g.sent[p][seq] = 1;
        if (rng_next32(&rng) % 8 == 0)
            sched_yield();
    }
    weft_chan_tx_drop(&g.tx[p]);
    return NULL;
}

static void *aborter_main(void *arg)
{
    (void)arg;
    stress_abort_at_random(&g_cons, g.seed ^ 0xab0, 3, &g.aborts_foreign);
    return NULL;
}

/* ---- the model ---------------------------------------------------------------------- */

static uint64_t model_a[MAX_ITEMS], model_b[MAX_ITEMS];

/* One stage applied to in[0..n) (in_done: the input ended); returns the
 * output length. */
static size_t model_stage(const stage *s, const uint64_t *in, size_t n, bool in_done,
                          uint64_t *out, bool *out_done)
{
    size_t m = 0;
    *out_done = in_done;
    switch (s->kind) {
    case ST_MAP:
        for (size_t i = 0; i < n; i++)
            out[m++] = f_map(s->p, in[i]);
        break;
    case ST_FILTER:
        for (size_t i = 0; i < n; i++)
            if (f_filter(s->p, in[i]))
                out[m++] = in[i];
        break;
    case ST_FILTER_MAP:
        for (size_t i = 0; i < n; i++)
            if (f_fmap_keep(s->p, in[i]))
                out[m++] = f_fmap(s->p, in[i]);
        break;
    case ST_INSPECT:
    case ST_FUSE:
        for (size_t i = 0; i < n; i++)
            out[m++] = in[i];
        break;
    case ST_TAKE:
        for (size_t i = 0; i < n && m < s->n; i++)
            out[m++] = in[i];
        *out_done = in_done || m == s->n;
        break;
    case ST_SKIP:
        for (size_t i = s->n; i < n; i++)
            out[m++] = in[i];
        break;
    case ST_TAKE_WHILE:
        for (size_t i = 0; i < n; i++) {
            if (!f_take_while(s->p, in[i])) {
                *out_done = true;
                break;
            }
            out[m++] = in[i];
        }
        break;
    case ST_SKIP_WHILE: {
        size_t i = 0;
        while (i < n && f_skip_while(s->p, in[i]))
            i++;
        for (; i < n; i++)
            out[m++] = in[i];
        break;
    }
    case ST_ENUMERATE:
        for (size_t i = 0; i < n; i++)
            out[m++] = f_enum(s->p, i, in[i]);
        break;
    case ST_CHAIN:
        for (size_t i = 0; i < n; i++)
            out[m++] = in[i];
        if (in_done)
            for (uint64_t j = 0; j < s->n; j++)
                out[m++] = aux_lo(s->p) + j;
        break;
    case ST_ZIP:
        for (size_t i = 0; i < n && i < s->n; i++)
            out[m++] = f_zip(s->p, in[i], aux_lo(s->p) + i);
        /* zip polls a first: a DONE ends it; b DONE after a's item ends
         * it too (that item dropped) */
        *out_done = s->swap ? in_done || n >= s->n : in_done || n > s->n;
        break;
    case ST_THEN:
    case ST_BUFFERED:
    case ST_SPAWN_MAP:
        for (size_t i = 0; i < n; i++)
            out[m++] = f_then(s->p, in[i]);
        break;
    case ST_CHUNKS:
        for (size_t i = 0; i < n; i += s->n) {
            size_t len = n - i < s->n ? n - i : s->n;
            if (len < s->n && !in_done)
                break;
            out[m++] = f_chunk(s->p, in + i, len);
        }
        break;
    default: /* ST_FLATTEN */
        for (size_t i = 0; i < n; i++)
            for (uint64_t j = 0; j < flat_count(s->p, in[i]); j++) {
                STRESS_ENSURE(m < MAX_ITEMS, "model overflows");
                out[m++] = flat_lo(in[i]) + j;
            }
        break;
    }
    STRESS_ENSURE(m <= MAX_ITEMS, "model overflows");
    return m;
}

/* The whole chain over the recorded items: the result in *res, its length
 * returned, *done whether the pipeline must have ended. */
static size_t model_run(const uint64_t **res, bool *done)
{
    uint64_t *cur = model_a, *nxt = model_b;
    memcpy(cur, g.rec, g.nrec * sizeof *cur);
    size_t n = g.nrec;
    bool d = g.src_done;
    for (unsigned i = 0; i < g.nst; i++) {
        bool od;
        n = model_stage(&g.cfg[i], cur, n, d, nxt, &od);
        d = od;
        uint64_t *t = cur;
        cur = nxt;
        nxt = t;
    }
    *res = cur;
    *done = d;
    return n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t sort_a[MAX_ITEMS], sort_b[MAX_ITEMS];

/* Is a[0..na) a sub-multiset of b[0..nb)? (equal when na == nb) */
static bool sub_multiset(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    if (na > nb)
        return false;
    memcpy(sort_a, a, na * sizeof *a);
    memcpy(sort_b, b, nb * sizeof *b);
    qsort(sort_a, na, sizeof *sort_a, cmp_u64);
    qsort(sort_b, nb, sizeof *sort_b, cmp_u64);
    size_t j = 0;
    for (size_t i = 0; i < na; i++) {
        while (j < nb && sort_b[j] < sort_a[i])
            j++;
        if (j == nb || sort_b[j] != sort_a[i])
            return false;
        j++;
    }
    return true;
}

static void describe(char *buf, size_t len)
{
    int k = snprintf(buf, len, "%s ->", src_names[g.src]);
    for (unsigned i = 0; i < g.nst && k > 0 && (size_t)k < len; i++) {
        const stage *s = &g.cfg[i];
        k += snprintf(buf + k, len - (size_t)k, " %s", kind_names[s->kind]);
        if (s->kind == ST_ZIP && s->swap)
            k += snprintf(buf + k, len - (size_t)k, "(%" PRIu64 ",swapped)", s->n);
        else if (s->kind == ST_TAKE || s->kind == ST_SKIP || s->kind == ST_CHUNKS ||
                 s->kind == ST_CHAIN || s->kind == ST_ZIP)
            k += snprintf(buf + k, len - (size_t)k, "(%" PRIu64 ")", s->n);
        if (s->kind == ST_BUFFERED || s->kind == ST_SPAWN_MAP)
            k += snprintf(buf + k, len - (size_t)k, "(%" PRIu64 ",%s)", s->n,
                          s->ordered ? "ordered" : "unordered");
    }
    if (k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, " -> %s", cons_names[g.cons]);
}

/* ---- the checks ------------------------------------------------------------------------ */

static uint8_t seen[MAX_PROD][MAX_QUOTA];

static void check_source(const char *desc)
{
    if (g.src == SRC_RANGE || g.src == SRC_ARRAY) {
        STRESS_ENSURE(g.nrec <= g.src_n, "%s: %zu items from a source of %" PRIu64, desc,
                      g.nrec, g.src_n);
        for (size_t i = 0; i < g.nrec; i++) {
            uint64_t want = g.src == SRC_RANGE ? g.src_lo + i : g.src_arr[i];
            STRESS_ENSURE(g.rec[i] == want, "%s: source item %zu is %" PRIx64 ", not %" PRIx64,
                          desc, i, g.rec[i], want);
        }
        STRESS_ENSURE(!g.src_done || g.nrec == g.src_n, "%s: source DONE after %zu of %" PRIu64,
                      desc, g.nrec, g.src_n);
        return;
    }
    memset(seen, 0, sizeof seen);
    uint64_t last[MAX_PROD];
    for (unsigned p = 0; p < MAX_PROD; p++)
        last[p] = UINT64_MAX;
    uint64_t dup = 0, lost = 0;
    for (size_t k = 0; k < g.nrec + g.ndrained; k++) {
        uint64_t id = k < g.nrec ? g.rec[k] : g.drained[k - g.nrec];
        uint64_t p1 = id >> 32, seq = id & 0xffffffffu;
        STRESS_ENSURE(p1 >= 1 && p1 <= g.nprod && seq < g.quota[p1 - 1],
                      "%s: id %" PRIx64 " was never made", desc, id);
        unsigned p = (unsigned)p1 - 1;
        if (seen[p][seq]++ || !g.sent[p][seq])
            dup++;
        if (k < g.nrec) {
            STRESS_ENSURE(last[p] == UINT64_MAX || seq > last[p],
                          "%s: producer %u's id %" PRIu64 " after %" PRIu64, desc, p, seq,
                          last[p]);
            last[p] = seq;
        }
    }
    uint64_t sent = 0;
    for (unsigned p = 0; p < g.nprod; p++)
        for (uint64_t s = 0; s < g.quota[p]; s++) {
            sent += g.sent[p][s];
            if (g.sent[p][s] && !seen[p][s])
                lost++;
        }
    stress_count_n(&g.lost, lost);
    stress_count_n(&g.duplicated, dup);
    stress_count_n(&g.sent_items, sent);
    stress_count_n(&g.drained_items, g.ndrained);
    STRESS_ENSURE(lost == 0 && dup == 0,
                  "%s: %" PRIu64 " ids lost, %" PRIu64 " duplicated (sent %" PRIu64
                  ", recorded %zu, drained %zu)",
                  desc, lost, dup, sent, g.nrec, g.ndrained);
    STRESS_ENSURE(!g.src_done || g.ndrained == 0, "%s: %zu items left after the source ended",
                  desc, g.ndrained);
}

static uint64_t chan_log[2][MAX_ITEMS];
static size_t chan_n[2];

/* Sink channel k's items: received as they come (a bounded one, by its
 * drain thread) or taken after the round (an unbounded one); then its
 * receiver is dropped. */
static void drain_out(unsigned k, bool blocking)
{
    size_t n = 0;
    uint64_t v;
    int r;
    while ((r = blocking ? weft_chan_recv_blocking(&g.orx[k], &v)
                         : weft_chan_try_recv(&g.orx[k], &v)) == 0) {
        STRESS_ENSURE(n < MAX_ITEMS, "sink output overflows");
        chan_log[k][n++] = v;
    }
    STRESS_ENSURE(r == -EPIPE, "sink channel: receive says %d", r);
    weft_chan_rx_drop(&g.orx[k]);
    chan_n[k] = n;
}

static void *sink_drain_main(void *arg)
{
    drain_out((unsigned)(uintptr_t)arg, true);
    return NULL;
}

static void check_output(const char *desc)
{
    const uint64_t *model;
    bool mdone;
    size_t mn = model_run(&model, &mdone);
    const uint64_t *out = g.out;
    size_t n = g.nout;
    if (g.cons == C_FORWARD || g.cons == C_TEE) {
        n = chan_n[0];
        out = chan_log[0];
        if (g.cons == C_TEE) {
            size_t n1 = chan_n[1];
            STRESS_ENSURE(n1 == n && memcmp(chan_log[0], chan_log[1], n * sizeof(uint64_t)) == 0,
                          "%s: tee sides differ (%zu and %zu items)", desc, n, n1);
        }
    }
    stress_count_n(&g.out_items, n);
    if (g.saw_done) {
        STRESS_ENSURE(mdone || g.ended_by_hint, "%s: the pipeline ended but the model has not (%zu items out, "
                             "%zu in the model, source %s)",
                      desc, n, mn, g.src_done ? "ended" : "not ended");
        STRESS_ENSURE(n == mn, "%s: %zu items out, the model says %zu", desc, n, mn);
    }
    if (!g.unordered) {
        STRESS_ENSURE(n <= mn, "%s: %zu items out, more than the model's %zu", desc, n, mn);
        for (size_t i = 0; i < n; i++)
            STRESS_ENSURE(out[i] == model[i],
                          "%s: item %zu is %" PRIx64 ", the model says %" PRIx64 " (%zu out, "
                          "%zu in the model)",
                          desc, i, out[i], model[i], n, mn);
    } else {
        STRESS_ENSURE(sub_multiset(out, n, model, mn),
                      "%s: the %zu items out are not a sub-multiset of the model's %zu", desc, n,
                      mn);
    }
}

/* ---- a round --------------------------------------------------------------------------- */

static const size_t caps[] = { 1, 2, 3, 4, 7, 16, 64 };

static void draw_chain(uint64_t *rng)
{
    g.nst = 1 + rng_next32(rng) % MAX_STAGES;
    g.unordered = false;
    bool flat = false;
    for (unsigned i = 0; i < g.nst; i++) {
        unsigned k;
        for (;;) {
            k = rng_next32(rng) % NKINDS;
            if (!enabled[k] || (g.unordered && order_sensitive(k)) || (k == ST_FLATTEN && flat))
                continue;
            break;
        }
        stage *s = &g.cfg[i];
        memset(s, 0, sizeof *s);
        s->kind = k;
        s->p = rng_next(rng) & MASK;
        switch (k) {
        case ST_TAKE:
        case ST_SKIP:
            s->n = rng_next32(rng) % 2 ? rng_next32(rng) % 12 : rng_next32(rng) % 500;
            break;
        case ST_CHAIN:
        case ST_ZIP:
            s->n = rng_next32(rng) % (MAX_AUX + 1);
            if (k == ST_ZIP && rng_next32(rng) % 2)
                s->n = MAX_AUX; /* mostly shorter than the input, sometimes not */
            s->swap = k == ST_ZIP && rng_next32(rng) % 2;
            break;
        case ST_CHUNKS:
            s->n = 1 + rng_next32(rng) % MAX_CHUNK;
            break;
        case ST_BUFFERED:
        case ST_SPAWN_MAP:
            s->n = 1 + rng_next32(rng) % MAX_CONC;
            s->ordered = rng_next32(rng) % 2;
            if (!s->ordered && s->n > 1)
                g.unordered = true;
            stress_count(&g.concurrent_stages);
            break;
        default:
            break;
        }
        flat |= k == ST_FLATTEN;
    }
    stress_count_n(&g.stages, g.nst);
}

static void round_reset(uint64_t seed, uint64_t *rng)
{
    g.seed = seed;
    g.dropped = 0;
    g.nrec = g.nout = g.ndrained = g.npool = 0;
    g.src_done = g.saw_done = g.stopped = g.cons_finished = g.ended_by_hint = false;
    atomic_store(&g.published, 0);
    atomic_store(&g.over, false);
    atomic_store(&g.cdrops, 0);
    atomic_store(&g.caborted[0], 0);
    atomic_store(&g.live_work, 0);
    atomic_store(&g.live_gen, 0);
    memset(g.sent, 0, sizeof g.sent);
    g.sim = rng_next32(rng) % 4 == 0;
    g.src = rng_next32(rng) % NSRC;
    g.cons = rng_next32(rng) % NCONS;
    draw_chain(rng);
    g.src_n = rng_next32(rng) % 3 == 0 ? rng_next32(rng) % 8 : rng_next32(rng) % MAX_SRC;
    g.src_lo = rng_next(rng) & ((1ull << 40) - 1);
    uint64_t base = rng_next(rng) & MASK;
    for (uint64_t i = 0; i < g.src_n; i++)
        g.src_arr[i] = (base + i * 0x10001ull) & MASK;
    g.nprod = g.nptasks = 0;
    g.sink_bounded = false;
    if (g.src == SRC_CHAN || g.src == SRC_GEN) {
        g.nprod = 1 + rng_next32(rng) % MAX_PROD;
        for (unsigned p = 0; p < g.nprod; p++) {
            g.prod_foreign[p] = !g.sim && rng_next32(rng) % 3 == 0;
            g.nptasks += !g.prod_foreign[p];
            g.quota[p] = rng_next32(rng) % 4 == 0 ? rng_next32(rng) % 4
                                                  : rng_next32(rng) % (MAX_QUOTA + 1);
        }
    }
}

static void run_round(uint64_t seed, const stress_options *opt)
{
    uint64_t rng = rng_seed(seed);
    round_reset(seed, &rng);
    char desc[512];
    describe(desc, sizeof desc);

    weft_rt *rt;
    if (g.sim) {
        weft_sim_options so = WEFT_SIM_OPTIONS_INIT;
        so.seed = seed;
        so.spurious_wake = 0.3;
        so.leaf_pending = 0.3;
        so.timer_late = 0.3;
        so.time_limit = WEFT_SEC(600);
        rt = NULL;
        int rc = weft_rt_new_sim(&rt, &so);
        STRESS_ENSURE(rc == 0, "weft_rt_new_sim: %s", weft_strerror(rc));
        stress_count(&g.sim_rounds);
    } else {
        rt = stress_rt_new(opt);
    }
    g.rt = rt;

    consumer c = { WEFT_FN_INIT(consumer, WEFT_F_SEND) };
    c.rng = rng_seed(seed ^ 0xc0);
    c.nst = g.nst;
    memcpy(c.st, g.cfg, sizeof c.st);
    c.stop_after = rng_next32(&rng) % 4 == 0 ? rng_next32(&rng) % 40 : SIZE_MAX;
    c.may_stop = rng_next32(&rng) % 3 == 0;
    c.col_cap = rng_next32(&rng) % 2 ? 1 + rng_next32(&rng) % 16 : SIZE_MAX;
    c.close = rng_next32(&rng) % 2;
    if (g.src == SRC_CHAN || g.src == SRC_GEN) {
        weft_chan_tx tx0;
        int rc = rng_next32(&rng) % 3 == 0
                     ? weft_mpsc_unbounded_new(&tx0, &g.rx, sizeof(uint64_t))
                     : weft_mpsc_new(&tx0, &g.rx, sizeof(uint64_t),
                                     caps[rng_next32(&rng) % (sizeof caps / sizeof caps[0])]);
        STRESS_ENSURE(rc == 0, "channel: %s", weft_strerror(rc));
        for (unsigned p = 0; p < g.nprod; p++)
            OK(weft_chan_tx_clone(&tx0, &g.tx[p]));
        weft_chan_tx_drop(&tx0);
        c.rx_owned = true;
        stress_count(g.src == SRC_CHAN ? &g.rounds_chan : &g.rounds_gen);
    }
    if (g.cons == C_FORWARD || g.cons == C_TEE) {
        c.notx = g.cons == C_TEE ? 2 : 1;
        g.sink_bounded = !g.sim && rng_next32(&rng) % 2;
        for (unsigned k = 0; k < c.notx; k++)
            OK(g.sink_bounded ? weft_mpsc_new(&c.otx[k], &g.orx[k], sizeof(uint64_t),
                                              1 + rng_next32(&rng) % 4)
                              : weft_mpsc_unbounded_new(&c.otx[k], &g.orx[k], sizeof(uint64_t)));
        stress_count_n(&g.bounded_sinks, g.sink_bounded);
    }
    bool abort_round = rng_next32(&rng) % 3 == 0;
    bool foreign_aborter = abort_round && !g.sim;

    int rc = weft_spawn(rt, &c.base, sizeof c, &g.cjoin[0]);
    STRESS_ENSURE(rc == 0, "spawn of the consumer: %s", weft_strerror(rc));
    /* Release: the join is written before an aborter uses it. */
    atomic_store_explicit(&g.published, 1, memory_order_release);

    pthread_t threads[MAX_PROD + 2], aborter;
    unsigned nthreads = 0, np = 0;
    for (unsigned k = 0; g.sink_bounded && k < c.notx; k++)
        STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, sink_drain_main,
                                     (void *)(uintptr_t)k) == 0,
                      "pthread_create");
    for (unsigned p = 0; p < g.nprod; p++) {
        if (g.prod_foreign[p]) {
            STRESS_ENSURE(pthread_create(&threads[nthreads++], NULL, producer_main,
                                         (void *)(uintptr_t)p) == 0,
                          "pthread_create");
            continue;
        }
        producer pr = { WEFT_FN_INIT(producer, WEFT_F_SEND), .p = p };
        pr.rng = rng_seed(seed ^ (0x9000ull + p));
        pr.aborter = abort_round && rng_next32(&pr.rng) % 3 == 0;
        rc = weft_spawn(rt, &pr.base, sizeof pr, &g.pjoins[np++]);
        STRESS_ENSURE(rc == 0, "spawn of producer %u: %s", p, weft_strerror(rc));
    }
    if (foreign_aborter)
        STRESS_ENSURE(pthread_create(&aborter, NULL, aborter_main, NULL) == 0, "pthread_create");
    if (g.sim) {
        /* Every task and every decision on this thread, in the sim's
         * seeded order, with spurious wakes and leaf PENDINGs. */
        rc = weft_sim_run(rt);
        STRESS_ENSURE(rc == 0, "%s: sim run: %s", desc, weft_strerror(rc));
        weft_sim_stats st;
        OK(weft_sim_stats_get(rt, &st));
        stress_count_n(&g.chaos_dealt, st.leaf_pendings + st.spurious_wakes);
    }

    pthread_mutex_lock(&g.lock);
    while (g.dropped < 1 + g.nptasks)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    atomic_store_explicit(&g.over, true, memory_order_release);
    if (foreign_aborter)
        pthread_join(aborter, NULL);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    weft_rt_shutdown(rt);
    for (unsigned k = 0; !g.sink_bounded && k < c.notx; k++)
        drain_out(k, false);

    uint64_t out;
    stress_join_finished(&g.cjoin[0], "consumer", 0, &out);
    bool aborted = atomic_load_explicit(&g.caborted[0], memory_order_acquire);
    stress_check_join("main", "consumer", 0, g.cjoin[0].status, out, g.cons_finished, 42,
                      aborted);
    weft_future_drop(&g.cjoin[0].base);
    for (unsigned i = 0; i < np; i++) {
        stress_join_finished(&g.pjoins[i], "producer", i, &out);
        STRESS_ENSURE(g.pjoins[i].status == 0, "producer task %u: status %d", i,
                      g.pjoins[i].status);
        weft_future_drop(&g.pjoins[i].base);
    }
    STRESS_ENSURE(atomic_load(&g.live_work) == 0, "%s: %ld per-item futures never dropped",
                  desc, atomic_load(&g.live_work));
    STRESS_ENSURE(atomic_load(&g.live_gen) == 0, "%s: generator never dropped", desc);

    check_source(desc);
    check_output(desc);

    stress_count_n(&g.src_items, g.nrec);
    stress_count(g.saw_done ? &g.rounds_complete : &g.rounds_stopped);
    stress_count_n(&g.early_drops, g.stopped);
    stress_count_n(&g.rounds_unordered, g.unordered);
}

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g.lost, &g.duplicated, &g.rounds_complete, &g.rounds_stopped, &g.early_drops,
        &g.aborts_foreign, &g.aborts_task, &g.next_drops, &g.timeouts, &g.rounds_unordered,
        &g.rounds_chan, &g.rounds_gen, &g.stages, &g.concurrent_stages, &g.src_items,
        &g.out_items, &g.sent_items, &g.drained_items, &g.bounded_sinks, &g.sim_rounds,
        &g.chaos_dealt, &g.collect_full,
    };
    const stress_program p = {
        "stress_pipeline_storm", run_round, counters, sizeof counters / sizeof counters[0],
        "lost duplicated complete stopped early_drops aborts_foreign aborts_task "
        "next_drops timeouts unordered chan_rounds gen_rounds stages concurrent_stages "
        "src_items items_out sent drained bounded_sinks sim_rounds chaos_dealt collect_full",
    };
    return stress_main(argc, argv, &p);
}
