/*
 * syncmap_impl.h - the concurrent map's data structures.  Not installed.
 *
 * SPDX-License-Identifier: MIT
 *
 * A map is an array of shards; each shard is Go 1.19's sync.Map,
 * re-expressed without a garbage collector:
 *
 *   m->read[i] ----> sm_table (frozen gomap: key -> sm_entry*)  read lock-free
 *                      | entries (and key blocks) shared with
 *   m->shard[i] ---> struct sm_shard (mutex, misses, copy state)
 *     s->dirty ----> sm_table (gomap: key -> sm_entry*)          under s->mu
 *
 * Shard i's snapshot word lives in the map, not in the shard, so a Load
 * reaches the snapshot with one load from the map, as a single Go split
 * would: the shard struct is touched only by writers and by lookups that
 * must take its mutex.
 *
 * The key's hash picks the shard (bits no gomap or filter decision uses),
 * so every key lives in exactly one shard and every Go invariant holds per
 * shard.  A shard never written is the shared, static syncmap__shard_unwritten:
 * its snapshot is empty and never amended, so reads of it answer "absent"
 * without a lock; the first write allocates the shard (under m->alloc_mu).
 *
 * Files: syncmap.c is the front (API, hashing, shard choice, and what spans
 * shards: Range, Clear, Len, stats, new/free); shard.c is the per-shard Go
 * algorithm; reclaim.c frees what readers may hold, after grace periods;
 * entries.c allocates entries; fork.c keeps the map registry and the fork
 * handlers.  Calls go front -> shard -> reclaim/entries, never back.
 *
 * ---- The entry word -----------------------------------------------------
 *
 * Every key of a shard has one struct sm_entry, an atomic word p.  Go's
 * sync/map.go documents entry.p; here it is, with who may make each move.
 *
 *   state       meaning
 *   value       the key is present: the user's word (NULL encoded as
 *               NILVAL) or, when the map owns its values (free_value set),
 *               a struct sm_box holding it
 *   NULL        deleted; the key is still in the snapshot (and in the
 *               dirty map if the incremental copy has passed it)
 *   EXPUNGED    deleted, and left out of the dirty map under construction;
 *               dead for good: no transition leaves it
 *
 *   transition           who                 where
 *   value -> value       Store/Swap/CAS      lock-free (CAS), or under mu
 *   value -> NULL        Delete/CAD/Take     lock-free (CAS), or under mu
 *   NULL  -> value       Store/LoadOrStore   lock-free (CAS), or under mu
 *   NULL  -> EXPUNGED    the dirty copy      under mu only (Go's
 *                                            tryExpungeLocked)
 *   EXPUNGED -> (none)   lock-free writers see it and take mu instead
 *
 * Difference from Go: Go revives an expunged entry (expunged -> nil) when
 * its key is stored again, so the same entry serves both maps.  syncmap
 * stores the key again as a new entry in the dirty map and lets the
 * expunged one die with its snapshot.  That gives every entry one owner to
 * free it after a grace period: a snapshot's expunged list, or the dirty
 * map (an entry deleted from the dirty map that no snapshot holds is freed
 * at once: no reader can reach it).  The price: a lookup that finds
 * EXPUNGED in the snapshot must look in the dirty map (Go answers "absent"
 * at once), until the next promotion.
 *
 * The word has two more meanings once no reader can reach the entry: in a
 * free list (entries.c) it links to the next free entry, and while
 * reclaim.c tears two tables down it holds the private marks DEAD /
 * DEAD_SHARED (see syncmap__tables_free_all).
 *
 * ---- Key blocks -------------------------------------------------------------
 *
 * Tables are KEYS_EXTERNAL gomaps: keys over 8 bytes live in a struct gkey
 * (with its hash) that the shard owns.  The dirty map's copy of the
 * snapshot adopts the snapshot's key blocks instead of copying them, so the
 * copy moves 8-byte words and never hashes or copies a long key under the
 * mutex.  Ownership: a block belongs to the newest table holding it.  At a
 * promotion the old snapshot keeps only the blocks of the entries expunged
 * from it (its expunged list); a block of a key that only the dirty map
 * holds is freed when that key is deleted from it; clear and free tear both
 * tables down together and free each block once.
 */
#ifndef SM_SYNCMAP_IMPL_H
#define SM_SYNCMAP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "filter.h" /* keys only the dirty map holds */
#include "gomap_impl.h"
#include "rcu.h"
#include "syncmap.h"

