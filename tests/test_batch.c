/*
 * test_batch.c - weft-batch end to end: builds a snapshot from a small
 * events and catalog CSV written here (malformed rows included), checks the
 * manifest's counts against the file as the reader sees it, the model's
 * basic promises (co-viewed items become neighbours, catalog-only items are
 * listed, anonymous events make no user, lists sorted), `verify` on a good
 * and a corrupted file, and the refusal of a file that is mostly garbage.
 * Runs $WEFT_BUILD_ROOT/batch/weft-batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/snapshot.h"
#include "lib/util.h"

static char dir[256], prog[1024];

static void write_text(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Run weft-batch with a shell-free argv; returns its exit status. */
static int run(const char *const *args)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[32];
		int n = 0;
		argv[n++] = prog;
		for (; args[n - 1]; n++)
			argv[n] = (char *)args[n - 1];
		argv[n] = NULL;
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execv(prog, argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Integer value of "key": N in the manifest (first occurrence). */
static long long jnum(const char *json, const char *key)
{
	char pat[128];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(json, pat);
	assert_non_null(p);
	return atoll(p + strlen(pat));
}

static int setup(void **state)
{
	const char *root = getenv("WEFT_BUILD_ROOT");

	snprintf(prog, sizeof(prog), "%s/batch/weft-batch", root ? root : ".");
	if (access(prog, X_OK) != 0) {
		fprintf(stderr, "weft-batch not built at %s\n", prog);
		return -1;
	}
	snprintf(dir, sizeof(dir), "/tmp/weft.test.batch.%d.XXXXXX", (int)getpid());
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define DAY 86400000LL

/* 3 users, 2 anonymous events, 3 malformed rows, 1 catalog-only item. */
static const char *events_csv(void)
{
	static char buf[8192];
	struct wf_buf b = { 0 };
	long long t = 1700000000000LL;

	wf_buf_printf(&b, "ts,user_id,session_id,event,item_id,value\n");
	/* alice views a then b in three sessions: a and b become neighbours. */
	for (int s = 0; s < 3; s++) {
		wf_buf_printf(&b, "%lld,alice,sa%d,view,a,\n", t + s * DAY, s);
		wf_buf_printf(&b, "%lld,alice,sa%d,pdp,b,\n", t + s * DAY + 1000, s);
	}
	wf_buf_printf(&b, "%lld,alice,sa2,purchase,b,2\n", t + 2 * DAY + 5000);
	/* bob: a and c, and buys c with d. */
	wf_buf_printf(&b, "%lld,bob,sb0,click,a,\n", t + DAY);
	wf_buf_printf(&b, "%lld,bob,sb0,cart_add,c,1\n", t + DAY + 10);
	wf_buf_printf(&b, "%lld,bob,sb0,purchase,c,1\n", t + DAY + 20);
	wf_buf_printf(&b, "%lld,bob,sb0,purchase,d,1\n", t + DAY + 30);
	wf_buf_printf(&b, "%lld,bob,sb0,search,,\"red, shoes\"\n", t + DAY + 40);
	/* carol: one dwell on d. */
	wf_buf_printf(&b, "%lld,carol,sc0,dwell,d,4200\n", t + 3 * DAY);
	/* anonymous visitor. */
	wf_buf_printf(&b, "%lld,,sx0,view,a,\n", t + 3 * DAY);
	wf_buf_printf(&b, "%lld,,sx0,view,b,\n", t + 3 * DAY + 10);
	/* malformed: bad ts, unknown event, missing item. */
	wf_buf_printf(&b, "yesterday,alice,sa9,view,a,\n");
	wf_buf_printf(&b, "%lld,alice,sa9,teleport,a,\n", t);
	wf_buf_printf(&b, "%lld,alice,sa9,view,,\n", t);
	assert_true(b.len < sizeof(buf));
	memcpy(buf, b.data, b.len + 1);
	wf_buf_fini(&b);
	return buf;
}

static const char catalog_csv[] = "item_id,category,brand,price,sizes\n"
				  "a,shoes,acme,10.00,S;M\n"
				  "b,shoes,acme,20.00,M\n"
				  "c,hats,zed,5.50,\n"
				  "d,socks,zed,2.00,S;M;L\n"
				  "e,hats,zed,7.00,M\n"; /* never in an event */

static void test_batch_build_manifest_matches_file(void **state)
{
	char out[512], man[600], err[512];
	char *json;
	struct wf_snap *s;

	write_text("events.csv", events_csv());
	write_text("catalog.csv", catalog_csv);
	snprintf(out, sizeof(out), "%s/snap.weft", dir);
	snprintf(man, sizeof(man), "%s.manifest.json", out);
	char ev[512], cat[512];
	snprintf(ev, sizeof(ev), "%s/events.csv", dir);
	snprintf(cat, sizeof(cat), "%s/catalog.csv", dir);
	const char *args[] = { "build", "--events", ev, "--catalog", cat, "--out", out, "--candidates", "4",
			       "--generation", "77", "--threads", "2", "--quiet", NULL };
	assert_int_equal(run(args), 0);

	assert_int_equal(wf_snap_open(out, &s, err, sizeof(err)), 0);
	assert_int_equal(wf_read_file(man, &json, NULL), 0);
	assert_int_equal(jnum(json, "users"), s->nusers);
	assert_int_equal(jnum(json, "items"), s->nitems);
	assert_int_equal(jnum(json, "candidates"), (long long)s->ncands);
	assert_int_equal(jnum(json, "neighbours"), (long long)s->nneigh);
	assert_int_equal(jnum(json, "complements"), (long long)s->ncompl);
	assert_int_equal(jnum(json, "categories"), s->ncats);
	assert_int_equal(jnum(json, "generation"), 77);
	assert_int_equal(jnum(json, "file_size"), (long long)s->hdr->file_size);
	assert_int_equal(jnum(json, "events_read"), 15);
	assert_int_equal(jnum(json, "rows_skipped"), 3);
	assert_int_equal(jnum(json, "anonymous_events"), 2);
	assert_int_equal(s->hdr->generation, 77);

	/* The model's promises. */
	assert_int_equal(s->nusers, 3);
	assert_int_equal(s->nitems, 5);
	assert_int_equal(s->ncats, 3);
	assert_int_equal(s->nbrands, 2);
	int64_t a = wf_snap_item_find(s, "a", 1), b = wf_snap_item_find(s, "b", 1), e = wf_snap_item_find(s, "e", 1);
	assert_true(a >= 0 && b >= 0 && e >= 0);
	assert_true(s->items[e].flags & WF_SNAP_ITEM_IN_CATALOG);
	assert_true(s->items[a].neigh_cnt >= 1);
	assert_int_equal(s->neigh[s->items[a].neigh_off].item, b); /* b is a's strongest neighbour */
	assert_int_equal(s->items[b].price_cents, 2000);
	assert_true(s->items[b].price_band > s->items[a].price_band);
	uint32_t len;
	assert_memory_equal(wf_snap_cat_name(s, s->items[a].category, &len), "shoes", 5);
	assert_int_equal(wf_snap_user_find(s, "", 0), -1);
	int64_t alice = wf_snap_user_find(s, "alice", 5), bob = wf_snap_user_find(s, "bob", 3);
	assert_true(alice >= 0 && bob >= 0);
	assert_int_equal(s->users[bob].orders, 1);
	assert_true(s->users[bob].r >= 1);
	assert_int_equal(s->users[wf_snap_user_find(s, "carol", 5)].orders, 0);
	for (uint32_t u = 0; u < s->nusers; u++) {
		const struct wf_snap_user *us = &s->users[u];
		assert_true(us->cand_cnt >= 1 && us->cand_cnt <= 4);
		for (uint32_t k = 1; k < us->cand_cnt; k++)
			assert_true(s->cands[us->cand_off + k].score <= s->cands[us->cand_off + k - 1].score);
	}
	/* alice's top candidate is something she interacted with (a or b). */
	uint32_t top = s->cands[s->users[alice].cand_off].item;
	assert_true(top == a || top == b);
	free(json);
	wf_snap_close(s);

	/* verify: good file 0, corrupted file 1. */
	const char *vargs[] = { "verify", out, NULL };
	assert_int_equal(run(vargs), 0);
	const char *jargs[] = { "verify", "--json", out, NULL };
	assert_int_equal(run(jargs), 0);
	FILE *f = fopen(out, "r+");
	assert_non_null(f);
	fseek(f, 700, SEEK_SET);
	fputc(0x5a ^ fgetc(f), f);
	fclose(f);
	assert_int_equal(run(vargs), 1);
}

static void test_batch_mostly_garbage_fails(void **state)
{
	char ev[512], out[512];
	const char *args[] = { "build", "--events", ev, "--out", out, "--quiet", NULL };

	write_text("junk.csv", "ts,user_id,session_id,event,item_id,value\n"
			       "1,u,s,view,a,\nnope\nnope\nnope\n1,u,s,fly,a,\n");
	snprintf(ev, sizeof(ev), "%s/junk.csv", dir);
	snprintf(out, sizeof(out), "%s/junk.weft", dir);
	assert_int_equal(run(args), 1);
	assert_int_not_equal(access(out, F_OK), 0);
	/* No header at all. */
	write_text("nohdr.csv", "1700000000000,u,s,view,a,\n");
	snprintf(ev, sizeof(ev), "%s/nohdr.csv", dir);
	assert_int_equal(run(args), 1);
	/* Usage errors exit 2. */
	const char *bad[] = { "build", "--out", out, NULL };
	assert_int_equal(run(bad), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_build_manifest_matches_file),
		cmocka_unit_test(test_batch_mostly_garbage_fails),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
