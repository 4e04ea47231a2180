/*
 * common.h - pieces shared by the stress tool and the benchmark harness:
 * the PRNG and key derivation that the Go anchor programs (stress/go) use
 * bit for bit, clocks, and latency percentiles.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SM_STRESS_COMMON_H
#define SM_STRESS_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* splitmix64: key k_i = splitmix64(i + 1) in the gomap benchmarks; worker
 * seeds = splitmix64(worker_id + 1 + seed) in the syncmap benchmarks. */
static inline uint64_t sm_splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	uint64_t z = x;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* xorshift64*: the per-worker generator of every randomized workload. */
struct sm_rng {
	uint64_t s;
};

static inline void sm_rng_seed(struct sm_rng *r, uint64_t seed)
{
	r->s = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

static inline uint64_t sm_rng_next(struct sm_rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Key encodings shared with stress/go: `int` keys are the 8 bytes of the
 * uint64 (little-endian on the machines we run); `str32` keys are the
 * decimal representation left-padded with '0' to exactly 32 bytes. */
#define SM_KEY_MAX 32

static inline size_t sm_key_int(uint64_t k, unsigned char *buf)
{
	memcpy(buf, &k, 8);
	return 8;
}

static inline size_t sm_key_str32(uint64_t k, unsigned char *buf)
{
	for (int i = 31; i >= 0; i--) {
		buf[i] = (unsigned char)('0' + k % 10);
		k /= 10;
	}
	return 32;
}

static inline uint64_t sm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Latency percentiles over a sample array (sorted in place). */
struct sm_pct {
	uint64_t n, p50, p99, p999, max;
};

static int sm_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static inline struct sm_pct sm_percentiles(uint64_t *v, size_t n)
{
	struct sm_pct p = {0};
	if (!n)
		return p;
	qsort(v, n, sizeof(*v), sm_u64_cmp);
	p.n = n;
	p.p50 = v[(n - 1) * 50 / 100];
	p.p99 = v[(n - 1) * 99 / 100];
	p.p999 = v[(n - 1) * 999 / 1000];
	p.max = v[n - 1];
	return p;
}

#endif
