/* Signals as futures and streams (weft/io.h, "signals"), through one
 * process-wide signalfd.
 *
 * The hub. Signals are a process-wide resource, so their state is too: one
 * mutex-protected hub holds the signalfd (made by the first waiter, its
 * mask the union of the signals waited for since, closed with the last
 * waiter), the list of waiters, the signals kept for the next waiter, and
 * one registration of the fd per reactor that has waiters (the same fd in
 * several epoll sets; each reactor's waiters are woken by their own
 * reactor).
 *
 * A poll, under the hub's lock: join the hub on the first poll (take the
 * kept signals of the waiter's set); drain the signalfd (read until
 * EAGAIN), delivering each signal read to every waiter whose set has it —
 * their `got` bit, and a wake — or keeping it when none has; return a
 * signal from `got`, or wait: store the task's waker in the waiter, and
 * leave it in the fd's registration too (weft_io_poll_ready; one reader
 * waker per fd, so the last waiter to wait is the registration's watcher).
 *
 * Leaving (a future completes or is dropped, a stream is dropped): unlink;
 * a watcher takes its waker back from the fd and wakes another waiter of
 * the same reactor, which becomes the watcher at its poll (a wake is
 * passed on, never lost); a signal received but not returned is kept if
 * no other waiter returned it or still holds it; the last waiter of a reactor
 * deregisters the fd, the last waiter of all closes it (a signal that
 * arrives then stays pending in the kernel, since it is blocked, and the
 * next signalfd reads it).
 *
 * Concurrency: everything above runs under hub.mu, from any thread. Wakes
 * under the lock only schedule (a waker never runs user code inline). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "weft/io.h"
#include "core/alloc.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "io/reactor.h"
#include "io/signal.h"

#define SIG_BIT(s) ((uint64_t)1 << ((s) - 1))

enum { W_NEW, W_JOINED, W_DONE };

typedef struct weft__sigreg {
    struct weft__sigreg *next;
    weft__reactor *reactor;
    weft_io io;
    unsigned users;
    weft__sigwaiter *watcher; /* whose waker the fd holds, or NULL */
} sigreg;

static struct {
    pthread_mutex_t mu;
    int fd;        /* the signalfd, or -1 */
    uint64_t mask; /* its mask */
    uint64_t kept; /* arrived with no waiter for them */
    weft__sigwaiter *waiters;
    sigreg *regs;
    /* Per signal: the waiters whose `got` has it, and whether one returned
     * it since it last arrived (a waiter dropped while holding it gives it
     * back only if it was the last holder and nobody returned it). */
    unsigned holders[65];
    bool seen[65];
} hub = { PTHREAD_MUTEX_INITIALIZER, -1, 0, 0, NULL, NULL, { 0 }, { false } };

static bool sig_ok(int s)
{
    return s >= 1 && s <= 64 && s != SIGKILL && s != SIGSTOP;
}

int weft_signal_block(const int *sigs, size_t n)
{
    if ((!sigs && n) || n > 64) {
        WEFT_MISUSE("weft_signal_block: %s", !sigs ? "NULL sigs" : "too many signals");
        return -EINVAL;
    }
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < n; i++) {
        if (!sig_ok(sigs[i])) {
            WEFT_MISUSE("weft_signal_block: signal %d cannot be waited for", sigs[i]);
            return -EINVAL;
        }
        sigaddset(&set, sigs[i]);
    }
    return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void waiter_init(weft__sigwaiter *w, const int *sigs, size_t n)
{
    memset(w, 0, sizeof *w);
    w->state_ = W_NEW;
    if (!sigs || n == 0 || n > WEFT_SIGNAL_MAX) {
        w->bad_ = -1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sig_ok(sigs[i])) {
            w->bad_ = sigs[i] ? sigs[i] : -1;
            return;
        }
        w->set_ |= SIG_BIT(sigs[i]);
    }
}

/* ---- under hub.mu ----------------------------------------------------------- */

/* `w` holds signal `s` (an arrival not yet returned). */
static void give(weft__sigwaiter *w, int s)
{
    if (!(w->got_ & SIG_BIT(s))) {
        w->got_ |= SIG_BIT(s);
        hub.holders[s]++;
    }
}

static void deliver(int s, const weft__sigwaiter *self)
{
    uint64_t bit = SIG_BIT(s);
    bool any = false;
    for (weft__sigwaiter *o = hub.waiters; o; o = o->next_) {
        if (!(o->set_ & bit))
            continue;
        any = true;
        give(o, s);
        if (o != self)
            weft_waker_wake_by_ref(&o->waker_);
    }
    if (!any)
        hub.kept |= bit;
    hub.seen[s] = false;
}

