/* stress_dump_race: task dumps taken over and over from other threads
 * while tasks spawn, run, wait on each other, get woken from foreign
 * threads, get aborted and finish.
 *
 *   stress_dump_race [--threads N] [--iters N] [--seed S] [--seconds T]
 *
 * --threads  workers per runtime (default 2)
 * --iters    stop after this many rounds (default 0: only the time box)
 * --seed     the run's seed (default: from the clock); printed first
 * --seconds  time box (default 3)
 *
 * Each round starts a runtime and BOSSES boss tasks. A boss spawns batches
 * of kids and then, kid by kid, joins it, aborts it first, or detaches it.
 * A kid yields a few times, sleeps 0-2 ms, waits for a wake that a foreign
 * thread delivers at a random moment, spawns a kid of its own and awaits
 * it, or waits for an abort that always comes; some kids are plain
 * functions, some are local to their boss's worker, some are too big for
 * the slab's size classes. Meanwhile DUMPERS threads walk the tasks
 * (weft_rt_tasks with a visitor that checks every snapshot), count them,
 * print the table to /dev/null, and switch age tracking on and off. Every
 * decision comes from PRNGs derived from the round's seed and the task's
 * id, so a seed replays the same work; only the interleavings differ.
 *
 * Invariants (any violation aborts with the seed and round):
 *  - every snapshot is well formed: a known name, a state, a worker only
 *    for a local kid, polls within bounds, an await chain only for an idle
 *    task, starting with the task's own name and line and made of known
 *    futures; an idle kid waiting on a parked waker shows a waker;
 *  - the counts never exceed the tasks spawned so far;
 *  - every task's future is dropped exactly once (a plain function runs
 *    once);
 *  - a join yields the kid's exact output with status 0, or -ECANCELED
 *    only when the kid was aborted, and exactly when its future never
 *    finished;
 *  - no hang: a wake or abort that arrives while a dump holds a task is
 *    never lost (a watchdog aborts after seconds * 10 + 30 s).
 * Waits for threads are joins and condition variables. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"

#include "stress_common.h"

#define BOSSES 4
#define BATCHES 6
#define BATCH 8
#define DUMPERS 2
/* Ids: bosses, their kids, and one grandchild per kid at most. */
#define MAX_IDS (BOSSES + 2 * BOSSES * BATCHES * BATCH)

/* What the task with seed `seed` outputs. */
static uint64_t expected_output(uint64_t seed)
{
    return mix64(seed ^ 0x0d0d0d0d0d0d0d0dull);
}

/* ---- per-round state ------------------------------------------------------------ */

enum kid_kind { K_YIELD, K_SLEEP, K_PARKED, K_WAITER, K_STUCK, K_FN, K_KINDS };

typedef struct round_state {
    uint64_t seed;
    unsigned threads;
    _Atomic uint32_t allocated;        /* task ids handed out */
    _Atomic uint8_t drops[MAX_IDS];
    _Atomic uint8_t finished[MAX_IDS]; /* its future finished (not cancelled) */
    /* Drops so far, for the round's end: every task dropped. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t dropped;
    /* Set (release) when the work is done: dumpers and the waker stop. */
    _Atomic bool stop;

    stress_counter n_tasks, n_joined, n_aborted, n_detached, n_large, n_local,
        n_foreign_wakes, n_dumps, n_snapshots, n_idle_chains;
} round_state;

static round_state g_rs = { .lock = PTHREAD_MUTEX_INITIALIZER,
                            .cond = PTHREAD_COND_INITIALIZER };

static uint32_t alloc_id(void)
{
    /* AcqRel: the round's end reads the count after the drops it waited
     * for, and must see every id handed out before them. */
    uint32_t id = atomic_fetch_add_explicit(&g_rs.allocated, 1, memory_order_acq_rel);
    STRESS_ENSURE(id < MAX_IDS, "more than %u tasks", MAX_IDS);
    stress_count(&g_rs.n_tasks);
    return id;
}

/* Task `id`'s future is dropped (or, for a plain function, has run). */
static void dropped(const char *what, uint32_t id)
{
    stress_drop_once(&g_rs.drops[id], what, id);
    pthread_mutex_lock(&g_rs.lock);
    g_rs.dropped++;
    pthread_cond_broadcast(&g_rs.cond);
    pthread_mutex_unlock(&g_rs.lock);
}

/* ---- foreign wakes: a queue of heap wakers and the thread that wakes them ----- */

