/* Unit tests for time/wheel.c: the hierarchical timer wheel, driven as the
 * pure data structure it is (the caller holds the lock; time is explicit
 * `now` values in ms ticks, so nothing here waits on a clock).
 *
 * What must hold, whatever the wheel's internals: an armed entry fires
 * exactly once, never at a `now` before its tick, and is never left behind
 * once `now` has reached its tick; removed entries never fire; next_due is
 * a lower bound on the earliest armed deadline; small batches hand out the
 * rest on the next call. The targeted cases pin each level (including
 * deadlines beyond the wheel's 2^36-tick span, which ride the top level
 * round and round) and each removal path; a seeded randomized case checks
 * the same properties against a model with inserts, removals and polls
 * interleaved. Set WEFT_TEST_SEED to replay one seed of it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "time/wheel.h"
#include "support/alarm_watchdog.h"
#include "support/rng.h"

#define MS 1000000ull        /* nanoseconds per tick */
#define SPAN WEFT__WHEEL_MAX /* ticks the six levels cover */
#define L0 64ull             /* ticks per level-1 slot */
#define PENDING WEFT__TIMER_PENDING_LEVEL
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Deadlines (in ticks) that land on each level from elapsed 0, and one
 * beyond the wheel's span. */
#define D_1MS 1ull
#define D_100MS 100ull
#define D_10S 10000ull
#define D_1H 3600000ull
#define D_3DAYS (3ull * 24 * 3600000ull)
#define D_1YEAR (365ull * 24 * 3600000ull)
#define D_3YEARS (3ull * D_1YEAR) /* > SPAN (about 2.18 years) */

/* The randomized case's seed, printed with any failure while it runs. */
static uint64_t g_seed;
static bool g_randomized;

#define FAIL(...)                                                             \
    do {                                                                      \
        if (g_randomized)                                                     \
            print_error("seed %" PRIu64 " (replay: WEFT_TEST_SEED=%" PRIu64   \
                        "): ", g_seed, g_seed);                               \
        fail_msg(__VA_ARGS__);                                                \
    } while (0)

/* ---- entries and their fake wakers -------------------------------------- */

/* The wheel only moves wakers around; the data pointer names the entry
 * (index + 1, so no entry has a NULL waker). Calling any op is a bug. */
static weft_waker id_clone(const void *data)
{
    (void)data;
    fail_msg("the wheel cloned a waker");
    weft_waker w = WEFT_WAKER_EMPTY;
    return w;
}
static void id_wake(void *data)
{
    (void)data;
    fail_msg("the wheel woke a waker itself");
}
static void id_wake_by_ref(const void *data)
{
    (void)data;
    fail_msg("the wheel woke a waker itself");
}
static void id_drop(void *data)
{
    (void)data;
    fail_msg("the wheel dropped a waker");
}
static const weft_waker_ops id_ops = { id_clone, id_wake, id_wake_by_ref, id_drop };

enum { E_IDLE, E_ARMED, E_FIRED, E_REMOVED };

typedef struct bench {
    weft__wheel w;
    size_t n;
    weft_timer_entry *e;
    int *st;           /* E_* per entry */
    size_t *order;     /* fired entries, in firing order */
    size_t nfired;
} bench;

static bench *bench_new(size_t n, uint64_t elapsed)
{
    bench *b = calloc(1, sizeof *b);
    assert_non_null(b);
    weft__wheel_init(&b->w, 0);
    b->w.elapsed = elapsed;
    b->n = n;
    b->e = calloc(n, sizeof *b->e);
    b->st = calloc(n, sizeof *b->st);
    b->order = calloc(n, sizeof *b->order);
    assert_true(b->e && b->st && b->order);
    return b;
}

static void bench_free(bench *b)
{
    free(b->e);
    free(b->st);
    free(b->order);
    free(b);
}

/* Arm entry `i` at tick `when` the way time.c does (under the lock). */
static void arm(bench *b, size_t i, uint64_t when)
{
    assert_true(i < b->n);
    assert_true(b->st[i] != E_ARMED);
    assert_true(when > b->w.elapsed); /* the wheel's precondition */
    weft_timer_entry *e = &b->e[i];
    memset(e, 0, sizeof *e);
    e->when_ = when;
    e->waker_.ops = &id_ops;
    e->waker_.data = (void *)(uintptr_t)(i + 1);
    atomic_store_explicit(&e->state_, WEFT__TIMER_ARMED, memory_order_relaxed);
    weft__wheel_insert(&b->w, e);
    b->st[i] = E_ARMED;
}

