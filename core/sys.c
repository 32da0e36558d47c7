/* The operating-system layer (Linux): futex, threads, clock, CPU count. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/sys.h"
#include "core/errors.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void weft__futex_wait(_Atomic uint32_t *addr, uint32_t expected)
{
    /* EAGAIN (value changed) and EINTR simply return: callers re-check. */
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL,
            NULL, 0);
}

void weft__futex_wait_timeout(_Atomic uint32_t *addr, uint32_t expected,
                              uint64_t timeout_ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
    ts.tv_nsec = (long)(timeout_ns % 1000000000u);
    /* FUTEX_WAIT's timeout is relative (monotonic). ETIMEDOUT, EAGAIN and
     * EINTR all return: callers re-check their condition and the clock. */
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0);
}

void weft__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

unsigned weft__sys_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : (unsigned)n;
}

uint64_t weft__sys_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        WEFT_DIE("clock_gettime(CLOCK_MONOTONIC) failed");
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t weft__sys_coarse_ns(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
    /* The kernel's last tick: about 5 ns a call where the precise clock
     * costs about 25 (2-core x86-64 VM, tsc). */
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
    return weft__sys_now_ns();
}

uint64_t weft__sys_coarse_lag_ns(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec ts;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) == 0)
        return 2u * ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
#endif
    return 0; /* weft__sys_coarse_ns is the precise clock */
}

/* Calls left before an injected failure (0: none armed). Written by tests
 * before runtimes start; read by weft_rt_new's thread. */
static unsigned g_fail_thread_start_in;

void weft__sys_fail_thread_start_at(unsigned n)
{
    g_fail_thread_start_in = n;
}

int weft__sys_thread_start(pthread_t *t, void *(*fn)(void *), void *arg,
                           size_t stack_size, const char *name)
{
    if (g_fail_thread_start_in > 0 && --g_fail_thread_start_in == 0)
        return -EAGAIN;
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return -rc;
    if (stack_size != 0) {
        if (stack_size < (size_t)PTHREAD_STACK_MIN)
            stack_size = (size_t)PTHREAD_STACK_MIN;
        rc = pthread_attr_setstacksize(&attr, stack_size);
        if (rc != 0) {
            pthread_attr_destroy(&attr);
            return -rc;
        }
    }
    rc = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return -rc;
    if (name) {
        char buf[16]; /* the kernel keeps 15 bytes and a NUL */
        snprintf(buf, sizeof buf, "%s", name);
        (void)pthread_setname_np(*t, buf); /* cosmetic: failure is harmless */
    }
    return 0;
}

