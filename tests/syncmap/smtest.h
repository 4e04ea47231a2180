/*
 * smtest.h - helpers shared by the syncmap tests in tests/syncmap.
 *
 * SPDX-License-Identifier: MIT
 *
 *   - keyset: a fixed set of distinct byte-string keys (lengths 0..40, the
 *     empty key included) with a reverse lookup, so a range callback can
 *     tell which key it was handed;
 *   - tracked values (struct tv) for maps that own their values: a magic
 *     word that free_value poisons, a per-object state the callback checks
 *     (a value freed twice, or freed while the test says it is still in the
 *     map, aborts at once), and counters;
 *   - threads, a start barrier, a watchdog, RSS, and a poll for the end of
 *     pending reclamation.
 *
 * Every word shared between threads is a C11 atomic (the tests also run
 * under ThreadSanitizer).
 */
#ifndef SM_SMTEST_H
#define SM_SMTEST_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"
#include "syncmap.h"

#define SM_UNUSED __attribute__((unused))

/* 1 under ASAN or TSAN (gcc's and clang's spellings): their allocators keep
 * freed memory in quarantine, so RSS and heap figures mean nothing there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* testutil.h's ASSERT_PTR_EQ does not compile (its `type a_ = .., b_ = ..`
 * with type `const void *` declares b_ as `const void`): our own. */
#define PTR_EQ(a, b)                                                              \
	do {                                                                      \
		const void *pa_ = (const void *)(a), *pb_ = (const void *)(b);    \
		if (pa_ != pb_)                                                   \
			TEST_FAIL("%s == %s (%p vs %p)", #a, #b, pa_, pb_);       \
	} while (0)

/* Shards of the maps a test makes: $SYNCMAP_TEST_SHARDS (meson runs each
 * suite with 1 and 0 = automatic, some with 2 and 64 too), default 0. */
static SM_UNUSED unsigned test_shards(void)
{
	const char *s = getenv("SYNCMAP_TEST_SHARDS");
	return s ? (unsigned)strtoul(s, NULL, 0) : 0;
}

/* Start of every test: line-buffered stdout (progress lines survive an
 * abort), then the seed and the shard count. */
static SM_UNUSED uint64_t test_begin(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t seed = test_seed();
	printf("shards: %u (SYNCMAP_TEST_SHARDS; 0 = automatic, %u here)\n", test_shards(),
	       syncmap_default_shards());
	return seed;
}

/* ---- time, sleeping -------------------------------------------------- */

static SM_UNUSED double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static SM_UNUSED void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Scaled count: n * TEST_SCALE, at least `min`. */
static SM_UNUSED long scaled(long n, long min)
{
	double v = (double)n * test_scale();
	return v < (double)min ? min : (long)v;
}

/* ---- watchdog --------------------------------------------------------- */

static const char *volatile watchdog_what = "?";

static void watchdog_fired(int sig)
{
	(void)sig;
	static const char msg[] = "\nWATCHDOG: test hung in: ";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	const char *w = watchdog_what;
	r = write(2, w, strlen(w));
	r = write(2, "\n", 1);
	(void)r;
	test_print_seed_hint();
	abort();
}

/* Abort (with a message) if the process is still in `what` after `sec` s.
 * watchdog(0, NULL) disarms. */
static SM_UNUSED void watchdog(unsigned sec, const char *what)
{
	signal(SIGALRM, watchdog_fired);
	watchdog_what = what ? what : "?";
	alarm(sec);
}

/* ---- RSS ---------------------------------------------------------------- */

static SM_UNUSED long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = -1;
	fclose(f);
	return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- threads ------------------------------------------------------------ */

/* Run fn(arg_i) on n threads, arg_i = base + i * stride; join them all. */
static SM_UNUSED void run_threads(int n, void *(*fn)(void *), void *base, size_t stride)
{
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	ASSERT(t != NULL);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, fn, (char *)base + (size_t)i * stride), 0);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(pthread_join(t[i], NULL), 0);
	free(t);
}

/* A spinning start line (pthread barriers park threads; on 2 cores a spin
 * plus yield gets every thread going within a time slice or two). */
struct start_line {
	atomic_int arrived;
	atomic_int go;
};

static SM_UNUSED void start_line_wait(struct start_line *s, int n)
{
	if (atomic_fetch_add(&s->arrived, 1) + 1 == n)
		atomic_store(&s->go, 1);
	while (!atomic_load(&s->go))
		sched_yield();
}

