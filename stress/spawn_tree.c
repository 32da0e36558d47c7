/* stress_spawn_tree: random trees of tasks on a real runtime, with aborts,
 * detaches, foreign wakers, foreign joiners and shutdown in mid-flight.
 *
 *   stress_spawn_tree [--threads N] [--iters N] [--seed S] [--seconds T]
 *
 * --threads  workers per runtime (default 2)
 * --iters    stop after this many rounds (default 0: only the time box)
 * --seed     the run's seed (default: from the clock); printed first
 * --seconds  time box (default 3)
 *
 * Each round builds a runtime, spawns a root task and lets the tree grow.
 * Every decision a task makes (how many children, Send or local, join,
 * abort, detach or hand the join to a foreign thread, when to yield, whether
 * to wait for a foreign wake, whether to keep polling for up to 100 us right
 * after a spawn, so that an idle worker steals the child from the LIFO
 * slot while a parent's abort may race with it) comes from a PRNG whose state lives in the
 * task and is derived from the round's seed and the task's path in the
 * tree, so a seed replays the same tree shapes; only the interleavings
 * differ. Some rounds shut the runtime down while the tree still runs.
 *
 * Invariants (any violation aborts with the seed and round):
 *  - every future that was initialised is dropped exactly once;
 *  - a join yields the child's exact output with status 0, or -ECANCELED
 *    only when that child was aborted or the runtime was shutting down,
 *    and -ECANCELED exactly when the child's future never finished;
 *  - completed + cancelled == spawned (+ spawns refused at shutdown);
 *  - a local task is only ever polled on the worker that spawned it;
 *  - no hang: a watchdog aborts after seconds * 10 + 30 s.
 * The program never sleeps to wait for a thread: waits are joins, condition
 * variables and (for the watchdog) one timed wait. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"

#include "stress_common.h"
#include "support/co_future.h"
#include "support/downcast.h"
#include "support/waker_ops.h"

/* What a node with seed `seed` outputs. */
static uint64_t expected_output(uint64_t seed)
{
    return mix64(seed ^ 0x0f0e0d0c0b0a0908ull);
}

/* ---- per-round state ------------------------------------------------------------ */

#define MAX_FANOUT 4
#define MAX_DEPTH 6
/* Upper bound on nodes per round: sum of MAX_FANOUT^d for d <= MAX_DEPTH. */
#define MAX_NODES 8192u
#define WAKER_THREADS 2
#define JOINER_THREADS 2

typedef struct round_state {
    uint64_t seed;
    unsigned max_depth, max_fanout;
    bool bushy; /* nodes have many children (else often none) */
    bool shutdown_mid;
    /* Set (release) just before weft_rt_shutdown in rounds that shut down
     * mid-flight; read (acquire) by checks that then accept -ECANCELED. */
    _Atomic bool shutting_down;

    _Atomic uint32_t allocated; /* node ids handed out */
    /* Per node id. */
    _Atomic uint8_t drops[MAX_NODES];
    _Atomic uint8_t completed[MAX_NODES];   /* its poll returned READY */
    _Atomic uint8_t aborted[MAX_NODES];     /* someone called abort on it */
    _Atomic uint8_t spawn_failed[MAX_NODES];/* spawn refused; spawner dropped it */

    /* Events, this round's and the run's (the summary line). */
    stress_counter n_rounds_shut_down, n_nodes, n_completed, n_cancelled, n_failed_spawns;
    stress_counter n_aborts_task, n_aborts_foreign, n_detached, n_foreign_waits, n_local,
        n_stuck, n_joins_ok, n_joins_cancelled, n_long_polls;

    /* Progress, for the test thread to wait on. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t spawned;   /* successful spawns */
    uint64_t dropped;   /* node drops */
    bool root_dropped;
} round_state;

static round_state g_rs = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void progress_add(uint64_t spawned, uint64_t dropped, bool root)
{
    pthread_mutex_lock(&g_rs.lock);
    g_rs.spawned += spawned;
    g_rs.dropped += dropped;
    if (root)
        g_rs.root_dropped = true;
    pthread_cond_broadcast(&g_rs.cond);
    pthread_mutex_unlock(&g_rs.lock);
}