static void disarm(bench *b, size_t i)
{
    assert_int_equal(b->st[i], E_ARMED);
    weft__wheel_remove(&b->w, &b->e[i]);
    b->st[i] = E_REMOVED;
}

/* Arms entries [from, to) at tick `when`. */
static void arm_range(bench *b, size_t from, size_t to, uint64_t when)
{
    for (size_t i = from; i < to; i++)
        arm(b, i, when);
}

/* A bench of one entry, armed at `when` with the wheel at `elapsed`. */
static bench *bench_one(uint64_t elapsed, uint64_t when)
{
    bench *b = bench_new(1, elapsed);
    arm(b, 0, when);
    return b;
}

/* One weft__wheel_poll call; checks each handed-out entry fires once and
 * not before its tick. Returns how many fired. */
static size_t poll_once(bench *b, uint64_t now, size_t max)
{
    weft_waker out[256];
    assert_true(max <= 256);
    size_t n = weft__wheel_poll(&b->w, now, out, max);
    assert_true(n <= max);
    for (size_t k = 0; k < n; k++) {
        assert_ptr_equal(out[k].ops, &id_ops);
        size_t i = (size_t)(uintptr_t)out[k].data - 1;
        assert_true(i < b->n);
        if (b->st[i] != E_ARMED)
            FAIL("entry %zu (state %d) handed out by the poll at %" PRIu64, i, b->st[i], now);
        if (b->e[i].when_ > now)
            FAIL("entry %zu due at %" PRIu64 " fired early, at %" PRIu64, i, b->e[i].when_,
                 now);
        assert_int_equal(atomic_load_explicit(&b->e[i].state_, memory_order_relaxed),
                         WEFT__TIMER_FIRED);
        /* Copied out: the entry's field is left for its owner to read. */
        assert_ptr_equal(b->e[i].waker_.ops, &id_ops);
        b->st[i] = E_FIRED;
        b->order[b->nfired++] = i;
    }
    return n;
}

/* Poll at `now` until the wheel has nothing more to hand out. */
static size_t poll_all(bench *b, uint64_t now, size_t max)
{
    size_t total = 0, n;
    do {
        n = poll_once(b, now, max);
        total += n;
    } while (n == max);
    return total;
}

/* Polls at `now` in batches of `max` until the wheel has nothing more to
 * hand out, then checks that everything due by `now` has fired. */
static void poll_all_due(bench *b, uint64_t now, size_t max)
{
    poll_all(b, now, max);
    for (size_t i = 0; i < b->n; i++)
        if (b->st[i] == E_ARMED && b->e[i].when_ <= now)
            FAIL("entry %zu due at %" PRIu64 " still armed at %" PRIu64, i, b->e[i].when_, now);
}

static size_t count_armed(const bench *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->st[i] == E_ARMED;
    return n;
}

/* ---- tick conversions --------------------------------------------------- */

/* An instant, as an offset from the wheel's origin, and its tick. */
typedef struct tick_case {
    uint64_t offset, tick;
} tick_case;

/* Checks `convert` (tick_ceil or tick_floor) of `w`, whose origin is
 * `origin`, against `n` cases. */
static void check_ticks(uint64_t (*convert)(const weft__wheel *, weft_instant),
                        const weft__wheel *w, uint64_t origin, const tick_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t tick = convert(w, origin + c[i].offset);
        if (tick != c[i].tick)
            fail_msg("origin + %" PRIu64 " ns: tick %" PRIu64 ", expected %" PRIu64,
                     c[i].offset, tick, c[i].tick);
    }
}

static void test_wheel_tick_ceil_rounds_deadlines_up(void **state)
{
    (void)state;
    weft__wheel w;
    const uint64_t origin = 5 * 1000000000ull + 123;
    weft__wheel_init(&w, origin);
    /* One nanosecond past a tick boundary belongs to the next tick (a timer
     * firing at the boundary would be 1 ns early); far deadlines keep full
     * precision. */
    static const tick_case cases[] = {
        { 0, 0 }, { 1, 1 }, { MS - 1, 1 }, { MS, 1 }, { MS + 1, 2 }, { 7 * MS, 7 },
        { 7 * MS + 1, 8 }, { D_1YEAR * MS, D_1YEAR }, { D_1YEAR * MS + 1, D_1YEAR + 1 },
    };
    check_ticks(weft__wheel_tick_ceil, &w, origin, cases, ARRAY_LEN(cases));
    /* Every tick's start instant converts back to that tick, and the
     * instant of the ceil is never before the deadline. */
    for (uint64_t t = 0; t < 3000; t += 7) {
        weft_instant at = weft__wheel_instant(&w, t);
        assert_int_equal(at, origin + t * MS);
        assert_int_equal(weft__wheel_tick_ceil(&w, at), t);
        for (uint64_t off = 1; off < MS; off += 99991) {
            uint64_t tick = weft__wheel_tick_ceil(&w, at + off);
            assert_int_equal(tick, t + 1);
            assert_true(weft__wheel_instant(&w, tick) >= at + off);
        }
    }
}

