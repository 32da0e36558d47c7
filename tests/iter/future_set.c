/* Tests for iter/future_set.c: a set of futures polled as a stream of
 * completions, with a waker per slot — by hand (each completion once with
 * its tag and slot, DONE when empty and items again after a push, a poll
 * polls only the woken futures, a self-waking future once per poll, one
 * completion per poll in round robin, the coop budget), wakes from a
 * foreign thread, a slot waker that outlives its future and the set, the
 * drop (every future dropped once, nothing leaked), misuse, on the
 * multi-thread runtime and on chaos sims (every output exactly once, an
 * early drop leaves nothing), and the cancel sweep over weft_stream_next. */
#include "iter/conc_support.h"
#include "iter/yield_job.h"

#include <pthread.h>

#define FUT_SZ 64
#define SLOT WEFT_FUTURE_SET_SLOT_SIZE(FUT_SZ)
#define ISZ WEFT_FUTURE_SET_ITEM_SIZE(sizeof(uint64_t))
#define NMAX 128

typedef union item_buf {
    max_align_t a;
    unsigned char b[ISZ];
} item_buf;

typedef union slots_buf {
    max_align_t a;
    unsigned char b[NMAX * SLOT];
} slots_buf;

static slots_buf g_slots;

static void item_get(const item_buf *it, uint64_t *tag, size_t *slot, uint64_t *out)
{
    weft_future_set_head h;
    memcpy(&h, it->b, sizeof h);
    if (tag)
        *tag = h.tag;
    if (slot)
        *slot = h.slot;
    if (out)
        memcpy(out, it->b + WEFT_FUTURE_SET_OUT_OFFSET, sizeof *out);
}

/* ---- a probe: a future the test drives ------------------------------------------ */

/* Its control block stays with the test: polls counted, READY (output
 * 10 id) once `ready`, the waker of its last poll kept in `w`, woken by
 * itself in every poll when `self_wake`. */
typedef struct pctl {
    uint64_t id;
    unsigned polls, drops;
    bool ready, self_wake;
    weft_waker w;
} pctl;

typedef struct probe {
    weft_future base;
    pctl *c;
} probe;

static weft_poll probe_poll(weft_future *f, weft_cx *cx, void *out)
{
    pctl *c = ((probe *)f)->c;
    c->polls++;
    if (c->ready) {
        uint64_t v = 10 * c->id;
        memcpy(out, &v, sizeof v);
        return WEFT_READY;
    }
    weft_waker_drop(&c->w);
    c->w = weft_waker_clone(cx->waker);
    if (c->self_wake)
        weft_waker_wake_by_ref(cx->waker);
    return WEFT_PENDING;
}

static void probe_drop(weft_future *f)
{
    pctl *c = ((probe *)f)->c;
    c->drops++;
    weft_waker_drop(&c->w);
}

static const weft_future_ops probe_ops = {
    .name = "test_probe", .out_size = sizeof(uint64_t), .poll = probe_poll, .drop = probe_drop,
};

static weft_future *make_probe(void *ctx, const void *arg, void *storage, size_t size)
{
    (void)ctx;
    assert_true(size >= sizeof(probe));
    probe *p = storage;
    weft_future_init(&p->base, &probe_ops, WEFT_F_SEND);
    p->c = (pctl *)(uintptr_t)arg;
    return &p->base;
}

static void ctl_init(pctl *c, size_t n)
{
    memset(c, 0, n * sizeof *c);
    for (size_t i = 0; i < n; i++)
        c[i].id = i;
}

static void set_init(weft_future_set *s, size_t n)
{
    assert_int_equal(weft_future_set_init(s, FUT_SZ, sizeof(uint64_t), WEFT_F_SEND, n,
                                          g_slots.b, n * SLOT),
                     0);
}

static unsigned polls_total(const pctl *c, size_t n)
{
    unsigned t = 0;
    for (size_t i = 0; i < n; i++)
        t += c[i].polls;
    return t;
}

