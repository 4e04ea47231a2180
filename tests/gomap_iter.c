/*
 * gomap_iter.c - gomap's iteration contract (gomap.h), checked against the
 * reference map while the map changes under the iterator:
 *   - a key present for the whole iteration is returned exactly once;
 *   - each key is returned at most once;
 *   - a key deleted before the iterator reaches it is not returned;
 *   - a key inserted during the iteration is returned at most once;
 *   - every returned key comes with its current value;
 *   - an exhausted iterator keeps returning false;
 * across doubling, same-size grow, shrink and clear, in targeted scenarios
 * and in randomized schedules of put/delete between gomap_iter_next calls.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <time.h>

#include "gomap_impl.h"
#include "refmap.h"
#include "gomap_invariants.h"
#include "testutil.h"
#include "gomap_testrun.h"

#define V(x) ((void *)(uintptr_t)(x))

static struct test_rng rng;

/* Key bytes for an id: ids below 2000 give short (inline) keys of 0..8
 * bytes, the others 9..40 byte keys (stored out of line).  Different ids may
 * give the same key; the reference is keyed by bytes, so that is fine. */
static size_t key_of(uint64_t id, unsigned char *buf)
{
	size_t len;
	if (id < 2000)
		len = id % 9;
	else
		len = 9 + id % 32;
	uint64_t x = id * 0x9E3779B97F4A7C15ULL + 1;
	for (size_t i = 0; i < len; i++) {
		if (i < 8)
			buf[i] = (unsigned char)(id >> (8 * i)); /* distinct ids, distinct long keys */
		else
			buf[i] = (unsigned char)(x >> (8 * (i % 8)));
		if (id < 2000 && i == 0)
			buf[i] = (unsigned char)(id / 9);
	}
	return len;
}

/* ---- the tracker: a map, its reference, and one iteration -------------- */

struct tracker {
	struct gomap *m;
	struct refmap ref; /* the map's contents; born = op of insertion */
	struct refmap ret; /* keys returned by the current iteration; born = op of return */
	bool fixed_seed;
	uint64_t op;
	uint64_t iter_start;
	uint64_t last_emptied; /* op at which the map last became empty */
	struct gomap_iter it;
	bool iterating;
	size_t iterations, returned, dup_after_reseed;
};

static void tr_init(struct tracker *t, uint64_t seed, size_t hint)
{
	memset(t, 0, sizeof(*t));
	struct gomap_options o = {.seed = seed, .hint = hint};
	t->m = gomap_new(&o);
	ASSERT(t->m != NULL);
	t->fixed_seed = seed != 0;
	ref_init(&t->ref);
	ref_init(&t->ret);
	t->op = 1;
}

static void tr_destroy(struct tracker *t)
{
	gomap_free(t->m);
	ref_destroy(&t->ref);
	ref_destroy(&t->ret);
}

/* Every action takes a distinct, increasing op number (t->op++), so "born
 * before", "returned before" and "emptied before" are unambiguous. */
static void tr_put(struct tracker *t, const void *k, size_t kl)
{
	uint64_t now = t->op++;
	void *v = V(now * 2 + 1);
	ASSERT_EQ(gomap_put(t->m, k, kl, v), 0);
	bool isnew;
	struct ref_entry *e = ref_put(&t->ref, k, kl, v, &isnew);
	if (isnew)
		e->born = now;
}

static void tr_put_id(struct tracker *t, uint64_t id)
{
	unsigned char buf[64];
	size_t kl = key_of(id, buf);
	tr_put(t, buf, kl);
}

static void tr_del(struct tracker *t, const void *k, size_t kl)
{
	uint64_t now = t->op++;
	void *o1 = V(7), *o2 = V(7);
	bool a = gomap_delete(t->m, k, kl, &o1);
	bool b = ref_del(&t->ref, k, kl, &o2);
	ASSERT_EQ(a, b);
	ASSERT_PTR_EQ(o1, o2);
	if (a && t->ref.count == 0)
		t->last_emptied = now;
}

