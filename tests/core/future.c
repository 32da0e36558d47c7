/* Unit tests for core/future.c, core/waker.c and the coroutine macros of
 * weft/co.h: the noop waker, weft_yield, weft_ready, output sizes, the atomic waker
 * (including a two-thread register/wake race), debug-build misuse reports,
 * and coroutines awaiting children. Everything here is polled by hand on
 * the test thread; no runtime is involved. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/co_future.h"
#include "support/countdown.h"
#include "support/counting_waker.h"
#include "support/misuse_capture.h"
#include "support/poll.h"
#include "support/rng.h"

/* ---- helpers ---------------------------------------------------------------- */

/* Two counting wakers (support/counting_waker.h), the test's handles to
 * them, and an atomic waker, for the tests that watch wakes. */
typedef struct waker_fixture {
    counting_waker c, c2;
    weft_waker w, w2;
    weft_atomic_waker aw;
} waker_fixture;

static int waker_setup(void **state)
{
    waker_fixture *f = test_malloc(sizeof *f);
    cw_init(&f->c);
    cw_init(&f->c2);
    f->w = cw_waker(&f->c);
    f->w2 = cw_waker(&f->c2);
    weft_atomic_waker_init(&f->aw);
    *state = f;
    return 0;
}

static int waker_teardown(void **state)
{
    test_free(*state);
    return 0;
}

/* Spin (yielding the CPU) until `*flag` reaches `want`. A bounded number of
 * pause instructions between sched_yield calls keeps the handshake fast on
 * an idle machine and fair on a loaded one. */
static void spin_until_eq(_Atomic long *flag, long want)
{
    unsigned n = 0;
    /* Acquire: pairs with the release store of the other side, so what it
     * wrote before the store is visible after the loop. */
    while (weft_atomic_load_acquire(flag) != want) {
        if (++n % 64 == 0)
            sched_yield();
        else
            weft__cpu_relax();
    }
}

/* ---- noop waker ------------------------------------------------------------------ */

static void test_noop_waker_does_nothing_and_clones_to_itself(void **state)
{
    (void)state;
    weft_waker w = weft_waker_noop();
    assert_non_null(w.ops);
    weft_waker c = weft_waker_clone(&w);
    assert_true(weft_waker_will_wake(&w, &c));
    weft_waker_wake_by_ref(&w);
    weft_waker_wake(&c);
    assert_null(c.ops); /* consumed */
    weft_waker d = weft_waker_clone(&w);
    weft_waker_drop(&d);
    assert_null(d.ops);

    /* The empty waker clones to the empty waker and ignores wakes. */
    weft_waker e = WEFT_WAKER_EMPTY;
    weft_waker e2 = weft_waker_clone(&e);
    assert_null(e2.ops);
    weft_waker_wake_by_ref(&e);
    weft_waker_wake(&e2);
    weft_waker_drop(&e2);

    /* A noop waker can drive a future by hand. */
    weft_yield y;
    weft_yield_init(&y);
    assert_int_equal(poll_with(&y.base, &w, NULL), WEFT_PENDING);
    assert_int_equal(poll_with(&y.base, &w, NULL), WEFT_READY);
    weft_future_drop(&y.base);
}

/* ---- weft_yield ------------------------------------------------------------------ */

static void test_yield_is_pending_once_then_ready_and_wakes_once(void **state)
{
    waker_fixture *f = *state;
    weft_yield y;
    weft_yield_init(&y);
    assert_true(weft_future_is_send(&y.base));
    assert_int_equal(weft_future_out_size(&y.base), 0);
    assert_int_equal(poll_with(&y.base, &f->w, NULL), WEFT_PENDING);
    assert_int_equal(cw_woken(&f->c), 1);
    assert_int_equal(poll_with(&y.base, &f->w, NULL), WEFT_READY);
    assert_int_equal(cw_woken(&f->c), 1);
    weft_future_drop(&y.base);
    assert_int_equal(cw_outstanding(&f->c), 0);
}

