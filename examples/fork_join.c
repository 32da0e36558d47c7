/* weft-demo: fork-join on a work-stealing runtime.
 *
 * Computes fib(30) the naive parallel way: every call with n >= 2 spawns
 * two tasks, for fib(n-1) and fib(n-2), and joins both — 2.7 million tasks.
 * Real code would stop splitting below some size and recurse sequentially
 * (a spawn costs far more than an addition); splitting all the way down is
 * what makes this a good look at the scheduler itself. The root task starts
 * on one worker; the others get work by stealing from its queue or by
 * picking up what its full queue spilled to the global queue, and the table
 * at the end shows which.
 *
 * Usage: weft-demo [workers]        (default: one per online CPU)
 */
#define _POSIX_C_SOURCE 200809L

#include <weft/weft.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define FIB_N 30

/* fib(n) as an async fn. Output: int64_t, fib(n) or a negative error code
 * (a failed spawn, a cancelled child). Send. Cancelling it cancels the
 * children it spawned. */
typedef struct fib_task {
    weft_future base;
    weft_co co;
    int32_t n;
    int64_t got; /* output slot of the child being joined */
    int64_t sum; /* fib(n-1) while fib(n-2) is joined */
    weft_join left, right;
} fib_task;

/* Dropped while joining: stop the children too. While the left child is
 * awaited the right one exists but is not the awaited future, so it is
 * ours to release; weft_co_drop releases the awaited one. */
static void fib_task_drop(weft_future *f)
{
    fib_task *self = (fib_task *)f;
    weft_future *awaited = self->co.awaiting;
    if (awaited)
        weft_join_abort((weft_join *)awaited);
    weft_co_drop(&self->co);
    if (awaited == &self->left.base)
        weft_join_cancel(&self->right);
}

/* A joined child's result: its output, or its status if it was cancelled. */
static int64_t child_result(const weft_join *j, int64_t got)
{
    return j->status != 0 ? j->status : got;
}

WEFT_ASYNC_FN_WITH_DROP(fib_task, int64_t)
{
    int rc; /* used between awaits only, so a C local will do */
    WEFT_FN_BEGIN;
    if (self->n < 2)
        WEFT_FN_RETURN(self->n);
    /* Spawning from a worker puts the child in that worker's LIFO slot
     * (run next) and pushes the previous occupant to its queue, where an
     * idle worker can steal it. A failed spawn drops the child. */
    rc = WEFT_SPAWN(NULL, &self->left,
                    &(fib_task){ WEFT_FN_INIT(fib_task, WEFT_F_SEND), .n = self->n - 1 });
    if (rc != 0)
        WEFT_FN_RETURN(rc);
    rc = WEFT_SPAWN(NULL, &self->right,
                    &(fib_task){ WEFT_FN_INIT(fib_task, WEFT_F_SEND), .n = self->n - 2 });
    if (rc != 0) {
        weft_join_cancel(&self->left);
        WEFT_FN_RETURN(rc);
    }
    WEFT_FN_AWAIT(&self->left, &self->got);
    self->sum = child_result(&self->left, self->got);
    if (self->sum < 0) {
        weft_join_cancel(&self->right);
        WEFT_FN_RETURN(self->sum);
    }
    WEFT_FN_AWAIT(&self->right, &self->got);
    self->got = child_result(&self->right, self->got);
    WEFT_FN_RETURN(self->got < 0 ? self->got : self->sum + self->got);
    WEFT_FN_END;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Run fib(n) on `rt` from this (non-worker) thread. Returns 0 and the
 * value, or an error code. */
static int parallel_fib(weft_rt *rt, int32_t n, int64_t *value)
{
    weft_join join;
    int rc = WEFT_SPAWN(rt, &join, &(fib_task){ WEFT_FN_INIT(fib_task, WEFT_F_SEND), .n = n });
    if (rc != 0)
        return rc;
    int64_t r;
    rc = weft_block_on(rt, &join.base, &r, sizeof r);
    if (rc != 0) {
        weft_future_drop(&join.base); /* refused before polling: still ours */
        return rc;
    }
    if (join.status != 0)
        return join.status;
    if (r < 0)
        return (int)r;
    *value = r;
    return 0;
}

static int64_t fib_seq(int32_t n)
{
    return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

int main(int argc, char **argv)
{
    weft_rt_options opts = WEFT_RT_OPTIONS_INIT; /* workers 0: one per CPU */
    if (argc > 2 || (argc == 2 && (opts.workers = (unsigned)atoi(argv[1])) == 0)) {
        fprintf(stderr, "usage: weft-demo [workers]\n");
        return 1;
    }
    weft_rt *rt;
    int rc = weft_rt_new(&rt, &opts);
    if (rc != 0) {
        fprintf(stderr, "weft-demo: weft_rt_new: %s\n", weft_strerror(rc));
        return 1;
    }

    int64_t value = 0;
    double t0 = now_ms();
    rc = parallel_fib(rt, FIB_N, &value);
    double ms = now_ms() - t0;
    if (rc != 0) {
        fprintf(stderr, "weft-demo: %s\n", weft_strerror(rc));
        weft_rt_shutdown(rt);
        return 1;
    }
    int64_t expect = fib_seq(FIB_N);

    weft_worker_stats st[WEFT_RT_MAX_WORKERS];
    unsigned n = WEFT_RT_MAX_WORKERS;
    rc = weft_rt_stats(rt, st, &n);
    weft_rt_shutdown(rt);

    printf("fib(%d) = %" PRId64 " (%s), %.1f ms on %u worker%s\n\n", FIB_N, value,
           value == expect ? "correct" : "WRONG", ms, n, n == 1 ? "" : "s");
    if (rc == 0) {
        printf("worker      polls    stolen  steal-ops  parks  lifo-hits  injector  overflows\n");
        for (unsigned i = 0; i < n; i++)
            printf("%6u %10" PRIu64 " %9" PRIu64 " %10" PRIu64 " %6" PRIu64 " %10" PRIu64
                   " %9" PRIu64 " %10" PRIu64 "\n",
                   i, st[i].polls, st[i].steals, st[i].steal_ops, st[i].parks,
                   st[i].lifo_hits, st[i].injector_pulls, st[i].overflows);
        printf("\npolls      task polls run on the worker\n"
               "stolen     tasks taken from other workers' queues\n"
               "steal-ops  raids that stole something (each takes half a queue)\n"
               "parks      times the worker went to sleep for lack of work\n"
               "lifo-hits  tasks run right after the task that spawned or woke them\n"
               "injector   tasks taken from the global queue (spawns from outside\n"
               "           the workers, and overflow of a full local queue)\n"
               "overflows  times a full local queue moved half its tasks to the\n"
               "           global queue, where any worker can pick them up\n");
    }
    return value == expect ? 0 : 1;
}
