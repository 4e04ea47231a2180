/*
 * reclaim.c - freeing what readers may still hold, after a grace period.
 *
 * SPDX-License-Identifier: MIT
 *
 * Three things leave the concurrent map while lock-free readers may still
 * be looking at them, and each is freed by exactly one owner, after an RCU
 * grace period, by a call_rcu callback (never by waiting: every operation
 * may run inside a read section, where waiting would deadlock):
 *
 *   - a value (boxed maps): retired by whoever replaced or removed it, with
 *     the box's own rcu_head, so retiring never allocates;
 *   - a snapshot replaced by promotion: its gomap, its key copies and the
 *     entries expunged from it (which no other table holds);
 *   - a snapshot and dirty map dropped together by clear (or syncmap_free):
 *     everything in them.
 *
 * m->pending counts callbacks in flight so syncmap_free can tell when the
 * last one has run when it cannot wait for them (inside a read section).
 */
#include "syncmap_impl.h"

#include "alloc.h"

char sm_tsan_gp_token;

/* ---- pending callbacks ------------------------------------------------- */

void sm_pending_inc(struct syncmap *m, long n)
{
	atomic_fetch_add_explicit(&m->pending, n, memory_order_relaxed);
}

/* Last statement of every callback: m may be freed by it.  The release
 * orders this callback's work before syncmap_free's acquire of a zero
 * count (rcu_barrier's own handshake is invisible to TSAN). */
void sm_pending_dec(struct syncmap *m)
{
	if (atomic_fetch_sub_explicit(&m->pending, 1, memory_order_acq_rel) == PENDING_ORPHANED + 1)
		sm_map_release(m);
}

/* ---- values ------------------------------------------------------------ */

void *sm_value_new(struct syncmap *m, void *val)
{
	if (!m->boxed)
		return val ? val : NILVAL;
	struct sm_box *b = sm_malloc(sizeof(*b));
	if (b) {
		b->val = val;
		b->m = m;
	}
	return b;
}

void sm_value_discard(struct syncmap *m, void *p)
{
	if (m->boxed)
		sm_free(p);
}

static void box_free(struct sm_box *b)
{
	b->m->free_value(b->val, b->m->free_ctx);
	sm_free(b);
}

static void box_retired(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct sm_box *b = caa_container_of(head, struct sm_box, rcu);
	struct syncmap *m = b->m;
	box_free(b);
	sm_pending_dec(m);
}

/* A box whose value the caller keeps (syncmap_take, or the same pointer
 * stored again): only the box goes. */
static void box_dropped(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct sm_box *b = caa_container_of(head, struct sm_box, rcu);
	struct syncmap *m = b->m;
	sm_free(b);
	sm_pending_dec(m);
}

void sm_value_retire(struct syncmap *m, void *p, bool keep_value)
{
	if (!m->boxed)
		return;
	struct sm_box *b = p;
	sm_pending_inc(m, 1);
	sm_call_rcu(&b->rcu, keep_value ? box_dropped : box_retired);
}

/* ---- tables ------------------------------------------------------------ */

void sm_table_destroy(struct sm_table *t)
{
	gomap_destroy(&t->g);
	sm_free(t->expunged);
	if (t->filter)
		sm_free_zeroed((void *)t->filter, (t->filter_mask + 1) * sizeof(uint64_t));
	sm_free(t);
}

/* Free the entries expunged from snapshot t (owned by it alone). */
static void free_expunged(struct syncmap *m, struct sm_table *t)
{
	struct sm_entry *first = NULL, *last = NULL;
	for (size_t i = 0; i < t->nexpunged; i++) {
		struct sm_entry *e = t->expunged[i];
		atomic_store_explicit(&e->p, (void *)first, memory_order_relaxed);
		if (!first)
			last = e;
		first = e;
	}
	sm_entry_free_chain(m, first, last, (long)t->nexpunged);
}

static void snapshot_retired(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct sm_table *t = caa_container_of(head, struct sm_table, rcu);
	struct syncmap *m = t->m;
	free_expunged(m, t);
	sm_table_destroy(t);
	sm_pending_dec(m);
}

