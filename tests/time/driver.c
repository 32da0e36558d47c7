/* Unit tests for time/driver.c: the timer driver on its own, with no
 * runtime — a parker standing for the worker that parks as the driver, a
 * counting hook standing for the scheduler's "wake a sleeper", and a
 * counting waker standing for the task a timer wakes. The driver's origin
 * is put 10 s in the past, so deadlines between the origin and now are due
 * at once without waiting and deadlines an hour ahead are never due. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "time/driver.h"
#include "support/aligned.h"

static int g_wakes;   /* counting waker: wakes so far */
static int g_live;    /* counting waker: clones not yet released */
static int g_hooks;   /* "wake a sleeper" requests */

static weft_waker cw_clone(const void *data);
static void cw_wake(void *data) { (void)data; g_wakes++; g_live--; }
static void cw_wake_by_ref(const void *data) { (void)data; g_wakes++; }
static void cw_drop(void *data) { (void)data; g_live--; }
static const weft_waker_ops cw_ops = { cw_clone, cw_wake, cw_wake_by_ref, cw_drop };
static weft_waker cw_clone(const void *data)
{
    g_live++;
    weft_waker w = { &cw_ops, (void *)data };
    return w;
}

static void count_hook(void *ctx)
{
    (void)ctx;
    g_hooks++;
}

struct fixture {
    weft__timers t;
    weft__parker driver;
    weft_timer_entry e[4];
    weft_instant origin;
};

static struct fixture *g_f;
static const weft_waker g_waker = { &cw_ops, NULL };

static int setup(void **state)
{
    (void)state;
    g_f = aligned_zalloc(sizeof *g_f);
    g_f->origin = weft_now() - WEFT_SEC(10);
    weft__timers_init(&g_f->t, g_f->origin, count_hook, NULL);
    weft__parker_init(&g_f->driver);
    for (int i = 0; i < 4; i++)
        atomic_init(&g_f->e[i].state_, WEFT__TIMER_IDLE);
    g_wakes = g_live = g_hooks = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++)
        weft__timer_cancel(&g_f->e[i]);
    int live = g_live;
    free(g_f);
    if (live != 0) {
        print_error("%d waker clone(s) not released\n", live);
        return -1;
    }
    return 0;
}

static weft_instant due_now(void) { return g_f->origin + WEFT_SEC(5); }
static weft_instant in_an_hour(void) { return weft_now() + WEFT_SEC(3600); }

/* Did the driver's parker get unparked? (Takes the token.) */
static bool driver_unparked(void)
{
    return weft__park_timeout(&g_f->driver, 0);
}

static void test_driver_arming_with_no_driver_asks_for_a_sleeper(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    assert_int_equal(g_hooks, 1); /* someone must park as the driver */
    assert_int_equal(g_live, 1);  /* the entry holds a clone */
}

static void test_driver_parks_until_the_next_deadline(void **state)
{
    (void)state;
    assert_int_equal(weft__timers_driver_begin(&g_f->t, &g_f->driver), UINT64_MAX);
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    /* Finite and no later than the deadline (the wheel may wake its driver
     * earlier, at the start of a coarse slot, to cascade). */
    uint64_t timeout = weft__timers_driver_begin(&g_f->t, &g_f->driver);
    assert_true(timeout <= WEFT_SEC(3601));
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
}

static void test_driver_an_earlier_timer_unparks_the_driver(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    g_hooks = 0;
    weft__timers_driver_begin(&g_f->t, &g_f->driver);
    /* Later than the driver's deadline: nobody needs waking. */
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[1], in_an_hour() + WEFT_SEC(60), &g_waker));
    assert_false(driver_unparked());
    /* Earlier: the driver must re-arm its timeout. */
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[2], weft_now() + WEFT_SEC(60), &g_waker));
    assert_true(driver_unparked());
    assert_int_equal(g_hooks, 0); /* there is a driver: no sleeper needed */
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
    uint64_t timeout = weft__timers_driver_begin(&g_f->t, &g_f->driver);
    assert_true(timeout <= WEFT_SEC(61));
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
}

static void test_driver_leaving_for_work_with_timers_armed_hands_the_role_on(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    g_hooks = 0;
    assert_true(weft__timers_driver_begin(&g_f->t, &g_f->driver) != UINT64_MAX);
    /* The driver leaves its park to run tasks found elsewhere: another
     * sleeper must take over, or the timer waits for this worker's next
     * park. */
    weft__timers_driver_end(&g_f->t, &g_f->driver, true);
    assert_int_equal(g_hooks, 1);
    /* The role is free: the next timer asks for a sleeper too. */
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[1], in_an_hour(), &g_waker));
    assert_int_equal(g_hooks, 2);
}

