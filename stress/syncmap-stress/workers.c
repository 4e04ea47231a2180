/*
 * workers.c - the syncmap worker threads: every op of the API, each result
 * checked.
 *
 * SPDX-License-Identifier: MIT
 *
 * Keys [0, threads * owned) are owned: thread t alone writes keys
 * [t * owned, (t + 1) * owned), so it predicts every result on them exactly
 * (load returns exactly the value it stored last, swap returns exactly the
 * previous one, a CAS against the current value must succeed and against a
 * value never stored must fail, range must visit each of its present keys
 * exactly once with its value, ...).  Other threads only load them, and
 * check that what they see never goes back in time (the owner's sequence
 * numbers per key only grow: linearizability implies monotonic reads).
 * Every other key is shared: any thread does anything to it, and every
 * value seen is checked for integrity and for belonging to the key.
 *
 * syncmap_clear (when the mix has it) deletes owned keys behind their
 * owners' backs.  A global epoch (clears started and finished, see
 * stress.h) tells an owner whether a clear may have hit a key since it last
 * touched it or during an op; such a key "may be absent" and the result is
 * checked against both states (see own_begin/own_end).
 *
 * Every op runs inside a syncmap_read_lock section (cfg.section_ops ops per
 * section), so the values it returns stay pinned while they are checked.
 *
 * Each thread draws exactly three random numbers per op, whatever the
 * outcomes, so a seed replays the same per-thread op and key sequences
 * (with --ops; with --duration the sequences are the same prefix).  The
 * interleaving of threads is not reproducible.
 *
 * --owner caller: delete and load_and_delete are syncmap_take, which hands
 * the key's value to the tool instead of free_value.  The thread disposes
 * of each such value one of three ways, chosen by the op's draw:
 *   - syncmap_retire: the map's free_value gets it after a grace period;
 *   - held on a per-thread list, freed by the tool itself (through the same
 *     poison and quarantine as free_value) after syncmap_synchronize, which
 *     runs outside the read section once the list is long enough;
 *   - moved (owned keys only): stored at once under the key's partner key
 *     (ss_partner_key), while readers of the first key may still hold it,
 *     so the value carries both keys from birth (struct ss_value.alt).  A
 *     move happens only when the value's seq is above every seq the partner
 *     key has held, so other threads' monotonic reads still hold.
 * The owner's predictions follow the value (the first key absent, the
 * partner key holding it).  The ledger then reads: made == freed by the
 * map + freed by the tool + discarded, every value at most once (the
 * per-value flag), and for NULL values, which have no identity: NULL
 * stored (moves included) + NULL retired == NULL passed to free_value +
 * NULL taken (verify.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncmap.h"
#include "stress.h"

struct ss_run run;

/* A pointer the map never holds: CAS / CAD against it must fail. */
static char never_stored;
#define NEVER_STORED ((void *)&never_stored)

/* ===================================================================== */
/* --- Op mixes ----------------------------------------------------------- */

#define WAVE_LEVELS 16

/* --owner caller: held values are freed after one syncmap_synchronize per
 * this many (a grace period costs milliseconds: batching keeps the
 * thread's op rate near the other modes'). */
#define HELD_FLUSH 512

void ss_mix_build(void)
{
	run.levels = cfg.wave ? WAVE_LEVELS : 1;
	run.mixtab = calloc(run.levels, sizeof(*run.mixtab));
	if (!run.mixtab)
		abort();
	for (unsigned l = 0; l < run.levels; l++) {
		/* Insert share p from 0.05 to 0.95: the live set follows p. */
		double p = run.levels > 1 ? 0.05 + 0.9 * l / (run.levels - 1) : 0.5;
		double wgt[OP__N], sum = 0;
		for (int op = 0; op < OP__N; op++) {
			wgt[op] = cfg.mix[op];
			if (op == OP_STORE || op == OP_LOS || op == OP_SWAP)
				wgt[op] *= 2 * p;
			else if (op == OP_DELETE || op == OP_LAD || op == OP_CAD)
				wgt[op] *= 2 * (1 - p);
			sum += wgt[op];
		}
		double acc = 0;
		for (int op = 0; op < OP__N; op++) {
			acc += wgt[op];
			double t = acc / sum * 4294967296.0;
			run.mixtab[l][op] = t >= 4294967296.0 ? 4294967296ULL : (uint64_t)t;
		}
		/* The last op with weight takes the rounding remainder. */
		for (int op = OP__N - 1; op >= 0; op--)
			if (cfg.mix[op] > 0) {
				for (int o2 = op; o2 < OP__N; o2++)
					run.mixtab[l][o2] = 4294967296ULL;
				break;
			}
	}
}

static inline unsigned wave_level(const struct ss_worker *w, uint64_t n)
{
	(void)w;
	if (run.levels == 1)
		return 0;
	/* Triangle wave, starting halfway up (p = 0.5). */
	uint64_t ph = (n + cfg.wave / 4) % cfg.wave;
	double x = (double)ph / (double)cfg.wave;
	x = x < 0.5 ? 2 * x : 2 - 2 * x;
	return (unsigned)(x * (run.levels - 1) + 0.5);
}

