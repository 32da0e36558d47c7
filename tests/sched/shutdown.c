/* Unit tests for the runtime's lifecycle in sched/runtime.c and the pool's
 * stop in sched/worker.c: where shutdown drops each future (a local one on
 * its owner worker), spawns racing shutdown (driven through the runtime's
 * test hooks into a fixed interleaving), calls on a runtime that is shut
 * down or freed, and what weft_rt_new refuses.
 *
 * Every test runs on the fixture's two-worker runtime (support/rt_fixture.h)
 * under the counting allocator: the teardown fails a test that leaked a
 * task (a reference, a future never dropped) or freed one twice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "sched/runtime.h"
#include "support/check.h"
#include "support/downcast.h"
#include "support/poll.h"
#include "support/rt_fixture.h"
#include "support/wait.h"

/* ---- probes: futures that note where they are polled and dropped ------------------- */

#define NPROBES 32u

/* Per probe id. */
static _Atomic int g_first_worker[NPROBES]; /* weft_worker_index() at the first poll */
static _Atomic int g_drop_worker[NPROBES];  /* ... at the drop */
static _Atomic int g_drops[NPROBES];
static _Atomic int g_spawn_rc[NPROBES];       /* what a spawn in its drop returned */
static _Atomic int g_spawn_local_rc[NPROBES]; /* what a local spawn in its drop returned */
/* A waker clone a probe gives away at its first poll, consumed (woken) by
 * the drop of the probe that targets it. */
static weft_waker g_given[NPROBES];
static _Atomic int g_first_polls;

enum probe_flags {
    PROBE_YIELD = 1,      /* wake itself at every poll: always queued */
    PROBE_GIVE_WAKER = 2, /* clone its waker into g_given[id] at the first poll */
    PROBE_SPAWN_CHILD = 4, /* spawn Send probe `target` at the first poll, keep its join */
    PROBE_DROP_WAKES = 8, /* its drop wakes g_given[target] */
    PROBE_DROP_SPAWNS = 16, /* its drop tries weft_spawn and weft_spawn_local */
};

typedef struct probe {
    weft_future base;
    unsigned id;
    unsigned flags;
    unsigned target;
    bool polled;
    bool has_child;
    weft_join child; /* PROBE_SPAWN_CHILD */
} probe;

static void probe_init(probe *p, unsigned id, unsigned flags, unsigned target, uint32_t fflags);

static weft_poll probe_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(probe, p);
    (void)out;
    if (!p->polled) {
        p->polled = true;
        weft_atomic_store_relaxed(&g_first_worker[p->id], weft_worker_index());
        if (p->flags & PROBE_GIVE_WAKER)
            g_given[p->id] = weft_waker_clone(cx->waker);
        if (p->flags & PROBE_SPAWN_CHILD) {
            probe c;
            probe_init(&c, p->target, 0, 0, WEFT_F_SEND);
            p->has_child = weft_spawn(NULL, &c.base, sizeof c, &p->child) == 0;
            CHECK(p->has_child);
        }
        /* Release: the test thread waits for every first poll (acquire)
         * before it shuts down, so what was written above is seen by the
         * drops that shutdown runs. */
        weft_atomic_fetch_add_release(&g_first_polls, 1);
    }
    if (p->flags & PROBE_YIELD)
        weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static void probe_drop(weft_future *f)
{
    DOWNCAST(probe, p);
    weft_atomic_store_relaxed(&g_drop_worker[p->id], weft_worker_index());
    if (p->flags & PROBE_DROP_WAKES)
        weft_waker_wake(&g_given[p->target]);
    if (p->flags & PROBE_DROP_SPAWNS) {
        probe c;
        probe_init(&c, NPROBES - 1, 0, 0, WEFT_F_SEND);
        weft_atomic_store_relaxed(&g_spawn_rc[p->id],
                                  weft_spawn_or_drop(NULL, &c.base, sizeof c, NULL));
        probe_init(&c, NPROBES - 1, 0, 0, 0);
        int rc = weft_spawn_local(&c.base, sizeof c, NULL);
        if (rc != 0)
            weft_future_drop(&c.base);
        weft_atomic_store_relaxed(&g_spawn_local_rc[p->id], rc);
    }
    if (p->has_child)
        weft_future_drop(&p->child.base);
    /* AcqRel: the test thread reads the notes above after it sees the drop. */
    weft_atomic_fetch_add_acq_rel(&g_drops[p->id], 1);
}

