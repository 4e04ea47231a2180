/*
 * gomap_fault.c - every allocation gomap makes, made to fail once.
 *
 * A fixed sequence of operations (map creation with and without a hint,
 * puts of short and long keys, updates, deletes, gets, clears) drives the
 * map through lazy allocation, doubling, overflow chunks, a same-size grow
 * (colliding keys under the fixed seed), shrinking and clear.  A dry run
 * counts its allocations (T).  Then, for every N in 1..T, the sequence is
 * replayed on fresh maps with the N-th allocation failing:
 *   - an operation that reports -ENOMEM (or gomap_new returning NULL with
 *     errno ENOMEM) leaves the map exactly as it was: the reference is not
 *     updated, and the map is compared with it in full (every key and
 *     value, len, one complete iteration, the private invariants, the
 *     writer flag);
 *   - an operation during which the failure happened but which succeeded
 *     anyway (deletes never fail; the extra evacuation a put does, the
 *     shrink a delete starts and clear's fresh array are optional) is
 *     checked in full as well;
 *   - later operations work normally, the final state equals the
 *     reference, and the failure really happened (syncmap__fault_fired()).
 * ASAN/LSAN builds also check that no failure path leaks.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <time.h>

#include "alloc.h"
#include "gomap_impl.h"
#include "refmap.h"
#include "gomap_invariants.h"
#include "testutil.h"

#define V(x) ((void *)(uintptr_t)(x))

enum op_kind { OP_NEW, OP_PUT, OP_DEL, OP_GET, OP_CLEAR };

struct op {
	uint8_t kind;
	uint8_t klen;
	size_t hint; /* OP_NEW */
	void *val;
	unsigned char key[64];
};

static struct op *seq;
static size_t nseq, capseq;
static const uint64_t SEED = 0x243f6a8885a308d3ULL; /* the maps' fixed hash seed */

static struct op *push(enum op_kind kind)
{
	if (nseq == capseq) {
		capseq = capseq ? capseq * 2 : 1024;
		seq = realloc(seq, capseq * sizeof(*seq));
		ASSERT(seq != NULL);
	}
	struct op *o = &seq[nseq++];
	memset(o, 0, sizeof(*o));
	o->kind = (uint8_t)kind;
	return o;
}

/* ---- building the sequence (applied to a generator map as we go, so
 * colliding keys can be chosen against the map's size at that point) ---- */

static struct gomap *gen;
static struct test_rng grng;
static uint64_t gval = 1;

static void g_new(size_t hint)
{
	struct op *o = push(OP_NEW);
	o->hint = hint;
	gomap_free(gen);
	struct gomap_options opt = {.seed = SEED, .hint = hint};
	gen = gomap_new(&opt);
	ASSERT(gen != NULL);
}

static void g_put(const void *k, size_t kl)
{
	struct op *o = push(OP_PUT);
	ASSERT_LE(kl, sizeof o->key);
	memcpy(o->key, k, kl);
	o->klen = (uint8_t)kl;
	o->val = V(gval++);
	ASSERT_EQ(gomap_put(gen, k, kl, o->val), 0);
}

static void g_del(const void *k, size_t kl)
{
	struct op *o = push(OP_DEL);
	memcpy(o->key, k, kl);
	o->klen = (uint8_t)kl;
	gomap_delete(gen, k, kl, NULL);
}

static void g_get(const void *k, size_t kl)
{
	struct op *o = push(OP_GET);
	memcpy(o->key, k, kl);
	o->klen = (uint8_t)kl;
}

static void g_clear(void)
{
	push(OP_CLEAR);
	gomap_clear(gen);
}

/* Key i of a family: short (inline) or long (one heap block each). */
static size_t gkey(unsigned fam, unsigned i, unsigned char *buf)
{
	size_t len = (i % 3 == 0) ? 9 + (i * 7 + fam) % 50 : (i * 5 + fam) % 9;
	uint64_t x = ((uint64_t)fam << 32 | i) * 0x9E3779B97F4A7C15ULL;
	for (size_t j = 0; j < len; j++)
		buf[j] = (unsigned char)(x >> (8 * (j % 8))) ^ (unsigned char)j;
	if (len >= 2) {
		buf[0] = (unsigned char)i;
		buf[1] = (unsigned char)(i >> 8);
	}
	return len;
}

