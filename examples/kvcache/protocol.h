/*
 * protocol.h - memcached's ASCII protocol: finding command lines in the
 * input and parsing them into requests.  No I/O, no map: the parser is a
 * pure function of the bytes, so the fuzz target and the tests drive it
 * directly.
 *
 * SPDX-License-Identifier: MIT
 *
 * The reference is memcached 1.6.18 (Debian 12's), and the rules below are
 * its observable behaviour, checked against the real server by
 * tests/compare.py, quirks included, because clients are written against
 * that server and not against protocol.txt:
 *   - a line ends at '\n'; one '\r' before it is dropped only when the line
 *     has at least one byte before the '\r' ("\r\n" alone is the line "\r");
 *   - the line ends at its first NUL byte (memcached runs strlen on it);
 *   - tokens are separated by spaces only: tabs and other control
 *     characters are part of a key (protocol.txt forbids them; memcached
 *     does not check, so neither do we);
 *   - numbers are parsed with strtoul/strtol/strtoull as memcached's
 *     safe_strto* do: leading whitespace and a '+' are accepted, a trailing
 *     whitespace character is accepted, and on LP64 the 32-bit fields
 *     (flags, exptime, bytes) keep the low 32 bits of a larger number:
 *     "set k 0 0 4294967297" stores one byte, as memcached does;
 *   - at most 23 tokens are looked at for every command but get/gets (more
 *     make the command fail its token-count check: ERROR);
 *   - a line without '\n' that grows past 2048 bytes closes the connection,
 *     unless it starts with "get " or "gets " (a long multi-get), which may
 *     grow to KV_GET_LINE_MAX (memcached's limit is its memory).
 */
#ifndef KV_PROTOCOL_H
#define KV_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* memcached's KEY_MAX_LENGTH. */
#define KV_KEY_MAX_LENGTH 250
/* A line with no '\n' yet is given up on past this many bytes (memcached). */
#define KV_LINE_MAX 2048
/* ... unless it is a get/gets, which may grow to this (kvcache's bound). */
#define KV_GET_LINE_MAX (1024 * 1024)
/* Tokens memcached's tokenizer returns at most, the terminal one included. */
#define KV_MAX_TOKENS 24

enum kv_op {
	KV_OP_ERROR,   /* reply req.error (unless noreply) */
	KV_OP_CLOSE,   /* close the connection without a reply (an HTTP request line) */
	KV_OP_GET,
	KV_OP_GETS,
	KV_OP_SET,
	KV_OP_ADD,
	KV_OP_REPLACE,
	KV_OP_APPEND,
	KV_OP_PREPEND,
	KV_OP_CAS,
	KV_OP_INCR,
	KV_OP_DECR,
	KV_OP_DELETE,
	KV_OP_TOUCH,
	KV_OP_FLUSH_ALL,
	KV_OP_VERSION,
	KV_OP_VERBOSITY,
	KV_OP_STATS,
	KV_OP_QUIT,
};

/* A parsed command line.  Pointers point into the line it was parsed from. */
struct kv_request {
	enum kv_op op;
	bool noreply;
	const char *error;     /* KV_OP_ERROR: the reply, without "\r\n" */
	const char *key;       /* single-key commands */
	size_t nkey;
	uint32_t flags;        /* storage commands */
	int32_t exptime;       /* storage commands, touch: as sent (see store.h) */
	int32_t vlen;          /* storage commands: data bytes, >= 0 */
	uint64_t cas_unique;   /* cas */
	uint64_t delta;        /* incr, decr */
	int32_t delay;         /* flush_all: 0 = now */
	const char *stats_arg; /* stats: the first argument, NULL for plain "stats" */
	char *keys;            /* get, gets: the keys, separated by spaces or NULs, */
	char *keys_end;        /* up to keys_end (use kv_next_key) */
};

enum kv_line_status {
	KV_LINE_FOUND,      /* *line_len and *consumed set */
	KV_LINE_INCOMPLETE, /* no '\n' yet: wait for more bytes */
	KV_LINE_TOO_LONG,   /* no '\n' within the limits above: close */
};

/*
 * Look for a command line at the start of buf[0..len).  On KV_LINE_FOUND the
 * line is buf[0..*line_len) and has been NUL-terminated in place (the '\r'
 * or '\n' after it is overwritten); *consumed counts the bytes through the
 * '\n'.
 */
enum kv_line_status kv_find_line(char *buf, size_t len, size_t *line_len, size_t *consumed);

/*
 * Parse the NUL-terminated line into *req.  Modifies the line (separators
 * become NULs).  Never fails: a bad line gives KV_OP_ERROR with memcached's
 * reply for it.
 */
void kv_parse_request(char *line, struct kv_request *req);

/*
 * Next key of a get/gets request: true with *key, *nkey set (keys may be
 * longer than KV_KEY_MAX_LENGTH: the caller checks), false after the last.
 */
bool kv_next_key(struct kv_request *req, const char **key, size_t *nkey);

/*
 * memcached's number parsing (see above).  Exposed for the tests and for
 * incr/decr, which parse the stored value with the same rules.
 */
bool kv_parse_u32(const char *s, uint32_t *out);
bool kv_parse_i32(const char *s, int32_t *out);
bool kv_parse_u64(const char *s, uint64_t *out);

#endif /* KV_PROTOCOL_H */
