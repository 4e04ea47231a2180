/*
 * gomap_invariants.h - walk a gomap's private structures and check every
 * invariant the implementation relies on.  For the tests only (reads
 * src/gomap_impl.h).
 *
 * SPDX-License-Identifier: MIT
 *
 * Checked, for the current array and (while evacuating) the old one:
 *   - shape: B / oldB / grow kind agree with the arrays' sizes;
 *   - every live slot sits in the bucket its hash selects, with the right
 *     tophash, and a lookup of its key finds exactly that slot (so no key
 *     is stored twice);
 *   - emptyRest really means "nothing live after this slot in the chain";
 *   - no evacuation states in the current array; an old bucket is either
 *     untouched or wholly evacuated (states 2..4 only), every old bucket
 *     below nevacuate is evacuated, and evacuatedX/Y agree with the hash
 *     bit that splits a doubling (checked for inline keys, whose bytes
 *     stay readable in the old slot);
 *   - a current-array bucket holds keys only once an old bucket feeding it
 *     was evacuated;
 *   - count, tombstones, noverflow and gomap_work's bytes equal what the
 *     walk finds (retired arrays count what they still hold); the writer
 *     flag is clear.
 */
#ifndef SM_TEST_GOMAP_INVARIANTS_H
#define SM_TEST_GOMAP_INVARIANTS_H

#include "gomap_impl.h"

#ifndef INV_FAIL
#include "testutil.h"
#define INV_FAIL(...) TEST_FAIL(__VA_ARGS__)
#endif

struct inv_totals {
	size_t live, tomb, bytes_keys;
};

/* Check one chain of array `a` (bucket index j, `mask` the array's mask).
 * Returns the number of overflow buckets in the chain. */
static inline size_t inv_check_chain(const struct gomap *h, const struct barray *a, size_t j, size_t mask,
				     bool old, struct inv_totals *t)
{
	size_t ovf = 0;
	bool rest = false;
	const struct bmap *b = &a->b[j];
	for (const struct bmap *c = b; c; c = bmap_overflow(a, c)) {
		if (c != b)
			ovf++;
		if (ovf > a->noverflow)
			INV_FAIL("bucket %zu: chain longer than the array's %u overflow buckets (a cycle?)", j,
				 a->noverflow);
		for (unsigned i = 0; i < bucketCnt; i++) {
			uint8_t top = c->tophash[i];
			if (rest && top != emptyRest)
				INV_FAIL("%s bucket %zu: state %u after an emptyRest slot", old ? "old" : "new", j, top);
			if (top == emptyRest) {
				rest = true;
				continue;
			}
			if (top == emptyOne) {
				t->tomb++;
				continue;
			}
			if (top < minTopHash)
				INV_FAIL("%s bucket %zu slot %u: evacuation state %u in a live chain", old ? "old" : "new",
					 j, i, top);
			size_t klen;
			const void *k = slot_key(c, i, &klen);
			unsigned code = slot_code(c, i);
			if (code != KEY_INDIRECT && code > KEY_INLINE_MAX)
				INV_FAIL("bad key length code %u", code);
			if (code == KEY_INDIRECT) {
				if (klen <= KEY_INLINE_MAX)
					INV_FAIL("indirect key of length %zu", klen);
				t->bytes_keys += sizeof(struct gkey) + klen;
			} else {
				/* Inline keys are zero-padded: the word equals the probe word. */
				struct gomap_probe p;
				gomap_probe_init(&p, k, klen);
				if (p.word != c->keys[i])
					INV_FAIL("inline key not zero-padded");
			}
			uint64_t hash = gomap_hash(h, k, klen);
			if (slot_hash(c, i, h->hash0) != hash)
				INV_FAIL("key of length %zu: stored hash %#llx, its hash %#llx", klen,
					 (unsigned long long)slot_hash(c, i, h->hash0), (unsigned long long)hash);
			if ((hash & mask) != j)
				INV_FAIL("%s bucket %zu holds a key of bucket %zu", old ? "old" : "new", j,
					 (size_t)(hash & mask));
			if (tophash(hash) != top)
				INV_FAIL("tophash %u, key's is %u", top, tophash(hash));
			struct gomap_probe p;
			gomap_probe_init(&p, k, klen);
			void **found = gomap_lookup_h(h, &p, hash);
			if (found != &c->elems[i])
				INV_FAIL("lookup of a live key finds %p, not its slot %p", (void *)found,
					 (void *)&c->elems[i]);
			t->live++;
		}
	}
	return ovf;
}

