/*
 * segquery.c - what weft-ranker's commands ask of segments: the segments
 * a shopper is in now (SEGMENTS), and SEGPREVIEW: how many of this shard's
 * live sessions, and of its snapshot users without one, a rule matches
 * now (weft-ingest asks every shard and adds the answers up). The rule is
 * compiled beside the defined segments (wf_seg_set_with_rule) and each
 * session's state rebuilt from its history, as segs.c does on a reload.
 * Linked only into weft-ranker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/proto.h"
#include "rankers/ranker_int.h"

uint64_t ranker_segs_now(struct ranker_ctx *ctx, struct ranker_session *s, const struct wf_msg_arg *user)
{
	struct wf_seg_inputs u;
	uint64_t bits;

	if (!ctx->segs)
		return 0;
	ranker_seg_inputs(ctx, s, user->p, user->len, wf_seg_set_uses(ctx->segs), &u);
	if (s && s->seg)
		return wf_seg_eval(ctx->segs, &s->seg->st, &u, wf_wall_ms(), NULL);
	/* No session (or none of its events mattered): its user's attributes alone. */
	struct wf_seg_state *st = calloc(1, wf_seg_state_size(ctx->segs));
	if (!st)
		return 0;
	wf_seg_state_init(ctx->segs, st);
	bits = wf_seg_eval(ctx->segs, st, &u, wf_wall_ms(), NULL);
	free(st);
	return bits;
}

/* Open addressing set of user hashes (| 1; 0 empty). */
struct hset {
	uint64_t *k;
	uint32_t mask;
};

static int hset_init(struct hset *h, uint32_t n)
{
	uint32_t cap = 1024;

	while (cap < 2 * n)
		cap *= 2;
	h->k = calloc(cap, sizeof(*h->k));
	h->mask = cap - 1;
	return h->k ? 0 : -ENOMEM;
}

static void hset_add(struct hset *h, uint64_t k)
{
	uint32_t i;

	for (i = (uint32_t)k & h->mask; h->k[i] && h->k[i] != k; i = (i + 1) & h->mask)
		;
	h->k[i] = k;
}

static int hset_has(const struct hset *h, uint64_t k)
{
	for (uint32_t i = (uint32_t)k & h->mask; h->k[i]; i = (i + 1) & h->mask)
		if (h->k[i] == k)
			return 1;
	return 0;
}

#define PREVIEW_SAMPLE 10u

struct preview {
	uint64_t matched, fresh, returning;
	uint32_t nsample;
	struct {
		const char *s, *u;
		uint32_t sl, ul;
	} sample[PREVIEW_SAMPLE];
};

static void preview_add(struct preview *p, int known, const char *s, uint32_t sl, const char *u, uint32_t ul)
{
	p->matched++;
	if (known)
		p->returning++;
	else
		p->fresh++;
	if (p->nsample < PREVIEW_SAMPLE)
		p->sample[p->nsample++] = (typeof(p->sample[0])){ s, u, sl, ul };
}

/* A preview's items: wf_hash64(id) | 1 -> which count atoms the item's
 * attributes pass (wf_seg_item_match), each item resolved in the snapshot
 * once per preview. Open addressing, at most half full. Two ids whose
 * 64-bit hashes collide (odds 2^-64 a pair) would share an answer. */
struct pv_items {
	struct pv_item {
		uint64_t key, match;
	} *t;
	uint32_t mask, n;
};

static int pv_items_grow(struct pv_items *it)
{
	uint32_t cap = it->t ? 2 * (it->mask + 1) : 4096;
	struct pv_item *t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; it->t && i <= it->mask; i++)
		if (it->t[i].key) {
			uint32_t j = (uint32_t)it->t[i].key & (cap - 1);
			while (t[j].key)
				j = (j + 1) & (cap - 1);
			t[j] = it->t[i];
		}
	free(it->t);
	it->t = t;
	it->mask = cap - 1;
	return 0;
}

/* The match bits of item id under pv (0 when out of memory: the item
 * passes no filter; the caller has checked the table exists). */
