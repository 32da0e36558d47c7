/* weft — futures without the glue: `async fn`s, stackless coroutines,
 * futures made from a poll function, and generators (streams written as
 * coroutines, WEFT_GEN_FN at the end of this header).
 *
 * A future is a struct, a poll function, a drop function, an ops table and
 * an initialiser. WEFT_ASYNC_FN writes all of it but the struct, which stays
 * yours and visible (debuggers, offsetof, pinning):
 *
 *   typedef struct answer { weft_future base; weft_co co; int n; } answer;
 *
 *   WEFT_ASYNC_FN(answer, int)        // answer_poll, answer_drop, answer_ops
 *   {
 *       WEFT_FN_BEGIN;
 *       WEFT_FN_YIELD;                // let other tasks run once
 *       WEFT_FN_RETURN(self->n);      // *out = self->n; READY
 *       WEFT_FN_END;
 *   }
 *
 *   answer a = { WEFT_FN_INIT(answer, WEFT_F_SEND), .n = 42 };
 *   rc = weft_spawn(rt, &a.base, sizeof a, &join);
 *
 * Below it sits the lower-level register, WEFT_CO_BEGIN / WEFT_AWAIT /
 * WEFT_CO_YIELD / WEFT_CO_RETURN / WEFT_CO_END, for a poll function and
 * ops table written by hand:
 *
 *   typedef struct fetch { weft_future base; weft_co co;
 *                          weft_yield y; int i; } fetch;
 *
 *   static weft_poll fetch_poll(weft_future *f, weft_cx *cx, void *out) {
 *       fetch *s = (fetch *)f;
 *       WEFT_CO_BEGIN(&s->co);
 *       for (s->i = 0; s->i < 3; s->i++) {
 *           weft_yield_init(&s->y);
 *           WEFT_AWAIT(&s->co, cx, &s->y.base, NULL);
 *       }
 *       *(int *)out = s->i;
 *       WEFT_CO_RETURN(&s->co);
 *       WEFT_CO_END(&s->co);
 *   }
 *   static void fetch_drop(weft_future *f) { weft_co_drop(&((fetch *)f)->co); }
 *
 * Rules for both registers. The coroutine's locals live in its future
 * struct (pinned once polled), never on the C stack, because the poll
 * function returns at every await: C locals do not survive an await. Only
 * one await (WEFT_FN_AWAIT, WEFT_FN_YIELD, WEFT_AWAIT, WEFT_CO_YIELD) per
 * source line: the line number is the resume point. Do not await inside a
 * `switch` of your own: its `case` labels would capture the resume point.
 * That compiles, so it is caught when the coroutine resumes: debug builds
 * report it through the misuse handler (weft_set_misuse_handler) and every
 * build refuses the poll (returns WEFT_PENDING and never finishes).
 * Loops and `if` are fine. The awaited child is dropped automatically once
 * READY; if the coroutine is dropped while waiting, weft_co_drop() drops
 * the child it waits on. Children that are alive but not being awaited (a
 * second join handle spawned before awaiting the first) are the
 * coroutine's own to drop in its drop function.
 */
#ifndef WEFT_CO_H
#define WEFT_CO_H

#include "weft/future.h"
#include "weft/iter.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the coroutine state ---------------------------------------------------- */

/* Where a coroutine resumes and what it waits on. Embedded in the future's
 * struct (as the member `co` for WEFT_ASYNC_FN); owned and pinned with it. */
typedef struct weft_co {
    int line;               /* resume point: 0 = start, WEFT__CO_DONE =
                               finished, WEFT__CO_FAILED = refused for good,
                               else the line of an await */
    weft_future *awaiting;  /* child being awaited, dropped with us */
} weft_co;

#define WEFT_CO_INIT { 0, NULL }

/* Resume points that are not lines (internal; not for direct use). */
#define WEFT__CO_DONE (-1)
#define WEFT__CO_FAILED (-2)

/* Start a coroutine at its beginning (before its first poll). Any thread;
 * the caller owns `co`. */
