/*
 * blockcache.c - see blockcache.h.
 *
 * SPDX-License-Identifier: MIT
 *
 * The cache is a list of zeroed blocks per exact size, linked through each
 * block's first two words (cleared again when the block is handed out), under
 * one mutex.  Sizes are few (one per B for arrays, one per chunk index for
 * overflow chunks), so a short table searched linearly is enough.  In ASAN
 * builds a cached block is poisoned, apart from its link words, so a write
 * through a stale pointer into a block that was given back is reported.
 */
#include "blockcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define SM_BLOCK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SM_BLOCK_ASAN 1
#endif
#endif
#ifdef SM_BLOCK_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Distinct block sizes the cache can hold: gomap's arrays of SM_MMAP_MIN
 * bytes and more take at most 20 (B = 11..30), its overflow chunks 20. */
#define CLASSES 64

/* The head of a cached block (the rest is zero, and poisoned under ASAN). */
struct block {
	struct block *next;
	size_t size;
};

enum { REL_CACHING = 1, REL_UNMAPPING = 2 };

static struct {
	pthread_mutex_t mu;
	size_t limit, bytes, reserved, blocks;
	size_t hits, fresh, cached, rejected;
	unsigned nclasses;
	struct {
		size_t size;
		struct block *head;
	} cls[CLASSES];
} cache = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.limit = SM_BLOCK_CACHE_LIMIT,
};

/* The class of size n, created when `create` and a slot is free; call
 * with the lock held. */
static int class_of(size_t n, bool create)
{
	for (unsigned i = 0; i < cache.nclasses; i++)
		if (cache.cls[i].size == n)
			return (int)i;
	if (!create || cache.nclasses == CLASSES)
		return -1;
	cache.cls[cache.nclasses].size = n;
	cache.cls[cache.nclasses].head = NULL;
	return (int)cache.nclasses++;
}

void *syncmap__block_alloc(size_t n)
{
	if (n >= SM_MMAP_MIN) {
		pthread_mutex_lock(&cache.mu);
		int c = class_of(n, false);
		struct block *b = c >= 0 ? cache.cls[c].head : NULL;
		if (b && syncmap__fault_inject()) {
			pthread_mutex_unlock(&cache.mu);
			return NULL; /* an injected failure (errno set) */
		}
		if (b) {
			cache.cls[c].head = b->next;
			cache.bytes -= n;
			cache.blocks--;
			cache.hits++;
			pthread_mutex_unlock(&cache.mu);
			UNPOISON(b, n);
			memset(b, 0, sizeof(*b)); /* the block is all zero again */
			return b;
		}
		cache.fresh++;
		pthread_mutex_unlock(&cache.mu);
	}
	return syncmap__alloc_zeroed(n);
}

/* Room for a block of n bytes, promised until cache_put; false when the
 * cache is full (or n is not cacheable). */
static bool cache_reserve(size_t n)
{
	if (n < SM_MMAP_MIN)
		return false;
	pthread_mutex_lock(&cache.mu);
	bool ok = cache.bytes + cache.reserved <= cache.limit &&
		  n <= cache.limit - cache.bytes - cache.reserved && class_of(n, true) >= 0;
	if (ok)
		cache.reserved += n;
	else
		cache.rejected++;
	pthread_mutex_unlock(&cache.mu);
	return ok;
}

/* Take in a zeroed block whose room was reserved. */
static void cache_put(void *p, size_t n)
{
	struct block *b = p;
	POISON((char *)p + sizeof(*b), n - sizeof(*b));
	pthread_mutex_lock(&cache.mu);
	int c = class_of(n, false); /* made by cache_reserve */
	b->size = n;
	b->next = cache.cls[c].head;
	cache.cls[c].head = b;
	cache.reserved -= n;
	cache.bytes += n;
	cache.blocks++;
	cache.cached++;
	pthread_mutex_unlock(&cache.mu);
}

void syncmap__block_free(void *p, size_t n, size_t dirty)
{
	if (!p)
		return;
	if (!cache_reserve(n)) {
		syncmap__free_zeroed(p, n);
		return;
	}
	memset(p, 0, dirty < n ? dirty : n);
	cache_put(p, n);
}

bool syncmap__block_release_step(void *p, size_t n, size_t dirty, struct sm_block_release *r, size_t budget,
			   size_t *released, size_t *worked)
{
	if (r->mode == 0) {
		if (cache_reserve(n)) {
			r->mode = REL_CACHING;
			r->left = dirty < n ? dirty : n;
			*released += n - r->left; /* never written: still zero */
		} else {
			r->mode = REL_UNMAPPING;
			r->left = n;
		}
	}
	if (r->mode == REL_CACHING) {
		size_t left = r->left;
		if (left <= budget) { /* the last step: *r may be zeroed by it */
			memset(p, 0, left);
			*released += left;
			*worked += left;
			cache_put(p, n);
			return true;
		}
		memset((char *)p + left - budget, 0, budget);
		r->left = left - budget;
		*released += budget;
		*worked += budget;
		return false;
	}
	size_t mapped = r->left;
	size_t done = syncmap__free_zeroed_step(p, n, &mapped, budget);
	*released += done;
	*worked += done;
	if (mapped == 0)
		return true;
	r->left = mapped;
	return false;
}

/* fork(2) while another thread holds the lock would leave the child's copy
 * locked forever: hold it across the fork, release it on both sides. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&cache.mu);
}

static void fork_release(void)
{
	pthread_mutex_unlock(&cache.mu);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
	(void)pthread_atfork(fork_prepare, fork_release, fork_release);
}

void syncmap__block_cache_stats(struct syncmap__block_cache_stats *st)
{
	pthread_mutex_lock(&cache.mu);
	st->bytes = cache.bytes;
	st->reserved = cache.reserved;
	st->blocks = cache.blocks;
	st->limit = cache.limit;
	st->hits = cache.hits;
	st->fresh = cache.fresh;
	st->cached = cache.cached;
	st->rejected = cache.rejected;
	pthread_mutex_unlock(&cache.mu);
}

size_t syncmap__block_cache_set_limit(size_t limit)
{
	struct block *drop = NULL;
	pthread_mutex_lock(&cache.mu);
	size_t old = cache.limit;
	cache.limit = limit;
	/* Largest classes first: the fewest blocks to give back. */
	while (cache.bytes > limit) {
		int big = -1;
		for (unsigned i = 0; i < cache.nclasses; i++)
			if (cache.cls[i].head && (big < 0 || cache.cls[i].size > cache.cls[big].size))
				big = (int)i;
		struct block *b = cache.cls[big].head;
		cache.cls[big].head = b->next;
		cache.bytes -= cache.cls[big].size;
		cache.blocks--;
		b->next = drop;
		drop = b;
	}
	pthread_mutex_unlock(&cache.mu);
	while (drop) {
		struct block *b = drop;
		drop = b->next;
		size_t n = b->size;
		UNPOISON(b, n); /* the next mapping at this address must not look poisoned */
		syncmap__free_zeroed(b, n);
	}
	return old;
}
