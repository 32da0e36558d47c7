/* Private: task memory. Every task block comes from its scheduler's slabs,
 * which doubles as the registry of live tasks: shutdown scans the slabs
 * for tasks that have not completed (including idle ones that sit in no
 * queue) instead of keeping a list that every spawn and completion would
 * have to lock. Task dumps walk them too, while the runtime runs
 * (weft__slab_walk).
 * The contract with the blocks' user: a block's first word is an
 * _Atomic uint64_t that is 0 while the block is free and never 0 while it
 * is in use (a task's state word: a live task holds at least one
 * reference until it is freed). The slab knows nothing else of tasks. */
#ifndef WEFT_SCHED_SLAB_H
#define WEFT_SCHED_SLAB_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/spinlock.h"

/* Size classes of 16 bytes up to 512 (a task costs its size rounded to 16:
 * per-task memory is a headline number). Larger tasks are allocated one by
 * one and kept on a list for the scan. */
#define WEFT__SLAB_GRAIN 16u
/* A free block holds three words (state, list link, batch link), so the
 * smallest block is 32 bytes: a request below WEFT__SLAB_MIN rounds up. */
#define WEFT__SLAB_MIN (3u * sizeof(void *))
#define WEFT__SLAB_CLASSES 32u
#define WEFT__SLAB_MAX (WEFT__SLAB_GRAIN * WEFT__SLAB_CLASSES)
#define WEFT__SLAB_CHUNK 65536u
#define WEFT__SLAB_CACHE_DEPTH 256u
#define WEFT__SLAB_BATCH (WEFT__SLAB_CACHE_DEPTH / 2u)

struct weft__slab_chunk;
struct weft__slab_large;

/* Per runtime. Guarded by `lock` except where noted. */
struct weft__slab {
    weft__spinlock lock;
    struct weft__slab_chunk *chunks;      /* every chunk; only grows */
    struct weft__slab_large *large;       /* tasks above WEFT__SLAB_MAX */
    struct weft__slab_large *large_seen;  /* those a running scan passed */
    void *batches[WEFT__SLAB_CLASSES];    /* free blocks, BATCH per batch */
    void *singles[WEFT__SLAB_CLASSES];    /* free blocks, one by one */
    unsigned char *bump[WEFT__SLAB_CLASSES]; /* uncarved part of a chunk */
    unsigned bump_left[WEFT__SLAB_CLASSES];
};

/* Per worker thread; owner only. */
struct weft__slab_cache {
    struct weft__slab *slab;
    void *free[WEFT__SLAB_CLASSES];
    unsigned count[WEFT__SLAB_CLASSES];
    unsigned char *bump[WEFT__SLAB_CLASSES];
    unsigned bump_left[WEFT__SLAB_CLASSES];
};

void weft__slab_init(struct weft__slab *s);
/* Free all memory. Every task must have been freed. */
void weft__slab_fini(struct weft__slab *s);

/* Allocate a block of at least `size` bytes for a task of runtime slab `s`
 * (from the calling worker's cache when it belongs to `s`). Its first word
 * is 0. Returns NULL when out of memory. `*block_size` receives the size
 * to pass back to weft__slab_free. Any thread. */
void *weft__slab_alloc(struct weft__slab *s, size_t size, uint32_t *block_size);
/* Return a block; its state word must already read 0 to other threads. */
void weft__slab_free(struct weft__slab *s, void *p, uint32_t block_size);

/* Bind `c` (for slab `s`) as the calling thread's cache, or unbind (NULL). */
void weft__slab_cache_bind(struct weft__slab_cache *c);
void weft__slab_cache_init(struct weft__slab_cache *c, struct weft__slab *s);
/* Give a cache's blocks back to its slab (after its thread stopped). */
void weft__slab_cache_flush(struct weft__slab_cache *c);

/* Call `fn(block, ctx)`, with the slab unlocked, for every block whose
 * first word is neither 0 (free) nor has a bit of `skip` set when the scan
 * reaches it; returns how many blocks it looked at (each block once:
 * linear in the slab's size). `fn` must leave the block free or with a
 * `skip` bit set (a task it cancelled is COMPLETE). The caller guarantees
 * that a block the scan reports stays allocated until `fn` has it (for
 * tasks: only the scanning thread completes a live task meanwhile).
 * Frees may run concurrently (`fn` itself may free any block), and so may
 * allocations: a block allocated during the scan may or may not be
 * reported, so its user must publish the block's contents with a release
 * store of the first word. One scan at a time. */
size_t weft__slab_scan(struct weft__slab *s, uint64_t skip,
                       void (*fn)(void *block, void *ctx), void *ctx);

/* Walk every block while the slab is in use: allocations and frees may run
 * concurrently (task dumps). `hold(block, ctx)` is called for each block,
 * free or not — for a large block under the slab's lock, so it must
 * neither take that lock nor free anything. When it returns true it has
 * taken something that keeps the block allocated (a task reference), and
 * `fn(block, ctx)` follows with no lock held; fn must give that up (it may
 * free the block). A block allocated during the walk may be missed. Any
 * thread while the slab lives. */
void weft__slab_walk(struct weft__slab *s, bool (*hold)(void *block, void *ctx),
                     void (*fn)(void *block, void *ctx), void *ctx);
/* The size of an allocated block above WEFT__SLAB_MAX (what
 * weft__slab_alloc returned in `*block_size`). */
uint32_t weft__slab_large_size(const void *p);

#endif