static pthread_mutex_t g_wq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wq_cond = PTHREAD_COND_INITIALIZER;
static weft_waker *g_wq[MAX_IDS];
static size_t g_wq_n;

static void wq_put(weft_waker *w)
{
    pthread_mutex_lock(&g_wq_lock);
    STRESS_ENSURE(g_wq_n < MAX_IDS, "wake queue full");
    g_wq[g_wq_n++] = w;
    pthread_cond_signal(&g_wq_cond);
    pthread_mutex_unlock(&g_wq_lock);
}

static void wq_stop(void)
{
    pthread_mutex_lock(&g_wq_lock);
    atomic_store_explicit(&g_rs.stop, true, memory_order_release);
    pthread_cond_broadcast(&g_wq_cond);
    pthread_mutex_unlock(&g_wq_lock);
}

/* Wakes the wakers parked kids hand over, in random order, after random
 * spins, until the round stops and the queue is empty. */
static void *waker_main(void *arg)
{
    uint64_t rng = rng_seed(g_rs.seed ^ (uintptr_t)arg);
    for (;;) {
        pthread_mutex_lock(&g_wq_lock);
        while (g_wq_n == 0 && !atomic_load_explicit(&g_rs.stop, memory_order_acquire))
            pthread_cond_wait(&g_wq_cond, &g_wq_lock);
        weft_waker *w = NULL;
        if (g_wq_n > 0) {
            size_t i = rng_next32(&rng) % g_wq_n;
            w = g_wq[i];
            g_wq[i] = g_wq[--g_wq_n];
        }
        pthread_mutex_unlock(&g_wq_lock);
        if (!w)
            return NULL;
        for (unsigned spins = rng_next32(&rng) % 256; spins > 0; spins--)
            sched_yield();
        weft_waker_wake(w); /* by value: the clone goes with the wake */
        free(w);
        stress_count(&g_rs.n_foreign_wakes);
    }
}

/* ---- leaves ------------------------------------------------------------------------ */

/* Hands a clone of its task's waker to the waker thread; READY when polled
 * again (only that wake polls it again). */
typedef struct parked {
    weft_future base;
    bool parked;
} parked;

static weft_poll parked_poll(weft_future *f, weft_cx *cx, void *out)
{
    parked *p = (parked *)f;
    (void)out;
    if (p->parked)
        return WEFT_READY;
    weft_waker *w = malloc(sizeof *w);
    STRESS_ENSURE(w, "out of memory");
    *w = weft_waker_clone(cx->waker);
    p->parked = true;
    wq_put(w);
    return WEFT_PENDING;
}

static const weft_future_ops parked_ops = { .name = "parked", .poll = parked_poll };

/* PENDING forever, keeping no waker: only an abort ends it. */
typedef struct stuck {
    weft_future base;
} stuck;

static weft_poll stuck_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    return WEFT_PENDING;
}

static const weft_future_ops stuck_ops = { .name = "stuck", .poll = stuck_poll };

/* A plain-function kid (always joined, never aborted: it always runs). */
typedef struct fn_arg {
    uint32_t id;
    uint64_t seed;
} fn_arg;

static void kid_fn(void *arg, void *out)
{
    const fn_arg *a = arg;
    atomic_store_explicit(&g_rs.finished[a->id], 1, memory_order_relaxed);
    *(uint64_t *)out = expected_output(a->seed);
    dropped("kid_fn", a->id);
}

/* ---- kids ---------------------------------------------------------------------------- */

typedef struct kid {
    weft_future base;
    weft_co co;
    uint32_t id;
    uint64_t seed, rng;
    int kind, n;
    weft_yield y;
    weft_sleep nap;
    parked pk;
    stuck st;
    weft_join sub; /* K_WAITER: a kid of its own */
    uint32_t sub_id;
    uint64_t sub_seed, sub_out;
} kid;

/* A kid too big for the slab's size classes. */
typedef struct big_kid {
    kid k;
    unsigned char pad[640];
} big_kid;

static void kid_drop(weft_future *f)
{
    kid *self = (kid *)f;
    weft_co_drop(&self->co); /* an awaited sub-kid's handle: it runs on */
    dropped("kid", self->id);
}

static void kid_init(kid *k, uint32_t id, uint64_t seed, int kind);

