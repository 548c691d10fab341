/*
 * test_rank.c - the scoring library (lib/rank): on the small store of
 * test_ranker.h, RECS for a known user with an empty session is the batch
 * list; one click does not move the top 3; three views of a new category
 * bring it up; a carted item leaves and its complements rise to the top 5
 * (even after a long look at one category); purchases
 * leave; a filtered (sold-out) item never appears; EXPLAIN parts add up to
 * the score bit for bit; RERANK puts session-matching items first and
 * unknown items last in their order; an intent pivot is detected and acted
 * on; wf_rank_positions(), one pool for several queries, gives each
 * item's place in the lists wf_rank_recs() gives each query alone; the
 * session's evidence by index and by rows give the same; returns are
 * scored from the repeat curve and an anchor never comes back; items the
 * snapshot lacks that the visit viewed (live items) come back the same
 * way, by a code of their own, and agree with the positions; with no
 * batch list every weight pair ranks as the session alone; every EXPLAIN
 * part is weight x feature, under a fitted model too; a RECS over a
 * 200-candidate list on a 20,000-item synthetic snapshot gives k distinct
 * items in score order. Times are measured by bench/rankbench.c, not here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/rank/rank.h"
#include "lib/util.h"
#include "tests/test_ranker.h"

struct fx {
	char dir[256], path[512];
	struct wf_snap *snap;
	struct wf_rank_params p;
	struct wf_rank_scratch *w;
	struct wf_rank_session s;
	const struct wf_snap_cand *cands; /* alice */
	uint32_t ncands;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	int64_t u;

	snprintf(f->dir, sizeof(f->dir), "/tmp/weft.test.rank.%d.XXXXXX", (int)getpid());
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/s.snap", f->dir);
	if (tr_write_store(f->path, 1) < 0 || wf_snap_open(f->path, &f->snap, err, sizeof(err)) < 0)
		return -1;
	f->w = calloc(1, sizeof(*f->w));
	wf_rank_params_default(&f->p);
	wf_rank_session_init(&f->s);
	u = wf_snap_user_find(f->snap, "alice", 5);
	if (u < 0 || !f->w)
		return -1;
	f->cands = f->snap->cands + f->snap->users[u].cand_off;
	f->ncands = f->snap->users[u].cand_cnt;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[600];

	wf_snap_close(f->snap);
	free(f->w);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static int64_t item(const struct fx *f, const char *id)
{
	int64_t i = wf_snap_item_find(f->snap, id, strlen(id));
	assert_true(i >= 0);
	return i;
}

static void ev(struct fx *f, int type, const char *id)
{
	wf_rank_session_apply(&f->s, f->snap, &f->p, type, item(f, id), 0);
}

/* A query as the ranker makes it for alice (returning: 0.4 / 0.6). */
static struct wf_rank_query query(struct fx *f, uint32_t k)
{
	return (struct wf_rank_query){ .sess = &f->s, .cands = f->cands, .ncands = f->ncands, .w_batch = 0.4f,
				       .w_session = 0.6f, .anchor = -1, .k = k };
}

static int recs(struct fx *f, const struct wf_rank_query *q, uint32_t *out)
{
	float sc[WF_RANK_MAX_K];
	int n = wf_rank_recs(f->snap, &f->p, q, f->w, out, sc, NULL);

	assert_true(n >= 0);
	return n;
}

/* Rank (0-based) of the first item of category cat in out[0..n), or n. */
static int first_of_cat(const struct fx *f, const uint32_t *out, int n, uint32_t cat)
{
	for (int i = 0; i < n; i++)
		if (f->snap->items[out[i]].category == cat)
			return i;
	return n;
}

static int rank_of(const uint32_t *out, int n, int64_t it)
{
	for (int i = 0; i < n; i++)
		if (out[i] == it)
			return i;
	return n;
}

static void test_rank_empty_session_returns_batch_order(void **state)
{
	struct fx *f = *state;
	struct wf_rank_query q = query(f, TR_ALICE_N);
	uint32_t out[WF_RANK_MAX_K];

	assert_int_equal(recs(f, &q, out), TR_ALICE_N);
	for (uint32_t i = 0; i < TR_ALICE_N; i++)
		assert_int_equal(out[i], f->cands[i].item);
	/* No session at all: the same. */
	q.sess = NULL;
	assert_int_equal(recs(f, &q, out), TR_ALICE_N);
	for (uint32_t i = 0; i < TR_ALICE_N; i++)
		assert_int_equal(out[i], f->cands[i].item);
}

static void test_rank_single_click_keeps_top3(void **state)
{
	struct fx *f = *state;
	struct wf_rank_query q = query(f, 10);
	uint32_t before[WF_RANK_MAX_K], after[WF_RANK_MAX_K];
	const char *clicks[] = { "i12", "i20", "i35", "i02" }; /* listed hat, new bag, new sock, listed shoe */

	assert_int_equal(recs(f, &q, before), 10);
	for (uint32_t c = 0; c < WF_ARRAY_SIZE(clicks); c++) {
		wf_rank_session_init(&f->s);
		ev(f, WF_EV_CLICK, clicks[c]);
		assert_int_equal(recs(f, &q, after), 10);
		assert_memory_equal(before, after, 3 * sizeof(before[0]));
	}
}

