/*
 * thread.c - each thread's slot, which picks its stripe of every map.
 *
 * SPDX-License-Identifier: MIT
 *
 * Threads take slots round-robin on first use, so up to `stripes` threads
 * each write a stripe of their own (len counters, retirement chains).
 */
#include "syncmap_impl.h"

SM_TLS unsigned sm_thread_slot_plus1;
static atomic_uint next_slot;

unsigned sm_thread_slot_init(void)
{
	unsigned s = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed) % (1u << 30) + 1;
	sm_thread_slot_plus1 = s;
	return s;
}
