/* weft-timeout: bound a wait with weft_timeout. A "slow operation" (here a
 * coroutine that sleeps, standing in for a request to a slow peer) runs
 * under a deadline twice: once it finishes in time, once the deadline wins
 * and the operation is dropped — which in weft is cancelling it. */
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

int main(void)
{
    weft_rt *rt;
    int rc = weft_rt_new(&rt, NULL);
    if (rc != 0) {
        fprintf(stderr, "weft_rt_new: %s\n", weft_strerror(rc));
        return 1;
    }
    int bad = run(rt, 10, 200) | run(rt, 1000, 50);
    weft_rt_shutdown(rt);
    return bad;
}
