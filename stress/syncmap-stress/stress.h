/*
 * stress.h - syncmap-stress: the pieces the tool's files share.
 *
 * SPDX-License-Identifier: MIT
 *
 * The tool hammers one syncmap (or, in gomap-churn mode, one gomap per
 * thread) and verifies everything it observes.  Files, by concern:
 *   options.c      command line, workload presets, the reproduce line
 *   keys.c         the key table and the key distributions (uniform,
 *                  zipfian, collision-dense)
 *   values.c       value objects (magic, key, torn-check, poison,
 *                  quarantine, free accounting) and tagged-word values
 *   workers.c      the syncmap worker threads: every op with its checks
 *   verify.c       the end-of-run checks (owned keys, scan, range, len,
 *                  stats, value accounting)
 *   fork.c         --fork: children forked while the workers run, and
 *                  their checks
 *   gomap_churn.c  the single-threaded gomap mode
 *   report.c       failures, progress line, final report, JSON
 *   main.c         orchestration
 */
#ifndef SS_STRESS_H
#define SS_STRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../common.h"
#include "syncmap.h"

/* common.h defines a static comparator only sm_percentiles uses. */
static inline void ss_common_used_(void)
{
	(void)sm_u64_cmp;
}

#define SS_VERSION "1"
#define SS_CACHELINE 64
#define SS_MAX_THREADS 254 /* writer ids fit a byte; 255 is reserved */
#define SS_KEY_MAX 256
#define SS_STR_(x) #x
#define SS_STR(x) SS_STR_(x)

/* ---- configuration (options.c) ---------------------------------------- */

enum ss_workload { WL_CHURN, WL_READ99, WL_READ90, WL_MIX, WL_GOMAP, WL__N };
enum ss_dist { DIST_UNIFORM, DIST_ZIPF, DIST_COLLIDE, DIST__N };

/* Operation kinds: the syncmap API (and, in gomap mode, load = get,
 * store = put, delete = delete, range = iterate, clear, len). */
enum ss_op {
	OP_LOAD,
	OP_STORE,
	OP_DELETE,
	OP_LAD, /* load_and_delete */
	OP_LOS, /* load_or_store */
	OP_SWAP,
	OP_CAS,
	OP_CAD,
	OP_RANGE,
	OP_CLEAR,
	OP_LEN,
	OP__N
};

extern const char *const ss_op_names[OP__N];
extern const char *const ss_workload_names[WL__N];
extern const char *const ss_dist_names[DIST__N];

struct ss_config {
	enum ss_workload workload;
	enum ss_dist dist;
	unsigned threads;
	double duration;     /* seconds (used when ops == 0) */
	uint64_t ops;        /* ops per thread; 0: run for `duration` */
	uint64_t keys;       /* key space */
	uint64_t owned;      /* keys owned by each thread */
	unsigned klen;
	uint64_t seed;
	uint64_t map_seed;   /* the map's hash seed (derived from seed unless given) */
	bool reclaim;        /* free_value set (values are heap objects) */
	double zipf_s;
	int collide_bits;    /* shared low hash bits; -1: auto */
	unsigned collide_group; /* keys per colliding group */
	double mix[OP__N];
	bool mix_given;
	double prefill;      /* fraction of the key space stored before the run */
	uint64_t wave;       /* churn: ops per thread per insert/delete wave; 0 = off */
	double slide;        /* churn: inserts aim at a window of this fraction of the
			      * keys that slides through them; 0 = off */
	double own_frac;     /* fraction of writes aimed at the thread's own keys */
	double other_frac;   /* fraction of loads aimed at other threads' own keys */
	int progress;        /* -1 auto (tty: live line), 0 off, 1 plain lines, 2 live line */
	bool json;
	unsigned sample_every; /* latency: time every Nth op of each thread */
	size_t quarantine;   /* freed values kept poisoned before the real free */
	unsigned section_ops; /* ops per syncmap_read_lock section */
	unsigned shards;     /* syncmap_options.shards: 0 = automatic */
	bool owner_caller;   /* --owner caller: deletes are syncmap_take, and the
			      * tool disposes of what it is handed */
	double fork_every;   /* --fork: seconds between forks; 0 = never */
	bool have_clear;     /* derived: clear weight > 0 */

