/*
 * emit.c - weft-batch output: assembles the model into the snapshot's
 * on-disk records, writes the file through lib/snapwrite.c (atomic,
 * checksummed), reopens it with the validating reader, and writes the
 * audit manifest (<out>.manifest.json) from what the reader sees, so the
 * manifest's counts are the file's. Linked only into weft-batch.
 */
#include <inttypes.h>
#include <math.h>

#include "batch/batch.h"
#include "lib/rank/rank.h"
#include "lib/snapwrite.h"

#define HIST_BUCKETS 10
#define TOP_ITEMS 20
#define TOP_ITEMS_SEGMENT 10

static const char *const seg_names[WF_SEG_COUNT] = {
	[WF_SEG_NONE] = "none", [WF_SEG_NEW] = "new", [WF_SEG_ACTIVE] = "active", [WF_SEG_LOYAL] = "loyal",
	[WF_SEG_VIP] = "vip", [WF_SEG_AT_RISK] = "at_risk", [WF_SEG_LAPSED] = "lapsed",
};

void wf_batch_json_str(struct wf_buf *o, const char *s, size_t len)
{
	wf_buf_append(o, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			wf_buf_printf(o, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			wf_buf_printf(o, "\\u%04x", c);
		else
			wf_buf_append(o, &s[i], 1);
	}
	wf_buf_append(o, "\"", 1);
}

struct hist {
	double min, max;
	uint64_t n[HIST_BUCKETS];
};

static void hist_of(struct hist *h, const struct wf_snap_cand *c, uint64_t n)
{
	*h = (struct hist){ .min = n ? INFINITY : 0, .max = n ? -INFINITY : 0 };
	for (uint64_t i = 0; i < n; i++) {
		h->min = WF_MIN(h->min, c[i].score);
		h->max = WF_MAX(h->max, c[i].score);
	}
	for (uint64_t i = 0; i < n; i++) {
		double w = h->max - h->min;
		int k = w > 0 ? (int)((c[i].score - h->min) / w * HIST_BUCKETS) : 0;
		h->n[WF_MIN(WF_MAX(k, 0), HIST_BUCKETS - 1)]++;
	}
}

static void hist_json(struct wf_buf *o, const char *name, const struct hist *h)
{
	wf_buf_printf(o, "    \"%s\": {\"min\": %.6g, \"max\": %.6g, \"buckets\": [", name, h->min, h->max);
	for (int k = 0; k < HIST_BUCKETS; k++)
		wf_buf_printf(o, "%s%" PRIu64, k ? ", " : "", h->n[k]);
	wf_buf_printf(o, "]}");
}

/* Top k items of a count array, as JSON [{"item": id, "lists": n}, ...]. */
static void top_json(struct wf_buf *o, const struct wf_snap *s, const uint32_t *cnt, uint32_t k)
{
	uint32_t taken[TOP_ITEMS], nt = 0;

	wf_buf_append(o, "[", 1);
	for (uint32_t pick = 0; pick < k; pick++) {
		uint32_t best = UINT32_MAX;
		for (uint32_t i = 0; i < s->nitems; i++) {
			bool used = false;
			for (uint32_t q = 0; q < nt; q++)
				used |= taken[q] == i;
			if (!used && cnt[i] && (best == UINT32_MAX || cnt[i] > cnt[best]))
				best = i;
		}
		if (best == UINT32_MAX)
			break;
		taken[nt++] = best;
		wf_buf_printf(o, "%s{\"item\": ", pick ? ", " : "");
		wf_batch_json_str(o, wf_snap_str(s, s->items[best].id_off), s->items[best].id_len);
		wf_buf_printf(o, ", \"lists\": %u}", cnt[best]);
	}
	wf_buf_append(o, "]", 1);
}

static int cmp_boost_desc(const void *x, const void *y, void *arg)
{
	const float *v = arg;
	float a = v[*(const uint32_t *)x], c = v[*(const uint32_t *)y];

	return a > c ? -1 : a < c ? 1 : (*(const uint32_t *)x > *(const uint32_t *)y) - (*(const uint32_t *)x < *(const uint32_t *)y);
}

/* "seasonality": the weekday served, whether a yearly pattern was used, and
 * the categories boosted and damped most (README "Seasonality"). */
static void season_json(struct wf_buf *o, const struct wf_batch *b)
{
	static const char *const wd[7] = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" };
	uint32_t n = b->cats.n, *idx;

	if (b->serve_wday < 0 || !b->cat_boost || !(idx = malloc((n + 1) * sizeof(*idx)))) {
		wf_buf_printf(o, "{\"weekday_pattern\": false, \"yearly_pattern\": false}");
		return;
	}
	for (uint32_t c = 0; c < n; c++)
		idx[c] = c;
	qsort_r(idx, n, sizeof(*idx), cmp_boost_desc, b->cat_boost);
	wf_buf_printf(o, "{\"weekday_pattern\": true, \"serve_weekday\": \"%s\", \"yearly_pattern\": %s, \"categories\": [",
		      wd[b->serve_wday], b->yearly ? "true" : "false");
	for (uint32_t k = 0, shown = 0; k < n; k++) {
		/* the 10 most boosted and the 10 most damped */
		if (k >= 10 && k + 10 < n)
			continue;
		uint32_t c = idx[k];
		wf_buf_printf(o, "%s\n    {\"category\": ", shown++ ? "," : "");
		wf_batch_json_str(o, b->strs.data + b->cats.off[c], b->cats.len[c]);
		wf_buf_printf(o, ", \"weekday_index\": %.3f", (double)b->cat_wday_index[(size_t)c * 7 + b->serve_wday]);
		if (b->yearly)
			wf_buf_printf(o, ", \"year_index\": %.3f", (double)b->cat_year_index[c]);
		wf_buf_printf(o, ", \"boost\": %.3f}", (double)b->cat_boost[c]);
	}
	wf_buf_printf(o, "]}");
	free(idx);
}

/* "model": the repeat curve, the fitted weights per visitor type (by
 * feature name) and the fit's metrics (batch/README.md "The fit"). */
static void model_json(struct wf_buf *o, const struct wf_snap *s)
{
	const struct wf_snap_model *m = s->model;
	static const char *const vis[2] = { "returning", "new" };

	wf_buf_printf(o, "{\"version\": %u, \"feature_set\": %u, \"fit_days\": %u, \"repeat\": [", m->version,
		      m->feature_set, m->fit_days);
	for (uint32_t r = 0; r < WF_SNAP_MODEL_REPEAT; r++)
		wf_buf_printf(o, "%s%.5f", r ? ", " : "", (double)m->repeat[r]);
	wf_buf_printf(o, "]");
	for (uint32_t v = 0; v < 2; v++) {
		uint32_t fitted = v ? WF_SNAP_MODEL_FITTED_NEW : WF_SNAP_MODEL_FITTED_RETURNING;
		wf_buf_printf(o, ",\n    \"%s\": {\"fitted\": %s", vis[v], (m->flags & fitted) ? "true" : "false");
		if (m->flags & fitted) {
			wf_buf_printf(o, ", \"weights\": {");
			for (uint32_t f = 0; f < m->nfeat; f++)
				wf_buf_printf(o, "%s\"%s\": %.6g", f ? ", " : "", wf_rank_feature_name(f),
					      (double)m->weight[v][f]);
			wf_buf_printf(o, "}, \"examples\": %" PRIu64 ", \"positives\": %" PRIu64
					 ", \"logloss\": %.5f, \"hr_fit\": %.4f, \"hr_default\": %.4f",
				      m->examples[v], m->positives[v], (double)m->logloss[v], (double)m->hr_fit[v],
				      (double)m->hr_default[v]);
		}
		wf_buf_printf(o, "}");
	}
	wf_buf_printf(o, "}");
}

static int manifest(struct wf_batch *b, const struct wf_snap *s)
{
	const struct wf_snap_hdr *h = s->hdr;
	uint32_t *cnt = calloc((size_t)s->nitems * WF_SEG_COUNT + 1, sizeof(*cnt));
	uint32_t *all = calloc((size_t)s->nitems + 1, sizeof(*all));
	uint64_t seg_users[WF_SEG_COUNT] = { 0 }, full = 0, listed = 0, with_neigh = 0, with_compl = 0;
	struct wf_buf o = { 0 };
	struct hist hc, hn, hx;
	char path[4096];
	int r;

	if (!cnt || !all) {
		free(cnt);
		free(all);
		return -ENOMEM;
	}
	for (uint32_t u = 0; u < s->nusers; u++) {
		const struct wf_snap_user *us = &s->users[u];
		seg_users[us->segment]++;
		full += us->cand_cnt >= b->opt.candidates;
		for (uint32_t k = 0; k < us->cand_cnt; k++) {
			uint32_t i = s->cands[us->cand_off + k].item;
			all[i]++;
			cnt[(size_t)us->segment * s->nitems + i]++;
		}
	}
	for (uint32_t i = 0; i < s->nitems; i++) {
		listed += all[i] > 0;
		with_neigh += s->items[i].neigh_cnt > 0;
		with_compl += s->items[i].compl_cnt > 0;
	}
	b->st.users_full = full;
	b->st.items_listed = listed;
	hist_of(&hc, s->cands, s->ncands);
	hist_of(&hn, s->neigh, s->nneigh);
	hist_of(&hx, s->compl, s->ncompl);

	wf_buf_printf(&o, "{\n  \"format_version\": %u,\n  \"file\": ", h->format_version);
	wf_batch_json_str(&o, b->opt.out, strlen(b->opt.out));
	wf_buf_printf(&o, ",\n  \"file_size\": %" PRIu64 ",\n  \"generation\": %" PRIu64 ",\n  \"build_ms\": %" PRIu64
			  ",\n  \"build_seconds\": %.3f,\n  \"data_start_ms\": %" PRId64 ",\n  \"data_end_ms\": %" PRIu64
			  ",\n  \"source_digest\": \"%016" PRIx64 "\",\n",
		      h->file_size, h->generation, h->build_ms, (double)(wf_now_ns() - b->t0_ns) / 1e9, b->min_ms,
		      h->data_end_ms, h->source_digest);
	wf_buf_printf(&o, "  \"inputs\": {\"events\": [");
	for (uint32_t i = 0; i < b->opt.nevents; i++) {
		if (i)
			wf_buf_append(&o, ", ", 2);
		wf_batch_json_str(&o, b->opt.events[i], strlen(b->opt.events[i]));
	}
	wf_buf_printf(&o, "], \"journal\": ");
	if (b->opt.journal)
		wf_batch_json_str(&o, b->opt.journal, strlen(b->opt.journal));
	else
		wf_buf_printf(&o, "null");
	wf_buf_printf(&o, ", \"catalog\": ");
	if (b->opt.catalog)
		wf_batch_json_str(&o, b->opt.catalog, strlen(b->opt.catalog));
	else
		wf_buf_printf(&o, "null");
	wf_buf_printf(&o, ", \"inventory\": ");
	if (b->opt.inventory)
		wf_batch_json_str(&o, b->opt.inventory, strlen(b->opt.inventory));
	else
		wf_buf_printf(&o, "null");
	wf_buf_printf(&o, "},\n");
	wf_buf_printf(&o,
		      "  \"counts\": {\"users\": %u, \"items\": %u, \"categories\": %u, \"brands\": %u, "
		      "\"candidates\": %" PRIu64 ", \"neighbours\": %" PRIu64 ", \"complements\": %" PRIu64
		      ", \"popular\": %u, \"trending\": %u, \"events_read\": %" PRIu64 ", \"rows_skipped\": %" PRIu64
		      ", \"anonymous_events\": %" PRIu64 ", \"sessions\": %" PRIu64 ", \"catalog_rows\": %" PRIu64
		      ", \"catalog_rows_skipped\": %" PRIu64 ", \"inventory_rows\": %" PRIu64
		      ", \"inventory_rows_skipped\": %" PRIu64 "},\n",
		      s->nusers, s->nitems, s->ncats, s->nbrands, s->ncands, s->nneigh, s->ncompl, s->npopular,
		      s->ntrending, b->st.events_read, b->st.rows_skipped, b->st.anon_events, b->st.sessions,
		      b->st.catalog_rows, b->st.catalog_skipped, b->st.inventory_rows, b->st.inventory_skipped);
	wf_buf_printf(&o,
		      "  \"coverage\": {\"candidates_per_user\": %u, \"users_with_full_lists\": %" PRIu64
		      ", \"users_full_share\": %.4f, \"items_in_any_list\": %" PRIu64 ", \"items_in_lists_share\": %.4f"
		      ", \"items_with_neighbours\": %" PRIu64 ", \"items_with_complements\": %" PRIu64 "},\n",
		      b->opt.candidates, full, s->nusers ? (double)full / s->nusers : 0.0, listed,
		      s->nitems ? (double)listed / s->nitems : 0.0, with_neigh, with_compl);
	wf_buf_printf(&o, "  \"histograms\": {\n");
	hist_json(&o, "candidate_score", &hc);
	wf_buf_printf(&o, ",\n");
	hist_json(&o, "neighbour_score", &hn);
	wf_buf_printf(&o, ",\n");
	hist_json(&o, "complement_score", &hx);
	wf_buf_printf(&o, "\n  },\n  \"segments\": {");
	for (int g = 0; g < WF_SEG_COUNT; g++)
		wf_buf_printf(&o, "%s\"%s\": %" PRIu64, g ? ", " : "", seg_names[g], seg_users[g]);
	wf_buf_printf(&o, "},\n  \"model\": ");
	model_json(&o, s);
	wf_buf_printf(&o, ",\n  \"seasonality\": ");
	season_json(&o, b);
	wf_buf_printf(&o, ",\n  \"top_items\": ");
	top_json(&o, s, all, TOP_ITEMS);
	wf_buf_printf(&o, ",\n  \"top_items_by_segment\": {");
	for (int g = 0, first = 1; g < WF_SEG_COUNT; g++) {
		if (!seg_users[g])
			continue;
		wf_buf_printf(&o, "%s\n    \"%s\": ", first ? "" : ",", seg_names[g]);
		top_json(&o, s, cnt + (size_t)g * s->nitems, TOP_ITEMS_SEGMENT);
		first = 0;
	}
	wf_buf_printf(&o, "\n  },\n  \"popular\": ");
	{
		uint32_t k = WF_MIN(s->npopular, (uint32_t)TOP_ITEMS);
		wf_buf_append(&o, "[", 1);
		for (uint32_t i = 0; i < k; i++) {
			const struct wf_snap_item *it = &s->items[s->popular[i].item];
			if (i)
				wf_buf_append(&o, ", ", 2);
			wf_batch_json_str(&o, wf_snap_str(s, it->id_off), it->id_len);
		}
		wf_buf_append(&o, "]", 1);
	}
	wf_buf_printf(&o, "\n}\n");
	free(cnt);
	free(all);
	if (!o.data) {
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s.manifest.json", b->opt.out);
	r = wf_write_file_atomic(path, o.data, o.len);
	if (r < 0)
		wf_err("cannot write %s: %s", path, strerror(-r));
	wf_buf_fini(&o);
	return r;
}

int wf_batch_emit(struct wf_batch *b)
{
	uint32_t nitems = b->items.n, nusers = b->users.n, N = b->opt.candidates;
	struct wf_snap_item *items = calloc((size_t)nitems + 1, sizeof(*items));
	struct wf_snap_user *users = calloc((size_t)nusers + 1, sizeof(*users));
	struct wf_snap_name *names = calloc((size_t)b->cats.n + b->brands.n + 1, sizeof(*names));
	struct wf_snapw_input in = { 0 };
	struct wf_snap *s = NULL;
	uint32_t *seq_off = calloc((size_t)nitems + 1, sizeof(*seq_off));
	uint64_t nn = 0, nc = 0, nk = 0, nq = 0, size = 0;
	char err[1024];
	int r = -ENOMEM;

	if (!items || !users || !names || !seq_off)
		goto out;
	wf_batch_progress(b, "writing snapshot", 0, 0);
	if (b->strs.len >= (1ull << 32)) {
		wf_err("ids and names take %zu bytes, more than the 4 GiB a snapshot's string section holds", b->strs.len);
		r = -E2BIG;
		goto out;
	}
	for (uint32_t c = 0; c < b->cats.n; c++)
		names[c] = (struct wf_snap_name){ (uint32_t)b->cats.off[c], b->cats.len[c] };
	for (uint32_t c = 0; c < b->brands.n; c++)
		names[b->cats.n + c] = (struct wf_snap_name){ (uint32_t)b->brands.off[c], b->brands.len[c] };
	/* Compact the fixed-slot lists in place: every list moves down or stays. */
	for (uint32_t i = 0; i < nitems; i++) {
		const struct wf_batch_item *m = &b->item[i];
		struct wf_snap_item *it = &items[i];

		memmove(b->neigh + nn, b->neigh + (size_t)i * WF_BATCH_NEIGH_TOP, b->neigh_cnt[i] * sizeof(*b->neigh));
		memmove(b->compl + nc, b->compl + (size_t)i * WF_BATCH_COMPL_TOP, b->compl_cnt[i] * sizeof(*b->compl));
		memmove(b->seq + nq, b->seq + (size_t)i * WF_BATCH_SEQ_TOP, b->seq_cnt[i] * sizeof(*b->seq));
		seq_off[i] = (uint32_t)nq;
		nq += b->seq_cnt[i];
		*it = (struct wf_snap_item){
			.id_off = (uint32_t)b->items.off[i], .id_len = b->items.len[i], .category = m->category,
			.brand = m->brand, .price_cents = m->price_cents, .price_band = m->price_band,
			.nsizes = m->nsizes, .flags = m->flags, .popularity = m->popularity, .trend = m->trend,
			.neigh_off = (uint32_t)nn, .neigh_cnt = b->neigh_cnt[i],
			.compl_off = (uint32_t)nc, .compl_cnt = b->compl_cnt[i],
		};
		nn += b->neigh_cnt[i];
		nc += b->compl_cnt[i];
	}
	seq_off[nitems] = (uint32_t)nq;
	for (uint32_t u = 0; u < nusers; u++) {
		const struct wf_batch_user *m = &b->user[u];

		memmove(b->cands + nk, b->cands + (size_t)u * N, b->cand_cnt[u] * sizeof(*b->cands));
		users[u] = (struct wf_snap_user){
			.id_off = (uint32_t)b->users.off[u], .id_len = b->users.len[u], .cand_off = nk,
			.cand_cnt = b->cand_cnt[u], .segment = m->segment, .r = m->r, .f = m->f, .m = m->m,
			.ltv = m->ltv, .orders = m->orders,
			.last_seen_days = (uint32_t)((b->max_ms - m->last_ms) / 86400000),
		};
		nk += b->cand_cnt[u];
	}
	in = (struct wf_snapw_input){
		.generation = b->opt.have_generation ? b->opt.generation : b->build_ms / 1000,
		.build_ms = b->build_ms, .source_digest = b->source_digest, .data_end_ms = (uint64_t)b->max_ms,
		.strs = b->strs.data ? b->strs.data : "", .strs_len = b->strs.len,
		.items = items, .nitems = nitems, .users = users, .nusers = nusers,
		.cands = b->cands, .ncands = nk, .neigh = b->neigh, .nneigh = nn, .compl = b->compl, .ncompl = nc,
		.names = names, .ncats = b->cats.n, .nbrands = b->brands.n,
		.popular = b->popular, .npopular = b->npopular, .trending = b->trending, .ntrending = b->ntrending,
		.seq = b->seq, .nseq = nq, .seq_off = seq_off, .model = &b->model,
	};
	if ((r = wf_snapw_write(b->opt.out, &in, &size, err, sizeof(err))) < 0) {
		wf_err("%s", err);
		goto out;
	}
	/* Free the model before mapping the result back for the manifest. */
	free(items);
	free(users);
	free(names);
	free(seq_off);
	seq_off = NULL;
	items = NULL;
	users = NULL;
	names = NULL;
	wf_batch_progress(b, "verifying snapshot", 0, 0);
	if ((r = wf_snap_open(b->opt.out, &s, err, sizeof(err))) < 0) {
		wf_err("the snapshot just written does not validate: %s", err);
		goto out;
	}
	r = manifest(b, s);
out:
	if (r == -ENOMEM)
		wf_err("out of memory while writing the snapshot");
	wf_snap_close(s);
	free(seq_off);
	free(items);
	free(users);
	free(names);
	return r;
}
