#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "stress_common.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/poll.h"

/* ---- command line ----------------------------------------------------------- */

__attribute__((noreturn)) static void usage(const char *program)
{
    fprintf(stderr, "usage: %s [--threads N] [--iters N] [--seed S] [--seconds T]\n", program);
    exit(2);
}

static void parse_options(int argc, char **argv, const char *program, stress_options *opt)
{
    opt->threads = 2;
    opt->iters = 0;
    opt->seed = 0;
    opt->seconds = 3.0;
    bool have_seed = false;
    /* Every option takes a value, so arguments come in pairs. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage(program);
        const char *v = argv[++i];
        char *end;
        if (strcmp(a, "--threads") == 0) {
            unsigned long n = strtoul(v, &end, 10);
            if (*end || n == 0 || n > WEFT_RT_MAX_WORKERS)
                usage(program);
            opt->threads = (unsigned)n;
        } else if (strcmp(a, "--iters") == 0) {
            opt->iters = strtoull(v, &end, 10);
            if (*end)
                usage(program);
        } else if (strcmp(a, "--seed") == 0) {
            /* Base 0: seeds are often copied as 0x... from a failure. */
            opt->seed = strtoull(v, &end, 0);
            if (*end)
                usage(program);
            have_seed = true;
        } else if (strcmp(a, "--seconds") == 0) {
            opt->seconds = strtod(v, &end);
            if (*end || opt->seconds < 0)
                usage(program);
        } else {
            usage(program);
        }
    }
    if (!have_seed) {
        /* Mixed, so runs started close together still differ in every bit. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opt->seed = mix64((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    }
    printf("seed=%" PRIu64 "\n", opt->seed);
    fflush(stdout);
}

/* ---- failure reports ---------------------------------------------------------- */

/* Set once by stress_main before any round runs. */
static const char *g_program = "stress";
static stress_options g_opt;
/* The round in progress. Relaxed: only read for failure messages. */
static _Atomic unsigned g_round;

void stress_die(const char *fmt, ...)
{
    unsigned round = atomic_load_explicit(&g_round, memory_order_relaxed);
    fprintf(stderr, "%s: FAIL seed=%" PRIu64 " round=%u: ", g_program, g_opt.seed, round);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nreplay: %s --threads %u --seed %" PRIu64 "\n", g_program, g_opt.threads,
            g_opt.seed);
    fflush(stderr);
    abort();
}

/* weft must never see misuse from a correct program. */
static void misuse_is_fatal(const char *msg, void *arg)
{
    (void)arg;
    stress_die("weft reported misuse: %s", msg);
}

/* ---- clock ------------------------------------------------------------------- */

/* Seconds on the monotonic clock, for the time box. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- watchdog ---------------------------------------------------------------- */

/* A thread that reports a hang unless the run ends in time. It waits on a
 * condition variable with a deadline rather than sleeping, so a run that
 * ends early is not held up. */
typedef struct watchdog {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC: wall clock steps are no hangs */
    bool done;
    time_t limit_whole_s;
    double limit_s;
    pthread_t thread;
} watchdog;

