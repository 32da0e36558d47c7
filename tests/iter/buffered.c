/* Tests for iter/buffered.c: buffered (input order) and buffer_unordered
 * (completion order) with up to n futures in caller slots — by hand (the
 * bound on the upstream, order, PENDING passed on, DONE, futures dropped
 * with the stage and never the upstream), on the multi-thread runtime and
 * on chaos sims (every item exactly once, order kept or not, at most n
 * alive and n reached, an early drop leaves nothing and no allocation),
 * misuse, a poll polls only the futures woken since the last one, and the
 * cancel sweep over weft_stream_next for both orders. */
#include "iter/conc_support.h"

#define NMAX 8
#define SLOT WEFT_ITER_BUFFERED_SLOT_SIZE(sizeof(job), sizeof(uint64_t))

typedef struct stage {
    weft_iter_range up;
    weft_iter_buffered b;
    union {
        max_align_t align_;
        unsigned char b[NMAX * SLOT];
    } slots;
} stage;

static void stage_init(stage *p, uint64_t lo, uint64_t hi, size_t n, unsigned order, int *waits)
{
    assert_int_equal(weft_iter_range_init(&p->up, lo, hi, 1), 0);
    assert_int_equal(weft_iter_buffered_init(&p->b, &p->up.base, make_job, waits, sizeof(job),
                                             sizeof(uint64_t), WEFT_F_SEND, n, order,
                                             p->slots.b, sizeof p->slots),
                     0);
}

static void test_buffered_by_hand_bound_order_and_drop(void **state)
{
    (void)state;
    for (unsigned order = 0; order < 2; order++) {
        jobs_reset();
        scripted sc;
        /* Waits are 3 - x % 4: 3 finishes first, then 2, then 1. */
        SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, 2, 3, 5, S_DONE);
        weft_iter_buffered b;
        union {
            max_align_t a;
            unsigned char b[3 * SLOT];
        } slots;
        assert_int_equal(weft_iter_buffered_init(&b, &sc.base, make_job, NULL, sizeof(job), 8,
                                                 WEFT_F_SEND, 3, order, slots.b, sizeof slots),
                         0);
        counting_waker c;
        cw_init(&c);
        uint64_t v = 0, got[4];
        size_t n = 0;
        /* Ordered: 1 is not done yet; unordered: 3 (no waits) comes out. */
        weft_next r0 = pn(&b.base, &c, &v);
        assert_int_equal(sc.polls, 3); /* the bound: 3 taken, the upstream left alone */
        if (order == WEFT_ITER_ORDERED) {
            assert_int_equal(r0, WEFT_NEXT_PENDING);
            assert_int_equal(weft_iter_buffered_in_flight(&b), 3);
            assert_true(cw_woken(&c) >= 1); /* the jobs woke the poll's waker */
        } else {
            assert_int_equal(r0, WEFT_NEXT_ITEM);
            got[n++] = v;
        }
        for (int guard = 0; n < 4 && guard < 50; guard++) {
            weft_next r = pn(&b.base, &c, &v);
            assert_int_not_equal(r, WEFT_NEXT_DONE);
            if (r == WEFT_NEXT_ITEM)
                got[n++] = v;
            assert_true(weft_iter_buffered_in_flight(&b) <= 3);
        }
        assert_int_equal(n, 4);
        assert_int_equal(pn(&b.base, &c, &v), WEFT_NEXT_DONE);
        if (order == WEFT_ITER_ORDERED) {
            assert_int_equal(got[0], 10);
            assert_int_equal(got[1], 20);
            assert_int_equal(got[2], 30);
            assert_int_equal(got[3], 50);
        } else {
            assert_int_equal(got[0], 30); /* waits 0: first done */
        }
        assert_int_equal(got[0] + got[1] + got[2] + got[3], 110); /* each once */
        assert_int_equal(atomic_load(&g_max_live), 3);
        weft_stream_drop(&b.base);
        assert_int_equal(atomic_load(&g_made), atomic_load(&g_dropped));
        assert_int_equal(sc.after_done, 0);
    }
    /* Dropped with futures in flight: they go, the upstream stays. */
    jobs_reset();
    stage p;
    int never = -1;
    stage_init(&p, 0, 10, 4, WEFT_ITER_ORDERED, &never);
    counting_waker c;
    cw_init(&c);
    uint64_t v;
    assert_int_equal(pn(&p.b.base, &c, &v), WEFT_NEXT_PENDING);
    assert_int_equal(atomic_load(&g_live), 4);
    weft_stream_drop(&p.b.base);
    assert_int_equal(atomic_load(&g_live), 0);
    assert_int_equal(next_u64(&p.up.base, &c), 4); /* the upstream goes on */
    assert_int_equal(misuse_count(), 0);
}

