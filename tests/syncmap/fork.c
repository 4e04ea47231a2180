/*
 * fork.c - a pre-forking server: fork() while other threads write, and the
 * child uses, makes and frees maps.
 *
 * SPDX-License-Identifier: MIT
 *
 * The parent keeps writer threads busy on two owning maps (stores of new
 * keys and ranges, so dirty maps, promotions and retired snapshots;
 * overwrites and deletes, so retired values in stripes and batches;
 * clears), and forks
 * again and again while they run.  Each child, under a watchdog:
 *   - reads and writes the maps it inherited (their locks must be free);
 *   - makes a new owning map, stores and deletes values in it and frees it:
 *     every value must reach free_value, which needs a working call_rcu
 *     thread in the child;
 *   - frees the inherited maps: syncmap_free must return although the
 *     parent had reclamation queued for them;
 *   - sends the seed of a map it made through a pipe: children and parent
 *     must not share map seeds (the child reseeds its random generator).
 * Then the same with syncmap_fork_calls_liburcu(false) and the program
 * calling urcu-bp's fork functions itself, as a program using liburcu
 * directly would.  Last, the one thing not allowed: fork() inside a read
 * section would hang liburcu's callback thread; the library aborts with a
 * message instead (checked in a child process).
 */
#include "smtest.h"

#include <sys/wait.h>

#include "syncmap_impl.h"

/* gcc 12's sanitizers do not hold all of their own locks across fork(): a
 * child forked while another thread is inside malloc can deadlock in its
 * own first allocation.  Seen with ASAN in syncmap-stress --fork, and with
 * TSAN here (1 of 72 forks: the child's new call_rcu thread spinning
 * forever on the lock of TSAN's metadata allocator, in
 * DenseSlabAlloc::Refill).  Under a sanitizer the writers pause around
 * each fork, outside any call into the library; the release run forks
 * while they run. */
#define PAUSE_WRITERS_FOR_FORK UNDER_SANITIZER
static atomic_int pause_req, paused;

/* TSAN stops a multi-threaded program's child that starts threads (the
 * child's call_rcu thread) unless told not to. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}

struct blk {
	uint64_t magic;
	long id;
};
#define BLK_MAGIC 0xF0F0F0F0A5A5A5A5ULL

static atomic_long freed, child_freed;

static struct blk *blk_new(long id)
{
	struct blk *b = malloc(sizeof(*b));
	ASSERT(b != NULL);
	b->magic = BLK_MAGIC;
	b->id = id;
	return b;
}

static void blk_free(void *val, void *ctx)
{
	(void)ctx;
	struct blk *b = val;
	if (b->magic != BLK_MAGIC)
		TEST_FAIL("free_value: bad magic (double free?)");
	b->magic = 0;
	free(b);
	atomic_fetch_add(&freed, 1);
}

/* The child's own map's values, counted apart from the inherited maps'
 * (whose queued frees the child's callback thread runs too). */
static void child_blk_free(void *val, void *ctx)
{
	blk_free(val, ctx);
	atomic_fetch_add(&child_freed, 1);
}

static struct syncmap *A, *B;
static atomic_int stop;
static atomic_long writer_ops;

static void *writer(void *arg)
{
	long t = (long)(intptr_t)arg;
	struct test_rng rng;
	test_rng_init(&rng, (uint64_t)t * 7919 + 1);
	long next = t << 40;
	while (!atomic_load(&stop)) {
		if (PAUSE_WRITERS_FOR_FORK && atomic_load(&pause_req)) {
			atomic_fetch_add(&paused, 1);
			while (atomic_load(&pause_req))
				sched_yield();
			atomic_fetch_sub(&paused, 1);
		}
		struct syncmap *m = test_rng_below(&rng, 2) ? A : B;
		uint64_t r = test_rng_below(&rng, 100);
		long k = (long)test_rng_below(&rng, 512);
		if (r < 40) {
			ASSERT_EQ(syncmap_store(m, &k, sizeof(k), blk_new(k)), 0);
		} else if (r < 60) {
			syncmap_delete(m, &k, sizeof(k));
		} else if (r < 80) {
			long n = next++;
			ASSERT_EQ(syncmap_store(m, &n, sizeof(n), blk_new(n)), 0); /* a new key */
			(void)syncmap_load(m, &n, sizeof(n), NULL);
			syncmap_delete(m, &n, sizeof(n));
		} else if (r < 98) {
			syncmap_read_lock();
			void *v;
			if (syncmap_load(m, &k, sizeof(k), &v) && ((struct blk *)v)->magic != BLK_MAGIC)
				TEST_FAIL("parent: loaded a freed value");
			syncmap_read_unlock();
		} else if (r < 99) {
			long visits = 0; /* promotes: retired snapshots */
			syncmap_range(m, range_count_fn, &visits);
		} else {
			syncmap_clear(m);
		}
		atomic_fetch_add(&writer_ops, 1);
	}
	return NULL;
}

static uint64_t map_seed(struct syncmap *m)
{
	return m->seed;
}

