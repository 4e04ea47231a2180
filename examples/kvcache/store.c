/*
 * store.c - kvcache's items over one syncmap (see store.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol.h"

/* memcached: a relative exptime is at most 30 days; larger is Unix time. */
#define REALTIME_MAXDELTA (60 * 60 * 24 * 30)
/*
 * memcached's idea of an item's size for -I: its 48-byte header, the key
 * and a NUL, 4 bytes of flags when they are not 0, the data with its
 * "\r\n", and 8 bytes of cas.  kvcache uses the same arithmetic so that
 * the largest value it takes is the one memcached takes.
 */
#define MEMCACHED_ITEM_HEADER 48
#define MEMCACHED_CAS_BYTES 8

struct kv_store {
	struct syncmap *map;
	size_t mem_limit;
	size_t item_size_max;
	time_t wall_started;       /* Unix time at clock 0 */
	time_t mono_started;       /* CLOCK_MONOTONIC seconds at clock 2 */
	_Atomic kv_time clock_offset;  /* tests move time forward */
	_Atomic uint64_t mem_used; /* charged bytes: allocated items not yet freed */
	_Atomic uint64_t next_cas;
	/* flush_all: items made at or before this time read as absent once the
	 * clock reaches it (memcached's settings.oldest_live); 0 = none. */
	_Atomic kv_time oldest_live;
	_Atomic kv_time flush_swept;    /* the oldest_live a sweep has completed */
	_Atomic bool has_expiring;      /* an item with an expiry was ever stored */
	_Atomic uint64_t expired_removed, swept, sweeps, cas_retries, no_memory;
};

static void count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- clock -------------------------------------------------------------- */

static time_t monotonic_seconds(void)
{
	struct timespec ts;
	/* COARSE: a few ns through the vDSO, and a second's resolution is
	 * all memcached's clock has. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

kv_time kv_store_now(struct kv_store *st)
{
	return (kv_time)(monotonic_seconds() - st->mono_started) + 2 +
	       atomic_load_explicit(&st->clock_offset, memory_order_relaxed);
}

void kv_store_advance_clock(struct kv_store *st, kv_time seconds)
{
	atomic_fetch_add_explicit(&st->clock_offset, seconds, memory_order_relaxed);
}

kv_time kv_store_realtime(struct kv_store *st, int32_t exptime)
{
	if (exptime < 0) /* memcached: "expire immediately" */
		exptime = REALTIME_MAXDELTA + 1;
	if (exptime == 0)
		return 0;
	if (exptime > REALTIME_MAXDELTA) {
		if (exptime <= st->wall_started)
			return 1; /* in the past, but 0 would mean "never" */
		return (kv_time)(exptime - st->wall_started);
	}
	return (kv_time)exptime + kv_store_now(st);
}

/* An item's data, once its time has come, reads as absent. */
static bool item_live(struct kv_store *st, const struct kv_item *it, kv_time now)
{
	if (it->exptime != 0 && it->exptime <= now)
		return false;
	kv_time oldest = atomic_load_explicit(&st->oldest_live, memory_order_relaxed);
	return !(oldest != 0 && oldest <= now && it->time <= oldest);
}

/* ---- items -------------------------------------------------------------- */

static bool charge(struct kv_store *st, size_t bytes, bool enforce_limit)
{
	uint64_t after = atomic_fetch_add_explicit(&st->mem_used, bytes, memory_order_relaxed) + bytes;
	if (enforce_limit && st->mem_limit && after > st->mem_limit) {
		atomic_fetch_sub_explicit(&st->mem_used, bytes, memory_order_relaxed);
		count(&st->no_memory);
		return false;
	}
	return true;
}

static bool too_large(struct kv_store *st, size_t nkey, uint32_t flags, uint64_t nbytes)
{
	uint64_t size = MEMCACHED_ITEM_HEADER + nkey + 1 + (flags ? sizeof(flags) : 0) + nbytes + 2 +
			MEMCACHED_CAS_BYTES;
	return size > st->item_size_max;
}

/*
 * enforce_limit: false for the replacements incr, decr and touch make, whose
 * item is about the size of the one it replaces (memcached edits those in
 * place and never refuses them for memory).
 */
static struct kv_item *item_alloc(struct kv_store *st, size_t nkey, uint32_t flags, kv_time exptime,
				  uint64_t nbytes, bool enforce_limit, enum kv_result *why)
{
	if (too_large(st, nkey, flags, nbytes)) {
		*why = KV_TOO_LARGE;
		return NULL;
	}
	/* data, "\r\n", and a NUL so that incr/decr can parse the value
	 * with the C library, as memcached does. */
	size_t size = sizeof(struct kv_item) + nbytes + 3;
	size_t cost = sizeof(struct kv_item) + nkey + nbytes + 2;
	*why = KV_NO_MEMORY;
	if (!charge(st, cost, enforce_limit))
		return NULL;
	struct kv_item *it = malloc(size);
	if (!it) {
		atomic_fetch_sub_explicit(&st->mem_used, cost, memory_order_relaxed);
		return NULL;
	}
	it->cas = 0;
	it->flags = flags;
	it->exptime = exptime;
	it->time = 0;
	it->nbytes = (uint32_t)nbytes;
	it->charge = (uint32_t)cost;
	it->data[nbytes] = '\r';
	it->data[nbytes + 1] = '\n';
	it->data[nbytes + 2] = '\0';
	return it;
}

