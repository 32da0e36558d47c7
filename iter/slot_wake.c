/* Per-slot wakers (see iter/slot_wake.h for the algorithm, the memory
 * model and the concurrency table). */
#include "iter/slot_wake.h"
#include "core/alloc.h"
#include "core/atomic.h"

#include <stdint.h>

static void slot_wake_free(weft_rc *rc)
{
    weft__slot_wake *w = (weft__slot_wake *)(void *)rc;
    weft_atomic_waker_fini(&w->consumer);
    weft__free(w);
}

static size_t rup_line(size_t x)
{
    return (x + WEFT_CACHE_LINE - 1) / WEFT_CACHE_LINE * WEFT_CACHE_LINE;
}

/* One allocation: the header, then `ready` with a cache line of gap on
 * each side (it is written by wakers on other threads; the allocation is
 * only max-aligned, hence gaps rather than alignment), then the
 * owner-only `local`, `free` and the read-only nodes. */
weft__slot_wake *weft__slot_wake_new(size_t n)
{
    size_t words = (n + 63) / 64;
    if (n == 0 || n > SIZE_MAX / 4 / (2 * sizeof(uint64_t) + sizeof(size_t) +
                                      sizeof(weft__slot_node)))
        return NULL;
    size_t off_ready = rup_line(sizeof(weft__slot_wake)) + WEFT_CACHE_LINE;
    size_t off_local = off_ready + rup_line(words * sizeof(uint64_t)) + WEFT_CACHE_LINE;
    size_t off_free = off_local + words * sizeof(uint64_t);
    size_t off_nodes = off_free + n * sizeof(size_t);
    unsigned char *mem = weft__alloc(off_nodes + n * sizeof(weft__slot_node));
    if (!mem)
        return NULL;
    weft__slot_wake *w = (weft__slot_wake *)(void *)mem;
    weft_rc_init(&w->rc, slot_wake_free);
    weft_atomic_waker_init(&w->consumer);
    w->n = n;
    w->words = words;
    w->ready = (WEFT_ATOMIC(uint64_t) *)(void *)(mem + off_ready);
    w->local = (uint64_t *)(void *)(mem + off_local);
    w->free = (size_t *)(void *)(mem + off_free);
    w->nodes = (weft__slot_node *)(void *)(mem + off_nodes);
    for (size_t k = 0; k < words; k++) {
        weft_atomic_init(&w->ready[k], 0);
        w->local[k] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        w->free[i] = 0;
        w->nodes[i].w = w;
        w->nodes[i].idx = i;
    }
    return w;
}

static const weft_waker_ops slot_waker_ops;

static weft_waker slot_clone(const void *data)
{
    const weft__slot_node *nd = data;
    weft_rc_retain(&nd->w->rc);
    weft_waker c = { &slot_waker_ops, (void *)(uintptr_t)data };
    return c;
}

static void slot_wake_by_ref(const void *data)
{
    const weft__slot_node *nd = data;
    weft__slot_wake *w = nd->w;
    /* Release: what the waking thread did before the wake (the event the
     * future waits for) is visible to the poll that swaps this word out
     * (pairs with the acquire swap in weft__slot_wake_begin). */
    weft_atomic_fetch_or_release(&w->ready[nd->idx / 64], (uint64_t)1 << (nd->idx % 64));
    /* Seq_cst: the bit before the look at the registered waker, against
     * the poll's register before its swap (pairs with the fence in
     * weft__slot_wake_begin; see the header). */
    weft_atomic_fence_seq_cst();
    weft_atomic_waker_wake(&w->consumer);
}

static void slot_drop(void *data)
{
    weft__slot_node *nd = data;
    (void)weft_rc_release(&nd->w->rc);
}

static void slot_wake(void *data)
{
    slot_wake_by_ref(data);
    slot_drop(data);
}

static const weft_waker_ops slot_waker_ops = {
    slot_clone, slot_wake, slot_wake_by_ref, slot_drop,
};

weft_waker weft__slot_wake_waker(weft__slot_wake *w, size_t i)
{
    weft_waker sw = { &slot_waker_ops, &w->nodes[i] };
    return sw;
}

void weft__slot_wake_begin(weft__slot_wake *w, weft_cx *cx)
{
    weft_atomic_waker_register(&w->consumer, cx->waker);
    /* Seq_cst: the register before the swaps, against a slot waker's bit
     * before its wake (pairs with the fence in slot_wake_by_ref). */
    weft_atomic_fence_seq_cst();
    for (size_t k = 0; k < w->words; k++)
        /* Acquire: see what the waking thread did before it set the bit
         * (pairs with the release fetch_or in slot_wake_by_ref). */
        w->local[k] |= weft_atomic_swap_acquire(&w->ready[k], 0);
}

void weft__slot_wake_release(weft__slot_wake *w)
{
    /* The task's waker goes now, not with the last slot-waker clone. */
    weft_waker cw;
    if (weft_atomic_waker_take(&w->consumer, &cw))
        weft_waker_drop(&cw);
    (void)weft_rc_release(&w->rc);
}
