/* The chaos hook of the library's leaf futures (see chaos.h). */
#include "core/chaos.h"

_Thread_local weft__chaos *weft__chaos_current;

weft__chaos *weft__chaos_enter(weft__chaos *c)
{
    weft__chaos *prev = weft__chaos_current;
    weft__chaos_current = c;
    return prev;
}

bool weft__chaos_interleave(weft__chaos *c, uint32_t *flags, weft_cx *cx)
{
    if (*flags & WEFT_F__CHAOS) {
        /* The previous poll was ours: this one goes through. */
        *flags &= ~WEFT_F__CHAOS;
        return false;
    }
    if (!c->decide(c))
        return false;
    *flags |= WEFT_F__CHAOS;
    weft_waker_wake_by_ref(cx->waker);
    return true;
}
