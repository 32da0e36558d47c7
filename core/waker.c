/* Wakers: the noop waker and the atomic waker.
 *
 * Atomic waker (after futures-rs AtomicWaker). State bits:
 *   REGISTERING: a register() is writing the waker slot;
 *   WAKING:      a wake()/take() is reading (and clearing) the waker slot.
 * Invariant: the slot is written only by the thread that moved the state
 * from WAITING(0) to REGISTERING, and read only by the thread that moved it
 * from WAITING to WAKING. A wake that arrives during a register sets WAKING
 * and leaves; the register sees it when it tries to return to WAITING and
 * wakes the new waker itself, so no wake is lost.
 * Concurrency: register | wake, wake | wake, take | anything. Two
 * concurrent registers are a caller error (one consumer). */
#include "weft/future.h"
#include "core/atomic.h"

/* ---- noop waker ------------------------------------------------------------ */

static weft_waker noop_clone(const void *data);
static void noop_wake(void *data) { (void)data; }
static void noop_wake_by_ref(const void *data) { (void)data; }
static void noop_drop(void *data) { (void)data; }

static const weft_waker_ops noop_ops = {
    noop_clone, noop_wake, noop_wake_by_ref, noop_drop,
};

static weft_waker noop_clone(const void *data)
{
    (void)data;
    return weft_waker_noop();
}

weft_waker weft_waker_noop(void)
{
    weft_waker w = { &noop_ops, NULL };
    return w;
}

/* ---- atomic waker ---------------------------------------------------------- */

enum { AW_WAITING = 0, AW_REGISTERING = 1, AW_WAKING = 2 };

_Static_assert(sizeof(WEFT_ATOMIC(uintptr_t)) == sizeof(uintptr_t),
               "C++ view of weft_atomic_waker must have the same layout");

void weft_atomic_waker_init(weft_atomic_waker *aw)
{
    weft_atomic_init(&aw->state, AW_WAITING);
    aw->waker.ops = NULL;
    aw->waker.data = NULL;
}

void weft_atomic_waker_register(weft_atomic_waker *aw, const weft_waker *w)
{
    uintptr_t cur = AW_WAITING;
    /* Acquire: see the slot as the last waker-side holder left it (pairs
     * with the release in wake's fetch_and / register's final CAS). */
    if (weft_atomic_cas_strong_acquire(&aw->state, &cur, AW_REGISTERING)) {
        if (!weft_waker_will_wake(&aw->waker, w)) {
            weft_waker old = aw->waker;
            aw->waker = weft_waker_clone(w);
            weft_waker_drop(&old);
        }
        uintptr_t expect = AW_REGISTERING;
        /* AcqRel: release publishes the slot to the next waker (pairs with
         * the acquire in wake's fetch_or); acquire on failure sees the
         * concurrent wake. */
        if (!weft_atomic_cas_strong_acq_rel(&aw->state, &expect, AW_WAITING)) {
            /* A wake arrived while we registered (state is
             * REGISTERING|WAKING): it did not touch the slot, so we wake. */
            weft_waker taken = aw->waker;
            aw->waker.ops = NULL;
            aw->waker.data = NULL;
            /* Release: the emptied slot is visible to the next owner. */
            weft_atomic_swap_release(&aw->state, AW_WAITING);
            weft_waker_wake(&taken);
        }
    } else if (cur == AW_WAKING) {
        /* A wake is in progress on the old waker: make sure the caller is
         * polled again rather than wait for a wake that already happened. */
        weft_waker_wake_by_ref(w);
    }
    /* Otherwise REGISTERING|WAKING: a concurrent register (caller error);
     * nothing sensible to do. */
}

bool weft_atomic_waker_take(weft_atomic_waker *aw, weft_waker *out)
{
    /* Acquire: see the slot written by register (pairs with its release
     * CAS); the bit excludes other readers and the writer. */
    uintptr_t prev = weft_atomic_fetch_or_acquire(&aw->state, AW_WAKING);
    if (prev != AW_WAITING)
        return false; /* a register or another wake owns the slot */
    *out = aw->waker;
    aw->waker.ops = NULL;
    aw->waker.data = NULL;
    /* Release: the emptied slot is visible to the next register. */
    weft_atomic_fetch_and_release(&aw->state, ~(uintptr_t)AW_WAKING);
    return out->ops != NULL;
}

void weft_atomic_waker_wake(weft_atomic_waker *aw)
{
    weft_waker w;
    if (weft_atomic_waker_take(aw, &w))
        weft_waker_wake(&w);
}

void weft_atomic_waker_fini(weft_atomic_waker *aw)
{
    weft_waker_drop(&aw->waker);
}
