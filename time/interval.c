/* weft_interval: a stream of ticks on a sleep that is reset after each
 * tick, with tokio's policies for ticks a slow consumer missed. */
#include "weft/time.h"
#include "time/clock.h"

#include <string.h>

static weft_next interval_poll_next(weft_stream *st, weft_cx *cx, void *item);
static void interval_drop(weft_stream *st);

static const weft_stream_ops interval_ops = {
    .name = "weft_interval",
    .item_size = sizeof(weft_instant),
    .poll_next = interval_poll_next,
    .drop = interval_drop,
};

int weft_interval_at_init(weft_interval *iv, weft_instant start, weft_duration period,
                          weft_missed_tick missed)
{
    if (!iv || period == 0 || (missed != WEFT_MISSED_BURST && missed != WEFT_MISSED_DELAY &&
                               missed != WEFT_MISSED_SKIP))
        return -EINVAL;
    weft_stream_init(&iv->base, &interval_ops, WEFT_F_SEND);
    iv->period = period;
    iv->missed = missed;
    weft_sleep_until_init(&iv->sleep, start);
    return 0;
}

int weft_interval_init(weft_interval *iv, weft_duration period, weft_missed_tick missed)
{
    return weft_interval_at_init(iv, weft_now(), period, missed);
}

/* A tick later than this after its deadline counts as missed (timers are
 * late by up to a tick or two by nature; that is not a missed tick). */
#define MISSED_TOLERANCE WEFT_MS(5)

static weft_next interval_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    weft_interval *iv = (weft_interval *)st;
    if (weft_future_poll(&iv->sleep.base, cx, NULL) == WEFT_PENDING)
        return WEFT_NEXT_PENDING;
    weft_instant tick = iv->sleep.deadline;
    weft_instant now = weft_now();
    /* Saturating sums: a period too long to add makes the next tick one
     * that never comes, not one that wrapped into the past. */
    weft_instant next = weft__instant_add(tick, iv->period);
    if (now > weft__instant_add(tick, MISSED_TOLERANCE)) {
        switch (iv->missed) {
        case WEFT_MISSED_BURST:
            break;
        case WEFT_MISSED_DELAY:
            next = weft__instant_add(now, iv->period);
            break;
        case WEFT_MISSED_SKIP:
            /* The next point of the grid after now. */
            next = weft__instant_add(now, iv->period - (now - tick) % iv->period);
            break;
        }
    }
    weft_sleep_reset(&iv->sleep, next);
    memcpy(item, &tick, sizeof tick);
    return WEFT_NEXT_ITEM;
}

static void interval_drop(weft_stream *st)
{
    weft_future_drop(&((weft_interval *)st)->sleep.base);
}
