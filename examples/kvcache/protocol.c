/*
 * protocol.c - memcached ASCII command lines into requests (see protocol.h
 * for the rules and why they copy memcached 1.6.18's quirks).
 *
 * SPDX-License-Identifier: MIT
 */
#include "protocol.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char ERR_ERROR[] = "ERROR";
static const char ERR_FORMAT[] = "CLIENT_ERROR bad command line format";
static const char ERR_EXPTIME[] = "CLIENT_ERROR invalid exptime argument";
static const char ERR_DELTA[] = "CLIENT_ERROR invalid numeric delta argument";
static const char ERR_DELETE_USAGE[] = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

/* ---- lines -------------------------------------------------------------- */

static bool starts_with(const char *p, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(p, prefix, n) == 0;
}

enum kv_line_status kv_find_line(char *buf, size_t len, size_t *line_len, size_t *consumed)
{
	char *nl = memchr(buf, '\n', len);
	if (!nl) {
		if (len <= KV_LINE_MAX)
			return KV_LINE_INCOMPLETE;
		/* Only a multi-get may be this long (memcached: up to 100
		 * leading spaces, then "get " or "gets "). */
		size_t i = 0;
		while (i < len && buf[i] == ' ')
			i++;
		if (i > 100 || !(starts_with(buf + i, len - i, "get ") || starts_with(buf + i, len - i, "gets ")))
			return KV_LINE_TOO_LONG;
		return len > KV_GET_LINE_MAX ? KV_LINE_TOO_LONG : KV_LINE_INCOMPLETE;
	}
	size_t n = (size_t)(nl - buf);
	*consumed = n + 1;
	if (n > 1 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*line_len = n;
	return KV_LINE_FOUND;
}

/* ---- numbers: memcached's safe_strto* semantics ------------------------- */

/* The end of a number must be the end of the token or a whitespace byte. */
static bool number_ends_well(const char *s, const char *end)
{
	return end != s && (*end == '\0' || isspace((unsigned char)*end));
}

bool kv_parse_u32(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno == ERANGE || !number_ends_well(s, end))
		return false;
	/* strtoul accepts "-5" as ULONG_MAX - 4; memcached refuses a '-' only
	 * when the result looks negative as a signed long. */
	if ((long)v < 0 && strchr(s, '-'))
		return false;
	*out = (uint32_t)v; /* LP64: the low 32 bits, as memcached stores it */
	return true;
}

bool kv_parse_i32(const char *s, int32_t *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno == ERANGE || !number_ends_well(s, end))
		return false;
	*out = (int32_t)(uint32_t)(unsigned long)v; /* LP64: the low 32 bits, as memcached */
	return true;
}

bool kv_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE || !number_ends_well(s, end))
		return false;
	if ((long long)v < 0 && strchr(s, '-'))
		return false;
	*out = v;
	return true;
}

/* ---- tokens ------------------------------------------------------------- */

struct token {
	char *value;
	size_t length;
};

/*
 * memcached's tokenizer: split at spaces (each becomes a NUL), at most
 * max - 1 tokens, then a terminal token of length 0 whose value is the
 * unscanned rest of the line, or NULL if the whole line was scanned.
 * Returns the count, the terminal token included.
 */
static size_t tokenize(char *line, struct token *tok, size_t max)
{
	size_t n = 0;
	char *start = line, *p = line;

	for (; *p; p++) {
		if (*p != ' ')
			continue;
		if (start != p) {
			tok[n].value = start;
			tok[n].length = (size_t)(p - start);
			n++;
			*p = '\0';
			if (n == max - 1) {
				p++;
				goto terminal;
			}
		}
		start = p + 1;
	}
	if (start != p) {
		tok[n].value = start;
		tok[n].length = (size_t)(p - start);
		n++;
	}
terminal:
	tok[n].value = *p ? p : NULL;
	tok[n].length = 0;
	return n + 1;
}

/* ---- commands ----------------------------------------------------------- */

static void fail(struct kv_request *req, const char *msg)
{
	req->op = KV_OP_ERROR;
	req->error = msg;
}

/* Fail the request and return from the (void) parsing function. */
#define FAIL(req, msg)            \
	do {                      \
		fail((req), (msg)); \
		return;           \
	} while (0)

static bool is(const struct token *t, const char *word)
{
	return strcmp(t->value, word) == 0;
}

