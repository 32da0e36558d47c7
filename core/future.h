/* Private: weft's own bits in weft_future.flags / weft_stream.flags, and
 * the check every call that takes a caller's future (spawn, block_on)
 * makes first. */
#ifndef WEFT_CORE_FUTURE_H
#define WEFT_CORE_FUTURE_H

/* Bit 28: WEFT_F__CHAOS, defined with the chaos hook (core/chaos.h). */
/* Bits 16..25: where a coroutine's `weft_co` sits (WEFT__F_CO_AT in
 * weft/co.h; WEFT_FN_INIT sets them); task dumps read them. */
#define WEFT_F__NAMED 0x20000000u  /* a `const char *` name follows the header */
#define WEFT_F__POLLED 0x40000000u /* polled at least once: pinned */
#define WEFT_F__DONE 0x80000000u   /* returned READY / DONE (debug builds) */

#include "weft/future.h"
#include "core/errors.h"

/* The name of `f` in reports and dumps: its own, when weft gave the
 * instance one (a task made from a plain function is called after the
 * function: WEFT_F__NAMED, the name stored right after the header), else
 * its type's (ops->name). */
static inline const char *weft__future_name(const weft_future *f)
{
    if (f->flags & WEFT_F__NAMED)
        return *(const char *const *)(const void *)(f + 1);
    return f->ops->name;
}

/* True when `fut` has the ops every call that takes a future relies on. */
static inline bool weft__future_well_formed(const weft_future *fut)
{
    if (!fut || !fut->ops || !fut->ops->poll || !fut->ops->name)
        return false;
    return fut->ops->out_size != WEFT_OUT_SIZE_VARIES || fut->ops->out_size_of;
}

/* Check a future handed to weft to be copied (spawn) before it is copied:
 * well-formed ops, and never polled (it would be pinned elsewhere).
 * Returns 0 or -EINVAL; `what` names the call in reports. */
static inline int weft__future_check_fresh(const weft_future *fut, const char *what)
{
    (void)what; /* only named in debug-build reports */
    if (!weft__future_well_formed(fut))
        return -EINVAL;
    if (fut->flags & WEFT_F__POLLED) {
        WEFT_MISUSE("%s of future '%s' that was already polled (it is pinned)",
                    what, weft__future_name(fut));
        return -EINVAL;
    }
    return 0;
}

/* Check a future handed to weft to be polled where it is (block_on, a
 * borrowing timeout): well-formed ops and, in debug builds, not moved since
 * its first poll and not finished (reported by name; release builds cannot
 * tell). A future polled before, in place, passes. Returns 0 or -EINVAL. */
int weft__future_check_in_place(const weft_future *fut, const char *what);

#endif
