/*
 * gomap.c - Go 1.19's runtime hash map, in C, plus incremental shrinking.
 *
 * SPDX-License-Identifier: MIT
 *
 * Read this next to $GOROOT/src/runtime/map.go; the names are Go's.
 *
 * A map is an array of 2^B buckets.  A key's hash picks the bucket with its
 * low B bits and is remembered in the bucket by its top byte (tophash), so a
 * probe compares one byte per slot before it looks at a key.  A bucket holds
 * 8 slots; more keys chain into overflow buckets.  tophash values 0..4 are
 * slot states (see gomap_impl.h): emptyRest lets a probe stop early,
 * emptyOne is a tombstone, and the evacuated* states mark an old bucket
 * whose keys moved to the new array.
 *
 * When an insert would push the load past 6.5 keys per bucket, a new array
 * twice the size is allocated and keys move to it incrementally, a couple
 * of old buckets per insert or delete, so no operation pays for the whole
 * table.  Too many overflow buckets trigger the same machinery at the same
 * size, which rewrites the chains densely and drops tombstones.  gomap adds
 * a third kind, shrinking (below).
 *
 * Why 6.5: Go's author measured it (the table in map.go's opening comment,
 * for 8-byte keys and values at the maximum load; not re-measured here): at
 * 6.5 keys per bucket 20.90% of buckets have an overflow bucket, overhead is
 * 10.79 bytes per key/value pair, a hit checks 4.25 entries and a miss 6.50.
 *
 * Differences from Go's map.go
 * ----------------------------
 * What, why, and the measurement behind it where there is one.
 *
 *  1. Keys are byte strings of any length, one map type for all.  Up to 8
 *     bytes live in the slot's key word (zero-padded), their length in a
 *     4-bit code per slot (bmap.kmeta); longer keys live in a heap block
 *     (struct gkey: length, hash, bytes) the slot points to, code
 *     KEY_INDIRECT.  Go compiles a map per key type and stores keys of up
 *     to 128 bytes in the slot.  The block keeps the key's hash, so moving
 *     a long key (evacuation, iteration, the concurrent map's copy) never
 *     rehashes its bytes; Go rehashes every key a doubling moves.
 *  2. GOMAP_INIT_KEYS_EXTERNAL (internal): the caller owns the key blocks,
 *     so the concurrent map shares one copy of a key between its snapshot
 *     and its dirty map.
 *  3. The overflow link is a 32-bit index into the array's overflow
 *     storage, not a pointer: with kmeta in the other 4 bytes a bucket is
 *     144 bytes, the size of Go's map[int]int bucket (bytes per entry at
 *     1e6 keys: 40.09, Go 40.15).  Overflow buckets come from the array's
 *     preallocated tail (Go's makeBucketArray), then from chunks of
 *     doubling size (chunk k holds 8 << k buckets) allocated on demand and
 *     freed with the array; Go allocates them one by one and lets its
 *     garbage collector free them.
 *  4. MAX_B = 30 keeps those indices within 32 bits (Go has no bound).
 *  5. A probe compares a bucket's 8 tophash bytes at once (SWAR, one word)
 *     instead of one by one; a bucket holding any emptyRest ends it, which
 *     is Go's stopping rule (every slot after an emptyRest is emptyRest).
 *  6. noverflow is exact (32 bits, per array).  Go counts approximately
 *     above B = 15, to fit a uint16.
 *  7. Work per write is bounded and counted (gomap_work, asserted by the
 *     tests while 1e6 keys grow and shrink): at most
 *     GOMAP_MAX_EVACUATE_PER_OP (2) old buckets evacuated, where Go
 *     evacuates the key's bucket and one more, or one; at most
 *     GOMAP_MAX_SKIP_PER_OP (64) already evacuated ones stepped over per
 *     operation, where Go allows 1024 per call; and a put that finishes
 *     an evacuation does not start the next one (Go may, and then does
 *     that one's work too).
 *  8. A delete does not evacuate its key's old bucket first, as Go's does:
 *     it deletes in the old bucket in place when that is not evacuated yet
 *     and only advances the mark, so the keys it removes are never moved
 *     and it makes no random access to the other array (with the
 *     evacuation rework that came with it: 71 -> 55 ns CPU per delete in
 *     the loop at 1e5 keys; Go 58).  Like Go for pointer-free keys and
 *     values, it leaves the slot's key and value words in place: clearing
 *     the value touched one more cache line, a miss on a big map.
 *  9. Shrinking, which Go never does.  Below a quarter of the growth load
 *     (1.625 keys per bucket) a delete starts a shrink to the size where
 *     the load is at most half the growth load, moved by the same
 *     incremental evacuation: a map must double its count before it grows
 *     back, so it cannot thrash, and after a mass deletion it holds at
 *     most about twice what a fresh map holds
 *     (test_shrink_gives_memory_back).  The mass deletion of a big map
 *     shrinks straight to a fresh map's size, two levels at a time
 *     (hashGrow says why and at what price).  A map that becomes empty
 *     drops its arrays instead of shrinking down to nothing.  The hint of
 *     gomap_new is a floor.
 * 10. Arrays an evacuation leaves behind are given back a slice per write
 *     (RELEASE_BUDGET), not at once: unmapping costs about 1 ms per 10 MB
 *     here, which would land on one operation.  Given back means zeroed
 *     into the block cache (blockcache.h) when it has room, so the next
 *     array of that size costs no page faults (create-fill-delete-free
 *     loop at 1e5 keys: 0.0233 -> 0.0012 faults per put, put 1.19x ->
 *     0.50x Go's time), and unmapped otherwise.  Go leaves old arrays to
 *     its garbage collector.
 * 11. Arrays of 2 MiB and more ask for transparent huge pages (random
 *     probes miss the TLB otherwise: get-hit at 1e7 keys 145 -> 106 ns),
 *     or, with GOMAP_INIT_HUGE_LATER, when gomap__advise_huge says so.
 * 12. The iterator keeps no pointer into the arrays across calls: without
 *     a garbage collector an array may be freed between two calls, where
 *     Go's iterator keeps the array it started with alive.  Its position is
 *     a point in bit-reversed hash order, which survives any change of
 *     size; the contract is Go's (see the iteration section).
 * 13. gomap_clear goes back to the hint's size and frees the rest (a fresh
 *     array is O(1) from the cache or the kernel); Go keeps its array and
 *     re-zeroes it.
 * 14. Allocation failures are all-or-nothing: every allocation an operation
 *     needs is made (or reserved) before it changes anything, so -ENOMEM
 *     leaves the map exactly as it was.  Go throws.  Bad input returns an
 *     error, never a crash.
 * 15. The hash is XXH3 with a per-map 64-bit seed (Go: its runtime hash,
 *     AES-based where the CPU has it).  Like Go, a map with a random seed
 *     takes a new one whenever it becomes empty.
 */
