/* weft — the future contract: poll, wakers, contexts, the atomic waker.
 *
 * A future is a poll state machine. `poll(f, cx, out)` either finishes
 * (returns WEFT_READY and writes `ops->out_size` bytes to `out`) or returns
 * WEFT_PENDING after arranging for `cx->waker` to be woken when progress is
 * possible. Nothing runs unless polled. Calling `drop` *is* cancellation.
 *
 * Lifecycle rules every future follows:
 *  - A future may be moved (memcpy'd) until its first poll, never after:
 *    it is pinned from then on (waiters link themselves into shared lists).
 *    Debug builds report a moved future by name.
 *  - After READY it is never polled again (debug builds report it).
 *  - `drop` is called exactly once on every future that was initialised,
 *    whether it completed or not. It frees what the future owns, never the
 *    future's own memory, and leaves shared structures consistent.
 *  - Each public future documents its cancel safety: what is lost if it is
 *    dropped while pending.
 */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weft_poll { WEFT_PENDING = 0, WEFT_READY = 1 } weft_poll;

typedef struct weft_future weft_future;
typedef struct weft_cx weft_cx;
typedef struct weft_waker weft_waker;

/* ---- wakers ------------------------------------------------------------ */

/* A waker's behaviour. All four must be safe from any thread, at any time,
 * and must never run user code inline (waking only schedules).
 *  clone:       a new waker for the same target (takes a reference).
 *  wake:        wake the target and release this waker's reference.
 *  wake_by_ref: wake the target; the waker stays valid.
 *  drop:        release the reference without waking. */
typedef weft_waker weft_waker_clone_fn(const void *data);
typedef void weft_waker_wake_fn(void *data);
typedef void weft_waker_wake_by_ref_fn(const void *data);
typedef void weft_waker_drop_fn(void *data);

typedef struct weft_waker_ops {
    weft_waker_clone_fn *clone;
    weft_waker_wake_fn *wake;
    weft_waker_wake_by_ref_fn *wake_by_ref;
    weft_waker_drop_fn *drop;
} weft_waker_ops;

struct weft_waker {
    const weft_waker_ops *ops; /* NULL: the empty waker (no target) */
    void *data;
};

#define WEFT_WAKER_EMPTY { NULL, NULL }

/* Clone `w` (the empty waker clones to the empty waker). Any thread. */
static inline weft_waker weft_waker_clone(const weft_waker *w)
{
    if (!w->ops) {
        weft_waker e = WEFT_WAKER_EMPTY;
        return e;
    }
    return w->ops->clone(w->data);
}

/* Wake and consume `*w`; `*w` is the empty waker afterwards. Any thread. */
static inline void weft_waker_wake(weft_waker *w)
{
    const weft_waker_ops *ops = w->ops;
    void *data = w->data;
    w->ops = NULL;
    w->data = NULL;
    if (ops)
        ops->wake(data);
}

/* Wake without consuming. Any thread. */
static inline void weft_waker_wake_by_ref(const weft_waker *w)
{
    if (w->ops)
        w->ops->wake_by_ref(w->data);
}

/* Release `*w` without waking; `*w` is the empty waker afterwards. */
static inline void weft_waker_drop(weft_waker *w)
{
    const weft_waker_ops *ops = w->ops;
    void *data = w->data;
    w->ops = NULL;
    w->data = NULL;
    if (ops)
        ops->drop(data);
}

/* True when waking `a` and `b` wakes the same target (so a stored waker
 * need not be replaced). */
static inline bool weft_waker_will_wake(const weft_waker *a, const weft_waker *b)
{
    return a->ops == b->ops && a->data == b->data;
}

/* A waker that does nothing; clone/drop are free. For polling by hand. */
WEFT_API weft_waker weft_waker_noop(void);

/* ---- context ----------------------------------------------------------- */

/* Operations a task may perform per scheduling turn before leaf futures
 * start returning PENDING (after waking themselves), so one busy task
 * cannot starve its neighbours on the same worker. */
#define WEFT_COOP_BUDGET 128u

/* What a poll receives: the waker to arrange to be woken with, and the
 * cooperative budget left in this turn. Owned by whoever polls; valid only
 * for the duration of one poll call (clone the waker to keep it). */
struct weft_cx {
    const weft_waker *waker;
    uint32_t budget;
    uint32_t reserved_;
};

/* Initialise a context for polling by hand (tests, custom executors). */
static inline void weft_cx_init(weft_cx *cx, const weft_waker *waker)
{
    cx->waker = waker;
    cx->budget = WEFT_COOP_BUDGET;
    cx->reserved_ = 0;
}

/* Leaf futures call this once per unit of work before doing it. It returns
 * true and charges one unit, or — when the turn's budget is spent — wakes
 * the task and returns false, and the caller returns WEFT_PENDING. */
