/*
 * reclaim.c - value lifetime: nothing freed while a reader may hold it,
 * everything freed exactly once, soon enough, and at syncmap_free.
 *
 * SPDX-License-Identifier: MIT
 *
 * Values are tracked objects (smtest.h): free_value checks the magic, counts
 * the free (a second free aborts), poisons the magic and keeps the object
 * (a quarantine: nothing is reused during the test), so a reader that finds
 * a poisoned value inside its own read section proves a premature free
 * without help from ASAN.
 *
 *   readers       10 threads: inside syncmap_read_lock sections (nested,
 *                 several calls each) load, load_and_delete, swap and range,
 *                 and check every value they got, again at the end of the
 *                 section, while writers overwrite, delete, CAS and clear;
 *                 at the end: every value made was freed exactly once;
 *   timely        under that load, a deleted value reaches free_value
 *                 within 2 s without syncmap_free (the one timing check);
 *   pinned        a thread holds a (nested) section around a load; the main
 *                 thread deletes the key: the value must not be freed while
 *                 the section lasts (the inner unlock does not end it), and
 *                 is freed soon after it ends;
 *   pending_zero  syncmap_stats' pending_reclaim reads 0 only once every
 *                 value retired has been freed (polled while liburcu's
 *                 thread moves retired objects from stripes to batches);
 *   free_in_rs    syncmap_free inside a read section (the deferred path),
 *                 with reclamation pending and without: nothing freed while
 *                 the section lasts, everything freed soon after (poll 5 s),
 *                 and the map itself too (ASAN/LSAN);
 *   short_lived   200 threads each do a few operations (read sections
 *                 included) and exit; then syncmap_free, whose RCU barrier
 *                 must not hang on the dead threads (watchdog).
 */
#include "smtest.h"

static struct tracker TR;
static struct syncmap *M;
static atomic_int stop;

#define NKEYS 64

static void key_of(char *buf, size_t *len, long i)
{
	*len = (size_t)snprintf(buf, 40, "key-%ld%s", i, i % 2 ? "" : "-with-a-long-tail");
}

static struct tv *fresh(void)
{
	struct tv *v = tv_new(&TR);
	atomic_store(&v->state, TV_LIVE);
	return v;
}

/* ---- readers and writers ----------------------------------------------------- */

struct rctx {
	long checks;
};

static bool range_check(const void *key, size_t klen, void *val, void *ctx)
{
	(void)key, (void)klen;
	struct rctx *c = ctx;
	if (val)
		tv_check_live(val, "range callback");
	c->checks++;
	return true;
}

struct thr {
	int id;
	struct test_rng rng;
	long checks, sections;
};

static void *reader(void *arg)
{
	struct thr *t = arg;
	char k[40];
	size_t kl;
	struct tv *got[8];
	while (!atomic_load(&stop)) {
		int n = 0;
		syncmap_read_lock();
		bool nested = test_rng_below(&t->rng, 2);
		if (nested)
			syncmap_read_lock();
		int calls = 1 + (int)test_rng_below(&t->rng, 6);
		for (int j = 0; j < calls; j++) {
			long i = (long)test_rng_below(&t->rng, NKEYS);
			key_of(k, &kl, i);
			void *v = NULL;
			uint64_t r = test_rng_below(&t->rng, 20);
			if (r < 14) {
				if (syncmap_load(M, k, kl, &v) && v)
					got[n++] = v;
			} else if (r < 16) {
				/* removed, but ours until the section ends */
				if (syncmap_load_and_delete(M, k, kl, &v) && v)
					got[n++] = v;
			} else if (r < 18) {
				struct tv *nv = fresh();
				if (syncmap_swap(M, k, kl, nv, &v) == 1 && v)
					got[n++] = v;
			} else if (r < 19) {
				struct rctx c = {0};
				syncmap_range(M, range_check, &c);
				t->checks += c.checks;
			} else {
				if (syncmap_load_or_store(M, k, kl, NULL, &v) == 1 && v)
					got[n++] = v;
			}
			for (int x = 0; x < n; x++)
				tv_check_live(got[x], "inside the read section");
			if (nested && j == calls / 2) {
				/* the inner unlock must not end the section */
				syncmap_read_unlock();
				nested = false;
			}
		}
		for (volatile int s = (int)test_rng_below(&t->rng, 2000); s > 0; s--)
			;
		for (int x = 0; x < n; x++)
			tv_check_live(got[x], "at the end of the read section");
		t->checks += n;
		if (nested)
			syncmap_read_unlock();
		syncmap_read_unlock();
		t->sections++;
		if (test_rng_below(&t->rng, 16) == 0)
			sched_yield();
	}
	return NULL;
}

