/*
 * session.c - the session model of libweftrank (see rank.h): the model's
 * parameters, a session's state and how an event changes it, and what a
 * session says to one query (its evidence per category, brand and price
 * band, its confidence), which rank.c's scoring looks up. Linked into
 * weft-ranker, weft-eval and weft-batch through libweftrank. Pure
 * functions over caller memory: no allocation, no logging, no clock.
 */
#include "lib/rank/rank.h"
#include "lib/rank/rank_int.h"
#include "lib/util.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void wf_rank_params_default(struct wf_rank_params *p)
{
	static const float strength[WF_EV_COUNT] = {
		[WF_EV_VIEW] = 1.0f,     [WF_EV_CLICK] = 2.0f,  [WF_EV_PDP] = 3.0f,
		[WF_EV_HOVER] = 1.2f,    [WF_EV_DWELL] = 1.5f,  [WF_EV_SCROLL] = 0.0f,
		[WF_EV_SEARCH] = 0.0f,   [WF_EV_CART_ADD] = 5.0f, [WF_EV_CART_REMOVE] = 0.0f,
		[WF_EV_PURCHASE] = 8.0f,
	};

	memset(p, 0, sizeof(*p));
	memcpy(p->strength, strength, sizeof(strength));
	p->dwell_ms_full = 10000.0f;
	p->decay = 0.9f;
	p->tau = 4.0f;
	p->rho = 2.0f;   /* one event 1/9 of full, three 3/4 */
	p->rep_unit = 2.0f; /* a click is one repetition; pdp 1.5, cart_add 2.5, purchase 4 */
	/* Default weights (a snapshot without a fitted MODEL): the
	 * neighbour, transition and repeat features are probabilities of the
	 * next click; the affinities and the prior as before issue 14. */
	p->w_batch_feat = 1.0f;
	p->w_cat = 0.45f;
	p->w_brand = 0.2f;
	p->w_band = 0.1f;
	p->w_neigh = 1.0f;
	p->w_seq = 1.0f;
	p->w_recent_item = 1.0f;
	p->confidence_events = 1.5f;
	p->w_trend = 0.02f;
	p->w_pop = 0.05f;
	p->w_compl = 0.4f;
	p->w_compl_lift = 0.5f; /* the smallest that brings complements into the top 5 (test_rank); tuned on validation days (EVAL.md) */
	p->penalty_seen = 0.0f;
	p->recent_window = 4;
	p->pivot_recent_share = 0.75f;
	p->pivot_before_share = 0.2f;
	p->neigh_items = 5;
	p->pool_popular = 200;
	p->pool_trending = 50;
}

void wf_rank_session_init(struct wf_rank_session *s)
{
	memset(s, 0, sizeof(*s));
	for (uint32_t i = 0; i < WF_RANK_CART; i++)
		s->cart[i] = s->bought[i] = -1;
	for (uint32_t i = 0; i < WF_RANK_AFF; i++)
		s->cat[i].key = s->brand[i].key = UINT32_MAX;
	for (uint32_t i = 0; i < WF_RANK_RECENT; i++) {
		s->recent[i].item = -1;
		s->recent_cats[i] = UINT32_MAX;
	}
}

float wf_rank_evidence(const struct wf_rank_params *p, float w, float n)
{
	float n3 = n * n * n, r3 = p->rho * p->rho * p->rho;

	if (w <= 0 || n <= 0)
		return 0.0f;
	return (1.0f - expf(-w / p->tau)) * (n3 / (n3 + r3));
}

/* Add (w, n) to key's slot; a full table replaces its weakest entry if the
 * newcomer is stronger (space-saving, bounded). */
static void aff_add(struct wf_rank_aff *a, uint32_t key, float w, float n)
{
	uint32_t weakest = 0;

	for (uint32_t i = 0; i < WF_RANK_AFF; i++) {
		if (a[i].key == key) {
			a[i].w += w;
			a[i].n += n;
			return;
		}
		if (a[i].key == UINT32_MAX) {
			a[i].key = key;
			a[i].w = w;
			a[i].n = n;
			return;
		}
		if (a[i].w < a[weakest].w)
			weakest = i;
	}
	if (a[weakest].w < w) {
		a[weakest].key = key;
		a[weakest].w = w;
		a[weakest].n = n;
	}
}

