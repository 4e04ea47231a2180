/*
 * shard.h - one shard's operations (shard.c), for the front (syncmap.c).
 * Not installed.
 *
 * SPDX-License-Identifier: MIT
 *
 * Every function is called inside an RCU read section, with the shard the
 * key's hash selects.  Values are encoded entry words (see syncmap_impl.h):
 * the front encodes what it stores and decodes and retires what comes out.
 */
#ifndef SM_SHARD_H
#define SM_SHARD_H

#include "syncmap_impl.h"

/* A key hashed once per operation: every table of a map shares the seed. */
struct sm_key {
	struct gomap_probe probe;
	uint64_t hash;
};

static inline __attribute__((always_inline)) void sm_key_init(const struct syncmap *m, struct sm_key *k,
							       const void *key, size_t klen)
{
	gomap_probe_init(&k->probe, key, klen);
	k->hash = sm_hash(key, klen, m->seed);
}

static inline struct sm_entry *table_lookup(const struct sm_table *t, const struct sm_key *k)
{
	void **slot = gomap_lookup_h(&t->g, &k->probe, k->hash);
	return slot ? *slot : NULL;
}

/* The lock-free first step of every keyed operation: the key's snapshot
 * word in *r (read through the map, without touching the shard) and its
 * entry there, or NULL.  A shard never written answers from the shared
 * empty snapshot. */
static inline __attribute__((always_inline)) struct sm_entry *sm_snapshot_find(struct syncmap *m,
									      const struct sm_key *k,
									      uintptr_t *r)
{
	*r = atomic_load_explicit(&m->read[shard_index(m, k->hash)], memory_order_acquire);
	return table_lookup(read_table(*r), k);
}

/* The shard of a snapshot word that is amended (or holds entries): it has
 * been written, so it exists. */
static inline struct sm_shard *sm_written_shard(struct syncmap *m, const struct sm_key *k)
{
	return shard_of(m, k->hash);
}

/* After the snapshot had no usable entry for k (none, or expunged): must
 * the operation take the mutex to look in the dirty map?  Only if the
 * snapshot is amended and its filter says the key may be dirty-only. */
static inline bool need_dirty(uintptr_t r, const struct sm_key *k)
{
	const struct sm_table *t = read_table(r);
	return read_amended(r) && sm_filter_maybe(t->filter, t->filter_mask, k->hash);
}

/* Internal result of the lock-free attempts: the entry was expunged, so
 * the operation must take the mutex and look in the dirty map. */
#define RETRY_LOCKED 2

/* --- Lock-free entry transitions (Go's entry methods) ------------------- */

/* Go's trySwap: replace a value or a deletion, never an expunged entry. */
static inline bool entry_try_swap(struct sm_entry *e, void *newp, void **old)
{
	void *p = atomic_load_explicit(&e->p, memory_order_relaxed);
	for (;;) {
		if (p == EXPUNGED)
			return false;
		/* acq_rel: publish newp's contents; see the old box's. */
		if (atomic_compare_exchange_weak_explicit(&e->p, &p, newp, memory_order_acq_rel,
							  memory_order_relaxed)) {
			*old = p;
			return true;
		}
	}
}

/* Go's tryLoadOrStore.  Returns 1 (loaded), 0 (stored *newp, consumed),
 * RETRY_LOCKED (expunged) or -ENOMEM (the box could not be allocated). */
static inline int entry_try_load_or_store(struct syncmap *m, struct sm_entry *e, void *val, void **newp,
				   void **actual)
{
	void *p = atomic_load_explicit(&e->p, memory_order_acquire);
	for (;;) {
		if (p == EXPUNGED)
			return RETRY_LOCKED;
		if (p) {
			if (actual)
				*actual = decode_value(m, p);
			return 1;
		}
		if (!*newp && !(*newp = syncmap__value_new(m, val)))
			return -ENOMEM;
		if (atomic_compare_exchange_weak_explicit(&e->p, &p, *newp, memory_order_acq_rel,
							  memory_order_acquire)) {
			*newp = NULL;
			sm_len_add(m, 1);
			if (actual)
				*actual = val;
			return 0;
		}
	}
}

/* Go's delete: 1 (deleted, *old set), 0 (already deleted), RETRY_LOCKED. */
static inline int entry_try_delete(struct sm_entry *e, void **old)
{
	void *p = atomic_load_explicit(&e->p, memory_order_acquire);
	for (;;) {
		if (p == NULL)
			return 0;
		if (p == EXPUNGED)
			return RETRY_LOCKED;
		if (atomic_compare_exchange_weak_explicit(&e->p, &p, NULL, memory_order_acq_rel,
							  memory_order_acquire)) {
			*old = p;
			return 1;
		}
	}
}

/* Go's tryCompareAndSwap: 1, 0 (absent or unequal: nothing allocated),
 * RETRY_LOCKED or -ENOMEM.  The replaced value is retired (kept when it is
 * the new value itself). */