static bool shutting_down(void)
{
    return atomic_load_explicit(&g_rs.shutting_down, memory_order_acquire);
}

/* ---- a mailbox of work for the foreign threads ------------------------------------ */

typedef struct mailbox {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void **items;
    size_t n, cap;
    bool closed; /* the round is over: drain and exit */
} mailbox;

static mailbox g_wakes;  /* weft_waker * (heap): tasks waiting on a foreign wake */
static mailbox g_joins;  /* join_box *: joins handed to foreign threads */
/* weft_waker * (heap) of stuck tasks: nobody wakes them; the test thread
 * drops them after shutdown. */
static mailbox g_stuck;

static void mailbox_init(mailbox *m)
{
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    m->items = NULL;
    m->n = m->cap = 0;
    m->closed = false;
}

static void mailbox_fini(mailbox *m)
{
    free(m->items);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
}

static void mailbox_put(mailbox *m, void *item)
{
    pthread_mutex_lock(&m->lock);
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        void **items = realloc(m->items, cap * sizeof *items);
        STRESS_ENSURE(items, "out of memory");
        m->items = items;
        m->cap = cap;
    }
    m->items[m->n++] = item;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

/* Take a random item, waiting for one; NULL once closed and empty. */
static void *mailbox_take(mailbox *m, uint64_t *rng)
{
    pthread_mutex_lock(&m->lock);
    while (m->n == 0 && !m->closed)
        pthread_cond_wait(&m->cond, &m->lock);
    void *item = NULL;
    if (m->n > 0) {
        size_t i = rng_next32(rng) % m->n;
        item = m->items[i];
        m->items[i] = m->items[--m->n];
    }
    pthread_mutex_unlock(&m->lock);
    return item;
}

static void mailbox_close(mailbox *m)
{
    pthread_mutex_lock(&m->lock);
    m->closed = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

/* ---- a waker for foreign threads ----------------------------------------------------- */

/* Reference-counted, because a join handle keeps a clone of it inside its
 * task after the waiting thread has moved on. */
typedef struct thread_waker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool woken;
    _Atomic unsigned refs;
} thread_waker;

TEST_WAKER_OPS(tw);

static thread_waker *tw_new(void)
{
    thread_waker *t = malloc(sizeof *t);
    STRESS_ENSURE(t, "out of memory");
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->woken = false;
    atomic_init(&t->refs, 1);
    return t;
}

static weft_waker tw_clone(const void *data)
{
    /* Relaxed: a new reference is made from an existing one. */
    atomic_fetch_add_explicit(&((thread_waker *)data)->refs, 1, memory_order_relaxed);
    return waker_of(&tw_ops, data);
}

