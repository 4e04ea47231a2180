/*
 * gomap_impl.h - gomap's data structures and the internal API the concurrent
 * map builds on.  Not installed.
 *
 * SPDX-License-Identifier: MIT
 *
 * Names follow Go 1.19's runtime/map.go (hmap -> struct gomap, bmap,
 * tophash, emptyRest, emptyOne, evacuatedX/Y, evacuatedEmpty, minTopHash,
 * nevacuate, noverflow, sameSizeGrow, hashWriting) so gomap.c can be read
 * side by side with map.go.
 */
#ifndef SM_GOMAP_IMPL_H
#define SM_GOMAP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockcache.h"
#include "gomap.h"
#include "hash.h"

#ifndef GOMAP_WRITE_CHECK
#define GOMAP_WRITE_CHECK 1
#endif

enum {
	/* A bucket holds 8 slots: an 8-byte tophash array, then 8 keys, then
	 * 8 values (Go's bucketCntBits / bucketCnt). */
	bucketCntBits = 3,
	bucketCnt = 1 << bucketCntBits,

	/* Grow when the average load would exceed 6.5 keys per bucket.  Go
	 * measured 6.5 as the point where overflow (20.9% of buckets) and
	 * probe lengths are still modest; Num/Den keeps the math integral. */
	loadFactorNum = 13,
	loadFactorDen = 2,
};

/* tophash values below minTopHash are slot states, not hash bytes. */
enum {
	emptyRest = 0,      /* empty, and every later slot of the chain is too: probes stop */
	emptyOne = 1,       /* empty (a tombstone): probes go on */
	evacuatedX = 2,     /* moved to the first half (same index) of the new array */
	evacuatedY = 3,     /* moved to the second half (index + old size) */
	evacuatedEmpty = 4, /* empty, and the bucket is evacuated */
	minTopHash = 5,     /* smallest tophash of a filled slot */
};

/* hmap.flags */
enum {
	hashWriting = 4, /* a writer is inside the map (misuse detector) */
};

/* What kind of evacuation is in progress (Go keeps sameSizeGrow in flags;
 * gomap adds shrinking, so it is an enum of its own). */
enum grow_kind {
	growNone = 0,
	growDouble = 1, /* B+1: each old bucket splits into X and Y */
	sameSizeGrow = 2, /* same B: rewrite densely, dropping tombstones */
	growShrink = 3, /* smaller B: old buckets i, i + 2^B, ... merge into new bucket i */
};

/* The evacuation code stores evacuatedX + (key went to Y). */
_Static_assert(evacuatedY == evacuatedX + 1, "X and Y differ by the hash bit");
/* empty_slots relies on the two empty states differing in bit 0 alone. */
_Static_assert(emptyRest == 0 && emptyOne == 1, "empty states are 0 and 1");

/* Key length codes, KMETA_BITS per slot in bmap.kmeta: 0..KEY_INLINE_MAX for
 * a key in the slot's word, KEY_INDIRECT (the largest code) for a pointer to
 * a struct gkey. */
#define KMETA_BITS 4u
#define KMETA_MASK ((1u << KMETA_BITS) - 1)
#define KEY_INLINE_MAX 8u /* keys of 0..8 bytes live in the slot itself */
#define KEY_INDIRECT KMETA_MASK
_Static_assert(KEY_INLINE_MAX < KEY_INDIRECT, "inline lengths and the indirect code are distinct");
_Static_assert(bucketCnt * KMETA_BITS <= 32, "a code per slot fits bmap.kmeta");

/* Buckets are this aligned, so the iterator keeps a slot index in the low
 * bits of a bucket's address (SLOT_TAG_MASK). */
#define BUCKET_ALIGN 16
#define SLOT_TAG_MASK ((uintptr_t)BUCKET_ALIGN - 1)
_Static_assert(bucketCnt <= BUCKET_ALIGN, "a slot index fits the alignment bits");

/*
 * One bucket: 144 bytes, the same as Go's bucket for map[int]int.  The
 * overflow link is a 32-bit index into the owning array's overflow storage
 * (not a pointer), which leaves 4 bytes for the key-length nibbles without
 * growing the bucket past Go's.
 */
struct bmap {
	uint8_t tophash[bucketCnt];
	uint32_t overflow; /* index of the next bucket of the chain in its barray; 0 = none */
	uint32_t kmeta;    /* 4 bits per slot: key length 0..8 inline, or KEY_INDIRECT */
	uint64_t keys[bucketCnt];
	void *elems[bucketCnt];
};