static void test_rank_three_views_new_category_moves_it_up(void **state)
{
	struct fx *f = *state;
	struct wf_rank_query q = query(f, 40);
	uint32_t before[WF_RANK_MAX_K], after[WF_RANK_MAX_K];
	int nb = recs(f, &q, before), na, fb, fa;

	ev(f, WF_EV_VIEW, "i20");
	ev(f, WF_EV_VIEW, "i21");
	ev(f, WF_EV_VIEW, "i22");
	na = recs(f, &q, after);
	fb = first_of_cat(f, before, nb, 2);
	fa = first_of_cat(f, after, na, 2);
	assert_true(fb >= (int)TR_ALICE_N); /* below all of alice's list before */
	assert_true(fa < fb);
	assert_true(fa < (int)TR_ALICE_N - 1); /* now above some of her list */
	/* ... and the list holds no fewer bag items than before (the prior is
	 * damped with the rest of the session's parts now, so one bag item
	 * may trade places with another). */
	int bb = 0, ba = 0;
	for (int i = 0; i < nb; i++)
		bb += f->snap->items[before[i]].category == 2;
	for (int i = 0; i < na; i++)
		ba += f->snap->items[after[i]].category == 2;
	assert_true(ba >= bb);
}

static void test_rank_cart_add_removes_item_and_lifts_complements(void **state)
{
	struct fx *f = *state;
	struct wf_rank_query q = query(f, 40);
	uint32_t before[WF_RANK_MAX_K], after[WF_RANK_MAX_K];
	int nb = recs(f, &q, before), na;

	assert_int_equal(before[0], item(f, "i00"));
	ev(f, WF_EV_CART_ADD, "i00");
	na = recs(f, &q, after);
	assert_int_equal(rank_of(after, na, item(f, "i00")), na);
	assert_true(rank_of(after, na, item(f, "i30")) < rank_of(before, nb, item(f, "i30")));
	assert_true(rank_of(after, na, item(f, "i31")) < rank_of(before, nb, item(f, "i31")));
	assert_true(rank_of(after, na, item(f, "i30")) < 10);
	/* Complements reach the top of the list, even when the session's
	 * other evidence is strong: after a long look at shoes, carting a
	 * shoe brings its socks into the top 5, for a returning shopper and
	 * for a new visitor. */
	for (int anon = 0; anon < 2; anon++) {
		struct wf_rank_query qa = query(f, 40);
		char id[8];
		if (anon) {
			qa.cands = NULL;
			qa.ncands = 0;
			qa.w_batch = 0.1f;
			qa.w_session = 0.9f;
		}
		wf_rank_session_init(&f->s);
		for (int r = 0; r < 2; r++)
			for (int i = 1; i < 8; i++) {
				snprintf(id, sizeof(id), "i%02d", i);
				ev(f, WF_EV_PDP, id);
			}
		na = recs(f, &qa, after);
		assert_true(rank_of(after, na, item(f, "i30")) >= 5);
		assert_true(rank_of(after, na, item(f, "i31")) >= 5);
		ev(f, WF_EV_CART_ADD, "i00");
		na = recs(f, &qa, after);
		assert_true(rank_of(after, na, item(f, "i30")) < 5);
		assert_true(rank_of(after, na, item(f, "i31")) < 10);
	}
	/* Removed from the cart: it may come back. */
	ev(f, WF_EV_CART_REMOVE, "i00");
	na = recs(f, &q, after);
	assert_true(rank_of(after, na, item(f, "i00")) < na);
	/* Bought: gone for good. */
	ev(f, WF_EV_PURCHASE, "i00");
	na = recs(f, &q, after);
	assert_int_equal(rank_of(after, na, item(f, "i00")), na);
}

struct deny {
	int64_t a, b;
	uint32_t asked;
};

static int deny_filter(void *ctx, uint32_t it)
{
	struct deny *d = ctx;
	d->asked++;
	return it != d->a && it != d->b;
}

static void test_rank_filtered_item_never_appears(void **state)
{
	struct fx *f = *state;
	struct deny d = { item(f, "i01"), item(f, "i30"), 0 };
	struct wf_rank_query q = query(f, 40);
	uint32_t out[WF_RANK_MAX_K], pos[8];
	int64_t given[4] = { item(f, "i30"), item(f, "i01"), item(f, "i02"), -1 };
	int n;

	q.filter = deny_filter;
	q.filter_ctx = &d;
	n = recs(f, &q, out);
	assert_true(n > 10);
	assert_true(d.asked > 0);
	ev(f, WF_EV_CART_ADD, "i00"); /* i30 is a complement now */
	ev(f, WF_EV_PDP, "i00");
	for (int round = 0; round < 2; round++) {
		n = recs(f, &q, out);
		assert_int_equal(rank_of(out, n, d.a), n);
		assert_int_equal(rank_of(out, n, d.b), n);
		ev(f, WF_EV_PDP, "i01");
	}
	/* RERANK drops them too, and keeps the unknown item. */
	n = wf_rank_rerank(f->snap, &f->p, &q, f->w, given, 4, pos, NULL);
	assert_int_equal(n, 2);
	assert_int_equal(pos[0], 2);
	assert_int_equal(pos[1], 3);
}

