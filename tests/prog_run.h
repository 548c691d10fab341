/*
 * prog_run.h - for cmocka tests that drive a built weft program as a user
 * would (test_batch.c, test_nightly.c): the program's path in the build
 * tree, a private temp directory, a shell-free run with stdout and stderr
 * sent to files, and writing a text file. Header-only: each test binary
 * compiles its own copy.
 */
#ifndef WF_TEST_PROG_RUN_H
#define WF_TEST_PROG_RUN_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* Path of build-tree program rel ("batch/weft-batch") into out, under
 * $WEFT_BUILD_ROOT (meson sets it) or ".". 0, or -1 with a message when it
 * is not built. */
static inline int wf_test_prog(char *out, size_t len, const char *rel)
{
	const char *root = getenv("WEFT_BUILD_ROOT");

	snprintf(out, len, "%s/%s", root ? root : ".", rel);
	if (access(out, X_OK) != 0) {
		fprintf(stderr, "%s not built at %s\n", rel, out);
		return -1;
	}
	return 0;
}

/* Run prog with args (NULL-terminated, at most 30); stdout to outpath and
 * stderr to errpath (NULL: /dev/null and inherited). Returns its exit
 * status, 128 when it died of a signal. */
static inline int wf_test_exec(const char *prog, const char *const *args, const char *outpath, const char *errpath)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[32];
		int n = 0;

		argv[n++] = (char *)prog;
		for (; args[n - 1] && n < 31; n++)
			argv[n] = (char *)args[n - 1];
		argv[n] = NULL;
		if (!freopen(outpath ? outpath : "/dev/null", "w", stdout) || (errpath && !freopen(errpath, "w", stderr)))
			_exit(126);
		execv(prog, argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A fresh /tmp/weft.test.<name>.<pid>.XXXXXX into dir. 0 or -1. */
static inline int wf_test_mkdtemp(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "/tmp/weft.test.%s.%d.XXXXXX", name, (int)getpid());
	return mkdtemp(dir) ? 0 : -1;
}

/* Remove dir and all below it. 0 or -1. */
static inline int wf_test_rmtree(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static inline void wf_test_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#endif