static void tr_del_id(struct tracker *t, uint64_t id)
{
	unsigned char buf[64];
	size_t kl = key_of(id, buf);
	tr_del(t, buf, kl);
}

static void tr_clear(struct tracker *t)
{
	uint64_t now = t->op++;
	gomap_clear(t->m);
	ref_clear(&t->ref);
	t->last_emptied = now;
}

/* A random present key (or NULL if empty). */
static struct ref_entry *tr_random_present(struct tracker *t)
{
	if (t->ref.count == 0)
		return NULL;
	for (;;) {
		struct ref_entry *e = &t->ref.e[test_rng_below(&rng, t->ref.cap)];
		if (e->state == REF_USED)
			return e;
	}
}

static void tr_del_random(struct tracker *t)
{
	struct ref_entry *e = tr_random_present(t);
	if (!e)
		return;
	unsigned char buf[64];
	size_t kl = e->klen;
	if (kl)
		memcpy(buf, e->key, kl);
	tr_del(t, buf, kl);
}

static void tr_iter_start(struct tracker *t)
{
	gomap_iter_init(&t->it, t->m);
	ref_clear(&t->ret);
	t->iter_start = t->op++;
	t->iterating = true;
}

/* The end of an iteration: every key present since it started was
 * returned. */
static void tr_iter_check_end(struct tracker *t)
{
	size_t i = 0;
	struct ref_entry *e;
	while ((e = ref_next(&t->ref, &i)))
		if (e->born < t->iter_start && !ref_find(&t->ret, e->key, e->klen))
			TEST_FAIL("a key (length %zu) present for the whole iteration was not returned "
				  "(iteration %zu, %zu returned)",
				  e->klen, t->iterations, t->ret.count);
	t->iterations++;
	t->iterating = false;
}

/* One gomap_iter_next, checked.  Returns false when the iteration ended. */
static bool tr_iter_step(struct tracker *t)
{
	const void *k;
	size_t kl;
	void *v;
	uint64_t now = t->op++;
	bool more = gomap_iter_next(&t->it, &k, &kl, &v);
	if (!more) {
		tr_iter_check_end(t);
		return false;
	}
	struct ref_entry *f = ref_find(&t->ref, k, kl);
	if (!f)
		TEST_FAIL("iteration returned a key (length %zu) that is not in the map", kl);
	if (f->val != v)
		TEST_FAIL("iteration returned value %p, the key's current value is %p", v, f->val);
	struct ref_entry *r = ref_find(&t->ret, k, kl);
	if (r) {
		/* Only one excuse: the map was emptied (a random seed is then
		 * replaced, which reorders everything) after the first return
		 * and the key was inserted again after that.  See the report
		 * and test_iter_dup_after_reseed. */
		bool excused = !t->fixed_seed && t->last_emptied > r->born && f->born > t->last_emptied;
		if (!excused)
			TEST_FAIL("iteration returned a key (length %zu) twice (first at op %" PRIu64
				  ", now op %" PRIu64 ", key born %" PRIu64 ", emptied at %" PRIu64 ")",
				  kl, r->born, now, f->born, t->last_emptied);
		t->dup_after_reseed++;
		r->born = now;
	} else {
		bool isnew;
		struct ref_entry *e = ref_put(&t->ret, k, kl, NULL, &isnew);
		e->born = now;
	}
	t->returned++;
	return true;
}

/* ---- (a) deletes under the iterator ------------------------------------- */

static void test_iter_delete(void)
{
	for (int rep = 0; rep < 40; rep++) {
		struct tracker t;
		tr_init(&t, rep % 2 ? 0 : 1000 + (uint64_t)rep, 0);
		size_t n = 1 + test_rng_below(&rng, rep < 20 ? 64 : 5000);
		for (uint64_t id = 0; id < n; id++)
			tr_put_id(&t, 3000 + id);
		tr_iter_start(&t);
		/* After each returned key delete a few random keys: some already
		 * returned, some not yet; the contract check in tr_iter_step
		 * rejects any deleted-and-not-reinserted key. */
		while (tr_iter_step(&t)) {
			unsigned d = (unsigned)test_rng_below(&rng, 4);
			for (unsigned i = 0; i < d; i++)
				tr_del_random(&t);
		}
		gomap_check_invariants(t.m);
		tr_destroy(&t);
	}
}

