/*
 * session_test.c - kvcache's protocol and session without sockets: scripted
 * exchanges whose expected replies are memcached 1.6.18's (compare.py
 * checks the same cases against the real server), the same input cut into
 * random pieces, the clock (expiry, delayed flush_all), the memory limit,
 * and the statuses a server acts on (quit, close, output high water).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../../tests/testutil.h"
#include "../protocol.h"
#include "../session.h"
#include "../store.h"

static struct kv_store *new_store(size_t mem_limit)
{
	struct kv_store *st = kv_store_new(&(struct kv_store_options){
		.mem_limit = mem_limit,
		.item_size_max = 1024 * 1024,
	});
	ASSERT(st != NULL);
	return st;
}

struct client {
	struct kv_store *store;
	struct kv_counters counters;
	struct kv_session_env env;
	struct kv_session s;
	struct kv_buf in, out;
	enum kv_session_status status;
};

static void client_init(struct client *c, struct kv_store *st)
{
	memset(c, 0, sizeof(*c));
	c->store = st;
	c->env = (struct kv_session_env){.store = st, .counters = &c->counters, .version = "1.6.18-test"};
	kv_session_init(&c->s, &c->env);
}

static void client_destroy(struct client *c)
{
	kv_session_destroy(&c->s);
	kv_buf_free(&c->in);
	kv_buf_free(&c->out);
}

/* Feed bytes as if they had just arrived; run until the session wants more. */
static void feed(struct client *c, const char *data, size_t len)
{
	ASSERT_EQ(kv_buf_append(&c->in, data, len), 0);
	for (;;) {
		size_t used = kv_session_process(&c->s, c->in.data, c->in.len, &c->out, &c->status);
		kv_buf_consume(&c->in, used);
		if (c->status != KV_OUTPUT_FULL)
			break;
		/* a server would send now; the test keeps everything */
		ASSERT_GT(c->out.len, 0);
		static struct kv_buf sent;
		ASSERT_EQ(kv_buf_append(&sent, c->out.data, c->out.len), 0);
		c->out.len = 0;
		kv_buf_free(&sent);
	}
}

/* All the replies so far, as a C string (consumed). */
static char *take_output(struct client *c)
{
	char *s = malloc(c->out.len + 1);
	ASSERT(s != NULL);
	memcpy(s, c->out.data, c->out.len);
	s[c->out.len] = '\0';
	c->out.len = 0;
	return s;
}

static void expect_exchange(struct client *c, const char *name, const char *send, size_t send_len, const char *want)
{
	feed(c, send, send_len);
	char *got = take_output(c);
	if (strcmp(got, want) != 0)
		TEST_FAIL("%s: sent %.200s\n  want %.400s\n  got  %.400s", name, send, want, got);
	free(got);
}

#define EXCHANGE(c, send, want) expect_exchange((c), #send, (send), sizeof(send) - 1, (want))

/* ---- memcached's replies (each checked against memcached 1.6.18) -------- */

