/*
 * gomap_churn.c - drive gomap directly, with a reference check.
 *
 * SPDX-License-Identifier: MIT
 *
 * gomap is single-threaded, so each thread churns a gomap of its own (the
 * threads only make the run use every core).  Every op is checked against a
 * plain array indexed by key (present flag + value): get, put, delete,
 * len, and iteration with Go's contract while the map changes underneath
 * (each key at most once; each returned key present with its current
 * value; every key present at the start and untouched until the end
 * returned).  The insert/delete balance moves in waves so the map grows,
 * shrinks, fills overflow chains, leaves tombstones and rewrites itself
 * (same-size grows); after every put and delete the work it did is checked
 * against GOMAP_MAX_EVACUATE_PER_OP / GOMAP_MAX_SKIP_PER_OP.  Values are
 * tagged words (key, thread, sequence) and now and then NULL (a value).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomap.h"
#include "stress.h"

struct ss_gomap_result ss_gomap_res;
static pthread_mutex_t res_mu = PTHREAD_MUTEX_INITIALIZER;

struct gref {
	void **val;
	uint8_t *present;
	uint8_t *touched, *returned, *at_start; /* iteration bookkeeping */
	uint64_t count;
};

struct gctx {
	struct ss_worker *w;
	struct gomap *m;
	struct gref ref;
	uint64_t seq;
	uint64_t opi; /* index of the current op (prefill: 0) */
	struct ss_gomap_result res;
};

/* gomap runs are single-threaded per map: thread t's op sequence depends
 * only on the seed, so "op N" pinpoints the failing call for a replay
 * with --threads 1 (thread 0) --ops N+1. */
