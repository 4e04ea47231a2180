/*
 * gomap_testrun.h - run named tests, each in a child process, so that a
 * failing test (the asserts abort) does not hide the ones after it.  The
 * child exits normally on success, which also runs LeakSanitizer's check
 * in ASAN builds.  main() returns test_run_summary(...).
 *
 * Each child starts from the parent's state: with SEED=... fixed, every
 * test sees the same random numbers on every run.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SM_TEST_GOMAP_TESTRUN_H
#define SM_TEST_GOMAP_TESTRUN_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static int test_run_failed;

static inline double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void run_test(const char *name, void (*fn)(void))
{
	printf("=== %s\n", name);
	fflush(stdout);
	fflush(stderr);
	double t0 = now_sec();
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		abort();
	}
	if (pid == 0) {
		fn();
		fflush(stdout);
		exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid) {
		perror("waitpid");
		abort();
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("--- ok %s (%.2fs)\n", name, now_sec() - t0);
	} else {
		test_run_failed++;
		printf("--- FAILED %s (%s %d)\n", name, WIFSIGNALED(status) ? "signal" : "exit status",
		       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
	fflush(stdout);
}

#define RUN(name) run_test(#name, name)

static inline int test_run_summary(const char *what)
{
	if (test_run_failed) {
		printf("%d %s test(s) FAILED; the seed printed above reproduces the run\n", test_run_failed, what);
		return 1;
	}
	printf("all %s tests passed\n", what);
	return 0;
}

#endif
