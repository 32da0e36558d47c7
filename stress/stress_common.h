/* What every stress program shares: the command line, the run's seed, a
 * monotonic clock reading and the hang watchdog. Each program keeps its own
 * failure reporting (die/ENSURE), because a failure message names the
 * program and the round it was in. */
#ifndef WEFT_STRESS_COMMON_H
#define WEFT_STRESS_COMMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

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

/* splitmix64's finaliser: derives independent seeds from related ones.
 * Inline because tasks call it on their hot path. */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

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
