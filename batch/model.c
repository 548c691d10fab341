/*
 * model.c - weft-batch's first model (batch/README.md describes it):
 * decayed popularity and trend per item, item-to-item session
 * co-occurrence (NEIGH), co-cart/co-purchase complements with a
 * category-level fallback (COMPL), price bands, RFM/segment/LTV per user,
 * and per-user candidate lists. Linked only into weft-batch.
 *
 * Each stage is its own function over the context so a fuller model can
 * replace one without touching the others. Per-item and per-user stages run
 * on opt.threads threads (wf_batch_parallel) with per-worker scratch; no
 * stage allocates per event.
 */
#include <math.h>

#include "batch/batch.h"
#include "lib/csr.h"
#include "lib/pool.h"
#include "lib/topk.h"

#define DAY_MS 86400000.0
#define HALF_LIFE_DAYS 7.0
#define TREND_WINDOW_DAYS 2.0
#define TREND_SMOOTHING 1.0   /* strength per day added to both rates */
#define TREND_MIN_RECENT 3.0  /* recent strength an item needs to trend */
#define COMPL_MIN_SUPPORT 2   /* users who carted/bought both items */
#define HIST_TOP 30u          /* history items whose neighbours are pulled in */
#define FAV_CATS 3u
#define SEASON_MIN_DAYS 14.0  /* a weekday pattern needs two of each weekday */
#define SEASON_PRIOR 200.0    /* strength at which a category's own pattern gets half weight */
#define SEASON_MIN_BOOST 0.67f
#define SEASON_MAX_BOOST 1.5f
#define SEASON_YEAR_DAYS 364  /* 52 weeks: a year ago on the same weekday */
#define SEASON_YEAR_WINDOW 28 /* days compared on either side of that point */
#define SEASON_YEAR_SMOOTH 28.0 /* strength added to both windows (1 a day) */

/* Candidate score weights (the sources of a user's list). */
#define W_HISTORY 1.0f
#define W_HISTORY_BOUGHT 0.3f /* bought items are rarely bought again */
#define W_NEIGH 0.8f
#define W_COMPL 0.6f
#define W_FAVCAT 0.3f
#define W_POPULAR 0.05f

float wf_batch_strength(uint8_t type)
{
	static const float s[WF_EV_COUNT] = {
		[WF_EV_VIEW] = 1.0f,  [WF_EV_CLICK] = 2.0f,   [WF_EV_PDP] = 3.0f,	[WF_EV_HOVER] = 1.0f,
		[WF_EV_DWELL] = 1.5f, [WF_EV_SCROLL] = 0.5f,  [WF_EV_SEARCH] = 0.0f, [WF_EV_CART_ADD] = 5.0f,
		[WF_EV_CART_REMOVE] = 0.0f, [WF_EV_PURCHASE] = 8.0f,
	};
	return type < WF_EV_COUNT ? s[type] : 0.0f;
}

double wf_batch_decay(const struct wf_batch *b, int64_t ts_ms)
{
	return exp2(-(double)(b->max_ms - ts_ms) / (HALF_LIFE_DAYS * DAY_MS));
}

/* ---- parallel for (lib/pool.h), with batch progress lines ---- */

struct par_progress {
	struct wf_batch *b;
	const char *what;
};

static void par_progress(void *arg, uint64_t done, uint64_t n)
{
	struct par_progress *pp = arg;

	wf_batch_progress_count(pp->b, pp->what, done, n);
}

int wf_batch_parallel(struct wf_batch *b, uint64_t n, const char *what,
		      void (*fn)(void *arg, uint64_t i, uint32_t worker), void *arg)
{
	struct par_progress pp = { b, what };

	return wf_pool_for(b->opt.threads, n, fn, arg, what ? par_progress : NULL, &pp);
}

/* ---- events grouped by session or user (lib/csr.h) ---- */

static int csr_events(struct wf_batch *b, uint32_t nkeys, bool by_user, struct wf_csr *ret)
{
	struct wf_csr c;
	int r;

	if ((r = wf_csr_begin(&c, nkeys)) < 0)
		return r;
	for (uint64_t i = 0; i < b->nev; i++) {
		uint32_t k = by_user ? b->ev[i].user : b->ev[i].session;
		if (k != WF_BATCH_NO_USER)
			wf_csr_count(&c, k);
	}
	if ((r = wf_csr_alloc(&c, nkeys)) < 0)
		return r;
	for (uint64_t i = 0; i < b->nev; i++) {
		uint32_t k = by_user ? b->ev[i].user : b->ev[i].session;
		if (k != WF_BATCH_NO_USER)
			wf_csr_put(&c, k, (uint32_t)i);
	}
	*ret = c;
	return 0;
}

/* Distinct items per group (session or user basket), first-seen order,
 * capped; keep(e) chooses the events that count. */
static int distinct_items(struct wf_batch *b, const struct wf_csr *g, uint32_t ngroups, uint32_t cap,
			  bool (*keep)(const struct wf_batch_event *), struct wf_csr *ret)
{
	uint32_t nitems = b->items.n;
	uint32_t *stamp = calloc(nitems ? nitems : 1, sizeof(*stamp));
	struct wf_csr d = { calloc((size_t)ngroups + 1, sizeof(uint64_t)), NULL };
	uint64_t n = 0, dcap = 1u << 20;

	d.idx = malloc(dcap * sizeof(*d.idx));
	if (!stamp || !d.off || !d.idx)
		goto nomem;
	for (uint32_t s = 0; s < ngroups; s++) {
		uint32_t cnt = 0;
		for (uint64_t j = g->off[s]; j < g->off[s + 1] && cnt < cap; j++) {
			const struct wf_batch_event *e = &b->ev[g->idx[j]];
			if (e->item == 0xffffffffu || !keep(e) || stamp[e->item] == s + 1)
				continue;
			stamp[e->item] = s + 1;
			if (n == dcap) {
				uint32_t *p = realloc(d.idx, 2 * dcap * sizeof(*p));
				if (!p)
					goto nomem;
				d.idx = p;
				dcap *= 2;
			}
			d.idx[n++] = e->item;
			cnt++;
		}
		d.off[s + 1] = n;
	}
	free(stamp);
	*ret = d;
	return 0;
nomem:
	free(stamp);
	wf_csr_fini(&d);
	return -ENOMEM;
}

