#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "stress_common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"

/* ---- command line ----------------------------------------------------------- */

__attribute__((noreturn)) static void usage(const char *program)
{
    fprintf(stderr, "usage: %s [--threads N] [--iters N] [--seed S] [--seconds T]\n", program);
    exit(2);
}

void stress_parse_options(int argc, char **argv, const char *program, stress_options *opt)
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

/* ---- clock ------------------------------------------------------------------- */

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- watchdog ---------------------------------------------------------------- */

static void *watchdog_main(void *arg)
{
    stress_watchdog *wd = arg;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += wd->limit_whole_s;
    pthread_mutex_lock(&wd->lock);
    while (!wd->done) {
        /* Re-checking `done` after a timeout: stop may have won the lock
         * just as the deadline passed, and that run was on time. */
        if (pthread_cond_timedwait(&wd->cond, &wd->lock, &deadline) == ETIMEDOUT && !wd->done)
            wd->on_hang(wd->limit_s);
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

int stress_watchdog_start(stress_watchdog *wd, double time_box_s, double scale, time_t slack_s,
                          stress_hang_handler on_hang)
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
    wd->on_hang = on_hang;
    int rc = pthread_create(&wd->thread, NULL, watchdog_main, wd);
    if (rc != 0) {
        pthread_cond_destroy(&wd->cond);
        pthread_mutex_destroy(&wd->lock);
    }
    return rc;
}

void stress_watchdog_stop(stress_watchdog *wd)
{
    pthread_mutex_lock(&wd->lock);
    wd->done = true;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->cond);
    pthread_mutex_destroy(&wd->lock);
}

static const char *g_program = "stress";
static const stress_options *g_opt;
static _Atomic unsigned *g_round;

void stress_failure_context(const char *program, const stress_options *opt,
                            _Atomic unsigned *round)
{
    g_program = program;
    g_opt = opt;
    g_round = round;
}

void stress_die(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    uint64_t seed = g_opt ? g_opt->seed : 0;
    unsigned threads = g_opt ? g_opt->threads : 0;
    unsigned round = g_round ? atomic_load_explicit(g_round, memory_order_relaxed) : 0;
    fprintf(stderr, "%s: FAIL seed=%" PRIu64 " round=%u: %s\n"
                    "replay: %s --threads %u --seed %" PRIu64 "\n",
            g_program, seed, round, msg, g_program, threads, seed);
    fflush(stderr);
    abort();
}

void stress_misuse_is_fatal(const char *msg, void *arg)
{
    (void)arg;
    stress_die("weft reported misuse: %s", msg);
}

void stress_run_rounds(const stress_options *opt, _Atomic unsigned *round,
                       stress_round_fn *fn, void *ctx)
{
    double start = now_s();
    for (uint64_t r = 0; opt->iters == 0 || r < opt->iters; r++) {
        if (r > 0 && now_s() - start >= opt->seconds)
            break;
        /* Relaxed: only read for failure messages. */
        atomic_store_explicit(round, (unsigned)r, memory_order_relaxed);
        fn(mix64(opt->seed + r), ctx);
    }
}
