/*
 * alloc.h - every allocation of the library goes through here.
 *
 * SPDX-License-Identifier: MIT
 *
 * One reason: fault injection.  Tests arm a countdown and the Nth allocation
 * from then on fails, so every -ENOMEM path of the library can be driven and
 * checked ("fails cleanly, changes nothing").  Only builds compiled with
 * SM_FAULT_INJECTION=1 have the countdown and the hooks below (meson's
 * internal syncmap_testlib, which the tests and tools link); the installed
 * library goes straight to malloc/mmap.
 *
 * Large zeroed blocks (bucket arrays) come straight from mmap: the kernel
 * hands out zero pages lazily, so allocating the array for a growing map is
 * O(1) no matter how big, and freeing returns the memory to the system.
 */
#ifndef SM_ALLOC_H
#define SM_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *syncmap__malloc(size_t n);
void syncmap__free(void *p);
/* `size` bytes aligned to `align` (a power of two >= sizeof(void *)); free
 * with syncmap__free. */
void *syncmap__aligned_alloc(size_t align, size_t size);

/* Blocks of at least this many bytes are mmapped (page-aligned, given back
 * to the system by munmap, in slices with syncmap__free_zeroed_step); smaller
 * ones come from calloc and are freed whole, which keeps any one free of a
 * block this cheap.  gomap's release budget is tied to it. */
#define SM_MMAP_MIN ((size_t)256 << 10)

/* A zeroed block of `n` bytes, 16-byte aligned; blocks of SM_MMAP_MIN bytes
 * and more are mmapped.  Free with syncmap__free_zeroed(p, n) (the same n). */
void *syncmap__alloc_zeroed(size_t n);
void syncmap__free_zeroed(void *p, size_t n);
/* Ask for transparent huge pages for a block from syncmap__alloc_zeroed(n) of
 * 2 MiB or more (no-op for smaller ones and where THP is off). */
void syncmap__advise_huge(void *p, size_t n);

/* Frees a block from syncmap__alloc_zeroed(n) in steps, so no caller pays for
 * unmapping a big block at once (munmap costs about 100 us per MiB here).
 * *mapped starts at n; each call gives back at most about `budget` bytes
 * from the block's end (at least one page) and returns how many it gave
 * back.  The block's first bytes stay readable until *mapped reaches 0, so
 * a header there may carry the bookkeeping.  Small (malloc'ed) blocks go in
 * one step. */
size_t syncmap__free_zeroed_step(void *p, size_t n, size_t *mapped, size_t budget);

#if SM_FAULT_INJECTION
/*
 * Test hooks (not part of the public API; only in SM_FAULT_INJECTION builds).
 * syncmap__fault_arm(n): the n-th allocation from now fails (n >= 1); 0 disarms.
 * syncmap__fault_stop(): disarm and stop counting (back to the production path).
 * syncmap__fault_count_start(): start counting allocations; syncmap__fault_count()
 * returns how many happened since.  syncmap__fault_fired() tells whether the armed
 * failure has happened (and disarms reporting).
 */
void syncmap__fault_arm(long n);
void syncmap__fault_stop(void);
void syncmap__fault_count_start(void);
long syncmap__fault_count(void);
bool syncmap__fault_fired(void);
#endif /* SM_FAULT_INJECTION */

/* One allocation for the countdown, for allocators layered on these (the
 * block cache hands out blocks it already holds): true when it must fail
 * (errno is then ENOMEM).  Counted by syncmap__fault_count like any other. */
bool syncmap__fault_inject(void);

#endif
