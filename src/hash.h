/*
 * hash.h - the one hash function of the library: XXH3-64 with the map's seed.
 *
 * SPDX-License-Identifier: MIT
 *
 * XXH3 (Debian libxxhash-dev) is inlined (XXH_INLINE_ALL), so hashing an
 * 8-byte key is a handful of multiplies with no call.  Seeded per map: keys
 * that collide under one seed do not under another.
 */
#ifndef SM_HASH_H
#define SM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t sm_hash(const void *key, size_t klen, uint64_t seed)
{
	/* 8-byte keys (the common integer key) get XXH3 with a constant
	 * length, which the compiler inlines down to its 4-8 byte path: no
	 * call, no dispatch on the length.  Same function, same values. */
	if (klen == 8)
		return XXH3_64bits_withSeed(key, 8, seed);
	return XXH3_64bits_withSeed(key, klen, seed);
}

#endif
