/*
 * rand.c - wyrand per thread, seeded from getrandom(2).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "rand.h"

#include <stdbool.h>
#include <sys/random.h>
#include <time.h>

/* initial-exec: see SM_TLS in syncmap_impl.h */
static _Thread_local __attribute__((tls_model("initial-exec"))) uint64_t rng_state;
static _Thread_local __attribute__((tls_model("initial-exec"))) bool rng_seeded;

static void rng_seed(void)
{
	uint64_t s = 0;
	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
		/* No entropy yet (early boot) or no syscall: mix what differs. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&s;
	}
	rng_state = s;
	rng_seeded = true;
}

uint64_t syncmap__rand64(void)
{
	if (__builtin_expect(!rng_seeded, 0))
		rng_seed();
	/* wyrand: one 64x64->128 multiply, passes BigCrush and PractRand. */
	rng_state += 0xa0761d6478bd642fULL;
	__uint128_t t = (__uint128_t)rng_state * (rng_state ^ 0xe7037ed1a0b428dbULL);
	return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

uint64_t syncmap__random_seed(void)
{
	uint64_t s;
	do
		s = syncmap__rand64();
	while (s == 0);
	return s;
}

void syncmap__rand_after_fork(void)
{
	rng_seeded = false;
}
