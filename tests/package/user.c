/*
 * tests/package/user.c - a program as a user writes it against an installed
 * syncmap: <syncmap.h> and <gomap.h> come from pkg-config's Cflags, nothing
 * from the source tree.  tests/package/run builds it as C11 against the
 * shared library and against the static archive, and as C++17, all with
 * -Wall -Wextra -pedantic -Werror, so it keeps to the common subset of C
 * and C++ (casts from void *, no designated initializers).
 *
 * Prints "user: ok" and exits 0 when every check holds; otherwise names the
 * failed check and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gomap.h>
#include <syncmap.h>

#define CHECK(cond)                                                             \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "user: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                               \
			exit(1);                                                \
		}                                                               \
	} while (0)

/* free_value runs on liburcu's callback thread: count atomically. */
static long freed;

static void free_value(void *val, void *ctx)
{
	(void)ctx;
	free(val);
	__atomic_fetch_add(&freed, 1, __ATOMIC_RELAXED);
}

static int *boxed(int v)
{
	int *p = (int *)malloc(sizeof *p);
	CHECK(p != NULL);
	*p = v;
	return p;
}

int main(void)
{
	struct syncmap_options opts;
	memset(&opts, 0, sizeof opts);
	opts.free_value = free_value;

	struct syncmap *m = syncmap_new(&opts);
	CHECK(m != NULL);
	CHECK(syncmap_store(m, "alice", 5, boxed(1)) == 0);
	CHECK(syncmap_store(m, "bob", 3, boxed(2)) == 0);

	void *v = NULL;
	syncmap_read_lock();
	CHECK(syncmap_load(m, "alice", 5, &v));
	CHECK(*(int *)v == 1); /* valid until the section ends */
	syncmap_read_unlock();

	CHECK(syncmap_store(m, "alice", 5, boxed(3)) == 0); /* 1 is retired */
	CHECK(syncmap_load(m, "alice", 5, &v));
	syncmap_delete(m, "bob", 3);
	CHECK(!syncmap_load(m, "bob", 3, &v));
	CHECK(syncmap_len(m) == 1);
	syncmap_free(m); /* waits for every free_value of this map */
	CHECK(__atomic_load_n(&freed, __ATOMIC_RELAXED) == 3);

	struct gomap *g = gomap_new(NULL);
	CHECK(g != NULL);
	CHECK(gomap_put(g, "k", 1, &opts) == 0);
	CHECK(gomap_get(g, "k", 1, &v) && v == &opts);
	CHECK(gomap_len(g) == 1);
	gomap_free(g);

	printf("user: ok (syncmap %s)\n", syncmap_version());
	return 0;
}
