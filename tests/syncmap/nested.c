/*
 * nested.c - maps of maps, and maps freed from callbacks.
 *
 * SPDX-License-Identifier: MIT
 *
 * An outer owning map whose values are inner owning maps: the outer map's
 * free_value calls syncmap_free(inner), on liburcu's callback thread, while
 * the inner map still has reclamation queued.  syncmap_free there must not
 * wait for callbacks only that thread can run (it used to, and from then on
 * nothing in the process was reclaimed).  Checked:
 *   - a reader pinned in a read section on an inner map's value while its
 *     outer key is deleted: nothing of it is freed until the section ends;
 *   - every inner map and every value in it is freed exactly once, soon;
 *   - reclamation keeps working process-wide afterwards (another map's
 *     deleted values still reach free_value);
 *   - an application's own call_rcu callback may free a map too;
 *   - so may a Range callback, maps it takes out of the map it ranges over.
 * A watchdog turns a hang into a failure.
 */
#include "smtest.h"

#include "syncmap_impl.h" /* call_rcu for the application's own callback */

static struct tracker TR;
static atomic_long inner_freed;

static void free_inner(void *val, void *ctx)
{
	(void)ctx;
	syncmap_free(val); /* on the callback thread: must not wait for it */
	atomic_fetch_add(&inner_freed, 1);
}

static struct tv *fresh(void)
{
	struct tv *v = tv_new(&TR);
	atomic_store(&v->state, TV_LIVE);
	return v;
}

static struct syncmap *new_inner(void)
{
	struct syncmap_options o = {.free_value = tv_free_value, .free_ctx = &TR, .shards = test_shards()};
	struct syncmap *m = syncmap_new(&o);
	ASSERT(m != NULL);
	/* values, overwrites and deletes: reclamation queued at free time */
	for (long k = 0; k < 200; k++) {
		ASSERT_EQ(syncmap_store(m, &k, sizeof(k), fresh()), 0);
		if (k % 3 == 0)
			ASSERT_EQ(syncmap_store(m, &k, sizeof(k), fresh()), 0);
		if (k % 5 == 0)
			syncmap_delete(m, &k, sizeof(k));
	}
	return m;
}

static bool wait_for(atomic_long *counter, long want, double sec)
{
	double t0 = now_sec();
	while (atomic_load(counter) < want) {
		if (now_sec() - t0 > sec)
			return false;
		sleep_ms(1);
	}
	return true;
}

static struct syncmap *OUT;
static atomic_int pin_phase;

static void *pinned_reader(void *arg)
{
	(void)arg;
	syncmap_read_lock();
	long k = 0;
	void *inner = NULL, *v = NULL;
	ASSERT_TRUE(syncmap_load(OUT, &k, sizeof(k), &inner));
	long ik = 1;
	ASSERT_TRUE(syncmap_load(inner, &ik, sizeof(ik), &v));
	atomic_store(&pin_phase, 1);
	while (atomic_load(&pin_phase) != 2)
		sched_yield();
	tv_check_live(v, "value of an inner map whose outer key was deleted");
	syncmap_read_unlock();
	atomic_store(&pin_phase, 3);
	return NULL;
}

static void test_map_of_maps(void)
{
	struct syncmap_options o = {.free_value = free_inner, .shards = test_shards()};
	OUT = syncmap_new(&o);
	long inners = scaled(200, 40);
	for (long k = 0; k < inners; k++)
		ASSERT_EQ(syncmap_store(OUT, &k, sizeof(k), new_inner()), 0);

	atomic_store(&pin_phase, 0);
	pthread_t t;
	ASSERT_EQ(pthread_create(&t, NULL, pinned_reader, NULL), 0);
	while (atomic_load(&pin_phase) != 1)
		sched_yield();
	/* replace and delete inner maps: each goes to free_inner */
	for (long k = 0; k < inners; k++) {
		if (k % 2)
			ASSERT_EQ(syncmap_store(OUT, &k, sizeof(k), new_inner()), 0);
		else
			syncmap_delete(OUT, &k, sizeof(k));
	}
	sleep_ms(50);
	ASSERT_EQ(atomic_load(&inner_freed), 0); /* the pinned section holds everything back */
	atomic_store(&pin_phase, 2);
	while (atomic_load(&pin_phase) != 3)
		sched_yield();
	pthread_join(t, NULL);
	if (!wait_for(&inner_freed, inners, 10))
		TEST_FAIL("only %ld of %ld inner maps freed 10 s after the reader left", atomic_load(&inner_freed),
			  inners);

	/* reclamation still works for everyone: a fresh map's deletes */
	struct syncmap *probe = new_inner();
	long before = atomic_load(&TR.freed);
	for (long k = 1000; k < 1200; k++) {
		ASSERT_EQ(syncmap_store(probe, &k, sizeof(k), fresh()), 0);
		syncmap_delete(probe, &k, sizeof(k));
	}
	if (!wait_for(&TR.freed, before + 200, 10))
		TEST_FAIL("reclamation stopped after maps were freed from callbacks");
	syncmap_free(probe);
	syncmap_free(OUT); /* the remaining inner maps, from this thread */
	ASSERT_TRUE(wait_for(&inner_freed, inners + inners / 2, 10));
	/* the inner maps freed on the callback thread went by deferred
	 * teardown: wait for their values */
	if (!tracker_wait_freed(&TR, 10))
		TEST_FAIL("%ld of %ld values freed", atomic_load(&TR.freed), atomic_load(&TR.made));
	tracker_check_all_freed(&TR);
	printf("map_of_maps: %ld inner maps freed from free_value, %ld values\n", atomic_load(&inner_freed),
	       atomic_load(&TR.made));
}

