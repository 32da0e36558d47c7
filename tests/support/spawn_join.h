/* Test support: a task that spawns a child onto the runtime it runs on and
 * awaits the child's join handle (so the join waker is a task's waker). The
 * child is a copy of a future the test prepared (an int-output future of at
 * most SPAWN_JOIN_CHILD_MAX bytes, not yet polled). Its output is twice the
 * child's output, or the join's status when that is not 0, or weft_spawn's
 * error (`spawn_rc`), the child then dropped unpolled. Each test program
 * includes it once. */
#ifndef WEFT_TESTS_SPAWN_JOIN_H
#define WEFT_TESTS_SPAWN_JOIN_H

#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "weft/weft.h"
#include "support/co_future.h"

#define SPAWN_JOIN_CHILD_MAX 128u

typedef struct spawn_join {
    weft_future base;
    weft_co co;
    size_t child_size;
    alignas(max_align_t) unsigned char child[SPAWN_JOIN_CHILD_MAX];
    weft_join j;
    int spawn_rc;
    int child_out;
} spawn_join;

static weft_poll spawn_join_poll(weft_future *f, weft_cx *cx, void *out)
{
    CO_FUTURE_BEGIN(spawn_join, s);
    s->spawn_rc = weft_spawn(NULL, (weft_future *)s->child, s->child_size, &s->j);
    if (s->spawn_rc != 0) {
        weft_future_drop((weft_future *)s->child); /* refused: still ours */
        *(int *)out = s->spawn_rc;
        WEFT_CO_RETURN(&s->co);
    }
    WEFT_AWAIT(&s->co, cx, &s->j.base, &s->child_out);
    *(int *)out = s->j.status == 0 ? 2 * s->child_out : s->j.status;
    CO_FUTURE_END(s);
}

CO_FUTURE_OPS(spawn_join, "test_spawn_join", sizeof(int));

/* `child` (`size` bytes) is copied; `flags`: WEFT_F_SEND or 0. */
static inline void spawn_join_init(spawn_join *s, const weft_future *child, size_t size,
                                   uint32_t flags)
{
    co_future_init(s, sizeof *s, &spawn_join_ops, flags);
    assert(size <= sizeof s->child);
    memcpy(s->child, child, size);
    s->child_size = size;
}

#endif
