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

#include "weft/common.h"
#include "weft/future.h"
#include "weft/rt.h" /* weft_join, in the blocking helpers */

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
/* (see io/tcp.c) */

/* ==== UDP ==================================================================== */
/* (see io/udp.c) */

/* ==== signals ================================================================= */
/* (see io/signal.c) */

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
