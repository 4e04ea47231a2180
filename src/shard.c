/*
 * shard.c - one shard: Go's sync.Map over RCU-protected gomap snapshots.
 *
 * SPDX-License-Identifier: MIT
 *
 * Read next to Go 1.19's src/sync/map.go (plus Swap/CompareAndSwap/
 * CompareAndDelete from 1.20 and Clear from 1.23).  Each operation first
 * looks in the shard's read snapshot without any lock; only a key the
 * snapshot lacks while the dirty map holds keys the snapshot does not
 * ("amended"), or an entry expunged from it, takes the shard's mutex.  Data
 * structures and the entry state machine: syncmap_impl.h.
 *
 * Every function here runs inside an RCU read section (the front, syncmap.c,
 * opens it), so whatever snapshot, entry or value it reached stays allocated
 * until it returns.
 *
 * The dirty map is built incrementally: Go copies the whole snapshot into a
 * new dirty map on the first new key after a promotion (O(n) under the
 * mutex); here that first new key only creates the dirty map and every
 * critical section then copies a bounded slice (COPY_BUDGET_PER_OP
 * buckets), adopting the snapshot's key blocks (no key is copied or
 * rehashed).  The dirty map is promoted only once it holds every live key
 * of the snapshot, which is what Go's dirtyLocked guarantees at once.
 */
#include "shard.h"

#include <errno.h>
#include <time.h>

#include "alloc.h"

/* Snapshot buckets copied into the dirty map per critical section: each
 * bucket is at most 8 entries, so the mutex is never held for more than a
 * few hundred nanoseconds of copying. */
#define COPY_BUDGET_PER_OP 2
/* Range must finish the copy before it can promote; it does so in slices of
 * this many buckets, releasing the mutex in between. */
#define RANGE_COPY_BUDGET 8

_Static_assert((COPY_BUDGET_PER_OP + RANGE_COPY_BUDGET) * (1 + bucketCnt) + 2 <= SYNCMAP_MAX_LOCKED_WORK,
	       "the locked-work bound holds");
_Static_assert((COPY_BUDGET_PER_OP + RANGE_COPY_BUDGET) * (1 + bucketCnt) * KEY_INLINE_MAX <=
		       SYNCMAP_MAX_LOCKED_KEY_BYTES,
	       "only keys of at most KEY_INLINE_MAX bytes are hashed by the copy");

/*
 * Go promotes the dirty map once the misses reach its length, so a dirty
 * map of one key is promoted by its first miss.  A server that stores a
 * fresh key per request, reads it and deletes it (Go issue 40999's
 * pattern) then promotes, allocates a table and retires one every request:
 * measured 10-22 thousand snapshots waiting for a grace period and RSS
 * swinging 26-53 MiB for an empty map.  A promotion has a fixed price (a
 * table allocated, retired, freed after a grace period), worth hundreds of
 * misses (each a trip through the mutex), and what it buys is lock-free
 * reads of the keys only the dirty map holds.  So the misses a promotion
 * waits for are at least PROMOTE_PRICE / (dirty-only keys): a dirty map of
 * many new keys (a map just filled) promotes by Go's rule, one whose only
 * new key comes and goes waits for PROMOTE_PRICE misses.  Measured on the
 * in-flight pattern (tests/syncmap/memory.c, 1.5e6 cycles, 2 threads) with
 * a flat floor instead: 64 misses: 78k promotions, 3.5k objects pending,
 * 0.78 us per cycle; 256: 12k, 942, 0.30 us; 1024: 3k, 284, 0.28 us.  (A
 * flat floor of 1024 left maps just filled locked: ReadMostly99 at 1e3 keys
 * 20.6 -> 28.7 ns/op, its 2000 priming loads no longer promoting 8 shards
 * of 125 keys.)
 */
#define PROMOTE_PRICE 1024

/* ===================================================================== */
/* --- Tables --------------------------------------------------------------- */

/* A table for the dirty map, presized for `hint` keys, with the filter it
 * will need once promoted to snapshot. */
