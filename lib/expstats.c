/*
 * expstats.c - per-arm estimates, comparisons against the control, CUPED,
 * the sample-ratio-mismatch test and the daily cumulative series of an
 * experiment report (formulas: docs/EXPERIMENTS.md). Linked into
 * libweftexp (admin, weftctl, tests). Library code: never logs.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "lib/expstats.h"

const char *wf_exp_metric_name(uint32_t metric)
{
	static const char *const names[WF_EXP_NMETRICS] = {
		"ctr", "atc", "conversion", "revenue_per_unit"
	};

	return metric < WF_EXP_NMETRICS ? names[metric] : NULL;
}

int wf_exp_report_build(const struct wf_exp_unit *u, size_t n, uint32_t narms,
			const char *const *arm_names, const double *planned_share,
			struct wf_exp_report **ret)
{
	return -ENOSYS; /* filled in by the next commit */
}

void wf_exp_report_free(struct wf_exp_report *r)
{
	if (!r)
		return;
	for (uint32_t d = 0; d < r->ndays; d++)
		free(r->days[d].cmp);
	free(r->days);
	free(r->cmp);
	free(r);
}
