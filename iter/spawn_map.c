/* spawn_map: each upstream item's future spawned as its own task, up to
 * n at once; the stage keeps their join handles in the caller's slots.
 * Ordered mode puts item seq in slot seq % n (the window seq_out_ ..
 * seq_in_ is at most n wide) and yields slot seq_out_ % n; unordered mode
 * uses any free slot and yields any finished task. A handle is polled
 * (a) once it is finished (one acquire load: weft_join_is_finished), or
 * (b) to register the waker: once after the spawn and again whenever the
 * poll's waker differs from the one kept in waker_. Those registering
 * polls get a context of their own with a full budget: registering a
 * waker is no work, and a join handle refused by the budget would not
 * register (that poll would only wake us, and our bookkeeping would count
 * it registered). */
#include "iter/comb.h"

static void end_all(weft_iter_spawn_map *m)
{
    for (size_t i = 0; i < m->n_; i++) {
        weft_iter_spawn_slot *sl = &m->slots_[i];
        if (sl->busy) {
            if (!sl->ready)
                weft_join_cancel(&sl->join); /* abort, drop the handle */
            sl->busy = sl->ready = false;
            m->live_--;
        }
    }
}

static void drop_waker(weft_iter_spawn_map *m)
{
    if (m->have_waker_) {
        weft_waker_drop(&m->waker_);
        m->have_waker_ = false;
    }
}

static weft_iter_spawn_slot *free_slot(weft_iter_spawn_map *m)
{
    if (m->ordered_) {
        if (m->seq_in_ - m->seq_out_ >= m->n_)
            return NULL;
        return &m->slots_[m->seq_in_ % m->n_];
    }
    if (m->live_ >= m->n_)
        return NULL;
    for (size_t k = 0; k < m->n_; k++) {
        weft_iter_spawn_slot *sl = &m->slots_[(m->scan_ + k) % m->n_];
        if (!sl->busy)
            return sl;
    }
    return NULL;
}

/* Spawn tasks for upstream items while slots are free. 0, or the errno
 * that ends the stage. */
static int fill(weft_iter_spawn_map *m, weft_cx *cx)
{
    weft_iter_spawn_slot *sl;
    while (!m->up_done_ && (sl = free_slot(m)) != NULL) {
        weft_next r = weft_stream_poll_next(m->up_, cx, m->buf_.b);
        if (r == WEFT_NEXT_PENDING)
            break;
        if (r == WEFT_NEXT_DONE) {
            m->up_done_ = true;
            break;
        }
        weft_future *f = m->fn_(m->ctx_, m->buf_.b, m->fut_st_.b, m->fut_size_);
        if (!f || (void *)f != (void *)m->fut_st_.b ||
            weft_future_out_size(f) != m->out_size_) {
            WEFT_MISUSE("weft_iter_spawn_map: fn made no future at its storage, or one of "
                        "another output size");
            if (f)
                weft_future_drop(f);
            return -EINVAL;
        }
        int rc = weft_spawn_or_drop(m->rt_, f, m->fut_size_, &sl->join);
        if (rc != 0)
            return rc;
        sl->busy = true;
        sl->ready = false;
        sl->registered = false;
        sl->seq = m->seq_in_++;
        m->live_++;
    }
    return 0;
}

/* Poll a handle with the full budget: READY (output in `out`) or
 * PENDING with our waker registered. A PENDING may be the sim runtime's
 * chaos, which wakes us without registering; chaos never answers twice
 * in a row, and a second poll of a registered handle is one load and a
 * compare, so a PENDING handle is polled twice. */
static weft_poll poll_join(weft_iter_spawn_slot *sl, weft_cx *sub, void *out)
{
    for (int k = 0; k < 2; k++) {
        sub->budget = WEFT_COOP_BUDGET;
        if (weft_future_poll(&sl->join.base, sub, out) == WEFT_READY)
            return WEFT_READY;
    }
    sl->registered = true;
    return WEFT_PENDING;
}

/* Poll slot `sl`'s handle if it finished or still needs the waker:
 * true with the output in `item` when its task is done. */
static bool try_slot(weft_iter_spawn_slot *sl, weft_cx *sub, void *item)
{
    if (sl->registered && !weft_join_is_finished(&sl->join))
        return false;
    return poll_join(sl, sub, item) == WEFT_READY;
}