static inline enum ss_op pick_op(unsigned level, uint64_t r)
{
	uint64_t x = r & 0xffffffffu;
	const uint64_t *t = run.mixtab[level];
	int op = 0;
	while (op < OP__N - 1 && x >= t[op])
		op++;
	return (enum ss_op)op;
}

/* ===================================================================== */
/* --- Values --------------------------------------------------------------- */

/* --owner caller: the owned key a value taken from `key` may move to (the
 * other key of its pair in the owner's range), or `key` itself (no
 * partner: shared keys, or the last of an odd number of owned keys). */
static uint64_t ss_partner_key(uint64_t key)
{
	if (!cfg.owner_caller || key >= run.shared_base)
		return key;
	uint64_t base = key - key % cfg.owned, j = (key - base) ^ 1;
	return j < cfg.owned ? base + j : key;
}

static void *new_value(struct ss_worker *w, uint64_t key, uint64_t seq)
{
	if (!cfg.reclaim)
		return ss_tag_make((uint32_t)key, w->id, (uint32_t)seq);
	uint64_t alt = ss_partner_key(key);
	struct ss_value *v = w->spare;
	if (!v) {
		v = malloc(sizeof(*v));
		if (!v) {
			ss_fail((int)w->id, "out of memory for a value");
			abort();
		}
		w->made++;
		w->spare = v;
	}
	v->magic = SS_VAL_MAGIC;
	v->key = (uint32_t)key;
	v->writer = w->id;
	v->seq = seq;
	v->alt = (uint32_t)alt;
	v->check = ss_val_mix(key, alt, w->id, seq);
	atomic_init(&v->freed, 0);
	return v;
}

/* The map took v (a NULL value counts too). */
static inline void taken(struct ss_worker *w, void *v)
{
	if (!v) {
		w->stored_null++;
		return;
	}
	if (cfg.reclaim)
		w->spare = NULL;
}

/* Monotonic reads: seq a is older than b (tagged words carry 23 bits). */
static inline bool seq_before(uint64_t a, uint64_t b)
{
	if (cfg.reclaim)
		return a < b;
	uint32_t d = (uint32_t)(b - a) & SS_TAG_SEQ_MASK;
	return d != 0 && d < (SS_TAG_SEQ_MASK >> 1);
}

/* Check a value the map returned, and pin it for the end-of-section
 * re-check (reclaim mode: words cannot be freed). */
static inline bool vcheck(struct ss_worker *w, const char *what, uint64_t key, const void *v, bool null_ok,
			  struct ss_seen *s)
{
	if (!ss_value_check((int)w->id, what, key, v, null_ok, s))
		return false;
	if (cfg.reclaim && v && w->npins < SS_PINS)
		w->pins[w->npins++] = (struct ss_pin){.key = key, .v = v, .null_ok = null_ok};
	return true;
}

/* --owner caller: free the held values, once no reader can hold them.
 * Outside any read section (the wait could never end inside one). */
static void flush_held(struct ss_worker *w)
{
	if (!w->nheld)
		return;
	uint64_t t0 = sm_now_ns();
	int rc = syncmap_synchronize();
	uint64_t ns = sm_now_ns() - t0;
	w->syncs++;
	w->sync_ns_total += ns;
	if (ns > w->sync_ns_max)
		w->sync_ns_max = ns;
	if (rc != 0) {
		/* Freeing them now could free what a reader holds: keep them
		 * (the run fails; the ledger will show them as not freed). */
		ss_fail((int)w->id, "syncmap_synchronize outside any read section returned %d, not 0", rc);
		return;
	}
	for (size_t i = 0; i < w->nheld; i++) {
		ss_tool_free((int)w->id, w->held[i].key, w->held[i].v);
		w->kept++;
		if (!w->held[i].v)
			w->kept_null++;
	}
	w->nheld = 0;
}

static void section_end(struct ss_worker *w)
{
	struct ss_seen s;
	for (unsigned i = 0; i < w->npins; i++)
		ss_value_check((int)w->id, "value pinned by the read section, re-checked before its unlock",
			       w->pins[i].key, w->pins[i].v, w->pins[i].null_ok, &s);
	w->npins = 0;
	bool flush = w->nheld >= HELD_FLUSH;
	if (flush) {
		/* Inside a section a grace period cannot end: the library must
		 * refuse rather than hang. */
		int rc = syncmap_synchronize();
		if (rc != -EDEADLK)
			ss_fail((int)w->id, "syncmap_synchronize inside a read section returned %d, not -EDEADLK (%d)", rc,
				-EDEADLK);
	}
	syncmap_read_unlock();
	if (flush)
		flush_held(w);
}

/* SS_PAUSE_FOR_FORK: wait, outside any read section (a paused reader
 * would hold up the grace period the fork handlers wait for), until the
 * main thread has forked. */
static void fork_pause(struct ss_worker *w)
{
	if (w->sections > 0) {
		section_end(w);
		w->sections = 0;
	}
	atomic_fetch_add(&run.fork_paused, 1);
	while (atomic_load(&run.fork_pause) && !atomic_load(&ss_stop))
		sched_yield();
	atomic_fetch_sub(&run.fork_paused, 1);
}

