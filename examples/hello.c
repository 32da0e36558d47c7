/* weft-hello: the smallest complete weft program. A runtime, one task
 * written as a coroutine that yields once and returns a value, and the main
 * thread waiting for it through the task's join handle. */
#include <stdio.h>
#include <weft/weft.h>

typedef struct hello {
    weft_future base; /* first member of every future */
    weft_co co;       /* where the coroutine resumes */
    weft_yield y;     /* the future being awaited lives in the struct */
    int answer;
} hello;

static weft_poll hello_poll(weft_future *f, weft_cx *cx, void *out)
{
    hello *h = (hello *)f;
    WEFT_CO_BEGIN(&h->co);
    weft_yield_init(&h->y);
    WEFT_AWAIT(&h->co, cx, &h->y.base, NULL); /* let other tasks run once */
    *(int *)out = h->answer;
    WEFT_CO_RETURN(&h->co);
    WEFT_CO_END(&h->co);
}

static void hello_drop(weft_future *f)
{
    weft_co_drop(&((hello *)f)->co); /* drops the yield if cancelled mid-await */
}

static const weft_future_ops hello_ops = { "hello", sizeof(int), hello_poll, hello_drop, NULL };

int main(void)
{
    weft_rt *rt;
    int rc = weft_rt_new(&rt, NULL); /* NULL: defaults, one worker per CPU */
    if (rc != 0) {
        fprintf(stderr, "weft_rt_new: %s\n", weft_strerror(rc));
        return 1;
    }
    hello h = { .answer = 42 };
    weft_future_init(&h.base, &hello_ops, WEFT_F_SEND); /* Send: any worker may run it */
    weft_co_init(&h.co);

    weft_join join;
    int answer = 0;
    rc = weft_spawn(rt, &h.base, sizeof h, &join); /* copies h into the task */
    if (rc != 0)
        weft_future_drop(&h.base); /* a failed spawn leaves h with us */
    else if ((rc = weft_block_on(rt, &join.base, &answer, sizeof answer)) != 0)
        weft_future_drop(&join.base); /* so does a refused block_on */
    else
        rc = join.status; /* 0, or -ECANCELED had the task been aborted */

    if (rc == 0)
        printf("hello from weft: the task answered %d\n", answer);
    else
        fprintf(stderr, "hello: %s\n", weft_strerror(rc));
    weft_rt_shutdown(rt);
    return rc == 0 ? 0 : 1;
}
