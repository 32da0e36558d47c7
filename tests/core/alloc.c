/* Unit tests for core/alloc.c: the allocator hook (validation, every
 * allocation of a runtime's lifetime returned by shutdown), an
 * allocation-failure sweep over a whole runtime lifecycle, and
 * weft_strerror. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/co_future.h"
#include "support/countdown.h"
#include "support/rt_fixture.h"

/* ---- a counting, failure-injecting allocator -------------------------------------- */

/* Counts every allocation request; the `fail_at`-th one (1-based, 0: none)
 * returns NULL. Any thread may allocate: the counters are atomic. */
typedef struct counter {
    _Atomic long requests;
    _Atomic long live;
    _Atomic long frees;
    _Atomic long underflow; /* frees without a live allocation */
    _Atomic int failed;     /* the injected failure happened */
    long fail_at;
} counter;

static void *counter_alloc(size_t size, void *ctx)
{
    counter *c = ctx;
    /* Relaxed throughout: counters read by the test thread after the
     * runtime's threads were joined (pthread_join orders them). */
    long n = weft_atomic_fetch_add_relaxed(&c->requests, 1) + 1;
    if (n == c->fail_at) {
        weft_atomic_store_relaxed(&c->failed, 1);
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        weft_atomic_fetch_add_relaxed(&c->live, 1);
    return p;
}

static void counter_free(void *p, void *ctx)
{
    counter *c = ctx;
    if (!p)
        return;
    if (weft_atomic_fetch_sub_acq_rel(&c->live, 1) <= 0)
        weft_atomic_fetch_add_relaxed(&c->underflow, 1);
    weft_atomic_fetch_add_relaxed(&c->frees, 1);
    free(p);
}

static void counter_init(counter *c, long fail_at)
{
    weft_atomic_init(&c->requests, 0);
    weft_atomic_init(&c->live, 0);
    weft_atomic_init(&c->frees, 0);
    weft_atomic_init(&c->underflow, 0);
    weft_atomic_init(&c->failed, 0);
    c->fail_at = fail_at;
}

static void install(counter *c)
{
    weft_allocator a = { counter_alloc, counter_free, c };
    assert_int_equal(weft_set_allocator(&a), 0);
}

static int restore_default_allocator(void **state)
{
    (void)state;
    return weft_set_allocator(NULL) == 0 ? 0 : -1;
}

/* ---- futures used by the scenarios ------------------------------------------------- */

/* A job is a countdown (support/countdown.h) that yields once (a trip
 * through the run queue), then outputs its id. Its counts live in a
 * shared array, so every future can be checked dropped exactly once,
 * whoever dropped it. */
static void job_init(countdown *j, int id, countdown_counts *n)
{
    countdown_init(j, 1, id, &n[id], WEFT_F_SEND);
}

/* The same job with a large body: big enough that its task is allocated on
 * its own rather than carved from a shared block of task memory, so its
 * spawn is an allocation point of its own. */
typedef struct big_job {
    countdown j;
    unsigned char pad[2048];
} big_job;

/* Spawn job `id` (every third one big) on `rt`. A refused future is still
 * the caller's: dropped here. */
static int spawn_job(weft_rt *rt, int id, countdown_counts *n, weft_join *join)
{
    big_job b;
    job_init(&b.j, id, n);
    memset(b.pad, id & 0xff, sizeof b.pad);
    size_t size = id % 3 == 0 ? sizeof b : sizeof b.j;
    int rc = weft_spawn(rt, &b.j.base, size, join);
    if (rc != 0)
        weft_future_drop(&b.j.base); /* refused: still ours */
    return rc;
}

/* A task that spawns `fanout` jobs from its worker (so task blocks are
 * allocated and freed on workers, through their caches) and joins them. */
typedef struct fan {
    weft_future base;
    weft_co co;
    int fanout, i, sum, got;
    countdown_counts *n;
    int first_id;
    weft_join j;
} fan;

static weft_poll fan_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(fan, s);
    for (s->i = 0; s->i < s->fanout; s->i++) {
        {
            countdown jb;
            job_init(&jb, s->first_id + s->i, s->n);
            if (weft_spawn(NULL, &jb.base, sizeof jb, &s->j) != 0) {
                weft_future_drop(&jb.base); /* still ours */
                continue;
            }
        }
        WEFT_AWAIT(&s->co, cx, &s->j.base, &s->got);
        s->sum += s->got;
    }
    *(int *)out = s->sum;
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(fan, "test_fan", sizeof(int));

/* ---- weft_set_allocator ----------------------------------------------------------------- */

static void test_set_allocator_rejects_half_null_allocators(void **state)
{
    (void)state;
    counter c;
    counter_init(&c, 0);
    install(&c);
    weft_allocator only_alloc = { counter_alloc, NULL, &c };
    weft_allocator only_free = { NULL, counter_free, &c };
    weft_allocator neither = { NULL, NULL, &c };
    assert_int_equal(weft_set_allocator(&only_alloc), -EINVAL);
    assert_int_equal(weft_set_allocator(&only_free), -EINVAL);
    assert_int_equal(weft_set_allocator(&neither), -EINVAL);

    /* A rejected allocator changes nothing: the counting one stays. */
    weft_rt *rt = rt_start(1);
    assert_true(weft_atomic_load_relaxed(&c.requests) > 0);
    weft_rt_shutdown(rt);
    assert_int_equal(weft_atomic_load_relaxed(&c.live), 0);

    /* NULL restores malloc/free. */
    assert_int_equal(weft_set_allocator(NULL), 0);
    long before = weft_atomic_load_relaxed(&c.requests);
    rt = rt_start(1);
    weft_rt_shutdown(rt);
    assert_int_equal(weft_atomic_load_relaxed(&c.requests), before);
}

static void test_counting_allocator_sees_a_runtime_lifecycle_freed(void **state)
{
    (void)state;
    enum { JOBS = 64, FANS = 4, FANOUT = 16 };
    static countdown_counts n[JOBS + FANS * FANOUT];
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        countdown_counts_init(&n[i]);
    counter c;
    counter_init(&c, 0);
    install(&c);

    weft_rt *rt = rt_start(2);
    weft_join joins[JOBS];
    for (int i = 0; i < JOBS; i++) {
        /* Every fourth one detached from the start. */
        assert_int_equal(spawn_job(rt, i, n, i % 4 == 3 ? NULL : &joins[i]), 0);
    }
    for (int i = 0; i < JOBS; i++) {
        if (i % 4 == 3)
            continue;
        if (i % 4 == 2) {
            weft_join_abort(&joins[i]);
            weft_join_detach(&joins[i]);
            continue;
        }
        int out = -1;
        assert_int_equal(weft_block_on(rt, &joins[i].base, &out, sizeof out), 0);
        assert_int_equal(joins[i].status, 0);
        assert_int_equal(out, i);
    }
    for (int k = 0; k < FANS; k++) {
        fan f;
        co_future_init(&f, sizeof f, &fan_ops, WEFT_F_SEND);
        f.fanout = FANOUT;
        f.n = n;
        f.first_id = JOBS + k * FANOUT;
        weft_join fj;
        assert_int_equal(weft_spawn(rt, &f.base, sizeof f, &fj), 0);
        int sum = -1;
        assert_int_equal(weft_block_on(rt, &fj.base, &sum, sizeof sum), 0);
        int want = 0;
        for (int i = 0; i < FANOUT; i++)
            want += JOBS + k * FANOUT + i;
        assert_int_equal(sum, want);
    }
    weft_rt_shutdown(rt);

    assert_true(weft_atomic_load_relaxed(&c.requests) > JOBS / 3);
    assert_int_equal(weft_atomic_load_relaxed(&c.live), 0);
    assert_int_equal(weft_atomic_load_relaxed(&c.underflow), 0);
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        assert_int_equal(weft_atomic_load_acquire(&n[i].drops), 1);
    assert_int_equal(weft_set_allocator(NULL), 0);
}

/* ---- allocation-failure sweep --------------------------------------------------------------- */

#define SWEEP_TASKS 20

/* Where the sweep's injected failures surfaced, over the whole sweep. */
static int g_sweep_rt_enomem, g_sweep_spawn_enomem, g_sweep_join_enomem;

/* One runtime lifecycle with the `fail_at`-th allocation failing. Returns
 * whether the injected failure was hit (false: the scenario made fewer
 * allocations, so the sweep is complete). */
static bool sweep_once(long fail_at)
{
    static countdown_counts n[SWEEP_TASKS];
    for (int i = 0; i < SWEEP_TASKS; i++)
        countdown_counts_init(&n[i]);
    counter c;
    counter_init(&c, fail_at);
    install(&c);

    weft_rt *rt = NULL;
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 2;
    int rc = weft_rt_new(&rt, &o);
    if (rc != 0) {
        /* Only the injected failure may stop it, and cleanly. */
        if (rc != -ENOMEM || !weft_atomic_load_relaxed(&c.failed))
            fail_msg("fail_at %ld: weft_rt_new returned %d (%s)", fail_at, rc,
                     weft_strerror(rc));
        assert_null(rt);
        assert_int_equal(weft_atomic_load_relaxed(&c.live), 0);
        g_sweep_rt_enomem++;
        assert_int_equal(weft_set_allocator(NULL), 0);
        return true;
    }

    weft_join joins[SWEEP_TASKS];
    bool joined[SWEEP_TASKS];
    int spawned = 0, enomem_spawns = 0, enomem_joins = 0;
    for (int i = 0; i < SWEEP_TASKS; i++) {
        bool detached = i % 5 == 4;
        /* spawn_job drops a refused future itself: the caller's copy. */
        rc = spawn_job(rt, i, n, detached ? NULL : &joins[i]);
        joined[i] = rc == 0 && !detached;
        if (rc == -ENOMEM) {
            enomem_spawns++;
            continue;
        }
        if (rc != 0)
            fail_msg("fail_at %ld: spawn %d returned %d", fail_at, i, rc);
        spawned++;
    }
    for (int i = 0; i < SWEEP_TASKS; i++) {
        if (!joined[i])
            continue;
        int out = -1;
        rc = weft_block_on(rt, &joins[i].base, &out, sizeof out);
        if (rc == -ENOMEM) {
            /* Refused before polling: the handle is still ours. */
            weft_join_detach(&joins[i]);
            enomem_joins++;
            continue;
        }
        if (rc != 0)
            fail_msg("fail_at %ld: join %d returned %d", fail_at, i, rc);
        assert_int_equal(joins[i].status, 0);
        assert_int_equal(out, i);
    }
    weft_rt_shutdown(rt);

    bool hit = weft_atomic_load_relaxed(&c.failed) != 0;
    /* One failure in, one -ENOMEM out (when the scenario reached it). */
    assert_true(enomem_spawns + enomem_joins <= 1);
    if (enomem_spawns + enomem_joins == 1)
        assert_true(hit);
    if (weft_atomic_load_relaxed(&c.live) != 0)
        fail_msg("fail_at %ld: %ld allocation(s) leaked", fail_at,
                 (long)weft_atomic_load_relaxed(&c.live));
    assert_int_equal(weft_atomic_load_relaxed(&c.underflow), 0);
    for (int i = 0; i < SWEEP_TASKS; i++) {
        int d = weft_atomic_load_acquire(&n[i].drops);
        if (d != 1)
            fail_msg("fail_at %ld: future %d dropped %d times", fail_at, i, d);
    }
    assert_int_equal(weft_set_allocator(NULL), 0);
    (void)spawned;
    g_sweep_spawn_enomem += enomem_spawns;
    g_sweep_join_enomem += enomem_joins;
    return hit;
}

static void test_allocation_failure_sweep_leaks_nothing(void **state)
{
    (void)state;
    long k = 1;
    g_sweep_rt_enomem = g_sweep_spawn_enomem = g_sweep_join_enomem = 0;
    while (sweep_once(k))
        k++;
    print_message("    swept %ld allocation points: %d in weft_rt_new, %d in spawns, "
                  "%d in joins\n", k - 1, g_sweep_rt_enomem, g_sweep_spawn_enomem,
                  g_sweep_join_enomem);
    /* The sweep reached every stage of the lifecycle. */
    assert_true(g_sweep_rt_enomem > 0);
    assert_true(g_sweep_spawn_enomem > 0);
    assert_true(g_sweep_join_enomem > 0);
}

/* ---- weft_strerror ----------------------------------------------------------------------------- */

static void test_strerror_distinct_strings_for_weft_codes(void **state)
{
    (void)state;
    const int codes[] = { 0,          -ENOMEM,    -EINVAL, -EPERM,  -EPIPE,
                          -ECANCELED, -ETIMEDOUT, -EAGAIN, -EDEADLK };
    const size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *a = weft_strerror(codes[i]);
        assert_non_null(a);
        assert_true(a[0] != '\0');
        for (size_t j = 0; j < i; j++)
            if (strcmp(a, weft_strerror(codes[j])) == 0)
                fail_msg("weft_strerror(%d) == weft_strerror(%d): \"%s\"", codes[i],
                         codes[j], a);
    }
    /* Anything else still gets a string. */
    assert_non_null(weft_strerror(1));
    assert_non_null(weft_strerror(-100000));
    assert_non_null(weft_strerror(-ENOENT));
}

int main(void)
{
#define T(fn) cmocka_unit_test_teardown(fn, restore_default_allocator)
    const struct CMUnitTest tests[] = {
        T(test_set_allocator_rejects_half_null_allocators),
        T(test_counting_allocator_sees_a_runtime_lifecycle_freed),
        T(test_allocation_failure_sweep_leaks_nothing),
        T(test_strerror_distinct_strings_for_weft_codes),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
