/* Unit tests for core/park.c: the futex parker.
 *
 * No test sleeps to wait for a thread or checks elapsed time: threads hand
 * off through the parker itself or through flags they spin on. Timeouts
 * appear only as arguments of park_timeout (zero, a few microseconds, or a
 * bound of an hour). A broken parker shows up as a failed check or as a
 * test that never finishes (ctest's timeout). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "core/atomic.h"
#include "core/park.h"
#include "support/rng.h"

/* The state word's value while the owner sleeps (park.c: EMPTY 0,
 * PARKED 1, NOTIFIED 2). Watching it lets a test unpark only once the
 * owner is really asleep, so the futex path runs every time. */
#define PARKED_STATE 1u

static void test_park_returns_at_once_after_unpark(void **state)
{
    (void)state;
    weft__parker p;
    weft__parker_init(&p);
    /* The token left by an earlier unpark: park must not block. */
    weft__unpark(&p);
    weft__park(&p);
    /* Several unparks before a park still leave a token (one is enough). */
    weft__unpark(&p);
    weft__unpark(&p);
    weft__unpark(&p);
    weft__park(&p);
    /* And the parker is reusable. */
    weft__unpark(&p);
    weft__park(&p);
}

struct wake_arg {
    weft__parker p;
    _Atomic bool about_to_park;
    int payload; /* plain: park must publish the unparker's writes */
};

static void *unpark_when_parked(void *arg)
{
    struct wake_arg *w = arg;
    /* Acquire: pairs with the main thread's release announcement. */
    while (!atomic_load_explicit(&w->about_to_park, memory_order_acquire))
        sched_yield();
    /* No token is outstanding, so the state leaves EMPTY only for PARKED:
     * wait for the owner to be asleep, so the wake path is what we test. */
    while (atomic_load(&w->p.state) != PARKED_STATE)
        sched_yield();
    w->payload = 42;
    weft__unpark(&w->p);
    return NULL;
}

/* Starts a thread that unparks `w` once its owner (the caller) sleeps in
 * a park, after setting the payload; the caller parks next. */
static void start_unparker(struct wake_arg *w, pthread_t *th)
{
    w->payload = 0;
    weft__parker_init(&w->p);
    weft_atomic_init(&w->about_to_park, false);
    assert_int_equal(pthread_create(th, NULL, unpark_when_parked, w), 0);
    /* Release: the parker's init happens-before the other thread uses it. */
    atomic_store_explicit(&w->about_to_park, true, memory_order_release);
}

static void test_park_wakes_on_unpark_from_other_thread(void **state)
{
    (void)state;
    struct wake_arg w;
    pthread_t th;
    start_unparker(&w, &th);
    weft__park(&w.p);
    /* Read before the join: visible because unpark released it. */
    assert_int_equal(w.payload, 42);
    assert_int_equal(pthread_join(th, NULL), 0);
}

#define PING_PONG_ROUNDS 100000u

struct ping_pong {
    weft__parker a, b;
    /* Plain on purpose: only the thread holding the turn touches it, and
     * park/unpark are the only synchronisation (TSan checks that). */
    unsigned ball;
    unsigned errors;
};

static void *pong(void *arg)
{
    struct ping_pong *pp = arg;
    for (unsigned i = 0; i < PING_PONG_ROUNDS; i++) {
        weft__park(&pp->b);
        /* A spurious return would read the ball before ping served it. */
        if (pp->ball != 2 * i + 1)
            pp->errors++;
        pp->ball = 2 * i + 2;
        weft__unpark(&pp->a);
    }
    return NULL;
}

static void test_park_ping_pong_between_two_threads_completes(void **state)
{
    (void)state;
    struct ping_pong pp = { .ball = 0, .errors = 0 };
    weft__parker_init(&pp.a);
    weft__parker_init(&pp.b);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pong, &pp), 0);
    unsigned errors = 0;
    for (unsigned i = 0; i < PING_PONG_ROUNDS; i++) {
        pp.ball = 2 * i + 1;
        weft__unpark(&pp.b);
        weft__park(&pp.a);
        if (pp.ball != 2 * i + 2)
            errors++;
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(errors, 0);
    assert_int_equal(pp.errors, 0);
    assert_int_equal(pp.ball, 2 * PING_PONG_ROUNDS);
}

