/*
 * expstats.c - per-arm estimates, comparisons against the control, CUPED,
 * the sample-ratio-mismatch test and the daily cumulative series of an
 * experiment report (formulas and sources: docs/EXPERIMENTS.md). Linked
 * into libweftexp (admin, weftctl, tests). Library code: never logs.
 *
 * One pass finds each arm's means (a shift, for precision); a second adds
 * every unit's shifted values and their cross-products into a bucket per
 * (first day, arm); prefix sums over the days give each day's cumulative
 * means and covariances, from which every estimate below follows. Cost:
 * O(n + days * arms * V^2) for V = 7 per-unit variables.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/expstats.h"

/* The per-unit variables whose moments are kept. */
enum { V_E, V_C, V_K, V_CONV, V_REV, V_X, V_H, NV };

/* Shifted sums of one (day, arm) bucket, or of a prefix of days. */
struct mom {
	double n;
	double s[NV];
	double ss[NV][NV];
};

/* Means and covariances (divisor n - 1) of one arm up to a day. */
struct stat {
	double n;
	double mean[NV];
	double cov[NV][NV];
};

/* mSPRT mixing sd relative to the control's value (docs/EXPERIMENTS.md,
 * "Always-valid p-values"): the order of the lifts the test is meant to
 * find, fixed for every experiment, never fitted to the data. */
#define EXP_TAU_REL 0.05

const char *wf_exp_metric_name(uint32_t metric)
{
	static const char *const names[WF_EXP_NMETRICS] = {
		"ctr", "atc", "conversion", "revenue_per_unit"
	};

	return metric < WF_EXP_NMETRICS ? names[metric] : NULL;
}

static void unit_vars(const struct wf_exp_unit *u, double v[NV])
{
	v[V_E] = u->exposures;
	v[V_C] = u->clicks;
	v[V_K] = u->carts;
	v[V_CONV] = u->converted;
	v[V_REV] = u->revenue;
	v[V_X] = u->has_pre ? u->pre_revenue : 0;
	v[V_H] = u->has_pre ? 1 : 0;
}

static void mom_add(struct mom *m, const double v[NV], const double shift[NV])
{
	double d[NV];

	for (int i = 0; i < NV; i++) {
		d[i] = v[i] - shift[i];
		m->s[i] += d[i];
	}
	for (int i = 0; i < NV; i++)
		for (int j = i; j < NV; j++)
			m->ss[i][j] += d[i] * d[j];
	m->n += 1;
}

static void mom_sum(struct mom *acc, const struct mom *b)
{
	acc->n += b->n;
	for (int i = 0; i < NV; i++) {
		acc->s[i] += b->s[i];
		for (int j = i; j < NV; j++)
			acc->ss[i][j] += b->ss[i][j];
	}
}

static void mom_stat(const struct mom *m, const double shift[NV], struct stat *st)
{
	double n = m->n;

	memset(st, 0, sizeof(*st));
	st->n = n;
	for (int i = 0; i < NV; i++)
		st->mean[i] = n > 0 ? shift[i] + m->s[i] / n : NAN;
	for (int i = 0; i < NV; i++)
		for (int j = i; j < NV; j++) {
			double c = n > 1 ? (m->ss[i][j] - m->s[i] * m->s[j] / n) / (n - 1) : NAN;

			st->cov[i][j] = st->cov[j][i] = c;
		}
}

/* A ratio of means r = mean[num] / mean[V_E] and the delta-method variance
 * of r: (var_num - 2 r cov + r^2 var_e) / (n mean_e^2). */
static struct wf_exp_est ratio_est(const struct stat *st, int num)
{
	struct wf_exp_est e = { NAN, NAN };
	double me = st->mean[V_E], r, v;

	if (!(st->n > 1) || !(me > 0))
		return e;
	r = st->mean[num] / me;
	v = (st->cov[num][num] - 2 * r * st->cov[num][V_E] + r * r * st->cov[V_E][V_E]) /
	    (st->n * me * me);
	e.value = r;
	e.se = sqrt(v > 0 ? v : 0);
	return e;
}

static struct wf_exp_est mean_est(const struct stat *st, int var)
{
	struct wf_exp_est e = { NAN, NAN };

	if (!(st->n > 1))
		return e;
	e.value = st->mean[var];
	e.se = sqrt(st->cov[var][var] / st->n);
	return e;
}

static struct wf_exp_est arm_est(const struct stat *st, uint32_t metric)
{
	switch (metric) {
	case WF_EXP_CTR:
		return ratio_est(st, V_C);
	case WF_EXP_ATC:
		return ratio_est(st, V_K);
	case WF_EXP_CONVERSION:
		return mean_est(st, V_CONV);
	default:
		return mean_est(st, V_REV);
	}
}

