/* weft_cancel_token: a tree of cancellation flags (tokio-util's
 * CancellationToken).
 *
 * Each token has one lock (its waiter queue's). It guards the token's
 * waiters, its cancelled flag's 0 -> 1 transition, and its list of
 * children: `first_child_` and, in each child, the sibling links and
 * `linked_`. So a child's links are guarded by its PARENT's lock, and a
 * child's `parent_` never changes (the parent outlives its children).
 *
 * Lock order: a cancel never holds two locks at once. It cancels a token
 * under the token's lock (flag, then its waiters, in batches woken after
 * unlocking), then takes its children off the list one at a time:
 * unlink the first child under the parent's lock and mark it `busy_`;
 * unlock; cancel the child (recursively: its own lock, its own children);
 * then clear `busy_` with a release store, the cancel's last touch of
 * that child.
 *
 * The race a tree has to survive is a child finalised (and its memory
 * reused) by its owner while a parent's cancel is cancelling it, on
 * another thread. fini takes the parent's lock and unlinks the child if
 * it is still linked; if it is not, the cancel took it off and marked it
 * busy under that same lock, so fini, having taken the lock after it,
 * sees `busy_` set and spins until it is cleared — a wait bounded by the
 * cancel of that child's subtree, which never waits for anything. After
 * that nothing of the cancel refers to the child.
 *
 *   operation          | may run concurrently with
 *   cancel(t)          | cancel of t, of its ancestors (each token's flag
 *                      | goes 0 -> 1 once, under its lock: the first
 *                      | cancel does the work, the others return), of
 *                      | descendants; init_child(_, t); fini of children
 *   fini(child)        | cancel of any ancestor (waits on busy_ if that
 *                      | cancel took the child), of siblings; fini of
 *                      | siblings; init_child on the parent
 *   is_cancelled       | anything (one acquire load)
 *   cancelled (future) | anything but fini of its token
 *
 * Recursion depth is the depth of the tree below the cancelled token. */
#include "weft/sync.h"
#include "core/chaos.h"
#include "core/errors.h"
#include "core/future.h"
#include "sync/waitq.h"

static weft_poll cancelled_poll(weft_future *f, weft_cx *cx, void *out);
static void cancelled_drop(weft_future *f);

static const weft_future_ops cancelled_ops = {
    .name = "weft_cancel_token_cancelled",
    .out_size = 0,
    .poll = cancelled_poll,
    .drop = cancelled_drop,
};

static void token_start(weft_cancel_token *t)
{
    weft__waitq_init(&t->q_);
    weft_atomic_init(&t->cancelled_, 0u);
    weft_atomic_init(&t->busy_, 0u);
    t->parent_ = NULL;
    t->first_child_ = NULL;
    t->prev_sibling_ = t->next_sibling_ = NULL;
    t->linked_ = false;
}

int weft_cancel_token_init(weft_cancel_token *t)
{
    if (!t) {
        WEFT_MISUSE("weft_cancel_token_init: token NULL");
        return -EINVAL;
    }
    token_start(t);
    return 0;
}

int weft_cancel_token_init_child(weft_cancel_token *child, weft_cancel_token *parent)
{
    if (!child || !parent) {
        WEFT_MISUSE("weft_cancel_token_init_child: %s NULL", child ? "parent" : "child");
        return -EINVAL;
    }
    token_start(child);
    weft__waitq_lock(&parent->q_);
    /* Under the parent's lock, its flag does not change: a child made
     * after the parent's cancel started is born cancelled and never
     * linked (the cancel will not look for it); one made before is linked
     * and will be found. */
    if (weft_atomic_load_relaxed(&parent->cancelled_)) {
        /* Relaxed: `child` is not shared yet; whoever receives it is
         * handed it with a release of their own. */
        weft_atomic_store_relaxed(&child->cancelled_, 1u);
    } else {
        child->parent_ = parent;
        child->linked_ = true;
        child->next_sibling_ = parent->first_child_;
        if (parent->first_child_)
            parent->first_child_->prev_sibling_ = child;
        parent->first_child_ = child;
    }
    weft__waitq_unlock(&parent->q_);
    return 0;
}

/* Unlink `c` from its parent's list; the parent's lock is held. */
static void child_unlink(weft_cancel_token *p, weft_cancel_token *c)
{
    if (c->prev_sibling_)
        c->prev_sibling_->next_sibling_ = c->next_sibling_;
    else
        p->first_child_ = c->next_sibling_;
    if (c->next_sibling_)
        c->next_sibling_->prev_sibling_ = c->prev_sibling_;
    c->prev_sibling_ = c->next_sibling_ = NULL;
    c->linked_ = false;
}

void weft_cancel_token_fini(weft_cancel_token *t)
{
    if (!t)
        return;
    weft_cancel_token *p = t->parent_;
    if (p) {
        weft__waitq_lock(&p->q_);
        if (t->linked_)
            child_unlink(p, t);
        weft__waitq_unlock(&p->q_);
        /* Not linked any more: either unlinked just now, or a cancel of
         * the parent took it and set busy_ under the lock taken above, so
         * it is seen here. Acquire: pairs with the release that clears it,
         * the cancel's last touch of `t`. */
        while (weft_atomic_load_acquire(&t->busy_))
            weft__cpu_relax();
    }
    weft__waitq_lock(&t->q_);
    bool waiters = !weft__waitq_empty(&t->q_);
    bool children = t->first_child_ != NULL;
    weft__waitq_unlock(&t->q_);
    if (waiters)
        WEFT_MISUSE("weft_cancel_token_fini: a weft_cancel_token_cancelled is still pending");
    if (children)
        WEFT_MISUSE("weft_cancel_token_fini: the token still has children (finalise them first)");
}

