/*
 * report.c - failures, the progress line, the final report (text or JSON).
 *
 * SPDX-License-Identifier: MIT
 *
 * Progress goes to stderr once a second: a line rewritten in place on a
 * terminal, plain lines otherwise.  The final report goes to stdout (text,
 * or JSON with --json) and ends, liburcu style, with one SUMMARY line and
 * the command that reproduces the run.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "stress.h"

atomic_bool ss_stop;
atomic_ulong ss_failures;
int ss_child_mode;
char ss_child_reason[384];
struct syncmap_stats ss_final_stats;
volatile int ss_interrupted;

#define FAIL_PRINT_MAX 20

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static bool live_line_shown; /* a progress line without newline is on screen */
static char first_failure[512];

void ss_fail(int who, const char *fmt, ...)
{
	unsigned long n = atomic_fetch_add(&ss_failures, 1) + 1;
	atomic_store(&ss_stop, true);
	if (ss_child_mode) {
		/* A forked child: a worker may have held out_mu or stderr's lock
		 * at the fork instant.  Keep the first reason only. */
		if (!ss_child_reason[0]) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(ss_child_reason, sizeof(ss_child_reason), fmt, ap);
			va_end(ap);
			if (!ss_child_reason[0])
				snprintf(ss_child_reason, sizeof(ss_child_reason), "(failure)");
		}
		return;
	}
	if (n > FAIL_PRINT_MAX + 1)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&out_mu);
	if (live_line_shown) {
		fputs("\r\033[K", stderr);
		live_line_shown = false;
	}
	if (n == 1)
		snprintf(first_failure, sizeof(first_failure), "%s", msg);
	if (n <= FAIL_PRINT_MAX) {
		if (who >= 0)
			fprintf(stderr, "FAIL [thread %d]: %s\n", who, msg);
		else
			fprintf(stderr, "FAIL: %s\n", msg);
	} else {
		fprintf(stderr, "FAIL: (further failures counted, not printed)\n");
	}
	fflush(stderr);
	pthread_mutex_unlock(&out_mu);
}

uint64_t ss_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size, rss;
	uint64_t r = 0;
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &rss) == 2)
			r = (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
	return r;
}

static uint64_t peak_rss(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_maxrss * 1024;
}

static uint64_t total_ops(void)
{
	uint64_t n = 0;
	for (unsigned t = 0; t < cfg.threads; t++)
		n += atomic_load_explicit(&run.w[t].ops_done, memory_order_relaxed);
	return n;
}

static void human(char *buf, size_t n, double v)
{
	if (v >= 1e9)
		snprintf(buf, n, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, n, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, n, "%.1fk", v / 1e3);
	else
		snprintf(buf, n, "%.0f", v);
}

void ss_progress_tick(double elapsed, bool final)
{
	static uint64_t last_ops;
	static double last_t;
	if (!cfg.progress)
		return;
	uint64_t ops = total_ops();
	double dt = elapsed - last_t;
	double rate = dt > 0 ? (double)(ops - last_ops) / dt : 0;
	last_ops = ops;
	last_t = elapsed;
	char line[320], r[16], o[16], tl[32];
	human(r, sizeof(r), rate);
	human(o, sizeof(o), (double)ops);
	if (cfg.ops)
		snprintf(tl, sizeof(tl), "%5.1fs", elapsed);
	else
		snprintf(tl, sizeof(tl), "%5.1fs/%.0fs", elapsed, cfg.duration);
	double rss = (double)ss_rss_bytes() / 1048576.0;
	if (run.map) {
		struct syncmap_stats st;
		syncmap_stats(run.map, &st);
		snprintf(line, sizeof(line),
			 "[%s] %s ops/s  ops %s  live %zu  promotions %" PRIu64 "  misses %" PRIu64
			 "  pending %" PRIu64 "  rss %.0f MiB  failures %lu",
			 tl, r, o, st.len, st.promotions, st.misses, st.pending_reclaim, rss, atomic_load(&ss_failures));
	} else {
		uint64_t live = 0;
		for (unsigned t = 0; t < cfg.threads; t++)
			live += atomic_load_explicit(&run.w[t].live, memory_order_relaxed);
		snprintf(line, sizeof(line), "[%s] %s ops/s  ops %s  live %" PRIu64 " (all maps)  rss %.0f MiB  failures %lu",
			 tl, r, o, live, rss, atomic_load(&ss_failures));
	}
	pthread_mutex_lock(&out_mu);
	if (cfg.progress == 2) {
		fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
		live_line_shown = !final;
	} else {
		fprintf(stderr, "%s\n", line);
	}
	fflush(stderr);
	pthread_mutex_unlock(&out_mu);
}

