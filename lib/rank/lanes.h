/*
 * lanes.h - the model's float operations, four pool entries at a time
 * (libweftrank's internal kernels, always inlined into rank.c's and
 * live.c's loops so that every caller computes the same bits); not
 * installed, included only in lib/rank/.
 */
#ifndef WF_RANK_LANES_H
#define WF_RANK_LANES_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lib/rank/rank.h"
#include "lib/rank/rank_int.h"
#include "lib/util.h"

/*
 * Scoring, four pool entries at a time (GCC vector extensions: SSE2 on
 * x86-64), one lane per entry, each lane doing the float operations of
 * the model in the order rank.h gives; a part that does not apply is +0,
 * which changes no sum (the affinity sum starts at +0 and so is never
 * -0), so a lane's score is the same bit for bit whatever its neighbours.
 * An entry's category and brand evidence is one load each from the
 * session's tables by index (when the snapshot's names fit them), else
 * an or of masked compares against every row of its table (no search, no
 * branch); its band's, a load. Any list of entries (score_list(): the cart's complements
 * once lifted, RERANK's items, EXPLAIN's parts) goes four at a time
 * through the same code, its last lanes repeating its last entry.
 */
typedef uint32_t v4u __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v4f __attribute__((vector_size(16)));
typedef float v4f_u __attribute__((vector_size(16), aligned(4))); /* at any float */

static const v4f zero4 = { 0, 0, 0, 0 };

/* a where m is set, else +0 */
static inline v4f v4_keep(v4i m, v4f a)
{
	return (v4f)(m & (v4i)a);
}

/* Whether any lane of the mask m is set: two shuffles and ors (reading
 * the four lanes one by one cost a shuffle and a move each) */
static inline int v4_any(v4i m)
{
	m |= __builtin_shufflevector(m, m, 2, 3, 0, 1);
	m |= __builtin_shufflevector(m, m, 1, 0, 3, 2);
	return m[0] != 0;
}

/* WF_MIN(a, 1.0f) per lane */
static inline v4f v4_min1(v4f a)
{
	const v4f one = { 1.0f, 1.0f, 1.0f, 1.0f };
	v4i m = a < one;

	return (v4f)((m & (v4i)a) | (~m & (v4i)one));
}

/* The value of the table row in [from, to) whose key equals key's, per
 * lane, or +0. */
static inline v4f v4_lookup(const struct wf_rank_scratch *w, uint32_t from, uint32_t to, v4u key)
{
	v4u acc = { 0, 0, 0, 0 };

	for (uint32_t j = from; j < to; j++) {
		v4u k, v;
		memcpy(&k, w->ev_key[j], sizeof(k));
		memcpy(&v, w->ev_val[j], sizeof(v));
		acc |= (v4u)(key == k) & v;
	}
	return (v4f)acc;
}

/* a[x[0..4)] as lanes; a + x[0] when the entries are consecutive. */
static inline __attribute__((always_inline)) v4f v4_load(const float *a, const uint32_t *x, int consecutive)
{
	v4f v;

	if (consecutive)
		memcpy(&v, &a[x[0]], sizeof(v));
	else
		v = (v4f){ a[x[0]], a[x[1]], a[x[2]], a[x[3]] };
	return v;
}

/* What the scoring reads of the model, the query and its session, read
 * once per loop into a local: a store to w->score might alias any float
 * behind a pointer, as far as the compiler knows, and each block would
 * load them again (and recompute the products). ew[f]: feature f's
 * weight times its scale, what score4() multiplies the feature by. */
struct consts {
	const struct wf_rank_session *s;
	int aff, penalty, near;  /* session affinity, repeat-look penalty; near: 2 session, 1 anchor only */
	uint32_t cat_end, brand_end;  /* the evidence table's category and brand rows end here */
	uint32_t direct, dcats, dbrands; /* evidence by index (w->ev_direct) */
	float neg_penalty_seen, c_lift; /* c_lift: as score4() multiplies by it */
	float ew[WF_RANK_NFEAT];
	v4f ew4[WF_RANK_NFEAT]; /* ew[f] in four lanes: score4() multiplies by these (not a broadcast per block) */
};


/* The visitor type whose weights score q: returning when it has a batch list. */
static inline int query_visitor(const struct wf_rank_query *q)
{
	return q->cands && q->ncands ? WF_VISITOR_RETURNING : WF_VISITOR_NEW;
}

/* Each feature's scale (rank.h, struct wf_rank_explain): w_batch on the
 * batch list; w_session times the session's confidence on the rest when
 * there is a list to blend against, else 1 (so with no list every query
 * ranks as the session alone does, whatever its weights). */
