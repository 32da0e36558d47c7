/* TCP over the reactor (weft/io.h, "TCP"): a listener with its accept
 * future, a stream that is a weft_reader and a weft_writer, and the
 * connect future.
 *
 * Every operation follows the reactor's pattern: try the syscall; on
 * EAGAIN clear the readiness it acted on and wait for the next (weft__io_again,
 * below). Stream reads and writes take that readiness before the syscall
 * (stream_io_snapshot), skip the syscall while none is announced, and
 * clear it after a short transfer, as tokio does. A socket is registered
 * once, when it is made (bind, accept, connect), with the reactor of the
 * runtime current then.
 *
 * Nothing leaves the kernel except in the poll that returns it: an accept
 * takes a connection from the backlog only in the poll that completes
 * with it, a read its bytes, a write sends only in the poll that
 * completes. So every future here is cancel-safe but connect, which owns
 * the socket it made and closes it when dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/io.h"
#include "core/atomic.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "io/addr.h"
#include "io/reactor.h"

/* "127.0.0.1" or "::1" and a port into `*ss`; its length, or 0. */

static int sock_name(int fd, bool peer, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof *addr;
    int rc = peer ? getpeername(fd, (struct sockaddr *)addr, len)
                  : getsockname(fd, (struct sockaddr *)addr, len);
    return rc == 0 ? 0 : -errno;
}

/* ---- the stream: reader and writer ops ------------------------------------------ */

/* Before a read (d 0) or a write (d 1): take the readiness the syscall
 * runs under into io->seen_[d], so that an EAGAIN (weft__io_again) or a
 * short transfer clears exactly that readiness and no newer event's (the
 * tick says which). If no event announced the direction since it was
 * last cleared, the syscall could only say EAGAIN: register the waker
 * instead (weft_io_poll_ready looks again after registering, and records
 * what it saw in seen_). true: go ahead with the syscall; false: PENDING,
 * with a wake arranged. */
static bool stream_io_snapshot(weft_io *io, weft_cx *cx, unsigned d)
{
    uint32_t mask = d ? WEFT__IO_WRITE_MASK : WEFT__IO_READ_MASK;
    /* Acquire: pairs with dispatch's release, as in weft__sio_poll_ready. */
    uint64_t cur = weft_atomic_load_acquire(&io->sio_->ready);
    if (!(cur & mask))
        return weft_io_poll_ready(io, cx, d ? WEFT_IO_WRITE : WEFT_IO_READ) != 0;
    io->seen_[d] = cur;
    return true;
}

