/* Tests for io/bytes.c: the read / read_exact / write / write_all / copy
 * futures and the buffered reader with read_line, over fd streams on
 * socketpairs (io/fd_stream.c) and over scripted readers and writers, on
 * two workers and on sims with chaos: exact bytes, transfers of megabytes
 * against a slow reader, EOF in the middle of read_exact, lines split
 * across reads and across dropped futures, -ENOBUFS, copy between two
 * socketpairs, a write to a closed peer (-EPIPE, no SIGPIPE), misuse; and
 * the cancel sweeps of read, read_exact, write_all, copy and read_line
 * (every byte the peer sent is returned exactly once or still readable). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/weft.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

#define BIG (4u << 20) /* far more than a socket buffer */

static unsigned char g_pattern[BIG];
static unsigned char g_sink[BIG];

static void fill_pattern(void)
{
    for (size_t i = 0; i < BIG; i++)
        g_pattern[i] = (unsigned char)(i * 131u + (i >> 9) + 7u);
}

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* A sim with every chaos knob of the I/O futures on. */
static weft_rt *chaos_sim(uint64_t seed)
{
    weft_sim_options o = sim_options(sim_seed_or(seed));
    o.leaf_pending = 0.3;
    o.spurious_wake = 0.3;
    return sim_start(&o);
}

/* ---- tasks the tests are made of --------------------------------------------- */

/* Writes g_pattern[0, total) to `fd` with plain write(2), `chunk` bytes at
 * a time (small totals: a socket buffer holds them), then shuts its write
 * side down if `fin`. Independent of the code under test, for the sweeps.
 * Before each piece it sleeps 1 ms: on a sim, virtual time moves only once
 * every task waits and the reactor has nothing, so the reader has taken
 * the last piece by then and sees each one alone. */
typedef struct raw_feeder {
    weft_future base;
    weft_co co;
    int fd;
    size_t total, chunk, off;
    bool fin;
    weft_sleep nap;
} raw_feeder;

