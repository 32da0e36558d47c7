/* Tests for io/udp.c, on 127.0.0.1 with port 0: datagram echo on two
 * workers and on the sim runtime (each datagram whole, its sender
 * reported), truncation reported by the real length, empty datagrams, the
 * connected form, connection refused and the receive that waits after it,
 * misuse, fd leaks, and the cancel sweeps of send_to and recv_from. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/weft.h"
#include "support/alarm_watchdog.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "io/io_support.h"

static int bind_two(void *arg)
{
    weft_udp_socket *s = arg;
    int rc = weft_udp_bind_ip(&s[0], "127.0.0.1", 0);
    return rc ? rc : weft_udp_bind_ip(&s[1], "127.0.0.1", 0);
}

static struct sockaddr_in loopback(int port)
{
    return (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

static int64_t run_send(weft_rt *rt, weft_udp_socket *s, const void *buf, size_t len, int port)
{
    struct sockaddr_in to = loopback(port);
    weft_udp_send f;
    if (port)
        weft_udp_send_to_init(&f, s, buf, len, (struct sockaddr *)&to, sizeof to);
    else
        weft_udp_send_init(&f, s, buf, len);
    int64_t n = -7;
    assert_int_equal(weft_block_on(rt, &f.base, &n, sizeof n), 0);
    return n;
}

static int64_t run_recv(weft_rt *rt, weft_udp_socket *s, void *buf, size_t len,
                        struct sockaddr_storage *from, socklen_t *fl)
{
    weft_udp_recv f;
    weft_udp_recv_from_init(&f, s, buf, len, from, fl);
    int64_t n = -7;
    assert_int_equal(weft_block_on(rt, &f.base, &n, sizeof n), 0);
    return n;
}

/* ---- echo ------------------------------------------------------------------------- */

/* Sends each datagram it receives back to its sender, `n` times. */
typedef struct udp_echo {
    weft_future base;
    weft_co co;
    weft_udp_socket *s;
    int n, i;
    int64_t got, sent;
    struct sockaddr_storage from;
    socklen_t fl;
    weft_udp_recv r;
    weft_udp_send w;
    char buf[2048];
} udp_echo;

