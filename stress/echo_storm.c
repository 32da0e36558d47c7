/* stress_echo_storm: a TCP echo server on 127.0.0.1 under many short
 * connections from client tasks and foreign threads, with half-closes,
 * resets, dropped clients and read timeouts, accounting for every byte.
 *
 *   stress_echo_storm [--threads N] [--iters N] [--seed S] [--seconds T]
 *
 * --threads  workers per runtime (default 2)
 * --iters    stop after this many rounds (default 0: only the time box)
 * --seed     the run's seed (default: from the clock); printed first
 * --seconds  time box (default 3)
 *
 * Each round starts a runtime and an acceptor task that binds a
 * weft_tcp_listener to 127.0.0.1 port 0 and accepts in a loop (a select
 * of the accept and the round's cancellation token); each connection gets
 * a detached task that echoes it, either with weft_read / weft_write_all
 * or with weft_copy, over "tap" readers and writers of its own (a
 * weft_reader and a weft_writer wrapping the stream's, which count the
 * bytes that pass and keep the first 8 read), then shuts its write side
 * and closes. 4-40 client tasks and 0-3 foreign threads (plain blocking
 * sockets) each make 1-6 connections one after the other, so at most 43
 * client connections are open at a time.
 *
 * Every connection k of the round has a plan drawn from the round's seed:
 * its length (0, up to 1 KiB, or up to 64 KiB), its chunk size (up to 16,
 * 512, 4096 or 16384 bytes) and a window (4-48 KiB: the most it sends
 * before reading back, so client and server never both wait on full
 * buffers), and what it does:
 *  - normal: send everything, read the echo until it has it all, close;
 *  - half-close: the same, but shut the write side after the last byte,
 *    then read until end of stream;
 *  - abort: stop after a random number of bytes sent, set SO_LINGER 0 and
 *    close (a reset: the server's read or write fails with -ECONNRESET or
 *    -EPIPE and its task must end and close);
 *  - timeout (tasks only): every read runs under an owning weft_timeout of
 *    0-50 us or 0.2-2 ms; when one fires the client closes at once, or
 *    (half the time, up to MAX_RETRIES per connection) reads on: a
 *    dropped read loses nothing, so the echo must go on at the right
 *    offset.
 * A client task reads with weft_read, or (a third of its reads) with
 * weft_read_exact of what is outstanding; a read_exact dropped by its
 * timeout or by an abort has read `done` bytes, which are checked and
 * counted. Besides, a foreign thread aborts random client tasks
 * (stress_abort_at_random), dropping them with a connect, a write_all or a
 * read pending; the drop closes the stream.
 *
 * Byte k's content is checkable anywhere: the first 8 bytes of connection
 * k are its key (a tag of the round and k), the rest a pattern derived
 * from the key and the offset. Clients check every byte of the echo as it
 * comes. The server's tap reader learns the key from the first 8 bytes it
 * reads, so each server connection is matched to its client's.
 *
 * Checked (any violation aborts with the seed and round):
 *  - a client never reads a byte it did not send, nor a wrong byte (the
 *    echo is a prefix of what was sent, byte for byte);
 *  - a connection that completed got back exactly what it sent (and, in a
 *    half-close, then end of stream), and its server connection read and
 *    wrote exactly that many bytes, without a reset;
 *  - per server connection: written == read unless it was reset (-ECONNRESET
 *    or -EPIPE, the only errors allowed), then written <= read; the tap
 *    counts agree with weft_read's, weft_write_all's and weft_copy's own;
 *    no two server connections carry the same key, none an unknown one;
 *  - per client connection that stopped early (abort, timeout, drop): its
 *    server read <= what it sent, and it received <= what the server wrote;
 *    after an abort (never preceded by a FIN) its server connection ended
 *    in the reset;
 *  - totals: bytes the server read <= bytes the clients sent, bytes it
 *    wrote >= bytes the clients received; lost = 0 (completed connections'
 *    sent - received, plus the server's read - written on connections
 *    that were not reset);
 *  - the server leaks nothing: once the clients are done and the acceptor
 *    has drained the backlog and closed the listener, the count of live
 *    connection tasks returns to 0, and after the runtime's shutdown the
 *    number of open fds (/proc/self/fd) is what it was before the round;
 *  - every task is dropped once, and its join agrees with the aborts;
 *    misuse reports are failures; no hang (the watchdog, and a 60 s bound
 *    on the server's connections ending once the clients are gone).
 * Waits for threads are joins and condition variables; the only clock
 * waits are the timeouts under test and the watchdog's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stress_common.h"

#define MAX_CLIENT_TASKS 40
#define MAX_THREADS 3
#define MAX_PER_CLIENT 6
#define MAX_CONNS ((MAX_CLIENT_TASKS + MAX_THREADS) * MAX_PER_CLIENT)
#define MAX_BYTES (64 * 1024)
#define MAX_CHUNK 16384
#define MIN_WINDOW 4096
#define MAX_WINDOW (48 * 1024)
#define MAX_ABORTS 10
#define MAX_RETRIES 64 /* timed-out reads a connection reads on after */
#define KEY_BYTES 8
/* How long the server's connections may take to end once every client is
 * gone before the round reports them leaked. */
#define SERVER_DRAIN_S 60

enum { MODE_NORMAL, MODE_HALF, MODE_ABORT, MODE_TIMEOUT };
/* What became of a client connection. */
enum {
    C_NOT_STARTED = 0, /* its client was dropped before it */
    C_CONNECTING,      /* dropped with the connect pending */
    C_OPEN,            /* connected, not finished (only while running) */
    C_COMPLETED,       /* got its whole echo back */
    C_ABORTED,         /* reset on purpose (SO_LINGER 0) */
    C_TIMED_OUT,       /* a read timed out: closed */
    C_DROPPED,         /* its task was aborted with it open */
};

