/*
 * gosubtests.c - Go's internal/sync HashTrieMap subtests (Go 1.24's
 * sync.Map tests), in C, on syncmap.
 *
 * SPDX-License-Identifier: MIT
 *
 * 128 keys: i written in binary ("0", "1", "10", ...), value i (so key "0"
 * holds the value 0: NULL, a real value).  A fresh map per subtest, as in Go:
 *   LoadEmpty, LoadOrStore, All, Clear/{Simple,Concurrent},
 *   CompareAndDelete/{All,One,Multiple,Iterate,ConcurrentUnsharedKeys,
 *                     ConcurrentSharedKeys},
 *   CompareAndSwap/{All,One,Multiple,ConcurrentUnsharedKeys,
 *                   ConcurrentUnsharedKeysWithDelete,ConcurrentSharedKeys},
 *   Swap/{All,One,Multiple,ConcurrentUnsharedKeys,
 *         ConcurrentUnsharedKeysWithDelete,ConcurrentSharedKeys},
 *   LoadAndDelete/{All,One,Multiple,Iterate,ConcurrentUnsharedKeys,
 *                  ConcurrentSharedKeys}.
 * In the shared-key subtests exactly one thread's CompareAndSwap,
 * CompareAndDelete or LoadAndDelete must win each key (checked).
 * The concurrent subtests run 12 threads (GOMAXPROCS in Go; here more
 * threads than cores) and are repeated (TEST_SCALE) for more interleavings.
 * Everything runs twice: values as plain words, and with free_value set
 * (counting frees: after syncmap_free, every value that entered the map was
 * freed exactly once — values are small integers, so frees are counted per
 * value in a table).
 */
#include "smtest.h"

#define N 128
#define GMP 12
#define MAXINT ((void *)(uintptr_t)INTPTR_MAX)
#define V(i) ((void *)(uintptr_t)(i))

static char data[N][16];
static size_t dlen[N];
static const char *sub = "?";
static bool boxed;

/* boxed: frees per value (values are < 1024 here) */
static atomic_long frees_of[1024], entered_of[1024];

/* shared-key subtests: successes per key (exactly one thread wins each) */
static atomic_int wins[N];

static void count_free(void *val, void *ctx)
{
	(void)ctx;
	uintptr_t v = (uintptr_t)val;
	if (v == (uintptr_t)MAXINT)
		TEST_FAIL("%s: freed MaxInt, which was never stored", sub);
	ASSERT_LT(v, 1024);
	atomic_fetch_add(&frees_of[v], 1);
}

static void entered(uintptr_t v)
{
	if (boxed)
		atomic_fetch_add(&entered_of[v], 1);
}

static struct syncmap *new_map(const char *name)
{
	sub = name;
	struct syncmap_options o = {.free_value = boxed ? count_free : NULL, .free_ctx = NULL, .seed = 0, .shards = test_shards()};
	struct syncmap *m = syncmap_new(&o);
	ASSERT(m != NULL);
	return m;
}

static void free_map(struct syncmap *m)
{
	if (!boxed) {
		/* no values to count: the deferred path, which does not wait
		 * for a grace period (~10 ms per map otherwise) */
		syncmap_read_lock();
		syncmap_free(m);
		syncmap_read_unlock();
		return;
	}
	syncmap_free(m);
	for (int v = 0; v < 1024; v++) {
		long e = atomic_load(&entered_of[v]), f = atomic_load(&frees_of[v]);
		if (e != f)
			TEST_FAIL("%s: value %d entered the map %ld times, freed %ld times", sub, v, e, f);
		atomic_store(&entered_of[v], 0);
		atomic_store(&frees_of[v], 0);
	}
}

#define FAILK(key, ...)                                                      \
	do {                                                                 \
		fprintf(stderr, "%s: key \"%s\": ", sub, (const char *)(key)); \
		TEST_FAIL(__VA_ARGS__);                                      \
	} while (0)