static struct sm_table *table_new(struct sm_shard *s, size_t hint)
{
	struct sm_table *t = syncmap__aligned_alloc(SM_CACHELINE, sizeof(*t));
	if (!t)
		return NULL;
	memset(t, 0, sizeof(*t));
	t->shard = s;
	size_t words = sm_filter_words_for(hint, s->m->filter_min_words);
	t->filter = syncmap__alloc_zeroed(words * sizeof(uint64_t));
	t->filter_mask = words - 1;
	if (!t->filter ||
	    gomap__init(&t->g, s->m->seed, hint, GOMAP_INIT_HUGE_LATER | GOMAP_INIT_KEYS_EXTERNAL) != 0) {
		syncmap__table_destroy(t);
		return NULL;
	}
	return t;
}

/* ===================================================================== */
/* --- Incremental dirty map construction (Go's dirtyLocked) ------------- */

static int expunged_reserve(struct sm_table *t)
{
	if (t->nexpunged < t->capexpunged)
		return 0;
	size_t cap = t->capexpunged ? 2 * t->capexpunged : 16;
	struct sm_expunged *a = syncmap__malloc(cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (t->nexpunged)
		memcpy(a, t->expunged, t->nexpunged * sizeof(*a));
	syncmap__free(t->expunged);
	t->expunged = a;
	t->capexpunged = cap;
	return 0;
}

/* Go's tryExpungeLocked: a deleted entry is left out of the dirty map and
 * marked so that lock-free writers stop using it.  The snapshot it came
 * from owns it (and its key block) from now on.  If the owner list cannot
 * grow, the entry is copied instead (NULL and all). */
static bool try_expunge(struct sm_table *src, struct sm_entry *e, uint64_t key)
{
	void *p = atomic_load_explicit(&e->p, memory_order_relaxed);
	while (p == NULL) {
		if (expunged_reserve(src) != 0)
			return false;
		if (atomic_compare_exchange_weak_explicit(&e->p, &p, EXPUNGED, memory_order_acq_rel,
							  memory_order_relaxed)) {
			src->expunged[src->nexpunged++] = (struct sm_expunged){e, key};
			return true;
		}
	}
	return p == EXPUNGED; /* cannot happen: only this copy expunges */
}

/* Copy up to `budget` snapshot buckets into the dirty map.  Returns false
 * when it is stuck on an allocation failure (it will retry next time).
 * Its allocations are the map's business, not the caller's: errno is kept. */
static bool copy_step(struct sm_shard *s, size_t budget)
{
	struct sm_table *src = s->copy_src;
	if (!src)
		return true;
	int saved_errno = errno;
	bool ok = true;
	if (s->copy_pending) {
		if (gomap__put_h(&s->dirty->g, &s->copy_pending_key, s->copy_pending_hash, s->copy_pending) != 0) {
			ok = false;
			goto out;
		}
		s->copy_pending = NULL;
		s->op_work++;
	}
	for (;;) {
		const void *k;
		size_t klen, before = budget;
		void **slot;
		int r = gomap_walk_next(&s->copy_walk, &budget, &k, &klen, &slot);
		s->op_work += before - budget;
		if (r < 0)
			break;
		if (r == 0) {
			s->copy_src = NULL; /* dirty now holds every live key of read */
			break;
		}
		struct sm_entry *e = *slot;
		struct gomap_probe probe;
		uint64_t hash = gomap_walk_probe(&s->copy_walk, &probe);
		if (probe.code != KEY_INDIRECT)
			s->op_key_bytes += probe.klen; /* rehashed; long keys carry their hash */
		if (try_expunge(src, e, probe.code == KEY_INDIRECT ? probe.word : 0))
			continue;
		s->op_work++;
		/* The dirty map adopts the snapshot's key block (KEYS_EXTERNAL). */
		if (gomap__put_h(&s->dirty->g, &probe, hash, e) != 0) {
			/* Out of memory: keep the entry for the next slice. */
			s->copy_pending = e;
			s->copy_pending_key = probe;
			s->copy_pending_hash = hash;
			ok = false;
			break;
		}
	}
out:
	errno = saved_errno;
	return ok;
}

/* The first new key after a promotion: create the dirty map and start the
 * copy (Go copies everything right here).  Presized for the snapshot's keys
 * so the copy does not grow it. */
static int start_dirty(struct sm_shard *s, struct sm_table *rt)
{
	struct sm_table *d = table_new(s, gomap_len(&rt->g));
	if (!d)
		return -ENOMEM;
	s->dirty = d;
	if (gomap_len(&rt->g) > 0) {
		s->copy_src = rt;
		gomap_walk_init(&s->copy_walk, &rt->g, 0);
		s->copy_pending = NULL;
	}
	return 0;
}

/* ===================================================================== */
/* --- The mutex, misses and promotion ------------------------------------ */

static void lock(struct sm_shard *s)
{
	for (;;) {
		pthread_mutex_lock(&s->mu);
		/* A clear or fork began after this operation passed the gate:
		 * let it go first (syncmap_impl.h, the gate). */
		if (__builtin_expect(!(atomic_load_explicit(&s->m->gate, memory_order_acquire) & 1), 1))
			break;
		pthread_mutex_unlock(&s->mu);
		syncmap__gate_wait(s->m);
	}
	s->locked_ops++;
	s->op_work = 0;
	s->op_key_bytes = 0;
	copy_step(s, COPY_BUDGET_PER_OP);
}

static void unlock(struct sm_shard *s)
{
	if (s->op_work > s->max_locked_work)
		s->max_locked_work = s->op_work;
	if (s->op_key_bytes > s->max_locked_key_bytes)
		s->max_locked_key_bytes = s->op_key_bytes;
	pthread_mutex_unlock(&s->mu);
}

/* Publish the dirty map as the new snapshot: one release store.  The old
 * snapshot goes after a grace period, with the entries expunged from it. */
static void promote(struct sm_shard *s)
{
	struct sm_table *old = read_table(atomic_load_explicit(s->read, memory_order_relaxed));
	gomap__advise_huge(&s->dirty->g); /* read-only from now on */
	/* Release: the dirty map's buckets and entries, written under the
	 * mutex, before any reader that acquires the new pointer. */
	atomic_store_explicit(s->read, (uintptr_t)s->dirty, memory_order_release);
	s->dirty = NULL;
	s->misses = 0;
	s->dirty_only = 0;
	s->promotions++;
	if (old != &s->empty)
		syncmap__table_retire_snapshot(s->m, old);
}

/* Go's missLocked: promote once the misses would have paid for a copy. */
static void miss_locked(struct sm_shard *s)
{
	s->misses++;
	s->misses_total++;
	if (!s->dirty || s->copy_src)
		return; /* not yet: dirty still lacks some of the snapshot */
	size_t need = gomap_len(&s->dirty->g);
	size_t floor = PROMOTE_PRICE / (s->dirty_only ? s->dirty_only : 1);
	if (need < floor)
		need = floor;
	if (s->misses < need)
		return;
	promote(s);
}

/* Under the mutex: the entry for k, from the snapshot unless it is missing
 * or expunged there, else from the dirty map (*in_dirty set: the caller
 * counts a miss as Go does).  seen_r / seen_e: what the lock-free step found
 * (its snapshot word and entry): a snapshot never changes, so if it is
 * still the same one the lookup need not be repeated under the mutex. */
static struct sm_entry *locked_find(struct sm_shard *s, const struct sm_key *k, uintptr_t seen_r,
				    struct sm_entry *seen_e, bool *in_dirty)
{
	uintptr_t r = atomic_load_explicit(s->read, memory_order_relaxed);
	struct sm_entry *e = read_table(r) == read_table(seen_r) ? seen_e : table_lookup(read_table(r), k);
	*in_dirty = false;
	if (e && atomic_load_explicit(&e->p, memory_order_relaxed) != EXPUNGED)
		return e;
	if (!read_amended(r) || !s->dirty)
		return NULL;
	*in_dirty = true;
	return table_lookup(s->dirty, k);
}

/* Is k surely a new key?  The snapshot has no entry for it and the filter
 * says the dirty map cannot hold it either (barring a race). */
static inline bool looks_new(const struct sm_entry *e, uintptr_t r, const struct sm_key *k)
{
	return !e && !need_dirty(r, k);
}

/* A new long key's block, made before taking the mutex so the copy of the
 * caller's bytes is not done under it.  Returns false on ENOMEM.  Short
 * keys need none. */
static bool key_prepare(const struct sm_key *k, struct gkey **block)
{
	*block = NULL;
	if (k->probe.code != KEY_INDIRECT)
		return true;
	*block = gomap__key_new(k->probe.key, k->probe.klen, k->hash);
	return *block != NULL;
}

/* A key in neither map: a new entry in the dirty map.  `block` is the
 * key's block (long keys; consumed on success). */
/* Under the mutex: the snapshot's entry for k if it is there and not
 * expunged (no dirty lookup: the writers' first step, see
 * insert_or_find_locked).  seen_r / seen_e as for locked_find. */
static struct sm_entry *snapshot_entry_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t seen_r,
					      struct sm_entry *seen_e)
{
	uintptr_t r = atomic_load_explicit(s->read, memory_order_relaxed);
	struct sm_entry *e = read_table(r) == read_table(seen_r) ? seen_e : table_lookup(read_table(r), k);
	return e && atomic_load_explicit(&e->p, memory_order_relaxed) != EXPUNGED ? e : NULL;
}

