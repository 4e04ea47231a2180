/*
 * stats.h - "STAT name value" lines for the stats command.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KV_STATS_H
#define KV_STATS_H

#include <stdint.h>

#include "buf.h"
#include "counters.h"
#include "store.h"

extern const char *const kv_counter_names[KV_NCOUNTERS];

/* Append "STAT name <printf>\r\n": 0 or -ENOMEM. */
int kv_stat(struct kv_buf *out, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The command counters (sums over threads): 0 or -ENOMEM. */
int kv_stats_counters(struct kv_buf *out, const uint64_t sums[KV_NCOUNTERS]);

/* Items, memory, and syncmap_stats of the store's map (prefixed
 * "syncmap_"): 0 or -ENOMEM. */
int kv_stats_store(struct kv_buf *out, struct kv_store *store, uint64_t limit_maxbytes);

#endif /* KV_STATS_H */
