/*
 * verify.c - the end of a syncmap run: the map must hold exactly what the
 * threads left in it, and every value must be freed exactly once.
 *
 * SPDX-License-Identifier: MIT
 *
 * After the workers have joined (no op in flight):
 *   1. wait until no reclamation is pending (stats.pending_reclaim == 0), so
 *      len is exact even after clears that raced with writers;
 *   2. every owned key holds exactly what its owner predicts;
 *   3. a load of every key: each value intact and filed under its key;
 *      len == the number of keys found;
 *   4. a full range: each key visited once, the same keys and values the
 *      loads found;
 *   5. stats after that range (which promoted any dirty map): not amended,
 *      no dirty map, len == keys found, entries allocated == snapshot keys
 *      once the old snapshot is reclaimed (no entry leaked or freed twice),
 *      misses <= locked critical sections, max_locked_work within
 *      SYNCMAP_MAX_LOCKED_WORK, max_locked_key_bytes within
 *      SYNCMAP_MAX_LOCKED_KEY_BYTES, nothing pending, the shard count
 *      asked for (all of these are sums or maxima over the shards, and
 *      the range promoted every shard first);
 *   6. reclamation on: values made - discarded - freed by the map - freed
 *      by the tool == non-NULL values in the map, NULL values stored + NULL
 *      retired - NULL passed to free_value - NULL taken == NULL values in
 *      the map; with --owner caller, every value syncmap_take handed over
 *      was disposed of exactly once (retired, freed by the tool, or moved);
 * and after syncmap_free:
 *   7. made == freed + tool-freed + discarded, every NULL that entered the
 *      map left it once (free_value or take), no double free, and every
 *      quarantined value's poison intact.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "syncmap.h"
#include "stress.h"

struct ss_verify ss_ver;

/* Wait for every queued grace-period callback; false on timeout. */
static bool wait_reclaim(double limit_s)
{
	uint64_t t0 = sm_now_ns();
	struct syncmap_stats st;
	for (;;) {
		syncmap_stats(run.map, &st);
		if (st.pending_reclaim == 0)
			break;
		if ((double)(sm_now_ns() - t0) / 1e9 > limit_s) {
			SS_FAIL("reclamation stuck: %" PRIu64 " callbacks still pending after %.0f s", st.pending_reclaim,
				limit_s);
			return false;
		}
		usleep(1000);
	}
	ss_ver.pending_wait_s += (double)(sm_now_ns() - t0) / 1e9;
	return true;
}

static void check_owned(void)
{
	struct ss_seen s;
	uint64_t epoch = atomic_load(&run.clear_epoch);
	for (unsigned t = 0; t < cfg.threads; t++) {
		struct ss_worker *w = &run.w[t];
		for (uint64_t j = 0; j < cfg.owned; j++) {
			uint64_t key = (uint64_t)t * cfg.owned + j;
			struct ss_own *st = &w->own[j];
			void *v = NULL;
			bool found = syncmap_load(run.map, ss_key(key), cfg.klen, &v);
			ss_ver.owned_checked++;
			if (found && !ss_value_check(-1, "final load", key, v, true, &s))
				continue;
			/* A clear since the owner's last op on the key may have removed it. */
			bool maybe_absent = st->maybe_absent || st->epoch != ss_clears_started(epoch);
			bool ok = found ? st->present && v == st->v : !st->present || maybe_absent;
			if (!ok)
				SS_FAIL("final state of key %" PRIu64 " (owned by thread %u): expected %s %p%s, found %s %p", key, t,
					st->present ? "value" : "absent", st->v,
					maybe_absent ? " (or absent after a clear)" : "", found ? "value" : "absent", v);
		}
	}
}

struct final_range {
	uint64_t *bits;
	void **vals;
	uint64_t visited;
};

static bool final_range_fn(const void *key, size_t klen, void *val, void *arg)
{
	struct final_range *fr = arg;
	struct ss_seen s;
	uint64_t idx = klen == cfg.klen ? ss_key_index(key) : UINT64_MAX;
	if (idx >= cfg.keys || memcmp(key, ss_key(idx), klen) != 0) {
		SS_FAIL("final range returned an unknown key (%zu bytes)", klen);
		return true;
	}
	if (fr->bits[idx >> 6] & (1ULL << (idx & 63))) {
		SS_FAIL("final range visited key %" PRIu64 " twice", idx);
		return true;
	}
	fr->bits[idx >> 6] |= 1ULL << (idx & 63);
	fr->visited++;
	if (!ss_value_check(-1, "final range", idx, val, idx < run.shared_base, &s))
		return true;
	if (fr->vals && fr->vals[idx] != val)
		SS_FAIL("final range gave key %" PRIu64 " value %p, a load gave %p", idx, val, fr->vals[idx]);
	return true;
}