#include "gomap_impl.h"

#include <errno.h>

#include "alloc.h"
#include "blockcache.h"
#include "rand.h"

/* Upper bound on B: keeps 32-bit overflow indices and 2^B * 144 bytes in
 * range (2^30 buckets hold about 7e9 keys). */
#define MAX_B 30
/* The largest array's main and preallocated overflow buckets, and its first
 * chunk, must be indexable by bmap.overflow (ovf_reserve checks the rest). */
_Static_assert(((uint64_t)1 << MAX_B) + ((uint64_t)1 << (MAX_B - 4)) + OVF_CHUNK0 <= UINT32_MAX,
	       "overflow indices fit 32 bits");

/* ===================================================================== */
/* --- Misuse detection (Go's hashWriting) ------------------------------ */

void gomap__die(const char *msg)
{
	fprintf(stderr, "gomap: %s\n", msg);
	fflush(stderr);
	abort();
}

static inline void writer_begin(struct gomap *h)
{
#if GOMAP_WRITE_CHECK
	uint8_t f = __atomic_load_n(&h->flags, __ATOMIC_RELAXED);
	if (f & hashWriting)
		gomap__die("concurrent map writes");
	__atomic_store_n(&h->flags, (uint8_t)(f | hashWriting), __ATOMIC_RELAXED);
#else
	(void)h;
#endif
}

static inline void writer_end(struct gomap *h)
{
#if GOMAP_WRITE_CHECK
	uint8_t f = __atomic_load_n(&h->flags, __ATOMIC_RELAXED);
	if (!(f & hashWriting))
		gomap__die("concurrent map writes");
	__atomic_store_n(&h->flags, (uint8_t)(f & ~hashWriting), __ATOMIC_RELAXED);
#else
	(void)h;
#endif
}

/* ===================================================================== */
/* --- Sizing rules ------------------------------------------------------ */

/* Go's overLoadFactor: would `count` keys overload 2^B buckets? */
static bool overLoadFactor(size_t count, unsigned B)
{
	return count > bucketCnt && count > loadFactorNum * (bucketShift(B) / loadFactorDen);
}

/* Go's tooManyOverflowBuckets, with an exact count (difference 6): about as
 * many overflow buckets as main buckets. */
static bool tooManyOverflowBuckets(size_t noverflow, unsigned B)
{
	return noverflow >= bucketShift(B);
}

/* Shrink once the load is below a quarter of the growth threshold
 * (1.625 keys per bucket): after halving it is at most half the threshold,
 * so the map must double its count before it grows again. */
static bool underLoadFactor(size_t count, unsigned B)
{
	return count * 4 * loadFactorDen < loadFactorNum * bucketShift(B);
}

/* Shrinks of arrays this big (2^12 buckets, 600 KB) may skip a level in
 * a mass deletion (see hashGrow). */
#define MASS_DELETE_MIN_B 12

static unsigned B_for_hint(size_t hint)
{
	unsigned B = 0;
	while (B < MAX_B && overLoadFactor(hint, B))
		B++;
	return B;
}

/* ===================================================================== */
/* --- Bucket arrays and overflow buckets -------------------------------- */

/* Go's makeBucketArray: 2^B buckets, plus 2^(B-4) preallocated overflow
 * buckets for B >= 4 (a cheap guess at how many a full array needs). */
static struct barray *makeBucketArray(struct gomap *h, unsigned B)
{
	size_t nb = bucketShift(B);
	size_t npre = B >= 4 ? bucketShift(B - 4) : 0;
	size_t bytes = sizeof(struct barray) + (nb + npre) * sizeof(struct bmap);
	struct barray *a = syncmap__block_alloc(bytes);
	if (!a)
		return NULL;
	a->nbuckets = nb;
	a->npre = (uint32_t)npre;
	a->bytes = bytes;
	h->work.bytes += bytes;
	if (!h->huge_later)
		syncmap__advise_huge(a, bytes);
	return a;
}

void gomap__advise_huge(struct gomap *h)
{
	if (h->buckets)
		syncmap__advise_huge(h->buckets, h->buckets->bytes);
	if (h->oldbuckets)
		syncmap__advise_huge(h->oldbuckets, h->oldbuckets->bytes);
}

static size_t chunk_size(unsigned k)
{
	return (size_t)OVF_CHUNK0 << k;
}

static size_t chunk_bytes(unsigned k)
{
	return chunk_size(k) * sizeof(struct bmap);
}

/* The bytes at the start of array a that its map may have written: the
 * header, the main buckets and the preallocated overflow buckets handed
 * out.  The rest was never touched: still zero, nothing to clear before
 * the block is reused. */
static size_t array_dirty(const struct barray *a)
{
	return offsetof(struct barray, b) + (a->nbuckets + a->nextpre) * sizeof(struct bmap);
}

/* The same for overflow chunk k (chunks are handed out in order). */
static size_t chunk_dirty(const struct barray *a, unsigned k)
{
	size_t first = OVF_CHUNK0 * (((size_t)1 << k) - 1);
	size_t used = a->chunkused > first ? a->chunkused - first : 0;
	return (used < chunk_size(k) ? used : chunk_size(k)) * sizeof(struct bmap);
}

/* Give back an array and its chunks at once (to the block cache, zeroed,
 * or to the system): gomap_clear, gomap__destroy and small arrays. */
static void freeBucketArray(struct gomap *h, struct barray *a)
{
	if (!a)
		return;
	for (unsigned k = 0; k < a->nchunks; k++) {
		syncmap__block_free(a->chunks[k], chunk_bytes(k), chunk_dirty(a, k));
		h->work.bytes -= chunk_bytes(k);
	}
	h->work.bytes -= a->bytes;
	syncmap__block_free(a, a->bytes, array_dirty(a));
}

/*
 * The array a finished evacuation leaves behind is given back a slice per
 * put/delete (RELEASE_BUDGET bytes) instead of at once: zeroing it for the
 * block cache, or unmapping it when the cache is full (about 1 ms per 10 MB
 * here), would otherwise land on the one operation that finishes
 * evacuating (and, in syncmap, on everyone waiting for the dirty map's
 * mutex).  Small arrays (from calloc, freed whole) go at once while the
 * operation's budget allows.
 */
