/* Unit tests for sched/slab.c: task memory.
 *
 * The slab's contract with its user (slab.h): a block's first word is an
 * _Atomic uint64_t that reads 0 while the block is free and is never 0
 * while it is in use. The blocks here play tasks: the test writes a
 * non-zero mark into the first word of every block it holds and swaps it
 * back to 0 before freeing it, as a task's last reference drop does; the
 * second word keeps the block's size for the scan callbacks that free it.
 *
 * Every test runs on a fresh slab under the counting allocator, and the
 * teardown checks that weft__slab_fini returned every chunk and large
 * block. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic.h"
#include "sched/slab.h"
#include "support/check.h"
#include "support/counting_alloc.h"
#include "support/rng.h"
#include "support/sanitized.h"

#define GRAIN WEFT__SLAB_GRAIN
#define MAX WEFT__SLAB_MAX

/* What a test writes into a block it holds (16 bytes; the smallest block
 * is 32: a free block holds three words). */
struct block {
    _Atomic uint64_t word; /* the slab's state word; the test's mark */
    uint32_t size;         /* the block size to free it with */
};

/* A state-word bit the scans below are told to skip (a task's COMPLETE). */
#define SKIP_BIT (1ull << 63)

static struct weft__slab g_slab;

static int slab_setup(void **state)
{
    (void)state;
    async_failures_reset();
    if (counting_alloc_install() != 0)
        return -1;
    weft__slab_init(&g_slab);
    return 0;
}

static int slab_teardown(void **state)
{
    (void)state;
    weft__slab_cache_bind(NULL);
    weft__slab_fini(&g_slab);
    return counting_alloc_uninstall("by weft__slab_fini");
}

/* Allocations live in the counting allocator: chunks and large blocks. */
static long live_allocs(void)
{
    /* Acquire: frees may have run on threads the test has joined. */
    return weft_atomic_load_acquire(&g_live_allocs);
}

/* ---- holding blocks ------------------------------------------------------ */

/* Allocates `size` bytes, checks the slab's promises (aligned, first word
 * 0, block size a multiple of 16 that fits `size` — at least 32 — or
 * exactly `size` above MAX) and puts `mark` in the first word. NULL when
 * out of memory. */
static struct block *take(size_t size, uint64_t mark)
{
    uint32_t bs = 0;
    struct block *b = weft__slab_alloc(&g_slab, size, &bs);
    if (!b)
        return NULL;
    CHECK((uintptr_t)b % GRAIN == 0);
    CHECK(bs >= size);
    CHECK(size > MAX ? bs == size
                     : bs % GRAIN == 0 && (bs - size < GRAIN || bs == 2 * GRAIN));
    /* Relaxed: a block is handed out free; the swap checks no other
     * holder marked it since (exactly once). */
    uint64_t was = weft_atomic_swap_relaxed(&b->word, mark);
    CHECK(was == 0);
    b->size = bs;
    return b;
}

/* Checks the mark is still the holder's, unmarks the block and frees it. */
static void give_back(struct block *b, uint64_t mark)
{
    /* Relaxed: the slab's own lock (or the cache's single owner) orders the
     * free; the swap only checks nobody else wrote the word meanwhile. */
    uint64_t was = weft_atomic_swap_relaxed(&b->word, 0);
    CHECK(was == mark);
    weft__slab_free(&g_slab, b, b->size);
}

static uint64_t word_of(struct block *b)
{
    return weft_atomic_load_relaxed(&b->word);
}

static size_t index_of(struct block *const *set, size_t n, const void *p)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == p)
            return i;
    return n;
}

/* ---- allocation ---------------------------------------------------------- */