void ss_verify_syncmap(void)
{
	struct syncmap *m = run.map;
	struct ss_seen s;
	wait_reclaim(120);
	check_owned();

	/* Load every key. */
	size_t words = (cfg.keys + 63) / 64;
	uint64_t *present = calloc(words, sizeof(uint64_t));
	void **vals = cfg.keys <= (1u << 26) ? malloc(cfg.keys * sizeof(void *)) : NULL;
	if (!present) {
		SS_FAIL("out of memory for the final scan");
		return;
	}
	syncmap_read_lock();
	for (uint64_t i = 0; i < cfg.keys; i++) {
		void *v = NULL;
		ss_ver.scanned++;
		if (syncmap_load(m, ss_key(i), cfg.klen, &v)) {
			present[i >> 6] |= 1ULL << (i & 63);
			ss_ver.present++;
			if (!v)
				ss_ver.present_null++;
			ss_value_check(-1, "final load", i, v, i < run.shared_base, &s);
		}
		if (vals)
			vals[i] = v;
	}
	syncmap_read_unlock();
	size_t len = syncmap_len(m);
	ss_ver.len_at_end = len;
	if (len != ss_ver.present)
		SS_FAIL("syncmap_len is %zu at rest, but %" PRIu64 " keys are present", len, ss_ver.present);

	/* One full range: the same keys and values. */
	struct final_range fr = {.bits = calloc(words, sizeof(uint64_t)), .vals = vals};
	if (!fr.bits) {
		SS_FAIL("out of memory for the final range");
		return;
	}
	syncmap_read_lock();
	syncmap_range(m, final_range_fn, &fr);
	syncmap_read_unlock();
	ss_ver.range_visited = fr.visited;
	for (size_t i = 0; i < words; i++)
		if (fr.bits[i] != present[i]) {
			uint64_t diff = fr.bits[i] ^ present[i];
			uint64_t k = i * 64 + (uint64_t)__builtin_ctzll(diff);
			SS_FAIL("final range and loads disagree on key %" PRIu64 " (range: %s, load: %s)", k,
				fr.bits[i] & (diff & -diff) ? "visited" : "not visited",
				present[i] & (diff & -diff) ? "present" : "absent");
			break;
		}
	free(fr.bits);
	free(present);
	free(vals);

	/* Stats, once the snapshot replaced by the range's promotion is gone. */
	wait_reclaim(120);
	struct syncmap_stats st;
	syncmap_stats(m, &st);
	ss_ver.stats_ok = true;
#define STAT_CHECK(cond, ...)                     \
	do {                                      \
		if (!(cond)) {                    \
			SS_FAIL(__VA_ARGS__);     \
			ss_ver.stats_ok = false;  \
		}                                 \
	} while (0)
	STAT_CHECK(st.len == ss_ver.present, "stats.len %zu != %" PRIu64 " keys present", st.len, ss_ver.present);
	STAT_CHECK(!st.amended && st.dirty_keys == 0 && !st.building,
		   "after a range at rest: amended %d, dirty_keys %zu, building %d (range promotes the dirty map)",
		   st.amended, st.dirty_keys, st.building);
	STAT_CHECK(st.read_keys >= st.len, "stats.read_keys %zu < len %zu", st.read_keys, st.len);
	STAT_CHECK(st.entries == st.read_keys,
		   "stats.entries %" PRIu64 " != read_keys %zu at rest after promotion: entries leaked or freed twice",
		   st.entries, st.read_keys);
	STAT_CHECK(st.misses <= st.locked_ops, "stats.misses %" PRIu64 " > locked_ops %" PRIu64, st.misses,
		   st.locked_ops);
	STAT_CHECK(st.max_locked_work <= SYNCMAP_MAX_LOCKED_WORK,
		   "stats.max_locked_work %" PRIu64 " exceeds SYNCMAP_MAX_LOCKED_WORK (%d)", st.max_locked_work,
		   SYNCMAP_MAX_LOCKED_WORK);
	STAT_CHECK(st.max_locked_key_bytes <= SYNCMAP_MAX_LOCKED_KEY_BYTES,
		   "stats.max_locked_key_bytes %" PRIu64 " exceeds SYNCMAP_MAX_LOCKED_KEY_BYTES (%d)",
		   st.max_locked_key_bytes, SYNCMAP_MAX_LOCKED_KEY_BYTES);
	STAT_CHECK(st.pending_reclaim == 0 && st.pending_bytes == 0,
		   "stats.pending_reclaim %" PRIu64 ", pending_bytes %" PRIu64 " at rest", st.pending_reclaim,
		   st.pending_bytes);
	/* The shard count asked for (or the automatic one), and only shards
	 * that exist can have been written.  Every other stat above is a sum
	 * over shards, and the range promoted every shard before walking. */
	STAT_CHECK(st.shards == ss_shards_effective() && st.shards_used <= st.shards &&
			   (st.len == 0 || st.shards_used > 0),
		   "stats.shards %u (expected %u), shards_used %u, len %zu", st.shards, ss_shards_effective(),
		   st.shards_used, st.len);

	/* Values: what the threads made, minus what went back, is what the map holds. */
	for (unsigned t = 0; t < cfg.threads; t++) {
		const struct ss_worker *w = &run.w[t];
		ss_ver.made += w->made;
		ss_ver.discarded += w->discarded;
		ss_ver.stored_null += w->stored_null;
		ss_ver.taken += w->taken;
		ss_ver.taken_null += w->taken_null;
		ss_ver.retired += w->retired;
		ss_ver.retired_null += w->retired_null;
		ss_ver.retire_enomem += w->retire_enomem;
		ss_ver.kept += w->kept;
		ss_ver.kept_null += w->kept_null;
		ss_ver.moved += w->moved;
		ss_ver.moved_null += w->moved_null;
		ss_ver.syncs += w->syncs;
		ss_ver.sync_ns_total += w->sync_ns_total;
		if (w->sync_ns_max > ss_ver.sync_ns_max)
			ss_ver.sync_ns_max = w->sync_ns_max;
		/* The tool's own books: each handed-over value went one way. */
		STAT_CHECK(w->nheld == 0 && w->taken == w->retired + w->kept + w->moved &&
				   w->taken_null == w->retired_null + w->kept_null + w->moved_null,
			   "thread %u: %" PRIu64 " values taken (%" PRIu64 " NULL), but %" PRIu64 " retired + %" PRIu64
			   " freed by the tool + %" PRIu64 " moved, %zu still held",
			   t, w->taken, w->taken_null, w->retired, w->kept, w->moved, w->nheld);
	}
	if (cfg.reclaim) {
		uint64_t freed = atomic_load(&ss_vc.freed), freed_null = atomic_load(&ss_vc.freed_null);
		uint64_t tool_freed = atomic_load(&ss_vc.tool_freed);
		uint64_t live = ss_ver.present - ss_ver.present_null;
		STAT_CHECK(tool_freed == ss_ver.kept - ss_ver.kept_null,
			   "the tool freed %" PRIu64 " values after syncmap_synchronize, but held %" PRIu64 " non-NULL ones",
			   tool_freed, ss_ver.kept - ss_ver.kept_null);
		STAT_CHECK(ss_ver.made - ss_ver.discarded - freed - tool_freed == live,
			   "values: made %" PRIu64 " - discarded %" PRIu64 " - freed by the map %" PRIu64
			   " - freed by the tool %" PRIu64 " = %" PRId64 ", but the map holds %" PRIu64
			   " (leaked or freed early/twice)",
			   ss_ver.made, ss_ver.discarded, freed, tool_freed,
			   (int64_t)(ss_ver.made - ss_ver.discarded - freed - tool_freed), live);
		STAT_CHECK(ss_ver.stored_null + ss_ver.retired_null - freed_null - ss_ver.taken_null == ss_ver.present_null,
			   "NULL values: stored %" PRIu64 " + retired %" PRIu64 " - freed %" PRIu64 " - taken %" PRIu64
			   " != %" PRIu64 " present",
			   ss_ver.stored_null, ss_ver.retired_null, freed_null, ss_ver.taken_null, ss_ver.present_null);
	}
#undef STAT_CHECK
	ss_ver.in_map_at_free = ss_ver.present;
}

