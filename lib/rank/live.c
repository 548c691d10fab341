/*
 * live.c - live items (libweftrank, see rank.h WF_RANK_LIVE_BASE): items
 * the snapshot lacks that the visit viewed come back as returns, scored
 * by the repeat curve through the same four-lane kernels (lanes.h), and
 * merge into a query's best k by the same order key.
 */
#include "lib/rank/lanes.h"

/* The scores of live entries x[0..4) of w (their parts to ex and
 * features to ret_pt when non-NULL): score4(), the one scoring, of an
 * entry with no batch score, no complement, every feature +0 but REPEAT,
 * and the repeat-look penalty of its ring places. */
static v4f live_score4(const struct consts *c, const struct wf_rank_scratch *w, const uint32_t *x,
		       struct explain4 *ex, struct parts4 *ret_pt)
{
	struct parts4 pt;

	for (uint32_t f = 0; f < WF_RANK_NFEAT; f++)
		pt.f[f] = zero4;
	pt.f[WF_RANK_F_REPEAT] = (v4f){ w->live_feat[x[0]], w->live_feat[x[1]], w->live_feat[x[2]], w->live_feat[x[3]] };
	pt.penalty = zero4;
	if (c->penalty)
		pt.penalty = c->neg_penalty_seen *
			     (v4f){ w->live_seen[x[0]], w->live_seen[x[1]], w->live_seen[x[2]], w->live_seen[x[3]] };
	if (ret_pt)
		*ret_pt = pt;
	return score4(c, (v4f){ -1.0f, -1.0f, -1.0f, -1.0f }, zero4, &pt, ex);
}

/*
 * The session's live items for q, into w->live_* best first (w->nlive):
 * each once, coded by its live_key entry, its REPEAT feature the
 * learned curve at its newest place with a value > 0 (as
 * rank_pool_add_session() gives a snapshot item's), scored by live_score4();
 * left out when carted, bought, q's anchor_key or refused by q's filter.
 * After the pool's evidence (the session's confidence). A session
 * without live items costs one test.
 */
void rank_live_entries(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
			 struct wf_rank_scratch *w)
{
	const struct wf_rank_session *s = q->sess;
	uint32_t n = 0, done = 0;

	w->nlive = 0;
	if (!s || !s->live || !snap->model)
		return;
	for (uint32_t r = 0; r < s->recent_count && r < WF_SNAP_MODEL_REPEAT; r++) {
		int32_t item = s->recent[recent_slot(s, r)].item;
		uint32_t i = (uint32_t)(-2 - item), seen = 0;
		float pr = 0;
		if (item >= -1 || (done >> i & 1))
			continue;
		done |= 1u << i;
		for (uint32_t r2 = r; r2 < s->recent_count && r2 < WF_SNAP_MODEL_REPEAT && !(pr > 0); r2++)
			if (s->recent[recent_slot(s, r2)].item == item)
				pr = snap->model->repeat[r2];
		for (uint32_t j = 0; j < WF_RANK_RECENT; j++)
			seen += s->recent[j].item == item;
		if (!(pr > 0) || ((s->live_cart | s->live_bought) >> i & 1) || s->live_key[i] == q->anchor_key ||
		    (q->filter && !q->filter(q->filter_ctx, WF_RANK_LIVE_BASE + i)))
			continue;
		w->live_code[n] = WF_RANK_LIVE_BASE + i;
		w->live_feat[n] = pr;
		w->live_seen[n] = (float)seen;
		n++;
	}
	if (!n)
		return;
	const struct consts c = consts_of(snap, p, q, w);
	for (uint32_t i = 0; i < n; i += 4) {
		uint32_t xs[4], m = WF_MIN(n - i, 4u);
		for (uint32_t l = 0; l < 4; l++)
			xs[l] = i + WF_MIN(l, m - 1); /* the last lanes repeat the last entry */
		v4f sc = live_score4(&c, w, xs, NULL, NULL);
		for (uint32_t l = 0; l < m; l++)
			w->live_score[i + l] = sc[l];
	}
	/* Best first, by the one order (order_key()); at most WF_RANK_LIVE. */
	for (uint32_t i = 0; i < n; i++) {
		uint64_t k = order_key(w->live_score[i], w->live_code[i]);
		uint32_t code = w->live_code[i], j = i;
		float f = w->live_feat[i], sn = w->live_seen[i], sc = w->live_score[i];
		for (; j > 0 && w->live_okey[j - 1] < k; j--) {
			w->live_okey[j] = w->live_okey[j - 1];
			w->live_code[j] = w->live_code[j - 1];
			w->live_feat[j] = w->live_feat[j - 1];
			w->live_seen[j] = w->live_seen[j - 1];
			w->live_score[j] = w->live_score[j - 1];
		}
		w->live_okey[j] = k;
		w->live_code[j] = code;
		w->live_feat[j] = f;
		w->live_seen[j] = sn;
		w->live_score[j] = sc;
	}
	w->nlive = n;
}

/* The index of live code item in w->live_* (rank_live_entries()'s), or -1. */
int rank_live_find(const struct wf_rank_scratch *w, int64_t item)
{
	for (uint32_t x = 0; x < w->nlive; x++)
		if (w->live_code[x] == item)
			return (int)x;
	return -1;
}

/* Merge the live entries into emit()'s list out[0..n) (best first, k at
 * most): the best k of both, by order_key(), in place from the back.
 * Returns the new count. */
uint32_t rank_live_merge(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
			   const struct wf_rank_scratch *w, uint32_t k, uint32_t n, uint32_t *out_items,
			   float *out_scores, struct wf_rank_explain *out_explain)
{
	uint32_t a = 0, b = 0;

	/* n < k: out holds every listed pool entry; n = k: the first k */
	while (a + b < k && (a < n || b < w->nlive)) {
		if (b < w->nlive && (a == n || w->live_okey[b] > order_key(out_scores[a], out_items[a])))
			b++;
		else
			a++;
	}
	uint32_t total = a + b;
	struct consts c = { 0 };
	if (out_explain && b)
		c = consts_of(snap, p, q, w);
	for (uint32_t o = total; b > 0;) {
		o--;
		if (a > 0 && order_key(out_scores[a - 1], out_items[a - 1]) < w->live_okey[b - 1]) {
			a--;
			out_items[o] = out_items[a];
			out_scores[o] = out_scores[a];
			if (out_explain)
				out_explain[o] = out_explain[a];
			continue;
		}
		b--;
		out_items[o] = w->live_code[b];
		out_scores[o] = w->live_score[b];
		if (out_explain) {
			const uint32_t xs[4] = { b, b, b, b };
			struct explain4 e;
			struct parts4 pt;
			live_score4(&c, w, xs, &e, &pt);
			explain_of(&c, &e, &pt, 0, -1.0f, &out_explain[o]);
		}
	}
	return total;
}

