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
 *  - Sockets are plain non-blocking fds registered with the runtime's
 *    reactor (weft_io). Every operation has the same pattern: try the
 *    syscall; on EAGAIN, forget that readiness (weft_io_clear_ready) and
 *    await the next (weft_io_ready).
 *  - Ctrl-C is a future (weft_ctrl_c_init). SIGINT must be blocked in
 *    every thread for the runtime to receive it, so main blocks it first
 *    thing, before the runtime makes its worker threads.
 *  - Each connection is a task. A wait group counts them, so that after
 *    Ctrl-C the server closes its listener, lets the open connections
 *    finish (their clients hang up), and only then returns. */
#define _GNU_SOURCE /* accept4 */
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
    int fd;
    weft_io io;
    weft_io_ready ready;
    uint32_t bits;
    size_t len, off; /* bytes in buf, bytes of them written back */
    char buf[4096];
} conn;

static void conn_drop(weft_future *f)
{
    conn *c = (conn *)f;
    weft_co_drop(&c->co); /* drops a pending weft_io_ready */
    weft_io_deregister(&c->io);
    close(c->fd);
    if (weft_wait_group_done(&g_open) != 0)
        fprintf(stderr, "echo-server: more connections closed than opened\n");
}

/* Output: 0 once the client hung up, or a negative errno. */
WEFT_ASYNC_FN_WITH_DROP(conn, int)
{
    WEFT_FN_BEGIN;
    {
        int rc = weft_io_register(&self->io, self->fd);
        if (rc != 0)
            WEFT_FN_RETURN(rc);
    }
    for (;;) {
        ssize_t n = read(self->fd, self->buf, sizeof self->buf);
        if (n == 0)
            break; /* the client hung up */
        if (n < 0 && errno != EAGAIN)
            WEFT_FN_RETURN(-errno);
        if (n < 0) {
            weft_io_clear_ready(&self->io, WEFT_IO_READ);
            weft_io_ready_init(&self->ready, &self->io, WEFT_IO_READ);
            WEFT_FN_AWAIT(&self->ready, &self->bits);
            continue;
        }
        /* Write it all back, waiting for room when the socket is full. */
        self->len = (size_t)n;
        for (self->off = 0; self->off < self->len;) {
            ssize_t w = write(self->fd, self->buf + self->off, self->len - self->off);
            if (w > 0) {
                self->off += (size_t)w;
                continue;
            }
            if (errno != EAGAIN)
                WEFT_FN_RETURN(-errno);
            weft_io_clear_ready(&self->io, WEFT_IO_WRITE);
            weft_io_ready_init(&self->ready, &self->io, WEFT_IO_WRITE);
            WEFT_FN_AWAIT(&self->ready, &self->bits);
        }
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* ---- the server: accept until Ctrl-C ------------------------------------- */

typedef struct server {
    weft_future base;
    weft_co co;
    weft_rt *rt;
    int lfd;              /* the listening socket (ours from the spawn on) */
    weft_io lio;
    weft_signal ctrl_c;   /* made once, kept across the loop's selects */
    weft_io_ready ready;  /* the listener has a connection to accept */
    weft_select sel;
    int which, sig;
    uint32_t bits;
    unsigned accepted;
    weft_oneshot_tx stopped; /* tells main that the listener is closed */
    weft_wait_group_wait all_closed;
} server;

static void server_drop(weft_future *f)
{
    server *s = (server *)f;
    weft_co_drop(&s->co); /* drops a pending select (and the ready in it) */
    weft_future_drop(&s->ctrl_c.base);
    if (s->lfd >= 0) {
        weft_io_deregister(&s->lio);
        close(s->lfd);
    }
    weft_oneshot_tx_drop(&s->stopped);
}

/* Accept one connection; false when there is none to take now (EAGAIN),
 * or accept4 failed in a way that retrying at once would not cure (EMFILE:
 * the connection waits in the backlog until the next one arrives). */
static bool accept_one(server *s)
{
    int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == ECONNABORTED || errno == EINTR)
            return true; /* that client gave up: take the next */
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            perror("echo-server: accept");
        return false;
    }
    if (weft_wait_group_add(&g_open, 1) != 0) {
        close(fd);
        return true;
    }
    /* A failed spawn drops the future, whose drop closes the fd. */
    conn c = { WEFT_FN_INIT(conn, WEFT_F_SEND), .fd = fd };
    if (weft_spawn(s->rt, &c.base, sizeof c, NULL) == 0)
        s->accepted++;
    return true;
}

/* Output: how many connections it served. */
WEFT_ASYNC_FN_WITH_DROP(server, unsigned)
{
    WEFT_FN_BEGIN;
    if (weft_io_register(&self->lio, self->lfd) != 0)
        WEFT_FN_RETURN(0);
    for (;;) {
        while (accept_one(self)) {
        }
        weft_io_clear_ready(&self->lio, WEFT_IO_READ);
        /* Wait for Ctrl-C or the next connection, Ctrl-C first. */
        weft_io_ready_init(&self->ready, &self->lio, WEFT_IO_READ);
        weft_select_init_inline(&self->sel,
                                (weft_select_branch[]){
                                    WEFT_BRANCH_KEEP(&self->ctrl_c, &self->sig),
                                    WEFT_BRANCH(&self->ready, &self->bits),
                                },
                                2, WEFT_SELECT_BIASED);
        WEFT_FN_AWAIT(&self->sel, &self->which);
        if (self->which != 1)
            break; /* Ctrl-C (or the signal future's error, in self->sig) */
    }
    if (self->sig < 0)
        fprintf(stderr, "echo-server: waiting for Ctrl-C failed: %s\n", weft_strerror(self->sig));
    /* Stop listening: new clients are refused from here on. */
    weft_io_deregister(&self->lio);
    close(self->lfd);
    self->lfd = -1;
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

static int listen_on(int port, int *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *out_port = ntohs(a.sin_port);
    return fd;
}

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

    int lfd = listen_on(port, &port);
    if (lfd < 0) {
        perror("echo-server: listen");
        return 1;
    }
    weft_rt *rt;
    weft_oneshot_rx stopped;
    server srv = { WEFT_FN_INIT(server, WEFT_F_SEND), .lfd = lfd };
    weft_join join;
    if (weft_wait_group_init(&g_open) != 0 || weft_rt_new(&rt, NULL) != 0) {
        close(lfd);
        return 1;
    }
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