static bool keep_any(const struct wf_batch_event *e)
{
	return wf_batch_strength(e->type) > 0.0f;
}

static bool keep_basket(const struct wf_batch_event *e)
{
	return e->type == WF_EV_CART_ADD || e->type == WF_EV_PURCHASE;
}

/* ---- stage: item statistics (popularity, trend, per-category tops) ---- */

static int cmp_pop_desc(const void *x, const void *y, void *arg)
{
	const struct wf_batch_item *it = arg;
	uint32_t a = *(const uint32_t *)x, c = *(const uint32_t *)y;

	if (it[a].popularity != it[c].popularity)
		return it[a].popularity > it[c].popularity ? -1 : 1;
	return a < c ? -1 : a > c;
}

/* Weekday of a unix time in ms, UTC, 0 = Sunday (1970-01-01 was a Thursday). */
static int wday_of(int64_t ms)
{
	int64_t d = ms >= 0 ? ms / (int64_t)DAY_MS : (ms - (int64_t)DAY_MS + 1) / (int64_t)DAY_MS;

	return (int)(((d + 4) % 7 + 7) % 7);
}

/* Day-of-week seasonality (README "Seasonality"): with >= 14 days of data,
 * each category's strength per weekday, as a rate per calendar day of that
 * weekday, over its mean rate per day is its weekday index; the weekday
 * the snapshot serves is the day after data_end. A category's boost is its
 * index for that weekday shrunk towards 1 by how much evidence it has
 * (weight S/(S + SEASON_PRIOR)), clamped to [0.67, 1.5]. catw: ncats x 7
 * strength sums. */
static float season_clamp(double boost)
{
	return (float)WF_MIN(SEASON_MAX_BOOST, WF_MAX(SEASON_MIN_BOOST, boost));
}

/* Yearly seasonality (README "Seasonality"): with a year and a window of
 * data, what each category did a year ago (52 weeks) over the 28 days after
 * the serving point, against the 28 days before it: its year index
 * (A + 28) / (B + 28). Coats that rose into November last year rise now,
 * before this year's data shows it. The boost is the index shrunk towards
 * 1 by the evidence (A + B)/(A + B + SEASON_PRIOR), clamped, and multiplies
 * the weekday boost (the product clamped the same way). caty: ncats x 2
 * strength sums, [0] the window before, [1] the window after. */
static void seasonality_yearly(struct wf_batch *b, const double *caty)
{
	b->yearly = (double)(b->max_ms - b->min_ms) / DAY_MS >= SEASON_YEAR_DAYS + SEASON_YEAR_WINDOW;
	if (!b->yearly)
		return;
	for (uint32_t c = 0; c < b->cats.n; c++) {
		double before = caty[(size_t)c * 2], after = caty[(size_t)c * 2 + 1], sum = before + after;
		double idx = (after + SEASON_YEAR_SMOOTH) / (before + SEASON_YEAR_SMOOTH);

		b->cat_year_index[c] = (float)idx;
		b->cat_boost[c] = season_clamp(b->cat_boost[c] * (1.0 + sum / (sum + SEASON_PRIOR) * (idx - 1.0)));
	}
}

static int seasonality(struct wf_batch *b, const double *catw, const double *caty)
{
	uint32_t ncats = b->cats.n;
	int64_t d0 = b->min_ms / (int64_t)DAY_MS, d1 = b->max_ms / (int64_t)DAY_MS;
	double ndays[7] = { 0 }, total_days = (double)(d1 - d0 + 1);

	b->serve_wday = -1;
	if (ncats == 0 || (double)(b->max_ms - b->min_ms) / DAY_MS < SEASON_MIN_DAYS)
		return 0;
	b->cat_boost = malloc(ncats * sizeof(*b->cat_boost));
	b->cat_wday_index = malloc((size_t)ncats * 7 * sizeof(*b->cat_wday_index));
	b->cat_year_index = malloc(ncats * sizeof(*b->cat_year_index));
	if (!b->cat_boost || !b->cat_wday_index || !b->cat_year_index)
		return -ENOMEM;
	for (int64_t d = d0; d <= d1; d++)
		ndays[wday_of(d * (int64_t)DAY_MS)] += 1;
	b->serve_wday = wday_of(b->max_ms + (int64_t)DAY_MS);
	for (uint32_t c = 0; c < ncats; c++) {
		double sum = 0, mean;
		for (int w = 0; w < 7; w++)
			sum += catw[(size_t)c * 7 + w];
		mean = sum / total_days;
		for (int w = 0; w < 7; w++)
			b->cat_wday_index[(size_t)c * 7 + w] =
				mean > 0 && ndays[w] > 0 ? (float)(catw[(size_t)c * 7 + w] / ndays[w] / mean) : 1.0f;
		double idx = b->cat_wday_index[(size_t)c * 7 + b->serve_wday], wgt = sum / (sum + SEASON_PRIOR);
		b->cat_boost[c] = season_clamp(1.0 + wgt * (idx - 1.0));
		b->cat_year_index[c] = 1.0f;
	}
	seasonality_yearly(b, caty);
	return 0;
}

