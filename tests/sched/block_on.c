/* Unit tests for sched/block_on.c: running a future to completion on the
 * calling (non-worker) thread — its output, its refusals (-EDEADLK on a
 * worker, -EINVAL on bad arguments, a finished or moved future), a future
 * polled before where it is (a join handle waited for again), parking
 * until a foreign thread wakes it, non-Send futures, the current runtime
 * while it runs, and its waker outliving the call.
 *
 * Each test gets a fresh two-worker runtime and a counting allocator, and
 * teardown checks every allocation came back after shutdown. No sleeps and
 * no timing assertions: threads hand off through atomics, and watchdogs
 * (a spin's, and the alarm's over each test) only turn a hang into a
 * readable failure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weft/weft.h"
#include "core/atomic.h"
#include "support/alarm_watchdog.h"
#include "support/co_future.h"
#include "support/countdown.h"
#include "support/downcast.h"
#include "support/gate.h"
#include "support/never.h"
#include "support/poll.h"
#include "support/rt_fixture.h"
#include "support/spawn_join.h"
#include "support/wait.h"

/* ---- output ---------------------------------------------------------------------------- */

static void test_block_on_returns_the_output_and_drops_once(void **state)
{
    (void)state;
    weft_ready r;
    int v = 31337, out = 0;
    assert_int_equal(weft_ready_init(&r, &v, sizeof v), 0);
    assert_int_equal(weft_block_on(g_rt, &r.base, &out, sizeof out), 0);
    assert_int_equal(out, 31337);

    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 5, 77, WEFT_F_SEND);
    out = 0;
    assert_int_equal(weft_block_on(g_rt, &c.base, &out, sizeof out), 0);
    assert_int_equal(out, 77);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 6);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);

    /* No output: `out` may be NULL. */
    weft_yield y;
    weft_yield_init(&y);
    assert_int_equal(weft_block_on(g_rt, &y.base, NULL, 0), 0);
}

/* ---- refusals -------------------------------------------------------------------------- */

/* Calls weft_block_on on the worker polling it; outputs the return code.
 * The inner future stays this task's to drop when block_on refuses it. */
typedef struct nested {
    weft_future base;
    countdown inner;
    countdown_counts *n;
} nested;

static weft_poll nested_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(nested, s);
    (void)cx;
    int v = -1;
    int rc = weft_block_on(weft_rt_current(), &s->inner.base, &v, sizeof v);
    if (rc != 0) /* refused: still ours */
        weft_future_drop(&s->inner.base);
    *(int *)out = rc;
    return WEFT_READY;
}

static const weft_future_ops nested_ops = {
    "test_nested_block_on", sizeof(int), nested_poll, NULL, NULL,
};

static const weft_future_ops inner_ops = COUNTDOWN_OPS("test_inner_of_block_on");

static void test_block_on_inside_a_task_returns_edeadlk(void **state)
{
    (void)state;
    countdown_counts n;
    nested s;
    weft_future_init(&s.base, &nested_ops, WEFT_F_SEND);
    countdown_start(&s.inner, &n, 0, 1, WEFT_F_SEND);
    s.inner.base.ops = &inner_ops;
    s.n = &n;
    int rc = 0;
    assert_int_equal(spawn_blocking(g_rt, &s.base, sizeof s, &rc, sizeof rc), 0);
    assert_int_equal(rc, -EDEADLK);
    /* Refused before polling; dropped once, by its owner. */
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
    assert_true(misuse_reported(1, "test_inner_of_block_on"));
}