static const struct wf_rank_aff *aff_get(const struct wf_rank_aff *a, uint32_t key)
{
	for (uint32_t i = 0; i < WF_RANK_AFF; i++)
		if (a[i].key == key)
			return &a[i];
	return NULL;
}

static void set_add(int32_t *set, int32_t item)
{
	for (uint32_t i = 0; i < WF_RANK_CART; i++)
		if (set[i] == item)
			return;
	for (uint32_t i = 0; i < WF_RANK_CART; i++)
		if (set[i] < 0) {
			set[i] = item;
			return;
		}
	memmove(set, set + 1, (WF_RANK_CART - 1) * sizeof(*set)); /* forget the oldest */
	set[WF_RANK_CART - 1] = item;
}

static void set_del(int32_t *set, int64_t item)
{
	for (uint32_t i = 0; i < WF_RANK_CART; i++)
		if (set[i] == item)
			set[i] = -1;
}

/*
 * Pivot: at least pivot_recent_share of the last recent_window entries are
 * in one category that the earlier entries of the ring (at least a window's
 * worth) gave at most pivot_before_share. Then the model reads category
 * affinity from the recent window alone (see cat_affinity()).
 */
static void detect_pivot(struct wf_rank_session *s, const struct wf_rank_params *p)
{
	uint32_t win = WF_MIN(p->recent_window, (uint32_t)WF_RANK_RECENT);
	uint32_t n = WF_MIN((uint32_t)s->recent_count, win), top = UINT32_MAX, topn = 0;
	uint32_t before_total = 0, before_top = 0;
	uint8_t was = s->pivot;

	s->pivot = 0;
	if (win == 0 || n < win)
		return;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t c = s->recent_cats[recent_slot(s, i)], cnt = 0;
		if (c == UINT32_MAX)
			continue;
		for (uint32_t j = 0; j < n; j++)
			cnt += s->recent_cats[recent_slot(s, j)] == c;
		if (cnt > topn) {
			topn = cnt;
			top = c;
		}
	}
	if (top == UINT32_MAX || (float)topn < p->pivot_recent_share * (float)n)
		return;
	for (uint32_t i = n; i < s->recent_count; i++) {
		uint32_t c = s->recent_cats[recent_slot(s, i)];
		if (c == UINT32_MAX)
			continue;
		before_total++;
		before_top += c == top;
	}
	if (before_total >= win && (float)before_top <= p->pivot_before_share * (float)before_total) {
		s->pivot = 1;
		if (!was)
			s->pivots++;
	}
}

/* Decay every evidence, then add w to the total: recent behaviour weighs
 * more. */
static void decay_all(struct wf_rank_session *s, const struct wf_rank_params *p, float w)
{
	for (uint32_t i = 0; i < WF_RANK_AFF; i++) {
		s->cat[i].w *= p->decay;
		s->cat[i].n *= p->decay;
		s->brand[i].w *= p->decay;
		s->brand[i].n *= p->decay;
	}
	for (uint32_t i = 0; i < WF_RANK_BANDS; i++) {
		s->band_w[i] *= p->decay;
		s->band_n[i] *= p->decay;
	}
	s->total = s->total * p->decay + w;
}

/* The live_key entry of key, or -1. */
static int live_index(const struct wf_rank_session *s, uint64_t key)
{
	for (uint32_t i = 0; i < WF_RANK_LIVE; i++)
		if ((s->live >> i & 1) && s->live_key[i] == key)
			return (int)i;
	return -1;
}

/* Free live_key entry i: no ring entry names it. */
static void live_free(struct wf_rank_session *s, uint32_t i)
{
	uint8_t keep = (uint8_t)~(1u << i);

	s->live &= keep;
	s->live_cart &= keep;
	s->live_bought &= keep;
	s->live_key[i] = 0;
}

