/*
 * lincheck.h - a linearizability checker for the history of ONE key
 * (Wing & Gong's search with Lowe's memoization, as in porcupine).
 *
 * SPDX-License-Identifier: MIT
 *
 * A history is a list of completed operations on one key, each with the
 * logical times of its invocation and response (distinct values of one
 * global counter, so real-time order is "resp < inv").  The sequential
 * model of one key is: absent, or present with a value (a 64-bit word; 0 is
 * the NULL value, which is not absence).  lin_check() tells whether some
 * order of the operations that respects real time and starts from the given
 * state makes every operation return what it returned.  Histories are
 * checked per key (linearizability is compositional; Clear, a multi-key
 * operation, appears in every key's history as a deletion).
 */
#ifndef SM_LINCHECK_H
#define SM_LINCHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum lop_kind {
	L_LOAD,   /* res: found; out: value */
	L_STORE,  /* a: value */
	L_LOS,    /* a: value; res: 1 loaded (out: value), 0 stored */
	L_LAD,    /* res: found; out: value */
	L_DELETE, /* - */
	L_SWAP,   /* a: value; res: 1 replaced (out: previous), 0 new */
	L_CAS,    /* a: old, b: new; res */
	L_CAD,    /* a: old; res */
	L_CLEAR,  /* - */
	L_VISIT,  /* a range call visited the key with value out (a load that found it) */
};

static const char *const lop_name[] = {"load", "store", "load_or_store", "load_and_delete", "delete",
				       "swap", "cas", "cad", "clear", "range-visit"};

struct lop {
	uint64_t inv, resp;
	uint64_t a, b, out;
	uint16_t thread;
	uint8_t kind;
	uint8_t res;
};

struct lstate {
	bool present;
	uint64_t val;
};

/* The sequential specification: does op o, applied to s, return what it
 * returned?  If so, update s. */
static inline bool lin_step(const struct lop *o, struct lstate *s)
{
	switch (o->kind) {
	case L_LOAD:
	case L_VISIT:
		if (o->res != s->present)
			return false;
		return !s->present || o->out == s->val;
	case L_STORE:
		s->present = true;
		s->val = o->a;
		return true;
	case L_LOS:
		if (s->present)
			return o->res == 1 && o->out == s->val;
		if (o->res != 0)
			return false;
		s->present = true;
		s->val = o->a;
		return true;
	case L_LAD:
		if (o->res != s->present || (s->present && o->out != s->val))
			return false;
		s->present = false;
		return true;
	case L_DELETE:
	case L_CLEAR:
		s->present = false;
		return true;
	case L_SWAP:
		if (o->res != s->present || (s->present && o->out != s->val))
			return false;
		s->present = true;
		s->val = o->a;
		return true;
	case L_CAS:
		if (s->present && s->val == o->a) {
			if (o->res != 1)
				return false;
			s->val = o->b;
			return true;
		}
		return o->res == 0;
	case L_CAD:
		if (s->present && s->val == o->a) {
			if (o->res != 1)
				return false;
			s->present = false;
			return true;
		}
		return o->res == 0;
	}
	return false;
}

/* ---- memo: (set of linearized ops, state) already explored ---------------- */

struct lin_memo {
	size_t words; /* bitset words */
	size_t cap, used;
	uint64_t *keys; /* cap * (words + 2) */
	bool *full;
};

static inline uint64_t lin_hash(const uint64_t *bits, size_t words, const struct lstate *s)
{
	uint64_t h = 0x9E3779B97F4A7C15ULL ^ (s->present ? s->val * 0xff51afd7ed558ccdULL + 1 : 0);
	for (size_t i = 0; i < words; i++)
		h = (h ^ bits[i]) * 0x100000001b3ULL + (h >> 29);
	return h ^ (h >> 31);
}

static void lin_memo_init(struct lin_memo *m, size_t words)
{
	m->words = words;
	m->cap = 1024;
	m->used = 0;
	m->keys = calloc(m->cap, (words + 2) * sizeof(uint64_t));
	m->full = calloc(m->cap, sizeof(bool));
	if (!m->keys || !m->full)
		abort();
}

