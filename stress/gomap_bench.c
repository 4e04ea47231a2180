/*
 * gomap_bench.c - gomap's numbers, measured exactly the way
 * stress/go/gomapbench measures Go's builtin map[uint64]uintptr, so the two
 * can be put side by side (stress/bench-gomap does that, interleaved).
 *
 * SPDX-License-Identifier: MIT
 *
 * What is measured, for each n in -sizes (default 1000,100000,10000000):
 *
 *   put       insert k_0..k_{n-1} (in index order) into a map made with
 *             default options (no size hint, random seed), value i; growth
 *             and evacuation are part of the cost; gomap_new is inside the
 *             timed region, gomap_free of the previous map is not.
 *   get_hit   look up every k_i once, in a shuffled order, on a full map.
 *   get_miss  look up k_n..k_{2n-1} (none present), in index order, on a
 *             full map.
 *   delete    delete every k_i once, in the same shuffled order, from a full
 *             map (the one put/get left for the first pass, a fresh untimed
 *             build for every later pass).
 *
 * and, at n = -mem-n (default 1000000):
 *
 *   bytes_per_entry       (heap after - heap before) / n around building the
 *                         map as in put, where heap = mallinfo2() uordblks +
 *                         hblkhd PLUS the bytes gomap maps directly with
 *                         mmap(2) (its bucket arrays of 256 KiB and more, see
 *                         src/alloc.c), which mallinfo2 cannot see.  Those are
 *                         counted by wrapping mmap/munmap at link time
 *                         (stress/heap_bytes.c); without the
 *                         wrap the line is still printed but says
 *                         "mmap_counted=0" on a comment line and undercounts.
 *                         The block cache's zeroed blocks (src/blockcache.h)
 *                         are free memory of the allocator, like glibc's
 *                         free chunks and Go's idle spans, and are left out
 *                         of both readings; bytes_per_entry_cached shows
 *                         them (cache bytes / n after the build).
 *   bytes_per_entry_self  gomap_work().bytes / n: the map's own account of
 *                         what it holds (arrays, overflow chunks, key blocks).
 *
 * Keys: k_i = splitmix64(i + 1).  All 2n keys are computed before anything is
 * timed; the timed loops pass &keys[i] (8 bytes) to gomap.
 *
 * Shuffle: Fisher-Yates over a copy of k_0..k_{n-1} with xorshift64* seeded
 * with -seed (reset for every n): for i = n-1 down to 1, j = next() % (i+1),
 * swap a[i], a[j].  The same permutation serves every pass of get_hit and
 * delete.
 *
 * Timing: clock_gettime(CLOCK_MONOTONIC) once before and once after each pass
 * of n operations; nothing is subtracted.  A repetition (rep) runs passes
 * until their summed time reaches -min-ms (default 20 ms; at least one pass)
 * and reports ns_per_op = summed time / (passes * n).  put and delete rebuild
 * the map (untimed) before every pass after the first.  -min-ms 0 gives
 * exactly one pass per rep, which is what callgrind runs want.
 *
 * Lookups add their values into a sum stored to a volatile sink, and every
 * pass is checked (hit values sum to n(n-1)/2, no miss finds anything,
 * put/delete leave len == n / 0); a failed check exits with status 1.
 *
 * Output, one line per (op, n, rep):
 *   RESULT impl=gomap op=get_hit n=1000 rep=0 ns_per_op=12.345
 *   RESULT impl=gomap op=bytes_per_entry n=1000000 rep=0 value=40.12
 *   RESULT impl=gomap op=bytes_per_entry_self n=1000000 rep=0 value=40.12
 * Comment lines start with '#'.
 *
 * -ops loop (not part of "all"): the life of a short-lived map, the way
 * syncmap makes one per promotion cycle.  For each n, iterations of
 *
 *   loop_put     gomap_new(default options), put k_0..k_{n-1} in index order
 *   loop_get     get every k_i once in a strided order: i = 0, s, 2s, ...
 *                (mod n), s = stride(n, 0.618); values summed and checked
 *   loop_miss    get k_n..k_{2n-1} (absent) in index order
 *   loop_delete  delete every k_i in another strided order,
 *                s = stride(n, 0.382), then gomap_free the (empty) map
 *   loop_free    the gomap_free alone (already inside loop_delete)
 *
 * stride(n, f): the smallest s >= max(1, floor(n * f)) with gcd(s, n) == 1
 * (f as the integer ratios 618034/1e6 and 381966/1e6), so i*s mod n visits
 * every index once.  Each phase is timed on its own (CLOCK_MONOTONIC before
 * and after) and summed over the iterations; -loop-warmup iterations
 * (default 1) run first, untimed, so the numbers are the steady state of a
 * program that keeps making maps; then timed iterations until every phase's
 * sum reaches -min-ms (default 200 ms for the loop).  Per phase the minor
 * page faults (getrusage ru_minflt) and CPU time (ru_utime + ru_stime) of
 * the process are summed the same way.  One line per phase:
 *   RESULT impl=gomap op=loop_put n=100000 rep=0 ns_per_op=.. cpu_ns_per_op=..
 *          minflt_per_op=.. iters=..
 * and RESULT impl=gomap op=loop_peak_rss_mb n=.. rep=0 value=.. (ru_maxrss
 * at the end, MiB).  stress/go/gomapbench -ops loop does the same for Go.
 *
 * -latency: instead of the above, grow one map from 0 to -latency-n keys
 * (default 1000000) timing every put on its own, then delete every key (in
 * the shuffled order) timing every delete on its own, and print
 *   LATENCY impl=gomap op=put n=1000000 p50=.. p99=.. p999=.. max=..
 * (nanoseconds; percentiles as stress/common.h computes them: sorted
 * v[(n-1)*p]).  Each sample is the difference of two
 * clock_gettime(CLOCK_MONOTONIC) readings around the one call; the clock's
 * own cost (measured and printed on a comment line first, 20-30 ns here) is
 * included, NOT subtracted.
 *
 * Diagnosis: -map-seed S fixes the hash seed (reproducible bucket placement,
 * e.g. for callgrind); -map-hint N passes a size hint to every gomap_new,
 * which Go's side does not do: put then never grows and delete never shrinks
 * below N, which isolates the cost of growing/shrinking.
 *
 * Profiling: each timed pass is one noinline function (pass_put,
 * pass_get_hit, pass_get_miss, pass_delete; loop_put, loop_get, loop_miss,
 * loop_delete, loop_free), so
 *   valgrind --tool=callgrind --toggle-collect=pass_get_hit \
 *       gomap-bench -ops get_hit -sizes 100000 -reps 1 -min-ms 0 -map-seed 1
 * counts exactly the instructions of one pass of n lookups (divide the
 * total by n; with -reps R, by R*n).  --toggle-collect=gomap_get (or
 * gomap_put, gomap_delete) leaves out the loop and the sink.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "blockcache.h" /* syncmap__block_cache_stats */