static inline void weft_co_init(weft_co *co)
{
    co->line = 0;
    co->awaiting = NULL;
}

/* Drop the child the coroutine is suspended on, if any, and forget it (a
 * second call drops nothing). Call from the coroutine future's drop, on the
 * thread that drops the coroutine. */
static inline void weft_co_drop(weft_co *co)
{
    if (co->awaiting) {
        weft_future *child = co->awaiting;
        co->awaiting = NULL;
        weft_future_drop(child);
    }
}

/* ---- internal helpers the macros call (not for direct use) ------------------ */

/* The coroutine switch's `default:`: `co->line` is no resume point of this
 * coroutine. For a finished coroutine (polled again, which debug builds of
 * weft_future_poll already refuse) returns WEFT_READY, as before. Otherwise
 * debug builds report the misuse, naming the future `name` (NULL for the
 * WEFT_CO_* register, which does not know it) and the function `func`, and
 * it returns WEFT_PENDING: the poll is refused. */
WEFT_API weft_poll weft__co_resume_fault(weft_co *co, const char *name,
                                         const char *func);

/* An async fn with an output reached WEFT_FN_END without WEFT_FN_RETURN:
 * debug builds report it by `name`; the coroutine is marked refused for
 * good (later polls report again) and WEFT_PENDING is returned. */
WEFT_API weft_poll weft__co_fell_off(weft_co *co, const char *name);

/* Debug builds: report a user-written drop of the async fn `name` that
 * returned with its awaited child still registered (it did not call
 * weft_co_drop). Nothing is dropped here: the child may have been released
 * some other way. */
WEFT_API void weft__co_check_dropped(const weft_co *co, const char *name);

/* Mark `co` finished and return WEFT_READY. */
static inline weft_poll weft__co_finish(weft_co *co)
{
    co->line = WEFT__CO_DONE;
    return WEFT_READY;
}

/* ---- the lower-level register: a poll function written as a coroutine ------- */

/* Marks the deliberate fall-through into an await's resume label, so
 * -Wimplicit-fallthrough stays quiet in code using the macros (internal). */
#if defined(__has_attribute)
#if __has_attribute(__fallthrough__)
#define WEFT__FALLTHROUGH __attribute__((__fallthrough__))
#endif
#endif
#ifndef WEFT__FALLTHROUGH
#define WEFT__FALLTHROUGH ((void)0)
#endif

/* Open the coroutine body inside a poll function (returning weft_poll).
 * Resumes at the await where the last poll stopped. */
#define WEFT_CO_BEGIN(co)                                                     \
    switch ((co)->line) {                                                     \
    default:                                                                  \
        return weft__co_resume_fault((co), NULL, __func__);                   \
    case 0:

/* Await `child` (a weft_future * inside the coroutine's struct): suspend
 * until it is READY, with its output in `out`, then drop it. */
#define WEFT_AWAIT(co, cx, child, out)                                        \
    WEFT__CO_AWAIT(co, cx, child, out, WEFT_PENDING)

/* WEFT_AWAIT returning `pending` while the child is PENDING: WEFT_PENDING
 * in a future's poll, WEFT_NEXT_PENDING in a generator's poll_next
 * (internal). */
#define WEFT__CO_AWAIT(co, cx, child, out, pending)                           \
    do {                                                                      \
        (co)->awaiting = (child);                                             \
        (co)->line = __LINE__;                                                \
        WEFT__FALLTHROUGH;                                                    \
    case __LINE__:                                                            \
        if (weft_future_poll((co)->awaiting, (cx), (out)) == WEFT_PENDING)    \
            return (pending);                                                 \
        {                                                                     \
            weft_future *weft_co_done_ = (co)->awaiting;                      \
            (co)->awaiting = NULL;                                            \
            weft_future_drop(weft_co_done_);                                  \
        }                                                                     \
    } while (0)

/* Give the worker to other tasks once, then continue here. */
#define WEFT_CO_YIELD(co, cx)                                                 \
    do {                                                                      \
        (co)->line = __LINE__;                                                \
        weft_waker_wake_by_ref((cx)->waker);                                  \
        return WEFT_PENDING;                                                  \
    case __LINE__:;                                                           \
    } while (0)

/* Finish: the caller has written the output; returns WEFT_READY. */
#define WEFT_CO_RETURN(co)                                                    \
    do {                                                                      \
        (co)->line = WEFT__CO_DONE;                                           \
        return WEFT_READY;                                                    \
    } while (0)

/* Close the body. Falling off the end returns WEFT_READY without writing
 * an output: in this register, end every path that has an output with
 * WEFT_CO_RETURN (WEFT_ASYNC_FN checks this for you). */
#define WEFT_CO_END(co)                                                       \
    }                                                                         \
    (co)->line = WEFT__CO_DONE;                                               \
    return WEFT_READY