#define RELEASE_BUDGET ((size_t)256 << 10)
/* A block below the mmap threshold is freed whole, in one step. */
_Static_assert(SM_MMAP_MIN <= RELEASE_BUDGET, "a calloc'ed block fits one step's budget");
/* An unmapping step may round up to a page: allow 64 KiB pages. */
_Static_assert(RELEASE_BUDGET + 65536 <= GOMAP_MAX_RELEASE_PER_OP, "one step stays within the bound");

static void retireBucketArray(struct gomap *h, struct barray *a)
{
	/* Chunks grow in size: the last is the biggest. */
	bool small = a->bytes < SM_MMAP_MIN && (a->nchunks == 0 || chunk_bytes(a->nchunks - 1) < SM_MMAP_MIN);
	size_t total = a->bytes;
	for (unsigned k = 0; small && k < a->nchunks; k++)
		total += chunk_bytes(k);
	if (small && h->op_released + total <= RELEASE_BUDGET) {
		h->op_released += total;
		freeBucketArray(h, a);
		return;
	}
	memset(&a->rel, 0, sizeof(a->rel));
	memset(&a->chunk_rel, 0, sizeof(a->chunk_rel));
	a->next_release = h->releasing;
	h->releasing = a;
}

/* One slice of the retired arrays: up to `budget` bytes of an overflow
 * chunk or of an array, zeroed or unmapped from its end (its header stays
 * readable until the last slice). */
static void release_step(struct gomap *h, size_t budget)
{
	struct barray *a = h->releasing;
	if (!a)
		return;
	size_t released = 0, worked = 0;
	if (a->nchunks) { /* overflow chunks first, the last one first */
		unsigned k = a->nchunks - 1;
		if (syncmap__block_release_step(a->chunks[k], chunk_bytes(k), chunk_dirty(a, k), &a->chunk_rel, budget,
					  &released, &worked)) {
			a->nchunks = k;
			memset(&a->chunk_rel, 0, sizeof(a->chunk_rel));
		}
	} else {
		struct barray *next = a->next_release;
		if (syncmap__block_release_step(a, a->bytes, array_dirty(a), &a->rel, budget, &released, &worked))
			h->releasing = next; /* a is gone */
	}
	h->work.bytes -= released;
	h->op_released += worked;
}

/* gomap_clear and gomap_free: everything at once. */
static void release_all(struct gomap *h)
{
	while (h->releasing)
		release_step(h, SIZE_MAX);
}

static size_t ovf_available(const struct barray *a)
{
	size_t chunk_cap = OVF_CHUNK0 * ((((size_t)1) << a->nchunks) - 1);
	return (size_t)(a->npre - a->nextpre) + (chunk_cap - a->chunkused);
}

/* Make sure `need` overflow buckets can be handed out without allocating.
 * This is how evacuation and insertion stay all-or-nothing. */
static int ovf_reserve(struct gomap *h, struct barray *a, size_t need)
{
	while (ovf_available(a) < need) {
		unsigned k = a->nchunks;
		size_t idx_end = a->nbuckets + a->npre + OVF_CHUNK0 * (((size_t)1 << (k + 1)) - 1);
		if (k >= OVF_MAX_CHUNKS || idx_end > UINT32_MAX)
			return -ENOMEM;
		struct bmap *c = syncmap__block_alloc(chunk_bytes(k));
		if (!c)
			return -ENOMEM;
		a->chunks[k] = c;
		a->nchunks = k + 1;
		h->work.bytes += chunk_bytes(k);
	}
	return 0;
}

/* Go's newoverflow: link a fresh overflow bucket after b (reserved first). */
static struct bmap *newoverflow(struct barray *a, struct bmap *b)
{
	uint32_t idx;
	if (a->nextpre < a->npre)
		idx = (uint32_t)(a->nbuckets + a->nextpre++);
	else
		idx = (uint32_t)(a->nbuckets + a->npre + a->chunkused++);
	a->noverflow++;
	b->overflow = idx;
	return bmap_overflow(a, b);
}

/* ===================================================================== */
/* --- Keys in slots ----------------------------------------------------- */

struct gkey *gomap__key_new(const void *key, size_t klen, uint64_t hash)
{
	if (klen > SIZE_MAX - sizeof(struct gkey))
		return NULL;
	struct gkey *k = syncmap__malloc(sizeof(*k) + klen);
	if (!k)
		return NULL;
	k->len = klen;
	k->hash = hash;
	memcpy(k->data, key, klen);
	return k;
}

static void free_slot_key(struct gomap *h, struct bmap *b, unsigned i)
{
	if (slot_code(b, i) == KEY_INDIRECT && !h->keys_external) {
		struct gkey *k = (struct gkey *)(uintptr_t)b->keys[i];
		h->key_bytes -= gomap_key_bytes(k);
		syncmap__free(k);
	}
}

static void set_slot(struct bmap *b, unsigned i, uint8_t top, unsigned code, uint64_t keyword, void *val)
{
	b->tophash[i] = top;
	b->kmeta = (b->kmeta & ~(KMETA_MASK << (KMETA_BITS * i))) | (code << (KMETA_BITS * i));
	b->keys[i] = keyword;
	b->elems[i] = val;
}

/* Free the indirect keys still owned by live slots of an array. */
static void free_array_keys(struct gomap *h, struct barray *a)
{
	if (!a || h->keys_external || h->key_bytes == 0) /* no walk when all keys are inline */
		return;
	for (size_t i = 0; i < a->nbuckets; i++)
		for (struct bmap *b = bucket_at(a, i); b; b = bmap_overflow(a, b))
			for (unsigned s = 0; s < bucketCnt; s++)
				if (b->tophash[s] >= minTopHash)
					free_slot_key(h, b, s);
}

/* ===================================================================== */
/* --- Creation and destruction ------------------------------------------ */

int gomap__init(struct gomap *h, uint64_t seed, size_t hint, unsigned flags)
{
	memset(h, 0, sizeof(*h));
	h->random_seed = seed == 0;
	h->huge_later = (flags & GOMAP_INIT_HUGE_LATER) != 0;
	h->keys_external = (flags & GOMAP_INIT_KEYS_EXTERNAL) != 0;
	h->hash0 = seed ? seed : syncmap__random_seed();
	if (hint > loadFactorNum * (bucketShift(MAX_B) / loadFactorDen))
		return -EINVAL;
	unsigned B = B_for_hint(hint);
	h->B = (uint8_t)B;
	h->Bfloor = (flags & GOMAP_INIT_FLOOR) ? (uint8_t)B : 0;
	if (B > 0) {
		/* Like Go: a map that fits one bucket allocates it on first insert. */
		h->buckets = makeBucketArray(h, B);
		if (!h->buckets)
			return -ENOMEM;
	}
	return 0;
}

