/*
 * gomap_fuzz.c - libFuzzer target: the input is a program of map
 * operations, run on a gomap and on the reference map (../refmap.h); any
 * disagreement aborts.
 *
 * SPDX-License-Identifier: MIT
 *
 * Input layout:
 *   bytes 0..7   the map's hash seed (little endian; 0 is replaced by 1 so
 *                runs are reproducible: a zero seed would mean "random")
 *   byte 8       hint: 0 for most inputs, else (byte & 63) * 8
 *   then ops, each starting with a byte c:
 *     c % 16 in 0..4   put key             (key: see below)
 *                5..7  delete key
 *                8..9  get key
 *                10    iterator: one step (starts an iteration if none)
 *                11    iterator: start a new iteration
 *                12    bulk: insert (next byte) * 4 keys "B<counter>" (not
 *                      beyond 30000 keys)
 *                13    bulk: delete up to (next byte) * 4 of those
 *                14    the next operation runs with allocation number
 *                      (next byte % 24 + 1) failing (syncmap__fault_arm)
 *                15    clear (when the next byte is < 32), else get key
 *   key: a byte L, then
 *     L >= 0xF0: the key of an earlier operation (ring of 16 recent keys)
 *     L & 0x80:  100 + (L & 63) bytes: the next input bytes, cycled
 *     else:      L % 41 bytes from the input (zero-padded at the end)
 * Checked: every result and value, len after every op, the work bounds
 * of every put and delete (gomap_work), the iteration
 * contract (returned keys are present with their current value, no key
 * twice, every key present throughout is returned), -ENOMEM leaves the map
 * unchanged, and at the end (and every 256 ops while small) full equality
 * and the private invariants.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gomap_impl.h"
#include "refmap.h"
#include "gomap_invariants.h"

#define V(x) ((void *)(uintptr_t)(x))

struct input {
	const uint8_t *p;
	size_t n, i;
};

static unsigned in_byte(struct input *in)
{
	return in->i < in->n ? in->p[in->i++] : 0;
}

struct keybuf {
	unsigned char b[200];
	size_t len;
};

static struct keybuf recent[16];
static unsigned nrecent;

static void read_key(struct input *in, struct keybuf *k)
{
	unsigned L = in_byte(in);
	if (L >= 0xF0) {
		if (nrecent) {
			*k = recent[(L & 15) % (nrecent < 16 ? nrecent : 16)];
			return;
		}
		L &= 15;
	}
	if (L & 0x80) {
		k->len = 100 + (L & 63);
		size_t avail = in->n - in->i, take = avail < 8 ? avail : 8;
		for (size_t j = 0; j < k->len; j++)
			k->b[j] = take ? in->p[in->i + j % take] : (unsigned char)j;
		in->i += take;
	} else {
		k->len = L % 41;
		for (size_t j = 0; j < k->len; j++)
			k->b[j] = (unsigned char)in_byte(in);
	}
	recent[nrecent++ % 16] = *k;
}

struct fstate {
	struct gomap *m;
	struct refmap ref; /* born: op of insertion */
	struct refmap ret; /* keys returned by the current iteration */
	struct gomap_iter it;
	bool iterating;
	uint64_t op, iter_start;
	long fault; /* arm this before the next op, 0 = none */
	uint64_t bulk_next, bulk_del;
};

static void iter_end_check(struct fstate *s)
{
	size_t i = 0;
	struct ref_entry *e;
	while ((e = ref_next(&s->ref, &i)))
		if (e->born < s->iter_start && !ref_find(&s->ret, e->key, e->klen))
			REF_FAIL("iteration missed a key (length %zu) present throughout", e->klen);
	s->iterating = false;
}

static void iter_start(struct fstate *s)
{
	gomap_iter_init(&s->it, s->m);
	ref_clear(&s->ret);
	s->iter_start = s->op;
	s->iterating = true;
}

static void iter_step(struct fstate *s)
{
	if (!s->iterating) {
		iter_start(s);
		return;
	}
	const void *k;
	size_t kl;
	void *v;
	if (!gomap_iter_next(&s->it, &k, &kl, &v)) {
		iter_end_check(s);
		if (gomap_iter_next(&s->it, &k, &kl, &v))
			REF_FAIL("exhausted iterator returned a key");
		return;
	}
	struct ref_entry *e = ref_find(&s->ref, k, kl);
	if (!e)
		REF_FAIL("iteration returned an absent key (length %zu)", kl);
	if (e->val != v)
		REF_FAIL("iteration returned a stale value");
	if (ref_find(&s->ret, k, kl))
		REF_FAIL("iteration returned a key (length %zu) twice", kl);
	ref_put(&s->ret, k, kl, NULL, NULL);
}

/* The per-operation work bounds of gomap.h. */
static void check_work(const struct fstate *s)
{
	struct gomap_work w;
	gomap_work(s->m, &w);
	if (w.last_evacuated > GOMAP_MAX_EVACUATE_PER_OP || w.last_skipped > GOMAP_MAX_SKIP_PER_OP)
		REF_FAIL("one operation evacuated %zu old buckets, skipped %zu", w.last_evacuated, w.last_skipped);
}