static void *watchdog_main(void *arg)
{
    watchdog *wd = arg;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += wd->limit_whole_s;
    pthread_mutex_lock(&wd->lock);
    while (!wd->done) {
        /* Re-checking `done` after a timeout: stop may have won the lock
         * just as the deadline passed, and that run was on time. */
        if (pthread_cond_timedwait(&wd->cond, &wd->lock, &deadline) == ETIMEDOUT && !wd->done)
            stress_die("watchdog: run exceeded %.0f s (hang)", wd->limit_s);
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

/* Starts `wd`, which reports a hang once time_box_s * scale + slack_s
 * seconds (the fractional part of time_box_s * scale dropped) pass before
 * watchdog_stop. The limit scales with the time box because long runs
 * under sanitizers are slow throughout, and the slack covers the last
 * round and a loaded machine. */
static void watchdog_start(watchdog *wd, double time_box_s, double scale, time_t slack_s)
{
    pthread_mutex_init(&wd->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd->cond, &ca);
    pthread_condattr_destroy(&ca);
    wd->done = false;
    wd->limit_whole_s = (time_t)(time_box_s * scale) + slack_s;
    wd->limit_s = time_box_s * scale + (double)slack_s;
    STRESS_ENSURE(pthread_create(&wd->thread, NULL, watchdog_main, wd) == 0,
                  "pthread_create (watchdog)");
}

/* Tells the watchdog the run is over and joins it. */
static void watchdog_stop(watchdog *wd)
{
    pthread_mutex_lock(&wd->lock);
    wd->done = true;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->cond);
    pthread_mutex_destroy(&wd->lock);
}

/* ---- main ---------------------------------------------------------------------- */

int stress_main(int argc, char **argv, const stress_program *p)
{
    g_program = p->name;
    parse_options(argc, argv, p->name, &g_opt);
    weft_set_misuse_handler(misuse_is_fatal, NULL);
    /* The documented limit: seconds * 10 + 30 s. */
    watchdog wd;
    watchdog_start(&wd, g_opt.seconds, 10.0, 30);

    double start = now_s();
    uint64_t rounds = 0;
    for (uint64_t r = 0; g_opt.iters == 0 || r < g_opt.iters; r++) {
        if (r > 0 && now_s() - start >= g_opt.seconds)
            break;
        atomic_store_explicit(&g_round, (unsigned)r, memory_order_relaxed);
        p->round(mix64(g_opt.seed + r), &g_opt);
        rounds++;
        /* The round's threads are joined: nothing counts now. */
        for (size_t i = 0; i < p->ncounters; i++) {
            p->counters[i]->total += stress_load(p->counters[i]);
            atomic_store_explicit(&p->counters[i]->round, 0, memory_order_relaxed);
        }
    }
    watchdog_stop(&wd);

    printf("ok: seed=%" PRIu64 " threads=%u rounds=%" PRIu64, g_opt.seed, g_opt.threads, rounds);
    const char *name = p->counter_names;
    for (size_t i = 0; i < p->ncounters; i++) {
        size_t len = strcspn(name, " ");
        printf(" %.*s=%" PRIu64, (int)len, name, p->counters[i]->total);
        name += len + (name[len] == ' ');
    }
    printf(" in %.1f s\n", now_s() - start);
    return 0;
}

/* ---- counters, runtimes, checks ----------------------------------------------- */

weft_rt *stress_rt_new(const stress_options *opt)
{
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = opt->threads;
    o.thread_name_prefix = "stress-w";
    weft_rt *rt = NULL;
    int rc = weft_rt_new(&rt, &o);
    STRESS_ENSURE(rc == 0, "weft_rt_new: %s", weft_strerror(rc));
    return rt;
}

void stress_drop_once(_Atomic uint8_t *drops, const char *what, uint32_t id)
{
    /* AcqRel: whoever checks the count afterwards sees the drop's work. */
    uint8_t prev = atomic_fetch_add_explicit(drops, 1, memory_order_acq_rel);
    STRESS_ENSURE(prev == 0, "%s %u dropped twice", what, id);
}

void stress_abort_task(const stress_abortable *t, unsigned victim, stress_counter *c)
{
    /* Release: a joiner that reads the mark with acquire and then sees
     * -ECANCELED knows the abort was ours. */
    atomic_store_explicit(&t->aborted[victim], 1, memory_order_release);
    weft_join_abort(&t->joins[victim]);
    stress_count(c);
}

void stress_abort_at_random(const stress_abortable *t, uint64_t seed, unsigned max_aborts,
                            stress_counter *c)
{
    uint64_t rng = rng_seed(seed);
    unsigned n = rng_next32(&rng) % max_aborts;
    for (unsigned i = 0; i < n; i++) {
        for (unsigned k = rng_next32(&rng) % 3000; k > 0; k--) {
            /* Acquire: the round's end is published with release. */
            if (atomic_load_explicit(t->over, memory_order_acquire))
                return;
            sched_yield();
        }
        /* Acquire: pairs with the release that publishes each join. */
        unsigned published = atomic_load_explicit(t->published, memory_order_acquire);
        if (published > 0)
            stress_abort_task(t, rng_next32(&rng) % published, c);
    }
}

void stress_check_join(const char *who, const char *what, uint32_t id, int status, uint64_t out,
                       bool finished, uint64_t expected, bool may_cancel)
{
    if (status == 0) {
        STRESS_ENSURE(finished, "%s: join of %s %u says 0 but its future never finished", who,
                      what, id);
        STRESS_ENSURE(out == expected, "%s: join of %s %u: output %" PRIx64 ", expected %" PRIx64,
                      who, what, id, out, expected);
    } else {
        STRESS_ENSURE(status == -ECANCELED, "%s: join of %s %u: status %d", who, what, id, status);
        STRESS_ENSURE(!finished, "%s: join of %s %u says cancelled but its future finished", who,
                      what, id);
        STRESS_ENSURE(out == 0, "%s: cancelled join of %s %u has output %" PRIx64, who, what, id,
                      out);
        STRESS_ENSURE(may_cancel, "%s: %s %u cancelled without abort or shutdown", who, what, id);
    }
}

void stress_join_finished(weft_join *j, const char *what, uint32_t id, uint64_t *out)
{
    STRESS_ENSURE(weft_join_is_finished(j), "join of %s %u not finished after shutdown", what, id);
    *out = 0;
    STRESS_ENSURE(poll_noop(&j->base, out) == WEFT_READY,
                  "finished join of %s %u pending", what, id);
}
