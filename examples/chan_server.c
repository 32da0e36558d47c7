/* weft-chan-server: plain threads hand requests to async code over a
 * channel and get each answer back over a oneshot — the shape of a server
 * whose connection threads (blocking sockets, a C library's callbacks)
 * talk to a runtime.
 *
 *  - The request queue: one mpsc channel (bounded: at most QUEUE_CAP
 *    requests wait; a connection thread that finds it full waits for
 *    room, which is how a busy server slows its clients down). Each
 *    connection thread owns a clone of the sender; the server task owns
 *    the receiver.
 *  - The reply: every request carries the sending end of a fresh oneshot
 *    channel; the connection thread keeps the receiving end and waits on
 *    it. The server answers with weft_oneshot_send, or drops the sending
 *    end to say "no answer" (here: for a request it refuses), which the
 *    waiting thread sees as -EPIPE.
 *  - Shutdown: when every connection thread has dropped its sender, the
 *    server's receive returns -EPIPE after the last queued request, and
 *    the server task ends. It drained the queue, so no request — and no
 *    reply sender inside one — is left in the channel when it goes.
 *
 * Threads use the `_blocking` forms (they park the thread); the server is
 * a task and awaits the receive future (it parks nothing: the worker runs
 * other tasks meanwhile). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <weft/weft.h>

#define CONNECTIONS 3
#define REQUESTS_PER_CONN 4
#define QUEUE_CAP 2

/* What travels over the request channel: copied in and out by value
 * (item_size = sizeof(request)). The oneshot sender is a handle that may
 * be moved, so it travels inside the request; whoever holds the request
 * owns it and must send on it or drop it. */
typedef struct request {
    int conn, n;
    weft_oneshot_tx reply; /* answer: a long */
} request;

/* ---- the server: an async task ---------------------------------------- */

typedef struct server {
    weft_future base;
    weft_co co;
    weft_chan_rx rx;  /* the request queue's receiving end */
    weft_chan_recv recv;
    request req;      /* the request being served: survives the await */
    int rc;           /* the receive's output */
    int answered, refused;
} server;

/* Serve one request. Negative numbers are refused: dropping the reply
 * sender tells the waiting thread that no answer will come. */
static void serve(server *s)
{
    request *r = &s->req;
    if (r->n < 0) {
        weft_oneshot_tx_drop(&r->reply);
        s->refused++;
        return;
    }
    long answer = (long)r->n * r->n;
    /* Never waits. -EPIPE would mean the client stopped waiting (dropped
     * its receiver); the answer is then simply not delivered. */
    if (weft_oneshot_send(&r->reply, &answer) == 0)
        s->answered++;
}

/* The server's drop: also runs if the task is aborted or the runtime
 * shuts down early. Dropping the receiver discards what is still queued,
 * so take those requests out first and drop their reply senders (their
 * threads then see -EPIPE instead of waiting forever). */
static void server_drop(weft_future *f)
{
    server *s = (server *)f;
    weft_co_drop(&s->co);
    request r;
    weft_chan_rx_close(&s->rx);
    while (weft_chan_try_recv(&s->rx, &r) == 0)
        weft_oneshot_tx_drop(&r.reply);
    weft_chan_rx_drop(&s->rx);
}

WEFT_ASYNC_FN_WITH_DROP(server, int)
{
    WEFT_FN_BEGIN;
    for (;;) {
        /* Wait for the next request; -EPIPE: every sender is gone and
         * the queue is empty. */
        weft_chan_recv_init(&self->recv, &self->rx, &self->req);
        WEFT_FN_AWAIT(&self->recv, &self->rc);
        if (self->rc != 0)
            break;
        serve(self);
    }
    printf("server: answered %d, refused %d, queue closed\n", self->answered, self->refused);
    WEFT_FN_RETURN(self->answered);
    WEFT_FN_END;
}

/* ---- a connection thread ------------------------------------------------ */

typedef struct conn {
    int id;
    weft_chan_tx tx; /* this thread's clone of the request sender */
    int answers, no_answers, failed;
} conn;

