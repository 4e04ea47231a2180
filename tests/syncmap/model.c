/*
 * model.c - sequential differential test of every syncmap operation against
 * a trivially correct reference (one slot per key of a fixed key set).
 *
 * SPDX-License-Identifier: MIT
 *
 * Every operation's result is compared with the reference's, and
 * syncmap_len with the reference count after every operation (sequential,
 * so len is exact).  Keys are 0..40 bytes, the empty key passed both as
 * NULL and as "" (klen 0); NULL is a real value.  Runs twice:
 *
 *   - plain: values are arbitrary words (NULL, small integers shared by
 *     many keys so that CompareAndSwap by identity hits, random words);
 *   - boxed (free_value set): values are tracked objects.  Before each
 *     operation the test marks the values the reference says will leave the
 *     map; free_value aborts on a value not so marked (the map freed a value
 *     still in it, or one it never stored), on a second free, or on a
 *     poisoned magic.  Loaded values must carry a good magic.  At the end
 *     every value handed to the map was freed exactly once.
 *
 * Phases:
 *   quick  Go's TestMapMatchesRWMutex/DeepCopy: many short random call lists
 *          on fresh maps, keys of 0..3 letters, final contents via Range;
 *   small  uniform random operations over 64 keys;
 *   build  cycles that make the incremental dirty-map build run for many
 *          operations: fill, promote, delete a third, store one new key
 *          (the build starts), then while stats.building: re-store deleted
 *          keys (before and after the copy expunges them), delete, load,
 *          CAS...; asserted non-vacuous (the build was seen running);
 *   mixed  2000 keys, every operation, bursts of new keys followed by
 *          loads (promotion by misses), ranges, early-stopping ranges,
 *          clears.
 */
#include "smtest.h"

struct model {
	struct syncmap *m;
	bool boxed;
	const struct keyset *ks;
	size_t nkeys; /* keys [0, nkeys) of ks are in play */
	size_t never; /* index of a key never stored (ks->n - 1) */
	bool *present;
	void **val;
	size_t count;
	size_t *touched; /* keys ever present since the last reset */
	bool *is_touched;
	size_t ntouched;
	struct tracker *tr;
	struct test_rng rng;
	uint64_t ops;
	const char *phase;
	/* for the non-vacuity checks */
	uint64_t ops_while_building, builds_seen, restores_while_building;
};

#define CHECKF(c, ...)                                                                  \
	do {                                                                            \
		if (!(c)) {                                                             \
			fprintf(stderr, "[%s op %" PRIu64 "] ", md->phase, md->ops);    \
			TEST_FAIL(__VA_ARGS__);                                          \
		}                                                                       \
	} while (0)

static void *const UNTOUCHED = (void *)(uintptr_t)0xA5A5A5A5A5A5A5A5ULL;

/* ---- values ------------------------------------------------------------- */

static void *mk_val(struct model *md)
{
	uint64_t r = test_rng_below(&md->rng, 100);
	if (md->boxed) {
		if (r < 5)
			return NULL;
		return tv_new(md->tr);
	}
	if (r < 10)
		return NULL;
	if (r < 50)
		return (void *)(uintptr_t)(1 + test_rng_below(&md->rng, 6)); /* shared by many keys */
	return (void *)(uintptr_t)(test_rng_next(&md->rng) | 1);
}

/* A value to compare against that is (most likely) not the key's. */
static void *other_val(struct model *md)
{
	if (test_rng_below(&md->rng, 2))
		return NULL;
	if (md->boxed)
		return (void *)(uintptr_t)(test_rng_next(&md->rng) << 4); /* never dereferenced */
	return (void *)(uintptr_t)(1 + test_rng_below(&md->rng, 6));
}

static void val_stored(struct model *md, void *v)
{
	if (md->boxed && v) {
		struct tv *t = v;
		CHECKF(atomic_load(&t->state) == TV_TEST, "storing value in state %d", atomic_load(&t->state));
		atomic_store(&t->state, TV_LIVE);
	}
}