WEFT_ASYNC_FN(raw_feeder, int)
{
    WEFT_FN_BEGIN;
    while (self->off < self->total) {
        weft_sleep_init(&self->nap, WEFT_MS(1));
        WEFT_FN_AWAIT(&self->nap, NULL);
        {
            size_t n = self->total - self->off < self->chunk ? self->total - self->off
                                                             : self->chunk;
            if (write(self->fd, g_pattern + self->off, n) != (ssize_t)n)
                WEFT_FN_RETURN(-1);
            self->off += n;
        }
    }
    if (self->fin && shutdown(self->fd, SHUT_WR) != 0)
        WEFT_FN_RETURN(-1);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* Writes src[0, len) to `fd` through an fd stream and weft_write_all, in
 * pieces of `chunk` with a yield between, then shuts the write side down
 * if `fin` (weft_shutdown_write). Output: 0 or the first error. */
typedef struct sender {
    weft_future base;
    weft_co co;
    int fd;
    const unsigned char *src;
    size_t len, chunk, off;
    bool fin, inited;
    weft_fd_stream s;
    weft_write_all w;
    weft_flush sh;
    int rc;
} sender;

WEFT_ASYNC_FN_WITH_DROP(sender, int)
{
    WEFT_FN_BEGIN;
    self->rc = weft_fd_stream_init(&self->s, self->fd, 0);
    if (self->rc)
        WEFT_FN_RETURN(self->rc);
    self->inited = true;
    while (self->off < self->len) {
        {
            size_t n = self->len - self->off < self->chunk ? self->len - self->off : self->chunk;
            weft_write_all_init(&self->w, &self->s.writer, self->src + self->off, n);
        }
        WEFT_FN_AWAIT(&self->w, &self->rc);
        if (self->rc)
            WEFT_FN_RETURN(self->rc);
        self->off += self->w.done;
        WEFT_FN_YIELD;
    }
    if (self->fin) {
        weft_shutdown_write_init(&self->sh, &self->s.writer);
        WEFT_FN_AWAIT(&self->sh, &self->rc);
    }
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

static void sender_drop(weft_future *f)
{
    sender *self = (sender *)f;
    weft_co_drop(&self->co);
    if (self->inited)
        weft_fd_stream_fini(&self->s);
}

/* Reads `fd` through an fd stream with weft_read (`chunk` bytes at a time,
 * a yield after each read if `slow`) into dst until the end of stream or
 * `cap` bytes. Output: the bytes read, or the first error. */
typedef struct receiver {
    weft_future base;
    weft_co co;
    int fd;
    unsigned char *dst;
    size_t cap, chunk, got;
    bool slow, inited;
    weft_fd_stream s;
    weft_read r;
    int64_t n;
} receiver;

WEFT_ASYNC_FN_WITH_DROP(receiver, int64_t)
{
    WEFT_FN_BEGIN;
    if (weft_fd_stream_init(&self->s, self->fd, 0) != 0)
        WEFT_FN_RETURN(-1);
    self->inited = true;
    for (;;) {
        {
            size_t want = self->cap - self->got < self->chunk ? self->cap - self->got : self->chunk;
            weft_read_init(&self->r, &self->s.reader, self->dst + self->got, want);
        }
        WEFT_FN_AWAIT(&self->r, &self->n);
        if (self->n < 0)
            WEFT_FN_RETURN(self->n);
        if (self->n == 0)
            break;
        self->got += (size_t)self->n;
        if (self->slow)
            WEFT_FN_YIELD;
    }
    WEFT_FN_RETURN((int64_t)self->got);
    WEFT_FN_END;
}

static void receiver_drop(weft_future *f)
{
    receiver *self = (receiver *)f;
    weft_co_drop(&self->co);
    if (self->inited)
        weft_fd_stream_fini(&self->s);
}

/* ---- read_exact: the exact bytes, and EOF in the middle ----------------------- */

typedef struct exact_reader {
    weft_future base;
    weft_co co;
    int fd;
    unsigned char *dst;
    size_t len, done;
    bool inited;
    weft_fd_stream s;
    weft_read_exact e;
    weft_read r;
    int rc;
    int64_t after; /* a read after the read_exact */
} exact_reader;

WEFT_ASYNC_FN_WITH_DROP(exact_reader, int)
{
    WEFT_FN_BEGIN;
    if (weft_fd_stream_init(&self->s, self->fd, 0) != 0)
        WEFT_FN_RETURN(-1);
    self->inited = true;
    weft_read_exact_init(&self->e, &self->s.reader, self->dst, self->len);
    WEFT_FN_AWAIT(&self->e, &self->rc);
    self->done = self->e.done;
    {
        static unsigned char one[16];
        weft_read_init(&self->r, &self->s.reader, one, sizeof one);
    }
    WEFT_FN_AWAIT(&self->r, &self->after);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

static void exact_reader_drop(weft_future *f)
{
    exact_reader *self = (exact_reader *)f;
    weft_co_drop(&self->co);
    if (self->inited)
        weft_fd_stream_fini(&self->s);
}

/* `sent` bytes in pieces, then the end of stream; a read_exact of `want`. */
static void run_read_exact(weft_rt *rt, size_t sent, size_t want, int expect_rc)
{
    int sv[2];
    pair(sv);
    memset(g_sink, 0, want);
    weft_join jf;
    assert_int_equal(WEFT_SPAWN(rt, &jf, &(sender){ WEFT_FN_INIT(sender, WEFT_F_SEND),
                                                     .fd = sv[1], .src = g_pattern,
                                                     .len = sent, .chunk = 3001, .fin = true }),
                     0);
    exact_reader r = { WEFT_FN_INIT(exact_reader, WEFT_F_SEND), .fd = sv[0], .dst = g_sink,
                       .len = want };
    int rc = -7;
    assert_int_equal(weft_block_on(rt, &r.base, &rc, sizeof rc), 0);
    int frc = -7;
    assert_int_equal(join_blocking(rt, &jf, &frc, sizeof frc), 0);
    assert_int_equal(frc, 0);
    assert_int_equal(rc, expect_rc);
    size_t expect_done = sent < want ? sent : want;
    assert_int_equal(r.done, expect_done);
    assert_memory_equal(g_sink, g_pattern, expect_done);
    /* What read_exact left is still there: the rest, then the end. */
    assert_int_equal(r.after, sent > want ? (int64_t)(sent - want < 16 ? sent - want : 16) : 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_read_exact_gets_exactly_the_bytes_sent(void **state)
{
    (void)state;
    run_read_exact(g_rt, 300000, 300000, 0);
    run_read_exact(g_rt, 300000 + 5, 300000, 0); /* stops at len: 5 left */
}

static void test_read_exact_eof_midway_is_enodata_with_the_bytes_kept(void **state)
{
    (void)state;
    run_read_exact(g_rt, 10007, 20000, -ENODATA);
    run_read_exact(g_rt, 0, 10, -ENODATA);
}

static void test_read_exact_on_chaos_sims(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        weft_rt *rt = chaos_sim(seed);
        run_read_exact(rt, 100000, 100000, 0);
        run_read_exact(rt, 777, 1000, -ENODATA);
        weft_rt_shutdown(rt);
    }
}

/* ---- write_all: megabytes against a slow reader --------------------------------- */

static void run_write_all_big(weft_rt *rt)
{
    int sv[2];
    pair(sv);
    memset(g_sink, 0, BIG);
    weft_join js, jr;
    /* One write_all of all of it: it must wait for the reader many times. */
    assert_int_equal(WEFT_SPAWN(rt, &js, &(sender){ WEFT_FN_INIT(sender, WEFT_F_SEND),
                                                     .fd = sv[1], .src = g_pattern, .len = BIG,
                                                     .chunk = BIG, .fin = true }),
                     0);
    assert_int_equal(WEFT_SPAWN(rt, &jr, &(receiver){ WEFT_FN_INIT(receiver, WEFT_F_SEND),
                                                       .fd = sv[0], .dst = g_sink, .cap = BIG,
                                                       .chunk = 7000, .slow = true }),
                     0);
    int src = -7;
    int64_t got = -7;
    assert_int_equal(join_blocking(rt, &js, &src, sizeof src), 0);
    assert_int_equal(join_blocking(rt, &jr, &got, sizeof got), 0);
    assert_int_equal(src, 0);
    assert_int_equal(got, BIG);
    assert_memory_equal(g_sink, g_pattern, BIG);
    close(sv[0]);
    close(sv[1]);
}

static void test_write_all_megabytes_against_a_slow_reader(void **state)
{
    (void)state;
    run_write_all_big(g_rt);
}

static void test_write_all_megabytes_on_a_chaos_sim(void **state)
{
    (void)state;
    weft_rt *rt = chaos_sim(5);
    run_write_all_big(rt);
    weft_rt_shutdown(rt);
}

/* ---- a write to a closed peer -------------------------------------------------------- */

typedef struct closed_writer {
    weft_future base;
    weft_co co;
    int fd;
    bool inited;
    weft_fd_stream s;
    weft_write_all w;
    weft_write w1;
    int rc;
    int64_t rc1;
    size_t done;
} closed_writer;

WEFT_ASYNC_FN_WITH_DROP(closed_writer, int)
{
    WEFT_FN_BEGIN;
    if (weft_fd_stream_init(&self->s, self->fd, 0) != 0)
        WEFT_FN_RETURN(-1);
    self->inited = true;
    weft_write_all_init(&self->w, &self->s.writer, g_pattern, BIG);
    WEFT_FN_AWAIT(&self->w, &self->rc);
    self->done = self->w.done;
    weft_write_init(&self->w1, &self->s.writer, g_pattern, 10);
    WEFT_FN_AWAIT(&self->w1, &self->rc1);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

static void closed_writer_drop(weft_future *f)
{
    closed_writer *self = (closed_writer *)f;
    weft_co_drop(&self->co);
    if (self->inited)
        weft_fd_stream_fini(&self->s);
}

static void test_write_to_a_closed_peer_is_epipe_without_sigpipe(void **state)
{
    (void)state;
    /* The default disposition: a SIGPIPE would end the test program. */
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    int sv[2];
    pair(sv);
    close(sv[1]);
    closed_writer c = { WEFT_FN_INIT(closed_writer, WEFT_F_SEND), .fd = sv[0] };
    int rc = -7;
    assert_int_equal(weft_block_on(g_rt, &c.base, &rc, sizeof rc), 0);
    assert_int_equal(rc, -EPIPE);
    assert_int_equal(c.done, 0); /* nothing written, and it says so */
    assert_int_equal(c.rc1, -EPIPE);
    close(sv[0]);
    signal(SIGPIPE, old);
}

/* ---- copy between two socketpairs ------------------------------------------------ */

typedef struct copier {
    weft_future base;
    weft_co co;
    int in, out;
    size_t bufsize;
    bool inited_in, inited_out;
    weft_fd_stream a, b;
    weft_copy c;
    weft_flush sh;
    unsigned char buf[8192];
    int64_t total;
    int rc;
} copier;

WEFT_ASYNC_FN_WITH_DROP(copier, int64_t)
{
    WEFT_FN_BEGIN;
    if (weft_fd_stream_init(&self->a, self->in, 0) != 0)
        WEFT_FN_RETURN(-1);
    self->inited_in = true;
    if (weft_fd_stream_init(&self->b, self->out, 0) != 0)
        WEFT_FN_RETURN(-1);
    self->inited_out = true;
    weft_copy_init(&self->c, &self->a.reader, &self->b.writer, self->buf, self->bufsize);
    WEFT_FN_AWAIT(&self->c, &self->total);
    if (self->total < 0)
        WEFT_FN_RETURN(self->total);
    if (weft_copy_pending(&self->c) != 0 || self->c.written != (uint64_t)self->total)
        WEFT_FN_RETURN(-2);
    weft_shutdown_write_init(&self->sh, &self->b.writer);
    WEFT_FN_AWAIT(&self->sh, &self->rc);
    WEFT_FN_RETURN(self->rc ? self->rc : self->total);
    WEFT_FN_END;
}

static void copier_drop(weft_future *f)
{
    copier *self = (copier *)f;
    weft_co_drop(&self->co);
    if (self->inited_in)
        weft_fd_stream_fini(&self->a);
    if (self->inited_out)
        weft_fd_stream_fini(&self->b);
}

static void run_copy(weft_rt *rt, size_t total, size_t bufsize)
{
    int a[2], b[2];
    pair(a);
    pair(b);
    memset(g_sink, 0, total);
    weft_join js, jc, jr;
    assert_int_equal(WEFT_SPAWN(rt, &js, &(sender){ WEFT_FN_INIT(sender, WEFT_F_SEND),
                                                     .fd = a[1], .src = g_pattern, .len = total,
                                                     .chunk = 65536, .fin = true }),
                     0);
    assert_int_equal(WEFT_SPAWN(rt, &jc, &(copier){ WEFT_FN_INIT(copier, WEFT_F_SEND),
                                                     .in = a[0], .out = b[0],
                                                     .bufsize = bufsize }),
                     0);
    assert_int_equal(WEFT_SPAWN(rt, &jr, &(receiver){ WEFT_FN_INIT(receiver, WEFT_F_SEND),
                                                       .fd = b[1], .dst = g_sink, .cap = total,
                                                       .chunk = 5000, .slow = true }),
                     0);
    int src = -7;
    int64_t copied = -7, got = -7;
    assert_int_equal(join_blocking(rt, &js, &src, sizeof src), 0);
    assert_int_equal(join_blocking(rt, &jc, &copied, sizeof copied), 0);
    assert_int_equal(join_blocking(rt, &jr, &got, sizeof got), 0);
    assert_int_equal(src, 0);
    assert_int_equal(copied, total);
    assert_int_equal(got, total);
    assert_memory_equal(g_sink, g_pattern, total);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

static void test_copy_between_two_socketpairs(void **state)
{
    (void)state;
    run_copy(g_rt, 2u << 20, 8192);
    run_copy(g_rt, 1000, 7); /* a buffer smaller than the writes */
    run_copy(g_rt, 0, 64);   /* an empty stream: 0 */
}

static void test_copy_on_chaos_sims(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        weft_rt *rt = chaos_sim(seed);
        run_copy(rt, 300000, 4096);
        weft_rt_shutdown(rt);
    }
}

/* ---- scripted readers and writers ------------------------------------------------ */

/* A reader that gives `chunks` one at a time (at most `len` of each per
 * read, the rest next time), PENDING (woken at once) before each one, and
 * the end after the last; counts its reads. */
typedef struct script_reader {
    weft_reader base;
    const char *const *chunks;
    size_t i, off;
    bool pend;
    unsigned reads;
} script_reader;

static weft_poll script_poll_read(weft_reader *r, weft_cx *cx, void *buf, size_t len,
                                  int64_t *res)
{
    script_reader *s = (script_reader *)r;
    if (!s->chunks[s->i]) {
        *res = 0;
        return WEFT_READY;
    }
    if (s->pend) {
        s->pend = false;
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    size_t left = strlen(s->chunks[s->i]) - s->off;
    size_t n = left < len ? left : len;
    memcpy(buf, s->chunks[s->i] + s->off, n);
    s->off += n;
    if (s->off == strlen(s->chunks[s->i])) {
        s->i++;
        s->off = 0;
        s->pend = true;
    }
    s->reads++;
    *res = (int64_t)n;
    return WEFT_READY;
}

static const weft_reader_ops script_reader_ops = { "script_reader", script_poll_read };

static script_reader script(const char *const *chunks)
{
    return (script_reader){ { &script_reader_ops }, chunks, 0, 0, true, 0 };
}

/* Polls `f` by hand (a no-op waker) until READY or `max` polls. Returns
 * the polls it took, or max + 1 if it did not finish. */
static unsigned poll_until_ready(weft_future *f, void *out, unsigned max)
{
    weft_waker w = weft_waker_noop();
    weft_cx cx;
    for (unsigned i = 1; i <= max; i++) {
        weft_cx_init(&cx, &w);
        if (weft_future_poll(f, &cx, out) == WEFT_READY)
            return i;
    }
    return max + 1;
}

static void test_read_line_joins_lines_split_across_reads(void **state)
{
    (void)state;
    static const char *const chunks[] = { "hel", "lo\nwo", "rld", "\n\nlast", NULL };
    script_reader s = script(chunks);
    weft_bufreader b;
    char bbuf[32], line[32];
    assert_int_equal(weft_bufreader_init(&b, &s.base, bbuf, sizeof bbuf), 0);
    const char *want[] = { "hello\n", "world\n", "\n", "last", "" };
    for (int i = 0; i < 5; i++) {
        weft_read_line l;
        weft_read_line_init(&l, &b, line, sizeof line);
        int64_t n = -7;
        assert_true(poll_until_ready(&l.base, &n, 100) <= 100);
        weft_future_drop(&l.base);
        assert_int_equal(n, (int64_t)strlen(want[i]));
        assert_memory_equal(line, want[i], strlen(want[i]));
    }
}

static void test_read_line_dropped_midway_loses_nothing(void **state)
{
    (void)state;
    static const char *const chunks[] = { "ab", "cd", "ef\ngh", "\n", NULL };
    script_reader s = script(chunks);
    weft_bufreader b;
    char bbuf[16], line[16];
    assert_int_equal(weft_bufreader_init(&b, &s.base, bbuf, sizeof bbuf), 0);
    /* A read_line polled twice takes "ab" in, one polled once "cd"; each
     * is dropped pending, and the partial line waits in the bufreader. */
    for (unsigned polls = 2; polls >= 1; polls--) {
        weft_read_line l;
        weft_read_line_init(&l, &b, line, sizeof line);
        int64_t n = -7;
        assert_int_equal(poll_until_ready(&l.base, &n, polls), polls + 1); /* not done */
        weft_future_drop(&l.base);
    }
    assert_int_equal(weft_bufreader_buffered(&b, NULL), 4); /* "abcd" */
    weft_read_line l;
    weft_read_line_init(&l, &b, line, sizeof line);
    int64_t n = -7;
    assert_true(poll_until_ready(&l.base, &n, 100) <= 100);
    assert_int_equal(n, 7);
    assert_memory_equal(line, "abcdef\n", 7);
    weft_read_line_init(&l, &b, line, sizeof line);
    assert_true(poll_until_ready(&l.base, &n, 100) <= 100);
    assert_int_equal(n, 3);
    assert_memory_equal(line, "gh\n", 3);
}

static void test_read_line_too_long_is_enobufs_and_keeps_the_bytes(void **state)
{
    (void)state;
    static const char *const chunks[] = { "0123456789", "abc\nok\n", NULL };
    script_reader s = script(chunks);
    weft_bufreader b;
    char bbuf[64], line[8];
    assert_int_equal(weft_bufreader_init(&b, &s.base, bbuf, sizeof bbuf), 0);
    weft_read_line l;
    weft_read_line_init(&l, &b, line, sizeof line);
    int64_t n = -7;
    assert_true(poll_until_ready(&l.base, &n, 100) <= 100);
    assert_int_equal(n, -ENOBUFS);
    /* Nothing consumed: the long line is still there to read. */
    const void *data;
    assert_int_equal(weft_bufreader_buffered(&b, &data), 10);
    assert_memory_equal(data, "0123456789", 10);
    /* Read it by hand with weft_read on the bufreader, then lines again. */
    char got[32];
    size_t have = 0;
    while (have < 14) {
        weft_read r;
        weft_read_init(&r, &b.reader, got + have, 14 - have);
        assert_true(poll_until_ready(&r.base, &n, 100) <= 100);
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_memory_equal(got, "0123456789abc\n", 14);
    weft_read_line_init(&l, &b, line, sizeof line);
    assert_true(poll_until_ready(&l.base, &n, 100) <= 100);
    assert_int_equal(n, 3);
    assert_memory_equal(line, "ok\n", 3);
    /* The end. */
    weft_read_line_init(&l, &b, line, sizeof line);
    assert_true(poll_until_ready(&l.base, &n, 100) <= 100);
    assert_int_equal(n, 0);
}

static void test_read_line_longer_than_the_bufreader_is_enobufs(void **state)
{
    (void)state;
    static const char *const chunks[] = { "abcdefgh", "ij\n", NULL };
    script_reader s = script(chunks);
    weft_bufreader b;
    char bbuf[6], line[64];
    assert_int_equal(weft_bufreader_init(&b, &s.base, bbuf, sizeof bbuf), 0);
    weft_read_line l;
    weft_read_line_init(&l, &b, line, sizeof line);
    int64_t n = -7;
    assert_true(poll_until_ready(&l.base, &n, 100) <= 100);
    assert_int_equal(n, -ENOBUFS);
    assert_int_equal(weft_bufreader_buffered(&b, NULL), 6); /* full, kept */
    weft_bufreader_consume(&b, 6);
    weft_read_line_init(&l, &b, line, sizeof line);
    assert_true(poll_until_ready(&l.base, &n, 100) <= 100);
    assert_int_equal(n, 5);
    assert_memory_equal(line, "ghij\n", 5);
}

/* Lines over a socketpair, with the writer splitting them at odd places. */
typedef struct line_reader {
    weft_future base;
    weft_co co;
    int fd;
    bool inited;
    weft_fd_stream s;
    weft_bufreader b;
    weft_read_line l;
    char bbuf[64], line[64];
    char *dst;
    size_t got;
    unsigned lines;
    int64_t n;
} line_reader;

WEFT_ASYNC_FN_WITH_DROP(line_reader, int64_t)
{
    WEFT_FN_BEGIN;
    if (weft_fd_stream_init(&self->s, self->fd, 0) != 0)
        WEFT_FN_RETURN(-1);
    self->inited = true;
    if (weft_bufreader_init(&self->b, &self->s.reader, self->bbuf, sizeof self->bbuf) != 0)
        WEFT_FN_RETURN(-1);
    for (;;) {
        weft_read_line_init(&self->l, &self->b, self->line, sizeof self->line);
        WEFT_FN_AWAIT(&self->l, &self->n);
        if (self->n <= 0)
            break;
        if (self->line[self->n - 1] != '\n')
            WEFT_FN_RETURN(-3);
        memcpy(self->dst + self->got, self->line, (size_t)self->n);
        self->got += (size_t)self->n;
        self->lines++;
    }
    WEFT_FN_RETURN(self->n < 0 ? self->n : (int64_t)self->got);
    WEFT_FN_END;
}

static void line_reader_drop(weft_future *f)
{
    line_reader *self = (line_reader *)f;
    weft_co_drop(&self->co);
    if (self->inited)
        weft_fd_stream_fini(&self->s);
}

static void run_lines(weft_rt *rt)
{
    static char text[20000];
    size_t len = 0;
    unsigned nlines = 0;
    for (unsigned i = 0; len < sizeof text - 80; i++, nlines++)
        len += (size_t)snprintf(text + len, 80, "line %u %.*s\n", i, (int)(i % 40), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    int sv[2];
    pair(sv);
    static char got[20000];
    weft_join js;
    assert_int_equal(WEFT_SPAWN(rt, &js, &(sender){ WEFT_FN_INIT(sender, WEFT_F_SEND),
                                                     .fd = sv[1],
                                                     .src = (const unsigned char *)text,
                                                     .len = len, .chunk = 37, .fin = true }),
                     0);
    line_reader lr = { WEFT_FN_INIT(line_reader, WEFT_F_SEND), .fd = sv[0], .dst = got };
    int64_t n = -7;
    assert_int_equal(weft_block_on(rt, &lr.base, &n, sizeof n), 0);
    int src = -7;
    assert_int_equal(join_blocking(rt, &js, &src, sizeof src), 0);
    assert_int_equal(src, 0);
    assert_int_equal(n, len);
    assert_int_equal(lr.lines, nlines);
    assert_memory_equal(got, text, len);
    close(sv[0]);
    close(sv[1]);
}

static void test_read_line_over_a_socketpair(void **state)
{
    (void)state;
    run_lines(g_rt);
}

static void test_read_line_on_chaos_sims(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        weft_rt *rt = chaos_sim(seed);
        run_lines(rt);
        weft_rt_shutdown(rt);
    }
}

/* ---- misuse ------------------------------------------------------------------------ */

static void test_misuse_is_einval_and_reported(void **state)
{
    (void)state;
    int before = misuse_count();
    char buf[8];
    int64_t n = 7;
    int rc = 7;
    static const char *const none[] = { NULL };
    script_reader s = script(none);
    weft_reader no_ops = { NULL };

    weft_read r;
    weft_read_init(&r, NULL, buf, sizeof buf);
    assert_int_equal(poll_until_ready(&r.base, &n, 1), 1);
    assert_int_equal(n, -EINVAL);
    assert_misuse_since(before, 1, "weft_read");

    weft_read_exact e;
    weft_read_exact_init(&e, &s.base, NULL, 4);
    assert_int_equal(poll_until_ready(&e.base, &rc, 1), 1);
    assert_int_equal(rc, -EINVAL);
    assert_misuse_since(before, 2, "weft_read_exact");

    weft_write w;
    weft_write_init(&w, NULL, buf, 1);
    assert_int_equal(poll_until_ready(&w.base, &n, 1), 1);
    assert_int_equal(n, -EINVAL);

    weft_write_all wa;
    weft_write_all_init(&wa, (weft_writer *)&no_ops, buf, 1);
    assert_int_equal(poll_until_ready(&wa.base, &rc, 1), 1);
    assert_int_equal(rc, -EINVAL);
    assert_misuse_since(before, 4, "weft_write_all");

    weft_flush f;
    weft_shutdown_write_init(&f, NULL);
    assert_int_equal(poll_until_ready(&f.base, &rc, 1), 1);
    assert_int_equal(rc, -EINVAL);
    assert_misuse_since(before, 5, "weft_shutdown_write");

    weft_copy c;
    weft_copy_init(&c, &s.base, NULL, buf, sizeof buf);
    assert_int_equal(poll_until_ready(&c.base, &n, 1), 1);
    assert_int_equal(n, -EINVAL);
    assert_misuse_since(before, 6, "weft_copy");

    weft_bufreader b;
    assert_int_equal(weft_bufreader_init(&b, &s.base, buf, 0), -EINVAL);
    assert_int_equal(weft_bufreader_init(&b, &no_ops, buf, 4), -EINVAL);
    assert_misuse_since(before, 8, "weft_bufreader_init");

    /* read_line on something that is not a bufreader. */
    weft_read_line l;
    weft_read_line_init(&l, (weft_bufreader *)&s, buf, sizeof buf);
    assert_int_equal(poll_until_ready(&l.base, &n, 1), 1);
    assert_int_equal(n, -EINVAL);
    assert_misuse_since(before, 9, "weft_read_line");

    /* len 0: done at once, nothing called, no report. */
    int m = misuse_count();
    weft_read_init(&r, &s.base, buf, 0);
    assert_int_equal(poll_until_ready(&r.base, &n, 1), 1);
    assert_int_equal(n, 0);
    assert_int_equal(s.reads, 0);
    assert_no_misuse_since(m);
}

/* A reader that returns more than asked: -EIO, reported. */
static weft_poll liar_poll_read(weft_reader *r, weft_cx *cx, void *buf, size_t len,
                                int64_t *res)
{
    (void)r, (void)cx, (void)buf;
    *res = (int64_t)len + 1;
    return WEFT_READY;
}
static const weft_reader_ops liar_ops = { "liar", liar_poll_read };

static void test_a_reader_breaking_its_contract_is_eio(void **state)
{
    (void)state;
    int before = misuse_count();
    weft_reader liar = { &liar_ops };
    char buf[8];
    weft_read_exact e;
    weft_read_exact_init(&e, &liar, buf, sizeof buf);
    int rc = 7;
    assert_int_equal(poll_until_ready(&e.base, &rc, 1), 1);
    assert_int_equal(rc, -EIO);
    assert_int_equal(e.done, 0);
    assert_misuse_since(before, 1, "liar");
}

/* ---- cancel sweeps --------------------------------------------------------------- */

#define SWEEP_BYTES 10

/* Reads what is left on `fd` (non-blocking, the peer shut down) to the end
 * into dst; returns the count, or -1 on an error. */
static ssize_t drain(int fd, unsigned char *dst, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, dst + got, cap - got);
        if (n == 0)
            return (ssize_t)got;
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
}

/* The bytes seen, in order, must be g_pattern[0, SWEEP_BYTES). */
static const char *check_bytes(const unsigned char *seen, size_t n, unsigned k)
{
    if (n != SWEEP_BYTES)
        return sweep_say("k=%u: %zu bytes in all, sent %d", k, n, SWEEP_BYTES);
    if (memcmp(seen, g_pattern, n) != 0)
        return sweep_say("k=%u: the bytes differ from those sent", k);
    return NULL;
}

/* read and read_exact: a reader of sv[0], the peer fed by a raw feeder. */
typedef struct rd_case {
    int sv[2];
    weft_fd_stream s;
    bool exact;
    weft_read r;
    weft_read_exact e;
    unsigned char buf[64];
    int64_t n;
    int rc;
} rd_case;

static int rd_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    rd_case *c = ctx;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv) != 0)
        return -errno;
    int err = weft_fd_stream_init(&c->s, c->sv[0], 0);
    if (err)
        return err;
    memset(c->buf, 0, sizeof c->buf);
    c->n = -999;
    c->rc = -999;
    if (c->exact) {
        weft_read_exact_init(&c->e, &c->s.reader, c->buf, SWEEP_BYTES);
        *fut = &c->e.base;
        *out = &c->rc;
    } else {
        weft_read_init(&c->r, &c->s.reader, c->buf, sizeof c->buf);
        *fut = &c->r.base;
        *out = &c->n;
    }
    return WEFT_SPAWN(rt, NULL, &(raw_feeder){ WEFT_FN_INIT(raw_feeder, WEFT_F_SEND),
                                               .fd = c->sv[1], .total = SWEEP_BYTES,
                                               .chunk = 3, .fin = true });
}

static const char *rd_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    rd_case *c = ctx;
    unsigned char seen[128];
    size_t have;
    if (c->exact) {
        if (run->completed && (c->rc != 0 || c->e.done != SWEEP_BYTES))
            return sweep_say("completed with %d, done %zu", c->rc, c->e.done);
        have = c->e.done; /* what the dropped read_exact says it read */
    } else {
        if (run->completed && c->n <= 0)
            return sweep_say("completed with %lld", (long long)c->n);
        have = run->completed ? (size_t)c->n : 0;
    }
    memcpy(seen, c->buf, have);
    /* The drop may leave the waker of its last read with the fd (a
     * spurious wake later); deregistering releases it. */
    weft_fd_stream_fini(&c->s);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    ssize_t rest = drain(c->sv[0], seen + have, sizeof seen - have);
    if (rest < 0)
        return sweep_say("k=%u: draining failed", run->k);
    return check_bytes(seen, have + (size_t)rest, run->k);
}

static void rd_teardown(void *ctx)
{
    rd_case *c = ctx;
    weft_fd_stream_fini(&c->s);
    close(c->sv[0]);
    close(c->sv[1]);
}

static void test_cancel_sweep_read(void **state)
{
    (void)state;
    static rd_case c;
    c.exact = false;
    weft_sweep_case sc = { rd_build, rd_check, rd_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 2); /* it waited for the bytes */
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
}

static void test_cancel_sweep_read_exact(void **state)
{
    (void)state;
    static rd_case c;
    c.exact = true;
    weft_sweep_case sc = { rd_build, rd_check, rd_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 3); /* it read in several pieces */
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
}

/* A writer over another that is PENDING (woken at once) every other call
 * and takes at most 4 bytes: a slow peer, without timing. */
typedef struct slow_writer {
    weft_writer base;
    weft_writer *inner;
    bool pend;
} slow_writer;

static weft_poll slow_poll_write(weft_writer *w, weft_cx *cx, const void *buf, size_t len,
                                 int64_t *res)
{
    slow_writer *s = (slow_writer *)w;
    s->pend = !s->pend;
    if (s->pend) {
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_PENDING;
    }
    return s->inner->ops->poll_write(s->inner, cx, buf, len < 4 ? len : 4, res);
}

static const weft_writer_ops slow_writer_ops = { "slow_writer", slow_poll_write, NULL, NULL };

/* write_all: through a slow writer to sv[0]; the check reads sv[1]. */
typedef struct wa_case {
    int sv[2];
    weft_fd_stream s;
    slow_writer slow;
    weft_write_all w;
    int rc;
} wa_case;

#define WA_BYTES 23

static int wa_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    wa_case *c = ctx;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv) != 0)
        return -errno;
    int err = weft_fd_stream_init(&c->s, c->sv[0], 0);
    if (err)
        return err;
    c->slow = (slow_writer){ { &slow_writer_ops }, &c->s.writer, false };
    c->rc = -999;
    weft_write_all_init(&c->w, &c->slow.base, g_pattern, WA_BYTES);
    *fut = &c->w.base;
    *out = &c->rc;
    return 0;
}