/* ---- (b) inserts under the iterator ------------------------------------- */

static void test_iter_insert(void)
{
	for (int rep = 0; rep < 40; rep++) {
		struct tracker t;
		tr_init(&t, rep % 2 ? 0 : 2000 + (uint64_t)rep, 0);
		size_t n = test_rng_below(&rng, 300);
		uint64_t id = 3000;
		for (size_t i = 0; i < n; i++)
			tr_put_id(&t, id++);
		tr_iter_start(&t);
		size_t newly = 0;
		while (tr_iter_step(&t)) {
			unsigned d = (unsigned)test_rng_below(&rng, 6);
			for (unsigned i = 0; i < d; i++) {
				tr_put_id(&t, id++);
				newly++;
			}
		}
		ASSERT_GE(t.returned, n);
		ASSERT_LE(t.returned, n + newly);
		gomap_check_invariants(t.m);
		tr_destroy(&t);
	}
}

/* ---- (c) growth, shrink, same-size grow, clear mid-iteration ------------ */

static void test_iter_across_growth(void)
{
	for (int rep = 0; rep < 20; rep++) {
		struct tracker t;
		tr_init(&t, rep % 2 ? 0 : 77 + (uint64_t)rep, 0);
		size_t n = 1 + (size_t)rep;
		uint64_t id = 5000;
		for (size_t i = 0; i < n; i++)
			tr_put_id(&t, id++);
		tr_iter_start(&t);
		size_t steps = 0;
		unsigned B0 = t.m->B;
		/* Between calls, insert enough to double several times: after
		 * the first key, after the second, ... */
		while (tr_iter_step(&t)) {
			/* (Then rarely: keys inserted ahead of the cursor faster
			 * than it moves would keep the iteration going forever.) */
			size_t burst = steps < 4 ? 3000 : test_rng_below(&rng, 4) == 0;
			for (size_t i = 0; i < burst; i++)
				tr_put_id(&t, id++);
			steps++;
		}
		ASSERT_GE(t.m->B, B0 + 4);
		tr_destroy(&t);
	}
	/* The iterator starts while a doubling is under way. */
	for (int rep = 0; rep < 20; rep++) {
		struct tracker t;
		tr_init(&t, rep % 2 ? 0 : 99, 0);
		uint64_t id = 5000;
		while (t.m->count < 100 || !t.m->oldbuckets)
			tr_put_id(&t, id++);
		tr_iter_start(&t);
		while (tr_iter_step(&t))
			if (test_rng_below(&rng, 2))
				tr_put_id(&t, id++);
		tr_destroy(&t);
	}
}

static void test_iter_across_shrink(void)
{
	for (int rep = 0; rep < 20; rep++) {
		struct tracker t;
		tr_init(&t, rep % 2 ? 0 : 55 + (uint64_t)rep, 0);
		size_t n = 5000 + test_rng_below(&rng, 5000);
		for (uint64_t id = 0; id < n; id++)
			tr_put_id(&t, 3000 + id);
		tr_iter_start(&t);
		unsigned B0 = t.m->B;
		size_t steps = 0;
		while (tr_iter_step(&t)) {
			/* After a few keys, delete most of the map; keep deleting. */
			size_t burst = steps == (size_t)rep ? t.ref.count - t.ref.count / 50 : test_rng_below(&rng, 3);
			for (size_t i = 0; i < burst; i++)
				tr_del_random(&t);
			steps++;
		}
		ASSERT_GT(t.m->work.shrinks, 0);
		ASSERT_LT(t.m->B, B0);
		tr_destroy(&t);
	}
	/* Delete everything but a few keys mid-iteration with a fixed seed and
	 * let the iteration run through the whole cascade of shrinks. */
	struct tracker t;
	tr_init(&t, 4242, 0);
	for (uint64_t id = 0; id < 20000; id++)
		tr_put_id(&t, 3000 + id);
	tr_iter_start(&t);
	for (int i = 0; i < 100; i++)
		ASSERT_TRUE(tr_iter_step(&t));
	while (t.ref.count > 10) {
		tr_del_random(&t);
		if (test_rng_below(&rng, 64) == 0)
			tr_iter_step(&t);
		if (!t.iterating)
			break;
	}
	while (t.iterating && tr_iter_step(&t))
		;
	ASSERT_GE(t.m->work.shrinks, 5);
	tr_destroy(&t);
}