/* ---- by hand ----------------------------------------------------------------- */

static void test_future_set_yields_each_completion_once_with_its_tag(void **state)
{
    (void)state;
    pctl c[3];
    ctl_init(c, 3);
    weft_future_set s;
    set_init(&s, 3);
    assert_int_equal(weft_stream_item_size(&s.base), ISZ);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[i], 100 + i), 0);
    assert_int_equal(weft_future_set_len(&s), 3);
    counting_waker cw;
    cw_init(&cw);
    item_buf it;
    assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
    assert_int_equal(polls_total(c, 3), 3);
    /* Complete 1 then 0 then 2, each woken by its own slot waker: the
     * set's registered waker is woken, and the next poll yields it. */
    int order[3] = { 1, 0, 2 };
    for (int k = 0; k < 3; k++) {
        int i = order[k];
        long before = cw_woken(&cw);
        c[i].ready = true;
        weft_waker_wake(&c[i].w);
        assert_true(cw_woken(&cw) > before);
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_ITEM);
        uint64_t tag, out;
        size_t slot;
        item_get(&it, &tag, &slot, &out);
        assert_int_equal(tag, 100 + i);
        assert_int_equal(out, 10 * (uint64_t)i);
        assert_true(slot < 3);
        assert_int_equal(c[i].drops, 1); /* dropped as it completed */
        assert_int_equal(weft_future_set_len(&s), 2 - k);
        if (k < 2)
            assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
    }
    assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_DONE);
    assert_true(weft_future_set_is_empty(&s));
    weft_stream_drop(&s.base);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c[i].drops, 1);
    assert_int_equal(cw_outstanding(&cw), 0); /* its registered clone went */
}

static void test_future_set_empty_is_done_and_a_push_after_done_yields_again(void **state)
{
    (void)state;
    pctl c[2];
    ctl_init(c, 2);
    weft_future_set s;
    set_init(&s, 2);
    counting_waker cw;
    cw_init(&cw);
    item_buf it;
    size_t lo, hi;
    weft_stream_size_hint(&s.base, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_DONE);
    int before = misuse_count();
    for (int round = 0; round < 2; round++) {
        c[round].ready = true;
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[round], 7), 0);
        weft_stream_size_hint(&s.base, &lo, &hi);
        assert_int_equal(lo, 1);
        /* Through a fresh next future, as a consumer loop would. */
        weft_stream_next nx;
        weft_stream_next_init(&nx, &s.base, it.b);
        weft_waker w = cw_waker(&cw);
        weft_cx cx;
        weft_cx_init(&cx, &w);
        int got = -1;
        assert_int_equal(weft_future_poll(&nx.base, &cx, &got), WEFT_READY);
        weft_future_drop(&nx.base);
        assert_int_equal(got, 1);
        uint64_t out;
        item_get(&it, NULL, NULL, &out);
        assert_int_equal(out, 10 * (uint64_t)round);
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_DONE);
    }
    assert_no_misuse_since(before); /* the poll after a DONE + push is fine */
    /* The batch poll: two ready, then DONE on its own call. */
    pctl d[2];
    ctl_init(d, 2);
    d[0].ready = d[1].ready = true;
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &d[0], 1), 0);
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &d[1], 2), 0);
    item_buf many[4];
    size_t n = 0;
    assert_int_equal(pmany(&s.base, &cw, many, 4, &n), WEFT_NEXT_ITEM);
    assert_int_equal(n, 2);
    assert_int_equal(pmany(&s.base, &cw, many, 4, &n), WEFT_NEXT_DONE);
    assert_int_equal(n, 0);
    weft_stream_drop(&s.base);
}