static void test_block_on_rejects_bad_arguments(void **state)
{
    (void)state;
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 0, 1, WEFT_F_SEND);
    int out = 0;
    long big = 0;
    short small = 0;

    assert_int_equal(weft_block_on(NULL, &c.base, &out, sizeof out), -EINVAL);
    assert_int_equal(weft_block_on(g_rt, NULL, &out, sizeof out), -EINVAL);
    assert_int_equal(weft_block_on(g_rt, &c.base, NULL, sizeof out), -EINVAL);
    assert_int_equal(weft_block_on(g_rt, &c.base, &big, sizeof big), -EINVAL);
    assert_int_equal(weft_block_on(g_rt, &c.base, &small, sizeof small), -EINVAL);
    assert_int_equal(weft_block_on(g_rt, &c.base, NULL, 0), -EINVAL);
    weft_future no_ops = { NULL, WEFT_F_SEND, 0 };
    assert_int_equal(weft_block_on(g_rt, &no_ops, NULL, 0), -EINVAL);
    /* Refused: never polled, never dropped; the caller still owns it. */
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 0);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 0);

}

/* Debug builds refuse (and report) a future that finished, or that moved
 * since its first poll: its poll would be refused, and block_on would wait
 * forever on a poll that never runs. Release builds cannot tell. */
static void test_block_on_refuses_a_finished_or_moved_future(void **state)
{
    (void)state;
#ifdef NDEBUG
    skip();
#endif
    countdown_counts n;
    countdown c;
    int out = 0;
    countdown_start(&c, &n, 0, 4, WEFT_F_SEND);
    assert_int_equal(poll_noop(&c.base, &out), WEFT_READY);
    assert_int_equal(weft_block_on(g_rt, &c.base, &out, sizeof out), -EINVAL);
    assert_true(misuse_reported(1, "finished"));
    assert_true(misuse_reported(1, "test_countdown"));
    /* Refused: not polled again, not dropped; still the caller's. */
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 1);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 0);
    weft_future_drop(&c.base);

    countdown_start(&c, &n, 3, 4, WEFT_F_SEND);
    assert_int_equal(poll_noop(&c.base, &out), WEFT_PENDING);
    countdown moved = c;
    assert_int_equal(weft_block_on(g_rt, &moved.base, &out, sizeof out), -EINVAL);
    assert_true(misuse_reported(2, "moved"));
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 1);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 0);
    weft_future_drop(&moved.base);
}

/* ---- a future polled before ------------------------------------------------------------ */

/* A future polled before, where it still is, is finished by block_on. */
static void test_block_on_finishes_a_future_polled_before_in_place(void **state)
{
    (void)state;
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 3, 8, WEFT_F_SEND);
    int out = 0;
    assert_int_equal(poll_noop(&c.base, &out), WEFT_PENDING);
    assert_int_equal(weft_block_on(g_rt, &c.base, &out, sizeof out), 0);
    assert_int_equal(out, 8);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 4);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
    assert_true(misuse_reported(0, ""));
}

/* Polls `inner` (an int-output future) once, in place, and gives up on it
 * whatever it says: the inner future stays its owner's, as under a
 * deadline that passed. */
typedef struct peeker {
    weft_future base;
    weft_future *inner;
    weft_poll r;
    int out;
} peeker;

static weft_poll peeker_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(peeker, g);
    (void)out;
    g->r = weft_future_poll(g->inner, cx, &g->out);
    return WEFT_READY;
}

static const weft_future_ops peeker_ops = { "test_peeker", 0, peeker_poll, NULL, NULL };

/* Gives up on `inner` once from a block_on (so its waker is a block_on
 * waker that is gone by the next wait) and returns what the poll said. */
static weft_poll give_up_once(weft_future *inner)
{
    peeker g = { WEFT_FUTURE_INIT(&peeker_ops, 0), inner, WEFT_READY, 0 };
    assert_int_equal(weft_block_on(g_rt, &g.base, NULL, 0), 0);
    return g.r;
}

/* A join handle given up on can be waited for again, or aborted and then
 * waited for: block_on takes it where it was first polled. */
