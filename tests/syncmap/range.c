/*
 * range.c - syncmap_range's contract, alone and under concurrent writers.
 *
 * SPDX-License-Identifier: MIT
 *
 *   concurrent_range  Go's TestConcurrentRange: 1024 keys k -> k; 12
 *                     writers loop over the keys storing k -> k*i*g with
 *                     probability 1/1024, else loading; the main thread
 *                     ranges: every key exactly once, v % k == 0;
 *   other_keys        stable keys with fixed values while 10 threads store
 *                     and delete OTHER keys (new ones included: dirty builds,
 *                     promotions); every range sees each stable key exactly
 *                     once with its value, no key twice, and a churn key only
 *                     with a value that was stored for it;
 *   nested            Go's TestMapRangeNestedCall (#46399): Range inside
 *                     Range, Load / LoadOrStore / Store / LoadAndDelete from
 *                     the inner callback, the outer deletes its key, a final
 *                     Range sees nothing;
 *   writer_callback   a callback that stores many new keys into the map it
 *                     ranges over (starting dirty builds and, through loads
 *                     of them, promotions) and deletes others, also nested,
 *                     while another thread does the same: no deadlock
 *                     (watchdog), keys untouched throughout visited exactly
 *                     once, no key twice, values ones the key held;
 *   early_stop        fn returning false stops the walk after exactly that
 *                     many calls; the range still promoted the dirty map.
 */
#include "smtest.h"

#define MAP_SIZE 1024

static struct syncmap *M;
static atomic_int stop;

/* ---- TestConcurrentRange --------------------------------------------------- */

struct cr_worker {
	int64_t g;
	struct test_rng rng;
	long stores;
};

static void *cr_writer(void *arg)
{
	struct cr_worker *w = arg;
	for (int64_t i = 0; !atomic_load(&stop); i++) {
		for (int64_t n = 1; n < MAP_SIZE && !atomic_load(&stop); n++) {
			if (test_rng_below(&w->rng, MAP_SIZE) == 0) {
				ASSERT_EQ(syncmap_store(M, &n, sizeof(n), (void *)(uintptr_t)(n * i * w->g)), 0);
				w->stores++;
			} else {
				(void)syncmap_load(M, &n, sizeof(n), NULL);
			}
		}
	}
	return NULL;
}

struct seen_ctx {
	unsigned char seen[MAP_SIZE + 1];
	long n;
};

static bool cr_fn(const void *key, size_t klen, void *val, void *ctx)
{
	struct seen_ctx *c = ctx;
	int64_t k;
	ASSERT_EQ(klen, sizeof(k));
	memcpy(&k, key, sizeof(k));
	ASSERT(k >= 1 && k <= MAP_SIZE);
	int64_t v = (int64_t)(uintptr_t)val;
	if (v % k != 0)
		TEST_FAIL("while storing multiples of %" PRId64 ", range saw value %" PRId64, k, v);
	if (c->seen[k]++)
		TEST_FAIL("range visited key %" PRId64 " twice", k);
	c->n++;
	return true;
}

static void test_concurrent_range(uint64_t seed)
{
	M = syncmap_new(NULL);
	for (int64_t n = 1; n <= MAP_SIZE; n++)
		ASSERT_EQ(syncmap_store(M, &n, sizeof(n), (void *)(uintptr_t)n), 0);
	enum { G = 12 };
	struct cr_worker w[G];
	pthread_t t[G];
	atomic_store(&stop, 0);
	for (int g = 0; g < G; g++) {
		w[g] = (struct cr_worker){g + 1, {0}, 0};
		test_rng_init(&w[g].rng, seed + (uint64_t)g);
		ASSERT_EQ(pthread_create(&t[g], NULL, cr_writer, &w[g]), 0);
	}
	long iters = scaled(1024, 64);
	static struct seen_ctx c;
	for (long it = 0; it < iters; it++) {
		memset(&c, 0, sizeof(c));
		syncmap_range(M, cr_fn, &c);
		if (c.n != MAP_SIZE)
			TEST_FAIL("range visited %ld elements of a %d-element map", c.n, MAP_SIZE);
	}
	atomic_store(&stop, 1);
	long stores = 0;
	for (int g = 0; g < G; g++) {
		pthread_join(t[g], NULL);
		stores += w[g].stores;
	}
	ASSERT_EQ(syncmap_len(M), MAP_SIZE);
	printf("concurrent_range: %ld ranges, %ld concurrent stores\n", iters, stores);
	ASSERT_GT(stores, 0);
	syncmap_free(M);
}

/* ---- ranges while other keys churn ------------------------------------------ */

#define STABLE 600
#define CHURN 2000

