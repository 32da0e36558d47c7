/* UDP over the reactor (weft/io.h, "UDP"): a datagram socket with send
 * and receive futures, with or without an address.
 *
 * As for TCP (io/tcp.c): try the syscall, on EAGAIN clear the readiness
 * and wait. A datagram leaves the socket only in the poll that completes
 * the receive with it, and is sent only in the poll that completes the
 * send, so both futures are cancel-safe. A receive passes MSG_TRUNC, so
 * its output is the datagram's real length even when the buffer was
 * shorter. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/io.h"
#include "core/atomic.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "io/addr.h"
#include "io/reactor.h"

/* ---- the socket ------------------------------------------------------------------------ */

int weft_udp_bind(weft_udp_socket *s, const struct sockaddr *addr, socklen_t len)
{
    if (!s || !weft__addr_ok(addr, len)) {
        WEFT_MISUSE("weft_udp_bind: %s", s ? "not an IPv4 or IPv6 address" : "NULL socket");
        return -EINVAL;
    }
    s->io_.sio_ = NULL;
    s->io_.fd = -1;
    if (!weft__reactor_current()) {
        WEFT_MISUSE("weft_udp_bind: no current runtime (call it from a task, or a future "
                    "under weft_block_on)");
        return -EINVAL;
    }
    int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = bind(fd, addr, len) == 0 ? 0 : -errno;
    if (rc == 0)
        rc = weft_io_register(&s->io_, fd);
    if (rc != 0) {
        s->io_.sio_ = NULL;
        s->io_.fd = -1;
        close(fd);
    }
    return rc;
}

int weft_udp_bind_ip(weft_udp_socket *s, const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len = weft__addr_parse_ip(ip, port, &ss);
    if (!len) {
        WEFT_MISUSE("weft_udp_bind_ip: %s", ip ? "not a numeric IP address" : "NULL ip");
        return -EINVAL;
    }
    return weft_udp_bind(s, (struct sockaddr *)&ss, len);
}

int weft_udp_connect(weft_udp_socket *s, const struct sockaddr *addr, socklen_t len)
{
    if (!s || !weft__addr_ok(addr, len)) {
        WEFT_MISUSE("weft_udp_connect: %s", s ? "not an IPv4 or IPv6 address" : "NULL socket");
        return -EINVAL;
    }
    if (!s->io_.sio_)
        return -EBADF;
    return connect(s->io_.fd, addr, len) == 0 ? 0 : -errno;
}

int weft_udp_local_addr(const weft_udp_socket *s, struct sockaddr_storage *addr, socklen_t *len)
{
    if (!s || !addr || !len) {
        WEFT_MISUSE("weft_udp_local_addr: a NULL argument");
        return -EINVAL;
    }
    if (!s->io_.sio_)
        return -EBADF;
    *len = sizeof *addr;
    return getsockname(s->io_.fd, (struct sockaddr *)addr, len) == 0 ? 0 : -errno;
}

int weft_udp_port(const weft_udp_socket *s)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = weft_udp_local_addr(s, &ss, &len);
    if (rc)
        return rc;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int weft_udp_fd(const weft_udp_socket *s)
{
    return s && s->io_.sio_ ? s->io_.fd : -1;
}

void weft_udp_close(weft_udp_socket *s)
{
    if (!s || !s->io_.sio_)
        return;
    int fd = s->io_.fd;
    weft_io_deregister(&s->io_); /* before the close: the fd number may be reused */
    close(fd);
    s->io_.fd = -1;
}

/* ---- send -------------------------------------------------------------------------------- */