#define SM_CACHELINE 64

/* Thread-locals are reached with the initial-exec model: in a shared
 * library the default (global-dynamic) model calls __tls_get_addr on every
 * access, measured at 19% of the cycles of a two-thread LoadAndDelete
 * benchmark.  The library is linked at program start (not dlopen'ed late),
 * which is what initial-exec needs. */
#define SM_TLS _Thread_local __attribute__((tls_model("initial-exec")))

struct sm_entry {
	_Atomic(void *) p;
};

/* Sentinels: addresses no user value can be (they are private objects). */
extern char syncmap__expunged_obj, syncmap__nilval_obj;
#define EXPUNGED ((void *)&syncmap__expunged_obj)
#define NILVAL ((void *)&syncmap__nilval_obj)

/* ---- retirement ------------------------------------------------------------ */

/* What a retired object is, so the code that frees it knows how. */
enum sm_retired_kind {
	SM_RETIRED_BOX,      /* a value box: free_value(val), then the box */
	SM_RETIRED_BOX_KEEP, /* a value box whose value the caller kept: the box only */
	SM_RETIRED_SNAPSHOT, /* a snapshot replaced by promotion */
	SM_RETIRED_CLEARED,  /* a snapshot and dirty map dropped together by clear */
};

/* A node in a chain of objects waiting for a grace period (reclaim.c);
 * embedded in every object that can be retired. */
struct sm_retired {
	struct sm_retired *next;
	enum sm_retired_kind kind;
};

/* A value owned by the map (free_value set).  Retiring it never allocates:
 * its node is inside.  24 bytes: a 32-byte malloc chunk. */
struct sm_box {
	void *val;
	struct sm_retired node;
};

/* ---- tables ------------------------------------------------------------------ */

struct sm_shard;

/* An entry expunged from a snapshot, with the key block (0 for a short
 * key) that the snapshot keeps owning. */
struct sm_expunged {
	struct sm_entry *e;
	uint64_t key;
};

/* A gomap used as snapshot or dirty map, with what its retirement needs. */
struct sm_table {
	struct gomap g;
	struct sm_shard *shard;
	struct sm_retired node;
	/* clear: the dirty table retired with this snapshot, the next shard's
	 * pair, and the length subtracted when they were dropped (see
	 * syncmap__clear_retire) */
	struct sm_table *peer;
	struct sm_table *clear_next;
	long len_snapshot;
	/* entries expunged from this snapshot: it owns them and their keys */
	struct sm_expunged *expunged;
	size_t nexpunged, capexpunged;
	/* While this table is the snapshot: a Bloom filter of the keys only
	 * the dirty map holds (filter.h).  Unused while it is dirty. */
	_Atomic uint64_t *filter;
	uint64_t filter_mask; /* words - 1 */
};

/* A slab of entries; entries are 8 bytes and allocated only under mu. */
struct sm_slab {
	struct sm_slab *next;
	size_t n;
	struct sm_entry e[];
};

/* ---- shards ------------------------------------------------------------------ */


struct sm_shard {
	/* Read by every write: its snapshot word, m->read[index]
	 * (struct sm_table * | READ_AMENDED), written only when a snapshot is
	 * published (or amended). */
	_Alignas(SM_CACHELINE) _Atomic uintptr_t *read;
	struct syncmap *m;

	/* Everything below `mu` is guarded by it unless marked atomic. */
	_Alignas(SM_CACHELINE) pthread_mutex_t mu;
	struct sm_table *dirty;
	size_t misses;
	size_t dirty_only; /* keys inserted into dirty since the last promotion, still there */
	/* Incremental construction of dirty from the snapshot copy_src. */
	struct sm_table *copy_src; /* NULL: dirty holds every live key of read */
	struct gomap_walk copy_walk;
	struct sm_entry *copy_pending; /* entry whose insert into dirty failed (ENOMEM) */
	struct gomap_probe copy_pending_key;
	uint64_t copy_pending_hash;
	size_t op_work;      /* copy work in the current critical section */
	size_t op_key_bytes; /* stored keys' bytes hashed in it */
	/* Entry allocator (entries.c). */
	struct sm_entry *free_entries; /* chained through p */
	struct sm_slab *slabs;
	size_t next_slab;
	long entries_live;
	/* Counters. */
	uint64_t promotions, misses_total, locked_ops, max_locked_work, max_locked_key_bytes;