/* A key the snapshot lacks (or holds expunged): a new entry holding newp
 * in the dirty map (0; newp consumed), or, if the dirty map holds the key
 * already, its entry in *found (1; nothing inserted); -ENOMEM.  One probe
 * of the dirty map serves the lookup and the insert: a new key's probe is
 * a cache miss in a big map, paid under the mutex. */
static int insert_or_find_locked(struct sm_shard *s, const struct sm_key *k, struct gkey **block, void *newp,
				 struct sm_entry **found)
{
	uintptr_t r = atomic_load_explicit(s->read, memory_order_relaxed);
	bool may_exist = read_amended(r); /* else there is no dirty map, or no key of its own */
	if (!read_amended(r)) {
		if (!s->dirty) {
			if (start_dirty(s, read_table(r)) != 0)
				return -ENOMEM;
			/* This critical section's copy slice (lock() had none to
			 * do): a small snapshot is copied at once. */
			copy_step(s, COPY_BUDGET_PER_OP);
		}
		atomic_store_explicit(s->read, r | READ_AMENDED, memory_order_release);
	}
	struct gomap_probe probe = k->probe;
	if (probe.code == KEY_INDIRECT) {
		if (!*block && !(*block = gomap__key_new(probe.key, probe.klen, k->hash)))
			goto no_memory;
		probe.word = (uint64_t)(uintptr_t)*block;
	}
	struct sm_entry *e = syncmap__entry_alloc(s);
	if (!e)
		goto no_memory;
	/* Before the key can be found: see filter.h. */
	struct sm_table *rt = read_table(r);
	sm_filter_add(rt->filter, rt->filter_mask, k->hash);
	/* Relaxed: readers reach e only through a later promotion (release)
	 * or under the mutex. */
	atomic_store_explicit(&e->p, newp, memory_order_relaxed);
	void **slot = NULL;
	int rc = may_exist ? gomap__insert_or_find_h(&s->dirty->g, &probe, k->hash, e, &slot)
			   : gomap__put_h(&s->dirty->g, &probe, k->hash, e);
	if (rc == 0) {
		*block = NULL; /* the dirty map owns it now */
		s->dirty_only++;
		sm_len_add(s->m, 1);
		return 0;
	}
	syncmap__entry_free_locked(s, e); /* never reachable */
	if (rc == 1) {
		*found = *slot;
		return 1;
	}
no_memory:
	/* What a new key needs could not be allocated (its block, its entry,
	 * room in the dirty map); a key the dirty map holds needs none of it. */
	if (may_exist && (*found = table_lookup(s->dirty, k)))
		return 1;
	return -ENOMEM;
}

