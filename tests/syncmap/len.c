/*
 * len.c - syncmap_len under concurrency.
 *
 * SPDX-License-Identifier: MIT
 *
 *   exact     12 threads each own a range of keys and run every writing
 *             operation on them (store, load_or_store, swap, delete,
 *             load_and_delete, CAS, CAD), knowing each key's final state;
 *             a few also write keys of a shared range (final state unknown
 *             to them).  After the join: syncmap_len == the number of keys
 *             a range visits == the owners' count + the shared keys found by
 *             loads; stats.len agrees.  Repeated over rounds on one map
 *             (keys in the snapshot, in the dirty map, mid-build).
 *   bounds    insert-only, then delete-only phases: each thread publishes
 *             how many of its operations have completed and how many have
 *             started; a reader checks completed-before <= len <=
 *             started-after ("a value the map held, give or take the
 *             operations in flight"), and that len never goes backwards
 *             while only inserts run (nor up while only deletes run).
 */
#include "smtest.h"

static struct syncmap *M;

#define T 12
#define PER 400      /* keys owned by each thread */
#define SHARED 100   /* keys everyone may write */

struct owner {
	int id;
	struct test_rng rng;
	bool present[PER];
	uint64_t cur[PER];
	uint64_t ctr;
	long ops;
	/* bounds phase */
	atomic_long started, completed;
};

static struct owner O[T];

static void key_of(long *k, int thread, long i)
{
	*k = thread < 0 ? 1000000 + i : (long)thread * 10000 + i;
}

static void *owner_thread(void *arg)
{
	struct owner *o = arg;
	long n = scaled(20000, 2000);
	for (long j = 0; j < n; j++) {
		if (test_rng_below(&o->rng, 16) == 0) {
			/* a shared key: state unknown afterwards */
			long k;
			key_of(&k, -1, (long)test_rng_below(&o->rng, SHARED));
			if (test_rng_below(&o->rng, 2))
				ASSERT_EQ(syncmap_store(M, &k, sizeof(k), (void *)1), 0);
			else
				syncmap_delete(M, &k, sizeof(k));
			continue;
		}
		long i = (long)test_rng_below(&o->rng, PER), k;
		key_of(&k, o->id, i);
		void *v = (void *)(uintptr_t)(((uint64_t)o->id << 40) | ++o->ctr);
		void *out = NULL;
		switch (test_rng_below(&o->rng, 7)) {
		case 0:
			ASSERT_EQ(syncmap_store(M, &k, sizeof(k), v), 0);
			o->present[i] = true;
			o->cur[i] = (uint64_t)(uintptr_t)v;
			break;
		case 1: {
			int r = syncmap_load_or_store(M, &k, sizeof(k), v, &out);
			ASSERT_EQ(r, o->present[i] ? 1 : 0);
			if (!o->present[i]) {
				o->present[i] = true;
				o->cur[i] = (uint64_t)(uintptr_t)v;
			}
			break;
		}
		case 2: {
			int r = syncmap_swap(M, &k, sizeof(k), v, &out);
			ASSERT_EQ(r, o->present[i] ? 1 : 0);
			if (r)
				ASSERT_EQ((uint64_t)(uintptr_t)out, o->cur[i]);
			o->present[i] = true;
			o->cur[i] = (uint64_t)(uintptr_t)v;
			break;
		}
		case 3:
			syncmap_delete(M, &k, sizeof(k));
			o->present[i] = false;
			break;
		case 4:
			ASSERT_EQ(syncmap_load_and_delete(M, &k, sizeof(k), &out), o->present[i]);
			o->present[i] = false;
			break;
		case 5: {
			bool hit = o->present[i] && test_rng_below(&o->rng, 2);
			void *old = hit ? (void *)(uintptr_t)o->cur[i] : (void *)(uintptr_t)(1ULL << 60); /* no value is that */
			ASSERT_EQ(syncmap_compare_and_swap(M, &k, sizeof(k), old, v), (int)hit);
			if (hit)
				o->cur[i] = (uint64_t)(uintptr_t)v;
			break;
		}
		default: {
			bool hit = o->present[i] && test_rng_below(&o->rng, 2);
			void *old = hit ? (void *)(uintptr_t)o->cur[i] : (void *)(uintptr_t)(1ULL << 60); /* no value is that */
			ASSERT_EQ(syncmap_compare_and_delete(M, &k, sizeof(k), old), hit);
			if (hit)
				o->present[i] = false;
			break;
		}
		}
		o->ops++;
		if (test_rng_below(&o->rng, 64) == 0)
			sched_yield();
	}
	return NULL;
}

