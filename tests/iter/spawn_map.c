/* Tests for iter/spawn_map.c: each item's future spawned as a task, up to
 * n at once — on the multi-thread runtime and on chaos sims: every item
 * exactly once, input order kept when asked (completion order otherwise,
 * seen out of order at least once), at most n jobs alive and n reached;
 * an early drop aborts the tasks still running (jobs that never finish
 * are dropped), with the counting allocator showing every task freed;
 * flags and misuse; and the cancel sweep over weft_stream_next, both
 * orders. */
#include "iter/conc_support.h"

#include <sched.h>

#define NMAX 8

typedef struct stage {
    weft_iter_range up;
    weft_iter_spawn_map m;
    weft_iter_spawn_slot slots[NMAX];
} stage;

static drain g_d;

/* Range 0..total through spawn_map(n) on `rt`; stop after `stop` items
 * (0: all) and drop the stage. `waits`: NULL (3 - x % 4) or fixed. */
static const char *run_stage(weft_rt *rt, uint64_t total, size_t n, unsigned order, size_t stop,
                             int *waits, size_t *swaps)
{
    static stage p;
    jobs_reset();
    assert_int_equal(weft_iter_range_init(&p.up, 0, total, 1), 0);
    assert_int_equal(weft_iter_spawn_map_init(&p.m, &p.up.base, rt, make_job, waits,
                                              sizeof(job), sizeof(uint64_t), n, order,
                                              p.slots, NMAX),
                     0);
    drain_init(&g_d, &p.m.base, stop);
    assert_int_equal(weft_block_on(rt, &g_d.base, NULL, 0), 0);
    const char *bad = NULL;
    if (!stop)
        bad = check_items(g_d.got, g_d.n, 0, total, order == WEFT_ITER_ORDERED, swaps);
    else if (g_d.n != stop)
        bad = "stopped at the wrong count";
    assert_true(weft_iter_spawn_map_in_flight(&p.m) <= n);
    weft_stream_drop(&p.m.base);
    assert_int_equal(weft_iter_spawn_map_error(&p.m), 0);
    /* Aborted tasks drop their jobs at their next turn: wait for that. */
    for (int i = 0; i < 100000 && atomic_load(&g_made) != atomic_load(&g_dropped); i++) {
        if (rt_is_sim(rt))
            rt_settle(rt);
        else
            sched_yield();
    }
    if (!bad && atomic_load(&g_made) != atomic_load(&g_dropped))
        bad = "a job made was not dropped exactly once";
    /* The bound is never passed; that it is reached is run_abort's check
     * (its jobs wait, so all n are in flight at once): here jobs finish
     * while others are spawned, so how many overlap depends on timing. */
    long mx = atomic_load(&g_max_live);
    if (!bad && mx > (long)n) {
        static char why[128];
        snprintf(why, sizeof why, "jobs alive at most %ld, want n = %zu", mx, n);
        bad = why;
    }
    return bad;
}

/* A future that polls a stream once and is READY (the stage spawns its
 * first n tasks). */
typedef struct poke {
    weft_future base;
    weft_iter_spawn_map *m;
} poke;
static weft_poll poke_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    weft_iter_spawn_map *m = ((poke *)f)->m;
    uint64_t v;
    assert_int_equal(weft_stream_poll_next(&m->base, cx, &v), WEFT_NEXT_PENDING);
    /* A chaos PENDING from the upstream may come first (it woke us). */
    return weft_iter_spawn_map_in_flight(m) == m->n_ ? WEFT_READY : WEFT_PENDING;
}
static const weft_future_ops poke_ops = { .name = "test_poke", .out_size = 0, .poll = poke_poll };