static void val_leaving(struct model *md, void *v)
{
	if (!md->boxed)
		return;
	if (!v) {
		atomic_fetch_add(&md->tr->null_left, 1);
		return;
	}
	struct tv *t = v;
	CHECKF(atomic_load(&t->state) == TV_LIVE, "leaving value in state %d", atomic_load(&t->state));
	atomic_store(&t->state, TV_LEAVING);
}

static void val_rejected(struct model *md, void *v)
{
	if (md->boxed && v)
		tv_unused(md->tr, v);
}

static void check_loaded(struct model *md, void *got, void *want, const char *what, size_t i)
{
	CHECKF(got == want, "%s key %zu: value %p, reference %p", what, i, got, want);
	if (md->boxed && got)
		tv_check_live(got, what);
}

/* ---- reference ---------------------------------------------------------- */

static void ref_set(struct model *md, size_t i, void *v)
{
	if (!md->present[i]) {
		md->present[i] = true;
		md->count++;
		if (!md->is_touched[i]) {
			md->is_touched[i] = true;
			md->touched[md->ntouched++] = i;
		}
	}
	md->val[i] = v;
}

static void ref_del(struct model *md, size_t i)
{
	if (md->present[i]) {
		md->present[i] = false;
		md->count--;
		md->val[i] = NULL;
	}
}

/* ---- checks -------------------------------------------------------------- */

static const void *K(struct model *md, size_t i)
{
	return keyp(md->ks, i, test_rng_below(&md->rng, 2));
}

static void check_key(struct model *md, size_t i)
{
	void *out = UNTOUCHED;
	bool f = syncmap_load(md->m, K(md, i), md->ks->len[i], &out);
	CHECKF(f == md->present[i], "load key %zu: found %d, reference %d", i, f, md->present[i]);
	if (f)
		check_loaded(md, out, md->val[i], "load", i);
	else
		CHECKF(out == UNTOUCHED, "load miss of key %zu wrote *val", i);
}

struct range_ctx {
	struct model *md;
	unsigned char *seen;
	size_t visits, stop_after;
};

static bool range_check_fn(const void *key, size_t klen, void *val, void *ctx)
{
	struct range_ctx *rc = ctx;
	struct model *md = rc->md;
	long i = keyset_find(md->ks, key, klen);
	CHECKF(i >= 0, "range: unknown key (klen %zu)", klen);
	CHECKF(rc->seen[i] == 0, "range visited key %ld twice", i);
	rc->seen[i] = 1;
	CHECKF(md->present[i], "range visited absent key %ld", i);
	check_loaded(md, val, md->val[i], "range", (size_t)i);
	rc->visits++;
	return rc->stop_after == 0 || rc->visits < rc->stop_after;
}

static void check_range(struct model *md, size_t stop_after)
{
	struct range_ctx rc = {md, calloc(md->ks->n, 1), 0, stop_after};
	ASSERT(rc.seen != NULL);
	syncmap_range(md->m, range_check_fn, &rc);
	if (stop_after == 0)
		CHECKF(rc.visits == md->count, "range visited %zu keys, reference has %zu", rc.visits, md->count);
	else
		CHECKF(rc.visits == (stop_after < md->count ? stop_after : md->count),
		       "range stopping after %zu visited %zu of %zu", stop_after, rc.visits, md->count);
	free(rc.seen);
}

static void check_all(struct model *md)
{
	for (size_t i = 0; i < md->nkeys; i++)
		check_key(md, i);
	check_key(md, md->never);
	check_range(md, 0);
	CHECKF(syncmap_len(md->m) == md->count, "len %zu, reference %zu", syncmap_len(md->m), md->count);
	struct syncmap_stats st;
	syncmap_stats(md->m, &st);
	CHECKF(st.len == md->count, "stats.len %zu, reference %zu", st.len, md->count);
	CHECKF(st.max_locked_work <= SYNCMAP_MAX_LOCKED_WORK, "max_locked_work %" PRIu64, st.max_locked_work);
}

