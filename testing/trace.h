/* Private: the trace hash of a deterministic run — a 64-bit digest of
 * every event that decides how the run goes (which task was polled, its
 * place among the runnable ones, what the poll returned; every jump of
 * the clock; every chaos decision), in order. Two runs with one seed must
 * end with one hash: a difference means the run depended on something
 * besides the seed. */
#ifndef WEFT_TESTING_TRACE_H
#define WEFT_TESTING_TRACE_H

#include <stdint.h>

/* Event kinds (the first word of each event). */
enum {
    WEFT__TRACE_POLL = 1,  /* runnable count, index picked, entry kind, name, outcome */
    WEFT__TRACE_CLOCK,     /* virtual time since the start */
    WEFT__TRACE_LEAF,      /* a chaos PENDING of a leaf future */
    WEFT__TRACE_SPURIOUS,  /* a spurious wake */
    WEFT__TRACE_STALL,     /* the run stopped: blocked task count */
    WEFT__TRACE_IO,        /* a reactor turn that saw events */
};

/* Fold one word into the hash `h`. */
static inline uint64_t weft__trace_add(uint64_t h, uint64_t v)
{
    /* A multiply-xorshift round per word (the mixer of splitmix64): every
     * input bit reaches every output bit, and order matters. */
    h = (h ^ v) * 0xbf58476d1ce4e5b9u;
    return h ^ (h >> 31);
}

/* The trace's starting value. */
#define WEFT__TRACE_INIT 0xcbf29ce484222325u

/* A name's hash (FNV-1a), so that the trace tells tasks apart by what
 * they run and not by their addresses, which differ between runs. */
uint64_t weft__trace_name(const char *s);

#endif
