/*
 * gomap_blockcache.c - the cache of zeroed blocks behind gomap's bucket
 * arrays (src/blockcache.c): blocks given back are reused, and reused
 * blocks are zero; the cache stays within its bound and gives the rest back
 * to the system; release in steps keeps to its budget; fault injection
 * sees a hit like a miss; the public bound (gomap_set_cache_limit) empties
 * and disables it; a map made again allocates no new mapping and
 * keeps its per-operation work bounds; huge-page advice still applies;
 * threads share it safely (run under TSAN by tsan/run).
 *
 * Every test runs in its own child process (gomap_testrun.h), so each
 * starts from an empty cache.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "blockcache.h"
#include "gomap_impl.h"
#include "testutil.h"
#include "gomap_invariants.h"
#include "gomap_testrun.h"

#define TEST(name) static void name(void)
#define V(x) ((void *)(uintptr_t)(x))

static struct test_rng rng;

static struct syncmap__block_cache_stats cstats(void)
{
	struct syncmap__block_cache_stats st;
	syncmap__block_cache_stats(&st);
	return st;
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

/* Is the page at p mapped at all?  (mincore fails with ENOMEM for an
 * address outside every mapping.) */
static bool mapped(const void *p)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char vec;
	void *base = (void *)((uintptr_t)p & ~(uintptr_t)(page - 1));
	if (mincore(base, (size_t)page, &vec) == 0)
		return true;
	ASSERT_EQ(errno, ENOMEM);
	return false;
}

/* ---- the cache itself ------------------------------------------------- */

/* A block given back is handed out again, for the same size, and it is
 * all zero: its dirty prefix was cleared, the rest was never written. */
TEST(test_block_reuse_is_zero)
{
	const size_t n = ((size_t)1 << 20) + 3 * 144; /* sizes need not be page multiples */
	const size_t dirty = 300000;
	struct syncmap__block_cache_stats s0 = cstats();
	ASSERT_EQ(s0.limit, SM_BLOCK_CACHE_LIMIT);
	unsigned char *p = syncmap__block_alloc(n);
	ASSERT(p != NULL);
	ASSERT_EQ((uintptr_t)p % 16, 0);
	ASSERT_EQ(cstats().fresh, s0.fresh + 1);
	ASSERT_TRUE(all_zero(p, n));
	memset(p, 0xA5, dirty);
	syncmap__block_free(p, n, dirty);
	struct syncmap__block_cache_stats s1 = cstats();
	ASSERT_EQ(s1.bytes, s0.bytes + n);
	ASSERT_EQ(s1.blocks, s0.blocks + 1);
	ASSERT_EQ(s1.cached, s0.cached + 1);
	ASSERT_EQ(s1.reserved, 0);

	ASSERT(syncmap__block_alloc(n + 4096) != p); /* another size: not this block */
	unsigned char *q = syncmap__block_alloc(n);
	ASSERT_PTR_EQ(q, p);
	struct syncmap__block_cache_stats s2 = cstats();
	ASSERT_EQ(s2.hits, s1.hits + 1);
	ASSERT_EQ(s2.bytes, s0.bytes);
	ASSERT_TRUE(all_zero(q, n));
	syncmap__block_free(q, n, n);
	/* Small blocks (calloc) are never cached. */
	void *s = syncmap__block_alloc(SM_MMAP_MIN - 16);
	ASSERT(s != NULL);
	syncmap__block_free(s, SM_MMAP_MIN - 16, SM_MMAP_MIN - 16);
	ASSERT_EQ(cstats().blocks, s0.blocks + 1);
}

/* The cache holds at most its limit; what does not fit goes back to the
 * system at once; lowering the limit gives back what it no longer covers. */
