/*
 * linearizability.c - recorded concurrent histories, checked key by key
 * against a sequential model of one key (lincheck.h).
 *
 * SPDX-License-Identifier: MIT
 *
 * 10 worker threads (plus a range thread and a noise thread in some
 * variants: 12 threads on 2 cores) run short bursts of random operations on
 * a few keys; each operation is recorded with its arguments, its result and
 * the values of a global atomic counter taken just before the call and just
 * after it (a logical clock: resp(A) < inv(B) means A returned before B was
 * called).  Every value written is unique (writer thread and sequence
 * number), so a read names the write it saw; NULL is written too, rarely.
 * After each burst the main thread loads every key (the round's final
 * state, which the search must reach) and checks each key's history;
 * a failure prints the offending history and aborts.  The share of
 * operations that overlapped another thread's is printed; it is asserted
 * (>= 1%) only when a probe shows the process really gets two cores at once
 * (on a loaded machine only preemption inside an operation overlaps them).
 * The checker itself is tested first on histories it must reject.
 *
 * Variants:
 *   snapshot  keys stored and promoted before the rounds: every operation
 *             stays on the lock-free paths (asserted: locked_ops does not
 *             move);
 *   fresh     new keys every round: the dirty map and the locked paths,
 *             promotions by misses (asserted);
 *   promote   fixed keys, a thread calling syncmap_range throughout (forced
 *             promotions mid-history; each visit is checked as a load that
 *             found the key, over the range call's interval) and a noise
 *             thread storing and deleting other keys, so dirty builds start
 *             and expunge the deleted entries of our keys mid-history;
 *   clear     promote + syncmap_clear calls by the workers (Clear appears in
 *             every key's history as a delete);
 *   boxed     clear, with free_value set: free_value checks that no value is
 *             freed twice; at the end every value that entered the map was
 *             freed exactly once and no rejected value was freed.
 */
#include "smtest.h"

#include "lincheck.h"

#define NW 10     /* workers */
#define MAXK 8    /* keys per round */
#define MAIN_TID 99

enum variant { V_SNAPSHOT, V_FRESH, V_PROMOTE, V_CLEAR, V_BOXED, V_N };
static const char *variant_name[] = {"snapshot", "fresh", "promote", "clear", "boxed"};

struct rec {
	uint8_t key; /* 0xff: every key (clear) */
	struct lop op;
};

struct worker {
	int id;
	struct test_rng rng;
	struct rec *log;
	size_t nlog, caplog;
	uint64_t ctr;
	uint64_t known[MAXK]; /* last value seen for each key */
	/* boxed accounting */
	long stored, null_stored;
	uint64_t *rejected; /* values offered and not taken */
	size_t nrejected, caprejected;
};

static struct {
	atomic_int gen, done, quit;
	struct syncmap *m;
	enum variant v;
	int nk, ops, nranges, noise_ops;
	char key[MAXK][48];
	size_t klen[MAXK];
	atomic_ullong clk;
	/* boxed */
	atomic_long freed, null_freed;
	unsigned char *freed_bits[NW + 2];
	size_t bits_cap;
} S;

static struct worker W[NW + 2]; /* + range thread, + noise thread */

static uint64_t tick(void)
{
	return atomic_fetch_add(&S.clk, 1);
}

static void rec_push(struct worker *w, uint8_t key, const struct lop *op)
{
	if (w->nlog == w->caplog) {
		w->caplog = w->caplog ? 2 * w->caplog : 1024;
		w->log = realloc(w->log, w->caplog * sizeof(*w->log));
		ASSERT(w->log != NULL);
	}
	w->log[w->nlog++] = (struct rec){key, *op};
}

static void reject(struct worker *w, uint64_t v)
{
	if (S.v != V_BOXED || v == 0)
		return;
	if (w->nrejected == w->caprejected) {
		w->caprejected = w->caprejected ? 2 * w->caprejected : 1024;
		w->rejected = realloc(w->rejected, w->caprejected * sizeof(uint64_t));
		ASSERT(w->rejected != NULL);
	}
	w->rejected[w->nrejected++] = v;
}

static void entered(struct worker *w, uint64_t v)
{
	if (v)
		w->stored++;
	else
		w->null_stored++;
}

