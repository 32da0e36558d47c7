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
#include "weft/iter.h" /* weft_stream, in the signals */
#include "weft/rt.h"   /* weft_join, in the blocking helpers */

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

/* The futures below work over any reader or writer (io/bytes.c). Each is
 * Send, a leaf, and initialised into caller storage; once polled it must
 * not move, and the reader, writer and buffers it was given must stay put
 * until it is dropped. Any thread may poll it (one at a time, as any
 * future); `len` 0 completes at once with 0 and calls nothing. A NULL
 * reader or writer, a reader or writer without ops, or a NULL buffer with
 * `len` > 0 is misuse: reported by name in debug builds, and the future
 * completes with -EINVAL. A reader or writer that breaks its contract (a
 * read of more than asked, a write of 0 bytes) ends the future with -EIO.
 *
 * A dropped read may leave the waker of its last poll with the reader (a
 * registered fd keeps it until its next read or its deregistration): at
 * most one spurious wake later, nothing lost. */

/* Read some: output int64_t, the bytes read into buf (1..len), 0 at end
 * of stream, or the reader's negative errno. Cancel safety: nothing lost
 * (bytes leave the reader only in the poll that completes the future). */
typedef struct weft_read {
    weft_future base;
    weft_reader *r_;
    void *buf_;
    size_t len_;
} weft_read;
WEFT_API void weft_read_init(weft_read *f, weft_reader *r, void *buf, size_t len);

/* Fill buf with exactly `len` bytes: output int, 0 once all came, -ENODATA
 * when the stream ended first (EOF mid-read), or the reader's negative
 * errno. `done` counts the bytes in buf[0, done) so far, on success and
 * on error alike. Cancel safety: nothing lost — every byte read is in
 * buf[0, done), which the caller reads after dropping the future (or
 * hands to a new read_exact of buf + done, len - done). */
typedef struct weft_read_exact {
    weft_future base;
    weft_reader *r_;
    unsigned char *buf_;
    size_t len_;
    size_t done; /* bytes read into buf so far: the caller's to read */
} weft_read_exact;
WEFT_API void weft_read_exact_init(weft_read_exact *f, weft_reader *r, void *buf, size_t len);

/* Write some: output int64_t, the bytes taken from buf (1..len) or the
 * writer's negative errno (-EPIPE: the peer is gone). Cancel safety:
 * nothing lost (a pending write took nothing). */
typedef struct weft_write {
    weft_future base;
    weft_writer *w_;
    const void *buf_;
    size_t len_;
} weft_write;
WEFT_API void weft_write_init(weft_write *f, weft_writer *w, const void *buf, size_t len);

/* Write all of buf: output int, 0 once the writer took all `len` bytes,
 * or the writer's negative errno. `done` counts the bytes taken so far
 * (buf[0, done) went to the writer), on success and on error alike.
 * Cancel safety: a dropped write_all has written exactly buf[0, done) —
 * it reports nothing written only if nothing was; the rest was never
 * handed on. It does not flush (weft_flush). */
typedef struct weft_write_all {
    weft_future base;
    weft_writer *w_;
    const unsigned char *buf_;
    size_t len_;
    size_t done; /* bytes the writer took so far */
} weft_write_all;
WEFT_API void weft_write_all_init(weft_write_all *f, weft_writer *w, const void *buf,
                                  size_t len);

/* Flush: output int, 0 once everything the writer took is handed on (at
 * once for a writer without poll_flush), or its negative errno.
 * weft_shutdown_write: flush, then close the write side (a FIN on a
 * socket); output int, 0 or the writer's negative errno (a writer without
 * poll_shutdown has nothing to close: a flush, then 0). Cancel safety:
 * nothing of the caller's is lost; what the writer already handed on
 * stays handed on, and a later flush or shutdown resumes. */
typedef struct weft_flush {
    weft_future base;
    weft_writer *w_;
    bool shutdown_;
} weft_flush;
WEFT_API void weft_flush_init(weft_flush *f, weft_writer *w);
WEFT_API void weft_shutdown_write_init(weft_flush *f, weft_writer *w);

/* Copy from `r` to `w` until `r` ends, through the caller's buffer `buf`
 * (`buf_size` > 0 bytes), then flush `w`: output int64_t, the total
 * written, or the first negative errno of either side (`written` then
 * says how far it got). It also flushes `w` while `r` has nothing to give,
 * so a buffered writer does not hold bytes back while the copy waits.
 * Bytes read but not written yet stay in buf across polls: they are
 * buf[weft_copy_pending_offset(f), + weft_copy_pending(f)).
 * Cancel safety: a dropped copy has handed `written` bytes to `w`; what
 * it read from `r` and not written — weft_copy_pending(f) bytes, still in
 * buf — is lost to the stream unless the caller takes it from buf before
 * reusing it (nothing else is lost: no byte is read without a place in
 * buf). */
