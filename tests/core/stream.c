/* Tests for the stream side of core/future.c: weft_stream_poll_next_many
 * (the stream's own batch poll, or poll_next repeated while it yields
 * items) and the weft_stream_next future, over a scripted stream whose
 * every answer the test chooses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "weft/weft.h"
#include "support/counting_waker.h"
#include "support/misuse_capture.h"

/* A stream that answers from a script: a value >= 0 is an item (written
 * as `size` bytes of that value), PENDING (-1) arranges a wake first, DONE
 * (-2) ends it. Past the script it answers DONE. It counts its polls, and
 * the polls it got after it answered DONE (the contract: none). */
enum { S_PENDING = -1, S_DONE = -2 };

typedef struct scripted {
    weft_stream base;
    const int *script;
    size_t len, at, size;
    unsigned polls, after_done, batch_calls;
    bool done;
} scripted;

static weft_next scripted_poll_next(weft_stream *s, weft_cx *cx, void *item)
{
    scripted *sc = (scripted *)s;
    sc->polls++;
    if (sc->done) {
        sc->after_done++;
        return WEFT_NEXT_DONE;
    }
    int v = sc->at < sc->len ? sc->script[sc->at++] : S_DONE;
    if (v == S_PENDING) {
        weft_waker_wake_by_ref(cx->waker);
        return WEFT_NEXT_PENDING;
    }
    if (v == S_DONE) {
        sc->done = true;
        return WEFT_NEXT_DONE;
    }
    memset(item, v, sc->size);
    return WEFT_NEXT_ITEM;
}

/* The same, with a batch poll of its own: items up to the next PENDING,
 * DONE or max. */
static weft_next scripted_poll_next_many(weft_stream *s, weft_cx *cx, void *items, size_t max,
                                         size_t *n)
{
    scripted *sc = (scripted *)s;
    sc->batch_calls++;
    unsigned char *o = items;
    *n = 0;
    while (*n < max && sc->at < sc->len && sc->script[sc->at] >= 0) {
        memset(o + *n * sc->size, sc->script[sc->at++], sc->size);
        (*n)++;
    }
    if (*n)
        return WEFT_NEXT_ITEM;
    return scripted_poll_next(s, cx, items);
}

static size_t scripted_item_size(const weft_stream *s)
{
    return ((const scripted *)s)->size;
}

static const weft_stream_ops scripted_ops = {
    .name = "test_scripted",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = scripted_poll_next,
    .item_size_of = scripted_item_size,
};

static const weft_stream_ops batched_ops = {
    .name = "test_batched",
    .item_size = WEFT_ITEM_SIZE_VARIES,
    .poll_next = scripted_poll_next,
    .poll_next_many = scripted_poll_next_many,
    .item_size_of = scripted_item_size,
};

static void scripted_init(scripted *sc, const weft_stream_ops *ops, const int *script,
                          size_t len, size_t size, uint32_t flags)
{
    memset(sc, 0, sizeof *sc);
    weft_stream_init(&sc->base, ops, flags);
    sc->script = script;
    sc->len = len;
    sc->size = size;
}

#define SCRIPT(sc, ops, size, ...)                                              \
    do {                                                                        \
        static const int script_[] = { __VA_ARGS__ };                           \
        scripted_init((sc), (ops), script_, sizeof script_ / sizeof *script_,   \
                      (size), WEFT_F_SEND);                                     \
    } while (0)

static weft_next many(scripted *sc, counting_waker *c, void *items, size_t max, size_t *n)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_stream_poll_next_many(&sc->base, &cx, items, max, n);
}

static weft_poll pollc(weft_future *f, counting_waker *c, void *out)
{
    weft_waker w = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    return weft_future_poll(f, &cx, out);
}

/* ---- the default loop --------------------------------------------------------------- */

