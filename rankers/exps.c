/*
 * exps.c - weft-ranker's side of A/B experiments (issue 17): the running
 * experiments (DIR/experiments.conf, reloaded when experiments_gen moves),
 * which arm a RECS/RERANK's unit is in, the arm's policy applied to the
 * query, the stale arm's answers from the previous generation's file, and
 * the exposure note (WF_JREC_EXPOSURE, lib/journal.h) pushed on the reply
 * ring before the reply it belongs to. Linked only into weft-ranker.
 *
 * The previous generation's file: at a swap, the mapping of the
 * generation being replaced is kept (gens.c serve_generation); after a
 * restart the loader thread opens it (RL4/AL4, RL5/AL5) once a running
 * experiment has a stale arm. Cost: one read-only mapping of that file
 * (page cache, shared with the other rankers and weft-admin, which maps
 * it for SNAPSHOT STATUS); no list is copied, no arena byte is used.
 * Until it is open, a stale arm's units are served as everyone else and
 * not exposed (so no exposure claims a policy it did not get).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/exp.h"
#include "lib/journal.h"
#include "lib/proto.h"
#include "rankers/ranker_int.h"

static int has_stale(const struct wf_exp_set *set)
{
	for (uint32_t i = 0; set && i < set->n; i++)
		for (uint32_t a = 0; a < set->exps[i].narms; a++)
			if (set->exps[i].arms[a].policy == WF_EXP_STALE)
				return 1;
	return 0;
}

/* Read the file; keep the running experiments. A file that cannot be read
 * keeps the set we have (logged): better the last good definitions than
 * none, which would silently end every experiment. */
static void exps_reload(struct ranker_ctx *ctx)
{
	struct wf_exp_set *set = calloc(1, sizeof(*set));
	char path[WF_PATH_MAX], err[600];
	uint32_t keep = 0;

	if (!set) {
		wf_err("shard %u: out of memory reading the experiments", ctx->shard);
		return;
	}
	snprintf(path, sizeof(path), "%s/experiments.conf", ctx->dir);
	if (wf_exp_conf_load(path, set, err, sizeof(err)) < 0) {
		wf_err("shard %u: %s (serving the experiments read before)", ctx->shard, err);
		free(set);
		return;
	}
	for (uint32_t i = 0; i < set->n; i++)
		if (set->exps[i].state == WF_EXP_RUNNING)
			set->exps[keep++] = set->exps[i];
	set->n = keep;
	if (keep || (ctx->exps && ctx->exps->n))
		wf_info("shard %u: %u experiments running", ctx->shard, keep);
	free(ctx->exps);
	ctx->exps = set;
}

void ranker_exps_check(struct ranker_ctx *ctx)
{
	/* A13: pairs with R13 in weft-admin (admin_exp.c exp_save()): the
	 * file renamed in place before the count moved is the one we read. */
	uint64_t g = atomic_load_explicit(&ctx->shm->ctl->experiments_gen, memory_order_acquire);
	struct ranker_prev *p;

	if (!ctx->exps || g != ctx->exp_gen) {
		ctx->exp_gen = g;
		exps_reload(ctx);
	}
	if (ctx->cur && !ctx->cur->prev && ctx->prev_asked != ctx->cur->gen && has_stale(ctx->exps)) {
		struct wf_snap_ref cur, prev;

		ctx->prev_asked = ctx->cur->gen;
		wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
		if (prev.gen && prev.gen != ctx->cur->gen)
			/* RL4: pairs with AL4 in ranker_exps_loader_step(). */
			atomic_store_explicit(&ctx->want_prev, prev.gen, memory_order_release);
	}
	/* AL5: pairs with RL5 in ranker_exps_loader_step(): the file is open
	 * and checked before we see the pointer. */
	p = atomic_exchange_explicit(&ctx->prev_ready, NULL, memory_order_acquire);
	if (p) {
		if (ctx->cur && !ctx->cur->prev && p->gen != ctx->cur->gen) {
			ctx->cur->prev = p->snap;
			ctx->cur->prev_gen = p->gen;
			wf_info("shard %u: previous generation %llu open for the stale arm", ctx->shard,
				(unsigned long long)p->gen);
		} else {
			wf_snap_close(p->snap);
		}
		free(p);
	}
}

