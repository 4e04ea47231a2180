/*
 * syncmap_impl.h - the concurrent map's data structures.  Not installed.
 *
 * SPDX-License-Identifier: MIT
 *
 * Go 1.19's sync.Map, re-expressed without a garbage collector:
 *
 *   m->read ----> sm_table (frozen gomap: key -> sm_entry*)   read lock-free
 *                   | entries shared with
 *   m->dirty ---> sm_table (gomap: key -> sm_entry*)          under m->mu
 *
 * An entry holds one atomic word p:
 *   NULL      deleted; the key is still in the snapshot (and in dirty if the
 *             incremental copy has passed it)
 *   EXPUNGED  deleted, and left out of the dirty map under construction; such
 *             an entry is dead for good (see below) and is owned by the list
 *             of the snapshot it was expunged from
 *   otherwise the value: the user's word (NULL encoded as NILVAL) or, when
 *             the map owns its values (free_value set), a box holding it
 *
 * Difference from Go: Go revives an expunged entry (expunged -> nil) when its
 * key is stored again, so the same entry serves both maps.  syncmap instead
 * stores the key again as a new entry in the dirty map and lets the expunged
 * one die with its snapshot.  That gives every entry one owner to free it
 * after a grace period: a snapshot's expunged list, or the dirty map (an
 * entry deleted from the dirty map that no snapshot holds is freed at once).
 * The price: a lookup that finds EXPUNGED in the snapshot must look in the
 * dirty map (Go answers "absent" at once), until the next promotion.
 */
#ifndef SM_SYNCMAP_IMPL_H
#define SM_SYNCMAP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gomap_impl.h"
#include "rcu.h"
#include "syncmap.h"

#define SM_CACHELINE 64

struct sm_entry {
	_Atomic(void *) p;
};

/* Sentinels: addresses no user value can be (they are private objects). */
extern char sm_expunged_obj, sm_nilval_obj;
#define EXPUNGED ((void *)&sm_expunged_obj)
#define NILVAL ((void *)&sm_nilval_obj)

/* A value owned by the map (free_value set): retired by its own rcu_head,
 * so removing a value never needs an allocation and never fails. */
struct sm_box {
	void *val;
	struct syncmap *m;
	struct rcu_head rcu;
};

/* A gomap used as snapshot or dirty map, with what its retirement needs. */
struct sm_table {
	struct gomap g;
	struct syncmap *m;
	struct rcu_head rcu;
	struct sm_table *peer;     /* clear/free: the dirty table retired with this one */
	long len_snapshot;         /* clear: syncmap_len subtracted when it was retired */
	struct sm_entry **expunged; /* entries expunged from this snapshot: it owns them */
	size_t nexpunged, capexpunged;
	/* While this table is the snapshot: a Bloom filter of the keys only
	 * the dirty map holds (see filter.h).  Unused while it is dirty. */
	_Atomic uint64_t *filter;
	uint64_t filter_mask; /* words - 1 */
};

/* A slab of entries; entries are 8 bytes and allocated only under the mutex. */
struct sm_slab {
	struct sm_slab *next;
	size_t n;
	struct sm_entry e[];
};

struct sm_len_stripe {
	_Atomic long v;
	char pad[SM_CACHELINE - sizeof(long)];
};
#define SM_LEN_STRIPES 16

struct syncmap {
	/* Read by every operation, written only when a snapshot is published:
	 * kept on a line of its own so Load hits share it clean. */
	_Alignas(SM_CACHELINE) _Atomic uintptr_t read; /* struct sm_table * | READ_AMENDED */
	uint64_t seed;
	void (*free_value)(void *val, void *ctx);
	void *free_ctx;
	bool boxed; /* free_value set: values live in sm_box */