static void mkkey(char *buf, size_t *len, int kind, long i)
{
	/* stable keys "s<i>", churn keys "c<i>" padded to vary inline/heap */
	int l = snprintf(buf, 48, "%c%ld", kind, i);
	int pad = (int)(i % 5) * 4;
	for (int p = 0; p < pad; p++)
		buf[l++] = '.';
	*len = (size_t)l;
}

static void *churn_writer(void *arg)
{
	struct test_rng *rng = arg;
	char k[48];
	size_t kl;
	while (!atomic_load(&stop)) {
		long i = (long)test_rng_below(rng, CHURN);
		mkkey(k, &kl, 'c', i);
		uint64_t r = test_rng_below(rng, 10);
		/* value: the key's index in the high bits, so a range can tell a
		 * value stored for another key */
		void *v = (void *)(uintptr_t)(((uint64_t)i << 24) | (test_rng_next(rng) & 0xffffff));
		if (r < 4)
			ASSERT_EQ(syncmap_store(M, k, kl, v), 0);
		else if (r < 7)
			syncmap_delete(M, k, kl);
		else if (r < 8)
			(void)syncmap_load_or_store(M, k, kl, v, NULL);
		else
			(void)syncmap_load(M, k, kl, NULL);
	}
	return NULL;
}

struct ok_ctx {
	unsigned char sseen[STABLE], cseen[CHURN];
	long stable;
};

static bool ok_fn(const void *key, size_t klen, void *val, void *ctx)
{
	struct ok_ctx *c = ctx;
	char buf[49];
	ASSERT(klen < sizeof(buf));
	memcpy(buf, key, klen);
	buf[klen] = 0;
	long i = atol(buf + 1);
	if (buf[0] == 's') {
		ASSERT(i >= 0 && i < STABLE);
		if (c->sseen[i]++)
			TEST_FAIL("range visited stable key %ld twice", i);
		if ((uintptr_t)val != (uintptr_t)(i * 3 + 1))
			TEST_FAIL("stable key %ld: value %p", i, val);
		c->stable++;
	} else {
		ASSERT(buf[0] == 'c' && i >= 0 && i < CHURN);
		if (c->cseen[i]++)
			TEST_FAIL("range visited churn key %ld twice", i);
		if ((uint64_t)(uintptr_t)val >> 24 != (uint64_t)i)
			TEST_FAIL("churn key %ld: value %p was stored for another key", i, val);
	}
	return true;
}

static void test_other_keys(uint64_t seed)
{
	M = syncmap_new(NULL);
	char k[48];
	size_t kl;
	for (long i = 0; i < STABLE; i++) {
		mkkey(k, &kl, 's', i);
		ASSERT_EQ(syncmap_store(M, k, kl, (void *)(uintptr_t)(i * 3 + 1)), 0);
	}
	enum { T = 10 };
	struct test_rng rng[T];
	pthread_t t[T];
	atomic_store(&stop, 0);
	for (int j = 0; j < T; j++) {
		test_rng_init(&rng[j], seed * 31 + (uint64_t)j);
		ASSERT_EQ(pthread_create(&t[j], NULL, churn_writer, &rng[j]), 0);
	}
	struct syncmap_stats st0, st1;
	syncmap_stats(M, &st0);
	long iters = scaled(1500, 100);
	static struct ok_ctx c;
	for (long it = 0; it < iters; it++) {
		memset(&c, 0, sizeof(c));
		syncmap_range(M, ok_fn, &c);
		if (c.stable != STABLE)
			TEST_FAIL("range saw %ld of %d stable keys", c.stable, STABLE);
		if (it % 8 == 0)
			sched_yield();
	}
	atomic_store(&stop, 1);
	for (int j = 0; j < T; j++)
		pthread_join(t[j], NULL);
	syncmap_stats(M, &st1);
	printf("other_keys: %ld ranges; %" PRIu64 " promotions meanwhile\n", iters, st1.promotions - st0.promotions);
	ASSERT_GT(st1.promotions, st0.promotions);
	syncmap_free(M);
}

/* ---- TestMapRangeNestedCall ------------------------------------------------- */

static const char *const nested_vals[3] = {"hello", "world", "Go"};

static bool nested_inner(const void *key, size_t klen, void *val, void *ctx)
{
	(void)ctx;
	void *v = NULL;
	/* no concurrent delete: the offered key loads to the offered value */
	if (!syncmap_load(M, key, klen, &v) || v != val)
		TEST_FAIL("nested range: load got %p, want %p", v, val);
	/* key 42 was never kept: LoadOrStore must store */
	int k42 = 42;
	if (syncmap_load_or_store(M, &k42, sizeof(k42), (void *)"dummy", NULL) != 0)
		TEST_FAIL("nested range: load_or_store(42) loaded");
	/* store then load_and_delete 42: gone again */
	static const char sval[] = "sync.Map";
	ASSERT_EQ(syncmap_store(M, &k42, sizeof(k42), (void *)sval), 0);
	if (!syncmap_load_and_delete(M, &k42, sizeof(k42), &v) || v != (void *)sval)
		TEST_FAIL("nested range: load_and_delete(42) got %p", v);
	return true;
}

