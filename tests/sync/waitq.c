/* Unit tests for sync/waitq.c: the intrusive FIFO waiter queue that every
 * sync primitive is built on. Single-threaded: the queue's lock is the
 * primitives' to take; what is checked here is the list, the waiter
 * states and where each waker reference goes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sync/waitq.h"
#include "support/counting_waker.h"

/* The queue's waiters, oldest first, into `out`; returns the count and
 * checks the back links on the way. */
static unsigned walk(weft__waitq *q, weft__waiter **out, unsigned max)
{
    unsigned n = 0;
    weft__waiter *prev = NULL;
    for (weft__waiter *w = q->head_; w; w = w->next_) {
        assert_ptr_equal(w->prev_, prev);
        assert_int_equal(weft__waiter_state(w), WEFT__WAITER_QUEUED);
        assert_true(n < max);
        out[n++] = w;
        prev = w;
    }
    assert_ptr_equal(q->tail_, prev);
    return n;
}

static void test_waiters_leave_in_the_order_they_came(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_waker wk = cw_waker(&c);
    weft__waitq q;
    weft__waitq_init(&q);
    weft__waiter w[4], *seen[4];
    weft__waitq_lock(&q);
    for (int i = 0; i < 4; i++) {
        weft__waiter_init(&w[i]);
        weft__waitq_push_back(&q, &w[i], &wk);
    }
    assert_int_equal(walk(&q, seen, 4), 4);
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(seen[i], &w[i]);

    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_serve(&q, weft__waitq_front(&q), &s);
    weft__waitq_serve(&q, weft__waitq_front(&q), &s);
    assert_int_equal(walk(&q, seen, 4), 2);
    assert_ptr_equal(seen[0], &w[2]);
    weft__waitq_unlock(&q);

    assert_int_equal(weft__waiter_state(&w[0]), WEFT__WAITER_SERVED);
    assert_int_equal(weft__waiter_state(&w[1]), WEFT__WAITER_SERVED);
    assert_int_equal(cw_woken(&c), 0); /* not before the set is woken */
    weft__wakeset_wake(&s);
    assert_int_equal(weft_atomic_load_relaxed(&c.wakes), 2);
    assert_int_equal(s.n, 0);

    weft__waitq_lock(&q);
    weft__waitq_remove(&q, &w[3]);
    weft__waitq_remove(&q, &w[2]);
    assert_true(weft__waitq_empty(&q));
    assert_null(q.tail_);
    weft__waitq_unlock(&q);
    assert_int_equal(weft__waiter_state(&w[3]), WEFT__WAITER_IDLE);
    /* Four clones: two came back woken, two dropped by remove. */
    assert_int_equal(weft_atomic_load_relaxed(&c.clones), 4);
    assert_int_equal(weft_atomic_load_relaxed(&c.drops), 2);
}

static void test_removing_from_the_middle_keeps_both_links(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_waker wk = cw_waker(&c);
    weft__waitq q;
    weft__waitq_init(&q);
    weft__waiter w[3], *seen[3];
    weft__waitq_lock(&q);
    for (int i = 0; i < 3; i++) {
        weft__waiter_init(&w[i]);
        weft__waitq_push_back(&q, &w[i], &wk);
    }
    weft__waitq_remove(&q, &w[1]);
    assert_int_equal(walk(&q, seen, 3), 2);
    assert_ptr_equal(seen[0], &w[0]);
    assert_ptr_equal(seen[1], &w[2]);
    /* A removed waiter can wait again: it goes to the back. */
    weft__waitq_push_back(&q, &w[1], &wk);
    assert_int_equal(walk(&q, seen, 3), 3);
    assert_ptr_equal(seen[2], &w[1]);
    for (int i = 0; i < 3; i++)
        weft__waitq_remove(&q, &w[i]);
    weft__waitq_unlock(&q);
    assert_int_equal(weft_atomic_load_relaxed(&c.clones), 4);
    assert_int_equal(weft_atomic_load_relaxed(&c.drops), 4);
}