static inline void feature_scales(const struct wf_rank_query *q, const struct wf_rank_scratch *w, float *ret_batch,
			   float *ret_session)
{
	*ret_batch = q->w_batch;
	*ret_session = query_visitor(q) == WF_VISITOR_NEW ? 1.0f : q->w_session * (q->sess ? w->confidence : 1.0f);
}

static inline __attribute__((always_inline)) struct consts consts_of(const struct wf_snap *snap,
								     const struct wf_rank_params *p,
								     const struct wf_rank_query *q,
								     const struct wf_rank_scratch *w)
{
	const struct wf_rank_session *s = q->sess;
	float wt[WF_RANK_NFEAT], sb, ss;
	struct consts c = {
		.s = s, .aff = s && s->total > 0, .penalty = s && s->total > 0 && p->penalty_seen > 0,
		.near = s ? 2 : q->anchor >= 0,
		.cat_end = w->ncat, .brand_end = w->ncat + w->nbrand,
		.direct = s && w->direct, .dcats = w->dcats, .dbrands = w->dbrands,
		.neg_penalty_seen = -p->penalty_seen,
		.c_lift = p->w_compl + p->w_compl_lift * w->compl_top,
	};

	wf_rank_weights(snap, p, query_visitor(q), wt);
	feature_scales(q, w, &sb, &ss);
	for (uint32_t f = 0; f < WF_RANK_NFEAT; f++) {
		c.ew[f] = (f == WF_RANK_F_BATCH ? sb : ss) * wt[f];
		c.ew4[f] = (v4f){ c.ew[f], c.ew[f], c.ew[f], c.ew[f] };
	}
	return c;
}

/* The features of four entries that do not depend on the query's batch
 * list or weights (multi_score() shares them), unscaled. */
struct parts4 {
	v4f f[WF_RANK_NFEAT]; /* f[WF_RANK_F_BATCH] unused (the query's list) */
	v4f penalty;
};

/* The features of four snapshot items as parts4() has them for an entry
 * that nothing in the session leads to (near features +0) and no
 * repeat-look penalty: what the catalog and the session's evidence say.
 * From the items' 16-byte rows (snap->rows: four loads, transposed to
 * one vector per field) when the snapshot has them, else from the items
 * (the same values: a row holds the item's own floats, its names and
 * band mapped as the clamps below map them). */
_Static_assert(WF_SNAP_ROW_BANDS == WF_RANK_BANDS, "a row's unknown band is the evidence's 0 after the bands");

static inline __attribute__((always_inline)) void item_parts4(const struct wf_snap *snap, const struct consts *k,
							       const struct wf_rank_scratch *w, const uint32_t *item,
							       const struct wf_snap_row *const *rp, struct parts4 *pt)
{
	v4f pop, trend;
	v4u ci, bi, di;

	if (rp || snap->rows) { /* rp: the items' rows (snap->prior_rows'), else snap->rows' */
		v4f r0, r1, r2, r3;
		memcpy(&r0, rp ? rp[0] : &snap->rows[item[0]], sizeof(r0));
		memcpy(&r1, rp ? rp[1] : &snap->rows[item[1]], sizeof(r1));
		memcpy(&r2, rp ? rp[2] : &snap->rows[item[2]], sizeof(r2));
		memcpy(&r3, rp ? rp[3] : &snap->rows[item[3]], sizeof(r3));
		v4f t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5), t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
		v4f t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5), t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
		pop = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
		trend = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
		ci = (v4u)__builtin_shufflevector(t1, t3, 0, 1, 4, 5);
		v4u bb = (v4u)__builtin_shufflevector(t1, t3, 2, 3, 6, 7);
		bi = bb >> 3;
		di = bb & 7;
	} else {
		const struct wf_snap_item *it[4];
		for (uint32_t i = 0; i < 4; i++)
			it[i] = &snap->items[item[i]];
		trend = (v4f){ it[0]->trend, it[1]->trend, it[2]->trend, it[3]->trend };
		pop = (v4f){ it[0]->popularity, it[1]->popularity, it[2]->popularity, it[3]->popularity };
		for (uint32_t i = 0; i < 4; i++) { /* out of range (WF_SNAP_NO_CAT, no band): the 0 after the rows */
			ci[i] = WF_MIN(it[i]->category, k->dcats);
			bi[i] = WF_MIN(it[i]->brand, k->dbrands);
			di[i] = WF_MIN((uint32_t)it[i]->price_band, WF_RANK_BANDS);
		}
	}
	/* (the batch score of a listed item already holds popularity and trend) */
	pt->f[WF_RANK_F_POP] = pop;
	pt->f[WF_RANK_F_TREND] = trend / (1.0f + trend);
	pt->f[WF_RANK_F_CAT] = pt->f[WF_RANK_F_BRAND] = pt->f[WF_RANK_F_BAND] = zero4;
	pt->f[WF_RANK_F_NEIGH] = pt->f[WF_RANK_F_SEQ1] = pt->f[WF_RANK_F_SEQ] = pt->f[WF_RANK_F_REPEAT] = zero4;
	pt->f[WF_RANK_F_BATCH] = pt->penalty = zero4;
	if (k->aff) {
		if (k->direct) { /* (direct: the snapshot's own ncats and nbrands, as its rows map them) */
			const float *t = w->ev_direct, *b = t + k->dcats + 1;
			pt->f[WF_RANK_F_CAT] = (v4f){ t[ci[0]], t[ci[1]], t[ci[2]], t[ci[3]] };
			pt->f[WF_RANK_F_BRAND] = (v4f){ b[bi[0]], b[bi[1]], b[bi[2]], b[bi[3]] };
		} else {
			const struct wf_snap_item *it[4];
			for (uint32_t i = 0; i < 4; i++)
				it[i] = &snap->items[item[i]];
			v4u cat = { it[0]->category, it[1]->category, it[2]->category, it[3]->category };
			v4u brand = { it[0]->brand, it[1]->brand, it[2]->brand, it[3]->brand };
			pt->f[WF_RANK_F_CAT] = v4_lookup(w, 0, k->cat_end, cat);
			pt->f[WF_RANK_F_BRAND] = v4_lookup(w, k->cat_end, k->brand_end, brand);
		}
		pt->f[WF_RANK_F_BAND] = (v4f){ w->band_ev[di[0]], w->band_ev[di[1]], w->band_ev[di[2]], w->band_ev[di[3]] };
	}
}