static void test_future_set_poll_polls_only_the_woken_futures(void **state)
{
    (void)state;
    static pctl c[NMAX];
    for (size_t n = 64; n <= NMAX; n += 64) {
        ctl_init(c, n);
        weft_future_set s;
        set_init(&s, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[i], i), 0);
        counting_waker cw;
        cw_init(&cw);
        item_buf it;
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
        assert_int_equal(polls_total(c, n), n); /* each polled once: its first poll */
        /* Nothing woken: nothing polled. */
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
        assert_int_equal(polls_total(c, n), n);
        /* One woken (in the second word when there is one): exactly one
         * poll, of that one. */
        size_t k = n - 27;
        weft_waker_wake_by_ref(&c[k].w);
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
        assert_int_equal(polls_total(c, n), n + 1);
        assert_int_equal(c[k].polls, 2);
        /* Three woken, one twice: three polls. */
        weft_waker_wake_by_ref(&c[3].w);
        weft_waker_wake_by_ref(&c[k].w);
        weft_waker_wake_by_ref(&c[k].w);
        weft_waker_wake_by_ref(&c[n - 1].w);
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
        assert_int_equal(polls_total(c, n), n + 4);
        weft_stream_drop(&s.base);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(c[i].drops, 1);
    }
}

static void test_future_set_self_waking_future_is_polled_once_per_poll(void **state)
{
    (void)state;
    pctl c[2];
    ctl_init(c, 2);
    c[0].self_wake = true;
    weft_future_set s;
    set_init(&s, 2);
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[0], 0), 0);
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[1], 1), 0);
    counting_waker cw;
    cw_init(&cw);
    item_buf it;
    for (unsigned k = 1; k <= 5; k++) {
        long before = cw_woken(&cw);
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
        assert_int_equal(c[0].polls, k); /* once per set poll, not in a loop */
        assert_int_equal(c[1].polls, 1);
        assert_true(cw_woken(&cw) > before); /* its wake reached the task */
    }
    weft_stream_drop(&s.base);
}

static void test_future_set_one_completion_per_poll_in_round_robin(void **state)
{
    (void)state;
    pctl c[4];
    ctl_init(c, 4);
    weft_future_set s;
    set_init(&s, 4);
    for (int i = 0; i < 4; i++) {
        c[i].ready = true;
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[i], i), 0);
    }
    counting_waker cw;
    cw_init(&cw);
    item_buf it;
    /* Slot 0 completes and is refilled at once each time: the others still
     * come out, one per poll. */
    bool seen[4] = { false };
    for (int k = 0; k < 4; k++) {
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_ITEM);
        assert_int_equal(polls_total(c, 4), (unsigned)k + 1);
        uint64_t tag;
        size_t slot;
        item_get(&it, &tag, &slot, NULL);
        assert_false(seen[tag]);
        seen[tag] = true;
        assert_int_equal(slot, (size_t)k);
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[0], 99), 0);
    }
    weft_stream_drop(&s.base);
}

static void test_future_set_respects_the_coop_budget(void **state)
{
    (void)state;
    pctl c[5];
    ctl_init(c, 5);
    weft_future_set s;
    set_init(&s, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[i], i), 0);
    counting_waker cw;
    cw_init(&cw);
    weft_waker w = cw_waker(&cw);
    weft_cx cx;
    weft_cx_init(&cx, &w);
    cx.budget = 2;
    item_buf it;
    assert_int_equal(weft_stream_poll_next(&s.base, &cx, it.b), WEFT_NEXT_PENDING);
    assert_int_equal(polls_total(c, 5), 2); /* two polled, then the budget ran out */
    assert_true(cw_woken(&cw) >= 1);        /* and the task was woken to go on */
    cx.budget = WEFT_COOP_BUDGET;
    assert_int_equal(weft_stream_poll_next(&s.base, &cx, it.b), WEFT_NEXT_PENDING);
    assert_int_equal(polls_total(c, 5), 5); /* the rest, not the first two again */
    weft_stream_drop(&s.base);
}

/* ---- wakes from other threads --------------------------------------------------- */

typedef struct foreign {
    weft_waker w;
    unsigned spin;
} foreign;

