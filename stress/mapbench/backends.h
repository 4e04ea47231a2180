/*
 * backends.h - the five C maps mapbench compares, behind one op set with
 * Go's sync.Map semantics.  Included once, by mapbench.c: every function is
 * static, and each backend's ops table is a `static const` struct, so the
 * shape templates in mapbench.c (always_inline, instantiated per backend)
 * call these functions directly, not through a pointer: the benchmark
 * measures the map, not a dispatch layer.
 *
 * SPDX-License-Identifier: MIT
 *
 * Keys are byte strings (8-byte int keys or 32-byte str32 keys, built on the
 * caller's stack for every call); values are words (uintptr_t).  The op set
 * and what each op returns is Go's (sync.Map, 1.19):
 *
 *   load(k) -> (v, ok)            store(k, v)
 *   load_or_store(k, v) -> (actual, loaded)
 *   load_and_delete(k) -> (v, loaded)      del(k)
 *   range(f): f(k, v) for each key until f returns false
 *
 * Per-thread hooks: thread_enter(m, idx) / thread_exit(m, idx) bracket every
 * thread that touches a map (idx 0 = the main thread doing setup, w + 1 =
 * worker w).  syncmap and the locked gomaps need none; cds_lfht registers
 * the thread with liburcu-memb; ck_ht selects the thread's ck_epoch record.
 *
 * Sizing hint: create(hint) receives the largest number of keys the shape
 * can hold in this run (computed by mapbench.c from the shape, N, K and T).
 * Only cds_lfht uses it (see there); syncmap, the gomaps and ck_ht start
 * empty and grow, as Go's maps do.
 */
#ifndef MAPBENCH_BACKENDS_H
#define MAPBENCH_BACKENDS_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gomap.h"
#include "syncmap.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#if MAPBENCH_HAVE_LFHT
#define _LGPL_SOURCE /* inline read side, as the library itself does */
#include <urcu.h>    /* memb flavor, short names (rcu_read_lock, call_rcu, ...) */
#include <urcu/rculfhash.h>
#endif

#if MAPBENCH_HAVE_CK
#include <ck_epoch.h>
#include <ck_ht.h>
#endif

#define MB_CACHELINE 64

/* The range callback: syncmap's own signature, so syncmap_range takes it
 * as is.  `val` is the value word. */
typedef bool (*mb_range_fn)(const void *key, size_t klen, void *val, void *ctx);

struct mb_ops {
	const char *name;
	void *(*create)(size_t hint, unsigned nthreads);
	void (*destroy)(void *m);
	/* Wait until deferred frees queued so far have run (memory runs). */
	void (*quiesce)(void *m);
	void (*thread_enter)(void *m, unsigned idx);
	void (*thread_exit)(void *m, unsigned idx);
	bool (*load)(void *m, const void *k, size_t kl, uintptr_t *v);
	void (*store)(void *m, const void *k, size_t kl, uintptr_t v);
	bool (*load_or_store)(void *m, const void *k, size_t kl, uintptr_t v, uintptr_t *actual);
	bool (*load_and_delete)(void *m, const void *k, size_t kl, uintptr_t *v);
	void (*del)(void *m, const void *k, size_t kl);
	void (*range)(void *m, mb_range_fn f, void *ctx);
	/* A line for the report: how this backend is set up. */
	const char *notes;
};

static void mb_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void *mb_xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		mb_die("out of memory (%zu bytes)", n);
	return p;
}

static void mb_noop_thread(void *m, unsigned idx)
{
	(void)m;
	(void)idx;
}

static void mb_noop_quiesce(void *m)
{
	(void)m;
}

/* A random hash seed per map (cds_lfht, ck_ht), like syncmap's and gomap's. */
static __attribute__((unused)) uint64_t mb_seed_random(void)
{
	uint64_t s = 0;
	FILE *f = fopen("/dev/urandom", "rb");
	if (f) {
		if (fread(&s, sizeof(s), 1, f) != 1)
			s = 0;
		fclose(f);
	}
	return s ? s : 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&s;
}

/* =====================================================================
 * syncmap: the library under test, called exactly as a user calls it.
 * ===================================================================== */

/* -shards N (0: automatic, the default). */
static unsigned mb_syncmap_shards;

static void *sm_be_create(size_t hint, unsigned nthreads)
{
	(void)hint;
	(void)nthreads;
	/* random seed, values are plain words */
	struct syncmap *m = syncmap_new(&(struct syncmap_options){.shards = mb_syncmap_shards});
	if (!m)
		mb_die("syncmap_new failed");
	return m;
}

static void sm_be_destroy(void *m)
{
	syncmap_free(m);
}

static void sm_be_quiesce(void *m)
{
	struct syncmap_stats st;
	for (;;) {
		syncmap_stats(m, &st);
		if (st.pending_reclaim == 0)
			return;
		usleep(1000);
	}
}