static uint64_t pv_item_match(struct ranker_ctx *ctx, struct pv_items *it, const struct wf_seg_set *pv,
			      const struct wf_msg_arg *id)
{
	uint64_t key = wf_hash64(id->p, id->len) | 1;
	uint32_t i;

	for (i = (uint32_t)key & it->mask; it->t[i].key; i = (i + 1) & it->mask)
		if (it->t[i].key == key)
			return it->t[i].match;
	struct wf_seg_event ev = { 0 };
	ranker_seg_item_attrs(ctx, ranker_item_index(ctx, id->p, id->len), &ev);
	uint64_t m = wf_seg_item_match(pv, &ev);
	if (2 * (it->n + 1) > it->mask + 1) {
		if (pv_items_grow(it) < 0)
			return m;
		for (i = (uint32_t)key & it->mask; it->t[i].key; i = (i + 1) & it->mask)
			;
	}
	it->t[i] = (struct pv_item){ key, m };
	it->n++;
	return m;
}

/* s's kept events into st (fresh, of pv) for an evaluation at now: the
 * type and item of each record only, items through the preview's table,
 * and an event out of every window of its type's filtered atoms at now
 * never resolved (wf_seg_apply_matched keeps no time that cannot count
 * then). Equal at now to ranker_seg_from_history's state. */
static void pv_walk(struct ranker_ctx *ctx, struct pv_items *it, const struct wf_seg_set *pv,
		    const struct ranker_session *s, struct wf_seg_state *st, const uint64_t *item_win, uint64_t now)
{
	struct ranker_hist_cur cur = { 0 };
	struct wf_msg_arg item;
	uint64_t ts;
	int type;

	while (ranker_hist_scan(s, &cur, &ts, &type, &item)) {
		uint64_t m = 0;
		if (type < 0 || type >= WF_EV_COUNT || !wf_seg_set_affected(pv, type))
			continue;
		if (ts + item_win[type] > now)
			m = pv_item_match(ctx, it, pv, &item);
		wf_seg_apply_matched(pv, st, type, ts, m, now);
	}
}

/* SEGPREVIEW over this shard's live sessions: rule idx of pv, evaluated
 * now on each one's state rebuilt from its history; their users noted in
 * users (when the rule reads user attributes). Without the preview's item
 * table (more than 64 count atoms, no memory), the history is read as a
 * reload reads it. */
static void preview_sessions(struct ranker_ctx *ctx, const struct wf_seg_set *pv, struct wf_seg_state *st,
			     uint32_t idx, uint32_t uses, uint64_t now, struct hset *users, struct preview *p)
{
	struct pv_items it = { 0 };
	uint64_t item_win[WF_EV_COUNT];
	int fast = wf_seg_set_count_atoms(pv) <= 64 && pv_items_grow(&it) == 0;

	for (int t = 0; t < WF_EV_COUNT; t++)
		item_win[t] = wf_seg_item_window(pv, t);
	for (uint32_t b = 0; b < RANKER_SESSION_TABLE; b++) {
		/* The walk waits on memory (a session, then its history, for
		 * ~100 ns each): ask for them a few buckets ahead, the session
		 * 8 buckets ahead, its history (read from the session, there by
		 * then) 4 ahead. */
		const struct ranker_session *ahead = ctx->sessions[(b + 8) & (RANKER_SESSION_TABLE - 1)];
		if (ahead) {
			__builtin_prefetch(ahead);
			__builtin_prefetch((const char *)ahead + 64);
		}
		ahead = ctx->sessions[(b + 4) & (RANKER_SESSION_TABLE - 1)];
		if (ahead && ahead->hist)
			__builtin_prefetch(ahead->hist);
		for (struct ranker_session *s = ctx->sessions[b]; s; s = s->next) {
			struct wf_seg_inputs u;
			wf_seg_state_init(pv, st);
			if ((uses & (WF_SEG_USES_EVENTS | WF_SEG_USES_IDLE | WF_SEG_USES_CART)) && fast)
				pv_walk(ctx, &it, pv, s, st, item_win, now);
			else if (uses & (WF_SEG_USES_EVENTS | WF_SEG_USES_IDLE | WF_SEG_USES_CART))
				ranker_seg_from_history(ctx, pv, s, st);
			ranker_seg_inputs(ctx, s, NULL, 0, uses | WF_SEG_USES_USER, &u); /* new or returning */
			if (users->k && s->user)
				hset_add(users, wf_hash64(s->user, s->user_len) | 1);
			if (wf_seg_eval(pv, st, &u, now, NULL) >> idx & 1)
				preview_add(p, u.known, s->id, s->id_len, s->user ? s->user : WF_ANON_USER,
					    s->user ? s->user_len : 1u);
		}
	}
	free(it.t);
}

