/*
 * session.c - weft-ranker's sessions and client commands: EVENT, RECS,
 * RERANK, HISTORY, SEGMENTS. Sessions live in the ranker's session arena;
 * scoring is the shared library (lib/rank). Linked only into weft-ranker.
 */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <math.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>

#include "lib/journal.h"
#include "lib/proto.h"
#include "rankers/ranker_int.h"
#include "shm/front.h"

static const char *const segment_names[WF_SEG_COUNT] = {
	"none", "new", "active", "loyal", "vip", "at_risk", "lapsed",
};

void *ranker_alloc(unsigned arena, size_t n)
{
	return mallocx(n, MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE);
}

/* Bytes jemalloc really hands out for a request of n (its size class). */
static uint64_t usable(size_t n)
{
	return n ? nallocx(n, 0) : 0;
}

void ranker_free(void *p)
{
	if (p)
		dallocx(p, MALLOCX_TCACHE_NONE);
}

enum { buckets = RANKER_SESSION_TABLE };

int ranker_sessions_init(struct ranker_ctx *ctx)
{
	ctx->sessions = ranker_alloc(ctx->sess_arena, buckets * sizeof(*ctx->sessions));
	if (!ctx->sessions)
		return -ENOMEM;
	memset(ctx->sessions, 0, buckets * sizeof(*ctx->sessions));
	return 0;
}

static uint64_t session_size(const struct ranker_session *s)
{
	return usable(sizeof(*s) + s->id_len + 1u) + usable(s->hist_cap) + (s->user ? usable(s->user_len + 1u) : 0);
}

static void session_free(struct ranker_ctx *ctx, struct ranker_session *s)
{
	wf_front_live_add(ctx->live, s->key, -1);
	ctx->session_bytes -= session_size(s);
	ranker_free(s->hist);
	ranker_free(s->user);
	ranker_free(s);
	ctx->nsessions--;
}

void ranker_sessions_fini(struct ranker_ctx *ctx)
{
	if (!ctx->sessions)
		return;
	for (uint32_t b = 0; b < buckets; b++)
		while (ctx->sessions[b]) {
			struct ranker_session *s = ctx->sessions[b];
			ctx->sessions[b] = s->next;
			session_free(ctx, s);
		}
	ranker_free(ctx->sessions);
	ctx->sessions = NULL;
}

static int arg_eq(const struct wf_msg_arg *a, const char *s)
{
	size_t n = strlen(s);
	return a->len == n && strncasecmp(a->p, s, n) == 0;
}

static int is_anon(const struct wf_msg_arg *a)
{
	return a->len == 1 && a->p[0] == '-';
}

/* wf_hash64() of a session id: the hint's when id is the request's own. */
static uint64_t session_key(const struct ranker_ctx *ctx, const struct wf_msg_arg *id)
{
	if (id->p == ctx->hint.sess_p && id->len == ctx->hint.sess_len)
		return ctx->hint.sess_key;
	return wf_hash64(id->p, id->len);
}

static struct ranker_session *session_find(struct ranker_ctx *ctx, const struct wf_msg_arg *id)
{
	uint64_t key = session_key(ctx, id);

	for (struct ranker_session *s = ctx->sessions[key & (buckets - 1)]; s; s = s->next)
		if (s->key == key && s->id_len == id->len && memcmp(s->id, id->p, id->len) == 0)
			return s;
	return NULL;
}

static struct ranker_session *session_get(struct ranker_ctx *ctx, const struct wf_msg_arg *id, uint64_t now_ms)
{
	struct ranker_session *s = session_find(ctx, id);
	uint64_t key;

	if (s)
		return s;
	if (id->len > WF_ID_MAX)
		return NULL;
	s = ranker_alloc(ctx->sess_arena, sizeof(*s) + id->len + 1);
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	key = session_key(ctx, id);
	s->key = key;
	s->id_len = (uint8_t)id->len;
	memcpy(s->id, id->p, id->len);
	s->id[id->len] = '\0';
	s->last_ms = now_ms;
	s->snap_gen = ctx->cur ? ctx->cur->gen : 0;
	s->stamp = ++ctx->stamp_next;
	wf_rank_session_init(&s->model);
	s->next = ctx->sessions[key & (buckets - 1)];
	ctx->sessions[key & (buckets - 1)] = s;
	ctx->nsessions++;
	ctx->session_bytes += session_size(s);
	wf_front_live_add(ctx->live, key, +1);
	return s;
}

void ranker_sessions_expire(struct ranker_ctx *ctx, uint64_t now_ms)
{
	for (uint32_t b = 0; b < buckets; b++) {
		struct ranker_session **pp = &ctx->sessions[b];
		while (*pp) {
			struct ranker_session *s = *pp;
			if (now_ms - s->last_ms > ctx->session_ttl_ms) {
				*pp = s->next;
				session_free(ctx, s);
			} else {
				pp = &s->next;
			}
		}
	}
}

