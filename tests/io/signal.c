/* Tests for io/signal.c: a task waiting for a signal is woken by it; two
 * waiters both see one signal (broadcast), also on two runtimes; a waiter
 * dropped, or a stream whose task stops polling it, leaves the others
 * woken by the fd; a signal that arrives while no
 * waiter for it exists is seen by the next wait (kept in the kernel, or by
 * the hub when another waiter's drain read it); a waiter dropped after its
 * signal came gives it back; the stream yields each arrival; misuse
 * (unblocked signal, bad numbers, no runtime) reports -EINVAL; and the
 * cancel sweeps of the future and the stream on the sim runtime.
 *
 * main blocks SIGUSR1 and SIGUSR2 before any thread exists; signals are
 * sent to the process with kill(getpid(), ...). Each test leaves neither
 * pending. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft/weft.h"
#include "io/signal.h"
#include "support/rt_fixture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "support/wait.h"

static void send_sig(int s)
{
    assert_int_equal(kill(getpid(), s), 0);
}

static bool kernel_pending(int s)
{
    sigset_t p;
    sigpending(&p);
    return sigismember(&p, s);
}

/* Take a pending signal out of the kernel (a test's cleanup). */
static void consume_pending(int s)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, s);
    struct timespec zero = { 0, 0 };
    while (sigtimedwait(&set, NULL, &zero) == s) {
    }
}

static weft__signal_hub_state hub_state(void)
{
    weft__signal_hub_state st;
    weft__signal_hub_state_get(&st);
    return st;
}

/* Nothing left anywhere: no waiter, no fd, nothing kept or pending. */
static void assert_hub_idle(void)
{
    weft__signal_hub_state st = hub_state();
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.regs, 0);
    assert_int_equal(st.fd, -1);
    assert_int_equal(st.kept, 0);
    assert_false(kernel_pending(SIGUSR1));
    assert_false(kernel_pending(SIGUSR2));
}

#define BIT(s) ((uint64_t)1 << ((s) - 1))

/* ---- a task that waits for one signal ------------------------------------------- */

typedef struct waiter {
    weft_future base;
    weft_co co;
    int sig;
    int *result; /* if set, the signal is stored there too */
    weft_signal s;
    int got;
} waiter;

WEFT_ASYNC_FN_WITH_DROP(waiter, int)
{
    WEFT_FN_BEGIN;
    weft_signal_init(&self->s, &self->sig, 1);
    WEFT_FN_AWAIT(&self->s, &self->got);
    if (self->result)
        *self->result = self->got;
    WEFT_FN_RETURN(self->got);
    WEFT_FN_END;
}

static void waiter_drop(weft_future *f)
{
    waiter *self = (waiter *)f;
    weft_co_drop(&self->co); /* drops the awaited signal future, if pending */
}

static void test_signal_wakes_a_waiting_task(void **state)
{
    (void)state;
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR1 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 1); /* it waits: the signal comes after */
    send_sig(SIGUSR1);
    int got = 0;
    assert_int_equal(join_blocking(g_rt, &j, &got, sizeof got), 0);
    assert_int_equal(got, SIGUSR1);
    assert_hub_idle(); /* read once, by the waiter; the fd closed with it */
}

static void test_two_waiters_both_see_one_signal(void **state)
{
    (void)state;
    weft_join a, b;
    assert_int_equal(WEFT_SPAWN(g_rt, &a, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR1 }),
                     0);
    assert_int_equal(WEFT_SPAWN(g_rt, &b, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR1 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 2);
    send_sig(SIGUSR1); /* once */
    int ga = 0, gb = 0;
    assert_int_equal(join_blocking(g_rt, &a, &ga, sizeof ga), 0);
    assert_int_equal(join_blocking(g_rt, &b, &gb, sizeof gb), 0);
    assert_int_equal(ga, SIGUSR1);
    assert_int_equal(gb, SIGUSR1);
    assert_hub_idle();
}

/* Two runtimes, a waiter on each: the one signalfd is registered with
 * both reactors, and one signal wakes both. */
