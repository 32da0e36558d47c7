/* weft-calculator: the essays' calculator behind an async interface.
 *
 * An interface is a struct of function pointers plus `self`. Its async
 * method cannot return a future of a type C can name, so it initialises
 * its future in storage the caller gives, of a size and alignment the
 * interface publishes (DESIGN §12):
 *
 *   int (*add)(void *self, int64_t a, int64_t b, weft_future *storage);
 *   size_t add_size, add_align;        // the future's output: int64_t
 *
 * Two implementations: `quick` answers at once (a tiny future); `ledger`
 * yields, then records every addition in state shared by the calculator
 * and its futures. That state sits behind a weft_rc: each future holds a
 * reference, so dropping the calculator while additions are in flight is
 * fine (the essays' Arc workaround, made the rule). One caller, `total`,
 * sums numbers through whichever calculator it is given: when the
 * published size fits the storage it reserved, the future lives in the
 * caller's own (pinned) struct; otherwise weft_future_box allocates it,
 * once per call, never per poll. main runs both and exits with the verdict. */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft/weft.h>

/* ---- the interface ------------------------------------------------------------ */

typedef struct calc_iface {
    const char *name;
    size_t add_size, add_align;
    int (*add)(void *self, int64_t a, int64_t b, weft_future *storage);
    void (*drop)(void *self);
} calc_iface;

typedef struct calculator {
    const calc_iface *vt;
    void *self;
} calculator;

/* ---- quick: answers on the first poll ---------------------------------------------- */

typedef struct quick_add {
    weft_future base;
    int64_t sum;
} quick_add;

static weft_poll quick_add_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx;
    *(int64_t *)out = ((quick_add *)f)->sum;
    return WEFT_READY;
}

static const weft_future_ops quick_add_ops = {
    .name = "quick_add", .out_size = sizeof(int64_t), .poll = quick_add_poll,
};

static int quick_add_init(void *self, int64_t a, int64_t b, weft_future *storage)
{
    (void)self;
    quick_add *q = (quick_add *)(void *)storage;
    weft_future_init(&q->base, &quick_add_ops, WEFT_F_SEND);
    q->sum = a + b;
    return 0;
}

static void quick_drop(void *self) { (void)self; }

static const calc_iface quick_iface = {
    "quick", sizeof(quick_add), alignof(quick_add), quick_add_init, quick_drop,
};

/* ---- ledger: shared state behind a weft_rc ------------------------------------------- */

static atomic_int g_ledgers_alive;

typedef struct ledger {
    weft_rc rc;                /* the calculator's reference + one per future */
    atomic_long additions;
} ledger;

static void ledger_free(weft_rc *rc)
{
    free((ledger *)(void *)((char *)rc - offsetof(ledger, rc)));
    atomic_fetch_sub(&g_ledgers_alive, 1);
}

typedef struct ledger_add {
    weft_future base;
    weft_co co;
    ledger *l;                 /* a reference, released by the drop */
    int64_t a, b;
    char note[160];            /* a bigger future than `total` reserves */
} ledger_add;

WEFT_ASYNC_FN_WITH_DROP(ledger_add, int64_t)
{
    WEFT_FN_BEGIN;
    WEFT_FN_YIELD; /* the work takes a while */
    atomic_fetch_add(&self->l->additions, 1);
    snprintf(self->note, sizeof self->note, "%lld + %lld", (long long)self->a,
             (long long)self->b);
    WEFT_FN_RETURN(self->a + self->b);
    WEFT_FN_END;
}

static void ledger_add_drop(weft_future *f)
{
    ledger_add *self = (ledger_add *)f;
    weft_rc_release(&self->l->rc);
    weft_co_drop(&self->co);
}

static int ledger_add_init(void *self, int64_t a, int64_t b, weft_future *storage)
{
    ledger *l = self;
    weft_rc_retain(&l->rc);
    *(ledger_add *)(void *)storage =
        (ledger_add){ WEFT_FN_INIT(ledger_add, WEFT_F_SEND), .l = l, .a = a, .b = b };
    return 0;
}

static void ledger_drop(void *self) { weft_rc_release(&((ledger *)self)->rc); }

static const calc_iface ledger_iface = {
    "ledger", sizeof(ledger_add), alignof(ledger_add), ledger_add_init, ledger_drop,
};