static const char *wa_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    wa_case *c = ctx;
    if (run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) held after the drop", run->k,
                         run->wakers_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    if (run->completed && (c->rc != 0 || c->w.done != WA_BYTES))
        return sweep_say("completed with %d, done %zu", c->rc, c->w.done);
    if (shutdown(c->sv[0], SHUT_WR) != 0)
        return "shutdown failed";
    unsigned char got[64];
    ssize_t n = drain(c->sv[1], got, sizeof got);
    if (n < 0 || (size_t)n != c->w.done)
        return sweep_say("k=%u: the peer got %zd bytes, write_all reported %zu", run->k, n,
                         c->w.done);
    if (memcmp(got, g_pattern, (size_t)n) != 0)
        return sweep_say("k=%u: the bytes differ", run->k);
    return NULL;
}

static void wa_teardown(void *ctx)
{
    wa_case *c = ctx;
    weft_fd_stream_fini(&c->s);
    close(c->sv[0]);
    close(c->sv[1]);
}

static void test_cancel_sweep_write_all(void **state)
{
    (void)state;
    static wa_case c;
    weft_sweep_case sc = { wa_build, wa_check, wa_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 6); /* many pieces */
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
}

/* write and shutdown_write: one write of WA_BYTES through the slow writer
 * (PENDING first), or a shutdown of sv[0]'s write side; the check reads
 * sv[1]: exactly the bytes the write reported (none unless it completed),
 * and the end of stream only if the shutdown completed. */
