/*
 * heap_bytes.h - how many bytes a benchmark's process holds on the heap,
 * counting what mallinfo2 cannot see.
 *
 * SPDX-License-Identifier: MIT
 *
 * gomap (and so syncmap) maps its bucket arrays of 256 KiB and more directly
 * with mmap(2) (src/alloc.c).  heap_bytes.c wraps mmap/mmap64/munmap at link
 * time (-Wl,--wrap, set up in stress/meson.build) and adds the live mapped
 * bytes to mallinfo2's uordblks + hblkhd.  A binary linked without the wrap
 * still works: heap_bytes_mmap_counted() is then false and the figure
 * undercounts, which callers print.
 */
#ifndef STRESS_HEAP_BYTES_H
#define STRESS_HEAP_BYTES_H

#include <stdbool.h>

/* mallinfo2 uordblks + hblkhd + live bytes mapped through mmap(). */
long long heap_bytes_now(void);

/* Were mmap/munmap wrapped, so heap_bytes_now() counts direct mappings? */
bool heap_bytes_mmap_counted(void);

#endif
