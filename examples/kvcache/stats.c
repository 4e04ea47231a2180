/*
 * stats.c - "STAT name value" lines (see stats.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "stats.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

const char *const kv_counter_names[KV_NCOUNTERS] = {
#define KV_COUNTER_NAME(name) #name,
	KV_COUNTER_LIST(KV_COUNTER_NAME)
#undef KV_COUNTER_NAME
};

int kv_stat(struct kv_buf *out, const char *name, const char *fmt, ...)
{
	char value[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(value))
		n = sizeof(value) - 1;
	if (kv_buf_append(out, "STAT ", 5) || kv_buf_append(out, name, strlen(name)) ||
	    kv_buf_append(out, " ", 1) || kv_buf_append(out, value, (size_t)n) || kv_buf_append(out, "\r\n", 2))
		return -ENOMEM;
	return 0;
}

int kv_stats_counters(struct kv_buf *out, const uint64_t sums[KV_NCOUNTERS])
{
	for (int i = 0; i < KV_NCOUNTERS; i++)
		if (kv_stat(out, kv_counter_names[i], "%" PRIu64, sums[i]))
			return -ENOMEM;
	return 0;
}

int kv_stats_store(struct kv_buf *out, struct kv_store *store, uint64_t limit_maxbytes)
{
	struct kv_store_stats s;
	kv_store_stats(store, &s);
	const struct syncmap_stats *m = &s.map;
	int err = 0;
	err |= kv_stat(out, "limit_maxbytes", "%" PRIu64, limit_maxbytes);
	err |= kv_stat(out, "bytes", "%" PRIu64, s.bytes);
	err |= kv_stat(out, "curr_items", "%zu", s.curr_items);
	err |= kv_stat(out, "evictions", "0"); /* no LRU: past -m, stores fail */
	err |= kv_stat(out, "store_refused_by_limit", "%" PRIu64, s.no_memory);
	err |= kv_stat(out, "expired_removed", "%" PRIu64, s.expired_removed);
	err |= kv_stat(out, "swept", "%" PRIu64, s.swept);
	err |= kv_stat(out, "sweeps", "%" PRIu64, s.sweeps);
	err |= kv_stat(out, "cas_retries", "%" PRIu64, s.cas_retries);
	err |= kv_stat(out, "syncmap_len", "%zu", m->len);
	err |= kv_stat(out, "syncmap_shards", "%u", m->shards);
	err |= kv_stat(out, "syncmap_shards_used", "%u", m->shards_used);
	err |= kv_stat(out, "syncmap_read_keys", "%zu", m->read_keys);
	err |= kv_stat(out, "syncmap_dirty_keys", "%zu", m->dirty_keys);
	err |= kv_stat(out, "syncmap_amended", "%d", m->amended);
	err |= kv_stat(out, "syncmap_building", "%d", m->building);
	err |= kv_stat(out, "syncmap_promotions", "%" PRIu64, m->promotions);
	err |= kv_stat(out, "syncmap_misses", "%" PRIu64, m->misses);
	err |= kv_stat(out, "syncmap_locked_ops", "%" PRIu64, m->locked_ops);
	err |= kv_stat(out, "syncmap_max_locked_work", "%" PRIu64, m->max_locked_work);
	err |= kv_stat(out, "syncmap_max_locked_key_bytes", "%" PRIu64, m->max_locked_key_bytes);
	err |= kv_stat(out, "syncmap_entries", "%" PRIu64, m->entries);
	err |= kv_stat(out, "syncmap_pending_reclaim", "%" PRIu64, m->pending_reclaim);
	err |= kv_stat(out, "syncmap_pending_bytes", "%" PRIu64, m->pending_bytes);
	err |= kv_stat(out, "syncmap_reclaim_waits", "%" PRIu64, m->reclaim_waits);
	return err ? -ENOMEM : 0;
}
