/* The idle protocol: searching, sleeping and waking workers with no lost
 * wakeups (the design of the tokio and Go schedulers' idle sets).
 *
 * state = (unparked << 16) | searching. A producer that made work
 * available publishes it (queue push), executes a seq_cst fence, then
 * reads `state`: if nobody is searching and some worker sleeps, it wakes
 * one as a searcher. (A worker pushing to its own queue skips the fence:
 * it runs that queue before it can sleep, so a missed wake costs
 * parallelism, never progress.) A worker going to sleep decrements
 * `state` (seq_cst RMW) and, if it was the last searcher, executes a
 * seq_cst fence and re-reads every queue. By the fences' total order,
 * either the producer sees the decrement (and wakes a sleeper) or the last
 * searcher sees the work (and wakes someone, possibly itself).
 * Non-searching workers may sleep without re-checking the other queues
 * while a searcher exists, and the last searcher re-checks. A searcher
 * that finds work and was the last one wakes another, so a burst fans
 * out. A non-searching worker that finds nobody searching once it is
 * listed re-checks too (worker.c, park_worker): the searcher it counted on
 * may have found work and looked for a sleeper before it was listed.
 * The argument rests on the decrements and the fences only: raising the
 * count of searchers or of unparked workers can only make a notifier skip
 * a wake, and the worker so counted re-checks before it sleeps. That is
 * why the increments below may be relaxed CASes.
 *
 * At most max_searching = min(ceil(workers / 2), CPUs) workers search at
 * once, and that is a hard bound: every increment of `searching` is a CAS
 * that checks it (a wake adds a searcher only when there is none). A
 * burst of idleness must not turn every worker into a thief hammering the
 * same queues, and searchers spin before they sleep (worker.c): with 64
 * workers on 2 CPUs, 32 spinners would only take turns burning both.
 * The same pattern covers local tasks: the waker pushes to the owner's
 * inbox, fences, and reads the owner's `sleeping`; the owner sets
 * `sleeping`, fences, and re-reads its inbox.
 *
 * The sleeper list is a stack under `lock` (the tokio scheduler keeps its
 * sleepers under a mutex too): a wake takes the latest sleeper, whose
 * cache is the warmest; each worker knows its place in it, so leaving the
 * list (a timed-out timer driver, a targeted wake) costs no search. Each
 * wake unparks exactly one worker: nothing here wakes a crowd.
 *
 * TSan does not model fences, but no plain data depends on them here (only
 * whether a sleeper is woken), so there is nothing for it to misreport;
 * the no-lost-wakeup property is exercised by the stress programs and by
 * the parks/wake-ups counting tests instead.
 *
 * Concurrency: notify*, wake_sleeper from any thread; start_search,
 * stop_search, sleep_begin, sleep_end from worker i only. The sleeper list
 * and each `sleeping`/`wake_searching`/`list_pos` change under `lock`. */
#include "sched/idle.h"
#include "core/alloc.h"
#include "core/errors.h"

#include <string.h>

#define UNPARKED_ONE WEFT__IDLE_UNPARKED_ONE
#define SEARCHING_MASK WEFT__IDLE_SEARCHING_MASK

int weft__idle_init(weft__idle *idle, unsigned n, unsigned cpus)
{
    memset(idle, 0, sizeof *idle);
    idle->nworkers = n;
    unsigned half = (n + 1) / 2;
    idle->max_searching = cpus < half ? cpus : half;
    if (idle->max_searching == 0)
        idle->max_searching = 1;
    idle->sleepers = weft__calloc(sizeof(unsigned) * n);
    idle->slots_raw = weft__alloc(sizeof(struct weft__sleeper) * n + WEFT_CACHE_LINE);
    if (!idle->sleepers || !idle->slots_raw) {
        weft__free(idle->sleepers);
        weft__free(idle->slots_raw);
        return -ENOMEM;
    }
    uintptr_t a = ((uintptr_t)idle->slots_raw + WEFT_CACHE_LINE - 1) &
                  ~(uintptr_t)(WEFT_CACHE_LINE - 1);
    idle->slots = (struct weft__sleeper *)a;
    for (unsigned i = 0; i < n; i++) {
        weft__parker_init(&idle->slots[i].parker);
        weft_atomic_init(&idle->slots[i].sleeping, false);
        idle->slots[i].wake_searching = false;
    }
    int rc = pthread_mutex_init(&idle->lock, NULL);
    if (rc != 0)
        WEFT_DIE_RC("pthread_mutex_init", rc);
    weft_atomic_init(&idle->state, n << 16); /* all unparked, none searching */
    weft_atomic_init(&idle->wakes, 0);
    weft_atomic_init(&idle->searching_peak, 0);
    return 0;
}

