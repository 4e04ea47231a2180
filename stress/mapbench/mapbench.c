/*
 * mapbench.c - syncmap against the other concurrent maps (cds_lfht, ck_ht,
 * gomap behind a mutex or a rwlock), on exactly the workloads that
 * stress/go/syncmapbench runs on Go 1.19's sync.Map, with the same harness,
 * flags and output lines, so stress/bench can put them side by side.
 *
 * SPDX-License-Identifier: MIT
 *
 * The specification is the header comment of stress/go/syncmapbench/main.go;
 * this is its C twin.  In short:
 *
 * One run of a shape with a budget of N iterations and T threads: a fresh
 * map; the shape's setup on the main thread (untimed); then the clock
 * starts, T threads are created, each runs the shape's loop, all are
 * joined, the clock stops (thread start and join are timed, as Go times the
 * goroutine start and wg.Wait).  ns_per_op = elapsed / N.  RESULT lines
 * also carry cpu_ns_per_op = the workers' summed thread CPU time / N (not
 * in Go's lines): on a shared, oversubscribed machine, wall time cannot
 * show scaling, but CPU time per op at T threads vs 1 thread shows whether
 * the threads slow each other down (contention) or merely wait for a CPU.  Worker w has a
 * private counter i starting at w*N, incremented every iteration; it takes
 * iterations from one shared atomic counter in grains with testing.PB.Next's
 * arithmetic (add the grain; if the total is <= N take a grain, else if it
 * is < N + grain take N + grain - total, else stop), and the harness checks
 * that the iterations add up to N.  Grain: -grain G, else the iterations
 * the previous run did in 100 us (1e5 * prevN / prevNs) clamped to
 * [1, -grain-max]; the first run of a search uses 1; with -n the grain is
 * -grain-max.  The N search is testing.B's: run N = 1, then repeat
 * n = target * prevN / prevNs; n += n/5; n = min(n, 100*last);
 * n = max(n, last + 1); n = min(n, 1e9) until a run takes >= -time.  Only
 * the final run is reported.  Each run uses a fresh map and setup.
 *
 * Shapes (keys=0 in the output for Go's own; i = the worker's counter):
 *   LoadMostlyHits         setup LoadOrStore(k,k) k<1023; prime over [0,1023)
 *                          op Load(i % 1024)
 *   LoadMostlyMisses       setup LoadOrStore(0,0); prime over [0,1); op Load(i % 1024)
 *   LoadOrStoreBalanced    setup 128 keys + prime; op j=i%256: j<128 LoadOrStore(j,i)
 *                          must load, else LoadOrStore(i,i) must store (checked)
 *   LoadOrStoreUnique      op LoadOrStore(i,i)
 *   LoadOrStoreCollision   setup LoadOrStore(0,0); op LoadOrStore(0,0)
 *   LoadAndDeleteBalanced  setup 128 keys + prime; op j=i%256: j<128
 *                          LoadAndDelete(j) else LoadAndDelete(i)
 *   LoadAndDeleteUnique    op LoadAndDelete(i)
 *   LoadAndDeleteCollision setup LoadOrStore(0,0); op LoadAndDelete(0)
 *   Range                  setup Store(k,k) k<1024; op Range(f: return true)
 *   AdversarialAlloc       op Load(i); if ++loadsSinceStore > stores
 *                          { LoadOrStore(i, stores); loadsSinceStore = 0; stores++ }
 *   AdversarialDelete      setup Store(k,k) k<1024; op Load(i); if i%1024 == 0
 *                          { Range(f: Delete(k); return false); Store(i,i) }
 *   DeleteCollision        setup LoadOrStore(0,0); op Delete(0)
 *   ReadMostly99/90        setup Store(k,k) k<K; prime over [0,K); op r=rng();
 *                          k=(r>>8)%K; r%1000 < 990 (900): Load(k), else
 *                          r%2 == 0: Store(k,k), else Delete(k)
 *   Churn                  setup Store(k,k) even k<2K; prime over [0,2K);
 *                          op r=rng(); k=(r>>8)%(2K); r%10: 0,1 Load(k);
 *                          2..5 Store(k,k); 6..9 Delete(k)
 *   StoreLatency           setup as ReadMostly; c counts iterations from 1,
 *                          P = K/16+1: Load(K+i); if c%P == 0:
 *                          LoadOrStore(K+i, K+i) must store (checked).
 *                          In "all" only with -latency.
 *   InFlight               (Go issue 40999's in-flight requests) setup
 *                          Store(0,0); prime over [0,1); op k = 2^40 + i:
 *                          Store(k,k); Load(k) must hit (checked);
 *                          Delete(k); Load(0).  One op is one cycle.
 * "prime over [0,S)" = Load(j % S) for j < 2S.  rng = xorshift64* seeded
 * with splitmix64(w + 1 + seed) (stress/common.h).  Values are the words
 * the Go program boxes (k, i, stores).  Keys: -keytype int = the 8 bytes of
 * the uint64 (sm_key_int), str32 = 32-byte '0'-padded decimal
 * (the bytes of sm_key_str32, built like Go's str32: see mb_key_str32),
 * built on the stack for every call, as Go builds its keys.
 *
 * -latency: every write op (Store, LoadOrStore, LoadAndDelete, Delete,
 * including the Delete inside AdversarialDelete's Range callback) is
 * bracketed by two clock_gettime(CLOCK_MONOTONIC) reads; after the final
 * run the samples of all workers are merged and LATENCY lines give
 * percentiles (sm_percentiles: sorted v[(n-1)*p]) and max, in ns.
 *
 * -memory: instead of benchmarks, for each -impl and -keytype build a map
 * of -mem-keys keys (default 1e6) as ReadMostly's setup does (Store k<K,
 * then prime: syncmap's steady state with everything in the read snapshot)
 * on the main thread, wait for deferred frees (quiesce), and print
 *   MEMORY impl=.. keytype=.. keys=.. bytes_per_entry=.. rss_bytes_per_entry=..
 *          cache_bytes_per_entry=.. mmap_counted=1
 * cache_bytes_per_entry: what syncmap's and gomap's process-wide cache of
 * zeroed bucket arrays holds after the build (the arrays the map outgrew,
 * kept for reuse; see gomap_set_cache_limit); it is given back before
 * bytes_per_entry and rss_bytes_per_entry are taken, so those are the
 * map's own.
 * bytes_per_entry = delta of (mallinfo2 uordblks + hblkhd + bytes mmapped
 * directly by code linked into this binary) / keys.  syncmap and gomap
 * mmap their bucket arrays of >= 256 KiB themselves (src/alloc.c), which
 * mallinfo2 does not see: mmap/munmap are wrapped at link time
 * (stress/heap_bytes.c; mmap_counted=0 says the wrap is missing).
 * cds_lfht's buckets come from calloc (the "order" allocator, max_nr_buckets
 * = 0) and ck_ht's tables from our ck_malloc hook (malloc), so all of it is
 * counted.  rss_bytes_per_entry is the /proc/self/statm resident delta, a
 * cross-check only (it also counts touched-but-free heap pages).
 *
 * Backends: backends.h (each mapping of the op set is documented there).
 *
 * Profiling: each (backend, shape, keytype) loop is one noinline function,
 * run_<impl>_<Shape>_<keytype> (lat_... with -latency; impl with '-' and
 * '_' as '_': syncmap, gomap_mutex, gomap_rwlock, lfht, ckht), so
 *   valgrind --tool=callgrind --toggle-collect='run_syncmap_LoadMostlyHits_int' \
 *       mapbench -impl syncmap -bench LoadMostlyHits -threads 1 -n 1000000
 * counts exactly the worker loop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#include "common.h" /* sm_splitmix64, sm_rng (xorshift64*), sm_key_int/str32, sm_now_ns, sm_percentiles */

