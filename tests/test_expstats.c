/*
 * test_expstats.c - lib/expstats.h: the distributions against values from
 * mpmath (30 digits); 1,000 simulated A/A experiments from generated
 * per-unit outcomes (most units never click or buy, revenue heavy-tailed)
 * whose 95 % intervals must cover zero 93-97 % of the time on every
 * metric, and whose always-valid p-value, looked at after every simulated
 * day (the daily series from what each day added to each unit), must
 * keep the false-positive rate at 5 % while the classic p-value looked at
 * daily does not; each day's point equal to the report of that day's
 * data, and blind to later outcomes; a known lift detected, with exact arm
 * totals; the sample-ratio-mismatch flag on a skewed split and not on
 * fair ones; CUPED's variance reduction with a correlated covariate;
 * JSON, text and PNG rendering; bad input. Every random stream is seeded:
 * the results are the same on every run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/expstats.h"

/* splitmix64: small, seedable, good enough for simulation. */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double unif(struct rng *r)
{
	return ((rng_next(r) >> 11) + 0.5) * 0x1p-53;
}

static double gauss(struct rng *r)
{
	return sqrt(-2 * log(unif(r))) * cos(2 * M_PI * unif(r));
}

static double binom(struct rng *r, double n, double p)
{
	double k = 0;

	for (double i = 0; i < n; i++)
		k += unif(r) < p;
	return k;
}

/* A simulated world: lifts applied to arm 1; pre-period data or not. */
struct world {
	uint32_t ndays;
	double lift_ctr, lift_conv;
	int with_pre;
	double conv_base; /* conversion at z = 0.5 besides the click path; 0: 0.03 */
	double rev_sigma; /* sd of log purchase value; 0: 1.0 */
};

/* One unit: a latent engagement z drives exposures, click propensity and
 * conversion; a spend scale w drives purchase values, pre-period revenue
 * too. Most units click nothing and buy nothing; revenue is lognormal
 * times lognormal (heavy right tail). */
static void unit_gen(struct rng *r, const struct world *w, uint32_t arm,
		     struct wf_exp_unit *u)
{
	double z = gauss(r), spend = exp(0.7 * gauss(r)), pc, pv;
	double cb = w->conv_base > 0 ? w->conv_base : 0.03;
	double rs = w->rev_sigma > 0 ? w->rev_sigma : 1.0;
	int treated = arm == 1;

	memset(u, 0, sizeof(*u));
	u->arm = arm;
	u->first_day = (uint32_t)(unif(r) * w->ndays);
	u->exposures = 1 + floor(exp(0.8 + 0.9 * gauss(r)));
	if (u->exposures > 300)
		u->exposures = 300;
	pc = 0.04 * exp(0.6 * z - 0.18) * (treated ? 1 + w->lift_ctr : 1);
	u->clicks = binom(r, u->exposures, pc > 0.95 ? 0.95 : pc);
	u->carts = binom(r, u->clicks, 0.25);
	u->purchases = binom(r, u->carts, 0.4);
	pv = cb * exp(z - 0.5) * (treated ? 1 + w->lift_conv : 1);
	u->converted = (u->purchases > 0 || unif(r) < pv) ? 1 : 0;
	if (u->converted) {
		double k = u->purchases > 0 ? u->purchases : 1;

		for (double i = 0; i < k; i++)
			u->revenue += spend * exp(3.5 + rs * gauss(r));
	}
	if (w->with_pre && unif(r) < 0.7) {
		double k = binom(r, 6, fmin(0.9, 0.5 * cb / 0.03 * 0.15 * exp(z - 0.5)));

		u->has_pre = 1;
		for (double i = 0; i < k; i++)
			u->pre_revenue += spend * exp(3.5 + rs * gauss(r));
	}
}

/* n units into arms by the shares (cumulative draw). */
static struct wf_exp_unit *units_gen(struct rng *r, const struct world *w, size_t n,
				     const double *share, uint32_t narms)
{
	struct wf_exp_unit *u = calloc(n, sizeof(*u));

	assert_non_null(u);
	for (size_t i = 0; i < n; i++) {
		double x = unif(r), c = 0;
		uint32_t a = 0;

		for (a = 0; a + 1 < narms; a++) {
			c += share[a];
			if (x < c)
				break;
		}
		unit_gen(r, w, a, &u[i]);
	}
	return u;
}

