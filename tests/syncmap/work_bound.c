/*
 * work_bound.c - no operation does more than a bounded amount of copying
 * under the mutex, however big the map; and deleted keys do not pile up
 * (Go issue 40999).
 *
 * SPDX-License-Identifier: MIT
 *
 *   bound    1e6 keys (x TEST_SCALE, at least 2e5) through repeated
 *            promote / rebuild cycles: Go's AdversarialAlloc pattern (Load(i)
 *            misses; a new key whenever the loads since the last store exceed
 *            the stores so far), then phases that store a batch of new keys
 *            (the first one after a promotion starts the incremental copy of
 *            the whole snapshot) and load existing keys until the dirty map
 *            is promoted (by misses, or by a range every other cycle).  At the end syncmap_stats().max_locked_work <=
 *            SYNCMAP_MAX_LOCKED_WORK, and the check is not vacuous: many
 *            promotions, the copy was seen running (building), the snapshot
 *            reached the full size, max_locked_work > 0;
 *   40999    store + delete of ever-new keys (delete, load_and_delete,
 *            compare_and_delete, and a mix), alone (Go's TestIssue40999) and
 *            with loads of old keys and ranges in between, 1e6 operations in
 *            all (x TEST_SCALE): stats.entries, read_keys and
 *            dirty_keys stay bounded (they do not grow with the number of
 *            operations), and so does the heap in use once reclamation has
 *            caught up (mallinfo2; not checked under sanitizers, whose
 *            allocators do not report it);
 *   longkeys keys of 1 MiB: the dirty map's copy adopts key blocks, so no
 *            critical section copies or hashes a stored key's bytes:
 *            max_locked_key_bytes <= SYNCMAP_MAX_LOCKED_KEY_BYTES through
 *            copies, expunges and promotions, and (release builds) no
 *            store costs more than 20 ms of CPU (copying 17 such keys
 *            under the mutex took 43 ms before).
 */
#include "smtest.h"

#include <malloc.h>

static struct syncmap *M;

static bool load_i(uint64_t i)
{
	return syncmap_load(M, &i, sizeof(i), NULL);
}

static void store_i(uint64_t i)
{
	ASSERT_EQ(syncmap_store(M, &i, sizeof(i), (void *)(uintptr_t)(i + 1)), 0);
}

struct obs {
	uint64_t building_seen, polls;
	size_t max_read_keys;
};

static void poll(struct obs *o)
{
	struct syncmap_stats st;
	syncmap_stats(M, &st);
	o->polls++;
	o->building_seen += st.building;
	if (st.read_keys > o->max_read_keys)
		o->max_read_keys = st.read_keys;
	if (st.max_locked_work > SYNCMAP_MAX_LOCKED_WORK)
		TEST_FAIL("max_locked_work %" PRIu64 " > %d with %zu keys in the snapshot, %zu in the dirty map",
			  st.max_locked_work, SYNCMAP_MAX_LOCKED_WORK, st.read_keys, st.dirty_keys);
}

static void test_bound(uint64_t seed)
{
	double sc = test_scale();
	uint64_t target = (uint64_t)(1e6 * sc);
	if (target < 200000)
		target = 200000;
	M = syncmap_new(NULL);
	struct test_rng rng;
	test_rng_init(&rng, seed);
	struct obs o = {0};
	uint64_t nkeys = 0;
	double t0 = now_sec();

	/* Go's AdversarialAlloc: Load(i) of a new i, LoadOrStore(i) once the
	 * loads since the last store exceed the stores */
	uint64_t stores = 0, since = 0;
	for (uint64_t i = 0; i < 300000 * sc + 20000; i++) {
		uint64_t k = 1000000000 + i;
		(void)load_i(k);
		if (++since > stores) {
			ASSERT_EQ(syncmap_load_or_store(M, &k, sizeof(k), (void *)(uintptr_t)stores, NULL), 0);
			since = 0;
			stores++;
		}
		if (i % 1024 == 0)
			poll(&o);
	}

	/* batches of new keys, each followed by loads until promotion */
	uint64_t batch = 1000, cycle = 0;
	while (nkeys < target) {
		uint64_t end = nkeys + batch;
		if (end > target)
			end = target;
		for (; nkeys < end; nkeys++) {
			store_i(nkeys);
			if (nkeys % 256 == 0)
				poll(&o);
		}
		/* loads of existing keys, mostly of the batch: those miss (locked,
		 * counted) and every locked operation copies a slice; promotion
		 * once the copy is done and the misses reach the dirty map's size */
		struct syncmap_stats st;
		if (++cycle % 2 == 0) {
			/* every other cycle: a range promotes instead (it finishes
			 * the copy in slices of its own, releasing the mutex) */
			long c = 0;
			syncmap_range(M, range_count_fn, &c);
			ASSERT_EQ((uint64_t)c, nkeys + stores);
		}
		for (uint64_t j = 0;; j++) {
			if (j > 64 * nkeys + 1000000)
				TEST_FAIL("no promotion after %" PRIu64 " loads (%" PRIu64 " keys)", j, nkeys);
			if (j % 64 == 0) {
				syncmap_stats(M, &st);
				o.polls++;
				o.building_seen += st.building;
				if (!st.amended)
					break;
			}
			uint64_t k = test_rng_below(&rng, 8) ? nkeys - 1 - test_rng_below(&rng, batch < nkeys ? batch : nkeys)
							      : test_rng_below(&rng, nkeys);
			ASSERT_TRUE(load_i(k));
		}
		batch = batch * 7 / 4;
	}
	struct syncmap_stats st;
	syncmap_stats(M, &st);
	poll(&o);
	printf("bound: %" PRIu64 " keys (+%" PRIu64 " adversarial) in %.2fs; %" PRIu64 " promotions, %" PRIu64
	       " locked ops, building seen in %" PRIu64 " of %" PRIu64 " polls, snapshot up to %zu keys, "
	       "max_locked_work %" PRIu64 " (bound %d)\n",
	       nkeys, stores, now_sec() - t0, st.promotions, st.locked_ops, o.building_seen, o.polls,
	       o.max_read_keys, st.max_locked_work, SYNCMAP_MAX_LOCKED_WORK);
	ASSERT_LE(st.max_locked_work, SYNCMAP_MAX_LOCKED_WORK);
	ASSERT_GT(st.max_locked_work, 0);
	ASSERT_GT(st.promotions, 8);
	ASSERT_GT(o.building_seen, 100);
	ASSERT_GE(o.max_read_keys, nkeys);
	ASSERT_EQ(syncmap_len(M), nkeys + stores);
	syncmap_free(M);
}

