/* The registry of live tasks: every task is linked here from spawn until
 * it completes, so shutdown can find and cancel tasks that sit idle in no
 * queue (their only references held by wakers somewhere). Each shard is a
 * mutex-protected doubly linked list. A task goes to its spawning worker's
 * shard (foreign threads spread over the upper half): most tasks complete
 * on the worker that spawned them, so the shard's lock stays in that
 * core's cache and is almost never contended. */
#include "runtime.h"
#include "sys.h"

static unsigned shard_for_spawn(struct weft_rt *rt)
{
    struct weft__worker *w = weft__sched_current_worker();
    const unsigned half = WEFT__REG_SHARDS / 2;
    if (w && w->rt == rt)
        return w->index % half;
    static _Thread_local unsigned char anchor;
    uintptr_t a = (uintptr_t)&anchor; /* distinct per thread */
    return half + (unsigned)((a >> 4 ^ a >> 12) % half);
}

static struct weft__reg_shard *shard_of(struct weft_rt *rt, struct weft__task *t)
{
    return &rt->reg[t->reg_shard];
}

void weft__registry_init(struct weft_rt *rt)
{
    for (unsigned i = 0; i < WEFT__REG_SHARDS; i++) {
        weft__spin_init(&rt->reg[i].lock);
        rt->reg[i].head = NULL;
        rt->reg[i].closed = false;
    }
}

void weft__registry_fini(struct weft_rt *rt)
{
    (void)rt; /* spinlocks need no teardown */
}

bool weft__registry_insert(struct weft_rt *rt, struct weft__task *t)
{
    t->reg_shard = (uint16_t)shard_for_spawn(rt);
    struct weft__reg_shard *s = shard_of(rt, t);
    weft__spin_lock(&s->lock);
    if (s->closed) {
        weft__spin_unlock(&s->lock);
        return false;
    }
    t->reg_prev = NULL;
    t->reg_next = s->head;
    if (s->head)
        s->head->reg_prev = t;
    s->head = t;
    t->reserved_ = 1; /* linked */
    weft__spin_unlock(&s->lock);
    return true;
}

void weft__registry_remove(struct weft__task *t)
{
    struct weft__reg_shard *s = shard_of(t->rt, t);
    weft__spin_lock(&s->lock);
    if (t->reserved_) {
        if (t->reg_prev)
            t->reg_prev->reg_next = t->reg_next;
        else
            s->head = t->reg_next;
        if (t->reg_next)
            t->reg_next->reg_prev = t->reg_prev;
        t->reg_prev = t->reg_next = NULL;
        t->reserved_ = 0;
    }
    weft__spin_unlock(&s->lock);
}

void weft__registry_close_and_cancel(struct weft_rt *rt)
{
    for (unsigned i = 0; i < WEFT__REG_SHARDS; i++) {
        struct weft__reg_shard *s = &rt->reg[i];
        weft__spin_lock(&s->lock);
        s->closed = true;
        struct weft__task *list = s->head;
        s->head = NULL;
        for (struct weft__task *t = list; t; t = t->reg_next)
            t->reserved_ = 0;
        weft__spin_unlock(&s->lock);
        /* Cancelling drops futures, which may wake or complete other
         * tasks (in any shard): done outside the lock. */
        while (list) {
            struct weft__task *t = list;
            list = t->reg_next;
            t->reg_prev = t->reg_next = NULL;
            weft__task_shutdown(t);
        }
    }
}
