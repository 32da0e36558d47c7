/* Task memory: per-runtime slabs with per-worker caches (see slab.h).
 *
 * Allocation order on a worker: its cache's free list, a batch of freed
 * blocks from the slab, the worker's own bump region, a new chunk. Frees on
 * a worker go to its cache; a full cache hands a batch to the slab. Tasks
 * migrate between workers, so one worker tends to free what another
 * allocates: the batches carry blocks back, one lock per BATCH blocks.
 * Threads that are not the runtime's workers (foreign spawners, the
 * shutdown thread, a foreign thread dropping the last reference) use the
 * slab's single-block list under its lock.
 *
 * Free-block layout: word 0 is the task state word and reads 0 (stored
 * atomically: a shutdown scan reads it); word 1 links blocks of a list;
 * word 2 links batches. Chunks are zeroed, so uncarved blocks read 0 too. */
#include "sched/slab.h"
#include "core/alloc.h"
#include "core/atomic.h"

#include <string.h>

struct weft__slab_chunk {
    struct weft__slab_chunk *next;
    uint32_t block_size;
    uint32_t nblocks;
    alignas(16) unsigned char blocks[];
};

/* A large block, on one of two lists (the slab's, or those a running scan
 * passed): `pprev` points at whatever points here (a list head or the
 * previous block's `next`), so a free unlinks it from either list without
 * knowing which. */
struct weft__slab_large {
    struct weft__slab_large *next;
    struct weft__slab_large **pprev;
    uint32_t size;
    alignas(16) unsigned char block[];
};

#define LINK(p) (((void **)(p))[1])
#define BATCH_LINK(p) (((void **)(p))[2])

static _Thread_local struct weft__slab_cache *tl_slab_cache;

static inline unsigned class_of(size_t size)
{
    return (unsigned)((size + WEFT__SLAB_GRAIN - 1u) / WEFT__SLAB_GRAIN - 1u);
}

static inline uint32_t class_size(unsigned cls)
{
    return (cls + 1u) * WEFT__SLAB_GRAIN;
}

static inline void mark_free(void *p)
{
    /* Relaxed: the reference count already reached zero with acq_rel; the
     * shutdown scan only needs to read 0 or a live state atomically. */
    weft_atomic_store_relaxed((_Atomic uint64_t *)p, 0);
}

void weft__slab_init(struct weft__slab *s)
{
    memset(s, 0, sizeof *s);
    weft__spin_init(&s->lock);
}

static void free_large_list(struct weft__slab_large *l)
{
    while (l) {
        struct weft__slab_large *next = l->next;
        weft__free(l);
        l = next;
    }
}

void weft__slab_fini(struct weft__slab *s)
{
    struct weft__slab_chunk *c = s->chunks;
    while (c) {
        struct weft__slab_chunk *next = c->next;
        weft__free(c);
        c = next;
    }
    /* None should be left (every task was freed), and no scan runs. */
    free_large_list(s->large);
    free_large_list(s->large_seen);
    s->chunks = NULL;
    s->large = NULL;
    s->large_seen = NULL;
}

/* A new zeroed chunk for class `cls`, linked into the slab. */
static struct weft__slab_chunk *new_chunk(struct weft__slab *s, unsigned cls)
{
    uint32_t bs = class_size(cls);
    struct weft__slab_chunk *c = weft__calloc(WEFT__SLAB_CHUNK);
    if (!c)
        return NULL;
    c->block_size = bs;
    c->nblocks = (uint32_t)((WEFT__SLAB_CHUNK - sizeof *c) / bs);
    weft__spin_lock(&s->lock);
    c->next = s->chunks;
    s->chunks = c;
    weft__spin_unlock(&s->lock);
    return c;
}

/* ---- per-worker caches ------------------------------------------------- */

void weft__slab_cache_init(struct weft__slab_cache *c, struct weft__slab *s)
{
    memset(c, 0, sizeof *c);
    c->slab = s;
}

void weft__slab_cache_bind(struct weft__slab_cache *c)
{
    tl_slab_cache = c;
}

static void *cache_alloc(struct weft__slab_cache *c, unsigned cls)
{
    struct weft__slab *s = c->slab;
    void *p = c->free[cls];
    if (p) {
        c->free[cls] = LINK(p);
        c->count[cls]--;
        return p;
    }
    weft__spin_lock(&s->lock);
    p = s->batches[cls];
    if (p)
        s->batches[cls] = BATCH_LINK(p);
    weft__spin_unlock(&s->lock);
    if (p) {
        c->free[cls] = LINK(p);
        c->count[cls] = WEFT__SLAB_BATCH - 1u;
        return p;
    }
    if (c->bump_left[cls] == 0) {
        struct weft__slab_chunk *ch = new_chunk(s, cls);
        if (!ch)
            return NULL;
        c->bump[cls] = ch->blocks;
        c->bump_left[cls] = ch->nblocks;
    }
    p = c->bump[cls];
    c->bump[cls] += class_size(cls);
    c->bump_left[cls]--;
    return p;
}

