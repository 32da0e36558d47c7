/* The clock: weft_now() and deadlines computed from it. Every time future
 * reads time here, so a runtime with a clock of its own (virtual time under
 * the deterministic runtime) has one place to plug in. */
#include "time/clock.h"
#include "core/sys.h"

weft_instant weft_now(void)
{
    return weft__sys_now_ns();
}

weft_instant weft__deadline_after(weft_duration d)
{
    return weft__instant_add(weft_now(), d);
}
