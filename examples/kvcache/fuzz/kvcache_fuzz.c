/*
 * kvcache_fuzz.c - libFuzzer target: the input is what a client sends to
 * kvcache, run through the protocol parser and the session against a real
 * store (one syncmap), cut into reads of fuzzer-chosen sizes.
 *
 * SPDX-License-Identifier: MIT
 *
 * Input layout:
 *   byte 0   how the rest arrives: 0 all at once, else in pieces of
 *            1..(byte 0 % 64 + 1) bytes (a fixed pseudo-random sequence)
 *   byte 1   seconds the store's clock jumps forward halfway through
 *            (expiry, delayed flush_all)
 *   rest     the client's bytes
 * Checked, beyond the sanitizers (ASAN+UBSAN in tests/run): the session
 * consumes no more than it is given; every reply is well-formed (one of
 * memcached's reply lines, each VALUE line followed by exactly its byte
 * count of data and "\r\n") and whole.  The store is small (64 KiB of items, 16 KiB items) so that
 * the limits are reached; it is flushed after each input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../protocol.h"
#include "../session.h"
#include "../store.h"

static struct kv_store *store;
static struct kv_counters counters;
static struct kv_session_env env;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "kvcache_fuzz: check failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                                 \
			abort();                                                     \
		}                                                                    \
	} while (0)

/* ---- the reply oracle: a stream of memcached reply lines ---------------- */

struct oracle {
	char line[512]; /* the reply line being assembled */
	size_t len;
	bool overlong;
	uint64_t data_left; /* > 0: inside a VALUE's data and its "\r\n" */
};

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* One reply line, without its "\r\n". */
static void check_line(struct oracle *o, char *line)
{
	static const char *const exact[] = {"STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED",
					    "TOUCHED", "OK", "RESET", "END", "ERROR"};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strcmp(line, exact[i]) == 0)
			return;
	if (starts(line, "CLIENT_ERROR ") || starts(line, "SERVER_ERROR ") || starts(line, "VERSION ") ||
	    starts(line, "STAT ") || all_digits(line))
		return;
	CHECK(starts(line, "VALUE "));
	/* VALUE <key> <flags> <bytes>[ <cas>]: the key may hold any byte but
	 * space, NUL and '\n', so parse the numbers from the end. */
	char *fields[4];
	int n = 0;
	char *p = line + strlen(line);
	while (n < 3 && p > line + 6) {
		char *sp = p - 1;
		while (sp > line + 6 && *sp != ' ')
			sp--;
		if (*sp != ' ')
			break;
		*p = '\0';
		fields[n++] = sp + 1;
		p = sp;
	}
	/* keys have no spaces: bytes flags (get), or cas bytes flags (gets) */
	CHECK(n == 2 || n == 3);
	for (int i = 0; i < n; i++)
		CHECK(all_digits(fields[i]));
	const char *bytes = fields[n == 3 ? 1 : 0];
	o->data_left = strtoull(bytes, NULL, 10) + 2;
}

static void oracle_feed(struct oracle *o, const char *p, size_t len)
{
	while (len) {
		if (o->data_left > 2) {
			size_t n = len < o->data_left - 2 ? len : (size_t)(o->data_left - 2);
			p += n;
			len -= n;
			o->data_left -= n;
			continue;
		}
		if (o->data_left) { /* the "\r\n" after the data */
			CHECK(*p == (o->data_left == 2 ? '\r' : '\n'));
			o->data_left--;
			p++;
			len--;
			continue;
		}
		char c = *p++;
		len--;
		if (c != '\n') {
			if (o->len < sizeof(o->line) - 1)
				o->line[o->len++] = c;
			else
				o->overlong = true;
			continue;
		}
		CHECK(!o->overlong); /* the longest is a VALUE line with a 250-byte key */
		CHECK(o->len > 0 && o->line[o->len - 1] == '\r');
		o->line[o->len - 1] = '\0';
		check_line(o, o->line);
		o->len = 0;
	}
}

/* ---- the target --------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!store) {
		store = kv_store_new(&(struct kv_store_options){.mem_limit = 64 * 1024, .item_size_max = 16 * 1024});
		CHECK(store != NULL);
		env = (struct kv_session_env){.store = store, .counters = &counters, .version = "fuzz"};
	}
	if (size < 2)
		return 0;
	unsigned cut = data[0], jump = data[1];
	data += 2;
	size -= 2;

	struct kv_session s;
	struct kv_buf in = {0}, out = {0};
	struct oracle o = {0};
	kv_session_init(&s, &env);
	uint32_t rng = 0x9E3779B9u ^ cut;
	size_t pos = 0;
	bool jumped = false, closed = false;

	while (pos < size && !closed) {
		size_t n = size - pos;
		if (cut) {
			rng = rng * 1103515245u + 12345u;
			size_t max = cut % 64 + 1;
			size_t piece = 1 + (rng >> 16) % max;
			if (piece < n)
				n = piece;
		}
		CHECK(kv_buf_append(&in, data + pos, n) == 0);
		pos += n;
		if (!jumped && pos >= size / 2) {
			kv_store_advance_clock(store, jump);
			jumped = true;
		}
		for (;;) {
			enum kv_session_status status;
			size_t had = in.len;
			size_t used = kv_session_process(&s, in.data, in.len, &out, &status);
			CHECK(used <= had);
			kv_buf_consume(&in, used);
			oracle_feed(&o, out.data, out.len);
			out.len = 0;
			if (status == KV_QUIT || status == KV_CLOSE) {
				closed = true;
				break;
			}
			if (status == KV_NEED_INPUT)
				break;
			CHECK(status == KV_OUTPUT_FULL);
		}
	}
	/* Replies are whole: no half line, no half value. */
	CHECK(o.len == 0 && o.data_left == 0);
	kv_session_destroy(&s);
	kv_buf_free(&in);
	kv_buf_free(&out);
	kv_store_flush(store, 0);
	return 0;
}