static void check_explain(struct fx *f, const struct wf_rank_query *q)
{
	uint32_t out[WF_RANK_MAX_K], out2[WF_RANK_MAX_K];
	float sc[WF_RANK_MAX_K], sc2[WF_RANK_MAX_K];
	struct wf_rank_explain ex[WF_RANK_MAX_K];
	int n = wf_rank_recs(f->snap, &f->p, q, f->w, out, sc, ex);
	int n2 = wf_rank_recs(f->snap, &f->p, q, f->w, out2, sc2, NULL);

	assert_true(n > 0);
	assert_int_equal(n, n2);
	assert_memory_equal(out, out2, (size_t)n * sizeof(out[0]));
	for (int i = 0; i < n; i++) {
		float sum = ex[i].batch + ex[i].session + ex[i].neighbours + ex[i].trend + ex[i].complement +
			    ex[i].penalty;
		const float *t = ex[i].term;
		assert_true(sum == sc[i]);
		/* every part is weight x feature, the groups their sums */
		for (uint32_t ft = 0; ft < WF_RANK_NFEAT; ft++)
			assert_true(t[ft] == ex[i].weight[ft] * ex[i].feature[ft] || (t[ft] == 0 && ex[i].feature[ft] == 0));
		assert_true(ex[i].batch == t[WF_RANK_F_BATCH]);
		assert_true(ex[i].session == (t[WF_RANK_F_CAT] + t[WF_RANK_F_BRAND]) + t[WF_RANK_F_BAND]);
		assert_true(ex[i].neighbours ==
			    ((t[WF_RANK_F_NEIGH] + t[WF_RANK_F_SEQ1]) + t[WF_RANK_F_SEQ]) + t[WF_RANK_F_REPEAT]);
		assert_true(ex[i].trend == t[WF_RANK_F_POP] + t[WF_RANK_F_TREND]);
		assert_true(sc[i] == sc2[i]);
		assert_true(ex[i].penalty <= 0);
		if (i)
			assert_true(sc[i - 1] >= sc[i]);
	}
}

static void test_rank_explain_parts_sum_to_score(void **state)
{
	struct fx *f = *state;
	struct wf_rank_query q = query(f, 40);

	f->p.penalty_seen = 0.01f; /* exercise every part */
	check_explain(f, &q);
	ev(f, WF_EV_VIEW, "i20");
	ev(f, WF_EV_DWELL, "i21");
	wf_rank_session_apply(&f->s, f->snap, &f->p, WF_EV_DWELL, item(f, "i22"), 4000);
	ev(f, WF_EV_CART_ADD, "i00");
	ev(f, WF_EV_CLICK, "i23");
	ev(f, WF_EV_CLICK, "i23");
	check_explain(f, &q);
	q.anchor = item(f, "i11");
	check_explain(f, &q);
	q.cands = NULL; /* anonymous */
	q.ncands = 0;
	q.w_batch = 0.1f;
	q.w_session = 0.9f;
	check_explain(f, &q);
}

/* The snapshot of f with model m in place of its own (lib/rank reads
 * snap->model at every query). */
static struct wf_snap with_model(const struct fx *f, const struct wf_snap_model *m)
{
	struct wf_snap s = *f->snap;

	s.model = m;
	return s;
}

static void test_rank_explain_sums_with_fitted_model(void **state)
{
	struct fx *f = *state;
	struct wf_snap_model m = { .version = WF_RANK_MODEL_VERSION, .feature_set = WF_RANK_FEATURE_SET,
				   .nfeat = WF_RANK_NFEAT,
				   .flags = WF_SNAP_MODEL_FITTED_RETURNING | WF_SNAP_MODEL_FITTED_NEW,
				   .repeat = { 0.3f, 0.2f, 0.1f } };
	struct wf_snap *orig = f->snap, s;
	struct wf_rank_query q = query(f, 40);

	for (uint32_t v = 0; v < 2; v++)
		for (uint32_t ft = 0; ft < WF_RANK_NFEAT; ft++)
			m.weight[v][ft] = (float)(ft % 3) - 0.7f * (float)v + 0.1f * (float)ft; /* some negative */
	s = with_model(f, &m);
	f->snap = &s;
	ev(f, WF_EV_VIEW, "i20");
	ev(f, WF_EV_PDP, "i21");
	ev(f, WF_EV_VIEW, "i20");
	check_explain(f, &q);
	q.cands = NULL;
	q.ncands = 0;
	check_explain(f, &q);
	f->snap = orig;
}

/*
 * Returns are scored from the snapshot's repeat curve: after views of
 * i20 then i21, both can be recommended (the item on screen too), the
 * newest with the curve's r = 0 as its REPEAT feature; an ANCHOR is never
 * returned, whatever its repeat score; without a curve (all 0) neither
 * comes back from the repeat part.
 */
static void test_rank_repeat_curve_returns_viewed_items_never_the_anchor(void **state)
{
	struct fx *f = *state;
	struct wf_snap_model m = { .repeat = { 0.5f, 0.4f } };
	struct wf_snap *orig = f->snap, s = with_model(f, &m);
	struct wf_rank_query q = query(f, 20);
	uint32_t out[WF_RANK_MAX_K];
	float sc[WF_RANK_MAX_K];
	struct wf_rank_explain ex[WF_RANK_MAX_K];
	int n;

	q.cands = NULL; /* a new visitor */
	q.ncands = 0;
	f->snap = &s;
	ev(f, WF_EV_VIEW, "i20");
	ev(f, WF_EV_VIEW, "i21");
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, ex);
	int r21 = rank_of(out, n, item(f, "i21")), r20 = rank_of(out, n, item(f, "i20"));
	assert_true(r21 < n && r20 < n);
	assert_true(r21 < r20);
	assert_true(ex[r21].feature[WF_RANK_F_REPEAT] == 0.5f);
	assert_true(ex[r20].feature[WF_RANK_F_REPEAT] == 0.4f);
	/* PAGE pdp ANCHOR i21: the item on screen is not shown */
	q.anchor = item(f, "i21");
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	assert_int_equal(rank_of(out, n, item(f, "i21")), n);
	assert_true(rank_of(out, n, item(f, "i20")) < n);
	int32_t pos[1];
	assert_int_equal(wf_rank_positions(f->snap, &f->p, &q, 1, f->w, item(f, "i21"), pos), 0);
	assert_int_equal(pos[0], -1);
	f->snap = orig;
}

