/* Tests for the runtime (sched/runtime.c and sched/worker.c): spawning
 * from every kind of thread, nested spawns, block_on misuse, shutdown with pending and running
 * tasks, Send enforcement, local-task ownership under steal pressure and
 * under foreign wakes, statistics, options, yield fairness, what idle
 * workers cost (parks, wake-ups, spinning, with 64 workers too), and the
 * LIFO slot behind a long poll, busy workers firing due timers.
 *
 * Rules these tests follow: they never sleep to wait for another thread
 * (they wait on join handles, condition variables, or a task state they can
 * observe), and never assert anything about timing. cmocka's assertions
 * longjmp, so they run on the test thread only; code running on workers or
 * helper threads records failures with CHECK() and the test thread asserts
 * that none were recorded once those threads are done. */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "core/sys.h"
#include "sched/ring.h"
#include "sched/runtime.h"
#include "sched/task.h"
#include "support/check.h"
#include "support/co_future.h"
#include "support/countdown.h"
#include "support/downcast.h"
#include "support/poll.h"
#include "support/rt_fixture.h"
#include "support/wait.h"

/* ---- a counter a thread can wait on -------------------------------------------- */

/* Each test owns its gates (static, so they need no destruction) and
 * starts them from zero with gate_reset. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t n;
} gate;

#define GATE_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 }

static void gate_reset(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->n = 0;
    pthread_mutex_unlock(&g->lock);
}

static void gate_add(gate *g, uint64_t k)
{
    pthread_mutex_lock(&g->lock);
    g->n += k;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_wait(gate *g, uint64_t target)
{
    pthread_mutex_lock(&g->lock);
    while (g->n < target)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

/* ---- helpers ------------------------------------------------------------------ */

/* The probes for "did the runtime ever touch this?" are countdowns
 * (support/countdown.h), READY at once, under names a misuse report can
 * be told by. */
static const weft_future_ops not_send_probe_ops = COUNTDOWN_OPS("not_send_probe");
static const weft_future_ops deadlk_probe_ops = COUNTDOWN_OPS("deadlk_probe");

/* ================================================================================
 * Spawning from foreign threads
 * ================================================================================ */

#define FOREIGN_THREADS 4
#define FOREIGN_TASKS 10000u
#define FOREIGN_JOIN_EVERY 100u

typedef struct count_fut {
    weft_future base;
    uint32_t id;
} count_fut;

static _Atomic uint32_t *g_runs;  /* per task id: polls that finished it */
static _Atomic uint32_t *g_drops; /* per task id: drops */
static gate g_dropped = GATE_INIT;

static uint64_t count_expected(uint32_t id)
{
    return (uint64_t)id * 7u + 3u;
}

static weft_poll count_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx;
    count_fut *c = (count_fut *)f;
    weft_atomic_fetch_add_relaxed(&g_runs[c->id], 1);
    *(uint64_t *)out = count_expected(c->id);
    return WEFT_READY;
}

static void count_drop(weft_future *f)
{
    count_fut *c = (count_fut *)f;
    weft_atomic_fetch_add_relaxed(&g_drops[c->id], 1);
    /* The gate's mutex orders the counter update before the test thread
     * reads it. */
    gate_add(&g_dropped, 1);
}

static const weft_future_ops count_ops = {
    "count_fut", sizeof(uint64_t), count_poll, count_drop, NULL,
};

typedef struct foreign_arg {
    weft_rt *rt;
    uint32_t first_id;
} foreign_arg;

static void *foreign_spawner(void *p)
{
    foreign_arg *a = p;
    weft_join joins[FOREIGN_TASKS / FOREIGN_JOIN_EVERY];
    uint32_t join_ids[FOREIGN_TASKS / FOREIGN_JOIN_EVERY];
    unsigned njoins = 0;
    CHECK(weft_worker_index() == -1);
    for (uint32_t i = 0; i < FOREIGN_TASKS; i++) {
        count_fut c;
        weft_future_init(&c.base, &count_ops, WEFT_F_SEND);
        c.id = a->first_id + i;
        weft_join *j = NULL;
        if (i % FOREIGN_JOIN_EVERY == 0) {
            j = &joins[njoins];
            join_ids[njoins++] = c.id;
        }
        int rc = weft_spawn(a->rt, &c.base, sizeof c, j);
        CHECK(rc == 0);
        if (rc != 0) {
            weft_future_drop(&c.base);
            if (j)
                njoins--;
        }
    }
    for (unsigned k = 0; k < njoins; k++) {
        uint64_t out = 0;
        CHECK(weft_block_on(a->rt, &joins[k].base, &out, sizeof out) == 0);
        CHECK(joins[k].status == 0);
        CHECK(out == count_expected(join_ids[k]));
    }
    return NULL;
}

static void test_spawn_from_four_foreign_threads_runs_each_task_once(void **state)
{
    (void)state;
    const uint32_t total = FOREIGN_THREADS * FOREIGN_TASKS;
    g_runs = calloc(total, sizeof *g_runs);
    g_drops = calloc(total, sizeof *g_drops);
    assert_non_null(g_runs);
    assert_non_null(g_drops);
    gate_reset(&g_dropped);

    weft_rt *rt = rt_start(2);
    pthread_t th[FOREIGN_THREADS];
    foreign_arg args[FOREIGN_THREADS];
    for (unsigned t = 0; t < FOREIGN_THREADS; t++) {
        args[t].rt = rt;
        args[t].first_id = t * FOREIGN_TASKS;
        assert_int_equal(pthread_create(&th[t], NULL, foreign_spawner, &args[t]), 0);
    }
    for (unsigned t = 0; t < FOREIGN_THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    /* Detached tasks finish on their own: wait until every future has been
     * dropped (drop follows the finishing poll). */
    gate_wait(&g_dropped, total);
    weft_rt_shutdown(rt);

    assert_no_async_failures();
    for (uint32_t id = 0; id < total; id++) {
        if (weft_atomic_load_relaxed(&g_runs[id]) != 1 || weft_atomic_load_relaxed(&g_drops[id]) != 1) {
            print_error("task %u: %u finishing polls, %u drops\n", id,
                        (unsigned)weft_atomic_load_relaxed(&g_runs[id]),
                        (unsigned)weft_atomic_load_relaxed(&g_drops[id]));
            fail();
        }
    }
    free(g_runs);
    free(g_drops);
}

/* ================================================================================
 * Nested spawns: a binary tree of tasks, each joining its children
 * ================================================================================ */

#define TREE_DEPTH 10 /* levels below the root: 2^11 - 1 nodes */
#define TREE_FANOUT 2

typedef struct tree_node {
    weft_future base;
    weft_co co;
    int depth;
    int owner;    /* worker a local node must run on; -1: Send */
    int nspawned; /* joins[0 .. nspawned) were initialised */
    int joined;   /* joins[0 .. joined) were awaited and dropped */
    uint64_t sum;
    uint64_t child_out;
    weft_join joins[TREE_FANOUT];
} tree_node;

static _Atomic uint64_t g_tree_drops;
static _Atomic uint64_t g_tree_polls;

static weft_poll tree_poll(weft_future *f, weft_cx *cx, void *out);
static void tree_drop(weft_future *f);

/* Nodes at even depths below the root are local (spawned with
 * weft_spawn_local by their parent, which runs on a worker); the others are
 * Send (the root's children are spawned from the block_on thread). */
static const weft_future_ops tree_ops = {
    "tree_node", sizeof(uint64_t), tree_poll, tree_drop, NULL,
};

static void tree_node_init(tree_node *n, int depth, bool local)
{
    co_future_init(n, sizeof *n, &tree_ops, local ? 0u : WEFT_F_SEND);
    n->depth = depth;
    n->owner = local ? weft_worker_index() : -1;
    n->nspawned = 0;
    n->joined = 0;
    n->sum = 0;
    n->child_out = 0;
}

static weft_poll tree_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(tree_node, n);
    weft_atomic_fetch_add_relaxed(&g_tree_polls, 1);
    if (n->owner >= 0)
        CHECK(weft_worker_index() == n->owner);
    WEFT_CO_BEGIN(&n->co);
    if (n->depth < TREE_DEPTH) {
        bool local = (n->depth + 1) % 2 == 0;
        for (n->nspawned = 0; n->nspawned < TREE_FANOUT;) {
            tree_node child;
            tree_node_init(&child, n->depth + 1, local);
            int rc = local ? weft_spawn_local(&child.base, sizeof child, &n->joins[n->nspawned])
                           : weft_spawn(NULL, &child.base, sizeof child, &n->joins[n->nspawned]);
            CHECK(rc == 0);
            if (rc != 0) {
                fprintf(stderr, "tree spawn at depth %d: %s\n", n->depth, weft_strerror(rc));
                weft_future_drop(&child.base);
                break;
            }
            n->nspawned++;
        }
        for (n->joined = 0; n->joined < n->nspawned; n->joined++) {
            WEFT_AWAIT(&n->co, cx, &n->joins[n->joined].base, &n->child_out);
            CHECK(n->joins[n->joined].status == 0);
            n->sum += n->child_out;
        }
    }
    *(uint64_t *)out = n->sum + 1;
    CO_FUTURE_END(n);
}

static void tree_drop(weft_future *f)
{
    DOWNCAST(tree_node, n);
    /* Cancelled mid-await: the awaited join is dropped with the coroutine,
     * and the ones not reached yet. */
    co_future_drop_joins(&n->co, n->joins, n->joined, n->nspawned);
    weft_atomic_fetch_add_relaxed(&g_tree_drops, 1);
}

static void run_tree(unsigned workers)
{
    const uint64_t nodes = ((uint64_t)1 << (TREE_DEPTH + 1)) - 1;
    weft_atomic_store_relaxed(&g_tree_drops, 0);
    weft_atomic_store_relaxed(&g_tree_polls, 0);
    int misuse_before = misuse_count();
    weft_rt *rt = rt_start(workers);
    tree_node root;
    tree_node_init(&root, 0, false);
    uint64_t out = 0;
    /* The root is polled on this thread; its children go to the workers. */
    assert_int_equal(weft_block_on(rt, &root.base, &out, sizeof out), 0);
    assert_int_equal(out, nodes);
    weft_rt_shutdown(rt);
    assert_int_equal(weft_atomic_load_relaxed(&g_tree_drops), nodes);
    assert_true(weft_atomic_load_relaxed(&g_tree_polls) >= nodes);
    assert_no_async_failures();
    /* Debug builds refuse to poll a local node off its owner and report
     * it instead; release builds would fail the owner check above. */
    assert_no_misuse_since(misuse_before);
}