static inline __attribute__((always_inline)) void parts4(const struct wf_snap *snap, const struct consts *k,
							  const struct wf_rank_scratch *w, const uint32_t *x,
							  int consecutive, struct parts4 *pt)
{
	const uint32_t item[4] = { w->item[x[0]], w->item[x[1]], w->item[x[2]], w->item[x[3]] };

	item_parts4(snap, k, w, item, NULL, pt);
	if (k->penalty) {
		const struct wf_rank_session *s = k->s;
		float seen[4] = { 0, 0, 0, 0 };
		for (uint32_t i = 0; i < 4; i++) {
			uint32_t n = 0;
			for (uint32_t r = 0; r < s->recent_count; r++)
				n += s->recent[recent_slot(s, r)].item == (int32_t)item[i];
			seen[i] = (float)n;
		}
		pt->penalty = k->neg_penalty_seen * (v4f){ seen[0], seen[1], seen[2], seen[3] };
	}
	if (k->near) {
		/* the four entries' sums, one row each, transposed to one
		 * vector per sum */
		v4f r0, r1, r2, r3;
		memcpy(&r0, w->acc[x[0]], sizeof(r0));
		memcpy(&r1, w->acc[x[1]], sizeof(r1));
		memcpy(&r2, w->acc[x[2]], sizeof(r2));
		memcpy(&r3, w->acc[x[3]], sizeof(r3));
		/* (__builtin_shufflevector: GCC 12 and clang both have it) */
		v4f t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5), t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
		v4f t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5), t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
		pt->f[WF_RANK_F_NEIGH] = v4_min1(__builtin_shufflevector(t0, t2, 0, 1, 4, 5));
		pt->f[WF_RANK_F_SEQ1] = v4_min1(__builtin_shufflevector(t0, t2, 2, 3, 6, 7));
		pt->f[WF_RANK_F_SEQ] = v4_min1(__builtin_shufflevector(t1, t3, 0, 1, 4, 5));
		pt->f[WF_RANK_F_REPEAT] = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
	}
}

/* The parts of four scores, as struct wf_rank_explain has them, and each
 * feature's term. */
struct explain4 {
	v4f batch, session, neighbours, trend, complement, penalty;
	v4f term[WF_RANK_NFEAT];
};

/* Four entries' scores for a query from their features, normalised batch
 * scores (< 0: not in its list) and complement scores: the sum of the
 * terms, grouped and in the order rank.h documents (and the parts to ex
 * when non-NULL). */
