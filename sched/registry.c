/* The registry of live tasks: every task is linked here from spawn until
 * it completes, so shutdown can find and cancel tasks that sit idle in no
 * queue (their only references held by wakers somewhere). Sharded by task
 * address so spawns and completions on different workers rarely share a
 * lock; each shard is a mutex-protected doubly linked list. */
#include "runtime.h"
#include "sys.h"

static struct weft__reg_shard *shard_of(struct weft_rt *rt, struct weft__task *t)
{
    uintptr_t a = (uintptr_t)t;
    return &rt->reg[(a >> 6 ^ a >> 14) & (WEFT__REG_SHARDS - 1)];
}

void weft__registry_init(struct weft_rt *rt)
{
    for (unsigned i = 0; i < WEFT__REG_SHARDS; i++) {
        if (pthread_mutex_init(&rt->reg[i].lock, NULL) != 0)
            WEFT_DIE("pthread_mutex_init");
        rt->reg[i].head = NULL;
        rt->reg[i].closed = false;
    }
}

void weft__registry_fini(struct weft_rt *rt)
{
    for (unsigned i = 0; i < WEFT__REG_SHARDS; i++)
        pthread_mutex_destroy(&rt->reg[i].lock);
}

bool weft__registry_insert(struct weft_rt *rt, struct weft__task *t)
{
    struct weft__reg_shard *s = shard_of(rt, t);
    pthread_mutex_lock(&s->lock);
    if (s->closed) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    t->reg_prev = NULL;
    t->reg_next = s->head;
    if (s->head)
        s->head->reg_prev = t;
    s->head = t;
    t->reserved_ = 1; /* linked */
    pthread_mutex_unlock(&s->lock);
    return true;
}

void weft__registry_remove(struct weft__task *t)
{
    struct weft__reg_shard *s = shard_of(t->rt, t);
    pthread_mutex_lock(&s->lock);
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
    pthread_mutex_unlock(&s->lock);
}

void weft__registry_close_and_cancel(struct weft_rt *rt)
{
    for (unsigned i = 0; i < WEFT__REG_SHARDS; i++) {
        struct weft__reg_shard *s = &rt->reg[i];
        pthread_mutex_lock(&s->lock);
        s->closed = true;
        struct weft__task *list = s->head;
        s->head = NULL;
        for (struct weft__task *t = list; t; t = t->reg_next)
            t->reserved_ = 0;
        pthread_mutex_unlock(&s->lock);
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
