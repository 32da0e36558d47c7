/* Coroutine support: the out-of-line halves of the weft/co.h macros (misuse
 * reports for a coroutine resumed where it has no await point, an async fn
 * that fell off its end, a user-written drop that forgot the awaited child)
 * and weft_poll_fn, a future made from a poll function and a context.
 *
 * Nothing here touches shared state: every function runs on the thread
 * polling or dropping the coroutine it is handed. */
#include "weft/co.h"
#include "core/errors.h"
#include "core/future.h"

/* ---- misuse in coroutines ---------------------------------------------------- */

weft_poll weft__co_resume_fault(weft_co *co, const char *name, const char *func)
{
    if (co->line == WEFT__CO_DONE) {
        /* Polled again after READY: debug builds of weft_future_poll refuse
         * that before we get here; release builds keep the old answer. */
        return WEFT_READY;
    }
    if (co->line == WEFT__CO_FAILED) {
        WEFT_MISUSE("async fn '%s' polled again after it reached WEFT_FN_END "
                    "without WEFT_FN_RETURN (poll refused)",
                    name ? name : "?");
        return WEFT_PENDING;
    }
    if (name)
        WEFT_MISUSE("coroutine '%s' resumed at line %d (in %s) which is not "
                    "an await point -- an await inside a switch of your own? "
                    "(poll refused)",
                    name, co->line, func);
    else
        WEFT_MISUSE("coroutine in %s() resumed at line %d which is not an "
                    "await point -- an await inside a switch of your own? "
                    "(poll refused)",
                    func, co->line);
    (void)name, (void)func;
    return WEFT_PENDING;
}

weft_poll weft__co_fell_off(weft_co *co, const char *name)
{
    WEFT_MISUSE("async fn '%s' reached WEFT_FN_END without WEFT_FN_RETURN: "
                "its output was never written (poll refused)",
                name);
    (void)name;
    co->line = WEFT__CO_FAILED;
    return WEFT_PENDING;
}

void weft__co_check_dropped(const weft_co *co, const char *name)
{
    if (co->awaiting)
        WEFT_MISUSE("the drop of async fn or generator '%s' returned with its "
                    "awaited child '%s' still registered: call "
                    "weft_co_drop(&self->co) in it",
                    name, weft__future_name(co->awaiting));
    (void)name;
}

/* ---- weft_poll_fn ------------------------------------------------------------ */

static weft_poll poll_fn_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_poll_fn *pf = (weft_poll_fn *)f;
    return pf->fn(pf->ctx, cx, out);
}

static size_t poll_fn_out_size(const weft_future *f)
{
    return ((const weft_poll_fn *)f)->out_size;
}

static const weft_future_ops poll_fn_ops = {
    .name = "weft_poll_fn",
    .out_size = WEFT_OUT_SIZE_VARIES,
    .poll = poll_fn_poll,
    .drop = NULL, /* owns nothing; ctx is the caller's */
    .out_size_of = poll_fn_out_size,
};

int weft_poll_fn_init(weft_poll_fn *pf, weft_poll_ctx_fn *fn, void *ctx,
                      size_t out_size, uint32_t flags)
{
    if (!pf || !fn || out_size == WEFT_OUT_SIZE_VARIES)
        return -EINVAL;
    weft_future_init(&pf->base, &poll_fn_ops, flags);
    pf->fn = fn;
    pf->ctx = ctx;
    pf->out_size = out_size;
    return 0;
}