/* ---- Go issue 40999: deleted keys must not linger ---------------------------- */


/* how: 0 delete, 1 load_and_delete, 2 compare_and_delete, 3 mixed; pure:
 * nothing in between (Go's TestIssue40999 itself: store + delete only, so
 * no miss from elsewhere ever promotes), else loads of old keys every 7
 * operations and a range every 1000. */
static void test_40999(uint64_t seed, int how, bool pure)
{
	static const char *how_name[] = {"delete", "load_and_delete", "compare_and_delete", "mixed"};
	M = syncmap_new(NULL);
	struct test_rng rng;
	test_rng_init(&rng, seed + (uint64_t)how);
	/* Go: Store(nil) first, to bias len(dirty) above the miss count */
	ASSERT_EQ(syncmap_store(M, NULL, 0, NULL), 0);
	long n = scaled(how == 3 ? 400000 : 150000, 100000);
	long warm = n / 10;
	long rss0 = 0, heap0 = 0, heap1 = 0;
	uint64_t max_entries = 0, entries_at_warm = 0, max_raw = 0, max_pending = 0;
	size_t max_read = 0, max_dirty = 0;
	uint64_t k = 1;
	for (long i = 0; i < n; i++, k++) {
		store_i(k);
		int h = how == 3 ? (int)test_rng_below(&rng, 3) : how;
		if (h == 0)
			syncmap_delete(M, &k, sizeof(k));
		else if (h == 1)
			ASSERT_TRUE(syncmap_load_and_delete(M, &k, sizeof(k), NULL));
		else
			ASSERT_TRUE(syncmap_compare_and_delete(M, &k, sizeof(k), (void *)(uintptr_t)(k + 1)));
		if (!pure && i % 7 == 0)
			ASSERT_FALSE(load_i(1 + test_rng_below(&rng, k))); /* an old key: gone */
		if (!pure && i % 1000 == 999) {
			long c = 0;
			syncmap_range(M, range_count_fn, &c);
			ASSERT_EQ(c, 1);
		}
		if (i == warm || i == n - 1) {
			/* heap in use once reclamation has caught up (the backlog of
			 * retired snapshots in flight varies with the machine) */
			ASSERT_TRUE(wait_reclaim(M, 10));
			struct mallinfo2 mi = mallinfo2();
			if (i == warm)
				heap0 = (long)(mi.uordblks + mi.hblkhd);
			else
				heap1 = (long)(mi.uordblks + mi.hblkhd);
		}
		if (i % 16384 == 0 || i == warm) {
			/* entries retired with a snapshot wait for a grace period:
			 * the backlog in flight depends on the machine; what the
			 * map keeps is what is left once reclamation caught up */
			struct syncmap_stats st;
			syncmap_stats(M, &st);
			if (st.entries > max_raw)
				max_raw = st.entries;
			if (st.pending_reclaim > max_pending)
				max_pending = st.pending_reclaim;
			ASSERT_TRUE(wait_reclaim(M, 10));
			syncmap_stats(M, &st);
			if (st.entries > max_entries)
				max_entries = st.entries;
			if (st.read_keys > max_read)
				max_read = st.read_keys;
			if (st.dirty_keys > max_dirty)
				max_dirty = st.dirty_keys;
			if (i == warm) {
				rss0 = rss_kb();
				entries_at_warm = st.entries;
			}
		}
	}
	ASSERT_EQ(syncmap_len(M), 1);
	long rss1 = rss_kb();
	printf("40999(%s%s): %ld store+delete of new keys: entries kept <= %" PRIu64 " (%" PRIu64
	       " after warm-up), read_keys <= %zu, dirty_keys <= %zu; after warm-up: heap in use %+ld KiB, RSS %+ld KiB\n",
	       how_name[how], pure ? ", pure" : "", n, max_entries, entries_at_warm, max_read, max_dirty, (heap1 - heap0) / 1024,
	       rss1 - rss0);
	printf("    (in flight: up to %" PRIu64 " entries, %" PRIu64 " callbacks pending)\n", max_raw, max_pending);
	/* Bounded, not growing with n.  A key only the dirty map holds is
	 * removed from it by delete / load_and_delete (Go's #40999 fix), so
	 * nothing lingers at all.  compare_and_delete leaves it in the dirty
	 * map with a deleted entry (as Go does); the ranges (every 1000
	 * operations) promote and the next copy drops those entries. */
	uint64_t bound = how == 0 || how == 1 ? 64 : 5000;
	ASSERT_LE(max_entries, bound);
	ASSERT_LE(max_read, bound);
	ASSERT_LE(max_dirty, bound);
	if (!UNDER_SANITIZER)
		ASSERT_LE(heap1 - heap0, 1024 * 1024);
	syncmap_free(M);
}