/* The usual pattern: wakers publish work, then unpark; the sleeper
 * re-checks for work before each park. A lost wakeup leaves the sleeper
 * parked forever with work pending. */
#define WAKERS 3
#define WAKES_PER_WAKER 20000u

struct many {
    weft__parker p;
    _Atomic unsigned work;
};

static void *waker(void *arg)
{
    struct many *m = arg;
    for (unsigned i = 0; i < WAKES_PER_WAKER; i++) {
        atomic_fetch_add(&m->work, 1);
        weft__unpark(&m->p);
    }
    return NULL;
}

static void test_park_no_lost_wakeup_with_many_unparkers(void **state)
{
    (void)state;
    struct many m = { .work = 0 };
    weft__parker_init(&m.p);
    pthread_t th[WAKERS];
    for (unsigned i = 0; i < WAKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, waker, &m), 0);
    unsigned taken = 0;
    while (taken < WAKERS * WAKES_PER_WAKER) {
        unsigned avail = atomic_load(&m.work);
        if (avail > taken) {
            taken = avail;
            continue;
        }
        weft__park(&m.p);
    }
    for (unsigned i = 0; i < WAKERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(taken, WAKERS * WAKES_PER_WAKER);
}

/* A signal interrupts the futex wait (EINTR); park must go back to sleep
 * rather than return without a token. The signaller waits until its
 * handler has run before it unparks, so a park that returned early finds
 * the unpark not yet done. */
#define SIGNAL_ROUNDS 50u

static _Atomic bool signal_handled;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&signal_handled, true);
}

struct signal_arg {
    weft__parker p;
    pthread_t parked_thread;
    _Atomic unsigned announced; /* round the parker is about to park in */
    _Atomic unsigned unparked;  /* round the signaller has unparked */
    _Atomic bool stop;
};

static void *signal_then_unpark(void *arg)
{
    struct signal_arg *s = arg;
    for (unsigned round = 1; round <= SIGNAL_ROUNDS; round++) {
        while (atomic_load(&s->announced) != round || atomic_load(&s->p.state) != PARKED_STATE) {
            if (atomic_load(&s->stop))
                return NULL;
            sched_yield();
        }
        atomic_store(&signal_handled, false);
        pthread_kill(s->parked_thread, SIGUSR1);
        while (!atomic_load(&signal_handled)) {
            if (atomic_load(&s->stop))
                return NULL;
            sched_yield();
        }
        /* Give an early return the chance to show; correctness does not
         * depend on how long this is. */
        for (int i = 0; i < 10; i++)
            sched_yield();
        atomic_store(&s->unparked, round);
        weft__unpark(&s->p);
    }
    return NULL;
}

static void test_park_stays_parked_when_a_signal_interrupts_the_wait(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the futex wait returns EINTR */
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);

    struct signal_arg s;
    weft__parker_init(&s.p);
    s.parked_thread = pthread_self();
    weft_atomic_init(&s.announced, 0);
    weft_atomic_init(&s.unparked, 0);
    weft_atomic_init(&s.stop, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, signal_then_unpark, &s), 0);
    unsigned early = 0;
    for (unsigned round = 1; round <= SIGNAL_ROUNDS && early == 0; round++) {
        atomic_store(&s.announced, round);
        weft__park(&s.p);
        if (atomic_load(&s.unparked) != round)
            early = round;
    }
    atomic_store(&s.stop, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    assert_int_equal(early, 0);
}

/* ---- park with a timeout ------------------------------------------------ */

static void test_park_timeout_returns_false_when_nobody_unparks(void **state)
{
    (void)state;
    weft__parker p;
    weft__parker_init(&p);
    assert_false(weft__park_timeout(&p, 0));
    assert_false(weft__park_timeout(&p, 1000));
    assert_false(weft__park_timeout(&p, 1000000));
    /* A timeout leaves the parker usable: a later token is still seen. */
    weft__unpark(&p);
    assert_true(weft__park_timeout(&p, 0));
}