/*
 * One consistent prior: with no batch list there is nothing to blend, so
 * every weight pair ranks as the session alone (0 / 1) does, bit for bit
 * (hybrid >= session-only on anonymous traffic).
 */
static void test_rank_no_batch_list_hybrid_equals_session_order(void **state)
{
	struct fx *f = *state;
	const float wb[] = { 0.1f, 0.4f, 0.9f };
	uint32_t a[WF_RANK_MAX_K], b[WF_RANK_MAX_K];
	float sa[WF_RANK_MAX_K], sb[WF_RANK_MAX_K];

	ev(f, WF_EV_VIEW, "i20");
	for (int step = 0; step < 3; step++) {
		struct wf_rank_query qs = { .sess = step ? &f->s : NULL, .w_batch = 0, .w_session = 1, .anchor = -1, .k = 40 };
		int na = wf_rank_recs(f->snap, &f->p, &qs, f->w, a, sa, NULL);
		assert_true(na > 0);
		for (size_t i = 0; i < WF_ARRAY_SIZE(wb); i++) {
			struct wf_rank_query qh = qs;
			qh.w_batch = wb[i];
			qh.w_session = 1.0f - wb[i];
			int nb = wf_rank_recs(f->snap, &f->p, &qh, f->w, b, sb, NULL);
			assert_int_equal(na, nb);
			assert_memory_equal(a, b, (size_t)na * sizeof(a[0]));
			assert_memory_equal(sa, sb, (size_t)na * sizeof(sa[0]));
		}
		ev(f, WF_EV_PDP, "i11");
		ev(f, WF_EV_CLICK, "i35");
	}
}

static void test_rank_rerank_puts_session_matches_first(void **state)
{
	struct fx *f = *state;
	struct wf_rank_query q = query(f, 10);
	int64_t given[6] = { item(f, "i01"), item(f, "i11"), -1, item(f, "i26"), -1, item(f, "i35") };
	uint32_t pos[8];
	float sc[8];
	int n;

	q.cands = NULL; /* a new visitor searching */
	q.ncands = 0;
	ev(f, WF_EV_PDP, "i20");
	ev(f, WF_EV_PDP, "i22");
	ev(f, WF_EV_CLICK, "i24");
	n = wf_rank_rerank(f->snap, &f->p, &q, f->w, given, 6, pos, sc);
	assert_int_equal(n, 6);
	assert_int_equal(pos[0], 3);    /* the bag */
	assert_int_equal(pos[4], 2);    /* unknown ids last, in their order */
	assert_int_equal(pos[5], 4);
	for (int i = 1; i < 4; i++)
		assert_true(sc[i - 1] >= sc[i]);
	/* Empty session: equal-scoring items keep the app's order. */
	wf_rank_session_init(&f->s);
	int64_t same[3] = { item(f, "i26"), item(f, "i26"), -1 };
	n = wf_rank_rerank(f->snap, &f->p, &q, f->w, same, 3, pos, NULL);
	assert_int_equal(n, 3);
	assert_int_equal(pos[0], 0);
	assert_int_equal(pos[1], 1);
	assert_int_equal(pos[2], 2);
}

static void test_rank_intent_pivot_detected_and_followed(void **state)
{
	struct fx *f = *state;
	struct wf_rank_query q = query(f, 10);
	uint32_t out[WF_RANK_MAX_K];
	char id[8];
	int n;

	q.cands = NULL;
	q.ncands = 0;
	for (int i = 0; i < 8; i++) { /* a long look at shoes... */
		snprintf(id, sizeof(id), "i%02d", i);
		ev(f, WF_EV_PDP, id);
	}
	assert_int_equal(f->s.pivot, 0);
	for (int i = 0; i < 4; i++) { /* ...then socks only */
		snprintf(id, sizeof(id), "i%02d", 30 + i);
		ev(f, WF_EV_VIEW, id);
	}
	assert_int_equal(f->s.pivot, 1);
	assert_int_equal(f->s.pivots, 1);
	n = recs(f, &q, out);
	assert_true(n == 10);
	assert_int_equal(f->snap->items[out[0]].category, 3);
	/* Back to shoes: the pivot ends. */
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "i%02d", i);
		ev(f, WF_EV_CLICK, id);
	}
	assert_int_equal(f->s.pivot, 0);
}

static void test_rank_unknown_items_and_bad_types_are_ignored(void **state)
{
	struct fx *f = *state;
	struct wf_rank_session before;

	ev(f, WF_EV_VIEW, "i03");
	before = f->s;
	wf_rank_session_apply(&f->s, f->snap, &f->p, WF_EV_CLICK, -1, 0);
	wf_rank_session_apply(&f->s, f->snap, &f->p, WF_EV_CLICK, TR_NITEMS, 0);
	wf_rank_session_apply(&f->s, f->snap, &f->p, WF_EV_SEARCH, -1, 0);
	wf_rank_session_apply(&f->s, f->snap, &f->p, 99, item(f, "i04"), 0);
	wf_rank_session_apply(&f->s, f->snap, &f->p, -1, item(f, "i04"), 0);
	assert_int_equal(f->s.nevents, before.nevents + 3);
	f->s.nevents = before.nevents;
	assert_memory_equal(&f->s, &before, sizeof(before));
}

