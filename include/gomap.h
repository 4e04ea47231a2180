/*
 * gomap.h - a single-threaded hash map built the way Go's runtime map is built.
 *
 * SPDX-License-Identifier: MIT
 *
 * gomap is a C port of Go 1.19's runtime/map.go: 8-slot buckets led by a
 * tophash byte per slot, tombstones (emptyOne) and early-stop markers
 * (emptyRest), overflow chains with overflow buckets preallocated alongside
 * the bucket array, incremental evacuation when the map doubles or rewrites
 * itself at the same size, and Go's iteration contract.  Beyond Go, it gives
 * memory back: once the load falls low enough it shrinks, incrementally, with
 * the same evacuation machinery.
 *
 * Keys are byte strings of any length (including 0); the map copies them.
 * Keys of at most 8 bytes are stored inline in the bucket; longer keys are
 * stored in one heap block each.  Values are opaque `void *` words; NULL is a
 * valid value, distinct from absence.  The map never dereferences or frees a
 * value.
 *
 * Thread-safety: none.  A gomap may be read by several threads at once as
 * long as nobody writes it; any write (put, delete, clear, free) must exclude
 * every other access.  Like Go, gomap has a cheap misuse detector: a writer
 * sets a flag for the duration of the write, and a writer or reader that
 * finds it set aborts the process with "gomap: concurrent map writes" (or
 * "... read and map write").  It catches many, not all, races; it is not a
 * lock.  Build with -Dwrite_check=false to compile it out.
 *
 * Errors: functions returning int return 0 or a negated errno value.
 * Functions returning bool set errno only where documented.  Bad input (a NULL
 * map, a NULL key with a nonzero length) is reported, never a crash.
 *
 * Hashing: XXH3 (libxxhash) with a 64-bit per-map seed, random unless the
 * caller fixes it, so keys crafted to collide under one seed do not collide
 * under another.  A map whose seed is random takes a fresh one whenever it
 * becomes empty (Go issue 25237).
 */
#ifndef GOMAP_H
#define GOMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) || defined(__CYGWIN__)
#define GOMAP_API
#elif defined(__GNUC__)
#define GOMAP_API __attribute__((visibility("default")))
#else
#define GOMAP_API
#endif

struct gomap;

/*
 * Options for gomap_new.  A zeroed struct (or a NULL pointer) means defaults.
 *   seed: the hash seed; 0 picks a random seed for this map (and a fresh one
 *         each time the map becomes empty).  A nonzero seed is used as is and
 *         never changed, which makes bucket placement reproducible.
 *   hint: preallocate buckets for this many keys: no growth happens until the
 *         map holds more than `hint` keys, and the map never shrinks below
 *         that capacity.
 */
struct gomap_options {
	uint64_t seed;
	size_t hint;
};

/*
 * Create a map.  `opts` may be NULL.
 * Returns the map, or NULL with errno = ENOMEM (allocation failed) or
 * EINVAL (hint too large to be addressed).
 */
GOMAP_API struct gomap *gomap_new(const struct gomap_options *opts);

/* Free the map, its buckets and its key copies.  Values are not touched.
 * NULL is fine.  Any iterator on the map becomes invalid. */
GOMAP_API void gomap_free(struct gomap *m);

/* Number of keys in the map; 0 for NULL.  O(1). */
GOMAP_API size_t gomap_len(const struct gomap *m);

/*
 * Look `key` up.  On a hit, store its value in *val (when val is not NULL)
 * and return true.  On a miss return false and leave *val alone; errno is
 * then set to EINVAL if the input was bad (m NULL, or key NULL with
 * klen > 0), and left unchanged otherwise.  Never modifies the map.
 */
GOMAP_API bool gomap_get(const struct gomap *m, const void *key, size_t klen, void **val);

/*
 * Insert `key` with `val`, or replace the value of an existing key.
 * Returns 0, -EINVAL on bad input, or -ENOMEM when an allocation (the
 * bucket array, a new array for growth, an overflow bucket, the key copy)
 * failed; on any error the map is exactly as it was: every key is still
 * there with its value and iteration is unaffected.
 * Work: O(1) amortized and O(1) worst case apart from the allocation itself:
 * at most two old buckets are evacuated and a bounded number of already
 * evacuated ones skipped (see gomap_work).
 */
GOMAP_API int gomap_put(struct gomap *m, const void *key, size_t klen, void *val);

/*
 * Remove `key`.  Returns true and stores the removed value in *old (when old
 * is not NULL) if the key was present; returns false otherwise (errno =
 * EINVAL on bad input).  Never fails for lack of memory: if the map would
 * like to start shrinking and cannot allocate, it simply stays larger.
 */
GOMAP_API bool gomap_delete(struct gomap *m, const void *key, size_t klen, void **old);

/*
 * Remove every key and give the memory back: the map returns to the size it
 * was created with (its hint; Go instead keeps and re-zeroes its current
 * array).  Frees key copies, overflow buckets and any old array left from an
 * unfinished growth (big arrays are zeroed into a bounded process-wide cache
 * of blocks that later maps reuse, or unmapped when it is full).
 * O(size of the map).  NULL is a no-op.
 * Iterators on the map stay valid and see no key that was present before.
 */
GOMAP_API void gomap_clear(struct gomap *m);

