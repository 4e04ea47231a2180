/*
 * keys.c - the key table and the key distributions.
 *
 * SPDX-License-Identifier: MIT
 *
 * Every key is precomputed at startup (the hot loop only indexes a table).
 * Key i is cfg.klen bytes: i in the first 4 bytes (little endian), so a key
 * seen in a range callback decodes to its index; then, for klen >= 8, a
 * 4-byte nonce (collide) or filler; then filler derived from i.
 *
 * Distributions pick an index inside a region (a thread's own keys, or the
 * shared keys): uniform, or zipfian with skew s through an alias table
 * (Vose), one random draw per sample either way.
 *
 * collide: with the map's hash seed fixed (cfg.map_seed), keys come in
 * groups of cfg.collide_group whose hashes share the low `bits` bits (the
 * bucket index at every size up to 2^bits buckets) and the top byte (the
 * tophash), so each group is one overflow chain in which every slot's
 * tophash matches and every probe compares keys.  Each key costs about
 * 2^(bits + 8) hashes to find, so the search runs on all CPUs and `bits`
 * is lowered (and the run says so) when the key space would take too long.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h" /* sm_hash: the library's own hash (src/hash.h) */
#include "stress.h"

unsigned char *ss_keytab;
struct ss_keyinfo ss_keyinfo;

/* Hashes the collide search may spend (about 1-2 s per core in release). */
#define COLLIDE_BUDGET (1ULL << 31)

static void fill_key(unsigned char *k, uint64_t i, uint32_t nonce)
{
	uint32_t i32 = (uint32_t)i;
	unsigned klen = cfg.klen;
	uint64_t f = sm_splitmix64(i ^ 0x6b6579ULL);
	unsigned char word[8];
	memcpy(word, &f, 8);
	memcpy(k, &i32, klen < 4 ? klen : 4);
	for (unsigned b = 4; b < klen; b++)
		k[b] = word[b % 8];
	if (klen >= 8 && cfg.dist == DIST_COLLIDE)
		memcpy(k + 4, &nonce, 4);
}

/* ---- collide: parallel search --------------------------------------------- */

struct collide_job {
	unsigned t, nt;
	unsigned bits;
	uint64_t hashes;
	int failed;
};

static void group_pattern(uint64_t g, unsigned bits, uint64_t *low, uint8_t *top)
{
	uint64_t r = sm_splitmix64(cfg.map_seed ^ (g * 0x9E3779B97F4A7C15ULL) ^ 0x636f6c6cULL);
	*low = bits ? r & ((1ULL << bits) - 1) : 0;
	*top = (uint8_t)(5 + (r >> 40) % 251); /* a real tophash value: 5..255 */
}

static void *collide_thread(void *arg)
{
	struct collide_job *j = arg;
	uint64_t mask = j->bits ? (1ULL << j->bits) - 1 : 0;
	for (uint64_t i = j->t; i < cfg.keys; i += j->nt) {
		uint64_t low;
		uint8_t top;
		group_pattern(i / cfg.collide_group, j->bits, &low, &top);
		unsigned char *k = ss_keytab + i * cfg.klen;
		fill_key(k, i, 0);
		if (ss_collide_search(k, cfg.klen, cfg.map_seed, mask, low, top, &j->hashes) < 0) {
			j->failed = 1;
			return NULL;
		}
		if (atomic_load_explicit(&ss_stop, memory_order_relaxed))
			return NULL;
	}
	return NULL;
}

static int build_collide(void)
{
	unsigned bits;
	if (cfg.collide_bits >= 0) {
		bits = (unsigned)cfg.collide_bits;
	} else {
		/* The B of a map holding every key: overLoadFactor is count > 6.5 * 2^B. */
		bits = 0;
		while (bits < 24 && cfg.keys * 2 > 13 * (1ULL << bits))
			bits++;
		while (bits > 0 && (double)cfg.keys * (double)(1ULL << (bits + 8)) > (double)COLLIDE_BUDGET)
			bits--;
	}
	ss_keyinfo.collide_bits = bits;
	ss_keyinfo.collide_groups = (unsigned)((cfg.keys + cfg.collide_group - 1) / cfg.collide_group);

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned nt = ncpu > 0 ? (unsigned)ncpu : 1;
	if (nt > 64)
		nt = 64;
	struct collide_job jobs[64];
	pthread_t tids[64];
	for (unsigned t = 0; t < nt; t++) {
		jobs[t] = (struct collide_job){.t = t, .nt = nt, .bits = bits};
		if (pthread_create(&tids[t], NULL, collide_thread, &jobs[t]) != 0) {
			fprintf(stderr, "syncmap-stress: pthread_create failed\n");
			exit(1);
		}
	}
	int failed = 0;
	for (unsigned t = 0; t < nt; t++) {
		pthread_join(tids[t], NULL);
		ss_keyinfo.hashes += jobs[t].hashes;
		failed |= jobs[t].failed;
	}
	if (failed) {
		fprintf(stderr, "syncmap-stress: collide: no key found for a group in 2^32 tries\n");
		return -1;
	}
	return 0;
}