static void *foreign_wake(void *arg)
{
    foreign *fw = arg;
    for (unsigned i = 0; i < fw->spin; i++)
        weft__cpu_relax();
    weft_waker extra = weft_waker_clone(&fw->w);
    weft_waker_wake_by_ref(&fw->w);
    weft_waker_wake(&fw->w);
    weft_waker_drop(&extra);
    return NULL;
}

static void test_future_set_wake_from_a_foreign_thread(void **state)
{
    (void)state;
    pctl c[3];
    ctl_init(c, 3);
    weft_future_set s;
    set_init(&s, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[i], i), 0);
    counting_waker cw;
    cw_init(&cw);
    item_buf it;
    assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
    c[2].ready = true;
    foreign fw = { c[2].w, 0 };
    c[2].w.ops = NULL;
    c[2].w.data = NULL;
    long before = cw_woken(&cw);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, foreign_wake, &fw), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(cw_woken(&cw) > before);
    assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_ITEM);
    uint64_t tag;
    item_get(&it, &tag, NULL, NULL);
    assert_int_equal(tag, 2);
    assert_int_equal(polls_total(c, 3), 4); /* only the woken one again */
    weft_stream_drop(&s.base);
}

static void test_future_set_slot_waker_outlives_its_future_and_the_set(void **state)
{
    (void)state;
    assert_int_equal(counting_alloc_install(), 0);
    for (unsigned round = 0; round < 200; round++) {
        pctl c[2];
        ctl_init(c, 2);
        weft_future_set s;
        set_init(&s, 2);
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[0], 0), 0);
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[1], 1), 0);
        counting_waker cw;
        cw_init(&cw);
        item_buf it;
        assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
        /* A clone of slot 0's waker goes to another thread, which wakes
         * it while (or after) the set completes that future and is
         * dropped. */
        foreign fw = { weft_waker_clone(&c[0].w), round % 7 * 50 };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, foreign_wake, &fw), 0);
        c[0].ready = true;
        weft_waker_wake_by_ref(&c[0].w);
        if (round % 2)
            assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_ITEM);
        weft_stream_drop(&s.base);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(c[0].drops + c[1].drops, 2);
        assert_int_equal(cw_outstanding(&cw), 0);
    }
    assert_int_equal(counting_alloc_uninstall("future_set's wake state leaked"), 0);
}

static void test_future_set_drop_drops_every_future_and_frees(void **state)
{
    (void)state;
    assert_int_equal(counting_alloc_install(), 0);
    pctl c[5];
    ctl_init(c, 5);
    weft_future_set s;
    set_init(&s, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[i], i), 0);
    counting_waker cw;
    cw_init(&cw);
    item_buf it;
    assert_int_equal(pn(&s.base, &cw, it.b), WEFT_NEXT_PENDING);
    /* Two never polled again, one pushed and never polled. */
    weft_stream_drop(&s.base);
    for (int i = 0; i < 5; i++)
        assert_int_equal(c[i].drops, 1);
    assert_int_equal(cw_outstanding(&cw), 0);
    /* Dropped without ever being polled. */
    set_init(&s, 3);
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[0], 0), 0);
    weft_stream_drop(&s.base);
    assert_int_equal(c[0].drops, 2);
    assert_int_equal(counting_alloc_uninstall("future_set leaked"), 0);
}

/* ---- misuse ------------------------------------------------------------------ */

static weft_future *make_not_send(void *ctx, const void *arg, void *storage, size_t size)
{
    weft_future *f = make_probe(ctx, arg, storage, size);
    f->flags &= ~WEFT_F_SEND;
    return f;
}

static weft_future *make_elsewhere(void *ctx, const void *arg, void *storage, size_t size)
{
    (void)storage;
    static probe p;
    return make_probe(ctx, arg, &p, size);
}

