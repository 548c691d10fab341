/*
 * rank.c - the hybrid scoring of libweftrank (see rank.h): a query's
 * candidate pool, its scores, the best k, RERANK and the evaluator's
 * positions; the session model is session.c. Linked into weft-ranker,
 * weft-eval and weft-batch through libweftrank. Pure functions over
 * caller memory: no allocation, no logging, no clock.
 */
#include "lib/rank/rank.h"
#include "lib/rank/rank_int.h"
#include "lib/util.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define RANK_PREFETCH 16u /* pool entries ahead whose item metadata is prefetched */

/* ---- pool ---- */

/* The pool hash: 2 * WF_RANK_POOL slots, each item << 32 | pool index + 1
 * (0: empty), so a probe compares its item without a second load; slots
 * from the top bits of a multiplicative hash (the low bits of the product
 * depend on the item's low bits only). */
#define POOL_SLOT_BITS 12u
_Static_assert(1u << POOL_SLOT_BITS == WF_RANK_POOL * 2, "the pool hash has 2 * WF_RANK_POOL slots");

static inline uint32_t pool_hash(uint32_t item)
{
	return (item * 2654435761u) >> (32 - POOL_SLOT_BITS);
}

/* Entry n's sums (neighbours, transitions, repeat) to +0: one store. */
static inline __attribute__((always_inline)) void acc_clear(struct wf_rank_scratch *w, uint32_t n)
{
	typedef float v4f_a __attribute__((vector_size(16)));
	*(v4f_a *)w->acc[n] = (v4f_a){ 0, 0, 0, 0 };
}

/* Add item to the pool (unless there, or the pool is full: UINT32_MAX);
 * returns its index. The caller keeps the entry count in *pn, a local,
 * while it adds, and stores it in w->n when done: in w->n, each add would
 * wait for the previous one's store of it (the entry arrays might alias
 * it, as far as the compiler knows). */
static inline __attribute__((always_inline)) uint32_t pool_add(struct wf_rank_scratch *w, uint32_t *pn,
								uint32_t item)
{
	uint32_t mask = WF_RANK_POOL * 2 - 1, h = pool_hash(item), n = *pn;
	uint64_t v = w->slot[h];

	/* Most items settle on their first slot, new or already there, and
	 * which of the two is a coin toss for the neighbour and popular
	 * lists: decided without a branch. A new entry is written at n
	 * either way (n < cap <= WF_RANK_POOL: past the pool's end, unread,
	 * when the item was there) and n moves only when it is new. */
	uint32_t fresh = v == 0, there = (uint32_t)(v >> 32) == item;
	if (__builtin_expect((fresh | there) & (n < w->cap), 1)) {
		/* Masks, not ?: (GCC made a branch of that, mispredicted on
		 * one add in two): keep = all ones when the item was there. */
		uint64_t keep = (uint64_t)fresh - 1;
		uint32_t k = (uint32_t)((n & ~keep) | (((uint32_t)v - 1) & keep));
		w->item[n] = item;
		w->batch[n] = -1.0f;
		acc_clear(w, n);
		w->compl[n] = 0;
		w->slot[h] = (((uint64_t)item << 32 | (n + 1)) & ~keep) | (v & keep);
		*pn = n + fresh;
		return k;
	}
	for (;; h = (h + 1) & mask) {
		v = w->slot[h];
		if (v == 0) {
			if (n >= w->cap)
				return UINT32_MAX;
			w->slot[h] = (uint64_t)item << 32 | (n + 1);
			w->item[n] = item;
			w->batch[n] = -1.0f;
			acc_clear(w, n);
			w->compl[n] = 0;
			*pn = n + 1;
			return n;
		}
		if ((uint32_t)(v >> 32) == item)
			return (uint32_t)v - 1;
	}
}

/* An empty pool of at most cap entries. */
static void pool_reset(struct wf_rank_scratch *w, uint32_t cap)
{
	memset(w->slot, 0, sizeof(w->slot));
	w->n = 0;
	w->cap = WF_MIN(cap, WF_RANK_POOL);
	w->ncompl = 0;
	w->compl_top = 0; /* set by finish_scores() before any entry with a complement score is scored for good */
}

/*
 * The batch list's best score: WF_MAX(0, each score in turn), as far as
 * pool_add_list() can tell (it asks whether it is > 0, then uses its
 * value), in four chains combined at the end (one chain waits on each
 * maxss in turn). Without a NaN among the scores that is the same
 * positive maximum, or a value <= 0, either way; with one (a chain takes
 * the score after it, whatever it is) the one chain, in order.
 */