/* ---- final report --------------------------------------------------------- */

struct lat_summary {
	uint64_t count; /* ops of this kind */
	struct sm_pct p;
};

static void latencies(struct lat_summary out[OP__N + 1])
{
	size_t all_n = 0;
	for (int op = 0; op < OP__N; op++)
		for (unsigned t = 0; t < cfg.threads; t++)
			all_n += run.w[t].lat[op].n;
	uint64_t *all = malloc((all_n ? all_n : 1) * sizeof(uint64_t));
	size_t all_i = 0;
	for (int op = 0; op < OP__N; op++) {
		size_t n = 0;
		out[op].count = 0;
		for (unsigned t = 0; t < cfg.threads; t++) {
			n += run.w[t].lat[op].n;
			out[op].count += run.w[t].op_count[op];
		}
		uint64_t *v = malloc((n ? n : 1) * sizeof(uint64_t));
		size_t i = 0;
		for (unsigned t = 0; t < cfg.threads; t++) {
			if (run.w[t].lat[op].n)
				memcpy(v + i, run.w[t].lat[op].v, run.w[t].lat[op].n * sizeof(uint64_t));
			i += run.w[t].lat[op].n;
		}
		if (all && n) {
			memcpy(all + all_i, v, n * sizeof(uint64_t));
			all_i += n;
		}
		out[op].p = sm_percentiles(v, n);
		free(v);
	}
	out[OP__N].count = 0;
	for (int op = 0; op < OP__N; op++)
		out[OP__N].count += out[op].count;
	out[OP__N].p = all ? sm_percentiles(all, all_i) : (struct sm_pct){0};
	free(all);
}

static const char *result_word(void)
{
	if (atomic_load(&ss_failures))
		return "FAIL";
	return ss_interrupted ? "INTERRUPTED" : "PASS";
}

/* What the workers saw, summed over threads (both report formats). */
struct observed {
	uint64_t hits, misses, range_keys, clears;
};

static struct observed observed_totals(void)
{
	struct observed o = {0};
	for (unsigned t = 0; t < cfg.threads; t++) {
		o.hits += run.w[t].hits;
		o.misses += run.w[t].misses;
		o.range_keys += run.w[t].range_keys;
		o.clears += run.w[t].clears;
	}
	return o;
}

