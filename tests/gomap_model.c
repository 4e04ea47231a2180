/*
 * gomap_model.c - randomized differential test: millions of mixed
 * operations on a gomap and on the reference map (refmap.h), compared after
 * every operation, with full comparisons (lookups, one iteration, the
 * private invariants) along the way.
 *
 * Two maps are driven:
 *   - random seed, keys of every length (0..24 mostly, some 25..40, a few
 *     100..300 bytes);
 *   - fixed seed, with part of the keys drawn from a pool that collides in
 *     the low 6 bits of the hash, so chains get long and same-size grows
 *     happen.
 * Phases grow the map to tens of thousands of keys, churn, and shrink it
 * back, so doubling, same-size grow and shrink all run many times.
 *
 * SEED=... reproduces a run; TEST_SCALE scales the operation count.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <time.h>

#include "gomap_impl.h"
#include "refmap.h"
#include "gomap_invariants.h"
#include "testutil.h"

static struct test_rng rng;

#define V(x) ((void *)(uintptr_t)(x))

/* Key bytes for an id: the length and the bytes are functions of the id.
 * Short keys repeat across ids (there are only so many of them), which is
 * what we want: many operations hit existing keys. */
static size_t key_of(uint64_t id, unsigned char *buf)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ULL;
	h ^= h >> 31;
	unsigned sel = (unsigned)(h % 100);
	size_t len;
	if (sel < 70)
		len = (size_t)(h >> 8) % 25;
	else if (sel < 95)
		len = 25 + (size_t)(h >> 8) % 16;
	else
		len = 100 + (size_t)(h >> 8) % 201;
	for (size_t i = 0; i < len; i++)
		buf[i] = i < 8 ? (unsigned char)(id >> (8 * i)) : (unsigned char)(h >> (8 * (i % 8)) ^ i);
	return len;
}

struct model {
	struct gomap *m;
	struct refmap ref;
	const char *name;
	bool colliding;         /* draw some keys from the collision pool */
	uint64_t *pool;         /* 8-byte keys colliding under the map's seed */
	size_t npool;
	uint64_t ops, puts, dels, gets, clears, checks;
	size_t max_len;
};

static void model_check_work(const struct model *md)
{
	struct gomap_work w;
	gomap_work(md->m, &w);
	if (w.last_evacuated > GOMAP_MAX_EVACUATE_PER_OP || w.last_skipped > GOMAP_MAX_SKIP_PER_OP)
		TEST_FAIL("%s: an operation evacuated %zu, skipped %zu", md->name, w.last_evacuated,
			  w.last_skipped);
}

static void full_check(struct model *md)
{
	ref_check_equal(md->m, &md->ref);
	gomap_check_invariants(md->m);
	md->checks++;
}

/* Pick a key: from the id space [0, range), or from the collision pool. */
static size_t pick_key(struct model *md, uint64_t range, unsigned char *buf)
{
	if (md->colliding && test_rng_below(&rng, 100) < 30) {
		uint64_t k = md->pool[test_rng_below(&rng, md->npool)];
		memcpy(buf, &k, 8);
		return 8;
	}
	return key_of(test_rng_below(&rng, range), buf);
}

/* Copy of a random present key (for delete/get of present keys). */
static bool pick_present(struct model *md, unsigned char *buf, size_t *kl)
{
	if (md->ref.count == 0)
		return false;
	for (;;) {
		struct ref_entry *e = &md->ref.e[test_rng_below(&rng, md->ref.cap)];
		if (e->state == REF_USED) {
			if (e->klen)
				memcpy(buf, e->key, e->klen);
			*kl = e->klen;
			return true;
		}
	}
}

static void op_put(struct model *md, const unsigned char *k, size_t kl)
{
	void *v = test_rng_below(&rng, 16) ? V(md->ops * 4 + 1) : NULL;
	int rc = gomap_put(md->m, k, kl, v);
	if (rc != 0)
		TEST_FAIL("%s op %" PRIu64 ": put returned %d", md->name, md->ops, rc);
	ref_put(&md->ref, k, kl, v, NULL);
	md->puts++;
}