/* ---- weft_ready ------------------------------------------------------------------ */

static void test_ready_outputs_its_value(void **state)
{
    (void)state;

    weft_ready r;
    int v = 1234567;
    assert_int_equal(weft_ready_init(&r, &v, sizeof v), 0);
    v = 0; /* the future holds a copy */
    assert_true(weft_future_is_send(&r.base));
    assert_int_equal(weft_future_out_size(&r.base), sizeof(int));
    int out = -1;
    assert_int_equal(poll_noop(&r.base, &out), WEFT_READY);
    assert_int_equal(out, 1234567);
    weft_future_drop(&r.base);

    /* The largest value, byte for byte. */
    unsigned char big[WEFT_READY_MAX], got[WEFT_READY_MAX];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    memset(got, 0, sizeof got);
    assert_int_equal(weft_ready_init(&r, big, sizeof big), 0);
    assert_int_equal(weft_future_out_size(&r.base), WEFT_READY_MAX);
    assert_int_equal(poll_noop(&r.base, got), WEFT_READY);
    assert_memory_equal(got, big, sizeof big);
    weft_future_drop(&r.base);

    /* Size 0: no value needed, no output written. */
    assert_int_equal(weft_ready_init(&r, NULL, 0), 0);
    assert_int_equal(weft_future_out_size(&r.base), 0);
    assert_int_equal(poll_noop(&r.base, NULL), WEFT_READY);
    weft_future_drop(&r.base);
}

static void test_ready_init_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_ready r;
    unsigned char big[WEFT_READY_MAX + 1] = { 0 };
    int v = 1;
    assert_int_equal(weft_ready_init(&r, big, sizeof big), -EINVAL);
    assert_int_equal(weft_ready_init(&r, NULL, sizeof v), -EINVAL);
    assert_int_equal(weft_ready_init(NULL, &v, sizeof v), -EINVAL);
}

/* ---- output sizes ------------------------------------------------------------------ */

typedef struct sized {
    weft_future base;
    size_t n;
} sized;

static weft_poll sized_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx;
    memset(out, 0xab, ((sized *)f)->n);
    return WEFT_READY;
}

static size_t sized_out_size(const weft_future *f)
{
    return ((const sized *)f)->n;
}

static const weft_future_ops fixed_ops = { "test_fixed", 24, sized_poll, NULL, NULL };
static const weft_future_ops varies_ops = {
    "test_varies", WEFT_OUT_SIZE_VARIES, sized_poll, NULL, sized_out_size,
};

static void test_out_size_fixed_and_varies(void **state)
{
    (void)state;
    sized a, b, c;
    weft_future_init(&a.base, &fixed_ops, 0);
    a.n = 24;
    assert_int_equal(weft_future_out_size(&a.base), 24);

    weft_future_init(&b.base, &varies_ops, 0);
    b.n = 5;
    weft_future_init(&c.base, &varies_ops, 0);
    c.n = 40;
    /* Same ops, per-instance sizes. */
    assert_int_equal(weft_future_out_size(&b.base), 5);
    assert_int_equal(weft_future_out_size(&c.base), 40);

    /* Flags: only the user bits survive init. */
    weft_future_init(&a.base, &fixed_ops, 0xffffffffu);
    assert_int_equal(a.base.flags, WEFT_F_USER_MASK);
    assert_true(weft_future_is_send(&a.base));
    weft_future_init(&a.base, &fixed_ops, 0);
    assert_false(weft_future_is_send(&a.base));
}

/* ---- coop budget and stream size hints --------------------------------------------- */

static void test_coop_budget_runs_out_and_wakes_the_task(void **state)
{
    waker_fixture *f = *state;
    weft_cx cx;
    weft_cx_init(&cx, &f->w);
    assert_int_equal(cx.budget, WEFT_COOP_BUDGET);
    for (unsigned i = 0; i < WEFT_COOP_BUDGET; i++)
        assert_true(weft_coop_proceed(&cx));
    assert_int_equal(cw_woken(&f->c), 0);
    /* Spent: the leaf must return PENDING, and the task is woken so it is
     * polled again in a later turn. */
    assert_false(weft_coop_proceed(&cx));
    assert_int_equal(cw_woken(&f->c), 1);
    assert_int_equal(cw_outstanding(&f->c), 0);
}

