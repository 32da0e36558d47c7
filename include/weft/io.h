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
#include "weft/iter.h"

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

#ifdef __cplusplus
}
#endif
#endif /* WEFT_IO_H */