typedef struct w1_case {
    int sv[2];
    weft_fd_stream s;
    slow_writer slow;
    bool shut;
    weft_write w;
    weft_flush f;
    int64_t n;
    int rc;
} w1_case;

static int w1_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    w1_case *c = ctx;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv) != 0)
        return -errno;
    int err = weft_fd_stream_init(&c->s, c->sv[0], 0);
    if (err)
        return err;
    c->slow = (slow_writer){ { &slow_writer_ops }, &c->s.writer, false };
    c->n = -999;
    c->rc = -999;
    if (c->shut) {
        weft_shutdown_write_init(&c->f, &c->s.writer);
        *fut = &c->f.base;
        *out = &c->rc;
    } else {
        weft_write_init(&c->w, &c->slow.base, g_pattern, WA_BYTES);
        *fut = &c->w.base;
        *out = &c->n;
    }
    return 0;
}

static const char *w1_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    w1_case *c = ctx;
    if (run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) held after the drop", run->k,
                         run->wakers_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    unsigned char got[64];
    if (c->shut) {
        if (run->completed && c->rc != 0)
            return sweep_say("completed with %d", c->rc);
        ssize_t n = recv(c->sv[1], got, sizeof got, MSG_DONTWAIT);
        bool ended = n == 0;
        if (ended != run->completed)
            return sweep_say("k=%u: the peer %s the end", run->k, ended ? "saw" : "did not see");
        return NULL;
    }
    if (run->completed && (c->n <= 0 || c->n > 4))
        return sweep_say("completed with %lld", (long long)c->n);
    size_t wrote = run->completed ? (size_t)c->n : 0;
    if (shutdown(c->sv[0], SHUT_WR) != 0)
        return "shutdown failed";
    ssize_t n = drain(c->sv[1], got, sizeof got);
    if (n < 0 || (size_t)n != wrote || memcmp(got, g_pattern, wrote) != 0)
        return sweep_say("k=%u: the peer got %zd bytes, the write reported %zu", run->k, n,
                         wrote);
    return NULL;
}