typedef struct hinted {
    weft_stream base;
    size_t lo, hi;
} hinted;

static weft_next hinted_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    (void)s, (void)cx, (void)item;
    return WEFT_NEXT_DONE;
}

static void hinted_size_hint(const weft_stream *s, size_t *lo, size_t *hi)
{
    *lo = ((const hinted *)s)->lo;
    *hi = ((const hinted *)s)->hi;
}

static const weft_stream_ops hinted_ops = {
    .name = "test_hinted", .poll_next = hinted_poll_next, .size_hint = hinted_size_hint,
};
static const weft_stream_ops unhinted_ops = {
    .name = "test_unhinted", .poll_next = hinted_poll_next,
};

static void test_stream_size_hint_defaults_to_unknown(void **state)
{
    (void)state;
    hinted h;
    size_t lo = 99, hi = 99;
    weft_stream_init(&h.base, &unhinted_ops, 0);
    weft_stream_size_hint(&h.base, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_true(hi == SIZE_MAX);
    weft_stream_init(&h.base, &hinted_ops, 0);
    h.lo = 3;
    h.hi = 7;
    weft_stream_size_hint(&h.base, &lo, &hi);
    assert_int_equal(lo, 3);
    assert_int_equal(hi, 7);
}

/* ---- atomic waker ------------------------------------------------------------------ */

static void test_atomic_waker_register_then_wake_wakes_once(void **state)
{
    waker_fixture *f = *state;
    weft_atomic_waker_register(&f->aw, &f->w);
    assert_int_equal(weft_atomic_load_relaxed(&f->c.clones), 1);
    assert_int_equal(cw_woken(&f->c), 0);
    weft_atomic_waker_wake(&f->aw);
    assert_int_equal(cw_woken(&f->c), 1);
    /* The slot is empty now: a second wake has nothing to wake. */
    weft_atomic_waker_wake(&f->aw);
    assert_int_equal(cw_woken(&f->c), 1);
    weft_atomic_waker_fini(&f->aw);
    assert_int_equal(cw_outstanding(&f->c), 0);
}

static void test_atomic_waker_wake_with_nothing_registered_is_a_noop(void **state)
{
    waker_fixture *f = *state;
    weft_atomic_waker aw = WEFT_ATOMIC_WAKER_INIT; /* not the fixture's: the initialiser */

    weft_atomic_waker_wake(&aw);
    weft_atomic_waker_wake(&aw);
    /* The earlier wakes are not stored up for a later registration. */
    weft_atomic_waker_register(&aw, &f->w);
    assert_int_equal(cw_woken(&f->c), 0);
    weft_waker taken;
    assert_true(weft_atomic_waker_take(&aw, &taken));
    weft_waker_drop(&taken);
    weft_atomic_waker_fini(&aw);
    assert_int_equal(cw_outstanding(&f->c), 0);
}

static void test_atomic_waker_reregister_same_waker_does_not_clone_again(void **state)
{
    waker_fixture *f = *state;
    for (int i = 0; i < 5; i++)
        weft_atomic_waker_register(&f->aw, &f->w);
    assert_int_equal(weft_atomic_load_relaxed(&f->c.clones), 1);
    assert_int_equal(weft_atomic_load_relaxed(&f->c.drops), 0);

    /* A different waker replaces the stored one: the old clone is dropped. */
    weft_atomic_waker_register(&f->aw, &f->w2);
    assert_int_equal(weft_atomic_load_relaxed(&f->c.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&f->c2.clones), 1);
    weft_atomic_waker_wake(&f->aw);
    assert_int_equal(cw_woken(&f->c), 0);
    assert_int_equal(cw_woken(&f->c2), 1);
    weft_atomic_waker_fini(&f->aw);
    assert_int_equal(cw_outstanding(&f->c), 0);
    assert_int_equal(cw_outstanding(&f->c2), 0);
}

static void test_atomic_waker_take_hands_over_without_waking(void **state)
{
    waker_fixture *f = *state;
    weft_waker taken = WEFT_WAKER_EMPTY;

    assert_false(weft_atomic_waker_take(&f->aw, &taken));
    weft_atomic_waker_register(&f->aw, &f->w);
    assert_true(weft_atomic_waker_take(&f->aw, &taken));
    assert_true(weft_waker_will_wake(&taken, &f->w));
    assert_int_equal(cw_woken(&f->c), 0);
    /* Taken means gone: neither a second take nor a wake finds it. */
    weft_waker again = WEFT_WAKER_EMPTY;
    assert_false(weft_atomic_waker_take(&f->aw, &again));
    weft_atomic_waker_wake(&f->aw);
    assert_int_equal(cw_woken(&f->c), 0);
    /* The caller owns the taken waker. */
    weft_waker_wake(&taken);
    assert_int_equal(weft_atomic_load_relaxed(&f->c.wakes), 1);
    weft_atomic_waker_fini(&f->aw);
    assert_int_equal(cw_outstanding(&f->c), 0);
}

static void test_atomic_waker_fini_drops_the_registered_waker(void **state)
{
    waker_fixture *f = *state;
    weft_atomic_waker_register(&f->aw, &f->w);
    assert_int_equal(cw_outstanding(&f->c), 1);
    weft_atomic_waker_fini(&f->aw);
    assert_int_equal(weft_atomic_load_relaxed(&f->c.drops), 1);
    assert_int_equal(cw_woken(&f->c), 0);
    assert_int_equal(cw_outstanding(&f->c), 0);

    /* fini of an empty atomic waker drops nothing. */
    weft_atomic_waker_init(&f->aw);
    weft_atomic_waker_fini(&f->aw);
}

/* Register/wake race. Each round the consumer (this thread) registers one of
 * two wakers (alternating, so every register replaces the slot and clones)
 * while the producer thread publishes `data = round` and then wakes. The
 * rounds are released together and each side waits a random short while
 * first, so the wake lands before, inside and after the register. After the
 * round the consumer checks the contract:
 *  - if the producer saw the register return before it started to wake,
 *    the registered waker was woken (a wake after register is never lost);
 *  - if the consumer, after register returned, did not yet see the data the
 *    producer published before waking, the waker was woken (the classic
 *    "register, then check the condition" pattern is sound);
 *  - the waker was woken exactly once, or else (the wake finished before
 *    register began) it is the one left registered — never neither. */
#define RACE_ROUNDS 100000L

typedef struct race {
    weft_atomic_waker aw;
    counting_waker wk[2];
    _Atomic long go;         /* round released by the consumer */
    _Atomic long pdone;      /* round finished by the producer */
    _Atomic long data;       /* published by the producer before waking */
    _Atomic long registered; /* round whose register has returned */
    _Atomic long saw_registered; /* round in which the wake began after it */
} race;

static void short_spin(uint64_t *rng)
{
    unsigned n = rng_next32(rng) % 256u;
    for (unsigned i = 0; i < n; i++)
        weft__cpu_relax();
}

static void *race_producer(void *arg)
{
    race *r = arg;
    uint64_t rng = rng_seed(2);
    cw_thread_id = 2;
    for (long round = 1; round <= RACE_ROUNDS; round++) {
        spin_until_eq(&r->go, round);
        short_spin(&rng);
        /* SeqCst: the data store, the `registered` load below and the
         * consumer's accesses form one order, which the assertions use. */
        weft_atomic_store_seq_cst(&r->data, round);
        bool after_register = weft_atomic_load_seq_cst(&r->registered) == round;
        weft_atomic_waker_wake(&r->aw);
        if (after_register)
            weft_atomic_store_relaxed(&r->saw_registered, round);
        /* Release: the wake's effects and saw_registered are visible to the
         * consumer once it sees pdone (pairs with spin_until_eq). */
        weft_atomic_store_release(&r->pdone, round);
    }
    return NULL;
}

static void test_atomic_waker_register_wake_race_never_loses_a_wake(void **state)
{
    (void)state;
    race *r = test_calloc(1, sizeof *r);
    weft_atomic_waker_init(&r->aw);
    cw_init(&r->wk[0]);
    cw_init(&r->wk[1]);
    r->wk[0].clone_spin = 64;
    r->wk[1].clone_spin = 64;
    weft_atomic_init(&r->go, 0);
    weft_atomic_init(&r->pdone, 0);
    weft_atomic_init(&r->data, 0);
    weft_atomic_init(&r->registered, 0);
    weft_atomic_init(&r->saw_registered, 0);

    pthread_t producer;
    assert_int_equal(pthread_create(&producer, NULL, race_producer, r), 0);
    uint64_t rng = rng_seed(1);
    long woken_by_registerer = 0, left_registered = 0, after_register = 0;
    cw_thread_id = 1;
    for (long round = 1; round <= RACE_ROUNDS; round++) {
        counting_waker *c = &r->wk[round & 1];
        weft_waker w = cw_waker(c);
        long before = cw_woken(c);
        /* Release: the previous round's checks are done before the producer
         * starts the next wake. */
        weft_atomic_store_release(&r->go, round);
        short_spin(&rng);
        weft_atomic_waker_register(&r->aw, &w);
        weft_atomic_store_seq_cst(&r->registered, round);
        long seen = weft_atomic_load_seq_cst(&r->data);
        spin_until_eq(&r->pdone, round);

        long woke = cw_woken(c) - before;
        bool stored = r->aw.waker.data == c;
        bool wake_after = weft_atomic_load_relaxed(&r->saw_registered) == round;
        if (woke > 1)
            fail_msg("round %ld: one wake woke the waker %ld times", round, woke);
        if (wake_after && woke != 1)
            fail_msg("round %ld: a wake issued after register returned was lost",
                     round);
        if (seen != round && woke != 1)
            fail_msg("round %ld: register returned before the data was visible, "
                     "but the waker was never woken", round);
        if ((woke == 1) == stored)
            fail_msg("round %ld: waker %s", round,
                     stored ? "woken and still registered"
                            : "neither woken nor registered (wake lost)");
        if (woke == 1) {
            if (weft_atomic_load_relaxed(&c->last_waker) == 1)
                woken_by_registerer++;
        } else {
            left_registered++;
        }
        after_register += wake_after;
    }
    assert_int_equal(pthread_join(producer, NULL), 0);
    weft_atomic_waker_fini(&r->aw);
    assert_int_equal(cw_outstanding(&r->wk[0]), 0);
    assert_int_equal(cw_outstanding(&r->wk[1]), 0);
    print_message("    %ld rounds: %ld woken by the registering thread (race paths), "
                  "%ld wakes after register, %ld wakes before register\n",
                  RACE_ROUNDS, woken_by_registerer, after_register, left_registered);
    cw_thread_id = 0;
    test_free(r);
}

/* ---- misuse reports (debug builds) ----------------------------------------------- */

/* Release builds neither report misuse nor refuse the polls: there these
 * tests are skipped. */
#ifndef NDEBUG

static void test_moved_future_is_reported_by_name_and_not_polled(void **state)
{
    (void)state;
    static const weft_future_ops pinned_ops = COUNTDOWN_OPS("test_pinned_future");
    countdown_counts n;
    countdown f[2];
    countdown_start(&f[0], &n, 100, 0, WEFT_F_SEND);
    f[0].base.ops = &pinned_ops;
    int out;

    assert_int_equal(poll_noop(&f[0].base, &out), WEFT_PENDING);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 1);
    assert_int_equal(misuse_count(), 0);

    memcpy(&f[1], &f[0], sizeof f[0]);
    assert_int_equal(poll_noop(&f[1].base, &out), WEFT_PENDING);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 1);
    assert_true(misuse_reported(1, "test_pinned_future"));

    /* The original, unmoved, still polls normally. */
    assert_int_equal(poll_noop(&f[0].base, &out), WEFT_PENDING);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 2);
    assert_int_equal(misuse_count(), 1);
    weft_future_drop(&f[0].base);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
}