/* This thread's CPU time: a store's own work, not the time the scheduler
 * gave to others meanwhile (the machine may be busy). */
static double cpu_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void long_key(char *buf, size_t len, long id)
{
	memset(buf, 'a' + (int)(id % 26), len);
	memcpy(buf, &id, sizeof(id));
}

static void test_long_keys(void)
{
	const size_t klen = (size_t)1 << 20;
	const long n = 24;
	char *key = malloc(klen);
	ASSERT(key != NULL);
	/* one shard: every key in the same copy */
	M = syncmap_new(&(struct syncmap_options){.shards = 1});
	double worst = 0;
	for (long round = 0; round < 4; round++) {
		/* new long keys (a dirty map whose copy adopts the previous
		 * snapshot's keys), a promotion, then deletions (expunged by
		 * the next copy) */
		for (long id = round * n; id < (round + 1) * n; id++) {
			long_key(key, klen, id);
			double t0 = cpu_sec();
			ASSERT_EQ(syncmap_store(M, key, klen, (void *)(uintptr_t)(id + 1)), 0);
			double dt = cpu_sec() - t0;
			worst = dt > worst ? dt : worst;
		}
		long visits = 0;
		syncmap_range(M, range_count_fn, &visits); /* promotes */
		for (long id = round * n; id < round * n + n / 2; id++) {
			long_key(key, klen, id);
			syncmap_delete(M, key, klen);
		}
		/* short new keys drive the next copy slice by slice */
		for (long j = 0; j < 64; j++) {
			long sk = 1000000 * (round + 1) + j;
			double t0 = cpu_sec();
			ASSERT_EQ(syncmap_store(M, &sk, sizeof(sk), NULL), 0);
			double dt = cpu_sec() - t0;
			worst = dt > worst ? dt : worst;
		}
	}
	struct syncmap_stats st;
	syncmap_stats(M, &st);
	printf("longkeys: %zu keys of 1 MiB, %" PRIu64 " promotions; max_locked_key_bytes %" PRIu64
	       ", max_locked_work %" PRIu64 ", slowest store %.2f ms of CPU\n",
	       st.len, st.promotions, st.max_locked_key_bytes, st.max_locked_work, worst * 1e3);
	ASSERT_GE(st.promotions, 4);
	ASSERT_LE(st.max_locked_key_bytes, SYNCMAP_MAX_LOCKED_KEY_BYTES);
	ASSERT_LE(st.max_locked_work, SYNCMAP_MAX_LOCKED_WORK);
	if (!UNDER_SANITIZER && worst >= 0.020)
		TEST_FAIL("a store took %.2f ms of CPU (bound 20 ms)", worst * 1e3);
	syncmap_free(M);
	free(key);
}

int main(void)
{
	uint64_t seed = test_begin();
	watchdog(600, "work_bound");
	test_long_keys();
	test_bound(seed);
	test_40999(seed, 0, true);
	test_40999(seed, 1, true);
	for (int how = 0; how < 4; how++)
		test_40999(seed, how, false);
	printf("ok\n");
	return 0;
}
