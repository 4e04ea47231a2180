/*
 * session.h - one client's conversation: input bytes in, replies out.
 *
 * SPDX-License-Identifier: MIT
 *
 * The session is the protocol's state machine without the socket: it takes
 * whatever bytes have arrived (any split: a command line or a data block
 * may come in pieces), runs the complete commands against the store and
 * appends the replies to an output buffer.  The server feeds it from
 * non-blocking sockets; the tests and the fuzz target feed it directly.
 *
 * Like memcached, a storage command's item is allocated (and charged to
 * the memory limit) when its command line arrives, and its data block is
 * received straight into it; one that is too large, or over the limit, is
 * refused at once and its data block read and thrown away.
 */
#ifndef KV_SESSION_H
#define KV_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "counters.h"
#include "protocol.h"
#include "store.h"

/* Stop taking commands while this much output waits to be sent. */
#define KV_OUT_HIGH_WATER (256 * 1024)
/* A get whose reply would pass this fails (memcached: "SERVER_ERROR out of
 * memory writing get response"); kvcache copies values into the output. */
#define KV_GET_REPLY_MAX (64 * 1024 * 1024)

enum kv_stats_reply {
	KV_STATS_END,     /* lines appended: the session adds "END" */
	KV_STATS_RESET,   /* "RESET" */
	KV_STATS_UNKNOWN, /* "ERROR" */
};

/* What sessions need from their surroundings (one per worker thread). */
struct kv_session_env {
	struct kv_store *store;
	struct kv_counters *counters; /* this thread's */
	/* "stats [arg]" (arg NULL: plain "stats"): append the STAT lines;
	 * returns an enum kv_stats_reply, or -ENOMEM.  NULL: a default with
	 * this thread's counters and the store's lines. */
	int (*stats)(void *ctx, const char *arg, struct kv_buf *out);
	void *stats_ctx;
	const char *version; /* the VERSION reply's word */
};

enum kv_session_status {
	KV_NEED_INPUT,  /* every complete command is done: read more */
	KV_OUTPUT_FULL, /* paused at KV_OUT_HIGH_WATER: send, then call again */
	KV_QUIT,        /* "quit": send what is pending, then close */
	KV_CLOSE,       /* close now (line too long, HTTP, out of memory) */
};

enum kv_session_state {
	KV_STATE_LINE,    /* waiting for a command line */
	KV_STATE_DATA,    /* receiving a storage command's data block */
	KV_STATE_SWALLOW, /* discarding a refused command's data block */
};

struct kv_session {
	const struct kv_session_env *env;
	enum kv_session_state state;
	bool out_of_memory;      /* the output could not grow: close */
	/* the storage command whose data block is coming */
	bool noreply;
	enum kv_op op;
	uint64_t cas_unique;
	struct kv_item *item;    /* receives the data block and its "\r\n" */
	size_t filled, need;     /* bytes of it received, expected */
	size_t swallow;          /* KV_STATE_SWALLOW: bytes still to discard */
	size_t nkey;
	char key[KV_KEY_MAX_LENGTH];
};

void kv_session_init(struct kv_session *s, const struct kv_session_env *env);
/* Discards a half-received item (a client gone in the middle of a set). */
void kv_session_destroy(struct kv_session *s);

/*
 * Process in[0..len) (modified in place: command lines are tokenized
 * there).  Returns how many bytes were consumed; the rest (an incomplete
 * line, or everything after a pause or close) must be given again, with
 * what arrives next appended.  Replies are appended to out.
 */
size_t kv_session_process(struct kv_session *s, char *in, size_t len, struct kv_buf *out,
			  enum kv_session_status *status);

#endif /* KV_SESSION_H */
