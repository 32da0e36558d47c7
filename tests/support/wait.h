/* Test support: waiting for another thread without sleeping. A test spins
 * on a condition, giving the CPU away each turn (the machine's cores are
 * shared with the workers), and calls it a hang after WAIT_LIMIT_NS: the
 * limit only turns a lost wakeup into a readable failure, it is no timing
 * assertion. Each test program includes it once. */
#ifndef WEFT_TESTS_WAIT_H
#define WEFT_TESTS_WAIT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdbool.h>

#include "weft/weft.h"

#define WAIT_LIMIT_NS (60ull * 1000000000ull)

/* True once WAIT_LIMIT_NS have passed since `start` (a weft_now()). */
static inline bool wait_expired(weft_instant start)
{
    return weft_now() - start > WAIT_LIMIT_NS;
}

/* On the test thread: spin until `cond` holds; fail after the limit. */
#define WAIT_UNTIL(cond)                                                      \
    do {                                                                      \
        weft_instant wait_start_ = weft_now();                                \
        unsigned long wait_spins_ = 0;                                        \
        while (!(cond)) {                                                     \
            sched_yield();                                                    \
            if ((++wait_spins_ & 255u) == 0 && wait_expired(wait_start_))     \
                fail_msg("%s:%d: never became true: %s", __FILE__, __LINE__,  \
                         #cond);                                              \
        }                                                                     \
    } while (0)

#endif