static void tw_drop(void *data)
{
    thread_waker *t = data;
    /* AcqRel: the last holder sees every other holder's use before freeing. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
    }
}

static void tw_wake_by_ref(const void *data)
{
    thread_waker *t = (thread_waker *)data;
    pthread_mutex_lock(&t->lock);
    t->woken = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void tw_wake(void *data)
{
    tw_wake_by_ref(data);
    tw_drop(data);
}

static void tw_wait(thread_waker *t)
{
    pthread_mutex_lock(&t->lock);
    while (!t->woken)
        pthread_cond_wait(&t->cond, &t->lock);
    t->woken = false;
    pthread_mutex_unlock(&t->lock);
}

/* Poll `f` to completion on this (non-worker) thread without calling into
 * the runtime, so it stays legal after weft_rt_shutdown. */
static void poll_to_completion(weft_future *f, void *out)
{
    thread_waker *t = tw_new();
    weft_waker w = waker_of(&tw_ops, t);
    for (;;) {
        weft_cx cx;
        weft_cx_init(&cx, &w);
        if (weft_future_poll(f, &cx, out) == WEFT_READY)
            break;
        tw_wait(t);
    }
    tw_drop(t);
}

/* ---- checking a join's result -------------------------------------------------------- */

static void check_join_result(const char *who, uint32_t id, uint64_t seed, int status,
                              uint64_t out)
{
    bool done = atomic_load_explicit(&g_rs.completed[id], memory_order_acquire);
    bool may_cancel = atomic_load_explicit(&g_rs.aborted[id], memory_order_acquire) ||
                      shutting_down();
    stress_check_join(who, "node", id, status, out, done, expected_output(seed), may_cancel);
    stress_count(status == 0 ? &g_rs.n_joins_ok : &g_rs.n_joins_cancelled);
}

/* ---- a join handed to a foreign thread ------------------------------------------------ */

typedef struct join_box {
    weft_join j; /* initialised by weft_spawn; pinned in this heap block */
    uint32_t id;
    uint64_t seed;
    bool stuck; /* the child can only end by being cancelled */
} join_box;

/* A stuck child never finishes on its own, so once aborted its join must
 * say -ECANCELED: an abort that does nothing shows up here (or as a hang
 * the watchdog reports). */
static void check_stuck_join(const char *who, uint32_t id, int status)
{
    STRESS_ENSURE(status == -ECANCELED, "%s: stuck node %u was aborted but its join says %d", who,
           id, status);
}

static void *joiner_main(void *arg)
{
    uint64_t rng = rng_seed((uintptr_t)arg ^ g_rs.seed);
    join_box *b;
    while ((b = mailbox_take(&g_joins, &rng))) {
        /* The abort decision belongs to the child, so it replays. */
        uint64_t r = rng_seed(b->seed ^ 0xab);
        if (rng_next32(&r) % 2 == 0 || b->stuck) {
            atomic_store_explicit(&g_rs.aborted[b->id], 1, memory_order_release);
            weft_join_abort(&b->j);
            stress_count(&g_rs.n_aborts_foreign);
        }
        uint64_t out = 0;
        poll_to_completion(&b->j.base, &out);
        check_join_result("foreign joiner", b->id, b->seed, b->j.status, out);
        if (b->stuck)
            check_stuck_join("foreign joiner", b->id, b->j.status);
        weft_future_drop(&b->j.base);
        free(b);
    }
    return NULL;
}

static void *waker_main(void *arg)
{
    uint64_t rng = rng_seed((uintptr_t)arg ^ g_rs.seed ^ 0x77);
    weft_waker *w;
    while ((w = mailbox_take(&g_wakes, &rng))) {
        /* Widen the window between a task's PENDING and its wake. */
        for (unsigned i = rng_next32(&rng) % 3; i > 0; i--)
            sched_yield();
        weft_waker_wake(w);
        free(w);
    }
    return NULL;
}

/* ---- a future that waits for a foreign thread's wake ----------------------------------- */

typedef struct foreign_wait {
    weft_future base;
    mailbox *to;  /* where the waker goes */
    bool forever; /* never READY: only cancellation ends it */
    bool armed;
} foreign_wait;

static weft_poll foreign_wait_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(foreign_wait, fw);
    (void)out;
    if (fw->armed && !fw->forever)
        return WEFT_READY;
    fw->armed = true;
    weft_waker *w = malloc(sizeof *w);
    STRESS_ENSURE(w, "out of memory");
    *w = weft_waker_clone(cx->waker);
    mailbox_put(fw->to, w);
    return WEFT_PENDING;
}

static const weft_future_ops foreign_wait_ops = {
    "foreign_wait", 0, foreign_wait_poll, NULL, NULL,
};

/* ---- the tree node ------------------------------------------------------------------ */

enum kid_mode { KID_JOIN, KID_ABORT, KID_DETACH, KID_FOREIGN, KID_STUCK };
enum join_state { JS_NONE, JS_LIVE, JS_DONE };

typedef struct node {
    weft_future base;
    weft_co co;
    uint32_t id;
    int depth;
    int owner; /* local nodes: the worker that spawned them; -1: Send */
    bool stuck; /* waits forever: only an abort (or shutdown) ends it */
    uint64_t seed, rng;
    int nkids, k, n, y;
    int awaiting_kid; /* joins[awaiting_kid] is being awaited; -1: none */
    uint64_t out;
    uint8_t mode[MAX_FANOUT];
    uint8_t jstate[MAX_FANOUT];
    uint32_t kid_id[MAX_FANOUT];
    uint64_t kid_seed[MAX_FANOUT];
    weft_join joins[MAX_FANOUT];
    foreign_wait fw;
} node;