static void test_default_loop_takes_up_to_max_and_stops_there(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, 1, 1, 2, 3, 4, 5, S_DONE);
    counting_waker c;
    cw_init(&c);
    unsigned char b[8];
    size_t n = 99;
    assert_int_equal(many(&sc, &c, b, 3, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
    assert_int_equal(sc.polls, 3); /* no poll beyond max */
    assert_int_equal(b[0], 1);
    assert_int_equal(b[2], 3);
    /* Two items, then DONE: the items now, DONE at the next call. */
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(b[0], 4);
    assert_int_equal(b[1], 5);
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(n, 0);
    /* The stream answered DONE once: it is not polled again for it. */
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(cw_woken(&c), 0);
    assert_int_equal(misuse_count(), 0);
    /* A call after DONE was reported is misuse (debug builds; release
     * builds answer DONE again, still without polling the stream). */
    weft_next r = many(&sc, &c, b, 8, &n);
    assert_int_equal(n, 0);
#ifdef NDEBUG
    assert_int_equal(r, WEFT_NEXT_DONE);
#else
    assert_int_equal(r, WEFT_NEXT_PENDING);
#endif
    assert_misuse_since(0, 1, "test_scripted");
    assert_int_equal(sc.after_done, 0);
}

static void test_default_loop_pending_first_and_after_items(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, 1, S_PENDING, 1, 2, S_PENDING, 3, S_DONE);
    counting_waker c;
    cw_init(&c);
    unsigned char b[8];
    size_t n = 99;
    /* PENDING with nothing: PENDING, the wake arranged. */
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_PENDING);
    assert_int_equal(n, 0);
    assert_int_equal(cw_woken(&c), 1);
    /* Items then PENDING: the items; the PENDING's wake stands. */
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(b[1], 2);
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(b[0], 3);
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(n, 0);
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(cw_outstanding(&c), 0);
    assert_int_equal(misuse_count(), 0);
}

static void test_default_loop_steps_by_the_item_size(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, 3, 7, 8, 9);
    counting_waker c;
    cw_init(&c);
    unsigned char b[12];
    memset(b, 0xee, sizeof b);
    size_t n = 0;
    assert_int_equal(many(&sc, &c, b, 3, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 3);
    const unsigned char want[12] = { 7, 7, 7, 8, 8, 8, 9, 9, 9, 0xee, 0xee, 0xee };
    assert_memory_equal(b, want, sizeof want);
    /* Item size 0: counted, nothing written. */
    SCRIPT(&sc, &scripted_ops, 0, 1, 1, S_DONE);
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(b[0], 7);
    assert_int_equal(misuse_count(), 0);
}

static void test_max_zero_is_misuse(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, 1, 1);
    counting_waker c;
    cw_init(&c);
    unsigned char b[1];
    size_t n = 99;
    assert_int_equal(many(&sc, &c, b, 0, &n), WEFT_NEXT_PENDING);
    assert_int_equal(n, 0);
    assert_int_equal(sc.polls, 0);
    assert_misuse_since(0, 1, "weft_stream_poll_next_many");
}

static void test_a_streams_own_batch_poll_is_used(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &batched_ops, 1, 1, 2, 3, S_PENDING, 4, S_DONE);
    counting_waker c;
    cw_init(&c);
    unsigned char b[8];
    size_t n = 0;
    assert_int_equal(many(&sc, &c, b, 2, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(sc.batch_calls, 1);
    assert_int_equal(sc.polls, 0);
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    assert_int_equal(b[0], 3);
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_ITEM);
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_DONE);
    assert_int_equal(misuse_count(), 0);
#ifndef NDEBUG
    assert_int_equal(many(&sc, &c, b, 8, &n), WEFT_NEXT_PENDING);
    assert_misuse_since(0, 1, "test_batched");
#endif
}

/* ---- weft_stream_next ------------------------------------------------------------------ */