#include "common.h"     /* sm_splitmix64, sm_rng (xorshift64*), sm_now_ns, sm_percentiles */
#include "gomap.h"
#include "heap_bytes.h" /* mmap-aware heap size */

/* ---- helpers ----------------------------------------------------------- */

static volatile uintptr_t sink;

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "gomap-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

#define now_ns sm_now_ns

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* A big array of the harness's own (keys, orders) on transparent huge
 * pages where the kernel allows them, as Go's heap has them for its key
 * slices (its process ran at 92% huge pages in the 1e7 loop): the loop
 * reads keys in a strided order, and a TLB miss per key on 4 KiB pages
 * would be charged to gomap alone (+70-80 ns per op at 1e7). */
static void *xmalloc_keys(size_t n)
{
	const size_t huge = (size_t)2 << 20;
	if (n < huge)
		return xmalloc(n);
	void *p;
	size_t rounded = (n + huge - 1) / huge * huge;
	if (posix_memalign(&p, huge, rounded) != 0)
		die("out of memory (%zu bytes)", n);
#ifdef MADV_HUGEPAGE
	(void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
	return p;
}

/* keys k_0..k_{count-1} */
static uint64_t *make_keys(size_t count)
{
	uint64_t *k = xmalloc_keys(count * sizeof(*k));
	for (size_t i = 0; i < count; i++)
		k[i] = sm_splitmix64((uint64_t)i + 1);
	return k;
}

static uint64_t *shuffled(const uint64_t *keys, size_t n, uint64_t seed)
{
	uint64_t *a = xmalloc_keys(n * sizeof(*a));
	memcpy(a, keys, n * sizeof(*a));
	struct sm_rng r;
	sm_rng_seed(&r, seed); /* seed is nonzero (checked), used as is */
	for (size_t i = n; i-- > 1;) {
		size_t j = (size_t)(sm_rng_next(&r) % (uint64_t)(i + 1));
		uint64_t t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
	return a;
}

static struct gomap_options map_opts; /* -map-seed, -map-hint */

static struct gomap *new_map(void)
{
	struct gomap *m = gomap_new(&map_opts);
	if (!m)
		die("gomap_new failed (errno %d)", errno);
	return m;
}

/* ---- the timed passes (noinline: callgrind --toggle-collect targets) --- */

__attribute__((noinline)) static struct gomap *pass_put(const uint64_t *keys, size_t n)
{
	struct gomap *m = new_map();
	for (size_t i = 0; i < n; i++)
		if (__builtin_expect(gomap_put(m, &keys[i], 8, (void *)(uintptr_t)i) != 0, 0))
			die("put: gomap_put failed at %zu", i);
	return m;
}

__attribute__((noinline)) static uintptr_t pass_get_hit(const struct gomap *m, const uint64_t *order, size_t n)
{
	uintptr_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		void *v = NULL;
		gomap_get(m, &order[i], 8, &v);
		sum += (uintptr_t)v;
	}
	return sum;
}

__attribute__((noinline)) static size_t pass_get_miss(const struct gomap *m, const uint64_t *absent, size_t n,
						      uintptr_t *sump)
{
	uintptr_t sum = 0;
	size_t found = 0;
	for (size_t i = 0; i < n; i++) {
		void *v = NULL;
		found += gomap_get(m, &absent[i], 8, &v);
		sum += (uintptr_t)v;
	}
	*sump = sum;
	return found;
}

__attribute__((noinline)) static void pass_delete(struct gomap *m, const uint64_t *order, size_t n)
{
	for (size_t i = 0; i < n; i++)
		gomap_delete(m, &order[i], 8, NULL);
}

/* Untimed: fill a fresh map the same way put does. */
static struct gomap *build(const uint64_t *keys, size_t n)
{
	struct gomap *m = new_map();
	for (size_t i = 0; i < n; i++)
		if (gomap_put(m, &keys[i], 8, (void *)(uintptr_t)i) != 0)
			die("build: gomap_put failed at %zu", i);
	return m;
}

/* ---- the create-fill-probe-delete-free loop ----------------------------- */

static size_t gcd_size(size_t a, size_t b)
{
	while (b) {
		size_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* The smallest s >= max(1, n * num / 1e6) coprime to n. */
static size_t stride(size_t n, uint64_t num)
{
	size_t s = (size_t)((unsigned __int128)n * num / 1000000u);
	if (s < 1)
		s = 1;
	while (gcd_size(s, n) != 1)
		s++;
	return s;
}

__attribute__((noinline)) static struct gomap *loop_put(const uint64_t *keys, size_t n)
{
	return pass_put(keys, n);
}

__attribute__((noinline)) static uintptr_t loop_get(const struct gomap *m, const uint64_t *keys, size_t n, size_t s)
{
	uintptr_t sum = 0;
	size_t idx = 0;
	for (size_t i = 0; i < n; i++) {
		void *v = NULL;
		gomap_get(m, &keys[idx], 8, &v);
		sum += (uintptr_t)v;
		idx += s;
		if (idx >= n)
			idx -= n;
	}
	return sum;
}

__attribute__((noinline)) static size_t loop_miss(const struct gomap *m, const uint64_t *absent, size_t n,
						  uintptr_t *sump)
{
	return pass_get_miss(m, absent, n, sump);
}

__attribute__((noinline)) static size_t loop_delete(struct gomap *m, const uint64_t *keys, size_t n, size_t s)
{
	size_t found = 0;
	size_t idx = 0;
	for (size_t i = 0; i < n; i++) {
		found += gomap_delete(m, &keys[idx], 8, NULL);
		idx += s;
		if (idx >= n)
			idx -= n;
	}
	return found;
}

__attribute__((noinline)) static void loop_free(struct gomap *m)
{
	gomap_free(m);
}

/* One phase's running sums. */
struct phase {
	uint64_t ns, cpu_ns;
	long minflt;
};

struct mark {
	uint64_t t, cpu;
	long minflt;
};

static struct mark mark_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	struct mark k;
	k.cpu = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
		((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
	k.minflt = ru.ru_minflt;
	k.t = now_ns(); /* last: the clock brackets the work as tightly as it can */
	return k;
}

/* Close a phase opened at `a`: reads the clock first. */
static void phase_add(struct phase *p, const struct mark *a)
{
	uint64_t t = now_ns();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	uint64_t cpu = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
		       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
	p->ns += t - a->t;
	p->cpu_ns += cpu - a->cpu;
	p->minflt += ru.ru_minflt - a->minflt;
}

static void loop_report(const char *op, size_t n, int rep, const struct phase *p, uint64_t iters)
{
	double ops = (double)n * (double)iters;
	printf("RESULT impl=gomap op=%s n=%zu rep=%d ns_per_op=%.3f cpu_ns_per_op=%.3f minflt_per_op=%.5f iters=%" PRIu64
	       "\n",
	       op, n, rep, (double)p->ns / ops, (double)p->cpu_ns / ops, (double)p->minflt / ops, iters);
	fflush(stdout);
}

static void run_loop(size_t *sizes, size_t nsizes, int reps, uint64_t min_ns, long warmup)
{
	for (size_t si = 0; si < nsizes; si++) {
		size_t n = sizes[si];
		uint64_t *all = make_keys(2 * n);
		const uint64_t *keys = all, *absent = all + n;
		size_t s_get = stride(n, 618034), s_del = stride(n, 381966);
		uintptr_t want = (uintptr_t)n * (uintptr_t)(n - 1) / 2;
		for (int rep = 0; rep < reps; rep++) {
			struct phase put = {0}, get = {0}, miss = {0}, del = {0}, fre = {0};
			uint64_t iters = 0;
			for (long it = 0;; it++) {
				bool timed = it >= warmup;
				struct phase scratch = {0};
				struct mark a = mark_now();
				struct gomap *m = loop_put(keys, n);
				phase_add(timed ? &put : &scratch, &a);
				if (gomap_len(m) != n)
					die("loop_put: len %zu after %zu inserts", gomap_len(m), n);

				a = mark_now();
				uintptr_t sum = loop_get(m, keys, n, s_get);
				phase_add(timed ? &get : &scratch, &a);
				sink = sum;
				if (sum != want)
					die("loop_get: value sum %ju, want %ju", (uintmax_t)sum, (uintmax_t)want);

				a = mark_now();
				size_t found = loop_miss(m, absent, n, &sum);
				phase_add(timed ? &miss : &scratch, &a);
				sink = sum;
				if (found)
					die("loop_miss: %zu of %zu absent keys found", found, n);

				a = mark_now();
				found = loop_delete(m, keys, n, s_del);
				struct mark f = mark_now();
				loop_free(m);
				phase_add(timed ? &fre : &scratch, &f);
				phase_add(timed ? &del : &scratch, &a);
				if (found != n)
					die("loop_delete: %zu of %zu keys found", found, n);
				if (!timed)
					continue;
				iters++;
				if (put.ns >= min_ns && get.ns >= min_ns && miss.ns >= min_ns && del.ns >= min_ns)
					break;
			}
			loop_report("loop_put", n, rep, &put, iters);
			loop_report("loop_get", n, rep, &get, iters);
			loop_report("loop_miss", n, rep, &miss, iters);
			loop_report("loop_delete", n, rep, &del, iters);
			loop_report("loop_free", n, rep, &fre, iters);
		}
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		printf("RESULT impl=gomap op=loop_peak_rss_mb n=%zu rep=0 value=%.1f\n", n, (double)ru.ru_maxrss / 1024.0);
		fflush(stdout);
		free(all);
	}
}

/* ---- options ----------------------------------------------------------- */

enum { OP_PUT = 1, OP_GET_HIT = 2, OP_GET_MISS = 4, OP_DELETE = 8, OP_BYTES = 16, OP_LOOP = 32 };
static const struct {
	const char *name;
	unsigned bit;
} op_names[] = {
	{"put", OP_PUT}, {"get_hit", OP_GET_HIT}, {"get_miss", OP_GET_MISS},
	{"delete", OP_DELETE}, {"bytes_per_entry", OP_BYTES}, {"loop", OP_LOOP},
};

static unsigned parse_ops(const char *s)
{
	unsigned sel = 0;
	char *dup = strdup(s), *save = NULL;
	for (char *f = strtok_r(dup, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		while (*f == ' ')
			f++;
		if (!*f)
			continue;
		if (!strcmp(f, "all")) {
			sel |= OP_PUT | OP_GET_HIT | OP_GET_MISS | OP_DELETE | OP_BYTES;
			continue;
		}
		unsigned bit = 0;
		for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
			if (!strcmp(f, op_names[i].name))
				bit = op_names[i].bit;
		if (!bit)
			die("unknown op \"%s\" (known: put,get_hit,get_miss,delete,bytes_per_entry,loop, all)", f);
		sel |= bit;
	}
	free(dup);
	return sel;
}

/* A size: a plain integer or 1e7-style (like the Go side's ParseFloat). */
static size_t parse_size(const char *f)
{
	char *end;
	errno = 0;
	double v = strtod(f, &end);
	if (errno || end == f || *end || v < 1 || v > 1e12 || v != (double)(unsigned long long)v)
		die("bad size \"%s\"", f);
	return (size_t)v;
}

static size_t parse_sizes(const char *s, size_t **out)
{
	size_t cnt = 0;
	size_t *v = xmalloc((strlen(s) + 1) * sizeof(*v));
	char *dup = strdup(s), *save = NULL;
	for (char *f = strtok_r(dup, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		while (*f == ' ')
			f++;
		if (*f)
			v[cnt++] = parse_size(f);
	}
	free(dup);
	if (!cnt)
		die("no sizes given");
	*out = v;
	return cnt;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: gomap-bench [-sizes N,N,..] [-ops OP,..|all] [-reps R] [-seed S]\n"
		"                   [-mem-n N] [-min-ms MS] [-map-seed S] [-map-hint N]\n"
		"                   [-loop-warmup N] [-block-cache-mb MB]\n"
		"       gomap-bench -latency [-latency-n N] [-seed S] [-map-seed S]\n"
		"  -sizes     map sizes (default 1000,100000,10000000; 1e7 spelling ok)\n"
		"  -ops       put,get_hit,get_miss,delete,bytes_per_entry or all (default all);\n"
		"             loop: create-fill-probe-delete-free iterations (not in all)\n"
		"  -reps      repetitions of every measurement (default 5)\n"
		"  -seed      xorshift64* seed of the shuffle, nonzero (default 1)\n"
		"  -mem-n     n for bytes_per_entry (default 1000000)\n"
		"  -min-ms    time passes until their sum reaches this (default 20, loop 200;\n"
		"             0 = one pass)\n"
		"  -loop-warmup  untimed loop iterations first (default 1)\n"
		"  -block-cache-mb  bound of gomap's block cache (default 64; diagnosis)\n"
		"  -map-seed  gomap hash seed (default 0 = random per map, like Go)\n"
		"  -map-hint  size hint for every gomap_new (default 0 = none, like Go);\n"
		"             diagnosis only: a hint also stops the map shrinking below it\n"
		"  -latency   per-operation put/delete latency while growing to -latency-n\n"
		"  -latency-n keys for -latency (default 1000000)\n");
	exit(2);
}

/* ---- measurements ------------------------------------------------------ */

static void report(const char *op, size_t n, int rep, uint64_t ns, uint64_t passes)
{
	printf("RESULT impl=gomap op=%s n=%zu rep=%d ns_per_op=%.3f\n", op, n, rep,
	       (double)ns / ((double)n * (double)passes));
	fflush(stdout);
}

static void run_sizes(size_t *sizes, size_t nsizes, unsigned ops, int reps, uint64_t seed, uint64_t min_ns)
{
	for (size_t si = 0; si < nsizes; si++) {
		size_t n = sizes[si];
		if (!(ops & (OP_PUT | OP_GET_HIT | OP_GET_MISS | OP_DELETE)))
			break;
		uint64_t *all = make_keys(2 * n);
		const uint64_t *keys = all, *absent = all + n;
		uint64_t *order = NULL;
		if (ops & (OP_GET_HIT | OP_DELETE))
			order = shuffled(keys, n, seed);
		uintptr_t want = (uintptr_t)n * (uintptr_t)(n - 1) / 2;
		struct gomap *m = NULL;

		if (ops & OP_PUT) {
			for (int rep = 0; rep < reps; rep++) {
				uint64_t total = 0, passes = 0;
				do {
					gomap_free(m); /* untimed */
					uint64_t t0 = now_ns();
					m = pass_put(keys, n);
					total += now_ns() - t0;
					passes++;
					if (gomap_len(m) != n)
						die("put: len %zu after %zu inserts", gomap_len(m), n);
				} while (total < min_ns);
				report("put", n, rep, total, passes);
			}
		}
		if (ops & (OP_GET_HIT | OP_GET_MISS)) {
			if (!m)
				m = build(keys, n);
			if (ops & OP_GET_HIT) {
				for (int rep = 0; rep < reps; rep++) {
					uint64_t total = 0, passes = 0;
					do {
						uint64_t t0 = now_ns();
						uintptr_t sum = pass_get_hit(m, order, n);
						total += now_ns() - t0;
						passes++;
						sink = sum;
						if (sum != want)
							die("get_hit: value sum %ju, want %ju", (uintmax_t)sum, (uintmax_t)want);
					} while (total < min_ns);
					report("get_hit", n, rep, total, passes);
				}
			}
			if (ops & OP_GET_MISS) {
				for (int rep = 0; rep < reps; rep++) {
					uint64_t total = 0, passes = 0;
					do {
						uintptr_t sum;
						uint64_t t0 = now_ns();
						size_t found = pass_get_miss(m, absent, n, &sum);
						total += now_ns() - t0;
						passes++;
						sink = sum;
						if (found)
							die("get_miss: %zu of %zu absent keys found", found, n);
					} while (total < min_ns);
					report("get_miss", n, rep, total, passes);
				}
			}
		}
		if (ops & OP_DELETE) {
			bool first = true;
			for (int rep = 0; rep < reps; rep++) {
				uint64_t total = 0, passes = 0;
				do {
					/* Every pass starts from a full map: the one left
					 * by put/get for the very first, a fresh untimed
					 * build after that. */
					if (!first || !m) {
						gomap_free(m);
						m = build(keys, n);
					}
					first = false;
					uint64_t t0 = now_ns();
					pass_delete(m, order, n);
					total += now_ns() - t0;
					passes++;
					if (gomap_len(m) != 0)
						die("delete: len %zu after deleting all %zu keys", gomap_len(m), n);
				} while (total < min_ns);
				report("delete", n, rep, total, passes);
			}
		}
		gomap_free(m);
		free(order);
		free(all);
	}
}

/* Bytes of zeroed blocks the block cache holds for reuse: free memory of
 * the allocator, like glibc's free chunks (not in mallinfo2's uordblks)
 * and Go's idle heap spans (not in HeapAlloc), so bytes_per_entry leaves
 * them out and bytes_per_entry_cached shows them. */
static long long block_cache_bytes(void)
{
	struct syncmap__block_cache_stats st;
	syncmap__block_cache_stats(&st);
	return (long long)st.bytes;
}

static void run_bytes(size_t n, int reps)
{
	if (!heap_bytes_mmap_counted())
		printf("# mmap_counted=0: gomap's directly mmapped bucket arrays are NOT in bytes_per_entry\n");
	uint64_t *keys = make_keys(n); /* made before the first reading: not counted */
	for (int rep = 0; rep < reps; rep++) {
		long long before = heap_bytes_now() - block_cache_bytes();
		struct gomap *m = build(keys, n);
		long long cached = block_cache_bytes();
		long long after = heap_bytes_now() - cached;
		struct gomap_work w;
		gomap_work(m, &w);
		if (gomap_len(m) != n)
			die("bytes_per_entry: len %zu after %zu inserts", gomap_len(m), n);
		printf("RESULT impl=gomap op=bytes_per_entry n=%zu rep=%d value=%.2f\n", n, rep,
		       (double)(after - before) / (double)n);
		printf("RESULT impl=gomap op=bytes_per_entry_self n=%zu rep=%d value=%.2f\n", n, rep,
		       (double)w.bytes / (double)n);
		printf("RESULT impl=gomap op=bytes_per_entry_cached n=%zu rep=%d value=%.2f\n", n, rep,
		       (double)cached / (double)n);
		fflush(stdout);
		gomap_free(m);
	}
	free(keys);
}

/* Percentiles as every tool of the project computes them (common.h):
 * sorted v[(n-1)*p], nanoseconds. */
static void latency_line(const char *op, uint64_t *s, size_t n)
{
	struct sm_pct p = sm_percentiles(s, n);
	printf("LATENCY impl=gomap op=%s n=%zu p50=%" PRIu64 " p99=%" PRIu64 " p999=%" PRIu64 " max=%" PRIu64 "\n",
	       op, n, p.p50, p.p99, p.p999, p.max);
	fflush(stdout);
}

static void run_latency(size_t n, uint64_t seed)
{
	uint64_t *keys = make_keys(n);
	uint64_t *order = shuffled(keys, n, seed);
	uint64_t *lat = xmalloc(n * sizeof(*lat));

	/* The clock's own cost: the median of back-to-back readings. */
	enum { CAL = 100001 };
	uint64_t *cal = xmalloc(CAL * sizeof(*cal));
	for (size_t i = 0; i < CAL; i++) {
		uint64_t t0 = now_ns();
		cal[i] = now_ns() - t0;
	}
	struct sm_pct cp = sm_percentiles(cal, CAL);
	printf("# clock_gettime(CLOCK_MONOTONIC) back-to-back: p50=%" PRIu64 " ns p99=%" PRIu64
	       " ns; every sample below includes one such reading, nothing is subtracted\n",
	       cp.p50, cp.p99);
	free(cal);
	/* Touch the sample array so its page faults are not charged to the map. */
	memset(lat, 0, n * sizeof(*lat));

	struct gomap *m = new_map();
	size_t worst = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		int err = gomap_put(m, &keys[i], 8, (void *)(uintptr_t)i);
		uint64_t t1 = now_ns();
		if (err)
			die("latency put: gomap_put failed at %zu", i);
		lat[i] = t1 - t0;
		if (lat[i] > lat[worst])
			worst = i;
	}
	struct gomap_work w;
	gomap_work(m, &w);
	printf("# put: slowest was insert #%zu (%" PRIu64 " ns); grows=%zu same_size_grows=%zu max_evacuated=%zu max_skipped=%zu\n",
	       worst, lat[worst], w.grows, w.same_size_grows, w.max_evacuated, w.max_skipped);
	latency_line("put", lat, n);

	worst = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		bool ok = gomap_delete(m, &order[i], 8, NULL);
		uint64_t t1 = now_ns();
		if (!ok)
			die("latency delete: key #%zu missing", i);
		lat[i] = t1 - t0;
		if (lat[i] > lat[worst])
			worst = i;
	}
	gomap_work(m, &w);
	printf("# delete: slowest was delete #%zu (%" PRIu64 " ns); shrinks=%zu max_evacuated=%zu max_skipped=%zu\n",
	       worst, lat[worst], w.shrinks, w.max_evacuated, w.max_skipped);
	latency_line("delete", lat, n);

	gomap_free(m);
	free(lat);
	free(order);
	free(keys);
}

int main(int argc, char **argv)
{
	const char *sizes_s = "1000,100000,10000000", *ops_s = "all";
	long reps = 5;
	uint64_t seed = 1;
	size_t mem_n = 1000000, lat_n = 1000000;
	double min_ms = -1; /* default: 20, or 200 for the loop */
	long loop_warmup = 1;
	bool latency = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] == '-' && a[1] == '-')
			a++; /* accept --flag like Go's flag package */
		const char *val = NULL;
		char *eq = strchr(a, '=');
		char name[32];
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);
		if (nl >= sizeof(name))
			usage();
		memcpy(name, a, nl);
		name[nl] = 0;
		if (!strcmp(name, "-latency")) {
			latency = true;
			continue;
		}
		if (!strcmp(name, "-h") || !strcmp(name, "-help"))
			usage();
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			usage();
		char *end;
		if (!strcmp(name, "-sizes"))
			sizes_s = val;
		else if (!strcmp(name, "-ops"))
			ops_s = val;
		else if (!strcmp(name, "-reps")) {
			reps = strtol(val, &end, 10);
			if (*end || reps < 1)
				die("-reps must be >= 1 (got \"%s\")", val);
		} else if (!strcmp(name, "-seed")) {
			seed = strtoull(val, &end, 0);
			if (*end || seed == 0)
				die("-seed must be nonzero (xorshift64* state) (got \"%s\")", val);
		} else if (!strcmp(name, "-map-seed")) {
			map_opts.seed = strtoull(val, &end, 0);
			if (*end)
				die("bad -map-seed \"%s\"", val);
		} else if (!strcmp(name, "-map-hint")) {
			map_opts.hint = strcmp(val, "0") ? parse_size(val) : 0;
		} else if (!strcmp(name, "-block-cache-mb")) {
			double mb = strtod(val, &end);
			if (*end || mb < 0)
				die("bad -block-cache-mb \"%s\"", val);
			syncmap__block_cache_set_limit((size_t)(mb * 1048576.0));
		} else if (!strcmp(name, "-mem-n"))
			mem_n = parse_size(val);
		else if (!strcmp(name, "-loop-warmup")) {
			loop_warmup = strtol(val, &end, 10);
			if (*end || loop_warmup < 0)
				die("bad -loop-warmup \"%s\"", val);
		} else if (!strcmp(name, "-latency-n"))
			lat_n = parse_size(val);
		else if (!strcmp(name, "-min-ms")) {
			min_ms = strtod(val, &end);
			if (*end || min_ms < 0)
				die("bad -min-ms \"%s\"", val);
		} else
			usage();
	}

	unsigned ops = parse_ops(ops_s);
	double min_ms_loop = min_ms < 0 ? 200 : min_ms;
	if (min_ms < 0)
		min_ms = 20;
	printf("# gomap-bench write_check=%s mmap_counted=%d min_ms=%g map_seed=%s map_hint=%zu\n",
#ifdef GOMAP_WRITE_CHECK
	       GOMAP_WRITE_CHECK ? "on" : "off",
#else
	       "?",
#endif
	       heap_bytes_mmap_counted(), min_ms, map_opts.seed ? "fixed" : "random", map_opts.hint);
	if (latency) {
		run_latency(lat_n, seed);
		return 0;
	}
	size_t *sizes;
	size_t nsizes = parse_sizes(sizes_s, &sizes);
	run_sizes(sizes, nsizes, ops, (int)reps, seed, (uint64_t)(min_ms * 1e6));
	if (ops & OP_LOOP)
		run_loop(sizes, nsizes, (int)reps, (uint64_t)(min_ms_loop * 1e6), loop_warmup);
	if (ops & OP_BYTES)
		run_bytes(mem_n, (int)reps);
	free(sizes);
	return 0;
}