	/* Written by grace-period callbacks on liburcu's worker thread. */
	_Alignas(SM_CACHELINE) _Atomic(struct sm_entry *) freed_entries; /* chained through p */
	_Atomic long freed_count;

	/* The shard's permanent empty snapshot (never retired; only its filter
	 * is written, under mu).  Its filter: m->filter_min_words words.  A
	 * fresh shard's keys are all dirty-only until its first promotion, and
	 * lookups of absent keys take the mutex once the filter saturates
	 * (a map's filters with 512 bits in all instead of 4096 made Go's
	 * AdversarialAlloc 1.7x slower). */
	struct sm_table empty;
	_Atomic uint64_t empty_filter[];
};

/* Every unwritten shard of every map; m->read[i] of an unwritten shard is
 * syncmap__table_unwritten: empty, never amended, never written. */
extern struct sm_shard syncmap__shard_unwritten;
extern struct sm_table syncmap__table_unwritten;

#define READ_AMENDED ((uintptr_t)1)

static inline struct sm_table *read_table(uintptr_t r)
{
	return (struct sm_table *)(r & ~READ_AMENDED);
}

static inline bool read_amended(uintptr_t r)
{
	return r & READ_AMENDED;
}

/* ---- the map ------------------------------------------------------------------ */

/* Per-thread stripe of a map: its share of syncmap_len, and the objects it
 * retired that wait to be handed to liburcu in one batch (reclaim.c).  A
 * thread uses stripe (its slot % nstripes), so a stripe is written by one
 * thread when there are at most nstripes threads. */
struct sm_stripe {
	_Alignas(SM_CACHELINE) _Atomic long len;
	atomic_int lock; /* guards the chain; a leaf lock (spin, then yield) */
	uint32_t n;      /* objects in the chain */
	uint32_t values; /* of which values for free_value */
	size_t bytes;    /* library bytes in the chain */
	struct sm_retired *first;
};

/* The stripe lock: held for a few instructions (a push, sometimes a
 * call_rcu), by at most a few threads, so it spins briefly, then yields. */
static inline bool sm_stripe_trylock(struct sm_stripe *st)
{
	return !atomic_load_explicit(&st->lock, memory_order_relaxed) &&
	       !atomic_exchange_explicit(&st->lock, 1, memory_order_acquire);
}

void syncmap__stripe_lock_slow(struct sm_stripe *st);

static inline void sm_stripe_lock(struct sm_stripe *st)
{
	if (__builtin_expect(!atomic_exchange_explicit(&st->lock, 1, memory_order_acquire), 1))
		return;
	syncmap__stripe_lock_slow(st);
}

static inline void sm_stripe_unlock(struct sm_stripe *st)
{
	atomic_store_explicit(&st->lock, 0, memory_order_release);
}

struct syncmap {
	/* Read by every operation; `gate` is written only by clear and fork,
	 * the rest never after syncmap_new. */
	_Alignas(SM_CACHELINE) uint64_t seed;
	atomic_uint gate; /* odd: a clear (or a fork) is in progress; see sm_gate_pass */
	unsigned shard_mask; /* shards - 1 */
	unsigned stripe_mask;
	unsigned filter_min_words; /* sm_filter_min_words(shards) */
	bool boxed; /* free_value set: values live in sm_box */
	void (*free_value)(void *val, void *ctx);
	void *free_ctx;
	struct sm_stripe *stripes;

	/* Guards materializing a shard. */
	_Alignas(SM_CACHELINE) pthread_mutex_t alloc_mu;
	struct syncmap *reg_prev, *reg_next; /* the registry (fork.c), under its lock */

	/* Reclamation state (reclaim.c): written by callbacks and by
	 * writers once per batch, never per operation. */
	_Alignas(SM_CACHELINE) _Atomic long pending; /* callbacks in flight (+ PENDING_ORPHANED) */
	_Atomic long pending_values; /* of which batches that call free_value */
	_Atomic long batched_objs;  /* objects in batches handed to liburcu, not yet freed */
	_Atomic long batched_bytes; /* their library bytes */
	_Atomic uint64_t reclaim_waits;
	atomic_bool reap_armed;     /* reap_rcu is queued */
	atomic_bool dying;          /* syncmap_free began: the reaper stops */
	struct rcu_head reap_rcu;   /* hands half-full stripes to liburcu */
	struct rcu_head final_rcu;  /* syncmap_free that could not wait */
	struct sm_retired *final_chain; /* that case: the stripes' leftovers */