	/* The command line, for the reproduce line. */
	int argc;
	char **argv;
	bool seed_given;
};

extern struct ss_config cfg;

int ss_parse_options(int argc, char **argv); /* 0 ok, else the exit status */
/* The reproduce command (launcher + argv, --seed added if absent). */
const char *ss_reproduce_line(void);
const char *ss_config_line(void); /* one line describing the effective run */
/* The shard count the map gets: cfg.shards, or the library's automatic
 * choice on this machine. */
unsigned ss_shards_effective(void);

/* ---- keys (keys.c) ------------------------------------------------------- */

/* Key i's bytes: keytab + i * klen.  The first 4 bytes hold i (little
 * endian), so a key seen in a range callback decodes to its index. */
extern unsigned char *ss_keytab;

static inline const unsigned char *ss_key(uint64_t i)
{
	return ss_keytab + i * cfg.klen;
}

static inline uint32_t ss_key_index(const void *key)
{
	uint32_t i;
	memcpy(&i, key, 4);
	return i;
}

/* A sampler over [0, n): uniform, or zipfian by an alias table (one
 * random draw per sample either way). */
struct ss_sampler {
	uint64_t n;
	uint32_t *thresh; /* alias method: keep i if draw < thresh[i] */
	uint32_t *alias;
};

static inline uint64_t ss_sample(const struct ss_sampler *s, uint64_t r)
{
	uint64_t i = ((r & 0xffffffffu) * s->n) >> 32;
	if (s->thresh && (uint32_t)(r >> 32) >= s->thresh[i])
		i = s->alias[i];
	return i;
}

struct ss_keyinfo {
	double gen_seconds;
	unsigned collide_bits;   /* low hash bits shared within a group */
	unsigned collide_groups;
	uint64_t hashes;         /* candidates hashed */
};
extern struct ss_keyinfo ss_keyinfo;

int ss_keys_build(void); /* 0 or -1 (message printed) */
/* collide_search.c: find the nonce (bytes 4..7 of key) that gives the hash
 * `low` in its `mask` bits and `top` in its top byte; -1 if none. */
int64_t ss_collide_search(unsigned char *key, size_t klen, uint64_t seed, uint64_t mask, uint64_t low,
			  uint8_t top, uint64_t *hashes);
void ss_sampler_init(struct ss_sampler *s, uint64_t n);
void ss_keys_free(void);

/* ---- failures, progress and reports (report.c) ------------------------- */

extern atomic_bool ss_stop;     /* set on failure, end of time, or signal */
extern atomic_ulong ss_failures;

/* Record a failure (printed at once to stderr, at most a few dozen); sets
 * ss_stop.  `who` is a thread id or -1 (main / reclamation worker).  In a
 * --fork child (ss_child_mode) it prints nothing and takes no lock: the
 * first reason goes to ss_child_reason, for the child to send back. */
