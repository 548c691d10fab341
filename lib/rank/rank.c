/*
 * rank.c - the hybrid scoring of libweftrank (see rank.h): a query's
 * candidate pool, its scores, the best k, RERANK and the evaluator's
 * positions; the session model is session.c. Linked into weft-ranker,
 * weft-eval and weft-batch through libweftrank. Pure functions over
 * caller memory: no allocation, no logging, no clock.
 */
#include "lib/rank/rank.h"
#include "lib/rank/rank_int.h"
#include "lib/rank/lanes.h"
#include "lib/util.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define RANK_PREFETCH 16u /* pool entries ahead whose item metadata is prefetched */

static const char *const feature_names[WF_RANK_NFEAT] = {
	[WF_RANK_F_BATCH] = "batch", [WF_RANK_F_CAT] = "cat",	    [WF_RANK_F_BRAND] = "brand",
	[WF_RANK_F_BAND] = "band",   [WF_RANK_F_NEIGH] = "neigh",   [WF_RANK_F_SEQ1] = "seq_last",
	[WF_RANK_F_SEQ] = "seq",
	[WF_RANK_F_REPEAT] = "repeat", [WF_RANK_F_POP] = "pop",	    [WF_RANK_F_TREND] = "trend",
};

const char *wf_rank_feature_name(uint32_t f)
{
	return f < WF_RANK_NFEAT ? feature_names[f] : "?";
}

static void model_weights(const struct wf_snap *snap, const struct wf_rank_params *p, int v, float ret[WF_RANK_NFEAT])
{
	const struct wf_snap_model *m = snap->model;
	uint32_t fitted = v == WF_VISITOR_RETURNING ? WF_SNAP_MODEL_FITTED_RETURNING : WF_SNAP_MODEL_FITTED_NEW;

	if (m && m->version == WF_RANK_MODEL_VERSION && m->feature_set == WF_RANK_FEATURE_SET &&
	    m->nfeat == WF_RANK_NFEAT && (m->flags & fitted)) {
		memcpy(ret, m->weight[v == WF_VISITOR_RETURNING ? 0 : 1], WF_RANK_NFEAT * sizeof(float));
		return;
	}
	ret[WF_RANK_F_BATCH] = p->w_batch_feat;
	ret[WF_RANK_F_CAT] = p->w_cat;
	ret[WF_RANK_F_BRAND] = p->w_brand;
	ret[WF_RANK_F_BAND] = p->w_band;
	ret[WF_RANK_F_NEIGH] = p->w_neigh;
	ret[WF_RANK_F_SEQ1] = ret[WF_RANK_F_SEQ] = p->w_seq;
	ret[WF_RANK_F_REPEAT] = p->w_recent_item;
	ret[WF_RANK_F_POP] = p->w_pop;
	ret[WF_RANK_F_TREND] = p->w_trend;
}

void wf_rank_weights(const struct wf_snap *snap, const struct wf_rank_params *p, int v, float ret[WF_RANK_NFEAT])
{
	model_weights(snap, p, v, ret);
	for (uint32_t f = 0; p->drop_features && f < WF_RANK_NFEAT; f++)
		if (p->drop_features & (1u << f))
			ret[f] = 0;
}

/* The scores of pool entries x[0..n) for q, each to out[x[i]] (when out
 * is non-NULL), and their parts to ex[i] (when ex is). */
static void score_list(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		       const struct wf_rank_scratch *w, const uint32_t *x, uint32_t n, float *out,
		       struct wf_rank_explain *ex)
{
	const struct consts c = consts_of(snap, p, q, w);

	for (uint32_t i = 0; i < n; i += 4) {
		uint32_t xs[4], m = WF_MIN(n - i, 4u);
		struct explain4 e;
		struct parts4 pt;
		for (uint32_t l = 0; l < 4; l++)
			xs[l] = x[i + WF_MIN(l, m - 1)]; /* the last lanes repeat the last entry */
		v4f sc = score_entries4(snap, &c, w, xs, 0, ex ? &e : NULL, ex ? &pt : NULL);
		for (uint32_t l = 0; l < m; l++) {
			if (out)
				out[xs[l]] = sc[l];
			if (ex)
				explain_of(&c, &e, &pt, l, w->batch[xs[l]], &ex[i + l]);
		}
	}
}