static inline bool sm_be_load(void *m, const void *k, size_t kl, uintptr_t *v)
{
	void *p;
	bool ok = syncmap_load(m, k, kl, &p);
	*v = (uintptr_t)p;
	return ok;
}

static inline void sm_be_store(void *m, const void *k, size_t kl, uintptr_t v)
{
	if (__builtin_expect(syncmap_store(m, k, kl, (void *)v) < 0, 0))
		mb_die("syncmap_store failed");
}

static inline bool sm_be_load_or_store(void *m, const void *k, size_t kl, uintptr_t v, uintptr_t *actual)
{
	void *a;
	int r = syncmap_load_or_store(m, k, kl, (void *)v, &a);
	if (__builtin_expect(r < 0, 0))
		mb_die("syncmap_load_or_store failed: %d", r);
	*actual = (uintptr_t)a;
	return r == 1;
}

static inline bool sm_be_load_and_delete(void *m, const void *k, size_t kl, uintptr_t *v)
{
	void *p = NULL;
	bool ok = syncmap_load_and_delete(m, k, kl, &p);
	*v = (uintptr_t)p;
	return ok;
}

static inline void sm_be_del(void *m, const void *k, size_t kl)
{
	syncmap_delete(m, k, kl);
}

static inline void sm_be_range(void *m, mb_range_fn f, void *ctx)
{
	syncmap_range(m, f, ctx);
}

static const struct mb_ops mb_syncmap = {
	.name = "syncmap",
	.create = sm_be_create,
	.destroy = sm_be_destroy,
	.quiesce = sm_be_quiesce,
	.thread_enter = mb_noop_thread,
	.thread_exit = mb_noop_thread,
	.load = sm_be_load,
	.store = sm_be_store,
	.load_or_store = sm_be_load_or_store,
	.load_and_delete = sm_be_load_and_delete,
	.del = sm_be_del,
	.range = sm_be_range,
	.notes = "syncmap_new(NULL): random seed, no free_value; each op is the public call",
};

/* =====================================================================
 * gomap behind one lock: the naive baselines (Go's RWMutexMap and a plain
 * mutex variant).  One gomap_new(NULL) map (random seed, no hint).
 *   load            lock (read lock for rwlock); gomap_get; unlock
 *   store           write lock; gomap_put
 *   load_or_store   write lock; gomap_get, else gomap_put (gomap has no
 *                   insert-if-absent call: two probes)
 *   load_and_delete write lock; gomap_delete (returns the old value)
 *   del             the same, value ignored
 *   range           Go's RWMutexMap.Range: snapshot the entries under the
 *                   (read) lock into a per-thread buffer, unlock, then call
 *                   f on the snapshot (f may write the map: no deadlock).
 *                   Unlike RWMutexMap we pass the snapshot's value instead
 *                   of re-Loading every key: Go's Range contract allows any
 *                   value the key held during the call.
 * ===================================================================== */

struct mb_range_item {
	uintptr_t val;
	size_t klen;
	const void *kp;          /* ck_ht: pinned key pointer; gomap: into kb */
	unsigned char kb[32];    /* gomap: key copy (bench keys are <= 32 bytes) */
};

static _Thread_local struct mb_range_item *mb_rbuf;
static _Thread_local size_t mb_rcap;

/* Grow the buffer keeping its first `used` items. */
static struct mb_range_item *mb_rbuf_grow(size_t used, size_t n)
{
	struct mb_range_item *b = mb_xmalloc((n ? n : 1) * sizeof(*b));
	if (used)
		memcpy(b, mb_rbuf, used * sizeof(*b));
	free(mb_rbuf);
	mb_rbuf = b;
	mb_rcap = n ? n : 1;
	return b;
}

static struct mb_range_item *mb_rbuf_reserve(size_t n)
{
	if (n > mb_rcap) {
		size_t cap = mb_rcap ? mb_rcap : 1024;
		while (cap < n)
			cap *= 2;
		free(mb_rbuf);
		mb_rbuf = mb_xmalloc(cap * sizeof(*mb_rbuf));
		mb_rcap = cap;
	}
	return mb_rbuf;
}

struct gm_map {
	_Alignas(MB_CACHELINE) pthread_mutex_t mu;
	pthread_rwlock_t rw;
	_Alignas(MB_CACHELINE) struct gomap *g;
};

static void *gm_create(size_t hint, unsigned nthreads)
{
	(void)hint;
	(void)nthreads;
	struct gm_map *m;
	if (posix_memalign((void **)&m, MB_CACHELINE, sizeof(*m)) != 0)
		mb_die("out of memory");
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	pthread_rwlock_init(&m->rw, NULL);
	m->g = gomap_new(NULL);
	if (!m->g)
		mb_die("gomap_new failed");
	return m;
}

