/*
 * test_batch.c - weft-batch end to end: builds a snapshot from a small
 * events and catalog CSV written here (malformed rows included), checks the
 * manifest's counts against the file as the reader sees it, the model's
 * basic promises (co-viewed items become neighbours, catalog-only items are
 * listed, anonymous events make no user, lists sorted), `verify` on a good
 * and a corrupted file, the refusal of a file that is mostly garbage, the
 * parallel read (many ranges on 2 threads = one range on 1 thread, file
 * line numbers for malformed rows), the weekday seasonality, and
 * `weftctl snapshot diff` / `weftctl export --channel email` on two nights,
 * the scoring model's fit (a predictive feature gets a positive weight)
 * (Runs $WEFT_BUILD_ROOT/admin/weftctl too).
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
#include "tests/prog_run.h"

static char dir[256], prog[1024];

static void write_text(const char *name, const char *text)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	wf_test_write(path, text);
}

/* Run weft-batch; stderr to errpath when given. Returns its exit status. */
static int run_err(const char *const *args, const char *errpath)
{
	return wf_test_exec(prog, args, NULL, errpath);
}

static int run(const char *const *args)
{
	return run_err(args, NULL);
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
	return wf_test_prog(prog, sizeof(prog), "batch/weft-batch") < 0 ? -1 :
									    wf_test_mkdtemp(dir, sizeof(dir), "batch");
}