static void test_a_waker_for_the_same_task_is_kept_another_replaces_it(void **state)
{
    (void)state;
    counting_waker a, b;
    cw_init(&a);
    cw_init(&b);
    weft_waker wa = cw_waker(&a), wb = cw_waker(&b);
    weft__waitq q;
    weft__waitq_init(&q);
    weft__waiter w;
    weft__waiter_init(&w);
    weft__waitq_lock(&q);
    weft__waitq_push_back(&q, &w, &wa);
    weft__waiter_set_waker(&w, &wa);
    assert_int_equal(weft_atomic_load_relaxed(&a.clones), 1); /* kept */
    weft__waiter_set_waker(&w, &wb);
    assert_int_equal(weft_atomic_load_relaxed(&a.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&b.clones), 1);
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_serve(&q, &w, &s);
    weft__waitq_unlock(&q);
    weft__wakeset_wake(&s);
    assert_int_equal(weft_atomic_load_relaxed(&b.wakes), 1);
    assert_int_equal(weft_atomic_load_relaxed(&a.wakes), 0);
    weft__waiter_reset(&w);
    assert_int_equal(weft__waiter_state(&w), WEFT__WAITER_IDLE);
}

/* The owner's poll: IDLE before it queued, QUEUED (with the poll's waker
 * stored in place of the old one) while it waits, SERVED after. */
static void test_the_owners_poll_tells_the_state_and_keeps_the_waker_current(void **state)
{
    (void)state;
    counting_waker a, b;
    cw_init(&a);
    cw_init(&b);
    weft_waker wa = cw_waker(&a), wb = cw_waker(&b);
    weft__waitq q;
    weft__waitq_init(&q);
    weft__waiter w;
    weft__waiter_init(&w);
    assert_int_equal(weft__waiter_poll(&q, &w, &wa), WEFT__WAITER_IDLE);
    assert_int_equal(weft_atomic_load_relaxed(&a.clones), 0);
    weft__waitq_lock(&q);
    weft__waitq_push_back(&q, &w, &wa);
    weft__waitq_unlock(&q);
    assert_int_equal(weft__waiter_poll(&q, &w, &wa), WEFT__WAITER_QUEUED);
    assert_int_equal(weft_atomic_load_relaxed(&a.clones), 1); /* kept */
    assert_int_equal(weft__waiter_poll(&q, &w, &wb), WEFT__WAITER_QUEUED);
    assert_int_equal(weft_atomic_load_relaxed(&a.drops), 1);
    assert_int_equal(weft_atomic_load_relaxed(&b.clones), 1);
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&q);
    weft__waitq_serve(&q, &w, &s);
    weft__waitq_unlock(&q);
    weft__wakeset_wake(&s);
    assert_int_equal(weft_atomic_load_relaxed(&b.wakes), 1); /* the latest waker */
    assert_int_equal(weft__waiter_poll(&q, &w, &wa), WEFT__WAITER_SERVED);
    assert_int_equal(weft_atomic_load_relaxed(&a.clones), 1); /* served: nothing stored */
}

static void test_a_full_wakeset_is_reported_so_the_caller_flushes(void **state)
{
    (void)state;
    counting_waker c;
    cw_init(&c);
    weft_waker wk = cw_waker(&c);
    enum { N = WEFT__WAKESET_CAP + 5 };
    static weft__waiter w[N];
    weft__waitq q;
    weft__waitq_init(&q);
    weft__waitq_lock(&q);
    for (int i = 0; i < N; i++) {
        weft__waiter_init(&w[i]);
        weft__waitq_push_back(&q, &w[i], &wk);
    }
    weft__wakeset s;
    weft__wakeset_init(&s);
    unsigned flushes = 0;
    while (!weft__waitq_empty(&q)) {
        if (weft__wakeset_full(&s)) {
            weft__waitq_unlock(&q);
            weft__wakeset_wake(&s);
            flushes++;
            weft__waitq_lock(&q);
        }
        weft__waitq_serve(&q, weft__waitq_front(&q), &s);
    }
    weft__waitq_unlock(&q);
    weft__wakeset_wake(&s);
    assert_int_equal(flushes, 1);
    assert_int_equal(weft_atomic_load_relaxed(&c.wakes), N);
    assert_int_equal(weft_atomic_load_relaxed(&c.clones), N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waiters_leave_in_the_order_they_came),
        cmocka_unit_test(test_removing_from_the_middle_keeps_both_links),
        cmocka_unit_test(test_a_waker_for_the_same_task_is_kept_another_replaces_it),
        cmocka_unit_test(test_the_owners_poll_tells_the_state_and_keeps_the_waker_current),
        cmocka_unit_test(test_a_full_wakeset_is_reported_so_the_caller_flushes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