/* n tasks that never finish, then the stage dropped: each is aborted. */
static const char *run_abort(weft_rt *rt, size_t n)
{
    static stage p;
    jobs_reset();
    int never = -1;
    assert_int_equal(weft_iter_range_init(&p.up, 0, 100, 1), 0);
    assert_int_equal(weft_iter_spawn_map_init(&p.m, &p.up.base, rt, make_job, &never,
                                              sizeof(job), sizeof(uint64_t), n,
                                              WEFT_ITER_UNORDERED, p.slots, NMAX),
                     0);
    poke k = { .m = &p.m };
    weft_future_init(&k.base, &poke_ops, 0);
    assert_int_equal(weft_block_on(rt, &k.base, NULL, 0), 0);
    assert_int_equal(weft_iter_spawn_map_in_flight(&p.m), n);
    weft_stream_drop(&p.m.base);
    for (int i = 0; i < 100000 && atomic_load(&g_dropped) != (long)n; i++) {
        if (rt_is_sim(rt))
            rt_settle(rt);
        else
            sched_yield();
    }
    return atomic_load(&g_made) == (long)n && atomic_load(&g_dropped) == (long)n
               ? NULL
               : "aborted tasks did not drop their jobs";
}

static void test_spawn_map_on_the_runtime(void **state)
{
    (void)state;
    assert_int_equal(counting_alloc_install(), 0);
    weft_rt *rt = rt_start(2);
    size_t swaps = 0, any = 0;
    for (unsigned order = 0; order < 2; order++)
        for (size_t n = 1; n <= NMAX; n += 3) {
            assert_null(run_stage(rt, 300, n, order, 0, NULL, &swaps));
            if (order == WEFT_ITER_UNORDERED)
                any += swaps;
            assert_null(run_stage(rt, 300, n, order, 17, NULL, NULL));
            assert_null(run_abort(rt, n));
        }
    (void)any;
    /* Completion order: item 0 finishes only after later ones came out
     * (ordered mode would wait for it forever: its window is full). */
    int slow = -2;
    assert_null(run_stage(rt, 50, 4, WEFT_ITER_UNORDERED, 0, &slow, &swaps));
    assert_true(swaps > 0);
    weft_rt_shutdown(rt);
    assert_int_equal(counting_alloc_uninstall("spawn_map leaked"), 0);
}

/* Polled with waker A, then with waker B while every task still runs:
 * a finishing task must wake B (the handles re-registered), not A. */
static void test_spawn_map_follows_a_new_waker(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(2);
    static stage p;
    jobs_reset();
    atomic_store(&g_gate, 0);
    int gated = -4;
    assert_int_equal(weft_iter_range_init(&p.up, 0, 3, 1), 0);
    assert_int_equal(weft_iter_spawn_map_init(&p.m, &p.up.base, rt, make_job, &gated,
                                              sizeof(job), 8, 3, WEFT_ITER_UNORDERED,
                                              p.slots, NMAX),
                     0);
    counting_waker a, b;
    cw_init(&a);
    cw_init(&b);
    uint64_t v;
    assert_int_equal(pn(&p.m.base, &a, &v), WEFT_NEXT_PENDING);
    assert_int_equal(pn(&p.m.base, &b, &v), WEFT_NEXT_PENDING);
    long a0 = cw_woken(&a);
    atomic_store(&g_gate, 1);
    for (int i = 0; i < 100000 && cw_woken(&b) == 0; i++)
        sched_yield();
    assert_true(cw_woken(&b) > 0);
    assert_int_equal(cw_woken(&a), a0);
    size_t got = 0;
    for (int i = 0; i < 1000000 && got < 3; i++)
        if (pn(&p.m.base, &b, &v) == WEFT_NEXT_ITEM)
            got++;
    assert_int_equal(got, 3);
    weft_stream_drop(&p.m.base);
    weft_rt_shutdown(rt);
    assert_int_equal(cw_outstanding(&a), 0);
    assert_int_equal(cw_outstanding(&b), 0);
}