/* Pool index of item, or UINT32_MAX when it is not in the pool. */
static uint32_t pool_find(const struct wf_rank_scratch *w, uint32_t item)
{
	uint32_t mask = WF_RANK_POOL * 2 - 1;

	for (uint32_t h = pool_hash(item);; h = (h + 1) & mask) {
		uint64_t v = w->slot[h];
		if (v == 0)
			return UINT32_MAX;
		if ((uint32_t)(v >> 32) == item)
			return (uint32_t)v - 1;
	}
}

/*
 * The best score of the entries that complement nothing, or +0 when none
 * is above +0: what "top = +0, then each such score above top replaces
 * it" gives, in four lanes (each the same rule over every fourth entry)
 * combined by the same rule. No NaN ever replaces (it is above nothing),
 * and only a score strictly above +0 does, so there is no -0 / +0 to
 * order: the maximum of a set, whatever the order. (One chain of maxss
 * waited on each entry in turn.)
 */
static float compl_top(const struct wf_rank_scratch *w)
{
	v4f t = zero4;
	uint32_t i;
	float top = 0;

	for (i = 0; i + 4 <= w->n; i += 4) {
		v4f sc, cp;
		memcpy(&sc, &w->score[i], sizeof(sc));
		memcpy(&cp, &w->compl[i], sizeof(cp));
		v4i m = (cp == zero4) & (sc > t);
		t = (v4f)((m & (v4i)sc) | (~m & (v4i)t));
	}
	for (; i < w->n; i++)
		if (w->compl[i] == 0 && w->score[i] > t[0])
			t[0] = w->score[i];
	for (uint32_t l = 0; l < 4; l++)
		if (t[l] > top)
			top = t[l];
	return top;
}

/* Carted and bought items and the anchor to -inf (looked up once each,
 * not tested per entry). */
static void exclude(const struct wf_rank_query *q, struct wf_rank_scratch *w)
{
	const struct wf_rank_session *s = q->sess;
	uint32_t x;

	if (q->anchor >= 0 && q->anchor <= UINT32_MAX && (x = pool_find(w, (uint32_t)q->anchor)) != UINT32_MAX)
		w->score[x] = -INFINITY;
	for (uint32_t c = 0; s && c < WF_RANK_CART; c++) {
		if (s->cart[c] >= 0 && (x = pool_find(w, (uint32_t)s->cart[c])) != UINT32_MAX)
			w->score[x] = -INFINITY;
		if (s->bought[c] >= 0 && (x = pool_find(w, (uint32_t)s->bought[c])) != UINT32_MAX)
			w->score[x] = -INFINITY;
	}
}

/* With every pool entry scored in w->score (and w->batch the query's):
 * carted and bought items and the anchor get -inf, and the cart's
 * complements their lift. */
static void finish_scores(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
			  struct wf_rank_scratch *w)
{
	exclude(q, w);
	if (!q->sess || !w->ncompl)
		return;
	/* The cart's complements are lifted by the best score of the rest
	 * of the pool, so they reach the top whatever the scale of the
	 * session's other evidence (rank.h, w_compl_lift). */
	w->compl_top = compl_top(w);
	uint32_t nc = 0;
	for (uint32_t i = 0; i < w->n; i++)
		if (w->compl[i] > 0 && w->score[i] != -INFINITY)
			w->order[nc++] = i;
	score_list(snap, p, q, w, w->order, nc, w->score, NULL);
}

/* Score pool entries [from, w->n) for q. */
static void score_from(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		       struct wf_rank_scratch *w, uint32_t from)
{
	const struct consts c = consts_of(snap, p, q, w);
	uint32_t x;

	/* each entry's row: snap->rows' (16 bytes), else its item's */
	const char *rows = snap->rows ? (const char *)snap->rows : (const char *)snap->items;
	size_t stride = snap->rows ? sizeof(*snap->rows) : sizeof(*snap->items);
	uint32_t n = w->n;

	for (x = from; x + 4 <= n; x += 4) {
		const uint32_t xs[4] = { x, x + 1, x + 2, x + 3 };
		/* item rows are a cache miss per entry: fetched ahead, four at
		 * once (the last few entries' are not) */
		if (x + RANK_PREFETCH + 4 <= n)
			for (uint32_t i = 0; i < 4; i++)
				wf_prefetch(rows + w->item[x + RANK_PREFETCH + i] * stride);
		/* stored as floats (memcpy's store would alias every table, as
		 * far as the compiler knows, and their bounds would be loaded again) */
		*(v4f_u *)&w->score[x] = score_entries4(snap, &c, w, xs, 1, NULL, NULL);
	}
	for (uint32_t i = x; i < n; i++) /* the last n % 4 */
		w->order[i - x] = i;
	score_list(snap, p, q, w, w->order, n - x, w->score, NULL);
}

