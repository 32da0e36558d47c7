/* Private: the blocking pool (blocking.c) — threads beside the workers
 * that run plain functions which may block (a file read, getaddrinfo),
 * each job joined through an ordinary task. */
#ifndef WEFT_SCHED_BLOCKING_H
#define WEFT_SCHED_BLOCKING_H

#include <stddef.h>

#include "weft/rt.h"

struct weft_rt;

/* Called once with the job's copy of its argument when the job's memory
 * goes, whether the function ran or not (a job cancelled while queued):
 * what the argument owns can be released there. */
typedef void weft__blocking_arg_drop_fn(void *arg);

/* weft_spawn_blocking, plus `name` (reports and dumps; NULL: the
 * default) and `drop_arg` (NULL: nothing to release). */
int weft__spawn_blocking(weft_rt *rt, weft_task_fn *fn, const char *name, const void *arg,
                         size_t arg_size, size_t out_size, weft__blocking_arg_drop_fn *drop_arg,
                         weft_join *join);

/* weft_rt_shutdown's step, after every task was cancelled (so no job is
 * queued and every running one is detached): refuse new jobs, wait for
 * the running ones to finish, join every pool thread and free the pool.
 * Once; on the thread shutting down. */
void weft__blocking_shutdown(struct weft_rt *rt);

#endif