/* wf_rank_positions() places every item where wf_rank_recs() lists it
 * for each query alone, or at -1, also for lists cut short (k = 5) and
 * for one query at a time: session-only and hybrid, through carts, an
 * anchor, a filter. */
static void check_positions(struct fx *f, struct wf_rank_query *q2)
{
	float sc1[40];

	for (int cut = 0; cut < 2; cut++) {
		uint32_t lists[2][40];
		int nl[2];

		q2[0].k = q2[1].k = cut ? 5 : 40;
		for (int i = 0; i < 2; i++)
			nl[i] = wf_rank_recs(f->snap, &f->p, &q2[i], f->w, lists[i], sc1, NULL);
		for (int64_t it = -1; it < (int64_t)TR_NITEMS + WF_RANK_RECENT; it++) {
			int32_t pos[2];
			if (it >= (int64_t)TR_NITEMS) /* then every live code */
				it = it - TR_NITEMS + WF_RANK_LIVE_BASE;
			assert_int_equal(wf_rank_positions(f->snap, &f->p, q2, 2, f->w, it, pos), 0);
			for (int i = 0; i < 2; i++) {
				int r = it < 0 ? nl[i] : rank_of(lists[i], nl[i], it);
				int32_t alone;
				assert_int_equal(pos[i], r < nl[i] ? r : -1);
				assert_int_equal(wf_rank_positions(f->snap, &f->p, &q2[i], 1, f->w, it, &alone), 0);
				assert_int_equal(alone, pos[i]);
			}
			if (it >= WF_RANK_LIVE_BASE)
				it = it - WF_RANK_LIVE_BASE + TR_NITEMS;
		}
	}
	q2[0].k = q2[1].k = 40;
}

/* A live item (one the snapshot lacks) with key, as weft-ranker applies it. */
static void live_ev(struct fx *f, int type, uint64_t key)
{
	wf_rank_session_apply_key(&f->s, f->snap, &f->p, type, -1, key, 0);
}

/*
 * Live items: items the snapshot lacks that the visit viewed come back as
 * returns at the curve's place (the newest place of each), by a code
 * that resolves to their key, scored weight x feature like any return
 * (EXPLAIN sums), scaled like the session's other parts; never the
 * anchor, never carted or bought, never refused by the filter; the
 * evaluator's positions agree with the lists; a session without live
 * items ranks as before.
 */