/* free_value (boxed variant): values are ids, never dereferenced */
static void free_id(void *val, void *ctx)
{
	(void)ctx;
	uint64_t v = (uint64_t)(uintptr_t)val;
	if (!v) {
		atomic_fetch_add(&S.null_freed, 1);
		return;
	}
	uint64_t t = (v >> 40) - 1, c = v & ((1ULL << 40) - 1);
	if (t >= NW + 2 || c / 8 >= S.bits_cap)
		TEST_FAIL("free_value(%#" PRIx64 "): not a value of this test", v);
	unsigned char bit = (unsigned char)(1u << (c % 8));
	unsigned char old = atomic_fetch_or((_Atomic unsigned char *)&S.freed_bits[t][c / 8], bit);
	if (old & bit)
		TEST_FAIL("free_value(%#" PRIx64 "): freed twice", v);
	atomic_fetch_add(&S.freed, 1);
}

static uint64_t new_val(struct worker *w)
{
	if (test_rng_below(&w->rng, 32) == 0)
		return 0; /* NULL: a real value */
	return ((uint64_t)(w->id + 1) << 40) | ++w->ctr;
}

#define VP(x) ((void *)(uintptr_t)(x))
#define PV(x) ((uint64_t)(uintptr_t)(x))

static void one_op(struct worker *w)
{
	int k = (int)test_rng_below(&w->rng, (uint64_t)S.nk);
	const void *key = S.key[k];
	size_t kl = S.klen[k];
	struct lop o = {0};
	o.thread = (uint16_t)w->id;
	void *out = NULL;
	uint64_t r = test_rng_below(&w->rng, 1000);
	if (S.v >= V_CLEAR && r < 3) {
		o.kind = L_CLEAR;
		o.inv = tick();
		syncmap_clear(S.m);
		o.resp = tick();
		rec_push(w, 0xff, &o);
		return;
	}
	r = test_rng_below(&w->rng, 100);
	/* a value to compare with: mostly the last one seen */
	uint64_t cmp = test_rng_below(&w->rng, 10) < 7 ? w->known[k]
		       : test_rng_below(&w->rng, 2) ? 0
						    : ((uint64_t)(test_rng_below(&w->rng, NW) + 1) << 40) | 1;
	if (r < 25) {
		o.kind = L_LOAD;
		o.inv = tick();
		o.res = syncmap_load(S.m, key, kl, &out);
		o.resp = tick();
	} else if (r < 37) {
		o.kind = L_STORE;
		o.a = new_val(w);
		o.inv = tick();
		ASSERT_EQ(syncmap_store(S.m, key, kl, VP(o.a)), 0);
		o.resp = tick();
		entered(w, o.a);
	} else if (r < 47) {
		o.kind = L_LOS;
		o.a = new_val(w);
		o.inv = tick();
		int ret = syncmap_load_or_store(S.m, key, kl, VP(o.a), &out);
		o.resp = tick();
		ASSERT(ret == 0 || ret == 1);
		o.res = (uint8_t)ret;
		if (ret == 0) {
			if (PV(out) != o.a)
				TEST_FAIL("load_or_store stored but *actual = %p", out);
			entered(w, o.a);
		} else {
			reject(w, o.a);
		}
	} else if (r < 55) {
		o.kind = L_LAD;
		o.inv = tick();
		o.res = syncmap_load_and_delete(S.m, key, kl, &out);
		o.resp = tick();
	} else if (r < 61) {
		o.kind = L_DELETE;
		o.inv = tick();
		syncmap_delete(S.m, key, kl);
		o.resp = tick();
	} else if (r < 71) {
		o.kind = L_SWAP;
		o.a = new_val(w);
		o.inv = tick();
		int ret = syncmap_swap(S.m, key, kl, VP(o.a), &out);
		o.resp = tick();
		ASSERT(ret == 0 || ret == 1);
		o.res = (uint8_t)ret;
		entered(w, o.a);
	} else if (r < 88) {
		o.kind = L_CAS;
		o.a = cmp;
		o.b = new_val(w);
		o.inv = tick();
		o.res = syncmap_compare_and_swap(S.m, key, kl, VP(o.a), VP(o.b)) == 1;
		o.resp = tick();
		if (o.res)
			entered(w, o.b);
		else
			reject(w, o.b);
	} else {
		o.kind = L_CAD;
		o.a = cmp;
		o.inv = tick();
		o.res = syncmap_compare_and_delete(S.m, key, kl, VP(o.a));
		o.resp = tick();
	}
	o.out = o.res ? PV(out) : 0;
	/* what this thread now believes the key holds */
	switch (o.kind) {
	case L_LOAD:
	case L_LAD:
		if (o.res)
			w->known[k] = o.out;
		break;
	case L_STORE:
	case L_SWAP:
		w->known[k] = o.a;
		break;
	case L_LOS:
		w->known[k] = o.res ? o.out : o.a;
		break;
	case L_CAS:
		if (o.res)
			w->known[k] = o.b;
		break;
	default:
		break;
	}
	rec_push(w, (uint8_t)k, &o);
}