static void test_waiters_on_two_runtimes_both_see_one_signal(void **state)
{
    (void)state;
    weft_rt *other = rt_start(1);
    weft_join a, b;
    assert_int_equal(WEFT_SPAWN(g_rt, &a, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR2 }),
                     0);
    assert_int_equal(WEFT_SPAWN(other, &b, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                      .sig = SIGUSR2 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 2);
    assert_int_equal(hub_state().regs, 2);
    send_sig(SIGUSR2);
    int ga = 0, gb = 0;
    assert_int_equal(join_blocking(g_rt, &a, &ga, sizeof ga), 0);
    assert_int_equal(join_blocking(other, &b, &gb, sizeof gb), 0);
    weft_rt_shutdown(other);
    assert_int_equal(ga, SIGUSR2);
    assert_int_equal(gb, SIGUSR2);
    assert_hub_idle();
}

/* Sent while nobody waits: it stays pending in the kernel (blocked, no
 * signalfd reads it) and the next waiter sees it at its first poll. */
static void test_signal_with_no_waiter_is_seen_by_the_next_wait(void **state)
{
    (void)state;
    send_sig(SIGUSR2);
    assert_true(kernel_pending(SIGUSR2));
    int got = 0;
    assert_int_equal(spawn_blocking(g_rt,
                                    &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND), .sig = SIGUSR2 }
                                         .base,
                                    sizeof(waiter), &got, sizeof got),
                     0);
    assert_int_equal(got, SIGUSR2);
    assert_hub_idle();
}

/* Read by another waiter's drain (the fd's mask has it from an earlier
 * waiter) while no waiter for it exists: the hub keeps it for the next. */
static void test_signal_read_for_nobody_is_kept_for_the_next_wait(void **state)
{
    (void)state;
    weft_join a, b;
    /* b joins for SIGUSR2 and stays, so the fd's mask has SIGUSR2 while a
     * waits for SIGUSR1 alone. */
    assert_int_equal(WEFT_SPAWN(g_rt, &a, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR1 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 1);
    assert_int_equal(WEFT_SPAWN(g_rt, &b, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR2 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 2);
    send_sig(SIGUSR2);
    int gb = 0;
    assert_int_equal(join_blocking(g_rt, &b, &gb, sizeof gb), 0);
    assert_int_equal(gb, SIGUSR2);
    /* Now a waits alone (for SIGUSR1) with SIGUSR2 in the mask: a SIGUSR2
     * sent now is read by a's drain and kept. */
    send_sig(SIGUSR2);
    WAIT_UNTIL(hub_state().kept == BIT(SIGUSR2));
    assert_false(kernel_pending(SIGUSR2));
    int gc = 0;
    assert_int_equal(spawn_blocking(g_rt,
                                    &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND), .sig = SIGUSR2 }
                                         .base,
                                    sizeof(waiter), &gc, sizeof gc),
                     0);
    assert_int_equal(gc, SIGUSR2);
    assert_int_equal(hub_state().kept, 0);
    send_sig(SIGUSR1);
    int ga = 0;
    assert_int_equal(join_blocking(g_rt, &a, &ga, sizeof ga), 0);
    assert_int_equal(ga, SIGUSR1);
    assert_hub_idle();
}

/* The waiter that waited last is aborted: the one left is still woken
 * when the fd has a signal. */