static void test_rank_live_items_return_at_the_curves_place(void **state)
{
	struct fx *f = *state;
	struct wf_snap_model m = { .repeat = { 0.5f, 0.4f, 0.3f, 0.2f } };
	struct wf_snap *orig = f->snap, s = with_model(f, &m);
	struct wf_rank_query q = query(f, 20);
	const uint64_t k1 = 0x1111, k2 = 0x2223;
	uint32_t out[WF_RANK_MAX_K];
	float sc[WF_RANK_MAX_K];
	struct wf_rank_explain ex[WF_RANK_MAX_K];
	uint64_t key;
	int n;

	q.cands = NULL; /* a new visitor */
	q.ncands = 0;
	f->snap = &s;
	ev(f, WF_EV_VIEW, "i20"); /* r = 4: curve 0, not a return */
	live_ev(f, WF_EV_VIEW, k1);
	ev(f, WF_EV_VIEW, "i21"); /* r = 2 */
	live_ev(f, WF_EV_VIEW, k2); /* r = 1 */
	live_ev(f, WF_EV_VIEW, k1); /* r = 0, and 3 */
	live_ev(f, WF_EV_SEARCH, 0); /* no key, no item: nothing */
	assert_int_equal(f->s.nitem_events, 5);
	assert_int_equal(f->s.recent_count, 5);
	int64_t c1 = wf_rank_live_code(&f->s, k1), c2 = wf_rank_live_code(&f->s, k2);
	assert_true(c1 >= WF_RANK_LIVE_BASE && c2 >= WF_RANK_LIVE_BASE && c1 != c2);
	assert_int_equal(wf_rank_live_code(&f->s, 0x3333), -1);
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, ex);
	int r1 = rank_of(out, n, c1), r2 = rank_of(out, n, c2), r21 = rank_of(out, n, item(f, "i21"));
	assert_int_equal(r1, 0);
	assert_int_equal(r2, 1);
	assert_true(r21 == 2);
	assert_true(ex[r1].feature[WF_RANK_F_REPEAT] == 0.5f);
	assert_true(ex[r2].feature[WF_RANK_F_REPEAT] == 0.4f);
	assert_true(ex[r21].feature[WF_RANK_F_REPEAT] == 0.3f);
	for (uint32_t ft = 0; ft < WF_RANK_NFEAT; ft++)
		if (ft != WF_RANK_F_REPEAT)
			assert_true(ex[r1].feature[ft] == 0);
	assert_int_equal(wf_rank_live_key(&f->s, out[r1], &key), 0);
	assert_true(key == k1);
	assert_int_equal(wf_rank_live_key(&f->s, out[r2], &key), 0);
	assert_true(key == k2);
	assert_int_equal(wf_rank_live_key(&f->s, out[r21], &key), -ENOENT);
	assert_int_equal(wf_rank_live_key(&f->s, WF_RANK_LIVE_BASE + WF_RANK_RECENT - 1, &key), -ENOENT);
	f->p.penalty_seen = 0.01f; /* k1 looked at twice: its penalty too */
	check_explain(f, &q);
	f->p.penalty_seen = 0;
	/* a returning shopper: scaled as the known return is */
	struct wf_rank_query qh = query(f, 40);
	n = wf_rank_recs(f->snap, &f->p, &qh, f->w, out, sc, ex);
	r1 = rank_of(out, n, c1);
	r21 = rank_of(out, n, item(f, "i21"));
	assert_true(r1 < n && r21 < n);
	assert_true(ex[r1].weight[WF_RANK_F_REPEAT] == ex[r21].weight[WF_RANK_F_REPEAT]);
	check_explain(f, &qh);
	/* the evaluator's positions, session only and hybrid */
	struct wf_rank_query q2[2] = { q, qh };
	q2[0].k = 40;
	check_positions(f, q2);
	/* RERANK scores a live code as RECS does; an unknown item follows */
	int64_t given[4] = { item(f, "i21"), -1, c2, c1 };
	uint32_t rpos[4];
	float rsc[4];
	assert_int_equal(wf_rank_rerank(f->snap, &f->p, &q, f->w, given, 4, rpos, rsc), 4);
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	assert_int_equal(rpos[0], 3);
	assert_int_equal(rpos[1], 2);
	assert_int_equal(rpos[2], 0);
	assert_int_equal(rpos[3], 1);
	assert_true(rsc[0] == sc[rank_of(out, n, c1)] && rsc[1] == sc[rank_of(out, n, c2)]);
	assert_true(rsc[2] == sc[rank_of(out, n, item(f, "i21"))]);
	/* PAGE pdp ANCHOR of an item the snapshot lacks: not shown */
	q.anchor_key = k1;
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	assert_int_equal(rank_of(out, n, c1), n);
	assert_int_equal(rank_of(out, n, c2), 0);
	int32_t pos[1];
	assert_int_equal(wf_rank_positions(f->snap, &f->p, &q, 1, f->w, c1, pos), 0);
	assert_int_equal(pos[0], -1);
	q.anchor_key = 0;
	/* refused by the filter: never listed */
	struct deny d = { c2, -1, 0 };
	q.filter = deny_filter;
	q.filter_ctx = &d;
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	assert_int_equal(rank_of(out, n, c2), n);
	assert_int_equal(rank_of(out, n, c1), 0);
	q.filter = NULL;
	/* carted: gone; removed from the cart: back; bought: gone for good */
	live_ev(f, WF_EV_CART_ADD, k2);
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	assert_int_equal(rank_of(out, n, wf_rank_live_code(&f->s, k2)), n);
	live_ev(f, WF_EV_CART_REMOVE, k2);
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	assert_int_equal(rank_of(out, n, wf_rank_live_code(&f->s, k2)), 0);
	live_ev(f, WF_EV_PURCHASE, k2);
	live_ev(f, WF_EV_VIEW, k1);
	live_ev(f, WF_EV_VIEW, k2); /* a new place of a bought item: still bought */
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	assert_int_equal(rank_of(out, n, wf_rank_live_code(&f->s, k2)), n);
	assert_true(rank_of(out, n, wf_rank_live_code(&f->s, k1)) < n);
	/* the ring names WF_RANK_LIVE live items at most: a ninth forgets
	 * the one whose newest place is the oldest */
	wf_rank_session_init(&f->s);
	for (uint64_t kk = 1; kk <= WF_RANK_LIVE + 1; kk++)
		live_ev(f, WF_EV_VIEW, kk);
	assert_int_equal(wf_rank_live_code(&f->s, 1), -1);
	for (uint64_t kk = 2; kk <= WF_RANK_LIVE + 1; kk++)
		assert_true(wf_rank_live_code(&f->s, kk) >= WF_RANK_LIVE_BASE);
	assert_int_equal(f->s.recent[0].item, -1); /* its place: an unknown item's */
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	assert_int_equal(out[0], wf_rank_live_code(&f->s, WF_RANK_LIVE + 1));
	assert_int_equal(out[1], wf_rank_live_code(&f->s, WF_RANK_LIVE));
	/* without a repeat curve, no live item */
	f->snap = orig;
	n = wf_rank_recs(f->snap, &f->p, &q, f->w, out, sc, NULL);
	for (int i = 0; i < n; i++)
		assert_false(wf_rank_is_live(out[i]));
}

static void test_rank_positions_match_single_lists(void **state)
{
	struct fx *f = *state;
	struct deny d = { item(f, "i03"), item(f, "i31"), 0 };
	struct wf_rank_query q2[2] = { query(f, 40), query(f, 40) };
	const char *evs[] = { "i20", "i21", "i00", "i05", "i33", "i22" };

	q2[0].cands = NULL; /* session only */
	q2[0].ncands = 0;
	q2[0].w_batch = 0;
	q2[0].w_session = 1;
	check_positions(f, q2);
	for (uint32_t e = 0; e < WF_ARRAY_SIZE(evs); e++) {
		ev(f, e == 2 ? WF_EV_CART_ADD : WF_EV_PDP, evs[e]);
		check_positions(f, q2);
	}
	q2[0].anchor = q2[1].anchor = item(f, "i11");
	check_positions(f, q2);
	q2[0].filter = q2[1].filter = deny_filter;
	q2[0].filter_ctx = q2[1].filter_ctx = &d;
	check_positions(f, q2);
	/* Queries that differ in more than list and weights are refused. */
	q2[1].anchor = -1;
	assert_int_equal(wf_rank_positions(f->snap, &f->p, q2, 2, f->w, 0, (int32_t[2]){ 0 }), -EINVAL);
	assert_int_equal(wf_rank_positions(f->snap, &f->p, q2, 3, f->w, 0, (int32_t[3]){ 0 }), -EINVAL);
	assert_int_equal(wf_rank_positions(f->snap, &f->p, q2, 0, f->w, 0, (int32_t[1]){ 0 }), -EINVAL);
}