struct visit_ctx {
	struct worker *w;
	uint64_t inv;
	bool seen[MAXK];
	uint64_t val[MAXK];
};

static bool visit_fn(const void *key, size_t klen, void *val, void *ctx)
{
	struct visit_ctx *c = ctx;
	for (int k = 0; k < S.nk; k++)
		if (klen == S.klen[k] && memcmp(key, S.key[k], klen) == 0) {
			if (c->seen[k])
				TEST_FAIL("range visited key %s twice", S.key[k]);
			c->seen[k] = true;
			c->val[k] = PV(val);
		}
	return true;
}

static void range_round(struct worker *w)
{
	for (int j = 0; j < S.nranges; j++) {
		struct visit_ctx c;
		memset(&c, 0, sizeof(c));
		c.w = w;
		uint64_t inv = tick();
		syncmap_range(S.m, visit_fn, &c);
		uint64_t resp = tick();
		for (int k = 0; k < S.nk; k++)
			if (c.seen[k]) {
				struct lop o = {inv, resp, 0, 0, c.val[k], (uint16_t)w->id, L_VISIT, 1};
				rec_push(w, (uint8_t)k, &o);
			}
		for (int y = (int)test_rng_below(&w->rng, 4); y > 0; y--)
			sched_yield();
	}
}

static void noise_round(struct worker *w)
{
	char k[32];
	for (int j = 0; j < S.noise_ops; j++) {
		uint64_t r = test_rng_below(&w->rng, 10);
		if (r < 4) {
			/* a new key: starts a dirty build after a promotion */
			int l = snprintf(k, sizeof(k), "noise-%" PRIu64, w->ctr++);
			/* (another worker's noise key may hold NULL already:
			 * storing the same pointer again keeps it, nothing is
			 * freed, so it does not count as entering) */
			void *prev = VP(1);
			int ret = syncmap_swap(S.m, k, (size_t)l, VP(0), &prev);
			ASSERT(ret == 0 || ret == 1);
			if (!(ret == 1 && prev == VP(0)))
				entered(w, 0);
		} else if (r < 7 && w->ctr > 0) {
			int l = snprintf(k, sizeof(k), "noise-%" PRIu64, test_rng_below(&w->rng, w->ctr));
			syncmap_delete(S.m, k, (size_t)l);
		} else if (w->ctr > 0) {
			int l = snprintf(k, sizeof(k), "noise-%" PRIu64, w->ctr - 1 - test_rng_below(&w->rng, 8 < w->ctr ? 8 : w->ctr));
			(void)syncmap_load(S.m, k, (size_t)l, NULL); /* misses: promotions */
		}
		if (test_rng_below(&w->rng, 8) == 0)
			sched_yield();
	}
	/* keep the noise key space bounded: delete old ones */
	if (w->ctr > 4000)
		for (uint64_t c = w->ctr - 4000; c < w->ctr - 3000; c++) {
			int l = snprintf(k, sizeof(k), "noise-%" PRIu64, c);
			syncmap_delete(S.m, k, (size_t)l);
		}
}

/* Rounds: threads sleep on a condition variable between rounds (so the
 * running ones get the cores), then meet at a spinning start line so the
 * bursts really overlap. */
