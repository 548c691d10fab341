/*
 * test_exp.c - lib/exp: arm, window and page parsing with their errors,
 * validation (shares over 100, arms named twice), experiments.conf
 * format -> parse round trip and its errors, overlap, and assignment:
 * deterministic, independent of anything but salt and unit, and within
 * the binomial bound of each arm's share over 100,000 units; attribution
 * from a journal (lib/exp_attr): exposures once per request, clicks, carts
 * and purchases on shown items within the window once per showing,
 * conversion and revenue, anonymous events by session, pre-experiment
 * revenue for CUPED, other experiments and unknown arms ignored.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/exp.h"
#include "lib/exp_attr.h"
#include "lib/journal.h"
#include "lib/proto.h"
#include "lib/util.h"

static void test_exp_arm_parse_valid_and_errors(void **state)
{
	struct wf_exp_armdef a;
	char err[256], out[160];

	(void)state;
	assert_int_equal(wf_exp_arm_parse("control=50:stale", &a, err, sizeof(err)), 0);
	assert_string_equal(a.name, "control");
	assert_int_equal(a.share, 5000);
	assert_int_equal(a.policy, WF_EXP_STALE);
	assert_int_equal(wf_exp_arm_parse("w=12.5:weights:0.2,0.8", &a, err, sizeof(err)), 0);
	assert_int_equal(a.share, 1250);
	assert_int_equal(a.policy, WF_EXP_WEIGHTS);
	assert_true(fabsf(a.w_batch - 0.2f) < 1e-6f && fabsf(a.w_session - 0.8f) < 1e-6f);
	wf_exp_arm_format(&a, out, sizeof(out));
	assert_string_equal(out, "w=12.5:weights:0.2,0.8");
	assert_int_equal(wf_exp_arm_parse("b=0.01:batch", &a, err, sizeof(err)), 0);
	assert_int_equal(a.share, 1);
	assert_int_equal(wf_exp_arm_parse("x=50:fresh", &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown policy 'fresh'"));
	assert_int_equal(wf_exp_arm_parse("x=101:live", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(wf_exp_arm_parse("x=0:live", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(wf_exp_arm_parse("x=1.234:live", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(wf_exp_arm_parse("x=50", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(wf_exp_arm_parse("x y=50:live", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(wf_exp_arm_parse("x=5:weights:1", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(wf_exp_arm_parse("x=5:weights:1,11", &a, err, sizeof(err)), -EINVAL);
}

static void test_exp_window_pages_parse(void **state)
{
	uint64_t ms;
	uint32_t pages;
	char err[128], out[128];

	(void)state;
	assert_int_equal(wf_exp_window_parse("30m", &ms), 0);
	assert_int_equal(ms, 1800000);
	assert_int_equal(wf_exp_window_parse("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(wf_exp_window_parse("1500", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(wf_exp_window_parse("0m", &ms), -EINVAL);
	assert_int_equal(wf_exp_window_parse("m", &ms), -EINVAL);
	assert_int_equal(wf_exp_pages_parse("home,pdp", &pages, err, sizeof(err)), 0);
	assert_int_equal(pages, (1u << WF_PAGE_HOME) | (1u << WF_PAGE_PDP));
	wf_exp_pages_format(pages, out, sizeof(out));
	assert_string_equal(out, "home,pdp");
	assert_int_equal(wf_exp_pages_parse("home,nowhere", &pages, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown page 'nowhere'"));
}

static struct wf_exp two_arms(const char *name, const char *a, const char *b)
{
	struct wf_exp e = { .window_ms = WF_EXP_WINDOW_DEFAULT_MS, .salt = 0x1234abcd5678ef90ull, .narms = 2 };
	char err[256];

	snprintf(e.name, sizeof(e.name), "%s", name);
	assert_int_equal(wf_exp_arm_parse(a, &e.arms[0], err, sizeof(err)), 0);
	assert_int_equal(wf_exp_arm_parse(b, &e.arms[1], err, sizeof(err)), 0);
	return e;
}

static void test_exp_validate_errors(void **state)
{
	char err[256];
	struct wf_exp e = two_arms("t", "a=60:live", "b=50:batch");

	(void)state;
	assert_int_equal(wf_exp_validate(&e, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "add up to 110.00, over 100"));
	e = two_arms("t", "a=50:live", "a=50:batch");
	assert_int_equal(wf_exp_validate(&e, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "named twice"));
	e = two_arms("t", "a=50:live", "b=40:batch");
	assert_int_equal(wf_exp_validate(&e, err, sizeof(err)), 0);
	/* overlap: same unit and a page in common (0 = every page) */
	struct wf_exp f = e;
	e.pages = 1u << WF_PAGE_HOME;
	f.pages = 1u << WF_PAGE_PDP;
	assert_false(wf_exp_overlap(&e, &f));
	f.pages = 0;
	assert_true(wf_exp_overlap(&e, &f));
	f.unit = WF_EXP_UNIT_SESSION;
	assert_false(wf_exp_overlap(&e, &f));
}