static void test_block_on_waits_again_for_a_join_given_up_on(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    weft_join j;
    gated gd = gated_make(&g, 99);
    assert_int_equal(weft_spawn(g_rt, &gd.base, sizeof gd, &j), 0);
    assert_int_equal(give_up_once(&j.base), WEFT_PENDING);
    assert_int_equal(give_up_once(&j.base), WEFT_PENDING); /* and again */
    gate_open(&g);
    int out = 0;
    assert_int_equal(weft_block_on(g_rt, &j.base, &out, sizeof out), 0);
    assert_int_equal(j.status, 0);
    assert_int_equal(out, 99);
    gate_fini(&g);

    /* Given up on, then aborted: waiting again yields the cancellation. */
    countdown_counts n;
    never nv;
    never_start(&nv, &n, WEFT_F_SEND);
    assert_int_equal(weft_spawn(g_rt, &nv.base, sizeof nv, &j), 0);
    assert_int_equal(give_up_once(&j.base), WEFT_PENDING);
    weft_join_abort(&j);
    out = -1;
    assert_int_equal(weft_block_on(g_rt, &j.base, &out, sizeof out), 0);
    assert_int_equal(j.status, -ECANCELED);
    assert_int_equal(out, 0);
    assert_int_equal(weft_atomic_load_acquire(&n.drops), 1);
    assert_true(misuse_reported(0, ""));
}

/* Ops that claim a per-instance output size but give no way to ask for it:
 * weft_spawn refuses such a future with -EINVAL, and weft_block_on must too
 * rather than call the missing function. The call runs in a child process
 * so that a crash is reported as this test's failure instead of ending the
 * whole program. */
static const weft_future_ops varies_without_size_ops = {
    "test_varies_without_out_size_of", WEFT_OUT_SIZE_VARIES, countdown_poll,
    countdown_drop, NULL,
};

static void test_block_on_rejects_ops_without_out_size_of(void **state)
{
    (void)state;
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 0, 1, WEFT_F_SEND);
    c.base.ops = &varies_without_size_ops;
    assert_int_equal(weft_spawn(g_rt, &c.base, sizeof c, NULL), -EINVAL);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka catches crashes to carry on with the next test; here a
         * crash must end the child for the parent to see it. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        int out = 0;
        int rc = weft_block_on(g_rt, &c.base, &out, sizeof out);
        _exit(rc == -EINVAL ? 0 : 10 + (rc < 0 ? -rc : rc) % 100);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        fail_msg("weft_block_on crashed (signal %d) on a future whose ops say "
                 "WEFT_OUT_SIZE_VARIES without out_size_of; expected -EINVAL as "
                 "from weft_spawn", WTERMSIG(st));
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("weft_block_on returned %d, expected -EINVAL",
                 -(WEXITSTATUS(st) - 10));
    weft_future_drop(&c.base);
}

/* ---- parking and foreign wakes ---------------------------------------------------------- */

/* PENDING until a foreign thread sets `fired` and wakes it. Each poll
 * stashes a clone of its waker and bumps `asked`; the helper thread answers
 * each request with one wake (by value, consuming the stash). */
typedef struct remote {
    _Atomic int asked;  /* requests made by polls (release: stash valid) */
    _Atomic int fired;  /* requests answered */
    _Atomic int failed; /* the helper gave up waiting */
    int rounds;         /* wakes needed before READY */
    bool wait_parked;   /* helper waits until the polling thread sleeps */
    pid_t poller_tid;
    weft_waker stash;
} remote;

typedef struct remote_fut {
    weft_future base;
    remote *r;
} remote_fut;

static weft_poll remote_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(remote_fut, rf);
    remote *r = rf->r;
    /* Acquire: pairs with the helper's release of `fired`. */
    int fired = weft_atomic_load_acquire(&r->fired);
    if (fired == r->rounds) {
        *(int *)out = fired;
        return WEFT_READY;
    }
    if (fired == weft_atomic_load_relaxed(&r->asked)) {
        /* The previous request was answered (or none was made): ask. The
         * helper owns the stash until it answers. */
        r->stash = weft_waker_clone(cx->waker);
        weft_atomic_store_release(&r->asked, fired + 1);
    }
    return WEFT_PENDING;
}