static void test_future_set_flags_and_misuse(void **state)
{
    (void)state;
    weft_future_set s;
    for (int ff = 0; ff < 2; ff++) {
        assert_int_equal(weft_future_set_init(&s, FUT_SZ, 8, ff ? WEFT_F_SEND : 0, 2, g_slots.b,
                                              2 * SLOT),
                         0);
        ASSERT_SEND_IFF(s.base.flags, ff);
        weft_stream_drop(&s.base);
    }
    int before = misuse_count();
#define BAD(...) assert_int_equal(weft_future_set_init(__VA_ARGS__), -EINVAL)
    BAD(NULL, FUT_SZ, 8, WEFT_F_SEND, 2, g_slots.b, 2 * SLOT);
    BAD(&s, FUT_SZ, 8, WEFT_F_SEND, 0, g_slots.b, 2 * SLOT);
    BAD(&s, FUT_SZ, 8, WEFT_F_SEND, 2, NULL, 2 * SLOT);
    BAD(&s, FUT_SZ, 8, WEFT_F_SEND, 2, g_slots.b + 1, 2 * SLOT);
    BAD(&s, FUT_SZ, 8, WEFT_F_SEND, 2, g_slots.b, 2 * SLOT - 1);
#undef BAD
    assert_misuse_since(before, 5, "weft_future_set_init");
    pctl c[4];
    ctl_init(c, 4);
    set_init(&s, 2);
    assert_int_equal(weft_future_set_push(NULL, make_probe, NULL, &c[0], 0), -EINVAL);
    assert_int_equal(weft_future_set_push(&s, NULL, NULL, &c[0], 0), -EINVAL);
    assert_int_equal(weft_future_set_push(&s, make_not_send, NULL, &c[0], 0), -EINVAL);
    assert_int_equal(c[0].drops, 1); /* the future it made was dropped */
    assert_int_equal(weft_future_set_push(&s, make_elsewhere, NULL, &c[1], 0), -EINVAL);
    assert_int_equal(c[1].drops, 1);
    assert_misuse_since(before, 9, "weft_future_set_push");
    assert_int_equal(weft_future_set_len(&s), 0);
    /* Full: -ENOSPC, fn not called, no report. */
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[2], 0), 0);
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[3], 0), 0);
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[0], 0), -ENOSPC);
    assert_int_equal(c[0].drops, 1);
    assert_misuse_since(before, 9, "weft_future_set_push");
    weft_stream_drop(&s.base);
    assert_int_equal(c[2].drops + c[3].drops, 2);
    /* Output size mismatch (a set of 4-byte outputs). */
    assert_int_equal(weft_future_set_init(&s, FUT_SZ, 4, 0, 2, g_slots.b, 2 * SLOT), 0);
    assert_int_equal(weft_future_set_push(&s, make_probe, NULL, &c[0], 0), -EINVAL);
    assert_int_equal(c[0].drops, 2);
    weft_stream_drop(&s.base);
}

/* ---- on the runtimes ------------------------------------------------------------ */

/* Pushes jobs lo..hi (tag x) keeping up to `n` in flight, and collects
 * their outputs (stopping after `stop`, 0: all); job x outputs 10 x. */
typedef struct driver {
    weft_future base;
    weft_future_set *s;
    uint64_t next_x, hi;
    size_t n_max, stop, n;
    bool bad_tag;
    uint64_t got[DRAIN_MAX];
} driver;

static weft_poll driver_poll(weft_future *f, weft_cx *cx, void *out)
{
    driver *d = (driver *)f;
    (void)out;
    for (;;) {
        while (d->next_x < d->hi && weft_future_set_len(d->s) < d->n_max) {
            /* Jobs that wake themselves, and jobs woken through weft_yield. */
            weft_iter_then_fn *mk = d->next_x % 2 ? make_yjob : make_job;
            if (weft_future_set_push(d->s, mk, NULL, &d->next_x, d->next_x) != 0)
                return WEFT_READY;
            d->next_x++;
        }
        if (d->stop && d->n >= d->stop)
            return WEFT_READY;
        item_buf it;
        weft_next r = weft_stream_poll_next(&d->s->base, cx, it.b);
        if (r == WEFT_NEXT_PENDING)
            return WEFT_PENDING;
        if (r == WEFT_NEXT_DONE) {
            if (d->next_x == d->hi)
                return WEFT_READY;
            continue;
        }
        uint64_t tag, v;
        item_get(&it, &tag, NULL, &v);
        d->bad_tag |= v != 10 * tag;
        if (d->n < DRAIN_MAX)
            d->got[d->n] = v;
        d->n++;
    }
}

