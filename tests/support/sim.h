/* Test support: tests on the deterministic runtime (weft/testing.h).
 * sim_setup and sim_teardown, as cmocka fixtures, install the counting
 * allocator (support/counting_alloc.h) and the misuse capture, and capture
 * the sims' failure reports (sim_reports, sim_report_contains) instead of
 * printing them; teardown fails the test when an allocation was not
 * freed. sim_start makes a sim from options; SIM_ASSERT fails a test with
 * the seed of the sim it ran on and how to replay it; sim_stats reads the
 * counters. Seed sweeps call sim_skip_if_seed_fixed first: WEFT_SEED
 * would make every seed of the sweep the same.
 * Each test program includes it once. */
#ifndef WEFT_TESTS_SIM_H
#define WEFT_TESTS_SIM_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "support/counting_alloc.h"
#include "support/misuse_capture.h"

static int g_sim_reports;          /* failure reports since setup */
static char g_sim_report[8192];    /* the last one */

static inline void sim_capture_report(const char *msg, void *arg)
{
    (void)arg;
    g_sim_reports++;
    snprintf(g_sim_report, sizeof g_sim_report, "%s", msg);
}

static inline bool sim_report_contains(const char *needle)
{
    return strstr(g_sim_report, needle) != NULL;
}

/* Options with the report captured; chaos off. */
static inline weft_sim_options sim_options(uint64_t seed)
{
    weft_sim_options o = WEFT_SIM_OPTIONS_INIT;
    o.seed = seed;
    o.report = sim_capture_report;
    return o;
}

/* A sim runtime from `o`; fails the test when it cannot be made. Pair
 * with weft_rt_shutdown. */
static inline weft_rt *sim_start(const weft_sim_options *o)
{
    weft_rt *rt = NULL;
    assert_int_equal(weft_rt_new_sim(&rt, o), 0);
    assert_non_null(rt);
    return rt;
}

static inline weft_sim_stats sim_stats(weft_rt *rt)
{
    weft_sim_stats st;
    assert_int_equal(weft_sim_stats_get(rt, &st), 0);
    return st;
}

/* Virtual time since the sim started. */
static inline weft_duration sim_elapsed(weft_rt *rt)
{
    return sim_stats(rt).now - WEFT_SIM_START;
}

/* Fail with the seed of `rt` and how to replay it unless `cond` holds. */
#define SIM_ASSERT(rt, cond)                                                  \
    do {                                                                      \
        if (!(cond)) {                                                        \
            uint64_t seed_ = sim_stats(rt).seed;                              \
            print_error("%s:%d: %s failed on the sim with seed=%" PRIu64      \
                        "; replay with WEFT_SEED=%" PRIu64 "\n",              \
                        __FILE__, __LINE__, #cond, seed_, seed_);             \
            fail();                                                           \
        }                                                                     \
    } while (0)

/* A sweep over seeds means nothing when WEFT_SEED fixes them all, and a
 * test that checks the seed it chose in a report cannot pass when WEFT_SEED
 * replaced it: both skip. */
static inline void sim_skip_if_seed_fixed(void)
{
    if (getenv("WEFT_SEED")) {
        print_message("WEFT_SEED is set: a test of chosen seeds is skipped\n");
        skip();
    }
}

static inline int sim_setup(void **state)
{
    (void)state;
    g_sim_reports = 0;
    g_sim_report[0] = '\0';
    misuse_reset();
    weft_set_misuse_handler(record_misuse, NULL);
    return counting_alloc_install();
}

static inline int sim_teardown(void **state)
{
    (void)state;
    int rc = counting_alloc_uninstall("after shutdown (a reference was leaked)");
    weft_set_misuse_handler(NULL, NULL);
    return rc;
}

#endif
