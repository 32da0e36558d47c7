/* Unit tests for sched/injector.c: the global run queue (MPMC) and the
 * per-worker inbox (MPSC), both on liburcu's wait-free queue.
 *
 * Tasks are fake: zeroed blocks of sizeof(struct weft__task), known by
 * their index in one array; the queues link them through `qnode`. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sched/injector.h"
#include "sched/task.h"
#include "support/fake_tasks.h"
#include "support/sanitized.h"

#define NTASKS 64

struct fixture {
    weft__injector *inj;
    weft__inbox *inbox;
    struct weft__task *tasks;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->inj = aligned_zalloc(sizeof *f->inj);
    weft__injector_init(f->inj);
    f->inbox = aligned_zalloc(sizeof *f->inbox);
    weft__inbox_init(f->inbox);
    f->tasks = tasks_new(NTASKS);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    weft__injector_fini(f->inj);
    free(f->inj);
    free(f->inbox);
    free(f->tasks);
    free(f);
    return 0;
}

static size_t index_of(struct fixture *f, struct weft__task *t)
{
    return task_index(f->tasks, NTASKS, t);
}

/* ---- injector, one thread ------------------------------------------------ */

static void test_injector_new_queue_is_empty(void **state)
{
    struct fixture *f = *state;
    struct weft__task *out[4];
    assert_true(weft__injector_is_empty(f->inj));
    assert_null(inj_pop(f->inj));
    assert_int_equal(inj_pop_batch(f->inj, out, 4), 0);
}

static void test_injector_pop_returns_fifo_order(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < 10; i++)
        inj_push(f->inj, &f->tasks[i]);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(index_of(f, inj_pop(f->inj)), i);
    assert_null(inj_pop(f->inj));

    /* Reusable once drained, and a popped task can be queued again. */
    inj_push(f->inj, &f->tasks[3]);
    inj_push(f->inj, &f->tasks[0]);
    assert_int_equal(index_of(f, inj_pop(f->inj)), 3);
    assert_int_equal(index_of(f, inj_pop(f->inj)), 0);
    assert_null(inj_pop(f->inj));
}

static void test_injector_is_empty_tracks_contents(void **state)
{
    struct fixture *f = *state;
    inj_push(f->inj, &f->tasks[0]);
    assert_false(weft__injector_is_empty(f->inj));
    inj_push(f->inj, &f->tasks[1]);
    assert_non_null(inj_pop(f->inj));
    assert_false(weft__injector_is_empty(f->inj));
    assert_non_null(inj_pop(f->inj));
    assert_true(weft__injector_is_empty(f->inj));
}

