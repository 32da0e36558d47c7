/* Tests of sync/token.c: the cancellation token tree (cancel reaches every
 * descendant once and never an ancestor; children born of a cancelled
 * parent; children finalised at any time), the cancelled future (by hand,
 * on two workers, on sims with chaos), children finalised by foreign
 * threads while another cancels their parent (on two workers and on a
 * sim; run under TSan), and the cancel sweep of the cancelled future. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include "weft/weft.h"
#include "sync/waitq.h"
#include "support/counting_waker.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"
#include "misc_support.h"

static weft_poll poll_once(weft_future *f, counting_waker *c)
{
    weft_waker wk = cw_waker(c);
    weft_cx cx;
    weft_cx_init(&cx, &wk);
    return weft_future_poll(f, &cx, NULL);
}

/* ---- tasks ------------------------------------------------------------------------------ */

/* Waits until `t` is cancelled; outputs 1 if is_cancelled agrees. */
typedef struct waiter {
    weft_future base;
    weft_co co;
    weft_cancel_token *t;
    weft_cancel_token_cancelled c;
} waiter;

WEFT_ASYNC_FN(waiter, int)
{
    WEFT_FN_BEGIN;
    weft_cancel_token_cancelled_init(&self->c, self->t);
    WEFT_FN_AWAIT(&self->c, NULL);
    WEFT_FN_RETURN(weft_cancel_token_is_cancelled(self->t) ? 1 : 0);
    WEFT_FN_END;
}

/* Yields `yields` times, then cancels `t`; outputs cancel's code. */
typedef struct canceller {
    weft_future base;
    weft_co co;
    weft_cancel_token *t;
    int yields, i;
} canceller;

WEFT_ASYNC_FN(canceller, int)
{
    WEFT_FN_BEGIN;
    for (self->i = 0; self->i < self->yields; self->i++)
        WEFT_FN_YIELD;
    WEFT_FN_RETURN(weft_cancel_token_cancel(self->t));
    WEFT_FN_END;
}

/* Makes a child of `parent` in `*child`, yields, finalises it: a child
 * that comes and goes while the parent may be cancelled. Outputs 0. */
typedef struct fleeting {
    weft_future base;
    weft_co co;
    weft_cancel_token *parent, *child;
    int yields, i;
} fleeting;

WEFT_ASYNC_FN(fleeting, int)
{
    WEFT_FN_BEGIN;
    if (weft_cancel_token_init_child(self->child, self->parent) != 0)
        WEFT_FN_RETURN(-1);
    for (self->i = 0; self->i < self->yields; self->i++)
        WEFT_FN_YIELD;
    weft_cancel_token_fini(self->child);
    WEFT_FN_RETURN(0);
    WEFT_FN_END;
}

/* ---- the tree, by hand ------------------------------------------------------------------ */

static void test_cancel_wakes_waiters_and_sets_the_flag(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_cancel_token t;
    assert_int_equal(weft_cancel_token_init(&t), 0);
    weft_cancel_token_cancelled w[2];
    for (int i = 0; i < 2; i++) {
        weft_cancel_token_cancelled_init(&w[i], &t);
        assert_int_equal(poll_once(&w[i].base, &c), WEFT_PENDING);
    }
    assert_int_equal(poll_once(&w[0].base, &c), WEFT_PENDING); /* spurious */
    assert_false(weft_cancel_token_is_cancelled(&t));
    assert_int_equal(weft_cancel_token_cancel(&t), 0);
    assert_true(weft_cancel_token_is_cancelled(&t));
    assert_int_equal(cw_woken(&c), 2);
    assert_int_equal(weft_cancel_token_cancel(&t), 0); /* idempotent */
    assert_int_equal(cw_woken(&c), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(poll_once(&w[i].base, &c), WEFT_READY);
        weft_future_drop(&w[i].base);
    }
    /* A wait that starts after the cancel is ready at once. */
    weft_cancel_token_cancelled late;
    weft_cancel_token_cancelled_init(&late, &t);
    assert_int_equal(poll_once(&late.base, &c), WEFT_READY);
    weft_future_drop(&late.base);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_cancel_token_fini(&t);
}