static int rec_cmp(const void *x, const void *y)
{
	const struct wf_exp_unit_day *p = x, *q = y;

	if (p->day != q->day)
		return p->day < q->day ? -1 : 1;
	return p->unit < q->unit ? -1 : p->unit > q->unit;
}

/* What each day added to each unit, as attribution writes it: a unit is
 * active from its first day to a uniform last day; its first exposure
 * falls on its first day, every other exposure, click, cart and purchase
 * on a uniform active day, its conversion and revenue on one of them.
 * Sorted by (day, unit); *ret_n records. */
static struct wf_exp_unit_day *days_gen(struct rng *r, const struct world *w,
					const struct wf_exp_unit *u, size_t n, size_t *ret_n)
{
	struct wf_exp_unit_day *ud = NULL, *t = calloc(w->ndays, sizeof(*t));
	size_t m = 0, cap = 0;

	assert_non_null(t);
	for (size_t i = 0; i < n; i++) {
		uint32_t f = u[i].first_day, span = 1 + (uint32_t)(unif(r) * (w->ndays - f)), cd;

		memset(t, 0, span * sizeof(*t));
		t[0].exposures = 1;
		for (double k = 1; k < u[i].exposures; k++)
			t[(uint32_t)(unif(r) * span)].exposures += 1;
		for (double k = 0; k < u[i].clicks; k++)
			t[(uint32_t)(unif(r) * span)].clicks += 1;
		for (double k = 0; k < u[i].carts; k++)
			t[(uint32_t)(unif(r) * span)].carts += 1;
		for (double k = 0; k < u[i].purchases; k++)
			t[(uint32_t)(unif(r) * span)].purchases += 1;
		cd = (uint32_t)(unif(r) * span);
		t[cd].converted = u[i].converted;
		t[cd].revenue = u[i].revenue;
		for (uint32_t d = 0; d < span; d++) {
			if (!(t[d].exposures || t[d].clicks || t[d].carts || t[d].purchases ||
			      t[d].converted || t[d].revenue))
				continue;
			if (m == cap) {
				cap = cap ? 2 * cap : 4096;
				ud = realloc(ud, cap * sizeof(*ud));
				assert_non_null(ud);
			}
			ud[m] = t[d];
			ud[m].unit = (uint32_t)i;
			ud[m++].day = f + d;
		}
	}
	free(t);
	qsort(ud, m, sizeof(*ud), rec_cmp);
	*ret_n = m;
	return ud;
}

#define NEAR(a, b, rel) assert_true(fabs((a) - (b)) <= (rel) * fabs(b) + 1e-300)

static void test_expstats_distributions_match_reference_values(void **state)
{
	NEAR(wf_exp_norm_cdf(1.96), 0.975002104851779563787, 1e-14);
	NEAR(wf_exp_norm_cdf(-3), 0.00134989803163009452665, 1e-13);
	NEAR(wf_exp_norm_cdf(-10), 7.6198530241605260659e-24, 1e-12);
	NEAR(wf_exp_norm_quantile(0.975), 1.95996398454005423552, 1e-14);
	NEAR(wf_exp_norm_quantile(1e-10), -6.36134090240405620469, 1e-13);
	NEAR(wf_exp_norm_quantile(0.5 + 1e-9), 2.50662827463e-9, 1e-6);
	assert_true(isinf(wf_exp_norm_quantile(0)) && isnan(wf_exp_norm_quantile(1.5)));
	NEAR(wf_exp_t_cdf(2, 5), 0.949030260585070815373, 1e-12);
	NEAR(wf_exp_t_cdf(-3, 2.5), 0.0362880477745159206144, 1e-12);
	NEAR(1 - wf_exp_t_cdf(40, 3), 1.71903403945792640801e-5, 1e-8);
	NEAR(wf_exp_t_cdf(1.5, INFINITY), wf_exp_norm_cdf(1.5), 1e-15);
	NEAR(wf_exp_t_quantile(0.975, 1), 12.7062047361747046460, 1e-11);
	NEAR(wf_exp_t_quantile(0.975, 10), 2.22813885198627474839, 1e-12);
	NEAR(wf_exp_t_quantile(0.975, 30), 2.04227245630123830995, 1e-12);
	NEAR(wf_exp_t_quantile(0.975, 7.5), 2.33303962686497461157, 1e-12);
	NEAR(wf_exp_t_quantile(0.001, 4), -7.17318221978230847887, 1e-12);
	NEAR(wf_exp_chi2_sf(3.841458820694124, 1), 0.05, 1e-13);
	NEAR(wf_exp_chi2_sf(10, 3), 0.0185661354630432333031, 1e-12);
	NEAR(wf_exp_chi2_sf(100, 50), 3.45493138298486394214e-5, 1e-11);
	NEAR(wf_exp_chi2_sf(160, 1), 1.13148379024329836663e-36, 1e-10);
	NEAR(wf_exp_chi2_sf(0.5, 4), 0.973500978839256085306, 1e-13);
	NEAR(wf_exp_chi2_sf(1000, 900), 0.0109946089421358480797, 1e-10);
	NEAR(wf_exp_gamma_p(0.5, 2), 0.954499736103641585599, 1e-13);
	NEAR(wf_exp_gamma_p(20, 15), 0.124781215032524822698, 1e-12);
	NEAR(wf_exp_beta_inc(2, 3, 0.4), 0.5248, 1e-13);
	NEAR(wf_exp_beta_inc(50, 60, 0.45), 0.464235291430603628665, 1e-12);
	/* mSPRT: no evidence at 0; Lambda grows with |z| */
	assert_true(wf_exp_msprt_p(0, 1, 1) == 1);
	assert_true(wf_exp_msprt_p(5, 1, 1) < wf_exp_msprt_p(3, 1, 1));
}