/* ---- operations ------------------------------------------------------------- */

enum op {
	OP_LOAD,
	OP_STORE,
	OP_LOS,
	OP_LAD,
	OP_DELETE,
	OP_SWAP,
	OP_CAS,
	OP_CAD,
	OP_RANGE,
	OP_CLEAR,
	OP_N
};

static const char *op_name[] = {"load", "store", "load_or_store", "load_and_delete", "delete",
				"swap", "compare_and_swap", "compare_and_delete", "range", "clear"};

static void do_op(struct model *md, enum op op, size_t i)
{
	struct syncmap *m = md->m;
	size_t kl = md->ks->len[i];
	const void *k = K(md, i);
	bool pres = md->present[i];
	void *cur = md->val[i];
	void *out = UNTOUCHED;
	bool want_out = test_rng_below(&md->rng, 8) != 0; /* sometimes pass NULL out-pointers */

	md->ops++;
	switch (op) {
	case OP_LOAD: {
		bool f = syncmap_load(m, k, kl, want_out ? &out : NULL);
		CHECKF(f == pres, "load key %zu: %d, reference %d", i, f, pres);
		if (f && want_out)
			check_loaded(md, out, cur, "load", i);
		if (!f)
			CHECKF(out == UNTOUCHED, "load miss wrote *val");
		break;
	}
	case OP_STORE: {
		void *v = mk_val(md);
		if (pres && cur != v) /* the same pointer stays (NULL over NULL) */
			val_leaving(md, cur);
		val_stored(md, v);
		int r = syncmap_store(m, k, kl, v);
		CHECKF(r == 0, "store key %zu: %d", i, r);
		ref_set(md, i, v);
		break;
	}
	case OP_LOS: {
		void *v = mk_val(md);
		if (!pres)
			val_stored(md, v);
		int r = syncmap_load_or_store(m, k, kl, v, want_out ? &out : NULL);
		CHECKF(r == (pres ? 1 : 0), "load_or_store key %zu: %d, reference present %d", i, r, pres);
		if (want_out)
			check_loaded(md, out, pres ? cur : v, "load_or_store actual", i);
		if (pres)
			val_rejected(md, v);
		else
			ref_set(md, i, v);
		break;
	}
	case OP_LAD:
	case OP_DELETE: {
		if (pres)
			val_leaving(md, cur);
		if (op == OP_DELETE) {
			errno = 4242;
			syncmap_delete(m, k, kl);
			CHECKF(errno == 4242, "delete changed errno to %d", errno);
		} else {
			bool f = syncmap_load_and_delete(m, k, kl, want_out ? &out : NULL);
			CHECKF(f == pres, "load_and_delete key %zu: %d, reference %d", i, f, pres);
			if (f && want_out)
				CHECKF(out == cur, "load_and_delete key %zu: %p, reference %p", i, out, cur);
			if (!f)
				CHECKF(out == UNTOUCHED, "load_and_delete miss wrote *val");
		}
		ref_del(md, i);
		break;
	}
	case OP_SWAP: {
		void *v = mk_val(md);
		if (pres && cur != v) /* the same pointer stays (NULL over NULL) */
			val_leaving(md, cur);
		val_stored(md, v);
		int r = syncmap_swap(m, k, kl, v, want_out ? &out : NULL);
		CHECKF(r == (pres ? 1 : 0), "swap key %zu: %d, reference present %d", i, r, pres);
		if (pres && want_out)
			CHECKF(out == cur, "swap key %zu: prev %p, reference %p", i, out, cur);
		if (!pres)
			CHECKF(out == UNTOUCHED, "swap of a new key wrote *prev");
		ref_set(md, i, v);
		break;
	}
	case OP_CAS: {
		uint64_t r = test_rng_below(&md->rng, 10);
		void *old = r < 5 && pres ? cur : r < 7 ? NULL : other_val(md);
		void *nv = mk_val(md);
		bool hit = pres && cur == old;
		if (hit) {
			if (cur != nv) /* the same pointer stays (NULL over NULL) */
				val_leaving(md, cur);
			val_stored(md, nv);
		}
		errno = 0;
		int rc = syncmap_compare_and_swap(m, k, kl, old, nv);
		CHECKF(rc == hit, "compare_and_swap key %zu (present %d, cur %p, old %p): %d", i, pres, cur, old, rc);
		CHECKF(errno == 0, "compare_and_swap set errno %d", errno);
		if (hit)
			ref_set(md, i, nv);
		else
			val_rejected(md, nv);
		break;
	}
	case OP_CAD: {
		uint64_t r = test_rng_below(&md->rng, 10);
		void *old = r < 5 && pres ? cur : r < 7 ? NULL : other_val(md);
		bool hit = pres && cur == old;
		if (hit)
			val_leaving(md, cur);
		bool ok = syncmap_compare_and_delete(m, k, kl, old);
		CHECKF(ok == hit, "compare_and_delete key %zu (present %d, cur %p, old %p): %d", i, pres, cur, old, ok);
		if (hit)
			ref_del(md, i);
		break;
	}
	case OP_RANGE:
		check_range(md, test_rng_below(&md->rng, 3) ? 0 : 1 + test_rng_below(&md->rng, 20));
		break;
	case OP_CLEAR:
		for (size_t j = 0; j < md->ntouched; j++) {
			size_t t = md->touched[j];
			if (md->present[t]) {
				val_leaving(md, md->val[t]);
				ref_del(md, t);
			}
		}
		syncmap_clear(m);
		break;
	default:
		ASSERT(0);
	}
	CHECKF(syncmap_len(m) == md->count, "after %s key %zu: len %zu, reference %zu", op_name[op], i,
	       syncmap_len(m), md->count);
	if (md->boxed)
		CHECKF(atomic_load(&md->tr->null_freed) <= atomic_load(&md->tr->null_left),
		       "NULL passed to free_value %ld times, only %ld NULL values left the map",
		       atomic_load(&md->tr->null_freed), atomic_load(&md->tr->null_left));
	if (test_rng_below(&md->rng, 4) == 0 && op != OP_CLEAR && op != OP_RANGE)
		check_key(md, i);
}

