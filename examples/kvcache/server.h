/*
 * server.h - kvcache's network side: listening sockets, worker threads
 * each running its own epoll loop over non-blocking connections, and the
 * sweeper thread that removes expired items.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KV_SERVER_H
#define KV_SERVER_H

#include <stddef.h>

#include "store.h"

/*
 * How connections reach the workers.  Measured with the 64 connections
 * memcaslap opens at once, 2 workers ("STAT worker_connections"):
 * reuseport 30/34, 32/32, 31/33; shared 1/63, 64/0, 62/2 (the worker that
 * wakes first keeps the level-triggered listener readable and takes the
 * burst, one accept per wake-up or not).  Hence reuseport by default.
 */
enum kv_accept_mode {
	/* Each worker has its own listening socket on the same port
	 * (SO_REUSEPORT): the kernel spreads connections by hash. */
	KV_ACCEPT_REUSEPORT,
	/* One listening socket in every worker's epoll (EPOLLEXCLUSIVE), one
	 * accept per wake-up. */
	KV_ACCEPT_SHARED,
};

struct kv_server_config {
	const char *listen_addr; /* numeric address or host name */
	int port;                /* 0: any free port (see kv_server_port) */
	int threads;             /* worker threads */
	int max_conns;           /* open connections at most */
	int backlog;             /* listen() backlog */
	enum kv_accept_mode accept_mode;
	unsigned sweep_interval; /* seconds between expiry sweeps */
	size_t mem_limit;        /* for "stats" (the store enforces it) */
	size_t item_size_max;    /* for "stats settings" */
	const char *version;     /* the VERSION reply */
};

struct kv_server;

/* Listen and start the threads.  NULL on failure, with a message on stderr. */
struct kv_server *kv_server_start(const struct kv_server_config *cfg, struct kv_store *store);
/* The port listened on. */
int kv_server_port(const struct kv_server *srv);
/* Stop every thread, close every connection, free everything (the store is
 * the caller's). */
void kv_server_stop(struct kv_server *srv);

#endif /* KV_SERVER_H */
