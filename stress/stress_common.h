/* What every stress program shares: its main() (the command line, the
 * run's seed, rounds in a time box under a hang watchdog, the summary
 * line), failure reports that say how to replay, per-round counters, the
 * runtime of a round and the checks every program makes of drops and
 * joins. The per-task PRNG is the tests' (tests/support/rng.h). */
#ifndef WEFT_STRESS_COMMON_H
#define WEFT_STRESS_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/weft.h"
#include "support/rng.h" /* mix64, rng_next32, rng_seed: the per-task PRNG */

typedef struct stress_options {
    unsigned threads; /* workers per runtime */
    uint64_t iters;   /* stop after this many rounds; 0: only the time box */
    uint64_t seed;    /* the run's seed; every round's seed derives from it */
    double seconds;   /* time box */
} stress_options;

/* A count of events: this round's, from any thread, and the run's total,
 * which the summary line prints. */
typedef struct stress_counter {
    _Atomic uint64_t round;
    uint64_t total; /* main thread, between rounds */
} stress_counter;

/* One round, with its own seed (round r gets mix64(seed + r), so a run
 * replays from its seed). Reports failures through stress_die. */
typedef void stress_round_fn(uint64_t round_seed, const stress_options *opt);

typedef struct stress_program {
    const char *name;       /* for the usage, failure and replay lines */
    stress_round_fn *round; /* one round, on a runtime of its own */
    /* The program's counters: after each round, each round count is added
     * to its total and zeroed. `counter_names` names them, in order,
     * separated by spaces. */
    stress_counter *const *counters;
    size_t ncounters;
    const char *counter_names;
} stress_program;

/* The whole main() of a stress program. Parses --threads N, --iters N,
 * --seed S and --seconds T (a bad command line prints the usage line and
 * exits with status 2; without --seed the seed comes from the clock) and
 * prints `seed=S` first, flushed, since that is what a failed run is
 * replayed from. Makes weft's misuse reports fatal, then runs rounds until
 * `--iters` rounds ran or the time box is used up (at least one round
 * always runs), under a watchdog that reports a hang after
 * seconds * 10 + 30 s. Ends with the summary line,
 * `ok: seed=S threads=N rounds=R <name>=<total>... in T s`; returns the
 * exit status. */
int stress_main(int argc, char **argv, const stress_program *p);

/* Report a failed invariant (printf-style) with the program, seed and
 * round, and the command that replays the run; abort. */
__attribute__((format(printf, 1, 2), noreturn)) void stress_die(const char *fmt, ...);

#define STRESS_ENSURE(cond, ...)                                              \
    do {                                                                      \
        if (!(cond))                                                          \
            stress_die(__VA_ARGS__);                                          \
    } while (0)

/* ---- counters ------------------------------------------------------------------ */

/* Relaxed: counters, read by the main thread after the round's threads
 * are joined and its runtime shut down. */
static inline void stress_count_n(stress_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->round, n, memory_order_relaxed);
}

static inline void stress_count(stress_counter *c)
{
    stress_count_n(c, 1);
}

/* This round's count. */
static inline uint64_t stress_load(stress_counter *c)
{
    return atomic_load_explicit(&c->round, memory_order_relaxed);
}

/* ---- a round's runtime and its checks ---------------------------------------- */

/* The round's runtime: opt->threads workers named "stress-w<i>". */
weft_rt *stress_rt_new(const stress_options *opt);

/* Notes a drop of `what` `id` in its counter `*drops`: the first, or the
 * run fails ("dropped twice"). */
void stress_drop_once(_Atomic uint8_t *drops, const char *what, uint32_t id);

/* What a finished join of `what` `id` yielded (`status`, `out`) agrees with
 * its task: status 0 and the `expected` output when its future `finished`,
 * else -ECANCELED with a zeroed output, and that only when `may_cancel`
 * (it was aborted, or the runtime was shutting down). `who` names the
 * joiner in the failure. */
void stress_check_join(const char *who, const char *what, uint32_t id, int status, uint64_t out,
                       bool finished, uint64_t expected, bool may_cancel);

/* A round's tasks as an aborter sees them: their join handles, an
 * aborted mark per task (set, with release, before the abort), how many
 * are published (acquire: their joins are written), and the flag that
 * ends the round. */
typedef struct stress_abortable {
    weft_join *joins;
    _Atomic uint8_t *aborted;
    _Atomic unsigned *published;
    _Atomic bool *over;
} stress_abortable;

/* Marks task `victim` aborted, aborts it and counts it in `*c`. */
void stress_abort_task(const stress_abortable *t, unsigned victim, stress_counter *c);

/* A foreign thread's aborts: up to `max_aborts - 1` of them, each at a
 * random moment (a random number of scheduler yields) on a random
 * published task, counted in `*c`; returns early once the round is over. */
void stress_abort_at_random(const stress_abortable *t, uint64_t seed, unsigned max_aborts,
                            stress_counter *c);

/* Polls the finished join `j` once (its runtime may be shut down: no
 * runtime call) and returns its output in `*out`. */
void stress_join_finished(weft_join *j, const char *what, uint32_t id, uint64_t *out);

#endif