static int64_t item_index(struct ranker_ctx *ctx, const char *id, size_t len)
{
	if (!ctx->cur || (len == 1 && id[0] == '-'))
		return -1;
	return wf_snap_item_find(ctx->cur->snap, id, len);
}

/* Value field of an event: dwell "ms", else 0; and an optional "ts". */
static void event_fields(const struct wf_msg_arg *argv, uint32_t argc, uint32_t *ret_value, uint64_t *ret_ts)
{
	for (uint32_t i = 4; i + 1 < argc; i += 2) {
		int64_t v;
		if (wf_parse_i64(argv[i + 1].p, argv[i + 1].len, &v) < 0 || v < 0)
			continue;
		if (arg_eq(&argv[i], "ms"))
			*ret_value = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
		else if (arg_eq(&argv[i], "ts"))
			*ret_ts = (uint64_t)v;
	}
}

/*
 * History records, appended to s->hist (one allocation, doubled as it
 * grows, NULL until the first event), about 13 bytes for a plain event:
 *   varint   ts - previous record's ts (zigzag LEB128; the first: ts - 0)
 *   u8       event type (enum wf_event)
 *   u8       flags: HIST_USER the event named a user (not "-"),
 *            HIST_NEWUSER and it differs from the user the previous
 *            naming record named: u8 len + the id follow
 *   u8 len + item id
 *   u8 n     field/value args, each u16 len + bytes
 * Decoding walks from the start (struct hist_cur), which every reader
 * does anyway (HISTORY, segments, the rebuild after a swap).
 */
#define HIST_USER 1u
#define HIST_NEWUSER 2u

struct hist_cur {
	uint32_t off;
	uint64_t ts;
	const char *user;
	uint32_t user_len;
};

static const char anon_user[] = "-";

/* Decode the record at cur: ts and args laid out as the EVENT's after the
 * session id (user type item [f v]...). Returns 1, or 0 past the end. */
static int hist_next(const struct ranker_session *s, struct hist_cur *cur, uint64_t *ret_ts, struct wf_msg_arg *a,
		     uint32_t *ret_argc)
{
	const uint8_t *h = s->hist;
	uint32_t p = cur->off, argc = 3, shift = 0, nx;
	uint64_t z = 0;
	uint8_t type, flags, l8;

	if (p >= s->hist_len)
		return 0;
	do {
		z |= (uint64_t)(h[p] & 0x7f) << shift;
		shift += 7;
	} while (h[p++] & 0x80);
	cur->ts += (z & 1) ? ~(z >> 1) : (z >> 1);
	type = h[p++];
	flags = h[p++];
	if (flags & HIST_NEWUSER) {
		cur->user_len = h[p];
		cur->user = (const char *)h + p + 1;
		p += 1u + cur->user_len;
	}
	if (flags & HIST_USER)
		a[0] = (struct wf_msg_arg){ cur->user, cur->user_len };
	else
		a[0] = (struct wf_msg_arg){ anon_user, 1 };
	a[1] = (struct wf_msg_arg){ wf_event_name(type), (uint32_t)strlen(wf_event_name(type)) };
	l8 = h[p];
	a[2] = (struct wf_msg_arg){ (const char *)h + p + 1, l8 };
	p += 1u + l8;
	nx = h[p++];
	for (uint32_t i = 0; i < nx && argc < WF_JOURNAL_MAX_ARGS; i++) {
		uint16_t l;
		memcpy(&l, h + p, 2);
		a[argc++] = (struct wf_msg_arg){ (const char *)h + p + 2, l };
		p += 2u + l;
	}
	cur->off = p;
	*ret_ts = cur->ts;
	*ret_argc = argc;
	return 1;
}

/* Re-apply a session's history to a fresh model: after a snapshot swap
 * the item indexes of the old generation mean nothing. */
static void session_rebuild(struct ranker_ctx *ctx, struct ranker_session *s)
{
	struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS + 1];
	struct hist_cur cur = { 0 };
	uint32_t argc;
	uint64_t ts;

	wf_rank_session_init(&s->model);
	s->snap_gen = ctx->cur ? ctx->cur->gen : 0;
	s->stamp = ++ctx->stamp_next; /* a new model: cached lists of the old one are stale */
	/* a[0] = session id, then user type item [f v]... as in an EVENT. */
	a[0] = (struct wf_msg_arg){ s->id, s->id_len };
	while (ctx->cur && hist_next(s, &cur, &ts, a + 1, &argc)) {
		uint32_t value = 0;
		uint64_t ets;
		event_fields(a, argc + 1, &value, &ets);
		wf_rank_session_apply(&s->model, ctx->cur->snap, &ctx->params,
				      wf_event_from_name(a[2].p, a[2].len), item_index(ctx, a[3].p, a[3].len), value);
	}
}