#define AA_SIMS 1000
#define AA_UNITS 4000
#define AA_DAYS 14

/* 1,000 A/A experiments of 4,000 units over 14 days, their outcomes
 * spread over the days after each unit's first (days_gen()), the daily
 * series from what each day added (wf_exp_report_build_daily()). Fixed
 * horizon: the 95 % interval of the absolute lift covers 0 in 93-97 % (SD
 * of the rate at 1,000 runs is 0.7 points). Daily peeking: rejecting when
 * any day's p_always_valid < 0.05 stays at most 5 % + 2.33 SD; rejecting
 * when any day's classic p < 0.05 goes far above that. */
static void test_expstats_aa_covers_zero_and_always_valid_survives_peeking(void **state)
{
	static const double half[2] = { 0.5, 0.5 };
	struct world w = { .ndays = AA_DAYS, .with_pre = 1 };
	struct rng r = { 20261206 };
	unsigned cover[WF_EXP_NMETRICS] = { 0 }, rcover[WF_EXP_NMETRICS] = { 0 };
	unsigned ccover[WF_EXP_NMETRICS] = { 0 }, peek_classic[WF_EXP_NMETRICS] = { 0 };
	unsigned peek_av[WF_EXP_NMETRICS] = { 0 }, srm = 0;
	double slack = 0.05 + 2.33 * sqrt(0.05 * 0.95 / AA_SIMS);

	for (int s = 0; s < AA_SIMS; s++) {
		struct wf_exp_unit *u = units_gen(&r, &w, AA_UNITS, half, 2);
		struct wf_exp_report *rep = NULL;
		size_t nud;
		struct wf_exp_unit_day *ud = days_gen(&r, &w, u, AA_UNITS, &nud);

		assert_int_equal(wf_exp_report_build_daily(u, AA_UNITS, ud, nud, 2, NULL, half, &rep),
				 0);
		assert_int_equal(rep->ndays, AA_DAYS);
		srm += rep->srm_flag;
		for (uint32_t m = 0; m < WF_EXP_NMETRICS; m++) {
			const struct wf_exp_cmp *c = &rep->cmp[m];
			int any = 0;

			cover[m] += c->abs_lo <= 0 && c->abs_hi >= 0;
			rcover[m] += c->rel_lo <= 0 && c->rel_hi >= 0;
			if (c->has_cuped)
				ccover[m] += c->cuped_lo <= 0 && c->cuped_hi >= 0;
			for (uint32_t d = 0; d < rep->ndays; d++)
				any |= rep->days[d].cmp[m].p < 0.05;
			peek_classic[m] += any;
			/* the running minimum: the last day holds the least */
			peek_av[m] += c->p_always_valid < 0.05;
		}
		wf_exp_report_free(rep);
		free(ud);
		free(u);
	}
	print_message("A/A %d runs x %d units x %d days: metric cover rel-cover cuped-cover "
		      "peek-classic peek-always-valid\n", AA_SIMS, AA_UNITS, AA_DAYS);
	for (uint32_t m = 0; m < WF_EXP_NMETRICS; m++) {
		print_message("  %-17s %5.3f %5.3f %5.3f %5.3f %5.3f\n", wf_exp_metric_name(m),
			      cover[m] / (double)AA_SIMS, rcover[m] / (double)AA_SIMS,
			      ccover[m] / (double)AA_SIMS, peek_classic[m] / (double)AA_SIMS,
			      peek_av[m] / (double)AA_SIMS);
		assert_in_range(cover[m], 930, 970);
		assert_in_range(rcover[m], 930, 970);
		if (m >= WF_EXP_CONVERSION)
			assert_in_range(ccover[m], 930, 970);
		assert_true(peek_av[m] <= slack * AA_SIMS);
		assert_true(peek_classic[m] > slack * AA_SIMS);
	}
	/* SRM at p < 0.001 on fair splits: about one in a thousand */
	print_message("  SRM flagged on %u of %d fair splits\n", srm, AA_SIMS);
	assert_true(srm <= 4);
}