static const weft_future_ops remote_ops = { "test_remote", sizeof(int), remote_poll,
                                            NULL, NULL };

/* The state letter of thread `tid` of this process ('S': sleeping), or 0
 * when /proc cannot tell. */
static char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    return (p && p[1] == ' ') ? p[2] : 0;
}

static void *remote_helper(void *arg)
{
    remote *r = arg;
    for (int i = 1; i <= r->rounds; i++) {
        weft_instant start = weft_now();
        /* Acquire: the stash written before `asked` is visible. */
        while (weft_atomic_load_acquire(&r->asked) < i) {
            sched_yield();
            if (wait_expired(start))
                goto fail;
        }
        /* Wait until the polling thread is asleep — parked in block_on,
         * which only parks when its poll returned PENDING — so the wake
         * must come through the unpark. */
        while (r->wait_parked) {
            char st = thread_state(r->poller_tid);
            if (st == 0 || st == 'S')
                break;
            sched_yield();
            if (wait_expired(start))
                goto fail;
        }
        weft_waker w = r->stash;
        r->stash.ops = NULL;
        /* Release: pairs with the acquire in remote_poll. */
        weft_atomic_store_release(&r->fired, i);
        weft_waker_wake(&w);
    }
    return NULL;
fail:
    weft_atomic_store_relaxed(&r->failed, 1);
    return NULL;
}

static void run_remote(int rounds, bool wait_parked)
{
    remote r;
    weft_atomic_init(&r.asked, 0);
    weft_atomic_init(&r.fired, 0);
    weft_atomic_init(&r.failed, 0);
    r.rounds = rounds;
    r.wait_parked = wait_parked;
    r.poller_tid = (pid_t)syscall(SYS_gettid);
    r.stash.ops = NULL;
    r.stash.data = NULL;
    remote_fut f;
    weft_future_init(&f.base, &remote_ops, WEFT_F_SEND);
    f.r = &r;

    pthread_t helper;
    assert_int_equal(pthread_create(&helper, NULL, remote_helper, &r), 0);
    int out = 0;
    int rc = weft_block_on(g_rt, &f.base, &out, sizeof out);
    assert_int_equal(pthread_join(helper, NULL), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(weft_atomic_load_relaxed(&r.failed), 0);
    assert_int_equal(out, rounds);
}

static void test_block_on_parks_until_a_foreign_thread_wakes_it(void **state)
{
    (void)state;
    /* The helper wakes only once this thread sleeps in block_on. */
    run_remote(20, true);
    /* Wakes racing with the park: before, during and after it. */
    for (int i = 0; i < 100; i++)
        run_remote(10, false);
}

/* ---- non-Send futures and the current runtime ------------------------------------------ */

static void test_block_on_runs_a_non_send_future(void **state)
{
    (void)state;
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 2, 5, 0);
    assert_false(weft_future_is_send(&c.base));
    /* Not spawnable... */
    assert_int_equal(weft_spawn(g_rt, &c.base, sizeof c, NULL), -EPERM);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 0);
    /* ...but fine to run here: it never leaves this thread. */
    int out = 0;
    assert_int_equal(weft_block_on(g_rt, &c.base, &out, sizeof out), 0);
    assert_int_equal(out, 5);
    assert_int_equal(weft_atomic_load_relaxed(&n.polls), 3);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&n.seen_worker), -1);
}

/* Polled by block_on on rt A: records the current runtime, then block_ons
 * a child on runtime B (legal: this is not a worker thread), then records
 * the current runtime again. */
typedef struct outer {
    weft_future base;
    weft_rt *other;
    countdown child;
    countdown_counts *child_n;
    weft_rt *before, *after;
    int child_rc, child_out;
} outer;