void gomap__destroy(struct gomap *h)
{
	release_all(h);
	free_array_keys(h, h->oldbuckets);
	free_array_keys(h, h->buckets);
	freeBucketArray(h, h->oldbuckets);
	freeBucketArray(h, h->buckets);
	h->oldbuckets = h->buckets = NULL;
	h->count = 0;
}

struct gomap *gomap_new(const struct gomap_options *opts)
{
	struct gomap *h = syncmap__malloc(sizeof(*h));
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	int err = gomap__init(h, opts ? opts->seed : 0, opts ? opts->hint : 0, GOMAP_INIT_FLOOR);
	if (err) {
		gomap__destroy(h);
		syncmap__free(h);
		errno = -err;
		return NULL;
	}
	return h;
}

void gomap_free(struct gomap *h)
{
	if (!h)
		return;
	writer_begin(h);
	gomap__destroy(h);
	syncmap__free(h);
}

size_t gomap_len(const struct gomap *h)
{
	return h ? h->count : 0;
}

/* ===================================================================== */
/* --- Growth: hashGrow, growWork, evacuate ------------------------------ */

static inline bool growing(const struct gomap *h)
{
	return h->oldbuckets != NULL;
}

/* Go's hashGrow: allocate the new array and make the current one old.  No
 * key moves here. */
static int hashGrow(struct gomap *h, enum grow_kind kind)
{
	unsigned newB = h->B + (kind == growDouble);
	if (kind == growShrink) {
		/* Straight to the size where the load is at most half the
		 * growth threshold, so the map must double its count before
		 * it grows back.  In the mass deletion of a big map (the
		 * deletes in a row since the last new key outnumber the keys
		 * left, and the array has 2^MASS_DELETE_MIN_B buckets or more),
		 * straight to the size a fresh map of this count has: two
		 * levels per shrink, which halves the keys moved and the
		 * buckets visited on the way down.  The price: that array is
		 * filled up to the full load and keeps the overflow buckets of
		 * that load until its own shrink, so while the count falls
		 * through the lower half of its range the map holds up to ~5%
		 * more than twice a fresh map's bytes (2.05x measured, 2e6 keys
		 * deleted down to 7e4).  Smaller arrays shrink one level at a
		 * time and stay within 2x. */
		bool mass = h->delrun >= h->count && h->B >= MASS_DELETE_MIN_B;
		newB = B_for_hint(mass ? h->count : 2 * h->count);
		if (newB < h->Bfloor)
			newB = h->Bfloor;
		if (newB >= h->B)
			newB = h->B - 1;
	}
	struct barray *na = makeBucketArray(h, newB);
	if (!na)
		return -ENOMEM;
	h->oldbuckets = h->buckets;
	h->oldB = h->B;
	h->buckets = na;
	h->B = (uint8_t)newB;
	h->grow = (uint8_t)kind;
	h->nevacuate = 0;
	if (kind == growDouble)
		h->work.grows++;
	else if (kind == sameSizeGrow)
		h->work.same_size_grows++;
	else
		h->work.shrinks++;
	return 0;
}

/* Start evacuating bucket c of an old chain: every slot becomes
 * evacuatedEmpty (tombstones included), its state kept in top[], and the
 * filled slots are returned as a mask (a word-wide test: shrinking
 * evacuates mostly empty buckets); the caller marks each of them
 * evacuatedX or evacuatedY as it moves the key. */
static inline uint64_t evac_begin(struct bmap *c, uint8_t top[bucketCnt], size_t *tomb)
{
	uint64_t w;
	memcpy(&w, c->tophash, sizeof(w));
	*tomb += bytes_equal_count(w, emptyOne);
	memcpy(top, c->tophash, bucketCnt);
	memset(c->tophash, evacuatedEmpty, sizeof(c->tophash));
	return filled_slots(w);
}

/* A doubling or a same-size grow: old bucket b (index `oldbucket`) goes to
 * new bucket X (same index) or, doubling, Y (index + old size) by the hash
 * bit the doubling adds.  Both are fresh (no key reaches a new bucket
 * before its old bucket is evacuated), so keys are appended in order, as
 * in Go.  Returns the tombstones the old chain held.  (The map's fields
 * are passed in, not read through h: every byte store to a bucket may
 * alias them, which would reload them for each key.) */
static size_t evacuateXY(struct barray *oa, struct barray *na, struct bmap *b, size_t oldbucket, bool dbl,
			 uint64_t seed)
{
	size_t newbit = oa->nbuckets, tomb = 0;
	/* Go's evacDst pair, indexed by the hash bit: no branch on a bit
	 * that is a coin flip per key. */
	struct {
		struct bmap *b;
		unsigned i;
	} xy[2] = {{bucket_at(na, oldbucket), 0}, {dbl ? bucket_at(na, oldbucket + newbit) : NULL, 0}};
	uint8_t top[bucketCnt];
	for (struct bmap *c = b; c; c = bmap_overflow(oa, c)) {
		for (uint64_t live = evac_begin(c, top, &tomb); live; live = match_drop(live, match_slot(live))) {
			unsigned i = match_slot(live);
			if (top[i] < minTopHash)
				gomap__die("bad map state");
			unsigned useY = dbl && (slot_hash(c, i, seed) & newbit) != 0;
			c->tophash[i] = (uint8_t)(evacuatedX + useY);
			if (xy[useY].i == bucketCnt) {
				xy[useY].b = newoverflow(na, xy[useY].b);
				xy[useY].i = 0;
			}
			set_slot(xy[useY].b, xy[useY].i++, top[i], slot_code(c, i), c->keys[i], c->elems[i]);
		}
	}
	return tomb;
}

/* A shrink: old bucket b merges into new bucket d, which may already hold
 * keys and tombstones (its other old buckets, puts since).  Each key takes
 * the first empty slot of d's chain, as a put would, found from a mask of
 * d's empty slots rather than slot by slot.  Returns the tombstones the
 * old chain held less those the keys filled. */