static const weft_future_ops probe_ops = { "probe", 0, probe_poll, probe_drop, NULL };

static void probe_init(probe *p, unsigned id, unsigned flags, unsigned target, uint32_t fflags)
{
    weft_future_init(&p->base, &probe_ops, fflags);
    p->id = id;
    p->flags = flags;
    p->target = target;
    p->polled = false;
    p->has_child = false;
}

static void probes_reset(void)
{
    for (unsigned i = 0; i < NPROBES; i++) {
        weft_atomic_store_relaxed(&g_first_worker[i], -2);
        weft_atomic_store_relaxed(&g_drop_worker[i], -2);
        weft_atomic_store_relaxed(&g_drops[i], 0);
        weft_atomic_store_relaxed(&g_spawn_rc[i], 1);
        weft_atomic_store_relaxed(&g_spawn_local_rc[i], 1);
        g_given[i] = (weft_waker)WEFT_WAKER_EMPTY;
    }
    weft_atomic_store_relaxed(&g_first_polls, 0);
}

static int drops_of(unsigned id)
{
    /* Acquire: pairs with the drop's acq_rel count. */
    return weft_atomic_load_acquire(&g_drops[id]);
}

/* ---- local futures are dropped on their owner -------------------------------------- */

/* Each of two parents (Send, on whichever worker runs it) spawns ten local
 * probes there, owned by that worker; probe ids are parent * 10 + k. */
#define LOCALS 10u
static weft_join g_local_joins[2];

/* The local probes of parent `p`:
 *   k0 idle, its join handle kept by the test; k1 idle, detached;
 *   k2 yields at every poll (always queued); k3's drop wakes Send probe
 *   20 + p; k4's drop wakes k5 (same owner); k5 gives its waker; k6's drop
 *   spawns (refused); k7 spawns Send probe k9 and keeps its join handle,
 *   which its drop drops; k8 gives its waker, woken by Send probe 22 + p's
 *   drop. */
static void spawn_locals(void *arg, void *out)
{
    unsigned p = *(const unsigned *)arg;
    unsigned b = p * LOCALS;
    static const struct { unsigned flags, target; } kinds[] = {
        { 0, 0 },
        { 0, 0 },
        { PROBE_YIELD, 0 },
        { PROBE_DROP_WAKES, 20 },
        { PROBE_DROP_WAKES, 5 },
        { PROBE_GIVE_WAKER, 0 },
        { PROBE_DROP_SPAWNS, 0 },
        { PROBE_SPAWN_CHILD, 9 },
        { PROBE_GIVE_WAKER, 0 },
    };
    for (unsigned k = 0; k < 9; k++) {
        probe l;
        unsigned target = kinds[k].target + (kinds[k].target >= 20 ? p : b);
        probe_init(&l, b + k, kinds[k].flags, target, 0);
        int rc = weft_spawn_local(&l.base, sizeof l, k == 0 ? &g_local_joins[p] : NULL);
        CHECK(rc == 0);
    }
    *(int *)out = weft_worker_index();
}

