/* Test support: the future that never finishes. It is PENDING at every
 * poll and wakes nobody, so only a drop (an abort, a timeout, shutdown)
 * ends it; it counts its polls and drops in a countdown_counts record
 * (support/countdown.h). Each test program includes it once. */
#ifndef WEFT_TESTS_NEVER_H
#define WEFT_TESTS_NEVER_H

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/countdown.h"
#include "support/downcast.h"

typedef struct never {
    weft_future base;
    countdown_counts *n;
} never;

static inline weft_poll never_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(never, nv);
    (void)cx, (void)out;
    /* Relaxed: read after a drop or join that orders it. */
    weft_atomic_fetch_add_relaxed(&nv->n->polls, 1);
    return WEFT_PENDING;
}

static inline void never_drop(weft_future *f)
{
    /* AcqRel: a test that sees the drop also sees the polls before it. */
    weft_atomic_fetch_add_acq_rel(&((never *)f)->n->drops, 1);
}

static const weft_future_ops never_ops = {
    "never", sizeof(int), never_poll, never_drop, NULL,
};

/* `flags`: WEFT_F_SEND or 0. */
static inline void never_init(never *nv, countdown_counts *n, uint32_t flags)
{
    weft_future_init(&nv->base, &never_ops, flags);
    nv->n = n;
}

/* never_init with fresh counts `n`. */
static inline void never_start(never *nv, countdown_counts *n, uint32_t flags)
{
    countdown_counts_init(n);
    never_init(nv, n, flags);
}

#endif