/* ---- parallelism probe -------------------------------------------------- */

/* Does this process get two cores at once right now?  Two threads tick a
 * shared counter around a short spin for ~30 ms; returns the fraction of
 * one thread's spins during which the other ticked.  Near 0 on a machine
 * whose other core is busy (then interleavings come only from preemption,
 * and a test should not insist on overlap). */
struct par_shared {
	atomic_ullong clk;
	atomic_int go, stop;
};

struct par_probe {
	struct par_shared *sh;
	long inside, total;
};

static void *par_probe_thread(void *arg)
{
	struct par_probe *p = arg;
	while (!atomic_load(&p->sh->go))
		;
	while (!atomic_load(&p->sh->stop)) {
		unsigned long long a = atomic_fetch_add(&p->sh->clk, 1);
		for (volatile int s = 0; s < 20; s++)
			;
		unsigned long long b = atomic_fetch_add(&p->sh->clk, 1);
		p->total++;
		p->inside += b - a > 1;
	}
	return NULL;
}

static SM_UNUSED double parallelism_probe(void)
{
	struct par_shared sh;
	struct par_probe p[2] = {{&sh, 0, 0}, {&sh, 0, 0}};
	pthread_t t[2];
	atomic_init(&sh.clk, 0);
	atomic_init(&sh.go, 0);
	atomic_init(&sh.stop, 0);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, par_probe_thread, &p[i]), 0);
	atomic_store(&sh.go, 1);
	sleep_ms(30);
	atomic_store(&sh.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	long in = p[0].inside + p[1].inside, tot = p[0].total + p[1].total;
	return tot ? (double)in / (double)tot : 0;
}

/* ---- reclamation --------------------------------------------------------- */

/* Poll until the map has no grace-period callback pending (true), or give
 * up after `sec` seconds (false). */
/* A syncmap_range callback that counts the keys it visits in *(long *)ctx. */
static SM_UNUSED bool range_count_fn(const void *key, size_t klen, void *val, void *ctx)
{
	(void)key, (void)klen, (void)val;
	++*(long *)ctx;
	return true;
}

static SM_UNUSED bool wait_reclaim(struct syncmap *m, double sec)
{
	double end = now_sec() + sec;
	struct syncmap_stats st;
	for (;;) {
		syncmap_stats(m, &st);
		if (st.pending_reclaim == 0)
			return true;
		if (now_sec() > end)
			return false;
		sleep_ms(1);
	}
}

/* ---- keys ---------------------------------------------------------------- */

struct keyset {
	size_t n;
	unsigned char **k; /* k[i]: NULL for the empty key */
	size_t *len;
	/* open addressing: idx+1, 0 = empty */
	size_t *tab;
	size_t mask;
};

static SM_UNUSED uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h ^ n;
}

static SM_UNUSED long keyset_find(const struct keyset *ks, const void *key, size_t klen)
{
	for (size_t h = fnv1a(key, klen) & ks->mask;; h = (h + 1) & ks->mask) {
		size_t j = ks->tab[h];
		if (!j)
			return -1;
		j--;
		if (ks->len[j] == klen && (klen == 0 || memcmp(ks->k[j], key, klen) == 0))
			return (long)j;
	}
}

static SM_UNUSED bool keyset_add(struct keyset *ks, size_t i, const void *key, size_t klen)
{
	if (keyset_find(ks, key, klen) >= 0)
		return false;
	ks->len[i] = klen;
	ks->k[i] = NULL;
	if (klen) {
		ks->k[i] = malloc(klen);
		ASSERT(ks->k[i] != NULL);
		memcpy(ks->k[i], key, klen);
	}
	size_t h = fnv1a(key, klen) & ks->mask;
	while (ks->tab[h])
		h = (h + 1) & ks->mask;
	ks->tab[h] = i + 1;
	return true;
}

static SM_UNUSED void keyset_alloc(struct keyset *ks, size_t n)
{
	size_t cap = 16;
	while (cap < 2 * n + 2)
		cap *= 2;
	ks->n = n;
	ks->k = calloc(n ? n : 1, sizeof(*ks->k));
	ks->len = calloc(n ? n : 1, sizeof(*ks->len));
	ks->tab = calloc(cap, sizeof(*ks->tab));
	ks->mask = cap - 1;
	ASSERT(ks->k && ks->len && ks->tab);
}

/*
 * n distinct random keys: key 0 is the empty key; lengths otherwise spread
 * over 1..40 (short inline keys and long heap-copied ones), with some keys
 * that are a prefix of another (same bytes, one shorter).
 */
