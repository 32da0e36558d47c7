/* stress_shutdown_race: foreign threads spawn tasks with join handles while
 * the main thread shuts the runtime down.
 *
 *   stress_shutdown_race [--threads N] [--iters N] [--seed S] [--seconds T]
 *
 * --threads  workers per runtime (default 2)
 * --iters    stop after this many rounds (default 0: only the time box)
 * --seed     the run's seed (default: from the clock); printed first
 * --seconds  time box (default 3)
 *
 * Each round builds a runtime and starts SPAWNERS threads. Each spawns
 * tasks (keeping the join handle of most, aborting some) until a spawn is
 * refused with -ECANCELED or it reached its quota. The main thread shuts
 * the runtime down once a random number of spawns happened (sometimes at
 * once), so spawns land before, during and after every step of the
 * shutdown. A task is ready at once, yields a few times, never finishes
 * on its own, or spawns a child (Send, or local to its worker) and awaits
 * it. Before the spawners start, the main thread spawns an anchor task
 * and keeps its join handle until they are joined: a held handle keeps the
 * runtime's memory (rt.h), so a spawner may still call weft_spawn after
 * weft_rt_shutdown returned and gets -ECANCELED.
 *
 * Invariants (any violation aborts with the seed and round):
 *  - every spawn returns 0 or -ECANCELED, and -ECANCELED only once the
 *    shutdown began;
 *  - every future that was initialised is dropped exactly once (a refused
 *    one by its spawner, through weft_spawn_or_drop);
 *  - once shutdown returned and the spawners are joined, every join handle
 *    is finished: status 0 with the right output when the future finished,
 *    else -ECANCELED with a zeroed output;
 *  - completed + cancelled == spawned;
 *  - a local future is polled and dropped on its owner worker only;
 *  - no hang: a watchdog aborts after seconds * 10 + 30 s;
 *  - no leak or use after free (run it under ASan; TSan for the races).
 * The program never sleeps to wait for a thread: it joins threads, and the
 * main thread spins (yielding) on a spawn count. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"

#include "stress_common.h"
#include "support/downcast.h"

#define SPAWNERS 3u
#define QUOTA 1500u /* spawns per spawner and round, at most */
/* Each spawn may make one child. */
#define MAX_NODES (2u * SPAWNERS * QUOTA)

/* What a task with id `id` outputs. */
static uint64_t expected_output(uint32_t id, uint64_t seed)
{
    return mix64(seed ^ ((uint64_t)id << 20) ^ 0x5eed);
}

/* ---- per-round state ------------------------------------------------------------ */

enum kind { K_READY, K_YIELD, K_NEVER, K_PARENT_SEND, K_PARENT_LOCAL, K_KINDS };

typedef struct round_state {
    uint64_t seed;
    weft_rt *rt;
    /* Set (release) just before weft_rt_shutdown; a spawn may be refused
     * only once it is set. */
    _Atomic bool shutting_down;
    _Atomic uint32_t allocated; /* node ids handed out */
    _Atomic uint32_t spawns;    /* spawns that returned 0, for the shutdown's cue */
    /* Per node id. */
    _Atomic uint8_t drops[MAX_NODES];
    _Atomic uint8_t completed[MAX_NODES]; /* its poll returned READY */
    _Atomic uint8_t aborted[MAX_NODES];

    stress_counter n_spawned, n_refused, n_completed, n_cancelled, n_local, n_aborted,
        n_joins_ok, n_joins_cancelled, n_late_spawns;
} round_state;

static round_state g_rs;

static uint32_t new_id(void)
{
    /* Relaxed: ids only need to be distinct. */
    uint32_t id = atomic_fetch_add_explicit(&g_rs.allocated, 1, memory_order_relaxed);
    STRESS_ENSURE(id < MAX_NODES, "out of node ids");
    return id;
}

static bool shutting_down(void)
{
    /* Acquire: pairs with the main thread's release before shutdown. */
    return atomic_load_explicit(&g_rs.shutting_down, memory_order_acquire);
}

/* ---- the tasks ------------------------------------------------------------------------ */

typedef struct node {
    weft_future base;
    uint32_t id;
    uint8_t kind;
    uint8_t yields_left;
    bool child_spawned;
    bool child_refused;
    int16_t owner; /* a local node: the worker that spawned it */
    weft_join child;
} node;

static void node_init(node *n, uint32_t id, enum kind kind, uint32_t yields, int owner);

/* A local node runs on its owner only. */
static void check_owner(const node *n, const char *when)
{
    if (n->owner < 0)
        return;
    int w = weft_worker_index();
    STRESS_ENSURE(w == n->owner, "local node %u %s on worker %d, owned by worker %d", n->id, when,
                  w, n->owner);
}

