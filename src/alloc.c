/*
 * alloc.c - allocation wrappers with a fault-injection countdown.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if SM_FAULT_INJECTION
/* Nonzero only while a test counts or arms failures. */
static atomic_int fault_active;
static atomic_long fault_countdown; /* > 0: allocations left before one fails */
static atomic_long fault_counter;
static atomic_bool fault_hit;

static bool fault_should_fail(void)
{
	if (__builtin_expect(atomic_load_explicit(&fault_active, memory_order_relaxed) == 0, 1))
		return false;
	atomic_fetch_add_explicit(&fault_counter, 1, memory_order_relaxed);
	long left = atomic_load_explicit(&fault_countdown, memory_order_relaxed);
	while (left > 0) {
		if (atomic_compare_exchange_weak_explicit(&fault_countdown, &left, left - 1,
							  memory_order_relaxed, memory_order_relaxed)) {
			if (left == 1) {
				atomic_store_explicit(&fault_hit, true, memory_order_relaxed);
				errno = ENOMEM; /* as a failing malloc does */
				return true;
			}
			return false;
		}
	}
	return false;
}
#else
/* Production: no countdown; the wrappers below reduce to the system call. */
static inline bool fault_should_fail(void)
{
	return false;
}
#endif /* SM_FAULT_INJECTION */

void *syncmap__malloc(size_t n)
{
	if (fault_should_fail())
		return NULL;
	return malloc(n);
}

void *syncmap__aligned_alloc(size_t align, size_t size)
{
	void *p;
	if (fault_should_fail() || posix_memalign(&p, align, size) != 0)
		return NULL;
	return p;
}

void syncmap__free(void *p)
{
	free(p);
}

void *syncmap__alloc_zeroed(size_t n)
{
	if (fault_should_fail())
		return NULL;
	if (n < SM_MMAP_MIN)
		return calloc(1, n);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	return p;
}

void syncmap__advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
	/* Bucket arrays are probed at random: with 4 KiB pages a large map
	 * misses the TLB on nearly every lookup (measured: get-hit at 1e7
	 * keys 145 -> 106 ns, put p99 4 -> 1.2 us).  Advice only; where THP
	 * is off this is a no-op.  Blocks this big are always mmapped. */
	if (p && n >= ((size_t)2 << 20)) {
		/* Advice only: a kernel without THP says EINVAL, which must not
		 * reach the caller's errno (a Load that promotes reports
		 * nothing). */
		int saved_errno = errno;
		(void)madvise(p, n, MADV_HUGEPAGE);
		errno = saved_errno;
	}
#else
	(void)p;
	(void)n;
#endif
}

void syncmap__free_zeroed(void *p, size_t n)
{
	if (!p)
		return;
	if (n < SM_MMAP_MIN)
		free(p);
	else
		munmap(p, n);
}

size_t syncmap__free_zeroed_step(void *p, size_t n, size_t *mapped, size_t budget)
{
	size_t left = *mapped;
	if (n < SM_MMAP_MIN || left == 0) {
		if (left)
			free(p);
		*mapped = 0;
		return left;
	}
	static _Atomic size_t page_size; /* every thread stores the same value */
	size_t page = atomic_load_explicit(&page_size, memory_order_relaxed);
	if (!page) {
		page = (size_t)sysconf(_SC_PAGESIZE);
		atomic_store_explicit(&page_size, page, memory_order_relaxed);
	}
	size_t whole = (left + page - 1) / page * page; /* still mapped, in pages */
	size_t step = budget / page * page;
	if (step == 0)
		step = page;
	if (step + page > whole) { /* the last slice, header included */
		munmap(p, whole);
		*mapped = 0;
		return left;
	}
	munmap((char *)p + whole - step, step);
	*mapped = whole - step;
	return left - (whole - step);
}

#if SM_FAULT_INJECTION
void syncmap__fault_arm(long n)
{
	atomic_store(&fault_hit, false);
	atomic_store(&fault_countdown, n > 0 ? n : 0);
	atomic_store(&fault_active, 1);
}

void syncmap__fault_stop(void)
{
	atomic_store(&fault_countdown, 0);
	atomic_store(&fault_active, 0);
}

void syncmap__fault_count_start(void)
{
	atomic_store(&fault_counter, 0);
	atomic_store(&fault_active, 1);
}

long syncmap__fault_count(void)
{
	return atomic_load(&fault_counter);
}

bool syncmap__fault_fired(void)
{
	return atomic_load(&fault_hit);
}
#endif /* SM_FAULT_INJECTION */

bool syncmap__fault_inject(void)
{
	return fault_should_fail();
}