typedef struct weft_copy {
    weft_future base;
    weft_reader *r_;
    weft_writer *w_;
    unsigned char *buf_;
    size_t cap_, pos_, end_; /* buf_[pos_, end_): read, not yet written */
    bool eof_, need_flush_;
    uint64_t written; /* bytes the writer took so far */
} weft_copy;
WEFT_API void weft_copy_init(weft_copy *f, weft_reader *r, weft_writer *w, void *buf,
                             size_t buf_size);
/* Bytes the copy read from its reader and has not written yet, and where
 * they start in its buffer. Any time the copy is not being polled. */
WEFT_API size_t weft_copy_pending(const weft_copy *f);
WEFT_API size_t weft_copy_pending_offset(const weft_copy *f);

/* A buffered reader: a reader itself (`reader`, its first member), over
 * `inner`, with the caller's buffer `buf` of `cap` > 0 bytes. Reads go
 * through the buffer (a read of at least `cap` bytes with nothing
 * buffered goes straight to `inner`). The state a line read needs lives
 * here, not in the future, so weft_read_line is cancel-safe.
 * weft_bufreader_init: 0, or -EINVAL (NULL arguments, an inner reader
 * without ops, cap 0; reported). Pair with nothing: it owns no resource
 * (the buffer and `inner` stay the caller's, and must outlive it). Once
 * used it must not move. One reader at a time, any thread. */
typedef struct weft_bufreader {
    weft_reader reader; /* first member: (weft_reader *)b is b */
    weft_reader *inner_;
    unsigned char *buf_;
    size_t cap_, pos_, end_; /* buf_[pos_, end_): buffered, not consumed */
} weft_bufreader;
WEFT_API WEFT_NODISCARD int weft_bufreader_init(weft_bufreader *b, weft_reader *inner,
                                                void *buf, size_t cap);
/* The bytes buffered and not consumed yet: *data (valid until the next
 * read or fill) and the count. */
WEFT_API size_t weft_bufreader_buffered(const weft_bufreader *b, const void **data);
/* Mark `n` buffered bytes consumed (n ≤ buffered; more is misuse,
 * reported, and consumes what there is). */
WEFT_API void weft_bufreader_consume(weft_bufreader *b, size_t n);
/* The poll-function form of tokio's fill_buf: READY with *res = bytes
 * buffered (reading from `inner` first when none are; 0 at end of
 * stream) or `inner`'s negative errno; PENDING with a wake arranged. */
WEFT_API weft_poll weft_bufreader_poll_fill(weft_bufreader *b, weft_cx *cx, int64_t *res);

/* Read one line, up to and including its '\n', into `line` (`cap` bytes;
 * not NUL-terminated): output int64_t, the line's length; the last line
 * of a stream may lack its '\n'; 0 at end of stream; -ENOBUFS when no
 * '\n' comes within the first min(cap, the bufreader's capacity) bytes —
 * nothing is consumed then: the bytes stay in the bufreader (read them
 * with weft_read, or weft_bufreader_consume them); or the inner reader's
 * negative errno. The line is consumed from the bufreader only in the
 * poll that completes the future.
 * Cancel safety: nothing lost. A partial line waits in the bufreader, not
 * in the future, so a dropped read_line's bytes are the next read_line's
 * (tokio's read_line keeps them in the future and loses them). */
typedef struct weft_read_line {
    weft_future base;
    weft_bufreader *b_;
    char *line_;
    size_t cap_;
    size_t scanned_; /* buffered bytes known to hold no '\n' */
} weft_read_line;
WEFT_API void weft_read_line_init(weft_read_line *f, weft_bufreader *b, char *line,
                                  size_t cap);

/* ==== fd streams ============================================================= */
/* A reader and a writer over a registered fd that is not a regular file
 * (a pipe, a socketpair, a tty, a socket of your own): `reader` and
 * `writer` plug it into the futures above. poll_read is read(2); poll_write
 * is send(2) with MSG_NOSIGNAL on a socket and write(2) otherwise, with
 * SIGPIPE blocked on the calling thread around the write and a SIGPIPE it
 * raised taken back, so weft never raises SIGPIPE: a write to a closed
 * peer is -EPIPE. poll_flush is NULL (nothing buffered); poll_shutdown is
 * shutdown(SHUT_WR) on a socket and -ENOTSUP otherwise (close a pipe's
 * write end with weft_fd_stream_fini and WEFT_FD_STREAM_CLOSE).
 *
 * weft_fd_stream_init: registers `fd` (made non-blocking) with the
 * current runtime's reactor, so it must run where weft_io_register may: on
 * a task, or a future under weft_block_on or a sim run. 0, or -EINVAL
 * (NULL, fd < 0, unknown flags, no current runtime; reported), or
 * weft_io_register's error (-EPERM: a regular file). Pair with
 * weft_fd_stream_fini: deregisters (no read or write of the stream may be
 * pending; dropped futures are fine) and, with WEFT_FD_STREAM_CLOSE,
 * closes the fd; any thread. One reader and one writer at a time. */
