/* weft — I/O: file descriptors registered with the runtime's reactor.
 *
 * Each runtime has one reactor: an edge-triggered epoll set waited on by
 * a parked worker, with the next timer deadline as its timeout, so timers
 * and I/O share one driver and an idle runtime sleeps in one epoll_wait
 * (io/reactor.h). A registered fd has a readiness word per the reactor's
 * events and a waker per direction. The pattern of every operation: try
 * the syscall; on EAGAIN, clear the readiness it acted on (a newer event
 * is never erased) and wait for the next.
 *
 * weft_io is that registration for any fd (a pipe, an eventfd, a socket
 * of your own); the TCP, UDP and other types are built on it. */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "weft/common.h"
#include "weft/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Interest (what to wait for). */
#define WEFT_IO_READ 0x1u
#define WEFT_IO_WRITE 0x2u

/* Readiness (what came): a weft_io_ready's output. */
#define WEFT_IO_READABLE 0x01u
#define WEFT_IO_WRITABLE 0x02u
#define WEFT_IO_READ_CLOSED 0x04u  /* the peer shut down its write side (EPOLLRDHUP) */
#define WEFT_IO_WRITE_CLOSED 0x08u /* the connection is gone both ways (EPOLLHUP) */
#define WEFT_IO_ERROR 0x10u        /* EPOLLERR: the next syscall reports it */

struct weft__sio;
struct weft__reactor;

/* A registered fd. The fd stays the caller's: weft_io_deregister before
 * closing it. One reader and one writer may wait on it at a time. */
typedef struct weft_io {
    struct weft__sio *sio_;
    struct weft__reactor *reactor_;
    int fd;
    uint64_t seen_[2]; /* the readiness the last ready of each direction saw */
} weft_io;

/* Register `fd` with the reactor of the runtime the caller runs on (a
 * task, or a future under weft_block_on or a sim run); the fd is made
 * non-blocking. 0, -EINVAL (NULL, fd < 0, or no current runtime),
 * -ENOMEM, -EPERM (a regular file or directory: epoll cannot watch it;
 * use the blocking pool), -EBADF, -EEXIST (already registered). */
WEFT_API WEFT_NODISCARD int weft_io_register(weft_io *io, int fd);
/* Stop watching (the fd is not closed). No weft_io_ready on it may be
 * pending. Any thread. */
WEFT_API void weft_io_deregister(weft_io *io);

/* A future: completes when the fd is ready for any of `interest`
 * (WEFT_IO_READ, WEFT_IO_WRITE, or both). Output uint32_t: the readiness
 * bits seen (WEFT_IO_READABLE ...), of which the caller acts on those it
 * asked for. It completes at once if the readiness is already there: the
 * next step is the syscall, and on EAGAIN weft_io_clear_ready. Send.
 * Cancel safety: nothing is lost (readiness is a state of the fd's word,
 * not consumed by the future); the drop takes back the waker it left. */
typedef struct weft_io_ready {
    weft_future base;
    weft_io *io_;
    uint32_t interest_;
    uint32_t waiting_; /* the directions it left a waker in */
} weft_io_ready;

WEFT_API void weft_io_ready_init(weft_io_ready *f, weft_io *io, uint32_t interest);

/* After a syscall in direction `interest` (one of WEFT_IO_READ /
 * WEFT_IO_WRITE) said EAGAIN: forget that readiness, unless an event came
 * after the last ready of that direction saw it. */
WEFT_API void weft_io_clear_ready(weft_io *io, uint32_t interest);

/* The poll-function form, for hand-written futures: the readiness bits of
 * `interest`'s direction if any is set, else 0 with cx's waker registered.
 * `interest` is one of WEFT_IO_READ / WEFT_IO_WRITE. */
WEFT_API uint32_t weft_io_poll_ready(weft_io *io, weft_cx *cx, uint32_t interest);

/* ==== byte streams ========================================================= */
/* A reader and a writer are interfaces (DESIGN §12): a header pointing at
 * ops, first member of the implementing struct, pinned once used, like a
 * stream. TCP streams, pipes and user types implement them, so copy, the
 * buffered reader and user code work with any of them.
 *
 * poll_read: READY with *res = bytes read into buf (1..len), 0 at end of
 * stream, or a negative errno; PENDING with a wake arranged. Bytes leave
 * the source only in a poll that returns READY with them, so abandoning a
 * pending read loses nothing.
 * poll_write: READY with *res = bytes taken from buf (1..len) or a
 * negative errno (-EPIPE: the peer is gone); PENDING with a wake arranged
 * and nothing taken.
 * poll_flush: READY once everything taken is handed on (NULL: nothing is
 * buffered); poll_shutdown: flush, then close the write side (a TCP FIN).
 * `len` is never 0. One reader and one writer may use the object at a
 * time (different tasks may). */