static void test_future_polled_after_ready_is_reported_by_name_and_not_polled(void **state)
{
    (void)state;
    static const weft_future_ops done_ops = COUNTDOWN_OPS("test_finished_future");
    countdown_counts n;
    countdown f;
    countdown_start(&f, &n, 0, 77, WEFT_F_SEND);
    f.base.ops = &done_ops;
    int out = 0;

    assert_int_equal(poll_noop(&f.base, &out), WEFT_READY);
    assert_int_equal(out, 77);
    out = 0;
    assert_int_equal(poll_noop(&f.base, &out), WEFT_PENDING);
    assert_int_equal(out, 0);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 1);
    assert_true(misuse_reported(1, "test_finished_future"));
    weft_future_drop(&f.base);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
}

/* A stream of `left` ints counting down, then DONE. */
typedef struct countdown_stream {
    weft_stream base;
    int left, polls;
} countdown_stream;

static weft_next cds_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    countdown_stream *c = (countdown_stream *)s;
    (void)cx;
    c->polls++;
    if (c->left == 0)
        return WEFT_NEXT_DONE;
    *(int *)item = c->left--;
    return WEFT_NEXT_ITEM;
}

static const weft_stream_ops cds_ops = {
    .name = "test_finished_stream", .item_size = sizeof(int), .poll_next = cds_poll_next,
};

