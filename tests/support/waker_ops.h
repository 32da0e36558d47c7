/* Test support: hand-written waker kinds: their ops table, their wakers. */
#ifndef WEFT_TESTS_WAKER_OPS_H
#define WEFT_TESTS_WAKER_OPS_H

#include "weft/future.h"

/* Declares the four functions of the waker kind `p` (p##_clone, p##_wake,
 * p##_wake_by_ref, p##_drop), which the file defines next, and defines
 * their table, p##_ops. */
#define TEST_WAKER_OPS(p)                                                     \
    static weft_waker p##_clone(const void *data);                            \
    static void p##_wake(void *data);                                         \
    static void p##_wake_by_ref(const void *data);                            \
    static void p##_drop(void *data);                                         \
    static const weft_waker_ops p##_ops = { p##_clone, p##_wake, p##_wake_by_ref, p##_drop }

/* A waker of the kind `ops` for `data`. */
static inline weft_waker waker_of(const weft_waker_ops *ops, const void *data)
{
    weft_waker w = { ops, (void *)data };
    return w;
}

#endif
