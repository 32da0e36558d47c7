/* Private: instants from durations, saturating instead of wrapping. */
#ifndef WEFT_TIME_CLOCK_H
#define WEFT_TIME_CLOCK_H

#include "weft/time.h"

/* The instant `d` after `t`, or WEFT_NEVER when that would not fit: a
 * deadline too far to represent is one that never comes, never one that
 * wrapped round into the past. */
static inline weft_instant weft__instant_add(weft_instant t, weft_duration d)
{
    return d > WEFT_NEVER - t ? WEFT_NEVER : t + d;
}

/* The instant `d` after now (saturating as weft__instant_add). */
weft_instant weft__deadline_after(weft_duration d);

#endif