static void gm_destroy(void *mm)
{
	struct gm_map *m = mm;
	gomap_free(m->g);
	pthread_mutex_destroy(&m->mu);
	pthread_rwlock_destroy(&m->rw);
	free(m);
}

/* One template for both locks: RW selects the rwlock. */
#define GM_RLOCK(m, RW) ((RW) ? (void)pthread_rwlock_rdlock(&(m)->rw) : (void)pthread_mutex_lock(&(m)->mu))
#define GM_WLOCK(m, RW) ((RW) ? (void)pthread_rwlock_wrlock(&(m)->rw) : (void)pthread_mutex_lock(&(m)->mu))
#define GM_UNLOCK(m, RW) ((RW) ? (void)pthread_rwlock_unlock(&(m)->rw) : (void)pthread_mutex_unlock(&(m)->mu))

#define GM_DEFINE(SUFFIX, RW)                                                                          \
	static inline bool gm##SUFFIX##_load(void *mm, const void *k, size_t kl, uintptr_t *v)         \
	{                                                                                              \
		struct gm_map *m = mm;                                                                 \
		void *p;                                                                               \
		GM_RLOCK(m, RW);                                                                       \
		bool ok = gomap_get(m->g, k, kl, &p);                                                  \
		GM_UNLOCK(m, RW);                                                                      \
		*v = ok ? (uintptr_t)p : 0;                                                            \
		return ok;                                                                             \
	}                                                                                              \
	static inline void gm##SUFFIX##_store(void *mm, const void *k, size_t kl, uintptr_t v)         \
	{                                                                                              \
		struct gm_map *m = mm;                                                                 \
		GM_WLOCK(m, RW);                                                                       \
		int r = gomap_put(m->g, k, kl, (void *)v);                                             \
		GM_UNLOCK(m, RW);                                                                      \
		if (__builtin_expect(r != 0, 0))                                                       \
			mb_die("gomap_put failed: %d", r);                                             \
	}                                                                                              \
	static inline bool gm##SUFFIX##_load_or_store(void *mm, const void *k, size_t kl, uintptr_t v, \
						      uintptr_t *actual)                               \
	{                                                                                              \
		struct gm_map *m = mm;                                                                 \
		void *p;                                                                               \
		int r = 0;                                                                             \
		GM_WLOCK(m, RW);                                                                       \
		bool loaded = gomap_get(m->g, k, kl, &p);                                              \
		if (!loaded)                                                                           \
			r = gomap_put(m->g, k, kl, (void *)v);                                         \
		GM_UNLOCK(m, RW);                                                                      \
		if (__builtin_expect(r != 0, 0))                                                       \
			mb_die("gomap_put failed: %d", r);                                             \
		*actual = loaded ? (uintptr_t)p : v;                                                   \
		return loaded;                                                                         \
	}                                                                                              \
	static inline bool gm##SUFFIX##_load_and_delete(void *mm, const void *k, size_t kl, uintptr_t *v) \
	{                                                                                              \
		struct gm_map *m = mm;                                                                 \
		void *p = NULL;                                                                        \
		GM_WLOCK(m, RW);                                                                       \
		bool ok = gomap_delete(m->g, k, kl, &p);                                               \
		GM_UNLOCK(m, RW);                                                                      \
		*v = (uintptr_t)p;                                                                     \
		return ok;                                                                             \
	}                                                                                              \
	static inline void gm##SUFFIX##_del(void *mm, const void *k, size_t kl)                        \
	{                                                                                              \
		uintptr_t v;                                                                           \
		(void)gm##SUFFIX##_load_and_delete(mm, k, kl, &v);                                     \
	}                                                                                              \
	static void gm##SUFFIX##_range(void *mm, mb_range_fn f, void *ctx)                             \
	{                                                                                              \
		struct gm_map *m = mm;                                                                 \
		struct gomap_iter it;                                                                  \
		const void *k;                                                                         \
		size_t kl, n = 0;                                                                      \
		void *v;                                                                               \
		GM_RLOCK(m, RW);                                                                       \
		size_t cap_ = gomap_len(m->g);                                                         \
		struct mb_range_item *buf = mb_rbuf_reserve(cap_);                                     \
		gomap_iter_init(&it, m->g);                                                            \
		while (gomap_iter_next(&it, &k, &kl, &v)) {                                            \
			if (n == cap_)                                                                 \
				buf = mb_rbuf_grow(n, cap_ = 2 * cap_ + 1);                            \
			if (kl > sizeof(buf[n].kb))                                                    \
				mb_die("range: key too long");                                         \
			memcpy(buf[n].kb, k, kl);                                                      \
			buf[n].klen = kl;                                                              \
			buf[n].val = (uintptr_t)v;                                                     \
			n++;                                                                           \
		}                                                                                      \
		GM_UNLOCK(m, RW);                                                                      \
		for (size_t i = 0; i < n; i++)                                                         \
			if (!f(buf[i].kb, buf[i].klen, (void *)buf[i].val, ctx))                       \
				break;                                                                 \
	}                                                                                              \
	static const struct mb_ops mb_gomap##SUFFIX = {                                                \
		.name = (RW) ? "gomap-rwlock" : "gomap-mutex",                                         \
		.create = gm_create,                                                                   \
		.destroy = gm_destroy,                                                                 \
		.quiesce = mb_noop_quiesce,                                                            \
		.thread_enter = mb_noop_thread,                                                        \
		.thread_exit = mb_noop_thread,                                                         \
		.load = gm##SUFFIX##_load,                                                             \
		.store = gm##SUFFIX##_store,                                                           \
		.load_or_store = gm##SUFFIX##_load_or_store,                                           \
		.load_and_delete = gm##SUFFIX##_load_and_delete,                                       \
		.del = gm##SUFFIX##_del,                                                               \
		.range = gm##SUFFIX##_range,                                                           \
		.notes = (RW) ? "gomap_new(NULL) behind one pthread_rwlock_t (Go's RWMutexMap); "     \
				"range = snapshot under the read lock, then f"                         \
			      : "gomap_new(NULL) behind one pthread_mutex_t; "                         \
				"range = snapshot under the lock, then f",                             \
	};

