/* Private: the random numbers the library's own decisions draw (select's
 * fair start). On a thread that runs the deterministic runtime they come
 * from its seeded stream, so one seed replays the run's choices; anywhere
 * else from a per-thread xorshift, which needs no lock and no seed. */
#ifndef WEFT_CORE_RAND_H
#define WEFT_CORE_RAND_H

#include <stdint.h>

/* A seeded source a runtime installs on the thread it runs on. */
typedef struct weft__rand_source {
    uint64_t (*next)(struct weft__rand_source *src);
} weft__rand_source;

/* Install `src` (NULL: none) on the calling thread; returns the previous. */
weft__rand_source *weft__rand_enter(weft__rand_source *src);

/* Uniform in [0, n) (n > 0). */
uint32_t weft__rand_below(uint32_t n);

#endif
