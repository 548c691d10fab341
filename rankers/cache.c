/*
 * cache.c - what a ranker's RECS and RERANK resolve before scoring (the
 * session, the user and their batch list, weights, the live stock
 * filter), the ranked-list cache (struct ranker_cached) and the
 * publication of its lists in the shard's front table (shm/front.h).
 * Linked only into weft-ranker.
 */
#include <errno.h>
#include <string.h>

#include "lib/proto.h"
#include "rankers/ranker_int.h"
#include "shm/front.h"

/* A live item (lib/rank/rank.h WF_RANK_LIVE_BASE) by its key, the stock
 * table's: what the table says, else in stock, and without sizes (a size
 * asked for is not granted, as for a snapshot item without sizes). */
static int live_stock_ok(const struct ranker_stock_filter *f, uint32_t code)
{
	uint64_t key;

	if (!f->sess || wf_rank_live_key(f->sess, code, &key) < 0)
		return 0;
	return wf_stock_ok(f->stock, key, 0, 0, f->size, f->size_len);
}

static int stock_ok(void *p, uint32_t item)
{
	const struct ranker_stock_filter *f = p;

	if (__builtin_expect(wf_rank_is_live(item), 0))
		return live_stock_ok(f, item);
	const struct wf_snap_item *it = &f->snap->items[item];

	return wf_stock_ok(f->stock, f->keys[item], it->flags & WF_SNAP_ITEM_SOLD_OUT, it->nsizes, f->size,
			   f->size_len);
}

/* stock_ok()'s reads of item, started: its snapshot row and its stock
 * slot (a snapshot item: a live one is rare and resolved through the
 * session). */
static void stock_prefetch(void *p, uint32_t item)
{
	const struct ranker_stock_filter *f = p;

	if (wf_rank_is_live(item))
		return;
	wf_prefetch(&f->snap->items[item]); /* its sold-out flag and size count */
	wf_stock_prefetch(f->stock, f->keys[item]);
}

/* The snapshot user id (len bytes, wf_hash64() h) names in generation g,
 * with their batch list: from this shard's owned table, or the mapped file
 * for another shard's user. -1 (no list) when g does not know it. */
static int64_t user_find(const struct ranker_ctx *ctx, const struct ranker_gen *g, const char *id, size_t len,
			 uint64_t h, const struct wf_snap_cand **ret_cands, uint32_t *ret_n)
{
	int64_t u;

	if (g->owned && wf_shard_of_hash(h, wf_shm_nshards(ctx->shm)) == ctx->shard) {
		uint64_t key = h | 1;
		for (uint32_t i = (uint32_t)key & g->owned_mask; g->owned[i].key; i = (i + 1) & g->owned_mask) {
			const struct wf_snap_user *su = &g->snap->users[g->owned[i].user];
			if (g->owned[i].key == key && su->id_len == len &&
			    memcmp(wf_snap_str(g->snap, su->id_off), id, len) == 0) {
				*ret_cands = g->owned[i].cands;
				*ret_n = g->owned[i].ncands;
				return g->owned[i].user;
			}
		}
		return -1;
	}
	u = wf_snap_user_find(g->snap, id, len);
	if (u >= 0) {
		*ret_cands = g->snap->cands + g->snap->users[u].cand_off;
		*ret_n = g->snap->users[u].cand_cnt;
	}
	return u;
}

int64_t ranker_user_lookup(struct ranker_ctx *ctx, const char *id, size_t len, const struct wf_snap_cand **ret_cands,
			   uint32_t *ret_n)
{
	struct ranker_gen *g = ctx->cur;
	const struct ranker_hint *h = &ctx->hint;
	int own = id == h->user_p && len == h->user_len; /* this request's user argument */

	*ret_cands = NULL;
	*ret_n = 0;
	if (!g || len == 0 || wf_user_is_anon(id, len))
		return -1;
	if (own && h->g == g) { /* resolved by ranker_lookahead() */
		*ret_cands = h->cands;
		*ret_n = h->ncands;
		return h->user;
	}
	return user_find(ctx, g, id, len, own ? h->user_key : wf_hash64(id, len), ret_cands, ret_n);
}

void ranker_query_setup(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, int page, struct ranker_query *e)
{
	const char *uid = argv[1].p;
	size_t ulen = argv[1].len;
	int visitor;

	memset(e, 0, sizeof(*e));
	e->sess = ranker_session_find(ctx, &argv[0]);
	ranker_session_fresh(ctx, e->sess);
	if (wf_user_is_anon(argv[1].p, argv[1].len) && e->sess && e->sess->user) {
		uid = e->sess->user;
		ulen = e->sess->user_len;
	}
	e->user = ranker_user_lookup(ctx, uid, ulen, &e->q.cands, &e->q.ncands);
	visitor = e->user >= 0 ? WF_VISITOR_RETURNING : WF_VISITOR_NEW;
	wf_ctl_weights_get(ctx->shm->ctl, page, visitor, &e->q.w_batch, &e->q.w_session);
	e->q.sess = e->sess ? &e->sess->model : NULL;
	e->q.anchor = -1;
	e->f.snap = ctx->cur->snap;
	e->f.keys = ctx->cur->stock_keys;
	e->f.stock = ctx->shm->stock;
	e->f.sess = e->q.sess;
	e->q.filter = stock_ok;
	e->q.filter_ctx = &e->f;
	e->q.filter_prefetch = stock_prefetch;
	if (e->sess)
		ranker_session_touch(ctx, e->sess, wf_wall_ms());
}