GM_DEFINE(_mutex, 0)
GM_DEFINE(_rwlock, 1)

/* =====================================================================
 * cds_lfht (liburcu 0.13.2, urcu-memb flavor).
 *
 * Node: { cds_lfht_node; value word; rcu_head; klen; key bytes inline },
 * one malloc per node.  Hash: XXH3-64 with a random per-map seed (the same
 * hash syncmap and gomap use).  Every benchmark thread is registered with
 * rcu_register_thread/unregister (thread_enter/exit); lookups run under
 * rcu_read_lock (inlined: _LGPL_SOURCE); removed nodes are freed by
 * call_rcu.  Mapping of the op set:
 *   load            rcu_read_lock; cds_lfht_lookup; read node->val; unlock
 *   store           new node; cds_lfht_add_replace; the replaced node (if
 *                   any) goes to call_rcu.  (A store allocates a node even
 *                   when the key exists: cds_lfht nodes are replaced, not
 *                   updated in place.)
 *   load_or_store   lookup first (a hit returns it: loaded, no allocation);
 *                   on a miss, new node + cds_lfht_add_unique; if that
 *                   returns another node, the key appeared meanwhile: free
 *                   ours at once (never published) and return the other's
 *                   value, loaded.
 *   load_and_delete lookup; cds_lfht_del; on success call_rcu the node and
 *                   return its value (loaded); if del fails (a concurrent
 *                   delete or replace won) look up again, until the lookup
 *                   misses or a del succeeds.
 *   del             the same, value ignored
 *   range           rcu_read_lock; cds_lfht_for_each_entry, f on each node
 *                   (f may delete or store: cds_lfht allows updates during
 *                   a traversal, and call_rcu inside a read section).
 * Sizing: explicit, no auto-resize.  The table is created with
 * init_size = min_nr_alloc_buckets = the next power of two >= the shape's
 * largest key count for this run (the hint, computed from N, K and T; at
 * least 1), max_nr_buckets = 0 ("order" bucket allocator: calloc, which
 * mallinfo2 sees), flags = 0: it never resizes, so no resize worker runs
 * and the load factor stays <= 1 for the whole run.  Why not
 * CDS_LFHT_AUTO_RESIZE: without CDS_LFHT_ACCOUNTING its only trigger is a
 * bucket chain >= 3 seen by an add, which a random hash produces somewhere
 * at any table size, so the table keeps doubling (measured here: 1e6
 * unique inserts into a presized table grew it to GBs of buckets and
 * 4.3 us per insert, resizes still running at destroy); with ACCOUNTING,
 * 0.13.2 grows a large table only when the global count (committed every
 * 1024 adds) reaches 8x the bucket count at a power of two: chains of 8,
 * the "stops growing" behaviour seen before.
 * ===================================================================== */
#if MAPBENCH_HAVE_LFHT

struct lf_node {
	struct cds_lfht_node node;
	uintptr_t val;
	struct rcu_head rcu;
	uint32_t klen;
	unsigned char key[];
};

struct lf_key {
	const void *p;
	size_t len;
};

struct lf_map {
	struct cds_lfht *ht;
	uint64_t seed;
	size_t init_size;
};

static int lf_match(struct cds_lfht_node *n, const void *key)
{
	const struct lf_key *k = key;
	const struct lf_node *x = caa_container_of(n, struct lf_node, node);
	return x->klen == k->len && memcmp(x->key, k->p, k->len) == 0;
}

static struct lf_node *lf_node_new(const void *k, size_t kl, uintptr_t v)
{
	struct lf_node *n = mb_xmalloc(sizeof(*n) + kl);
	cds_lfht_node_init(&n->node);
	n->val = v;
	n->klen = (uint32_t)kl;
	memcpy(n->key, k, kl);
	return n;
}

