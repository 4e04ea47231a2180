/*
 * session.c - one client's conversation (see session.h): commands run
 * against the store, replies in memcached 1.6.18's exact words.
 *
 * SPDX-License-Identifier: MIT
 */
#include "session.h"

#include <stdio.h>

#include "stats.h"

static const char ERR_TOO_LARGE[] = "SERVER_ERROR object too large for cache";
static const char ERR_NO_MEMORY_STORING[] = "SERVER_ERROR out of memory storing object";
static const char ERR_NO_MEMORY[] = "SERVER_ERROR out of memory";
static const char ERR_NO_MEMORY_GET[] = "SERVER_ERROR out of memory writing get response";
static const char ERR_BAD_CHUNK[] = "CLIENT_ERROR bad data chunk";
static const char ERR_FORMAT[] = "CLIENT_ERROR bad command line format";
static const char ERR_NON_NUMERIC[] = "CLIENT_ERROR cannot increment or decrement non-numeric value";

void kv_session_init(struct kv_session *s, const struct kv_session_env *env)
{
	memset(s, 0, sizeof(*s));
	s->env = env;
	s->state = KV_STATE_LINE;
}

void kv_session_destroy(struct kv_session *s)
{
	kv_item_discard(s->env->store, s->item);
	s->item = NULL;
}

static void count(struct kv_session *s, enum kv_counter c)
{
	kv_count(s->env->counters, c, 1);
}

/* A one-line reply; memcached sends nothing at all after "noreply". */
static void reply(struct kv_session *s, struct kv_buf *out, bool noreply, const char *line)
{
	if (noreply)
		return;
	size_t n = strlen(line);
	if (kv_buf_reserve(out, n + 2)) {
		s->out_of_memory = true;
		return;
	}
	memcpy(out->data + out->len, line, n);
	memcpy(out->data + out->len + n, "\r\n", 2);
	out->len += n + 2;
}

/* ---- get, gets ---------------------------------------------------------- */

struct get_reply {
	struct kv_buf *out;
	size_t start;       /* out->len when the command began */
	const char *key;
	size_t nkey;
	bool with_cas;
	bool failed;        /* over KV_GET_REPLY_MAX, or no memory */
};

/*
 * Inside the store's read section: copy "VALUE key flags bytes [cas]\r\n"
 * and the data into the output, nothing more (no I/O, no waiting).
 */
static void emit_value(const struct kv_item *it, void *ctx)
{
	struct get_reply *g = ctx;
	/* "VALUE " key " " flags " " bytes " " cas "\r\n" data "\r\n" */
	size_t need = 6 + g->nkey + 1 + 10 + 1 + 10 + 1 + 20 + 2 + (size_t)it->nbytes + 2;
	if (g->out->len - g->start + need > KV_GET_REPLY_MAX || kv_buf_reserve(g->out, need)) {
		g->failed = true;
		return;
	}
	char *p = g->out->data + g->out->len;
	memcpy(p, "VALUE ", 6);
	p += 6;
	memcpy(p, g->key, g->nkey);
	p += g->nkey;
	*p++ = ' ';
	p = kv_u64toa(p, it->flags);
	*p++ = ' ';
	p = kv_u64toa(p, it->nbytes);
	if (g->with_cas) {
		*p++ = ' ';
		p = kv_u64toa(p, it->cas);
	}
	*p++ = '\r';
	*p++ = '\n';
	memcpy(p, it->data, (size_t)it->nbytes + 2); /* the data and its "\r\n" */
	p += it->nbytes + 2;
	g->out->len = (size_t)(p - g->out->data);
}

static void do_get(struct kv_session *s, struct kv_request *req, struct kv_buf *out)
{
	struct get_reply g = {.out = out, .start = out->len, .with_cas = req->op == KV_OP_GETS};
	while (kv_next_key(req, &g.key, &g.nkey)) {
		if (g.nkey > KV_KEY_MAX_LENGTH) {
			/* memcached drops the values already found. */
			out->len = g.start;
			reply(s, out, false, ERR_FORMAT);
			return;
		}
		count(s, KV_C_cmd_get);
		if (kv_store_get(s->env->store, g.key, g.nkey, emit_value, &g))
			count(s, g.failed ? KV_C_get_misses : KV_C_get_hits);
		else
			count(s, KV_C_get_misses);
		if (g.failed) {
			out->len = g.start;
			reply(s, out, false, ERR_NO_MEMORY_GET);
			return;
		}
	}
	reply(s, out, false, "END");
}

/* ---- set, add, replace, append, prepend, cas ---------------------------- */