static int item_stats(struct wf_batch *b)
{
	uint32_t nitems = b->items.n, ncats = b->cats.n;
	double span_days = (double)(b->max_ms - b->min_ms) / DAY_MS;
	double recent_days = WF_MIN(TREND_WINDOW_DAYS, WF_MAX(span_days, 1.0 / 24));
	double past_days = WF_MAX(span_days - TREND_WINDOW_DAYS, 1.0);
	int64_t cut = b->max_ms - (int64_t)(TREND_WINDOW_DAYS * DAY_MS);
	float maxpop = 0;
	uint32_t *order;
	double *catw = calloc((size_t)ncats * 7 + 1, sizeof(*catw));
	double *caty = calloc((size_t)ncats * 2 + 1, sizeof(*caty));
	/* The yearly windows: (ago - 28 d, ago] and (ago, ago + 28 d]. */
	int64_t ago = b->max_ms - (int64_t)(SEASON_YEAR_DAYS * DAY_MS);
	int64_t win = (int64_t)(SEASON_YEAR_WINDOW * DAY_MS);
	int r;

	if (!catw || !caty) {
		free(catw);
		free(caty);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < b->nev; i++) {
		const struct wf_batch_event *e = &b->ev[i];
		float s = wf_batch_strength(e->type);
		if (e->item == 0xffffffffu || s == 0.0f)
			continue;
		struct wf_batch_item *it = &b->item[e->item];
		it->pop_raw += (float)(s * wf_batch_decay(b, e->ts_ms));
		if (e->ts_ms > cut)
			it->recent += s;
		else
			it->past += s;
		if (it->category != WF_SNAP_NO_CAT) {
			catw[(size_t)it->category * 7 + wday_of(e->ts_ms)] += s;
			if (e->ts_ms > ago - win && e->ts_ms <= ago + win)
				caty[(size_t)it->category * 2 + (e->ts_ms > ago)] += s;
		}
	}
	r = seasonality(b, catw, caty);
	free(catw);
	free(caty);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < nitems; i++)
		maxpop = WF_MAX(maxpop, b->item[i].pop_raw);
	for (uint32_t i = 0; i < nitems; i++) {
		struct wf_batch_item *it = &b->item[i];
		double rr = it->recent / recent_days, pr = it->past / past_days;
		it->popularity = maxpop > 0 ? it->pop_raw / maxpop : 0.0f;
		it->trend = (float)((rr + TREND_SMOOTHING) / (pr + TREND_SMOOTHING));
	}

	order = malloc((nitems ? nitems : 1) * sizeof(*order));
	b->cat_top = malloc(((size_t)ncats * WF_BATCH_CAT_TOP + 1) * sizeof(*b->cat_top));
	b->cat_top_cnt = calloc(ncats + 1, sizeof(*b->cat_top_cnt));
	if (!order || !b->cat_top || !b->cat_top_cnt) {
		free(order);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < nitems; i++)
		order[i] = i;
	qsort_r(order, nitems, sizeof(*order), cmp_pop_desc, b->item);
	b->npopular = 0;
	for (uint32_t k = 0; k < nitems; k++) {
		uint32_t i = order[k];
		const struct wf_batch_item *it = &b->item[i];
		if (!(it->popularity > 0.0f))
			break;
		if (b->npopular < WF_BATCH_POPULAR_TOP)
			b->popular[b->npopular++] = (struct wf_snap_cand){ i, it->popularity };
		if (it->category != WF_SNAP_NO_CAT && b->cat_top_cnt[it->category] < WF_BATCH_CAT_TOP)
			b->cat_top[(size_t)it->category * WF_BATCH_CAT_TOP + b->cat_top_cnt[it->category]++] = i;
	}
	free(order);

	struct wf_topk t = { b->trending, 0, WF_BATCH_TRENDING_TOP };
	for (uint32_t i = 0; i < nitems; i++) {
		const struct wf_batch_item *it = &b->item[i];
		if (it->trend > 1.0f && it->recent >= TREND_MIN_RECENT)
			wf_topk_push(&t, i, it->trend);
	}
	b->ntrending = wf_topk_finish(&t);
	return 0;
}

/* ---- stage: price bands (quintile of price within the category) ---- */

static int cmp_cat_price(const void *x, const void *y, void *arg)
{
	const struct wf_batch_item *it = arg;
	const struct wf_batch_item *a = &it[*(const uint32_t *)x], *c = &it[*(const uint32_t *)y];

	if (a->category != c->category)
		return a->category < c->category ? -1 : 1;
	return (a->price_cents > c->price_cents) - (a->price_cents < c->price_cents);
}

static int price_bands(struct wf_batch *b)
{
	uint32_t *idx = malloc((b->items.n ? b->items.n : 1) * sizeof(*idx)), n = 0;

	if (!idx)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->items.n; i++)
		if (b->item[i].price_cents > 0)
			idx[n++] = i;
	qsort_r(idx, n, sizeof(*idx), cmp_cat_price, b->item);
	for (uint32_t s = 0; s < n;) {
		uint32_t e = s, cat = b->item[idx[s]].category;
		while (e < n && b->item[idx[e]].category == cat)
			e++;
		for (uint32_t k = s; k < e; k++) {
			/* Equal prices share the band of the first of them. */
			uint32_t first = k;
			while (first > s && b->item[idx[first - 1]].price_cents == b->item[idx[k]].price_cents)
				first--;
			b->item[idx[k]].price_band = (uint8_t)((uint64_t)5 * (first - s) / (e - s));
		}
		s = e;
	}
	free(idx);
	return 0;
}

/* ---- stage: item neighbours from session co-occurrence ---- */

/* Scratch of an item-by-item pass (neighbours, complements): per worker an
 * accumulator over every item and a top-k heap. */
struct item_pass {
	struct wf_acc *acc;           /* nt of them */
	struct wf_snap_cand *heap; /* nt x top */
	uint32_t nt;
};

/* Set up p for a pass keeping `top` per item, and the pass's output: *out,
 * top slots per item, and *out_cnt, a count per item (both owned by b and
 * freed with it). 0 or -ENOMEM; item_pass_fini() in either case. */
static int item_pass_init(struct item_pass *p, struct wf_batch *b, uint32_t top, struct wf_snap_cand **out,
			  uint32_t **out_cnt)
{
	uint32_t nitems = b->items.n;

	p->nt = WF_MAX(1u, b->opt.threads);
	p->acc = calloc(p->nt, sizeof(*p->acc));
	p->heap = malloc((size_t)p->nt * top * sizeof(*p->heap));
	*out = malloc(((size_t)nitems * top + 1) * sizeof(**out));
	*out_cnt = calloc(nitems + 1, sizeof(**out_cnt));
	if (!p->acc || !p->heap || !*out || !*out_cnt)
		return -ENOMEM;
	for (uint32_t w = 0; w < p->nt; w++) {
		int r = wf_acc_init(&p->acc[w], nitems);
		if (r < 0)
			return r;
	}
	return 0;
}

static void item_pass_fini(struct item_pass *p)
{
	if (p->acc)
		for (uint32_t w = 0; w < p->nt; w++)
			wf_acc_fini(&p->acc[w]);
	free(p->acc);
	free(p->heap);
}

