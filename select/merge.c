/* weft_merge: the items of several streams as one stream of (index, item)
 * (weft/select.h). The select_next of select.c made a stream: it commits
 * once for the same reasons (an item leaves a branch only in the poll
 * that returns it, and a poll returns at the first branch that yields),
 * and it is fair without randomness, because each poll starts after the
 * branch that yielded last. */
#include "weft/select.h"
#include "core/errors.h"

/* Item size of stream `s` (fixed per type or per instance). */
static size_t branch_item_size(const weft_stream *s)
{
    return weft_stream_item_size(s);
}

/* Poll the branches round from `next_` until one yields; a branch that
 * ends is marked and skipped. Up to `max` items, all from the winner. */
static weft_next merge_poll(weft_merge *m, weft_cx *cx, unsigned char *items, size_t max,
                            size_t *n)
{
    size_t stride = WEFT_MERGE_ITEM_SIZE(m->max_item_);
    size_t i = m->next_ < m->cap_ ? m->next_ : 0;
    for (size_t k = 0; k < m->cap_ && m->live_ > 0; k++, i = i + 1 == m->cap_ ? 0 : i + 1) {
        weft_merge_slot *sl = &m->slots_[i];
        if (!sl->stream || sl->ended)
            continue;
        size_t got = 0;
        weft_next r;
        if (max == 1) {
            r = weft_stream_poll_next(sl->stream, cx, weft_merge_item_data(items));
            got = r == WEFT_NEXT_ITEM;
        } else {
            /* The branch's batch lands packed at the end of `items`, and
             * is spread out in place, first item first: item j's slot
             * ends before item j+1's packed bytes begin, since a slot
             * (index + max_item_) is at least as long as a branch item,
             * and item j's bytes start at least 8 bytes past its slot's
             * start, so its index can go in after the move. */
            size_t isz = branch_item_size(sl->stream);
            unsigned char *packed = items + max * (stride - isz);
            r = weft_stream_poll_next_many(sl->stream, cx, packed, max, &got);
            uint64_t idx = i;
            if (isz == sizeof(uint64_t)) {
                /* The common 8-byte item, without a memmove call per
                 * item: read it, then write its slot (index and item);
                 * the slot ends before the next packed item begins. */
                for (size_t j = 0; j < got; j++) {
                    uint64_t v;
                    memcpy(&v, packed + j * isz, sizeof v);
                    memcpy(items + j * stride, &idx, sizeof idx);
                    memcpy(items + j * stride + sizeof(uint64_t), &v, sizeof v);
                }
            } else {
                for (size_t j = 0; j < got; j++) {
                    memmove(items + j * stride + sizeof(uint64_t), packed + j * isz, isz);
                    memcpy(items + j * stride, &idx, sizeof idx);
                }
            }
        }
        if (r == WEFT_NEXT_DONE) {
            sl->ended = true; /* never polled again */
            m->live_--;
        }
        if (got == 0)
            continue;
        if (max == 1) {
            uint64_t idx = i;
            memcpy(items, &idx, sizeof idx);
        }
        m->next_ = i + 1; /* the next poll starts after the winner */
        *n = got;
        return WEFT_NEXT_ITEM;
    }
    if (m->live_ > 0)
        return WEFT_NEXT_PENDING;
    m->done_ = true;
    return WEFT_NEXT_DONE;
}

static weft_next merge_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    size_t n;
    return merge_poll((weft_merge *)s, cx, item, 1, &n);
}

static weft_next merge_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                      size_t *n)
{
    *n = 0;
    return merge_poll((weft_merge *)s, cx, items, max, n);
}

static size_t merge_item_size(const weft_stream *s)
{
    return WEFT_MERGE_ITEM_SIZE(((const weft_merge *)s)->max_item_);
}

static void merge_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    const weft_merge *m = (const weft_merge *)s;
    size_t l = 0, h = 0;
    for (size_t i = 0; i < m->cap_; i++) {
        const weft_merge_slot *sl = &m->slots_[i];
        if (!sl->stream || sl->ended)
            continue;
        size_t bl, bh;
        weft_stream_size_hint(sl->stream, &bl, &bh);
        l = l + bl < l ? SIZE_MAX : l + bl;
        h = h == SIZE_MAX || h + bh < h ? SIZE_MAX : h + bh;
    }
    *lo = l;
    *hi = h;
}

static const weft_stream_ops merge_ops = {
    .name = "weft_merge",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = merge_poll_next,
    .size_hint = merge_size_hint,
    .poll_next_many = merge_poll_next_many,
    .item_size_of = merge_item_size,
};

int weft_merge_init(weft_merge *m, weft_merge_slot *slots, size_t cap, size_t max_item_size,
                    uint32_t flags)
{
    if (!m || !slots || cap == 0) {
        WEFT_MISUSE("weft_merge_init: %s", !m ? "NULL merge" : !slots ? "NULL slots" : "cap 0");
        return -EINVAL;
    }
    if (max_item_size == 0 || max_item_size > WEFT_ITER_ITEM_MAX - sizeof(uint64_t)) {
        WEFT_MISUSE("weft_merge_init: max_item_size %zu (1..%zu)", max_item_size,
                    (size_t)WEFT_ITER_ITEM_MAX - sizeof(uint64_t));
        return -EINVAL;
    }
    if (flags & ~(uint32_t)WEFT_F_SEND) {
        WEFT_MISUSE("weft_merge_init: unknown flags %#x", (unsigned)flags);
        return -EINVAL;
    }
    weft_stream_init(&m->base, &merge_ops, flags);
    for (size_t i = 0; i < cap; i++)
        slots[i] = (weft_merge_slot){ NULL, false };
    m->slots_ = slots;
    m->cap_ = cap;
    m->live_ = 0;
    m->next_ = 0;
    m->max_item_ = max_item_size;
    m->done_ = false;
    return 0;
}

int weft_merge_add(weft_merge *m, weft_stream *s, size_t *index)
{
    if (!m || !s || !s->ops || !s->ops->poll_next || !index) {
        WEFT_MISUSE("weft_merge_add: NULL %s", !m ? "merge" : !index ? "index" : "stream");
        return -EINVAL;
    }
    if (m->done_) {
        WEFT_MISUSE("weft_merge_add: the merge already ended (it answered DONE)");
        return -EINVAL;
    }
    size_t isz = branch_item_size(s);
    if (isz > m->max_item_) {
        WEFT_MISUSE("weft_merge_add: stream '%s' has %zu-byte items, the merge at most %zu",
                    s->ops->name, isz, m->max_item_);
        return -EINVAL;
    }
    if ((m->base.flags & WEFT_F_SEND) && !(s->flags & WEFT_F_SEND)) {
        WEFT_MISUSE("weft_merge_add: stream '%s' is not Send, the merge is", s->ops->name);
        return -EINVAL;
    }
    for (size_t i = 0; i < m->cap_; i++) {
        if (m->slots_[i].stream)
            continue;
        m->slots_[i] = (weft_merge_slot){ s, false };
        m->live_++;
        *index = i;
        return 0;
    }
    return -ENOSPC;
}

int weft_merge_remove(weft_merge *m, size_t index)
{
    if (!m || index >= m->cap_ || !m->slots_[index].stream) {
        WEFT_MISUSE("weft_merge_remove: no stream at index %zu", index);
        return -EINVAL;
    }
    if (!m->slots_[index].ended)
        m->live_--;
    m->slots_[index] = (weft_merge_slot){ NULL, false };
    return 0;
}