static void test_spawn_map_on_chaos_sims(void **state)
{
    (void)state;
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        assert_int_equal(counting_alloc_install(), 0);
        weft_rt *rt = chaos_sim(seed);
        unsigned order = seed % 2;
        size_t n = 1 + seed % NMAX;
        const char *bad = run_stage(rt, 200, n, order, 0, NULL, NULL);
        if (!bad)
            bad = run_stage(rt, 200, n, order, 1 + seed % 13, NULL, NULL);
        if (!bad)
            bad = run_abort(rt, n);
        if (bad)
            fail_msg("seed %llu: %s", (unsigned long long)seed, bad);
        chaos_sim_done(rt, &dealt);
        assert_int_equal(counting_alloc_uninstall("spawn_map leaked on a sim"), 0);
    }
    assert_true(dealt > 0);
}

static void test_spawn_map_flags_and_misuse(void **state)
{
    (void)state;
    weft_iter_spawn_slot slots[2];
    for (int fu = 0; fu < 2; fu++) {
        scripted sc;
        SCRIPT(&sc, &scripted_ops, fu ? WEFT_F_SEND : 0, 1);
        weft_iter_spawn_map m;
        assert_int_equal(weft_iter_spawn_map_init(&m, &sc.base, NULL, make_job, NULL,
                                                  sizeof(job), 8, 2, 0, slots, 2),
                         0);
        ASSERT_SEND_IFF(m.base.flags, fu);
        weft_stream_drop(&m.base);
    }
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1);
    weft_iter_spawn_map m;
    int before = misuse_count();
#define BAD(...) assert_int_equal(weft_iter_spawn_map_init(__VA_ARGS__), -EINVAL)
    BAD(&m, &sc.base, NULL, NULL, NULL, sizeof(job), 8, 2, 0, slots, 2);
    BAD(&m, &sc.base, NULL, make_job, NULL, sizeof(job), 8, 0, 0, slots, 2);
    BAD(&m, &sc.base, NULL, make_job, NULL, sizeof(job), 8, 3, 0, slots, 2);
    BAD(&m, &sc.base, NULL, make_job, NULL, sizeof(job), 8, 2, 5, slots, 2);
    BAD(&m, &sc.base, NULL, make_job, NULL, WEFT_ITER_THEN_FUT_MAX + 1, 8, 2, 0, slots, 2);
    BAD(&m, &sc.base, NULL, make_job, NULL, sizeof(job), WEFT_ITER_ITEM_MAX + 1, 2, 0, slots,
        2);
    BAD(&m, &sc.base, NULL, make_job, NULL, sizeof(job), 8, 2, 0, NULL, 2);
#undef BAD
    assert_misuse_since(before, 7, "weft_iter_spawn_map_init");
}

static weft_stream *make_ord(conc_sweep *cs, weft_rt *rt)
{
    static weft_iter_spawn_slot slots[3];
    weft_iter_spawn_map *m = (weft_iter_spawn_map *)cs->st.b;
    return weft_iter_spawn_map_init(m, &cs->up.base, rt, make_job, NULL, sizeof(job), 8, 3,
                                    WEFT_ITER_ORDERED, slots, 3)
               ? NULL
               : &m->base;
}

static weft_stream *make_unord(conc_sweep *cs, weft_rt *rt)
{
    static weft_iter_spawn_slot slots[3];
    weft_iter_spawn_map *m = (weft_iter_spawn_map *)cs->st.b;
    return weft_iter_spawn_map_init(m, &cs->up.base, rt, make_job, NULL, sizeof(job), 8, 3,
                                    WEFT_ITER_UNORDERED, slots, 3)
               ? NULL
               : &m->base;
}

static void test_cancel_sweep_spawn_map(void **state)
{
    (void)state;
    conc_sweep_run("spawn_map", make_ord, true);
    conc_sweep_run("spawn_map unordered", make_unord, false);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_spawn_map_on_the_runtime),
        T(test_spawn_map_follows_a_new_waker),
        T(test_spawn_map_on_chaos_sims),
        T(test_spawn_map_flags_and_misuse),
        T(test_cancel_sweep_spawn_map),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
