/*
 * eval.h - weft-eval's parts: options, replay in process, replay through a
 * running appliance, weight tuning. Private to eval/.
 */
#ifndef WF_EVAL_H
#define WF_EVAL_H

#include <stddef.h>

#include "eval/baselines.h"
#include "eval/eval_int.h"
#include "lib/rank/rank.h"

struct eval_opts {
	const char *events, *catalog, *live, *plot;
	uint32_t k;
	uint32_t depth; /* recommendations asked per prediction: k, or EVAL_MAX_K for --plot */
	int threads, quiet;
	int live_force; /* --live-force: --live on an appliance that serves */
	double valid_days;
	struct wf_rank_params params;
	struct eval_sknn_params sknn;
	float w[2][2]; /* [returning|new][batch|session], page home */
};

/* The weights the appliance starts with (the seeds' 40/60 and 10/90). */
void eval_default_weights(struct eval_opts *o);

/*
 * The log's sessions as CSR over the time-sorted events: the events of
 * session s are log->ev[order[off[s]] .. order[off[s+1] - 1]], in time
 * order; first[s] is its first timestamp. test[0..ntest) are the sessions
 * that start in [from, to) with at least two events. str_item / str_user
 * map every interned id to its snapshot item / user index, or -1. Owner:
 * the caller (eval_sessions_free()).
 */
struct eval_sessions {
	uint64_t *off, *order;
	int64_t *first;
	uint32_t *test, ntest;
	int64_t *str_item, *str_user;
};

/* Returns 0 or -ENOMEM (then *ss is empty). */
int eval_sessions_build(const struct eval_log *log, const struct wf_snap *snap, int64_t from, int64_t to,
			struct eval_sessions *ss);
void eval_sessions_free(struct eval_sessions *ss); /* takes an empty or partial one */

/* 1 when an event of this type is a prediction target (a next item the
 * shopper looked at: view, click, pdp, cart_add, purchase). */
int eval_is_target(int type);

/* Count one prediction in m: a hit at the target's rank in items[0..n). */
void eval_score(struct eval_metrics *m, const uint32_t *items, size_t n, int64_t target);
/* The same, given the target's rank in the list (-1: not in it). */
void eval_score_at(struct eval_metrics *m, int32_t rank);

/* Which variants a replay computes. */
enum { EVAL_PASS_WEFT = 1, EVAL_PASS_BASE = 2 };

/*
 * Replay sessions starting in [from, to) against snap; fills *res. passes:
 * EVAL_PASS_WEFT (weft's variants) and/or EVAL_PASS_BASE (the baselines
 * in base, timed apart; base may be NULL without it). Exits on out of
 * memory.
 */
void eval_replay(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap,
		 const struct eval_base *base, int64_t from, int64_t to, int passes, struct eval_result *res);

/* Train the baselines on the events before `before` (eval_base_build()),
 * with a line on stderr unless o->quiet. Exits on failure. */
struct eval_base *eval_base_train(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap,
				  int64_t before, double *ret_secs);

/* Choose o->sknn on the validation window [from, to) (by MRR@k). */
void eval_tune_sknn(struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from,
		    int64_t to);

/* Choose o->w on the validation window [from, to) (grid search on MRR@k). */
void eval_tune(struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from, int64_t to);

/* The session and hybrid variants again, through the appliance at o->live. */
int eval_live(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, const char *snap_path,
	      int64_t from, struct eval_result *res);

void eval_find_prog(const char *name, const char *subdir, char *out, size_t n);

#endif