/* Item a's list of an item pass, t, into its `top` slots of out and its count. */
static void pass_keep(struct wf_topk *t, struct wf_snap_cand *out, uint32_t *cnt, uint32_t a, uint32_t top)
{
	cnt[a] = wf_topk_finish(t);
	memcpy(out + (size_t)a * top, t->h, cnt[a] * sizeof(*t->h));
}

/* An item pass over sessions: neighbours (si: each session's distinct
 * items) and transitions (si: each session's clicks in order). */
struct neigh_job {
	struct wf_batch *b;
	const struct wf_csr *si, *is; /* session -> items, item -> sessions */
	const float *sess_w;
	struct item_pass pass;
};

static void neigh_one(void *arg, uint64_t a64, uint32_t w)
{
	struct neigh_job *j = arg;
	struct wf_batch *b = j->b;
	struct wf_acc *acc = &j->pass.acc[w];
	uint32_t a = (uint32_t)a64;
	struct wf_topk t = { j->pass.heap + (size_t)w * WF_BATCH_NEIGH_TOP, 0, WF_BATCH_NEIGH_TOP };

	for (uint64_t k = j->is->off[a]; k < j->is->off[a + 1]; k++) {
		uint32_t s = j->is->idx[k];
		for (uint64_t m = j->si->off[s]; m < j->si->off[s + 1]; m++)
			if (j->si->idx[m] != a)
				wf_acc_add(acc, j->si->idx[m], j->sess_w[s]);
	}
	/* Conditional: of the (decayed) sessions holding a, the share that
	 * holds c too. Cosine divided by c's count as well, which favoured
	 * rare items (issue 14: conditional was worth +0.7 HR on DIGINETICA). */
	for (uint32_t k = 0; k < acc->n; k++) {
		uint32_t c = acc->touched[k];
		float den = b->item[a].sess_norm;
		if (den > 0)
			wf_topk_push(&t, c, acc->v[c] / den);
	}
	wf_acc_clear(acc);
	pass_keep(&t, b->neigh, b->neigh_cnt, a, WF_BATCH_NEIGH_TOP);
}

/* ---- stage: complements ---- */

struct compl_job {
	struct wf_batch *b;
	const struct wf_csr *ub, *ib; /* user -> basket items, item -> users */
	const float *catc;         /* ncats x ncats normalised co-basket, or NULL */
	struct item_pass pass;
};

static void compl_one(void *arg, uint64_t a64, uint32_t w)
{
	struct compl_job *j = arg;
	struct wf_batch *b = j->b;
	struct wf_acc *acc = &j->pass.acc[w];
	uint32_t a = (uint32_t)a64, n;
	struct wf_topk t = { j->pass.heap + (size_t)w * WF_BATCH_COMPL_TOP, 0, WF_BATCH_COMPL_TOP };
	struct wf_snap_cand *out = b->compl + (size_t)a * WF_BATCH_COMPL_TOP;

	for (uint64_t k = j->ib->off[a]; k < j->ib->off[a + 1]; k++) {
		uint32_t u = j->ib->idx[k];
		for (uint64_t m = j->ub->off[u]; m < j->ub->off[u + 1]; m++)
			if (j->ub->idx[m] != a)
				wf_acc_add(acc, j->ub->idx[m], 1.0f);
	}
	for (uint32_t k = 0; k < acc->n; k++) {
		uint32_t c = acc->touched[k];
		if (acc->v[c] >= COMPL_MIN_SUPPORT)
			wf_topk_push(&t, c, acc->v[c] / sqrtf(b->item[a].basket_norm * b->item[c].basket_norm));
	}
	wf_acc_clear(acc);
	n = wf_topk_finish(&t);
	memcpy(out, t.h, n * sizeof(*out));

	/* Too sparse: fill from the categories bought together with a's. */
	uint32_t ca = b->item[a].category, ncats = b->cats.n;
	if (n < WF_BATCH_COMPL_TOP && j->catc && ca != WF_SNAP_NO_CAT) {
		float ceiling = n ? out[n - 1].score * 0.99f : 1.0f;
		uint32_t favc[FAV_CATS], nfav = 0;
		struct wf_topk f = { t.h, 0, WF_BATCH_COMPL_TOP - n };

		for (uint32_t pick = 0; pick < FAV_CATS; pick++) {
			uint32_t best = WF_SNAP_NO_CAT;
			for (uint32_t c = 0; c < ncats; c++) {
				bool taken = c == ca;
				for (uint32_t q = 0; q < nfav; q++)
					taken |= favc[q] == c;
				if (!taken && j->catc[(size_t)ca * ncats + c] > 0 &&
				    (best == WF_SNAP_NO_CAT || j->catc[(size_t)ca * ncats + c] > j->catc[(size_t)ca * ncats + best]))
					best = c;
			}
			if (best == WF_SNAP_NO_CAT)
				break;
			favc[nfav++] = best;
		}
		for (uint32_t q = 0; q < nfav; q++) {
			uint32_t c = favc[q];
			for (uint32_t k = 0; k < b->cat_top_cnt[c]; k++) {
				uint32_t p = b->cat_top[(size_t)c * WF_BATCH_CAT_TOP + k];
				bool dup = false;
				for (uint32_t x = 0; x < n; x++)
					dup |= out[x].item == p;
				if (!dup)
					wf_topk_push(&f, p, j->catc[(size_t)ca * ncats + c] * b->item[p].popularity);
			}
		}
		uint32_t nf = wf_topk_finish(&f);
		float top = nf ? f.h[0].score : 1.0f;
		for (uint32_t k = 0; k < nf; k++)
			out[n + k] = (struct wf_snap_cand){ f.h[k].item, f.h[k].score / top * ceiling * 0.5f };
		n += nf;
	}
	b->compl_cnt[a] = n;
}

