/* sim_demo: a small async program run on the deterministic runtime (sim
 * mode, weft/testing.h) with its chaos knobs on.
 *
 * Four workers yield and sleep, a task sleeps for an hour and is aborted,
 * and two nested timeouts race a slow sleep, while the main task sleeps ten
 * seconds in two steps. On the sim all of it takes a few milliseconds of
 * wall time: the clock is virtual and jumps to the next deadline whenever
 * every task waits. Tasks run in an order drawn from the seed, with
 * spurious wakes, library futures returning PENDING first, and late timers.
 *
 *   sim_demo --seed 7     prints what happened, then
 *   seed=7 trace=<16 hex digits> virtual_ms=<n> polls=<n>
 * The same seed prints the same lines every time; WEFT_SEED=<n> in the
 * environment overrides --seed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/weft.h>

#define WORKERS 4

/* A worker: three rounds of yield-then-sleep; answers id * 10. */
typedef struct worker {
    weft_future base;
    weft_co co;
    weft_yield turn;
    weft_sleep nap;
    int id, round;
} worker;

WEFT_ASYNC_FN(worker, int)
{
    WEFT_FN_BEGIN;
    for (self->round = 0; self->round < 3; self->round++) {
        weft_yield_init(&self->turn);
        WEFT_FN_AWAIT(&self->turn, NULL);
        weft_sleep_init(&self->nap, WEFT_MS(100 * (self->id + 1)));
        WEFT_FN_AWAIT(&self->nap, NULL);
    }
    WEFT_FN_RETURN(self->id * 10);
    WEFT_FN_END;
}

/* Sleeps an hour: it is aborted long before. */
typedef struct sleeper {
    weft_future base;
    weft_co co;
    weft_sleep nap;
} sleeper;

WEFT_ASYNC_FN_VOID(sleeper)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->nap, WEFT_SEC(3600));
    WEFT_FN_AWAIT(&self->nap, NULL);
    WEFT_FN_END;
}

/* A 5 s sleep under a 1 s timeout under a 2 s timeout: the inner timeout
 * fires, so the outer one completes in time. Answers the inner timeout's
 * status (-ETIMEDOUT) when the outer one completed in time, else the
 * outer's. */
typedef struct nested {
    weft_future base;
    weft_co co;
    weft_sleep slow;
    weft_timeout inner, outer;
} nested;

WEFT_ASYNC_FN(nested, int)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->slow, WEFT_SEC(5));
    if (weft_timeout_init(&self->inner, &self->slow.base, WEFT_SEC(1)) != 0) {
        weft_future_drop(&self->slow.base);
        WEFT_FN_RETURN(-EINVAL);
    }
    if (weft_timeout_init(&self->outer, &self->inner.base, WEFT_SEC(2)) != 0) {
        weft_future_drop(&self->inner.base);
        WEFT_FN_RETURN(-EINVAL);
    }
    WEFT_FN_AWAIT(&self->outer, NULL);
    WEFT_FN_RETURN(self->outer.status ? self->outer.status : self->inner.status);
    WEFT_FN_END;
}

/* The main task. Output: 0, or the first error. */
typedef struct scenario {
    weft_future base;
    weft_co co;
    weft_join workers[WORKERS], hour, race;
    weft_sleep pause;
    int answers[WORKERS], race_status, i, sum;
} scenario;

/* Joins spawned but not awaited yet are this coroutine's to drop. */
static void drop_join(weft_join *j, const weft_co *co)
{
    if (j->base.ops && j->task && co->awaiting != &j->base)
        weft_future_drop(&j->base);
}

static void scenario_drop(weft_future *f)
{
    scenario *self = (scenario *)f;
    for (int i = 0; i < WORKERS; i++)
        drop_join(&self->workers[i], &self->co);
    drop_join(&self->hour, &self->co);
    drop_join(&self->race, &self->co);
    weft_co_drop(&self->co);
}

WEFT_ASYNC_FN_WITH_DROP(scenario, int)
{
    int rc;
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < WORKERS; self->i++) {
        rc = WEFT_SPAWN(NULL, &self->workers[self->i],
                        &(worker){ WEFT_FN_INIT(worker, WEFT_F_SEND), .id = self->i });
        if (rc != 0)
            WEFT_FN_RETURN(rc);
    }
    rc = WEFT_SPAWN(NULL, &self->hour, &(sleeper){ WEFT_FN_INIT(sleeper, WEFT_F_SEND) });
    if (rc != 0)
        WEFT_FN_RETURN(rc);
    rc = WEFT_SPAWN(NULL, &self->race, &(nested){ WEFT_FN_INIT(nested, WEFT_F_SEND) });
    if (rc != 0)
        WEFT_FN_RETURN(rc);

    weft_sleep_init(&self->pause, WEFT_SEC(3));
    WEFT_FN_AWAIT(&self->pause, NULL);
    weft_join_abort(&self->hour); /* an hour is too long */
    WEFT_FN_AWAIT(&self->hour, NULL);
    printf("hour-long sleeper: %s\n", weft_strerror(self->hour.status));

    WEFT_FN_AWAIT(&self->race, &self->race_status);
    printf("nested timeouts: inner %s, outer in time\n", weft_strerror(self->race_status));

    for (self->i = 0; self->i < WORKERS; self->i++) {
        WEFT_FN_AWAIT(&self->workers[self->i], &self->answers[self->i]);
        self->sum += self->answers[self->i];
    }
    printf("workers answered %d in all\n", self->sum);

    weft_sleep_init(&self->pause, WEFT_SEC(7));
    WEFT_FN_AWAIT(&self->pause, NULL);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

int main(int argc, char **argv)
{
    weft_sim_options opts = WEFT_SIM_OPTIONS_INIT;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            opts.seed = strtoull(argv[++i], &end, 0);
            if (*end == '\0')
                continue;
        }
        fprintf(stderr, "usage: %s [--seed N]\n", argv[0]);
        return 2;
    }
    /* Chaos on: every knob fires half the time. */
    opts.spurious_wake = 0.5;
    opts.leaf_pending = 0.5;
    opts.timer_late = 0.5;

    weft_rt *rt;
    int rc = weft_rt_new_sim(&rt, &opts);
    if (rc != 0) {
        fprintf(stderr, "weft_rt_new_sim: %s\n", weft_strerror(rc));
        return 1;
    }
    scenario main_task = { WEFT_FN_INIT(scenario, WEFT_F_SEND) };
    int status = 0;
    rc = weft_block_on(rt, &main_task.base, &status, sizeof status);
    weft_sim_stats st;
    if (rc == 0)
        rc = weft_sim_stats_get(rt, &st);
    weft_rt_shutdown(rt);
    if (rc != 0 || status != 0) {
        fprintf(stderr, "sim_demo: %s\n", weft_strerror(rc ? rc : status));
        return 1;
    }
    printf("seed=%" PRIu64 " trace=%016" PRIx64 " virtual_ms=%" PRIu64 " polls=%" PRIu64 "\n",
           st.seed, st.trace_hash, (st.now - WEFT_SIM_START) / 1000000u, st.polls);
    return 0;
}