static void test_nested_spawn_tree_joins_children_results(void **state)
{
    (void)state;
    run_tree(2);
}

static void test_runtime_with_one_and_four_workers_runs_tree(void **state)
{
    (void)state;
    run_tree(1);
    run_tree(4);
}

/* ================================================================================
 * block_on misuse
 * ================================================================================ */

static countdown_counts g_deadlk = COUNTDOWN_COUNTS_INIT;

/* On a worker: block_on a probe; outputs the return code. */
static void block_on_from_worker(void *arg, void *out)
{
    (void)arg;
    countdown p;
    countdown_init(&p, 0, 42, &g_deadlk, WEFT_F_SEND);
    p.base.ops = &deadlk_probe_ops;
    int v = 0;
    int rc = weft_block_on(weft_rt_current(), &p.base, &v, sizeof v);
    /* Refused: the probe is still ours to drop. */
    if (rc != 0)
        weft_future_drop(&p.base);
    *(int *)out = rc;
}

static void test_block_on_from_worker_fails_with_edeadlk(void **state)
{
    (void)state;
    countdown_counts_init(&g_deadlk);
    int misuse_before = misuse_count();
    weft_rt *rt = rt_start(2);
    int rc = 0;
    assert_int_equal(RUN_FN_BLOCKING(rt, block_on_from_worker, &rc, sizeof rc), 0);
    assert_int_equal(rc, -EDEADLK);
    weft_rt_shutdown(rt);
    /* The refused future never ran and was dropped once, by its owner. */
    assert_int_equal(weft_atomic_load_relaxed(&g_deadlk.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&g_deadlk.drops), 1);
#ifndef NDEBUG
    assert_true(misuse_count() > misuse_before);
    assert_true(misuse_last_contains("deadlk_probe"));
#else
    (void)misuse_before;
#endif
}

/* ================================================================================
 * Shutdown with pending and running tasks
 * ================================================================================ */

#define SHUT_IDLE 64u     /* pending forever on a waker nobody wakes */
#define SHUT_SPIN 8u      /* yielding forever until cancelled */
#define SHUT_DETACHED 16u /* of each kind, spawned without a join */
#define SHUT_TOTAL (SHUT_IDLE + SHUT_SPIN + 2u * SHUT_DETACHED)

static _Atomic uint32_t g_shut_drops[SHUT_TOTAL];
static gate g_shut_started = GATE_INIT;

typedef struct idle_fut {
    weft_future base;
    uint32_t id;
    /* keep_waker: hold a clone of the waker (a task reference). */
    bool keep_waker, started;
    weft_waker waker;
} idle_fut;

static weft_poll idle_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(idle_fut, s);
    (void)out;
    if (!s->started) {
        s->started = true;
        if (s->keep_waker)
            s->waker = weft_waker_clone(cx->waker);
        gate_add(&g_shut_started, 1);
    }
    return WEFT_PENDING;
}

static void idle_drop(weft_future *f)
{
    DOWNCAST(idle_fut, s);
    weft_waker_drop(&s->waker);
    weft_atomic_fetch_add_relaxed(&g_shut_drops[s->id], 1);
}

static const weft_future_ops idle_ops = { "idle_fut", sizeof(uint64_t), idle_poll, idle_drop, NULL };

typedef struct spin_fut {
    weft_future base;
    weft_co co;
    uint32_t id;
} spin_fut;

static weft_poll spin_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(spin_fut, s);
    gate_add(&g_shut_started, 1);
    for (;;)
        WEFT_CO_YIELD(&s->co, cx);
    *(uint64_t *)out = 1;
    CO_FUTURE_END(s);
}

static void spin_drop(weft_future *f)
{
    DOWNCAST(spin_fut, s);
    weft_co_drop(&s->co);
    weft_atomic_fetch_add_relaxed(&g_shut_drops[s->id], 1);
}

static const weft_future_ops spin_ops = { "spin_fut", sizeof(uint64_t), spin_poll, spin_drop, NULL };

static void test_shutdown_cancels_pending_and_running_tasks(void **state)
{
    (void)state;
    for (unsigned i = 0; i < SHUT_TOTAL; i++)
        weft_atomic_store_relaxed(&g_shut_drops[i], 0);
    gate_reset(&g_shut_started);
    weft_rt *rt = rt_start(2);

    weft_join joins[SHUT_IDLE + SHUT_SPIN];
    unsigned njoins = 0;
    uint32_t id = 0;
    for (unsigned i = 0; i < SHUT_IDLE + SHUT_DETACHED; i++, id++) {
        idle_fut f;
        weft_future_init(&f.base, &idle_ops, WEFT_F_SEND);
        f.id = id;
        f.keep_waker = i % 2 == 0;
        f.started = false;
        f.waker = (weft_waker)WEFT_WAKER_EMPTY;
        weft_join *j = i < SHUT_IDLE ? &joins[njoins++] : NULL;
        assert_int_equal(weft_spawn(rt, &f.base, sizeof f, j), 0);
    }
    for (unsigned i = 0; i < SHUT_SPIN + SHUT_DETACHED; i++, id++) {
        spin_fut f;
        co_future_init(&f, sizeof f, &spin_ops, WEFT_F_SEND);
        f.id = id;
        weft_join *j = i < SHUT_SPIN ? &joins[njoins++] : NULL;
        assert_int_equal(weft_spawn(rt, &f.base, sizeof f, j), 0);
    }
    assert_int_equal(id, SHUT_TOTAL);
    /* Every task has been polled once: the idle ones sit in no queue, the
     * spinning ones are queued or running. */
    gate_wait(&g_shut_started, SHUT_TOTAL);
    weft_rt_shutdown(rt);

    for (unsigned i = 0; i < SHUT_TOTAL; i++) {
        if (weft_atomic_load_relaxed(&g_shut_drops[i]) != 1) {
            print_error("future %u dropped %u times\n", i,
                        (unsigned)weft_atomic_load_relaxed(&g_shut_drops[i]));
            fail();
        }
    }
    /* The handles outlive the runtime: each reports cancellation with a
     * zeroed output, and dropping the last one frees the rest (ASan/LSan
     * check that). */
    for (unsigned k = 0; k < njoins; k++) {
        assert_true(weft_join_is_finished(&joins[k]));
        uint64_t out = 0xdeadbeef;
        assert_int_equal(poll_noop(&joins[k].base, &out), WEFT_READY);
        assert_int_equal(joins[k].status, -ECANCELED);
        assert_int_equal(out, 0);
        weft_future_drop(&joins[k].base);
    }
    weft_rt_shutdown(NULL); /* a no-op */
}

static void test_shutdown_of_idle_runtime_returns(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(2);
    weft_rt_shutdown(rt);
    rt = rt_start(1);
    weft_rt_shutdown(rt);
}

/* ================================================================================
 * Send enforcement
 * ================================================================================ */

static countdown_counts g_ns = COUNTDOWN_COUNTS_INIT;

static void not_send_probe_init(countdown *p)
{
    countdown_init(p, 0, 42, &g_ns, 0);
    p->base.ops = &not_send_probe_ops;
}

/* On a worker: spawn a non-Send probe onto the current runtime; outputs
 * the return code. */
static void spawn_not_send_from_worker(void *arg, void *out)
{
    (void)arg;
    countdown p;
    not_send_probe_init(&p);
    weft_join j;
    int rc = weft_spawn(NULL, &p.base, sizeof p, &j);
    if (rc != 0)
        weft_future_drop(&p.base);
    else
        weft_join_detach(&j);
    *(int *)out = rc;
}

/* A runtime of `workers` workers and a non-Send probe `p` to spawn on it,
 * the probes' counts and the misuse reports reset. */
static weft_rt *start_with_probe(unsigned workers, countdown *p)
{
    countdown_counts_init(&g_ns);
    not_send_probe_init(p);
    misuse_reset();
    return rt_start(workers);
}

static void test_spawn_of_non_send_future_fails_with_eperm(void **state)
{
    (void)state;
    countdown p;
    weft_rt *rt = start_with_probe(2, &p);

    /* From a foreign thread, with an explicit runtime. */
    weft_join j;
    assert_int_equal(weft_spawn(rt, &p.base, sizeof p, &j), -EPERM);
    assert_misuse_since(0, 1, "not_send_probe");

    /* From a worker, on the current runtime. */
    int misuse_before = misuse_count();
    int rc = 0;
    assert_int_equal(RUN_FN_BLOCKING(rt, spawn_not_send_from_worker, &rc, sizeof rc), 0);
    assert_int_equal(rc, -EPERM);
    assert_misuse_since(misuse_before, 1, "not_send_probe");

    /* Shutdown drops every future the runtime owns: had either spawn taken
     * its probe, the probe would have been polled or dropped by now. */
    weft_rt_shutdown(rt);
    assert_int_equal(weft_atomic_load_relaxed(&g_ns.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&g_ns.drops), 1); /* the worker's copy */
    weft_future_drop(&p.base); /* ours: we still own it */
    assert_int_equal(weft_atomic_load_relaxed(&g_ns.drops), 2);
}

static void test_spawn_local_from_foreign_thread_fails_with_eperm(void **state)
{
    (void)state;
    countdown p;
    weft_rt *rt = start_with_probe(1, &p);
    weft_join j;
    assert_int_equal(weft_spawn_local(&p.base, sizeof p, &j), -EPERM);
    /* A Send future is refused too: the rule is about the calling thread. */
    countdown q;
    not_send_probe_init(&q);
    q.base.flags |= WEFT_F_SEND;
    assert_int_equal(weft_spawn_local(&q.base, sizeof q, NULL), -EPERM);
    assert_misuse_since(0, 2, "not_send_probe");
    weft_rt_shutdown(rt);
    assert_int_equal(weft_atomic_load_relaxed(&g_ns.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&g_ns.drops), 0);
    weft_future_drop(&p.base);
    weft_future_drop(&q.base);
    assert_int_equal(weft_atomic_load_relaxed(&g_ns.drops), 2);
}

/* ================================================================================
 * Local tasks stay on their owner while other workers steal
 * ================================================================================ */

#define STEAL_WORKERS 4
#define LOCAL_TASKS 64
#define LOCAL_YIELDS 1000
#define PRESSURE_TASKS 10000u
#define PRESSURE_YIELDS 2

/* Per local task; each is written only by its task's polls (one at a time,
 * ordered by the task state) and read by the test thread after the join. */
