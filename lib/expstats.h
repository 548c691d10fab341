/*
 * expstats.h - the statistics of an online experiment and its report.
 *
 * Input: one struct wf_exp_unit per randomized unit (a user or a session),
 * the per-unit totals that attribution (lib/exp_attr.h, from the journal)
 * sums up, and for the daily series what each day added to them (struct
 * wf_exp_unit_day). Output: struct wf_exp_report, per arm the units, exposures and
 * four metrics, and for each arm against the first (the control) the
 * absolute and relative lift with a 95 % interval, a two-sided p-value and
 * an always-valid p-value (mixture SPRT), CUPED-adjusted estimates beside
 * the raw ones when units carry pre-experiment revenue, a sample-ratio-
 * mismatch test, and the daily cumulative series for the plot.
 * Formulas and their sources: docs/EXPERIMENTS.md.
 *
 * Metrics (enum wf_exp_metric):
 *   ctr        clicks / exposures         ratio, delta method
 *   atc        carts / exposures          ratio, delta method
 *   conversion mean of converted per unit Welch
 *   revenue_per_unit  mean of revenue     Welch
 *
 * Owner: the caller of wf_exp_report_build() owns the report and frees it
 * with wf_exp_report_free(). Nothing is shared; any thread may build its
 * own report. Library code: never logs. Linked from libweftexp (jansson).
 */
#ifndef WF_EXPSTATS_H
#define WF_EXPSTATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* One randomized unit's totals over the experiment (the contract with
 * attribution in admin). exposures counts RECS/RERANK replies shown to
 * the unit; clicks, carts, purchases those on exposed items within the
 * window; converted (0 or 1) and revenue count any purchase of the unit
 * within the window; pre_revenue is the unit's revenue in the period
 * before the experiment (has_pre = 0 when the unit has no history). */
struct wf_exp_unit {
	uint32_t arm;       /* 0 .. narms-1; 0 is the control */
	uint32_t first_day; /* day index of first exposure since the start */
	double exposures, clicks, carts, purchases, converted /* 0/1 */, revenue,
		pre_revenue /* CUPED covariate */;
	uint8_t has_pre;
};

/* What one day added to one unit's totals (the contract with attribution
 * for the daily series): one record per unit and day with activity, day
 * = whole days since the experiment start. A unit's records over all its
 * days sum to its struct wf_exp_unit totals (exposures, clicks, carts,
 * purchases, converted, revenue); converted is 1 on the day of its first
 * purchase only. Memory: units x active days. */
struct wf_exp_unit_day {
	uint32_t unit; /* index into the units array */
	uint32_t day;  /* >= that unit's first_day, < WF_EXP_MAX_DAYS */
	double exposures, clicks, carts, purchases, converted, revenue;
};

enum wf_exp_metric {
	WF_EXP_CTR = 0,
	WF_EXP_ATC,
	WF_EXP_CONVERSION,
	WF_EXP_REVENUE,
	WF_EXP_NMETRICS
};

#define WF_EXP_MAX_ARMS 16
#define WF_EXP_ARM_NAME 64
#define WF_EXP_SRM_ALPHA 0.001 /* SRM flagged below this p */
#define WF_EXP_MAX_DAYS 4096  /* first_day and record days must be below this */

/* A metric's estimate in one arm: the mean (or the ratio) and its
 * standard error. */
struct wf_exp_est {
	double value, se;
};

struct wf_exp_arm {
	char name[WF_EXP_ARM_NAME];
	double planned_share; /* normalized over the arms (sum 1) */
	uint64_t units;
	double exposures, clicks, carts, purchases, converted, revenue;
	struct wf_exp_est m[WF_EXP_NMETRICS];
};

/* One arm against the control on one metric. */
struct wf_exp_cmp {
	uint32_t metric; /* enum wf_exp_metric */
	uint32_t arm;    /* 1 .. narms-1 */
	double control, treatment;      /* the two estimates */
	double abs, abs_lo, abs_hi;     /* treatment - control, 95 % CI */
	double rel, rel_lo, rel_hi;     /* treatment / control - 1, 95 % CI */
	double se, df;                  /* of abs; df = INFINITY for normal */
	double p;                       /* two-sided, fixed-horizon */
	double p_always_valid;          /* mSPRT, running minimum over days */
	int has_cuped;                  /* the cuped_* fields are set */
	double cuped_abs, cuped_lo, cuped_hi, cuped_p, cuped_p_always_valid;
	double cuped_var_ratio;         /* var(adjusted) / var(raw) of abs */
	double theta;                   /* CUPED coefficient on pre_revenue */
};

/* The cumulative comparison at the end of day d, what a report run then
 * would have shown: the units first exposed on or before day d, each with
 * its outcomes up to the end of day d (its records of days <= d). The
 * last day's comparisons are the report's. */
struct wf_exp_day {
	uint32_t day;
	uint64_t units;
	/* cmp[(arm - 1) * WF_EXP_NMETRICS + metric] */
	struct wf_exp_cmp *cmp;
};