/* ---- an application's own call_rcu callback frees a map ------------------ */

struct app_obj {
	struct rcu_head rcu;
	struct syncmap *m;
};

static atomic_long app_done;

/* (With the library's TSAN annotations, as an application under TSAN needs
 * around its own call_rcu: see tsan/README.md.) */
static void app_callback(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct app_obj *o = caa_container_of(head, struct app_obj, rcu);
	syncmap_free(o->m);
	free(o);
	atomic_fetch_add(&app_done, 1);
}

static void test_app_callback(void)
{
	long n = scaled(50, 10);
	long made0 = atomic_load(&TR.made);
	for (long i = 0; i < n; i++) {
		struct app_obj *o = malloc(sizeof(*o));
		ASSERT(o != NULL);
		o->m = new_inner();
		sm_call_rcu(&o->rcu, app_callback);
	}
	if (!wait_for(&app_done, n, 10))
		TEST_FAIL("the application's callbacks that free maps did not all run");
	if (!tracker_wait_freed(&TR, 10))
		TEST_FAIL("%ld of %ld values freed", atomic_load(&TR.freed), atomic_load(&TR.made));
	printf("app_callback: %ld maps freed from the application's call_rcu callbacks, %ld values\n", n,
	       atomic_load(&TR.made) - made0);
}

/* ---- a Range callback frees maps ---------------------------------------- */

static atomic_long range_freed;

/* Inside the Range's read section: take the inner map out of the map being
 * ranged over (no free_value runs for it) and free it here; its values,
 * overwrites and deletes are still queued, so syncmap_free must hand its
 * teardown to a callback rather than wait inside the section. */
static bool free_from_range(const void *key, size_t klen, void *val, void *ctx)
{
	struct syncmap *outer = ctx;
	void *taken = NULL;
	ASSERT_TRUE(syncmap_take(outer, key, klen, &taken));
	ASSERT(taken == val);
	syncmap_free(taken);
	atomic_fetch_add(&range_freed, 1);
	return true;
}

static void test_free_in_range(void)
{
	struct syncmap_options o = {.free_value = free_inner, .shards = test_shards()};
	struct syncmap *outer = syncmap_new(&o);
	ASSERT(outer != NULL);
	long n = scaled(100, 20);
	long made0 = atomic_load(&TR.made);
	for (long k = 0; k < n; k++)
		ASSERT_EQ(syncmap_store(outer, &k, sizeof(k), new_inner()), 0);
	syncmap_range(outer, free_from_range, outer);
	ASSERT_EQ(atomic_load(&range_freed), n);
	struct syncmap_stats st;
	syncmap_stats(outer, &st);
	ASSERT_EQ(st.len, 0);
	syncmap_free(outer);
	if (!tracker_wait_freed(&TR, 10))
		TEST_FAIL("%ld of %ld values freed after maps were freed in a Range callback", atomic_load(&TR.freed),
			  atomic_load(&TR.made));
	printf("free_in_range: %ld maps taken and freed from a Range callback, %ld values\n", n,
	       atomic_load(&TR.made) - made0);
}

int main(void)
{
	test_begin();
	watchdog(120, "nested map tests");
	tracker_init(&TR, false, false);
	test_map_of_maps();
	test_app_callback();
	test_free_in_range();
	tracker_check_all_freed(&TR);
	tracker_destroy(&TR);
	printf("ok\n");
	return 0;
}