/* Operations that never create a key, on a key that was never stored. */
static void never_key_op(struct model *md)
{
	size_t i = md->never;
	const void *k = md->ks->k[i];
	size_t kl = md->ks->len[i];
	void *nv = mk_val(md);
	md->ops++;
	errno = 0;
	CHECKF(syncmap_compare_and_swap(md->m, k, kl, NULL, nv) == 0, "CAS(never-stored key, NULL, v) succeeded");
	CHECKF(errno == 0, "CAS on a missing key set errno %d", errno);
	CHECKF(syncmap_compare_and_swap(md->m, k, kl, nv, nv) == 0, "CAS(never-stored key, v, v) succeeded");
	val_rejected(md, nv);
	CHECKF(!syncmap_compare_and_delete(md->m, k, kl, NULL), "CAD(never-stored key, NULL) succeeded");
	CHECKF(!syncmap_load_and_delete(md->m, k, kl, NULL), "load_and_delete(never-stored key) succeeded");
	syncmap_delete(md->m, k, kl);
	check_key(md, i);
	CHECKF(syncmap_len(md->m) == md->count, "len %zu, reference %zu", syncmap_len(md->m), md->count);
}

static enum op random_op(struct model *md, bool with_bulk)
{
	uint64_t r = test_rng_below(&md->rng, 1000);
	if (r < 200)
		return OP_LOAD;
	if (r < 350)
		return OP_STORE;
	if (r < 450)
		return OP_LOS;
	if (r < 530)
		return OP_LAD;
	if (r < 610)
		return OP_DELETE;
	if (r < 720)
		return OP_SWAP;
	if (r < 850)
		return OP_CAS;
	if (r < 996)
		return OP_CAD;
	if (with_bulk) {
		if (r < 999)
			return OP_RANGE;
		return test_rng_below(&md->rng, 8) == 0 ? OP_CLEAR : OP_LOAD;
	}
	return r < 999 ? OP_RANGE : OP_CLEAR;
}