static void expect_missing(struct syncmap *m, const char *k)
{
	void *v = NULL;
	if (syncmap_load(m, k, strlen(k), &v))
		FAILK(k, "expected missing, got %p", v);
}

static void expect_present(struct syncmap *m, const char *k, uintptr_t want)
{
	void *v = MAXINT;
	if (!syncmap_load(m, k, strlen(k), &v))
		FAILK(k, "expected present with %zu", (size_t)want);
	if (v != V(want))
		FAILK(k, "expected %zu, got %p", (size_t)want, v);
}

static void expect_stored(struct syncmap *m, const char *k, uintptr_t v)
{
	void *actual = MAXINT;
	int r = syncmap_load_or_store(m, k, strlen(k), V(v), &actual);
	if (r != 0 || actual != V(v))
		FAILK(k, "load_or_store(%zu): %d, actual %p; expected stored", (size_t)v, r, actual);
	entered(v);
}

static void expect_loaded(struct syncmap *m, const char *k, uintptr_t offer, uintptr_t want)
{
	void *actual = MAXINT;
	int r = syncmap_load_or_store(m, k, strlen(k), V(offer), &actual);
	if (r != 1 || actual != V(want))
		FAILK(k, "load_or_store: %d, actual %p; expected loaded %zu", r, actual, (size_t)want);
}

static void expect_deleted(struct syncmap *m, const char *k, uintptr_t old)
{
	if (!syncmap_compare_and_delete(m, k, strlen(k), V(old)))
		FAILK(k, "expected compare_and_delete(%zu) to delete", (size_t)old);
}

static void expect_not_deleted(struct syncmap *m, const char *k, void *old)
{
	if (syncmap_compare_and_delete(m, k, strlen(k), old))
		FAILK(k, "expected compare_and_delete(%p) to fail", old);
}

static void expect_swapped(struct syncmap *m, const char *k, uintptr_t old, uintptr_t nv)
{
	if (syncmap_compare_and_swap(m, k, strlen(k), V(old), V(nv)) != 1)
		FAILK(k, "expected CAS %zu -> %zu to swap", (size_t)old, (size_t)nv);
	if (nv != old) /* the same pointer stays: nothing entered or left */
		entered(nv);
}

static void expect_not_swapped(struct syncmap *m, const char *k, void *old, uintptr_t nv)
{
	if (syncmap_compare_and_swap(m, k, strlen(k), old, V(nv)) != 0)
		FAILK(k, "expected CAS %p -> %zu to fail", old, (size_t)nv);
}

static void expect_loaded_from_swap(struct syncmap *m, const char *k, uintptr_t want, uintptr_t nv)
{
	void *prev = MAXINT;
	int r = syncmap_swap(m, k, strlen(k), V(nv), &prev);
	if (r != 1 || prev != V(want))
		FAILK(k, "swap(%zu): %d, prev %p; expected %zu", (size_t)nv, r, prev, (size_t)want);
	if (nv != want)
		entered(nv);
}

static void expect_not_loaded_from_swap(struct syncmap *m, const char *k, uintptr_t nv)
{
	void *prev = MAXINT;
	int r = syncmap_swap(m, k, strlen(k), V(nv), &prev);
	if (r != 0 || prev != MAXINT)
		FAILK(k, "swap(%zu) of a missing key: %d, prev %p", (size_t)nv, r, prev);
	entered(nv);
}

static void expect_loaded_from_delete(struct syncmap *m, const char *k, uintptr_t want)
{
	void *v = MAXINT;
	if (!syncmap_load_and_delete(m, k, strlen(k), &v) || v != V(want))
		FAILK(k, "load_and_delete: expected %zu, got %p", (size_t)want, v);
}

static void expect_not_loaded_from_delete(struct syncmap *m, const char *k)
{
	void *v = MAXINT;
	if (syncmap_load_and_delete(m, k, strlen(k), &v))
		FAILK(k, "load_and_delete of a missing key returned %p", v);
}