void weft__idle_fini(weft__idle *idle)
{
    pthread_mutex_destroy(&idle->lock);
    weft__free(idle->sleepers);
    weft__free(idle->slots_raw);
}

/* The count of searchers became `n`: keep the peak. */
static void note_searching(weft__idle *idle, uint32_t n)
{
    /* Relaxed: a statistic. */
    uint32_t peak = weft_atomic_load_relaxed(&idle->searching_peak);
    while (n > peak && !weft_atomic_cas_weak_relaxed(&idle->searching_peak, &peak, n)) {
    }
}

static void unpark(weft__idle *idle, struct weft__sleeper *w)
{
    /* Relaxed: a statistic. */
    weft_atomic_fetch_add_relaxed(&idle->wakes, 1);
    weft__unpark(&w->parker);
}

/* The latest sleeper leaves the list (caller holds the lock, nsleepers > 0). */
static struct weft__sleeper *pop_sleeper(weft__idle *idle)
{
    struct weft__sleeper *w = &idle->slots[idle->sleepers[--idle->nsleepers]];
    /* Relaxed: `sleeping` changes under the lock; lock-free readers only
     * use it as a hint before taking the lock. */
    weft_atomic_store_relaxed(&w->sleeping, false);
    return w;
}

void weft__idle_wake_searcher(weft__idle *idle)
{
    struct weft__sleeper *w = NULL;
    pthread_mutex_lock(&idle->lock);
    /* Relaxed: the CAS below re-checks. */
    uint32_t s = weft_atomic_load_relaxed(&idle->state);
    while ((s & SEARCHING_MASK) == 0 && idle->nsleepers > 0) {
        /* Relaxed CAS: an increment (see the top). Fails when a searcher
         * appeared meanwhile, who will find the work instead. */
        if (weft_atomic_cas_weak_relaxed(&idle->state, &s, s + UNPARKED_ONE + 1)) {
            w = pop_sleeper(idle);
            w->wake_searching = true;
            note_searching(idle, 1);
            break;
        }
    }
    pthread_mutex_unlock(&idle->lock);
    if (w)
        unpark(idle, w);
}

/* Remove worker `i` from the sleeper list and count it as unparked (not
 * as a searcher). Caller holds the lock and saw it sleeping. */
static void take_off_sleepers(weft__idle *idle, unsigned i)
{
    unsigned k = idle->slots[i].list_pos;
    WEFT_ASSERT(k < idle->nsleepers && idle->sleepers[k] == i);
    unsigned last = idle->sleepers[--idle->nsleepers];
    idle->sleepers[k] = last;
    idle->slots[last].list_pos = k;
    /* Relaxed: `sleeping` changes under the lock; lock-free readers only
     * use it as a hint before taking the lock. */
    weft_atomic_store_relaxed(&idle->slots[i].sleeping, false);
    idle->slots[i].wake_searching = false;
    /* SeqCst RMW, though an increment (see the top): kept in the state's
     * total order like its pair in sleep_begin; this path is not hot. */
    weft_atomic_fetch_add_seq_cst(&idle->state, UNPARKED_ONE);
}