/* ===================================================================== */
/* --- Operations ------------------------------------------------------------ */

void *syncmap__shard_load_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r, struct sm_entry *e)
{
	bool in_dirty;
	lock(s);
	e = locked_find(s, k, r, e, &in_dirty);
	void *p = e ? atomic_load_explicit(&e->p, memory_order_acquire) : NULL;
	if (in_dirty)
		miss_locked(s);
	unlock(s);
	return p;
}

int syncmap__shard_swap_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r, struct sm_entry *e,
			       void *newp, void **oldp)
{
	void *old = NULL;
	int ret = 0;
	struct gkey *block = NULL;
	if (looks_new(e, r, k) && !key_prepare(k, &block))
		return -ENOMEM;
	lock(s);
	e = snapshot_entry_locked(s, k, r, e);
	if (!e && (ret = insert_or_find_locked(s, k, &block, newp, &e)) == 1)
		ret = 0; /* the dirty map's entry: swap into it */
	if (e) /* under the mutex nobody can expunge it */
		old = atomic_exchange_explicit(&e->p, newp, memory_order_acq_rel);
	unlock(s);
	syncmap__free(block);
	if (ret < 0)
		return ret;
	if (old) {
		*oldp = old;
		return 1;
	}
	if (e)
		sm_len_add(s->m, 1); /* a deleted entry came back to life */
	return 0;
}