static pthread_mutex_t round_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t round_cv = PTHREAD_COND_INITIALIZER;
static atomic_int arrived;

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	int my_gen = 0;
	for (;;) {
		pthread_mutex_lock(&round_mu);
		while (atomic_load(&S.gen) == my_gen && !atomic_load(&S.quit))
			pthread_cond_wait(&round_cv, &round_mu);
		pthread_mutex_unlock(&round_mu);
		if (atomic_load(&S.quit))
			return NULL;
		my_gen = atomic_load(&S.gen);
		atomic_fetch_add(&arrived, 1);
		while (atomic_load(&arrived) < NW + 2)
			sched_yield();
		if (w->id < NW) {
			for (int j = 0; j < S.ops; j++) {
				uint64_t y = test_rng_below(&w->rng, 8);
				if (y == 0)
					sched_yield();
				else if (y == 1)
					for (volatile int s = (int)test_rng_below(&w->rng, 200); s > 0; s--)
						;
				one_op(w);
			}
		} else if (w->id == NW) {
			if (S.v >= V_PROMOTE)
				range_round(w);
		} else {
			if (S.v >= V_PROMOTE)
				noise_round(w);
		}
		atomic_fetch_add(&S.done, 1);
	}
}

/* ---- checking ------------------------------------------------------------------- */

static uint64_t explored_total, overlapped, total_ops;
static bool parallel;

static void check_round(long round, struct lstate *init)
{
	static struct lop *ops;
	static size_t cap;
	for (int k = 0; k < S.nk; k++) {
		size_t n = 0;
		for (int t = 0; t < NW + 2; t++)
			for (size_t j = 0; j < W[t].nlog; j++) {
				const struct rec *rc = &W[t].log[j];
				if (rc->key != k && rc->key != 0xff)
					continue;
				if (n == cap) {
					cap = cap ? 2 * cap : 4096;
					ops = realloc(ops, cap * sizeof(*ops));
					ASSERT(ops != NULL);
				}
				ops[n++] = rc->op;
			}
		/* the final state, read when every thread was done */
		struct lop fin = {0};
		void *out = NULL;
		fin.thread = MAIN_TID;
		fin.kind = L_LOAD;
		fin.inv = tick();
		fin.res = syncmap_load(S.m, S.key[k], S.klen[k], &out);
		fin.resp = tick();
		fin.out = fin.res ? PV(out) : 0;
		if (n == cap) {
			cap *= 2;
			ops = realloc(ops, cap * sizeof(*ops));
			ASSERT(ops != NULL);
		}
		ops[n++] = fin;
		/* how concurrent was it: ops overlapping an op of another thread */
		qsort(ops, n, sizeof(*ops), lin_op_cmp_inv);
		for (size_t i = 0; i < n; i++) {
			for (size_t j = i + 1; j < n && ops[j].inv < ops[i].resp; j++)
				if (ops[j].thread != ops[i].thread) {
					overlapped++;
					break;
				}
		}
		total_ops += n;
		if (!lin_check(ops, n, init[k], &explored_total)) {
			fprintf(stderr, "NOT LINEARIZABLE: variant %s, round %ld, key \"%s\" (%zu ops):\n",
				variant_name[S.v], round, S.key[k], n);
			lin_print(stderr, ops, n, init[k]);
			TEST_FAIL("history of key \"%s\" is not linearizable (printed above)", S.key[k]);
		}
		init[k] = (struct lstate){fin.res, fin.out};
	}
	for (int t = 0; t < NW + 2; t++)
		W[t].nlog = 0;
}

static void set_keys(long round, bool fresh)
{
	for (int k = 0; k < S.nk; k++) {
		/* lengths 2..~30: inline and heap-copied keys */
		int l = fresh ? snprintf(S.key[k], sizeof(S.key[k]), "r%ld-k%d", round, k)
			      : snprintf(S.key[k], sizeof(S.key[k]), "k%d", k);
		int pad = (k * 7) % 24;
		for (int p = 0; p < pad && l < 46; p++)
			S.key[k][l++] = (char)('a' + (k + p) % 26);
		S.key[k][l] = 0;
		S.klen[k] = (size_t)l;
	}
}