static void *writer(void *arg)
{
	struct thr *t = arg;
	char k[40];
	size_t kl;
	while (!atomic_load(&stop)) {
		long i = (long)test_rng_below(&t->rng, NKEYS);
		key_of(k, &kl, i);
		uint64_t r = test_rng_below(&t->rng, 1000);
		if (r < 400) {
			ASSERT_EQ(syncmap_store(M, k, kl, fresh()), 0);
		} else if (r < 600) {
			syncmap_delete(M, k, kl);
		} else if (r < 800) {
			/* CAS against what we read: the read happens in a section
			 * so the old value cannot be recycled meanwhile (it is not
			 * anyway: quarantine) */
			void *old = NULL;
			syncmap_read_lock();
			if (syncmap_load(M, k, kl, &old)) {
				struct tv *nv = fresh();
				if (syncmap_compare_and_swap(M, k, kl, old, nv) != 1) {
					atomic_store(&nv->state, TV_TEST);
					tv_unused(&TR, nv);
				}
			}
			syncmap_read_unlock();
		} else if (r < 900) {
			void *old = NULL;
			syncmap_read_lock();
			if (syncmap_load(M, k, kl, &old))
				(void)syncmap_compare_and_delete(M, k, kl, old);
			syncmap_read_unlock();
		} else if (r < 999) {
			/* a new key, so dirty builds and promotions happen */
			char nk[40];
			int l = snprintf(nk, sizeof(nk), "new-%d-%" PRIu64, t->id, test_rng_next(&t->rng) % 4096);
			ASSERT_EQ(syncmap_store(M, nk, (size_t)l, fresh()), 0);
			(void)syncmap_load(M, nk, (size_t)l, NULL);
		} else {
			syncmap_clear(M);
		}
		if (test_rng_below(&t->rng, 32) == 0)
			sched_yield();
	}
	return NULL;
}

static void test_readers(uint64_t seed)
{
	struct syncmap_options o = {.free_value = tv_free_value, .free_ctx = &TR, .seed = 0, .shards = test_shards()};
	M = syncmap_new(&o);
	char k[40];
	size_t kl;
	for (long i = 0; i < NKEYS; i++) {
		key_of(k, &kl, i);
		ASSERT_EQ(syncmap_store(M, k, kl, fresh()), 0);
	}
	enum { R = 8, W = 4 };
	struct thr th[R + W];
	pthread_t pt[R + W];
	atomic_store(&stop, 0);
	for (int j = 0; j < R + W; j++) {
		th[j] = (struct thr){j, {0}, 0, 0};
		test_rng_init(&th[j].rng, seed * 7 + (uint64_t)j);
		ASSERT_EQ(pthread_create(&pt[j], NULL, j < R ? reader : writer, &th[j]), 0);
	}

	/* timeliness, under this load: a deleted value is freed within 2 s */
	double worst = 0;
	for (int rep = 0; rep < 5; rep++) {
		sleep_ms(100 * scaled(1, 1));
		struct tv *v = fresh();
		char tk[] = "timely-key";
		ASSERT_EQ(syncmap_store(M, tk, sizeof(tk) - 1, v), 0);
		syncmap_delete(M, tk, sizeof(tk) - 1);
		double t0 = now_sec();
		while (atomic_load(&v->frees) == 0) {
			/* a clear may have taken it before our delete: same thing */
			if (now_sec() - t0 > 2.0)
				TEST_FAIL("a deleted value was not freed within 2 s (pending_reclaim %" PRIu64 ")",
					  (uint64_t)0);
			sleep_ms(1);
		}
		if (now_sec() - t0 > worst)
			worst = now_sec() - t0;
	}
	sleep_ms(500 * scaled(1, 1));
	atomic_store(&stop, 1);
	long checks = 0, sections = 0;
	for (int j = 0; j < R + W; j++) {
		pthread_join(pt[j], NULL);
		checks += th[j].checks;
		sections += th[j].sections;
	}
	struct syncmap_stats st;
	syncmap_stats(M, &st);
	printf("readers: %ld read sections, %ld value checks; %ld values made, %ld freed before syncmap_free; "
	       "worst free latency %.1f ms; promotions %" PRIu64 "\n",
	       sections, checks, atomic_load(&TR.made), atomic_load(&TR.freed), worst * 1e3, st.promotions);
	ASSERT_GT(sections, 100);
	ASSERT_GT(atomic_load(&TR.freed), 100);
	/* the values still in the map leave now */
	syncmap_free(M);
	tracker_check_all_freed(&TR);
}

/* ---- a section pins a value ----------------------------------------------------- */

static atomic_int pin_phase;
static struct tv *_Atomic pinned_val;