static void build_sequence(void)
{
	unsigned char k[64];
	size_t kl;
	test_rng_init(&grng, 12345);

	/* Map 1: presized (B = 2, a floor), grown to B = 6. */
	g_new(20);
	for (unsigned i = 0; i < 320; i++) {
		kl = gkey(1, i, k);
		g_put(k, kl);
		if (i % 5 == 0) { /* updates, some during growth */
			kl = gkey(1, (unsigned)test_rng_below(&grng, i + 1), k);
			g_put(k, kl);
		}
		if (i % 7 == 0) {
			kl = gkey(1, (unsigned)test_rng_below(&grng, i + 1), k);
			g_get(k, kl);
		}
		if (i % 11 == 0) {
			kl = gkey(1, (unsigned)test_rng_below(&grng, i + 1), k);
			g_del(k, kl);
		}
	}
	/* Same-size grow: in bucket after bucket, 24 colliding keys (two
	 * overflow buckets), 20 of them deleted again. */
	uint64_t next = 1, kept[1000];
	unsigned storms = 0;
	while (gen->work.same_size_grows == 0) {
		uint64_t mask = bucketMask(gen->B), keys[24];
		gm_find_colliding(SEED, mask, test_rng_next(&grng) & mask, 24, keys, &next);
		for (int i = 0; i < 24; i++)
			g_put(&keys[i], 8);
		for (int i = 0; i < 23; i++)
			g_del(&keys[i], 8);
		kept[storms] = keys[23];
		ASSERT_LT(++storms, 1000);
	}
	ASSERT_EQ(gen->work.grows, 4); /* B = 2 -> 6, and not beyond */
	/* Updates and gets while it rewrites. */
	for (unsigned i = 0; i < 80; i++) {
		kl = gkey(1, (unsigned)test_rng_below(&grng, 320), k);
		g_put(k, kl);
		g_get(k, kl);
	}
	ASSERT(gen->oldbuckets == NULL);
	/* Shrink back towards the floor: delete nearly everything, with some
	 * puts in between (those do the evacuation work too). */
	for (unsigned i = 0; i < storms; i++)
		g_del(&kept[i], 8);
	for (unsigned i = 0; i < 320; i++) {
		kl = gkey(1, i, k);
		g_del(k, kl);
		if (i % 9 == 0) {
			kl = gkey(2, i, k);
			g_put(k, kl);
		}
	}
	ASSERT_GT(gen->work.shrinks, 1);
	/* Clear a presized map: a fresh array of the floor's size. */
	g_clear();
	for (unsigned i = 0; i < 60; i++) {
		kl = gkey(3, i, k);
		g_put(k, kl);
	}
	g_clear();
	g_put("x", 1);

	/* Map 2: no hint; the first put allocates the array lazily; clear
	 * frees it, so the next put allocates it again. */
	g_new(0);
	for (unsigned i = 0; i < 40; i++) {
		kl = gkey(4, i, k);
		g_put(k, kl);
	}
	g_clear();
	g_put("", 0);
	for (unsigned i = 0; i < 20; i++) {
		kl = gkey(5, i, k);
		g_put(k, kl);
	}
	for (unsigned i = 0; i < 20; i += 2) {
		kl = gkey(5, i, k);
		g_del(k, kl);
	}

	/* Map 3: an update that must fail.  At B = 2, old bucket 2 holds 12
	 * keys that all stay in X when the map doubles, so evacuating it needs
	 * an overflow bucket in the new array, which has none yet (B < 4: no
	 * preallocated ones).  The put that starts the doubling evacuates only
	 * buckets 1 and 0; the next put, an update of a key of bucket 2, is
	 * the one that allocates, and fails. */
	g_new(0);
	uint64_t b0[5], b1[6], b3[4], heavy[12];
	next = 1u << 20;
	gm_find_colliding(SEED, 7, 2, 12, heavy, &next);
	gm_find_colliding(SEED, 3, 0, 5, b0, &next);
	gm_find_colliding(SEED, 3, 1, 6, b1, &next);
	gm_find_colliding(SEED, 3, 3, 4, b3, &next);
	for (int i = 0; i < 5; i++)
		g_put(&b0[i], 8);
	for (int i = 0; i < 5; i++)
		g_put(&b1[i], 8);
	for (int i = 0; i < 4; i++)
		g_put(&b3[i], 8);
	for (int i = 0; i < 12; i++)
		g_put(&heavy[i], 8);
	ASSERT_EQ(gen->B, 2);
	ASSERT(gen->oldbuckets == NULL);
	g_put(&b1[5], 8); /* the 27th key: doubling starts */
	ASSERT(gen->oldbuckets != NULL);
	ASSERT_EQ(gen->buckets->nchunks, 0);
	ASSERT_FALSE(evacuated(&gen->oldbuckets->b[2]));
	g_put(&heavy[3], 8); /* update: evacuates bucket 2, allocates a chunk */
	ASSERT_EQ(gen->buckets->nchunks, 1);
	for (int i = 0; i < 12; i++)
		g_get(&heavy[i], 8);


	/* Map 4: a long key that needs a new overflow bucket.  B = 1 (hint 13),
	 * 8 short keys fill bucket 0; a 9th key for bucket 0, 24 bytes long,
	 * needs its key copy and then an overflow chunk: if the chunk fails,
	 * the key copy must be freed again. */
	g_new(13);
	uint64_t fill[8];
	next = 1u << 21;
	gm_find_colliding(SEED, 1, 0, 8, fill, &next);
	for (int i = 0; i < 8; i++)
		g_put(&fill[i], 8);
	unsigned char lk[24];
	memset(lk, 'L', sizeof lk);
	for (uint32_t c = 0;; c++) {
		memcpy(lk, &c, sizeof c);
		if ((sm_hash(lk, sizeof lk, SEED) & 1) == 0)
			break;
	}
	ASSERT_EQ(gen->buckets->noverflow, 0);
	g_put(lk, sizeof lk);
	ASSERT_EQ(gen->buckets->noverflow, 1);
	ASSERT_EQ(gen->B, 1);
	g_get(lk, sizeof lk);

	gomap_free(gen);
	gen = NULL;
}