static void test_exp_conf_round_trip(void **state)
{
	struct wf_exp_set set = { 0 }, back;
	struct wf_buf b = { 0 }, b2 = { 0 };
	char err[256];

	(void)state;
	set.n = 2;
	set.exps[0] = two_arms("stale-vs-live", "control=50:stale", "treat=50:live");
	set.exps[0].state = WF_EXP_RUNNING;
	set.exps[0].pages = (1u << WF_PAGE_HOME) | (1u << WF_PAGE_CART);
	set.exps[0].created_ms = 1700000000000ull;
	set.exps[0].started_ms = 1700000001000ull;
	set.exps[1] = two_arms("w", "x=10:weights:0.3,0.7", "y=10.25:batch");
	set.exps[1].unit = WF_EXP_UNIT_SESSION;
	set.exps[1].window_ms = 60000;
	assert_int_equal(wf_exp_conf_format(&set, &b), 0);
	assert_int_equal(wf_exp_conf_parse(b.data, b.len, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	assert_int_equal(wf_exp_conf_format(&back, &b2), 0);
	assert_int_equal(b.len, b2.len);
	assert_memory_equal(b.data, b2.data, b.len);
	assert_int_equal(back.exps[0].salt, set.exps[0].salt);
	assert_int_equal(back.exps[0].state, WF_EXP_RUNNING);
	assert_int_equal(back.exps[1].arms[1].share, 1025);
	wf_buf_fini(&b);
	wf_buf_fini(&b2);

	static const char *const bad[] = {
		"state = running\n",
		"[experiment a]\nstate = maybe\narm = x=5:live\n",
		"[experiment a]\narm = x=60:live\narm = y=60:live\n",
		"[experiment a]\nfoo = 1\narm = x=5:live\n",
		"[experiment a]\n",
		"[experiment a b]\narm = x=5:live\n",
		"[experiment a]\nsalt = xyz\narm = x=5:live\n",
	};
	for (size_t i = 0; i < WF_ARRAY_SIZE(bad); i++) {
		back.n = 77;
		assert_int_equal(wf_exp_conf_parse(bad[i], strlen(bad[i]), &back, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "line "));
		assert_int_equal(back.n, 77); /* untouched */
	}
	assert_int_equal(wf_exp_conf_load("/nonexistent/experiments.conf", &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 0);
}

/* 100,000 users: each arm's count within 4.5 standard deviations of its
 * share (a binomial bound a correct hash fails about once in 10^5 runs;
 * the salt is fixed, so the test is deterministic), the outside share too;
 * the same unit always gets the same arm, and the unit string is "u:" user
 * or, anonymous, "s:" session. */
static void test_exp_assign_binomial_and_stable(void **state)
{
	struct wf_exp e = two_arms("t", "a=20:live", "b=30:stale");
	uint32_t count[3] = { 0 };
	const uint32_t n = 100000;
	char unit[WF_EXP_UNIT_MAX + 1], id[32];

	(void)state;
	for (uint32_t i = 0; i < n; i++) {
		size_t len = (size_t)snprintf(id, sizeof(id), "user-%u", i);
		size_t ul = wf_exp_unit_of(&e, "sess", 4, id, len, unit);
		int arm = wf_exp_assign(&e, unit, ul);
		assert_true(arm >= -1 && arm < 2);
		assert_int_equal(wf_exp_assign(&e, unit, ul), arm);
		count[arm < 0 ? 2 : arm]++;
	}
	const double p[3] = { 0.2, 0.3, 0.5 };
	for (int a = 0; a < 3; a++) {
		double mean = n * p[a], sd = sqrt(n * p[a] * (1 - p[a]));
		assert_true(fabs(count[a] - mean) < 4.5 * sd);
	}
	assert_int_equal(wf_exp_unit_of(&e, "s1", 2, "-", 1, unit), 4);
	assert_string_equal(unit, "s:s1");
	assert_int_equal(wf_exp_unit_of(&e, "s1", 2, "bob", 3, unit), 5);
	assert_string_equal(unit, "u:bob");
	e.unit = WF_EXP_UNIT_SESSION;
	wf_exp_unit_of(&e, "s1", 2, "bob", 3, unit);
	assert_string_equal(unit, "s:s1");
	/* Another salt splits differently (about half the units move). */
	struct wf_exp f = e;
	uint32_t moved = 0;
	f.salt ^= 1;
	for (uint32_t i = 0; i < 1000; i++) {
		size_t len = (size_t)snprintf(id, sizeof(id), "s:%u", i);
		moved += wf_exp_assign(&e, id, len) != wf_exp_assign(&f, id, len);
	}
	assert_true(moved > 400 && moved < 800);
}

#define T0 1800000000000ull /* the experiment's start */

static void jput(struct wf_journal *j, uint16_t kind, uint64_t ts, uint16_t shard, const char *const *argv,
		 uint32_t argc)
{
	uint32_t argl[64];
	uint64_t lsn;

	for (uint32_t i = 0; i < argc; i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	assert_int_equal(wf_journal_append_kind(j, kind, ts, shard, argc, argv, argl, &lsn), 0);
}

#define JPUT(kind, ts, shard, ...)                                                            \
	do {                                                                                  \
		const char *const a_[] = { __VA_ARGS__ };                                      \
		jput(j, kind, ts, shard, a_, (uint32_t)WF_ARRAY_SIZE(a_));                     \
	} while (0)

static void test_exp_attr_counts_from_journal(void **state)
{
	struct wf_exp e = two_arms("e", "a=50:live", "b=50:stale");
	struct wf_journal_opts jo = { .durability = WF_JOURNAL_OS };
	struct wf_journal *j;
	struct wf_exp_unit *u;
	struct wf_exp_attr_stats st;
	char dir[] = "/tmp/weft.test.exp.XXXXXX", err[256], cmd[64];
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(wf_journal_open(dir, &jo, &j, err, sizeof(err)), 0);
	e.started_ms = T0;
	e.window_ms = 60000;
	JPUT(WF_JREC_EVENT, T0 - 1000, 0, "s0", "alice", "purchase", "i7", "value", "10");
	JPUT(WF_JREC_EVENT, T0 - 900, 0, "s0", "alice", "purchase", "i8", "price", "2.5", "qty", "2");
	JPUT(WF_JREC_EXPOSURE, T0 + 100, 0, "e", "a", "u:alice", "s1", "alice", "home", "1", "i1", "i2");
	JPUT(WF_JREC_EXPOSURE, T0 + 101, 0, "e", "a", "u:alice", "s1", "alice", "home", "1", "i1", "i2"); /* redone */
	JPUT(WF_JREC_EXPOSURE, T0 + 102, 1, "e", "b", "u:bob", "s2", "bob", "home", "1", "i1");
	JPUT(WF_JREC_EXPOSURE, T0 + 103, 1, "other", "b", "u:carol", "s3", "carol", "home", "2", "i1");
	JPUT(WF_JREC_EXPOSURE, T0 + 104, 1, "e", "zz", "u:dave", "s4", "dave", "home", "3", "i1");
	JPUT(WF_JREC_EVENT, T0 + 200, 0, "s1", "alice", "click", "i1");
	JPUT(WF_JREC_EVENT, T0 + 300, 0, "s1", "alice", "pdp", "i1");   /* the same showing: once */
	JPUT(WF_JREC_EVENT, T0 + 310, 0, "s1", "-", "cart_add", "i2");  /* anonymous: by its session */
	JPUT(WF_JREC_EVENT, T0 + 320, 0, "s1", "alice", "purchase", "i2", "value", "25");
	JPUT(WF_JREC_EVENT, T0 + 330, 0, "s9", "alice", "click", "i9"); /* not shown: no click */
	JPUT(WF_JREC_EVENT, T0 + 340, 0, "s9", "alice", "purchase", "i9", "value", "5"); /* revenue all the same */
	JPUT(WF_JREC_EVENT, T0 + 102 + 60001, 1, "s2", "bob", "click", "i1"); /* past the window */
	JPUT(WF_JREC_EVENT, T0 + 400, 1, "s3", "carol", "click", "i1");       /* not a unit */
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);

	assert_int_equal(wf_exp_attr_run(dir, &e, &u, &n, &st), 0);
	assert_int_equal(n, 2);
	assert_int_equal(st.exposures, 2);
	assert_int_equal(st.redone, 1);
	assert_int_equal(u[0].arm, 0);
	assert_int_equal(u[0].first_day, 0);
	assert_true(u[0].exposures == 1 && u[0].clicks == 1 && u[0].carts == 1 && u[0].purchases == 1);
	assert_true(u[0].converted == 1 && u[0].revenue == 30);
	assert_true(u[0].has_pre && u[0].pre_revenue == 15);
	assert_int_equal(u[1].arm, 1);
	assert_true(u[1].exposures == 1 && u[1].clicks == 0 && u[1].converted == 0 && !u[1].has_pre);
	free(u);
	/* stopped before bob's exposure: only alice's counts */
	e.stopped_ms = T0 + 101;
	assert_int_equal(wf_exp_attr_run(dir, &e, &u, &n, &st), 0);
	assert_int_equal(n, 1);
	free(u);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(wf_exp_attr_run("/nonexistent/journal", &e, &u, &n, &st) < 0, 1);
}

#define DAY 86400000ull

/* Outcomes days after the exposure: each lands in the record of its own
 * day, and day 0 of the report holds none of them. */
static void test_exp_attr_daily_records_by_day(void **state)
{
	struct wf_exp e = two_arms("e", "a=50:live", "b=50:stale");
	struct wf_journal_opts jo = { .durability = WF_JOURNAL_OS };
	struct wf_journal *j;
	struct wf_exp_unit *u;
	struct wf_exp_unit_day *ud;
	struct wf_exp_attr_stats st;
	struct wf_exp_report *rep = NULL, *tot = NULL;
	char dir[] = "/tmp/weft.test.exp.XXXXXX", err[256], cmd[64];
	size_t n, nud;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(wf_journal_open(dir, &jo, &j, err, sizeof(err)), 0);
	e.started_ms = T0;
	e.window_ms = 2 * DAY;
	JPUT(WF_JREC_EXPOSURE, T0 + 100, 0, "e", "a", "u:alice", "s1", "alice", "home", "1", "i1", "i2");
	JPUT(WF_JREC_EXPOSURE, T0 + 110, 0, "e", "a", "u:amy", "s5", "amy", "home", "2", "i1");
	JPUT(WF_JREC_EXPOSURE, T0 + 120, 1, "e", "b", "u:bob", "s2", "bob", "home", "3", "i1");
	JPUT(WF_JREC_EXPOSURE, T0 + 130, 1, "e", "b", "u:ben", "s6", "ben", "home", "4", "i1");
	JPUT(WF_JREC_EVENT, T0 + 200, 0, "s1", "alice", "click", "i1");
	JPUT(WF_JREC_EVENT, T0 + DAY + 500, 0, "s1", "alice", "purchase", "i2", "value", "30");
	JPUT(WF_JREC_EVENT, T0 + DAY + 600, 1, "s2", "bob", "click", "i1");
	JPUT(WF_JREC_EXPOSURE, T0 + 2 * DAY + 10, 0, "e", "a", "u:cleo", "s7", "cleo", "home", "5", "i1");
	JPUT(WF_JREC_EXPOSURE, T0 + 2 * DAY + 20, 0, "e", "a", "u:alice", "s1", "alice", "home", "6", "i3");
	/* another shard's clock: stamped on day 1, journaled after day 2's */
	JPUT(WF_JREC_EVENT, T0 + DAY + 900, 1, "s1", "alice", "purchase", "i9", "value", "5");
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);

	assert_int_equal(wf_exp_attr_run_daily(dir, &e, &u, &n, &ud, &nud, &st), 0);
	assert_int_equal(n, 5);
	assert_true(u[0].exposures == 2 && u[0].clicks == 1 && u[0].purchases == 1 && u[0].revenue == 35);
	assert_int_equal(u[4].first_day, 2);
	assert_int_equal(nud, 8);
	for (size_t k = 0; k < 4; k++)
		assert_true(ud[k].day == 0 && ud[k].unit == k && ud[k].exposures == 1 && ud[k].converted == 0);
	assert_true(ud[0].clicks == 1 && ud[2].clicks == 0);
	assert_true(ud[4].day == 1 && ud[4].unit == 0 && ud[4].exposures == 0);
	assert_true(ud[4].purchases == 1 && ud[4].converted == 1 && ud[4].revenue == 35);
	assert_true(ud[5].day == 1 && ud[5].unit == 2 && ud[5].clicks == 1);
	assert_true(ud[6].day == 2 && ud[6].unit == 0 && ud[6].exposures == 1 && ud[6].revenue == 0);
	assert_true(ud[7].day == 2 && ud[7].unit == 4 && ud[7].exposures == 1);

	assert_int_equal(wf_exp_report_build_daily(u, n, ud, nud, 2, NULL, NULL, &rep), 0);
	assert_int_equal(rep->ndays, 3);
	assert_int_equal(rep->days[0].units, 4);
	assert_true(rep->days[0].cmp[WF_EXP_CONVERSION].control == 0);
	assert_true(rep->days[0].cmp[WF_EXP_REVENUE].control == 0);
	assert_true(rep->days[1].cmp[WF_EXP_CONVERSION].control == 0.5);
	assert_true(rep->days[1].cmp[WF_EXP_CTR].treatment == 0.5);
	assert_true(fabs(rep->days[2].cmp[WF_EXP_CONVERSION].control - 1.0 / 3) < 1e-15);
	/* the series from totals alone puts day 1's purchase on day 0 */
	assert_int_equal(wf_exp_report_build(u, n, 2, NULL, NULL, &tot), 0);
	assert_true(tot->days[0].cmp[WF_EXP_CONVERSION].control == 0.5);
	assert_true(tot->cmp[WF_EXP_REVENUE].control == rep->cmp[WF_EXP_REVENUE].control);
	wf_exp_report_free(tot);
	wf_exp_report_free(rep);
	free(ud);
	free(u);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exp_arm_parse_valid_and_errors),
		cmocka_unit_test(test_exp_window_pages_parse),
		cmocka_unit_test(test_exp_validate_errors),
		cmocka_unit_test(test_exp_conf_round_trip),
		cmocka_unit_test(test_exp_assign_binomial_and_stable),
		cmocka_unit_test(test_exp_attr_counts_from_journal),
		cmocka_unit_test(test_exp_attr_daily_records_by_day),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