static void w1_teardown(void *ctx)
{
    w1_case *c = ctx;
    weft_fd_stream_fini(&c->s);
    close(c->sv[0]);
    close(c->sv[1]);
}

static void test_cancel_sweep_write_and_shutdown_write(void **state)
{
    (void)state;
    static w1_case c;
    weft_sweep_case sc = { w1_build, w1_check, w1_teardown, &c };
    for (int shut = 0; shut <= 1; shut++) {
        c.shut = shut;
        weft_sweep_options o = sweep_options(1, 2);
        weft_sweep_result res = sweep_pass(&sc, &o);
        assert_true(res.polls >= (shut ? 1u : 2u));
        o = sweep_chaos_options(1, 8, 0.5);
        sweep_pass(&sc, &o);
    }
}

/* write_all against a full socket: the fd stream's own wait for room.
 * sv[0]'s send buffer is small, so a write_all of WB_BYTES waits for the
 * drainer many times; the drainer (plain reads, a weft_io_ready wait
 * between them) stops once nothing has come for 50 ms of virtual time —
 * the clock moves only when the reactor has nothing, so in a run that
 * keeps writing it never stops early. */
#define WB_BYTES (256u << 10)

typedef struct drainer {
    weft_future base;
    weft_co co;
    int fd;
    size_t *got;
    unsigned char *dst;
    bool inited;
    weft_io io;
    weft_io_ready ready;
    weft_timeout t;
    uint32_t bits;
} drainer;

