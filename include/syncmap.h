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
 * The map is split into shards (a power of two, chosen from the number of
 * CPUs unless the caller fixes it): each shard is a complete sync.Map of its
 * own (snapshot, dirty map, mutex, misses, promotion) holding the keys whose
 * hash selects it, so writers of new keys contend only when they land in
 * the same shard.  A shard takes memory only once it is first written.
 *
 * Beyond Go:
 *   - no O(n) stall: Go copies the whole snapshot under its mutex on the
 *     first new key after every promotion; syncmap builds the dirty map
 *     incrementally, a bounded slice per locked operation, and never copies
 *     or hashes a stored key's bytes while it holds a mutex;
 *   - memory safety without a garbage collector: retired snapshots, entries,
 *     key copies and values are reclaimed after an RCU grace period
 *     (liburcu, "bulletproof" flavor: no thread registration, threads may
 *     exit at any time), and everything is freed by syncmap_free;
 *   - bounded memory under write storms: when retired memory awaiting a
 *     grace period piles up, writers outside read sections wait for a grace
 *     period and free it themselves;
 *   - fork-safe (see "Fork" below), syncmap_len, syncmap_stats, and
 *     ownership transfer (syncmap_take).
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
 * call_rcu worker thread, from a writer that helps reclaim (see
 * syncmap_stats.reclaim_waits), or from syncmap_free.  Storing the pointer
 * a key already holds (Store, Swap, CompareAndSwap with old == new) keeps
 * it: nothing leaves the map, nothing is freed.  One pointer stored under
 * two keys (or in two owning maps) is the caller's error: it would be freed
 * twice.  syncmap_take removes a key without calling free_value: the caller
 * owns the value from then on (see there).  A value returned by a call made
 * inside syncmap_read_lock()/syncmap_read_unlock() stays valid until the
 * section ends; outside a section it may be freed as soon as the call
 * returns.  Without free_value, values are opaque words the map never
 * frees.
 *
 * Reentrancy: every function may be called inside a read section, from a
 * syncmap_range callback (including on the same map), from free_value and
 * from the application's own liburcu call_rcu callbacks, because no
 * operation waits for a grace period where that could deadlock: inside a
 * read section or on liburcu's callback thread, syncmap_free defers the
 * teardown to a callback and writers never wait (syncmap_synchronize
 * refuses with -EDEADLK).
 *
 * Read sections: a section delays every reclamation in the process (every
 * map's), for as long as it lasts.  Keep sections short and never block
 * (I/O, sleeping, waiting for another thread) inside one: while a section
 * lasts, retired memory accumulates, and once the backlog passes its limit
 * writers on other threads start waiting for grace periods that cannot end
 * until the section does.
 *
 * Fork: syncmap registers pthread_atfork handlers (on the first
 * syncmap_new) that take every map's locks and call liburcu's fork
 * functions around fork(), so a child may use and free maps made before
 * the fork, make new ones, and everything it retires is freed; the child
 * reseeds its random state (new maps get new hash seeds).  Values retired
 * by other threads in the instant of the fork, before they were queued,
 * stay allocated in the child (they are the parent's to free).  Do not
 * fork inside a read section or from free_value or any call_rcu callback:
 * liburcu's callback thread could not pause, and the process would hang
 * (syncmap aborts with a message instead).  A program that calls urcu-bp's
 * fork functions itself must say so with syncmap_fork_calls_liburcu(false).
 *
 * Errors: int results are >= 0 or a negated errno (-EINVAL, -ENOMEM); bool
 * results that fail for a reason other than "no" set errno; errno is left
 * alone by every call that reports no error.  A NULL map or a NULL key with
 * klen > 0 is -EINVAL (or false with errno = EINVAL, or a no-op for void
 * functions); a failed allocation is -ENOMEM and changes nothing.
 *
 * Platform: Linux (glibc or musl) on 64-bit targets; liburcu-bp >= 0.13.
 * The map starts no thread of its own; liburcu starts its call_rcu worker
 * thread on first use.
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

/* Most shards a map may have (syncmap_options.shards). */
#define SYNCMAP_MAX_SHARDS 1024

/*
 * Options for syncmap_new; a zeroed struct (or NULL) means defaults.
 *   free_value: called once, after an RCU grace period, for every value that
 *               leaves the map (see "Value lifetime" above).  NULL: values
 *               are opaque words the map never frees.
 *   free_ctx:   passed to free_value.
 *   seed:       hash seed; 0 = random per map.
 *   shards:     number of shards, a power of two up to SYNCMAP_MAX_SHARDS;
 *               0 = automatic (see syncmap_default_shards); 1 = a single
 *               sync.Map, exactly Go's design.
 */
struct syncmap_options {
	void (*free_value)(void *val, void *ctx);
	void *free_ctx;
	uint64_t seed;
	unsigned shards;
};

/*
 * Create a map.  `opts` may be NULL.  Returns NULL with errno = ENOMEM on
 * allocation failure, or EINVAL when opts->shards is not 0 or a power of
 * two <= SYNCMAP_MAX_SHARDS.  An empty map holds about 2 KiB whatever its
 * shard count (shards take memory on their first write).
 */
SYNCMAP_API struct syncmap *syncmap_new(const struct syncmap_options *opts);

/*
 * The shard count syncmap_new picks for shards = 0 on this machine: the
 * smallest power of two at least 32x the online CPUs, at most 128 (64 on
 * 2 CPUs).
 */
SYNCMAP_API unsigned syncmap_default_shards(void);

/*
 * Free the map and everything in it, passing each value still present to
 * free_value.  Waits for the reclamation this map has queued, so every
 * free_value call for the map has returned when syncmap_free does.  No
 * other thread may use `m` during or after the call.  Called where waiting
 * for a grace period could deadlock (inside a read section, or on liburcu's
 * callback thread: from free_value, or from an application's call_rcu
 * callback), it does not wait: the teardown, with its free_value calls,
 * runs later from the callback thread.  NULL is a no-op.
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
 * value, if any and if it is not `val` itself, is passed to free_value
 * after a grace period.
 */
SYNCMAP_API int syncmap_store(struct syncmap *m, const void *key, size_t klen, void *val);

/*
 * Return the existing value of `key` if present (result 1, *actual set),
 * else store `val` (result 0, *actual = val).  -EINVAL / -ENOMEM on error
 * (nothing stored).  `actual` may be NULL.  When the key was present, `val`
 * stays the caller's.
 */
SYNCMAP_API int syncmap_load_or_store(struct syncmap *m, const void *key, size_t klen, void *val,
				      void **actual);

/*
 * Delete `key`, returning its previous value in *val (when val is not NULL).
 * Returns true if the key was present; false if absent or on bad input
 * (errno = EINVAL).  The removed value goes to free_value after a grace
 * period (so *val is safe to use only inside a read section when free_value
 * is set).  Never allocates, never fails for lack of memory.
 */
SYNCMAP_API bool syncmap_load_and_delete(struct syncmap *m, const void *key, size_t klen, void **val);

/*
 * Delete `key` and hand its value to the caller, who owns it from now on:
 * free_value is not called for it.  Returns true and sets *val (when val is
 * not NULL) if the key was present; false if absent or on bad input (errno
 * = EINVAL).  Never allocates.
 *
 * Readers that loaded the value before the take may still use it until
 * their read sections end, so the caller must not free or reuse its memory
 * before a grace period has passed.  It may store it again at once (in this
 * map or another: that is how a value moves between maps), hand it to
 * syncmap_retire (freed by free_value after a grace period), or free it
 * itself after syncmap_synchronize.  In a map without free_value this is
 * syncmap_load_and_delete.
 */
SYNCMAP_API bool syncmap_take(struct syncmap *m, const void *key, size_t klen, void **val);

/*
 * Give `val` (owned by the caller, e.g. from syncmap_take) to m's free_value,
 * called after a grace period exactly as for a value deleted from m.
 * Returns 0, -EINVAL (NULL map, or a map without free_value) or -ENOMEM
 * (only inside a read section or on liburcu's callback thread; elsewhere it
 * waits for a grace period and frees `val` itself instead of failing).  The
 * value must not be in any map.
 */
SYNCMAP_API int syncmap_retire(struct syncmap *m, void *val);

/*
 * Wait until every read section that had begun when the call started has
 * ended (an RCU grace period): afterwards no reader can hold a value that
 * was removed (taken) before the call.  Returns 0, or -EDEADLK, without
 * waiting, when called inside a read section or on liburcu's callback
 * thread (where the wait could never end).  Takes milliseconds.
 */
SYNCMAP_API int syncmap_synchronize(void);

/* Delete `key` (a no-op if absent or on bad input). */
SYNCMAP_API void syncmap_delete(struct syncmap *m, const void *key, size_t klen);

/*
 * Set the value of `key` and return the previous one (Go's Swap).  Returns 1
 * if the key existed (*prev set to its previous value), 0 if it was new
 * (*prev untouched), -EINVAL / -ENOMEM on error (map unchanged).  `prev` may
 * be NULL.  With free_value set, *prev is passed to free_value after a grace
 * period unless it is `val` itself.
 */
SYNCMAP_API int syncmap_swap(struct syncmap *m, const void *key, size_t klen, void *val, void **prev);

/*
 * If `key` is present with value `old` (pointer identity), replace it by
 * `new_`.  Returns 1 if it swapped, 0 if the key is absent or its value
 * differs (no allocation is made then), -ENOMEM if the replacement could not
 * be allocated (map unchanged), -EINVAL on bad input.  Never creates a key,
 * even when old is NULL.  With free_value set, `old` is passed to free_value
 * after a grace period unless it equals `new_`.
 */
SYNCMAP_API int syncmap_compare_and_swap(struct syncmap *m, const void *key, size_t klen, void *old, void *new_);

/*
 * If `key` is present with value `old`, delete it and return true; false
 * otherwise (errno = EINVAL on bad input).  Never allocates.
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
 * promotes the dirty maps (finishing their incremental builds in bounded
 * slices that release the mutex in between), so it may cost O(len) even
 * when fn stops early.  NULL m or fn: no-op.
 */
SYNCMAP_API void syncmap_range(struct syncmap *m, bool (*fn)(const void *key, size_t klen, void *val, void *ctx),
			       void *ctx);

/*
 * Delete every key present when the call starts (Go 1.23's Clear): it takes
 * effect at one instant for every other operation, across all shards (an
 * operation that begins while a clear runs waits for it: O(shards), a few
 * microseconds).  The old tables are retired whole and their values passed
 * to free_value after a grace period.  NULL: no-op.
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
 * Cheap (a few ns: a thread-local counter, no shared write).  See "Read
 * sections" above for what a long one costs.  Do not call syncmap_free(m)
 * for a map whose values you still use.
 */
SYNCMAP_API void syncmap_read_lock(void);
SYNCMAP_API void syncmap_read_unlock(void);

/*
 * Whether syncmap's fork handlers call urcu-bp's call_rcu_before_fork(),
 * urcu_bp_before_fork() and the matching after-fork functions (default:
 * true).  Those functions take locks and must run exactly once around each
 * fork.  A program that uses urcu-bp itself and already calls them (before
 * fork() returns control to the child and parent, in that order: call_rcu
 * first, urcu_bp second, and urcu_bp_after_fork_*() before
 * call_rcu_after_fork_*()) must pass false before its first fork; syncmap
 * then only takes and releases its own locks, inside fork(), after the
 * program's before-fork calls.  Programs using another liburcu flavor
 * (memb, qsbr...) have separate call_rcu threads: leave this true.
 */
SYNCMAP_API void syncmap_fork_calls_liburcu(bool yes);

/*
 * Internal counters, for tuning, monitoring and tests.  Takes each shard's
 * mutex briefly (one at a time).
 *   len:              syncmap_len
 *   shards:           shards of the map; shards_used: those written so far
 *   read_keys:        keys in the read snapshots, deleted entries included
 *   dirty_keys:       keys in the dirty maps
 *   amended:          some dirty map holds keys its snapshot lacks
 *   building:         some dirty map's incremental copy is in progress
 *   promotions:       dirty maps promoted to snapshot
 *   misses:           lookups that took a mutex and counted a miss
 *   locked_ops:       critical sections entered by operations
 *   max_locked_work:  the most copy work (buckets visited + entries copied)
 *                     done in one critical section; bounded by design
 *   max_locked_key_bytes: the most bytes of stored keys (not the caller's
 *                     own key) copied or hashed in one critical section
 *   entries:          entry objects allocated and not yet freed
 *   pending_reclaim:  objects (values, snapshots, entry groups) this map has
 *                     retired that are not yet freed: they wait for a
 *                     grace period
 *   pending_bytes:    the library's own bytes among them (tables, arrays,
 *                     key copies, value boxes; not the values themselves)
 *   reclaim_waits:    times a writer of this map waited for a grace period
 *                     because the process's backlog was over its limit
 */
struct syncmap_stats {
	size_t len;
	unsigned shards;
	unsigned shards_used;
	size_t read_keys;
	size_t dirty_keys;
	bool amended;
	bool building;
	uint64_t promotions;
	uint64_t misses;
	uint64_t locked_ops;
	uint64_t max_locked_work;
	uint64_t max_locked_key_bytes;
	uint64_t entries;
	uint64_t pending_reclaim;
	uint64_t pending_bytes;
	uint64_t reclaim_waits;
};
SYNCMAP_API void syncmap_stats(struct syncmap *m, struct syncmap_stats *st);

/* Bound on syncmap_stats.max_locked_work that the implementation keeps. */
#define SYNCMAP_MAX_LOCKED_WORK 128
/* Bound on syncmap_stats.max_locked_key_bytes: keys of up to 8 bytes are
 * hashed while copied; longer keys are never copied or rehashed. */
#define SYNCMAP_MAX_LOCKED_KEY_BYTES (8 * SYNCMAP_MAX_LOCKED_WORK)

/* "0.2.0" */
SYNCMAP_API const char *syncmap_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SYNCMAP_H */
