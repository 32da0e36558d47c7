/* Tests for io/tcp.c, on 127.0.0.1 with port 0: echo over loopback with
 * many connections (sequential and concurrent) on two workers and on the
 * sim runtime, connection refused, connect with a timeout, reset by peer,
 * end of stream, accept when the process is out of fds (EMFILE), closing
 * a listener with an accept pending, misuse, fd leaks (counted in
 * /proc/self/fd), and the cancel sweeps of accept, connect and read. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "weft/weft.h"
#include "support/alarm_watchdog.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "io/io_support.h"

/* ---- helpers --------------------------------------------------------------------- */

static int listen_any(void *arg)
{
    return weft_tcp_listen_ip(arg, "127.0.0.1", 0, 0);
}

/* Close in a drop or a teardown, where a refusal has no one to tell. */
static void listener_close_quiet(weft_tcp_listener *l)
{
    int rc = weft_tcp_listener_close(l);
    (void)rc;
}

/* A connected pair made with blocking calls (loopback completes at once),
 * then adopted: a runtime must be current. */
static int tcp_pair_buf(weft_tcp_stream *a, weft_tcp_stream *b, int buf);

static int tcp_pair(weft_tcp_stream *a, weft_tcp_stream *b)
{
    return tcp_pair_buf(a, b, 0);
}

/* The same with fixed buffers of `buf` bytes (0: the kernel's, which it
 * grows as it likes): a's send buffer, b's receive buffer. */
static int tcp_pair_buf(weft_tcp_stream *a, weft_tcp_stream *b, int buf)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd >= 0 && buf)
        (void)setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, len) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        return -errno;
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd >= 0 && buf)
        (void)setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, len) != 0)
        return -errno;
    int sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    close(lfd);
    if (sfd < 0)
        return -errno;
    int rc = weft_tcp_stream_from_fd(a, cfd);
    if (rc == 0)
        rc = weft_tcp_stream_from_fd(b, sfd);
    return rc;
}

static void set_linger_reset(weft_tcp_stream *s)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    assert_int_equal(setsockopt(weft_tcp_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
}

/* ---- echo: a handler per connection, a server, clients --------------------------- */

typedef struct echo_conn {
    weft_future base;
    weft_co co;
    weft_tcp_stream s;
    weft_tcp_io io;
    int64_t n, off, m;
    char buf[2048];
} echo_conn;

WEFT_ASYNC_FN_WITH_DROP(echo_conn, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_tcp_read_init(&self->io, &self->s, self->buf, sizeof self->buf);
        WEFT_FN_AWAIT(&self->io, &self->n);
        if (self->n <= 0)
            break;
        for (self->off = 0; self->off < self->n; self->off += self->m) {
            weft_tcp_write_init(&self->io, &self->s, self->buf + self->off,
                                (size_t)(self->n - self->off));
            WEFT_FN_AWAIT(&self->io, &self->m);
            if (self->m < 0)
                WEFT_FN_RETURN((int)self->m);
        }
    }
    WEFT_FN_RETURN((int)self->n);
    WEFT_FN_END;
}

static void echo_conn_drop(weft_future *f)
{
    echo_conn *self = (echo_conn *)f;
    weft_co_drop(&self->co);
    weft_tcp_stream_close(&self->s);
}

#define MAX_CONCURRENT 64

/* Accepts `n` connections; echoes each inline, or (concurrent) in a task
 * of its own, joined at the end. 0, or the first error. */
typedef struct echo_server {
    weft_future base;
    weft_co co;
    weft_tcp_listener *l;
    int n, i, rc, first_err;
    bool concurrent;
    weft_tcp_accept a;
    weft_tcp_stream s;
    echo_conn conn;
    weft_join joins[MAX_CONCURRENT];
} echo_server;

WEFT_ASYNC_FN(echo_server, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        weft_tcp_accept_init(&self->a, self->l, &self->s);
        WEFT_FN_AWAIT(&self->a, &self->rc);
        if (self->rc != 0)
            WEFT_FN_RETURN(self->rc);
        if (self->concurrent) {
            if (WEFT_SPAWN(weft_rt_current(), &self->joins[self->i],
                           &(echo_conn){ WEFT_FN_INIT(echo_conn, WEFT_F_SEND), .s = self->s }) != 0)
                WEFT_FN_RETURN(-ENOMEM);
        } else {
            self->conn = (echo_conn){ WEFT_FN_INIT(echo_conn, WEFT_F_SEND), .s = self->s };
            WEFT_FN_AWAIT(&self->conn, &self->rc);
            if (self->rc != 0 && !self->first_err)
                self->first_err = self->rc;
        }
    }
    if (self->concurrent)
        for (self->i = 0; self->i < self->n; self->i++) {
            WEFT_FN_AWAIT(&self->joins[self->i], &self->rc);
            if (self->rc != 0 && !self->first_err)
                self->first_err = self->rc;
        }
    WEFT_FN_RETURN(self->first_err);
    WEFT_FN_END;
}

/* Connects, sends `len` bytes of its own pattern, shuts its write side,
 * reads the echo to the end and compares. 0 or an error. */
typedef struct echo_client {
    weft_future base;
    weft_co co;
    int port, id, rc;
    size_t len, off, got;
    bool open;
    int64_t n;
    weft_tcp_stream s;
    weft_tcp_connect c;
    weft_tcp_io io;
    char out[3000], in[3001];
} echo_client;

