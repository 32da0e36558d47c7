/* weft_file_read_all / weft_file_write_all: a whole-file read or write on
 * the blocking pool.
 *
 * The job and the future share one record (file_op): the path, the
 * result, and the bytes (read into, or copied from the caller at the
 * first poll so that a write dropped mid-way never reads the caller's
 * memory again). Two references: the future's, and the job's argument's,
 * released when the job's memory goes (weft__spawn_blocking's drop_arg) —
 * whether it ran or was cancelled in the queue. The caller's buffer is
 * written only in the poll that returns READY. */
#include "weft/io.h"
#include "sched/blocking.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/errors.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

enum { F_READ, F_WRITE };
enum { S_NEW, S_WAITING, S_DONE };

struct weft__file_op {
    _Atomic int refs;
    int kind;
    size_t len; /* read: capacity; write: bytes to write */
    int64_t result;
    char *path; /* after data */
    unsigned char data[];
};

static void op_release(struct weft__file_op *op)
{
    /* AcqRel: the last holder sees the other's writes before freeing. */
    if (weft_atomic_fetch_sub_acq_rel(&op->refs, 1) == 1)
        weft__free(op);
}

/* drop_arg: the job's argument is the record's address. */
static void op_arg_drop(void *arg)
{
    struct weft__file_op *op;
    memcpy(&op, arg, sizeof op);
    op_release(op);
}

static int64_t do_read(struct weft__file_op *op)
{
    int fd = open(op->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    int64_t rc = 0;
    for (;;) {
        unsigned char extra;
        /* At capacity: one more byte says whether the file is larger. */
        void *dst = got < op->len ? op->data + got : &extra;
        size_t want = got < op->len ? op->len - got : 1;
        ssize_t n = read(fd, dst, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0) {
            rc = (int64_t)got;
            break;
        }
        if (got >= op->len) {
            rc = -EFBIG;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    return rc;
}

static int64_t do_write(struct weft__file_op *op)
{
    int fd = open(op->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return -errno;
    size_t put = 0;
    int64_t rc = 0;
    while (put < op->len) {
        ssize_t n = write(fd, op->data + put, op->len - put);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        put += (size_t)n;
    }
    if (close(fd) != 0 && rc == 0 && errno != EINTR)
        rc = -errno;
    return rc < 0 ? rc : (int64_t)put;
}

/* On a pool thread. */
static void file_job(void *arg, void *out)
{
    struct weft__file_op *op;
    memcpy(&op, arg, sizeof op);
    *(int64_t *)out = op->kind == F_READ ? do_read(op) : do_write(op);
}

static weft_poll file_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_file_io *fi = (weft_file_io *)f;
    int64_t *res = out;
    if (fi->state_ == S_NEW) {
        if (!fi->path || (!fi->buf && fi->len > 0)) {
            WEFT_MISUSE("%s: %s", f->ops->name, !fi->path ? "path is NULL"
                                                          : "buffer NULL with a length");
            fi->state_ = S_DONE;
            *res = -EINVAL;
            return WEFT_READY;
        }
        size_t plen = strlen(fi->path) + 1;
        struct weft__file_op *op = weft__alloc(sizeof *op + fi->len + plen);
        if (!op) {
            fi->state_ = S_DONE;
            *res = -ENOMEM;
            return WEFT_READY;
        }
        weft_atomic_init(&op->refs, 2);
        op->kind = fi->kind_;
        op->len = fi->len;
        op->result = 0;
        op->path = (char *)op->data + fi->len;
        memcpy(op->path, fi->path, plen);
        if (fi->kind_ == F_WRITE && fi->len)
            memcpy(op->data, fi->buf, fi->len);
        int rc = weft__spawn_blocking(NULL, file_job, f->ops->name, &op, sizeof op,
                                      sizeof(int64_t), op_arg_drop, &fi->join_);
        if (rc != 0) {
            weft__free(op); /* the job never took its reference */
            fi->state_ = S_DONE;
            *res = rc;
            return WEFT_READY;
        }
        fi->op_ = op;
        fi->state_ = S_WAITING;
    }
    if (fi->state_ != S_WAITING)
        return WEFT_PENDING; /* polled after READY: a caller's bug */
    int64_t r = 0;
    if (weft_future_poll(&fi->join_.base, cx, &r) == WEFT_PENDING)
        return WEFT_PENDING;
    int st = fi->join_.status;
    weft_future_drop(&fi->join_.base);
    if (st != 0)
        r = st;
    else if (fi->kind_ == F_READ && r > 0)
        memcpy(fi->buf, fi->op_->data, (size_t)r);
    op_release(fi->op_);
    fi->op_ = NULL;
    fi->state_ = S_DONE;
    *res = r;
    return WEFT_READY;
}

static void file_drop(weft_future *f)
{
    weft_file_io *fi = (weft_file_io *)f;
    if (fi->state_ == S_WAITING) {
        weft_join_cancel(&fi->join_);
        op_release(fi->op_);
        fi->op_ = NULL;
    }
    fi->state_ = S_DONE;
}

static const weft_future_ops read_ops = {
    .name = "weft_file_read_all", .out_size = sizeof(int64_t),
    .poll = file_poll, .drop = file_drop,
};

static const weft_future_ops write_ops = {
    .name = "weft_file_write_all", .out_size = sizeof(int64_t),
    .poll = file_poll, .drop = file_drop,
};

static void file_init(weft_file_io *f, const weft_future_ops *ops, int kind, const char *path,
                      void *buf, size_t len)
{
    if (!f) {
        WEFT_MISUSE("%s_init: f is NULL", ops->name);
        return;
    }
    weft_future_init(&f->base, ops, WEFT_F_SEND);
    f->path = path;
    f->buf = buf;
    f->len = len;
    f->kind_ = kind;
    f->state_ = S_NEW;
    f->op_ = NULL;
}

void weft_file_read_all_init(weft_file_io *f, const char *path, void *buf, size_t cap)
{
    file_init(f, &read_ops, F_READ, path, buf, cap);
}

void weft_file_write_all_init(weft_file_io *f, const char *path, const void *data, size_t len)
{
    file_init(f, &write_ops, F_WRITE, path, (void *)data, len);
}
