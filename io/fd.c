/* weft_io: any fd registered with the current runtime's reactor, and the
 * readiness future over it (weft/io.h). */
#include "weft/io.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "io/reactor.h"

int weft_io_register(weft_io *io, int fd)
{
    if (!io || fd < 0) {
        WEFT_MISUSE("weft_io_register: %s", io ? "negative fd" : "NULL io");
        return -EINVAL;
    }
    weft__reactor *r = weft__reactor_current();
    if (!r) {
        WEFT_MISUSE("weft_io_register: no current runtime (call it from a task, or a "
                    "future under weft_block_on)");
        return -EINVAL;
    }
    int rc = weft__reactor_register(r, fd, &io->sio_);
    if (rc != 0)
        return rc;
    io->reactor_ = r;
    io->fd = fd;
    io->seen_[0] = io->seen_[1] = 0;
    return 0;
}

void weft_io_deregister(weft_io *io)
{
    if (!io || !io->sio_)
        return;
    weft__reactor_deregister(io->reactor_, io->sio_);
    io->sio_ = NULL;
}

uint32_t weft_io_poll_ready(weft_io *io, weft_cx *cx, uint32_t interest)
{
    unsigned d = interest == WEFT_IO_WRITE;
    uint64_t w = weft__sio_poll_ready(io->sio_, cx, interest);
    io->seen_[d] = w;
    return (uint32_t)(w & WEFT__IO_BITS);
}

void weft_io_clear_ready(weft_io *io, uint32_t interest)
{
    unsigned d = interest == WEFT_IO_WRITE;
    /* ERROR goes too: the syscall that said EAGAIN consumed it (a socket's
     * pending error is returned once), and a kept ERROR would make every
     * later poll_ready report readiness without registering a waker. The
     * CLOSED bits stay: after them a read returns 0 and a write fails,
     * never EAGAIN. */
    weft__sio_clear(io->sio_, io->seen_[d],
                    (d ? WEFT_IO_WRITABLE : WEFT_IO_READABLE) | WEFT_IO_ERROR);
}

bool weft__io_again(weft_io *io, weft_cx *cx, uint32_t dir)
{
    unsigned d = dir == WEFT_IO_WRITE;
    uint32_t want = d ? WEFT_IO_WRITABLE : WEFT_IO_READABLE;
    weft_io_clear_ready(io, dir);
    uint32_t bits = weft_io_poll_ready(io, cx, dir);
    if (!bits)
        return false;
    if (bits & want)
        return true;
    /* Only a CLOSED bit is left, and it stays (it is a state, not an
     * event), yet the syscall said EAGAIN: retrying now would spin. Wait
     * for the next event instead — register, then see whether one came
     * since the look above (the tick moved). */
    uint64_t seen = io->seen_[d];
    weft_atomic_waker_register(d ? &io->sio_->wr : &io->sio_->rd, cx->waker);
    /* Acquire: pairs with dispatch's release, as in weft__sio_poll_ready. */
    uint64_t now = weft_atomic_load_acquire(&io->sio_->ready);
    return (now >> 32) != (seen >> 32);
}

static weft_poll ready_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_io_ready *r = (weft_io_ready *)f;
    if (!r->io_ || !r->io_->sio_ || !r->interest_ ||
        (r->interest_ & ~(uint32_t)(WEFT_IO_READ | WEFT_IO_WRITE))) {
        WEFT_MISUSE("weft_io_ready: %s", !r->io_ || !r->io_->sio_ ? "no registered fd"
                                                                  : "unknown interest");
        *(uint32_t *)out = WEFT_IO_ERROR; /* never a hang */
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    uint32_t got = 0;
    /* Both directions asked: register with both, then report either. */
    for (uint32_t dir = WEFT_IO_READ; dir <= WEFT_IO_WRITE; dir <<= 1) {
        if (!(r->interest_ & dir))
            continue;
        uint32_t bits = weft_io_poll_ready(r->io_, cx, dir);
        if (!bits)
            r->waiting_ |= dir;
        got |= bits;
    }
    if (!got)
        return WEFT_PENDING;
    *(uint32_t *)out = got;
    return WEFT_READY;
}

static void ready_drop(weft_future *f)
{
    weft_io_ready *r = (weft_io_ready *)f;
    for (uint32_t dir = WEFT_IO_READ; dir <= WEFT_IO_WRITE; dir <<= 1)
        if ((r->waiting_ & dir) && r->io_->sio_)
            weft__sio_forget(r->io_->sio_, dir);
}

static const weft_future_ops ready_ops = {
    .name = "weft_io_ready", .out_size = sizeof(uint32_t), .poll = ready_poll,
    .drop = ready_drop,
};

void weft_io_ready_init(weft_io_ready *f, weft_io *io, uint32_t interest)
{
    weft_future_init(&f->base, &ready_ops, WEFT_F_SEND);
    f->io_ = io;
    f->interest_ = interest;
    f->waiting_ = 0;
}