	/* Shard i, or &syncmap__shard_unwritten until its first write. */
	_Atomic(struct sm_shard *) *shard;
	/* Shard i's snapshot word (see the top); packed, 8 to a cache line:
	 * written only by promotions and the first new key after one. */
	_Alignas(SM_CACHELINE) _Atomic uintptr_t read[];
};

#define PENDING_ORPHANED (1L << 40)

/* The shard a hash selects: bits 46..55, which neither the bucket index
 * (low bits, B <= 30), the tophash (the top byte) nor the filter (bits
 * 8..43) looks at, so the keys of a shard spread over its buckets and
 * filter exactly as a single map's would. */
#define SM_SHARD_SHIFT 46
_Static_assert(SYNCMAP_MAX_SHARDS <= (1u << (56 - SM_SHARD_SHIFT)), "shard bits stay below the tophash");

static inline unsigned shard_index(const struct syncmap *m, uint64_t hash)
{
	/* A branch, not arithmetic alone: with one shard the CPU predicts it
	 * and loads the snapshot word without waiting for the hash, as the
	 * unsharded map did (LoadMostlyHits at one thread, one shard: 15.7 ->
	 * 13.8 ns/op; ReadMostly99 at 1e3 keys 22.8 -> 20.2). */
	if (__builtin_expect(m->shard_mask == 0, 0))
		return 0;
	return (unsigned)(hash >> SM_SHARD_SHIFT) & m->shard_mask;
}

static inline struct sm_shard *shard_of(const struct syncmap *m, uint64_t hash)
{
	return atomic_load_explicit(&m->shard[shard_index(m, hash)], memory_order_acquire);
}

/* ---- the gate: clear is atomic ------------------------------------------------- */

/*
 * Go 1.23's Clear is one pointer swap; with shards it is one swap per
 * shard, and a reader could see shard A cleared and, later, shard B not yet.
 * So a clear closes the map's gate (m->gate odd) before its first swap and
 * opens it after its last, and every operation passes the gate before it
 * looks at the map: one that begins while a clear runs waits for it to end.
 * A thread's later operation can then never see an older state than its
 * earlier one, and each clear takes effect at one instant.  Operations
 * already past the gate finish on one side of the swap of the one shard
 * they touch (a locked one before or after it: clear takes each shard's
 * mutex to swap).  Fork closes the gates too (fork.c), and lock() checks
 * the gate again after taking a shard's mutex, so no critical section is
 * in progress when the process forks.
 *
 * Holding every shard's mutex at once would not do: it leaves lock-free
 * readers free to see the swaps one by one, and ThreadSanitizer's deadlock
 * detector aborts a thread that holds more than 64 mutexes (a 64-shard
 * clear held 65).
 */
void syncmap__gate_wait(struct syncmap *m);

static inline void sm_gate_pass(struct syncmap *m)
{
	if (__builtin_expect(atomic_load_explicit(&m->gate, memory_order_acquire) & 1, 0))
		syncmap__gate_wait(m);
}

/* Close the gate (waiting for a clear or fork that holds it); open it. */
void syncmap__gate_close(struct syncmap *m);
void syncmap__gate_open(struct syncmap *m);

/* ---- thread slot and length -------------------------------------------------- */

/* This thread's stripe index (assigned round-robin on first use). */
unsigned syncmap__thread_slot_init(void);
extern SM_TLS unsigned syncmap__thread_slot_plus1;

static inline struct sm_stripe *my_stripe(const struct syncmap *m)
{
	unsigned s = syncmap__thread_slot_plus1;
	if (__builtin_expect(s == 0, 0))
		s = syncmap__thread_slot_init();
	return &m->stripes[(s - 1) & m->stripe_mask];
}

static inline void sm_len_add(struct syncmap *m, long d)
{
	atomic_fetch_add_explicit(&my_stripe(m)->len, d, memory_order_relaxed);
}

static inline long sm_len_sum(const struct syncmap *m)
{
	long sum = 0;
	for (unsigned i = 0; i <= m->stripe_mask; i++)
		sum += atomic_load_explicit(&m->stripes[i].len, memory_order_relaxed);
	return sum;
}

