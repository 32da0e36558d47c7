/* Private: the global run queue and per-worker inboxes (liburcu wait-free
 * concurrent queue). They queue intrusive nodes (a task's qnode) and know
 * nothing of what contains them. */
#ifndef WEFT_SCHED_INJECTOR_H
#define WEFT_SCHED_INJECTOR_H

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <urcu/wfcqueue.h>

#include "core/atomic.h"

typedef struct weft__injector {
    /* Enqueue side: wait-free, any thread. */
    alignas(WEFT_CACHE_LINE) struct cds_wfcq_tail tail;
    /* Dequeue side: one dequeuer at a time, under `lock`. */
    alignas(WEFT_CACHE_LINE) struct __cds_wfcq_head head;
    pthread_mutex_t lock;
} weft__injector;

void weft__injector_init(weft__injector *q);
void weft__injector_fini(weft__injector *q);

/* Any thread. Initialises `n` and queues it. */
void weft__injector_push(weft__injector *q, struct cds_wfcq_node *n);
/* Push a batch already linked in a private queue (owner-only). */
void weft__injector_push_batch(weft__injector *q, struct __cds_wfcq_head *bh,
                               struct cds_wfcq_tail *bt);
/* Pop one node, or NULL when empty or when an enqueuer is mid-way (it
 * will be seen by a later pop: the enqueuer notifies after enqueueing). */
struct cds_wfcq_node *weft__injector_pop(weft__injector *q);
/* Pop up to `max` nodes into `out`; returns how many. */
unsigned weft__injector_pop_batch(weft__injector *q, struct cds_wfcq_node **out,
                                  unsigned max);
bool weft__injector_is_empty(weft__injector *q);

/* An MPSC inbox: same queue, single consumer, no lock. */
typedef struct weft__inbox {
    alignas(WEFT_CACHE_LINE) struct cds_wfcq_tail tail;
    alignas(WEFT_CACHE_LINE) struct __cds_wfcq_head head;
} weft__inbox;

void weft__inbox_init(weft__inbox *q);
void weft__inbox_push(weft__inbox *q, struct cds_wfcq_node *n);
/* Owner only. */
struct cds_wfcq_node *weft__inbox_pop(weft__inbox *q);
bool weft__inbox_is_empty(weft__inbox *q);

#endif