/* the common prologue: every key stored with its index */
static void load_up(struct syncmap *m)
{
	for (int i = 0; i < N; i++) {
		expect_missing(m, data[i]);
		expect_stored(m, data[i], (uintptr_t)i);
		expect_present(m, data[i], (uintptr_t)i);
		expect_loaded(m, data[i], 0, (uintptr_t)i);
	}
}

static bool in(int i, const int *set, int n)
{
	for (int j = 0; j < n; j++)
		if (set[j] == i)
			return true;
	return false;
}

/* ---- testAll ------------------------------------------------------------------ */

enum yield_kind { Y_NONE, Y_CAD, Y_LAD };

struct all_ctx {
	struct syncmap *m;
	int visited[N];
	enum yield_kind y;
};

static int index_of(const void *key, size_t klen)
{
	for (int i = 0; i < N; i++)
		if (dlen[i] == klen && memcmp(data[i], key, klen) == 0)
			return i;
	return -1;
}

static bool all_fn(const void *key, size_t klen, void *val, void *ctx)
{
	struct all_ctx *c = ctx;
	int i = index_of(key, klen);
	if (i < 0)
		TEST_FAIL("%s: unexpected key in map", sub);
	if (val != V(i))
		FAILK(data[i], "range: value %p, want %d", val, i);
	if (c->visited[i]++)
		FAILK(data[i], "range visited it twice");
	if (c->y == Y_CAD)
		expect_deleted(c->m, data[i], (uintptr_t)i);
	else if (c->y == Y_LAD)
		expect_loaded_from_delete(c->m, data[i], (uintptr_t)i);
	return true;
}

static void test_all(struct syncmap *m, enum yield_kind y)
{
	for (int i = 0; i < N; i++)
		expect_stored(m, data[i], (uintptr_t)i);
	struct all_ctx c = {m, {0}, y};
	syncmap_range(m, all_fn, &c);
	for (int i = 0; i < N; i++)
		if (c.visited[i] != 1)
			FAILK(data[i], "range visited it %d times", c.visited[i]);
}

/* ---- sequential subtests -------------------------------------------------------- */

static const int multiple[] = {1, 105, 6, 85};

