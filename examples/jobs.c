/* weft-jobs: run 10,000 independent jobs on every core and wait for all of
 * them — a plain function per job (weft_spawn_fn), one future that joins
 * every handle (weft_join_all). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft/weft.h>

#define JOBS 10000

/* One job: a plain function. Its argument is a copy made at spawn; its
 * output is what the job's join handle yields. */
static void job(void *arg, void *out)
{
    uint64_t h = *(uint32_t *)arg + 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 1000; i++)
        h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9u;
    *(uint64_t *)out = h;
}

int main(void)
{
    weft_rt *rt;
    if (weft_rt_new(&rt, NULL) != 0)
        return 1;
    weft_join *joins = malloc(JOBS * sizeof *joins);
    uint64_t *results = malloc(JOBS * sizeof *results);
    int rc = joins && results ? 0 : -ENOMEM;
    uint32_t n = 0; /* jobs spawned */
    while (rc == 0 && n < JOBS) {
        rc = weft_spawn_fn(rt, job, &n, sizeof(uint64_t), &joins[n]);
        n += rc == 0;
    }

    /* Wait for every job that started; if one fails (or a spawn did), the
     * rest are aborted. */
    weft_join_all all;
    int wait = weft_join_all_init(&all, joins, n, results, sizeof *results,
                                  WEFT_JOIN_ALL_FAIL_FAST);
    if (wait == 0) {
        if (rc != 0)
            weft_join_all_abort(&all);
        wait = weft_block_on(rt, &all.base, NULL, 0);
        if (wait != 0)
            weft_future_drop(&all.base); /* a refused block_on leaves it with us */
        else
            wait = all.status;
    }
    if (rc == 0)
        rc = wait;

    uint64_t sum = 0;
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        sum += results[i];
    if (rc == 0)
        printf("%u jobs done, checksum %016llx\n", n, (unsigned long long)sum);
    else
        fprintf(stderr, "jobs: %s\n", weft_strerror(rc));
    weft_rt_shutdown(rt);
    free(joins);
    free(results);
    return rc == 0 ? 0 : 1;
}
