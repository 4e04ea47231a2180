/*
 * memory.c - memory stays bounded under write storms and under keys that
 * die young.
 *
 * SPDX-License-Identifier: MIT
 *
 *   storm     8 threads swap fresh heap values into 64 keys as fast as they
 *             can (on 2 cores: writers outnumber CPUs, liburcu's callback
 *             thread gets a ninth of the time).  Without back-pressure the
 *             deferred frees piled up (7.6 million after 20 s, RSS +33
 *             MB/s).  Asserted: RSS grows by less than 32 MiB after the
 *             first second, every value is freed exactly once, and
 *             syncmap_stats reports the backlog (pending_reclaim > 0 at
 *             some point, 0 once quiet);
 *   inflight  Go issue 40999's in-flight-requests pattern: one thread
 *             stores a fresh key, loads it and deletes it, another loads
 *             (an existing key, and the fresh one); values are plain words,
 *             as in Go's test.  Asserted over 1.5 million cycles (x
 *             TEST_SCALE): RSS stays within 24 MiB of its level after
 *             warm-up, and the objects waiting for a grace period stay in
 *             the hundreds (they were in the tens of thousands when every
 *             cycle promoted and retired a table).  The same with owned
 *             values is reported: each deleted value then waits for a
 *             grace period, so those pending are the cycle rate times the
 *             grace period.
 * The RSS bounds are not asserted under sanitizers (their allocators keep
 * freed memory in quarantine); the rest is.
 */
#include "smtest.h"

static atomic_long made, freed;

struct val {
	uint64_t magic;
	char payload[56];
};
#define VAL_MAGIC 0x5A17C0DE5A17C0DEULL

static void *val_new(void)
{
	struct val *v = malloc(sizeof(*v));
	ASSERT(v != NULL);
	v->magic = VAL_MAGIC;
	atomic_fetch_add_explicit(&made, 1, memory_order_relaxed);
	return v;
}

static void val_free(void *p, void *ctx)
{
	(void)ctx;
	struct val *v = p;
	if (v->magic != VAL_MAGIC)
		TEST_FAIL("free_value: bad magic");
	v->magic = 0;
	free(v);
	atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
}

static struct syncmap *M;
static atomic_int stop;
static atomic_long ops;

/* ---- the write storm --------------------------------------------------------- */

static void *storm_writer(void *arg)
{
	struct test_rng rng;
	test_rng_init(&rng, (uint64_t)(uintptr_t)arg + 1);
	long n = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		long k = (long)test_rng_below(&rng, 64);
		ASSERT(syncmap_swap(M, &k, sizeof(k), val_new(), NULL) >= 0);
		n++;
	}
	atomic_fetch_add(&ops, n);
	return NULL;
}

static void test_storm(void)
{
	M = syncmap_new(&(struct syncmap_options){.free_value = val_free, .shards = test_shards()});
	enum { W = 8 };
	double secs = 2.0 + 3.0 * test_scale();
	atomic_store(&stop, 0);
	atomic_store(&ops, 0);
	pthread_t th[W];
	for (long t = 0; t < W; t++)
		ASSERT_EQ(pthread_create(&th[t], NULL, storm_writer, (void *)(intptr_t)t), 0);
	double t0 = now_sec();
	long rss1 = -1, rss_max = 0;
	uint64_t pending_max = 0, waits = 0;
	while (now_sec() - t0 < secs) {
		sleep_ms(50);
		long r = rss_kb();
		if (now_sec() - t0 >= 1.0 && rss1 < 0)
			rss1 = r;
		if (r > rss_max)
			rss_max = r;
		struct syncmap_stats st;
		syncmap_stats(M, &st);
		if (st.pending_reclaim > pending_max)
			pending_max = st.pending_reclaim;
		waits = st.reclaim_waits;
	}
	atomic_store(&stop, 1);
	for (int t = 0; t < W; t++)
		pthread_join(th[t], NULL);
	double el = now_sec() - t0;
	long growth = rss_max - rss1;
	printf("storm: %d writers on 64 keys, %.1f s, %.2f Mops/s; RSS after 1 s %ld MiB, max %ld MiB (+%ld MiB); "
	       "pending objects max %" PRIu64 "; writer waits for a grace period %" PRIu64 "\n",
	       W, el, (double)atomic_load(&ops) / el / 1e6, rss1 / 1024, rss_max / 1024, growth / 1024, pending_max,
	       waits);
	ASSERT_GT(pending_max, 0); /* the backlog is visible */
	ASSERT_TRUE(wait_reclaim(M, 10));
	syncmap_free(M);
	ASSERT_EQ(atomic_load(&freed), atomic_load(&made));
	if (!UNDER_SANITIZER && growth >= 32 * 1024)
		TEST_FAIL("RSS grew %ld MiB after the first second (bound 32 MiB)", growth / 1024);
}

