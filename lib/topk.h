/*
 * topk.h - scores summed over a dense id space, and the best k of them.
 *
 * struct wf_acc adds scores into one float per id (ids 0..n-1, e.g. item
 * numbers) and lists the ids it touched, so clearing costs what was
 * touched, not n. struct wf_topk keeps the k best (id, score) pairs seen
 * in a bounded min-heap and sorts them best first; ties go to the lower
 * id, so the order is reproducible whatever the order of the pushes.
 * The pairs are struct wf_snap_cand, the snapshot's own record, so a
 * finished list can be copied into a section as it is.
 *
 * Owner: the caller (one per thread; nothing is shared or locked).
 * Used by weft-batch's model stages; library code, never logs.
 */
#ifndef WF_TOPK_H
#define WF_TOPK_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/snapshot.h"

struct wf_acc {
	float *v;          /* the sum per id; 0 = untouched */
	uint32_t *touched; /* ids with v != 0, in the order first touched */
	uint32_t n;        /* entries of touched */
};

/* Room for ids 0..nids-1, all zero. 0 or -ENOMEM; in either case
 * wf_acc_fini() frees what was allocated. */
int wf_acc_init(struct wf_acc *a, uint32_t nids);
void wf_acc_fini(struct wf_acc *a);

/* v[id] += x; id < nids. A sum that comes out exactly 0 is kept as
 * 1e-30 so the id stays listed once (a selection drops scores <= 0). */
static inline void wf_acc_add(struct wf_acc *a, uint32_t id, float x)
{
	if (a->v[id] == 0.0f)
		a->touched[a->n++] = id;
	a->v[id] += x;
	if (a->v[id] == 0.0f)
		a->v[id] = 1e-30f;
}

/* Zero every touched id and forget the list. */
void wf_acc_clear(struct wf_acc *a);

/* The k best pushed pairs, in h[0..n) (caller's memory, k entries).
 * Set up with { buf, 0, k }. */
struct wf_topk {
	struct wf_snap_cand *h;
	uint32_t n, k;
};

/* Offer (item, score); a score not above 0 (or NaN) is never kept. */
void wf_topk_push(struct wf_topk *t, uint32_t item, float score);

/* Sort h[0..n) best first (score descending, then item ascending) and
 * return n. The heap is spent: push nothing more before resetting n. */
uint32_t wf_topk_finish(struct wf_topk *t);

#endif
