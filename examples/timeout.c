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

static weft_poll slow_op_poll(weft_future *f, weft_cx *cx, void *out)
{
    slow_op *s = (slow_op *)f;
    WEFT_CO_BEGIN(&s->co);
    weft_sleep_init(&s->nap, WEFT_MS(s->ms));
    WEFT_AWAIT(&s->co, cx, &s->nap.base, NULL);
    *(int *)out = 7;
    WEFT_CO_RETURN(&s->co);
    WEFT_CO_END(&s->co);
}

static void slow_op_drop(weft_future *f)
{
    slow_op *s = (slow_op *)f;
    if (s->co.awaiting)
        printf("  (operation cancelled while sleeping)\n");
    weft_co_drop(&s->co);
}

static const weft_future_ops slow_op_ops = { "slow_op", sizeof(int), slow_op_poll,
                                             slow_op_drop, NULL };

/* The caller: runs the operation with a deadline. Output: the status. */
typedef struct bounded {
    weft_future base;
    weft_co co;
    slow_op op;          /* owned by `limit` once the timeout is set up */
    weft_timeout limit;
    int answer;
    uint64_t op_ms, limit_ms;
} bounded;

static weft_poll bounded_poll(weft_future *f, weft_cx *cx, void *out)
{
    bounded *b = (bounded *)f;
    WEFT_CO_BEGIN(&b->co);
    weft_future_init(&b->op.base, &slow_op_ops, WEFT_F_SEND);
    weft_co_init(&b->op.co);
    b->op.ms = b->op_ms;
    if (weft_timeout_init(&b->limit, &b->op.base, WEFT_MS(b->limit_ms)) != 0) {
        weft_future_drop(&b->op.base); /* still ours: init failed */
        *(int *)out = -EINVAL;
        WEFT_CO_RETURN(&b->co);
    }
    WEFT_AWAIT(&b->co, cx, &b->limit.base, &b->answer);
    *(int *)out = b->limit.status; /* 0, or -ETIMEDOUT */
    WEFT_CO_RETURN(&b->co);
    WEFT_CO_END(&b->co);
}

static void bounded_drop(weft_future *f)
{
    weft_co_drop(&((bounded *)f)->co);
}

static const weft_future_ops bounded_ops = { "bounded", sizeof(int), bounded_poll,
                                             bounded_drop, NULL };

static int run(weft_rt *rt, uint64_t op_ms, uint64_t limit_ms)
{
    bounded b = { .op_ms = op_ms, .limit_ms = limit_ms };
    weft_future_init(&b.base, &bounded_ops, WEFT_F_SEND);
    weft_co_init(&b.co);
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