static void test_expstats_known_lift_is_detected(void **state)
{
	static const double half[2] = { 0.5, 0.5 };
	struct world w = { .ndays = 14, .lift_ctr = 0.10, .lift_conv = 0.15 };
	struct rng r = { 7 };
	size_t n = 100000;
	struct wf_exp_unit *u = units_gen(&r, &w, n, half, 2);
	struct wf_exp_report *rep = NULL;

	assert_int_equal(wf_exp_report_build(u, n, 2, (const char *const[]){ "stale", "live" },
					     half, &rep), 0);
	for (uint32_t m = WF_EXP_CTR; m <= WF_EXP_CONVERSION; m += WF_EXP_CONVERSION) {
		const struct wf_exp_cmp *c = &rep->cmp[m];

		print_message("  %s: lift %+.4f [%+.4f, %+.4f] rel %+.3f p %.2g p_av %.2g\n",
			      wf_exp_metric_name(m), c->abs, c->abs_lo, c->abs_hi, c->rel, c->p,
			      c->p_always_valid);
		assert_true(c->abs_lo > 0);
		assert_true(c->p < 0.01);
		assert_true(c->p_always_valid < 0.05);
	}
	/* the arms' totals are exact sums */
	{
		double e = 0, pu = 0, rv = 0;
		uint64_t un = 0;

		for (size_t i = 0; i < n; i++)
			if (u[i].arm == 1) {
				un++;
				e += u[i].exposures;
				pu += u[i].purchases;
				rv += u[i].revenue;
			}
		assert_int_equal(rep->arm[1].units, un);
		assert_true(rep->arm[1].exposures == e && rep->arm[1].purchases == pu);
		assert_true(rep->arm[1].revenue == rv);
	}
	/* the CTR lift is 10 % by construction (clipping aside) */
	assert_true(rep->cmp[WF_EXP_CTR].rel_lo < 0.10 && rep->cmp[WF_EXP_CTR].rel_hi > 0.10);
	assert_false(rep->cmp[WF_EXP_CTR].has_cuped);
	assert_string_equal(rep->arm[1].name, "live");
	wf_exp_report_free(rep);
	free(u);
}

/* 100k units split 52/48 against a 50/50 plan: flagged; a fair binomial
 * draw and an uneven plan that is followed: not. */
