/* Private: chaos at the library's await points. The deterministic runtime
 * (testing/sim.c) installs a decider on the thread that runs it; every
 * library leaf future (weft_yield, weft_sleep, weft_timeout, join handles)
 * asks weft__chaos_pending first thing in its poll and, when told so,
 * returns PENDING after waking its task — futures-test's interleave_pending,
 * for every await point of the library. A future that got a chaos PENDING
 * is not given another on its next poll (WEFT_F__CHAOS), so even a decider
 * that always says yes lets every future make progress.
 *
 * Off the deterministic runtime the hook is one thread-local load and a
 * branch. */
#ifndef WEFT_CORE_CHAOS_H
#define WEFT_CORE_CHAOS_H

#include <stdbool.h>

#include "weft/future.h"
#include "weft/iter.h"

/* A future flag (weft owns bits 16..31; core/future.h lists the others):
 * its last poll was a chaos PENDING. */
#define WEFT_F__CHAOS 0x10000000u

/* Decides whether this poll gets a chaos PENDING (the runtime's knob and
 * random stream). Called on the thread that installed it. */
typedef struct weft__chaos {
    bool (*decide)(struct weft__chaos *c);
} weft__chaos;

/* The decider of the runtime the calling thread runs, or NULL. */
extern _Thread_local weft__chaos *weft__chaos_current;

/* Install `c` (NULL: none) on the calling thread; returns the previous. */
weft__chaos *weft__chaos_enter(weft__chaos *c);

/* The slow half of weft__chaos_pending: ask `c`, and on yes wake the task
 * and mark the future's (or stream's) `flags`. */
bool weft__chaos_interleave(weft__chaos *c, uint32_t *flags, weft_cx *cx);

/* At the top of a library leaf future's poll: true means "return
 * WEFT_PENDING now" (the task was woken, so it is polled again). */
static inline bool weft__chaos_pending(weft_future *f, weft_cx *cx)
{
    weft__chaos *c = weft__chaos_current;
    return c && weft__chaos_interleave(c, &f->flags, cx);
}

/* The same for a leaf stream's poll_next (a channel receiver). */
static inline bool weft__chaos_pending_stream(weft_stream *s, weft_cx *cx)
{
    weft__chaos *c = weft__chaos_current;
    return c && weft__chaos_interleave(c, &s->flags, cx);
}

#endif