/* A synthetic snapshot of ni items (20 neighbours each, seeded), nc batch
 * candidates and 200 popular items; gaps: some items without a category,
 * brand or price band. */
struct synth {
	struct wf_snap s;
	struct wf_snap_item *items;
	struct wf_snap_cand *neigh, *cands, *pop;
};

enum { SYNTH_NEIGH = 20 };

static void synth_make(struct synth *y, uint32_t ni, uint32_t nc, uint64_t seed, int gaps)
{
	memset(y, 0, sizeof(*y));
	y->items = calloc(ni, sizeof(*y->items));
	y->neigh = calloc((size_t)ni * SYNTH_NEIGH, sizeof(*y->neigh));
	y->cands = calloc(nc, sizeof(*y->cands));
	y->pop = calloc(200, sizeof(*y->pop));
	assert_non_null(y->items);
	assert_non_null(y->neigh);
	assert_non_null(y->cands);
	assert_non_null(y->pop);
	for (uint32_t i = 0; i < ni; i++) {
		y->items[i].category = gaps && i % 7 == 0 ? WF_SNAP_NO_CAT : i % 300;
		y->items[i].brand = gaps && i % 5 == 0 ? WF_SNAP_NO_CAT : i % 90;
		y->items[i].price_band = (uint8_t)(gaps && i % 11 == 0 ? 255 : i % 5);
		y->items[i].popularity = (float)(i % 100) / 100.0f;
		y->items[i].neigh_off = i * SYNTH_NEIGH;
		y->items[i].neigh_cnt = SYNTH_NEIGH;
		for (uint32_t x = 0; x < SYNTH_NEIGH; x++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			y->neigh[i * SYNTH_NEIGH + x] =
				(struct wf_snap_cand){ (uint32_t)(seed >> 33) % ni, 1.0f / (float)(x + 1) };
		}
	}
	for (uint32_t i = 0; i < nc; i++)
		y->cands[i] = (struct wf_snap_cand){ (i * 97) % ni, 1.0f - (float)i / nc };
	for (uint32_t i = 0; i < 200; i++)
		y->pop[i] = (struct wf_snap_cand){ (i * 13) % ni, 1.0f };
	y->s.items = y->items;
	y->s.nitems = ni;
	y->s.neigh = y->neigh;
	y->s.nneigh = (uint64_t)ni * SYNTH_NEIGH;
}

static void synth_free(struct synth *y)
{
	free(y->items);
	free(y->neigh);
	free(y->cands);
	free(y->pop);
}

/* The session's evidence looked up by index (the snapshot's categories
 * and brands fit the scratch's tables) and by a compare per row (they do
 * not: here the same snapshot claiming no names) give the same lists,
 * scores and parts, bit for bit, with and without an anchor. */
static void test_rank_evidence_by_index_equals_by_rows(void **state)
{
	enum { NI = 3000, NC = 100 };
	struct fx *f = *state;
	struct wf_rank_session sess;
	struct synth y;

	synth_make(&y, NI, NC, 7, 1);
	wf_rank_session_init(&sess);
	for (uint32_t e = 0; e < 12; e++)
		wf_rank_session_apply(&sess, &y.s, &f->p, e % 3 ? WF_EV_VIEW : WF_EV_PDP, (e * 7919) % NI, 0);
	for (int anchor = 0; anchor < 2; anchor++) {
		struct wf_rank_query q = { .sess = &sess, .cands = y.cands, .ncands = NC, .w_batch = 0.4f,
					   .w_session = 0.6f, .anchor = anchor ? 11 : -1, .k = 50 };
		uint32_t out[2][50];
		float sc[2][50];
		struct wf_rank_explain ex[2][50];
		int n[2];
		for (int rows = 0; rows < 2; rows++) {
			y.s.ncats = rows ? 0 : 300;
			y.s.nbrands = rows ? 0 : 90;
			n[rows] = wf_rank_recs(&y.s, &f->p, &q, f->w, out[rows], sc[rows], ex[rows]);
		}
		assert_int_equal(n[0], 50);
		assert_int_equal(n[0], n[1]);
		assert_memory_equal(out[0], out[1], sizeof(out[0]));
		assert_memory_equal(sc[0], sc[1], sizeof(sc[0]));
		assert_memory_equal(ex[0], ex[1], sizeof(ex[0]));
	}
	synth_free(&y);
}

/* The popular and trending items scanned by category (the tables
 * wf_snap_derive() adds: a category whose best could not reach the k
 * best is skipped) and item by item from the items (no derived tables)
 * give the same lists, scores and parts, bit for bit: sessions of a few
 * categories and many, with and without a batch list and an anchor, k 20
 * and 50, a popularity weight below 0 (the categories' lowest bound it
 * then), and an item whose trend is NaN (its score too: never skipped). */
