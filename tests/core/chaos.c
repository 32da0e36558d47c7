/* Unit tests for core/chaos.c: the hook the library's leaf futures call
 * first in their poll. With no decider installed it does nothing; with one
 * that always says yes, a leaf wakes its task and returns PENDING, and its
 * next poll goes through (never two chaos PENDINGs in a row); the decider
 * is per thread. Polled by hand with a counting waker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "weft/weft.h"
#include "core/chaos.h"
#include "core/future.h"
#include "support/counting_waker.h"
#include "support/poll.h"

static int g_asked;

static bool always(weft__chaos *c)
{
    (void)c;
    g_asked++;
    return true;
}

static weft__chaos g_always = { always };

static void test_chaos_hook_is_off_without_a_decider(void **state)
{
    (void)state;
    assert_null(weft__chaos_current);
    weft_yield y;
    weft_yield_init(&y);
    assert_int_equal(poll_noop(&y.base, NULL), WEFT_PENDING);
    assert_int_equal(poll_noop(&y.base, NULL), WEFT_READY);
}

static void test_chaos_hook_interleaves_pending(void **state)
{
    (void)state;
    counting_waker cw;
    cw_init(&cw);
    weft_waker w = cw_waker(&cw);
    g_asked = 0;
    assert_null(weft__chaos_enter(&g_always));
    weft_yield y;
    weft_yield_init(&y);
    /* chaos, the yield's own PENDING, chaos, READY: each chaos PENDING
     * woke the waker, and the decider was asked only when allowed. */
    weft_poll r[4];
    for (int i = 0; i < 4; i++)
        r[i] = poll_with(&y.base, &w, NULL);
    assert_ptr_equal(weft__chaos_enter(NULL), &g_always);
    assert_int_equal(r[0], WEFT_PENDING);
    assert_int_equal(r[1], WEFT_PENDING);
    assert_int_equal(r[2], WEFT_PENDING);
    assert_int_equal(r[3], WEFT_READY);
    assert_int_equal(g_asked, 2);
    assert_int_equal(cw_woken(&cw), 3);
    assert_int_equal(cw_outstanding(&cw), 0);
    assert_false(y.base.flags & WEFT_F__CHAOS);
}

static void *other_thread(void *arg)
{
    *(weft__chaos **)arg = weft__chaos_current;
    return NULL;
}

static void test_chaos_decider_is_per_thread(void **state)
{
    (void)state;
    weft__chaos_enter(&g_always);
    weft__chaos *seen = &g_always;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_thread, &seen), 0);
    pthread_join(th, NULL);
    weft__chaos_enter(NULL);
    assert_null(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chaos_hook_is_off_without_a_decider),
        cmocka_unit_test(test_chaos_hook_interleaves_pending),
        cmocka_unit_test(test_chaos_decider_is_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