static float list_max(const struct wf_snap_cand *c, uint32_t n)
{
	float m[4] = { 0, 0, 0, 0 }, maxb = 0;
	uint32_t i, nan = 0;

	for (i = 0; i + 4 <= n; i += 4)
		for (uint32_t j = 0; j < 4; j++) {
			m[j] = WF_MAX(m[j], c[i + j].score);
			nan |= c[i + j].score != c[i + j].score;
		}
	for (; i < n; i++) {
		m[0] = WF_MAX(m[0], c[i].score);
		nan |= c[i].score != c[i].score;
	}
	if (nan) {
		for (i = 0; i < n; i++)
			maxb = WF_MAX(maxb, c[i].score);
		return maxb;
	}
	return WF_MAX(WF_MAX(m[0], m[1]), WF_MAX(m[2], m[3]));
}

/* The user's batch list, normalised by its best score so that w_batch
 * means the same for every user. */
static void pool_add_list(const struct wf_snap *snap, const struct wf_rank_query *q, struct wf_rank_scratch *w)
{
	float maxb = list_max(q->cands, q->ncands);
	uint32_t n = w->n;

	for (uint32_t i = 0; i < q->ncands; i++) {
		if (q->cands[i].item >= snap->nitems)
			continue;
		uint32_t k = pool_add(w, &n, q->cands[i].item);
		if (k != UINT32_MAX && w->batch[k] < 0)
			w->batch[k] = maxb > 0 ? WF_MAX(q->cands[i].score, 0.0f) / maxb : 0.0f;
	}
	w->n = n;
}

/* Item i's transitions are snap->seq[seq_begin, seq_end) (none in a
 * snapshot built in memory without them: a test's, a bench's). */
static inline uint32_t seq_begin(const struct wf_snap *snap, uint32_t i)
{
	return snap->seq_off ? snap->seq_off[i] : 0;
}

static inline uint32_t seq_end(const struct wf_snap *snap, uint32_t i)
{
	return snap->seq_off ? snap->seq_off[i + 1] : 0;
}

/* What every query of this session shares: the neighbours of its recent
 * items and of the anchor, the recent items, the cart's complements, the
 * popular and trending items. */