static void session_fresh(struct ranker_ctx *ctx, struct ranker_session *s)
{
	if (s && ctx->cur && s->snap_gen != ctx->cur->gen)
		session_rebuild(ctx, s);
}

/* Append one event (argv as the EVENT's: session user type item [f v]...);
 * new_user: the user differs from the one the history named last. */
static int hist_append(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t ts, int type,
		       const struct wf_msg_arg *argv, uint32_t argc, int new_user)
{
	int named = !is_anon(&argv[1]);
	int64_t d = (int64_t)(ts - s->hist_last_ts);
	uint64_t z = d < 0 ? ((uint64_t)~d << 1) | 1 : (uint64_t)d << 1;
	uint32_t need = 10 + 3 + 1 + argv[3].len + 1;
	uint8_t *p;

	if (named && new_user)
		need += 1 + argv[1].len;
	for (uint32_t i = 4; i < argc; i++)
		need += 2u + argv[i].len;
	if (need > UINT16_MAX)
		return -E2BIG;
	if (s->hist_len + need > s->hist_cap) {
		uint32_t cap = (uint32_t)usable(WF_MAX(WF_MAX(s->hist_cap * 2, s->hist_len + need), 32u));
		uint8_t *n = ranker_alloc(ctx->sess_arena, cap);
		if (!n)
			return -ENOMEM;
		if (s->hist_len)
			memcpy(n, s->hist, s->hist_len);
		ranker_free(s->hist);
		ctx->session_bytes += usable(cap) - usable(s->hist_cap);
		s->hist = n;
		s->hist_cap = cap;
	}
	p = s->hist + s->hist_len;
	do {
		*p++ = (uint8_t)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
		z >>= 7;
	} while (z);
	*p++ = (uint8_t)type;
	*p++ = (uint8_t)((named ? HIST_USER : 0) | (named && new_user ? HIST_NEWUSER : 0));
	if (named && new_user) {
		*p++ = (uint8_t)argv[1].len;
		memcpy(p, argv[1].p, argv[1].len);
		p += argv[1].len;
	}
	*p++ = (uint8_t)argv[3].len;
	memcpy(p, argv[3].p, argv[3].len);
	p += argv[3].len;
	*p++ = (uint8_t)(argc - 4);
	for (uint32_t i = 4; i < argc; i++) {
		uint16_t l = (uint16_t)argv[i].len;
		memcpy(p, &l, 2);
		memcpy(p + 2, argv[i].p, l);
		p += 2u + l;
	}
	s->hist_len = (uint32_t)(p - s->hist);
	s->hist_last_ts = ts;
	s->hist_n++;
	return 0;
}

/* Remember the user the session logged in as. 0 or -ENOMEM. */
static int session_set_user(struct ranker_ctx *ctx, struct ranker_session *s, const struct wf_msg_arg *u)
{
	char *n;

	if (s->user && s->user_len == u->len && memcmp(s->user, u->p, u->len) == 0)
		return 0;
	n = ranker_alloc(ctx->sess_arena, u->len + 1u);
	if (!n)
		return -ENOMEM;
	memcpy(n, u->p, u->len);
	n[u->len] = '\0';
	if (s->user)
		ctx->session_bytes -= usable(s->user_len + 1u);
	ranker_free(s->user);
	s->user = n;
	s->user_len = (uint8_t)u->len;
	ctx->session_bytes += usable(s->user_len + 1u);
	return 0;
}

int ranker_event(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, uint64_t ts_ms,
		 struct wf_buf *out)
{
	struct ranker_session *s;
	uint32_t value = 0;
	int type, r, new_user;