static int64_t leaked(void)
{
	if (cfg.workload == WL_GOMAP || !cfg.reclaim)
		return 0;
	return (int64_t)(ss_ver.made - ss_ver.freed - ss_ver.tool_freed - ss_ver.discarded);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void report_json(double elapsed, uint64_t ops, struct lat_summary lat[OP__N + 1])
{
	FILE *f = stdout;
	const struct syncmap_stats *st = &ss_final_stats;
	fprintf(f, "{\n  \"tool\": \"syncmap-stress\",\n  \"result\": \"%s\",\n", result_word());
	fprintf(f, "  \"failures\": %lu,\n  \"first_failure\": ", atomic_load(&ss_failures));
	json_str(f, first_failure);
	fprintf(f, ",\n  \"seed\": %" PRIu64 ",\n  \"map_seed\": %" PRIu64 ",\n  \"reproduce\": ", cfg.seed, cfg.map_seed);
	json_str(f, ss_reproduce_line());
	fprintf(f, ",\n  \"config\": {\"workload\": \"%s\", \"dist\": \"%s\", \"threads\": %u, \"duration_s\": %g, "
		   "\"ops_per_thread\": %" PRIu64 ", \"keys\": %" PRIu64 ", \"owned_per_thread\": %" PRIu64
		   ", \"key_len\": %u, \"reclaim\": %s, \"zipf_s\": %g, \"prefill\": %g, \"wave\": %" PRIu64
		   ", \"section_ops\": %u, \"sample_every\": %u, \"quarantine\": %zu, \"shards\": %u, \"owner\": \"%s\", \"fork_every_s\": %g, \"mix\": {",
		ss_workload_names[cfg.workload], ss_dist_names[cfg.dist], cfg.threads, cfg.duration, cfg.ops, cfg.keys,
		cfg.owned, cfg.klen, cfg.reclaim ? "true" : "false", cfg.zipf_s, cfg.prefill, cfg.wave, cfg.section_ops,
		cfg.sample_every, cfg.quarantine, cfg.shards, cfg.owner_caller ? "caller" : "map", cfg.fork_every);
	bool first = true;
	for (int op = 0; op < OP__N; op++)
		if (cfg.mix[op] > 0) {
			fprintf(f, "%s\"%s\": %g", first ? "" : ", ", ss_op_names[op], cfg.mix[op]);
			first = false;
		}
	fprintf(f, "}},\n");
	if (cfg.dist == DIST_COLLIDE)
		fprintf(f, "  \"collide\": {\"bits\": %u, \"groups\": %u, \"group_size\": %u, \"hashes\": %" PRIu64
			   ", \"seconds\": %.3f},\n",
			ss_keyinfo.collide_bits, ss_keyinfo.collide_groups, cfg.collide_group, ss_keyinfo.hashes,
			ss_keyinfo.gen_seconds);
	fprintf(f, "  \"elapsed_s\": %.3f,\n  \"ops\": %" PRIu64 ",\n  \"ops_per_s\": %.0f,\n", elapsed, ops,
		elapsed > 0 ? (double)ops / elapsed : 0.0);
	fprintf(f, "  \"latency_sample_every\": %u,\n  \"ops_by_type\": {", cfg.sample_every);
	first = true;
	for (int op = 0; op <= OP__N; op++) {
		if (op < OP__N && !lat[op].count)
			continue;
		fprintf(f, "%s\n    \"%s\": {\"count\": %" PRIu64 ", \"samples\": %" PRIu64 ", \"p50_ns\": %" PRIu64
			   ", \"p99_ns\": %" PRIu64 ", \"p999_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64 "}",
			first ? "" : ",", op < OP__N ? ss_op_names[op] : "all", lat[op].count, lat[op].p.n, lat[op].p.p50,
			lat[op].p.p99, lat[op].p.p999, lat[op].p.max);
		first = false;
	}
	fprintf(f, "\n  },\n");
	if (cfg.workload == WL_GOMAP) {
		const struct ss_gomap_result *g = &ss_gomap_res;
		fprintf(f, "  \"gomap\": {\"iterations\": %" PRIu64 ", \"iterated_keys\": %" PRIu64 ", \"clears\": %" PRIu64
			   ", \"grows\": %" PRIu64 ", \"same_size_grows\": %" PRIu64 ", \"shrinks\": %" PRIu64
			   ", \"total_evacuated\": %" PRIu64 ", \"max_evacuated_per_op\": %" PRIu64
			   ", \"max_skipped_per_op\": %" PRIu64 ", \"max_B\": %" PRIu64 ", \"max_overflow\": %" PRIu64
			   ", \"max_tombstones\": %" PRIu64 ", \"final_len\": %" PRIu64 ", \"bytes_at_end\": %" PRIu64 "},\n",
			g->iters, g->iter_keys, g->clears, g->grows, g->same_size_grows, g->shrinks, g->total_evacuated,
			g->max_evacuated, g->max_skipped, g->max_B, g->max_overflow, g->max_tombstones, g->final_len, g->bytes);
	} else {
		fprintf(f, "  \"stats\": {\"len\": %zu, \"shards\": %u, \"shards_used\": %u, \"read_keys\": %zu, "
			   "\"dirty_keys\": %zu, \"amended\": %s, \"building\": %s, \"promotions\": %" PRIu64
			   ", \"misses\": %" PRIu64 ", \"locked_ops\": %" PRIu64 ", \"max_locked_work\": %" PRIu64
			   ", \"max_locked_key_bytes\": %" PRIu64 ", \"entries\": %" PRIu64 ", \"pending_reclaim\": %" PRIu64
			   ", \"pending_bytes\": %" PRIu64 ", \"reclaim_waits\": %" PRIu64 "},\n",
			st->len, st->shards, st->shards_used, st->read_keys, st->dirty_keys, st->amended ? "true" : "false",
			st->building ? "true" : "false", st->promotions, st->misses, st->locked_ops, st->max_locked_work,
			st->max_locked_key_bytes, st->entries, st->pending_reclaim, st->pending_bytes, st->reclaim_waits);
		struct observed o = observed_totals();
		if (cfg.fork_every > 0) {
			const struct ss_fork_stats *k = &ss_fork_stats;
			fprintf(f, "  \"fork\": {\"every_s\": %g, \"children\": %" PRIu64 ", \"failed\": %" PRIu64
				   ", \"mean_child_s\": %.3f, \"max_child_s\": %.3f, \"inherited_keys_checked\": %" PRIu64
				   ", \"own_ops\": %" PRIu64 ", \"cleared_inherited\": %" PRIu64 ", \"new_map_values\": %" PRIu64
				   ", \"max_new_map_reclaim_s\": %.3f, \"max_inherited_free_s\": %.3f, \"slowest_stage_s\": %.3f"
				   ", \"slowest_stage\": ",
				cfg.fork_every, k->children, k->failed, k->children ? k->total_s / (double)k->children : 0.0,
				k->max_s, k->inherited_present, k->own_ops, k->cleared, k->new_values, k->max_new_reclaim_s,
				k->max_free_s, k->slowest_stage_s);
			json_str(f, k->slowest_stage ? k->slowest_stage : "");
			fprintf(f, "},\n");
		}
		if (cfg.owner_caller)
			fprintf(f, "  \"owner_caller\": {\"taken\": %" PRIu64 ", \"taken_null\": %" PRIu64 ", \"retired\": %" PRIu64
				   ", \"retired_null\": %" PRIu64 ", \"retire_enomem\": %" PRIu64 ", \"freed_by_tool\": %" PRIu64
				   ", \"held_null\": %" PRIu64 ", \"moved\": %" PRIu64 ", \"moved_null\": %" PRIu64
				   ", \"synchronize_calls\": %" PRIu64 ", \"synchronize_mean_ns\": %" PRIu64
				   ", \"synchronize_max_ns\": %" PRIu64 "},\n",
				ss_ver.taken, ss_ver.taken_null, ss_ver.retired, ss_ver.retired_null, ss_ver.retire_enomem,
				ss_ver.tool_freed, ss_ver.kept_null, ss_ver.moved, ss_ver.moved_null, ss_ver.syncs,
				ss_ver.syncs ? ss_ver.sync_ns_total / ss_ver.syncs : 0, ss_ver.sync_ns_max);
		fprintf(f, "  \"observed\": {\"load_hits\": %" PRIu64 ", \"load_misses\": %" PRIu64
			   ", \"range_keys\": %" PRIu64 ", \"clears\": %" PRIu64 "},\n",
			o.hits, o.misses, o.range_keys, o.clears);
		fprintf(f, "  \"values\": {\"made\": %" PRIu64 ", \"freed_by_map\": %" PRIu64 ", \"freed_by_tool\": %" PRIu64
			   ", \"discarded_by_tool\": %" PRIu64 ", \"null_stored\": %" PRIu64 ", \"null_freed\": %" PRIu64
			   ", \"in_map_at_free\": %" PRIu64 ", \"double_frees\": %lu, \"poison_broken\": %lu, \"leaked\": %" PRId64
			   "},\n",
			ss_ver.made, ss_ver.freed, ss_ver.tool_freed, ss_ver.discarded, ss_ver.stored_null, ss_ver.freed_null,
			ss_ver.in_map_at_free, atomic_load(&ss_vc.double_frees), atomic_load(&ss_vc.poison_broken), leaked());
		fprintf(f, "  \"final_checks\": {\"owned_keys\": %" PRIu64 ", \"scanned\": %" PRIu64 ", \"present\": %" PRIu64
			   ", \"present_null\": %" PRIu64 ", \"range_visited\": %" PRIu64 ", \"len\": %" PRIu64
			   ", \"stats_ok\": %s, \"reclaim_wait_s\": %.3f},\n",
			ss_ver.owned_checked, ss_ver.scanned, ss_ver.present, ss_ver.present_null, ss_ver.range_visited,
			ss_ver.len_at_end, ss_ver.stats_ok ? "true" : "false", ss_ver.pending_wait_s);
	}
	fprintf(f, "  \"peak_rss_bytes\": %" PRIu64 "\n}\n", peak_rss());
}