/* A live_key entry for key: its own, a free one, or else the one whose
 * newest ring place is the oldest, forgotten (its places then name an
 * unknown item, -1). */
static uint32_t live_alloc(struct wf_rank_session *s, uint64_t key)
{
	int i = live_index(s, key);
	uint32_t oldest = 0, oldest_r = 0;

	if (i >= 0)
		return (uint32_t)i;
	while (oldest < WF_RANK_LIVE && (s->live >> oldest & 1))
		oldest++;
	if (oldest == WF_RANK_LIVE) { /* all in use (each in the ring) */
		for (uint32_t e = 0; e < WF_RANK_LIVE; e++) {
			uint32_t r = 0;
			while (r < s->recent_count && s->recent[recent_slot(s, r)].item != WF_RANK_LIVE_ITEM(e))
				r++;
			if (e == 0 || r > oldest_r) {
				oldest_r = r;
				oldest = e;
			}
		}
		for (uint32_t j = 0; j < WF_RANK_RECENT; j++)
			if (s->recent[j].item == WF_RANK_LIVE_ITEM(oldest))
				s->recent[j].item = -1;
		live_free(s, oldest);
	}
	s->live_key[oldest] = key;
	s->live |= (uint8_t)(1u << oldest);
	return oldest;
}

/* Enter an item event in the recent ring: item (a snapshot index, or
 * WF_RANK_LIVE_ITEM(i)), cat its category. A repeated look at the newest
 * item strengthens it rather than pushing older items out of the ring. A
 * live item no entry names any longer is forgotten. */
static inline __attribute__((always_inline)) void ring_add(struct wf_rank_session *s,
							    const struct wf_rank_params *p, int32_t item,
							    uint32_t cat, float w, float reps)
{
	uint32_t last = recent_slot(s, 0), h = s->recent_head;
	int32_t old = s->recent[h].item;

	if (s->recent_count && s->recent[last].item == item) {
		s->recent[last].strength += w;
		s->recent[last].reps += reps;
		return;
	}
	s->recent[h].item = item;
	s->recent[h].strength = w;
	s->recent[h].reps = reps;
	s->recent_cats[h] = cat;
	if (old < -1 && old != item) {
		uint32_t j = 0;
		while (j < WF_RANK_RECENT && s->recent[j].item != old)
			j++;
		if (j == WF_RANK_RECENT)
			live_free(s, (uint32_t)(-2 - old));
	}
	s->recent_head = (uint16_t)((s->recent_head + 1) % WF_RANK_RECENT);
	if (s->recent_count < WF_RANK_RECENT)
		s->recent_count++;
	s->nitem_events++;
	detect_pivot(s, p);
}

/* An event's strength (0: it does not enter the ring). */
static float event_strength(const struct wf_rank_params *p, int type, uint32_t value)
{
	float w = p->strength[type];

	if (type == WF_EV_DWELL)
		w *= WF_MIN((float)value / p->dwell_ms_full, 1.0f);
	return w;
}

/* An event of a live item (key): a ring place like any item event, no
 * category, brand or band; the cart and purchases by its live_key entry. */
static void live_apply(struct wf_rank_session *s, const struct wf_rank_params *p, int type, uint64_t key,
		       uint32_t value)
{
	float w = event_strength(p, type, value);
	int i;

	if (w > 0) {
		decay_all(s, p, w);
		ring_add(s, p, WF_RANK_LIVE_ITEM(live_alloc(s, key)), UINT32_MAX, w, WF_MAX(1.0f, w / p->rep_unit));
	}
	if ((i = live_index(s, key)) < 0)
		return;
	uint8_t bit = (uint8_t)(1u << i);
	if (type == WF_EV_CART_ADD)
		s->live_cart |= bit;
	else if (type == WF_EV_CART_REMOVE)
		s->live_cart &= (uint8_t)~bit;
	else if (type == WF_EV_PURCHASE) {
		s->live_cart &= (uint8_t)~bit;
		s->live_bought |= bit;
	}
}

/* wf_rank_session_apply_key(), inlined into both entry points (an EVENT
 * pays no extra call). */
