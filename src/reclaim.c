/*
 * reclaim.c - freeing what readers may still hold, after a grace period.
 *
 * SPDX-License-Identifier: MIT
 *
 * Four kinds of object leave a map while lock-free readers may still be
 * looking at them, and each is freed by exactly one owner, after an RCU
 * grace period (struct sm_retired, syncmap_impl.h):
 *
 *   - a value box (maps with free_value): retired by whoever replaced or
 *     removed the value; its node is inside, so retiring never allocates;
 *   - a snapshot replaced by promotion: its gomap, and the entries expunged
 *     from it with their key blocks (which no other table holds);
 *   - a snapshot and dirty map dropped together by clear: everything in them.
 *
 * Batching.  A retired object goes onto the retiring thread's stripe of
 * the map (a short chain under a spin lock that, with at most as many
 * threads as stripes, only that thread takes).  Every BATCH_OBJS objects
 * the chain goes to liburcu as one call_rcu: one callback, one counter
 * update and one shared-queue push per batch instead of per object.  A
 * chain that stops growing is handed over by the map's reaper, a call_rcu
 * callback armed when a stripe receives its first object, so nothing waits
 * longer than about two grace periods.
 *
 * Back-pressure.  Writers can retire faster than liburcu's single callback
 * thread frees (measured: 8 threads swapping fresh values on 2 cores left
 * 7.6 million frees pending after 20 s, RSS growing 33 MB/s; the thread
 * drained them in 0.33 s once it ran).  The process counts the objects and
 * bytes in batches handed to liburcu; once either passes its limit, a
 * writer that fills a batch keeps it, and after its operation has left its
 * read section waits for a grace period (synchronize_rcu) and frees the
 * batch itself, as liburcu's defer_rcu does.  Writers then cannot outrun
 * reclamation, and the waiting ones give their CPU to the callback thread.
 * Where waiting could deadlock (inside a read section, on the callback
 * thread) the batch goes to liburcu as usual, and the thread owes a wait:
 * when it leaves its outermost read section (syncmap_read_unlock) it sleeps
 * until the backlog is back under the limit (at most 20 ms), so writers
 * that work inside read sections are slowed too.
 *
 * m->pending counts this map's callbacks in flight, so the last one can
 * free the map after syncmap_free; m->pending_values counts those that call
 * free_value, which syncmap_free waits for (where it may wait).
 * It changes only under a stripe lock of the map (which fork's prepare
 * handler takes, so a fork never catches an increment without its
 * call_rcu) or in callbacks (liburcu pauses its callback thread for fork).
 */
#include "syncmap_impl.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#include "alloc.h"

char syncmap__tsan_gp_token;

/* Objects per call_rcu.  64 boxes free in about 2 us: short enough that
 * a batch freed by a waiting writer does not stall it, long enough to
 * amortize the shared queue push (measured at ~40 ns per call_rcu). */
#define BATCH_OBJS 64
/* The process backlog beyond which writers help: about 2 MiB of boxes
 * plus the values behind them, or 64 MiB of tables. */
#define BACKLOG_MAX_OBJS (1L << 16)
#define BACKLOG_MAX_BYTES ((long)64 << 20)

struct sm_batch {
	struct rcu_head rcu;
	struct syncmap *m;
	struct sm_retired *first;
	long n;
	long values; /* boxes whose value goes to free_value */
	long bytes;
};

static _Atomic long backlog_objs, backlog_bytes;

SM_TLS struct sm_batch *syncmap__help_batch;
SM_TLS bool syncmap__help_owed;

void syncmap__stripe_lock_slow(struct sm_stripe *st)
{
	unsigned spins = 0;
	for (;;) {
		while (atomic_load_explicit(&st->lock, memory_order_relaxed)) {
			if (++spins < 128) {
				caa_cpu_relax();
			} else {
				sched_yield();
				spins = 0;
			}
		}
		if (!atomic_exchange_explicit(&st->lock, 1, memory_order_acquire))
			return;
	}
}

/* ---- pending callbacks ------------------------------------------------- */

static void pending_inc(struct syncmap *m, long n)
{
	atomic_fetch_add_explicit(&m->pending, n, memory_order_relaxed);
}

static void map_release(struct syncmap *m);

/* Last statement of every callback: m may be freed by it.  The release
 * orders this callback's work before syncmap_free's acquire of a zero
 * count (rcu_barrier's own handshake is invisible to TSAN). */
