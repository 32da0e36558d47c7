/* Tests for iter/join.c: join_futures — by hand (READY once every branch
 * is, outputs in each branch's out, each branch dropped once as it
 * completes, the coop budget), an early drop drops the unfinished ones,
 * n 0, flags and misuse, on the multi-thread runtime and on chaos sims,
 * and the cancel sweep over the join. */
#include "iter/conc_support.h"
#include "iter/yield_job.h"

typedef struct tick {
    weft_future base;
    int left; /* PENDINGs (waking itself) before READY; -1: never */
    uint64_t v;
    unsigned *polls, *drops;
} tick;

static weft_poll tick_poll(weft_future *f, weft_cx *cx, void *out)
{
    tick *t = (tick *)f;
    (*t->polls)++;
    if (t->left < 0)
        return WEFT_PENDING;
    if (t->left > 0) {
        t->left--;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    memcpy(out, &t->v, sizeof t->v);
    return WEFT_READY;
}

static void tick_drop(weft_future *f)
{
    (*((tick *)f)->drops)++;
}

static const weft_future_ops tick_ops = {
    .name = "test_tick", .out_size = sizeof(uint64_t), .poll = tick_poll, .drop = tick_drop,
};

static void tick_init(tick *t, int left, uint64_t v, unsigned *polls, unsigned *drops,
                      uint32_t flags)
{
    weft_future_init(&t->base, &tick_ops, flags);
    t->left = left;
    t->v = v;
    t->polls = polls;
    t->drops = drops;
}

static weft_poll poll_by_hand(weft_future *f, counting_waker *c)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(f, &cx, NULL);
}

static void test_join_futures_ready_when_every_branch_is(void **state)
{
    (void)state;
    tick t[3];
    unsigned polls[3] = { 0 }, drops[3] = { 0 };
    uint64_t out[3] = { 0 };
    weft_join_branch br[3];
    for (int i = 0; i < 3; i++) {
        tick_init(&t[i], i, 10 * (uint64_t)i + 1, &polls[i], &drops[i], WEFT_F_SEND);
        br[i].fut = &t[i].base;
        br[i].out = &out[i];
    }
    weft_join_futures j;
    assert_int_equal(weft_join_futures_init(&j, br, 3), 0);
    counting_waker c;
    cw_init(&c);
    assert_int_equal(poll_by_hand(&j.base, &c), WEFT_PENDING);
    assert_true(br[0].done);
    assert_int_equal(out[0], 1);
    assert_int_equal(drops[0], 1); /* dropped as soon as it completed */
    assert_false(br[1].done);
    assert_int_equal(poll_by_hand(&j.base, &c), WEFT_PENDING);
    assert_int_equal(polls[0], 1); /* a finished branch is not polled again */
    assert_int_equal(poll_by_hand(&j.base, &c), WEFT_READY);
    for (int i = 0; i < 3; i++) {
        assert_true(br[i].done);
        assert_int_equal(out[i], 10 * (uint64_t)i + 1);
        assert_int_equal(drops[i], 1);
        assert_int_equal(polls[i], (unsigned)i + 1);
    }
    weft_future_drop(&j.base);
    for (int i = 0; i < 3; i++)
        assert_int_equal(drops[i], 1); /* not twice */
    /* n 0: READY at once. */
    assert_int_equal(weft_join_futures_init(&j, NULL, 0), 0);
    assert_int_equal(poll_by_hand(&j.base, &c), WEFT_READY);
    weft_future_drop(&j.base);
}

static void test_join_futures_drop_drops_the_unfinished(void **state)
{
    (void)state;
    tick t[3];
    unsigned polls[3] = { 0 }, drops[3] = { 0 };
    uint64_t out[3] = { 0 };
    weft_join_branch br[3];
    int left[3] = { 0, -1, 5 };
    for (int i = 0; i < 3; i++) {
        tick_init(&t[i], left[i], 7, &polls[i], &drops[i], WEFT_F_SEND);
        br[i].fut = &t[i].base;
        br[i].out = &out[i];
    }
    weft_join_futures j;
    assert_int_equal(weft_join_futures_init(&j, br, 3), 0);
    counting_waker c;
    cw_init(&c);
    assert_int_equal(poll_by_hand(&j.base, &c), WEFT_PENDING);
    weft_future_drop(&j.base);
    for (int i = 0; i < 3; i++)
        assert_int_equal(drops[i], 1);
    assert_int_equal(out[0], 7); /* what finished stays written */
    assert_int_equal(out[1], 0);
    /* Dropped unpolled: every branch dropped once. */
    for (int i = 0; i < 3; i++)
        tick_init(&t[i], 0, 7, &polls[i], &drops[i], WEFT_F_SEND);
    assert_int_equal(weft_join_futures_init(&j, br, 3), 0);
    weft_future_drop(&j.base);
    for (int i = 0; i < 3; i++)
        assert_int_equal(drops[i], 2);
}

