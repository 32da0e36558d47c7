/* weft — time: the monotonic clock, sleep, timeout and interval.
 *
 * Timers live in a hierarchical timer wheel owned by the runtime (6 levels
 * of 64 slots, 1 ms resolution); a parked worker sleeps until the next
 * deadline and fires due timers, busy workers fire them as they go. A timer
 * fires no earlier than its deadline (deadlines are rounded up to the next
 * millisecond) and as soon after it as a worker gets to it.
 *
 * The futures here are caller-owned and pinned once polled, like every
 * future. Their first poll must happen on a runtime's worker or inside
 * weft_block_on (they register with weft_rt_current()); otherwise the poll
 * reports misuse and stays pending. */
#ifndef WEFT_TIME_H
#define WEFT_TIME_H

#include "weft/future.h"
#include "weft/iter.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Instants and durations are nanoseconds on the monotonic clock. */
typedef uint64_t weft_instant;
typedef uint64_t weft_duration;

/* The latest instant and the longest duration: a deadline that never comes.
 * The duration macros below, the deadlines the init functions compute
 * (now + a duration) and an interval's next tick saturate to it instead
 * of wrapping. */
#define WEFT_NEVER UINT64_MAX

/* Durations from a count of units. `x` is any arithmetic value, evaluated
 * once (these are calls, not constant expressions). They saturate instead
 * of wrapping: a count of zero or less gives 0 (a deadline of now, so
 * already due), a count too large for 64 bits of nanoseconds gives
 * WEFT_NEVER, and a fraction is cut off (WEFT_SEC(1.5) is 1 s). */
#define WEFT_NS(x) WEFT__DURATION((x), 1u)
#define WEFT_US(x) WEFT__DURATION((x), 1000u)
#define WEFT_MS(x) WEFT__DURATION((x), 1000000u)
#define WEFT_SEC(x) WEFT__DURATION((x), 1000000000u)

/* The helpers behind them: one per kind of count, so that the sign of `x`
 * is read in its own type (a negative count is not a huge unsigned one). */
static inline weft_duration weft__duration_u(unsigned long long n, weft_duration unit)
{
    return n > WEFT_NEVER / unit ? WEFT_NEVER : (weft_duration)n * unit;
}

static inline weft_duration weft__duration_s(long long n, weft_duration unit)
{
    return n <= 0 ? 0 : weft__duration_u((unsigned long long)n, unit);
}

static inline weft_duration weft__duration_f(long double n, weft_duration unit)
{
    if (!(n >= 1)) /* below one unit, negative, or NaN */
        return 0;
    return n >= 18446744073709551616.0L ? WEFT_NEVER /* 2^64 */
                                        : weft__duration_u((unsigned long long)n, unit);
}