static uint32_t float_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/* The cache set (two ways) of a query: by its session's key (or
 * CACHE_NO_SESSION), resolved user and anchor. */
#define CACHE_NO_SESSION 0x9e3779b97f4a7c15ull

static struct ranker_cached *cache_set(const struct ranker_ctx *ctx, uint64_t sess_key, int64_t user, int64_t anchor)
{
	uint64_t h = sess_key ^ ((uint64_t)(user + 1) * 0xff51afd7ed558ccdull) ^
		     ((uint64_t)(anchor + 1) * 0xc4ceb9fe1a85ec53ull);

	h ^= h >> 29;
	return &ctx->cache[(h ^ (h >> 32)) & (RANKER_CACHE_SLOTS - 2)];
}

/* Start loading what ranker_recs_cached() compares in a set: each way's inputs
 * (its first 48 bytes). */
static void cache_set_prefetch(const struct ranker_cached *set)
{
	wf_prefetch(&set[0]);
	wf_prefetch(&set[1]);
	wf_prefetch((const char *)&set[1] + offsetof(struct ranker_cached, used));
}

void ranker_lookahead(struct ranker_ctx *ctx, struct ranker_hint *h)
{
	const struct ranker_gen *g = ctx->cur;
	int64_t u;

	if (!h->user_p || !g || !ctx->cache || h->user_len == 0 || wf_user_is_anon(h->user_p, h->user_len))
		return;
	u = user_find(ctx, g, h->user_p, h->user_len, h->user_key, &h->cands, &h->ncands);
	h->user = u;
	h->g = g;
	if (!h->recs)
		return; /* an EVENT's user, for its segment step: no list read */
	cache_set_prefetch(cache_set(ctx, h->sess_key, u, -1));
	cache_set_prefetch(cache_set(ctx, CACHE_NO_SESSION, u, -1));
}

/* Note a query's inputs in way, or when way is NULL in the least recently
 * used way of set: the entry gets n 0 and state; a list is the caller's
 * to fill. */
static struct ranker_cached *cache_note(struct ranker_ctx *ctx, const struct ranker_query *e, struct ranker_cached *set,
					struct ranker_cached *way, int state)
{
	struct ranker_cached *c = way ? way : set[0].used <= set[1].used ? &set[0] : &set[1];

	c->gen = ctx->cur->gen;
	c->stamp = e->sess ? e->sess->stamp : 0;
	c->user = e->user;
	c->cands = e->q.cands;
	c->anchor = e->q.anchor;
	c->w_batch_bits = float_bits(e->q.w_batch);
	c->w_session_bits = float_bits(e->q.w_session);
	c->n = 0;
	c->complete = 0;
	c->state = (uint8_t)state;
	c->args_key = 0;
	return c;
}

/*
 * RECS through the ranked-list cache (see struct ranker_cached): fill the
 * entry if any input changed, then filter its prefix by live stock.
 * Returns the count written to out (<= k), or -ENOENT when the caller must
 * compute the query fresh: the prefix ran out before k items passed the
 * filter and the pool was longer, or the query has session state and is
 * seen for the first time (a new pairing of session and user often never
 * comes back: only its inputs are noted, a ghost, and the list of
 * RANKER_CACHE_DEPTH is ranked if it does). So the answer is always the
 * fresh one.
 */
