/*
 * clear.c - syncmap_clear under concurrency.
 *
 * SPDX-License-Identifier: MIT
 *
 *   concurrent   Go's TestConcurrentClear, repeated: 10 storers (key k ->
 *                10k), 10 loaders (a loaded value must be 10k), 10 clearers,
 *                all at once; then a clear: a range sees nothing, and once
 *                the clear's grace period has passed (pending_reclaim == 0)
 *                len == 0; in both value modes (boxed: every value freed
 *                exactly once, counted);
 *   removes_all  keys not written concurrently are gone when clear returns
 *                (loads miss, a range does not see them), while other
 *                threads write other keys; the keys are in every state
 *                clear may find them in (snapshot, dirty map, mid-build,
 *                deleted); in boxed mode each cleared value reaches
 *                free_value exactly once, after the grace period;
 *   one_instant  a clear takes effect at one instant across shards: keys
 *                in 64 different shards, nothing stores during the clear,
 *                and an observer sweeps the keys (up, then down) with
 *                lock-free loads; once it has seen a key gone, it must
 *                never see any key still present.  (Without the gate, loads
 *                see the shards' swaps one by one: this failed 1.7 million
 *                times in 1000 clears.)
 */
#include "smtest.h"

static struct syncmap *M;
static struct tracker TR;
static bool boxed;
static atomic_int stop;

/* a value for key k: boxed -> a tracked object, plain -> the word 10k+1 */
static void *val_for(long k)
{
	if (!boxed)
		return (void *)(uintptr_t)(10 * k + 1);
	struct tv *v = tv_new(&TR);
	v->id = (uint64_t)k; /* id doubles as the key it was stored for */
	atomic_store(&v->state, TV_LIVE);
	return v;
}

static bool val_ok(long k, void *v)
{
	if (!boxed)
		return (uintptr_t)v == (uintptr_t)(10 * k + 1);
	tv_check_live(v, "loaded inside a read section");
	return ((struct tv *)v)->id == (uint64_t)k;
}

/* ---- TestConcurrentClear -------------------------------------------------------- */

#define CKEYS 200

struct thr {
	int id;
	struct test_rng rng;
	long n;
};

static void *storer(void *arg)
{
	struct thr *t = arg;
	while (!atomic_load(&stop)) {
		long k = (long)test_rng_below(&t->rng, CKEYS);
		ASSERT_EQ(syncmap_store(M, &k, sizeof(k), val_for(k)), 0);
		t->n++;
		if (test_rng_below(&t->rng, 8) == 0)
			sched_yield();
	}
	return NULL;
}

static void *loader(void *arg)
{
	struct thr *t = arg;
	while (!atomic_load(&stop)) {
		long k = (long)test_rng_below(&t->rng, CKEYS);
		void *v;
		syncmap_read_lock();
		if (syncmap_load(M, &k, sizeof(k), &v)) {
			if (!val_ok(k, v))
				TEST_FAIL("key %ld loaded a value stored for another key", k);
			t->n++;
		}
		syncmap_read_unlock();
		if (test_rng_below(&t->rng, 8) == 0)
			sched_yield();
	}
	return NULL;
}

static void *clearer(void *arg)
{
	struct thr *t = arg;
	while (!atomic_load(&stop)) {
		syncmap_clear(M);
		t->n++;
		for (int y = (int)test_rng_below(&t->rng, 20); y > 0; y--)
			sched_yield();
	}
	return NULL;
}

static void test_concurrent(uint64_t seed)
{
	struct syncmap_options o = {.free_value = boxed ? tv_free_value : NULL, .free_ctx = &TR, .seed = 0, .shards = test_shards()};
	long rounds = scaled(20, 4);
	long stores = 0, loads = 0, clears = 0;
	for (long r = 0; r < rounds; r++) {
		M = syncmap_new(&o);
		enum { N = 30 };
		struct thr th[N];
		pthread_t pt[N];
		atomic_store(&stop, 0);
		for (int j = 0; j < N; j++) {
			th[j] = (struct thr){j, {0}, 0};
			test_rng_init(&th[j].rng, seed * 131 + (uint64_t)(r * N + j));
			ASSERT_EQ(pthread_create(&pt[j], NULL, j < 10 ? storer : j < 20 ? loader : clearer, &th[j]), 0);
		}
		sleep_ms(50);
		atomic_store(&stop, 1);
		for (int j = 0; j < N; j++) {
			pthread_join(pt[j], NULL);
			if (j < 10)
				stores += th[j].n;
			else if (j < 20)
				loads += th[j].n;
			else
				clears += th[j].n;
		}
		/* quiescent: len agrees with a range once reclamation caught up */
		ASSERT_TRUE(wait_reclaim(M, 10));
		long c = 0;
		syncmap_range(M, range_count_fn, &c);
		ASSERT_EQ(syncmap_len(M), c);
		syncmap_clear(M);
		c = 0;
		syncmap_range(M, range_count_fn, &c);
		ASSERT_EQ(c, 0);
		for (long k = 0; k < CKEYS; k++)
			ASSERT_FALSE(syncmap_load(M, &k, sizeof(k), NULL));
		ASSERT_TRUE(wait_reclaim(M, 10));
		ASSERT_EQ(syncmap_len(M), 0);
		struct syncmap_stats st;
		syncmap_stats(M, &st);
		ASSERT_EQ(st.len, 0);
		ASSERT_EQ(st.entries, 0);
		syncmap_free(M);
	}
	printf("concurrent(%s): %ld rounds, %ld stores, %ld loads that found a value, %ld clears\n",
	       boxed ? "boxed" : "plain", rounds, stores, loads, clears);
	ASSERT_GT(clears, rounds);
	ASSERT_GT(loads, 0);
	if (boxed)
		tracker_check_all_freed(&TR);
}

