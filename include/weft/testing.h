/* weft — testing: the deterministic runtime (sim mode).
 *
 * A sim runtime is a weft_rt that runs its tasks on the thread that calls
 * into it (weft_block_on, weft_sim_run), one poll at a time:
 *  - runnable tasks are polled in a seeded pseudo-random order, not FIFO,
 *    so code that depends on scheduling order fails here;
 *  - time is virtual: weft_now() on the thread running the sim reads the
 *    sim's clock, which jumps to the next timer deadline only when no task
 *    is runnable (a ten-minute sleep costs nothing);
 *  - chaos knobs make what a correct future must tolerate happen often:
 *    spurious wakes, library futures returning PENDING first, late timers;
 *  - one seed replays the whole run, and a run has a trace hash (which
 *    task was polled when, and what it returned) to prove it;
 *  - when every task waits for something that can no longer happen, the
 *    run stops with a report naming the blocked tasks instead of hanging.
 * Every API that takes or finds a runtime works on it unchanged: spawn
 * (from tasks and from outside), spawn_local, join, abort, detach, yield,
 * sleep, timeout, interval, stats. docs/testing.md shows how to test your
 * own futures with it.
 *
 * The run is deterministic while only the running thread touches the sim.
 * Other threads may spawn onto it and wake its tasks (their order then
 * depends on the OS); tell the sim they exist with weft_sim_outside_begin. */
#ifndef WEFT_TESTING_H
#define WEFT_TESTING_H

#include "weft/rt.h"
#include "weft/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Chaos knob values: each knob is a probability, so any value in between
 * works too. */
#define WEFT_SIM_OFF 0.0
#define WEFT_SIM_ON 1.0

/* Options of a sim runtime. Start from WEFT_SIM_OPTIONS_INIT. */
typedef struct weft_sim_options {
    /* The seed of every random decision of the run. The environment
     * variable WEFT_SEED (decimal or 0x-hex), when set, overrides it for
     * every sim runtime: replay a failing test without editing it. */
    uint64_t seed;
    /* Spurious wakes: after a poll that followed a wake from elsewhere
     * and left the task waiting, the task is woken once more with this
     * probability, and polled with nothing changed. Finds futures that
     * assume "polled means ready" (ON: after every such poll). */
    double spurious_wake;
    /* The library's own leaf futures (weft_yield, weft_sleep, weft_timeout,
     * join handles) return PENDING at the top of a poll with this
     * probability, after waking their task, never twice in a row
     * (futures-test's interleave_pending). Finds callers that lose state
     * across an await point (ON: every await point, once each time). */
    double leaf_pending;
    /* Each time the clock jumps to a timer's deadline, it overshoots by
     * 1..timer_late_max_ms milliseconds with this probability, so the
     * timers due then fire late and together. Finds code that assumes a
     * timer fires on time (an interval's missed ticks, timeout races). */
    double timer_late;
    uint32_t timer_late_max_ms; /* 0: 20 */
    /* Stop the run with an error when virtual time would pass this much
     * beyond the start (0: no limit); catches a run that a forever
     * ticking timer keeps going. */
    weft_duration time_limit;
    /* Where a failed run's report goes (stall, time limit, diverging
     * replay): the message names the seed and how to replay it. NULL:
     * stderr. Called on the thread running the sim. */
    void (*report)(const char *msg, void *arg);
    void *report_arg;
} weft_sim_options;

#define WEFT_SIM_OPTIONS_INIT { 0, WEFT_SIM_OFF, WEFT_SIM_OFF, WEFT_SIM_OFF, 0, 0, NULL, NULL }

/* The instant virtual time starts at (one hour: far enough from zero that
 * subtracting a duration from weft_now() does not wrap). */
#define WEFT_SIM_START WEFT_SEC(3600)

/* Create a sim runtime. `opts` NULL means defaults (seed 0, no chaos).
 * Returns 0 and stores it in `*out`, or -EINVAL (out NULL, a knob outside
 * 0..1, WEFT_SEED set but not a number), or -ENOMEM. No thread is
 * started. Pair with weft_rt_shutdown (which cancels the tasks left, as
 * for any runtime). Any thread. */