#ifdef __cplusplus
} /* extern "C" */
#include <limits>
template <typename T> inline weft_duration weft__duration(T n, weft_duration unit)
{
    return !std::numeric_limits<T>::is_integer ? weft__duration_f((long double)n, unit)
           : std::numeric_limits<T>::is_signed ? weft__duration_s((long long)n, unit)
                                               : weft__duration_u((unsigned long long)n, unit);
}
extern "C" {
#define WEFT__DURATION(x, unit) weft__duration((x), (weft_duration)(unit))
#else
#define WEFT__DURATION(x, unit)                                                    \
    _Generic((x) + 0,                                                              \
        unsigned: weft__duration_u, unsigned long: weft__duration_u,               \
        unsigned long long: weft__duration_u,                                      \
        float: weft__duration_f, double: weft__duration_f,                         \
        long double: weft__duration_f,                                             \
        default: weft__duration_s)((x), (weft_duration)(unit))
#endif

/* The current monotonic time. Any thread. On the thread running a sim
 * runtime (weft/testing.h), while it runs, the sim's virtual clock. */
WEFT_API weft_instant weft_now(void);

/* A timer's registration in the wheel. Embedded in the futures below;
 * its fields are weft's. */
typedef struct weft_timer_entry {
    struct weft_timer_entry *prev, *next;
    void *driver_;               /* the timer driver it is armed in */
    weft_waker waker_;           /* guarded by the driver's lock */
    uint64_t when_;              /* deadline in wheel ticks (ms) */
    WEFT_ATOMIC(uint32_t) state_; /* idle / armed / fired */
    uint8_t level_, slot_;
    uint16_t reserved_;
} weft_timer_entry;

/* ---- sleep ------------------------------------------------------------------ */

/* Completes (output: none) once `deadline` has passed. Send.
 * Cancel safety: dropping it unlinks the timer in O(1); nothing is lost. */
typedef struct weft_sleep {
    weft_future base;
    weft_instant deadline;
    weft_timer_entry entry;
} weft_sleep;

/* Sleep for `d` from now (the deadline is taken at init). */
WEFT_API void weft_sleep_init(weft_sleep *s, weft_duration d);
/* Sleep until `deadline`. */
WEFT_API void weft_sleep_until_init(weft_sleep *s, weft_instant deadline);
/* Move the deadline of a sleep (pending, fired or never polled): it will
 * complete once the new deadline passes, and may be polled again even if
 * it already completed. The caller owns `s`; not concurrently with a poll. */
WEFT_API void weft_sleep_reset(weft_sleep *s, weft_instant deadline);

/* ---- timeout ----------------------------------------------------------------- */

/* Runs an inner future with a deadline, in one of two forms: the owning
 * timeout (weft_timeout_init) takes `inner` over and drops it; the
 * borrowing one (weft_timeout_borrow_init) polls the caller's `inner`
 * where it is and never drops it, so that after the deadline the caller
 * still has it (a join handle can then be aborted, or waited for again).
 * Output: the inner future's output (its size is
 * weft_future_out_size(inner)); `status` is then 0, or -ETIMEDOUT if the
 * deadline passed first, and the output bytes are zero. The inner future
 * is polled before the timer, so an inner that is ready in the same tick
 * as the deadline wins. Send when `inner` is. `status` is a plain field,
 * still readable after the timeout was dropped. */
typedef struct weft_timeout {
    weft_future base;
    union {
        ptrdiff_t off;    /* owning: inner's address minus the timeout's */
        weft_future *ptr; /* borrowing: the caller's inner future */
    } inner_;
    int status;
    bool inner_done; /* finished with `inner` (the owning form dropped it) */
    weft_sleep sleep;
} weft_timeout;

/* The owning form. The timeout owns `inner` from init on and drops it
 * exactly once: at -ETIMEDOUT, at completion, or when the timeout is
 * dropped first. It finds `inner` by its offset from the timeout, so the
 * two may be moved (memcpy'd, e.g. by weft_spawn) together before the
 * first poll — keep them in one struct — but never one without the other.
 * Cancel safety: dropping a pending timeout drops `inner`; what is lost is
 * what `inner` would lose.
 * Returns 0, or -EINVAL (NULL arguments, inner without poll function). On
 * error the caller keeps `inner`. */
WEFT_API WEFT_NODISCARD int weft_timeout_init(weft_timeout *t, weft_future *inner,
                                              weft_duration d);
/* Same with an absolute deadline. */
WEFT_API WEFT_NODISCARD int weft_timeout_at_init(weft_timeout *t, weft_future *inner,
                                                 weft_instant deadline);

/* The borrowing form: `inner` stays the caller's. The timeout keeps its
 * address and polls it there; it never drops it.
 * Pinning: `inner` must stay where it is, alive and not dropped, until the
 * timeout is dropped (a weft_spawn'ed timeout: until its task is done).
 * It may have been polled before, where it is (by an earlier timeout, say).
 * The timeout itself is a future like any other: movable until its first
 * poll (without `inner`, which stays put), pinned from then on.
 * While the timeout lives, only it polls `inner`; the caller neither polls
 * nor drops it. Afterwards: at status 0 `inner` has finished (its output
 * was delivered here) — drop it, never poll it again; at -ETIMEDOUT, or
 * if the timeout was dropped first, `inner` is untouched and still
 * pending — poll it again (another timeout, weft_block_on, an await),
 * abort it if it is a join handle, or drop it.
 * Cancel safety: dropping a pending borrowing timeout loses nothing: its
 * timer is unlinked and `inner` is left as it was. `inner` may keep the
 * waker of its last poll until its next one, so its owner may see one
 * spurious wake.
 * Returns 0, or -EINVAL (NULL arguments, malformed ops, and in debug
 * builds an inner that already finished or moved since its first poll,
 * reported by name). Any thread that owns `inner`. */
WEFT_API WEFT_NODISCARD int weft_timeout_borrow_init(weft_timeout *t, weft_future *inner,
                                                     weft_duration d);
/* Same with an absolute deadline. */
WEFT_API WEFT_NODISCARD int weft_timeout_borrow_at_init(weft_timeout *t, weft_future *inner,
                                                        weft_instant deadline);

/* ---- interval ------------------------------------------------------------------ */

/* What an interval does when ticks were missed (its consumer was late). */
typedef enum weft_missed_tick {
    /* Fire the missed ticks back to back until caught up, then continue
     * on the original schedule (tokio's Burst). */
    WEFT_MISSED_BURST = 0,
    /* Fire one tick now, then continue every period from now. */
    WEFT_MISSED_DELAY = 1,
    /* Fire one tick now, then continue on the original schedule, skipping
     * the ticks that were missed. */
    WEFT_MISSED_SKIP = 2
} weft_missed_tick;

/* A stream of ticks: the first is immediate, then one every `period`.
 * Items are weft_instant: the scheduled time of each tick. Never DONE.
 * Send. Cancel safety: dropping a pending next loses nothing (the stream
 * keeps its schedule); dropping the interval unlinks its timer. */
typedef struct weft_interval {
    weft_stream base;
    weft_duration period;
    weft_missed_tick missed;
    weft_sleep sleep;
} weft_interval;

/* Returns 0, or -EINVAL (period 0, unknown policy, NULL). */
WEFT_API WEFT_NODISCARD int weft_interval_init(weft_interval *iv, weft_duration period,
                                               weft_missed_tick missed);
/* Same, with the first tick at `start`. */
WEFT_API WEFT_NODISCARD int weft_interval_at_init(weft_interval *iv, weft_instant start,
                                                  weft_duration period,
                                                  weft_missed_tick missed);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TIME_H */