static void test_slab_alloc_rounds_up_to_16_and_returns_free_distinct_blocks(void **state)
{
    (void)state;
    static struct block *b[MAX + 1];
    /* Every size: aligned, rounded up to the grain, first word 0 (take
     * checks), and the whole block is the caller's to write. */
    for (size_t size = 1; size <= MAX; size++) {
        b[size] = take(size, size);
        assert_non_null(b[size]);
        memset((char *)b[size] + sizeof *b[size], 0xa5, b[size]->size - sizeof *b[size]);
        size_t want = (size + GRAIN - 1) / GRAIN * GRAIN;
        assert_int_equal(b[size]->size, want < 2 * GRAIN ? 2 * GRAIN : want);
    }
    assert_no_async_failures();
    /* No two live blocks overlap. */
    for (size_t i = 1; i <= MAX; i++) {
        for (size_t j = i + 1; j <= MAX; j++) {
            char *x = (char *)b[i], *y = (char *)b[j];
            assert_true(x + b[i]->size <= y || y + b[j]->size <= x);
        }
    }
    /* Freed and taken again (dirty past the first word): the first word
     * reads 0 once more. Half are freed with their mark still in place:
     * weft__slab_free clears it itself. */
    for (size_t size = 1; size <= MAX; size++) {
        if (size % 2)
            give_back(b[size], size);
        else
            weft__slab_free(&g_slab, b[size], b[size]->size);
    }
    for (size_t size = 1; size <= MAX; size++)
        assert_non_null(b[size] = take(size, size));
    assert_no_async_failures();
}

static void test_slab_freed_block_is_reused_without_a_cache(void **state)
{
    (void)state;
    struct block *b[8];
    for (unsigned i = 0; i < 8; i++)
        assert_non_null(b[i] = take(48, i + 1));
    long live = live_allocs();
    for (unsigned i = 0; i < 8; i++)
        give_back(b[i], i + 1);
    /* The same eight blocks come back, and no memory is asked for. */
    for (unsigned i = 0; i < 8; i++) {
        struct block *again = take(40, 100 + i);
        assert_true(index_of(b, 8, again) < 8);
    }
    assert_int_equal(live_allocs(), live);
    /* Another size class does not get them. */
    assert_true(index_of(b, 8, take(64, 200)) == 8);
    assert_no_async_failures();
}

static void test_slab_freed_block_is_reused_through_a_bound_cache(void **state)
{
    (void)state;
    struct weft__slab_cache c;
    weft__slab_cache_init(&c, &g_slab);
    weft__slab_cache_bind(&c);
    struct block *b = take(100, 1);
    assert_non_null(b);
    long live = live_allocs();
    give_back(b, 1);
    assert_ptr_equal(take(112, 2), b);
    assert_int_equal(live_allocs(), live);
    /* A cache bound for another slab is not used for this one. */
    struct weft__slab other;
    weft__slab_init(&other);
    struct weft__slab_cache oc;
    weft__slab_cache_init(&oc, &other);
    weft__slab_cache_bind(&oc);
    give_back(b, 2);
    weft__slab_cache_bind(NULL);
    assert_ptr_equal(take(100, 3), b);
    weft__slab_fini(&other);
    assert_no_async_failures();
}

/* A cache keeps at most CACHE_DEPTH free blocks; past that it hands a
 * batch back to the slab, where threads without a cache find it, and
 * keeps the rest.
 * Batches link through a free block's third word, so the smallest block
 * (a 16-byte request) must have one: a batch handed over must not touch
 * the next block's first word. */
static void test_slab_full_cache_hands_a_batch_to_threads_without_one(void **state)
{
    (void)state;
    enum { N = WEFT__SLAB_CACHE_DEPTH + 1 };
    static struct block *b[N], *got[N];
    struct weft__slab_cache c;
    weft__slab_cache_init(&c, &g_slab);
    weft__slab_cache_bind(&c);
    for (unsigned i = 0; i < N; i++)
        assert_non_null(b[i] = take(16, i + 1));
    for (unsigned i = 0; i < N; i++)
        give_back(b[i], i + 1);
    long live = live_allocs();
    /* A batch without the cache, the rest through it: each of the freed
     * blocks once, and no new memory. */
    for (unsigned i = 0; i < N; i++) {
        weft__slab_cache_bind(i < WEFT__SLAB_BATCH ? NULL : &c);
        got[i] = take(32, 1000 + i);
        assert_true(index_of(b, N, got[i]) < N);
        assert_true(index_of(got, i, got[i]) == i);
    }
    assert_int_equal(live_allocs(), live);
    /* All of them are in use: the next block is new. */
    weft__slab_cache_bind(NULL);
    assert_true(index_of(b, N, take(32, 2000)) == N);
    assert_no_async_failures();
}

/* ---- large blocks -------------------------------------------------------- */