static bool nested_outer(const void *key, size_t klen, void *val, void *ctx)
{
	(void)val;
	syncmap_range(M, nested_inner, NULL);
	syncmap_delete(M, key, klen); /* remove the key on the fly */
	++*(int *)ctx;
	return true;
}

static void test_nested(void)
{
	M = syncmap_new(NULL);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(syncmap_store(M, &i, sizeof(i), (void *)nested_vals[i]), 0);
	int outer = 0;
	syncmap_range(M, nested_outer, &outer);
	ASSERT_EQ(outer, 3);
	long n = 0;
	syncmap_range(M, range_count_fn, &n);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(syncmap_len(M), 0);
	syncmap_free(M);
}

/* ---- callbacks that write the map they range over ------------------------------ */

#define WB_BASE 3000
#define ID_MOD 1000000L

struct wb_ctx {
	struct test_rng rng;
	unsigned char *seen; /* per key id */
	unsigned char *touched; /* keys this range's callbacks or the other thread may change */
	long next_new, visits, depth;
	bool check_untouched;
};

static void wb_key(char *buf, size_t *len, long id)
{
	*len = (size_t)snprintf(buf, 48, "w%ld%s", id, id % 3 ? "" : "-long-enough-for-heap");
}

static long wb_id(const void *key, size_t klen)
{
	char buf[49];
	ASSERT(klen < sizeof(buf));
	memcpy(buf, key, klen);
	buf[klen] = 0;
	ASSERT(buf[0] == 'w');
	return atol(buf + 1);
}

static bool wb_fn(const void *key, size_t klen, void *val, void *ctx)
{
	struct wb_ctx *c = ctx;
	long id = wb_id(key, klen);
	if (c->seen[id]++)
		TEST_FAIL("range visited key %ld twice", id);
	if ((long)(uintptr_t)val % ID_MOD != id)
		TEST_FAIL("key %ld: value %p was never stored for it", id, val);
	c->visits++;
	char k[48];
	size_t kl;
	/* store new keys (only the callbacks create keys >= WB_BASE); nested
	 * ranges store one in 16 visits, or the keys would multiply */
	for (int j = 0; j < (c->depth == 0 ? 3 : test_rng_below(&c->rng, 16) == 0); j++) {
		long nid = c->next_new++;
		ASSERT_LT(nid, ID_MOD);
		wb_key(k, &kl, nid);
		ASSERT_EQ(syncmap_store(M, k, kl, (void *)(uintptr_t)(nid + ID_MOD)), 0);
		(void)syncmap_load(M, k, kl, NULL); /* a miss: promotions mid-range */
	}
	/* delete another base key (it may or may not be visited later) */
	/* (mostly in the other thread's half, so plenty stay untouched) */
	long victim = (long)test_rng_below(&c->rng, WB_BASE / 2);
	if (test_rng_below(&c->rng, 4))
		victim += WB_BASE / 2;
	c->touched[victim] = 1;
	wb_key(k, &kl, victim);
	syncmap_delete(M, k, kl);
	/* and sometimes a nested range that writes too */
	if (c->depth == 0 && test_rng_below(&c->rng, 1500) == 0) {
		struct wb_ctx inner = *c;
		inner.seen = calloc(ID_MOD, 1);
		inner.depth = 1;
		syncmap_range(M, wb_fn, &inner);
		c->next_new = inner.next_new;
		free(inner.seen);
	}
	return true;
}

static void *wb_other(void *arg)
{
	struct test_rng *rng = arg;
	char k[48];
	size_t kl;
	/* touches base keys in [WB_BASE/2, WB_BASE) only */
	while (!atomic_load(&stop)) {
		long id = WB_BASE / 2 + (long)test_rng_below(rng, WB_BASE / 2);
		wb_key(k, &kl, id);
		if (test_rng_below(rng, 2))
			ASSERT_EQ(syncmap_store(M, k, kl, (void *)(uintptr_t)(id + 2 * ID_MOD)), 0);
		else
			syncmap_delete(M, k, kl);
		if (test_rng_below(rng, 16) == 0)
			sched_yield();
	}
	return NULL;
}

