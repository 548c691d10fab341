/*
 * test_nightly.c - `weft-batch nightly`: a journal written here through the
 * real lib/journal.h writer (EVENT arguments session user type item
 * [field value]..., as weft-ingest writes them) plus a history CSV become
 * tonight's snapshot in STATE/snapshots; the journal's users, items,
 * quantities and anonymous events land in it; older nights beyond --keep
 * are pruned; a load refused by the admin socket (a stand-in speaking RESP
 * here) exits 1 saying why; a build with nothing usable fails, says why
 * and leaves the existing snapshots alone. Runs
 * $WEFT_BUILD_ROOT/batch/weft-batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/journal.h"
#include "lib/snapshot.h"
#include "lib/util.h"
#include "tests/prog_run.h"

static char dir[256], prog[1024];

#define T0 1700000000000ULL
#define DAY 86400000ULL

/* Run weft-batch; stdout and stderr go to DIR/out.txt and DIR/err.txt.
 * Returns the exit status. */
static int run(const char *const *args)
{
	char o[400], e[400];

	snprintf(o, sizeof(o), "%s/out.txt", dir);
	snprintf(e, sizeof(e), "%s/err.txt", dir);
	return wf_test_exec(prog, args, o, e);
}

static char *slurp(const char *name)
{
	char path[400], *s = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(wf_read_file(path, &s, NULL), 0);
	return s;
}

static void append(struct wf_journal *j, uint64_t ts, int argc, const char *const *argv)
{
	uint32_t argl[16];
	uint64_t lsn;

	for (int i = 0; i < argc; i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	assert_int_equal(wf_journal_append(j, ts, 0, (uint32_t)argc, argv, argl, &lsn), 0);
}

/* Today's journal: newcomer (only here) views, carts 3 of, and buys x1;
 * an anonymous visitor views x1 and x2; a search without an item; one
 * record that is not an EVENT (2 arguments). */
static void write_journal(const char *state)
{
	char jdir[400], err[256];
	struct wf_journal *j;

	snprintf(jdir, sizeof(jdir), "%s/journal", state);
	assert_int_equal(wf_journal_open(jdir, NULL, &j, err, sizeof(err)), 0);
	const char *e1[] = { "s-today", "newcomer", "pdp", "x1" };
	const char *e2[] = { "s-today", "newcomer", "cart_add", "x1", "qty", "3" };
	const char *e3[] = { "s-today", "newcomer", "purchase", "x1", "qty", "3" };
	const char *e4[] = { "s-today", "newcomer", "dwell", "x2", "ms", "4200" };
	const char *e5[] = { "s-anon", "-", "view", "x1" };
	const char *e6[] = { "s-anon", "-", "view", "x2" };
	const char *e7[] = { "s-anon", "-", "search", "-", "q", "red shoes" };
	const char *bad[] = { "s-x", "only-two" };
	append(j, T0 + 3 * DAY, 4, e1);
	append(j, T0 + 3 * DAY + 10, 6, e2);
	append(j, T0 + 3 * DAY + 20, 6, e3);
	append(j, T0 + 3 * DAY + 30, 6, e4);
	append(j, T0 + 3 * DAY + 40, 4, e5);
	append(j, T0 + 3 * DAY + 50, 4, e6);
	append(j, T0 + 3 * DAY + 60, 6, e7);
	append(j, T0 + 3 * DAY + 70, 2, bad);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);
}

static void write_file(const char *path, const char *text)
{
	wf_test_write(path, text);
}

/* Names of STATE/snapshots/night-*.snap, sorted; returns the count. */
static int nights(const char *state, char names[][64], int max)
{
	char sdir[400];
	struct dirent **ents;
	int n, k = 0;

	snprintf(sdir, sizeof(sdir), "%s/snapshots", state);
	n = scandir(sdir, &ents, NULL, alphasort);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(ents[i]->d_name);
		if (strncmp(ents[i]->d_name, "night-", 6) == 0 && l > 5 && strcmp(ents[i]->d_name + l - 5, ".snap") == 0 &&
		    k < max)
			snprintf(names[k++], 64, "%s", ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return k;
}

/* A stand-in for weft-admin: accepts one connection on path, answers the
 * first request with reply (RESP bytes) and, when status is not NULL, a
 * following SNAPSHOT STATUS with status. Returns the child's pid; the
 * child exits 0 when the first request was SNAPSHOT LOAD. */
static pid_t fake_admin2(const char *path, const char *reply, const char *status)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pid_t pid;

	assert_true(fd >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[4096];
		int c = accept(fd, NULL, NULL);
		if (c < 0 || read(c, buf, sizeof(buf)) <= 0)
			_exit(1);
		if (write(c, reply, strlen(reply)) < 0)
			_exit(1);
		int load = strstr(buf, "SNAPSHOT") && strstr(buf, "LOAD") ? 0 : 2;
		char buf2[4096];
		ssize_t n2 = status ? read(c, buf2, sizeof(buf2) - 1) : 0;
		if (n2 > 0) {
			buf2[n2] = '\0';
			if (strstr(buf2, "STATUS") && write(c, status, strlen(status)) < 0)
				_exit(1);
		}
		close(c);
		_exit(load);
	}
	close(fd);
	return pid;
}

