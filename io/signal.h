/* Private: a look into the process-wide signal hub, for tests. */
#ifndef WEFT_IO_SIGNAL_H
#define WEFT_IO_SIGNAL_H

#include <stdint.h>

/* The signals kept for the next waiter (bit sig - 1), and how many
 * waiters and reactor registrations the hub holds now. */
typedef struct weft__signal_hub_state {
    uint64_t kept;
    unsigned waiters, regs;
    int fd; /* -1: no signalfd open */
} weft__signal_hub_state;

void weft__signal_hub_state_get(weft__signal_hub_state *out);
/* Forget the kept signals of `mask` (a test's cleanup). */
void weft__signal_unkeep(uint64_t mask);

#endif
