/* weft_fd_stream: a weft_reader and weft_writer over any registered fd
 * that is not a regular file, and weft_pipe (weft/io.h).
 *
 * Each operation follows the reactor's pattern (io/reactor.h): try the
 * syscall; on EAGAIN forget the readiness it acted on (weft_io_clear_ready
 * keeps a newer event) and ask again, which registers the waker and looks
 * once more, so an event that lands between the syscall and the
 * registration is not missed.
 *
 * SIGPIPE. A write to a socket uses send(MSG_NOSIGNAL). Any other fd (a
 * pipe, a tty) cannot say so per call, so the write runs with SIGPIPE
 * blocked on the calling thread; if it failed with EPIPE and no SIGPIPE
 * was pending before, the one it raised is taken back (sigtimedwait with a
 * zero timeout) before the mask is restored. So weft never delivers
 * SIGPIPE, whatever the process's disposition. It costs a pipe write three
 * more syscalls (two masks, one sigpending); a socket write none. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "weft/io.h"
#include "core/errors.h"
#include "io/reactor.h"

/* After this many EAGAINs in one poll with readiness reported each time
 * (the tick kept moving), yield instead of spinning in the poll. */
#define FD_STREAM_SPINS 4

static weft_fd_stream *of_reader(weft_reader *r)
{
    return (weft_fd_stream *)r; /* reader is the first member */
}

static weft_fd_stream *of_writer(weft_writer *w)
{
    return (weft_fd_stream *)((char *)w - offsetof(weft_fd_stream, writer));
}

static weft_poll fd_poll_read(weft_reader *r, weft_cx *cx, void *buf, size_t len, int64_t *res)
{
    weft_fd_stream *s = of_reader(r);
    if (!s->io.sio_) {
        WEFT_MISUSE("weft_fd_stream: read after weft_fd_stream_fini");
        *res = -EBADF;
        return WEFT_READY;
    }
    for (int spins = 0;;) {
        ssize_t n = read(s->io.fd, buf, len);
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
        if (!weft__io_again(&s->io, cx, WEFT_IO_READ))
            return WEFT_PENDING;
        if (++spins == FD_STREAM_SPINS) {
            weft_waker_wake_by_ref(cx->waker);
            return WEFT_PENDING;
        }
    }
}

/* write(2) that cannot raise SIGPIPE (see the top of the file). */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old) != 0)
        return write(fd, buf, len); /* cannot fail with a valid set */
    (void)sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    ssize_t n = write(fd, buf, len);
    int err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        const struct timespec zero = { 0, 0 };
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

static weft_poll fd_poll_write(weft_writer *w, weft_cx *cx, const void *buf, size_t len,
                               int64_t *res)
{
    weft_fd_stream *s = of_writer(w);
    if (!s->io.sio_) {
        WEFT_MISUSE("weft_fd_stream: write after weft_fd_stream_fini");
        *res = -EBADF;
        return WEFT_READY;
    }
    for (int spins = 0;;) {
        ssize_t n = s->socket_ ? send(s->io.fd, buf, len, MSG_NOSIGNAL)
                               : write_nosigpipe(s->io.fd, buf, len);
        if (n > 0) {
            *res = n;
            return WEFT_READY;
        }
        if (n == 0) {
            /* len > 0 and nothing taken without an error: not a stream
             * that will ever take it. */
            *res = -EIO;
            return WEFT_READY;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *res = -errno;
            return WEFT_READY;
        }
        if (!weft__io_again(&s->io, cx, WEFT_IO_WRITE))
            return WEFT_PENDING;
        if (++spins == FD_STREAM_SPINS) {
            weft_waker_wake_by_ref(cx->waker);
            return WEFT_PENDING;
        }
    }
}

static weft_poll fd_poll_shutdown(weft_writer *w, weft_cx *cx, int *res)
{
    (void)cx;
    weft_fd_stream *s = of_writer(w);
    if (!s->io.sio_) {
        WEFT_MISUSE("weft_fd_stream: shutdown after weft_fd_stream_fini");
        *res = -EBADF;
    } else if (!s->socket_) {
        *res = -ENOTSUP;
    } else {
        *res = shutdown(s->io.fd, SHUT_WR) == 0 ? 0 : -errno;
    }
    return WEFT_READY;
}

static const weft_reader_ops fd_reader_ops = {
    .name = "weft_fd_stream", .poll_read = fd_poll_read,
};

static const weft_writer_ops fd_writer_ops = {
    .name = "weft_fd_stream", .poll_write = fd_poll_write, .poll_flush = NULL,
    .poll_shutdown = fd_poll_shutdown,
};

int weft_fd_stream_init(weft_fd_stream *s, int fd, unsigned flags)
{
    if (!s || fd < 0 || (flags & ~WEFT_FD_STREAM_CLOSE)) {
        WEFT_MISUSE("weft_fd_stream_init: %s", !s       ? "NULL stream"
                                               : fd < 0 ? "negative fd"
                                                        : "unknown flags");
        return -EINVAL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    int rc = weft_io_register(&s->io, fd);
    if (rc != 0)
        return rc;
    s->reader.ops = &fd_reader_ops;
    s->writer.ops = &fd_writer_ops;
    s->flags_ = flags;
    s->socket_ = S_ISSOCK(st.st_mode);
    return 0;
}

void weft_fd_stream_fini(weft_fd_stream *s)
{
    if (!s || !s->io.sio_)
        return;
    int fd = s->io.fd;
    weft_io_deregister(&s->io);
    if (s->flags_ & WEFT_FD_STREAM_CLOSE)
        close(fd);
}

int weft_pipe(weft_fd_stream *rd, weft_fd_stream *wr)
{
    if (!rd || !wr) {
        WEFT_MISUSE("weft_pipe: NULL stream");
        return -EINVAL;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    int rc = weft_fd_stream_init(rd, p[0], WEFT_FD_STREAM_CLOSE);
    if (rc != 0) {
        close(p[0]);
        close(p[1]);
        return rc;
    }
    rc = weft_fd_stream_init(wr, p[1], WEFT_FD_STREAM_CLOSE);
    if (rc != 0) {
        weft_fd_stream_fini(rd);
        close(p[1]);
        return rc;
    }
    return 0;
}
