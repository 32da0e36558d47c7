/* Private: C11 atomics with the memory order in the name. Every use site
 * says what an acquire/release pairs with; relaxed uses say why that is
 * enough. Nothing here is seq_cst by accident. */
#ifndef WEFT_SCHED_ATOMIC_H
#define WEFT_SCHED_ATOMIC_H

#include <stdatomic.h>
#include <stdbool.h>

#define atomic_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define atomic_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define atomic_load_seq_cst(p) atomic_load_explicit((p), memory_order_seq_cst)
#define atomic_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define atomic_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define atomic_store_seq_cst(p, v) atomic_store_explicit((p), (v), memory_order_seq_cst)
#define atomic_swap_acq_rel(p, v) atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define atomic_swap_acquire(p, v) atomic_exchange_explicit((p), (v), memory_order_acquire)
#define atomic_fetch_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define atomic_fetch_add_acq_rel(p, v) atomic_fetch_add_explicit((p), (v), memory_order_acq_rel)
#define atomic_fetch_add_release(p, v) atomic_fetch_add_explicit((p), (v), memory_order_release)
#define atomic_fetch_sub_acq_rel(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel)
#define atomic_fetch_sub_release(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_release)
#define atomic_fetch_sub_seq_cst(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_seq_cst)
#define atomic_fetch_add_seq_cst(p, v) atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)
#define atomic_fetch_or_acq_rel(p, v) atomic_fetch_or_explicit((p), (v), memory_order_acq_rel)
#define atomic_fetch_and_release(p, v) atomic_fetch_and_explicit((p), (v), memory_order_release)
#define atomic_fetch_and_acq_rel(p, v) atomic_fetch_and_explicit((p), (v), memory_order_acq_rel)

/* CAS: on failure `*expected` receives the current value. */
#define atomic_cas_weak_acq_rel(p, e, d)                                      \
    atomic_compare_exchange_weak_explicit((p), (e), (d), memory_order_acq_rel, \
                                          memory_order_acquire)
#define atomic_cas_strong_acq_rel(p, e, d)                                    \
    atomic_compare_exchange_strong_explicit((p), (e), (d), memory_order_acq_rel, \
                                            memory_order_acquire)
#define atomic_cas_strong_acquire(p, e, d)                                    \
    atomic_compare_exchange_strong_explicit((p), (e), (d), memory_order_acquire, \
                                            memory_order_acquire)

#define atomic_fence_seq_cst() atomic_thread_fence(memory_order_seq_cst)
#define atomic_fence_acquire() atomic_thread_fence(memory_order_acquire)

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
