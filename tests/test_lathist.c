/*
 * test_lathist.c - the log-linear latency histogram (shm/lathist.h) and
 * its series' names (shm/reqlat.h): every bucket's bounds are exact (its
 * lower bound lands in it, the value below in the bucket before, its
 * upper bound is the next one's lower), values past the top clamp to the
 * last bucket; the one-writer add counts runs and sums; the interpolated
 * quantile lies within a bucket's width of the true one, is monotone in
 * q and 0 on an empty histogram; every series has a name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "shm/lathist.h"
#include "shm/reqlat.h"

static void test_lathist_bucket_bounds_are_exact(void **state)
{
	for (uint64_t ns = 0; ns < 4; ns++) {
		assert_int_equal(wf_lat_bucket(ns), ns);
		assert_int_equal(wf_lat_bucket_lower((uint32_t)ns), ns);
	}
	assert_int_equal(wf_lat_bucket(4), 8);
	assert_int_equal(wf_lat_bucket(3), 3);
	for (uint32_t b = 8; b < WF_LAT_BUCKETS; b++) {
		uint64_t lo = wf_lat_bucket_lower(b), hi = wf_lat_bucket_upper(b);

		assert_true(lo < hi);
		assert_int_equal(wf_lat_bucket(lo), b);
		assert_int_equal(wf_lat_bucket(hi - 1), b);
		assert_int_equal(wf_lat_bucket(lo - 1), b == 8 ? 3 : b - 1);
		if (b + 1 < WF_LAT_BUCKETS)
			assert_int_equal(wf_lat_bucket_lower(b + 1), hi);
		/* four buckets per power of two: at most 25 % of lo wide */
		assert_true(hi - lo <= lo / 4 + 1);
	}
	/* 1 us, 1 ms and 1 s land where the bounds say */
	assert_true(wf_lat_bucket_lower(wf_lat_bucket(1000)) <= 1000 && wf_lat_bucket_upper(wf_lat_bucket(1000)) > 1000);
	assert_int_equal(wf_lat_bucket(UINT64_MAX), WF_LAT_BUCKETS - 1);
	assert_int_equal(wf_lat_bucket(1ull << 40), WF_LAT_BUCKETS - 1);
}

static void test_lathist_add_n_counts_runs_and_sums(void **state)
{
	static _Atomic uint64_t h[WF_LAT_BUCKETS], sum;
	uint64_t c[WF_LAT_BUCKETS];

	wf_lat_add_n(h, &sum, 1500, 3);
	wf_lat_add_n(h, &sum, 1500, 1);
	wf_lat_add_n(h, NULL, 2000000, 2);
	assert_int_equal(wf_lat_snapshot(h, c), 6);
	assert_int_equal(c[wf_lat_bucket(1500)], 4);
	assert_int_equal(c[wf_lat_bucket(2000000)], 2);
	assert_int_equal(atomic_load(&sum), 4 * 1500);
}

static void test_lathist_quantile_within_a_bucket_width(void **state)
{
	uint64_t c[WF_LAT_BUCKETS] = { 0 };
	double prev = 0;

	assert_true(wf_lat_quantile_est(c, 0.5) == 0);
	/* 1..100,000 ns, uniform: the q-quantile is about q x 100,000 */
	for (uint64_t ns = 1; ns <= 100000; ns++)
		c[wf_lat_bucket(ns)]++;
	for (double q = 0.01; q < 1.0; q += 0.01) {
		double est = wf_lat_quantile_est(c, q), want = q * 100000;

		assert_true(fabs(est - want) <= want * 0.13 + 1);
		assert_true(est >= prev);
		prev = est;
	}
	/* one value: every quantile stays inside its bucket */
	memset(c, 0, sizeof(c));
	c[wf_lat_bucket(777777)] = 10;
	for (double q = 0; q <= 1.0; q += 0.25) {
		double est = wf_lat_quantile_est(c, q);

		assert_true(est >= (double)wf_lat_bucket_lower(wf_lat_bucket(777777)));
		assert_true(est < (double)wf_lat_bucket_upper(wf_lat_bucket(777777)));
	}
	/* the exact small buckets answer exactly */
	memset(c, 0, sizeof(c));
	c[2] = 5;
	assert_true(wf_lat_quantile_est(c, 0.99) == 2);
}

static void test_lathist_series_all_named(void **state)
{
	for (uint32_t s = 0; s < WF_LAT_SERIES; s++) {
		const struct wf_reqlat_name *n = wf_reqlat_name(s);

		assert_non_null(n);
		assert_non_null(n->info);
		assert_true(strlen(n->display) <= 12);
		assert_true((s < WF_LAT_CMDS) == (n->command != NULL));
	}
	assert_null(wf_reqlat_name(WF_LAT_SERIES));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lathist_bucket_bounds_are_exact),
		cmocka_unit_test(test_lathist_add_n_counts_runs_and_sums),
		cmocka_unit_test(test_lathist_quantile_within_a_bucket_width),
		cmocka_unit_test(test_lathist_series_all_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
