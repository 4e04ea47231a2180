/* tests/package/parent/main.c - the parent project's program: syncmap's
 * public API through dependency('syncmap'), #include <syncmap.h>. */
#include <stdio.h>

#include <syncmap.h>

int main(void)
{
	struct syncmap *m = syncmap_new(NULL);
	int answer = 42;
	void *v = NULL;

	if (!m || syncmap_store(m, "answer", 6, &answer) != 0 ||
	    !syncmap_load(m, "answer", 6, &v) || v != &answer) {
		fprintf(stderr, "app: syncmap does not work\n");
		return 1;
	}
	syncmap_free(m);
	printf("app: ok (syncmap %s)\n", syncmap_version());
	return 0;
}
