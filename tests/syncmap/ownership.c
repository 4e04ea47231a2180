/*
 * ownership.c - who owns a value: the same pointer stored again, taking a
 * value out, giving it back, and the CompareAndSwap result.
 *
 * SPDX-License-Identifier: MIT
 *
 * Values here are real heap blocks that free_value passes to free(), so
 * under AddressSanitizer a value freed while still in the map (or freed
 * twice) is a use-after-free / double-free report, not just a counter.
 *
 *   same_pointer  Store, Swap and CompareAndSwap of the pointer the key
 *                 already holds keep it: it is not passed to free_value and
 *                 stays readable (ASAN); at syncmap_free it is freed once;
 *                 over many rounds with readers in read sections;
 *   take          syncmap_take removes the key without free_value; the
 *                 value moves to a second map (then owned there) or back to
 *                 the caller, who frees it after syncmap_synchronize, or
 *                 hands it to syncmap_retire; a reader pinned in a read
 *                 section keeps reading a taken-and-retired value until
 *                 its section ends (ASAN), and it is freed after;
 *   synchronize   -EDEADLK inside a read section; 0 outside;
 *   retire        -EINVAL for NULL or a map without free_value;
 *   cas_result    1 / 0 / -EINVAL, and -ENOMEM (fault injection) with the
 *                 map unchanged: "unequal" and "out of memory" differ.
 */
#include "smtest.h"

#include "alloc.h"

struct blk {
	uint64_t magic;
	long id;
};
#define BLK_MAGIC 0xB10CB10CB10CB10CULL

static atomic_long blk_made, blk_freed;

static struct blk *blk_new(long id)
{
	struct blk *b = malloc(sizeof(*b));
	ASSERT(b != NULL);
	b->magic = BLK_MAGIC;
	b->id = id;
	atomic_fetch_add(&blk_made, 1);
	return b;
}

static void blk_check(const struct blk *b, long id)
{
	/* A freed block here is an ASAN heap-use-after-free report. */
	if (b->magic != BLK_MAGIC || b->id != id)
		TEST_FAIL("value %p: magic %#llx id %ld, want id %ld", (const void *)b, (unsigned long long)b->magic,
			  b->id, id);
}

static void blk_free(void *val, void *ctx)
{
	(void)ctx;
	struct blk *b = val;
	ASSERT(b != NULL);
	ASSERT_EQ(b->magic, BLK_MAGIC);
	b->magic = 0;
	free(b);
	atomic_fetch_add(&blk_freed, 1);
}

static struct syncmap *owning_map(void)
{
	struct syncmap_options o = {.free_value = blk_free, .shards = test_shards()};
	struct syncmap *m = syncmap_new(&o);
	ASSERT(m != NULL);
	return m;
}

/* After syncmap_free: every block made was freed exactly once. */
static void expect_all_freed(void)
{
	ASSERT_EQ(atomic_load(&blk_freed), atomic_load(&blk_made));
}

/* ---- the same pointer ------------------------------------------------------ */

static struct syncmap *SP;
static atomic_int sp_stop;

static void *sp_reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&sp_stop)) {
		syncmap_read_lock();
		for (long id = 0; id < 16; id++) {
			void *v;
			if (syncmap_load(SP, &id, sizeof(id), &v))
				blk_check(v, id);
		}
		syncmap_read_unlock();
	}
	return NULL;
}

