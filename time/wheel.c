/* The hierarchical timer wheel (the design of the Linux kernel's and
 * tokio's timer wheels).
 *
 * Six levels of 64 slots; a slot of level L spans 64^L ticks (1 ms), a
 * level spans 64^(L+1). An entry due at tick `when` goes to the lowest
 * level whose span around `elapsed` contains it: the level of the highest
 * 6-bit group in which `when` and `elapsed` differ, slot = that group of
 * `when`. So level 0 holds what is due within the current 64 ms window,
 * level 1 what is due within the current 4 s window, and so on; the lowest
 * non-empty level always holds the earliest deadline.
 *
 * Advancing to `now`: find the earliest occupied slot (per level, a 64-bit
 * occupancy mask rotated to the current position); if its start is past
 * `now`, stop. Otherwise take its entries: those due by the slot's start
 * go to the pending list, the others (a slot of level L > 0 spans many
 * ticks) are re-inserted relative to the slot's start, which lands them on
 * a lower level (the cascade). Every entry moves down at most five times,
 * so a timer costs O(1) amortised; a million pending timers cost memory
 * (their entries, embedded in their futures), not CPU.
 *
 * Removal is O(1): entries are in doubly linked lists and know their
 * level and slot. Invariant: an armed entry's when_ > elapsed, except on
 * the pending list. Concurrency: none here; time/driver.c calls these
 * under its lock. */
#include "time/wheel.h"
#include "core/errors.h"

#include <string.h>

void weft__wheel_init(weft__wheel *w, uint64_t origin_ns)
{
    memset(w, 0, sizeof *w);
    w->origin_ns = origin_ns;
    weft_atomic_init(&w->next_due, WEFT__WHEEL_NONE);
}

uint64_t weft__wheel_tick_ceil(const weft__wheel *w, weft_instant t)
{
    if (t <= w->origin_ns)
        return 0;
    uint64_t d = t - w->origin_ns;
    return d / 1000000u + (d % 1000000u != 0);
}

uint64_t weft__wheel_tick_floor(const weft__wheel *w, weft_instant t)
{
    return t <= w->origin_ns ? 0 : (t - w->origin_ns) / 1000000u;
}

static unsigned level_for(uint64_t elapsed, uint64_t when)
{
    uint64_t masked = (elapsed ^ when) | (WEFT__WHEEL_SLOTS - 1u);
    if (masked >= WEFT__WHEEL_MAX)
        masked = WEFT__WHEEL_MAX - 1u;
    unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
    return significant / 6u;
}

static unsigned slot_for(uint64_t when, unsigned level)
{
    return (unsigned)(when >> (6u * level)) & (WEFT__WHEEL_SLOTS - 1u);
}

static void list_push(weft_timer_entry **head, weft_timer_entry *e)
{
    e->prev = NULL;
    e->next = *head;
    if (*head)
        (*head)->prev = e;
    *head = e;
}

