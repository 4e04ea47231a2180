/*
 * fault.c - every allocation of a fixed sequence of operations fails once,
 * one replay per allocation, and the map must stay exactly as it was.
 *
 * SPDX-License-Identifier: MIT
 *
 * The sequence (from the seed): new keys short (inline) and long (heap
 * copies), loads that promote the dirty map several times, deletes that
 * leave deleted entries in the snapshot, a new key that starts the
 * incremental dirty build and re-stores of deleted keys while it runs
 * (before and after the copy expunges them), enough deleted keys that the
 * snapshot's expunged list grows, the dirty map growing, updates, swaps,
 * CompareAndSwap/Delete, LoadOrStore, ranges (which finish the build) and a
 * clear.
 *
 * A first run counts the allocations T.  Then for N = 1..T (every N up to
 * 5000 x TEST_SCALE, a stride above that) the sequence is replayed with syncmap__fault_arm(N):
 *   - syncmap_new failing returns NULL with errno = ENOMEM;
 *   - an operation that reports ENOMEM (store/swap/load_or_store -ENOMEM,
 *     compare_and_swap false with errno ENOMEM) must leave the map as it
 *     was: every key loaded, a full range, len, compared with the reference;
 *     in boxed mode the rejected value must never reach free_value (the
 *     strict tracker aborts if it does); the operation is then retried and
 *     must succeed;
 *   - an operation that absorbed the failure internally (the copy slice,
 *     the expunged list, a shrink) must still give the reference's result,
 *     and the map is checked in full right after;
 *   - right after the operation the failure hit (before any check, whose
 *     loads and range could promote), a probe stores every absent key
 *     (deleted entries come back to life in the snapshot, lock-free),
 *     promotes with a range and checks everything: an entry the dirty map
 *     lost shows up there; then it deletes those keys again;
 *   - syncmap__fault_fired() must be true at the end of the replay;
 *   - at the end every value stored was freed exactly once.
 * Replays run inside one read section, so no grace period ends during a
 * replay and recycled entries cannot make the allocation sequence depend on
 * the timing of reclamation: replay N fails the same allocation every time.
 * The map is then freed inside the section (syncmap_free's deferred path);
 * every few replays the test waits until all values have been freed.
 * A second pass arms random N outside any read section (reclamation
 * running, entries recycled) with the same checks.
 */
#include "smtest.h"

#include "alloc.h"

enum op { O_LOAD, O_STORE, O_LOS, O_LAD, O_DELETE, O_SWAP, O_CAS_HIT, O_CAS_MISS, O_CAD_HIT, O_CAD_MISS, O_RANGE, O_CLEAR };
static const char *op_name[] = {"load", "store", "load_or_store", "load_and_delete", "delete", "swap",
				"cas(hit)", "cas(miss)", "cad(hit)", "cad(miss)", "range", "clear"};

struct step {
	enum op op;
	unsigned key;
};

struct seq {
	struct step *s;
	size_t n, cap;
};

static void push(struct seq *q, enum op op, unsigned key)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 1024;
		q->s = realloc(q->s, q->cap * sizeof(*q->s));
		ASSERT(q->s != NULL);
	}
	q->s[q->n++] = (struct step){op, key};
}

#define NKEYS 400