static void op_del(struct model *md, const unsigned char *k, size_t kl)
{
	void *a = V(3), *b = V(3);
	bool x = gomap_delete(md->m, k, kl, &a);
	bool y = ref_del(&md->ref, k, kl, &b);
	if (x != y || a != b)
		TEST_FAIL("%s op %" PRIu64 ": delete (key length %zu) returned %d/%p, reference %d/%p", md->name,
			  md->ops, kl, x, a, y, b);
	md->dels++;
}

static void op_get(struct model *md, const unsigned char *k, size_t kl)
{
	void *a = V(5);
	bool x = gomap_get(md->m, k, kl, &a);
	struct ref_entry *e = ref_find(&md->ref, k, kl);
	if (x != (e != NULL) || (e && a != e->val) || (!e && a != V(5)))
		TEST_FAIL("%s op %" PRIu64 ": get (key length %zu) returned %d/%p, reference %d/%p", md->name,
			  md->ops, kl, x, a, e != NULL, e ? e->val : NULL);
	md->gets++;
}

/*
 * One phase: `n` operations with the key space [0, range) and the given
 * percentages of puts and deletes (the rest are gets).  Half of the deletes
 * and gets target present keys, half random ids (mostly absent).
 */
static void phase(struct model *md, uint64_t n, uint64_t range, unsigned pct_put, unsigned pct_del)
{
	unsigned char buf[512];
	size_t kl;
	for (uint64_t i = 0; i < n; i++, md->ops++) {
		unsigned x = (unsigned)test_rng_below(&rng, 100);
		if (x < pct_put) {
			if (test_rng_below(&rng, 4) == 0 && pick_present(md, buf, &kl))
				op_put(md, buf, kl); /* update */
			else {
				kl = pick_key(md, range, buf);
				op_put(md, buf, kl);
			}
		} else if (x < pct_put + pct_del) {
			if (test_rng_below(&rng, 2) && pick_present(md, buf, &kl))
				op_del(md, buf, kl);
			else {
				kl = pick_key(md, range, buf);
				op_del(md, buf, kl);
			}
		} else {
			if (test_rng_below(&rng, 2) && pick_present(md, buf, &kl))
				op_get(md, buf, kl);
			else {
				kl = pick_key(md, range, buf);
				op_get(md, buf, kl);
			}
		}
		if (gomap_len(md->m) != md->ref.count)
			TEST_FAIL("%s op %" PRIu64 ": len %zu, reference %zu", md->name, md->ops, gomap_len(md->m),
				  md->ref.count);
		model_check_work(md);
		if (md->ref.count > md->max_len)
			md->max_len = md->ref.count;
		if (test_rng_below(&rng, 400000) == 0) {
			gomap_clear(md->m);
			ref_clear(&md->ref);
			md->clears++;
		}
		/* Full comparisons: cheap while small, every 100k ops otherwise. */
		if ((md->ref.count < 64 && test_rng_below(&rng, 64) == 0) || md->ops % 100000 == 0)
			full_check(md);
	}
}

/*
 * Collision storm (fixed-seed map only): pick a bucket of the current
 * array, insert 24 keys that all hash to it (two overflow buckets), delete
 * them again (the count is back where it was, the chain stays), move on
 * to another bucket.  Overflow buckets are only
 * reclaimed by rewriting the array, so this is what makes a map start a
 * same-size grow.  Returns the operations done.
 */
static uint64_t storm(struct model *md, unsigned rounds)
{
	uint64_t seed = md->m->hash0, done = 0;
	static uint64_t next = 1;
	unsigned char buf[512];
	size_t kl;
	/* Settle first: finish an evacuation in progress (updates do the work)
	 * and fill to 4 keys per bucket, so that the +-24 keys of a round start
	 * neither a doubling nor a shrink. */
	while (md->m->oldbuckets && pick_present(md, buf, &kl)) {
		op_put(md, buf, kl);
		md->ops++, done++;
	}
	while (md->ref.count < 4 * bucketShift(md->m->B)) {
		kl = key_of((1ull << 40) + test_rng_below(&rng, 1ull << 40), buf);
		op_put(md, buf, kl);
		md->ops++, done++;
	}
	for (unsigned r = 0; r < rounds; r++) {
		uint64_t mask = bucketMask(md->m->B);
		uint64_t target = test_rng_next(&rng) & mask, keys[24];
		gm_find_colliding(seed, mask, target, 24, keys, &next);
		for (int i = 0; i < 24; i++, md->ops++, done++) {
			op_put(md, (const unsigned char *)&keys[i], 8);
			model_check_work(md);
		}
		for (int i = 0; i < 24; i++, md->ops++, done++) {
			op_del(md, (const unsigned char *)&keys[i], 8);
			model_check_work(md);
		}
		if (gomap_len(md->m) != md->ref.count)
			TEST_FAIL("%s: len %zu, reference %zu", md->name, gomap_len(md->m), md->ref.count);
	}
	return done;
}