static weft_poll outer_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(outer, s);
    (void)cx;
    s->before = weft_rt_current();
    countdown_init(&s->child, 1, 9, s->child_n, 0);
    s->child_rc = weft_block_on(s->other, &s->child.base, &s->child_out,
                                sizeof s->child_out);
    s->after = weft_rt_current();
    *(int *)out = s->child_out;
    return WEFT_READY;
}

static const weft_future_ops outer_ops = { "test_outer", sizeof(int), outer_poll, NULL,
                                           NULL };

static void test_block_on_makes_rt_current_while_it_runs(void **state)
{
    (void)state;
    assert_null(weft_rt_current());
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 1, 3, WEFT_F_SEND);
    int out = 0;
    assert_int_equal(weft_block_on(g_rt, &c.base, &out, sizeof out), 0);
    assert_ptr_equal(weft_atomic_load_relaxed(&n.seen_rt), g_rt);
    assert_int_equal(weft_atomic_load_relaxed(&n.seen_worker), -1);
    assert_null(weft_rt_current()); /* restored */

    /* Nested on another runtime: each level sees its own, and the outer
     * one is restored when the inner call returns. */
    weft_rt *other = rt_start(1);
    countdown_counts cn;
    countdown_counts_init(&cn);
    outer s;
    memset(&s, 0, sizeof s);
    weft_future_init(&s.base, &outer_ops, 0);
    s.other = other;
    s.child_n = &cn;
    assert_int_equal(weft_block_on(g_rt, &s.base, &out, sizeof out), 0);
    assert_int_equal(s.child_rc, 0);
    assert_int_equal(out, 9);
    assert_ptr_equal(s.before, g_rt);
    assert_ptr_equal(weft_atomic_load_relaxed(&cn.seen_rt), other);
    assert_ptr_equal(s.after, g_rt);
    assert_null(weft_rt_current());
    weft_rt_shutdown(other);
}

/* A future run by block_on that spawns a countdown onto "the current
 * runtime" (rt NULL) and awaits its join (support/spawn_join.h). */
static void test_block_on_future_can_spawn_onto_the_current_runtime(void **state)
{
    (void)state;
    countdown_counts n;
    countdown c;
    countdown_start(&c, &n, 2, 21, WEFT_F_SEND);
    spawn_join s;
    spawn_join_init(&s, &c.base, sizeof c, 0);
    int out = 0;
    assert_int_equal(weft_block_on(g_rt, &s.base, &out, sizeof out), 0);
    assert_int_equal(s.spawn_rc, 0);
    assert_int_equal(out, 42);
    /* The child ran on a worker of the current runtime. */
    assert_ptr_equal(weft_atomic_load_relaxed(&n.seen_rt), g_rt);
    assert_true(weft_atomic_load_relaxed(&n.seen_worker) >= 0);
    assert_int_equal(weft_atomic_load_relaxed(&n.drops), 1);
}

/* ---- the waker outlives the call --------------------------------------------------------- */

typedef struct keeper {
    weft_future base;
    weft_waker *keep;
    int polls;
} keeper;