typedef struct plan {
    uint8_t mode;
    bool half;  /* shut the write side after the last byte */
    bool nodelay;
    uint32_t total, abort_at, window, max_chunk;
    bool short_timeouts;
    uint64_t rng; /* chunk sizes, read sizes, timeouts */
} plan;

/* A client connection's outcome: its client's (task or drop, or thread);
 * read by the main thread after the client is dropped or joined. */
typedef struct client_rec {
    uint8_t state;
    uint64_t sent, received;
} client_rec;

/* A server connection's counts, by the key its first 8 bytes carried;
 * written by its task's drop, read by the main thread after every
 * connection task is dropped (both under g.lock). */
typedef struct server_rec {
    bool seen, reset;
    uint64_t read, written;
} server_rec;

static struct {
    weft_rt *rt;
    uint64_t tag; /* the round's key tag: a key is tag << 16 | k */
    unsigned nclients, nthreads, nconns;
    unsigned first[MAX_CLIENT_TASKS + MAX_THREADS], count[MAX_CLIENT_TASKS + MAX_THREADS];
    plan plans[MAX_CONNS];
    client_rec crec[MAX_CONNS];
    server_rec srec[MAX_CONNS];
    weft_cancel_token token;

    weft_join joins[MAX_CLIENT_TASKS];
    weft_join acceptor_join;
    _Atomic uint8_t aborted[MAX_CLIENT_TASKS], drops[MAX_CLIENT_TASKS], done[MAX_CLIENT_TASKS];
    _Atomic uint8_t acceptor_drops, acceptor_done;
    _Atomic unsigned published;
    _Atomic bool over;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Under lock. */
    int port;                  /* 0 until the acceptor listens; < 0: bind failed */
    unsigned clients_dropped;  /* client tasks dropped */
    bool acceptor_dropped;
    unsigned live_conns;       /* server connection tasks spawned and not dropped */
    uint64_t srv_unmatched_read, srv_unmatched_written; /* connections without a key */