void ranker_exps_loader_step(struct ranker_ctx *ctx)
{
	/* AL4: pairs with RL4 in ranker_exps_check(). */
	uint64_t want = atomic_load_explicit(&ctx->want_prev, memory_order_acquire);
	struct wf_snap_ref cur, prev;
	struct ranker_prev *p;
	char err[512];

	/* relaxed (prev_ready): only a non-NULL slot is skipped; the loop
	 * empties it with AL5's exchange and we look again next pass. */
	if (!want || want == ctx->prev_built || atomic_load_explicit(&ctx->prev_ready, memory_order_relaxed))
		return;
	ctx->prev_built = want;
	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	if (prev.gen != want)
		return; /* moved on meanwhile: the loop asks again for its new generation */
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->gen = want;
	if (wf_snap_open(prev.path, &p->snap, err, sizeof(err)) < 0) {
		wf_warn("shard %u: the stale arm cannot open the previous generation %llu: %s (its units are served "
			"as everyone else, not exposed)",
			ctx->shard, (unsigned long long)want, err);
		free(p);
		return;
	}
	/* RL5: pairs with AL5 in ranker_exps_check(). */
	atomic_store_explicit(&ctx->prev_ready, p, memory_order_release);
}

void ranker_exps_fini(struct ranker_ctx *ctx)
{
	/* AL5 as above; the loader has been joined. */
	struct ranker_prev *p = atomic_exchange_explicit(&ctx->prev_ready, NULL, memory_order_acquire);

	if (p) {
		wf_snap_close(p->snap);
		free(p);
	}
	free(ctx->exps);
	ctx->exps = NULL;
}

int ranker_exp_pick(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, const struct ranker_session *s, int page,
		    struct ranker_pick *pk)
{
	const char *user = argv[1].p;
	size_t ulen = argv[1].len;

	pk->e = NULL;
	pk->arm = -1;
	pk->policy = WF_EXP_LIVE;
	pk->by_session = 0;
	/* A13 again, per request: a RECS that read the weights seqlock after
	 * weft-admin moved it for a START (admin_exp.c) must see that START
	 * too, or it could publish a front entry under the new count with no
	 * experiment applied. One load of a line that rarely changes. */
	if (atomic_load_explicit(&ctx->shm->ctl->experiments_gen, memory_order_acquire) != ctx->exp_gen)
		ranker_exps_check(ctx);
	if (!ctx->exps || !ctx->exps->n)
		return 0;
	if (wf_user_is_anon(user, ulen) && s && s->user) {
		user = s->user;
		ulen = s->user_len;
	}
	/* Experiments on one page and unit never overlap (weft-admin refuses
	 * it); one by user and one by session may: a unit outside the first
	 * can be in the second. */
	for (uint32_t i = 0; i < ctx->exps->n; i++) {
		const struct wf_exp *e = &ctx->exps->exps[i];
		char unit[sizeof(pk->unit)];
		size_t len;
		int arm;

		if (!wf_exp_on_page(e, page))
			continue;
		len = wf_exp_unit_of(e, argv[0].p, argv[0].len, user, ulen, unit);
		arm = wf_exp_assign(e, unit, len);
		pk->by_session |= unit[0] == 's';
		if (!pk->e || arm >= 0) {
			pk->e = e;
			pk->arm = arm;
			memcpy(pk->unit, unit, len + 1);
			pk->unit_len = (uint32_t)len;
			pk->policy = arm >= 0 ? e->arms[arm].policy : WF_EXP_LIVE;
		}
		if (arm >= 0)
			break;
	}
	return pk->e != NULL;
}

void ranker_exp_apply(const struct ranker_pick *pk, struct ranker_query *e)
{
	switch (pk->policy) {
	case WF_EXP_WEIGHTS:
		e->q.w_batch = pk->e->arms[pk->arm].w_batch;
		e->q.w_session = pk->e->arms[pk->arm].w_session;
		break;
	case WF_EXP_BATCH:
	case WF_EXP_STALE:
		/* The snapshot's answer for this user, as a shopper without a
		 * session gets it (the ranked-list cache keys it so). */
		e->sess = NULL;
		e->q.sess = NULL;
		e->f.sess = NULL;
		break;
	default:
		break;
	}
}

/* The stale arm's stock filter: the previous file's items, their stock
 * keys hashed per look (a query looks at a few dozen). */
struct stale_filter {
	const struct wf_snap *snap;
	const struct wf_stock *stock;
	const char *size;
	size_t size_len;
};

static int stale_stock_ok(void *p, uint32_t item)
{
	const struct stale_filter *f = p;
	const struct wf_snap_item *it = &f->snap->items[item];

	return wf_stock_ok(f->stock, wf_stock_key(wf_snap_str(f->snap, it->id_off), it->id_len),
			   it->flags & WF_SNAP_ITEM_SOLD_OUT, it->nsizes, f->size, f->size_len);
}

/* The query e as the previous file answers it: its user's list there,
 * no session, the weights of the visitor type it has there. */