static void test_writer_callback(uint64_t seed)
{
	M = syncmap_new(NULL);
	char k[48];
	size_t kl;
	for (long id = 0; id < WB_BASE; id++) {
		wb_key(k, &kl, id);
		ASSERT_EQ(syncmap_store(M, k, kl, (void *)(uintptr_t)(id + ID_MOD)), 0);
	}
	struct test_rng orng;
	test_rng_init(&orng, seed ^ 0xabc);
	atomic_store(&stop, 0);
	pthread_t other;
	ASSERT_EQ(pthread_create(&other, NULL, wb_other, &orng), 0);
	struct syncmap_stats st0, st1;
	syncmap_stats(M, &st0);
	long next_new = WB_BASE, total_new = 0;
	long rounds = scaled(12, 3);
	for (long r = 0; r < rounds; r++) {
		struct wb_ctx c;
		memset(&c, 0, sizeof(c));
		test_rng_init(&c.rng, seed + (uint64_t)r);
		c.seen = calloc(ID_MOD, 1);
		c.touched = calloc(WB_BASE, 1);
		for (long id = WB_BASE / 2; id < WB_BASE; id++)
			c.touched[id] = 1; /* the other thread's */
		c.next_new = next_new;
		/* keys present and untouched for the whole call: visited once */
		unsigned char *present = calloc(WB_BASE, 1);
		for (long id = 0; id < WB_BASE / 2; id++) {
			wb_key(k, &kl, id);
			present[id] = syncmap_load(M, k, kl, NULL);
		}
		syncmap_range(M, wb_fn, &c);
		long checked = 0;
		for (long id = 0; id < WB_BASE / 2; id++)
			if (present[id] && !c.touched[id]) {
				checked++;
				if (c.seen[id] != 1)
					TEST_FAIL("key %ld, present and untouched throughout, visited %d times", id,
						  c.seen[id]);
			}
		if (checked == 0) {
			long nt = 0;
			for (long id = 0; id < WB_BASE / 2; id++)
				nt += c.touched[id];
			TEST_FAIL("round %ld: no key checked (%ld visits, %ld touched, next_new %ld)", r, c.visits, nt, c.next_new);
		}
		next_new = c.next_new;
		/* put the base keys back for the next round; drop the new ones */
		for (long id = 0; id < WB_BASE / 2; id++) {
			wb_key(k, &kl, id);
			ASSERT_EQ(syncmap_store(M, k, kl, (void *)(uintptr_t)(id + ID_MOD)), 0);
		}
		free(present);
		free(c.seen);
		free(c.touched);
		ASSERT_LT(next_new, ID_MOD);
		for (long id = WB_BASE; id < next_new; id++) {
			wb_key(k, &kl, id);
			syncmap_delete(M, k, kl);
		}
		total_new += next_new - WB_BASE;
		next_new = WB_BASE;
	}
	atomic_store(&stop, 1);
	pthread_join(other, NULL);
	syncmap_stats(M, &st1);
	printf("writer_callback: %ld ranges, %ld new keys stored from callbacks, %" PRIu64 " promotions\n", rounds,
	       total_new, st1.promotions - st0.promotions);
	ASSERT_GT(st1.promotions, st0.promotions + 2);
	syncmap_free(M);
}

/* ---- early stop ----------------------------------------------------------------- */

struct es_ctx {
	long calls, stop_after;
};

static bool es_fn(const void *key, size_t klen, void *val, void *ctx)
{
	(void)key, (void)klen, (void)val;
	struct es_ctx *c = ctx;
	return ++c->calls < c->stop_after;
}

/* Range promotes before it visits: the whole map with one shard (Go's
 * Range), and with shards every shard it visits, so a range that stops
 * early leaves the shards it did not reach amended, while a full range
 * leaves none. */
static void test_early_stop(void)
{
	struct syncmap_options o = {.shards = test_shards()};
	M = syncmap_new(&o);
	for (long i = 0; i < 500; i++)
		ASSERT_EQ(syncmap_store(M, &i, sizeof(i), (void *)(uintptr_t)i), 0);
	struct syncmap_stats st;
	syncmap_stats(M, &st);
	ASSERT_TRUE(st.amended); /* never promoted: everything in the dirty map */
	for (long stop_after = 1; stop_after <= 501; stop_after += 50) {
		struct es_ctx c = {0, stop_after};
		syncmap_range(M, es_fn, &c);
		ASSERT_EQ(c.calls, stop_after < 500 ? stop_after : 500);
		syncmap_stats(M, &st);
		if (st.shards == 1 || stop_after > 500)
			ASSERT_FALSE(st.amended); /* promoted first, even stopping early */
		/* a new key: amended again for the next round */
		long k = 1000 + stop_after;
		ASSERT_EQ(syncmap_store(M, &k, sizeof(k), NULL), 0);
		syncmap_delete(M, &k, sizeof(k));
	}
	syncmap_free(M);
}

int main(void)
{
	uint64_t seed = test_begin();
	watchdog(300, "range tests");
	test_nested();
	test_early_stop();
	test_concurrent_range(seed);
	test_other_keys(seed);
	test_writer_callback(seed);
	printf("ok\n");
	return 0;
}
