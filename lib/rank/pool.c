/*
 * pool.c - a query's candidate pool (libweftrank, see rank.h): the
 * user's batch list, the session's recent items (returns, live items)
 * and the neighbours and transitions they lead to, the anchor's, the
 * cart's complements and the catalog's popular and trending items, with
 * the prefetching a cold snapshot needs. Scoring is rank.c's, selection
 * select.c's.
 */
#include "lib/rank/rank.h"
#include "lib/rank/rank_int.h"
#include "lib/util.h"

#include <math.h>
#include <string.h>

/*
 * The pool hash's slots to 0 (empty). Only entries' items ever fill a
 * slot, and pool_add() notes each entry's slot in w->slotix, so the
 * previous pool's w->slotix[0, w->n) name every slot in use: a few
 * hundred stores instead of the whole 32 KiB table (the size of L1D:
 * its memset evicted the snapshot rows the query was about to read).
 * The scratch starts zeroed (rank.h); a pool past half the table clears
 * it all.
 */
static void pool_clear(struct wf_rank_scratch *w)
{
	uint32_t n = w->n;

	if (n > WF_RANK_POOL / 2) {
		memset(w->slot, 0, sizeof(w->slot));
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		w->slot[w->slotix[i]] = 0;
}

/* An empty pool of at most cap entries. */
void rank_pool_reset(struct wf_rank_scratch *w, uint32_t cap)
{
	pool_clear(w);
	w->n = 0;
	w->cap = WF_MIN(cap, WF_RANK_POOL);
	w->ncompl = 0;
	w->compl_top = 0; /* set by finish_scores() before any entry with a complement score is scored for good */
}

/*
 * The batch list's best score: WF_MAX(0, each score in turn), as far as
 * rank_pool_add_list() can tell (it asks whether it is > 0, then uses its
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
void rank_pool_add_list(const struct wf_snap *snap, const struct wf_rank_query *q, struct wf_rank_scratch *w)
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

/* Complements of the cart, by how lately each carted item was looked
 * at: decay^r for the r-th newest entry of the recent ring,
 * decay^WF_RANK_RECENT once it has left the ring. Inlined into
 * rank_pool_add_session(), whose entry count *pn it advances. */
static inline __attribute__((always_inline)) void pool_add_compl(const struct wf_snap *snap,
								 const struct wf_rank_params *p,
								 const struct wf_rank_session *s,
								 struct wf_rank_scratch *w, uint32_t *pn)
{
	uint32_t n = *pn;

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
	*pn = n;
}

/* The catalog's prior: the popular and trending items. */
void rank_pool_add_prior(const struct wf_snap *snap, const struct wf_rank_params *p, struct wf_rank_scratch *w)
{
	uint32_t n = w->n;

	for (uint32_t i = 0; i < WF_MIN(p->pool_popular, snap->npopular); i++)
		pool_add(w, &n, snap->popular[i].item);
	for (uint32_t i = 0; i < WF_MIN(p->pool_trending, snap->ntrending); i++)
		pool_add(w, &n, snap->trending[i].item);
	w->n = n;
}

/* What the session and the anchor lead to: the neighbours of its recent
 * items and of the anchor, the recent items, the cart's complements. */
void rank_pool_add_near(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_session *s,
			int64_t anchor, struct wf_rank_scratch *w)
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
		pool_add_compl(snap, p, s, w, &n);
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
	w->n = n;
}

/* What every query of this session shares: what the session and the
 * anchor lead to, then the popular and trending items. */
void rank_pool_add_session(const struct wf_snap *snap, const struct wf_rank_params *p,
			     const struct wf_rank_session *s, int64_t anchor, struct wf_rank_scratch *w)
{
	rank_pool_add_near(snap, p, s, anchor, w);
	rank_pool_add_prior(snap, p, w);
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

/* The items whose snapshot rows rank_pool_add_session() reads first, each
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
 * list at a time inside rank_pool_add_session(). */
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
 * recent items, cart complements, and (prior != 0) popular and trending
 * items. What it reads of the snapshot is prefetched first (prefetches
 * change no result): the session, the batch list and the session's item
 * rows, then, once the rows are near, the lists they lead to. */
void rank_build_pool(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		       struct wf_rank_scratch *w, uint32_t cap, int prior)
{
	struct session_sources src;

	if (q->sess)
		prefetch_span(q->sess, sizeof(*q->sess));
	session_sources(snap, p, q->sess, q->anchor, &src);
	prefetch_source_rows(snap, &src);
	if (q->cands && q->ncands)
		prefetch_span(q->cands, (size_t)q->ncands * sizeof(*q->cands));
	rank_pool_reset(w, cap);
	if (q->sess)
		rank_session_evidence(w, snap, q->sess, p);
	prefetch_source_lists(snap, &src);
	rank_pool_add_list(snap, q, w);
	rank_pool_add_near(snap, p, q->sess, q->anchor, w);
	if (prior)
		rank_pool_add_prior(snap, p, w);
}