bool weft_cancel_token_is_cancelled(const weft_cancel_token *t)
{
    /* Acquire: pairs with the release store in token_cancel; what the
     * canceller did before is visible to whoever sees the flag. */
    return t && weft_atomic_load_acquire(&t->cancelled_) != 0;
}

/* Cancel `t` and its subtree (see the design block). */
static void token_cancel(weft_cancel_token *t)
{
    weft__wakeset s;
    weft__wakeset_init(&s);
    weft__waitq_lock(&t->q_);
    if (weft_atomic_load_relaxed(&t->cancelled_)) {
        /* Relaxed: read under the lock that every write holds. */
        weft__waitq_unlock(&t->q_);
        return;
    }
    /* Release: pairs with the acquire in is_cancelled and in the
     * cancelled future's lock-free look. */
    weft_atomic_store_release(&t->cancelled_, 1u);
    for (;;) {
        /* No waiter queues any more (they see the flag under the lock),
         * and no child links itself: both lists only shrink. */
        if (!weft__waitq_empty(&t->q_)) {
            if (weft__wakeset_full(&s)) {
                weft__waitq_unlock(&t->q_);
                weft__wakeset_wake(&s);
                weft__waitq_lock(&t->q_);
                continue;
            }
            weft__waitq_serve(&t->q_, weft__waitq_front(&t->q_), &s);
            continue;
        }
        weft_cancel_token *c = t->first_child_;
        if (!c)
            break;
        child_unlink(t, c);
        /* Relaxed: the child's fini reads it after taking this lock,
         * which orders it. */
        weft_atomic_store_relaxed(&c->busy_, 1u);
        weft__waitq_unlock(&t->q_);
        weft__wakeset_wake(&s);
        token_cancel(c);
        /* Release, the last touch of `c`: its fini may return (and its
         * memory be reused) as soon as it sees 0; pairs with the acquire
         * there. */
        weft_atomic_store_release(&c->busy_, 0u);
        weft__waitq_lock(&t->q_);
    }
    weft__waitq_unlock(&t->q_);
    weft__wakeset_wake(&s);
}

int weft_cancel_token_cancel(weft_cancel_token *t)
{
    if (!t) {
        WEFT_MISUSE("weft_cancel_token_cancel: token NULL");
        return -EINVAL;
    }
    token_cancel(t);
    return 0;
}

void weft_cancel_token_cancelled_init(weft_cancel_token_cancelled *f, weft_cancel_token *t)
{
    weft_future_init(&f->base, &cancelled_ops, WEFT_F_SEND);
    f->token_ = t;
    weft__waiter_init(&f->w_);
    f->queued_ = false;
}

static weft_poll cancelled_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_cancel_token_cancelled *w = (weft_cancel_token_cancelled *)f;
    (void)out;
    if (weft__chaos_pending(f, cx))
        return WEFT_PENDING;
    weft_cancel_token *t = w->token_;
    if (!t) {
        WEFT_MISUSE("'%s' polled without a token", weft__future_name(f));
        return WEFT_PENDING;
    }
    if (w->queued_) {
        /* Served after the flag was set (weft__waiter_poll's acquire). */
        if (weft__waiter_poll(&t->q_, &w->w_, cx->waker) != WEFT__WAITER_SERVED)
            return WEFT_PENDING;
        weft__waiter_reset(&w->w_);
        w->queued_ = false;
        return WEFT_READY;
    }
    if (weft_cancel_token_is_cancelled(t))
        return weft_coop_proceed(cx) ? WEFT_READY : WEFT_PENDING;
    weft__waitq_lock(&t->q_);
    /* Relaxed: under the lock the flag's writer holds; the lock orders the
     * canceller's earlier writes before us. */
    if (weft_atomic_load_relaxed(&t->cancelled_)) {
        weft__waitq_unlock(&t->q_);
        return WEFT_READY;
    }
    weft__waitq_push_back(&t->q_, &w->w_, cx->waker);
    weft__waitq_unlock(&t->q_);
    w->queued_ = true;
    return WEFT_PENDING;
}

static void cancelled_drop(weft_future *f)
{
    weft_cancel_token_cancelled *w = (weft_cancel_token_cancelled *)f;
    if (!w->queued_)
        return;
    weft_cancel_token *t = w->token_;
    weft__waitq_lock(&t->q_);
    /* Under the lock: a cancel may have served it meanwhile (nothing to
     * hand on: every waiter is woken). */
    if (weft__waiter_state(&w->w_) == WEFT__WAITER_QUEUED)
        weft__waitq_remove(&t->q_, &w->w_);
    weft__waitq_unlock(&t->q_);
    weft__waiter_reset(&w->w_);
    w->queued_ = false;
}
