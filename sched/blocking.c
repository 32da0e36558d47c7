/* The blocking pool: threads beside the workers that run plain functions
 * which may block, joined through ordinary tasks.
 *
 * A job is one allocation (blocking_job: the function, its argument copy,
 * its output). weft_spawn_blocking allocates it and spawns a task whose
 * future (bfut) owns it; the task's first poll hands the job to the pool
 * (submit), later polls wait for it, and the poll that finds it done
 * copies its output out. Everything about a job — its state, the waker,
 * the queue — is under the pool's one mutex: jobs are coarse (a thread
 * hand-off each), so the lock is never the cost.
 *
 * Who frees a job: the future, unless the future was dropped while the
 * job ran (`detached`): then the thread frees it when the function
 * returns. A job dropped while queued leaves the queue at once and never
 * runs.
 *
 * Threads. Each pool thread has a record (bthread) with its own
 * condition variable. An idle thread sits on the idle stack (LIFO: the
 * busiest threads stay warm, the others time out); submit pops one and
 * notifies it, or starts a new thread when none is idle and the count is
 * below the bound, or leaves the job queued for the next thread that
 * finishes. A thread that waited idle_timeout without a notification
 * leaves the stack and exits; its record moves to the exited list, and
 * whoever starts the next thread (or shutdown) joins it, so no thread is
 * ever left unjoined.
 *
 * The sim runtime. While a job is in flight (submitted, not yet
 * returned), the job holds the sim through the flavour's hold (runtime.h;
 * an outside hold, as weft_sim_outside_begin takes): a run with nothing
 * runnable then waits for the job's wake instead of moving the virtual
 * clock. */
#include "sched/blocking.h"
#include "sched/runtime.h"
#include "sched/task.h"
#include "core/alloc.h"
#include "core/errors.h"
#include "core/future.h"
#include "core/sys.h"

#include <pthread.h>
#include <stdalign.h>
#include <string.h>
#include <time.h>

/* ---- the pool ------------------------------------------------------------------ */

