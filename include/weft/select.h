/* weft — select: wait for the first of several futures, or the next item
 * of several streams.
 *
 * Three forms (select/):
 *  - weft_select: N futures in the caller's pinned struct; completes with
 *    the index of the first to finish, whose output went to that branch's
 *    `out`; the others are dropped then. Like tokio's select!.
 *  - weft_select_next: N streams; completes with the index of the first
 *    to yield and the item (or that it ended). Borrows the streams and
 *    takes nothing from the ones that did not win, so dropping it, or
 *    looping over it, loses nothing: the select over channel receivers
 *    that cannot lose an item.
 *  - weft_merge: the stream form of select_next, yielding (index, item)
 *    until every branch has ended; branches come and go between polls
 *    (tokio-stream's StreamMap).
 *
 * Commit once. A select takes a result from exactly one branch per
 * completion, whatever its branches' wakers do: results are taken only by
 * the select's poll, one branch at a time, and the poll returns at the
 * first branch that answers READY (or ITEM/DONE) without polling another.
 * A branch that a waker made ready, but that lost, was not polled after
 * that wake, so it took nothing (a channel item stays in its channel) or,
 * when it was handed something while it waited (a mutex, semaphore
 * permits, a notification), its drop hands that on, as every weft future's
 * drop does (docs/cancel-safety.md). select/select.c states the argument
 * in full.
 *
 * Fairness: WEFT_SELECT_FAIR (the default, 0) starts each poll at a random
 * branch — drawn from the runtime's seeded stream on the deterministic
 * runtime, so a seed replays the choices — and goes round from there;
 * WEFT_SELECT_BIASED polls in array order (put the shutdown branch first).
 *
 * Who may call: the owner of the select, one thread at a time, like any
 * future or stream. */
#ifndef WEFT_SELECT_H
#define WEFT_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weft/common.h"
#include "weft/future.h"
#include "weft/iter.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Modes. */
#define WEFT_SELECT_FAIR 0u
#define WEFT_SELECT_BIASED 1u

/* Branch flags (weft_select_branch.flags, weft_select_stream.flags). */
/* Disabled: never polled (tokio's `, if cond` when cond is false). */
#define WEFT_SELECT_OFF 0x1u
/* weft_select only: the branch's future is the caller's, kept across
 * selects (a deadline for a whole loop); the select polls it but never
 * drops it. */
#define WEFT_SELECT_KEEP 0x2u
/* weft_select_next only, set by the select: the stream said DONE, which
 * was reported once; the branch is skipped from then on. Clear it only
 * with a new stream in the branch. */
#define WEFT_SELECT_ENDED 0x4u

/* Output of a select whose every branch is disabled (or, for select_next,
 * disabled or ended): tokio's `else`. It completes on its first poll. */
#define WEFT_SELECT_ELSE (-1)

/* ---- select over futures ---------------------------------------------------------- */

typedef struct weft_select_branch {
    weft_future *fut; /* may be NULL when the branch is OFF */
    void *out;        /* the future's output goes here if it wins (may be
                         NULL when its output size is 0) */
    unsigned flags;   /* WEFT_SELECT_OFF, WEFT_SELECT_KEEP */
} weft_select_branch;

/* A future whose output (int) is the index of the branch that finished
 * first, or WEFT_SELECT_ELSE when every branch is OFF. From init it owns
 * every branch's future but the KEEP ones, disabled ones included: it
 * drops them all when it completes (the winner after its READY) or when
 * it is dropped. A KEEP branch that won is READY: do not poll it again.
 * The branch array is borrowed and must stay put until the select is
 * dropped. Flags: Send when every branch's future is.
 * Cancel safety: dropping a pending select drops its branches, so it
 * loses what they lose when dropped (docs/cancel-safety.md, row by row);
 * a select of cancel-safe branches is cancel-safe, and a branch that did
 * not win loses only what its own drop loses. */
/* Branches weft_select_init_inline (and so WEFT_SELECT) keeps inside
 * the select. */
#define WEFT_SELECT_INLINE 8

typedef struct weft_select {
    weft_future base;
    weft_select_branch *br_;
    size_t n_;
    unsigned mode_;
    bool done_; /* completed: the branches were dropped */
    int err_;   /* init_inline refused its branches: the output */
    weft_select_branch inline_[WEFT_SELECT_INLINE];
} weft_select;

