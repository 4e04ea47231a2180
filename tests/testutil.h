/*
 * testutil.h - the few things every test needs: typed asserts that print
 * both operands, a reproducible seed (printed, overridable with SEED=...),
 * and a fast PRNG.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SM_TESTUTIL_H
#define SM_TESTUTIL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEST_FAIL(...)                                                            \
	do {                                                                      \
		fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);             \
		fprintf(stderr, __VA_ARGS__);                                     \
		fprintf(stderr, "\n");                                            \
		test_print_seed_hint();                                           \
		abort();                                                          \
	} while (0)

#define ASSERT(c)                                                                 \
	do {                                                                      \
		if (!(c))                                                         \
			TEST_FAIL("%s", #c);                                      \
	} while (0)

#define ASSERT_OP_(a, op, b, fmt, type)                                           \
	do {                                                                      \
		type a_ = (type)(a);                                              \
		type b_ = (type)(b);                                              \
		if (!(a_ op b_))                                                  \
			TEST_FAIL("%s %s %s (" fmt " vs " fmt ")", #a, #op, #b, a_, b_); \
	} while (0)

#define ASSERT_EQ(a, b) ASSERT_OP_(a, ==, b, "%" PRId64, int64_t)
#define ASSERT_NE(a, b) ASSERT_OP_(a, !=, b, "%" PRId64, int64_t)
#define ASSERT_LE(a, b) ASSERT_OP_(a, <=, b, "%" PRId64, int64_t)
#define ASSERT_LT(a, b) ASSERT_OP_(a, <, b, "%" PRId64, int64_t)
#define ASSERT_GE(a, b) ASSERT_OP_(a, >=, b, "%" PRId64, int64_t)
#define ASSERT_GT(a, b) ASSERT_OP_(a, >, b, "%" PRId64, int64_t)
#define ASSERT_PTR_EQ(a, b) ASSERT_OP_(a, ==, b, "%p", const void *)
#define ASSERT_TRUE(a) ASSERT_EQ(!!(a), 1)
#define ASSERT_FALSE(a) ASSERT_EQ(!!(a), 0)

static uint64_t test_seed_value;
static bool test_seed_set;

static inline void test_print_seed_hint(void)
{
	if (test_seed_set)
		fprintf(stderr, "reproduce with: SEED=%" PRIu64 " %s\n", test_seed_value,
			getenv("_") ? getenv("_") : "<test binary>");
}

/* The run's seed: $SEED if set, else time-based; printed once. */
static inline uint64_t test_seed(void)
{
	if (!test_seed_set) {
		const char *s = getenv("SEED");
		test_seed_value = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)clock();
		test_seed_set = true;
		printf("seed: %" PRIu64 " (set SEED=%" PRIu64 " to reproduce)\n", test_seed_value, test_seed_value);
		fflush(stdout);
	}
	return test_seed_value;
}

/* xorshift64*: tiny, fast, good enough to drive tests. */
struct test_rng {
	uint64_t s;
};

static inline void test_rng_init(struct test_rng *r, uint64_t seed)
{
	r->s = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

static inline uint64_t test_rng_next(struct test_rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n). */
static inline uint64_t test_rng_below(struct test_rng *r, uint64_t n)
{
	return n ? test_rng_next(r) % n : 0;
}

/* Scale factor for long tests: TEST_SCALE=0.1 for a quick run, 10 for soak. */
static inline double test_scale(void)
{
	const char *s = getenv("TEST_SCALE");
	double v = s ? atof(s) : 1.0;
	return v > 0 ? v : 1.0;
}

#endif