static void report_text(double elapsed, uint64_t ops, struct lat_summary lat[OP__N + 1])
{
	FILE *f = stdout;
	const struct syncmap_stats *st = &ss_final_stats;
	char r[16];
	human(r, sizeof(r), elapsed > 0 ? (double)ops / elapsed : 0);
	fprintf(f, "syncmap-stress: %s", result_word());
	if (atomic_load(&ss_failures))
		fprintf(f, " (%lu failures; first: %s)", atomic_load(&ss_failures), first_failure);
	fprintf(f, "\n  run       %s\n", ss_config_line());
	char ms[40];
	if (cfg.map_seed)
		snprintf(ms, sizeof(ms), "0x%016" PRIx64, cfg.map_seed);
	else
		snprintf(ms, sizeof(ms), "random");
	fprintf(f, "  seed      %" PRIu64 " (map seed %s): replays the keys and each thread's op sequence,\n"
		   "            not the interleaving of threads\n",
		cfg.seed, ms);
	if (cfg.dist == DIST_COLLIDE)
		fprintf(f, "  keys      collide: %" PRIu64 " keys in %u groups of %u; a group shares %u low hash bits and the tophash\n"
			   "            (found in %.2f s, %" PRIu64 " hashes)\n",
			cfg.keys, ss_keyinfo.collide_groups, cfg.collide_group, ss_keyinfo.collide_bits, ss_keyinfo.gen_seconds,
			ss_keyinfo.hashes);
	fprintf(f, "  time      %.2f s, %" PRIu64 " ops, %s ops/s\n", elapsed, ops, r);
	fprintf(f, "  latency   ns; every %u%s op of each thread timed, and every range and clear (the map\n"
		   "            call only)\n",
		cfg.sample_every, cfg.sample_every == 1 ? "" : "th");
	fprintf(f, "            %-16s %12s %8s %8s %8s %10s\n", "op", "count", "p50", "p99", "p99.9", "max");
	for (int op = 0; op <= OP__N; op++) {
		if (op < OP__N && !lat[op].count)
			continue;
		fprintf(f, "            %-16s %12" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %10" PRIu64 "\n",
			op < OP__N ? ss_op_names[op] : "all", lat[op].count, lat[op].p.p50, lat[op].p.p99, lat[op].p.p999,
			lat[op].p.max);
	}
	if (cfg.workload == WL_GOMAP) {
		const struct ss_gomap_result *g = &ss_gomap_res;
		fprintf(f, "  gomap     grows %" PRIu64 ", same-size grows %" PRIu64 ", shrinks %" PRIu64
			   ", evacuated %" PRIu64 " buckets (max per op %" PRIu64 ", skipped max %" PRIu64 ")\n"
			   "            max B %" PRIu64 ", max overflow buckets %" PRIu64 ", max tombstones %" PRIu64
			   ", clears %" PRIu64 "\n"
			   "            iterations %" PRIu64 " (%" PRIu64 " keys), final len %" PRIu64 " (sum over maps), %" PRIu64
			   " bytes held\n",
			g->grows, g->same_size_grows, g->shrinks, g->total_evacuated, g->max_evacuated, g->max_skipped,
			g->max_B, g->max_overflow, g->max_tombstones, g->clears, g->iters, g->iter_keys, g->final_len, g->bytes);
	} else {
		struct observed o = observed_totals();
		fprintf(f, "  map       shards %u (%u used), len %zu, read_keys %zu, dirty_keys %zu, promotions %" PRIu64
			   ", misses %" PRIu64 ", locked_ops %" PRIu64 "\n"
			   "            max_locked_work %" PRIu64 " (bound %d), max_locked_key_bytes %" PRIu64
			   " (bound %d), entries %" PRIu64 "\n"
			   "            pending_reclaim %" PRIu64 ", pending_bytes %" PRIu64 ", reclaim_waits %" PRIu64 "\n",
			st->shards, st->shards_used, st->len, st->read_keys, st->dirty_keys, st->promotions, st->misses,
			st->locked_ops, st->max_locked_work, SYNCMAP_MAX_LOCKED_WORK, st->max_locked_key_bytes,
			SYNCMAP_MAX_LOCKED_KEY_BYTES, st->entries, st->pending_reclaim, st->pending_bytes, st->reclaim_waits);
		fprintf(f, "  observed  load hits %" PRIu64 ", misses %" PRIu64 ", range keys %" PRIu64 ", clears %" PRIu64 "\n",
			o.hits, o.misses, o.range_keys, o.clears);
		if (cfg.fork_every > 0) {
			const struct ss_fork_stats *k = &ss_fork_stats;
			fprintf(f, "  fork      %" PRIu64 " %s (every %g s while the workers ran), %" PRIu64
				   " failed; child mean %.2f s, max %.2f s\n"
				   "            they checked %" PRIu64 " inherited keys, %" PRIu64
				   " exact ops on their own keys; %" PRIu64 " cleared the inherited map;\n"
				   "            %" PRIu64 " values through new maps (max %.3f s until all retired were freed);\n"
				   "            syncmap_free of the inherited map max %.3f s; slowest stage %.2f s: %s\n",
				k->children, k->children == 1 ? "child" : "children", cfg.fork_every, k->failed,
				k->children ? k->total_s / (double)k->children : 0.0, k->max_s, k->inherited_present, k->own_ops,
				k->cleared, k->new_values, k->max_new_reclaim_s, k->max_free_s, k->slowest_stage_s,
				k->slowest_stage ? k->slowest_stage : "-");
		}
		if (cfg.owner_caller)
			fprintf(f, "  owner     caller: delete and load_and_delete were syncmap_take; %" PRIu64
				   " values handed over (%" PRIu64 " NULL):\n"
				   "            %" PRIu64 " retired (syncmap_retire; %" PRIu64 " refused with -ENOMEM and held instead),\n"
				   "            %" PRIu64 " freed by the tool (%" PRIu64 " NULL) after %" PRIu64
				   " syncmap_synchronize (mean %.2f ms, max %.2f ms),\n"
				   "            %" PRIu64 " moved to another owned key (%" PRIu64 " NULL)\n",
				ss_ver.taken, ss_ver.taken_null, ss_ver.retired, ss_ver.retire_enomem, ss_ver.kept,
				ss_ver.kept_null, ss_ver.syncs,
				ss_ver.syncs ? (double)ss_ver.sync_ns_total / (double)ss_ver.syncs / 1e6 : 0.0,
				(double)ss_ver.sync_ns_max / 1e6, ss_ver.moved, ss_ver.moved_null);
		if (cfg.reclaim)
			fprintf(f, "  values    made %" PRIu64 ", freed by the map %" PRIu64 ", freed by the tool %" PRIu64
				   ", discarded by the tool %" PRIu64 ", in the map at free %" PRIu64 "\n"
				   "            NULL stored %" PRIu64 " / freed %" PRIu64 ", double frees %lu, poison broken %lu, leaked %" PRId64 "\n",
				ss_ver.made, ss_ver.freed, ss_ver.tool_freed, ss_ver.discarded, ss_ver.in_map_at_free,
				ss_ver.stored_null, ss_ver.freed_null, atomic_load(&ss_vc.double_frees),
				atomic_load(&ss_vc.poison_broken), leaked());
		else
			fprintf(f, "  values    tagged words (reclaim off): nothing to free\n");
		fprintf(f, "  checked   at the end: %" PRIu64 " owned keys exact, %" PRIu64 " keys loaded (%" PRIu64
			   " present), range visited %" PRIu64 ", len %" PRIu64 ", stats %s\n",
			ss_ver.owned_checked, ss_ver.scanned, ss_ver.present, ss_ver.range_visited, ss_ver.len_at_end,
			ss_ver.stats_ok ? "reconciled" : "NOT reconciled");
	}
	fprintf(f, "  memory    peak rss %.0f MiB\n", (double)peak_rss() / 1048576.0);
}

