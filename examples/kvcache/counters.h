/*
 * counters.h - per-thread command counters for "stats".
 *
 * SPDX-License-Identifier: MIT
 *
 * Each worker thread owns one struct kv_counters and is its only writer,
 * so an increment is a relaxed load and store (no locked instruction, no
 * cache line shared with other writers); "stats" sums all workers' with
 * relaxed loads from any thread.  C11 atomics keep that legal (and quiet
 * under TSAN).
 */
#ifndef KV_COUNTERS_H
#define KV_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

/* memcached's names, so that monitoring written for it reads ours. */
#define KV_COUNTER_LIST(X)                  \
	X(cmd_get)                          \
	X(cmd_set)                          \
	X(cmd_flush)                        \
	X(cmd_touch)                        \
	X(get_hits)                         \
	X(get_misses)                       \
	X(delete_misses)                    \
	X(delete_hits)                      \
	X(incr_misses)                      \
	X(incr_hits)                        \
	X(decr_misses)                      \
	X(decr_hits)                        \
	X(cas_misses)                       \
	X(cas_hits)                         \
	X(cas_badval)                       \
	X(touch_hits)                       \
	X(touch_misses)                     \
	X(store_too_large)                  \
	X(store_no_memory)                  \
	X(total_items)                      \
	X(bytes_read)                       \
	X(bytes_written)

enum kv_counter {
#define KV_COUNTER_ENUM(name) KV_C_##name,
	KV_COUNTER_LIST(KV_COUNTER_ENUM)
#undef KV_COUNTER_ENUM
	KV_NCOUNTERS
};

struct kv_counters {
	_Alignas(64) _Atomic uint64_t v[KV_NCOUNTERS];
};

/* Only the owning thread may call this. */
static inline void kv_count(struct kv_counters *c, enum kv_counter i, uint64_t n)
{
	atomic_store_explicit(&c->v[i], atomic_load_explicit(&c->v[i], memory_order_relaxed) + n,
			      memory_order_relaxed);
}

#endif /* KV_COUNTERS_H */