/* ---- setup --------------------------------------------------------------------- */

static void model_open(struct model *md, const struct keyset *ks, bool boxed, struct tracker *tr, uint64_t seed,
		       const char *phase)
{
	md->ks = ks;
	md->boxed = boxed;
	md->tr = tr;
	md->phase = phase;
	md->never = ks->n - 1;
	md->nkeys = ks->n - 1;
	if (!md->present) {
		md->present = calloc(ks->n, sizeof(bool));
		md->val = calloc(ks->n, sizeof(void *));
		md->touched = calloc(ks->n, sizeof(size_t));
		md->is_touched = calloc(ks->n, sizeof(bool));
		ASSERT(md->present && md->val && md->touched && md->is_touched);
	}
	struct syncmap_options o = {.free_value = boxed ? tv_free_value : NULL, .free_ctx = tr, .seed = seed | 1, .shards = test_shards()};
	md->m = syncmap_new(&o);
	ASSERT(md->m != NULL);
}

/* Free the map (every value still present leaves) and reset the reference.
 * deferred: free it inside a read section, so syncmap_free cannot wait for
 * a grace period and the map goes with its last reclamation callback. */
static void wait_all_freed(struct tracker *tr);

static void model_close_how(struct model *md, bool deferred, bool wait)
{
	for (size_t j = 0; j < md->ntouched; j++) {
		size_t t = md->touched[j];
		if (md->present[t]) {
			val_leaving(md, md->val[t]);
			ref_del(md, t);
		}
		md->is_touched[t] = false;
	}
	md->ntouched = 0;
	ASSERT_EQ(md->count, 0);
	if (deferred) {
		syncmap_read_lock();
		syncmap_free(md->m);
		syncmap_read_unlock();
		md->m = NULL;
		/* syncmap_free waits only for its own map's callbacks: let this
		 * one finish before the next map's counts are checked (or the
		 * caller waits once for many). */
		if (md->boxed && wait)
			wait_all_freed(md->tr);
		return;
	}
	syncmap_free(md->m);
	md->m = NULL;
	if (md->boxed) {
		ASSERT_EQ(atomic_load(&md->tr->null_freed), atomic_load(&md->tr->null_left));
		ASSERT_EQ(atomic_load(&md->tr->freed), atomic_load(&md->tr->made));
	}
}

static void model_close(struct model *md)
{
	model_close_how(md, false, true);
}

/* After deferred frees: every value made reaches free_value (poll 5 s). */
static void wait_all_freed(struct tracker *tr)
{
	double end = now_sec() + 5;
	while (atomic_load(&tr->freed) != atomic_load(&tr->made) ||
	       atomic_load(&tr->null_freed) != atomic_load(&tr->null_left)) {
		if (now_sec() > end)
			TEST_FAIL("deferred syncmap_free: %ld of %ld values, %ld of %ld NULLs freed after 5 s",
				  atomic_load(&tr->freed), atomic_load(&tr->made), atomic_load(&tr->null_freed),
				  atomic_load(&tr->null_left));
		sleep_ms(1);
	}
}

static void model_dispose(struct model *md)
{
	free(md->present);
	free(md->val);
	free(md->touched);
	free(md->is_touched);
	md->present = NULL;
}

/* ---- phases -------------------------------------------------------------------- */