static void test_iter_across_same_size_grow(void)
{
	for (int rep = 0; rep < 10; rep++) {
		const uint64_t seed = 0x51ee7 + (uint64_t)rep;
		struct tracker t;
		tr_init(&t, seed, 104); /* B = 4, never below */
		uint64_t keys[16][24], next = 1;
		for (int j = 0; j < 16; j++)
			gm_find_colliding(seed, 15, (uint64_t)j, 24, keys[j], &next);
		/* Some plain keys, then start iterating. */
		for (int j = 0; j < 16; j++)
			tr_put(&t, &keys[j][23], 8);
		tr_iter_start(&t);
		for (int i = 0; i < rep; i++)
			ASSERT_TRUE(tr_iter_step(&t));
		/* Long chains full of tombstones until a same-size grow starts,
		 * stepping the iterator in between. */
		for (int j = 0; j < 16 && t.m->work.same_size_grows == 0; j++) {
			for (int i = 0; i < 20; i++)
				tr_put(&t, &keys[j][i], 8);
			ASSERT_TRUE(t.iterating);
			if (tr_iter_step(&t) == false)
				tr_iter_start(&t); /* (only if it ended early) */
			for (int i = 0; i < 18; i++)
				tr_del(&t, &keys[j][i], 8);
		}
		ASSERT_EQ(t.m->work.same_size_grows, 1);
		ASSERT_EQ(t.m->work.grows, 0);
		while (tr_iter_step(&t))
			tr_put(&t, &keys[0][23], 8); /* updates drive the rewrite */
		ASSERT_FALSE(t.m->oldbuckets != NULL && t.m->grow != sameSizeGrow);
		tr_destroy(&t);
	}
}

static void test_iter_across_clear(void)
{
	for (int rep = 0; rep < 20; rep++) {
		struct tracker t;
		tr_init(&t, rep % 2 ? 0 : 31337, rep % 3 ? 0 : 500);
		size_t n = 10 + test_rng_below(&rng, 3000);
		uint64_t id = 3000;
		for (size_t i = 0; i < n; i++)
			tr_put_id(&t, id++);
		tr_iter_start(&t);
		size_t at = test_rng_below(&rng, n);
		for (size_t i = 0; i < at; i++)
			ASSERT_TRUE(tr_iter_step(&t));
		tr_clear(&t);
		/* Nothing present before the clear is returned afterwards (the
		 * tracker rejects keys not in the map); new keys may be. */
		size_t m = test_rng_below(&rng, 200);
		for (size_t i = 0; i < m; i++)
			tr_put_id(&t, id++);
		while (tr_iter_step(&t))
			if (test_rng_below(&rng, 4) == 0)
				tr_put_id(&t, id++);
		tr_destroy(&t);
	}
}

/* ---- (e) exhausted stays exhausted; (f) current values ------------------- */

