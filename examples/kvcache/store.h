/*
 * store.h - kvcache's items, kept in one syncmap.
 *
 * SPDX-License-Identifier: MIT
 *
 * An item (flags, expiry, cas id, data) is immutable once it is in the map,
 * and the map owns it: syncmap's free_value frees it after a grace period,
 * whatever took it out (overwrite, delete, compare-and-swap, clear, or
 * syncmap_free at shutdown).  Every change is therefore a new item put in
 * place of the old one:
 *   set           syncmap_store
 *   add           syncmap_load_or_store (over an expired item: CAS)
 *   replace, cas, append, prepend, incr, decr, touch
 *                 load, build the new item, syncmap_compare_and_swap from
 *                 the loaded one; if another writer got there first, load
 *                 again and decide again, so a concurrent set is never lost
 *   delete        syncmap_load_and_delete
 *   flush_all     syncmap_clear; with a delay, items stored before the
 *                 deadline read as absent from then on and are swept
 * Items are read only inside syncmap read sections (all of this file's
 * calls open their own), and those sections never span a blocking call:
 * kv_store_get hands the item to a callback that copies what it needs.
 *
 * Expiry: an expired item reads as absent and is then removed with
 * syncmap_compare_and_delete (so a newer item stored meanwhile is not);
 * kv_store_sweep removes the expired items nobody reads, with a Range.
 *
 * Memory: -m counts the bytes of live items (header, key, data), charged
 * when an item is allocated and released in free_value, i.e. after the
 * grace period that follows its removal.  There is no eviction: past the
 * limit a store fails (SERVER_ERROR out of memory storing object).
 *
 * Thread-safety: every function may be called from any thread at any
 * time, except kv_store_free (no other call may run or follow).
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <syncmap.h>

/* Server-relative time in seconds (memcached's rel_time_t). */
typedef uint32_t kv_time;

struct kv_item {
	uint64_t cas;     /* unique per store, from a global counter */
	uint32_t flags;   /* the client's opaque flags */
	kv_time exptime;  /* expires when the clock reaches it; 0 = never */
	kv_time time;     /* when it was made (flush_all with a delay) */
	uint32_t nbytes;  /* data bytes, without the "\r\n" after them */
	uint32_t charge;  /* bytes counted against the memory limit */
	char data[];      /* nbytes bytes, then "\r\n" */
};

struct kv_store_options {
	size_t mem_limit;     /* bytes of items at most; 0 = no limit */
	size_t item_size_max; /* memcached's -I: largest item (header + key + data) */
	unsigned shards;      /* syncmap shards; 0 = syncmap's default */
};

/* Counters kept by the store itself (the per-command ones are the server's). */
struct kv_store_stats {
	size_t curr_items;         /* syncmap_len */
	uint64_t bytes;            /* charged bytes of live items */
	uint64_t expired_removed;  /* expired items removed when read */
	uint64_t swept;            /* expired or flushed items removed by sweeps */
	uint64_t sweeps;
	uint64_t cas_retries;      /* compare-and-swap loops that lost a race */
	uint64_t no_memory;        /* allocations refused by the memory limit */
	struct syncmap_stats map;
};

enum kv_result {
	KV_STORED,
	KV_NOT_STORED,
	KV_EXISTS,
	KV_NOT_FOUND,
	KV_DELETED,
	KV_TOUCHED,
	KV_NON_NUMERIC,
	KV_TOO_LARGE,
	KV_NO_MEMORY,
};

enum kv_update {
	KV_UPDATE_SET,
	KV_UPDATE_ADD,
	KV_UPDATE_REPLACE,
	KV_UPDATE_APPEND,
	KV_UPDATE_PREPEND,
	KV_UPDATE_CAS,
};

/* NULL with errno set (ENOMEM, EINVAL) on failure. */
struct kv_store *kv_store_new(const struct kv_store_options *opts);
/* Frees every item (their charges return to 0). */
void kv_store_free(struct kv_store *st);

/* The clock: seconds since the store was made, plus 2 (memcached's origin,
 * so that "expired at 1" is always in the past). */
kv_time kv_store_now(struct kv_store *st);
/* Tests: move the clock forward. */
void kv_store_advance_clock(struct kv_store *st, kv_time seconds);
/* memcached's realtime(): an exptime as sent (0 never, up to 30 days
 * relative, beyond that a Unix time, negative: already expired) on our
 * clock. */
kv_time kv_store_realtime(struct kv_store *st, int32_t exptime);

/*
 * A new item for a storage command, charged to the memory limit, owned by
 * the caller until given to kv_store_update (or kv_item_discard).  NULL
 * with *why = KV_TOO_LARGE (over item_size_max, memcached's arithmetic) or
 * KV_NO_MEMORY (over the memory limit, or malloc failed).  Its data must be
 * filled: nbytes bytes then "\r\n".
 */
struct kv_item *kv_item_new(struct kv_store *st, size_t nkey, uint32_t flags, int32_t exptime, uint32_t nbytes,
			    enum kv_result *why);
/* Free an item that never went into the map. */
void kv_item_discard(struct kv_store *st, struct kv_item *it);

/*
 * Run a storage command with the item (taken over in every case: stored,
 * or discarded).  cas_unique: the cas command's value.  Returns KV_STORED,
 * KV_NOT_STORED, KV_EXISTS, KV_NOT_FOUND or KV_NO_MEMORY.
 */
enum kv_result kv_store_update(struct kv_store *st, enum kv_update op, const char *key, size_t nkey,
			       struct kv_item *it, uint64_t cas_unique);

/*
 * Look the key up; if live, call fn(it, ctx) inside a read section: it is
 * valid only during the call, which must copy what it needs and not block.
 * Returns whether fn was called.
 */
bool kv_store_get(struct kv_store *st, const char *key, size_t nkey,
		  void (*fn)(const struct kv_item *it, void *ctx), void *ctx);

/* incr/decr: KV_STORED with the new value in result (digits, NUL-terminated),
 * KV_NOT_FOUND, KV_NON_NUMERIC or KV_NO_MEMORY. */
enum kv_result kv_store_delta(struct kv_store *st, const char *key, size_t nkey, bool incr, uint64_t delta,
			      char result[21]);
/* KV_TOUCHED, KV_NOT_FOUND or KV_NO_MEMORY. */
enum kv_result kv_store_touch(struct kv_store *st, const char *key, size_t nkey, int32_t exptime);
/* KV_DELETED or KV_NOT_FOUND. */
enum kv_result kv_store_delete(struct kv_store *st, const char *key, size_t nkey);
/* flush_all [delay]: delay <= 0 clears now (and cancels a pending delay). */
void kv_store_flush(struct kv_store *st, int32_t delay);

/* Remove expired items, and those a delayed flush_all has reached (a Range
 * with compare-and-delete).  Returns how many. */
size_t kv_store_sweep(struct kv_store *st);
/* Whether a sweep could find anything: some item with an expiry was ever
 * stored, or a delayed flush is pending. */
bool kv_store_sweep_useful(struct kv_store *st);

void kv_store_stats(struct kv_store *st, struct kv_store_stats *out);

#endif /* KV_STORE_H */