WEFT_ASYNC_FN_WITH_DROP(kid, uint64_t)
{
    int rc;
    WEFT_FN_BEGIN;
    if (self->kind == K_YIELD) {
        for (self->n = 1 + (int)(rng_next32(&self->rng) % 8); self->n > 0; self->n--) {
            weft_yield_init(&self->y);
            WEFT_FN_AWAIT(&self->y, NULL);
        }
    } else if (self->kind == K_SLEEP) {
        weft_sleep_init(&self->nap, WEFT_US(rng_next32(&self->rng) % 2000));
        WEFT_FN_AWAIT(&self->nap, NULL);
    } else if (self->kind == K_PARKED) {
        self->pk = (parked){ WEFT_FUTURE_INIT(&parked_ops, WEFT_F_SEND), false };
        WEFT_FN_AWAIT(&self->pk, NULL);
    } else if (self->kind == K_STUCK) {
        self->st = (stuck){ WEFT_FUTURE_INIT(&stuck_ops, WEFT_F_SEND) };
        WEFT_FN_AWAIT(&self->st, NULL);
    } else if (self->kind == K_WAITER) {
        /* A kid of its own (yielding, sleeping or parked), awaited. */
        kid sub;
        self->sub_id = alloc_id();
        self->sub_seed = mix64(self->seed ^ 0x5b);
        kid_init(&sub, self->sub_id, self->sub_seed, (int)(rng_next32(&self->rng) % 3));
        rc = weft_spawn(NULL, &sub.base, sizeof sub, &self->sub);
        STRESS_ENSURE(rc == 0, "spawn of sub-kid %u: %s", self->sub_id, weft_strerror(rc));
        WEFT_FN_AWAIT(&self->sub, &self->sub_out);
        STRESS_ENSURE(self->sub.status == 0 && self->sub_out == expected_output(self->sub_seed),
                      "sub-kid %u: status %d", self->sub_id, self->sub.status);
    }
    atomic_store_explicit(&g_rs.finished[self->id], 1, memory_order_relaxed);
    WEFT_FN_RETURN(expected_output(self->seed));
    WEFT_FN_END;
}

static void kid_init(kid *k, uint32_t id, uint64_t seed, int kind)
{
    *k = (kid){ WEFT_FN_INIT(kid, WEFT_F_SEND), .id = id, .seed = seed,
                .rng = rng_seed(seed), .kind = kind };
}

/* ---- bosses --------------------------------------------------------------------------- */

enum fate { JOIN, ABORT, DETACH };

typedef struct boss {
    weft_future base;
    weft_co co;
    uint32_t id;
    uint64_t seed, rng;
    int batch, i;
    weft_join joins[BATCH];
    uint32_t ids[BATCH];
    uint64_t seeds[BATCH];
    enum fate fates[BATCH];
    uint64_t out;
} boss;

/* Handles not joined yet are dropped: their kids run on (or are aborted
 * already) and count their own drops. */
static void boss_drop(weft_future *f)
{
    boss *self = (boss *)f;
    weft_co_drop(&self->co);
    dropped("boss", self->id);
}

/* Spawn kid `i` of the batch and decide its fate. */
static void spawn_kid(boss *self, int i)
{
    uint32_t id = alloc_id();
    uint64_t seed = mix64(self->seed ^ ((uint64_t)id << 20));
    int kind = (int)(rng_next32(&self->rng) % K_KINDS);
    unsigned r = rng_next32(&self->rng) % 8;
    enum fate fate = kind == K_STUCK ? ABORT : kind == K_FN ? JOIN : r < 2 ? ABORT
                                                            : r < 3 ? DETACH
                                                                    : JOIN;
    int rc;
    if (kind == K_FN) {
        fn_arg a = { id, seed };
        rc = weft_spawn_fn(NULL, kid_fn, &a, sizeof(uint64_t), &self->joins[i]);
    } else if (r == 7) {
        big_kid b;
        memset(&b, 0, sizeof b);
        kid_init(&b.k, id, seed, kind);
        rc = weft_spawn(NULL, &b.k.base, sizeof b, &self->joins[i]);
        stress_count(&g_rs.n_large);
    } else {
        kid k;
        kid_init(&k, id, seed, kind);
        if (kind == K_YIELD && r == 6) {
            k.base.flags &= ~WEFT_F_SEND;
            rc = weft_spawn_local(&k.base, sizeof k, &self->joins[i]);
            stress_count(&g_rs.n_local);
        } else {
            rc = weft_spawn(NULL, &k.base, sizeof k, &self->joins[i]);
        }
    }
    STRESS_ENSURE(rc == 0, "spawn of kid %u: %s", id, weft_strerror(rc));
    self->ids[i] = id;
    self->seeds[i] = seed;
    self->fates[i] = fate;
}