static void build_seq(struct seq *q, struct test_rng *r)
{
	/* A: 120 new keys, a load after each (early promotions by misses) */
	for (unsigned k = 0; k < 120; k++) {
		push(q, test_rng_below(r, 3) ? O_STORE : O_LOS, k);
		push(q, O_LOAD, (unsigned)test_rng_below(r, k + 1));
	}
	/* B: loads until promotion (misses reach the dirty size, and the
	 * floor of 1024 misses a small dirty map waits for: shard.c) */
	for (unsigned j = 0; j < 1100; j++)
		push(q, O_LOAD, (unsigned)test_rng_below(r, 120));
	/* C: delete 40 (deleted entries in the snapshot), a new key starts the
	 * build; while it runs: re-stores of deleted keys, updates... */
	for (unsigned k = 0; k < 120; k += 3)
		push(q, test_rng_below(r, 2) ? O_DELETE : O_LAD, k);
	push(q, O_STORE, 120);
	for (unsigned j = 0; j < 60; j++) {
		unsigned k = (unsigned)test_rng_below(r, 120);
		static const enum op mix[] = {O_STORE, O_SWAP, O_LOS, O_CAS_HIT, O_CAS_MISS, O_CAD_MISS, O_LOAD, O_STORE};
		push(q, mix[test_rng_below(r, 8)], k);
		if (j % 6 == 0)
			push(q, O_STORE, 121 + j / 6);
	}
	/* D: 270 more keys, the dirty map grows; loads promote several times */
	for (unsigned k = 131; k < NKEYS; k++) {
		push(q, test_rng_below(r, 4) ? O_STORE : O_SWAP, k);
		if (k % 3 == 0)
			push(q, O_LOAD, (unsigned)test_rng_below(r, k + 1));
		if (k % 50 == 0)
			for (unsigned j = 0; j < 1100; j++)
				push(q, O_LOAD, (unsigned)test_rng_below(r, k + 1));
		if (k % 50 == 25)
			push(q, O_RANGE, 0); /* promotes whatever the loads did not */
	}
	/* E: promote by range, delete 150 (more than 64 expunged: the list
	 * grows), a new key (build), random operations, a clear, more keys */
	push(q, O_RANGE, 0);
	for (unsigned k = 0; k < NKEYS; k += 2)
		if (test_rng_below(r, 4) != 0)
			push(q, O_DELETE, k);
	push(q, O_STORE, 0);
	for (unsigned j = 0; j < 300; j++) {
		uint64_t x = test_rng_below(r, 12);
		unsigned k = (unsigned)test_rng_below(r, NKEYS);
		static const enum op all[] = {O_LOAD,     O_STORE,   O_LOS,      O_LAD,     O_DELETE, O_SWAP,
					      O_CAS_HIT,  O_CAS_MISS, O_CAD_HIT, O_CAD_MISS, O_STORE,  O_LOAD};
		push(q, all[x], k);
	}
	push(q, O_RANGE, 0);
	for (unsigned k = 0; k < 100; k++)
		push(q, O_STORE, (unsigned)test_rng_below(r, NKEYS));
	push(q, O_CLEAR, 0);
	for (unsigned k = 0; k < 60; k++) {
		push(q, O_STORE, k * 5);
		push(q, O_LOAD, (unsigned)test_rng_below(r, NKEYS));
	}
	for (unsigned j = 0; j < 100; j++)
		push(q, O_LOAD, (unsigned)test_rng_below(r, 300));
	push(q, O_RANGE, 0);
}

/* ---- one replay ------------------------------------------------------------ */

struct run {
	bool boxed;
	struct syncmap *m;
	struct tracker *tr;
	const struct keyset *ks;
	bool present[NKEYS];
	void *val[NKEYS];
	size_t count;
	uint64_t plain_next;
	long n;          /* armed allocation (0: none) */
	size_t step;     /* current step */
	int enomem_ops;  /* operations that reported ENOMEM */
	bool absorbed;   /* the failure hit an operation that succeeded anyway */
};

#define RFAIL(...)                                                                               \
	do {                                                                                     \
		fprintf(stderr, "[%s mode, failing allocation %ld, step %zu] ", r->boxed ? "boxed" : "plain", \
			r->n, r->step);                                                          \
		TEST_FAIL(__VA_ARGS__);                                                          \
	} while (0)

static void *new_val(struct run *r)
{
	if (!r->boxed) {
		r->plain_next += 16;
		return (void *)(uintptr_t)r->plain_next;
	}
	return tv_new(r->tr);
}

static void mark(struct run *r, void *v, int state)
{
	if (r->boxed && v)
		atomic_store(&((struct tv *)v)->state, state);
}

struct rc {
	struct run *r;
	unsigned char seen[NKEYS];
	size_t n;
};

static bool range_fn(const void *key, size_t klen, void *val, void *ctx)
{
	struct rc *c = ctx;
	struct run *r = c->r;
	long i = keyset_find(r->ks, key, klen);
	if (i < 0 || i >= NKEYS)
		RFAIL("range: unknown key");
	if (c->seen[i]++)
		RFAIL("range: key %ld twice", i);
	if (!r->present[i] || r->val[i] != val)
		RFAIL("range: key %ld value %p, reference present %d value %p", i, val, r->present[i], r->val[i]);
	c->n++;
	return true;
}