static void pool_add_session(const struct wf_snap *snap, const struct wf_rank_params *p,
			     const struct wf_rank_session *s, int64_t anchor, struct wf_rank_scratch *w)
{
	uint32_t n = w->n;

	if (s) {
		/* Neighbours (co-occurrence) of the newest recent items, weighted
		 * by how strongly (saturating) and how lately each was looked at,
		 * and their transitions (what is clicked next after each),
		 * weighted 1 / gap as weft-batch counted them: the r-th newest
		 * item is r + 1 clicks before the next. How much all this may
		 * move the list against a batch list is the session's
		 * confidence, applied in score4() (anti-jitter). */
		uint32_t nr = WF_MIN((uint32_t)s->recent_count, p->neigh_items);
		for (uint32_t r = 0; r < nr; r++) {
			uint32_t j = recent_slot(s, r);
			int32_t src = s->recent[j].item;
			float rec = 1.0f / (float)(1 + r);
			float rw = (1.0f - expf(-s->recent[j].strength / p->tau)) * rec;
			uint32_t sq = r ? WF_RANK_ACC_SEQ : WF_RANK_ACC_SEQ1; /* the newest item's transitions: a feature of their own */
			if (src < 0 || (uint32_t)src >= snap->nitems)
				continue;
			const struct wf_snap_item *it = &snap->items[src];
			for (uint32_t x = 0; x < it->neigh_cnt; x++) {
				const struct wf_snap_cand *c = &snap->neigh[it->neigh_off + x];
				uint32_t k = pool_add(w, &n, c->item);
				if (k != UINT32_MAX)
					w->acc[k][WF_RANK_ACC_NEIGH] += rw * c->score;
			}
			for (uint32_t x = seq_begin(snap, src); x < seq_end(snap, src); x++) {
				const struct wf_snap_cand *c = &snap->seq[x];
				uint32_t k = pool_add(w, &n, c->item);
				if (k != UINT32_MAX)
					w->acc[k][sq] += rec * c->score;
			}
		}
		/* Returns: the items of the recent ring (the one on screen too),
		 * each scored by the learned chance that the next click goes back
		 * to the item r steps back (its newest place in the ring). */
		for (uint32_t r = 0; snap->model && r < s->recent_count && r < WF_SNAP_MODEL_REPEAT; r++) {
			int32_t src = s->recent[recent_slot(s, r)].item;
			float pr = snap->model->repeat[r];
			if (src < 0 || (uint32_t)src >= snap->nitems || !(pr > 0))
				continue;
			uint32_t k = pool_add(w, &n, (uint32_t)src);
			if (k != UINT32_MAX && w->acc[k][WF_RANK_ACC_SEEN] == 0)
				w->acc[k][WF_RANK_ACC_SEEN] = pr;
		}
		/* Complements of the cart, by how lately each carted item was
		 * looked at: decay^r for the r-th newest entry of the recent
		 * ring, decay^WF_RANK_RECENT once it has left the ring. */
		for (uint32_t c = 0; c < WF_RANK_CART; c++) {
			int32_t src = s->cart[c];
			float fresh = 1.0f;
			uint32_t r;
			if (src < 0 || (uint32_t)src >= snap->nitems)
				continue;
			for (r = 0; r < s->recent_count && s->recent[recent_slot(s, r)].item != src; r++)
				;
			if (r == s->recent_count)
				r = WF_RANK_RECENT;
			while (r--)
				fresh *= p->decay;
			const struct wf_snap_item *it = &snap->items[src];
			for (uint32_t x = 0; x < it->compl_cnt; x++) {
				const struct wf_snap_cand *cc = &snap->compl[it->compl_off + x];
				uint32_t k = pool_add(w, &n, cc->item);
				if (k != UINT32_MAX) {
					w->ncompl += w->compl[k] == 0 && cc->score > 0;
					w->compl[k] = WF_MAX(w->compl[k], fresh * cc->score);
				}
			}
		}
	}
	if (anchor >= 0 && (uint64_t)anchor < snap->nitems) {
		const struct wf_snap_item *it = &snap->items[anchor];
		for (uint32_t x = 0; x < it->neigh_cnt; x++) {
			uint32_t k = pool_add(w, &n, snap->neigh[it->neigh_off + x].item);
			if (k != UINT32_MAX)
				w->acc[k][WF_RANK_ACC_NEIGH] += snap->neigh[it->neigh_off + x].score;
		}
		for (uint32_t x = seq_begin(snap, (uint32_t)anchor); x < seq_end(snap, (uint32_t)anchor); x++) {
			uint32_t k = pool_add(w, &n, snap->seq[x].item);
			if (k != UINT32_MAX)
				w->acc[k][WF_RANK_ACC_SEQ1] += snap->seq[x].score;
		}
	}
	for (uint32_t i = 0; i < WF_MIN(p->pool_popular, snap->npopular); i++)
		pool_add(w, &n, snap->popular[i].item);
	for (uint32_t i = 0; i < WF_MIN(p->pool_trending, snap->ntrending); i++)
		pool_add(w, &n, snap->trending[i].item);
	w->n = n;
}

/* Start loading n bytes at a (every cache line they touch). The callers
 * pass a pointer into an array only when it holds something (an empty
 * list's may be NULL, and NULL + 0 is undefined). */
static inline void prefetch_span(const void *a, size_t n)
{
	const char *c = (const char *)((uintptr_t)a & ~(uintptr_t)63), *end = (const char *)a + n;

	for (; c < end; c += 64)
		wf_prefetch(c);
}

/* The items whose snapshot rows pool_add_session() reads first, each
 * leading to a list: the newest recent items' and the anchor's to their
 * neighbours, the cart's to their complements. */
struct session_sources {
	uint32_t n;
	int32_t item[WF_RANK_RECENT + WF_RANK_CART + 1];
	uint8_t cart[WF_RANK_RECENT + WF_RANK_CART + 1]; /* 1: its complements, 0: its neighbours */
};