/* ---- replay ------------------------------------------------------------- */

enum site {
	S_NEW,        /* gomap_new returned NULL */
	S_PUT_NEW,    /* put of a new key failed */
	S_PUT_UPDATE, /* put of an existing key failed (its evacuation) */
	S_PUT_OK,     /* the failure hit an optional allocation of a put */
	S_DEL,        /* the failure hit a delete (it must still delete) */
	S_CLEAR,      /* the failure hit clear's fresh array */
	S_GROW_STARTED, /* put failed after starting a growth */
	NSITES
};
static const char *site_names[NSITES] = {"gomap_new", "put (new key) -ENOMEM", "put (update) -ENOMEM",
					 "put succeeded anyway", "delete", "clear", "put -ENOMEM after growth started"};
static size_t site_hits[NSITES];

static void check_all(struct gomap *m, struct refmap *ref)
{
	ref_check_equal(m, ref);
	gomap_check_invariants(m);
}

/* Replay the sequence with the N-th allocation failing (N = 0: none). */
static void replay(long N)
{
	struct refmap ref;
	ref_init(&ref);
	struct gomap *m = NULL;
	if (N > 0)
		syncmap__fault_arm(N);
	bool fired_before = false;
	for (size_t i = 0; i < nseq; i++) {
		const struct op *o = &seq[i];
		struct gomap_work w0;
		gomap_work(m, &w0);
		int rc = 0;
		switch (o->kind) {
		case OP_NEW: {
			if (m)
				check_all(m, &ref);
			gomap_free(m);
			ref_clear(&ref);
			struct gomap_options opt = {.seed = SEED, .hint = o->hint};
			errno = 0;
			m = gomap_new(&opt);
			if (!m) {
				ASSERT_EQ(errno, ENOMEM);
				ASSERT_TRUE(N > 0 && syncmap__fault_fired());
				site_hits[S_NEW]++;
				m = gomap_new(&opt); /* the one failure is spent */
				ASSERT(m != NULL);
			}
			break;
		}
		case OP_PUT: {
			struct ref_entry *e = ref_find(&ref, o->key, o->klen);
			rc = gomap_put(m, o->key, o->klen, o->val);
			if (rc == -ENOMEM) {
				ASSERT_TRUE(N > 0 && syncmap__fault_fired() && !fired_before);
				struct gomap_work w1;
				gomap_work(m, &w1);
				if (w1.grows + w1.same_size_grows + w1.shrinks > w0.grows + w0.same_size_grows + w0.shrinks)
					site_hits[S_GROW_STARTED]++;
				site_hits[e ? S_PUT_UPDATE : S_PUT_NEW]++;
				/* The reference keeps the old state: compare in full. */
				check_all(m, &ref);
				void *v = V(0xbad);
				bool found = gomap_get(m, o->key, o->klen, &v);
				ASSERT_EQ(found, e != NULL);
				if (e)
					ASSERT_PTR_EQ(v, e->val);
			} else {
				ASSERT_EQ(rc, 0);
				ref_put(&ref, o->key, o->klen, o->val, NULL);
			}
			break;
		}
		case OP_DEL: {
			void *a = V(1), *b = V(1);
			bool x = gomap_delete(m, o->key, o->klen, &a);
			bool y = ref_del(&ref, o->key, o->klen, &b);
			ASSERT_EQ(x, y); /* deletes never fail */
			ASSERT_PTR_EQ(a, b);
			break;
		}
		case OP_GET: {
			void *a = V(1);
			bool x = gomap_get(m, o->key, o->klen, &a);
			struct ref_entry *e = ref_find(&ref, o->key, o->klen);
			ASSERT_EQ(x, e != NULL);
			if (e)
				ASSERT_PTR_EQ(a, e->val);
			break;
		}
		case OP_CLEAR:
			gomap_clear(m);
			ref_clear(&ref);
			break;
		}
		ASSERT_EQ(gomap_len(m), ref.count);
		bool fired = N > 0 && syncmap__fault_fired();
		if (fired && !fired_before) {
			/* This op hit the failure: whatever it returned, the map
			 * must match the reference now. */
			if (rc == 0 && o->kind == OP_PUT)
				site_hits[S_PUT_OK]++;
			else if (o->kind == OP_DEL)
				site_hits[S_DEL]++;
			else if (o->kind == OP_CLEAR)
				site_hits[S_CLEAR]++;
			check_all(m, &ref);
		}
		fired_before = fired;
	}
	check_all(m, &ref);
	if (N > 0 && !syncmap__fault_fired())
		TEST_FAIL("allocation %ld of the sequence never happened", N);
	syncmap__fault_stop();
	gomap_free(m);
	ref_destroy(&ref);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("fault test: fixed sequence, map seed %#" PRIx64 "\n", SEED);
	build_sequence();

	/* Dry run: no failure, count allocations. */
	syncmap__fault_count_start();
	replay(0);
	long T = syncmap__fault_count();
	syncmap__fault_stop();
	printf("%zu operations, %ld allocations\n", nseq, T);
	ASSERT_GT(T, 50);

	clock_t c0 = clock();
	for (long N = 1; N <= T; N++)
		replay(N);
	printf("replayed %ld times (%.2fs cpu); failures by site:\n", T, (double)(clock() - c0) / CLOCKS_PER_SEC);
	for (int s = 0; s < NSITES; s++)
		printf("  %-34s %zu\n", site_names[s], site_hits[s]);
	for (int s = 0; s < NSITES; s++)
		if (site_hits[s] == 0)
			TEST_FAIL("no failure hit site \"%s\": the sequence does not cover it", site_names[s]);
	printf("gomap fault test passed\n");
	free(seq);
	return 0;
}
