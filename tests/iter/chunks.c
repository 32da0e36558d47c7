/* Tests for iter/chunks.c: chunks of n in order with a short last one,
 * the partial chunk kept across PENDING (waker passed on), DONE, flags
 * AND, misuse; chunks_timeout cutting a chunk short when its items stop
 * coming, on sims with chaos over seeds (virtual time, so the gaps are
 * exact); and the cancel sweep over weft_stream_next of chunks on a
 * channel receiver. */
#include "iter/comb_support.h"

static void test_chunks_of_n_then_a_short_one(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &batched_ops, WEFT_F_SEND, 1, 2, S_PENDING, 3, 4, 5, 6, 7, S_DONE);
    uint64_t buf[3];
    weft_iter_chunks ch;
    assert_int_equal(weft_iter_chunks_init(&ch, &sc.base, 3, buf, sizeof buf), 0);
    assert_int_equal(weft_stream_item_size(&ch.base), 8 + 3 * 8);
    size_t lo, hi;
    weft_stream_size_hint(&ch.base, &lo, &hi);
    assert_int_equal(lo, 3);
    assert_int_equal(hi, 3);
    counting_waker c;
    cw_init(&c);
    uint64_t it[4] = { 0 };
    assert_int_equal(pn(&ch.base, &c, it), WEFT_NEXT_PENDING); /* 1, 2 gathered */
    assert_int_equal(it[0], 0);
    assert_int_equal(cw_woken(&c), 1);
    uint64_t it2[4] = { 0 }; /* another buffer: the partial chunk is inside */
    assert_int_equal(pn(&ch.base, &c, it2), WEFT_NEXT_ITEM);
    assert_int_equal(it2[0], 3);
    assert_int_equal(it2[1], 1);
    assert_int_equal(it2[3], 3);
    assert_int_equal(pn(&ch.base, &c, it), WEFT_NEXT_ITEM);
    assert_int_equal(it[0], 3);
    assert_int_equal(it[1], 4);
    assert_int_equal(it[3], 6);
    assert_int_equal(pn(&ch.base, &c, it), WEFT_NEXT_ITEM);
    assert_int_equal(it[0], 1);
    assert_int_equal(it[1], 7);
    assert_int_equal(pn(&ch.base, &c, it), WEFT_NEXT_DONE);
    assert_int_equal(sc.after_done, 0);
    weft_stream_drop(&ch.base);
    assert_int_equal(misuse_count(), 0);
}

static void test_chunks_flags_and_misuse(void **state)
{
    (void)state;
    uint64_t buf[2];
    for (int send = 0; send < 2; send++) {
        scripted sc;
        SCRIPT(&sc, &scripted_ops, send ? WEFT_F_SEND : 0, 1);
        weft_iter_chunks ch;
        assert_int_equal(weft_iter_chunks_init(&ch, &sc.base, 2, buf, sizeof buf), 0);
        ASSERT_SEND_IFF(ch.base.flags, send);
        weft_stream_drop(&ch.base);
    }
    scripted sc;
    SCRIPT(&sc, &scripted_ops, WEFT_F_SEND, 1);
    weft_iter_chunks ch;
    int before = misuse_count();
    assert_int_equal(weft_iter_chunks_init(&ch, &sc.base, 0, buf, sizeof buf), -EINVAL);
    assert_int_equal(weft_iter_chunks_init(&ch, &sc.base, 3, buf, sizeof buf), -EINVAL);
    assert_misuse_since(before, 2, "buffer");
    assert_int_equal(weft_iter_chunks_init(&ch, &sc.base, 1, NULL, 8), -EINVAL);
    assert_misuse_since(before, 3, "NULL");
}

/* ---- chunks_timeout on sims ---------------------------------------------------- */

/* Sends 1, 2; 100 ms later 3, 4, 5; 100 ms later 6; then drops its sender. */
typedef struct gappy {
    weft_future base;
    weft_co co;
    weft_chan_tx tx;
    weft_chan_send s;
    weft_sleep sl;
    uint64_t v;
    int rc;
} gappy;

WEFT_ASYNC_FN(gappy, int)
{
    WEFT_FN_BEGIN;
    for (self->v = 1; self->v <= 6; self->v++) {
        if (self->v == 3 || self->v == 6) {
            weft_sleep_init(&self->sl, WEFT_MS(100));
            WEFT_FN_AWAIT(&self->sl, NULL);
        }
        weft_chan_send_init(&self->s, &self->tx, &self->v);
        WEFT_FN_AWAIT(&self->s, &self->rc);
        if (self->rc != 0)
            break;
    }
    weft_chan_tx_drop(&self->tx);
    WEFT_FN_RETURN(self->rc);
    WEFT_FN_END;
}