TEST(test_block_bound)
{
	const size_t n = (size_t)1 << 20;
	ASSERT_EQ(syncmap__block_cache_set_limit(4 * n), SM_BLOCK_CACHE_LIMIT);
	struct syncmap__block_cache_stats s0 = cstats();
	unsigned char *p[6];
	for (int i = 0; i < 6; i++) {
		p[i] = syncmap__block_alloc(n);
		ASSERT(p[i] != NULL);
		memset(p[i], 1, n);
	}
	for (int i = 0; i < 6; i++)
		syncmap__block_free(p[i], n, n);
	struct syncmap__block_cache_stats s1 = cstats();
	ASSERT_EQ(s1.bytes, 4 * n);
	ASSERT_EQ(s1.blocks, 4);
	ASSERT_EQ(s1.rejected, s0.rejected + 2);
	for (int i = 0; i < 4; i++)
		ASSERT_TRUE(mapped(p[i]));
	for (int i = 4; i < 6; i++)
		ASSERT_FALSE(mapped(p[i])); /* given back to the system */

	ASSERT_EQ(syncmap__block_cache_set_limit(n), 4 * n);
	struct syncmap__block_cache_stats s2 = cstats();
	ASSERT_EQ(s2.bytes, n);
	ASSERT_EQ(s2.blocks, 1);
	size_t still = 0;
	for (int i = 0; i < 4; i++)
		still += mapped(p[i]);
	ASSERT_EQ(still, 1);
	syncmap__block_cache_set_limit(0);
	ASSERT_EQ(cstats().bytes, 0);
	for (int i = 0; i < 6; i++)
		ASSERT_FALSE(mapped(p[i]));
}

/* Release in steps: each step zeroes (for the cache) or unmaps (when the
 * cache is full) at most about the budget, from the block's end, so the
 * release state may live at the block's start, as gomap keeps it. */
TEST(test_block_release_steps)
{
	const size_t budget = (size_t)256 << 10, page = (size_t)sysconf(_SC_PAGESIZE);
	const size_t n = ((size_t)3 << 20) + 5 * 144, dirty = ((size_t)2 << 20) + 100;
	for (int mode = 0; mode < 2; mode++) { /* 0: into the cache; 1: cache full */
		syncmap__block_cache_set_limit(mode == 0 ? SM_BLOCK_CACHE_LIMIT : 0);
		unsigned char *p = syncmap__block_alloc(n);
		ASSERT(p != NULL);
		memset(p, 0x5A, dirty);
		struct sm_block_release *r = (struct sm_block_release *)p; /* inside the block */
		memset(r, 0, sizeof(*r));
		size_t total = 0, steps = 0;
		for (bool done = false; !done;) {
			size_t rel = 0, wk = 0;
			done = syncmap__block_release_step(p, n, dirty, r, budget, &rel, &wk);
			ASSERT_LE(wk, budget + (mode ? page : 0));
			ASSERT_LE(rel, n);
			total += rel;
			if (!done) {
				ASSERT_EQ(sm_block_release_held(r, n), n - total);
				ASSERT_LT(++steps, 64);
			}
		}
		ASSERT_EQ(total, n);
		if (mode == 0) {
			/* Only the dirty prefix cost steps: the rest was zero. */
			ASSERT_EQ(steps + 1, (dirty + budget - 1) / budget);
			ASSERT_PTR_EQ(syncmap__block_alloc(n), p);
			ASSERT_TRUE(all_zero(p, n));
			syncmap__block_free(p, n, 0);
		} else {
			ASSERT_FALSE(mapped(p));
		}
	}
	/* SIZE_MAX finishes at once. */
	syncmap__block_cache_set_limit(SM_BLOCK_CACHE_LIMIT);
	void *p = syncmap__block_alloc(n);
	struct sm_block_release r = {0};
	size_t rel = 0, wk = 0;
	ASSERT_TRUE(syncmap__block_release_step(p, n, n, &r, SIZE_MAX, &rel, &wk));
	ASSERT_EQ(rel, n);
	ASSERT_EQ(cstats().blocks, 1);
}

/* A cache hit is an allocation like any other for fault injection: it can
 * be made to fail (the block stays cached), and it is counted. */
TEST(test_block_fault_injection)
{
	const size_t n = (size_t)1 << 20;
	void *p = syncmap__block_alloc(n);
	syncmap__block_free(p, n, n);
	ASSERT_EQ(cstats().blocks, 1);
	syncmap__fault_arm(1);
	errno = 0;
	ASSERT(syncmap__block_alloc(n) == NULL);
	ASSERT_EQ(errno, ENOMEM);
	ASSERT_TRUE(syncmap__fault_fired());
	syncmap__fault_stop();
	ASSERT_EQ(cstats().blocks, 1);
	syncmap__fault_count_start();
	void *q = syncmap__block_alloc(n); /* a hit */
	void *r = syncmap__block_alloc(n); /* a miss */
	ASSERT_EQ(syncmap__fault_count(), 2);
	syncmap__fault_stop();
	ASSERT_PTR_EQ(q, p);
	ASSERT(r != NULL);
	syncmap__block_free(q, n, 0);
	syncmap__block_free(r, n, 0);
}