static inline bool weft_coop_proceed(weft_cx *cx)
{
    if (cx->budget == 0) {
        weft_waker_wake_by_ref(cx->waker);
        return false;
    }
    cx->budget--;
    return true;
}

/* ---- futures ----------------------------------------------------------- */

/* Flags of a future instance (weft_future.flags). Combinators compute their
 * own from their parts. */
#define WEFT_F_SEND 0x1u /* may be polled on any worker (stolen, migrated) */
#define WEFT_F_USER_MASK 0x0000ffffu /* bits 16..31 are weft's own */

/* The three functions of a future's ops table (see weft_future_ops). */
typedef weft_poll weft_future_poll_fn(weft_future *f, weft_cx *cx, void *out);
typedef void weft_future_drop_fn(weft_future *f);
typedef size_t weft_future_out_size_fn(const weft_future *f);

/* Output size of futures whose output size is fixed per instance rather
 * than per type (a join handle outputs whatever its task outputs). */
#define WEFT_OUT_SIZE_VARIES ((size_t)-1)

typedef struct weft_future_ops {
    const char *name;     /* for errors, stats and task dumps; never NULL */
    size_t out_size;      /* bytes written to `out` on READY (may be 0), or
                             WEFT_OUT_SIZE_VARIES with out_size_of set */
    weft_future_poll_fn *poll; /* required */
    weft_future_drop_fn *drop; /* NULL: nothing to free */
    weft_future_out_size_fn *out_size_of; /* only with WEFT_OUT_SIZE_VARIES */
} weft_future_ops;

/* The first member of every future struct. Initialise with
 * weft_future_init() (or WEFT_FUTURE_INIT); weft owns the bits above
 * WEFT_F_USER_MASK and `pin_tag_`. */
struct weft_future {
    const weft_future_ops *ops;
    uint32_t flags;
    uint32_t pin_tag_; /* debug: where it was first polled; 0 = not yet */
};

#define WEFT_FUTURE_INIT(ops_ptr, flags_) { (ops_ptr), (flags_), 0 }

/* Initialise a future header (the first member of a future struct) with
 * its ops and WEFT_F_* flags (bits outside WEFT_F_USER_MASK are ignored).
 * The caller owns the future; it may be moved until its first poll. */
static inline void weft_future_init(weft_future *f, const weft_future_ops *ops,
                                    uint32_t flags)
{
    f->ops = ops;
    f->flags = flags & WEFT_F_USER_MASK;
    f->pin_tag_ = 0;
}

/* Poll `f` once. Use this rather than calling ops->poll directly: debug
 * builds check here that `f` was not moved since its first poll and was not
 * polled after READY, and report misuse by the future's name (then return
 * WEFT_PENDING without polling). `out` receives the output on READY; it may
 * be NULL only when the output size is 0. The thread polling `f` owns it. */
WEFT_API weft_poll weft_future_poll(weft_future *f, weft_cx *cx, void *out);

/* Drop (cancel or destroy) `f`: calls ops->drop if set. Exactly once per
 * future, by the thread that owns it (the one that would poll it), never
 * concurrently with a poll. */
static inline void weft_future_drop(weft_future *f)
{
    if (f->ops->drop)
        f->ops->drop(f);
}

/* Bytes `f` writes to `out` on READY. */
static inline size_t weft_future_out_size(const weft_future *f)
{
    return f->ops->out_size == WEFT_OUT_SIZE_VARIES ? f->ops->out_size_of(f)
                                                    : f->ops->out_size;
}

/* True when `f` carries WEFT_F_SEND (may be polled on any worker). */
static inline bool weft_future_is_send(const weft_future *f)
{
    return (f->flags & WEFT_F_SEND) != 0;
}

/* ---- ready-made leaf futures -------------------------------------------- */

/* Yield to the scheduler once: the first poll wakes the task and returns
 * PENDING (the task goes to the back of its worker's queue); the second
 * returns READY. Output: none. Send. Cancel safety: nothing to lose. */
typedef struct weft_yield {
    weft_future base;
    bool yielded;
} weft_yield;

/* Initialise `y` (caller-owned; drop it like any future). Any thread. */
WEFT_API void weft_yield_init(weft_yield *y);

/* A future that is READY at once with a copy of `value` (at most 64
 * bytes). Send. Useful as a trivial task or in tests. */
#define WEFT_READY_MAX 64
typedef struct weft_ready {
    weft_future base;
    size_t size;
    unsigned char value[WEFT_READY_MAX];
} weft_ready;

/* Returns 0 or -EINVAL (size > WEFT_READY_MAX, or value NULL with size > 0).
 * The ready future's ops report out_size WEFT_OUT_SIZE_VARIES. */
WEFT_API WEFT_NODISCARD int weft_ready_init(weft_ready *r, const void *value,
                                            size_t size);

