/* The allocator hook: every allocation weft makes goes through it. */
#include "weft/common.h"
#include "core/alloc.h"

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