void ss_report_final(double elapsed)
{
	uint64_t ops = total_ops();
	struct lat_summary lat[OP__N + 1];
	latencies(lat);
	if (cfg.json)
		report_json(elapsed, ops, lat);
	else
		report_text(elapsed, ops, lat);
	FILE *f = cfg.json ? stderr : stdout;
	fprintf(f, "SUMMARY syncmap-stress %s/%s threads=%u duration=%.1fs ops=%" PRIu64 " ops/s=%.0f failures=%lu leaked=%" PRId64
		   " seed=%" PRIu64 " result=%s\n",
		ss_workload_names[cfg.workload], ss_dist_names[cfg.dist], cfg.threads, elapsed, ops,
		elapsed > 0 ? (double)ops / elapsed : 0.0, atomic_load(&ss_failures), leaked(), cfg.seed, result_word());
	fprintf(f, "reproduce: %s\n", ss_reproduce_line());
	fflush(stdout);
	if (atomic_load(&ss_failures) && !cfg.json && !isatty(STDOUT_FILENO)) {
		/* stdout may be a log nobody reads first: say it on stderr too. */
		fprintf(stderr, "syncmap-stress: FAIL (%lu failures), seed %" PRIu64 "\nreproduce: %s\n",
			atomic_load(&ss_failures), cfg.seed, ss_reproduce_line());
	}
}