static void test_wheel_tick_floor_rounds_the_present_down(void **state)
{
    (void)state;
    weft__wheel w;
    const uint64_t origin = 77 * MS + 5;
    weft__wheel_init(&w, origin);
    static const tick_case cases[] = {
        { 0, 0 }, { 1, 0 }, { MS - 1, 0 }, { MS, 1 }, { MS + 1, 1 }, { 9 * MS - 1, 8 },
    };
    check_ticks(weft__wheel_tick_floor, &w, origin, cases, ARRAY_LEN(cases));
    /* Floor never passes ceil, and they differ by at most one. */
    for (uint64_t t = origin; t < origin + 5 * MS; t += 333331) {
        uint64_t f = weft__wheel_tick_floor(&w, t), c = weft__wheel_tick_ceil(&w, t);
        assert_true(f <= c && c - f <= 1);
        assert_true(weft__wheel_instant(&w, f) <= t);
    }
}

static void test_wheel_ticks_before_origin_are_zero(void **state)
{
    (void)state;
    weft__wheel w;
    weft__wheel_init(&w, 10 * MS);
    assert_int_equal(weft__wheel_tick_ceil(&w, 0), 0);
    assert_int_equal(weft__wheel_tick_ceil(&w, 10 * MS - 1), 0);
    assert_int_equal(weft__wheel_tick_floor(&w, 0), 0);
    assert_int_equal(weft__wheel_tick_floor(&w, 10 * MS - 1), 0);
}

/* ---- levels and cascades ------------------------------------------------ */

static void test_wheel_insert_picks_level_by_distance(void **state)
{
    (void)state;
    static const struct {
        uint64_t when;
        unsigned level;
    } cases[] = {
        { D_1MS, 0 },  { 63, 0 },         { 64, 1 },          { D_100MS, 1 },
        { 4095, 1 },   { 4096, 2 },       { D_10S, 2 },       { D_1H, 3 },
        { D_3DAYS, 4 }, { D_1YEAR, 5 },   { SPAN - 1, 5 },    { D_3YEARS, 5 },
    };
    size_t n = sizeof cases / sizeof cases[0];
    bench *b = bench_new(n, 0);
    for (size_t i = 0; i < n; i++) {
        arm(b, i, cases[i].when);
        assert_int_equal(b->e[i].level_, cases[i].level);
        assert_true(b->w.occupied[cases[i].level] & ((uint64_t)1 << b->e[i].slot_));
    }
    assert_int_equal(b->w.armed, n);
    bench_free(b);

    /* The level depends on where `elapsed` is, not only on the distance:
     * a deadline 2 ticks away across a 64-tick boundary sits on level 1,
     * and one 15 ticks away across a 2^36 boundary on the top level. */
    b = bench_new(2, 63);
    arm(b, 0, 65);
    assert_int_equal(b->e[0].level_, 1);
    bench_free(b);
    b = bench_new(2, SPAN - 10);
    arm(b, 0, SPAN + 5);
    assert_int_equal(b->e[0].level_, 5);
    bench_free(b);
}

/* Where elapsed starts in the cascade cases: zero, an arbitrary spot, just
 * before a level-2 and a top-level boundary, and in the second rotation of
 * the top level. */
static const uint64_t cascade_starts[] = {
    0, 12345, 4096 * 3 - 2, SPAN - 7, SPAN + 987654321, 5 * SPAN - 1,
};

static const uint64_t cascade_deadlines[] = {
    D_1MS, D_100MS, D_10S, D_1H, D_3DAYS, D_1YEAR, D_3YEARS, SPAN, SPAN + 1, 2 * SPAN + 3,
};

/* Calls `check` for every cascade start and deadline. */
static void for_each_cascade_case(void (*check)(uint64_t start, uint64_t when))
{
    for (size_t s = 0; s < ARRAY_LEN(cascade_starts); s++)
        for (size_t d = 0; d < ARRAY_LEN(cascade_deadlines); d++)
            check(cascade_starts[s], cascade_starts[s] + cascade_deadlines[d]);
}

