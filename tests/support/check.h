/* Test support: checks for code that runs off the test thread (workers,
 * helper threads), where cmocka's assertions must not run (they longjmp).
 * CHECK(cond) records a failure with its line; the test thread calls
 * assert_no_async_failures() once every thread that could fail is done.
 * Each test program includes it once. */
#ifndef WEFT_TESTS_CHECK_H
#define WEFT_TESTS_CHECK_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "core/atomic.h"

static _Atomic unsigned g_async_failures;
static char g_first_failure[256]; /* written by the first failing thread */

static inline void async_fail(int line, const char *what)
{
    /* AcqRel: only the first failure writes the message; the test thread
     * reads it after joining every thread that could fail. */
    if (weft_atomic_fetch_add_acq_rel(&g_async_failures, 1) == 0)
        snprintf(g_first_failure, sizeof g_first_failure, "line %d: %s", line, what);
}

/* From any thread: note that `cond` did not hold. */
#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond))                                                          \
            async_fail(__LINE__, #cond);                                      \
    } while (0)

/* On the test thread: fail the test if a CHECK failed since the last call.
 * Resets the count, so one failing test does not fail the ones after it. */
static inline void assert_no_async_failures(void)
{
    unsigned n = weft_atomic_swap_acq_rel(&g_async_failures, 0);
    if (n != 0) {
        print_error("%u check(s) failed off the test thread; first at %s\n", n,
                    g_first_failure);
        fail();
    }
}

/* On the test thread, before a test: forget failures a failed test left
 * unreported. */
static inline void async_failures_reset(void)
{
    /* Relaxed: no other thread of the test runs yet. */
    weft_atomic_store_relaxed(&g_async_failures, 0);
}

#endif
