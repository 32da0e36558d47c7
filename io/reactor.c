/* The reactor: epoll set, readiness words, the role (see reactor.h). */
#include "io/reactor.h"
#include "core/alloc.h"
#include "core/errors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <unistd.h>

static _Thread_local weft__reactor *tl_reactor;

weft__reactor *weft__reactor_current(void)
{
    return tl_reactor;
}

weft__reactor *weft__reactor_enter(weft__reactor *r)
{
    weft__reactor *prev = tl_reactor;
    tl_reactor = r;
    return prev;
}

int weft__reactor_init(weft__reactor *r)
{
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0)
        return -errno;
    r->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->evfd < 0) {
        int err = -errno;
        close(r->epfd);
        return err;
    }
    /* The eventfd's events carry a NULL pointer: that is how dispatch
     * tells a wake-up from an fd. */
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = NULL };
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) != 0) {
        int err = -errno;
        close(r->evfd);
        close(r->epfd);
        return err;
    }
    weft_atomic_init(&r->role, false);
    weft_atomic_init(&r->released, NULL);
    r->freeing = NULL;
    r->nevents = 0;
    r->woken = false;
    weft_atomic_init(&r->registered, 0);
    weft_atomic_init(&r->turns, 0);
    weft_atomic_init(&r->dispatched, 0);
    weft_atomic_init(&r->wakeups, 0);
    return 0;
}

static void free_list(weft__sio *s)
{
    while (s) {
        weft__sio *next = s->next_released;
        weft_atomic_waker_fini(&s->rd);
        weft_atomic_waker_fini(&s->wr);
        weft__free(s);
        s = next;
    }
}

void weft__reactor_fini(weft__reactor *r)
{
    free_list(r->freeing);
    /* Acquire: the deregistering threads' writes to the sios. */
    free_list(weft_atomic_swap_acquire(&r->released, NULL));
    close(r->evfd);
    close(r->epfd);
}

int weft__reactor_register(weft__reactor *r, int fd, weft__sio **out)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -errno;
    weft__sio *s = weft__alloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    weft_atomic_init(&s->ready, 0);
    weft_atomic_waker_init(&s->rd);
    weft_atomic_waker_init(&s->wr);
    s->fd = fd;
    s->next_released = NULL;
    /* Both directions, edge-triggered, once: readiness then only changes
     * by events (dispatch) and clears (the operations). An fd ready at
     * registration is reported by the next wait. */
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET, .data.ptr = s,
    };
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int err = -errno;
        weft__free(s);
        return err;
    }
    /* Relaxed: a count read as a hint (poll_reactor, the sim's io_turn);
     * the fd's events do not depend on it. */
    weft_atomic_fetch_add_relaxed(&r->registered, 1);
    *out = s;
    return 0;
}

/* Drop the waker registered for one direction, if any (a dispatch may
 * be waking it at the same time: take is safe against that). */
static void drop_waker(weft_atomic_waker *aw)
{
    weft_waker w;
    if (weft_atomic_waker_take(aw, &w))
        weft_waker_drop(&w);
}

void weft__sio_forget(weft__sio *s, uint32_t dir)
{
    drop_waker(dir == WEFT_IO_READ ? &s->rd : &s->wr);
}