static int teardown(void **state)
{
	return wf_test_rmtree(dir);
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

/* The section checksums of a snapshot: equal sums, equal content. */
static void sections(const char *path, uint64_t *ret, uint32_t *n)
{
	struct wf_snap *s;
	char err[512];

	assert_int_equal(wf_snap_open(path, &s, err, sizeof(err)), 0);
	*n = s->hdr->nsections;
	for (uint32_t i = 0; i < *n; i++)
		ret[i] = s->hdr->sec[i].xxh3;
	/* Padding is written as zeros (it once carried the writer's stack
	 * bytes under clang -O0, so builds differed by the work done before). */
	for (uint32_t u = 0; u < s->hdr->nusers; u++) {
		const struct wf_snap_user *us = &s->users[u];
		assert_true(us->pad[0] == 0 && us->pad[1] == 0 && us->pad[2] == 0);
		assert_true(us->pad2[0] == 0 && us->pad2[1] == 0);
	}
	wf_snap_close(s);
}

/* Events parsed in many small ranges on 2 threads give the very same
 * snapshot as one range on one thread, and malformed rows are reported
 * with their line numbers in the file, wherever the ranges fell. */
static void test_batch_parallel_ranges_same_snapshot_and_lines(void **state)
{
	char ev[512], o1[512], o2[512], e1[512], e2[512], *err1, *err2;
	struct wf_buf b = { 0 };
	long long t = 1700000000000LL;
	int line = 1, badlines[8], nbad = 0;
	uint64_t s1[32], s2[32];
	uint32_t n1, n2;

	wf_buf_printf(&b, "ts,user_id,session_id,event,item_id,value\n");
	for (int i = 0; i < 400; i++) {
		line++;
		if (i % 97 == 13) {
			wf_buf_printf(&b, "%lld,u%d,s%d,levitate,i%d,\n", t + i * 60000LL, i % 23, i / 5, i % 31);
			badlines[nbad++] = line;
		} else if (i == 250) {
			wf_buf_printf(&b, "\n"); /* a blank line counts as a line */
		} else {
			wf_buf_printf(&b, "%lld,%s%d,s%d,%s,i%d,2\n", t + i * 60000LL, i % 7 ? "u" : "", i % 7 ? i % 23 : 0,
				      i / 5, i % 3 ? "view" : "purchase", (i * 7) % 31);
		}
	}
	line++;
	wf_buf_printf(&b, "notanumber,u1,s1,view,i1,\n");
	badlines[nbad++] = line;
	write_text("par.csv", b.data);
	wf_buf_fini(&b);
	snprintf(ev, sizeof(ev), "%s/par.csv", dir);
	snprintf(o1, sizeof(o1), "%s/par1.weft", dir);
	snprintf(o2, sizeof(o2), "%s/par2.weft", dir);
	snprintf(e1, sizeof(e1), "%s/par1.err", dir);
	snprintf(e2, sizeof(e2), "%s/par2.err", dir);
	const char *a1[] = { "build", "--events", ev, "--out", o1, "--generation", "3", "--threads", "1", "--quiet", NULL };
	const char *a2[] = { "build", "--events", ev, "--out", o2, "--generation", "3", "--threads", "2",
			     "--chunk-bytes", "300", "--quiet", NULL };
	assert_int_equal(run_err(a1, e1), 0);
	assert_int_equal(run_err(a2, e2), 0);
	sections(o1, s1, &n1);
	sections(o2, s2, &n2);
	assert_int_equal(n1, n2);
	for (uint32_t i = 0; i < n1; i++)
		assert_int_equal(s1[i], s2[i]);
	assert_int_equal(wf_read_file(e1, &err1, NULL), 0);
	assert_int_equal(wf_read_file(e2, &err2, NULL), 0);
	for (int k = 0; k < nbad; k++) {
		char pat[600];
		snprintf(pat, sizeof(pat), "par.csv:%d: ", badlines[k]);
		assert_non_null(strstr(err1, pat));
		assert_non_null(strstr(err2, pat));
	}
	assert_string_equal(err1, err2);
	free(err1);
	free(err2);
}

/* Event types in any case, as weft-ingest and the rankers take them: a
 * shopper's PURCHASE counts as her order. */
static void test_batch_event_types_any_case(void **state)
{
	char ev[512], out[512], err[512];
	struct wf_snap *s;

	write_text("caps.csv", "ts,user_id,session_id,event,item_id,value\n"
			       "1700000000000,ann,s1,VIEW,i1,\n1700000001000,ann,s1,Purchase,i1,2\n"
			       "1700000002000,bob,s2,view,i1,\n");
	snprintf(ev, sizeof(ev), "%s/caps.csv", dir);
	snprintf(out, sizeof(out), "%s/caps.weft", dir);
	const char *args[] = { "build", "--events", ev, "--out", out, "--quiet", NULL };
	assert_int_equal(run(args), 0);
	assert_int_equal(wf_snap_open(out, &s, err, sizeof(err)), 0);
	int64_t ann = wf_snap_user_find(s, "ann", 3);
	assert_true(ann >= 0);
	assert_int_equal(s->users[ann].orders, 1);
	wf_snap_close(s);
}

/* Build name.csv (events) with the hat/sock catalog of the seasonality
 * tests (socks first: lower item numbers win ties); *ret_json gets the
 * manifest, *ret_snap the opened snapshot. */
static void build_hats_socks(const char *name, const char *events, char **ret_json, struct wf_snap **ret_snap)
{
	char f[128], ev[512], cat[512], out[512], man[600], err[512];

	snprintf(f, sizeof(f), "%s.csv", name);
	write_text(f, events);
	write_text("hats_socks_cat.csv", "item_id,category,brand,price,sizes\nsock1,socks,a,1,\nsock2,socks,a,1,\n"
					 "hat1,hats,a,1,\nhat2,hats,a,1,\n");
	snprintf(ev, sizeof(ev), "%s/%s.csv", dir, name);
	snprintf(cat, sizeof(cat), "%s/hats_socks_cat.csv", dir);
	snprintf(out, sizeof(out), "%s/%s.weft", dir, name);
	snprintf(man, sizeof(man), "%s.manifest.json", out);
	const char *args[] = { "build", "--events", ev, "--catalog", cat, "--out", out, "--quiet", NULL };
	assert_int_equal(run(args), 0);
	assert_int_equal(wf_read_file(man, ret_json, NULL), 0);
	assert_int_equal(wf_snap_open(out, ret_snap, err, sizeof(err)), 0);
}

/* Days first_day..20 from sun: 30 views a day, of hat1 on Sundays and of
 * sock1 on the other days; then zed views a sock and a hat at end, at the
 * same time (the sock has the lower item number, so it would win the tie
 * without seasonality). */
static void hats_on_sundays(struct wf_buf *b, int first_day, long long sun, long long end)
{
	const long long day = 86400000LL;

	wf_buf_printf(b, "ts,user_id,session_id,event,item_id,value\n");
	for (int d = first_day; d <= 20; d++)
		for (int k = 0; k < 30; k++)
			wf_buf_printf(b, "%lld,bg%d,bg%d-%d,view,%s,\n", sun + d * day + k * 1000LL, k, k, d,
				      d % 7 == 0 ? "hat1" : "sock1");
	wf_buf_printf(b, "%lld,zed,z1,view,sock2,\n%lld,zed,z1,view,hat2,\n", end, end);
}

/* Three weeks where "hats" are bought on the weekday after the data ends
 * and "socks" on the others: a shopper with the same history in both gets
 * the hat first; with under 14 days there is no weekday pattern. */
static void test_batch_weekday_seasonality_boosts_serving_day(void **state)
{
	struct wf_buf b = { 0 };
	const long long day = 86400000LL;
	/* 2023-11-05 00:00 UTC is a Sunday; the data ends on Saturday
	 * 2023-11-25, so the snapshot serves a Sunday. */
	long long sun = 1699142400000LL, end = sun + 20 * day + 12 * 3600000LL;
	char *json;
	struct wf_snap *s;

	hats_on_sundays(&b, 0, sun, end);
	build_hats_socks("season", b.data, &json, &s);
	wf_buf_fini(&b);
	assert_non_null(strstr(json, "\"weekday_pattern\": true, \"serve_weekday\": \"Sunday\""));
	assert_non_null(strstr(json, "\"yearly_pattern\": false")); /* 21 days */
	free(json);
	int64_t zed = wf_snap_user_find(s, "zed", 3), hat2 = wf_snap_item_find(s, "hat2", 4),
		sock2 = wf_snap_item_find(s, "sock2", 5);
	assert_true(zed >= 0 && hat2 >= 0 && sock2 >= 0);
	const struct wf_snap_cand *c = &s->cands[s->users[zed].cand_off];
	assert_true(s->users[zed].cand_cnt >= 2);
	/* her own history first, the boosted category ahead */
	assert_int_equal(c[0].item, hat2);
	assert_int_equal(c[1].item, sock2);
	assert_true(c[0].score > c[1].score);
	wf_snap_close(s);

	/* Only the last 10 days: no pattern, the tie goes to the sock. */
	b = (struct wf_buf){ 0 };
	hats_on_sundays(&b, 11, sun, end);
	build_hats_socks("season", b.data, &json, &s);
	wf_buf_fini(&b);
	assert_non_null(strstr(json, "\"weekday_pattern\": false"));
	free(json);
	zed = wf_snap_user_find(s, "zed", 3);
	sock2 = wf_snap_item_find(s, "sock2", 5);
	hat2 = wf_snap_item_find(s, "hat2", 4);
	c = &s->cands[s->users[zed].cand_off];
	assert_int_equal(c[0].item, sock2);
	assert_int_equal(c[1].item, hat2);
	wf_snap_close(s);
}

/* The first of zed's two candidates (sock2 or hat2) in a build of a 401-day
 * log where "hats" were viewed on days [h0, h0 + 28) and socks every day;
 * ret_json gets the manifest. */
static int64_t yearly_first(int h0, char **ret_json, int64_t *ret_hat2)
{
	struct wf_buf b = { 0 };
	const long long day = 86400000LL, sun = 1699142400000LL, end = sun + 400 * day + 12 * 3600000LL;
	struct wf_snap *s;

	wf_buf_printf(&b, "ts,user_id,session_id,event,item_id,value\n");
	for (int d = 0; d <= 400; d++) {
		for (int k = 0; k < 5; k++)
			wf_buf_printf(&b, "%lld,bg%d,bg%d-%d,view,sock1,\n", sun + d * day + k * 1000LL, k, k, d);
		for (int k = 0; d >= h0 && d < h0 + 28 && k < 20; k++)
			wf_buf_printf(&b, "%lld,hb%d,hb%d-%d,view,hat1,\n", sun + d * day + k * 1000LL, k, k, d);
	}
	wf_buf_printf(&b, "%lld,zed,z1,view,sock2,\n%lld,zed,z1,view,hat2,\n", end, end);
	build_hats_socks("year", b.data, ret_json, &s);
	wf_buf_fini(&b);
	int64_t zed = wf_snap_user_find(s, "zed", 3);
	assert_true(zed >= 0 && s->users[zed].cand_cnt >= 2);
	int64_t first = s->cands[s->users[zed].cand_off].item;
	*ret_hat2 = wf_snap_item_find(s, "hat2", 4);
	wf_snap_close(s);
	return first;
}

/* A year and a month of data: hats were in season over the four weeks
 * after this point a year ago (52 weeks back), so a shopper who looked at a
 * hat and a sock alike gets the hat first; when hats' season ended a year
 * ago at this point, the sock. Both logs hold the same hat views (four of
 * each weekday), so only the yearly pattern tells them apart. The 21-day
 * log of the weekday test has no yearly pattern. */
static void test_batch_yearly_seasonality_follows_last_year(void **state)
{
	char *json;
	int64_t hat2, first;

	/* end = day 400.5; a year ago = day 36.5: hats on days 37..64 (after) */
	first = yearly_first(37, &json, &hat2);
	assert_int_equal(first, hat2);
	assert_non_null(strstr(json, "\"yearly_pattern\": true"));
	assert_non_null(strstr(json, "\"year_index\": "));
	free(json);
	/* hats on days 9..36 (before): out of season, the sock first */
	first = yearly_first(9, &json, &hat2);
	assert_int_not_equal(first, hat2);
	assert_non_null(strstr(json, "\"yearly_pattern\": true"));
	free(json);
}

/* Run build/admin/weftctl with args; stdout to outpath, stderr to errpath. */
static int run_weftctl(const char *const *args, const char *outpath, const char *errpath)
{
	char ctl[1024];

	assert_int_equal(wf_test_prog(ctl, sizeof(ctl), "admin/weftctl"), 0);
	return wf_test_exec(ctl, args, outpath, errpath);
}

/* Two nights: carol leaves, dave arrives, alice's and bob's lists are
 * kept. `weftctl snapshot diff` counts them; a file that is not a
 * snapshot is refused with the reader's message. `weftctl export` with
 * no appliance running filters by the snapshot's sold-out flags and fills
 * each user's K from further down the list. */
/*
 * The fit (batch/fit.c): 10 days of anonymous sessions that walk a chain
 * (each item's successor is the next click 9 times in 10, the other time
 * a random item) over 300 items: the transitions predict the next
 * click, and the fitted weight of seq comes out
 * positive; the repeat curve is near 0 (no session goes back).
 */
static void test_batch_fit_learns_predictive_feature(void **state)
{
	struct wf_buf b = { 0 };
	const long long t0 = 1699142400000LL;
	uint64_t seed = 7;
	char ev[512], out[512], man[600], err[512];
	char *json;
	struct wf_snap *s;

	wf_buf_printf(&b, "ts,user_id,session_id,event,item_id,value\n");
	for (int sess = 0; sess < 3000; sess++) {
		long long t = t0 + (long long)sess * (10 * DAY / 3000);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t it = (uint32_t)(seed >> 33) % 300;
		for (int k = 0; k < 6; k++) {
			wf_buf_printf(&b, "%lld,,s%d,view,i%u,\n", t + k * 1000, sess, it);
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			it = (seed >> 33) % 10 ? (it + 1) % 300 : (uint32_t)(seed >> 40) % 300;
		}
	}
	snprintf(ev, sizeof(ev), "%s/chain.csv", dir);
	wf_test_write(ev, b.data);
	wf_buf_fini(&b);
	snprintf(out, sizeof(out), "%s/chain.weft", dir);
	snprintf(man, sizeof(man), "%s.manifest.json", out);
	const char *args[] = { "build", "--events", ev, "--out", out, "--quiet", NULL };
	assert_int_equal(run(args), 0);
	assert_int_equal(wf_snap_open(out, &s, err, sizeof(err)), 0);
	assert_int_equal(s->model->version, 1);
	assert_true(s->model->flags & WF_SNAP_MODEL_FITTED_NEW);
	/* weight[1]: new visitors; feature 5 is seq_last (lib/rank/rank.h WF_RANK_F_SEQ1) */
	assert_true(s->model->weight[1][5] > 0);
	assert_true(s->model->repeat[0] < 0.05f);
	assert_true(s->model->hr_fit[1] >= s->model->hr_default[1]);
	wf_snap_close(s);
	assert_int_equal(wf_read_file(man, &json, NULL), 0);
	assert_non_null(strstr(json, "\"new\": {\"fitted\": true, \"weights\": {\"batch\": "));
	assert_non_null(strstr(json, "\"seq\": "));
	free(json);
}

static void test_batch_diff_and_export(void **state)
{
	char ev1[512], ev2[512], inv[512], s1[512], s2[512], out[512], err[512], csv[512], *o, *e;
	long long t = 1700000000000LL;
	struct wf_buf b = { 0 };

	for (int night = 0; night < 2; night++) {
		b = (struct wf_buf){ 0 };
		wf_buf_printf(&b, "ts,user_id,session_id,event,item_id,value\n");
		for (int i = 0; i < 6; i++) {
			wf_buf_printf(&b, "%lld,alice,sa%d,view,i%d,\n", t + i * 1000LL, i, i);
			wf_buf_printf(&b, "%lld,bob,sb%d,pdp,i%d,\n", t + i * 1000LL, i, (i + 2) % 8);
			wf_buf_printf(&b, "%lld,%s,s%s%d,click,i%d,\n", t + i * 1000LL, night ? "dave" : "carol",
				      night ? "d" : "c", i, 7 - i);
		}
		write_text(night ? "n2.csv" : "n1.csv", b.data);
		wf_buf_fini(&b);
	}
	write_text("n_inv.csv", "item_id,size,qty\ni0,M,0\ni0,L,0\ni1,M,5\n");
	snprintf(ev1, sizeof(ev1), "%s/n1.csv", dir);
	snprintf(ev2, sizeof(ev2), "%s/n2.csv", dir);
	snprintf(inv, sizeof(inv), "%s/n_inv.csv", dir);
	snprintf(s1, sizeof(s1), "%s/n1.weft", dir);
	snprintf(s2, sizeof(s2), "%s/n2.weft", dir);
	snprintf(out, sizeof(out), "%s/ctl.out", dir);
	snprintf(err, sizeof(err), "%s/ctl.err", dir);
	const char *b1[] = { "build", "--events", ev1, "--out", s1, "--candidates", "6", "--quiet", NULL };
	const char *b2[] = { "build", "--events", ev2, "--inventory", inv, "--out", s2, "--candidates", "6", "--quiet", NULL };
	assert_int_equal(run(b1), 0);
	assert_int_equal(run(b2), 0);

	const char *d[] = { "--json", "snapshot", "diff", s1, s2, NULL };
	assert_int_equal(run_weftctl(d, out, err), 0);
	assert_int_equal(wf_read_file(out, &o, NULL), 0);
	assert_non_null(strstr(o, "\"users\":{\"kept\":2,\"gained\":1,\"lost\":1}"));
	assert_non_null(strstr(o, "\"changed_top20\":{"));
	assert_non_null(strstr(o, "\"rose\":["));
	free(o);
	const char *same[] = { "--json", "snapshot", "diff", s1, s1, NULL };
	assert_int_equal(run_weftctl(same, out, err), 0);
	assert_int_equal(wf_read_file(out, &o, NULL), 0);
	assert_non_null(strstr(o, "\"changed_list\":{\"mean\":0.0000,\"p50\":0.0000,\"p90\":0.0000}"));
	assert_non_null(strstr(o, "\"rose\":[],\"fell\":[]"));
	free(o);
	const char *human[] = { "snapshot", "diff", s1, s2, NULL };
	assert_int_equal(run_weftctl(human, out, err), 0);
	const char *bad[] = { "snapshot", "diff", s1, ev1, NULL };
	assert_int_equal(run_weftctl(bad, out, err), 1);
	assert_int_equal(wf_read_file(err, &e, NULL), 0);
	assert_non_null(strstr(e, "not a weft snapshot"));
	free(e);

	/* Export: i0 is sold out in every size; K = 4 for every user. */
	char nodir[600];
	snprintf(nodir, sizeof(nodir), "%s/no-appliance", dir);
	snprintf(csv, sizeof(csv), "%s/email.csv", dir);
	const char *x[] = { "--dir", nodir, "export", "--channel", "email", "--k", "4", "--snapshot", s2, "--out", csv, NULL };
	assert_int_equal(run_weftctl(x, out, err), 0);
	assert_int_equal(wf_read_file(csv, &o, NULL), 0);
	assert_memory_equal(o, "user_id,rank,item_id,score\n", 27);
	assert_null(strstr(o, ",i0,"));
	for (int u = 0; u < 3; u++) {
		static const char *const users[] = { "alice", "bob", "dave" };
		char pat[64];
		snprintf(pat, sizeof(pat), "\n%s,4,", users[u]);
		assert_non_null(strstr(o, pat));
		snprintf(pat, sizeof(pat), "\n%s,5,", users[u]);
		assert_null(strstr(o, pat));
	}
	free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_build_manifest_matches_file),
		cmocka_unit_test(test_batch_mostly_garbage_fails),
		cmocka_unit_test(test_batch_parallel_ranges_same_snapshot_and_lines),
		cmocka_unit_test(test_batch_weekday_seasonality_boosts_serving_day),
		cmocka_unit_test(test_batch_yearly_seasonality_follows_last_year),
		cmocka_unit_test(test_batch_event_types_any_case),
		cmocka_unit_test(test_batch_diff_and_export),
		cmocka_unit_test(test_batch_fit_learns_predictive_feature),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
