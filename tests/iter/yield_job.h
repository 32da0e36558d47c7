/* Test support for tests/iter/future_set.c and join.c: a job that awaits
 * a library leaf (weft_yield) `left` times before its output 10 x, so the
 * sim's chaos reaches it and its wakes come through the waker it was
 * polled with. Counted in conc_support.h's g_live / g_made / g_dropped.
 * Each test program includes it once, after iter/conc_support.h. */
#ifndef WEFT_TESTS_ITER_YIELD_JOB_H
#define WEFT_TESTS_ITER_YIELD_JOB_H

#include "iter/conc_support.h"

typedef struct yjob {
    weft_future base;
    uint64_t x;
    int left;
    bool y_live;
    weft_yield y;
} yjob;

static weft_poll yjob_poll(weft_future *f, weft_cx *cx, void *out)
{
    yjob *j = (yjob *)f;
    while (j->left > 0) {
        if (!j->y_live) {
            weft_yield_init(&j->y);
            j->y_live = true;
        }
        if (weft_future_poll(&j->y.base, cx, NULL) == WEFT_PENDING)
            return WEFT_PENDING;
        weft_future_drop(&j->y.base);
        j->y_live = false;
        j->left--;
    }
    uint64_t v = 10 * j->x;
    memcpy(out, &v, sizeof v);
    return WEFT_READY;
}

static void yjob_drop(weft_future *f)
{
    yjob *j = (yjob *)f;
    if (j->y_live)
        weft_future_drop(&j->y.base);
    atomic_fetch_sub(&g_live, 1);
    atomic_fetch_add(&g_dropped, 1);
}

static const weft_future_ops yjob_ops = {
    .name = "test_yjob", .out_size = sizeof(uint64_t), .poll = yjob_poll, .drop = yjob_drop,
};

/* weft_iter_then_fn: the item is the uint64_t x; it yields 1 + x % 3
 * times. */
static weft_future *make_yjob(void *ctx, const void *item, void *storage, size_t size)
{
    (void)ctx;
    assert_true(size >= sizeof(yjob));
    yjob *j = storage;
    weft_future_init(&j->base, &yjob_ops, WEFT_F_SEND);
    memcpy(&j->x, item, sizeof j->x);
    j->left = (int)(1 + j->x % 3);
    j->y_live = false;
    long live = atomic_fetch_add(&g_live, 1) + 1;
    atomic_fetch_add(&g_made, 1);
    long m = atomic_load(&g_max_live);
    while (live > m && !atomic_compare_exchange_weak(&g_max_live, &m, live))
        ;
    return &j->base;
}

#endif
