/* Test support: an allocator for weft_set_allocator that counts live
 * allocations, so a test can assert that a runtime's whole lifecycle
 * returned every byte, and that catches frees without a matching
 * allocation (counting_alloc_install and _uninstall do both). Each test
 * program includes it once. */
#ifndef WEFT_TESTS_COUNTING_ALLOC_H
#define WEFT_TESTS_COUNTING_ALLOC_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>

#include "weft/common.h"

/* Allocations made through weft's hook and not yet freed, from any thread. */
static _Atomic long g_live_allocs;
static _Atomic int g_free_underflow;

static inline void *count_alloc(size_t size, void *ctx)
{
    (void)ctx;
    void *p = malloc(size);
    /* Relaxed: counters; tests read them after shutdown joined every
     * worker and after their own handles were dropped. */
    if (p)
        atomic_fetch_add_explicit(&g_live_allocs, 1, memory_order_relaxed);
    return p;
}

static inline void count_free(void *p, void *ctx)
{
    (void)ctx;
    if (!p)
        return;
    /* A free without a matching allocation (a double free that malloc did
     * not catch) drives the count below zero. */
    if (atomic_fetch_sub_explicit(&g_live_allocs, 1, memory_order_acq_rel) <= 0)
        atomic_store_explicit(&g_free_underflow, 1, memory_order_relaxed);
    free(p);
}

/* Makes count_alloc and count_free weft's allocator, counting from 0.
 * Returns weft_set_allocator's result. */
static inline int counting_alloc_install(void)
{
    /* Relaxed: no other thread allocates yet. */
    atomic_store_explicit(&g_live_allocs, 0, memory_order_relaxed);
    atomic_store_explicit(&g_free_underflow, 0, memory_order_relaxed);
    weft_allocator a = { count_alloc, count_free, NULL };
    return weft_set_allocator(&a);
}

/* Restores the default allocator. Returns -1 (printing what is wrong) when
 * an allocation is still live (`why` says what that means) or one was
 * freed twice, else 0. Call once the allocating threads are joined. */
static inline int counting_alloc_uninstall(const char *why)
{
    int rc = 0;
    /* Acquire: the last free may have run on another thread. */
    long live = atomic_load_explicit(&g_live_allocs, memory_order_acquire);
    if (live != 0) {
        print_error("%ld allocation(s) not freed %s\n", live, why);
        rc = -1;
    }
    if (atomic_load_explicit(&g_free_underflow, memory_order_relaxed)) {
        print_error("more frees than allocations (one was freed twice)\n");
        rc = -1;
    }
    if (weft_set_allocator(NULL) != 0)
        rc = -1;
    return rc;
}

#endif