#define GFAIL(g, fmt, ...) \
	ss_fail((int)(g)->w->id, "gomap (op %" PRIu64 "): " fmt, (g)->opi, ##__VA_ARGS__)

static void *gvalue(struct gctx *g, uint64_t key, uint64_t r)
{
	if ((r >> 58) == 0) /* 1 in 64: NULL is a value too */
		return NULL;
	return ss_tag_make((uint32_t)key, g->w->id, (uint32_t)++g->seq);
}

static void check_work(struct gctx *g, const char *what)
{
	struct gomap_work wk;
	gomap_work(g->m, &wk);
	if (wk.last_evacuated > GOMAP_MAX_EVACUATE_PER_OP || wk.last_skipped > GOMAP_MAX_SKIP_PER_OP)
		GFAIL(g, "%s evacuated %zu buckets and skipped %zu (bounds %d, %d)", what, wk.last_evacuated,
		      wk.last_skipped, GOMAP_MAX_EVACUATE_PER_OP, GOMAP_MAX_SKIP_PER_OP);
}

static void gput(struct gctx *g, uint64_t k, uint64_t r, bool timed)
{
	void *v = gvalue(g, k, r);
	int rc;
	if (timed) {
		uint64_t t0 = sm_now_ns();
		rc = gomap_put(g->m, ss_key(k), cfg.klen, v);
		ss_lat_add(&g->w->lat[OP_STORE], &g->w->rng, sm_now_ns() - t0);
	} else {
		rc = gomap_put(g->m, ss_key(k), cfg.klen, v);
	}
	if (rc != 0) {
		GFAIL(g, "put of key %" PRIu64 " returned %d", k, rc);
		return;
	}
	check_work(g, "put");
	if (!g->ref.present[k])
		g->ref.count++;
	g->ref.present[k] = 1;
	g->ref.val[k] = v;
	g->ref.touched[k] = 1;
}

static void gdel(struct gctx *g, uint64_t k, bool timed)
{
	void *old = (void *)1;
	bool found;
	if (timed) {
		uint64_t t0 = sm_now_ns();
		found = gomap_delete(g->m, ss_key(k), cfg.klen, &old);
		ss_lat_add(&g->w->lat[OP_DELETE], &g->w->rng, sm_now_ns() - t0);
	} else {
		found = gomap_delete(g->m, ss_key(k), cfg.klen, &old);
	}
	check_work(g, "delete");
	if (found != (bool)g->ref.present[k]) {
		GFAIL(g, "delete of key %" PRIu64 ": found %d, reference says %d", k, found, g->ref.present[k]);
		return;
	}
	if (found && old != g->ref.val[k]) {
		GFAIL(g, "delete of key %" PRIu64 " returned %p, reference value %p", k, old, g->ref.val[k]);
		return;
	}
	if (found)
		g->ref.count--;
	g->ref.present[k] = 0;
	g->ref.touched[k] = 1;
}

static void gget(struct gctx *g, uint64_t k, bool timed)
{
	void *v = (void *)1;
	bool found;
	if (timed) {
		uint64_t t0 = sm_now_ns();
		found = gomap_get(g->m, ss_key(k), cfg.klen, &v);
		ss_lat_add(&g->w->lat[OP_LOAD], &g->w->rng, sm_now_ns() - t0);
	} else {
		found = gomap_get(g->m, ss_key(k), cfg.klen, &v);
	}
	if (found != (bool)g->ref.present[k] || (found && v != g->ref.val[k]))
		GFAIL(g, "get of key %" PRIu64 ": %s %p, reference: %s %p", k, found ? "found" : "absent", v,
		      g->ref.present[k] ? "present" : "absent", g->ref.val[k]);
	if (found)
		g->w->hits++;
	else
		g->w->misses++;
}

/* Iterate while changing the map between steps (Go's contract). */
static void giter(struct gctx *g, struct sm_rng *r, const struct ss_sampler *ks, bool full)
{
	uint64_t n = cfg.keys;
	memset(g->ref.touched, 0, n);
	memset(g->ref.returned, 0, n);
	memcpy(g->ref.at_start, g->ref.present, n);
	struct gomap_iter it;
	gomap_iter_init(&it, g->m);
	uint64_t stop_after = full ? UINT64_MAX : 1 + sm_rng_next(r) % 4096;
	const void *key;
	size_t klen;
	void *val;
	uint64_t got = 0;
	bool stopped = false;
	while (gomap_iter_next(&it, &key, &klen, &val)) {
		uint64_t k = ss_key_index(key);
		if (klen != cfg.klen || k >= n || memcmp(key, ss_key(k), klen) != 0) {
			GFAIL(g, "iteration returned an unknown key");
			return;
		}
		if (g->ref.returned[k]) {
			GFAIL(g, "iteration returned key %" PRIu64 " twice", k);
			return;
		}
		g->ref.returned[k] = 1;
		if (!g->ref.present[k]) {
			GFAIL(g, "iteration returned key %" PRIu64 ", deleted before the iterator reached it", k);
			return;
		}
		if (val != g->ref.val[k]) {
			GFAIL(g, "iteration returned key %" PRIu64 " with %p, its current value is %p", k, val, g->ref.val[k]);
			return;
		}
		g->res.iter_keys++;
		if (++got >= stop_after) {
			stopped = true;
			break;
		}
		/* Change the map under the iterator: 1 step in 4; and 1 step
		 * in 1024, delete every key (a map with a random seed takes a
		 * new one when it becomes empty, and keys put back afterwards
		 * must still not come back a second time). */
		uint64_t x = sm_rng_next(r);
		if ((x >> 54) == 0 && !full) {
			for (uint64_t k2 = 0; k2 < n; k2++)
				if (g->ref.present[k2])
					gdel(g, k2, false);
		}
		if ((x & 3) == 0 && !full) {
			uint64_t k2 = ss_sample(ks, sm_rng_next(r));
			if (x & 4)
				gput(g, k2, x, false);
			else
				gdel(g, k2, false);
		}
	}
	g->res.iters++;
	if (stopped)
		return;
	for (uint64_t k = 0; k < n; k++)
		if (g->ref.at_start[k] && !g->ref.touched[k] && !g->ref.returned[k]) {
			GFAIL(g, "iteration missed key %" PRIu64 " (present and untouched throughout)", k);
			return;
		}
}

static void gstats(struct gctx *g)
{
	struct gomap_stats st;
	gomap_stats(g->m, &st);
	if (st.count != g->ref.count || gomap_len(g->m) != g->ref.count)
		GFAIL(g, "count %zu / len %zu, reference %" PRIu64, st.count, gomap_len(g->m), g->ref.count);
	if (st.B > g->res.max_B)
		g->res.max_B = st.B;
	if (st.overflow > g->res.max_overflow)
		g->res.max_overflow = st.overflow;
	if (st.tombstones > g->res.max_tombstones)
		g->res.max_tombstones = st.tombstones;
}

static void *gomap_thread(void *arg)
{
	struct ss_worker *w = arg;
	struct gctx g = {.w = w};
	uint64_t n = cfg.keys;
	g.m = gomap_new(&(struct gomap_options){.seed = cfg.map_seed});
	g.ref.val = calloc(n, sizeof(void *));
	g.ref.present = calloc(n, 1);
	g.ref.touched = calloc(n, 1);
	g.ref.returned = calloc(n, 1);
	g.ref.at_start = calloc(n, 1);
	if (!g.m || !g.ref.val || !g.ref.present || !g.ref.touched || !g.ref.returned || !g.ref.at_start) {
		ss_fail((int)w->id, "gomap: out of memory");
		return NULL;
	}
	sm_rng_seed(&w->rng, sm_splitmix64(cfg.seed + 0x9E3779B97F4A7C15ULL * (w->id + 1)));
	struct ss_sampler *ks = &run.shared_s;
	/* Prefill. */
	for (uint64_t k = 0; k < n && cfg.prefill > 0; k++)
		if ((double)(sm_rng_next(&w->rng) >> 11) / 9007199254740992.0 < cfg.prefill)
			gput(&g, k, sm_rng_next(&w->rng) | (1ULL << 63), false);
	atomic_fetch_add(&run.ready, 1);
	while (!atomic_load_explicit(&run.go, memory_order_acquire))
		sched_yield();
	w->started_ns = sm_now_ns();

	const uint64_t limit = cfg.ops ? cfg.ops : UINT64_MAX;
	unsigned level = 0;
	uint64_t i;
	for (i = 0; i < limit; i++) {
		if ((i & 63) == 0) {
			atomic_store_explicit(&w->ops_done, i, memory_order_relaxed);
			atomic_store_explicit(&w->live, g.ref.count, memory_order_relaxed);
			if (atomic_load_explicit(&ss_stop, memory_order_relaxed))
				break;
			if ((i & 1023) == 0) {
				if (run.levels > 1) {
					uint64_t ph = (i + cfg.wave / 4) % cfg.wave;
					double x = (double)ph / (double)cfg.wave;
					x = x < 0.5 ? 2 * x : 2 - 2 * x;
					level = (unsigned)(x * (run.levels - 1) + 0.5);
				}
				gstats(&g);
			}
		}
		uint64_t r1 = sm_rng_next(&w->rng), r2 = sm_rng_next(&w->rng), r3 = sm_rng_next(&w->rng);
		bool timed = (i % cfg.sample_every) == cfg.sample_every - 1;
		g.opi = i;
		uint64_t x = r1 & 0xffffffffu;
		int op = 0;
		while (op < OP__N - 1 && x >= run.mixtab[level][op])
			op++;
		bool ins = op == OP_STORE || op == OP_LOS || op == OP_SWAP || op == OP_CAS;
		uint64_t k = ins ? ss_insert_offset(n, i, r3, ks) : ss_sample(ks, r3);
		switch (op) {
		case OP_LOAD:
			gget(&g, k, timed);
			break;
		case OP_STORE: case OP_LOS: case OP_SWAP: case OP_CAS:
			op = OP_STORE;
			gput(&g, k, r2, timed);
			break;
		case OP_DELETE: case OP_LAD: case OP_CAD:
			op = OP_DELETE;
			gdel(&g, k, timed);
			break;
		case OP_RANGE: {
			struct sm_rng ir;
			sm_rng_seed(&ir, r2);
			uint64_t t0 = sm_now_ns();
			giter(&g, &ir, ks, (r2 >> 62) == 0);
			ss_lat_add(&w->lat[OP_RANGE], &w->rng, sm_now_ns() - t0);
			break;
		}
		case OP_CLEAR: {
			uint64_t t0 = sm_now_ns();
			gomap_clear(g.m);
			ss_lat_add(&w->lat[OP_CLEAR], &w->rng, sm_now_ns() - t0);
			memset(g.ref.present, 0, n);
			g.ref.count = 0;
			g.res.clears++;
			break;
		}
		case OP_LEN:
			if (gomap_len(g.m) != g.ref.count)
				GFAIL(&g, "len %zu, reference %" PRIu64, gomap_len(g.m), g.ref.count);
			break;
		}
		w->op_count[op]++;
	}
	atomic_store_explicit(&w->ops_done, i, memory_order_relaxed);
	w->finished_ns = sm_now_ns();
	atomic_fetch_add(&run.finished, 1);

	/* Final: every key, then one full iteration, then the shape. */
	for (uint64_t k = 0; k < n; k++)
		gget(&g, k, false);
	struct sm_rng ir;
	sm_rng_seed(&ir, 1);
	giter(&g, &ir, ks, true);
	gstats(&g);
	struct gomap_work wk;
	gomap_work(g.m, &wk);
	if (wk.max_evacuated > GOMAP_MAX_EVACUATE_PER_OP || wk.max_skipped > GOMAP_MAX_SKIP_PER_OP)
		GFAIL(&g, "max work per op: evacuated %zu, skipped %zu", wk.max_evacuated, wk.max_skipped);
	g.res.ops = i;
	g.res.grows = wk.grows;
	g.res.same_size_grows = wk.same_size_grows;
	g.res.shrinks = wk.shrinks;
	g.res.total_evacuated = wk.total_evacuated;
	g.res.max_evacuated = wk.max_evacuated;
	g.res.max_skipped = wk.max_skipped;
	g.res.final_len = gomap_len(g.m);
	g.res.bytes = wk.bytes;
	gomap_free(g.m);
	free(g.ref.val);
	free(g.ref.present);
	free(g.ref.touched);
	free(g.ref.returned);
	free(g.ref.at_start);

	pthread_mutex_lock(&res_mu);
	struct ss_gomap_result *R = &ss_gomap_res;
	R->ops += g.res.ops;
	R->iters += g.res.iters;
	R->iter_keys += g.res.iter_keys;
	R->clears += g.res.clears;
	R->grows += g.res.grows;
	R->same_size_grows += g.res.same_size_grows;
	R->shrinks += g.res.shrinks;
	R->total_evacuated += g.res.total_evacuated;
	R->final_len += g.res.final_len;
	R->bytes += g.res.bytes;
#define MAXF(f) if (g.res.f > R->f) R->f = g.res.f
	MAXF(max_evacuated);
	MAXF(max_skipped);
	MAXF(max_B);
	MAXF(max_overflow);
	MAXF(max_tombstones);
#undef MAXF
	pthread_mutex_unlock(&res_mu);
	return NULL;
}

int ss_gomap_run(void)
{
	for (unsigned t = 0; t < cfg.threads; t++)
		if (pthread_create(&run.w[t].tid, NULL, gomap_thread, &run.w[t]) != 0)
			return -1;
	return 0;
}
