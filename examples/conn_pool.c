/* weft-pool: a bounded connection pool with a shared cache and a shutdown
 * token — the sync primitives a server reaches for first.
 *
 *  - The pool: POOL_SIZE connections. A semaphore of POOL_SIZE permits
 *    bounds how many requests hold one at a time (the rest wait in FIFO
 *    order, allocating nothing); a permit guarantees a free connection,
 *    which the request then claims in a bitmask.
 *  - The cache: a reader-writer lock. Every request reads it first; a miss
 *    "queries the backend" over a connection (a 2 ms sleep stands in for
 *    the round trip) and writes the answer in.
 *  - Shutdown: a cancellation token. Requests that start after it was
 *    cancelled give up at once; a janitor task waits for it and reports.
 *  - A wait group counts the requests in flight; the main thread waits
 *    for it, then cancels the token.
 *
 * Every wait here is a future that a coroutine awaits, so a worker is
 * never blocked, and dropping any of them gives back what it was given
 * (docs/cancel-safety.md). What the coroutine itself holds across an
 * await — a permit, a connection, its count in the wait group — its own
 * drop gives back (request_drop), so an abort or a runtime shutdown in the
 * middle of a request loses nothing either. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <weft/weft.h>

#define POOL_SIZE 4
#define REQUESTS 200
#define KEYS 16 /* requests ask for KEYS distinct keys: most of them hit */

typedef struct app {
    weft_semaphore pool_permits;
    atomic_uint free_conns; /* bit i set: connection i is free */

    weft_rwlock cache_lock;
    uint64_t cache[KEYS]; /* under cache_lock; 0: not cached */
    unsigned misses, queries_per_conn[POOL_SIZE]; /* under cache_lock */

    weft_cancel_token shutdown;
    weft_wait_group in_flight;
} app;

/* Claim a free connection: there is one, since the caller holds a permit. */
static int conn_claim(app *a)
{
    unsigned free = atomic_load(&a->free_conns);
    for (;;) {
        unsigned bit = free & -free; /* the lowest free one */
        if (atomic_compare_exchange_weak(&a->free_conns, &free, free & ~bit))
            return __builtin_ctz(bit);
    }
}

static void conn_return(app *a, int conn)
{
    atomic_fetch_or(&a->free_conns, 1u << conn);
}

/* Calls that fail only when misused (an unlock without the lock, a
 * release past the maximum) still return an error code, which weft asks
 * callers to look at: here it would be a bug in this program. */
static void expect_ok(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "pool: %s: %s\n", what, weft_strerror(rc));
}

/* What the backend would answer. */
static uint64_t backend_answer(unsigned key)
{
    return (key + 1) * 0x9E3779B97F4A7C15u | 1u;
}

/* One request: look the key up in the cache; on a miss, take a permit and
 * a connection, ask the backend, give both back, cache the answer. */
typedef struct request {
    weft_future base;
    weft_co co;
    app *a;
    unsigned key;
    weft_duration arrives; /* after the start: requests come over time */
    int conn;        /* held while >= 0 */
    int used;        /* the connection the round trip went over */
    bool has_permit; /* held */
    bool counted;    /* still counted in a->in_flight */
    int status;
    uint64_t value;
    union { /* one wait at a time */
        weft_rwlock_read read;
        weft_rwlock_write write;
        weft_semaphore_acquire permit;
        weft_sleep arrival, round_trip;
    } w;
    weft_rwlock_read_guard rg;
    weft_rwlock_write_guard wg;
} request;

/* Give the connection and the permit back, if held. */
static void pool_give_back(request *self)
{
    if (self->conn >= 0)
        conn_return(self->a, self->conn);
    self->conn = -1;
    if (self->has_permit)
        expect_ok(weft_semaphore_release(&self->a->pool_permits, 1), "release");
    self->has_permit = false;
}

/* Give back everything the request holds; from its end and its drop. */
static void request_release(request *self)
{
    pool_give_back(self);
    if (self->counted)
        expect_ok(weft_wait_group_done(&self->a->in_flight), "done");
    self->counted = false;
}

/* Dropped before its end (aborted, or cancelled by a runtime shutdown):
 * the awaited child goes (weft_co_drop: a queued lock or acquire leaves
 * its queue), and so does everything the request held. No await ever
 * holds a lock guard, so there is none to undo here. */
static void request_drop(weft_future *f)
{
    request *self = (request *)f;
    weft_co_drop(&self->co);
    request_release(self);
}