static void check_full(struct run *r, const char *when)
{
	for (unsigned i = 0; i < NKEYS; i++) {
		void *v = (void *)1;
		bool f = syncmap_load(r->m, keyp(r->ks, i, i & 1), r->ks->len[i], &v);
		if (f != r->present[i] || (f && v != r->val[i]))
			RFAIL("%s: key %u found %d value %p, reference %d %p", when, i, f, v, r->present[i],
			      r->val[i]);
	}
	struct rc c;
	memset(&c, 0, sizeof(c));
	c.r = r;
	syncmap_range(r->m, range_fn, &c);
	if (c.n != r->count)
		RFAIL("%s: range saw %zu keys, reference %zu", when, c.n, r->count);
	if (syncmap_len(r->m) != r->count)
		RFAIL("%s: len %zu, reference %zu", when, syncmap_len(r->m), r->count);
}

static void set_key(struct run *r, unsigned k, void *v)
{
	if (!r->present[k])
		r->count++;
	r->present[k] = true;
	r->val[k] = v;
}

static void del_key(struct run *r, unsigned k)
{
	if (r->present[k])
		r->count--;
	r->present[k] = false;
	r->val[k] = NULL;
}

/* Run one step; returns true if it reported ENOMEM (then nothing changed
 * and the caller retries it). */
static bool run_step(struct run *r, const struct step *s)
{
	struct syncmap *m = r->m;
	unsigned k = s->key;
	const void *key = keyp(r->ks, k, k & 2);
	size_t kl = r->ks->len[k];
	bool pres = r->present[k];
	void *cur = r->val[k], *out = (void *)1;
	switch (s->op) {
	case O_LOAD: {
		bool f = syncmap_load(m, key, kl, &out);
		if (f != pres || (f && out != cur))
			RFAIL("load key %u: %d %p, reference %d %p", k, f, out, pres, cur);
		return false;
	}
	case O_STORE:
	case O_SWAP:
	case O_LOS: {
		void *v = new_val(r);
		bool stores = s->op != O_LOS || !pres;
		if (stores) {
			mark(r, v, TV_LIVE);
			if (pres && s->op != O_LOS)
				mark(r, cur, TV_LEAVING);
		}
		int ret = s->op == O_STORE ? syncmap_store(m, key, kl, v)
			  : s->op == O_SWAP ? syncmap_swap(m, key, kl, v, &out)
					     : syncmap_load_or_store(m, key, kl, v, &out);
		if (ret == -ENOMEM) {
			if (!stores)
				RFAIL("load_or_store of a present key reported ENOMEM");
			mark(r, v, TV_TEST);
			mark(r, cur, TV_LIVE);
			if (r->boxed)
				tv_unused(r->tr, v);
			return true;
		}
		int want = s->op == O_STORE ? 0 : pres ? 1 : 0;
		if (ret != want)
			RFAIL("%s key %u: %d, want %d", op_name[s->op], k, ret, want);
		if (s->op != O_STORE && pres && out != cur)
			RFAIL("%s key %u: got %p, want %p", op_name[s->op], k, out, cur);
		if (s->op == O_LOS && !pres && out != v)
			RFAIL("load_or_store key %u stored: *actual %p, want %p", k, out, v);
		if (stores)
			set_key(r, k, v);
		else if (r->boxed)
			tv_unused(r->tr, v);
		return false;
	}
	case O_LAD:
	case O_DELETE: {
		if (pres)
			mark(r, cur, TV_LEAVING);
		if (s->op == O_DELETE) {
			syncmap_delete(m, key, kl);
		} else {
			bool f = syncmap_load_and_delete(m, key, kl, &out);
			if (f != pres || (f && out != cur))
				RFAIL("load_and_delete key %u: %d %p, reference %d %p", k, f, out, pres, cur);
		}
		del_key(r, k);
		return false;
	}
	case O_CAS_HIT:
	case O_CAS_MISS: {
		void *old = s->op == O_CAS_HIT ? cur : (void *)(uintptr_t)0xBAD0;
		bool hit = pres && old == cur;
		void *v = new_val(r);
		if (hit) {
			mark(r, v, TV_LIVE);
			mark(r, cur, TV_LEAVING);
		}
		errno = 0;
		int rc = syncmap_compare_and_swap(m, key, kl, old, v);
		bool ok = rc == 1;
		if (rc == -ENOMEM) {
			if (!hit)
				RFAIL("a CAS that cannot succeed reported ENOMEM (it must not allocate)");
			mark(r, v, TV_TEST);
			mark(r, cur, TV_LIVE);
			if (r->boxed)
				tv_unused(r->tr, v);
			return true;
		}
		if ((rc != 0 && rc != 1) || ok != hit || errno != 0)
			RFAIL("cas key %u: %d errno %d, want %d", k, rc, errno, hit);
		if (hit)
			set_key(r, k, v);
		else if (r->boxed)
			tv_unused(r->tr, v);
		return false;
	}
	case O_CAD_HIT:
	case O_CAD_MISS: {
		void *old = s->op == O_CAD_HIT ? cur : (void *)(uintptr_t)0xBAD0;
		bool hit = pres && old == cur;
		if (hit)
			mark(r, cur, TV_LEAVING);
		bool ok = syncmap_compare_and_delete(m, key, kl, old);
		if (ok != hit)
			RFAIL("cad key %u: %d, want %d", k, ok, hit);
		if (hit)
			del_key(r, k);
		return false;
	}
	case O_RANGE: {
		long n = 0;
		syncmap_range(m, range_count_fn, &n);
		if ((size_t)n != r->count)
			RFAIL("range saw %ld keys, reference %zu", n, r->count);
		return false;
	}
	case O_CLEAR:
		for (unsigned i = 0; i < NKEYS; i++)
			if (r->present[i]) {
				mark(r, r->val[i], TV_LEAVING);
				del_key(r, i);
			}
		syncmap_clear(m);
		return false;
	}
	RFAIL("bad op");
}