enum job_state { JOB_NEW, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct blocking_job {
    struct blocking_job *prev, *next; /* the queue, while JOB_QUEUED */
    weft_task_fn *fn;
    weft__blocking_arg_drop_fn *drop_arg;
    weft_waker waker; /* the task's, while it waits */
    enum job_state state;
    bool detached; /* the future went while the job ran: the thread frees it */
    bool held;     /* holds the sim (the flavour's hold) */
    size_t out_size;
    unsigned char *out; /* inside data, after the argument */
    alignas(16) unsigned char data[];
} blocking_job;

typedef struct bthread {
    struct weft__blocking *pool;
    pthread_t thread;
    pthread_cond_t cond;
    struct bthread *next; /* idle stack or exited list */
    bool notified;        /* popped from the idle stack by submit */
    bool idle;            /* on the idle stack */
} bthread;

struct weft__blocking {
    pthread_mutex_t lock;
    pthread_cond_t all_gone; /* shutdown waits here for threads == 0 */
    weft_rt *rt;
    bool sim;
    bool closed;
    unsigned max;
    uint64_t idle_timeout;
    blocking_job *head, *tail; /* FIFO */
    bthread *idle_top;
    bthread *exited;
    /* Counters (under lock). */
    unsigned threads, nidle, queued, running, max_running;
    uint64_t started, exited_count, jobs_run, jobs_cancelled;
};

/* rt->blocking once shut down. */
static struct weft__blocking closed_sentinel;
#define POOL_CLOSED (&closed_sentinel)

static void job_free(blocking_job *j)
{
    if (j->drop_arg)
        j->drop_arg(j->data);
    weft__free(j);
}

static void queue_remove(struct weft__blocking *p, blocking_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->tail = j->prev;
    j->prev = j->next = NULL;
    p->queued--;
}

/* Join and free the records of threads that exited. Under lock: an exited
 * thread touches nothing of the pool after it put itself on the list. */
static void reap_exited(struct weft__blocking *p)
{
    while (p->exited) {
        bthread *t = p->exited;
        p->exited = t->next;
        pthread_join(t->thread, NULL);
        pthread_cond_destroy(&t->cond);
        weft__free(t);
    }
}

/* Releases the hold a job had (runtime.h: the flavour's hold). Off the
 * lock. */
static void end_hold(struct weft__blocking *p, bool held)
{
    if (held)
        p->rt->flavour->hold(p->rt, false);
}

static void *pool_thread(void *arg)
{
    bthread *self = arg;
    struct weft__blocking *p = self->pool;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        blocking_job *j = p->head;
        if (j) {
            queue_remove(p, j);
            j->state = JOB_RUNNING;
            p->running++;
            if (p->running > p->max_running)
                p->max_running = p->running;
            p->jobs_run++;
            pthread_mutex_unlock(&p->lock);
            j->fn(j->data, j->out_size ? j->out : NULL);
            pthread_mutex_lock(&p->lock);
            p->running--;
            bool held = j->held;
            weft_waker w = WEFT_WAKER_EMPTY;
            bool free_it = j->detached;
            if (!free_it) {
                j->state = JOB_DONE;
                w = j->waker;
                j->waker = (weft_waker)WEFT_WAKER_EMPTY;
            }
            pthread_mutex_unlock(&p->lock);
            if (free_it)
                job_free(j);
            weft_waker_wake(&w); /* the empty waker: nothing */
            end_hold(p, held);   /* after the wake: the sim sees it queued */
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (p->closed)
            break;
        /* Idle: on the stack until notified, closed, or timed out. */
        self->idle = true;
        self->notified = false;
        self->next = p->idle_top;
        p->idle_top = self;
        p->nidle++;
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        uint64_t ns = (uint64_t)dl.tv_nsec + p->idle_timeout % 1000000000u;
        dl.tv_sec += (time_t)(p->idle_timeout / 1000000000u + ns / 1000000000u);
        dl.tv_nsec = (long)(ns % 1000000000u);
        int rc = 0;
        while (!self->notified && !p->closed && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&self->cond, &p->lock, &dl);
        if (self->notified)
            continue; /* submit took it off the stack */
        /* Timed out or closed: leave the stack. */
        for (bthread **pp = &p->idle_top; *pp; pp = &(*pp)->next) {
            if (*pp == self) {
                *pp = self->next;
                break;
            }
        }
        self->idle = false;
        p->nidle--;
        if (p->closed || !p->head)
            break;
        /* A job came with the timeout: take it. */
    }
    p->threads--;
    p->exited_count++;
    self->next = p->exited;
    p->exited = self;
    if (p->threads == 0)
        pthread_cond_broadcast(&p->all_gone);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Start one more thread. Under lock. Returns 0 or a negative errno. */
static int start_thread(struct weft__blocking *p)
{
    reap_exited(p);
    bthread *t = weft__calloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        weft__free(t);
        return -rc;
    }
    t->pool = p;
    rc = weft__sys_thread_start(&t->thread, pool_thread, t, 0, "weft-blocking");
    if (rc != 0) {
        pthread_cond_destroy(&t->cond);
        weft__free(t);
        return rc;
    }
    p->threads++;
    p->started++;
    return 0;
}

/* The runtime's pool, made on first use; NULL when it is shut down or no
 * memory was left (`*err` says which). */
static struct weft__blocking *pool_get(weft_rt *rt, int *err)
{
    /* Acquire: pairs with the release CAS below (the pool's fields). */
    struct weft__blocking *p = weft_atomic_load_acquire(&rt->blocking);
    if (p == POOL_CLOSED) {
        *err = -ECANCELED;
        return NULL;
    }
    if (p)
        return p;
    p = weft__calloc(sizeof *p);
    if (!p) {
        *err = -ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->all_gone, NULL);
    p->rt = rt;
    p->sim = rt->flavour && rt->flavour->hold;
    p->max = rt->blocking_threads_max ? rt->blocking_threads_max : WEFT_BLOCKING_THREADS_DEFAULT;
    p->idle_timeout =
        rt->blocking_idle_timeout ? rt->blocking_idle_timeout : WEFT_BLOCKING_IDLE_DEFAULT;
    struct weft__blocking *expected = NULL;
    /* AcqRel: publishes the pool; on failure, sees the winner's. */
    if (!weft_atomic_cas_strong_acq_rel(&rt->blocking, &expected, p)) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->all_gone);
        weft__free(p);
        if (expected == POOL_CLOSED) {
            *err = -ECANCELED;
            return NULL;
        }
        return expected;
    }
    return p;
}

/* Hand `j` to the pool. Returns 0, or -ECANCELED (shut down), -ENOMEM or
 * -EAGAIN (no thread runs and none could be started): not queued then. */