static void test_park_timeout_takes_one_token(void **state)
{
    (void)state;
    weft__parker p;
    weft__parker_init(&p);
    /* Tokens do not pile up: three unparks make one token. */
    weft__unpark(&p);
    weft__unpark(&p);
    weft__unpark(&p);
    assert_true(weft__park_timeout(&p, 0));
    assert_false(weft__park_timeout(&p, 0));
    /* No limit behaves as park. */
    weft__unpark(&p);
    assert_true(weft__park_timeout(&p, UINT64_MAX));
    assert_false(weft__park_timeout(&p, 0));
    /* park and park_timeout share the token. */
    weft__unpark(&p);
    weft__park(&p);
    assert_false(weft__park_timeout(&p, 0));
}

static void test_park_timeout_wakes_on_unpark_from_other_thread(void **state)
{
    (void)state;
    struct wake_arg w;
    pthread_t th;
    start_unparker(&w, &th);
    /* An hour: a bound so a lost wakeup ends, not a timing assertion. */
    assert_true(weft__park_timeout(&w.p, 3600ull * 1000000000ull));
    assert_int_equal(w.payload, 42);
    assert_int_equal(pthread_join(th, NULL), 0);
}

/* Timeouts racing with unparks: each round another thread unparks once,
 * at a varying offset, while the owner waits with a zero or very short
 * timeout, so the unpark lands before, during and after the expiry check.
 * Whatever the interleaving, the unpark is taken exactly once: by that
 * wait (true) or, if the wait timed out, as a token left for the next. */
#define RACE_ROUNDS 40000u

struct race_arg {
    weft__parker p;
    _Atomic unsigned go, done;
};

static void *unpark_each_round(void *arg)
{
    struct race_arg *r = arg;
    uint64_t rng = rng_seed(1);
    for (unsigned round = 1; round <= RACE_ROUNDS; round++) {
        /* Spin briefly before yielding: a quick reaction is what reaches
         * the short window of a zero timeout. */
        for (unsigned spins = 0; atomic_load(&r->go) != round; spins++) {
            if (spins > 200)
                sched_yield();
            else
                weft__cpu_relax();
        }
        for (unsigned i = rng_next32(&rng) % 64; i > 0; i--)
            weft__cpu_relax();
        weft__unpark(&r->p);
        atomic_store(&r->done, round);
    }
    return NULL;
}

static void test_park_timeout_racing_unpark_never_loses_or_duplicates_token(void **state)
{
    (void)state;
    struct race_arg r = { .go = 0, .done = 0 };
    weft__parker_init(&r.p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, unpark_each_round, &r), 0);
    unsigned lost = 0, duplicated = 0;
    for (unsigned round = 1; round <= RACE_ROUNDS; round++) {
        atomic_store(&r.go, round);
        bool woke = weft__park_timeout(&r.p, round % 4 == 0 ? 2000u : 0u);
        for (unsigned spins = 0; atomic_load(&r.done) != round; spins++) {
            if (spins > 200)
                sched_yield();
            else
                weft__cpu_relax();
        }
        bool token_left = weft__park_timeout(&r.p, 0);
        lost += !woke && !token_left;
        duplicated += woke && token_left;
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(lost, 0);
    assert_int_equal(duplicated, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_park_returns_at_once_after_unpark),
        cmocka_unit_test(test_park_wakes_on_unpark_from_other_thread),
        cmocka_unit_test(test_park_ping_pong_between_two_threads_completes),
        cmocka_unit_test(test_park_no_lost_wakeup_with_many_unparkers),
        cmocka_unit_test(test_park_stays_parked_when_a_signal_interrupts_the_wait),
        cmocka_unit_test(test_park_timeout_returns_false_when_nobody_unparks),
        cmocka_unit_test(test_park_timeout_takes_one_token),
        cmocka_unit_test(test_park_timeout_wakes_on_unpark_from_other_thread),
        cmocka_unit_test(test_park_timeout_racing_unpark_never_loses_or_duplicates_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