/* Welch-Satterthwaite degrees of freedom of a difference of two means. */
static double welch_df(double vt, double nt, double vc, double nc)
{
	double den = vt * vt / (nt - 1) + vc * vc / (nc - 1);

	return den > 0 ? (vt + vc) * (vt + vc) / den : INFINITY;
}

/* Fill the lift, its intervals and p-values from the two estimates,
 * their squared standard errors and the degrees of freedom. */
static void lift_fill(struct wf_exp_cmp *c, struct wf_exp_est ctl, struct wf_exp_est trt,
		      double df)
{
	double vc = ctl.se * ctl.se, vt = trt.se * trt.se, q, vrel, tau;

	c->control = ctl.value;
	c->treatment = trt.value;
	c->abs = trt.value - ctl.value;
	c->se = sqrt(vc + vt);
	c->df = df;
	q = wf_exp_t_quantile(0.975, df);
	c->abs_lo = c->abs - q * c->se;
	c->abs_hi = c->abs + q * c->se;
	c->p = c->se > 0 ? 2 * wf_exp_t_cdf(-fabs(c->abs) / c->se, df) : NAN; /* the tail, no 1 - x */
	if (c->se == 0 && !isnan(c->abs))
		c->p = c->abs == 0 ? 1 : 0;
	/* relative lift t/c - 1: delta method on log(t/c), var = vt/t^2 +
	 * vc/c^2, exponentiated (an interval as skewed as the ratio); the
	 * linear delta method, var = vt/c^2 + t^2 vc/c^4, when t <= 0 */
	c->rel = c->rel_lo = c->rel_hi = NAN;
	if (ctl.value > 0 && trt.value > 0) {
		vrel = vt / (trt.value * trt.value) + vc / (ctl.value * ctl.value);
		c->rel = trt.value / ctl.value - 1;
		c->rel_lo = (c->rel + 1) * exp(-q * sqrt(vrel)) - 1;
		c->rel_hi = (c->rel + 1) * exp(q * sqrt(vrel)) - 1;
	} else if (ctl.value != 0) {
		vrel = vt / (ctl.value * ctl.value) +
		       trt.value * trt.value * vc / pow(ctl.value, 4);
		c->rel = trt.value / ctl.value - 1;
		c->rel_lo = c->rel - q * sqrt(vrel);
		c->rel_hi = c->rel + q * sqrt(vrel);
	}
	tau = EXP_TAU_REL * fabs(ctl.value);
	c->p_always_valid = wf_exp_msprt_p(c->abs, vc + vt, tau * tau);
}

/* CUPED on a per-unit mean (Deng et al. 2013) with the covariates x =
 * pre_revenue (0 without history) and h = has_pre: theta solves the
 * pooled within-arm normal equations, Y_adj = Y - theta'(z - mean z),
 * mean z over both arms. Returns 0, or -1 when there is nothing to adjust
 * with (no unit with history, or a singular covariance). */
static int cuped_fill(struct wf_exp_cmp *c, const struct stat *sc, const struct stat *stt,
		      int y)
{
	const struct stat *s[2] = { sc, stt };
	double sxx = 0, sxh = 0, shh = 0, syx = 0, syh = 0, det, tx, th, zx, zh, n;
	struct wf_exp_est e[2];
	struct wf_exp_cmp adj = *c;

	n = sc->n + stt->n;
	if (!(sc->n > 1 && stt->n > 1))
		return -1;
	zx = (sc->n * sc->mean[V_X] + stt->n * stt->mean[V_X]) / n;
	zh = (sc->n * sc->mean[V_H] + stt->n * stt->mean[V_H]) / n;
	for (int a = 0; a < 2; a++) {
		double w = s[a]->n - 1;

		sxx += w * s[a]->cov[V_X][V_X];
		sxh += w * s[a]->cov[V_X][V_H];
		shh += w * s[a]->cov[V_H][V_H];
		syx += w * s[a]->cov[y][V_X];
		syh += w * s[a]->cov[y][V_H];
	}
	if (!(sxx > 0))
		return -1;
	det = sxx * shh - sxh * sxh;
	if (shh > 0 && det > 1e-12 * sxx * shh) {
		tx = (shh * syx - sxh * syh) / det;
		th = (sxx * syh - sxh * syx) / det;
	} else { /* everyone (or no one) has history: x alone */
		tx = syx / sxx;
		th = 0;
	}
	for (int a = 0; a < 2; a++) {
		const double(*cv)[NV] = s[a]->cov;
		double v = cv[y][y] - 2 * tx * cv[y][V_X] - 2 * th * cv[y][V_H] +
			   tx * tx * cv[V_X][V_X] + 2 * tx * th * cv[V_X][V_H] +
			   th * th * cv[V_H][V_H];

		e[a].value = s[a]->mean[y] - tx * (s[a]->mean[V_X] - zx) -
			     th * (s[a]->mean[V_H] - zh);
		e[a].se = sqrt((v > 0 ? v : 0) / s[a]->n);
	}
	lift_fill(&adj, e[0], e[1],
		  welch_df(e[1].se * e[1].se, stt->n, e[0].se * e[0].se, sc->n));
	c->has_cuped = 1;
	c->theta = tx;
	c->cuped_abs = adj.abs;
	c->cuped_lo = adj.abs_lo;
	c->cuped_hi = adj.abs_hi;
	c->cuped_p = adj.p;
	c->cuped_p_always_valid = adj.p_always_valid;
	c->cuped_var_ratio = c->se > 0 ? adj.se * adj.se / (c->se * c->se) : NAN;
	return 0;
}

