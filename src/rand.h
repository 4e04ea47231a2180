/*
 * rand.h - fast per-thread random numbers for seeds and iteration starts.
 *
 * SPDX-License-Identifier: MIT
 *
 * Not cryptographic (neither is Go's fastrand, which plays the same role):
 * each thread's generator is seeded once from getrandom(2), so map seeds are
 * unpredictable to anyone who cannot read the process's memory.
 */
#ifndef SM_RAND_H
#define SM_RAND_H

#include <stdint.h>

/* A random 64-bit number from this thread's generator. */
uint64_t syncmap__rand64(void);

/* A random nonzero 64-bit hash seed. */
uint64_t syncmap__random_seed(void);

/* In a forked child: reseed this thread's generator from getrandom(2) on
 * its next use, so the child does not draw the parent's numbers. */
void syncmap__rand_after_fork(void);

#endif