int syncmap__shard_load_or_store_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r,
					struct sm_entry *e, void *val, void **newp, void **actual)
{
	struct syncmap *m = s->m;
	int ret;
	struct gkey *block = NULL;
	if (looks_new(e, r, k)) {
		/* Make what a new key needs before taking the mutex. */
		if (!*newp && !(*newp = syncmap__value_new(m, val)))
			return -ENOMEM;
		if (!key_prepare(k, &block))
			return -ENOMEM;
	}
	lock(s);
	e = snapshot_entry_locked(s, k, r, e);
	if (!e && !*newp && m->boxed && read_amended(atomic_load_explicit(s->read, memory_order_relaxed)) &&
	    (e = table_lookup(s->dirty, k))) {
		/* Present in the dirty map, and a box not made yet: a key
		 * that is there needs none (it may fail for lack of one
		 * only if its entry is deleted).  Go counts a miss. */
		ret = entry_try_load_or_store(m, e, val, newp, actual);
		miss_locked(s);
	} else if (e) {
		ret = entry_try_load_or_store(m, e, val, newp, actual);
	} else if (!*newp && !(*newp = syncmap__value_new(m, val))) {
		ret = -ENOMEM;
	} else if ((ret = insert_or_find_locked(s, k, &block, *newp, &e)) == 0) {
		*newp = NULL;
		if (actual)
			*actual = val;
	} else if (ret == 1) {
		/* the dirty map's entry (never expunged): Go counts a miss */
		ret = entry_try_load_or_store(m, e, val, newp, actual);
		miss_locked(s);
	}
	unlock(s);
	syncmap__free(block);
	return ret;
}

int syncmap__shard_delete_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r, struct sm_entry *e,
				 void **oldp)
{
	void *old = NULL;
	bool in_dirty;
	uint64_t key_word = 0;
	int t = 0;
	lock(s);
	e = locked_find(s, k, r, e, &in_dirty);
	if (e && !in_dirty) {
		t = entry_try_delete(e, &old);
	} else if (e) {
		/* Only the dirty map holds e (no snapshot ever did), and only
		 * mutex holders touch it: remove and free it now, with its key
		 * block (Go issue 40999: deleted keys must not linger). */
		old = atomic_load_explicit(&e->p, memory_order_relaxed);
		t = old != NULL;
		gomap__delete_h(&s->dirty->g, &k->probe, k->hash, NULL, &key_word);
		syncmap__entry_free_locked(s, e);
		s->dirty_only--;
	}
	if (in_dirty)
		miss_locked(s);
	unlock(s);
	if (k->probe.code == KEY_INDIRECT)
		syncmap__free((void *)(uintptr_t)key_word);
	if (t == 1)
		*oldp = old;
	return t;
}

int syncmap__shard_compare_and_swap_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r,
					   struct sm_entry *e, void *old, void *new_, void **newp)
{
	bool in_dirty;
	int t = 0;
	lock(s);
	e = locked_find(s, k, r, e, &in_dirty);
	if (e) {
		t = entry_try_cas(s->m, e, old, new_, newp);
		if (in_dirty)
			miss_locked(s);
	}
	unlock(s);
	return t;
}

int syncmap__shard_compare_and_delete_locked(struct sm_shard *s, const struct sm_key *k, uintptr_t r,
					     struct sm_entry *e, void *old, void **removed)
{
	bool in_dirty;
	lock(s);
	e = locked_find(s, k, r, e, &in_dirty);
	/* Like Go, a key only in the dirty map stays there with its entry
	 * deleted; the next copy expunges it. */
	int t = e ? entry_try_cad(s->m, e, old, removed) : 0;
	if (in_dirty)
		miss_locked(s);
	unlock(s);
	return t;
}

/* ===================================================================== */
/* --- Range, Clear, stats, teardown --------------------------------------- */

