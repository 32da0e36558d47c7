/* The operating-system layer: futex waits, the clock, CPU count, thread
 * start (names, stack sizes) and the thread-start fault injection that
 * reaches weft_rt_new's unwinding path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/sys.h"
#include "support/counting_alloc.h"

static void test_clock_is_monotonic_and_matches_weft_now(void **state)
{
    (void)state;
    uint64_t a = weft__sys_now_ns();
    uint64_t b = weft_now();
    uint64_t c = weft__sys_now_ns();
    assert_true(a <= b);
    assert_true(b <= c);
}

static void test_cpu_count_is_at_least_one(void **state)
{
    (void)state;
    assert_true(weft__sys_cpu_count() >= 1);
}

static void test_futex_wait_returns_when_value_differs(void **state)
{
    (void)state;
    _Atomic uint32_t word = 1;
    /* Expected 0, actual 1: the kernel refuses to sleep (EAGAIN). Returning
     * is the behaviour under test: a wait that slept would never be woken,
     * and ctest's timeout would fail the test. */
    weft__futex_wait(&word, 0);
    weft__futex_wait_timeout(&word, 0, 60000000000u);
}

static void test_futex_wait_timeout_expires(void **state)
{
    (void)state;
    _Atomic uint32_t word = 0;
    /* Nobody wakes us: the wait must end by its 1 ms timeout; returning is
     * the behaviour under test (without the timeout it would never end). */
    weft__futex_wait_timeout(&word, 0, 1000000u);
    assert_int_equal(atomic_load(&word), 0);
}

typedef struct named {
    char name[32];
    size_t stack;
    /* The name is set by the starting thread after pthread_create: read it
     * only once weft__sys_thread_start has returned. */
    _Atomic int started;
} named;

static void *record_self(void *arg)
{
    named *n = arg;
    while (!atomic_load_explicit(&n->started, memory_order_acquire))
        sched_yield();
    pthread_getname_np(pthread_self(), n->name, sizeof n->name);
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, &n->stack);
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

static void test_thread_start_sets_name_and_stack_size(void **state)
{
    (void)state;
    named n;
    memset(&n, 0, sizeof n);
    pthread_t t;
    assert_int_equal(weft__sys_thread_start(&t, record_self, &n, 1u << 20,
                                            "a-name-longer-than-fifteen"),
                     0);
    atomic_store_explicit(&n.started, 1, memory_order_release);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* The kernel keeps 15 bytes of a thread name. */
    assert_string_equal(n.name, "a-name-longer-t");
    assert_true(n.stack >= (1u << 20));
}

static void test_injected_thread_failure_hits_the_nth_start(void **state)
{
    (void)state;
    named n;
    memset(&n, 0, sizeof n);
    atomic_store(&n.started, 1); /* these threads need not wait */
    pthread_t t;
    weft__sys_fail_thread_start_at(2);
    assert_int_equal(weft__sys_thread_start(&t, record_self, &n, 0, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(weft__sys_thread_start(&t, record_self, &n, 0, NULL), -EAGAIN);
    /* One-shot: the next start works again. */
    assert_int_equal(weft__sys_thread_start(&t, record_self, &n, 0, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* Counting allocator: weft_rt_new must free everything it allocated when a
 * worker thread fails to start, whichever one it is. */

static void test_rt_new_unwinds_when_any_worker_fails_to_start(void **state)
{
    (void)state;
    weft_allocator a = { count_alloc, count_free, NULL };
    assert_int_equal(weft_set_allocator(&a), 0);
    for (unsigned k = 1; k <= 4; k++) {
        weft_rt_options o = WEFT_RT_OPTIONS_INIT;
        o.workers = 4;
        weft_rt *rt = (weft_rt *)&o; /* must be overwritten with NULL */
        weft__sys_fail_thread_start_at(k);
        assert_int_equal(weft_rt_new(&rt, &o), -EAGAIN);
        assert_null(rt);
        assert_int_equal(atomic_load(&g_live_allocs), 0);
        assert_int_equal(atomic_load(&g_free_underflow), 0);
    }
    /* And with no failure armed, the same runtime starts and stops. */
    weft__sys_fail_thread_start_at(0);
    weft_rt *rt;
    weft_rt_options o = WEFT_RT_OPTIONS_INIT;
    o.workers = 4;
    assert_int_equal(weft_rt_new(&rt, &o), 0);
    weft_rt_shutdown(rt);
    assert_int_equal(atomic_load(&g_live_allocs), 0);
    assert_int_equal(weft_set_allocator(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_is_monotonic_and_matches_weft_now),
        cmocka_unit_test(test_cpu_count_is_at_least_one),
        cmocka_unit_test(test_futex_wait_returns_when_value_differs),
        cmocka_unit_test(test_futex_wait_timeout_expires),
        cmocka_unit_test(test_thread_start_sets_name_and_stack_size),
        cmocka_unit_test(test_injected_thread_failure_hits_the_nth_start),
        cmocka_unit_test(test_rt_new_unwinds_when_any_worker_fails_to_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
