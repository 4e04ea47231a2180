/*
 * values.c - what the map stores: objects that prove they are intact.
 *
 * SPDX-License-Identifier: MIT
 *
 * Reclamation on: every value is a heap object with a magic, its key, its
 * writer and sequence number, and a check word over those three, so a
 * reader detects a value freed too early (the poison), memory reused for
 * something else (a foreign magic), a value filed under the wrong key, and a
 * torn one (check mismatch).  free_value (ss_free_value, run by liburcu's
 * call_rcu worker or by syncmap_free) flips a per-value "freed" flag (a
 * second free is a failure), overwrites the magic with the poison, and
 * parks the object in a quarantine ring of the last cfg.quarantine freed
 * values; only when the ring evicts it is it really freed, after checking
 * its poison is intact (a write after free would break it).  So a stale
 * read within that window sees the poison rather than reused memory.
 * Counting: made (per thread) == freed (here) + discarded (the tool's own
 * frees of values the map never took) + tool_freed (--owner caller: values
 * syncmap_take handed over, freed by the tool after syncmap_synchronize,
 * through the same poison and quarantine) once the map is freed.
 *
 * Reclamation off: values are tagged words (stress.h) the map never
 * dereferences; the same key/writer/check tests apply to the word.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "stress.h"

struct ss_value_counters ss_vc;

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ss_value **q;
static size_t q_head, q_n;

/* --fork: a worker (helping reclaim) or the call_rcu thread may hold the
 * quarantine's mutex at the fork instant, and the child's free_value needs
 * it.  Registered before the first syncmap_new, so this prepare handler
 * runs after the library's (which pauses the call_rcu thread first, so it
 * cannot be waiting here for a mutex we hold). */
static void q_fork_prepare(void)
{
	pthread_mutex_lock(&q_mu);
}

static void q_fork_after(void)
{
	pthread_mutex_unlock(&q_mu);
}

void ss_values_init(void)
{
	if (cfg.fork_every > 0)
		pthread_atfork(q_fork_prepare, q_fork_after, q_fork_after);
	if (cfg.reclaim && cfg.quarantine) {
		q = calloc(cfg.quarantine, sizeof(*q));
		if (!q) {
			fprintf(stderr, "syncmap-stress: out of memory for the quarantine\n");
			exit(1);
		}
	}
}

static void really_free(struct ss_value *v)
{
	if (v->magic != SS_VAL_POISON || atomic_load_explicit(&v->freed, memory_order_relaxed) != 1) {
		atomic_fetch_add(&ss_vc.poison_broken, 1);
		SS_FAIL("write after free: value %p (key %u) was modified after free_value poisoned it "
			"(magic %016" PRIx64 ")",
			(void *)v, v->key, v->magic);
	}
	free(v);
	atomic_fetch_add_explicit(&ss_vc.evicted, 1, memory_order_relaxed);
}

/* Poison v and park it in the quarantine: the map's free_value, or the
 * tool's own free of a value syncmap_take handed over (by_tool). */
static void value_release(void *val, bool by_tool)
{
	struct ss_value *v = val;
	uint64_t magic = v->magic;
	if (magic == SS_VAL_POISON) {
		atomic_fetch_add(&ss_vc.double_frees, 1);
		SS_FAIL("double free: free_value called again for value %p (key %u, writer %u, seq %" PRIu64 ")",
			val, v->key, v->writer, v->seq);
		return;
	}
	if (magic != SS_VAL_MAGIC) {
		atomic_fetch_add(&ss_vc.bad_frees, 1);
		SS_FAIL("free_value got %p, which is not a live value (magic %016" PRIx64 ")", val, magic);
		return;
	}
	if (atomic_exchange_explicit(&v->freed, 1, memory_order_relaxed) != 0) {
		atomic_fetch_add(&ss_vc.double_frees, 1);
		SS_FAIL("double free (concurrent): value %p (key %u) passed to free_value twice", val, v->key);
		return;
	}
	v->magic = SS_VAL_POISON;
	atomic_fetch_add_explicit(by_tool ? &ss_vc.tool_freed : &ss_vc.freed, 1, memory_order_relaxed);
	if (!q) {
		really_free(v);
		return;
	}
	struct ss_value *evict = NULL;
	pthread_mutex_lock(&q_mu);
	if (q_n == cfg.quarantine) {
		evict = q[q_head];
		q[q_head] = v;
		q_head = (q_head + 1) % cfg.quarantine;
	} else {
		q[(q_head + q_n) % cfg.quarantine] = v;
		q_n++;
	}
	pthread_mutex_unlock(&q_mu);
	if (evict)
		really_free(evict);
}