static void *conn_main(void *arg)
{
    conn *c = arg;
    for (int i = 0; i < REQUESTS_PER_CONN; i++) {
        request req = { .conn = c->id, .n = c->id * 10 + i };
        if (i == REQUESTS_PER_CONN - 1 && c->id == 1)
            req.n = -1; /* one refused request, to show a dropped reply */
        weft_oneshot_rx reply;
        if (weft_oneshot_new(&req.reply, &reply, sizeof(long)) != 0) {
            c->failed++;
            continue;
        }
        /* Hand the request over (waits while QUEUE_CAP requests are
         * queued). On failure the request, with its reply sender, is
         * still ours: drop the sender. */
        if (weft_chan_send_blocking(&c->tx, &req) != 0) {
            weft_oneshot_tx_drop(&req.reply);
            weft_oneshot_rx_drop(&reply);
            c->failed++;
            continue;
        }
        /* Wait for the answer: 0, or -EPIPE if the server dropped the
         * reply sender without answering. */
        long answer;
        int rc = weft_oneshot_recv_blocking(&reply, &answer);
        weft_oneshot_rx_drop(&reply);
        if (rc == 0) {
            printf("conn %d: %d squared is %ld\n", c->id, req.n, answer);
            c->answers++;
        } else {
            printf("conn %d: %d refused (the server dropped the reply sender)\n", c->id, req.n);
            c->no_answers++;
        }
    }
    /* This thread sends no more: the server ends once every sender is
     * dropped and the queue is empty. */
    weft_chan_tx_drop(&c->tx);
    return NULL;
}

int main(void)
{
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 2;
    weft_rt *rt;
    int rc = weft_rt_new(&rt, &o);
    if (rc != 0) {
        fprintf(stderr, "weft_rt_new: %s\n", weft_strerror(rc));
        return 1;
    }

    /* The request queue. The handles may be moved until first used, so
     * the receiver is copied into the server task below. */
    server srv = { WEFT_FN_INIT(server, WEFT_F_SEND) };
    weft_chan_tx tx;
    rc = weft_mpsc_new(&tx, &srv.rx, sizeof(request), QUEUE_CAP);
    if (rc != 0) {
        fprintf(stderr, "weft_mpsc_new: %s\n", weft_strerror(rc));
        weft_rt_shutdown(rt);
        return 1;
    }
    weft_join join;
    rc = weft_spawn(rt, &srv.base, sizeof srv, &join); /* a failed spawn drops it */
    if (rc != 0) {
        fprintf(stderr, "spawn: %s\n", weft_strerror(rc));
        weft_chan_tx_drop(&tx);
        weft_rt_shutdown(rt);
        return 1;
    }

    /* The connection threads, each with its own sender. */
    conn conns[CONNECTIONS];
    pthread_t threads[CONNECTIONS];
    int started = 0;
    for (int i = 0; i < CONNECTIONS; i++) {
        conns[i] = (conn){ .id = i };
        if (weft_chan_tx_clone(&tx, &conns[i].tx) != 0)
            break;
        if (pthread_create(&threads[i], NULL, conn_main, &conns[i]) != 0) {
            weft_chan_tx_drop(&conns[i].tx);
            break;
        }
        started++;
    }
    weft_chan_tx_drop(&tx); /* main sends nothing itself */

    int bad = started != CONNECTIONS, answers = 0, refused = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        answers += conns[i].answers;
        refused += conns[i].no_answers;
        bad |= conns[i].failed != 0;
    }

    /* Every sender is dropped: the server drains the queue and returns. */
    int answered = 0;
    rc = weft_block_on(rt, &join.base, &answered, sizeof answered);
    if (rc != 0)
        weft_future_drop(&join.base);
    else
        rc = join.status;
    weft_rt_shutdown(rt);
    if (rc != 0 || bad || answered != answers ||
        answers + refused != CONNECTIONS * REQUESTS_PER_CONN) {
        fprintf(stderr, "chan-server: something went wrong (%s)\n", weft_strerror(rc));
        return 1;
    }
    printf("chan-server: %d threads got %d answers and %d refusal\n", started, answers, refused);
    return 0;
}
