/*
 * collide_search.c - the inner loop of the collision-dense key search.
 *
 * SPDX-License-Identifier: MIT
 *
 * Hashes candidate nonces for one key until its hash has the group's low
 * bits and top byte.  Millions of hashes per run: this file is compiled
 * without ThreadSanitizer instrumentation (see meson.build), which would
 * make it 20-50x slower; it reads and writes only the key it is given.
 */
#include <string.h>

#include "hash.h" /* sm_hash: the library's own hash (src/hash.h) */
#include "stress.h"

int64_t ss_collide_search(unsigned char *key, size_t klen, uint64_t seed, uint64_t mask, uint64_t low,
			  uint8_t top, uint64_t *hashes)
{
	for (uint64_t nonce = 0; nonce <= UINT32_MAX; nonce++) {
		uint32_t n32 = (uint32_t)nonce;
		memcpy(key + 4, &n32, 4);
		uint64_t h = sm_hash(key, klen, seed);
		if ((h & mask) == low && (uint8_t)(h >> 56) == top) {
			*hashes += nonce + 1;
			return (int64_t)nonce;
		}
	}
	*hashes += (uint64_t)UINT32_MAX + 1;
	return -1;
}
