/*
 * blockcache.h - zeroed blocks for bucket arrays, reused instead of being
 * faulted in fresh each time.
 *
 * SPDX-License-Identifier: MIT
 *
 * A map that grows, shrinks or is freed and made again gives big zeroed
 * blocks back and asks for new ones of the same sizes (a bucket array's
 * size is a function of B alone).  Straight from mmap, every page of every
 * new block is a page fault in which the kernel zeroes the page; the block
 * is unmapped again on the way out.  The cache keeps blocks that were given
 * back, zeroed on the freeing side, for the next allocation of the same
 * size, which then costs O(1) and no fault.
 *
 * Zeroing is work proportional to the block, so it is done where gomap
 * already does work of that size: a retired array is zeroed in the same
 * bounded slices in which it would otherwise be unmapped (one slice per
 * put/delete, syncmap__block_release_step), and gomap_free / gomap_clear /
 * gomap__destroy, which are O(size) anyway, zero what they free at once.
 * Only the bytes the map may have written are zeroed (its `dirty` prefix:
 * the rest of a block was never written and is still zero).
 *
 * Bounded: the cache holds at most sm_block_cache_limit() bytes (64 MiB by
 * default), counting blocks still being zeroed for it; a block that does
 * not fit is given back to the system as before (munmap in slices).  Only
 * blocks of SM_MMAP_MIN bytes and more are cached: smaller ones come from
 * calloc, whose free lists already reuse them.
 *
 * Thread-safe: blocks are allocated by any thread (syncmap's writers) and
 * given back by any other (liburcu's call_rcu thread); one mutex guards the
 * cache, held for O(1) per block.
 */
#ifndef SM_BLOCKCACHE_H
#define SM_BLOCKCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "alloc.h"

/* Default bound on the bytes the cache holds. */
#define SM_BLOCK_CACHE_LIMIT ((size_t)64 << 20)

/* A zeroed block of n bytes, 16-byte aligned (page-aligned from
 * SM_MMAP_MIN on): from the cache when it holds one of exactly this size,
 * else from syncmap__alloc_zeroed.  NULL (errno ENOMEM) on failure, including an
 * injected one (alloc.h): a hit counts as one allocation for fault
 * injection, like a miss.  Give it back with syncmap__block_free or
 * syncmap__block_release_step, with the same n. */
void *syncmap__block_alloc(size_t n);

/* Give back a block from syncmap__block_alloc(n) at once: if the cache has room,
 * zero its first `dirty` bytes (everything after them must never have been
 * written) and keep it; otherwise give it to the system.  O(dirty). */
void syncmap__block_free(void *p, size_t n, size_t dirty);

/*
 * The same in bounded steps, for a block given back while its owner keeps
 * serving operations.  Zero-initialise *r, then call syncmap__block_release_step
 * once per operation; the first call decides between the cache (room is
 * reserved then) and the system.  Each call zeroes or unmaps at most about
 * `budget` bytes, from the block's end (so a header at its start, where *r
 * may live, stays intact until the last call), and adds to *released the
 * bytes of the block it disposed of (over all calls: n) and to *worked the
 * bytes it zeroed or gave to the system.  Returns true when the block is
 * gone: *r must not be read again (it may have been inside the block).
 * budget SIZE_MAX finishes in one call.
 */
struct sm_block_release {
	/* Bytes of the block not disposed of yet (valid once started):
	 * caching, the prefix still to zero; otherwise, what is still mapped. */
	size_t left;
	unsigned char mode; /* 0: not started */
};

bool syncmap__block_release_step(void *p, size_t n, size_t dirty, struct sm_block_release *r, size_t budget,
			   size_t *released, size_t *worked);

/* Bytes of the block still held by its owner (n until the first step). */
static inline size_t sm_block_release_held(const struct sm_block_release *r, size_t n)
{
	return r->mode ? r->left : n;
}

/*
 * For tests and tuning.  bytes: zeroed blocks held now; reserved: bytes
 * promised to blocks still being zeroed; blocks: how many are held; hits:
 * allocations served from the cache; fresh: blocks of cacheable size that
 * had to come from the system; cached: blocks taken in; rejected: blocks
 * given to the system because the cache was full.  Counters are
 * process-wide, since the process started.
 */
struct syncmap__block_cache_stats {
	size_t bytes, reserved, blocks, limit;
	size_t hits, fresh, cached, rejected;
};
void syncmap__block_cache_stats(struct syncmap__block_cache_stats *st);

/* Set the bound (bytes) and return the old one.  Lowering it gives back,
 * at once, the blocks it no longer covers. */
size_t syncmap__block_cache_set_limit(size_t limit);

#endif