struct wf_exp_report {
	uint32_t narms;
	uint64_t units;
	struct wf_exp_arm arm[WF_EXP_MAX_ARMS];
	/* (narms - 1) * WF_EXP_NMETRICS comparisons, arm-major */
	size_t ncmp;
	struct wf_exp_cmp *cmp;
	double srm_chi2, srm_p;
	int srm_flag; /* srm_p < WF_EXP_SRM_ALPHA */
	int has_pre;  /* some unit has pre-experiment data */
	double tau_rel; /* mSPRT mixing sd, relative to the control's mean */
	uint32_t ndays;
	struct wf_exp_day *days;
};

/* Name of a metric as used in JSON and the text table ("ctr", "atc",
 * "conversion", "revenue_per_unit"); NULL when out of range. */
const char *wf_exp_metric_name(uint32_t metric);

/* Build the report of n units over narms arms (2 .. WF_EXP_MAX_ARMS).
 * arm_names: narms strings (NULL: "arm0", "arm1", ...; names longer than
 * WF_EXP_ARM_NAME - 1 bytes are cut). planned_share: narms weights, which
 * need not sum to 1 (a share may stay outside the experiment); NULL means
 * equal shares. Units whose arm >= narms are ignored.
 * Returns 0 and *ret; -EINVAL (narms out of range, a share negative or
 * all zero, a first_day >= WF_EXP_MAX_DAYS), -ENOMEM. Statistics undefined for lack of data (an arm with
 * fewer than 2 units, no exposures) come out as NAN, never an error. */
int wf_exp_report_build(const struct wf_exp_unit *u, size_t n, uint32_t narms,
			const char *const *arm_names, const double *planned_share,
			struct wf_exp_report **ret);

/* The same report with the daily series from what each day added: ud,
 * nud records sorted by day (attribution's output, wf_exp_attr_run_daily()
 * in lib/exp_attr.h), so day d's point uses only outcomes up to day d.
 * The final estimates come from the units' totals, as in
 * wf_exp_report_build(), which is this with one record per unit holding
 * its totals on its first day (a series that is only right when every
 * outcome falls on the unit's first day). Records of units whose arm >=
 * narms are ignored. -EINVAL also for a record out of order, of a unit >=
 * n, or of a day before its unit's first_day or >= WF_EXP_MAX_DAYS. */
int wf_exp_report_build_daily(const struct wf_exp_unit *u, size_t n,
			      const struct wf_exp_unit_day *ud, size_t nud, uint32_t narms,
			      const char *const *arm_names, const double *planned_share,
			      struct wf_exp_report **ret);

/* The report as JSON: {"units", "arms": {name: {units, exposures, ctr, atc,
 * conversion, revenue_per_unit, ...}}, "comparisons": [{metric, arm,
 * lift: {absolute, relative}, ci: {absolute: [lo, hi], relative: [lo, hi]},
 * p, p_always_valid, cuped?: {...}}], "srm_p", "srm_flag", "daily": [...]}.
 * NaN/inf come out as null. NULL only when out of memory. */
json_t *wf_exp_report_json(const struct wf_exp_report *r);

/* The report as a text table, at most 80 columns wide. */
void wf_exp_report_text(const struct wf_exp_report *r, FILE *f);

/* Draw the daily cumulative relative lift of each arm against the control
 * with its 95 % interval (one panel per metric) into png_path, by running
 * gnuplot. 0; -ENOENT gnuplot missing; -ENODATA no day to draw; -errno of
 * popen/pclose; -EIO gnuplot failed. */
int wf_exp_report_plot(const struct wf_exp_report *r, const char *png_path);

/* Free a report (NULL is fine). */
void wf_exp_report_free(struct wf_exp_report *r);

/*
 * Distributions (expstats_num.c), exposed for tests and tools. Accurate to
 * about 1e-12 relative in the body, 1e-300 absolute in the tails.
 */
double wf_exp_norm_cdf(double x);
double wf_exp_norm_sf(double x);      /* 1 - cdf, accurate in the upper tail */
double wf_exp_norm_quantile(double p); /* 0 < p < 1; else -inf/inf/NaN */
double wf_exp_t_cdf(double t, double df);  /* df > 0; INFINITY = normal */
double wf_exp_t_quantile(double p, double df);
double wf_exp_chi2_sf(double x, double k); /* upper tail P(X >= x), k > 0 */
double wf_exp_gamma_p(double a, double x); /* regularized lower gamma */
double wf_exp_gamma_q(double a, double x); /* 1 - P */
double wf_exp_beta_inc(double a, double b, double x); /* regularized I_x(a,b) */

/* The mixture-SPRT always-valid p-value for one look (not yet the running
 * minimum): an estimate est of a normal mean difference with variance var,
 * against 0, with a N(0, tau2) mixture. min(1, 1 / Lambda). */
double wf_exp_msprt_p(double est, double var, double tau2);

#endif