static void test_slab_blocks_above_max_are_allocated_alone_and_freed(void **state)
{
    (void)state;
    /* MAX itself is a size class: two blocks, at most one chunk. */
    long live = live_allocs();
    assert_non_null(take(MAX, 1));
    assert_non_null(take(MAX, 2));
    assert_true(live_allocs() <= live + 1);
    /* Above it, one allocation per block, of exactly the size asked. */
    live = live_allocs();
    struct block *l1 = take(MAX + 1, 3);
    struct block *l2 = take(4096, 4);
    assert_non_null(l1);
    assert_non_null(l2);
    assert_int_equal(l1->size, MAX + 1);
    assert_int_equal(l2->size, 4096);
    memset((char *)l2 + sizeof *l2, 0x5a, 4096 - sizeof *l2);
    assert_int_equal(live_allocs(), live + 2);
    give_back(l1, 3);
    assert_int_equal(live_allocs(), live + 1);
    /* A bound cache does not keep large blocks either. */
    struct weft__slab_cache c;
    weft__slab_cache_init(&c, &g_slab);
    weft__slab_cache_bind(&c);
    give_back(l2, 4);
    assert_int_equal(live_allocs(), live);
    struct block *l3 = take(1000, 5);
    assert_non_null(l3);
    assert_int_equal(live_allocs(), live + 1);
    give_back(l3, 5);
    assert_int_equal(live_allocs(), live);
    assert_no_async_failures();
}

/* ---- the shutdown scan --------------------------------------------------- */

/* Blocks of every kind a scan walks: three size classes and large. */
static const size_t scan_sizes[] = { 16, 100, MAX, MAX + 16, 3000 };
#define NSIZES (sizeof scan_sizes / sizeof scan_sizes[0])
#define PER_SIZE 40u
#define NSCAN (NSIZES * PER_SIZE)

static struct block *g_scan_blocks[NSCAN];
static unsigned g_visits[NSCAN];
static unsigned g_stray_visits; /* of blocks the test does not hold */
static unsigned g_all_visits;

static void reset_visits(void)
{
    memset(g_scan_blocks, 0, sizeof g_scan_blocks);
    memset(g_visits, 0, sizeof g_visits);
    g_stray_visits = 0;
    g_all_visits = 0;
}

static void note_visit(void *p)
{
    size_t i = index_of(g_scan_blocks, NSCAN, p);
    if (i < NSCAN)
        g_visits[i]++;
    else
        g_stray_visits++;
    g_all_visits++;
}

/* Leaves the block with the skip bit, as cancelling a task completes it. */
static void visit_and_skip(void *p, void *ctx)
{
    (void)ctx;
    note_visit(p);
    struct block *b = p;
    /* Relaxed: the scan runs on this thread. */
    if (weft_atomic_fetch_or_relaxed(&b->word, SKIP_BIT) & SKIP_BIT) {
        /* The scan should have skipped it. Zero ends the scan's retries
         * of a large block; the visit counts report the failure. */
        weft_atomic_store_relaxed(&b->word, 0);
    }
}

/* Frees the block it is given, as dropping a cancelled task's last
 * reference does. */
static void visit_and_free(void *p, void *ctx)
{
    (void)ctx;
    note_visit(p);
    struct block *b = p;
    give_back(b, word_of(b));
}

/* Takes PER_SIZE blocks of each size; block i is marked i + 1. */
static void take_scan_blocks(void)
{
    reset_visits();
    for (size_t i = 0; i < NSCAN; i++)
        assert_non_null(g_scan_blocks[i] = take(scan_sizes[i / PER_SIZE], i + 1));
}

static void test_slab_scan_visits_exactly_the_live_blocks_without_a_skip_bit(void **state)
{
    (void)state;
    take_scan_blocks();
    /* Of each run of three blocks: one stays live, one is freed, one
     * already has the skip bit. */
    for (size_t i = 0; i < NSCAN; i++) {
        if (i % 3 == 1)
            give_back(g_scan_blocks[i], i + 1);
        else if (i % 3 == 2)
            weft_atomic_fetch_or_relaxed(&g_scan_blocks[i]->word, SKIP_BIT);
    }
    (void)weft__slab_scan(&g_slab, SKIP_BIT, visit_and_skip, NULL);
    for (size_t i = 0; i < NSCAN; i++)
        assert_int_equal(g_visits[i], i % 3 == 0 ? 1 : 0);
    assert_int_equal(g_stray_visits, 0);
    /* Now every block is free or skipped: another scan visits none. */
    (void)weft__slab_scan(&g_slab, SKIP_BIT, visit_and_skip, NULL);
    for (size_t i = 0; i < NSCAN; i++)
        assert_int_equal(g_visits[i], i % 3 == 0 ? 1 : 0);
    assert_int_equal(g_stray_visits, 0);
    assert_no_async_failures();
}