/* ---- through gomap ----------------------------------------------------- */

static void check_op_work(const struct gomap *m)
{
	struct gomap_work w;
	gomap_work(m, &w);
	if (w.last_evacuated > GOMAP_MAX_EVACUATE_PER_OP || w.last_skipped > GOMAP_MAX_SKIP_PER_OP ||
	    w.last_released > GOMAP_MAX_RELEASE_PER_OP)
		TEST_FAIL("one operation evacuated %zu, skipped %zu, released %zu (bounds %d, %d, %zu)",
			  w.last_evacuated, w.last_skipped, w.last_released, GOMAP_MAX_EVACUATE_PER_OP,
			  GOMAP_MAX_SKIP_PER_OP, (size_t)GOMAP_MAX_RELEASE_PER_OP);
}

/* An array just made by a grow holds nothing yet beyond the buckets its
 * first evacuations filled: every bucket no evacuated old bucket feeds, the
 * overflow buckets not handed out, and the unused chunk slots are zero. */
static void check_new_array_zero(const struct gomap *h)
{
	const struct barray *a = h->buckets, *oa = h->oldbuckets;
	for (size_t j = 0; j < a->nbuckets; j++) {
		/* Doubling and same size: old bucket j & oldmask; shrink: every
		 * old bucket j + k * 2^B. */
		bool fed = false;
		for (size_t o = j & bucketMask(h->oldB); o < oa->nbuckets && !fed; o += a->nbuckets)
			fed = evacuated(&oa->b[o]);
		if (!fed && !all_zero(&a->b[j], sizeof(struct bmap)))
			TEST_FAIL("new array of B=%u: bucket %zu not zero", h->B, j);
	}
	for (size_t j = a->nbuckets + a->nextpre; j < a->nbuckets + a->npre; j++)
		if (!all_zero(&a->b[j], sizeof(struct bmap)))
			TEST_FAIL("preallocated overflow bucket %zu not zero", j);
	for (unsigned k = a->nchunks; k < OVF_MAX_CHUNKS; k++)
		ASSERT(a->chunks[k] == NULL);
}

struct cycle {
	size_t grows_checked;
};

/* Create, fill, read, empty and free a map of n keys, checking the work
 * bounds on every write, the invariants now and then, and every array a
 * grow makes for zero. */
static void map_cycle(size_t n, unsigned flags, struct cycle *cy)
{
	struct gomap *m = malloc(sizeof(*m));
	ASSERT(m != NULL);
	ASSERT_EQ(gomap__init(m, 0, 0, flags), 0);
	size_t grows = 0;
	for (uint64_t k = 0; k < n; k++) {
		uint64_t key = k * 0x9E3779B97F4A7C15ULL;
		ASSERT_EQ(gomap_put(m, &key, 8, V(k + 1)), 0);
		check_op_work(m);
		struct gomap_work w;
		gomap_work(m, &w);
		if (w.grows + w.same_size_grows != grows) {
			grows = w.grows + w.same_size_grows;
			if (m->oldbuckets) {
				check_new_array_zero(m);
				cy->grows_checked++;
			}
		}
		if (k % 8191 == 0)
			gomap_check_invariants(m);
	}
	for (uint64_t k = 0; k < n; k++) {
		uint64_t key = k * 0x9E3779B97F4A7C15ULL;
		void *v;
		ASSERT_TRUE(gomap_get(m, &key, 8, &v));
		ASSERT_PTR_EQ(v, V(k + 1));
	}
	for (uint64_t i = 0, k = 0; i < n; i++, k = (k + 7919) % n) {
		uint64_t key = k * 0x9E3779B97F4A7C15ULL;
		ASSERT_TRUE(gomap_delete(m, &key, 8, NULL));
		check_op_work(m);
		if (i % 8191 == 0)
			gomap_check_invariants(m);
	}
	gomap_check_invariants(m);
	ASSERT_EQ(gomap_len(m), 0);
	gomap__destroy(m);
	free(m);
}

/* The second time a map of the same size is made, filled, emptied and
 * freed, every bucket array and overflow chunk of mmap size comes from the
 * cache: no new mapping, no page fault; the per-operation bounds hold and
 * every reused array is zero. */