/* Score every pool entry for q. */
static void score_pool(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		       struct wf_rank_scratch *w)
{
	score_from(snap, p, q, w, 0);
	finish_scores(snap, p, q, w);
}

/* The best q->k scored entries, best first, through the filter; when
 * pruned (the pool left out entries that cannot reach the best k, see
 * wf_rank_recs()) and the filter refuses one, -EAGAIN before any output. */
static int emit(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		struct wf_rank_scratch *w, uint32_t *out_items, float *out_scores, struct wf_rank_explain *out_explain,
		int pruned)
{
	uint32_t k = WF_MIN(q->k, WF_RANK_MAX_K), n = 0, m, i, picked[WF_RANK_MAX_K];
	int more, wide = 0;

	/* Only the best few need ordering: select the best k and sort those
	 * (the filter usually keeps them all); if the filter refuses some,
	 * select 2k + 16, and if it refuses too many of those, order the
	 * whole pool after all. Each try lists the same entries in the same
	 * order as far as it reaches, so the output is the same. */
	m = rank_select_top(w, w->n, WF_MIN(w->n, k), &more);
	/* The filter reads shared state per item (the stock table, a cache
	 * miss each): its reads for the k best start together. */
	if (q->filter && q->filter_prefetch)
		for (i = 0; i < m; i++)
			q->filter_prefetch(q->filter_ctx, w->item[w->order[i]]);
	for (i = 0; n < k; i++) {
		if (i == m) {
			if (!more)
				break;
			m = rank_select_top(w, w->n, !wide && 2 * k + 16 < w->n ? 2 * k + 16 : w->n, &more);
			wide = 1;
			i = 0;
			n = 0;
		}
		uint32_t x = w->order[i];
		if (w->score[x] == -INFINITY)
			break;
		if (q->filter && !q->filter(q->filter_ctx, w->item[x])) {
			if (pruned)
				return -EAGAIN;
			continue;
		}
		out_items[n] = w->item[x];
		out_scores[n] = w->score[x];
		picked[n++] = x;
	}
	if (out_explain) /* the parts of each score, which add up to it */
		score_list(snap, p, q, w, picked, n, NULL, out_explain);
	if (w->nlive)
		n = rank_live_merge(snap, p, q, w, k, n, out_items, out_scores, out_explain);
	return (int)n;
}

/*
 * A score the k-th best entry of w's pool that complements nothing
 * cannot be below (-inf: none known): those entries in k groups (entry x
 * in group x mod k, rounded up to four groups a vector), each group's
 * best score above -inf; each group holds an entry at or above the
 * lowest group best, so k entries are. (A complement's score is lifted
 * later, by the best of the others: an entry below the bound is neither
 * among the best k nor that best.)
 */
static float kth_bound(const struct wf_rank_scratch *w, uint32_t k)
{
	const v4f ninf4 = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
	v4f best[WF_RANK_MAX_K / 4 + 1];
	uint32_t ng = (k + 3) / 4, j = 0;
	float bound = INFINITY;

	if (k == 0 || w->n < 4 * ng)
		return -INFINITY;
	for (uint32_t i = 0; i < ng; i++)
		best[i] = ninf4;
	for (uint32_t x = 0; x + 4 <= w->n; x += 4) { /* (a NaN never replaces) */
		v4f v, cp;
		memcpy(&v, &w->score[x], sizeof(v));
		memcpy(&cp, &w->compl[x], sizeof(cp));
		v4i gt = (v > best[j]) & (cp == zero4);
		best[j] = (v4f)((gt & (v4i)v) | (~gt & (v4i)best[j]));
		j = j + 1 == ng ? 0 : j + 1;
	}
	for (uint32_t i = 0; i < ng; i++)
		for (uint32_t l = 0; l < 4; l++)
			bound = best[i][l] < bound ? best[i][l] : bound;
	return bound;
}

/* The most term f can be for a value in the session's evidence rows
 * [from, to) or +0 (a lookup that finds no row): ew * the highest or the
 * lowest of them (a product is monotone in each factor). */
