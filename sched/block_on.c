/* weft_block_on: run a future to completion on the calling (non-worker)
 * thread. The future is polled in place (it may have been polled before,
 * there); between polls the thread parks on a futex. The waker is a small
 * heap object with a reference count, because a clone of it may outlive
 * this call (a channel may keep it). */
#include "sched/block_on.h"
#include "sched/runtime.h"
#include "core/alloc.h"
#include "core/future.h"
#include "core/park.h"

typedef struct block_waker {
    weft__parker parker;
    _Atomic uint32_t refs;
} block_waker;

static weft_waker bw_clone(const void *data);
static void bw_wake(void *data);
static void bw_wake_by_ref(const void *data);
static void bw_drop(void *data);

static const weft_waker_ops bw_ops = { bw_clone, bw_wake, bw_wake_by_ref, bw_drop };

static weft_waker bw_clone(const void *data)
{
    block_waker *b = (block_waker *)data;
    /* Relaxed: taken from an existing reference (see task ref_inc). */
    weft_atomic_fetch_add_relaxed(&b->refs, 1);
    weft_waker w = { &bw_ops, b };
    return w;
}

static void bw_drop(void *data)
{
    block_waker *b = data;
    /* AcqRel: the last holder sees all others' accesses before freeing. */
    if (weft_atomic_fetch_sub_acq_rel(&b->refs, 1) == 1)
        weft__free(b);
}

static void bw_wake_by_ref(const void *data)
{
    weft__unpark(&((block_waker *)data)->parker);
}

static void bw_wake(void *data)
{
    bw_wake_by_ref(data);
    bw_drop(data);
}

/* True (and a misuse report naming `what`) on a thread that runs tasks:
 * blocking it would block them. */
static bool on_task_thread(const char *what, const weft_future *fut)
{
    weft_rt *cur = weft_rt_current();
    if (!weft__worker_current() && !(cur && cur->flavour))
        return false;
    (void)what; /* release builds report nothing */
    (void)fut;
    WEFT_MISUSE("%s of '%s' on a thread that runs tasks (a worker, or a sim runtime's) "
                "would block them", what, weft__future_name(fut));
    return true;
}

static block_waker *block_waker_new(void)
{
    block_waker *b = weft__alloc(sizeof *b);
    if (b) {
        weft__parker_init(&b->parker);
        weft_atomic_init(&b->refs, 1);
    }
    return b;
}

int weft__block_poll(weft_future *fut, void *out, const char *what)
{
    if (on_task_thread(what, fut))
        return -EDEADLK;
    block_waker *b = block_waker_new();
    if (!b)
        return -ENOMEM;
    weft_waker w = { &bw_ops, b };
    for (;;) {
        weft_cx cx;
        weft_cx_init(&cx, &w);
        if (weft_future_poll(fut, &cx, out) == WEFT_READY)
            break;
        weft__park(&b->parker);
    }
    bw_drop(b);
    return 0;
}

int weft_block_on(weft_rt *rt, weft_future *fut, void *out, size_t out_size)
{
    /* Polled in place, so a future polled before is fine as long as it is
     * still where it was first polled (and not finished). */
    int rc = weft__future_check_in_place(fut, "weft_block_on");
    if (rc || !rt)
        return rc ? rc : -EINVAL;
    if (on_task_thread("weft_block_on", fut))
        return -EDEADLK;
    if (weft_future_out_size(fut) != out_size || (out_size > 0 && !out))
        return -EINVAL;
    if (rt->flavour)
        return rt->flavour->block_on(rt, fut, out, out_size);
    block_waker *b = block_waker_new();
    if (!b)
        return -ENOMEM;
    weft_waker w = { &bw_ops, b };

    /* `rt` is the current runtime while the future runs (its timers arm
     * in rt's driver, weft_spawn(NULL, ...) spawns on rt). */
    struct weft__sched *saved_sched = weft__sched_enter(&rt->pool.sched);
    weft__timers *saved_timers = weft__timers_enter(&rt->pool.timers);
    weft__reactor *saved_reactor = weft__reactor_enter(&rt->pool.reactor);
    for (;;) {
        weft_cx cx;
        weft_cx_init(&cx, &w);
        if (weft_future_poll(fut, &cx, out) == WEFT_READY)
            break;
        /* Park until woken, or until the wheel's next deadline: when every
         * worker is stuck in a long poll nobody else fires timers, so this
         * thread fires what is due itself (possibly its own wake). */
        weft__park_timeout(&b->parker, weft__timers_timeout(&rt->pool.timers));
        weft__timers_fire_due(&rt->pool.timers);
    }
    weft__reactor_enter(saved_reactor);
    weft__timers_enter(saved_timers);
    weft__sched_enter(saved_sched);
    weft_future_drop(fut);
    bw_drop(b);
    return 0;
}