static void test_replies(void)
{
	struct kv_store *st = new_store(0);
	struct client c;
	client_init(&c, st);

	EXCHANGE(&c, "set a 0 0 1\r\nx\r\nget a\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
	EXCHANGE(&c, "add a 0 0 1\r\ny\r\nadd b 5 0 2\r\nbb\r\nget a b nope a\r\n",
		 "NOT_STORED\r\nSTORED\r\nVALUE a 0 1\r\nx\r\nVALUE b 5 2\r\nbb\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
	EXCHANGE(&c, "replace c 0 0 1\r\nz\r\nreplace a 7 0 3\r\nnew\r\nget a\r\n",
		 "NOT_STORED\r\nSTORED\r\nVALUE a 7 3\r\nnew\r\nEND\r\n");
	/* append/prepend keep the old flags and expiry, whatever is sent */
	EXCHANGE(&c, "append a 99 99 2\r\n++\r\nprepend a 0 0 2\r\n--\r\nget a\r\n",
		 "STORED\r\nSTORED\r\nVALUE a 7 7\r\n--new++\r\nEND\r\n");
	EXCHANGE(&c, "append nope 0 0 1\r\nx\r\nset e 0 0 0\r\n\r\nget e\r\n",
		 "NOT_STORED\r\nSTORED\r\nVALUE e 0 0\r\n\r\nEND\r\n");
	/* flags: 32 bits, a larger number keeps its low 32 bits, "-1" fails */
	EXCHANGE(&c, "set f 4294967297 0 1\r\nx\r\nget f\r\nset f -1 0 1\r\nx\r\n",
		 "STORED\r\nVALUE f 1 1\r\nx\r\nEND\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n");
	/* so do lengths: 4294967297 is 1 */
	EXCHANGE(&c, "set g 0 0 4294967297\r\nx\r\nget g\r\n", "STORED\r\nVALUE g 0 1\r\nx\r\nEND\r\n");
	EXCHANGE(&c, "set g 0 0 -1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	/* noreply: nothing at all, errors included */
	EXCHANGE(&c, "set n 0 0 1 noreply\r\n5\r\nincr n 2 noreply\r\nset k 0 0 -1 noreply\r\nget n\r\n",
		 "VALUE n 0 1\r\n7\r\nEND\r\n");
	EXCHANGE(&c, "set b 0 0 3 noreply\r\nabcde\r\nget b\r\n", "ERROR\r\nVALUE b 5 2\r\nbb\r\nEND\r\n");
	/* data blocks with the wrong terminator */
	EXCHANGE(&c, "set b 0 0 3\r\nabcde\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
	EXCHANGE(&c, "set b 0 0 3\r\nabc\rXget b\r\n", "CLIENT_ERROR bad data chunk\r\nVALUE b 5 2\r\nbb\r\nEND\r\n");
	/* incr/decr: memcached pads a shorter number with spaces */
	EXCHANGE(&c, "set n 0 0 2\r\n10\r\ndecr n 1\r\nget n\r\nincr n 18446744073709551615\r\n",
		 "STORED\r\n9\r\nVALUE n 0 2\r\n9 \r\nEND\r\n8\r\n");
	EXCHANGE(&c, "decr n 100\r\nincr n -1\r\nincr n 18446744073709551616\r\nincr nope 1\r\n",
		 "0\r\nCLIENT_ERROR invalid numeric delta argument\r\n"
		 "CLIENT_ERROR invalid numeric delta argument\r\nNOT_FOUND\r\n");
	EXCHANGE(&c, "set s 0 0 3\r\nabc\r\nincr s 1\r\nset s 0 0 2\r\n-5\r\nincr s 1\r\n",
		 "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
		 "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
	/* delete's "0" relic */
	EXCHANGE(&c, "delete n 0\r\ndelete n 1\r\ndelete n noreply\r\ndelete\r\ndelete a b c d e\r\n",
		 "DELETED\r\nCLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\nERROR\r\nERROR\r\n");
	EXCHANGE(&c, "touch a\r\ntouch a x\r\ntouch a 10\r\ntouch nope 10\r\n",
		 "ERROR\r\nCLIENT_ERROR invalid exptime argument\r\nTOUCHED\r\nNOT_FOUND\r\n");
	/* lines: "\r\n" alone is the line "\r"; a NUL ends the line */
	EXCHANGE(&c, "\r\n\n \r\nset\r\nGET a\r\nget\0 a\r\n", "ERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\n");
	EXCHANGE(&c, "set a\tb 0 0 1\r\nx\r\nget a\tb\r\n", "STORED\r\nVALUE a\tb 0 1\r\nx\r\nEND\r\n");
	EXCHANGE(&c, "flush_all noreply\r\nflush_all 0\r\nflush_all -1\r\nflush_all x\r\nflush_all 1 2 3\r\n",
		 "OK\r\nOK\r\nCLIENT_ERROR invalid exptime argument\r\nERROR\r\n");
	EXCHANGE(&c, "verbosity\r\nverbosity 1\r\nverbosity x\r\nverbosity 1 noreply\r\nversion foo\r\n",
		 "ERROR\r\nOK\r\nCLIENT_ERROR bad command line format\r\nVERSION 1.6.18-test\r\n");
	EXCHANGE(&c, "stats noreply\r\nstats foo\r\nstats reset\r\n", "ERROR\r\nERROR\r\nRESET\r\n");
	EXCHANGE(&c, "cas a 0 0 1 0\r\nx\r\ncas zz 0 0 1 5\r\nx\r\ncas a 0 0 1\r\nx\r\ncas a 0 0 1 x\r\nx\r\n",
		 "NOT_FOUND\r\nNOT_FOUND\r\nERROR\r\nERROR\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n");

	/* a key longer than 250 bytes anywhere in a get: only the error */
	char line[400];
	memset(line, 'k', sizeof(line));
	memcpy(line, "set a 0 0 1\r\nx\r\nget a ", 22);
	memcpy(line + 22 + 251, "\r\n", 2);
	expect_exchange(&c, "get with a 251-byte key", line, 22 + 251 + 2,
			"STORED\r\nCLIENT_ERROR bad command line format\r\n");

	/* cas with the id gets returned */
	EXCHANGE(&c, "set c 0 0 1\r\nx\r\n", "STORED\r\n");
	feed(&c, "gets c\r\n", 8);
	char *got = take_output(&c);
	unsigned long long id;
	ASSERT_EQ(sscanf(got, "VALUE c 0 1 %llu\r\n", &id), 1);
	free(got);
	char cmd[128];
	int n = snprintf(cmd, sizeof(cmd), "touch c 100\r\ncas c 0 0 1 %llu\r\ny\r\ncas c 0 0 1 %llu\r\nz\r\n", id, id);
	expect_exchange(&c, "cas after touch", cmd, (size_t)n, "TOUCHED\r\nSTORED\r\nEXISTS\r\n");

	/* stats: STAT lines then END */
	feed(&c, "stats\r\n", 7);
	got = take_output(&c);
	ASSERT(strncmp(got, "STAT cmd_get ", 13) == 0);
	ASSERT(strstr(got, "STAT syncmap_shards ") != NULL);
	ASSERT(strcmp(got + strlen(got) - 5, "END\r\n") == 0);
	free(got);

	/* quit: the replies before it, then the server closes */
	feed(&c, "get a\r\nquit\r\nget a\r\n", 20);
	ASSERT_EQ(c.status, KV_QUIT);
	got = take_output(&c);
	ASSERT(strcmp(got, "VALUE a 0 1\r\nx\r\nEND\r\n") == 0);
	free(got);
	client_destroy(&c);

	/* HTTP and over-long lines close the connection */
	const char *closing[] = {"GET / HTTP/1.1\r\n", "foo bar HTTP/1.0\r\n"};
	for (size_t i = 0; i < 2; i++) {
		client_init(&c, st);
		feed(&c, closing[i], strlen(closing[i]));
		ASSERT_EQ(c.status, KV_CLOSE);
		client_destroy(&c);
	}
	client_init(&c, st);
	char junk[KV_LINE_MAX + 10];
	memset(junk, 'x', sizeof(junk));
	feed(&c, junk, KV_LINE_MAX);
	ASSERT_EQ(c.status, KV_NEED_INPUT);
	feed(&c, junk, 10);
	ASSERT_EQ(c.status, KV_CLOSE);
	client_destroy(&c);
	/* ... but a long multi-get is fine */
	client_init(&c, st);
	feed(&c, "get ", 4);
	for (int i = 0; i < 1000; i++)
		feed(&c, "a ", 2);
	ASSERT_EQ(c.status, KV_NEED_INPUT);
	feed(&c, "\r\n", 2);
	got = take_output(&c);
	ASSERT_EQ(strlen(got), 1000 * strlen("VALUE a 0 1\r\nx\r\n") + 5);
	free(got);
	client_destroy(&c);
	kv_store_free(st);
}

/* ---- the same bytes in any pieces give the same replies ----------------- */

static const char SCRIPT[] =
	"set alpha 1 0 5\r\nhello\r\nget alpha beta\r\nadd beta 2 0 3 noreply\r\nbye\r\n"
	"append alpha 0 0 6\r\n world\r\nget alpha\r\nincr nope 1\r\nset n 0 0 3\r\n100\r\n"
	"decr n 7\r\nincr n 1000\r\nget n\r\ndelete beta\r\nget beta\r\nset x 0 0 3\r\nabcde\r\n"
	"bogus command\r\ntouch alpha 0\r\nset big 0 0 3000000\r\n";

/* One store for every run (syncmap_free waits for liburcu's callback
 * thread, milliseconds): each run starts with flush_all, and the script
 * shows no cas ids. */
static char *run_script(struct kv_store *st, const char *script, size_t len, struct test_rng *rng)
{
	struct client c;
	client_init(&c, st);
	feed(&c, "flush_all\r\n", 11);
	ASSERT_EQ(c.out.len, 4);
	c.out.len = 0;
	size_t pos = 0;
	while (pos < len) {
		size_t n = rng ? 1 + test_rng_next(rng) % 7 : len;
		if (n > len - pos)
			n = len - pos;
		feed(&c, script + pos, n);
		pos += n;
	}
	char *out = take_output(&c);
	client_destroy(&c);
	return out;
}

static void test_splits(void)
{
	struct test_rng rng;
	test_rng_init(&rng, test_seed());
	struct kv_store *st = new_store(0);
	char *whole = run_script(st, SCRIPT, sizeof(SCRIPT) - 1, NULL);
	ASSERT(strstr(whole, "VALUE alpha 1 11\r\nhello world\r\n") != NULL);
	ASSERT(strstr(whole, "SERVER_ERROR object too large for cache\r\n") != NULL);
	for (int i = 0; i < 200; i++) {
		char *pieces = run_script(st, SCRIPT, sizeof(SCRIPT) - 1, &rng);
		if (strcmp(whole, pieces) != 0)
			TEST_FAIL("cut into pieces:\n  whole  %s\n  pieces %s", whole, pieces);
		free(pieces);
	}
	free(whole);
	kv_store_free(st);
}

/* ---- the clock ---------------------------------------------------------- */

static void test_expiry(void)
{
	struct kv_store *st = new_store(0);
	struct client c;
	client_init(&c, st);
	EXCHANGE(&c, "set e 0 10 1\r\nx\r\nset f 0 0 1\r\ny\r\nset g 0 -1 1\r\nz\r\nget e f g\r\n",
		 "STORED\r\nSTORED\r\nSTORED\r\nVALUE e 0 1\r\nx\r\nVALUE f 0 1\r\ny\r\nEND\r\n");
	kv_store_advance_clock(st, 11);
	EXCHANGE(&c, "get e f\r\nadd e 0 0 1\r\nX\r\nget e\r\n",
		 "VALUE f 0 1\r\ny\r\nEND\r\nSTORED\r\nVALUE e 0 1\r\nX\r\nEND\r\n");
	/* touch sets a new expiry; the sweep removes what nobody reads */
	EXCHANGE(&c, "touch f 5\r\nset h 0 3 1\r\nh\r\n", "TOUCHED\r\nSTORED\r\n");
	kv_store_advance_clock(st, 6);
	ASSERT_TRUE(kv_store_sweep_useful(st));
	ASSERT_EQ(kv_store_sweep(st), 2); /* f and h */
	EXCHANGE(&c, "get e f h\r\n", "VALUE e 0 1\r\nX\r\nEND\r\n");

	/* flush_all 10: items made before the deadline read as absent after it */
	EXCHANGE(&c, "set a 0 0 1\r\na\r\nflush_all 10\r\nget a\r\n", "STORED\r\nOK\r\nVALUE a 0 1\r\na\r\nEND\r\n");
	kv_store_advance_clock(st, 11);
	EXCHANGE(&c, "get a e\r\nset b 0 0 1\r\nb\r\nget b\r\n", "END\r\nSTORED\r\nVALUE b 0 1\r\nb\r\nEND\r\n");
	/* ... and a later flush_all cancels a pending one */
	EXCHANGE(&c, "flush_all 100\r\nflush_all 0\r\nset d 0 0 1\r\nd\r\n", "OK\r\nOK\r\nSTORED\r\n");
	kv_store_advance_clock(st, 101);
	EXCHANGE(&c, "get d\r\n", "VALUE d 0 1\r\nd\r\nEND\r\n");
	client_destroy(&c);
	kv_store_free(st);
}

/* ---- the memory limit --------------------------------------------------- */

static uint64_t store_bytes(struct kv_store *st)
{
	struct kv_store_stats s;
	kv_store_stats(st, &s);
	return s.bytes;
}

/* Items leave memory after a grace period, on liburcu's thread. */
static void wait_for_bytes(struct kv_store *st, uint64_t want_at_most)
{
	for (int i = 0; i < 2000 && store_bytes(st) > want_at_most; i++) {
		ASSERT_EQ(syncmap_synchronize(), 0);
		usleep(1000);
	}
	ASSERT_LE(store_bytes(st), want_at_most);
}

/* "set KEY 0 0 LEN\r\n<LEN x FILL>\r\n" */
static void send_set(struct client *c, const char *cmd, const char *key, size_t len, char fill)
{
	char line[300];
	char *data = malloc(len + 2);
	ASSERT(data != NULL);
	int n = snprintf(line, sizeof(line), "%s %s 0 0 %zu\r\n", cmd, key, len);
	memset(data, fill, len);
	memcpy(data + len, "\r\n", 2);
	feed(c, line, (size_t)n);
	feed(c, data, len + 2);
	free(data);
}

static void expect_reply(struct client *c, const char *what, const char *want)
{
	char *got = take_output(c);
	if (strcmp(got, want) != 0)
		TEST_FAIL("%s: want %s, got %.200s", what, want, got);
	free(got);
}

static void test_memory_limit(void)
{
	const size_t limit = 64 * 1024;
	struct kv_store *st = new_store(limit);
	struct client c;
	client_init(&c, st);
	char key[32];
	int stored = 0;
	for (;;) {
		snprintf(key, sizeof(key), "key%d", stored);
		send_set(&c, "set", key, 1000, 'v');
		char *got = take_output(&c);
		bool refused = strcmp(got, "SERVER_ERROR out of memory storing object\r\n") == 0;
		ASSERT(refused || strcmp(got, "STORED\r\n") == 0);
		free(got);
		if (refused)
			break;
		ASSERT_LT(++stored, 1000);
	}
	ASSERT_GE(stored, 50);
	ASSERT_LE(store_bytes(st), limit);
	/* The refused data block was swallowed: the session goes on.  A set
	 * refused for memory also deletes the key (memcached: the client must
	 * not read the old value as if nothing had been asked). */
	send_set(&c, "set", "key0", 1000, 'w');
	expect_reply(&c, "set key0 when full", "SERVER_ERROR out of memory storing object\r\n");
	EXCHANGE(&c, "get key0\r\n", "END\r\n");
	/* key0's memory comes back after the grace period: room for one more */
	wait_for_bytes(st, limit - 1000);
	send_set(&c, "set", "key0", 1000, 'w');
	expect_reply(&c, "set key0 after its delete", "STORED\r\n");

	/* every charge is released: flush, and wait for the frees */
	EXCHANGE(&c, "flush_all\r\n", "OK\r\n");
	wait_for_bytes(st, 0);

	/* append past the limit: NOT_STORED, as memcached (its allocation of the
	 * joined item fails), and the old value stays */
	send_set(&c, "set", "half", 30000, 'a');
	expect_reply(&c, "set half", "STORED\r\n");
	send_set(&c, "append", "half", 30000, 'b');
	expect_reply(&c, "append over the limit", "NOT_STORED\r\n");
	feed(&c, "get half\r\n", 10);
	char *got = take_output(&c);
	ASSERT(strncmp(got, "VALUE half 0 30000\r\naaa", 23) == 0);
	free(got);
	client_destroy(&c);
	kv_store_free(st);
}

/* A client gone in the middle of a data block leaves nothing behind. */
static void test_abandoned(void)
{
	struct kv_store *st = new_store(0);
	struct client c;
	client_init(&c, st);
	feed(&c, "set k 0 0 100\r\nonly part of it", 30);
	ASSERT_GT(store_bytes(st), 100);
	client_destroy(&c);
	ASSERT_EQ(store_bytes(st), 0);
	kv_store_free(st);
}

/* The session pauses when replies pile up, and resumes where it was. */
static void test_high_water(void)
{
	struct kv_store *st = new_store(0);
	struct client c;
	client_init(&c, st);
	static char big[100000];
	memset(big, 'b', sizeof(big));
	char cmd[64];
	int n = snprintf(cmd, sizeof(cmd), "set big 0 0 %zu\r\n", sizeof(big));
	feed(&c, cmd, (size_t)n);
	feed(&c, big, sizeof(big));
	EXCHANGE(&c, "\r\n", "STORED\r\n");
	/* 10 gets of 100 kB: over the high-water mark after 3 */
	struct kv_buf in = {0};
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(kv_buf_append(&in, "get big\r\n", 9), 0);
	size_t used = kv_session_process(&c.s, in.data, in.len, &c.out, &c.status);
	ASSERT_EQ(c.status, KV_OUTPUT_FULL);
	ASSERT_LT(used, in.len);
	ASSERT_GE(c.out.len, (size_t)KV_OUT_HIGH_WATER);
	c.out.len = 0;
	size_t used2 = kv_session_process(&c.s, in.data + used, in.len - used, &c.out, &c.status);
	ASSERT_GT(used2, 0);
	kv_buf_free(&in);
	client_destroy(&c);
	kv_store_free(st);
}

static void test_numbers(void)
{
	uint32_t u;
	int32_t i;
	uint64_t w;
	ASSERT_TRUE(kv_parse_u32("4294967297", &u));
	ASSERT_EQ(u, 1);
	ASSERT_FALSE(kv_parse_u32("-1", &u));
	ASSERT_TRUE(kv_parse_u32("-0", &u));
	ASSERT_TRUE(kv_parse_u32(" +7\t", &u));
	ASSERT_EQ(u, 7);
	ASSERT_FALSE(kv_parse_u32("7x", &u));
	ASSERT_FALSE(kv_parse_u32("", &u));
	ASSERT_TRUE(kv_parse_i32("-5", &i));
	ASSERT_EQ(i, -5);
	ASSERT_TRUE(kv_parse_i32("2147483648", &i));
	ASSERT_EQ(i, INT32_MIN);
	ASSERT_FALSE(kv_parse_i32("99999999999999999999", &i));
	ASSERT_TRUE(kv_parse_u64("18446744073709551615", &w));
	ASSERT_FALSE(kv_parse_u64("18446744073709551616", &w));
	ASSERT_FALSE(kv_parse_u64("-1", &w));
}

int main(void)
{
	test_numbers();
	test_replies();
	test_splits();
	test_expiry();
	test_memory_limit();
	test_abandoned();
	test_high_water();
	printf("kvcache session tests: PASS\n");
	return 0;
}
