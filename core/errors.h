/* Private: the three levels of checks, and fatal errors.
 *
 *  1. API misuse: WEFT_MISUSE reports a caller's mistake by name through
 *     the misuse handler (debug builds), and the call refuses safely.
 *  2. Internal invariants: WEFT_ASSERT(cond) — cheap checks of what the
 *     code itself guarantees (a ring's length bound, a reference count that
 *     never goes below zero). A failure is a weft bug: it dies with the
 *     expression and place.
 *  3. Whole-structure checks: WEFT_ASSERT_EXPENSIVE(cond) — walks of a
 *     structure (a timer wheel's occupancy masks against its lists).
 * Levels 1-3 are on in debug builds, which include the sanitizer builds;
 * NDEBUG (release) compiles all three out. WEFT_DEBUG_LEVEL=1 keeps the
 * misuse reports and cheap asserts but drops the expensive checks.
 *
 * WEFT_DIE is for failures that cannot happen on a working system (a
 * mutex that fails to initialise): it prints where, the message and the
 * error code, and aborts. The library never calls exit(). */
#ifndef WEFT_CORE_ERRORS_H
#define WEFT_CORE_ERRORS_H

#include <errno.h>

#ifndef WEFT_DEBUG_LEVEL
#ifdef NDEBUG
#define WEFT_DEBUG_LEVEL 0
#else
#define WEFT_DEBUG_LEVEL 2
#endif
#endif

/* Print "weft: fatal: <msg>: <strerror(err)> (errno <err>) at file:line"
 * (without the errno part when err is 0) and abort. */
_Noreturn void weft__die(const char *file, int line, const char *msg, int err);
/* Die with the calling thread's errno (for calls that set it). */
#define WEFT_DIE(msg) weft__die(__FILE__, __LINE__, (msg), errno)
/* Die with an error number returned by a call (pthread functions return
 * theirs instead of setting errno). */
#define WEFT_DIE_RC(msg, rc) weft__die(__FILE__, __LINE__, (msg), (rc))

#if WEFT_DEBUG_LEVEL >= 1
__attribute__((format(printf, 1, 2))) void weft__misuse(const char *fmt, ...);
#define WEFT_MISUSE(...) weft__misuse(__VA_ARGS__)
#define WEFT_ASSERT(cond)                                                     \
    ((cond) ? (void)0 : weft__die(__FILE__, __LINE__, "assertion failed: " #cond, 0))
#else
#define WEFT_MISUSE(...) ((void)0)
#define WEFT_ASSERT(cond) ((void)0)
#endif

#if WEFT_DEBUG_LEVEL >= 2
#define WEFT_ASSERT_EXPENSIVE(cond) WEFT_ASSERT(cond)
#else
#define WEFT_ASSERT_EXPENSIVE(cond) ((void)0)
#endif

#endif