static void test_same_pointer(void)
{
	SP = owning_map();
	struct blk *cur[16];
	for (long id = 0; id < 16; id++) {
		cur[id] = blk_new(id);
		ASSERT_EQ(syncmap_store(SP, &id, sizeof(id), cur[id]), 0);
	}
	atomic_store(&sp_stop, 0);
	pthread_t r;
	ASSERT_EQ(pthread_create(&r, NULL, sp_reader, NULL), 0);
	long rounds = scaled(20000, 2000);
	for (long i = 0; i < rounds; i++) {
		long id = i % 16;
		void *prev = NULL;
		switch (i % 5) {
		case 0:
			ASSERT_EQ(syncmap_store(SP, &id, sizeof(id), cur[id]), 0);
			break;
		case 1:
			ASSERT_EQ(syncmap_swap(SP, &id, sizeof(id), cur[id], &prev), 1);
			PTR_EQ(prev, cur[id]);
			break;
		case 2:
			ASSERT_EQ(syncmap_compare_and_swap(SP, &id, sizeof(id), cur[id], cur[id]), 1);
			break;
		case 3: /* a real replacement now and then: the old one goes */
			cur[id] = blk_new(id);
			ASSERT_EQ(syncmap_store(SP, &id, sizeof(id), cur[id]), 0);
			break;
		default: { /* make the key dirty-only, then store it again */
			long fresh = 1000 + i;
			ASSERT_EQ(syncmap_store(SP, &fresh, sizeof(fresh), blk_new(fresh)), 0);
			syncmap_delete(SP, &fresh, sizeof(fresh));
			ASSERT_EQ(syncmap_store(SP, &id, sizeof(id), cur[id]), 0);
			break;
		}
		}
		void *v;
		ASSERT_TRUE(syncmap_load(SP, &id, sizeof(id), &v));
		PTR_EQ(v, cur[id]);
		blk_check(v, id);
	}
	atomic_store(&sp_stop, 1);
	pthread_join(r, NULL);
	/* every value is still readable: none was freed while present */
	for (long id = 0; id < 16; id++)
		blk_check(cur[id], id);
	syncmap_free(SP);
	expect_all_freed();
	printf("same_pointer: %ld rounds, %ld values made, each freed once\n", rounds, atomic_load(&blk_made));
}

/* ---- take, move, retire --------------------------------------------------- */

static struct syncmap *TK;
static atomic_int pin_phase;
static struct blk *_Atomic pinned;

static void *pinner(void *arg)
{
	(void)arg;
	syncmap_read_lock();
	long id = 50;
	void *v = NULL;
	ASSERT_TRUE(syncmap_load(TK, &id, sizeof(id), &v));
	atomic_store(&pinned, v);
	atomic_store(&pin_phase, 1);
	while (atomic_load(&pin_phase) != 2)
		sched_yield();
	/* taken and retired meanwhile: still ours until the unlock */
	blk_check(v, id);
	syncmap_read_unlock();
	atomic_store(&pin_phase, 3);
	return NULL;
}

