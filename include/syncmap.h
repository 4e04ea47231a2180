/*
 * syncmap.h - a concurrent hash map whose reads never take a lock.
 *
 * SPDX-License-Identifier: MIT
 *
 * syncmap follows Go's sync.Map: a read-mostly snapshot (a frozen gomap of
 * key -> entry) that readers search without any lock, over a dirty map
 * guarded by a mutex that receives new keys.  Misses on keys only the dirty
 * map holds are counted; once they reach the dirty map's size, the dirty map
 * is promoted to be the new snapshot (one pointer publication).  Store,
 * Delete, Swap and CompareAndSwap on keys already in the snapshot are a CAS
 * on the key's entry, also without a lock.  It suits maps whose keys are
 * written once and read many times, and maps where threads work on disjoint
 * sets of keys (Go's guidance for sync.Map).
 *
 * Beyond Go:
 *   - no O(n) stall: Go copies the whole snapshot under its mutex on the
 *     first new key after every promotion; syncmap builds the dirty map
 *     incrementally, a bounded slice per locked operation;
 *   - memory safety without a garbage collector: retired snapshots, entries,
 *     key copies and values are reclaimed after an RCU grace period
 *     (liburcu, "bulletproof" flavor: no thread registration, threads may
 *     exit at any time), and everything is freed by syncmap_free;
 *   - syncmap_len, exact whenever no operation is in flight;
 *   - syncmap_stats.
 *
 * Keys are byte strings of any length (NULL allowed only with klen 0); the
 * map copies them.  Values are `void *` words compared by identity; NULL is
 * a valid value, distinct from absence.
 *
 * Thread-safety: every function may be called from any thread at any time,
 * concurrently with any other (syncmap_new / syncmap_free excepted: no other
 * thread may use a map while it is freed).  Every single-key operation is
 * linearizable.  A write synchronizes with (happens before) any read that
 * observes it, as in Go's memory model for sync.Map.  No thread
 * registration, no liburcu calls are asked of the caller.
 *
 * Value lifetime: with `free_value` set, the map owns the values stored in
 * it; each value that leaves the map (overwritten, deleted, swapped out,
 * replaced by CompareAndSwap, cleared, or still present at syncmap_free) is
 * passed to free_value exactly once, after a grace period, from liburcu's
 * call_rcu worker thread (or from syncmap_free).  A value returned by a call
 * made inside syncmap_read_lock()/syncmap_read_unlock() stays valid until
 * the section ends; outside a section it may be freed as soon as the call
 * returns.  Without free_value, values are opaque words the map never frees.
 *
 * Reentrancy: every function may be called inside a read section and from a
 * syncmap_range callback (including on the same map), because no operation
 * waits for a grace period.  syncmap_free is the exception: see below.
 *
 * Errors: int results are >= 0 or a negated errno (-EINVAL, -ENOMEM); bool
 * results that fail for a reason other than "no" set errno.  A NULL map or a
 * NULL key with klen > 0 is -EINVAL (or false with errno = EINVAL, or a
 * no-op for void functions); a failed allocation is -ENOMEM and changes
 * nothing.
 */
#ifndef SYNCMAP_H
#define SYNCMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) || defined(__CYGWIN__)
#define SYNCMAP_API
#elif defined(__GNUC__)
#define SYNCMAP_API __attribute__((visibility("default")))
#else
#define SYNCMAP_API
#endif

struct syncmap;

/*
 * Options for syncmap_new; a zeroed struct (or NULL) means defaults.
 *   free_value: called once, after an RCU grace period, for every value that
 *               leaves the map (see "Value lifetime" above).  NULL: values
 *               are opaque words the map never frees.
 *   free_ctx:   passed to free_value.
 *   seed:       hash seed; 0 = random per map.
 */
struct syncmap_options {
	void (*free_value)(void *val, void *ctx);
	void *free_ctx;
	uint64_t seed;
};

/*
 * Create a map.  `opts` may be NULL.  Returns NULL with errno = ENOMEM on
 * allocation failure.
 */
SYNCMAP_API struct syncmap *syncmap_new(const struct syncmap_options *opts);

/*
 * Free the map and everything in it, passing each value still present to
 * free_value.  Waits for reclamation already queued by this map (an RCU
 * barrier).  No other thread may use `m` during or after the call.  Called
 * inside a read section (where waiting for a grace period would deadlock),
 * it does not wait: the map is freed by the last of its pending reclamation
 * callbacks instead.  NULL is a no-op.
 */
SYNCMAP_API void syncmap_free(struct syncmap *m);

/*
 * Look `key` up.  Returns true and sets *val (when val is not NULL) if the
 * key is present.  Returns false if absent (errno untouched) or on bad input
 * (errno = EINVAL).  Lock-free when the key is in the read snapshot, and
 * when the snapshot has no key the dirty map lacks.
 */
SYNCMAP_API bool syncmap_load(struct syncmap *m, const void *key, size_t klen, void **val);

/*
 * Set the value of `key` (Go's Store).  Returns 0, -EINVAL, or -ENOMEM (the
 * map is unchanged and `val` was not passed to free_value).  The previous
 * value, if any, is passed to free_value after a grace period.
 */
SYNCMAP_API int syncmap_store(struct syncmap *m, const void *key, size_t klen, void *val);

/*
 * Return the existing value of `key` if present (result 1, *actual set),
 * else store `val` (result 0, *actual = val).  -EINVAL / -ENOMEM on error
 * (nothing stored).  `actual` may be NULL.
 */