static inline __attribute__((always_inline)) void session_apply(struct wf_rank_session *s,
								const struct wf_snap *snap,
								const struct wf_rank_params *p, int type,
								int64_t item, uint64_t key, uint32_t value)
{
	float w, reps;

	if (type < 0 || type >= WF_EV_COUNT)
		return;
	s->nevents++;
	if (item < 0 || (uint64_t)item >= snap->nitems) {
		if (key) /* an item the snapshot does not know: a live one */
			live_apply(s, p, type, key, value);
		return; /* else none (search): nothing to learn from */
	}
	if (type == WF_EV_CART_ADD)
		set_add(s->cart, (int32_t)item);
	else if (type == WF_EV_CART_REMOVE)
		set_del(s->cart, item);
	else if (type == WF_EV_PURCHASE) {
		set_del(s->cart, item);
		set_add(s->bought, (int32_t)item);
	}
	w = event_strength(p, type, value);
	if (!(w > 0))
		return;
	reps = WF_MAX(1.0f, w / p->rep_unit);
	decay_all(s, p, w);

	const struct wf_snap_item *it = &snap->items[item];
	if (it->category != WF_SNAP_NO_CAT)
		aff_add(s->cat, it->category, w, reps);
	if (it->brand != WF_SNAP_NO_CAT)
		aff_add(s->brand, it->brand, w, reps);
	if (it->price_band < WF_RANK_BANDS) {
		s->band_w[it->price_band] += w;
		s->band_n[it->price_band] += reps;
	}
	ring_add(s, p, (int32_t)item, it->category, w, reps);
}

void wf_rank_session_apply(struct wf_rank_session *s, const struct wf_snap *snap, const struct wf_rank_params *p,
			   int type, int64_t item, uint32_t value)
{
	session_apply(s, snap, p, type, item, 0, value);
}

void wf_rank_session_apply_key(struct wf_rank_session *s, const struct wf_snap *snap,
			       const struct wf_rank_params *p, int type, int64_t item, uint64_t key, uint32_t value)
{
	session_apply(s, snap, p, type, item, key, value);
}

int wf_rank_live_key(const struct wf_rank_session *s, uint32_t code, uint64_t *ret_key)
{
	uint32_t i = code - WF_RANK_LIVE_BASE;

	if (!wf_rank_is_live(code) || i >= WF_RANK_LIVE || !(s->live >> i & 1))
		return -ENOENT;
	*ret_key = s->live_key[i];
	return 0;
}

int64_t wf_rank_live_code(const struct wf_rank_session *s, uint64_t key)
{
	int i = key ? live_index(s, key) : -1;

	return i < 0 ? -1 : (int64_t)WF_RANK_LIVE_BASE + i;
}

int wf_rank_session_top_category(const struct wf_rank_session *s, uint32_t *ret_cat, float *ret_w)
{
	int best = -1;

	for (uint32_t i = 0; i < WF_RANK_AFF; i++)
		if (s->cat[i].key != UINT32_MAX && (best < 0 || s->cat[i].w > s->cat[best].w))
			best = (int)i;
	if (best < 0)
		return -1;
	*ret_cat = s->cat[best].key;
	*ret_w = s->cat[best].w;
	return 0;
}

/* ---- what a session says to one query ---- */

/* Category affinity: during a pivot the recent window alone speaks, as if
 * its events were all the session had. */
static float cat_affinity(const struct wf_rank_session *s, const struct wf_rank_params *p, uint32_t cat)
{
	if (s->pivot) {
		uint32_t win = WF_MIN(p->recent_window, (uint32_t)s->recent_count);
		float w = 0, n = 0;
		for (uint32_t i = 0; i < win; i++) {
			uint32_t j = recent_slot(s, i);
			if (s->recent_cats[j] == cat) {
				w += s->recent[j].strength;
				n += s->recent[j].reps;
			}
		}
		return wf_rank_evidence(p, w, n);
	}
	const struct wf_rank_aff *a = aff_get(s->cat, cat);
	return a ? wf_rank_evidence(p, a->w, a->n) : 0.0f;
}