int ranker_recs_cached(struct ranker_ctx *ctx, const struct ranker_query *e, uint32_t k, uint32_t *out,
		       const struct ranker_cached **ret_c)
{
	uint64_t stamp = e->sess ? e->sess->stamp : 0;
	uint32_t wb = float_bits(e->q.w_batch), ws = float_bits(e->q.w_session), n = 0;
	struct ranker_cached *c, *set = cache_set(ctx, e->sess ? e->sess->key : CACHE_NO_SESSION, e->user, e->q.anchor);
	int hit = 0;

	for (int w = 0; w < 2 && !hit; w++) {
		c = &set[w];
		hit = c->gen == ctx->cur->gen && c->stamp == stamp && c->user == e->user && c->cands == e->q.cands &&
		      c->anchor == e->q.anchor && c->w_batch_bits == wb && c->w_session_bits == ws;
	}
	if (hit && c->state != RANKER_GHOST) {
		ctx->cache_hits++;
	} else if (!hit && e->sess) {
		/* First sight: only the inputs; the caller ranks for k. */
		c = cache_note(ctx, e, set, NULL, RANKER_GHOST);
		c->used = ++ctx->cache_tick;
		ctx->cache_ghosts++;
		return -ENOENT;
	} else {
		struct wf_rank_query q = e->q;
		float scores[RANKER_CACHE_DEPTH];
		int m;

		/* A ghost that came back was seen twice. */
		c = hit ? cache_note(ctx, e, set, c, RANKER_TWICE) : cache_note(ctx, e, set, NULL, RANKER_LIST);
		q.k = RANKER_CACHE_DEPTH;
		q.filter = NULL; /* stock is read at query time, below */
		q.filter_ctx = NULL;
		m = wf_rank_recs(ctx->cur->snap, &ctx->params, &q, ctx->scratch, c->items, scores, NULL);
		c->n = (uint16_t)m;
		c->complete = m < (int)RANKER_CACHE_DEPTH;
		ctx->cache_fills++;
	}
	c->used = ++ctx->cache_tick;
	/* Overlap stock_ok()'s cache misses: start its reads first. */
	for (uint32_t i = 0; i < c->n && i < k + 8; i++)
		stock_prefetch((void *)&e->f, c->items[i]);
	for (uint32_t i = 0; i < c->n && n < k; i++)
		if (stock_ok((void *)&e->f, c->items[i]))
			out[n++] = c->items[i];
	if (n < k && !c->complete) {
		ctx->cache_short++;
		return -ENOENT;
	}
	*ret_c = c;
	return (int)n;
}

/*
 * Publish the list a RECS was answered from in the shard's front table, so
 * weft-ingest can answer the same request itself while nothing it depends
 * on changes (see struct wf_front_entry). wseq: the weights seqlock count
 * read before the query (odd: do not publish). sess: the query's session;
 * NULL: the session has no state here (quiet), so the answer is the
 * user's alone and goes under the quiet key, for any session without
 * state (see layout.h). A live item of the list is published by its id
 * (from sess's history) and stock key; one that cannot be resolved
 * publishes nothing.
 */
void ranker_front_publish(struct ranker_ctx *ctx, const struct wf_msg_req *hdr, const struct wf_msg_arg *argv,
			  uint32_t argc, const struct ranker_cached *c, uint32_t wseq, const struct ranker_session *sess)
{
	int quiet = sess == NULL;
	struct wf_front_stage st; /* staging copy, written in one run by wf_front_publish() */
	struct wf_front_key key;

	/* acquire: pairs with the release in wf_seq_write_end() (weights). */
	if (!ctx->front || !hdr->lsn || (wseq & 1) ||
	    atomic_load_explicit(&ctx->shm->ctl->weights_lock.seq, memory_order_acquire) != wseq)
		return;
	wf_front_key_init(&key, quiet);
	for (uint32_t i = quiet ? 1 : 0; i < argc; i++)
		if (wf_front_key_add(&key, argv[i].p, argv[i].len) < 0)
			return;
	wf_front_key_seal(&key);
	/* Publish only a request seen twice with the same list: a one-off
	 * (say, a random session id per query) would only cost a ~1 KiB write
	 * here and a cache miss in ingest (a list ranked for a ghost's return
	 * was seen twice). A quiet answer serves every session of its user
	 * without state: published at once. */
	if (!quiet && c->state != RANKER_TWICE && c->args_key != key.hash) {
		((struct ranker_cached *)c)->args_key = key.hash;
		return;
	}
	wf_front_stage_init(&st, &key,
			    &(struct wf_front_deps){
				    .sver = quiet ? 0 : hdr->lsn,
				    .gen = ctx->cur->gen,
				    .until_ms = wf_wall_ms() + ctx->session_ttl_ms / 2,
				    .epoch = (uint32_t)(hdr->req_id >> 32),
				    /* relaxed: our own field */
				    .starts = atomic_load_explicit(&ctx->sc->ranker_starts, memory_order_relaxed),
				    .wseq = wseq,
			    });
	for (uint32_t i = 0; i < c->n; i++) {
		const struct wf_snap_item *it;
		const char *id;
		uint32_t len;
		uint64_t lkey;
		if (wf_rank_is_live(c->items[i])) {
			/* A live item: its id from the session's history, its
			 * stock key, never sold out by the snapshot, no sizes
			 * (as live_stock_ok() has it). Unresolvable: no entry. */
			if (!sess || ranker_live_id(sess, c->items[i], &id, &len) < 0 ||
			    wf_rank_live_key(&sess->model, c->items[i], &lkey) < 0)
				return;
			if (wf_front_stage_item(&st, lkey, 0, id, len) < 0)
				break;
			continue;
		}
		it = &ctx->cur->snap->items[c->items[i]];
		if (wf_front_stage_item(&st, ctx->cur->stock_keys[c->items[i]], (it->flags & WF_SNAP_ITEM_SOLD_OUT) != 0,
					wf_snap_str(ctx->cur->snap, it->id_off), it->id_len) < 0)
			break;
	}
	wf_front_publish(ctx->front, &st, c->complete);
}