static pid_t fake_admin(const char *path, const char *reply)
{
	return fake_admin2(path, reply, NULL);
}

static int setup(void **state)
{
	return wf_test_prog(prog, sizeof(prog), "batch/weft-batch") < 0 ? -1 :
									    wf_test_mkdtemp(dir, sizeof(dir), "nightly");
}

static int teardown(void **state)
{
	return wf_test_rmtree(dir);
}

static void test_nightly_journal_and_history_build_prune_load(void **state)
{
	char st[300], hist[400], cat[400], old[500], names[16][64], path[500], err[512], sock[400];
	struct wf_snap *s;

	snprintf(st, sizeof(st), "%s/state", dir);
	snprintf(hist, sizeof(hist), "%s/history.csv", dir);
	snprintf(cat, sizeof(cat), "%s/catalog.csv", dir);
	snprintf(sock, sizeof(sock), "%s/admin.sock", dir);
	assert_int_equal(mkdir(st, 0700), 0);
	write_journal(st);
	write_file(hist, "ts,user_id,session_id,event,item_id,value\n"
			 "1700000000000,alice,h1,view,x1,\n"
			 "1700000001000,alice,h1,pdp,x3,\n"
			 "1700086400000,bob,h2,click,x3,\n");
	write_file(cat, "item_id,category,brand,price,sizes\nx1,hats,acme,10.00,M\nx2,hats,acme,4.00,M\n"
			"x3,socks,zed,2.00,M\n");
	/* Three older nights and a file that is not a night: --keep 2 keeps the
	 * newest of them and tonight's, also the night weft names as its
	 * previous generation (the rollback target), and never touches other
	 * files. */
	snprintf(old, sizeof(old), "%s/snapshots", st);
	assert_int_equal(mkdir(old, 0750), 0);
	snprintf(old, sizeof(old), "%s/snapshots/night-19990101-000000.snap", st);
	write_file(old, "old");
	snprintf(old, sizeof(old), "%s/snapshots/night-20000101-000000.snap", st);
	write_file(old, "old");
	snprintf(old, sizeof(old), "%s/snapshots/night-20000102-000000.snap", st);
	write_file(old, "old");
	snprintf(old, sizeof(old), "%s/snapshots/keep-me.snap", st);
	write_file(old, "mine");

	char prev[400], status[900];
	snprintf(prev, sizeof(prev), "%s/snapshots/night-20000101-000000.snap", st);
	snprintf(status, sizeof(status),
		 "*4\r\n$7\r\ncurrent\r\n$-1\r\n$8\r\nprevious\r\n*4\r\n$3\r\ngen\r\n:41\r\n$4\r\npath\r\n$%zu\r\n%s\r\n",
		 strlen(prev), prev);
	pid_t adm = fake_admin2(sock, "+OK generation 42 loaded on 2 rankers\r\n", status);
	const char *args[] = { "nightly", "--state-dir", st, "--history", hist, "--catalog", cat, "--keep", "2",
			       "--candidates", "5", "--admin", sock, "--quiet", NULL };
	assert_int_equal(run(args), 0);
	int ws;
	assert_int_equal(waitpid(adm, &ws, 0), adm);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0); /* it was asked SNAPSHOT LOAD */
	char *out = slurp("out.txt");
	assert_non_null(strstr(out, "generation 42 loaded"));
	free(out);

	assert_int_equal(nights(st, names, 16), 3);
	assert_string_equal(names[0], "night-20000101-000000.snap"); /* weft's previous */
	assert_string_equal(names[1], "night-20000102-000000.snap");
	assert_int_equal(access(old, F_OK), 0);
	snprintf(path, sizeof(path), "%s/snapshots/%s", st, names[2]);
	assert_int_equal(wf_snap_open(path, &s, err, sizeof(err)), 0);
	/* history users and the journal's newcomer; the anonymous visitor is none */
	assert_int_equal(s->nusers, 3);
	int64_t nc = wf_snap_user_find(s, "newcomer", 8);
	assert_true(nc >= 0);
	assert_true(wf_snap_user_find(s, "alice", 5) >= 0);
	assert_int_equal(s->users[nc].orders, 1);
	/* qty 3 of a 10.00 item: spend 30 shows in an LTV of at least 30 */
	assert_true(s->users[nc].ltv >= 30.0f - 1e-3f);
	assert_int_equal(s->hdr->data_end_ms, T0 + 3 * DAY + 60);
	int64_t x1 = wf_snap_item_find(s, "x1", 2), x2 = wf_snap_item_find(s, "x2", 2);
	assert_true(x1 >= 0 && x2 >= 0);
	/* the anonymous session co-viewed x1 and x2: neighbours */
	assert_true(s->items[x1].neigh_cnt >= 1);
	wf_snap_close(s);
	char man[600], *json;
	snprintf(man, sizeof(man), "%s.manifest.json", path);
	assert_int_equal(wf_read_file(man, &json, NULL), 0);
	assert_non_null(strstr(json, "\"events_read\": 10,"));   /* 3 history + 7 journal */
	assert_non_null(strstr(json, "\"rows_skipped\": 1,"));    /* the 2-argument record */
	assert_non_null(strstr(json, "\"anonymous_events\": 3,"));
	free(json);
	char *e = slurp("err.txt");
	assert_non_null(strstr(e, "not an EVENT record")); /* reported even with --quiet */
	free(e);
}