static void test_expstats_srm_flags_skewed_split_only(void **state)
{
	static const double half[2] = { 0.5, 0.5 }, uneven[3] = { 0.2, 0.1, 0.1 };
	static const double uneven_norm[3] = { 0.5, 0.25, 0.25 };
	struct world w = { .ndays = 1 };
	struct rng r = { 99 };
	size_t n = 100000;
	struct wf_exp_unit *u = calloc(n, sizeof(*u));
	struct wf_exp_report *rep = NULL;

	assert_non_null(u);
	for (size_t i = 0; i < n; i++)
		unit_gen(&r, &w, i < 52000 ? 0 : 1, &u[i]);
	assert_int_equal(wf_exp_report_build(u, n, 2, NULL, half, &rep), 0);
	print_message("  52/48 of 100k: chi2 %.1f p %.3g\n", rep->srm_chi2, rep->srm_p);
	assert_true(rep->srm_flag && rep->srm_p < 1e-30);
	wf_exp_report_free(rep);
	free(u);

	u = units_gen(&r, &w, n, half, 2);
	assert_int_equal(wf_exp_report_build(u, n, 2, NULL, half, &rep), 0);
	print_message("  fair 50/50: units %lu/%lu p %.3g\n", (unsigned long)rep->arm[0].units,
		      (unsigned long)rep->arm[1].units, rep->srm_p);
	assert_false(rep->srm_flag);
	wf_exp_report_free(rep);
	free(u);

	/* shares that leave 60 % outside the experiment, normalized to 2:1:1 */
	u = units_gen(&r, &w, n, uneven_norm, 3);
	assert_int_equal(wf_exp_report_build(u, n, 3, NULL, uneven, &rep), 0);
	assert_true(fabs(rep->arm[0].planned_share - 0.5) < 1e-12);
	assert_false(rep->srm_flag);
	wf_exp_report_free(rep);
	assert_int_equal(wf_exp_report_build(u, n, 3, NULL, NULL, &rep), 0);
	assert_true(rep->srm_flag); /* planned equal, observed 2:1:1 */
	wf_exp_report_free(rep);
	free(u);
}

static void test_expstats_cuped_reduces_variance_with_correlated_covariate(void **state)
{
	static const double half[2] = { 0.5, 0.5 };
	/* a store of repeat buyers: CUPED needs an outcome that persists */
	struct world w = { .ndays = 14, .with_pre = 1, .conv_base = 0.3, .rev_sigma = 0.5 };
	struct rng r = { 4242 };
	size_t n = 40000;
	struct wf_exp_unit *u = units_gen(&r, &w, n, half, 2);
	struct wf_exp_report *rep = NULL;
	const struct wf_exp_cmp *c;

	assert_int_equal(wf_exp_report_build(u, n, 2, NULL, half, &rep), 0);
	assert_true(rep->has_pre);
	c = &rep->cmp[WF_EXP_REVENUE];
	print_message("  revenue: var ratio %.3f theta %.4f; conversion: var ratio %.3f\n",
		      c->cuped_var_ratio, c->theta, rep->cmp[WF_EXP_CONVERSION].cuped_var_ratio);
	assert_true(c->has_cuped);
	assert_true(c->theta > 0);
	assert_true(c->cuped_var_ratio < 0.92);
	assert_true(c->cuped_hi - c->cuped_lo < c->abs_hi - c->abs_lo);
	assert_true(rep->cmp[WF_EXP_CONVERSION].cuped_var_ratio < 1);
	assert_false(rep->cmp[WF_EXP_CTR].has_cuped);
	wf_exp_report_free(rep);
	/* without history: no CUPED */
	for (size_t i = 0; i < n; i++)
		u[i].has_pre = 0;
	assert_int_equal(wf_exp_report_build(u, n, 2, NULL, half, &rep), 0);
	assert_false(rep->has_pre);
	assert_false(rep->cmp[WF_EXP_REVENUE].has_cuped);
	wf_exp_report_free(rep);
	free(u);
}