static weft_poll node_poll(weft_future *f, weft_cx *cx, void *out);
static void node_drop(weft_future *f);
static const weft_future_ops node_ops = { "stress_node", sizeof(uint64_t), node_poll,
                                          node_drop, NULL };

static void node_init(node *n, uint32_t id, int depth, uint64_t seed, bool local, bool stuck)
{
    co_future_init(n, sizeof *n, &node_ops, local ? 0u : WEFT_F_SEND);
    n->id = id;
    n->depth = depth;
    n->owner = local ? weft_worker_index() : -1;
    n->stuck = stuck;
    n->seed = seed;
    n->rng = rng_seed(seed);
    n->nkids = n->k = n->n = n->y = 0;
    n->awaiting_kid = -1;
    n->out = 0;
    for (int i = 0; i < MAX_FANOUT; i++) {
        n->mode[i] = KID_JOIN;
        n->jstate[i] = JS_NONE;
        n->kid_id[i] = 0;
        n->kid_seed[i] = 0;
    }
}

static uint32_t alloc_id(void)
{
    uint32_t id = atomic_fetch_add_explicit(&g_rs.allocated, 1, memory_order_relaxed);
    STRESS_ENSURE(id < MAX_NODES, "more than %u nodes in a round", MAX_NODES);
    return id;
}

static void spawn_kid(node *s, int k)
{
    uint32_t r = rng_next32(&s->rng);
    unsigned m = r % 10;
    enum kid_mode mode = m < 4   ? KID_JOIN
                         : m == 4 ? KID_ABORT
                         : m == 5 ? KID_DETACH
                         : m < 9  ? KID_FOREIGN
                                  : KID_STUCK;
    bool local = (r >> 8) % 4 == 0;
    bool detach_later = (r >> 12) % 2 == 0;
    /* A stuck child is aborted by its parent or by a foreign joiner. */
    bool stuck = mode == KID_STUCK;
    if (stuck && (r >> 16) % 2 == 0)
        mode = KID_FOREIGN;
    s->mode[k] = (uint8_t)mode;
    s->kid_seed[k] = mix64(s->seed ^ (uint64_t)(k + 1) * 0x100000001b3ull);
    uint32_t id = alloc_id();
    s->kid_id[k] = id;

    node kid;
    node_init(&kid, id, s->depth + 1, s->kid_seed[k], local, stuck);
    join_box *box = NULL;
    weft_join *j = NULL;
    switch (mode) {
    case KID_JOIN:
    case KID_ABORT:
    case KID_STUCK:
        j = &s->joins[k];
        break;
    case KID_DETACH:
        j = detach_later ? &s->joins[k] : NULL;
        break;
    case KID_FOREIGN:
        box = malloc(sizeof *box);
        STRESS_ENSURE(box, "out of memory");
        box->id = id;
        box->seed = s->kid_seed[k];
        box->stuck = stuck;
        j = &box->j;
        break;
    }
    int rc = local ? weft_spawn_local(&kid.base, sizeof kid, j)
                   : weft_spawn(NULL, &kid.base, sizeof kid, j);
    if (rc != 0) {
        /* Only a runtime that is stopping may refuse. */
        STRESS_ENSURE(rc == -ECANCELED && shutting_down(), "spawn of node %u: %s", id,
               weft_strerror(rc));
        atomic_store_explicit(&g_rs.spawn_failed[id], 1, memory_order_relaxed);
        stress_count(&g_rs.n_failed_spawns);
        free(box);
        weft_future_drop(&kid.base); /* still ours */
        return;
    }
    progress_add(1, 0, false);
    if (local)
        stress_count(&g_rs.n_local);
    if (stuck)
        stress_count(&g_rs.n_stuck);
    switch (mode) {
    case KID_JOIN:
    case KID_ABORT:
    case KID_STUCK:
        s->jstate[k] = JS_LIVE;
        break;
    case KID_DETACH:
        if (j)
            weft_join_detach(j);
        stress_count(&g_rs.n_detached);
        break;
    case KID_FOREIGN:
        mailbox_put(&g_joins, box);
        break;
    }
}

