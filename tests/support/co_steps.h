/* Test support: coroutine steps that weft/co.h does not have (yet), in
 * the same style: one per source line, the line number being the resume
 * point. Header-only, no cmocka: the stress programs use it too. */
#ifndef WEFT_TESTS_CO_STEPS_H
#define WEFT_TESTS_CO_STEPS_H

#include "weft/co.h"

/* Await the next item of a stream inside a coroutine, with `rc` the result.
 * Same shape as WEFT_AWAIT (one per source line). */
#define CO_NEXT(co, cx, stream, item, rc)                                     \
    do {                                                                      \
        (co)->line = __LINE__;                                                \
        /* fallthrough */                                                     \
    case __LINE__:                                                            \
        if (((rc) = weft_stream_poll_next((stream), (cx), (item))) ==          \
            WEFT_NEXT_PENDING)                                                \
            return WEFT_PENDING;                                              \
    } while (0)

/* Suspend until `cond` holds; whoever makes it true wakes this task (in
 * the time tests: a probe waker forwarding a timer's wake). Same shape as
 * WEFT_CO_YIELD, without the self-wake. */
#define CO_WAIT_UNTIL(co, cond)                                               \
    do {                                                                      \
        (co)->line = __LINE__;                                                \
        /* fallthrough */                                                     \
    case __LINE__:                                                            \
        if (!(cond))                                                          \
            return WEFT_PENDING;                                              \
    } while (0)

/* Suspend once; the next wake of the task resumes here. Same shape as
 * WEFT_CO_YIELD, without the self-wake. */
#define CO_SUSPEND(co)                                                        \
    do {                                                                      \
        (co)->line = __LINE__;                                                \
        return WEFT_PENDING;                                                  \
    case __LINE__:;                                                           \
    } while (0)

#endif