WEFT_ASYNC_FN_WITH_DROP(drainer, int)
{
    WEFT_FN_BEGIN;
    if (weft_io_register(&self->io, self->fd) != 0)
        WEFT_FN_RETURN(-1);
    self->inited = true;
    for (;;) {
        {
            ssize_t n = read(self->fd, self->dst + *self->got, WB_BYTES + 1 - *self->got);
            if (n > 0) {
                *self->got += (size_t)n;
                continue;
            }
            if (n == 0 || errno != EAGAIN)
                WEFT_FN_RETURN(-1);
        }
        weft_io_clear_ready(&self->io, WEFT_IO_READ);
        weft_io_ready_init(&self->ready, &self->io, WEFT_IO_READ);
        if (weft_timeout_init(&self->t, &self->ready.base, WEFT_MS(50)) != 0)
            WEFT_FN_RETURN(-1);
        WEFT_FN_AWAIT(&self->t, &self->bits);
        if (self->t.status == -ETIMEDOUT)
            break;
    }
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

static void drainer_drop(weft_future *f)
{
    drainer *self = (drainer *)f;
    weft_co_drop(&self->co);
    if (self->inited)
        weft_io_deregister(&self->io);
}

typedef struct wb_case {
    int sv[2];
    weft_fd_stream s;
    weft_write_all w;
    int rc;
    size_t got;
} wb_case;

static int wb_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    wb_case *c = ctx;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv) != 0)
        return -errno;
    int small = 4096;
    if (setsockopt(c->sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) != 0)
        return -errno;
    int err = weft_fd_stream_init(&c->s, c->sv[0], 0);
    if (err)
        return err;
    c->rc = -999;
    c->got = 0;
    weft_write_all_init(&c->w, &c->s.writer, g_pattern, WB_BYTES);
    *fut = &c->w.base;
    *out = &c->rc;
    return WEFT_SPAWN(rt, NULL, &(drainer){ WEFT_FN_INIT(drainer, WEFT_F_SEND), .fd = c->sv[1],
                                            .got = &c->got, .dst = g_sink });
}