/* ===================================================================== */
/* --- Latency sampling ---------------------------------------------------- */

void ss_lat_add(struct ss_lat *l, struct sm_rng *rng, uint64_t ns)
{
	enum { CAP_MAX = 1 << 20 };
	l->seen++;
	if (l->n < l->cap) {
		l->v[l->n++] = ns;
		return;
	}
	if (l->cap < CAP_MAX) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint64_t *v = realloc(l->v, cap * sizeof(*v));
		if (v) {
			l->v = v;
			l->cap = cap;
			l->v[l->n++] = ns;
			return;
		}
	}
	/* Reservoir: keep a uniform sample of everything offered. */
	uint64_t j = sm_rng_next(rng) % l->seen;
	if (j < l->n)
		l->v[j] = ns;
}

/* The sampled op's map call is timed; nothing else is. */
#define TIMED(w, op, timed, call)                                           \
	do {                                                                \
		if (timed) {                                                \
			uint64_t t0_ = sm_now_ns();                         \
			call;                                               \
			ss_lat_add(&(w)->lat[op], &lat_rng, sm_now_ns() - t0_); \
		} else {                                                    \
			call;                                               \
		}                                                           \
	} while (0)

static _Thread_local struct sm_rng lat_rng;

/* ===================================================================== */
/* --- Owned keys: exact predictions ------------------------------------- */

static inline uint64_t epoch_now(void)
{
	return cfg.have_clear ? atomic_load_explicit(&run.clear_epoch, memory_order_acquire) : 0;
}

/* What an op on an owned key may find: the current value (if present)
 * and/or absence (if absent, or a clear may have removed it). */
struct own_op {
	struct ss_own *st;
	uint64_t key;
	uint64_t e0, e1;
	bool overlap;     /* a clear ran during the op */
	bool can_present; /* pre-state: st->v */
	bool can_absent;  /* pre-state: absent */
	bool exact;       /* exactly one pre-state */
};

static inline void own_begin(struct own_op *o, struct ss_worker *w, uint64_t key)
{
	o->st = &w->own[key - (uint64_t)w->id * cfg.owned];
	o->key = key;
	o->e0 = epoch_now();
}

static inline void own_end(struct own_op *o)
{
	o->e1 = epoch_now();
	o->overlap = o->e1 != o->e0 || ss_clear_running(o->e0);
	o->can_present = o->st->present;
	o->can_absent = !o->st->present || o->st->maybe_absent || o->st->epoch != ss_clears_started(o->e0) ||
			o->overlap;
	o->exact = !(o->can_present && o->can_absent);
}

static inline void own_set_present(struct own_op *o, void *v, uint64_t seq)
{
	o->st->present = 1;
	o->st->v = v;
	o->st->maybe_absent = o->overlap;
	o->st->epoch = ss_clears_started(o->e1);
	(void)seq;
}

static inline void own_keep_present(struct own_op *o)
{
	o->st->maybe_absent = o->overlap;
	o->st->epoch = ss_clears_started(o->e1);
}

static inline void own_set_absent(struct own_op *o)
{
	o->st->present = 0;
	o->st->v = NULL;
	o->st->maybe_absent = 0;
	o->st->epoch = ss_clears_started(o->e1);
}

static const char *own_expect(const struct own_op *o, char *buf, size_t n)
{
	if (o->can_present && o->can_absent)
		snprintf(buf, n, "value %p or absent (a clear may have removed it)", o->st->v);
	else if (o->can_present)
		snprintf(buf, n, "value %p", o->st->v);
	else
		snprintf(buf, n, "absent");
	return buf;
}

#define OWN_FAIL(w, o, opname, ...)                                                              \
	do {                                                                                     \
		char eb_[96], gb_[128];                                                          \
		snprintf(gb_, sizeof(gb_), __VA_ARGS__);                                         \
		ss_fail((int)(w)->id, "%s on owned key %" PRIu64 ": expected %s, got %s", opname, \
			(o)->key, own_expect(o, eb_, sizeof(eb_)), gb_);                         \
	} while (0)

/* A value for an owned key: NULL now and then (a valid value, distinct
 * from absence), else a fresh object or word with the key's next seq.
 * Never NULL over a NULL that may still be there: the same pointer stored
 * again stays (nothing leaves the map), which the NULL ledger could not
 * tell from a NULL that entered. */
static void *own_new_value(struct ss_worker *w, struct own_op *o, uint64_t r)
{
	if ((r >> 59) == 0 && !(o->st->present && o->st->v == NULL)) /* 1 in 32 */
		return NULL;
	return new_value(w, o->key, ++o->st->seq);
}

/* ===================================================================== */
/* --- Ops ------------------------------------------------------------------- */

enum kclass { K_SHARED, K_OWN, K_OTHER };

struct opctx {
	struct ss_worker *w;
	uint64_t key;
	enum kclass kc;
	uint64_t r; /* a draw for op-specific choices */
	bool timed;
};

