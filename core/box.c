/* weft_future_box (a future in weft-allocated storage, for callers of an
 * async interface that cannot reserve the size it publishes) and weft_rc
 * (a reference count with a drop callback, for the state such futures
 * share). */
#include "weft/future.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/errors.h"

#include <errno.h>
#include <stdint.h>

/* ---- the box ------------------------------------------------------------------- */

static weft_poll box_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_future_box *b = (weft_future_box *)f;
    if (!b->filled_) {
        WEFT_MISUSE("weft_future_box: polled before weft_future_box_fill");
        return WEFT_PENDING;
    }
    return weft_future_poll(b->inner_, cx, out);
}

static void box_drop(weft_future *f)
{
    weft_future_box *b = (weft_future_box *)f;
    if (b->filled_)
        weft_future_drop(b->inner_);
    b->filled_ = false;
    weft__free(b->mem_);
    b->mem_ = NULL;
    b->inner_ = NULL;
}

static size_t box_out_size(const weft_future *f)
{
    const weft_future_box *b = (const weft_future_box *)f;
    return b->filled_ ? weft_future_out_size(b->inner_) : 0;
}

static const weft_future_ops box_ops = {
    .name = "weft_future_box",
    .out_size = WEFT_OUT_SIZE_VARIES,
    .poll = box_poll,
    .drop = box_drop,
    .out_size_of = box_out_size,
};

int weft_future_box_alloc(weft_future_box *b, size_t size, size_t align, weft_future **storage)
{
    if (!b || !storage || align == 0 || (align & (align - 1)) != 0 ||
        size < sizeof(weft_future)) {
        WEFT_MISUSE("weft_future_box_alloc: %s",
                    !b || !storage ? "box or storage NULL"
                    : size < sizeof(weft_future) ? "size smaller than a future header"
                                                 : "align not a power of two");
        return -EINVAL;
    }
    size_t extra = align > _Alignof(max_align_t) ? align - 1 : 0;
    if (size > SIZE_MAX - extra)
        return -ENOMEM;
    void *mem = weft__alloc(size + extra);
    if (!mem)
        return -ENOMEM;
    uintptr_t at = ((uintptr_t)mem + extra) & ~(uintptr_t)(extra ? align - 1 : 0);
    weft_future_init(&b->base, &box_ops, 0);
    b->mem_ = mem;
    b->inner_ = (weft_future *)(void *)at;
    b->filled_ = false;
    *storage = b->inner_;
    return 0;
}

void weft_future_box_fill(weft_future_box *b)
{
    if (!b || !b->mem_ || b->filled_) {
        WEFT_MISUSE("weft_future_box_fill: %s", !b || !b->mem_ ? "box not allocated"
                                                               : "box filled twice");
        return;
    }
    b->filled_ = true;
    b->base.flags = (b->base.flags & ~WEFT_F_SEND) | (b->inner_->flags & WEFT_F_SEND);
}

void weft_future_box_drop(weft_future_box *b)
{
    if (b)
        box_drop(&b->base);
}

/* ---- rc ------------------------------------------------------------------------ */

void weft_rc_init(weft_rc *rc, weft_rc_drop_fn *drop)
{
    weft_atomic_store_relaxed(&rc->count_, 1);
    rc->drop_ = drop;
}

void weft_rc_retain(weft_rc *rc)
{
    size_t was = weft_atomic_fetch_add_relaxed(&rc->count_, 1);
    if (was == 0)
        WEFT_MISUSE("weft_rc_retain: the count was 0 (already dropped)");
}

bool weft_rc_release(weft_rc *rc)
{
    size_t was = weft_atomic_fetch_sub_acq_rel(&rc->count_, 1);
    if (was == 0) {
        weft_atomic_fetch_add_relaxed(&rc->count_, 1);
        WEFT_MISUSE("weft_rc_release: released more often than retained");
        return false;
    }
    if (was != 1)
        return false;
    if (rc->drop_)
        rc->drop_(rc);
    return true;
}

size_t weft_rc_count(const weft_rc *rc)
{
    return weft_atomic_load_acquire(&((weft_rc *)rc)->count_);
}