static void test_local_futures_are_dropped_on_their_owner_worker(void **state)
{
    (void)state;
    async_failures_reset();
    probes_reset();
    for (unsigned p = 0; p < 2; p++) {
        weft_join j;
        assert_int_equal(weft_spawn_fn(g_rt, spawn_locals, &p, sizeof(int), &j), 0);
        int worker = -1;
        assert_int_equal(join_blocking(g_rt, &j, &worker, sizeof worker), 0);
        assert_true(worker >= 0);
        /* Send probes: 20 + p gives its waker (k3 wakes it); 22 + p's drop
         * wakes k8 from the thread that cancels Send tasks. */
        probe s;
        probe_init(&s, 20 + p, PROBE_GIVE_WAKER, 0, WEFT_F_SEND);
        assert_int_equal(weft_spawn(g_rt, &s.base, sizeof s, NULL), 0);
        probe_init(&s, 22 + p, PROBE_DROP_WAKES, p * LOCALS + 8, WEFT_F_SEND);
        assert_int_equal(weft_spawn(g_rt, &s.base, sizeof s, NULL), 0);
    }
    /* 2 * (9 local + 1 Send child) + 4 Send. */
    WAIT_UNTIL(weft_atomic_load_acquire(&g_first_polls) == 24);
    weft_rt_shutdown(g_rt);
    g_rt = NULL;
    assert_no_async_failures();

    for (unsigned p = 0; p < 2; p++) {
        for (unsigned k = 0; k < LOCALS; k++) {
            unsigned id = p * LOCALS + k;
            assert_int_equal(drops_of(id), 1);
            if (k == 9)
                continue; /* Send */
            int owner = weft_atomic_load_relaxed(&g_first_worker[id]);
            int dropped_on = weft_atomic_load_relaxed(&g_drop_worker[id]);
            if (dropped_on != owner)
                print_error("local probe %u: owned by worker %d, dropped on %d\n", id, owner,
                            dropped_on);
            assert_true(owner >= 0);
            assert_int_equal(dropped_on, owner);
        }
        assert_int_equal(drops_of(20 + p), 1);
        assert_int_equal(drops_of(22 + p), 1);
        /* A spawn from a drop during shutdown is refused. */
        assert_int_equal(weft_atomic_load_relaxed(&g_spawn_rc[p * LOCALS + 6]), -ECANCELED);
        assert_int_equal(weft_atomic_load_relaxed(&g_spawn_local_rc[p * LOCALS + 6]), -ECANCELED);
        /* The kept handle completes, cancelled. */
        assert_true(weft_join_is_finished(&g_local_joins[p]));
        assert_int_equal(poll_noop(&g_local_joins[p].base, NULL), WEFT_READY);
        assert_int_equal(g_local_joins[p].status, -ECANCELED);
        weft_future_drop(&g_local_joins[p].base);
    }
    /* The refused spawns' futures were dropped by the spawners. */
    assert_int_equal(drops_of(NPROBES - 1), 4);
    /* Teardown: every task and the runtime were freed. */
}

/* ---- spawns racing shutdown ---------------------------------------------------------- */

/* Each interleaving of a spawn from off the workers with a shutdown, run on
 * purpose through the runtime's test hooks (debug builds only). Whatever
 * the interleaving, the spawn returns 0 and its task ends cancelled: the
 * future dropped once, never polled, the join handle finished with
 * -ECANCELED; or it returns -ECANCELED with the future still the caller's.
 * The teardown checks that nothing leaked. */

#ifndef NDEBUG /* the hooks and what the tests below run through them */

/* The probe a racing spawn spawns, and what must have become of it. */
static void expect_cancelled_unpolled(weft_join *j)
{
    assert_int_equal(drops_of(0), 1);
    assert_int_equal(weft_atomic_load_acquire(&g_first_polls), 0);
    if (!j)
        return;
    assert_true(weft_join_is_finished(j));
    assert_int_equal(poll_noop(&j->base, NULL), WEFT_READY);
    assert_int_equal(j->status, -ECANCELED);
    weft_future_drop(&j->base);
}

/* A hook that runs a whole shutdown, once, at `at`. */
typedef struct shutdown_at {
    weft__rt_hook_at at;
    bool done;
} shutdown_at;

static void shutdown_at_hook(weft__rt_hook_at at, weft_rt *rt, void *ctx)
{
    shutdown_at *h = ctx;
    if (at != h->at || h->done)
        return;
    h->done = true;
    weft_rt_shutdown(rt);
}

/* Spawns a probe while the whole shutdown runs at hook point `at` of the
 * spawn itself. */
static void spawn_around_a_whole_shutdown(weft__rt_hook_at at, bool with_join)
{
    probes_reset();
    shutdown_at h = { at, false };
    weft__rt_set_hook(shutdown_at_hook, &h);
    probe f;
    probe_init(&f, 0, 0, 0, WEFT_F_SEND);
    weft_join j;
    int rc = weft_spawn(g_rt, &f.base, sizeof f, with_join ? &j : NULL);
    weft__rt_set_hook(NULL, NULL);
    g_rt = NULL; /* shut down inside the spawn */
    assert_true(h.done);
    assert_int_equal(rc, 0);
    expect_cancelled_unpolled(with_join ? &j : NULL);
}

/* Two threads take turns at the hook points (no sleeping: each spins on
 * `step`, giving the CPU away). */
static _Atomic int g_step;

static void step_to(int n)
{
    /* Release: what this thread did happens before the other's turn. */
    weft_atomic_store_release(&g_step, n);
}

static void step_wait(int n)
{
    weft_instant start = weft_now();
    /* Acquire: pairs with step_to. */
    while (weft_atomic_load_acquire(&g_step) < n) {
        sched_yield();
        if (wait_expired(start)) {
            CHECK(!"step never came");
            return;
        }
    }
}