/* root -> a -> {a1, a2}, root -> b. */
typedef struct tree {
    weft_cancel_token root, a, a1, a2, b;
} tree;

static void tree_init(tree *t)
{
    assert_int_equal(weft_cancel_token_init(&t->root), 0);
    assert_int_equal(weft_cancel_token_init_child(&t->a, &t->root), 0);
    assert_int_equal(weft_cancel_token_init_child(&t->a1, &t->a), 0);
    assert_int_equal(weft_cancel_token_init_child(&t->a2, &t->a), 0);
    assert_int_equal(weft_cancel_token_init_child(&t->b, &t->root), 0);
}

static void tree_fini(tree *t)
{
    weft_cancel_token_fini(&t->a1);
    weft_cancel_token_fini(&t->a2);
    weft_cancel_token_fini(&t->a);
    weft_cancel_token_fini(&t->b);
    weft_cancel_token_fini(&t->root);
}

static void test_cancelling_a_parent_cancels_every_descendant_once(void **state)
{
    (void)state;
    int before = misuse_count();
    counting_waker c[5];
    tree t;
    tree_init(&t);
    weft_cancel_token *tok[5] = { &t.root, &t.a, &t.a1, &t.a2, &t.b };
    weft_cancel_token_cancelled w[5];
    for (int i = 0; i < 5; i++) {
        cw_init(&c[i]);
        weft_cancel_token_cancelled_init(&w[i], tok[i]);
        assert_int_equal(poll_once(&w[i].base, &c[i]), WEFT_PENDING);
    }
    assert_int_equal(weft_cancel_token_cancel(&t.root), 0);
    for (int i = 0; i < 5; i++) {
        assert_true(weft_cancel_token_is_cancelled(tok[i]));
        assert_int_equal(cw_woken(&c[i]), 1);
        assert_null(tok[i]->first_child_);
    }
    assert_int_equal(weft_cancel_token_cancel(&t.a), 0);
    assert_int_equal(weft_cancel_token_cancel(&t.root), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cw_woken(&c[i]), 1);
        assert_int_equal(poll_once(&w[i].base, &c[i]), WEFT_READY);
        weft_future_drop(&w[i].base);
        assert_int_equal(cw_outstanding(&c[i]), 0);
    }
    tree_fini(&t);
    assert_no_misuse_since(before);
}

static void test_cancelling_a_child_leaves_its_parent_and_siblings(void **state)
{
    (void)state;
    int before = misuse_count();
    tree t;
    tree_init(&t);
    assert_int_equal(weft_cancel_token_cancel(&t.a), 0);
    assert_true(weft_cancel_token_is_cancelled(&t.a));
    assert_true(weft_cancel_token_is_cancelled(&t.a1));
    assert_true(weft_cancel_token_is_cancelled(&t.a2));
    assert_false(weft_cancel_token_is_cancelled(&t.root));
    assert_false(weft_cancel_token_is_cancelled(&t.b));
    /* `a` stays linked under root until finalised. */
    assert_ptr_equal(t.root.first_child_, &t.b);
    assert_ptr_equal(t.b.next_sibling_, &t.a);
    tree_fini(&t);
    assert_no_misuse_since(before);
}

static void test_a_child_of_a_cancelled_parent_is_born_cancelled(void **state)
{
    (void)state;
    weft_cancel_token root, child, grandchild;
    assert_int_equal(weft_cancel_token_init(&root), 0);
    assert_int_equal(weft_cancel_token_cancel(&root), 0);
    assert_int_equal(weft_cancel_token_init_child(&child, &root), 0);
    assert_int_equal(weft_cancel_token_init_child(&grandchild, &child), 0);
    assert_true(weft_cancel_token_is_cancelled(&child));
    assert_true(weft_cancel_token_is_cancelled(&grandchild));
    assert_null(root.first_child_);
    weft_cancel_token_fini(&grandchild);
    weft_cancel_token_fini(&child);
    weft_cancel_token_fini(&root);
}

/* Finalised children (their memory freed) are gone from the list: a later
 * cancel of the parent never touches them (ASan would see it). */