static inline int entry_try_cas(struct syncmap *m, struct sm_entry *e, void *old, void *new_, void **newp)
{
	void *p = atomic_load_explicit(&e->p, memory_order_acquire);
	for (;;) {
		if (p == EXPUNGED)
			return RETRY_LOCKED;
		if (!p || decode_value(m, p) != old)
			return 0;
		if (!*newp && !(*newp = syncmap__value_new(m, new_)))
			return -ENOMEM;
		if (atomic_compare_exchange_weak_explicit(&e->p, &p, *newp, memory_order_acq_rel,
							  memory_order_acquire)) {
			*newp = NULL;
			syncmap__value_retire(m, p, old == new_);
			return 1;
		}
	}
}

/* CompareAndDelete's entry step: 1 (deleted, *removed set), 0, RETRY_LOCKED. */
static inline int entry_try_cad(struct syncmap *m, struct sm_entry *e, void *old, void **removed)
{
	void *p = atomic_load_explicit(&e->p, memory_order_acquire);
	for (;;) {
		if (p == EXPUNGED)
			return RETRY_LOCKED;
		if (!p || decode_value(m, p) != old)
			return 0;
		if (atomic_compare_exchange_weak_explicit(&e->p, &p, NULL, memory_order_acq_rel,
							  memory_order_acquire)) {
			*removed = p;
			return 1;
		}
	}
}

/* The Load fast path's read of an entry.  The tsan_canary build (test only)
 * makes it a plain load racing with the writers' CAS: the seeded race that
 * tsan/run --canary must see reported, proving the annotations hide nothing. */
#if SM_TSAN_CANARY
#define entry_load_fast(e) (*(void *volatile *)(uintptr_t) & (e)->p)
#else
#define entry_load_fast(e) atomic_load_explicit(&(e)->p, memory_order_acquire)
#endif

/*
 * The slow paths, under the shard's mutex, of each keyed operation whose
 * lock-free step (inlined in the front) did not settle it.  r and e: the
 * snapshot word and entry (or NULL) that step saw; e may be expunged.
 */

/* Load: the key's entry word from the snapshot or the dirty map (a value,
 * or NULL / EXPUNGED: absent). */
void *syncmap__shard_load_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r, struct sm_entry *e);

/* The key's entry word: a value, or NULL / EXPUNGED (absent).  Inlined:
 * the Load hit path takes no lock, makes no call, and reaches the snapshot
 * through the map's read word, without touching the shard. */
static inline __attribute__((always_inline)) void *sm_map_load(struct syncmap *m, const struct sm_key *k)
{
	uintptr_t r;
	struct sm_entry *e = sm_snapshot_find(m, k, &r);
	void *p = e ? entry_load_fast(e) : NULL;
	if (__builtin_expect((!e || p == EXPUNGED) && need_dirty(r, k), 0))
		p = syncmap__shard_load_locked(sm_written_shard(m, k), k, r, e);
	return p;
}

/* Store newp: 1 (replaced *oldp), 0 (new), -ENOMEM (newp not consumed). */
int syncmap__shard_swap_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r, struct sm_entry *e,
			       void *newp, void **oldp);
/* 1 (present: *actual), 0 (stored val, *actual = val), -ENOMEM.  *newp: a
 * box the caller made (or NULL), or one made here; NULL once consumed, else
 * the caller discards it. */
int syncmap__shard_load_or_store_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r,
					struct sm_entry *e, void *val, void **newp, void **actual);
/* 1 (deleted: *oldp is the removed word, for the caller to retire), 0.
 * The caller counts the length. */
int syncmap__shard_delete_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r, struct sm_entry *e,
				 void **oldp);
/* 1 (swapped; the old value retired), 0, -ENOMEM.  *newp as for
 * load_or_store. */
int syncmap__shard_compare_and_swap_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r,
					   struct sm_entry *e, void *old, void *new_, void **newp);
/* 1 (deleted: *removed for the caller to retire), 0.  The caller counts
 * the length. */
int syncmap__shard_compare_and_delete_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r,
					     struct sm_entry *e, void *old, void **removed);

/* Range: promote the dirty map if the snapshot is amended (Go's Range),
 * then return the snapshot word to walk. */
uintptr_t syncmap__shard_range_snapshot(struct sm_shard *s);
/* Clear, under the shard's mutex (the gate closed): detach both tables
 * (NULL when none), leaving the shard empty. */
void syncmap__shard_detach_locked(struct sm_shard *s, struct sm_table **read, struct sm_table **dirty);
void syncmap__shard_stats_add(struct sm_shard *s, struct syncmap_stats *st);
/* A written shard for m's slot i (its own empty snapshot, not yet
 * published in m->read[i]); NULL on ENOMEM.  reclaim.c frees it with the
 * map. */
struct sm_shard *syncmap__shard_new(struct syncmap *m, unsigned i);

#endif