/* memcached's set_noreply_maybe: "noreply" as the last token. */
static void noreply_maybe(struct kv_request *req, const struct token *tok, size_t ntokens)
{
	if (is(&tok[ntokens - 2], "noreply"))
		req->noreply = true;
}

static bool key_ok(struct kv_request *req, const struct token *tok)
{
	if (tok[1].length > KV_KEY_MAX_LENGTH) {
		fail(req, ERR_FORMAT);
		return false;
	}
	req->key = tok[1].value;
	req->nkey = tok[1].length;
	return true;
}

/* set/add/replace/append/prepend: 6 or 7 tokens; cas: 7 or 8. */
static void parse_update(struct kv_request *req, enum kv_op op, struct token *tok, size_t ntokens)
{
	bool cas = op == KV_OP_CAS;
	if (ntokens != (cas ? 7u : 6u) && ntokens != (cas ? 8u : 7u))
		FAIL(req, ERR_ERROR);
	req->op = op;
	noreply_maybe(req, tok, ntokens);
	if (!key_ok(req, tok))
		return;
	if (!kv_parse_u32(tok[2].value, &req->flags) || !kv_parse_i32(tok[3].value, &req->exptime) ||
	    !kv_parse_i32(tok[4].value, &req->vlen))
		FAIL(req, ERR_FORMAT);
	if (cas && !kv_parse_u64(tok[5].value, &req->cas_unique))
		FAIL(req, ERR_FORMAT);
	if (req->vlen < 0 || req->vlen > INT_MAX - 2)
		FAIL(req, ERR_FORMAT);
}

static void parse_arithmetic(struct kv_request *req, enum kv_op op, struct token *tok, size_t ntokens)
{
	if (ntokens != 4 && ntokens != 5)
		FAIL(req, ERR_ERROR);
	req->op = op;
	noreply_maybe(req, tok, ntokens);
	if (!key_ok(req, tok))
		return;
	if (!kv_parse_u64(tok[2].value, &req->delta))
		FAIL(req, ERR_DELTA);
}

static void parse_touch(struct kv_request *req, struct token *tok, size_t ntokens)
{
	if (ntokens != 4 && ntokens != 5)
		FAIL(req, ERR_ERROR);
	req->op = KV_OP_TOUCH;
	noreply_maybe(req, tok, ntokens);
	if (!key_ok(req, tok))
		return;
	if (!kv_parse_i32(tok[2].value, &req->exptime))
		FAIL(req, ERR_EXPTIME);
}

/* delete <key> [0] [noreply]: the "0" is a relic memcached still accepts. */
static void parse_delete(struct kv_request *req, struct token *tok, size_t ntokens)
{
	if (ntokens < 3 || ntokens > 5)
		FAIL(req, ERR_ERROR);
	req->op = KV_OP_DELETE;
	if (ntokens > 3) {
		bool hold_is_zero = is(&tok[2], "0");
		noreply_maybe(req, tok, ntokens);
		bool valid = (ntokens == 4 && (hold_is_zero || req->noreply)) ||
			     (ntokens == 5 && hold_is_zero && req->noreply);
		if (!valid)
			FAIL(req, ERR_DELETE_USAGE);
	}
	(void)key_ok(req, tok);
}

static void parse_flush_all(struct kv_request *req, struct token *tok, size_t ntokens)
{
	if (ntokens < 2 || ntokens > 4)
		FAIL(req, ERR_ERROR);
	req->op = KV_OP_FLUSH_ALL;
	noreply_maybe(req, tok, ntokens);
	if (ntokens != (req->noreply ? 3u : 2u) && !kv_parse_i32(tok[1].value, &req->delay))
		FAIL(req, ERR_EXPTIME);
}

static void parse_verbosity(struct kv_request *req, struct token *tok, size_t ntokens)
{
	uint32_t level;
	if (ntokens != 3 && ntokens != 4)
		FAIL(req, ERR_ERROR);
	req->op = KV_OP_VERBOSITY;
	noreply_maybe(req, tok, ntokens);
	if (!kv_parse_u32(tok[1].value, &level))
		FAIL(req, ERR_FORMAT);
}

/* get <key>*: at least one key; the keys run to the end of the line (memcached
 * tokenizes a long one 23 tokens at a time: the same split). */
static void parse_get(struct kv_request *req, enum kv_op op, size_t ntokens, char *first_key, char *line_end)
{
	if (ntokens < 3)
		FAIL(req, ERR_ERROR);
	req->op = op;
	req->keys = first_key;
	req->keys_end = line_end;
}

