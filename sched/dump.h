/* Private: what task dumps read of a future, for the deterministic
 * runtime's stall reports too (testing/sim.c). */
#ifndef WEFT_SCHED_DUMP_H
#define WEFT_SCHED_DUMP_H

#include "weft/rt.h"

/* The await chain that starts at `f`, outermost first, into `fr` (room for
 * `max`): each coroutine made with WEFT_FN_INIT at its resume line, then
 * the child it awaits, down to the first future that is not such a
 * coroutine (line 0). Returns the frames written. The caller keeps every
 * future in the chain from being polled meanwhile (a dump's hold; the
 * sim's own thread). */
unsigned weft__await_chain(const weft_future *f, weft_task_frame *fr, unsigned max);

#endif