static int build_compl(struct wf_batch *b, const struct wf_csr *ub)
{
	uint32_t nitems = b->items.n, ncats = b->cats.n;
	struct wf_csr ib = { 0 };
	float *catc = NULL, *catn = NULL;
	struct compl_job j = { .b = b, .ub = ub, .ib = &ib };
	int r;

	if ((r = wf_csr_transpose(ub, b->users.n, nitems, &ib)) < 0)
		return r;
	for (uint32_t i = 0; i < nitems; i++)
		b->item[i].basket_norm = (float)(ib.off[i + 1] - ib.off[i]);
	/* Category co-basket matrix, cosine-normalised, while it fits (16 MiB). */
	if (ncats > 0 && ncats <= 2048) {
		catc = calloc((size_t)ncats * ncats, sizeof(*catc));
		catn = calloc(ncats, sizeof(*catn));
		uint32_t *seen = malloc(ncats * sizeof(*seen)), *cl = malloc(ncats * sizeof(*cl));
		if (!catc || !catn || !seen || !cl) {
			free(seen);
			free(cl);
			r = -ENOMEM;
			goto out;
		}
		memset(seen, 0xff, ncats * sizeof(*seen));
		for (uint32_t u = 0; u < b->users.n; u++) {
			uint32_t nc = 0;
			for (uint64_t m = ub->off[u]; m < ub->off[u + 1]; m++) {
				uint32_t c = b->item[ub->idx[m]].category;
				if (c != WF_SNAP_NO_CAT && seen[c] != u) {
					seen[c] = u;
					cl[nc++] = c;
				}
			}
			for (uint32_t x = 0; x < nc; x++) {
				catn[cl[x]] += 1;
				for (uint32_t y = 0; y < nc; y++)
					if (x != y)
						catc[(size_t)cl[x] * ncats + cl[y]] += 1;
			}
		}
		for (uint32_t x = 0; x < ncats; x++)
			for (uint32_t y = 0; y < ncats; y++)
				if (catc[(size_t)x * ncats + y] > 0)
					catc[(size_t)x * ncats + y] /= sqrtf(catn[x] * catn[y]);
		free(seen);
		free(cl);
	}
	j.catc = catc;
	if ((r = item_pass_init(&j.pass, b, WF_BATCH_COMPL_TOP, &b->compl, &b->compl_cnt)) == 0)
		r = wf_batch_parallel(b, nitems, "complements (items)", compl_one, &j);
out:
	item_pass_fini(&j.pass);
	free(catc);
	free(catn);
	wf_csr_fini(&ib);
	return r;
}

/* ---- stage: transitions (SEQ) and the repeat curve ---- */

/* An event that enters lib/rank's recent ring (a positive strength there)
 * and a next click the evaluator and the fit predict. */
static bool ring_event(const struct wf_batch_event *e)
{
	return e->item != 0xffffffffu && (e->type == WF_EV_VIEW || e->type == WF_EV_CLICK || e->type == WF_EV_PDP ||
					  e->type == WF_EV_HOVER || e->type == WF_EV_DWELL ||
					  e->type == WF_EV_CART_ADD || e->type == WF_EV_PURCHASE);
}

static bool target_event(const struct wf_batch_event *e)
{
	return e->item != 0xffffffffu && (e->type == WF_EV_VIEW || e->type == WF_EV_CLICK || e->type == WF_EV_PDP ||
					  e->type == WF_EV_CART_ADD || e->type == WF_EV_PURCHASE);
}

/* Each session's clicks in order, a repeat of the item just clicked
 * folded into it (as lib/rank's recent ring folds it), the first
 * WF_BATCH_SESSION_CAP * 2 of them. */
static int session_seqs(struct wf_batch *b, const struct wf_csr *bysess, uint32_t nsess, struct wf_csr *ret)
{
	/* at most one entry per event: sized once, no growing */
	struct wf_csr d = { calloc((size_t)nsess + 1, sizeof(uint64_t)), malloc((bysess->off[nsess] + 1) * sizeof(uint32_t)) };
	uint64_t n = 0;

	if (!d.off || !d.idx) {
		wf_csr_fini(&d);
		return -ENOMEM;
	}
	for (uint32_t s = 0; s < nsess; s++) {
		uint32_t last = 0xffffffffu;
		uint64_t first = n;
		for (uint64_t j = bysess->off[s]; j < bysess->off[s + 1] && n - first < 2 * WF_BATCH_SESSION_CAP; j++) {
			const struct wf_batch_event *e = &b->ev[bysess->idx[j]];
			if (ring_event(e) && e->item != last)
				d.idx[n++] = last = e->item;
		}
		d.off[s + 1] = n;
	}
	*ret = d;
	return 0;
}

/*
 * The repeat curve (MODEL.repeat): replaying every session's clicks
 * through a ring like lib/rank's (16 newest, a repeat of the newest
 * folded into it), the share of next clicks that go back to the item r
 * places back in the ring (its newest place), among the next clicks that
 * had an item there: P(next = ring[r]). Learned from the data: 26 % at
 * r = 0 on one real log, 8.9 % on DIGINETICA, ~0 on Taobao (issue 14).
 */
static void repeat_curve(struct wf_batch *b, const struct wf_csr *bysess, uint32_t nsess)
{
	uint64_t hit[WF_SNAP_MODEL_REPEAT] = { 0 }, den[WF_SNAP_MODEL_REPEAT] = { 0 };

	for (uint32_t s = 0; s < nsess; s++) {
		uint32_t ring[WF_SNAP_MODEL_REPEAT], nring = 0;
		for (uint64_t j = bysess->off[s]; j < bysess->off[s + 1]; j++) {
			const struct wf_batch_event *e = &b->ev[bysess->idx[j]];
			if (!ring_event(e))
				continue;
			if (!nring || ring[0] != e->item) {
				memmove(ring + 1, ring, WF_MIN(nring, WF_SNAP_MODEL_REPEAT - 1) * sizeof(*ring));
				ring[0] = e->item;
				nring = WF_MIN(nring + 1, WF_SNAP_MODEL_REPEAT);
			}
			if (j + 1 >= bysess->off[s + 1])
				break;
			const struct wf_batch_event *nx = &b->ev[bysess->idx[j + 1]];
			if (!target_event(nx))
				continue;
			uint32_t r;
			for (r = 0; r < nring && ring[r] != nx->item; r++)
				;
			for (uint32_t q = 0; q < nring; q++)
				den[q]++;
			if (r < nring)
				hit[r]++;
		}
	}
	/* one pseudo-miss per place: a place seen once does not make 1 */
	for (uint32_t r = 0; r < WF_SNAP_MODEL_REPEAT; r++)
		b->model.repeat[r] = (float)((double)hit[r] / (double)(den[r] + 1));
}

