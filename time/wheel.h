/* Private: the hierarchical timer wheel, as a pure data structure: no lock,
 * no clock, `now` is an argument (time/driver.c owns one per runtime and
 * locks it). */
#ifndef WEFT_TIME_WHEEL_H
#define WEFT_TIME_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#include "weft/time.h"
#include "core/atomic.h"

#define WEFT__WHEEL_LEVELS 6u
#define WEFT__WHEEL_SLOTS 64u
/* Deadlines further than this (about 2.2 years) are parked in the top
 * level and re-examined each time its slot comes round. */
#define WEFT__WHEEL_MAX ((uint64_t)1 << 36)
#define WEFT__WHEEL_NONE UINT64_MAX

/* Entry states (weft_timer_entry.state_). ARMED: linked in the wheel (or
 * its pending list), waker owned by the wheel. FIRED: unlinked by the
 * wheel, which took the waker (a copy: the entry's field still holds it
 * but owns no reference). Transitions under the driver's lock; readers
 * outside it use acquire loads. */
enum { WEFT__TIMER_IDLE = 0, WEFT__TIMER_ARMED = 1, WEFT__TIMER_FIRED = 2 };
#define WEFT__TIMER_PENDING_LEVEL 0xffu

typedef struct weft__wheel {
    /* Wheel time in ms ticks since `origin_ns`; the wheel has processed
     * everything up to it. */
    uint64_t elapsed;
    uint64_t origin_ns;
    /* Earliest tick at which something is due (WEFT__WHEEL_NONE: nothing
     * armed). Written under lock; read without it to skip the lock when
     * nothing is due (relaxed: a stale value only delays or repeats a
     * check, and the locked path re-reads). */
    _Atomic uint64_t next_due;
    size_t armed; /* entries linked in the wheel or its pending list */
    uint64_t occupied[WEFT__WHEEL_LEVELS];
    weft_timer_entry *slots[WEFT__WHEEL_LEVELS][WEFT__WHEEL_SLOTS];
    weft_timer_entry *pending; /* due, not yet handed out */
} weft__wheel;

void weft__wheel_init(weft__wheel *w, uint64_t origin_ns);

/* ---- the wheel (the caller serialises calls; `now` in ticks) ---- */

/* Arm `e` (when_ > elapsed). */
void weft__wheel_insert(weft__wheel *w, weft_timer_entry *e);
/* Unlink an armed `e`. */
void weft__wheel_remove(weft__wheel *w, weft_timer_entry *e);
/* Advance to `now`: copy up to `max` due entries' wakers into `out` (the
 * entries become FIRED; the references are the caller's). Returns how
 * many; call again while it returns `max`. */
size_t weft__wheel_poll(weft__wheel *w, uint64_t now, weft_waker *out, size_t max);
/* Earliest tick at which an armed entry is due, or WEFT__WHEEL_NONE. */
uint64_t weft__wheel_next_due(const weft__wheel *w);

/* ---- conversions ---- */

/* The first tick at or after instant `t` (deadlines round up, so a timer
 * never fires early). */
uint64_t weft__wheel_tick_ceil(const weft__wheel *w, weft_instant t);
/* The tick containing instant `t` (the present rounds down). */
uint64_t weft__wheel_tick_floor(const weft__wheel *w, weft_instant t);
/* The instant at which tick `tick` begins. Inline: busy workers ask it
 * every scheduler tick while a timer is armed. */
static inline weft_instant weft__wheel_instant(const weft__wheel *w, uint64_t tick)
{
    return w->origin_ns + tick * 1000000u;
}

#endif
