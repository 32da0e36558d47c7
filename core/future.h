/* Private: weft's own bits in weft_future.flags / weft_stream.flags, and
 * the check every call that takes a caller's future (spawn, block_on)
 * makes first. */
#ifndef WEFT_CORE_FUTURE_H
#define WEFT_CORE_FUTURE_H

#define WEFT_F__POLLED 0x40000000u /* polled at least once: pinned */
#define WEFT_F__DONE 0x80000000u   /* returned READY / DONE (debug builds) */

#include "weft/future.h"
#include "core/errors.h"

/* Check a future handed to weft (spawn, block_on) before it is copied or
 * polled: well-formed ops, and never polled (it would be pinned
 * elsewhere). Returns 0 or -EINVAL; `what` names the call in reports. */
static inline int weft__future_check_fresh(const weft_future *fut, const char *what)
{
    (void)what; /* only named in debug-build reports */
    if (!fut || !fut->ops || !fut->ops->poll || !fut->ops->name)
        return -EINVAL;
    if (fut->ops->out_size == WEFT_OUT_SIZE_VARIES && !fut->ops->out_size_of)
        return -EINVAL;
    if (fut->flags & WEFT_F__POLLED) {
        WEFT_MISUSE("%s of future '%s' that was already polled (it is pinned)",
                    what, fut->ops->name);
        return -EINVAL;
    }
    return 0;
}

#endif