static void pending_dec(struct syncmap *m)
{
	if (atomic_fetch_sub_explicit(&m->pending, 1, memory_order_acq_rel) == PENDING_ORPHANED + 1)
		map_release(m);
}

/* ---- freeing retired objects ------------------------------------------- */

static void box_free(struct syncmap *m, struct sm_box *b, bool keep_value)
{
	if (!keep_value)
		m->free_value(b->val, m->free_ctx);
	syncmap__free(b);
}

void syncmap__table_destroy(struct sm_table *t)
{
	gomap__destroy(&t->g);
	syncmap__free(t->expunged);
	if (t->filter)
		syncmap__free_zeroed((void *)t->filter, (t->filter_mask + 1) * sizeof(uint64_t));
	syncmap__free(t);
}

static size_t table_bytes(const struct sm_table *t)
{
	struct gomap_work w;
	gomap_work(&t->g, &w);
	return sizeof(*t) + w.bytes + (t->filter_mask + 1) * sizeof(uint64_t) +
	       t->capexpunged * sizeof(*t->expunged);
}

static void free_key_word(unsigned code, uint64_t word)
{
	if (code == KEY_INDIRECT)
		syncmap__free((void *)(uintptr_t)word);
}

/* Free the entries expunged from snapshot t and their key blocks (owned by
 * it alone). */
static void free_expunged(struct sm_table *t)
{
	struct sm_entry *first = NULL, *last = NULL;
	for (size_t i = 0; i < t->nexpunged; i++) {
		struct sm_entry *e = t->expunged[i].e;
		syncmap__free((void *)(uintptr_t)t->expunged[i].key); /* 0 for a short key */
		atomic_store_explicit(&e->p, (void *)first, memory_order_relaxed);
		if (!first)
			last = e;
		first = e;
	}
	syncmap__entry_free_chain(t->shard, first, last, (long)t->nexpunged);
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
		box_free(m, p, false);
	return 1;
}

/*
 * Free a snapshot and dirty map of one shard that no one can reach any
 * more, with every entry, key block and value in them.  Entries copied from
 * the snapshot into the dirty map are shared by both (and so are their key
 * blocks), so each is freed once: first every dirty entry's value is
 * released and the entry marked DEAD; then the snapshot's entries not
 * marked (not yet copied, or expunged: those are on its own list) are
 * freed with their keys; then the dirty map's entries and keys.  Returns
 * how many values were present.
 */
long syncmap__tables_free_all(struct syncmap *m, struct sm_table *read, struct sm_table *dirty)
{
	struct gomap_walk w;
	struct gomap_probe key;
	const void *k;
	size_t klen, budget = SIZE_MAX;
	void **slot;
	long present = 0;
	struct chain dead = {0};
	struct sm_shard *s = read ? read->shard : dirty ? dirty->shard : NULL;

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
			(void)gomap_walk_probe(&w, &key);
			free_key_word(key.code, key.word);
			chain_push(&dead, e);
		}
		free_expunged(read);
	}
	if (dirty) {
		gomap_walk_init(&w, &dirty->g, 0);
		while (gomap_walk_next(&w, &budget, &k, &klen, &slot) == 1) {
			(void)gomap_walk_probe(&w, &key);
			free_key_word(key.code, key.word);
			chain_push(&dead, *slot);
		}
	}
	if (s)
		syncmap__entry_free_chain(s, dead.first, dead.last, dead.n);
	if (read)
		syncmap__table_destroy(read);
	if (dirty)
		syncmap__table_destroy(dirty);
	return present;
}

static void retired_free(struct syncmap *m, struct sm_retired *r)
{
	switch (r->kind) {
	case SM_RETIRED_BOX:
	case SM_RETIRED_BOX_KEEP:
		box_free(m, caa_container_of(r, struct sm_box, node), r->kind == SM_RETIRED_BOX_KEEP);
		break;
	case SM_RETIRED_SNAPSHOT: {
		/* Its other keys and entries belong to the table that replaced it. */
		struct sm_table *t = caa_container_of(r, struct sm_table, node);
		free_expunged(t);
		syncmap__table_destroy(t);
		break;
	}
	case SM_RETIRED_CLEARED: {
		struct sm_table *t = caa_container_of(r, struct sm_table, node);
		long snapshot = t->len_snapshot, present = 0;
		while (t) {
			struct sm_table *next = t->clear_next;
			bool is_read = t->peer != t;
			present += syncmap__tables_free_all(m, is_read ? t : NULL, is_read ? t->peer : t);
			t = next;
		}
		/* syncmap_clear subtracted the count it saw; entries written
		 * after that by operations already in flight are settled now. */
		sm_len_add(m, snapshot - present);
		break;
	}
	}
}