WEFT_ASYNC_FN_WITH_DROP(boss, uint64_t)
{
    WEFT_FN_BEGIN;
    for (self->batch = 0; self->batch < BATCHES; self->batch++) {
        for (self->i = 0; self->i < BATCH; self->i++)
            spawn_kid(self, self->i);
        for (self->i = 0; self->i < BATCH; self->i++) {
            if (self->fates[self->i] == DETACH) {
                weft_join_detach(&self->joins[self->i]);
                stress_count(&g_rs.n_detached);
                continue;
            }
            if (self->fates[self->i] == ABORT) {
                weft_join_abort(&self->joins[self->i]);
                stress_count(&g_rs.n_aborted);
            }
            WEFT_FN_AWAIT(&self->joins[self->i], &self->out);
            {
                uint32_t id = self->ids[self->i];
                bool fin = atomic_load_explicit(&g_rs.finished[id], memory_order_relaxed);
                stress_check_join("boss", "kid", id, self->joins[self->i].status, self->out,
                                  fin, expected_output(self->seeds[self->i]),
                                  self->fates[self->i] == ABORT);
                stress_count(&g_rs.n_joined);
            }
        }
    }
    WEFT_FN_RETURN(expected_output(self->seed));
    WEFT_FN_END;
}

/* ---- dumpers ---------------------------------------------------------------------------- */

static bool known(const char *name)
{
    static const char *const names[] = { "kid", "boss", "kid_fn", "weft_sleep",
                                         "parked", "stuck", "weft_join" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && strcmp(name, names[i]) == 0)
            return true;
    return false;
}

static int check_snapshot(const weft_task_info *t, void *ctx)
{
    (void)ctx;
    STRESS_ENSURE(t->id && known(t->name), "a task named %s", t->name ? t->name : "(null)");
    STRESS_ENSURE(t->state <= WEFT_TASK_CANCELLED, "task %s in state %d", t->name,
                  (int)t->state);
    STRESS_ENSURE(t->worker == -1 ||
                      (t->worker < (int)g_rs.threads && strcmp(t->name, "kid") == 0),
                  "task %s on worker %d", t->name, t->worker);
    STRESS_ENSURE(t->polls <= WEFT_TASK_POLLS_MAX && t->depth <= WEFT_TASK_AWAIT_MAX,
                  "task %s: %" PRIu32 " polls, depth %u", t->name, t->polls, t->depth);
    STRESS_ENSURE(t->depth == 0 || t->state == WEFT_TASK_IDLE,
                  "task %s has an await chain while %s", t->name,
                  weft_task_state_name(t->state));
    if (t->depth > 0) {
        STRESS_ENSURE(strcmp(t->await[0].name, t->name) == 0 && t->await[0].line > 0,
                      "task %s: first frame %s:%d", t->name, t->await[0].name,
                      t->await[0].line);
        for (unsigned i = 1; i < t->depth; i++)
            STRESS_ENSURE(known(t->await[i].name), "task %s: frame %u is %s", t->name, i,
                          t->await[i].name ? t->await[i].name : "(null)");
        stress_count(&g_rs.n_idle_chains);
    }
    /* An idle kid waiting on `parked` has handed a waker over: it must not
     * look unwakeable. */
    if (t->depth > 1 && strcmp(t->await[1].name, "parked") == 0)
        STRESS_ENSURE(t->wakers >= 1, "a parked kid with no waker");
    stress_count(&g_rs.n_snapshots);
    return 0;
}

static void *dumper_main(void *arg)
{
    weft_rt *rt = arg;
    uint64_t rng = rng_seed(g_rs.seed ^ (uintptr_t)pthread_self());
    FILE *null = fopen("/dev/null", "w");
    STRESS_ENSURE(null, "cannot open /dev/null");
    while (!atomic_load_explicit(&g_rs.stop, memory_order_acquire)) {
        unsigned r = rng_next32(&rng) % 8;
        int rc;
        if (r < 5) {
            rc = weft_rt_tasks(rt, check_snapshot, NULL);
        } else if (r < 6) {
            weft_rt_counts c;
            rc = weft_rt_count(rt, &c);
            STRESS_ENSURE(rc != 0 || c.tasks + c.kept <=
                                         atomic_load_explicit(&g_rs.allocated,
                                                              memory_order_acquire),
                          "%" PRIu64 " tasks counted", c.tasks + c.kept);
        } else if (r < 7) {
            rc = weft_rt_dump(rt, null);
        } else {
            rc = weft_rt_track_ages(rt, rng_next32(&rng) % 2);
        }
        STRESS_ENSURE(rc == 0, "dump call %u: %s", r, weft_strerror(rc));
        stress_count(&g_rs.n_dumps);
        sched_yield(); /* the cores are shared with the workers */
    }
    fclose(null);
    return NULL;
}