static uint64_t g_local_polls[LOCAL_TASKS];
static uint64_t g_local_foreign_polls[LOCAL_TASKS];
static int g_local_bad_index[LOCAL_TASKS];
/* Half of a local task's yields wait for a wake from the pinger, a Send
 * task running on whatever worker it was last stolen to, so those wakes
 * enter through the scheduler's wake path from other workers, not through
 * the requeue after a poll. */
static weft_atomic_waker g_local_wakers[LOCAL_TASKS];
static _Atomic unsigned g_locals_done;
static gate g_pressure_dropped = GATE_INIT;

/* PENDING once, handing its waker to `hand` (which registers or clones it
 * to wake the task later), then READY at the next poll. */
typedef struct wait_once {
    weft_future base;
    void (*hand)(void *arg, const weft_waker *waker);
    void *arg;
    bool handed;
} wait_once;

static weft_poll wait_once_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(wait_once, w);
    (void)out;
    if (w->handed)
        return WEFT_READY;
    w->handed = true;
    w->hand(w->arg, cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops wait_once_ops = { "wait_once", 0, wait_once_poll, NULL, NULL };

static void wait_once_init(wait_once *w, void (*hand)(void *, const weft_waker *), void *arg)
{
    weft_future_init(&w->base, &wait_once_ops, 0);
    w->hand = hand;
    w->arg = arg;
    w->handed = false;
}

static void register_waker(void *aw, const weft_waker *waker)
{
    weft_atomic_waker_register(aw, waker);
}

typedef struct local_yielder {
    weft_future base;
    weft_co co;
    int k;     /* index into the g_local_* arrays */
    int owner; /* the worker that spawned it */
    int i;
    wait_once poke;
} local_yielder;

static weft_poll local_yielder_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(local_yielder, s);
    int me = weft_worker_index();
    g_local_polls[s->k]++;
    if (me != s->owner) {
        g_local_foreign_polls[s->k]++;
        g_local_bad_index[s->k] = me;
    }
    WEFT_CO_BEGIN(&s->co);
    for (s->i = 0; s->i < LOCAL_YIELDS; s->i++) {
        if (s->i % 2 == 1) {
            WEFT_CO_YIELD(&s->co, cx);
        } else {
            wait_once_init(&s->poke, register_waker, &g_local_wakers[s->k]);
            WEFT_AWAIT(&s->co, cx, &s->poke.base, NULL);
        }
    }
    /* Release: the pinger's acquire load sees that this task is done. */
    weft_atomic_fetch_add_acq_rel(&g_locals_done, 1);
    *(uint64_t *)out = (uint64_t)s->i;
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(local_yielder, "local_yielder", sizeof(uint64_t));

/* Wakes every local task at each of its polls until they are all done,
 * yielding in between. */
static weft_poll pinger_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)out;
    /* Acquire: pairs with the local tasks' final increment. */
    if (weft_atomic_load_acquire(&g_locals_done) >= LOCAL_TASKS)
        return WEFT_READY;
    for (int k = 0; k < LOCAL_TASKS; k++)
        weft_atomic_waker_wake(&g_local_wakers[k]);
    weft_waker_wake_by_ref(cx->waker); /* yield */
    return WEFT_PENDING;
}

static void pinger_drop(weft_future *f)
{
    (void)f;
    gate_add(&g_pressure_dropped, 1);
}

static const weft_future_ops pinger_ops = { "pinger", 0, pinger_poll, pinger_drop, NULL };

typedef struct pressure {
    weft_future base;
    weft_co co;
    int i;
} pressure;

static weft_poll pressure_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(pressure, s);
    for (s->i = 0; s->i < PRESSURE_YIELDS; s->i++)
        WEFT_CO_YIELD(&s->co, cx);
    CO_FUTURE_END(s);
}

static void pressure_drop(weft_future *f)
{
    weft_co_drop(&((pressure *)f)->co);
    gate_add(&g_pressure_dropped, 1);
}

static const weft_future_ops pressure_ops = {
    "pressure", 0, pressure_poll, pressure_drop, NULL,
};

/* Spawns the pinger, the pressure tasks and the local tasks (between
 * batches of pressure tasks, yielding in between so the root itself may be
 * stolen and the local tasks get different owners), then joins the local
 * tasks. Output: how many local tasks finished with the right result. */
typedef struct steal_root {
    weft_future base;
    weft_co co;
    unsigned i;
    int nlocal;
    int j;
    uint64_t out;
    uint64_t ok;
    weft_join joins[LOCAL_TASKS];
} steal_root;

static void steal_root_spawn_local(steal_root *s)
{
    local_yielder y;
    co_future_init(&y, sizeof y, &local_yielder_ops, 0);
    y.k = s->nlocal;
    y.owner = weft_worker_index();
    y.i = 0;
    int rc = weft_spawn_local(&y.base, sizeof y, &s->joins[s->nlocal]);
    CHECK(rc == 0);
    if (rc != 0) {
        weft_future_drop(&y.base);
        return;
    }
    s->nlocal++;
}

static weft_poll steal_root_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(steal_root, s);
    {
        weft_future p;
        weft_future_init(&p, &pinger_ops, WEFT_F_SEND);
        int rc = weft_spawn(NULL, &p, sizeof p, NULL);
        CHECK(rc == 0);
        if (rc != 0)
            weft_future_drop(&p);
    }
    for (s->i = 0; s->i < PRESSURE_TASKS; s->i++) {
        pressure p;
        co_future_init(&p, sizeof p, &pressure_ops, WEFT_F_SEND);
        p.i = 0;
        int rc = weft_spawn(NULL, &p.base, sizeof p, NULL);
        CHECK(rc == 0);
        if (rc != 0)
            weft_future_drop(&p.base);
        if (s->i % (PRESSURE_TASKS / LOCAL_TASKS) == 0 && s->nlocal < LOCAL_TASKS)
            steal_root_spawn_local(s);
        if (s->i % 64 == 63)
            WEFT_CO_YIELD(&s->co, cx);
    }
    while (s->nlocal < LOCAL_TASKS)
        steal_root_spawn_local(s);
    for (s->j = 0; s->j < s->nlocal; s->j++) {
        WEFT_AWAIT(&s->co, cx, &s->joins[s->j].base, &s->out);
        if (s->joins[s->j].status == 0 && s->out == LOCAL_YIELDS)
            s->ok++;
    }
    *(uint64_t *)out = s->ok;
    CO_FUTURE_END(s);
}

static void steal_root_drop(weft_future *f)
{
    DOWNCAST(steal_root, s);
    /* Before the await loop `j` is 0 and every join is still ours. */
    co_future_drop_joins(&s->co, s->joins, s->j, s->nlocal);
}

static const weft_future_ops steal_root_ops = {
    "steal_root", sizeof(uint64_t), steal_root_poll, steal_root_drop, NULL,
};

static void test_local_tasks_stay_on_owner_under_steal_pressure(void **state)
{
    (void)state;
    memset(g_local_polls, 0, sizeof g_local_polls);
    memset(g_local_foreign_polls, 0, sizeof g_local_foreign_polls);
    for (int k = 0; k < LOCAL_TASKS; k++) {
        g_local_bad_index[k] = -2;
        weft_atomic_waker_init(&g_local_wakers[k]);
    }
    weft_atomic_store_relaxed(&g_locals_done, 0);
    gate_reset(&g_pressure_dropped);
    int misuse_before = misuse_count();

    weft_rt *rt = rt_start(STEAL_WORKERS);
    steal_root root;
    co_future_init(&root, sizeof root, &steal_root_ops, WEFT_F_SEND);
    root.i = 0;
    root.nlocal = 0;
    root.j = 0;
    root.ok = 0;
    uint64_t ok = 0;
    assert_int_equal(spawn_blocking(rt, &root.base, sizeof root, &ok, sizeof ok), 0);
    gate_wait(&g_pressure_dropped, PRESSURE_TASKS + 1);
    weft_worker_stats st[STEAL_WORKERS];
    unsigned n = STEAL_WORKERS;
    assert_int_equal(weft_rt_stats(rt, st, &n), 0);
    weft_rt_shutdown(rt);
    for (int k = 0; k < LOCAL_TASKS; k++)
        weft_atomic_waker_fini(&g_local_wakers[k]);

    assert_no_async_failures();
    /* A local task that reached the wrong worker is reported (debug builds
     * refuse to poll it there; release builds would poll it). */
    assert_no_misuse_since(misuse_before);
    assert_int_equal(ok, LOCAL_TASKS);
    uint64_t steals = 0;
    for (unsigned w = 0; w < n; w++)
        steals += st[w].steals;
    print_message("steal pressure: %llu tasks stolen\n", (unsigned long long)steals);
    for (int k = 0; k < LOCAL_TASKS; k++) {
        if (g_local_foreign_polls[k] != 0) {
            print_error("local task %d: %llu of %llu polls off its owner (e.g. on %d)\n", k,
                        (unsigned long long)g_local_foreign_polls[k],
                        (unsigned long long)g_local_polls[k], g_local_bad_index[k]);
            fail();
        }
        /* One poll per yield at least, plus the first. */
        assert_true(g_local_polls[k] >= LOCAL_YIELDS + 1);
    }
}

/* ================================================================================
 * A local task woken from a foreign thread runs on its owner
 * ================================================================================ */

#define HANDOFF_ROUNDS 200
#define HANDOFF_SPINNERS 8
#define HANDOFF_WORKERS 4

/* The waker a local task hands to the test thread, one round at a time. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool full;
    weft_waker waker;
} g_handoff = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, WEFT_WAKER_EMPTY };

static _Atomic bool g_handoff_stop;
static uint64_t g_handoff_polls;     /* written by the local task's polls */
static uint64_t g_handoff_off_owner; /* idem */

/* Hands a clone of `waker` to the test thread. */
static void hand_to_test_thread(void *arg, const weft_waker *waker)
{
    (void)arg;
    pthread_mutex_lock(&g_handoff.lock);
    g_handoff.waker = weft_waker_clone(waker);
    g_handoff.full = true;
    pthread_cond_signal(&g_handoff.cond);
    pthread_mutex_unlock(&g_handoff.lock);
}

typedef struct handoff_waiter {
    weft_future base;
    weft_co co;
    int owner, round;
    wait_once h;
} handoff_waiter;

static weft_poll handoff_waiter_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(handoff_waiter, s);
    g_handoff_polls++;
    if (weft_worker_index() != s->owner)
        g_handoff_off_owner++;
    WEFT_CO_BEGIN(&s->co);
    for (s->round = 0; s->round < HANDOFF_ROUNDS; s->round++) {
        wait_once_init(&s->h, hand_to_test_thread, NULL);
        WEFT_AWAIT(&s->co, cx, &s->h.base, NULL);
    }
    *(int *)out = s->round;
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(handoff_waiter, "handoff_waiter", sizeof(int));