uintptr_t syncmap__shard_range_snapshot(struct sm_shard *s)
{
	uintptr_t r = atomic_load_explicit(s->read, memory_order_acquire);
	if (!read_amended(r))
		return r;
	/* Range needs the dirty map promoted; finish its copy first, a slice
	 * per critical section so writers are never held up for long.  If
	 * the copy is stuck for lack of memory, wait for memory (with backoff)
	 * rather than spin: promotion is what lets range see every key. */
	long backoff_ns = 0;
	lock(s);
	for (;;) {
		if (!read_amended(atomic_load_explicit(s->read, memory_order_relaxed)))
			break;
		if (s->copy_src) {
			bool ok = copy_step(s, RANGE_COPY_BUDGET);
			if (s->copy_src) {
				unlock(s);
				if (!ok) {
					backoff_ns = backoff_ns ? (backoff_ns < 50000000 ? 2 * backoff_ns : backoff_ns)
								: 100000;
					nanosleep(&(struct timespec){.tv_nsec = backoff_ns}, NULL);
				} else {
					backoff_ns = 0;
				}
				lock(s);
				continue;
			}
		}
		promote(s);
		break;
	}
	unlock(s);
	return atomic_load_explicit(s->read, memory_order_acquire);
}

void syncmap__shard_detach_locked(struct sm_shard *s, struct sm_table **read, struct sm_table **dirty)
{
	struct sm_table *rt = read_table(atomic_load_explicit(s->read, memory_order_relaxed));
	*read = rt == &s->empty ? NULL : rt;
	*dirty = s->dirty;
	atomic_store_explicit(s->read, (uintptr_t)&s->empty, memory_order_release);
	s->dirty = NULL;
	s->copy_src = NULL;
	s->copy_pending = NULL;
	s->misses = 0;
	s->dirty_only = 0;
	/* No key is dirty-only any more (a reader still holding the old
	 * snapshot may see bits vanish: those keys are cleared anyway). */
	for (size_t i = 0; i <= s->empty.filter_mask; i++)
		atomic_store_explicit(&s->empty_filter[i], 0, memory_order_relaxed);
}


void syncmap__shard_stats_add(struct sm_shard *s, struct syncmap_stats *st)
{
	pthread_mutex_lock(&s->mu);
	uintptr_t r = atomic_load_explicit(s->read, memory_order_relaxed);
	st->read_keys += gomap_len(&read_table(r)->g);
	st->dirty_keys += s->dirty ? gomap_len(&s->dirty->g) : 0;
	st->amended |= read_amended(r);
	st->building |= s->copy_src != NULL;
	st->promotions += s->promotions;
	st->misses += s->misses_total;
	st->locked_ops += s->locked_ops;
	if (s->max_locked_work > st->max_locked_work)
		st->max_locked_work = s->max_locked_work;
	if (s->max_locked_key_bytes > st->max_locked_key_bytes)
		st->max_locked_key_bytes = s->max_locked_key_bytes;
	st->entries += (uint64_t)(s->entries_live - atomic_load_explicit(&s->freed_count, memory_order_relaxed));
	pthread_mutex_unlock(&s->mu);
}

/*
 * The shard mutex spins a little before it sleeps (glibc's adaptive type):
 * critical sections are short, and sleeping on the futex costs two context
 * switches.  Measured with stress/mapbench at 2 threads, 8 shards, medians
 * of 3 interleaved runs: LoadOrStoreUnique 309 -> 216 ns/op,
 * LoadOrStoreBalanced 154 -> 109, Churn (1e3 keys) 76 -> 64.  (With the
 * single mutex of one sync.Map it was the other way round: every thread
 * spun on the one lock.)
 */
void syncmap__shard_mutex_init(pthread_mutex_t *mu)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
#ifdef PTHREAD_MUTEX_ADAPTIVE_NP
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
	pthread_mutex_init(mu, &a);
	pthread_mutexattr_destroy(&a);
}

struct sm_shard *syncmap__shard_new(struct syncmap *m, unsigned i)
{
	size_t size = sizeof(struct sm_shard) + m->filter_min_words * sizeof(uint64_t);
	struct sm_shard *s = syncmap__aligned_alloc(SM_CACHELINE, size);
	if (!s)
		return NULL;
	memset(s, 0, size);
	s->m = m;
	s->read = &m->read[i];
	syncmap__shard_mutex_init(&s->mu);
	/* no allocation for hint 0 */
	gomap__init(&s->empty.g, m->seed, 0, GOMAP_INIT_KEYS_EXTERNAL);
	s->empty.shard = s;
	s->empty.filter = s->empty_filter;
	s->empty.filter_mask = m->filter_min_words - 1;
	return s;
}
