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

/* The lock-free first step of every keyed operation: the snapshot (its
 * word in *r) and the key's entry in it, or NULL. */
static inline struct sm_entry *snapshot_find(struct sm_shard *s, const struct sm_key *k, uintptr_t *r)
{
	*r = atomic_load_explicit(s->read, memory_order_acquire);
	return table_lookup(read_table(*r), k);
}

/* After the snapshot had no usable entry for k (none, or expunged): must
 * the operation take the mutex to look in the dirty map?  Only if the
 * snapshot is amended and its filter says the key may be dirty-only. */
static inline bool need_dirty(uintptr_t r, const struct sm_key *k)
{
	const struct sm_table *t = read_table(r);
	return read_amended(r) && sm_filter_maybe(t->filter, t->filter_mask, k->hash);
}

/* The Load fast path's read of an entry.  The tsan_canary build (test only)
 * makes it a plain load racing with the writers' CAS: the seeded race that
 * tsan/run --canary must see reported, proving the annotations hide nothing. */
#if SM_TSAN_CANARY
#define entry_load_fast(e) (*(void *volatile *)(uintptr_t) & (e)->p)
#else
#define entry_load_fast(e) atomic_load_explicit(&(e)->p, memory_order_acquire)
#endif

/* Load's slow path, under the mutex: the key's entry word from the
 * snapshot or the dirty map (a value, or NULL / EXPUNGED: absent).  r and
 * e: the snapshot word and entry (or NULL) the lock-free step saw. */
void *syncmap__shard_load_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r, struct sm_entry *e);

/* The key's entry word: a value, or NULL / EXPUNGED (absent).  Inlined:
 * the Load hit path takes no lock, makes no call, and reaches the snapshot
 * through the map's read word, without touching the shard. */
static inline __attribute__((always_inline)) void *sm_map_load(struct syncmap *m, const struct sm_key *k)
{
	unsigned i = shard_index(m, k->hash);
	uintptr_t r = atomic_load_explicit(&m->read[i], memory_order_acquire);
	struct sm_entry *e = table_lookup(read_table(r), k);
	void *p = e ? entry_load_fast(e) : NULL;
	if (__builtin_expect((!e || p == EXPUNGED) && need_dirty(r, k), 0))
		/* amended: the shard has been written, so it exists */
		p = syncmap__shard_load_locked(atomic_load_explicit(&m->shard[i], memory_order_acquire), k, r, e);
	return p;
}
/* Store newp: 1 (replaced *oldp), 0 (new), -ENOMEM (newp not consumed). */
int syncmap__shard_swap(struct sm_shard *s, const struct sm_key *k, void *newp, void **oldp);
/* 1 (present: *actual), 0 (stored val, *actual = val), -ENOMEM. */
int syncmap__shard_load_or_store(struct sm_shard *s, const struct sm_key *k, void *val, void **actual);
/* 1 (deleted: *oldp is the removed word, for the caller to retire), 0. */
int syncmap__shard_delete(struct sm_shard *s, const struct sm_key *k, void **oldp);
/* 1 (swapped; the old value retired), 0, -ENOMEM. */
int syncmap__shard_compare_and_swap(struct sm_shard *s, const struct sm_key *k, void *old, void *new_);
/* 1 (deleted: *removed for the caller to retire), 0. */
int syncmap__shard_compare_and_delete(struct sm_shard *s, const struct sm_key *k, void *old, void **removed);

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