static void test_dropped_waiter_leaves_the_others_waiting(void **state)
{
    (void)state;
    weft_join a, b;
    assert_int_equal(WEFT_SPAWN(g_rt, &a, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR1 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 1);
    assert_int_equal(WEFT_SPAWN(g_rt, &b, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR1 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 2); /* b polled last */
    weft_join_abort(&b);
    int gb = 0;
    assert_int_equal(join_blocking(g_rt, &b, &gb, sizeof gb), -ECANCELED);
    assert_int_equal(hub_state().waiters, 1);
    send_sig(SIGUSR1);
    int ga = 0;
    assert_int_equal(join_blocking(g_rt, &a, &ga, sizeof ga), 0);
    assert_int_equal(ga, SIGUSR1);
    assert_hub_idle();
}

/* A task joins with a stream, then waits for something else and never
 * polls the stream again. A future that waits for the same signal must
 * still be woken by it: the fd's wake does not depend on the stream's
 * task polling the stream. */
typedef struct idle_stream {
    weft_future base;
    weft_co co;
    weft_signal_stream s;
    weft_oneshot_rx *release;
    weft_oneshot_recv recv;
    int item, rc;
} idle_stream;

WEFT_ASYNC_FN_WITH_DROP(idle_stream, int)
{
    WEFT_FN_BEGIN;
    {
        const int u1 = SIGUSR1;
        weft_signal_stream_init(&self->s, &u1, 1);
        weft_waker noop = weft_waker_noop();
        weft_cx ncx;
        weft_cx_init(&ncx, &noop);
        /* One poll by hand: it joins (and waits), then is left alone. */
        if (weft_stream_poll_next(&self->s.base, &ncx, &self->item) != WEFT_NEXT_PENDING)
            WEFT_FN_RETURN(-1);
    }
    weft_oneshot_recv_init(&self->recv, self->release, NULL);
    WEFT_FN_AWAIT(&self->recv, &self->rc);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void idle_stream_drop(weft_future *f)
{
    idle_stream *self = (idle_stream *)f;
    weft_co_drop(&self->co);
    weft_stream_drop(&self->s.base);
}

static void test_unpolled_stream_does_not_stall_other_waiters(void **state)
{
    (void)state;
    weft_oneshot_tx tx;
    static weft_oneshot_rx rx;
    assert_int_equal(weft_oneshot_new(&tx, &rx, 0), 0);
    weft_join a, st;
    assert_int_equal(WEFT_SPAWN(g_rt, &a, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                     .sig = SIGUSR1 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 1);
    assert_int_equal(WEFT_SPAWN(g_rt, &st,
                                &(idle_stream){ WEFT_FN_INIT(idle_stream, WEFT_F_SEND),
                                                .release = &rx }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 2); /* the stream waited last */
    send_sig(SIGUSR1);
    int ga = 0;
    assert_int_equal(join_blocking(g_rt, &a, &ga, sizeof ga), 0);
    assert_int_equal(ga, SIGUSR1);
    assert_int_equal(weft_oneshot_send(&tx, NULL), 0);
    weft_oneshot_tx_drop(&tx);
    int rc = -7;
    assert_int_equal(join_blocking(g_rt, &st, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    weft_oneshot_rx_drop(&rx);
    assert_hub_idle(); /* the stream held the arrival; its drop kept nothing (a returned it) */
}

/* ---- by hand: a waiter dropped after its signal came ----------------------------- */

typedef struct by_hand {
    weft_future base;
    bool keep_b_as_stream;
    int out_b, out_c;
    uint64_t kept_after_drop;
} by_hand;

static weft_poll poll_once(weft_future *f, void *out)
{
    weft_waker noop = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &noop);
    return weft_future_poll(f, &cx, out);
}

/* A waits for SIGUSR1. Either B waits for SIGUSR2 alone, so B's poll
 * reads the SIGUSR1 (in the fd's mask for A) and gives it to A, who is
 * dropped without returning it: nobody saw it, so it is kept, and C, the
 * next waiter, returns it. Or B (a stream) waits for SIGUSR1 too and
 * returns it: A, dropped holding it, keeps nothing (B saw it). */
static weft_poll by_hand_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx, (void)out;
    by_hand *h = (by_hand *)f;
    const int u1 = SIGUSR1, u2 = SIGUSR2;
    weft_signal a, c;
    weft_signal_init(&a, &u1, 1);
    int ga = 0;
    assert_int_equal(poll_once(&a.base, &ga), WEFT_PENDING);
    if (h->keep_b_as_stream) {
        weft_signal_stream b;
        weft_signal_stream_init(&b, &u1, 1);
        weft_waker noop = weft_waker_noop();
        weft_cx ncx;
        weft_cx_init(&ncx, &noop);
        assert_int_equal(weft_stream_poll_next(&b.base, &ncx, &h->out_b), WEFT_NEXT_PENDING);
        send_sig(SIGUSR1);
        while (weft_stream_poll_next(&b.base, &ncx, &h->out_b) != WEFT_NEXT_ITEM) {
        }
        weft_future_drop(&a.base); /* held it, never returned it */
        h->kept_after_drop = hub_state().kept;
        weft_stream_drop(&b.base);
    } else {
        weft_signal b;
        weft_signal_init(&b, &u2, 1);
        assert_int_equal(poll_once(&b.base, &h->out_b), WEFT_PENDING);
        send_sig(SIGUSR1);
        /* kill() made it pending before returning: B's next poll drains
         * it and gives it to A. */
        assert_true(kernel_pending(SIGUSR1));
        assert_int_equal(poll_once(&b.base, &h->out_b), WEFT_PENDING);
        assert_false(kernel_pending(SIGUSR1));
        assert_int_equal(a.w_.got_, BIT(SIGUSR1));
        weft_future_drop(&a.base); /* held it, never returned it */
        h->kept_after_drop = hub_state().kept;
        weft_future_drop(&b.base);
        weft_signal_init(&c, &u1, 1);
        assert_int_equal(poll_once(&c.base, &h->out_c), WEFT_READY);
        weft_future_drop(&c.base);
    }
    return WEFT_READY;
}

static const weft_future_ops by_hand_ops = {
    .name = "test_by_hand", .out_size = 0, .poll = by_hand_poll,
};

static void test_dropped_waiter_gives_its_signal_back(void **state)
{
    (void)state;
    by_hand h = { WEFT_FUTURE_INIT(&by_hand_ops, WEFT_F_SEND), false, 0, 0, 0 };
    assert_int_equal(weft_block_on(g_rt, &h.base, NULL, 0), 0);
    assert_int_equal(h.out_b, 0);                       /* B never completed */
    assert_int_equal(h.kept_after_drop, BIT(SIGUSR1)); /* given back */
    assert_int_equal(h.out_c, SIGUSR1);                 /* the next wait saw it */
    assert_hub_idle();
}

static void test_dropped_waiter_keeps_nothing_another_saw(void **state)
{
    (void)state;
    by_hand h = { WEFT_FUTURE_INIT(&by_hand_ops, WEFT_F_SEND), true, 0, 0, 0 };
    assert_int_equal(weft_block_on(g_rt, &h.base, NULL, 0), 0);
    assert_int_equal(h.out_b, SIGUSR1);
    assert_int_equal(h.kept_after_drop, 0);
    assert_hub_idle();
}

/* ---- the stream ------------------------------------------------------------------ */

static _Atomic int g_items;

typedef struct taker {
    weft_future base;
    weft_co co;
    int n, i, item, sum, had;
    weft_signal_stream s;
    weft_stream_next next;
} taker;

WEFT_ASYNC_FN_WITH_DROP(taker, int)
{
    WEFT_FN_BEGIN;
    {
        static const int both[] = { SIGUSR1, SIGUSR2 };
        weft_signal_stream_init(&self->s, both, 2);
    }
    for (self->i = 0; self->i < self->n; self->i++) {
        weft_stream_next_init(&self->next, &self->s.base, &self->item);
        WEFT_FN_AWAIT(&self->next, &self->had);
        if (!self->had)
            WEFT_FN_RETURN(-1);
        self->sum = self->sum * 100 + self->item;
        weft_atomic_fetch_add_release(&g_items, 1);
    }
    WEFT_FN_RETURN(self->sum);
    WEFT_FN_END;
}

static void taker_drop(weft_future *f)
{
    taker *self = (taker *)f;
    weft_co_drop(&self->co);
    weft_stream_drop(&self->s.base);
}

static void test_stream_yields_each_arrival(void **state)
{
    (void)state;
    weft_atomic_init(&g_items, 0);
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(taker){ WEFT_FN_INIT(taker, WEFT_F_SEND), .n = 3 }),
                     0);
    WAIT_UNTIL(hub_state().waiters == 1);
    const int order[] = { SIGUSR1, SIGUSR2, SIGUSR1 };
    for (int i = 0; i < 3; i++) {
        send_sig(order[i]);
        WAIT_UNTIL(weft_atomic_load_acquire(&g_items) == i + 1);
    }
    int sum = 0;
    assert_int_equal(join_blocking(g_rt, &j, &sum, sizeof sum), 0);
    assert_int_equal(sum, SIGUSR1 * 10000 + SIGUSR2 * 100 + SIGUSR1);
    assert_hub_idle();
}

/* ---- misuse ------------------------------------------------------------------------ */

static void test_signal_block_rejects_bad_numbers(void **state)
{
    (void)state;
    int before = misuse_count();
    assert_int_equal(weft_signal_block(NULL, 1), -EINVAL);
    assert_int_equal(weft_signal_block((const int[]){ SIGKILL }, 1), -EINVAL);
    assert_int_equal(weft_signal_block((const int[]){ 0 }, 1), -EINVAL);
    assert_int_equal(weft_signal_block((const int[]){ 65 }, 1), -EINVAL);
    assert_misuse_since(before, 4, "weft_signal_block");
    assert_int_equal(weft_signal_block((const int[]){ SIGUSR1 }, 1), 0); /* already */
}

static int block_on_signal(const int *sigs, size_t n)
{
    weft_signal s;
    weft_signal_init(&s, sigs, n);
    int got = 0;
    assert_int_equal(weft_block_on(g_rt, &s.base, &got, sizeof got), 0);
    return got;
}

static void test_signal_misuse_reports_einval(void **state)
{
    (void)state;
    int before = misuse_count();
    assert_int_equal(block_on_signal(NULL, 1), -EINVAL);
    assert_int_equal(block_on_signal((const int[]){ SIGUSR1 }, 0), -EINVAL);
    assert_int_equal(block_on_signal((const int[]){ SIGSTOP }, 1), -EINVAL);
    assert_int_equal(block_on_signal((const int[]){ 99 }, 1), -EINVAL);
    int many[WEFT_SIGNAL_MAX + 1];
    for (int i = 0; i <= WEFT_SIGNAL_MAX; i++)
        many[i] = SIGUSR1;
    assert_int_equal(block_on_signal(many, WEFT_SIGNAL_MAX + 1), -EINVAL);
    /* Not blocked in the polling thread (block_on polls on this one). */
    assert_false(kernel_pending(SIGUSR2));
    sigset_t u2;
    sigemptyset(&u2);
    sigaddset(&u2, SIGUSR2);
    assert_int_equal(pthread_sigmask(SIG_UNBLOCK, &u2, NULL), 0);
    int rc = block_on_signal((const int[]){ SIGUSR2 }, 1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &u2, NULL), 0);
    assert_int_equal(rc, -EINVAL);
    /* Outside any runtime. */
    weft_signal s;
    weft_signal_init(&s, (const int[]){ SIGUSR1 }, 1);
    int got = 0;
    assert_int_equal(poll_once(&s.base, &got), WEFT_READY);
    assert_int_equal(got, -EINVAL);
    weft_future_drop(&s.base);
    /* A bad stream: one -EINVAL item, then DONE. */
    weft_signal_stream st;
    weft_signal_stream_init(&st, (const int[]){ SIGKILL }, 1);
    weft_waker noop = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &noop);
    int item = 0;
    assert_int_equal(weft_stream_poll_next(&st.base, &cx, &item), WEFT_NEXT_ITEM);
    assert_int_equal(item, -EINVAL);
    assert_int_equal(weft_stream_poll_next(&st.base, &cx, &item), WEFT_NEXT_DONE);
    weft_stream_drop(&st.base);
    assert_misuse_since(before, 8, "weft_signal");
    assert_hub_idle();
}

/* ---- cancel sweeps ------------------------------------------------------------------ */

/* Sends SIGUSR1 to the process after a few yields. */
typedef struct sender {
    weft_future base;
    weft_co co;
    int i;
} sender;

WEFT_ASYNC_FN(sender, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++)
        WEFT_FN_YIELD;
    WEFT_FN_RETURN(kill(getpid(), SIGUSR1));
    WEFT_FN_END;
}

