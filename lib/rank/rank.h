/*
 * rank.h - weft's scoring library: the session model and the hybrid
 * ranking, one library linked into weft-ranker, weft-eval and weft-batch,
 * so offline and online scoring cannot drift apart.
 *
 *   score = sum over the model's features f of weight_f * feature_f
 *           + complement - penalty
 *
 * (the features: enum wf_rank_feature; the weights learned nightly by
 * weft-batch and carried in the snapshot's MODEL, else the defaults of
 * struct wf_rank_params), with the query's w_batch on the batch feature
 * and w_session times the session's confidence on every other one, over
 * a candidate pool = the user's batch list, the neighbours and the
 * transitions of the session's recent items (and of an ANCHOR item), the
 * recent items themselves (returns, scored by the learned repeat curve),
 * the complements of the cart, and the popular and trending items.
 *
 * The session state is fixed-size (no allocation) and clock-free: affinity
 * decays per event, not per second, so a replay gives the same scores as
 * the live appliance. Every score comes with its parts (EXPLAIN), which add
 * up to it exactly.
 *
 * Pure functions over caller memory; never logs, never allocates.
 */
#ifndef WF_RANK_H
#define WF_RANK_H

#include <stdint.h>

#include "lib/proto.h"
#include "lib/snapshot.h"

#define WF_RANK_RECENT 16u   /* recent item events kept */
#define WF_RANK_AFF 8u       /* category / brand affinity slots */
#define WF_RANK_CART 8u      /* cart and purchased items kept */
#define WF_RANK_BANDS 5u     /* price bands */
#define WF_RANK_POOL 2048u   /* candidate pool bound per query */
#define WF_RANK_MAX_K 500u
#define WF_RANK_MULTI 2u   /* queries per wf_rank_positions() call */
#define WF_RANK_EV_DIRECT 2048u /* categories + brands + 2 up to which evidence is looked up by index */
#define WF_RANK_LIVE 8u      /* live items (not in the snapshot) a session's ring names at once */

/*
 * The features of a pool entry, the model's named parts. Each is a number
 * the scoring computes from the snapshot and the session; the score is
 * their weighted sum. Features of the session (all but BATCH) are scaled
 * by the query's w_session and the session's confidence when the query
 * has a batch list (with none, nothing is blended and the scale is 1).
 */
enum wf_rank_feature {
	WF_RANK_F_BATCH,  /* the item's batch score / the list's best (listed items only) */
	WF_RANK_F_CAT,    /* the session's category evidence for the item, a(w, n) */
	WF_RANK_F_BRAND,  /* ... brand evidence */
	WF_RANK_F_BAND,   /* ... price band evidence */
	WF_RANK_F_NEIGH,  /* co-occurrence (NEIGH) with the recent items and the anchor, <= 1 */
	WF_RANK_F_SEQ1,   /* transitions (SEQ) from the newest recent item and the anchor, <= 1 */
	WF_RANK_F_SEQ,    /* ... from the older recent items (up to neigh_items), <= 1 */
	WF_RANK_F_REPEAT, /* the learned chance of returning to it (MODEL repeat curve) */
	WF_RANK_F_POP,    /* popularity (items outside the batch list) */
	WF_RANK_F_TREND,  /* trend / (1 + trend) (items outside the batch list) */
	WF_RANK_NFEAT
};
_Static_assert(WF_RANK_NFEAT <= WF_SNAP_MODEL_FEATS, "the snapshot's MODEL holds every feature's weight");
#define WF_RANK_FEATURE_SET 1u   /* this list of features (a MODEL for another list is ignored) */
#define WF_RANK_MODEL_VERSION 1u /* what weft-batch's fit writes into MODEL.version */

/* The feature's name ("batch", "cat", ...; "?" out of range). */
const char *wf_rank_feature_name(uint32_t f);

/* Every weight and constant of the model, in one place (the offline
 * evaluator tunes these; nothing else in weft hard-codes a model number). */