static void check_other(struct ss_worker *w, const char *what, uint64_t key, void *v)
{
	struct ss_seen s;
	if (!vcheck(w, what, key, v, true, &s) || !v)
		return;
	uint64_t owner = key / cfg.owned;
	if (s.writer != owner) {
		ss_fail((int)w->id, "%s of key %" PRIu64 " (owned by thread %" PRIu64 ") returned a value written by thread %u",
			what, key, owner, s.writer);
		return;
	}
	uint64_t *last = &w->mono[key];
	if (seq_before(s.seq, *last)) {
		ss_fail((int)w->id,
			"%s of key %" PRIu64 " went back in time: saw seq %" PRIu64 " after seq %" PRIu64
			" (the owner's writes only increase it)",
			what, key, s.seq, *last);
		return;
	}
	*last = s.seq;
}

static void op_load(struct opctx *c)
{
	struct ss_worker *w = c->w;
	void *v = NULL;
	bool found;
	struct ss_seen s;
	if (c->kc == K_OWN) {
		struct own_op o;
		own_begin(&o, w, c->key);
		TIMED(w, OP_LOAD, c->timed, found = syncmap_load(run.map, ss_key(c->key), cfg.klen, &v));
		own_end(&o);
		if (found && !vcheck(w, "load", c->key, v, true, &s))
			return;
		if (found ? !(o.can_present && v == o.st->v) : !o.can_absent) {
			OWN_FAIL(w, &o, "load", found ? "value %p" : "absent", v);
			return;
		}
		if (found)
			own_keep_present(&o);
		else
			own_set_absent(&o);
	} else {
		TIMED(w, OP_LOAD, c->timed, found = syncmap_load(run.map, ss_key(c->key), cfg.klen, &v));
		if (found) {
			if (c->kc == K_OTHER)
				check_other(w, "load", c->key, v);
			else
				vcheck(w, "load", c->key, v, false, &s);
		}
	}
	if (found)
		w->hits++;
	else
		w->misses++;
}

static void op_store(struct opctx *c)
{
	struct ss_worker *w = c->w;
	int rc;
	if (c->kc == K_OWN) {
		struct own_op o;
		own_begin(&o, w, c->key);
		void *n = own_new_value(w, &o, c->r);
		TIMED(w, OP_STORE, c->timed, rc = syncmap_store(run.map, ss_key(c->key), cfg.klen, n));
		own_end(&o);
		if (rc != 0) {
			ss_fail((int)w->id, "store on key %" PRIu64 " returned %d", c->key, rc);
			return;
		}
		taken(w, n);
		own_set_present(&o, n, o.st->seq);
		return;
	}
	void *n = new_value(w, c->key, ++w->shared_seq);
	TIMED(w, OP_STORE, c->timed, rc = syncmap_store(run.map, ss_key(c->key), cfg.klen, n));
	if (rc != 0) {
		ss_fail((int)w->id, "store on key %" PRIu64 " returned %d", c->key, rc);
		return;
	}
	taken(w, n);
}

/* ---- --owner caller: what syncmap_take hands over -------------------- */

static void hold(struct ss_worker *w, uint64_t key, void *v)
{
	if (w->nheld == w->held_cap) {
		size_t cap = w->held_cap ? 2 * w->held_cap : HELD_FLUSH + 64;
		struct ss_held *h = realloc(w->held, cap * sizeof(*h));
		if (!h) {
			ss_fail((int)w->id, "out of memory for the held values");
			abort();
		}
		w->held = h;
		w->held_cap = cap;
	}
	w->held[w->nheld++] = (struct ss_held){.key = key, .v = v};
}

/* Move v, just taken from owned key c->key, to the partner key: only when
 * the partner's readers cannot see its seq go back, and never NULL over a
 * NULL that may be there (the same pointer stored again stays: the NULL
 * ledger could not tell).  Returns false (nothing done) when it may not. */
static bool move_taken(struct ss_worker *w, const struct opctx *c, void *v)
{
	uint64_t b = ss_partner_key(c->key);
	if (b == c->key)
		return false;
	struct own_op o;
	own_begin(&o, w, b);
	const struct ss_value *x = v;
	if (x ? x->seq <= o.st->seq : o.st->present && o.st->v == NULL)
		return false;
	int rc = syncmap_store(run.map, ss_key(b), cfg.klen, v);
	own_end(&o);
	if (rc != 0) {
		ss_fail((int)w->id, "store (moving a taken value from key %" PRIu64 ") on key %" PRIu64 " returned %d",
			c->key, b, rc);
		return false;
	}
	if (x)
		o.st->seq = (uint32_t)x->seq;
	else
		w->stored_null++;
	own_set_present(&o, v, o.st->seq);
	w->moved++;
	w->moved_null += !v;
	return true;
}

/* v (checked, and pinned by our section) was handed over by syncmap_take:
 * retire it, hold it for a free after syncmap_synchronize, or move it. */
static void dispose_taken(struct ss_worker *w, const struct opctx *c, void *v)
{
	w->taken++;
	w->taken_null += !v;
	unsigned how = (unsigned)((c->r >> 44) % 3);
	if (how == 2 && c->kc == K_OWN && move_taken(w, c, v))
		return;
	if (how != 1) {
		int rc = syncmap_retire(run.map, v);
		if (rc == 0) {
			w->retired++;
			w->retired_null += !v;
			return;
		}
		/* -ENOMEM is allowed inside a read section (where we are): the
		 * value stays ours.  Anything else is a failure. */
		if (rc == -ENOMEM)
			w->retire_enomem++;
		else
			ss_fail((int)w->id, "syncmap_retire of a value taken from key %" PRIu64 " returned %d", c->key, rc);
	}
	hold(w, c->key, v);
}

