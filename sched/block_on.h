/* Private: polling a future to completion on a thread that does not run
 * tasks, for the `_blocking` waits of sync/ (a server thread taking an
 * async mutex). */
#ifndef WEFT_SCHED_BLOCK_ON_H
#define WEFT_SCHED_BLOCK_ON_H

#include "weft/future.h"

/* Poll `fut` where it is until READY (its output to `out`), parking the
 * calling thread between polls; it does not drop `fut`. No runtime is
 * entered: for futures that need none (sync waits), not timers. Returns
 * 0, -EDEADLK (misuse, reported naming `what`: the calling thread is a
 * worker or runs a sim, whose tasks it would block; `fut` was not
 * polled) or -ENOMEM (`fut` was not polled). */
int weft__block_poll(weft_future *fut, void *out, const char *what);

#endif