static weft_poll node_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(node, s);
    if (s->owner >= 0)
        STRESS_ENSURE(weft_worker_index() == s->owner, "local node %u polled on worker %d, owner %d",
               s->id, weft_worker_index(), s->owner);
    WEFT_CO_BEGIN(&s->co);
    if (s->stuck) {
        weft_future_init(&s->fw.base, &foreign_wait_ops, WEFT_F_SEND);
        s->fw.to = &g_stuck;
        s->fw.forever = true;
        s->fw.armed = false;
        WEFT_AWAIT(&s->co, cx, &s->fw.base, NULL);
        stress_die("stuck node %u finished", s->id);
    }
    for (s->n = (int)(rng_next32(&s->rng) % 3), s->y = 0; s->y < s->n; s->y++)
        WEFT_CO_YIELD(&s->co, cx);
    if (rng_next32(&s->rng) % 5 == 0) {
        weft_future_init(&s->fw.base, &foreign_wait_ops, WEFT_F_SEND);
        s->fw.to = &g_wakes;
        s->fw.forever = false;
        s->fw.armed = false;
        stress_count(&g_rs.n_foreign_waits);
        WEFT_AWAIT(&s->co, cx, &s->fw.base, NULL);
    }
    if ((unsigned)s->depth >= g_rs.max_depth)
        s->nkids = 0;
    else if (g_rs.bushy)
        s->nkids = (int)(g_rs.max_fanout - rng_next32(&s->rng) % (g_rs.max_fanout / 2 + 1));
    else
        s->nkids = (int)(rng_next32(&s->rng) % (g_rs.max_fanout + 1));
    for (s->k = 0; s->k < s->nkids; s->k++) {
        spawn_kid(s, s->k);
        uint32_t r = rng_next32(&s->rng);
        if (r % 8 == 0) {
            /* A long poll: the child waits in this worker's LIFO slot. */
            weft_instant until = weft_now() + WEFT_US((r >> 8) % 100);
            while (weft_now() < until) {
            }
            stress_count(&g_rs.n_long_polls);
        }
        if ((r >> 16) % 4 == 0)
            WEFT_CO_YIELD(&s->co, cx);
    }
    for (s->k = 0; s->k < s->nkids; s->k++) {
        if ((s->mode[s->k] == KID_ABORT || s->mode[s->k] == KID_STUCK) &&
            s->jstate[s->k] == JS_LIVE) {
            if (rng_next32(&s->rng) % 2 == 0)
                WEFT_CO_YIELD(&s->co, cx);
            atomic_store_explicit(&g_rs.aborted[s->kid_id[s->k]], 1, memory_order_release);
            weft_join_abort(&s->joins[s->k]);
            stress_count(&g_rs.n_aborts_task);
        }
    }
    for (s->k = 0; s->k < s->nkids; s->k++) {
        if (s->jstate[s->k] == JS_LIVE) {
            s->awaiting_kid = s->k;
            s->out = 0;
            WEFT_AWAIT(&s->co, cx, &s->joins[s->k].base, &s->out);
            s->awaiting_kid = -1;
            s->jstate[s->k] = JS_DONE;
            check_join_result("parent", s->kid_id[s->k], s->kid_seed[s->k],
                              s->joins[s->k].status, s->out);
            if (s->mode[s->k] == KID_STUCK)
                check_stuck_join("parent", s->kid_id[s->k], s->joins[s->k].status);
        }
    }
    atomic_store_explicit(&g_rs.completed[s->id], 1, memory_order_release);
    *(uint64_t *)out = expected_output(s->seed);
    CO_FUTURE_END(s);
}

