/*
 * baselines.h - the published session-based methods that weft-eval
 * reports beside weft's own variants: V-SkNN, association rules and
 * sequential rules, as defined in Ludewig & Jannach 2018, "Evaluation of
 * session-based recommendation algorithms" (the session-rec framework).
 * For evaluation only: nothing here is served. Private to eval/; linked
 * only into weft-eval.
 *
 * The methods learn from the same training events as weft-batch (every
 * event before the split) and answer the same predictions as weft's
 * variants: after each event of a test session, where their list of
 * `depth` items would put the next item. A method's session is the
 * sequence of items the shopper looked at (events of the types that are
 * prediction targets, eval_is_target()). None of them filters the items
 * the session has already viewed (as in session-rec). Ties are broken by
 * item index, so the numbers do not depend on threads or on hash order.
 *
 * Items are numbered as in the snapshot (so a baseline's answer and a
 * prediction's target compare as weft's do); an item of the log that the
 * snapshot lacks gets a number after the snapshot's and can be
 * recommended but never be a hit, exactly as for weft.
 */
#ifndef WF_EVAL_BASELINES_H
#define WF_EVAL_BASELINES_H

#include <stdint.h>

#include "eval/eval_int.h"
#include "lib/snapshot.h"

enum eval_base_method { EB_SKNN, EB_AR, EB_SR, EB_NMETHODS };

#define EVAL_SR_STEPS 10u /* sequential rules: b at most 10 steps after a (session-rec's default) */

/* V-SkNN's hyper-parameters (chosen per log on the validation days). */
struct eval_sknn_params {
	uint32_t k;      /* neighbours that score items (published default 100) */
	uint32_t sample; /* the m most recent sessions sharing an item with the current one (500) */
	int linear;      /* position weights: 0 = i/L (session-rec's default, 'div'), 1 = 1 - 0.1 (L - i) */
	int step_decay;  /* 1: a neighbour's score is divided by how many steps back the most recent
			  * item it shares with the session is (session-rec's weighting_score 'div') */
};

/* The published defaults: k 100, sample 500, weights i/L, no step decay. */
void eval_sknn_params_default(struct eval_sknn_params *kp);

/* The trained methods: read-only once built, shared by the replay
 * threads. Owner: the caller (eval_base_destroy()). */
struct eval_base;

/*
 * Train the three methods on the events of log with ts < before, numbering
 * items as snap does. depth (1..EVAL_MAX_K) is the longest list a
 * prediction asks for: the rule lists keep their best depth items.
 * Returns 0 and *ret, -ENOMEM, or -ENODATA (no training event with an
 * item).
 */
int eval_base_build(const struct eval_log *log, const struct wf_snap *snap, int64_t before, uint32_t depth,
		    struct eval_base **ret);
void eval_base_destroy(struct eval_base *b); /* accepts NULL */

/* The method's number for interned item id str (an eval_event's item), or
 * UINT32_MAX when str never names an item the methods know. */
uint32_t eval_base_item(const struct eval_base *b, uint32_t str);

/* Summary for the report: training sessions, items, rules kept. */
void eval_base_stats(const struct eval_base *b, uint64_t *ret_sessions, uint64_t *ret_items, uint64_t *ret_rules);

/* One replay thread's working memory and its current test session. */
struct eval_base_sess;

int eval_base_sess_create(const struct eval_base *b, const struct eval_sknn_params *kp, struct eval_base_sess **ret);
void eval_base_sess_destroy(struct eval_base_sess *s); /* accepts NULL */
void eval_base_sess_reset(struct eval_base_sess *s);   /* a new test session starts */

/* The shopper looked at item (eval_base_item(); UINT32_MAX is ignored). */
void eval_base_sess_add(const struct eval_base *b, struct eval_base_sess *s, uint32_t item);

/*
 * Where each method's list (of the depth given to eval_base_build) puts
 * target (a snapshot item index; -1 never hits): ret_pos[m] is its 0-based
 * rank for method m (enum eval_base_method), or -1 when it is not in the
 * list. An empty session recommends nothing.
 */
void eval_base_positions(const struct eval_base *b, struct eval_base_sess *s, int64_t target,
			 int32_t ret_pos[EB_NMETHODS]);

#endif