static void test_stream_polled_after_done_is_reported_by_name_and_not_polled(void **state)
{
    (void)state;
    countdown_stream s[2];
    weft_stream_init(&s[0].base, &cds_ops, WEFT_F_SEND);
    s[0].left = 2;
    s[0].polls = 0;
    weft_waker w = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &w);
    int item = 0;

    assert_int_equal(weft_stream_poll_next(&s[0].base, &cx, &item), WEFT_NEXT_ITEM);
    assert_int_equal(item, 2);
    assert_int_equal(weft_stream_poll_next(&s[0].base, &cx, &item), WEFT_NEXT_ITEM);
    assert_int_equal(item, 1);
    assert_int_equal(weft_stream_poll_next(&s[0].base, &cx, &item), WEFT_NEXT_DONE);
    assert_int_equal(s[0].polls, 3);
    assert_int_equal(misuse_count(), 0);

    assert_int_equal(weft_stream_poll_next(&s[0].base, &cx, &item), WEFT_NEXT_PENDING);
    assert_int_equal(s[0].polls, 3);
    assert_true(misuse_reported(1, "test_finished_stream"));

    /* A stream moved after its first poll is refused the same way. */
    weft_stream_init(&s[0].base, &cds_ops, WEFT_F_SEND);
    s[0].left = 5;
    s[0].polls = 0;
    assert_int_equal(weft_stream_poll_next(&s[0].base, &cx, &item), WEFT_NEXT_ITEM);
    memcpy(&s[1], &s[0], sizeof s[0]);
    assert_int_equal(weft_stream_poll_next(&s[1].base, &cx, &item), WEFT_NEXT_PENDING);
    assert_int_equal(s[1].polls, 1);
    assert_true(misuse_reported(2, "test_finished_stream"));
}
#else
#define SKIPPED(name)                                                         \
    static void name(void **state)                                            \
    {                                                                         \
        (void)state;                                                          \
        skip();                                                               \
    }
