/*
 * test_exp.c - lib/exp: arm, window and page parsing with their errors,
 * validation (shares over 100, arms named twice), experiments.conf
 * format -> parse round trip and its errors, overlap, and assignment:
 * deterministic, independent of anything but salt and unit, and within
 * the binomial bound of each arm's share over 100,000 units.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exp_arm_parse_valid_and_errors),
		cmocka_unit_test(test_exp_window_pages_parse),
		cmocka_unit_test(test_exp_validate_errors),
		cmocka_unit_test(test_exp_conf_round_trip),
		cmocka_unit_test(test_exp_assign_binomial_and_stable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
