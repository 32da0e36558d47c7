/* The ends of mpsc and mpmc channels for threads that run no tasks: the
 * send and receive futures polled to completion on the calling thread,
 * which parks in between (sched/block_on.h). */
#include "weft/channels.h"
#include "core/errors.h"
#include "sched/block_on.h"

#include <errno.h>

int weft_chan_send_blocking(weft_chan_tx *tx, const void *item)
{
    weft_chan_send f;
    int out = 0;
    weft_chan_send_init(&f, tx, item);
    int r = weft__block_poll(&f.base, &out, "weft_chan_send_blocking");
    weft_future_drop(&f.base);
    return r < 0 ? r : out;
}

int weft_chan_recv_blocking(weft_chan_rx *rx, void *item)
{
    weft_chan_recv f;
    int out = 0;
    weft_chan_recv_init(&f, rx, item);
    int r = weft__block_poll(&f.base, &out, "weft_chan_recv_blocking");
    weft_future_drop(&f.base);
    return r < 0 ? r : out;
}

long weft_chan_recv_many_blocking(weft_chan_rx *rx, void *items, size_t max)
{
    weft_chan_recv_many f;
    size_t out = 0;
    if (max == 0) {
        WEFT_MISUSE("weft_chan_recv_many_blocking: max 0");
        return -EINVAL;
    }
    weft_chan_recv_many_init(&f, rx, items, max);
    int r = weft__block_poll(&f.base, &out, "weft_chan_recv_many_blocking");
    weft_future_drop(&f.base);
    if (r < 0)
        return r;
    return out ? (long)out : -EPIPE;
}