    stress_counter conns, completed, connect_drops, foreign_conns, bytes_sent, bytes_received,
        srv_conns, srv_unmatched, srv_copy, srv_read, srv_written, resets, half_closes, aborts,
        client_drops, timeouts, timeouts_retried, exact_drops, task_aborts, lost;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* ---- content --------------------------------------------------------------------- */

static uint64_t key_of(unsigned k)
{
    return g.tag << 16 | k;
}

/* The connection with key `key`, or -1 if it is none of this round's. */
static int conn_of_key(uint64_t key)
{
    if (key >> 16 != g.tag || (key & 0xffff) >= g.nconns)
        return -1;
    return (int)(key & 0xffff);
}

static uint64_t pattern_word(uint64_t key, size_t word)
{
    return word == 0 ? key : mix64(key ^ (uint64_t)word * 0x9e3779b97f4a7c15ull);
}

/* Bytes [off, off + n) of connection `key`'s stream into `buf`. */
static void fill(uint64_t key, size_t off, unsigned char *buf, size_t n)
{
    uint64_t w = pattern_word(key, off / 8);
    for (size_t i = 0; i < n; i++) {
        size_t at = off + i;
        if (at % 8 == 0)
            w = pattern_word(key, at / 8);
        buf[i] = (unsigned char)(w >> (8 * (at % 8)));
    }
}

/* The offset of the first byte of `buf` (n bytes, at offset `off` of the
 * stream) that is wrong, or SIZE_MAX. */
static size_t check(uint64_t key, size_t off, const unsigned char *buf, size_t n)
{
    uint64_t w = pattern_word(key, off / 8);
    for (size_t i = 0; i < n; i++) {
        size_t at = off + i;
        if (at % 8 == 0)
            w = pattern_word(key, at / 8);
        if (buf[i] != (unsigned char)(w >> (8 * (at % 8))))
            return at;
    }
    return SIZE_MAX;
}

/* The echo of `n` bytes at `recvd` just came: it must be a prefix of what
 * was sent, byte for byte. */
static void check_echo(unsigned k, uint64_t sent, uint64_t recvd, const unsigned char *buf,
                       size_t n, const char *who)
{
    STRESS_ENSURE(recvd + n <= sent,
                  "%s conn %u: echo of %zu bytes at %" PRIu64 " but only %" PRIu64 " sent", who,
                  k, n, recvd, sent);
    size_t bad = check(key_of(k), (size_t)recvd, buf, n);
    STRESS_ENSURE(bad == SIZE_MAX, "%s conn %u: wrong byte at offset %zu of the echo", who, k,
                  bad);
}

/* ---- tap reader and writer: count what passes ------------------------------------ */

typedef struct tap_reader {
    weft_reader reader; /* first member */
    weft_reader *inner;
    uint64_t n;
    unsigned char head[KEY_BYTES];
} tap_reader;

static weft_poll tap_poll_read(weft_reader *r, weft_cx *cx, void *buf, size_t len,
                               int64_t *res)
{
    tap_reader *t = (tap_reader *)r;
    weft_poll p = t->inner->ops->poll_read(t->inner, cx, buf, len, res);
    if (p == WEFT_READY && *res > 0) {
        const unsigned char *b = buf;
        for (int64_t i = 0; i < *res && t->n + (uint64_t)i < KEY_BYTES; i++)
            t->head[t->n + (uint64_t)i] = b[i];
        t->n += (uint64_t)*res;
    }
    return p;
}

static const weft_reader_ops tap_reader_ops = { .name = "tap_reader", .poll_read = tap_poll_read };

typedef struct tap_writer {
    weft_writer writer; /* first member */
    weft_writer *inner;
    uint64_t n;
} tap_writer;

static weft_poll tap_poll_write(weft_writer *w, weft_cx *cx, const void *buf, size_t len,
                                int64_t *res)
{
    tap_writer *t = (tap_writer *)w;
    weft_poll p = t->inner->ops->poll_write(t->inner, cx, buf, len, res);
    if (p == WEFT_READY && *res > 0)
        t->n += (uint64_t)*res;
    return p;
}

static weft_poll tap_poll_flush(weft_writer *w, weft_cx *cx, int *res)
{
    tap_writer *t = (tap_writer *)w;
    if (!t->inner->ops->poll_flush) {
        *res = 0;
        return WEFT_READY;
    }
    return t->inner->ops->poll_flush(t->inner, cx, res);
}

static weft_poll tap_poll_shutdown(weft_writer *w, weft_cx *cx, int *res)
{
    tap_writer *t = (tap_writer *)w;
    if (!t->inner->ops->poll_shutdown)
        return tap_poll_flush(w, cx, res);
    return t->inner->ops->poll_shutdown(t->inner, cx, res);
}

static const weft_writer_ops tap_writer_ops = {
    .name = "tap_writer", .poll_write = tap_poll_write, .poll_flush = tap_poll_flush,
    .poll_shutdown = tap_poll_shutdown,
};

/* ---- the server: a task per connection -------------------------------------------- */

typedef struct conn {
    weft_future base;
    weft_co co;
    uint64_t rng;
    weft_tcp_stream s;
    bool use_copy;
    size_t bufsz;
    int64_t n, crc;
    int rc, err;
    bool finished;
    uint64_t read_sum, write_sum;
    tap_reader tr;
    tap_writer tw;
    weft_read rd;
    weft_write_all wa;
    weft_copy cp;
    weft_flush sh;
    unsigned char buf[MAX_CHUNK];
} conn;

/* An error a server connection may see: the client reset it. */
static bool is_reset(int64_t err)
{
    return err == -ECONNRESET || err == -EPIPE;
}

static void conn_drop(weft_future *f)
{
    conn *self = (conn *)f;
    weft_co_drop(&self->co);
    weft_tcp_stream_close(&self->s);
    /* Connection tasks are never aborted, and the runtime is shut down
     * only once they are all gone: each ran to its end. */
    STRESS_ENSURE(self->finished, "server: a connection task dropped before its end");
    uint64_t rd = self->tr.n, wr = self->tw.n;
    bool reset = self->err != 0;
    STRESS_ENSURE(wr <= rd, "server: wrote %" PRIu64 " of %" PRIu64 " read", wr, rd);
    STRESS_ENSURE(reset || wr == rd,
                  "server: connection ended without a reset but wrote %" PRIu64
                  " of %" PRIu64 " read",
                  wr, rd);
    stress_count(&g.srv_conns);
    stress_count_n(&g.srv_read, rd);
    stress_count_n(&g.srv_written, wr);
    if (reset)
        stress_count(&g.resets);
    if (self->use_copy)
        stress_count(&g.srv_copy);
    if (!reset)
        stress_count_n(&g.lost, rd - wr);
    pthread_mutex_lock(&g.lock);
    if (rd >= KEY_BYTES) {
        uint64_t key = 0;
        for (unsigned i = 0; i < KEY_BYTES; i++)
            key |= (uint64_t)self->tr.head[i] << (8 * i);
        int k = conn_of_key(key);
        STRESS_ENSURE(k >= 0, "server: a connection began with key %#" PRIx64
                      ", not one of this round's", key);
        server_rec *r = &g.srec[k];
        STRESS_ENSURE(!r->seen, "server: two connections carried the key of conn %d", k);
        *r = (server_rec){ .seen = true, .reset = reset, .read = rd, .written = wr };
    } else {
        stress_count(&g.srv_unmatched);
        g.srv_unmatched_read += rd;
        g.srv_unmatched_written += wr;
    }
    g.live_conns--;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

/* The echo. The taps are set up here, where the task is pinned. */
WEFT_ASYNC_FN_WITH_DROP(conn, int)
{
    WEFT_FN_BEGIN;
    self->tr = (tap_reader){ { &tap_reader_ops }, &self->s.reader, 0, { 0 } };
    self->tw = (tap_writer){ { &tap_writer_ops }, &self->s.writer, 0 };
    if (self->use_copy) {
        weft_copy_init(&self->cp, &self->tr.reader, &self->tw.writer, self->buf, self->bufsz);
        WEFT_FN_AWAIT(&self->cp, &self->crc);
        STRESS_ENSURE(self->cp.written == self->tw.n,
                      "server: copy says %" PRIu64 " written, the writer took %" PRIu64,
                      self->cp.written, self->tw.n);
        STRESS_ENSURE(self->tr.n == self->tw.n + weft_copy_pending(&self->cp),
                      "server: copy read %" PRIu64 " = written %" PRIu64 " + pending %zu?",
                      self->tr.n, self->tw.n, weft_copy_pending(&self->cp));
        if (self->crc < 0) {
            STRESS_ENSURE(is_reset(self->crc), "server: copy: %" PRId64, self->crc);
            self->err = (int)self->crc;
        } else {
            STRESS_ENSURE((uint64_t)self->crc == self->tw.n && self->tr.n == self->tw.n,
                          "server: copy returned %" PRId64 " but read %" PRIu64
                          " and wrote %" PRIu64,
                          self->crc, self->tr.n, self->tw.n);
        }
    } else {
        for (;;) {
            weft_read_init(&self->rd, &self->tr.reader, self->buf,
                           1 + rng_next32(&self->rng) % self->bufsz);
            WEFT_FN_AWAIT(&self->rd, &self->n);
            if (self->n <= 0) {
                STRESS_ENSURE(self->n == 0 || is_reset(self->n), "server: read: %" PRId64,
                              self->n);
                self->err = (int)self->n;
                break;
            }
            self->read_sum += (uint64_t)self->n;
            weft_write_all_init(&self->wa, &self->tw.writer, self->buf, (size_t)self->n);
            WEFT_FN_AWAIT(&self->wa, &self->rc);
            self->write_sum += self->wa.done;
            if (self->rc != 0) {
                STRESS_ENSURE(is_reset(self->rc), "server: write_all: %d", self->rc);
                self->err = self->rc;
                break;
            }
            STRESS_ENSURE(self->wa.done == (size_t)self->n,
                          "server: write_all took %zu of %" PRId64, self->wa.done, self->n);
        }
        STRESS_ENSURE(self->read_sum == self->tr.n && self->write_sum == self->tw.n,
                      "server: reads %" PRIu64 "/%" PRIu64 " writes %" PRIu64 "/%" PRIu64
                      " (futures/taps)",
                      self->read_sum, self->tr.n, self->write_sum, self->tw.n);
    }
    if (self->err == 0) {
        /* End of stream: everything read was written. Our FIN; the peer
         * may have reset in the meantime. */
        weft_shutdown_write_init(&self->sh, &self->tw.writer);
        WEFT_FN_AWAIT(&self->sh, &self->rc);
        STRESS_ENSURE(self->rc == 0 || is_reset(self->rc) || self->rc == -ENOTCONN,
                      "server: shutdown_write: %d", self->rc);
    }
    self->finished = true;
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* ---- the acceptor ------------------------------------------------------------------- */

typedef struct acceptor {
    weft_future base;
    weft_co co;
    uint64_t rng;
    bool listening;
    int rc, which;
    weft_tcp_listener l;
    weft_tcp_stream s;
    weft_tcp_accept a;
    weft_cancel_token_cancelled stop;
    weft_select sel;
    weft_timeout to;
} acceptor;

static void publish_port(int port)
{
    pthread_mutex_lock(&g.lock);
    g.port = port;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

static void acceptor_drop(weft_future *f)
{
    acceptor *self = (acceptor *)f;
    weft_co_drop(&self->co);
    if (self->listening)
        STRESS_ENSURE(weft_tcp_listener_close(&self->l) == 0, "listener close (drop)");
    stress_drop_once(&g.acceptor_drops, "acceptor", 0);
    pthread_mutex_lock(&g.lock);
    g.acceptor_dropped = true;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

/* A detached echo task for the stream just accepted. */
static void spawn_conn(acceptor *self)
{
    pthread_mutex_lock(&g.lock);
    g.live_conns++;
    pthread_mutex_unlock(&g.lock);
    /* Mostly buffers of 0.5-16 KiB; now and then 1 or 7 bytes (slow: a
     * syscall or two per byte). */
    static const size_t sizes[] = { 1, 7, 512, 512, 4096, 4096, 4096, 4096,
                                    MAX_CHUNK, MAX_CHUNK, MAX_CHUNK, MAX_CHUNK,
                                    MAX_CHUNK, MAX_CHUNK, MAX_CHUNK, MAX_CHUNK };
    conn c = { WEFT_FN_INIT(conn, WEFT_F_SEND), .rng = rng_next(&self->rng), .s = self->s,
               .use_copy = rng_next32(&self->rng) % 2 == 0,
               .bufsz = sizes[rng_next32(&self->rng) % 16] };
    int rc = weft_spawn(NULL, &c.base, sizeof c, NULL);
    STRESS_ENSURE(rc == 0, "spawn of a connection task: %s", weft_strerror(rc));
}

WEFT_ASYNC_FN_WITH_DROP(acceptor, int)
{
    WEFT_FN_BEGIN;
    self->rc = weft_tcp_listen_ip(&self->l, "127.0.0.1", 0, 0);
    STRESS_ENSURE(self->rc == 0, "listen: %s", weft_strerror(self->rc));
    self->listening = true;
    self->rc = weft_tcp_listener_port(&self->l);
    STRESS_ENSURE(self->rc > 0, "listener port: %d", self->rc);
    publish_port(self->rc);
    for (;;) {
        weft_tcp_accept_init(&self->a, &self->l, &self->s);
        weft_cancel_token_cancelled_init(&self->stop, &g.token);
        WEFT_SELECT(&self->sel, &self->which, WEFT_BRANCH(&self->a, &self->rc),
                    WEFT_BRANCH(&self->stop, NULL));
        if (self->which == 1)
            break;
        STRESS_ENSURE(self->which == 0 && self->rc == 0, "accept: select %d, rc %d",
                      self->which, self->rc);
        spawn_conn(self);
    }
    /* Every client is done: take what is left in the backlog (an accept
     * that finds nothing at once loses to a 0 timeout). */
    for (;;) {
        weft_tcp_accept_init(&self->a, &self->l, &self->s);
        STRESS_ENSURE(weft_timeout_init(&self->to, &self->a.base, 0) == 0, "timeout_init");
        WEFT_FN_AWAIT(&self->to, &self->rc);
        if (self->to.status == -ETIMEDOUT)
            break;
        STRESS_ENSURE(self->rc == 0, "accept (drain): %d", self->rc);
        spawn_conn(self);
    }
    self->rc = weft_tcp_listener_close(&self->l);
    STRESS_ENSURE(self->rc == 0, "listener close: %d", self->rc);
    self->listening = false;
    atomic_store_explicit(&g.acceptor_done, 1, memory_order_relaxed);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* ---- client tasks ---------------------------------------------------------------------- */

typedef struct client {
    weft_future base;
    weft_co co;
    unsigned idx, i, k;
    const plan *p; /* conn k's */
    uint64_t rng;
    bool open, shut, exact;
    unsigned retries; /* timeouts read on after, this connection */
    int rc;
    int64_t n;
    uint64_t sent, recvd;
    size_t chunk;
    weft_tcp_stream s;
    weft_tcp_connect c;
    weft_write_all wa;
    weft_read rd;
    weft_read_exact rx;
    weft_timeout to;
    unsigned char out[MAX_CHUNK], in[MAX_CHUNK];
} client;

static void set_linger_reset(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    STRESS_ENSURE(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0, "SO_LINGER: %s",
                  strerror(errno));
}

/* Conn k ended in `state` with these counts. */
static void client_end(unsigned k, uint8_t state, uint64_t sent, uint64_t recvd)
{
    STRESS_ENSURE(recvd <= sent, "conn %u: received %" PRIu64 " > sent %" PRIu64, k, recvd,
                  sent);
    g.crec[k] = (client_rec){ .state = state, .sent = sent, .received = recvd };
    stress_count_n(&g.bytes_sent, sent);
    stress_count_n(&g.bytes_received, recvd);
    if (state == C_COMPLETED) {
        STRESS_ENSURE(sent == g.plans[k].total && recvd == sent,
                      "conn %u completed with sent %" PRIu64 " received %" PRIu64
                      " of %u planned",
                      k, sent, recvd, g.plans[k].total);
        stress_count(&g.completed);
        stress_count_n(&g.lost, sent - recvd);
    }
}

static void client_drop(weft_future *f)
{
    client *self = (client *)f;
    /* A write_all dropped pending took wa.done bytes. */
    if (self->co.awaiting == &self->wa.base)
        self->sent += self->wa.done;
    /* A read_exact dropped pending (alone or in its timeout) read
     * rx.done bytes into `in`: they count, and must be right. */
    bool exact = self->exact && (self->co.awaiting == &self->rx.base ||
                                 self->co.awaiting == &self->to.base);
    bool connecting = self->co.awaiting == &self->c.base;
    weft_co_drop(&self->co); /* a pending connect closes its socket */
    if (connecting) {
        g.crec[self->k].state = C_CONNECTING;
        stress_count(&g.connect_drops);
    }
    if (exact && self->rx.done > 0) {
        check_echo(self->k, self->sent, self->recvd, self->in, self->rx.done, "dropped client");
        self->recvd += self->rx.done;
        stress_count(&g.exact_drops);
    }
    if (self->open) {
        weft_tcp_stream_close(&self->s);
        client_end(self->k, C_DROPPED, self->sent, self->recvd);
        stress_count(&g.client_drops);
    }
    stress_drop_once(&g.drops[self->idx], "client", self->idx);
    pthread_mutex_lock(&g.lock);
    g.clients_dropped++;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

WEFT_ASYNC_FN_WITH_DROP(client, uint64_t)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < g.count[self->idx]; self->i++) {
        self->k = g.first[self->idx] + self->i;
        self->p = &g.plans[self->k];
        self->rng = self->p->rng;
        weft_tcp_connect_ip_init(&self->c, &self->s, "127.0.0.1", (uint16_t)g.port);
        WEFT_FN_AWAIT(&self->c, &self->rc);
        STRESS_ENSURE(self->rc == 0, "client conn %u: connect: %s", self->k,
                      weft_strerror(self->rc));
        self->open = true;
        self->shut = false;
        self->retries = 0;
        self->sent = self->recvd = 0;
        g.crec[self->k].state = C_OPEN;
        stress_count(&g.conns);
        if (g.plans[self->k].nodelay)
            STRESS_ENSURE(weft_tcp_stream_set_nodelay(&self->s, true) == 0, "nodelay");
        for (;;) {
            if (self->p->mode == MODE_ABORT && self->sent >= self->p->abort_at) {
                set_linger_reset(weft_tcp_stream_fd(&self->s));
                weft_tcp_stream_close(&self->s);
                self->open = false;
                client_end(self->k, C_ABORTED, self->sent, self->recvd);
                stress_count(&g.aborts);
                break;
            }
            if (self->sent < self->p->total) {
                uint64_t cap = self->p->total - self->sent;
                if (cap > self->p->max_chunk)
                    cap = self->p->max_chunk;
                if (cap > self->p->window)
                    cap = self->p->window;
                if (self->p->mode == MODE_ABORT && cap > self->p->abort_at - self->sent)
                    cap = self->p->abort_at - self->sent;
                self->chunk = 1 + rng_next32(&self->rng) % cap;
                if (self->sent - self->recvd + self->chunk <= self->p->window &&
                    (self->sent == self->recvd || rng_next32(&self->rng) % 4 != 0)) {
                    fill(key_of(self->k), self->sent, self->out, self->chunk);
                    weft_write_all_init(&self->wa, &self->s.writer, self->out, self->chunk);
                    WEFT_FN_AWAIT(&self->wa, &self->rc);
                    self->sent += self->wa.done;
                    STRESS_ENSURE(self->rc == 0 && self->wa.done == self->chunk,
                                  "client conn %u: write_all: %d (%zu of %zu)", self->k,
                                  self->rc, self->wa.done, self->chunk);
                    continue;
                }
            } else if (self->p->half && !self->shut) {
                self->rc = weft_tcp_stream_shutdown_write(&self->s);
                STRESS_ENSURE(self->rc == 0, "client conn %u: shutdown_write: %d", self->k,
                              self->rc);
                self->shut = true;
                stress_count(&g.half_closes);
            }
            if (self->recvd == self->p->total && !self->p->half)
                break; /* the whole echo */
            /* Read some (in a half-close, past the whole echo: the end), or
             * exactly what is outstanding (up to a buffer) with read_exact. */
            self->exact = self->sent > self->recvd && rng_next32(&self->rng) % 3 == 0;
            if (self->exact) {
                self->chunk = (size_t)(self->sent - self->recvd);
                if (self->chunk > MAX_CHUNK)
                    self->chunk = MAX_CHUNK;
                weft_read_exact_init(&self->rx, &self->s.reader, self->in, self->chunk);
            } else {
                weft_read_init(&self->rd, &self->s.reader, self->in,
                               1 + rng_next32(&self->rng) % MAX_CHUNK);
            }
            self->to.status = 0;
            if (self->p->mode != MODE_TIMEOUT) {
                if (self->exact)
                    WEFT_FN_AWAIT(&self->rx, &self->rc);
                else
                    WEFT_FN_AWAIT(&self->rd, &self->n);
            } else {
                weft_duration d = self->p->short_timeouts
                                      ? WEFT_US(rng_next32(&self->rng) % 51)
                                      : WEFT_US(200 + rng_next32(&self->rng) % 1801);
                STRESS_ENSURE(weft_timeout_init(&self->to, self->exact ? &self->rx.base
                                                                       : &self->rd.base,
                                                d) == 0,
                              "timeout_init");
                if (self->exact)
                    WEFT_FN_AWAIT(&self->to, &self->rc);
                else
                    WEFT_FN_AWAIT(&self->to, &self->n);
            }
            if (self->exact) {
                /* Whatever happened, buf[0, done) holds what it read. */
                STRESS_ENSURE(self->rc == 0 || self->to.status == -ETIMEDOUT,
                              "client conn %u: read_exact: %d (%zu of %zu)", self->k, self->rc,
                              self->rx.done, self->chunk);
                STRESS_ENSURE(self->to.status != 0 || self->rx.done == self->chunk,
                              "client conn %u: read_exact done %zu of %zu", self->k,
                              self->rx.done, self->chunk);
                self->n = (int64_t)self->rx.done;
                check_echo(self->k, self->sent, self->recvd, self->in, (size_t)self->n,
                           "client");
                self->recvd += (uint64_t)self->n;
            }
            if (self->to.status == -ETIMEDOUT) {
                stress_count(&g.timeouts);
                /* Close, or read on: a dropped read lost nothing, so the
                 * echo goes on at the right offset. */
                if (++self->retries < MAX_RETRIES && rng_next32(&self->rng) % 2 == 0) {
                    stress_count(&g.timeouts_retried);
                    continue;
                }
                weft_tcp_stream_close(&self->s);
                self->open = false;
                client_end(self->k, C_TIMED_OUT, self->sent, self->recvd);
                break;
            }
            if (self->exact)
                continue;
            STRESS_ENSURE(self->n >= 0, "client conn %u: read: %" PRId64, self->k, self->n);
            if (self->n == 0) {
                STRESS_ENSURE(self->p->half && self->recvd == self->p->total,
                              "client conn %u: end of stream after %" PRIu64 " of %" PRIu64
                              " sent (mode %u, %s, %u planned)",
                              self->k, self->recvd, self->sent, self->p->mode,
                              self->p->half ? "half" : "full", self->p->total);
                break;
            }
            check_echo(self->k, self->sent, self->recvd, self->in, (size_t)self->n, "client");
            self->recvd += (uint64_t)self->n;
        }
        if (self->open) {
            weft_tcp_stream_close(&self->s);
            self->open = false;
            client_end(self->k, C_COMPLETED, self->sent, self->recvd);
        }
    }
    atomic_store_explicit(&g.done[self->idx], 1, memory_order_relaxed);
    WEFT_FN_RETURN(self->idx);
    WEFT_FN_END;
}

/* ---- foreign clients: blocking sockets ------------------------------------------------- */

static void thread_conn(unsigned k, int port)
{
    const plan *p = &g.plans[k];
    uint64_t rng = p->rng;
    unsigned char out[MAX_CHUNK], in[MAX_CHUNK];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    STRESS_ENSURE(fd >= 0, "foreign conn %u: socket: %s", k, strerror(errno));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    STRESS_ENSURE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "foreign conn %u: connect: %s",
                  k, strerror(errno));
    g.crec[k].state = C_OPEN;
    stress_count(&g.conns);
    stress_count(&g.foreign_conns);
    if (p->nodelay) {
        int one = 1;
        STRESS_ENSURE(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0, "nodelay");
    }
    uint64_t sent = 0, recvd = 0;
    bool shut = false;
    for (;;) {
        if (p->mode == MODE_ABORT && sent >= p->abort_at) {
            set_linger_reset(fd);
            close(fd);
            client_end(k, C_ABORTED, sent, recvd);
            stress_count(&g.aborts);
            return;
        }
        if (sent < p->total) {
            uint64_t cap = p->total - sent;
            if (cap > p->max_chunk)
                cap = p->max_chunk;
            if (cap > p->window)
                cap = p->window;
            if (p->mode == MODE_ABORT && cap > p->abort_at - sent)
                cap = p->abort_at - sent;
            size_t chunk = 1 + rng_next32(&rng) % cap;
            if (sent - recvd + chunk <= p->window &&
                (sent == recvd || rng_next32(&rng) % 4 != 0)) {
                fill(key_of(k), sent, out, chunk);
                for (size_t off = 0; off < chunk;) {
                    ssize_t n = send(fd, out + off, chunk - off, MSG_NOSIGNAL);
                    STRESS_ENSURE(n > 0 || errno == EINTR, "foreign conn %u: send: %s", k,
                                  strerror(errno));
                    if (n > 0)
                        off += (size_t)n;
                }
                sent += chunk;
                continue;
            }
        } else if (p->half && !shut) {
            STRESS_ENSURE(shutdown(fd, SHUT_WR) == 0, "foreign conn %u: shutdown: %s", k,
                          strerror(errno));
            shut = true;
            stress_count(&g.half_closes);
        }
        if (recvd == p->total && !p->half)
            break;
        ssize_t n = recv(fd, in, 1 + rng_next32(&rng) % MAX_CHUNK, 0);
        if (n < 0 && errno == EINTR)
            continue;
        STRESS_ENSURE(n >= 0, "foreign conn %u: recv: %s", k, strerror(errno));
        if (n == 0) {
            STRESS_ENSURE(p->half && recvd == p->total,
                          "foreign conn %u: end of stream after %" PRIu64 " of %" PRIu64, k,
                          recvd, sent);
            break;
        }
        check_echo(k, sent, recvd, in, (size_t)n, "foreign");
        recvd += (uint64_t)n;
    }
    close(fd);
    client_end(k, C_COMPLETED, sent, recvd);
}

static void *client_thread(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    pthread_mutex_lock(&g.lock);
    int port = g.port;
    pthread_mutex_unlock(&g.lock);
    for (unsigned i = 0; i < g.count[t]; i++)
        thread_conn(g.first[t] + i, port);
    return NULL;
}

/* ---- the aborter ---------------------------------------------------------------------- */

static uint64_t g_aborter_seed;

static void *aborter_main(void *arg)
{
    (void)arg;
    stress_abortable t = { g.joins, g.aborted, &g.published, &g.over };
    stress_abort_at_random(&t, g_aborter_seed, MAX_ABORTS, &g.task_aborts);
    return NULL;
}

/* ---- a round ------------------------------------------------------------------------------ */

static unsigned count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    STRESS_ENSURE(d, "opendir /proc/self/fd: %s", strerror(errno));
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

static plan draw_plan(uint64_t *rng, bool foreign)
{
    plan p = { 0 };
    unsigned m = rng_next32(rng) % 20;
    p.mode = m < 7 ? MODE_NORMAL : m < 11 ? MODE_HALF : m < 14 ? MODE_ABORT : MODE_TIMEOUT;
    if (foreign && p.mode == MODE_TIMEOUT)
        p.mode = MODE_NORMAL;
    p.half = p.mode == MODE_HALF || (p.mode != MODE_NORMAL && rng_next32(rng) % 2 == 0);
    p.nodelay = rng_next32(rng) % 2 == 0;
    unsigned sz = rng_next32(rng) % 16;
    p.total = sz == 0 ? 0 : sz < 5 ? rng_next32(rng) % 1025 : rng_next32(rng) % (MAX_BYTES + 1);
    p.abort_at = rng_next32(rng) % (p.total + 1);
    p.window = MIN_WINDOW + rng_next32(rng) % (MAX_WINDOW - MIN_WINDOW + 1);
    static const uint32_t chunks[] = { 16, 512, 4096, MAX_CHUNK };
    p.max_chunk = chunks[rng_next32(rng) % 4];
    if (p.max_chunk == 16 && p.total > 4096)
        p.max_chunk = 4096; /* keeps a round short */
    p.short_timeouts = rng_next32(rng) % 3 == 0;
    p.rng = rng_next(rng);
    return p;
}

static void check_conns(void)
{
    uint64_t sent = 0, recvd = 0, srv_read = g.srv_unmatched_read,
             srv_written = g.srv_unmatched_written;
    for (unsigned k = 0; k < g.nconns; k++) {
        const client_rec *c = &g.crec[k];
        const server_rec *s = &g.srec[k];
        sent += c->sent;
        recvd += c->received;
        STRESS_ENSURE(c->state != C_OPEN, "conn %u left open", k);
        if (s->seen) {
            srv_read += s->read;
            srv_written += s->written;
            STRESS_ENSURE(c->state != C_NOT_STARTED && c->state != C_CONNECTING,
                          "conn %u: the server read its key but it never connected", k);
            STRESS_ENSURE(s->read <= c->sent,
                          "conn %u: the server read %" PRIu64 " of %" PRIu64 " sent", k,
                          s->read, c->sent);
            STRESS_ENSURE(c->received <= s->written,
                          "conn %u: received %" PRIu64 " but the server wrote %" PRIu64, k,
                          c->received, s->written);
            /* An abort never sent a FIN (it comes before any half-close):
             * the server's connection can only have ended in the reset. */
            STRESS_ENSURE(c->state != C_ABORTED || s->reset,
                          "conn %u was reset but its server connection ended cleanly", k);
        }
        if (c->state == C_COMPLETED && c->sent >= KEY_BYTES) {
            STRESS_ENSURE(s->seen, "conn %u completed but no server connection read its key",
                          k);
            STRESS_ENSURE(!s->reset && s->read == c->sent && s->written == c->sent,
                          "conn %u completed (%" PRIu64 " bytes) but its server connection "
                          "read %" PRIu64 ", wrote %" PRIu64 "%s",
                          k, c->sent, s->read, s->written, s->reset ? ", reset" : "");
        }
    }
    /* The acceptor drained the backlog after the clients were done, so
     * the server saw every connection a client made, and besides those
     * only ones whose connect was dropped after the handshake. */
    uint64_t conns = stress_load(&g.conns), srv = stress_load(&g.srv_conns);
    STRESS_ENSURE(srv >= conns && srv <= conns + stress_load(&g.connect_drops),
                  "the server accepted %" PRIu64 " connections, the clients made %" PRIu64
                  " (and dropped %" PRIu64 " connects)",
                  srv, conns, stress_load(&g.connect_drops));
    STRESS_ENSURE(srv_read <= sent && srv_written >= recvd,
                  "totals: server read %" PRIu64 " of %" PRIu64 " sent, wrote %" PRIu64
                  " for %" PRIu64 " received",
                  srv_read, sent, srv_written, recvd);
}

static void run_round(uint64_t seed, const stress_options *opt)
{
    uint64_t rng = rng_seed(seed);
    unsigned fds_before = count_fds();

    g.tag = rng_next(&rng) >> 16;
    g.nclients = 4 + rng_next32(&rng) % (MAX_CLIENT_TASKS - 3);
    g.nthreads = rng_next32(&rng) % (MAX_THREADS + 1);
    g.nconns = 0;
    for (unsigned c = 0; c < g.nclients + g.nthreads; c++) {
        g.first[c] = g.nconns;
        g.count[c] = 1 + rng_next32(&rng) % MAX_PER_CLIENT;
        for (unsigned i = 0; i < g.count[c]; i++)
            g.plans[g.nconns++] = draw_plan(&rng, c >= g.nclients);
    }
    memset(g.crec, 0, sizeof g.crec);
    memset(g.srec, 0, sizeof g.srec);
    for (unsigned i = 0; i < MAX_CLIENT_TASKS; i++) {
        atomic_store_explicit(&g.aborted[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g.drops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g.done[i], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&g.acceptor_drops, 0, memory_order_relaxed);
    atomic_store_explicit(&g.acceptor_done, 0, memory_order_relaxed);
    atomic_store_explicit(&g.published, 0, memory_order_relaxed);
    atomic_store_explicit(&g.over, false, memory_order_relaxed);
    g.port = 0;
    g.clients_dropped = 0;
    g.acceptor_dropped = false;
    g.live_conns = 0;
    g.srv_unmatched_read = g.srv_unmatched_written = 0;
    g_aborter_seed = rng_next(&rng);

    g.rt = stress_rt_new(opt);
    STRESS_ENSURE(weft_cancel_token_init(&g.token) == 0, "token");
    acceptor acc = { WEFT_FN_INIT(acceptor, WEFT_F_SEND), .rng = rng_next(&rng) };
    int rc = weft_spawn(g.rt, &acc.base, sizeof acc, &g.acceptor_join);
    STRESS_ENSURE(rc == 0, "spawn of the acceptor: %s", weft_strerror(rc));
    pthread_mutex_lock(&g.lock);
    while (g.port == 0)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);

    pthread_t threads[MAX_THREADS], aborter;
    for (unsigned t = 0; t < g.nthreads; t++)
        STRESS_ENSURE(pthread_create(&threads[t], NULL, client_thread,
                                     (void *)(uintptr_t)(g.nclients + t)) == 0,
                      "pthread_create");
    STRESS_ENSURE(pthread_create(&aborter, NULL, aborter_main, NULL) == 0, "pthread_create");
    for (unsigned i = 0; i < g.nclients; i++) {
        client cl = { WEFT_FN_INIT(client, WEFT_F_SEND), .idx = i };
        rc = weft_spawn(g.rt, &cl.base, sizeof cl, &g.joins[i]);
        STRESS_ENSURE(rc == 0, "spawn of client %u: %s", i, weft_strerror(rc));
        /* Release: the join is written before the aborter may use it. */
        atomic_store_explicit(&g.published, i + 1, memory_order_release);
    }

    /* The clients are done, then the acceptor drains the backlog and
     * closes the listener, then the server's connections end. */
    for (unsigned t = 0; t < g.nthreads; t++)
        pthread_join(threads[t], NULL);
    pthread_mutex_lock(&g.lock);
    while (g.clients_dropped < g.nclients)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    atomic_store_explicit(&g.over, true, memory_order_release);
    pthread_join(aborter, NULL);
    STRESS_ENSURE(weft_cancel_token_cancel(&g.token) == 0, "cancel");
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += SERVER_DRAIN_S;
    pthread_mutex_lock(&g.lock);
    while (!g.acceptor_dropped || g.live_conns > 0) {
        if (pthread_cond_timedwait(&g.cond, &g.lock, &deadline) == ETIMEDOUT &&
            (!g.acceptor_dropped || g.live_conns > 0))
            stress_die("server: %u connection tasks still live %d s after the clients ended "
                       "(acceptor %s)",
                       g.live_conns, SERVER_DRAIN_S, g.acceptor_dropped ? "done" : "live");
    }
    pthread_mutex_unlock(&g.lock);
    weft_rt_shutdown(g.rt);

    uint64_t out;
    stress_join_finished(&g.acceptor_join, "acceptor", 0, &out);
    stress_check_join("main", "acceptor", 0, g.acceptor_join.status, out,
                      atomic_load_explicit(&g.acceptor_done, memory_order_relaxed), 0, false);
    weft_future_drop(&g.acceptor_join.base);
    for (unsigned i = 0; i < g.nclients; i++) {
        stress_join_finished(&g.joins[i], "client", i, &out);
        bool done = atomic_load_explicit(&g.done[i], memory_order_acquire);
        bool aborted = atomic_load_explicit(&g.aborted[i], memory_order_acquire);
        stress_check_join("main", "client", i, g.joins[i].status, out, done, i, aborted);
        weft_future_drop(&g.joins[i].base);
    }
    pthread_mutex_lock(&g.lock);
    check_conns();
    pthread_mutex_unlock(&g.lock);
    weft_cancel_token_fini(&g.token);
    unsigned fds_after = count_fds();
    STRESS_ENSURE(fds_after == fds_before, "open fds: %u before the round, %u after", fds_before,
                  fds_after);
}

int main(int argc, char **argv)
{
    static stress_counter *const counters[] = {
        &g.conns, &g.completed, &g.foreign_conns, &g.connect_drops, &g.bytes_sent,
        &g.bytes_received, &g.srv_conns, &g.srv_unmatched, &g.srv_copy, &g.srv_read,
        &g.srv_written, &g.resets, &g.half_closes, &g.aborts, &g.client_drops, &g.timeouts,
        &g.timeouts_retried, &g.exact_drops, &g.task_aborts, &g.lost,
    };
    const stress_program p = {
        "stress_echo_storm", run_round, counters, sizeof counters / sizeof counters[0],
        "connections completed foreign connect_drops bytes_sent bytes_received srv_conns "
        "srv_unmatched srv_copy srv_read srv_written resets half_closes aborts drops timeouts "
        "timeouts_retried exact_drops "
        "task_aborts lost",
    };
    return stress_main(argc, argv, &p);
}
