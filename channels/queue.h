/* Private: the shared state of an mpsc / mpmc channel and its two queues.
 *
 * Both queues keep their producer cursor in one atomic word, `tail`, and
 * their consumer cursor in another, `head`; each word carries flag bits
 * below the cursor:
 *
 *   tail = cursor << 2 | WAITING (a receiver is parked) | CLOSED (no more sends)
 *   head = cursor << 2 | WAITING (a sender is parked for room)
 *
 * A side that parks sets WAITING with an RMW on the other side's word and
 * then looks again; the other side moves its cursor with an RMW on the
 * same word, which therefore either sees WAITING (and wakes) or happens
 * before the parking side's look (which then finds the change). One
 * modification order per word is the whole argument: no fence, and a
 * sender that finds nobody parked pays nothing for the check.
 *
 * Bounded queue (ring.c): Vyukov's array of slots, each with a sequence
 * stamp `lap | index` (crossbeam's array flavour). A slot is free for the
 * send at stamp s when its stamp is s, holds that send's item when it is
 * s + 1, and is free for the next lap's send when it is s + one_lap.
 * Senders claim a slot with one CAS on `tail`. mpmc receivers claim a
 * run with one CAS on `head` and free each slot by writing its stamp.
 * The single mpsc receiver never writes a slot: it reads a run of items
 * (acquire loads of their stamps) and then moves `head` once; mpsc
 * senders check for room against `head` instead of the slot's stamp
 * (through `head_seen`, refreshed only when the ring looks full), so a
 * slot's cache line travels from sender to receiver and not back.
 *
 * Unbounded queue (list.c, mpsc only): a list of blocks of 31 slots,
 * indexed by a cursor counting 32 per block (offset 31 marks "the next
 * block is being linked"), crossbeam's list flavour; each slot has a
 * ready flag. One freed block is kept for reuse. */
#ifndef WEFT_CHANNELS_QUEUE_H
#define WEFT_CHANNELS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weft/channels.h"
#include "core/atomic.h"
#include "sync/waitq.h"

enum {
    WEFT__CHAN_MPSC = 0,      /* bounded ring, one receiver */
    WEFT__CHAN_UNBOUNDED = 1, /* block list, one receiver */
    WEFT__CHAN_MPMC = 2,      /* bounded ring, receivers claim by CAS */
};

#define WEFT__CHAN_WAITING 1u
#define WEFT__CHAN_CLOSED 2u
#define WEFT__CHAN_FLAGS 3u
#define WEFT__CHAN_SHIFT 2

/* Unbounded list geometry. */
#define WEFT__LIST_LAP 32u
#define WEFT__LIST_BLOCK_CAP 31u

typedef struct weft__lblock weft__lblock;
typedef weft__lblock *weft__lblock_ptr; /* so WEFT_ATOMIC makes the pointer atomic */

struct weft__lblock {
    WEFT_ATOMIC(weft__lblock_ptr) next;
    unsigned char slots[]; /* BLOCK_CAP x { atomic u64 ready; item } */
};

struct weft_chan {
    /* Producers' line. */
    WEFT_ATOMIC(uint64_t) tail;
    WEFT_ATOMIC(weft__lblock_ptr) tail_block; /* unbounded: the block `tail` is in */
    WEFT_ATOMIC(uint64_t) head_seen; /* mpsc: the senders' last look at `head` */
    unsigned char pad0_[WEFT_CACHE_LINE];

    /* Consumers' line. */
    WEFT_ATOMIC(uint64_t) head;
    uint64_t rx_pos;         /* mpsc: the receiver's own cursor */
    weft__lblock *head_block; /* unbounded: the block rx_pos is in */
    unsigned char pad1_[WEFT_CACHE_LINE];

    /* Waiting and lifetime: touched when a side parks or a handle comes
     * and goes, not per item. */
    weft_atomic_waker rx_waker; /* mpsc: the one receiver */
    weft__waitq rxq;            /* mpmc: parked receivers */
    weft__waitq txq;            /* bounded: senders parked for room */
    WEFT_ATOMIC(uint32_t) refs; /* handles alive (each holds one) */
    WEFT_ATOMIC(uint32_t) senders;
    WEFT_ATOMIC(uint32_t) receivers;
    WEFT_ATOMIC(int) efd;       /* the receiver's eventfd, or -1 */
    WEFT_ATOMIC(weft__lblock_ptr) spare; /* unbounded: one block kept for reuse */