SKIPPED(test_moved_future_is_reported_by_name_and_not_polled)
SKIPPED(test_future_polled_after_ready_is_reported_by_name_and_not_polled)
SKIPPED(test_stream_polled_after_done_is_reported_by_name_and_not_polled)
#endif

/* ---- coroutines ---------------------------------------------------------------- */

/* Awaits `a`, then `b`, then a fresh child four times in a loop, with
 * different numbers of PENDING polls each; outputs the sum. */
typedef struct seq_co {
    weft_future base;
    weft_co co;
    countdown a, b, loop;
    countdown_counts na, nb, nloop;
    int i;
    int got_a, got_b, got_loop[4];
} seq_co;

static weft_poll seq_co_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(seq_co, s);
    countdown_init(&s->a, 2, 10, &s->na, WEFT_F_SEND);
    WEFT_AWAIT(&s->co, cx, &s->a.base, &s->got_a);
    countdown_init(&s->b, 0, 20, &s->nb, WEFT_F_SEND);
    WEFT_AWAIT(&s->co, cx, &s->b.base, &s->got_b);
    for (s->i = 0; s->i < 4; s->i++) {
        countdown_init(&s->loop, s->i, 100 + s->i, &s->nloop, WEFT_F_SEND);
        WEFT_AWAIT(&s->co, cx, &s->loop.base, &s->got_loop[s->i]);
    }
    *(int *)out = s->got_a + s->got_b + s->got_loop[0] + s->got_loop[1] +
                  s->got_loop[2] + s->got_loop[3];
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(seq_co, "test_seq_co", sizeof(int));

