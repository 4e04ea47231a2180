/*
 * syncmap.c - Go's sync.Map over RCU-protected gomap snapshots.
 *
 * SPDX-License-Identifier: MIT
 *
 * Read next to Go 1.19's src/sync/map.go (plus Swap/CompareAndSwap/
 * CompareAndDelete from 1.20 and Clear from 1.23).  Each operation first
 * looks in the read snapshot without any lock; only a key the snapshot lacks
 * while the dirty map holds keys the snapshot does not ("amended"), or an
 * entry expunged from it, takes the mutex.  Data structures and the entry
 * state machine: syncmap_impl.h.  Reclamation: reclaim.c.
 *
 * Every operation runs inside an RCU read section, so whatever snapshot,
 * entry or value it reached stays allocated until it returns.
 *
 * The dirty map is built incrementally: Go copies the whole snapshot into a
 * new dirty map on the first new key after a promotion (O(n) under the
 * mutex); here that first new key only creates the dirty map and every
 * critical section then copies a bounded slice (COPY_BUDGET_PER_OP buckets).
 * The dirty map is promoted only once it holds every live key of the
 * snapshot, which is what Go's dirtyLocked guarantees at once.
 */
#include "syncmap_impl.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "rand.h"

/* Snapshot buckets copied into the dirty map per critical section: each
 * bucket is at most 8 entries, so the mutex is never held for more than a
 * few hundred nanoseconds of copying. */
#define COPY_BUDGET_PER_OP 2
/* Range must finish the copy before it can promote; it does so in slices of
 * this many buckets, releasing the mutex in between. */
#define RANGE_COPY_BUDGET 8

_Static_assert((COPY_BUDGET_PER_OP + RANGE_COPY_BUDGET) * (1 + bucketCnt) + 2 <= SYNCMAP_MAX_LOCKED_WORK,
	       "the locked-work bound holds");

char sm_expunged_obj, sm_nilval_obj;

/*
 * The Load fast path's read of an entry.  The tsan_canary build (test only)
 * makes it a plain load racing with the writers' CAS: the seeded race that
 * tsan/run --canary must see reported, proving the annotations hide nothing.
 */
#if SM_TSAN_CANARY
#define entry_load_fast(e) (*(void *volatile *)(uintptr_t) & (e)->p)
#else
#define entry_load_fast(e) atomic_load_explicit(&(e)->p, memory_order_acquire)
#endif

/* Internal result of the lock-free attempts: the entry was expunged, so
 * the operation must take the mutex and look in the dirty map. */
#define RETRY_LOCKED 2

/* ===================================================================== */
/* --- Length: per-thread-striped counters -------------------------------- */

static atomic_uint stripe_next;
static _Thread_local unsigned my_stripe_plus1;

static unsigned my_stripe(void)
{
	unsigned s = my_stripe_plus1;
	if (__builtin_expect(s == 0, 0)) {
		s = atomic_fetch_add_explicit(&stripe_next, 1, memory_order_relaxed) % SM_LEN_STRIPES + 1;
		my_stripe_plus1 = s;
	}
	return s - 1;
}

void sm_len_add(struct syncmap *m, long d)
{
	atomic_fetch_add_explicit(&m->len[my_stripe()].v, d, memory_order_relaxed);
}

static long len_sum(struct syncmap *m)
{
	long sum = 0;
	for (unsigned i = 0; i < SM_LEN_STRIPES; i++)
		sum += atomic_load_explicit(&m->len[i].v, memory_order_relaxed);
	return sum;
}

/* ===================================================================== */
/* --- Keys and tables ----------------------------------------------------- */

/* A key hashed once per operation: snapshot and dirty map share the seed. */
struct sm_key {
	struct gomap_probe probe;
	uint64_t hash;
};

static inline __attribute__((always_inline)) void key_init(const struct syncmap *m, struct sm_key *k, const void *key,
							      size_t klen)
{
	gomap_probe_init(&k->probe, key, klen);
	k->hash = sm_hash(key, klen, m->seed);
}

static inline struct sm_entry *table_lookup(const struct sm_table *t, const struct sm_key *k)
{
	void **slot = gomap_lookup_h(&t->g, &k->probe, k->hash);
	return slot ? *slot : NULL;
}

/* A table for the dirty map, presized for `hint` keys, with the filter it
 * will need once promoted to snapshot. */