static void test_finalised_children_are_unlinked(void **state)
{
    (void)state;
    weft_cancel_token root;
    assert_int_equal(weft_cancel_token_init(&root), 0);
    weft_cancel_token *ch[4];
    for (int i = 0; i < 4; i++) {
        ch[i] = malloc(sizeof *ch[i]);
        assert_non_null(ch[i]);
        assert_int_equal(weft_cancel_token_init_child(ch[i], &root), 0);
    }
    int order[4] = { 1, 3, 0, 2 };
    for (int k = 0; k < 3; k++) {
        weft_cancel_token_fini(ch[order[k]]);
        free(ch[order[k]]);
    }
    assert_ptr_equal(root.first_child_, ch[2]);
    assert_null(ch[2]->next_sibling_);
    assert_null(ch[2]->prev_sibling_);
    assert_int_equal(weft_cancel_token_cancel(&root), 0);
    assert_true(weft_cancel_token_is_cancelled(ch[2]));
    weft_cancel_token_fini(ch[2]);
    free(ch[2]);
    weft_cancel_token_fini(&root);
}

static void test_misuse_is_einval_or_reported(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    int before = misuse_count();
    weft_cancel_token t, ch;
    assert_int_equal(weft_cancel_token_init(NULL), -EINVAL);
    assert_int_equal(weft_cancel_token_init_child(&ch, NULL), -EINVAL);
    assert_int_equal(weft_cancel_token_cancel(NULL), -EINVAL);
    assert_false(weft_cancel_token_is_cancelled(NULL));
    assert_misuse_since(before, 3, "NULL");
    assert_int_equal(weft_cancel_token_init(&t), 0);
    assert_int_equal(weft_cancel_token_init_child(&ch, &t), 0);
    weft_cancel_token_cancelled w;
    weft_cancel_token_cancelled_init(&w, &t);
    assert_int_equal(poll_once(&w.base, &c), WEFT_PENDING);
    weft_cancel_token_fini(&t);
    assert_misuse_since(before, 5, "children");
    weft_future_drop(&w.base);
    assert_int_equal(cw_outstanding(&c), 0);
    weft_cancel_token_fini(&ch);
    weft_cancel_token_fini(&t);
    assert_misuse_since(before, 5, "children");
}

/* ---- tasks on a runtime ----------------------------------------------------------------- */

#define NFLEET 6

/* Waiters on every token of a tree, children coming and going, and a
 * canceller task that cancels the root. */