typedef struct weft_reader weft_reader;
typedef struct weft_writer weft_writer;

typedef struct weft_reader_ops {
    const char *name;
    weft_poll (*poll_read)(weft_reader *r, weft_cx *cx, void *buf, size_t len, int64_t *res);
} weft_reader_ops;

typedef struct weft_writer_ops {
    const char *name;
    weft_poll (*poll_write)(weft_writer *w, weft_cx *cx, const void *buf, size_t len,
                            int64_t *res);
    weft_poll (*poll_flush)(weft_writer *w, weft_cx *cx, int *res);    /* may be NULL */
    weft_poll (*poll_shutdown)(weft_writer *w, weft_cx *cx, int *res); /* may be NULL */
} weft_writer_ops;

struct weft_reader {
    const weft_reader_ops *ops;
};
struct weft_writer {
    const weft_writer_ops *ops;
};

/* (see io/bytes.c: the read / write / copy futures and the buffered reader) */

/* ==== fd streams ============================================================= */
/* (see io/fd_stream.c: a reader and writer over any fd, pipes) */

/* ==== TCP ==================================================================== */
/* A listener and a stream over non-blocking TCP sockets (IPv4 or IPv6),
 * each registered with the reactor of the runtime current where it is
 * made: weft_tcp_listener_bind and the accept and connect futures run in a
 * task or a future under weft_block_on (or a sim run), as weft_io_register
 * does. Addresses are the socket API's (`const struct sockaddr *` and its
 * length; getters fill a struct sockaddr_storage). The objects are the
 * caller's; each is pinned from its first operation until it is closed. */

/* A TCP stream: a weft_reader and a weft_writer (io.h, byte streams)
 * over a connected socket, so (weft_reader *)&s->reader and
 * &s->writer go wherever a reader or a writer does. One reader and one
 * writer at a time (they may be different tasks). Made by a connect or an
 * accept; weft_tcp_stream_close releases it. Writes use MSG_NOSIGNAL: a
 * peer that is gone gives -EPIPE or -ECONNRESET, never SIGPIPE. A read
 * after the peer reset the connection gives -ECONNRESET once, then 0. */
typedef struct weft_tcp_stream {
    weft_reader reader; /* first member: a weft_tcp_stream * is a weft_reader * */
    weft_writer writer;
    weft_io io_; /* io_.sio_ NULL: not open (operations give -EBADF) */
} weft_tcp_stream;

/* Make `s` an open stream over `fd`, a connected TCP socket the caller
 * made (made non-blocking, registered with the current runtime's
 * reactor); the stream owns it from then on (weft_tcp_stream_close closes
 * it). 0; -EINVAL (NULL, fd < 0, no current runtime: reported as misuse),
 * -ENOTSOCK, -ENOTCONN (not connected), -ENOMEM, -EEXIST (registered
 * already); on error the fd stays the caller's. */
WEFT_API WEFT_NODISCARD int weft_tcp_stream_from_fd(weft_tcp_stream *s, int fd);
/* The socket (to set options weft has no setter for), or -1 if not open. */
WEFT_API int weft_tcp_stream_fd(const weft_tcp_stream *s);
/* Close the write side (a FIN; the peer reads end of stream); reading
 * goes on. 0, -EINVAL (NULL), -EBADF (not open), or shutdown's -errno. Any
 * thread, while the stream is open. */
WEFT_API WEFT_NODISCARD int weft_tcp_stream_shutdown_write(weft_tcp_stream *s);
/* TCP_NODELAY on or off. 0, -EINVAL, -EBADF or setsockopt's -errno. */
WEFT_API WEFT_NODISCARD int weft_tcp_stream_set_nodelay(weft_tcp_stream *s, bool on);
/* SO_KEEPALIVE on or off; with `idle_seconds` > 0 also TCP_KEEPIDLE (the
 * idle time before the first probe; 0: the system's). 0, -EINVAL (NULL,
 * idle_seconds < 0), -EBADF or setsockopt's -errno. */