static void op_delete(struct opctx *c, bool lad)
{
	struct ss_worker *w = c->w;
	enum ss_op op = lad ? OP_LAD : OP_DELETE;
	const char *name = ss_op_names[op];
	void *v = NULL;
	bool found = false;
	struct ss_seen s;
	const bool take = cfg.owner_caller;
	if (take)
		name = lad ? "take (as load_and_delete)" : "take (as delete)";
	if (c->kc == K_OWN) {
		struct own_op o;
		own_begin(&o, w, c->key);
		if (take)
			TIMED(w, op, c->timed, found = syncmap_take(run.map, ss_key(c->key), cfg.klen, &v));
		else if (lad)
			TIMED(w, op, c->timed, found = syncmap_load_and_delete(run.map, ss_key(c->key), cfg.klen, &v));
		else
			TIMED(w, op, c->timed, syncmap_delete(run.map, ss_key(c->key), cfg.klen));
		own_end(&o);
		if (lad || take) {
			if (found && !vcheck(w, name, c->key, v, true, &s))
				return;
			if (found ? !(o.can_present && v == o.st->v) : !o.can_absent) {
				OWN_FAIL(w, &o, name, found ? "value %p" : "absent", v);
				return;
			}
		}
		own_set_absent(&o);
		if (take && found)
			dispose_taken(w, c, v);
		return;
	}
	if (take) {
		TIMED(w, op, c->timed, found = syncmap_take(run.map, ss_key(c->key), cfg.klen, &v));
		/* Ours now, and pinned by our read section for other readers. */
		if (found && vcheck(w, name, c->key, v, false, &s))
			dispose_taken(w, c, v);
	} else if (lad) {
		TIMED(w, op, c->timed, found = syncmap_load_and_delete(run.map, ss_key(c->key), cfg.klen, &v));
		/* Removed, but pinned by our read section: still intact. */
		if (found)
			vcheck(w, name, c->key, v, false, &s);
	} else {
		TIMED(w, op, c->timed, syncmap_delete(run.map, ss_key(c->key), cfg.klen));
	}
}

static void op_load_or_store(struct opctx *c)
{
	struct ss_worker *w = c->w;
	void *actual = NULL;
	int rc;
	struct ss_seen s;
	if (c->kc == K_OWN) {
		struct own_op o;
		own_begin(&o, w, c->key);
		uint32_t seq_before_op = o.st->seq;
		void *n = own_new_value(w, &o, c->r);
		TIMED(w, OP_LOS, c->timed, rc = syncmap_load_or_store(run.map, ss_key(c->key), cfg.klen, n, &actual));
		own_end(&o);
		if (rc < 0) {
			ss_fail((int)w->id, "load_or_store on key %" PRIu64 " returned %d", c->key, rc);
			return;
		}
		if (rc == 1) {
			o.st->seq = seq_before_op; /* n was not stored */
			if (!vcheck(w, "load_or_store", c->key, actual, true, &s))
				return;
			if (!o.can_present || actual != o.st->v) {
				OWN_FAIL(w, &o, "load_or_store", "loaded %p", actual);
				return;
			}
			own_keep_present(&o);
		} else {
			if (!o.can_absent || actual != n) {
				OWN_FAIL(w, &o, "load_or_store", "stored (result 0, actual %p, ours %p)", actual, n);
				return;
			}
			taken(w, n);
			own_set_present(&o, n, o.st->seq);
		}
		return;
	}
	void *n = new_value(w, c->key, ++w->shared_seq);
	TIMED(w, OP_LOS, c->timed, rc = syncmap_load_or_store(run.map, ss_key(c->key), cfg.klen, n, &actual));
	if (rc < 0) {
		ss_fail((int)w->id, "load_or_store on key %" PRIu64 " returned %d", c->key, rc);
	} else if (rc == 1) {
		if (actual == n)
			ss_fail((int)w->id, "load_or_store on key %" PRIu64 " loaded the value it was asked to store", c->key);
		else
			vcheck(w, "load_or_store", c->key, actual, false, &s);
	} else {
		if (actual != n)
			ss_fail((int)w->id, "load_or_store on key %" PRIu64 " stored but set *actual to %p, not %p", c->key,
				actual, n);
		taken(w, n);
	}
}

