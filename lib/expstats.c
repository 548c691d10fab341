/*
 * expstats.c - per-arm estimates, comparisons against the control, CUPED,
 * the sample-ratio-mismatch test and the daily cumulative series of an
 * experiment report (formulas and sources: docs/EXPERIMENTS.md). Linked
 * into libweftexp (admin, weftctl, tests). Library code: never logs.
 *
 * One pass finds each arm's means (a shift, for precision); then a walk
 * over the days keeps, per arm, the sums of the units' shifted values and
 * their cross-products as of the end of the day: a unit enters on its
 * first day, each record of what a day added to a unit moves its terms
 * (old out, new in). Each day's sums give its cumulative means and
 * covariances, from which every estimate below follows; the last day's
 * are summed afresh from the units' totals. Cost: O((n + records) * V^2
 * + days * arms * V^2) for V = 7 per-unit variables; memory O(n * V).
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

/* Move one unit's variables from old to now in the shifted sums m (a
 * later day added to its outcomes). */
static void mom_move(struct mom *m, const double old[NV], const double now[NV],
		     const double shift[NV])
{
	double o[NV], d[NV];

	for (int i = 0; i < NV; i++) {
		o[i] = old[i] - shift[i];
		d[i] = now[i] - shift[i];
		m->s[i] += d[i] - o[i];
	}
	for (int i = 0; i < NV; i++)
		for (int j = i; j < NV; j++)
			m->ss[i][j] += d[i] * d[j] - o[i] * o[j];
}

/* The state of the daily walk: each unit's variables as of the day. */
struct walk {
	const struct wf_exp_unit *u;
	size_t n;
	const struct wf_exp_unit_day *ud; /* NULL: units enter with their totals */
	size_t nud, k;                    /* k: the next record */
	size_t *order, *first;            /* units by first_day; first[d] its start */
	double (*cur)[NV];
	struct mom cum[WF_EXP_MAX_ARMS];
};

/* Day d of the walk: the units first exposed that day enter (with nothing
 * yet but their pre-period covariates, or their totals without records),
 * then the day's records move their units. */
static void walk_day(struct walk *w, uint32_t d, uint32_t narms, const double (*shift)[NV])
{
	for (size_t o = w->first[d]; o < w->first[d + 1]; o++) {
		size_t i = w->order[o];

		unit_vars(&w->u[i], w->cur[i]);
		if (w->ud)
			for (int k = V_E; k <= V_REV; k++)
				w->cur[i][k] = 0;
		mom_add(&w->cum[w->u[i].arm], w->cur[i], shift[w->u[i].arm]);
	}
	for (; w->k < w->nud && w->ud[w->k].day == d; w->k++) {
		const struct wf_exp_unit_day *r = &w->ud[w->k];
		uint32_t arm = w->u[r->unit].arm;
		double now[NV];

		if (arm >= narms)
			continue;
		memcpy(now, w->cur[r->unit], sizeof(now));
		now[V_E] += r->exposures;
		now[V_C] += r->clicks;
		now[V_K] += r->carts;
		now[V_CONV] += r->converted;
		now[V_REV] += r->revenue;
		mom_move(&w->cum[arm], w->cur[r->unit], now, shift[arm]);
		memcpy(w->cur[r->unit], now, sizeof(now));
	}
}

/* The daily series and the final comparisons: each day's cumulative sums
 * from the walk; the last day's from the units' totals afresh (the final
 * report, free of the walk's rounding); p_always_valid is the running
 * minimum. */