/* SEGPREVIEW over this shard's snapshot users with no live session (a rule
 * on user attributes), each as an empty session, from the generation's
 * table (ranker_gen.pv_users, in user order). */
static void preview_users(struct ranker_ctx *ctx, const struct wf_seg_set *pv, struct wf_seg_state *st, uint32_t idx,
			  uint32_t uses, uint64_t now, const struct hset *users, struct preview *p)
{
	const struct ranker_gen *g = ctx->cur;
	const struct wf_snap *snap = g->snap;
	/* Without ltv an empty session's answer depends on the lifecycle
	 * alone: once per value (0 unknown yet, 1 no, 2 yes), then a scan of
	 * the lifecycle bytes. */
	uint8_t memo[256] = { 0 };
	int by_life = !(uses & WF_SEG_USES_LTV);

	wf_seg_state_init(pv, st);
	for (uint32_t i = 0; i < g->nowned; i++) {
		uint8_t life = g->pv_life[i];
		int hit;
		if (by_life && memo[life]) {
			hit = memo[life] == 2;
		} else {
			struct wf_seg_inputs u = { .known = 1, .lifecycle = life, .ltv = g->pv_users[i].ltv };
			hit = (int)(wf_seg_eval(pv, st, &u, now, NULL) >> idx & 1);
			if (by_life)
				memo[life] = (uint8_t)(1 + hit);
		}
		if (!hit || hset_has(users, g->pv_users[i].key))
			continue;
		const struct wf_snap_user *su = &snap->users[g->pv_users[i].user];
		preview_add(p, 1, WF_ANON_USER, 1, wf_snap_str(snap, su->id_off), su->id_len);
	}
}

/*
 * SEGPREVIEW rule: [matched, new, returning, ["session user"...]] for this
 * shard: its live sessions that match now (their state built from their
 * history for the rule and the segments it reads), and, when the rule
 * reads user attributes, this shard's snapshot users without a live
 * session, evaluated as an empty session. Nothing is defined or stored.
 */
void ranker_cmd_segpreview(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, struct wf_buf *out)
{
	struct wf_seg_set *pv = NULL;
	struct wf_seg_error err = { 0 };
	struct wf_seg_state *st = NULL;
	struct preview p = { 0 };
	struct hset users = { 0 };
	uint64_t now = wf_wall_ms();
	uint32_t idx, uses;
	int r;

	if (wf_cmd_arity(wf_cmd_of(WF_CMD_SEGPREVIEW), argc) < 0) {
		wf_resp_w_error(out, "ERR %s", wf_cmd_of(WF_CMD_SEGPREVIEW)->usage);
		return;
	}
	r = wf_seg_set_with_rule(ctx->segs, argv[0].p, argv[0].len, &pv, &err);
	if (r < 0) {
		if (r == -EINVAL)
			wf_resp_w_error(out, "ERR bad rule: %s", err.msg);
		else
			wf_resp_w_error(out, "ERR out of memory for the preview");
		return;
	}
	idx = wf_seg_set_count(pv) - 1;
	uses = wf_seg_set_uses(pv);
	st = malloc(wf_seg_state_size(pv));
	if (!st || ((uses & WF_SEG_USES_USER) && hset_init(&users, ctx->nsessions) < 0)) {
		wf_resp_w_error(out, "ERR out of memory for the preview");
		goto done;
	}
	preview_sessions(ctx, pv, st, idx, uses, now, &users, &p);
	if ((uses & WF_SEG_USES_USER) && ctx->cur && ctx->cur->pv_users)
		preview_users(ctx, pv, st, idx, uses, now, &users, &p);
	wf_resp_w_array(out, 4);
	wf_resp_w_int(out, (int64_t)p.matched);
	wf_resp_w_int(out, (int64_t)p.fresh);
	wf_resp_w_int(out, (int64_t)p.returning);
	wf_resp_w_array(out, p.nsample);
	for (uint32_t i = 0; i < p.nsample; i++)
		wf_resp_w_bulk_fmt(out, "%.*s %.*s", (int)p.sample[i].sl, p.sample[i].s, (int)p.sample[i].ul,
				   p.sample[i].u);
done:
	free(users.k);
	free(st);
	wf_seg_set_free(pv);
}