    /* Fixed at creation. */
    uint32_t kind;
    size_t item_size;
    size_t stride;     /* bytes per slot: stamp (or ready word) + item */
    size_t cap;        /* bounded: slots; unbounded: 0 */
    uint64_t one_lap;  /* bounded: next power of two above cap */
    unsigned lap_shift; /* log2(one_lap) */
    unsigned char *slots; /* bounded: the ring (allocated with the struct) */
};

/* ---- bounded ring (ring.c) ---------------------------------------------- */

/* 0 with *seen = the tail word this send replaced (WAITING in it: wake a
 * receiver), -EAGAIN (full) or -EPIPE (closed). */
int weft__ring_try_push(weft_chan *ch, const void *item, uint64_t *seen);
int weft__ring_try_push_mpsc(weft_chan *ch, const void *item, uint64_t *seen);
/* Up to max items into out; the count. The mpsc form is for the one
 * receiver. When the head word they replaced had WAITING, *owe is the
 * head stamp they wrote (the caller wakes parked senders:
 * weft__chan_wake_senders), else WEFT__CHAN_OWE_NONE. */
#define WEFT__CHAN_OWE_NONE UINT64_MAX
size_t weft__ring_pop_mpsc(weft_chan *ch, void *out, size_t max, uint64_t *owe);
size_t weft__ring_pop_mpmc(weft_chan *ch, void *out, size_t max, uint64_t *owe);
/* The stamp after `s`: the next index, or index 0 of the next lap. */
static inline uint64_t weft__ring_next(const weft_chan *ch, uint64_t s)
{
    uint64_t mask = ch->one_lap - 1;
    return (s & mask) + 1 < ch->cap ? s + 1 : (s & ~mask) + ch->one_lap;
}

/* Items between consumer stamp `h` and producer stamp `t`. */
static inline uint64_t weft__ring_len(const weft_chan *ch, uint64_t t, uint64_t h)
{
    uint64_t mask = ch->one_lap - 1;
    return ((t >> ch->lap_shift) - (h >> ch->lap_shift)) * ch->cap + (t & mask) - (h & mask);
}

/* ---- unbounded list (list.c) -------------------------------------------- */

/* Set up the first block: 0 or -ENOMEM. */
int weft__list_init(weft_chan *ch);
/* Free every block (the channel is dead). */
void weft__list_fini(weft_chan *ch);
/* 0 with *seen as for the ring, -EPIPE or -ENOMEM. */
int weft__list_try_push(weft_chan *ch, const void *item, uint64_t *seen);
size_t weft__list_pop(weft_chan *ch, void *out, size_t max);
/* Items between consumer cursor `h` and producer cursor `t`. */
static inline uint64_t weft__list_len(uint64_t t, uint64_t h)
{
    uint64_t ft = (t / WEFT__LIST_LAP) * WEFT__LIST_BLOCK_CAP +
                  (t % WEFT__LIST_LAP < WEFT__LIST_BLOCK_CAP ? t % WEFT__LIST_LAP
                                                             : WEFT__LIST_BLOCK_CAP);
    uint64_t fh = (h / WEFT__LIST_LAP) * WEFT__LIST_BLOCK_CAP +
                  (h % WEFT__LIST_LAP < WEFT__LIST_BLOCK_CAP ? h % WEFT__LIST_LAP
                                                             : WEFT__LIST_BLOCK_CAP);
    return ft - fh;
}

/* ---- waking (chan.c) ------------------------------------------------------ */

/* A receive freed `n` slots and owes the senders a wake (see *owe
 * above; `mine` is the head stamp it wrote): wake up to `n` parked
 * senders, and one more per slot freed meanwhile by receives that saw no
 * WAITING. Called by chan.c after a pop (and by tests). */
void weft__chan_wake_senders(weft_chan *ch, size_t n, uint64_t mine);

/* Copy one item; the common sizes without a call. */
static inline void weft__item_copy(void *dst, const void *src, size_t size)
{
    switch (size) {
    case 8: {
        uint64_t v;
        memcpy(&v, src, 8);
        memcpy(dst, &v, 8);
        break;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, src, 4);
        memcpy(dst, &v, 4);
        break;
    }
    case 0:
        break;
    default:
        memcpy(dst, src, size);
    }
}

#endif