typedef struct sig_case {
    bool stream;
    bool other;    /* a second waiter task waits for the signal too */
    int other_got; /* what it got */
    weft_signal f;
    weft_signal_stream s;
    weft_stream_next next;
    int out, had;
} sig_case;

static int sig_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    sig_case *c = ctx;
    const int u1 = SIGUSR1;
    c->out = 0;
    if (c->stream) {
        weft_signal_stream_init(&c->s, &u1, 1);
        weft_stream_next_init(&c->next, &c->s.base, &c->out);
        c->had = 0;
        *fut = &c->next.base;
        *out = &c->had;
    } else {
        weft_signal_init(&c->f, &u1, 1);
        *fut = &c->f.base;
        *out = &c->out;
    }
    if (c->other) {
        c->other_got = 0;
        int rc = WEFT_SPAWN(rt, NULL, &(waiter){ WEFT_FN_INIT(waiter, WEFT_F_SEND),
                                                  .sig = SIGUSR1, .result = &c->other_got });
        if (rc)
            return rc;
    }
    return WEFT_SPAWN(rt, NULL, &(sender){ WEFT_FN_INIT(sender, WEFT_F_SEND) });
}

static const char *sig_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    sig_case *c = ctx;
    /* The stream form keeps the dropped next's waker until the stream is
     * polled again or dropped (teardown drops it). */
    if (!c->stream && run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) held after the drop", run->k,
                         run->wakers_after_drop);
    if (c->other) {
        /* The other waiter saw the signal whatever became of this one;
         * nothing is left pending or kept. */
        int got = c->other_got;
        if (got != SIGUSR1 || kernel_pending(SIGUSR1) || hub_state().kept)
            return sweep_say("k=%u: the other waiter got %d; pending %d, kept %#llx", run->k,
                             got, kernel_pending(SIGUSR1),
                             (unsigned long long)hub_state().kept);
        return sweep_leftovers(rt);
    }
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (c->stream) {
        /* The stream is still the caller's: whatever its next did not
         * return, it still has (or the kernel does), and it returns it now. */
        weft__signal_hub_state st = hub_state();
        if (run->completed)
            return c->had && c->out == SIGUSR1 && !kernel_pending(SIGUSR1) && st.kept == 0
                       ? NULL
                       : sweep_say("k=%u: completed with %d, pending %d, kept %#llx",
                                   run->k, c->out, kernel_pending(SIGUSR1),
                                   (unsigned long long)st.kept);
        if (st.kept)
            return sweep_say("k=%u: kept %#llx while the stream waits", run->k,
                             (unsigned long long)st.kept);
        /* Not returned: the stream holds it (a next would return it) or
         * the kernel does (the stream's next poll reads it), not both. */
        bool held = c->s.w_.got_ & BIT(SIGUSR1), kernel = kernel_pending(SIGUSR1);
        if (held == kernel)
            return sweep_say("k=%u: next dropped; held by the stream %d, in the kernel %d",
                             run->k, held, kernel);
        return NULL;
    }
    weft__signal_hub_state st = hub_state();
    if (st.waiters || st.regs || st.fd != -1)
        return sweep_say("k=%u: the hub holds %u waiter(s), %u reg(s), fd %d", run->k,
                         st.waiters, st.regs, st.fd);
    bool kernel = kernel_pending(SIGUSR1), kept = st.kept & BIT(SIGUSR1);
    if (run->completed) {
        if (c->out != SIGUSR1 || kernel || kept)
            return sweep_say("k=%u: completed with %d, and still pending %d / kept %d",
                             run->k, c->out, kernel, kept);
        return NULL;
    }
    /* Dropped: the signal is where the next wait finds it, exactly once. */
    if (kernel == kept)
        return sweep_say("k=%u: dropped; pending in the kernel %d, kept %d", run->k, kernel,
                         kept);
    return NULL;
}