#include "backends.h"
#include "heap_bytes.h" /* mmap-aware heap size */

static void mb_die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("mapbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static long long rss_now(void)
{
	long long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%lld %lld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * sysconf(_SC_PAGESIZE);
}

/* ---- shapes -------------------------------------------------------------- */

#define SHAPE_LIST(X, ...)                                                                             \
	X(LoadMostlyHits, __VA_ARGS__)                                                                 \
	X(LoadMostlyMisses, __VA_ARGS__)                                                               \
	X(LoadOrStoreBalanced, __VA_ARGS__)                                                            \
	X(LoadOrStoreUnique, __VA_ARGS__)                                                              \
	X(LoadOrStoreCollision, __VA_ARGS__)                                                           \
	X(LoadAndDeleteBalanced, __VA_ARGS__)                                                          \
	X(LoadAndDeleteUnique, __VA_ARGS__)                                                            \
	X(LoadAndDeleteCollision, __VA_ARGS__)                                                         \
	X(Range, __VA_ARGS__)                                                                          \
	X(AdversarialAlloc, __VA_ARGS__)                                                               \
	X(AdversarialDelete, __VA_ARGS__)                                                              \
	X(DeleteCollision, __VA_ARGS__)                                                                \
	X(ReadMostly99, __VA_ARGS__)                                                                   \
	X(ReadMostly90, __VA_ARGS__)                                                                   \
	X(Churn, __VA_ARGS__)                                                                          \
	X(StoreLatency, __VA_ARGS__)                                                                   \
	X(InFlight, __VA_ARGS__)

enum shape_id {
#define X_ENUM(SH, ...) S_##SH,
	SHAPE_LIST(X_ENUM, _)
#undef X_ENUM
		S_COUNT
};

static const char *const shape_names[S_COUNT] = {
#define X_NAME(SH, ...) #SH,
	SHAPE_LIST(X_NAME, _)
#undef X_NAME
};

static bool shape_takes_keys(int s)
{
	return s == S_ReadMostly99 || s == S_ReadMostly90 || s == S_Churn || s == S_StoreLatency;
}

/* ---- workers ------------------------------------------------------------- */

struct worker;
typedef void (*body_fn)(struct worker *w);

struct worker {
	char pad0[MB_CACHELINE];
	void *m;
	const struct mb_ops *o;
	body_fn body;
	unsigned id;
	uint64_t i0; /* first value of the per-worker counter: id*N */
	uint64_t K;
	struct sm_rng rng;

	/* PB.Next state. */
	_Atomic uint64_t *claimed;
	uint64_t total, grain, cache, done;

	/* -latency samples (ns). */
	uint64_t *samples;
	size_t nsamples, capsamples;
	pthread_t tid;
	uint64_t cpu_ns; /* this worker's thread CPU time for the run */
	char pad1[MB_CACHELINE];
};

/* testing.PB.Next */
static inline __attribute__((always_inline)) bool w_next(struct worker *w)
{
	if (w->cache == 0) {
		uint64_t end = atomic_fetch_add_explicit(w->claimed, w->grain, memory_order_relaxed) + w->grain;
		if (end <= w->total)
			w->cache = w->grain;
		else if (end < w->total + w->grain)
			w->cache = w->total + w->grain - end;
		else
			return false;
		w->done += w->cache;
	}
	w->cache--;
	return true;
}

static __attribute__((noinline)) void w_grow_samples(struct worker *w)
{
	size_t cap = w->capsamples ? 2 * w->capsamples : 1 << 16;
	uint64_t *s = realloc(w->samples, cap * sizeof(*s));
	if (!s)
		mb_die("out of memory for latency samples");
	w->samples = s;
	w->capsamples = cap;
}

static inline void w_record(struct worker *w, uint64_t ns)
{
	if (__builtin_expect(w->nsamples == w->capsamples, 0))
		w_grow_samples(w);
	w->samples[w->nsamples++] = ns;
}

static void w_fail(struct worker *w, const char *fmt, ...) __attribute__((noreturn, cold, format(printf, 2, 3)));
static void w_fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "mapbench: worker %u: ", w->id);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- the shape bodies: one template, instantiated per backend --------- */

/*
 * str32 keys, built the way syncmapbench's str32() builds them: copy 32
 * '0's, then write the decimal digits from the right while k > 0.  The bytes
 * are exactly sm_key_str32's (checked at start-up by check_str32), but
 * sm_key_str32 always runs 32 divide steps (~420 instructions per key,
 * measured with callgrind: more than a whole syncmap_load), which would
 * bury the map under key building; Go's str32 loops only over the digits.
 */
static inline size_t mb_key_str32(uint64_t k, unsigned char *buf)
{
	static const char zeros[32] = "00000000000000000000000000000000";
	memcpy(buf, zeros, 32);
	for (int p = 31; k > 0 && p >= 0; p--) {
		buf[p] = (unsigned char)('0' + k % 10);
		k /= 10;
	}
	return 32;
}

static void check_str32(void)
{
	unsigned char a[SM_KEY_MAX], b[SM_KEY_MAX];
	struct sm_rng r;
	sm_rng_seed(&r, 42);
	for (uint64_t i = 0; i < 100000; i++) {
		uint64_t k = i < 50000 ? i : (i < 99990 ? sm_rng_next(&r) >> (i % 64) : UINT64_MAX - (i - 99990));
		if (mb_key_str32(k, a) != sm_key_str32(k, b) || memcmp(a, b, 32) != 0)
			mb_die("mb_key_str32(%" PRIu64 ") differs from sm_key_str32", k);
	}
}