static weft_poll keeper_poll(weft_future *f, weft_cx *cx, void *out)
{
    DOWNCAST(keeper, k);
    (void)out;
    if (k->polls++ == 0) {
        /* Keep a clone past the end of block_on, as a channel might. */
        *k->keep = weft_waker_clone(cx->waker);
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    return WEFT_READY;
}

static const weft_future_ops keeper_ops = { "test_keeper", 0, keeper_poll, NULL, NULL };

static void *late_wake(void *arg)
{
    weft_waker *w = arg;
    weft_waker c = weft_waker_clone(w);
    weft_waker_wake_by_ref(w);
    weft_waker_wake(&c);
    weft_waker_wake(w); /* the last reference: frees the waker */
    return NULL;
}

static void test_block_on_waker_may_outlive_the_call(void **state)
{
    (void)state;
    weft_waker kept = WEFT_WAKER_EMPTY;
    keeper k;
    weft_future_init(&k.base, &keeper_ops, 0);
    k.keep = &kept;
    k.polls = 0;
    long before = weft_atomic_load_relaxed(&g_live_allocs);
    assert_int_equal(weft_block_on(g_rt, &k.base, NULL, 0), 0);
    assert_non_null(kept.ops);
    /* The clone keeps block_on's waker allocated... */
    assert_int_equal(weft_atomic_load_relaxed(&g_live_allocs), before + 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_wake, &kept), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* ...until its last reference goes, from another thread. */
    assert_int_equal(weft_atomic_load_acquire(&g_live_allocs), before);
}

/* A task that holds its worker in one long poll until released (or until
 * it gives up after 10 s, which it reports as its output). */
static _Atomic int g_spinning;
static _Atomic bool g_spin_release;

typedef struct spinner {
    weft_future base;
} spinner;

static weft_poll spinner_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)f, (void)cx;
    weft_atomic_fetch_add_relaxed(&g_spinning, 1);
    weft_instant give_up = weft_now() + WEFT_SEC(10);
    while (!weft_atomic_load_acquire(&g_spin_release) && weft_now() < give_up)
        sched_yield();
    *(int *)out = !weft_atomic_load_acquire(&g_spin_release); /* gave up */
    return WEFT_READY;
}

static const weft_future_ops spinner_ops = {
    .name = "spinner", .out_size = sizeof(int), .poll = spinner_poll,
};

/* Every worker is stuck in a long poll, so none fires timers: the thread
 * waiting in weft_block_on fires its own sleep. Without that the sleep
 * completes only after the spinners give up (10 s), and they report it. */
static void test_block_on_fires_timers_while_every_worker_is_busy(void **state)
{
    (void)state;
    weft_atomic_store_relaxed(&g_spinning, 0);
    weft_atomic_store_relaxed(&g_spin_release, false);
    weft_join j[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(WEFT_SPAWN(g_rt, &j[i], &(spinner){ WEFT_FUTURE_INIT(&spinner_ops, WEFT_F_SEND) }), 0);
    WAIT_UNTIL(weft_atomic_load_relaxed(&g_spinning) == 2); /* both workers held */
    weft_sleep s;
    weft_sleep_init(&s, WEFT_MS(10));
    assert_int_equal(weft_block_on(g_rt, &s.base, NULL, 0), 0);
    weft_atomic_store_release(&g_spin_release, true);
    for (int i = 0; i < 2; i++) {
        int gave_up = -1;
        assert_int_equal(join_blocking(g_rt, &j[i], &gave_up, sizeof gave_up), 0);
        assert_int_equal(gave_up, 0); /* released by us: the sleep came first */
    }
}

/* The support fixture under the watchdog: block_on's way to fail is to
 * wait for ever on a poll that never comes. */
static int setup(void **state)
{
    alarm_watchdog_arm(state);
    return rt_setup(state);
}

static int teardown(void **state)
{
    int rc = rt_teardown(state);
    alarm_watchdog_disarm(state);
    return rc;
}

int main(void)
{
    alarm_watchdog_install("watchdog: test hung (block_on waiting on a poll that never runs?)\n");
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_block_on_returns_the_output_and_drops_once),
        T(test_block_on_inside_a_task_returns_edeadlk),
        T(test_block_on_rejects_bad_arguments),
        T(test_block_on_rejects_ops_without_out_size_of),
        T(test_block_on_refuses_a_finished_or_moved_future),
        T(test_block_on_finishes_a_future_polled_before_in_place),
        T(test_block_on_waits_again_for_a_join_given_up_on),
        T(test_block_on_parks_until_a_foreign_thread_wakes_it),
        T(test_block_on_runs_a_non_send_future),
        T(test_block_on_makes_rt_current_while_it_runs),
        T(test_block_on_future_can_spawn_onto_the_current_runtime),
        T(test_block_on_waker_may_outlive_the_call),
        T(test_block_on_fires_timers_while_every_worker_is_busy),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