/* 0, or -EINVAL (NULL select or branches with n > 0, n over INT_MAX, an
 * unknown mode or flag, an enabled branch with no future, a future
 * already finished, an output size above 0 with `out` NULL); reported in
 * debug builds. On -EINVAL the select owns nothing: the caller drops the
 * futures. */
WEFT_API WEFT_NODISCARD int weft_select_init(weft_select *s, weft_select_branch *branches,
                                             size_t n, unsigned mode);

/* The same with the branches copied into the select (at most
 * WEFT_SELECT_INLINE), so they need no storage of the caller's: the form
 * WEFT_SELECT uses. It cannot fail to make a future: on bad input
 * (reported as weft_select_init would) it drops the futures the select
 * would have owned, and the select completes with -EINVAL at its first
 * poll. */
WEFT_API void weft_select_init_inline(weft_select *s, const weft_select_branch *branches,
                                      size_t n, unsigned mode);

/* Branches, for WEFT_SELECT or an array: `fut` points to a future struct
 * whose first member is `base`; `out` receives its output if it wins. */
#define WEFT_BRANCH(fut, out) ((weft_select_branch){ &(fut)->base, (out), 0u })
/* Enabled only when `cond` holds (tokio's `, if cond`); the future is
 * owned, and dropped, either way. */
#define WEFT_BRANCH_IF(cond, fut, out)                                        \
    ((weft_select_branch){ &(fut)->base, (out), (cond) ? 0u : WEFT_SELECT_OFF })
/* A future of the caller's kept across selects (WEFT_SELECT_KEEP). */
#define WEFT_BRANCH_KEEP(fut, out) ((weft_select_branch){ &(fut)->base, (out), WEFT_SELECT_KEEP })

/* Inside a WEFT_ASYNC_FN body: await the first of the branches, fair,
 * with the select at `sel` (a weft_select in the async fn's struct) and
 * its output (the winner's index, WEFT_SELECT_ELSE, or -EINVAL) in the
 * int at `index`:
 *
 *   for (;;) {
 *       weft_stream_next_init(&self->next, &self->rx.base, &self->item);
 *       weft_cancel_token_cancelled_init(&self->stop, self->token);
 *       WEFT_SELECT(&self->sel, &self->which,
 *                   WEFT_BRANCH(&self->next, &self->got),
 *                   WEFT_BRANCH_KEEP(&self->deadline, NULL),
 *                   WEFT_BRANCH(&self->stop, NULL));
 *       if (self->which != 0 || !self->got)
 *           break;            // the deadline, the token, or the channel ended
 *       ...use self->item...
 *   }
 *
 * Each pass makes fresh branch futures (the select drops them, winner
 * included); a KEEP branch lives across passes and is the caller's to
 * drop. WEFT_SELECT_BIASED_IN(sel, index, ...) polls in order. */
#define WEFT_SELECT(sel, index, ...) WEFT__SELECT(sel, index, WEFT_SELECT_FAIR, __VA_ARGS__)
#define WEFT_SELECT_BIASED_IN(sel, index, ...)                                \
    WEFT__SELECT(sel, index, WEFT_SELECT_BIASED, __VA_ARGS__)
#define WEFT__SELECT(sel, index, mode, ...)                                   \
    do {                                                                      \
        {                                                                     \
            const weft_select_branch weft_select_br_[] = { __VA_ARGS__ };     \
            weft_select_init_inline((sel), weft_select_br_,                   \
                                    sizeof weft_select_br_ / sizeof *weft_select_br_, \
                                    (mode));                                  \
        }                                                                     \
        WEFT_FN_AWAIT((sel), (index));                                        \
    } while (0)

/* ---- select over stream nexts ---------------------------------------------------------- */

typedef struct weft_select_stream {
    weft_stream *stream; /* borrowed; may be NULL when the branch is OFF */
    void *item;          /* its item goes here if it wins */
    unsigned flags;      /* WEFT_SELECT_OFF; WEFT_SELECT_ENDED (set by the select) */
} weft_select_stream;