static void run_variant(enum variant v, uint64_t seed)
{
	memset(W, 0, sizeof(W));
	S.v = v;
	S.nk = v == V_SNAPSHOT ? 4 : 6;
	S.ops = 300;
	S.nranges = 6;
	S.noise_ops = 120;
	long rounds = scaled(v == V_BOXED ? 250 : 300, 40);
	atomic_store(&S.freed, 0);
	atomic_store(&S.null_freed, 0);
	if (v == V_BOXED) {
		S.bits_cap = (size_t)(rounds * (S.ops + S.noise_ops) / 8 + 1024);
		for (int t = 0; t < NW + 2; t++) {
			S.freed_bits[t] = calloc(S.bits_cap, 1);
			ASSERT(S.freed_bits[t] != NULL);
		}
	}
	struct syncmap_options o = {.free_value = v == V_BOXED ? free_id : NULL, .free_ctx = NULL, .seed = 0, .shards = test_shards()};
	S.m = syncmap_new(&o);
	ASSERT(S.m != NULL);
	struct lstate init[MAXK];
	memset(init, 0, sizeof(init));
	set_keys(0, false);
	if (v == V_SNAPSHOT) {
		/* every key in the read snapshot, for good */
		for (int k = 0; k < S.nk; k++) {
			ASSERT_EQ(syncmap_store(S.m, S.key[k], S.klen[k], VP(0)), 0);
			init[k] = (struct lstate){true, 0};
		}
		long n = 0;
		syncmap_range(S.m, range_count_fn, &n);
		ASSERT_EQ(n, S.nk);
	}
	struct syncmap_stats st0, st1;
	syncmap_stats(S.m, &st0);

	for (int t = 0; t < NW + 2; t++) {
		W[t].id = t;
		test_rng_init(&W[t].rng, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)t * 7919 + (uint64_t)v * 104729 + 1);
	}
	/* the noise thread's own value counter doubles as its key counter:
	 * it writes NULL only, so this does not collide with value ids */
	atomic_store(&S.gen, 0);
	atomic_store(&S.quit, 0);
	pthread_t th[NW + 2];
	for (int t = 0; t < NW + 2; t++)
		ASSERT_EQ(pthread_create(&th[t], NULL, thread_main, &W[t]), 0);
	double t0 = now_sec();
	for (long round = 1; round <= rounds; round++) {
		if (v == V_FRESH) {
			set_keys(round, true);
			memset(init, 0, sizeof(init));
		}
		atomic_store(&S.done, 0);
		atomic_store(&arrived, 0);
		pthread_mutex_lock(&round_mu);
		atomic_fetch_add(&S.gen, 1);
		pthread_cond_broadcast(&round_cv);
		pthread_mutex_unlock(&round_mu);
		while (atomic_load(&S.done) != NW + 2)
			sleep_ms(0), sched_yield();
		check_round(round, init);
	}
	pthread_mutex_lock(&round_mu);
	atomic_store(&S.quit, 1);
	pthread_cond_broadcast(&round_cv);
	pthread_mutex_unlock(&round_mu);
	for (int t = 0; t < NW + 2; t++)
		ASSERT_EQ(pthread_join(th[t], NULL), 0);
	syncmap_stats(S.m, &st1);
	printf("%-8s: %ld rounds x %d threads x %d ops on %d keys in %.2fs; promotions %" PRIu64
	       ", locked ops %" PRIu64 ", misses %" PRIu64 "; %.1f%% of ops overlap another thread's on the same key\n",
	       variant_name[v], rounds, NW, S.ops, S.nk, now_sec() - t0, st1.promotions - st0.promotions,
	       st1.locked_ops - st0.locked_ops, st1.misses - st0.misses, 100.0 * (double)overlapped / (double)total_ops);
	/* Not vacuous: operations did overlap.  How many depends on how much
	 * of the 2 cores this process gets: on a loaded machine only
	 * preemption inside an operation makes overlap, so it is asserted
	 * only when the probe saw two cores at work. */
	/* Asserted only if the machine still gives us two cores now (a probe
	 * after the variant as well as before the test): on a busy machine
	 * overlap comes from preemption alone.  0.25%: thousands of
	 * overlapping pairs per variant. */
	if (parallel && parallelism_probe() > 0.05)
		ASSERT_GT(overlapped * 400, total_ops);
	overlapped = total_ops = 0;
	if (v == V_SNAPSHOT)
		ASSERT_EQ(st1.locked_ops, st0.locked_ops); /* lock-free paths only */
	else
		ASSERT_GT(st1.promotions, st0.promotions + (uint64_t)rounds / 4);

	if (v == V_BOXED) {
		long stored = 0, null_stored = 0;
		for (int t = 0; t < NW + 2; t++) {
			stored += W[t].stored;
			null_stored += W[t].null_stored;
		}
		syncmap_free(S.m);
		ASSERT_EQ(atomic_load(&S.freed), stored);
		/* NULL stored over NULL stays (the same pointer: nothing leaves),
		 * and a plain store cannot tell the worker that it did; every
		 * other value is unique, so only NULL is counted loosely. */
		ASSERT(atomic_load(&S.null_freed) <= null_stored);
		for (int t = 0; t < NW + 2; t++)
			for (size_t j = 0; j < W[t].nrejected; j++) {
				uint64_t x = W[t].rejected[j], tt = (x >> 40) - 1, c = x & ((1ULL << 40) - 1);
				if (S.freed_bits[tt][c / 8] & (1u << (c % 8)))
					TEST_FAIL("value %#" PRIx64 " was offered and not taken, yet freed", x);
			}
		for (int t = 0; t < NW + 2; t++)
			free(S.freed_bits[t]);
		printf("          %ld values (+%ld NULL) entered the map, each freed exactly once\n", stored,
		       null_stored);
	} else {
		syncmap_free(S.m);
	}
	for (int t = 0; t < NW + 2; t++) {
		free(W[t].log);
		free(W[t].rejected);
	}
	S.m = NULL;
}