struct kv_item *kv_item_new(struct kv_store *st, size_t nkey, uint32_t flags, int32_t exptime, uint32_t nbytes,
			    enum kv_result *why)
{
	return item_alloc(st, nkey, flags, kv_store_realtime(st, exptime), nbytes, true, why);
}

static void item_release(struct kv_store *st, struct kv_item *it)
{
	atomic_fetch_sub_explicit(&st->mem_used, it->charge, memory_order_relaxed);
	free(it);
}

void kv_item_discard(struct kv_store *st, struct kv_item *it)
{
	if (it)
		item_release(st, it);
}

/* syncmap's free_value: the item left the map and a grace period passed. */
static void item_free_value(void *val, void *ctx)
{
	item_release(ctx, val);
}

/* Stamp an item just before it goes into the map (it is immutable after). */
static void item_seal(struct kv_store *st, struct kv_item *it, kv_time now, bool new_cas)
{
	if (new_cas)
		it->cas = atomic_fetch_add_explicit(&st->next_cas, 1, memory_order_relaxed) + 1;
	it->time = now;
	if (it->exptime && !atomic_load_explicit(&st->has_expiring, memory_order_relaxed))
		atomic_store_explicit(&st->has_expiring, true, memory_order_relaxed);
}

/* ---- the map ------------------------------------------------------------ */

struct kv_store *kv_store_new(const struct kv_store_options *opts)
{
	struct kv_store *st = calloc(1, sizeof(*st));
	if (!st) {
		errno = ENOMEM;
		return NULL;
	}
	st->mem_limit = opts->mem_limit;
	st->item_size_max = opts->item_size_max;
	st->mono_started = monotonic_seconds();
	st->wall_started = time(NULL) - 2;
	st->map = syncmap_new(&(struct syncmap_options){
		.free_value = item_free_value,
		.free_ctx = st,
		.shards = opts->shards,
	});
	if (!st->map) {
		int e = errno;
		free(st);
		errno = e;
		return NULL;
	}
	return st;
}

void kv_store_free(struct kv_store *st)
{
	if (!st)
		return;
	syncmap_free(st->map);
	free(st);
}

/*
 * Inside a read section: the live item under key, or NULL.  One that has
 * expired (or been flushed) is removed by compare-and-delete, so that an
 * item stored in its place meanwhile stays.
 */
static struct kv_item *load_live(struct kv_store *st, const char *key, size_t nkey, kv_time now)
{
	void *val;
	if (!syncmap_load(st->map, key, nkey, &val))
		return NULL;
	struct kv_item *it = val;
	if (item_live(st, it, now))
		return it;
	if (syncmap_compare_and_delete(st->map, key, nkey, it))
		count(&st->expired_removed);
	return NULL;
}

static enum kv_result update_set(struct kv_store *st, const char *key, size_t nkey, struct kv_item *it, kv_time now)
{
	item_seal(st, it, now, true);
	if (syncmap_store(st->map, key, nkey, it) < 0) {
		kv_item_discard(st, it);
		return KV_NO_MEMORY;
	}
	return KV_STORED;
}

static enum kv_result update_add(struct kv_store *st, const char *key, size_t nkey, struct kv_item *it, kv_time now)
{
	item_seal(st, it, now, true);
	for (;;) {
		void *cur;
		int rc = syncmap_load_or_store(st->map, key, nkey, it, &cur);
		if (rc == 0)
			return KV_STORED;
		if (rc < 0)
			break;
		if (item_live(st, cur, now)) {
			kv_item_discard(st, it);
			return KV_NOT_STORED;
		}
		/* An expired item is no item: take its place, unless someone
		 * else just did. */
		rc = syncmap_compare_and_swap(st->map, key, nkey, cur, it);
		if (rc == 1)
			return KV_STORED;
		if (rc < 0)
			break;
		count(&st->cas_retries);
	}
	kv_item_discard(st, it);
	return KV_NO_MEMORY;
}