struct wf_rank_params {
	float strength[WF_EV_COUNT]; /* purchase > cart_add > pdp > click > dwell > hover > view */
	float dwell_ms_full;         /* dwell of this many ms counts its full strength */
	float decay;                 /* evidence is multiplied by this at each new item event */
	/*
	 * Anti-jitter. Evidence for a category, brand, price band or recent item
	 * is a decayed strength w and a decayed repetition count n; its weight
	 *   a(w, n) = (1 - exp(-w / tau)) * n^3 / (n^3 + rho^3)
	 * saturates in strength and needs repetition: one click gives little,
	 * three looks at a category a lot. An event counts as
	 * max(1, strength / rep_unit) repetitions, so one strong event (cart_add,
	 * purchase) weighs like several weak ones.
	 */
	float tau, rho, rep_unit;
	/* Default feature weights, used when the snapshot carries no fitted
	 * model (MODEL.version 0, or another feature set): */
	float w_batch_feat;          /* BATCH */
	float w_cat, w_brand, w_band;/* CAT, BRAND, BAND */
	float w_neigh;               /* NEIGH */
	float w_seq;                 /* SEQ1, SEQ */
	float w_recent_item;         /* REPEAT */
	float w_trend, w_pop;        /* TREND, POP */
	float confidence_events;     /* session confidence n^3 / (n^3 + this^3), n item events */
	/*
	 * Complements of the cart: an item that complements a carted item
	 * with score c (snapshot COMPL) gets
	 *   c * fresh * (w_compl + w_compl_lift * top)
	 * fresh = decay^r, r the carted item's place in the recent ring
	 * (decay^WF_RANK_RECENT once it left it)
	 * where top is the best score of the pool's other entries, so the
	 * strongest complements come near the top of the list however
	 * strong the session's other evidence is.
	 */
	float w_compl, w_compl_lift;
	float penalty_seen;          /* per repeat look at an item already in the recent ring */
	uint32_t recent_window;      /* events in the "recent" window for pivot detection */
	float pivot_recent_share;    /* recent window's top category share to call a pivot */
	float pivot_before_share;    /* ...while the earlier session gave it at most this */
	uint32_t neigh_items;        /* recent items whose neighbours join the pool */
	uint32_t pool_popular;       /* popular items in every pool */
	uint32_t pool_trending;      /* trending items in every pool */
	uint32_t drop_features;      /* evaluation only (weft-eval --drop-features): bit f set, feature
	                              * f's weight is taken as 0, an ablation; always 0 in service */
};

void wf_rank_params_default(struct wf_rank_params *p);

struct wf_rank_aff {
	uint32_t key; /* category, brand (snapshot index); UINT32_MAX empty */
	float w;      /* decayed strength */
	float n;      /* decayed repetitions */
};

/*
 * One shopper's visit, as the model sees it: fixed size, no pointers, so
 * the caller may keep it anywhere (the ranker keeps it in its session
 * arena) and copy it freely. Owner: the caller.
 */
struct wf_rank_session {
	uint32_t nevents;                        /* events applied */
	uint32_t nitem_events;                   /* of which entered the recent ring */
	uint16_t recent_head, recent_count;
	struct {
		int32_t item;                    /* snapshot index, or WF_RANK_LIVE_ITEM(i) */
		float strength;                  /* summed over consecutive repeats */
		float reps;
	} recent[WF_RANK_RECENT];                /* ring: newest at recent_head - 1 */
	/* Live items (see WF_RANK_LIVE_BASE): the keys of the items the
	 * ring names WF_RANK_LIVE_ITEM(i), entry i in use while a ring
	 * entry names it (live), in the cart (live_cart) or bought
	 * (live_bought): never recommended, as carted and bought snapshot
	 * items. */
	uint64_t live_key[WF_RANK_LIVE];
	uint8_t live, live_cart, live_bought;    /* bit per live_key entry */
	int32_t cart[WF_RANK_CART];              /* -1 empty */
	int32_t bought[WF_RANK_CART];
	struct wf_rank_aff cat[WF_RANK_AFF];     /* decayed, whole session */
	struct wf_rank_aff brand[WF_RANK_AFF];
	float band_w[WF_RANK_BANDS], band_n[WF_RANK_BANDS];
	uint32_t recent_cats[WF_RANK_RECENT];    /* category per recent entry (pivot) */
	uint16_t pivots;                         /* pivots detected so far */
	uint8_t pivot;                           /* 1 while the recent window diverges */
	uint8_t pad;
	float total;                             /* decayed total strength */
};
_Static_assert(sizeof(struct wf_rank_session) < 1024, "a session must stay under 1 KiB");
_Static_assert(WF_RANK_LIVE <= 8, "a live_key entry per bit of live, live_cart, live_bought");