	/* Everything below `mu` is guarded by it unless marked atomic. */
	_Alignas(SM_CACHELINE) pthread_mutex_t mu;
	struct sm_table *dirty;
	size_t misses;
	/* Incremental construction of dirty from the snapshot copy_src. */
	struct sm_table *copy_src; /* NULL: dirty holds every live key of read */
	struct gomap_walk copy_walk;
	struct sm_entry *copy_pending; /* entry whose insert into dirty failed (ENOMEM) */
	const void *copy_pending_key;
	size_t copy_pending_klen;
	size_t op_work; /* copy work in the current critical section */
	/* Entry allocator. */
	struct sm_entry *free_entries; /* chained through p */
	struct sm_slab *slabs;
	size_t next_slab;
	/* Counters. */
	uint64_t promotions, misses_total, locked_ops, max_locked_work;
	long entries_live;
	/* The permanent empty snapshot (never retired; only its filter is
	 * written, under the mutex). */
	struct sm_table empty;
	_Atomic uint64_t empty_filter[64];

	/* Written by grace-period callbacks on liburcu's worker thread. */
	_Alignas(SM_CACHELINE) _Atomic(struct sm_entry *) freed_entries; /* chained through p */
	_Atomic long freed_count;
	/* Callbacks queued and not yet finished, plus PENDING_ORPHANED once
	 * syncmap_free ran inside a read section: then the callback that
	 * brings the count to zero frees the map.  One word, so a callback
	 * never touches m after its decrement unless it is the last. */
	_Atomic long pending;
	struct rcu_head final_rcu; /* that case: tears down final_read / final_dirty */
	struct sm_table *final_read, *final_dirty;

	struct sm_len_stripe len[SM_LEN_STRIPES];
};

#define READ_AMENDED ((uintptr_t)1)
#define PENDING_ORPHANED (1L << 40)

static inline struct sm_table *read_table(uintptr_t r)
{
	return (struct sm_table *)(r & ~READ_AMENDED);
}

static inline bool read_amended(uintptr_t r)
{
	return r & READ_AMENDED;
}

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

/* ---- filter.h: keys only the dirty map holds -------------------------- */
#include "filter.h"

/* ---- entries.c: entry allocation ------------------------------------- */
struct sm_entry *sm_entry_alloc(struct syncmap *m);       /* under mu; NULL on ENOMEM */
void sm_entry_free_locked(struct syncmap *m, struct sm_entry *e); /* under mu, no reader can hold e */
/* From a callback: return a chain (linked through p) of `n` dead entries. */
void sm_entry_free_chain(struct syncmap *m, struct sm_entry *first, struct sm_entry *last, long n);
void sm_entries_destroy(struct syncmap *m);

/* ---- reclaim.c: grace-period reclamation ------------------------------ */
/* Encode a value for an entry word; boxed maps allocate (NULL on ENOMEM). */
void *sm_value_new(struct syncmap *m, void *val);
/* Free an encoded value that was never published. */
void sm_value_discard(struct syncmap *m, void *p);
/* An encoded value left the map: free it (and pass it to free_value, unless
 * keep_value: the caller keeps it) after a grace period.  Never fails. */
void sm_value_retire(struct syncmap *m, void *p, bool keep_value);
/* A snapshot was replaced by promotion: free it and the entries expunged
 * from it after a grace period. */
void sm_table_retire_snapshot(struct syncmap *m, struct sm_table *t);
/* Clear: retire a snapshot and dirty map together (either may be NULL) with
 * every entry and value in them. */
void sm_tables_retire_all(struct syncmap *m, struct sm_table *read, struct sm_table *dirty,
			  long len_snapshot);
/* Free now what sm_tables_retire_all frees later (syncmap_free). */
long sm_tables_free_all(struct syncmap *m, struct sm_table *read, struct sm_table *dirty);
void sm_table_destroy(struct sm_table *t);
void sm_map_release(struct syncmap *m); /* the final free of the struct */
void sm_pending_inc(struct syncmap *m, long n);
void sm_pending_dec(struct syncmap *m); /* last statement of every callback */

/* ---- syncmap.c --------------------------------------------------------- */
void sm_len_add(struct syncmap *m, long d);

#endif