/* ---- async fn: the poll, drop and ops generated from a body ------------------ */

/* WEFT_ASYNC_FN(T, Out) { WEFT_FN_BEGIN; ... WEFT_FN_END; }
 *
 * Defines, for the coroutine future struct `T` (declared by you, before
 * this line, with `weft_future base;` as its first member and a
 * `weft_co co;` member):
 *   static weft_poll T_poll(weft_future *, weft_cx *, void *);
 *   static void T_drop(weft_future *);   drops the awaited child, if any
 *   static const weft_future_ops T_ops = { .name = "T",
 *       .out_size = sizeof(Out), .poll = T_poll, .drop = T_drop };
 * and opens the body, in which `T *self` (the future), `weft_cx *cx` (the
 * poll's context) and `Out *out` (where the output goes) are in scope.
 * `Out` must be a complete object type usable as `Out *` (typedef an
 * array). Initialise instances with WEFT_FN_INIT(T, flags).
 *
 * The generated poll is called by whoever polls the future (a worker, or
 * weft_block_on's thread), one poll at a time; everything in the body runs
 * there. Cancel safety: dropping the future while suspended drops the child
 * it awaits (once); anything else the struct owns needs
 * WEFT_ASYNC_FN_WITH_DROP.
 *
 * In the body:
 *   WEFT_FN_BEGIN;              first statement
 *   WEFT_FN_AWAIT(&self->c, d); await child future `self->c` (any struct
 *                               whose header member is `.base`), output
 *                               to `d` (NULL: none); `c` is dropped once
 *                               READY
 *   WEFT_FN_YIELD;              let other tasks run once
 *   WEFT_FN_RETURN(value);      `*out = (value)` and finish (READY); the
 *                               value may be a compound literal with commas
 *   WEFT_FN_END;                last statement
 * Never `return` directly, and no top-level `break` (it leaves the
 * coroutine's switch, which counts as falling off the end).
 *
 * Falling off the end (reaching WEFT_FN_END) of an async fn with an output
 * is a bug, since the output was never written: debug builds report it by
 * the future's name, and every build refuses the poll (WEFT_PENDING, for
 * this and every later poll). WEFT_FN_RETURN_VOID in such a function does
 * not compile, and WEFT_FN_RETURN(value) of a type not assignable to `Out`
 * is a compile-time diagnostic. */