static void node_drop(weft_future *f)
{
    node *s = (node *)f;
    if (s->co.awaiting) {
        weft_co_drop(&s->co); /* the join or foreign wait it was parked on */
        if (s->awaiting_kid >= 0)
            s->jstate[s->awaiting_kid] = JS_DONE;
    }
    for (int k = 0; k < MAX_FANOUT; k++) {
        if (s->jstate[k] == JS_LIVE) {
            s->jstate[k] = JS_DONE;
            /* Nobody else would end a stuck child: cancel it with us. */
            if (s->mode[k] == KID_STUCK) {
                atomic_store_explicit(&g_rs.aborted[s->kid_id[k]], 1, memory_order_release);
                weft_join_abort(&s->joins[k]);
            }
            weft_future_drop(&s->joins[k].base); /* detaches the child */
        }
    }
    stress_drop_once(&g_rs.drops[s->id], "node", s->id);
    if (atomic_load_explicit(&g_rs.completed[s->id], memory_order_relaxed))
        stress_count(&g_rs.n_completed);
    else
        stress_count(&g_rs.n_cancelled);
    /* The progress lock orders the bookkeeping above before the test
     * thread's reads. */
    progress_add(0, 1, s->id == 0);
}

/* ---- a round ----------------------------------------------------------------------------- */

