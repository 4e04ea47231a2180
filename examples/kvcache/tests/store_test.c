/*
 * store_test.c - kvcache's store under threads: the compare-and-swap loops
 * of incr, cas and append must not lose a concurrent write, add must store
 * once, an expired item's lazy removal must not remove the item stored in
 * its place, and every byte charged to the memory limit comes back.
 *
 * SPDX-License-Identifier: MIT
 *
 * TEST_SCALE scales the operation counts (tsan/run uses 0.1).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../tests/testutil.h"
#include "../store.h"

#define THREADS 4

static struct kv_store *st;
static long ops;

static void set_value(const char *key, const char *data, int32_t exptime)
{
	enum kv_result why;
	size_t n = strlen(data);
	struct kv_item *it = kv_item_new(st, strlen(key), 0, exptime, (uint32_t)n, &why);
	ASSERT(it != NULL);
	memcpy(it->data, data, n);
	ASSERT_EQ(kv_store_update(st, KV_UPDATE_SET, key, strlen(key), it, 0), KV_STORED);
}

static enum kv_result update(enum kv_update op, const char *key, const char *data, uint64_t cas)
{
	enum kv_result why;
	size_t n = strlen(data);
	struct kv_item *it = kv_item_new(st, strlen(key), 0, 0, (uint32_t)n, &why);
	ASSERT(it != NULL);
	memcpy(it->data, data, n);
	return kv_store_update(st, op, key, strlen(key), it, cas);
}

struct copy {
	char data[4096];
	size_t len;
	uint64_t cas;
};

static void copy_item(const struct kv_item *it, void *ctx)
{
	struct copy *c = ctx;
	c->len = it->nbytes < sizeof(c->data) - 1 ? it->nbytes : sizeof(c->data) - 1;
	memcpy(c->data, it->data, c->len);
	c->data[c->len] = '\0';
	c->cas = it->cas;
}

static bool get(const char *key, struct copy *c)
{
	return kv_store_get(st, key, strlen(key), copy_item, c);
}

static void run_threads(void *(*fn)(void *))
{
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, fn, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
}

/* ---- incr: no lost increment -------------------------------------------- */

static void *incr_worker(void *arg)
{
	(void)arg;
	char result[21];
	for (long i = 0; i < ops; i++)
		ASSERT_EQ(kv_store_delta(st, "counter", 7, true, 1, result), KV_STORED);
	return NULL;
}

static void test_incr(void)
{
	set_value("counter", "0", 0);
	run_threads(incr_worker);
	struct copy c;
	ASSERT_TRUE(get("counter", &c));
	ASSERT_EQ(strtoll(c.data, NULL, 10), THREADS * ops);
}

/* ---- gets + cas: exactly the successful ones count ---------------------- */

static _Atomic long cas_successes;

static void *cas_worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < ops; i++) {
		struct copy c;
		ASSERT_TRUE(get("caskey", &c));
		char next[32];
		snprintf(next, sizeof(next), "%lld", strtoll(c.data, NULL, 10) + 1);
		enum kv_result r = update(KV_UPDATE_CAS, "caskey", next, c.cas);
		ASSERT(r == KV_STORED || r == KV_EXISTS);
		if (r == KV_STORED)
			atomic_fetch_add(&cas_successes, 1);
	}
	return NULL;
}

static void test_cas(void)
{
	set_value("caskey", "0", 0);
	run_threads(cas_worker);
	struct copy c;
	ASSERT_TRUE(get("caskey", &c));
	ASSERT_GT(atomic_load(&cas_successes), 0);
	ASSERT_EQ(strtoll(c.data, NULL, 10), atomic_load(&cas_successes));
}

/* ---- append racing set: the last set is never lost ---------------------- */

static _Atomic bool setter_done;

