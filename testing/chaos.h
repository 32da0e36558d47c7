/* Private: the deterministic runtime's randomness — one seeded stream
 * that every random decision of a run draws from, in the order the run
 * makes them (so one seed replays the run) — and the chaos knobs that
 * decide with it. Owned by the thread running the sim. */
#ifndef WEFT_TESTING_CHAOS_H
#define WEFT_TESTING_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/testing.h"

struct weft__sim_chaos {
    uint64_t state; /* splitmix64 */
    double spurious_wake, leaf_pending, timer_late;
    uint32_t late_max_ms;
};

/* Default of weft_sim_options.timer_late_max_ms. */
#define WEFT__SIM_LATE_MAX_MS 20u

/* Returns 0, or -EINVAL when a knob of `o` is not a probability. */
int weft__sim_chaos_check(const weft_sim_options *o);
void weft__sim_chaos_init(struct weft__sim_chaos *c, uint64_t seed, const weft_sim_options *o);

/* The next 64 random bits. */
uint64_t weft__sim_rand(struct weft__sim_chaos *c);
/* Uniform in [0, n) (n > 0). */
size_t weft__sim_rand_below(struct weft__sim_chaos *c, size_t n);
/* True with probability `p`. Draws nothing when p is 0 or 1, so a knob
 * that is off or on leaves the rest of the run's decisions as they were. */
bool weft__sim_chance(struct weft__sim_chaos *c, double p);
/* How late the clock's next jump lands: 0, or (with probability
 * timer_late) 1..late_max_ms milliseconds. */
uint64_t weft__sim_lateness(struct weft__sim_chaos *c);

/* The seed from the environment: returns 1 and stores WEFT_SEED's value
 * in `*seed`, 0 when it is not set, -EINVAL when it is not a number. */
int weft__sim_env_seed(uint64_t *seed);

#endif