/* Item a's transitions: every later click c (c != a) up to
 * WF_BATCH_SEQ_GAP clicks after a click on a, weighted 1 / gap and by the
 * session's decay, over the decayed count of clicks on a: the expected
 * (gap-weighted) number of times c follows a click on a. */
static void seq_one(void *arg, uint64_t a64, uint32_t w)
{
	struct neigh_job *j = arg; /* si: each session's clicks in order (session_seqs) */
	const struct wf_csr *sq = j->si;
	struct wf_acc *acc = &j->pass.acc[w];
	struct wf_topk t = { j->pass.heap + (size_t)w * WF_BATCH_SEQ_TOP, 0, WF_BATCH_SEQ_TOP };
	double n = 0;

	for (uint64_t k = j->is->off[a64]; k < j->is->off[a64 + 1]; k++) {
		uint32_t s = j->is->idx[k];
		for (uint64_t m = sq->off[s]; m < sq->off[s + 1]; m++) {
			if (sq->idx[m] != a64)
				continue;
			n += j->sess_w[s];
			for (uint64_t g = 1; g <= WF_BATCH_SEQ_GAP && m + g < sq->off[s + 1]; g++)
				if (sq->idx[m + g] != a64)
					wf_acc_add(acc, sq->idx[m + g], j->sess_w[s] / (float)g);
		}
	}
	for (uint32_t k = 0; k < acc->n && n > 0; k++)
		wf_topk_push(&t, acc->touched[k], (float)(acc->v[acc->touched[k]] / n));
	wf_acc_clear(acc);
	pass_keep(&t, j->b->seq, j->b->seq_cnt, (uint32_t)a64, WF_BATCH_SEQ_TOP);
}

static int build_seq(struct wf_batch *b, const struct wf_csr *bysess, const struct wf_csr *is, const float *sess_w)
{
	uint32_t nsess = (uint32_t)b->st.sessions;
	struct wf_csr sq = { 0 };
	struct neigh_job j = { .b = b, .si = &sq, .is = is, .sess_w = sess_w };
	int r;

	repeat_curve(b, bysess, nsess);
	if ((r = session_seqs(b, bysess, nsess, &sq)) == 0 &&
	    (r = item_pass_init(&j.pass, b, WF_BATCH_SEQ_TOP, &b->seq, &b->seq_cnt)) == 0)
		r = wf_batch_parallel(b, b->items.n, "transitions (items)", seq_one, &j);
	item_pass_fini(&j.pass);
	wf_csr_fini(&sq);
	return r;
}

static int build_neigh(struct wf_batch *b, const struct wf_csr *bysess)
{
	uint32_t nitems = b->items.n, nsess = (uint32_t)b->st.sessions;
	struct wf_csr si = { 0 }, is = { 0 };
	float *sess_w = malloc(((size_t)nsess + 1) * sizeof(*sess_w));
	struct neigh_job j = { .b = b, .si = &si, .is = &is, .sess_w = sess_w };
	int r;

	if (!sess_w)
		return -ENOMEM;
	for (uint32_t s = 0; s < nsess; s++) {
		int64_t last = INT64_MIN;
		for (uint64_t k = bysess->off[s]; k < bysess->off[s + 1]; k++)
			last = WF_MAX(last, b->ev[bysess->idx[k]].ts_ms);
		/* (a session of the fit window has no events in the fit's
		 * build of the days before it) */
		sess_w[s] = last == INT64_MIN ? 0.0f : (float)wf_batch_decay(b, last);
	}
	if ((r = distinct_items(b, bysess, nsess, WF_BATCH_SESSION_CAP, keep_any, &si)) < 0 ||
	    (r = wf_csr_transpose(&si, nsess, nitems, &is)) < 0)
		goto out;
	for (uint32_t i = 0; i < nitems; i++) {
		float n = 0;
		for (uint64_t k = is.off[i]; k < is.off[i + 1]; k++)
			n += sess_w[is.idx[k]];
		b->item[i].sess_norm = n;
	}
	if ((r = item_pass_init(&j.pass, b, WF_BATCH_NEIGH_TOP, &b->neigh, &b->neigh_cnt)) == 0)
		r = wf_batch_parallel(b, nitems, "neighbours (items)", neigh_one, &j);
	if (r == 0)
		r = build_seq(b, bysess, &is, sess_w);
out:
	item_pass_fini(&j.pass);
	free(sess_w);
	wf_csr_fini(&si);
	wf_csr_fini(&is);
	return r;
}

/* ---- stage: users (orders, RFM quintiles, segment, LTV) ---- */

static int cmp_by_value(const void *x, const void *y, void *arg)
{
	const double *v = arg;
	double a = v[*(const uint32_t *)x], c = v[*(const uint32_t *)y];

	return (a > c) - (a < c);
}

/* Quintile 1..5 of v over idx[0..n) (higher value, higher quintile); equal
 * values share a quintile. */
static void quintiles(uint32_t *idx, uint32_t n, double *v, uint8_t *out)
{
	qsort_r(idx, n, sizeof(*idx), cmp_by_value, v);
	for (uint32_t k = 0, first = 0; k < n; k++) {
		if (k > 0 && v[idx[k]] != v[idx[k - 1]])
			first = k;
		out[idx[k]] = (uint8_t)(1 + (uint64_t)5 * first / n);
	}
}

