/*
 * rcu.h - the library's only door to liburcu.
 *
 * SPDX-License-Identifier: MIT
 *
 * Flavor: urcu-bp ("bulletproof").  Users never register threads and may
 * let them exit at any time; bp registers a thread lazily on its first read
 * lock and unregisters it from a pthread-key destructor.  The memb flavor
 * hangs the next grace period when a reader thread exits unregistered, so a
 * library cannot use it without taking over registration.  With
 * _LGPL_SOURCE the read side is inlined: a thread-local counter store and a
 * compiler barrier (measured 3.35 ns for lock + deref + unlock here, the
 * same as memb; about 25 ns as calls into the .so).  The LGPL allows this
 * from MIT code: the inlined functions are under its 10-line threshold.
 * UBSAN builds define SM_RCU_NO_INLINE (see meson.build) and call the .so.
 *
 * Every read unlock, call_rcu and callback goes through these wrappers so
 * the ThreadSanitizer annotations (tsan/sm_tsan.h) cannot be forgotten.
 */
#ifndef SM_RCU_H
#define SM_RCU_H

#include <errno.h>
#include <stdbool.h>

#ifndef SM_RCU_NO_INLINE
#define _LGPL_SOURCE
#endif
#include <urcu-bp.h>

#include "sm_tsan.h"

static inline void sm_rcu_read_lock(void)
{
	rcu_read_lock();
}

static inline void sm_rcu_read_unlock(void)
{
	sm_tsan_release(&syncmap__tsan_gp_token); /* before: once unlocked, the grace period may end */
	rcu_read_unlock();
}

static inline void sm_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	sm_tsan_release(head); /* our writes so far -> the callback's thread */
	call_rcu(head, fn);
}

/* First statement of every call_rcu callback. */
static inline void sm_rcu_callback_begin(struct rcu_head *head)
{
	(void)head;
	sm_tsan_acquire(head);
	sm_tsan_acquire(&syncmap__tsan_gp_token);
}

static inline bool sm_rcu_in_read_section(void)
{
	return rcu_read_ongoing() != 0;
}

/* Is this liburcu's call_rcu worker (where our callbacks and the
 * application's run)?  Waiting for a grace period there would deadlock:
 * the callbacks queued behind the current one could never run. */
static inline bool sm_rcu_on_callback_thread(void)
{
	return get_thread_call_rcu_data() != NULL;
}

/* Wait for a grace period: never inside a read section or on the callback
 * thread (see above).  Everything read sections that ended before it
 * returns did happens before what follows. */
static inline void sm_synchronize_rcu(void)
{
	int saved_errno = errno; /* liburcu's syscalls are not the caller's business */
	synchronize_rcu();
	errno = saved_errno;
	sm_tsan_acquire(&syncmap__tsan_gp_token);
}

#endif
