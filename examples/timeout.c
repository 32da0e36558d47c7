/* weft-timeout: bound a wait with weft_timeout, in its two forms. A "slow
 * operation" (here a coroutine that sleeps, standing in for a request to a
 * slow peer) runs under a deadline twice: once it finishes in time, once
 * the deadline wins and the operation is dropped — which in weft is
 * cancelling it. Then the same operation runs as a job (a spawned task),
 * waited for under a deadline with the borrowing timeout, which leaves the
 * job's handle to us: when the deadline wins, we abort the job ourselves. */
#include <stdio.h>
#include <weft/weft.h>

/* The operation: sleeps `ms`, then answers 7. */
typedef struct slow_op {
    weft_future base;
    weft_co co;
    weft_sleep nap;
    uint64_t ms;
} slow_op;

/* A drop of its own, only to show when the deadline cancels it. */
static void slow_op_drop(weft_future *f)
{
    slow_op *self = (slow_op *)f;
    if (self->co.awaiting)
        printf("  (operation cancelled while sleeping)\n");
    weft_co_drop(&self->co); /* drops the sleep */
}

WEFT_ASYNC_FN_WITH_DROP(slow_op, int)
{
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->nap, WEFT_MS(self->ms));
    WEFT_FN_AWAIT(&self->nap, NULL);
    WEFT_FN_RETURN(7);
    WEFT_FN_END;
}

/* The caller: runs the operation with a deadline. Output: the status. */
typedef struct bounded {
    weft_future base;
    weft_co co;
    slow_op op;          /* owned by `limit` once the timeout is set up */
    weft_timeout limit;
    int answer;
    uint64_t op_ms, limit_ms;
} bounded;

WEFT_ASYNC_FN(bounded, int)
{
    WEFT_FN_BEGIN;
    self->op = (slow_op){ WEFT_FN_INIT(slow_op, WEFT_F_SEND), .ms = self->op_ms };
    if (weft_timeout_init(&self->limit, &self->op.base, WEFT_MS(self->limit_ms)) != 0) {
        weft_future_drop(&self->op.base); /* still ours: init failed */
        WEFT_FN_RETURN(-EINVAL);
    }
    WEFT_FN_AWAIT(&self->limit, &self->answer);
    WEFT_FN_RETURN(self->limit.status); /* 0, or -ETIMEDOUT */
    WEFT_FN_END;
}

/* The job's supervisor: spawns the operation as a job, waits for it with a
 * deadline, and aborts it when the deadline passes first. Output: the
 * job's status (0, or -ECANCELED once aborted). */
typedef struct supervise {
    weft_future base;
    weft_co co;
    weft_join job;      /* the job's handle: ours throughout */
    bool job_live;      /* ours to drop (not being awaited) */
    weft_timeout limit; /* borrows `job`: polls it, never drops it */
    int answer;
    uint64_t op_ms, limit_ms;
} supervise;

static void supervise_drop(weft_future *f)
{
    supervise *self = (supervise *)f;
    weft_co_drop(&self->co); /* the timeout (before the job it points to), or the job */
    if (self->job_live)
        weft_join_cancel(&self->job); /* nobody will wait for it: stop it */
}

WEFT_ASYNC_FN_WITH_DROP(supervise, int)
{
    WEFT_FN_BEGIN;
    {
        slow_op op = { WEFT_FN_INIT(slow_op, WEFT_F_SEND), .ms = self->op_ms };
        int rc = WEFT_SPAWN(NULL, &self->job, &op); /* on the current runtime */
        if (rc != 0)
            WEFT_FN_RETURN(rc);
        self->job_live = true;
    }
    if (weft_timeout_borrow_init(&self->limit, &self->job.base, WEFT_MS(self->limit_ms)) != 0)
        WEFT_FN_RETURN(-EINVAL); /* the drop cancels the job */
    WEFT_FN_AWAIT(&self->limit, &self->answer); /* drops the timeout, not the job */
    if (self->limit.status == 0) {
        self->job_live = false;
        weft_future_drop(&self->job.base); /* finished: its handle is ours to drop */
        printf("  job answered %d in time\n", self->answer);
        WEFT_FN_RETURN(0);
    }
    printf("  %s; aborting the job\n", weft_strerror(self->limit.status));
    weft_join_abort(&self->job);
    self->job_live = false; /* awaited next, and dropped by the await */
    WEFT_FN_AWAIT(&self->job, &self->answer);
    WEFT_FN_RETURN(self->job.status); /* -ECANCELED, or 0 if it finished first */
    WEFT_FN_END;
}

static int run(weft_rt *rt, uint64_t op_ms, uint64_t limit_ms)
{
    bounded b = { WEFT_FN_INIT(bounded, WEFT_F_SEND), .op_ms = op_ms, .limit_ms = limit_ms };
    int status = 0;
    printf("operation of %llu ms under a %llu ms deadline:\n", (unsigned long long)op_ms,
           (unsigned long long)limit_ms);
    int rc = weft_block_on(rt, &b.base, &status, sizeof status);
    if (rc != 0) {
        fprintf(stderr, "weft_block_on: %s\n", weft_strerror(rc));
        return 1;
    }
    if (status == 0)
        printf("  answered %d in time\n", b.answer);
    else
        printf("  %s\n", weft_strerror(status));
    return 0;
}

static int run_job(weft_rt *rt, uint64_t op_ms, uint64_t limit_ms)
{
    supervise s = { WEFT_FN_INIT(supervise, WEFT_F_SEND), .op_ms = op_ms, .limit_ms = limit_ms };
    int status = 0;
    printf("job of %llu ms under a %llu ms deadline:\n", (unsigned long long)op_ms,
           (unsigned long long)limit_ms);
    int rc = weft_block_on(rt, &s.base, &status, sizeof status);
    if (rc != 0) {
        fprintf(stderr, "weft_block_on: %s\n", weft_strerror(rc));
        return 1;
    }
    printf("  job status: %s\n", status == 0 ? "done" : weft_strerror(status));
    return 0;
}

int main(void)
{
    weft_rt *rt;
    int rc = weft_rt_new(&rt, NULL);
    if (rc != 0) {
        fprintf(stderr, "weft_rt_new: %s\n", weft_strerror(rc));
        return 1;
    }
    int bad = run(rt, 10, 200) | run(rt, 1000, 50) | run_job(rt, 10, 200) |
              run_job(rt, 1000, 50);
    weft_rt_shutdown(rt);
    return bad;
}
