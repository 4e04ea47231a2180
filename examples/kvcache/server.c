/*
 * server.c - listening sockets, epoll worker threads, connections, the
 * sweeper thread, and the server's "stats" (see server.h).
 *
 * SPDX-License-Identifier: MIT
 *
 * Each connection belongs to one worker for its whole life, so nothing
 * about it is shared: its buffers and session are touched by that thread
 * only.  What threads share is the store (syncmap: lock-free reads), the
 * connection count and the stats baseline, all C11 atomics or behind a
 * mutex.
 *
 * A connection's cycle: readable -> recv into its input buffer -> the
 * session runs every complete command, appending replies to the output
 * buffer -> one send of all of them.  epoll is level-triggered and its
 * interest is changed only when a send would block: then the connection
 * waits for EPOLLOUT with EPOLLIN off (a client that does not read its
 * replies stops being read), and returns to EPOLLIN once drained.  So the
 * usual request costs recv + send, no epoll_ctl.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "counters.h"
#include "session.h"
#include "stats.h"

/* Free input space asked for before each recv. */
#define READ_SPACE 16384
/* Buffers bigger than these are given back once empty (a big multi-get or
 * value passed through; keep idle connections small). */
#define IN_KEEP (64 * 1024)
#define OUT_KEEP (1024 * 1024)
/* recv rounds per readable event before letting other connections run. */
#define READ_ROUNDS 4
#define MAX_EVENTS 256

struct kv_worker;

struct kv_conn {
	int fd;
	struct kv_worker *worker;
	struct kv_conn *prev, *next; /* the worker's list of connections */
	struct kv_buf in;            /* received, not yet consumed */
	struct kv_buf out;           /* replies; out_sent of them sent */
	size_t out_sent;
	bool waiting_to_send;        /* interest is EPOLLOUT (not EPOLLIN) */
	bool quitting;               /* close once out is sent */
	struct kv_session session;
};

struct kv_worker {
	struct kv_server *srv;
	pthread_t thread;
	bool started;
	int epfd;
	int wake_fd;         /* eventfd: stop */
	int listen_fd;       /* its own (reuseport) or the shared one */
	int spare_fd;        /* given up to shed a connection when out of fds */
	struct kv_conn *conns;
	struct kv_session_env env;
	struct kv_counters counters;
	_Atomic uint64_t total_connections;
	_Atomic int curr_connections; /* written by this worker only */
};

struct kv_server {
	struct kv_server_config cfg;
	struct kv_store *store;
	int port;
	int shared_listen_fd;
	int nworkers;
	struct kv_worker *workers;
	_Atomic int curr_conns;
	_Atomic uint64_t rejected_connections;
	time_t started;
	/* "stats reset": counters are reported relative to this baseline
	 * (workers' counters have a single writer each and are never reset). */
	pthread_mutex_t stats_lock;
	uint64_t baseline[KV_NCOUNTERS];
	/* sweeper */
	pthread_t sweeper;
	bool sweeper_started;
	pthread_mutex_t sweep_lock;
	pthread_cond_t sweep_cond;
	bool sweep_stop;
};

/* epoll tags for the two descriptors that are not connections. */
static char tag_listen, tag_wake;

static void warn_errno(const char *what)
{
	fprintf(stderr, "kvcache: %s: %s\n", what, strerror(errno));
}

/* ---- connections -------------------------------------------------------- */

static void conn_close(struct kv_conn *c)
{
	struct kv_worker *w = c->worker;
	close(c->fd); /* also leaves the epoll set */
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	kv_session_destroy(&c->session);
	kv_buf_free(&c->in);
	kv_buf_free(&c->out);
	free(c);
	atomic_fetch_sub_explicit(&w->srv->curr_conns, 1, memory_order_relaxed);
	atomic_store_explicit(&w->curr_connections,
			      atomic_load_explicit(&w->curr_connections, memory_order_relaxed) - 1,
			      memory_order_relaxed);
}