static void list_unlink(weft_timer_entry **head, weft_timer_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        *head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

#if WEFT_DEBUG_LEVEL >= 2
/* Whole-wheel check, O(levels x slots): a slot's occupancy bit is set
 * exactly when its list is non-empty, and each list's first entry says it
 * sits there. (Walking every list would make a debug build's wheel O(n)
 * per operation.) */
static bool wheel_consistent(const weft__wheel *w)
{
    for (unsigned l = 0; l < WEFT__WHEEL_LEVELS; l++) {
        for (unsigned s = 0; s < WEFT__WHEEL_SLOTS; s++) {
            const weft_timer_entry *head = w->slots[l][s];
            if ((((w->occupied[l] >> s) & 1u) != 0) != (head != NULL))
                return false;
            if (head && (head->level_ != l || head->slot_ != s || head->prev))
                return false;
        }
    }
    return !w->pending || w->pending->level_ == WEFT__TIMER_PENDING_LEVEL;
}
#endif

static void place(weft__wheel *w, weft_timer_entry *e)
{
    unsigned level = level_for(w->elapsed, e->when_);
    unsigned slot = slot_for(e->when_, level);
    e->level_ = (uint8_t)level;
    e->slot_ = (uint8_t)slot;
    list_push(&w->slots[level][slot], e);
    w->occupied[level] |= (uint64_t)1 << slot;
}

void weft__wheel_insert(weft__wheel *w, weft_timer_entry *e)
{
    place(w, e);
    w->armed++;
    WEFT_ASSERT_EXPENSIVE(wheel_consistent(w));
}

void weft__wheel_remove(weft__wheel *w, weft_timer_entry *e)
{
    if (e->level_ == WEFT__TIMER_PENDING_LEVEL) {
        list_unlink(&w->pending, e);
    } else {
        weft_timer_entry **head = &w->slots[e->level_][e->slot_];
        list_unlink(head, e);
        if (!*head)
            w->occupied[e->level_] &= ~((uint64_t)1 << e->slot_);
    }
    WEFT_ASSERT(w->armed > 0);
    w->armed--;
    WEFT_ASSERT_EXPENSIVE(wheel_consistent(w));
}

static inline uint64_t rotr64(uint64_t x, unsigned r)
{
    r &= 63u;
    return r ? (x >> r) | (x << (64u - r)) : x;
}

/* The earliest occupied slot: its level, slot and start tick. */
static bool next_expiration(const weft__wheel *w, unsigned *level, unsigned *slot,
                            uint64_t *deadline)
{
    for (unsigned l = 0; l < WEFT__WHEEL_LEVELS; l++) {
        uint64_t occ = w->occupied[l];
        if (!occ)
            continue;
        unsigned shift = 6u * l;
        uint64_t slot_range = (uint64_t)1 << shift;
        uint64_t level_range = slot_range << 6;
        unsigned now_slot = (unsigned)(w->elapsed >> shift) & 63u;
        /* Search the ring from the slot after the current one, so the
         * current slot comes last: only the top level can occupy it (with
         * deadlines a whole rotation away), and its other slots are due
         * sooner. */
        unsigned from = (now_slot + 1u) & 63u;
        unsigned s = ((unsigned)__builtin_ctzll(rotr64(occ, from)) + from) & 63u;
        uint64_t start = (w->elapsed & ~(level_range - 1u)) + (uint64_t)s * slot_range;
        /* Only the top level can hold a slot at or behind the current
         * position (deadlines beyond its span): it acts as a ring, so that
         * slot comes round in the next rotation. Lower levels only hold
         * entries strictly ahead (invariant when_ > elapsed). */
        if (start <= w->elapsed)
            start += level_range;
        *level = l;
        *slot = s;
        *deadline = start;
        return true;
    }
    return false;
}

uint64_t weft__wheel_next_due(const weft__wheel *w)
{
    if (w->pending)
        return w->elapsed;
    unsigned level, slot;
    uint64_t deadline;
    return next_expiration(w, &level, &slot, &deadline) ? deadline : WEFT__WHEEL_NONE;
}

/* Take slot (level, slot) whose start is `deadline`: due entries go to the
 * pending list, the rest cascade to lower levels. */
static void process_slot(weft__wheel *w, unsigned level, unsigned slot, uint64_t deadline)
{
    weft_timer_entry *e = w->slots[level][slot];
    w->slots[level][slot] = NULL;
    w->occupied[level] &= ~((uint64_t)1 << slot);
    w->elapsed = deadline;
    while (e) {
        weft_timer_entry *next = e->next;
        if (e->when_ <= deadline) {
            e->level_ = WEFT__TIMER_PENDING_LEVEL;
            list_push(&w->pending, e);
        } else {
            place(w, e);
        }
        e = next;
    }
}

size_t weft__wheel_poll(weft__wheel *w, uint64_t now, weft_waker *out, size_t max)
{
    size_t n = 0;
    for (;;) {
        while (w->pending && n < max) {
            weft_timer_entry *e = w->pending;
            list_unlink(&w->pending, e);
            w->armed--;
            /* Copied out, the field left as it is: the owner may be
             * reading it right now (time/driver.c: only the owner writes
             * an entry's waker). The reference is the caller's now. */
            out[n++] = e->waker_;
            /* Release: the entry's owner may reuse or free it once it
             * reads FIRED (pairs with the acquire loads in time/driver.c). */
            weft_atomic_store_release(&e->state_, WEFT__TIMER_FIRED);
        }
        if (n == max)
            break;
        unsigned level, slot;
        uint64_t deadline;
        if (!next_expiration(w, &level, &slot, &deadline) || deadline > now) {
            if (now > w->elapsed)
                w->elapsed = now;
            break;
        }
        process_slot(w, level, slot, deadline);
    }
    WEFT_ASSERT_EXPENSIVE(wheel_consistent(w));
    /* Relaxed: see next_due in wheel.h. */
    weft_atomic_store_relaxed(&w->next_due, weft__wheel_next_due(w));
    return n;
}