/* Every comparison of one day's cumulative statistics st[narms]. */
static void compare_all(const struct stat *st, uint32_t narms, int has_pre,
			struct wf_exp_cmp *out)
{
	for (uint32_t a = 1; a < narms; a++)
		for (uint32_t m = 0; m < WF_EXP_NMETRICS; m++) {
			struct wf_exp_cmp *c = &out[(a - 1) * WF_EXP_NMETRICS + m];
			struct wf_exp_est ec = arm_est(&st[0], m), et = arm_est(&st[a], m);
			double df = INFINITY;

			memset(c, 0, sizeof(*c));
			c->metric = m;
			c->arm = a;
			if (m == WF_EXP_CONVERSION || m == WF_EXP_REVENUE)
				df = welch_df(et.se * et.se, st[a].n, ec.se * ec.se, st[0].n);
			lift_fill(c, ec, et, df);
			c->cuped_abs = c->cuped_lo = c->cuped_hi = c->cuped_p = NAN;
			c->cuped_p_always_valid = c->cuped_var_ratio = c->theta = NAN;
			if (has_pre && (m == WF_EXP_CONVERSION || m == WF_EXP_REVENUE))
				cuped_fill(c, &st[0], &st[a], m == WF_EXP_CONVERSION ? V_CONV : V_REV);
		}
}

/* Pearson's chi-squared of the arms' unit counts against the planned
 * shares, narms - 1 degrees of freedom. */
static void srm_fill(struct wf_exp_report *r)
{
	double chi2 = 0;
	int inf = 0;

	for (uint32_t a = 0; a < r->narms; a++) {
		double e = (double)r->units * r->arm[a].planned_share, o = (double)r->arm[a].units;

		if (e > 0)
			chi2 += (o - e) * (o - e) / e;
		else if (o > 0)
			inf = 1;
	}
	r->srm_chi2 = inf ? INFINITY : chi2;
	r->srm_p = r->units == 0 ? NAN : inf ? 0 : wf_exp_chi2_sf(chi2, r->narms - 1);
	r->srm_flag = r->srm_p < WF_EXP_SRM_ALPHA;
}

static int arms_init(struct wf_exp_report *r, uint32_t narms, const char *const *arm_names,
		     const double *planned_share)
{
	double tot = 0;

	for (uint32_t a = 0; a < narms; a++) {
		double s = planned_share ? planned_share[a] : 1;

		if (!(s >= 0) || isinf(s))
			return -EINVAL;
		tot += s;
	}
	if (!(tot > 0))
		return -EINVAL;
	r->narms = narms;
	for (uint32_t a = 0; a < narms; a++) {
		if (arm_names && arm_names[a])
			snprintf(r->arm[a].name, sizeof(r->arm[a].name), "%s", arm_names[a]);
		else
			snprintf(r->arm[a].name, sizeof(r->arm[a].name), "arm%u", a);
		r->arm[a].planned_share = (planned_share ? planned_share[a] : 1) / tot;
	}
	return 0;
}

/* Arm estimates from the cumulative statistics of all days (the totals
 * are summed exactly in wf_exp_report_build()'s first pass). */
static void arms_fill(struct wf_exp_report *r, const struct stat *st)
{
	for (uint32_t a = 0; a < r->narms; a++)
		for (uint32_t m = 0; m < WF_EXP_NMETRICS; m++)
			r->arm[a].m[m] = arm_est(&st[a], m);
}

static void arm_total(struct wf_exp_arm *ar, const struct wf_exp_unit *u)
{
	ar->units++;
	ar->exposures += u->exposures;
	ar->clicks += u->clicks;
	ar->carts += u->carts;
	ar->purchases += u->purchases;
	ar->converted += u->converted;
	ar->revenue += u->revenue;
}

/* The daily series and the final comparisons from the buckets b[day][arm]:
 * prefix sums day by day; p_always_valid is the running minimum. */
