/* Private: C11 atomics through names that carry the memory order and our
 * prefix (C11 reserves `atomic_` followed by a lowercase letter). Every
 * order a comment may ask for is here, so code never promises one order
 * and does another: a use site says what its acquire/release pairs with,
 * and a relaxed use says why that is enough. Nothing is seq_cst by
 * accident: seq_cst has its own names. (After mimalloc's mi_atomic_*.) */
#ifndef WEFT_CORE_ATOMIC_H
#define WEFT_CORE_ATOMIC_H

#include <stdatomic.h>
#include <stdbool.h>

#define weft_atomic_init(p, v) atomic_init((p), (v))

#define weft_atomic_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define weft_atomic_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define weft_atomic_load_seq_cst(p) atomic_load_explicit((p), memory_order_seq_cst)

#define weft_atomic_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define weft_atomic_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define weft_atomic_store_seq_cst(p, v) atomic_store_explicit((p), (v), memory_order_seq_cst)

#define weft_atomic_swap_relaxed(p, v) atomic_exchange_explicit((p), (v), memory_order_relaxed)
#define weft_atomic_swap_acquire(p, v) atomic_exchange_explicit((p), (v), memory_order_acquire)
#define weft_atomic_swap_release(p, v) atomic_exchange_explicit((p), (v), memory_order_release)
#define weft_atomic_swap_acq_rel(p, v) atomic_exchange_explicit((p), (v), memory_order_acq_rel)

/* Read-modify-writes: weft_atomic_fetch_<op>_<order>, returning the old
 * value. */
#define WEFT__RMW(op, p, v, o) atomic_fetch_##op##_explicit((p), (v), memory_order_##o)
#define weft_atomic_fetch_add_relaxed(p, v) WEFT__RMW(add, p, v, relaxed)
#define weft_atomic_fetch_add_acquire(p, v) WEFT__RMW(add, p, v, acquire)
#define weft_atomic_fetch_add_release(p, v) WEFT__RMW(add, p, v, release)
#define weft_atomic_fetch_add_acq_rel(p, v) WEFT__RMW(add, p, v, acq_rel)
#define weft_atomic_fetch_add_seq_cst(p, v) WEFT__RMW(add, p, v, seq_cst)
#define weft_atomic_fetch_sub_relaxed(p, v) WEFT__RMW(sub, p, v, relaxed)
#define weft_atomic_fetch_sub_acquire(p, v) WEFT__RMW(sub, p, v, acquire)
#define weft_atomic_fetch_sub_release(p, v) WEFT__RMW(sub, p, v, release)
#define weft_atomic_fetch_sub_acq_rel(p, v) WEFT__RMW(sub, p, v, acq_rel)
#define weft_atomic_fetch_sub_seq_cst(p, v) WEFT__RMW(sub, p, v, seq_cst)
#define weft_atomic_fetch_or_relaxed(p, v) WEFT__RMW(or, p, v, relaxed)
#define weft_atomic_fetch_or_acquire(p, v) WEFT__RMW(or, p, v, acquire)
#define weft_atomic_fetch_or_release(p, v) WEFT__RMW(or, p, v, release)
#define weft_atomic_fetch_or_acq_rel(p, v) WEFT__RMW(or, p, v, acq_rel)
#define weft_atomic_fetch_and_relaxed(p, v) WEFT__RMW(and, p, v, relaxed)
#define weft_atomic_fetch_and_acquire(p, v) WEFT__RMW(and, p, v, acquire)
#define weft_atomic_fetch_and_release(p, v) WEFT__RMW(and, p, v, release)
#define weft_atomic_fetch_and_acq_rel(p, v) WEFT__RMW(and, p, v, acq_rel)

/* Compare-and-swap: weft_atomic_cas_<weak|strong>_<order>(p, &expected,
 * desired). On failure `*expected` receives the current value, loaded with
 * acquire for the acquire and acq_rel forms and relaxed for the others (a
 * release CAS that fails has published nothing and learns only a value). */
#define WEFT__CAS(kind, p, e, d, s, f)                                        \
    atomic_compare_exchange_##kind##_explicit((p), (e), (d), memory_order_##s, \
                                              memory_order_##f)
#define weft_atomic_cas_weak_relaxed(p, e, d) WEFT__CAS(weak, p, e, d, relaxed, relaxed)
#define weft_atomic_cas_weak_acquire(p, e, d) WEFT__CAS(weak, p, e, d, acquire, acquire)
#define weft_atomic_cas_weak_release(p, e, d) WEFT__CAS(weak, p, e, d, release, relaxed)
#define weft_atomic_cas_weak_acq_rel(p, e, d) WEFT__CAS(weak, p, e, d, acq_rel, acquire)
#define weft_atomic_cas_strong_relaxed(p, e, d) WEFT__CAS(strong, p, e, d, relaxed, relaxed)
#define weft_atomic_cas_strong_acquire(p, e, d) WEFT__CAS(strong, p, e, d, acquire, acquire)
#define weft_atomic_cas_strong_release(p, e, d) WEFT__CAS(strong, p, e, d, release, relaxed)
#define weft_atomic_cas_strong_acq_rel(p, e, d) WEFT__CAS(strong, p, e, d, acq_rel, acquire)

#define weft_atomic_fence_acquire() atomic_thread_fence(memory_order_acquire)
#define weft_atomic_fence_release() atomic_thread_fence(memory_order_release)
#define weft_atomic_fence_seq_cst() atomic_thread_fence(memory_order_seq_cst)

/* A CPU hint inside spin loops. */
static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#define WEFT_CACHE_LINE 64

#endif
