/* Test support for the concurrency stages (tests/iter/buffered.c,
 * spawn_map.c): a per-item job future that counts how many jobs are alive
 * at once (made and not yet dropped, from any thread), a drain future that
 * collects a stream's items inside a runtime (stopping after `stop_after`
 * items when set), checks of "every item exactly once" and of order, and
 * a cancel sweep over weft_stream_next of a stage built by the test, whose
 * check drains the stage on the sim after the drop and wants every item
 * exactly once (in order when the stage is ordered). Each test program
 * includes it once. */
#ifndef WEFT_TESTS_ITER_CONC_SUPPORT_H
#define WEFT_TESTS_ITER_CONC_SUPPORT_H

#include "iter/comb_support.h"
#include "support/counting_alloc.h"
#include "support/rt_fixture.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the job ---------------------------------------------------------------- */

/* Output 10 x after `waits` PENDINGs (each waking itself), or never
 * (waits < 0: PENDING with no wake, until dropped). */
typedef struct job {
    weft_future base;
    uint64_t x;
    int waits;
} job;

static _Atomic long g_live, g_max_live, g_made, g_dropped;
static _Atomic int g_gate; /* jobs with waits -4 finish once it is set */

static inline void jobs_reset(void)
{
    atomic_store(&g_live, 0);
    atomic_store(&g_max_live, 0);
    atomic_store(&g_made, 0);
    atomic_store(&g_dropped, 0);
}

