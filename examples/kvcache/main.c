/*
 * main.c - kvcache: a memcached-protocol cache server on one syncmap.
 * Options, signals, start and clean shutdown.
 *
 * SPDX-License-Identifier: MIT
 *
 * SIGINT and SIGTERM are blocked in every thread and taken by the main
 * thread with sigwait, so no handler runs in the middle of anything: the
 * main thread then stops the workers (which close their connections), the
 * sweeper, and frees the store (every item through syncmap's free_value),
 * leaving nothing allocated behind (the ASAN check in tests/run).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "store.h"

#ifndef KVCACHE_VERSION
#define KVCACHE_VERSION "0"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvcache [options]\n"
		"A memcached-protocol (ASCII) cache server whose map is one syncmap.\n"
		"  -p, --port=PORT            TCP port (default 11211; 0: any free port)\n"
		"  -l, --listen=ADDR          address to listen on (default 127.0.0.1)\n"
		"  -t, --threads=N            worker threads, each with its own epoll loop (default 4)\n"
		"  -c, --conn-limit=N         simultaneous connections at most (default 1024)\n"
		"  -m, --memory-limit=MB      megabytes of items at most; 0: no limit (default 64).\n"
		"                             No eviction: past it, stores fail with\n"
		"                             SERVER_ERROR out of memory storing object\n"
		"  -I, --max-item-size=SIZE   largest item, bytes or with a k/m suffix (default 1m)\n"
		"  -b, --listen-backlog=N     listen() backlog (default 1024)\n"
		"      --accept=MODE          reuseport: a listening socket per worker (default);\n"
		"                             shared: one socket in every worker's epoll\n"
		"      --sweep-interval=SEC   seconds between sweeps for expired items (default 10)\n"
		"      --shards=N             syncmap shards, a power of two (default: syncmap's)\n"
		"      --port-file=PATH       write the port to PATH once listening\n"
		"  -V, --version              print the version and exit\n"
		"  -h, --help                 this help\n");
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "kvcache: %s: not a number in [%ld, %ld]: %s\n", opt, min, max, s);
		exit(2);
	}
	return v;
}

/* memcached's -I: bytes, or a number with a k or m suffix. */
static size_t parse_size(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned long long unit = 1;
	if (*end == 'k' || *end == 'K')
		unit = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		unit = 1024 * 1024, end++;
	if (errno || end == s || *end || v == 0 || v > (1ull << 30) / unit || v * unit < 1024) {
		fprintf(stderr, "kvcache: %s: a size from 1k to 1024m expected: %s\n", opt, s);
		exit(2);
	}
	return (size_t)(v * unit);
}

static int write_port_file(const char *path, int port)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path); /* readers never see a partial file */
}

int main(int argc, char **argv)
{
	enum { OPT_ACCEPT = 256, OPT_SWEEP, OPT_SHARDS, OPT_PORT_FILE };
	static const struct option longopts[] = {
		{"port", required_argument, NULL, 'p'},
		{"listen", required_argument, NULL, 'l'},
		{"threads", required_argument, NULL, 't'},
		{"conn-limit", required_argument, NULL, 'c'},
		{"memory-limit", required_argument, NULL, 'm'},
		{"max-item-size", required_argument, NULL, 'I'},
		{"listen-backlog", required_argument, NULL, 'b'},
		{"accept", required_argument, NULL, OPT_ACCEPT},
		{"sweep-interval", required_argument, NULL, OPT_SWEEP},
		{"shards", required_argument, NULL, OPT_SHARDS},
		{"port-file", required_argument, NULL, OPT_PORT_FILE},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct kv_server_config cfg = {
		.listen_addr = "127.0.0.1",
		.port = 11211,
		.threads = 4,
		.max_conns = 1024,
		.backlog = 1024,
		.accept_mode = KV_ACCEPT_REUSEPORT,
		.sweep_interval = 10,
		.mem_limit = 64u << 20,
		.item_size_max = 1u << 20,
		/* The memcached release whose protocol dialect this is: clients
		 * read the number (memccapable expects 1.6's answers to
		 * "version foo" and "quit foo" only from 1.6 on). */
		.version = "1.6.18-kvcache-" KVCACHE_VERSION,
	};
	unsigned shards = 0;
	const char *port_file = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "p:l:t:c:m:I:b:Vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			cfg.port = (int)parse_long("-p", optarg, 0, 65535);
			break;
		case 'l':
			cfg.listen_addr = optarg;
			break;
		case 't':
			cfg.threads = (int)parse_long("-t", optarg, 1, 256);
			break;
		case 'c':
			cfg.max_conns = (int)parse_long("-c", optarg, 1, 1 << 20);
			break;
		case 'm':
			cfg.mem_limit = (size_t)parse_long("-m", optarg, 0, 1 << 22) << 20;
			break;
		case 'I':
			cfg.item_size_max = parse_size("-I", optarg);
			break;
		case 'b':
			cfg.backlog = (int)parse_long("-b", optarg, 1, INT_MAX);
			break;
		case OPT_ACCEPT:
			if (strcmp(optarg, "reuseport") == 0)
				cfg.accept_mode = KV_ACCEPT_REUSEPORT;
			else if (strcmp(optarg, "shared") == 0)
				cfg.accept_mode = KV_ACCEPT_SHARED;
			else {
				fprintf(stderr, "kvcache: --accept: reuseport or shared, not %s\n", optarg);
				return 2;
			}
			break;
		case OPT_SWEEP:
			cfg.sweep_interval = (unsigned)parse_long("--sweep-interval", optarg, 1, 86400);
			break;
		case OPT_SHARDS:
			shards = (unsigned)parse_long("--shards", optarg, 0, SYNCMAP_MAX_SHARDS);
			break;
		case OPT_PORT_FILE:
			port_file = optarg;
			break;
		case 'V':
			printf("kvcache %s (syncmap %s)\n", cfg.version, syncmap_version());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvcache: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	/* Before any thread exists, so that they all inherit the mask (liburcu's
	 * call_rcu thread too): only sigwait below sees these. */
	sigset_t stop_signals;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct kv_store *store = kv_store_new(&(struct kv_store_options){
		.mem_limit = cfg.mem_limit,
		.item_size_max = cfg.item_size_max,
		.shards = shards,
	});
	if (!store) {
		fprintf(stderr, "kvcache: cannot make the store: %s\n", strerror(errno));
		return 1;
	}
	struct kv_server *srv = kv_server_start(&cfg, store);
	if (!srv) {
		kv_store_free(store);
		return 1;
	}
	fprintf(stderr, "kvcache %s (syncmap %s): listening on %s port %d, %d threads, -m %zu MB, -c %d, accept %s\n",
		cfg.version, syncmap_version(), cfg.listen_addr, kv_server_port(srv), cfg.threads, cfg.mem_limit >> 20,
		cfg.max_conns, cfg.accept_mode == KV_ACCEPT_SHARED ? "shared" : "reuseport");
	if (port_file && write_port_file(port_file, kv_server_port(srv)) != 0) {
		fprintf(stderr, "kvcache: --port-file %s: %s\n", port_file, strerror(errno));
		kv_server_stop(srv);
		kv_store_free(store);
		return 1;
	}

	int sig = 0;
	while (sigwait(&stop_signals, &sig) != 0)
		;
	fprintf(stderr, "kvcache: %s: shutting down\n", strsignal(sig));
	kv_server_stop(srv);
	kv_store_free(store);
	return 0;
}