/* The checker must be able to say no. */
static void self_test(void)
{
	struct lstate absent = {false, 0};
	struct lop ok1[] = {
		{1, 4, 7, 0, 0, 1, L_STORE, 0},
		{2, 3, 0, 0, 7, 2, L_LOAD, 1}, /* overlaps the store: may see it */
		{5, 6, 0, 0, 0, 2, L_LOAD, 1},
	};
	ok1[2].out = 7;
	ASSERT_TRUE(lin_check(ok1, 3, absent, NULL));
	struct lop bad1[] = {
		{1, 2, 7, 0, 0, 1, L_STORE, 0},
		{3, 4, 0, 0, 0, 2, L_LOAD, 0}, /* after the store returned: must see it */
	};
	ASSERT_FALSE(lin_check(bad1, 2, absent, NULL));
	struct lop bad2[] = {
		{1, 10, 7, 0, 0, 1, L_STORE, 0},
		{2, 3, 0, 0, 7, 2, L_LOAD, 1}, /* saw 7 ... */
		{4, 5, 0, 0, 0, 3, L_LOAD, 0}, /* ... then absent again: no */
	};
	ASSERT_FALSE(lin_check(bad2, 3, absent, NULL));
	struct lop bad3[] = {
		/* two CAS(7 -> x) both succeeding on one 7 */
		{1, 10, 7, 0, 0, 1, L_STORE, 0},
		{11, 20, 7, 8, 0, 2, L_CAS, 1},
		{12, 21, 7, 9, 0, 3, L_CAS, 1},
	};
	ASSERT_FALSE(lin_check(bad3, 3, absent, NULL));
	bad3[2].res = 0;
	ASSERT_TRUE(lin_check(bad3, 3, absent, NULL));
	struct lop bad4[] = {
		/* load_and_delete twice returning the same value */
		{1, 2, 5, 0, 0, 1, L_STORE, 0},
		{3, 10, 0, 0, 5, 2, L_LAD, 1},
		{4, 11, 0, 0, 5, 3, L_LAD, 1},
	};
	ASSERT_FALSE(lin_check(bad4, 3, absent, NULL));
}

int main(void)
{
	uint64_t seed = test_begin();
	self_test();
	double par = parallelism_probe();
	parallel = par > 0.05;
	printf("parallelism probe: %.1f%% of spins overlapped%s\n", 100 * par,
	       parallel ? "" : " (the other core is busy: overlap will not be asserted)");
	watchdog(900, "linearizability rounds");
	for (int v = 0; v < V_N; v++)
		run_variant((enum variant)v, seed);
	printf("search steps: %" PRIu64 "\nok\n", explored_total);
	return 0;
}