static void seq_co_init(seq_co *s)
{
    co_future_init(s, sizeof *s, &seq_co_ops, WEFT_F_SEND);
    countdown_counts_init(&s->na);
    countdown_counts_init(&s->nb);
    countdown_counts_init(&s->nloop);
}

static void test_coroutine_awaits_in_sequence_and_in_a_loop(void **state)
{
    waker_fixture *f = *state;
    seq_co *s = test_malloc(sizeof *s);
    seq_co_init(s);
    int out = 0, pendings = 0;
    while (poll_with(&s->base, &f->w, &out) == WEFT_PENDING) {
        pendings++;
        assert_true(pendings < 100);
    }
    /* a: 2 PENDING polls; b: none; the loop's children: 0 + 1 + 2 + 3. */
    assert_int_equal(pendings, 2 + 0 + 6);
    assert_int_equal(cw_woken(&f->c), pendings);
    assert_int_equal(s->got_a, 10);
    assert_int_equal(s->got_b, 20);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s->got_loop[i], 100 + i);
    assert_int_equal(out, 10 + 20 + 100 + 101 + 102 + 103);
    assert_int_equal(weft_atomic_load_relaxed(&s->na.polls), 3);
    assert_int_equal(weft_atomic_load_relaxed(&s->nb.polls), 1);
    assert_int_equal(weft_atomic_load_relaxed(&s->nloop.polls), 1 + 2 + 3 + 4);
    /* Each child was dropped once, as soon as it was READY. */
    assert_int_equal(weft_atomic_load_relaxed(&s->na.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&s->nb.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&s->nloop.drops), 4);
    assert_null(s->co.awaiting);

    /* Dropping the finished coroutine drops no child a second time. */
    weft_future_drop(&s->base);
    assert_int_equal(weft_atomic_load_relaxed(&s->na.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&s->nb.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&s->nloop.drops), 4);
    assert_int_equal(cw_outstanding(&f->c), 0);
    test_free(s);
}