static float term_bound(const struct consts *c, uint32_t f, const uint32_t (*val)[4], uint32_t from, uint32_t to)
{
	float lo = 0, hi = 0;

	for (uint32_t j = from; j < to; j++) {
		float v;
		memcpy(&v, &val[j][0], sizeof(v));
		if (v != v)
			return INFINITY;
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	return WF_MAX(c->ew[f] * lo, c->ew[f] * hi);
}

/* The most the band term can be: ew * the session's evidence for any
 * band (the unknown band's +0 too); +inf when one is NaN. */
static float band_bound(const struct consts *c, const struct wf_rank_scratch *w)
{
	float band = -INFINITY;

	for (uint32_t b = 0; b <= WF_RANK_BANDS; b++) {
		float v = c->ew[WF_RANK_F_BAND] * w->band_ev[b];
		if (v != v)
			return INFINITY;
		band = v > band ? v : band;
	}
	return band;
}

/* A score no popular or trending item can reach as an entry nothing in
 * the session leads to (see add_prior_above()): score4()'s sum, in its
 * order, of the most each part can be: the session's from its evidence
 * (term_bound()), the prior's the highest pop + trend term among those
 * items, computed as score4() does. */
static float prior_bound(const struct wf_snap *snap, const struct consts *c, const struct wf_rank_scratch *w,
			 const struct wf_snap_cand *const list[2], const uint32_t len[2])
{
	v4f top = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
	v4i nan = { 0, 0, 0, 0 };
	float ub = -INFINITY, sess = 0;

	for (uint32_t t = 0; t < 2; t++)
		for (uint32_t i = 0; i < len[t]; i += 4) {
			v4f pop, trend;
			if (snap->prior_rows) { /* the same floats, in list order */
				const struct wf_snap_row *r = snap->prior_rows + (t ? snap->npopular : 0) + i;
				uint32_t e = len[t] - i - 1;
				pop = (v4f){ r[0].popularity, r[WF_MIN(1u, e)].popularity, r[WF_MIN(2u, e)].popularity,
					     r[WF_MIN(3u, e)].popularity };
				trend = (v4f){ r[0].trend, r[WF_MIN(1u, e)].trend, r[WF_MIN(2u, e)].trend,
					       r[WF_MIN(3u, e)].trend };
			} else {
				const struct wf_snap_item *it[4];
				for (uint32_t l = 0; l < 4; l++)
					it[l] = &snap->items[list[t][i + WF_MIN(l, len[t] - i - 1)].item];
				pop = (v4f){ it[0]->popularity, it[1]->popularity, it[2]->popularity, it[3]->popularity };
				trend = (v4f){ it[0]->trend, it[1]->trend, it[2]->trend, it[3]->trend };
			}
			v4f pr = c->ew[WF_RANK_F_POP] * pop + c->ew[WF_RANK_F_TREND] * (trend / (1.0f + trend));
			v4i gt = pr > top;
			nan |= pr != pr;
			top = (v4f)((gt & (v4i)pr) | (~gt & (v4i)top));
		}
	for (uint32_t l = 0; l < 4; l++) {
		if (nan[l])
			return INFINITY;
		ub = top[l] > ub ? top[l] : ub;
	}
	if (c->aff) {
		float cat = term_bound(c, WF_RANK_F_CAT, w->ev_val, 0, c->cat_end);
		float brand = term_bound(c, WF_RANK_F_BRAND, w->ev_val, c->cat_end, c->brand_end);
		sess = (cat + brand) + band_bound(c, w);
	}
	return sess + ub;
}

/* Prior entries e[0, m) (prior_rows indexes; 1 <= m <= 4) scored as fresh
 * entries in one block; those that can reach bound join the pool. */
static inline __attribute__((always_inline)) void prior_block(const struct wf_snap *snap, const struct consts *c,
							       struct wf_rank_scratch *w, const uint32_t *e,
							       uint32_t m, float bound, uint32_t *pn)
{
	const struct wf_snap_row *rp[4];
	const uint32_t it[4] = { 0, 0, 0, 0 }; /* (read only without direct evidence: never here) */
	struct parts4 pt;

	for (uint32_t l = 0; l < 4; l++)
		rp[l] = snap->prior_rows + e[WF_MIN(l, m - 1)]; /* the last lanes repeat the last entry */
	item_parts4(snap, c, w, it, rp, &pt);
	v4f up = score4(c, (v4f){ -1.0f, -1.0f, -1.0f, -1.0f }, zero4, &pt, NULL);
	v4i in = ~(up < (v4f){ bound, bound, bound, bound }); /* (a NaN too) */
	if (v4_any(in))
		for (uint32_t l = 0; l < m; l++)
			if (in[l])
				pool_add(w, pn, e[l] < snap->npopular ? snap->popular[e[l]].item
								 : snap->trending[e[l] - snap->npopular].item);
}

/*
 * add_prior_above()'s scan by category, for a session whose evidence is
 * indexed directly (snap->prior_groups): a category's entries are scored
 * only when the most any of them could score as a fresh entry reaches
 * bound: the category's own term (the product score4() computes), the
 * session's best brand and band terms, and the category's highest
 * popularity and trend terms (its lowest, for a weight below 0), summed in
 * score4()'s order, so that no entry of it scores above that (float sums
 * and products are monotone). The same items join as when each entry is
 * scored, in another order, which changes no score and no list. On the
 * generated store ~15 of the 250 entries are in a category that passes,
 * and ~3 join.
 */
static void add_prior_groups(const struct wf_snap *snap, const struct consts *c, struct wf_rank_scratch *w,
			     const uint32_t len[2], float bound, uint32_t *pn)
{
	const float brand = term_bound(c, WF_RANK_F_BRAND, w->ev_val, c->cat_end, c->brand_end);
	const float band = band_bound(c, w);
	const float wpop = c->ew[WF_RANK_F_POP], wtr = c->ew[WF_RANK_F_TREND];
	const uint32_t npop = snap->npopular;

	for (uint32_t gi = 0; gi < snap->nprior_groups; gi++) {
		const struct wf_snap_prior_group *g = &snap->prior_groups[gi];
		float cat = c->ew[WF_RANK_F_CAT] * w->ev_direct[g->category];
		float trend = wpop * (wpop < 0 ? g->pop_lo : g->pop_hi) + wtr * (wtr < 0 ? g->tr_lo : g->tr_hi);
		if (((cat + brand) + band) + trend < bound) /* (a NaN never skips) */
			continue;
		uint32_t e[4], m = 0;
		for (uint32_t j = g->first; j < g->first + g->n; j++) {
			uint32_t x = snap->prior_order[j], t = x >= npop;
			if (x - (t ? npop : 0) >= len[t]) /* past the query's pool_popular / pool_trending */
				continue;
			e[m++] = x;
			if (m == 4) {
				prior_block(snap, c, w, e, m, bound, pn);
				m = 0;
			}
		}
		if (m)
			prior_block(snap, c, w, e, m, bound, pn);
	}
}

/*
 * The popular and trending items (rank_pool_add_prior()), but only those
 * whose score could reach bound: an item the pool does not hold yet
 * would be an entry that nothing in the session leads to, scored by
 * score4() from item_parts4() and the repeat-look penalty, which is <= 0
 * (float sums and products are monotone: leaving it out gives a score at
 * or above the entry's). An item below bound is not added (one already
 * in the pool stays: the prior adds nothing to an entry). Returns the
 * first new entry. With a weight that is not finite (its products
 * with +0 are NaN, which order_key() puts first) nothing is left out.
 */
static uint32_t add_prior_above(const struct wf_snap *snap, const struct wf_rank_params *p,
				const struct consts *c, struct wf_rank_scratch *w, float bound)
{
	uint32_t n = w->n, from = w->n;
	const struct wf_snap_cand *const list[2] = { snap->popular, snap->trending };
	const uint32_t len[2] = { WF_MIN(p->pool_popular, snap->npopular), WF_MIN(p->pool_trending, snap->ntrending) };

	int finite = 1;

	for (uint32_t f = 0; f < WF_RANK_NFEAT; f++)
		finite &= isfinite(c->ew[f]) != 0;
	if (!(bound > -INFINITY) || !finite) { /* none can be left out */
		rank_pool_add_prior(snap, p, w);
		return from;
	}
	/* One bound for all (prior_bound()) only without session evidence:
	 * with it, the session's best category, brand and band terms plus
	 * the best pop + trend term exclude the whole prior too rarely to pay
	 * for the scan (never in weft-rankbench's session case); each item's
	 * own score below bounds it instead. Either way the same items join. */
	if (!c->aff && prior_bound(snap, c, w, list, len) < bound)
		return from; /* none can reach it */
	if (c->aff && c->direct && snap->prior_groups) {
		add_prior_groups(snap, c, w, len, bound, &n);
		w->n = n;
		return from;
	}

	for (uint32_t t = 0; t < 2; t++) {
		/* (in locals: a store to the pool might alias snap's fields, as
		 * far as the compiler knows, and each block would load them again) */
		const struct wf_snap_cand *lt = list[t];
		const struct wf_snap_row *rt = snap->prior_rows ? snap->prior_rows + (t ? snap->npopular : 0) : NULL;
		uint32_t lent = len[t];
		/* item_parts4() reads the items' indexes only without rows or
		 * for evidence not indexed directly */
		int need = !rt || (c->aff && !c->direct);
		for (uint32_t i = 0; i < lent; i += 4) {
			uint32_t it[4] = { 0, 0, 0, 0 }, m = WF_MIN(lent - i, 4u);
			const struct wf_snap_row *rp[4];
			struct parts4 pt;
			for (uint32_t l = 0; l < 4; l++) {
				uint32_t j = i + WF_MIN(l, m - 1);
				if (need)
					it[l] = lt[j].item;
				rp[l] = rt ? rt + j : NULL;
			}
			item_parts4(snap, c, w, it, rt ? rp : NULL, &pt);
			v4f up = score4(c, (v4f){ -1.0f, -1.0f, -1.0f, -1.0f }, zero4, &pt, NULL);
			v4i in = ~(up < (v4f){ bound, bound, bound, bound }); /* (a NaN too) */
			if (v4_any(in)) /* rare: most of the prior cannot reach the bound */
				for (uint32_t l = 0; l < m; l++)
					if (in[l])
						pool_add(w, &n, lt[i + l].item);
		}
	}
	w->n = n;
	return from;
}

/*
 * A fresh query first scores what its list and session lead to, then
 * adds only the popular and trending items that can reach the
 * best k (kth_bound(), add_prior_above()): the same best k, the same
 * scores, from fewer entries. Should the filter refuse one of the best
 * (the pool may lack what comes after them), the rest of the prior joins
 * (the complements' lift again, by the best of the whole pool).
 */
int wf_rank_recs(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		 struct wf_rank_scratch *w, uint32_t *out_items, float *out_scores, struct wf_rank_explain *out_explain)
{
	uint32_t nprior = WF_MIN(p->pool_popular, snap->npopular) + WF_MIN(p->pool_trending, snap->ntrending);
	int ret;

	rank_build_pool(snap, p, q, w, WF_RANK_POOL, 0);
	if (w->n + nprior > w->cap) {
		rank_pool_add_prior(snap, p, w);
		score_pool(snap, p, q, w);
	} else {
		score_from(snap, p, q, w, 0); /* (complements not lifted yet: w->compl_top 0) */
		exclude(q, w);
		const struct consts c = consts_of(snap, p, q, w);
		score_from(snap, p, q, w, add_prior_above(snap, p, &c, w, kth_bound(w, WF_MIN(q->k, WF_RANK_MAX_K))));
		finish_scores(snap, p, q, w);
		rank_live_entries(snap, p, q, w);
		ret = emit(snap, p, q, w, out_items, out_scores, out_explain, 1);
		if (ret != -EAGAIN)
			return ret;
		uint32_t from = w->n; /* the rest of the prior: the whole pool */
		rank_pool_add_prior(snap, p, w);
		score_from(snap, p, q, w, from);
		finish_scores(snap, p, q, w);
	}
	rank_live_entries(snap, p, q, w);
	return emit(snap, p, q, w, out_items, out_scores, out_explain, 0);
}

/*
 * wf_rank_positions() for several queries that share the session (and all
 * but list and weights) scores one pool for all: first what they share
 * (rank_pool_add_session(): entries 0..nshared), then each query's batch list,
 * its batch scores kept apart in mbatch; an entry is in query i's pool
 * when it is shared or in i's list. Each entry's session signals are
 * looked up once and combined with each query's weights. The pool's
 * contents and every entry's signals do not depend on the order in which
 * the lists joined it (each list, and the session's part, add in their
 * own order), so each query's scores are wf_rank_recs()'s, bit for bit,
 * unless the union fills the pool: then 1 is returned and each query is
 * run alone.
 */
static int multi_score(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		       uint32_t nq, struct wf_rank_scratch *w)
{
	const struct wf_rank_session *s = q[0].sess;
	uint32_t nshared;

	rank_pool_reset(w, WF_RANK_POOL);
	if (s)
		rank_session_evidence(w, snap, s, p);
	rank_pool_add_session(snap, p, s, q[0].anchor, w);
	nshared = w->n;
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t from = w->n; /* entries before query i's list: not in it (unless shared) */
		for (uint32_t x = 0; x < w->n; x++)
			w->batch[x] = -1.0f;
		rank_pool_add_list(snap, &q[i], w);
		memcpy(w->mbatch[i], w->batch, w->n * sizeof(float));
		for (uint32_t j = 0; j < i; j++) /* entries after query j's list: not in it */
			for (uint32_t x = from; x < w->n; x++)
				w->mbatch[j][x] = -1.0f;
	}
	if (w->n >= WF_RANK_POOL)
		return 1;
	struct consts c[WF_RANK_MULTI];
	for (uint32_t i = 0; i < nq; i++)
		c[i] = consts_of(snap, p, &q[i], w);
	for (uint32_t x = 0; x < w->n; x += 4) {
		uint32_t xs[4], m = WF_MIN(w->n - x, 4u);
		struct parts4 pt;
		for (uint32_t l = 0; l < 4; l++)
			xs[l] = x + WF_MIN(l, m - 1); /* the last lanes repeat the last entry */
		for (uint32_t i = x + RANK_PREFETCH; i < WF_MIN(x + RANK_PREFETCH + 4, w->n); i++)
			wf_prefetch(&snap->items[w->item[i]]); /* a cache miss per entry: fetch ahead */
		parts4(snap, &c[0], w, xs, 0, &pt);
		for (uint32_t i = 0; i < nq; i++) {
			v4f sc = score4(&c[i], v4_load(w->mbatch[i], xs, 0), v4_load(w->compl, xs, 0), &pt, NULL);
			for (uint32_t l = 0; l < m; l++)
				w->mscore[i][x + l] = x + l < nshared || w->mbatch[i][x + l] >= 0 ? sc[l] : -INFINITY;
		}
	}
	return 0;
}