static void test_slab_scan_tolerates_the_callback_freeing_its_block(void **state)
{
    (void)state;
    long live = live_allocs();
    take_scan_blocks();
    (void)weft__slab_scan(&g_slab, SKIP_BIT, visit_and_free, NULL);
    for (size_t i = 0; i < NSCAN; i++)
        assert_int_equal(g_visits[i], 1);
    assert_int_equal(g_stray_visits, 0);
    assert_no_async_failures();
    /* Every large block went back; only the classes' chunks stay. */
    assert_int_equal(live_allocs(), live + 3);
    (void)weft__slab_scan(&g_slab, SKIP_BIT, visit_and_free, NULL);
    for (size_t i = 0; i < NSCAN; i++)
        assert_int_equal(g_visits[i], 1);
    assert_int_equal(g_stray_visits, 0);
}

/* The scan of large blocks is linear: each block is looked at once, also
 * when the callback leaves every block in place (a cancelled task that a
 * join handle still holds is COMPLETE, not freed). Counted, not timed. */
#define NLARGE 2000u

static struct block *g_large[NLARGE];
static unsigned g_large_visits[NLARGE];
static unsigned g_large_stray;

static void reset_large(void)
{
    memset(g_large, 0, sizeof g_large);
    memset(g_large_visits, 0, sizeof g_large_visits);
    g_large_stray = 0;
}

static void note_large_visit(void *p)
{
    size_t i = index_of(g_large, NLARGE, p);
    if (i < NLARGE)
        g_large_visits[i]++;
    else
        g_large_stray++;
}

static void visit_large_and_skip(void *p, void *ctx)
{
    (void)ctx;
    note_large_visit(p);
    /* Relaxed: the scan runs on this thread. */
    weft_atomic_fetch_or_relaxed(&((struct block *)p)->word, SKIP_BIT);
}

static void test_slab_scan_looks_at_each_large_block_once(void **state)
{
    (void)state;
    reset_large();
    for (size_t i = 0; i < NLARGE; i++)
        assert_non_null(g_large[i] = take(MAX + 16, i + 1));
    size_t looked = weft__slab_scan(&g_slab, SKIP_BIT, visit_large_and_skip, NULL);
    for (size_t i = 0; i < NLARGE; i++)
        assert_int_equal(g_large_visits[i], 1);
    assert_int_equal(g_large_stray, 0);
    /* No chunk exists, so only the large blocks were looked at: a scan
     * that went back to the head after each call looks at n(n+1)/2. */
    print_message("    %zu blocks looked at for %u large blocks\n", looked, NLARGE);
    assert_true(looked <= 2u * NLARGE);
    /* All are skipped now; they are all still on the list (for the next
     * scan and for fini), and a scan looks at each once more. */
    looked = weft__slab_scan(&g_slab, SKIP_BIT, visit_large_and_skip, NULL);
    assert_int_equal(looked, NLARGE);
    for (size_t i = 0; i < NLARGE; i++)
        assert_int_equal(g_large_visits[i], 1);
    assert_no_async_failures();
}

/* The callback frees blocks other than its own (dropping a cancelled
 * task's future may drop the last reference of another task) and
 * allocates new ones (a spawn racing shutdown): each block is still
 * looked at once at most, a freed one never after its free, and blocks
 * allocated meanwhile stay on the list for the next scan. */
#define NEW_DURING_SCAN 16u

static unsigned g_large_calls;