static bool lin_memo_insert(struct lin_memo *m, const uint64_t *bits, const struct lstate *s);

static void lin_memo_grow(struct lin_memo *m)
{
	struct lin_memo old = *m;
	m->cap *= 2;
	m->used = 0;
	m->keys = calloc(m->cap, (m->words + 2) * sizeof(uint64_t));
	m->full = calloc(m->cap, sizeof(bool));
	if (!m->keys || !m->full)
		abort();
	size_t w = m->words + 2;
	for (size_t i = 0; i < old.cap; i++)
		if (old.full[i]) {
			struct lstate s = {old.keys[i * w + m->words] != 0, old.keys[i * w + m->words + 1]};
			lin_memo_insert(m, &old.keys[i * w], &s);
		}
	free(old.keys);
	free(old.full);
}

/* true if newly inserted */
static bool lin_memo_insert(struct lin_memo *m, const uint64_t *bits, const struct lstate *s)
{
	if (2 * (m->used + 1) > m->cap)
		lin_memo_grow(m);
	size_t w = m->words + 2;
	size_t i = lin_hash(bits, m->words, s) & (m->cap - 1);
	uint64_t sp = s->present, sv = s->present ? s->val : 0;
	for (;; i = (i + 1) & (m->cap - 1)) {
		uint64_t *k = &m->keys[i * w];
		if (!m->full[i]) {
			memcpy(k, bits, m->words * sizeof(uint64_t));
			k[m->words] = sp;
			k[m->words + 1] = sv;
			m->full[i] = true;
			m->used++;
			return true;
		}
		if (k[m->words] == sp && k[m->words + 1] == sv && memcmp(k, bits, m->words * sizeof(uint64_t)) == 0)
			return false;
	}
}

static void lin_memo_free(struct lin_memo *m)
{
	free(m->keys);
	free(m->full);
}

/* ---- the search ---------------------------------------------------------------- */

struct lin_ev {
	uint64_t t;
	int id;        /* op index */
	bool call;
	struct lin_ev *match; /* call -> its return */
	struct lin_ev *prev, *next;
};

static int lin_ev_cmp(const void *a, const void *b)
{
	const struct lin_ev *x = a, *y = b;
	return x->t < y->t ? -1 : x->t > y->t;
}

/* Returns true if the history is linearizable from `init`.  *explored: the
 * number of search steps (for the report). */
static bool lin_check(const struct lop *ops, size_t n, struct lstate init, uint64_t *explored)
{
	if (n == 0)
		return true;
	struct lin_ev *ev = calloc(2 * n + 1, sizeof(*ev));
	struct lin_ev **call_of = calloc(n, sizeof(*call_of));
	if (!ev || !call_of)
		abort();
	struct lin_ev *head = &ev[2 * n];
	for (size_t i = 0; i < n; i++) {
		ev[2 * i] = (struct lin_ev){ops[i].inv, (int)i, true, NULL, NULL, NULL};
		ev[2 * i + 1] = (struct lin_ev){ops[i].resp, (int)i, false, NULL, NULL, NULL};
	}
	qsort(ev, 2 * n, sizeof(*ev), lin_ev_cmp);
	struct lin_ev **ret_of = calloc(n, sizeof(*ret_of));
	if (!ret_of)
		abort();
	for (size_t i = 0; i < 2 * n; i++) {
		if (ev[i].call)
			call_of[ev[i].id] = &ev[i];
		else
			ret_of[ev[i].id] = &ev[i];
	}
	for (size_t i = 0; i < n; i++)
		call_of[i]->match = ret_of[i];
	head->prev = NULL;
	head->next = &ev[0];
	for (size_t i = 0; i < 2 * n; i++) {
		ev[i].prev = i ? &ev[i - 1] : head;
		ev[i].next = i + 1 < 2 * n ? &ev[i + 1] : NULL;
	}

	size_t words = (n + 63) / 64;
	uint64_t *lin = calloc(words, sizeof(uint64_t));
	struct lin_memo memo;
	lin_memo_init(&memo, words);
	struct frame {
		struct lin_ev *e;
		struct lstate s;
	} *stack = calloc(n, sizeof(*stack));
	if (!lin || !stack)
		abort();
	size_t top = 0;
	struct lstate s = init;
	struct lin_ev *e = head->next;
	bool ok = true;
	uint64_t steps = 0;
	while (head->next) {
		steps++;
		if (e->call) {
			struct lstate ns = s;
			const struct lop *o = &ops[e->id];
			if (lin_step(o, &ns)) {
				lin[e->id / 64] |= 1ULL << (e->id % 64);
				if (lin_memo_insert(&memo, lin, &ns)) {
					stack[top++] = (struct frame){e, s};
					s = ns;
					/* lift the call and its return */
					e->prev->next = e->next;
					if (e->next)
						e->next->prev = e->prev;
					struct lin_ev *r = e->match;
					r->prev->next = r->next;
					if (r->next)
						r->next->prev = r->prev;
					e = head->next;
					continue;
				}
				lin[e->id / 64] &= ~(1ULL << (e->id % 64));
			}
			e = e->next;
		} else {
			if (top == 0) {
				ok = false;
				break;
			}
			struct frame f = stack[--top];
			e = f.e;
			s = f.s;
			lin[e->id / 64] &= ~(1ULL << (e->id % 64));
			/* unlift: the return first, then the call */
			struct lin_ev *r = e->match;
			r->prev->next = r;
			if (r->next)
				r->next->prev = r;
			e->prev->next = e;
			if (e->next)
				e->next->prev = e;
			e = e->next;
		}
	}
	if (explored)
		*explored += steps;
	lin_memo_free(&memo);
	free(stack);
	free(lin);
	free(ret_of);
	free(call_of);
	free(ev);
	return ok;
}

