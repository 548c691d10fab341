/*
 * cmds.c - weft-ranker's client commands: RECS (with EXPLAIN), RERANK,
 * HISTORY, SEGMENTS (SEGPREVIEW is segs.c's), and the dispatch of every request (EVENT is
 * sessions.c's). Scoring is the shared library (lib/rank). Linked only
 * into weft-ranker.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "lib/exp.h"
#include "lib/journal.h"
#include "lib/proto.h"
#include "rankers/ranker_int.h"

static const char *const segment_names[WF_SEG_COUNT] = {
	"none", "new", "active", "loyal", "vip", "at_risk", "lapsed",
};

/* 0 if argc arguments fit command code's arity (lib/proto's table), else
 * -EINVAL with its usage written to out. Ingest checks the same first. */
static int arity(struct wf_buf *out, int code, uint32_t argc)
{
	const struct wf_cmd_info *ci = wf_cmd_of(code);

	if (wf_cmd_arity(ci, argc) == 0)
		return 0;
	wf_resp_w_error(out, "ERR %s", ci->usage);
	return -EINVAL;
}

/* The id of item: a snapshot index, or a live item of session s (its id
 * from s's history). 0, or -ENOENT (a live item s cannot name). */
static int item_id(struct ranker_ctx *ctx, const struct ranker_session *s, uint32_t item, const char **p,
		   uint32_t *len)
{
	if (wf_rank_is_live(item))
		return s ? ranker_live_id(s, item, p, len) : -ENOENT;
	const struct wf_snap_item *it = &ctx->cur->snap->items[item];
	*p = wf_snap_str(ctx->cur->snap, it->id_off);
	*len = it->id_len;
	return 0;
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

_Static_assert(WF_RECS_MAX_K <= WF_RANK_MAX_K, "a RECS k the ranker can answer");

/* A RECS's arguments as ingest parsed them (WF_MSG_F_PARSED), else
 * parsed here (a test or another client of the ring), into *ra; and a
 * generation to answer from. 0, or -1 with the error (or an empty list
 * before any snapshot) written to out. */
static int recs_begin(struct ranker_ctx *ctx, const struct wf_msg_req_view *v, struct wf_recs_args *ra,
		      struct wf_buf *out)
{
	uint32_t bad = 0;
	int rc = v->parsed ? wf_msg_recs_get(&v->recs, v->argv, v->argc, ra)
			   : wf_recs_args_parse(v->argv, v->argc, ra, &bad);

	if (rc == -EPROTO) {
		wf_resp_w_error(out, "ERR corrupt request record");
		return -1;
	}
	if (rc < 0) {
		/* Ingest refuses such a request first, with the same words; a
		 * ranker sees one only from a test or another ring client. */
		char msg[400];
		wf_recs_args_error(rc, rc == -EINVAL ? NULL : &v->argv[bad], msg, sizeof(msg));
		wf_resp_w_error(out, "ERR %s", msg);
		return -1;
	}
	atomic_fetch_add_explicit(&ctx->sc->stats.recs, 1, memory_order_relaxed); /* stats */
	if (ctx->cur)
		return 0;
	/* relaxed: it only names the generation in the error below. */
	uint64_t failed = atomic_load_explicit(&ctx->sc->failed_gen, memory_order_relaxed);
	if (failed) /* never an empty list for a known user, silently */
		wf_resp_w_error(out, "ERR shard %u has no snapshot to serve: generation %llu failed to load "
				"(see its log); load a good one with weftctl snapshot load", ctx->shard,
				(unsigned long long)failed);
	else
		wf_resp_w_array(out, 0); /* no snapshot yet: nothing honest to recommend */
	return -1;
}

/* The query's inputs (ranker_query_setup) with the RECS's k, ANCHOR and SIZE. */
static void recs_query(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, const struct wf_recs_args *ra,
		       struct ranker_query *qe)
{
	ranker_query_setup(ctx, argv, ra->page, qe);
	qe->q.k = ra->k;
	if (ra->anchor)
		qe->q.anchor = ranker_item_index(ctx, ra->anchor->p, ra->anchor->len);
	/* An anchor the snapshot lacks is never returned as a live item; the
	 * ranked-list cache's entries do not hold that key: computed fresh. */
	if (ra->anchor && qe->q.anchor < 0 && qe->q.sess && qe->q.sess->live)
		qe->q.anchor_key = wf_stock_key(ra->anchor->p, ra->anchor->len);
	if (ra->size) {
		qe->f.size = ra->size->p;
		qe->f.size_len = ra->size->len;
	}
}

/* The reply: m ids, each with its EXPLAIN row when asked. */
static void recs_reply(struct wf_buf *out, const struct wf_recs_args *ra, uint32_t m, const char *const *ids,
		       const uint32_t *lens, const struct wf_rank_explain *ex)
{
	wf_resp_w_array(out, m);
	for (uint32_t i = 0; i < m; i++) {
		if (!ra->explain) {
			wf_resp_w_bulk(out, ids[i], lens[i]);
			continue;
		}
		write_explained(out, ids[i], lens[i], &ex[i]);
	}
}

static void cmd_recs(struct ranker_ctx *ctx, const struct wf_msg_req_view *v, struct wf_buf *out)
{
	const struct wf_msg_req *hdr = v->hdr;
	const struct wf_msg_arg *argv = v->argv;
	const struct ranker_cached *c = NULL;
	struct wf_recs_args ra;
	uint32_t wseq;
	int n;
	struct ranker_query qe;
	uint32_t items[WF_RANK_MAX_K];
	float scores[WF_RANK_MAX_K];
	struct wf_rank_explain *ex = ctx->explain;

	if (recs_begin(ctx, v, &ra, out) < 0)
		return;
	/* acquire: pairs with the release in wf_seq_write_end(); read before
	 * the weights themselves (ranker_query_setup), checked again in ranker_front_publish(). */
	wseq = atomic_load_explicit(&ctx->shm->ctl->weights_lock.seq, memory_order_acquire);
	recs_query(ctx, argv, &ra, &qe);
	/* An experiment on this page (exps.c): the arm's policy; a unit in
	 * an arm is never answered from the front table, so every answer it
	 * gets comes here and is exposed. */
	struct ranker_pick pk;
	ranker_exp_pick(ctx, argv, qe.sess, ra.page, &pk);
	const char *ids[WF_RANK_MAX_K];
	uint32_t lens[WF_RANK_MAX_K], m = 0;

	if (pk.policy == WF_EXP_STALE) {
		n = ranker_exp_stale_recs(ctx, argv, ra.page, &qe, ra.anchor, ids, lens, ra.explain ? ex : NULL);
		if (n >= 0) {
			m = (uint32_t)n;
			goto reply;
		}
		pk.arm = -1; /* no previous generation open yet: served as everyone else, not exposed */
		pk.policy = WF_EXP_LIVE;
	}
	ranker_exp_apply(&pk, &qe);
	/* EXPLAIN is always computed fresh (it needs every part of every score). */
	n = -1;
	if (ctx->cache && !ra.explain && ra.k <= RANKER_CACHE_DEPTH && !qe.q.anchor_key)
		n = ranker_recs_cached(ctx, &qe, ra.k, items, &c);
	if (c && !ra.size && ranker_exp_publishable(&pk))
		ranker_front_publish(ctx, hdr, argv, v->argc, c, wseq, qe.sess);
	if (n < 0)
		n = wf_rank_recs(ctx->cur->snap, &ctx->params, &qe.q, ctx->scratch, items, scores,
				 ra.explain ? ex : NULL);
	/* Every id first (a live item's from the history; one that cannot
	 * be named is left out), then the reply. Each id's bytes are
	 * prefetched as it is found: the reply copies them all, and the
	 * snapshot's strings are mostly out of cache (their misses overlap). */
	for (int i = 0; i < n; i++)
		if (item_id(ctx, qe.sess, items[i], &ids[m], &lens[m]) == 0) {
			wf_prefetch(ids[m]);
			if (ra.explain && (int)m != i)
				ex[m] = ex[i];
			m++;
		}
reply:
	/* The exposure goes on the reply ring before its reply. */
	ranker_exp_expose(ctx, &pk, hdr, argv, ra.page, m, ids, lens);
	recs_reply(out, &ra, m, ids, lens, ex);
}

static void cmd_rerank(struct ranker_ctx *ctx, const struct wf_msg_req *hdr, const struct wf_msg_arg *argv,
		       uint32_t argc, struct wf_buf *out)
{
	int64_t *items = ctx->rr_items;
	uint32_t *pos = ctx->rr_pos, n = argc - 2;
	struct ranker_query e;
	struct ranker_pick pk;
	int m;

	if (wf_cmd_arity(wf_cmd_of(WF_CMD_RERANK), argc) < 0 || n > WF_RANK_POOL) {
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
	ranker_query_setup(ctx, argv, WF_PAGE_SEARCH, &e);
	ranker_exp_pick(ctx, argv, e.sess, WF_PAGE_SEARCH, &pk);
	m = pk.policy == WF_EXP_STALE ? ranker_exp_stale_rerank(ctx, argv, n, &e, pos) : -1;
	if (m < 0 && pk.policy == WF_EXP_STALE) {
		pk.arm = -1; /* no previous generation open yet: as everyone else, not exposed */
		pk.policy = WF_EXP_LIVE;
	}
	if (m < 0) {
		ranker_exp_apply(&pk, &e);
		for (uint32_t i = 0; i < n; i++) {
			items[i] = ranker_item_index(ctx, argv[2 + i].p, argv[2 + i].len);
			/* one the session viewed: its live code, scored as RECS would */
			if (items[i] < 0 && e.q.sess && e.q.sess->live)
				items[i] = wf_rank_live_code(e.q.sess, wf_stock_key(argv[2 + i].p, argv[2 + i].len));
		}
		m = wf_rank_rerank(ctx->cur->snap, &ctx->params, &e.q, ctx->scratch, items, n, pos, NULL);
	}
	/* Items the snapshot lacks can still be sold out in the live table
	 * (a live one the library scored, the filter has checked). */
	uint32_t keep = 0;
	for (int i = 0; i < m; i++) {
		const struct wf_msg_arg *a = &argv[2 + pos[i]];
		if ((items[pos[i]] < 0 || wf_rank_is_live((uint32_t)items[pos[i]])) &&
		    wf_stock_state(ctx->shm->stock, wf_stock_key(a->p, a->len), NULL, 0) == WF_STOCK_OUT)
			continue;
		pos[keep++] = pos[i];
	}
	if (pk.e && pk.arm >= 0) {
		const char *ids[WF_MSG_NOTE_MAX_ARGS];
		uint32_t lens[WF_MSG_NOTE_MAX_ARGS], ne = WF_MIN(keep, WF_MSG_NOTE_MAX_ARGS);
		for (uint32_t i = 0; i < ne; i++) {
			ids[i] = argv[2 + pos[i]].p;
			lens[i] = argv[2 + pos[i]].len;
		}
		ranker_exp_expose(ctx, &pk, hdr, argv, WF_PAGE_SEARCH, ne, ids, lens);
	}
	wf_resp_w_array(out, keep);
	for (uint32_t i = 0; i < keep; i++)
		wf_resp_w_bulk(out, argv[2 + pos[i]].p, argv[2 + pos[i]].len);
}

static void cmd_history(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, struct wf_buf *out)
{
	struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS];
	struct ranker_hist_cur cur = { 0 };
	struct ranker_session *s;
	uint32_t n;
	uint64_t ts;

	if (arity(out, WF_CMD_HISTORY, argc) < 0)
		return;
	s = ranker_session_find(ctx, &argv[0]);
	if (!s) {
		wf_resp_w_array(out, 0);
		return;
	}
	/* A session past RANKER_HISTORY_MAX events: ["folded", n] first,
	 * the count of older events its model applied but HISTORY no longer
	 * lists (a short session's reply is the events alone, as before). */
	wf_resp_w_array(out, (int64_t)s->hist_n + (s->hist_folded ? 1 : 0));
	if (s->hist_folded) {
		wf_resp_w_array(out, 2);
		wf_resp_w_bulk_str(out, "folded");
		wf_resp_w_int(out, s->hist_folded);
	}
	/* Per event: [ts, type, item, field, value, ..., "user", id] (the user
	 * pair only when the event named one). */
	while (ranker_hist_next(s, &cur, &ts, a, &n)) {
		int user = n > 0 && !wf_user_is_anon(a[0].p, a[0].len);
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

/* SEGMENTS session user: the user's batch lifecycle (new, active, loyal,
 * vip, at_risk, lapsed: the snapshot's), then every defined segment
 * (segs.c, docs/SEGMENTS.md) the shopper is in now, evaluated as the
 * timers and events do; a name both are is listed once. */
static void cmd_segments(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, struct wf_buf *out)
{
	const char *names[WF_SEG_MAX + 1];
	uint32_t n = 0;
	struct ranker_session *s;
	const struct wf_snap_cand *c;
	uint32_t nc;
	uint64_t bits;
	int64_t u;

	if (arity(out, WF_CMD_SEGMENTS, argc) < 0)
		return;
	s = ranker_session_find(ctx, &argv[0]);
	ranker_session_fresh(ctx, s);
	u = ranker_user_lookup(ctx, argv[1].p, argv[1].len, &c, &nc);
	if (u < 0 && s && s->user)
		u = ranker_user_lookup(ctx, s->user, s->user_len, &c, &nc);
	if (u >= 0) {
		uint16_t seg = ctx->cur->snap->users[u].segment;
		if (seg > WF_SEG_NONE && seg < WF_SEG_COUNT)
			names[n++] = segment_names[seg];
	}
	bits = ranker_segs_now(ctx, s, &argv[1]);
	for (uint32_t i = 0; i < wf_seg_set_count(ctx->segs); i++)
		if (bits >> i & 1 && !(n && strcmp(names[0], wf_seg_set_name(ctx->segs, i)) == 0))
			names[n++] = wf_seg_set_name(ctx->segs, i);
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

		/* Before it is applied (and any segment note of it published):
		 * a ranker started after this one replays the journal through
		 * it, and what is later still comes through the ring
		 * (replay.c). relaxed: read by the next ranker of this shard,
		 * once this one has exited (layout.h). */
		if (v->hdr->lsn > ctx->ring_lsn) {
			ctx->ring_lsn = v->hdr->lsn;
			atomic_store_explicit(&ctx->sc->ring_lsn, ctx->ring_lsn, memory_order_relaxed);
		}

		/* Replayed at start already: acknowledge without applying twice. */
		if (v->hdr->lsn && v->hdr->lsn <= ctx->replayed_lsn) {
			if (eout)
				wf_resp_w_int(eout, 1);
			break;
		}
		if (ranker_event_lsn(ctx, v->argv, v->argc, wf_wall_ms(), v->hdr->lsn, eout) < 0) {
			/* Journaled and acked by ingest (WF_MSG_F_NOREPLY), but not
			 * applied: malformed (ingest checks first) or out of
			 * memory. Counted; the journal still holds it for the
			 * nightly build. */
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
		cmd_recs(ctx, v, out);
		break;
	case WF_CMD_RERANK:
		cmd_rerank(ctx, v->hdr, v->argv, v->argc, out);
		break;
	case WF_CMD_HISTORY:
		cmd_history(ctx, v->argv, v->argc, out);
		break;
	case WF_CMD_SEGMENTS:
		cmd_segments(ctx, v->argv, v->argc, out);
		break;
	case WF_CMD_SEGPREVIEW:
		ranker_cmd_segpreview(ctx, v->argv, v->argc, out);
		break;
	default:
		wf_resp_w_error(out, "ERR unknown command code %u", v->hdr->cmd);
		atomic_fetch_add_explicit(&ctx->sc->stats.errors, 1, memory_order_relaxed); /* stats */
	}
}