/* chunks_timeout(3, 20 ms) over the receiver; each chunk's count and
 * items go into `got` (flat); returns the number of words. */
typedef struct chunker {
    weft_future base;
    weft_co co;
    weft_chan_rx rx;
    weft_iter_chunks ch;
    uint64_t buf[3];
    weft_stream_next nx;
    uint64_t item[4];
    int rc;
    uint64_t *got;
    int n;
} chunker;

WEFT_ASYNC_FN(chunker, int)
{
    WEFT_FN_BEGIN;
    if (weft_iter_chunks_timeout_init(&self->ch, &self->rx.base, 3, self->buf,
                                      sizeof self->buf, WEFT_MS(20)))
        WEFT_FN_RETURN(-1);
    for (;;) {
        weft_stream_next_init(&self->nx, &self->ch.base, self->item);
        WEFT_FN_AWAIT(&self->nx, &self->rc);
        if (self->rc == 0)
            break;
        for (uint64_t i = 0; i <= self->item[0] && self->n < 16; i++)
            self->got[self->n++] = self->item[i];
    }
    weft_stream_drop(&self->ch.base);
    weft_chan_rx_drop(&self->rx);
    WEFT_FN_RETURN(self->n);
    WEFT_FN_END;
}

static void run_chunker(weft_rt *rt)
{
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 8), 0);
    uint64_t got[16] = { 0 };
    chunker co = { WEFT_FN_INIT(chunker, WEFT_F_SEND), .rx = rx, .got = got };
    gappy pr = { WEFT_FN_INIT(gappy, WEFT_F_SEND), .tx = tx };
    weft_join jc, jp;
    spawn_into(rt, &co.base, sizeof co, &jc);
    spawn_into(rt, &pr.base, sizeof pr, &jp);
    int n = join_int(rt, &jc);
    assert_int_equal(join_int(rt, &jp), 0);
    const uint64_t want[] = { 2, 1, 2, 3, 3, 4, 5, 1, 6 };
    assert_int_equal(n, 9);
    assert_memory_equal(got, want, sizeof want);
}

static void test_chunks_timeout_cuts_a_chunk_short_on_sims(void **state)
{
    (void)state;
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        weft_sim_options o = sim_options(seed);
        weft_rt *rt = sim_start(&o);
        run_chunker(rt);
        weft_rt_shutdown(rt);
        rt = chaos_sim(seed);
        run_chunker(rt);
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
}

/* ---- cancel sweep ------------------------------------------------------------- */

static uint64_t g_buf[3];

static weft_stream *make_chunks(comb_sweep *cs)
{
    weft_iter_chunks *c = (weft_iter_chunks *)cs->st.b;
    return weft_iter_chunks_init(c, &cs->rx.base, 3, g_buf, sizeof g_buf) ? NULL : &c->base;
}

static void test_cancel_sweep_chunks(void **state)
{
    (void)state;
    COMB_SWEEP("chunks", make_chunks, 4, 3, 1, 2, 3, 3, 4, 5, 6);
}

/* Polls a stream once (inside the runtime, so its sleep arms there). */
typedef struct poll_once_fut {
    weft_future base;
    weft_stream *s;
    weft_next r;
} poll_once_fut;

static weft_poll poll_once_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)out;
    poll_once_fut *p = (poll_once_fut *)f;
    uint64_t it[4];
    p->r = weft_stream_poll_next(p->s, cx, it);
    return WEFT_READY;
}

static const weft_future_ops poll_once_ops = {
    .name = "test_poll_once", .out_size = 0, .poll = poll_once_poll,
};

/* A partial chunk arms the timeout's sleep; dropping the stream then
 * unlinks it (no timer left), and the channel keeps what was not taken. */
