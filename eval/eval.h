/*
 * eval.h - weft-eval's parts: options, replay in process, replay through a
 * running appliance, weight tuning. Private to eval/.
 */
#ifndef WF_EVAL_H
#define WF_EVAL_H

#include <stddef.h>

#include "eval/eval_int.h"
#include "lib/rank/rank.h"

struct eval_opts {
	const char *events, *catalog, *live, *plot;
	uint32_t k;
	int threads, quiet, tune_model;
	double valid_days;
	struct wf_rank_params params;
	float w[2][2]; /* [returning|new][batch|session], page home */
};

/* The weights the appliance starts with (the seeds' 40/60 and 10/90). */
void eval_default_weights(struct eval_opts *o);

/* Replay sessions starting in [from, to) against snap; fills *res. */
void eval_replay(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from,
		 int64_t to, struct eval_result *res);

/* Choose o->w on the validation window [from, to) (grid search on MRR@k). */
void eval_tune(struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from, int64_t to);

/* The session and hybrid variants again, through the appliance at o->live. */
int eval_live(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, const char *snap_path,
	      int64_t from, struct eval_result *res);

void eval_find_prog(const char *name, const char *subdir, char *out, size_t n);

#endif