static weft_poll stream_poll_read(weft_reader *r, weft_cx *cx, void *buf, size_t len,
                                  int64_t *res)
{
    weft_tcp_stream *s = (weft_tcp_stream *)r;
    if (!s->io_.sio_) {
        *res = -EBADF;
        return WEFT_READY;
    }
    if (!buf || len == 0) {
        WEFT_MISUSE("weft_tcp_stream read: %s", buf ? "len 0" : "NULL buf");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    for (;;) {
        if (!stream_io_snapshot(&s->io_, cx, 0))
            return WEFT_PENDING;
        ssize_t n = recv(s->io_.fd, buf, len, 0);
        if (n >= 0) {
            /* A short read emptied the receive queue: the next read waits
             * for the next event instead of asking the kernel for an
             * EAGAIN. */
            if (n > 0 && (size_t)n < len)
                weft__sio_clear(s->io_.sio_, s->io_.seen_[0], WEFT_IO_READABLE);
            *res = n;
            return WEFT_READY;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *res = -errno;
            return WEFT_READY;
        }
        if (!weft__io_again(&s->io_, cx, WEFT_IO_READ))
            return WEFT_PENDING;
    }
}

static weft_tcp_stream *stream_of_writer(weft_writer *w)
{
    return (weft_tcp_stream *)(void *)((char *)w - offsetof(weft_tcp_stream, writer));
}

static weft_poll stream_poll_write(weft_writer *w, weft_cx *cx, const void *buf, size_t len,
                                   int64_t *res)
{
    weft_tcp_stream *s = stream_of_writer(w);
    if (!s->io_.sio_) {
        *res = -EBADF;
        return WEFT_READY;
    }
    if (!buf || len == 0) {
        WEFT_MISUSE("weft_tcp_stream write: %s", buf ? "len 0" : "NULL buf");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    for (;;) {
        if (!stream_io_snapshot(&s->io_, cx, 1))
            return WEFT_PENDING;
        ssize_t n = send(s->io_.fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            /* A short write filled the send buffer (as a short read
             * emptied the receive queue, above). */
            if (n > 0 && (size_t)n < len)
                weft__sio_clear(s->io_.sio_, s->io_.seen_[1], WEFT_IO_WRITABLE);
            *res = n;
            return WEFT_READY;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *res = -errno;
            return WEFT_READY;
        }
        if (!weft__io_again(&s->io_, cx, WEFT_IO_WRITE))
            return WEFT_PENDING;
    }
}

/* Nothing is buffered above the kernel: a flush is done at once. */
static weft_poll stream_poll_flush(weft_writer *w, weft_cx *cx, int *res)
{
    (void)cx;
    *res = stream_of_writer(w)->io_.sio_ ? 0 : -EBADF;
    return WEFT_READY;
}

static weft_poll stream_poll_shutdown(weft_writer *w, weft_cx *cx, int *res)
{
    (void)cx;
    *res = weft_tcp_stream_shutdown_write(stream_of_writer(w));
    return WEFT_READY;
}

static const weft_reader_ops stream_reader_ops = {
    .name = "weft_tcp_stream", .poll_read = stream_poll_read,
};
static const weft_writer_ops stream_writer_ops = {
    .name = "weft_tcp_stream", .poll_write = stream_poll_write,
    .poll_flush = stream_poll_flush, .poll_shutdown = stream_poll_shutdown,
};

/* Make `s` an open stream over `io` (registered, connected). */
static void stream_open(weft_tcp_stream *s, const weft_io *io)
{
    s->reader.ops = &stream_reader_ops;
    s->writer.ops = &stream_writer_ops;
    s->io_ = *io;
}

int weft_tcp_stream_from_fd(weft_tcp_stream *s, int fd)
{
    if (!s || fd < 0) {
        WEFT_MISUSE("weft_tcp_stream_from_fd: %s", s ? "negative fd" : "NULL stream");
        return -EINVAL;
    }
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
        return -errno;
    weft_io io;
    int rc = weft_io_register(&io, fd);
    if (rc != 0)
        return rc;
    stream_open(s, &io);
    return 0;
}

int weft_tcp_stream_fd(const weft_tcp_stream *s)
{
    return s && s->io_.sio_ ? s->io_.fd : -1;
}

/* The common checks of the stream's plain calls: 0 or the error. */
static int stream_check(const weft_tcp_stream *s, const char *what)
{
    (void)what; /* only in the misuse report, which NDEBUG compiles out */
    if (!s) {
        WEFT_MISUSE("%s: NULL stream", what);
        return -EINVAL;
    }
    return s->io_.sio_ ? 0 : -EBADF;
}

int weft_tcp_stream_shutdown_write(weft_tcp_stream *s)
{
    int rc = stream_check(s, "weft_tcp_stream_shutdown_write");
    if (rc)
        return rc;
    return shutdown(s->io_.fd, SHUT_WR) == 0 ? 0 : -errno;
}

static int set_int_opt(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof v) == 0 ? 0 : -errno;
}

int weft_tcp_stream_set_nodelay(weft_tcp_stream *s, bool on)
{
    int rc = stream_check(s, "weft_tcp_stream_set_nodelay");
    if (rc)
        return rc;
    return set_int_opt(s->io_.fd, IPPROTO_TCP, TCP_NODELAY, on);
}

int weft_tcp_stream_set_keepalive(weft_tcp_stream *s, bool on, int idle_seconds)
{
    if (idle_seconds < 0) {
        WEFT_MISUSE("weft_tcp_stream_set_keepalive: idle_seconds %d < 0", idle_seconds);
        return -EINVAL;
    }
    int rc = stream_check(s, "weft_tcp_stream_set_keepalive");
    if (rc)
        return rc;
    rc = set_int_opt(s->io_.fd, SOL_SOCKET, SO_KEEPALIVE, on);
    if (rc == 0 && on && idle_seconds > 0)
        rc = set_int_opt(s->io_.fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_seconds);
    return rc;
}

int weft_tcp_stream_peer_addr(const weft_tcp_stream *s, struct sockaddr_storage *addr,
                              socklen_t *len)
{
    if (!addr || !len) {
        WEFT_MISUSE("weft_tcp_stream_peer_addr: NULL %s", addr ? "len" : "addr");
        return -EINVAL;
    }
    int rc = stream_check(s, "weft_tcp_stream_peer_addr");
    return rc ? rc : sock_name(s->io_.fd, true, addr, len);
}

int weft_tcp_stream_local_addr(const weft_tcp_stream *s, struct sockaddr_storage *addr,
                               socklen_t *len)
{
    if (!addr || !len) {
        WEFT_MISUSE("weft_tcp_stream_local_addr: NULL %s", addr ? "len" : "addr");
        return -EINVAL;
    }
    int rc = stream_check(s, "weft_tcp_stream_local_addr");
    return rc ? rc : sock_name(s->io_.fd, false, addr, len);
}

void weft_tcp_stream_close(weft_tcp_stream *s)
{
    if (!s || !s->io_.sio_)
        return;
    int fd = s->io_.fd;
    weft_io_deregister(&s->io_); /* before the close: the fd number may be reused */
    close(fd);
    s->io_.fd = -1;
}

/* ---- read and write futures -------------------------------------------------------- */

static weft_poll tcp_read_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_tcp_io *r = (weft_tcp_io *)f;
    if (!r->s_) {
        WEFT_MISUSE("weft_tcp_read: NULL stream");
        *(int64_t *)out = -EINVAL;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    return stream_poll_read(&r->s_->reader, cx, r->buf_.rd, r->len_, out);
}

static weft_poll tcp_write_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_tcp_io *w = (weft_tcp_io *)f;
    if (!w->s_) {
        WEFT_MISUSE("weft_tcp_write: NULL stream");
        *(int64_t *)out = -EINVAL;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    return stream_poll_write(&w->s_->writer, cx, w->buf_.wr, w->len_, out);
}

/* No drop: a waker a pending read or write left with the stream's
 * registration is replaced by the next one's, or dropped by the close. */
static const weft_future_ops tcp_read_ops = {
    .name = "weft_tcp_read", .out_size = sizeof(int64_t), .poll = tcp_read_poll,
};
static const weft_future_ops tcp_write_ops = {
    .name = "weft_tcp_write", .out_size = sizeof(int64_t), .poll = tcp_write_poll,
};

void weft_tcp_read_init(weft_tcp_io *f, weft_tcp_stream *s, void *buf, size_t len)
{
    weft_future_init(&f->base, &tcp_read_ops, WEFT_F_SEND);
    f->s_ = s;
    f->buf_.rd = buf;
    f->len_ = len;
}

void weft_tcp_write_init(weft_tcp_io *f, weft_tcp_stream *s, const void *buf, size_t len)
{
    weft_future_init(&f->base, &tcp_write_ops, WEFT_F_SEND);
    f->s_ = s;
    f->buf_.wr = buf;
    f->len_ = len;
}

/* ---- the listener --------------------------------------------------------------------- */

int weft_tcp_listener_bind(weft_tcp_listener *l, const struct sockaddr *addr, socklen_t len,
                           int backlog)
{
    if (!l || !weft__addr_ok(addr, len) || backlog < 0) {
        WEFT_MISUSE("weft_tcp_listener_bind: %s",
                    !l ? "NULL listener" : backlog < 0 ? "backlog < 0"
                                                       : "not an IPv4 or IPv6 address");
        return -EINVAL;
    }
    l->io_.sio_ = NULL;
    l->io_.fd = -1;
    weft_atomic_init(&l->accepts_, 0u);
    if (!weft__reactor_current()) {
        WEFT_MISUSE("weft_tcp_listener_bind: no current runtime (call it from a task, or "
                    "a future under weft_block_on)");
        return -EINVAL;
    }
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && bind(fd, addr, len) != 0)
        rc = -errno;
    if (rc == 0 && listen(fd, backlog ? backlog : SOMAXCONN) != 0)
        rc = -errno;
    if (rc == 0)
        rc = weft_io_register(&l->io_, fd);
    if (rc != 0) {
        l->io_.sio_ = NULL;
        l->io_.fd = -1;
        close(fd);
    }
    return rc;
}