/* Run range lo..hi through a stage of n on `rt`, stopping after `stop`
 * items (0: all), then drop the stage. */
static drain g_d;
static const char *run_stage(weft_rt *rt, size_t n, unsigned order, size_t stop, size_t *swaps)
{
    static stage p;
    jobs_reset();
    stage_init(&p, 0, 300, n, order, NULL);
    drain_init(&g_d, &p.b.base, stop);
    assert_int_equal(weft_block_on(rt, &g_d.base, NULL, 0), 0);
    const char *bad = NULL;
    if (!stop)
        bad = check_items(g_d.got, g_d.n, 0, 300, order == WEFT_ITER_ORDERED, swaps);
    else if (g_d.n != stop)
        bad = "stopped at the wrong count";
    weft_stream_drop(&p.b.base);
    if (!bad && atomic_load(&g_made) != atomic_load(&g_dropped))
        bad = "a job made was not dropped exactly once";
    /* Chaos PENDINGs from the upstream may keep the window from filling:
     * on a sim only the bound is checked. */
    long mx = atomic_load(&g_max_live);
    if (!bad && (mx > (long)n || (!rt_is_sim(rt) && mx != (long)n))) {
        static char why[128];
        snprintf(why, sizeof why, "in flight at most %ld, want n = %zu (stop %zu)",
                 atomic_load(&g_max_live), n, stop);
        bad = why;
    }
    return bad;
}

static void test_buffered_on_the_runtime(void **state)
{
    (void)state;
    assert_int_equal(counting_alloc_install(), 0);
    weft_rt *rt = rt_start(2);
    size_t swaps = 0;
    for (unsigned order = 0; order < 2; order++)
        for (size_t n = 1; n <= NMAX; n += 3) {
            assert_null(run_stage(rt, n, order, 0, &swaps));
            assert_null(run_stage(rt, n, order, 17, NULL));
        }
    assert_null(run_stage(rt, 8, WEFT_ITER_UNORDERED, 0, &swaps));
    assert_true(swaps > 0); /* unordered really is completion order */
    weft_rt_shutdown(rt);
    assert_int_equal(counting_alloc_uninstall("buffered leaked"), 0);
}

static void test_buffered_on_chaos_sims(void **state)
{
    (void)state;
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        assert_int_equal(counting_alloc_install(), 0);
        weft_rt *rt = chaos_sim(seed);
        unsigned order = seed % 2;
        size_t n = 1 + seed % NMAX;
        const char *bad = run_stage(rt, n, order, 0, NULL);
        if (bad)
            fail_msg("seed %llu: %s", (unsigned long long)seed, bad);
        bad = run_stage(rt, n, order, 1 + seed % 13, NULL);
        if (bad)
            fail_msg("seed %llu (early drop): %s", (unsigned long long)seed, bad);
        chaos_sim_done(rt, &dealt);
        assert_int_equal(counting_alloc_uninstall("buffered leaked on a sim"), 0);
    }
    assert_true(dealt > 0);
}

static weft_future *make_bad(void *ctx, const void *item, void *storage, size_t size)
{
    (void)ctx, (void)size;
    job *j = storage;
    weft_future_init(&j->base, &job_ops, 0); /* not Send */
    memcpy(&j->x, item, sizeof j->x);
    j->waits = 0;
    atomic_fetch_add(&g_live, 1);
    return &j->base;
}