static void run_model(struct model *md, uint64_t total)
{
	uint64_t done = 0;
	for (unsigned cycle = 0; done < total; cycle++) {
		/* Grow towards a target (1e3..6e4 keys, every other cycle a small
		 * one, 100..3e3), churn, shrink to a few. */
		uint64_t target = cycle % 2 ? 1000 + test_rng_below(&rng, 60000) : 100 + test_rng_below(&rng, 3000);
		if (target > total / 40 + 100) /* a cycle is ~6 * target ops: have several */
			target = total / 40 + 100;
		uint64_t range = target * 2;
		uint64_t n = target * 2;
		if (n > total - done)
			n = total - done;
		phase(md, n, range, 75, 10);
		done += n;
		full_check(md);
		if (done >= total)
			break;
		n = target;
		if (n > total - done)
			n = total - done;
		phase(md, n, range, 40, 40); /* churn */
		done += n;
		if (md->colliding && md->m->B >= 4 && md->m->B <= 9) {
			done += storm(md, (1u << md->m->B) + 8);
			full_check(md);
		}
		if (done >= total)
			break;
		n = target * 3;
		if (n > total - done)
			n = total - done;
		phase(md, n, range, 10, 70); /* shrink */
		done += n;
		full_check(md);
		if (md->colliding && md->m->B >= 4 && md->m->B <= 9) {
			done += storm(md, (1u << md->m->B) + 8);
			full_check(md);
		}
	}
	full_check(md);
}

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_rng_init(&rng, test_seed());
	double ops = 2.5e6 * test_scale();
	uint64_t total = ops < 10000 ? 10000 : (uint64_t)ops;

	struct model a = {.name = "random seed"};
	struct gomap_options oa = {.seed = 0, .hint = 0};
	a.m = gomap_new(&oa);
	ASSERT(a.m != NULL);
	ref_init(&a.ref);

	struct model b = {.name = "fixed seed + collisions", .colliding = true};
	struct gomap_options ob = {.seed = test_rng_next(&rng) | 1, .hint = 0};
	b.m = gomap_new(&ob);
	ASSERT(b.m != NULL);
	ref_init(&b.ref);
	b.npool = 4096;
	b.pool = malloc(b.npool * sizeof(uint64_t));
	ASSERT(b.pool != NULL);
	uint64_t next = test_rng_next(&rng);
	gm_find_colliding(ob.seed, 63, 0, b.npool, b.pool, &next);

	struct model *ms[2] = {&a, &b};
	for (int i = 0; i < 2; i++) {
		struct model *md = ms[i];
		double t0 = now_sec();
		run_model(md, total * (i == 0 ? 6 : 4) / 10);
		struct gomap_work w;
		gomap_work(md->m, &w);
		printf("%s: %" PRIu64 " ops (%" PRIu64 " puts, %" PRIu64 " deletes, %" PRIu64 " gets, %" PRIu64
		       " clears, %" PRIu64 " full checks), max %zu keys; grows %zu, same-size grows %zu, shrinks "
		       "%zu, max evacuated/op %zu, max skipped/op %zu (%.2fs)\n",
		       md->name, md->ops, md->puts, md->dels, md->gets, md->clears, md->checks, md->max_len, w.grows,
		       w.same_size_grows, w.shrinks, w.max_evacuated, w.max_skipped, now_sec() - t0);
		fflush(stdout);
		/* The driver really reached every kind of evacuation. */
		ASSERT_GT(w.grows, 5);
		ASSERT_GT(w.shrinks, 5);
		if (md->colliding)
			ASSERT_GT(w.same_size_grows, 0);
		gomap_free(md->m);
		ref_destroy(&md->ref);
	}
	free(b.pool);
	printf("gomap model test passed\n");
	return 0;
}
