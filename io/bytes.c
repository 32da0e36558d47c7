/* The byte-stream futures over any weft_reader / weft_writer, and the
 * buffered reader (weft/io.h).
 *
 * Each future is a leaf that calls its reader's or writer's poll function
 * directly; whatever it must keep across polls is a public field of its
 * own (read_exact's and write_all's `done`, copy's buffer window) or lives
 * in the bufreader (read_line), so a drop loses only what the header says.
 * Loops charge the cooperative budget once per syscall-sized step, so a
 * copy from a source that never waits does not hold its worker. */
#include <errno.h>
#include <string.h>

#include "weft/io.h"
#include "core/chaos.h"
#include "core/errors.h"

/* The reader's and writer's contracts, checked where they are used. */
static bool reader_ok(const weft_reader *r)
{
    return r && r->ops && r->ops->poll_read;
}

static bool writer_ok(const weft_writer *w)
{
    return w && w->ops && w->ops->poll_write;
}

/* One read from `r`, with its result checked: READY with *res in 0..len
 * or a negative errno (a read of more than `len` is -EIO). */
static weft_poll read_some(weft_reader *r, weft_cx *cx, void *buf, size_t len, int64_t *res)
{
    if (r->ops->poll_read(r, cx, buf, len, res) == WEFT_PENDING)
        return WEFT_PENDING;
    if (*res > (int64_t)len) {
        WEFT_MISUSE("%s: poll_read returned %lld bytes for a buffer of %zu", r->ops->name,
                    (long long)*res, len);
        *res = -EIO;
    }
    return WEFT_READY;
}

/* One write to `w`: READY with *res in 1..len or a negative errno (0 or
 * more than `len` taken is -EIO). */
static weft_poll write_some(weft_writer *w, weft_cx *cx, const void *buf, size_t len,
                            int64_t *res)
{
    if (w->ops->poll_write(w, cx, buf, len, res) == WEFT_PENDING)
        return WEFT_PENDING;
    if (*res == 0 || *res > (int64_t)len) {
        WEFT_MISUSE("%s: poll_write returned %lld for a buffer of %zu", w->ops->name,
                    (long long)*res, len);
        *res = -EIO;
    }
    return WEFT_READY;
}

/* ---- read ------------------------------------------------------------------ */

