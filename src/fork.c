/*
 * fork.c - the map registry and the fork handlers.
 *
 * SPDX-License-Identifier: MIT
 *
 * Servers fork.  Without help, a child inherits whatever locks other
 * threads held at that instant, and liburcu's call_rcu worker thread does
 * not exist in it: its syncmap_free waited for callbacks that never ran,
 * and nothing it retired was ever freed.  So on the first syncmap_new the
 * library registers pthread_atfork handlers that, around every fork():
 *
 *   prepare:  call_rcu_before_fork(), urcu_bp_before_fork() (liburcu's own
 *             order; the reverse was seen to deadlock), then the registry
 *             lock, and per map: close its gate (as a clear does: operations
 *             that start now wait, and lock() backs off from a shard mutex
 *             while the gate is closed), take and drop each written shard's
 *             mutex (waiting out the critical section in progress), take
 *             each stripe's lock;
 *   parent:   release ours, then urcu_bp_after_fork_parent(),
 *             call_rcu_after_fork_parent();
 *   child:    re-initialize the shard mutexes and alloc_mu (a thread that
 *             no longer exists may have been backing off, or making a
 *             shard, with one held: nothing was half-modified under it),
 *             release ours, reseed this thread's random generator (the
 *             parent's next numbers must not be the child's: map seeds),
 *             then urcu_bp_after_fork_child(), call_rcu_after_fork_child()
 *             (which forgets the parent's other readers, starts a new
 *             callback thread and hands it every queued callback).
 *
 * No mutex of ours but the registry's is held across fork(): holding every
 * shard's of every map would exceed ThreadSanitizer's 64 locks per thread.
 *
 * liburcu comes first because its callback thread runs our callbacks, and
 * they may take our locks (free_value may call any syncmap function): once
 * liburcu has paused that thread between two callbacks, closing our gates
 * cannot wait on it.  Holding every stripe lock means no thread is between
 * counting a callback (m->pending) and queueing it, so the child's counts
 * match its queue and its syncmap_free cannot wait forever; values another
 * thread had removed but not yet retired stay allocated in the child (the
 * parent frees its own copy).
 *
 * A program that calls urcu-bp's fork functions itself says so with
 * syncmap_fork_calls_liburcu(false): they must run exactly once per fork.
 * liburcu's default call_rcu thread is created here, once, so that no
 * first call_rcu (which takes liburcu's call_rcu_mutex to create it) can
 * happen under our locks while a fork holds that mutex and waits for them.
 */
#include "syncmap_impl.h"

#include <stdio.h>

#include "rand.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct syncmap *registry;
static atomic_bool calls_liburcu = true;
/* What prepare did, so parent and child undo exactly that. */
static bool fork_called_liburcu;

void syncmap_fork_calls_liburcu(bool yes)
{
	atomic_store(&calls_liburcu, yes);
}

bool syncmap__fork_calls_liburcu_enabled(void)
{
	return atomic_load(&calls_liburcu);
}

static void each_written_shard(struct syncmap *m, void (*fn)(pthread_mutex_t *))
{
	for (unsigned i = 0; i <= m->shard_mask; i++) {
		struct sm_shard *s = atomic_load_explicit(&m->shard[i], memory_order_acquire);
		if (s != &syncmap__shard_unwritten)
			fn(&s->mu);
	}
}

/* Wait for the critical section in progress, if any. */
static void mutex_drain(pthread_mutex_t *mu)
{
	pthread_mutex_lock(mu);
	pthread_mutex_unlock(mu);
}

static void mutex_reinit(pthread_mutex_t *mu)
{
	syncmap__shard_mutex_init(mu);
}

static void quiesce_map(struct syncmap *m)
{
	syncmap__gate_close(m);
	each_written_shard(m, mutex_drain);
	for (unsigned i = 0; i <= m->stripe_mask; i++)
		sm_stripe_lock(&m->stripes[i]);
}

static void resume_map(struct syncmap *m)
{
	for (unsigned i = 0; i <= m->stripe_mask; i++)
		sm_stripe_unlock(&m->stripes[i]);
	syncmap__gate_open(m);
}

static void prepare(void)
{
	fork_called_liburcu = atomic_load(&calls_liburcu);
	if (fork_called_liburcu) {
		if (sm_rcu_in_read_section() || sm_rcu_on_callback_thread()) {
			/* call_rcu_before_fork would wait for the callback
			 * thread, which waits for this read section (or is
			 * this thread): a hang.  Say why instead. */
			fputs("syncmap: fork() inside a read section or from a call_rcu callback (free_value) "
			      "would hang; aborting\n",
			      stderr);
			abort();
		}
		call_rcu_before_fork();
		urcu_bp_before_fork();
	}
	pthread_mutex_lock(&registry_mu);
	for (struct syncmap *m = registry; m; m = m->reg_next)
		quiesce_map(m);
}

static void parent(void)
{
	for (struct syncmap *m = registry; m; m = m->reg_next)
		resume_map(m);
	pthread_mutex_unlock(&registry_mu);
	if (fork_called_liburcu) {
		urcu_bp_after_fork_parent();
		call_rcu_after_fork_parent();
	}
}

static void child(void)
{
	for (struct syncmap *m = registry; m; m = m->reg_next) {
		each_written_shard(m, mutex_reinit);
		pthread_mutex_init(&m->alloc_mu, NULL);
		resume_map(m);
	}
	/* the one thread left took it: it owns it */
	pthread_mutex_unlock(&registry_mu);
	syncmap__rand_after_fork();
	if (fork_called_liburcu) {
		urcu_bp_after_fork_child();
		call_rcu_after_fork_child();
	}
}

static void init(void)
{
	(void)get_default_call_rcu_data();
	pthread_atfork(prepare, parent, child);
}

void syncmap__fork_init(void)
{
	pthread_once(&init_once, init);
}

void syncmap__registry_add(struct syncmap *m)
{
	pthread_mutex_lock(&registry_mu);
	m->reg_prev = NULL;
	m->reg_next = registry;
	if (registry)
		registry->reg_prev = m;
	registry = m;
	pthread_mutex_unlock(&registry_mu);
}

void syncmap__registry_remove(struct syncmap *m)
{
	pthread_mutex_lock(&registry_mu);
	if (m->reg_prev)
		m->reg_prev->reg_next = m->reg_next;
	else
		registry = m->reg_next;
	if (m->reg_next)
		m->reg_next->reg_prev = m->reg_prev;
	pthread_mutex_unlock(&registry_mu);
}