static void round_reset(uint64_t seed)
{
    g_rs.seed = seed;
    uint64_t r = rng_seed(seed);
    g_rs.max_depth = 2 + rng_next32(&r) % (MAX_DEPTH - 1);
    g_rs.max_fanout = 1 + rng_next32(&r) % MAX_FANOUT;
    g_rs.bushy = rng_next32(&r) % 2 == 0;
    g_rs.shutdown_mid = rng_next32(&r) % 3 == 0;
    atomic_store_explicit(&g_rs.shutting_down, false, memory_order_relaxed);
    atomic_store_explicit(&g_rs.allocated, 0, memory_order_relaxed);
    for (unsigned i = 0; i < MAX_NODES; i++) {
        atomic_store_explicit(&g_rs.drops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_rs.completed[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_rs.aborted[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_rs.spawn_failed[i], 0, memory_order_relaxed);
    }
    g_rs.spawned = g_rs.dropped = 0;
    g_rs.root_dropped = false;
}

static void run_round(uint64_t seed, const stress_options *opt)
{
    round_reset(seed);
    mailbox_init(&g_wakes);
    mailbox_init(&g_joins);
    mailbox_init(&g_stuck);
    pthread_t wakers[WAKER_THREADS], joiners[JOINER_THREADS];
    for (uintptr_t i = 0; i < WAKER_THREADS; i++)
        STRESS_ENSURE(pthread_create(&wakers[i], NULL, waker_main, (void *)(i + 1)) == 0,
               "pthread_create");
    for (uintptr_t i = 0; i < JOINER_THREADS; i++)
        STRESS_ENSURE(pthread_create(&joiners[i], NULL, joiner_main, (void *)(i + 101)) == 0,
               "pthread_create");

    weft_rt *rt = stress_rt_new(opt);

    node root;
    uint64_t root_seed = mix64(seed ^ 0x5eed);
    node_init(&root, alloc_id(), 0, root_seed, false, false);
    weft_join root_join;
    int rc = weft_spawn(rt, &root.base, sizeof root, &root_join);
    STRESS_ENSURE(rc == 0, "spawn of the root: %s", weft_strerror(rc));
    progress_add(1, 0, false);

    pthread_mutex_lock(&g_rs.lock);
    if (g_rs.shutdown_mid) {
        /* Shut down once the tree has grown a little (or is already gone). */
        uint64_t r = rng_seed(seed ^ 0x51);
        uint64_t grown = 1 + rng_next32(&r) % 256;
        while (g_rs.spawned < grown && !g_rs.root_dropped)
            pthread_cond_wait(&g_rs.cond, &g_rs.lock);
    } else {
        /* Every node dropped: nothing is left to spawn more (a node only
         * spawns while it is alive, and its drop is counted after). */
        while (g_rs.dropped < atomic_load_explicit(&g_rs.allocated, memory_order_acquire))
            pthread_cond_wait(&g_rs.cond, &g_rs.lock);
    }
    pthread_mutex_unlock(&g_rs.lock);

    if (g_rs.shutdown_mid)
        atomic_store_explicit(&g_rs.shutting_down, true, memory_order_release);
    weft_rt_shutdown(rt);

    /* Shutdown dropped everything that was still alive. */
    uint32_t allocated = atomic_load_explicit(&g_rs.allocated, memory_order_acquire);
    pthread_mutex_lock(&g_rs.lock);
    uint64_t dropped = g_rs.dropped, spawned = g_rs.spawned;
    pthread_mutex_unlock(&g_rs.lock);
    STRESS_ENSURE(dropped == allocated, "%" PRIu64 " drops for %u nodes after shutdown", dropped,
           allocated);

    /* The root's handle outlives the runtime. */
    uint64_t out;
    stress_join_finished(&root_join, "node", 0, &out);
    check_join_result("main", 0, root_seed, root_join.status, out);
    weft_future_drop(&root_join.base);

    /* Foreign threads drain what is left: joins of cancelled or finished
     * tasks, wakers whose wakes are now no-ops. */
    mailbox_close(&g_wakes);
    mailbox_close(&g_joins);
    for (int i = 0; i < WAKER_THREADS; i++)
        pthread_join(wakers[i], NULL);
    for (int i = 0; i < JOINER_THREADS; i++)
        pthread_join(joiners[i], NULL);
    mailbox_fini(&g_wakes);
    mailbox_fini(&g_joins);
    /* The stuck tasks' wakers: their tasks are all cancelled by now. */
    for (size_t i = 0; i < g_stuck.n; i++) {
        weft_waker *w = g_stuck.items[i];
        weft_waker_drop(w);
        free(w);
    }
    g_stuck.n = 0;
    mailbox_fini(&g_stuck);

    uint64_t completed = stress_load(&g_rs.n_completed), cancelled = stress_load(&g_rs.n_cancelled),
             failed = stress_load(&g_rs.n_failed_spawns);
    STRESS_ENSURE(spawned + failed == allocated, "spawned %" PRIu64 " + refused %" PRIu64
           " != %u nodes", spawned, failed, allocated);
    STRESS_ENSURE(completed + cancelled == allocated,
           "completed %" PRIu64 " + cancelled %" PRIu64 " != %u nodes", completed, cancelled,
           allocated);
    for (uint32_t id = 0; id < allocated; id++) {
        STRESS_ENSURE(atomic_load_explicit(&g_rs.drops[id], memory_order_relaxed) == 1,
               "node %u dropped %u times", id,
               (unsigned)atomic_load_explicit(&g_rs.drops[id], memory_order_relaxed));
        if (!g_rs.shutdown_mid && !atomic_load_explicit(&g_rs.completed[id], memory_order_relaxed))
            STRESS_ENSURE(atomic_load_explicit(&g_rs.aborted[id], memory_order_relaxed),
                   "node %u cancelled, but nobody aborted it and no shutdown", id);
    }
    STRESS_ENSURE(g_rs.shutdown_mid || failed == 0, "spawn refused without shutdown");

    stress_count_n(&g_rs.n_rounds_shut_down, g_rs.shutdown_mid);
    stress_count_n(&g_rs.n_nodes, allocated);
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g_rs.n_rounds_shut_down, &g_rs.n_nodes, &g_rs.n_completed, &g_rs.n_cancelled,
        &g_rs.n_failed_spawns, &g_rs.n_local, &g_rs.n_stuck, &g_rs.n_aborts_task,
        &g_rs.n_aborts_foreign, &g_rs.n_detached, &g_rs.n_foreign_waits, &g_rs.n_joins_ok,
        &g_rs.n_joins_cancelled, &g_rs.n_long_polls,
    };
    const stress_program p = {
        "stress_spawn_tree", run_round, counters, sizeof counters / sizeof counters[0],
        "shut_down_mid_tree nodes completed cancelled refused local stuck aborts_task "
        "aborts_foreign detached foreign_waits joins_ok joins_cancelled long_polls",
    };
    return stress_main(argc, argv, &p);
}