/* How far this session may move the list: grows with repeated item
 * events (one click: little; several: a lot). The same factor for every
 * feature but the batch list's (the catalog prior too), so it never
 * reorders the session's own candidates among themselves, only against
 * the batch list (anti-jitter). A session with no item event yet has
 * nothing to damp: 1, as with no session. */
static float session_confidence(const struct wf_rank_session *s, const struct wf_rank_params *p)
{
	if (s->nitem_events == 0)
		return 1.0f;
	float n3 = (float)s->nitem_events * (float)s->nitem_events * (float)s->nitem_events;
	float c3 = p->confidence_events * p->confidence_events * p->confidence_events;

	return n3 / (n3 + c3);
}

/* The session's evidence for one key (a category or brand), in every
 * lane of its table row; a +0 value is left out (a lookup that
 * finds no key gives +0 as well). */
static void ev_put(struct wf_rank_scratch *w, uint32_t key, float val)
{
	uint32_t bits;

	memcpy(&bits, &val, sizeof(bits));
	if (bits == 0)
		return;
	for (uint32_t l = 0; l < 4; l++) {
		w->ev_key[w->nev][l] = key;
		w->ev_val[w->nev][l] = bits;
	}
	w->nev++;
}

/* Evidence of every category, brand and band the session touched, once
 * per query (rank_int.h): scoring then only looks values up. */
void rank_session_evidence(struct wf_rank_scratch *w, const struct wf_snap *snap, const struct wf_rank_session *s,
			   const struct wf_rank_params *p)
{
	w->nev = 0;
	if (s->pivot) {
		uint32_t win = WF_MIN(p->recent_window, (uint32_t)s->recent_count);
		for (uint32_t i = 0; i < win; i++) {
			uint32_t c = s->recent_cats[recent_slot(s, i)], k;
			if (c == UINT32_MAX)
				continue;
			for (k = 0; k < i && s->recent_cats[recent_slot(s, k)] != c; k++)
				;
			if (k == i) /* the first time the window has c */
				ev_put(w, c, cat_affinity(s, p, c));
		}
	} else {
		for (uint32_t i = 0; i < WF_RANK_AFF; i++)
			if (s->cat[i].key != UINT32_MAX)
				ev_put(w, s->cat[i].key, wf_rank_evidence(p, s->cat[i].w, s->cat[i].n));
	}
	w->ncat = w->nev;
	for (uint32_t i = 0; i < WF_RANK_AFF; i++)
		if (s->brand[i].key != UINT32_MAX)
			ev_put(w, s->brand[i].key, wf_rank_evidence(p, s->brand[i].w, s->brand[i].n));
	w->nbrand = w->nev - w->ncat;
	for (uint32_t b = 0; b < WF_RANK_BANDS; b++)
		w->band_ev[b] = wf_rank_evidence(p, s->band_w[b], s->band_n[b]);
	w->band_ev[WF_RANK_BANDS] = 0;
	w->confidence = session_confidence(s, p);
	/* By index, when the session has evidence and every key has its
	 * place (a snapshot checks its items' names; a key outside them
	 * leaves the rows alone). */
	w->dcats = snap->ncats;
	w->dbrands = snap->nbrands;
	w->direct = s->total > 0 && (uint64_t)snap->ncats + snap->nbrands + 2 <= WF_RANK_EV_DIRECT;
	for (uint32_t j = 0; j < w->ncat + w->nbrand && w->direct; j++)
		w->direct = w->ev_key[j][0] < (j < w->ncat ? w->dcats : w->dbrands);
	if (!w->direct)
		return;
	memset(w->ev_direct, 0, (w->dcats + w->dbrands + 2) * sizeof(w->ev_direct[0]));
	for (uint32_t j = 0; j < w->ncat + w->nbrand; j++) {
		float v;
		memcpy(&v, &w->ev_val[j][0], sizeof(v));
		w->ev_direct[j < w->ncat ? w->ev_key[j][0] : w->dcats + 1 + w->ev_key[j][0]] = v;
	}
}