static void visit_large_free_partner_and_allocate(void *p, void *ctx)
{
    (void)ctx;
    note_large_visit(p);
    size_t i = index_of(g_large, NLARGE, p);
    if (i >= NLARGE)
        return;
    weft_atomic_fetch_or_relaxed(&g_large[i]->word, SKIP_BIT);
    size_t partner = i ^ 1u;
    if (partner < NLARGE / 2 && g_large[partner] && g_large_visits[partner] == 0) {
        give_back(g_large[partner], partner + 1);
        g_large[partner] = NULL;
    }
    /* While the first half is scanned, blocks for the second half come
     * into being. */
    if (g_large_calls++ < NEW_DURING_SCAN)
        CHECK((g_large[NLARGE / 2 + g_large_calls - 1] =
                   take(MAX + 32, NLARGE + g_large_calls)) != NULL);
}

static void test_slab_scan_of_large_blocks_survives_frees_and_allocations_in_the_callback(void **state)
{
    (void)state;
    reset_large();
    g_large_calls = 0;
    for (size_t i = 0; i < NLARGE / 2; i++)
        assert_non_null(g_large[i] = take(MAX + 16, i + 1));
    size_t looked = weft__slab_scan(&g_slab, SKIP_BIT, visit_large_free_partner_and_allocate, NULL);
    assert_int_equal(g_large_stray, 0);
    /* Of each pair, one was visited and freed the other. */
    for (size_t i = 0; i < NLARGE / 2; i += 2)
        assert_int_equal(g_large_visits[i] + g_large_visits[i + 1], 1);
    for (size_t i = NLARGE / 2; i < NLARGE; i++)
        assert_true(g_large_visits[i] <= 1);
    assert_true(looked <= NLARGE / 2 + NEW_DURING_SCAN);
    /* The blocks allocated during the scan are on the list: the next scan
     * visits those it did not (the others are skipped now). */
    looked = weft__slab_scan(&g_slab, SKIP_BIT, visit_large_and_skip, NULL);
    assert_int_equal(looked, NLARGE / 4 + NEW_DURING_SCAN);
    for (size_t i = NLARGE / 2; i < NLARGE / 2 + NEW_DURING_SCAN; i++)
        assert_int_equal(g_large_visits[i], 1);
    assert_int_equal(g_large_stray, 0);
    assert_no_async_failures();
}

/* ---- caches and threads -------------------------------------------------- */

#define HANDED 10u

struct handover {
    struct weft__slab_cache cache;
    struct block *b[HANDED];
};

/* A worker's life: binds its cache, takes blocks, frees them (into its
 * cache), and stops. */
static void *cache_owner(void *arg)
{
    struct handover *h = arg;
    weft__slab_cache_bind(&h->cache);
    for (unsigned i = 0; i < HANDED; i++) {
        h->b[i] = take(64, i + 1);
        CHECK(h->b[i] != NULL);
    }
    for (unsigned i = 0; i < HANDED; i++)
        if (h->b[i])
            give_back(h->b[i], i + 1);
    weft__slab_cache_bind(NULL);
    return NULL;
}

static void test_slab_cache_flush_hands_blocks_to_a_thread_without_a_cache(void **state)
{
    (void)state;
    struct handover h;
    weft__slab_cache_init(&h.cache, &g_slab);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cache_owner, &h), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_no_async_failures();
    weft__slab_cache_flush(&h.cache);
    long live = live_allocs();
    /* This thread has no cache: it gets the blocks the worker freed. */
    struct block *got[HANDED];
    for (unsigned i = 0; i < HANDED; i++) {
        got[i] = take(64, 100 + i);
        assert_true(index_of(h.b, HANDED, got[i]) < HANDED);
        assert_true(index_of(got, i, got[i]) == i);
    }
    assert_int_equal(live_allocs(), live);
    assert_no_async_failures();
}

/* Two worker-like threads with caches and one without take and free blocks
 * of random sizes in three classes from 32 bytes (see batches above; and
 * some large). Many frees go through
 * a shared pool, so a block is often freed by another thread than took it,
 * as a migrated task is: the first thread mostly hands its blocks to the
 * pool, the second mostly frees the pool's, so one cache keeps running dry
 * and the other full, and blocks travel between them in batches. Every
 * block is marked with a value unique to its holding: take and give_back
 * check a block is never handed out while another holder has it. */
#ifdef WEFT_TEST_SANITIZED
#define CONC_OPS 50000u
#else
#define CONC_OPS 1000000u
#endif
#define CONC_THREADS 3u
#define HELD 64u
#define POOL 256u

struct conc_pool {
    pthread_mutex_t lock;
    unsigned n;
    struct block *b[POOL];
    uint64_t mark[POOL];
};