static SM_UNUSED void keyset_random(struct keyset *ks, size_t n, struct test_rng *rng)
{
	keyset_alloc(ks, n);
	if (n == 0)
		return;
	ASSERT(keyset_add(ks, 0, "", 0));
	unsigned char buf[41];
	for (size_t i = 1; i < n;) {
		size_t len;
		uint64_t r = test_rng_below(rng, 10);
		if (r < 4)
			len = 1 + test_rng_below(rng, 8); /* inline */
		else if (r < 5)
			len = 8 + test_rng_below(rng, 2); /* the inline / heap boundary */
		else
			len = 1 + test_rng_below(rng, 40);
		if (i > 1 && test_rng_below(rng, 8) == 0 && ks->len[i - 1] > 1) {
			/* a prefix of the previous key */
			len = ks->len[i - 1] - 1;
			memcpy(buf, ks->k[i - 1], len);
		} else {
			for (size_t j = 0; j < len; j++)
				buf[j] = (unsigned char)test_rng_next(rng);
			if (len <= 2)
				buf[0] = (unsigned char)('a' + test_rng_below(rng, 26));
		}
		if (keyset_add(ks, i, buf, len))
			i++;
	}
}

/* n keys "<prefix><i>" (printable, for messages). */
static SM_UNUSED void keyset_fmt(struct keyset *ks, size_t n, const char *prefix)
{
	keyset_alloc(ks, n);
	char buf[64];
	for (size_t i = 0; i < n; i++) {
		int l = snprintf(buf, sizeof(buf), "%s%zu", prefix, i);
		ASSERT(keyset_add(ks, i, buf, (size_t)l));
	}
}

static SM_UNUSED void keyset_free(struct keyset *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->k[i]);
	free(ks->k);
	free(ks->len);
	free(ks->tab);
	memset(ks, 0, sizeof(*ks));
}

/* The key pointer to pass for key i: the empty key is passed as NULL or as
 * a non-NULL pointer (both mean the same key), chosen by `alt`. */
static SM_UNUSED const void *keyp(const struct keyset *ks, size_t i, bool alt)
{
	if (ks->len[i] == 0)
		return alt ? (const void *)"" : NULL;
	return ks->k[i];
}

/* ---- tracked values -------------------------------------------------------- */

#define TV_MAGIC 0x7A11EDC0FFEE5EEDULL
#define TV_POISON 0xDEADBEEFDEADBEEFULL

enum tv_state {
	TV_TEST = 1,    /* owned by the test; the map must not free it */
	TV_LIVE = 2,    /* in the map */
	TV_LEAVING = 3, /* the test expects the map to free it (removed, or free pending) */
	TV_FREED = 4,   /* free_value has run */
};

struct tv {
	_Atomic uint64_t magic;
	atomic_int state;
	atomic_int frees;
	uint64_t id;
	struct tv *next; /* tracker chains */
};

struct tv_chunk {
	struct tv_chunk *next;
	size_t n;
	struct tv v[];
};

/*
 * A tracker owns every struct tv a test makes.  `strict`: free_value demands
 * TV_LEAVING (sequential tests that know what leaves); otherwise any value
 * with a good magic may be freed once.  `recycle`: freed values go on a
 * lock-free stack the test may take them back from (tv_new).
 */
struct tracker {
	bool strict, recycle;
	struct tv_chunk *chunks;
	size_t chunk_used;
	struct tv *local;               /* test thread's recycled values */
	_Atomic(struct tv *) freed_stack; /* pushed by free_value */
	pthread_mutex_t mu;             /* tv_new from several threads */
	atomic_long made, freed, null_freed;
	atomic_long null_left; /* NULL values the test saw leave (strict mode) */
	atomic_llong next_id;
};

static SM_UNUSED void tracker_init(struct tracker *t, bool strict, bool recycle)
{
	memset(t, 0, sizeof(*t));
	t->strict = strict;
	t->recycle = recycle;
	pthread_mutex_init(&t->mu, NULL);
}

