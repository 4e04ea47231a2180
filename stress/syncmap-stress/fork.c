/*
 * fork.c - --fork: fork() while the workers run, and check what the library
 * promises a child.
 *
 * SPDX-License-Identifier: MIT
 *
 * Servers fork.  Every cfg.fork_every seconds the main thread forks while
 * the workers keep writing (under a sanitizer they pause between two
 * operations: SS_PAUSE_FOR_FORK in stress.h); the child, in which only the
 * forking thread exists, runs a short verified workload ("Fork" in
 * syncmap.h) under a watchdog and _exits:
 *   (a) the inherited map works: every key loads inside a read section
 *       with an intact value (magic, key, check word: the tool's usual
 *       check), and (without clears in the mix) syncmap_len matches the
 *       keys found give or take the workers' ops in flight at the fork;
 *       the child's own ops on keys no worker uses (one byte longer than
 *       the workers' keys) give exactly the predicted results (the shard
 *       mutexes the workers may have held at the fork instant must be
 *       free, and entries in dirty maps reachable); odd-numbered children
 *       then clear it: no key left, len back to 0 (same slack);
 *   (b) a new owning map made in the child: values stored, overwritten,
 *       deleted (and with --owner caller, taken and retired or freed after
 *       syncmap_synchronize) all reach its free_value before syncmap_free
 *       (the child needs a working call_rcu thread of its own; the wait
 *       fails after 10 s without progress), then exactly every value once
 *       after it;
 *   (c) syncmap_free of the inherited map returns, although the parent had
 *       reclamation queued for it: it waits until the child's call_rcu
 *       thread has run every callback that frees the map's values.
 * The parent waits for the child (the workers keep running), reads its
 * report from a pipe, and fails the run with the child's reason if it
 * failed, crashed, or hung (its watchdog alarm names the stage it hung in;
 * a child that outlives it by 15 s is killed, and the stage it was in is
 * read from a page shared with the parent).
 *
 * The child must not take a lock a vanished worker may have held at the
 * fork instant: it never prints (ss_fail keeps the first reason in a
 * buffer, see report.c) and the quarantine's mutex is held across fork by
 * handlers registered before the library's (values.c).  The child's
 * workload is seeded from the run's seed and the fork's index, so it
 * replays; the moments of the forks do not.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stress.h"

struct ss_fork_stats ss_fork_stats;

/* ThreadSanitizer kills the child of a multithreaded program as soon as it
 * starts a thread (here: liburcu's call_rcu thread, which the library
 * restarts in the child) unless told this program knows what it does.
 * Harmless without TSAN.  tests/syncmap/fork.c does the same. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}

#define CHILD_WATCHDOG_S 30
#define CHILD_GRACE_S 15 /* after the watchdog, before the parent kills it */
#define CHILD_KEYS 64    /* the child's own keys in the inherited map */
#define CHILD_OPS 4000
#define NEW_MAP_KEYS 200
#define NEW_MAP_OPS 3000
#define RECLAIM_DEADLINE_S 10

/* What a child sends back through its pipe: exactly one, at its end (or
 * from its watchdog). */
struct child_msg {
	int ok;
	char reason[400];
	uint64_t inherited_present; /* keys of the inherited map loaded and checked */
	uint64_t own_ops;           /* ops with exact predictions on the inherited map */
	uint64_t new_values;        /* values through the child's new map */
	double new_reclaim_s;       /* until everything the new map retired was freed */
	double free_s;              /* syncmap_free of the inherited map */
	int cleared;                /* syncmap_clear'ed the inherited map first */
	double stage_s[16];         /* seconds spent in each stage (enum stage) */
};

/* ---- the child --------------------------------------------------------- */

static struct child_msg child_out;

/* Where the child is, for its reasons and for the parent: in a page shared
 * with the parent, because a child stuck in a grace-period wait cannot be
 * woken by its watchdog (urcu-bp blocks every signal while it waits) and
 * is killed without a word. */