/* What a select_next completed with (its output). */
typedef struct weft_select_event {
    int index; /* the branch, or WEFT_SELECT_ELSE */
    bool ended; /* true: that stream said DONE (no item); else its item is
                   in the branch's `item` */
} weft_select_event;

/* A future whose output is a weft_select_event: the first branch to yield
 * an item, or to end (reported once: the select then sets
 * WEFT_SELECT_ENDED on the branch and skips it in later selects over the
 * same array). WEFT_SELECT_ELSE when every branch is OFF or ended. It
 * borrows the streams and the array and owns nothing: dropping it drops
 * nothing. Flags: Send when every stream is.
 * Cancel safety: dropping a pending select_next loses nothing — an item
 * leaves a stream only in the poll that returns it, and every stream that
 * did not win was only asked and answered PENDING. */
typedef struct weft_select_next {
    weft_future base;
    weft_select_stream *br_;
    size_t n_;
    unsigned mode_;
} weft_select_next;

/* 0, or -EINVAL (as weft_select_init; an enabled branch with no stream or
 * no `item`). */
WEFT_API WEFT_NODISCARD int weft_select_next_init(weft_select_next *s,
                                                  weft_select_stream *branches, size_t n,
                                                  unsigned mode);

/* ---- merge --------------------------------------------------------------------------- */

/* A merge's item: the branch index as a uint64_t, then that branch's item
 * bytes (so `max_item_size` bytes at most). */
#define WEFT_MERGE_ITEM_SIZE(max_item_size) (sizeof(uint64_t) + (max_item_size))

static inline uint64_t weft_merge_item_index(const void *item)
{
    uint64_t i;
    memcpy(&i, item, sizeof i);
    return i;
}
static inline void *weft_merge_item_data(void *item)
{
    return (unsigned char *)item + sizeof(uint64_t);
}

/* One slot of a merge (the caller's array, borrowed by the merge). */
typedef struct weft_merge_slot {
    weft_stream *stream; /* NULL: free */
    bool ended;          /* the stream said DONE */
} weft_merge_slot;

/* A stream over up to `cap` streams (borrowed, never dropped by the
 * merge), yielding each item of any of them as (index, item) — see
 * WEFT_MERGE_ITEM_SIZE — until every stream in it has ended or been
 * removed; then DONE (with none at the first poll: DONE at once). Fair:
 * each poll starts after the branch that yielded last (round robin, no
 * randomness needed). Item size: WEFT_MERGE_ITEM_SIZE(max_item_size);
 * a shorter branch item leaves the rest of the item unspecified.
 * Flags: Send (each branch added must be Send while the merge is).
 * Cancel safety: as select_next — a pending next dropped loses nothing.
 * poll_next_many: takes a run of items from one branch at a time. */
typedef struct weft_merge {
    weft_stream base;
    weft_merge_slot *slots_;
    size_t cap_, live_, next_, max_item_;
    bool done_;
} weft_merge;

/* 0, or -EINVAL (NULL, cap 0, max_item_size 0 or over
 * WEFT_ITER_ITEM_MAX - 8). `flags`: WEFT_F_SEND or 0; a Send merge
 * accepts only Send branches. */
WEFT_API WEFT_NODISCARD int weft_merge_init(weft_merge *m, weft_merge_slot *slots, size_t cap,
                                            size_t max_item_size, uint32_t flags);
/* Add a stream between polls; its index goes to *index. 0, -ENOSPC (every
 * slot taken), -EINVAL (NULL, an item larger than max_item_size, a stream
 * that is not Send into a Send merge, the merge already DONE). */
WEFT_API WEFT_NODISCARD int weft_merge_add(weft_merge *m, weft_stream *s, size_t *index);
/* Take stream `index` out between polls (the caller still owns it; it
 * was not dropped). 0 or -EINVAL (no such stream). */
WEFT_API WEFT_NODISCARD int weft_merge_remove(weft_merge *m, size_t index);
/* Streams in the merge that have not ended. */
static inline size_t weft_merge_len(const weft_merge *m)
{
    return m->live_;
}
/* Whether stream `index` said DONE (false for a free slot). */
static inline bool weft_merge_ended(const weft_merge *m, size_t index)
{
    return index < m->cap_ && m->slots_[index].stream && m->slots_[index].ended;
}

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SELECT_H */
