/* Test support: small seeded PRNGs, so that every random choice a test or
 * stress program makes replays from its seed. The state is 8 bytes, small
 * enough to live in a task, so each task's choices replay whatever the
 * interleaving. Header-only, no cmocka: the stress programs use it too. */
#ifndef WEFT_TESTS_RNG_H
#define WEFT_TESTS_RNG_H

#include <stdint.h>

/* splitmix64's finaliser: derives independent seeds from related ones
 * (a run's seed plus a round number, a parent's seed plus a child's). */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* xorshift64*: the next 64 random bits. `*s` must not be 0 (xorshift
 * cannot leave 0); rng_seed gives a good start. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* The next 32 random bits: the high half, xorshift64*'s best. */
static inline uint32_t rng_next32(uint64_t *s)
{
    return (uint32_t)(rng_next(s) >> 32);
}

/* A PRNG state for `seed` (any value, 0 included). */
static inline uint64_t rng_seed(uint64_t seed)
{
    uint64_t s = mix64(seed);
    return s ? s : 1;
}

#endif
