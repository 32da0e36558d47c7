/* weft-echo-server: a TCP echo server that stops cleanly on Ctrl-C.
 *
 *   weft-echo-server [--port N]    serve on 127.0.0.1:N (0: any free port)
 *   weft-echo-server --self-test   serve on a free port, connect clients
 *                                  to itself, check the echoes, send
 *                                  itself SIGINT and check the shutdown
 *
 * The shape is tokio's echo server with graceful shutdown:
 *
 *   loop {
 *       select! {
 *           _ = ctrl_c() => break,
 *           conn = listener.accept() => spawn(echo(conn)),
 *       }
 *   }
 *   // stop listening, then wait for the open connections to end
 *
 *  - The listener and the connections are weft's TCP types: an accept
 *    future, and per connection a weft_copy from the stream's reader to
 *    its own writer.
 *  - Ctrl-C is a future (weft_ctrl_c_init). SIGINT must be blocked in
 *    every thread for the runtime to receive it, so main blocks it first
 *    thing, before the runtime makes its worker threads.
 *  - Each connection is a task. A wait group counts them, so that after
 *    Ctrl-C the server closes its listener, lets the open connections
 *    finish (their clients hang up), and only then returns. */
#define _POSIX_C_SOURCE 200809L /* kill */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/weft.h>

/* The open connections; lives in main's scope, which outlives every task. */
static weft_wait_group g_open;

/* ---- a connection: read, write back, until the client hangs up ---------- */

typedef struct conn {
    weft_future base;
    weft_co co;
    weft_tcp_stream s;  /* accepted; not used before this task, so it moved here */
    weft_copy copy;     /* reader -> writer until the client's end of stream */
    int64_t copied;
    char buf[4096];
} conn;

static void conn_drop(weft_future *f)
{
    conn *c = (conn *)f;
    weft_co_drop(&c->co); /* drops a pending copy */
    weft_tcp_stream_close(&c->s);
    if (weft_wait_group_done(&g_open) != 0)
        fprintf(stderr, "echo-server: more connections closed than opened\n");
}

/* Output: 0 once the client hung up, or a negative errno. */
WEFT_ASYNC_FN_WITH_DROP(conn, int)
{
    WEFT_FN_BEGIN;
    weft_copy_init(&self->copy, &self->s.reader, &self->s.writer, self->buf, sizeof self->buf);
    WEFT_FN_AWAIT(&self->copy, &self->copied);
    WEFT_FN_RETURN(self->copied < 0 ? (int)self->copied : 0);
    WEFT_FN_END;
}

/* ---- the server: accept until Ctrl-C ------------------------------------- */

/* The listening socket, bound in main (under weft_block_on) before the
 * server task starts; it lives in main's scope, which outlives every task. */
static weft_tcp_listener g_listener;

typedef struct server {
    weft_future base;
    weft_co co;
    weft_rt *rt;
    weft_signal ctrl_c;   /* made once, kept across the loop's selects */
    weft_tcp_accept accept;
    weft_tcp_stream next; /* where an accept puts the new connection */
    weft_sleep backoff;   /* out of file descriptors: wait a little */
    weft_select sel;
    int which, sig, rc;
    unsigned accepted;
    weft_oneshot_tx stopped; /* tells main that the listener is closed */
    weft_wait_group_wait all_closed;
} server;

static void server_drop(weft_future *f)
{
    server *s = (server *)f;
    weft_co_drop(&s->co); /* drops a pending select (and the accept in it) */
    weft_future_drop(&s->ctrl_c.base);
    weft_oneshot_tx_drop(&s->stopped);
}

/* Give the accepted connection its own task; a failed spawn drops the
 * future, whose drop closes the stream. */
static void serve(server *s)
{
    if (weft_wait_group_add(&g_open, 1) != 0) {
        weft_tcp_stream_close(&s->next);
        return;
    }
    conn c = { WEFT_FN_INIT(conn, WEFT_F_SEND), .s = s->next };
    if (weft_spawn(s->rt, &c.base, sizeof c, NULL) == 0)
        s->accepted++;
}

/* Output: how many connections it served. */
WEFT_ASYNC_FN_WITH_DROP(server, unsigned)
{
    WEFT_FN_BEGIN;
    for (;;) {
        /* The next connection or Ctrl-C, Ctrl-C first. */
        weft_tcp_accept_init(&self->accept, &g_listener, &self->next);
        WEFT_SELECT_BIASED_IN(&self->sel, &self->which,
                              WEFT_BRANCH_KEEP(&self->ctrl_c, &self->sig),
                              WEFT_BRANCH(&self->accept, &self->rc));
        if (self->which != 1)
            break; /* Ctrl-C (or the signal future's error, in self->sig) */
        if (self->rc == 0) {
            serve(self);
        } else {
            /* The connection stays in the backlog (EMFILE): back off. */
            fprintf(stderr, "echo-server: accept: %s\n", weft_strerror(self->rc));
            weft_sleep_init(&self->backoff, WEFT_MS(100));
            WEFT_FN_AWAIT(&self->backoff, NULL);
        }
    }
    if (self->sig < 0)
        fprintf(stderr, "echo-server: waiting for Ctrl-C failed: %s\n", weft_strerror(self->sig));
    /* Stop listening: new clients are refused from here on. */
    if (weft_tcp_listener_close(&g_listener) != 0)
        fprintf(stderr, "echo-server: the listener did not close\n");
    printf("echo-server: Ctrl-C: stopped listening after %u connection(s); waiting for the "
           "open ones\n",
           self->accepted);
    if (weft_oneshot_send(&self->stopped, &self->accepted) != 0) {
        /* -EPIPE: nobody listens for it (not a self-test) */
    }
    weft_wait_group_wait_init(&self->all_closed, &g_open);
    WEFT_FN_AWAIT(&self->all_closed, NULL);
    WEFT_FN_RETURN(self->accepted);
    WEFT_FN_END;
}