/* append/prepend: a new item holding both, with the old flags and expiry. */
static struct kv_item *concatenate(struct kv_store *st, size_t nkey, const struct kv_item *old,
				   const struct kv_item *it, bool append)
{
	enum kv_result why;
	struct kv_item *both =
		item_alloc(st, nkey, old->flags, old->exptime, (uint64_t)old->nbytes + it->nbytes, true, &why);
	if (!both)
		return NULL;
	const struct kv_item *first = append ? old : it, *second = append ? it : old;
	memcpy(both->data, first->data, first->nbytes);
	memcpy(both->data + first->nbytes, second->data, second->nbytes);
	return both;
}

/* replace, cas, append, prepend: a compare-and-swap from the live item. */
static enum kv_result update_existing(struct kv_store *st, enum kv_update op, const char *key, size_t nkey,
				      struct kv_item *it, uint64_t cas_unique, kv_time now)
{
	enum kv_result result;
	for (;;) {
		struct kv_item *old = load_live(st, key, nkey, now);
		if (!old) {
			result = op == KV_UPDATE_CAS ? KV_NOT_FOUND : KV_NOT_STORED;
			break;
		}
		/* cas 0 never matches (memcached: "no cas given" is EXISTS). */
		if (op == KV_UPDATE_CAS && old->cas != cas_unique) {
			result = KV_EXISTS;
			break;
		}
		struct kv_item *next = it;
		if (op == KV_UPDATE_APPEND || op == KV_UPDATE_PREPEND) {
			next = concatenate(st, nkey, old, it, op == KV_UPDATE_APPEND);
			if (!next) { /* memcached: too large or no memory is NOT_STORED */
				result = KV_NOT_STORED;
				break;
			}
		}
		item_seal(st, next, now, true);
		int rc = syncmap_compare_and_swap(st->map, key, nkey, old, next);
		if (rc == 1) {
			if (next != it)
				kv_item_discard(st, it);
			return KV_STORED;
		}
		if (next != it)
			kv_item_discard(st, next);
		if (rc < 0) {
			result = KV_NO_MEMORY;
			break;
		}
		/* Another writer changed the key since we loaded it: decide
		 * again on what it holds now. */
		count(&st->cas_retries);
	}
	kv_item_discard(st, it);
	return result;
}

enum kv_result kv_store_update(struct kv_store *st, enum kv_update op, const char *key, size_t nkey,
			       struct kv_item *it, uint64_t cas_unique)
{
	enum kv_result result;
	kv_time now = kv_store_now(st);

	/* Items loaded here are used until the swap: one section for all. */
	syncmap_read_lock();
	switch (op) {
	case KV_UPDATE_SET:
		result = update_set(st, key, nkey, it, now);
		break;
	case KV_UPDATE_ADD:
		result = update_add(st, key, nkey, it, now);
		break;
	default:
		result = update_existing(st, op, key, nkey, it, cas_unique, now);
		break;
	}
	syncmap_read_unlock();
	return result;
}

bool kv_store_get(struct kv_store *st, const char *key, size_t nkey,
		  void (*fn)(const struct kv_item *it, void *ctx), void *ctx)
{
	kv_time now = kv_store_now(st);
	syncmap_read_lock();
	struct kv_item *it = load_live(st, key, nkey, now);
	if (it)
		fn(it, ctx);
	syncmap_read_unlock();
	return it != NULL;
}

/* Replace old by next, built from it: 1 swapped (next is the map's now), 0
 * another writer got there first (next discarded, the retry counted: load
 * again), -ENOMEM (next discarded). */
static int swap_in(struct kv_store *st, const char *key, size_t nkey, struct kv_item *old, struct kv_item *next)
{
	int rc = syncmap_compare_and_swap(st->map, key, nkey, old, next);
	if (rc == 1)
		return 1;
	kv_item_discard(st, next);
	if (rc == 0)
		count(&st->cas_retries);
	return rc;
}

enum kv_result kv_store_delta(struct kv_store *st, const char *key, size_t nkey, bool incr, uint64_t delta,
			      char result[21])
{
	enum kv_result r;
	kv_time now = kv_store_now(st);

	syncmap_read_lock();
	for (;;) {
		struct kv_item *old = load_live(st, key, nkey, now);
		uint64_t value;
		if (!old) {
			r = KV_NOT_FOUND;
			break;
		}
		/* The data is followed by "\r\n\0": the C library stops there. */
		if (old->nbytes == 0 || !kv_parse_u64(old->data, &value)) {
			r = KV_NON_NUMERIC;
			break;
		}
		if (incr)
			value += delta; /* wraps at 2^64, as memcached */
		else
			value = delta > value ? 0 : value - delta;
		size_t len = (size_t)snprintf(result, 21, "%llu", (unsigned long long)value);
		/* memcached rewrites a number that got shorter in place,
		 * padded with spaces to the old length ("10" decr 1 is "9 "):
		 * clients see that, so we do the same. */
		size_t nbytes = len <= old->nbytes ? old->nbytes : len;
		enum kv_result why;
		struct kv_item *next = item_alloc(st, nkey, old->flags, old->exptime, nbytes, false, &why);
		if (!next) {
			r = KV_NO_MEMORY;
			break;
		}
		memcpy(next->data, result, len);
		memset(next->data + len, ' ', nbytes - len);
		item_seal(st, next, now, true);
		int rc = swap_in(st, key, nkey, old, next);
		if (rc != 0) {
			r = rc == 1 ? KV_STORED : KV_NO_MEMORY;
			break;
		}
	}
	syncmap_read_unlock();
	return r;
}

