/* weft-hello: the smallest complete weft program. A runtime, one task
 * written as an async fn that yields once and returns a value, and the main
 * thread waiting for it through the task's join handle. */
#include <stdio.h>
#include <weft/weft.h>

/* The task's state. The function returns to the scheduler at every await,
 * so anything that must survive one lives here, not in C locals. */
typedef struct hello {
    weft_future base; /* first member of every future */
    weft_co co;       /* where the function resumes */
    int answer;
} hello;

/* The task's code. WEFT_ASYNC_FN writes the glue around it (hello_poll,
 * hello_drop, hello_ops); in the body, `self` is the task's struct and the
 * output is an int. */
WEFT_ASYNC_FN(hello, int)
{
    WEFT_FN_BEGIN;
    WEFT_FN_YIELD;                /* let other tasks run once */
    WEFT_FN_RETURN(self->answer); /* the output; the task is done */
    WEFT_FN_END;
}

int main(void)
{
    weft_rt *rt;
    int rc = weft_rt_new(&rt, NULL); /* NULL: defaults, one worker per CPU */
    if (rc != 0) {
        fprintf(stderr, "weft_rt_new: %s\n", weft_strerror(rc));
        return 1;
    }

    /* Spawn the task: the future is copied into it (a failed spawn drops
     * it). WEFT_F_SEND: any worker may run it. */
    weft_join join;
    int answer = 0;
    rc = WEFT_SPAWN(rt, &join, &(hello){ WEFT_FN_INIT(hello, WEFT_F_SEND), .answer = 42 });
    if (rc == 0) {
        /* Wait here, on the main thread, until the task has finished. */
        rc = weft_block_on(rt, &join.base, &answer, sizeof answer);
        if (rc != 0)
            weft_future_drop(&join.base); /* a refused block_on leaves it with us */
        else
            rc = join.status; /* 0, or -ECANCELED had the task been aborted */
    }

    if (rc == 0)
        printf("hello from weft: the task answered %d\n", answer);
    else
        fprintf(stderr, "hello: %s\n", weft_strerror(rc));
    weft_rt_shutdown(rt);
    return rc == 0 ? 0 : 1;
}