/* ---- main ------------------------------------------------------------------ */

/* Binds g_listener to 127.0.0.1:port; run under weft_block_on, since
 * the listener registers with the reactor of the runtime it runs on. */
typedef struct bind_listener {
    weft_future base;
    int port;
} bind_listener;

static weft_poll bind_listener_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx;
    *(int *)out = weft_tcp_listen_ip(&g_listener, "127.0.0.1",
                                     (uint16_t)((bind_listener *)f)->port, 64);
    return WEFT_READY;
}

static const weft_future_ops bind_listener_ops = {
    .name = "bind_listener", .out_size = sizeof(int), .poll = bind_listener_poll,
};

/* A blocking client of the self-test. -1 and errno on failure. */
static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    int e = errno;
    if (fd >= 0)
        close(fd);
    errno = e;
    return -1;
}

/* Send `msg` and read back exactly as many bytes: true if they match. */
static bool echoes(int fd, const char *msg)
{
    size_t len = strlen(msg), got = 0;
    char back[256];
    if (len > sizeof back || write(fd, msg, len) != (ssize_t)len)
        return false;
    while (got < len) {
        ssize_t n = read(fd, back + got, len - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return memcmp(back, msg, len) == 0;
}

#define CLIENTS 3

/* Clients connect and check their echoes; one stays connected while the
 * process sends itself SIGINT: the server stops listening (a new client is
 * refused), the connected client is still served, and once it hangs up
 * the server returns. Returns 0 when all of that held. */
static int self_test(int port, weft_oneshot_rx *stopped)
{
    int fds[CLIENTS], bad = 0;
    char msg[64];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = connect_to(port);
        snprintf(msg, sizeof msg, "hello from client %d", i);
        bad |= fds[i] < 0 || !echoes(fds[i], msg);
    }
    for (int i = 1; i < CLIENTS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    printf("self-test: %d clients echoed; sending SIGINT to myself\n", CLIENTS);
    kill(getpid(), SIGINT);
    unsigned accepted = 0;
    bad |= weft_oneshot_recv_blocking(stopped, &accepted) != 0;
    int late = connect_to(port);
    bool refused = late < 0 && errno == ECONNREFUSED;
    if (late >= 0)
        close(late);
    bool still_served = fds[0] >= 0 && echoes(fds[0], "still here after Ctrl-C");
    if (fds[0] >= 0)
        close(fds[0]); /* the last open connection ends: the server returns */
    printf("self-test: after SIGINT a new client was %s, the open one was %s\n",
           refused ? "refused" : "NOT refused", still_served ? "still served" : "NOT served");
    return bad || !refused || !still_served || accepted != CLIENTS;
}

int main(int argc, char **argv)
{
    /* First thing, before any thread exists: every thread (the runtime's
     * workers included) inherits this mask, so SIGINT reaches the
     * runtime's signalfd instead of ending the process. */
    static const int sigint[] = { SIGINT };
    if (weft_signal_block(sigint, 1) != 0)
        return 1;

    bool test = false;
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--self-test") == 0)
            test = true;
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--port N] [--self-test]\n", argv[0]);
            return 2;
        }
    }

    weft_rt *rt;
    weft_oneshot_rx stopped;
    server srv = { WEFT_FN_INIT(server, WEFT_F_SEND) };
    weft_join join;
    if (weft_wait_group_init(&g_open) != 0 || weft_rt_new(&rt, NULL) != 0)
        return 1;
    bind_listener b = { WEFT_FUTURE_INIT(&bind_listener_ops, WEFT_F_SEND), port };
    int brc = -1;
    if (weft_block_on(rt, &b.base, &brc, sizeof brc) != 0 || brc != 0) {
        fprintf(stderr, "echo-server: listen: %s\n", weft_strerror(brc));
        weft_rt_shutdown(rt);
        return 1;
    }
    port = weft_tcp_listener_port(&g_listener);
    srv.rt = rt;
    weft_ctrl_c_init(&srv.ctrl_c); /* it may move until its first poll */
    if (weft_oneshot_new(&srv.stopped, &stopped, sizeof(unsigned)) != 0 ||
        weft_spawn(rt, &srv.base, sizeof srv, &join) != 0) { /* a failed spawn drops it */
        weft_rt_shutdown(rt);
        return 1;
    }
    printf("echo-server: listening on 127.0.0.1:%d (Ctrl-C stops it)\n", port);
    fflush(stdout);

    int failed = test ? self_test(port, &stopped) : 0;
    weft_oneshot_rx_drop(&stopped);

    unsigned served = 0;
    int rc = weft_block_on(rt, &join.base, &served, sizeof served);
    if (rc != 0)
        weft_future_drop(&join.base);
    else
        rc = join.status;
    weft_rt_shutdown(rt);
    weft_wait_group_fini(&g_open);
    printf("echo-server: shut down cleanly after serving %u connection(s)\n", served);
    return rc != 0 || failed ? 1 : 0;
}