static const char *wb_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    wb_case *c = ctx;
    if (run->completed && (c->rc != 0 || c->w.done != WB_BYTES))
        return sweep_say("completed with %d, done %zu", c->rc, c->w.done);
    weft_fd_stream_fini(&c->s);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    /* The drainer stopped when nothing more came: it has it all. */
    if (c->got != c->w.done)
        return sweep_say("k=%u: the peer got %zu bytes, write_all reported %zu", run->k,
                         c->got, c->w.done);
    if (memcmp(g_sink, g_pattern, c->got) != 0)
        return sweep_say("k=%u: the bytes differ", run->k);
    return NULL;
}

static void wb_teardown(void *ctx)
{
    wb_case *c = ctx;
    weft_fd_stream_fini(&c->s);
    close(c->sv[0]);
    close(c->sv[1]);
}

static void test_cancel_sweep_write_all_against_a_full_socket(void **state)
{
    (void)state;
    static wb_case c;
    weft_sweep_case sc = { wb_build, wb_check, wb_teardown, &c };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&sc, &o);
    print_message("write_all of %u KiB through a 4 KiB send buffer: %u polls\n",
                  WB_BYTES >> 10, res.polls);
    assert_true(res.polls >= 4); /* it waited for room */
    o = sweep_chaos_options(2, 2, 0.3);
    sweep_pass(&sc, &o);
}

/* copy: from a[0] (fed by a raw feeder, then its end) through a slow
 * writer to b[0]; the check reads b[1] and what a[0] still holds. */
typedef struct cp_case {
    int a[2], b[2];
    weft_fd_stream in, out;
    slow_writer slow;
    weft_copy c;
    unsigned char buf[5];
    int64_t total;
} cp_case;

static int cp_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    cp_case *c = ctx;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->a) != 0)
        return -errno;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->b) != 0)
        return -errno;
    int err = weft_fd_stream_init(&c->in, c->a[0], 0);
    if (!err)
        err = weft_fd_stream_init(&c->out, c->b[0], 0);
    if (err)
        return err;
    c->slow = (slow_writer){ { &slow_writer_ops }, &c->out.writer, false };
    c->total = -999;
    weft_copy_init(&c->c, &c->in.reader, &c->slow.base, c->buf, sizeof c->buf);
    *fut = &c->c.base;
    *out = &c->total;
    return WEFT_SPAWN(rt, NULL, &(raw_feeder){ WEFT_FN_INIT(raw_feeder, WEFT_F_SEND),
                                               .fd = c->a[1], .total = SWEEP_BYTES,
                                               .chunk = 3, .fin = true });
}