static void test_expstats_render_json_and_text(void **state)
{
	static const double half[2] = { 0.5, 0.5 };
	struct world w = { .ndays = 5, .lift_ctr = 0.2, .lift_conv = 0.2, .with_pre = 1 };
	struct rng r = { 3 };
	size_t n = 5000;
	struct wf_exp_unit *u = units_gen(&r, &w, n, half, 2);
	struct wf_exp_report *rep = NULL;
	json_t *j, *arms, *cmp, *c0;
	char *buf = NULL, line[256];
	size_t len = 0, width = 0;
	FILE *f;
	int err;

	assert_int_equal(wf_exp_report_build(u, n, 2, (const char *const[]){ "stale", "live" },
					     half, &rep), 0);
	j = wf_exp_report_json(rep);
	assert_non_null(j);
	arms = json_object_get(j, "arms");
	assert_non_null(json_object_get(arms, "stale"));
	assert_non_null(json_object_get(json_object_get(arms, "live"), "revenue_per_unit"));
	assert_true(json_integer_value(json_object_get(json_object_get(arms, "live"), "units")) ==
		    (json_int_t)rep->arm[1].units);
	cmp = json_object_get(j, "comparisons");
	assert_int_equal(json_array_size(cmp), WF_EXP_NMETRICS);
	c0 = json_array_get(cmp, 0);
	assert_string_equal(json_string_value(json_object_get(c0, "metric")), "ctr");
	assert_string_equal(json_string_value(json_object_get(c0, "arm")), "live");
	assert_non_null(json_object_get(json_object_get(c0, "lift"), "relative"));
	assert_int_equal(json_array_size(json_object_get(json_object_get(c0, "ci"), "absolute")), 2);
	assert_true(json_is_number(json_object_get(c0, "p_always_valid")));
	assert_true(json_is_number(json_object_get(j, "srm_p")));
	assert_int_equal(json_array_size(json_object_get(j, "daily")), 5);
	json_decref(j);

	f = open_memstream(&buf, &len);
	assert_non_null(f);
	wf_exp_report_text(rep, f);
	fclose(f);
	assert_non_null(strstr(buf, "live"));
	assert_non_null(strstr(buf, "SRM"));
	f = fmemopen(buf, len, "r");
	while (fgets(line, sizeof(line), f))
		if (strlen(line) - 1 > width)
			width = strlen(line) - 1;
	fclose(f);
	print_message("  text report: %zu bytes, widest line %zu\n", len, width);
	assert_true(width <= 80);
	free(buf);

	/* the plot: a PNG when gnuplot is installed */
	snprintf(line, sizeof(line), "/tmp/test_expstats.%d.png", (int)getpid());
	err = wf_exp_report_plot(rep, line);
	assert_true(err == 0 || err == -ENOENT);
	if (err == 0) {
		unsigned char magic[4] = { 0 };

		f = fopen(line, "rb");
		assert_non_null(f);
		assert_int_equal(fread(magic, 1, 4, f), 4);
		fclose(f);
		assert_memory_equal(magic, "\x89PNG", 4);
		unlink(line);
	}
	wf_exp_report_free(rep);
	free(u);
}

/* Four units, all exposed on day 0; the control's two buy on day 1 and
 * one treated unit clicks on day 2. Day 0's point holds none of it (as a
 * report run at the end of day 0 would), day 1 the purchases, day 2
 * everything and equals the report; the series from totals alone
 * (wf_exp_report_build()) puts the purchases on day 0. */