int weft_tcp_listen_ip(weft_tcp_listener *l, const char *ip, uint16_t port, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len = weft__addr_parse_ip(ip, port, &ss);
    if (!len) {
        WEFT_MISUSE("weft_tcp_listen_ip: %s", ip ? "not a numeric IP address" : "NULL ip");
        return -EINVAL;
    }
    return weft_tcp_listener_bind(l, (struct sockaddr *)&ss, len, backlog);
}

int weft_tcp_listener_local_addr(const weft_tcp_listener *l, struct sockaddr_storage *addr,
                                 socklen_t *len)
{
    if (!l || !addr || !len) {
        WEFT_MISUSE("weft_tcp_listener_local_addr: a NULL argument");
        return -EINVAL;
    }
    if (!l->io_.sio_)
        return -EBADF;
    return sock_name(l->io_.fd, false, addr, len);
}

int weft_tcp_listener_port(const weft_tcp_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = weft_tcp_listener_local_addr(l, &ss, &len);
    return rc ? rc : weft__addr_port(&ss);
}

int weft_tcp_listener_close(weft_tcp_listener *l)
{
    if (!l) {
        WEFT_MISUSE("weft_tcp_listener_close: NULL listener");
        return -EINVAL;
    }
    if (!l->io_.sio_)
        return 0;
    /* Relaxed: the accepts that count were polled before this call (the
     * rule: no close concurrent with an accept's first poll), and the
     * caller ordered that poll before this call by its own means. */
    if (weft_atomic_load_relaxed(&l->accepts_) != 0) {
        WEFT_MISUSE("weft_tcp_listener_close: an accept is pending (drop it first)");
        return -EBUSY;
    }
    int fd = l->io_.fd;
    weft_io_deregister(&l->io_);
    close(fd);
    l->io_.fd = -1;
    return 0;
}

