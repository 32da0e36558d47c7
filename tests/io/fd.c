/* Tests for io/fd.c and io/reactor.c: an fd registered with the runtime's
 * reactor — a read that waits for data written later, a write that waits
 * for room, the peer's close reported, the readiness tick (a clear never
 * erases a newer event), registration errors, an idle runtime with an fd
 * registered that does not spin (counted), and the cancel sweep of
 * weft_io_ready — on two workers and on the sim runtime. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/weft.h"
#include "io/reactor.h"
#include "sched/runtime.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* ---- a reader: reads `want` bytes, waiting for readiness on EAGAIN ---------- */

typedef struct reader {
    weft_future base;
    weft_co co;
    int fd;
    _Atomic int *waiting; /* set once it waits (the writer waits for it) */
    size_t want, got;
    unsigned waits;
    weft_io io;
    weft_io_ready ready;
    uint32_t bits;
    char buf[4096];
} reader;

WEFT_ASYNC_FN_WITH_DROP(reader, int)
{
    WEFT_FN_BEGIN;
    if (weft_io_register(&self->io, self->fd) != 0)
        WEFT_FN_RETURN(-1);
    while (self->got < self->want) {
        {
            ssize_t n = read(self->fd, self->buf, sizeof self->buf);
            if (n > 0) {
                self->got += (size_t)n;
                continue;
            }
            if (n == 0)
                WEFT_FN_RETURN(-EPIPE);
            if (errno != EAGAIN)
                WEFT_FN_RETURN(-errno);
        }
        weft_io_clear_ready(&self->io, WEFT_IO_READ);
        weft_io_ready_init(&self->ready, &self->io, WEFT_IO_READ);
        self->waits++;
        if (self->waiting)
            weft_atomic_store_release(self->waiting, 1);
        WEFT_FN_AWAIT(&self->ready, &self->bits);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void reader_drop(weft_future *f)
{
    reader *self = (reader *)f;
    weft_co_drop(&self->co);
    weft_io_deregister(&self->io);
}

/* A writer task: `n` chunks of 1000 bytes, yielding between them, once
 * the reader waits for data (so the wait is certain to happen). */
typedef struct writer {
    weft_future base;
    weft_co co;
    int fd, n, i;
    _Atomic int *waiting;
} writer;

WEFT_ASYNC_FN(writer, int)
{
    WEFT_FN_BEGIN;
    while (!weft_atomic_load_acquire(self->waiting))
        WEFT_FN_YIELD;
    for (self->i = 0; self->i < self->n; self->i++) {
        WEFT_FN_YIELD;
        WEFT_FN_YIELD;
        {
            char chunk[1000];
            memset(chunk, 'a' + self->i % 26, sizeof chunk);
            if (write(self->fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk)
                WEFT_FN_RETURN(-1);
        }
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void run_read_waits_for_data(weft_rt *rt)
{
    int sv[2];
    pair(sv);
    static _Atomic int waiting;
    weft_atomic_init(&waiting, 0);
    weft_join jw;
    assert_int_equal(WEFT_SPAWN(rt, &jw, &(writer){ WEFT_FN_INIT(writer, WEFT_F_SEND),
                                                     .fd = sv[1], .n = 20, .waiting = &waiting }),
                     0);
    reader r = { WEFT_FN_INIT(reader, WEFT_F_SEND), .fd = sv[0], .want = 20000,
                 .waiting = &waiting };
    int rc = -7;
    assert_int_equal(weft_block_on(rt, &r.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(r.got, 20000);
    assert_true(r.waits > 0); /* it did wait for readiness */
    int wrc = -7;
    assert_int_equal(weft_block_on(rt, &jw.base, &wrc, sizeof wrc), 0);
    assert_int_equal(wrc, 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_read_waits_for_data_written_later(void **state)
{
    (void)state;
    run_read_waits_for_data(g_rt);
}

/* From a foreign thread, with the reader parked: the wake comes through
 * the reactor's eventfd-parked worker. */
static void *late_writer(void *arg)
{
    int fd = *(int *)arg;
    char c[500];
    memset(c, 'z', sizeof c);
    for (int i = 0; i < 8; i++)
        if (write(fd, c, sizeof c) != (ssize_t)sizeof c)
            return (void *)1;
    return NULL;
}

static void test_read_woken_by_a_foreign_thread(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    reader r = { WEFT_FN_INIT(reader, WEFT_F_SEND), .fd = sv[0], .want = 4000 };
    weft_join j;
    assert_int_equal(weft_spawn(g_rt, &r.base, sizeof r, &j), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, late_writer, &sv[1]), 0);
    int rc = -7;
    assert_int_equal(weft_block_on(g_rt, &j.base, &rc, sizeof rc), 0);
    void *res;
    pthread_join(th, &res);
    assert_null(res);
    assert_int_equal(rc, 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_read_waits_for_data_on_chaos_sims(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        weft_sim_options o = sim_options(sim_seed_or(seed));
        o.leaf_pending = 0.3;
        o.spurious_wake = 0.3;
        weft_rt *rt = sim_start(&o);
        run_read_waits_for_data(rt);
        weft_sim_stats st = sim_stats(rt);
        assert_true(st.polls > 0);
        weft_rt_shutdown(rt);
    }
}

/* ---- a write that waits for room -------------------------------------------- */

typedef struct filler {
    weft_future base;
    weft_co co;
    int fd;
    size_t sent, target;
    unsigned waits;
    weft_io io;
    weft_io_ready ready;
    uint32_t bits;
} filler;

WEFT_ASYNC_FN_WITH_DROP(filler, int)
{
    WEFT_FN_BEGIN;
    if (weft_io_register(&self->io, self->fd) != 0)
        WEFT_FN_RETURN(-1);
    while (self->sent < self->target) {
        {
            char chunk[8192];
            memset(chunk, 'w', sizeof chunk);
            size_t left = self->target - self->sent;
            ssize_t n = write(self->fd, chunk, left < sizeof chunk ? left : sizeof chunk);
            if (n > 0) {
                self->sent += (size_t)n;
                continue;
            }
            if (errno != EAGAIN)
                WEFT_FN_RETURN(-errno);
        }
        weft_io_clear_ready(&self->io, WEFT_IO_WRITE);
        weft_io_ready_init(&self->ready, &self->io, WEFT_IO_WRITE);
        self->waits++;
        WEFT_FN_AWAIT(&self->ready, &self->bits);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void filler_drop(weft_future *f)
{
    filler *self = (filler *)f;
    weft_co_drop(&self->co);
    weft_io_deregister(&self->io);
}

static void run_write_waits_for_room(weft_rt *rt)
{
    int sv[2];
    pair(sv);
    const size_t total = 4u << 20; /* far more than a socket buffer */
    weft_join jf, jr;
    assert_int_equal(WEFT_SPAWN(rt, &jf, &(filler){ WEFT_FN_INIT(filler, WEFT_F_SEND),
                                                     .fd = sv[1], .target = total }),
                     0);
    assert_int_equal(WEFT_SPAWN(rt, &jr, &(reader){ WEFT_FN_INIT(reader, WEFT_F_SEND),
                                                     .fd = sv[0], .want = total }),
                     0);
    int a = -7, b = -7;
    assert_int_equal(weft_block_on(rt, &jf.base, &a, sizeof a), 0);
    assert_int_equal(weft_block_on(rt, &jr.base, &b, sizeof b), 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_write_waits_for_room(void **state)
{
    (void)state;
    run_write_waits_for_room(g_rt);
}

static void test_write_waits_for_room_on_a_sim(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(sim_seed_or(3));
    o.leaf_pending = 0.2;
    weft_rt *rt = sim_start(&o);
    run_write_waits_for_room(rt);
    weft_rt_shutdown(rt);
}

/* ---- the peer's close ------------------------------------------------------------ */

typedef struct closed_wait {
    weft_future base;
    weft_co co;
    int fd;
    weft_io io;
    weft_io_ready ready;
    uint32_t bits;
} closed_wait;

WEFT_ASYNC_FN_WITH_DROP(closed_wait, uint32_t)
{
    WEFT_FN_BEGIN;
    if (weft_io_register(&self->io, self->fd) != 0)
        WEFT_FN_RETURN(0);
    weft_io_ready_init(&self->ready, &self->io, WEFT_IO_READ);
    WEFT_FN_AWAIT(&self->ready, &self->bits);
    WEFT_FN_RETURN(self->bits);
    WEFT_FN_END;
}

static void closed_wait_drop(weft_future *f)
{
    closed_wait *self = (closed_wait *)f;
    weft_co_drop(&self->co);
    weft_io_deregister(&self->io);
}

static void test_peer_close_is_reported(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    closed_wait c = { WEFT_FN_INIT(closed_wait, WEFT_F_SEND), .fd = sv[0] };
    weft_join j;
    assert_int_equal(weft_spawn(g_rt, &c.base, sizeof c, &j), 0);
    close(sv[1]);
    uint32_t bits = 0;
    assert_int_equal(weft_block_on(g_rt, &j.base, &bits, sizeof bits), 0);
    assert_true(bits & WEFT_IO_READ_CLOSED);
    assert_true(bits & WEFT_IO_READABLE);
    char b;
    assert_int_equal(read(sv[0], &b, 1), 0); /* EOF */
    close(sv[0]);
}

/* ---- the tick: a clear never erases a newer event ------------------------------- */

static void test_clear_keeps_a_newer_event(void **state)
{
    (void)state;
    static weft__reactor r;
    assert_int_equal(weft__reactor_init(&r), 0);
    int sv[2];
    pair(sv);
    weft__sio *s;
    assert_int_equal(weft__reactor_register(&r, sv[0], &s), 0);
    weft_waker noop = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &noop);
    assert_int_equal(weft__sio_poll_ready(s, &cx, WEFT_IO_READ), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_true(weft__reactor_try_acquire(&r));
    assert_true(weft__reactor_wait(&r, UINT64_MAX) >= 1);
    weft__reactor_dispatch(&r);
    uint64_t seen = weft__sio_poll_ready(s, &cx, WEFT_IO_READ);
    assert_true(seen & WEFT_IO_READABLE);
    /* A newer event (more data) lands before the reader's clear. */
    assert_int_equal(write(sv[1], "y", 1), 1);
    assert_true(weft__reactor_wait(&r, UINT64_MAX) >= 1);
    weft__reactor_dispatch(&r);
    weft__sio_clear(s, seen, WEFT_IO_READABLE);
    uint64_t now = weft__sio_poll_ready(s, &cx, WEFT_IO_READ);
    assert_true(now & WEFT_IO_READABLE); /* kept: it came after `seen` */
    /* A clear with the current tick does clear. */
    weft__sio_clear(s, now, WEFT_IO_READABLE);
    assert_int_equal(weft__sio_poll_ready(s, &cx, WEFT_IO_READ) & WEFT_IO_READABLE, 0);
    weft__reactor_deregister(&r, s);
    weft__reactor_release(&r);
    weft__reactor_fini(&r);
    close(sv[0]);
    close(sv[1]);
}

/* ---- registration errors ------------------------------------------------------------ */

typedef struct reg_errors {
    weft_future base;
    int file_fd, sock_fd;
    int rc_file, rc_neg, rc_twice;
} reg_errors;

static weft_poll reg_errors_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx, (void)out;
    reg_errors *e = (reg_errors *)f;
    weft_io a, b;
    e->rc_file = weft_io_register(&a, e->file_fd);
    e->rc_neg = weft_io_register(&a, -1);
    assert_int_equal(weft_io_register(&a, e->sock_fd), 0);
    e->rc_twice = weft_io_register(&b, e->sock_fd);
    weft_io_deregister(&a);
    return WEFT_READY;
}

static const weft_future_ops reg_errors_ops = {
    .name = "test_reg_errors", .out_size = 0, .poll = reg_errors_poll,
};

static void test_register_errors(void **state)
{
    (void)state;
    char path[] = "/tmp/weft-io-test-XXXXXX";
    int file_fd = mkstemp(path);
    assert_true(file_fd >= 0);
    unlink(path);
    int sv[2];
    pair(sv);
    reg_errors e = { WEFT_FUTURE_INIT(&reg_errors_ops, WEFT_F_SEND), file_fd, sv[0], 0, 0, 0 };
    int before = misuse_count();
    assert_int_equal(weft_block_on(g_rt, &e.base, NULL, 0), 0);
    assert_int_equal(e.rc_file, -EPERM);
    assert_int_equal(e.rc_neg, -EINVAL);
    assert_int_equal(e.rc_twice, -EEXIST);
    /* Outside any runtime: no reactor to register with. */
    weft_io io;
    assert_int_equal(weft_io_register(&io, sv[0]), -EINVAL);
    assert_misuse_since(before, 2, "weft_io_register");
    close(file_fd);
    close(sv[0]);
    close(sv[1]);
}

/* ---- an idle runtime with an fd registered sleeps ----------------------------------- */

static uint64_t total_parks(weft_rt *rt)
{
    weft_worker_stats st[4];
    unsigned n = 4;
    assert_int_equal(weft_rt_stats(rt, st, &n), 0);
    uint64_t parks = 0;
    for (unsigned i = 0; i < n && i < 4; i++)
        parks += st[i].parks;
    return parks;
}

/* A registered fd that never becomes readable, and a sleep of 200 ms:
 * the workers park a handful of times and the reactor turns as often
 * (one waits in epoll_wait with the timer's deadline), never once per
 * spin. Counted, not timed. */
typedef struct idle_io {
    weft_future base;
    weft_co co;
    int fd;
    weft_io io;
    weft_sleep s;
} idle_io;

WEFT_ASYNC_FN_WITH_DROP(idle_io, int)
{
    WEFT_FN_BEGIN;
    if (weft_io_register(&self->io, self->fd) != 0)
        WEFT_FN_RETURN(-1);
    weft_sleep_init(&self->s, WEFT_MS(200));
    WEFT_FN_AWAIT(&self->s, NULL);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void idle_io_drop(weft_future *f)
{
    idle_io *self = (idle_io *)f;
    weft_co_drop(&self->co);
    weft_io_deregister(&self->io);
}

static void test_idle_runtime_with_a_registered_fd_does_not_spin(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    weft_rt *rt;
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 2;
    assert_int_equal(weft_rt_new(&rt, &o), 0);
    uint64_t parks0 = total_parks(rt);
    uint64_t turns0 = weft_atomic_load_relaxed(&rt->pool.reactor.turns);
    idle_io t = { WEFT_FN_INIT(idle_io, WEFT_F_SEND), .fd = sv[0] };
    int rc = -7;
    assert_int_equal(weft_block_on(rt, &t.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    uint64_t parks = total_parks(rt) - parks0;
    uint64_t turns = weft_atomic_load_relaxed(&rt->pool.reactor.turns) - turns0;
    weft_rt_shutdown(rt);
    print_message("idle 200 ms with an fd registered: %llu parks, %llu reactor turns\n",
                  (unsigned long long)parks, (unsigned long long)turns);
    assert_true(parks <= 16);
    assert_true(turns <= 16);
    close(sv[0]);
    close(sv[1]);
}

/* ---- the cancel sweep of weft_io_ready ---------------------------------------------- */

typedef struct ready_case {
    int sv[2];
    weft_io io;
    weft_io_ready r;
    uint32_t bits;
} ready_case;

/* Writes one byte after a few yields. */
typedef struct poker {
    weft_future base;
    weft_co co;
    int fd, i;
} poker;

WEFT_ASYNC_FN(poker, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++)
        WEFT_FN_YIELD;
    WEFT_FN_RETURN(write(self->fd, "p", 1) == 1 ? 0 : -1);
    WEFT_FN_END;
}

static int ready_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    ready_case *rc = ctx;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rc->sv) != 0)
        return -errno;
    /* build runs with the sim current, so its reactor takes the fd. */
    int err = weft_io_register(&rc->io, rc->sv[0]);
    if (err)
        return err;
    rc->bits = 0;
    weft_io_ready_init(&rc->r, &rc->io, WEFT_IO_READ);
    *fut = &rc->r.base;
    *out = &rc->bits;
    return WEFT_SPAWN(rt, NULL, &(poker){ WEFT_FN_INIT(poker, WEFT_F_SEND), .fd = rc->sv[1] });
}

static const char *ready_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    ready_case *rc = ctx;
    if (run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) held after the drop", run->k,
                         run->wakers_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (run->completed && !(rc->bits & WEFT_IO_READABLE))
        return sweep_say("completed with %#x", rc->bits);
    /* Nothing consumed: the byte is there for whoever reads next. */
    char b;
    if (read(rc->sv[0], &b, 1) != 1 || b != 'p')
        return sweep_say("k=%u: the byte is gone", run->k);
    return NULL;
}

static void ready_teardown(void *ctx)
{
    ready_case *rc = ctx;
    weft_io_deregister(&rc->io);
    close(rc->sv[0]);
    close(rc->sv[1]);
}

static void test_cancel_sweep_io_ready(void **state)
{
    (void)state;
    static ready_case rc;
    weft_sweep_case c = { ready_build, ready_check, ready_teardown, &rc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2); /* it waited for the byte */
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&c, &o);
}

int main(void)
{
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_read_waits_for_data_written_later),
        RT(test_read_woken_by_a_foreign_thread),
        T(test_read_waits_for_data_on_chaos_sims),
        RT(test_write_waits_for_room),
        T(test_write_waits_for_room_on_a_sim),
        RT(test_peer_close_is_reported),
        T(test_clear_keeps_a_newer_event),
        RT(test_register_errors),
        T(test_idle_runtime_with_a_registered_fd_does_not_spin),
        T(test_cancel_sweep_io_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