static void do_put(struct fstate *s, const void *k, size_t kl)
{
	void *v = V(s->op * 2 + 1);
	struct ref_entry *e = ref_find(&s->ref, k, kl);
	void *before = e ? e->val : NULL;
	int rc = gomap_put(s->m, k, kl, v);
	check_work(s);
	if (rc == -ENOMEM) {
		if (!s->fault)
			REF_FAIL("put failed with no fault armed");
		void *got = V(7);
		bool found = gomap_get(s->m, k, kl, &got);
		if (found != (e != NULL) || (e && got != before))
			REF_FAIL("a failed put changed the map");
		return;
	}
	if (rc != 0)
		REF_FAIL("put returned %d", rc);
	bool isnew;
	e = ref_put(&s->ref, k, kl, v, &isnew);
	if (isnew)
		e->born = s->op;
}

static void do_del(struct fstate *s, const void *k, size_t kl)
{
	void *a = V(3), *b = V(3);
	bool x = gomap_delete(s->m, k, kl, &a);
	check_work(s);
	bool y = ref_del(&s->ref, k, kl, &b);
	if (x != y || a != b)
		REF_FAIL("delete: gomap %d/%p, reference %d/%p", x, a, y, b);
}

static void do_get(struct fstate *s, const void *k, size_t kl)
{
	void *a = V(5);
	bool x = gomap_get(s->m, k, kl, &a);
	struct ref_entry *e = ref_find(&s->ref, k, kl);
	if (x != (e != NULL) || (e && a != e->val) || (!e && a != V(5)))
		REF_FAIL("get: gomap %d/%p, reference %d", x, a, e != NULL);
}

static size_t bulk_key(uint64_t i, unsigned char *b)
{
	b[0] = 'B';
	memcpy(b + 1, &i, 4);
	return 5;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 9)
		return 0;
	struct input in = {data, size, 0};
	uint64_t seed = 0;
	for (int i = 0; i < 8; i++)
		seed |= (uint64_t)in_byte(&in) << (8 * i);
	if (seed == 0)
		seed = 1;
	unsigned hb = in_byte(&in);
	struct gomap_options opt = {.seed = seed, .hint = hb < 128 ? 0 : (size_t)(hb & 63) * 8};

	struct fstate s;
	memset(&s, 0, sizeof s);
	nrecent = 0;
	s.m = gomap_new(&opt);
	if (!s.m)
		abort();
	ref_init(&s.ref);
	ref_init(&s.ret);
	struct keybuf k;

	while (in.i < in.n && s.op < 20000) {
		s.op++;
		unsigned c = in_byte(&in) % 16;
		if (c == 14) {
			s.fault = (long)(in_byte(&in) % 24) + 1;
			continue;
		}
		if (s.fault)
			syncmap__fault_arm(s.fault);
		if (c <= 4) {
			read_key(&in, &k);
			do_put(&s, k.b, k.len);
		} else if (c <= 7) {
			read_key(&in, &k);
			do_del(&s, k.b, k.len);
		} else if (c <= 9) {
			read_key(&in, &k);
			do_get(&s, k.b, k.len);
		} else if (c == 10) {
			iter_step(&s);
		} else if (c == 11) {
			iter_start(&s);
		} else if (c == 12) {
			unsigned n = in_byte(&in) * 4;
			if (s.ref.count > 30000) /* keep runs fast */
				n = 0;
			unsigned char b[8];
			for (unsigned j = 0; j < n; j++) {
				size_t kl = bulk_key(s.bulk_next++, b);
				do_put(&s, b, kl);
				s.op++;
			}
		} else if (c == 13) {
			unsigned n = in_byte(&in) * 4;
			unsigned char b[8];
			for (unsigned j = 0; j < n && s.bulk_del < s.bulk_next; j++) {
				size_t kl = bulk_key(s.bulk_del++, b);
				do_del(&s, b, kl);
				s.op++;
			}
		} else {
			if (in_byte(&in) < 32) {
				gomap_clear(s.m);
				ref_clear(&s.ref);
			} else {
				read_key(&in, &k);
				do_get(&s, k.b, k.len);
			}
		}
		if (s.fault) {
			syncmap__fault_stop();
			s.fault = 0;
		}
		if (gomap_len(s.m) != s.ref.count)
			REF_FAIL("len %zu, reference %zu", gomap_len(s.m), s.ref.count);
		if (s.ref.count < 512 && s.op % 256 == 0) {
			ref_check_equal(s.m, &s.ref);
			gomap_check_invariants(s.m);
		}
	}
	syncmap__fault_stop();
	while (s.iterating)
		iter_step(&s);
	ref_check_equal(s.m, &s.ref);
	gomap_check_invariants(s.m);
	gomap_free(s.m);
	ref_destroy(&s.ref);
	ref_destroy(&s.ret);
	return 0;
}