/* Keys must be distinct (the first 4 bytes hold the index, so they are);
 * colliding keys must share their group's bucket bits and tophash. */
static int check_keys(void)
{
	if (cfg.dist != DIST_COLLIDE)
		return 0;
	unsigned bits = ss_keyinfo.collide_bits;
	uint64_t mask = bits ? (1ULL << bits) - 1 : 0;
	for (uint64_t i = 0; i < cfg.keys; i++) {
		uint64_t low;
		uint8_t top;
		group_pattern(i / cfg.collide_group, bits, &low, &top);
		uint64_t h = sm_hash(ss_key(i), cfg.klen, cfg.map_seed);
		if ((h & mask) != low || (uint8_t)(h >> 56) != top || ss_key_index(ss_key(i)) != (uint32_t)i) {
			fprintf(stderr, "syncmap-stress: collide: key %llu does not collide as built\n",
				(unsigned long long)i);
			return -1;
		}
	}
	return 0;
}

int ss_keys_build(void)
{
	uint64_t t0 = sm_now_ns();
	ss_keytab = malloc(cfg.keys * cfg.klen);
	if (!ss_keytab) {
		fprintf(stderr, "syncmap-stress: out of memory for %llu keys\n", (unsigned long long)cfg.keys);
		return -1;
	}
	if (cfg.dist == DIST_COLLIDE) {
		if (build_collide() != 0)
			return -1;
	} else {
		for (uint64_t i = 0; i < cfg.keys; i++)
			fill_key(ss_keytab + i * cfg.klen, i, 0);
	}
	if (check_keys() != 0)
		return -1;
	ss_keyinfo.gen_seconds = (double)(sm_now_ns() - t0) / 1e9;
	return 0;
}

void ss_keys_free(void)
{
	free(ss_keytab);
	ss_keytab = NULL;
}

/* ---- samplers -------------------------------------------------------------- */

/* Vose's alias method over p_i = (i + 1)^-s / zeta. */
static void build_alias(struct ss_sampler *s, uint64_t n, double skew)
{
	double *scaled = malloc(n * sizeof(double));
	uint32_t *small = malloc(n * sizeof(uint32_t)), *large = malloc(n * sizeof(uint32_t));
	s->thresh = malloc(n * sizeof(uint32_t));
	s->alias = malloc(n * sizeof(uint32_t));
	if (!scaled || !small || !large || !s->thresh || !s->alias) {
		fprintf(stderr, "syncmap-stress: out of memory for the zipf table\n");
		exit(1);
	}
	double sum = 0;
	for (uint64_t i = 0; i < n; i++)
		sum += scaled[i] = pow((double)(i + 1), -skew);
	size_t ns = 0, nl = 0;
	for (uint64_t i = 0; i < n; i++) {
		scaled[i] = scaled[i] * (double)n / sum;
		if (scaled[i] < 1.0)
			small[ns++] = (uint32_t)i;
		else
			large[nl++] = (uint32_t)i;
	}
	while (ns && nl) {
		uint32_t l = small[--ns], g = large[nl - 1];
		s->thresh[l] = (uint32_t)(scaled[l] * 4294967296.0);
		s->alias[l] = g;
		scaled[g] = scaled[g] + scaled[l] - 1.0;
		if (scaled[g] < 1.0) {
			nl--;
			small[ns++] = g;
		}
	}
	while (nl) {
		uint32_t g = large[--nl];
		s->thresh[g] = UINT32_MAX;
		s->alias[g] = g;
	}
	while (ns) {
		uint32_t l = small[--ns]; /* rounding leftovers: keep */
		s->thresh[l] = UINT32_MAX;
		s->alias[l] = l;
	}
	free(scaled);
	free(small);
	free(large);
}

void ss_sampler_init(struct ss_sampler *s, uint64_t n)
{
	memset(s, 0, sizeof(*s));
	s->n = n;
	if (cfg.dist == DIST_ZIPF && n > 1)
		build_alias(s, n, cfg.zipf_s);
}
