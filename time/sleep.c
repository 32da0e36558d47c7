/* weft_sleep: a future that completes once its deadline has passed, armed
 * in the current runtime's timer driver at its first pending poll. */
#include "weft/time.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/future.h"
#include "time/clock.h"
#include "time/driver.h"

#include <string.h>

static weft_poll sleep_poll(weft_future *f, weft_cx *cx, void *out);
static void sleep_drop(weft_future *f);

static const weft_future_ops sleep_ops = {
    .name = "weft_sleep", .out_size = 0, .poll = sleep_poll, .drop = sleep_drop,
};

void weft_sleep_until_init(weft_sleep *s, weft_instant deadline)
{
    weft_future_init(&s->base, &sleep_ops, WEFT_F_SEND);
    s->deadline = deadline;
    memset(&s->entry, 0, sizeof s->entry);
    weft_atomic_init(&s->entry.state_, WEFT__TIMER_IDLE);
}

void weft_sleep_init(weft_sleep *s, weft_duration d)
{
    weft_sleep_until_init(s, weft__deadline_after(d));
}

void weft_sleep_reset(weft_sleep *s, weft_instant deadline)
{
    weft__timer_cancel(&s->entry);
    /* Relaxed: the entry is idle or fired; nobody else reads it now. */
    weft_atomic_store_relaxed(&s->entry.state_, WEFT__TIMER_IDLE);
    s->deadline = deadline;
    s->base.flags &= ~WEFT_F__DONE; /* it may complete again */
}

static weft_poll sleep_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_sleep *s = (weft_sleep *)f;
    (void)out;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    /* Acquire: pairs with the wheel's release store of FIRED. */
    uint32_t st = weft_atomic_load_acquire(&s->entry.state_);
    if (st == WEFT__TIMER_FIRED)
        return WEFT_READY;
    if (st == WEFT__TIMER_ARMED) {
        if (!weft__timer_update_waker(&s->entry, cx->waker))
            return WEFT_READY; /* fired meanwhile */
        return WEFT_PENDING;
    }
    if (weft_now() >= s->deadline)
        return WEFT_READY;
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    weft__timers *t = weft__timers_current();
    if (!t) {
        WEFT_MISUSE("'%s' first polled outside a runtime (no timer wheel)",
                    weft__future_name(f));
        return WEFT_PENDING;
    }
    if (!weft__timers_arm(t, &s->entry, s->deadline, cx->waker))
        return WEFT_READY;
    return WEFT_PENDING;
}

static void sleep_drop(weft_future *f)
{
    weft__timer_cancel(&((weft_sleep *)f)->entry);
}
