/* What every stress program shares: the command line, the run's seed,
 * failure reports that say how to replay, a monotonic clock reading and
 * the hang watchdog. The per-task PRNG is the tests' (tests/support/rng.h). */
#ifndef WEFT_STRESS_COMMON_H
#define WEFT_STRESS_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "support/rng.h" /* mix64, rng_next32, rng_seed: the per-task PRNG */

typedef struct stress_options {
    unsigned threads; /* workers per runtime */
    uint64_t iters;   /* stop after this many rounds; 0: only the time box */
    uint64_t seed;    /* the run's seed; every round's seed derives from it */
    double seconds;   /* time box */
} stress_options;

/* Parses --threads N, --iters N, --seed S and --seconds T into `opt`, with
 * the documented defaults. A bad command line prints the usage line for
 * `program` and exits with status 2. Without --seed the seed comes from
 * the clock. Prints `seed=S` as the first line of output (flushed, so it
 * survives an abort) because that is what a failed run is replayed from. */
void stress_parse_options(int argc, char **argv, const char *program, stress_options *opt);

/* Failure reports name the program, the seed and the round in progress
 * (`*round`, kept up to date by the program), and print the command that
 * replays the run. Call once, right after stress_parse_options. */
void stress_failure_context(const char *program, const stress_options *opt,
                            _Atomic unsigned *round);

/* Report a failed invariant (printf-style) with the replay line; abort. */
__attribute__((format(printf, 1, 2), noreturn)) void stress_die(const char *fmt, ...);

#define STRESS_ENSURE(cond, ...)                                              \
    do {                                                                      \
        if (!(cond))                                                          \
            stress_die(__VA_ARGS__);                                          \
    } while (0)

/* A weft misuse handler that fails the run: weft must never see misuse
 * from a correct program. */
void stress_misuse_is_fatal(const char *msg, void *arg);

/* Run rounds until `opt->iters` rounds (0: no limit) or the time box of
 * `opt->seconds` is used up (at least one round always runs). Round r
 * gets the seed mix64(opt->seed + r), so a run replays from its seed, and
 * `*round` tracks r for failure reports. */
typedef void stress_round_fn(uint64_t round_seed, void *ctx);
void stress_run_rounds(const stress_options *opt, _Atomic unsigned *round,
                       stress_round_fn *fn, void *ctx);

/* Seconds on the monotonic clock, for the time box. */
double now_s(void);

/* Called from the watchdog thread when the run outlives its limit; it must
 * not return (programs report through their die(), which aborts). */
typedef void (*stress_hang_handler)(double limit_s);

/* A thread that calls its hang handler unless the run ends in time. It
 * waits on a condition variable with a deadline rather than sleeping, so a
 * run that ends early is not held up. */
typedef struct stress_watchdog {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC: wall clock steps are no hangs */
    bool done;
    time_t limit_whole_s;
    double limit_s;
    stress_hang_handler on_hang;
    pthread_t thread;
} stress_watchdog;

/* Starts `wd`, which calls on_hang(time_box_s * scale + slack_s) once that
 * many seconds (the fractional part of time_box_s * scale dropped) pass
 * before stress_watchdog_stop. The limit scales with the time box because
 * long runs under sanitizers are slow throughout, and the slack covers the
 * last round and a loaded machine. Returns pthread_create's result; on
 * failure nothing is left to stop. */
int stress_watchdog_start(stress_watchdog *wd, double time_box_s, double scale, time_t slack_s,
                          stress_hang_handler on_hang);

/* Tells the watchdog the run is over and joins it. */
void stress_watchdog_stop(stress_watchdog *wd);

#endif
