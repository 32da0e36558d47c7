/* weft_future_box (a future in weft-allocated storage, for callers of an
 * async interface that cannot reserve the published size) and weft_rc:
 * the box polls and drops the future inside and frees its storage exactly
 * once (counting allocator), honours large alignments, reports misuse;
 * the rc calls its drop once, at the last release, from any thread. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "weft/weft.h"
#include "support/counting_waker.h"
#include "support/rt_fixture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

/* A future that is PENDING `left` times, then outputs 7 (int); counts drops. */
typedef struct later {
    weft_future base;
    int left;
    int *drops;
    unsigned char pad[40];
} later;

static weft_poll later_poll(weft_future *f, weft_cx *cx, void *out)
{
    later *l = (later *)f;
    if (l->left-- > 0) {
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    *(int *)out = 7;
    return WEFT_READY;
}

static void later_drop(weft_future *f) { (*((later *)f)->drops)++; }

static const weft_future_ops later_ops = {
    .name = "later", .out_size = sizeof(int), .poll = later_poll, .drop = later_drop,
};

/* The interface method: initialise a `later` in caller storage. */
static int make_later(int left, int *drops, weft_future *storage)
{
    later *l = (later *)(void *)storage;
    weft_future_init(&l->base, &later_ops, WEFT_F_SEND);
    l->left = left;
    l->drops = drops;
    return 0;
}

static weft_poll poll_once(weft_future *f, void *out)
{
    counting_waker c;
    cw_init(&c);
    weft_waker w = cw_waker(&c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(f, &cx, out);
}

static void test_box_polls_and_drops_the_inner_future(void **state)
{
    (void)state;
    int drops = 0;
    weft_future_box b;
    weft_future *st = NULL;
    assert_int_equal(weft_future_box_alloc(&b, sizeof(later), _Alignof(later), &st), 0);
    assert_int_equal(make_later(2, &drops, st), 0);
    weft_future_box_fill(&b);
    assert_true(weft_future_is_send(&b.base));
    assert_int_equal(weft_future_out_size(&b.base), sizeof(int));
    int out = 0;
    assert_int_equal(poll_once(&b.base, &out), WEFT_PENDING);
    assert_int_equal(poll_once(&b.base, &out), WEFT_PENDING);
    assert_int_equal(poll_once(&b.base, &out), WEFT_READY);
    assert_int_equal(out, 7);
    weft_future_drop(&b.base);
    assert_int_equal(drops, 1);
    assert_int_equal(misuse_count(), 0);
}

/* Dropped pending: the inner future is dropped once and the memory freed
 * (rt_teardown fails on a leak). A method that fails: drop frees only. */
static void test_box_dropped_pending_or_unfilled(void **state)
{
    (void)state;
    int drops = 0;
    weft_future_box b;
    weft_future *st;
    assert_int_equal(weft_future_box_alloc(&b, sizeof(later), _Alignof(later), &st), 0);
    assert_int_equal(make_later(5, &drops, st), 0);
    weft_future_box_fill(&b);
    int out = 0;
    assert_int_equal(poll_once(&b.base, &out), WEFT_PENDING);
    weft_future_box_drop(&b);
    assert_int_equal(drops, 1);
    assert_int_equal(weft_future_box_alloc(&b, sizeof(later), _Alignof(later), &st), 0);
    weft_future_drop(&b.base); /* never filled */
    assert_int_equal(drops, 1);
}

/* An alignment above malloc's is honoured. */
static void test_box_large_alignment(void **state)
{
    (void)state;
    int drops = 0;
    for (size_t align = 1; align <= 4096; align *= 2) {
        weft_future_box b;
        weft_future *st;
        assert_int_equal(weft_future_box_alloc(&b, sizeof(later), align < 8 ? 8 : align, &st),
                         0);
        assert_int_equal((uintptr_t)st % (align < 8 ? 8 : align), 0);
        assert_int_equal(make_later(0, &drops, st), 0);
        weft_future_box_fill(&b);
        int out = 0;
        assert_int_equal(poll_once(&b.base, &out), WEFT_READY);
        weft_future_drop(&b.base);
    }
    assert_int_equal(drops, 13);
}

/* A boxed future spawned as a task on the runtime of the test. */
static void test_box_spawned(void **state)
{
    (void)state;
    static int drops;
    drops = 0;
    weft_future_box b;
    weft_future *st;
    assert_int_equal(weft_future_box_alloc(&b, sizeof(later), _Alignof(later), &st), 0);
    assert_int_equal(make_later(3, &drops, st), 0);
    weft_future_box_fill(&b);
    int out = 0;
    assert_int_equal(spawn_blocking(g_rt, &b.base, sizeof b, &out, sizeof out), 0);
    assert_int_equal(out, 7);
    assert_int_equal(drops, 1);
}

static void test_box_misuse(void **state)
{
    (void)state;
    weft_future_box b;
    weft_future *st;
    assert_int_equal(weft_future_box_alloc(NULL, 64, 8, &st), -EINVAL);
    assert_int_equal(weft_future_box_alloc(&b, 64, 3, &st), -EINVAL);
    assert_int_equal(weft_future_box_alloc(&b, 64, 8, NULL), -EINVAL);
    assert_int_equal(weft_future_box_alloc(&b, 1, 8, &st), -EINVAL);
    assert_true(misuse_reported(4, "weft_future_box_alloc"));
    misuse_reset();
    assert_int_equal(weft_future_box_alloc(&b, 64, 8, &st), 0);
    int out = 0;
    assert_int_equal(poll_once(&b.base, &out), WEFT_PENDING);
    assert_true(misuse_reported(1, "before weft_future_box_fill"));
    misuse_reset();
    weft_future_drop(&b.base);
}

/* ---- rc ---------------------------------------------------------------------------- */

typedef struct shared {
    weft_rc rc;
    int dropped;
} shared;

static void shared_drop(weft_rc *rc) { ((shared *)(void *)rc)->dropped++; }

static void test_rc_drops_once_at_the_last_release(void **state)
{
    (void)state;
    shared s = { .dropped = 0 };
    weft_rc_init(&s.rc, shared_drop);
    weft_rc_retain(&s.rc);
    weft_rc_retain(&s.rc);
    assert_int_equal(weft_rc_count(&s.rc), 3);
    assert_false(weft_rc_release(&s.rc));
    assert_false(weft_rc_release(&s.rc));
    assert_int_equal(s.dropped, 0);
    assert_true(weft_rc_release(&s.rc));
    assert_int_equal(s.dropped, 1);
    assert_false(weft_rc_release(&s.rc)); /* once too often */
    assert_true(misuse_reported(1, "weft_rc_release"));
    misuse_reset();
    assert_int_equal(s.dropped, 1);
}

static void *rc_churn(void *arg)
{
    weft_rc *rc = arg;
    for (int i = 0; i < 100000; i++) {
        weft_rc_retain(rc);
        (void)weft_rc_release(rc);
    }
    (void)weft_rc_release(rc); /* this thread's own reference */
    return NULL;
}

static void test_rc_across_threads(void **state)
{
    (void)state;
    shared s = { .dropped = 0 };
    weft_rc_init(&s.rc, shared_drop);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        weft_rc_retain(&s.rc);
        assert_int_equal(pthread_create(&t[i], NULL, rc_churn, &s.rc), 0);
    }
    (void)weft_rc_release(&s.rc);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(s.dropped, 1);
    assert_int_equal(weft_rc_count(&s.rc), 0);
}

/* ---- cancel sweep ---------------------------------------------------------------- */

/* A box around a sleep, dropped after every number of polls: the sleep
 * inside is dropped with it (its timer unlinked, its waker released) and
 * the storage freed (the ASan build's leak check and the counting
 * allocator of rt_teardown see a box that is not). */
typedef struct box_case {
    weft_future_box b;
    bool filled;
} box_case;

static int box_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    box_case *bc = ctx;
    weft_future *st;
    int rc = weft_future_box_alloc(&bc->b, sizeof(weft_sleep), _Alignof(weft_sleep), &st);
    if (rc != 0)
        return rc;
    weft_sleep_init((weft_sleep *)(void *)st, WEFT_MS(5));
    weft_future_box_fill(&bc->b);
    *fut = &bc->b.base;
    *out = NULL;
    return 0;
}

static const char *box_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    (void)ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    return sweep_leftovers(rt); /* the inner sleep's timer is gone */
}

static void test_cancel_sweep_future_box(void **state)
{
    (void)state;
    static box_case bc;
    weft_sweep_case c = { box_build, box_check, NULL, &bc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2); /* armed, then fired */
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&c, &o);
}

int main(void)
{
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup_g_rt, rt_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_box_polls_and_drops_the_inner_future),
        RT(test_box_dropped_pending_or_unfilled),
        RT(test_box_large_alignment),
        RT(test_box_spawned),
        SIM(test_box_spawned),
        RT(test_box_misuse),
        RT(test_rc_drops_once_at_the_last_release),
        RT(test_rc_across_threads),
        RT(test_cancel_sweep_future_box),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