static void check_jump(uint64_t start, uint64_t when)
{
    bench *b = bench_one(start, when);
    assert_int_equal(poll_all(b, when - 1, 8), 0);
    assert_int_equal(b->st[0], E_ARMED);
    assert_int_equal(b->w.armed, 1);
    assert_int_equal(poll_all(b, when, 8), 1);
    assert_int_equal(b->w.armed, 0);
    assert_int_equal(weft__wheel_next_due(&b->w), WEFT__WHEEL_NONE);
    bench_free(b);

    /* Jumping well past it fires it too. */
    b = bench_one(start, when);
    assert_int_equal(poll_all(b, when + 1000003, 8), 1);
    bench_free(b);
}

/* Jump straight to the tick before the deadline (nothing fires), then to
 * the deadline (it fires, alone). */
static void test_wheel_cascade_fires_exactly_at_deadline_when_jumping(void **state)
{
    (void)state;
    for_each_cascade_case(check_jump);
}

/* Step through the wheel as a driver would (poll at next_due): the entry
 * moves down a level at each step it is processed, never fires early, and
 * fires at its deadline. Beyond the span it stays on the top level until
 * its rotation comes. */
static void check_steps(uint64_t start, uint64_t when)
{
    bench *b = bench_one(start, when);
    unsigned level = b->e[0].level_, steps = 0;
    for (;;) {
        uint64_t nd = weft__wheel_next_due(&b->w);
        assert_true(nd != WEFT__WHEEL_NONE);
        assert_true(nd > b->w.elapsed);
        assert_true(nd <= when); /* a lower bound, never late */
        if (nd == when)
            break;
        assert_int_equal(poll_all(b, nd, 8), 0);
        assert_int_equal(b->w.elapsed, nd);
        unsigned now_level = b->e[0].level_;
        /* Below the top level every visit cascades it down; on the top
         * level it may come round again. */
        if (level < WEFT__WHEEL_LEVELS - 1)
            assert_true(now_level < level);
        else
            assert_true(now_level <= level);
        level = now_level;
        assert_true(++steps < 64);
    }
    assert_int_equal(poll_all(b, when - 1, 8), 0);
    assert_int_equal(poll_all(b, when, 8), 1);
    bench_free(b);
}

static void test_wheel_cascade_moves_down_each_level_when_stepping(void **state)
{
    (void)state;
    for_each_cascade_case(check_steps);
}

/* A deadline a few rotations of the top level away is re-examined each
 * time its slot comes round and fires on the right tick. */
static void test_wheel_beyond_span_wraps_through_top_level(void **state)
{
    (void)state;
    const uint64_t start = 1000;
    const uint64_t when = start + 3 * SPAN + 17 * ((uint64_t)1 << 30) + 5;
    bench *b = bench_new(2, start);
    arm(b, 0, when);
    arm(b, 1, start + D_1YEAR); /* a neighbour on the top level */
    assert_int_equal(b->e[0].level_, 5);
    /* Rotation by rotation, nothing fires early. */
    for (uint64_t r = 1; r <= 3; r++) {
        uint64_t now = start + r * SPAN;
        poll_all(b, now, 8);
        assert_int_equal(b->st[0], E_ARMED);
        assert_true(weft__wheel_next_due(&b->w) <= when);
    }
    assert_int_equal(b->st[1], E_FIRED);
    assert_int_equal(poll_all(b, when - 1, 8), 0);
    assert_int_equal(poll_all(b, when, 8), 1);
    assert_int_equal(b->st[0], E_FIRED);
    bench_free(b);
}

/* ---- ordering ----------------------------------------------------------- */

/* Every entry fired, earliest deadline first. Frees the bench. */
static void assert_all_fired_in_deadline_order(bench *b)
{
    assert_int_equal(b->nfired, b->n);
    for (size_t k = 1; k < b->nfired; k++)
        if (b->e[b->order[k - 1]].when_ > b->e[b->order[k]].when_)
            fail_msg("entry %zu (due %" PRIu64 ") fired after entry %zu (due %" PRIu64 ")",
                     b->order[k], b->e[b->order[k]].when_, b->order[k - 1],
                     b->e[b->order[k - 1]].when_);
    bench_free(b);
}