/* ---- rounds ------------------------------------------------------------------------------- */

static void run_round(uint64_t seed, const stress_options *opt)
{
    g_rs.seed = seed;
    g_rs.threads = opt->threads;
    atomic_store_explicit(&g_rs.allocated, 0, memory_order_relaxed);
    for (size_t i = 0; i < MAX_IDS; i++) {
        atomic_store_explicit(&g_rs.drops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_rs.finished[i], 0, memory_order_relaxed);
    }
    g_rs.dropped = 0;
    atomic_store_explicit(&g_rs.stop, false, memory_order_relaxed);

    weft_rt *rt = stress_rt_new(opt);
    pthread_t dumpers[DUMPERS], waker;
    for (uintptr_t i = 0; i < DUMPERS; i++)
        STRESS_ENSURE(pthread_create(&dumpers[i], NULL, dumper_main, rt) == 0, "pthread_create");
    STRESS_ENSURE(pthread_create(&waker, NULL, waker_main, (void *)(uintptr_t)7) == 0,
                  "pthread_create");

    weft_join joins[BOSSES];
    uint64_t seeds[BOSSES];
    uint32_t ids[BOSSES];
    for (int b = 0; b < BOSSES; b++) {
        ids[b] = alloc_id();
        seeds[b] = mix64(seed ^ ((uint64_t)b << 40));
        boss bs = { WEFT_FN_INIT(boss, WEFT_F_SEND), .id = ids[b], .seed = seeds[b],
                    .rng = rng_seed(seeds[b]) };
        int rc = weft_spawn(rt, &bs.base, sizeof bs, &joins[b]);
        STRESS_ENSURE(rc == 0, "spawn of boss %d: %s", b, weft_strerror(rc));
    }
    for (int b = 0; b < BOSSES; b++) {
        uint64_t out = 0;
        int rc = weft_block_on(rt, &joins[b].base, &out, sizeof out);
        STRESS_ENSURE(rc == 0, "weft_block_on: %s", weft_strerror(rc));
        stress_check_join("main", "boss", ids[b], joins[b].status, out, true,
                          expected_output(seeds[b]), false);
    }
    /* Every task dropped: detached and orphaned kids too (a task only
     * spawns while alive, and its drop is counted after). */
    pthread_mutex_lock(&g_rs.lock);
    while (g_rs.dropped < atomic_load_explicit(&g_rs.allocated, memory_order_acquire))
        pthread_cond_wait(&g_rs.cond, &g_rs.lock);
    pthread_mutex_unlock(&g_rs.lock);

    wq_stop();
    for (int i = 0; i < DUMPERS; i++)
        pthread_join(dumpers[i], NULL);
    pthread_join(waker, NULL);
    weft_rt_shutdown(rt);

    uint32_t n = atomic_load_explicit(&g_rs.allocated, memory_order_acquire);
    for (uint32_t id = 0; id < n; id++)
        STRESS_ENSURE(atomic_load_explicit(&g_rs.drops[id], memory_order_relaxed) == 1,
                      "task %u dropped %u times", id,
                      (unsigned)atomic_load_explicit(&g_rs.drops[id], memory_order_relaxed));
}

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g_rs.n_tasks,  &g_rs.n_joined, &g_rs.n_aborted,         &g_rs.n_detached,
        &g_rs.n_large,  &g_rs.n_local,  &g_rs.n_foreign_wakes,   &g_rs.n_dumps,
        &g_rs.n_snapshots, &g_rs.n_idle_chains,
    };
    const stress_program p = {
        "stress_dump_race", run_round, counters, sizeof counters / sizeof counters[0],
        "tasks joined aborted detached large local foreign_wakes dumps snapshots idle_chains",
    };
    return stress_main(argc, argv, &p);
}