/* Keys "", "a".."z", "aa".."zzz": Go's quick-check key space. */
static void keyset_go(struct keyset *ks)
{
	size_t n = 1 + 26 + 26 * 26 + 26 * 26 * 26 + 1;
	keyset_alloc(ks, n);
	size_t i = 0;
	char b[4];
	ASSERT(keyset_add(ks, i++, "", 0));
	for (int len = 1; len <= 3; len++) {
		size_t total = len == 1 ? 26 : len == 2 ? 676 : 17576;
		for (size_t x = 0; x < total; x++) {
			size_t y = x;
			for (int j = len - 1; j >= 0; j--) {
				b[j] = (char)('a' + y % 26);
				y /= 26;
			}
			ASSERT(keyset_add(ks, i++, b, (size_t)len));
		}
	}
	ASSERT(keyset_add(ks, i++, "never-stored-key", 16));
	ASSERT_EQ(i, n);
}

static size_t go_key(struct model *md)
{
	size_t len = test_rng_below(&md->rng, 4), idx = 0, base = 1;
	for (size_t l = 1; l < len; l++)
		base += l == 1 ? 26 : 676;
	if (len == 0)
		return 0;
	size_t x = 0, total = len == 1 ? 26 : len == 2 ? 676 : 17576;
	x = test_rng_below(&md->rng, total);
	idx = base + x;
	return idx;
}

static void phase_quick(bool boxed, struct tracker *tr, uint64_t seed)
{
	struct keyset ks;
	keyset_go(&ks);
	struct model md = {0};
	test_rng_init(&md.rng, seed);
	long lists = scaled(3000, 300);
	for (long l = 0; l < lists; l++) {
		/* Most lists take syncmap_free's deferred path (inside a read
		 * section: the map goes with its last callback) and do not wait
		 * for it; every 32nd first waits for all of those to be freed,
		 * then frees its own map the waiting way and checks the exact
		 * counts. */
		bool waiting = l % 32 == 0;
		if (waiting && boxed)
			wait_all_freed(tr);
		model_open(&md, &ks, boxed, tr, test_rng_next(&md.rng), "quick");
		long n = (long)test_rng_below(&md.rng, 50);
		for (long j = 0; j < n; j++) {
			enum op op = (enum op)test_rng_below(&md.rng, OP_N);
			do_op(&md, op, go_key(&md));
		}
		check_range(&md, 0); /* Go's applyCalls: final contents via Range */
		model_close_how(&md, !waiting, false);
	}
	wait_all_freed(tr);
	model_dispose(&md);
	keyset_free(&ks);
}

static void phase_small(bool boxed, struct tracker *tr, uint64_t seed, long nops)
{
	struct test_rng r;
	test_rng_init(&r, seed);
	struct keyset ks;
	keyset_random(&ks, 65, &r);
	struct model md = {0};
	md.rng = r;
	model_open(&md, &ks, boxed, tr, test_rng_next(&r), "small");
	for (long j = 0; j < nops; j++) {
		if (test_rng_below(&md.rng, 500) == 0)
			never_key_op(&md);
		do_op(&md, random_op(&md, false), test_rng_below(&md.rng, md.nkeys));
		if (j % 4096 == 0)
			check_all(&md);
	}
	check_all(&md);
	model_close(&md);
	model_dispose(&md);
	keyset_free(&ks);
}

static bool building(struct model *md)
{
	struct syncmap_stats st;
	syncmap_stats(md->m, &st);
	return st.building;
}