/* Where emit() would place item, from the scored pool: the filter-passing
 * entries that rank before it, counted; -1 when it would not be listed. */
static int32_t position(const struct wf_rank_query *q, const struct wf_rank_scratch *w, int64_t item)
{
	uint32_t k = WF_MIN(q->k, WF_RANK_MAX_K), x, before = 0;
	uint64_t kt;

	if (item >= WF_RANK_LIVE_BASE && item <= UINT32_MAX) { /* a live item: in w->live_* or not listed */
		int l = rank_live_find(w, item);
		if (l < 0)
			return -1;
		kt = w->live_okey[l];
		before = (uint32_t)l; /* the live entries before it */
	} else if (item < 0 || item > UINT32_MAX || (x = pool_find(w, (uint32_t)item)) == UINT32_MAX ||
		   w->score[x] == -INFINITY || (q->filter && !q->filter(q->filter_ctx, (uint32_t)item))) {
		return -1;
	} else {
		kt = order_key(w->score[x], w->item[x]);
		for (uint32_t i = 0; i < w->nlive; i++) /* live entries first: as emit() merges them */
			before += w->live_okey[i] > kt;
	}
	for (uint32_t i = 0; i < w->n && before < k; i++)
		if (w->score[i] != -INFINITY && order_key(w->score[i], w->item[i]) > kt &&
		    (!q->filter || q->filter(q->filter_ctx, w->item[i])))
			before++;
	return before < k ? (int32_t)before : -1;
}

