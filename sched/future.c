/* The future contract's runtime side: checked polling (debug builds report
 * moved and finished futures), the noop waker, weft_yield, weft_ready, and
 * the atomic waker.
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
#include "weft/iter.h"
#include "alloc.h"
#include "atomic.h"
#include "future_internal.h"

#include <stdint.h>
#include <string.h>

/* ---- checked polling ------------------------------------------------------ */


#ifndef NDEBUG
static uint32_t pin_tag_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uint32_t t = (uint32_t)(a ^ (a >> 32));
    return t ? t : 1u;
}
#endif

/* Returns false when the poll must be refused (misuse reported). */
static bool check_pinned(uint32_t *flags, uint32_t *tag, const void *self,
                         const char *kind, const char *name)
{
#ifndef NDEBUG
    if (*flags & WEFT_F__DONE) {
        WEFT_MISUSE("%s '%s' polled after it finished", kind, name);
        return false;
    }
    if (*flags & WEFT_F__POLLED) {
        if (*tag != pin_tag_of(self)) {
            WEFT_MISUSE("%s '%s' moved after its first poll (it is pinned)",
                        kind, name);
            return false;
        }
    } else {
        *flags |= WEFT_F__POLLED;
        *tag = pin_tag_of(self);
    }
#else
    /* Release builds keep only the "pinned" bit (spawn refuses a future
     * that was already polled). */
    (void)tag, (void)self, (void)kind, (void)name;
    *flags |= WEFT_F__POLLED;
#endif
    return true;
}

weft_poll weft_future_poll(weft_future *f, weft_cx *cx, void *out)
{
    if (!check_pinned(&f->flags, &f->pin_tag_, f, "future", f->ops->name))
        return WEFT_PENDING;
    weft_poll r = f->ops->poll(f, cx, out);
#ifndef NDEBUG
    if (r == WEFT_READY)
        f->flags |= WEFT_F__DONE;
#endif
    return r;
}

weft_next weft_stream_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    if (!check_pinned(&s->flags, &s->pin_tag_, s, "stream", s->ops->name))
        return WEFT_NEXT_PENDING;
    weft_next r = s->ops->poll_next(s, cx, item);
#ifndef NDEBUG
    if (r == WEFT_NEXT_DONE)
        s->flags |= WEFT_F__DONE;
#endif
    return r;
}

void weft_stream_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    if (s->ops->size_hint) {
        s->ops->size_hint(s, lo, hi);
    } else {
        *lo = 0;
        *hi = SIZE_MAX;
    }
}

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

/* ---- yield and ready ------------------------------------------------------- */

static weft_poll yield_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_yield *y = (weft_yield *)f;
    (void)out;
    if (y->yielded)
        return WEFT_READY;
    y->yielded = true;
    /* Waking while running marks the task NOTIFIED; the worker requeues it
     * at the back of its queue after this poll returns. */
    weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static const weft_future_ops yield_ops = { "weft_yield", 0, yield_poll, NULL, NULL };

void weft_yield_init(weft_yield *y)
{
    weft_future_init(&y->base, &yield_ops, WEFT_F_SEND);
    y->yielded = false;
}

static weft_poll ready_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_ready *r = (weft_ready *)f;
    (void)cx;
    if (r->size)
        memcpy(out, r->value, r->size);
    return WEFT_READY;
}

static size_t ready_out_size(const weft_future *f)
{
    return ((const weft_ready *)f)->size;
}

static const weft_future_ops ready_ops = {
    "weft_ready", WEFT_OUT_SIZE_VARIES, ready_poll, NULL, ready_out_size,
};

int weft_ready_init(weft_ready *r, const void *value, size_t size)
{
    if (!r || size > WEFT_READY_MAX || (size > 0 && !value))
        return -EINVAL;
    weft_future_init(&r->base, &ready_ops, WEFT_F_SEND);
    r->size = size;
    if (size)
        memcpy(r->value, value, size);
    return 0;
}

/* ---- atomic waker ---------------------------------------------------------- */

enum { AW_WAITING = 0, AW_REGISTERING = 1, AW_WAKING = 2 };

_Static_assert(sizeof(WEFT_ATOMIC(uintptr_t)) == sizeof(uintptr_t),
               "C++ view of weft_atomic_waker must have the same layout");

void weft_atomic_waker_init(weft_atomic_waker *aw)
{
    atomic_init(&aw->state, AW_WAITING);
    aw->waker.ops = NULL;
    aw->waker.data = NULL;
}

void weft_atomic_waker_register(weft_atomic_waker *aw, const weft_waker *w)
{
    uintptr_t cur = AW_WAITING;
    /* Acquire: see the slot as the last waker-side holder left it (pairs
     * with the release in wake's fetch_and / register's final CAS). */
    if (atomic_cas_strong_acquire(&aw->state, &cur, AW_REGISTERING)) {
        if (!weft_waker_will_wake(&aw->waker, w)) {
            weft_waker old = aw->waker;
            aw->waker = weft_waker_clone(w);
            weft_waker_drop(&old);
        }
        uintptr_t expect = AW_REGISTERING;
        /* AcqRel: release publishes the slot to the next waker (pairs with
         * the acquire in wake's fetch_or); acquire on failure sees the
         * concurrent wake. */
        if (!atomic_cas_strong_acq_rel(&aw->state, &expect, AW_WAITING)) {
            /* A wake arrived while we registered (state is
             * REGISTERING|WAKING): it did not touch the slot, so we wake. */
            weft_waker taken = aw->waker;
            aw->waker.ops = NULL;
            aw->waker.data = NULL;
            /* Release: the emptied slot is visible to the next owner. */
            atomic_swap_acq_rel(&aw->state, AW_WAITING);
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
    /* AcqRel: acquire sees the slot written by register (pairs with its
     * release CAS); the bit excludes other readers and the writer. */
    uintptr_t prev = atomic_fetch_or_acq_rel(&aw->state, AW_WAKING);
    if (prev != AW_WAITING)
        return false; /* a register or another wake owns the slot */
    *out = aw->waker;
    aw->waker.ops = NULL;
    aw->waker.data = NULL;
    /* Release: the emptied slot is visible to the next register. */
    atomic_fetch_and_release(&aw->state, ~(uintptr_t)AW_WAKING);
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