static weft_poll node_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(node, n);
    check_owner(n, "polled");
    switch (n->kind) {
    case K_NEVER:
        return WEFT_PENDING; /* wakes nobody: only a cancel ends it */
    case K_YIELD:
        if (n->yields_left > 0) {
            n->yields_left--;
            weft_waker_wake_by_ref(cx->waker);
            return WEFT_PENDING;
        }
        break;
    case K_PARENT_SEND:
    case K_PARENT_LOCAL:
        if (!n->child_spawned && !n->child_refused) {
            /* The child never finishes, or is ready at once. */
            uint32_t cid = new_id();
            node c;
            bool local = n->kind == K_PARENT_LOCAL;
            node_init(&c, cid, cid % 2 ? K_NEVER : K_READY, 0, local ? weft_worker_index() : -1);
            if (local)
                stress_count(&g_rs.n_local);
            int rc = local ? weft_spawn_local(&c.base, sizeof c, &n->child)
                           : weft_spawn(NULL, &c.base, sizeof c, &n->child);
            if (rc != 0) {
                STRESS_ENSURE(rc == -ECANCELED && shutting_down(), "child spawn: %d", rc);
                weft_future_drop(&c.base);
                stress_count(&g_rs.n_refused);
                n->child_refused = true;
            } else {
                stress_count(&g_rs.n_spawned);
                n->child_spawned = true;
            }
        }
        if (n->child_spawned) {
            uint64_t child_out;
            if (weft_future_poll(&n->child.base, cx, &child_out) == WEFT_PENDING)
                return WEFT_PENDING;
            weft_future_drop(&n->child.base);
            n->child_spawned = false;
        }
        break;
    default:
        break;
    }
    *(uint64_t *)out = expected_output(n->id, g_rs.seed);
    /* Release: a joiner that sees it also sees the output's provenance. */
    atomic_store_explicit(&g_rs.completed[n->id], 1, memory_order_release);
    stress_count(&g_rs.n_completed);
    return WEFT_READY;
}

static void node_drop(weft_future *f)
{
    DOWNCAST(node, n);
    check_owner(n, "dropped");
    if (n->child_spawned)
        weft_future_drop(&n->child.base); /* detaches it: it is cancelled too */
    /* Acquire: completed was stored by a poll on this or another worker
     * before this drop (the task's state transitions order them). */
    if (!atomic_load_explicit(&g_rs.completed[n->id], memory_order_acquire))
        stress_count(&g_rs.n_cancelled);
    stress_drop_once(&g_rs.drops[n->id], "node", n->id);
}

static const weft_future_ops node_ops = {
    "stress_node", sizeof(uint64_t), node_poll, node_drop, NULL,
};

static void node_init(node *n, uint32_t id, enum kind kind, uint32_t yields, int owner)
{
    weft_future_init(&n->base, &node_ops, owner < 0 ? WEFT_F_SEND : 0);
    n->id = id;
    n->kind = (uint8_t)kind;
    n->yields_left = (uint8_t)yields;
    n->child_spawned = false;
    n->child_refused = false;
    n->owner = (int16_t)owner;
}

/* ---- the spawners ------------------------------------------------------------------ */

typedef struct spawner {
    pthread_t thread;
    unsigned index;
    uint32_t n;           /* join handles kept */
    uint32_t ids[QUOTA];  /* their tasks */
    weft_join joins[QUOTA];
} spawner;

static spawner g_spawners[SPAWNERS];

static void *spawner_main(void *arg)
{
    spawner *s = arg;
    uint64_t rng = rng_seed(g_rs.seed ^ (0x51a7ull << s->index));
    for (unsigned k = 0; k < QUOTA; k++) {
        uint32_t id = new_id();
        node f;
        enum kind kind = (enum kind)(rng_next32(&rng) % K_KINDS);
        if (kind == K_PARENT_LOCAL && rng_next32(&rng) % 2)
            kind = K_PARENT_SEND;
        node_init(&f, id, kind, rng_next32(&rng) % 4, -1);
        bool keep = rng_next32(&rng) % 8 != 0; /* else detached */
        weft_join *j = keep ? &s->joins[s->n] : NULL;
        bool late = shutting_down();
        int rc = weft_spawn_or_drop(g_rs.rt, &f.base, sizeof f, j);
        if (rc != 0) {
            STRESS_ENSURE(rc == -ECANCELED, "spawn: %d (%s)", rc, weft_strerror(rc));
            STRESS_ENSURE(shutting_down(), "spawn refused before shutdown began");
            stress_count(&g_rs.n_refused);
            break;
        }
        stress_count(&g_rs.n_spawned);
        stress_count_n(&g_rs.n_late_spawns, late);
        /* Release: the main thread's cue (acquire) comes after the task. */
        atomic_fetch_add_explicit(&g_rs.spawns, 1, memory_order_release);
        if (!keep)
            continue;
        s->ids[s->n++] = id;
        if (rng_next32(&rng) % 6 == 0) {
            atomic_store_explicit(&g_rs.aborted[id], 1, memory_order_release);
            weft_join_abort(j);
            stress_count(&g_rs.n_aborted);
        }
    }
    return NULL;
}

/* ---- a round ------------------------------------------------------------------------ */