/* A key longer than 8 bytes: one heap block, owned by the slot holding it
 * (or, in a map made with GOMAP_INIT_KEYS_EXTERNAL, by the caller).  Its
 * hash under the map's seed is kept with it, so moving the key (evacuation,
 * iteration, the concurrent map's copy into a new table) never rehashes
 * its bytes: work on a long key costs the same as on a short one. */
struct gkey {
	size_t len;
	uint64_t hash;
	unsigned char data[];
};

/* Overflow chunks: chunk k holds (OVF_CHUNK0 << k) buckets. */
#define OVF_CHUNK0 8u
#define OVF_MAX_CHUNKS 28

/*
 * A bucket array with its overflow storage: 2^B main buckets, then (for
 * B >= 4) 2^(B-4) preallocated overflow buckets in the same block (Go's
 * makeBucketArray), then overflow buckets from chunks allocated on demand.
 * Overflow buckets are never freed one by one; they go with their array.
 */
struct barray {
	size_t nbuckets;  /* 2^B */
	size_t bytes;     /* size of this block (for syncmap__free_zeroed) */
	uint32_t npre;    /* preallocated overflow buckets after the main ones */
	uint32_t nextpre; /* preallocated ones handed out */
	uint32_t nchunks; /* chunks allocated */
	uint32_t chunkused; /* chunk buckets handed out (chunks fill in order) */
	uint32_t noverflow; /* overflow buckets handed out (Go's noverflow, exact) */
	uint32_t pad_;
	struct barray *next_release; /* retired arrays being given back (see release_step) */
	struct sm_block_release rel;       /* how far this block is given back, while retired */
	struct sm_block_release chunk_rel; /* same for chunks[nchunks - 1] */
	struct bmap *chunks[OVF_MAX_CHUNKS];
	/* nbuckets + npre buckets, BUCKET_ALIGN-aligned */
	struct bmap b[] __attribute__((aligned(BUCKET_ALIGN)));
};
_Static_assert(sizeof(struct bmap) == 144, "a bucket is 144 bytes, like Go's map[int]int bucket");
_Static_assert(sizeof(((struct bmap *)0)->keys[0]) == KEY_INLINE_MAX, "an inline key fills the slot's word");
/* Arrays and chunks come from syncmap__block_alloc (16-byte aligned); every
 * bucket after the first keeps the alignment. */
_Static_assert(BUCKET_ALIGN <= 16 && sizeof(struct bmap) % BUCKET_ALIGN == 0, "every bucket is aligned");
_Static_assert(offsetof(struct barray, b) % BUCKET_ALIGN == 0, "an array's buckets are aligned");

/* Go's hmap. */
struct gomap {
	size_t count;
	uint8_t flags;  /* hashWriting; accessed with relaxed atomics */
	uint8_t B;      /* log2 of buckets->nbuckets */
	uint8_t oldB;   /* log2 of oldbuckets->nbuckets while growing */
	uint8_t Bfloor; /* never shrink below (the hint's size) */
	uint8_t grow;   /* enum grow_kind */
	bool random_seed; /* reseed whenever the map becomes empty */
	bool huge_later;  /* GOMAP_INIT_HUGE_LATER: no huge-page advice at allocation */
	bool keys_external; /* GOMAP_INIT_KEYS_EXTERNAL: the caller owns the key blocks */
	uint64_t hash0;
	struct barray *buckets;    /* NULL until the first insert (B == 0) */
	struct barray *oldbuckets; /* non-NULL while evacuating */
	size_t nevacuate;          /* old buckets below this are evacuated */
	size_t tombstones;         /* emptyOne slots, both arrays */
	size_t delrun;             /* deletes since the last new key (mass deletion) */
	uint64_t gen;              /* bumped whenever keys may have moved or slots been reused */
	size_t key_bytes;          /* bytes of indirect key blocks */
	struct barray *releasing;  /* retired arrays still (partly) mapped */
	size_t op_evacuated, op_skipped, op_released; /* work of the current put/delete */
	struct gomap_work work;
};

/* ---- small helpers shared with the concurrent map ---------------------- */

static inline size_t bucketShift(unsigned B)
{
	return (size_t)1 << B;
}

static inline size_t bucketMask(unsigned B)
{
	return bucketShift(B) - 1;
}

static inline uint8_t tophash(uint64_t hash)
{
	uint8_t top = (uint8_t)(hash >> 56);
	if (top < minTopHash)
		top += minTopHash;
	return top;
}

static inline bool isEmpty(uint8_t x)
{
	return x <= emptyOne;
}

static inline bool evacuated(const struct bmap *b)
{
	uint8_t h = b->tophash[0];
	return h > emptyOne && h < minTopHash;
}