int wf_rank_positions(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		      uint32_t nq, struct wf_rank_scratch *w, int64_t item, int32_t *ret_pos)
{
	int alone;

	if (nq < 1 || nq > WF_RANK_MULTI)
		return -EINVAL;
	for (uint32_t i = 1; i < nq; i++)
		if (q[i].sess != q[0].sess || q[i].anchor != q[0].anchor || q[i].k != q[0].k ||
		    q[i].filter != q[0].filter || q[i].filter_ctx != q[0].filter_ctx)
			return -EINVAL;
	alone = nq == 1 || multi_score(snap, p, q, nq, w);
	for (uint32_t i = 0; i < nq; i++) {
		if (alone) {
			rank_build_pool(snap, p, &q[i], w, WF_RANK_POOL, 1);
			score_pool(snap, p, &q[i], w);
		} else {
			memcpy(w->batch, w->mbatch[i], w->n * sizeof(float));
			memcpy(w->score, w->mscore[i], w->n * sizeof(float));
			finish_scores(snap, p, &q[i], w);
		}
		rank_live_entries(snap, p, &q[i], w);
		ret_pos[i] = position(&q[i], w, item);
	}
	return 0;
}

int wf_rank_features(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		     struct wf_rank_scratch *w, uint32_t *out_items, float *out_feat, uint32_t max, int *ret_visitor)
{
	const struct wf_rank_session *s = q->sess;
	float sb, ss;
	uint32_t out = 0, x;

	rank_build_pool(snap, p, q, w, WF_RANK_POOL, 1);
	const struct consts c = consts_of(snap, p, q, w);
	feature_scales(q, w, &sb, &ss);
	/* Left out as wf_rank_recs() leaves them out: -inf in w->score. */
	for (x = 0; x < w->n; x++)
		w->score[x] = 0;
	if (q->anchor >= 0 && q->anchor <= UINT32_MAX && (x = pool_find(w, (uint32_t)q->anchor)) != UINT32_MAX)
		w->score[x] = -INFINITY;
	for (uint32_t i = 0; s && i < WF_RANK_CART; i++) {
		if (s->cart[i] >= 0 && (x = pool_find(w, (uint32_t)s->cart[i])) != UINT32_MAX)
			w->score[x] = -INFINITY;
		if (s->bought[i] >= 0 && (x = pool_find(w, (uint32_t)s->bought[i])) != UINT32_MAX)
			w->score[x] = -INFINITY;
	}
	for (x = 0; x < w->n && out < max; x += 4) {
		uint32_t xs[4], m = WF_MIN(w->n - x, 4u);
		struct parts4 pt;
		for (uint32_t l = 0; l < 4; l++)
			xs[l] = x + WF_MIN(l, m - 1);
		parts4(snap, &c, w, xs, 0, &pt);
		for (uint32_t l = 0; l < m && out < max; l++) {
			float *o = out_feat + (size_t)out * WF_RANK_NFEAT;
			if (w->score[x + l] == -INFINITY)
				continue;
			features_of(&c, &pt, l, w->batch[x + l], o);
			for (uint32_t f = 0; f < WF_RANK_NFEAT; f++)
				o[f] *= f == WF_RANK_F_BATCH ? sb : ss;
			out_items[out++] = w->item[x + l];
		}
	}
	if (ret_visitor)
		*ret_visitor = query_visitor(q);
	return (int)out;
}

