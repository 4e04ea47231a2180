/*
 * syncmap.c - the front: the public API over a map's shards.
 *
 * SPDX-License-Identifier: MIT
 *
 * Every keyed operation checks its input, hashes the key once, passes the
 * map's gate, and inside an RCU read section takes Go's lock-free step on
 * the snapshot of the shard the hash selects (inlined here: a hit makes no
 * call); only what that step cannot settle goes to the shard's locked slow
 * path (shard.c).  Values are encoded and decoded here, and what leaves the
 * map is retired here (reclaim.c).  What spans shards lives here too: Range
 * (shard by shard, Go's contract holds per shard and the shards hold
 * disjoint keys), Clear (shard by shard with the gate closed, so it takes
 * effect at one instant), Len (per-thread stripes of the whole map), stats,
 * and the map's creation and end.
 *
 * Shards take memory on their first write: until then the map's slot
 * points at syncmap__shard_unwritten, whose empty snapshot answers every read.
 */
#include "shard.h"

#include <errno.h>
#include <unistd.h>

#include "alloc.h"
#include "rand.h"

char syncmap__expunged_obj, syncmap__nilval_obj;

/* The snapshot of every unwritten shard: empty, never amended, never
 * written (a write first gives the shard its own). */
static _Atomic uint64_t unwritten_filter[1];
struct sm_table syncmap__table_unwritten = {
	.filter = unwritten_filter,
};
static _Atomic uintptr_t unwritten_read = (uintptr_t)&syncmap__table_unwritten;
struct sm_shard syncmap__shard_unwritten = {
	.read = &unwritten_read,
};

/*
 * The automatic shard count: the smallest power of two at least
 * AUTO_SHARDS_PER_CPU times the online CPUs, at most AUTO_SHARDS_MAX.
 * Measured with stress/mapbench on 2 CPUs, 2 threads (ns/op, 3 interleaved
 * runs): LoadOrStoreUnique 8 shards 362-503, 16: 258-462, 32: 205-361,
 * 64: 199-225; LoadOrStoreBalanced 154-190, 175-212, 130-147, 109-148;
 * Churn (1e3 keys) 84-117, 82-170, 67-80, 58-82.  Writers of new keys meet
 * in a shard less often the more there are, and a shard costs memory only
 * once written.  The cap keeps an empty map within 4 KiB (16 bytes per
 * shard, plus the per-CPU stripes) on machines with many CPUs.
 */
#define AUTO_SHARDS_PER_CPU 32
#define AUTO_SHARDS_MAX 128
_Static_assert(AUTO_SHARDS_MAX <= SYNCMAP_MAX_SHARDS, "automatic shards are valid shards");

static inline bool bad_input(const struct syncmap *m, const void *key, size_t klen)
{
	return !m || (!key && klen > 0);
}

/* The key's shard, for an operation that may write: a shard never written
 * is made now (NULL on ENOMEM). */
static struct sm_shard *shard_for_write(struct syncmap *m, const struct sm_key *k)
{
	struct sm_shard *s = shard_of(m, k->hash);
	if (__builtin_expect(s != &syncmap__shard_unwritten, 1))
		return s;
	unsigned i = shard_index(m, k->hash);
	pthread_mutex_lock(&m->alloc_mu);
	s = atomic_load_explicit(&m->shard[i], memory_order_relaxed);
	if (s == &syncmap__shard_unwritten) {
		s = syncmap__shard_new(m, i);
		if (s) {
			/* The shard's own empty snapshot answers like the
			 * unwritten one; then the shard itself.  Release: its
			 * initialized fields before any thread that acquires
			 * either word. */
			atomic_store_explicit(&m->read[i], (uintptr_t)&s->empty, memory_order_release);
			atomic_store_explicit(&m->shard[i], s, memory_order_release);
		}
	}
	pthread_mutex_unlock(&m->alloc_mu);
	return s;
}

/* ===================================================================== */
/* --- Creation and the end ------------------------------------------------ */

unsigned syncmap_default_shards(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned s = 1;
	while (s < AUTO_SHARDS_MAX && (long)s < AUTO_SHARDS_PER_CPU * cpus)
		s *= 2;
	return s;
}

/* Stripes: one per CPU (a power of two, 4 to 64), so threads up to the
 * CPU count each write their own. */
static unsigned stripes_for_cpus(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = 4;
	while (n < 64 && (long)n < cpus)
		n *= 2;
	return n;
}