/* The child's work; returns its exit status. */
static int child_main(int fd)
{
	alarm(30); /* a hang is a failure: the parent sees SIGALRM */
	/* the inherited maps work */
	for (long k = 0; k < 2000; k++) {
		struct syncmap *m = k % 2 ? A : B;
		long key = 1000000 + k;
		if (syncmap_store(m, &key, sizeof(key), blk_new(key)) != 0)
			return 10;
		void *v;
		if (!syncmap_load(m, &key, sizeof(key), &v) || ((struct blk *)v)->id != key)
			return 11;
		if (k % 3 == 0)
			syncmap_delete(m, &key, sizeof(key));
	}
	(void)syncmap_len(A);
	/* a new map: everything it retires is freed, by the child's own
	 * call_rcu thread */
	long freed0 = atomic_load(&child_freed);
	struct syncmap_options o = {.free_value = child_blk_free, .shards = test_shards()};
	struct syncmap *c = syncmap_new(&o);
	if (!c)
		return 12;
	for (long k = 0; k < 5000; k++) {
		long key = k % 300;
		if (syncmap_store(c, &key, sizeof(key), blk_new(key)) != 0)
			return 13;
		if (k % 7 == 0)
			syncmap_delete(c, &key, sizeof(key));
	}
	/* reclaimed before syncmap_free too (the reaper runs in the child) */
	double t0 = now_sec();
	while (atomic_load(&child_freed) - freed0 < 4000 && now_sec() - t0 < 10)
		sleep_ms(1);
	if (atomic_load(&child_freed) - freed0 < 4000)
		return 14;
	syncmap_free(c);
	if (atomic_load(&child_freed) - freed0 != 5000)
		return 15;
	struct syncmap *s = syncmap_new(NULL);
	uint64_t seed = map_seed(s);
	syncmap_free(s);
	if (write(fd, &seed, sizeof(seed)) != (ssize_t)sizeof(seed))
		return 16;
	/* the inherited maps go, with what the parent had queued for them */
	syncmap_free(A);
	syncmap_free(B);
	return 0;
}

static void run_forks(const char *mode, bool program_calls_liburcu, long forks)
{
	struct syncmap_options o = {.free_value = blk_free, .shards = test_shards()};
	A = syncmap_new(&o);
	B = syncmap_new(&o);
	ASSERT(A && B);
	syncmap_fork_calls_liburcu(!program_calls_liburcu);
	atomic_store(&stop, 0);
	enum { W = 3 };
	pthread_t th[W];
	for (long t = 0; t < W; t++)
		ASSERT_EQ(pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t), 0);
	uint64_t *seeds = calloc((size_t)forks + 1, sizeof(*seeds));
	for (long f = 0; f < forks; f++) {
		sleep_ms(5 + (long)(f % 7)); /* fork at varied moments of the writers' work */
		int pfd[2];
		ASSERT_EQ(pipe(pfd), 0);
		if (PAUSE_WRITERS_FOR_FORK) {
			atomic_store(&pause_req, 1);
			while (atomic_load(&paused) != W)
				sched_yield();
		}
		if (program_calls_liburcu) {
			call_rcu_before_fork();
			urcu_bp_before_fork();
		}
		pid_t pid = fork();
		ASSERT(pid >= 0);
		if (pid == 0) {
			if (program_calls_liburcu) {
				urcu_bp_after_fork_child();
				call_rcu_after_fork_child();
			}
			close(pfd[0]);
			_exit(child_main(pfd[1]));
		}
		if (program_calls_liburcu) {
			urcu_bp_after_fork_parent();
			call_rcu_after_fork_parent();
		}
		atomic_store(&pause_req, 0);
		close(pfd[1]);
		int status = 0;
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			TEST_FAIL("%s: child %ld: %s %d", mode, f, WIFEXITED(status) ? "exit status" : "killed by signal",
				  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		ASSERT_EQ(read(pfd[0], &seeds[f], sizeof(seeds[f])), (ssize_t)sizeof(seeds[f]));
		close(pfd[0]);
	}
	struct syncmap *s = syncmap_new(NULL);
	seeds[forks] = map_seed(s);
	syncmap_free(s);
	for (long i = 0; i <= forks; i++)
		for (long j = 0; j < i; j++)
			if (seeds[i] == seeds[j])
				TEST_FAIL("%s: two processes made maps with the same seed %#llx", mode,
					  (unsigned long long)seeds[i]);
	free(seeds);
	atomic_store(&stop, 1);
	for (int t = 0; t < W; t++)
		pthread_join(th[t], NULL);
	syncmap_fork_calls_liburcu(true);
	struct syncmap_stats st;
	syncmap_stats(A, &st);
	printf("%s: %ld forks while 3 writers ran (%ld ops, %" PRIu64 " promotions in A); every child passed\n",
	       mode, forks, atomic_load(&writer_ops), st.promotions);
	syncmap_free(A);
	syncmap_free(B);
}

static void test_fork_in_read_section(void)
{
	int efd[2];
	ASSERT_EQ(pipe(efd), 0);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		dup2(efd[1], 2);
		alarm(20);
		struct syncmap *m = syncmap_new(NULL);
		long k = 1;
		(void)syncmap_store(m, &k, sizeof(k), NULL);
		syncmap_read_lock();
		pid_t inner = fork(); /* must abort here */
		if (inner == 0)
			_exit(3);
		_exit(4);
	}
	close(efd[1]);
	char msg[512] = {0};
	ssize_t n = 0, r;
	while (n < (ssize_t)sizeof(msg) - 1 && (r = read(efd[0], msg + n, sizeof(msg) - 1 - (size_t)n)) > 0)
		n += r;
	close(efd[0]);
	int status = 0;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		TEST_FAIL("fork() inside a read section: status %#x, want SIGABRT", status);
	if (!strstr(msg, "fork() inside a read section"))
		TEST_FAIL("fork() inside a read section: no explanation on stderr (got \"%s\")", msg);
	printf("fork in a read section: aborted with \"%.*s\"\n", (int)strcspn(msg, "\n"), msg);
}

int main(void)
{
	test_begin();
	watchdog(300, "fork tests");
	long forks = scaled(16, 6);
	run_forks("library handlers", false, forks);
	run_forks("program calls liburcu", true, forks);
	test_fork_in_read_section();
	printf("ok\n");
	return 0;
}