/* Spawns the local waiter and joins it. */
typedef struct handoff_root {
    weft_future base;
    weft_co co;
    weft_join j;
    int out;
} handoff_root;

static weft_poll handoff_root_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(handoff_root, s);
    {
        handoff_waiter w;
        co_future_init(&w, sizeof w, &handoff_waiter_ops, 0);
        w.owner = weft_worker_index();
        w.round = 0;
        int rc = weft_spawn_local(&w.base, sizeof w, &s->j);
        CHECK(rc == 0);
        if (rc != 0) {
            weft_future_drop(&w.base);
            *(int *)out = -1;
            WEFT_CO_RETURN(&s->co);
        }
    }
    WEFT_AWAIT(&s->co, cx, &s->j.base, &s->out);
    CHECK(s->j.status == 0);
    *(int *)out = s->out;
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(handoff_root, "handoff_root", sizeof(int));

/* Keeps every worker busy, so a wake misrouted to the injector would be
 * picked up by whichever worker checks it first, not by a parked owner. */
static weft_poll busy_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)out;
    /* Acquire: pairs with the test thread's release store. */
    if (weft_atomic_load_acquire(&g_handoff_stop))
        return WEFT_READY;
    weft_waker_wake_by_ref(cx->waker); /* yield */
    return WEFT_PENDING;
}

static const weft_future_ops busy_ops = { "busy", 0, busy_poll, NULL, NULL };

/* Wait until the task behind a task waker is no longer being polled, so the
 * wake that follows takes the idle-task path (schedule from a foreign
 * thread) rather than the requeue of a task woken during its poll. This
 * peeks at the private task state on purpose: it is the path under test. */
static void wait_until_task_not_running(const weft_waker *w)
{
    struct weft__task *t = w->data;
    /* Acquire: a plain observation; the wake's own CAS does the ordering. */
    while (weft_atomic_load_acquire(&t->state) & WEFT_T_RUNNING)
        sched_yield();
}

static void test_local_task_woken_from_foreign_thread_runs_on_owner(void **state)
{
    (void)state;
    g_handoff_polls = 0;
    g_handoff_off_owner = 0;
    weft_atomic_store_relaxed(&g_handoff_stop, false);
    int misuse_before = misuse_count();
    weft_rt *rt = rt_start(HANDOFF_WORKERS);

    weft_join busy[HANDOFF_SPINNERS];
    for (int i = 0; i < HANDOFF_SPINNERS; i++) {
        weft_future b;
        weft_future_init(&b, &busy_ops, WEFT_F_SEND);
        assert_int_equal(weft_spawn(rt, &b, sizeof b, &busy[i]), 0);
    }
    handoff_root root;
    co_future_init(&root, sizeof root, &handoff_root_ops, WEFT_F_SEND);
    weft_join rj;
    assert_int_equal(weft_spawn(rt, &root.base, sizeof root, &rj), 0);

    for (int r = 0; r < HANDOFF_ROUNDS; r++) {
        pthread_mutex_lock(&g_handoff.lock);
        while (!g_handoff.full)
            pthread_cond_wait(&g_handoff.cond, &g_handoff.lock);
        weft_waker w = g_handoff.waker;
        g_handoff.waker = (weft_waker)WEFT_WAKER_EMPTY;
        g_handoff.full = false;
        pthread_mutex_unlock(&g_handoff.lock);
        wait_until_task_not_running(&w);
        weft_waker_wake(&w);
    }
    int rounds = 0;
    assert_int_equal(join_blocking(rt, &rj, &rounds, sizeof rounds), 0);
    /* Release: pairs with the busy tasks' acquire load. */
    weft_atomic_store_release(&g_handoff_stop, true);
    for (int i = 0; i < HANDOFF_SPINNERS; i++)
        assert_int_equal(join_blocking(rt, &busy[i], NULL, 0), 0);
    weft_rt_shutdown(rt);

    assert_no_async_failures();
    assert_no_misuse_since(misuse_before);
    assert_int_equal(rounds, HANDOFF_ROUNDS);
    assert_int_equal(g_handoff_off_owner, 0);
    /* One poll to start, one per wake: no wake lost, none invented. */
    assert_int_equal(g_handoff_polls, HANDOFF_ROUNDS + 1);
}

/* ================================================================================
 * Statistics
 * ================================================================================ */

#define STATS_TASKS 1000u

static _Atomic uint64_t g_stats_polls;
static _Atomic bool g_stats_child_ran;
static _Atomic int g_stats_first_child_worker;

static void stats_child(void *arg, void *out)
{
    (void)arg, (void)out;
    weft_atomic_fetch_add_relaxed(&g_stats_polls, 1);
    int expect = -1;
    atomic_compare_exchange_strong_explicit(&g_stats_first_child_worker, &expect,
                                            weft_worker_index(), memory_order_relaxed,
                                            memory_order_relaxed);
    /* Release: pairs with the spinning root's acquire load. */
    weft_atomic_store_release(&g_stats_child_ran, true);
}

/* On a 2-worker runtime: spawn two children from a worker (the second
 * goes to the LIFO slot and pushes the first into the ring), then keep
 * this worker busy until a child has run. The LIFO slot is never stolen
 * and the ring does not overflow, so the only way a child can run is the
 * other worker stealing the ring's task: a steal is certain, not likely.
 * A worker that blocks like this may miss the wake its own spawns would
 * send (a worker pushing to its own queue is expected to run it), so the
 * test thread then spawns a no-op task: a spawn from outside always wakes
 * an idle worker, which then finds the ring's task and steals it. */
static gate g_stats_ring_ready = GATE_INIT;

static void stats_root(void *arg, void *out)
{
    (void)arg;
    weft_atomic_fetch_add_relaxed(&g_stats_polls, 1);
    for (int i = 0; i < 2; i++)
        CHECK(weft_spawn_fn(NULL, stats_child, &(char){ 0 }, 0, NULL) == 0);
    gate_add(&g_stats_ring_ready, 1);
    /* Acquire: pairs with the child's release store. */
    while (!weft_atomic_load_acquire(&g_stats_child_ran))
        sched_yield();
    *(int *)out = weft_worker_index();
}

static void noop(void *arg, void *out)
{
    (void)arg, (void)out;
}

static void test_stats_report_per_worker_counters(void **state)
{
    (void)state;
    weft_atomic_store_relaxed(&g_stats_polls, 0);
    weft_atomic_store_relaxed(&g_stats_child_ran, false);
    weft_atomic_store_relaxed(&g_stats_first_child_worker, -1);
    gate_reset(&g_stats_ring_ready);
    weft_rt *rt = rt_start(2);

    weft_join rj;
    assert_int_equal(weft_spawn_fn(rt, stats_root, &(char){ 0 }, sizeof(int), &rj), 0);
    gate_wait(&g_stats_ring_ready, 1);
    assert_int_equal(weft_spawn_fn(rt, noop, &(char){ 0 }, 0, NULL), 0); /* the kick */
    int root_worker = -1;
    assert_int_equal(join_blocking(rt, &rj, &root_worker, sizeof root_worker), 0);

    weft_join joins[STATS_TASKS];
    for (unsigned i = 0; i < STATS_TASKS; i++)
        assert_int_equal(weft_spawn_fn(rt, stats_child, &(char){ 0 }, 0, &joins[i]), 0);
    for (unsigned i = 0; i < STATS_TASKS; i++)
        assert_int_equal(join_blocking(rt, &joins[i], NULL, 0), 0);
    /* The second child of the root may still be queued; it is not counted
     * by the joins above, so leave it out of the lower bound. */

    weft_worker_stats st[4];
    memset(st, 0xff, sizeof st);
    unsigned n = 4;
    assert_int_equal(weft_rt_stats(rt, st, &n), 0);
    assert_int_equal(n, 2);
    uint64_t polls = 0;
    for (unsigned w = 0; w < n; w++)
        polls += st[w].polls;
    /* Each join above acquired its task's completion, which the worker's
     * poll counter update precedes: the sum is at least what we ran. */
    assert_true(polls >= 1 + STATS_TASKS);
    assert_true(polls >= weft_atomic_load_relaxed(&g_stats_polls) - 1);
    /* Unused slots are left alone. */
    assert_int_equal(st[2].polls, UINT64_MAX);

    int thief = weft_atomic_load_relaxed(&g_stats_first_child_worker);
    assert_true(root_worker == 0 || root_worker == 1);
    assert_int_equal(thief, 1 - root_worker);
    assert_true(st[thief].steals >= 1);
    assert_true(st[thief].steal_ops >= 1);
    assert_true(st[thief].steals >= st[thief].steal_ops);

    /* Fewer slots than workers: fills what fits, reports the real count. */
    weft_worker_stats one;
    n = 1;
    assert_int_equal(weft_rt_stats(rt, &one, &n), 0);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(weft_rt_stats(rt, NULL, &n), 0);
    assert_int_equal(n, 2);
    n = 1;
    assert_int_equal(weft_rt_stats(rt, NULL, &n), -EINVAL);
    assert_int_equal(weft_rt_stats(rt, &one, NULL), -EINVAL);
    n = 1;
    assert_int_equal(weft_rt_stats(NULL, &one, &n), -EINVAL);
    weft_rt_shutdown(rt);
    assert_no_async_failures();
}

/* ================================================================================
 * Construction options
 * ================================================================================ */

static void test_rt_new_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = WEFT_RT_MAX_WORKERS + 1;
    static char sentinel;
    weft_rt *rt = (weft_rt *)(void *)&sentinel; /* a failed call stores NULL */
    assert_int_equal(weft_rt_new(&rt, &o), -EINVAL);
    assert_null(rt);
    o.workers = 1;
    assert_int_equal(weft_rt_new(NULL, &o), -EINVAL);
}

static void test_rt_new_with_null_options_uses_defaults(void **state)
{
    (void)state;
    weft_rt *rt = NULL;
    assert_int_equal(weft_rt_new(&rt, NULL), 0);
    weft_worker_stats st;
    unsigned n = 0;
    assert_int_equal(weft_rt_stats(rt, &st, &n), 0);
    assert_true(n >= 1 && n <= WEFT_RT_MAX_WORKERS);
    weft_rt_shutdown(rt);
}

typedef struct name_out {
    int index;
    char name[16];
} name_out;