static size_t evacuateInto(struct barray *oa, struct barray *na, struct bmap *b, struct bmap *d)
{
	size_t tomb = 0;
	uint64_t dw;
	memcpy(&dw, d->tophash, sizeof(dw));
	uint64_t dfree = empty_slots(dw);
	uint8_t top[bucketCnt];
	for (struct bmap *c = b; c; c = bmap_overflow(oa, c)) {
		for (uint64_t live = evac_begin(c, top, &tomb); live; live = match_drop(live, match_slot(live))) {
			unsigned i = match_slot(live);
			if (top[i] < minTopHash)
				gomap__die("bad map state");
			c->tophash[i] = evacuatedX;
			while (!dfree) {
				struct bmap *next = bmap_overflow(na, d);
				d = next ? next : newoverflow(na, d);
				memcpy(&dw, d->tophash, sizeof(dw));
				dfree = empty_slots(dw);
			}
			unsigned j = match_slot(dfree);
			dfree = match_drop(dfree, j);
			tomb += d->tophash[j] == emptyOne;
			set_slot(d, j, top[i], slot_code(c, i), c->keys[i], c->elems[i]);
		}
	}
	return tomb;
}

/* Growing is all done: the old array goes.  Its slots no longer own keys
 * (evacuation moved the indirect key pointers). */
static void finishGrow(struct gomap *h)
{
	retireBucketArray(h, h->oldbuckets);
	h->oldbuckets = NULL;
	h->grow = growNone;
	h->gen++;
}

/* Go's evacuate: move the keys of old bucket `oldbucket` (and its chain),
 * not evacuated yet, to the new array.  All-or-nothing: the overflow
 * buckets the move may need are reserved before any key moves. */
static int evacuate(struct gomap *h, size_t oldbucket)
{
	struct barray *oa = h->oldbuckets, *na = h->buckets;
	struct bmap *b = bucket_at(oa, oldbucket);
	/* Reserve the overflow buckets the move may need, by chain length
	 * (cheaper than counting keys): a doubling or same-size destination
	 * is fresh, and X and Y together need at most as many buckets as the
	 * source chain (ceil(x/8) + ceil(y/8) <= ceil((x+y)/8) + 1), so
	 * chain-1 overflow buckets; a shrink destination may already be
	 * full: chain. */
	size_t need = 0;
	for (struct bmap *c = b; c; c = bmap_overflow(oa, c))
		need++;
	if (h->grow != growShrink)
		need--;
	if (ovf_reserve(h, na, need) != 0)
		return -ENOMEM;
	if (h->grow == growShrink)
		h->tombstones -= evacuateInto(oa, na, b, bucket_at(na, oldbucket & bucketMask(h->B)));
	else
		h->tombstones -= evacuateXY(oa, na, b, oldbucket, h->grow == growDouble, h->hash0);
	h->gen++;
	h->op_evacuated++;
	h->work.total_evacuated++;
	return 0;
}

/* Go's advanceEvacuationMark with the evacuations it follows: from
 * nevacuate on, evacuate old buckets until this operation has evacuated
 * `upto`, stepping over those already evacuated (out of order, by puts),
 * at most GOMAP_MAX_SKIP_PER_OP per operation (difference 7).  The growth
 * ends when the mark reaches the end. */
static int evacuateFromMark(struct gomap *h, size_t upto)
{
	struct barray *oa = h->oldbuckets;
	size_t nold = oa->nbuckets;
	int err = 0;
	while (h->nevacuate < nold) {
		if (evacuated(bucket_at(oa, h->nevacuate))) {
			if (h->op_skipped == GOMAP_MAX_SKIP_PER_OP)
				break;
			h->op_skipped++;
			h->nevacuate++;
			continue;
		}
		if (h->op_evacuated >= upto)
			break;
		err = evacuate(h, h->nevacuate);
		if (err)
			break;
		h->nevacuate++;
	}
	if (h->nevacuate == nold)
		finishGrow(h);
	return err;
}

/* Go's growWork: evacuate the old bucket the key maps to, so the operation
 * can work on the new array alone, then make progress from the mark.  Only
 * the first must succeed.  Every operation evacuates two buckets (Go: the
 * key's and one more, which may be the same), so a shrink driven by
 * deletes alone finishes in time (half the old buckets' worth of
 * deletes). */
static int growWork(struct gomap *h, uint64_t hash)
{
	size_t ob = hash & bucketMask(h->oldB);
	if (!evacuated(bucket_at(h->oldbuckets, ob))) {
		int err = evacuate(h, ob);
		if (err)
			return err;
	}
	(void)evacuateFromMark(h, GOMAP_MAX_EVACUATE_PER_OP);
	return 0;
}

/* A delete's share of an evacuation in progress: two old buckets from
 * nevacuate on, the same progress as growWork, but not its key's own old
 * bucket first (difference 8): when that bucket is not evacuated yet the
 * delete works on it in place, the lookup below knowing both arrays. */
static __attribute__((noinline)) void deleteWork(struct gomap *h)
{
	int saved_errno = errno; /* a failed evacuation is absorbed */
	(void)evacuateFromMark(h, GOMAP_MAX_EVACUATE_PER_OP);
	errno = saved_errno;
}

/* A delete never fails for lack of memory: if the half-size array cannot
 * be had, the map stays as big as it is (and tries again on a later
 * delete). */
static __attribute__((noinline)) void startShrink(struct gomap *h)
{
	int saved_errno = errno;
	(void)hashGrow(h, growShrink);
	errno = saved_errno;
}

static void op_begin(struct gomap *h)
{
	h->op_evacuated = h->op_skipped = h->op_released = 0;
}

static __attribute__((noinline)) void op_max(struct gomap *h)
{
	if (h->op_released > h->work.max_released)
		h->work.max_released = h->op_released;
	if (h->op_evacuated > h->work.max_evacuated)
		h->work.max_evacuated = h->op_evacuated;
	if (h->op_skipped > h->work.max_skipped)
		h->work.max_skipped = h->op_skipped;
}

static void op_end(struct gomap *h)
{
	if (h->releasing && h->op_released == 0)
		release_step(h, RELEASE_BUDGET);
	h->work.last_evacuated = h->op_evacuated;
	h->work.last_skipped = h->op_skipped;
	h->work.last_released = h->op_released;
	if (__builtin_expect((h->op_evacuated | h->op_skipped | h->op_released) != 0, 0))
		op_max(h);
}

/* ===================================================================== */
/* --- Lookup ------------------------------------------------------------ */

static bool bad_input(const void *m, const void *key, size_t klen)
{
	return !m || (!key && klen > 0);
}

bool gomap_get(const struct gomap *h, const void *key, size_t klen, void **val)
{
	if (bad_input(h, key, klen)) {
		errno = EINVAL;
		return false;
	}
	if (h->count == 0)
		return false;
	struct gomap_probe p;
	gomap_probe_init(&p, key, klen);
	void **slot = gomap_lookup_h(h, &p, gomap_hash(h, key, klen));
	if (!slot)
		return false;
	if (val)
		*val = *slot;
	return true;
}

/* ===================================================================== */
/* --- Insert (Go's mapassign) ------------------------------------------- */

