/* The calling thread's scheduler (see seam.h). */
#include "sched/seam.h"

static _Thread_local struct weft__sched *tl_sched;

struct weft__sched *weft__sched_current(void)
{
    return tl_sched;
}

struct weft__sched *weft__sched_enter(struct weft__sched *s)
{
    struct weft__sched *prev = tl_sched;
    tl_sched = s;
    return prev;
}