static void op_swap(struct opctx *c)
{
	struct ss_worker *w = c->w;
	void *prev = NEVER_STORED;
	int rc;
	struct ss_seen s;
	if (c->kc == K_OWN) {
		struct own_op o;
		own_begin(&o, w, c->key);
		void *n = own_new_value(w, &o, c->r);
		TIMED(w, OP_SWAP, c->timed, rc = syncmap_swap(run.map, ss_key(c->key), cfg.klen, n, &prev));
		own_end(&o);
		if (rc < 0) {
			ss_fail((int)w->id, "swap on key %" PRIu64 " returned %d", c->key, rc);
			return;
		}
		taken(w, n);
		if (rc == 1) {
			if (!vcheck(w, "swap", c->key, prev, true, &s))
				return;
			if (!o.can_present || prev != o.st->v) {
				OWN_FAIL(w, &o, "swap", "previous value %p", prev);
				return;
			}
		} else {
			if (!o.can_absent) {
				OWN_FAIL(w, &o, "swap", "absent (result 0)");
				return;
			}
			if (prev != NEVER_STORED) {
				ss_fail((int)w->id, "swap on new key %" PRIu64 " wrote *prev (%p)", c->key, prev);
				return;
			}
		}
		own_set_present(&o, n, o.st->seq);
		return;
	}
	void *n = new_value(w, c->key, ++w->shared_seq);
	TIMED(w, OP_SWAP, c->timed, rc = syncmap_swap(run.map, ss_key(c->key), cfg.klen, n, &prev));
	if (rc < 0) {
		ss_fail((int)w->id, "swap on key %" PRIu64 " returned %d", c->key, rc);
		return;
	}
	taken(w, n);
	if (rc == 1) {
		if (prev == n)
			ss_fail((int)w->id, "swap on key %" PRIu64 " returned its own new value as the previous one", c->key);
		else
			vcheck(w, "swap", c->key, prev, false, &s);
	} else if (prev != NEVER_STORED) {
		ss_fail((int)w->id, "swap on new key %" PRIu64 " wrote *prev (%p)", c->key, prev);
	}
}

/* CAS and CAD: against the current value (loaded first in the same read
 * section, or predicted on owned keys), or against a value never stored
 * (must fail, and must not create the key). */
static void op_compare(struct opctx *c, bool cad)
{
	struct ss_worker *w = c->w;
	enum ss_op op = cad ? OP_CAD : OP_CAS;
	const char *name = ss_op_names[op];
	bool against_current = (c->r >> 62) != 0; /* 3 in 4 */
	struct ss_seen s;
	bool ok;
	if (c->kc == K_OWN) {
		struct own_op o;
		own_begin(&o, w, c->key);
		uint32_t seq0 = o.st->seq;
		/* Against the current value: the predicted one, or NULL when the
		 * key is absent (which must fail: CAS never creates a key, even
		 * with old == NULL). */
		void *old = against_current ? (o.st->present ? o.st->v : NULL) : NEVER_STORED;
		void *n = cad ? NULL : own_new_value(w, &o, c->r);
		if (cad)
			TIMED(w, op, c->timed, ok = syncmap_compare_and_delete(run.map, ss_key(c->key), cfg.klen, old));
		else
			TIMED(w, op, c->timed, ok = syncmap_compare_and_swap(run.map, ss_key(c->key), cfg.klen, old, n) == 1);
		own_end(&o);
		bool may_succeed = old != NEVER_STORED && o.can_present && old == o.st->v;
		bool must_succeed = may_succeed && !o.can_absent;
		if ((ok && !may_succeed) || (!ok && must_succeed)) {
			OWN_FAIL(w, &o, name, "%s (compared against %s)", ok ? "success" : "failure",
				 old == NEVER_STORED ? "a value never stored"
				 : o.st->present     ? "the current value"
						     : "NULL, the key being absent");
			return;
		}
		if (ok) {
			if (cad) {
				own_set_absent(&o);
			} else {
				taken(w, n);
				own_set_present(&o, n, o.st->seq);
			}
		} else {
			if (!cad)
				o.st->seq = seq0;
			/* Failed against the value it holds: a clear removed it.
			 * Otherwise nothing changed (and nothing was learned). */
			if (may_succeed)
				own_set_absent(&o);
		}
		return;
	}
	void *old = NEVER_STORED;
	if (against_current) {
		void *v;
		if (syncmap_load(run.map, ss_key(c->key), cfg.klen, &v)) {
			if (!vcheck(w, "load (before cas/cad)", c->key, v, false, &s))
				return;
			old = v;
		}
	}
	void *n = cad ? NULL : new_value(w, c->key, ++w->shared_seq);
	if (cad)
		TIMED(w, op, c->timed, ok = syncmap_compare_and_delete(run.map, ss_key(c->key), cfg.klen, old));
	else
		TIMED(w, op, c->timed, ok = syncmap_compare_and_swap(run.map, ss_key(c->key), cfg.klen, old, n) == 1);
	if (ok && old == NEVER_STORED) {
		ss_fail((int)w->id, "%s on key %" PRIu64 " succeeded against a value no thread ever stored", name, c->key);
		return;
	}
	if (ok) {
		if (!cad)
			taken(w, n);
		/* The replaced value is retired, but our section pins it. */
		vcheck(w, cad ? "cad (old value after success)" : "cas (old value after success)",
			       c->key, old, false, &s);
	}
}

/* ---- range ------------------------------------------------------------------ */

struct range_ctx {
	struct ss_worker *w;
	uint64_t visited, stop_after;
	uint64_t r;
	bool stopped;
};