/* On a worker: its index and its thread's name. */
static void name_of_worker(void *arg, void *out)
{
    (void)arg;
    name_out *o = out;
    o->index = weft_worker_index();
    if (pthread_getname_np(pthread_self(), o->name, sizeof o->name) != 0)
        o->name[0] = '\0';
}

/* Runs a probe on a runtime with `prefix` and checks the worker's name. */
static void check_thread_name(const char *prefix, const char *expect_prefix)
{
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 2;
    o.thread_name_prefix = prefix;
    weft_rt *rt = NULL;
    assert_int_equal(weft_rt_new(&rt, &o), 0);
    name_out out;
    memset(&out, 0, sizeof out);
    assert_int_equal(RUN_FN_BLOCKING(rt, name_of_worker, &out, sizeof out), 0);
    weft_rt_shutdown(rt);
    assert_true(out.index == 0 || out.index == 1);
    char expect[64];
    snprintf(expect, sizeof expect, "%s%d", expect_prefix, out.index);
    expect[15] = '\0'; /* the kernel keeps 15 bytes */
    assert_string_equal(out.name, expect);
}

static void test_thread_name_prefix_names_workers(void **state)
{
    (void)state;
    check_thread_name("tw-pool", "tw-pool");
    check_thread_name(NULL, "weft-w");
    /* Longer than the kernel allows: accepted and truncated. */
    check_thread_name("a-very-long-worker-prefix", "a-very-long-worker-prefix");
}

static void test_worker_index_is_minus_one_off_workers(void **state)
{
    (void)state;
    assert_int_equal(weft_worker_index(), -1);
    assert_null(weft_rt_current());
}

/* ================================================================================
 * Yield fairness on one worker
 * ================================================================================ */

#define FAIR_YIELDS 200
#define FAIR_LOG (2 * (FAIR_YIELDS + 1))
#define FAIR_MAX_RUN 4 /* a short LIFO streak is allowed, starvation is not */

/* Written by the single worker only; read after the joins. */
static int g_fair_log[FAIR_LOG];
static int g_fair_nlog;
static weft_join g_fair_joins[2];

typedef struct fair_yielder {
    weft_future base;
    weft_co co;
    int who, i;
} fair_yielder;

static weft_poll fair_yielder_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(fair_yielder, s);
    if (g_fair_nlog < FAIR_LOG)
        g_fair_log[g_fair_nlog++] = s->who;
    WEFT_CO_BEGIN(&s->co);
    for (s->i = 0; s->i < FAIR_YIELDS; s->i++)
        WEFT_CO_YIELD(&s->co, cx);
    *(int *)out = s->i;
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(fair_yielder, "fair_yielder", sizeof(int));

/* On the worker: spawns both yielders at once, so both are queued before
 * either runs. */
static void spawn_fair_yielders(void *arg, void *out)
{
    (void)arg, (void)out;
    for (int who = 0; who < 2; who++) {
        fair_yielder y;
        co_future_init(&y, sizeof y, &fair_yielder_ops, WEFT_F_SEND);
        y.who = who;
        y.i = 0;
        CHECK(weft_spawn(NULL, &y.base, sizeof y, &g_fair_joins[who]) == 0);
    }
}

static void test_yielding_tasks_interleave_on_one_worker(void **state)
{
    (void)state;
    g_fair_nlog = 0;
    weft_rt *rt = rt_start(1);
    assert_int_equal(RUN_FN_BLOCKING(rt, spawn_fair_yielders, NULL, 0), 0);
    assert_no_async_failures();
    for (int who = 0; who < 2; who++) {
        int out = 0;
        assert_int_equal(join_blocking(rt, &g_fair_joins[who], &out, sizeof out), 0);
        assert_int_equal(out, FAIR_YIELDS);
    }
    weft_rt_shutdown(rt);

    assert_int_equal(g_fair_nlog, FAIR_LOG);
    int polls[2] = { 0, 0 };
    int run = 0, max_run = 0, prev = -1;
    int other_at_first_finish = -1;
    for (int k = 0; k < g_fair_nlog; k++) {
        int who = g_fair_log[k];
        bool both_unfinished = polls[0] <= FAIR_YIELDS && polls[1] <= FAIR_YIELDS;
        polls[who]++;
        if (both_unfinished) {
            run = who == prev ? run + 1 : 1;
            if (run > max_run)
                max_run = run;
            if (polls[who] == FAIR_YIELDS + 1) /* this poll finished it */
                other_at_first_finish = polls[1 - who];
        }
        prev = who;
    }
    print_message("fairness: longest run %d, other task at %d/%d polls when the first finished\n",
                  max_run, other_at_first_finish, FAIR_YIELDS + 1);
    assert_true(max_run <= FAIR_MAX_RUN);
    assert_true(other_at_first_finish >= FAIR_YIELDS / 2);
}

/* ---- depth-first order, and the bound on it ----------------------------------------------- */

#define ORDER_CHILDREN 4

/* Written by the single worker only; read after the joins. */
static int g_order_log[ORDER_CHILDREN];
static int g_order_nlog;

static gate g_order_over = GATE_INIT;

static void order_child(void *arg, void *out)
{
    (void)out;
    g_order_log[g_order_nlog++] = *(int *)arg;
    gate_add(&g_order_over, 1);
}

/* On the worker: spawns the children in one poll, 0 first. */
static void spawn_order_children(void *arg, void *out)
{
    (void)arg, (void)out;
    for (int i = 0; i < ORDER_CHILDREN; i++)
        CHECK(weft_spawn_fn(NULL, order_child, &i, 0, NULL) == 0);
}

/* Tasks spawned (or woken) in one poll on a worker run newest first: the
 * last in the LIFO slot, each one it pushed out at the front of the ring.
 * A fork-join tree then runs depth-first and keeps a path of pending
 * tasks queued rather than a whole level (weft-bench fib_fork_join).
 * Through the back of the ring they ran 3, 0, 1, 2. */
static void test_tasks_spawned_in_one_poll_run_newest_first(void **state)
{
    (void)state;
    g_order_nlog = 0;
    gate_reset(&g_order_over);
    weft_rt *rt = rt_start(1);
    assert_int_equal(RUN_FN_BLOCKING(rt, spawn_order_children, NULL, 0), 0);
    gate_wait(&g_order_over, ORDER_CHILDREN); /* (the gate's lock publishes the log) */
    weft_rt_shutdown(rt);
    assert_no_async_failures();
    assert_int_equal(g_order_nlog, ORDER_CHILDREN);
    for (int i = 0; i < ORDER_CHILDREN; i++)
        assert_int_equal(g_order_log[i], ORDER_CHILDREN - 1 - i);
}

#define WIDE_TREE_DEPTH 13 /* a binary tree of 2^14 - 1 tasks */
#define WIDE_TREE_TASKS ((1u << (WIDE_TREE_DEPTH + 1)) - 1u)

static uint64_t g_wide_polls;       /* the single worker's only */
static uint64_t g_wide_longest_gap; /* tree polls between two yielder polls */

/* A full binary tree: a task of depth d > 0 spawns two of depth d - 1.
 * Run depth-first, it keeps the front of the ring busy until it is done:
 * only a few tasks are queued at a time, but every one is at the front. */
static void wide_tree_task(void *arg, void *out)
{
    (void)out;
    int depth = *(int *)arg;
    g_wide_polls++;
    for (int i = 0; i < 2 && depth > 0; i++) {
        int child = depth - 1;
        CHECK(weft_spawn_fn(NULL, wide_tree_task, &child, 0, NULL) == 0);
    }
}

/* Yields until the tree is done, noting the most tree polls between two of
 * its own polls. */
typedef struct gap_yielder {
    weft_future base;
    uint64_t last;
} gap_yielder;

static weft_poll gap_yielder_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    gap_yielder *y = (gap_yielder *)f;
    uint64_t gap = g_wide_polls - y->last;
    if (gap > g_wide_longest_gap)
        g_wide_longest_gap = gap;
    y->last = g_wide_polls;
    if (g_wide_polls >= WIDE_TREE_TASKS)
        return WEFT_READY;
    weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops gap_yielder_ops = { "gap_yielder", 0, gap_yielder_poll, NULL, NULL };

static weft_join g_gap_join;

/* On the worker: the yielder first (it goes to the back of the ring at
 * its first yield), then the tree's root. */
static void spawn_wide_tree_and_yielder(void *arg, void *out)
{
    (void)arg, (void)out;
    gap_yielder y = { .base = WEFT_FUTURE_INIT(&gap_yielder_ops, WEFT_F_SEND) };
    CHECK(weft_spawn(NULL, &y.base, sizeof y, &g_gap_join) == 0);
    int depth = WIDE_TREE_DEPTH;
    CHECK(weft_spawn_fn(NULL, wide_tree_task, &depth, 0, NULL) == 0);
}

/* Depth-first order must not starve what it runs ahead of: a yielding
 * task beside a tree of 16,383 tasks on one worker. Pushed out of the
 * LIFO slot by the tree's root, it starts at the bottom of the ring's
 * front run; without the ring's bounds it waited for the whole tree. With
 * them it waits WEFT_RING_FRONT_AGE_MAX pops from the front plus what is
 * queued then (each pop follows at most three LIFO polls): 2,000-3,700
 * tree polls here; spills to the injector stretch that, so the assertion
 * is half the tree: far above the bound, far below the starved wait. The
 * ring's own test (test_ring_front_run_is_served_within_its_age_bound)
 * checks the bound exactly. */
static void test_a_growing_tree_does_not_starve_a_yielding_task(void **state)
{
    (void)state;
    g_wide_polls = g_wide_longest_gap = 0;
    weft_rt *rt = rt_start(1);
    assert_int_equal(RUN_FN_BLOCKING(rt, spawn_wide_tree_and_yielder, NULL, 0), 0);
    assert_int_equal(join_blocking(rt, &g_gap_join, NULL, 0), 0);
    weft_rt_shutdown(rt);
    assert_no_async_failures();
    print_message("longest wait of the yielder: %" PRIu64 " tree polls\n", g_wide_longest_gap);
    assert_true(g_wide_longest_gap <= WIDE_TREE_TASKS / 2);
}

/* The runtime's structure keeps fields written by different threads on
 * lines of their own (alignas(64)), so its memory must be cache-line
 * aligned, whatever alignment the allocator gives (malloc: 16). */
static void test_runtime_memory_is_cache_line_aligned(void **state)
{
    (void)state;
    weft_rt *rts[8];
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 1;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(weft_rt_new(&rts[i], &o), 0);
        assert_int_equal((uintptr_t)rts[i] % 64u, 0);
    }
    for (int i = 0; i < 8; i++)
        weft_rt_shutdown(rts[i]);
}