static void seq_tests(void)
{
	struct syncmap *m;

	m = new_map("LoadEmpty");
	for (int i = 0; i < N; i++)
		expect_missing(m, data[i]);
	free_map(m);

	m = new_map("LoadOrStore");
	load_up(m);
	for (int i = 0; i < N; i++) {
		expect_present(m, data[i], (uintptr_t)i);
		expect_loaded(m, data[i], 0, (uintptr_t)i);
	}
	free_map(m);

	m = new_map("All");
	test_all(m, Y_NONE);
	free_map(m);

	m = new_map("Clear/Simple");
	load_up(m);
	syncmap_clear(m);
	for (int i = 0; i < N; i++)
		expect_missing(m, data[i]);
	free_map(m);

	/* CompareAndDelete */
	m = new_map("CompareAndDelete/All");
	for (int r = 0; r < 3; r++) {
		load_up(m);
		for (int i = 0; i < N; i++) {
			expect_present(m, data[i], (uintptr_t)i);
			expect_not_deleted(m, data[i], MAXINT);
			expect_deleted(m, data[i], (uintptr_t)i);
			expect_not_deleted(m, data[i], V(i));
			expect_missing(m, data[i]);
		}
		for (int i = 0; i < N; i++)
			expect_missing(m, data[i]);
	}
	free_map(m);

	m = new_map("CompareAndDelete/One");
	load_up(m);
	expect_not_deleted(m, data[15], MAXINT);
	expect_deleted(m, data[15], 15);
	expect_not_deleted(m, data[15], V(15));
	for (int i = 0; i < N; i++)
		if (i == 15)
			expect_missing(m, data[i]);
		else
			expect_present(m, data[i], (uintptr_t)i);
	free_map(m);

	m = new_map("CompareAndDelete/Multiple");
	load_up(m);
	for (int j = 0; j < 4; j++) {
		int i = multiple[j];
		expect_not_deleted(m, data[i], MAXINT);
		expect_deleted(m, data[i], (uintptr_t)i);
		expect_not_deleted(m, data[i], V(i));
	}
	for (int i = 0; i < N; i++)
		if (in(i, multiple, 4))
			expect_missing(m, data[i]);
		else
			expect_present(m, data[i], (uintptr_t)i);
	free_map(m);

	m = new_map("CompareAndDelete/Iterate");
	test_all(m, Y_CAD);
	for (int i = 0; i < N; i++)
		expect_missing(m, data[i]);
	free_map(m);

	/* CompareAndSwap */
	m = new_map("CompareAndSwap/All");
	load_up(m);
	for (int j = 0; j < 3; j++)
		for (int i = 0; i < N; i++) {
			uintptr_t a = (uintptr_t)(i + j);
			expect_present(m, data[i], a);
			expect_not_swapped(m, data[i], MAXINT, a + 1);
			expect_swapped(m, data[i], a, a + 1);
			expect_not_swapped(m, data[i], V(a), a + 1);
			expect_present(m, data[i], a + 1);
		}
	for (int i = 0; i < N; i++)
		expect_present(m, data[i], (uintptr_t)i + 3);
	free_map(m);

	m = new_map("CompareAndSwap/One");
	load_up(m);
	expect_not_swapped(m, data[15], MAXINT, 16);
	expect_swapped(m, data[15], 15, 16);
	expect_not_swapped(m, data[15], V(15), 16);
	for (int i = 0; i < N; i++)
		expect_present(m, data[i], i == 15 ? 16 : (uintptr_t)i);
	free_map(m);

	m = new_map("CompareAndSwap/Multiple");
	load_up(m);
	for (int j = 0; j < 4; j++) {
		int i = multiple[j];
		expect_not_swapped(m, data[i], MAXINT, (uintptr_t)i + 1);
		expect_swapped(m, data[i], (uintptr_t)i, (uintptr_t)i + 1);
		expect_not_swapped(m, data[i], V(i), (uintptr_t)i + 1);
	}
	for (int i = 0; i < N; i++)
		expect_present(m, data[i], in(i, multiple, 4) ? (uintptr_t)i + 1 : (uintptr_t)i);
	free_map(m);

	/* Swap */
	m = new_map("Swap/All");
	for (int i = 0; i < N; i++) {
		expect_missing(m, data[i]);
		expect_not_loaded_from_swap(m, data[i], (uintptr_t)i);
		expect_present(m, data[i], (uintptr_t)i);
		expect_loaded_from_swap(m, data[i], (uintptr_t)i, (uintptr_t)i);
	}
	for (int j = 0; j < 3; j++)
		for (int i = 0; i < N; i++) {
			uintptr_t a = (uintptr_t)(i + j);
			expect_present(m, data[i], a);
			expect_loaded_from_swap(m, data[i], a, a + 1);
			expect_present(m, data[i], a + 1);
		}
	for (int i = 0; i < N; i++)
		expect_loaded_from_swap(m, data[i], (uintptr_t)i + 3, (uintptr_t)i + 3);
	free_map(m);

	m = new_map("Swap/One");
	for (int i = 0; i < N; i++) {
		expect_missing(m, data[i]);
		expect_not_loaded_from_swap(m, data[i], (uintptr_t)i);
		expect_present(m, data[i], (uintptr_t)i);
		expect_loaded_from_swap(m, data[i], (uintptr_t)i, (uintptr_t)i);
	}
	expect_loaded_from_swap(m, data[15], 15, 16);
	for (int i = 0; i < N; i++)
		expect_present(m, data[i], i == 15 ? 16 : (uintptr_t)i);
	free_map(m);

	m = new_map("Swap/Multiple");
	for (int i = 0; i < N; i++) {
		expect_missing(m, data[i]);
		expect_not_loaded_from_swap(m, data[i], (uintptr_t)i);
		expect_present(m, data[i], (uintptr_t)i);
		expect_loaded_from_swap(m, data[i], (uintptr_t)i, (uintptr_t)i);
	}
	for (int j = 0; j < 4; j++)
		expect_loaded_from_swap(m, data[multiple[j]], (uintptr_t)multiple[j], (uintptr_t)multiple[j] + 1);
	for (int i = 0; i < N; i++)
		expect_present(m, data[i], in(i, multiple, 4) ? (uintptr_t)i + 1 : (uintptr_t)i);
	free_map(m);

	/* LoadAndDelete */
	m = new_map("LoadAndDelete/All");
	for (int r = 0; r < 3; r++) {
		load_up(m);
		for (int i = 0; i < N; i++) {
			expect_present(m, data[i], (uintptr_t)i);
			expect_loaded_from_delete(m, data[i], (uintptr_t)i);
			expect_missing(m, data[i]);
			expect_not_loaded_from_delete(m, data[i]);
		}
		for (int i = 0; i < N; i++)
			expect_missing(m, data[i]);
	}
	free_map(m);

	m = new_map("LoadAndDelete/One");
	load_up(m);
	expect_present(m, data[15], 15);
	expect_loaded_from_delete(m, data[15], 15);
	expect_missing(m, data[15]);
	expect_not_loaded_from_delete(m, data[15]);
	for (int i = 0; i < N; i++)
		if (i == 15)
			expect_missing(m, data[i]);
		else
			expect_present(m, data[i], (uintptr_t)i);
	free_map(m);

	m = new_map("LoadAndDelete/Multiple");
	load_up(m);
	for (int j = 0; j < 4; j++) {
		int i = multiple[j];
		expect_present(m, data[i], (uintptr_t)i);
		expect_loaded_from_delete(m, data[i], (uintptr_t)i);
		expect_missing(m, data[i]);
		expect_not_loaded_from_delete(m, data[i]);
	}
	for (int i = 0; i < N; i++)
		if (in(i, multiple, 4))
			expect_missing(m, data[i]);
		else
			expect_present(m, data[i], (uintptr_t)i);
	free_map(m);

	m = new_map("LoadAndDelete/Iterate");
	test_all(m, Y_LAD);
	for (int i = 0; i < N; i++)
		expect_missing(m, data[i]);
	free_map(m);
}