static void *pinner(void *arg)
{
	(void)arg;
	syncmap_read_lock();
	syncmap_read_lock();
	void *v = NULL;
	ASSERT_TRUE(syncmap_load(M, "pin", 3, &v));
	syncmap_read_unlock(); /* still inside the outer section */
	atomic_store(&pinned_val, v);
	atomic_store(&pin_phase, 1);
	while (atomic_load(&pin_phase) != 2) {
		tv_check_live(v, "pinned by an outer read section");
		sleep_ms(1);
	}
	/* several calls in the same section: the value stays good */
	void *w = NULL;
	(void)syncmap_load(M, "other", 5, &w);
	tv_check_live(v, "pinned, after more calls");
	syncmap_read_unlock();
	atomic_store(&pin_phase, 3);
	return NULL;
}

static void test_pinned(void)
{
	struct syncmap_options o = {.free_value = tv_free_value, .free_ctx = &TR, .seed = 0, .shards = test_shards()};
	M = syncmap_new(&o);
	struct tv *v = fresh();
	ASSERT_EQ(syncmap_store(M, "pin", 3, v), 0);
	ASSERT_EQ(syncmap_store(M, "other", 5, fresh()), 0);
	atomic_store(&pin_phase, 0);
	pthread_t t;
	ASSERT_EQ(pthread_create(&t, NULL, pinner, NULL), 0);
	while (atomic_load(&pin_phase) != 1)
		sched_yield();
	ASSERT(atomic_load(&pinned_val) == v);
	syncmap_delete(M, "pin", 3);
	/* more retirements queue behind it, and other threads' grace periods
	 * come and go: none may free v while the pinner's section lasts */
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(syncmap_store(M, "other", 5, fresh()), 0);
		if (i % 20 == 0)
			sleep_ms(1);
	}
	sleep_ms(100);
	ASSERT_EQ(atomic_load(&v->frees), 0);
	atomic_store(&pin_phase, 2);
	while (atomic_load(&pin_phase) != 3)
		sched_yield();
	double t0 = now_sec();
	while (atomic_load(&v->frees) == 0) {
		if (now_sec() - t0 > 5)
			TEST_FAIL("value not freed 5 s after the section that pinned it ended");
		sleep_ms(1);
	}
	pthread_join(t, NULL);
	syncmap_free(M);
	tracker_check_all_freed(&TR);
}

/* ---- "nothing pending" means nothing pending ------------------------------------ */

/* Rounds of a few overwrites (fewer than a batch, so they wait in a stripe
 * for the reaper, which moves them to a batch on liburcu's thread), then a
 * tight poll of syncmap_stats until pending_reclaim is 0: every value
 * retired must then have reached free_value.  When the count read the
 * batches before the stripes, a reaper flush between the two reads hid the
 * objects, and the poll saw 0 with values still unfreed (the stress
 * matrix's "at rest" check caught it once in many runs). */
static void test_pending_zero(void)
{
	struct syncmap_options o = {.free_value = tv_free_value, .free_ctx = &TR, .seed = 0, .shards = test_shards()};
	M = syncmap_new(&o);
	ASSERT(M != NULL);
	long rounds = scaled(400, 40), early = 0;
	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < 10; i++) {
			char k[40];
			size_t klen;
			key_of(k, &klen, i);
			ASSERT_EQ(syncmap_store(M, k, klen, fresh()), 0);
		}
		long live = 10; /* one value per key stays in the map */
		struct syncmap_stats st;
		double t0 = now_sec();
		do {
			syncmap_stats(M, &st);
			if (now_sec() - t0 > 10)
				TEST_FAIL("round %ld: %" PRIu64 " objects still pending after 10 s", r,
					  st.pending_reclaim);
		} while (st.pending_reclaim != 0);
		long unfreed = atomic_load(&TR.made) - atomic_load(&TR.freed) - live;
		if (unfreed != 0)
			early++;
		if (unfreed != 0 && early == 1)
			printf("pending_zero: round %ld: pending_reclaim read 0 with %ld values not yet freed\n", r,
			       unfreed);
	}
	if (early)
		TEST_FAIL("pending_reclaim read 0 while values were still pending, in %ld of %ld rounds", early, rounds);
	printf("pending_zero: %ld rounds, pending_reclaim 0 meant every retired value freed\n", rounds);
	syncmap_free(M);
	tracker_check_all_freed(&TR);
}

/* ---- syncmap_free inside a read section ----------------------------------------- */