static weft_next spawn_map_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    weft_iter_spawn_map *m = (weft_iter_spawn_map *)s;
    if (m->err_)
        return WEFT_NEXT_DONE; /* not reached through weft_stream_poll_next */
    int rc = fill(m, cx);
    if (rc != 0) {
        m->err_ = rc;
        end_all(m);
        drop_waker(m);
        return WEFT_NEXT_DONE;
    }
    if (!m->have_waker_ || !weft_waker_will_wake(&m->waker_, cx->waker)) {
        if (m->have_waker_)
            weft_waker_drop(&m->waker_);
        m->waker_ = weft_waker_clone(cx->waker);
        m->have_waker_ = true;
        for (size_t i = 0; i < m->n_; i++)
            m->slots_[i].registered = false;
    }
    weft_cx sub = *cx;
    weft_iter_spawn_slot *got = NULL;
    if (m->ordered_) {
        /* Finished tasks hand their output to their slot; the head's
         * goes out once it is there. */
        for (size_t i = 0; i < m->n_; i++) {
            weft_iter_spawn_slot *sl = &m->slots_[i];
            if (sl->busy && !sl->ready && try_slot(sl, &sub, sl->out.b)) {
                sl->status = sl->join.status;
                weft_future_drop(&sl->join.base);
                sl->ready = true;
            }
        }
        weft_iter_spawn_slot *head = &m->slots_[m->seq_out_ % m->n_];
        if (head->busy && head->ready) {
            memcpy(item, head->out.b, m->out_size_);
            got = head;
        }
    } else {
        for (size_t k = 0; k < m->n_; k++) {
            size_t i = (m->scan_ + k) % m->n_;
            weft_iter_spawn_slot *sl = &m->slots_[i];
            if (sl->busy && try_slot(sl, &sub, item)) {
                sl->status = sl->join.status;
                weft_future_drop(&sl->join.base);
                sl->ready = true;
                got = sl;
                m->scan_ = (i + 1) % m->n_;
                break;
            }
        }
    }
    if (got) {
        int status = got->status;
        got->busy = got->ready = false;
        m->live_--;
        m->seq_out_++;
        if (status != 0) {
            m->err_ = status;
            end_all(m);
            drop_waker(m);
            return WEFT_NEXT_DONE;
        }
        return WEFT_NEXT_ITEM;
    }
    if (m->live_ == 0 && m->up_done_) {
        drop_waker(m); /* DONE is final: hold no task's waker past it */
        return WEFT_NEXT_DONE;
    }
    return WEFT_NEXT_PENDING;
}

static void spawn_map_drop(weft_stream *s)
{
    weft_iter_spawn_map *m = (weft_iter_spawn_map *)s;
    end_all(m);
    drop_waker(m);
}

static void spawn_map_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_iter_spawn_map *m = (const weft_iter_spawn_map *)s;
    if (m->up_done_ || m->err_) {
        *lo = *hi = 0;
    } else {
        weft_stream_size_hint(m->up_, lo, hi);
    }
    *lo = sat_add(*lo, m->live_);
    *hi = sat_add(*hi, m->live_);
}

static size_t spawn_map_item_size(const weft_stream *s)
{
    return ((const weft_iter_spawn_map *)s)->out_size_;
}

static const weft_stream_ops spawn_map_ops = {
    .name = "weft_iter_spawn_map",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = spawn_map_poll_next,
    .drop = spawn_map_drop,
    .size_hint = spawn_map_size_hint,
    .item_size_of = spawn_map_item_size,
};

int weft_iter_spawn_map_init(weft_iter_spawn_map *m, weft_stream *up, weft_rt *rt,
                             weft_iter_then_fn *fn, void *ctx, size_t fut_size,
                             size_t out_item_size, size_t n, unsigned order,
                             weft_iter_spawn_slot *slots, size_t slots_len)
{
    int err = comb_check("weft_iter_spawn_map_init", m, up, true, fn != NULL);
    if (!err)
        err = comb_check_held("weft_iter_spawn_map_init", up);
    if (err)
        return err;
    if (n == 0 || fut_size < sizeof(weft_future) || fut_size > WEFT_ITER_THEN_FUT_MAX ||
        (order != WEFT_ITER_ORDERED && order != WEFT_ITER_UNORDERED) || !slots ||
        out_item_size > WEFT_ITER_ITEM_MAX || slots_len < n) {
        WEFT_MISUSE("weft_iter_spawn_map_init: n %zu is 0, fut_size %zu out of range, "
                    "order %u unknown, or slots NULL or fewer than n (%zu)",
                    n, fut_size, order, slots_len);
        return -EINVAL;
    }
    weft_stream_init(&m->base, &spawn_map_ops, up->flags & WEFT_F_SEND);
    m->up_ = up;
    m->fn_ = fn;
    m->ctx_ = ctx;
    m->rt_ = rt;
    m->slots_ = slots;
    m->n_ = n;
    m->fut_size_ = fut_size;
    m->out_size_ = out_item_size;
    m->live_ = 0;
    m->scan_ = 0;
    m->seq_in_ = m->seq_out_ = 0;
    m->ordered_ = order == WEFT_ITER_ORDERED;
    m->up_done_ = false;
    m->have_waker_ = false;
    m->err_ = 0;
    for (size_t i = 0; i < n; i++) {
        slots[i].busy = slots[i].ready = false;
        slots[i].registered = false;
        slots[i].seq = 0;
    }
    return 0;
}