#define WEFT_ASYNC_FN(T, Out)                                                 \
    WEFT__ASYNC_FN_POLL(T, Out *)                                             \
    WEFT__ASYNC_FN_DEFAULT_DROP(T)                                            \
    WEFT__ASYNC_FN_OPS(T, sizeof(Out), T##_drop)                              \
    WEFT__ASYNC_FN_BODY(T, Out *)

/* An async fn with no output: `out` is a `void *` (NULL is fine) and
 * out_size is 0. Finish with WEFT_FN_RETURN_VOID or by falling off the end
 * (both return READY); WEFT_FN_RETURN(value) does not compile here. */
#define WEFT_ASYNC_FN_VOID(T)                                                 \
    WEFT__ASYNC_FN_POLL(T, void *)                                            \
    WEFT__ASYNC_FN_DEFAULT_DROP(T)                                            \
    WEFT__ASYNC_FN_OPS(T, 0, T##_drop)                                        \
    WEFT__ASYNC_FN_BODY(T, void *)

/* WEFT_ASYNC_FN with a drop you write, for a coroutine that owns more than
 * the child it awaits (the second join handle of a fork-join, a buffer).
 * Define, before or after the body:
 *
 *   static void T_drop(weft_future *f)
 *   {
 *       T *self = (T *)f;
 *       ... release what the struct owns and is not being awaited ...
 *       weft_co_drop(&self->co);      // drops the awaited child: required
 *   }
 *
 * T_drop runs once, on the thread dropping the future, at any point between
 * polls: before the first poll, while suspended at any await, or after
 * READY (then co.awaiting is NULL). `self->co.awaiting` tells which child
 * is being awaited; read it before weft_co_drop clears it. The ops table
 * calls T_drop through a wrapper that, in debug builds, reports a T_drop
 * that returned with the awaited child still registered. */
#define WEFT_ASYNC_FN_WITH_DROP(T, Out)                                       \
    WEFT__ASYNC_FN_POLL(T, Out *)                                             \
    WEFT__ASYNC_FN_USER_DROP(T)                                               \
    WEFT__ASYNC_FN_OPS(T, sizeof(Out), T##_drop_checked)                      \
    WEFT__ASYNC_FN_BODY(T, Out *)

/* WEFT_ASYNC_FN_VOID with a drop you write (see WEFT_ASYNC_FN_WITH_DROP). */
#define WEFT_ASYNC_FN_VOID_WITH_DROP(T)                                       \
    WEFT__ASYNC_FN_POLL(T, void *)                                            \
    WEFT__ASYNC_FN_USER_DROP(T)                                               \
    WEFT__ASYNC_FN_OPS(T, 0, T##_drop_checked)                                \
    WEFT__ASYNC_FN_BODY(T, void *)

/* Designated initialisers for the header members of an async fn's struct:
 * `base` (ops T_ops, WEFT_F_* `flags` limited to WEFT_F_USER_MASK, plus
 * weft's record of where `co` sits, which task dumps read) and `co` (at its
 * start). Usable wherever T_ops is visible (after WEFT_ASYNC_FN), in
 * declarations, compound literals and static initialisers:
 *   answer a = { WEFT_FN_INIT(answer, WEFT_F_SEND), .n = 42 };
 *   self->child = (answer){ WEFT_FN_INIT(answer, WEFT_F_SEND), .n = 1 };
 * Members not named are zero. The future may be moved until its first
 * poll. */
#define WEFT_FN_INIT(T, flags)                                                \
    .base = WEFT_FUTURE_INIT(&T##_ops,                                        \
                             ((uint32_t)(flags) & WEFT_F_USER_MASK) |         \
                                 WEFT__F_CO_AT(T)),                           \
    .co = WEFT_CO_INIT

/* Where the `co` member of future struct T sits, as weft's flag bits 16..25
 * (internal; core/future.h lists weft's bits): its offset in units of
 * _Alignof(weft_co), or 0 (unknown) when it is too far from the header.
 * A task dump finds the resume line and the awaited child through it. */
#define WEFT__F_CO_SHIFT 16
#define WEFT__F_CO_UNITS 0x3ffu
#define WEFT__F_CO_AT(T)                                                      \
    (offsetof(T, co) / _Alignof(weft_co) <= WEFT__F_CO_UNITS                   \
         ? (uint32_t)(offsetof(T, co) / _Alignof(weft_co)) << WEFT__F_CO_SHIFT \
         : 0u)

/* The first statement of an async fn body: resume where the last poll
 * stopped. A resume point that is no await of this body (an await inside a
 * switch of your own) is reported by the future's name and refused. */
#define WEFT_FN_BEGIN                                                         \
    (void)cx;                                                                 \
    (void)out;                                                                \
    switch (self->co.line) {                                                  \
    default:                                                                  \
        return weft__co_resume_fault(&self->co, self->base.ops->name,         \
                                     __func__);                               \
    case 0:

/* Await the future struct `*child` (header member `.base`, living in
 * `*self`), writing its output to `dst` (NULL when it has none); drops it
 * once READY. One await per source line. */
#define WEFT_FN_AWAIT(child, dst)                                             \
    WEFT_AWAIT(&self->co, cx, &(child)->base, (dst))

/* Give the worker to other tasks once (wake, PENDING), then continue. */
#define WEFT_FN_YIELD WEFT_CO_YIELD(&self->co, cx)

/* Finish an async fn that has an output: `*out = (value)`, READY. */
#define WEFT_FN_RETURN(...)                                                   \
    do {                                                                      \
        _Static_assert(_Generic(out, void *: 0, default: 1),                  \
                       "WEFT_FN_RETURN(value) in an async fn without an "     \
                       "output: use WEFT_FN_RETURN_VOID");                    \
        *out = (__VA_ARGS__);                                                 \
        return weft__co_finish(&self->co);                                    \
    } while (0)

/* Finish an async fn without an output: READY. */
#define WEFT_FN_RETURN_VOID                                                   \
    do {                                                                      \
        _Static_assert(_Generic(out, void *: 1, default: 0),                  \
                       "WEFT_FN_RETURN_VOID in an async fn with an output: "  \
                       "use WEFT_FN_RETURN(value)");                          \
        return weft__co_finish(&self->co);                                    \
    } while (0)

/* Falling off the end: READY for a void fn; a refused poll (and a debug
 * report) for a fn with an output. _Generic tells them apart by the type
 * of `out`. */
#define WEFT_FN_END                                                           \
    }                                                                         \
    return _Generic(out, void *: weft__co_finish(&self->co),                  \
                    default: weft__co_fell_off(&self->co,                     \
                                               self->base.ops->name))

/* Pieces of the above (not for direct use). */
#define WEFT__ASYNC_FN_POLL(T, OutPtr)                                        \
    static weft_poll T##_body(T *self, weft_cx *cx, OutPtr out);              \
    static weft_poll T##_poll(weft_future *weft__f, weft_cx *weft__cx,        \
                              void *weft__out)                                \
    {                                                                         \
        return T##_body((T *)weft__f, weft__cx, (OutPtr)weft__out);           \
    }

#define WEFT__ASYNC_FN_DEFAULT_DROP(T)                                        \
    static void T##_drop(weft_future *weft__f)                                \
    {                                                                         \
        weft_co_drop(&((T *)weft__f)->co);                                    \
    }

#define WEFT__ASYNC_FN_USER_DROP(T)                                           \
    static void T##_drop(weft_future *weft__f);                               \
    static void T##_drop_checked(weft_future *weft__f)                        \
    {                                                                         \
        T##_drop(weft__f);                                                    \
        weft__co_check_dropped(&((T *)weft__f)->co, weft__f->ops->name);      \
    }

#define WEFT__ASYNC_FN_OPS(T, out_size_, drop_)                               \
    static const weft_future_ops T##_ops = {                                  \
        .name = #T,                                                           \
        .out_size = (out_size_),                                              \
        .poll = T##_poll,                                                     \
        .drop = drop_,                                                        \
        .out_size_of = NULL,                                                  \
    };

#define WEFT__ASYNC_FN_BODY(T, OutPtr)                                        \
    static weft_poll T##_body(T *self, weft_cx *cx, OutPtr out)

/* ---- weft_poll_fn: a future from a poll function and a context ----------- */

/* The function a weft_poll_fn polls: like a future's poll, but handed the
 * context pointer given at init instead of the future. Returns WEFT_READY
 * after writing the future's out_size bytes to `out`, or WEFT_PENDING after
 * arranging for `cx->waker` to be woken. */
typedef weft_poll weft_poll_ctx_fn(void *ctx, weft_cx *cx, void *out);

/* A future made inline from a poll function and a context pointer (Rust's
 * futures::future::poll_fn): a step into the hand-written register without
 * declaring a future type. Caller-owned; may be moved until its first poll;
 * awaitable with WEFT_FN_AWAIT and spawnable with weft_spawn (size
 * sizeof(weft_poll_fn)). Its ops name is "weft_poll_fn" and its output size
 * is the `out_size` given at init (weft_future_out_size).
 * Threads: `fn` runs on whichever thread polls the future, one poll at a
 * time; pass WEFT_F_SEND only if `fn` and `ctx` may be used from any worker.
 * Cancel safety: the future owns nothing, so dropping it loses nothing of
 * its own and calls nothing; `ctx` stays the caller's, who must keep it
 * valid until the future is dropped, and who undoes whatever `fn` left
 * behind (a waker registered somewhere keeps a reference to its task, not
 * to this future). */
typedef struct weft_poll_fn {
    weft_future base;
    weft_poll_ctx_fn *fn;
    void *ctx;
    size_t out_size;
} weft_poll_fn;

/* Initialise `pf` to poll `fn(ctx, cx, out)` with an output of `out_size`
 * bytes (0: none) and WEFT_F_* `flags` (bits outside WEFT_F_USER_MASK are
 * ignored). Returns 0, or -EINVAL when `pf` or `fn` is NULL or `out_size`
 * is WEFT_OUT_SIZE_VARIES (then `pf` is untouched and must not be polled or
 * dropped). Any thread. Drop it like any future (weft_future_drop). */
WEFT_API WEFT_NODISCARD int weft_poll_fn_init(weft_poll_fn *pf, weft_poll_ctx_fn *fn,
                                              void *ctx, size_t out_size,
                                              uint32_t flags);

/* ---- generators: a stream's poll_next written as a coroutine ---------------- */

/* WEFT_GEN_FN(T, Item) { WEFT_GEN_BEGIN; ... WEFT_GEN_END; }
 *
 * The stream counterpart of WEFT_ASYNC_FN (DESIGN §6): a body that yields
 * items one at a time and may await futures between them. Defines, for
 * the generator struct `T` (declared by you, before this line, with
 * `weft_stream base;` as its first member and a `weft_co co;` member):
 *   static weft_next T_poll_next(weft_stream *, weft_cx *, void *);
 *   static void T_drop(weft_stream *);   drops the awaited child, if any
 *   static const weft_stream_ops T_ops = { .name = "T",
 *       .item_size = sizeof(Item), .poll_next = T_poll_next,
 *       .drop = T_drop };
 * and opens the body, in which `T *self` (the stream), `weft_cx *cx` (the
 * poll's context) and `Item *item` (where the next item goes) are in
 * scope. `Item` must be a complete object type usable as `Item *` (typedef
 * an array). Initialise instances with WEFT_GEN_INIT(T, flags).
 *
 *   typedef struct ticks { weft_stream base; weft_co co;
 *                          weft_sleep nap; int i; } ticks;
 *
 *   WEFT_GEN_FN(ticks, int)            // ticks_poll_next, ticks_drop, ticks_ops
 *   {
 *       WEFT_GEN_BEGIN;
 *       for (self->i = 0; self->i < 3; self->i++) {
 *           weft_sleep_init(&self->nap, WEFT_MS(10));
 *           WEFT_GEN_AWAIT(&self->nap, NULL);
 *           WEFT_GEN_YIELD(self->i);    // *item = self->i; ITEM
 *       }
 *       WEFT_GEN_END;                   // DONE, and DONE ever after
 *   }
 *
 *   ticks t = { WEFT_GEN_INIT(ticks, WEFT_F_SEND) };
 *   ... weft_stream_next / weft_stream_poll_next(&t.base, cx, &v) ...
 *   weft_stream_drop(&t.base);
 *
 * Item: `Item`, one per WEFT_GEN_YIELD. Who may call: whoever polls the
 * stream (weft_stream_poll_next, weft_stream_poll_next_many, the
 * weft_stream_next future), one poll at a time; the body runs there. It
 * is Send when built with WEFT_F_SEND, which promises that everything the
 * body touches may be used from any worker.
 *
 * Cancel safety: an item leaves the generator only in the poll that
 * returns it (WEFT_GEN_YIELD writes it and returns ITEM together), and the
 * generator's state lives in its struct, so dropping a pending
 * weft_stream_next over it loses nothing: the next poll resumes the await
 * where it stopped and yields the next item. Dropping the generator
 * itself, at any point between polls (before the first, suspended in an
 * await, between yields, after DONE), drops the child it awaits, once;
 * anything else the struct owns needs WEFT_GEN_FN_WITH_DROP.
 *
 * In the body:
 *   WEFT_GEN_BEGIN;               first statement
 *   WEFT_GEN_YIELD(value);        `*item = (value)`, return ITEM; the next
 *                                 poll resumes on the line after it. The
 *                                 value may be a compound literal with
 *                                 commas; a type not assignable to `Item`
 *                                 is a compile-time diagnostic
 *   WEFT_GEN_AWAIT(&self->c, d);  await child future `self->c` (header
 *                                 member `.base`), output to `d` (NULL:
 *                                 none); PENDING while it is, `c` dropped
 *                                 once READY
 *   WEFT_GEN_RETURN;              finish early: DONE
 *   WEFT_GEN_END;                 last statement: DONE
 * The rules of coroutines hold (top of this header): locals in the struct,
 * which is pinned after the first poll, so a pointer into the generator's
 * own buffer stays valid across yields and awaits; one await or yield per
 * source line; none inside a `switch` of your own (reported by the
 * generator's name in debug builds, and refused: PENDING). Never `return`
 * directly; a top-level `break` leaves the body: DONE. Once DONE, the
 * generator answers DONE to every later poll_next (weft_stream_poll_next
 * in debug builds reports such a poll as misuse first). */
#define WEFT_GEN_FN(T, Item)                                                  \
    WEFT__GEN_FN_POLL(T, Item)                                                \
    WEFT__GEN_FN_DEFAULT_DROP(T)                                              \
    WEFT__GEN_FN_OPS(T, Item, T##_drop)                                       \
    WEFT__GEN_FN_BODY(T, Item)

/* WEFT_GEN_FN with a drop you write, for a generator that owns more than
 * the child it awaits (a channel receiver, a buffer, a second future).
 * Define, before or after the body:
 *
 *   static void T_drop(weft_stream *s)
 *   {
 *       T *self = (T *)s;
 *       ... release what the struct owns and is not being awaited ...
 *       weft_co_drop(&self->co);      // drops the awaited child: required
 *   }
 *
 * T_drop runs once, on the thread dropping the stream, at any point between
 * polls (as for WEFT_ASYNC_FN_WITH_DROP; `self->co.awaiting` tells which
 * child is awaited, until weft_co_drop clears it). The ops table calls it
 * through a wrapper that, in debug builds, reports a T_drop that returned
 * with the awaited child still registered. */
#define WEFT_GEN_FN_WITH_DROP(T, Item)                                        \
    WEFT__GEN_FN_POLL(T, Item)                                                \
    WEFT__GEN_FN_USER_DROP(T)                                                 \
    WEFT__GEN_FN_OPS(T, Item, T##_drop_checked)                               \
    WEFT__GEN_FN_BODY(T, Item)

/* Initialisers for the header members of a generator's struct: `base`
 * (ops T_ops, WEFT_F_* `flags` limited to WEFT_F_USER_MASK) and `co` (at
 * its start). Usable wherever T_ops is visible (after WEFT_GEN_FN), in
 * declarations, compound literals and static initialisers:
 *   ticks t = { WEFT_GEN_INIT(ticks, WEFT_F_SEND), .n = 3 };
 * Members not named are zero. The generator may be moved until its first
 * poll. */
#define WEFT_GEN_INIT(T, flags)                                               \
    .base = { &T##_ops, (uint32_t)(flags) & WEFT_F_USER_MASK, 0 },            \
    .co = WEFT_CO_INIT

/* The first statement of a generator body: resume where the last poll
 * stopped; a finished generator answers DONE again. */
#define WEFT_GEN_BEGIN                                                        \
    (void)cx;                                                                 \
    (void)item;                                                               \
    switch (self->co.line) {                                                  \
    default:                                                                  \
        return weft__gen_resume_fault(&self->co, self->base.ops->name,        \
                                      __func__);                              \
    case 0:

/* Yield one item: `*item = (value)`, ITEM; resume on the next line at the
 * next poll. One per source line. */
#define WEFT_GEN_YIELD(...)                                                   \
    do {                                                                      \
        *item = (__VA_ARGS__);                                                \
        self->co.line = __LINE__;                                             \
        return WEFT_NEXT_ITEM;                                                \
    case __LINE__:;                                                           \
    } while (0)

/* Await the future struct `*child` (header member `.base`, living in
 * `*self`), writing its output to `dst` (NULL when it has none); PENDING
 * propagates as WEFT_NEXT_PENDING; drops it once READY. One per line. */
#define WEFT_GEN_AWAIT(child, dst)                                            \
    WEFT__CO_AWAIT(&self->co, cx, &(child)->base, (dst), WEFT_NEXT_PENDING)

/* Finish the generator: DONE (and DONE at every later poll). */
#define WEFT_GEN_RETURN                                                       \
    return weft__gen_finish(&self->co)

/* Close the body: falling off the end finishes the generator (DONE). */
#define WEFT_GEN_END                                                          \
    }                                                                         \
    return weft__gen_finish(&self->co)

/* Internal pieces of the above (not for direct use). */

/* Mark `co` finished and return WEFT_NEXT_DONE. */
static inline weft_next weft__gen_finish(weft_co *co)
{
    co->line = WEFT__CO_DONE;
    return WEFT_NEXT_DONE;
}

/* The generator switch's `default:`, through the coroutine's own check: a
 * finished generator answers DONE; any other line that is no resume point
 * is reported (debug builds) and refused (PENDING). */
static inline weft_next weft__gen_resume_fault(weft_co *co, const char *name,
                                               const char *func)
{
    return weft__co_resume_fault(co, name, func) == WEFT_READY ? WEFT_NEXT_DONE
                                                               : WEFT_NEXT_PENDING;
}

#define WEFT__GEN_FN_POLL(T, Item)                                            \
    static weft_next T##_body(T *self, weft_cx *cx, Item *item);              \
    static weft_next T##_poll_next(weft_stream *weft__s, weft_cx *weft__cx,   \
                                   void *weft__item)                          \
    {                                                                         \
        return T##_body((T *)weft__s, weft__cx, (Item *)weft__item);          \
    }

#define WEFT__GEN_FN_DEFAULT_DROP(T)                                          \
    static void T##_drop(weft_stream *weft__s)                                \
    {                                                                         \
        weft_co_drop(&((T *)weft__s)->co);                                    \
    }

#define WEFT__GEN_FN_USER_DROP(T)                                             \
    static void T##_drop(weft_stream *weft__s);                               \
    static void T##_drop_checked(weft_stream *weft__s)                        \
    {                                                                         \
        T##_drop(weft__s);                                                    \
        weft__co_check_dropped(&((T *)weft__s)->co, weft__s->ops->name);      \
    }

#define WEFT__GEN_FN_OPS(T, Item, drop_)                                      \
    static const weft_stream_ops T##_ops = {                                  \
        .name = #T,                                                           \
        .item_size = sizeof(Item),                                            \
        .poll_next = T##_poll_next,                                           \
        .drop = drop_,                                                        \
        .size_hint = NULL,                                                    \
        .poll_next_many = NULL,                                               \
        .item_size_of = NULL,                                                 \
    };

#define WEFT__GEN_FN_BODY(T, Item)                                            \
    static weft_next T##_body(T *self, weft_cx *cx, Item *item)

#ifdef __cplusplus
}
#endif
#endif /* WEFT_CO_H */
