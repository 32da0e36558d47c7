/* weft-generator: a generator (WEFT_GEN_FN) that turns lines of text
 * arriving on a channel into parsed records, one at a time.
 *
 * A producer task sends lines such as "3:21.5;4:19.0" (sensor:value pairs,
 * several per line, some malformed). The generator `readings` owns the
 * channel's receiver: it awaits a line, then walks it with a cursor into
 * its own buffer and yields one `reading` per well-formed pair. The
 * cursor survives each yield because it lives in the generator's struct,
 * pinned while it is iterated, not on the C stack. A consumer drains the
 * generator with weft_stream_next and sums per sensor; main checks the
 * totals and exits with the verdict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/weft.h>

#define SENSORS 4
#define LINES 50

typedef struct line {
    char text[64];
} line;

typedef struct reading {
    int sensor;
    double value;
} reading;

/* ---- the generator -------------------------------------------------------- */

typedef struct readings {
    weft_stream base;
    weft_co co;
    weft_chan_rx rx;    /* owned: dropped with the generator */
    weft_chan_recv recv;
    int rc;
    line buf;           /* the line being parsed */
    char *at;           /* cursor into buf.text, kept across yields */
    unsigned skipped;   /* malformed pairs */
} readings;

/* Items: `reading`. Cancel safety: a record leaves only in the poll that
 * returns it; dropping the generator drops a pending receive, then the
 * receiver. */
WEFT_GEN_FN_WITH_DROP(readings, reading)
{
    WEFT_GEN_BEGIN;
    for (;;) {
        weft_chan_recv_init(&self->recv, &self->rx, &self->buf);
        WEFT_GEN_AWAIT(&self->recv, &self->rc);
        if (self->rc != 0)
            break; /* closed and drained: DONE */
        for (self->at = self->buf.text; *self->at;) {
            char *end;
            reading r;
            r.sensor = (int)strtol(self->at, &end, 10);
            int ok = end != self->at && *end == ':';
            if (ok) {
                char *num = end + 1;
                r.value = strtod(num, &end);
                ok = end != num && r.sensor >= 0 && r.sensor < SENSORS;
            }
            end += strcspn(end, ";"); /* to the next pair */
            self->at = *end ? end + 1 : end;
            if (!ok) {
                self->skipped++;
                continue;
            }
            WEFT_GEN_YIELD(r);
        }
    }
    WEFT_GEN_END;
}

static void readings_drop(weft_stream *s)
{
    readings *self = (readings *)s;
    weft_co_drop(&self->co); /* a pending receive borrows rx: first */
    weft_chan_rx_drop(&self->rx);
}

/* ---- the producer ----------------------------------------------------------- */

typedef struct producer {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send send;
    line l;
    int i, rc;
} producer;

WEFT_ASYNC_FN_VOID_WITH_DROP(producer)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < LINES; self->i++) {
        memset(&self->l, 0, sizeof self->l);
        /* Two good pairs and, on every fifth line, a malformed one. */
        snprintf(self->l.text, sizeof self->l.text, "%d:%d.5;%s%d:1", self->i % SENSORS,
                 self->i, self->i % 5 == 0 ? "oops;" : "", (self->i + 1) % SENSORS);
        weft_chan_send_init(&self->send, &self->tx, &self->l);
        WEFT_FN_AWAIT(&self->send, &self->rc);
        if (self->rc != 0)
            break;
    }
    WEFT_FN_END; /* dropping tx closes the channel */
}

static void producer_drop(weft_future *f)
{
    producer *self = (producer *)f;
    weft_co_drop(&self->co);
    weft_chan_tx_drop(&self->tx);
}

/* ---- the consumer ----------------------------------------------------------- */

typedef struct totals {
    double sum[SENSORS];
    int count;
} totals;

typedef struct consumer {
    weft_future base;
    weft_co co;
    weft_stream *records;
    weft_stream_next next;
    reading r;
    int more;
    totals t;
} consumer;

WEFT_ASYNC_FN(consumer, totals)
{
    WEFT_FN_BEGIN;
    for (;;) {
        weft_stream_next_init(&self->next, self->records, &self->r);
        WEFT_FN_AWAIT(&self->next, &self->more);
        if (!self->more)
            break;
        self->t.sum[self->r.sensor] += self->r.value;
        self->t.count++;
    }
    WEFT_FN_RETURN(self->t);
    WEFT_FN_END;
}

int main(void)
{
    weft_rt *rt;
    if (weft_rt_new(&rt, NULL) != 0)
        return 1;
    weft_chan_tx tx;
    readings gen = { WEFT_GEN_INIT(readings, WEFT_F_SEND) };
    if (weft_mpsc_new(&tx, &gen.rx, sizeof(line), 4) != 0) {
        weft_rt_shutdown(rt);
        return 1;
    }
    producer p = { WEFT_FN_INIT(producer, WEFT_F_SEND), .tx = tx };
    weft_join jp;
    int rc = weft_spawn(rt, &p.base, sizeof p, &jp);
    if (rc != 0) {
        weft_chan_tx_drop(&tx);
        weft_stream_drop(&gen.base);
        weft_rt_shutdown(rt);
        return 1;
    }

    /* The generator stays here, in main's frame, while the consumer
     * borrows it: it does not move after its first poll. */
    consumer c = { WEFT_FN_INIT(consumer, WEFT_F_SEND), .records = &gen.base };
    totals t;
    rc = weft_block_on(rt, &c.base, &t, sizeof t);
    unsigned skipped = gen.skipped;
    weft_stream_drop(&gen.base);
    if (weft_block_on(rt, &jp.base, NULL, 0) != 0)
        rc = rc ? rc : -1;
    weft_rt_shutdown(rt);

    /* What the producer sent: per line i, i + 0.5 to sensor i % 4 and 1 to
     * sensor (i + 1) % 4, and a malformed pair every fifth line. */
    totals want = { { 0 }, 0 };
    for (int i = 0; i < LINES; i++) {
        want.sum[i % SENSORS] += i + 0.5;
        want.sum[(i + 1) % SENSORS] += 1;
        want.count += 2;
    }
    int ok = rc == 0 && t.count == want.count && skipped == LINES / 5;
    for (int s = 0; s < SENSORS; s++) {
        ok = ok && t.sum[s] == want.sum[s];
        printf("sensor %d: %.1f\n", s, rc == 0 ? t.sum[s] : 0.0);
    }
    printf("%d records, %u malformed pairs skipped: %s\n", rc == 0 ? t.count : 0, skipped,
           ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
