/*
 * errno.c - calls that report no error leave errno alone, even when the
 * kernel refuses the library's advice.
 *
 * SPDX-License-Identifier: MIT
 *
 * madvise is interposed (this executable's definition wins over libc's for
 * the library's call) and always fails with EINVAL, as on a kernel without
 * transparent huge pages.  A promotion asks for huge pages for the new
 * snapshot's arrays; a Load that misses can be the call that promotes.
 * Every call here that succeeds, or answers "no" without an error, must
 * leave errno as the caller set it: Load (hit and miss, including the
 * promoting one), Store, LoadOrStore, Swap, CompareAndSwap, Delete, Range,
 * Clear, Len and stats.
 */
#include "smtest.h"

#include <sys/mman.h>

static atomic_long madvise_calls;

int madvise(void *addr, size_t len, int advice);
int madvise(void *addr, size_t len, int advice)
{
	(void)addr, (void)len, (void)advice;
	atomic_fetch_add(&madvise_calls, 1);
	errno = EINVAL;
	return -1;
}

#define SENTINEL 4242

#define KEEPS_ERRNO(call)                                                       \
	do {                                                                    \
		errno = SENTINEL;                                               \
		(void)(call);                                                   \
		if (errno != SENTINEL)                                          \
			TEST_FAIL("%s changed errno to %d", #call, errno);      \
	} while (0)

static bool count_fn(const void *k, size_t kl, void *v, void *ctx)
{
	(void)k, (void)kl, (void)v;
	++*(long *)ctx;
	return true;
}

int main(void)
{
	test_begin();
	watchdog(300, "errno tests");
	/* one shard, so its arrays pass the 2 MiB huge-page threshold */
	struct syncmap *m = syncmap_new(&(struct syncmap_options){.shards = 1});
	ASSERT(m != NULL);
	const uint64_t n = 300000;
	for (uint64_t i = 0; i < n; i++)
		KEEPS_ERRNO(syncmap_store(m, &i, sizeof(i), (void *)(uintptr_t)(i + 1)));
	/* misses until the dirty map is promoted: by a Load */
	struct syncmap_stats st;
	syncmap_stats(m, &st);
	ASSERT_TRUE(st.amended);
	uint64_t miss = n;
	for (;;) {
		KEEPS_ERRNO(syncmap_load(m, &miss, sizeof(miss), NULL));
		syncmap_stats(m, &st);
		if (!st.amended)
			break;
		miss++;
	}
	if (atomic_load(&madvise_calls) == 0)
		TEST_FAIL("the promotion did not ask for huge pages: the test checks nothing");
	uint64_t k = 7;
	void *v;
	KEEPS_ERRNO(syncmap_load(m, &k, sizeof(k), &v));
	KEEPS_ERRNO(syncmap_load_or_store(m, &k, sizeof(k), NULL, &v));
	KEEPS_ERRNO(syncmap_swap(m, &k, sizeof(k), (void *)9, &v));
	KEEPS_ERRNO(syncmap_compare_and_swap(m, &k, sizeof(k), (void *)9, (void *)10));
	KEEPS_ERRNO(syncmap_compare_and_swap(m, &k, sizeof(k), (void *)9, (void *)10));
	KEEPS_ERRNO(syncmap_compare_and_delete(m, &k, sizeof(k), (void *)1));
	syncmap_delete(m, &k, sizeof(k));
	KEEPS_ERRNO(syncmap_load_and_delete(m, &k, sizeof(k), &v));
	KEEPS_ERRNO(syncmap_len(m));
	KEEPS_ERRNO((syncmap_stats(m, &st), 0));
	long visits = 0;
	/* a new key amends; range promotes again (more advice refused) */
	uint64_t nk = 2 * n;
	KEEPS_ERRNO(syncmap_store(m, &nk, sizeof(nk), NULL));
	long calls = atomic_load(&madvise_calls);
	KEEPS_ERRNO((syncmap_range(m, count_fn, &visits), 0));
	ASSERT_GT(atomic_load(&madvise_calls), calls);
	ASSERT_EQ(visits, (long)n);
	KEEPS_ERRNO((syncmap_clear(m), 0));
	syncmap_free(m);
	printf("errno kept through %ld refused madvise calls\n", atomic_load(&madvise_calls));
	printf("ok\n");
	return 0;
}