void sm_table_retire_snapshot(struct syncmap *m, struct sm_table *t)
{
	sm_pending_inc(m, 1);
	sm_call_rcu(&t->rcu, snapshot_retired);
}

/* A private mark for entries already handled while tearing down two tables. */
static char dead_obj;
#define DEAD ((void *)&dead_obj)

struct chain {
	struct sm_entry *first, *last;
	long n;
};

static void chain_push(struct chain *c, struct sm_entry *e)
{
	atomic_store_explicit(&e->p, (void *)c->first, memory_order_relaxed);
	if (!c->first)
		c->last = e;
	c->first = e;
	c->n++;
}

/* Release entry e's value, if it has one; returns 1 if it did. */
static long release_value(struct syncmap *m, struct sm_entry *e)
{
	void *p = atomic_load_explicit(&e->p, memory_order_acquire);
	if (!is_value(p))
		return 0;
	if (m->boxed)
		box_free(p);
	return 1;
}

/*
 * Free two tables that no one can reach any more, with every entry and value
 * in them.  Entries may be shared by both (copied from the snapshot into the
 * dirty map), so each is freed once: first every dirty entry is released and
 * marked DEAD; then snapshot entries not marked (not yet copied, or
 * expunged: those are on the snapshot's list) are freed; then the dirty
 * entries.  Returns how many values were present.
 */
long sm_tables_free_all(struct syncmap *m, struct sm_table *read, struct sm_table *dirty)
{
	struct gomap_walk w;
	const void *k;
	size_t klen, budget = SIZE_MAX;
	void **slot;
	long present = 0;
	struct chain dead = {0};

	if (dirty) {
		gomap_walk_init(&w, &dirty->g, 0);
		while (gomap_walk_next(&w, &budget, &k, &klen, &slot) == 1) {
			struct sm_entry *e = *slot;
			present += release_value(m, e);
			atomic_store_explicit(&e->p, DEAD, memory_order_relaxed);
		}
	}
	if (read) {
		gomap_walk_init(&w, &read->g, 0);
		while (gomap_walk_next(&w, &budget, &k, &klen, &slot) == 1) {
			struct sm_entry *e = *slot;
			void *p = atomic_load_explicit(&e->p, memory_order_relaxed);
			if (p == DEAD || p == EXPUNGED)
				continue;
			present += release_value(m, e);
			chain_push(&dead, e);
		}
		free_expunged(m, read);
	}
	if (dirty) {
		gomap_walk_init(&w, &dirty->g, 0);
		while (gomap_walk_next(&w, &budget, &k, &klen, &slot) == 1)
			chain_push(&dead, *slot);
	}
	sm_entry_free_chain(m, dead.first, dead.last, dead.n);
	if (read)
		sm_table_destroy(read);
	if (dirty)
		sm_table_destroy(dirty);
	return present;
}

static void all_retired(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct sm_table *t = caa_container_of(head, struct sm_table, rcu);
	struct syncmap *m = t->m;
	long snapshot = t->len_snapshot;
	bool is_read = t->peer != t;
	struct sm_table *read = is_read ? t : NULL;
	struct sm_table *dirty = is_read ? t->peer : t;
	long present = sm_tables_free_all(m, read, dirty);
	/* syncmap_clear subtracted the count it saw; entries written after
	 * that by operations already in flight are settled now. */
	sm_len_add(m, snapshot - present);
	sm_pending_dec(m);
}

void sm_tables_retire_all(struct syncmap *m, struct sm_table *read, struct sm_table *dirty,
			  long len_snapshot)
{
	/* One callback for both, on the snapshot's rcu_head (or the dirty
	 * map's when there is no snapshot; peer == itself says so). */
	struct sm_table *carrier = read ? read : dirty;
	if (!carrier)
		return;
	carrier->peer = read ? dirty : carrier;
	carrier->len_snapshot = len_snapshot;
	sm_pending_inc(m, 1);
	sm_call_rcu(&carrier->rcu, all_retired);
}