/* Key k of the selected type into kb; kl = its length. */
#define MKEY(k) (kl = (KT) ? mb_key_str32((uint64_t)(k), kb) : sm_key_int((uint64_t)(k), kb))

/* A write op, timed with -latency (LAT is a compile-time constant). */
#define WRITE(stmt)                                                                                    \
	do {                                                                                           \
		if (LAT) {                                                                             \
			uint64_t t0_ = sm_now_ns();                                                    \
			stmt;                                                                          \
			w_record(w, sm_now_ns() - t0_);                                                \
		} else {                                                                               \
			stmt;                                                                          \
		}                                                                                      \
	} while (0)

struct advdel_ctx {
	void *m;
	struct worker *w;
};

static bool cb_true(const void *k, size_t kl, void *v, void *ctx)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)ctx;
	return true;
}

/* AdversarialDelete's Range callback: Delete(k); return false. */
static inline __attribute__((always_inline)) bool cb_delete_tmpl(const struct mb_ops *o, const int LAT,
								  const void *k, size_t kl, void *ctx)
{
	struct advdel_ctx *c = ctx;
	struct worker *w = c->w;
	WRITE(o->del(c->m, k, kl));
	return false;
}

static inline __attribute__((always_inline)) void body_tmpl(const struct mb_ops *o, const int S, const int KT,
							     const int LAT, mb_range_fn cb_delete, struct worker *w)
{
	void *m = w->m;
	unsigned char kb[SM_KEY_MAX];
	size_t kl;
	uintptr_t v;
	uint64_t i = w->i0;

	switch (S) {
	case S_LoadMostlyHits:
		for (; w_next(w); i++) {
			MKEY(i % 1024);
			(void)o->load(m, kb, kl, &v);
		}
		break;
	case S_LoadMostlyMisses:
		for (; w_next(w); i++) {
			MKEY(i % 1024);
			(void)o->load(m, kb, kl, &v);
		}
		break;
	case S_LoadOrStoreBalanced:
		for (; w_next(w); i++) {
			uint64_t j = i % 256;
			bool loaded;
			if (j < 128) {
				MKEY(j);
				WRITE(loaded = o->load_or_store(m, kb, kl, i, &v));
				if (!loaded)
					w_fail(w, "LoadOrStoreBalanced: unexpected miss for %" PRIu64, j);
			} else {
				MKEY(i);
				WRITE(loaded = o->load_or_store(m, kb, kl, i, &v));
				if (loaded)
					w_fail(w, "LoadOrStoreBalanced: failed to store %" PRIu64 ": existing value %" PRIuPTR, i, v);
			}
		}
		break;
	case S_LoadOrStoreUnique:
		for (; w_next(w); i++) {
			MKEY(i);
			WRITE((void)o->load_or_store(m, kb, kl, i, &v));
		}
		break;
	case S_LoadOrStoreCollision:
		MKEY(0);
		while (w_next(w))
			WRITE((void)o->load_or_store(m, kb, kl, 0, &v));
		break;
	case S_LoadAndDeleteBalanced:
		for (; w_next(w); i++) {
			uint64_t j = i % 256;
			MKEY(j < 128 ? j : i);
			WRITE((void)o->load_and_delete(m, kb, kl, &v));
		}
		break;
	case S_LoadAndDeleteUnique:
		for (; w_next(w); i++) {
			MKEY(i);
			WRITE((void)o->load_and_delete(m, kb, kl, &v));
		}
		break;
	case S_LoadAndDeleteCollision:
		MKEY(0);
		while (w_next(w))
			WRITE((void)o->load_and_delete(m, kb, kl, &v));
		break;
	case S_Range:
		while (w_next(w))
			o->range(m, cb_true, NULL);
		break;
	case S_AdversarialAlloc: {
		uint64_t stores = 0, loads_since_store = 0;
		for (; w_next(w); i++) {
			MKEY(i);
			(void)o->load(m, kb, kl, &v);
			if (++loads_since_store > stores) {
				WRITE((void)o->load_or_store(m, kb, kl, stores, &v));
				loads_since_store = 0;
				stores++;
			}
		}
		break;
	}
	case S_AdversarialDelete: {
		struct advdel_ctx c = {m, w};
		for (; w_next(w); i++) {
			MKEY(i);
			(void)o->load(m, kb, kl, &v);
			if (i % 1024 == 0) {
				o->range(m, cb_delete, &c);
				WRITE(o->store(m, kb, kl, i));
			}
		}
		break;
	}
	case S_DeleteCollision:
		MKEY(0);
		while (w_next(w))
			WRITE(o->del(m, kb, kl));
		break;
	case S_ReadMostly99:
	case S_ReadMostly90: {
		const uint64_t permille = S == S_ReadMostly99 ? 990 : 900, K = w->K;
		while (w_next(w)) {
			uint64_t r = sm_rng_next(&w->rng), k = (r >> 8) % K;
			MKEY(k);
			if (r % 1000 < permille)
				(void)o->load(m, kb, kl, &v);
			else if (r % 2 == 0)
				WRITE(o->store(m, kb, kl, k));
			else
				WRITE(o->del(m, kb, kl));
		}
		break;
	}
	case S_Churn: {
		const uint64_t space = 2 * w->K;
		while (w_next(w)) {
			uint64_t r = sm_rng_next(&w->rng), k = (r >> 8) % space;
			MKEY(k);
			switch (r % 10) {
			case 0:
			case 1:
				(void)o->load(m, kb, kl, &v);
				break;
			case 2:
			case 3:
			case 4:
			case 5:
				WRITE(o->store(m, kb, kl, k));
				break;
			default:
				WRITE(o->del(m, kb, kl));
				break;
			}
		}
		break;
	}
	case S_InFlight: {
		unsigned char kb0[SM_KEY_MAX];
		size_t kl0 = KT ? mb_key_str32(0, kb0) : sm_key_int(0, kb0);
		for (; w_next(w); i++) {
			uint64_t k = ((uint64_t)1 << 40) + i;
			MKEY(k);
			WRITE(o->store(m, kb, kl, k));
			if (!o->load(m, kb, kl, &v))
				mb_die("InFlight: key %" PRIu64 " missing right after its Store", k);
			WRITE(o->del(m, kb, kl));
			(void)o->load(m, kb0, kl0, &v);
		}
		break;
	}
	case S_StoreLatency: {
		const uint64_t period = w->K / 16 + 1;
		uint64_t c = 0;
		for (; w_next(w); i++) {
			uint64_t k = w->K + i;
			MKEY(k);
			(void)o->load(m, kb, kl, &v);
			if (++c == period) {
				bool loaded;
				c = 0;
				WRITE(loaded = o->load_or_store(m, kb, kl, k, &v));
				if (loaded)
					w_fail(w, "StoreLatency: key %" PRIu64 " was already present (value %" PRIuPTR ")", k, v);
			}
		}
		break;
	}
	default:
		mb_die("bad shape %d", S);
	}
}

