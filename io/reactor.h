/* Private: the I/O reactor of one runtime — an edge-triggered epoll set,
 * per-fd readiness, and the role of whoever waits on it.
 *
 * Per fd, a weft__sio (tokio's ScheduledIo): one readiness word and a
 * waker per direction. The fd is registered once, for read and write,
 * edge-triggered; each event the reactor sees is OR-ed into the word with
 * a fresh tick. An operation tries its syscall first; on EAGAIN it clears
 * the readiness it acted on — only if no newer event came since (the tick
 * is unchanged), so a clear never erases a newer event — and waits.
 *
 * The role. One thread at a time waits in epoll_wait and dispatches what
 * it returns (wait, then dispatch): a worker parking (it waits with the
 * timer driver's deadline as its timeout, so one park serves timers and
 * I/O), a busy worker now and then (a zero timeout), or the sim runtime's
 * thread. An unpark of a worker parked in the reactor writes the
 * eventfd. The role is one atomic flag (try_acquire / release).
 *
 * Lifetime of a weft__sio. Its owner deregisters it (epoll_ctl DEL, then
 * onto the released stack). A wait returned by epoll before the DEL may
 * still hold its address, so it is freed only by the role holder, after a
 * turn that took it off the stack before its epoll_wait: that wait cannot
 * return it (it was deleted before), and the turns before it were
 * dispatched already (the role is held for a whole turn).
 *
 * Concurrency: register and deregister from any thread; poll_ready by the
 * one reader (READ) and the one writer (WRITE) of the fd at a time; the
 * rest by the role holder. */
#ifndef WEFT_IO_REACTOR_H
#define WEFT_IO_REACTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "weft/future.h"
#include "weft/io.h"
#include "core/atomic.h"

/* Readiness bits (the low 32 bits of the word) are the public
 * WEFT_IO_READABLE ... WEFT_IO_ERROR; the high 32 bits count the events
 * (the tick). */
#define WEFT__IO_BITS 0xffffffffu
#define WEFT__IO_READ_MASK (WEFT_IO_READABLE | WEFT_IO_READ_CLOSED | WEFT_IO_ERROR)
#define WEFT__IO_WRITE_MASK (WEFT_IO_WRITABLE | WEFT_IO_WRITE_CLOSED | WEFT_IO_ERROR)

typedef struct weft__sio {
    WEFT_ATOMIC(uint64_t) ready; /* tick << 32 | readiness bits */
    weft_atomic_waker rd, wr;
    int fd;
    struct weft__sio *next_released;
} weft__sio;

#define WEFT__REACTOR_EVENTS 256

typedef struct weft__reactor weft__reactor;
struct weft__reactor {
    int epfd, evfd;
    WEFT_ATOMIC(bool) role;
    _Atomic(weft__sio *) released; /* a stack pushed from any thread */
    /* The role holder's: what this turn frees after its dispatch, and
     * what its epoll_wait returned. */
    weft__sio *freeing;
    int nevents;
    bool woken; /* the eventfd was among them */
    struct epoll_event events[WEFT__REACTOR_EVENTS];
    /* Counters (relaxed: samples). */
    WEFT_ATOMIC(uint64_t) registered, turns, dispatched, wakeups;
};

/* 0, or a negative errno (epoll or eventfd could not be made). */
int weft__reactor_init(weft__reactor *r);
/* Frees every sio still released; no thread may use `r` any more. */
void weft__reactor_fini(weft__reactor *r);

/* Register `fd` (made non-blocking) for read and write, edge-triggered.
 * 0 and *out, or -ENOMEM, or epoll_ctl's error (-EPERM: a regular file or
 * a directory, which epoll cannot watch; -EBADF; -EEXIST). */
int weft__reactor_register(weft__reactor *r, int fd, weft__sio **out);
/* Stop watching the fd (before it is closed); the sio is freed later.
 * No operation on it may be pending; its wakers are dropped. */
void weft__reactor_deregister(weft__reactor *r, weft__sio *s);

/* The role: true if this thread now holds it. */
static inline bool weft__reactor_try_acquire(weft__reactor *r)
{
    bool free_ = false;
    /* Acquire: see the previous holder's turn (its events buffer, its
     * frees); pairs with the release in weft__reactor_release. */
    return weft_atomic_cas_strong_acquire(&r->role, &free_, true);
}
static inline void weft__reactor_release(weft__reactor *r)
{
    /* Release: hand the turn's state to the next holder. */
    weft_atomic_store_release(&r->role, false);
}

/* Role holder: wait up to `timeout_ns` (0: just look; UINT64_MAX: no
 * limit) for events. Returns how many came (the eventfd included). */
int weft__reactor_wait(weft__reactor *r, uint64_t timeout_ns);
/* Role holder, after a wait: set the readiness of each fd that had an
 * event and wake its waiters, then free what the turn took off the
 * released stack. */
void weft__reactor_dispatch(weft__reactor *r);
/* Any thread: make a wait in progress (or the next one) return. */
void weft__reactor_wake(weft__reactor *r);

/* The reader (READ) or writer (WRITE) of the fd: the readiness word when
 * any bit of `mask` is set; else 0, having registered cx's waker for that
 * direction. */
uint64_t weft__sio_poll_ready(weft__sio *s, weft_cx *cx, uint32_t dir);
/* Drop the waker registered for `dir` (a future that waited is dropped). */
void weft__sio_forget(weft__sio *s, uint32_t dir);
/* After an operation got EAGAIN having seen `observed` (a word from
 * poll_ready): clear `bits` unless an event came since. */
void weft__sio_clear(weft__sio *s, uint64_t observed, uint32_t bits);

/* After a syscall in direction `dir` said EAGAIN: clear that readiness
 * and look again. True: try the syscall again (an event came meanwhile);
 * false: cx's waker is registered, answer PENDING. */
bool weft__io_again(weft_io *io, weft_cx *cx, uint32_t dir);

/* The reactor of the runtime the calling thread runs (a worker, a sim,
 * block_on's thread), or NULL; and making `r` that (returns the
 * previous), as weft__timers_enter does for the timers. */
weft__reactor *weft__reactor_current(void);
weft__reactor *weft__reactor_enter(weft__reactor *r);

#endif