void ss_free_value(void *val, void *ctx)
{
	(void)ctx;
	if (!val) {
		atomic_fetch_add_explicit(&ss_vc.freed_null, 1, memory_order_relaxed);
		return;
	}
	value_release(val, false);
}

void ss_tool_free(int who, uint64_t key, void *val)
{
	struct ss_seen s;
	if (!val)
		return; /* a NULL value handed over: nothing to free (the caller counts it) */
	const struct ss_value *v = val;
	if (v->magic == SS_VAL_POISON) {
		/* Either the map passed a value it had handed over to free_value,
		 * or it handed the same value over twice. */
		atomic_fetch_add(&ss_vc.double_frees, 1);
		ss_fail(who,
			"value %p taken from key %" PRIu64 " by syncmap_take was passed to free_value before the tool "
			"freed it (key %u, writer %u, seq %" PRIu64 ")",
			val, key, v->key, v->writer, v->seq);
		return;
	}
	if (!ss_value_check(who, "value handed over by syncmap_take, at the tool's free", key, val, false, &s))
		return;
	value_release(val, true);
}

void ss_quarantine_drain(void)
{
	pthread_mutex_lock(&q_mu);
	while (q_n) {
		struct ss_value *v = q[q_head];
		q_head = (q_head + 1) % cfg.quarantine;
		q_n--;
		really_free(v);
	}
	pthread_mutex_unlock(&q_mu);
	free(q);
	q = NULL;
}

bool ss_value_check(int who, const char *what, uint64_t key, const void *v, bool null_ok,
		    struct ss_seen *out)
{
	if (!v) {
		if (!null_ok) {
			ss_fail(who, "%s of key %" PRIu64 " returned NULL, which no thread stores for that key", what, key);
			return false;
		}
		*out = (struct ss_seen){.key = (uint32_t)key, .writer = SS_WRITER_NONE, .seq = 0};
		return true;
	}
	if (cfg.reclaim) {
		const struct ss_value *x = v;
		uint64_t magic = x->magic;
		if (magic == SS_VAL_POISON) {
			ss_fail(who,
				"use after free: %s of key %" PRIu64 " returned value %p that was already passed "
				"to free_value (value's key %u, writer %u, seq %" PRIu64 ")",
				what, key, v, x->key, x->writer, x->seq);
			return false;
		}
		if (magic != SS_VAL_MAGIC) {
			ss_fail(who,
				"%s of key %" PRIu64 " returned %p, which is not a live value (magic %016" PRIx64
				"): freed and reused, or never a value",
				what, key, v, magic);
			return false;
		}
		uint32_t k = x->key, wr = x->writer, alt = x->alt;
		uint64_t seq = x->seq, check = x->check;
		if (k != key && alt != key) {
			ss_fail(who, "%s of key %" PRIu64 " returned a value made for key %u%s (writer %u, seq %" PRIu64 ")",
				what, key, k, alt != k ? " (or its partner key)" : "", wr, seq);
			return false;
		}
		if (check != ss_val_mix(k, alt, wr, seq) || wr >= cfg.threads) {
			ss_fail(who, "%s of key %" PRIu64 " returned a torn value %p (writer %u, seq %" PRIu64 ", check %016" PRIx64 ")",
				what, key, v, wr, seq, check);
			return false;
		}
		if (atomic_load_explicit(&x->freed, memory_order_relaxed)) {
			ss_fail(who, "%s of key %" PRIu64 " returned value %p whose freed flag is set", what, key, v);
			return false;
		}
		*out = (struct ss_seen){.key = (uint32_t)key, .writer = wr, .seq = seq};
		return true;
	}
	uint64_t w = (uint64_t)(uintptr_t)v;
	if (!(w >> 63) || ss_tag_check(w) != (uint8_t)w) {
		ss_fail(who, "%s of key %" PRIu64 " returned a corrupt value word %016" PRIx64, what, key, w);
		return false;
	}
	uint32_t k = (uint32_t)((w >> 39) & ((1u << SS_TAG_KEY_BITS) - 1));
	uint32_t wr = (uint32_t)((w >> 31) & 0xff);
	uint32_t seq = (uint32_t)((w >> 8) & SS_TAG_SEQ_MASK);
	if (k != key) {
		ss_fail(who, "%s of key %" PRIu64 " returned a value made for key %u (word %016" PRIx64 ")", what,
			key, k, w);
		return false;
	}
	if (wr >= cfg.threads) {
		ss_fail(who, "%s of key %" PRIu64 " returned a word no thread stored (writer %u, word %016" PRIx64 ")",
			what, key, wr, w);
		return false;
	}
	*out = (struct ss_seen){.key = k, .writer = wr, .seq = seq};
	return true;
}