static void test_free_in_read_section(bool with_pending)
{
	struct syncmap_options o = {.free_value = tv_free_value, .free_ctx = &TR, .seed = 0, .shards = test_shards()};
	M = syncmap_new(&o);
	char k[40];
	size_t kl;
	for (long i = 0; i < 2000; i++) {
		key_of(k, &kl, i);
		ASSERT_EQ(syncmap_store(M, k, kl, fresh()), 0);
	}
	/* promote, so a snapshot and a dirty map both exist at the free */
	for (long i = 0; i < 4000; i++) {
		key_of(k, &kl, i % 2000);
		(void)syncmap_load(M, k, kl, NULL);
	}
	ASSERT_EQ(syncmap_store(M, "extra", 5, fresh()), 0);
	/* what was queued before the section may legitimately be freed
	 * during it: let it go first */
	ASSERT_TRUE(wait_reclaim(M, 5));
	long before = atomic_load(&TR.freed);
	syncmap_read_lock();
	if (with_pending) {
		/* retire values inside the section: callbacks pending at the free */
		for (long i = 0; i < 500; i++) {
			key_of(k, &kl, i);
			syncmap_delete(M, k, kl);
		}
		syncmap_clear(M); /* a whole-table retirement pending too */
		for (long i = 0; i < 300; i++) {
			key_of(k, &kl, i);
			ASSERT_EQ(syncmap_store(M, k, kl, fresh()), 0);
		}
	}
	syncmap_free(M); /* cannot wait here: deferred */
	sleep_ms(50);
	if (atomic_load(&TR.freed) != before)
		TEST_FAIL("%ld values freed inside the read section that freed the map",
			  atomic_load(&TR.freed) - before);
	syncmap_read_unlock();
	double t0 = now_sec();
	if (!tracker_wait_freed(&TR, 5))
		TEST_FAIL("deferred syncmap_free: %ld of %ld values freed after 5 s", atomic_load(&TR.freed),
			  atomic_load(&TR.made));
	tracker_check_all_freed(&TR);
	printf("free_in_rs(%s): all values freed %.1f ms after the section ended\n",
	       with_pending ? "callbacks pending" : "nothing pending", (now_sec() - t0) * 1e3);
}

/* ---- short-lived threads -------------------------------------------------------- */

static atomic_long sl_next;

static void *short_lived(void *arg)
{
	(void)arg;
	long id = atomic_fetch_add(&sl_next, 1);
	char k[40];
	size_t kl;
	for (int j = 0; j < 5; j++) {
		key_of(k, &kl, (id * 5 + j) % 300);
		ASSERT_EQ(syncmap_store(M, k, kl, fresh()), 0);
		syncmap_read_lock();
		void *v = NULL;
		if (syncmap_load(M, k, kl, &v) && v)
			tv_check_live(v, "short-lived thread");
		syncmap_read_unlock();
		if (j == 3)
			syncmap_delete(M, k, kl);
	}
	/* exits outside any read section, right after queueing retirements */
	return NULL;
}

static void test_short_lived(void)
{
	struct syncmap_options o = {.free_value = tv_free_value, .free_ctx = &TR, .seed = 0, .shards = test_shards()};
	M = syncmap_new(&o);
	long n = scaled(200, 200);
	double t0 = now_sec();
	for (long done = 0; done < n;) {
		enum { B = 16 };
		pthread_t t[B];
		int b = (int)(n - done < B ? n - done : B);
		for (int j = 0; j < b; j++)
			ASSERT_EQ(pthread_create(&t[j], NULL, short_lived, NULL), 0);
		for (int j = 0; j < b; j++)
			pthread_join(t[j], NULL);
		done += b;
	}
	double t1 = now_sec();
	watchdog(30, "syncmap_free after short-lived threads exited");
	syncmap_free(M);
	watchdog(0, NULL);
	double t2 = now_sec();
	tracker_check_all_freed(&TR);
	printf("short_lived: %ld threads in %.2fs; syncmap_free took %.1f ms\n", n, t1 - t0, (t2 - t1) * 1e3);
	/* and later grace periods still work: a new map's values are freed */
	M = syncmap_new(&o);
	struct tv *v = fresh();
	ASSERT_EQ(syncmap_store(M, "x", 1, v), 0);
	syncmap_delete(M, "x", 1);
	double t3 = now_sec();
	while (atomic_load(&v->frees) == 0) {
		if (now_sec() - t3 > 5)
			TEST_FAIL("no grace period completed after the short-lived threads exited");
		sleep_ms(1);
	}
	syncmap_free(M);
}

int main(void)
{
	uint64_t seed = test_begin();
	tracker_init(&TR, false, false);
	watchdog(300, "reclaim tests");
	test_readers(seed);
	watchdog(300, "pinned");
	test_pinned();
	test_pending_zero();
	test_free_in_read_section(false);
	test_free_in_read_section(true);
	watchdog(300, "short-lived threads");
	test_short_lived();
	watchdog(0, NULL);
	tracker_destroy(&TR);
	printf("ok\n");
	return 0;
}
