/* Test support: a gate the test thread opens, and the gated future, which
 * is PENDING (its waker registered in the gate's atomic waker) until the
 * gate opens and then READY with its int value. A task waiting at a closed
 * gate stays incomplete for as long as the test needs, with no timing
 * involved; the wake that opening sends cannot be lost (the atomic
 * waker's register/wake protocol). Each test program includes it once. */
#ifndef WEFT_TESTS_GATE_H
#define WEFT_TESTS_GATE_H

#include <stdbool.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/downcast.h"

typedef struct gate {
    _Atomic bool open;
    weft_atomic_waker aw;
} gate;

static inline void gate_init(gate *g)
{
    weft_atomic_init(&g->open, false);
    weft_atomic_waker_init(&g->aw);
}

/* Open the gate and wake whoever waits at it. Any thread. */
static inline void gate_open(gate *g)
{
    /* Release: a poll that sees `open` sees what the opener did before. */
    weft_atomic_store_release(&g->open, true);
    weft_atomic_waker_wake(&g->aw);
}

/* Once nothing waits at the gate any more (its future completed or was
 * dropped). */
static inline void gate_fini(gate *g)
{
    weft_atomic_waker_fini(&g->aw);
}

typedef struct gated {
    weft_future base;
    gate *g;
    int value;
} gated;

static inline weft_poll gated_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(gated, self);
    /* Register first, then look: an opening in between wakes the waker
     * just registered. */
    weft_atomic_waker_register(&self->g->aw, cx->waker);
    /* Acquire: pairs with the release in gate_open. */
    if (!weft_atomic_load_acquire(&self->g->open))
        return WEFT_PENDING;
    *(int *)out = self->value;
    return WEFT_READY;
}

static const weft_future_ops gated_ops = { "gated", sizeof(int), gated_poll, NULL, NULL };

/* A Send future that outputs `value` once `g` opens. */
static inline gated gated_make(gate *g, int value)
{
    gated s;
    weft_future_init(&s.base, &gated_ops, WEFT_F_SEND);
    s.g = g;
    s.value = value;
    return s;
}

#endif
