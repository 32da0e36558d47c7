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
 * depends on the OS); tell the sim they exist with weft_sim_outside_begin.
 *
 * The cancel sweep (weft_cancel_sweep, at the end) runs one future under
 * test on fresh sims, dropping it after 0, 1, ... N polls, and checks the
 * caller's invariants after each drop: every await point becomes a
 * cancellation point. */
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

/* ---- the cancel sweep -------------------------------------------------------- */

/* What one run of a cancel sweep did, as its check sees it. */
typedef struct weft_sweep_run {
    uint64_t seed;      /* the seed of the run's sim */
    uint32_t k;         /* polls the future got before it was dropped */
    uint32_t polls;     /* N: polls it needed to complete with this seed */
    bool completed;     /* it returned READY at poll k (then k == N): its
                           output was written, then it was dropped */
    /* Right after the drop: clones of the future's waker still held
     * anywhere (0 when it took back every registration), and timers armed
     * in the sim (its own and its environment's). */
    uint32_t wakers_after_drop;
    uint64_t timers_after_drop;
    /* Wakes that reached the future's waker after the drop, until the
     * check (a dropped timer that still fired, a waiter left in a list). */
    uint32_t wakes_after_drop;
} weft_sweep_run;

/* The scenario of a cancel sweep: a future under test and its
 * environment, built afresh on a new sim runtime for every run. The sweep
 * calls these on the thread that called weft_cancel_sweep, one run at a
 * time, never concurrently. */
typedef struct weft_sweep_case {
    /* Build the scenario on `rt`, a fresh sim runtime: spawn the tasks the
     * future talks to, initialise the future in memory that stays where it
     * is until teardown (`ctx` is the usual place), and store it in `*fut`
     * and where its output goes in `*out` (left NULL when its output size
     * is 0). It runs inside the run, in the first turn of the task that
     * then polls the future: weft_now() is the sim's clock (deadlines come
     * out right) and `rt` is the current runtime; it must not drive the
     * sim (weft_block_on, weft_sim_run). The sweep polls the future and
     * drops it; build neither polls nor drops it. Returns 0, or a negative
     * errno, which stops the sweep (weft_cancel_sweep returns it; no
     * teardown follows). Required. */
    int (*build)(weft_rt *rt, void *ctx, weft_future **fut, void **out);
    /* Check the invariants once the run is over: the future was dropped
     * after `run->k` polls and the rest of the scenario ran until every
     * task completed. `rt` is still up, not running: the check may read it
     * (weft_rt_count; weft_sim_stats_get for the virtual clock, as
     * weft_now() outside a run is the monotonic one) and run more on it
     * (weft_block_on, weft_sim_run). Returns NULL when everything holds,
     * else what broke (static storage, or in `ctx`; copied at once).
     * NULL: only the sweep's own checks (below). */
    const char *(*check)(weft_rt *rt, void *ctx, const weft_sweep_run *run);
    /* Release what build made and the run left (join handles kept, a
     * borrowed future, an interval, memory), after the check, while the
     * sim is still up (its tasks have all completed, or were cancelled by
     * a stall): a timer can still be unlinked from its wheel. The sim is
     * shut down after. Called after every build that returned 0. NULL:
     * nothing to release. */
    void (*teardown)(void *ctx);
    void *ctx; /* handed to all three */
} weft_sweep_case;

/* Options of weft_cancel_sweep. Start from WEFT_SWEEP_OPTIONS_INIT. */
typedef struct weft_sweep_options {
    /* The sim of every run (chaos knobs, time limit, report). Its seed is
     * the first seed swept; failures are reported through its report
     * function (stderr by default), as the sim's own are. */
    weft_sim_options sim;
    /* Seeds to sweep: sim.seed, sim.seed + 1, ... (0 or 1: one). WEFT_SEED
     * in the environment makes it that one seed. */
    uint32_t seeds;
    /* A future that has not completed after this many polls fails the
     * sweep (0: WEFT_SWEEP_MAX_POLLS). Each seed costs N + 1 runs of up to
     * N polls each. */
    uint32_t max_polls;
} weft_sweep_options;

#define WEFT_SWEEP_OPTIONS_INIT { WEFT_SIM_OPTIONS_INIT, 1, 0 }
#define WEFT_SWEEP_MAX_POLLS 10000u

/* What a sweep found. */
typedef struct weft_sweep_result {
    uint32_t runs;      /* runs made (every seed, every k) */
    uint32_t seeds;     /* seeds swept */
    uint32_t polls;     /* N of the failing seed; else the largest N */
    bool failed;
    uint32_t k;         /* the failing run: polls before the drop */
    uint64_t seed;      /*              its seed (replay: WEFT_SEED) */
    char message[2048]; /* what failed, "" when nothing did */
} weft_sweep_result;

/* Run the cancel sweep of `c`: for each seed, build the scenario on a
 * fresh sim runtime and poll the future until it completes, counting its
 * polls N (that run is the one of k = N: complete, then dropped); then for
 * every k in 0..N-1, build afresh, poll the future k times, drop it, and
 * run the rest of the scenario until every task has completed. After each
 * run, `check` is called, then `teardown`, and the sim is shut down.
 * Exhaustive, not random: every await point the future passes becomes a
 * cancellation point. With one seed the runs of k differ from the
 * counting run only after the drop (same seed, same order); with chaos on,
 * N may differ from seed to seed.
 *
 * The future is polled in a task named "weft_cancel_sweep" (stall reports
 * and dumps show the future under it) with a waker of the sweep's that
 * forwards wakes to that task and counts the clones the future hands out.
 * A run fails, and the sweep stops there, when:
 *  - the check returned a message;
 *  - the rest of the scenario did not finish: a stall or the time limit
 *    after the drop (the sim's report, naming the blocked tasks and where
 *    they wait, is part of the message);
 *  - the future did not complete in the counting run (a stall, the time
 *    limit, or max_polls);
 *  - a run of k < N diverged from the counting run (the future completed
 *    before poll k, or stalled before it): the scenario depends on more
 *    than the seed;
 *  - a clone of the future's waker was still held after teardown: a
 *    registration that nothing will ever release.
 * Returns 0 when every run passed; -EPROTO when one failed (`result` says
 * which k and seed, and why; the report names them and how to replay);
 * -EINVAL (c or c->build NULL, a knob of opts->sim outside 0..1, WEFT_SEED
 * not a number, build's future NULL or malformed, or its output size
 * nonzero with `out` NULL); -EDEADLK (called inside a runtime: on a
 * worker, or from a future that weft_block_on or a sim runs); -ENOMEM; or
 * the first error build returned. `opts` NULL: one seed (0), no chaos.
 * `result` NULL: not stored. Any thread outside every runtime. */
WEFT_API WEFT_NODISCARD int weft_cancel_sweep(const weft_sweep_case *c,
                                              const weft_sweep_options *opts,
                                              weft_sweep_result *result);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TESTING_H */