WEFT_API WEFT_NODISCARD int weft_tcp_stream_set_keepalive(weft_tcp_stream *s, bool on,
                                                          int idle_seconds);
/* The peer's / the local address into `*addr`, its length into `*len`.
 * 0, -EINVAL (a NULL argument), -EBADF, or getpeername's / getsockname's
 * -errno (-ENOTCONN). Any thread. */
WEFT_API WEFT_NODISCARD int weft_tcp_stream_peer_addr(const weft_tcp_stream *s,
                                                      struct sockaddr_storage *addr,
                                                      socklen_t *len);
WEFT_API WEFT_NODISCARD int weft_tcp_stream_local_addr(const weft_tcp_stream *s,
                                                       struct sockaddr_storage *addr,
                                                       socklen_t *len);
/* Deregister and close the socket (the peer sees end of stream, or a
 * reset if unread data was left). No read or write on it may be pending:
 * drop the futures that use it first (a pending read or write is the
 * caller's bug: its registration is dropped with the fd). A stream not
 * open (closed already, or never connected) is left alone. Any thread. */
WEFT_API void weft_tcp_stream_close(weft_tcp_stream *s);

/* A listening socket. */
typedef struct weft_tcp_listener {
    weft_io io_;                   /* io_.sio_ NULL: not listening */
    WEFT_ATOMIC(unsigned) accepts_; /* accept futures polled and not done */
} weft_tcp_listener;

/* Make `l` a listening socket bound to `addr` (`len` bytes; AF_INET or
 * AF_INET6; port 0 picks a free port, see weft_tcp_listener_local_addr),
 * with SO_REUSEADDR, listening with `backlog` (0: SOMAXCONN), registered
 * with the current runtime's reactor. 0; -EINVAL (NULL, a length that
 * does not fit the family, another family, backlog < 0, or no current
 * runtime: reported as misuse); or socket / bind / listen's -errno
 * (-EADDRINUSE, -EACCES, -EMFILE ...), with nothing left open. Pair with
 * weft_tcp_listener_close. */
WEFT_API WEFT_NODISCARD int weft_tcp_listener_bind(weft_tcp_listener *l,
                                                   const struct sockaddr *addr, socklen_t len,
                                                   int backlog);
/* The same for a numeric IPv4 or IPv6 address ("127.0.0.1", "::1") and a
 * port: -EINVAL also for an address that is not one. */
WEFT_API WEFT_NODISCARD int weft_tcp_listen_ip(weft_tcp_listener *l, const char *ip,
                                               uint16_t port, int backlog);
/* The address it is bound to (the real port when bound to port 0). 0,
 * -EINVAL, -EBADF (not listening) or getsockname's -errno. Any thread. */
WEFT_API WEFT_NODISCARD int weft_tcp_listener_local_addr(const weft_tcp_listener *l,
                                                         struct sockaddr_storage *addr,
                                                         socklen_t *len);
/* Just the port (host order) it is bound to, or a negative errno as above. */
WEFT_API WEFT_NODISCARD int weft_tcp_listener_port(const weft_tcp_listener *l);
/* Deregister and close. The safe rule: it refuses while an accept future
 * on `l` has been polled and is neither complete nor dropped — -EBUSY,
 * reported as misuse, and the listener stays open and serving (drop or
 * finish the accept first; a closing fd under a waiting accept could not
 * be told apart from one reused). 0 when closed, or already not
 * listening; -EINVAL (NULL). Connections still in the backlog are reset.
 * Any thread, not concurrently with the first poll of an accept. */
WEFT_API WEFT_NODISCARD int weft_tcp_listener_close(weft_tcp_listener *l);

/* A future: accept one connection from `l` into the caller's `out`
 * (which must not be open; it is initialised only on success). Output int:
 * 0, with `out` an open stream (registered with the current runtime's
 * reactor); or a negative errno, with `out` untouched: -EINVAL (NULL,
 * reported as misuse); -EBADF (`l` not listening: closed, or never bound);
 * -EMFILE / -ENFILE (out of file descriptors: the connection stays in the
 * backlog and the listener keeps serving — back off, then accept again);
 * -ENOBUFS / -ENOMEM; -ENOMEM also if the new socket could not be
 * registered (that connection is closed). A connection reset while in the
 * backlog (ECONNABORTED) is skipped. One accept on `l` at a time. Send.
 * Cancel safety: nothing is lost: a connection leaves the backlog only in
 * the poll that completes with it, so after a drop it is there for the
 * next accept; the drop takes back its waker. */
