/* weft-dump: what a runtime's tasks are doing, seen from another thread.
 *
 * A few named tasks run for about a second: two sleepers tick on timers, a
 * waiter waits for a task it spawned, a cruncher computes in slices
 * (yielding between them) and a plain function counts primes. Meanwhile a
 * second thread prints weft_rt_dump three times: one line per task (its
 * name, state, polls, age, the task wakers held elsewhere, and where an
 * idle one waits: "sleeper:N > weft_sleep" is line N of this file, in
 * the async fn sleeper, waiting on a weft_sleep), then the counts. The
 * format is described in docs/rt.md ("Task dumps").
 *
 * Usage: weft-dump
 */
#include <weft/weft.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

/* ---- the tasks -------------------------------------------------------------- */

/* Sleeps `ticks` times for `ms` milliseconds. */
typedef struct sleeper {
    weft_future base;
    weft_co co;
    unsigned ticks, ms, i;
    weft_sleep nap;
} sleeper;

WEFT_ASYNC_FN_VOID(sleeper)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->ticks; self->i++) {
        weft_sleep_init(&self->nap, WEFT_MS(self->ms));
        WEFT_FN_AWAIT(&self->nap, NULL);
    }
    WEFT_FN_END;
}

/* Spawns a sleeper and waits for it: a task waiting on another. Output:
 * the sleeper's join status. */
typedef struct waiter {
    weft_future base;
    weft_co co;
    weft_join child;
} waiter;

WEFT_ASYNC_FN(waiter, int)
{
    int rc;
    WEFT_FN_BEGIN;
    rc = WEFT_SPAWN(NULL, &self->child,
                    &(sleeper){ WEFT_FN_INIT(sleeper, WEFT_F_SEND), .ticks = 1, .ms = 900 });
    if (rc != 0)
        WEFT_FN_RETURN(rc);
    WEFT_FN_AWAIT(&self->child, NULL);
    WEFT_FN_RETURN(self->child.status);
    WEFT_FN_END;
}

/* Sums 1..n in slices of 100,000, yielding between slices and napping
 * every so often, so that it is sometimes running, sometimes queued and
 * sometimes asleep. Output: the sum. */
typedef struct cruncher {
    weft_future base;
    weft_co co;
    uint64_t n, i, sum;
    weft_sleep nap;
} cruncher;

WEFT_ASYNC_FN(cruncher, uint64_t)
{
    WEFT_FN_BEGIN;
    while (self->i < self->n) {
        for (uint64_t end = self->i + 100000; self->i < end && self->i < self->n; self->i++)
            self->sum += self->i + 1;
        if (self->i % 10000000 == 0) {
            weft_sleep_init(&self->nap, WEFT_MS(20));
            WEFT_FN_AWAIT(&self->nap, NULL);
        } else {
            WEFT_FN_YIELD;
        }
    }
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

/* A plain function as a task: named after itself in dumps. */
static void count_primes(void *arg, void *out)
{
    uint32_t limit = *(uint32_t *)arg, count = 0;
    for (uint32_t n = 2; n < limit; n++) {
        uint32_t d = 2;
        while (d * d <= n && n % d != 0)
            d++;
        count += d * d > n;
    }
    *(uint32_t *)out = count;
}

/* ---- the dumping thread ---------------------------------------------------------- */

/* Every 300 ms, three times: print what the runtime's tasks are doing. It
 * waits with weft_block_on over a weft_sleep: this thread is no worker. */
static void *dumper(void *arg)
{
    weft_rt *rt = arg;
    for (int i = 1; i <= 3; i++) {
        weft_sleep nap;
        weft_sleep_init(&nap, WEFT_MS(300));
        int rc = weft_block_on(rt, &nap.base, NULL, 0);
        if (rc != 0) {
            weft_future_drop(&nap.base); /* refused: still ours */
            fprintf(stderr, "weft-dump: weft_block_on: %s\n", weft_strerror(rc));
            return NULL;
        }
        printf("---- dump %d\n", i);
        rc = weft_rt_dump(rt, stdout);
        if (rc != 0)
            fprintf(stderr, "weft-dump: weft_rt_dump: %s\n", weft_strerror(rc));
    }
    return NULL;
}

/* ---- main -------------------------------------------------------------------------- */

/* Spawn the tasks, counting them in `*n` (their handles go to `joins`).
 * Returns 0 or the first failed spawn's error. */
static int spawn_tasks(weft_rt *rt, weft_join *joins, unsigned *n)
{
    int rc = WEFT_SPAWN(rt, &joins[*n],
                        &(sleeper){ WEFT_FN_INIT(sleeper, WEFT_F_SEND), .ticks = 10, .ms = 100 });
    if (rc != 0)
        return rc;
    ++*n;
    rc = WEFT_SPAWN(rt, &joins[*n],
                    &(sleeper){ WEFT_FN_INIT(sleeper, WEFT_F_SEND), .ticks = 4, .ms = 250 });
    if (rc != 0)
        return rc;
    ++*n;
    rc = WEFT_SPAWN(rt, &joins[*n], &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND) });
    if (rc != 0)
        return rc;
    ++*n;
    rc = WEFT_SPAWN(rt, &joins[*n],
                    &(cruncher){ WEFT_FN_INIT(cruncher, WEFT_F_SEND), .n = 100000000 });
    if (rc != 0)
        return rc;
    ++*n;
    rc = weft_spawn_fn(rt, count_primes, &(uint32_t){ 2000000 }, sizeof(uint32_t), &joins[*n]);
    if (rc != 0)
        return rc;
    ++*n;
    return 0;
}

#define NTASKS 5

int main(void)
{
    weft_rt_options opts = WEFT_RT_OPTIONS_INIT;
    opts.workers = 2;
    weft_rt *rt;
    int rc = weft_rt_new(&rt, &opts);
    if (rc != 0) {
        fprintf(stderr, "weft-dump: weft_rt_new: %s\n", weft_strerror(rc));
        return 1;
    }
    /* Record spawn times, so that dumps show ages (8 bytes per task). */
    rc = weft_rt_track_ages(rt, true);

    weft_join joins[NTASKS];
    unsigned spawned = 0;
    if (rc == 0)
        rc = spawn_tasks(rt, joins, &spawned);
    pthread_t thread;
    bool dumping = rc == 0 && pthread_create(&thread, NULL, dumper, rt) == 0;
    if (rc == 0 && !dumping)
        fprintf(stderr, "weft-dump: cannot start the dumping thread\n");

    /* Wait for every task (their outputs differ in size: discard them). */
    weft_join_all all;
    if (rc == 0 && (rc = weft_join_all_init(&all, joins, spawned, NULL, 0, 0)) == 0) {
        rc = weft_block_on(rt, &all.base, NULL, 0);
        if (rc != 0)
            weft_future_drop(&all.base); /* refused: still ours */
        else
            rc = all.status;
    } else {
        for (unsigned i = 0; i < spawned; i++)
            weft_join_cancel(&joins[i]);
    }
    if (dumping)
        pthread_join(thread, NULL);

    weft_rt_counts c;
    if (weft_rt_count(rt, &c) == 0)
        printf("---- at the end: %llu tasks, %llu timers, %llu task wakers\n",
               (unsigned long long)c.tasks, (unsigned long long)c.timers,
               (unsigned long long)c.wakers);
    weft_rt_shutdown(rt);
    if (rc != 0) {
        fprintf(stderr, "weft-dump: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