static void check_join(spawner *s, uint32_t k)
{
    uint32_t id = s->ids[k];
    uint64_t out = 0;
    stress_join_finished(&s->joins[k], "node", id, &out);
    int status = s->joins[k].status;
    bool done = atomic_load_explicit(&g_rs.completed[id], memory_order_acquire);
    /* Every round shuts down mid-flight: any task may be cancelled. */
    stress_check_join("spawner", "node", id, status, out, done, expected_output(id, g_rs.seed),
                      true);
    stress_count(status == 0 ? &g_rs.n_joins_ok : &g_rs.n_joins_cancelled);
    weft_future_drop(&s->joins[k].base);
}

static void run_round(uint64_t seed, const stress_options *opt)
{
    g_rs.seed = seed;
    atomic_store_explicit(&g_rs.shutting_down, false, memory_order_relaxed);
    atomic_store_explicit(&g_rs.allocated, 0, memory_order_relaxed);
    atomic_store_explicit(&g_rs.spawns, 0, memory_order_relaxed);
    for (uint32_t i = 0; i < MAX_NODES; i++) {
        atomic_store_explicit(&g_rs.drops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_rs.completed[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_rs.aborted[i], 0, memory_order_relaxed);
    }
    uint64_t rng = rng_seed(seed);
    g_rs.rt = stress_rt_new(opt);

    /* The anchor: its handle keeps the runtime's memory until the spawners
     * are joined. */
    uint32_t anchor_id = new_id();
    node a;
    node_init(&a, anchor_id, K_NEVER, 0, -1);
    weft_join anchor;
    int rc = weft_spawn_or_drop(g_rs.rt, &a.base, sizeof a, &anchor);
    STRESS_ENSURE(rc == 0, "anchor spawn: %d", rc);
    stress_count(&g_rs.n_spawned);

    for (unsigned i = 0; i < SPAWNERS; i++) {
        g_spawners[i].index = i;
        g_spawners[i].n = 0;
        STRESS_ENSURE(pthread_create(&g_spawners[i].thread, NULL, spawner_main, &g_spawners[i]) == 0,
                      "pthread_create");
    }
    /* The cue: a random number of spawns, none in a quarter of the rounds. */
    uint32_t cue = rng_next32(&rng) % 4 == 0 ? 0 : rng_next32(&rng) % (SPAWNERS * QUOTA / 2);
    /* Acquire: pairs with the spawners' release. */
    while (atomic_load_explicit(&g_rs.spawns, memory_order_acquire) < cue)
        sched_yield();
    atomic_store_explicit(&g_rs.shutting_down, true, memory_order_release);
    weft_rt_shutdown(g_rs.rt);
    for (unsigned i = 0; i < SPAWNERS; i++)
        STRESS_ENSURE(pthread_join(g_spawners[i].thread, NULL) == 0, "pthread_join");

    /* Shutdown returned and every spawn returned: every task is done. */
    for (unsigned i = 0; i < SPAWNERS; i++)
        for (uint32_t k = 0; k < g_spawners[i].n; k++)
            check_join(&g_spawners[i], k);
    uint64_t out = 0;
    stress_join_finished(&anchor, "anchor", anchor_id, &out);
    STRESS_ENSURE(anchor.status == -ECANCELED, "anchor: status %d", anchor.status);
    weft_future_drop(&anchor.base); /* the runtime's memory may go now */

    uint32_t n = atomic_load_explicit(&g_rs.allocated, memory_order_relaxed);
    for (uint32_t id = 0; id < n; id++)
        STRESS_ENSURE(atomic_load_explicit(&g_rs.drops[id], memory_order_acquire) == 1,
                      "node %u dropped %u times", id,
                      (unsigned)atomic_load_explicit(&g_rs.drops[id], memory_order_relaxed));
    uint64_t spawned = stress_load(&g_rs.n_spawned), refused = stress_load(&g_rs.n_refused);
    uint64_t completed = stress_load(&g_rs.n_completed);
    uint64_t cancelled = stress_load(&g_rs.n_cancelled);
    /* A refused future is dropped without completing: counted as
     * cancelled too. */
    STRESS_ENSURE(completed + cancelled == spawned + refused,
                  "completed %" PRIu64 " + cancelled %" PRIu64 " != spawned %" PRIu64
                  " + refused %" PRIu64,
                  completed, cancelled, spawned, refused);
    STRESS_ENSURE(n == spawned + refused, "%u ids for %" PRIu64 " spawns", n, spawned + refused);
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g_rs.n_spawned,   &g_rs.n_refused,    &g_rs.n_late_spawns,
        &g_rs.n_completed, &g_rs.n_cancelled,  &g_rs.n_local,
        &g_rs.n_aborted,   &g_rs.n_joins_ok,   &g_rs.n_joins_cancelled,
    };
    const stress_program p = {
        "stress_shutdown_race", run_round, counters, sizeof counters / sizeof counters[0],
        "spawned refused spawned_after_cue completed cancelled local aborted joins_ok "
        "joins_cancelled",
    };
    return stress_main(argc, argv, &p);
}