WEFT_ASYNC_FN_WITH_DROP(echo_client, int)
{
    WEFT_FN_BEGIN;
    for (size_t k = 0; k < self->len; k++)
        self->out[k] = (char)(self->id * 31 + k * 7);
    weft_tcp_connect_ip_init(&self->c, &self->s, "127.0.0.1", (uint16_t)self->port);
    WEFT_FN_AWAIT(&self->c, &self->rc);
    if (self->rc != 0)
        WEFT_FN_RETURN(self->rc);
    self->open = true;
    for (self->off = 0; self->off < self->len; self->off += (size_t)self->n) {
        weft_tcp_write_init(&self->io, &self->s, self->out + self->off, self->len - self->off);
        WEFT_FN_AWAIT(&self->io, &self->n);
        if (self->n <= 0)
            WEFT_FN_RETURN((int)self->n - 1000);
    }
    self->rc = weft_tcp_stream_shutdown_write(&self->s);
    if (self->rc != 0)
        WEFT_FN_RETURN(self->rc);
    for (self->got = 0;;) {
        weft_tcp_read_init(&self->io, &self->s, self->in + self->got, sizeof self->in - self->got);
        WEFT_FN_AWAIT(&self->io, &self->n);
        if (self->n < 0)
            WEFT_FN_RETURN((int)self->n);
        if (self->n == 0)
            break;
        self->got += (size_t)self->n;
    }
    if (self->got != self->len || memcmp(self->in, self->out, self->len) != 0)
        WEFT_FN_RETURN(-EPROTO);
    weft_tcp_stream_close(&self->s);
    self->open = false;
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void echo_client_drop(weft_future *f)
{
    echo_client *self = (echo_client *)f;
    weft_co_drop(&self->co);
    if (self->open)
        weft_tcp_stream_close(&self->s);
}

static echo_client client_of(int port, int id)
{
    return (echo_client){ WEFT_FN_INIT(echo_client, WEFT_F_SEND), .port = port, .id = id,
                          .len = 1 + (size_t)(id * 997) % 2999 };
}

/* `seq` clients one after the other, then `conc` at once. */
static void run_echo(weft_rt *rt, int seq, int conc)
{
    static weft_tcp_listener l;
    assert_int_equal(in_rt(rt, listen_any, &l), 0);
    int port = weft_tcp_listener_port(&l);
    assert_true(port > 0);

    weft_join js;
    assert_int_equal(WEFT_SPAWN(rt, &js, &(echo_server){ WEFT_FN_INIT(echo_server, WEFT_F_SEND),
                                                          .l = &l, .n = seq }),
                     0);
    for (int i = 0; i < seq; i++) {
        echo_client c = client_of(port, i);
        int rc = -7;
        assert_int_equal(weft_block_on(rt, &c.base, &rc, sizeof rc), 0);
        assert_int_equal(rc, 0);
    }
    int rc = -7;
    assert_int_equal(weft_block_on(rt, &js.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);

    assert_int_equal(WEFT_SPAWN(rt, &js, &(echo_server){ WEFT_FN_INIT(echo_server, WEFT_F_SEND),
                                                          .l = &l, .n = conc,
                                                          .concurrent = true }),
                     0);
    static weft_join jc[MAX_CONCURRENT];
    for (int i = 0; i < conc; i++) {
        echo_client c = client_of(port, 1000 + i);
        assert_int_equal(weft_spawn(rt, &c.base, sizeof c, &jc[i]), 0);
    }
    for (int i = 0; i < conc; i++) {
        rc = -7;
        assert_int_equal(weft_block_on(rt, &jc[i].base, &rc, sizeof rc), 0);
        assert_int_equal(rc, 0);
    }
    rc = -7;
    assert_int_equal(weft_block_on(rt, &js.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(weft_tcp_listener_close(&l), 0);
}

static void test_echo_many_connections(void **state)
{
    (void)state;
    int fds = fd_count();
    run_echo(g_rt, 200, 50);
    assert_int_equal(fd_count(), fds);
}

static double real_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* On the sim, loopback I/O is real: the run waits for it when nothing
 * else can run, and the virtual clock does not move (no timer is armed). */
static void test_echo_many_connections_on_a_sim(void **state)
{
    (void)state;
    int fds = fd_count();
    weft_sim_options o = sim_options(sim_seed_or(5));
    o.leaf_pending = 0.2;
    o.spurious_wake = 0.2;
    weft_rt *rt = sim_start(&o);
    double t0 = real_seconds();
    run_echo(rt, 200, 50);
    double took = real_seconds() - t0;
    weft_sim_stats st = sim_stats(rt);
    print_message("sim echo: 250 connections in %.3f s of real time, %llu polls\n", took,
                  (unsigned long long)st.polls);
    assert_true(st.now == WEFT_SIM_START); /* waiting for I/O moved no clock */
    weft_rt_shutdown(rt);
    assert_int_equal(fd_count(), fds);
}

/* ---- connect: refused, with a timeout --------------------------------------------- */

static void test_connect_refused(void **state)
{
    (void)state;
    int fds = fd_count();
    static weft_tcp_listener l;
    assert_int_equal(in_rt(g_rt, listen_any, &l), 0);
    int port = weft_tcp_listener_port(&l);
    assert_int_equal(weft_tcp_listener_close(&l), 0); /* nothing listens there now */
    weft_tcp_stream s;
    memset(&s, 0, sizeof s);
    weft_tcp_connect c;
    weft_tcp_connect_ip_init(&c, &s, "127.0.0.1", (uint16_t)port);
    int rc = 0;
    assert_int_equal(weft_block_on(g_rt, &c.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, -ECONNREFUSED);
    assert_null(s.io_.sio_); /* the slot is untouched */
    assert_int_equal(fd_count(), fds);
}

typedef struct timed_connect {
    weft_future base; /* a weft_timeout around the connect, in one struct */
    weft_timeout t;
    weft_tcp_connect c;
} timed_connect;

/* Connects through a weft_timeout of `ms`; the timeout's status and the
 * connect's output. */
static void connect_within(weft_rt *rt, int port, weft_tcp_stream *s, int64_t ms, int *status,
                           int *out)
{
    static timed_connect tc;
    weft_tcp_connect_ip_init(&tc.c, s, "127.0.0.1", (uint16_t)port);
    assert_int_equal(weft_timeout_init(&tc.t, &tc.c.base, WEFT_MS(ms)), 0);
    *out = -7;
    assert_int_equal(weft_block_on(rt, &tc.t.base, out, sizeof *out), 0);
    *status = tc.t.status;
}

/* Fills the accept queue of a listener that never accepts: with backlog 1
 * the kernel queues two connections and drops the SYNs of the next ones,
 * so their connects wait until the timeout. */
static int fill_backlog(int port, int fds[3])
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    for (int i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fds[i] < 0)
            return -errno;
        /* Non-blocking: a third one that gets no answer does not block. */
        if (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
            return -errno;
    }
    return 0;
}

static int listen_backlog_1(void *arg)
{
    return weft_tcp_listen_ip(arg, "127.0.0.1", 0, 1);
}

static void run_connect_timeout(weft_rt *rt)
{
    int fds = fd_count();
    static weft_tcp_listener l;
    assert_int_equal(in_rt(rt, listen_backlog_1, &l), 0);
    int port = weft_tcp_listener_port(&l);
    int filler[3];
    assert_int_equal(fill_backlog(port, filler), 0);
    weft_tcp_stream s;
    memset(&s, 0, sizeof s);
    int status = 0, out = -7;
    weft_instant t0 = rt_now(rt);
    connect_within(rt, port, &s, 100, &status, &out);
    assert_int_equal(status, -ETIMEDOUT);
    assert_int_equal(out, 0); /* the output bytes of a timed-out timeout are zero */
    assert_null(s.io_.sio_);
    if (rt_is_sim(rt))
        assert_true(rt_now(rt) - t0 >= WEFT_MS(100)); /* virtual time jumped to the deadline */
    for (int i = 0; i < 3; i++)
        close(filler[i]);
    assert_int_equal(weft_tcp_listener_close(&l), 0);
    assert_int_equal(fd_count(), fds); /* the timed-out connect closed its socket */
}

static void test_connect_with_a_timeout(void **state)
{
    (void)state;
    int fds = fd_count();
    static weft_tcp_listener l;
    assert_int_equal(in_rt(g_rt, listen_any, &l), 0);
    weft_tcp_stream s;
    int status = -7, out = -7;
    connect_within(g_rt, weft_tcp_listener_port(&l), &s, 10000, &status, &out);
    assert_int_equal(status, 0);
    assert_int_equal(out, 0);
    assert_true(weft_tcp_stream_fd(&s) >= 0);
    weft_tcp_stream_close(&s);
    assert_int_equal(weft_tcp_listener_close(&l), 0);
    assert_int_equal(fd_count(), fds);
    run_connect_timeout(g_rt);
}

static void test_connect_timeout_on_a_sim(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(sim_seed_or(9));
    weft_rt *rt = sim_start(&o);
    run_connect_timeout(rt);
    weft_rt_shutdown(rt);
}

/* ---- reset by peer, end of stream -------------------------------------------------- */

typedef struct reset_case {
    weft_future base;
    weft_co co;
    weft_tcp_stream a, b, c, d;
    weft_tcp_io io;
    int64_t read_rc, write_rc, write_first_rc;
    char buf[64];
} reset_case;

WEFT_ASYNC_FN_WITH_DROP(reset_case, int)
{
    WEFT_FN_BEGIN;
    if (tcp_pair(&self->a, &self->b) != 0 || tcp_pair(&self->c, &self->d) != 0)
        WEFT_FN_RETURN(-1);
    /* b resets (SO_LINGER 0): a's read gives -ECONNRESET, then a write -EPIPE. */
    set_linger_reset(&self->b);
    weft_tcp_stream_close(&self->b);
    weft_tcp_read_init(&self->io, &self->a, self->buf, sizeof self->buf);
    WEFT_FN_AWAIT(&self->io, &self->read_rc);
    weft_tcp_write_init(&self->io, &self->a, "x", 1);
    WEFT_FN_AWAIT(&self->io, &self->write_rc);
    /* d resets: c's first write (no read before) fails too. */
    set_linger_reset(&self->d);
    weft_tcp_stream_close(&self->d);
    weft_tcp_write_init(&self->io, &self->c, "y", 1);
    WEFT_FN_AWAIT(&self->io, &self->write_first_rc);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void reset_case_drop(weft_future *f)
{
    reset_case *self = (reset_case *)f;
    weft_co_drop(&self->co);
    weft_tcp_stream_close(&self->a);
    weft_tcp_stream_close(&self->b);
    weft_tcp_stream_close(&self->c);
    weft_tcp_stream_close(&self->d);
}

static void test_reset_by_peer(void **state)
{
    (void)state;
    int fds = fd_count();
    static reset_case r;
    r = (reset_case){ WEFT_FN_INIT(reset_case, WEFT_F_SEND) };
    int rc = -7;
    assert_int_equal(weft_block_on(g_rt, &r.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(r.read_rc, -ECONNRESET);
    assert_true(r.write_rc == -EPIPE || r.write_rc == -ECONNRESET);
    assert_true(r.write_first_rc == -EPIPE || r.write_first_rc == -ECONNRESET);
    assert_int_equal(fd_count(), fds);
}

/* A read that waits is woken by the reset (sim: the reader waits first). */
typedef struct waiting_reader {
    weft_future base;
    weft_co co;
    weft_tcp_stream *s;
    _Atomic int *waiting;
    weft_tcp_io io;
    int64_t rc;
    char buf[16];
} waiting_reader;

WEFT_ASYNC_FN(waiting_reader, int64_t)
{
    WEFT_FN_BEGIN;
    weft_atomic_store_release(self->waiting, 1);
    weft_tcp_read_init(&self->io, self->s, self->buf, sizeof self->buf);
    WEFT_FN_AWAIT(&self->io, &self->rc);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

static int make_pair(void *arg)
{
    weft_tcp_stream *s = arg;
    return tcp_pair(&s[0], &s[1]);
}

static void test_waiting_read_sees_the_reset_and_eof(void **state)
{
    (void)state;
    int fds = fd_count();
    static weft_tcp_stream s[2];
    static _Atomic int waiting;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(in_rt(g_rt, make_pair, s), 0);
        weft_atomic_init(&waiting, 0);
        weft_join j;
        assert_int_equal(WEFT_SPAWN(g_rt, &j, &(waiting_reader){
                                                  WEFT_FN_INIT(waiting_reader, WEFT_F_SEND),
                                                  .s = &s[0], .waiting = &waiting }),
                         0);
        WAIT_UNTIL(weft_atomic_load_acquire(&waiting) == 1);
        if (round == 0) {
            set_linger_reset(&s[1]); /* the peer resets */
            weft_tcp_stream_close(&s[1]);
        } else {
            assert_int_equal(weft_tcp_stream_shutdown_write(&s[1]), 0); /* a FIN */
        }
        int64_t rc = -7;
        assert_int_equal(weft_block_on(g_rt, &j.base, &rc, sizeof rc), 0);
        assert_int_equal(rc, round == 0 ? -ECONNRESET : 0);
        weft_tcp_stream_close(&s[0]);
        weft_tcp_stream_close(&s[1]);
    }
    assert_int_equal(fd_count(), fds);
}

/* Data, then the peer's shutdown: the data, then 0, and 0 again. */
typedef struct eof_case {
    weft_future base;
    weft_co co;
    weft_tcp_stream a, b;
    weft_tcp_io io;
    int64_t n1, n2, n3, w;
    char buf[64];
} eof_case;

WEFT_ASYNC_FN_WITH_DROP(eof_case, int)
{
    WEFT_FN_BEGIN;
    if (tcp_pair(&self->a, &self->b) != 0)
        WEFT_FN_RETURN(-1);
    weft_tcp_write_init(&self->io, &self->b, "hello", 5);
    WEFT_FN_AWAIT(&self->io, &self->w);
    if (weft_tcp_stream_shutdown_write(&self->b) != 0)
        WEFT_FN_RETURN(-2);
    weft_tcp_read_init(&self->io, &self->a, self->buf, sizeof self->buf);
    WEFT_FN_AWAIT(&self->io, &self->n1);
    weft_tcp_read_init(&self->io, &self->a, self->buf + 5, sizeof self->buf - 5);
    WEFT_FN_AWAIT(&self->io, &self->n2);
    weft_tcp_read_init(&self->io, &self->a, self->buf + 5, sizeof self->buf - 5);
    WEFT_FN_AWAIT(&self->io, &self->n3);
    /* The write side of a is still open: b reads what a writes. */
    weft_tcp_write_init(&self->io, &self->a, "back", 4);
    WEFT_FN_AWAIT(&self->io, &self->w);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void eof_case_drop(weft_future *f)
{
    eof_case *self = (eof_case *)f;
    weft_co_drop(&self->co);
    weft_tcp_stream_close(&self->a);
    weft_tcp_stream_close(&self->b);
}

static void test_eof_after_the_peer_shuts_down(void **state)
{
    (void)state;
    int fds = fd_count();
    static eof_case e;
    e = (eof_case){ WEFT_FN_INIT(eof_case, WEFT_F_SEND) };
    int rc = -7;
    assert_int_equal(weft_block_on(g_rt, &e.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(e.n1, 5);
    assert_memory_equal(e.buf, "hello", 5);
    assert_int_equal(e.n2, 0);
    assert_int_equal(e.n3, 0);
    assert_int_equal(e.w, 4);
    assert_int_equal(fd_count(), fds);
}

/* ---- accept when out of fds ---------------------------------------------------------- */

typedef struct emfile_case {
    weft_future base;
    weft_co co;
    weft_tcp_listener l;
    weft_tcp_stream c1, c2, s1, s2;
    weft_tcp_connect c;
    weft_tcp_accept a;
    weft_tcp_io io;
    struct rlimit saved;
    int rc, accept_emfile, fds_before, fds_after, accept_again, accept_next;
    int64_t n;
    char b;
} emfile_case;

/* The lowest free fd number: a limit there makes the next fd EMFILE. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    if (fd >= 0)
        close(fd);
    return fd;
}

WEFT_ASYNC_FN_WITH_DROP(emfile_case, int)
{
    WEFT_FN_BEGIN;
    if (weft_tcp_listen_ip(&self->l, "127.0.0.1", 0, 0) != 0)
        WEFT_FN_RETURN(-1);
    weft_tcp_connect_ip_init(&self->c, &self->c1, "127.0.0.1",
                             (uint16_t)weft_tcp_listener_port(&self->l));
    WEFT_FN_AWAIT(&self->c, &self->rc);
    if (self->rc != 0)
        WEFT_FN_RETURN(-2);
    weft_tcp_write_init(&self->io, &self->c1, "Q", 1);
    WEFT_FN_AWAIT(&self->io, &self->n);
    /* Out of fds: the accept says so; nothing is opened or lost. */
    if (getrlimit(RLIMIT_NOFILE, &self->saved) != 0)
        WEFT_FN_RETURN(-3);
    self->fds_before = fd_count();
    {
        struct rlimit low = self->saved;
        low.rlim_cur = (rlim_t)lowest_free_fd();
        if (setrlimit(RLIMIT_NOFILE, &low) != 0)
            WEFT_FN_RETURN(-4);
    }
    weft_tcp_accept_init(&self->a, &self->l, &self->s1);
    WEFT_FN_AWAIT(&self->a, &self->accept_emfile);
    if (setrlimit(RLIMIT_NOFILE, &self->saved) != 0)
        WEFT_FN_RETURN(-5);
    self->fds_after = fd_count();
    /* The limit raised again: the same connection is accepted. */
    weft_tcp_accept_init(&self->a, &self->l, &self->s1);
    WEFT_FN_AWAIT(&self->a, &self->accept_again);
    weft_tcp_read_init(&self->io, &self->s1, &self->b, 1);
    WEFT_FN_AWAIT(&self->io, &self->n);
    if (self->n != 1 || self->b != 'Q')
        WEFT_FN_RETURN(-6);
    /* And the listener keeps serving new ones. */
    weft_tcp_connect_ip_init(&self->c, &self->c2, "127.0.0.1",
                             (uint16_t)weft_tcp_listener_port(&self->l));
    WEFT_FN_AWAIT(&self->c, &self->rc);
    weft_tcp_accept_init(&self->a, &self->l, &self->s2);
    WEFT_FN_AWAIT(&self->a, &self->accept_next);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

static void emfile_case_drop(weft_future *f)
{
    emfile_case *self = (emfile_case *)f;
    weft_co_drop(&self->co);
    weft_tcp_stream_close(&self->c1);
    weft_tcp_stream_close(&self->c2);
    weft_tcp_stream_close(&self->s1);
    weft_tcp_stream_close(&self->s2);
    listener_close_quiet(&self->l);
}

static void test_accept_out_of_fds(void **state)
{
    (void)state;
    int fds = fd_count();
    static emfile_case e;
    memset(&e, 0, sizeof e);
    e = (emfile_case){ WEFT_FN_INIT(emfile_case, WEFT_F_SEND) };
    int rc = -7;
    assert_int_equal(weft_block_on(g_rt, &e.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(e.accept_emfile, -EMFILE);
    assert_int_equal(e.fds_after, e.fds_before); /* nothing leaked */
    assert_int_equal(e.accept_again, 0);
    assert_int_equal(e.accept_next, 0);
    assert_int_equal(fd_count(), fds);
}

/* ---- closing the listener ---------------------------------------------------------------- */

typedef struct accept_task {
    weft_future base;
    weft_co co;
    weft_tcp_listener *l;
    weft_tcp_stream *out;
    weft_tcp_accept a;
    int rc;
} accept_task;

WEFT_ASYNC_FN(accept_task, int)
{
    WEFT_FN_BEGIN;
    weft_tcp_accept_init(&self->a, self->l, self->out);
    WEFT_FN_AWAIT(&self->a, &self->rc);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

static void test_close_listener_with_an_accept_pending(void **state)
{
    (void)state;
    int fds = fd_count();
    static weft_tcp_listener l;
    static weft_tcp_stream s, c;
    assert_int_equal(in_rt(g_rt, listen_any, &l), 0);
    int port = weft_tcp_listener_port(&l);
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(accept_task){ WEFT_FN_INIT(accept_task, WEFT_F_SEND),
                                                          .l = &l, .out = &s }),
                     0);
    /* Once the accept was polled, close refuses and the listener serves on. */
    WAIT_UNTIL(weft_atomic_load_acquire(&l.accepts_) == 1);
    int before = misuse_count();
    assert_int_equal(weft_tcp_listener_close(&l), -EBUSY);
    assert_misuse_since(before, 1, "an accept is pending");
    weft_tcp_connect cf;
    weft_tcp_connect_ip_init(&cf, &c, "127.0.0.1", (uint16_t)port);
    int rc = -7;
    assert_int_equal(weft_block_on(g_rt, &cf.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    rc = -7;
    assert_int_equal(weft_block_on(g_rt, &j.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    weft_tcp_stream_close(&s);
    weft_tcp_stream_close(&c);
    /* Done: it closes; again is a no-op. */
    assert_int_equal(weft_tcp_listener_close(&l), 0);
    assert_int_equal(weft_tcp_listener_close(&l), 0);
    /* A closed listener: accept says -EBADF, a connect is refused. */
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(accept_task){ WEFT_FN_INIT(accept_task, WEFT_F_SEND),
                                                          .l = &l, .out = &s }),
                     0);
    rc = -7;
    assert_int_equal(weft_block_on(g_rt, &j.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, -EBADF);
    weft_tcp_connect_ip_init(&cf, &c, "127.0.0.1", (uint16_t)port);
    assert_int_equal(weft_block_on(g_rt, &cf.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, -ECONNREFUSED);
    assert_int_equal(fd_count(), fds);
}

/* A dropped pending accept lets the close through. */
static void test_close_listener_after_the_accept_is_dropped(void **state)
{
    (void)state;
    int fds = fd_count();
    static weft_tcp_listener l;
    static weft_tcp_stream s;
    assert_int_equal(in_rt(g_rt, listen_any, &l), 0);
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(accept_task){ WEFT_FN_INIT(accept_task, WEFT_F_SEND),
                                                          .l = &l, .out = &s }),
                     0);
    WAIT_UNTIL(weft_atomic_load_acquire(&l.accepts_) == 1);
    weft_join_abort(&j);
    int rc = 0;
    assert_int_equal(weft_block_on(g_rt, &j.base, &rc, sizeof rc), 0);
    assert_int_equal(j.status, -ECANCELED);
    assert_int_equal(weft_tcp_listener_close(&l), 0);
    assert_int_equal(fd_count(), fds);
}

/* ---- misuse, addresses, options --------------------------------------------------------- */

typedef struct misuse_case {
    weft_tcp_listener l;
    weft_tcp_stream a, b;
    int rc[12];
} misuse_case;

static int misuse_inside(void *arg)
{
    misuse_case *m = arg;
    m->rc[0] = weft_tcp_listener_bind(NULL, NULL, 0, 0);
    m->rc[1] = weft_tcp_listen_ip(&m->l, "not an address", 0, 0);
    m->rc[2] = weft_tcp_listen_ip(&m->l, "127.0.0.1", 0, -1);
    struct sockaddr_un_like {
        sa_family_t f;
        char path[20];
    } un = { AF_UNIX, "x" };
    m->rc[3] = weft_tcp_listener_bind(&m->l, (struct sockaddr *)&un, sizeof un, 0);
    m->rc[4] = weft_tcp_stream_set_keepalive(&m->a, true, -1);
    m->rc[5] = weft_tcp_stream_from_fd(&m->a, -1);
    return 0;
}

static void test_misuse_is_einval(void **state)
{
    (void)state;
    int fds = fd_count();
    static misuse_case m;
    memset(&m, 0, sizeof m);
    int before = misuse_count();
    assert_int_equal(in_rt(g_rt, misuse_inside, &m), 0);
    for (int i = 0; i <= 5; i++)
        assert_int_equal(m.rc[i], -EINVAL);
    /* Outside any runtime: nothing to register with. */
    assert_int_equal(weft_tcp_listen_ip(&m.l, "127.0.0.1", 0, 0), -EINVAL);
    assert_int_equal(weft_tcp_listener_port(&m.l), -EBADF);
    assert_int_equal(weft_tcp_listener_close(NULL), -EINVAL);
    assert_misuse_since(before, 8, "weft_tcp_listener_close");
    /* Futures given bad arguments complete with -EINVAL. */
    weft_tcp_stream s;
    memset(&s, 0, sizeof s);
    weft_tcp_connect c;
    weft_tcp_connect_ip_init(&c, &s, "999.1.1.1", 80);
    int rc = 0;
    assert_int_equal(weft_block_on(g_rt, &c.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, -EINVAL);
    weft_tcp_accept a;
    weft_tcp_accept_init(&a, NULL, &s);
    assert_int_equal(weft_block_on(g_rt, &a.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, -EINVAL);
    /* A stream that is not open: -EBADF from every operation. */
    char buf[4];
    weft_tcp_io io;
    int64_t n = 0;
    weft_tcp_read_init(&io, &s, buf, sizeof buf);
    assert_int_equal(weft_block_on(g_rt, &io.base, &n, sizeof n), 0);
    assert_int_equal(n, -EBADF);
    weft_tcp_write_init(&io, &s, buf, sizeof buf);
    assert_int_equal(weft_block_on(g_rt, &io.base, &n, sizeof n), 0);
    assert_int_equal(n, -EBADF);
    assert_int_equal(weft_tcp_stream_shutdown_write(&s), -EBADF);
    assert_int_equal(weft_tcp_stream_set_nodelay(&s, true), -EBADF);
    assert_int_equal(weft_tcp_stream_fd(&s), -1);
    weft_tcp_stream_close(&s); /* a no-op */
    /* A read of length 0 on an open stream is misuse. */
    assert_int_equal(in_rt(g_rt, make_pair, &m.a), 0);
    before = misuse_count();
    weft_tcp_read_init(&io, &m.a, buf, 0);
    assert_int_equal(weft_block_on(g_rt, &io.base, &n, sizeof n), 0);
    assert_int_equal(n, -EINVAL);
    assert_misuse_since(before, 1, "len 0");
    weft_tcp_stream_close(&m.a);
    weft_tcp_stream_close(&m.b);
    assert_int_equal(fd_count(), fds);
}

static void test_addresses_and_options(void **state)
{
    (void)state;
    int fds = fd_count();
    static weft_tcp_listener l;
    assert_int_equal(in_rt(g_rt, listen_any, &l), 0);
    struct sockaddr_storage la;
    socklen_t ll;
    assert_int_equal(weft_tcp_listener_local_addr(&l, &la, &ll), 0);
    assert_int_equal(la.ss_family, AF_INET);
    int port = weft_tcp_listener_port(&l);
    assert_true(port > 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&la)->sin_port), port);

    static weft_tcp_stream c, s;
    weft_join j;
    assert_int_equal(WEFT_SPAWN(g_rt, &j, &(accept_task){ WEFT_FN_INIT(accept_task, WEFT_F_SEND),
                                                          .l = &l, .out = &s }),
                     0);
    weft_tcp_connect cf;
    weft_tcp_connect_ip_init(&cf, &c, "127.0.0.1", (uint16_t)port);
    int rc = -7;
    assert_int_equal(weft_block_on(g_rt, &cf.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(weft_block_on(g_rt, &j.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);

    struct sockaddr_storage pa, ca, sp;
    socklen_t pl, cl, spl;
    assert_int_equal(weft_tcp_stream_peer_addr(&c, &pa, &pl), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&pa)->sin_port), port);
    assert_int_equal(weft_tcp_stream_local_addr(&c, &ca, &cl), 0);
    assert_int_equal(weft_tcp_stream_peer_addr(&s, &sp, &spl), 0);
    assert_int_equal(((struct sockaddr_in *)&ca)->sin_port, ((struct sockaddr_in *)&sp)->sin_port);

    int v = 0;
    socklen_t vl = sizeof v;
    assert_int_equal(weft_tcp_stream_set_nodelay(&c, true), 0);
    assert_int_equal(getsockopt(weft_tcp_stream_fd(&c), IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    assert_true(v);
    assert_int_equal(weft_tcp_stream_set_nodelay(&c, false), 0);
    assert_int_equal(getsockopt(weft_tcp_stream_fd(&c), IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    assert_false(v);
    assert_int_equal(weft_tcp_stream_set_keepalive(&c, true, 42), 0);
    assert_int_equal(getsockopt(weft_tcp_stream_fd(&c), SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
    assert_true(v);
    assert_int_equal(getsockopt(weft_tcp_stream_fd(&c), IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl), 0);
    assert_int_equal(v, 42);
    assert_int_equal(weft_tcp_stream_set_keepalive(&c, false, 0), 0);
    assert_int_equal(getsockopt(weft_tcp_stream_fd(&c), SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
    assert_false(v);

    /* Through the interfaces: the writer's shutdown is a FIN. */
    weft_waker noop = weft_waker_noop();
    weft_cx cx;
    weft_cx_init(&cx, &noop);
    int sr = -7;
    assert_int_equal(c.writer.ops->poll_shutdown(&c.writer, &cx, &sr), WEFT_READY);
    assert_int_equal(sr, 0);
    assert_int_equal(c.writer.ops->poll_flush(&c.writer, &cx, &sr), WEFT_READY);
    assert_int_equal(sr, 0);
    char b;
    int64_t n = -7;
    weft_tcp_io io;
    weft_tcp_read_init(&io, &s, &b, 1);
    assert_int_equal(weft_block_on(g_rt, &io.base, &n, sizeof n), 0);
    assert_int_equal(n, 0);

    weft_tcp_stream_close(&c);
    weft_tcp_stream_close(&s);
    assert_int_equal(weft_tcp_listener_close(&l), 0);
    assert_int_equal(fd_count(), fds);
}

/* ---- cancel sweeps ------------------------------------------------------------------------ */

/* Connects after a few yields, sends one byte, closes. */
typedef struct late_connector {
    weft_future base;
    weft_co co;
    int port, i, rc;
    int64_t n;
    weft_tcp_stream s;
    weft_tcp_connect c;
    weft_tcp_io io;
} late_connector;

WEFT_ASYNC_FN_WITH_DROP(late_connector, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++)
        WEFT_FN_YIELD;
    weft_tcp_connect_ip_init(&self->c, &self->s, "127.0.0.1", (uint16_t)self->port);
    WEFT_FN_AWAIT(&self->c, &self->rc);
    if (self->rc != 0)
        WEFT_FN_RETURN(self->rc);
    weft_tcp_write_init(&self->io, &self->s, "c", 1);
    WEFT_FN_AWAIT(&self->io, &self->n);
    weft_tcp_stream_close(&self->s);
    WEFT_FN_RETURN(self->n == 1 ? 0 : -1);
    WEFT_FN_END;
}

static void late_connector_drop(weft_future *f)
{
    late_connector *self = (late_connector *)f;
    weft_co_drop(&self->co);
    weft_tcp_stream_close(&self->s);
}

typedef struct accept_sweep {
    weft_tcp_listener l;
    weft_tcp_stream out;
    weft_tcp_accept a;
    int rc;
} accept_sweep;

static int accept_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    accept_sweep *c = ctx;
    memset(&c->out, 0, sizeof c->out);
    int err = weft_tcp_listen_ip(&c->l, "127.0.0.1", 0, 0);
    if (err)
        return err;
    c->rc = -7;
    weft_tcp_accept_init(&c->a, &c->l, &c->out);
    *fut = &c->a.base;
    *out = &c->rc;
    return WEFT_SPAWN(rt, NULL, &(late_connector){ WEFT_FN_INIT(late_connector, WEFT_F_SEND),
                                                    .port = weft_tcp_listener_port(&c->l) });
}

static const char *accept_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    accept_sweep *c = ctx;
    if (run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) held after the drop", run->k, run->wakers_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (weft_atomic_load_relaxed(&c->l.accepts_) != 0)
        return sweep_say("k=%u: the listener still counts the accept", run->k);
    if (!run->completed) {
        /* Not lost: the connection is still in the backlog. */
        if (weft_tcp_stream_fd(&c->out) >= 0)
            return sweep_say("k=%u: a dropped accept filled its slot", run->k);
        weft_tcp_accept a;
        weft_tcp_accept_init(&a, &c->l, &c->out);
        int rc = -7;
        if (weft_block_on(rt, &a.base, &rc, sizeof rc) != 0 || rc != 0)
            return sweep_say("k=%u: the next accept gave %d", run->k, rc);
    } else if (c->rc != 0) {
        return sweep_say("completed with %d", c->rc);
    }
    weft_tcp_io io;
    char b = 0;
    int64_t n = -7;
    weft_tcp_read_init(&io, &c->out, &b, 1);
    if (weft_block_on(rt, &io.base, &n, sizeof n) != 0 || n != 1 || b != 'c')
        return sweep_say("k=%u: the connection's byte: %lld", run->k, (long long)n);
    if (weft_tcp_listener_close(&c->l) != 0)
        return sweep_say("k=%u: the listener does not close", run->k);
    return NULL;
}

static void accept_teardown(void *ctx)
{
    accept_sweep *c = ctx;
    weft_tcp_stream_close(&c->out);
    listener_close_quiet(&c->l);
}

static void test_cancel_sweep_accept(void **state)
{
    (void)state;
    int fds = fd_count();
    static accept_sweep c;
    weft_sweep_case sc = { accept_build, accept_check, accept_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2); /* it waited for the connection */
    o = sweep_chaos_options(1, 6, 0.3);
    sweep_pass(&sc, &o);
    assert_int_equal(fd_count(), fds);
}

typedef struct connect_sweep {
    weft_tcp_listener l;
    weft_tcp_stream out;
    weft_tcp_connect c;
    int rc, base_fds;
} connect_sweep;

static int connect_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    connect_sweep *c = ctx;
    memset(&c->out, 0, sizeof c->out);
    int err = weft_tcp_listen_ip(&c->l, "127.0.0.1", 0, 0);
    if (err)
        return err;
    c->base_fds = fd_count();
    c->rc = -7;
    weft_tcp_connect_ip_init(&c->c, &c->out, "127.0.0.1", (uint16_t)weft_tcp_listener_port(&c->l));
    *fut = &c->c.base;
    *out = &c->rc;
    return 0;
}

static const char *connect_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    connect_sweep *c = ctx;
    if (run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) held after the drop", run->k, run->wakers_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    int fds = fd_count();
    if (run->completed) {
        if (c->rc != 0 || weft_tcp_stream_fd(&c->out) < 0)
            return sweep_say("completed with %d", c->rc);
        if (fds != c->base_fds + 1)
            return sweep_say("completed: %d fds, %d before", fds, c->base_fds);
    } else {
        if (weft_tcp_stream_fd(&c->out) >= 0)
            return sweep_say("k=%u: a dropped connect filled its slot", run->k);
        if (fds != c->base_fds)
            return sweep_say("k=%u: the dropped connect left %d fd(s) open", run->k,
                             fds - c->base_fds);
    }
    return NULL;
}

static void connect_teardown(void *ctx)
{
    connect_sweep *c = ctx;
    weft_tcp_stream_close(&c->out);
    listener_close_quiet(&c->l);
}

static void test_cancel_sweep_connect(void **state)
{
    (void)state;
    int fds = fd_count();
    static connect_sweep c;
    weft_sweep_case sc = { connect_build, connect_check, connect_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    sweep_pass(&sc, &o);
    /* With chaos it is dropped after its first poll too, its socket open. */
    o = sweep_chaos_options(1, 12, 0.5);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2);
    assert_int_equal(fd_count(), fds);
}

/* Writes "abcdefghij" in chunks of 3 after yields, then closes. */
typedef struct chunk_writer {
    weft_future base;
    weft_co co;
    weft_tcp_stream *s;
    int i;
    int64_t n;
    weft_tcp_io io;
} chunk_writer;

static const char sweep_text[] = "abcdefghij";

WEFT_ASYNC_FN(chunk_writer, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 10; self->i += 3) {
        WEFT_FN_YIELD;
        WEFT_FN_YIELD;
        weft_tcp_write_init(&self->io, self->s, sweep_text + self->i,
                            self->i + 3 <= 10 ? 3 : (size_t)(10 - self->i));
        WEFT_FN_AWAIT(&self->io, &self->n);
        if (self->n <= 0)
            WEFT_FN_RETURN(-1);
    }
    weft_tcp_stream_close(self->s);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct read_sweep {
    weft_tcp_stream s[2];
    weft_tcp_io io;
    int64_t n;
    char buf[16];
} read_sweep;

static int read_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    read_sweep *c = ctx;
    int err = tcp_pair(&c->s[0], &c->s[1]);
    if (err)
        return err;
    c->n = -7;
    memset(c->buf, 0, sizeof c->buf);
    weft_tcp_read_init(&c->io, &c->s[0], c->buf, sizeof c->buf);
    *fut = &c->io.base;
    *out = &c->n;
    return WEFT_SPAWN(rt, NULL, &(chunk_writer){ WEFT_FN_INIT(chunk_writer, WEFT_F_SEND),
                                                  .s = &c->s[1] });
}

static const char *read_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    read_sweep *c = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    char all[32];
    size_t got = 0;
    if (run->completed) {
        if (c->n <= 0)
            return sweep_say("completed with %lld", (long long)c->n);
        memcpy(all, c->buf, (size_t)c->n);
        got = (size_t)c->n;
    }
    /* The rest, to the end: the writer has finished and closed. */
    for (;;) {
        weft_tcp_io io;
        int64_t n = -7;
        weft_tcp_read_init(&io, &c->s[0], all + got, sizeof all - got);
        if (weft_block_on(rt, &io.base, &n, sizeof n) != 0 || n < 0)
            return sweep_say("k=%u: reading the rest gave %lld", run->k, (long long)n);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got != 10 || memcmp(all, sweep_text, 10) != 0)
        return sweep_say("k=%u: %zu bytes seen in all: '%.*s'", run->k, got, (int)got, all);
    return NULL;
}

static void read_teardown(void *ctx)
{
    read_sweep *c = ctx;
    weft_tcp_stream_close(&c->s[0]);
    weft_tcp_stream_close(&c->s[1]);
}

static void test_cancel_sweep_read(void **state)
{
    (void)state;
    int fds = fd_count();
    static read_sweep c;
    weft_sweep_case sc = { read_build, read_check, read_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2); /* it waited for the first bytes */
    o = sweep_chaos_options(1, 6, 0.3);
    sweep_pass(&sc, &o);
    assert_int_equal(fd_count(), fds);
}

/* Reads `want` bytes from `s`, then waits until `writer_fd` has room
 * again; both blocking the sim's thread (a test's shortcut). The kernel
 * frees the room the write waits for as its ACKs go by, which is not the
 * seed's to order, and the sweep needs each seed's run to repeat: so the
 * sim looks at the reactor only once all of it is there, and the write is
 * woken once. */
typedef struct drainer {
    weft_future base;
    weft_co co;
    int writer_fd;
    weft_tcp_stream *s;
    size_t want, got;
    int i;
    char buf[65536];
} drainer;

WEFT_ASYNC_FN(drainer, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 3; self->i++)
        WEFT_FN_YIELD;
    while (self->got < self->want) {
        struct pollfd p = { .fd = weft_tcp_stream_fd(self->s), .events = POLLIN };
        if (poll(&p, 1, 10000) != 1)
            WEFT_FN_RETURN(-1);
        size_t left = self->want - self->got;
        ssize_t n = recv(p.fd, self->buf, left < sizeof self->buf ? left : sizeof self->buf,
                         MSG_DONTWAIT);
        if (n <= 0)
            WEFT_FN_RETURN(-1);
        for (ssize_t k = 0; k < n; k++)
            if (self->buf[k] != 'F')
                WEFT_FN_RETURN(-2);
        self->got += (size_t)n;
    }
    {
        struct pollfd p = { .fd = self->writer_fd, .events = POLLOUT };
        if (poll(&p, 1, 10000) != 1)
            WEFT_FN_RETURN(-3);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct write_sweep {
    weft_tcp_stream s[2];
    weft_tcp_io io;
    int64_t n;
    char data[1000];
} write_sweep;

static int write_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    write_sweep *c = ctx;
    int err = tcp_pair_buf(&c->s[0], &c->s[1], 16384);
    if (err)
        return err;
    /* Fill the way to the peer: the write must wait for room. */
    static char fill[65536];
    memset(fill, 'F', sizeof fill);
    size_t filled = 0;
    int fd = weft_tcp_stream_fd(&c->s[0]);
    /* Until it stays full: room the kernel frees a little later is
     * filled too. */
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    do {
        for (;;) {
            ssize_t n = send(fd, fill, sizeof fill, MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN)
                return -errno;
            if (n < 0)
                break;
            filled += (size_t)n;
        }
    } while (poll(&p, 1, 20) == 1);
    memset(c->data, 'W', sizeof c->data);
    c->n = -7;
    weft_tcp_write_init(&c->io, &c->s[0], c->data, sizeof c->data);
    *fut = &c->io.base;
    *out = &c->n;
    return WEFT_SPAWN(rt, NULL, &(drainer){ WEFT_FN_INIT(drainer, WEFT_F_SEND), .s = &c->s[1],
                                             .want = filled, .writer_fd = fd });
}

static const char *write_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    write_sweep *c = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (run->completed && (c->n <= 0 || c->n > 1000))
        return sweep_say("completed with %lld", (long long)c->n);
    /* The filler was drained: what is left is what the write took. */
    weft_tcp_stream_close(&c->s[0]);
    size_t got = 0;
    for (;;) {
        char buf[2048];
        weft_tcp_io io;
        int64_t n = -7;
        weft_tcp_read_init(&io, &c->s[1], buf, sizeof buf);
        if (weft_block_on(rt, &io.base, &n, sizeof n) != 0 || n < 0)
            return sweep_say("k=%u: reading what was written gave %lld", run->k, (long long)n);
        if (n == 0)
            break;
        for (int64_t k = 0; k < n; k++)
            if (buf[k] != 'W')
                return sweep_say("k=%u: a byte that is not the write's", run->k);
        got += (size_t)n;
    }
    size_t want = run->completed ? (size_t)c->n : 0;
    if (got != want)
        return sweep_say("k=%u: %zu bytes arrived, the write reported %zu", run->k, got, want);
    return NULL;
}

static void write_teardown(void *ctx)
{
    write_sweep *c = ctx;
    weft_tcp_stream_close(&c->s[0]);
    weft_tcp_stream_close(&c->s[1]);
}

static void test_cancel_sweep_write(void **state)
{
    (void)state;
    int fds = fd_count();
    static write_sweep c;
    weft_sweep_case sc = { write_build, write_check, write_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2); /* it waited for room */
    o = sweep_chaos_options(1, 4, 0.3);
    sweep_pass(&sc, &o);
    assert_int_equal(fd_count(), fds);
}

static int rt_setup_armed(void **state)
{
    alarm_watchdog_arm(state);
    return rt_setup(state);
}

static int rt_teardown_disarmed(void **state)
{
    alarm_watchdog_disarm(state);
    return rt_teardown(state);
}

static int t_setup(void **state)
{
    alarm_watchdog_arm(state);
    return misuse_capture_setup(state);
}

static int t_teardown(void **state)
{
    alarm_watchdog_disarm(state);
    return misuse_capture_teardown(state);
}

int main(void)
{
    alarm_watchdog_install("watchdog: a TCP test hung (an operation never woken, or spinning?)\n");
    /* Writes to a reset peer must come back as errors: a SIGPIPE would
     * end the program. */
    signal(SIGPIPE, SIG_DFL);
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup_armed, rt_teardown_disarmed)
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_echo_many_connections),
        T(test_echo_many_connections_on_a_sim),
        RT(test_connect_refused),
        RT(test_connect_with_a_timeout),
        T(test_connect_timeout_on_a_sim),
        RT(test_reset_by_peer),
        RT(test_waiting_read_sees_the_reset_and_eof),
        RT(test_eof_after_the_peer_shuts_down),
        RT(test_accept_out_of_fds),
        RT(test_close_listener_with_an_accept_pending),
        RT(test_close_listener_after_the_accept_is_dropped),
        RT(test_misuse_is_einval),
        RT(test_addresses_and_options),
        T(test_cancel_sweep_accept),
        T(test_cancel_sweep_connect),
        T(test_cancel_sweep_read),
        T(test_cancel_sweep_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
