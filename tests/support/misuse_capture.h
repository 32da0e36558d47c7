/* Test support: a weft misuse handler that records reports instead of
 * printing them, so a test can assert that debug builds report misuse by
 * the future's name (and release builds report nothing). Reports may come
 * from worker threads, hence the lock. Each test program includes it once. */
#ifndef WEFT_TESTS_MISUSE_CAPTURE_H
#define WEFT_TESTS_MISUSE_CAPTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "weft/common.h"

static pthread_mutex_t g_misuse_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_misuse_count;     /* reports so far; under g_misuse_lock */
static char g_misuse_msg[512]; /* the last report; under g_misuse_lock */

/* The handler: install with weft_set_misuse_handler(record_misuse, NULL). */
static inline void record_misuse(const char *msg, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_misuse_lock);
    g_misuse_count++;
    snprintf(g_misuse_msg, sizeof g_misuse_msg, "%s", msg);
    pthread_mutex_unlock(&g_misuse_lock);
}

static inline void misuse_reset(void)
{
    pthread_mutex_lock(&g_misuse_lock);
    g_misuse_count = 0;
    g_misuse_msg[0] = '\0';
    pthread_mutex_unlock(&g_misuse_lock);
}

static inline int misuse_count(void)
{
    pthread_mutex_lock(&g_misuse_lock);
    int n = g_misuse_count;
    pthread_mutex_unlock(&g_misuse_lock);
    return n;
}

/* True when the last report contains `needle`. */
static inline bool misuse_last_contains(const char *needle)
{
    pthread_mutex_lock(&g_misuse_lock);
    bool found = strstr(g_misuse_msg, needle) != NULL;
    pthread_mutex_unlock(&g_misuse_lock);
    return found;
}

/* As cmocka fixtures: capture (from a clean record) while the tests run. */
static inline int misuse_capture_setup(void **state)
{
    (void)state;
    misuse_reset();
    weft_set_misuse_handler(record_misuse, NULL);
    return 0;
}

static inline int misuse_capture_teardown(void **state)
{
    (void)state;
    weft_set_misuse_handler(NULL, NULL);
    return 0;
}

/* Prints the last report, to explain a count that is off. */
static inline void print_last_misuse(void)
{
    pthread_mutex_lock(&g_misuse_lock);
    print_message("last misuse report: %s\n", g_misuse_msg);
    pthread_mutex_unlock(&g_misuse_lock);
}

/* No report came since the count was `before` (else the last is shown). */
static inline void assert_no_misuse_since(int before)
{
    if (misuse_count() != before)
        print_last_misuse();
    assert_int_equal(misuse_count(), before);
}

/* Debug builds reported exactly `n` misuses since the count was `before`,
 * the last naming `name`. Release builds report none: nothing to check. */
static inline void assert_misuse_since(int before, int n, const char *name)
{
#ifdef NDEBUG
    (void)before, (void)n, (void)name;
#else
    assert_int_equal(misuse_count(), before + n);
    assert_true(misuse_last_contains(name));
#endif
}

/* True when debug builds reported exactly `n` misuses so far, the last
 * naming `name`. Release builds report nothing. */
static inline bool misuse_reported(int n, const char *name)
{
#ifdef NDEBUG
    (void)n, (void)name;
    return misuse_count() == 0;
#else
    return misuse_count() == n && misuse_last_contains(name);
#endif
}

#endif