/* ---- concurrent subtests -------------------------------------------------------- */

enum ctest {
	CAD_UNSHARED,
	CAD_SHARED,
	CAS_UNSHARED,
	CAS_UNSHARED_DEL,
	CAS_SHARED,
	SWAP_UNSHARED,
	SWAP_UNSHARED_DEL,
	SWAP_SHARED,
	LAD_UNSHARED,
	LAD_SHARED,
	CLEAR_CONCURRENT,
	CTESTS
};

static const char *ctest_name[] = {
	"CompareAndDelete/ConcurrentUnsharedKeys", "CompareAndDelete/ConcurrentSharedKeys",
	"CompareAndSwap/ConcurrentUnsharedKeys",   "CompareAndSwap/ConcurrentUnsharedKeysWithDelete",
	"CompareAndSwap/ConcurrentSharedKeys",     "Swap/ConcurrentUnsharedKeys",
	"Swap/ConcurrentUnsharedKeysWithDelete",   "Swap/ConcurrentSharedKeys",
	"LoadAndDelete/ConcurrentUnsharedKeys",    "LoadAndDelete/ConcurrentSharedKeys",
	"Clear/Concurrent",
};

struct cthr {
	struct syncmap *m;
	enum ctest t;
	int id;
	struct start_line *start;
};