#define WEFT_FD_STREAM_CLOSE 0x1u /* weft_fd_stream_fini closes the fd */

typedef struct weft_fd_stream {
    weft_reader reader; /* first member */
    weft_writer writer;
    weft_io io;
    unsigned flags_;
    bool socket_;
} weft_fd_stream;

WEFT_API WEFT_NODISCARD int weft_fd_stream_init(weft_fd_stream *s, int fd, unsigned flags);
WEFT_API void weft_fd_stream_fini(weft_fd_stream *s);

/* A pipe as two fd streams (rd: its read end, wr: its write end), both
 * owning their fd (WEFT_FD_STREAM_CLOSE) and close-on-exec. Where
 * weft_fd_stream_init may run. 0, -EINVAL (NULL; reported), pipe2's
 * -EMFILE / -ENFILE, or init's error (nothing left open). Pair each with
 * weft_fd_stream_fini. */
WEFT_API WEFT_NODISCARD int weft_pipe(weft_fd_stream *rd, weft_fd_stream *wr);

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
/* Unix signals as futures (tokio's signal()), through one signalfd for
 * the process, watched by the reactor of each runtime that has waiters;
 * open only while a waiter exists (io/signal.c).
 *
 * The process-wide rule: a signal reaches the signalfd only while it is
 * blocked in every thread; otherwise the kernel delivers it to a thread
 * that has it unblocked (SIGINT's default action ends the process). Block
 * the signals with weft_signal_block early in main, before any thread is
 * created: threads inherit the mask, so the runtime's workers and your own
 * threads keep them blocked. A waiter whose thread has one of its signals
 * unblocked reports -EINVAL (misuse) rather than wait for nothing.
 * Send signals to the process (kill(getpid(), sig), or from outside):
 * raise() and pthread_kill() direct a signal at one thread, and only that
 * thread could read it.
 *
 * Delivery: broadcast. Every waiter present when a signal arrives (joined
 * by its first poll) sees it, once. A signal that arrives while no waiter
 * for it exists is kept — once, like the kernel's pending bit, which merges
 * repeats — and the next waiter for it sees it at its first poll. A waiter
 * dropped after a signal came for it but before it returned it gives it
 * back the same way, unless another waiter returned that arrival or still
 * holds it. Repeats of a signal between two polls of one waiter merge into
 * one.
 *
 * Signal numbers: 1..64, not SIGKILL or SIGSTOP; at most WEFT_SIGNAL_MAX
 * per waiter. */
#define WEFT_SIGNAL_MAX 8

/* Block `sigs[0..n)` in the calling thread (pthread_sigmask SIG_BLOCK).
 * Call it at the top of main, before weft_rt_new and any pthread_create.
 * 0, -EINVAL (NULL with n > 0, a number out of range, SIGKILL/SIGSTOP),
 * or pthread_sigmask's error. Any thread. */
WEFT_API WEFT_NODISCARD int weft_signal_block(const int *sigs, size_t n);

/* One waiter's place in the process-wide signal hub (private). */
struct weft__sigreg;
typedef struct weft__sigwaiter {
    struct weft__sigwaiter *prev_, *next_;
    struct weft__sigreg *reg_; /* the registration with its reactor */
    uint64_t set_;             /* bit (sig - 1) per signal waited for */
    uint64_t got_;             /* arrived, not yet returned */
    weft_waker waker_;
    uint32_t state_;
    int bad_; /* 0, or the number that made the init fail */
} weft__sigwaiter;

/* A future: completes when one of the signals arrives. Output int: the
 * signal number (the lowest, if several came; the others are given back
 * as on a drop), or -EINVAL (bad signals; a signal not blocked in the
 * polling thread; no current runtime), or -ENOMEM / signalfd's error.
 * Send. Any task, or a future under weft_block_on. It must not move after
 * its first poll; drop it (weft_future_drop) if it does not complete.
 * Cancel safety: nothing is lost. Dropped before its signal came, it
 * took nothing; dropped after (woken, not yet polled), it gives the signal
 * back for the next waiter unless another waiter returned it or holds it. */
typedef struct weft_signal {
    weft_future base;
    weft__sigwaiter w_;
} weft_signal;

/* `sigs[0..n)` are copied; bad input is reported by the first poll. */
WEFT_API void weft_signal_init(weft_signal *f, const int *sigs, size_t n);
/* The same for SIGINT alone (tokio's ctrl_c). */
WEFT_API void weft_ctrl_c_init(weft_signal *f);

