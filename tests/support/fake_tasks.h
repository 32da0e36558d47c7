/* Test support: fake tasks for the queue tests. A fake task is a zeroed
 * struct weft__task known by its index in one array; the queues only store
 * pointers to it or link it through its `qnode`, as the scheduler does.
 * Also the pops that turn the injector's and inbox's intrusive nodes back
 * into tasks, and cache-line aligned memory for the queues themselves.
 * Each test program includes it once. */
#ifndef WEFT_TESTS_FAKE_TASKS_H
#define WEFT_TESTS_FAKE_TASKS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sched/injector.h"
#include "support/aligned.h"
#include "sched/task.h"

/* The most a test pops in one batch. */
#define FAKE_BATCH_MAX 64u

/* `n` fake tasks; free() them. */
static inline struct weft__task *tasks_new(size_t n)
{
    struct weft__task *t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        cds_wfcq_node_init(&t[i].qnode);
    return t;
}

/* The index of `t` in `tasks[0..n)`; fails the test for any other task. */
static inline size_t task_index(const struct weft__task *tasks, size_t n,
                                const struct weft__task *t)
{
    assert_non_null(t);
    assert_true(t >= tasks && t < tasks + n);
    return (size_t)(t - tasks);
}

static inline struct weft__task *task_of(struct cds_wfcq_node *n)
{
    return n ? weft__task_of_qnode(n) : NULL;
}

static inline void inj_push(weft__injector *q, struct weft__task *t)
{
    weft__injector_push(q, &t->qnode);
}

static inline struct weft__task *inj_pop(weft__injector *q)
{
    return task_of(weft__injector_pop(q));
}

/* Pops up to `max` (at most FAKE_BATCH_MAX) tasks into `out`. */
static inline unsigned inj_pop_batch(weft__injector *q, struct weft__task **out, unsigned max)
{
    struct cds_wfcq_node *nodes[FAKE_BATCH_MAX];
    assert_true(max <= FAKE_BATCH_MAX);
    unsigned n = weft__injector_pop_batch(q, nodes, max);
    for (unsigned i = 0; i < n; i++)
        out[i] = task_of(nodes[i]);
    return n;
}

static inline void inbox_push(weft__inbox *q, struct weft__task *t)
{
    weft__inbox_push(q, &t->qnode);
}

static inline struct weft__task *inbox_pop(weft__inbox *q)
{
    return task_of(weft__inbox_pop(q));
}

#endif