static void sig_teardown(void *ctx)
{
    sig_case *c = ctx;
    if (c->stream)
        weft_stream_drop(&c->s.base);
    consume_pending(SIGUSR1);
    weft__signal_unkeep(BIT(SIGUSR1));
}

static void test_cancel_sweep_signal(void **state)
{
    (void)state;
    static sig_case c;
    c.stream = false;
    c.other = false;
    weft_sweep_case sc = { sig_build, sig_check, sig_teardown, &c };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2); /* it waited for the signal */
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
    /* With a second waiter: it sees the signal whatever becomes of this
     * one, and this one, dropped, holds no waker. */
    c.other = true;
    o = sweep_options(1, 1);
    sweep_pass(&sc, &o);
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
    assert_hub_idle();
}

static void test_cancel_sweep_signal_stream_next(void **state)
{
    (void)state;
    static sig_case c;
    c.stream = true;
    c.other = false;
    weft_sweep_case sc = { sig_build, sig_check, sig_teardown, &c };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2);
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
    assert_hub_idle();
}

int main(void)
{
    /* Before any thread: every thread the tests make inherits the mask. */
    static const int sigs[] = { SIGUSR1, SIGUSR2 };
    if (weft_signal_block(sigs, 2) != 0)
        return 1;
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_signal_wakes_a_waiting_task),
        RT(test_two_waiters_both_see_one_signal),
        RT(test_waiters_on_two_runtimes_both_see_one_signal),
        RT(test_signal_with_no_waiter_is_seen_by_the_next_wait),
        RT(test_signal_read_for_nobody_is_kept_for_the_next_wait),
        RT(test_dropped_waiter_leaves_the_others_waiting),
        RT(test_unpolled_stream_does_not_stall_other_waiters),
        RT(test_dropped_waiter_gives_its_signal_back),
        RT(test_dropped_waiter_keeps_nothing_another_saw),
        RT(test_stream_yields_each_arrival),
        RT(test_signal_block_rejects_bad_numbers),
        RT(test_signal_misuse_reports_einval),
        T(test_cancel_sweep_signal),
        T(test_cancel_sweep_signal_stream_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