static void test_driver_leaving_with_nothing_armed_wakes_nobody(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    weft__timers_driver_begin(&g_f->t, &g_f->driver);
    weft__timer_cancel(&g_f->e[0]);
    g_hooks = 0;
    weft__timers_driver_end(&g_f->t, &g_f->driver, true);
    assert_int_equal(g_hooks, 0);
}

/* The churn this removes: a driver woken by its deadline used to give the
 * role up and wake another worker, which only parked again. */
static void test_driver_woken_by_a_timer_keeps_the_role_and_wakes_nobody(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    g_hooks = 0;
    weft__timers_driver_begin(&g_f->t, &g_f->driver);
    weft__timers_driver_end(&g_f->t, &g_f->driver, false); /* its deadline */
    assert_int_equal(g_hooks, 0);
    /* Away, it fires and runs what was due; the timer a woken task arms
     * wakes nobody (the away driver is awake)... */
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[1], weft_now() + WEFT_SEC(60), &g_waker));
    assert_int_equal(g_hooks, 0);
    assert_false(driver_unparked());
    /* ...and parking again, it drives until the new, earlier deadline. */
    uint64_t timeout = weft__timers_driver_begin(&g_f->t, &g_f->driver);
    assert_true(timeout <= WEFT_SEC(61));
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
    assert_int_equal(g_hooks, 0);
}

static void test_driver_a_worker_parking_first_takes_the_role_from_an_away_driver(void **state)
{
    (void)state;
    weft__parker other;
    weft__parker_init(&other);
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    weft__timers_driver_begin(&g_f->t, &g_f->driver);
    weft__timers_driver_end(&g_f->t, &g_f->driver, false); /* away */
    /* Another worker parks while the driver is still running tasks. */
    assert_true(weft__timers_driver_begin(&g_f->t, &other) <= WEFT_SEC(3601));
    /* The old driver parks later: the role is taken, it sleeps until woken. */
    assert_int_equal(weft__timers_driver_begin(&g_f->t, &g_f->driver), UINT64_MAX);
    g_hooks = 0;
    weft__timers_driver_end(&g_f->t, &g_f->driver, true); /* not the driver: no hand-off */
    assert_int_equal(g_hooks, 0);
    /* An earlier timer unparks the new driver. */
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[1], weft_now() + WEFT_SEC(60), &g_waker));
    assert_true(weft__park_timeout(&other, 0));
    assert_int_equal(g_hooks, 0);
}

static void test_driver_an_away_driver_gives_the_role_up_once_nothing_is_armed(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    weft__timers_driver_begin(&g_f->t, &g_f->driver);
    weft__timers_driver_end(&g_f->t, &g_f->driver, false); /* away */
    weft__timer_cancel(&g_f->e[0]);
    assert_int_equal(weft__timers_driver_begin(&g_f->t, &g_f->driver), UINT64_MAX);
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
    /* Nobody drives now: a new timer asks for a sleeper. */
    g_hooks = 0;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[1], in_an_hour(), &g_waker));
    assert_int_equal(g_hooks, 1);
}

static void test_driver_only_the_driver_gives_up_the_role(void **state)
{
    (void)state;
    weft__parker other;
    weft__parker_init(&other);
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    weft__timers_driver_begin(&g_f->t, &g_f->driver);
    /* A second parking worker is not the driver: it sleeps until woken. */
    assert_int_equal(weft__timers_driver_begin(&g_f->t, &other), UINT64_MAX);
    g_hooks = 0;
    weft__timers_driver_end(&g_f->t, &other, true); /* no hand-off from a non-driver */
    assert_int_equal(g_hooks, 0);
    weft__timers_driver_end(&g_f->t, &g_f->driver, true);
    assert_int_equal(g_hooks, 1);
}

/* Every park asks the driver whether to drive: with no timer armed that
 * must cost no lock (both workers of an idle runtime park all the time). */