/*
 * Live items: an item the session viewed that the snapshot does not know
 * (new in the catalog since the snapshot, or too rare to be in it) is
 * kept in the recent ring by its key (the caller's 64-bit hash of the
 * item id, never 0: weft uses wf_hash64(id) | 1, the stock table's key)
 * and may come back as a return: its REPEAT feature is the learned curve
 * at its ring place (the newest place with a curve value > 0, as a
 * snapshot item's), every other feature 0 (its parts sum to its score as
 * every entry's do), scaled like the session's other features. It takes
 * a ring place like any item event (so the places of the others, the
 * session's confidence and its evidence decay count it), adds no
 * category, brand or band evidence, and leads to no neighbours.
 *
 * The ring names at most WF_RANK_LIVE live items at once (a session
 * arena entry stays under 1 KiB): a ninth forgets the one whose newest
 * place is the oldest (its places then count as an unknown item's). A
 * live item's cart and purchase are remembered while the ring names it.
 *
 * wf_rank_recs(), EXPLAIN and wf_rank_positions() name a live item by a
 * code outside every snapshot's index range: WF_RANK_LIVE_BASE + its
 * live_key entry (valid while the ring names it: resolve it with
 * wf_rank_live_key() before the next event). Ordering is one rule
 * for every entry (higher score, then lower code), so a live item follows
 * a snapshot item of equal score. Live items are outside the query's
 * pool: they never raise the complements' lift base, and the query's
 * filter is asked about their codes too (it resolves them with
 * wf_rank_live_key()). Never returned: a carted or bought live item, or
 * the query's anchor_key. wf_rank_features() (the fit) knows only
 * snapshot items; wf_rank_rerank() scores a live code given to it.
 */
#define WF_RANK_LIVE_BASE 0xffffff00u /* codes LIVE_BASE + live_key entry; snapshots hold fewer items */
#define WF_RANK_LIVE_ITEM(i) (-2 - (int32_t)(i)) /* recent[].item of live_key entry i (< -1) */

static inline int wf_rank_is_live(uint32_t code)
{
	return code >= WF_RANK_LIVE_BASE;
}

/* The key of live code (as wf_rank_recs() returned it for s's current
 * state): 0, or -ENOENT when code names no live item of s. */
int wf_rank_live_key(const struct wf_rank_session *s, uint32_t code, uint64_t *ret_key);

/* The code wf_rank_recs() would give the live item with key, or -1 when
 * s's ring names no live item with that key. */
int64_t wf_rank_live_code(const struct wf_rank_session *s, uint64_t key);

void wf_rank_session_init(struct wf_rank_session *s);

/*
 * Apply one event. item: snapshot index or -1 (unknown item, or a search).
 * value: dwell ms for dwell, else unused. Cart adds and purchases enter the
 * cart / bought sets (removed from results); cart_remove leaves the cart.
 * Decay is per item event, not per second: the model is clock-free, so a
 * replay of the same events (journal, evaluator) gives the same scores.
 */
void wf_rank_session_apply(struct wf_rank_session *s, const struct wf_snap *snap, const struct wf_rank_params *p,
			   int type, int64_t item, uint32_t value);

/* The same, and when item is unknown to snap (< 0 or past its items) and
 * key is not 0, the item is a live one with that key (see
 * WF_RANK_LIVE_BASE). wf_rank_session_apply() is this with key 0. */
void wf_rank_session_apply_key(struct wf_rank_session *s, const struct wf_snap *snap,
			       const struct wf_rank_params *p, int type, int64_t item, uint64_t key, uint32_t value);

/* Evidence weight a(w, n) in [0, 1) (see struct wf_rank_params). */
float wf_rank_evidence(const struct wf_rank_params *p, float w, float n);