WEFT_ASYNC_FN(udp_echo, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        weft_udp_recv_from_init(&self->r, self->s, self->buf, sizeof self->buf, &self->from,
                                &self->fl);
        WEFT_FN_AWAIT(&self->r, &self->got);
        if (self->got < 0)
            WEFT_FN_RETURN((int)self->got);
        weft_udp_send_to_init(&self->w, self->s, self->buf, (size_t)self->got,
                              (struct sockaddr *)&self->from, self->fl);
        WEFT_FN_AWAIT(&self->w, &self->sent);
        if (self->sent != self->got)
            WEFT_FN_RETURN(-EPROTO);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* Sends `n` datagrams of different sizes, one at a time, and checks each
 * echo: whole, and from the server's port. */
typedef struct udp_client {
    weft_future base;
    weft_co co;
    weft_udp_socket *s;
    int n, i, port;
    size_t len;
    int64_t got, sent;
    struct sockaddr_storage from;
    socklen_t fl;
    struct sockaddr_in to;
    weft_udp_recv r;
    weft_udp_send w;
    char out[1500], in[2048];
} udp_client;

WEFT_ASYNC_FN(udp_client, int)
{
    WEFT_FN_BEGIN;
    self->to = loopback(self->port);
    for (self->i = 0; self->i < self->n; self->i++) {
        self->len = (size_t)(self->i * 37) % sizeof self->out; /* 0 included */
        for (size_t k = 0; k < self->len; k++)
            self->out[k] = (char)(self->i + k);
        weft_udp_send_to_init(&self->w, self->s, self->out, self->len,
                              (struct sockaddr *)&self->to, sizeof self->to);
        WEFT_FN_AWAIT(&self->w, &self->sent);
        if (self->sent != (int64_t)self->len)
            WEFT_FN_RETURN(-100 - self->i);
        weft_udp_recv_from_init(&self->r, self->s, self->in, sizeof self->in, &self->from,
                                &self->fl);
        WEFT_FN_AWAIT(&self->r, &self->got);
        if (self->got != (int64_t)self->len || memcmp(self->in, self->out, self->len) != 0)
            WEFT_FN_RETURN(-EPROTO);
        if (self->from.ss_family != AF_INET ||
            ntohs(((struct sockaddr_in *)&self->from)->sin_port) != self->port)
            WEFT_FN_RETURN(-EADDRNOTAVAIL);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void run_udp_echo(weft_rt *rt)
{
    int fds = fd_count();
    static weft_udp_socket s[2];
    assert_int_equal(in_rt(rt, bind_two, s), 0);
    int port = weft_udp_port(&s[0]);
    assert_true(port > 0);
    weft_join je;
    assert_int_equal(WEFT_SPAWN(rt, &je, &(udp_echo){ WEFT_FN_INIT(udp_echo, WEFT_F_SEND),
                                                       .s = &s[0], .n = 100 }),
                     0);
    static udp_client c;
    c = (udp_client){ WEFT_FN_INIT(udp_client, WEFT_F_SEND), .s = &s[1], .n = 100, .port = port };
    int rc = -7;
    assert_int_equal(weft_block_on(rt, &c.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    rc = -7;
    assert_int_equal(weft_block_on(rt, &je.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    weft_udp_close(&s[0]);
    weft_udp_close(&s[1]);
    assert_int_equal(fd_count(), fds);
}

static void test_udp_echo(void **state)
{
    (void)state;
    run_udp_echo(g_rt);
}

static void test_udp_echo_on_a_sim(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(sim_seed_or(4));
    o.leaf_pending = 0.3;
    o.spurious_wake = 0.3;
    weft_rt *rt = sim_start(&o);
    run_udp_echo(rt);
    assert_true(sim_stats(rt).now == WEFT_SIM_START);
    weft_rt_shutdown(rt);
}

/* ---- truncation, empty datagrams -------------------------------------------------- */

static void test_udp_truncation_reports_the_real_length(void **state)
{
    (void)state;
    int fds = fd_count();
    static weft_udp_socket s[2];
    assert_int_equal(in_rt(g_rt, bind_two, s), 0);
    int port = weft_udp_port(&s[1]);
    char big[100];
    for (int i = 0; i < 100; i++)
        big[i] = (char)i;
    assert_int_equal(run_send(g_rt, &s[0], big, 100, port), 100);
    assert_int_equal(run_send(g_rt, &s[0], "next", 4, port), 4);
    assert_int_equal(run_send(g_rt, &s[0], NULL, 0, port), 0);
    char small[10];
    memset(small, 0x7f, sizeof small);
    struct sockaddr_storage from;
    socklen_t fl = 0;
    /* Longer than the buffer: the real length, the first bytes kept. */
    assert_int_equal(run_recv(g_rt, &s[1], small, sizeof small, &from, &fl), 100);
    assert_memory_equal(small, big, sizeof small);
    assert_int_equal(fl, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)&from)->sin_port), weft_udp_port(&s[0]));
    /* The rest of it was discarded: the next datagram is the next one. */
    assert_int_equal(run_recv(g_rt, &s[1], small, sizeof small, NULL, NULL), 4);
    assert_memory_equal(small, "next", 4);
    /* An empty datagram is one. */
    assert_int_equal(run_recv(g_rt, &s[1], small, sizeof small, NULL, NULL), 0);
    /* A zero-length receive measures and takes one. */
    assert_int_equal(run_send(g_rt, &s[0], "xyz", 3, port), 3);
    assert_int_equal(run_recv(g_rt, &s[1], NULL, 0, NULL, NULL), 3);
    /* Too large for a datagram. */
    static char huge[70000];
    assert_int_equal(run_send(g_rt, &s[0], huge, sizeof huge, port), -EMSGSIZE);
    weft_udp_close(&s[0]);
    weft_udp_close(&s[1]);
    assert_int_equal(fd_count(), fds);
}

/* ---- the connected form --------------------------------------------------------------- */

static void test_udp_connected_send_and_recv(void **state)
{
    (void)state;
    int fds = fd_count();
    static weft_udp_socket s[2], other[2];
    assert_int_equal(in_rt(g_rt, bind_two, s), 0);
    assert_int_equal(in_rt(g_rt, bind_two, other), 0);
    struct sockaddr_in a0 = loopback(weft_udp_port(&s[0])), a1 = loopback(weft_udp_port(&s[1]));
    assert_int_equal(weft_udp_connect(&s[0], (struct sockaddr *)&a1, sizeof a1), 0);
    assert_int_equal(weft_udp_connect(&s[1], (struct sockaddr *)&a0, sizeof a0), 0);
    /* A stranger's datagram is not received by a connected socket. */
    assert_int_equal(run_send(g_rt, &other[0], "stranger", 8, weft_udp_port(&s[1])), 8);
    assert_int_equal(run_send(g_rt, &s[0], "peer", 4, 0), 4);
    char buf[16];
    weft_udp_recv r;
    weft_udp_recv_init(&r, &s[1], buf, sizeof buf);
    int64_t n = -7;
    assert_int_equal(weft_block_on(g_rt, &r.base, &n, sizeof n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "peer", 4);
    /* Without an address and not connected: -EDESTADDRREQ. */
    assert_int_equal(run_send(g_rt, &other[1], "x", 1, 0), -EDESTADDRREQ);
    for (int i = 0; i < 2; i++) {
        weft_udp_close(&s[i]);
        weft_udp_close(&other[i]);
    }
    assert_int_equal(fd_count(), fds);
}

/* ---- connection refused, and the receive that waits after it ----------------------- */

/* Yields a while, then binds `port` (where nothing listened) and sends one
 * datagram from it to `to_port`. */
typedef struct late_sender {
    weft_future base;
    weft_co co;
    int port, to_port, i;
    int64_t n;
    weft_udp_socket s;
    weft_udp_send w;
    struct sockaddr_in to;
} late_sender;

WEFT_ASYNC_FN(late_sender, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < 5; self->i++)
        WEFT_FN_YIELD;
    if (weft_udp_bind_ip(&self->s, "127.0.0.1", (uint16_t)self->port) != 0)
        WEFT_FN_RETURN(-1);
    self->to = loopback(self->to_port);
    weft_udp_send_to_init(&self->w, &self->s, "late", 4, (struct sockaddr *)&self->to,
                          sizeof self->to);
    WEFT_FN_AWAIT(&self->w, &self->n);
    weft_udp_close(&self->s);
    WEFT_FN_RETURN(self->n == 4 ? 0 : -2);
    WEFT_FN_END;
}

static int bind_one(void *arg)
{
    return weft_udp_bind_ip(arg, "127.0.0.1", 0);
}

/* A connected socket whose datagram found no listener: the next receive
 * gives -ECONNREFUSED, and the one after waits (it must not spin on the
 * error the reactor keeps) until a datagram comes from that port. */
static void test_udp_refused_then_the_next_receive_waits(void **state)
{
    (void)state;
    int fds = fd_count();
    weft_sim_options o = sim_options(sim_seed_or(2));
    weft_rt *rt = sim_start(&o);
    static weft_udp_socket s, gone;
    assert_int_equal(in_rt(rt, bind_one, &s), 0);
    assert_int_equal(in_rt(rt, bind_one, &gone), 0);
    int port = weft_udp_port(&gone);
    weft_udp_close(&gone); /* nothing listens on `port` now */
    struct sockaddr_in to = loopback(port);
    assert_int_equal(weft_udp_connect(&s, (struct sockaddr *)&to, sizeof to), 0);
    assert_int_equal(run_send(rt, &s, "ping", 4, 0), 4);
    /* Let the reactor see the ICMP error before the receive takes it, so
     * its ERROR bit is set (and stays set) for the receives below. */
    weft_io_ready ready;
    weft_io_ready_init(&ready, &s.io_, WEFT_IO_READ);
    uint32_t bits = 0;
    assert_int_equal(weft_block_on(rt, &ready.base, &bits, sizeof bits), 0);
    assert_true(bits & WEFT_IO_ERROR);
    char buf[16];
    assert_int_equal(run_recv(rt, &s, buf, sizeof buf, NULL, NULL), -ECONNREFUSED);
    weft_join j;
    assert_int_equal(WEFT_SPAWN(rt, &j, &(late_sender){ WEFT_FN_INIT(late_sender, WEFT_F_SEND),
                                                         .port = port,
                                                         .to_port = weft_udp_port(&s) }),
                     0);
    uint64_t polls0 = sim_stats(rt).polls;
    assert_int_equal(run_recv(rt, &s, buf, sizeof buf, NULL, NULL), 4);
    assert_memory_equal(buf, "late", 4);
    int rc = -7;
    assert_int_equal(weft_block_on(rt, &j.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, 0);
    /* It waited: a handful of polls, not one per spin. */
    assert_true(sim_stats(rt).polls - polls0 < 100);
    weft_udp_close(&s);
    weft_rt_shutdown(rt);
    assert_int_equal(fd_count(), fds);
}

/* ---- misuse ------------------------------------------------------------------------------- */

typedef struct misuse_case {
    weft_udp_socket s;
    int rc[4];
} misuse_case;

static int misuse_inside(void *arg)
{
    misuse_case *m = arg;
    m->rc[0] = weft_udp_bind(NULL, NULL, 0);
    m->rc[1] = weft_udp_bind_ip(&m->s, "localhost", 0); /* numeric only */
    struct sockaddr_in a = loopback(1);
    m->rc[2] = weft_udp_bind(&m->s, (struct sockaddr *)&a, 3);
    m->rc[3] = weft_udp_connect(NULL, (struct sockaddr *)&a, sizeof a);
    return 0;
}

static void test_udp_misuse_is_einval(void **state)
{
    (void)state;
    int fds = fd_count();
    static misuse_case m;
    memset(&m, 0, sizeof m);
    int before = misuse_count();
    assert_int_equal(in_rt(g_rt, misuse_inside, &m), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(m.rc[i], -EINVAL);
    assert_int_equal(weft_udp_bind_ip(&m.s, "127.0.0.1", 0), -EINVAL); /* no runtime */
    assert_misuse_since(before, 5, "no current runtime");
    /* Not open: -EBADF. */
    assert_int_equal(weft_udp_port(&m.s), -EBADF);
    assert_int_equal(weft_udp_fd(&m.s), -1);
    assert_int_equal(run_send(g_rt, &m.s, "x", 1, 9), -EBADF);
    char buf[4];
    assert_int_equal(run_recv(g_rt, &m.s, buf, sizeof buf, NULL, NULL), -EBADF);
    weft_udp_close(&m.s); /* a no-op */
    /* Bad arguments to the futures: -EINVAL. */
    static weft_udp_socket s;
    assert_int_equal(in_rt(g_rt, bind_one, &s), 0);
    before = misuse_count();
    assert_int_equal(run_send(g_rt, &s, NULL, 5, 9), -EINVAL);
    struct sockaddr_storage from;
    assert_int_equal(run_recv(g_rt, &s, buf, sizeof buf, &from, NULL), -EINVAL);
    weft_udp_send f;
    struct sockaddr bad = { .sa_family = AF_UNIX };
    weft_udp_send_to_init(&f, &s, "x", 1, &bad, sizeof bad);
    int64_t n = 0;
    assert_int_equal(weft_block_on(g_rt, &f.base, &n, sizeof n), 0);
    assert_int_equal(n, -EINVAL);
    assert_misuse_since(before, 3, "weft_udp_send");
    weft_udp_close(&s);
    assert_int_equal(fd_count(), fds);
}

/* ---- cancel sweeps ---------------------------------------------------------------------------- */

/* Sends "1", "2", "3" to `port`, yielding before each. */
typedef struct three_sender {
    weft_future base;
    weft_co co;
    weft_udp_socket *s;
    int port, i;
    int64_t n;
    struct sockaddr_in to;
    weft_udp_send w;
    char d[2];
} three_sender;

WEFT_ASYNC_FN(three_sender, int)
{
    WEFT_FN_BEGIN;
    self->to = loopback(self->port);
    for (self->i = 0; self->i < 3; self->i++) {
        WEFT_FN_YIELD;
        WEFT_FN_YIELD;
        self->d[0] = (char)('1' + self->i);
        weft_udp_send_to_init(&self->w, self->s, self->d, 1, (struct sockaddr *)&self->to,
                              sizeof self->to);
        WEFT_FN_AWAIT(&self->w, &self->n);
        if (self->n != 1)
            WEFT_FN_RETURN(-1);
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

typedef struct recv_sweep {
    weft_udp_socket s[2];
    weft_udp_recv r;
    struct sockaddr_storage from;
    socklen_t fl;
    int64_t n;
    char buf[8];
} recv_sweep;

static int recv_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    recv_sweep *c = ctx;
    int err = bind_two(c->s);
    if (err)
        return err;
    c->n = -7;
    weft_udp_recv_from_init(&c->r, &c->s[0], c->buf, sizeof c->buf, &c->from, &c->fl);
    *fut = &c->r.base;
    *out = &c->n;
    return WEFT_SPAWN(rt, NULL, &(three_sender){ WEFT_FN_INIT(three_sender, WEFT_F_SEND),
                                                  .s = &c->s[1], .port = weft_udp_port(&c->s[0]) });
}

static const char *recv_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    recv_sweep *c = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    char seen[4];
    int got = 0;
    if (run->completed) {
        if (c->n != 1)
            return sweep_say("completed with %lld", (long long)c->n);
        if (ntohs(((struct sockaddr_in *)&c->from)->sin_port) != weft_udp_port(&c->s[1]))
            return "completed with the wrong sender";
        seen[got++] = c->buf[0];
    }
    /* The sender is done: the rest are all queued. */
    while (got < 3) {
        char b;
        ssize_t n = recv(weft_udp_fd(&c->s[0]), &b, 1, MSG_DONTWAIT);
        if (n != 1)
            break;
        seen[got++] = b;
    }
    if (got != 3 || memcmp(seen, "123", 3) != 0)
        return sweep_say("k=%u: %d datagram(s) in all: '%.*s'", run->k, got, got, seen);
    return NULL;
}

static void recv_teardown(void *ctx)
{
    recv_sweep *c = ctx;
    weft_udp_close(&c->s[0]);
    weft_udp_close(&c->s[1]);
}

static void test_cancel_sweep_recv_from(void **state)
{
    (void)state;
    int fds = fd_count();
    static recv_sweep c;
    weft_sweep_case sc = { recv_build, recv_check, recv_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2); /* it waited for the first datagram */
    o = sweep_chaos_options(1, 6, 0.3);
    sweep_pass(&sc, &o);
    assert_int_equal(fd_count(), fds);
}

typedef struct send_sweep {
    weft_udp_socket s[2];
    weft_udp_send w;
    struct sockaddr_in to;
    int64_t n;
} send_sweep;

static int send_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    send_sweep *c = ctx;
    int err = bind_two(c->s);
    if (err)
        return err;
    c->n = -7;
    c->to = loopback(weft_udp_port(&c->s[1]));
    weft_udp_send_to_init(&c->w, &c->s[0], "dgram", 5, (struct sockaddr *)&c->to, sizeof c->to);
    *fut = &c->w.base;
    *out = &c->n;
    return 0;
}

static const char *send_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    send_sweep *c = ctx;
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    char buf[8];
    ssize_t n = recv(weft_udp_fd(&c->s[1]), buf, sizeof buf, MSG_DONTWAIT);
    if (run->completed) {
        if (c->n != 5 || n != 5 || memcmp(buf, "dgram", 5) != 0)
            return sweep_say("completed with %lld, received %zd", (long long)c->n, n);
    } else if (n >= 0) {
        return sweep_say("k=%u: dropped before completing, yet a datagram was sent", run->k);
    }
    return NULL;
}

static void send_teardown(void *ctx)
{
    send_sweep *c = ctx;
    weft_udp_close(&c->s[0]);
    weft_udp_close(&c->s[1]);
}

static void test_cancel_sweep_send_to(void **state)
{
    (void)state;
    int fds = fd_count();
    static send_sweep c;
    weft_sweep_case sc = { send_build, send_check, send_teardown, &c };
    weft_sweep_options o = sweep_options(1, 1);
    sweep_pass(&sc, &o);
    o = sweep_chaos_options(1, 8, 0.5);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2); /* some seed dropped it while pending */
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
    alarm_watchdog_install("watchdog: a UDP test hung (a receive spinning or never woken?)\n");
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup_armed, rt_teardown_disarmed)
#define T(fn) cmocka_unit_test_setup_teardown(fn, t_setup, t_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_udp_echo),
        T(test_udp_echo_on_a_sim),
        RT(test_udp_truncation_reports_the_real_length),
        RT(test_udp_connected_send_and_recv),
        T(test_udp_refused_then_the_next_receive_waits),
        RT(test_udp_misuse_is_einval),
        T(test_cancel_sweep_recv_from),
        T(test_cancel_sweep_send_to),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
