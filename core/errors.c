/* Error strings, misuse reports and fatal errors (see errors.h). */
#include "weft/common.h"
#include "core/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    case -EDEADLK: return "would deadlock (a blocking call on a worker, or a stalled sim)";
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

#if WEFT_DEBUG_LEVEL >= 1
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

_Noreturn void weft__die(const char *file, int line, const char *msg, int err)
{
    if (err)
        fprintf(stderr, "weft: fatal: %s: %s (errno %d) at %s:%d\n", msg, strerror(err),
                err, file, line);
    else
        fprintf(stderr, "weft: fatal: %s at %s:%d\n", msg, file, line);
    abort();
}