static const char *cp_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    cp_case *c = ctx;
    if (run->completed && (c->total != SWEEP_BYTES || weft_copy_pending(&c->c) != 0))
        return sweep_say("completed with %lld", (long long)c->total);
    weft_fd_stream_fini(&c->in);
    weft_fd_stream_fini(&c->out);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    /* Written to b, then held in the copy's buffer, then still in a. */
    unsigned char seen[128];
    if (shutdown(c->b[0], SHUT_WR) != 0)
        return "shutdown failed";
    ssize_t n = drain(c->b[1], seen, sizeof seen);
    if (n < 0 || (uint64_t)n != c->c.written)
        return sweep_say("k=%u: the peer got %zd bytes, copy reported %llu written", run->k,
                         n, (unsigned long long)c->c.written);
    size_t have = (size_t)n, pend = weft_copy_pending(&c->c);
    memcpy(seen + have, c->buf + weft_copy_pending_offset(&c->c), pend);
    have += pend;
    ssize_t rest = drain(c->a[0], seen + have, sizeof seen - have);
    if (rest < 0)
        return "draining failed";
    return check_bytes(seen, have + (size_t)rest, run->k);
}

static void cp_teardown(void *ctx)
{
    cp_case *c = ctx;
    weft_fd_stream_fini(&c->in);
    weft_fd_stream_fini(&c->out);
    close(c->a[0]);
    close(c->a[1]);
    close(c->b[0]);
    close(c->b[1]);
}

static void test_cancel_sweep_copy(void **state)
{
    (void)state;
    static cp_case c;
    weft_sweep_case sc = { cp_build, cp_check, cp_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 6);
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
}

/* read_line: a bufreader of 8 bytes over sv[0], fed "abcdefg\nhi" in
 * pieces of 3, so the line (8 bytes, the whole buffer) takes three reads;
 * the check takes the line, what the bufreader holds, and what sv[0]
 * still holds: the text, in order, once. */
static const char g_text[] = "abcdefg\nhi";

typedef struct rl_case {
    int sv[2];
    weft_fd_stream s;
    weft_bufreader b;
    char bbuf[8];
    weft_read_line l;
    char line[16];
    int64_t n;
} rl_case;

typedef struct text_feeder {
    weft_future base;
    weft_co co;
    int fd;
    size_t off;
    weft_sleep nap;
} text_feeder;

WEFT_ASYNC_FN(text_feeder, int)
{
    WEFT_FN_BEGIN;
    while (self->off < sizeof g_text - 1) {
        weft_sleep_init(&self->nap, WEFT_MS(1));
        WEFT_FN_AWAIT(&self->nap, NULL);
        {
            size_t n = sizeof g_text - 1 - self->off < 3 ? sizeof g_text - 1 - self->off : 3;
            if (write(self->fd, g_text + self->off, n) != (ssize_t)n)
                WEFT_FN_RETURN(-1);
            self->off += n;
        }
    }
    WEFT_FN_RETURN(shutdown(self->fd, SHUT_WR));
    WEFT_FN_END;
}

static int rl_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    rl_case *c = ctx;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sv) != 0)
        return -errno;
    int err = weft_fd_stream_init(&c->s, c->sv[0], 0);
    if (err)
        return err;
    err = weft_bufreader_init(&c->b, &c->s.reader, c->bbuf, sizeof c->bbuf);
    if (err)
        return err;
    c->n = -999;
    weft_read_line_init(&c->l, &c->b, c->line, sizeof c->line);
    *fut = &c->l.base;
    *out = &c->n;
    return WEFT_SPAWN(rt, NULL, &(text_feeder){ WEFT_FN_INIT(text_feeder, WEFT_F_SEND),
                                                .fd = c->sv[1] });
}

static const char *rl_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    rl_case *c = ctx;
    char seen[64];
    size_t have = 0;
    if (run->completed) {
        if (c->n != 8 || memcmp(c->line, "abcdefg\n", 8) != 0)
            return sweep_say("completed with %lld", (long long)c->n);
        memcpy(seen, c->line, 8);
        have = 8;
    }
    const void *data;
    size_t buffered = weft_bufreader_buffered(&c->b, &data);
    memcpy(seen + have, data, buffered);
    have += buffered;
    weft_fd_stream_fini(&c->s);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    ssize_t rest = drain(c->sv[0], (unsigned char *)seen + have, sizeof seen - have);
    if (rest < 0)
        return "draining failed";
    have += (size_t)rest;
    if (have != sizeof g_text - 1 || memcmp(seen, g_text, have) != 0)
        return sweep_say("k=%u: saw %zu bytes \"%.*s\"", run->k, have, (int)have, seen);
    return NULL;
}

static void rl_teardown(void *ctx)
{
    rl_case *c = ctx;
    weft_fd_stream_fini(&c->s);
    close(c->sv[0]);
    close(c->sv[1]);
}

static void test_cancel_sweep_read_line(void **state)
{
    (void)state;
    static rl_case c;
    weft_sweep_case sc = { rl_build, rl_check, rl_teardown, &c };
    weft_sweep_options o = sweep_options(1, 2);
    weft_sweep_result res = sweep_pass(&sc, &o);
    assert_true(res.polls >= 3); /* the line came in three pieces */
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&sc, &o);
}

static int group_setup(void **state)
{
    (void)state;
    fill_pattern();
    return 0;
}

int main(void)
{
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_read_exact_gets_exactly_the_bytes_sent),
        RT(test_read_exact_eof_midway_is_enodata_with_the_bytes_kept),
        SIM(test_read_exact_on_chaos_sims),
        RT(test_write_all_megabytes_against_a_slow_reader),
        SIM(test_write_all_megabytes_on_a_chaos_sim),
        RT(test_write_to_a_closed_peer_is_epipe_without_sigpipe),
        RT(test_copy_between_two_socketpairs),
        SIM(test_copy_on_chaos_sims),
        T(test_read_line_joins_lines_split_across_reads),
        T(test_read_line_dropped_midway_loses_nothing),
        T(test_read_line_too_long_is_enobufs_and_keeps_the_bytes),
        T(test_read_line_longer_than_the_bufreader_is_enobufs),
        RT(test_read_line_over_a_socketpair),
        SIM(test_read_line_on_chaos_sims),
        T(test_misuse_is_einval_and_reported),
        T(test_a_reader_breaking_its_contract_is_eio),
        SIM(test_cancel_sweep_read),
        SIM(test_cancel_sweep_read_exact),
        SIM(test_cancel_sweep_write_and_shutdown_write),
        SIM(test_cancel_sweep_write_all),
        SIM(test_cancel_sweep_write_all_against_a_full_socket),
        SIM(test_cancel_sweep_copy),
        SIM(test_cancel_sweep_read_line),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