void ss_fail(int who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define SS_FAIL(...) ss_fail(-1, __VA_ARGS__)
extern int ss_child_mode;
extern char ss_child_reason[384];

/* ---- values (values.c) ----------------------------------------------------- */

/*
 * Reclamation on (free_value set): a value is a heap object.  The map owns it
 * once stored and passes it to ss_free_value after a grace period; that
 * poisons it and parks it in a bounded quarantine, really freeing it only
 * when it is evicted, so a reader that holds a value freed too early reads
 * the poison, not reused memory.  A value the map did not take (a failed
 * CAS, a load_or_store that loaded) is the tool's to reuse or free.
 *
 * Reclamation off: values are tagged words the map never dereferences:
 * bit 63 set (never a real pointer), key index, writer, sequence, check
 * byte.  Nothing to free.
 */
#define SS_VAL_MAGIC 0x5356414c55454f4bULL  /* live */
#define SS_VAL_POISON 0xdeadf4eedeadf4eeULL /* passed to free_value */

struct ss_value {
	uint64_t magic;
	uint32_t key;
	uint32_t writer;
	uint64_t seq;
	uint64_t check; /* ss_val_mix(key, alt, writer, seq): a torn value fails it */
	atomic_uint freed;
	/* The one other key this value may be filed under: with --owner
	 * caller a value taken from an owned key may move to its partner key
	 * (ss_partner_key) while readers of the first still hold it, so it
	 * cannot be rewritten; fixed at creation.  Otherwise == key. */
	uint32_t alt;
};

static inline uint64_t ss_val_mix(uint64_t key, uint64_t alt, uint64_t writer, uint64_t seq)
{
	return sm_splitmix64(key ^ (writer << 32) ^ sm_splitmix64(seq ^ (alt << 32)));
}

/* Tagged words: 1 | key:24 | writer:8 | seq:23 | check:8. */
#define SS_TAG_KEY_BITS 24
#define SS_TAG_SEQ_BITS 23
#define SS_TAG_SEQ_MASK ((1u << SS_TAG_SEQ_BITS) - 1)
#define SS_WRITER_NONE 255u /* a word no thread ever stores */

static inline uint8_t ss_tag_check(uint64_t w)
{
	return (uint8_t)(sm_splitmix64(w >> 8) >> 56);
}

static inline void *ss_tag_make(uint32_t key, uint32_t writer, uint32_t seq)
{
	uint64_t w = (1ULL << 63) | ((uint64_t)key << 39) | ((uint64_t)(writer & 0xff) << 31) |
		     ((uint64_t)(seq & SS_TAG_SEQ_MASK) << 8);
	return (void *)(uintptr_t)(w | ss_tag_check(w));
}

/* Free accounting, updated by ss_free_value (the reclamation thread). */
struct ss_value_counters {
	atomic_ulong freed;        /* values passed to free_value */
	atomic_ulong freed_null;   /* NULL values passed to free_value */
	atomic_ulong double_frees;
	atomic_ulong bad_frees;    /* not a value of ours / corrupt */
	atomic_ulong evicted;      /* really freed out of the quarantine */
	atomic_ulong poison_broken; /* written after free (found at eviction) */
	atomic_ulong tool_freed;   /* --owner caller: values syncmap_take handed
				    * over, freed by the tool after syncmap_synchronize */
};
extern struct ss_value_counters ss_vc;

void ss_values_init(void);
void ss_free_value(void *val, void *ctx); /* the map's free_value */
/* --owner caller: free a value syncmap_take handed to thread `who` (taken
 * from key `key`), once syncmap_synchronize has returned: checked, then
 * poisoned and quarantined like the map's frees, counted apart. */
void ss_tool_free(int who, uint64_t key, void *val);
/* Free what is left in the quarantine, checking each poison (end of run). */
void ss_quarantine_drain(void);

/* What a reader observed, decoded. */
struct ss_seen {
	uint32_t key;
	uint32_t writer;
	uint64_t seq;
};

/*
 * Check a value read from the map for key `key`: live magic (not poisoned,
 * not foreign memory), the right key, an intact check, and NULL only where
 * allowed.  Returns true if fine (and fills *out); on failure records it
 * and returns false.  `who`: thread id for the message; `what`: the op.
 */
bool ss_value_check(int who, const char *what, uint64_t key, const void *v, bool null_ok,
		    struct ss_seen *out);

/* ---- the syncmap run (workers.c, verify.c) ---------------------------- */

struct ss_lat {
	uint64_t *v;
	size_t n, cap;
	uint64_t seen; /* samples offered (reservoir beyond cap) */
};

/* A thread's own key: only its owner writes it, so the owner predicts every
 * result exactly (up to concurrent clears, see workers.c). */
struct ss_own {
	void *v;        /* current value when present */
	uint32_t seq;   /* last sequence number issued for this key */
	uint32_t epoch; /* clears started when this state was established */
	uint8_t present;
	uint8_t maybe_absent; /* a clear may have removed it */
};

#define SS_PINS 32

struct ss_worker {
	_Alignas(SS_CACHELINE) unsigned id;
	pthread_t tid;
	struct sm_rng rng;
	atomic_ulong ops_done; /* read by the progress line */
	atomic_ulong live;     /* gomap mode: this thread's map's len */
	uint64_t op_count[OP__N];
	uint64_t hits, misses;  /* loads that found / did not find */
	uint64_t range_keys;    /* keys visited by ranges */
	struct ss_lat lat[OP__N];
	struct ss_own *own;     /* cfg.owned entries */
	uint64_t *mono;         /* highest seq seen per owned key of every thread */
	uint64_t *seen_bits;    /* range: keys visited in the current call */
	uint32_t *range_own;    /* range: visits of own keys */
	void *spare;            /* reclaim: a value object not yet taken by the map */
	uint64_t shared_seq;
	uint64_t made;          /* value objects allocated */
	uint64_t discarded;     /* value objects freed by the tool (never stored) */
	uint64_t stored_null;   /* NULL values the map took (moves included) */
	/* --owner caller: what syncmap_take handed over, and where each went
	 * (taken == retired + kept + moved once the held list is flushed) */
	uint64_t taken, taken_null;
	uint64_t retired, retired_null; /* syncmap_retire: the map frees it */
	uint64_t retire_enomem;         /* syncmap_retire refused (in a section): held instead */
	uint64_t kept, kept_null;       /* held, freed by the tool after syncmap_synchronize */
	uint64_t moved, moved_null;     /* stored again under the partner key */
	uint64_t syncs, sync_ns_total, sync_ns_max; /* syncmap_synchronize calls */
	struct ss_held {
		uint64_t key; /* taken from */
		void *v;
	} *held;
	size_t nheld, held_cap;
	uint64_t clears;
	uint64_t started_ns, finished_ns;
	int sections;           /* ops left in the current read section */
	/* Values returned inside the current read section, re-checked just
	 * before it ends: pinned values must stay intact until the unlock,
	 * which widens the window in which an early free is seen. */
	struct ss_pin {
		uint64_t key;
		const void *v;
		bool null_ok;
	} pins[SS_PINS];
	unsigned npins;
};

struct ss_run {
	struct syncmap *map;
	struct ss_worker *w;
	struct ss_sampler shared_s, own_s, slide_s;
	uint64_t slide_period; /* ops per thread for the window to cross the keys */
	uint64_t shared_base; /* first shared key: threads * owned */
	uint64_t shared_n;
	atomic_ulong clear_epoch; /* clears started << 32 | clears finished (below) */
	atomic_uint ready;        /* workers done with prefill */
	atomic_uint finished;     /* workers done with their ops */
	atomic_bool go;
	/* --fork under a sanitizer (SS_PAUSE_FOR_FORK): the main thread asks
	 * the workers to pause, outside any read section, around each fork */
	atomic_bool fork_pause;
	atomic_uint fork_paused; /* workers waiting in fork_pause() (workers.c) */
	uint64_t start_ns, end_ns;
	/* mix tables: [wave level][op] cumulative thresholds over 2^32 */
	uint64_t (*mixtab)[OP__N];
	unsigned levels;
};
extern struct ss_run run;

/* 1 in an ASAN or TSAN build (gcc's and clang's spellings). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SS_SANITIZED 1
#endif
#endif
#ifndef SS_SANITIZED
#define SS_SANITIZED 0
#endif

/* gcc 12's sanitizers do not hold all of their own locks across fork(): a
 * child forked while another thread is inside malloc can deadlock in its
 * first allocation (ASAN: in SizeClassAllocator64::GetFromAllocator; TSAN:
 * the child's new call_rcu thread spinning on the lock of TSAN's metadata
 * allocator, in DenseSlabAlloc::Refill).  Under a sanitizer the workers
 * pause between two operations around each fork; the release build forks
 * while they run. */
#define SS_PAUSE_FOR_FORK SS_SANITIZED

/*
 * run.clear_epoch: clears started (high 32 bits) and clears finished (low
 * 32 bits) in one word, so one load sees both; a clear may be running
 * exactly when they differ.  (One counter, odd while a clear runs, fails
 * once two clears overlap: the second start makes it even while the first
 * still runs, and an owner whose key that first clear removes sees no
 * clear at all.)
 */
#define SS_CLEAR_STARTED (1ULL << 32)
static inline bool ss_clear_running(uint64_t epoch)
{
	return (uint32_t)(epoch >> 32) != (uint32_t)epoch;
}
static inline uint32_t ss_clears_started(uint64_t epoch)
{
	return (uint32_t)(epoch >> 32);
}

void *ss_worker_main(void *arg);
void ss_mix_build(void); /* fills run.mixtab from cfg.mix (and the wave) */

/* Insert-type ops with --slide: an offset in [0, n) inside the window that
 * has slid along by n_ops; else the plain sample. */
static inline uint64_t ss_insert_offset(uint64_t n, uint64_t n_ops, uint64_t r, const struct ss_sampler *plain)
{
	if (!run.slide_s.n)
		return ss_sample(plain, r);
	uint64_t base = (uint64_t)((unsigned __int128)(n_ops % run.slide_period) * n / run.slide_period);
	return (base + ss_sample(&run.slide_s, r)) % n;
}

/* End-of-run verification of the syncmap (after the workers joined). */
struct ss_verify {
	uint64_t scanned, present, present_null;
	uint64_t range_visited;
	uint64_t owned_checked;
	uint64_t len_at_end;
	bool stats_ok;
	double pending_wait_s;
	uint64_t made, discarded, freed, freed_null, stored_null, in_map_at_free;
	/* --owner caller, summed over the threads */
	uint64_t tool_freed, taken, taken_null, retired, retired_null, retire_enomem, kept, kept_null, moved,
		moved_null, syncs, sync_ns_total, sync_ns_max;
};
extern struct ss_verify ss_ver;
void ss_verify_syncmap(void); /* everything but the final free */
void ss_verify_after_free(void);

/* ---- --fork (fork.c) ------------------------------------------------------ */

struct ss_fork_stats {
	uint64_t children, failed;
	double total_s, max_s;          /* fork to the child's exit, seen by the parent */
	uint64_t inherited_present;     /* inherited keys loaded and checked, all children */
	uint64_t own_ops;               /* exactly predicted ops on the inherited map */
	uint64_t new_values;            /* values through the children's new maps */
	uint64_t cleared;               /* children that cleared the inherited map */
	double max_new_reclaim_s;       /* the longest wait for a new map's frees */
	double max_free_s;              /* the longest syncmap_free of the inherited map */
	double slowest_stage_s;         /* the longest stage of any child, and its name */
	const char *slowest_stage;
};
extern struct ss_fork_stats ss_fork_stats;
/* Fork now (from the main thread, outside any read section), wait for the
 * child and account for it; a failed child is a failure of the run. */
void ss_fork_once(double at_s);

/* ---- gomap mode (gomap_churn.c) ---------------------------------------- */

struct ss_gomap_result {
	uint64_t ops, iters, iter_keys, clears;
	uint64_t grows, same_size_grows, shrinks, total_evacuated;
	uint64_t max_evacuated, max_skipped;
	uint64_t max_B, max_overflow, max_tombstones, final_len, bytes;
};
extern struct ss_gomap_result ss_gomap_res;
int ss_gomap_run(void);

/* ---- reporting (report.c) ----------------------------------------------- */

extern struct syncmap_stats ss_final_stats; /* taken just before syncmap_free */
extern volatile int ss_interrupted;         /* SIGINT / SIGTERM */
void ss_progress_tick(double elapsed, bool final);
void ss_report_final(double elapsed);
uint64_t ss_rss_bytes(void);
void ss_lat_add(struct ss_lat *l, struct sm_rng *rng, uint64_t ns);

#endif