static void test_wheel_fires_in_deadline_order_within_a_level(void **state)
{
    (void)state;
    static const uint64_t whens[] = { 9, 3, 40, 3, 63, 1, 17, 9, 2, 62 };
    /* Stepping tick by tick, and in one jump. */
    for (int jump = 0; jump < 2; jump++) {
        bench *b = bench_new(ARRAY_LEN(whens), 0);
        for (size_t i = 0; i < ARRAY_LEN(whens); i++) {
            arm(b, i, whens[i]);
            assert_int_equal(b->e[i].level_, 0);
        }
        if (jump) {
            assert_int_equal(poll_all(b, 63, 4), ARRAY_LEN(whens));
        } else {
            for (uint64_t now = 0; now <= 63; now++) {
                poll_all_due(b, now, 4);
            }
        }
        assert_all_fired_in_deadline_order(b);
    }
}

static void test_wheel_fires_in_deadline_order_across_levels(void **state)
{
    (void)state;
    static const uint64_t whens[] = {
        D_3YEARS, 100000, 4097, 65, 63, 4096, D_1H, 64, 5, 4095, D_1YEAR, 1, D_3DAYS,
        262143, 262144, D_10S, D_100MS, SPAN - 1, SPAN + 1, 2,
    };
    for (int jump = 0; jump < 2; jump++) {
        bench *b = bench_new(ARRAY_LEN(whens), 0);
        for (size_t i = 0; i < ARRAY_LEN(whens); i++)
            arm(b, i, whens[i]);
        if (jump) {
            /* One poll far past everything: the wheel still hands entries
             * out earliest first. */
            assert_int_equal(poll_all(b, 4 * SPAN, 256), ARRAY_LEN(whens));
        } else {
            /* A driver's walk: to each next_due, checking nothing due is
             * left behind at any step. */
            uint64_t nd;
            while ((nd = weft__wheel_next_due(&b->w)) != WEFT__WHEEL_NONE) {
                poll_all_due(b, nd, 3);
            }
        }
        assert_all_fired_in_deadline_order(b);
    }
}

/* ---- removal ------------------------------------------------------------ */

static void test_wheel_remove_from_each_level(void **state)
{
    (void)state;
    static const uint64_t whens[] = { D_1MS, D_100MS, D_10S, D_1H, D_3DAYS, D_1YEAR, D_3YEARS };
    size_t n = ARRAY_LEN(whens);
    for (size_t victim = 0; victim < n; victim++) {
        bench *b = bench_new(n, 0);
        for (size_t i = 0; i < n; i++)
            arm(b, i, whens[i]);
        weft_timer_entry *e = &b->e[victim];
        unsigned level = e->level_, slot = e->slot_;
        disarm(b, victim);
        assert_int_equal(b->w.armed, n - 1);
        /* The only entry of its slot: the slot is empty and unmarked. */
        assert_null(b->w.slots[level][slot]);
        assert_false(b->w.occupied[level] & ((uint64_t)1 << slot));
        /* Everything else fires; the removed one never does. */
        uint64_t nd;
        while ((nd = weft__wheel_next_due(&b->w)) != WEFT__WHEEL_NONE)
            poll_all(b, nd, 4);
        assert_int_equal(b->nfired, n - 1);
        assert_int_equal(b->st[victim], E_REMOVED);
        assert_int_equal(b->w.armed, 0);
        bench_free(b);
    }
}

static void test_wheel_remove_head_middle_tail_of_a_slot(void **state)
{
    (void)state;
    /* Five entries in one level-1 slot; entries are pushed at the head, so
     * 4 is the head and 0 the tail. */
    bench *b = bench_new(5, 0);
    for (size_t i = 0; i < 5; i++)
        arm(b, i, 128 + i);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(b->e[i].level_, 1);
        assert_int_equal(b->e[i].slot_, 2);
    }
    disarm(b, 2); /* middle */
    disarm(b, 4); /* head */
    disarm(b, 0); /* tail */
    assert_true(b->w.occupied[1] & ((uint64_t)1 << 2));
    assert_int_equal(poll_all(b, 1000, 8), 2);
    assert_int_equal(b->st[1], E_FIRED);
    assert_int_equal(b->st[3], E_FIRED);
    assert_int_equal(b->w.occupied[1], 0);
    bench_free(b);
}

static void test_wheel_remove_from_pending_list(void **state)
{
    (void)state;
    /* Three entries due on the same tick; a poll of one leaves two on the
     * pending list, due but not handed out. */
    bench *b = bench_new(4, 0);
    arm_range(b, 0, 3, 10);
    arm(b, 3, 20);
    assert_int_equal(poll_once(b, 10, 1), 1);
    size_t left[2], nl = 0;
    for (size_t i = 0; i < 3; i++)
        if (b->st[i] == E_ARMED) {
            assert_int_equal(b->e[i].level_, PENDING);
            left[nl++] = i;
        }
    assert_int_equal(nl, 2);
    assert_true(b->w.pending != NULL);
    /* Something is due now. */
    assert_int_equal(weft__wheel_next_due(&b->w), b->w.elapsed);
    disarm(b, left[0]);
    assert_int_equal(b->w.armed, 2);
    disarm(b, left[1]);
    assert_null(b->w.pending);
    assert_int_equal(weft__wheel_next_due(&b->w), 20);
    assert_int_equal(poll_all(b, 19, 8), 0);
    assert_int_equal(poll_all(b, 20, 8), 1);
    assert_int_equal(b->st[3], E_FIRED);
    assert_int_equal(b->w.armed, 0);
    bench_free(b);
}