static int submit(weft_rt *rt, blocking_job *j)
{
    int err = 0;
    struct weft__blocking *p = pool_get(rt, &err);
    if (!p)
        return err;
    pthread_mutex_lock(&p->lock);
    if (p->closed) {
        pthread_mutex_unlock(&p->lock);
        return -ECANCELED;
    }
    if (p->idle_top) {
        bthread *t = p->idle_top;
        p->idle_top = t->next;
        t->idle = false;
        t->notified = true;
        p->nidle--;
        pthread_cond_signal(&t->cond);
    } else if (p->threads < p->max) {
        int rc = start_thread(p);
        if (rc != 0 && p->threads == 0) {
            pthread_mutex_unlock(&p->lock);
            return rc;
        }
        /* else a running thread takes it when free */
    }
    j->state = JOB_QUEUED;
    j->prev = p->tail;
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    /* Before the unlock: the job cannot finish (and end the hold) first. */
    if (p->sim) {
        rt->flavour->hold(rt, true);
        j->held = true;
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void weft__blocking_shutdown(struct weft_rt *rt)
{
    /* AcqRel: takes the pool (and its fields); later gets see CLOSED. */
    struct weft__blocking *p = weft_atomic_swap_acq_rel(&rt->blocking, POOL_CLOSED);
    if (!p || p == POOL_CLOSED)
        return;
    pthread_mutex_lock(&p->lock);
    p->closed = true;
    /* Every task was cancelled, so every queued job's future dropped it;
     * this is the net for one that was not. */
    while (p->head) {
        blocking_job *j = p->head;
        queue_remove(p, j);
        p->jobs_cancelled++;
        j->state = JOB_DONE;
        weft_waker w = j->waker;
        j->waker = (weft_waker)WEFT_WAKER_EMPTY;
        bool held = j->held;
        j->held = false;
        pthread_mutex_unlock(&p->lock);
        weft_waker_wake(&w); /* its future frees it */
        end_hold(p, held);
        pthread_mutex_lock(&p->lock);
    }
    for (bthread *t = p->idle_top; t; t = t->next)
        pthread_cond_signal(&t->cond);
    while (p->threads > 0)
        pthread_cond_wait(&p->all_gone, &p->lock);
    reap_exited(p);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->all_gone);
    weft__free(p);
}

int weft_blocking_stats_get(weft_rt *rt, weft_blocking_stats *out)
{
    if (!rt || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    /* Acquire: as in pool_get. */
    struct weft__blocking *p = weft_atomic_load_acquire(&rt->blocking);
    if (!p || p == POOL_CLOSED)
        return 0;
    pthread_mutex_lock(&p->lock);
    out->threads = p->threads;
    out->idle = p->nidle;
    out->queued = p->queued;
    out->running = p->running;
    out->max_running = p->max_running;
    out->threads_started = p->started;
    out->threads_exited = p->exited_count;
    out->jobs_run = p->jobs_run;
    out->jobs_cancelled = p->jobs_cancelled;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* ---- the task's future ---------------------------------------------------------- */

typedef struct bfut {
    weft_future base;
    const char *name; /* right after the header (WEFT_F__NAMED) */
    weft_rt *rt;
    blocking_job *job; /* NULL once output was taken */
    bool submitted;    /* the job went to the pool (its state is then under
                          the pool's lock) */
} bfut;

_Static_assert(offsetof(bfut, name) == sizeof(weft_future),
               "a named future's name follows its header");

static weft_poll bfut_poll(weft_future *fut, weft_cx *cx, void *out)
{
    bfut *f = (bfut *)fut;
    blocking_job *j = f->job;
    if (!f->submitted) {
        /* Only this future touches a new job: no lock yet. */
        f->submitted = true;
        j->waker = weft_waker_clone(cx->waker);
        int rc = submit(f->rt, j);
        if (rc != 0) {
            /* Not queued: cancel our own task (its join yields -ECANCELED;
             * the drop after this poll frees the job). */
            weft_waker_drop(&j->waker);
            if (rc != -ECANCELED)
                WEFT_MISUSE("weft_spawn_blocking: no blocking-pool thread could be "
                            "started (%d); the job is cancelled", rc);
            weft__task_abort(weft__task_of_future(&f->base, f->job->out_size));
            return WEFT_PENDING;
        }
        return WEFT_PENDING;
    }
    /* Acquire: the pool made (or closed) by the CAS / swap that stored it
     * (acq_rel, in pool_get and shutdown). */
    struct weft__blocking *p = weft_atomic_load_acquire(&f->rt->blocking);
    if (p == POOL_CLOSED || !p) {
        /* Shut down with our job done (the safety net): it is ours. */
        if (j->state != JOB_DONE)
            return WEFT_PENDING;
    } else {
        pthread_mutex_lock(&p->lock);
        if (j->state != JOB_DONE) {
            if (!weft_waker_will_wake(&j->waker, cx->waker)) {
                weft_waker old = j->waker;
                j->waker = weft_waker_clone(cx->waker);
                pthread_mutex_unlock(&p->lock);
                weft_waker_drop(&old);
                return WEFT_PENDING;
            }
            pthread_mutex_unlock(&p->lock);
            return WEFT_PENDING;
        }
        pthread_mutex_unlock(&p->lock);
    }
    if (j->out_size)
        memcpy(out, j->out, j->out_size);
    f->job = NULL;
    job_free(j);
    return WEFT_READY;
}

static void bfut_drop(weft_future *fut)
{
    bfut *f = (bfut *)fut;
    blocking_job *j = f->job;
    if (!j)
        return;
    f->job = NULL;
    if (!f->submitted) {
        weft_waker_drop(&j->waker);
        job_free(j);
        return;
    }
    /* Acquire: as in bfut_poll. */
    struct weft__blocking *p = weft_atomic_load_acquire(&f->rt->blocking);
    bool free_it = true, held = false;
    weft_waker w = WEFT_WAKER_EMPTY;
    if (p && p != POOL_CLOSED) {
        pthread_mutex_lock(&p->lock);
        w = j->waker;
        j->waker = (weft_waker)WEFT_WAKER_EMPTY;
        if (j->state == JOB_QUEUED) {
            queue_remove(p, j);
            p->jobs_cancelled++;
            held = j->held;
        } else if (j->state == JOB_RUNNING) {
            j->detached = true;
            free_it = false;
        }
        pthread_mutex_unlock(&p->lock);
    }
    weft_waker_drop(&w);
    if (free_it)
        job_free(j);
    if (held)
        end_hold(p, true);
}

static size_t bfut_out_size(const weft_future *fut)
{
    const bfut *f = (const bfut *)fut;
    return f->job ? f->job->out_size : 0;
}

static const weft_future_ops bfut_ops = {
    .name = "weft_spawn_blocking",
    .out_size = WEFT_OUT_SIZE_VARIES,
    .poll = bfut_poll,
    .drop = bfut_drop,
    .out_size_of = bfut_out_size,
};

int weft__spawn_blocking(weft_rt *rt, weft_task_fn *fn, const char *name, const void *arg,
                         size_t arg_size, size_t out_size, weft__blocking_arg_drop_fn *drop_arg,
                         weft_join *join)
{
    if (!fn || (arg_size && !arg) || arg_size > WEFT_SPAWN_BLOCKING_ARG_MAX ||
        out_size > WEFT_SPAWN_BLOCKING_OUT_MAX) {
        WEFT_MISUSE("weft_spawn_blocking: %s", !fn ? "fn is NULL"
                    : arg_size && !arg ? "arg is NULL with arg_size > 0"
                    : arg_size > WEFT_SPAWN_BLOCKING_ARG_MAX ? "arg_size above WEFT_SPAWN_BLOCKING_ARG_MAX"
                    : "out_size above WEFT_SPAWN_BLOCKING_OUT_MAX");
        return -EINVAL;
    }
    size_t arg_room = (arg_size + 15u) & ~(size_t)15u;
    blocking_job *j = weft__calloc(sizeof *j + arg_room + out_size);
    if (!j)
        return -ENOMEM;
    j->fn = fn;
    j->drop_arg = drop_arg;
    j->state = JOB_NEW;
    j->out_size = out_size;
    j->out = j->data + arg_room;
    if (arg_size)
        memcpy(j->data, arg, arg_size);
    bfut f;
    weft_future_init(&f.base, &bfut_ops, WEFT_F_SEND);
    f.base.flags |= WEFT_F__NAMED;
    f.name = name ? name : "weft_spawn_blocking";
    f.rt = rt;
    f.job = j;
    f.submitted = false;
    if (!f.rt)
        f.rt = weft_rt_current();
    int rc = weft_spawn(f.rt, &f.base, sizeof f, join);
    if (rc != 0) {
        j->drop_arg = NULL; /* the caller keeps what the argument owns */
        job_free(j);
    }
    return rc;
}

int weft_spawn_blocking(weft_rt *rt, weft_task_fn *fn, const void *arg, size_t arg_size,
                        size_t out_size, weft_join *join)
{
    return weft__spawn_blocking(rt, fn, NULL, arg, arg_size, out_size, NULL, join);
}
