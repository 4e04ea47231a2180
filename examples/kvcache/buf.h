/*
 * buf.h - growable byte buffers: a connection's input and output.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KV_BUF_H
#define KV_BUF_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

struct kv_buf {
	char *data;
	size_t len; /* bytes in use */
	size_t cap; /* bytes allocated */
};

/* Room for `extra` more bytes after len: 0, or -ENOMEM (b unchanged). */
int kv_buf_grow(struct kv_buf *b, size_t extra);

static inline int kv_buf_reserve(struct kv_buf *b, size_t extra)
{
	return b->cap - b->len >= extra ? 0 : kv_buf_grow(b, extra);
}

static inline int kv_buf_append(struct kv_buf *b, const void *p, size_t n)
{
	if (kv_buf_reserve(b, n))
		return -ENOMEM;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* Drop the first n bytes (they were sent, or consumed). */
static inline void kv_buf_consume(struct kv_buf *b, size_t n)
{
	b->len -= n;
	if (b->len)
		memmove(b->data, b->data + n, b->len);
}

/* Give the memory back if the buffer is empty and bigger than keep. */
void kv_buf_shrink(struct kv_buf *b, size_t keep);
void kv_buf_free(struct kv_buf *b);

/* Decimal digits of v at p; returns the end. */
char *kv_u64toa(char *p, unsigned long long v);

#endif /* KV_BUF_H */
