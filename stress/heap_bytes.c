/*
 * heap_bytes.c - see heap_bytes.h.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "heap_bytes.h"

#include <malloc.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/types.h>

static _Atomic long long mmapped_bytes; /* live bytes mapped through mmap() */

#ifdef HEAP_BYTES_WRAP_MMAP
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = __real_mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED)
		mmapped_bytes += (long long)len;
	return p;
}

/* With _FILE_OFFSET_BITS=64 (meson's default) glibc's headers turn mmap into
 * mmap64, so both names are wrapped. */
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = __real_mmap64(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED)
		mmapped_bytes += (long long)len;
	return p;
}

int __wrap_munmap(void *addr, size_t len)
{
	int r = __real_munmap(addr, len);
	if (r == 0)
		mmapped_bytes -= (long long)len;
	return r;
}
#endif

long long heap_bytes_now(void)
{
	struct mallinfo2 mi = mallinfo2();
	return (long long)mi.uordblks + (long long)mi.hblkhd + mmapped_bytes;
}

bool heap_bytes_mmap_counted(void)
{
#ifdef HEAP_BYTES_WRAP_MMAP
	return true;
#else
	return false;
#endif
}