/* An entry removed and re-armed (weft_sleep_reset) fires once, at its new
 * deadline. */
static void test_wheel_rearm_after_remove_fires_at_new_deadline(void **state)
{
    (void)state;
    bench *b = bench_new(1, 0);
    arm(b, 0, D_1H);
    disarm(b, 0);
    b->st[0] = E_IDLE;
    arm(b, 0, 30);
    assert_int_equal(poll_all(b, 29, 8), 0);
    assert_int_equal(poll_all(b, 30, 8), 1);
    assert_int_equal(poll_all(b, 2 * D_1H, 8), 0);
    bench_free(b);
}

/* ---- next_due ----------------------------------------------------------- */

static void test_wheel_next_due(void **state)
{
    (void)state;
    bench *b = bench_new(8, 0);
    assert_int_equal(weft__wheel_next_due(&b->w), WEFT__WHEEL_NONE);

    /* Level 0: the exact tick. */
    arm(b, 0, 40);
    assert_int_equal(weft__wheel_next_due(&b->w), 40);
    arm(b, 1, 7);
    assert_int_equal(weft__wheel_next_due(&b->w), 7);
    /* Removing the earliest uncovers the next. */
    disarm(b, 1);
    assert_int_equal(weft__wheel_next_due(&b->w), 40);
    disarm(b, 0);
    assert_int_equal(weft__wheel_next_due(&b->w), WEFT__WHEEL_NONE);

    /* Higher levels: the start of the slot, where the entry cascades (a
     * lower bound on its deadline, never past it). */
    arm(b, 2, D_100MS);
    assert_int_equal(weft__wheel_next_due(&b->w), 64);
    arm(b, 3, D_1H);
    assert_int_equal(weft__wheel_next_due(&b->w), 64);
    disarm(b, 2);
    uint64_t nd = weft__wheel_next_due(&b->w);
    assert_true(nd > 0 && nd <= D_1H);
    assert_int_equal(nd, D_1H & ~(((uint64_t)1 << 18) - 1));

    /* Level 0 is consulted before higher levels. */
    arm(b, 4, 3);
    assert_int_equal(weft__wheel_next_due(&b->w), 3);

    /* The cached copy for lock-free readers follows the wheel. */
    poll_all(b, 3, 8);
    assert_int_equal(b->st[4], E_FIRED);
    assert_int_equal(atomic_load_explicit(&b->w.next_due, memory_order_relaxed),
                     weft__wheel_next_due(&b->w));
    assert_int_equal(weft__wheel_next_due(&b->w), nd);

    /* Something on the pending list is due at once. */
    disarm(b, 3);
    arm(b, 5, 9);
    arm(b, 6, 9);
    assert_int_equal(poll_once(b, 9, 1), 1);
    assert_int_equal(weft__wheel_next_due(&b->w), 9);
    assert_int_equal(atomic_load_explicit(&b->w.next_due, memory_order_relaxed), 9);
    poll_all(b, 9, 8);
    assert_int_equal(weft__wheel_next_due(&b->w), WEFT__WHEEL_NONE);
    assert_int_equal(atomic_load_explicit(&b->w.next_due, memory_order_relaxed),
                     WEFT__WHEEL_NONE);
    bench_free(b);
}

/* With nothing due, a poll still advances the wheel's clock to `now`, and
 * later inserts are placed relative to it. */
static void test_wheel_poll_advances_elapsed_when_nothing_is_due(void **state)
{
    (void)state;
    bench *b = bench_new(2, 0);
    arm(b, 0, D_10S);
    assert_int_equal(poll_all(b, 5000, 8), 0);
    assert_int_equal(b->w.elapsed, 5000);
    arm(b, 1, 5001);
    assert_int_equal(b->e[1].level_, 0);
    assert_int_equal(weft__wheel_next_due(&b->w), 5001);
    assert_int_equal(poll_all(b, 5001, 8), 1);
    assert_int_equal(poll_all(b, D_10S - 1, 8), 0);
    assert_int_equal(poll_all(b, D_10S, 8), 1);
    bench_free(b);
}

