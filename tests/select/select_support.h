/* Test support for the select tests: a producer task that sends the ids
 * base_id .. base_id + n - 1 into its own channel and closes it (its drop
 * drops the sender), so a receiver sees every id and then the end. Each
 * test program includes it once. */
#ifndef WEFT_TESTS_SELECT_SUPPORT_H
#define WEFT_TESTS_SELECT_SUPPORT_H

#include "weft/weft.h"

typedef struct producer {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    uint64_t id, base_id, n;
    weft_chan_send send;
    int rc;
} producer;

WEFT_ASYNC_FN_WITH_DROP(producer, int)
{
    WEFT_FN_BEGIN;
    for (self->id = self->base_id; self->id < self->base_id + self->n; self->id++) {
        weft_chan_send_init(&self->send, &self->tx, &self->id);
        WEFT_FN_AWAIT(&self->send, &self->rc);
        if (self->rc != 0)
            WEFT_FN_RETURN(self->rc);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void producer_drop(weft_future *f)
{
    producer *self = (producer *)f;
    weft_co_drop(&self->co);
    weft_chan_tx_drop(&self->tx); /* closes: the receiver sees the end */
}

#endif