static bool set_interest(struct kv_conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	return epoll_ctl(c->worker->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0;
}

/* Send what is pending.  false: the connection is broken (close it). */
static bool conn_flush(struct kv_conn *c)
{
	while (c->out_sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_sent += (size_t)n;
			kv_count(&c->worker->counters, KV_C_bytes_written, (uint64_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->waiting_to_send) {
				if (!set_interest(c, EPOLLOUT))
					return false;
				c->waiting_to_send = true;
			}
			return true;
		}
		return false;
	}
	c->out.len = 0;
	c->out_sent = 0;
	kv_buf_shrink(&c->out, OUT_KEEP);
	if (c->waiting_to_send) {
		if (!set_interest(c, EPOLLIN))
			return false;
		c->waiting_to_send = false;
	}
	return true;
}

/*
 * Run the buffered commands and send the replies.  false: close now
 * (broken, or the session said so).
 */
static bool conn_run(struct kv_conn *c)
{
	for (;;) {
		enum kv_session_status status;
		size_t used = kv_session_process(&c->session, c->in.data, c->in.len, &c->out, &status);
		kv_buf_consume(&c->in, used);
		if (status == KV_CLOSE) {
			/* Send the replies of the commands before (what memcached
			 * has usually sent by then), without waiting, and hang up. */
			(void)conn_flush(c);
			return false;
		}
		if (!conn_flush(c))
			return false;
		if (status == KV_QUIT) {
			c->quitting = true;
			return c->waiting_to_send; /* close now if all was sent */
		}
		/* Paused at the output high-water mark and everything went out:
		 * carry on with the buffered commands. */
		if (status == KV_OUTPUT_FULL && !c->waiting_to_send)
			continue;
		break;
	}
	kv_buf_shrink(&c->in, IN_KEEP);
	return true;
}

static bool conn_readable(struct kv_conn *c)
{
	for (int round = 0; round < READ_ROUNDS; round++) {
		if (kv_buf_reserve(&c->in, READ_SPACE))
			return false;
		size_t space = c->in.cap - c->in.len;
		ssize_t n = recv(c->fd, c->in.data + c->in.len, space, 0);
		if (n == 0)
			return false; /* the client is gone: so is a half-received command */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK;
		}
		c->in.len += (size_t)n;
		kv_count(&c->worker->counters, KV_C_bytes_read, (uint64_t)n);
		if (!conn_run(c))
			return false;
		if (c->waiting_to_send || c->quitting || (size_t)n < space)
			break; /* blocked on output, done, or the socket is drained */
	}
	return true;
}

static bool conn_writable(struct kv_conn *c)
{
	if (!conn_flush(c))
		return false;
	if (c->waiting_to_send)
		return true;
	if (c->quitting)
		return false;
	/* Output drained: run the commands that waited for it. */
	return c->in.len == 0 || conn_run(c);
}

static void conn_event(struct kv_conn *c, uint32_t events)
{
	bool ok;
	if (c->waiting_to_send)
		ok = (events & (EPOLLERR | EPOLLHUP)) ? false : conn_writable(c);
	else
		ok = conn_readable(c);
	if (!ok)
		conn_close(c);
}

