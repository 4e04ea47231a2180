/*
 * entries.c - allocation of the concurrent map's entries.
 *
 * SPDX-License-Identifier: MIT
 *
 * An entry is one 8-byte atomic word, and every key has one: from malloc it
 * would cost a 32-byte chunk.  Entries come from slabs instead, and dead ones
 * are recycled through two free lists per shard: one private to the holder
 * of the shard's mutex, one that grace-period callbacks push to (lock-free; the mutex holder takes it
 * whole with one exchange, so there is no ABA).  Slabs go back to the system
 * when the map is freed; in between, the entry memory of a shard is bounded
 * by its peak number of keys.
 *
 * Under AddressSanitizer every entry is its own allocation instead, so a use
 * after free of an entry is caught.
 */
#include "syncmap_impl.h"

#include "alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define SM_ENTRY_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SM_ENTRY_MALLOC 1
#endif
#endif

/* Slabs grow from 16 entries to 4096 (32 KiB), so small maps stay small. */
#define SLAB_MIN 16
#define SLAB_MAX 4096

static struct sm_entry *chain_next(struct sm_entry *e)
{
	return atomic_load_explicit(&e->p, memory_order_relaxed);
}

struct sm_entry *syncmap__entry_alloc(struct sm_shard *s)
{
	struct sm_entry *e;
#ifdef SM_ENTRY_MALLOC
	e = syncmap__malloc(sizeof(*e));
#else
	if (!s->free_entries) {
		/* Pairs with the release in syncmap__entry_free_chain: the callback's
		 * last touches of these entries happen before our reuse. */
		s->free_entries = atomic_exchange_explicit(&s->freed_entries, NULL, memory_order_acquire);
	}
	if (!s->free_entries) {
		size_t n = s->next_slab ? s->next_slab : SLAB_MIN;
		struct sm_slab *slab = syncmap__malloc(sizeof(*slab) + n * sizeof(struct sm_entry));
		if (!slab)
			return NULL;
		slab->n = n;
		slab->next = s->slabs;
		s->slabs = slab;
		s->next_slab = n < SLAB_MAX ? 2 * n : SLAB_MAX;
		for (size_t i = 0; i < n; i++)
			atomic_init(&slab->e[i].p, i + 1 < n ? (void *)&slab->e[i + 1] : NULL);
		s->free_entries = &slab->e[0];
	}
	e = s->free_entries;
	s->free_entries = chain_next(e);
#endif
	if (e) {
		atomic_init(&e->p, NULL);
		s->entries_live++;
	}
	return e;
}

void syncmap__entry_free_locked(struct sm_shard *s, struct sm_entry *e)
{
	s->entries_live--;
#ifdef SM_ENTRY_MALLOC
	syncmap__free(e);
#else
	atomic_store_explicit(&e->p, (void *)s->free_entries, memory_order_relaxed);
	s->free_entries = e;
#endif
}

void syncmap__entry_free_chain(struct sm_shard *s, struct sm_entry *first, struct sm_entry *last, long n)
{
	if (!first)
		return;
#ifdef SM_ENTRY_MALLOC
	(void)last;
	while (first) {
		struct sm_entry *next = chain_next(first);
		syncmap__free(first);
		first = next;
	}
#else
	struct sm_entry *head = atomic_load_explicit(&s->freed_entries, memory_order_relaxed);
	do
		atomic_store_explicit(&last->p, (void *)head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&s->freed_entries, &head, first, memory_order_release,
						      memory_order_relaxed));
#endif
	atomic_fetch_add_explicit(&s->freed_count, n, memory_order_relaxed);
}

void syncmap__entries_destroy(struct sm_shard *s)
{
	struct sm_slab *slab = s->slabs;
	while (slab) {
		struct sm_slab *next = slab->next;
		syncmap__free(slab);
		slab = next;
	}
	s->slabs = NULL;
	s->free_entries = NULL;
	atomic_store(&s->freed_entries, NULL);
}