static int days_fill(struct wf_exp_report *r, struct walk *w, const double (*shift)[NV])
{
	uint32_t na = r->narms;
	struct stat st[WF_EXP_MAX_ARMS];
	double v[NV];

	for (uint32_t d = 0; d < r->ndays; d++) {
		struct wf_exp_day *day = &r->days[d];

		day->day = d;
		day->cmp = calloc(r->ncmp ? r->ncmp : 1, sizeof(*day->cmp));
		if (!day->cmp)
			return -ENOMEM;
		walk_day(w, d, na, shift);
		if (d + 1 == r->ndays) {
			memset(w->cum, 0, sizeof(w->cum));
			for (size_t i = 0; i < w->n; i++) {
				if (w->u[i].arm >= na)
					continue;
				unit_vars(&w->u[i], v);
				mom_add(&w->cum[w->u[i].arm], v, shift[w->u[i].arm]);
			}
		}
		for (uint32_t a = 0; a < na; a++) {
			mom_stat(&w->cum[a], shift[a], &st[a]);
			day->units += (uint64_t)w->cum[a].n;
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
		mom_stat(&w->cum[a], shift[a], &st[a]);
	arms_fill(r, st);
	if (r->ndays > 0)
		memcpy(r->cmp, r->days[r->ndays - 1].cmp, r->ncmp * sizeof(*r->cmp));
	else
		compare_all(st, na, r->has_pre, r->cmp);
	return 0;
}

/* Check the records (see wf_exp_report_build_daily()) and widen *ndays to
 * the last day they name. */
static int records_check(const struct wf_exp_unit *u, size_t n, const struct wf_exp_unit_day *ud,
			 size_t nud, uint32_t *ndays)
{
	for (size_t k = 0; k < nud; k++) {
		if (ud[k].unit >= n || ud[k].day >= WF_EXP_MAX_DAYS ||
		    ud[k].day < u[ud[k].unit].first_day || (k > 0 && ud[k].day < ud[k - 1].day))
			return -EINVAL;
		if (ud[k].day + 1 > *ndays)
			*ndays = ud[k].day + 1;
	}
	return 0;
}

/* The units in the order of their first_day (a counting sort). */
static int walk_init(struct walk *w, uint32_t ndays, uint32_t narms)
{
	w->order = calloc(w->n ? w->n : 1, sizeof(*w->order));
	w->first = calloc((size_t)ndays + 2, sizeof(*w->first));
	w->cur = calloc(w->n ? w->n : 1, sizeof(*w->cur));
	if (!w->order || !w->first || !w->cur)
		return -ENOMEM;
	for (size_t i = 0; i < w->n; i++)
		if (w->u[i].arm < narms)
			w->first[w->u[i].first_day + 2]++;
	for (uint32_t d = 0; d < ndays; d++)
		w->first[d + 2] += w->first[d + 1];
	for (size_t i = 0; i < w->n; i++)
		if (w->u[i].arm < narms)
			w->order[w->first[w->u[i].first_day + 1]++] = i;
	return 0;
}

static void walk_fini(struct walk *w)
{
	free(w->order);
	free(w->first);
	free(w->cur);
}

int wf_exp_report_build_daily(const struct wf_exp_unit *u, size_t n,
			      const struct wf_exp_unit_day *ud, size_t nud, uint32_t narms,
			      const char *const *arm_names, const double *planned_share,
			      struct wf_exp_report **ret)
{
	struct wf_exp_report *r = NULL;
	struct walk w = { .u = u, .n = n, .ud = ud, .nud = ud ? nud : 0 };
	double shift[WF_EXP_MAX_ARMS][NV], cnt[WF_EXP_MAX_ARMS], v[NV];
	uint32_t ndays = 0;
	int err;

	if (narms < 2 || narms > WF_EXP_MAX_ARMS || (n > 0 && !u) || (nud > 0 && !ud) || !ret)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	err = arms_init(r, narms, arm_names, planned_share);
	if (err < 0)
		goto fail;
	r->tau_rel = EXP_TAU_REL;
	r->ncmp = (size_t)(narms - 1) * WF_EXP_NMETRICS;
	/* each arm's means, the shift; the number of days */
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
	err = records_check(u, n, w.ud, w.nud, &ndays);
	if (err < 0)
		goto fail;
	r->ndays = ndays;
	err = -ENOMEM;
	r->cmp = calloc(r->ncmp, sizeof(*r->cmp));
	r->days = calloc(ndays ? ndays : 1, sizeof(*r->days));
	if (!r->cmp || !r->days || walk_init(&w, ndays, narms) < 0)
		goto fail;
	err = days_fill(r, &w, (const double(*)[NV])shift);
	if (err < 0)
		goto fail;
	srm_fill(r);
	walk_fini(&w);
	*ret = r;
	return 0;
fail:
	walk_fini(&w);
	wf_exp_report_free(r);
	return err;
}

int wf_exp_report_build(const struct wf_exp_unit *u, size_t n, uint32_t narms,
			const char *const *arm_names, const double *planned_share,
			struct wf_exp_report **ret)
{
	return wf_exp_report_build_daily(u, n, NULL, 0, narms, arm_names, planned_share, ret);
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