static void test_expstats_daily_point_excludes_later_outcomes(void **state)
{
	struct wf_exp_unit u[4] = {
		{ .arm = 0, .exposures = 2, .purchases = 1, .converted = 1, .revenue = 30 },
		{ .arm = 0, .exposures = 2, .purchases = 1, .converted = 1, .revenue = 10 },
		{ .arm = 1, .exposures = 2, .clicks = 1 },
		{ .arm = 1, .exposures = 2 },
	};
	const struct wf_exp_unit_day ud[] = {
		{ .unit = 0, .day = 0, .exposures = 2 },
		{ .unit = 1, .day = 0, .exposures = 1 },
		{ .unit = 2, .day = 0, .exposures = 2 },
		{ .unit = 3, .day = 0, .exposures = 2 },
		{ .unit = 0, .day = 1, .purchases = 1, .converted = 1, .revenue = 30 },
		{ .unit = 1, .day = 1, .exposures = 1, .purchases = 1, .converted = 1, .revenue = 10 },
		{ .unit = 2, .day = 2, .clicks = 1 },
	};
	const struct wf_exp_unit_day late[] = { { .unit = 0, .day = 1 }, { .unit = 1, .day = 0 } };
	const struct wf_exp_unit_day early[] = { { .unit = 0, .day = 0 } };
	const struct wf_exp_unit_day far[] = { { .unit = 0, .day = WF_EXP_MAX_DAYS } };
	const struct wf_exp_unit_day none[] = { { .unit = 4, .day = 0 } };
	struct wf_exp_report *rep = NULL, *tot = NULL;
	const struct wf_exp_cmp *c;

	(void)state;
	assert_int_equal(wf_exp_report_build_daily(u, 4, ud, sizeof(ud) / sizeof(ud[0]), 2, NULL, NULL, &rep), 0);
	assert_int_equal(rep->ndays, 3);
	assert_int_equal(rep->days[0].units, 4);
	c = &rep->days[0].cmp[WF_EXP_CONVERSION];
	assert_true(c->control == 0 && c->treatment == 0);
	assert_true(rep->days[0].cmp[WF_EXP_REVENUE].control == 0);
	assert_true(rep->days[0].cmp[WF_EXP_CTR].control == 0);
	assert_true(rep->days[0].cmp[WF_EXP_CTR].treatment == 0);
	assert_true(rep->days[1].cmp[WF_EXP_CONVERSION].control == 1);
	assert_true(rep->days[1].cmp[WF_EXP_REVENUE].control == 20);
	assert_true(rep->days[1].cmp[WF_EXP_CTR].treatment == 0);
	assert_true(rep->days[2].cmp[WF_EXP_CTR].treatment == 0.25);
	assert_memory_equal(&rep->days[2].cmp[0], &rep->cmp[0], rep->ncmp * sizeof(*rep->cmp));
	/* the same final report as from the totals; only the series differs */
	assert_int_equal(wf_exp_report_build(u, 4, 2, NULL, NULL, &tot), 0);
	assert_int_equal(tot->ndays, 1);
	assert_true(tot->days[0].cmp[WF_EXP_CONVERSION].control == 1);
	for (size_t i = 0; i < rep->ncmp; i++) {
		const struct wf_exp_cmp *a = &rep->cmp[i], *b = &tot->cmp[i];

		assert_true(a->control == b->control && a->treatment == b->treatment);
		assert_true(a->abs == b->abs && (a->se == b->se || (isnan(a->se) && isnan(b->se))));
	}
	for (uint32_t a = 0; a < 2; a++)
		assert_true(rep->arm[a].revenue == tot->arm[a].revenue &&
			    rep->arm[a].units == tot->arm[a].units);
	wf_exp_report_free(tot);
	wf_exp_report_free(rep);
	rep = NULL;
	/* records out of order, before the unit's first day, too late, of no unit */
	u[0].first_day = 1;
	assert_int_equal(wf_exp_report_build_daily(u, 4, late, 2, 2, NULL, NULL, &rep), -EINVAL);
	assert_int_equal(wf_exp_report_build_daily(u, 4, early, 1, 2, NULL, NULL, &rep), -EINVAL);
	assert_int_equal(wf_exp_report_build_daily(u, 4, far, 1, 2, NULL, NULL, &rep), -EINVAL);
	assert_int_equal(wf_exp_report_build_daily(u, 4, none, 1, 2, NULL, NULL, &rep), -EINVAL);
	assert_int_equal(wf_exp_report_build_daily(u, 4, NULL, 1, 2, NULL, NULL, &rep), -EINVAL);
	assert_null(rep);
}

/* Every day's point equals the report of that day's data: the units
 * exposed by day d with their records of days <= d summed into totals,
 * given to wf_exp_report_build() (the p_always_valid running minimum
 * aside). */
static void test_expstats_daily_point_is_the_report_of_that_day(void **state)
{
	static const double half[2] = { 0.5, 0.5 };
	struct world w = { .ndays = 7, .lift_ctr = 0.1, .with_pre = 1 };
	struct rng r = { 77 };
	size_t n = 3000, nud;
	struct wf_exp_unit *u = units_gen(&r, &w, n, half, 2), *t = calloc(n, sizeof(*t));
	struct wf_exp_unit_day *ud = days_gen(&r, &w, u, n, &nud);
	struct wf_exp_report *rep = NULL, *cut = NULL;

	(void)state;
	assert_non_null(t);
	assert_int_equal(wf_exp_report_build_daily(u, n, ud, nud, 2, NULL, half, &rep), 0);
	assert_int_equal(rep->ndays, w.ndays);
	for (uint32_t d = 0; d < w.ndays; d++) {
		size_t m = 0;

		for (size_t i = 0; i < n; i++) {
			t[i] = u[i];
			t[i].arm = u[i].first_day <= d ? u[i].arm : 99; /* not yet exposed: ignored */
			t[i].exposures = t[i].clicks = t[i].carts = t[i].purchases = 0;
			t[i].converted = t[i].revenue = 0;
		}
		for (size_t k = 0; k < nud && ud[k].day <= d; k++) {
			struct wf_exp_unit *x = &t[ud[k].unit];

			x->exposures += ud[k].exposures;
			x->clicks += ud[k].clicks;
			x->carts += ud[k].carts;
			x->purchases += ud[k].purchases;
			x->converted += ud[k].converted;
			x->revenue += ud[k].revenue;
		}
		for (size_t i = 0; i < n; i++)
			m += t[i].arm < 2;
		assert_int_equal(wf_exp_report_build(t, n, 2, NULL, half, &cut), 0);
		assert_int_equal(rep->days[d].units, m);
		for (size_t i = 0; i < rep->ncmp; i++) {
			const struct wf_exp_cmp *a = &rep->days[d].cmp[i], *b = &cut->cmp[i];
			double look;

			NEAR(a->control, b->control, 1e-9);
			NEAR(a->treatment, b->treatment, 1e-9);
			NEAR(a->se, b->se, 1e-9);
			NEAR(a->p, b->p, 1e-6);
			/* this look's mSPRT p, and the minimum over the looks before */
			look = wf_exp_msprt_p(b->abs, b->se * b->se,
					      pow(rep->tau_rel * b->control, 2));
			assert_true(a->p_always_valid <= look * (1 + 1e-9));
			if (d > 0)
				assert_true(a->p_always_valid <= rep->days[d - 1].cmp[i].p_always_valid);
			assert_true(fabs(a->abs - b->abs) <= 1e-9 * b->se);
			assert_int_equal(a->has_cuped, b->has_cuped);
			if (b->has_cuped)
				assert_true(fabs(a->cuped_abs - b->cuped_abs) <= 1e-9 * b->se);
		}
		wf_exp_report_free(cut);
		cut = NULL;
	}
	wf_exp_report_free(rep);
	free(ud);
	free(t);
	free(u);
}