static void lf_node_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct lf_node, rcu));
}

static size_t mb_pow2_at_least(size_t n)
{
	size_t p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

static void *lf_create(size_t hint, unsigned nthreads)
{
	(void)nthreads;
	struct lf_map *m = mb_xmalloc(sizeof(*m));
	m->seed = mb_seed_random();
	m->init_size = mb_pow2_at_least(hint ? hint : 1);
	m->ht = cds_lfht_new(m->init_size, m->init_size, 0, 0, NULL);
	if (!m->ht)
		mb_die("cds_lfht_new(%zu) failed", m->init_size);
	return m;
}

static void lf_destroy(void *mm)
{
	struct lf_map *m = mm;
	struct cds_lfht_iter it;
	struct lf_node *n, *prev = NULL;
	/* No reader is left (workers joined) and the table never resizes:
	 * unlink every node and free each one once the traversal has moved
	 * past it (del unlinks it from its chain before returning). */
	rcu_barrier(); /* nodes already retired are freed */
	rcu_read_lock();
	cds_lfht_for_each_entry(m->ht, &it, n, node) {
		if (cds_lfht_del(m->ht, &n->node) != 0)
			mb_die("cds_lfht_del failed at destroy");
		free(prev);
		prev = n;
	}
	rcu_read_unlock();
	free(prev);
	if (cds_lfht_destroy(m->ht, NULL) != 0)
		mb_die("cds_lfht_destroy failed");
	free(m);
}

static void lf_quiesce(void *m)
{
	(void)m;
	rcu_barrier();
}

static void lf_thread_enter(void *m, unsigned idx)
{
	(void)m;
	if (idx != 0) /* the main thread registers once, at start */
		rcu_register_thread();
}

static void lf_thread_exit(void *m, unsigned idx)
{
	(void)m;
	if (idx != 0)
		rcu_unregister_thread();
}

static inline uint64_t lf_hash(const struct lf_map *m, const void *k, size_t kl)
{
	return XXH3_64bits_withSeed(k, kl, m->seed);
}

static inline bool lf_load(void *mm, const void *k, size_t kl, uintptr_t *v)
{
	struct lf_map *m = mm;
	struct lf_key key = {k, kl};
	struct cds_lfht_iter it;
	uint64_t h = lf_hash(m, k, kl);
	bool ok = false;
	rcu_read_lock();
	cds_lfht_lookup(m->ht, h, lf_match, &key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (n) {
		*v = caa_container_of(n, struct lf_node, node)->val;
		ok = true;
	}
	rcu_read_unlock();
	return ok;
}

static inline void lf_store(void *mm, const void *k, size_t kl, uintptr_t v)
{
	struct lf_map *m = mm;
	struct lf_key key = {k, kl};
	uint64_t h = lf_hash(m, k, kl);
	struct lf_node *n = lf_node_new(k, kl, v);
	rcu_read_lock();
	struct cds_lfht_node *old = cds_lfht_add_replace(m->ht, h, lf_match, &key, &n->node);
	if (old)
		call_rcu(&caa_container_of(old, struct lf_node, node)->rcu, lf_node_free_rcu);
	rcu_read_unlock();
}

static inline bool lf_load_or_store(void *mm, const void *k, size_t kl, uintptr_t v, uintptr_t *actual)
{
	struct lf_map *m = mm;
	struct lf_key key = {k, kl};
	struct cds_lfht_iter it;
	uint64_t h = lf_hash(m, k, kl);
	bool loaded = true;
	rcu_read_lock();
	cds_lfht_lookup(m->ht, h, lf_match, &key, &it);
	struct cds_lfht_node *cur = cds_lfht_iter_get_node(&it);
	if (!cur) {
		struct lf_node *n = lf_node_new(k, kl, v);
		cur = cds_lfht_add_unique(m->ht, h, lf_match, &key, &n->node);
		if (cur == &n->node)
			loaded = false;
		else
			free(n); /* never published: no grace period needed */
	}
	*actual = loaded ? caa_container_of(cur, struct lf_node, node)->val : v;
	rcu_read_unlock();
	return loaded;
}

static inline bool lf_load_and_delete(void *mm, const void *k, size_t kl, uintptr_t *v)
{
	struct lf_map *m = mm;
	struct lf_key key = {k, kl};
	struct cds_lfht_iter it;
	uint64_t h = lf_hash(m, k, kl);
	bool ok = false;
	rcu_read_lock();
	for (;;) {
		cds_lfht_lookup(m->ht, h, lf_match, &key, &it);
		struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
		if (!n)
			break;
		if (cds_lfht_del(m->ht, n) == 0) {
			struct lf_node *x = caa_container_of(n, struct lf_node, node);
			*v = x->val;
			call_rcu(&x->rcu, lf_node_free_rcu);
			ok = true;
			break;
		}
	}
	rcu_read_unlock();
	return ok;
}

static inline void lf_del(void *mm, const void *k, size_t kl)
{
	uintptr_t v;
	(void)lf_load_and_delete(mm, k, kl, &v);
}

static void lf_range(void *mm, mb_range_fn f, void *ctx)
{
	struct lf_map *m = mm;
	struct cds_lfht_iter it;
	struct lf_node *n;
	rcu_read_lock();
	cds_lfht_for_each_entry(m->ht, &it, n, node) {
		if (!f(n->key, n->klen, (void *)n->val, ctx))
			break;
	}
	rcu_read_unlock();
}

static const struct mb_ops mb_lfht = {
	.name = "cds_lfht",
	.create = lf_create,
	.destroy = lf_destroy,
	.quiesce = lf_quiesce,
	.thread_enter = lf_thread_enter,
	.thread_exit = lf_thread_exit,
	.load = lf_load,
	.store = lf_store,
	.load_or_store = lf_load_or_store,
	.load_and_delete = lf_load_and_delete,
	.del = lf_del,
	.range = lf_range,
	.notes = "liburcu 0.13.2 urcu-memb; cds_lfht_new(init=min_alloc=next_pow2(max keys of the run), "
		 "max=0, flags=0): presized to the run's key count, never resized; XXH3 hash",
};
#endif /* MAPBENCH_HAVE_LFHT */

/* =====================================================================
 * ck_ht (Concurrency Kit 0.7.1): single writer, many lock-free readers.
 *
 * Mode CK_HT_MODE_BYTESTRING | CK_HT_WORKLOAD_DELETE, initial capacity 8
 * (it grows by doubling, load factor 0.5, under the writer lock), hash =
 * XXH3-64 with a random seed (the ck_ht_hash_cb_t hook).  The table stores
 * a key pointer + length + hash + value word per slot; the key bytes live
 * in a block we allocate (with a ck_epoch_entry in front for deferral).
 * Writers are serialized by one pthread mutex (ck_ht's SPMC contract);
 * readers use ck_ht_get_spmc inside a ck_epoch section.  Reclamation:
 * ck_epoch, one record per thread (per map: records cannot be destroyed,
 * so each map owns an array of T + 1 records, freed with the map); removed
 * key blocks and old tables (ck_malloc free(..., defer = true) after a
 * grow) are ck_epoch_call'ed on the calling thread's record, and a thread
 * calls ck_epoch_poll after a write once 64 or more of its deferrals are
 * pending.  Mapping of the op set:
 *   load            epoch begin; ck_ht_get_spmc; epoch end
 *   store           lock; ck_ht_get_spmc; if present ck_ht_set_spmc with the
 *                   key block already stored (no allocation, nothing to
 *                   retire), else a new key block + ck_ht_put_spmc; unlock
 *   load_or_store   lock-free get first (a hit: loaded); else lock, get
 *                   again, put if still absent; unlock.  Never put_spmc on
 *                   a present key: 0.7.1's put_spmc would reuse an earlier
 *                   tombstone and duplicate the key (fixed upstream in
 *                   75d137d "ck_ht: fix tombstone re-use on put operations").
 *   load_and_delete lock; ck_ht_remove_spmc (returns the removed entry);
 *                   unlock; epoch-defer the key block
 *   del             the same
 *   range           ck_ht_next must not run concurrently with a writer and
 *                   f may write, so: epoch begin; lock; snapshot (key
 *                   pointer, length, value) of every entry; unlock; f on
 *                   each; epoch end (the section keeps the key blocks).
 * ck_ht is never shrunk and its tombstones are only cleaned by a grow (we
 * never call ck_ht_gc), which is how a plain user would run it.
 * ===================================================================== */
#if MAPBENCH_HAVE_CK

struct ck_keyblk {
	ck_epoch_entry_t ee;
	unsigned char key[];
};

struct ck_deferred { /* an old table freed with defer = true */
	ck_epoch_entry_t ee;
	void *p;
};

struct ck_map {
	_Alignas(MB_CACHELINE) pthread_mutex_t mu; /* the single-writer lock */
	_Alignas(MB_CACHELINE) ck_ht_t ht;
	ck_epoch_t epoch;
	unsigned nrec;
	ck_epoch_record_t *rec; /* nrec records: [0] main thread, [w + 1] worker w */
};

/* The calling thread's record in the map it works on (set by thread_enter). */
static _Thread_local ck_epoch_record_t *ck_myrec;

#define CK_POLL_PENDING 64

/* container_of without liburcu's macro */
#define ck_container(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void ck_keyblk_free(ck_epoch_entry_t *e)
{
	free(ck_container(e, struct ck_keyblk, ee));
}

static void ck_deferred_free(ck_epoch_entry_t *e)
{
	struct ck_deferred *d = ck_container(e, struct ck_deferred, ee);
	free(d->p);
	free(d);
}

static void *ck_a_malloc(size_t n)
{
	return malloc(n);
}

static void *ck_a_realloc(void *p, size_t old, size_t n, bool defer)
{
	(void)old;
	(void)defer; /* ck_ht never reallocs */
	return realloc(p, n);
}

static void ck_a_free(void *p, size_t size, bool defer)
{
	(void)size;
	if (!defer || !ck_myrec) {
		free(p);
		return;
	}
	struct ck_deferred *d = mb_xmalloc(sizeof(*d));
	d->p = p;
	ck_epoch_call(ck_myrec, &d->ee, ck_deferred_free);
}

static struct ck_malloc ck_allocator = {
	.malloc = ck_a_malloc,
	.realloc = ck_a_realloc,
	.free = ck_a_free,
};

static void ck_hash_cb(ck_ht_hash_t *h, const void *key, size_t len, uint64_t seed)
{
	h->value = XXH3_64bits_withSeed(key, len, seed);
}

static void *ck_create(size_t hint, unsigned nthreads)
{
	(void)hint;
	struct ck_map *m;
	if (posix_memalign((void **)&m, MB_CACHELINE, sizeof(*m)) != 0)
		mb_die("out of memory");
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	ck_epoch_init(&m->epoch);
	m->nrec = nthreads + 1;
	if (posix_memalign((void **)&m->rec, MB_CACHELINE, m->nrec * sizeof(*m->rec)) != 0)
		mb_die("out of memory");
	memset(m->rec, 0, m->nrec * sizeof(*m->rec));
	for (unsigned i = 0; i < m->nrec; i++)
		ck_epoch_register(&m->epoch, &m->rec[i], NULL);
	if (!ck_ht_init(&m->ht, CK_HT_MODE_BYTESTRING | CK_HT_WORKLOAD_DELETE, ck_hash_cb, &ck_allocator, 8,
			mb_seed_random()))
		mb_die("ck_ht_init failed");
	return m;
}

static void ck_destroy(void *mm)
{
	struct ck_map *m = mm;
	/* Workers joined: nothing is in a section; run every deferral. */
	for (unsigned i = 0; i < m->nrec; i++)
		ck_epoch_barrier(&m->rec[i]);
	ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
	ck_ht_entry_t *e;
	while (ck_ht_next(&m->ht, &it, &e))
		free(ck_container(ck_ht_entry_key(e), struct ck_keyblk, key));
	ck_myrec = NULL;
	ck_ht_destroy(&m->ht);
	free(m->rec);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static void ck_quiesce(void *mm)
{
	struct ck_map *m = mm;
	for (unsigned i = 0; i < m->nrec; i++)
		ck_epoch_barrier(&m->rec[i]);
}

static void ck_thread_enter(void *mm, unsigned idx)
{
	struct ck_map *m = mm;
	if (idx >= m->nrec)
		mb_die("ck_ht: thread index %u out of range", idx);
	ck_myrec = &m->rec[idx];
}

static void ck_thread_exit(void *mm, unsigned idx)
{
	(void)mm;
	(void)idx;
	/* Pending deferrals stay on the record; ck_destroy runs them. */
	ck_myrec = NULL;
}

static inline void ck_maybe_poll(void)
{
	if (ck_myrec->n_pending >= CK_POLL_PENDING)
		ck_epoch_poll(ck_myrec);
}

static inline bool ck_load(void *mm, const void *k, size_t kl, uintptr_t *v)
{
	struct ck_map *m = mm;
	ck_ht_hash_t h;
	ck_ht_entry_t e;
	ck_ht_hash(&h, &m->ht, k, (uint16_t)kl);
	ck_ht_entry_key_set(&e, k, (uint16_t)kl);
	ck_epoch_begin(ck_myrec, NULL);
	bool ok = ck_ht_get_spmc(&m->ht, h, &e);
	ck_epoch_end(ck_myrec, NULL);
	*v = ok ? (uintptr_t)ck_ht_entry_value(&e) : 0;
	return ok;
}

static struct ck_keyblk *ck_keyblk_new(const void *k, size_t kl)
{
	struct ck_keyblk *b = mb_xmalloc(sizeof(*b) + kl);
	memcpy(b->key, k, kl);
	return b;
}

/* Under m->mu: insert a key known to be absent. */
static inline void ck_put_absent_locked(struct ck_map *m, ck_ht_hash_t h, const void *k, size_t kl, uintptr_t v)
{
	struct ck_keyblk *b = ck_keyblk_new(k, kl);
	ck_ht_entry_t e;
	ck_ht_entry_set(&e, h, b->key, (uint16_t)kl, (void *)v);
	if (!ck_ht_put_spmc(&m->ht, h, &e))
		mb_die("ck_ht_put_spmc failed");
}

static inline void ck_store(void *mm, const void *k, size_t kl, uintptr_t v)
{
	struct ck_map *m = mm;
	ck_ht_hash_t h;
	ck_ht_entry_t e;
	ck_ht_hash(&h, &m->ht, k, (uint16_t)kl);
	ck_ht_entry_key_set(&e, k, (uint16_t)kl);
	pthread_mutex_lock(&m->mu);
	if (ck_ht_get_spmc(&m->ht, h, &e)) {
		/* Same stored key block, new value: replaced in place. */
		ck_ht_entry_set(&e, h, ck_ht_entry_key(&e), (uint16_t)kl, (void *)v);
		if (!ck_ht_set_spmc(&m->ht, h, &e))
			mb_die("ck_ht_set_spmc failed");
	} else {
		ck_put_absent_locked(m, h, k, kl, v);
	}
	pthread_mutex_unlock(&m->mu);
	ck_maybe_poll();
}

static inline bool ck_load_or_store(void *mm, const void *k, size_t kl, uintptr_t v, uintptr_t *actual)
{
	struct ck_map *m = mm;
	ck_ht_hash_t h;
	ck_ht_entry_t e;
	ck_ht_hash(&h, &m->ht, k, (uint16_t)kl);
	ck_ht_entry_key_set(&e, k, (uint16_t)kl);
	ck_epoch_begin(ck_myrec, NULL);
	bool loaded = ck_ht_get_spmc(&m->ht, h, &e);
	ck_epoch_end(ck_myrec, NULL);
	if (!loaded) {
		ck_ht_entry_key_set(&e, k, (uint16_t)kl);
		pthread_mutex_lock(&m->mu);
		loaded = ck_ht_get_spmc(&m->ht, h, &e);
		if (!loaded)
			ck_put_absent_locked(m, h, k, kl, v);
		pthread_mutex_unlock(&m->mu);
		ck_maybe_poll();
	}
	*actual = loaded ? (uintptr_t)ck_ht_entry_value(&e) : v;
	return loaded;
}

static inline bool ck_load_and_delete(void *mm, const void *k, size_t kl, uintptr_t *v)
{
	struct ck_map *m = mm;
	ck_ht_hash_t h;
	ck_ht_entry_t e;
	ck_ht_hash(&h, &m->ht, k, (uint16_t)kl);
	ck_ht_entry_key_set(&e, k, (uint16_t)kl);
	pthread_mutex_lock(&m->mu);
	bool ok = ck_ht_remove_spmc(&m->ht, h, &e);
	if (ok)
		ck_epoch_call(ck_myrec, &ck_container(ck_ht_entry_key(&e), struct ck_keyblk, key)->ee,
			      ck_keyblk_free);
	pthread_mutex_unlock(&m->mu);
	if (ok) {
		*v = (uintptr_t)ck_ht_entry_value(&e);
		ck_maybe_poll();
	}
	return ok;
}

static inline void ck_del(void *mm, const void *k, size_t kl)
{
	uintptr_t v;
	(void)ck_load_and_delete(mm, k, kl, &v);
}

static void ck_range(void *mm, mb_range_fn f, void *ctx)
{
	struct ck_map *m = mm;
	ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
	ck_ht_entry_t *e;
	size_t n = 0;
	ck_epoch_begin(ck_myrec, NULL);
	pthread_mutex_lock(&m->mu);
	size_t cap = (size_t)ck_ht_count(&m->ht);
	struct mb_range_item *buf = mb_rbuf_reserve(cap);
	while (ck_ht_next(&m->ht, &it, &e)) {
		if (n == cap)
			buf = mb_rbuf_grow(n, cap *= 2);
		buf[n].kp = ck_ht_entry_key(e);
		buf[n].klen = ck_ht_entry_key_length(e);
		buf[n].val = (uintptr_t)ck_ht_entry_value(e);
		n++;
	}
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < n; i++)
		if (!f(buf[i].kp, buf[i].klen, (void *)buf[i].val, ctx))
			break;
	ck_epoch_end(ck_myrec, NULL);
}

static const struct mb_ops mb_ckht = {
	.name = "ck_ht",
	.create = ck_create,
	.destroy = ck_destroy,
	.quiesce = ck_quiesce,
	.thread_enter = ck_thread_enter,
	.thread_exit = ck_thread_exit,
	.load = ck_load,
	.store = ck_store,
	.load_or_store = ck_load_or_store,
	.load_and_delete = ck_load_and_delete,
	.del = ck_del,
	.range = ck_range,
	.notes = "ck 0.7.1 ck_ht BYTESTRING|WORKLOAD_DELETE, capacity 8 (grows), writers behind one "
		 "pthread_mutex, readers ck_ht_get_spmc in ck_epoch sections; XXH3 hash",
};
#endif /* MAPBENCH_HAVE_CK */

#endif