static inline size_t inv_array_bytes(const struct barray *a)
{
	if (!a)
		return 0;
	size_t n = a->bytes;
	for (unsigned k = 0; k < a->nchunks; k++)
		n += ((size_t)OVF_CHUNK0 << k) * sizeof(struct bmap);
	return n;
}

static inline void gomap_check_invariants(const struct gomap *h)
{
	if (!h)
		return;
#if GOMAP_WRITE_CHECK
	if (h->flags & hashWriting)
		INV_FAIL("writer flag left set");
#endif
	struct inv_totals t = {0, 0, 0};
	const struct barray *a = h->buckets, *oa = h->oldbuckets;
	if (!a) {
		if (h->count || oa)
			INV_FAIL("no bucket array but count %zu, old %p", h->count, (const void *)oa);
		return;
	}
	if (a->nbuckets != bucketShift(h->B))
		INV_FAIL("B %u but %zu buckets", h->B, a->nbuckets);
	if (h->tombstones > SIZE_MAX / 2)
		INV_FAIL("tombstone counter underflowed");
	if (oa) {
		if (oa->nbuckets != bucketShift(h->oldB))
			INV_FAIL("oldB %u but %zu old buckets", h->oldB, oa->nbuckets);
		/* A shrink may drop several levels at once. */
		int d = (int)h->B - (int)h->oldB;
		bool ok = h->grow == growDouble ? d == 1 : h->grow == sameSizeGrow ? d == 0
			: h->grow == growShrink ? d < 0 : false;
		if (!ok)
			INV_FAIL("grow kind %u with B %u, oldB %u", h->grow, h->B, h->oldB);
		if (h->nevacuate >= oa->nbuckets)
			INV_FAIL("nevacuate %zu of %zu while still growing", h->nevacuate, oa->nbuckets);
	} else if (h->grow != growNone) {
		INV_FAIL("grow kind %u without an old array", h->grow);
	}

	size_t ovf = 0;
	for (size_t j = 0; j < a->nbuckets; j++) {
		ovf += inv_check_chain(h, a, j, bucketMask(h->B), false, &t);
		if (oa) {
			/* A new bucket gets keys only after an old bucket feeding it
			 * was evacuated. */
			bool fed = evacuated(&oa->b[j & bucketMask(h->oldB)]);
			if (h->grow == growShrink)
				for (size_t o = j + a->nbuckets; o < oa->nbuckets; o += a->nbuckets)
					fed = fed || evacuated(&oa->b[o]);
			bool any = false;
			for (const struct bmap *c = &a->b[j]; c && !any; c = bmap_overflow(a, c))
				for (unsigned i = 0; i < bucketCnt; i++)
					any = any || c->tophash[i] >= minTopHash;
			if (any && !fed)
				INV_FAIL("new bucket %zu holds keys but no old bucket feeding it is evacuated", j);
		}
	}
	if (ovf != a->noverflow)
		INV_FAIL("%zu overflow buckets linked, noverflow says %u", ovf, a->noverflow);

	if (oa) {
		size_t oovf = 0;
		for (size_t j = 0; j < oa->nbuckets; j++) {
			const struct bmap *b = &oa->b[j];
			if (!evacuated(b)) {
				if (j < h->nevacuate)
					INV_FAIL("old bucket %zu below nevacuate %zu not evacuated", j, h->nevacuate);
				oovf += inv_check_chain(h, oa, j, bucketMask(h->oldB), true, &t);
				continue;
			}
			for (const struct bmap *c = b; c; c = bmap_overflow(oa, c)) {
				if (c != b)
					oovf++;
				for (unsigned i = 0; i < bucketCnt; i++) {
					uint8_t top = c->tophash[i];
					if (top != evacuatedX && top != evacuatedY && top != evacuatedEmpty)
						INV_FAIL("evacuated old bucket %zu has slot state %u", j, top);
					if (top == evacuatedY && h->grow != growDouble)
						INV_FAIL("evacuatedY outside a doubling");
					if (top != evacuatedEmpty && slot_code(c, i) != KEY_INDIRECT && h->grow == growDouble) {
						size_t klen;
						const void *k = slot_key(c, i, &klen);
						bool y = (gomap_hash(h, k, klen) & oa->nbuckets) != 0;
						if (y != (top == evacuatedY))
							INV_FAIL("old bucket %zu: key went to %c, hash says %c", j,
								 top == evacuatedY ? 'Y' : 'X', y ? 'Y' : 'X');
					}
				}
			}
		}
		if (oovf != oa->noverflow)
			INV_FAIL("%zu old overflow buckets linked, noverflow says %u", oovf, oa->noverflow);
	}
	if (t.live != h->count)
		INV_FAIL("%zu live slots, count %zu", t.live, h->count);
	if (t.tomb != h->tombstones)
		INV_FAIL("%zu emptyOne slots, tombstones %zu", t.tomb, h->tombstones);
	if (t.bytes_keys != h->key_bytes)
		INV_FAIL("indirect keys hold %zu bytes, key_bytes %zu", t.bytes_keys, h->key_bytes);
	struct gomap_work w;
	gomap_work(h, &w);
	size_t bytes = inv_array_bytes(a) + inv_array_bytes(oa) + t.bytes_keys;
	for (const struct barray *r = h->releasing; r; r = r->next_release) {
		/* Retired arrays being given back: what is still mapped, plus
		 * overflow chunks not yet freed.  Never a live array. */
		if (r == a || r == oa)
			INV_FAIL("array %p is both live and retired", (const void *)r);
		size_t held = sm_block_release_held(&r->rel, r->bytes);
		if (held == 0 || held > r->bytes)
			INV_FAIL("retired array holds %zu of %zu bytes", held, r->bytes);
		bytes += inv_array_bytes(r) - r->bytes + held;
		if (r->nchunks) {
			size_t cb = ((size_t)OVF_CHUNK0 << (r->nchunks - 1)) * sizeof(struct bmap);
			bytes -= cb - sm_block_release_held(&r->chunk_rel, cb);
		}
	}
	if (w.bytes != bytes)
		INV_FAIL("gomap_work bytes %zu, the walk finds %zu", w.bytes, bytes);
	struct gomap_stats st;
	gomap_stats(h, &st);
	if (st.count != h->count || st.tombstones != t.tomb || st.overflow != ovf + (oa ? oa->noverflow : 0) ||
	    st.B != h->B || st.growing != (oa != NULL) ||
	    st.buckets != a->nbuckets + (oa ? oa->nbuckets : 0))
		INV_FAIL("gomap_stats disagrees with the structure");
}

/* `n` 8-byte keys (counters from *next on) whose hash under `seed` has
 * (hash & mask) == target: keys that share a bucket of a fixed-seed map. */
static inline void gm_find_colliding(uint64_t seed, uint64_t mask, uint64_t target, size_t n, uint64_t *out,
				     uint64_t *next)
{
	for (size_t i = 0; i < n; (*next)++) {
		uint64_t k = *next;
		if ((sm_hash(&k, 8, seed) & mask) == target)
			out[i++] = k;
	}
}

#endif