/* ---- clear removes every key present when it starts --------------------------- */

#define SKEYS 3000

static void *other_writer(void *arg)
{
	struct thr *t = arg;
	while (!atomic_load(&stop)) {
		/* keys of its own, new ones included (dirty builds, promotions) */
		long k = 1000000 + t->id * 100000 + (long)test_rng_below(&t->rng, 5000);
		if (test_rng_below(&t->rng, 3))
			ASSERT_EQ(syncmap_store(M, &k, sizeof(k), val_for(k)), 0);
		else
			syncmap_delete(M, &k, sizeof(k));
		if (test_rng_below(&t->rng, 4) == 0)
			(void)syncmap_load(M, &k, sizeof(k), NULL);
		if (test_rng_below(&t->rng, 16) == 0)
			sched_yield();
	}
	return NULL;
}

struct seen_ctx {
	long stable_seen;
};

static bool stable_fn(const void *key, size_t klen, void *val, void *ctx)
{
	(void)val;
	long k;
	ASSERT_EQ(klen, sizeof(k));
	memcpy(&k, key, sizeof(k));
	if (k < SKEYS)
		((struct seen_ctx *)ctx)->stable_seen++;
	return true;
}

static void test_removes_all(uint64_t seed)
{
	struct syncmap_options o = {.free_value = boxed ? tv_free_value : NULL, .free_ctx = &TR, .seed = 0, .shards = test_shards()};
	M = syncmap_new(&o);
	enum { N = 8 };
	struct thr th[N];
	pthread_t pt[N];
	atomic_store(&stop, 0);
	for (int j = 0; j < N; j++) {
		th[j] = (struct thr){j, {0}, 0};
		test_rng_init(&th[j].rng, seed * 17 + (uint64_t)j);
		ASSERT_EQ(pthread_create(&pt[j], NULL, other_writer, &th[j]), 0);
	}
	struct test_rng rng;
	test_rng_init(&rng, seed);
	long rounds = scaled(60, 10), building_at_clear = 0;
	void **vals = calloc(SKEYS, sizeof(void *));
	ASSERT(vals != NULL);
	for (long r = 0; r < rounds; r++) {
		/* the stable keys, in various states */
		long nk = 1 + (long)test_rng_below(&rng, SKEYS);
		for (long k = 0; k < nk; k++) {
			vals[k] = val_for(k);
			ASSERT_EQ(syncmap_store(M, &k, sizeof(k), vals[k]), 0);
		}
		uint64_t shape = test_rng_below(&rng, 4);
		if (shape >= 1) {
			long c = 0;
			syncmap_range(M, range_count_fn, &c); /* promoted: in the snapshot */
		}
		if (shape >= 2) {
			/* delete a few (deleted entries in the snapshot), then a new
			 * key starts a dirty build */
			for (long k = 0; k < nk; k += 7) {
				syncmap_delete(M, &k, sizeof(k));
				vals[k] = NULL;
			}
			long nkk = SKEYS + 1 + (long)test_rng_below(&rng, 1000);
			ASSERT_EQ(syncmap_store(M, &nkk, sizeof(nkk), val_for(nkk)), 0);
		}
		if (shape == 3) {
			/* re-store some deleted ones during the build */
			for (long k = 0; k < nk; k += 14) {
				vals[k] = val_for(k);
				ASSERT_EQ(syncmap_store(M, &k, sizeof(k), vals[k]), 0);
			}
		}
		struct syncmap_stats st;
		syncmap_stats(M, &st);
		building_at_clear += st.building;
		syncmap_clear(M);
		/* every stable key is gone now, whatever the other threads do */
		for (long k = 0; k < SKEYS; k++)
			if (syncmap_load(M, &k, sizeof(k), NULL))
				TEST_FAIL("round %ld (shape %" PRIu64 "): key %ld survived the clear", r, shape, k);
		struct seen_ctx c = {0};
		syncmap_range(M, stable_fn, &c);
		ASSERT_EQ(c.stable_seen, 0);
		if (boxed) {
			/* each cleared value: freed once, after the grace period */
			double t0 = now_sec();
			for (long k = 0; k < nk; k++) {
				struct tv *v = vals[k];
				if (!v)
					continue;
				while (atomic_load(&v->frees) == 0) {
					if (now_sec() - t0 > 10)
						TEST_FAIL("cleared value of key %ld not freed after 10 s", k);
					sleep_ms(1);
				}
				ASSERT_EQ(atomic_load(&v->frees), 1);
			}
		}
	}
	atomic_store(&stop, 1);
	for (int j = 0; j < N; j++)
		pthread_join(pt[j], NULL);
	syncmap_free(M);
	if (boxed)
		tracker_check_all_freed(&TR);
	printf("removes_all(%s): %ld clears, %ld of them during a dirty build\n", boxed ? "boxed" : "plain", rounds,
	       building_at_clear);
	ASSERT_GT(building_at_clear, 0);
	free(vals);
}