static int user_stats(struct wf_batch *b, const struct wf_csr *byuser)
{
	uint32_t nusers = b->users.n, nbuyers = 0;
	uint32_t *sess_stamp = calloc(b->st.sessions + 1, sizeof(*sess_stamp));
	uint32_t *idx = malloc(((size_t)nusers + 1) * sizeof(*idx));
	double *v = malloc(((size_t)nusers + 1) * sizeof(*v));
	uint8_t *q = malloc((size_t)nusers + 1);

	if (!sess_stamp || !idx || !v || !q) {
		free(sess_stamp);
		free(idx);
		free(v);
		free(q);
		return -ENOMEM;
	}
	for (uint32_t u = 0; u < nusers; u++) {
		struct wf_batch_user *us = &b->user[u];
		for (uint64_t k = byuser->off[u]; k < byuser->off[u + 1]; k++) {
			const struct wf_batch_event *e = &b->ev[byuser->idx[k]];
			us->first_ms = WF_MIN(us->first_ms, e->ts_ms);
			us->last_ms = WF_MAX(us->last_ms, e->ts_ms);
			us->nevents++;
			if (e->type != WF_EV_PURCHASE || e->item == 0xffffffffu)
				continue;
			us->last_buy_ms = WF_MAX(us->last_buy_ms, e->ts_ms);
			us->spend += (float)(b->item[e->item].price_cents / 100.0 * e->qty);
			if (sess_stamp[e->session] != u + 1) {
				sess_stamp[e->session] = u + 1;
				us->orders++;
			}
		}
		if (us->orders)
			idx[nbuyers++] = u;
	}
	/* R, F, M quintiles over buyers. */
	for (uint32_t k = 0; k < nbuyers; k++)
		v[idx[k]] = (double)b->user[idx[k]].last_buy_ms;
	quintiles(idx, nbuyers, v, q);
	for (uint32_t k = 0; k < nbuyers; k++)
		b->user[idx[k]].r = q[idx[k]];
	for (uint32_t k = 0; k < nbuyers; k++)
		v[idx[k]] = b->user[idx[k]].orders;
	quintiles(idx, nbuyers, v, q);
	for (uint32_t k = 0; k < nbuyers; k++)
		b->user[idx[k]].f = q[idx[k]];
	for (uint32_t k = 0; k < nbuyers; k++)
		v[idx[k]] = b->user[idx[k]].spend;
	quintiles(idx, nbuyers, v, q);
	for (uint32_t k = 0; k < nbuyers; k++)
		b->user[idx[k]].m = q[idx[k]];

	/* "New" and "quiet" are relative to how much history there is: with two
	 * weeks of data everyone was first seen within two weeks. */
	double span_days = (double)(b->max_ms - b->min_ms) / DAY_MS;
	double new_days = WF_MIN(14.0, span_days / 4), quiet_days = WF_MIN(30.0, span_days / 2);
	for (uint32_t u = 0; u < nusers; u++) {
		struct wf_batch_user *us = &b->user[u];
		double seen_days = (double)(b->max_ms - us->last_ms) / DAY_MS;
		double age_days = (double)(b->max_ms - us->first_ms) / DAY_MS;

		if (seen_days > 60)
			us->segment = WF_SEG_LAPSED;
		else if (us->orders == 0)
			us->segment = age_days <= new_days ? WF_SEG_NEW : seen_days > quiet_days ? WF_SEG_AT_RISK : WF_SEG_ACTIVE;
		else if (us->m == 5 && us->f >= 4)
			us->segment = WF_SEG_VIP;
		else if (us->r >= 4 && us->f >= 4)
			us->segment = WF_SEG_LOYAL;
		else if (us->r <= 2 && (us->f >= 3 || us->m >= 3))
			us->segment = WF_SEG_AT_RISK;
		else if (age_days <= new_days && us->orders <= 1)
			us->segment = WF_SEG_NEW;
		else
			us->segment = WF_SEG_ACTIVE;
		/* LTV = average order value x orders x expected lifetime factor
		 * (1 for the least recent buyers up to 3 for the most recent). */
		us->ltv = us->orders ? (float)(us->spend * (1.0 + 2.0 * (us->r - 1) / 4.0)) : 0.0f;
	}
	free(sess_stamp);
	free(idx);
	free(v);
	free(q);
	return 0;
}

/* ---- stage: per-user candidates ---- */

struct cand_job {
	struct wf_batch *b;
	const struct wf_csr *byuser;
	struct wf_acc *hist, *score, *cat; /* per worker */
	uint8_t **bought;               /* per worker, nitems flags */
	struct wf_snap_cand **heap;     /* per worker, HIST_TOP / candidates */
};