/* ---- values ------------------------------------------------------------------- */

static inline bool is_value(const void *p)
{
	return p != NULL && p != EXPUNGED;
}

/* The user's value held by entry word p (p must be a value). */
static inline void *decode_value(const struct syncmap *m, void *p)
{
	if (m->boxed)
		return ((struct sm_box *)p)->val;
	return p == NILVAL ? NULL : p;
}

/* ---- entries.c: entry allocation ---------------------------------------------- */
struct sm_entry *syncmap__entry_alloc(struct sm_shard *s);           /* under mu; NULL on ENOMEM */
void syncmap__entry_free_locked(struct sm_shard *s, struct sm_entry *e); /* under mu, no reader can hold e */
/* From a callback: return a chain (linked through p) of `n` dead entries. */
void syncmap__entry_free_chain(struct sm_shard *s, struct sm_entry *first, struct sm_entry *last, long n);
void syncmap__entries_destroy(struct sm_shard *s);

/* ---- reclaim.c: grace-period reclamation --------------------------------------- */
/* Encode a value for an entry word; boxed maps allocate (NULL on ENOMEM). */
void *syncmap__value_new(struct syncmap *m, void *val);
/* Free an encoded value that was never published. */
void syncmap__value_discard(struct syncmap *m, void *p);
/* An encoded value left the map: free it (and pass it to free_value, unless
 * keep_value: the caller keeps it) after a grace period.  Never fails. */
void syncmap__value_retire(struct syncmap *m, void *p, bool keep_value);
/* A snapshot was replaced by promotion: free it, the entries expunged from
 * it and their keys after a grace period. */
void syncmap__table_retire_snapshot(struct syncmap *m, struct sm_table *t);
/* Clear: every shard's snapshot and dirty map go together, as one retired
 * object, with every entry, key and value in them; len_snapshot is added
 * back to syncmap_len, less the values found, once they are all freed (so
 * the length is exact again once the clear's grace period has passed). */
struct sm_clear {
	struct sm_table *first, *last; /* carriers, linked through clear_next */
	size_t bytes;
};
/* Add a shard's pair (either may be NULL) to the clear. */
void syncmap__clear_add(struct sm_clear *c, struct sm_table *read, struct sm_table *dirty);
/* Retire everything added (nothing if nothing was); returns false if there
 * was nothing to retire. */
bool syncmap__clear_retire(struct syncmap *m, struct sm_clear *c, long len_snapshot);
/* Free now what sm_tables_retire_cleared frees later; returns the values
 * that were present. */
long syncmap__tables_free_all(struct syncmap *m, struct sm_table *read, struct sm_table *dirty);
void syncmap__table_destroy(struct sm_table *t);
/* After an operation returned from its read section: wait for a grace
 * period and free the batch this thread set aside because the backlog was
 * over its limit (reclaim.c), or queue it where waiting is not allowed. */
struct sm_batch;
void syncmap__reclaim_help(void);
extern SM_TLS struct sm_batch *syncmap__help_batch;
static inline void sm_reclaim_after_op(void)
{
	if (__builtin_expect(syncmap__help_batch != NULL, 0))
		syncmap__reclaim_help();
}
/* At syncmap_read_unlock: a thread that queued batches over the limit from
 * inside a read section waits, once out of it, for the backlog to drain
 * (at most 20 ms). */
void syncmap__reclaim_throttle(void);
extern SM_TLS bool syncmap__help_owed;
/* Objects and library bytes retired by m and not yet freed. */
void syncmap__reclaim_pending(struct syncmap *m, uint64_t *objs, uint64_t *bytes);
/* syncmap_free: frees everything retired by m (waiting for liburcu's
 * callbacks), the values and tables still in its shards, and the map; or,
 * where waiting could deadlock, has the last callback do it. */
void syncmap__reclaim_free_map(struct syncmap *m);

/* ---- shard.c (also for fork.c, which re-initializes shard mutexes) ------------- */
void syncmap__shard_mutex_init(pthread_mutex_t *mu);

/* ---- fork.c ------------------------------------------------------------------- */
/* Once per process: fork handlers, liburcu's callback thread. */
void syncmap__fork_init(void);
void syncmap__registry_add(struct syncmap *m);
void syncmap__registry_remove(struct syncmap *m);
bool syncmap__fork_calls_liburcu_enabled(void);

#endif