static inline unsigned slot_code(const struct bmap *b, unsigned i)
{
	return (b->kmeta >> (KMETA_BITS * i)) & KMETA_MASK;
}

static inline struct bmap *bucket_at(const struct barray *a, size_t i)
{
	return (struct bmap *)&a->b[i];
}

/* The next bucket of a chain, or NULL. */
static inline struct bmap *bmap_overflow(const struct barray *a, const struct bmap *b)
{
	uint32_t idx = b->overflow;
	if (__builtin_expect(idx == 0, 1))
		return NULL;
	size_t pre_end = a->nbuckets + a->npre;
	if (idx < pre_end)
		return (struct bmap *)&a->b[idx];
	size_t j = idx - pre_end;
	unsigned k = 63u - (unsigned)__builtin_clzll(j / OVF_CHUNK0 + 1);
	return &a->chunks[k][j - OVF_CHUNK0 * (((size_t)1 << k) - 1)];
}

/* A key prepared for probing: length code plus, for inline keys, the
 * zero-padded word the slot would hold.  In a GOMAP_INIT_KEYS_EXTERNAL map,
 * a put of a long key takes its struct gkey from `word`. */
struct gomap_probe {
	const void *key;
	size_t klen;
	uint64_t word;
	unsigned code;
};

static inline void gomap_probe_init(struct gomap_probe *p, const void *key, size_t klen)
{
	p->key = key;
	p->klen = klen;
	p->word = 0;
	if (klen <= KEY_INLINE_MAX) {
		p->code = (unsigned)klen;
		if (klen == 8)
			memcpy(&p->word, key, 8);
		else if (klen)
			memcpy(&p->word, key, klen);
	} else {
		p->code = KEY_INDIRECT;
	}
}

static inline bool slot_key_eq(const struct bmap *b, unsigned i, const struct gomap_probe *p)
{
	if (slot_code(b, i) != p->code)
		return false;
	if (p->code != KEY_INDIRECT)
		return b->keys[i] == p->word;
	const struct gkey *k = (const struct gkey *)(uintptr_t)b->keys[i];
	return k->len == p->klen && memcmp(k->data, p->key, p->klen) == 0;
}

/* The hash of the key in slot i under seed (the map's hash0): a long key
 * carries it; a short one is rehashed (at most 8 bytes). */
static inline uint64_t slot_hash(const struct bmap *b, unsigned i, uint64_t seed)
{
	unsigned code = slot_code(b, i);
	if (code == KEY_INDIRECT)
		return ((const struct gkey *)(uintptr_t)b->keys[i])->hash;
	return sm_hash(&b->keys[i], code, seed);
}

/* The bytes and length of the key in slot i. */
static inline const void *slot_key(const struct bmap *b, unsigned i, size_t *klen)
{
	unsigned code = slot_code(b, i);
	if (code != KEY_INDIRECT) {
		*klen = code;
		return &b->keys[i];
	}
	const struct gkey *k = (const struct gkey *)(uintptr_t)b->keys[i];
	*klen = k->len;
	return k->data;
}

void gomap__die(const char *msg) __attribute__((noreturn, cold));

static inline void gomap_check_not_writing(const struct gomap *h)
{
#if GOMAP_WRITE_CHECK
	if (__builtin_expect(__atomic_load_n(&h->flags, __ATOMIC_RELAXED) & hashWriting, 0))
		gomap__die("concurrent map read and map write");
#else
	(void)h;
#endif
}

/* Bytes of a tophash word equal to `top`, as a mask of their high bits
 * (SWAR: all 8 slots compared at once, exact, no false positives). */