static void chain_free(struct syncmap *m, struct sm_retired *r)
{
	while (r) {
		struct sm_retired *next = r->next;
		retired_free(m, r);
		r = next;
	}
}

/* ---- batches ------------------------------------------------------------- */

static void batch_done(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct sm_batch *b = caa_container_of(head, struct sm_batch, rcu);
	struct syncmap *m = b->m;
	long n = b->n, bytes = b->bytes, values = b->values;
	struct sm_retired *first = b->first;
	syncmap__free(b);
	chain_free(m, first);
	/* Release: the free_value calls before syncmap_free's acquire. */
	if (values)
		atomic_fetch_sub_explicit(&m->pending_values, 1, memory_order_release);
	atomic_fetch_sub_explicit(&m->batched_objs, n, memory_order_relaxed);
	atomic_fetch_sub_explicit(&m->batched_bytes, bytes, memory_order_relaxed);
	atomic_fetch_sub_explicit(&backlog_objs, n, memory_order_relaxed);
	atomic_fetch_sub_explicit(&backlog_bytes, bytes, memory_order_relaxed);
	pending_dec(m);
}

/* Hand a batch to liburcu.  Under a stripe lock of m (see the top). */
static void batch_queue(struct syncmap *m, struct sm_batch *b)
{
	pending_inc(m, 1);
	if (b->values)
		atomic_fetch_add_explicit(&m->pending_values, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->batched_objs, b->n, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->batched_bytes, b->bytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&backlog_objs, b->n, memory_order_relaxed);
	atomic_fetch_add_explicit(&backlog_bytes, b->bytes, memory_order_relaxed);
	sm_call_rcu(&b->rcu, batch_done);
}

static bool backlog_over_limit(void)
{
	return atomic_load_explicit(&backlog_objs, memory_order_relaxed) > BACKLOG_MAX_OBJS ||
	       atomic_load_explicit(&backlog_bytes, memory_order_relaxed) > BACKLOG_MAX_BYTES;
}

/* The stripe's chain as one batch (stripe locked).  may_help: the caller is
 * an operation that will call sm_reclaim_after_op, so an over-limit
 * backlog makes it keep the batch and free it itself.  If the batch header
 * cannot be allocated the chain stays (the reaper or the next flush
 * retries): retiring never fails. */
static void stripe_flush_locked(struct syncmap *m, struct sm_stripe *st, bool may_help)
{
	if (!st->n)
		return;
	int saved_errno = errno; /* a failure here is absorbed: not the caller's */
	struct sm_batch *b = syncmap__malloc(sizeof(*b));
	errno = saved_errno;
	if (!b)
		return;
	b->m = m;
	b->first = st->first;
	b->n = st->n;
	b->values = st->values;
	b->bytes = (long)st->bytes;
	st->first = NULL;
	st->n = 0;
	st->values = 0;
	st->bytes = 0;
	if (may_help && backlog_over_limit()) {
		if (!syncmap__help_batch) {
			syncmap__help_batch = b;
			return;
		}
		syncmap__help_owed = true; /* a second one: wait at the next unlock */
	}
	batch_queue(m, b);
}

void syncmap__reclaim_help(void)
{
	struct sm_batch *b = syncmap__help_batch;
	struct syncmap *m = b->m;
	syncmap__help_batch = NULL;
	if (sm_rcu_in_read_section() || sm_rcu_on_callback_thread()) {
		struct sm_stripe *st = my_stripe(m);
		sm_stripe_lock(st);
		batch_queue(m, b);
		sm_stripe_unlock(st);
		syncmap__help_owed = !sm_rcu_on_callback_thread();
		return;
	}
	atomic_fetch_add_explicit(&m->reclaim_waits, 1, memory_order_relaxed);
	int saved_errno = errno; /* the operation that helps reports nothing of it */
	sm_synchronize_rcu();
	struct sm_retired *first = b->first;
	syncmap__free(b);
	chain_free(m, first);
	errno = saved_errno;
}