static void test_driver_parking_with_nothing_armed_takes_no_lock(void **state)
{
    (void)state;
    weft__parker other;
    weft__parker_init(&other);
    uint64_t locks = weft__timers_locks_taken(&g_f->t);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft__timers_driver_begin(&g_f->t, &g_f->driver), UINT64_MAX);
        weft__timers_driver_end(&g_f->t, &g_f->driver, i % 2 == 0);
        assert_int_equal(weft__timers_driver_begin(&g_f->t, &other), UINT64_MAX);
        weft__timers_driver_end(&g_f->t, &other, i % 2 != 0);
    }
    assert_int_equal(weft__timers_locks_taken(&g_f->t), locks);
    /* With a timer armed, the parking worker takes the lock to drive. */
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    locks = weft__timers_locks_taken(&g_f->t);
    assert_true(weft__timers_driver_begin(&g_f->t, &g_f->driver) != UINT64_MAX);
    assert_int_equal(weft__timers_locks_taken(&g_f->t), locks + 1);
    /* The other worker, not the driver, still sleeps without it. */
    weft__timers_driver_end(&g_f->t, &other, true);
    assert_int_equal(weft__timers_locks_taken(&g_f->t), locks + 1);
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
}

static void test_driver_fire_due_wakes_due_timers_once(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], due_now(), &g_waker));
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[1], in_an_hour(), &g_waker));
    assert_int_equal(weft__timers_fire_due(&g_f->t), 1);
    assert_int_equal(g_wakes, 1);
    assert_int_equal(atomic_load(&g_f->e[0].state_), WEFT__TIMER_FIRED);
    assert_int_equal(atomic_load(&g_f->e[1].state_), WEFT__TIMER_ARMED);
    assert_int_equal(weft__timers_fire_due(&g_f->t), 0);
    assert_int_equal(g_wakes, 1);
    /* A deadline the wheel has passed is not armed at all. */
    assert_false(weft__timers_arm(&g_f->t, &g_f->e[2], g_f->origin + WEFT_SEC(1), &g_waker));
}

static void test_driver_cancel_unlinks_and_releases_the_waker(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], due_now(), &g_waker));
    weft__timer_cancel(&g_f->e[0]);
    assert_int_equal(atomic_load(&g_f->e[0].state_), WEFT__TIMER_IDLE);
    assert_int_equal(g_live, 0);
    assert_int_equal(weft__timers_fire_due(&g_f->t), 0);
    assert_int_equal(g_wakes, 0);
    assert_int_equal(weft__timers_armed(&g_f->t), 0);
}

/* A sleep re-polled by the same task finds the same waker in its entry:
 * nothing to change, and no lock to take. */
static void test_driver_update_with_the_same_waker_takes_no_lock(void **state)
{
    (void)state;
    int other_target;
    weft_waker other = { &cw_ops, &other_target };
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    uint64_t locks = weft__timers_locks_taken(&g_f->t);
    for (int i = 0; i < 3; i++)
        assert_true(weft__timer_update_waker(&g_f->e[0], &g_waker));
    assert_int_equal(weft__timers_locks_taken(&g_f->t), locks);
    assert_int_equal(g_live, 1);
    assert_true(weft__timer_update_waker(&g_f->e[0], &other));
    assert_int_equal(weft__timers_locks_taken(&g_f->t), locks + 1);
}

static void test_driver_update_waker_replaces_only_a_different_waker(void **state)
{
    (void)state;
    int other_target;
    weft_waker other = { &cw_ops, &other_target };
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    assert_true(weft__timer_update_waker(&g_f->e[0], &g_waker));
    assert_int_equal(g_live, 1);
    assert_true(weft__timer_update_waker(&g_f->e[0], &other));
    assert_int_equal(g_live, 1); /* the old clone was released */
    assert_ptr_equal(g_f->e[0].waker_.data, &other_target);
    weft__timer_cancel(&g_f->e[0]);
    /* Once fired, there is nothing to update. */
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[1], due_now(), &g_waker));
    assert_int_equal(weft__timers_fire_due(&g_f->t), 1);
    assert_false(weft__timer_update_waker(&g_f->e[1], &other));
}

/* ---- shards ---- */

/* Arm an entry from another thread (in that thread's shard). */
typedef struct remote_arm {
    weft_timer_entry *e;
    weft_instant deadline;
    bool armed;
} remote_arm;

static void *remote_arm_main(void *arg)
{
    remote_arm *r = arg;
    r->armed = weft__timers_arm(&g_f->t, r->e, r->deadline, &g_waker);
    return NULL;
}

static bool arm_from_another_thread(weft_timer_entry *e, weft_instant deadline)
{
    remote_arm r = { e, deadline, false };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, remote_arm_main, &r), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    return r.armed;
}

/* Two threads arm in two shards: neither takes the other's lock, and the
 * driver still sleeps until the earliest deadline of all shards, is
 * unparked by an earlier timer in any shard, and fires every shard. */