static void run_tree_scenario(weft_rt *rt, int cancel_yields)
{
    tree t;
    tree_init(&t);
    weft_cancel_token *tok[5] = { &t.root, &t.a, &t.a1, &t.a2, &t.b };
    weft_cancel_token fleet[NFLEET];
    weft_join jw[5], jf[NFLEET], jc;
    for (int i = 0; i < 5; i++) {
        waiter w = { WEFT_FN_INIT(waiter, WEFT_F_SEND), .t = tok[i] };
        spawn_into(rt, &w.base, sizeof w, &jw[i]);
    }
    for (int i = 0; i < NFLEET; i++) {
        fleeting f = { WEFT_FN_INIT(fleeting, WEFT_F_SEND), .parent = tok[i % 5],
                       .child = &fleet[i], .yields = i % 4 };
        spawn_into(rt, &f.base, sizeof f, &jf[i]);
    }
    canceller c = { WEFT_FN_INIT(canceller, WEFT_F_SEND), .t = &t.root, .yields = cancel_yields };
    spawn_into(rt, &c.base, sizeof c, &jc);
    assert_int_equal(join_int(rt, &jc), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(join_int(rt, &jw[i]), 1);
    for (int i = 0; i < NFLEET; i++)
        assert_int_equal(join_int(rt, &jf[i]), 0);
    tree_fini(&t);
}

static void test_tasks_waiting_on_a_tree_are_all_released(void **state)
{
    (void)state;
    int before = misuse_count();
    for (int round = 0; round < 50; round++)
        run_tree_scenario(g_rt, round % 5);
    assert_no_misuse_since(before);
}

static void test_sim_chaos_tasks_waiting_on_a_tree_are_all_released(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    int before = misuse_count();
    uint64_t dealt = 0;
    for (uint64_t seed = 1; seed <= CHAOS_SEEDS; seed++) {
        weft_rt *rt = chaos_sim(seed);
        run_tree_scenario(rt, (int)(seed % 5));
        chaos_sim_done(rt, &dealt);
    }
    assert_true(dealt > 0);
    assert_no_misuse_since(before);
}

/* ---- foreign threads: child fini racing a parent cancel --------------------------------- */

#define NKIDS 8

/* root -> kid[i] -> grandkid[i]. Thread 0 cancels the root; threads 1
 * and 2 finalise and free the odd kids (grandkid first) while it does;
 * tasks wait on the even grandkids. Freed memory that the cancel still
 * touched is what ASan and TSan look for. */
typedef struct race {
    weft_rt *sim; /* a sim the canceller holds open, or NULL */
    weft_cancel_token root;
    weft_cancel_token *kid[NKIDS], *grandkid[NKIDS];
    _Atomic int go;
    int who;
} race;

typedef struct race_arg {
    race *r;
    int who;
} race_arg;

static void *race_main(void *p)
{
    race_arg *a = p;
    race *r = a->r;
    /* Acquire: pairs with the release that starts the round. */
    while (!weft_atomic_load_acquire(&r->go))
        weft__cpu_relax();
    if (a->who == 0) {
        assert_int_equal(weft_cancel_token_cancel(&r->root), 0);
        if (r->sim)
            weft_sim_outside_end(r->sim); /* its wakes are all sent */
        return NULL;
    }
    for (int i = a->who; i < NKIDS; i += 4) { /* 1, 5 / 3, 7 (who 1 or 3) */
        weft_cancel_token_fini(r->grandkid[i]);
        free(r->grandkid[i]);
        weft_cancel_token_fini(r->kid[i]);
        free(r->kid[i]);
    }
    return NULL;
}

static void race_round(weft_rt *rt)
{
    race r;
    weft_atomic_init(&r.go, 0);
    assert_int_equal(weft_cancel_token_init(&r.root), 0);
    for (int i = 0; i < NKIDS; i++) {
        r.kid[i] = malloc(sizeof(weft_cancel_token));
        r.grandkid[i] = malloc(sizeof(weft_cancel_token));
        assert_non_null(r.kid[i]);
        assert_non_null(r.grandkid[i]);
        assert_int_equal(weft_cancel_token_init_child(r.kid[i], &r.root), 0);
        assert_int_equal(weft_cancel_token_init_child(r.grandkid[i], r.kid[i]), 0);
    }
    bool sim = rt_is_sim(rt);
    r.sim = sim ? rt : NULL;
    if (sim) /* the canceller's wakes come from outside the sim */
        assert_int_equal(weft_sim_outside_begin(rt), 0);
    weft_join j[NKIDS / 2];
    for (int i = 0; i < NKIDS; i += 2) {
        waiter w = { WEFT_FN_INIT(waiter, WEFT_F_SEND), .t = r.grandkid[i] };
        spawn_into(rt, &w.base, sizeof w, &j[i / 2]);
    }
    pthread_t th[3];
    race_arg args[3] = { { &r, 0 }, { &r, 1 }, { &r, 3 } };
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &args[i]), 0);
    if (sim)
        rt_settle(rt); /* some waiters queue before the threads start */
    /* Release: the threads see the tree built. */
    weft_atomic_store_release(&r.go, 1);
    for (int i = 0; i < NKIDS / 2; i++)
        assert_int_equal(join_int(rt, &j[i]), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < NKIDS; i += 2) {
        assert_true(weft_cancel_token_is_cancelled(r.kid[i]));
        weft_cancel_token_fini(r.grandkid[i]);
        free(r.grandkid[i]);
        weft_cancel_token_fini(r.kid[i]);
        free(r.kid[i]);
    }
    assert_null(r.root.first_child_);
    weft_cancel_token_fini(&r.root);
}