TEST(test_map_reuse)
{
	const size_t n = 100000; /* arrays up to B = 14, 2.5 MB */
	struct cycle cy = {0};
	map_cycle(n, 0, &cy);
	struct syncmap__block_cache_stats s1 = cstats();
	ASSERT_GT(s1.fresh, 0);
	ASSERT_GT(s1.blocks, 0);
	ASSERT_LE(s1.bytes, s1.limit);
	for (int round = 0; round < 3; round++)
		map_cycle(n, round == 1 ? GOMAP_INIT_HUGE_LATER : 0, &cy);
	struct syncmap__block_cache_stats s2 = cstats();
	printf("  first cycle: %zu blocks mapped; next three: %zu more, %zu hits; cache holds %zu blocks, %zu bytes\n",
	       s1.fresh, s2.fresh - s1.fresh, s2.hits - s1.hits, s2.blocks, s2.bytes);
	ASSERT_EQ(s2.fresh, s1.fresh);
	ASSERT_GE(s2.hits - s1.hits, 3 * 4); /* B = 11..14 each time, at least */
	ASSERT_GT(cy.grows_checked, 0);
}

/* With the cache full, a retired array is unmapped in slices as before,
 * and the bounds hold. */
TEST(test_map_cache_full)
{
	syncmap__block_cache_set_limit(0);
	struct cycle cy = {0};
	map_cycle(100000, 0, &cy);
	struct syncmap__block_cache_stats st = cstats();
	ASSERT_EQ(st.blocks, 0);
	ASSERT_EQ(st.hits, 0);
	ASSERT_GT(st.rejected, 0);
}

/* The public bound: gomap_set_cache_limit returns the previous one, and
 * lowering it gives what it no longer covers back to the system at once
 * (the cache holds nothing more and reuses nothing while off). */
TEST(test_public_limit)
{
	struct cycle cy = {0};
	map_cycle(100000, 0, &cy);
	struct syncmap__block_cache_stats s1 = cstats();
	ASSERT_GT(s1.blocks, 0);
	ASSERT_EQ(gomap_set_cache_limit(0), SM_BLOCK_CACHE_LIMIT);
	struct syncmap__block_cache_stats s2 = cstats();
	ASSERT_EQ(s2.blocks, 0);
	ASSERT_EQ(s2.bytes, 0);
	ASSERT_EQ(s2.limit, 0);
	/* Off: the next cycle caches nothing and reuses nothing. */
	map_cycle(100000, 0, &cy);
	struct syncmap__block_cache_stats s3 = cstats();
	ASSERT_EQ(s3.blocks, 0);
	ASSERT_EQ(s3.hits, s1.hits);
	ASSERT_GT(s3.rejected, s1.rejected);
	ASSERT_EQ(gomap_set_cache_limit(SM_BLOCK_CACHE_LIMIT), 0);
	map_cycle(100000, 0, &cy);
	ASSERT_GT(cstats().blocks, 0);
}

/* ---- huge-page advice --------------------------------------------------- */

/* Does the mapping holding p carry MADV_HUGEPAGE ("hg" in VmFlags)?
 * -1 when /proc/self/smaps cannot be read. */