static bool range_fn(const void *key, size_t klen, void *val, void *arg)
{
	struct range_ctx *rc = arg;
	struct ss_worker *w = rc->w;
	struct ss_seen s;
	if (klen != cfg.klen) {
		ss_fail((int)w->id, "range returned a key of %zu bytes (keys are %u)", klen, cfg.klen);
		return false;
	}
	uint64_t idx = ss_key_index(key);
	if (idx >= cfg.keys || memcmp(key, ss_key(idx), klen) != 0) {
		ss_fail((int)w->id, "range returned a key that no thread stores (index %" PRIu64 ")", idx);
		return false;
	}
	uint64_t bit = 1ULL << (idx & 63);
	if (w->seen_bits[idx >> 6] & bit) {
		ss_fail((int)w->id, "range visited key %" PRIu64 " twice in one call", idx);
		return false;
	}
	w->seen_bits[idx >> 6] |= bit;
	w->range_keys++;
	if (idx >= run.shared_base) {
		vcheck(w, "range", idx, val, false, &s);
	} else if (idx / cfg.owned == w->id) {
		struct ss_own *st = &w->own[idx - (uint64_t)w->id * cfg.owned];
		if (!vcheck(w, "range", idx, val, true, &s))
			return false;
		if (!st->present || val != st->v) {
			ss_fail((int)w->id, "range visited own key %" PRIu64 " with %p; expected %s %p", idx, val,
				st->present ? "value" : "absent, not", st->v);
			return false;
		}
		w->range_own[idx - (uint64_t)w->id * cfg.owned]++;
	} else {
		check_other(w, "range", idx, val);
	}
	/* The callback may call back into the map: now and then load the key
	 * again, or store a shared key (which may promote mid-range). */
	rc->r = rc->r * 6364136223846793005ULL + 1442695040888963407ULL;
	unsigned pick = (unsigned)(rc->r >> 54); /* 0..1023 */
	if (pick < 16) {
		void *v;
		if (syncmap_load(run.map, key, klen, &v))
			vcheck(w, "load (inside range)", idx, v, idx < run.shared_base, &s);
	} else if (pick == 16 && run.shared_n) {
		uint64_t k = run.shared_base + (rc->r >> 8) % run.shared_n;
		void *n = new_value(w, k, ++w->shared_seq);
		if (syncmap_store(run.map, ss_key(k), cfg.klen, n) != 0)
			ss_fail((int)w->id, "store inside range failed");
		else
			taken(w, n);
	}
	if (++rc->visited == rc->stop_after) {
		rc->stopped = true;
		return false;
	}
	return true;
}

static void op_range(struct opctx *c)
{
	struct ss_worker *w = c->w;
	struct range_ctx rc = {.w = w, .r = c->r};
	if ((c->r >> 62) == 0) /* 1 in 4 stops early */
		rc.stop_after = 1 + (c->r >> 20) % 1024;
	uint64_t e0 = epoch_now();
	TIMED(w, OP_RANGE, c->timed, syncmap_range(run.map, range_fn, &rc));
	uint64_t e1 = epoch_now();
	memset(w->seen_bits, 0, ((cfg.keys + 63) / 64) * sizeof(uint64_t));
	bool complete = !rc.stopped && e1 == e0 && !ss_clear_running(e0) && !atomic_load(&ss_stop);
	for (uint64_t j = 0; j < cfg.owned; j++) {
		struct ss_own *st = &w->own[j];
		/* Go's contract: a key present and unchanged for the whole call
		 * is visited exactly once.  Our own keys did not change. */
		if (complete && st->present && !st->maybe_absent && st->epoch == ss_clears_started(e0) &&
		    w->range_own[j] != 1)
			ss_fail((int)w->id, "range visited own key %" PRIu64 " (present, unchanged) %u times, not once",
				(uint64_t)w->id * cfg.owned + j, w->range_own[j]);
		w->range_own[j] = 0;
	}
}

static void op_clear(struct opctx *c)
{
	struct ss_worker *w = c->w;
	atomic_fetch_add(&run.clear_epoch, SS_CLEAR_STARTED);
	TIMED(w, OP_CLEAR, c->timed, syncmap_clear(run.map));
	atomic_fetch_add(&run.clear_epoch, 1);
	w->clears++;
}

static void op_len(struct opctx *c)
{
	struct ss_worker *w = c->w;
	size_t n;
	TIMED(w, OP_LEN, c->timed, n = syncmap_len(run.map));
	/* A value the map held, give or take the ops in flight (and, with
	 * clears, the writes racing a clear until its grace period ends). */
	uint64_t slack = (uint64_t)cfg.threads * (cfg.have_clear ? 64 : 2);
	if (n > cfg.keys + slack)
		ss_fail((int)w->id, "len returned %zu with only %" PRIu64 " keys in the key space", n, cfg.keys);
}

/* ===================================================================== */
/* --- The thread --------------------------------------------------------- */