/* One replay with allocation n failing (0: none).  Returns the number of
 * allocations made (meaningful for n == 0). */
/* After a failure: store every absent key (keys deleted in the snapshot
 * come back to life in place, lock-free), promote with a range, check
 * everything, then delete them again.  An entry the failure made the dirty
 * map lose (neither copied nor expunged) shows up here: the promotion drops
 * its key. */
static void probe(struct run *r)
{
	bool was[NKEYS];
	for (unsigned i = 0; i < NKEYS; i++) {
		was[i] = r->present[i];
		if (!was[i]) {
			struct step st = {O_STORE, i};
			if (run_step(r, &st))
				RFAIL("ENOMEM in the probe, after the failure");
		}
	}
	struct step rg = {O_RANGE, 0};
	run_step(r, &rg);
	check_full(r, "probe: every key stored, then promoted");
	for (unsigned i = 0; i < NKEYS; i++)
		if (!was[i]) {
			struct step st = {O_DELETE, i};
			run_step(r, &st);
		}
}

struct tally {
	long replays, enomem_ops, absorbed;
};

static long replay(const struct seq *q, const struct keyset *ks, bool boxed, struct tracker *tr, long n,
		   uint64_t map_seed, struct syncmap_stats *st_out, struct tally *ty)
{
	struct run rr;
	struct run *r = &rr;
	memset(r, 0, sizeof(*r));
	r->boxed = boxed;
	r->tr = tr;
	r->ks = ks;
	r->n = n;
	struct syncmap_options o = {.free_value = boxed ? tv_free_value : NULL, .free_ctx = tr, .seed = map_seed, .shards = test_shards()};
	if (n > 0)
		syncmap__fault_arm(n);
	else
		syncmap__fault_count_start();
	errno = 0;
	r->m = syncmap_new(&o);
	if (!r->m) {
		if (n != 1 || errno != ENOMEM || !syncmap__fault_fired())
			RFAIL("syncmap_new failed: errno %d", errno);
		syncmap__fault_stop();
		if (ty)
			ty->replays++, ty->enomem_ops++;
		return 0;
	}
	bool fired = false;
	for (r->step = 0; r->step < q->n; r->step++) {
		bool enomem = run_step(r, &q->s[r->step]);
		bool first = !fired && n > 0 && syncmap__fault_fired();
		if (first)
			probe(r); /* before anything else can promote */
		if (enomem) {
			if (n == 0 || !syncmap__fault_fired())
				RFAIL("ENOMEM without an injected failure");
			r->enomem_ops++;
			check_full(r, "after ENOMEM");
			if (run_step(r, &q->s[r->step]))
				RFAIL("the retry of a failed operation failed again");
		}
		if (first) {
			fired = true;
			r->absorbed = !enomem;
			check_full(r, enomem ? "after the retry" : "after an absorbed failure");
		}
	}
	long made = syncmap__fault_count();
	if (n > 0 && !syncmap__fault_fired())
		RFAIL("the armed allocation never came (%ld made)", made);
	syncmap__fault_stop();
	if (ty) {
		ty->replays++;
		ty->enomem_ops += r->enomem_ops;
		ty->absorbed += r->absorbed;
	}
	check_full(r, "at the end");
	if (st_out)
		syncmap_stats(r->m, st_out);
	for (unsigned i = 0; i < NKEYS; i++)
		if (r->present[i])
			mark(r, r->val[i], TV_LEAVING);
	syncmap_free(r->m);
	return made;
}