static void *cworker(void *arg)
{
	struct cthr *c = arg;
	struct syncmap *m = c->m;
	uintptr_t id = (uintptr_t)c->id;
	char key[N][40];
	for (int i = 0; i < N; i++)
		snprintf(key[i], sizeof(key[i]), "%.15s-%d", data[i], c->id);
	start_line_wait(c->start, GMP);
	switch (c->t) {
	case CAD_UNSHARED:
	case CAS_UNSHARED:
	case CAS_UNSHARED_DEL:
	case LAD_UNSHARED:
		for (int i = 0; i < N; i++) {
			expect_missing(m, key[i]);
			expect_stored(m, key[i], id);
			expect_present(m, key[i], id);
			expect_loaded(m, key[i], 0, id);
		}
		for (int i = 0; i < N; i++) {
			expect_present(m, key[i], id);
			if (c->t == CAD_UNSHARED) {
				expect_deleted(m, key[i], id);
				expect_missing(m, key[i]);
			} else if (c->t == LAD_UNSHARED) {
				expect_loaded_from_delete(m, key[i], id);
				expect_missing(m, key[i]);
			} else {
				expect_swapped(m, key[i], id, id + 1);
				expect_present(m, key[i], id + 1);
				if (c->t == CAS_UNSHARED_DEL) {
					expect_deleted(m, key[i], id + 1);
					expect_not_swapped(m, key[i], V(id + 1), id + 2);
					expect_not_deleted(m, key[i], V(id + 1));
					expect_missing(m, key[i]);
				}
			}
			if (i % 16 == 0)
				sched_yield();
		}
		for (int i = 0; i < N; i++) {
			if (c->t == CAS_UNSHARED)
				expect_present(m, key[i], id + 1);
			else
				expect_missing(m, key[i]);
		}
		break;
	case SWAP_UNSHARED:
	case SWAP_UNSHARED_DEL:
		for (int i = 0; i < N; i++) {
			expect_missing(m, key[i]);
			expect_not_loaded_from_swap(m, key[i], id);
			expect_present(m, key[i], id);
			expect_loaded_from_swap(m, key[i], id, id);
		}
		for (int i = 0; i < N; i++) {
			expect_present(m, key[i], id);
			expect_loaded_from_swap(m, key[i], id, id + 1);
			expect_present(m, key[i], id + 1);
			if (c->t == SWAP_UNSHARED_DEL) {
				expect_deleted(m, key[i], id + 1);
				expect_not_loaded_from_swap(m, key[i], id + 2);
				expect_present(m, key[i], id + 2);
			}
			if (i % 16 == 0)
				sched_yield();
		}
		for (int i = 0; i < N; i++)
			expect_present(m, key[i], c->t == SWAP_UNSHARED ? id + 1 : id + 2);
		break;
	case CAD_SHARED:
		for (int i = 0; i < N; i++) {
			expect_not_deleted(m, data[i], MAXINT);
			if (syncmap_compare_and_delete(m, data[i], dlen[i], V(i)))
				atomic_fetch_add(&wins[i], 1);
			expect_missing(m, data[i]);
			if (i % 16 == 0)
				sched_yield();
		}
		for (int i = 0; i < N; i++)
			expect_missing(m, data[i]);
		break;
	case CAS_SHARED:
		for (int i = 0; i < N; i++) {
			expect_not_swapped(m, data[i], MAXINT, (uintptr_t)i + 1);
			/* exactly one thread's CAS succeeds: counted by the caller */
			if (syncmap_compare_and_swap(m, data[i], dlen[i], V(i), V(i + 1)) == 1) {
				entered((uintptr_t)i + 1);
				atomic_fetch_add(&wins[i], 1);
			}
			expect_present(m, data[i], (uintptr_t)i + 1);
			if (i % 16 == 0)
				sched_yield();
		}
		for (int i = 0; i < N; i++)
			expect_present(m, data[i], (uintptr_t)i + 1);
		break;
	case SWAP_SHARED:
		for (int i = 0; i < N; i++) {
			void *prev = NULL;
			ASSERT(syncmap_swap(m, data[i], dlen[i], V(i + 1), &prev) == 1);
			if (prev != V(i + 1)) /* else the same pointer stayed */
				entered((uintptr_t)i + 1);
			expect_present(m, data[i], (uintptr_t)i + 1);
			if (i % 16 == 0)
				sched_yield();
		}
		for (int i = 0; i < N; i++)
			expect_present(m, data[i], (uintptr_t)i + 1);
		break;
	case LAD_SHARED:
		for (int i = 0; i < N; i++) {
			void *v = MAXINT;
			if (syncmap_load_and_delete(m, data[i], dlen[i], &v)) {
				if (v != V(i))
					FAILK(data[i], "load_and_delete returned %p", v);
				atomic_fetch_add(&wins[i], 1);
			}
			expect_missing(m, data[i]);
			if (i % 16 == 0)
				sched_yield();
		}
		for (int i = 0; i < N; i++)
			expect_missing(m, data[i]);
		break;
	case CLEAR_CONCURRENT:
		/* Go: goroutines LoadOrStore their keys while others Clear;
		 * here every thread alternates, and checks what it may */
		for (int i = 0; i < N; i++) {
			void *actual = NULL;
			int r = syncmap_load_or_store(m, key[i], strlen(key[i]), V(id), &actual);
			ASSERT(r == 0 || r == 1);
			if (r == 0)
				entered(id);
			if (actual != V(id))
				FAILK(key[i], "load_or_store: actual %p, want %zu", actual, (size_t)id);
			if (i % 8 == (int)id % 8)
				syncmap_clear(m);
		}
		break;
	default:
		ASSERT(0);
	}
	return NULL;
}