void syncmap__reclaim_throttle(void)
{
	if (sm_rcu_in_read_section())
		return; /* not the outermost unlock yet */
	syncmap__help_owed = false;
	int saved_errno = errno;
	for (int i = 0; i < 200 && backlog_over_limit(); i++)
		nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
	errno = saved_errno;
}

/* ---- the reaper ------------------------------------------------------------ */

static void reap(struct rcu_head *head);

/* With a stripe lock of m held. */
static void reaper_arm(struct syncmap *m)
{
	if (atomic_load_explicit(&m->reap_armed, memory_order_relaxed) ||
	    atomic_exchange_explicit(&m->reap_armed, true, memory_order_acq_rel))
		return;
	pending_inc(m, 1);
	sm_call_rcu(&m->reap_rcu, reap);
}

/* A grace period after a stripe got its first object: hand every stripe's
 * chain to liburcu.  Try-locks only: the callback thread never waits for a
 * writer here; a busy stripe is retried. */
static void reap(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct syncmap *m = caa_container_of(head, struct syncmap, reap_rcu);
	atomic_store_explicit(&m->reap_armed, false, memory_order_seq_cst);
	if (!atomic_load_explicit(&m->dying, memory_order_acquire)) {
		bool again = false;
		for (unsigned i = 0; i <= m->stripe_mask; i++) {
			struct sm_stripe *st = &m->stripes[i];
			if (!sm_stripe_trylock(st)) {
				again = true;
				continue;
			}
			stripe_flush_locked(m, st, false);
			again |= st->n != 0;
			sm_stripe_unlock(st);
		}
		if (again)
			reaper_arm(m);
	}
	pending_dec(m);
}

/* ---- retiring -------------------------------------------------------------- */

static void retire(struct syncmap *m, struct sm_retired *r, enum sm_retired_kind kind, size_t bytes)
{
	r->kind = kind;
	struct sm_stripe *st = my_stripe(m);
	sm_stripe_lock(st);
	r->next = st->first;
	st->first = r;
	st->bytes += bytes;
	st->values += kind == SM_RETIRED_BOX;
	if (++st->n >= BATCH_OBJS)
		stripe_flush_locked(m, st, true);
	else if (st->n == 1)
		reaper_arm(m);
	sm_stripe_unlock(st);
}

void *syncmap__value_new(struct syncmap *m, void *val)
{
	if (!m->boxed)
		return val ? val : NILVAL;
	struct sm_box *b = syncmap__malloc(sizeof(*b));
	if (b)
		b->val = val;
	return b;
}

void syncmap__value_discard(struct syncmap *m, void *p)
{
	if (m->boxed)
		syncmap__free(p);
}

void syncmap__value_retire(struct syncmap *m, void *p, bool keep_value)
{
	if (!m->boxed)
		return;
	struct sm_box *b = p;
	retire(m, &b->node, keep_value ? SM_RETIRED_BOX_KEEP : SM_RETIRED_BOX, sizeof(*b));
}

void syncmap__table_retire_snapshot(struct syncmap *m, struct sm_table *t)
{
	retire(m, &t->node, SM_RETIRED_SNAPSHOT, table_bytes(t));
}

void syncmap__clear_add(struct sm_clear *c, struct sm_table *read, struct sm_table *dirty)
{
	/* A pair travels on the snapshot (or on the dirty map when there is
	 * no snapshot; peer == itself says so). */
	struct sm_table *carrier = read ? read : dirty;
	if (!carrier)
		return;
	carrier->peer = read ? dirty : carrier;
	carrier->clear_next = NULL;
	if (c->last)
		c->last->clear_next = carrier;
	else
		c->first = carrier;
	c->last = carrier;
	c->bytes += (read ? table_bytes(read) : 0) + (dirty ? table_bytes(dirty) : 0);
}

bool syncmap__clear_retire(struct syncmap *m, struct sm_clear *c, long len_snapshot)
{
	if (!c->first)
		return false;
	c->first->len_snapshot = len_snapshot;
	retire(m, &c->first->node, SM_RETIRED_CLEARED, c->bytes);
	return true;
}

/* The stripes first, the batches after: an object moves from a stripe to a
 * batch under the stripe's lock, so one that has left its stripe before we
 * look there is already counted in batched_objs when we read it (the lock
 * orders the flusher's add before our read).  Read the other way round, a
 * flush between the two reads hid its objects, and a caller waiting for 0
 * ("at rest") went on while they were still pending. */