static void test_expstats_bad_input_and_empty_arms(void **state)
{
	static const double neg[2] = { 0.5, -0.1 }, zero[2] = { 0, 0 };
	struct wf_exp_unit u[3] = { { .arm = 0, .exposures = 1 }, { .arm = 5 },
				    { .arm = 0, .first_day = WF_EXP_MAX_DAYS } };
	struct wf_exp_report *rep = NULL;
	json_t *j;

	assert_int_equal(wf_exp_report_build(u, 1, 1, NULL, NULL, &rep), -EINVAL);
	assert_int_equal(wf_exp_report_build(u, 1, WF_EXP_MAX_ARMS + 1, NULL, NULL, &rep), -EINVAL);
	assert_int_equal(wf_exp_report_build(u, 1, 2, NULL, neg, &rep), -EINVAL);
	assert_int_equal(wf_exp_report_build(u, 1, 2, NULL, zero, &rep), -EINVAL);
	assert_int_equal(wf_exp_report_build(u, 3, 2, NULL, NULL, &rep), -EINVAL);
	assert_null(rep);
	/* one unit, the arm-5 unit ignored: NaN statistics, no error */
	assert_int_equal(wf_exp_report_build(u, 2, 2, NULL, NULL, &rep), 0);
	assert_int_equal(rep->units, 1);
	assert_true(isnan(rep->cmp[0].p));
	j = wf_exp_report_json(rep);
	assert_non_null(j);
	assert_true(json_is_null(json_object_get(json_array_get(json_object_get(j, "comparisons"),
								 0), "p")));
	json_decref(j);
	{
		FILE *null = fopen("/dev/null", "w");

		assert_non_null(null);
		wf_exp_report_text(rep, null);
		fclose(null);
	}
	wf_exp_report_free(rep);
	rep = NULL;
	assert_int_equal(wf_exp_report_build(NULL, 0, 2, NULL, NULL, &rep), 0);
	assert_int_equal(rep->ndays, 0);
	assert_true(isnan(rep->srm_p));
	assert_int_equal(wf_exp_report_plot(rep, "/tmp/never.png"), -ENODATA);
	wf_exp_report_free(rep);
	wf_exp_report_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expstats_distributions_match_reference_values),
		cmocka_unit_test(test_expstats_aa_covers_zero_and_always_valid_survives_peeking),
		cmocka_unit_test(test_expstats_known_lift_is_detected),
		cmocka_unit_test(test_expstats_srm_flags_skewed_split_only),
		cmocka_unit_test(test_expstats_cuped_reduces_variance_with_correlated_covariate),
		cmocka_unit_test(test_expstats_render_json_and_text),
		cmocka_unit_test(test_expstats_daily_point_excludes_later_outcomes),
		cmocka_unit_test(test_expstats_daily_point_is_the_report_of_that_day),
		cmocka_unit_test(test_expstats_bad_input_and_empty_arms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