static void test_iter_exhausted(void)
{
	struct gomap_options o = {0, 0};
	struct gomap *m = gomap_new(&o);
	struct gomap_iter it;
	gomap_iter_init(&it, m);
	ASSERT_FALSE(gomap_iter_next(&it, NULL, NULL, NULL));
	ASSERT_EQ(gomap_put(m, "a", 1, NULL), 0);
	ASSERT_FALSE(gomap_iter_next(&it, NULL, NULL, NULL));
	for (int i = 0; i < 1000; i++)
		ASSERT_EQ(gomap_put(m, &i, sizeof i, NULL), 0);
	ASSERT_FALSE(gomap_iter_next(&it, NULL, NULL, NULL));
	gomap_clear(m);
	ASSERT_EQ(gomap_put(m, "b", 1, NULL), 0);
	ASSERT_FALSE(gomap_iter_next(&it, NULL, NULL, NULL));
	/* A fresh iterator on the same map works; dropping one mid-way needs
	 * no cleanup. */
	gomap_iter_init(&it, m);
	ASSERT_TRUE(gomap_iter_next(&it, NULL, NULL, NULL));
	ASSERT_FALSE(gomap_iter_next(&it, NULL, NULL, NULL));
	ASSERT_FALSE(gomap_iter_next(&it, NULL, NULL, NULL));
	gomap_free(m);
}

static void test_iter_current_values(void)
{
	for (int rep = 0; rep < 20; rep++) {
		struct tracker t;
		tr_init(&t, rep % 2 ? 0 : 4, 0);
		size_t n = 1 + test_rng_below(&rng, 2000);
		for (uint64_t id = 0; id < n; id++)
			tr_put_id(&t, 3000 + id);
		tr_iter_start(&t);
		size_t steps = 0;
		while (tr_iter_step(&t)) {
			/* Update keys (all of them, or a few) before the iterator
			 * reaches them; the tracker checks the returned value is the
			 * latest.  Updates do growth work but never move a key out of
			 * reach. */
			if (steps++ % 16 == 0) {
				size_t i = 0;
				struct ref_entry *e;
				while ((e = ref_next(&t.ref, &i))) {
					void *v = V(t.op * 2 + 1);
					ASSERT_EQ(gomap_put(t.m, e->key, e->klen, v), 0);
					e->val = v;
					t.op++;
				}
			} else {
				struct ref_entry *e = tr_random_present(&t);
				void *v = test_rng_below(&rng, 8) ? V(t.op * 2 + 1) : NULL;
				ASSERT_EQ(gomap_put(t.m, e->key, e->klen, v), 0);
				e->val = v;
				t.op++;
			}
		}
		tr_destroy(&t);
	}
}

/* ---- (d) randomized schedules -------------------------------------------- */

static struct {
	size_t iterations, returned, grows, same_size, shrinks, dups;
} sched_totals;

static void run_schedule(uint64_t sched_seed, size_t ops)
{
	struct test_rng r;
	test_rng_init(&r, sched_seed);
	uint64_t seed = test_rng_below(&r, 2) ? 0 : (test_rng_next(&r) | 1);
	size_t hint = test_rng_below(&r, 4) == 0 ? test_rng_below(&r, 3000) : 0;
	struct tracker t;
	tr_init(&t, seed, hint);
	/* Key id range and the mix drift over time, so the map grows, shrinks
	 * and churns with an iteration open. */
	uint64_t range = 16 + test_rng_below(&r, 20000);
	unsigned p_next = 1 + (unsigned)test_rng_below(&r, 60); /* % of steps that call next */
	unsigned p_put = 20 + (unsigned)test_rng_below(&r, 60);
	tr_iter_start(&t);
	for (size_t s = 0; s < ops; s++) {
		if (s % 512 == 0 && test_rng_below(&r, 4) == 0) {
			range = 16 + test_rng_below(&r, 20000);
			p_next = 1 + (unsigned)test_rng_below(&r, 60);
			p_put = 20 + (unsigned)test_rng_below(&r, 60);
		}
		unsigned x = (unsigned)test_rng_below(&r, 100);
		if (x < p_next) {
			if (!tr_iter_step(&t)) {
				/* Exhausted stays exhausted. */
				tr_put_id(&t, 3000 + test_rng_below(&r, range));
				ASSERT_FALSE(gomap_iter_next(&t.it, NULL, NULL, NULL));
				tr_iter_start(&t);
			}
			continue;
		}
		x = (unsigned)test_rng_below(&r, 1000);
		if (x == 0) {
			tr_clear(&t);
		} else if (x < 10 * p_put) {
			tr_put_id(&t, 3000 + test_rng_below(&r, range));
		} else if (x < 10 * p_put + 50) {
			tr_del_id(&t, 3000 + test_rng_below(&r, range)); /* maybe absent */
		} else {
			tr_del_random(&t);
		}
		if (s % 4096 == 0)
			gomap_check_invariants(t.m);
	}
	while (tr_iter_step(&t))
		;
	ref_check_equal(t.m, &t.ref);
	gomap_check_invariants(t.m);
	sched_totals.iterations += t.iterations;
	sched_totals.returned += t.returned;
	sched_totals.grows += t.m->work.grows;
	sched_totals.same_size += t.m->work.same_size_grows;
	sched_totals.shrinks += t.m->work.shrinks;
	sched_totals.dups += t.dup_after_reseed;
	tr_destroy(&t);
}