static void test_injector_pop_batch_takes_at_most_max_in_order(void **state)
{
    struct fixture *f = *state;
    struct weft__task *out[NTASKS];
    for (size_t i = 0; i < 10; i++)
        inj_push(f->inj, &f->tasks[i]);

    /* max = 0 takes nothing and leaves the queue alone. */
    assert_int_equal(inj_pop_batch(f->inj, out, 0), 0);
    assert_false(weft__injector_is_empty(f->inj));

    /* Sentinel after the batch: nothing is written past `max`. */
    out[4] = NULL;
    assert_int_equal(inj_pop_batch(f->inj, out, 4), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(index_of(f, out[i]), i);
    assert_null(out[4]);

    /* Asking for more than there is returns the rest. */
    assert_int_equal(inj_pop_batch(f->inj, out, NTASKS), 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(index_of(f, out[i]), 4 + i);
    assert_true(weft__injector_is_empty(f->inj));
    assert_int_equal(inj_pop_batch(f->inj, out, NTASKS), 0);
}

/* A batch lands as one run after what was queued before it and ahead of
 * what is queued after it, keeping its own order; the private queue it
 * came from is left empty. */
static void test_injector_push_batch_keeps_order(void **state)
{
    struct fixture *f = *state;
    struct __cds_wfcq_head bh;
    struct cds_wfcq_tail bt;
    __cds_wfcq_init(&bh, &bt);
    for (size_t i = 1; i <= 5; i++) {
        cds_wfcq_node_init(&f->tasks[i].qnode);
        cds_wfcq_enqueue(&bh, &bt, &f->tasks[i].qnode);
    }
    inj_push(f->inj, &f->tasks[0]);
    weft__injector_push_batch(f->inj, &bh, &bt);
    assert_true(cds_wfcq_empty(&bh, &bt));
    inj_push(f->inj, &f->tasks[6]);

    for (size_t i = 0; i <= 6; i++)
        assert_int_equal(index_of(f, inj_pop(f->inj)), i);
    assert_true(weft__injector_is_empty(f->inj));

    /* A batch into an empty injector, then an empty batch (a no-op). */
    __cds_wfcq_init(&bh, &bt);
    for (size_t i = 10; i < 13; i++) {
        cds_wfcq_node_init(&f->tasks[i].qnode);
        cds_wfcq_enqueue(&bh, &bt, &f->tasks[i].qnode);
    }
    weft__injector_push_batch(f->inj, &bh, &bt);
    weft__injector_push_batch(f->inj, &bh, &bt);
    struct weft__task *out[8];
    assert_int_equal(inj_pop_batch(f->inj, out, 8), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(index_of(f, out[i]), 10 + i);
    assert_true(weft__injector_is_empty(f->inj));
}

/* ---- inbox, one thread ---------------------------------------------------- */

static void test_inbox_pop_returns_fifo_order(void **state)
{
    struct fixture *f = *state;
    assert_true(weft__inbox_is_empty(f->inbox));
    assert_null(inbox_pop(f->inbox));
    for (size_t i = 0; i < 10; i++)
        inbox_push(f->inbox, &f->tasks[i]);
    assert_false(weft__inbox_is_empty(f->inbox));
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(index_of(f, inbox_pop(f->inbox)), i);
    assert_true(weft__inbox_is_empty(f->inbox));
    assert_null(inbox_pop(f->inbox));
}

/* ---- concurrency ---------------------------------------------------------- */

#ifdef WEFT_TEST_SANITIZED
#define PER_PRODUCER 100000u
#else
#define PER_PRODUCER 250000u
#endif

#define MAX_PRODUCERS 4
#define MAX_CONSUMERS 2

/* Producer p pushes tasks [p * PER_PRODUCER, (p + 1) * PER_PRODUCER) in
 * order, each carrying its own index as payload. Consumers check each
 * task is seen once, carries its payload (the queue publishes the
 * producer's writes), and that each producer's tasks reach any one
 * consumer in push order (the queue is FIFO). The same producers and
 * consumers run on either queue through its three operations. */
struct mp_arg;

typedef struct mp_queue {
    void (*push)(struct fixture *f, struct weft__task *t);
    /* Takes what consumer `a` can get in one try, seeing each task;
     * false when it got nothing. */
    bool (*take)(struct mp_arg *a);
    bool (*is_empty)(struct fixture *f);
} mp_queue;

struct mp {
    struct fixture *f;
    const mp_queue *q;
    struct weft__task *tasks;
    size_t ntasks;
    unsigned producers;
    _Atomic uint32_t *seen;
    _Atomic unsigned producers_done;
    _Atomic unsigned long duplicates, foreign, bad_payload, reordered;
};

struct mp_arg {
    struct mp *m;
    unsigned id;
    int64_t last[MAX_PRODUCERS]; /* consumer: last index seen per producer */
};

static void mp_see(struct mp_arg *a, struct weft__task *t)
{
    struct mp *m = a->m;
    if (t < m->tasks || t >= m->tasks + m->ntasks) {
        atomic_fetch_add(&m->foreign, 1);
        return;
    }
    size_t i = (size_t)(t - m->tasks);
    if (t->out_size != (uint32_t)i)
        atomic_fetch_add(&m->bad_payload, 1);
    if (atomic_fetch_add_explicit(&m->seen[i], 1, memory_order_relaxed) != 0)
        atomic_fetch_add(&m->duplicates, 1);
    unsigned p = (unsigned)(i / PER_PRODUCER);
    if ((int64_t)i <= a->last[p])
        atomic_fetch_add(&m->reordered, 1);
    a->last[p] = (int64_t)i;
}

/* Sees `t` if there is one. */
static bool mp_see_one(struct mp_arg *a, struct weft__task *t)
{
    if (t)
        mp_see(a, t);
    return t != NULL;
}

static void *mp_producer(void *arg)
{
    struct mp_arg *a = arg;
    struct mp *m = a->m;
    for (size_t i = a->id * (size_t)PER_PRODUCER; i < (a->id + 1) * (size_t)PER_PRODUCER; i++) {
        m->tasks[i].out_size = (uint32_t)i;
        m->q->push(m->f, &m->tasks[i]);
    }
    /* Release: a consumer that sees every producer done also sees every
     * push complete (pairs with the acquire load in the consumers). */
    atomic_fetch_add_explicit(&m->producers_done, 1, memory_order_release);
    return NULL;
}

static void *mp_consumer(void *arg)
{
    struct mp_arg *a = arg;
    struct mp *m = a->m;
    for (unsigned p = 0; p < MAX_PRODUCERS; p++)
        a->last[p] = -1;
    for (;;) {
        /* Read before the try: once all producers are done, an empty queue
         * stays empty. (An empty try alone proves nothing: a dequeue also
         * comes back empty-handed while an enqueue is half done.) */
        bool done = atomic_load_explicit(&m->producers_done, memory_order_acquire) ==
                    m->producers;
        if (m->q->take(a))
            continue;
        if (done && m->q->is_empty(m->f))
            break;
        sched_yield();
    }
    return NULL;
}

static void injector_push(struct fixture *f, struct weft__task *t)
{
    inj_push(f->inj, t);
}

/* Consumer 0 takes batches, the others one task at a time. */
static bool injector_take(struct mp_arg *a)
{
    weft__injector *inj = a->m->f->inj;
    if (a->id == 0) {
        struct weft__task *buf[16];
        unsigned n = inj_pop_batch(inj, buf, 16);
        for (unsigned i = 0; i < n; i++)
            mp_see(a, buf[i]);
        return n > 0;
    }
    return mp_see_one(a, inj_pop(inj));
}

static bool injector_is_empty(struct fixture *f)
{
    return weft__injector_is_empty(f->inj);
}

static const mp_queue injector_queue = { injector_push, injector_take, injector_is_empty };

static void inbox_push_task(struct fixture *f, struct weft__task *t)
{
    inbox_push(f->inbox, t);
}

static bool inbox_take(struct mp_arg *a)
{
    return mp_see_one(a, inbox_pop(a->m->f->inbox));
}

static bool inbox_is_empty(struct fixture *f)
{
    return weft__inbox_is_empty(f->inbox);
}

static const mp_queue inbox_queue = { inbox_push_task, inbox_take, inbox_is_empty };

static void mp_run(struct fixture *f, const mp_queue *q, unsigned producers, unsigned consumers)
{
    struct mp m;
    memset(&m, 0, sizeof m);
    m.f = f;
    m.q = q;
    m.producers = producers;
    m.ntasks = (size_t)producers * PER_PRODUCER;
    m.tasks = tasks_new(m.ntasks);
    m.seen = calloc(m.ntasks, sizeof *m.seen);
    assert_non_null(m.seen);

    pthread_t pt[MAX_PRODUCERS], ct[MAX_CONSUMERS];
    struct mp_arg pa[MAX_PRODUCERS], ca[MAX_CONSUMERS];
    for (unsigned i = 0; i < consumers; i++) {
        ca[i] = (struct mp_arg){ .m = &m, .id = i };
        assert_int_equal(pthread_create(&ct[i], NULL, mp_consumer, &ca[i]), 0);
    }
    for (unsigned i = 0; i < producers; i++) {
        pa[i] = (struct mp_arg){ .m = &m, .id = i };
        assert_int_equal(pthread_create(&pt[i], NULL, mp_producer, &pa[i]), 0);
    }
    for (unsigned i = 0; i < producers; i++)
        assert_int_equal(pthread_join(pt[i], NULL), 0);
    for (unsigned i = 0; i < consumers; i++)
        assert_int_equal(pthread_join(ct[i], NULL), 0);

    assert_int_equal(atomic_load(&m.foreign), 0);
    assert_int_equal(atomic_load(&m.duplicates), 0);
    assert_int_equal(atomic_load(&m.bad_payload), 0);
    assert_int_equal(atomic_load(&m.reordered), 0);
    size_t missing = 0;
    for (size_t i = 0; i < m.ntasks; i++)
        missing += atomic_load_explicit(&m.seen[i], memory_order_relaxed) == 0;
    assert_int_equal(missing, 0);

    free(m.tasks);
    free(m.seen);
}

static void test_injector_concurrent_producers_consumers_see_each_task_once(void **state)
{
    struct fixture *f = *state;
    mp_run(f, &injector_queue, 4, 2);
    assert_true(weft__injector_is_empty(f->inj));
}

static void test_inbox_concurrent_producers_single_consumer_see_each_task_once(void **state)
{
    struct fixture *f = *state;
    mp_run(f, &inbox_queue, 3, 1);
    assert_true(weft__inbox_is_empty(f->inbox));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_injector_new_queue_is_empty),
        T(test_injector_pop_returns_fifo_order),
        T(test_injector_is_empty_tracks_contents),
        T(test_injector_pop_batch_takes_at_most_max_in_order),
        T(test_injector_push_batch_keeps_order),
        T(test_inbox_pop_returns_fifo_order),
        T(test_injector_concurrent_producers_consumers_see_each_task_once),
        T(test_inbox_concurrent_producers_single_consumer_see_each_task_once),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
