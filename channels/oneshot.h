/* Private: the oneshot's layout and state bits (channels/oneshot.c has the
 * protocol), shared with its tests, which look at the bits to know when a
 * receiver has registered its waker. */
#ifndef WEFT_CHANNELS_ONESHOT_H
#define WEFT_CHANNELS_ONESHOT_H

#include <stdalign.h>
#include <stddef.h>

#include "weft/channels.h"
#include "core/atomic.h"

#define WEFT__OS_RX_TASK_SET 0x01u
#define WEFT__OS_VALUE_SENT 0x02u
#define WEFT__OS_CLOSED 0x04u
#define WEFT__OS_TX_TASK_SET 0x08u
#define WEFT__OS_TX_DROPPED 0x10u
#define WEFT__OS_VALUE_TAKEN 0x20u
#define WEFT__OS_COMPLETE (WEFT__OS_VALUE_SENT | WEFT__OS_TX_DROPPED)
#define WEFT__OS_TASKS (WEFT__OS_RX_TASK_SET | WEFT__OS_TX_TASK_SET)

struct weft_oneshot {
    /* The bits above: written by both ends (RMWs only), read by both. */
    WEFT_ATOMIC(uintptr_t) state;
    /* The handles left (2, 1, 0): each end decrements it once. */
    WEFT_ATOMIC(uint32_t) refs;
    uint32_t item_size;  /* immutable */
    weft_waker rx_waker; /* owned as WEFT__OS_RX_TASK_SET says (above) */
    weft_waker tx_waker; /* owned as WEFT__OS_TX_TASK_SET says (above) */
    alignas(max_align_t) unsigned char item[]; /* owned as WEFT__OS_VALUE_SENT says */
};

#endif