/* ---- an idle runtime sleeps ------------------------------------------------ */

static uint64_t total_parks(weft_rt *rt)
{
    weft_worker_stats st[4];
    unsigned n = 4;
    assert_int_equal(weft_rt_stats(rt, st, &n), 0);
    uint64_t parks = 0;
    for (unsigned i = 0; i < n && i < 4; i++)
        parks += st[i].parks;
    return parks;
}

/* Wait for a sleep of `d` in weft_block_on on an otherwise idle runtime of
 * `workers` workers and count the workers' parks meanwhile. A worker that
 * parks as the timer driver must sleep until the timer is due, not spin:
 * a handful of parks per timer event (the arm, a coarse wheel slot's
 * start, the deadline), never one per spin. Counted, not timed. */
static void expect_idle_sleep_parks_at_most(unsigned workers, weft_duration d,
                                            uint64_t max_parks)
{
    weft_rt *rt;
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = workers;
    assert_int_equal(weft_rt_new(&rt, &o), 0);
    uint64_t before = total_parks(rt);
    weft_sleep s;
    weft_sleep_init(&s, d);
    assert_int_equal(weft_block_on(rt, &s.base, NULL, 0), 0);
    uint64_t parks = total_parks(rt) - before;
    weft_rt_shutdown(rt);
    print_message("idle sleep of %llu ms on %u worker(s): %llu parks\n",
                  (unsigned long long)(d / WEFT_MS(1)), workers, (unsigned long long)parks);
    assert_true(parks <= max_parks);
}

static void test_idle_runtime_waiting_on_a_short_sleep_parks_a_handful_of_times(void **state)
{
    (void)state;
    expect_idle_sleep_parks_at_most(1, WEFT_MS(30), 12);
    expect_idle_sleep_parks_at_most(2, WEFT_MS(30), 12);
}

static void test_idle_runtime_waiting_on_a_coarse_wheel_slot_parks_a_handful_of_times(void **state)
{
    (void)state;
    /* 200 ms sits on the wheel's second level: the driver wakes at the
     * start of its 64 ms slot, cascades it, and sleeps again. */
    expect_idle_sleep_parks_at_most(1, WEFT_MS(200), 12);
    expect_idle_sleep_parks_at_most(2, WEFT_MS(200), 16);
}

/* ================================================================================
 * Many workers, mostly idle: what a wake-up costs (idle.c, the spin in worker.c)
 * ================================================================================ */

#define MANY_WORKERS 64u
#define MANY_TICKS 50u

/* Sleeps 1 ms, MANY_TICKS times. */
typedef struct many_ticker {
    weft_future base;
    weft_co co;
    weft_sleep tick;
    unsigned n;
} many_ticker;