static void test_coroutine_dropped_while_suspended_drops_child_once(void **state)
{
    (void)state;
    int out;

    /* Suspended on the first child. */
    seq_co *s = test_malloc(sizeof *s);
    seq_co_init(s);
    assert_int_equal(poll_noop(&s->base, &out), WEFT_PENDING);
    assert_ptr_equal(s->co.awaiting, &s->a.base);
    weft_future_drop(&s->base);
    assert_int_equal(weft_atomic_load_relaxed(&s->na.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&s->nb.drops), 0);
    assert_int_equal(weft_atomic_load_relaxed(&s->nloop.drops), 0);
    assert_null(s->co.awaiting);

    /* Suspended inside the loop, after earlier children completed. */
    seq_co_init(s);
    do {
        assert_int_equal(poll_noop(&s->base, &out), WEFT_PENDING);
    } while (s->i < 2);
    assert_ptr_equal(s->co.awaiting, &s->loop.base);
    assert_int_equal(weft_atomic_load_relaxed(&s->nloop.drops), 2);
    weft_future_drop(&s->base);
    assert_int_equal(weft_atomic_load_relaxed(&s->na.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&s->nb.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&s->nloop.drops), 3);

    /* Never polled: nothing awaited, nothing to drop. */
    seq_co_init(s);
    weft_future_drop(&s->base);
    assert_int_equal(weft_atomic_load_relaxed(&s->na.drops), 0);
    assert_int_equal(weft_atomic_load_relaxed(&s->nb.drops), 0);
    assert_int_equal(weft_atomic_load_relaxed(&s->nloop.drops), 0);
    test_free(s);
}

typedef struct yield_co {
    weft_future base;
    weft_co co;
    int before, after;
} yield_co;

static weft_poll yield_co_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(yield_co, s);
    s->before++;
    WEFT_CO_YIELD(&s->co, cx);
    s->after++;
    *(int *)out = 5;
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(yield_co, "test_yield_co", sizeof(int));

static void test_coroutine_yield_is_pending_once_then_resumes(void **state)
{
    waker_fixture *f = *state;
    yield_co s = { WEFT_FUTURE_INIT(&yield_co_ops, WEFT_F_SEND), WEFT_CO_INIT, 0, 0 };
    int out = 0;
    assert_int_equal(poll_with(&s.base, &f->w, &out), WEFT_PENDING);
    assert_int_equal(cw_woken(&f->c), 1);
    assert_int_equal(s.before, 1);
    assert_int_equal(s.after, 0);
    assert_int_equal(poll_with(&s.base, &f->w, &out), WEFT_READY);
    assert_int_equal(s.before, 1); /* resumed after the yield, not restarted */
    assert_int_equal(s.after, 1);
    assert_int_equal(out, 5);
    assert_int_equal(cw_woken(&f->c), 1);
    weft_future_drop(&s.base);
    assert_int_equal(cw_outstanding(&f->c), 0);
}

int main(void)
{
#define W(fn) cmocka_unit_test_setup_teardown(fn, waker_setup, waker_teardown)
#define M(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noop_waker_does_nothing_and_clones_to_itself),
        W(test_yield_is_pending_once_then_ready_and_wakes_once),
        cmocka_unit_test(test_ready_outputs_its_value),
        cmocka_unit_test(test_ready_init_rejects_bad_arguments),
        cmocka_unit_test(test_out_size_fixed_and_varies),
        W(test_coop_budget_runs_out_and_wakes_the_task),
        cmocka_unit_test(test_stream_size_hint_defaults_to_unknown),
        W(test_atomic_waker_register_then_wake_wakes_once),
        W(test_atomic_waker_wake_with_nothing_registered_is_a_noop),
        W(test_atomic_waker_reregister_same_waker_does_not_clone_again),
        W(test_atomic_waker_take_hands_over_without_waking),
        W(test_atomic_waker_fini_drops_the_registered_waker),
        cmocka_unit_test(test_atomic_waker_register_wake_race_never_loses_a_wake),
        M(test_moved_future_is_reported_by_name_and_not_polled),
        M(test_future_polled_after_ready_is_reported_by_name_and_not_polled),
        M(test_stream_polled_after_done_is_reported_by_name_and_not_polled),
        W(test_coroutine_awaits_in_sequence_and_in_a_loop),
        cmocka_unit_test(test_coroutine_dropped_while_suspended_drops_child_once),
        W(test_coroutine_yield_is_pending_once_then_resumes),
    };
#undef W
#undef M
    return cmocka_run_group_tests(tests, NULL, NULL);
}