struct syncmap *syncmap_new(const struct syncmap_options *opts)
{
	unsigned shards = opts ? opts->shards : 0;
	if (shards > SYNCMAP_MAX_SHARDS || (shards & (shards - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	if (shards == 0)
		shards = syncmap_default_shards();
	syncmap__fork_init();
	unsigned stripes = stripes_for_cpus();
	/* One block: the struct with its read words, the shard pointers, the
	 * stripes (cache-line aligned). */
	size_t shard_off = sizeof(struct syncmap) + shards * sizeof(uintptr_t);
	size_t stripe_off = shard_off + shards * sizeof(struct sm_shard *);
	stripe_off = (stripe_off + SM_CACHELINE - 1) / SM_CACHELINE * SM_CACHELINE;
	size_t size = stripe_off + stripes * sizeof(struct sm_stripe);
	struct syncmap *m = syncmap__aligned_alloc(SM_CACHELINE, size);
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	memset(m, 0, size);
	m->seed = opts && opts->seed ? opts->seed : syncmap__random_seed();
	m->free_value = opts ? opts->free_value : NULL;
	m->free_ctx = opts ? opts->free_ctx : NULL;
	m->boxed = m->free_value != NULL;
	m->shard_mask = shards - 1;
	m->stripe_mask = stripes - 1;
	m->filter_min_words = (unsigned)sm_filter_min_words(shards);
	m->shard = (_Atomic(struct sm_shard *) *)((char *)m + shard_off);
	m->stripes = (struct sm_stripe *)((char *)m + stripe_off);
	pthread_mutex_init(&m->alloc_mu, NULL);
	for (unsigned i = 0; i < shards; i++) {
		atomic_init(&m->read[i], (uintptr_t)&syncmap__table_unwritten);
		atomic_init(&m->shard[i], &syncmap__shard_unwritten);
	}
	syncmap__registry_add(m);
	return m;
}

void syncmap_free(struct syncmap *m)
{
	if (!m)
		return;
	syncmap__registry_remove(m);
	syncmap__reclaim_free_map(m);
}

/* ===================================================================== */
/* --- Keyed operations ---------------------------------------------------- */

bool syncmap_load(struct syncmap *m, const void *key, size_t klen, void **val)
{
	if (bad_input(m, key, klen)) {
		errno = EINVAL;
		return false;
	}
	struct sm_key k;
	sm_key_init(m, &k, key, klen);
	sm_gate_pass(m);
	sm_rcu_read_lock();
	void *p = sm_map_load(m, &k);
	bool found = is_value(p);
	if (found && val)
		*val = decode_value(m, p);
	sm_rcu_read_unlock();
	sm_reclaim_after_op(); /* a miss may have promoted and retired a snapshot */
	return found;
}

/* Store and Swap: returns 1 (replaced, *prev set), 0 (new) or -errno. */
static int swap_impl(struct syncmap *m, const void *key, size_t klen, void *val, void **prev)
{
	if (bad_input(m, key, klen))
		return -EINVAL;
	struct sm_key k;
	sm_key_init(m, &k, key, klen);
	void *newp = syncmap__value_new(m, val);
	if (!newp)
		return -ENOMEM;
	void *old = NULL;
	int ret = -ENOMEM;
	sm_gate_pass(m);
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = sm_snapshot_find(m, &k, &r);
	if (e && entry_try_swap(e, newp, &old)) {
		ret = old != NULL;
		if (!old)
			sm_len_add(m, 1); /* a deleted entry came back to life */
	} else {
		struct sm_shard *s = shard_for_write(m, &k);
		if (s)
			ret = syncmap__shard_swap_locked(s, &k, r, e, newp, &old);
	}
	if (ret < 0) {
		syncmap__value_discard(m, newp);
	} else if (ret == 1) {
		void *prev_val = decode_value(m, old);
		if (prev)
			*prev = prev_val;
		/* The same pointer stored again stays: nothing left the map. */
		syncmap__value_retire(m, old, prev_val == val);
	}
	sm_rcu_read_unlock();
	sm_reclaim_after_op();
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
	sm_key_init(m, &k, key, klen);
	void *newp = NULL;
	int ret = RETRY_LOCKED;
	sm_gate_pass(m);
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = sm_snapshot_find(m, &k, &r);
	if (e)
		ret = entry_try_load_or_store(m, e, val, &newp, actual);
	if (ret == RETRY_LOCKED) {
		struct sm_shard *s = shard_for_write(m, &k);
		ret = s ? syncmap__shard_load_or_store_locked(s, &k, r, e, val, &newp, actual) : -ENOMEM;
	}
	if (newp)
		syncmap__value_discard(m, newp);
	sm_rcu_read_unlock();
	sm_reclaim_after_op();
	return ret;
}

/* LoadAndDelete and Take: `keep` hands the value to the caller instead of
 * free_value.  Never allocates: a shard never written holds nothing. */
static bool delete_impl(struct syncmap *m, const void *key, size_t klen, void **val, bool keep)
{
	if (bad_input(m, key, klen)) {
		errno = EINVAL;
		return false;
	}
	struct sm_key k;
	sm_key_init(m, &k, key, klen);
	void *old = NULL;
	sm_gate_pass(m);
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = sm_snapshot_find(m, &k, &r);
	int t = e ? entry_try_delete(e, &old) : RETRY_LOCKED;
	if (t == RETRY_LOCKED)
		t = need_dirty(r, &k) ? syncmap__shard_delete_locked(sm_written_shard(m, &k), &k, r, e, &old) : 0;
	if (t == 1) {
		sm_len_add(m, -1);
		if (val)
			*val = decode_value(m, old);
		syncmap__value_retire(m, old, keep);
	}
	sm_rcu_read_unlock();
	sm_reclaim_after_op();
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
	sm_key_init(m, &k, key, klen);
	sm_gate_pass(m);
	sm_rcu_read_lock();
	void *newp = NULL;
	uintptr_t r;
	struct sm_entry *e = sm_snapshot_find(m, &k, &r);
	int t = e ? entry_try_cas(m, e, old, new_, &newp) : RETRY_LOCKED;
	if (t == RETRY_LOCKED)
		t = need_dirty(r, &k) ? syncmap__shard_compare_and_swap_locked(sm_written_shard(m, &k), &k, r, e, old,
									      new_, &newp)
				      : 0;
	if (newp)
		syncmap__value_discard(m, newp);
	sm_rcu_read_unlock();
	sm_reclaim_after_op();
	return t;
}

bool syncmap_compare_and_delete(struct syncmap *m, const void *key, size_t klen, void *old)
{
	if (bad_input(m, key, klen)) {
		errno = EINVAL;
		return false;
	}
	struct sm_key k;
	sm_key_init(m, &k, key, klen);
	void *removed = NULL;
	sm_gate_pass(m);
	sm_rcu_read_lock();
	uintptr_t r;
	struct sm_entry *e = sm_snapshot_find(m, &k, &r);
	int t = e ? entry_try_cad(m, e, old, &removed) : RETRY_LOCKED;
	if (t == RETRY_LOCKED)
		t = need_dirty(r, &k) ? syncmap__shard_compare_and_delete_locked(sm_written_shard(m, &k), &k, r, e,
										old, &removed)
				      : 0;
	if (t == 1) {
		sm_len_add(m, -1);
		syncmap__value_retire(m, removed, false);
	}
	sm_rcu_read_unlock();
	sm_reclaim_after_op();
	return t == 1;
}

/* ===================================================================== */
/* --- Ownership ------------------------------------------------------------- */

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
	void *p = syncmap__value_new(m, val);
	if (p) {
		sm_rcu_read_lock(); /* registered before the stripe lock: see clear */
		syncmap__value_retire(m, p, false);
		sm_rcu_read_unlock();
		sm_reclaim_after_op();
		return 0;
	}
	/* No memory for the box: wait for readers instead, where allowed. */
	if (syncmap_synchronize() != 0)
		return -ENOMEM;
	m->free_value(val, m->free_ctx);
	return 0;
}

/* ===================================================================== */
/* --- Across shards --------------------------------------------------------- */

/* The snapshot shard i's part of a range walks: promoted (if amended)
 * when the range starts, like Go's Range, so keys that fn stores into a
 * shard not yet walked are not visited (with shards promoted one by one as
 * they are reached, a callback storing a key per visit would feed the
 * range it runs in).  A snapshot not amended is read from the map's word,
 * without touching the shard (a never-written shard's is the shared empty
 * one). */
static uintptr_t range_snapshot_of(struct syncmap *m, unsigned i)
{
	uintptr_t r = atomic_load_explicit(&m->read[i], memory_order_acquire);
	if (!read_amended(r))
		return r;
	/* amended: the shard has been written, so it exists */
	return syncmap__shard_range_snapshot(atomic_load_explicit(&m->shard[i], memory_order_acquire));
}

#define RANGE_SNAPSHOTS_ON_STACK 64

void syncmap_range(struct syncmap *m, bool (*fn)(const void *key, size_t klen, void *val, void *ctx), void *ctx)
{
	if (!m || !fn)
		return;
	unsigned shards = m->shard_mask + 1;
	uintptr_t on_stack[RANGE_SNAPSHOTS_ON_STACK];
	/* (Without memory for the list, each shard is promoted when reached:
	 * still Go's contract, only more generous with concurrent keys.) */
	uintptr_t *snaps = shards <= RANGE_SNAPSHOTS_ON_STACK ? on_stack : syncmap__malloc(shards * sizeof(*snaps));
	sm_rcu_read_lock();
	if (snaps)
		for (unsigned i = 0; i < shards; i++)
			snaps[i] = range_snapshot_of(m, i);
	/* Go's order is unspecified, and random so that no caller relies on
	 * one: a random first shard, and in each shard a random first bucket
	 * (derived from one random word: Range over many small shards is
	 * dominated by per-shard costs). */
	uint64_t rnd = syncmap__rand64();
	unsigned start = (unsigned)(rnd >> 32);
	bool go_on = true;
	for (unsigned i = 0; go_on && i < shards; i++) {
		unsigned idx = (start + i) & m->shard_mask;
		uintptr_t r = snaps ? snaps[idx] : range_snapshot_of(m, idx);
		const struct gomap *g = &read_table(r)->g;
		if (g->count == 0)
			continue;
		/* The snapshot is frozen and pinned by our read section: walk
		 * it with no lock, while fn may do anything, including write
		 * this map. */
		struct gomap_walk w;
		gomap_walk_init(&w, g, rnd ^ (idx * 0x9e3779b97f4a7c15ULL));
		size_t budget = SIZE_MAX, klen;
		const void *key;
		void **slot;
		while (gomap_walk_next(&w, &budget, &key, &klen, &slot) == 1) {
			struct sm_entry *e = *slot;
			void *p = atomic_load_explicit(&e->p, memory_order_acquire);
			if (is_value(p) && !fn(key, klen, decode_value(m, p), ctx)) {
				go_on = false;
				break;
			}
		}
	}
	sm_rcu_read_unlock();
	if (snaps != on_stack)
		syncmap__free(snaps);
	sm_reclaim_after_op();
}

void syncmap_clear(struct syncmap *m)
{
	if (!m)
		return;
	/* Go 1.23's fast path: nothing to clear. */
	bool empty = true;
	for (unsigned i = 0; empty && i <= m->shard_mask; i++) {
		uintptr_t r = atomic_load_explicit(&m->read[i], memory_order_acquire);
		empty = !read_amended(r) && gomap_len(&read_table(r)->g) == 0;
	}
	if (empty)
		return;
	/* A read section, though clear reads nothing: retiring may call
	 * call_rcu, whose first use on a thread registers it with urcu-bp
	 * under a lock fork holds while it waits for our gate. */
	sm_rcu_read_lock();
	/* Atomic like Go's: operations that begin meanwhile wait at the gate,
	 * and each shard's swap waits out the critical section in progress
	 * (syncmap_impl.h).  A shard written meanwhile, by an operation that
	 * passed the gate before it closed, is seen or not: that operation
	 * overlaps the clear either way. */
	syncmap__gate_close(m);
	long snapshot = sm_len_sum(m);
	struct sm_clear c = {0};
	for (unsigned i = 0; i <= m->shard_mask; i++) {
		struct sm_shard *s = atomic_load_explicit(&m->shard[i], memory_order_acquire);
		if (s == &syncmap__shard_unwritten)
			continue;
		struct sm_table *read, *dirty;
		pthread_mutex_lock(&s->mu);
		syncmap__shard_detach_locked(s, &read, &dirty);
		pthread_mutex_unlock(&s->mu);
		syncmap__clear_add(&c, read, dirty);
	}
	sm_len_add(m, -snapshot); /* settled when the tables are freed */
	if (!syncmap__clear_retire(m, &c, snapshot))
		sm_len_add(m, snapshot); /* nothing to free, nothing to settle */
	syncmap__gate_open(m);
	sm_rcu_read_unlock();
	sm_reclaim_after_op();
}

size_t syncmap_len(struct syncmap *m)
{
	if (!m)
		return 0;
	long n = sm_len_sum(m);
	return n > 0 ? (size_t)n : 0;
}

void syncmap_read_lock(void)
{
	sm_rcu_read_lock();
}

void syncmap_read_unlock(void)
{
	sm_rcu_read_unlock();
	if (__builtin_expect(syncmap__help_owed, 0))
		syncmap__reclaim_throttle();
}

void syncmap_stats(struct syncmap *m, struct syncmap_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!m)
		return;
	st->shards = m->shard_mask + 1;
	for (unsigned i = 0; i <= m->shard_mask; i++) {
		struct sm_shard *s = atomic_load_explicit(&m->shard[i], memory_order_acquire);
		if (s == &syncmap__shard_unwritten)
			continue;
		st->shards_used++;
		syncmap__shard_stats_add(s, st);
	}
	st->len = syncmap_len(m);
	syncmap__reclaim_pending(m, &st->pending_reclaim, &st->pending_bytes);
	st->reclaim_waits = atomic_load_explicit(&m->reclaim_waits, memory_order_relaxed);
}

const char *syncmap_version(void)
{
	return SYNCMAP_VERSION;
}