static struct sm_table *table_new(struct syncmap *m, size_t hint)
{
	struct sm_table *t = sm_malloc(sizeof(*t));
	if (!t)
		return NULL;
	memset(t, 0, sizeof(*t));
	t->m = m;
	size_t words = sm_filter_words_for(hint);
	t->filter = sm_alloc_zeroed(words * sizeof(uint64_t));
	t->filter_mask = words - 1;
	if (!t->filter || gomap_init(&t->g, m->seed, hint, GOMAP_INIT_HUGE_LATER) != 0) {
		sm_table_destroy(t);
		return NULL;
	}
	return t;
}

/* Might the key be in the dirty map but not in snapshot t? */
static inline bool maybe_dirty_only(const struct sm_table *t, const struct sm_key *k)
{
	return sm_filter_maybe(t->filter, t->filter_mask, k->hash);
}

/* The lock-free first step of every keyed operation: the snapshot (its
 * word in *r) and the key's entry in it, or NULL.  Call in a read section. */
static inline struct sm_entry *snapshot_find(struct syncmap *m, const struct sm_key *k, uintptr_t *r)
{
	*r = atomic_load_explicit(&m->read, memory_order_acquire);
	return table_lookup(read_table(*r), k);
}

/* After the snapshot had no usable entry for k (none, or expunged): must
 * the operation take the mutex to look in the dirty map? */
static inline bool need_dirty(uintptr_t r, const struct sm_key *k)
{
	return read_amended(r) && maybe_dirty_only(read_table(r), k);
}

static inline bool bad_input(const struct syncmap *m, const void *key, size_t klen)
{
	return !m || (!key && klen > 0);
}

/* ===================================================================== */
/* --- Lock-free entry transitions (Go's entry methods) ------------------- */

