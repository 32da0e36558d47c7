/* The futex parker. States: EMPTY (0), PARKED (1), NOTIFIED (2), and
 * PARKED_IO (3): parked in the reactor's epoll_wait, ended by io_wake.
 * park: EMPTY->PARKED then sleep while PARKED; NOTIFIED->EMPTY consumes a
 * token. unpark: swap to NOTIFIED; wake the futex only if it was PARKED.
 * The swap (release) pairs with park's acquire, so whatever the unparker
 * wrote before unpark is visible after park returns. */
#include "core/park.h"
#include "core/atomic.h"
#include "core/sys.h"

enum { P_EMPTY = 0, P_PARKED = 1, P_NOTIFIED = 2, P_PARKED_IO = 3 };

void weft__parker_init(weft__parker *p)
{
    weft_atomic_init(&p->state, P_EMPTY);
    p->io_wake = NULL;
    p->io_ctx = NULL;
}

void weft__park(weft__parker *p)
{
    uint32_t expect = P_EMPTY;
    /* Acquire (on failure): the token's unparker published before it. */
    if (!weft_atomic_cas_strong_acquire(&p->state, &expect, P_PARKED)) {
        /* NOTIFIED: consume the token. Acquire pairs with unpark's swap. */
        weft_atomic_swap_acquire(&p->state, P_EMPTY);
        return;
    }
    for (;;) {
        weft__futex_wait(&p->state, P_PARKED);
        /* Acquire: pairs with the release swap in unpark. */
        expect = P_NOTIFIED;
        if (weft_atomic_cas_strong_acquire(&p->state, &expect, P_EMPTY))
            return;
        /* Spurious wake or EINTR: still PARKED. */
    }
}

bool weft__park_timeout(weft__parker *p, uint64_t timeout_ns)
{
    if (timeout_ns == UINT64_MAX) {
        weft__park(p);
        return true;
    }
    uint32_t expect = P_EMPTY;
    /* As in weft__park: acquire on failure sees the token's unparker. */
    if (!weft_atomic_cas_strong_acquire(&p->state, &expect, P_PARKED)) {
        weft_atomic_swap_acquire(&p->state, P_EMPTY); /* token, as in park */
        return true;
    }
    uint64_t end = weft__sys_now_ns() + timeout_ns;
    for (;;) {
        uint64_t now = weft__sys_now_ns();
        if (now < end)
            weft__futex_wait_timeout(&p->state, P_PARKED, end - now);
        expect = P_NOTIFIED;
        /* Acquire: pairs with the release swap in unpark. */
        if (weft_atomic_cas_strong_acquire(&p->state, &expect, P_EMPTY))
            return true;
        if (weft__sys_now_ns() >= end) {
            /* Leave PARKED; an unpark racing with this exchange leaves
             * NOTIFIED, which we then take as a token. */
            expect = P_PARKED;
            /* Relaxed: leaving PARKED publishes nothing; on failure the
             * swap below acquires the token. */
            if (weft_atomic_cas_strong_relaxed(&p->state, &expect, P_EMPTY))
                return false;
            weft_atomic_swap_acquire(&p->state, P_EMPTY);
            return true;
        }
    }
}

bool weft__park_io(weft__parker *p, void (*wait)(void *ctx, uint64_t timeout_ns), void *ctx,
                   uint64_t timeout_ns)
{
    uint32_t expect = P_EMPTY;
    /* As in weft__park: acquire on failure sees the token's unparker. */
    if (!weft_atomic_cas_strong_acquire(&p->state, &expect, P_PARKED_IO)) {
        weft_atomic_swap_acquire(&p->state, P_EMPTY); /* token, as in park */
        return true;
    }
    wait(ctx, timeout_ns);
    /* Acquire: pairs with unpark's release swap. NOTIFIED: an unpark came
     * (it called io_wake, or will: a later wait may then return at once,
     * once); PARKED_IO: none, the wait ended by itself. */
    return weft_atomic_swap_acquire(&p->state, P_EMPTY) == P_NOTIFIED;
}

void weft__unpark(weft__parker *p)
{
    /* Release: publish the unparker's writes to the parked thread (pairs
     * with the acquires in park). */
    uint32_t prev = weft_atomic_swap_release(&p->state, P_NOTIFIED);
    if (prev == P_PARKED)
        weft__futex_wake(&p->state, 1);
    else if (prev == P_PARKED_IO)
        p->io_wake(p->io_ctx);
}