static void test_stream_next_outputs_items_then_zero(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, 2, 5, S_PENDING, 6, S_DONE);
    counting_waker c;
    cw_init(&c);
    unsigned char item[2] = { 0, 0 };
    int out = 9;
    weft_stream_next nx;
    weft_stream_next_init(&nx, &sc.base, item);
    assert_true(weft_future_is_send(&nx.base));
    assert_int_equal(weft_future_out_size(&nx.base), sizeof(int));
    assert_int_equal(pollc(&nx.base, &c, &out), WEFT_READY);
    assert_int_equal(out, 1);
    assert_int_equal(item[0], 5);
    assert_int_equal(item[1], 5);
    weft_future_drop(&nx.base);
    weft_stream_next_init(&nx, &sc.base, item);
    assert_int_equal(pollc(&nx.base, &c, &out), WEFT_PENDING);
    assert_int_equal(cw_woken(&c), 1);
    assert_int_equal(pollc(&nx.base, &c, &out), WEFT_READY);
    assert_int_equal(out, 1);
    assert_int_equal(item[0], 6);
    weft_future_drop(&nx.base);
    weft_stream_next_init(&nx, &sc.base, item);
    assert_int_equal(pollc(&nx.base, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    assert_int_equal(item[0], 6); /* untouched */
    weft_future_drop(&nx.base);
    assert_int_equal(misuse_count(), 0);
#ifndef NDEBUG
    /* The stream finished: a next over it is refused (debug builds). */
    weft_stream_next_init(&nx, &sc.base, item);
    assert_int_equal(pollc(&nx.base, &c, &out), WEFT_PENDING);
    weft_future_drop(&nx.base);
    assert_misuse_since(0, 1, "test_scripted");
    assert_int_equal(sc.after_done, 0);
#endif
    assert_int_equal(cw_outstanding(&c), 0);
}

static void test_stream_next_dropped_pending_loses_nothing(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, 1, S_PENDING, 42, S_DONE);
    scripted_init(&sc, &scripted_ops, sc.script, sc.len, 1, 0); /* not Send */
    counting_waker c;
    cw_init(&c);
    unsigned char item = 0;
    int out = 9;
    weft_stream_next nx;
    weft_stream_next_init(&nx, &sc.base, &item);
    assert_false(weft_future_is_send(&nx.base)); /* follows the stream */
    assert_int_equal(pollc(&nx.base, &c, &out), WEFT_PENDING);
    weft_future_drop(&nx.base);
    assert_int_equal(out, 9);
    weft_stream_next_init(&nx, &sc.base, &item);
    assert_int_equal(pollc(&nx.base, &c, &out), WEFT_READY);
    assert_int_equal(out, 1);
    assert_int_equal(item, 42);
    weft_future_drop(&nx.base);
    assert_int_equal(misuse_count(), 0);
}

/* poll_next_many and stream next mixed: a DONE held back by the default
 * loop is what the next future sees. */
static void test_stream_next_after_a_batch_that_hid_done(void **state)
{
    (void)state;
    scripted sc;
    SCRIPT(&sc, &scripted_ops, 1, 1, S_DONE);
    counting_waker c;
    cw_init(&c);
    unsigned char b[4];
    size_t n = 0;
    assert_int_equal(many(&sc, &c, b, 4, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 1);
    int out = 9;
    weft_stream_next nx;
    weft_stream_next_init(&nx, &sc.base, b);
    assert_int_equal(pollc(&nx.base, &c, &out), WEFT_READY);
    assert_int_equal(out, 0);
    weft_future_drop(&nx.base);
    assert_int_equal(sc.after_done, 0);
    assert_int_equal(misuse_count(), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_default_loop_takes_up_to_max_and_stops_there),
        T(test_default_loop_pending_first_and_after_items),
        T(test_default_loop_steps_by_the_item_size),
        T(test_max_zero_is_misuse),
        T(test_a_streams_own_batch_poll_is_used),
        T(test_stream_next_outputs_items_then_zero),
        T(test_stream_next_dropped_pending_loses_nothing),
        T(test_stream_next_after_a_batch_that_hid_done),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