/* ---- accept ---------------------------------------------------------------------------- */

/* The accept is done with the listener: it no longer counts, and the
 * waker it may have left is taken back. */
static void accept_release(weft_tcp_accept *a)
{
    if (a->waiting_ && a->l_->io_.sio_)
        weft__sio_forget(a->l_->io_.sio_, WEFT_IO_READ);
    a->waiting_ = false;
    if (a->counted_)
        weft_atomic_fetch_sub_relaxed(&a->l_->accepts_, 1u); /* a count: see close */
    a->counted_ = false;
}

static weft_poll accept_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_tcp_accept *a = (weft_tcp_accept *)f;
    int *res = out;
    if (!a->l_ || !a->out_) {
        WEFT_MISUSE("weft_tcp_accept: NULL %s", a->l_ ? "stream slot" : "listener");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (!a->counted_) {
        if (!a->l_->io_.sio_) {
            *res = -EBADF;
            return WEFT_READY;
        }
        weft_atomic_fetch_add_relaxed(&a->l_->accepts_, 1u); /* a count: see close */
        a->counted_ = true;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING;
    weft_io *lio = &a->l_->io_;
    for (;;) {
        int fd = accept4(lio->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            weft_io io;
            int rc = weft_io_register(&io, fd);
            if (rc != 0) {
                close(fd);
                *res = rc;
            } else {
                stream_open(a->out_, &io);
                *res = 0;
            }
            accept_release(a);
            return WEFT_READY;
        }
        int err = errno;
        if (err == EINTR || err == ECONNABORTED)
            continue;
        if (err != EAGAIN && err != EWOULDBLOCK) {
            /* EMFILE / ENFILE: the connection stays in the backlog, and
             * the readiness is not cleared, so the next accept tries at
             * once. */
            *res = -err;
            accept_release(a);
            return WEFT_READY;
        }
        if (!weft__io_again(lio, cx, WEFT_IO_READ)) {
            a->waiting_ = true;
            return WEFT_PENDING;
        }
    }
}

static void accept_drop(weft_future *f)
{
    weft_tcp_accept *a = (weft_tcp_accept *)f;
    if (a->l_)
        accept_release(a);
}

static const weft_future_ops accept_ops = {
    .name = "weft_tcp_accept", .out_size = sizeof(int), .poll = accept_poll,
    .drop = accept_drop,
};

void weft_tcp_accept_init(weft_tcp_accept *f, weft_tcp_listener *l, weft_tcp_stream *out)
{
    weft_future_init(&f->base, &accept_ops, WEFT_F_SEND);
    f->l_ = l;
    f->out_ = out;
    f->counted_ = false;
    f->waiting_ = false;
}

/* ---- connect ----------------------------------------------------------------------------- */

/* Close the socket the connect made (not handed on). */
static void connect_abandon(weft_tcp_connect *c)
{
    if (!c->io_.sio_)
        return;
    int fd = c->io_.fd;
    weft_io_deregister(&c->io_); /* drops the waker it left too */
    close(fd);
    c->waiting_ = false;
}

static weft_poll connect_fail(weft_tcp_connect *c, int *res, int err)
{
    connect_abandon(c);
    *res = err;
    return WEFT_READY;
}

static weft_poll connect_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_tcp_connect *c = (weft_tcp_connect *)f;
    int *res = out;
    if (!c->out_ || !c->len_) {
        WEFT_MISUSE("weft_tcp_connect: %s",
                    c->out_ ? "not an IPv4 or IPv6 address" : "NULL stream slot");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (!c->io_.sio_) {
        /* The first poll: make the socket and start the handshake. */
        int fd = socket(c->addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            *res = -errno;
            return WEFT_READY;
        }
        /* Connect first, register after: a socket not yet connecting polls
         * as writable and hung up, and epoll would report that stale HUP
         * at registration. */
        int crc = connect(fd, (struct sockaddr *)&c->addr_, c->len_) == 0 ? 0 : errno;
        if (crc != 0 && crc != EINPROGRESS && crc != EINTR) {
            close(fd);
            *res = -crc;
            return WEFT_READY;
        }
        int rc = weft_io_register(&c->io_, fd);
        if (rc != 0) {
            c->io_.sio_ = NULL;
            close(fd);
            *res = rc;
            return WEFT_READY;
        }
        if (crc == 0)
            goto connected;
    }
    /* After the first poll's start, so that a sweep drops it with its
     * socket open. */
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    for (;;) {
        uint32_t bits = weft_io_poll_ready(&c->io_, cx, WEFT_IO_WRITE);
        if (!bits) {
            c->waiting_ = true;
            return WEFT_PENDING;
        }
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(c->io_.fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            err = errno;
        if (err)
            return connect_fail(c, res, -err);
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        if (getpeername(c->io_.fd, (struct sockaddr *)&peer, &pl) == 0)
            break;
        if (errno != ENOTCONN)
            return connect_fail(c, res, -errno);
        /* Writable but not connected yet: wait for the next event. */
        if (!weft__io_again(&c->io_, cx, WEFT_IO_WRITE)) {
            c->waiting_ = true;
            return WEFT_PENDING;
        }
    }
connected:
    if (c->waiting_)
        weft__sio_forget(c->io_.sio_, WEFT_IO_WRITE);
    c->waiting_ = false;
    stream_open(c->out_, &c->io_);
    c->io_.sio_ = NULL; /* the stream's now */
    c->io_.fd = -1;
    *res = 0;
    return WEFT_READY;
}

static void connect_drop(weft_future *f)
{
    connect_abandon((weft_tcp_connect *)f);
}

static const weft_future_ops connect_ops = {
    .name = "weft_tcp_connect", .out_size = sizeof(int), .poll = connect_poll,
    .drop = connect_drop,
};

void weft_tcp_connect_init(weft_tcp_connect *f, weft_tcp_stream *out,
                           const struct sockaddr *addr, socklen_t len)
{
    weft_future_init(&f->base, &connect_ops, WEFT_F_SEND);
    f->out_ = out;
    f->waiting_ = false;
    f->io_.sio_ = NULL;
    f->io_.fd = -1;
    memset(&f->addr_, 0, sizeof f->addr_);
    f->len_ = 0;
    if (weft__addr_ok(addr, len)) {
        memcpy(&f->addr_, addr, len);
        f->len_ = len;
    }
}

void weft_tcp_connect_ip_init(weft_tcp_connect *f, weft_tcp_stream *out, const char *ip,
                              uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len = weft__addr_parse_ip(ip, port, &ss);
    weft_tcp_connect_init(f, out, len ? (struct sockaddr *)&ss : NULL, len);
}
