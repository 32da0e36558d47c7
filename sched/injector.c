/* The injector (global run queue) and per-worker inboxes, on liburcu's
 * wait-free concurrent queue (cds_wfcq).
 *
 * Enqueue is wait-free from any thread. Dequeue needs mutual exclusion: the
 * injector takes a mutex (dequeuers are workers pulling batches); an inbox
 * has a single consumer (its worker). Only the *_nonblocking dequeue is
 * used: the blocking variant sleeps 10 ms when an enqueuer is preempted
 * between its exchange and its link store; we report "nothing now"
 * instead, and the enqueuer's notification after it finishes brings a
 * worker back to the queue.
 *
 * ThreadSanitizer: liburcu's atomics are inline assembly TSan cannot see,
 * so TSan builds call liburcu's out-of-line functions (no _LGPL_SOURCE) and
 * annotate the hand-off here: release on the node before enqueue, acquire
 * after dequeue — the same happens-before the queue provides. */
#include "sched/injector.h"
#include "core/errors.h"
#include "core/tsan.h"

#ifdef WEFT_TSAN
#define HANDOFF_RELEASE(p) __tsan_release(p)
#define HANDOFF_ACQUIRE(p) __tsan_acquire(p)
#else
#define HANDOFF_RELEASE(p) ((void)0)
#define HANDOFF_ACQUIRE(p) ((void)0)
#endif

void weft__injector_init(weft__injector *q)
{
    __cds_wfcq_init(&q->head, &q->tail);
    int rc = pthread_mutex_init(&q->lock, NULL);
    if (rc != 0)
        WEFT_DIE_RC("pthread_mutex_init", rc);
}

void weft__injector_fini(weft__injector *q)
{
    pthread_mutex_destroy(&q->lock);
}

void weft__injector_push(weft__injector *q, struct cds_wfcq_node *n)
{
    cds_wfcq_node_init(n);
    HANDOFF_RELEASE(n);
    cds_wfcq_enqueue(&q->head, &q->tail, n);
}

void weft__injector_push_batch(weft__injector *q, struct __cds_wfcq_head *bh,
                               struct cds_wfcq_tail *bt)
{
#ifdef WEFT_TSAN
    struct cds_wfcq_node *n;
    __cds_wfcq_for_each_blocking(bh, bt, n)
        HANDOFF_RELEASE(n);
#endif
    /* The private batch has no concurrent enqueuer, so this cannot block. */
    if (__cds_wfcq_splice_nonblocking(&q->head, &q->tail, bh, bt) ==
        CDS_WFCQ_RET_WOULDBLOCK)
        WEFT_DIE_RC("private batch splice would block", 0);
}

static struct cds_wfcq_node *pop_locked(struct __cds_wfcq_head *h,
                                        struct cds_wfcq_tail *tl)
{
    struct cds_wfcq_node *n = __cds_wfcq_dequeue_nonblocking(h, tl);
    if (!n || n == CDS_WFCQ_WOULDBLOCK)
        return NULL;
    HANDOFF_ACQUIRE(n);
    return n;
}

struct cds_wfcq_node *weft__injector_pop(weft__injector *q)
{
    if (cds_wfcq_empty(&q->head, &q->tail))
        return NULL;
    pthread_mutex_lock(&q->lock);
    struct cds_wfcq_node *n = pop_locked(&q->head, &q->tail);
    pthread_mutex_unlock(&q->lock);
    return n;
}

unsigned weft__injector_pop_batch(weft__injector *q, struct cds_wfcq_node **out,
                                  unsigned max)
{
    if (max == 0 || cds_wfcq_empty(&q->head, &q->tail))
        return 0;
    unsigned n = 0;
    pthread_mutex_lock(&q->lock);
    while (n < max) {
        struct cds_wfcq_node *node = pop_locked(&q->head, &q->tail);
        if (!node)
            break;
        out[n++] = node;
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}

bool weft__injector_is_empty(weft__injector *q)
{
    /* Not empty while an enqueue is in progress (tail moved, link not yet
     * stored): callers deciding to sleep must not miss that task. */
    return cds_wfcq_empty(&q->head, &q->tail);
}

void weft__inbox_init(weft__inbox *q)
{
    __cds_wfcq_init(&q->head, &q->tail);
}

void weft__inbox_push(weft__inbox *q, struct cds_wfcq_node *n)
{
    cds_wfcq_node_init(n);
    HANDOFF_RELEASE(n);
    cds_wfcq_enqueue(&q->head, &q->tail, n);
}

struct cds_wfcq_node *weft__inbox_pop(weft__inbox *q)
{
    if (cds_wfcq_empty(&q->head, &q->tail))
        return NULL;
    return pop_locked(&q->head, &q->tail);
}

bool weft__inbox_is_empty(weft__inbox *q)
{
    return cds_wfcq_empty(&q->head, &q->tail);
}