struct conc_thread {
    struct conc_pool *pool;
    struct weft__slab_cache cache;
    bool cached;
    unsigned id;
    unsigned put, get; /* of 4 frees: to the pool, from the pool */
};

/* Hands (b, mark) to the pool; false when it is full. */
static bool pool_put(struct conc_pool *p, struct block *b, uint64_t mark)
{
    pthread_mutex_lock(&p->lock);
    bool room = p->n < POOL;
    if (room) {
        p->b[p->n] = b;
        p->mark[p->n++] = mark;
    }
    pthread_mutex_unlock(&p->lock);
    return room;
}

static struct block *pool_get(struct conc_pool *p, uint64_t *mark)
{
    struct block *b = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->n > 0) {
        b = p->b[--p->n];
        *mark = p->mark[p->n];
    }
    pthread_mutex_unlock(&p->lock);
    return b;
}

static size_t random_size(uint64_t *rng)
{
    uint32_t r = rng_next32(rng);
    if (r % 32 == 0)
        return MAX + 1 + r / 32 % 2048; /* large */
    return GRAIN + 1 + r / 32 % (3 * GRAIN);
}

static void *conc_main(void *arg)
{
    struct conc_thread *t = arg;
    weft__slab_cache_bind(t->cached ? &t->cache : NULL);
    uint64_t rng = rng_seed(t->id);
    struct block *held[HELD];
    uint64_t mark[HELD];
    unsigned n = 0;
    uint64_t next_mark = (uint64_t)(t->id + 1) << 40;
    for (unsigned op = 0; op < CONC_OPS; op++) {
        uint32_t r = rng_next32(&rng);
        if (n < HELD && (n == 0 || r % 2 == 0)) {
            struct block *b = take(random_size(&rng), ++next_mark);
            CHECK(b != NULL);
            if (b) {
                held[n] = b;
                mark[n++] = next_mark;
            }
            continue;
        }
        unsigned way = r / 2 % 4;
        if (way < t->put && n > 0 && pool_put(t->pool, held[n - 1], mark[n - 1])) {
            n--;
        } else if (way >= 4 - t->get) {
            uint64_t m;
            struct block *b = pool_get(t->pool, &m);
            if (b)
                give_back(b, m);
        } else if (n > 0) {
            unsigned i = r / 8 % n;
            give_back(held[i], mark[i]);
            held[i] = held[--n];
            mark[i] = mark[n];
        }
    }
    while (n > 0) {
        n--;
        give_back(held[n], mark[n]);
    }
    weft__slab_cache_bind(NULL);
    return NULL;
}

static void test_slab_concurrent_alloc_and_free_hand_out_each_block_once(void **state)
{
    (void)state;
    static struct conc_pool pool;
    pool.n = 0;
    assert_int_equal(pthread_mutex_init(&pool.lock, NULL), 0);
    static struct conc_thread t[CONC_THREADS];
    pthread_t th[CONC_THREADS];
    for (unsigned i = 0; i < CONC_THREADS; i++) {
        static const unsigned put[] = { 3, 0, 1 }, get[] = { 0, 3, 1 };
        t[i] = (struct conc_thread){
            .pool = &pool, .cached = i < 2, .id = i, .put = put[i], .get = get[i],
        };
        weft__slab_cache_init(&t[i].cache, &g_slab);
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &t[i]), 0);
    }
    for (unsigned i = 0; i < CONC_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    uint64_t m;
    for (struct block *b; (b = pool_get(&pool, &m));)
        give_back(b, m);
    assert_no_async_failures();
    for (unsigned i = 0; i < CONC_THREADS; i++)
        weft__slab_cache_flush(&t[i].cache);
    /* Every block is free again: a scan finds none. */
    reset_visits();
    (void)weft__slab_scan(&g_slab, SKIP_BIT, visit_and_skip, NULL);
    assert_int_equal(g_all_visits, 0);
    assert_int_equal(pthread_mutex_destroy(&pool.lock), 0);
}

/* ---- running out of memory ----------------------------------------------- */

static _Atomic int g_out_of_memory;
static _Atomic long g_alloc_requests;