enum stage {
	ST_START,
	ST_LOADS,
	ST_OWN,
	ST_CLEAR,
	ST_NEW,
	ST_NEW_RECLAIM,
	ST_NEW_FREE,
	ST_FREE,
	ST__N
};
static const char *const stage_names[ST__N] = {
	"starting",
	"loading every key of the inherited map",
	"the child's own keys in the inherited map",
	"syncmap_clear of the inherited map",
	"a new map made in the child",
	"waiting for the new map's retired values to reach free_value",
	"syncmap_free of the child's new map",
	"syncmap_free of the inherited map (the parent had reclamation queued for it)",
};
_Static_assert(ST__N <= 16, "child_msg.stage_s holds every stage");
static volatile int *shared_stage; /* MAP_SHARED: the parent reads it */
static volatile int child_stage_now;
static uint64_t stage_t0;

static void stage(enum stage st)
{
	uint64_t now = sm_now_ns();
	if (stage_t0)
		child_out.stage_s[child_stage_now] += (double)(now - stage_t0) / 1e9;
	stage_t0 = now;
	child_stage_now = (int)st;
	*shared_stage = (int)st;
}

static int child_fd = -1;
/* The child's own keys in the inherited map (cfg.klen + 1 bytes). */
static unsigned char child_keys[CHILD_KEYS][SS_KEY_MAX + 1];