static SM_UNUSED struct tv *tv_new(struct tracker *t)
{
	pthread_mutex_lock(&t->mu);
	struct tv *v = NULL;
	if (t->recycle) {
		if (!t->local)
			t->local = atomic_exchange(&t->freed_stack, NULL);
		if (t->local) {
			v = t->local;
			t->local = v->next;
			ASSERT_EQ(atomic_load(&v->state), TV_FREED);
		}
	}
	if (!v) {
		if (!t->chunks || t->chunk_used == t->chunks->n) {
			size_t n = 4096;
			struct tv_chunk *c = calloc(1, sizeof(*c) + n * sizeof(struct tv));
			ASSERT(c != NULL);
			c->n = n;
			c->next = t->chunks;
			t->chunks = c;
			t->chunk_used = 0;
		}
		v = &t->chunks->v[t->chunk_used++];
	}
	v->id = (uint64_t)atomic_fetch_add(&t->next_id, 1);
	v->next = NULL;
	atomic_store(&v->frees, 0);
	atomic_store(&v->state, TV_TEST);
	atomic_store(&v->magic, TV_MAGIC);
	atomic_fetch_add(&t->made, 1);
	pthread_mutex_unlock(&t->mu);
	return v;
}

/* The test gives a value it owns (never stored) back for reuse. */
static SM_UNUSED void tv_unused(struct tracker *t, struct tv *v)
{
	ASSERT_EQ(atomic_load(&v->state), TV_TEST);
	atomic_fetch_sub(&t->made, 1);
	atomic_store(&v->state, TV_FREED); /* done with; a later free_value of it fails */
	if (!t->recycle)
		return;
	pthread_mutex_lock(&t->mu);
	v->next = t->local;
	t->local = v;
	pthread_mutex_unlock(&t->mu);
}

static SM_UNUSED void tv_check_live(const struct tv *v, const char *where)
{
	uint64_t mg = atomic_load((_Atomic uint64_t *)&v->magic);
	if (mg != TV_MAGIC)
		TEST_FAIL("%s: value %p (id %" PRIu64 ") has magic %#" PRIx64 ": freed while still reachable",
			  where, (const void *)v, v->id, mg);
}

/* free_value for maps whose values are struct tv (ctx: the tracker). */
static SM_UNUSED void tv_free_value(void *val, void *ctx)
{
	struct tracker *t = ctx;
	if (!val) {
		atomic_fetch_add(&t->null_freed, 1);
		return;
	}
	struct tv *v = val;
	uint64_t mg = atomic_load(&v->magic);
	if (mg != TV_MAGIC)
		TEST_FAIL("free_value(%p): magic %#" PRIx64 " (double free or not a value)", val, mg);
	if (atomic_fetch_add(&v->frees, 1) != 0)
		TEST_FAIL("free_value(%p id %" PRIu64 "): freed twice", val, v->id);
	int st = atomic_load(&v->state);
	if (t->strict && st != TV_LEAVING)
		TEST_FAIL("free_value(%p id %" PRIu64 "): value in state %d (%s)", val, v->id, st,
			  st == TV_LIVE ? "still in the map" : st == TV_TEST ? "never stored / rejected" : "?");
	atomic_store(&v->magic, TV_POISON);
	atomic_store(&v->state, TV_FREED);
	atomic_fetch_add(&t->freed, 1);
	if (t->recycle) {
		struct tv *head = atomic_load(&t->freed_stack);
		do
			v->next = head;
		while (!atomic_compare_exchange_weak(&t->freed_stack, &head, v));
	}
}

static SM_UNUSED void tracker_destroy(struct tracker *t)
{
	struct tv_chunk *c = t->chunks;
	while (c) {
		struct tv_chunk *n = c->next;
		free(c);
		c = n;
	}
	pthread_mutex_destroy(&t->mu);
	memset(t, 0, sizeof(*t));
}

/* Wait up to sec seconds until every value made has been freed (by
 * free_value, usually on liburcu's thread); false if some still are not. */
static SM_UNUSED bool tracker_wait_freed(struct tracker *t, double sec)
{
	double end = now_sec() + sec;
	while (atomic_load(&t->freed) != atomic_load(&t->made)) {
		if (now_sec() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* Every value made and handed to the map has been freed exactly once. */
static SM_UNUSED void tracker_check_all_freed(struct tracker *t)
{
	for (struct tv_chunk *c = t->chunks; c; c = c->next) {
		size_t n = c == t->chunks ? t->chunk_used : c->n;
		for (size_t i = 0; i < n; i++) {
			struct tv *v = &c->v[i];
			int st = atomic_load(&v->state);
			if (st != TV_FREED)
				TEST_FAIL("value %p id %" PRIu64 " never freed (state %d)", (void *)v, v->id, st);
		}
	}
	ASSERT_EQ(atomic_load(&t->made), atomic_load(&t->freed));
}

#endif