static const weft_future_ops driver_ops = { .name = "test_driver", .out_size = 0,
                                            .poll = driver_poll };

static driver g_drv;
static weft_future_set g_set;

static const char *run_set(weft_rt *rt, size_t n, size_t stop)
{
    jobs_reset();
    if (weft_future_set_init(&g_set, FUT_SZ, 8, WEFT_F_SEND, n, g_slots.b, n * SLOT) != 0)
        return "init failed";
    weft_future_init(&g_drv.base, &driver_ops, WEFT_F_SEND);
    g_drv.s = &g_set;
    g_drv.next_x = 0;
    g_drv.hi = 300;
    g_drv.n_max = n;
    g_drv.stop = stop;
    g_drv.n = 0;
    g_drv.bad_tag = false;
    assert_int_equal(weft_block_on(rt, &g_drv.base, NULL, 0), 0);
    const char *bad = NULL;
    if (g_drv.bad_tag)
        bad = "an output came with another future's tag";
    else if (!stop)
        bad = check_items(g_drv.got, g_drv.n, 0, 300, false, NULL);
    else if (g_drv.n != stop)
        bad = "stopped at the wrong count";
    weft_stream_drop(&g_set.base);
    if (!bad && atomic_load(&g_made) != atomic_load(&g_dropped))
        bad = "a job made was not dropped exactly once";
    if (!bad && atomic_load(&g_max_live) > (long)n)
        bad = "more futures alive than slots";
    return bad;
}

static void test_future_set_on_the_runtime(void **state)
{
    (void)state;
    assert_int_equal(counting_alloc_install(), 0);
    weft_rt *rt = rt_start(2);
    for (size_t n = 1; n <= NMAX; n = n * 3 + 1) {
        const char *bad = run_set(rt, n, 0);
        if (bad)
            fail_msg("n %zu: %s", n, bad);
        bad = run_set(rt, n, 17);
        if (bad)
            fail_msg("n %zu (early drop): %s", n, bad);
    }
    weft_rt_shutdown(rt);
    assert_int_equal(counting_alloc_uninstall("future_set leaked"), 0);
}

static void test_future_set_on_chaos_sims(void **state)
{
    (void)state;
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        assert_int_equal(counting_alloc_install(), 0);
        weft_rt *rt = chaos_sim(seed);
        size_t n = 1 + seed % 70;
        const char *bad = run_set(rt, n, 0);
        if (bad)
            fail_msg("seed %llu: %s", (unsigned long long)seed, bad);
        bad = run_set(rt, n, 1 + seed % 13);
        if (bad)
            fail_msg("seed %llu (early drop): %s", (unsigned long long)seed, bad);
        chaos_sim_done(rt, &dealt);
        assert_int_equal(counting_alloc_uninstall("future_set leaked on a sim"), 0);
    }
    assert_true(dealt > 0);
}

/* ---- the cancel sweep --------------------------------------------------------- */

/* Jobs 1..FS_FEED pushed into a set of 3 slots (the rest pushed by the
 * check as slots free up); the sweep polls a next over the set and drops
 * it; the check drains what is left and wants every output exactly once. */
#define FS_FEED 6

typedef struct fs_sweep {
    weft_future_set s;
    weft_stream_next nx;
    item_buf it;
    int out;
    uint64_t next_x;
    driver d;
} fs_sweep;