WEFT_ASYNC_FN_VOID_WITH_DROP(request)
{
    app *a = self->a;
    WEFT_FN_BEGIN;
    weft_sleep_init(&self->w.arrival, self->arrives);
    WEFT_FN_AWAIT(&self->w.arrival, NULL);
    if (weft_cancel_token_is_cancelled(&a->shutdown))
        goto done;

    if (weft_rwlock_read_init(&self->w.read, &a->cache_lock) != 0)
        goto done;
    WEFT_FN_AWAIT(&self->w.read, &self->rg);
    self->value = a->cache[self->key];
    expect_ok(weft_rwlock_read_unlock(&self->rg), "read unlock");
    if (self->value)
        goto done; /* a hit */

    /* A miss: a permit (at most POOL_SIZE requests go further at once),
     * then a connection, one round trip, and both back. */
    weft_semaphore_acquire_init(&self->w.permit, &a->pool_permits, 1);
    WEFT_FN_AWAIT(&self->w.permit, &self->status);
    if (self->status != 0)
        goto done; /* -EPIPE: the pool was closed */
    self->has_permit = true;
    self->conn = self->used = conn_claim(a);

    weft_sleep_init(&self->w.round_trip, WEFT_MS(2));
    WEFT_FN_AWAIT(&self->w.round_trip, NULL);
    self->value = backend_answer(self->key);
    pool_give_back(self);

    if (weft_rwlock_write_init(&self->w.write, &a->cache_lock) != 0)
        goto done;
    WEFT_FN_AWAIT(&self->w.write, &self->wg);
    if (a->cache[self->key] == 0)
        a->cache[self->key] = self->value;
    a->misses++;
    a->queries_per_conn[self->used]++;
    expect_ok(weft_rwlock_write_unlock(&self->wg), "write unlock");
done:
    request_release(self);
    WEFT_FN_END;
}

/* Waits for the shutdown token, then reports what the cache saw. */
typedef struct janitor {
    weft_future base;
    weft_co co;
    app *a;
    weft_cancel_token_cancelled cancelled;
} janitor;

WEFT_ASYNC_FN_VOID(janitor)
{
    WEFT_FN_BEGIN;
    weft_cancel_token_cancelled_init(&self->cancelled, &self->a->shutdown);
    WEFT_FN_AWAIT(&self->cancelled, NULL);
    printf("janitor: shutting down; %u misses went to the backend over %d connections:",
           self->a->misses, POOL_SIZE);
    for (int i = 0; i < POOL_SIZE; i++)
        printf(" %u", self->a->queries_per_conn[i]);
    printf("\n");
    WEFT_FN_END;
}

int main(void)
{
    static app a;
    atomic_init(&a.free_conns, (1u << POOL_SIZE) - 1u);
    weft_rwlock_init(&a.cache_lock);
    int rc = weft_semaphore_init(&a.pool_permits, POOL_SIZE);
    if (rc == 0)
        rc = weft_cancel_token_init(&a.shutdown);
    if (rc == 0)
        rc = weft_wait_group_init(&a.in_flight);
    weft_rt *rt = NULL;
    if (rc == 0)
        rc = weft_rt_new(&rt, NULL);
    if (rc != 0) {
        fprintf(stderr, "pool: %s\n", weft_strerror(rc));
        return 1;
    }

    weft_join janitor_join;
    rc = WEFT_SPAWN(rt, &janitor_join, &(janitor){ WEFT_FN_INIT(janitor, WEFT_F_SEND), .a = &a });
    for (unsigned i = 0; rc == 0 && i < REQUESTS; i++) {
        /* Counted before it is spawned, so the wait below cannot finish
         * early; the request's end (or its drop) takes itself off. */
        if ((rc = weft_wait_group_add(&a.in_flight, 1)) != 0)
            break;
        rc = WEFT_SPAWN(rt, NULL, &(request){ WEFT_FN_INIT(request, WEFT_F_SEND), .a = &a,
                                              .key = (i * 7u) % KEYS,
                                              .arrives = WEFT_US(250 * i), .conn = -1,
                                              .counted = true });
        if (rc != 0)
            expect_ok(weft_wait_group_done(&a.in_flight), "done"); /* it never started */
    }

    /* This thread runs no tasks, so it may block until the requests are
     * done; then shutdown, and wait for the janitor's report. */
    int wait = weft_wait_group_wait_blocking(&a.in_flight);
    if (rc == 0)
        rc = wait;
    expect_ok(weft_cancel_token_cancel(&a.shutdown), "cancel");
    wait = weft_block_on(rt, &janitor_join.base, NULL, 0);
    if (rc == 0)
        rc = wait;
    printf("pool: %d requests, %u went to the backend, %u cache hits; %d permits and "
           "connections %#x free\n",
           REQUESTS, a.misses, REQUESTS - a.misses, (int)weft_semaphore_available(&a.pool_permits),
           atomic_load(&a.free_conns));

    weft_rt_shutdown(rt);
    weft_wait_group_fini(&a.in_flight);
    weft_cancel_token_fini(&a.shutdown);
    weft_rwlock_fini(&a.cache_lock);
    weft_semaphore_fini(&a.pool_permits);
    if (rc != 0)
        fprintf(stderr, "pool: %s\n", weft_strerror(rc));
    return rc == 0 ? 0 : 1;
}