static void cache_free(struct weft__slab_cache *c, unsigned cls, void *p)
{
    if (c->count[cls] == WEFT__SLAB_CACHE_DEPTH) {
        /* Hand the oldest BATCH blocks to the slab, one lock for all. */
        void *b = c->free[cls], *last = b;
        for (unsigned i = 1; i < WEFT__SLAB_BATCH; i++)
            last = LINK(last);
        c->free[cls] = LINK(last);
        c->count[cls] -= WEFT__SLAB_BATCH;
        LINK(last) = NULL;
        struct weft__slab *s = c->slab;
        weft__spin_lock(&s->lock);
        BATCH_LINK(b) = s->batches[cls];
        s->batches[cls] = b;
        weft__spin_unlock(&s->lock);
    }
    LINK(p) = c->free[cls];
    c->free[cls] = p;
    c->count[cls]++;
}

void weft__slab_cache_flush(struct weft__slab_cache *c)
{
    struct weft__slab *s = c->slab;
    weft__spin_lock(&s->lock);
    for (unsigned cls = 0; cls < WEFT__SLAB_CLASSES; cls++) {
        void *p = c->free[cls];
        while (p) {
            void *next = LINK(p);
            LINK(p) = s->singles[cls];
            s->singles[cls] = p;
            p = next;
        }
        c->free[cls] = NULL;
        c->count[cls] = 0;
        c->bump_left[cls] = 0; /* the rest of the chunk stays zeroed */
    }
    weft__spin_unlock(&s->lock);
}

/* ---- threads without a cache --------------------------------------------- */

static void *shared_alloc(struct weft__slab *s, unsigned cls)
{
    for (;;) {
        weft__spin_lock(&s->lock);
        void *p = s->singles[cls];
        if (p) {
            s->singles[cls] = LINK(p);
        } else if ((p = s->batches[cls])) {
            s->batches[cls] = BATCH_LINK(p);
            s->singles[cls] = LINK(p);
        } else if (s->bump_left[cls] > 0) {
            p = s->bump[cls];
            s->bump[cls] += class_size(cls);
            s->bump_left[cls]--;
        }
        weft__spin_unlock(&s->lock);
        if (p)
            return p;
        struct weft__slab_chunk *ch = new_chunk(s, cls);
        if (!ch)
            return NULL;
        weft__spin_lock(&s->lock);
        if (s->bump_left[cls] == 0) {
            s->bump[cls] = ch->blocks;
            s->bump_left[cls] = ch->nblocks;
        }
        /* else: another thread installed one meanwhile; this chunk stays
         * zeroed and unused until shutdown (rare, bounded by threads). */
        weft__spin_unlock(&s->lock);
    }
}

static void shared_free(struct weft__slab *s, unsigned cls, void *p)
{
    weft__spin_lock(&s->lock);
    LINK(p) = s->singles[cls];
    s->singles[cls] = p;
    weft__spin_unlock(&s->lock);
}

/* ---- large blocks ----------------------------------------------------------- */

/* Both under the slab's lock. */
static void large_push(struct weft__slab_large **head, struct weft__slab_large *l)
{
    l->next = *head;
    if (l->next)
        l->next->pprev = &l->next;
    l->pprev = head;
    *head = l;
}

static void large_unlink(struct weft__slab_large *l)
{
    *l->pprev = l->next;
    if (l->next)
        l->next->pprev = l->pprev;
}

static void *large_alloc(struct weft__slab *s, size_t size, uint32_t *block_size)
{
    if (size > UINT32_MAX - sizeof(struct weft__slab_large))
        return NULL;
    struct weft__slab_large *l = weft__calloc(sizeof *l + size);
    if (!l)
        return NULL;
    l->size = (uint32_t)size;
    weft__spin_lock(&s->lock);
    large_push(&s->large, l);
    weft__spin_unlock(&s->lock);
    *block_size = (uint32_t)size;
    return l->block;
}

static void large_free(struct weft__slab *s, void *p)
{
    struct weft__slab_large *l =
        (struct weft__slab_large *)((char *)p - offsetof(struct weft__slab_large, block));
    weft__spin_lock(&s->lock);
    large_unlink(l);
    weft__spin_unlock(&s->lock);
    weft__free(l);
}

/* ---- entry points -------------------------------------------------------------- */