static void wait_freed(struct tracker *tr)
{
	if (!tracker_wait_freed(tr, 10))
		TEST_FAIL("%ld of %ld values freed after 10 s", atomic_load(&tr->freed), atomic_load(&tr->made));
}

static void run_mode(bool boxed, uint64_t seed)
{
	struct test_rng rng;
	test_rng_init(&rng, seed);
	struct keyset ks;
	keyset_random(&ks, NKEYS, &rng);
	size_t longkeys = 0;
	for (unsigned i = 0; i < NKEYS; i++)
		longkeys += ks.len[i] > 8;
	struct seq q = {0};
	build_seq(&q, &rng);
	uint64_t map_seed = test_rng_next(&rng) | 1;
	struct tracker tr;
	tracker_init(&tr, true, true);

	/* learn T, inside a read section like the replays */
	struct syncmap_stats st;
	syncmap_read_lock();
	long T = replay(&q, &ks, boxed, &tr, 0, map_seed, &st, NULL);
	syncmap_read_unlock();
	wait_freed(&tr);
	printf("%s: %zu steps, %zu long keys, %ld allocations; promotions %" PRIu64 ", entries %" PRIu64 "\n",
	       boxed ? "boxed" : "plain", q.n, longkeys, T, st.promotions, st.entries);
	ASSERT_GT(st.promotions, 5);
	ASSERT_GT(T, 100);

	long exhaustive = scaled(5000, 600), stride = T > exhaustive ? (T - exhaustive) / scaled(400, 100) + 1 : 1;
	struct tally ty = {0};
	double t0 = now_sec();
	for (long n = 1; n <= T; n += n < exhaustive ? 1 : stride) {
		syncmap_read_lock();
		replay(&q, &ks, boxed, &tr, n, map_seed, NULL, &ty);
		syncmap_read_unlock();
		if (ty.replays % 64 == 0)
			wait_freed(&tr);
	}
	wait_freed(&tr);
	double t1 = now_sec();
	/* Random N outside any read section: reclamation runs and recycles
	 * entries, so the allocation sequence depends a little on timing;
	 * arming within the first 90% keeps the failure coming. */
	struct tally ty2 = {0};
	long rnd = scaled(40, 10);
	for (long j = 0; j < rnd; j++) {
		long n = 1 + (long)test_rng_below(&rng, (uint64_t)T) * 9 / 10;
		replay(&q, &ks, boxed, &tr, n, map_seed, NULL, &ty2);
	}
	wait_freed(&tr);
	if (boxed) {
		tracker_check_all_freed(&tr);
		ASSERT_EQ(atomic_load(&tr.null_freed), 0);
	}
	printf("%s: %ld replays (every N to %ld, then stride %ld) in %.2fs: %ld ENOMEM results, %ld failures absorbed;\n"
	       "   %ld random replays outside a read section in %.2fs: %ld ENOMEM, %ld absorbed\n",
	       boxed ? "boxed" : "plain", ty.replays, exhaustive, stride, t1 - t0, ty.enomem_ops, ty.absorbed,
	       ty2.replays, now_sec() - t1, ty2.enomem_ops, ty2.absorbed);
	ASSERT_GT(ty.enomem_ops, 10);
	tracker_destroy(&tr);
	free(q.s);
	keyset_free(&ks);
}

int main(void)
{
	uint64_t seed = test_begin();
	watchdog(600, "fault replays");
	run_mode(false, seed);
	run_mode(true, seed);
	printf("ok\n");
	return 0;
}