WEFT_ASYNC_FN(many_ticker, unsigned)
{
    WEFT_FN_BEGIN;
    for (self->n = 0; self->n < MANY_TICKS; self->n++) {
        weft_sleep_init(&self->tick, WEFT_MS(1));
        WEFT_FN_AWAIT(&self->tick, NULL);
    }
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

typedef struct idle_counts {
    uint64_t parks, spin_rounds, wakes;
} idle_counts;

static idle_counts idle_counts_of(weft_rt *rt)
{
    struct weft__pool *p = &rt->pool;
    idle_counts c = { 0, 0, 0 };
    for (unsigned i = 0; i < p->nworkers; i++) {
        /* Relaxed: samples (each counter has one writer). */
        c.parks += weft_atomic_load_relaxed(&p->workers[i].ctr.parks);
        c.spin_rounds += weft_atomic_load_relaxed(&p->workers[i].ctr.spin_rounds);
    }
    c.wakes = weft_atomic_load_relaxed(&p->idle.wakes);
    return c;
}

/* Every worker of `rt` is asleep (counted out of `unparked`). */
static bool all_asleep(weft_rt *rt)
{
    /* Relaxed: a sample; the test only waits for it. */
    return (weft_atomic_load_relaxed(&rt->pool.idle.state) >> 16) == 0;
}

/* 64 workers on a machine with far fewer CPUs, one task waking every
 * millisecond: each wake-up must cost a handful of parks and unparks (no
 * crowd woken) and little spinning (a searcher that keeps finding nothing
 * spins less), and the searchers stay within min(half the workers, CPUs).
 * Counted, not timed. */
static void test_many_mostly_idle_workers_park_wake_and_spin_a_bounded_number_of_times(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(MANY_WORKERS);
    WAIT_UNTIL(all_asleep(rt));
    idle_counts a = idle_counts_of(rt);
    unsigned ticks = 0;
    assert_int_equal(spawn_blocking(rt, &(many_ticker){ WEFT_FN_INIT(many_ticker, WEFT_F_SEND) }.base,
                                    sizeof(many_ticker), &ticks, sizeof ticks),
                     0);
    assert_int_equal(ticks, MANY_TICKS);
    idle_counts b = idle_counts_of(rt);
    unsigned cpus = weft__sys_cpu_count();
    unsigned bound = cpus < MANY_WORKERS / 2 ? cpus : MANY_WORKERS / 2;
    unsigned peak = weft_atomic_load_relaxed(&rt->pool.idle.searching_peak);
    unsigned max_searching = rt->pool.idle.max_searching;
    weft_rt_shutdown(rt);

    print_message("%u workers, %u ticks: %llu parks, %llu wakes, %llu spin rounds; "
                  "at most %u searchers (bound %u)\n",
                  MANY_WORKERS, MANY_TICKS, (unsigned long long)(b.parks - a.parks),
                  (unsigned long long)(b.wakes - a.wakes),
                  (unsigned long long)(b.spin_rounds - a.spin_rounds), peak, bound);
    assert_int_equal(max_searching, bound);
    assert_true(peak <= max_searching);
    assert_true(b.parks - a.parks <= 6u * MANY_TICKS);
    assert_true(b.wakes - a.wakes <= 4u * MANY_TICKS);
    assert_true(b.spin_rounds - a.spin_rounds <= 8u * MANY_TICKS);
}

/* ================================================================================
 * The LIFO slot behind a long poll (worker.c: steal_lifo)
 * ================================================================================ */

/* Written by the child (release), read by the parent and the test. */
static _Atomic bool g_lifo_child_ran;
static _Atomic int g_lifo_child_worker;
static weft_join g_lifo_child_join;

typedef struct lifo_parent_out {
    bool child_ran_first; /* the child ran before this poll returned */
    bool timed_out;       /* the wait for the other worker to sleep hung */
    int worker;
} lifo_parent_out;

static void lifo_child(void *arg, void *out)
{
    (void)arg, (void)out;
    weft_atomic_store_relaxed(&g_lifo_child_worker, weft_worker_index());
    /* Release: the worker index before the flag (pairs with the acquire
     * loads in lifo_parent and the test). */
    weft_atomic_store_release(&g_lifo_child_ran, true);
}

/* The parent: waits until the other worker is asleep, spawns the child
 * (into this worker's LIFO slot) and keeps polling until the child has
 * run — on the other worker, the only one free — or the hang limit. */
static void lifo_parent(void *arg, void *out)
{
    weft_rt *rt = *(weft_rt **)arg;
    lifo_parent_out *o = out;
    o->worker = weft_worker_index();
    o->timed_out = false;
    weft_instant start = weft_now();
    /* Relaxed: a sample; the other worker's sleep is what this waits for. */
    while ((weft_atomic_load_relaxed(&rt->pool.idle.state) >> 16) != 1) {
        if (wait_expired(start)) {
            o->timed_out = true;
            return;
        }
        sched_yield();
    }
    CHECK(weft_spawn_fn(NULL, lifo_child, &(char){ 0 }, 0, &g_lifo_child_join) == 0);
    start = weft_now();
    /* Acquire: pairs with the child's release store. */
    while (!weft_atomic_load_acquire(&g_lifo_child_ran) && !wait_expired(start))
        weft__cpu_relax();
    o->child_ran_first = weft_atomic_load_acquire(&g_lifo_child_ran);
}

/* A parent that spawns a child and then polls for long must not strand
 * the child in its worker's LIFO slot while another worker sleeps: the
 * sleeper is woken and takes the child, which runs before the parent's
 * poll returns. Ordering by flags, no clock but the hang limit. */
static void test_child_in_the_lifo_slot_runs_on_the_idle_worker_during_the_parents_poll(void **state)
{
    (void)state;
    weft_atomic_store_relaxed(&g_lifo_child_ran, false);
    weft_atomic_store_relaxed(&g_lifo_child_worker, -1);
    weft_rt *rt = rt_start(2);
    WAIT_UNTIL(all_asleep(rt));
    weft_join pj;
    lifo_parent_out o;
    assert_int_equal(weft_spawn_fn(rt, lifo_parent, &rt, sizeof o, &pj), 0);
    assert_int_equal(join_blocking(rt, &pj, &o, sizeof o), 0);
    assert_false(o.timed_out);
    assert_int_equal(join_blocking(rt, &g_lifo_child_join, NULL, 0), 0);
    assert_true(o.worker == 0 || o.worker == 1);
    weft_worker_stats st[2];
    unsigned n = 2;
    assert_int_equal(weft_rt_stats(rt, st, &n), 0);
    weft_rt_shutdown(rt);
    assert_no_async_failures();

    assert_true(o.child_ran_first);
    assert_int_equal(weft_atomic_load_acquire(&g_lifo_child_worker), 1 - o.worker);
    assert_true(st[1 - o.worker].steals >= 1); /* taken from the slot */
}

/* A ping-pong pair at full speed: each wakes the other into its worker's
 * LIFO slot from inside a poll, so the pair stays on one worker while the
 * other worker sleeps. Waking that sleeper for every such fill would cost
 * a futex wake-up, a search and a park per message; the wake is spent once
 * per busy spell (re-armed when the worker runs out of work or a thief
 * took its occupant). Stealing from the slot is switched off here, so that
 * a preempted worker (a loaded machine) cannot start new spells: then the
 * count of wake-ups does not depend on timing. */
#define PINGS 100000u

typedef struct flag_box {
    _Atomic bool full;
    weft_atomic_waker waker;
} flag_box;

static flag_box g_ping, g_pong;

static void flag_send(flag_box *b)
{
    /* Release: pairs with the acquire swap in flag_recv. */
    weft_atomic_store_release(&b->full, true);
    weft_atomic_waker_wake(&b->waker);
}

static weft_poll flag_recv(void *ctx, weft_cx *cx, void *out)
{
    flag_box *b = ctx;
    (void)out;
    /* Acquire: pairs with the release store in flag_send. */
    if (weft_atomic_swap_acquire(&b->full, false))
        return WEFT_READY;
    weft_atomic_waker_register(&b->waker, cx->waker);
    if (weft_atomic_swap_acquire(&b->full, false))
        return WEFT_READY;
    return WEFT_PENDING;
}

typedef struct lifo_pinger {
    weft_future base;
    weft_co co;
    flag_box *out, *in;
    weft_poll_fn wait;
    unsigned n;
} lifo_pinger;

/* Sends first when `out` is g_ping, else answers; PINGS times each. */
WEFT_ASYNC_FN(lifo_pinger, unsigned)
{
    WEFT_FN_BEGIN;
    for (self->n = 0; self->n < PINGS; self->n++) {
        if (self->out == &g_ping)
            flag_send(self->out);
        if (weft_poll_fn_init(&self->wait, flag_recv, self->in, 0, WEFT_F_SEND) != 0)
            break;
        WEFT_FN_AWAIT(&self->wait, NULL);
        if (self->out == &g_pong)
            flag_send(self->out);
    }
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

static uint64_t total_steals(weft_rt *rt)
{
    weft_worker_stats st[2];
    unsigned n = 2;
    assert_int_equal(weft_rt_stats(rt, st, &n), 0);
    return st[0].steals + st[1].steals;
}

static void test_ping_pong_beside_an_idle_worker_wakes_it_once_per_busy_spell(void **state)
{
    (void)state;
    weft_atomic_init(&g_ping.full, false);
    weft_atomic_init(&g_pong.full, false);
    weft_atomic_waker_init(&g_ping.waker);
    weft_atomic_waker_init(&g_pong.waker);
    weft_rt *rt = rt_start(2);
    weft_atomic_store_relaxed(&rt->pool.lifo_steal_after_ns, UINT64_MAX);
    WAIT_UNTIL(all_asleep(rt));
    uint64_t wakes0 = weft_atomic_load_relaxed(&rt->pool.idle.wakes);
    uint64_t steals0 = total_steals(rt);
    weft_join j[2];
    assert_int_equal(WEFT_SPAWN(rt, &j[0],
                                &(lifo_pinger){ WEFT_FN_INIT(lifo_pinger, WEFT_F_SEND),
                                                .out = &g_pong, .in = &g_ping }),
                     0);
    assert_int_equal(WEFT_SPAWN(rt, &j[1],
                                &(lifo_pinger){ WEFT_FN_INIT(lifo_pinger, WEFT_F_SEND),
                                                .out = &g_ping, .in = &g_pong }),
                     0);
    unsigned n[2] = { 0, 0 };
    assert_int_equal(join_blocking(rt, &j[1], &n[1], sizeof n[1]), 0);
    assert_int_equal(join_blocking(rt, &j[0], &n[0], sizeof n[0]), 0);
    uint64_t wakes = weft_atomic_load_relaxed(&rt->pool.idle.wakes) - wakes0;
    uint64_t steals = total_steals(rt) - steals0;
    weft_rt_shutdown(rt);
    weft_atomic_waker_fini(&g_ping.waker);
    weft_atomic_waker_fini(&g_pong.waker);

    print_message("%u round trips: %llu wake-ups, %llu steals\n", PINGS,
                  (unsigned long long)wakes, (unsigned long long)steals);
    assert_int_equal(n[0], PINGS);
    assert_int_equal(n[1], PINGS);
    /* The spawns' wake-ups (the first worker, its fan-out), then one per
     * busy spell: one spell, plus two for each time the pair moved (a
     * steal from the ring, the streak rule's way out). A wake not spent
     * would wake the idle worker each time it went back to sleep: tens
     * to thousands of times, with the machine's load. */
    assert_true(wakes <= 8 + 2 * steals);
}

/* ---- busy workers fire due timers ------------------------------------------------ */

/* Parks of every worker of `rt`, from any thread (no cmocka assertion:
 * workers call it too); UINT64_MAX if the stats cannot be read. */
static uint64_t parks_sampled(weft_rt *rt)
{
    weft_worker_stats st[4];
    unsigned n = 4;
    if (weft_rt_stats(rt, st, &n) != 0 || n > 4)
        return UINT64_MAX;
    uint64_t parks = 0;
    for (unsigned i = 0; i < n; i++)
        parks += st[i].parks;
    return parks;
}

static _Atomic bool g_nap_armed; /* the nap's sleep is in the wheel */
static _Atomic bool g_nap_done;  /* the nap's sleep completed */
static gate g_long_polls_over = GATE_INIT;

/* A task that sleeps 2 ms and raises g_nap_done; g_nap_armed once its
 * first poll armed the timer. */
typedef struct nap_task {
    weft_future base;
    weft_sleep sleep;
    bool started;
} nap_task;

static weft_poll nap_poll(weft_future *f, weft_cx *cx, void *out)
{
    nap_task *n = (nap_task *)f;
    (void)out;
    if (!n->started) {
        weft_sleep_init(&n->sleep, WEFT_MS(2));
        n->started = true;
    }
    weft_poll r = weft_future_poll(&n->sleep.base, cx, NULL);
    /* Release: pairs with the acquire loads in long_poll. */
    weft_atomic_store_release(&g_nap_armed, true);
    if (r == WEFT_PENDING)
        return WEFT_PENDING;
    weft_atomic_store_release(&g_nap_done, true);
    return WEFT_READY;
}

static void nap_drop(weft_future *f)
{
    nap_task *n = (nap_task *)f;
    if (n->started)
        weft_future_drop(&n->sleep.base);
}

static const weft_future_ops nap_ops = { "nap", 0, nap_poll, nap_drop, NULL };

/* A task whose every poll lasts at least 1 ms of spinning, then yields,
 * until the nap is over (or 200 polls, so that a timer that never fires
 * ends the test rather than hangs it). Output: its polls since the nap's
 * timer was armed. It also checks that no worker parked meanwhile. */
#define LONG_POLLS_MAX 200u

typedef struct long_poller {
    weft_future base;
    weft_rt *rt;
    uint64_t parks_at_start;
    uint32_t polls_armed;
    bool started;
} long_poller;

static weft_poll long_poll(weft_future *f, weft_cx *cx, void *out)
{
    long_poller *p = (long_poller *)f;
    if (!p->started) {
        p->parks_at_start = parks_sampled(p->rt);
        p->started = true;
    }
    weft_instant end = weft_now() + WEFT_MS(1);
    while (weft_now() < end)
        ;
    /* Acquire: pairs with the release stores in nap_poll. */
    if (weft_atomic_load_acquire(&g_nap_armed))
        p->polls_armed++;
    if (!weft_atomic_load_acquire(&g_nap_done) && p->polls_armed < LONG_POLLS_MAX) {
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    CHECK(parks_sampled(p->rt) == p->parks_at_start);
    memcpy(out, &p->polls_armed, sizeof p->polls_armed);
    gate_add(&g_long_polls_over, 1);
    return WEFT_READY;
}

static const weft_future_ops long_poller_ops = { "long_poller", sizeof(uint32_t), long_poll,
                                                 NULL, NULL };

/* The only worker runs 1 ms polls back to back, so it never parks and
 * never idles: it must fire the nap's 2 ms timer between two polls by the
 * clock. Each poll lasts at least 1 ms however slow the machine, so the
 * timer (at most 3 ms after it was armed, counting the round-up to the
 * wheel's tick) is due after the third poll following the arm; the nap
 * runs next (the fired wake lands in the LIFO slot), and the poller sees
 * it at its next poll. A worker that fires timers only every 61st
 * scheduler tick lets about 60 polls go by. Counted, not timed: the
 * assertion is on polls. The test thread waits on a gate, not in
 * weft_block_on, which fires due timers itself. */
static void test_busy_worker_fires_a_due_timer_between_long_polls(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(1);
    weft_atomic_store_relaxed(&g_nap_armed, false);
    weft_atomic_store_relaxed(&g_nap_done, false);
    gate_reset(&g_long_polls_over);
    nap_task nap = { .base = WEFT_FUTURE_INIT(&nap_ops, WEFT_F_SEND) };
    long_poller lp = { .base = WEFT_FUTURE_INIT(&long_poller_ops, WEFT_F_SEND), .rt = rt };
    weft_join nap_join, lp_join;
    assert_int_equal(weft_spawn(rt, &nap.base, sizeof nap, &nap_join), 0);
    assert_int_equal(weft_spawn(rt, &lp.base, sizeof lp, &lp_join), 0);
    gate_wait(&g_long_polls_over, 1);
    uint32_t polls = 0;
    assert_int_equal(join_blocking(rt, &lp_join, &polls, sizeof polls), 0);
    assert_int_equal(join_blocking(rt, &nap_join, NULL, 0), 0);
    weft_rt_shutdown(rt);
    assert_no_async_failures();
    print_message("nap fired after %u long polls\n", polls);
    assert_true(polls <= 8);
}

/* ---- two timers due in one tick ------------------------------------------------------- */

#define SAME_TICK_BUSY 3u

static _Atomic uint64_t g_busy_polls; /* polls of the busy tasks so far */
static _Atomic unsigned g_same_tick_done; /* naps resumed */
static gate g_same_tick_over = GATE_INIT;

/* Spins 200 µs a poll and yields, until both naps resumed. */
static weft_poll busy_yield_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f;
    (void)out;
    weft_instant end = weft_now() + WEFT_US(200);
    while (weft_now() < end)
        ;
    weft_atomic_fetch_add_relaxed(&g_busy_polls, 1);
    /* Acquire: pairs with the naps' release increments. */
    if (weft_atomic_load_acquire(&g_same_tick_done) == 2)
        return WEFT_READY;
    weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops busy_yield_ops = { "busy_yield", 0, busy_yield_poll, NULL, NULL };

/* Sleeps until `deadline`, then records how many busy polls ran by then. */
typedef struct same_tick_nap {
    weft_future base;
    weft_sleep sleep;
    uint64_t *busy_at_resume;
} same_tick_nap;

static weft_poll same_tick_nap_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    same_tick_nap *n = (same_tick_nap *)f;
    if (weft_future_poll(&n->sleep.base, cx, NULL) == WEFT_PENDING)
        return WEFT_PENDING;
    *n->busy_at_resume = weft_atomic_load_relaxed(&g_busy_polls);
    /* Release: the record above before the busy tasks see the count. */
    if (weft_atomic_fetch_add_release(&g_same_tick_done, 1) + 1 == 2)
        gate_add(&g_same_tick_over, 1);
    return WEFT_READY;
}

static void same_tick_nap_drop(weft_future *f)
{
    weft_future_drop(&((same_tick_nap *)f)->sleep.base);
}

static const weft_future_ops same_tick_nap_ops = { "same_tick_nap", 0, same_tick_nap_poll,
                                                   same_tick_nap_drop, NULL };

/* The only worker runs 200 µs polls of three yielding tasks back to back
 * while two naps sleep until one deadline: both timers fire in the same
 * tick, between two polls, and both naps must run before the busy tasks
 * poll again. Through the LIFO slot the second nap pushed the first out
 * to the back of the ring, behind the three busy tasks: three polls (one
 * poll of lateness each). Counted, not timed; the test thread waits on a
 * gate, not in weft_block_on (which fires due timers itself). */
static void test_timers_due_in_one_tick_run_before_the_queued_polls(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(1);
    weft_atomic_store_relaxed(&g_busy_polls, 0);
    weft_atomic_store_relaxed(&g_same_tick_done, 0);
    gate_reset(&g_same_tick_over);
    uint64_t at[2] = { 0, 0 };
    weft_instant deadline = weft_now() + WEFT_MS(5);
    weft_join naps[2], busy[SAME_TICK_BUSY];
    for (unsigned i = 0; i < 2; i++) {
        same_tick_nap n = { .base = WEFT_FUTURE_INIT(&same_tick_nap_ops, WEFT_F_SEND),
                            .busy_at_resume = &at[i] };
        weft_sleep_until_init(&n.sleep, deadline);
        assert_int_equal(weft_spawn(rt, &n.base, sizeof n, &naps[i]), 0);
    }
    for (unsigned i = 0; i < SAME_TICK_BUSY; i++) {
        weft_future b = WEFT_FUTURE_INIT(&busy_yield_ops, WEFT_F_SEND);
        assert_int_equal(weft_spawn(rt, &b, sizeof b, &busy[i]), 0);
    }
    gate_wait(&g_same_tick_over, 1);
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(join_blocking(rt, &naps[i], NULL, 0), 0);
    for (unsigned i = 0; i < SAME_TICK_BUSY; i++)
        assert_int_equal(join_blocking(rt, &busy[i], NULL, 0), 0);
    weft_rt_shutdown(rt);
    uint64_t apart = at[0] > at[1] ? at[0] - at[1] : at[1] - at[0];
    print_message("naps resumed after %" PRIu64 " and %" PRIu64 " busy polls\n", at[0], at[1]);
    assert_true(at[0] > 0 && at[1] > 0); /* the timers fired between busy polls */
    assert_true(apart < SAME_TICK_BUSY);
}

/* ---- an idle runtime with a ticker ---------------------------------------------- */

#define TICKER_TICKS 10u

static gate g_ticker_over = GATE_INIT;

/* Sleeps 10 ms TICKER_TICKS times, then opens g_ticker_over. */
typedef struct ticker_task {
    weft_future base;
    weft_co co;
    weft_sleep tick;
    unsigned n;
} ticker_task;

static weft_poll ticker_task_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    CO_FUTURE_BEGIN(ticker_task, self);
    for (self->n = 0; self->n < TICKER_TICKS; self->n++) {
        weft_sleep_init(&self->tick, WEFT_MS(10));
        WEFT_AWAIT(&self->co, cx, &self->tick.base, NULL);
    }
    gate_add(&g_ticker_over, 1);
    CO_FUTURE_END(self);
}
CO_FUTURE_OPS(ticker_task, "ticker_task", 0);

/* Parks of each of the two workers of `rt`. */
static void parks_of_two(weft_rt *rt, uint64_t parks[2])
{
    weft_worker_stats st[2];
    unsigned n = 2;
    assert_int_equal(weft_rt_stats(rt, st, &n), 0);
    assert_int_equal(n, 2);
    parks[0] = st[0].parks;
    parks[1] = st[1].parks;
}

/* One worker drives the ticker's timers: woken by its deadline, it fires
 * the tick, runs the ticker (which arms the next tick) and parks again as
 * the driver; the other worker sleeps throughout. About one park per tick
 * (plus one where a tick's timer sits on the wheel's second level and is
 * cascaded first), where handing the role on at every wake made both
 * workers park at every tick. The test thread waits on a gate, not in
 * weft_block_on, which would fire the timers itself. Counted, not timed. */
static void test_idle_runtime_with_a_ticker_leaves_the_other_worker_asleep(void **state)
{
    (void)state;
    weft_rt *rt = rt_start(2);
    gate_reset(&g_ticker_over);
    uint64_t before[2], after[2];
    parks_of_two(rt, before);
    ticker_task tk;
    co_future_init(&tk, sizeof tk, &ticker_task_ops, WEFT_F_SEND);
    weft_join j;
    assert_int_equal(weft_spawn(rt, &tk.base, sizeof tk, &j), 0);
    gate_wait(&g_ticker_over, 1);
    parks_of_two(rt, after);
    assert_int_equal(join_blocking(rt, &j, NULL, 0), 0);
    weft_rt_shutdown(rt);
    uint64_t p0 = after[0] - before[0], p1 = after[1] - before[1];
    print_message("%u ticks: parks %llu + %llu\n", TICKER_TICKS, (unsigned long long)p0,
                  (unsigned long long)p1);
    assert_true(p0 + p1 <= TICKER_TICKS * 2u - 2u);
    assert_true((p0 < p1 ? p0 : p1) <= 3u);
}

/* ---- a burst fans out to a worker that was on its way to sleep ------------------- */

#define MEET_ROUNDS 40u

static _Atomic unsigned g_arrived;

/* One of two tasks that wait for each other inside their first poll (so
 * each holds a worker), giving up after 2 s so that a lost wake-up ends
 * the round instead of hanging it. Output: 1 if it gave up. */
static weft_poll meet_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx;
    weft_atomic_fetch_add_relaxed(&g_arrived, 1);
    weft_instant give_up = weft_now() + WEFT_SEC(2);
    while (weft_atomic_load_relaxed(&g_arrived) < 2 && weft_now() < give_up)
        sched_yield();
    *(int *)out = weft_atomic_load_relaxed(&g_arrived) < 2;
    return WEFT_READY;
}