static void test_exact(uint64_t seed)
{
	M = syncmap_new(NULL);
	for (int t = 0; t < T; t++) {
		memset(&O[t], 0, sizeof(O[t]));
		O[t].id = t;
		test_rng_init(&O[t].rng, seed * 1009 + (uint64_t)t);
	}
	long rounds = scaled(6, 2);
	for (long r = 0; r < rounds; r++) {
		pthread_t pt[T];
		for (int t = 0; t < T; t++)
			ASSERT_EQ(pthread_create(&pt[t], NULL, owner_thread, &O[t]), 0);
		for (int t = 0; t < T; t++)
			pthread_join(pt[t], NULL);
		long want = 0;
		for (int t = 0; t < T; t++)
			for (long i = 0; i < PER; i++) {
				long k;
				key_of(&k, t, i);
				void *v = NULL;
				bool f = syncmap_load(M, &k, sizeof(k), &v);
				if (f != O[t].present[i] || (f && (uint64_t)(uintptr_t)v != O[t].cur[i]))
					TEST_FAIL("thread %d key %ld: found %d %p, owner says %d %#" PRIx64, t, i, f, v,
						  O[t].present[i], O[t].cur[i]);
				want += O[t].present[i];
			}
		for (long i = 0; i < SHARED; i++) {
			long k;
			key_of(&k, -1, i);
			want += syncmap_load(M, &k, sizeof(k), NULL);
		}
		long ranged = 0;
		syncmap_range(M, range_count_fn, &ranged);
		struct syncmap_stats st;
		syncmap_stats(M, &st);
		printf("exact: round %ld: len %zu, range %ld, reference %ld (promotions %" PRIu64 ", building %d)\n", r,
		       syncmap_len(M), ranged, want, st.promotions, st.building);
		ASSERT_EQ(syncmap_len(M), want);
		ASSERT_EQ(ranged, want);
		ASSERT_EQ(st.len, want);
		/* a new key between rounds: the next round starts mid-build */
		long nk = 5000000 + r;
		ASSERT_EQ(syncmap_store(M, &nk, sizeof(nk), NULL), 0);
		syncmap_delete(M, &nk, sizeof(nk));
	}
	syncmap_free(M);
}

/* ---- bounds while writers run ----------------------------------------------------- */

static atomic_int phase; /* 1: insert, 2: delete */

static void *bound_writer(void *arg)
{
	struct owner *o = arg;
	for (int ph = 1; ph <= 2; ph++) {
		while (atomic_load(&phase) < ph)
			sched_yield();
		for (long i = 0; i < PER; i++) {
			long k;
			key_of(&k, o->id, i);
			atomic_fetch_add(&o->started, 1);
			if (ph == 1)
				ASSERT_EQ(syncmap_load_or_store(M, &k, sizeof(k), (void *)1, NULL), 0);
			else
				ASSERT_TRUE(syncmap_load_and_delete(M, &k, sizeof(k), NULL));
			atomic_fetch_add(&o->completed, 1);
			if (test_rng_below(&o->rng, 8) == 0)
				sched_yield();
		}
	}
	return NULL;
}

static long sum_started(void)
{
	long s = 0;
	for (int t = 0; t < T; t++)
		s += atomic_load(&O[t].started);
	return s;
}

static long sum_completed(void)
{
	long s = 0;
	for (int t = 0; t < T; t++)
		s += atomic_load(&O[t].completed);
	return s;
}

static void test_bounds(uint64_t seed)
{
	M = syncmap_new(NULL);
	for (int t = 0; t < T; t++) {
		memset(&O[t], 0, sizeof(O[t]));
		O[t].id = t;
		test_rng_init(&O[t].rng, seed * 7 + (uint64_t)t);
	}
	pthread_t pt[T];
	atomic_store(&phase, 0);
	for (int t = 0; t < T; t++)
		ASSERT_EQ(pthread_create(&pt[t], NULL, bound_writer, &O[t]), 0);
	const long total = (long)T * PER;
	long checks = 0, inflight_seen = 0;
	for (int ph = 1; ph <= 2; ph++) {
		atomic_store(&phase, ph);
		long last = ph == 1 ? 0 : total;
		for (;;) {
			/* inserts: completed-before <= len <= started-after;
			 * deletes: total - started-after <= len <= total - completed-before
			 * (the counters are read around the call; a thread updates
			 * len before it counts the operation completed, and after
			 * it counts it started: exact on x86, where the locked
			 * RMWs are totally ordered) */
			long c0 = sum_completed() - (ph == 2 ? total : 0);
			long len = (long)syncmap_len(M);
			long s1 = sum_started() - (ph == 2 ? total : 0);
			long lo = ph == 1 ? c0 : total - s1, hi = ph == 1 ? s1 : total - c0;
			if (len < lo || len > hi)
				TEST_FAIL("phase %s: len %ld outside [%ld, %ld]", ph == 1 ? "insert" : "delete", len, lo,
					  hi);
			if (ph == 1 ? len < last : len > last)
				TEST_FAIL("phase %s: len went from %ld to %ld", ph == 1 ? "insert" : "delete", last, len);
			inflight_seen += s1 != c0;
			last = len;
			checks++;
			if (c0 == total)
				break;
		}
		ASSERT_EQ(syncmap_len(M), ph == 1 ? total : 0);
	}
	for (int t = 0; t < T; t++)
		pthread_join(pt[t], NULL);
	printf("bounds: %ld len checks, %ld with operations in flight\n", checks, inflight_seen);
	ASSERT_GT(checks, 10);
	syncmap_free(M);
}

int main(void)
{
	uint64_t seed = test_begin();
	watchdog(300, "len tests");
	test_exact(seed);
	test_bounds(seed);
	printf("ok\n");
	return 0;
}