static void test_join_futures_respects_the_coop_budget(void **state)
{
    (void)state;
    tick t;
    unsigned polls = 0, drops = 0;
    uint64_t out = 0;
    tick_init(&t, 0, 3, &polls, &drops, WEFT_F_SEND);
    weft_join_branch br = { &t.base, &out, false };
    weft_join_futures j;
    assert_int_equal(weft_join_futures_init(&j, &br, 1), 0);
    counting_waker c;
    cw_init(&c);
    weft_waker w = cw_waker(&c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    cx.budget = 0;
    assert_int_equal(weft_future_poll(&j.base, &cx, NULL), WEFT_PENDING);
    assert_int_equal(polls, 0);
    assert_true(cw_woken(&c) >= 1);
    cx.budget = 4;
    assert_int_equal(weft_future_poll(&j.base, &cx, NULL), WEFT_READY);
    weft_future_drop(&j.base);
}

static void test_join_futures_flags_and_misuse(void **state)
{
    (void)state;
    tick t[2];
    unsigned polls[2] = { 0 }, drops[2] = { 0 };
    uint64_t out[2];
    weft_join_branch br[2];
    weft_join_futures j;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            tick_init(&t[0], 0, 1, &polls[0], &drops[0], a ? WEFT_F_SEND : 0);
            tick_init(&t[1], 0, 1, &polls[1], &drops[1], b ? WEFT_F_SEND : 0);
            br[0] = (weft_join_branch){ &t[0].base, &out[0], false };
            br[1] = (weft_join_branch){ &t[1].base, &out[1], false };
            assert_int_equal(weft_join_futures_init(&j, br, 2), 0);
            ASSERT_SEND_IFF(j.base.flags, a && b);
            weft_future_drop(&j.base);
        }
    int before = misuse_count();
    assert_int_equal(weft_join_futures_init(NULL, br, 2), -EINVAL);
    assert_int_equal(weft_join_futures_init(&j, NULL, 2), -EINVAL);
    br[1].out = NULL;
    assert_int_equal(weft_join_futures_init(&j, br, 2), -EINVAL);
    br[1].out = &out[1];
    br[0].fut = NULL;
    assert_int_equal(weft_join_futures_init(&j, br, 2), -EINVAL);
    assert_misuse_since(before, 4, "weft_join_futures_init");
    assert_int_equal(drops[0] + drops[1], 8); /* the failed inits dropped nothing */
}

/* ---- on the runtimes ------------------------------------------------------------ */

#define JN 12
typedef union job_st {
    max_align_t a;
    unsigned char b[64];
} job_st;

typedef struct join_run {
    job_st st[JN];
    uint64_t x[JN], out[JN];
    weft_join_branch br[JN];
    weft_join_futures j;
} join_run;

/* Jobs 1..n joined: odd x await weft_yield 1 + x % 3 times, even x
 * wake themselves 3 - x % 4 times. */
static void join_run_init(join_run *r, size_t n)
{
    jobs_reset();
    for (size_t i = 0; i < n; i++) {
        r->x[i] = i + 1;
        r->out[i] = 0;
        r->br[i].fut = (i % 2 ? make_job : make_yjob)(NULL, &r->x[i], r->st[i].b, sizeof r->st[i]);
        r->br[i].out = &r->out[i];
    }
    assert_int_equal(weft_join_futures_init(&r->j, r->br, n), 0);
}

static const char *join_run_check(join_run *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!r->br[i].done || r->out[i] != 10 * r->x[i])
            return "a branch's output is missing or wrong";
    if (atomic_load(&g_made) != (long)n || atomic_load(&g_dropped) != (long)n)
        return "a job was not dropped exactly once";
    return NULL;
}

static void test_join_futures_on_the_runtime_and_chaos_sims(void **state)
{
    (void)state;
    static join_run r;
    assert_int_equal(counting_alloc_install(), 0);
    weft_rt *rt = rt_start(2);
    for (size_t n = 1; n <= JN; n += 5) {
        join_run_init(&r, n);
        assert_int_equal(weft_block_on(rt, &r.j.base, NULL, 0), 0);
        weft_future_drop(&r.j.base);
        assert_null(join_run_check(&r, n));
    }
    weft_rt_shutdown(rt);
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        rt = chaos_sim(seed);
        size_t n = 1 + seed % JN;
        join_run_init(&r, n);
        assert_int_equal(weft_block_on(rt, &r.j.base, NULL, 0), 0);
        weft_future_drop(&r.j.base);
        const char *bad = join_run_check(&r, n);
        if (bad)
            fail_msg("seed %llu: %s", (unsigned long long)seed, bad);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
    assert_int_equal(counting_alloc_uninstall("join leaked"), 0);
}

/* ---- the cancel sweep --------------------------------------------------------- */

static int js_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    join_run *r = ctx;
    join_run_init(r, 4);
    *fut = &r->j.base;
    *out = NULL;
    return 0;
}

static const char *js_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    join_run *r = ctx;
    if (run->completed) {
        const char *bad = join_run_check(r, 4);
        if (bad)
            return sweep_say("k=%u completed: %s", run->k, bad);
    } else {
        /* Every job dropped exactly once: finished ones at completion,
         * the rest by the join's drop; finished outputs are right. */
        if (atomic_load(&g_made) != 4 || atomic_load(&g_dropped) != 4)
            return sweep_say("k=%u: %ld made, %ld dropped", run->k, atomic_load(&g_made),
                             atomic_load(&g_dropped));
        for (size_t i = 0; i < 4; i++)
            if (r->out[i] != 0 && r->out[i] != 10 * r->x[i])
                return sweep_say("k=%u: branch %zu wrote a wrong output", run->k, i);
    }
    return sweep_leftovers(rt);
}

static void js_teardown(void *ctx)
{
    (void)ctx;
}

static void test_cancel_sweep_join_futures(void **state)
{
    (void)state;
    static join_run r;
    weft_sweep_case c = { js_build, js_check, js_teardown, &r };
    assert_true(sweep_both(&c) >= 2);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_join_futures_ready_when_every_branch_is),
        T(test_join_futures_drop_drops_the_unfinished),
        T(test_join_futures_respects_the_coop_budget),
        T(test_join_futures_flags_and_misuse),
        T(test_join_futures_on_the_runtime_and_chaos_sims),
        T(test_cancel_sweep_join_futures),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