static void cand_one(void *arg, uint64_t u64, uint32_t w)
{
	struct cand_job *j = arg;
	struct wf_batch *b = j->b;
	uint32_t u = (uint32_t)u64, N = b->opt.candidates;
	struct wf_acc *h = &j->hist[w], *sc = &j->score[w], *cat = &j->cat[w];
	uint8_t *bought = j->bought[w];
	float hmax = 0, cmax = 0;

	for (uint64_t k = j->byuser->off[u]; k < j->byuser->off[u + 1]; k++) {
		const struct wf_batch_event *e = &b->ev[j->byuser->idx[k]];
		float s = wf_batch_strength(e->type);
		if (e->item == 0xffffffffu || s == 0.0f)
			continue;
		s *= (float)wf_batch_decay(b, e->ts_ms);
		wf_acc_add(h, e->item, s);
		if (e->type == WF_EV_PURCHASE)
			bought[e->item] |= 1;
		if (e->type == WF_EV_CART_ADD)
			bought[e->item] |= 2;
		if (b->item[e->item].category != WF_SNAP_NO_CAT)
			wf_acc_add(cat, b->item[e->item].category, s);
	}
	for (uint32_t k = 0; k < h->n; k++)
		hmax = WF_MAX(hmax, h->v[h->touched[k]]);
	/* The user's own history. */
	struct wf_topk ht = { j->heap[w], 0, HIST_TOP };
	for (uint32_t k = 0; k < h->n; k++) {
		uint32_t i = h->touched[k];
		float hn = h->v[i] / hmax;
		wf_acc_add(sc, i, hn * ((bought[i] & 1) ? W_HISTORY_BOUGHT : W_HISTORY));
		wf_topk_push(&ht, i, hn);
	}
	/* Neighbours and complements of the strongest history items. */
	uint32_t nh = wf_topk_finish(&ht);
	for (uint32_t k = 0; k < nh; k++) {
		uint32_t i = ht.h[k].item;
		float hn = ht.h[k].score;
		const struct wf_snap_cand *nb = b->neigh + (size_t)i * WF_BATCH_NEIGH_TOP;
		for (uint32_t m = 0; m < b->neigh_cnt[i]; m++)
			wf_acc_add(sc, nb[m].item, W_NEIGH * hn * nb[m].score);
		if (bought[i]) {
			const struct wf_snap_cand *cp = b->compl + (size_t)i * WF_BATCH_COMPL_TOP;
			for (uint32_t m = 0; m < b->compl_cnt[i]; m++)
				wf_acc_add(sc, cp[m].item, W_COMPL * hn * cp[m].score);
		}
	}
	/* Favourite categories' popular items. */
	for (uint32_t k = 0; k < cat->n; k++)
		cmax = WF_MAX(cmax, cat->v[cat->touched[k]]);
	for (uint32_t pick = 0; pick < FAV_CATS && cat->n; pick++) {
		uint32_t best = 0;
		float bv = 0;
		for (uint32_t k = 0; k < cat->n; k++)
			if (cat->v[cat->touched[k]] > bv) {
				bv = cat->v[cat->touched[k]];
				best = cat->touched[k];
			}
		if (bv <= 1e-20f)
			break;
		for (uint32_t k = 0; k < b->cat_top_cnt[best]; k++) {
			uint32_t p = b->cat_top[(size_t)best * WF_BATCH_CAT_TOP + k];
			wf_acc_add(sc, p, W_FAVCAT * (bv / cmax) * b->item[p].popularity);
		}
		cat->v[best] = 1e-30f; /* taken; wf_acc_clear resets it */
	}
	/* Global popularity to fill. */
	for (uint32_t k = 0; k < WF_MIN(b->npopular, N); k++)
		wf_acc_add(sc, b->popular[k].item, W_POPULAR * b->popular[k].score);

	/* Seasonality: the category's weekday (and yearly) boost on every source. */
	struct wf_topk t = { b->cands + (size_t)u * N, 0, N };
	for (uint32_t k = 0; k < sc->n; k++) {
		uint32_t i = sc->touched[k], c = b->item[i].category;
		float boost = b->cat_boost && c != WF_SNAP_NO_CAT ? b->cat_boost[c] : 1.0f;
		wf_topk_push(&t, i, sc->v[i] * boost);
	}
	b->cand_cnt[u] = wf_topk_finish(&t);
	for (uint32_t k = 0; k < h->n; k++)
		bought[h->touched[k]] = 0;
	wf_acc_clear(h);
	wf_acc_clear(sc);
	wf_acc_clear(cat);
}

static int build_cands(struct wf_batch *b, const struct wf_csr *byuser)
{
	uint32_t nt = WF_MAX(1u, b->opt.threads), nitems = b->items.n, nusers = b->users.n;
	struct cand_job j = { .b = b, .byuser = byuser };
	int r = -ENOMEM;

	j.hist = calloc(nt, sizeof(*j.hist));
	j.score = calloc(nt, sizeof(*j.score));
	j.cat = calloc(nt, sizeof(*j.cat));
	j.bought = calloc(nt, sizeof(*j.bought));
	j.heap = calloc(nt, sizeof(*j.heap));
	b->cands = malloc(((size_t)nusers * b->opt.candidates + 1) * sizeof(*b->cands));
	b->cand_cnt = calloc((size_t)nusers + 1, sizeof(*b->cand_cnt));
	if (!j.hist || !j.score || !j.cat || !j.bought || !j.heap || !b->cands || !b->cand_cnt)
		goto out;
	for (uint32_t w = 0; w < nt; w++) {
		if (wf_acc_init(&j.hist[w], nitems) < 0 || wf_acc_init(&j.score[w], nitems) < 0 ||
		    wf_acc_init(&j.cat[w], b->cats.n) < 0)
			goto out;
		j.bought[w] = calloc(nitems ? nitems : 1, 1);
		j.heap[w] = malloc(HIST_TOP * sizeof(**j.heap));
		if (!j.bought[w] || !j.heap[w])
			goto out;
	}
	r = wf_batch_parallel(b, nusers, "candidates (users)", cand_one, &j);
out:
	for (uint32_t w = 0; w < nt; w++) {
		if (j.hist)
			wf_acc_fini(&j.hist[w]);
		if (j.score)
			wf_acc_fini(&j.score[w]);
		if (j.cat)
			wf_acc_fini(&j.cat[w]);
		if (j.bought)
			free(j.bought[w]);
		if (j.heap)
			free(j.heap[w]);
	}
	free(j.hist);
	free(j.score);
	free(j.cat);
	free(j.bought);
	free(j.heap);
	return r;
}

int wf_batch_model(struct wf_batch *b)
{
	struct wf_csr bysess = { 0 }, byuser = { 0 }, ub = { 0 };
	int r;

	if (b->nev >= 0xffffffffull) {
		wf_err("%llu events: this builder indexes events with 32 bits; split the input",
		       (unsigned long long)b->nev);
		return -E2BIG;
	}
	wf_batch_progress(b, "item statistics", 0, 0);
	if ((r = item_stats(b)) < 0 || (r = price_bands(b)) < 0)
		goto out;
	wf_batch_progress(b, "item neighbours (sessions)", 0, 0);
	if ((r = csr_events(b, (uint32_t)b->st.sessions, false, &bysess)) < 0 || (r = build_neigh(b, &bysess)) < 0)
		goto out;
	wf_csr_fini(&bysess);
	wf_batch_progress(b, "users and complements", 0, 0);
	if ((r = csr_events(b, b->users.n, true, &byuser)) < 0 ||
	    (r = distinct_items(b, &byuser, b->users.n, WF_BATCH_BASKET_CAP, keep_basket, &ub)) < 0 ||
	    (r = build_compl(b, &ub)) < 0 || (r = user_stats(b, &byuser)) < 0)
		goto out;
	wf_csr_fini(&ub);
	wf_batch_progress(b, "candidates", 0, 0);
	r = build_cands(b, &byuser);
	/* The events are done with: the writer's memory comes next. */
	wf_batch_events_free(b);
out:
	wf_csr_fini(&bysess);
	wf_csr_fini(&byuser);
	wf_csr_fini(&ub);
	if (r < 0)
		wf_err("model: %s", strerror(-r));
	return r;
}