WEFT_API WEFT_NODISCARD int weft_rt_new_sim(weft_rt **out, const weft_sim_options *opts);

/* weft_block_on on a sim runtime drives it: the future runs as a task
 * among the others (in the seeded order), and the call returns once it
 * completes; other tasks still runnable stay queued for the next run.
 * Besides its usual codes it returns -EDEADLK when the run stalled (the
 * future and every other blocked task were cancelled: the report names
 * them), -ETIMEDOUT when the time limit was reached (the same), -EBUSY
 * when another thread is running the sim, and -EDEADLK (misuse) when
 * called from inside the sim's own tasks. */

/* Run the sim until every task has completed. Returns 0; -EDEADLK when
 * tasks remain that nothing can wake any more (nothing runnable, no
 * timer armed, no outside hold): they are cancelled, their join handles
 * yield -ECANCELED, and the report names them; -ETIMEDOUT at the time
 * limit (the same); -EINVAL (rt NULL or not a sim); -EBUSY (another
 * thread is running it); -EDEADLK (misuse: called from its own tasks).
 * Any thread that is not a worker. */
WEFT_API WEFT_NODISCARD int weft_sim_run(weft_rt *rt);

/* Something outside the sim (another thread, a host loop) may still wake
 * one of its tasks or spawn onto it. While at least one such hold is
 * open, a run with nothing runnable waits on its thread for that wake —
 * without advancing virtual time: only a sim whose tasks all wait on each
 * other or on timers is idle enough for time to move (Go's synctest rule)
 * — instead of advancing the clock or reporting a stall. Returns 0 or
 * -EINVAL. Pair each begin with one end. Any thread. */
WEFT_API WEFT_NODISCARD int weft_sim_outside_begin(weft_rt *rt);
WEFT_API void weft_sim_outside_end(weft_rt *rt);

typedef struct weft_sim_stats {
    uint64_t seed;            /* the seed in use (WEFT_SEED or the options') */
    uint64_t trace_hash;      /* over every poll so far: which task, its
                                 place in the order, what it returned; and
                                 every jump of the clock */
    weft_instant now;         /* the virtual clock */
    uint64_t polls;           /* task polls (scheduling turns) */
    uint64_t spurious_wakes;  /* wakes sent by the spurious_wake knob */
    uint64_t leaf_pendings;   /* PENDINGs returned by the leaf_pending knob */
    uint64_t late_timers;     /* clock jumps that overshot (timer_late) */
    uint64_t clock_jumps;     /* times the clock moved to a deadline */
    uint64_t outside_waits;   /* times the run waited for an outside wake */
} weft_sim_stats;

/* Copy the sim's counters into `*out`. Returns 0, or -EINVAL (a NULL
 * argument, or rt is not a sim). Any thread while no run is in progress;
 * the running thread at any time. */
WEFT_API WEFT_NODISCARD int weft_sim_stats_get(weft_rt *rt, weft_sim_stats *out);

/* A test scenario for weft_sim_check_replay: what the test does with a
 * fresh sim runtime (spawn, block_on, ...). Returns 0 or an error code. */
typedef int weft_sim_scenario(weft_rt *rt, void *arg);

/* Run `scenario` twice, each time on a new sim runtime made from `opts`
 * (so with the same seed), shut each down, and compare the trace hashes:
 * a scenario that depends on anything but the seed (the wall clock,
 * global state, another thread) diverges. Returns 0 and stores the hash
 * in `*hash` (NULL: not stored) when both runs returned 0 with the same
 * trace; -EPROTO when the traces differ (reported with the seed); the
 * first nonzero value a run returned; or an error of weft_rt_new_sim.
 * Any thread that is not a worker. */
WEFT_API WEFT_NODISCARD int weft_sim_check_replay(const weft_sim_options *opts,
                                                  weft_sim_scenario *scenario, void *arg,
                                                  uint64_t *hash);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TESTING_H */