static void test_chunks_timeout_dropped_with_its_sleep_armed(void **state)
{
    (void)state;
    weft_sim_options o = sim_options(sim_seed_or(1));
    weft_rt *rt = sim_start(&o);
    weft_chan_tx tx;
    weft_chan_rx rx;
    assert_int_equal(weft_mpsc_new(&tx, &rx, sizeof(uint64_t), 8), 0);
    uint64_t v = 1;
    assert_int_equal(weft_chan_try_send(&tx, &v), 0);
    uint64_t buf[3];
    weft_iter_chunks ch;
    assert_int_equal(weft_iter_chunks_timeout_init(&ch, &rx.base, 3, buf, sizeof buf, WEFT_SEC(5)),
                     0);
    poll_once_fut p = { WEFT_FUTURE_INIT(&poll_once_ops, WEFT_F_SEND), &ch.base, WEFT_NEXT_ITEM };
    assert_int_equal(weft_block_on(rt, &p.base, NULL, 0), 0);
    assert_int_equal(p.r, WEFT_NEXT_PENDING); /* 1 of 3 gathered, sleep armed */
    weft_rt_counts n;
    assert_int_equal(weft_rt_count(rt, &n), 0);
    assert_int_equal(n.timers, 1);
    weft_stream_drop(&ch.base);
    assert_int_equal(weft_rt_count(rt, &n), 0);
    assert_int_equal(n.timers, 0);
    weft_chan_tx_drop(&tx);
    weft_chan_rx_drop(&rx);
    weft_rt_shutdown(rt);
}

/* chunks_timeout: the gappy feeder, a next dropped after every number of
 * polls (some of them while the timeout's sleep is armed), then the rest
 * drained by hand once the feeder closed the channel (its DONE flushes
 * the partial chunk, no timer needed). Every item exactly once, in order;
 * dropping the stream unlinks its sleep (no timer left). */
typedef struct ct_case {
    weft_chan_rx rx;
    weft_iter_chunks ch;
    uint64_t buf[3];
    weft_stream_next nx;
    uint64_t item[4];
    int out;
    bool dropped;
} ct_case;

static int ct_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    ct_case *cc = ctx;
    weft_chan_tx tx;
    if (weft_mpsc_new(&tx, &cc->rx, sizeof(uint64_t), 8) != 0)
        return -ENOMEM;
    cc->dropped = false;
    int err = weft_iter_chunks_timeout_init(&cc->ch, &cc->rx.base, 3, cc->buf, sizeof cc->buf,
                                            WEFT_MS(20));
    if (err)
        return err;
    memset(cc->item, 0, sizeof cc->item);
    cc->out = -1;
    weft_stream_next_init(&cc->nx, &cc->ch.base, cc->item);
    *fut = &cc->nx.base;
    *out = &cc->out;
    return WEFT_SPAWN(rt, NULL, &(gappy){ WEFT_FN_INIT(gappy, WEFT_F_SEND), .tx = tx });
}

static void ct_drop(ct_case *cc)
{
    if (cc->dropped)
        return;
    cc->dropped = true;
    weft_stream_drop(&cc->ch.base);
    weft_chan_rx_drop(&cc->rx);
}

static const char *ct_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    ct_case *cc = ctx;
    uint64_t got[8];
    size_t n = 0;
    if (run->completed && cc->out == 1)
        for (uint64_t i = 1; i <= cc->item[0] && n < 8; i++)
            got[n++] = cc->item[i];
    counting_waker c;
    cw_init(&c);
    for (int polls = 0;; polls++) {
        uint64_t it[4];
        weft_next r = pn(&cc->ch.base, &c, it);
        if (r == WEFT_NEXT_DONE)
            break;
        if (r == WEFT_NEXT_ITEM)
            for (uint64_t i = 1; i <= it[0] && n < 8; i++)
                got[n++] = it[i];
        if (polls > 100)
            return sweep_say("k=%u: the stream never ended", run->k);
    }
    ct_drop(cc);
    const char *left = sweep_leftovers(rt); /* the sleep went with the stream */
    if (left)
        return left;
    if (n != 6)
        return sweep_say("k=%u: %zu item(s), want 6", run->k, n);
    for (size_t i = 0; i < 6; i++)
        if (got[i] != i + 1)
            return sweep_say("k=%u: item %zu is %llu", run->k, i, (unsigned long long)got[i]);
    return NULL;
}

static void ct_teardown(void *ctx)
{
    ct_drop(ctx);
}

static void test_cancel_sweep_chunks_timeout(void **state)
{
    (void)state;
    static ct_case cc;
    weft_sweep_case c = { ct_build, ct_check, ct_teardown, &cc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 3); /* it waited on the feeder and on its timeout */
    o = sweep_chaos_options(1, 8, 0.3);
    sweep_pass(&c, &o);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunks_of_n_then_a_short_one),
        T(test_chunks_flags_and_misuse),
        T(test_chunks_timeout_cuts_a_chunk_short_on_sims),
        T(test_cancel_sweep_chunks),
        T(test_cancel_sweep_chunks_timeout),
        T(test_chunks_timeout_dropped_with_its_sleep_armed),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