void *weft__slab_alloc(struct weft__slab *s, size_t size, uint32_t *block_size)
{
    if (size < WEFT__SLAB_MIN)
        size = WEFT__SLAB_MIN; /* room for the free-block words */
    if (size > WEFT__SLAB_MAX)
        return large_alloc(s, size, block_size);
    unsigned cls = class_of(size);
    *block_size = class_size(cls);
    struct weft__slab_cache *c = tl_slab_cache;
    if (c && c->slab == s)
        return cache_alloc(c, cls);
    return shared_alloc(s, cls);
}

void weft__slab_free(struct weft__slab *s, void *p, uint32_t block_size)
{
    mark_free(p);
    if (block_size > WEFT__SLAB_MAX || block_size % WEFT__SLAB_GRAIN != 0) {
        large_free(s, p);
        return;
    }
    unsigned cls = class_of(block_size);
    struct weft__slab_cache *c = tl_slab_cache;
    if (c && c->slab == s)
        cache_free(c, cls, p);
    else
        shared_free(s, cls, p);
}

static bool wanted(void *block, uint64_t skip)
{
    /* Acquire: a block allocated while the scan runs (a spawn racing
     * shutdown) is reported only with its contents, which its user
     * published with a release store of this word; a block freed meanwhile
     * reads 0 after its last reference was dropped (acq_rel), and the
     * callee re-reads with acquire. */
    uint64_t word = weft_atomic_load_acquire((_Atomic uint64_t *)block);
    return word != 0 && !(word & skip);
}

/* The chunk list as of now, to walk without the lock. Chunks are only ever
 * prepended, each with its fields written before it is linked under the
 * lock, and never freed before weft__slab_fini: a chunk allocated later is
 * not walked, and a block's first word can be read whatever happens to the
 * block meanwhile. */
static struct weft__slab_chunk *chunks_snapshot(struct weft__slab *s)
{
    weft__spin_lock(&s->lock);
    struct weft__slab_chunk *chunks = s->chunks;
    weft__spin_unlock(&s->lock);
    return chunks;
}

size_t weft__slab_scan(struct weft__slab *s, uint64_t skip,
                       void (*fn)(void *block, void *ctx), void *ctx)
{
    size_t looked = 0;
    for (struct weft__slab_chunk *c = chunks_snapshot(s); c; c = c->next) {
        for (uint32_t i = 0; i < c->nblocks; i++) {
            void *p = c->blocks + (size_t)i * c->block_size;
            looked++;
            if (wanted(p, skip))
                fn(p, ctx);
        }
    }
    /* Large blocks: `fn` may free any of them, so no pointer into the list
     * is kept across a call. Instead each block is moved, under the lock,
     * from the list to `large_seen` before its word is read, and the
     * next one is always the list's head: each block is looked at once. A
     * free unlinks a block from whichever list holds it; a block
     * allocated meanwhile lands at the head and is looked at too. */
    for (;;) {
        weft__spin_lock(&s->lock);
        struct weft__slab_large *l = s->large;
        if (!l) {
            /* In the same critical section, so no new block is lost: the
             * blocks seen become the list again. */
            s->large = s->large_seen;
            if (s->large)
                s->large->pprev = &s->large;
            s->large_seen = NULL;
            weft__spin_unlock(&s->lock);
            return looked;
        }
        large_unlink(l);
        large_push(&s->large_seen, l);
        bool want = wanted(l->block, skip);
        weft__spin_unlock(&s->lock);
        looked++;
        if (want)
            fn(l->block, ctx); /* stays allocated until then: see slab.h */
    }
}

/* ---- walking while in use (task dumps) ------------------------------------------ */

void weft__slab_walk(struct weft__slab *s, bool (*hold)(void *block, void *ctx),
                     void (*fn)(void *block, void *ctx), void *ctx)
{
    for (struct weft__slab_chunk *c = chunks_snapshot(s); c; c = c->next) {
        for (uint32_t i = 0; i < c->nblocks; i++) {
            void *p = c->blocks + (size_t)i * c->block_size;
            if (hold(p, ctx))
                fn(p, ctx);
        }
    }
    /* Large blocks are freed with their node, so the list is walked hand
     * over hand: under the lock, a block is held before the lock is let go
     * (large_free needs the lock, so a block seen under it is still
     * allocated), and the node after a held one is read before fn drops
     * that hold. */
    weft__spin_lock(&s->lock);
    struct weft__slab_large *l = s->large;
    while (l && !hold(l->block, ctx))
        l = l->next;
    weft__spin_unlock(&s->lock);
    while (l) {
        weft__spin_lock(&s->lock);
        struct weft__slab_large *next = l->next; /* l is held: still linked */
        while (next && !hold(next->block, ctx))
            next = next->next;
        weft__spin_unlock(&s->lock);
        fn(l->block, ctx);
        l = next;
    }
}

uint32_t weft__slab_large_size(const void *p)
{
    const struct weft__slab_large *l =
        (const void *)((const char *)p - offsetof(struct weft__slab_large, block));
    return l->size;
}