/* ---- atomic waker -------------------------------------------------------- */

/* One registered waker that a consumer registers and a producer wakes,
 * race-free from any threads (the AtomicWaker algorithm of futures-rs): a
 * wake that races with a register is never lost — either the registered
 * waker is woken, or the registering thread wakes the new one itself.
 * Register is called by one consumer at a time; wake from anywhere.
 * Caller-owned; must not move once used; pair init with fini. */
typedef struct weft_atomic_waker {
    WEFT_ATOMIC(uintptr_t) state; /* WAITING/REGISTERING/WAKING bits */
    weft_waker waker;             /* guarded by the state protocol */
} weft_atomic_waker;

#define WEFT_ATOMIC_WAKER_INIT { 0, WEFT_WAKER_EMPTY }

/* Initialise an empty atomic waker (or use WEFT_ATOMIC_WAKER_INIT). */
WEFT_API void weft_atomic_waker_init(weft_atomic_waker *aw);
/* Store a clone of `w` (unless the stored one already wakes the same
 * target). If a wake races with this call, `w` is woken. */
WEFT_API void weft_atomic_waker_register(weft_atomic_waker *aw,
                                         const weft_waker *w);
/* Wake the registered waker, if any, and clear it. Any thread. */
WEFT_API void weft_atomic_waker_wake(weft_atomic_waker *aw);
/* Take the registered waker without waking it: returns true and stores it
 * in `*out` (which the caller then owns), or false. Any thread. */
WEFT_API bool weft_atomic_waker_take(weft_atomic_waker *aw, weft_waker *out);
/* Drop any registered waker. No concurrent use may remain. */
WEFT_API void weft_atomic_waker_fini(weft_atomic_waker *aw);

/* ==== boxes and shared handles (async interfaces) ========================== */
/* An async interface (DESIGN §12) is a struct of function pointers plus
 * `self`; its async method initialises its future in caller storage of a
 * size and alignment the interface publishes:
 *
 *   int (*add)(void *self, int a, int b, weft_future *storage);
 *   size_t add_size, add_align;
 *
 * A caller that reserved the storage (a member of its own future) polls
 * the future in place. One that cannot know the size boxes it: weft
 * allocates the storage (through weft_set_allocator's allocator), the
 * method fills it, and the box is a future like any other. Shared state
 * the returned futures need lives behind a weft_rc, so each future holds
 * a reference instead of borrowing `self` (core/box.c). */

/* A future in weft-allocated storage. Use: weft_future_box_alloc(&b,
 * size, align, &storage) (0, -EINVAL: align not a power of two, or
 * -ENOMEM); call the method with `storage`; then weft_future_box_fill(&b)
 * if it made a future (0) — if it failed, weft_future_box_drop frees the
 * storage without dropping anything. A filled box polls the future inside
 * (same output, same WEFT_F_SEND) and dropping it drops that future, then
 * frees the storage. Polling an unfilled box is misuse (reported; PENDING).
 * Cancel safety: the inner future's. Owner: whoever owns the box, like
 * any future; it may be moved before its first poll (the inner future
 * never moves). One allocation per box, none per poll. */
typedef struct weft_future_box {
    weft_future base;
    weft_future *inner_; /* in mem_, aligned */
    void *mem_;          /* what the allocator returned */
    bool filled_;
} weft_future_box;

WEFT_API WEFT_NODISCARD int weft_future_box_alloc(weft_future_box *b, size_t size,
                                                  size_t align, weft_future **storage);
/* The method initialised a future in the storage: the box now is it. */
WEFT_API void weft_future_box_fill(weft_future_box *b);
/* Drop (the inner future, if filled) and free. Same as weft_future_drop. */
WEFT_API void weft_future_box_drop(weft_future_box *b);

/* A reference count with a drop callback: embed it in shared state,
 * weft_rc_init (count 1), weft_rc_retain for each further holder,
 * weft_rc_release when done; the release that takes the count to 0 calls
 * drop(rc) (which frees the enclosing object) and returns true. Any
 * thread; retain needs a reference already held. Releasing more often
 * than retained is misuse (reported in debug builds, ignored). */
typedef struct weft_rc weft_rc;
typedef void weft_rc_drop_fn(weft_rc *rc);
struct weft_rc {
    WEFT_ATOMIC(size_t) count_;
    weft_rc_drop_fn *drop_;
};
WEFT_API void weft_rc_init(weft_rc *rc, weft_rc_drop_fn *drop);
WEFT_API void weft_rc_retain(weft_rc *rc);
WEFT_API bool weft_rc_release(weft_rc *rc);
/* The count now (a snapshot, for tests and asserts). */
WEFT_API size_t weft_rc_count(const weft_rc *rc);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_FUTURE_H */