static int vma_has_hugepage(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	bool in = false;
	int found = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's header line */
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			found = strstr(line, " hg") != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Arrays of 2 MiB and more still get the advice, reused or not; a
 * GOMAP_INIT_HUGE_LATER map gets it from gomap__advise_huge, not at
 * allocation (a block reused from the cache is resident already, so it
 * costs no faults either way). */
TEST(test_huge_advice)
{
	/* Can this kernel set the flag at all? */
	size_t probe_n = (size_t)4 << 20;
	void *probe = mmap(NULL, probe_n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT(probe != MAP_FAILED);
	syncmap__advise_huge(probe, probe_n);
	int ok = vma_has_hugepage(probe);
	munmap(probe, probe_n);
	if (ok != 1) {
		printf("  no MADV_HUGEPAGE here (THP off or no /proc): skipped\n");
		return;
	}
	const size_t hint = 100000; /* B = 14: 2.5 MB */
	syncmap__block_cache_set_limit(0);  /* fresh blocks first */
	struct gomap g;
	ASSERT_EQ(gomap__init(&g, 1, hint, GOMAP_INIT_HUGE_LATER), 0);
	ASSERT_GE(g.buckets->bytes, (size_t)2 << 20);
	ASSERT_EQ(vma_has_hugepage(g.buckets), 0);
	gomap__advise_huge(&g);
	ASSERT_EQ(vma_has_hugepage(g.buckets), 1);
	gomap__destroy(&g);

	syncmap__block_cache_set_limit(SM_BLOCK_CACHE_LIMIT);
	ASSERT_EQ(gomap__init(&g, 1, hint, 0), 0);
	void *first = g.buckets;
	ASSERT_EQ(vma_has_hugepage(first), 1);
	gomap__destroy(&g); /* into the cache */
	size_t hits = cstats().hits;
	ASSERT_EQ(gomap__init(&g, 1, hint, 0), 0);
	ASSERT_PTR_EQ(g.buckets, first);
	ASSERT_EQ(cstats().hits, hits + 1);
	ASSERT_EQ(vma_has_hugepage(g.buckets), 1);
	gomap__destroy(&g);
	ASSERT_EQ(gomap__init(&g, 1, hint, GOMAP_INIT_HUGE_LATER), 0);
	ASSERT_PTR_EQ(g.buckets, first);
	gomap__advise_huge(&g);
	ASSERT_EQ(vma_has_hugepage(g.buckets), 1);
	gomap__destroy(&g);
}

/* ---- threads ------------------------------------------------------------ */

#define NTHREADS 4

struct worker {
	pthread_t t;
	uint64_t seed;
	size_t iters, reused_checked;
};

static const size_t sizes[] = {SM_MMAP_MIN, SM_MMAP_MIN + 5 * 144, (size_t)1 << 20, ((size_t)2 << 20) + 16};

/* Allocate, check zero, dirty a prefix, give back (at once or in steps):
 * many threads at once, blocks moving between them through the cache. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct test_rng r;
	test_rng_init(&r, w->seed);
	for (size_t it = 0; it < w->iters; it++) {
		size_t n = sizes[test_rng_below(&r, 4)];
		unsigned char *p = syncmap__block_alloc(n);
		if (!p)
			TEST_FAIL("syncmap__block_alloc(%zu) failed", n);
		/* Full check now and then; the first and last bytes always. */
		if (it % 16 == 0) {
			if (!all_zero(p, n))
				TEST_FAIL("a block of %zu bytes came back not zero", n);
			w->reused_checked++;
		} else if (!all_zero(p, 4096) || !all_zero(p + n - 4096, 4096)) {
			TEST_FAIL("a block of %zu bytes came back not zero", n);
		}
		size_t dirty = (size_t)test_rng_below(&r, n + 1);
		memset(p, (int)(it | 1), dirty);
		if (test_rng_below(&r, 2)) {
			syncmap__block_free(p, n, dirty);
		} else {
			struct sm_block_release rel = {0};
			size_t released = 0, worked = 0;
			while (!syncmap__block_release_step(p, n, dirty, &rel, (size_t)64 << 10, &released, &worked))
				;
			if (released != n)
				TEST_FAIL("released %zu of %zu", released, n);
		}
	}
	return NULL;
}

TEST(test_threads)
{
	syncmap__block_cache_set_limit((size_t)8 << 20); /* some cached, some given back */
	struct worker w[NTHREADS];
	size_t iters = (size_t)(2000 * test_scale());
	if (iters < 200)
		iters = 200;
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.seed = test_rng_next(&rng) | 1, .iters = iters};
		ASSERT_EQ(pthread_create(&w[i].t, NULL, worker_main, &w[i]), 0);
	}
	size_t checked = 0;
	for (int i = 0; i < NTHREADS; i++) {
		ASSERT_EQ(pthread_join(w[i].t, NULL), 0);
		checked += w[i].reused_checked;
	}
	struct syncmap__block_cache_stats st = cstats();
	printf("  %d threads x %zu blocks: %zu hits, %zu mapped, %zu rejected; %zu checked whole\n", NTHREADS, iters,
	       st.hits, st.fresh, st.rejected, checked);
	ASSERT_GT(st.hits, 0);
	ASSERT_GT(st.rejected, 0);
	ASSERT_LE(st.bytes, st.limit);
	ASSERT_EQ(st.reserved, 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_rng_init(&rng, test_seed());
	RUN(test_block_reuse_is_zero);
	RUN(test_block_bound);
	RUN(test_block_release_steps);
	RUN(test_block_fault_injection);
	RUN(test_map_reuse);
	RUN(test_map_cache_full);
	RUN(test_public_limit);
	RUN(test_huge_advice);
	RUN(test_threads);
	return test_run_summary("blockcache");
}
