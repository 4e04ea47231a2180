/*
 * main.c - syncmap-stress: set up, run, watch, verify, report.
 *
 * SPDX-License-Identifier: MIT
 *
 * Exit status: 0 all checks passed; 1 a check failed (the seed and the
 * command that reproduces the run are printed); 2 bad usage; 130
 * interrupted (the checks still ran).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

static void on_signal(int sig)
{
	(void)sig;
	ss_interrupted = 1;
	atomic_store(&ss_stop, true);
}

/* A crash (a broken map often segfaults before any check can fire) still
 * says how to reproduce it.  Not under ASAN/TSAN (SS_SANITIZED): their
 * reports are better and they own these signals. */

static char fatal_msg[4096];
static size_t fatal_len;

#if !SS_SANITIZED
static void on_fatal(int sig)
{
	(void)sig;
	ssize_t r = write(STDERR_FILENO, fatal_msg, fatal_len);
	(void)r;
	/* SA_RESETHAND: returning re-raises with the default action. */
}
#endif

static void install_fatal_handlers(void)
{
	int n = snprintf(fatal_msg, sizeof(fatal_msg),
			 "\nsyncmap-stress: FAIL: fatal signal (crash or abort), seed %" PRIu64 "\nreproduce: %s\n",
			 cfg.seed, ss_reproduce_line());
	fatal_len = n > 0 && (size_t)n < sizeof(fatal_msg) ? (size_t)n : 0;
#if !SS_SANITIZED
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
#endif
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		fprintf(stderr, "syncmap-stress: out of memory\n");
		exit(1);
	}
	return p;
}

static void setup_workers(void)
{
	run.w = aligned_alloc(SS_CACHELINE, ((cfg.threads * sizeof(struct ss_worker) + SS_CACHELINE - 1) / SS_CACHELINE) * SS_CACHELINE);
	if (!run.w) {
		fprintf(stderr, "syncmap-stress: out of memory\n");
		exit(1);
	}
	memset(run.w, 0, cfg.threads * sizeof(struct ss_worker));
	for (unsigned t = 0; t < cfg.threads; t++) {
		struct ss_worker *w = &run.w[t];
		w->id = t;
		if (cfg.workload == WL_GOMAP)
			continue;
		w->own = xcalloc(cfg.owned, sizeof(*w->own));
		w->mono = xcalloc((size_t)cfg.threads * cfg.owned, sizeof(*w->mono));
		w->seen_bits = xcalloc((cfg.keys + 63) / 64, sizeof(uint64_t));
		w->range_own = xcalloc(cfg.owned, sizeof(uint32_t));
	}
}

static void free_workers(void)
{
	for (unsigned t = 0; t < cfg.threads; t++) {
		struct ss_worker *w = &run.w[t];
		free(w->own);
		free(w->mono);
		free(w->seen_bits);
		free(w->range_own);
		free(w->held);
		for (int op = 0; op < OP__N; op++)
			free(w->lat[op].v);
	}
	free(run.w);
}

