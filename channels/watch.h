/* Private: what the watch channel's tests may look at. */
#ifndef WEFT_CHANNELS_WATCH_H
#define WEFT_CHANNELS_WATCH_H

#include <stddef.h>

#include "weft/channels.h"

/* changed() futures queued on `w` now (under its queue's lock: a
 * snapshot). */
size_t weft__watch_waiters(weft_watch *w);

#endif