static size_t scaled(double n)
{
	double s = n * test_scale();
#if defined(__SANITIZE_ADDRESS__)
	s /= 3;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	s /= 3;
#endif
#endif
	return s < 1 ? 1 : (size_t)s;
}

static void test_iter_random_schedules(void)
{
	size_t n = scaled(200);
	for (size_t i = 0; i < n; i++)
		run_schedule(test_rng_next(&rng), 6000 + test_rng_below(&rng, 6000));
	printf("  %zu schedules: %zu iterations, %zu keys returned; maps grew %zu, same-size %zu, shrank %zu "
	       "times; %zu keys returned again after a reseed\n",
	       n, sched_totals.iterations, sched_totals.returned, sched_totals.grows, sched_totals.same_size,
	       sched_totals.shrinks, sched_totals.dups);
	ASSERT_GT(sched_totals.grows, n);
	ASSERT_GT(sched_totals.shrinks, n / 4);
}

/* ---- each key at most once, even when the map empties mid-iteration ---- */

/*
 * A random-seeded map takes a new seed whenever it becomes empty (gomap.h).
 * The iterator orders keys by their hash, so after the reseed a key that
 * was returned, deleted (emptying the map) and inserted again has a new
 * position, which may lie ahead of the cursor: it is returned a second
 * time, against "each key is returned at most once".
 */
static void test_iter_dup_after_reseed(void)
{
	size_t dups = 0, tries = 0;
	for (; tries < 200; tries++) {
		struct gomap *m = gomap_new(NULL);
		for (int i = 0; i < 4; i++)
			ASSERT_EQ(gomap_put(m, &i, sizeof i, V(i + 1)), 0);
		struct gomap_iter it;
		gomap_iter_init(&it, m);
		const void *k;
		size_t kl;
		ASSERT_TRUE(gomap_iter_next(&it, &k, &kl, NULL));
		int first;
		memcpy(&first, k, sizeof first);
		for (int i = 0; i < 4; i++)
			ASSERT_TRUE(gomap_delete(m, &i, sizeof i, NULL)); /* empty: new seed */
		ASSERT_EQ(gomap_put(m, &first, sizeof first, V(9)), 0);
		while (gomap_iter_next(&it, &k, &kl, NULL)) {
			int again;
			memcpy(&again, k, sizeof again);
			ASSERT_EQ(again, first);
			dups++;
		}
		gomap_free(m);
		if (dups)
			break;
	}
	if (dups)
		TEST_FAIL("key returned twice by one iteration after the map emptied and was reseeded "
			  "(found on try %zu)",
			  tries + 1);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_rng_init(&rng, test_seed());
	RUN(test_iter_exhausted);
	RUN(test_iter_delete);
	RUN(test_iter_insert);
	RUN(test_iter_current_values);
	RUN(test_iter_across_growth);
	RUN(test_iter_across_shrink);
	RUN(test_iter_across_same_size_grow);
	RUN(test_iter_across_clear);
	RUN(test_iter_random_schedules);
	RUN(test_iter_dup_after_reseed);
	return test_run_summary("gomap iteration");
}