typedef struct weft_tcp_accept {
    weft_future base;
    weft_tcp_listener *l_;
    weft_tcp_stream *out_;
    bool counted_; /* counted in l_->accepts_ */
    bool waiting_; /* left a waker with the listener */
} weft_tcp_accept;

WEFT_API void weft_tcp_accept_init(weft_tcp_accept *f, weft_tcp_listener *l,
                                   weft_tcp_stream *out);

/* A future: connect a new socket to `addr` (`len` bytes, copied at init;
 * AF_INET or AF_INET6) and, on success, make the caller's `out` an open
 * stream over it. Output int: 0; -EINVAL (NULL, a bad address or length:
 * reported as misuse); -ECONNREFUSED (nothing listens there); or
 * another -errno of socket / connect (-ENETUNREACH, -ETIMEDOUT ...).
 * With a deadline: put it in a weft_timeout (time.h), whose status is then
 * -ETIMEDOUT. Send. Cancel safety: dropped before it completed, it closes
 * the socket it made (a half-open connection is reset; nothing leaks) and
 * `out` is untouched. */
typedef struct weft_tcp_connect {
    weft_future base;
    weft_tcp_stream *out_;
    struct sockaddr_storage addr_;
    socklen_t len_; /* 0: a bad address given to init */
    bool waiting_;  /* left a waker with io_ */
    weft_io io_;    /* io_.sio_ non-NULL: the socket it owns */
} weft_tcp_connect;

WEFT_API void weft_tcp_connect_init(weft_tcp_connect *f, weft_tcp_stream *out,
                                    const struct sockaddr *addr, socklen_t len);
/* The same for a numeric IPv4 or IPv6 address and a port (a bad one:
 * the future completes with -EINVAL). */
WEFT_API void weft_tcp_connect_ip_init(weft_tcp_connect *f, weft_tcp_stream *out,
                                       const char *ip, uint16_t port);

/* Futures for one read and one write on a stream (the reader's and the
 * writer's poll through a future; io/bytes.c has the general ones).
 * weft_tcp_read: output int64_t, bytes read into buf (1..len), 0 at end of
 * stream, or -errno (-ECONNRESET, -EBADF: not open, -EINVAL: NULL or len
 * 0). weft_tcp_write: output int64_t, bytes sent (1..len) or -errno
 * (-EPIPE, -ECONNRESET, -EBADF, -EINVAL). Send. Cancel safety: nothing
 * lost — bytes leave the socket only in the poll that completes the read
 * with them, and a write takes bytes only in the poll that completes it
 * (dropped while pending: nothing was sent). */
typedef struct weft_tcp_io {
    weft_future base;
    weft_tcp_stream *s_;
    union {
        void *rd;
        const void *wr;
    } buf_;
    size_t len_;
} weft_tcp_io;

WEFT_API void weft_tcp_read_init(weft_tcp_io *f, weft_tcp_stream *s, void *buf, size_t len);
WEFT_API void weft_tcp_write_init(weft_tcp_io *f, weft_tcp_stream *s, const void *buf,
                                  size_t len);

/* ==== UDP ==================================================================== */
/* A UDP socket registered with the reactor of the runtime current where
 * it is bound (as for TCP). Datagrams go whole: a send takes the whole
 * datagram or fails (-EMSGSIZE: too large), and a receive returns one
 * datagram. Truncation is reported, not hidden: a receive's output is the
 * datagram's real length, so an output larger than the buffer means the
 * buffer holds its first `len` bytes and the rest was discarded (recv's
 * MSG_TRUNC). One sender and one receiver at a time (they may be
 * different tasks). The socket is the caller's, pinned from bind to close. */
typedef struct weft_udp_socket {
    weft_io io_; /* io_.sio_ NULL: not open */
} weft_udp_socket;

/* Make `s` a UDP socket bound to `addr` (AF_INET or AF_INET6; port 0: a
 * free port), registered with the current runtime's reactor. 0; -EINVAL
 * (NULL, a bad length or family, no current runtime: reported as misuse);
 * or socket / bind's -errno, with nothing left open. Pair with
 * weft_udp_close. */