static void conn_open(struct kv_worker *w, int fd)
{
	struct kv_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		atomic_fetch_sub_explicit(&w->srv->curr_conns, 1, memory_order_relaxed);
		return;
	}
	c->fd = fd;
	c->worker = w;
	kv_session_init(&c->session, &w->env);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		warn_errno("epoll_ctl");
		close(fd);
		kv_session_destroy(&c->session);
		free(c);
		atomic_fetch_sub_explicit(&w->srv->curr_conns, 1, memory_order_relaxed);
		return;
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	atomic_fetch_add_explicit(&w->total_connections, 1, memory_order_relaxed);
	atomic_store_explicit(&w->curr_connections,
			      atomic_load_explicit(&w->curr_connections, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* ---- accepting ---------------------------------------------------------- */

/*
 * Out of file descriptors with a connection waiting: give up the spare
 * descriptor, accept the connection and close it at once, so that the
 * level-triggered listener does not spin and the client learns at once.
 */
static void shed_one(struct kv_worker *w)
{
	if (w->spare_fd < 0)
		return;
	close(w->spare_fd);
	int fd = accept(w->listen_fd, NULL, NULL);
	if (fd >= 0)
		close(fd);
	atomic_fetch_add_explicit(&w->srv->rejected_connections, 1, memory_order_relaxed);
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_some(struct kv_worker *w)
{
	struct kv_server *srv = w->srv;
	/* Shared listener: one per wake-up, so that a burst of connections is
	 * spread over the workers rather than taken by the first awake. */
	int batch = srv->cfg.accept_mode == KV_ACCEPT_SHARED ? 1 : 64;
	for (int i = 0; i < batch; i++) {
		int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				shed_one(w);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				warn_errno("accept");
			return;
		}
		if (atomic_fetch_add_explicit(&srv->curr_conns, 1, memory_order_relaxed) >= srv->cfg.max_conns) {
			/* memcached's words for it. */
			static const char msg[] = "ERROR Too many open connections\r\n";
			atomic_fetch_sub_explicit(&srv->curr_conns, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&srv->rejected_connections, 1, memory_order_relaxed);
			(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_open(w, fd);
	}
}

/* ---- workers ------------------------------------------------------------ */

static void *worker_main(void *arg)
{
	struct kv_worker *w = arg;
	struct epoll_event events[MAX_EVENTS];
	bool stop = false;

	while (!stop) {
		int n = epoll_wait(w->epfd, events, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			warn_errno("epoll_wait");
			break;
		}
		for (int i = 0; i < n; i++) {
			void *tag = events[i].data.ptr;
			if (tag == &tag_wake)
				stop = true;
			else if (tag == &tag_listen)
				accept_some(w);
			else
				conn_event(tag, events[i].events);
		}
	}
	while (w->conns)
		conn_close(w->conns);
	return NULL;
}

static int listen_socket(const struct kv_server_config *cfg, int port, bool reuseport)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = getaddrinfo(cfg->listen_addr, portstr, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, "kvcache: %s: %s\n", cfg->listen_addr, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		warn_errno("socket");
		freeaddrinfo(ai);
		return -1;
	}
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
		warn_errno("SO_REUSEPORT");
		goto fail;
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		fprintf(stderr, "kvcache: bind %s:%d: %s\n", cfg->listen_addr, port, strerror(errno));
		goto fail;
	}
	freeaddrinfo(ai);
	return fd;
fail:
	close(fd);
	freeaddrinfo(ai);
	return -1;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static bool add_to_epoll(int epfd, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = {.events = events, .data.ptr = tag};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		warn_errno("epoll_ctl");
		return false;
	}
	return true;
}

/* ---- stats -------------------------------------------------------------- */

static void counter_sums(struct kv_server *srv, uint64_t sums[KV_NCOUNTERS])
{
	memset(sums, 0, sizeof(uint64_t) * KV_NCOUNTERS);
	for (int i = 0; i < srv->nworkers; i++)
		for (int c = 0; c < KV_NCOUNTERS; c++)
			sums[c] += atomic_load_explicit(&srv->workers[i].counters.v[c], memory_order_relaxed);
}

static int stats_general(struct kv_server *srv, struct kv_buf *out)
{
	uint64_t sums[KV_NCOUNTERS], total_conns = 0;
	struct rusage ru;
	time_t now = time(NULL);
	counter_sums(srv, sums);
	pthread_mutex_lock(&srv->stats_lock);
	for (int c = 0; c < KV_NCOUNTERS; c++)
		sums[c] -= srv->baseline[c];
	pthread_mutex_unlock(&srv->stats_lock);
	for (int i = 0; i < srv->nworkers; i++)
		total_conns += atomic_load_explicit(&srv->workers[i].total_connections, memory_order_relaxed);
	getrusage(RUSAGE_SELF, &ru);
	int err = 0;
	err |= kv_stat(out, "pid", "%ld", (long)getpid());
	err |= kv_stat(out, "uptime", "%ld", (long)(now - srv->started));
	err |= kv_stat(out, "time", "%ld", (long)now);
	err |= kv_stat(out, "version", "%s", srv->cfg.version);
	err |= kv_stat(out, "libsyncmap_version", "%s", syncmap_version());
	err |= kv_stat(out, "pointer_size", "%d", (int)(8 * sizeof(void *)));
	err |= kv_stat(out, "rusage_user", "%ld.%06ld", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
	err |= kv_stat(out, "rusage_system", "%ld.%06ld", (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
	err |= kv_stat(out, "max_connections", "%d", srv->cfg.max_conns);
	err |= kv_stat(out, "curr_connections", "%d", atomic_load_explicit(&srv->curr_conns, memory_order_relaxed));
	err |= kv_stat(out, "total_connections", "%" PRIu64, total_conns);
	err |= kv_stat(out, "rejected_connections", "%" PRIu64,
		       atomic_load_explicit(&srv->rejected_connections, memory_order_relaxed));
	err |= kv_stat(out, "threads", "%d", srv->nworkers);
	/* how the accept mode spread the connections over the workers */
	char split[256];
	size_t len = 0;
	for (int i = 0; i < srv->nworkers && len < sizeof(split) - 12; i++)
		len += (size_t)snprintf(split + len, sizeof(split) - len, "%s%d", i ? "/" : "",
					atomic_load_explicit(&srv->workers[i].curr_connections, memory_order_relaxed));
	err |= kv_stat(out, "worker_connections", "%s", split);
	err |= kv_stats_counters(out, sums);
	err |= kv_stats_store(out, srv->store, srv->cfg.mem_limit);
	return err ? -ENOMEM : KV_STATS_END;
}

static int stats_settings(struct kv_server *srv, struct kv_buf *out)
{
	const struct kv_server_config *cfg = &srv->cfg;
	int err = 0;
	err |= kv_stat(out, "maxbytes", "%zu", cfg->mem_limit);
	err |= kv_stat(out, "maxconns", "%d", cfg->max_conns);
	err |= kv_stat(out, "tcpport", "%d", srv->port);
	err |= kv_stat(out, "interface", "%s", cfg->listen_addr);
	err |= kv_stat(out, "num_threads", "%d", srv->nworkers);
	err |= kv_stat(out, "tcp_backlog", "%d", cfg->backlog);
	err |= kv_stat(out, "item_size_max", "%zu", cfg->item_size_max);
	err |= kv_stat(out, "evictions", "off");
	err |= kv_stat(out, "cas_enabled", "yes");
	err |= kv_stat(out, "accept_mode", "%s", cfg->accept_mode == KV_ACCEPT_SHARED ? "shared" : "reuseport");
	err |= kv_stat(out, "sweep_interval", "%u", cfg->sweep_interval);
	return err ? -ENOMEM : KV_STATS_END;
}

static int server_stats(void *ctx, const char *arg, struct kv_buf *out)
{
	struct kv_server *srv = ctx;
	if (!arg)
		return stats_general(srv, out);
	if (strcmp(arg, "reset") == 0) {
		uint64_t sums[KV_NCOUNTERS];
		counter_sums(srv, sums);
		pthread_mutex_lock(&srv->stats_lock);
		memcpy(srv->baseline, sums, sizeof(sums));
		pthread_mutex_unlock(&srv->stats_lock);
		return KV_STATS_RESET;
	}
	if (strcmp(arg, "settings") == 0)
		return stats_settings(srv, out);
	return KV_STATS_UNKNOWN; /* items, slabs, sizes, conns...: memcached-only */
}

/* ---- sweeper ------------------------------------------------------------ */

static void *sweeper_main(void *arg)
{
	struct kv_server *srv = arg;
	time_t last = time(NULL);
	pthread_mutex_lock(&srv->sweep_lock);
	while (!srv->sweep_stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&srv->sweep_cond, &srv->sweep_lock, &until);
		if (srv->sweep_stop)
			break;
		time_t now = time(NULL);
		if (now - last < (time_t)srv->cfg.sweep_interval || !kv_store_sweep_useful(srv->store))
			continue;
		last = now;
		pthread_mutex_unlock(&srv->sweep_lock);
		kv_store_sweep(srv->store);
		pthread_mutex_lock(&srv->sweep_lock);
	}
	pthread_mutex_unlock(&srv->sweep_lock);
	return NULL;
}

/* ---- start, stop -------------------------------------------------------- */

/* Enough descriptors for max_conns: raise the soft limit (up to the hard one). */
static void raise_fd_limit(int max_conns, int threads)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_conns + 16 + 4 * (rlim_t)threads;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
		fprintf(stderr, "kvcache: warning: file descriptor limit %llu is below the %llu that -c %d needs\n",
			(unsigned long long)rl.rlim_cur, (unsigned long long)want, max_conns);
}

struct kv_server *kv_server_start(const struct kv_server_config *cfg, struct kv_store *store)
{
	struct kv_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return NULL;
	srv->cfg = *cfg;
	srv->store = store;
	srv->shared_listen_fd = -1;
	srv->started = time(NULL);
	pthread_mutex_init(&srv->stats_lock, NULL);
	pthread_mutex_init(&srv->sweep_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->sweep_cond, &ca);
	pthread_condattr_destroy(&ca);
	raise_fd_limit(cfg->max_conns, cfg->threads);

	srv->workers = calloc((size_t)cfg->threads, sizeof(*srv->workers));
	if (!srv->workers)
		goto fail;
	for (int i = 0; i < cfg->threads; i++) {
		struct kv_worker *w = &srv->workers[i];
		w->epfd = w->wake_fd = w->listen_fd = w->spare_fd = -1;
	}
	srv->nworkers = cfg->threads;

	bool reuseport = cfg->accept_mode == KV_ACCEPT_REUSEPORT;
	/* Reuseport sockets would share the port with anyone's reuseport
	 * sockets (same user): make sure it is free first.  This one also
	 * learns the port when asked for any (-p 0). */
	int first = listen_socket(cfg, cfg->port, false);
	if (first < 0)
		goto fail;
	srv->port = bound_port(first);
	if (reuseport) {
		close(first);
	} else {
		if (listen(first, cfg->backlog) != 0) {
			warn_errno("listen");
			close(first);
			goto fail;
		}
		srv->shared_listen_fd = first;
	}

	for (int i = 0; i < cfg->threads; i++) {
		struct kv_worker *w = &srv->workers[i];
		w->srv = srv;
		w->env = (struct kv_session_env){.store = store, .counters = &w->counters,
						 .stats = server_stats, .stats_ctx = srv, .version = cfg->version};
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (w->epfd < 0 || w->wake_fd < 0) {
			warn_errno("epoll/eventfd");
			goto fail;
		}
		if (reuseport) {
			w->listen_fd = listen_socket(cfg, srv->port, true);
			if (w->listen_fd < 0)
				goto fail;
			if (listen(w->listen_fd, cfg->backlog) != 0) {
				warn_errno("listen");
				goto fail;
			}
		} else {
			w->listen_fd = srv->shared_listen_fd;
		}
		if (!add_to_epoll(w->epfd, w->wake_fd, EPOLLIN, &tag_wake) ||
		    !add_to_epoll(w->epfd, w->listen_fd, reuseport ? EPOLLIN : EPOLLIN | EPOLLEXCLUSIVE, &tag_listen))
			goto fail;
	}
	for (int i = 0; i < cfg->threads; i++) {
		struct kv_worker *w = &srv->workers[i];
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			fprintf(stderr, "kvcache: cannot start worker threads\n");
			goto fail;
		}
		w->started = true;
	}
	if (pthread_create(&srv->sweeper, NULL, sweeper_main, srv) != 0) {
		fprintf(stderr, "kvcache: cannot start the sweeper thread\n");
		goto fail;
	}
	srv->sweeper_started = true;
	return srv;
fail:
	kv_server_stop(srv);
	return NULL;
}

int kv_server_port(const struct kv_server *srv)
{
	return srv->port;
}

void kv_server_stop(struct kv_server *srv)
{
	if (!srv)
		return;
	for (int i = 0; i < srv->nworkers; i++) {
		struct kv_worker *w = &srv->workers[i];
		if (w->started) {
			uint64_t one = 1;
			(void)!write(w->wake_fd, &one, sizeof(one));
			pthread_join(w->thread, NULL);
		}
	}
	if (srv->sweeper_started) {
		pthread_mutex_lock(&srv->sweep_lock);
		srv->sweep_stop = true;
		pthread_cond_signal(&srv->sweep_cond);
		pthread_mutex_unlock(&srv->sweep_lock);
		pthread_join(srv->sweeper, NULL);
	}
	for (int i = 0; i < srv->nworkers; i++) {
		struct kv_worker *w = &srv->workers[i];
		if (w->listen_fd >= 0 && w->listen_fd != srv->shared_listen_fd)
			close(w->listen_fd);
		if (w->epfd >= 0)
			close(w->epfd);
		if (w->wake_fd >= 0)
			close(w->wake_fd);
		if (w->spare_fd >= 0)
			close(w->spare_fd);
	}
	if (srv->shared_listen_fd >= 0)
		close(srv->shared_listen_fd);
	free(srv->workers);
	pthread_cond_destroy(&srv->sweep_cond);
	pthread_mutex_destroy(&srv->sweep_lock);
	pthread_mutex_destroy(&srv->stats_lock);
	free(srv);
}
