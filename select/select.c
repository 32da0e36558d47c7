/* weft_select and weft_select_next: the first of several futures, or the
 * next item of several streams (weft/select.h).
 *
 * Why a select commits exactly once
 * ---------------------------------
 * The danger in a select is a result produced for it, then thrown away:
 * two branches become ready together, one wins, and what the other had
 * already taken (a channel item, a lock) is dropped with it. Here that
 * cannot happen, for three reasons that hold for every branch type:
 *
 *  1. A branch takes its result only inside its own poll. weft futures
 *     and streams do no work in their wakers: a wake only makes the task
 *     runnable, so "becoming ready" changes nothing in the branch. Only
 *     the poll that returns READY (or ITEM/DONE) consumes, and it
 *     consumes exactly what it returns (an item leaves a channel in the
 *     poll that returns it).
 *  2. The select polls its branches one at a time, on its owner's thread,
 *     and returns at the first branch that finishes; it polls no branch
 *     after that. So one poll of the select finishes at most one branch:
 *     the winner. Every other branch it polled answered PENDING, having
 *     taken nothing; those it did not reach were not polled at all.
 *  3. What a primitive hands to a waiting branch before that branch is
 *     polled (a mutex or semaphore permits passed to a queued waiter, a
 *     notification) is given back by the branch's drop, which passes it to
 *     the next waiter or back to the primitive. That is the drop contract
 *     of every weft future (docs/cancel-safety.md names each one's sweep
 *     test), so dropping the losers loses nothing they did not own.
 *
 * Go needs a CAS on a select-done word (its channels copy a value straight
 * into a parked select's case, on the sender's thread); crossbeam the same
 * (try_select). With results taken only by the select's own poll, the
 * claim is the poll's return, and needs no atomic at all.
 *
 * Branch wakers: every branch registers the task's waker from the select's
 * cx, so any branch's wake re-polls the whole select, which polls every
 * enabled branch again (from a fresh random start). Selects have a few
 * branches; a stream over many is weft_merge's job, and over many futures
 * the future set's. */
#include <limits.h>

#include "weft/select.h"
#include "core/errors.h"
#include "core/future.h"
#include "core/rand.h"

/* Where a poll starts: a random branch when fair (the runtime's seeded
 * stream on the deterministic runtime), 0 when biased. */
static size_t first_branch(unsigned mode, size_t n)
{
    if (mode == WEFT_SELECT_BIASED || n < 2)
        return 0;
    return weft__rand_below((uint32_t)n);
}

/* ---- select over futures ------------------------------------------------------------- */

/* Drop every future the select owns (all but KEEP ones), once. */
static void drop_branches(weft_select *s)
{
    if (s->done_)
        return;
    s->done_ = true;
    for (size_t i = 0; i < s->n_; i++) {
        weft_select_branch *b = &s->br_[i];
        if (b->fut && !(b->flags & WEFT_SELECT_KEEP))
            weft_future_drop(b->fut);
    }
}

static weft_poll select_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_select *s = (weft_select *)f;
    if (s->err_) {
        *(int *)out = s->err_; /* init_inline refused the branches */
        return WEFT_READY;
    }
    size_t n = s->n_, i = first_branch(s->mode_, n);
    int winner = WEFT_SELECT_ELSE;
    bool enabled = false;
    for (size_t k = 0; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
        weft_select_branch *b = &s->br_[i];
        if (b->flags & WEFT_SELECT_OFF)
            continue;
        enabled = true;
        if (weft_future_poll(b->fut, cx, b->out) == WEFT_READY) {
            winner = (int)i;
            break; /* commit: no other branch is polled (see the top) */
        }
    }
    if (enabled && winner == WEFT_SELECT_ELSE)
        return WEFT_PENDING;
    drop_branches(s);
    *(int *)out = winner;
    return WEFT_READY;
}

static void select_drop(weft_future *f)
{
    drop_branches((weft_select *)f);
}

static const weft_future_ops select_ops = {
    .name = "weft_select", .out_size = sizeof(int), .poll = select_poll, .drop = select_drop,
};

static int check_mode(unsigned mode, size_t n, const char *fn)
{
    (void)fn; /* named only in debug-build reports */
    if (mode != WEFT_SELECT_FAIR && mode != WEFT_SELECT_BIASED) {
        WEFT_MISUSE("%s: unknown mode %u", fn, mode);
        return -EINVAL;
    }
    if (n > INT_MAX) {
        WEFT_MISUSE("%s: %zu branches (at most INT_MAX)", fn, n);
        return -EINVAL;
    }
    return 0;
}

/* Check the branches; on success store the AND of their Send flags. */
static int check_branches(const weft_select_branch *br, size_t n, unsigned mode,
                          const char *fn, uint32_t *send)
{
    int rc = check_mode(mode, n, fn);
    if (rc != 0)
        return rc;
    uint32_t flags = WEFT_F_SEND;
    for (size_t i = 0; i < n; i++) {
        const weft_select_branch *b = &br[i];
        if (b->flags & ~(unsigned)(WEFT_SELECT_OFF | WEFT_SELECT_KEEP)) {
            WEFT_MISUSE("%s: branch %zu: unknown flags %#x", fn, i, b->flags);
            return -EINVAL;
        }
        if (!b->fut) {
            if (b->flags & WEFT_SELECT_OFF)
                continue;
            WEFT_MISUSE("%s: branch %zu is enabled but has no future", fn, i);
            return -EINVAL;
        }
        if (weft__future_check_in_place(b->fut, fn) != 0)
            return -EINVAL;
        if (!b->out && weft_future_out_size(b->fut) != 0) {
            WEFT_MISUSE("%s: branch %zu ('%s') has an output but no out", fn, i,
                        weft__future_name(b->fut));
            return -EINVAL;
        }
        flags &= b->fut->flags;
    }
    *send = flags & WEFT_F_SEND;
    return 0;
}

