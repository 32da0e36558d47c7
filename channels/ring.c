/* The bounded queue of mpsc and mpmc channels: Vyukov's array of stamped
 * slots (queue.h has the stamp rules). One CAS per send; the mpsc receiver
 * takes a run of items and moves its cursor once per run. */
#include "channels/queue.h"

#include <errno.h>

/* A slot: its stamp, then the item. */
static inline WEFT_ATOMIC(uint64_t) *slot_stamp(unsigned char *slot)
{
    return (WEFT_ATOMIC(uint64_t) *)(void *)slot;
}

static inline unsigned char *slot_at(const weft_chan *ch, uint64_t stamp)
{
    return ch->slots + (stamp & (ch->one_lap - 1)) * ch->stride;
}

int weft__ring_try_push(weft_chan *ch, const void *item, uint64_t *seen)
{
    /* Relaxed: only a guess at the cursor; the CAS below decides. */
    uint64_t tw = weft_atomic_load_relaxed(&ch->tail);
    for (;;) {
        if (tw & WEFT__CHAN_CLOSED)
            return -EPIPE;
        uint64_t s = tw >> WEFT__CHAN_SHIFT;
        unsigned char *slot = slot_at(ch, s);
        /* Acquire: pairs with the receiver's release of the slot, so the
         * item written below lands after the previous one was read. */
        uint64_t st = weft_atomic_load_acquire(slot_stamp(slot));
        if (st == s) {
            /* The new word drops WAITING: this send owns the wake-up. The
             * CAS orders this claim against a parking receiver's
             * fetch_or of WAITING (same word, one modification order);
             * acq_rel so a closer's earlier writes are seen on failure. */
            uint64_t nw = weft__ring_next(ch, s) << WEFT__CHAN_SHIFT;
            if (weft_atomic_cas_weak_acq_rel(&ch->tail, &tw, nw)) {
                weft__item_copy(slot + sizeof(uint64_t), item, ch->item_size);
                /* Release: publishes the item to the receiver's acquire
                 * load of the stamp. */
                weft_atomic_store_release(slot_stamp(slot), s + 1);
                *seen = tw;
                return 0;
            }
            continue; /* tw was reloaded by the failed CAS */
        }
        if (st + ch->one_lap == s + 1) {
            /* The slot still holds last lap's item: full, unless our view
             * of the tail was stale. */
            uint64_t again = weft_atomic_load_relaxed(&ch->tail);
            if (again == tw)
                return -EAGAIN;
            tw = again;
            continue;
        }
        /* The slot is ahead of us: another send claimed it. */
        tw = weft_atomic_load_relaxed(&ch->tail);
    }
}

int weft__ring_try_push_mpsc(weft_chan *ch, const void *item, uint64_t *seen)
{
    /* Relaxed: a guess at the cursor; the CAS below decides. */
    uint64_t tw = weft_atomic_load_relaxed(&ch->tail);
    /* Acquire: pairs with the release store below by the sender that
     * loaded it from `head`, so the receiver's reads of the items before
     * that cursor happen before our write of a slot they freed. */
    uint64_t h = weft_atomic_load_acquire(&ch->head_seen);
    for (;;) {
        if (tw & WEFT__CHAN_CLOSED)
            return -EPIPE;
        uint64_t s = tw >> WEFT__CHAN_SHIFT;
        if (weft__ring_len(ch, s, h) >= ch->cap) {
            /* Looks full: look at the receiver's cursor. Acquire: pairs
             * with its swap of `head`, which comes after it read every
             * item up to there, so the slot may be overwritten. */
            h = weft_atomic_load_acquire(&ch->head) >> WEFT__CHAN_SHIFT;
            /* Release: passes that acquire on to the senders that read
             * head_seen (a value older than another sender's store only
             * makes them look again sooner). */
            weft_atomic_store_release(&ch->head_seen, h);
            if (weft__ring_len(ch, s, h) >= ch->cap) {
                uint64_t again = weft_atomic_load_relaxed(&ch->tail);
                if (again == tw)
                    return -EAGAIN;
                tw = again;
                continue;
            }
        }
        /* As in weft__ring_try_push: the claim drops WAITING. A claim
         * that succeeds was judged against a `head` at most as old as
         * this tail word's lap allows, so the slot is free. */
        if (!weft_atomic_cas_weak_acq_rel(&ch->tail, &tw,
                                          weft__ring_next(ch, s) << WEFT__CHAN_SHIFT))
            continue;
        unsigned char *slot = slot_at(ch, s);
        weft__item_copy(slot + sizeof(uint64_t), item, ch->item_size);
        /* Release: publishes the item to the receiver's acquire load. */
        weft_atomic_store_release(slot_stamp(slot), s + 1);
        *seen = tw;
        return 0;
    }
}

