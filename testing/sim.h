/* Private: the deterministic runtime — a weft_rt of its own flavour whose
 * tasks run on the thread that drives it, one poll at a time, in a seeded
 * order, on virtual time (see weft/testing.h for the contract and
 * docs/testing.md for the design). */
#ifndef WEFT_TESTING_SIM_H
#define WEFT_TESTING_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/testing.h"
#include "core/chaos.h"
#include "core/park.h"
#include "core/rand.h"
#include "sched/injector.h"
#include "sched/runtime.h"
#include "testing/chaos.h"

/* How a runnable entry came to be: a wake from elsewhere (a spawn, another
 * task, a timer, another thread, an abort), the task waking itself during
 * its poll, or the spurious_wake knob. Only the first kind may be followed
 * by a spurious wake, so spurious wakes cannot feed each other. */
enum { WEFT__SIM_WAKE, WEFT__SIM_SELF, WEFT__SIM_SPURIOUS };

struct weft__sim_entry {
    struct weft__task *task; /* holds the queue reference */
    unsigned kind;
};

struct weft__sim {
    /* The runtime users hold. Its pool has no workers: pool.sched is this
     * flavour's seam (ops) and task memory (slab), pool.timers its wheel,
     * pool.stopping set at shutdown. First, so a task's scheduler pointer
     * leads here (see weft__rt_of). */
    struct weft_rt rt;

    /* ---- the thread running the sim (one at a time: `running`) ---- */
    weft_sim_options opts;
    uint64_t seed;
    struct weft__sim_chaos chaos;
    weft__chaos leaf;       /* installed for leaf futures while running */
    weft__rand_source rand; /* the library's random choices, from `chaos` */
    weft_instant now;       /* the virtual clock (weft__clock_virtual) */
    uint64_t trace;
    struct weft__sim_entry *run; /* runnable tasks, in no order */
    size_t nrun, cap;
    unsigned wake_kind;     /* kind of what schedule() queues now */
    uint64_t polls, spurious_wakes, leaf_pendings, late_timers, clock_jumps,
        outside_waits, io_events;

    /* ---- any thread ---- */
    /* Tasks queued from other threads, or from outside a run. */
    weft__injector remote;
    weft__parker parker;     /* the running thread waits here for them */
    _Atomic unsigned outside; /* open weft_sim_outside_begin holds */
    _Atomic bool running;    /* a thread is running the sim */
    _Atomic bool closed;     /* shutdown released the queues */
};

/* The sim behind `rt`, or NULL when `rt` is NULL or another flavour. */
struct weft__sim *weft__sim_of(weft_rt *rt);

/* Hand a failed run's report to the options' report function (stderr by
 * default). */
void weft__sim_report(const weft_sim_options *o, const char *msg);

#endif