/* Read every signal the fd has (it is non-blocking). */
static void drain(const weft__sigwaiter *self)
{
    struct signalfd_siginfo si[8];
    for (;;) {
        ssize_t n = read(hub.fd, si, sizeof si);
        if (n <= 0)
            return; /* EAGAIN: the fd is empty (nothing else can fail here) */
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++)
            if (si[i].ssi_signo >= 1 && si[i].ssi_signo <= 64)
                deliver((int)si[i].ssi_signo, self);
    }
}

static uint64_t bits_to_sigset(uint64_t bits, sigset_t *set)
{
    sigemptyset(set);
    for (int s = 1; s <= 64; s++)
        if (bits & SIG_BIT(s))
            sigaddset(set, s);
    return bits;
}

/* 0, or a negative errno (the waiter did not join). */
static int join(weft__sigwaiter *w)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    for (int s = 1; s <= 64; s++) {
        if ((w->set_ & SIG_BIT(s)) && !sigismember(&cur, s)) {
            WEFT_MISUSE("weft_signal: signal %d is not blocked in this thread (call "
                        "weft_signal_block early in main, before creating threads)",
                        s);
            return -EINVAL;
        }
    }
    weft__reactor *r = weft__reactor_current();
    if (!r) {
        WEFT_MISUSE("weft_signal: no current runtime (poll it in a task, or under "
                    "weft_block_on)");
        return -EINVAL;
    }
    bool made = false;
    sigset_t set;
    if (hub.fd < 0) {
        bits_to_sigset(w->set_, &set);
        int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0)
            return -errno;
        hub.fd = fd;
        hub.mask = w->set_;
        made = true;
    } else if (w->set_ & ~hub.mask) {
        bits_to_sigset(hub.mask | w->set_, &set);
        if (signalfd(hub.fd, &set, 0) < 0)
            return -errno;
        hub.mask |= w->set_;
    }
    sigreg *g = hub.regs;
    while (g && g->reactor != r)
        g = g->next;
    if (!g) {
        int rc = -ENOMEM;
        g = weft__calloc(sizeof *g);
        if (g)
            rc = weft_io_register(&g->io, hub.fd);
        if (rc != 0) {
            weft__free(g);
            if (made) {
                close(hub.fd);
                hub.fd = -1;
                hub.mask = 0;
            }
            return rc;
        }
        g->reactor = r;
        g->next = hub.regs;
        hub.regs = g;
    }
    g->users++;
    w->reg_ = g;
    w->prev_ = NULL;
    w->next_ = hub.waiters;
    if (hub.waiters)
        hub.waiters->prev_ = w;
    hub.waiters = w;
    for (int s = 1; s <= 64; s++) {
        if (hub.kept & w->set_ & SIG_BIT(s)) {
            give(w, s);
            hub.seen[s] = false;
        }
    }
    hub.kept &= ~w->set_;
    w->state_ = W_JOINED;
    return 0;
}

static void leave(weft__sigwaiter *w)
{
    if (w->state_ != W_JOINED) {
        w->state_ = W_DONE;
        return;
    }
    w->state_ = W_DONE;
    if (w->prev_)
        w->prev_->next_ = w->next_;
    else
        hub.waiters = w->next_;
    if (w->next_)
        w->next_->prev_ = w->prev_;
    sigreg *g = w->reg_;
    if (g->watcher == w) {
        /* The fd holds this waiter's waker: take it back and let another
         * waiter of the same reactor wait on the fd in its place. */
        weft__sio_forget(g->io.sio_, WEFT_IO_READ);
        g->watcher = NULL;
        for (weft__sigwaiter *o = hub.waiters; o; o = o->next_) {
            if (o->reg_ == g) {
                weft_waker_wake_by_ref(&o->waker_);
                break;
            }
        }
    }
    /* Received, not returned: keep it for the next waiter, unless another
     * waiter returned it or still holds it. */
    for (int s = 1; s <= 64; s++)
        if ((w->got_ & SIG_BIT(s)) && --hub.holders[s] == 0 && !hub.seen[s])
            hub.kept |= SIG_BIT(s);
    w->got_ = 0;
    weft_waker_drop(&w->waker_);
    if (--g->users == 0) {
        weft_io_deregister(&g->io);
        sigreg **pp = &hub.regs;
        while (*pp != g)
            pp = &(*pp)->next;
        *pp = g->next;
        weft__free(g);
        if (!hub.regs) {
            close(hub.fd);
            hub.fd = -1;
            hub.mask = 0;
        }
    }
}