/* ---- batches ------------------------------------------------------------ */

static void test_wheel_poll_small_max_returns_batches_then_the_rest(void **state)
{
    (void)state;
    /* 100 entries due at tick 50 (level 0), 37 at tick 70 (level 1). */
    bench *b = bench_new(137, 0);
    arm_range(b, 0, 100, 50);
    arm_range(b, 100, 137, 70);
    size_t sizes[16], nb = 0;
    size_t n;
    do {
        n = poll_once(b, 60, 16);
        sizes[nb++] = n;
    } while (n == 16);
    /* 6 full batches of 16 and the remaining 4. */
    assert_int_equal(nb, 7);
    for (size_t k = 0; k < 6; k++)
        assert_int_equal(sizes[k], 16);
    assert_int_equal(sizes[6], 4);
    assert_int_equal(b->nfired, 100);
    assert_int_equal(b->w.armed, 37);
    /* The tick-70 entries in batches too, possibly spanning both slots. */
    assert_int_equal(poll_once(b, 1000, 32), 32);
    assert_int_equal(poll_once(b, 1000, 32), 5);
    assert_int_equal(poll_once(b, 1000, 32), 0);
    assert_int_equal(b->nfired, 137);
    assert_int_equal(b->w.armed, 0);

    /* A batch exactly the size of what is due: the next call returns 0. */
    bench *c = bench_new(8, 0);
    arm_range(c, 0, 8, 5);
    assert_int_equal(poll_once(c, 5, 8), 8);
    assert_int_equal(poll_once(c, 5, 8), 0);
    bench_free(c);
    bench_free(b);
}

/* ---- randomized against a model ----------------------------------------- */

/* Fail with the seed (FAIL) when `cond` does not hold. */
#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond))                                                          \
            FAIL(__VA_ARGS__);                                                \
    } while (0)

/* A distance from now, spread over every level and beyond the span. */
static uint64_t random_distance(uint64_t *r)
{
    switch (rng_next(r) % 8) {
    case 0: return 1 + rng_next(r) % 64;
    case 1: return 1 + rng_next(r) % 4096;
    case 2: return 1 + rng_next(r) % 262144;
    case 3: return 1 + rng_next(r) % 16777216;
    case 4: return 1 + rng_next(r) % ((uint64_t)1 << 30);
    case 5: return 1 + rng_next(r) % SPAN;
    case 6: return 1 + rng_next(r) % (4 * SPAN);
    default: return 1 + rng_next(r) % 3; /* collisions on the same tick */
    }
}

static uint64_t random_start(uint64_t *r)
{
    switch (rng_next(r) % 5) {
    case 0: return 0;
    case 1: return rng_next(r) % 100000;
    case 2: return SPAN - 1 - rng_next(r) % 5000;          /* before a top-level wrap */
    case 3: return ((uint64_t)1 << 30) * (1 + rng_next(r) % 200) - rng_next(r) % 70; /* level-5 edge */
    default: return rng_next(r) % ((uint64_t)1 << 44);
    }
}

#define RAND_N 3000
#define RAND_ROUNDS 6
#define RAND_STEPS 1500