/*
 * The parts of a score; their sum, added in this field order in float, is
 * the score bit for bit.
 *   batch      term[BATCH]
 *   session    (term[CAT] + term[BRAND]) + term[BAND]
 *   neighbours ((term[NEIGH] + term[SEQ1]) + term[SEQ]) + term[REPEAT]
 *   trend      term[POP] + term[TREND]: the catalog prior, for items
 *              outside the user's batch list (whose batch score holds it)
 *   complement complements of the cart, lifted by the best other score
 *              (w_compl_lift)
 *   penalty    <= 0: repeat looks (penalty_seen)
 * where term[f] = weight[f] * feature[f] in float, weight[f] the
 * feature's model weight times its scale (w_batch for BATCH; w_session
 * times the session's confidence for the others, 1 without a batch list)
 * and feature[f] as enum wf_rank_feature has it; a term that does not
 * apply is +0.
 */
struct wf_rank_explain {
	float batch, session, neighbours, trend, complement, penalty;
	float weight[WF_RANK_NFEAT], feature[WF_RANK_NFEAT], term[WF_RANK_NFEAT];
};

/* Keep item (1) or drop it (0): stock, size. */
typedef int (*wf_rank_filter_fn)(void *ctx, uint32_t item);

struct wf_rank_query {
	const struct wf_rank_session *sess;  /* may be NULL: empty session */
	const struct wf_snap_cand *cands;    /* the user's batch list, or NULL */
	uint32_t ncands;
	float w_batch, w_session;            /* page x visitor weights (control block) */
	int64_t anchor;                      /* ANCHOR item (PDP), or -1 */
	uint64_t anchor_key;                 /* an ANCHOR the snapshot lacks: its live key, else 0 */
	uint32_t k;                          /* 1..WF_RANK_MAX_K */
	wf_rank_filter_fn filter;            /* may be NULL */
	void *filter_ctx;
	/* May be NULL: told the best few items before filter is asked about
	 * them one by one, to start loading what it will read (its answers
	 * must not depend on it). */
	void (*filter_prefetch)(void *ctx, uint32_t item);
};

enum { WF_RANK_ACC_NEIGH, WF_RANK_ACC_SEQ1, WF_RANK_ACC_SEQ, WF_RANK_ACC_SEEN };

/* Scratch memory for one query at a time (one per thread, ~165 KiB),
 * zeroed before its first use (calloc): each query clears only the pool
 * hash slots the previous one filled. */
struct wf_rank_scratch {
	uint64_t slot[WF_RANK_POOL * 2];     /* pool hash: item << 32 | pool index + 1, 0 empty */
	uint32_t item[WF_RANK_POOL];
	uint16_t slotix[WF_RANK_POOL];       /* each entry's slot in slot[] (the next query clears those) */
	float batch[WF_RANK_POOL];           /* normalised batch score, < 0: not in the list */
	/* per entry its neighbour, newest-item transition, transition and
	 * repeat sums (WF_RANK_ACC_*), side by side: one store clears them */
	float acc[WF_RANK_POOL][4] __attribute__((aligned(16)));
	float compl[WF_RANK_POOL];
	float score[WF_RANK_POOL];
	uint32_t order[WF_RANK_POOL];
	uint64_t key[WF_RANK_POOL];          /* order key of each scored entry (selection) */
	uint32_t n, cap;
	/* The session's evidence per category (rows [0, ncat)) and brand (the
	 * next nbrand rows), computed once per query, not once per scored
	 * item: key and value bits, each repeated in the 4 lanes the scoring
	 * compares at once; no row has a value of +0 (what a lookup that
	 * finds no key gives). */
	uint32_t ev_key[WF_RANK_AFF + WF_RANK_RECENT + WF_RANK_AFF][4];
	uint32_t ev_val[WF_RANK_AFF + WF_RANK_RECENT + WF_RANK_AFF][4];
	uint32_t ncat, nbrand, nev;
	/* The same evidence indexed by category (ev_direct[0, dcats), then a
	 * 0 at dcats) and brand (from dcats + 1, then a 0), when the
	 * snapshot's names fit (direct = 1), and by band (a 0 at
	 * WF_RANK_BANDS): one load per entry instead of a compare per row. */
	float ev_direct[WF_RANK_EV_DIRECT];
	float band_ev[WF_RANK_BANDS + 1];
	uint32_t direct, dcats, dbrands;
	float confidence;                    /* the session's confidence, once per query */
	uint32_t ncompl;                     /* pool entries that complement the cart */
	float compl_top;                     /* best score among the others (w_compl_lift) */
	/* wf_rank_positions(), several queries from one pool: per query its
	 * batch scores and scores. */
	float mbatch[WF_RANK_MULTI][WF_RANK_POOL];
	float mscore[WF_RANK_MULTI][WF_RANK_POOL];
	/* The session's live items for one query (rank.c, live_entries()):
	 * codes, REPEAT features, repeat-look counts, scores and order keys,
	 * best first. */
	uint32_t nlive;
	uint32_t live_code[WF_RANK_LIVE];
	float live_feat[WF_RANK_LIVE], live_seen[WF_RANK_LIVE], live_score[WF_RANK_LIVE];
	uint64_t live_okey[WF_RANK_LIVE];
};