void syncmap__reclaim_pending(struct syncmap *m, uint64_t *objs, uint64_t *bytes)
{
	long o = 0, b = 0;
	for (unsigned i = 0; i <= m->stripe_mask; i++) {
		struct sm_stripe *st = &m->stripes[i];
		sm_stripe_lock(st);
		o += st->n;
		b += (long)st->bytes;
		sm_stripe_unlock(st);
	}
	o += atomic_load_explicit(&m->batched_objs, memory_order_relaxed);
	b += atomic_load_explicit(&m->batched_bytes, memory_order_relaxed);
	*objs = o > 0 ? (uint64_t)o : 0;
	*bytes = b > 0 ? (uint64_t)b : 0;
}

/* ---- the end of a map --------------------------------------------------------- */

/* Free the values and tables still in the shards. */
static void map_teardown(struct syncmap *m)
{
	for (unsigned i = 0; i <= m->shard_mask; i++) {
		struct sm_shard *s = atomic_load_explicit(&m->shard[i], memory_order_relaxed);
		if (s == &syncmap__shard_unwritten)
			continue;
		struct sm_table *read = read_table(atomic_load_explicit(s->read, memory_order_relaxed));
		syncmap__tables_free_all(m, read == &s->empty ? NULL : read, s->dirty);
		atomic_store_explicit(s->read, (uintptr_t)&s->empty, memory_order_relaxed);
		s->dirty = NULL;
	}
}

/* The shards' own memory and the map struct: once nothing refers to them. */
static void map_release(struct syncmap *m)
{
	for (unsigned i = 0; i <= m->shard_mask; i++) {
		struct sm_shard *s = atomic_load_explicit(&m->shard[i], memory_order_relaxed);
		if (s == &syncmap__shard_unwritten)
			continue;
		syncmap__entries_destroy(s);
		gomap__destroy(&s->empty.g);
		pthread_mutex_destroy(&s->mu);
		syncmap__free(s);
	}
	pthread_mutex_destroy(&m->alloc_mu);
	syncmap__free(m);
}

static void final_teardown(struct rcu_head *head)
{
	sm_rcu_callback_begin(head);
	struct syncmap *m = caa_container_of(head, struct syncmap, final_rcu);
	chain_free(m, m->final_chain);
	map_teardown(m);
	pending_dec(m);
}

void syncmap__reclaim_free_map(struct syncmap *m)
{
	atomic_store_explicit(&m->dying, true, memory_order_release);
	/* What the stripes hold: no reader can reach it any more (no other
	 * thread uses m now, and values of m are not used past syncmap_free). */
	struct sm_retired *chain = NULL;
	for (unsigned i = 0; i <= m->stripe_mask; i++) {
		struct sm_stripe *st = &m->stripes[i];
		sm_stripe_lock(st);
		while (st->first) {
			struct sm_retired *r = st->first;
			st->first = r->next;
			r->next = chain;
			chain = r;
		}
		st->n = 0;
		st->values = 0;
		st->bytes = 0;
		sm_stripe_unlock(st);
	}
	if (!sm_rcu_in_read_section() && !sm_rcu_on_callback_thread()) {
		chain_free(m, chain);
		map_teardown(m);
		/* Every free_value call for the map returns before we do: wait
		 * for the batches that make them (this map's only: not
		 * rcu_barrier, which waits for everyone's and whose internal
		 * handoff TSAN cannot see).  The acquire pairs with each batch's
		 * release. */
		while (atomic_load_explicit(&m->pending_values, memory_order_acquire) != 0)
			nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
		/* The other callbacks (snapshots, the reaper) touch only the
		 * map's memory: the last of them frees it, or we do now. */
		if (atomic_fetch_add_explicit(&m->pending, PENDING_ORPHANED, memory_order_acq_rel) == 0)
			map_release(m);
		return;
	}
	/* A grace period cannot end here (inside a read section), or our
	 * callbacks queue behind the one running (on the callback thread):
	 * let the last callback free the map.  Our own callback and the
	 * orphan mark go in with one add, so the count cannot reach zero
	 * before it runs. */
	m->final_chain = chain;
	pending_inc(m, PENDING_ORPHANED + 1);
	sm_call_rcu(&m->final_rcu, final_teardown);
}