static weft_poll send_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_udp_send *u = (weft_udp_send *)f;
    int64_t *res = out;
    if (!u->s_ || (!u->buf_ && u->len_) || u->bad_) {
        WEFT_MISUSE("weft_udp_send: %s", !u->s_ ? "NULL socket"
                                         : u->bad_ ? "not an IPv4 or IPv6 address"
                                                   : "NULL buf");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (!u->s_->io_.sio_) {
        *res = -EBADF;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx) || !weft_coop_proceed(cx))
        return WEFT_PENDING;
    for (;;) {
        ssize_t n = sendto(u->s_->io_.fd, u->buf_, u->len_, MSG_NOSIGNAL,
                           u->addr_len_ ? (struct sockaddr *)&u->addr_ : NULL, u->addr_len_);
        if (n >= 0) {
            *res = n;
            return WEFT_READY;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *res = -errno;
            return WEFT_READY;
        }
        if (!weft__io_again(&u->s_->io_, cx, WEFT_IO_WRITE))
            return WEFT_PENDING;
    }
}

/* No drop: a waker left with the socket's registration is replaced by the
 * next send's, or dropped by the close. */
static const weft_future_ops send_ops = {
    .name = "weft_udp_send", .out_size = sizeof(int64_t), .poll = send_poll,
};

void weft_udp_send_to_init(weft_udp_send *f, weft_udp_socket *s, const void *buf, size_t len,
                           const struct sockaddr *addr, socklen_t addr_len)
{
    weft_future_init(&f->base, &send_ops, WEFT_F_SEND);
    f->s_ = s;
    f->buf_ = buf;
    f->len_ = len;
    f->addr_len_ = 0;
    f->bad_ = false;
    memset(&f->addr_, 0, sizeof f->addr_);
    if (addr) {
        if (weft__addr_ok(addr, addr_len)) {
            memcpy(&f->addr_, addr, addr_len);
            f->addr_len_ = addr_len;
        } else {
            f->bad_ = true;
        }
    }
}

void weft_udp_send_init(weft_udp_send *f, weft_udp_socket *s, const void *buf, size_t len)
{
    weft_udp_send_to_init(f, s, buf, len, NULL, 0);
}

/* ---- receive ----------------------------------------------------------------------------- */

static weft_poll recv_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_udp_recv *u = (weft_udp_recv *)f;
    int64_t *res = out;
    if (!u->s_ || (!u->buf_ && u->len_) || (!u->from_ != !u->from_len_)) {
        WEFT_MISUSE("weft_udp_recv: %s", !u->s_ ? "NULL socket"
                                         : (!u->buf_ && u->len_) ? "NULL buf"
                                                                 : "only one of from, from_len");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (!u->s_->io_.sio_) {
        *res = -EBADF;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx) || !weft_coop_proceed(cx))
        return WEFT_PENDING;
    for (;;) {
        socklen_t fl = sizeof(struct sockaddr_storage);
        char none;
        /* recv with a zero length still takes the datagram; give it one
         * byte of scratch so the call is never a NULL buffer. */
        ssize_t n = recvfrom(u->s_->io_.fd, u->len_ ? u->buf_ : &none, u->len_, MSG_TRUNC,
                             u->from_ ? (struct sockaddr *)u->from_ : NULL,
                             u->from_ ? &fl : NULL);
        if (n >= 0) {
            if (u->from_len_)
                *u->from_len_ = fl;
            *res = n;
            return WEFT_READY;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *res = -errno;
            return WEFT_READY;
        }
        if (!weft__io_again(&u->s_->io_, cx, WEFT_IO_READ))
            return WEFT_PENDING;
    }
}

static const weft_future_ops recv_ops = {
    .name = "weft_udp_recv", .out_size = sizeof(int64_t), .poll = recv_poll,
};

void weft_udp_recv_from_init(weft_udp_recv *f, weft_udp_socket *s, void *buf, size_t len,
                             struct sockaddr_storage *from, socklen_t *from_len)
{
    weft_future_init(&f->base, &recv_ops, WEFT_F_SEND);
    f->s_ = s;
    f->buf_ = buf;
    f->len_ = len;
    f->from_ = from;
    f->from_len_ = from_len;
}

void weft_udp_recv_init(weft_udp_recv *f, weft_udp_socket *s, void *buf, size_t len)
{
    weft_udp_recv_from_init(f, s, buf, len, NULL, NULL);
}