/* The poll of both forms: > 0 a signal, < 0 an error, 0 pending. */
static int waiter_poll(weft__sigwaiter *w, weft_cx *cx)
{
    if (w->bad_) {
        if (w->bad_ > 0)
            WEFT_MISUSE("weft_signal: signal %d cannot be waited for", w->bad_);
        else
            WEFT_MISUSE("weft_signal: no signals, NULL, or more than WEFT_SIGNAL_MAX");
        return -EINVAL;
    }
    if (w->state_ == W_DONE) {
        WEFT_MISUSE("weft_signal: polled after it completed");
        return -EINVAL;
    }
    pthread_mutex_lock(&hub.mu);
    if (w->state_ == W_NEW) {
        int rc = join(w);
        if (rc != 0) {
            w->state_ = W_DONE;
            pthread_mutex_unlock(&hub.mu);
            return rc;
        }
    }
    drain(w);
    if (!w->got_) {
        if (!weft_waker_will_wake(&w->waker_, cx->waker)) {
            weft_waker_drop(&w->waker_);
            w->waker_ = weft_waker_clone(cx->waker);
        }
        /* Wait on the fd: until poll_ready finds no readiness (it then
         * holds cx's waker), drain what made it ready and forget that
         * readiness (a newer event is never erased). */
        sigreg *g = w->reg_;
        while (weft_io_poll_ready(&g->io, cx, WEFT_IO_READ)) {
            drain(w);
            weft_io_clear_ready(&g->io, WEFT_IO_READ);
        }
        g->watcher = w;
    }
    int s = 0;
    if (w->got_) {
        s = __builtin_ctzll(w->got_) + 1;
        w->got_ &= ~SIG_BIT(s);
        hub.holders[s]--;
        hub.seen[s] = true;
    }
    pthread_mutex_unlock(&hub.mu);
    return s;
}

static void waiter_leave(weft__sigwaiter *w)
{
    if (w->state_ != W_JOINED) {
        w->state_ = W_DONE;
        return;
    }
    pthread_mutex_lock(&hub.mu);
    leave(w);
    pthread_mutex_unlock(&hub.mu);
}

/* ---- the future ------------------------------------------------------------- */

static weft_poll signal_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_signal *sf = (weft_signal *)f;
    if (!sf->w_.bad_ && sf->w_.state_ != W_DONE && weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    int s = waiter_poll(&sf->w_, cx);
    if (s == 0)
        return WEFT_PENDING;
    waiter_leave(&sf->w_); /* other signals that came are kept as on a drop */
    *(int *)out = s;
    return WEFT_READY;
}

static void signal_drop(weft_future *f)
{
    waiter_leave(&((weft_signal *)f)->w_);
}

static const weft_future_ops signal_ops = {
    .name = "weft_signal", .out_size = sizeof(int), .poll = signal_poll, .drop = signal_drop,
};

void weft_signal_init(weft_signal *f, const int *sigs, size_t n)
{
    weft_future_init(&f->base, &signal_ops, WEFT_F_SEND);
    waiter_init(&f->w_, sigs, n);
}

void weft_ctrl_c_init(weft_signal *f)
{
    static const int sigint[] = { SIGINT };
    weft_signal_init(f, sigint, 1);
}

/* ---- the stream ------------------------------------------------------------- */

static weft_next stream_poll_next(weft_stream *st, weft_cx *cx, void *item)
{
    weft_signal_stream *ss = (weft_signal_stream *)st;
    if (ss->w_.state_ == W_DONE)
        return WEFT_NEXT_DONE; /* after the error item */
    if (!ss->w_.bad_ && weft__chaos_pending_stream(st, cx))
        return WEFT_NEXT_PENDING;
    int s = waiter_poll(&ss->w_, cx);
    if (s == 0)
        return WEFT_NEXT_PENDING;
    if (s < 0)
        ss->w_.state_ = W_DONE;
    *(int *)item = s;
    return WEFT_NEXT_ITEM;
}

static void stream_drop(weft_stream *st)
{
    waiter_leave(&((weft_signal_stream *)st)->w_);
}

static const weft_stream_ops signal_stream_ops = {
    .name = "weft_signal_stream", .item_size = sizeof(int), .poll_next = stream_poll_next,
    .drop = stream_drop,
};

void weft_signal_stream_init(weft_signal_stream *s, const int *sigs, size_t n)
{
    weft_stream_init(&s->base, &signal_stream_ops, WEFT_F_SEND);
    waiter_init(&s->w_, sigs, n);
}

/* ---- tests' view -------------------------------------------------------------- */

void weft__signal_hub_state_get(weft__signal_hub_state *out)
{
    pthread_mutex_lock(&hub.mu);
    out->kept = hub.kept;
    out->fd = hub.fd;
    out->waiters = out->regs = 0;
    for (weft__sigwaiter *o = hub.waiters; o; o = o->next_)
        out->waiters++;
    for (sigreg *g = hub.regs; g; g = g->next)
        out->regs++;
    pthread_mutex_unlock(&hub.mu);
}

void weft__signal_unkeep(uint64_t mask)
{
    pthread_mutex_lock(&hub.mu);
    hub.kept &= ~mask;
    pthread_mutex_unlock(&hub.mu);
}
