/* The library's random numbers (see rand.h). */
#include "core/rand.h"

static _Thread_local weft__rand_source *tl_source;
static _Thread_local uint64_t tl_state;

weft__rand_source *weft__rand_enter(weft__rand_source *src)
{
    weft__rand_source *prev = tl_source;
    tl_source = src;
    return prev;
}

/* xorshift64*: good enough to spread a select's first branch, and the
 * state is the thread's own. It starts from the address of that state,
 * which differs between threads (and, with ASLR, between runs). */
static uint64_t thread_next(void)
{
    uint64_t x = tl_state;
    if (x == 0)
        x = (uint64_t)(uintptr_t)&tl_state * 0x9e3779b97f4a7c15u | 1u;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tl_state = x;
    return x * 0x2545f4914f6cdd1du;
}

uint32_t weft__rand_below(uint32_t n)
{
    uint64_t r = tl_source ? tl_source->next(tl_source) : thread_next();
    /* Multiply-shift: uniform enough for n far below 2^32, no division. */
    return (uint32_t)(((r >> 32) * (uint64_t)n) >> 32);
}
