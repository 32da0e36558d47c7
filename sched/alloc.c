/* The allocator hook, weft_strerror and misuse reporting. */
#include "weft/common.h"
#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *default_alloc(size_t size, void *ctx)
{
    (void)ctx;
    return malloc(size);
}

static void default_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

/* Set before runtimes start and read by every thread afterwards: the
 * happens-before comes from pthread_create / the caller's own ordering, as
 * documented on weft_set_allocator. */
static weft_allocator g_alloc = { default_alloc, default_free, NULL };

int weft_set_allocator(const weft_allocator *a)
{
    if (!a) {
        g_alloc.alloc = default_alloc;
        g_alloc.free = default_free;
        g_alloc.ctx = NULL;
        return 0;
    }
    if (!a->alloc || !a->free)
        return -EINVAL;
    g_alloc = *a;
    return 0;
}

void *weft__alloc(size_t size)
{
    return g_alloc.alloc(size, g_alloc.ctx);
}

void *weft__calloc(size_t size)
{
    void *p = g_alloc.alloc(size, g_alloc.ctx);
    if (p)
        memset(p, 0, size);
    return p;
}

void weft__free(void *p)
{
    if (p)
        g_alloc.free(p, g_alloc.ctx);
}

const char *weft_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case -ENOMEM: return "out of memory";
    case -EINVAL: return "invalid argument";
    case -EPERM: return "operation not permitted (future not Send, or not on a worker)";
    case -EPIPE: return "channel closed";
    case -ECANCELED: return "cancelled";
    case -ETIMEDOUT: return "timed out";
    case -EAGAIN: return "try again (resource temporarily unavailable)";
    case -EDEADLK: return "would deadlock (blocking call on a worker thread)";
    default: return err < 0 ? strerror(-err) : "not an error code";
    }
}

static void default_misuse(const char *msg, void *arg)
{
    (void)arg;
    fprintf(stderr, "weft: misuse: %s\n", msg);
}

static weft_misuse_fn *g_misuse = default_misuse;
static void *g_misuse_arg;

void weft_set_misuse_handler(weft_misuse_fn *fn, void *arg)
{
    g_misuse = fn ? fn : default_misuse;
    g_misuse_arg = fn ? arg : NULL;
}

#ifndef NDEBUG
void weft__misuse(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_misuse(buf, g_misuse_arg);
}
#endif