int wf_rank_rerank(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		   struct wf_rank_scratch *w, const int64_t *items, uint32_t n, uint32_t *out_pos, float *out_scores)
{
	uint32_t known = 0, out = 0, nk = 0;
	float sc[WF_RANK_POOL];
	uint32_t idx[WF_RANK_POOL];
	struct wf_rank_query ql = *q;

	if (n > WF_RANK_POOL)
		n = WF_RANK_POOL;
	/* Same signals as RECS; the pool leaves room for every given item. */
	rank_build_pool(snap, p, q, w, WF_RANK_POOL - n, 1);
	if (w->ncompl)
		score_pool(snap, p, q, w); /* the complements' lift, as RECS has it */
	ql.filter = NULL; /* the live items as RECS scores them; the filter below */
	rank_live_entries(snap, p, &ql, w);
	w->cap = WF_RANK_POOL;
	for (uint32_t i = 0; i < n; i++) {
		if (items[i] < 0 || (uint64_t)items[i] >= snap->nitems)
			continue;
		w->order[nk++] = pool_add(w, &w->n, (uint32_t)items[i]);
	}
	score_list(snap, p, q, w, w->order, nk, w->score, NULL); /* entries that join later change no score */
	/* The scored items in the given order: snapshot items, and live
	 * codes (lib/rank/rank.h) of the session's live items. */
	nk = 0;
	for (uint32_t i = 0; i < n; i++) {
		int l = -1;
		if ((items[i] < 0 || (uint64_t)items[i] >= snap->nitems) && (l = rank_live_find(w, items[i])) < 0)
			continue;
		sc[known] = l >= 0 ? w->live_score[l] : w->score[w->order[nk++]];
		idx[known++] = i;
	}
	/* Stable insertion sort by score: equal scores keep the app's order. */
	for (uint32_t i = 1; i < known; i++) {
		float s = sc[i];
		uint32_t x = idx[i], j = i;
		while (j > 0 && sc[j - 1] < s) {
			sc[j] = sc[j - 1];
			idx[j] = idx[j - 1];
			j--;
		}
		sc[j] = s;
		idx[j] = x;
	}
	for (uint32_t i = 0; i < known; i++) {
		if (q->filter && !q->filter(q->filter_ctx, (uint32_t)items[idx[i]]))
			continue;
		out_pos[out] = idx[i];
		if (out_scores)
			out_scores[out] = sc[i];
		out++;
	}
	for (uint32_t i = 0; i < n; i++)
		if ((items[i] < 0 || (uint64_t)items[i] >= snap->nitems) && rank_live_find(w, items[i]) < 0) {
			out_pos[out] = i;
			if (out_scores)
				out_scores[out] = 0;
			out++;
		}
	return (int)out;
}
