/* Test support for the I/O tests: counting the process's open fds (a
 * test that leaks one fails), and running a function inside a runtime
 * (binds and registrations need a current runtime). Each test program
 * includes it once. */
#ifndef WEFT_TESTS_IO_SUPPORT_H
#define WEFT_TESTS_IO_SUPPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>

#include "weft/weft.h"

/* Open fds of the process (the directory's own fd not counted). */
static inline int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* Runs fn(arg) once inside `rt` (a runtime is then current, so binds
 * register with it); returns what fn returned. */
typedef struct call_in {
    weft_future base;
    int (*fn)(void *);
    void *arg;
} call_in;

static inline weft_poll call_in_poll(weft_future *f, weft_cx *cx, void *out)
{
    (void)cx;
    call_in *c = (call_in *)f;
    *(int *)out = c->fn(c->arg);
    return WEFT_READY;
}

static const weft_future_ops call_in_ops = {
    .name = "test_call_in", .out_size = sizeof(int), .poll = call_in_poll,
};

static inline int in_rt(weft_rt *rt, int (*fn)(void *), void *arg)
{
    call_in c = { WEFT_FUTURE_INIT(&call_in_ops, WEFT_F_SEND), fn, arg };
    int rc = -7;
    assert_int_equal(weft_block_on(rt, &c.base, &rc, sizeof rc), 0);
    return rc;
}

#endif
