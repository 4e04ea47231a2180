/*
 * thread.c - each thread's slot, which picks its stripe of every map; and
 * the wait at a map's gate.
 *
 * SPDX-License-Identifier: MIT
 *
 * Threads take slots round-robin on first use, so up to `stripes` threads
 * each write a stripe of their own (len counters, retirement chains).
 */
#include "syncmap_impl.h"

#include <sched.h>

SM_TLS unsigned syncmap__thread_slot_plus1;
static atomic_uint next_slot;

unsigned syncmap__thread_slot_init(void)
{
	unsigned s = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed) % (1u << 30) + 1;
	syncmap__thread_slot_plus1 = s;
	return s;
}

/* A clear holds the gate for O(shards) lock/swap/unlock steps
 * (microseconds): yielding is enough. */
void syncmap__gate_wait(struct syncmap *m)
{
	while (atomic_load_explicit(&m->gate, memory_order_acquire) & 1)
		sched_yield();
}

void syncmap__gate_close(struct syncmap *m)
{
	for (;;) {
		unsigned g = atomic_load_explicit(&m->gate, memory_order_relaxed);
		if (!(g & 1) && atomic_compare_exchange_weak_explicit(&m->gate, &g, g + 1, memory_order_seq_cst,
								      memory_order_relaxed))
			return;
		sched_yield();
	}
}

void syncmap__gate_open(struct syncmap *m)
{
	atomic_fetch_add_explicit(&m->gate, 1, memory_order_release);
}