/*
 * The command named by the first token.  *family_error: the first byte
 * belongs to a family memcached dispatches on (g, s, a, c, i, d, t, and
 * two-byte m... meta commands), where an unknown name is a plain ERROR
 * without the HTTP check.
 */
static enum kv_op command_of(const struct token *cmd, bool *family_error)
{
	static const struct {
		const char *name;
		enum kv_op op;
	} commands[] = {
		{"get", KV_OP_GET},
		{"gets", KV_OP_GETS},
		{"set", KV_OP_SET},
		{"stats", KV_OP_STATS},
		{"add", KV_OP_ADD},
		{"append", KV_OP_APPEND},
		{"cas", KV_OP_CAS},
		{"incr", KV_OP_INCR},
		{"delete", KV_OP_DELETE},
		{"decr", KV_OP_DECR},
		{"touch", KV_OP_TOUCH},
		{"replace", KV_OP_REPLACE},
		{"prepend", KV_OP_PREPEND},
		{"bget", KV_OP_GET}, /* memcached keeps this ancient alias of get */
		{"flush_all", KV_OP_FLUSH_ALL},
		{"version", KV_OP_VERSION},
		{"quit", KV_OP_QUIT},
		{"verbosity", KV_OP_VERBOSITY},
	};
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (is(cmd, commands[i].name))
			return commands[i].op;
	/* Not supported, answered ERROR: gat, gats, shutdown, slabs,
	 * cache_memlimit, the meta commands (mg, ms, md, mn, ma, me), lru,
	 * lru_crawler, watch. */
	*family_error = strchr("gsacidt", cmd->value[0]) != NULL || (cmd->value[0] == 'm' && cmd->length == 2);
	return KV_OP_ERROR;
}

void kv_parse_request(char *line, struct kv_request *req)
{
	struct token tok[KV_MAX_TOKENS];
	char *line_end = line + strlen(line);

	memset(req, 0, sizeof(*req));
	size_t ntokens = tokenize(line, tok, KV_MAX_TOKENS);
	/* Every command has at least two bytes and a terminal token. */
	if (ntokens < 2 || tok[0].length < 2)
		FAIL(req, ERR_ERROR);

	bool family_error = false;
	enum kv_op op = command_of(&tok[0], &family_error);
	switch (op) {
	case KV_OP_GET:
	case KV_OP_GETS:
		parse_get(req, op, ntokens, tok[1].value, line_end);
		break;
	case KV_OP_SET:
	case KV_OP_ADD:
	case KV_OP_REPLACE:
	case KV_OP_APPEND:
	case KV_OP_PREPEND:
	case KV_OP_CAS:
		parse_update(req, op, tok, ntokens);
		break;
	case KV_OP_INCR:
	case KV_OP_DECR:
		parse_arithmetic(req, op, tok, ntokens);
		break;
	case KV_OP_DELETE:
		parse_delete(req, tok, ntokens);
		break;
	case KV_OP_TOUCH:
		parse_touch(req, tok, ntokens);
		break;
	case KV_OP_FLUSH_ALL:
		parse_flush_all(req, tok, ntokens);
		break;
	case KV_OP_VERBOSITY:
		parse_verbosity(req, tok, ntokens);
		break;
	case KV_OP_STATS:
		req->op = op;
		req->stats_arg = ntokens > 2 ? tok[1].value : NULL;
		break;
	case KV_OP_VERSION:
	case KV_OP_QUIT:
		req->op = op; /* memcached ignores any arguments */
		break;
	case KV_OP_ERROR:
	case KV_OP_CLOSE:
		/* Someone pointed a web browser at us: memcached hangs up. */
		if (!family_error && strncmp(tok[ntokens - 2].value, "HTTP/", 5) == 0)
			req->op = KV_OP_CLOSE;
		else
			fail(req, ERR_ERROR);
		break;
	}
}

bool kv_next_key(struct kv_request *req, const char **key, size_t *nkey)
{
	char *p = req->keys;
	while (p < req->keys_end && (*p == ' ' || *p == '\0'))
		p++;
	if (p == req->keys_end) {
		req->keys = p;
		return false;
	}
	char *start = p;
	while (p < req->keys_end && *p != ' ' && *p != '\0')
		p++;
	*key = start;
	*nkey = (size_t)(p - start);
	req->keys = p;
	return true;
}