static void session_sources(const struct wf_snap *snap, const struct wf_rank_params *p,
			    const struct wf_rank_session *s, int64_t anchor, struct session_sources *ret)
{
	ret->n = 0;
	if (s) {
		uint32_t nr = WF_MIN((uint32_t)s->recent_count, p->neigh_items);
		for (uint32_t r = 0; r < nr; r++) {
			int32_t src = s->recent[recent_slot(s, r)].item;
			if (src >= 0 && (uint32_t)src < snap->nitems) {
				ret->item[ret->n] = src;
				ret->cart[ret->n++] = 0;
			}
		}
		for (uint32_t c = 0; c < WF_RANK_CART; c++)
			if (s->cart[c] >= 0 && (uint32_t)s->cart[c] < snap->nitems) {
				ret->item[ret->n] = s->cart[c];
				ret->cart[ret->n++] = 1;
			}
	}
	if (anchor >= 0 && (uint64_t)anchor < snap->nitems) {
		ret->item[ret->n] = (int32_t)anchor;
		ret->cart[ret->n++] = 0;
	}
}

/* In a serving process the snapshot is mostly out of cache (a random
 * user, a session seen long ago): first the sources' rows, then (once
 * they are near) the lists they lead to, so that the lists' misses
 * overlap each other and the batch list's walk instead of coming one
 * list at a time inside pool_add_session(). */
static void prefetch_source_rows(const struct wf_snap *snap, const struct session_sources *src)
{
	for (uint32_t i = 0; i < src->n; i++) {
		wf_prefetch(&snap->items[src->item[i]]);
		if (snap->seq_off)
			wf_prefetch(&snap->seq_off[src->item[i]]);
	}
}

static void prefetch_source_lists(const struct wf_snap *snap, const struct session_sources *src)
{
	for (uint32_t i = 0; i < src->n; i++) {
		const struct wf_snap_item *it = &snap->items[src->item[i]];
		uint32_t a = seq_begin(snap, (uint32_t)src->item[i]), b = seq_end(snap, (uint32_t)src->item[i]);
		if (src->cart[i] && it->compl_cnt)
			prefetch_span(&snap->compl[it->compl_off], it->compl_cnt * sizeof(*snap->compl));
		else if (!src->cart[i] && it->neigh_cnt)
			prefetch_span(&snap->neigh[it->neigh_off], it->neigh_cnt * sizeof(*snap->neigh));
		if (!src->cart[i] && b > a)
			prefetch_span(&snap->seq[a], (b - a) * sizeof(*snap->seq));
	}
}

/* The pool: batch list, neighbours of recent items and the anchor, the
 * recent items, cart complements, popular and trending items. What it
 * reads of the snapshot is prefetched first (prefetches change no
 * result): the session, the batch list and the session's item rows,
 * then, once the rows are near, the lists they lead to. */
static void build_pool(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		       struct wf_rank_scratch *w, uint32_t cap)
{
	struct session_sources src;

	if (q->sess)
		prefetch_span(q->sess, sizeof(*q->sess));
	session_sources(snap, p, q->sess, q->anchor, &src);
	prefetch_source_rows(snap, &src);
	if (q->cands && q->ncands)
		prefetch_span(q->cands, (size_t)q->ncands * sizeof(*q->cands));
	pool_reset(w, cap);
	if (q->sess)
		rank_session_evidence(w, snap, q->sess, p);
	prefetch_source_lists(snap, &src);
	pool_add_list(snap, q, w);
	pool_add_session(snap, p, q->sess, q->anchor, w);
}

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
};

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

void wf_rank_weights(const struct wf_snap *snap, const struct wf_rank_params *p, int v, float ret[WF_RANK_NFEAT])
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

/* The visitor type whose weights score q: returning when it has a batch list. */
static inline int query_visitor(const struct wf_rank_query *q)
{
	return q->cands && q->ncands ? WF_VISITOR_RETURNING : WF_VISITOR_NEW;
}

/* Each feature's scale (rank.h, struct wf_rank_explain): w_batch on the
 * batch list; w_session times the session's confidence on the rest when
 * there is a list to blend against, else 1 (so with no list every query
 * ranks as the session alone does, whatever its weights). */
static void feature_scales(const struct wf_rank_query *q, const struct wf_rank_scratch *w, float *ret_batch,
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
	for (uint32_t f = 0; f < WF_RANK_NFEAT; f++)
		c.ew[f] = (f == WF_RANK_F_BATCH ? sb : ss) * wt[f];
	return c;
}

/* The features of four entries that do not depend on the query's batch
 * list or weights (multi_score() shares them), unscaled. */
struct parts4 {
	v4f f[WF_RANK_NFEAT]; /* f[WF_RANK_F_BATCH] unused (the query's list) */
	v4f penalty;
};