static void prefill(struct ss_worker *w)
{
	struct sm_rng r;
	sm_rng_seed(&r, sm_splitmix64(cfg.seed ^ 0x7072656669ULL ^ ((uint64_t)w->id << 40)));
	double p = cfg.prefill;
	if (p <= 0)
		return;
	uint64_t thresh = p >= 1 ? UINT64_MAX : (uint64_t)(p * 18446744073709551616.0);
	syncmap_read_lock();
	for (uint64_t j = 0; j < cfg.owned; j++) {
		if (sm_rng_next(&r) > thresh)
			continue;
		struct opctx c = {.w = w, .key = (uint64_t)w->id * cfg.owned + j, .kc = K_OWN, .r = sm_rng_next(&r) | (1ULL << 63)};
		op_store(&c);
	}
	uint64_t slice = (run.shared_n + cfg.threads - 1) / cfg.threads;
	for (uint64_t i = w->id * slice; i < (w->id + 1) * slice && i < run.shared_n; i++) {
		if (sm_rng_next(&r) > thresh)
			continue;
		struct opctx c = {.w = w, .key = run.shared_base + i, .kc = K_SHARED};
		op_store(&c);
	}
	section_end(w);
	memset(w->op_count, 0, sizeof(w->op_count));
}

void *ss_worker_main(void *arg)
{
	struct ss_worker *w = arg;
	sm_rng_seed(&w->rng, sm_splitmix64(cfg.seed + 0x9E3779B97F4A7C15ULL * (w->id + 1)));
	sm_rng_seed(&lat_rng, sm_splitmix64(cfg.seed ^ 0x6c6174ULL ^ w->id));
	prefill(w);
	atomic_fetch_add(&run.ready, 1);
	while (!atomic_load_explicit(&run.go, memory_order_acquire))
		sched_yield();
	w->started_ns = sm_now_ns();

	const uint64_t limit = cfg.ops ? cfg.ops : UINT64_MAX;
	const uint32_t own_thr = (uint32_t)(cfg.own_frac * 4294967295.0);
	const uint64_t other_thr = cfg.threads > 1 ? (uint64_t)((cfg.own_frac + cfg.other_frac) * 4294967295.0) : 0;
	const unsigned sample = cfg.sample_every;
	unsigned level = wave_level(w, 0);
	uint64_t n;
	for (n = 0; n < limit; n++) {
		if ((n & 63) == 0) {
			atomic_store_explicit(&w->ops_done, n, memory_order_relaxed);
			if (atomic_load_explicit(&ss_stop, memory_order_relaxed))
				break;
			if (SS_PAUSE_FOR_FORK && atomic_load_explicit(&run.fork_pause, memory_order_relaxed))
				fork_pause(w);
			if ((n & 1023) == 0)
				level = wave_level(w, n);
		}
		uint64_t r1 = sm_rng_next(&w->rng), r2 = sm_rng_next(&w->rng), r3 = sm_rng_next(&w->rng);
		enum ss_op op = pick_op(level, r1);
		/* Every 64th op (--sample) is timed, and every range and clear:
		 * they are rare and slow. */
		struct opctx c = {.w = w,
				  .r = r1 ^ (r3 << 17),
				  .timed = sample == 1 || (n % sample) == sample - 1 || op == OP_RANGE || op == OP_CLEAR};
		if (op <= OP_CAD) {
			uint32_t u = (uint32_t)(r2 >> 32);
			if (u < own_thr && cfg.owned) {
				c.kc = K_OWN;
				c.key = (uint64_t)w->id * cfg.owned + ss_sample(&run.own_s, r3);
			} else if (op == OP_LOAD && u < other_thr && cfg.owned) {
				uint64_t t = (w->id + 1 + (r2 & 0xffffffffu) % (cfg.threads - 1)) % cfg.threads;
				c.kc = K_OTHER;
				c.key = t * cfg.owned + ss_sample(&run.own_s, r3);
			} else {
				c.kc = K_SHARED;
				bool ins = op == OP_STORE || op == OP_LOS || op == OP_SWAP;
				c.key = run.shared_base + (ins ? ss_insert_offset(run.shared_n, n, r3, &run.shared_s)
							      : ss_sample(&run.shared_s, r3));
			}
		}
		if (w->sections == 0) {
			syncmap_read_lock();
			w->sections = (int)cfg.section_ops;
		}
		switch (op) {
		case OP_LOAD: op_load(&c); break;
		case OP_STORE: op_store(&c); break;
		case OP_DELETE: op_delete(&c, false); break;
		case OP_LAD: op_delete(&c, true); break;
		case OP_LOS: op_load_or_store(&c); break;
		case OP_SWAP: op_swap(&c); break;
		case OP_CAS: op_compare(&c, false); break;
		case OP_CAD: op_compare(&c, true); break;
		case OP_RANGE: op_range(&c); break;
		case OP_CLEAR: op_clear(&c); break;
		case OP_LEN: op_len(&c); break;
		case OP__N: break;
		}
		w->op_count[op]++;
		if (--w->sections == 0)
			section_end(w);
	}
	if (w->sections > 0) {
		section_end(w);
		w->sections = 0;
	}
	flush_held(w);
	atomic_store_explicit(&w->ops_done, n, memory_order_relaxed);
	w->finished_ns = sm_now_ns();
	atomic_fetch_add(&run.finished, 1);
	if (w->spare) {
		free(w->spare);
		w->spare = NULL;
		w->discarded++;
	}
	return NULL;
}
