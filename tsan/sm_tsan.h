/*
 * sm_tsan.h - what ThreadSanitizer cannot learn from liburcu 0.13 by itself.
 *
 * SPDX-License-Identifier: MIT
 *
 * liburcu gained TSAN support only in 0.15, and only when liburcu itself is
 * rebuilt with TSAN.  With Debian's 0.13.2, TSAN does not see that a grace
 * period orders every read section that could see an object before the
 * object is freed, nor that call_rcu hands the caller's writes to the
 * callback's thread.  These annotations state exactly those two
 * happens-before edges, nothing more (checked with gcc 12 and clang 14:
 * real races injected next to them, an in-place write to a published
 * object, a free without a grace period, a plain ++ in a read section,
 * were still reported; the canary build proves it on every CI run):
 *
 *   - every read section ends with a release on one token, just before the
 *     unlock (after the unlock the grace period may end);
 *   - every call_rcu callback starts with an acquire of that token (it runs
 *     after a grace period, so after every read section that could have
 *     seen its object) and of its rcu_head, which the caller released just
 *     before call_rcu (so the callback sees the caller's writes).
 *
 * Publication itself needs no annotation: the library publishes and reads
 * every RCU-protected pointer with C11 release/acquire atomics, which TSAN
 * understands.  Compiled to nothing without TSAN (gcc defines
 * __SANITIZE_THREAD__; clang 14 only answers __has_feature).
 */
#ifndef SM_TSAN_H
#define SM_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define SM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SM_TSAN 1
#endif
#endif

#ifdef SM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define sm_tsan_release(a) __tsan_release((void *)(a))
#define sm_tsan_acquire(a) __tsan_acquire((void *)(a))
#else
#define sm_tsan_release(a) ((void)0)
#define sm_tsan_acquire(a) ((void)0)
#endif

/* One synchronization object meaning "a read section ended". */
extern char syncmap__tsan_gp_token;

#endif