static void test_driver_threads_arm_in_shards_of_their_own(void **state)
{
    (void)state;
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[0], in_an_hour(), &g_waker));
    weft__timer_shard *mine = g_f->e[0].driver_;
    assert_true(weft__timers_driver_begin(&g_f->t, &g_f->driver) <= WEFT_SEC(3601));
    uint64_t my_locks = mine->locks_taken;
    g_hooks = 0;
    /* Another thread, an earlier timer: another shard, and the driver is
     * unparked to sleep less. */
    assert_true(arm_from_another_thread(&g_f->e[1], weft_now() + WEFT_SEC(60)));
    weft__timer_shard *theirs = g_f->e[1].driver_;
    assert_ptr_not_equal(theirs, mine);
    assert_int_equal(mine->locks_taken, my_locks);
    assert_true(driver_unparked());
    assert_int_equal(g_hooks, 0);
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
    assert_true(weft__timers_driver_begin(&g_f->t, &g_f->driver) <= WEFT_SEC(61));
    weft__timers_driver_end(&g_f->t, &g_f->driver, false);
    /* Due timers in both shards: one call fires them all. */
    assert_true(weft__timers_arm(&g_f->t, &g_f->e[2], due_now(), &g_waker));
    assert_true(arm_from_another_thread(&g_f->e[3], due_now()));
    assert_ptr_not_equal(g_f->e[3].driver_, mine);
    assert_int_equal(weft__timers_armed(&g_f->t), 4);
    assert_int_equal(weft__timers_fire_due(&g_f->t), 2);
    assert_int_equal(g_wakes, 2);
    assert_int_equal(weft__timers_armed(&g_f->t), 2);
    /* A cancel from this thread takes the entry's own shard's lock. */
    uint64_t their_locks = theirs->locks_taken;
    weft__timer_cancel(&g_f->e[1]);
    assert_int_equal(theirs->locks_taken, their_locks + 1);
    assert_int_equal(weft__timers_armed(&g_f->t), 1);
}

/* Arming is sharded, firing is not: a worker's tick fires what is due in
 * any shard (when the worker that armed it is stuck in a long poll or
 * preempted, another must not wait for it). */
static void test_driver_a_tick_fires_due_timers_of_every_shard(void **state)
{
    (void)state;
    assert_true(arm_from_another_thread(&g_f->e[0], in_an_hour()));
    weft__timers_tick(&g_f->t);
    assert_int_equal(g_wakes, 0);
    assert_true(arm_from_another_thread(&g_f->e[1], due_now()));
    weft__timers_tick(&g_f->t);
    assert_int_equal(g_wakes, 1);
    assert_int_equal(atomic_load(&g_f->e[1].state_), WEFT__TIMER_FIRED);
    assert_int_equal(atomic_load(&g_f->e[0].state_), WEFT__TIMER_ARMED);
    /* And the word the ticks read is raised past what fired, to no later
     * than what is left. */
    uint64_t earliest = weft_atomic_load_relaxed(&g_f->t.earliest);
    assert_true(earliest > weft__wheel_tick_floor(&g_f->t.shards[0].wheel, due_now()));
    assert_true(earliest <= g_f->e[0].when_);
}

static void test_driver_current_timers_are_per_thread(void **state)
{
    (void)state;
    assert_null(weft__timers_current());
    assert_null(weft__timers_enter(&g_f->t));
    assert_ptr_equal(weft__timers_current(), &g_f->t);
    assert_ptr_equal(weft__timers_enter(NULL), &g_f->t);
    assert_null(weft__timers_current());
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_driver_arming_with_no_driver_asks_for_a_sleeper),
        T(test_driver_parks_until_the_next_deadline),
        T(test_driver_an_earlier_timer_unparks_the_driver),
        T(test_driver_leaving_for_work_with_timers_armed_hands_the_role_on),
        T(test_driver_leaving_with_nothing_armed_wakes_nobody),
        T(test_driver_woken_by_a_timer_keeps_the_role_and_wakes_nobody),
        T(test_driver_a_worker_parking_first_takes_the_role_from_an_away_driver),
        T(test_driver_an_away_driver_gives_the_role_up_once_nothing_is_armed),
        T(test_driver_only_the_driver_gives_up_the_role),
        T(test_driver_parking_with_nothing_armed_takes_no_lock),
        T(test_driver_fire_due_wakes_due_timers_once),
        T(test_driver_cancel_unlinks_and_releases_the_waker),
        T(test_driver_update_with_the_same_waker_takes_no_lock),
        T(test_driver_update_waker_replaces_only_a_different_waker),
        T(test_driver_threads_arm_in_shards_of_their_own),
        T(test_driver_a_tick_fires_due_timers_of_every_shard),
        T(test_driver_current_timers_are_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
