/* Test support: an allocator for weft_set_allocator that counts live
 * allocations, so a test can assert that a runtime's whole lifecycle
 * returned every byte, and that catches frees without a matching
 * allocation. Each test program includes it once. */
#ifndef WEFT_TESTS_COUNTING_ALLOC_H
#define WEFT_TESTS_COUNTING_ALLOC_H

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

#endif
