/* Signals as futures and streams (weft/io.h, "signals"), through one
 * process-wide signalfd.
 *
 * The hub. Signals are a process-wide resource, so their state is too: one
 * mutex-protected hub holds the signalfd (made by the first waiter, its
 * mask the union of the signals waited for since, closed with the last
 * waiter), the list of waiters, the signals kept for the next waiter, and
 * one registration of the fd per reactor that has waiters (the same fd in
 * several epoll sets).
 *
 * A poll, under the hub's lock: join the hub on the first poll (take the
 * kept signals of the waiter's set); drain the signalfd (read until
 * EAGAIN), delivering each signal read to every waiter whose set has it —
 * their `got` bit, and a wake — or keeping it when none has; return a
 * signal from `got`, or wait: store the task's waker in the waiter, and
 * leave the hub's waker in the fd's registration (weft_io_poll_ready).
 *
 * The hub's waker. A registration holds one reader waker, and no waiter
 * can be trusted to hold it: a stream's task may not poll the stream
 * again for a long time, and the other waiters would wait behind it. So
 * the fd holds a waker of the hub's own, which holds no reference on any
 * task: its wake sets `kicked` and wakes every waiter (each polls, and the
 * first drains the fd). It cannot take the hub's lock (a poll holding the
 * lock may be registering it, and a registration may wake at once), so it
 * only tries: a kick that finds the lock held is left to the holder, who
 * looks at `kicked` after unlocking (hub_unlock). The check and the flag
 * are ordered by a seq_cst fence on each side (a Dekker pair: the kicker
 * stores then tries the lock, the holder unlocks then loads), so either
 * the kicker gets the lock or the holder sees the flag.
 *
 * Leaving (a future completes or is dropped, a stream is dropped):
 * unlink; a signal received but not returned is kept if no other waiter
 * returned it or still holds it; the last waiter of a reactor
 * deregisters the fd, the last waiter of all closes it (a signal that
 * arrives then stays pending in the kernel, since it is blocked, and the
 * next signalfd reads it).
 *
 * Concurrency: everything but the kick runs under hub.mu, from any
 * thread. Wakes under the lock only schedule (a waker never runs user code
 * inline). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "weft/io.h"
#include "core/alloc.h"
#include "core/atomic.h"
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

/* Set by the hub's waker (any thread), cleared by whoever holds hub.mu
 * when it wakes the waiters. */
static WEFT_ATOMIC(bool) g_kicked = false;

/* Wake every waiter: the fd had an event (under hub.mu). */
static void wake_all(void)
{
    for (weft__sigwaiter *o = hub.waiters; o; o = o->next_)
        weft_waker_wake_by_ref(&o->waker_);
}

static void kick_process(void)
{
    for (;;) {
        /* seq_cst: orders the kicker's store before its trylock, and the
         * holder's unlock before its load; pairs with itself (see the
         * file's comment). */
        weft_atomic_fence_seq_cst();
        /* Relaxed: the fence above orders it. */
        if (!weft_atomic_load_relaxed(&g_kicked))
            return;
        if (pthread_mutex_trylock(&hub.mu) != 0)
            return; /* the holder looks again after its unlock */
        /* Relaxed: a kick carries no data (the waiters read the fd under
         * the lock); the lock orders the rest. */
        if (weft_atomic_swap_relaxed(&g_kicked, false))
            wake_all();
        pthread_mutex_unlock(&hub.mu);
    }
}

static void hub_lock(void)
{
    pthread_mutex_lock(&hub.mu);
}

static void hub_unlock(void)
{
    pthread_mutex_unlock(&hub.mu);
    kick_process();
}

static void kick(void)
{
    /* Relaxed: kick_process's fence orders it before the trylock. */
    weft_atomic_store_relaxed(&g_kicked, true);
    kick_process();
}

static weft_waker hubw_clone(const void *data);
static void hubw_wake(void *data)
{
    (void)data;
    kick();
}
static void hubw_wake_by_ref(const void *data)
{
    (void)data;
    kick();
}
static void hubw_drop(void *data)
{
    (void)data;
}
static const weft_waker_ops hubw_ops = { hubw_clone, hubw_wake, hubw_wake_by_ref, hubw_drop };
static weft_waker hubw_clone(const void *data)
{
    return (weft_waker){ &hubw_ops, (void *)data };
}

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
    hub_lock();
    if (w->state_ == W_NEW) {
        int rc = join(w);
        if (rc != 0) {
            w->state_ = W_DONE;
            hub_unlock();
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
         * holds the hub's waker), drain what made it ready and forget that
         * readiness (a newer event is never erased). */
        sigreg *g = w->reg_;
        weft_waker hw = { &hubw_ops, NULL };
        weft_cx hcx;
        weft_cx_init(&hcx, &hw);
        while (weft_io_poll_ready(&g->io, &hcx, WEFT_IO_READ)) {
            drain(w);
            weft_io_clear_ready(&g->io, WEFT_IO_READ);
        }
    }
    int s = 0;
    if (w->got_) {
        s = __builtin_ctzll(w->got_) + 1;
        w->got_ &= ~SIG_BIT(s);
        hub.holders[s]--;
        hub.seen[s] = true;
    }
    hub_unlock();
    return s;
}

static void waiter_leave(weft__sigwaiter *w)
{
    if (w->state_ != W_JOINED) {
        w->state_ = W_DONE;
        return;
    }
    hub_lock();
    leave(w);
    hub_unlock();
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
    hub_lock();
    out->kept = hub.kept;
    out->fd = hub.fd;
    out->waiters = out->regs = 0;
    for (weft__sigwaiter *o = hub.waiters; o; o = o->next_)
        out->waiters++;
    for (sigreg *g = hub.regs; g; g = g->next)
        out->regs++;
    hub_unlock();
}

void weft__signal_unkeep(uint64_t mask)
{
    hub_lock();
    hub.kept &= ~mask;
    hub_unlock();
}