static void test_nightly_refused_load_exits_1_and_says_why(void **state)
{
	char st[300], hist[400], sock[400], names[16][64];

	snprintf(st, sizeof(st), "%s/state2", dir);
	snprintf(hist, sizeof(hist), "%s/history2.csv", dir);
	snprintf(sock, sizeof(sock), "%s/admin2.sock", dir);
	assert_int_equal(mkdir(st, 0700), 0);
	write_journal(st);
	write_file(hist, "ts,user_id,session_id,event,item_id,value\n1700000000000,alice,h1,view,x1,\n");
	pid_t adm = fake_admin(sock, "-ERR snapshot refused: wrong format version 9\r\n");
	const char *args[] = { "nightly", "--state-dir", st, "--history", hist, "--admin", sock, "--quiet", NULL };
	assert_int_equal(run(args), 1);
	waitpid(adm, NULL, 0);
	char *e = slurp("err.txt");
	assert_non_null(strstr(e, "wrong format version 9"));
	assert_non_null(strstr(e, "the current snapshot stays"));
	free(e);
	assert_int_equal(nights(st, names, 16), 1); /* built, just not loaded */

	/* No admin listening: also exit 1, with the reason. */
	unlink(sock);
	assert_int_equal(run(args), 1);
	e = slurp("err.txt");
	assert_non_null(strstr(e, "cannot reach"));
	free(e);
}

static void test_nightly_failed_build_keeps_snapshots(void **state)
{
	char st[300], hist[400], names[16][64], jdir[400], err[256];
	struct wf_journal *j;

	snprintf(st, sizeof(st), "%s/state3", dir);
	assert_int_equal(mkdir(st, 0700), 0);
	/* Nothing at all. */
	const char *args[] = { "nightly", "--state-dir", st, "--quiet", NULL };
	assert_int_equal(run(args), 1);
	char *e = slurp("err.txt");
	assert_non_null(strstr(e, "nothing to build from"));
	assert_non_null(strstr(e, "the current snapshot stays"));
	free(e);
	/* A journal of garbage records and a garbage history: refused. */
	snprintf(jdir, sizeof(jdir), "%s/journal", st);
	assert_int_equal(wf_journal_open(jdir, NULL, &j, err, sizeof(err)), 0);
	for (int i = 0; i < 5; i++) {
		const char *bad[] = { "s", "u", "teleport", "x1" };
		append(j, T0, 4, bad);
	}
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);
	snprintf(hist, sizeof(hist), "%s/snapshots", st);
	mkdir(hist, 0750);
	snprintf(hist, sizeof(hist), "%s/snapshots/night-20000101-000000.snap", st);
	write_file(hist, "serving");
	const char *args2[] = { "nightly", "--state-dir", st, "--keep", "1", "--quiet", NULL };
	assert_int_equal(run(args2), 1);
	e = slurp("err.txt");
	assert_non_null(strstr(e, "unknown event type"));
	assert_non_null(strstr(e, "nightly build failed"));
	free(e);
	assert_int_equal(nights(st, names, 16), 1);
	assert_string_equal(names[0], "night-20000101-000000.snap"); /* not pruned by a failed night */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nightly_journal_and_history_build_prune_load),
		cmocka_unit_test(test_nightly_refused_load_exits_1_and_says_why),
		cmocka_unit_test(test_nightly_failed_build_keeps_snapshots),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