void ss_verify_after_free(void)
{
	ss_ver.freed = atomic_load(&ss_vc.freed);
	ss_ver.freed_null = atomic_load(&ss_vc.freed_null);
	ss_ver.tool_freed = atomic_load(&ss_vc.tool_freed);
	if (!cfg.reclaim)
		return;
	uint64_t gone = ss_ver.freed + ss_ver.tool_freed + ss_ver.discarded;
	if (ss_ver.made != gone)
		SS_FAIL("after syncmap_free: %" PRIu64 " values made, %" PRIu64 " freed by the map + %" PRIu64
			" freed by the tool after syncmap_synchronize + %" PRIu64 " never stored: %" PRId64 " %s",
			ss_ver.made, ss_ver.freed, ss_ver.tool_freed, ss_ver.discarded, (int64_t)(ss_ver.made - gone),
			ss_ver.made > gone ? "leaked" : "freed too often");
	if (ss_ver.stored_null + ss_ver.retired_null != ss_ver.freed_null + ss_ver.taken_null)
		SS_FAIL("after syncmap_free: %" PRIu64 " NULL values stored + %" PRIu64 " retired, but %" PRIu64
			" passed to free_value + %" PRIu64 " taken",
			ss_ver.stored_null, ss_ver.retired_null, ss_ver.freed_null, ss_ver.taken_null);
	if (atomic_load(&ss_vc.double_frees) || atomic_load(&ss_vc.bad_frees))
		SS_FAIL("free_value: %lu double frees, %lu bad frees", atomic_load(&ss_vc.double_frees),
			atomic_load(&ss_vc.bad_frees));
	ss_quarantine_drain();
	if (atomic_load(&ss_vc.evicted) != ss_ver.freed + ss_ver.tool_freed)
		SS_FAIL("quarantine: %lu values really freed, %" PRIu64 " passed to free_value + %" PRIu64
			" freed by the tool", atomic_load(&ss_vc.evicted), ss_ver.freed, ss_ver.tool_freed);
}