static void random_round(uint64_t round_seed)
{
    uint64_t r = mix64(round_seed) | 1;
    uint64_t start = random_start(&r);
    bench *b = bench_new(RAND_N, start);
    uint64_t now = start;
    size_t next_id = 0;
    size_t max = 1 + rng_next(&r) % 40;

    /* An initial population, then a mix of operations. */
    for (; next_id < RAND_N / 2; next_id++)
        arm(b, next_id, b->w.elapsed + random_distance(&r));
    for (unsigned step = 0; step < RAND_STEPS; step++) {
        unsigned op = (unsigned)(rng_next(&r) % 16);
        if (op < 3 && next_id < RAND_N) {
            for (unsigned k = 1 + rng_next(&r) % 8; k > 0 && next_id < RAND_N; k--, next_id++)
                arm(b, next_id, b->w.elapsed + random_distance(&r));
        } else if (op < 5) {
            /* Remove a few armed entries (possibly on the pending list). */
            for (unsigned k = 1 + rng_next(&r) % 4; k > 0; k--) {
                size_t i = rng_next(&r) % (next_id ? next_id : 1);
                if (b->st[i] == E_ARMED)
                    disarm(b, i);
            }
        } else {
            /* Advance. */
            uint64_t nd = weft__wheel_next_due(&b->w);
            uint64_t to;
            switch (rng_next(&r) % 6) {
            case 0: to = nd == WEFT__WHEEL_NONE ? now + 1 : nd; break;
            case 1: to = now; break;
            case 2: to = now + rng_next(&r) % 100; break;
            case 3: to = now + random_distance(&r); break;
            default: {
                /* Right at, or just before, some armed entry's deadline. */
                size_t i = rng_next(&r) % (next_id ? next_id : 1);
                to = b->st[i] == E_ARMED ? b->e[i].when_ - rng_next(&r) % 2 : now + 1;
                break;
            }
            }
            if (to < now)
                to = now;
            now = to;
            if (rng_next(&r) % 4 == 0) {
                /* A partial poll: leave what is due on the pending list. */
                poll_once(b, now, max);
            } else {
                poll_all_due(b, now, max);
            }
        }
        /* The wheel's bookkeeping matches the model. */
        size_t armed = count_armed(b);
        EXPECT(b->w.armed == armed, "wheel counts %zu armed, model %zu", b->w.armed, armed);
        uint64_t nd = weft__wheel_next_due(&b->w), min = WEFT__WHEEL_NONE;
        for (size_t i = 0; i < next_id; i++)
            if (b->st[i] == E_ARMED && b->e[i].when_ < min)
                min = b->e[i].when_;
        EXPECT((min == WEFT__WHEEL_NONE) == (nd == WEFT__WHEEL_NONE),
              "next_due %" PRIu64 " with earliest armed %" PRIu64, nd, min);
        EXPECT(nd <= min || min < b->w.elapsed,
              "next_due %" PRIu64 " after the earliest deadline %" PRIu64, nd, min);
    }
    /* Drain: step to each next_due until nothing is armed. */
    uint64_t nd;
    unsigned guard = 0;
    while ((nd = weft__wheel_next_due(&b->w)) != WEFT__WHEEL_NONE) {
        if (nd < now)
            nd = now;
        now = nd;
        poll_all(b, now, max);
        EXPECT(++guard < 1000000, "drain does not terminate");
    }
    for (size_t i = 0; i < next_id; i++)
        EXPECT(b->st[i] == E_FIRED || b->st[i] == E_REMOVED,
              "entry %zu (due %" PRIu64 ") never fired", i, b->e[i].when_);
    EXPECT(b->w.armed == 0, "%zu armed after the drain", b->w.armed);
    bench_free(b);
}

static void test_wheel_randomized_fires_each_entry_once_on_time(void **state)
{
    (void)state;
    const char *env = getenv("WEFT_TEST_SEED");
    g_randomized = true;
    if (env) {
        g_seed = strtoull(env, NULL, 0);
        print_message("seed %" PRIu64 " (from WEFT_TEST_SEED)\n", g_seed);
        for (unsigned round = 0; round < RAND_ROUNDS; round++)
            random_round(g_seed * 1000 + round);
        g_randomized = false;
        return;
    }
    for (g_seed = 1; g_seed <= 8; g_seed++)
        for (unsigned round = 0; round < RAND_ROUNDS; round++)
            random_round(g_seed * 1000 + round);
    g_randomized = false;
}

int main(void)
{
    /* A broken wheel tends to loop forever inside weft__wheel_poll. */
    alarm_watchdog_install("watchdog: test hung (endless loop in the wheel?)\n");
#define T(fn) cmocka_unit_test_setup_teardown(fn, alarm_watchdog_arm, alarm_watchdog_disarm)
    const struct CMUnitTest tests[] = {
        T(test_wheel_tick_ceil_rounds_deadlines_up),
        T(test_wheel_tick_floor_rounds_the_present_down),
        T(test_wheel_ticks_before_origin_are_zero),
        T(test_wheel_insert_picks_level_by_distance),
        T(test_wheel_cascade_fires_exactly_at_deadline_when_jumping),
        T(test_wheel_cascade_moves_down_each_level_when_stepping),
        T(test_wheel_beyond_span_wraps_through_top_level),
        T(test_wheel_fires_in_deadline_order_within_a_level),
        T(test_wheel_fires_in_deadline_order_across_levels),
        T(test_wheel_remove_from_each_level),
        T(test_wheel_remove_head_middle_tail_of_a_slot),
        T(test_wheel_remove_from_pending_list),
        T(test_wheel_rearm_after_remove_fires_at_new_deadline),
        T(test_wheel_next_due),
        T(test_wheel_poll_advances_elapsed_when_nothing_is_due),
        T(test_wheel_poll_small_max_returns_batches_then_the_rest),
        T(test_wheel_randomized_fires_each_entry_once_on_time),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
