/* Private: instants from durations, saturating instead of wrapping. */
#ifndef WEFT_TIME_CLOCK_H
#define WEFT_TIME_CLOCK_H

#include "weft/time.h"

/* The instant `d` after now (UINT64_MAX when that would overflow). */
weft_instant weft__deadline_after(weft_duration d);

#endif