static void test_buffered_flags_and_misuse(void **state)
{
    (void)state;
    union {
        max_align_t a;
        unsigned char b[2 * SLOT + 1];
    } slots;
    for (int fu = 0; fu < 2; fu++)
        for (int ff = 0; ff < 2; ff++) {
            scripted sc;
            SCRIPT(&sc, &scripted_ops, fu ? WEFT_F_SEND : 0, 1);
            weft_iter_buffered b;
            assert_int_equal(weft_iter_buffered_init(&b, &sc.base, make_job, NULL, sizeof(job),
                                                     8, ff ? WEFT_F_SEND : 0, 2,
                                                     WEFT_ITER_ORDERED, slots.b, 2 * SLOT),
                             0);
            ASSERT_SEND_IFF(b.base.flags, fu && ff);
            weft_stream_drop(&b.base);
        }
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1, 2);
    weft_iter_buffered b;
    int before = misuse_count();
#define BAD(...) assert_int_equal(weft_iter_buffered_init(__VA_ARGS__), -EINVAL)
    BAD(&b, &sc.base, NULL, NULL, sizeof(job), 8, WEFT_F_SEND, 2, 0, slots.b, 2 * SLOT);
    BAD(&b, &sc.base, make_job, NULL, sizeof(job), 8, WEFT_F_SEND, 0, 0, slots.b, 2 * SLOT);
    BAD(&b, &sc.base, make_job, NULL, sizeof(job), 8, WEFT_F_SEND, 2, 7, slots.b, 2 * SLOT);
    BAD(&b, &sc.base, make_job, NULL, sizeof(job), 8, WEFT_F_SEND, 2, 0, slots.b, 2 * SLOT - 1);
    BAD(&b, &sc.base, make_job, NULL, sizeof(job), 8, WEFT_F_SEND, 2, 0, slots.b + 1, 2 * SLOT);
    BAD(&b, &sc.base, make_job, NULL, sizeof(job), 8, WEFT_F_SEND, 2, 0, NULL, 2 * SLOT);
#undef BAD
    assert_misuse_since(before, 6, "weft_iter_buffered_init");
    /* fn making a future that is not Send for a Send stage. */
    jobs_reset();
    assert_int_equal(weft_iter_buffered_init(&b, &sc.base, make_bad, NULL, sizeof(job), 8,
                                             WEFT_F_SEND, 2, 0, slots.b, 2 * SLOT),
                     0);
    counting_waker c;
    cw_init(&c);
    uint64_t v = 0;
#ifndef NDEBUG
    assert_int_equal(pn(&b.base, &c, &v), WEFT_NEXT_DONE);
    assert_misuse_since(before, 7, "not Send");
    assert_int_equal(atomic_load(&g_live), 0); /* dropped */
#else
    (void)v, (void)c;
#endif
    weft_stream_drop(&b.base);
}

/* ---- only woken futures are polled ------------------------------------------- */

/* A future per item x that counts its polls in g_polls[x], keeps its
 * waker in g_wakers[x], and is READY (10 x) once g_go[x] is set. */
#define WMAX 100
static unsigned g_polls[WMAX];
static bool g_go[WMAX];
static weft_waker g_wakers[WMAX];

typedef struct parked {
    weft_future base;
    uint64_t x;
} parked;

static weft_poll parked_poll(weft_future *f, weft_cx *cx, void *out)
{
    parked *p = (parked *)f;
    g_polls[p->x]++;
    if (g_go[p->x]) {
        uint64_t v = 10 * p->x;
        memcpy(out, &v, sizeof v);
        return WEFT_READY;
    }
    weft_waker_drop(&g_wakers[p->x]);
    g_wakers[p->x] = weft_waker_clone(cx->waker);
    return WEFT_PENDING;
}

static void parked_drop(weft_future *f)
{
    weft_waker_drop(&g_wakers[((parked *)f)->x]);
}

static const weft_future_ops parked_ops = {
    .name = "test_parked", .out_size = sizeof(uint64_t), .poll = parked_poll,
    .drop = parked_drop,
};

static weft_future *make_parked(void *ctx, const void *item, void *storage, size_t size)
{
    (void)ctx;
    assert_true(size >= sizeof(parked));
    parked *p = storage;
    weft_future_init(&p->base, &parked_ops, WEFT_F_SEND);
    memcpy(&p->x, item, sizeof p->x);
    return &p->base;
}

