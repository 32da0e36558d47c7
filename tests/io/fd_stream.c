/* Tests for io/fd_stream.c: fd streams over pipes and socketpairs — bytes
 * through a pipe on two workers and on chaos sims, a write to a pipe whose
 * read end is closed (-EPIPE, and no SIGPIPE delivered or left pending),
 * shutdown of a socket's write side (the peer sees the end) and of a pipe
 * (-ENOTSUP), fini that closes the fd only when asked, and init's errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/weft.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "io/io_support.h"

#define BIG (1u << 20)

static unsigned char g_pattern[BIG];
static unsigned char g_sink[BIG];

/* ---- tasks -------------------------------------------------------------------- */

/* write_all of src[0, len) to `w` in pieces of `chunk`, then fini `owner`
 * (which closes a pipe's write end: the reader sees the end). */
typedef struct pusher {
    weft_future base;
    weft_co co;
    weft_writer *w;
    weft_fd_stream *owner;
    const unsigned char *src;
    size_t len, chunk, off;
    weft_write_all wa;
    int rc;
} pusher;

WEFT_ASYNC_FN(pusher, int)
{
    WEFT_FN_BEGIN;
    while (self->off < self->len) {
        {
            size_t n = self->len - self->off < self->chunk ? self->len - self->off : self->chunk;
            weft_write_all_init(&self->wa, self->w, self->src + self->off, n);
        }
        WEFT_FN_AWAIT(&self->wa, &self->rc);
        if (self->rc)
            break;
        self->off += self->wa.done;
    }
    if (self->owner)
        weft_fd_stream_fini(self->owner);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

/* Reads `r` to its end into dst (a yield after each read). Output: the
 * count, or the first error. */
typedef struct puller {
    weft_future base;
    weft_co co;
    weft_reader *r;
    unsigned char *dst;
    size_t cap, got;
    weft_read rd;
    int64_t n;
} puller;

WEFT_ASYNC_FN(puller, int64_t)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_read_init(&self->rd, self->r, self->dst + self->got,
                       self->cap - self->got < 3000 ? self->cap - self->got : 3000);
        WEFT_FN_AWAIT(&self->rd, &self->n);
        if (self->n <= 0)
            break;
        self->got += (size_t)self->n;
        WEFT_FN_YIELD;
    }
    WEFT_FN_RETURN(self->n < 0 ? self->n : (int64_t)self->got);
    WEFT_FN_END;
}

/* ---- a pipe ---------------------------------------------------------------------- */

static struct {
    weft_fd_stream rd, wr;
} g_pipe;

static int make_pipe(void *arg)
{
    (void)arg;
    return weft_pipe(&g_pipe.rd, &g_pipe.wr);
}

static void run_pipe(weft_rt *rt, size_t len)
{
    memset(g_sink, 0, len);
    assert_int_equal(in_rt(rt, make_pipe, NULL), 0);
    weft_join jw, jr;
    assert_int_equal(WEFT_SPAWN(rt, &jw, &(pusher){ WEFT_FN_INIT(pusher, WEFT_F_SEND),
                                                     .w = &g_pipe.wr.writer, .owner = &g_pipe.wr,
                                                     .src = g_pattern, .len = len,
                                                     .chunk = 100000 }),
                     0);
    assert_int_equal(WEFT_SPAWN(rt, &jr, &(puller){ WEFT_FN_INIT(puller, WEFT_F_SEND),
                                                     .r = &g_pipe.rd.reader, .dst = g_sink,
                                                     .cap = len }),
                     0);
    int wrc = -7;
    int64_t got = -7;
    assert_int_equal(join_blocking(rt, &jw, &wrc, sizeof wrc), 0);
    assert_int_equal(join_blocking(rt, &jr, &got, sizeof got), 0);
    assert_int_equal(wrc, 0);
    assert_int_equal(got, len);
    assert_memory_equal(g_sink, g_pattern, len);
    weft_fd_stream_fini(&g_pipe.rd);
}

static void test_pipe_carries_a_megabyte(void **state)
{
    (void)state;
    run_pipe(g_rt, BIG);
}

static void test_pipe_on_chaos_sims(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        weft_sim_options o = sim_options(sim_seed_or(seed));
        o.leaf_pending = 0.3;
        o.spurious_wake = 0.3;
        weft_rt *rt = sim_start(&o);
        run_pipe(rt, 200000);
        weft_rt_shutdown(rt);
    }
}

/* ---- SIGPIPE ------------------------------------------------------------------------ */

static struct {
    weft_write w;
    int64_t n;
} g_w;

static int write_once(void *arg)
{
    weft_writer *w = arg;
    weft_write_init(&g_w.w, w, "x", 1);
    weft_waker noop = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &noop);
    g_w.n = -7;
    return weft_future_poll(&g_w.w.base, &cx, &g_w.n) == WEFT_READY ? 0 : -1;
}

