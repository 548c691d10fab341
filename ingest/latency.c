/*
 * latency.c - weft-ingest's request latency histograms (struct wf_reqlat,
 * shm/layout.h): which series a reply belongs to, the replies queued in a
 * loop pass recorded at its end with one clock read, the stages (journal
 * flush, ring wait), and INFO's Latencystats. Linked into weft-ingest only.
 *
 * Cost on the request path: a request's start is the pass clock
 * (ctx->pass_ns, read once per pass anyway); a queued reply appends two
 * words to ctx->lat; the pass end reads the clock once and adds each run
 * of equal (series, start) with a relaxed load and store (one writer).
 */
#include <string.h>

#include "ingest/ingest.h"
#include "lib/proto.h"
#include "shm/reqlat.h"

uint32_t ingest_lat_series_of(int cmd)
{
	switch (cmd) {
	case WF_CMD_EVENT:
		return WF_LAT_EVENT;
	case WF_CMD_RECS:
		return WF_LAT_RECS;
	case WF_CMD_RERANK:
		return WF_LAT_RERANK;
	case WF_CMD_HISTORY:
		return WF_LAT_HISTORY;
	case WF_CMD_SEGMENTS:
		return WF_LAT_SEGMENTS;
	default:
		return WF_LAT_RANKER_OTHER;
	}
}

void ingest_lat_queued(struct ingest_ctx *ctx, uint32_t ser1, uint64_t t0)
{
	struct ingest_lat *l = &ctx->lat;

	if (!ser1 || ser1 > WF_LAT_SERIES)
		return;
	if (l->n == INGEST_LAT_PENDING)
		ingest_lat_flush(ctx);
	l->t0[l->n] = t0;
	l->ser[l->n++] = (uint8_t)(ser1 - 1);
}

void ingest_lat_flush(struct ingest_ctx *ctx)
{
	struct ingest_lat *l = &ctx->lat;
	struct wf_reqlat *rl = ctx->shm->reqlat;
	uint64_t now;

	if (!l->n)
		return;
	now = wf_now_ns();
	for (uint32_t i = 0; i < l->n;) {
		uint32_t j = i + 1, s = l->ser[i];

		while (j < l->n && l->ser[j] == s && l->t0[j] == l->t0[i])
			j++; /* a pipelined batch: one add for the run */
		wf_lat_add_n(rl->hist[s], &rl->sum_ns[s], now > l->t0[i] ? now - l->t0[i] : 0, j - i);
		i = j;
	}
	l->n = 0;
}

void ingest_lat_stage(struct ingest_ctx *ctx, uint32_t ser, uint64_t ns)
{
	struct wf_reqlat *rl = ctx->shm->reqlat;

	if (ser < WF_LAT_SERIES)
		wf_lat_add_n(rl->hist[ser], &rl->sum_ns[ser], ns, 1);
}

void ingest_lat_info(struct ingest_ctx *ctx, struct wf_buf *b)
{
	uint64_t c[WF_LAT_BUCKETS];

	/* After a section that ended without its blank line (Stats). */
	if (b->len >= 2 && !(b->len >= 4 && memcmp(b->data + b->len - 4, "\r\n\r\n", 4) == 0))
		wf_buf_printf(b, "\r\n");
	wf_buf_printf(b, "# Latencystats\r\n");
	for (uint32_t s = 0; s < WF_LAT_SERIES; s++) {
		if (!wf_lat_snapshot(ctx->shm->reqlat->hist[s], c))
			continue;
		wf_buf_printf(b, "latency_percentiles_usec_%s:p50=%.3f,p99=%.3f,p99.9=%.3f\r\n",
			      wf_reqlat_name(s)->info, wf_lat_quantile_est(c, 0.50) / 1e3,
			      wf_lat_quantile_est(c, 0.99) / 1e3, wf_lat_quantile_est(c, 0.999) / 1e3);
	}
	wf_buf_printf(b, "\r\n");
}