	if (argc < 4 || (argc - 4) % 2 || argc > WF_JOURNAL_MAX_ARGS + 1) {
		if (out)
			wf_resp_w_error(out, "ERR EVENT wants: session user type item [field value]...");
		return -EINVAL;
	}
	type = wf_event_from_name(argv[2].p, argv[2].len);
	if (type < 0 || !wf_id_valid(argv[0].p, argv[0].len) || !wf_id_valid(argv[1].p, argv[1].len) ||
	    !wf_id_valid(argv[3].p, argv[3].len)) {
		if (out)
			wf_resp_w_error(out, "ERR bad event: unknown type or malformed id");
		return -EINVAL;
	}
	event_fields(argv, argc, &value, &ts_ms);
	s = session_get(ctx, &argv[0], wf_wall_ms());
	if (!s) {
		if (out)
			wf_resp_w_error(out, "ERR out of memory for sessions");
		return -ENOMEM;
	}
	if (s->hist_n >= RANKER_HISTORY_MAX) {
		if (out)
			wf_resp_w_error(out, "ERR session %.*s is full (%u events): start a new session id",
					(int)argv[0].len, argv[0].p, RANKER_HISTORY_MAX);
		return -ENOSPC;
	}
	session_fresh(ctx, s);
	/* The user the history named last is the session's user (only
	 * events set it). */
	new_user = !is_anon(&argv[1]) &&
		   !(s->user && s->user_len == argv[1].len && memcmp(s->user, argv[1].p, argv[1].len) == 0);
	r = new_user ? session_set_user(ctx, s, &argv[1]) : 0;
	if (r == 0)
		r = hist_append(ctx, s, ts_ms, type, argv, argc, new_user);
	/* Lists cached for this session are stale: the user may have changed
	 * (even when the history is full) and the model changes below. */
	s->stamp = ++ctx->stamp_next;
	if (r < 0) {
		if (out)
			wf_resp_w_error(out, "ERR cannot record event: %s", strerror(-r));
		return r;
	}
	s->last_ms = s->last_event_ms = wf_wall_ms();
	if (ctx->cur)
		wf_rank_session_apply(&s->model, ctx->cur->snap, &ctx->params, type,
				      item_index(ctx, argv[3].p, argv[3].len), value);
	atomic_fetch_add_explicit(&ctx->sc->stats.events, 1, memory_order_relaxed); /* stats */
	if (out)
		wf_resp_w_int(out, 1);
	return 0;
}

/* ---- queries ---- */

struct stock_filter {
	const struct wf_snap *snap;
	const uint64_t *keys;           /* wf_stock_key() per item (the generation's) */
	const struct wf_stock *stock;
	const char *size;
	size_t size_len;
};