static void test_child_fini_races_parent_cancel_from_foreign_threads(void **state)
{
    (void)state;
    int before = misuse_count();
    for (int round = 0; round < 300; round++)
        race_round(g_rt);
    assert_no_misuse_since(before);
}

static void test_sim_child_fini_races_parent_cancel_from_foreign_threads(void **state)
{
    (void)state;
    sim_skip_if_seed_fixed();
    int before = misuse_count();
    for (uint64_t seed = 1; seed <= 50; seed++) {
        weft_rt *rt = chaos_sim(seed);
        race_round(rt);
        weft_rt_shutdown(rt);
    }
    assert_no_misuse_since(before);
}

/* ---- cancel sweep ----------------------------------------------------------------------- */

/* The future under test waits on a grandchild; a canceller task cancels
 * the root after a few yields. Dropped at any point: no waker is left, no
 * token has a waiter queued, and all three tokens end cancelled. */
typedef struct sweep_case {
    weft_cancel_token root, child, grandchild;
    weft_cancel_token_cancelled c;
} sweep_case;

static int cancelled_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    sweep_case *sc = ctx;
    (void)out;
    int rc = weft_cancel_token_init(&sc->root);
    if (rc == 0)
        rc = weft_cancel_token_init_child(&sc->child, &sc->root);
    if (rc == 0)
        rc = weft_cancel_token_init_child(&sc->grandchild, &sc->child);
    canceller c = { WEFT_FN_INIT(canceller, WEFT_F_SEND), .t = &sc->root, .yields = 3 };
    if (rc == 0)
        rc = weft_spawn(rt, &c.base, sizeof c, NULL);
    weft_cancel_token_cancelled_init(&sc->c, &sc->grandchild);
    *fut = &sc->c.base;
    return rc;
}

static const char *cancelled_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    sweep_case *sc = ctx;
    if (run->wakers_after_drop || run->wakes_after_drop)
        return sweep_say("k=%u: %u waker(s) held, %u wake(s) after the drop", run->k,
                         run->wakers_after_drop, run->wakes_after_drop);
    weft_cancel_token *tok[3] = { &sc->root, &sc->child, &sc->grandchild };
    for (int i = 0; i < 3; i++) {
        if (!weft__waitq_empty(&tok[i]->q_))
            return sweep_say("k=%u: token %d has a waiter queued", run->k, i);
        if (!weft_cancel_token_is_cancelled(tok[i]))
            return sweep_say("k=%u: token %d not cancelled", run->k, i);
    }
    return sweep_leftovers(rt);
}

static void cancelled_teardown(void *ctx)
{
    sweep_case *sc = ctx;
    weft_cancel_token_fini(&sc->grandchild);
    weft_cancel_token_fini(&sc->child);
    weft_cancel_token_fini(&sc->root);
}

static void test_cancel_sweep_cancel_token_cancelled(void **state)
{
    (void)state;
    static sweep_case sc;
    weft_sweep_case c = { cancelled_build, cancelled_check, cancelled_teardown, &sc };
    assert_true(sweep_both(&c) >= 2);
}

int main(void)
{
#define BY_HAND(fn) cmocka_unit_test_setup_teardown(fn, misuse_capture_setup, misuse_capture_teardown)
#define ON_RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define ON_SIM(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        BY_HAND(test_cancel_wakes_waiters_and_sets_the_flag),
        BY_HAND(test_cancelling_a_parent_cancels_every_descendant_once),
        BY_HAND(test_cancelling_a_child_leaves_its_parent_and_siblings),
        BY_HAND(test_a_child_of_a_cancelled_parent_is_born_cancelled),
        BY_HAND(test_finalised_children_are_unlinked),
        BY_HAND(test_misuse_is_einval_or_reported),
        ON_RT(test_tasks_waiting_on_a_tree_are_all_released),
        ON_SIM(test_sim_chaos_tasks_waiting_on_a_tree_are_all_released),
        ON_RT(test_child_fini_races_parent_cancel_from_foreign_threads),
        ON_SIM(test_sim_child_fini_races_parent_cancel_from_foreign_threads),
        ON_SIM(test_cancel_sweep_cancel_token_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
