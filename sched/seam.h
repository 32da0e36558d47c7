/* Private: the seam between tasks and the scheduler that runs them.
 *
 * A task (task.c, join.c) never calls a scheduler directly: it reaches the
 * scheduler that spawned it through this table, held by the task. The
 * multi-thread runtime (worker.c, wired up in runtime.c) implements it; a
 * second flavour — the deterministic runtime, polling every task on one
 * thread in a seeded order — implements the same three operations and
 * runs the same tasks unchanged. The timer driver is the seam's other half
 * (time/driver.h): a flavour hands its parked thread and a wake hook to it.
 *
 * task.c and join.c include neither worker.h nor runtime.h: this header
 * is their only way up. */
#ifndef WEFT_SCHED_SEAM_H
#define WEFT_SCHED_SEAM_H

#include <stdalign.h>
#include <stdbool.h>

#include "core/atomic.h"
#include "sched/slab.h"

struct weft__task;
struct weft__sched;

typedef struct weft__sched_ops {
    /* Queue `t`, which was just notified (spawned, woken or aborted while
     * idle); consumes the queue reference. Any thread. */
    void (*schedule)(struct weft__sched *s, struct weft__task *t);
    /* Queue `t` again after a poll during which it was woken, behind what
     * is already runnable (so yielding tasks take turns). Called by the
     * thread that polled it. */
    void (*requeue)(struct weft__sched *s, struct weft__task *t);
    /* A task's memory went back to the slab. Lifetime accounting: the
     * scheduler's memory goes with its last task, so this may free `s` and
     * is the caller's last access to it. Any thread. */
    void (*task_freed)(struct weft__sched *s);
} weft__sched_ops;

/* The part of a scheduler that tasks see. Embedded first in each
 * flavour's own structure. */
struct weft__sched {
    const weft__sched_ops *ops; /* read on every wake and task free */
    /* Tasks spawned while set record their spawn time (weft_rt_track_ages,
     * sched/dump.c). Written by any thread, read by every spawn; beside
     * `ops` because it is read as often and written almost never. */
    _Atomic bool track_ages;
    /* Task memory, and the registry of live tasks. On a line of its own:
     * threads off the workers allocate under its lock, and that must not
     * evict `ops` from the workers' caches (false sharing cost W2 a fifth
     * of its time). */
    alignas(WEFT_CACHE_LINE) struct weft__slab slab;
    /* Serialises the holds of concurrent task dumps, so that one dump
     * never reports a task another one holds as running (sched/dump.c).
     * Taken once per task a dump reads: on a line of its own, away from
     * `ops`. */
    alignas(WEFT_CACHE_LINE) weft__spinlock dump_lock;
};
/* A flavour zeroes its scheduler before use (track_ages off, dump_lock
 * free), then sets `ops` and initialises `slab`. */

/* The scheduler the calling thread runs tasks for (a worker, or a thread
 * inside weft_block_on), or NULL. */
struct weft__sched *weft__sched_current(void);
/* Make `s` the calling thread's scheduler; returns the previous one. */
struct weft__sched *weft__sched_enter(struct weft__sched *s);

#endif