/* Go's trySwap: replace a value or a deletion, never an expunged entry. */
static bool entry_try_swap(struct sm_entry *e, void *newp, void **old)
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
static int entry_try_load_or_store(struct syncmap *m, struct sm_entry *e, void *val, void **newp,
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
		if (!*newp && !(*newp = sm_value_new(m, val)))
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
static int entry_try_delete(struct sm_entry *e, void **old)
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
 * RETRY_LOCKED or -ENOMEM.  The replaced value is retired. */
static int entry_try_cas(struct syncmap *m, struct sm_entry *e, void *old, void *new_, void **newp)
{
	void *p = atomic_load_explicit(&e->p, memory_order_acquire);
	for (;;) {
		if (p == EXPUNGED)
			return RETRY_LOCKED;
		if (!p || decode_value(m, p) != old)
			return 0;
		if (!*newp && !(*newp = sm_value_new(m, new_)))
			return -ENOMEM;
		if (atomic_compare_exchange_weak_explicit(&e->p, &p, *newp, memory_order_acq_rel,
							  memory_order_acquire)) {
			*newp = NULL;
			sm_value_retire(m, p, old == new_);
			return 1;
		}
	}
}

/* CompareAndDelete's entry step: 1 (deleted, *removed set), 0, RETRY_LOCKED. */
static int entry_try_cad(struct syncmap *m, struct sm_entry *e, void *old, void **removed)
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

/* ===================================================================== */
/* --- Incremental dirty map construction (Go's dirtyLocked) ------------- */

static int expunged_reserve(struct sm_table *t)
{
	if (t->nexpunged < t->capexpunged)
		return 0;
	size_t cap = t->capexpunged ? 2 * t->capexpunged : 64;
	struct sm_entry **a = sm_malloc(cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (t->nexpunged)
		memcpy(a, t->expunged, t->nexpunged * sizeof(*a));
	sm_free(t->expunged);
	t->expunged = a;
	t->capexpunged = cap;
	return 0;
}

/* Go's tryExpungeLocked: a deleted entry is left out of the dirty map and
 * marked so that lock-free writers stop using it.  The snapshot it came
 * from owns it from now on (freed when the snapshot is retired).  If the
 * owner list cannot grow, the entry is copied instead (NULL and all). */
static bool try_expunge(struct sm_table *src, struct sm_entry *e)
{
	void *p = atomic_load_explicit(&e->p, memory_order_relaxed);
	while (p == NULL) {
		if (expunged_reserve(src) != 0)
			return false;
		if (atomic_compare_exchange_weak_explicit(&e->p, &p, EXPUNGED, memory_order_acq_rel,
							  memory_order_relaxed)) {
			src->expunged[src->nexpunged++] = e;
			return true;
		}
	}
	return p == EXPUNGED; /* cannot happen: only this copy expunges */
}

static int dirty_insert(struct syncmap *m, const void *key, size_t klen, struct sm_entry *e)
{
	return gomap_put(&m->dirty->g, key, klen, e);
}

/* Copy up to `budget` snapshot buckets into the dirty map.  Returns false
 * when it is stuck on an allocation failure (it will retry next time).
 * Its allocations are the map's business, not the caller's: errno is kept. */
static bool copy_step(struct syncmap *m, size_t budget)
{
	struct sm_table *src = m->copy_src;
	if (!src)
		return true;
	int saved_errno = errno;
	bool ok = true;
	if (m->copy_pending) {
		if (dirty_insert(m, m->copy_pending_key, m->copy_pending_klen, m->copy_pending) != 0) {
			ok = false;
			goto out;
		}
		m->copy_pending = NULL;
		m->op_work++;
	}
	for (;;) {
		const void *k;
		size_t klen, before = budget;
		void **slot;
		int r = gomap_walk_next(&m->copy_walk, &budget, &k, &klen, &slot);
		m->op_work += before - budget;
		if (r < 0)
			break;
		if (r == 0) {
			m->copy_src = NULL; /* dirty now holds every live key of read */
			break;
		}
		struct sm_entry *e = *slot;
		if (try_expunge(src, e))
			continue;
		m->op_work++;
		if (dirty_insert(m, k, klen, e) != 0) {
			/* Out of memory: keep the entry for the next slice. */
			m->copy_pending = e;
			m->copy_pending_key = k;
			m->copy_pending_klen = klen;
			ok = false;
			break;
		}
	}
out:
	errno = saved_errno;
	return ok;
}

/* The first new key after a promotion: create the dirty map and start the
 * copy (Go copies everything right here).  Presized for the live keys so
 * the copy does not grow it. */
static int start_dirty(struct syncmap *m, struct sm_table *rt)
{
	long live = len_sum(m);
	struct sm_table *d = table_new(m, live > 0 ? (size_t)live : 0);
	if (!d)
		return -ENOMEM;
	m->dirty = d;
	if (gomap_len(&rt->g) > 0) {
		m->copy_src = rt;
		gomap_walk_init(&m->copy_walk, &rt->g, 0);
		m->copy_pending = NULL;
	}
	return 0;
}

/* ===================================================================== */
/* --- The mutex, misses and promotion ------------------------------------ */

static void lock(struct syncmap *m)
{
	pthread_mutex_lock(&m->mu);
	m->locked_ops++;
	m->op_work = 0;
	copy_step(m, COPY_BUDGET_PER_OP);
}

static void unlock(struct syncmap *m)
{
	if (m->op_work > m->max_locked_work)
		m->max_locked_work = m->op_work;
	pthread_mutex_unlock(&m->mu);
}

/* Publish the dirty map as the new snapshot: one release store.  The old
 * snapshot goes after a grace period, with the entries expunged from it. */
static void promote(struct syncmap *m)
{
	struct sm_table *old = read_table(atomic_load_explicit(&m->read, memory_order_relaxed));
	gomap_advise_huge(&m->dirty->g); /* read-only from now on */
	/* Release: the dirty map's buckets and entries, written under the
	 * mutex, before any reader that acquires the new pointer. */
	atomic_store_explicit(&m->read, (uintptr_t)m->dirty, memory_order_release);
	m->dirty = NULL;
	m->misses = 0;
	m->promotions++;
	if (old != &m->empty)
		sm_table_retire_snapshot(m, old);
}

/* Go's missLocked: promote once the misses would have paid for a copy. */
static void miss_locked(struct syncmap *m)
{
	m->misses++;
	m->misses_total++;
	if (!m->dirty || m->copy_src)
		return; /* not yet: dirty still lacks some of the snapshot */
	if (m->misses < gomap_len(&m->dirty->g))
		return;
	promote(m);
}

/* Under the mutex: the entry for k, from the snapshot unless it is missing
 * or expunged there, else from the dirty map (*in_dirty set: the caller
 * counts a miss as Go does). */
static struct sm_entry *locked_find(struct syncmap *m, const struct sm_key *k, bool *in_dirty)
{
	uintptr_t r = atomic_load_explicit(&m->read, memory_order_relaxed);
	struct sm_entry *e = table_lookup(read_table(r), k);
	*in_dirty = false;
	if (e && atomic_load_explicit(&e->p, memory_order_relaxed) != EXPUNGED)
		return e;
	if (!read_amended(r) || !m->dirty)
		return NULL;
	*in_dirty = true;
	return table_lookup(m->dirty, k);
}

/* A key in neither map: a new entry in the dirty map. */
static int insert_new_locked(struct syncmap *m, const struct sm_key *k, void *newp)
{
	uintptr_t r = atomic_load_explicit(&m->read, memory_order_relaxed);
	if (!read_amended(r)) {
		if (!m->dirty && start_dirty(m, read_table(r)) != 0)
			return -ENOMEM;
		atomic_store_explicit(&m->read, r | READ_AMENDED, memory_order_release);
	}
	struct sm_entry *e = sm_entry_alloc(m);
	if (!e)
		return -ENOMEM;
	/* Before the key can be found: see filter.h. */
	struct sm_table *rt = read_table(r);
	sm_filter_add(rt->filter, rt->filter_mask, k->hash);
	/* Relaxed: readers reach e only through a later promotion (release)
	 * or under the mutex. */
	atomic_store_explicit(&e->p, newp, memory_order_relaxed);
	if (gomap_put_h(&m->dirty->g, &k->probe, k->hash, e) != 0) {
		sm_entry_free_locked(m, e);
		return -ENOMEM;
	}
	sm_len_add(m, 1);
	return 0;
}

/* ===================================================================== */
/* --- API ------------------------------------------------------------------ */

unsigned syncmap_default_shards(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned s = 1;
	while (s < 256 && (long)s < 4 * cpus)
		s *= 2;
	return s;
}

static atomic_bool fork_calls_liburcu = true;

void syncmap_fork_calls_liburcu(bool yes)
{
	atomic_store(&fork_calls_liburcu, yes);
}

int syncmap_synchronize(void)
{
	if (sm_rcu_in_read_section() || sm_rcu_on_callback_thread())
		return -EDEADLK;
	sm_synchronize_rcu();
	return 0;
}

int syncmap_retire(struct syncmap *m, void *val)
{
	if (!m || !m->boxed)
		return -EINVAL;
	void *p = sm_value_new(m, val);
	if (p) {
		sm_value_retire(m, p, false);
		return 0;
	}
	if (syncmap_synchronize() != 0)
		return -ENOMEM;
	m->free_value(val, m->free_ctx);
	return 0;
}

struct syncmap *syncmap_new(const struct syncmap_options *opts)
{
	unsigned shards = opts ? opts->shards : 0;
	if (shards > SYNCMAP_MAX_SHARDS || (shards & (shards - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	struct syncmap *m = sm_aligned_alloc(SM_CACHELINE, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	memset(m, 0, sizeof(*m));
	m->seed = opts && opts->seed ? opts->seed : sm_random_seed();
	m->free_value = opts ? opts->free_value : NULL;
	m->free_ctx = opts ? opts->free_ctx : NULL;
	m->boxed = m->free_value != NULL;
	pthread_mutex_init(&m->mu, NULL);
	gomap_init(&m->empty.g, m->seed, 0, 0); /* no allocation for hint 0 */
	m->empty.m = m;
	m->empty.filter = m->empty_filter;
	m->empty.filter_mask = sizeof(m->empty_filter) / sizeof(m->empty_filter[0]) - 1;
	atomic_init(&m->read, (uintptr_t)&m->empty);
	return m;
}

void sm_map_release(struct syncmap *m)
{
	sm_entries_destroy(m);
	gomap_destroy(&m->empty.g);
	pthread_mutex_destroy(&m->mu);
	sm_free(m);
}

static void final_teardown(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct syncmap *m = caa_container_of(head, struct syncmap, final_rcu);
	sm_tables_free_all(m, m->final_read, m->final_dirty);
	sm_pending_dec(m);
}

void syncmap_free(struct syncmap *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	struct sm_table *read = read_table(atomic_load_explicit(&m->read, memory_order_relaxed));
	struct sm_table *dirty = m->dirty;
	if (read == &m->empty)
		read = NULL;
	atomic_store_explicit(&m->read, (uintptr_t)&m->empty, memory_order_release);
	m->dirty = NULL;
	m->copy_src = NULL;
	pthread_mutex_unlock(&m->mu);

	if (!sm_rcu_in_read_section()) {
		/* Wait for this map's callbacks only (not rcu_barrier, which
		 * waits for everyone's and whose internal handoff TSAN cannot
		 * see).  The acquire pairs with each callback's final release
		 * on pending: their work happens before the teardown. */
		while (atomic_load_explicit(&m->pending, memory_order_acquire) != 0)
			nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
		sm_tables_free_all(m, read, dirty);
		sm_map_release(m);
		return;
	}
	/* Inside a read section a grace period cannot end: let the last
	 * callback free the map.  Our own callback and the orphan mark go in
	 * with one add, so the count cannot reach zero before it runs. */
	m->final_read = read;
	m->final_dirty = dirty;
	sm_pending_inc(m, PENDING_ORPHANED + 1);
	sm_call_rcu(&m->final_rcu, final_teardown);
}

bool syncmap_load(struct syncmap *m, const void *key, size_t klen, void **val)
{
	if (bad_input(m, key, klen)) {
		errno = EINVAL;
		return false;
	}
	struct sm_key k;
	key_init(m, &k, key, klen);
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = snapshot_find(m, &k, &r);
	void *p = e ? entry_load_fast(e) : NULL;
	if ((!e || p == EXPUNGED) && need_dirty(r, &k)) {
		bool in_dirty;
		lock(m);
		e = locked_find(m, &k, &in_dirty);
		p = e ? atomic_load_explicit(&e->p, memory_order_acquire) : NULL;
		if (in_dirty)
			miss_locked(m);
		unlock(m);
	}
	bool found = is_value(p);
	if (found && val)
		*val = decode_value(m, p);
	sm_rcu_read_unlock();
	return found;
}

/* Store and Swap: returns 1 (replaced, *prev set), 0 (new) or -errno. */
static int swap_impl(struct syncmap *m, const void *key, size_t klen, void *val, void **prev)
{
	if (bad_input(m, key, klen))
		return -EINVAL;
	struct sm_key k;
	key_init(m, &k, key, klen);
	void *newp = sm_value_new(m, val);
	if (!newp)
		return -ENOMEM;
	void *old = NULL;
	int ret = 0;
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = snapshot_find(m, &k, &r);
	if (!e || !entry_try_swap(e, newp, &old)) {
		bool in_dirty;
		lock(m);
		e = locked_find(m, &k, &in_dirty);
		if (e) /* under the mutex nobody can expunge it */
			old = atomic_exchange_explicit(&e->p, newp, memory_order_acq_rel);
		else
			ret = insert_new_locked(m, &k, newp);
		unlock(m);
	}
	if (ret < 0) {
		sm_value_discard(m, newp);
	} else if (old) {
		void *prev_val = decode_value(m, old);
		if (prev)
			*prev = prev_val;
		sm_value_retire(m, old, prev_val == val);
		ret = 1;
	} else if (e) {
		sm_len_add(m, 1); /* a deleted entry came back to life */
	}
	sm_rcu_read_unlock();
	return ret;
}

int syncmap_store(struct syncmap *m, const void *key, size_t klen, void *val)
{
	int ret = swap_impl(m, key, klen, val, NULL);
	return ret < 0 ? ret : 0;
}

int syncmap_swap(struct syncmap *m, const void *key, size_t klen, void *val, void **prev)
{
	return swap_impl(m, key, klen, val, prev);
}

int syncmap_load_or_store(struct syncmap *m, const void *key, size_t klen, void *val, void **actual)
{
	if (bad_input(m, key, klen))
		return -EINVAL;
	struct sm_key k;
	key_init(m, &k, key, klen);
	void *newp = NULL;
	int ret = RETRY_LOCKED;
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = snapshot_find(m, &k, &r);
	if (e)
		ret = entry_try_load_or_store(m, e, val, &newp, actual);
	if (ret == RETRY_LOCKED) {
		bool in_dirty;
		lock(m);
		e = locked_find(m, &k, &in_dirty);
		if (e) {
			ret = entry_try_load_or_store(m, e, val, &newp, actual);
			if (in_dirty)
				miss_locked(m);
		} else if (!newp && !(newp = sm_value_new(m, val))) {
			ret = -ENOMEM;
		} else if ((ret = insert_new_locked(m, &k, newp)) == 0) {
			newp = NULL;
			if (actual)
				*actual = val;
		}
		unlock(m);
	}
	if (newp)
		sm_value_discard(m, newp);
	sm_rcu_read_unlock();
	return ret;
}

/* LoadAndDelete and Take: `keep` hands the value to the caller instead of
 * free_value. */
static bool delete_impl(struct syncmap *m, const void *key, size_t klen, void **val, bool keep)
{
	if (bad_input(m, key, klen)) {
		errno = EINVAL;
		return false;
	}
	struct sm_key k;
	key_init(m, &k, key, klen);
	void *old = NULL;
	int t = RETRY_LOCKED;
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = snapshot_find(m, &k, &r);
	if (e)
		t = entry_try_delete(e, &old);
	if (t == RETRY_LOCKED && !need_dirty(r, &k))
		t = 0;
	if (t == RETRY_LOCKED) {
		bool in_dirty;
		lock(m);
		e = locked_find(m, &k, &in_dirty);
		t = 0;
		if (e && !in_dirty) {
			t = entry_try_delete(e, &old);
		} else if (e) {
			/* Only the dirty map holds e (no snapshot ever did), and
			 * only mutex holders touch it: remove and free it now
			 * (Go issue 40999: deleted keys must not linger). */
			old = atomic_load_explicit(&e->p, memory_order_relaxed);
			t = old != NULL;
			gomap_delete_h(&m->dirty->g, &k.probe, k.hash, NULL, NULL);
			sm_entry_free_locked(m, e);
		}
		if (in_dirty)
			miss_locked(m);
		unlock(m);
	}
	if (t == 1) {
		sm_len_add(m, -1);
		if (val)
			*val = decode_value(m, old);
		sm_value_retire(m, old, keep);
	}
	sm_rcu_read_unlock();
	return t == 1;
}

bool syncmap_load_and_delete(struct syncmap *m, const void *key, size_t klen, void **val)
{
	return delete_impl(m, key, klen, val, false);
}

bool syncmap_take(struct syncmap *m, const void *key, size_t klen, void **val)
{
	return delete_impl(m, key, klen, val, true);
}

void syncmap_delete(struct syncmap *m, const void *key, size_t klen)
{
	int saved = errno;
	(void)syncmap_load_and_delete(m, key, klen, NULL);
	errno = saved; /* delete reports nothing */
}

int syncmap_compare_and_swap(struct syncmap *m, const void *key, size_t klen, void *old, void *new_)
{
	if (bad_input(m, key, klen))
		return -EINVAL;
	struct sm_key k;
	key_init(m, &k, key, klen);
	void *newp = NULL;
	int t = RETRY_LOCKED;
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = snapshot_find(m, &k, &r);
	if (e)
		t = entry_try_cas(m, e, old, new_, &newp);
	if (t == RETRY_LOCKED && !need_dirty(r, &k))
		t = 0;
	if (t == RETRY_LOCKED) {
		bool in_dirty;
		lock(m);
		e = locked_find(m, &k, &in_dirty);
		t = 0;
		if (e) {
			t = entry_try_cas(m, e, old, new_, &newp);
			if (in_dirty)
				miss_locked(m);
		}
		unlock(m);
	}
	if (newp)
		sm_value_discard(m, newp);
	sm_rcu_read_unlock();
	return t;
}

bool syncmap_compare_and_delete(struct syncmap *m, const void *key, size_t klen, void *old)
{
	if (bad_input(m, key, klen)) {
		errno = EINVAL;
		return false;
	}
	struct sm_key k;
	key_init(m, &k, key, klen);
	void *removed = NULL;
	int t = RETRY_LOCKED;
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = snapshot_find(m, &k, &r);
	if (e)
		t = entry_try_cad(m, e, old, &removed);
	if (t == RETRY_LOCKED && !need_dirty(r, &k))
		t = 0;
	if (t == RETRY_LOCKED) {
		bool in_dirty;
		lock(m);
		e = locked_find(m, &k, &in_dirty);
		/* Like Go, a key only in the dirty map stays there with its
		 * entry deleted; the next copy expunges it. */
		t = e ? entry_try_cad(m, e, old, &removed) : 0;
		if (in_dirty)
			miss_locked(m);
		unlock(m);
	}
	if (t == 1) {
		sm_len_add(m, -1);
		sm_value_retire(m, removed, false);
	}
	sm_rcu_read_unlock();
	return t == 1;
}

/* Range needs the dirty map promoted; finish its copy first, a slice per
 * critical section so writers are never held up for long.  If the copy is
 * stuck for lack of memory, wait for memory (with backoff) rather than
 * spin: promotion is what lets range see every key. */
static void range_promote(struct syncmap *m)
{
	long backoff_ns = 0;
	lock(m);
	for (;;) {
		if (!read_amended(atomic_load_explicit(&m->read, memory_order_relaxed)))
			break;
		if (m->copy_src) {
			bool ok = copy_step(m, RANGE_COPY_BUDGET);
			if (m->copy_src) {
				unlock(m);
				if (!ok) {
					backoff_ns = backoff_ns ? (backoff_ns < 50000000 ? 2 * backoff_ns : backoff_ns)
								: 100000;
					nanosleep(&(struct timespec){.tv_nsec = backoff_ns}, NULL);
				} else {
					backoff_ns = 0;
				}
				lock(m);
				continue;
			}
		}
		promote(m);
		break;
	}
	unlock(m);
}

void syncmap_range(struct syncmap *m, bool (*fn)(const void *key, size_t klen, void *val, void *ctx), void *ctx)
{
	if (!m || !fn)
		return;
	sm_rcu_read_lock();
	uintptr_t r = atomic_load_explicit(&m->read, memory_order_acquire);
	if (read_amended(r)) {
		range_promote(m);
		r = atomic_load_explicit(&m->read, memory_order_acquire);
	}
	/* The snapshot is frozen and pinned by our read section: walk it with
	 * no lock, while fn may do anything, including write this map. */
	struct gomap_walk w;
	gomap_walk_init(&w, &read_table(r)->g, sm_rand64());
	size_t budget = SIZE_MAX, klen;
	const void *key;
	void **slot;
	while (gomap_walk_next(&w, &budget, &key, &klen, &slot) == 1) {
		struct sm_entry *e = *slot;
		void *p = atomic_load_explicit(&e->p, memory_order_acquire);
		if (is_value(p) && !fn(key, klen, decode_value(m, p), ctx))
			break;
	}
	sm_rcu_read_unlock();
}

void syncmap_clear(struct syncmap *m)
{
	if (!m)
		return;
	uintptr_t r = atomic_load_explicit(&m->read, memory_order_acquire);
	if (read_table(r) == &m->empty && !read_amended(r))
		return; /* already empty (Go 1.23's fast path) */
	lock(m);
	r = atomic_load_explicit(&m->read, memory_order_relaxed);
	struct sm_table *read = read_table(r);
	struct sm_table *dirty = m->dirty;
	atomic_store_explicit(&m->read, (uintptr_t)&m->empty, memory_order_release);
	m->dirty = NULL;
	m->copy_src = NULL;
	m->copy_pending = NULL;
	m->misses = 0;
	/* No key is dirty-only any more (a reader still holding the old
	 * snapshot may see bits vanish: those keys are cleared anyway). */
	for (size_t i = 0; i <= m->empty.filter_mask; i++)
		atomic_store_explicit(&m->empty_filter[i], 0, memory_order_relaxed);
	long snapshot = len_sum(m);
	sm_len_add(m, -snapshot);
	sm_tables_retire_all(m, read == &m->empty ? NULL : read, dirty, snapshot);
	unlock(m);
}

size_t syncmap_len(struct syncmap *m)
{
	if (!m)
		return 0;
	long n = len_sum(m);
	return n > 0 ? (size_t)n : 0;
}

void syncmap_read_lock(void)
{
	sm_rcu_read_lock();
}

void syncmap_read_unlock(void)
{
	sm_rcu_read_unlock();
}

void syncmap_stats(struct syncmap *m, struct syncmap_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	uintptr_t r = atomic_load_explicit(&m->read, memory_order_relaxed);
	st->len = syncmap_len(m);
	st->read_keys = gomap_len(&read_table(r)->g);
	st->dirty_keys = m->dirty ? gomap_len(&m->dirty->g) : 0;
	st->amended = read_amended(r);
	st->building = m->copy_src != NULL;
	st->promotions = m->promotions;
	st->misses = m->misses_total;
	st->locked_ops = m->locked_ops;
	st->pending_reclaim = (uint64_t)(atomic_load_explicit(&m->pending, memory_order_relaxed) & (PENDING_ORPHANED - 1));
	st->max_locked_work = m->max_locked_work;
	st->shards = st->shards_used = 1;
	st->entries = (uint64_t)(m->entries_live - atomic_load_explicit(&m->freed_count, memory_order_relaxed));
	pthread_mutex_unlock(&m->mu);
}

const char *syncmap_version(void)
{
	return SYNCMAP_VERSION;
}
