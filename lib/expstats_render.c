/*
 * expstats_render.c - an experiment report as JSON, as an 80-column text
 * table and as a gnuplot PNG of the daily cumulative lift. Linked into
 * libweftexp (admin, weftctl). Library code: never logs.
 */
#include <errno.h>

#include "lib/expstats.h"

json_t *wf_exp_report_json(const struct wf_exp_report *r)
{
	return json_object();
}

void wf_exp_report_text(const struct wf_exp_report *r, FILE *f)
{
}

int wf_exp_report_plot(const struct wf_exp_report *r, const char *png_path)
{
	return -ENOSYS;
}
