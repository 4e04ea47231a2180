/*
 * refmap.h - the reference the gomap tests compare against, and the helpers
 * that compare a gomap with it.
 *
 * SPDX-License-Identifier: MIT
 *
 * The reference is deliberately dull: open addressing with linear probing
 * over one array, FNV-1a, tombstones, a full rehash when more than half the
 * slots are used.  Keys are copied byte strings (any length, including 0),
 * values are `void *`.  Each entry carries two words the tests may use for
 * bookkeeping (`born`, `mark`): the iteration tests record when a key was
 * inserted and whether an iteration returned it.
 *
 * Used by gomap_model.c, gomap_iter.c, gomap_fault.c and fuzz/gomap_fuzz.c.
 * Failures go through REF_FAIL, which the includer may define (the fuzz
 * target has no testutil.h); by default it is testutil.h's TEST_FAIL.
 */
#ifndef SM_TEST_REFMAP_H
#define SM_TEST_REFMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomap.h"

#ifndef REF_FAIL
#include "testutil.h"
#define REF_FAIL(...) TEST_FAIL(__VA_ARGS__)
/* testutil.h's ASSERT_PTR_EQ expands to `const void *a_ = ..., b_ = ...`,
 * which declares b_ as `const void`; a typedef makes both pointers. */
typedef const void *test_cptr_t;
#undef ASSERT_PTR_EQ
#define ASSERT_PTR_EQ(a, b) ASSERT_OP_(a, ==, b, "%p", test_cptr_t)
#endif

enum { REF_EMPTY = 0, REF_USED = 1, REF_TOMB = 2 };

struct ref_entry {
	unsigned char *key; /* malloc'd copy (NULL when klen == 0) */
	size_t klen;
	void *val;
	uint64_t hash;
	uint64_t born; /* free for the test: e.g. op number of the insertion */
	uint64_t mark; /* free for the test: e.g. iteration that returned it */
	uint8_t state;
};

struct refmap {
	struct ref_entry *e;
	size_t cap;   /* power of two */
	size_t count; /* live entries */
	size_t used;  /* live + tombstones */
};

static inline uint64_t ref_hash(const void *key, size_t klen)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < klen; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= klen;
	h *= 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static inline void *ref_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "refmap: out of memory\n");
		abort();
	}
	return p;
}

static inline void ref_init(struct refmap *r)
{
	r->cap = 16;
	r->count = r->used = 0;
	r->e = calloc(r->cap, sizeof(*r->e));
	if (!r->e)
		abort();
}

static inline void ref_clear(struct refmap *r)
{
	if (r->count)
		for (size_t i = 0; i < r->cap; i++)
			if (r->e[i].state == REF_USED)
				free(r->e[i].key);
	if (r->cap > 16) { /* back to the initial size: clearing stays cheap */
		free(r->e);
		r->cap = 16;
		r->e = malloc(r->cap * sizeof(*r->e));
		if (!r->e)
			abort();
	}
	memset(r->e, 0, r->cap * sizeof(*r->e));
	r->count = r->used = 0;
}

static inline void ref_destroy(struct refmap *r)
{
	ref_clear(r);
	free(r->e); /* (ref_clear left a small table) */
	r->e = NULL;
	r->cap = 0;
}

static inline bool ref_key_eq(const struct ref_entry *e, uint64_t hash, const void *key, size_t klen)
{
	return e->hash == hash && e->klen == klen && (klen == 0 || memcmp(e->key, key, klen) == 0);
}

/* The live entry holding `key`, or NULL. */
static inline struct ref_entry *ref_find(const struct refmap *r, const void *key, size_t klen)
{
	uint64_t h = ref_hash(key, klen);
	size_t mask = r->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct ref_entry *e = &r->e[i];
		if (e->state == REF_EMPTY)
			return NULL;
		if (e->state == REF_USED && ref_key_eq(e, h, key, klen))
			return e;
	}
}

static inline void ref_rehash(struct refmap *r, size_t newcap)
{
	struct ref_entry *old = r->e;
	size_t oldcap = r->cap;
	r->e = calloc(newcap, sizeof(*r->e));
	if (!r->e)
		abort();
	r->cap = newcap;
	r->used = r->count;
	for (size_t j = 0; j < oldcap; j++) {
		if (old[j].state != REF_USED)
			continue;
		size_t i = old[j].hash & (newcap - 1);
		while (r->e[i].state != REF_EMPTY)
			i = (i + 1) & (newcap - 1);
		r->e[i] = old[j];
	}
	free(old);
}