static void select_set(weft_select *s, weft_select_branch *br, size_t n, unsigned mode,
                       uint32_t send, int err)
{
    weft_future_init(&s->base, &select_ops, send);
    s->br_ = br;
    s->n_ = n;
    s->mode_ = mode;
    s->done_ = err != 0;
    s->err_ = err;
}

int weft_select_init(weft_select *s, weft_select_branch *branches, size_t n, unsigned mode)
{
    if (!s || (!branches && n > 0)) {
        WEFT_MISUSE("weft_select_init: NULL %s", s ? "branches" : "select");
        return -EINVAL;
    }
    uint32_t send;
    int rc = check_branches(branches, n, mode, "weft_select_init", &send);
    if (rc == 0)
        select_set(s, branches, n, mode, send, 0);
    return rc;
}

void weft_select_init_inline(weft_select *s, const weft_select_branch *branches, size_t n,
                             unsigned mode)
{
    if (!s) {
        WEFT_MISUSE("weft_select_init_inline: NULL select");
        return;
    }
    uint32_t send = 0;
    int rc;
    if (n > WEFT_SELECT_INLINE || (!branches && n > 0)) {
        WEFT_MISUSE("weft_select_init_inline: %zu branches (at most %d)", n,
                    WEFT_SELECT_INLINE);
        rc = -EINVAL;
    } else {
        rc = check_branches(branches, n, mode, "weft_select_init_inline", &send);
    }
    if (rc != 0) {
        /* Still a future: it owns what it was given, so drop that now
         * (each valid future once), and answer the error when polled. */
        for (size_t i = 0; branches && i < n; i++) {
            const weft_select_branch *b = &branches[i];
            if (b->fut && !(b->flags & WEFT_SELECT_KEEP) && weft__future_well_formed(b->fut))
                weft_future_drop(b->fut);
        }
        select_set(s, s->inline_, 0, WEFT_SELECT_FAIR, WEFT_F_SEND, rc);
        return;
    }
    for (size_t i = 0; i < n; i++)
        s->inline_[i] = branches[i];
    select_set(s, s->inline_, n, mode, send, 0);
}

/* ---- select over stream nexts ---------------------------------------------------------- */

static weft_poll select_next_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_select_next *s = (weft_select_next *)f;
    size_t n = s->n_, i = first_branch(s->mode_, n);
    weft_select_event ev = { WEFT_SELECT_ELSE, false };
    bool live = false;
    for (size_t k = 0; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
        weft_select_stream *b = &s->br_[i];
        if (b->flags & (WEFT_SELECT_OFF | WEFT_SELECT_ENDED))
            continue;
        live = true;
        weft_next r = weft_stream_poll_next(b->stream, cx, b->item);
        if (r == WEFT_NEXT_PENDING)
            continue;
        /* Commit to branch i: it returned its item (or its end) in this
         * poll and no other branch is polled after it. */
        ev.index = (int)i;
        if (r == WEFT_NEXT_DONE) {
            ev.ended = true;
            b->flags |= WEFT_SELECT_ENDED; /* reported once, skipped after */
        }
        break;
    }
    if (live && ev.index == WEFT_SELECT_ELSE)
        return WEFT_PENDING;
    *(weft_select_event *)out = ev;
    return WEFT_READY;
}

static const weft_future_ops select_next_ops = {
    .name = "weft_select_next", .out_size = sizeof(weft_select_event),
    .poll = select_next_poll, /* borrows everything: nothing to drop */
};

int weft_select_next_init(weft_select_next *s, weft_select_stream *branches, size_t n,
                          unsigned mode)
{
    if (!s || (!branches && n > 0)) {
        WEFT_MISUSE("weft_select_next_init: NULL %s", s ? "branches" : "select");
        return -EINVAL;
    }
    int rc = check_mode(mode, n, "weft_select_next_init");
    if (rc != 0)
        return rc;
    uint32_t flags = WEFT_F_SEND;
    for (size_t i = 0; i < n; i++) {
        const weft_select_stream *b = &branches[i];
        if (b->flags & ~(unsigned)(WEFT_SELECT_OFF | WEFT_SELECT_ENDED)) {
            WEFT_MISUSE("weft_select_next_init: branch %zu: unknown flags %#x", i, b->flags);
            return -EINVAL;
        }
        if (b->flags & (WEFT_SELECT_OFF | WEFT_SELECT_ENDED))
            continue;
        if (!b->stream || !b->stream->ops || !b->stream->ops->poll_next || !b->item) {
            WEFT_MISUSE("weft_select_next_init: branch %zu is enabled but has no %s", i,
                        b->stream && b->stream->ops && b->stream->ops->poll_next
                            ? "item buffer" : "stream");
            return -EINVAL;
        }
        flags &= b->stream->flags;
    }
    weft_future_init(&s->base, &select_next_ops, flags & WEFT_F_SEND);
    s->br_ = branches;
    s->n_ = n;
    s->mode_ = mode;
    return 0;
}