/* ---- keys that die young ------------------------------------------------------ */

static atomic_long fresh_key;

static void *inflight_reader(void *arg)
{
	(void)arg;
	long old = -1, n = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		long k = atomic_load_explicit(&fresh_key, memory_order_relaxed);
		(void)syncmap_load(M, &k, sizeof(k), NULL);
		(void)syncmap_load(M, &old, sizeof(old), NULL);
		n += 2;
	}
	atomic_fetch_add(&ops, n);
	return NULL;
}

static void *inflight_value(bool owned, long i)
{
	return owned ? val_new() : (void *)(uintptr_t)(i + 1);
}

static void test_inflight(bool owned)
{
	M = syncmap_new(&(struct syncmap_options){.free_value = owned ? val_free : NULL, .shards = test_shards()});
	long old = -1;
	ASSERT_EQ(syncmap_store(M, &old, sizeof(old), inflight_value(owned, old)), 0);
	atomic_store(&stop, 0);
	atomic_store(&ops, 0);
	pthread_t rd;
	ASSERT_EQ(pthread_create(&rd, NULL, inflight_reader, NULL), 0);
	long cycles = scaled(1500000, 150000), warm = cycles / 10;
	long rss_warm = 0, rss_max = 0;
	uint64_t pending_max = 0;
	double t0 = now_sec(), t_warm = 0;
	for (long i = 0; i < cycles; i++) {
		atomic_store_explicit(&fresh_key, i, memory_order_relaxed);
		ASSERT_EQ(syncmap_store(M, &i, sizeof(i), inflight_value(owned, i)), 0);
		void *v;
		ASSERT_TRUE(syncmap_load(M, &i, sizeof(i), &v));
		syncmap_delete(M, &i, sizeof(i));
		if (i == warm) {
			rss_warm = rss_kb();
			t_warm = now_sec();
		}
		if (i > warm && i % 4096 == 0) {
			long r = rss_kb();
			if (r > rss_max)
				rss_max = r;
			struct syncmap_stats st;
			syncmap_stats(M, &st);
			if (st.pending_reclaim > pending_max)
				pending_max = st.pending_reclaim;
		}
	}
	double per_cycle = (now_sec() - t_warm) / (double)(cycles - warm);
	atomic_store(&stop, 1);
	pthread_join(rd, NULL);
	struct syncmap_stats st;
	syncmap_stats(M, &st);
	printf("inflight (%s values): %ld cycles in %.2f s (%.2f us per cycle after warm-up); RSS after warm-up "
	       "%ld MiB, max +%ld MiB; pending objects max %" PRIu64 "; promotions %" PRIu64 ", len %zu\n",
	       owned ? "owned" : "plain", cycles, now_sec() - t0, per_cycle * 1e6, rss_warm / 1024,
	       (rss_max - rss_warm) / 1024, pending_max, st.promotions, st.len);
	ASSERT_EQ(st.len, 1);
	if (!owned)
		ASSERT_LT(pending_max, 1000);
	ASSERT_TRUE(wait_reclaim(M, 10));
	syncmap_free(M);
	ASSERT_EQ(atomic_load(&freed), atomic_load(&made));
	if (!UNDER_SANITIZER && rss_max - rss_warm > 24 * 1024)
		TEST_FAIL("RSS grew %ld MiB after warm-up (bound 24 MiB)", (rss_max - rss_warm) / 1024);
}

int main(void)
{
	test_begin();
	watchdog(300, "memory tests");
	test_inflight(false);
	test_inflight(true);
	test_storm();
	printf("ok\n");
	return 0;
}