static int fs_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    fs_sweep *fs = ctx;
    jobs_reset();
    if (weft_future_set_init(&fs->s, FUT_SZ, 8, WEFT_F_SEND, 3, g_slots.b, 3 * SLOT) != 0)
        return -EINVAL;
    for (fs->next_x = 1; fs->next_x <= 3; fs->next_x++)
        if (weft_future_set_push(&fs->s, make_yjob, NULL, &fs->next_x, fs->next_x) != 0)
            return -EINVAL;
    memset(&fs->it, 0, sizeof fs->it);
    fs->out = -1;
    weft_stream_next_init(&fs->nx, &fs->s.base, fs->it.b);
    *fut = &fs->nx.base;
    *out = &fs->out;
    return 0;
}

static const char *fs_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    fs_sweep *fs = ctx;
    uint64_t got[FS_FEED + 2];
    size_t n = 0;
    uint64_t tag, v;
    item_get(&fs->it, &tag, NULL, &v);
    if (run->completed) {
        if (fs->out != 1 || v != 10 * tag)
            return sweep_say("k=%u: the completed next has no item, or a wrong one", run->k);
        got[n++] = v;
    } else if (tag != 0 || v != 0) {
        return sweep_say("k=%u: a dropped next wrote an item", run->k);
    }
    weft_future_init(&fs->d.base, &driver_ops, WEFT_F_SEND);
    fs->d.s = &fs->s;
    fs->d.next_x = fs->next_x;
    fs->d.hi = FS_FEED + 1;
    fs->d.n_max = 3;
    fs->d.stop = 0;
    fs->d.n = 0;
    fs->d.bad_tag = false;
    if (weft_block_on(rt, &fs->d.base, NULL, 0) != 0)
        return sweep_say("k=%u: block_on failed", run->k);
    if (fs->d.bad_tag)
        return sweep_say("k=%u: an output with another future's tag", run->k);
    for (size_t i = 0; i < fs->d.n && n < FS_FEED + 2; i++)
        got[n++] = fs->d.got[i];
    const char *bad = check_items(got, n, 1, FS_FEED + 1, false, NULL);
    if (bad) {
        char why[256];
        snprintf(why, sizeof why, "%s", bad);
        return sweep_say("k=%u (%s): %s", run->k, run->completed ? "completed" : "dropped", why);
    }
    weft_stream_drop(&fs->s.base);
    fs->s.wake_ = NULL;
    if (atomic_load(&g_made) != FS_FEED || atomic_load(&g_dropped) != FS_FEED)
        return sweep_say("k=%u: %ld job(s) made, %ld dropped, want %d each", run->k,
                         atomic_load(&g_made), atomic_load(&g_dropped), FS_FEED);
    return sweep_leftovers(rt);
}

static void fs_teardown(void *ctx)
{
    fs_sweep *fs = ctx;
    if (fs->s.wake_)
        weft_stream_drop(&fs->s.base);
    fs->s.wake_ = NULL;
}

static void test_cancel_sweep_future_set_next(void **state)
{
    (void)state;
    static fs_sweep fs;
    memset(&fs, 0, sizeof fs);
    weft_sweep_case c = { fs_build, fs_check, fs_teardown, &fs };
    assert_true(sweep_both(&c) >= 2);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_future_set_yields_each_completion_once_with_its_tag),
        T(test_future_set_empty_is_done_and_a_push_after_done_yields_again),
        T(test_future_set_poll_polls_only_the_woken_futures),
        T(test_future_set_self_waking_future_is_polled_once_per_poll),
        T(test_future_set_one_completion_per_poll_in_round_robin),
        T(test_future_set_respects_the_coop_budget),
        T(test_future_set_wake_from_a_foreign_thread),
        T(test_future_set_slot_waker_outlives_its_future_and_the_set),
        T(test_future_set_drop_drops_every_future_and_frees),
        T(test_future_set_flags_and_misuse),
        T(test_future_set_on_the_runtime),
        T(test_future_set_on_chaos_sims),
        T(test_cancel_sweep_future_set_next),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