/* ---- one instant ------------------------------------------------------------- */

#define OI_SHARDS 64
static long oi_key[OI_SHARDS];
static atomic_int oi_phase; /* 0 idle, 1 observe, 2 stop */
static atomic_int oi_idle;   /* observers that saw the phase end */
static atomic_long oi_violations, oi_sweeps;

static void *oi_observer(void *arg)
{
	(void)arg;
	long id = 0;
	while (atomic_load(&oi_phase) != 2) {
		if (atomic_load(&oi_phase) != 1) {
			sched_yield();
			continue;
		}
		bool seen_gone = false;
		atomic_fetch_sub(&oi_idle, 1);
		while (atomic_load(&oi_phase) == 1) {
			id ^= 1; /* sweep up, then down */
			for (int j = 0; j < OI_SHARDS; j++) {
				long k = oi_key[id ? OI_SHARDS - 1 - j : j];
				bool present = syncmap_load(M, &k, sizeof(k), NULL);
				if (!present)
					seen_gone = true;
				else if (seen_gone)
					atomic_fetch_add(&oi_violations, 1);
			}
			atomic_fetch_add(&oi_sweeps, 1);
		}
		atomic_fetch_add(&oi_idle, 1);
	}
	return NULL;
}

static void test_one_instant(void)
{
	M = syncmap_new(&(struct syncmap_options){.shards = OI_SHARDS});
	/* one key per shard: search the key space with the map's own seed */
	struct syncmap_stats st;
	int found = 0;
	for (long k = 0; found < OI_SHARDS; k++) {
		ASSERT_EQ(syncmap_store(M, &k, sizeof(k), (void *)1), 0);
		syncmap_stats(M, &st);
		if ((int)st.shards_used > found)
			oi_key[found++] = k;
		else
			syncmap_delete(M, &k, sizeof(k));
	}
	/* one observer: with the clearing thread that fills two cores */
	pthread_t th;
	atomic_store(&oi_phase, 0);
	atomic_store(&oi_idle, 1);
	ASSERT_EQ(pthread_create(&th, NULL, oi_observer, NULL), 0);
	long rounds = scaled(400, 100);
	for (long r = 0; r < rounds; r++) {
		for (int j = 0; j < OI_SHARDS; j++)
			ASSERT_EQ(syncmap_store(M, &oi_key[j], sizeof(long), (void *)1), 0);
		if (r % 2) { /* snapshots (promoted) as well as dirty maps */
			long v = 0;
			syncmap_range(M, range_count_fn, &v);
		}
		atomic_store(&oi_phase, 1);
		while (atomic_load(&oi_idle) != 0) /* observing */
			sched_yield();
		syncmap_clear(M);
		for (int spin = 0; spin < 20; spin++)
			sched_yield();
		atomic_store(&oi_phase, 0);
		while (atomic_load(&oi_idle) != 1) /* done before the next stores */
			sched_yield();
	}
	atomic_store(&oi_phase, 2);
	pthread_join(th, NULL);
	printf("one_instant: %ld clears of %d shards, %ld observer sweeps, %ld orderings violated\n", rounds,
	       OI_SHARDS, atomic_load(&oi_sweeps), atomic_load(&oi_violations));
	ASSERT_EQ(atomic_load(&oi_violations), 0);
	syncmap_free(M);
}

int main(void)
{
	uint64_t seed = test_begin();
	watchdog(300, "clear tests");
	for (int b = 0; b < 2; b++) {
		boxed = b;
		tracker_init(&TR, false, false);
		test_concurrent(seed);
		test_removes_all(seed);
		tracker_destroy(&TR);
	}
	test_one_instant();
	printf("ok\n");
	return 0;
}