/* A stream of int: each arrival of one of the signals is an item (the
 * signal number). It waits from its first poll_next until it is dropped,
 * so no arrival between two nexts is missed (repeats before the next poll
 * merge into one). A bad init yields one item, -EINVAL, then DONE. Send.
 * Drop it with weft_stream_drop. Cancel safety: as weft_signal; a
 * pending next that is abandoned loses nothing (the stream keeps what
 * came). */
typedef struct weft_signal_stream {
    weft_stream base;
    weft__sigwaiter w_;
} weft_signal_stream;

WEFT_API void weft_signal_stream_init(weft_signal_stream *s, const int *sigs, size_t n);

/* ==== blocking helpers ======================================================== */

/* Futures that run a blocking call (getaddrinfo, file I/O: epoll cannot
 * wait for a regular file) on the runtime's blocking pool
 * (weft_spawn_blocking, weft/rt.h), polled from a task or a future under
 * weft_block_on or a sim run (the current runtime's pool). The call is
 * handed to the pool at the first poll. They borrow their arguments
 * (host, path, buffers) until they complete or are dropped, and write the
 * caller's buffer only in the poll that returns READY.
 * Cancel safety (all of them): dropping one while pending cancels its
 * job: a job still queued never runs; a running one runs to the end on
 * its thread and its result is discarded (a write_all dropped then may
 * still have written the file). Nothing is written to the caller's
 * buffers after the drop. Send. */

/* Most addresses a weft_resolve returns. */
#define WEFT_RESOLVE_MAX 16u
/* Longest host name weft_resolve takes. */
#define WEFT_RESOLVE_HOST_MAX 255u

/* weft_resolve flags. */
#define WEFT_RESOLVE_NUMERIC 0x1u /* numeric addresses only: no lookup at all */
#define WEFT_RESOLVE_IPV4 0x2u    /* IPv4 addresses only */
#define WEFT_RESOLVE_IPV6 0x4u    /* IPv6 addresses only */

struct sockaddr_storage;

/* Resolve a host name (getaddrinfo, SOCK_STREAM, AF_UNSPEC unless a flag
 * says) into up to `cap` addresses (and at most WEFT_RESOLVE_MAX) with
 * `port` set, in getaddrinfo's order. Output (int): the number of
 * addresses stored in `addrs` (>= 1), or a negative errno:
 *   EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY, or no address -> -ENOENT
 *     (no such host, or none of the family asked for)
 *   EAI_AGAIN                                  -> -EAGAIN (try again)
 *   EAI_FAIL                                   -> -EIO
 *   EAI_MEMORY                                 -> -ENOMEM
 *   EAI_SYSTEM                                 -> -errno of the call
 *   EAI_FAMILY, EAI_SOCKTYPE, EAI_SERVICE, EAI_BADFLAGS -> -EINVAL
 *   anything else                              -> -EIO
 * and -EINVAL for bad input (NULL or empty host, a host longer than
 * WEFT_RESOLVE_HOST_MAX, addrs NULL or cap 0, unknown flags, both IPV4 and
 * IPV6: reported as misuse), -ECANCELED when the lookup job was cancelled
 * (shutdown, or no pool thread could be started), -ENOMEM. */
typedef struct weft_resolve {
    weft_future base;
    const char *host;
    struct sockaddr_storage *addrs;
    size_t cap;
    uint16_t port;
    unsigned flags;
    int state_;
    weft_join join_;
} weft_resolve;

WEFT_API void weft_resolve_init(weft_resolve *r, const char *host, uint16_t port,
                                unsigned flags, struct sockaddr_storage *addrs, size_t cap);

/* A whole-file read or write on the blocking pool. Output (int64_t):
 *  - weft_file_read_all: the file's size, its bytes copied to `buf`, or
 *    -EFBIG when it has more than `cap` bytes (nothing copied), or the
 *    -errno of open/read;
 *  - weft_file_write_all: `len` once every byte was written to `path`
 *    (created with mode 0666 & ~umask, or truncated; not fsync'ed), or the
 *    -errno of open/write (a failed write may leave the file partly
 *    written).
 * -EINVAL for bad input (NULL path, buf NULL with cap/len > 0: reported as
 * misuse), -ECANCELED (the job was cancelled), -ENOMEM. */
typedef struct weft_file_io {
    weft_future base;
    const char *path;
    void *buf;
    size_t len;
    int kind_, state_;
    struct weft__file_op *op_;
    weft_join join_;
} weft_file_io;

WEFT_API void weft_file_read_all_init(weft_file_io *f, const char *path, void *buf, size_t cap);
WEFT_API void weft_file_write_all_init(weft_file_io *f, const char *path, const void *data,
                                       size_t len);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_IO_H */