static int days_fill(struct wf_exp_report *r, const struct mom *b, const double (*shift)[NV])
{
	uint32_t na = r->narms;
	struct mom cum[WF_EXP_MAX_ARMS];
	struct stat st[WF_EXP_MAX_ARMS];

	memset(cum, 0, sizeof(cum));
	for (uint32_t d = 0; d < r->ndays; d++) {
		struct wf_exp_day *day = &r->days[d];

		day->day = d;
		day->cmp = calloc(r->ncmp ? r->ncmp : 1, sizeof(*day->cmp));
		if (!day->cmp)
			return -ENOMEM;
		for (uint32_t a = 0; a < na; a++) {
			mom_sum(&cum[a], &b[(size_t)d * na + a]);
			mom_stat(&cum[a], shift[a], &st[a]);
			day->units += (uint64_t)cum[a].n;
		}
		compare_all(st, na, r->has_pre, day->cmp);
		for (size_t i = 0; d > 0 && i < r->ncmp; i++) {
			const struct wf_exp_cmp *prev = &r->days[d - 1].cmp[i];
			struct wf_exp_cmp *c = &day->cmp[i];

			if (prev->p_always_valid < c->p_always_valid || isnan(c->p_always_valid))
				c->p_always_valid = prev->p_always_valid;
			if (prev->cuped_p_always_valid < c->cuped_p_always_valid ||
			    isnan(c->cuped_p_always_valid))
				c->cuped_p_always_valid = prev->cuped_p_always_valid;
		}
	}
	for (uint32_t a = 0; a < na; a++)
		mom_stat(&cum[a], shift[a], &st[a]);
	arms_fill(r, st);
	if (r->ndays > 0)
		memcpy(r->cmp, r->days[r->ndays - 1].cmp, r->ncmp * sizeof(*r->cmp));
	else
		compare_all(st, na, r->has_pre, r->cmp);
	return 0;
}

int wf_exp_report_build(const struct wf_exp_unit *u, size_t n, uint32_t narms,
			const char *const *arm_names, const double *planned_share,
			struct wf_exp_report **ret)
{
	struct wf_exp_report *r = NULL;
	struct mom *b = NULL;
	double shift[WF_EXP_MAX_ARMS][NV], cnt[WF_EXP_MAX_ARMS], v[NV];
	uint32_t ndays = 0;
	int err;

	if (narms < 2 || narms > WF_EXP_MAX_ARMS || (n > 0 && !u) || !ret)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	err = arms_init(r, narms, arm_names, planned_share);
	if (err < 0)
		goto fail;
	r->tau_rel = EXP_TAU_REL;
	r->ncmp = (size_t)(narms - 1) * WF_EXP_NMETRICS;
	/* pass 1: each arm's means, the shift; the number of days */
	memset(shift, 0, sizeof(shift));
	memset(cnt, 0, sizeof(cnt));
	for (size_t i = 0; i < n; i++) {
		if (u[i].arm >= narms)
			continue;
		if (u[i].first_day >= WF_EXP_MAX_DAYS) {
			err = -EINVAL;
			goto fail;
		}
		unit_vars(&u[i], v);
		arm_total(&r->arm[u[i].arm], &u[i]);
		cnt[u[i].arm] += 1;
		for (int k = 0; k < NV; k++)
			shift[u[i].arm][k] += (v[k] - shift[u[i].arm][k]) / cnt[u[i].arm];
		if (u[i].first_day + 1 > ndays)
			ndays = u[i].first_day + 1;
		if (u[i].has_pre)
			r->has_pre = 1;
		r->units++;
	}
	r->ndays = ndays;
	err = -ENOMEM;
	r->cmp = calloc(r->ncmp, sizeof(*r->cmp));
	r->days = calloc(ndays ? ndays : 1, sizeof(*r->days));
	b = calloc((size_t)(ndays ? ndays : 1) * narms, sizeof(*b));
	if (!r->cmp || !r->days || !b)
		goto fail;
	/* pass 2: shifted sums per (day, arm) */
	for (size_t i = 0; i < n; i++) {
		if (u[i].arm >= narms)
			continue;
		unit_vars(&u[i], v);
		mom_add(&b[(size_t)u[i].first_day * narms + u[i].arm], v, shift[u[i].arm]);
	}
	err = days_fill(r, b, (const double(*)[NV])shift);
	if (err < 0)
		goto fail;
	srm_fill(r);
	free(b);
	*ret = r;
	return 0;
fail:
	free(b);
	wf_exp_report_free(r);
	return err;
}

void wf_exp_report_free(struct wf_exp_report *r)
{
	if (!r)
		return;
	for (uint32_t d = 0; r->days && d < r->ndays; d++)
		free(r->days[d].cmp);
	free(r->days);
	free(r->cmp);
	free(r);
}