static inline __attribute__((always_inline)) void parts4(const struct wf_snap *snap, const struct consts *k,
							  const struct wf_rank_scratch *w, const uint32_t *x,
							  int consecutive, struct parts4 *pt)
{
	const struct wf_snap_item *it[4];

	for (uint32_t i = 0; i < 4; i++)
		it[i] = &snap->items[w->item[x[i]]];
	v4f trend = { it[0]->trend, it[1]->trend, it[2]->trend, it[3]->trend };
	/* (the batch score of a listed item already holds popularity and trend) */
	pt->f[WF_RANK_F_POP] = (v4f){ it[0]->popularity, it[1]->popularity, it[2]->popularity, it[3]->popularity };
	pt->f[WF_RANK_F_TREND] = trend / (1.0f + trend);
	pt->f[WF_RANK_F_CAT] = pt->f[WF_RANK_F_BRAND] = pt->f[WF_RANK_F_BAND] = zero4;
	pt->f[WF_RANK_F_NEIGH] = pt->f[WF_RANK_F_SEQ1] = pt->f[WF_RANK_F_SEQ] = pt->f[WF_RANK_F_REPEAT] = zero4;
	pt->f[WF_RANK_F_BATCH] = pt->penalty = zero4;
	if (k->aff) {
		uint32_t ci[4], bi[4], di[4];
		for (uint32_t i = 0; i < 4; i++) { /* out of range (WF_SNAP_NO_CAT, no band): the 0 after the rows */
			ci[i] = WF_MIN(it[i]->category, k->dcats);
			bi[i] = WF_MIN(it[i]->brand, k->dbrands);
			di[i] = WF_MIN((uint32_t)it[i]->price_band, WF_RANK_BANDS);
		}
		if (k->direct) {
			const float *t = w->ev_direct, *b = t + k->dcats + 1;
			pt->f[WF_RANK_F_CAT] = (v4f){ t[ci[0]], t[ci[1]], t[ci[2]], t[ci[3]] };
			pt->f[WF_RANK_F_BRAND] = (v4f){ b[bi[0]], b[bi[1]], b[bi[2]], b[bi[3]] };
		} else {
			v4u cat = { it[0]->category, it[1]->category, it[2]->category, it[3]->category };
			v4u brand = { it[0]->brand, it[1]->brand, it[2]->brand, it[3]->brand };
			pt->f[WF_RANK_F_CAT] = v4_lookup(w, 0, k->cat_end, cat);
			pt->f[WF_RANK_F_BRAND] = v4_lookup(w, k->cat_end, k->brand_end, brand);
		}
		pt->f[WF_RANK_F_BAND] = (v4f){ w->band_ev[di[0]], w->band_ev[di[1]], w->band_ev[di[2]], w->band_ev[di[3]] };
	}
	if (k->penalty) {
		const struct wf_rank_session *s = k->s;
		float seen[4] = { 0, 0, 0, 0 };
		for (uint32_t i = 0; i < 4; i++) {
			uint32_t n = 0;
			for (uint32_t r = 0; r < s->recent_count; r++)
				n += s->recent[recent_slot(s, r)].item == (int32_t)w->item[x[i]];
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
	t[WF_RANK_F_BATCH] = v4_keep(listed, k->ew[WF_RANK_F_BATCH] * batch);
	e.batch = t[WF_RANK_F_BATCH];
	if (k->aff) {
		t[WF_RANK_F_CAT] = k->ew[WF_RANK_F_CAT] * pt->f[WF_RANK_F_CAT];
		t[WF_RANK_F_BRAND] = k->ew[WF_RANK_F_BRAND] * pt->f[WF_RANK_F_BRAND];
		t[WF_RANK_F_BAND] = k->ew[WF_RANK_F_BAND] * pt->f[WF_RANK_F_BAND];
		e.session = (t[WF_RANK_F_CAT] + t[WF_RANK_F_BRAND]) + t[WF_RANK_F_BAND];
		e.penalty = pt->penalty;
	}
	if (k->near) {
		for (uint32_t f = WF_RANK_F_NEIGH; f <= WF_RANK_F_REPEAT; f++)
			t[f] = k->ew[f] * pt->f[f];
		e.neighbours = ((t[WF_RANK_F_NEIGH] + t[WF_RANK_F_SEQ1]) + t[WF_RANK_F_SEQ]) + t[WF_RANK_F_REPEAT];
	}
	t[WF_RANK_F_POP] = v4_keep(~listed, k->ew[WF_RANK_F_POP] * pt->f[WF_RANK_F_POP]);
	t[WF_RANK_F_TREND] = v4_keep(~listed, k->ew[WF_RANK_F_TREND] * pt->f[WF_RANK_F_TREND]);
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
static void features_of(const struct consts *k, const struct parts4 *pt, uint32_t l, float batch,
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

/* An entry's place in the order as one integer: higher score first, then
 * lower item index (+ 0.0f makes -0 +0, which compares equal to it). */
static inline uint64_t order_key(float score, uint32_t item)
{
	union {
		float f;
		uint32_t u;
	} v = { .f = score + 0.0f };
	uint32_t u = (v.u & 0x80000000u) ? ~v.u : (v.u | 0x80000000u);

	return ((uint64_t)u << 32) | (uint32_t)~item;
}

/* Sift h[i] down the heap h[0..hn) (the worst entry, lowest key, at the root). */
static inline void heap_down(const uint64_t *key, uint32_t *h, uint32_t hn, uint32_t i)
{
	uint32_t x = h[i];
	uint64_t kx = key[x];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= hn)
			break;
		if (c + 1 < hn && key[h[c + 1]] < key[h[c]])
			c++; /* the worse child */
		if (kx <= key[h[c]])
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
}

/*
 * select_top() for m <= SELECT_FEW, from the keys: the best m so far kept
 * unsorted, with the place of the worst of them; an entry that beats it
 * takes that place, and the worst is found again by a scan that does not
 * branch (for a few dozen, cheaper than a heap's sift down, whose
 * branches are coin tosses); at the end each kept entry's place in the
 * order is the number of kept entries better than it (keys are unique).
 */
#define SELECT_FEW 32u

/* The index of the lowest of hk[0..hn), hn >= 1. */
static inline uint32_t worst_of(const uint64_t *hk, uint32_t hn)
{
	uint64_t v0 = hk[0], v1 = hk[hn > 1];
	uint32_t p0 = 0, p1 = hn > 1;

	/* Two chains of compare and move, for the two halves' worst. */
	for (uint32_t i = 2; i + 1 < hn; i += 2) {
		int b0 = hk[i] < v0, b1 = hk[i + 1] < v1;
		p0 = b0 ? i : p0;
		v0 = b0 ? hk[i] : v0;
		p1 = b1 ? i + 1 : p1;
		v1 = b1 ? hk[i + 1] : v1;
	}
	if (hn > 2 && hn % 2 && hk[hn - 1] < v0) {
		p0 = hn - 1;
		v0 = hk[hn - 1];
	}
	return v1 < v0 ? p1 : p0;
}

static uint32_t select_few(struct wf_rank_scratch *w, uint32_t n, uint32_t m, int *ret_more)
{
	uint64_t hk[SELECT_FEW], root = 0, ninf = order_key(-INFINITY, 0); /* the highest key at -inf */
	uint32_t hx[SELECT_FEW], hn = 0, more = 0, at = 0, x;

	for (x = 0; x < n && hn < m; x++)
		if (w->score[x] != -INFINITY) {
			hk[hn] = w->key[x];
			hx[hn++] = x;
		}
	if (hn) {
		at = worst_of(hk, hn);
		root = hk[at];
	}
	/* As select_top()'s heap: most entries lose one comparison. */
	for (; x < n; x++) {
		uint64_t kx = w->key[x];
		if (kx <= root) {
			more |= kx > ninf;
			continue;
		}
		more = 1;
		hk[at] = kx;
		hx[at] = x;
		at = worst_of(hk, hn);
		root = hk[at];
	}
	for (uint32_t i = 0; i < hn; i++) {
		uint32_t better = 0;
		for (uint32_t j = 0; j < hn; j++)
			better += hk[j] > hk[i];
		w->order[better] = hx[i];
	}
	*ret_more = (int)more;
	return hn;
}

/* Put the m best scored pool entries (score > -inf) in order[0..ret),
 * best first, and return ret <= m; *ret_more is 1 when entries were left
 * out (m = n: the whole pool in order). Every entry's order_key() first
 * (one loop, no branches); then, for m <= SELECT_FEW, select_few(), else
 * a bounded heap with the worst kept entry at the root (most entries lose
 * one integer comparison with it and cost nothing more) and a heap sort. */
static uint32_t select_top(struct wf_rank_scratch *w, uint32_t n, uint32_t m, int *ret_more)
{
	uint32_t *h = w->order, hn = 0, x;
	uint64_t *key = w->key, root = 0, ninf = order_key(-INFINITY, 0); /* the highest key at -inf */
	uint32_t more = 0;

	if (m == 0) {
		for (x = 0; x < n; x++)
			more |= w->score[x] != -INFINITY;
		*ret_more = (int)more;
		return 0;
	}
	/* Every key first, in one loop without branches. */
	for (x = 0; x < n; x++)
		key[x] = order_key(w->score[x], w->item[x]);
	if (m <= SELECT_FEW)
		return select_few(w, n, m, ret_more);
	/* Fill the heap with the first m entries scored above -inf. */
	for (x = 0; x < n && hn < m; x++) {
		uint32_t i;
		uint64_t kx = key[x];
		if (w->score[x] == -INFINITY)
			continue;
		/* Sift up: a parent is never better than its children. */
		for (i = hn++; i > 0 && key[h[(i - 1) / 2]] > kx; i = (i - 1) / 2)
			h[i] = h[(i - 1) / 2];
		h[i] = x;
	}
	if (hn)
		root = key[h[0]];
	/* Then each entry beats the worst kept one, or stops on one integer
	 * comparison (an entry at -inf has a key at most ninf, below every
	 * kept one; it only must not count as left out). */
	for (; x < n; x++) {
		uint64_t kx = key[x];
		if (kx <= root) {
			more |= kx > ninf;
			continue;
		}
		more = 1;
		h[0] = x; /* replace the root */
		heap_down(key, h, hn, 0);
		root = key[h[0]];
	}
	*ret_more = (int)more;
	/* Heap sort: the worst goes last, each in turn; the best stays first. */
	for (uint32_t end = hn; end > 1; end--) {
		uint32_t t = h[0];
		h[0] = h[end - 1];
		h[end - 1] = t;
		heap_down(key, h, end - 1, 0);
	}
	return hn;
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

/* With every pool entry scored in w->score (and w->batch the query's):
 * carted and bought items and the anchor get -inf (looked up once each,
 * not tested per entry), and the cart's complements their lift. */
static void finish_scores(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
			  struct wf_rank_scratch *w)
{
	const struct wf_rank_session *s = q->sess;
	uint32_t x;

	if (q->anchor >= 0 && q->anchor <= UINT32_MAX && (x = pool_find(w, (uint32_t)q->anchor)) != UINT32_MAX)
		w->score[x] = -INFINITY;
	if (!s)
		return;
	for (uint32_t c = 0; c < WF_RANK_CART; c++) {
		if (s->cart[c] >= 0 && (x = pool_find(w, (uint32_t)s->cart[c])) != UINT32_MAX)
			w->score[x] = -INFINITY;
		if (s->bought[c] >= 0 && (x = pool_find(w, (uint32_t)s->bought[c])) != UINT32_MAX)
			w->score[x] = -INFINITY;
	}
	if (!w->ncompl)
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

/* Score every pool entry for q. */
static void score_pool(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		       struct wf_rank_scratch *w)
{
	const struct consts c = consts_of(snap, p, q, w);
	uint32_t x;

	for (x = 0; x + 4 <= w->n; x += 4) {
		const uint32_t xs[4] = { x, x + 1, x + 2, x + 3 };
		for (uint32_t i = 0; i < 4; i++)
			if (x + RANK_PREFETCH + i < w->n) /* item metadata is a cache miss per entry: fetch ahead */
				wf_prefetch(&snap->items[w->item[x + RANK_PREFETCH + i]]);
		/* stored as floats (memcpy's store would alias every table, as
		 * far as the compiler knows, and their bounds would be loaded again) */
		*(v4f_u *)&w->score[x] = score_entries4(snap, &c, w, xs, 1, NULL, NULL);
	}
	for (uint32_t i = x; i < w->n; i++) /* the last n % 4 */
		w->order[i - x] = i;
	score_list(snap, p, q, w, w->order, w->n - x, w->score, NULL);
	finish_scores(snap, p, q, w);
}

/* ---- live items (rank.h, WF_RANK_LIVE_BASE) ---- */

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
 * pool_add_session() gives a snapshot item's), scored by live_score4();
 * left out when carted, bought, q's anchor_key or refused by q's filter.
 * After the pool's evidence (the session's confidence). A session
 * without live items costs one test.
 */
static void live_entries(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
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

/* The index of live code item in w->live_* (live_entries()'s), or -1. */
static int live_find(const struct wf_rank_scratch *w, int64_t item)
{
	for (uint32_t x = 0; x < w->nlive; x++)
		if (w->live_code[x] == item)
			return (int)x;
	return -1;
}

/* Merge the live entries into emit()'s list out[0..n) (best first, k at
 * most): the best k of both, by order_key(), in place from the back.
 * Returns the new count. */
static uint32_t live_merge(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
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

/* The best q->k scored entries, best first, through the filter. */
static int emit(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		struct wf_rank_scratch *w, uint32_t *out_items, float *out_scores, struct wf_rank_explain *out_explain)
{
	uint32_t k = WF_MIN(q->k, WF_RANK_MAX_K), n = 0, m, i, picked[WF_RANK_MAX_K];
	int more, wide = 0;

	/* Only the best few need ordering: select the best k and sort those
	 * (the filter usually keeps them all); if the filter refuses some,
	 * select 2k + 16, and if it refuses too many of those, order the
	 * whole pool after all. Each try lists the same entries in the same
	 * order as far as it reaches, so the output is the same. */
	m = select_top(w, w->n, WF_MIN(w->n, k), &more);
	for (i = 0; n < k; i++) {
		if (i == m) {
			if (!more)
				break;
			m = select_top(w, w->n, !wide && 2 * k + 16 < w->n ? 2 * k + 16 : w->n, &more);
			wide = 1;
			i = 0;
			n = 0;
		}
		uint32_t x = w->order[i];
		if (w->score[x] == -INFINITY)
			break;
		if (q->filter && !q->filter(q->filter_ctx, w->item[x]))
			continue;
		out_items[n] = w->item[x];
		out_scores[n] = w->score[x];
		picked[n++] = x;
	}
	if (out_explain) /* the parts of each score, which add up to it */
		score_list(snap, p, q, w, picked, n, NULL, out_explain);
	if (w->nlive)
		n = live_merge(snap, p, q, w, k, n, out_items, out_scores, out_explain);
	return (int)n;
}

int wf_rank_recs(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		 struct wf_rank_scratch *w, uint32_t *out_items, float *out_scores, struct wf_rank_explain *out_explain)
{
	build_pool(snap, p, q, w, WF_RANK_POOL);
	score_pool(snap, p, q, w);
	live_entries(snap, p, q, w);
	return emit(snap, p, q, w, out_items, out_scores, out_explain);
}

/*
 * wf_rank_positions() for several queries that share the session (and all
 * but list and weights) scores one pool for all: first what they share
 * (pool_add_session(): entries 0..nshared), then each query's batch list,
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

	pool_reset(w, WF_RANK_POOL);
	if (s)
		rank_session_evidence(w, snap, s, p);
	pool_add_session(snap, p, s, q[0].anchor, w);
	nshared = w->n;
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t from = w->n; /* entries before query i's list: not in it (unless shared) */
		for (uint32_t x = 0; x < w->n; x++)
			w->batch[x] = -1.0f;
		pool_add_list(snap, &q[i], w);
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
		int l = live_find(w, item);
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
			build_pool(snap, p, &q[i], w, WF_RANK_POOL);
			score_pool(snap, p, &q[i], w);
		} else {
			memcpy(w->batch, w->mbatch[i], w->n * sizeof(float));
			memcpy(w->score, w->mscore[i], w->n * sizeof(float));
			finish_scores(snap, p, &q[i], w);
		}
		live_entries(snap, p, &q[i], w);
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

	build_pool(snap, p, q, w, WF_RANK_POOL);
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
	build_pool(snap, p, q, w, WF_RANK_POOL - n);
	if (w->ncompl)
		score_pool(snap, p, q, w); /* the complements' lift, as RECS has it */
	ql.filter = NULL; /* the live items as RECS scores them; the filter below */
	live_entries(snap, p, &ql, w);
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
		if ((items[i] < 0 || (uint64_t)items[i] >= snap->nitems) && (l = live_find(w, items[i])) < 0)
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
		if ((items[i] < 0 || (uint64_t)items[i] >= snap->nitems) && live_find(w, items[i]) < 0) {
			out_pos[out] = i;
			if (out_scores)
				out_scores[out] = 0;
			out++;
		}
	return (int)out;
}
