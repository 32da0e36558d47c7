/* weft — common definitions: export macro, error codes, allocator hook,
 * misuse reporting.
 *
 * Every fallible weft call returns 0 or a negative errno value (-ENOMEM,
 * -EINVAL, -EPERM, -EPIPE, -ECANCELED, -ETIMEDOUT, -EAGAIN, -EDEADLK,
 * -EIO; the sim runtime of weft/testing.h adds -EBUSY and -EPROTO) and
 * hands objects back through out-parameters. weft never sets `errno` for its
 * own errors: a task may resume on another thread. */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

#if defined(WEFT_STATIC_DEFINE)
#define WEFT_API
#elif defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#if defined(__GNUC__)
#define WEFT_NODISCARD __attribute__((warn_unused_result))
#else
#define WEFT_NODISCARD
#endif

/* Fields that weft accesses with C11 atomics. C++ translation units see the
 * plain type of the same size and alignment (checked by a static_assert in
 * the library) and must not touch these fields. */
#ifdef __cplusplus
#define WEFT_ATOMIC(T) T
#else
#define WEFT_ATOMIC(T) _Atomic T
#endif

/* A human-readable description of a weft return code (0 or -errno).
 * Never NULL; the string is static. Any thread. */
WEFT_API const char *weft_strerror(int err);

/* The allocator every weft allocation goes through. `alloc` returns memory
 * aligned for any object (like malloc) or NULL; `free` accepts NULL. `ctx`
 * is passed back unchanged. */
typedef void *weft_alloc_fn(size_t size, void *ctx);
typedef void weft_free_fn(void *ptr, void *ctx);
typedef struct weft_allocator {
    weft_alloc_fn *alloc;
    weft_free_fn *free;
    void *ctx;
} weft_allocator;

/* Replace the allocator (NULL restores malloc/free). Call it before any
 * runtime exists and while no other thread uses weft: memory is freed with
 * the allocator current at the time of the free. Returns 0, or -EINVAL if
 * exactly one of alloc/free is NULL. */
WEFT_API WEFT_NODISCARD int weft_set_allocator(const weft_allocator *a);

/* Misuse reports. Debug builds of weft (built without NDEBUG) detect API
 * misuse that would otherwise be undefined behaviour — a future moved after
 * its first poll, a future polled after READY, a local task polled off its
 * owner — and report it with the future's name, then refuse the operation
 * safely. The handler receives the message; the default handler prints it
 * to stderr as "weft: misuse: ...". Release builds report nothing.
 * `fn` NULL restores the default. Call before starting runtimes. */
typedef void weft_misuse_fn(const char *msg, void *arg);
WEFT_API void weft_set_misuse_handler(weft_misuse_fn *fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_COMMON_H */