static weft_poll read_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_read *r = (weft_read *)f;
    int64_t *res = out;
    if (!reader_ok(r->r_) || (!r->buf_ && r->len_)) {
        WEFT_MISUSE("weft_read: %s", !reader_ok(r->r_) ? "no reader" : "NULL buffer");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (r->len_ == 0) {
        *res = 0;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    return read_some(r->r_, cx, r->buf_, r->len_, res);
}

static const weft_future_ops read_ops = {
    .name = "weft_read", .out_size = sizeof(int64_t), .poll = read_poll,
};

void weft_read_init(weft_read *f, weft_reader *r, void *buf, size_t len)
{
    weft_future_init(&f->base, &read_ops, WEFT_F_SEND);
    f->r_ = r;
    f->buf_ = buf;
    f->len_ = len;
}

/* ---- read_exact -------------------------------------------------------------- */

static weft_poll read_exact_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_read_exact *r = (weft_read_exact *)f;
    int *res = out;
    if (!reader_ok(r->r_) || (!r->buf_ && r->len_)) {
        WEFT_MISUSE("weft_read_exact: %s", !reader_ok(r->r_) ? "no reader" : "NULL buffer");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (r->done < r->len_ && weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    while (r->done < r->len_) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        int64_t n;
        if (read_some(r->r_, cx, r->buf_ + r->done, r->len_ - r->done, &n) == WEFT_PENDING)
            return WEFT_PENDING;
        if (n <= 0) {
            *res = n == 0 ? -ENODATA : (int)n;
            return WEFT_READY;
        }
        r->done += (size_t)n;
    }
    *res = 0;
    return WEFT_READY;
}

static const weft_future_ops read_exact_ops = {
    .name = "weft_read_exact", .out_size = sizeof(int), .poll = read_exact_poll,
};

void weft_read_exact_init(weft_read_exact *f, weft_reader *r, void *buf, size_t len)
{
    weft_future_init(&f->base, &read_exact_ops, WEFT_F_SEND);
    f->r_ = r;
    f->buf_ = buf;
    f->len_ = len;
    f->done = 0;
}

/* ---- write ------------------------------------------------------------------- */

static weft_poll write_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_write *w = (weft_write *)f;
    int64_t *res = out;
    if (!writer_ok(w->w_) || (!w->buf_ && w->len_)) {
        WEFT_MISUSE("weft_write: %s", !writer_ok(w->w_) ? "no writer" : "NULL buffer");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (w->len_ == 0) {
        *res = 0;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    return write_some(w->w_, cx, w->buf_, w->len_, res);
}

static const weft_future_ops write_ops = {
    .name = "weft_write", .out_size = sizeof(int64_t), .poll = write_poll,
};

void weft_write_init(weft_write *f, weft_writer *w, const void *buf, size_t len)
{
    weft_future_init(&f->base, &write_ops, WEFT_F_SEND);
    f->w_ = w;
    f->buf_ = buf;
    f->len_ = len;
}

/* ---- write_all ---------------------------------------------------------------- */

static weft_poll write_all_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_write_all *w = (weft_write_all *)f;
    int *res = out;
    if (!writer_ok(w->w_) || (!w->buf_ && w->len_)) {
        WEFT_MISUSE("weft_write_all: %s", !writer_ok(w->w_) ? "no writer" : "NULL buffer");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (w->done < w->len_ && weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    while (w->done < w->len_) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        int64_t n;
        if (write_some(w->w_, cx, w->buf_ + w->done, w->len_ - w->done, &n) == WEFT_PENDING)
            return WEFT_PENDING;
        if (n < 0) {
            *res = (int)n;
            return WEFT_READY;
        }
        w->done += (size_t)n;
    }
    *res = 0;
    return WEFT_READY;
}

static const weft_future_ops write_all_ops = {
    .name = "weft_write_all", .out_size = sizeof(int), .poll = write_all_poll,
};

void weft_write_all_init(weft_write_all *f, weft_writer *w, const void *buf, size_t len)
{
    weft_future_init(&f->base, &write_all_ops, WEFT_F_SEND);
    f->w_ = w;
    f->buf_ = buf;
    f->len_ = len;
    f->done = 0;
}

/* ---- flush and shutdown -------------------------------------------------------- */

static weft_poll flush_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_flush *fl = (weft_flush *)f;
    int *res = out;
    if (!writer_ok(fl->w_)) {
        WEFT_MISUSE("%s: no writer", fl->shutdown_ ? "weft_shutdown_write" : "weft_flush");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    const weft_writer_ops *ops = fl->w_->ops;
    *res = 0;
    if (fl->shutdown_ && ops->poll_shutdown)
        return ops->poll_shutdown(fl->w_, cx, res);
    if (ops->poll_flush)
        return ops->poll_flush(fl->w_, cx, res);
    return WEFT_READY;
}

static const weft_future_ops flush_ops = {
    .name = "weft_flush", .out_size = sizeof(int), .poll = flush_poll,
};
static const weft_future_ops shutdown_ops = {
    .name = "weft_shutdown_write", .out_size = sizeof(int), .poll = flush_poll,
};

void weft_flush_init(weft_flush *f, weft_writer *w)
{
    weft_future_init(&f->base, &flush_ops, WEFT_F_SEND);
    f->w_ = w;
    f->shutdown_ = false;
}

void weft_shutdown_write_init(weft_flush *f, weft_writer *w)
{
    weft_future_init(&f->base, &shutdown_ops, WEFT_F_SEND);
    f->w_ = w;
    f->shutdown_ = true;
}

/* ---- copy ------------------------------------------------------------------------ */

/* The writer's flush, if it has one: PENDING, or READY with *res. */
static weft_poll flush_writer(weft_writer *w, weft_cx *cx, int *res)
{
    *res = 0;
    return w->ops->poll_flush ? w->ops->poll_flush(w, cx, res) : WEFT_READY;
}

static weft_poll copy_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_copy *c = (weft_copy *)f;
    int64_t *res = out;
    if (!reader_ok(c->r_) || !writer_ok(c->w_) || !c->buf_ || !c->cap_) {
        WEFT_MISUSE("weft_copy: %s", !reader_ok(c->r_)   ? "no reader"
                                     : !writer_ok(c->w_) ? "no writer"
                                                         : "no buffer");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    for (;;) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        /* Empty: read more (or learn of the end). */
        if (c->pos_ == c->end_ && !c->eof_) {
            int64_t n;
            c->pos_ = c->end_ = 0;
            if (read_some(c->r_, cx, c->buf_, c->cap_, &n) == WEFT_PENDING) {
                /* Nothing to give: let a buffered writer hand on what it
                 * holds meanwhile (tokio's copy does the same). */
                if (c->need_flush_) {
                    int frc;
                    if (flush_writer(c->w_, cx, &frc) == WEFT_READY) {
                        if (frc < 0) {
                            *res = frc;
                            return WEFT_READY;
                        }
                        c->need_flush_ = false;
                    }
                }
                return WEFT_PENDING;
            }
            if (n < 0) {
                *res = n;
                return WEFT_READY;
            }
            if (n == 0)
                c->eof_ = true;
            c->end_ = (size_t)n;
        }
        /* Buffered: write it. */
        while (c->pos_ < c->end_) {
            int64_t n;
            if (write_some(c->w_, cx, c->buf_ + c->pos_, c->end_ - c->pos_, &n) == WEFT_PENDING)
                return WEFT_PENDING;
            if (n < 0) {
                *res = n;
                return WEFT_READY;
            }
            c->pos_ += (size_t)n;
            c->written += (uint64_t)n;
            c->need_flush_ = true;
        }
        if (c->eof_) {
            int frc;
            if (flush_writer(c->w_, cx, &frc) == WEFT_PENDING)
                return WEFT_PENDING;
            *res = frc < 0 ? frc : (int64_t)c->written;
            return WEFT_READY;
        }
    }
}

static const weft_future_ops copy_ops = {
    .name = "weft_copy", .out_size = sizeof(int64_t), .poll = copy_poll,
};

void weft_copy_init(weft_copy *f, weft_reader *r, weft_writer *w, void *buf, size_t buf_size)
{
    weft_future_init(&f->base, &copy_ops, WEFT_F_SEND);
    f->r_ = r;
    f->w_ = w;
    f->buf_ = buf;
    f->cap_ = buf_size;
    f->pos_ = f->end_ = 0;
    f->eof_ = f->need_flush_ = false;
    f->written = 0;
}

size_t weft_copy_pending(const weft_copy *f)
{
    return f->end_ - f->pos_;
}

size_t weft_copy_pending_offset(const weft_copy *f)
{
    return f->pos_;
}

/* ---- the buffered reader ------------------------------------------------------- */

/* Read more from inner into the free space after the buffered bytes
 * (moved to the front first). READY with *res = bytes added, 0 at end of
 * stream or when the buffer is full (the caller tells which), or a
 * negative errno. */
static weft_poll buf_fill_more(weft_bufreader *b, weft_cx *cx, int64_t *res)
{
    if (b->pos_ > 0) {
        memmove(b->buf_, b->buf_ + b->pos_, b->end_ - b->pos_);
        b->end_ -= b->pos_;
        b->pos_ = 0;
    }
    if (b->end_ == b->cap_) {
        *res = 0;
        return WEFT_READY;
    }
    if (read_some(b->inner_, cx, b->buf_ + b->end_, b->cap_ - b->end_, res) == WEFT_PENDING)
        return WEFT_PENDING;
    if (*res > 0)
        b->end_ += (size_t)*res;
    return WEFT_READY;
}

weft_poll weft_bufreader_poll_fill(weft_bufreader *b, weft_cx *cx, int64_t *res)
{
    if (b->pos_ == b->end_) {
        b->pos_ = b->end_ = 0;
        if (buf_fill_more(b, cx, res) == WEFT_PENDING)
            return WEFT_PENDING;
        if (*res < 0)
            return WEFT_READY;
    }
    *res = (int64_t)(b->end_ - b->pos_);
    return WEFT_READY;
}

size_t weft_bufreader_buffered(const weft_bufreader *b, const void **data)
{
    if (data)
        *data = b->buf_ + b->pos_;
    return b->end_ - b->pos_;
}

void weft_bufreader_consume(weft_bufreader *b, size_t n)
{
    size_t have = b->end_ - b->pos_;
    if (n > have) {
        WEFT_MISUSE("weft_bufreader_consume: %zu bytes, %zu buffered", n, have);
        n = have;
    }
    b->pos_ += n;
}

static weft_poll bufreader_poll_read(weft_reader *r, weft_cx *cx, void *buf, size_t len,
                                     int64_t *res)
{
    weft_bufreader *b = (weft_bufreader *)r;
    /* Nothing buffered and a read as large as the buffer: straight through. */
    if (b->pos_ == b->end_ && len >= b->cap_)
        return read_some(b->inner_, cx, buf, len, res);
    if (weft_bufreader_poll_fill(b, cx, res) == WEFT_PENDING)
        return WEFT_PENDING;
    if (*res <= 0)
        return WEFT_READY;
    size_t n = (size_t)*res < len ? (size_t)*res : len;
    memcpy(buf, b->buf_ + b->pos_, n);
    b->pos_ += n;
    *res = (int64_t)n;
    return WEFT_READY;
}

static const weft_reader_ops bufreader_ops = {
    .name = "weft_bufreader", .poll_read = bufreader_poll_read,
};

int weft_bufreader_init(weft_bufreader *b, weft_reader *inner, void *buf, size_t cap)
{
    if (!b || !reader_ok(inner) || !buf || cap == 0) {
        WEFT_MISUSE("weft_bufreader_init: %s", !b                ? "NULL bufreader"
                                               : !reader_ok(inner) ? "no inner reader"
                                                                   : "no buffer");
        return -EINVAL;
    }
    b->reader.ops = &bufreader_ops;
    b->inner_ = inner;
    b->buf_ = buf;
    b->cap_ = cap;
    b->pos_ = b->end_ = 0;
    return 0;
}

/* ---- read_line -------------------------------------------------------------------- */

static weft_poll read_line_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_read_line *l = (weft_read_line *)f;
    int64_t *res = out;
    weft_bufreader *b = l->b_;
    if (!b || b->reader.ops != &bufreader_ops || !l->line_ || !l->cap_) {
        WEFT_MISUSE("weft_read_line: %s", !b || b->reader.ops != &bufreader_ops
                                              ? "not an initialised weft_bufreader"
                                              : "no line buffer");
        *res = -EINVAL;
        return WEFT_READY;
    }
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    size_t limit = l->cap_ < b->cap_ ? l->cap_ : b->cap_;
    for (;;) {
        if (!weft_coop_proceed(cx))
            return WEFT_PENDING;
        size_t have = b->end_ - b->pos_;
        /* Search the buffered bytes not searched yet (a drop forgets how
         * far, which costs a rescan, never a byte). */
        size_t upto = have < limit ? have : limit;
        size_t from = l->scanned_ < upto ? l->scanned_ : upto;
        const unsigned char *nl = memchr(b->buf_ + b->pos_ + from, '\n', upto - from);
        if (nl) {
            size_t n = (size_t)(nl - (b->buf_ + b->pos_)) + 1;
            memcpy(l->line_, b->buf_ + b->pos_, n);
            b->pos_ += n;
            *res = (int64_t)n;
            return WEFT_READY;
        }
        l->scanned_ = upto;
        if (have >= limit) {
            *res = -ENOBUFS; /* nothing consumed: the bytes stay buffered */
            return WEFT_READY;
        }
        int64_t n;
        if (buf_fill_more(b, cx, &n) == WEFT_PENDING)
            return WEFT_PENDING;
        if (n < 0) {
            *res = n;
            return WEFT_READY;
        }
        if (n == 0) {
            /* The end (the buffer has room: have < limit ≤ cap): the last
             * line, without its '\n', or 0. */
            have = b->end_ - b->pos_;
            memcpy(l->line_, b->buf_ + b->pos_, have);
            b->pos_ += have;
            *res = (int64_t)have;
            return WEFT_READY;
        }
    }
}

static const weft_future_ops read_line_ops = {
    .name = "weft_read_line", .out_size = sizeof(int64_t), .poll = read_line_poll,
};

void weft_read_line_init(weft_read_line *f, weft_bufreader *b, char *line, size_t cap)
{
    weft_future_init(&f->base, &read_line_ops, WEFT_F_SEND);
    f->b_ = b;
    f->line_ = line;
    f->cap_ = cap;
    f->scanned_ = 0;
}