void weft__reactor_deregister(weft__reactor *r, weft__sio *s)
{
    /* ENOENT / EBADF: the fd was closed first, which removed it. */
    (void)epoll_ctl(r->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    /* The wakers go now (they hold tasks); the memory after a turn. */
    drop_waker(&s->rd);
    drop_waker(&s->wr);
    /* Relaxed: the hint count, as in register. */
    weft_atomic_fetch_sub_relaxed(&r->registered, 1);
    /* Relaxed: a first guess for the CAS, which releases. */
    weft__sio *head = weft_atomic_load_relaxed(&r->released);
    do {
        s->next_released = head;
        /* Release: the role holder that takes the stack (acquire) sees
         * the link and everything the owner did with the sio. */
    } while (!weft_atomic_cas_weak_release(&r->released, &head, s));
}

int weft__reactor_wait(weft__reactor *r, uint64_t timeout_ns)
{
    /* What was released before this wait is freed after its dispatch: the
     * wait cannot return it (deleted before), see reactor.h. Acquire:
     * pairs with the release push in deregister. */
    weft__sio *took = weft_atomic_swap_acquire(&r->released, NULL);
    if (took) {
        weft__sio *tail = took;
        while (tail->next_released)
            tail = tail->next_released;
        tail->next_released = r->freeing;
        r->freeing = took;
    }
    int ms;
    if (timeout_ns == UINT64_MAX)
        ms = -1;
    else if (timeout_ns / 1000000u >= (uint64_t)INT_MAX)
        ms = INT_MAX;
    else
        ms = (int)((timeout_ns + 999999u) / 1000000u); /* never early: round up */
    int n = epoll_wait(r->epfd, r->events, WEFT__REACTOR_EVENTS, ms);
    if (n < 0) {
        if (errno != EINTR)
            WEFT_DIE("epoll_wait");
        n = 0;
    }
    r->nevents = n;
    /* Relaxed load + store: only the role holder writes the counter. */
    weft_atomic_store_relaxed(&r->turns, weft_atomic_load_relaxed(&r->turns) + 1);
    return n;
}

/* The readiness an epoll event means. */
static uint32_t readiness_of(uint32_t ev)
{
    uint32_t b = 0;
    if (ev & (EPOLLIN | EPOLLPRI))
        b |= WEFT_IO_READABLE;
    if (ev & EPOLLOUT)
        b |= WEFT_IO_WRITABLE;
    if (ev & EPOLLRDHUP)
        b |= WEFT_IO_READABLE | WEFT_IO_READ_CLOSED;
    if (ev & EPOLLHUP)
        b |= WEFT_IO_READABLE | WEFT_IO_WRITABLE | WEFT_IO_READ_CLOSED | WEFT_IO_WRITE_CLOSED;
    if (ev & EPOLLERR)
        b |= WEFT_IO_READABLE | WEFT_IO_WRITABLE | WEFT_IO_ERROR;
    return b;
}

void weft__reactor_dispatch(weft__reactor *r)
{
    int n = r->nevents;
    r->nevents = 0;
    for (int i = 0; i < n; i++) {
        weft__sio *s = r->events[i].data.ptr;
        if (!s) {
            uint64_t v;
            /* Reset the counter; EAGAIN: another turn read it. */
            (void)!read(r->evfd, &v, sizeof v);
            r->woken = true;
            continue;
        }
        uint32_t bits = readiness_of(r->events[i].events);
        /* Relaxed: a first guess for the CAS below. */
        uint64_t cur = weft_atomic_load_relaxed(&s->ready), next;
        do {
            next = (((cur >> 32) + 1) << 32) | ((cur & WEFT__IO_BITS) | bits);
            /* AcqRel: release publishes the readiness to the operation
             * that reads it after its waker is woken (or that reads it
             * first, then need not wait); acquire orders this update after
             * a clear it raced with. */
        } while (!weft_atomic_cas_weak_acq_rel(&s->ready, &cur, next));
        if (bits & WEFT__IO_READ_MASK)
            weft_atomic_waker_wake(&s->rd);
        if (bits & WEFT__IO_WRITE_MASK)
            weft_atomic_waker_wake(&s->wr);
    }
    /* Relaxed load + store: only the role holder writes the counter. */
    weft_atomic_store_relaxed(&r->dispatched,
                              weft_atomic_load_relaxed(&r->dispatched) + (uint64_t)n);
    free_list(r->freeing);
    r->freeing = NULL;
}

void weft__reactor_wake(weft__reactor *r)
{
    uint64_t one = 1;
    /* Relaxed: a counter (a sample for tests). */
    weft_atomic_fetch_add_relaxed(&r->wakeups, 1);
    /* EAGAIN: the counter is full, so a wake-up is pending anyway. */
    (void)!write(r->evfd, &one, sizeof one);
}

uint64_t weft__sio_poll_ready(weft__sio *s, weft_cx *cx, uint32_t dir)
{
    uint32_t mask = dir == WEFT_IO_READ ? WEFT__IO_READ_MASK : WEFT__IO_WRITE_MASK;
    /* Acquire: pairs with dispatch's release, so the data the event
     * announced is there for the syscall that follows. */
    uint64_t cur = weft_atomic_load_acquire(&s->ready);
    if (cur & mask)
        return cur;
    weft_atomic_waker_register(dir == WEFT_IO_READ ? &s->rd : &s->wr, cx->waker);
    /* Again after registering: an event dispatched before the waker was
     * there did not wake it (the atomic waker's register and wake order
     * the two sides). */
    cur = weft_atomic_load_acquire(&s->ready);
    return (cur & mask) ? cur : 0;
}

void weft__sio_clear(weft__sio *s, uint64_t observed, uint32_t bits)
{
    /* Relaxed: a first guess for the CAS below. */
    uint64_t cur = weft_atomic_load_relaxed(&s->ready);
    while ((cur >> 32) == (observed >> 32)) {
        /* Relaxed: a clear publishes nothing; the tick comparison is the
         * whole point (a newer event keeps its bits). */
        if (weft_atomic_cas_weak_relaxed(&s->ready, &cur, cur & ~(uint64_t)bits))
            return;
    }
}