static struct wf_rank_query stale_query(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, const struct ranker_query *e,
					int page, struct stale_filter *f)
{
	const struct wf_snap *ps = ctx->cur->prev;
	const struct ranker_session *s = ranker_session_find(ctx, &argv[0]);
	struct wf_rank_query q = e->q;
	const char *uid = argv[1].p;
	size_t ulen = argv[1].len;
	int64_t u = -1;

	if (wf_user_is_anon(uid, ulen) && s && s->user) {
		uid = s->user;
		ulen = s->user_len;
	}
	if (!wf_user_is_anon(uid, ulen))
		u = wf_snap_user_find(ps, uid, ulen);
	q.sess = NULL;
	q.cands = u >= 0 ? ps->cands + ps->users[u].cand_off : NULL;
	q.ncands = u >= 0 ? ps->users[u].cand_cnt : 0;
	q.anchor = -1;
	q.anchor_key = 0;
	wf_ctl_weights_get(ctx->shm->ctl, page, u >= 0 ? WF_VISITOR_RETURNING : WF_VISITOR_NEW, &q.w_batch, &q.w_session);
	*f = (struct stale_filter){ ps, ctx->shm->stock, e->f.size, e->f.size_len };
	q.filter = stale_stock_ok;
	q.filter_ctx = f;
	q.filter_prefetch = NULL; /* e->q's reads e->f, not f */
	return q;
}

int ranker_exp_stale_recs(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, int page, struct ranker_query *e,
			  const struct wf_arg *anchor, const char **ids, uint32_t *lens, struct wf_rank_explain *ex)
{
	const struct wf_snap *ps = ctx->cur ? ctx->cur->prev : NULL;
	uint32_t items[WF_RANK_MAX_K];
	float scores[WF_RANK_MAX_K];
	struct stale_filter f;
	struct wf_rank_query q;
	int n;

	if (!ps)
		return -ENOENT;
	q = stale_query(ctx, argv, e, page, &f);
	if (anchor)
		q.anchor = wf_snap_item_find(ps, anchor->p, anchor->len);
	n = wf_rank_recs(ps, &ctx->params, &q, ctx->scratch, items, scores, ex);
	for (int i = 0; i < n; i++) {
		const struct wf_snap_item *it = &ps->items[items[i]];
		ids[i] = wf_snap_str(ps, it->id_off);
		lens[i] = it->id_len;
	}
	return n;
}

int ranker_exp_stale_rerank(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t n,
			    const struct ranker_query *e, uint32_t *pos)
{
	const struct wf_snap *ps = ctx->cur ? ctx->cur->prev : NULL;
	struct stale_filter f;
	struct wf_rank_query q;

	if (!ps)
		return -ENOENT;
	q = stale_query(ctx, argv, e, WF_PAGE_SEARCH, &f);
	for (uint32_t i = 0; i < n; i++)
		ctx->rr_items[i] = wf_snap_item_find(ps, argv[2 + i].p, argv[2 + i].len);
	return wf_rank_rerank(ps, &ctx->params, &q, ctx->scratch, ctx->rr_items, n, pos, NULL);
}

/* Arguments of an exposure note before its items (lib/journal.h). */
#define EXPOSURE_HEAD 7u

void ranker_exp_expose(struct ranker_ctx *ctx, const struct ranker_pick *pk, const struct wf_msg_req *hdr,
		       const struct wf_msg_arg *argv, int page, uint32_t n, const char *const *ids, const uint32_t *lens)
{
	struct wf_arg av[WF_MSG_NOTE_MAX_ARGS];
	char req[24];
	const char *pg = wf_page_name(page);
	const struct wf_exp *e = pk->e;
	uint32_t argc = 0;

	if (!e || pk->arm < 0)
		return;
	snprintf(req, sizeof(req), "%" PRIu64, hdr->req_id);
	av[argc++] = (struct wf_arg){ e->name, (uint32_t)strlen(e->name) };
	av[argc++] = (struct wf_arg){ e->arms[pk->arm].name, (uint32_t)strlen(e->arms[pk->arm].name) };
	av[argc++] = (struct wf_arg){ pk->unit, pk->unit_len };
	av[argc++] = argv[0];
	av[argc++] = argv[1];
	av[argc++] = (struct wf_arg){ pg, (uint32_t)strlen(pg) };
	av[argc++] = (struct wf_arg){ req, (uint32_t)strlen(req) };
	_Static_assert(EXPOSURE_HEAD == 7, "exposure head");
	/* Past WF_MSG_NOTE_MAX_ARGS - 7 = 57 items, the rest of the reply is
	 * not in the exposure (lib/journal.h says so). */
	for (uint32_t i = 0; i < n && argc < WF_MSG_NOTE_MAX_ARGS; i++)
		av[argc++] = (struct wf_arg){ ids[i], lens[i] };
	if (ranker_push_note(ctx, &(struct wf_msg_note){ .ts_ms = wf_wall_ms(), .jkind = WF_JREC_EXPOSURE }, argc,
			     av) == 0)
		ctx->exposures++;
}