static void test_take(void)
{
	long made0 = atomic_load(&blk_made), freed0 = atomic_load(&blk_freed);
	TK = owning_map();
	struct syncmap *other = owning_map();
	for (long id = 0; id < 64; id++)
		ASSERT_EQ(syncmap_store(TK, &id, sizeof(id), blk_new(id)), 0);

	/* move: take from TK, store in other; TK never frees it */
	for (long id = 0; id < 32; id++) {
		void *v = NULL;
		ASSERT_TRUE(syncmap_take(TK, &id, sizeof(id), &v));
		blk_check(v, id);
		ASSERT_FALSE(syncmap_load(TK, &id, sizeof(id), NULL));
		ASSERT_EQ(syncmap_store(other, &id, sizeof(id), v), 0);
	}
	long missing = 999;
	void *junk = (void *)1;
	ASSERT_FALSE(syncmap_take(TK, &missing, sizeof(missing), &junk));
	PTR_EQ(junk, (void *)1);
	errno = 0;
	ASSERT_FALSE(syncmap_take(NULL, &missing, sizeof(missing), NULL));
	ASSERT_EQ(errno, EINVAL);

	/* keep: take, wait for readers, free it ourselves */
	long id = 40;
	void *v = NULL;
	ASSERT_TRUE(syncmap_take(TK, &id, sizeof(id), &v));
	ASSERT_EQ(syncmap_synchronize(), 0);
	blk_free(v, NULL);

	/* retire: a reader pinned on id 50 while it is taken and retired */
	atomic_store(&pin_phase, 0);
	pthread_t t;
	ASSERT_EQ(pthread_create(&t, NULL, pinner, NULL), 0);
	while (atomic_load(&pin_phase) != 1)
		sched_yield();
	id = 50;
	ASSERT_TRUE(syncmap_take(TK, &id, sizeof(id), &v));
	PTR_EQ(v, atomic_load(&pinned));
	long before = atomic_load(&blk_freed);
	ASSERT_EQ(syncmap_retire(TK, v), 0);
	/* more retirements and grace periods elsewhere: v must stay */
	for (long j = 100; j < 400; j++) {
		ASSERT_EQ(syncmap_store(TK, &j, sizeof(j), blk_new(j)), 0);
		syncmap_delete(TK, &j, sizeof(j));
	}
	sleep_ms(50);
	blk_check(v, 50);
	atomic_store(&pin_phase, 2);
	while (atomic_load(&pin_phase) != 3)
		sched_yield();
	pthread_join(t, NULL);
	double t0 = now_sec();
	while (atomic_load(&blk_freed) < before + 301) {
		if (now_sec() - t0 > 5)
			TEST_FAIL("a retired value was not freed 5 s after its reader left");
		sleep_ms(1);
	}

	/* maps without free_value: take is load_and_delete, retire refuses */
	struct syncmap *plain = syncmap_new(&(struct syncmap_options){.shards = test_shards()});
	ASSERT_EQ(syncmap_store(plain, "k", 1, (void *)5), 0);
	ASSERT_TRUE(syncmap_take(plain, "k", 1, &v));
	PTR_EQ(v, (void *)5);
	ASSERT_EQ(syncmap_retire(plain, (void *)5), -EINVAL);
	ASSERT_EQ(syncmap_retire(NULL, (void *)5), -EINVAL);
	syncmap_free(plain);

	syncmap_free(TK);
	syncmap_free(other);
	expect_all_freed();
	printf("take: %ld values made, %ld freed (moved, kept, retired under a pinned reader)\n",
	       atomic_load(&blk_made) - made0, atomic_load(&blk_freed) - freed0);
}

static void test_synchronize(void)
{
	ASSERT_EQ(syncmap_synchronize(), 0);
	syncmap_read_lock();
	ASSERT_EQ(syncmap_synchronize(), -EDEADLK);
	syncmap_read_lock();
	ASSERT_EQ(syncmap_synchronize(), -EDEADLK);
	syncmap_read_unlock();
	ASSERT_EQ(syncmap_synchronize(), -EDEADLK);
	syncmap_read_unlock();
	ASSERT_EQ(syncmap_synchronize(), 0);
}

/* ---- CompareAndSwap's int result ------------------------------------------ */

static void test_cas_result(void)
{
	struct syncmap *m = owning_map();
	long id = 1;
	struct blk *a = blk_new(1), *b = blk_new(1);
	ASSERT_EQ(syncmap_compare_and_swap(m, &id, sizeof(id), NULL, a), 0); /* absent: never creates */
	ASSERT_EQ(syncmap_store(m, &id, sizeof(id), a), 0);
	ASSERT_EQ(syncmap_compare_and_swap(m, &id, sizeof(id), b, b), 0); /* unequal */
	ASSERT_EQ(syncmap_compare_and_swap(NULL, &id, sizeof(id), a, b), -EINVAL);
	ASSERT_EQ(syncmap_compare_and_swap(m, NULL, 8, a, b), -EINVAL);
	/* out of memory (the new value's box): -ENOMEM, and nothing changed */
	syncmap__fault_arm(1);
	int rc = syncmap_compare_and_swap(m, &id, sizeof(id), a, b);
	bool fired = syncmap__fault_fired();
	syncmap__fault_stop();
	ASSERT_TRUE(fired);
	ASSERT_EQ(rc, -ENOMEM);
	void *v = NULL;
	ASSERT_TRUE(syncmap_load(m, &id, sizeof(id), &v));
	PTR_EQ(v, a);
	ASSERT_EQ(syncmap_compare_and_swap(m, &id, sizeof(id), a, b), 1);
	syncmap_free(m);
	expect_all_freed();
}

int main(void)
{
	test_begin();
	watchdog(300, "ownership tests");
	test_same_pointer();
	test_take();
	test_synchronize();
	test_cas_result();
	printf("ok\n");
	return 0;
}
