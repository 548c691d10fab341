/*
 * expstats_render.c - an experiment report as JSON (jansson), as a text
 * table at most 80 columns wide, and as a PNG of the daily cumulative
 * relative lift with its 95 % interval (gnuplot, one panel per metric).
 * Linked into libweftexp (admin, weftctl). Library code: never logs.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "lib/expstats.h"

/* A number, or null when it is NaN or infinite (JSON has neither). */
static json_t *num(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

static json_t *pair(double a, double b)
{
	return json_pack("[oo]", num(a), num(b));
}

static json_t *arm_json(const struct wf_exp_arm *a)
{
	json_t *o = json_pack("{sIsosososososo}", "units", (json_int_t)a->units,
			      "planned_share", num(a->planned_share), "exposures", num(a->exposures),
			      "clicks", num(a->clicks), "carts", num(a->carts),
			      "purchases", num(a->purchases), "revenue", num(a->revenue));
	json_t *se = json_object();

	if (!o || !se) {
		json_decref(o);
		json_decref(se);
		return NULL;
	}
	for (uint32_t m = 0; m < WF_EXP_NMETRICS; m++) {
		json_object_set_new(o, wf_exp_metric_name(m), num(a->m[m].value));
		json_object_set_new(se, wf_exp_metric_name(m), num(a->m[m].se));
	}
	json_object_set_new(o, "converted", num(a->converted));
	json_object_set_new(o, "se", se);
	return o;
}

static json_t *cmp_json(const struct wf_exp_report *r, const struct wf_exp_cmp *c, int full)
{
	json_t *o = json_pack("{sssssos{soso}s{soso}soso}", "metric", wf_exp_metric_name(c->metric),
			      "arm", r->arm[c->arm].name, "control", num(c->control), "lift",
			      "absolute", num(c->abs), "relative", num(c->rel), "ci",
			      "absolute", pair(c->abs_lo, c->abs_hi), "relative",
			      pair(c->rel_lo, c->rel_hi), "p", num(c->p), "p_always_valid",
			      num(c->p_always_valid));

	if (!o)
		return NULL;
	json_object_set_new(o, "treatment", num(c->treatment));
	if (!full)
		return o;
	json_object_set_new(o, "control_arm", json_string(r->arm[0].name));
	json_object_set_new(o, "se", num(c->se));
	json_object_set_new(o, "df", num(c->df));
	json_object_set_new(o, "method", json_string(c->metric <= WF_EXP_ATC ? "delta" : "welch"));
	if (c->has_cuped)
		json_object_set_new(o, "cuped",
				    json_pack("{sosososososo}", "absolute", num(c->cuped_abs), "ci",
					      pair(c->cuped_lo, c->cuped_hi), "p", num(c->cuped_p),
					      "p_always_valid", num(c->cuped_p_always_valid),
					      "var_ratio", num(c->cuped_var_ratio), "theta",
					      num(c->theta)));
	return o;
}

static json_t *days_json(const struct wf_exp_report *r)
{
	json_t *days = json_array();

	for (uint32_t d = 0; days && d < r->ndays; d++) {
		json_t *cs = json_array();

		for (size_t i = 0; cs && i < r->ncmp; i++)
			json_array_append_new(cs, cmp_json(r, &r->days[d].cmp[i], 0));
		json_array_append_new(days, json_pack("{sIsIso}", "day", (json_int_t)d, "units",
						      (json_int_t)r->days[d].units, "comparisons",
						      cs ? cs : json_null()));
	}
	return days;
}

json_t *wf_exp_report_json(const struct wf_exp_report *r)
{
	json_t *o = json_object(), *arms = json_object(), *cmps = json_array();

	if (!o || !arms || !cmps)
		goto fail;
	for (uint32_t a = 0; a < r->narms; a++)
		json_object_set_new(arms, r->arm[a].name, arm_json(&r->arm[a]));
	for (size_t i = 0; i < r->ncmp; i++)
		json_array_append_new(cmps, cmp_json(r, &r->cmp[i], 1));
	json_object_set_new(o, "units", json_integer((json_int_t)r->units));
	json_object_set_new(o, "control", json_string(r->arm[0].name));
	json_object_set_new(o, "arms", arms);
	json_object_set_new(o, "comparisons", cmps);
	json_object_set_new(o, "srm_chi2", num(r->srm_chi2));
	json_object_set_new(o, "srm_p", num(r->srm_p));
	json_object_set_new(o, "srm_flag", json_boolean(r->srm_flag));
	json_object_set_new(o, "msprt_tau_relative", num(r->tau_rel));
	json_object_set_new(o, "days", json_integer(r->ndays));
	json_object_set_new(o, "daily", days_json(r));
	return o;
fail:
	json_decref(o);
	json_decref(arms);
	json_decref(cmps);
	return NULL;
}

/* A p-value in 8 columns: 0.0123, 1.2e-05, or "-" when undefined. */
static const char *pfmt(char *buf, size_t len, double p)
{
	if (isnan(p))
		snprintf(buf, len, "-");
	else if (p < 1e-99)
		snprintf(buf, len, "<1e-99");
	else if (p >= 0.001)
		snprintf(buf, len, "%.4f", p);
	else
		snprintf(buf, len, "%.1e", p);
	return buf;
}

/* x with fmt (one conversion, scaled by mul), or "-" when undefined. */
static const char *xfmt(char *buf, size_t len, const char *fmt, double x, double mul)
{
	if (isfinite(x))
		snprintf(buf, len, fmt, mul * x);
	else
		snprintf(buf, len, "-");
	return buf;
}

static void text_arms(const struct wf_exp_report *r, FILE *f)
{
	fprintf(f, "%-14s %6s %8s %9s %8s %8s %8s %10s\n", "arm", "share", "units", "exposures",
		"ctr", "atc", "conv", "rev/unit");
	for (uint32_t a = 0; a < r->narms; a++) {
		const struct wf_exp_arm *ar = &r->arm[a];

		char b[4][32];

		fprintf(f, "%-14.14s %5.1f%% %8llu %9.0f %8s %8s %8s %10s\n", ar->name,
			100 * ar->planned_share, (unsigned long long)ar->units, ar->exposures,
			xfmt(b[0], sizeof(b[0]), "%.3f%%", ar->m[WF_EXP_CTR].value, 100),
			xfmt(b[1], sizeof(b[1]), "%.3f%%", ar->m[WF_EXP_ATC].value, 100),
			xfmt(b[2], sizeof(b[2]), "%.3f%%", ar->m[WF_EXP_CONVERSION].value, 100),
			xfmt(b[3], sizeof(b[3]), "%.3f", ar->m[WF_EXP_REVENUE].value, 1));
	}
}

/* One comparison: the absolute lift line, then relative and CUPED. */
static void text_cmp(const struct wf_exp_cmp *c, FILE *f)
{
	static const char *const label[WF_EXP_NMETRICS] = { "ctr", "atc", "conv", "rev/unit" };
	char p1[16], p2[16];
	int sig = c->abs_lo > 0 || c->abs_hi < 0;

	if (!isfinite(c->abs) || !isfinite(c->abs_lo) || !isfinite(c->abs_hi)) {
		fprintf(f, "%-9s %11s  (too few units or exposures in an arm to compare)\n",
			label[c->metric], "-");
		return;
	}
	fprintf(f, "%-9s %+11.4g  [%+11.4g, %+11.4g] %8s %8s%s\n", label[c->metric], c->abs,
		c->abs_lo, c->abs_hi, pfmt(p1, sizeof(p1), c->p),
		pfmt(p2, sizeof(p2), c->p_always_valid), sig ? " *" : "");
	fprintf(f, "%-9s %+10.2f%%  [%+10.2f%%, %+10.2f%%]\n", "  rel", 100 * c->rel,
		100 * c->rel_lo, 100 * c->rel_hi);
	if (c->has_cuped)
		fprintf(f, "%-9s %+11.4g  [%+11.4g, %+11.4g] %8s %8s%s var x%.2f\n", "  CUPED",
			c->cuped_abs, c->cuped_lo, c->cuped_hi, pfmt(p1, sizeof(p1), c->cuped_p),
			pfmt(p2, sizeof(p2), c->cuped_p_always_valid),
			c->cuped_lo > 0 || c->cuped_hi < 0 ? " *" : "", c->cuped_var_ratio);
}

void wf_exp_report_text(const struct wf_exp_report *r, FILE *f)
{
	char p1[16];

	if (!f)
		return;
	fprintf(f, "%llu units in %u arms over %u days; SRM p = %s%s\n",
		(unsigned long long)r->units, r->narms, r->ndays, pfmt(p1, sizeof(p1), r->srm_p),
		r->srm_flag ? "  ** SAMPLE RATIO MISMATCH: do not trust the lifts **" :
		isnan(r->srm_p) ? " (no units yet)" : " (ok)");
	text_arms(r, f);
	for (uint32_t a = 1; a < r->narms; a++) {
		fprintf(f, "\n%.30s vs %.30s (95 %% CI; p fixed-horizon, p(av) always-valid)\n",
			r->arm[a].name, r->arm[0].name);
		fprintf(f, "%-9s %11s  %-26s %8s %8s\n", "metric", "lift", "95 % CI", "p", "p(av)");
		for (uint32_t m = 0; m < WF_EXP_NMETRICS; m++)
			text_cmp(&r->cmp[(a - 1) * WF_EXP_NMETRICS + m], f);
	}
	fprintf(f, "\n* CI excludes 0. ctr, atc per exposure (delta method); conv, rev/unit\n"
		   "per unit (Welch). Formulas: docs/EXPERIMENTS.md.\n");
}

/* One datablock per (metric, arm): day, relative lift, its interval, in %. */
static void plot_blocks(const struct wf_exp_report *r, FILE *g)
{
	for (size_t i = 0; i < r->ncmp; i++) {
		fprintf(g, "$d%zu << EOD\n", i);
		for (uint32_t d = 0; d < r->ndays; d++) {
			const struct wf_exp_cmp *c = &r->days[d].cmp[i];

			if (isfinite(c->rel) && isfinite(c->rel_lo) && isfinite(c->rel_hi))
				fprintf(g, "%u %.6g %.6g %.6g\n", d + 1, 100 * c->rel, 100 * c->rel_lo,
					100 * c->rel_hi);
		}
		fputs("EOD\n", g);
	}
}

int wf_exp_report_plot(const struct wf_exp_report *r, const char *png_path)
{
	static const char *const colours[] = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd",
					       "#ff7f0e", "#8c564b" };
	FILE *g;
	int st;

	if (r->ndays == 0 || r->ncmp == 0)
		return -ENODATA;
	if (strchr(png_path, '\'') || strchr(png_path, '\n'))
		return -EINVAL;
	g = popen("exec gnuplot 2>/dev/null", "we");
	if (!g)
		return -errno;
	fprintf(g, "set terminal pngcairo size 1200,800 noenhanced\nset output '%s'\n", png_path);
	plot_blocks(r, g);
	fprintf(g, "set multiplot layout 2,2 title 'cumulative relative lift vs %s, 95 %% CI'\n"
		   "set grid\nset xlabel 'day'\nset ylabel 'lift %%'\nset key left top\n"
		   "set xrange [0.5:%u.5]\nset xtics %u\n", r->arm[0].name, r->ndays,
		r->ndays <= 20 ? 1 : (r->ndays + 9) / 10);
	for (uint32_t m = 0; m < WF_EXP_NMETRICS; m++) {
		fprintf(g, "set title '%s'\nplot 0 notitle lc rgb 'black' dt 2", wf_exp_metric_name(m));
		for (uint32_t a = 1; a < r->narms; a++) {
			size_t i = (size_t)(a - 1) * WF_EXP_NMETRICS + m;
			const char *col = colours[(a - 1) % (sizeof(colours) / sizeof(colours[0]))];

			fprintf(g, ", $d%zu using 1:3:4 with filledcurves fs transparent solid 0.2 "
				   "lc rgb '%s' notitle, $d%zu using 1:2:3:4 with yerrorbars pt 7 "
				   "lc rgb '%s' notitle, $d%zu using 1:2 with lines lw 2 lc rgb '%s' "
				   "title '%s'", i, col, i, col, i, col, r->arm[a].name);
		}
		fputc('\n', g);
	}
	fputs("unset multiplot\n", g);
	st = pclose(g);
	if (st < 0)
		return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return -ENOENT;
	return st == 0 ? 0 : -EIO;
}
