/*
 * bad_input.c - API contract details: bad input, out-pointers, errno, and
 * the operations that must not allocate.
 *
 * SPDX-License-Identifier: MIT
 *
 *   - a NULL map, and a NULL key with klen > 0, for every function: -EINVAL,
 *     false with errno = EINVAL, or a no-op; nothing stored, nothing
 *     allocated, the caller's value not taken (not passed to free_value);
 *   - len(NULL) == 0, free(NULL), clear(NULL), range(NULL, fn),
 *     range(m, NULL), stats(NULL, &st) (zeroed), stats(m, NULL);
 *   - the NULL key with klen 0 is the empty key, same as "" with klen 0;
 *   - CompareAndSwap never creates a key (Go's
 *     TestCompareAndSwap_NonExistingKey), even with old == NULL, and makes no
 *     allocation when it fails (key missing, deleted, expunged, only in the
 *     dirty map, value unequal), in both value modes; neither do Load,
 *     CompareAndDelete that fails, Range and Clear of an empty map (Go's
 *     TestMapRangeNoAllocations / TestMapClearNoAllocations);
 *   - load_or_store sets *actual = val when it stores; swap returns 0 for a
 *     new key and leaves *prev untouched; every out-pointer may be NULL;
 *   - errno is untouched by a load miss and by delete;
 *   - syncmap_new fails cleanly (NULL, ENOMEM) when its allocation fails;
 *   - syncmap_version() is "0.2.0";
 *   - shards: not a power of two, or over SYNCMAP_MAX_SHARDS, is EINVAL;
 *     the automatic count is a power of two >= 32x the CPUs (at most 128);
 *     an empty map holds at most 4 KiB whatever its shard count (shards
 *     take memory on their first write; mallinfo2, not under sanitizers),
 *     and a written shard shows in stats.shards_used.
 */
#include "smtest.h"

#include <malloc.h>

#include "alloc.h"

static void *const JUNK = (void *)(uintptr_t)0x5A5A5A5A5A5A5A5AULL;

static int range_calls;

static bool count_fn(const void *key, size_t klen, void *val, void *ctx)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)ctx;
	range_calls++;
	return true;
}