static void test_rank_prior_by_category_equals_every_entry(void **state)
{
	enum { NI = 3000, NC = 100, NT = 50 };
	struct fx *f = *state;
	struct wf_snap_cand trending[NT];
	struct synth y;

	synth_make(&y, NI, NC, 11, 1);
	y.s.ncats = 300;
	y.s.nbrands = 90;
	for (uint32_t i = 0; i < NI; i++)
		y.items[i].trend = (float)((i * 37) % 23) / 4.0f;
	y.items[(5 * 13) % NI].trend = NAN; /* popular[5] */
	for (uint32_t i = 0; i < 200; i++) /* popularity decreasing, as a snapshot lists it */
		y.pop[i] = (struct wf_snap_cand){ (i * 13) % NI, 1.0f - (float)i / 200 };
	for (uint32_t i = 0; i < NT; i++)
		trending[i] = (struct wf_snap_cand){ (i * 61 + 5) % NI, 1.0f };
	y.s.popular = y.pop;
	y.s.npopular = 200;
	y.s.trending = trending;
	y.s.ntrending = NT;
	for (uint32_t round = 0; round < 12; round++) {
		struct wf_rank_session sess;
		uint32_t nev = 1 + round * 3, k = round % 2 ? 50 : 20;
		wf_rank_session_init(&sess);
		for (uint32_t e = 0; e < nev; e++) /* round < 6: items of a few categories; then any */
			wf_rank_session_apply(&sess, &y.s, &f->p, e % 3 ? WF_EV_VIEW : WF_EV_PDP,
					      round < 6 ? (e % 3) * 300 + round : (e * 7919 + round) % NI, 0);
		f->p.w_pop = round % 4 == 3 ? -0.5f : 0.3f;
		struct wf_rank_query q = { .sess = &sess, .cands = round % 3 ? y.cands : NULL, .ncands = round % 3 ? NC : 0,
					   .w_batch = 0.4f, .w_session = 0.6f, .anchor = round % 5 == 1 ? 11 : -1, .k = k };
		uint32_t out[2][50];
		float sc[2][50];
		struct wf_rank_explain ex[2][50];
		int n[2];
		for (int derived = 0; derived < 2; derived++) {
			if (derived)
				wf_snap_derive(&y.s);
			assert_true(!derived || y.s.prior_groups);
			n[derived] = wf_rank_recs(&y.s, &f->p, &q, f->w, out[derived], sc[derived], ex[derived]);
			wf_snap_underive(&y.s);
		}
		assert_int_equal(n[0], (int)k);
		assert_int_equal(n[0], n[1]);
		assert_memory_equal(out[0], out[1], k * sizeof(out[0][0]));
		assert_memory_equal(sc[0], sc[1], k * sizeof(sc[0][0]));
		assert_memory_equal(ex[0], ex[1], k * sizeof(ex[0][0]));
	}
	synth_free(&y);
}

/* A 200-candidate list with a 12-event session on a 20,000-item
 * synthetic snapshot (the size weft-rankbench times): k distinct items,
 * scores not increasing, every one above zero; the session keeps
 * applying events. Timing lives in bench/ (weft-rankbench). */
static void test_rank_recs_200_candidates_gives_k_distinct_sorted(void **state)
{
	enum { NI = 20000, NC = 200, K = 20 };
	struct fx *f = *state;
	struct wf_rank_session sess;
	struct synth y;
	uint32_t out[K];
	float sc[K];

	synth_make(&y, NI, NC, 42, 0);
	y.s.popular = y.pop;
	y.s.npopular = 200;
	wf_rank_session_init(&sess);
	for (uint32_t e = 0; e < 12; e++)
		wf_rank_session_apply(&sess, &y.s, &f->p, e % 3 ? WF_EV_VIEW : WF_EV_PDP, (e * 7919) % NI, 0);
	for (int round = 0; round < 3; round++) {
		struct wf_rank_query q = { .sess = &sess, .cands = y.cands, .ncands = NC, .w_batch = 0.4f,
					   .w_session = 0.6f, .anchor = -1, .k = K };
		assert_int_equal(wf_rank_recs(&y.s, &f->p, &q, f->w, out, sc, NULL), K);
		assert_true(f->w->n >= NC);
		for (uint32_t i = 0; i < K; i++) {
			assert_true(out[i] < NI);
			assert_true(sc[i] > 0.0f);
			if (i)
				assert_true(sc[i] <= sc[i - 1]);
			for (uint32_t j = 0; j < i; j++)
				assert_int_not_equal(out[i], out[j]);
		}
		for (uint32_t e = 0; e < 500; e++)
			wf_rank_session_apply(&sess, &y.s, &f->p, WF_EV_CLICK, (e * 31 + (uint32_t)round) % NI, 0);
	}
	synth_free(&y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rank_empty_session_returns_batch_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_single_click_keeps_top3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_three_views_new_category_moves_it_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_cart_add_removes_item_and_lifts_complements, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_filtered_item_never_appears, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_explain_parts_sum_to_score, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_explain_sums_with_fitted_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_repeat_curve_returns_viewed_items_never_the_anchor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_live_items_return_at_the_curves_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_no_batch_list_hybrid_equals_session_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_rerank_puts_session_matches_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_intent_pivot_detected_and_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_unknown_items_and_bad_types_are_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_positions_match_single_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_evidence_by_index_equals_by_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_prior_by_category_equals_every_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_recs_200_candidates_gives_k_distinct_sorted, setup, teardown),
	};
	return cmocka_run_group_tests_name("rank", tests, NULL, NULL);
}