WEFT_API WEFT_NODISCARD int weft_udp_bind(weft_udp_socket *s, const struct sockaddr *addr,
                                          socklen_t len);
/* The same for a numeric IPv4 or IPv6 address and a port. */
WEFT_API WEFT_NODISCARD int weft_udp_bind_ip(weft_udp_socket *s, const char *ip,
                                             uint16_t port);
/* Set the default peer (connect(2) on a datagram socket: immediate): send
 * without an address goes there, and only its datagrams are received. 0,
 * -EINVAL, -EBADF (not open) or connect's -errno. Then a datagram to a
 * port where nothing listens may make the next send or receive give
 * -ECONNREFUSED (the ICMP error, reported once). */
WEFT_API WEFT_NODISCARD int weft_udp_connect(weft_udp_socket *s, const struct sockaddr *addr,
                                             socklen_t len);
/* The bound address (the real port after port 0). 0, -EINVAL, -EBADF or
 * getsockname's -errno. Any thread. */
WEFT_API WEFT_NODISCARD int weft_udp_local_addr(const weft_udp_socket *s,
                                                struct sockaddr_storage *addr, socklen_t *len);
/* Just the bound port (host order), or a negative errno as above. */
WEFT_API WEFT_NODISCARD int weft_udp_port(const weft_udp_socket *s);
/* The socket (for options weft has no setter for), or -1 if not open. */
WEFT_API int weft_udp_fd(const weft_udp_socket *s);
/* Deregister and close. No send or receive may be pending on it (drop
 * their futures first). A socket not open is left alone. Any thread. */
WEFT_API void weft_udp_close(weft_udp_socket *s);

/* A future: send one datagram of `len` bytes (0 allowed) from `buf` to
 * `addr` (`len` bytes of address, copied at init), or, with `addr` NULL,
 * to the connected peer. Output int64_t: `len` (sent whole), or -errno:
 * -EINVAL (NULL socket, NULL buf with len > 0, a bad address: reported as
 * misuse), -EBADF (not open), -EMSGSIZE (too large for a datagram),
 * -EDESTADDRREQ (no address and not connected), -ECONNREFUSED (connected,
 * and an earlier datagram found no listener). Send. Cancel safety:
 * nothing lost — dropped while pending, the datagram was not sent (it is
 * sent only in the poll that completes). */
typedef struct weft_udp_send {
    weft_future base;
    weft_udp_socket *s_;
    const void *buf_;
    size_t len_;
    struct sockaddr_storage addr_;
    socklen_t addr_len_; /* 0: no address (connected) */
    bool bad_;           /* init was given a bad address */
} weft_udp_send;

WEFT_API void weft_udp_send_to_init(weft_udp_send *f, weft_udp_socket *s, const void *buf,
                                    size_t len, const struct sockaddr *addr, socklen_t addr_len);
WEFT_API void weft_udp_send_init(weft_udp_send *f, weft_udp_socket *s, const void *buf,
                                 size_t len);

/* A future: receive one datagram into `buf` (`len` bytes; 0 allowed: the
 * datagram is then only measured and discarded), its sender into `*from`
 * and `*from_len` (both NULL: not wanted — the connected form). Output
 * int64_t: the datagram's real length (> len: truncated, see above), or
 * -errno: -EINVAL (NULL socket, NULL buf with len > 0, only one of from /
 * from_len: reported as misuse), -EBADF (not open), -ECONNREFUSED
 * (connected, after a datagram found no listener). Send. Cancel safety:
 * nothing lost — a datagram leaves the socket only in the poll that
 * completes with it, so a dropped receive leaves it for the next. */
typedef struct weft_udp_recv {
    weft_future base;
    weft_udp_socket *s_;
    void *buf_;
    size_t len_;
    struct sockaddr_storage *from_;
    socklen_t *from_len_;
} weft_udp_recv;

WEFT_API void weft_udp_recv_from_init(weft_udp_recv *f, weft_udp_socket *s, void *buf,
                                      size_t len, struct sockaddr_storage *from,
                                      socklen_t *from_len);
WEFT_API void weft_udp_recv_init(weft_udp_recv *f, weft_udp_socket *s, void *buf, size_t len);

/* ==== signals ================================================================= */
/* (see io/signal.c) */

#ifdef __cplusplus
}
#endif
#endif /* WEFT_IO_H */