enum kv_result kv_store_touch(struct kv_store *st, const char *key, size_t nkey, int32_t exptime)
{
	enum kv_result r;
	kv_time now = kv_store_now(st);
	kv_time new_exptime = kv_store_realtime(st, exptime);

	syncmap_read_lock();
	for (;;) {
		struct kv_item *old = load_live(st, key, nkey, now);
		if (!old) {
			r = KV_NOT_FOUND;
			break;
		}
		enum kv_result why;
		struct kv_item *next = item_alloc(st, nkey, old->flags, new_exptime, old->nbytes, false, &why);
		if (!next) {
			r = KV_NO_MEMORY;
			break;
		}
		memcpy(next->data, old->data, old->nbytes);
		/* memcached's touch keeps the cas id (and the item's age). */
		next->cas = old->cas;
		item_seal(st, next, old->time, false);
		int rc = swap_in(st, key, nkey, old, next);
		if (rc != 0) {
			r = rc == 1 ? KV_TOUCHED : KV_NO_MEMORY;
			break;
		}
	}
	syncmap_read_unlock();
	return r;
}

enum kv_result kv_store_delete(struct kv_store *st, const char *key, size_t nkey)
{
	enum kv_result r = KV_NOT_FOUND;
	kv_time now = kv_store_now(st);
	void *val;

	syncmap_read_lock();
	if (syncmap_load_and_delete(st->map, key, nkey, &val)) {
		if (item_live(st, val, now))
			r = KV_DELETED;
		else
			count(&st->expired_removed);
	}
	syncmap_read_unlock();
	return r;
}

void kv_store_flush(struct kv_store *st, int32_t delay)
{
	kv_time now = kv_store_now(st);
	/* memcached: items made at or before oldest_live are gone once the
	 * clock reaches it; "now" is one second before now, so that items
	 * stored after the flush, in the same second, stay. */
	kv_time oldest = delay > 0 ? kv_store_realtime(st, delay) - 1 : now - 1;
	atomic_store_explicit(&st->oldest_live, oldest, memory_order_relaxed);
	if (oldest <= now)
		syncmap_clear(st->map);
}

struct sweep {
	struct kv_store *st;
	kv_time now;
	size_t removed;
};

static bool sweep_one(const void *key, size_t nkey, void *val, void *ctx)
{
	struct sweep *s = ctx;
	if (!item_live(s->st, val, s->now) && syncmap_compare_and_delete(s->st->map, key, nkey, val))
		s->removed++;
	return true;
}

size_t kv_store_sweep(struct kv_store *st)
{
	struct sweep s = {.st = st, .now = kv_store_now(st)};
	kv_time oldest = atomic_load_explicit(&st->oldest_live, memory_order_relaxed);
	syncmap_range(st->map, sweep_one, &s);
	/* Items stamped oldest_live itself may still arrive during that
	 * second; once it has passed, this flush needs no more sweeps. */
	if (oldest != 0 && oldest < s.now)
		atomic_store_explicit(&st->flush_swept, oldest, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->swept, s.removed, memory_order_relaxed);
	count(&st->sweeps);
	return s.removed;
}

bool kv_store_sweep_useful(struct kv_store *st)
{
	if (atomic_load_explicit(&st->has_expiring, memory_order_relaxed))
		return true;
	kv_time oldest = atomic_load_explicit(&st->oldest_live, memory_order_relaxed);
	return oldest != 0 && oldest <= kv_store_now(st) &&
	       oldest != atomic_load_explicit(&st->flush_swept, memory_order_relaxed);
}

void kv_store_stats(struct kv_store *st, struct kv_store_stats *out)
{
	memset(out, 0, sizeof(*out));
	syncmap_stats(st->map, &out->map);
	out->curr_items = out->map.len;
	out->bytes = atomic_load_explicit(&st->mem_used, memory_order_relaxed);
	out->expired_removed = atomic_load_explicit(&st->expired_removed, memory_order_relaxed);
	out->swept = atomic_load_explicit(&st->swept, memory_order_relaxed);
	out->sweeps = atomic_load_explicit(&st->sweeps, memory_order_relaxed);
	out->cas_retries = atomic_load_explicit(&st->cas_retries, memory_order_relaxed);
	out->no_memory = atomic_load_explicit(&st->no_memory, memory_order_relaxed);
}