static void *append_worker(void *arg)
{
	long id = (long)arg;
	if (id == 0) {
		/* the only setter: "S<i>:" */
		char v[32];
		for (long i = 0; i < ops; i++) {
			snprintf(v, sizeof(v), "S%ld:", i);
			set_value("log", v, 0);
		}
		atomic_store(&setter_done, true);
		return NULL;
	}
	while (!atomic_load(&setter_done)) {
		enum kv_result r = update(KV_UPDATE_APPEND, "log", "x", 0);
		ASSERT(r == KV_STORED || r == KV_NOT_STORED);
		/* keep the value short: a prepend would do as well */
		struct copy c;
		if (get("log", &c) && c.len > 1000)
			set_value("log", "S-1:", 0);
	}
	return NULL;
}

static void test_append_vs_set(void)
{
	set_value("log", "S-1:", 0);
	run_threads(append_worker);
	/* An append that lost the race to a set and stored its join anyway
	 * would leave an older "S<i>:" in front. */
	struct copy c;
	ASSERT_TRUE(get("log", &c));
	char want[32];
	snprintf(want, sizeof(want), "S%ld:", ops - 1);
	if (strncmp(c.data, want, strlen(want)) != 0)
		TEST_FAIL("the last set was lost: want %s..., got %.60s", want, c.data);
	for (size_t i = strlen(want); i < c.len; i++)
		ASSERT_EQ(c.data[i], 'x');
}

/* ---- add: one winner per key -------------------------------------------- */

static _Atomic long add_wins[1024];

static void *add_worker(void *arg)
{
	(void)arg;
	char key[32];
	for (int k = 0; k < 1024; k++) {
		snprintf(key, sizeof(key), "add%d", k);
		enum kv_result r = update(KV_UPDATE_ADD, key, "mine", 0);
		ASSERT(r == KV_STORED || r == KV_NOT_STORED);
		if (r == KV_STORED)
			atomic_fetch_add(&add_wins[k], 1);
	}
	return NULL;
}

static void test_add(void)
{
	run_threads(add_worker);
	for (int k = 0; k < 1024; k++)
		ASSERT_EQ(atomic_load(&add_wins[k]), 1);
}

/* ---- lazy expiry racing set: the new item stays ------------------------- */

static void *expiry_worker(void *arg)
{
	long id = (long)arg;
	char v[32];
	struct copy c;
	if (id == 0) {
		/* The only writer: an expired item, then a live one, which must
		 * be there when read back although readers keep removing expired
		 * items (a plain delete there would remove the live one). */
		for (long i = 0; i < ops; i++) {
			set_value("exp", "old", -1);
			snprintf(v, sizeof(v), "live%ld", i);
			set_value("exp", v, 0);
			if (!get("exp", &c) || strcmp(c.data, v) != 0)
				TEST_FAIL("the live item stored after an expired one was lost (%s)", v);
		}
		atomic_store(&setter_done, true);
		return NULL;
	}
	while (!atomic_load(&setter_done))
		(void)get("exp", &c);
	return NULL;
}

static void test_expiry_race(void)
{
	atomic_store(&setter_done, false);
	run_threads(expiry_worker);
	ASSERT_GT(kv_store_sweep(st) + 1, 0);
}

static uint64_t store_bytes(void)
{
	struct kv_store_stats s;
	kv_store_stats(st, &s);
	return s.bytes;
}

int main(void)
{
	ops = (long)(20000 * test_scale());
	if (ops < 100)
		ops = 100;
	st = kv_store_new(&(struct kv_store_options){.mem_limit = 0, .item_size_max = 1 << 20});
	ASSERT(st != NULL);
	test_incr();
	test_cas();
	test_append_vs_set();
	test_add();
	test_expiry_race();
	struct kv_store_stats s;
	kv_store_stats(st, &s);
	printf("cas retries %llu, expired removed %llu\n", (unsigned long long)s.cas_retries,
	       (unsigned long long)s.expired_removed);
	/* every charge comes back once the flushed items are freed */
	kv_store_flush(st, 0);
	for (int i = 0; i < 2000 && store_bytes() != 0; i++) {
		ASSERT_EQ(syncmap_synchronize(), 0);
		usleep(1000);
	}
	ASSERT_EQ(store_bytes(), 0);
	kv_store_free(st);
	printf("kvcache store tests: PASS (%d threads, %ld ops each)\n", THREADS, ops);
	return 0;
}