static enum kv_update update_of(enum kv_op op)
{
	switch (op) {
	case KV_OP_ADD:
		return KV_UPDATE_ADD;
	case KV_OP_REPLACE:
		return KV_UPDATE_REPLACE;
	case KV_OP_APPEND:
		return KV_UPDATE_APPEND;
	case KV_OP_PREPEND:
		return KV_UPDATE_PREPEND;
	case KV_OP_CAS:
		return KV_UPDATE_CAS;
	default:
		return KV_UPDATE_SET;
	}
}

/* The command line is in: make the item that will receive the data. */
static void start_update(struct kv_session *s, const struct kv_request *req, struct kv_buf *out)
{
	enum kv_result why;
	size_t need = (size_t)req->vlen + 2;
	struct kv_item *it = kv_item_new(s->env->store, req->nkey, req->flags, req->exptime, (uint32_t)req->vlen, &why);
	if (!it) {
		bool too_large = why == KV_TOO_LARGE;
		count(s, too_large ? KV_C_store_too_large : KV_C_store_no_memory);
		reply(s, out, req->noreply, too_large ? ERR_TOO_LARGE : ERR_NO_MEMORY_STORING);
		/* memcached: a set that fails must not leave the old value
		 * readable as if nothing had been asked. */
		if (req->op == KV_OP_SET)
			(void)kv_store_delete(s->env->store, req->key, req->nkey);
		/* memcached holds this reply back until the data block has been
		 * swallowed; kvcache sends it at once (same bytes, earlier). */
		s->state = KV_STATE_SWALLOW;
		s->swallow = need;
		return;
	}
	s->state = KV_STATE_DATA;
	s->op = req->op;
	s->noreply = req->noreply;
	s->cas_unique = req->cas_unique;
	s->item = it;
	s->filled = 0;
	s->need = need;
	s->nkey = req->nkey;
	memcpy(s->key, req->key, req->nkey);
}

/* The data block is in. */
static void finish_update(struct kv_session *s, struct kv_buf *out)
{
	struct kv_item *it = s->item;
	s->item = NULL;
	s->state = KV_STATE_LINE;
	count(s, KV_C_cmd_set);
	if (it->data[it->nbytes] != '\r' || it->data[it->nbytes + 1] != '\n') {
		kv_item_discard(s->env->store, it);
		reply(s, out, s->noreply, ERR_BAD_CHUNK);
		return;
	}
	enum kv_result r = kv_store_update(s->env->store, update_of(s->op), s->key, s->nkey, it, s->cas_unique);
	const char *line = ERR_NO_MEMORY_STORING;
	switch (r) {
	case KV_STORED:
		count(s, KV_C_total_items);
		if (s->op == KV_OP_CAS)
			count(s, KV_C_cas_hits);
		line = "STORED";
		break;
	case KV_NOT_STORED:
		line = "NOT_STORED";
		break;
	case KV_EXISTS:
		count(s, KV_C_cas_badval);
		line = "EXISTS";
		break;
	case KV_NOT_FOUND:
		count(s, KV_C_cas_misses);
		line = "NOT_FOUND";
		break;
	default:
		count(s, KV_C_store_no_memory);
		break;
	}
	reply(s, out, s->noreply, line);
}

/* ---- the rest ----------------------------------------------------------- */

static void do_delta(struct kv_session *s, const struct kv_request *req, struct kv_buf *out)
{
	bool incr = req->op == KV_OP_INCR;
	char number[21];
	const char *line;
	switch (kv_store_delta(s->env->store, req->key, req->nkey, incr, req->delta, number)) {
	case KV_STORED:
		count(s, incr ? KV_C_incr_hits : KV_C_decr_hits);
		line = number;
		break;
	case KV_NOT_FOUND:
		count(s, incr ? KV_C_incr_misses : KV_C_decr_misses);
		line = "NOT_FOUND";
		break;
	case KV_NON_NUMERIC:
		line = ERR_NON_NUMERIC;
		break;
	default:
		line = ERR_NO_MEMORY;
		break;
	}
	reply(s, out, req->noreply, line);
}

static void do_touch(struct kv_session *s, const struct kv_request *req, struct kv_buf *out)
{
	const char *line;
	count(s, KV_C_cmd_touch);
	switch (kv_store_touch(s->env->store, req->key, req->nkey, req->exptime)) {
	case KV_TOUCHED:
		count(s, KV_C_touch_hits);
		line = "TOUCHED";
		break;
	case KV_NOT_FOUND:
		count(s, KV_C_touch_misses);
		line = "NOT_FOUND";
		break;
	default:
		line = ERR_NO_MEMORY;
		break;
	}
	reply(s, out, req->noreply, line);
}

static void do_delete(struct kv_session *s, const struct kv_request *req, struct kv_buf *out)
{
	if (kv_store_delete(s->env->store, req->key, req->nkey) == KV_DELETED) {
		count(s, KV_C_delete_hits);
		reply(s, out, req->noreply, "DELETED");
	} else {
		count(s, KV_C_delete_misses);
		reply(s, out, req->noreply, "NOT_FOUND");
	}
}

