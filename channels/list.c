/* The unbounded queue of mpsc channels: a list of blocks of 31 slots
 * (crossbeam's list flavour; queue.h has the cursor rules). A send claims
 * a slot with one CAS on `tail`; the send that claims a block's last slot
 * links the next block (allocated before its claim, so -ENOMEM leaves the
 * queue as it was). The one receiver walks the slots, passes each block
 * it finished to `spare` for reuse, and frees what it cannot keep. */
#include "channels/queue.h"
#include "core/alloc.h"

#include <errno.h>
#include <sched.h>

typedef WEFT_ATOMIC(uint64_t) ready_word;

static inline unsigned char *slot_at(const weft_chan *ch, weft__lblock *b, unsigned off)
{
    return b->slots + (size_t)off * ch->stride;
}

static inline ready_word *slot_ready(unsigned char *slot)
{
    return (ready_word *)(void *)slot;
}

static size_t block_bytes(const weft_chan *ch)
{
    return sizeof(weft__lblock) + WEFT__LIST_BLOCK_CAP * ch->stride;
}

/* A clean block: the spare if there is one, else a new one. */
static weft__lblock *block_get(weft_chan *ch)
{
    /* Acquire: pairs with the release swap in block_put, so the
     * receiver's last reads of the block happened before we reuse it. */
    weft__lblock *b = weft_atomic_swap_acquire(&ch->spare, NULL);
    if (!b) {
        b = weft__alloc(block_bytes(ch));
        if (!b)
            return NULL;
    }
    weft_atomic_init(&b->next, NULL);
    for (unsigned i = 0; i < WEFT__LIST_BLOCK_CAP; i++)
        weft_atomic_init(slot_ready(slot_at(ch, b, i)), 0);
    return b;
}

/* Keep `b` as the spare, freeing the one it replaces. */
static void block_put(weft_chan *ch, weft__lblock *b)
{
    /* Release: see block_get. Acquire: pairs with the release swap that
     * put `old` there (a sender's unused block, or the receiver's), so
     * that thread's writes to it happened before we free it. */
    weft__lblock *old = weft_atomic_swap_acq_rel(&ch->spare, b);
    weft__free(old);
}

int weft__list_init(weft_chan *ch)
{
    weft_atomic_init(&ch->spare, NULL);
    weft__lblock *b = block_get(ch);
    if (!b)
        return -ENOMEM;
    weft_atomic_init(&ch->tail_block, b);
    ch->head_block = b;
    return 0;
}

void weft__list_fini(weft_chan *ch)
{
    /* The receiver's block and everything linked after it; blocks before
     * it were passed to `spare` or freed already. */
    weft__lblock *b = ch->head_block;
    while (b) {
        weft__lblock *next = weft_atomic_load_relaxed(&b->next);
        weft__free(b);
        b = next;
    }
    weft__free(weft_atomic_load_relaxed(&ch->spare));
}

/* A send is linking the next block; it is between two of its own
 * instructions, so this is short unless it was preempted. */
static void wait_for_link(unsigned *spins)
{
    if (++*spins < 64)
        weft__cpu_relax();
    else
        sched_yield();
}

int weft__list_try_push(weft_chan *ch, const void *item, uint64_t *seen)
{
    weft__lblock *next = NULL;
    unsigned spins = 0;
    /* Acquire: a cursor in a new block comes with that block's pointer
     * (pairs with the release increment after linking). */
    uint64_t tw = weft_atomic_load_acquire(&ch->tail);
    for (;;) {
        if (tw & WEFT__CHAN_CLOSED) {
            if (next)
                block_put(ch, next);
            return -EPIPE;
        }
        uint64_t idx = tw >> WEFT__CHAN_SHIFT;
        unsigned off = (unsigned)(idx % WEFT__LIST_LAP);
        if (off == WEFT__LIST_BLOCK_CAP) {
            wait_for_link(&spins);
            tw = weft_atomic_load_acquire(&ch->tail);
            continue;
        }
        /* Acquire: pairs with the linker's release store of the block. */
        weft__lblock *b = weft_atomic_load_acquire(&ch->tail_block);
        if (off + 1 == WEFT__LIST_BLOCK_CAP && !next) {
            next = block_get(ch);
            if (!next)
                return -ENOMEM;
        }
        /* As in the ring: the new word drops WAITING (this send wakes). */
        if (!weft_atomic_cas_weak_acq_rel(&ch->tail, &tw, (idx + 1) << WEFT__CHAN_SHIFT))
            continue;
        if (off + 1 == WEFT__LIST_BLOCK_CAP) {
            /* Link the next block and step the cursor over offset 31.
             * fetch_add keeps WAITING or CLOSED set meanwhile. Release
             * (both): a sender that sees the new cursor sees the block. */
            weft_atomic_store_release(&ch->tail_block, next);
            weft_atomic_fetch_add_release(&ch->tail, (uint64_t)1 << WEFT__CHAN_SHIFT);
            /* Release: the receiver's acquire of `next` sees the block
             * initialised. Our last touch of `b` but the slot below. */
            weft_atomic_store_release(&b->next, next);
            next = NULL;
        }
        unsigned char *slot = slot_at(ch, b, off);
        weft__item_copy(slot + sizeof(uint64_t), item, ch->item_size);
        /* Release: publishes the item (pairs with the receiver's acquire).
         * Our last touch of `b`: once every slot is read the receiver
         * recycles it. */
        weft_atomic_store_release(slot_ready(slot), 1);
        if (next)
            block_put(ch, next);
        *seen = tw;
        return 0;
    }
}

size_t weft__list_pop(weft_chan *ch, void *out, size_t max)
{
    uint64_t idx = ch->rx_pos;
    weft__lblock *b = ch->head_block;
    unsigned char *o = out;
    size_t n = 0;
    while (n < max) {
        unsigned off = (unsigned)(idx % WEFT__LIST_LAP);
        if (off == WEFT__LIST_BLOCK_CAP) {
            /* Acquire: pairs with the linker's release of `next`. */
            weft__lblock *nb = weft_atomic_load_acquire(&b->next);
            if (!nb)
                break; /* being linked */
            /* Every slot of `b` was read, and its linker is done with it. */
            block_put(ch, b);
            b = nb;
            idx++;
            continue;
        }
        unsigned char *slot = slot_at(ch, b, off);
        /* Acquire: pairs with the sender's release of the ready word. */
        if (!weft_atomic_load_acquire(slot_ready(slot)))
            break;
        weft__item_copy(o, slot + sizeof(uint64_t), ch->item_size);
        o += ch->item_size;
        idx++;
        n++;
    }
    ch->rx_pos = idx;
    ch->head_block = b;
    if (n)
        /* Relaxed: the head word of an unbounded queue is read only for
         * len (no sender waits for room). */
        weft_atomic_store_relaxed(&ch->head, idx << WEFT__CHAN_SHIFT);
    return n;
}