static inline uint64_t tophash_match(const struct bmap *b, uint8_t top)
{
	uint64_t w;
	memcpy(&w, b->tophash, sizeof(w));
	uint64_t x = w ^ (0x0101010101010101ULL * top);
	uint64_t y = (x & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL;
	return ~(y | x | 0x7F7F7F7F7F7F7F7FULL);
}

/* Bytes of a tophash word holding a key (>= minTopHash), as high bits.
 * (x & 0x7F) + (0x80 - minTopHash) carries into bit 7 exactly when
 * x & 0x7F >= minTopHash, with no carry across bytes; or-ing x adds the
 * bytes >= 128. */
_Static_assert(minTopHash > 0 && minTopHash < 0x80, "filled_slots' carry trick");
static inline uint64_t filled_slots(uint64_t w)
{
	uint64_t t = (w & 0x7F7F7F7F7F7F7F7FULL) + 0x0101010101010101ULL * (0x80 - minTopHash);
	return (t | w) & 0x8080808080808080ULL;
}

/* Bytes of a tophash word that are empty slots (emptyRest or emptyOne), as
 * high bits: with bit 0 cleared, exactly those bytes are zero. */
static inline uint64_t empty_slots(uint64_t w)
{
	uint64_t x = w & 0xFEFEFEFEFEFEFEFEULL;
	uint64_t t = ((x & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | x;
	return ~t & 0x8080808080808080ULL;
}

/* How many bytes of w equal v.  The matches' high bits, shifted to bit 0 of
 * their bytes, are summed into the top byte by one multiply (no popcount
 * instruction in the baseline x86-64 ISA: __builtin_popcountll is a libgcc
 * call there, 2.5% of a put/delete loop's time). */
static inline unsigned bytes_equal_count(uint64_t w, uint8_t v)
{
	uint64_t x = w ^ (0x0101010101010101ULL * v);
	uint64_t y = (x & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL;
	uint64_t m = ~(y | x | 0x7F7F7F7F7F7F7F7FULL) >> 7;
	return (unsigned)((m * 0x0101010101010101ULL) >> 56);
}

/* The slot index of the lowest match and the remaining matches.  On
 * little-endian machines byte i of the word is tophash[i]. */
static inline unsigned match_slot(uint64_t m)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (unsigned)__builtin_ctzll(m) >> 3;
#else
	return (unsigned)__builtin_clzll(m) >> 3;
#endif
}

static inline uint64_t match_drop(uint64_t m, unsigned slot)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	(void)slot;
	return m & (m - 1);
#else
	return m & ~(0x8000000000000000ULL >> (8 * slot));
#endif
}

/*
 * Lookup with a precomputed hash (Go's mapaccess): returns the address of
 * the value slot, or NULL.  Pure read: safe from many threads while nobody
 * writes.  Go scans the tophash bytes one by one and stops at the first
 * emptyRest; comparing all 8 at once finds the same candidates, and since
 * every slot after an emptyRest is emptyRest too, a bucket holding any
 * emptyRest ends the chain for this probe.  Always inlined so the
 * concurrent map's Load path has no call.
 */
static inline __attribute__((always_inline)) void **gomap_lookup_h(const struct gomap *h,
								   const struct gomap_probe *p, uint64_t hash)
{
	if (h->count == 0)
		return NULL;
	gomap_check_not_writing(h);
	const struct barray *a = h->buckets;
	struct bmap *b = (struct bmap *)&a->b[hash & bucketMask(h->B)];
	if (__builtin_expect(h->oldbuckets != NULL, 0)) {
		struct bmap *ob = (struct bmap *)&h->oldbuckets->b[hash & bucketMask(h->oldB)];
		if (!evacuated(ob)) {
			a = h->oldbuckets;
			b = ob;
		}
	}
	uint8_t top = tophash(hash);
	for (;;) {
		for (uint64_t m = tophash_match(b, top); m;) {
			unsigned i = match_slot(m);
			if (slot_key_eq(b, i, p))
				return &b->elems[i];
			m = match_drop(m, i);
		}
		if (tophash_match(b, emptyRest))
			return NULL;
		b = bmap_overflow(a, b);
		if (!b)
			return NULL;
	}
}

/* ---- internal API for the concurrent map ------------------------------ */

/* gomap__init flags.  FLOOR: `hint` also bounds shrinking (the public hint);
 * without it the hint is only a presize.  HUGE_LATER: do not ask for huge
 * pages when arrays are allocated; call gomap__advise_huge once the map is
 * done being written.  Faulting in a 2 MiB page costs 0.1-2 ms here (zeroing,
 * compaction), which syncmap's dirty map would pay under its mutex; its
 * snapshot, never written, can have them. */
#define GOMAP_INIT_FLOOR 1u
#define GOMAP_INIT_HUGE_LATER 2u
/* KEYS_EXTERNAL: the map never allocates or frees key blocks: a put of a
 * new long key stores the struct gkey the caller passes in probe->word
 * (made by gomap__key_new with this map's seed), delete hands the block back
 * (gomap__delete_h's *old_key), and clear/destroy leave them alone.  The
 * concurrent map uses it to share one copy of a key between its snapshot
 * and its dirty map. */
#define GOMAP_INIT_KEYS_EXTERNAL 4u
/* Initialise a gomap embedded in a larger struct. */
int gomap__init(struct gomap *h, uint64_t seed, size_t hint, unsigned flags);
/* Ask for huge pages for the map's bucket arrays (see GOMAP_INIT_HUGE_LATER):
 * advice only, O(1); the kernel collapses pages in the background. */
void gomap__advise_huge(struct gomap *h);
/* Release what gomap__init and later operations allocated (not h itself). */
void gomap__destroy(struct gomap *h);

static inline uint64_t gomap_hash(const struct gomap *h, const void *key, size_t klen)
{
	return sm_hash(key, klen, h->hash0);
}

int gomap__put_h(struct gomap *h, const struct gomap_probe *p, uint64_t hash, void *val);
/* Insert key -> val if the key is absent (0), else leave the map's keys and
 * values as they are and point *found at the key's value slot (1);
 * -ENOMEM as gomap__put_h.  A lookup and an insert in one probe. */
int gomap__insert_or_find_h(struct gomap *h, const struct gomap_probe *p, uint64_t hash, void *val, void ***found);
/* old_key (may be NULL): the removed slot's key word (a struct gkey * for a
 * long key; what a KEYS_EXTERNAL caller must free). */
bool gomap__delete_h(struct gomap *h, const struct gomap_probe *p, uint64_t hash, void **old, uint64_t *old_key);

/* A key block for klen > 8 bytes with its hash; NULL on ENOMEM. */
struct gkey *gomap__key_new(const void *key, size_t klen, uint64_t hash);
static inline size_t gomap_key_bytes(const struct gkey *k)
{
	return sizeof(*k) + k->len;
}

/*
 * A walk over every key of a map that nobody modifies while the walk lasts
 * (the concurrent map's frozen read snapshot).  Unlike gomap_iter it hashes
 * nothing and allocates nothing.  Work is metered: each bucket entered
 * (main or overflow) costs one unit of *budget.
 */
struct gomap_walk {
	const struct gomap *h;
	const struct barray *arr;
	const struct bmap *b; /* bucket being read, NULL between buckets */
	size_t k;             /* bucket indices started in this phase */
	size_t start;         /* first bucket index (random or 0) */
	unsigned slot;
	unsigned phase; /* 0: old array (unevacuated buckets), 1: current array, 2: done */
};

static inline void gomap_walk_phase(struct gomap_walk *w, unsigned phase)
{
	w->phase = phase;
	w->arr = phase == 0 ? w->h->oldbuckets : phase == 1 ? w->h->buckets : NULL;
	w->k = 0;
	w->b = NULL;
	if (phase < 2 && !w->arr)
		gomap_walk_phase(w, phase + 1);
}

/* Inline, like the rest of the walk: Range over many small shards calls it
 * once per shard. */
static inline void gomap_walk_init(struct gomap_walk *w, const struct gomap *h, uint64_t start)
{
	w->h = h;
	w->start = (size_t)start;
	w->slot = 0;
	gomap_walk_phase(w, h->count ? 0 : 2);
}

/* 1: a key was returned; 0: the walk is over; -1: *budget ran out first
 * (call again with more budget to go on).  Inline: Range pays one call per
 * key otherwise. */
static inline int gomap_walk_next(struct gomap_walk *w, size_t *budget, const void **key, size_t *klen,
				  void ***val)
{
	for (;;) {
		if (w->b) {
			while (w->slot < bucketCnt) {
				unsigned i = w->slot++;
				if (w->b->tophash[i] >= minTopHash) {
					*key = slot_key(w->b, i, klen);
					*val = (void **)&w->b->elems[i];
					return 1;
				}
			}
			w->b = bmap_overflow(w->arr, w->b);
			w->slot = 0;
			if (w->b) {
				if (*budget == 0)
					return -1;
				--*budget;
			}
			continue;
		}
		if (w->phase == 2)
			return 0;
		size_t nb = w->arr->nbuckets;
		if (w->k == nb) {
			gomap_walk_phase(w, w->phase + 1);
			continue;
		}
		if (*budget == 0)
			return -1;
		--*budget;
		const struct bmap *b = bucket_at(w->arr, (w->start + w->k++) & (nb - 1));
		/* An evacuated old bucket's keys are found in the new array. */
		if (w->phase == 0 && evacuated(b))
			continue;
		w->b = b;
		w->slot = 0;
	}
}

/* The key gomap_walk_next returned last, as a probe whose word is the
 * slot's key word (so a KEYS_EXTERNAL map can adopt the same block), and
 * its hash (stored for long keys: no rehash). */
static inline uint64_t gomap_walk_probe(const struct gomap_walk *w, struct gomap_probe *p)
{
	const struct bmap *b = w->b;
	unsigned i = w->slot - 1;
	p->key = slot_key(b, i, &p->klen);
	p->code = slot_code(b, i);
	p->word = b->keys[i];
	return slot_hash(b, i, w->h->hash0);
}

#endif
