/*
 * eval_int.h - weft-eval internals: the replayed event log, the split, the
 * per-variant metrics. Private to eval/; linked only into weft-eval.
 */
#ifndef WF_EVAL_INT_H
#define WF_EVAL_INT_H

#include <stdint.h>

#include "lib/snapshot.h"
#include "lib/util.h"

#define EVAL_MAX_K 50u /* HR@k is reported for k = 1..50 (the plot) */

/* weft's variants, then the published baselines (eval/baselines.h). */
enum eval_variant { EV_POPULARITY, EV_BATCH, EV_SESSION, EV_HYBRID, EV_SKNN, EV_AR, EV_SR, EV_NVARIANTS };
#define EV_NWEFT EV_SKNN /* variants [0, EV_NWEFT) are weft's */

/*
 * Slices, in pairs that split every prediction: the shopper (returning:
 * history before the split; new: anonymous or unknown), the next click
 * (repeat: an item this session already looked at; novel: one it has
 * not), the moment (first: the prediction after the session's first
 * event; later). pivot: sessions where weft's session model saw an intent
 * pivot (not a pair).
 */
enum eval_slice {
	SL_ALL, SL_RETURNING, SL_NEW, SL_REPEAT, SL_NOVEL, SL_FIRST, SL_LATER, SL_PIVOT, SL_NSLICES
};

/* One event of the log. Strings are offsets into the log's arena. */
struct eval_event {
	int64_t ts_ms;
	uint32_t user;    /* interned user id, or UINT32_MAX (anonymous) */
	uint32_t item;    /* interned item id, or UINT32_MAX (search without item) */
	uint32_t session; /* dense session number */
	uint8_t type;     /* enum wf_event_type */
	uint8_t pad[3];
	uint32_t value;   /* dwell ms, scroll depth, qty */
	uint32_t seq;     /* row order in the file: ties in ts keep it */
};

struct eval_log {
	struct wf_buf arena;      /* interned strings */
	uint64_t *str_off;        /* per interned string */
	uint32_t *str_len;
	uint32_t nstr, cap_str;
	uint32_t *slots;          /* intern table: index + 1 */
	uint32_t mask;
	struct eval_event *ev;
	uint64_t nev, cap_ev;
	uint64_t bad_rows;
	uint32_t nsessions;
	char header[256];
};

/* Hits by rank: hits[r] counts predictions whose target came at rank r
 * (0-based, < EVAL_MAX_K); preds counts predictions. */
struct eval_metrics {
	uint64_t preds;
	uint64_t hits[EVAL_MAX_K];
};

struct eval_result {
	struct eval_metrics m[EV_NVARIANTS][SL_NSLICES];
	uint64_t events, test_sessions, pivot_sessions;
	uint64_t next_is_last; /* predictions whose target is the item the session looked at last */
	double replay_secs;
	double replay_cpu_secs; /* summed over the replay threads */
	/* the baselines' pass (0 when it did not run) */
	double base_build_secs, base_secs, base_cpu_secs;
	uint64_t base_sessions, base_items, base_rules; /* what they learned from */
};

const char *eval_variant_name(int v);
const char *eval_slice_name(int s);
double eval_hr(const struct eval_metrics *m, uint32_t k);
double eval_mrr(const struct eval_metrics *m, uint32_t k);

/* eval_log.c */
int eval_log_read(struct eval_log *log, const char *path, int quiet);
void eval_log_fini(struct eval_log *log);
const char *eval_str(const struct eval_log *log, uint32_t id, uint32_t *ret_len);

#endif