static void child_send(void)
{
	const char *p = (const char *)&child_out;
	size_t left = sizeof(child_out);
	while (left) {
		ssize_t n = write(child_fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
}

/* SIGALRM: the child hung.  Only async-signal-safe calls: copy the stage
 * name by hand, write, _exit. */
static void child_watchdog(int sig)
{
	(void)sig;
	static const char head[] = "hung: watchdog after " SS_STR(CHILD_WATCHDOG_S) " s, in: ";
	size_t n = 0;
	child_out.ok = 0;
	for (const char *p = head; *p && n < sizeof(child_out.reason) - 1; p++)
		child_out.reason[n++] = *p;
	for (const char *p = stage_names[child_stage_now]; *p && n < sizeof(child_out.reason) - 1; p++)
		child_out.reason[n++] = *p;
	child_out.reason[n] = 0;
	child_send();
	_exit(3);
}

static _Noreturn void child_exit(void)
{
	stage((enum stage)child_stage_now); /* close the current stage's time */
	child_out.ok = ss_child_reason[0] == 0;
	if (!child_out.ok)
		snprintf(child_out.reason, sizeof(child_out.reason), "%s: %s", stage_names[child_stage_now],
			 ss_child_reason);
	child_send();
	_exit(child_out.ok ? 0 : 1);
}

#define CHILD_FAIL(...)                        \
	do {                                   \
		ss_fail(-1, __VA_ARGS__);      \
		child_exit();                  \
	} while (0)

/* A value for the child's own keys: like the workers' (an object, or a
 * tagged word with reclamation off), writer 0. */
static void *child_value(uint32_t key, uint64_t seq)
{
	if (!cfg.reclaim)
		return ss_tag_make(key, 0, (uint32_t)seq);
	struct ss_value *v = malloc(sizeof(*v));
	if (!v)
		CHILD_FAIL("out of memory for a value");
	v->magic = SS_VAL_MAGIC;
	v->key = key;
	v->alt = key;
	v->writer = 0;
	v->seq = seq;
	v->check = ss_val_mix(key, key, 0, seq);
	atomic_init(&v->freed, 0);
	return v;
}

/* syncmap_len against the keys found.  Each worker may have had one op
 * in flight at the fork instant, its count update never to come.  Only
 * without clears in the parent's mix: a clear's count is settled when its
 * tables are freed, and the parent's backlog of those can be huge (its
 * workers, always in read sections, never help reclaim), so the child
 * would have to wait seconds for it. */
static void child_check_len(const char *when, uint64_t present)
{
	if (cfg.have_clear)
		return;
	uint64_t len = syncmap_len(run.map);
	if (len > present + cfg.threads || present > len + cfg.threads)
		CHILD_FAIL("%s: syncmap_len %" PRIu64 ", but %" PRIu64 " keys present (at most %u ops were in flight at "
			   "the fork)",
			   when, len, present, cfg.threads);
}

/* (a) every key the workers use: present ones intact. */
static void child_inherited_loads(void)
{
	stage(ST_LOADS);
	struct ss_seen s;
	syncmap_read_lock();
	for (uint64_t i = 0; i < cfg.keys; i++) {
		void *v;
		if ((i & 1023) == 1023) { /* keep sections short */
			syncmap_read_unlock();
			syncmap_read_lock();
		}
		if (!syncmap_load(run.map, ss_key(i), cfg.klen, &v))
			continue;
		child_out.inherited_present++;
		if (!ss_value_check(-1, "load of an inherited key in the child", i, v, i < run.shared_base, &s))
			break;
	}
	syncmap_read_unlock();
	if (ss_child_reason[0])
		child_exit();
	child_check_len("after the fork", child_out.inherited_present);
}

/* Odd children: clear the inherited map; then no key of any length is
 * there, and len is 0 give or take the ops that were in flight at the
 * fork (without clears in the parent's mix, see child_check_len). */
static void child_clear(void)
{
	stage(ST_CLEAR);
	syncmap_clear(run.map);
	for (uint64_t i = 0; i < cfg.keys; i++)
		if (syncmap_load(run.map, ss_key(i), cfg.klen, NULL))
			CHILD_FAIL("key %" PRIu64 " is present after syncmap_clear", i);
	for (unsigned j = 0; j < CHILD_KEYS; j++)
		if (syncmap_load(run.map, child_keys[j], cfg.klen + 1, NULL))
			CHILD_FAIL("the child's key %u is present after syncmap_clear", j);
	child_check_len("after syncmap_clear", 0);
	child_out.cleared = 1;
}

/* (a) the child's own keys in the inherited map: no worker exists in the
 * child and none uses keys of this length, so every result is exact. */
static void child_own_ops(struct sm_rng *rng)
{
	stage(ST_OWN);
	const size_t klen = cfg.klen + 1;
	unsigned char(*keys)[SS_KEY_MAX + 1] = child_keys;
	void *cur[CHILD_KEYS];
	bool present[CHILD_KEYS];
	static char never;
	for (uint32_t j = 0; j < CHILD_KEYS; j++) {
		memset(keys[j], 0xc5, klen);
		memcpy(keys[j], &j, 4);
		present[j] = false;
		cur[j] = NULL;
		void *v;
		if (syncmap_load(run.map, keys[j], klen, &v))
			CHILD_FAIL("key %u (%zu bytes, never stored) is present", j, klen);
	}
	static const char *const op_names[] = {"load", "store", "swap", "load_or_store", "cas", "cad",
					       "load_and_delete", "take + retire"};
	uint64_t seq = 0;
	struct ss_seen s;
	syncmap_read_lock();
	for (unsigned n = 0; n < CHILD_OPS; n++) {
		if ((n & 15) == 15) {
			syncmap_read_unlock();
			syncmap_read_lock();
		}
		uint64_t r = sm_rng_next(rng);
		uint32_t j = (uint32_t)(r % CHILD_KEYS);
		const void *k = keys[j];
		unsigned op = (unsigned)((r >> 32) % 8);
		/* NULL now and then (a value, distinct from absence). */
		void *nv = (r >> 60) == 0 ? NULL : child_value(j, ++seq);
		void *got = &never;
		bool ok = true, used = false, was = present[j];
		int rc = 0;
		switch (op) {
		case 0: /* load */
			rc = syncmap_load(run.map, k, klen, &got);
			ok = rc == present[j] && (!rc || got == cur[j]);
			break;
		case 1: /* store */
			rc = syncmap_store(run.map, k, klen, nv);
			ok = rc == 0;
			used = true;
			break;
		case 2: /* swap */
			rc = syncmap_swap(run.map, k, klen, nv, &got);
			ok = rc == present[j] && (!rc || got == cur[j]);
			used = true;
			break;
		case 3: /* load_or_store */
			rc = syncmap_load_or_store(run.map, k, klen, nv, &got);
			ok = rc == present[j] && got == (present[j] ? cur[j] : nv);
			used = !present[j];
			break;
		case 4: /* cas against the current value, or one never stored */
			rc = syncmap_compare_and_swap(run.map, k, klen, (r >> 20) & 1 ? cur[j] : (void *)&never, nv);
			used = present[j] && (r >> 20) & 1;
			ok = rc == used;
			break;
		case 5: /* cad */
			rc = syncmap_compare_and_delete(run.map, k, klen, cur[j]);
			ok = rc == present[j];
			present[j] = false;
			break;
		default: /* load_and_delete, or take and retire */
			if (cfg.owner_caller) {
				rc = syncmap_take(run.map, k, klen, &got);
				if (rc && syncmap_retire(run.map, got) != 0)
					CHILD_FAIL("syncmap_retire of a value taken from the child's key %u failed", j);
			} else {
				rc = syncmap_load_and_delete(run.map, k, klen, &got);
			}
			ok = rc == present[j] && (!rc || got == cur[j]);
			present[j] = false;
			break;
		}
		child_out.own_ops++;
		if (!ok)
			CHILD_FAIL("op %u (%s) on the child's key %u: result %d not as predicted (the key was %s, value %p; "
				   "returned value %p)",
				   n, op_names[op < 6 ? op : cfg.owner_caller ? 7 : 6], j, rc, was ? "present" : "absent",
				   cur[j], got == &never ? NULL : got);
		if (got != &never && got && !ss_value_check(-1, "a child key's value", j, got, true, &s))
			child_exit();
		if (used) {
			present[j] = true;
			cur[j] = nv;
		} else if (cfg.reclaim) {
			free(nv); /* never stored: ours */
		}
	}
	syncmap_read_unlock();
}

/* (b) the new map's free_value: count, and catch a second free. */
static atomic_ulong new_freed;

static void new_map_free(void *val, void *ctx)
{
	(void)ctx;
	struct ss_value *v = val;
	if (v->magic != SS_VAL_MAGIC) {
		ss_fail(-1, "new map in the child: free_value got %p, not a live value (magic %016" PRIx64 ")", val,
			v->magic);
		return;
	}
	v->magic = SS_VAL_POISON;
	free(v);
	atomic_fetch_add(&new_freed, 1);
}

static void child_new_map(unsigned idx, struct sm_rng *rng)
{
	stage(ST_NEW);
	/* A grace period in the child: the parent's readers (threads that do
	 * not exist here) must have been forgotten. */
	int rc = syncmap_synchronize();
	if (rc != 0)
		CHILD_FAIL("syncmap_synchronize returned %d", rc);
	struct syncmap_options o = {
		.free_value = new_map_free,
		/* Replays with a fixed map seed; with --map-seed random the child's
		 * reseeded generator picks it. */
		.seed = cfg.map_seed ? sm_splitmix64(cfg.map_seed ^ (0x636869ULL + idx)) | 1 : 0,
		.shards = cfg.shards,
	};
	struct syncmap *m = syncmap_new(&o);
	if (!m)
		CHILD_FAIL("syncmap_new failed");
	void *cur[NEW_MAP_KEYS] = {0};
	uint64_t made = 0, left = 0, tool_freed = 0; /* left: passed to free_value by the map */
	for (unsigned n = 0; n < NEW_MAP_OPS; n++) {
		uint64_t r = sm_rng_next(rng);
		uint64_t k = r % NEW_MAP_KEYS;
		if ((r >> 32) % 4 != 0) {
			struct ss_value *v = malloc(sizeof(*v));
			if (!v)
				CHILD_FAIL("out of memory for a value");
			*v = (struct ss_value){.magic = SS_VAL_MAGIC, .key = (uint32_t)k, .alt = (uint32_t)k, .seq = n,
					       .check = ss_val_mix(k, k, 0, n)};
			made++;
			if (syncmap_store(m, &k, sizeof(k), v) != 0)
				CHILD_FAIL("store in the new map failed");
			left += cur[k] != NULL;
			cur[k] = v;
		} else if (!cfg.owner_caller || (r >> 40) % 2) {
			bool was = syncmap_load_and_delete(m, &k, sizeof(k), NULL);
			if (was != (cur[k] != NULL))
				CHILD_FAIL("load_and_delete in the new map: present %d, expected %d", was, cur[k] != NULL);
			left += was;
			cur[k] = NULL;
		} else {
			void *v = NULL;
			bool was = syncmap_take(m, &k, sizeof(k), &v);
			if (was != (cur[k] != NULL) || v != cur[k])
				CHILD_FAIL("take in the new map: present %d (expected %d), value %p (expected %p)", was,
					   cur[k] != NULL, v, cur[k]);
			cur[k] = NULL;
			if (!was)
				continue;
			if ((r >> 41) % 2) {
				if (syncmap_retire(m, v) != 0)
					CHILD_FAIL("syncmap_retire in the new map failed");
				left++;
			} else {
				/* The child's own grace period, then the value is ours. */
				rc = syncmap_synchronize();
				if (rc != 0)
					CHILD_FAIL("syncmap_synchronize returned %d", rc);
				((struct ss_value *)v)->magic = SS_VAL_POISON;
				free(v);
				tool_freed++;
			}
		}
	}
	child_out.new_values = made;
	/* Everything retired must reach free_value without syncmap_free: the
	 * child's own call_rcu thread runs the callbacks.  They queue behind
	 * the parent's backlog for the inherited map (which can be hundreds of
	 * thousands of objects: the workers, always in read sections, never
	 * help reclaim), so the deadline is for progress, not for the whole:
	 * fail only after RECLAIM_DEADLINE_S with neither backlog shrinking. */
	stage(ST_NEW_RECLAIM);
	uint64_t t0 = sm_now_ns(), t_progress = t0, inherited_last = UINT64_MAX;
	unsigned long freed_last = 0;
	for (;;) {
		unsigned long freed = atomic_load(&new_freed);
		if (freed >= left)
			break;
		struct syncmap_stats st;
		syncmap_stats(run.map, &st);
		uint64_t now = sm_now_ns();
		if (freed != freed_last || st.pending_reclaim < inherited_last)
			t_progress = now;
		freed_last = freed;
		inherited_last = st.pending_reclaim;
		if (now - t_progress > (uint64_t)RECLAIM_DEADLINE_S * 1000000000ULL)
			CHILD_FAIL("%lu of the %" PRIu64 " values the new map retired reached free_value, and no "
				   "reclamation progressed for %d s (%" PRIu64 " of the inherited map's objects still "
				   "pending): no working reclamation in the child?",
				   freed, left, RECLAIM_DEADLINE_S, st.pending_reclaim);
		usleep(1000);
	}
	child_out.new_reclaim_s = (double)(sm_now_ns() - t0) / 1e9;
	stage(ST_NEW_FREE);
	syncmap_free(m);
	if (atomic_load(&new_freed) + tool_freed != made)
		CHILD_FAIL("new map: %" PRIu64 " values made, %lu passed to free_value + %" PRIu64
			   " freed after syncmap_synchronize, after syncmap_free",
			   made, atomic_load(&new_freed), tool_freed);
}

static _Noreturn void child_main(unsigned idx, int fd)
{
	child_fd = fd;
	ss_child_mode = 1;
	stage(ST_START);
	signal(SIGALRM, child_watchdog);
	alarm(CHILD_WATCHDOG_S);
	struct sm_rng rng;
	sm_rng_seed(&rng, sm_splitmix64(cfg.seed ^ 0x666f726bULL ^ ((uint64_t)idx << 32)));
	child_inherited_loads();
	child_own_ops(&rng);
	if (idx % 2)
		child_clear();
	child_new_map(idx, &rng);
	stage(ST_FREE);
	uint64_t t0 = sm_now_ns();
	syncmap_free(run.map);
	child_out.free_s = (double)(sm_now_ns() - t0) / 1e9;
	child_exit();
}

/* ---- the parent -------------------------------------------------------- */

void ss_fork_once(double at_s)
{
	unsigned idx = (unsigned)ss_fork_stats.children;
	if (!shared_stage) {
		void *p = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			SS_FAIL("fork: mmap: %s", strerror(errno));
			return;
		}
		shared_stage = p;
	}
	*shared_stage = ST_START;
	int pfd[2];
	if (pipe(pfd) != 0) {
		SS_FAIL("fork %u: pipe: %s", idx, strerror(errno));
		return;
	}
	if (SS_PAUSE_FOR_FORK) {
		/* finished workers never pause; a failure ends the run instead */
		atomic_store(&run.fork_pause, true);
		while (atomic_load(&run.fork_paused) + atomic_load(&run.finished) < cfg.threads) {
			if (atomic_load(&ss_stop)) {
				atomic_store(&run.fork_pause, false);
				close(pfd[0]);
				close(pfd[1]);
				return;
			}
			usleep(100);
		}
	}
	uint64_t t0 = sm_now_ns();
	pid_t pid = fork();
	if (pid != 0)
		atomic_store(&run.fork_pause, false);
	if (pid < 0) {
		SS_FAIL("fork %u: fork: %s", idx, strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return;
	}
	if (pid == 0) {
		close(pfd[0]);
		child_main(idx, pfd[1]);
	}
	close(pfd[1]);
	ss_fork_stats.children++;
	/* Poll rather than block, so a child that outlives its own watchdog
	 * cannot hang the run. */
	int status = 0;
	bool killed = false;
	uint64_t limit = (uint64_t)(CHILD_WATCHDOG_S + CHILD_GRACE_S) * 1000000000ULL;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			SS_FAIL("fork %u: waitpid: %s", idx, strerror(errno));
			close(pfd[0]);
			return;
		}
		if (!killed && sm_now_ns() - t0 > limit) {
			kill(pid, SIGKILL);
			killed = true;
		}
		usleep(2000);
	}
	double secs = (double)(sm_now_ns() - t0) / 1e9;
	ss_fork_stats.total_s += secs;
	if (secs > ss_fork_stats.max_s)
		ss_fork_stats.max_s = secs;
	struct child_msg msg;
	memset(&msg, 0, sizeof(msg));
	size_t got = 0;
	while (got < sizeof(msg)) {
		ssize_t n = read(pfd[0], (char *)&msg + got, sizeof(msg) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pfd[0]);
	msg.reason[sizeof(msg.reason) - 1] = 0;
	bool have_msg = got == sizeof(msg);
	if (have_msg && msg.ok && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		ss_fork_stats.inherited_present += msg.inherited_present;
		ss_fork_stats.own_ops += msg.own_ops;
		ss_fork_stats.new_values += msg.new_values;
		ss_fork_stats.cleared += (uint64_t)msg.cleared;
		if (msg.new_reclaim_s > ss_fork_stats.max_new_reclaim_s)
			ss_fork_stats.max_new_reclaim_s = msg.new_reclaim_s;
		if (msg.free_s > ss_fork_stats.max_free_s)
			ss_fork_stats.max_free_s = msg.free_s;
		for (int st = 0; st < ST__N; st++)
			if (msg.stage_s[st] > ss_fork_stats.slowest_stage_s) {
				ss_fork_stats.slowest_stage_s = msg.stage_s[st];
				ss_fork_stats.slowest_stage = stage_names[st];
			}
		return;
	}
	ss_fork_stats.failed++;
	char how[160];
	int st = *shared_stage;
	const char *where = st >= 0 && st < ST__N ? stage_names[st] : "?";
	if (killed)
		snprintf(how, sizeof(how), "killed: still running %d s after its %d s watchdog (signals blocked: "
					   "a grace-period wait?)",
			 CHILD_GRACE_S, CHILD_WATCHDOG_S);
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
	if (have_msg && msg.reason[0])
		SS_FAIL("fork %u (at %.1f s, pid %d): the child failed (%s): %s", idx, at_s, (int)pid, how, msg.reason);
	else
		SS_FAIL("fork %u (at %.1f s, pid %d): the child failed (%s) in: %s (no report from it; see its output "
			"above)",
			idx, at_s, (int)pid, how, where);
}
