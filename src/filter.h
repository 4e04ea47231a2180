/*
 * filter.h - which keys might only the dirty map hold?
 *
 * SPDX-License-Identifier: MIT
 *
 * In Go's sync.Map, once any key is stored that the read snapshot lacks
 * ("amended"), every lookup of a key the snapshot does not have takes the
 * mutex to look in the dirty map, until enough of those misses promote it
 * (golang/go#21032: caches with frequent misses pay a lock per miss).
 * syncmap keeps, next to each snapshot, a small Bloom filter of the keys
 * inserted into the dirty map while that snapshot is current (the
 * "dirty-only" keys).  A lookup that misses the snapshot consults the filter
 * and takes the mutex only if the key may be dirty-only; a definite "no" is
 * answered without a lock.
 *
 * Correctness needs no false negatives: a key's bits are set (release,
 * under the mutex) before the key is inserted, so an operation that finds
 * them clear began before the insert could be observed, and linearizes
 * before it, exactly as with Go's amended flag.  A promotion publishes a new
 * snapshot with an empty filter.  False positives only cost the lock, and
 * count as misses, so a saturated filter brings on a promotion, which
 * starts a fresh filter sized for the new snapshot.
 *
 * Layout: a blocked Bloom filter, 2 bits in one 64-bit word per key (one
 * cache line touched), about 4 bits per snapshot key.
 */
#ifndef SM_FILTER_H
#define SM_FILTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* A map's filters together hold at least SM_FILTER_MAP_MIN_WORDS words
 * (4096 bits): each shard's at least that divided by the shards, and never
 * under SM_FILTER_MIN_WORDS (one cache line). */
#define SM_FILTER_MAP_MIN_WORDS 64
#define SM_FILTER_MIN_WORDS 8
#define SM_FILTER_MAX_WORDS ((size_t)1 << 20) /* 8 MiB */

/* The least words a shard's filter gets in a map of `shards` shards. */
static inline size_t sm_filter_min_words(unsigned shards)
{
	size_t w = SM_FILTER_MAP_MIN_WORDS / shards;
	return w < SM_FILTER_MIN_WORDS ? SM_FILTER_MIN_WORDS : w;
}

static inline uint64_t sm_filter_bits(uint64_t hash)
{
	/* Bits 8..19 of the hash: neither the bucket index (low bits, for
	 * small maps) nor the tophash (top byte) alone decides them. */
	return (1ULL << ((hash >> 8) & 63)) | (1ULL << ((hash >> 14) & 63));
}

static inline size_t sm_filter_word(uint64_t hash, uint64_t mask)
{
	return (size_t)((hash >> 24) & mask);
}

/* Words for a snapshot of `keys` keys: 4 bits per key, a power of two, at
 * least min_words. */
static inline size_t sm_filter_words_for(size_t keys, size_t min_words)
{
	size_t words = min_words;
	while (words < keys / 16 && words < SM_FILTER_MAX_WORDS)
		words *= 2;
	return words;
}

static inline bool sm_filter_maybe(const _Atomic uint64_t *f, uint64_t mask, uint64_t hash)
{
	uint64_t bits = sm_filter_bits(hash);
	return (atomic_load_explicit(&f[sm_filter_word(hash, mask)], memory_order_acquire) & bits) == bits;
}

/* Only holders of the shard's mutex write a filter, so no read-modify-write
 * is needed: a plain load and a release store (readers only ever see bits
 * appear until a promotion or clear replaces the filter). */
static inline void sm_filter_add(_Atomic uint64_t *f, uint64_t mask, uint64_t hash)
{
	_Atomic uint64_t *w = &f[sm_filter_word(hash, mask)];
	uint64_t bits = sm_filter_bits(hash), old = atomic_load_explicit(w, memory_order_relaxed);
	if ((old & bits) != bits)
		atomic_store_explicit(w, old | bits, memory_order_release);
}

#endif