static void promote_by_loads(struct model *md)
{
	/* Loads of keys only the dirty map holds count misses; once they
	 * reach its size (and the floor of 1024 a small dirty map waits for)
	 * it is promoted.  Stores of present keys keep the build advancing
	 * meanwhile (each locked operation copies a slice).  With many shards
	 * each needs its own misses: after 4096 loads per shard (50000 at
	 * most) a range promotes the rest. */
	struct syncmap_stats st;
	syncmap_stats(md->m, &st);
	long budget = 4096L * (long)st.shards;
	if (budget > 50000)
		budget = 50000;
	for (long guard = 0;; guard++) {
		syncmap_stats(md->m, &st);
		if (!st.amended)
			return;
		if (guard == budget) {
			CHECKF(st.promotions > 0 || budget < 4096, "no promotion by misses after %ld loads", guard);
			do_op(md, OP_RANGE, 0);
			continue;
		}
		CHECKF(guard < budget + 10, "no promotion after a range");
		size_t i = test_rng_below(&md->rng, md->nkeys);
		do_op(md, test_rng_below(&md->rng, 4) ? OP_LOAD : OP_STORE, i);
	}
}

static void phase_build(bool boxed, struct tracker *tr, uint64_t seed, long cycles)
{
	struct test_rng r;
	test_rng_init(&r, seed);
	struct keyset ks;
	size_t base = 3000, extra = 3000;
	keyset_random(&ks, base + extra + 1, &r);
	struct model md = {0};
	md.rng = r;
	model_open(&md, &ks, boxed, tr, test_rng_next(&r), "build");
	size_t next_new = base;
	md.nkeys = base;
	/* The re-stores below are the point of this phase, and how many land
	 * while a copy runs depends on the seed: with many shards each copy is
	 * short (a 64th of the keys), and a quick run (4 cycles) saw as few as
	 * 18.  So the phase goes on until it has seen enough of them, not for
	 * a fixed count of cycles, within a cap that still catches a copy that
	 * never lets a re-store in. */
	struct syncmap_stats st;
	syncmap_stats(md.m, &st);
	const uint64_t want_restores = st.shards <= 8 ? 100 : 25;
	for (long c = 0; c < cycles || (md.restores_while_building <= want_restores && c < 20 * cycles); c++) {
		/* fill */
		for (size_t i = 0; i < base; i++)
			if (!md.present[i] || test_rng_below(&md.rng, 4) == 0)
				do_op(&md, test_rng_below(&md.rng, 2) ? OP_STORE : OP_LOS, i);
		/* promote: by misses or by a range */
		if (c % 3 == 2)
			do_op(&md, OP_RANGE, 0);
		else
			promote_by_loads(&md);
		/* delete a third: NULL entries in the snapshot */
		for (size_t i = 0; i < base; i++)
			if (test_rng_below(&md.rng, 3) == 0)
				do_op(&md, test_rng_below(&md.rng, 2) ? OP_DELETE : OP_LAD, i);
		/* one new key: the dirty map is created and the copy starts */
		if (next_new == base + extra) {
			for (size_t i = base; i < base + extra; i++)
				if (md.present[i])
					do_op(&md, OP_DELETE, i);
			next_new = base;
		}
		md.nkeys = next_new + 1;
		do_op(&md, OP_STORE, next_new++);
		/* while the copy runs: re-store deleted keys, delete, etc. */
		long steps = 0;
		while (building(&md)) {
			md.builds_seen += steps == 0;
			md.ops_while_building++;
			size_t i = test_rng_below(&md.rng, base);
			uint64_t r2 = test_rng_below(&md.rng, 10);
			enum op op;
			if (r2 < 5) {
				op = (enum op)(OP_STORE + test_rng_below(&md.rng, 2) * (OP_SWAP - OP_STORE));
				if (!md.present[i] && test_rng_below(&md.rng, 2))
					op = OP_LOS;
				md.restores_while_building += !md.present[i];
			} else if (r2 < 7) {
				op = test_rng_below(&md.rng, 2) ? OP_DELETE : OP_CAD;
			} else if (r2 < 8) {
				op = OP_CAS;
			} else if (r2 < 9) {
				op = OP_LOAD;
			} else {
				i = base + test_rng_below(&md.rng, next_new - base);
				op = random_op(&md, true);
				if (op == OP_CLEAR || op == OP_RANGE)
					op = OP_STORE;
			}
			do_op(&md, op, i);
			steps++;
			if (steps >= 10000000) TEST_FAIL("the dirty build never finished");
		}
		/* random operations over everything, then a full check */
		md.nkeys = next_new;
		for (long j = 0; j < 3000; j++)
			do_op(&md, random_op(&md, true), test_rng_below(&md.rng, md.nkeys));
		check_all(&md);
	}
	printf("  build(%s): %" PRIu64 " builds seen, %" PRIu64 " ops during builds, %" PRIu64
	       " re-stores of deleted keys during builds\n",
	       boxed ? "boxed" : "plain", md.builds_seen, md.ops_while_building, md.restores_while_building);
	ASSERT_GE(md.builds_seen, (uint64_t)cycles / 2);
	ASSERT_GT(md.restores_while_building, want_restores);
	model_close(&md);
	model_dispose(&md);
	keyset_free(&ks);
}

