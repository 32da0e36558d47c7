/* join_futures: n caller futures polled in the polling task until every
 * one is READY. Each poll polls every branch not done yet with the
 * poll's own waker (a wake of any branch re-polls them all: fine for a
 * handful of branches; weft_future_set polls only the woken ones). A
 * branch is dropped as soon as it is READY, the rest by the join's drop.
 * Owner-only state; no atomics. */
#include "iter/comb.h"
#include "core/future.h"

static weft_poll join_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_join_futures *j = (weft_join_futures *)f;
    (void)out;
    if (j->left_ == 0)
        return WEFT_READY;
    if (!weft_coop_proceed(cx))
        return WEFT_PENDING; /* woken by coop_proceed */
    for (size_t i = 0; i < j->n_; i++) {
        weft_join_branch *b = &j->br_[i];
        if (b->done)
            continue;
        if (weft_future_poll(b->fut, cx, b->out) == WEFT_READY) {
            weft_future_drop(b->fut);
            b->done = true;
            j->left_--;
        }
    }
    return j->left_ == 0 ? WEFT_READY : WEFT_PENDING;
}

static void join_drop(weft_future *f)
{
    weft_join_futures *j = (weft_join_futures *)f;
    for (size_t i = 0; i < j->n_; i++)
        if (!j->br_[i].done) {
            weft_future_drop(j->br_[i].fut);
            j->br_[i].done = true; /* dropped: not to be touched again */
        }
    j->left_ = 0;
}

static const weft_future_ops join_ops = {
    .name = "weft_join_futures", .out_size = 0, .poll = join_poll, .drop = join_drop,
};

int weft_join_futures_init(weft_join_futures *j, weft_join_branch *branches, size_t n)
{
    if (!j || (!branches && n > 0)) {
        WEFT_MISUSE("weft_join_futures_init: NULL join, or NULL branches with n > 0");
        return -EINVAL;
    }
    uint32_t flags = WEFT_F_SEND;
    for (size_t i = 0; i < n; i++) {
        weft_future *f = branches[i].fut;
        if (!weft__future_well_formed(f) || (!branches[i].out && weft_future_out_size(f) != 0)) {
            WEFT_MISUSE("weft_join_futures_init: branch %zu has no (well-formed) future, or "
                        "no out for a non-empty output",
                        i);
            return -EINVAL;
        }
        flags &= f->flags;
    }
    for (size_t i = 0; i < n; i++)
        branches[i].done = false;
    weft_future_init(&j->base, &join_ops, flags & WEFT_F_SEND);
    j->br_ = branches;
    j->n_ = n;
    j->left_ = n;
    return 0;
}