/* count_alloc, or NULL while g_out_of_memory is set. */
static void *failing_alloc(size_t size, void *ctx)
{
    /* Relaxed: set and read on the test thread. */
    weft_atomic_fetch_add_relaxed(&g_alloc_requests, 1);
    if (weft_atomic_load_relaxed(&g_out_of_memory))
        return NULL;
    return count_alloc(size, ctx);
}

static void test_slab_alloc_returns_null_without_leaking_when_memory_runs_out(void **state)
{
    (void)state;
    weft_allocator a = { failing_alloc, count_free, NULL };
    assert_int_equal(weft_set_allocator(&a), 0);
    struct block *carved = take(48, 1); /* the 48-byte class has a chunk */
    assert_non_null(carved);
    struct weft__slab_cache c;
    weft__slab_cache_init(&c, &g_slab);
    long live = live_allocs();
    weft_atomic_store_relaxed(&g_out_of_memory, 1);
    /* A class without a chunk, through the slab and through a cache, and
     * a large block: NULL, and nothing was kept. */
    uint32_t bs;
    assert_null(weft__slab_alloc(&g_slab, 32, &bs));
    assert_null(weft__slab_alloc(&g_slab, MAX + 1, &bs));
    weft__slab_cache_bind(&c);
    assert_null(weft__slab_alloc(&g_slab, 32, &bs));
    assert_null(weft__slab_alloc(&g_slab, 4096, &bs));
    weft__slab_cache_bind(NULL);
    assert_int_equal(live_allocs(), live);
    /* A size whose block size would not fit 32 bits is refused without
     * asking the allocator. */
    long requests = weft_atomic_load_relaxed(&g_alloc_requests);
    assert_null(weft__slab_alloc(&g_slab, UINT32_MAX, &bs));
    assert_int_equal(weft_atomic_load_relaxed(&g_alloc_requests), requests);
    /* The class that has a chunk still carves from it. */
    assert_non_null(take(48, 2));
    assert_int_equal(live_allocs(), live);
    /* Memory back: the same requests succeed. */
    weft_atomic_store_relaxed(&g_out_of_memory, 0);
    assert_non_null(take(32, 3));
    assert_non_null(take(MAX + 1, 4));
    weft__slab_cache_bind(&c);
    assert_non_null(take(32, 5));
    assert_no_async_failures();
}

/* ---- fini ---------------------------------------------------------------- */

static void test_slab_fini_frees_every_chunk_and_large_block(void **state)
{
    (void)state;
    /* Enough 16-byte blocks for several chunks, blocks a cache carved, and
     * large blocks, some of them freed. */
    for (unsigned i = 0; i < 3 * WEFT__SLAB_CHUNK / 16; i++)
        assert_non_null(take(16, i + 1));
    struct weft__slab_cache c;
    weft__slab_cache_init(&c, &g_slab);
    weft__slab_cache_bind(&c);
    assert_non_null(take(200, 1));
    struct block *l = take(MAX + 1, 2);
    assert_non_null(l);
    assert_non_null(take(MAX + 100, 3));
    weft__slab_cache_bind(NULL);
    assert_non_null(take(10000, 4));
    give_back(l, 2);
    assert_true(live_allocs() >= 4 + 1 + 2);
    weft__slab_fini(&g_slab);
    assert_int_equal(live_allocs(), 0);
    assert_no_async_failures();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, slab_setup, slab_teardown)
        T(test_slab_alloc_rounds_up_to_16_and_returns_free_distinct_blocks),
        T(test_slab_freed_block_is_reused_without_a_cache),
        T(test_slab_freed_block_is_reused_through_a_bound_cache),
        T(test_slab_full_cache_hands_a_batch_to_threads_without_one),
        T(test_slab_blocks_above_max_are_allocated_alone_and_freed),
        T(test_slab_scan_visits_exactly_the_live_blocks_without_a_skip_bit),
        T(test_slab_scan_tolerates_the_callback_freeing_its_block),
        T(test_slab_scan_looks_at_each_large_block_once),
        T(test_slab_scan_of_large_blocks_survives_frees_and_allocations_in_the_callback),
        T(test_slab_cache_flush_hands_blocks_to_a_thread_without_a_cache),
        T(test_slab_concurrent_alloc_and_free_hand_out_each_block_once),
        T(test_slab_alloc_returns_null_without_leaking_when_memory_runs_out),
        T(test_slab_fini_frees_every_chunk_and_large_block),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