/* The body of gomap__put_h, inlined into gomap_put as well. */
/* Insert, or find: with `found` NULL an existing key's value is replaced
 * (Go's mapassign); with `found` set, an existing key is left alone, its
 * value slot returned in *found and the result is 1 (one probe serves the
 * lookup and the insert). */
static inline __attribute__((always_inline)) int put_h(struct gomap *h, const struct gomap_probe *p, uint64_t hash,
						       void *val, void ***found)
{
	int err = 0;
	writer_begin(h);
	op_begin(h);
	if (!h->buckets) {
		h->buckets = makeBucketArray(h, h->B);
		if (!h->buckets) {
			err = -ENOMEM;
			goto out;
		}
	}
	uint8_t top = tophash(hash);
	bool worked = false; /* this put already did its share of evacuation */
again:
	if (growing(h)) {
		err = growWork(h, hash);
		if (err)
			goto out;
		worked = true;
	}
	struct barray *a = h->buckets;
	struct bmap *b = bucket_at(a, hash & bucketMask(h->B));
	struct bmap *insb = NULL;
	unsigned insi = 0;
	for (;;) {
		for (unsigned i = 0; i < bucketCnt; i++) {
			if (b->tophash[i] != top) {
				if (isEmpty(b->tophash[i]) && !insb) {
					insb = b;
					insi = i;
				}
				if (b->tophash[i] == emptyRest)
					goto notfound;
				continue;
			}
			if (!slot_key_eq(b, i, p))
				continue;
			if (found) {
				*found = &b->elems[i];
				err = 1;
			} else {
				b->elems[i] = val; /* existing key: update in place */
			}
			goto out;
		}
		struct bmap *ovf = bmap_overflow(a, b);
		if (!ovf)
			break;
		b = ovf;
	}
notfound:
	/* A new key.  If we hit the max load factor or have too many overflow
	 * buckets, and we're not already in the middle of growing, start
	 * growing, and look again: everything is different now. */
	/* (If this put just finished a grow, the next new key starts the
	 * next one: a second growWork would break the per-operation bound.) */
	if (!growing(h) && !worked) {
		bool over = overLoadFactor(h->count + 1, h->B);
		if ((over && h->B < MAX_B) || tooManyOverflowBuckets(a->noverflow, h->B)) {
			err = hashGrow(h, over && h->B < MAX_B ? growDouble : sameSizeGrow);
			if (err)
				goto out;
			goto again;
		}
	}
	uint64_t keyword = p->word;
	bool own_key = p->code == KEY_INDIRECT && !h->keys_external;
	if (own_key) {
		struct gkey *k = gomap__key_new(p->key, p->klen, hash);
		if (!k) {
			err = -ENOMEM;
			goto out;
		}
		keyword = (uint64_t)(uintptr_t)k;
	}
	if (!insb) {
		/* All current buckets are full: allocate a new one. */
		if (ovf_reserve(h, a, 1) != 0) {
			if (own_key)
				syncmap__free((void *)(uintptr_t)keyword);
			err = -ENOMEM;
			goto out;
		}
		insb = newoverflow(a, b);
		insi = 0;
	}
	if (own_key)
		h->key_bytes += gomap_key_bytes((struct gkey *)(uintptr_t)keyword);
	if (insb->tophash[insi] == emptyOne)
		h->tombstones--;
	set_slot(insb, insi, top, p->code, keyword, val);
	h->count++;
	h->delrun = 0;
	h->gen++;
out:
	op_end(h);
	writer_end(h);
	return err;
}

int gomap__put_h(struct gomap *h, const struct gomap_probe *p, uint64_t hash, void *val)
{
	return put_h(h, p, hash, val, NULL);
}

int gomap__insert_or_find_h(struct gomap *h, const struct gomap_probe *p, uint64_t hash, void *val, void ***found)
{
	return put_h(h, p, hash, val, found);
}

int gomap_put(struct gomap *h, const void *key, size_t klen, void *val)
{
	if (bad_input(h, key, klen))
		return -EINVAL;
	struct gomap_probe p;
	gomap_probe_init(&p, key, klen);
	return put_h(h, &p, gomap_hash(h, key, klen), val, NULL);
}

/* ===================================================================== */
/* --- Delete (Go's mapdelete) ------------------------------------------- */

/* An empty map without a floor goes back to the state of a fresh one: no
 * array (the next put allocates one bucket).  The slots hold no keys, so
 * nothing but the arrays is freed. */
static __attribute__((noinline)) void drop_arrays(struct gomap *h)
{
	if (h->oldbuckets)
		retireBucketArray(h, h->oldbuckets);
	if (h->buckets)
		retireBucketArray(h, h->buckets);
	h->oldbuckets = h->buckets = NULL;
	h->B = h->oldB = 0;
	h->grow = growNone;
	h->nevacuate = 0;
	h->tombstones = 0;
	h->gen++;
}

/* Find the bucket of the chain starting at bOrig that links to c. */
static struct bmap *prev_bucket(const struct barray *a, struct bmap *bOrig, struct bmap *c)
{
	struct bmap *b = bOrig;
	while (bmap_overflow(a, b) != c)
		b = bmap_overflow(a, b);
	return b;
}

/* The body of gomap__delete_h, inlined into gomap_delete as well: no call,
 * and the probe stays in registers (5-10% of a small map's delete). */