static int ledger_new(calculator *c, ledger **out)
{
    ledger *l = malloc(sizeof *l);
    if (!l)
        return -ENOMEM;
    weft_rc_init(&l->rc, ledger_free);
    atomic_init(&l->additions, 0);
    atomic_fetch_add(&g_ledgers_alive, 1);
    *c = (calculator){ &ledger_iface, l };
    *out = l;
    return 0;
}

/* ---- the caller: knows the interface, not the implementation --------------------------- */

#define TOTAL_INLINE 64

typedef struct total {
    weft_future base;
    weft_co co;
    calculator calc;
    const int64_t *xs;
    size_t n, i;
    int64_t acc;
    unsigned boxed;            /* calls that needed a box */
    weft_future *fut;          /* the addition being awaited */
    weft_future_box box;
    union {
        max_align_t align_;
        unsigned char b[TOTAL_INLINE];
    } inline_;
} total;

WEFT_ASYNC_FN(total, int64_t)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        {
            const calc_iface *vt = self->calc.vt;
            int rc;
            if (vt->add_size <= TOTAL_INLINE && vt->add_align <= alignof(max_align_t)) {
                self->fut = (weft_future *)(void *)self->inline_.b;
                rc = vt->add(self->calc.self, self->acc, self->xs[self->i], self->fut);
            } else {
                weft_future *storage;
                rc = weft_future_box_alloc(&self->box, vt->add_size, vt->add_align, &storage);
                if (rc == 0) {
                    rc = vt->add(self->calc.self, self->acc, self->xs[self->i], storage);
                    if (rc == 0)
                        weft_future_box_fill(&self->box);
                    else
                        weft_future_box_drop(&self->box);
                }
                self->fut = &self->box.base;
                self->boxed++;
            }
            if (rc != 0)
                WEFT_FN_RETURN(-1);
        }
        WEFT_AWAIT(&self->co, cx, self->fut, &self->acc); /* dropped once READY */
    }
    WEFT_FN_RETURN(self->acc);
    WEFT_FN_END;
}

static int run_total(weft_rt *rt, calculator c, const int64_t *xs, size_t n, int64_t *sum,
                     unsigned *boxed)
{
    total t = { WEFT_FN_INIT(total, WEFT_F_SEND), .calc = c, .xs = xs, .n = n };
    int rc = weft_block_on(rt, &t.base, sum, sizeof *sum);
    *boxed = t.boxed;
    if (rc != 0)
        weft_future_drop(&t.base);
    return rc;
}

int main(void)
{
    weft_rt *rt;
    if (weft_rt_new(&rt, NULL) != 0)
        return 1;
    static const int64_t xs[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    const size_t n = sizeof xs / sizeof *xs;
    int ok = 1;

    calculator q = { &quick_iface, NULL };
    int64_t sum = 0;
    unsigned boxed = 0;
    int rc = run_total(rt, q, xs, n, &sum, &boxed);
    printf("quick:  sum %lld, %u boxed call(s)\n", (long long)sum, boxed);
    ok &= rc == 0 && sum == 55 && boxed == 0;
    q.vt->drop(q.self);

    calculator c;
    ledger *l;
    ok &= ledger_new(&c, &l) == 0;
    if (ok) {
        rc = run_total(rt, c, xs, n, &sum, &boxed);
        long adds = atomic_load(&l->additions);
        printf("ledger: sum %lld, %u boxed call(s), %ld addition(s) recorded\n",
               (long long)sum, boxed, adds);
        ok &= rc == 0 && sum == 55 && boxed == n && adds == (long)n;

        /* A future outliving its calculator: it holds its own reference. */
        weft_future_box b;
        weft_future *storage;
        ok &= weft_future_box_alloc(&b, c.vt->add_size, c.vt->add_align, &storage) == 0;
        if (ok) {
            ok &= c.vt->add(c.self, 40, 2, storage) == 0;
            weft_future_box_fill(&b);
            c.vt->drop(c.self);          /* the calculator is gone */
            ok &= atomic_load(&g_ledgers_alive) == 1;
            int64_t answer = 0;
            rc = weft_block_on(rt, &b.base, &answer, sizeof answer);
            printf("ledger: a future outliving its calculator answered %lld\n",
                   (long long)answer);
            ok &= rc == 0 && answer == 42; /* block_on dropped the box: the last ref */
            ok &= atomic_load(&g_ledgers_alive) == 0;
        }
    }
    weft_rt_shutdown(rt);
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
