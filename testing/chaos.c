/* The deterministic runtime's random stream and chaos knobs (see
 * chaos.h). The generator is splitmix64 (Steele, Lea, Flood: "Fast
 * splittable pseudorandom number generators", 2014): one 64-bit word of
 * state, every seed — 0 included — gives a full-period stream, and its
 * output passes BigCrush; a scheduler's choices need no more. */
#include "testing/chaos.h"
#include "core/errors.h"
#include "weft/time.h"

#include <stdlib.h>

static bool is_probability(double p)
{
    return p >= 0.0 && p <= 1.0; /* false for NaN too */
}

int weft__sim_chaos_check(const weft_sim_options *o)
{
    if (!is_probability(o->spurious_wake) || !is_probability(o->leaf_pending) ||
        !is_probability(o->timer_late))
        return -EINVAL;
    return 0;
}

void weft__sim_chaos_init(struct weft__sim_chaos *c, uint64_t seed, const weft_sim_options *o)
{
    c->state = seed;
    c->spurious_wake = o->spurious_wake;
    c->leaf_pending = o->leaf_pending;
    c->timer_late = o->timer_late;
    c->late_max_ms = o->timer_late_max_ms ? o->timer_late_max_ms : WEFT__SIM_LATE_MAX_MS;
}

uint64_t weft__sim_rand(struct weft__sim_chaos *c)
{
    uint64_t z = (c->state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

size_t weft__sim_rand_below(struct weft__sim_chaos *c, size_t n)
{
    /* The modulo bias (below 2^-40 for the sizes a run has) does not
     * matter here; determinism does. */
    return (size_t)(weft__sim_rand(c) % n);
}

bool weft__sim_chance(struct weft__sim_chaos *c, double p)
{
    if (p <= 0.0)
        return false;
    if (p >= 1.0)
        return true;
    /* 53 random bits as a double in [0, 1). */
    return (double)(weft__sim_rand(c) >> 11) * 0x1.0p-53 < p;
}

uint64_t weft__sim_lateness(struct weft__sim_chaos *c)
{
    if (!weft__sim_chance(c, c->timer_late))
        return 0;
    return WEFT_MS(1u + weft__sim_rand_below(c, c->late_max_ms));
}

int weft__sim_env_seed(uint64_t *seed)
{
    const char *s = getenv("WEFT_SEED");
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || *s == '-') {
        WEFT_MISUSE("WEFT_SEED='%s' is not a seed (a decimal or 0x-hex number)", s);
        return -EINVAL;
    }
    *seed = (uint64_t)v;
    return 1;
}
