/* Private: WEFT_TSAN is defined when building with ThreadSanitizer (GCC
 * says so with __SANITIZE_THREAD__, clang with __has_feature), for the
 * few places that tell it about a happens-before it cannot see (a hand-off
 * through a library built without it). */
#ifndef WEFT_CORE_TSAN_H
#define WEFT_CORE_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif

#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#endif