SYNCMAP_API int syncmap_load_or_store(struct syncmap *m, const void *key, size_t klen, void *val,
				      void **actual);

/*
 * Delete `key`, returning its previous value in *val (when val is not NULL).
 * Returns true if the key was present; false if absent or on bad input
 * (errno = EINVAL).  The removed value goes to free_value after a grace
 * period (so *val is safe to use only inside a read section when free_value
 * is set).
 */
SYNCMAP_API bool syncmap_load_and_delete(struct syncmap *m, const void *key, size_t klen, void **val);

/* Delete `key` (a no-op if absent or on bad input). */
SYNCMAP_API void syncmap_delete(struct syncmap *m, const void *key, size_t klen);

/*
 * Set the value of `key` and return the previous one (Go's Swap).  Returns 1
 * if the key existed (*prev set to its previous value), 0 if it was new
 * (*prev untouched), -EINVAL / -ENOMEM on error (map unchanged).  `prev` may
 * be NULL.
 */
SYNCMAP_API int syncmap_swap(struct syncmap *m, const void *key, size_t klen, void *val, void **prev);

/*
 * If `key` is present with value `old` (pointer identity), replace it by
 * `new_` and return true.  Returns false if the key is absent or its value
 * differs (no allocation is made then); false with errno = ENOMEM if the
 * replacement could not be allocated (map unchanged); false with errno =
 * EINVAL on bad input.  Never creates a key, even when old is NULL.
 */
SYNCMAP_API bool syncmap_compare_and_swap(struct syncmap *m, const void *key, size_t klen, void *old,
					  void *new_);

/*
 * If `key` is present with value `old`, delete it and return true; false
 * otherwise (errno = EINVAL on bad input).
 */
SYNCMAP_API bool syncmap_compare_and_delete(struct syncmap *m, const void *key, size_t klen, void *old);

/*
 * Call fn(key, klen, val, ctx) for each key, in no particular order, until
 * fn returns false.  Go's contract: no key is visited twice; a key present
 * and unchanged for the whole call is visited exactly once; a key stored or
 * deleted concurrently may or may not be visited; the value passed is one
 * the key held during the call.  fn may call any syncmap function on any
 * map, this one included (store, delete, nested range...); key and val stay
 * valid for the duration of that fn call.  The whole range runs inside a
 * read section, so a long range delays reclamation.  Like Go, range first
 * promotes the dirty map (finishing its incremental build in bounded slices
 * that release the mutex in between), so it costs O(len) even when fn stops
 * early.  NULL m or fn: no-op.
 */
SYNCMAP_API void syncmap_range(struct syncmap *m, bool (*fn)(const void *key, size_t klen, void *val, void *ctx),
			       void *ctx);

/*
 * Delete every key present when the call starts (Go 1.23's Clear).  O(1)
 * under the mutex: the old snapshot and dirty map are retired whole and
 * their values passed to free_value after a grace period.  NULL: no-op.
 */
SYNCMAP_API void syncmap_clear(struct syncmap *m);

/*
 * Number of keys present.  Exact whenever no operation is in flight (and,
 * just after a clear that raced with writers, once the clear's grace period
 * has passed); otherwise a value the map held during the call, give or take
 * the operations in flight.  Cheap: sums a few per-thread-striped counters
 * that only writes update; no walk.  0 for NULL.
 */
SYNCMAP_API size_t syncmap_len(struct syncmap *m);

/*
 * Pin: values returned by any syncmap call made between syncmap_read_lock()
 * and syncmap_read_unlock() stay valid until the unlock.  Sections nest.
 * Cheap (a few ns: a thread-local counter, no shared write).  Do not block
 * for long inside a section: it holds back reclamation for every map.
 * Do not call syncmap_free(m) for a map whose values you still use.
 */
SYNCMAP_API void syncmap_read_lock(void);
SYNCMAP_API void syncmap_read_unlock(void);

/*
 * Internal counters, for tuning and tests.  Takes the map's mutex briefly.
 *   len:              syncmap_len
 *   read_keys:        keys in the read snapshot, deleted entries included
 *   dirty_keys:       keys in the dirty map (0 when there is none)
 *   amended:          the dirty map holds keys the snapshot lacks
 *   building:         the dirty map's incremental copy is in progress
 *   promotions:       dirty maps promoted to snapshot
 *   misses:           lookups that took the mutex and counted a miss
 *   locked_ops:       critical sections entered by operations
 *   pending_reclaim:  grace-period callbacks queued and not yet run
 *   max_locked_work:  the most copy work (buckets visited + entries copied)
 *                     done in one critical section; bounded by design
 *   entries:          entry objects allocated and not yet freed
 */
struct syncmap_stats {
	size_t len;
	size_t read_keys;
	size_t dirty_keys;
	bool amended;
	bool building;
	uint64_t promotions;
	uint64_t misses;
	uint64_t locked_ops;
	uint64_t pending_reclaim;
	uint64_t max_locked_work;
	uint64_t entries;
};
SYNCMAP_API void syncmap_stats(struct syncmap *m, struct syncmap_stats *st);

/* Bound on syncmap_stats.max_locked_work that the implementation keeps. */
#define SYNCMAP_MAX_LOCKED_WORK 128

/* "0.1.0" */
SYNCMAP_API const char *syncmap_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SYNCMAP_H */