static void phase_mixed(bool boxed, struct tracker *tr, uint64_t seed, long nops)
{
	struct test_rng r;
	test_rng_init(&r, seed);
	struct keyset ks;
	size_t nk = 2000;
	keyset_random(&ks, nk + 1, &r);
	struct model md = {0};
	md.rng = r;
	model_open(&md, &ks, boxed, tr, test_rng_next(&r), "mixed");
	md.nkeys = 200;
	for (long j = 0; j < nops; j++) {
		uint64_t r2 = test_rng_below(&md.rng, 20000);
		if (r2 == 0) {
			/* grow the key space in play: a burst of new keys, then
			 * loads until they are promoted */
			size_t grow = md.nkeys < nk ? 1 + test_rng_below(&md.rng, nk - md.nkeys) : 0;
			for (size_t i = md.nkeys; i < md.nkeys + grow; i++)
				do_op(&md, OP_STORE, i);
			md.nkeys += grow;
			promote_by_loads(&md);
		} else if (r2 == 1) {
			md.nkeys = 10 + test_rng_below(&md.rng, nk - 10);
			for (size_t i = md.nkeys; i < nk; i++)
				if (md.present[i])
					do_op(&md, OP_DELETE, i);
		} else if (r2 < 30) {
			never_key_op(&md);
		}
		do_op(&md, random_op(&md, true), test_rng_below(&md.rng, md.nkeys));
		if (j % 50000 == 0)
			check_all(&md);
	}
	check_all(&md);
	struct syncmap_stats st;
	syncmap_stats(md.m, &st);
	ASSERT_GT(st.promotions, 0);
	model_close(&md);
	model_dispose(&md);
	keyset_free(&ks);
}

static void run_mode(bool boxed, uint64_t seed)
{
	struct tracker tr;
	tracker_init(&tr, true, true);
	double t0 = now_sec();
	phase_quick(boxed, &tr, seed ^ 1);
	double t1 = now_sec();
	phase_small(boxed, &tr, seed ^ 2, scaled(1000000, 100000));
	double t2 = now_sec();
	phase_build(boxed, &tr, seed ^ 3, scaled(30, 4));
	double t3 = now_sec();
	phase_mixed(boxed, &tr, seed ^ 4, scaled(1000000, 100000));
	double t4 = now_sec();
	if (boxed)
		tracker_check_all_freed(&tr);
	printf("%s: quick %.2fs small %.2fs build %.2fs mixed %.2fs; values made %ld freed %ld, NULL freed %ld\n",
	       boxed ? "boxed" : "plain", t1 - t0, t2 - t1, t3 - t2, t4 - t3, atomic_load(&tr.made),
	       atomic_load(&tr.freed), atomic_load(&tr.null_freed));
	tracker_destroy(&tr);
}

int main(void)
{
	uint64_t seed = test_begin();
	run_mode(false, seed);
	run_mode(true, seed);
	printf("ok\n");
	return 0;
}