/* Without a server (tests, fuzzing): this thread's counters and the store. */
static int default_stats(const struct kv_session_env *env, const char *arg, struct kv_buf *out)
{
	if (arg)
		return strcmp(arg, "reset") == 0 ? KV_STATS_RESET : KV_STATS_UNKNOWN;
	uint64_t sums[KV_NCOUNTERS];
	for (int i = 0; i < KV_NCOUNTERS; i++)
		sums[i] = atomic_load_explicit(&env->counters->v[i], memory_order_relaxed);
	if (kv_stats_counters(out, sums) || kv_stats_store(out, env->store, 0))
		return -ENOMEM;
	return KV_STATS_END;
}

static void do_stats(struct kv_session *s, const struct kv_request *req, struct kv_buf *out)
{
	const struct kv_session_env *env = s->env;
	size_t start = out->len;
	int r = env->stats ? env->stats(env->stats_ctx, req->stats_arg, out) : default_stats(env, req->stats_arg, out);
	if (r < 0) {
		out->len = start;
		s->out_of_memory = true;
		return;
	}
	reply(s, out, false, r == KV_STATS_END ? "END" : r == KV_STATS_RESET ? "RESET" : "ERROR");
}

/* One command line: run it, or start receiving its data block. */
static enum kv_session_status run_line(struct kv_session *s, char *line, struct kv_buf *out)
{
	struct kv_request req;
	kv_parse_request(line, &req);
	switch (req.op) {
	case KV_OP_ERROR:
		reply(s, out, req.noreply, req.error);
		break;
	case KV_OP_CLOSE:
		return KV_CLOSE;
	case KV_OP_GET:
	case KV_OP_GETS:
		do_get(s, &req, out);
		break;
	case KV_OP_SET:
	case KV_OP_ADD:
	case KV_OP_REPLACE:
	case KV_OP_APPEND:
	case KV_OP_PREPEND:
	case KV_OP_CAS:
		start_update(s, &req, out);
		break;
	case KV_OP_INCR:
	case KV_OP_DECR:
		do_delta(s, &req, out);
		break;
	case KV_OP_DELETE:
		do_delete(s, &req, out);
		break;
	case KV_OP_TOUCH:
		do_touch(s, &req, out);
		break;
	case KV_OP_FLUSH_ALL:
		count(s, KV_C_cmd_flush);
		kv_store_flush(s->env->store, req.delay);
		reply(s, out, req.noreply, "OK");
		break;
	case KV_OP_VERSION: {
		char line[128];
		snprintf(line, sizeof(line), "VERSION %s", s->env->version ? s->env->version : "kvcache");
		reply(s, out, false, line);
		break;
	}
	case KV_OP_VERBOSITY:
		reply(s, out, req.noreply, "OK"); /* kvcache has no verbose logging */
		break;
	case KV_OP_STATS:
		do_stats(s, &req, out);
		break;
	case KV_OP_QUIT:
		return KV_QUIT;
	}
	return s->out_of_memory ? KV_CLOSE : KV_NEED_INPUT;
}

size_t kv_session_process(struct kv_session *s, char *in, size_t len, struct kv_buf *out,
			  enum kv_session_status *status)
{
	size_t pos = 0;
	*status = KV_NEED_INPUT;
	for (;;) {
		if (s->out_of_memory) {
			*status = KV_CLOSE;
			break;
		}
		if (s->state == KV_STATE_DATA) {
			size_t n = len - pos < s->need - s->filled ? len - pos : s->need - s->filled;
			memcpy(s->item->data + s->filled, in + pos, n);
			s->filled += n;
			pos += n;
			if (s->filled < s->need)
				break;
			finish_update(s, out);
			continue;
		}
		if (s->state == KV_STATE_SWALLOW) {
			size_t n = len - pos < s->swallow ? len - pos : s->swallow;
			s->swallow -= n;
			pos += n;
			if (s->swallow)
				break;
			s->state = KV_STATE_LINE;
			continue;
		}
		if (out->len >= KV_OUT_HIGH_WATER) {
			*status = KV_OUTPUT_FULL;
			break;
		}
		if (pos == len)
			break;
		size_t line_len, used;
		enum kv_line_status ls = kv_find_line(in + pos, len - pos, &line_len, &used);
		if (ls == KV_LINE_INCOMPLETE)
			break;
		if (ls == KV_LINE_TOO_LONG) {
			*status = KV_CLOSE;
			break;
		}
		char *line = in + pos;
		pos += used;
		enum kv_session_status st = run_line(s, line, out);
		if (st != KV_NEED_INPUT) {
			*status = st;
			break;
		}
	}
	return pos;
}