/*
 * Recommend: up to q->k items, best first (ties: lower index), none of them
 * carted, bought, the anchor, or refused by the filter. Returns the count
 * written to out_items/out_scores (and out_explain when non-NULL). An
 * item is a snapshot index or a live item's code (WF_RANK_LIVE_BASE).
 */
int wf_rank_recs(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		 struct wf_rank_scratch *w, uint32_t *out_items, float *out_scores, struct wf_rank_explain *out_explain);

/*
 * Where wf_rank_recs() would place item (a snapshot index, or a live
 * item's code: wf_rank_live_code()) in its lists
 * for nq (1..WF_RANK_MULTI) queries that share the session, anchor, k,
 * filter and filter context and differ only in their batch list and
 * weights (the evaluator's session-only and hybrid variants): ret_pos[i]
 * is its 0-based position in wf_rank_recs()'s list for q[i], or -1 when
 * that list does not hold it (not in the pool, carted, bought, the anchor,
 * refused by the filter, or not among the best q[i].k). The queries share
 * one pool, each entry's session signals looked up once, and it counts
 * instead of selecting and sorting: what an evaluator needs when it only
 * asks where the shopper's next item came. Returns 0, or -EINVAL (nq out
 * of range, or the queries differ in more than list and weights).
 */
int wf_rank_positions(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		      uint32_t nq, struct wf_rank_scratch *w, int64_t item, int32_t *ret_pos);

/*
 * Rerank given items (snapshot indexes, live codes: wf_rank_live_code();
 * -1 for unknown ones) by the score RECS would give them. Writes positions
 * into items[] to out_pos in the new order (equal scores keep the given
 * order), dropping items the filter refuses; unknown items (and live ones
 * RECS would not list: carted, bought, no curve) follow the scored ones in
 * their given order, unfiltered. Returns the count written. n <=
 * WF_RANK_POOL (more are ignored).
 */
int wf_rank_rerank(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		   struct wf_rank_scratch *w, const int64_t *items, uint32_t n, uint32_t *out_pos,
		   float *out_scores);

/*
 * The features of every entry of q's pool, as the scoring computes them:
 * the pool wf_rank_recs() would score for q (carted and bought items and
 * the anchor left out), each entry's item to out_items[i] and its
 * features, already scaled as the score scales them (struct
 * wf_rank_explain: w_batch on BATCH; w_session times the confidence on
 * the others when q has a batch list), to out_feat[i * WF_RANK_NFEAT +
 * f], so that sum_f weight_f * out_feat[i][f] (plus complement and
 * penalty) is the entry's score. weft-batch's fit learns the weights from
 * these, so the fit and the serving cannot drift apart. Writes at most
 * max entries; returns the count. *ret_visitor (may be NULL) gets the
 * visitor type whose weights score q (WF_VISITOR_RETURNING with a batch
 * list, else WF_VISITOR_NEW).
 */
int wf_rank_features(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		     struct wf_rank_scratch *w, uint32_t *out_items, float *out_feat, uint32_t max, int *ret_visitor);

/* The weights the scoring uses for visitor type v (WF_VISITOR_*): the
 * snapshot's fitted MODEL when it has one for this feature set and v,
 * else p's defaults. */
void wf_rank_weights(const struct wf_snap *snap, const struct wf_rank_params *p, int v, float ret[WF_RANK_NFEAT]);

/* The session's strongest category by decayed strength (segments, the
 * evaluator). 0, or -1 when the session has none; outputs untouched then. */
int wf_rank_session_top_category(const struct wf_rank_session *s, uint32_t *ret_cat, float *ret_w);

#endif
