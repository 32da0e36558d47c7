/* Leaf tasks from plain functions (weft_spawn_fn): one library future
 * type whose instances carry the function, its name and a copy of its
 * argument. (The consuming spawn, weft_spawn_or_drop, is inline in rt.h.) */
#include "weft/rt.h"
#include "core/alloc.h"
#include "core/errors.h"
#include "core/future.h"

#include <stdalign.h>
#include <string.h>

typedef struct fn_future {
    weft_future base;
    const char *name; /* #fn; right after the header (WEFT_F__NAMED) */
    weft_task_fn *fn;
    size_t out_size;
    alignas(16) unsigned char arg[]; /* the task's own copy */
} fn_future;

static weft_poll fn_poll(weft_future *f, weft_cx *cx, void *out)
{
    fn_future *ff = (fn_future *)f;
    (void)cx;
    ff->fn(ff->arg, ff->out_size ? out : NULL);
    return WEFT_READY;
}

static size_t fn_out_size(const weft_future *f)
{
    return ((const fn_future *)f)->out_size;
}

static const weft_future_ops fn_ops = {
    .name = "weft_spawn_fn",
    .out_size = WEFT_OUT_SIZE_VARIES,
    .poll = fn_poll,
    .out_size_of = fn_out_size,
};

_Static_assert(offsetof(fn_future, name) == sizeof(weft_future),
               "a named future's name follows its header");

int weft__spawn_fn(weft_rt *rt, weft_task_fn *fn, const char *name, const void *arg,
                   size_t arg_size, size_t out_size, weft_join *join)
{
    if (!fn || (arg_size && !arg) || arg_size > WEFT_SPAWN_FN_ARG_MAX)
        return -EINVAL;
    /* Built on the stack when small (the spawn copies it into the task). */
    alignas(16) unsigned char small[sizeof(fn_future) + 256];
    size_t size = sizeof(fn_future) + arg_size;
    fn_future *ff = size <= sizeof small ? (fn_future *)small : weft__alloc(size);
    if (!ff)
        return -ENOMEM;
    weft_future_init(&ff->base, &fn_ops, WEFT_F_SEND);
    ff->base.flags |= WEFT_F__NAMED;
    ff->fn = fn;
    ff->name = name ? name : "weft_spawn_fn";
    ff->out_size = out_size;
    if (arg_size)
        memcpy(ff->arg, arg, arg_size);
    int rc = weft_spawn(rt, &ff->base, size, join);
    if ((unsigned char *)ff != small)
        weft__free(ff);
    return rc;
}