/* Insert or update.  Returns the entry; *isnew tells which. */
static inline struct ref_entry *ref_put(struct refmap *r, const void *key, size_t klen, void *val, bool *isnew)
{
	struct ref_entry *e = ref_find(r, key, klen);
	if (e) {
		e->val = val;
		if (isnew)
			*isnew = false;
		return e;
	}
	if ((r->used + 1) * 2 > r->cap) {
		size_t nc = 16;
		while ((r->count + 1) * 4 > nc) /* load <= 1/4 after the rehash */
			nc *= 2;
		ref_rehash(r, nc);
	}
	uint64_t h = ref_hash(key, klen);
	size_t mask = r->cap - 1;
	size_t i = h & mask;
	while (r->e[i].state == REF_USED)
		i = (i + 1) & mask;
	e = &r->e[i];
	if (e->state == REF_EMPTY)
		r->used++;
	e->state = REF_USED;
	e->klen = klen;
	e->key = NULL;
	if (klen) {
		e->key = ref_xmalloc(klen);
		memcpy(e->key, key, klen);
	}
	e->hash = h;
	e->val = val;
	e->born = 0;
	e->mark = 0;
	r->count++;
	if (isnew)
		*isnew = true;
	return e;
}

static inline bool ref_del(struct refmap *r, const void *key, size_t klen, void **old)
{
	struct ref_entry *e = ref_find(r, key, klen);
	if (!e)
		return false;
	if (old)
		*old = e->val;
	free(e->key);
	e->key = NULL;
	e->state = REF_TOMB;
	r->count--;
	/* Keep the table at most 1/16 full-sized so random picks stay cheap. */
	if (r->cap > 64 && r->count * 16 < r->cap)
		ref_rehash(r, r->cap / 4);
	return true;
}

/* Iterate the live entries: for (i = 0; (e = ref_next(r, &i)); ) */
static inline struct ref_entry *ref_next(const struct refmap *r, size_t *i)
{
	while (*i < r->cap) {
		struct ref_entry *e = &r->e[(*i)++];
		if (e->state == REF_USED)
			return e;
	}
	return NULL;
}

/* ---- comparing a gomap with the reference ----------------------------- */

/*
 * Check that `m` holds exactly the keys and values of `r`: the lengths
 * agree, every reference key is found with its value, and one full
 * iteration of `m` (nothing modified meanwhile) returns every key exactly
 * once with its value.  Uses the entries' `mark` field as scratch.
 */
static inline void ref_check_equal(struct gomap *m, struct refmap *r)
{
	if (gomap_len(m) != r->count)
		REF_FAIL("gomap_len %zu != reference count %zu", gomap_len(m), r->count);
	size_t i = 0;
	struct ref_entry *e;
	while ((e = ref_next(r, &i))) {
		void *v = (void *)(uintptr_t)0xdeadbeef;
		if (!gomap_get(m, e->key, e->klen, &v))
			REF_FAIL("key of length %zu missing from the gomap", e->klen);
		if (v != e->val)
			REF_FAIL("key of length %zu: value %p, reference %p", e->klen, v, e->val);
		e->mark = 0;
	}
	struct gomap_iter it;
	gomap_iter_init(&it, m);
	const void *k;
	size_t kl;
	void *v;
	size_t n = 0;
	while (gomap_iter_next(&it, &k, &kl, &v)) {
		struct ref_entry *f = ref_find(r, k, kl);
		if (!f)
			REF_FAIL("iteration returned a key (length %zu) the reference does not have", kl);
		if (f->mark)
			REF_FAIL("iteration returned a key (length %zu) twice", kl);
		if (f->val != v)
			REF_FAIL("iteration returned value %p, reference %p", v, f->val);
		f->mark = 1;
		n++;
	}
	if (n != r->count)
		REF_FAIL("iteration returned %zu keys, reference holds %zu", n, r->count);
	if (gomap_iter_next(&it, &k, &kl, &v))
		REF_FAIL("exhausted iterator returned a key");
}

#endif