static inline __attribute__((always_inline)) bool delete_h(struct gomap *h, const struct gomap_probe *p,
							   uint64_t hash, void **old, uint64_t *old_key)
{
	if (h->count == 0) {
		gomap_check_not_writing(h);
		return false;
	}
	bool found = false;
	writer_begin(h);
	op_begin(h);
	/* If the evacuation fails for lack of memory, nothing moved and the
	 * lookup below finds the key where it is. */
	if (growing(h))
		deleteWork(h);

	const struct barray *a = h->buckets;
	struct bmap *b = bucket_at(a, hash & bucketMask(h->B));
	if (growing(h)) {
		struct bmap *ob = bucket_at(h->oldbuckets, hash & bucketMask(h->oldB));
		if (!evacuated(ob)) {
			a = h->oldbuckets;
			b = ob;
		}
	}
	struct bmap *bOrig = b;
	uint8_t top = tophash(hash);
	for (; b; b = bmap_overflow(a, b)) {
		/* All 8 tophash bytes at once, as in gomap_lookup_h. */
		for (uint64_t mm = tophash_match(b, top); mm; mm = match_drop(mm, match_slot(mm))) {
			unsigned i = match_slot(mm);
			if (!slot_key_eq(b, i, p))
				continue;
			if (old)
				*old = b->elems[i];
			if (old_key)
				*old_key = b->keys[i];
			free_slot_key(h, b, i);
			/* Only the state changes (difference 8): an empty
			 * slot's key and value words are never read, and
			 * set_slot writes all of them. */
			b->tophash[i] = emptyOne;
			h->tombstones++;
			/* If the bucket now ends in a run of emptyOne states,
			 * change those to emptyRest, walking back across the
			 * chain, so probes keep stopping early. */
			if (i == bucketCnt - 1) {
				struct bmap *next = bmap_overflow(a, b);
				if (next && next->tophash[0] != emptyRest)
					goto notLast;
			} else if (b->tophash[i + 1] != emptyRest) {
				goto notLast;
			}
			for (;;) {
				b->tophash[i] = emptyRest;
				h->tombstones--;
				if (i == 0) {
					if (b == bOrig)
						break; /* beginning of the initial bucket */
					b = prev_bucket(a, bOrig, b);
					i = bucketCnt - 1;
				} else {
					i--;
				}
				if (b->tophash[i] != emptyOne)
					break;
			}
notLast:
			found = true;
			h->count--;
			h->delrun++;
			/* Reset the hash seed to make it more difficult for
			 * attackers to repeatedly trigger hash collisions (Go
			 * issue 25237). */
			if (h->count == 0 && h->random_seed)
				h->hash0 = syncmap__random_seed();
			goto done;
		}
		if (tophash_match(b, emptyRest))
			break; /* every later slot of the chain is empty */
	}
done:
	/* Give memory back once the map is mostly empty (difference 9).  Once
	 * it is empty, drop the arrays outright (given back like any retired
	 * array): shrinking level by level down to nothing would move the
	 * last keys for nothing.  A lone bucket (B = 0) is kept for the next
	 * put. */
	if (found && h->count == 0 && h->Bfloor == 0 && (h->B > 0 || growing(h)))
		drop_arrays(h);
	else if (found && !growing(h) && h->B > h->Bfloor && underLoadFactor(h->count, h->B))
		startShrink(h);
	op_end(h);
	writer_end(h);
	return found;
}

bool gomap__delete_h(struct gomap *h, const struct gomap_probe *p, uint64_t hash, void **old, uint64_t *old_key)
{
	return delete_h(h, p, hash, old, old_key);
}

bool gomap_delete(struct gomap *h, const void *key, size_t klen, void **old)
{
	if (bad_input(h, key, klen)) {
		errno = EINVAL;
		return false;
	}
	if (h->count == 0)
		return false;
	struct gomap_probe p;
	gomap_probe_init(&p, key, klen);
	return delete_h(h, &p, gomap_hash(h, key, klen), old, NULL);
}

/* ===================================================================== */
/* --- Clear ------------------------------------------------------------- */

void gomap_clear(struct gomap *h)
{
	if (!h)
		return;
	writer_begin(h);
	release_all(h);
	free_array_keys(h, h->oldbuckets);
	free_array_keys(h, h->buckets);
	freeBucketArray(h, h->oldbuckets);
	h->oldbuckets = NULL;
	h->grow = growNone;
	h->nevacuate = 0;
	/* Back to the size the map was created with: a fresh array is O(1)
	 * (from the block cache, or mmap or calloc) where re-zeroing the old
	 * one in place is O(size).  If even that allocation fails, re-zero
	 * the current array in place. */
	struct barray *keep = h->buckets;
	struct barray *fresh = NULL;
	if (keep && h->Bfloor > 0)
		fresh = makeBucketArray(h, h->Bfloor);
	if (keep && (fresh || h->Bfloor == 0)) {
		freeBucketArray(h, keep);
		h->buckets = fresh;
		h->B = h->Bfloor;
	} else if (keep) {
		for (unsigned k = 0; k < keep->nchunks; k++) {
			syncmap__block_free(keep->chunks[k], chunk_bytes(k), chunk_dirty(keep, k));
			h->work.bytes -= chunk_bytes(k);
			keep->chunks[k] = NULL;
		}
		memset(bucket_at(keep, 0), 0, (keep->nbuckets + keep->npre) * sizeof(struct bmap));
		keep->nchunks = keep->chunkused = keep->nextpre = keep->noverflow = 0;
	}
	h->count = 0;
	h->tombstones = 0;
	if (h->random_seed)
		h->hash0 = syncmap__random_seed();
	h->gen++;
	writer_end(h);
}

/* ===================================================================== */
/* --- Stats ------------------------------------------------------------- */

void gomap_stats(const struct gomap *h, struct gomap_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!h)
		return;
	st->count = h->count;
	st->B = h->B;
	st->growing = growing(h);
	st->nevacuate = h->nevacuate;
	st->tombstones = h->tombstones;
	if (h->buckets) {
		st->buckets += h->buckets->nbuckets;
		st->overflow += h->buckets->noverflow;
	}
	if (h->oldbuckets) {
		st->buckets += h->oldbuckets->nbuckets;
		st->overflow += h->oldbuckets->noverflow;
	}
}

void gomap_work(const struct gomap *h, struct gomap_work *w)
{
	if (!w)
		return;
	memset(w, 0, sizeof(*w));
	if (!h)
		return;
	*w = h->work;
	w->bytes = h->work.bytes + h->key_bytes;
}

/* ===================================================================== */
/* --- Iteration --------------------------------------------------------- */

/*
 * Go's iterator walks the bucket array it started with and relies on the
 * garbage collector to keep that array alive through any growth.  Without a
 * GC the array may be freed between two calls, so gomap's iterator keeps no
 * pointer across a change of layout.  Its position is a point in the key
 * space ordered by the bit-reversed hash: the keys of bucket i at any size
 * 2^L form one contiguous interval of that order, and a doubling or a
 * shrink only splits or merges neighbouring intervals.  So the position
 * survives any change of size, and "every key before the cursor was
 * handled" stays true.  Within one bucket keys are returned in that order,
 * from a small sorted buffer that is rebuilt whenever the map's generation
 * says keys may have moved or a slot been reused.
 *
 * Order of a key: bitrev64(hash) - rot (mod 2^64), rot random per
 * iteration (Go's random start bucket and offset).  Two keys with the same
 * 64-bit hash are ordered by their bytes.
 */

enum { ITER_FRESH = 0, ITER_RUNNING = 1, ITER_DONE = 2 };

/* Keys of one order value that a rebuild can skip (64-bit hash ties). */
#define ITER_TIES 8
_Static_assert(GOMAP_ITER_BUF + ITER_TIES <= UINT8_MAX, "buffer positions fit gomap_iter's uint8_t fields");