#define EXPECT_EINVAL_BOOL(call)                                          \
	do {                                                              \
		errno = 0;                                                \
		bool r_ = (call);                                         \
		if (r_ || errno != EINVAL)                                \
			TEST_FAIL("%s: %d, errno %d (want false, EINVAL)", #call, r_, errno); \
	} while (0)

#define EXPECT_INT(call, want)                                            \
	do {                                                              \
		int r_ = (call);                                          \
		if (r_ != (want))                                         \
			TEST_FAIL("%s: %d, want %d", #call, r_, (int)(want)); \
	} while (0)

/* Count the library's allocations during `body`. */
#define ALLOCS(body)                                                      \
	({                                                                \
		syncmap__fault_count_start();                                   \
		body;                                                     \
		long n_ = syncmap__fault_count();                               \
		syncmap__fault_stop();                                          \
		n_;                                                       \
	})

static void test_null_map(void)
{
	void *v = JUNK;
	EXPECT_EINVAL_BOOL(syncmap_load(NULL, "k", 1, &v));
	PTR_EQ(v, JUNK);
	EXPECT_EINVAL_BOOL(syncmap_load(NULL, NULL, 0, NULL));
	EXPECT_INT(syncmap_store(NULL, "k", 1, JUNK), -EINVAL);
	EXPECT_INT(syncmap_load_or_store(NULL, "k", 1, JUNK, &v), -EINVAL);
	PTR_EQ(v, JUNK);
	EXPECT_EINVAL_BOOL(syncmap_load_and_delete(NULL, "k", 1, &v));
	PTR_EQ(v, JUNK);
	syncmap_delete(NULL, "k", 1);
	EXPECT_INT(syncmap_swap(NULL, "k", 1, JUNK, &v), -EINVAL);
	PTR_EQ(v, JUNK);
	EXPECT_INT(syncmap_compare_and_swap(NULL, "k", 1, NULL, JUNK), -EINVAL);
	EXPECT_EINVAL_BOOL(syncmap_compare_and_delete(NULL, "k", 1, NULL));
	range_calls = 0;
	syncmap_range(NULL, count_fn, NULL);
	ASSERT_EQ(range_calls, 0);
	syncmap_clear(NULL);
	ASSERT_EQ(syncmap_len(NULL), 0);
	syncmap_free(NULL);
	struct syncmap_stats st;
	memset(&st, 0xff, sizeof(st));
	syncmap_stats(NULL, &st);
	ASSERT_EQ(st.len, 0);
	ASSERT_EQ(st.read_keys, 0);
	ASSERT_EQ(st.dirty_keys, 0);
	ASSERT_FALSE(st.amended);
	ASSERT_FALSE(st.building);
	ASSERT_EQ(st.promotions, 0);
	ASSERT_EQ(st.entries, 0);
	syncmap_stats(NULL, NULL);
}

/* NULL key with klen > 0 on a real map, in both modes: rejected, nothing
 * allocated, nothing stored, the value never passed to free_value. */
static void test_null_key(bool boxed)
{
	struct tracker tr;
	tracker_init(&tr, true, false);
	struct syncmap_options o = {.free_value = boxed ? tv_free_value : NULL, .free_ctx = &tr, .seed = 0, .shards = test_shards()};
	struct syncmap *m = syncmap_new(&o);
	ASSERT(m != NULL);
	/* one real key, so the map is not trivially empty */
	struct tv *a = tv_new(&tr);
	atomic_store(&a->state, TV_LIVE);
	ASSERT_EQ(syncmap_store(m, "a", 1, a), 0);

	struct tv *x = tv_new(&tr); /* offered with a bad key: stays ours */
	void *v = JUNK;
	long n = ALLOCS({
		EXPECT_EINVAL_BOOL(syncmap_load(m, NULL, 3, &v));
		EXPECT_INT(syncmap_store(m, NULL, 3, x), -EINVAL);
		EXPECT_INT(syncmap_load_or_store(m, NULL, 3, x, &v), -EINVAL);
		EXPECT_EINVAL_BOOL(syncmap_load_and_delete(m, NULL, 3, &v));
		syncmap_delete(m, NULL, 3);
		EXPECT_INT(syncmap_swap(m, NULL, 3, x, &v), -EINVAL);
		EXPECT_INT(syncmap_compare_and_swap(m, NULL, 3, a, x), -EINVAL);
		EXPECT_INT(syncmap_compare_and_swap(m, NULL, 3, NULL, x), -EINVAL);
		EXPECT_EINVAL_BOOL(syncmap_compare_and_delete(m, NULL, 3, a));
	});
	ASSERT_EQ(n, 0);
	PTR_EQ(v, JUNK);
	ASSERT_EQ(syncmap_len(m), 1);
	range_calls = 0;
	syncmap_range(m, count_fn, NULL);
	ASSERT_EQ(range_calls, 1);
	syncmap_range(m, NULL, NULL); /* no-op */
	struct syncmap_stats st;
	syncmap_stats(m, NULL);
	syncmap_stats(m, &st);
	ASSERT_EQ(st.len, 1);

	atomic_store(&a->state, TV_LEAVING);
	syncmap_free(m);
	/* x was never the map's: free_value (strict tracker) would have
	 * aborted had it seen x; a was freed exactly once */
	if (boxed) {
		ASSERT_EQ(atomic_load(&a->frees), 1);
		ASSERT_EQ(atomic_load(&x->frees), 0);
	}
	tracker_destroy(&tr);
}

/* (NULL, 0) and ("", 0) name the same key. */
static void test_empty_key(void)
{
	struct syncmap *m = syncmap_new(NULL);
	void *v = JUNK;
	ASSERT_FALSE(syncmap_load(m, NULL, 0, &v));
	ASSERT_EQ(syncmap_store(m, NULL, 0, (void *)1), 0);
	ASSERT_TRUE(syncmap_load(m, "", 0, &v));
	PTR_EQ(v, (void *)1);
	ASSERT_TRUE(syncmap_load(m, "xyz", 0, &v)); /* klen 0: the bytes do not matter */
	ASSERT_EQ(syncmap_swap(m, "", 0, (void *)2, &v), 1);
	PTR_EQ(v, (void *)1);
	ASSERT_EQ(syncmap_compare_and_swap(m, NULL, 0, (void *)2, NULL), 1);
	ASSERT_TRUE(syncmap_load(m, NULL, 0, &v));
	PTR_EQ(v, NULL);
	ASSERT_EQ(syncmap_len(m), 1);
	ASSERT_TRUE(syncmap_compare_and_delete(m, "", 0, NULL));
	ASSERT_EQ(syncmap_len(m), 0);
	ASSERT_FALSE(syncmap_load(m, NULL, 0, &v));
	syncmap_free(m);
}

/* Helpers that put a map in a given state for key "k" (1 byte) with other
 * keys around it. */
enum kstate { K_MISSING, K_MISSING_AMENDED, K_DELETED_IN_READ, K_EXPUNGED, K_ONLY_DIRTY, K_IN_READ, K_NSTATES };
static const char *kstate_name[] = {"missing (not amended)", "missing (amended)", "deleted in the snapshot",
				    "expunged", "only in the dirty map", "in the snapshot"};

static char other_keys[64][8];

static void promote_all(struct syncmap *m)
{
	syncmap_range(m, count_fn, NULL);
	struct syncmap_stats st;
	syncmap_stats(m, &st);
	ASSERT_FALSE(st.amended);
}

/* Returns the map; *present tells whether "k" holds `val`. */
static struct syncmap *make_state(enum kstate s, const struct syncmap_options *o, void *(*mk)(void *), void *mkctx,
				  void *val)
{
	struct syncmap *m = syncmap_new(o);
	ASSERT(m != NULL);
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(syncmap_store(m, other_keys[i], strlen(other_keys[i]), mk(mkctx)), 0);
	promote_all(m);
	struct syncmap_stats st;
	switch (s) {
	case K_MISSING:
		break;
	case K_MISSING_AMENDED:
		/* new keys: the first starts the build, the next finish it */
		for (int i = 0; i < 4; i++)
			ASSERT_EQ(syncmap_store(m, other_keys[20 + i], 3, mk(mkctx)), 0);
		break;
	case K_DELETED_IN_READ:
		ASSERT_EQ(syncmap_store(m, "k", 1, mk(mkctx)), 0);
		promote_all(m);
		syncmap_delete(m, "k", 1);
		break;
	case K_EXPUNGED:
		ASSERT_EQ(syncmap_store(m, "k", 1, mk(mkctx)), 0);
		promote_all(m);
		syncmap_delete(m, "k", 1);
		/* a new key starts the dirty build; a few locked ops finish
		 * the copy, which expunges the deleted entry */
		ASSERT_EQ(syncmap_store(m, other_keys[20], 3, mk(mkctx)), 0);
		for (int i = 0; i < 40; i++)
			ASSERT_EQ(syncmap_store(m, other_keys[21 + i], 3, mk(mkctx)), 0);
		break;
	case K_ONLY_DIRTY:
		ASSERT_EQ(syncmap_store(m, other_keys[20], 3, mk(mkctx)), 0);
		for (int i = 0; i < 40; i++)
			ASSERT_EQ(syncmap_store(m, other_keys[21 + i], 3, mk(mkctx)), 0);
		ASSERT_EQ(syncmap_store(m, "k", 1, val), 0);
		break;
	case K_IN_READ:
		ASSERT_EQ(syncmap_store(m, "k", 1, val), 0);
		promote_all(m);
		break;
	default:
		ASSERT(0);
	}
	syncmap_stats(m, &st);
	if (st.building)
		TEST_FAIL("state %s: the dirty build is still running", kstate_name[s]);
	if (s == K_MISSING_AMENDED || s == K_EXPUNGED || s == K_ONLY_DIRTY)
		ASSERT_TRUE(st.amended);
	return m;
}

static void *mk_plain(void *ctx)
{
	(void)ctx;
	return (void *)(uintptr_t)0x1000;
}

static void *mk_boxed(void *ctx)
{
	struct tv *v = tv_new(ctx);
	atomic_store(&v->state, TV_LIVE);
	return v;
}

static void test_no_alloc(bool boxed)
{
	struct tracker tr;
	tracker_init(&tr, false, false);
	struct syncmap_options o = {.free_value = boxed ? tv_free_value : NULL, .free_ctx = &tr, .seed = 0, .shards = test_shards()};
	void *(*mk)(void *) = boxed ? mk_boxed : mk_plain;
	for (int s = 0; s < K_NSTATES; s++) {
		void *val = mk(&tr);
		struct syncmap *m = make_state(s, &o, mk, &tr, val);
		bool present = s == K_ONLY_DIRTY || s == K_IN_READ;
		size_t len0 = syncmap_len(m);
		void *nv = (void *)(uintptr_t)0x2000;
		void *out = JUNK;
		long n;
		/* Go's TestCompareAndSwap_NonExistingKey, and its mirror on
		 * deleted and expunged keys: never creates the key */
		errno = 0;
		n = ALLOCS(ASSERT_EQ(syncmap_compare_and_swap(m, "k", 1, NULL, nv), 0));
		if (n != 0)
			TEST_FAIL("%s mode, key %s: CAS(old=NULL) allocated %ld times", boxed ? "boxed" : "plain",
				  kstate_name[s], n);
		ASSERT_EQ(errno, 0);
		n = ALLOCS(ASSERT_EQ(syncmap_compare_and_swap(m, "k", 1, JUNK, nv), 0));
		if (n != 0)
			TEST_FAIL("key %s: CAS(unequal) allocated %ld times", kstate_name[s], n);
		n = ALLOCS(ASSERT_EQ(syncmap_compare_and_delete(m, "k", 1, JUNK), false));
		ASSERT_EQ(n, 0);
		if (!present) {
			n = ALLOCS(ASSERT_EQ(syncmap_compare_and_delete(m, "k", 1, NULL), false));
			ASSERT_EQ(n, 0);
		}
		n = ALLOCS(ASSERT_EQ(syncmap_load(m, "k", 1, &out), present));
		if (n != 0)
			TEST_FAIL("key %s: load allocated %ld times", kstate_name[s], n);
		if (present)
			PTR_EQ(out, val);
		else
			PTR_EQ(out, JUNK);
		ASSERT_EQ(syncmap_len(m), len0);
		if (!present) {
			out = JUNK;
			ASSERT_FALSE(syncmap_load(m, "k", 1, &out));
			PTR_EQ(out, JUNK);
		}
		/* a successful CAS: exactly one allocation (the box) when boxed,
		 * none for plain values */
		if (present) {
			void *nv2 = mk(&tr);
			n = ALLOCS(ASSERT_EQ(syncmap_compare_and_swap(m, "k", 1, val, nv2), 1));
			if (s == K_IN_READ)
				ASSERT_EQ(n, boxed ? 1 : 0);
			ASSERT_TRUE(syncmap_load(m, "k", 1, &out));
			PTR_EQ(out, nv2);
		} else if (boxed) {
			/* val was never stored: it is ours */
			atomic_store(&((struct tv *)val)->state, TV_TEST);
			tv_unused(&tr, val);
		}
		syncmap_free(m);
	}
	/* empty map: Range and Clear allocate nothing */
	struct syncmap *m = syncmap_new(&o);
	range_calls = 0;
	ASSERT_EQ(ALLOCS(syncmap_range(m, count_fn, NULL)), 0);
	ASSERT_EQ(range_calls, 0);
	ASSERT_EQ(ALLOCS(syncmap_clear(m)), 0);
	/* and after everything was deleted and cleared */
	ASSERT_EQ(syncmap_store(m, "z", 1, mk(&tr)), 0);
	syncmap_clear(m);
	ASSERT_EQ(ALLOCS(syncmap_clear(m)), 0);
	ASSERT_EQ(ALLOCS(syncmap_range(m, count_fn, NULL)), 0);
	ASSERT_EQ(range_calls, 0);
	syncmap_free(m);
	if (boxed)
		tracker_check_all_freed(&tr);
	tracker_destroy(&tr);
}

static void test_out_pointers(void)
{
	struct syncmap *m = syncmap_new(NULL);
	void *v = JUNK;
	/* load_or_store: stores -> 0 and *actual = val */
	ASSERT_EQ(syncmap_load_or_store(m, "a", 1, (void *)11, &v), 0);
	PTR_EQ(v, (void *)11);
	v = JUNK;
	ASSERT_EQ(syncmap_load_or_store(m, "a", 1, (void *)12, &v), 1);
	PTR_EQ(v, (void *)11);
	v = JUNK;
	ASSERT_EQ(syncmap_load_or_store(m, "n", 1, NULL, &v), 0); /* NULL is a value */
	PTR_EQ(v, NULL);
	v = JUNK;
	ASSERT_EQ(syncmap_load_or_store(m, "n", 1, (void *)1, &v), 1);
	PTR_EQ(v, NULL);
	ASSERT_EQ(syncmap_load_or_store(m, "b", 1, (void *)13, NULL), 0);
	ASSERT_EQ(syncmap_load_or_store(m, "b", 1, (void *)14, NULL), 1);
	/* swap: 0 for a new key, *prev untouched; 1 and *prev otherwise */
	v = JUNK;
	ASSERT_EQ(syncmap_swap(m, "c", 1, (void *)15, &v), 0);
	PTR_EQ(v, JUNK);
	ASSERT_EQ(syncmap_swap(m, "c", 1, (void *)16, &v), 1);
	PTR_EQ(v, (void *)15);
	ASSERT_EQ(syncmap_swap(m, "c", 1, (void *)17, NULL), 1);
	ASSERT_EQ(syncmap_swap(m, "d", 1, (void *)18, NULL), 0);
	/* a deleted key: swap reports new, *prev untouched */
	syncmap_delete(m, "d", 1);
	v = JUNK;
	ASSERT_EQ(syncmap_swap(m, "d", 1, (void *)19, &v), 0);
	PTR_EQ(v, JUNK);
	/* load / load_and_delete with NULL out */
	ASSERT_TRUE(syncmap_load(m, "c", 1, NULL));
	ASSERT_TRUE(syncmap_load_and_delete(m, "c", 1, NULL));
	ASSERT_FALSE(syncmap_load_and_delete(m, "c", 1, NULL));
	v = JUNK;
	ASSERT_FALSE(syncmap_load_and_delete(m, "c", 1, &v));
	PTR_EQ(v, JUNK);
	ASSERT_TRUE(syncmap_load_and_delete(m, "n", 1, &v));
	PTR_EQ(v, NULL);
	/* errno: untouched by a miss and by delete */
	errno = 777;
	ASSERT_FALSE(syncmap_load(m, "zz", 2, &v));
	ASSERT_EQ(errno, 777);
	syncmap_delete(m, "zz", 2);
	syncmap_delete(m, "a", 1);
	ASSERT_EQ(errno, 777);
	ASSERT_EQ(syncmap_len(m), 2); /* b, d */
	syncmap_free(m);
}

static void test_new_enomem(void)
{
	syncmap__fault_arm(1);
	errno = 0;
	struct syncmap *m = syncmap_new(NULL);
	ASSERT_TRUE(syncmap__fault_fired());
	syncmap__fault_stop();
	ASSERT(m == NULL);
	ASSERT_EQ(errno, ENOMEM);
	/* zeroed options = defaults */
	struct syncmap_options o;
	memset(&o, 0, sizeof(o));
	m = syncmap_new(&o);
	ASSERT(m != NULL);
	struct syncmap_stats st;
	syncmap_stats(m, &st);
	ASSERT_EQ(st.len, 0);
	ASSERT_EQ(st.read_keys, 0);
	ASSERT_EQ(st.promotions, 0);
	ASSERT_EQ(st.pending_reclaim, 0);
	ASSERT_EQ(st.entries, 0);
	syncmap_free(m);
}

static void test_shards_option(void)
{
	static const unsigned bad[] = {3, 6, 100, SYNCMAP_MAX_SHARDS * 2, 0x80000001u};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		struct syncmap *m = syncmap_new(&(struct syncmap_options){.shards = bad[i]});
		if (m || errno != EINVAL)
			TEST_FAIL("syncmap_new(shards %u): %p errno %d, want NULL EINVAL", bad[i], (void *)m, errno);
	}
	unsigned def = syncmap_default_shards();
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	ASSERT((def & (def - 1)) == 0);
	ASSERT(def <= SYNCMAP_MAX_SHARDS);
	ASSERT(def <= 128);
	ASSERT(def == 128 || (long)def >= 32 * cpus);
	ASSERT(def == 1 || (long)(def / 2) < 32 * cpus);
	for (unsigned s = 1; s <= SYNCMAP_MAX_SHARDS; s *= 2) {
		struct mallinfo2 before = mallinfo2();
		struct syncmap *m = syncmap_new(&(struct syncmap_options){.shards = s});
		struct mallinfo2 after = mallinfo2();
		ASSERT(m != NULL);
		size_t bytes = after.uordblks + after.hblkhd - before.uordblks - before.hblkhd;
		struct syncmap_stats st;
		syncmap_stats(m, &st);
		ASSERT_EQ(st.shards, s);
		ASSERT_EQ(st.shards_used, 0);
		if (s == 64 || s == def)
			printf("an empty map with %u shards: %zu bytes\n", s, bytes);
		if (!UNDER_SANITIZER && s <= 64 && bytes > 4096)
			TEST_FAIL("an empty map with %u shards holds %zu bytes (bound 4096)", s, bytes);
		ASSERT_EQ(syncmap_store(m, "k", 1, NULL), 0);
		syncmap_stats(m, &st);
		ASSERT_EQ(st.shards_used, 1);
		syncmap_free(m);
	}
}

int main(void)
{
	(void)test_begin();
	test_shards_option();
	for (int i = 0; i < 64; i++)
		snprintf(other_keys[i], sizeof(other_keys[i]), "o%02d", i);
	ASSERT_EQ(strcmp(syncmap_version(), "0.2.0"), 0);
	test_null_map();
	test_null_key(false);
	test_null_key(true);
	test_empty_key();
	test_no_alloc(false);
	test_no_alloc(true);
	test_out_pointers();
	test_new_enomem();
	printf("ok\n");
	return 0;
}