/*
 * Iteration, with Go's contract:
 *   - iteration starts at a random point, so two iterations of the same map
 *     generally visit keys in different orders;
 *   - each key is returned at most once;
 *   - a key present for the whole iteration is returned exactly once;
 *   - a key deleted before the iterator reaches it is not returned;
 *   - a key inserted during iteration may or may not be returned;
 *   - the map may be modified (put, delete, growth, shrink, clear) between
 *     calls to gomap_iter_next; the iterator keeps its promises.
 * Each returned key is returned with its current value.  The key pointer
 * stays valid until the map is next modified.  An exhausted iterator keeps
 * returning false.  The struct holds no resources: drop it at any time,
 * no cleanup call exists.  Iterating a map that is being written by another
 * thread is a race (the write detector may abort).
 *
 * Internally the iterator walks the key space in the order of the
 * bit-reversed hash (so its position survives any change of bucket count)
 * and buffers the keys of one bucket at a time, sorted; the fields below are
 * private.
 */
#define GOMAP_ITER_BUF 16
struct gomap_iter {
	struct gomap *m;
	uint64_t rot;     /* random rotation: where this iteration starts */
	uint64_t cursor;  /* next key to return has order >= cursor */
	uint64_t end;     /* last order value of the current range (inclusive) */
	uint64_t gen;     /* map generation the buffer was built at */
	uint64_t seed;    /* map seed the buffer was built with */
	uint32_t skip;    /* keys of order == cursor already returned (ties) */
	uint8_t n, i;     /* buffer fill and read position */
	uint8_t state;    /* private: fresh, running, exhausted */
	uint8_t partial;  /* buffer holds only the first GOMAP_ITER_BUF keys */
	struct {
		uint64_t order;
		uintptr_t slot; /* bucket address | slot index */
	} buf[GOMAP_ITER_BUF];
};

/* Start iterating `m` (NULL gives an iterator that returns false).  A NULL
 * `it` is bad input: nothing happens. */
GOMAP_API void gomap_iter_init(struct gomap_iter *it, struct gomap *m);

/*
 * Return the next key: *key and *klen describe it (bytes owned by the map),
 * *val holds its value.  Any out-pointer may be NULL.  Returns false when
 * the iteration is over, and for a NULL `it`.
 */
GOMAP_API bool gomap_iter_next(struct gomap_iter *it, const void **key, size_t *klen, void **val);

/*
 * A description of the map's shape, for tests and tuning.
 *   count:      keys in the map (== gomap_len)
 *   B:          log2 of the number of buckets of the current array
 *   buckets:    main buckets held: 2^B, plus the old array while growing
 *   overflow:   overflow buckets linked into chains (both arrays)
 *   tombstones: emptyOne slots (both arrays)
 *   growing:    an evacuation is in progress (old array still held)
 *   nevacuate:  old buckets below this index are evacuated
 * O(1): every field is maintained incrementally.
 */
struct gomap_stats {
	size_t count;
	unsigned B;
	size_t buckets;
	size_t overflow;
	size_t tombstones;
	bool growing;
	size_t nevacuate;
};
GOMAP_API void gomap_stats(const struct gomap *m, struct gomap_stats *st);

/*
 * Work accounting: no put or delete does work proportional to the map's
 * size.  These counters make that checkable.
 *   last_evacuated: old buckets evacuated by the last put/delete
 *   last_skipped:   already evacuated old buckets the last put/delete
 *                   stepped over while advancing nevacuate
 *   max_evacuated, max_skipped: the largest of each seen so far
 *   total_evacuated: all evacuations since the map was created
 *   last_released:  bytes of retired arrays the last put/delete zeroed for
 *                   reuse or gave back to the system (an array left behind
 *                   by a finished evacuation goes a slice per write, not at
 *                   once)
 *   max_released:   the largest last_released seen so far
 *   grows, same_size_grows, shrinks: evacuation cycles started, by kind
 *   bytes: memory the map holds (arrays, overflow chunks, key copies,
 *          retired arrays not yet given back)
 */
struct gomap_work {
	size_t last_evacuated;
	size_t last_skipped;
	size_t max_evacuated;
	size_t max_skipped;
	size_t last_released;
	size_t max_released;
	size_t total_evacuated;
	size_t grows;
	size_t same_size_grows;
	size_t shrinks;
	size_t bytes;
};
GOMAP_API void gomap_work(const struct gomap *m, struct gomap_work *w);

/* Bounds the implementation promises for gomap_work's per-operation fields:
 * last_evacuated, last_skipped, last_released (bytes zeroed or unmapped). */
#define GOMAP_MAX_EVACUATE_PER_OP 2
#define GOMAP_MAX_SKIP_PER_OP 64
#define GOMAP_MAX_RELEASE_PER_OP ((size_t)512 << 10)

/*
 * The process-wide cache of zeroed bucket arrays, shared by every gomap and
 * syncmap.  A bucket array of 256 KiB or more that a map gives back (it
 * grew, shrank, was cleared or freed) is zeroed and kept for the next map
 * that needs one of the same size, which then gets it without a page fault
 * per page.  The cache holds at most 64 MiB by default, memory the process
 * keeps beyond its maps: the smaller arrays a map outgrew stay there until
 * a map reuses them (measured after growing to 1e6 keys: about 44 bytes per
 * key for one gomap, 20 for a syncmap with 64 shards).
 *
 * Sets the bound (bytes) and returns the previous one.  Lowering it gives
 * the blocks it no longer covers back to the system before returning; 0
 * turns the cache off (every array given back is unmapped, as a plain mmap
 * allocator would).  Thread-safe; may be called at any time.
 */
GOMAP_API size_t gomap_set_cache_limit(size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* GOMAP_H */