static inline __attribute__((always_inline)) v4f score4(const struct consts *k, v4f batch, v4f compl,
							 const struct parts4 *pt, struct explain4 *ex)
{
	v4i listed = batch >= zero4;
	v4f t[WF_RANK_NFEAT];
	struct explain4 e = { .batch = zero4, .session = zero4, .neighbours = zero4, .trend = zero4,
			      .complement = v4_keep(compl > zero4, compl * k->c_lift), .penalty = zero4 };

	for (uint32_t f = 0; f < WF_RANK_NFEAT; f++)
		t[f] = zero4;
	t[WF_RANK_F_BATCH] = v4_keep(listed, k->ew4[WF_RANK_F_BATCH] * batch);
	e.batch = t[WF_RANK_F_BATCH];
	if (k->aff) {
		t[WF_RANK_F_CAT] = k->ew4[WF_RANK_F_CAT] * pt->f[WF_RANK_F_CAT];
		t[WF_RANK_F_BRAND] = k->ew4[WF_RANK_F_BRAND] * pt->f[WF_RANK_F_BRAND];
		t[WF_RANK_F_BAND] = k->ew4[WF_RANK_F_BAND] * pt->f[WF_RANK_F_BAND];
		e.session = (t[WF_RANK_F_CAT] + t[WF_RANK_F_BRAND]) + t[WF_RANK_F_BAND];
		e.penalty = pt->penalty;
	}
	if (k->near) {
		for (uint32_t f = WF_RANK_F_NEIGH; f <= WF_RANK_F_REPEAT; f++)
			t[f] = k->ew4[f] * pt->f[f];
		e.neighbours = ((t[WF_RANK_F_NEIGH] + t[WF_RANK_F_SEQ1]) + t[WF_RANK_F_SEQ]) + t[WF_RANK_F_REPEAT];
	}
	t[WF_RANK_F_POP] = v4_keep(~listed, k->ew4[WF_RANK_F_POP] * pt->f[WF_RANK_F_POP]);
	t[WF_RANK_F_TREND] = v4_keep(~listed, k->ew4[WF_RANK_F_TREND] * pt->f[WF_RANK_F_TREND]);
	e.trend = t[WF_RANK_F_POP] + t[WF_RANK_F_TREND];
	if (ex) {
		*ex = e;
		memcpy(ex->term, t, sizeof(t));
	}
	return e.batch + e.session + e.neighbours + e.trend + e.complement + e.penalty;
}

/* The scores of entries x[0..4) (consecutive: x[i] = x[0] + i). */
static inline __attribute__((always_inline)) v4f score_entries4(const struct wf_snap *snap, const struct consts *k,
								 const struct wf_rank_scratch *w, const uint32_t *x,
								 int consecutive, struct explain4 *ex, struct parts4 *ret_pt)
{
	struct parts4 pt;

	parts4(snap, k, w, x, consecutive, &pt);
	if (ret_pt)
		*ret_pt = pt;
	return score4(k, v4_load(w->batch, x, consecutive), v4_load(w->compl, x, consecutive), &pt, ex);
}

/* Lane l's features as score4() uses them (a feature that does not
 * apply to the entry, +0): the prior only outside the batch list, the
 * batch score only inside it. */
static inline void features_of(const struct consts *k, const struct parts4 *pt, uint32_t l, float batch,
			float ret[WF_RANK_NFEAT])
{
	int listed = batch >= 0;

	for (uint32_t f = 0; f < WF_RANK_NFEAT; f++)
		ret[f] = pt->f[f][l];
	ret[WF_RANK_F_BATCH] = listed ? batch : 0.0f;
	if (listed)
		ret[WF_RANK_F_POP] = ret[WF_RANK_F_TREND] = 0;
	if (!k->aff)
		ret[WF_RANK_F_CAT] = ret[WF_RANK_F_BRAND] = ret[WF_RANK_F_BAND] = 0;
	if (!k->near)
		for (uint32_t f = WF_RANK_F_NEIGH; f <= WF_RANK_F_REPEAT; f++)
			ret[f] = 0;
}

/* Lane l's parts and terms (e, score4()'s) and features (pt) as struct
 * wf_rank_explain has them, to o; batch: the entry's normalised batch
 * score (< 0: not in the list). */
static inline __attribute__((always_inline)) void explain_of(const struct consts *c, const struct explain4 *e,
							      const struct parts4 *pt, uint32_t l, float batch,
							      struct wf_rank_explain *o)
{
	float feat[WF_RANK_NFEAT];

	*o = (struct wf_rank_explain){
		.batch = e->batch[l], .session = e->session[l], .neighbours = e->neighbours[l],
		.trend = e->trend[l], .complement = e->complement[l], .penalty = e->penalty[l],
	};
	features_of(c, pt, l, batch, feat);
	for (uint32_t f = 0; f < WF_RANK_NFEAT; f++) {
		o->weight[f] = c->ew[f];
		o->feature[f] = feat[f];
		o->term[f] = e->term[f][l];
	}
}

/* ---- live items (live.c) ---- */

void rank_live_entries(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
			 struct wf_rank_scratch *w);
int rank_live_find(const struct wf_rank_scratch *w, int64_t item);
uint32_t rank_live_merge(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
			   const struct wf_rank_scratch *w, uint32_t k, uint32_t n, uint32_t *out_items,
			   float *out_scores, struct wf_rank_explain *out_explain);

#endif