/* The spawner (the test thread): admitted, it lets the shutdown run up to
 * its close and queues its task then. The shutdown thread: stopped, it
 * waits for that push before it closes. */
static void between_scan_and_close_hook(weft__rt_hook_at at, weft_rt *rt, void *ctx)
{
    (void)rt, (void)ctx;
    if (at == WEFT__RT_HOOK_SPAWN_ADMITTED) {
        step_to(1);
        step_wait(2);
    } else if (at == WEFT__RT_HOOK_SHUTDOWN_STOPPED) {
        step_to(2);
        step_wait(3);
    }
}

static void *shutdown_main(void *arg)
{
    step_wait(1);
    weft_rt_shutdown(arg);
    return NULL;
}

static int g_refused_rc;

static void spawn_while_stopped_hook(weft__rt_hook_at at, weft_rt *rt, void *ctx)
{
    (void)ctx;
    if (at != WEFT__RT_HOOK_SHUTDOWN_STOPPED)
        return;
    probe f;
    probe_init(&f, 0, 0, 0, WEFT_F_SEND);
    g_refused_rc = weft_spawn(rt, &f.base, sizeof f, NULL);
    if (g_refused_rc != 0)
        weft_future_drop(&f.base);
}

#endif

/* The spawn saw the runtime running, then the whole shutdown ran before it
 * allocated: its task comes after the stop's scan and after close, so the
 * spawner drains its own push and cancels the task. */
static void test_spawn_admitted_before_a_whole_shutdown_is_cancelled_by_the_spawner(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip(); /* release builds have no hooks */
#else
    spawn_around_a_whole_shutdown(WEFT__RT_HOOK_SPAWN_ADMITTED, true);
#endif
}

static void test_detached_spawn_admitted_before_a_whole_shutdown_is_cancelled(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#else
    spawn_around_a_whole_shutdown(WEFT__RT_HOOK_SPAWN_ADMITTED, false);
#endif
}

/* The task was allocated (in the slab) but not queued when the whole
 * shutdown ran: the stop's scan cancels it, and its later push is
 * released. */
static void test_spawn_allocated_before_a_whole_shutdown_is_cancelled_by_the_scan(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#else
    spawn_around_a_whole_shutdown(WEFT__RT_HOOK_SPAWN_ALLOCATED, true);
#endif
}

/* The task is allocated after the stop's scan went by and queued before
 * the close: the close drains the entry and cancels the task. */
static void test_spawn_queued_between_scan_and_close_is_cancelled_by_the_close(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#else
    async_failures_reset();
    probes_reset();
    weft_atomic_store_relaxed(&g_step, 0);
    weft__rt_set_hook(between_scan_and_close_hook, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, shutdown_main, g_rt), 0);
    probe f;
    probe_init(&f, 0, 0, 0, WEFT_F_SEND);
    weft_join j;
    int rc = weft_spawn(g_rt, &f.base, sizeof f, &j);
    step_to(3);
    assert_int_equal(pthread_join(th, NULL), 0);
    weft__rt_set_hook(NULL, NULL);
    g_rt = NULL;
    assert_no_async_failures();
    assert_int_equal(rc, 0);
    expect_cancelled_unpolled(&j);
#endif
}

/* A spawn that starts once shutdown is under way (here: from its hook,
 * on the thread shutting down) is refused and leaves the future with the
 * caller. */
static void test_spawn_during_shutdown_fails_with_ecanceled(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#else
    probes_reset();
    g_refused_rc = 1;
    weft__rt_set_hook(spawn_while_stopped_hook, NULL);
    weft_rt_shutdown(g_rt);
    weft__rt_set_hook(NULL, NULL);
    g_rt = NULL;
    assert_int_equal(g_refused_rc, -ECANCELED);
    assert_int_equal(drops_of(0), 1); /* by the caller */
#endif
}

/* ---- calls after shutdown ------------------------------------------------------------- */

/* A held join handle keeps the runtime's memory after shutdown: calling
 * shutdown again is reported and ignored (every build), and a spawn is
 * refused with -ECANCELED, the future left with the caller. */