static void test_pipe_write_to_a_closed_read_end_is_epipe_without_sigpipe(void **state)
{
    (void)state;
    /* The default disposition: a SIGPIPE would end the test program. */
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    assert_int_equal(in_rt(g_rt, make_pipe, NULL), 0);
    weft_fd_stream_fini(&g_pipe.rd); /* closes the read end */
    assert_int_equal(in_rt(g_rt, write_once, &g_pipe.wr.writer), 0);
    assert_int_equal(g_w.n, -EPIPE);
    /* Nothing left pending either (it was taken back on that thread;
     * block_on polled it here). */
    sigset_t pending;
    sigemptyset(&pending);
    assert_int_equal(sigpending(&pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    weft_fd_stream_fini(&g_pipe.wr);
    signal(SIGPIPE, old);
}

/* ---- shutdown -------------------------------------------------------------------------- */

static struct {
    weft_fd_stream s;
    weft_flush f;
    int rc;
} g_sh;

static int shutdown_stream(void *arg)
{
    int fd = *(int *)arg;
    int rc = weft_fd_stream_init(&g_sh.s, fd, 0);
    if (rc)
        return rc;
    weft_shutdown_write_init(&g_sh.f, &g_sh.s.writer);
    weft_waker noop = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &noop);
    g_sh.rc = -7;
    rc = weft_future_poll(&g_sh.f.base, &cx, &g_sh.rc) == WEFT_READY ? 0 : -1;
    weft_fd_stream_fini(&g_sh.s);
    return rc;
}

static void test_shutdown_write_ends_a_socket_and_is_enotsup_on_a_pipe(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(in_rt(g_rt, shutdown_stream, &sv[0]), 0);
    assert_int_equal(g_sh.rc, 0);
    char b;
    assert_int_equal(read(sv[1], &b, 1), 0); /* the end */
    close(sv[0]);
    close(sv[1]);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(in_rt(g_rt, shutdown_stream, &p[1]), 0);
    assert_int_equal(g_sh.rc, -ENOTSUP);
    close(p[0]);
    close(p[1]);
}

/* ---- init and fini ---------------------------------------------------------------------- */

static struct {
    int file_fd, sock_fd;
    int rc_file, rc_neg, rc_flags, rc_null, rc_pipe_null;
} g_err;

static int init_errors(void *arg)
{
    (void)arg;
    weft_fd_stream s;
    g_err.rc_file = weft_fd_stream_init(&s, g_err.file_fd, 0);
    g_err.rc_neg = weft_fd_stream_init(&s, -1, 0);
    g_err.rc_flags = weft_fd_stream_init(&s, g_err.sock_fd, 0x80);
    g_err.rc_null = weft_fd_stream_init(NULL, g_err.sock_fd, 0);
    g_err.rc_pipe_null = weft_pipe(&s, NULL);
    return 0;
}

static void test_init_errors(void **state)
{
    (void)state;
    char path[] = "/tmp/weft-fd-stream-test-XXXXXX";
    g_err.file_fd = mkstemp(path);
    assert_true(g_err.file_fd >= 0);
    unlink(path);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    g_err.sock_fd = sv[0];
    int before = misuse_count();
    assert_int_equal(in_rt(g_rt, init_errors, NULL), 0);
    assert_int_equal(g_err.rc_file, -EPERM); /* a regular file: the blocking pool's */
    assert_int_equal(g_err.rc_neg, -EINVAL);
    assert_int_equal(g_err.rc_flags, -EINVAL);
    assert_int_equal(g_err.rc_null, -EINVAL);
    assert_int_equal(g_err.rc_pipe_null, -EINVAL);
    assert_misuse_since(before, 4, "weft_pipe");
    /* Outside any runtime: no reactor to register with. */
    weft_fd_stream s;
    assert_int_equal(weft_fd_stream_init(&s, sv[0], 0), -EINVAL);
    /* The socket is still free to register: nothing was left behind. */
    assert_int_equal(in_rt(g_rt, shutdown_stream, &sv[0]), 0);
    assert_int_equal(g_sh.rc, 0);
    close(g_err.file_fd);
    close(sv[0]);
    close(sv[1]);
}

static struct {
    weft_fd_stream s;
    int fd;
    unsigned flags;
} g_fini;

static int init_fini(void *arg)
{
    (void)arg;
    return weft_fd_stream_init(&g_fini.s, g_fini.fd, g_fini.flags);
}

static void test_fini_closes_the_fd_only_when_asked(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    g_fini.fd = sv[0];
    g_fini.flags = 0;
    assert_int_equal(in_rt(g_rt, init_fini, NULL), 0);
    weft_fd_stream_fini(&g_fini.s);
    weft_fd_stream_fini(&g_fini.s); /* a second fini does nothing */
    assert_true(fcntl(sv[0], F_GETFD) >= 0); /* still open: the caller's */
    g_fini.flags = WEFT_FD_STREAM_CLOSE;
    assert_int_equal(in_rt(g_rt, init_fini, NULL), 0); /* registrable again */
    weft_fd_stream_fini(&g_fini.s);
    assert_int_equal(fcntl(sv[0], F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    close(sv[1]);
}

/* ---- fd exhaustion ------------------------------------------------------------------ */

/* With one fd left under RLIMIT_NOFILE, weft_pipe cannot make its pair:
 * -EMFILE, nothing left open, and the runtime still serves (a pipe works
 * once the limit is back). */
static void test_pipe_without_fds_is_emfile_and_leaks_nothing(void **state)
{
    (void)state;
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0);
    assert_true(probe >= 0);
    close(probe);
    /* Every fd below `probe` may be taken; leave just `probe` free. */
    struct rlimit tight = old;
    tight.rlim_cur = (rlim_t)probe + 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    int rc = in_rt(g_rt, make_pipe, NULL);
    int after = dup(0); /* the free fd is still free: nothing leaked */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rc, -EMFILE);
    assert_int_equal(after, probe);
    close(after);
    run_pipe(g_rt, 100000);
}

static int group_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < BIG; i++)
        g_pattern[i] = (unsigned char)(i * 29u + (i >> 11));
    return 0;
}

int main(void)
{
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_pipe_carries_a_megabyte),
        SIM(test_pipe_on_chaos_sims),
        RT(test_pipe_write_to_a_closed_read_end_is_epipe_without_sigpipe),
        RT(test_shutdown_write_ends_a_socket_and_is_enotsup_on_a_pipe),
        RT(test_init_errors),
        RT(test_fini_closes_the_fd_only_when_asked),
        RT(test_pipe_without_fds_is_emfile_and_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