static void run_concurrent(enum ctest t)
{
	struct syncmap *m = new_map(ctest_name[t]);
	if (t == CAD_SHARED || t == CAS_SHARED || t == SWAP_SHARED || t == LAD_SHARED)
		for (int i = 0; i < N; i++) {
			expect_missing(m, data[i]);
			expect_stored(m, data[i], (uintptr_t)i);
		}
	struct start_line start = {0};
	struct cthr c[GMP];
	for (int j = 0; j < GMP; j++)
		c[j] = (struct cthr){m, t, j, &start};
	for (int i = 0; i < N; i++)
		atomic_store(&wins[i], 0);
	run_threads(GMP, cworker, c, sizeof(c[0]));
	if (t == CAD_SHARED || t == CAS_SHARED || t == LAD_SHARED)
		for (int i = 0; i < N; i++)
			if (atomic_load(&wins[i]) != 1)
				FAILK(data[i], "%d threads succeeded, exactly one must", atomic_load(&wins[i]));
	if (t == CLEAR_CONCURRENT) {
		syncmap_clear(m);
		for (int i = 0; i < N; i++)
			expect_missing(m, data[i]);
		ASSERT_TRUE(wait_reclaim(m, 10));
		ASSERT_EQ(syncmap_len(m), 0);
	}
	free_map(m);
}

int main(void)
{
	(void)test_begin();
	watchdog(300, "Go subtests");
	for (int i = 0; i < N; i++) {
		/* fmt.Sprintf("%b", i) */
		char b[16];
		int n = 0;
		int v = i;
		do {
			b[n++] = (char)('0' + (v & 1));
			v >>= 1;
		} while (v);
		for (int j = 0; j < n; j++)
			data[i][j] = b[n - 1 - j];
		data[i][n] = 0;
		dlen[i] = (size_t)n;
	}
	long reps = scaled(20, 4);
	double t0 = now_sec();
	for (int b = 0; b < 2; b++) {
		boxed = b;
		seq_tests();
		for (long r = 0; r < reps; r++)
			for (int t = 0; t < CTESTS; t++)
				run_concurrent((enum ctest)t);
	}
	printf("sequential subtests and %d concurrent subtests x %ld repetitions x 2 value modes in %.2fs\nok\n",
	       CTESTS, reps, now_sec() - t0);
	return 0;
}