void weft__idle_wake_sleeper(weft__idle *idle)
{
    /* Relaxed: a hint; a sleeper that parks after this check takes over
     * whatever it was woken for by itself (the timer driver role). */
    uint32_t s = weft_atomic_load_relaxed(&idle->state);
    if ((s >> 16) >= idle->nworkers)
        return; /* nobody sleeps */
    struct weft__sleeper *w = NULL;
    pthread_mutex_lock(&idle->lock);
    if (idle->nsleepers > 0) {
        w = &idle->slots[idle->sleepers[idle->nsleepers - 1]];
        take_off_sleepers(idle, (unsigned)(w - idle->slots));
    }
    pthread_mutex_unlock(&idle->lock);
    if (w)
        unpark(idle, w);
}

void weft__idle_notify_worker(weft__idle *idle, unsigned i)
{
    struct weft__sleeper *w = &idle->slots[i];
    /* SeqCst fence: the inbox push before the `sleeping` read (pairs with
     * the fence in weft__idle_sleep_begin between setting `sleeping` and
     * the owner re-reading its inbox). */
    weft_atomic_fence_seq_cst();
    /* Relaxed: ordered by the fence above; re-read under the lock. */
    if (!weft_atomic_load_relaxed(&w->sleeping))
        return;
    pthread_mutex_lock(&idle->lock);
    bool wake = weft_atomic_load_relaxed(&w->sleeping); /* under the lock */
    if (wake)
        take_off_sleepers(idle, i);
    pthread_mutex_unlock(&idle->lock);
    if (wake)
        unpark(idle, w);
}

bool weft__idle_start_search(weft__idle *idle)
{
    /* Relaxed: the CAS below re-checks. */
    uint32_t s = weft_atomic_load_relaxed(&idle->state);
    do {
        if ((s & SEARCHING_MASK) >= idle->max_searching)
            return false;
        /* Relaxed CAS: an increment (see the top); the check and the
         * increment are one step, so the bound holds exactly. */
    } while (!weft_atomic_cas_weak_relaxed(&idle->state, &s, s + 1));
    note_searching(idle, (s & SEARCHING_MASK) + 1);
    return true;
}

void weft__idle_stop_search(weft__idle *idle)
{
    /* SeqCst RMW: part of the state's total order (see the top). */
    uint32_t prev = weft_atomic_fetch_sub_seq_cst(&idle->state, 1);
    WEFT_ASSERT((prev & SEARCHING_MASK) > 0);
    if ((prev & SEARCHING_MASK) == 1)
        weft__idle_notify(idle); /* the last searcher found work: fan out */
}

bool weft__idle_sleep_begin(weft__idle *idle, unsigned i, bool was_searching)
{
    pthread_mutex_lock(&idle->lock);
    WEFT_ASSERT(idle->nsleepers < idle->nworkers);
    idle->slots[i].list_pos = idle->nsleepers;
    idle->sleepers[idle->nsleepers++] = i;
    /* Relaxed: ordered before the caller's queue re-reads by the fence
     * below. */
    weft_atomic_store_relaxed(&idle->slots[i].sleeping, true);
    /* SeqCst RMW: part of the state's total order (see the top). */
    uint32_t prev = weft_atomic_fetch_sub_seq_cst(&idle->state,
                                                  UNPARKED_ONE + (was_searching ? 1u : 0u));
    pthread_mutex_unlock(&idle->lock);
    /* SeqCst fence: our state/sleeping writes before the caller's queue
     * reads (pairs with the fences in notify / notify_worker). */
    weft_atomic_fence_seq_cst();
    return was_searching && (prev & SEARCHING_MASK) == 1;
}

bool weft__idle_sleep_end(weft__idle *idle, unsigned i)
{
    /* A waker that takes us off the sleeper list does so before unparking
     * us; a timer deadline or a timer insert does not: leave it ourselves. */
    pthread_mutex_lock(&idle->lock);
    /* Relaxed: under the lock. */
    if (weft_atomic_load_relaxed(&idle->slots[i].sleeping))
        take_off_sleepers(idle, i);
    bool searching = idle->slots[i].wake_searching;
    pthread_mutex_unlock(&idle->lock);
    return searching;
}