size_t weft__ring_pop_mpsc(weft_chan *ch, void *out, size_t max, uint64_t *owe)
{
    *owe = WEFT__CHAN_OWE_NONE;
    uint64_t h = ch->rx_pos;
    unsigned char *o = out;
    size_t n = 0;
    while (n < max) {
        unsigned char *slot = slot_at(ch, h);
        /* Acquire: pairs with the sender's release store of s + 1. The
         * stamp a slot keeps from last lap is h + 1 - one_lap, never
         * h + 1, so the receiver needs to write nothing back. */
        if (weft_atomic_load_acquire(slot_stamp(slot)) != h + 1)
            break;
        weft__item_copy(o, slot + sizeof(uint64_t), ch->item_size);
        o += ch->item_size;
        h = weft__ring_next(ch, h);
        n++;
    }
    if (n == 0)
        return 0;
    ch->rx_pos = h;
    /* One RMW per run, after the items were read: it frees their slots
     * (senders' acquire loads of `head` pair with it); a sender that set
     * WAITING before it is seen here; one that sets it after finds the
     * room (acq_rel: its fetch_or reads from this swap). */
    uint64_t old = weft_atomic_swap_acq_rel(&ch->head, h << WEFT__CHAN_SHIFT);
    if (old & WEFT__CHAN_WAITING)
        *owe = h;
    return n;
}

size_t weft__ring_pop_mpmc(weft_chan *ch, void *out, size_t max, uint64_t *owe)
{
    *owe = WEFT__CHAN_OWE_NONE;
    uint64_t hw = weft_atomic_load_relaxed(&ch->head);
    for (;;) {
        uint64_t h = hw >> WEFT__CHAN_SHIFT, e = h;
        size_t n = 0;
        /* Acquire: pairs with each sender's release of its stamp, so the
         * items read after the claim below are complete. */
        while (n < max && weft_atomic_load_acquire(slot_stamp(slot_at(ch, e))) == e + 1) {
            e = weft__ring_next(ch, e);
            n++;
        }
        if (n == 0) {
            uint64_t again = weft_atomic_load_relaxed(&ch->head);
            if ((again >> WEFT__CHAN_SHIFT) == h)
                return 0;
            hw = again;
            continue;
        }
        /* Claim the run; the new word drops WAITING (this receive owns
         * waking the senders). A stale view fails here: stamps only grow,
         * so the run read above is the run claimed. */
        if (!weft_atomic_cas_weak_acq_rel(&ch->head, &hw, e << WEFT__CHAN_SHIFT))
            continue;
        unsigned char *o = out;
        for (uint64_t s = h; s != e; s = weft__ring_next(ch, s)) {
            unsigned char *slot = slot_at(ch, s);
            weft__item_copy(o, slot + sizeof(uint64_t), ch->item_size);
            o += ch->item_size;
            /* Release: pairs with the next lap's sender's acquire. */
            weft_atomic_store_release(slot_stamp(slot), s + ch->one_lap);
        }
        if (hw & WEFT__CHAN_WAITING)
            *owe = e;
        return n;
    }
}
