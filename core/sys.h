/* Private: the operating-system layer. Every futex, thread, clock and CPU
 * query weft makes goes through here, so a port or a test substitute has
 * one place to change. */
#ifndef WEFT_CORE_SYS_H
#define WEFT_CORE_SYS_H

#include <stdint.h>
#include <stddef.h>
#include <stdatomic.h>
#include <pthread.h>

/* Sleep while `*addr == expected` (or until woken or interrupted; callers
 * loop on their own condition). */
void weft__futex_wait(_Atomic uint32_t *addr, uint32_t expected);
/* Same, for at most `timeout_ns` nanoseconds. */
void weft__futex_wait_timeout(_Atomic uint32_t *addr, uint32_t expected,
                              uint64_t timeout_ns);
/* Wake up to `n` threads sleeping on `addr`. */
void weft__futex_wake(_Atomic uint32_t *addr, int n);

/* Number of online CPUs (>= 1). */
unsigned weft__sys_cpu_count(void);

/* Monotonic clock in nanoseconds. */
uint64_t weft__sys_now_ns(void);
/* The same clock as of the kernel's last tick (the precise clock where
 * there is none): a few nanoseconds a read instead of about 25, never
 * ahead of weft__sys_now_ns, behind it by up to weft__sys_coarse_lag_ns().
 * For task ages (read at every spawn when they are tracked) and the busy
 * workers' timer check. */
uint64_t weft__sys_coarse_ns(void);
/* How far behind the coarse clock may be: twice its resolution (one
 * kernel tick, 1-10 ms), so a late tick still counts as in range. */
uint64_t weft__sys_coarse_lag_ns(void);

/* Start a thread with an optional stack size (0: default) and name
 * (NULL: none). Returns 0 or a negative errno. */
int weft__sys_thread_start(pthread_t *t, void *(*fn)(void *), void *arg,
                           size_t stack_size, const char *name);

/* Fault injection for tests: make the `n`-th following call of
 * weft__sys_thread_start fail with -EAGAIN (0: never). Not thread-safe;
 * set it while no runtime is starting. */
void weft__sys_fail_thread_start_at(unsigned n);


#endif