static inline uint64_t bitrev64(uint64_t x)
{
	x = ((x >> 1) & 0x5555555555555555ULL) | ((x & 0x5555555555555555ULL) << 1);
	x = ((x >> 2) & 0x3333333333333333ULL) | ((x & 0x3333333333333333ULL) << 2);
	x = ((x >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((x & 0x0F0F0F0F0F0F0F0FULL) << 4);
	return __builtin_bswap64(x);
}

void gomap_iter_init(struct gomap_iter *it, struct gomap *h)
{
	if (!it)
		return;
	memset(it, 0, sizeof(*it));
	it->m = h;
	it->rot = syncmap__rand64();
	it->state = h ? ITER_FRESH : ITER_DONE;
}

struct iter_cand {
	uint64_t order;
	uintptr_t slot;
};

static int key_cmp(uintptr_t a, uintptr_t b)
{
	size_t la, lb;
	const void *ka = slot_key((const struct bmap *)(a & ~SLOT_TAG_MASK), (unsigned)(a & SLOT_TAG_MASK), &la);
	const void *kb = slot_key((const struct bmap *)(b & ~SLOT_TAG_MASK), (unsigned)(b & SLOT_TAG_MASK), &lb);
	int c = memcmp(ka, kb, la < lb ? la : lb);
	return c ? c : (la > lb) - (la < lb);
}

static bool cand_less(const struct iter_cand *x, const struct iter_cand *y)
{
	if (x->order != y->order)
		return x->order < y->order;
	return key_cmp(x->slot, y->slot) < 0;
}

/* Offer one live slot to the sorted candidate list (keeps the smallest). */
static void iter_offer(struct iter_cand *cand, unsigned cap, unsigned *n, size_t *total,
		       const struct iter_cand *c)
{
	++*total;
	if (*n == cap && !cand_less(c, &cand[cap - 1]))
		return;
	unsigned j = *n < cap ? (*n)++ : cap - 1;
	while (j > 0 && cand_less(c, &cand[j - 1])) {
		cand[j] = cand[j - 1];
		j--;
	}
	cand[j] = *c;
}

static void iter_scan_chain(struct gomap_iter *it, const struct barray *a, struct bmap *b,
			    struct iter_cand *cand, unsigned cap, unsigned *n, size_t *total)
{
	const struct gomap *h = it->m;
	for (; b; b = bmap_overflow(a, b)) {
		for (unsigned i = 0; i < bucketCnt; i++) {
			if (b->tophash[i] < minTopHash)
				continue;
			struct iter_cand c = {
				.order = bitrev64(slot_hash(b, i, h->hash0)) - it->rot,
				.slot = (uintptr_t)b | i,
			};
			if (c.order < it->cursor || c.order > it->end)
				continue;
			iter_offer(cand, cap, n, total, &c);
		}
	}
}

/* Fill the buffer with the next keys of the interval holding the cursor. */
static void iter_build(struct gomap_iter *it)
{
	const struct gomap *h = it->m;
	unsigned L = 0;
	if (h->buckets)
		L = growing(h) && h->oldB > h->B ? h->oldB : h->B;
	uint64_t p = it->cursor + it->rot;
	uint64_t low = UINT64_MAX >> L; /* L <= MAX_B < 64 */
	if (__builtin_add_overflow(it->cursor, low & ~p, &it->end))
		it->end = UINT64_MAX;
	size_t idx = (size_t)(bitrev64(p) & bucketMask(L));

	struct iter_cand cand[GOMAP_ITER_BUF + ITER_TIES];
	unsigned skip = it->skip < ITER_TIES ? it->skip : ITER_TIES;
	unsigned cap = GOMAP_ITER_BUF + skip, n = 0;
	size_t total = 0;
	if (h->buckets) {
		iter_scan_chain(it, h->buckets, bucket_at(h->buckets, idx & bucketMask(h->B)), cand, cap, &n,
				&total);
		if (growing(h)) {
			struct bmap *ob = bucket_at(h->oldbuckets, idx & bucketMask(h->oldB));
			if (!evacuated(ob))
				iter_scan_chain(it, h->oldbuckets, ob, cand, cap, &n, &total);
		}
	}
	/* Drop the keys tied at the cursor that were already returned. */
	unsigned first = 0;
	while (first < skip && first < n && cand[first].order == it->cursor)
		first++;
	it->n = 0;
	for (unsigned j = first; j < n && it->n < GOMAP_ITER_BUF; j++, it->n++) {
		it->buf[it->n].order = cand[j].order;
		it->buf[it->n].slot = cand[j].slot;
	}
	it->partial = total - first > it->n;
	it->i = 0;
	it->gen = h->gen;
	it->seed = h->hash0;
	it->state = ITER_RUNNING;
}

bool gomap_iter_next(struct gomap_iter *it, const void **key, size_t *klen, void **val)
{
	if (!it || it->state == ITER_DONE)
		return false;
	struct gomap *h = it->m;
	gomap_check_not_writing(h);
	if (it->state == ITER_RUNNING && it->seed != h->hash0) {
		/* The map was emptied and took a new seed: every key present
		 * when the iteration started is gone, and the keys inserted since
		 * have new positions that could put one already returned ahead
		 * of the cursor.  Ending here keeps every promise. */
		it->state = ITER_DONE;
		return false;
	}
	for (;;) {
		if (it->state == ITER_RUNNING && it->gen == h->gen && it->seed == h->hash0) {
			while (it->i < it->n) {
				uint64_t order = it->buf[it->i].order;
				uintptr_t s = it->buf[it->i].slot;
				it->i++;
				if (order == it->cursor && it->skip > 0) {
					it->skip++;
				} else {
					it->cursor = order;
					it->skip = 1;
				}
				struct bmap *b = (struct bmap *)(s & ~SLOT_TAG_MASK);
				unsigned i = (unsigned)(s & SLOT_TAG_MASK);
				if (b->tophash[i] < minTopHash)
					continue; /* deleted since the buffer was built */
				size_t kl;
				const void *k = slot_key(b, i, &kl);
				if (key)
					*key = k;
				if (klen)
					*klen = kl;
				if (val)
					*val = b->elems[i];
				return true;
			}
			if (!it->partial) {
				/* The interval is done: move to the next one. */
				if (it->end == UINT64_MAX) {
					it->state = ITER_DONE;
					return false;
				}
				it->cursor = it->end + 1;
				it->skip = 0;
			}
		}
		iter_build(it);
	}
}

size_t gomap_set_cache_limit(size_t bytes)
{
	return syncmap__block_cache_set_limit(bytes);
}