static unsigned polls_sum(size_t n)
{
    unsigned t = 0;
    for (size_t i = 0; i < n; i++)
        t += g_polls[i];
    return t;
}

static void test_buffered_polls_only_the_woken_futures(void **state)
{
    (void)state;
    static union {
        max_align_t a;
        unsigned char b[WMAX * SLOT];
    } slots;
    for (unsigned order = 0; order < 2; order++) {
        size_t n = order ? 64 : WMAX;
        memset(g_polls, 0, sizeof g_polls);
        memset(g_go, 0, sizeof g_go);
        weft_iter_range up;
        assert_int_equal(weft_iter_range_init(&up, 0, n, 1), 0);
        weft_iter_buffered b;
        assert_int_equal(weft_iter_buffered_init(&b, &up.base, make_parked, NULL, sizeof(job),
                                                 8, WEFT_F_SEND, n, order, slots.b, sizeof slots),
                         0);
        counting_waker c;
        cw_init(&c);
        uint64_t v = 0;
        assert_int_equal(pn(&b.base, &c, &v), WEFT_NEXT_PENDING);
        assert_int_equal(polls_sum(n), n); /* each its first poll */
        assert_int_equal(pn(&b.base, &c, &v), WEFT_NEXT_PENDING);
        assert_int_equal(polls_sum(n), n); /* none woken: none polled */
        /* One woken: one polled (unordered: it is READY and comes out). */
        size_t k = n - 30;
        g_go[k] = !order;
        long before = cw_woken(&c);
        weft_waker_wake_by_ref(&g_wakers[k]);
        assert_true(cw_woken(&c) > before); /* the stage's task was woken */
        assert_int_equal(pn(&b.base, &c, &v), order ? WEFT_NEXT_PENDING : WEFT_NEXT_ITEM);
        assert_int_equal(polls_sum(n), n + 1);
        assert_int_equal(g_polls[k], 2);
        if (!order)
            assert_int_equal(v, 10 * k);
        /* Ordered: the head woken and ready comes out after one poll. */
        if (order) {
            g_go[0] = true;
            weft_waker_wake_by_ref(&g_wakers[0]);
            assert_int_equal(pn(&b.base, &c, &v), WEFT_NEXT_ITEM);
            assert_int_equal(v, 0);
            assert_int_equal(polls_sum(n), n + 2);
        }
        weft_stream_drop(&b.base);
        assert_int_equal(cw_outstanding(&c), 0);
    }
}

static weft_stream *make_ord(conc_sweep *cs, weft_rt *rt)
{
    (void)rt;
    static union {
        max_align_t a;
        unsigned char b[3 * SLOT];
    } slots;
    weft_iter_buffered *b = (weft_iter_buffered *)cs->st.b;
    return weft_iter_buffered_init(b, &cs->up.base, make_job, NULL, sizeof(job), 8,
                                   WEFT_F_SEND, 3, WEFT_ITER_ORDERED, slots.b, sizeof slots)
               ? NULL
               : &b->base;
}

static weft_stream *make_unord(conc_sweep *cs, weft_rt *rt)
{
    (void)rt;
    static union {
        max_align_t a;
        unsigned char b[2 * SLOT];
    } slots;
    weft_iter_buffered *b = (weft_iter_buffered *)cs->st.b;
    /* n 2: items 1 and 2 both wait, so the next needs two polls. */
    return weft_iter_buffered_init(b, &cs->up.base, make_job, NULL, sizeof(job), 8,
                                   WEFT_F_SEND, 2, WEFT_ITER_UNORDERED, slots.b, sizeof slots)
               ? NULL
               : &b->base;
}

static void test_cancel_sweep_buffered(void **state)
{
    (void)state;
    conc_sweep_run("buffered", make_ord, true);
    conc_sweep_run("buffer_unordered", make_unord, false);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_buffered_by_hand_bound_order_and_drop),
        T(test_buffered_on_the_runtime),
        T(test_buffered_on_chaos_sims),
        T(test_buffered_flags_and_misuse),
        T(test_buffered_polls_only_the_woken_futures),
        T(test_cancel_sweep_buffered),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