static int lin_op_cmp_inv(const void *a, const void *b)
{
	const struct lop *x = a, *y = b;
	return x->inv < y->inv ? -1 : x->inv > y->inv;
}

static void lin_print_val(FILE *f, uint64_t v)
{
	if (v == 0)
		fprintf(f, "NULL");
	else
		fprintf(f, "t%" PRIu64 ".%" PRIu64, (v >> 40) - 1, v & (((uint64_t)1 << 40) - 1));
}

/* Print a history, sorted by invocation (sorts ops in place). */
static void lin_print(FILE *f, struct lop *ops, size_t n, struct lstate init)
{
	qsort(ops, n, sizeof(*ops), lin_op_cmp_inv);
	fprintf(f, "initial state: ");
	if (init.present)
		lin_print_val(f, init.val);
	else
		fprintf(f, "absent");
	fprintf(f, "\n  %10s %10s  thr  operation\n", "inv", "resp");
	for (size_t i = 0; i < n; i++) {
		const struct lop *o = &ops[i];
		fprintf(f, "  %10" PRIu64 " %10" PRIu64 "  %3u  %s(", o->inv, o->resp, o->thread, lop_name[o->kind]);
		switch (o->kind) {
		case L_STORE:
		case L_LOS:
		case L_SWAP:
		case L_CAD:
			lin_print_val(f, o->a);
			break;
		case L_CAS:
			lin_print_val(f, o->a);
			fprintf(f, ", ");
			lin_print_val(f, o->b);
			break;
		default:
			break;
		}
		fprintf(f, ")");
		switch (o->kind) {
		case L_LOAD:
		case L_LAD:
		case L_VISIT:
			if (o->res) {
				fprintf(f, " -> found ");
				lin_print_val(f, o->out);
			} else {
				fprintf(f, " -> absent");
			}
			break;
		case L_LOS:
			if (o->res) {
				fprintf(f, " -> loaded ");
				lin_print_val(f, o->out);
			} else {
				fprintf(f, " -> stored");
			}
			break;
		case L_SWAP:
			if (o->res) {
				fprintf(f, " -> replaced ");
				lin_print_val(f, o->out);
			} else {
				fprintf(f, " -> new");
			}
			break;
		case L_CAS:
		case L_CAD:
			fprintf(f, " -> %s", o->res ? "true" : "false");
			break;
		default:
			break;
		}
		fprintf(f, "\n");
	}
}

#endif