static int stock_ok(void *p, uint32_t item)
{
	const struct stock_filter *f = p;
	const struct wf_snap_item *it = &f->snap->items[item];

	return wf_stock_ok(f->stock, f->keys[item], it->flags & WF_SNAP_ITEM_SOLD_OUT, it->nsizes, f->size,
			   f->size_len);
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

static int64_t user_lookup(struct ranker_ctx *ctx, const char *id, size_t len, const struct wf_snap_cand **ret_cands,
			   uint32_t *ret_n)
{
	struct ranker_gen *g = ctx->cur;
	const struct ranker_hint *h = &ctx->hint;
	int own = id == h->user_p && len == h->user_len; /* this request's user argument */

	*ret_cands = NULL;
	*ret_n = 0;
	if (!g || len == 0 || (len == 1 && id[0] == '-'))
		return -1;
	if (own && h->g == g) { /* resolved by ranker_lookahead() */
		*ret_cands = h->cands;
		*ret_n = h->ncands;
		return h->user;
	}
	return user_find(ctx, g, id, len, own ? h->user_key : wf_hash64(id, len), ret_cands, ret_n);
}

static void item_id(struct ranker_ctx *ctx, uint32_t item, const char **p, uint32_t *len)
{
	const struct wf_snap_item *it = &ctx->cur->snap->items[item];
	*p = wf_snap_str(ctx->cur->snap, it->id_off);
	*len = it->id_len;
}

/* Common part of RECS and RERANK: session, user, weights, filter. */
struct query_env {
	struct ranker_session *sess;
	struct wf_rank_query q;
	struct stock_filter f;
	int64_t user;
};

static void query_setup(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, int page, struct query_env *e)
{
	const char *uid = argv[1].p;
	size_t ulen = argv[1].len;
	int visitor;

	memset(e, 0, sizeof(*e));
	e->sess = session_find(ctx, &argv[0]);
	session_fresh(ctx, e->sess);
	if (is_anon(&argv[1]) && e->sess && e->sess->user) {
		uid = e->sess->user;
		ulen = e->sess->user_len;
	}
	e->user = user_lookup(ctx, uid, ulen, &e->q.cands, &e->q.ncands);
	visitor = e->user >= 0 ? WF_VISITOR_RETURNING : WF_VISITOR_NEW;
	wf_ctl_weights_get(ctx->shm->ctl, page, visitor, &e->q.w_batch, &e->q.w_session);
	e->q.sess = e->sess ? &e->sess->model : NULL;
	e->q.anchor = -1;
	e->f.snap = ctx->cur->snap;
	e->f.keys = ctx->cur->stock_keys;
	e->f.stock = ctx->shm->stock;
	e->q.filter = stock_ok;
	e->q.filter_ctx = &e->f;
	if (e->sess)
		e->sess->last_ms = wf_wall_ms();
}

/* Micro-units, so the printed parts add up to the printed score exactly. */
static void w_micro(struct wf_buf *out, int64_t v)
{
	uint64_t a = v < 0 ? (uint64_t)-v : (uint64_t)v;
	wf_resp_w_bulk_fmt(out, "%s%llu.%06llu", v < 0 ? "-" : "", (unsigned long long)(a / 1000000),
			   (unsigned long long)(a % 1000000));
}

/* [id, score, "batch", v, "session", v, ..., "model", terms]: each part
 * rounded to 1e-6, the score printed as the sum of the rounded parts (it
 * differs from the library's float by at most 3e-6); terms: each
 * feature whose term is not 0 as "name=weight*feature" (lib/rank/rank.h
 * struct wf_rank_explain), space-separated. */
static void write_explained(struct wf_buf *out, const char *id, uint32_t len, const struct wf_rank_explain *e)
{
	static const char *const names[6] = { "batch", "session", "neighbours", "trend", "complement", "penalty" };
	const float parts[6] = { e->batch, e->session, e->neighbours, e->trend, e->complement, e->penalty };
	int64_t micro[6], sum = 0;

	for (int j = 0; j < 6; j++) {
		micro[j] = llround((double)parts[j] * 1e6);
		sum += micro[j];
	}
	wf_resp_w_array(out, 16);
	wf_resp_w_bulk(out, id, len);
	w_micro(out, sum);
	for (int j = 0; j < 6; j++) {
		wf_resp_w_bulk_str(out, names[j]);
		w_micro(out, micro[j]);
	}
	char terms[WF_RANK_NFEAT * 48] = "";
	size_t at = 0;
	for (uint32_t f = 0; f < WF_RANK_NFEAT && at < sizeof(terms); f++)
		if (e->term[f] != 0)
			at += (size_t)snprintf(terms + at, sizeof(terms) - at, "%s%s=%.6g*%.6g", at ? " " : "",
					       wf_rank_feature_name(f), (double)e->weight[f], (double)e->feature[f]);
	wf_resp_w_bulk_str(out, "model");
	wf_resp_w_bulk_str(out, terms);
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

/* Start loading what recs_cached() compares in a set: each way's inputs
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

	if (!h->user_p || !g || !ctx->cache || h->user_len == 0 || (h->user_len == 1 && h->user_p[0] == '-'))
		return;
	u = user_find(ctx, g, h->user_p, h->user_len, h->user_key, &h->cands, &h->ncands);
	h->user = u;
	h->g = g;
	cache_set_prefetch(cache_set(ctx, h->sess_key, u, -1));
	cache_set_prefetch(cache_set(ctx, CACHE_NO_SESSION, u, -1));
}

/* Note a query's inputs in way, or when way is NULL in the least recently
 * used way of set: the entry gets n 0 and state; a list is the caller's
 * to fill. */
static struct ranker_cached *cache_note(struct ranker_ctx *ctx, const struct query_env *e, struct ranker_cached *set,
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
 * Returns the count written to out (<= k), or -1 when the caller must
 * compute the query fresh: the prefix ran out before k items passed the
 * filter and the pool was longer, or the query has session state and is
 * seen for the first time (a new pairing of session and user often never
 * comes back: only its inputs are noted, a ghost, and the list of
 * RANKER_CACHE_DEPTH is ranked if it does). So the answer is always the
 * fresh one.
 */
static int recs_cached(struct ranker_ctx *ctx, const struct query_env *e, uint32_t k, uint32_t *out,
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
		return -1;
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
	/* Overlap the stock table's cache misses: load the slots first. */
	for (uint32_t i = 0; i < c->n && i < k + 8; i++)
		wf_stock_prefetch(e->f.stock, e->f.keys[c->items[i]]);
	for (uint32_t i = 0; i < c->n && n < k; i++)
		if (stock_ok((void *)&e->f, c->items[i]))
			out[n++] = c->items[i];
	if (n < k && !c->complete) {
		ctx->cache_short++;
		return -1;
	}
	*ret_c = c;
	return (int)n;
}

/*
 * Publish the list a RECS was answered from in the shard's front table, so
 * weft-ingest can answer the same request itself while nothing it depends
 * on changes (see struct wf_front_entry). wseq: the weights seqlock count
 * read before the query (odd: do not publish). quiet: the session has no
 * state here, so the answer is the user's alone and goes under the quiet
 * key, for any session without state (see layout.h).
 */
static void front_publish(struct ranker_ctx *ctx, const struct wf_msg_req *hdr, const struct wf_msg_arg *argv,
			  uint32_t argc, const struct ranker_cached *c, uint32_t wseq, int quiet)
{
	struct wf_front_entry e; /* staging copy: the header is zeroed below, data filled as used */
	struct wf_front_entry *slot;
	uint32_t pos = 0;

	/* acquire: pairs with the release in wf_seq_write_end() (weights). */
	if (!ctx->front || !hdr->lsn || (wseq & 1) ||
	    atomic_load_explicit(&ctx->shm->ctl->weights_lock.seq, memory_order_acquire) != wseq)
		return;
	memset(&e, 0, offsetof(struct wf_front_entry, data));
	if (quiet && wf_front_args_quiet(e.data, &pos) < 0)
		return;
	for (uint32_t i = quiet ? 1 : 0; i < argc; i++)
		if (wf_front_args_add(e.data, &pos, argv[i].p, argv[i].len) < 0)
			return;
	e.args_len = (uint8_t)pos;
	e.key = wf_hash64(e.data, pos) | 1;
	/* Publish only a request seen twice with the same list: a one-off
	 * (say, a random session id per query) would only cost a ~1 KiB write
	 * here and a cache miss in ingest (a list ranked for a ghost's return
	 * was seen twice). A quiet answer serves every session of its user
	 * without state: published at once. */
	if (!quiet && c->state != RANKER_TWICE && c->args_key != e.key) {
		((struct ranker_cached *)c)->args_key = e.key;
		return;
	}
	e.sver = quiet ? 0 : hdr->lsn;
	e.gen = ctx->cur->gen;
	e.until_ms = wf_wall_ms() + ctx->session_ttl_ms / 2;
	e.epoch = (uint32_t)(hdr->req_id >> 32);
	e.starts = atomic_load_explicit(&ctx->sc->ranker_starts, memory_order_relaxed); /* our own field */
	e.wseq = wseq;
	e.complete = c->complete;
	for (uint32_t i = 0; i < c->n; i++) {
		const struct wf_snap_item *it = &ctx->cur->snap->items[c->items[i]];
		if (wf_front_item_add(e.data, &pos, ctx->cur->stock_keys[c->items[i]],
				      (it->flags & WF_SNAP_ITEM_SOLD_OUT) != 0, wf_snap_str(ctx->cur->snap, it->id_off),
				      it->id_len) < 0) {
			e.complete = 0;
			break;
		}
		e.n++;
	}
	e.data_len = (uint16_t)pos;
	memset(e.data + pos, 0, WF_ALIGN_UP(pos, 4) - pos);
	/* Two ways per key: this key's own entry, else the one that expires
	 * first (reads of our own entries: relaxed, we are their only writer). */
	slot = &ctx->front->e[e.key & (WF_FRONT_SLOTS - 2)];
	if (__atomic_load_n(&slot[0].key, __ATOMIC_RELAXED) != e.key &&
	    (__atomic_load_n(&slot[1].key, __ATOMIC_RELAXED) == e.key ||
	     __atomic_load_n(&slot[1].until_ms, __ATOMIC_RELAXED) < __atomic_load_n(&slot[0].until_ms, __ATOMIC_RELAXED)))
		slot++;
	/* One run: the header and the data used (see struct wf_front_entry). */
	wf_seq_write_begin(&slot->lock);
	wf_seq_store((uint8_t *)slot + sizeof(slot->lock), (uint8_t *)&e + sizeof(e.lock),
		     offsetof(struct wf_front_entry, data) - sizeof(e.lock) + WF_ALIGN_UP(pos, 4));
	wf_seq_write_end(&slot->lock);
}

static void cmd_recs(struct ranker_ctx *ctx, const struct wf_msg_req *hdr, const struct wf_msg_arg *argv,
		     uint32_t argc, struct wf_buf *out)
{
	const struct ranker_cached *c = NULL;
	uint32_t wseq;
	int64_t k;
	int page = WF_PAGE_HOME, explain = 0, n;
	struct query_env e;
	const struct wf_msg_arg *anchor = NULL, *size = NULL;
	uint32_t items[WF_RANK_MAX_K];
	float scores[WF_RANK_MAX_K];
	struct wf_rank_explain *ex = ctx->explain;

	if (argc < 3 || wf_parse_i64(argv[2].p, argv[2].len, &k) < 0 || k < 1 || k > WF_RANK_MAX_K) {
		wf_resp_w_error(out, "ERR RECS wants: session user k(1..%u) [PAGE p] [ANCHOR item] [EXPLAIN] [SIZE s]",
				WF_RANK_MAX_K);
		return;
	}
	for (uint32_t i = 3; i < argc; i++) {
		if (arg_eq(&argv[i], "EXPLAIN")) {
			explain = 1;
		} else if (i + 1 < argc && arg_eq(&argv[i], "PAGE")) {
			page = wf_page_from_name(argv[i + 1].p, argv[i + 1].len);
			if (page < 0) {
				wf_resp_w_error(out, "ERR unknown page type '%.*s'", (int)WF_MIN(argv[i + 1].len, 64u),
						argv[i + 1].p);
				return;
			}
			i++;
		} else if (i + 1 < argc && arg_eq(&argv[i], "ANCHOR")) {
			anchor = &argv[++i];
		} else if (i + 1 < argc && arg_eq(&argv[i], "SIZE")) {
			size = &argv[++i];
		} else {
			wf_resp_w_error(out, "ERR RECS: unexpected argument '%.*s'", (int)WF_MIN(argv[i].len, 64u),
					argv[i].p);
			return;
		}
	}
	atomic_fetch_add_explicit(&ctx->sc->stats.recs, 1, memory_order_relaxed); /* stats */
	if (!ctx->cur) {
		wf_resp_w_array(out, 0); /* no snapshot yet: nothing honest to recommend */
		return;
	}
	/* acquire: pairs with the release in wf_seq_write_end(); read before
	 * the weights themselves (query_setup), checked again in front_publish(). */
	wseq = atomic_load_explicit(&ctx->shm->ctl->weights_lock.seq, memory_order_acquire);
	query_setup(ctx, argv, page, &e);
	e.q.k = (uint32_t)k;
	if (anchor)
		e.q.anchor = item_index(ctx, anchor->p, anchor->len);
	if (size) {
		e.f.size = size->p;
		e.f.size_len = size->len;
	}
	/* EXPLAIN is always computed fresh (it needs every part of every score). */
	n = -1;
	if (ctx->cache && !explain && k <= RANKER_CACHE_DEPTH)
		n = recs_cached(ctx, &e, (uint32_t)k, items, &c);
	if (c && !size)
		front_publish(ctx, hdr, argv, argc, c, wseq, e.sess == NULL);
	if (n < 0)
		n = wf_rank_recs(ctx->cur->snap, &ctx->params, &e.q, ctx->scratch, items, scores,
				 explain ? ex : NULL);
	wf_resp_w_array(out, n);
	for (int i = 0; i < n; i++) {
		const char *id;
		uint32_t len;

		item_id(ctx, items[i], &id, &len);
		if (!explain) {
			wf_resp_w_bulk(out, id, len);
			continue;
		}
		write_explained(out, id, len, &ex[i]);
	}
}

static void cmd_rerank(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, struct wf_buf *out)
{
	int64_t *items = ctx->rr_items;
	uint32_t *pos = ctx->rr_pos, n = argc - 2;
	struct query_env e;
	int m;

	if (argc < 3 || n > WF_RANK_POOL) {
		wf_resp_w_error(out, "ERR RERANK wants: session user item... (at most %u items)", WF_RANK_POOL);
		return;
	}
	atomic_fetch_add_explicit(&ctx->sc->stats.reranks, 1, memory_order_relaxed); /* stats */
	if (!ctx->cur) {
		/* No snapshot: nothing to score with; the app's order stands. */
		wf_resp_w_array(out, n);
		for (uint32_t i = 0; i < n; i++)
			wf_resp_w_bulk(out, argv[2 + i].p, argv[2 + i].len);
		return;
	}
	query_setup(ctx, argv, WF_PAGE_SEARCH, &e);
	for (uint32_t i = 0; i < n; i++)
		items[i] = item_index(ctx, argv[2 + i].p, argv[2 + i].len);
	m = wf_rank_rerank(ctx->cur->snap, &ctx->params, &e.q, ctx->scratch, items, n, pos, NULL);
	/* Items the snapshot lacks can still be sold out in the live table. */
	uint32_t keep = 0;
	for (int i = 0; i < m; i++) {
		const struct wf_msg_arg *a = &argv[2 + pos[i]];
		if (items[pos[i]] < 0 &&
		    wf_stock_state(ctx->shm->stock, wf_stock_key(a->p, a->len), NULL, 0) == WF_STOCK_OUT)
			continue;
		pos[keep++] = pos[i];
	}
	wf_resp_w_array(out, keep);
	for (uint32_t i = 0; i < keep; i++)
		wf_resp_w_bulk(out, argv[2 + pos[i]].p, argv[2 + pos[i]].len);
}

static void cmd_history(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, struct wf_buf *out)
{
	struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS];
	struct hist_cur cur = { 0 };
	struct ranker_session *s;
	uint32_t n;
	uint64_t ts;

	if (argc != 1) {
		wf_resp_w_error(out, "ERR HISTORY wants: session");
		return;
	}
	s = session_find(ctx, &argv[0]);
	if (!s) {
		wf_resp_w_array(out, 0);
		return;
	}
	wf_resp_w_array(out, s->hist_n);
	/* Per event: [ts, type, item, field, value, ..., "user", id] (the user
	 * pair only when the event named one). */
	while (hist_next(s, &cur, &ts, a, &n)) {
		int user = n > 0 && !is_anon(&a[0]);
		wf_resp_w_array(out, (int64_t)n + (user ? 2 : 0));
		wf_resp_w_bulk_fmt(out, "%llu", (unsigned long long)ts);
		for (uint32_t i = 1; i < n; i++)
			wf_resp_w_bulk(out, a[i].p, a[i].len);
		if (user) {
			wf_resp_w_bulk_str(out, "user");
			wf_resp_w_bulk(out, a[0].p, a[0].len);
		}
	}
}

/* high_intent: RANKER_HIGH_INTENT_PDP pdp views in one category during
 * this session (counted from its history). */
static int high_intent(struct ranker_ctx *ctx, const struct ranker_session *s)
{
	struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS];
	struct {
		uint32_t cat, n;
	} seen[16];
	struct hist_cur cur = { 0 };
	uint32_t n, nseen = 0;
	uint64_t ts;

	if (!ctx->cur)
		return 0;
	while (hist_next(s, &cur, &ts, a, &n)) {
		if (n < 3 || wf_event_from_name(a[1].p, a[1].len) != WF_EV_PDP)
			continue;
		int64_t it = item_index(ctx, a[2].p, a[2].len);
		if (it < 0)
			continue;
		uint32_t cat = ctx->cur->snap->items[it].category, i;
		if (cat == WF_SNAP_NO_CAT)
			continue;
		for (i = 0; i < nseen && seen[i].cat != cat; i++)
			;
		if (i == nseen) {
			if (nseen == WF_ARRAY_SIZE(seen))
				continue;
			seen[nseen++] = (typeof(seen[0])){ cat, 0 };
		}
		if (++seen[i].n >= RANKER_HIGH_INTENT_PDP)
			return 1;
	}
	return 0;
}

static void cmd_segments(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, struct wf_buf *out)
{
	const char *names[8];
	uint32_t n = 0;
	struct ranker_session *s;
	const struct wf_snap_cand *c;
	uint32_t nc;
	int64_t u;

	if (argc != 2) {
		wf_resp_w_error(out, "ERR SEGMENTS wants: session user");
		return;
	}
	s = session_find(ctx, &argv[0]);
	session_fresh(ctx, s);
	u = user_lookup(ctx, argv[1].p, argv[1].len, &c, &nc);
	if (u < 0 && s && s->user)
		u = user_lookup(ctx, s->user, s->user_len, &c, &nc);
	if (u >= 0) {
		uint16_t seg = ctx->cur->snap->users[u].segment;
		if (seg > WF_SEG_NONE && seg < WF_SEG_COUNT)
			names[n++] = segment_names[seg];
		if (s && (seg == WF_SEG_AT_RISK || seg == WF_SEG_LAPSED))
			names[n++] = "win_back"; /* a lapsing shopper is back right now */
	}
	if (s) {
		int cart = 0;
		for (uint32_t i = 0; i < WF_RANK_CART; i++)
			cart |= s->model.cart[i] >= 0;
		if (cart && wf_wall_ms() - s->last_event_ms > ctx->abandon_ms)
			names[n++] = "cart_abandon";
		if (high_intent(ctx, s))
			names[n++] = "high_intent";
		if (s->model.pivot)
			names[n++] = "intent_pivot";
	}
	wf_resp_w_array(out, n);
	for (uint32_t i = 0; i < n; i++)
		wf_resp_w_bulk_str(out, names[i]);
}

void ranker_handle(struct ranker_ctx *ctx, const struct wf_msg_req_view *v)
{
	struct wf_buf *out = &ctx->out;

	switch (v->hdr->cmd) {
	case WF_CMD_EVENT: {
		/* Ingest acks an EVENT itself (WF_MSG_F_NOREPLY): nothing to write. */
		struct wf_buf *eout = v->hdr->flags & WF_MSG_F_NOREPLY ? NULL : out;

		/* Replayed at start already: acknowledge without applying twice. */
		if (v->hdr->lsn && v->hdr->lsn <= ctx->replayed_lsn) {
			if (eout)
				wf_resp_w_int(eout, 1);
			break;
		}
		if (ranker_event(ctx, v->argv, v->argc, wf_wall_ms(), eout) < 0) {
			/* Journaled and acked by ingest (WF_MSG_F_NOREPLY), but not
			 * applied: a session full or out of memory. Counted; the
			 * journal still holds it for the nightly build. */
			atomic_fetch_add_explicit(&ctx->sc->stats.errors, 1, memory_order_relaxed); /* stats */
		} else if (v->hdr->t_recv_ns) {
			/* CLOCK_MONOTONIC is one clock for every process on the box. */
			uint64_t now = wf_now_ns();
			if (now >= v->hdr->t_recv_ns)
				wf_lat_add(ctx->sc->stats.visible_hist, now - v->hdr->t_recv_ns);
		}
		break;
	}
	case WF_CMD_RECS:
		cmd_recs(ctx, v->hdr, v->argv, v->argc, out);
		break;
	case WF_CMD_RERANK:
		cmd_rerank(ctx, v->argv, v->argc, out);
		break;
	case WF_CMD_HISTORY:
		cmd_history(ctx, v->argv, v->argc, out);
		break;
	case WF_CMD_SEGMENTS:
		cmd_segments(ctx, v->argv, v->argc, out);
		break;
	default:
		wf_resp_w_error(out, "ERR unknown command code %u", v->hdr->cmd);
		atomic_fetch_add_explicit(&ctx->sc->stats.errors, 1, memory_order_relaxed); /* stats */
	}
}