static void test_calls_after_shutdown_while_a_handle_keeps_the_runtime(void **state)
{
    (void)state;
    probes_reset();
    probe f;
    probe_init(&f, 0, 0, 0, WEFT_F_SEND);
    weft_join j;
    assert_int_equal(weft_spawn(g_rt, &f.base, sizeof f, &j), 0);
    weft_rt *rt = g_rt;
    weft_rt_shutdown(rt);
    g_rt = NULL;
    assert_int_equal(drops_of(0), 1);

    int before = misuse_count();
    weft_rt_shutdown(rt);
    assert_misuse_since(before, 1, "already shut down");

    probe g;
    probe_init(&g, 1, 0, 0, WEFT_F_SEND);
    before = misuse_count();
    assert_int_equal(weft_spawn(rt, &g.base, sizeof g, NULL), -ECANCELED);
    assert_no_misuse_since(before);
    assert_int_equal(drops_of(1), 0);
    weft_future_drop(&g.base);

    assert_int_equal(poll_noop(&j.base, NULL), WEFT_READY);
    assert_int_equal(j.status, -ECANCELED);
    weft_future_drop(&j.base); /* the last task: the runtime's memory goes */
}

/* Once the runtime's memory is gone, debug builds recognise it: shutting
 * it down again, spawning on it or asking its stats is reported and
 * refused (-EINVAL), never a use of freed memory. Release builds cannot
 * tell (rt.h: undefined behaviour), so the test is skipped there. */
static void test_calls_on_a_freed_runtime_are_reported_in_debug_builds(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#else
    probes_reset();
    weft_rt *rt = g_rt;
    weft_rt_shutdown(rt); /* no task holds it: freed here */
    g_rt = NULL;

    int before = misuse_count();
    weft_rt_shutdown(rt);
    assert_misuse_since(before, 1, "freed");

    probe f;
    probe_init(&f, 0, 0, 0, WEFT_F_SEND);
    before = misuse_count();
    weft_join j;
    assert_int_equal(weft_spawn(rt, &f.base, sizeof f, &j), -EINVAL);
    assert_misuse_since(before, 1, "freed");
    assert_int_equal(drops_of(0), 0); /* still ours */
    assert_int_equal(weft_spawn_or_drop(rt, &f.base, sizeof f, NULL), -EINVAL);
    assert_int_equal(drops_of(0), 1);

    weft_worker_stats st[2];
    unsigned n = 2;
    before = misuse_count();
    assert_int_equal(weft_rt_stats(rt, st, &n), -EINVAL);
    assert_misuse_since(before, 1, "freed");
#endif
}

/* ---- what weft_rt_new refuses ---------------------------------------------------------- */

/* A stack size above WEFT_RT_MAX_STACK_SIZE is refused with -EINVAL before
 * anything is allocated or started; a tiny one is raised to the system's
 * minimum and works. */
static void test_rt_new_refuses_a_stack_size_above_the_maximum_with_einval(void **state)
{
    (void)state;
    long live = weft_atomic_load_acquire(&g_live_allocs);
    const size_t refused[] = { WEFT_RT_MAX_STACK_SIZE + 1, (size_t)1 << 46, SIZE_MAX };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        weft_rt_options o = WEFT_RT_OPTIONS_INIT;
        o.workers = 1;
        o.stack_size = refused[i];
        weft_rt *rt = (weft_rt *)&o; /* must be overwritten with NULL */
        assert_int_equal(weft_rt_new(&rt, &o), -EINVAL);
        assert_null(rt);
        assert_int_equal(weft_atomic_load_acquire(&g_live_allocs), live);
    }
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 1;
    o.stack_size = 1;
    weft_rt *rt = NULL;
    assert_int_equal(weft_rt_new(&rt, &o), 0);
    weft_rt_shutdown(rt);
    assert_int_equal(weft_atomic_load_acquire(&g_live_allocs), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, rt_setup, rt_teardown)
        T(test_local_futures_are_dropped_on_their_owner_worker),
        T(test_spawn_admitted_before_a_whole_shutdown_is_cancelled_by_the_spawner),
        T(test_detached_spawn_admitted_before_a_whole_shutdown_is_cancelled),
        T(test_spawn_allocated_before_a_whole_shutdown_is_cancelled_by_the_scan),
        T(test_spawn_queued_between_scan_and_close_is_cancelled_by_the_close),
        T(test_spawn_during_shutdown_fails_with_ecanceled),
        T(test_calls_after_shutdown_while_a_handle_keeps_the_runtime),
        T(test_calls_on_a_freed_runtime_are_reported_in_debug_builds),
        T(test_rt_new_refuses_a_stack_size_above_the_maximum_with_einval),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