static weft_poll job_poll(weft_future *f, weft_cx *cx, void *out)
{
    job *j = (job *)f;
    if (j->waits == -4) {
        if (!atomic_load(&g_gate)) {
            weft_waker_wake_by_ref(cx->waker); /* a busy wait on the gate */
            return WEFT_PENDING;
        }
        j->waits = 0;
    }
    if (j->waits == -3) {
        /* Item 0 of "slow first": pending (waking itself) until the stage
         * made 5 jobs, so 2 later items (n = 4) were yielded before it. */
        if (atomic_load(&g_made) < 5) {
            weft_waker_wake_by_ref(cx->waker);
            return WEFT_PENDING;
        }
        j->waits = 0;
    }
    if (j->waits < 0)
        return WEFT_PENDING;
    if (j->waits > 0) {
        j->waits--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    uint64_t v = 10 * j->x;
    memcpy(out, &v, sizeof v);
    return WEFT_READY;
}

static void job_drop(weft_future *f)
{
    (void)f;
    atomic_fetch_sub(&g_live, 1);
    atomic_fetch_add(&g_dropped, 1);
}

static const weft_future_ops job_ops = {
    .name = "test_job", .out_size = sizeof(uint64_t), .poll = job_poll, .drop = job_drop,
};

/* ctx: NULL (waits 3 - x % 4, so later items often finish first) or an
 * int* (that many waits for every item; -1: never; -2: item 0 waits
 * until 5 jobs were made, the others not at all). */
static weft_future *make_job(void *ctx, const void *item, void *storage, size_t size)
{
    assert_true(size >= sizeof(job));
    job *j = storage;
    weft_future_init(&j->base, &job_ops, WEFT_F_SEND);
    memcpy(&j->x, item, sizeof j->x);
    j->waits = ctx ? *(int *)ctx : (int)(3 - j->x % 4);
    if (j->waits == -2) /* "slow first": item 0 waits, the rest do not */
        j->waits = j->x == 0 ? -3 : 0;
    long live = atomic_fetch_add(&g_live, 1) + 1;
    atomic_fetch_add(&g_made, 1);
    long m = atomic_load(&g_max_live);
    while (live > m && !atomic_compare_exchange_weak(&g_max_live, &m, live))
        ;
    return &j->base;
}

/* ---- drain ------------------------------------------------------------------ */

#define DRAIN_MAX 4096

typedef struct drain {
    weft_future base;
    weft_stream *s;
    size_t stop_after; /* 0: until DONE */
    size_t n;
    uint64_t got[DRAIN_MAX];
} drain;

static weft_poll drain_poll(weft_future *f, weft_cx *cx, void *out)
{
    drain *d = (drain *)f;
    (void)out;
    for (;;) {
        if (d->stop_after && d->n >= d->stop_after)
            return WEFT_READY;
        uint64_t v;
        weft_next r = weft_stream_poll_next(d->s, cx, &v);
        if (r == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (r == WEFT_NEXT_DONE)
            return WEFT_READY;
        if (d->n < DRAIN_MAX)
            d->got[d->n] = v;
        d->n++;
    }
}

static const weft_future_ops drain_ops = { .name = "test_drain", .out_size = 0, .poll = drain_poll };

static inline void drain_init(drain *d, weft_stream *s, size_t stop_after)
{
    weft_future_init(&d->base, &drain_ops, 0);
    d->s = s;
    d->stop_after = stop_after;
    d->n = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* NULL when got[0..n) is exactly {10 lo, 10 (lo+1), ..., 10 (hi-1)}, in
 * that order when `ordered`; else what differs. Sorts got when not
 * ordered. Also counts how many came out of input order in *swaps. */
static inline const char *check_items(uint64_t *got, size_t n, uint64_t lo, uint64_t hi,
                                      bool ordered, size_t *swaps)
{
    if (n != hi - lo)
        return sweep_say("%zu item(s), want %llu", n, (unsigned long long)(hi - lo));
    size_t sw = 0;
    for (size_t i = 1; i < n; i++)
        sw += got[i] < got[i - 1];
    if (swaps)
        *swaps = sw;
    if (ordered && sw)
        return sweep_say("ordered stage yielded out of order (%zu inversions)", sw);
    qsort(got, n, sizeof *got, cmp_u64);
    for (size_t i = 0; i < n; i++)
        if (got[i] != 10 * (lo + i))
            return sweep_say("item %zu is %llu, want %llu", i, (unsigned long long)got[i],
                             (unsigned long long)(10 * (lo + i)));
    return NULL;
}

/* ---- cancel sweep ------------------------------------------------------------ */

/* Items 1..CONC_FEED through the stage `make` builds over a range in
 * `st`; the sweep polls a next over it, drops it, and the check drains the
 * rest on the sim (weft_block_on) and wants every item exactly once. */
#define CONC_FEED 6

typedef struct conc_sweep conc_sweep;
typedef weft_stream *conc_make_fn(conc_sweep *cs, weft_rt *rt);

struct conc_sweep {
    const char *name;
    conc_make_fn *make;
    bool ordered;
    weft_iter_range up;
    union {
        max_align_t align_;
        unsigned char b[4096];
    } st;
    weft_stream *s;
    weft_stream_next nx;
    uint64_t item;
    int out;
    drain d;
};

static int conc_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    conc_sweep *cs = ctx;
    jobs_reset();
    if (weft_iter_range_init(&cs->up, 1, CONC_FEED + 1, 1) != 0)
        return -EINVAL;
    cs->s = cs->make(cs, rt);
    if (!cs->s)
        return -EINVAL;
    cs->item = 0;
    cs->out = -1;
    weft_stream_next_init(&cs->nx, cs->s, &cs->item);
    *fut = &cs->nx.base;
    *out = &cs->out;
    return 0;
}

static const char *conc_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    conc_sweep *cs = ctx;
    uint64_t got[CONC_FEED + 2];
    size_t n = 0;
    bool done = false;
    if (run->completed) {
        if (cs->out == 1)
            got[n++] = cs->item;
        else
            done = true;
    } else if (cs->item != 0) {
        return sweep_say("%s k=%u: a dropped next wrote an item", cs->name, run->k);
    }
    if (!done) {
        drain_init(&cs->d, cs->s, 0);
        if (weft_block_on(rt, &cs->d.base, NULL, 0) != 0)
            return sweep_say("%s k=%u: block_on failed", cs->name, run->k);
        for (size_t i = 0; i < cs->d.n && n < CONC_FEED + 2; i++)
            got[n++] = cs->d.got[i];
    }
    const char *bad = check_items(got, n, 1, CONC_FEED + 1, cs->ordered, NULL);
    if (bad) {
        char why[256];
        snprintf(why, sizeof why, "%s", bad);
        return sweep_say("%s k=%u (%s): %s", cs->name, run->k,
                         run->completed ? "completed" : "dropped", why);
    }
    if (atomic_load(&g_made) != CONC_FEED || atomic_load(&g_dropped) != CONC_FEED)
        return sweep_say("%s k=%u: %ld job(s) made, %ld dropped, want %d each", cs->name,
                         run->k, atomic_load(&g_made), atomic_load(&g_dropped), CONC_FEED);
    /* The stage may hold a clone of the last waker it was polled with. */
    weft_stream_drop(cs->s);
    cs->s = NULL;
    return sweep_leftovers(rt);
}

static void conc_teardown(void *ctx)
{
    conc_sweep *cs = ctx;
    if (cs->s)
        weft_stream_drop(cs->s);
}

static inline void conc_sweep_run(const char *name, conc_make_fn *make, bool ordered)
{
    static conc_sweep cs;
    memset(&cs, 0, sizeof cs);
    cs.name = name;
    cs.make = make;
    cs.ordered = ordered;
    weft_sweep_case c = { conc_build, conc_check, conc_teardown, &cs };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2);
    o = sweep_chaos_options(1, 8, 0.3);
    (void)sweep_pass(&c, &o);
}

#endif