int main(int argc, char **argv)
{
	int rc = ss_parse_options(argc, argv);
	if (rc)
		return rc;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	install_fatal_handlers();
	fprintf(stderr, "syncmap-stress: %s\n", ss_config_line());
	fprintf(stderr, "syncmap-stress: seed %" PRIu64 "; reproduce: %s\n", cfg.seed, ss_reproduce_line());
	if (ss_keys_build() != 0)
		return 1;
	if (cfg.dist == DIST_COLLIDE)
		fprintf(stderr, "syncmap-stress: collide: %u groups of %u keys, %u shared low hash bits + tophash, %.2f s\n",
			ss_keyinfo.collide_groups, cfg.collide_group, ss_keyinfo.collide_bits, ss_keyinfo.gen_seconds);
	run.shared_base = (uint64_t)cfg.threads * cfg.owned;
	run.shared_n = cfg.keys - run.shared_base;
	ss_sampler_init(&run.shared_s, run.shared_n);
	ss_sampler_init(&run.own_s, cfg.owned ? cfg.owned : 1);
	ss_mix_build();
	if (cfg.slide > 0 && (cfg.workload == WL_CHURN || cfg.workload == WL_GOMAP)) {
		uint64_t n = run.shared_n;
		uint64_t win = (uint64_t)(cfg.slide * (double)n);
		ss_sampler_init(&run.slide_s, win ? win : 1);
		run.slide_period = cfg.wave ? 2 * cfg.wave : 16 * n;
	}
	setup_workers();

	if (cfg.workload == WL_GOMAP) {
		if (ss_gomap_run() != 0) {
			fprintf(stderr, "syncmap-stress: pthread_create failed\n");
			return 1;
		}
	} else {
		ss_values_init();
		struct syncmap_options opts = {
			.free_value = cfg.reclaim ? ss_free_value : NULL,
			.seed = cfg.map_seed,
			.shards = cfg.shards,
		};
		run.map = syncmap_new(&opts);
		if (!run.map) {
			fprintf(stderr, "syncmap-stress: syncmap_new failed\n");
			return 1;
		}
		for (unsigned t = 0; t < cfg.threads; t++)
			if (pthread_create(&run.w[t].tid, NULL, ss_worker_main, &run.w[t]) != 0) {
				fprintf(stderr, "syncmap-stress: pthread_create failed\n");
				return 1;
			}
	}

	/* Start everyone at once, after the prefill. */
	while (atomic_load(&run.ready) < cfg.threads)
		usleep(1000);
	run.start_ns = sm_now_ns();
	atomic_store_explicit(&run.go, true, memory_order_release);

	double next_tick = 1.0, next_fork = cfg.fork_every;
	for (;;) {
		usleep(20000);
		double el = (double)(sm_now_ns() - run.start_ns) / 1e9;
		if (atomic_load(&ss_stop) || atomic_load(&run.finished) == cfg.threads)
			break;
		if (!cfg.ops && el >= cfg.duration)
			break;
		if (cfg.fork_every > 0 && run.map && el >= next_fork) {
			ss_fork_once(el);
			/* From the child's end: slow children (sanitizers) must not
			 * make forks back to back. */
			next_fork = (double)(sm_now_ns() - run.start_ns) / 1e9 + cfg.fork_every;
			continue;
		}
		if (el >= next_tick) {
			ss_progress_tick(el, false);
			next_tick += 1.0;
			if (run.map) {
				struct syncmap_stats st;
				syncmap_stats(run.map, &st);
				if (st.max_locked_work > SYNCMAP_MAX_LOCKED_WORK)
					SS_FAIL("stats.max_locked_work %" PRIu64 " exceeds SYNCMAP_MAX_LOCKED_WORK (%d)",
						st.max_locked_work, SYNCMAP_MAX_LOCKED_WORK);
				if (st.max_locked_key_bytes > SYNCMAP_MAX_LOCKED_KEY_BYTES)
					SS_FAIL("stats.max_locked_key_bytes %" PRIu64 " exceeds SYNCMAP_MAX_LOCKED_KEY_BYTES (%d)",
						st.max_locked_key_bytes, SYNCMAP_MAX_LOCKED_KEY_BYTES);
			}
		}
	}
	atomic_store(&ss_stop, true);
	for (unsigned t = 0; t < cfg.threads; t++)
		pthread_join(run.w[t].tid, NULL);
	run.end_ns = sm_now_ns();
	double elapsed = (double)(run.end_ns - run.start_ns) / 1e9;
	ss_progress_tick(elapsed, true);

	if (run.map) {
		ss_verify_syncmap();
		syncmap_stats(run.map, &ss_final_stats);
		syncmap_free(run.map);
		run.map = NULL;
		ss_verify_after_free();
	}
	ss_report_final(elapsed);
	free_workers();
	ss_keys_free();
	free(run.mixtab);
	free(run.shared_s.thresh);
	free(run.shared_s.alias);
	free(run.own_s.thresh);
	free(run.own_s.alias);
	free(run.slide_s.thresh);
	free(run.slide_s.alias);
	if (atomic_load(&ss_failures))
		return 1;
	return ss_interrupted ? 130 : 0;
}
