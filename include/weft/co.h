/* weft — stackless coroutines: write an `async fn` as a poll function.
 *
 * The coroutine's locals live in its future struct (pinned once polled),
 * never on the C stack, because the poll function returns at every await.
 *
 *   typedef struct fetch { weft_future base; weft_co co;
 *                          weft_yield y; int i; } fetch;
 *
 *   static weft_poll fetch_poll(weft_future *f, weft_cx *cx, void *out) {
 *       fetch *s = (fetch *)f;
 *       WEFT_CO_BEGIN(&s->co);
 *       for (s->i = 0; s->i < 3; s->i++) {
 *           weft_yield_init(&s->y);
 *           WEFT_AWAIT(&s->co, cx, &s->y.base, NULL);
 *       }
 *       *(int *)out = s->i;
 *       WEFT_CO_RETURN(&s->co);
 *       WEFT_CO_END(&s->co);
 *   }
 *   static void fetch_drop(weft_future *f) { weft_co_drop(&((fetch *)f)->co); }
 *
 * Rules: C locals (on the stack) do not survive an await — keep state in
 * the struct. Only one WEFT_AWAIT/WEFT_CO_YIELD per source line (the line
 * number is the resume point). Do not await inside a `switch` of your own.
 * The awaited child is dropped automatically once READY; if the coroutine
 * is dropped while waiting, weft_co_drop() drops the child it waits on.
 * Children that are alive but not being awaited (a second join handle
 * spawned before awaiting the first) are the coroutine's own to drop in
 * its drop function. Falling off WEFT_CO_END returns READY without writing
 * the output: end every path that has an output with WEFT_CO_RETURN.
 */
#ifndef WEFT_CO_H
#define WEFT_CO_H

#include "weft/future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_co {
    int line;               /* resume point; 0 = start, -1 = finished */
    weft_future *awaiting;  /* child being awaited, dropped with us */
} weft_co;

#define WEFT_CO_INIT { 0, NULL }

/* Start a coroutine at its beginning (before its first poll). */
static inline void weft_co_init(weft_co *co)
{
    co->line = 0;
    co->awaiting = NULL;
}

/* Drop the child the coroutine is suspended on, if any. Call from the
 * coroutine future's drop. */
static inline void weft_co_drop(weft_co *co)
{
    if (co->awaiting) {
        weft_future *child = co->awaiting;
        co->awaiting = NULL;
        weft_future_drop(child);
    }
}

#define WEFT_CO_BEGIN(co)                                                     \
    switch ((co)->line) {                                                     \
    case 0:

/* Await `child` (a weft_future * inside the coroutine's struct): suspend
 * until it is READY, with its output in `out`, then drop it. */
#define WEFT_AWAIT(co, cx, child, out)                                        \
    do {                                                                      \
        (co)->awaiting = (child);                                             \
        (co)->line = __LINE__;                                                \
        /* fallthrough */                                                     \
    case __LINE__:                                                            \
        if (weft_future_poll((co)->awaiting, (cx), (out)) == WEFT_PENDING)    \
            return WEFT_PENDING;                                              \
        {                                                                     \
            weft_future *weft_co_done_ = (co)->awaiting;                      \
            (co)->awaiting = NULL;                                            \
            weft_future_drop(weft_co_done_);                                  \
        }                                                                     \
    } while (0)

/* Give the worker to other tasks once, then continue here. */
#define WEFT_CO_YIELD(co, cx)                                                 \
    do {                                                                      \
        (co)->line = __LINE__;                                                \
        weft_waker_wake_by_ref((cx)->waker);                                  \
        return WEFT_PENDING;                                                  \
    case __LINE__:;                                                           \
    } while (0)

/* Finish: the caller has written the output; returns WEFT_READY. */
#define WEFT_CO_RETURN(co)                                                    \
    do {                                                                      \
        (co)->line = -1;                                                      \
        return WEFT_READY;                                                    \
    } while (0)

#define WEFT_CO_END(co)                                                       \
    default:                                                                  \
        break;                                                                \
    }                                                                         \
    return WEFT_READY

#ifdef __cplusplus
}
#endif
#endif /* WEFT_CO_H */