static const weft_future_ops meet_ops = { "meet", sizeof(int), meet_poll, NULL, NULL };

typedef struct meet_task {
    weft_future base;
} meet_task;

/* Two tasks spawned at once onto a runtime whose workers are just going
 * to sleep must run at the same time: the worker that finds them (the
 * searcher) runs one and must wake the other worker for the second. That
 * other worker may have given up searching (one searcher at a time) and
 * be on its way to sleep, not yet counted as sleeping, when the searcher
 * looks for a sleeper to wake: it must then look at the queues itself
 * before it sleeps, or the second task waits for the first one's poll to
 * end (here: the give-up). Counted over fresh runtimes, where worker
 * start-up makes that window likely. */
static void test_a_burst_reaches_a_worker_parking_while_the_searcher_finds_it(void **state)
{
    (void)state;
    unsigned lonely = 0;
    for (unsigned r = 0; r < MEET_ROUNDS; r++) {
        weft_rt *rt = rt_start(2);
        weft_atomic_store_relaxed(&g_arrived, 0);
        weft_join j[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(WEFT_SPAWN(rt, &j[i], &(meet_task){ WEFT_FUTURE_INIT(&meet_ops, WEFT_F_SEND) }), 0);
        for (int i = 0; i < 2; i++) {
            int gave_up = -1;
            assert_int_equal(join_blocking(rt, &j[i], &gave_up, sizeof gave_up), 0);
            lonely += gave_up == 1;
        }
        weft_rt_shutdown(rt);
    }
    print_message("%u of %u rounds: the two tasks never ran at once\n", lonely, MEET_ROUNDS);
    assert_int_equal(lonely, 0);
}

/* An optional argument selects tests by name pattern (e.g. "*shutdown*"). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rt_new_rejects_bad_arguments),
        cmocka_unit_test(test_rt_new_with_null_options_uses_defaults),
        cmocka_unit_test(test_worker_index_is_minus_one_off_workers),
        cmocka_unit_test(test_thread_name_prefix_names_workers),
        cmocka_unit_test(test_shutdown_of_idle_runtime_returns),
        cmocka_unit_test(test_spawn_from_four_foreign_threads_runs_each_task_once),
        cmocka_unit_test(test_nested_spawn_tree_joins_children_results),
        cmocka_unit_test(test_runtime_with_one_and_four_workers_runs_tree),
        cmocka_unit_test(test_block_on_from_worker_fails_with_edeadlk),
        cmocka_unit_test(test_shutdown_cancels_pending_and_running_tasks),
        cmocka_unit_test(test_spawn_of_non_send_future_fails_with_eperm),
        cmocka_unit_test(test_spawn_local_from_foreign_thread_fails_with_eperm),
        cmocka_unit_test(test_local_tasks_stay_on_owner_under_steal_pressure),
        cmocka_unit_test(test_local_task_woken_from_foreign_thread_runs_on_owner),
        cmocka_unit_test(test_stats_report_per_worker_counters),
        cmocka_unit_test(test_yielding_tasks_interleave_on_one_worker),
        cmocka_unit_test(test_runtime_memory_is_cache_line_aligned),
        cmocka_unit_test(test_idle_runtime_waiting_on_a_short_sleep_parks_a_handful_of_times),
        cmocka_unit_test(test_idle_runtime_waiting_on_a_coarse_wheel_slot_parks_a_handful_of_times),
        cmocka_unit_test(test_many_mostly_idle_workers_park_wake_and_spin_a_bounded_number_of_times),
        cmocka_unit_test(test_child_in_the_lifo_slot_runs_on_the_idle_worker_during_the_parents_poll),
        cmocka_unit_test(test_ping_pong_beside_an_idle_worker_wakes_it_once_per_busy_spell),
        cmocka_unit_test(test_busy_worker_fires_a_due_timer_between_long_polls),
        cmocka_unit_test(test_timers_due_in_one_tick_run_before_the_queued_polls),
        cmocka_unit_test(test_tasks_spawned_in_one_poll_run_newest_first),
        cmocka_unit_test(test_a_growing_tree_does_not_starve_a_yielding_task),
        cmocka_unit_test(test_idle_runtime_with_a_ticker_leaves_the_other_worker_asleep),
        cmocka_unit_test(test_a_burst_reaches_a_worker_parking_while_the_searcher_finds_it),
    };
    return cmocka_run_group_tests(tests, misuse_capture_setup, misuse_capture_teardown);
}
