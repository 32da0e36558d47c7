/* Private: a one-thread parker on a futex — park sleeps until unpark; an
 * unpark that comes first makes the next park return at once (a token, so
 * no wakeup is lost). */
#ifndef WEFT_CORE_PARK_H
#define WEFT_CORE_PARK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdatomic.h>

typedef struct weft__parker {
    /* EMPTY, PARKED, PARKED_IO or NOTIFIED. Written by the parked thread
     * and by unparkers; the futex word. */
    _Atomic uint32_t state;
    /* How to end a park_io (set before the parker is shared). */
    void (*io_wake)(void *ctx);
    void *io_ctx;
} weft__parker;

void weft__parker_init(weft__parker *p);
/* The owning thread only. Returns once the token is taken. */
void weft__park(weft__parker *p);
/* Park for at most `timeout_ns` (UINT64_MAX: no limit). Returns true if a
 * token was taken, false on timeout. The owning thread only. */
bool weft__park_timeout(weft__parker *p, uint64_t timeout_ns);
/* Park inside `wait(ctx, timeout_ns)` (an epoll_wait) instead of on the
 * futex: an unpark meanwhile calls the parker's io_wake, which must make
 * that wait return. Returns true if a token was taken. The owning thread
 * only; the parker's io_wake must be set. */
bool weft__park_io(weft__parker *p, void (*wait)(void *ctx, uint64_t timeout_ns), void *ctx,
                   uint64_t timeout_ns);
/* Any thread. */
void weft__unpark(weft__parker *p);

#endif