/* Instantiation: per backend BE (ops mb_<OPS>), per shape, key type and
 * latency mode, one noinline function (the callgrind toggle target). */
#define DEF_BODIES(SH, BE, OPS)                                                                        \
	static __attribute__((noinline)) void run_##BE##_##SH##_int(struct worker *w)                  \
	{                                                                                              \
		body_tmpl(&OPS, S_##SH, 0, 0, cb_delete_##BE##_0, w);                                  \
	}                                                                                              \
	static __attribute__((noinline)) void run_##BE##_##SH##_str32(struct worker *w)                \
	{                                                                                              \
		body_tmpl(&OPS, S_##SH, 1, 0, cb_delete_##BE##_0, w);                                  \
	}                                                                                              \
	static __attribute__((noinline)) void lat_##BE##_##SH##_int(struct worker *w)                  \
	{                                                                                              \
		body_tmpl(&OPS, S_##SH, 0, 1, cb_delete_##BE##_1, w);                                  \
	}                                                                                              \
	static __attribute__((noinline)) void lat_##BE##_##SH##_str32(struct worker *w)                \
	{                                                                                              \
		body_tmpl(&OPS, S_##SH, 1, 1, cb_delete_##BE##_1, w);                                  \
	}

#define TAB_ENTRY(SH, BE, OPS) [S_##SH] = {run_##BE##_##SH##_int, run_##BE##_##SH##_str32, \
					    lat_##BE##_##SH##_int, lat_##BE##_##SH##_str32},

#define DEF_BACKEND(BE, OPS)                                                                           \
	static bool cb_delete_##BE##_0(const void *k, size_t kl, void *v, void *ctx)                   \
	{                                                                                              \
		(void)v;                                                                               \
		return cb_delete_tmpl(&OPS, 0, k, kl, ctx);                                            \
	}                                                                                              \
	static bool cb_delete_##BE##_1(const void *k, size_t kl, void *v, void *ctx)                   \
	{                                                                                              \
		(void)v;                                                                               \
		return cb_delete_tmpl(&OPS, 1, k, kl, ctx);                                            \
	}                                                                                              \
	SHAPE_LIST(DEF_BODIES, BE, OPS)                                                                \
	static const body_fn tab_##BE[S_COUNT][4] = {SHAPE_LIST(TAB_ENTRY, BE, OPS)};

DEF_BACKEND(syncmap, mb_syncmap)
DEF_BACKEND(gomap_mutex, mb_gomap_mutex)
DEF_BACKEND(gomap_rwlock, mb_gomap_rwlock)
#if MAPBENCH_HAVE_LFHT
DEF_BACKEND(lfht, mb_lfht)
#endif
#if MAPBENCH_HAVE_CK
DEF_BACKEND(ckht, mb_ckht)
#endif

struct impl {
	const struct mb_ops *o;
	const body_fn (*tab)[4];
};

static const struct impl impls[] = {
	{&mb_syncmap, tab_syncmap},
	{&mb_gomap_mutex, tab_gomap_mutex},
	{&mb_gomap_rwlock, tab_gomap_rwlock},
#if MAPBENCH_HAVE_LFHT
	{&mb_lfht, tab_lfht},
#endif
#if MAPBENCH_HAVE_CK
	{&mb_ckht, tab_ckht},
#endif
};
#define NIMPLS (sizeof(impls) / sizeof(impls[0]))

/* ---- setup (untimed, main thread; through the ops table) -------------- */

static size_t mkey(int kt, uint64_t k, unsigned char *kb)
{
	return kt ? mb_key_str32(k, kb) : sm_key_int(k, kb);
}

static void prime(const struct mb_ops *o, void *m, int kt, uint64_t space)
{
	unsigned char kb[SM_KEY_MAX];
	uintptr_t v;
	for (uint64_t j = 0; j < 2 * space; j++) {
		size_t kl = mkey(kt, j % space, kb);
		(void)o->load(m, kb, kl, &v);
	}
}

static void fill_primed(const struct mb_ops *o, void *m, int kt, uint64_t n)
{
	unsigned char kb[SM_KEY_MAX];
	uintptr_t v;
	for (uint64_t k = 0; k < n; k++) {
		size_t kl = mkey(kt, k, kb);
		(void)o->load_or_store(m, kb, kl, k, &v);
	}
	prime(o, m, kt, n);
}

static void store_range(const struct mb_ops *o, void *m, int kt, uint64_t n, uint64_t step)
{
	unsigned char kb[SM_KEY_MAX];
	for (uint64_t k = 0; k < n; k += step) {
		size_t kl = mkey(kt, k, kb);
		o->store(m, kb, kl, k);
	}
}

static void setup(int s, const struct mb_ops *o, void *m, int kt, uint64_t K)
{
	unsigned char kb[SM_KEY_MAX];
	uintptr_t v;
	switch (s) {
	case S_LoadMostlyHits:
		fill_primed(o, m, kt, 1023);
		break;
	case S_LoadMostlyMisses:
		fill_primed(o, m, kt, 1);
		break;
	case S_LoadOrStoreBalanced:
	case S_LoadAndDeleteBalanced:
		fill_primed(o, m, kt, 128);
		break;
	case S_LoadOrStoreCollision:
	case S_LoadAndDeleteCollision:
	case S_DeleteCollision:
		(void)o->load_or_store(m, kb, mkey(kt, 0, kb), 0, &v);
		break;
	case S_Range:
	case S_AdversarialDelete:
		store_range(o, m, kt, 1024, 1);
		break;
	case S_ReadMostly99:
	case S_ReadMostly90:
	case S_StoreLatency:
		store_range(o, m, kt, K, 1);
		prime(o, m, kt, K);
		break;
	case S_Churn:
		store_range(o, m, kt, 2 * K, 2);
		prime(o, m, kt, 2 * K);
		break;
	case S_InFlight:
		store_range(o, m, kt, 1, 1);
		prime(o, m, kt, 1);
		break;
	default: /* LoadOrStoreUnique, LoadAndDeleteUnique, AdversarialAlloc */
		break;
	}
}

/* The most keys shape s can hold in a run of n iterations (cds_lfht's
 * init_size; the other backends ignore it). */
static size_t max_keys(int s, uint64_t n, uint64_t K, unsigned T)
{
	switch (s) {
	case S_LoadMostlyHits:
		return 1023;
	case S_LoadOrStoreBalanced:
		return 128 + n / 2 + T;
	case S_LoadOrStoreUnique:
		return n;
	case S_LoadAndDeleteBalanced:
		return 128;
	case S_Range:
		return 1024;
	case S_AdversarialAlloc: /* per worker: stores s with s(s+1)/2 <= n */
		return (size_t)T * ((size_t)sqrt(2.0 * (double)n) + 2);
	case S_AdversarialDelete:
		return 1024 + n / 1024 + T;
	case S_ReadMostly99:
	case S_ReadMostly90:
		return K;
	case S_Churn:
		return 2 * K;
	case S_StoreLatency:
		return K + n / (K / 16 + 1) + T;
	case S_InFlight:
		return 1 + T;
	default:
		return 1;
	}
}

/* ---- running ------------------------------------------------------------- */

struct config {
	const struct impl *im;
	int shape;
	int kt;
	uint64_t K;
	unsigned threads;
	uint64_t seed;
	bool latency;
	bool stats;         /* -stats: print syncmap_stats after each syncmap run */
	uint64_t grain;     /* fixed, 0 = adaptive */
	uint64_t grain_max;
};

struct run_result {
	uint64_t n;
	uint64_t elapsed_ns;
	uint64_t cpu_ns; /* summed worker CPU time */
	struct sm_pct pct; /* -latency */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t c0 = thread_cpu_ns();
	w->o->thread_enter(w->m, w->id + 1);
	w->body(w);
	w->o->thread_exit(w->m, w->id + 1);
	w->cpu_ns = thread_cpu_ns() - c0;
	return NULL;
}

/* target_ns: the search's target; latency percentiles are computed only for
 * the run that ends the search (elapsed >= target, or n = 1e9), or always
 * with target_ns = 0 (-n). */
static struct run_result run_once(const struct config *cfg, uint64_t n, uint64_t grain, uint64_t target_ns)
{
	const struct mb_ops *o = cfg->im->o;
	unsigned T = cfg->threads;
	void *m = o->create(max_keys(cfg->shape, n, cfg->K, T), T);
	o->thread_enter(m, 0);
	setup(cfg->shape, o, m, cfg->kt, cfg->K);

	_Atomic uint64_t claimed = 0;
	struct worker *ws;
	if (posix_memalign((void **)&ws, MB_CACHELINE, T * sizeof(*ws)) != 0)
		mb_die("out of memory");
	memset(ws, 0, T * sizeof(*ws));
	body_fn body = cfg->im->tab[cfg->shape][cfg->kt + (cfg->latency ? 2 : 0)];
	for (unsigned id = 0; id < T; id++) {
		struct worker *w = &ws[id];
		w->m = m;
		w->o = o;
		w->body = body;
		w->id = id;
		w->i0 = (uint64_t)id * n;
		w->K = cfg->K;
		sm_rng_seed(&w->rng, sm_splitmix64((uint64_t)id + 1 + cfg->seed));
		w->claimed = &claimed;
		w->total = n;
		w->grain = grain;
	}

	uint64_t t0 = sm_now_ns();
	for (unsigned id = 0; id < T; id++)
		if (pthread_create(&ws[id].tid, NULL, worker_main, &ws[id]) != 0)
			mb_die("pthread_create failed");
	for (unsigned id = 0; id < T; id++)
		pthread_join(ws[id].tid, NULL);
	uint64_t elapsed = sm_now_ns() - t0;

	uint64_t sum = 0;
	for (unsigned id = 0; id < T; id++)
		sum += ws[id].done;
	if (sum != n || atomic_load(&claimed) < n)
		mb_die("%s: workers did %" PRIu64 " iterations of a budget of %" PRIu64, shape_names[cfg->shape], sum, n);

	struct run_result res = {.n = n, .elapsed_ns = elapsed ? elapsed : 1};
	for (unsigned id = 0; id < T; id++)
		res.cpu_ns += ws[id].cpu_ns;
	bool final = target_ns == 0 || elapsed >= target_ns || n >= 1000000000;
	if (cfg->latency && final) {
		size_t total = 0;
		for (unsigned id = 0; id < T; id++)
			total += ws[id].nsamples;
		uint64_t *all = total ? mb_xmalloc(total * sizeof(*all)) : NULL;
		size_t k = 0;
		for (unsigned id = 0; id < T; id++) {
			if (ws[id].nsamples)
				memcpy(all + k, ws[id].samples, ws[id].nsamples * sizeof(*all));
			k += ws[id].nsamples;
		}
		res.pct = sm_percentiles(all, total);
		free(all);
	}
	for (unsigned id = 0; id < T; id++)
		free(ws[id].samples);
	free(ws);
	if (cfg->stats && o == &mb_syncmap) {
		struct syncmap_stats st;
		syncmap_stats(m, &st);
		printf("# STATS impl=syncmap bench=%s n=%" PRIu64 " len=%zu read_keys=%zu dirty_keys=%zu amended=%d "
		       "building=%d promotions=%" PRIu64 " misses=%" PRIu64 " locked_ops=%" PRIu64
		       " max_locked_work=%" PRIu64 " entries=%" PRIu64 " pending_reclaim=%" PRIu64 "\n",
		       shape_names[cfg->shape], n, st.len, st.read_keys, st.dirty_keys, (int)st.amended, (int)st.building,
		       st.promotions, st.misses, st.locked_ops, st.max_locked_work, st.entries, st.pending_reclaim);
	}
	o->destroy(m); /* untimed; waits for deferred frees where the backend can */
	return res;
}

static uint64_t adaptive_grain(const struct config *cfg, const struct run_result *prev)
{
	if (cfg->grain > 0)
		return cfg->grain;
	if (!prev)
		return cfg->grain_max;
	uint64_t g = 0;
	if (prev->n > 0 && prev->elapsed_ns > 0)
		g = (uint64_t)(100000.0 * (double)prev->n / (double)prev->elapsed_ns);
	if (g < 1)
		g = 1;
	if (g > cfg->grain_max)
		g = cfg->grain_max;
	return g;
}

/* testing.B's search (see the header comment); only the final run counts. */
static struct run_result bench(const struct config *cfg, uint64_t fixed_n, uint64_t target_ns)
{
	if (fixed_n > 0)
		return run_once(cfg, fixed_n, adaptive_grain(cfg, NULL), 0);
	uint64_t first = cfg->grain ? cfg->grain : 1;
	struct run_result res = run_once(cfg, 1, first, target_ns);
	for (int64_t n = 1; res.elapsed_ns < target_ns && n < 1000000000;) {
		int64_t last = n;
		int64_t prev_ns = (int64_t)res.elapsed_ns;
		if (prev_ns <= 0)
			prev_ns = 1;
		/* int64 arithmetic like Go's: target * prevN / prevNs */
		n = (int64_t)((__int128)target_ns * (int64_t)res.n / prev_ns);
		n += n / 5;
		if (n > 100 * last)
			n = 100 * last;
		if (n < last + 1)
			n = last + 1;
		if (n > 1000000000)
			n = 1000000000;
		struct run_result prev = res;
		res = run_once(cfg, (uint64_t)n, adaptive_grain(cfg, &prev), target_ns);
	}
	return res;
}

/* ---- memory -------------------------------------------------------------- */

static void memory_run(const struct impl *im, int kt, uint64_t K)
{
	const struct mb_ops *o = im->o;
	/* Start with the block cache empty; the arrays the map outgrew that
	 * it holds afterwards are reported apart (cache_bytes_per_entry). */
	size_t cache_limit = gomap_set_cache_limit(0);
	gomap_set_cache_limit(cache_limit);
	malloc_trim(0);
	long long h0 = heap_bytes_now(), r0 = rss_now();
	void *m = o->create((size_t)K, 1);
	o->thread_enter(m, 0);
	store_range(o, m, kt, K, 1);
	prime(o, m, kt, K);
	o->quiesce(m);
	long long hc = heap_bytes_now();
	gomap_set_cache_limit(0);
	gomap_set_cache_limit(cache_limit);
	long long h1 = heap_bytes_now(), r1 = rss_now();
	printf("MEMORY impl=%s keytype=%s keys=%" PRIu64
	       " bytes_per_entry=%.2f rss_bytes_per_entry=%.2f cache_bytes_per_entry=%.2f mmap_counted=%d\n",
	       o->name, kt ? "str32" : "int", K, (double)(h1 - h0) / (double)K, (double)(r1 - r0) / (double)K,
	       (double)(hc - h1) / (double)K, heap_bytes_mmap_counted());
	fflush(stdout);
	o->destroy(m);
}

/* ---- self test: Go's semantics on every backend ------------------------- */

struct st_count {
	size_t n;
	uintptr_t sum;
};

static bool st_count_cb(const void *k, size_t kl, void *v, void *ctx)
{
	(void)k;
	(void)kl;
	struct st_count *c = ctx;
	c->n++;
	c->sum += (uintptr_t)v;
	return true;
}

struct st_del_ctx {
	const struct mb_ops *o;
	void *m;
	size_t n;
};

static bool st_del_cb(const void *k, size_t kl, void *v, void *ctx)
{
	(void)v;
	struct st_del_ctx *c = ctx;
	c->o->del(c->m, k, kl);
	c->n++;
	return true;
}

struct st_thread {
	const struct mb_ops *o;
	void *m;
	unsigned idx;
	int kt;
	pthread_t tid;
};

static void *st_thread_main(void *arg)
{
	struct st_thread *t = arg;
	const struct mb_ops *o = t->o;
	unsigned char kb[SM_KEY_MAX];
	uintptr_t v;
	o->thread_enter(t->m, t->idx);
	/* Disjoint keys per thread: insert 20000, delete the odd ones, with
	 * loads of a shared hot set in between. */
	for (uint64_t i = 0; i < 20000; i++) {
		uint64_t k = 1000000 * (uint64_t)t->idx + i;
		size_t kl = mkey(t->kt, k, kb);
		if (o->load_or_store(t->m, kb, kl, k, &v))
			mb_die("selftest %s: fresh key %" PRIu64 " loaded", o->name, k);
		kl = mkey(t->kt, i % 100, kb);
		if (!o->load(t->m, kb, kl, &v) || v != i % 100)
			mb_die("selftest %s: hot key %" PRIu64 " lost", o->name, i % 100);
	}
	for (uint64_t i = 1; i < 20000; i += 2) {
		uint64_t k = 1000000 * (uint64_t)t->idx + i;
		size_t kl = mkey(t->kt, k, kb);
		if (!o->load_and_delete(t->m, kb, kl, &v) || v != k)
			mb_die("selftest %s: delete of %" PRIu64 " failed", o->name, k);
	}
	o->thread_exit(t->m, t->idx);
	return NULL;
}

static void selftest(const struct impl *im, int kt)
{
	const struct mb_ops *o = im->o;
	unsigned char kb[SM_KEY_MAX];
	uintptr_t v = 0, a = 0;
	size_t kl;
	void *m = o->create(100000, 2);
	o->thread_enter(m, 0);
#define CHECK(c) \
	do { if (!(c)) mb_die("selftest %s/%s: %s (line %d)", o->name, kt ? "str32" : "int", #c, __LINE__); } while (0)
	kl = mkey(kt, 7, kb);
	CHECK(!o->load(m, kb, kl, &v));
	CHECK(!o->load_or_store(m, kb, kl, 1, &a) && a == 1);
	CHECK(o->load_or_store(m, kb, kl, 2, &a) && a == 1);
	CHECK(o->load(m, kb, kl, &v) && v == 1);
	o->store(m, kb, kl, 3);
	CHECK(o->load(m, kb, kl, &v) && v == 3);
	o->store(m, kb, kl, 0); /* a zero value is a value */
	CHECK(o->load(m, kb, kl, &v) && v == 0);
	CHECK(o->load_and_delete(m, kb, kl, &v) && v == 0);
	CHECK(!o->load_and_delete(m, kb, kl, &v));
	CHECK(!o->load(m, kb, kl, &v));
	o->del(m, kb, kl);
	for (uint64_t k = 0; k < 5000; k++) {
		kl = mkey(kt, k, kb);
		o->store(m, kb, kl, k);
	}
	for (uint64_t k = 0; k < 5000; k += 5) {
		kl = mkey(kt, k, kb);
		o->del(m, kb, kl);
	}
	struct st_count c = {0, 0};
	o->range(m, st_count_cb, &c);
	uintptr_t want = 0;
	for (uint64_t k = 0; k < 5000; k++)
		if (k % 5)
			want += k;
	CHECK(c.n == 4000 && c.sum == want);
	prime(o, m, kt, 5000);
	struct st_del_ctx d = {o, m, 0};
	o->range(m, st_del_cb, &d);
	CHECK(d.n == 4000);
	c = (struct st_count){0, 0};
	o->range(m, st_count_cb, &c);
	CHECK(c.n == 0);
	/* Two threads, disjoint keys plus shared hot loads. */
	for (uint64_t k = 0; k < 100; k++) {
		kl = mkey(kt, k, kb);
		o->store(m, kb, kl, k);
	}
	struct st_thread t[2];
	for (unsigned i = 0; i < 2; i++) {
		t[i] = (struct st_thread){o, m, i + 1, kt, 0};
		if (pthread_create(&t[i].tid, NULL, st_thread_main, &t[i]) != 0)
			mb_die("pthread_create failed");
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i].tid, NULL);
	c = (struct st_count){0, 0};
	o->range(m, st_count_cb, &c);
	CHECK(c.n == 100 + 2 * 10000);
	o->destroy(m);
	printf("# selftest %s keytype=%s: ok\n", o->name, kt ? "str32" : "int");
#undef CHECK
}

/* ---- flags and main -------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: mapbench [flags]   (the flags of stress/go/syncmapbench, plus -impl, -memory)\n"
		"  -impl LIST      comma list of syncmap,gomap-mutex,gomap-rwlock,cds_lfht,ck_ht or all (default all)\n"
		"  -bench LIST     comma list of shape names, or all (StoreLatency only with -latency)\n"
		"  -threads LIST   comma list of thread counts (default: nproc)\n"
		"  -n N            total iterations per run (0: search N with -time)\n"
		"  -time D         target duration of the reported run (default 1s; 200ms, 1.5s, ...)\n"
		"  -keys LIST      key-space sizes K for the additional shapes (default 1000; 1e6 ok)\n"
		"  -keytype LIST   int,str32 (default int)\n"
		"  -reps R         repetitions (each with its own N search); with several -impl the\n"
		"                  order is rep-major: A B C, A B C, ... (default 1)\n"
		"  -seed S         per-worker rng seed base (default 1)\n"
		"  -latency        time every write op; adds LATENCY lines\n"
		"  -grain G        fixed grain (0: adaptive, ~100us of work)\n"
		"  -grain-max G    cap of the adaptive grain (default 1000)\n"
		"  -memory         only measure bytes per entry (MEMORY lines) at -mem-keys\n"
		"  -mem-keys K     keys for -memory (default 1000000)\n"
		"  -shards N       syncmap backend: shards (0 = automatic, default; 1 = one sync.Map)\n"
		"  -selftest       check Go's semantics on every -impl and exit\n"
		"  -stats          after each syncmap run print syncmap_stats (# STATS line)\n"
		"  -list           print the backends compiled in and their set-up\n");
	exit(2);
}

static uint64_t parse_count(const char *name, const char *s, uint64_t min)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < (double)min || v != floor(v) || v > 1e18)
		mb_die("bad -%s value \"%s\" (want an integer >= %" PRIu64 ")", name, s, min);
	return (uint64_t)v;
}

static size_t parse_list(const char *name, const char *s, uint64_t min, uint64_t *out, size_t max)
{
	char *dup = strdup(s), *save = NULL;
	size_t n = 0;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*t))
			t++;
		if (!*t)
			continue;
		if (n == max)
			mb_die("-%s: too many values", name);
		out[n++] = parse_count(name, t, min);
	}
	free(dup);
	if (!n)
		mb_die("-%s: no values", name);
	return n;
}

/* Go's time.ParseDuration for the simple forms: 1s, 200ms, 1.5s, 500us, 2m, 100ns. */
static uint64_t parse_duration(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	double mul;
	if (end == s || v < 0)
		mb_die("bad -time \"%s\"", s);
	if (!strcmp(end, "ns"))
		mul = 1;
	else if (!strcmp(end, "us") || !strcmp(end, "\xc2\xb5s"))
		mul = 1e3;
	else if (!strcmp(end, "ms"))
		mul = 1e6;
	else if (!strcmp(end, "s"))
		mul = 1e9;
	else if (!strcmp(end, "m"))
		mul = 60e9;
	else
		mb_die("bad -time \"%s\" (want e.g. 1s, 200ms)", s);
	return (uint64_t)(v * mul);
}

static const struct impl *find_impl(const char *name)
{
	for (size_t i = 0; i < NIMPLS; i++)
		if (!strcmp(impls[i].o->name, name))
			return &impls[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const char *bench_flag = "all", *impl_flag = "all", *keytype_flag = "int";
	const char *threads_flag = NULL, *keys_flag = "1000", *time_flag = "1s";
	uint64_t n_flag = 0, reps = 1, seed = 1, grain = 0, grain_max = 1000, mem_keys = 1000000;
	bool latency = false, memory = false, self = false, list = false, stats = false;

	for (int a = 1; a < argc; a++) {
		const char *f = argv[a];
		if (f[0] == '-' && f[1] == '-')
			f++; /* Go's flag package accepts --flag too */
		const char *val = NULL;
		char *eq = strchr(f, '=');
		char namebuf[64];
		if (eq) {
			size_t l = (size_t)(eq - f);
			if (l >= sizeof(namebuf))
				usage();
			memcpy(namebuf, f, l);
			namebuf[l] = 0;
			val = eq + 1;
			f = namebuf;
		}
#define BOOLFLAG(name, var)                                                                            \
	if (!strcmp(f, name)) {                                                                        \
		var = !val || !strcmp(val, "true") || !strcmp(val, "1");                               \
		continue;                                                                              \
	}
		BOOLFLAG("-latency", latency)
		BOOLFLAG("-memory", memory)
		BOOLFLAG("-selftest", self)
		BOOLFLAG("-list", list)
		BOOLFLAG("-stats", stats)
		if (!strcmp(f, "-h") || !strcmp(f, "-help"))
			usage();
		if (!val) {
			if (a + 1 >= argc)
				usage();
			val = argv[++a];
		}
		if (!strcmp(f, "-bench"))
			bench_flag = val;
		else if (!strcmp(f, "-impl"))
			impl_flag = val;
		else if (!strcmp(f, "-threads"))
			threads_flag = val;
		else if (!strcmp(f, "-n"))
			n_flag = parse_count("n", val, 0);
		else if (!strcmp(f, "-time"))
			time_flag = val;
		else if (!strcmp(f, "-keys"))
			keys_flag = val;
		else if (!strcmp(f, "-keytype"))
			keytype_flag = val;
		else if (!strcmp(f, "-reps"))
			reps = parse_count("reps", val, 1);
		else if (!strcmp(f, "-seed"))
			seed = parse_count("seed", val, 0);
		else if (!strcmp(f, "-grain"))
			grain = parse_count("grain", val, 0);
		else if (!strcmp(f, "-grain-max"))
			grain_max = parse_count("grain-max", val, 1);
		else if (!strcmp(f, "-mem-keys"))
			mem_keys = parse_count("mem-keys", val, 1);
		else if (!strcmp(f, "-shards"))
			mb_syncmap_shards = (unsigned)parse_count("shards", val, 0);
		else {
			fprintf(stderr, "mapbench: unknown flag %s\n", argv[a]);
			usage();
		}
	}

	check_str32();
#if MAPBENCH_HAVE_LFHT
	rcu_register_thread(); /* the main thread does every setup */
#endif

	if (list) {
		for (size_t i = 0; i < NIMPLS; i++)
			printf("%-13s %s\n", impls[i].o->name, impls[i].o->notes);
		return 0;
	}

	/* Selections. */
	const struct impl *sel_impl[16];
	size_t nimpl = 0;
	{
		char *dup = strdup(impl_flag), *save = NULL;
		for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (!strcmp(t, "all")) {
				for (size_t i = 0; i < NIMPLS; i++)
					sel_impl[nimpl++] = &impls[i];
				continue;
			}
			const struct impl *im = find_impl(t);
			if (!im) {
				fprintf(stderr, "mapbench: unknown or not compiled in -impl \"%s\" (have:", t);
				for (size_t i = 0; i < NIMPLS; i++)
					fprintf(stderr, " %s", impls[i].o->name);
				fprintf(stderr, ")\n");
				return 1;
			}
			if (nimpl == 16)
				mb_die("-impl: too many");
			sel_impl[nimpl++] = im;
		}
		free(dup);
	}
	int kts[2];
	size_t nkt = 0;
	{
		char *dup = strdup(keytype_flag), *save = NULL;
		for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (!strcmp(t, "int"))
				kts[nkt++] = 0;
			else if (!strcmp(t, "str32"))
				kts[nkt++] = 1;
			else
				mb_die("unknown -keytype \"%s\" (int, str32)", t);
			if (nkt == 2)
				break;
		}
		free(dup);
	}
	if (!nkt)
		mb_die("-keytype: no values");

	if (self) {
		for (size_t k = 0; k < nkt; k++)
			for (size_t i = 0; i < nimpl; i++)
				selftest(sel_impl[i], kts[k]);
		return 0;
	}

	struct utsname un;
	uname(&un);
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);
	if (memory) {
		printf("# mapbench memory: %s %s, nproc=%ld, gcc %s, mmap wrapped: %s\n", un.sysname, un.release,
		       nproc, __VERSION__, heap_bytes_mmap_counted() ? "yes" : "NO (bucket arrays >= 256 KiB not counted)");
		for (size_t k = 0; k < nkt; k++)
			for (size_t i = 0; i < nimpl; i++)
				memory_run(sel_impl[i], kts[k], mem_keys);
		return 0;
	}

	bool sel_shape[S_COUNT] = {0};
	{
		char *dup = strdup(bench_flag), *save = NULL;
		for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			bool found = false;
			for (int s = 0; s < S_COUNT; s++) {
				if ((!strcmp(t, "all") && (s != S_StoreLatency || latency)) || !strcmp(t, shape_names[s])) {
					sel_shape[s] = true;
					found = true;
				}
			}
			if (!found) {
				fprintf(stderr, "mapbench: unknown -bench \"%s\" (known:", t);
				for (int s = 0; s < S_COUNT; s++)
					fprintf(stderr, "%s%s", s ? "," : " ", shape_names[s]);
				fprintf(stderr, ", all)\n");
				return 1;
			}
		}
		free(dup);
	}
	char nbuf[32];
	snprintf(nbuf, sizeof(nbuf), "%ld", nproc > 0 ? nproc : 1);
	uint64_t threads[64], keys[64];
	size_t nthreads = parse_list("threads", threads_flag ? threads_flag : nbuf, 1, threads, 64);
	size_t nkeys = parse_list("keys", keys_flag, 1, keys, 64);
	uint64_t target = parse_duration(time_flag);

	printf("# mapbench (C, gcc %s) threads=%s nproc=%ld %s/%s %s impls=", __VERSION__,
	       threads_flag ? threads_flag : nbuf, nproc, un.sysname, un.machine, un.release);
	for (size_t i = 0; i < nimpl; i++)
		printf("%s%s", i ? "," : "", sel_impl[i]->o->name);
	printf("\n");
	fflush(stdout);

	/* Same loop nest as syncmapbench (keytype, shape, K, threads, reps),
	 * with the backends innermost, rep-major: A B C, A B C, ... */
	for (size_t k = 0; k < nkt; k++) {
		for (int s = 0; s < S_COUNT; s++) {
			if (!sel_shape[s])
				continue;
			size_t nk = shape_takes_keys(s) ? nkeys : 1;
			for (size_t ki = 0; ki < nk; ki++) {
				uint64_t K = shape_takes_keys(s) ? keys[ki] : 0;
				for (size_t ti = 0; ti < nthreads; ti++) {
					for (uint64_t rep = 0; rep < reps; rep++) {
						for (size_t ii = 0; ii < nimpl; ii++) {
							struct config cfg = {
								.im = sel_impl[ii],
								.shape = s,
								.kt = kts[k],
								.K = K,
								.threads = (unsigned)threads[ti],
								.seed = seed,
								.latency = latency,
								.stats = stats,
								.grain = grain,
								.grain_max = grain_max,
							};
							struct run_result r = bench(&cfg, n_flag, target);
							const char *name = sel_impl[ii]->o->name;
							const char *ktn = kts[k] ? "str32" : "int";
							printf("RESULT impl=%s bench=%s keytype=%s keys=%" PRIu64
							       " threads=%u n=%" PRIu64 " ns_per_op=%.3f cpu_ns_per_op=%.3f\n",
							       name, shape_names[s], ktn, K, cfg.threads, r.n,
							       (double)r.elapsed_ns / (double)r.n, (double)r.cpu_ns / (double)r.n);
							if (latency)
								printf("LATENCY impl=%s bench=%s keytype=%s keys=%" PRIu64
								       " threads=%u ops=%" PRIu64 " p50=%" PRIu64
								       " p99=%" PRIu64 " p999=%" PRIu64 " max=%" PRIu64 "\n",
								       name, shape_names[s], ktn, K, cfg.threads, r.pct.n,
								       r.pct.p50, r.pct.p99, r.pct.p999, r.pct.max);
							fflush(stdout);
						}
					}
				}
			}
		}
	}
	return 0;
}
